/* The nnrpc wire format (docs/protocol.md is the specification).
 *
 * One nanomsg message = an 8-byte envelope followed by zero or more frames.
 *   envelope: u8 version (1), u8 flags (0), u16 reserved (0),
 *             u32 seq   server->client: sequence number of this message (never 0)
 *                       client->server: ack = seq of the last message received (0: none)
 *   frame:    u8 type, u8 flags, u16 meta_len, u32 payload_len, u64 call_id,
 *             meta_len bytes of nnrpc.wire.CallHeader (protobuf), payload_len bytes.
 * All integers big-endian. Client->server messages are preceded by the 4-byte
 * request id that nanomsg's raw REQ socket requires (top bit set). */
#ifndef NNRPC_WIRE_H
#define NNRPC_WIRE_H

#include <stddef.h>
#include <stdint.h>

#define NNRPC_WIRE_VERSION 1
#define NNRPC_ENV_LEN 8
#define NNRPC_FRAME_HDR_LEN 16
#define NNRPC_REQID_LEN 4

enum nnrpc__frame_type {
  NNRPC_F_CALL = 1,       /* c->s: start a call (meta: method, timeout, headers) */
  NNRPC_F_MESSAGE = 2,    /* both: one message of a stream */
  NNRPC_F_HALF_CLOSE = 3, /* c->s: the client sends no more messages */
  NNRPC_F_STATUS = 4,     /* s->c: the call ends (meta: code, message, trailers) */
  NNRPC_F_CANCEL = 5,     /* c->s: the client abandons the call */
  NNRPC_F_WINDOW = 6,     /* both: stream flow-control credit (payload: u32 bytes) */
  NNRPC_F_PING = 7,       /* c->s: keepalive; payload: u64 call ids to check */
  NNRPC_F_PONG = 8,       /* s->c: answer; payload: the ids the server does not know */
  NNRPC_F_HEADERS = 9,    /* s->c: response headers of a stream */
};

enum nnrpc__frame_flags {
  NNRPC_FF_HAS_MESSAGE = 1, /* CALL/STATUS: the payload is a message */
  NNRPC_FF_END_STREAM = 2,  /* CALL/MESSAGE: the sender half-closes after this */
};

/* Stream flow control (docs/protocol.md, "Flow control"): every sender starts
 * with this much credit, and a message costs its frame, so empty messages
 * count too. */
#define NNRPC_INITIAL_WINDOW 65536u
#define NNRPC_MSG_COST(len) ((size_t)(len) + NNRPC_FRAME_HDR_LEN)

typedef struct nnrpc__frame {
  uint8_t type, flags;
  uint16_t meta_len;
  uint32_t payload_len;
  uint64_t call_id;
  const uint8_t *meta;
  const uint8_t *payload;
} nnrpc__frame;

static inline void nnrpc__put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static inline void nnrpc__put32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}
static inline void nnrpc__put64(uint8_t *p, uint64_t v) {
  nnrpc__put32(p, (uint32_t)(v >> 32)); nnrpc__put32(p + 4, (uint32_t)v);
}
static inline uint16_t nnrpc__get16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static inline uint32_t nnrpc__get32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline uint64_t nnrpc__get64(const uint8_t *p) {
  return (uint64_t)nnrpc__get32(p) << 32 | nnrpc__get32(p + 4);
}

/* Writes an envelope. */
void nnrpc__env_put(uint8_t *p, uint32_t seq);
/* Reads an envelope: 0 ok, -1 too short, -2 unknown version. */
int nnrpc__env_get(const uint8_t *p, size_t len, uint32_t *seq);
/* Writes a frame header (16 bytes). */
void nnrpc__frame_put(uint8_t *p, uint8_t type, uint8_t flags, uint16_t meta_len,
                      uint32_t payload_len, uint64_t call_id);
/* Reads the frame at *off of buf[0..len): 1 = a frame (and *off advanced),
 * 0 = no more frames, -1 = malformed (truncated header or lengths past the end). */
int nnrpc__frame_next(const uint8_t *buf, size_t len, size_t *off, nnrpc__frame *f);

#endif
