#include "strbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Makes room for `extra` more bytes plus the NUL. */
static bool reserve(nnrpc_sb *b, size_t extra) {
  if (b->failed) return false;
  if (b->len + extra + 1 <= b->cap) return true;
  size_t cap = b->cap ? b->cap : 64;
  while (cap < b->len + extra + 1) cap *= 2;
  char *s = realloc(b->s, cap);
  if (!s) {
    b->failed = true;
    return false;
  }
  b->s = s;
  b->cap = cap;
  return true;
}

void nnrpc_sb_putn(nnrpc_sb *b, const char *s, size_t n) {
  if (!reserve(b, n)) return;
  memcpy(b->s + b->len, s, n);
  b->len += n;
  b->s[b->len] = '\0';
}

void nnrpc_sb_puts(nnrpc_sb *b, const char *s) { nnrpc_sb_putn(b, s, strlen(s)); }

void nnrpc_sb_putc(nnrpc_sb *b, char c) { nnrpc_sb_putn(b, &c, 1); }

void nnrpc_sb_vprintf(nnrpc_sb *b, const char *fmt, va_list ap) {
  va_list again;
  va_copy(again, ap);
  int n = vsnprintf(NULL, 0, fmt, ap);
  if (n < 0) {
    b->failed = true;
  } else if (reserve(b, (size_t)n)) {
    vsnprintf(b->s + b->len, (size_t)n + 1, fmt, again);
    b->len += (size_t)n;
  }
  va_end(again);
}

void nnrpc_sb_printf(nnrpc_sb *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  nnrpc_sb_vprintf(b, fmt, ap);
  va_end(ap);
}

const char *nnrpc_sb_str(const nnrpc_sb *b) { return b->s && !b->failed ? b->s : ""; }

char *nnrpc_sb_take(nnrpc_sb *b) {
  char *s = NULL;
  if (!b->failed) {
    s = b->s ? b->s : calloc(1, 1);
    b->s = NULL;
  }
  nnrpc_sb_free(b);
  return s;
}

void nnrpc_sb_clear(nnrpc_sb *b) {
  b->len = 0;
  b->failed = false;
  if (b->s) b->s[0] = '\0';
}

void nnrpc_sb_free(nnrpc_sb *b) {
  free(b->s);
  b->s = NULL;
  b->len = b->cap = 0;
  b->failed = false;
}
