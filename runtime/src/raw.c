/* Generic calls with messages as encoded bytes (nnrpc.h, "generic calls").
 *
 * They go through the typed calls unchanged, with one message type that
 * has no fields: protobuf-c keeps every field of such a message as an
 * unknown field and packs unknown fields back verbatim, so bytes in give
 * the same bytes on the wire, and a reply decodes into a message that
 * packs back into the reply's bytes. The channel's limits, deadlines and
 * well-formedness checks apply as they are. */
#include "internal.h"

#include <stdlib.h>

static void opaque_init(ProtobufCMessage *m);

static const ProtobufCMessageDescriptor opaque = {
    PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC,
    "raw", /* in the channel's messages: "cannot decode raw reply: ..." */
    "raw",
    "nnrpc_raw",
    "",
    sizeof(ProtobufCMessage),
    0, NULL, NULL, /* no fields: everything is an unknown field */
    0, NULL,
    opaque_init,
    NULL, NULL, NULL,
};

static void opaque_init(ProtobufCMessage *m) {
  memset(m, 0, sizeof *m);
  m->descriptor = &opaque;
}

/* Bytes -> message; NULL when they are not protobuf (or out of memory). */
static ProtobufCMessage *wrap(const uint8_t *p, size_t len) {
  static const uint8_t none[1];
  return protobuf_c_message_unpack(&opaque, NULL, len, p && len ? p : none);
}

/* Message -> malloc'ed bytes (never NULL on success). */
static int unwrap(const ProtobufCMessage *m, uint8_t **out, size_t *len) {
  size_t n = protobuf_c_message_get_packed_size(m);
  uint8_t *b = malloc(n ? n : 1);
  if (!b) return NNRPC_RESOURCE_EXHAUSTED;
  protobuf_c_message_pack(m, b);
  *out = b;
  *len = n;
  return NNRPC_OK;
}

static nnrpc_status not_protobuf(const char *what) {
  return nnrpc__status(NNRPC_INVALID_ARGUMENT, "%s is not a well-formed protobuf message", what);
}

NNRPC_API nnrpc_status nnrpc_unary_call_raw(nnrpc_channel *ch, const char *path, const uint8_t *req,
                                            size_t req_len, uint8_t **reply, size_t *reply_len,
                                            const nnrpc_call_opts *opts) {
  if (reply) *reply = NULL;
  if (reply_len) *reply_len = 0;
  if (!ch || !path || !reply || !reply_len || (!req && req_len))
    return nnrpc__status(NNRPC_INVALID_ARGUMENT, "NULL argument");
  ProtobufCMessage *in = wrap(req, req_len), *out = NULL;
  if (!in) return not_protobuf("the request");
  const nnrpc_method m = {path, &opaque, &opaque, NNRPC_UNARY, NULL};
  nnrpc_status st = nnrpc_unary_call(ch, &m, in, &out, opts);
  protobuf_c_message_free_unpacked(in, NULL);
  if (st.code == NNRPC_OK) {
    int rc = unwrap(out, reply, reply_len);
    if (rc) st = nnrpc__status(rc, "out of memory for the reply");
  }
  if (out) protobuf_c_message_free_unpacked(out, NULL);
  return st;
}

/* ---------------------------------------------------------------- streams */

/* The stream's method lives as long as the stream: the channel keeps a
 * pointer to it. Found again by the stream handle at finish. */
typedef struct raw_stream {
  struct raw_stream *next;
  nnrpc_stream *st;
  nnrpc_method m;
  char path[];
} raw_stream;

static pthread_mutex_t streams_mu = PTHREAD_MUTEX_INITIALIZER;
static raw_stream *streams;

