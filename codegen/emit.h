/* The back end: model -> X.nnrpc.h / X.nnrpc.c text. Everything here reads
 * the model only (idl/model.h); names come ready-made from it. */
#ifndef NNRPC_CODEGEN_EMIT_H
#define NNRPC_CODEGEN_EMIT_H

#include <stdbool.h>

#include "model.h"
#include "strbuf.h"

/* Refuses what the emitters cannot turn into correct C: method names that
 * are reserved in C (naming.h), and C names that would be declared twice:
 * ours (for the method kinds that get them) for every file of the run,
 * against each other and against protoc-c's for those files and their
 * imports. 0 if fine; else a protoc-style message "x.proto:7:3: ..." in err. */
int nnrpc_check_file(const nnrpc_file *f, nnrpc_sb *err);

/* The NNRPC_API_VERSION of <nnrpc/nnrpc.h> the generated code is written
 * for; its header refuses to compile against any other. */
#define NNRPC_GEN_API_VERSION 3

void nnrpc_emit_header(const nnrpc_file *f, nnrpc_sb *out);
void nnrpc_emit_source(const nnrpc_file *f, nnrpc_sb *out);

/* The generated code's line width: longer declarations, definitions and
 * calls break after the commas of their lists, as in hand-written C. */
#define NNRPC_GEN_WIDTH 100

/* Rewraps the text of out from offset `from` on: every code line longer
 * than `width` is broken after ", " inside its parentheses or braces, each
 * continuation aligned just inside the bracket. Comments, preprocessor
 * lines and what fits are left alone. */
void nnrpc_wrap_lines(nnrpc_sb *out, size_t from, size_t width);

/* A .proto comment as a C comment, each line prefixed by `indent`: one line
 * gives "/" "* text *" "/", more give a block. Made inert for C: comment
 * delimiters are split ("* /", "/ *"), and line ends lose backslashes,
 * "??/" and blanks (no line splices); UTF-8 is kept, but bytes that are not
 * UTF-8 and bidirectional controls (gcc's -Wbidi-chars) become U+FFFD.
 * NULL or blank: nothing. Returns whether it wrote anything. */
bool nnrpc_emit_comment(nnrpc_sb *out, const char *indent, const char *text);

#endif
