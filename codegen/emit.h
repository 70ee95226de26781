/* The back end: model -> X.nnrpc.h / X.nnrpc.c text. Everything here reads
 * the model only (idl/model.h); names come ready-made from it. */
#ifndef NNRPC_CODEGEN_EMIT_H
#define NNRPC_CODEGEN_EMIT_H

#include <stdbool.h>

#include "model.h"
#include "strbuf.h"

/* Refuses what the emitters cannot turn into correct C: method names that
 * are C keywords, and C names that would be declared twice (ours, for the
 * method kinds that get them, against protoc-c's or each other). 0 if fine;
 * else a protoc-style message "x.proto: ..." in err. */
int nnrpc_check_file(const nnrpc_file *f, nnrpc_sb *err);

/* The NNRPC_API_VERSION of <nnrpc/nnrpc.h> the generated code is written
 * for; its header refuses to compile against any other. */
#define NNRPC_GEN_API_VERSION 2

void nnrpc_emit_header(const nnrpc_file *f, nnrpc_sb *out);
void nnrpc_emit_source(const nnrpc_file *f, nnrpc_sb *out);

/* A .proto comment as a C comment, each line prefixed by `indent`: one line
 * gives "/" "* text *" "/", more give a block. Made inert for C: comment
 * delimiters are split ("* /", "/ *"), and line ends lose backslashes,
 * "??/" and blanks (no line splices); UTF-8 is kept. NULL or blank: nothing.
 * Returns whether it wrote anything. */
bool nnrpc_emit_comment(nnrpc_sb *out, const char *indent, const char *text);

#endif
