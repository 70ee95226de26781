/* Metadata: an ordered list of (key, value) pairs. */
#include "internal.h"

#include <stdlib.h>

NNRPC_API nnrpc_metadata *nnrpc_metadata_new(void) { return calloc(1, sizeof(nnrpc_metadata)); }

NNRPC_API void nnrpc_metadata_clear(nnrpc_metadata *md) {
  if (!md) return;
  for (size_t i = 0; i < md->n; i++) {
    free(md->e[i].key);
    free(md->e[i].value);
  }
  md->n = 0;
  md->bytes = 0;
}

NNRPC_API void nnrpc_metadata_free(nnrpc_metadata *md) {
  if (!md) return;
  nnrpc_metadata_clear(md);
  free(md->e);
  free(md);
}

/* Keys follow gRPC's rule for header names: lowercase, digits, '-', '_', '.'. */
bool nnrpc__md_key_valid(const char *key, size_t len) {
  if (len == 0 || len > 255) return false;
  for (size_t i = 0; i < len; i++) {
    char c = key[i];
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.'))
      return false;
  }
  return true;
}

NNRPC_API int nnrpc_metadata_add(nnrpc_metadata *md, const char *key, const void *value,
                                 size_t len) {
  if (!md || !key || (!value && len)) return NNRPC_INVALID_ARGUMENT;
  size_t klen = strlen(key);
  if (!nnrpc__md_key_valid(key, klen)) return NNRPC_INVALID_ARGUMENT;
  if (md->n == md->cap) {
    size_t cap = md->cap ? md->cap * 2 : 4;
    void *e = realloc(md->e, cap * sizeof *md->e);
    if (!e) return NNRPC_RESOURCE_EXHAUSTED;
    md->e = e;
    md->cap = cap;
  }
  char *k = malloc(klen + 1), *v = malloc(len + 1);
  if (!k || !v) {
    free(k);
    free(v);
    return NNRPC_RESOURCE_EXHAUSTED;
  }
  memcpy(k, key, klen + 1);
  if (len) memcpy(v, value, len);
  v[len] = 0;
  md->e[md->n++] = (struct nnrpc__md_entry){k, v, len};
  md->bytes += klen + len;
  return NNRPC_OK;
}

NNRPC_API int nnrpc_metadata_add_str(nnrpc_metadata *md, const char *key, const char *value) {
  return nnrpc_metadata_add(md, key, value, value ? strlen(value) : 0);
}

NNRPC_API size_t nnrpc_metadata_count(const nnrpc_metadata *md) { return md ? md->n : 0; }

NNRPC_API int nnrpc_metadata_at(const nnrpc_metadata *md, size_t i, const char **key,
                                const void **value, size_t *len) {
  if (!md || i >= md->n) return NNRPC_OUT_OF_RANGE;
  if (key) *key = md->e[i].key;
  if (value) *value = md->e[i].value;
  if (len) *len = md->e[i].len;
  return NNRPC_OK;
}

NNRPC_API const char *nnrpc_metadata_get(const nnrpc_metadata *md, const char *key, size_t *len) {
  if (!md || !key) return NULL;
  for (size_t i = 0; i < md->n; i++)
    if (strcmp(md->e[i].key, key) == 0) {
      if (len) *len = md->e[i].len;
      return md->e[i].value;
    }
  return NULL;
}
