/* protoc-gen-nnrpc: protoc runs it with a CodeGeneratorRequest on stdin and
 * reads a CodeGeneratorResponse from stdout. Problems in the .proto files go
 * into the response's `error` (protoc prints it and fails); only a broken
 * conversation with protoc makes the plugin itself exit non-zero. */
#include <stdio.h>
#include <stdlib.h>

#include "plugin.h"

static uint8_t *read_all(FILE *in, size_t *len) {
  size_t cap = 1 << 16, n = 0;
  uint8_t *buf = malloc(cap);
  while (buf) {
    n += fread(buf + n, 1, cap - n, in);
    if (n < cap) break;
    uint8_t *bigger = realloc(buf, 2 * cap);
    if (!bigger) free(buf);
    buf = bigger;
    cap *= 2;
  }
  *len = n;
  if (buf && ferror(in)) {
    free(buf);
    buf = NULL;
  }
  return buf;
}

int main(int argc, char **argv) {
  if (argc > 1) {
    fprintf(stderr, "%s: a protoc plugin; run it as\n"
                    "  protoc --plugin=protoc-gen-nnrpc=PATH --nnrpc_out=DIR x.proto\n", argv[0]);
    return 2;
  }
  size_t len = 0, n = 0;
  uint8_t *in = read_all(stdin, &len), *out = NULL;
  int rc = in ? nnrpc_plugin_handle(in, len, &out, &n) : NNRPC_PLUGIN_BAD_REQUEST;
  free(in);
  if (rc == NNRPC_PLUGIN_BAD_REQUEST) {
    fprintf(stderr, "protoc-gen-nnrpc: cannot read a CodeGeneratorRequest on stdin\n");
    return 1;
  }
  if (rc) {
    fprintf(stderr, "protoc-gen-nnrpc: out of memory\n");
    return 1;
  }
  rc = 0;
  if (fwrite(out, 1, n, stdout) != n || fflush(stdout) != 0) {
    fprintf(stderr, "protoc-gen-nnrpc: cannot write the response to stdout\n");
    rc = 1;
  }
  free(out);
  return rc;
}
