/* protoc-c's own options ((pb_c_file) and (pb_c_msg), field 1019 of
 * FileOptions/MessageOptions, from protobuf-c/protobuf-c.proto). They reach
 * us as unknown fields, so they are read straight from the wire bytes. */
#ifndef NNRPC_IDL_PBC_OPTIONS_H
#define NNRPC_IDL_PBC_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>

#include "google/protobuf/descriptor.pb-c.h"

typedef struct nnrpc_pbc_file_opts {
  bool no_generate;          /* protoc-c writes no .pb-c.{c,h} for the file */
  int gen_pack_helpers;      /* -1 not set, else 0/1 */
  bool has_c_package;        /* c_package replaces the package in C names */
  const char *c_package;     /* not NUL-terminated: c_package_len bytes, */
  size_t c_package_len;      /* pointing into the options' unknown fields */
} nnrpc_pbc_file_opts;

/* Fills *out (defaults when o is NULL or has no (pb_c_file)). */
void nnrpc_pbc_file_options(const Google__Protobuf__FileOptions *o, nnrpc_pbc_file_opts *out);

/* (pb_c_msg).gen_pack_helpers: -1 not set, else 0/1. */
int nnrpc_pbc_message_pack_helpers(const Google__Protobuf__MessageOptions *o);

#endif