NNRPC_API nnrpc_status nnrpc_stream_open_raw(nnrpc_channel *ch, const char *path, nnrpc_method_kind kind,
                                             const uint8_t *req, size_t req_len,
                                             const nnrpc_call_opts *opts, nnrpc_stream **out) {
  if (out) *out = NULL;
  if (!ch || !path || !out || (!req && req_len))
    return nnrpc__status(NNRPC_INVALID_ARGUMENT, "NULL argument");
  if (kind != NNRPC_CLIENT_STREAMING && kind != NNRPC_SERVER_STREAMING && kind != NNRPC_BIDI_STREAMING)
    return nnrpc__status(NNRPC_INVALID_ARGUMENT, "not a streaming kind of method");
  if (kind != NNRPC_SERVER_STREAMING && req)
    return nnrpc__status(NNRPC_INVALID_ARGUMENT, "only a server-streaming call takes a request here");
  ProtobufCMessage *in = NULL;
  if (kind == NNRPC_SERVER_STREAMING && !(in = wrap(req, req_len))) return not_protobuf("the request");
  size_t n = strlen(path) + 1;
  raw_stream *rs = malloc(sizeof *rs + n);
  if (!rs) {
    if (in) protobuf_c_message_free_unpacked(in, NULL);
    return nnrpc__status(NNRPC_RESOURCE_EXHAUSTED, "out of memory");
  }
  memcpy(rs->path, path, n);
  rs->m = (nnrpc_method){rs->path, &opaque, &opaque, kind, NULL};
  nnrpc_status st = nnrpc_stream_open(ch, &rs->m, in, opts, &rs->st);
  if (in) protobuf_c_message_free_unpacked(in, NULL);
  if (st.code != NNRPC_OK) {
    free(rs);
    return st;
  }
  pthread_mutex_lock(&streams_mu);
  rs->next = streams;
  streams = rs;
  pthread_mutex_unlock(&streams_mu);
  *out = rs->st;
  return st;
}

NNRPC_API int nnrpc_stream_write_raw(nnrpc_stream *st, const uint8_t *msg, size_t len) {
  if (!st || (!msg && len)) return NNRPC_INVALID_ARGUMENT;
  ProtobufCMessage *m = wrap(msg, len);
  if (!m) return NNRPC_INVALID_ARGUMENT;
  int rc = nnrpc_stream_write(st, m);
  protobuf_c_message_free_unpacked(m, NULL);
  return rc;
}

NNRPC_API int nnrpc_stream_read_raw(nnrpc_stream *st, uint8_t **msg, size_t *len) {
  if (msg) *msg = NULL;
  if (len) *len = 0;
  if (!msg || !len) return 0;
  ProtobufCMessage *m = NULL;
  if (nnrpc_stream_read(st, &m) != 1) return 0;
  int rc = unwrap(m, msg, len);
  protobuf_c_message_free_unpacked(m, NULL);
  if (rc) { /* out of memory: the stream ends here (finish says CANCELLED) */
    nnrpc_stream_cancel(st);
    return 0;
  }
  return 1;
}

NNRPC_API nnrpc_status nnrpc_stream_finish_raw(nnrpc_stream *st, uint8_t **reply, size_t *reply_len,
                                               nnrpc_metadata *trailers) {
  if (reply) *reply = NULL;
  if (reply_len) *reply_len = 0;
  raw_stream *rs = NULL;
  pthread_mutex_lock(&streams_mu);
  for (raw_stream **pp = &streams; *pp; pp = &(*pp)->next)
    if ((*pp)->st == st) {
      rs = *pp;
      *pp = rs->next;
      break;
    }
  pthread_mutex_unlock(&streams_mu);
  ProtobufCMessage *out = NULL;
  nnrpc_status res = nnrpc_stream_finish(st, reply && reply_len ? &out : NULL, trailers);
  free(rs); /* the stream no longer refers to its method */
  if (out) {
    int rc = res.code == NNRPC_OK ? unwrap(out, reply, reply_len) : NNRPC_OK;
    if (rc) res = nnrpc__status(rc, "out of memory for the reply");
    protobuf_c_message_free_unpacked(out, NULL);
  }
  return res;
}
