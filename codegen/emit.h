/* Emitters: model -> X.nnrpc.h / X.nnrpc.c text. */
#ifndef NNRPC_CODEGEN_EMIT_H
#define NNRPC_CODEGEN_EMIT_H

#include <stddef.h>

#include "model.h"

typedef struct nnrpc_buf {
  char *s;
  size_t n, cap;
} nnrpc_buf;
void nnrpc_buf_puts(nnrpc_buf *b, const char *s);
void nnrpc_buf_printf(nnrpc_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Checks what the emitters would produce for problems (unsupported
 * constructs, symbol clashes). 0 ok; else writes "x.proto: ..." into err. */
int nnrpc_emit_check(const nnrpc_model_file *f, char *err, size_t errlen);
void nnrpc_emit_header(const nnrpc_model_file *f, nnrpc_buf *out);
void nnrpc_emit_source(const nnrpc_model_file *f, nnrpc_buf *out);
#endif
