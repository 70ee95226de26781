/* protoc-gen-nnrpc: protoc runs it with a CodeGeneratorRequest on stdin and
 * reads a CodeGeneratorResponse from stdout. Problems in the .proto files go
 * into the response's `error` (protoc prints it and fails); only a broken
 * conversation with protoc makes the plugin itself exit non-zero. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "emit.h"
#include "model.h"

typedef Google__Protobuf__Compiler__CodeGeneratorRequest Request;
typedef Google__Protobuf__Compiler__CodeGeneratorResponse Response;
typedef Google__Protobuf__Compiler__CodeGeneratorResponse__File OutFile;

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
  if (req->parameter && *req->parameter) {
    nnrpc_sb_printf(err, "protoc-gen-nnrpc: unknown parameter \"%s\" (it takes none yet)", req->parameter);
    return -1;
  }
  nnrpc_model model;
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

int main(int argc, char **argv) {
  if (argc > 1) {
    fprintf(stderr, "%s: a protoc plugin; run it as\n"
                    "  protoc --plugin=protoc-gen-nnrpc=PATH --nnrpc_out=DIR x.proto\n", argv[0]);
    return 2;
  }
  int rc = 1;
  size_t len = 0;
  uint8_t *in = read_all(stdin, &len), *out = NULL;
  Request *req = in ? google__protobuf__compiler__code_generator_request__unpack(NULL, len, in) : NULL;
  Response resp = GOOGLE__PROTOBUF__COMPILER__CODE_GENERATOR_RESPONSE__INIT;
  nnrpc_sb err = NNRPC_SB_INIT;
  if (!req) {
    fprintf(stderr, "protoc-gen-nnrpc: cannot read a CodeGeneratorRequest on stdin\n");
    goto done;
  }
  /* we never look at fields, so proto3 `optional` is no concern of ours */
  resp.has_supported_features = 1;
  resp.supported_features = GOOGLE__PROTOBUF__COMPILER__CODE_GENERATOR_RESPONSE__FEATURE__FEATURE_PROTO3_OPTIONAL;
  if (generate(req, &resp, &err)) {
    free_files(&resp); /* protoc ignores them after an error anyway */
    resp.error = (char *)(err.failed || !err.len ? "protoc-gen-nnrpc: out of memory" : err.s);
  }
  size_t n = google__protobuf__compiler__code_generator_response__get_packed_size(&resp);
  out = malloc(n ? n : 1);
  if (!out) {
    fprintf(stderr, "protoc-gen-nnrpc: out of memory\n");
    goto done;
  }
  google__protobuf__compiler__code_generator_response__pack(&resp, out);
  if (fwrite(out, 1, n, stdout) != n || fflush(stdout) != 0) {
    fprintf(stderr, "protoc-gen-nnrpc: cannot write the response to stdout\n");
    goto done;
  }
  rc = 0;
done:
  free_files(&resp);
  free(out);
  nnrpc_sb_free(&err);
  if (req) google__protobuf__compiler__code_generator_request__free_unpacked(req, NULL);
  free(in);
  return rc;
}
