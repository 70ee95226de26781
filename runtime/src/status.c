/* Status codes and the thread-local status message buffer. */
#include "internal.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

static const char *const code_names[NNRPC_CODE_COUNT] = {
#define NNRPC_X_(name, num, text) [num] = #name,
    NNRPC_CODE_MAP(NNRPC_X_)
#undef NNRPC_X_
};
static const char *const code_texts[NNRPC_CODE_COUNT] = {
#define NNRPC_X_(name, num, text) [num] = text,
    NNRPC_CODE_MAP(NNRPC_X_)
#undef NNRPC_X_
};

NNRPC_API const char *nnrpc_code_name(int code) {
  return code >= 0 && code < NNRPC_CODE_COUNT ? code_names[code] : "UNKNOWN_CODE";
}

NNRPC_API const char *nnrpc_strerror(int code) {
  return code >= 0 && code < NNRPC_CODE_COUNT ? code_texts[code] : "unknown status code";
}

NNRPC_API int nnrpc_code_from_name(const char *name) {
  if (!name || !*name) return -1;
  if (isdigit((unsigned char)name[0])) {
    char *end;
    long v = strtol(name, &end, 10);
    return *end == 0 && v >= 0 && v < NNRPC_CODE_COUNT ? (int)v : -1;
  }
  for (int i = 0; i < NNRPC_CODE_COUNT; i++)
    if (strcasecmp(name, code_names[i]) == 0) return i;
  return -1;
}

/* The message buffer belongs to the calling thread (like errno), so a status
 * can be returned by value without an ownership rule for its text. */
static pthread_key_t tl_key;
static pthread_once_t tl_once = PTHREAD_ONCE_INIT;
struct tl_buf { size_t cap; char s[]; };
static void tl_init(void) { pthread_key_create(&tl_key, free); }

static char *tl_reserve(size_t n) {
  pthread_once(&tl_once, tl_init);
  struct tl_buf *b = pthread_getspecific(tl_key);
  if (!b || b->cap < n + 1) {
    size_t cap = n + 1 < 256 ? 256 : n + 1;
    struct tl_buf *nb = realloc(b, sizeof *nb + cap);
    if (!nb) return NULL;
    nb->cap = cap;
    b = nb;
    pthread_setspecific(tl_key, b);
  }
  return b->s;
}

nnrpc_status nnrpc__status_n(int code, const char *msg, size_t len) {
  nnrpc_status st = {code, ""};
  if (code == NNRPC_OK && len == 0) return st;
  char *s = tl_reserve(len);
  if (!s) {
    st.message = nnrpc_strerror(code);
    return st;
  }
  memcpy(s, msg, len);
  s[len] = 0;
  st.message = s;
  return st;
}

nnrpc_status nnrpc__status(int code, const char *fmt, ...) {
  char tmp[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  if (n < 0) n = 0;
  if ((size_t)n >= sizeof tmp) n = sizeof tmp - 1;
  return nnrpc__status_n(code, tmp, (size_t)n);
}
