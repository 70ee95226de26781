#include "callhdr.h"

#include <stdlib.h>

int nnrpc__hdr_build(nnrpc__hdr *h, const char *method, uint64_t timeout_us,
                     const nnrpc_metadata *md, uint32_t status, const char *message,
                     uint64_t max_reply) {
  return nnrpc__hdr_build2(h, method, timeout_us, NULL, md, status, message, max_reply);
}

int nnrpc__hdr_build2(nnrpc__hdr *h, const char *method, uint64_t timeout_us,
                      const nnrpc_metadata *md0, const nnrpc_metadata *md, uint32_t status,
                      const char *message, uint64_t max_reply) {
  nnrpc__wire__call_header__init(&h->pb);
  h->mdv = NULL;
  h->mdp = NULL;
  if (method) h->pb.method = (char *)method;
  if (message) h->pb.message = (char *)message;
  h->pb.timeout_us = timeout_us;
  h->pb.status = status;
  h->pb.max_reply_bytes = max_reply;
  size_t n0 = md0 ? md0->n : 0, n = n0 + (md ? md->n : 0);
  if (n) {
    h->mdv = malloc(n * sizeof *h->mdv);
    h->mdp = malloc(n * sizeof *h->mdp);
    if (!h->mdv || !h->mdp) {
      nnrpc__hdr_done(h);
      return -1;
    }
    for (size_t i = 0; i < n; i++) {
      const struct nnrpc__md_entry *e = i < n0 ? &md0->e[i] : &md->e[i - n0];
      nnrpc__wire__metadata__init(&h->mdv[i]);
      h->mdv[i].key = e->key;
      h->mdv[i].value.data = (uint8_t *)e->value;
      h->mdv[i].value.len = e->len;
      h->mdp[i] = &h->mdv[i];
    }
    h->pb.n_metadata = n;
    h->pb.metadata = h->mdp;
  }
  return 0;
}

void nnrpc__hdr_done(nnrpc__hdr *h) {
  free(h->mdv);
  free(h->mdp);
  h->mdv = NULL;
  h->mdp = NULL;
}

int nnrpc__hdr_decode(const uint8_t *p, size_t len, ProtobufCAllocator *a, size_t max_md_bytes,
                      size_t max_md_count, Nnrpc__Wire__CallHeader **out, const char **why) {
  bool over;
  Nnrpc__Wire__CallHeader *h = (Nnrpc__Wire__CallHeader *)nnrpc__decode(
      &nnrpc__wire__call_header__descriptor, p, len, 4, a, &over, why);
  *out = NULL;
  if (!h) {
    *why = "malformed call header";
    return NNRPC_INTERNAL;
  }
  if (h->n_metadata > max_md_count) {
    *why = "too many metadata entries";
    return NNRPC_RESOURCE_EXHAUSTED;
  }
  size_t bytes = 0;
  for (size_t i = 0; i < h->n_metadata; i++) {
    const char *k = h->metadata[i]->key;
    size_t kl = strlen(k);
    if (!nnrpc__md_key_valid(k, kl)) {
      *why = "invalid metadata key";
      return NNRPC_INTERNAL;
    }
    bytes += kl + h->metadata[i]->value.len;
  }
  if (bytes > max_md_bytes) {
    *why = "metadata larger than the metadata size limit";
    return NNRPC_RESOURCE_EXHAUSTED;
  }
  *out = h;
  return NNRPC_OK;
}

int nnrpc__md_from_wire(nnrpc_metadata *dst, const Nnrpc__Wire__CallHeader *h) {
  for (size_t i = 0; i < h->n_metadata; i++) {
    int rc = nnrpc_metadata_add(dst, h->metadata[i]->key, h->metadata[i]->value.data,
                                h->metadata[i]->value.len);
    if (rc) return rc;
  }
  return NNRPC_OK;
}
