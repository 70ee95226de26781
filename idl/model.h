/* The plugin's front end: protoc's CodeGeneratorRequest in, a small plain
 * model out: files -> services -> methods, with every C name already
 * computed (protoc-c's and ours, see naming.h). Emitters read only this. */
#ifndef NNRPC_IDL_MODEL_H
#define NNRPC_IDL_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "google/protobuf/compiler/plugin.pb-c.h"
#include "strbuf.h"

/* Where a construct is in its .proto: 1-based line and column, as protoc
 * reports them; 0 when unknown (protoc sends positions only for the files
 * it asks us to generate). */
typedef struct nnrpc_loc {
  int line, col;
} nnrpc_loc;

/* A message type, named as protoc-c names it. */
typedef struct nnrpc_type {
  const char *full_name;  /* "pkg.Outer.Inner" (proto name, no leading dot) */
  const char *c_name;     /* "Pkg__Outer__Inner" */
  const char *lower;      /* "pkg__outer__inner" */
  const char *descriptor; /* "pkg__outer__inner__descriptor" */
  const char *header;     /* "dir/x.pb-c.h": protoc-c's header declaring it */
  const char *free_fn;    /* "pkg__outer__inner__free_unpacked", NULL when
                             protoc-c emits no pack helpers for the type */
} nnrpc_type;

typedef struct nnrpc_method {
  const char *name;       /* "SayHello" */
  const char *full_name;  /* "helloworld.Greeter.SayHello" */
  const char *path;       /* "/helloworld.Greeter/SayHello" (gRPC's) */
  const char *lower;      /* "say_hello": protoc-c's name, our handler member */
  const char *comment;    /* leading comment, raw from the .proto; NULL if none */
  nnrpc_loc loc;          /* of the rpc */
  bool client_streaming, server_streaming, deprecated;
  nnrpc_type input, output;
  /* our C names (naming.h); NULL where the method's kind has no such
   * function:                 unary  client  server  bidi
   *   call_fn, start_fn         x
   *   finish_fn                 x              x      x
   *   invoke_fn                 x      x       x      x
   *   open_fn                          x       x      x
   *   write_fn, recv_fn                x              x
   *   read_fn, send_fn                         x      x
   *   close_send_fn                                   x
   *   close_and_finish_fn              x                         */
  const char *call_fn, *start_fn, *finish_fn, *invoke_fn;
  const char *open_fn, *write_fn, *read_fn, *close_send_fn, *close_and_finish_fn;
  const char *recv_fn, *send_fn;
} nnrpc_method;

typedef struct nnrpc_service {
  const char *name;       /* "Greeter" */
  const char *full_name;  /* "helloworld.Greeter" */
  const char *c_name;     /* "Helloworld__Greeter" (protoc-c: ..._Service) */
  const char *lower;      /* "helloworld__greeter" (protoc-c: ...__init) */
  const char *comment;
  nnrpc_loc loc;
  size_t n_methods;
  nnrpc_method *methods;
  /* our C names (naming.h) */
  const char *handlers_type, *register_fn, *methods_array, *service_desc;
} nnrpc_service;

/* A file-scope C name that protoc-c declares for a file of the request. */
typedef struct nnrpc_symbol {
  const char *name;
  const char *origin;     /* "message pkg.Foo (dir/x.proto)" */
  const char *file;       /* "dir/x.proto" */
  nnrpc_loc loc;          /* of the construct, when in a file we generate */
  const struct nnrpc_symbol *next;
} nnrpc_symbol;

struct nnrpc_model;

/* A .proto file's schema as the generated code embeds it (for reflection):
 * its FileDescriptorProto from the request, serialized again without
 * source_code_info, so a file has the same bytes whether it is generated
 * or imported. */
typedef struct nnrpc_fdesc {
  const char *proto;      /* "dir/x.proto" */
  const uint8_t *data;
  size_t len;
  size_t n_deps;
  const char *const *deps; /* its imports, in the file's order */
} nnrpc_fdesc;

typedef struct nnrpc_file {
  const char *proto;      /* "dir/x.proto" as protoc names it */
  const char *out_h;      /* "dir/x.nnrpc.h" */
  const char *out_c;      /* "dir/x.nnrpc.c" */
  const char *h_include;  /* "x.nnrpc.h": how the .c includes its header */
  const char *guard;      /* "NNRPC_GENERATED_DIR_X_NNRPC_H" (naming.h) */
  size_t n_includes;      /* protoc-c headers: the file's own (unless it has */
  const char **includes;  /* (pb_c_file).no_generate), then each type's; no repeats */
  size_t n_services;
  nnrpc_service *services;
  size_t n_fdescs;        /* files with services only: the file's own ([0]), */
  nnrpc_fdesc *fdescs;    /* then every file it imports, depth first, each once */
  const struct nnrpc_model *model; /* the whole request, for checks across files */
} nnrpc_file;

typedef struct nnrpc_arena nnrpc_arena;

/* The plugin's parameters (--nnrpc_opt=...; see docs/codegen.md). */
typedef struct nnrpc_params {
  const char *suffix;     /* output names: "dir/x" + suffix + ".h" / ".c"; ".nnrpc" */
} nnrpc_params;

typedef struct nnrpc_model {
  nnrpc_params params;
  size_t n_files;         /* the files to generate, in protoc's order */
  nnrpc_file *files;
  /* protoc-c's names for the files to generate and everything they import,
   * each file once: what the code generated in this run is linked with */
  const nnrpc_symbol *pbc_symbols;
  nnrpc_arena *arena;     /* owns every string and array above */
} nnrpc_model;

/* Builds the model from the request, its parameter string included; 0 on
 * success. On failure writes a protoc-style message ("x.proto:3:1: ...",
 * or "protoc-gen-nnrpc: ..." for a bad parameter) into err and leaves *m
 * empty (nnrpc_model_free is still fine to call). Strings that come
 * straight from the request (names, comments) point into it: keep req
 * alive while using the model. */
int nnrpc_model_build(const Google__Protobuf__Compiler__CodeGeneratorRequest *req, nnrpc_model *m,
                      nnrpc_sb *err);
void nnrpc_model_free(nnrpc_model *m);

/* Starts a protoc-style message: "file:line:col: ", or "file: " when loc
 * is unknown. */
void nnrpc_put_where(nnrpc_sb *err, const char *file, nnrpc_loc loc);

#endif
