/* Envelope and frame encoding (see wire.h and docs/protocol.md). */
#include "wire.h"

void nnrpc__env_put(uint8_t *p, uint32_t seq) {
  p[0] = NNRPC_WIRE_VERSION;
  p[1] = 0;
  p[2] = p[3] = 0;
  nnrpc__put32(p + 4, seq);
}

int nnrpc__env_get(const uint8_t *p, size_t len, uint32_t *seq) {
  if (len < NNRPC_ENV_LEN) return -1;
  if (p[0] != NNRPC_WIRE_VERSION) return -2;
  *seq = nnrpc__get32(p + 4);
  return 0;
}

void nnrpc__frame_put(uint8_t *p, uint8_t type, uint8_t flags, uint16_t meta_len,
                      uint32_t payload_len, uint64_t call_id) {
  p[0] = type;
  p[1] = flags;
  nnrpc__put16(p + 2, meta_len);
  nnrpc__put32(p + 4, payload_len);
  nnrpc__put64(p + 8, call_id);
}

int nnrpc__frame_next(const uint8_t *buf, size_t len, size_t *off, nnrpc__frame *f) {
  size_t o = *off;
  if (o == len) return 0;
  if (o > len || len - o < NNRPC_FRAME_HDR_LEN) return -1;
  const uint8_t *p = buf + o;
  f->type = p[0];
  f->flags = p[1];
  f->meta_len = nnrpc__get16(p + 2);
  f->payload_len = nnrpc__get32(p + 4);
  f->call_id = nnrpc__get64(p + 8);
  size_t rest = len - o - NNRPC_FRAME_HDR_LEN;
  /* Compare without adding, so huge claimed lengths cannot wrap. */
  if (f->meta_len > rest || f->payload_len > rest - f->meta_len) return -1;
  f->meta = p + NNRPC_FRAME_HDR_LEN;
  f->payload = f->meta + f->meta_len;
  *off = o + NNRPC_FRAME_HDR_LEN + f->meta_len + f->payload_len;
  return 1;
}
