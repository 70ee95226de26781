/* The plugin's front end: turns protoc's CodeGeneratorRequest into a small,
 * plain model of files, services and methods with every C name resolved.
 * Emitters read only this model, never descriptors. */
#ifndef NNRPC_IDL_MODEL_H
#define NNRPC_IDL_MODEL_H

#include <stdbool.h>
#include <stddef.h>

#include "google/protobuf/compiler/plugin.pb-c.h"

typedef struct nnrpc_type_ref {
  const char *full_name; /* "pkg.Outer.Inner" (no leading dot) */
  char *c_type;          /* "Pkg__Outer__Inner" */
  char *lower;           /* "pkg__outer__inner": descriptor is lower + "__descriptor" */
  const char *file;      /* .proto that defines it */
} nnrpc_type_ref;

typedef struct nnrpc_model_method {
  const char *name;      /* "SayHello" */
  char *lower;           /* "say_hello" */
  char *path;            /* "/pkg.Service/SayHello" */
  nnrpc_type_ref input, output;
  bool client_streaming, server_streaming, deprecated;
  const char *comment;   /* leading comment, raw; NULL if none */
} nnrpc_model_method;

typedef struct nnrpc_model_service {
  const char *name;      /* "Greeter" */
  char *full_name;       /* "pkg.Greeter" */
  char *c_type;          /* "Pkg__Greeter" (protoc-c: Pkg__Greeter_Service) */
  char *lower;           /* "pkg__greeter" (protoc-c: pkg__greeter__init, ...) */
  const char *comment;
  size_t n_methods;
  nnrpc_model_method *methods;
} nnrpc_model_service;

typedef struct nnrpc_model_file {
  const char *name;      /* "dir/x.proto" as given to protoc */
  char *base;            /* "dir/x" */
  size_t n_services;
  nnrpc_model_service *services;
  size_t n_includes;     /* .pb-c.h files to include, in order, without duplicates */
  char **includes;
} nnrpc_model_file;

/* Builds the model of one file to generate. On a problem returns NULL and
 * writes a protoc-style message ("x.proto: ...") into err. */
nnrpc_model_file *nnrpc_model_build(const Google__Protobuf__Compiler__CodeGeneratorRequest *req,
                                    const char *file_name, char *err, size_t errlen);
void nnrpc_model_free(nnrpc_model_file *f);
#endif
