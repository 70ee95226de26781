/* A tiny growable string, used for names and for the generated text.
 * Out of memory is sticky: the buffer stops growing, `failed` is set, and
 * nnrpc_sb_take() returns NULL, so callers check once at the end. */
#ifndef NNRPC_IDL_STRBUF_H
#define NNRPC_IDL_STRBUF_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#if defined(__GNUC__)
#define NNRPC_SB_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define NNRPC_SB_PRINTF(a, b)
#endif

typedef struct nnrpc_sb {
  char *s;      /* NUL-terminated once anything was added; may be NULL before */
  size_t len;
  size_t cap;
  bool failed;
} nnrpc_sb;

#define NNRPC_SB_INIT { NULL, 0, 0, false }

void nnrpc_sb_putn(nnrpc_sb *b, const char *s, size_t n);
void nnrpc_sb_puts(nnrpc_sb *b, const char *s);
void nnrpc_sb_putc(nnrpc_sb *b, char c);
void nnrpc_sb_printf(nnrpc_sb *b, const char *fmt, ...) NNRPC_SB_PRINTF(2, 3);
void nnrpc_sb_vprintf(nnrpc_sb *b, const char *fmt, va_list ap) NNRPC_SB_PRINTF(2, 0);
/* The text so far ("" when empty); owned by b. */
const char *nnrpc_sb_str(const nnrpc_sb *b);
/* Hands the text over (caller frees) and empties b; NULL if out of memory. */
char *nnrpc_sb_take(nnrpc_sb *b);
/* Empties b but keeps its memory and clears `failed`. */
void nnrpc_sb_clear(nnrpc_sb *b);
void nnrpc_sb_free(nnrpc_sb *b);

#endif
