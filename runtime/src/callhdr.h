/* The variable part of frame headers (nnrpc.wire.CallHeader): build, pack,
 * decode with limits. Shared by the channel and the server. */
#ifndef NNRPC_CALLHDR_H
#define NNRPC_CALLHDR_H

#include "internal.h"
#include "nnrpc/wire.pb-c.h"

typedef struct nnrpc__hdr {
  Nnrpc__Wire__CallHeader pb;
  Nnrpc__Wire__Metadata *mdv;
  Nnrpc__Wire__Metadata **mdp;
} nnrpc__hdr;

/* Fills h from the arguments (strings are borrowed, not copied). NULL or 0
 * means absent. Returns 0, or -1 when out of memory. */
int nnrpc__hdr_build(nnrpc__hdr *h, const char *method, uint64_t timeout_us,
                     const nnrpc_metadata *md, uint32_t status, const char *message,
                     uint64_t max_reply);
/* The same with two metadata lists, md0's entries first (channel-wide
 * headers, then the call's). */
int nnrpc__hdr_build2(nnrpc__hdr *h, const char *method, uint64_t timeout_us,
                      const nnrpc_metadata *md0, const nnrpc_metadata *md, uint32_t status,
                      const char *message, uint64_t max_reply);
void nnrpc__hdr_done(nnrpc__hdr *h);

/* Decodes the frame's meta bytes (allocating from `a`) and checks the
 * metadata limits. Returns NNRPC_OK or a code with *why set (static text). */
int nnrpc__hdr_decode(const uint8_t *p, size_t len, ProtobufCAllocator *a, size_t max_md_bytes,
                      size_t max_md_count, Nnrpc__Wire__CallHeader **out, const char **why);
/* Appends the decoded metadata entries to dst. */
int nnrpc__md_from_wire(nnrpc_metadata *dst, const Nnrpc__Wire__CallHeader *h);
#endif
