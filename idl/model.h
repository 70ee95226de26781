/* The plugin's front end: protoc's CodeGeneratorRequest in, a small plain
 * model out: files -> services -> methods, with every C name already
 * computed (protoc-c's and ours, see naming.h). Emitters read only this. */
#ifndef NNRPC_IDL_MODEL_H
#define NNRPC_IDL_MODEL_H

#include <stdbool.h>
#include <stddef.h>

#include "google/protobuf/compiler/plugin.pb-c.h"
#include "strbuf.h"

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
  size_t n_methods;
  nnrpc_method *methods;
  /* our C names (naming.h) */
  const char *handlers_type, *register_fn, *methods_array, *service_desc;
} nnrpc_service;

/* A file-scope C name that protoc-c declares in a header we include. */
typedef struct nnrpc_symbol {
  const char *name;
  const char *origin;     /* "message pkg.Foo (dir/x.proto)" */
  const struct nnrpc_symbol *next;
} nnrpc_symbol;

typedef struct nnrpc_file {
  const char *proto;      /* "dir/x.proto" as protoc names it */
  const char *out_h;      /* "dir/x.nnrpc.h" */
  const char *out_c;      /* "dir/x.nnrpc.c" */
  const char *h_include;  /* "x.nnrpc.h": how the .c includes its header */
  const char *guard;      /* "NNRPC_GENERATED_DIR_X_NNRPC_H" */
  size_t n_includes;      /* protoc-c headers: the file's own (unless it has */
  const char **includes;  /* (pb_c_file).no_generate), then each type's; no repeats */
  size_t n_services;
  nnrpc_service *services;
  const nnrpc_symbol *pbc_symbols; /* protoc-c's names from the file and its imports */
} nnrpc_file;

typedef struct nnrpc_arena nnrpc_arena;

typedef struct nnrpc_model {
  size_t n_files;         /* the files to generate, in protoc's order */
  nnrpc_file *files;
  nnrpc_arena *arena;     /* owns every string and array above */
} nnrpc_model;

/* Builds the model; 0 on success. On failure writes a protoc-style message
 * ("x.proto: ...") into err and leaves *m empty (nnrpc_model_free is still
 * fine to call). Strings that come straight from the request (names,
 * comments) point into it: keep req alive while using the model. */
int nnrpc_model_build(const Google__Protobuf__Compiler__CodeGeneratorRequest *req, nnrpc_model *m,
                      nnrpc_sb *err);
void nnrpc_model_free(nnrpc_model *m);

#endif
