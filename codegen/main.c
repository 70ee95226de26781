/* protoc-gen-nnrpc: protoc runs it with a CodeGeneratorRequest on stdin and
 * reads a CodeGeneratorResponse from stdout. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "emit.h"
#include "model.h"

typedef Google__Protobuf__Compiler__CodeGeneratorResponse Response;
typedef Google__Protobuf__Compiler__CodeGeneratorResponse__File OutFile;

static uint8_t *read_all(FILE *in, size_t *len) {
  size_t cap = 1 << 16, n = 0;
  uint8_t *buf = malloc(cap);
  while (buf) {
    n += fread(buf + n, 1, cap - n, in);
    if (n < cap) break;
    cap *= 2;
    uint8_t *nb = realloc(buf, cap);
    if (!nb) free(buf);
    buf = nb;
  }
  *len = n;
  return buf;
}

static OutFile *new_file(const char *base, const char *suffix, char *content) {
  OutFile *o = malloc(sizeof *o);
  if (!o) abort();
  google__protobuf__compiler__code_generator_response__file__init(o);
  o->name = malloc(strlen(base) + strlen(suffix) + 1);
  if (!o->name) abort();
  sprintf(o->name, "%s%s", base, suffix);
  o->content = content;
  return o;
}

int main(int argc, char **argv) {
  (void)argv;
  if (argc > 1) {
    fprintf(stderr, "protoc-gen-nnrpc: a protoc plugin; run it through protoc --nnrpc_out=DIR\n");
    return 2;
  }
  size_t len;
  uint8_t *in = read_all(stdin, &len);
  if (!in) return 1;
  Google__Protobuf__Compiler__CodeGeneratorRequest *req =
      google__protobuf__compiler__code_generator_request__unpack(NULL, len, in);
  free(in);
  if (!req) {
    fprintf(stderr, "protoc-gen-nnrpc: cannot decode the CodeGeneratorRequest on stdin\n");
    return 1;
  }
  Response resp = GOOGLE__PROTOBUF__COMPILER__CODE_GENERATOR_RESPONSE__INIT;
  char err[1024] = "";
  if (req->parameter && *req->parameter) {
    snprintf(err, sizeof err, "protoc-gen-nnrpc: unknown parameter \"%s\" (it takes none)", req->parameter);
  }
  OutFile **files = calloc(2 * req->n_file_to_generate + 1, sizeof *files);
  size_t nfiles = 0;
  for (size_t i = 0; i < req->n_file_to_generate && !*err; i++) {
    nnrpc_model_file *m = nnrpc_model_build(req, req->file_to_generate[i], err, sizeof err);
    if (!m) break;
    if (m->n_services && nnrpc_emit_check(m, err, sizeof err) == 0) {
      nnrpc_buf h = {0}, c = {0};
      nnrpc_emit_header(m, &h);
      nnrpc_emit_source(m, &c);
      files[nfiles++] = new_file(m->base, ".nnrpc.h", h.s);
      files[nfiles++] = new_file(m->base, ".nnrpc.c", c.s);
    }
    nnrpc_model_free(m);
  }
  if (*err) {
    resp.error = err;
  } else {
    resp.n_file = nfiles;
    resp.file = files;
  }
  size_t outlen = google__protobuf__compiler__code_generator_response__get_packed_size(&resp);
  uint8_t *out = malloc(outlen ? outlen : 1);
  google__protobuf__compiler__code_generator_response__pack(&resp, out);
  int rc = fwrite(out, 1, outlen, stdout) == outlen ? 0 : 1;
  free(out);
  for (size_t i = 0; i < nfiles; i++) {
    free(files[i]->name);
    free(files[i]->content);
    free(files[i]);
  }
  free(files);
  google__protobuf__compiler__code_generator_request__free_unpacked(req, NULL);
  return rc;
}
