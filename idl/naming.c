#include "naming.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

static char *alloc_or_die(size_t n) {
  char *p = malloc(n);
  if (!p) abort();
  return p;
}

char *nnrpc_camel_to_lower(const char *name) {
  char *r = alloc_or_die(2 * strlen(name) + 1), *o = r;
  int was_upper = 1; /* no underscore before a leading capital */
  for (const char *p = name; *p; p++) {
    int up = isupper((unsigned char)*p) != 0;
    if (up && !was_upper) *o++ = '_';
    *o++ = up ? (char)tolower((unsigned char)*p) : *p;
    was_upper = up;
  }
  *o = 0;
  return r;
}

static char *camel_to_upper(const char *name) {
  char *r = alloc_or_die(2 * strlen(name) + 1), *o = r;
  int was_upper = 1;
  for (const char *p = name; *p; p++) {
    int up = isupper((unsigned char)*p) != 0;
    if (up && !was_upper) *o++ = '_';
    *o++ = (char)toupper((unsigned char)*p);
    was_upper = up;
  }
  *o = 0;
  return r;
}

char *nnrpc_to_camel(const char *name) {
  char *r = alloc_or_die(strlen(name) + 1), *o = r;
  int next_upper = 1;
  for (const char *p = name; *p; p++) {
    if (*p == '_') {
      next_upper = 1;
    } else if (next_upper) {
      *o++ = (char)toupper((unsigned char)*p);
      next_upper = 0;
    } else {
      *o++ = *p;
    }
  }
  *o = 0;
  return r;
}

/* Joins the dot-separated pieces of full_name, each converted by conv, with "__". */
static char *join_pieces(const char *full_name, char *(*conv)(const char *)) {
  size_t cap = 3 * strlen(full_name) + 8, n = 0;
  char *r = alloc_or_die(cap);
  r[0] = 0;
  const char *p = full_name;
  while (*p) {
    const char *dot = strchr(p, '.');
    size_t len = dot ? (size_t)(dot - p) : strlen(p);
    if (len) {
      char *piece = alloc_or_die(len + 1);
      memcpy(piece, p, len);
      piece[len] = 0;
      char *c = conv(piece);
      size_t cl = strlen(c);
      if (n + cl + 3 > cap) {
        cap = (n + cl + 3) * 2;
        r = realloc(r, cap);
        if (!r) abort();
      }
      if (n) {
        memcpy(r + n, "__", 2);
        n += 2;
      }
      memcpy(r + n, c, cl + 1);
      n += cl;
      free(c);
      free(piece);
    }
    if (!dot) break;
    p = dot + 1;
  }
  return r;
}

char *nnrpc_full_name_to_c(const char *full_name) { return join_pieces(full_name, nnrpc_to_camel); }
char *nnrpc_full_name_to_lower(const char *full_name) { return join_pieces(full_name, nnrpc_camel_to_lower); }
char *nnrpc_full_name_to_upper(const char *full_name) { return join_pieces(full_name, camel_to_upper); }

char *nnrpc_strip_proto(const char *file_name) {
  size_t n = strlen(file_name);
  char *r = alloc_or_die(n + 1);
  memcpy(r, file_name, n + 1);
  if (n > 6 && strcmp(r + n - 6, ".proto") == 0) r[n - 6] = 0;
  return r;
}
