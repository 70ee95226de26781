/* fuzz_plugin: protoc-gen-nnrpc's request handling (codegen/plugin.c) on
 * arbitrary bytes as the CodeGeneratorRequest protoc would send: decoding,
 * the model (idl/), the checks and both emitters. Any input must give either
 * NNRPC_PLUGIN_BAD_REQUEST or a CodeGeneratorResponse that decodes again; the
 * response is not written anywhere. */
#include <stdio.h>
#include <stdlib.h>

#include "google/protobuf/compiler/plugin.pb-c.h"
#include "plugin.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  uint8_t *out = NULL;
  size_t len = 0;
  int rc = nnrpc_plugin_handle(data, size, &out, &len);
  if (rc == 0) {
    Google__Protobuf__Compiler__CodeGeneratorResponse *r =
        google__protobuf__compiler__code_generator_response__unpack(NULL, len, out);
    if (!r) {
      fprintf(stderr, "the plugin's response does not decode\n");
      abort();
    }
    for (size_t i = 0; i < r->n_file; i++)
      if (!r->file[i]->name || !r->file[i]->content) {
        fprintf(stderr, "an output file without name or content\n");
        abort();
      }
    google__protobuf__compiler__code_generator_response__free_unpacked(r, NULL);
  } else if (rc != NNRPC_PLUGIN_BAD_REQUEST) {
    fprintf(stderr, "nnrpc_plugin_handle returned %d\n", rc);
    abort();
  }
  free(out);
  return 0;
}
