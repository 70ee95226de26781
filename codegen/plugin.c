/* protoc-gen-nnrpc's request handling (plugin.h): request bytes in,
 * response bytes out. main.c does the talking to protoc. */
#include <stdlib.h>
#include <string.h>

#include "emit.h"
#include "model.h"
#include "plugin.h"

typedef Google__Protobuf__Compiler__CodeGeneratorRequest Request;
typedef Google__Protobuf__Compiler__CodeGeneratorResponse Response;
typedef Google__Protobuf__Compiler__CodeGeneratorResponse__File OutFile;

/* Adds one output file; takes `content`. */
static int add_file(Response *resp, const char *name, char *content) {
  OutFile *f = malloc(sizeof *f);
  char *name_copy = malloc(strlen(name) + 1);
  OutFile **files = realloc(resp->file, (resp->n_file + 1) * sizeof *files);
  if (files) resp->file = files;
  if (!f || !name_copy || !files || !content) {
    free(f);
    free(name_copy);
    free(content);
    return -1;
  }
  google__protobuf__compiler__code_generator_response__file__init(f);
  f->name = strcpy(name_copy, name);
  f->content = content;
  resp->file[resp->n_file++] = f;
  return 0;
}

/* Files without services get no output: nothing to include, and an empty
 * .c would be an empty translation unit (an error under -pedantic). */
static int generate(const Request *req, Response *resp, nnrpc_sb *err) {
  nnrpc_model model; /* its parameters (req->parameter) included */
  if (nnrpc_model_build(req, &model, err)) return -1;
  int rc = 0;
  for (size_t i = 0; i < model.n_files && rc == 0; i++) {
    const nnrpc_file *f = &model.files[i];
    if (f->n_services == 0) continue;
    rc = nnrpc_check_file(f, err);
    if (rc) break;
    nnrpc_sb h = NNRPC_SB_INIT, c = NNRPC_SB_INIT;
    nnrpc_emit_header(f, &h);
    nnrpc_emit_source(f, &c);
    if (add_file(resp, f->out_h, nnrpc_sb_take(&h)) || add_file(resp, f->out_c, nnrpc_sb_take(&c))) {
      nnrpc_sb_free(&c);
      nnrpc_sb_puts(err, "protoc-gen-nnrpc: out of memory");
      rc = -1;
    }
  }
  nnrpc_model_free(&model);
  return rc;
}

static void free_files(Response *resp) {
  for (size_t i = 0; i < resp->n_file; i++) {
    free(resp->file[i]->name);
    free(resp->file[i]->content);
    free(resp->file[i]);
  }
  free(resp->file);
  resp->file = NULL;
  resp->n_file = 0;
}

int nnrpc_plugin_handle(const uint8_t *in, size_t len, uint8_t **out, size_t *out_len) {
  *out = NULL;
  *out_len = 0;
  Request *req = google__protobuf__compiler__code_generator_request__unpack(NULL, len, in);
  if (!req) return NNRPC_PLUGIN_BAD_REQUEST;
  Response resp = GOOGLE__PROTOBUF__COMPILER__CODE_GENERATOR_RESPONSE__INIT;
  nnrpc_sb err = NNRPC_SB_INIT;
  /* we never look at fields, so proto3 `optional` is no concern of ours */
  resp.has_supported_features = 1;
  resp.supported_features = GOOGLE__PROTOBUF__COMPILER__CODE_GENERATOR_RESPONSE__FEATURE__FEATURE_PROTO3_OPTIONAL;
  if (generate(req, &resp, &err)) {
    free_files(&resp); /* protoc ignores them after an error anyway */
    resp.error = (char *)(err.failed || !err.len ? "protoc-gen-nnrpc: out of memory" : err.s);
  }
  size_t n = google__protobuf__compiler__code_generator_response__get_packed_size(&resp);
  int rc = NNRPC_PLUGIN_NO_MEMORY;
  uint8_t *buf = malloc(n ? n : 1);
  if (buf) {
    google__protobuf__compiler__code_generator_response__pack(&resp, buf);
    *out = buf;
    *out_len = n;
    rc = 0;
  }
  free_files(&resp);
  nnrpc_sb_free(&err);
  google__protobuf__compiler__code_generator_request__free_unpacked(req, NULL);
  return rc;
}
