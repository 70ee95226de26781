/* The client channel: one raw REQ socket, one receive thread that acks every
 * server message, routes frames to calls by call id, and runs the keepalive.
 * Callers send their own frames and wait on their call's condition.
 *
 * Keepalive (docs/protocol.md, "Liveness"): while calls are in flight the
 * receiver pings every keepalive_ms, listing the ids of calls sent before the
 * previous ping. The server answers with the ids it does not know: those
 * calls were lost with a connection or a server restart and fail with
 * UNAVAILABLE. No answer to a ping within keepalive_timeout_ms fails every
 * call in flight with UNAVAILABLE.
 */
#include "callhdr.h"
#include "wire.h"

#include <errno.h>
#include <nanomsg/nn.h>
#include <nanomsg/reqrep.h>
#include <nanomsg/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define MAX_PING_IDS 8192

typedef struct ccall {
  nnrpc__hnode node; /* k1 = call id */
  pthread_cond_t cv;
  bool done, sent;
  uint64_t ping_epoch; /* ping counter when the call was sent */
  int code;            /* set when done by the channel itself (no STATUS frame) */
  const char *why;     /* static text for `code` */
  nnrpc__rxbuf *rx;    /* the message holding this call's STATUS frame */
  nnrpc__frame f;
} ccall;

struct nnrpc_channel {
  nnrpc_channel_opts o;
  int sock, rcvfd, sndfd, wakefd;
  pthread_mutex_t mu;
  pthread_cond_t users_cv;
  nnrpc__hmap calls;
  uint64_t next_id;
  unsigned nsent;  /* calls sent and not done */
  unsigned users;  /* threads inside a call */
  bool closing;
  pthread_t thr;
  atomic_bool stop;
  /* receiver-thread state */
  uint32_t ack_owed;
  uint64_t ping_count;
  int64_t last_ping_us, last_rx_us;
  bool ping_outstanding;
};

static void set_defaults(nnrpc_channel_opts *o) {
  if (!o->default_timeout_ms) o->default_timeout_ms = 30000;
  if (!o->max_send_msg) o->max_send_msg = 4u << 20;
  if (!o->max_recv_msg) o->max_recv_msg = 4u << 20;
  if (!o->max_metadata_bytes) o->max_metadata_bytes = 8192;
  if (!o->max_metadata_count) o->max_metadata_count = 64;
  if (!o->max_in_flight) o->max_in_flight = 10000;
  if (!o->keepalive_ms) o->keepalive_ms = 1000;
  if (!o->keepalive_timeout_ms) o->keepalive_timeout_ms = 5000;
  if (!o->sndbuf) o->sndbuf = 1 << 20;
  if (!o->rcvbuf) o->rcvbuf = 1 << 20;
  if (!o->max_decode_depth) o->max_decode_depth = 64;
  if (!o->max_decode_bytes) o->max_decode_bytes = 64u << 20;
}

/* Sends one message without blocking past deadline_us. Takes ownership of
 * msg (an nn_allocmsg buffer) on success only. Returns 0 or an nnrpc code. */
static int send_msg(nnrpc_channel *ch, void *msg, int64_t deadline_us) {
  for (;;) {
    if (nn_send(ch->sock, &msg, NN_MSG, NN_DONTWAIT) >= 0) return NNRPC_OK;
    if (errno != EAGAIN) return errno == EBADF || errno == ETERM ? NNRPC_CANCELLED : NNRPC_UNAVAILABLE;
    int64_t left = deadline_us == NNRPC_NO_DEADLINE ? 100000 : deadline_us - nnrpc__now_us();
    if (left <= 0) return NNRPC_DEADLINE_EXCEEDED;
    if (atomic_load(&ch->stop)) return NNRPC_CANCELLED;
    struct pollfd p = {ch->sndfd, POLLIN, 0};
    poll(&p, 1, (int)(left > 100000 ? 100 : (left + 999) / 1000));
  }
}

/* Allocates a client->server message: request id, envelope, then `frame_len`
 * bytes for the caller to fill. */
static uint8_t *new_msg(size_t frame_len, uint32_t ack, void **msg) {
  *msg = nn_allocmsg(NNRPC_REQID_LEN + NNRPC_ENV_LEN + frame_len, 0);
  if (!*msg) return NULL;
  uint8_t *p = *msg;
  nnrpc__put32(p, 0x80000000u); /* raw REQ wants a request id with the top bit set */
  nnrpc__env_put(p + NNRPC_REQID_LEN, ack);
  return p + NNRPC_REQID_LEN + NNRPC_ENV_LEN;
}

/* Sends a frame with no meta and a raw payload, best effort (never blocks long). */
static void send_small(nnrpc_channel *ch, uint8_t type, uint64_t id, const void *payload,
                       size_t len) {
  void *msg;
  uint8_t *p = new_msg(NNRPC_FRAME_HDR_LEN + len, 0, &msg);
  if (!p) return;
  nnrpc__frame_put(p, type, 0, 0, (uint32_t)len, id);
  if (len) memcpy(p + NNRPC_FRAME_HDR_LEN, payload, len);
  if (send_msg(ch, msg, nnrpc__now_us() + 200000)) nn_freemsg(msg);
}

/* Completes a call without a STATUS frame. mu held. */
static void complete_locked(nnrpc_channel *ch, ccall *c, int code, const char *why) {
  if (c->done) return;
  nnrpc__hmap_del(&ch->calls, c->node.k1, 0);
  if (c->sent) ch->nsent--;
  c->done = true;
  c->code = code;
  c->why = why;
  pthread_cond_signal(&c->cv);
}

static void fail_all_locked(nnrpc_channel *ch, int code, const char *why, bool only_sent) {
  for (size_t i = 0; i < ch->calls.nb; i++)
    for (nnrpc__hnode *n = ch->calls.b[i], *next; n; n = next) {
      next = n->next;
      if (!only_sent || ((ccall *)n)->sent) complete_locked(ch, (ccall *)n, code, why);
    }
}

/* ---------------------------------------------------------------- receiver thread */

static void on_message(nnrpc_channel *ch, void *body, size_t len) {
  uint32_t seq;
  if (nnrpc__env_get(body, len, &seq)) {
    nn_freemsg(body);
    return;
  }
  nnrpc__rxbuf *rx = nnrpc__rxbuf_new(body, len);
  if (!rx) {
    nn_freemsg(body);
    return;
  }
  ch->ack_owed = seq; /* acked right after routing, below */
  pthread_mutex_lock(&ch->mu);
  ch->last_rx_us = nnrpc__now_us();
  size_t off = NNRPC_ENV_LEN;
  nnrpc__frame f;
  while (nnrpc__frame_next(body, len, &off, &f) == 1) {
    if (f.type == NNRPC_F_STATUS) {
      ccall *c = (ccall *)nnrpc__hmap_get(&ch->calls, f.call_id, 0);
      if (!c || c->done) continue;
      nnrpc__rxbuf_ref(rx);
      c->rx = rx;
      c->f = f;
      complete_locked(ch, c, -1, NULL);
    } else if (f.type == NNRPC_F_PONG) {
      ch->ping_outstanding = false;
      for (size_t i = 0; i + 8 <= f.payload_len; i += 8) {
        ccall *c = (ccall *)nnrpc__hmap_get(&ch->calls, nnrpc__get64(f.payload + i), 0);
        if (c)
          complete_locked(ch, c, NNRPC_UNAVAILABLE,
                          "the server no longer knows this call (connection lost or server restarted)");
      }
    }
  }
  pthread_mutex_unlock(&ch->mu);
  nnrpc__rxbuf_unref(rx);
}

static void send_ack(nnrpc_channel *ch) {
  if (!ch->ack_owed) return;
  void *msg;
  if (!new_msg(0, ch->ack_owed, &msg)) return;
  if (nn_send(ch->sock, &msg, NN_MSG, NN_DONTWAIT) >= 0)
    ch->ack_owed = 0;
  else
    nn_freemsg(msg); /* pipe busy: retried when it is writable */
}

static void keepalive(nnrpc_channel *ch) {
  int64_t now = nnrpc__now_us();
  pthread_mutex_lock(&ch->mu);
  if (ch->nsent == 0) {
    ch->ping_outstanding = false;
    pthread_mutex_unlock(&ch->mu);
    return;
  }
  if (ch->ping_outstanding && ch->last_rx_us < ch->last_ping_us &&
      now - ch->last_ping_us > ch->o.keepalive_timeout_ms * 1000) {
    fail_all_locked(ch, NNRPC_UNAVAILABLE, "no reply from the server within keepalive_timeout_ms",
                    true);
    ch->ping_outstanding = false;
    pthread_mutex_unlock(&ch->mu);
    return;
  }
  if (now - ch->last_ping_us < ch->o.keepalive_ms * 1000) {
    pthread_mutex_unlock(&ch->mu);
    return;
  }
  /* Ask about calls sent before the previous ping: the server must know them. */
  size_t n = 0;
  uint8_t *ids = malloc(MAX_PING_IDS * 8);
  for (size_t i = 0; ids && i < ch->calls.nb && n < MAX_PING_IDS; i++)
    for (nnrpc__hnode *h = ch->calls.b[i]; h && n < MAX_PING_IDS; h = h->next) {
      ccall *c = (ccall *)h;
      if (c->sent && c->ping_epoch < ch->ping_count) nnrpc__put64(ids + 8 * n++, c->node.k1);
    }
  ch->ping_count++;
  if (!ch->ping_outstanding) ch->last_ping_us = now;
  ch->ping_outstanding = true;
  pthread_mutex_unlock(&ch->mu);
  send_small(ch, NNRPC_F_PING, 0, ids, n * 8);
  free(ids);
}

static void *rx_main(void *arg) {
  nnrpc_channel *ch = arg;
  while (!atomic_load(&ch->stop)) {
    struct pollfd p[3] = {{ch->rcvfd, POLLIN, 0}, {ch->wakefd, POLLIN, 0}, {ch->sndfd, POLLIN, 0}};
    int timeout = (int)(ch->o.keepalive_ms < 100 ? ch->o.keepalive_ms : 100);
    poll(p, ch->ack_owed ? 3 : 2, timeout);
    if (p[1].revents) {
      uint64_t v;
      ssize_t r = read(ch->wakefd, &v, sizeof v);
      (void)r;
    }
    for (int i = 0; i < 64; i++) { /* drain what is there, then ack once */
      void *body = NULL;
      int n = nn_recv(ch->sock, &body, NN_MSG, NN_DONTWAIT);
      if (n < 0) break;
      on_message(ch, body, (size_t)n);
      send_ack(ch);
    }
    send_ack(ch);
    keepalive(ch);
  }
  return NULL;
}

/* ---------------------------------------------------------------- open / close */

NNRPC_API int nnrpc_channel_open(nnrpc_channel **out, const char *url,
                                 const nnrpc_channel_opts *opts) {
  if (!out || !url) return NNRPC_INVALID_ARGUMENT;
  *out = NULL;
  nnrpc_channel *ch = calloc(1, sizeof *ch);
  if (!ch) return NNRPC_RESOURCE_EXHAUSTED;
  if (opts) ch->o = *opts;
  set_defaults(&ch->o);
  if (ch->o.max_metadata_bytes > 60000 || ch->o.keepalive_ms < 0 || ch->o.keepalive_timeout_ms < 0) {
    free(ch);
    return NNRPC_INVALID_ARGUMENT;
  }
  ch->wakefd = -1;
  ch->sock = nn_socket(AF_SP_RAW, NN_REQ);
  if (ch->sock < 0) {
    free(ch);
    return NNRPC_INTERNAL;
  }
  size_t lim = ch->o.max_recv_msg * 2 + 65536 + 2 * ch->o.max_metadata_bytes;
  int ilim = lim > INT32_MAX ? INT32_MAX : (int)lim, ivl_max = 2000;
  nn_setsockopt(ch->sock, NN_SOL_SOCKET, NN_RCVMAXSIZE, &ilim, sizeof ilim);
  int nodelay = 1; /* our acks are small messages: Nagle would hold the next call behind them */
  nn_setsockopt(ch->sock, NN_TCP, NN_TCP_NODELAY, &nodelay, sizeof nodelay);
  nn_setsockopt(ch->sock, NN_SOL_SOCKET, NN_SNDBUF, &ch->o.sndbuf, sizeof ch->o.sndbuf);
  nn_setsockopt(ch->sock, NN_SOL_SOCKET, NN_RCVBUF, &ch->o.rcvbuf, sizeof ch->o.rcvbuf);
  nn_setsockopt(ch->sock, NN_SOL_SOCKET, NN_RECONNECT_IVL_MAX, &ivl_max, sizeof ivl_max);
  size_t sz = sizeof(int);
  if (nn_connect(ch->sock, url) < 0) {
    int rc = errno == ENOMEM ? NNRPC_RESOURCE_EXHAUSTED : NNRPC_INVALID_ARGUMENT;
    nn_close(ch->sock);
    free(ch);
    return rc;
  }
  nn_getsockopt(ch->sock, NN_SOL_SOCKET, NN_RCVFD, &ch->rcvfd, &sz);
  sz = sizeof(int);
  nn_getsockopt(ch->sock, NN_SOL_SOCKET, NN_SNDFD, &ch->sndfd, &sz);
  ch->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  pthread_mutex_init(&ch->mu, NULL);
  nnrpc__cond_init(&ch->users_cv);
  ch->next_id = 1;
  atomic_init(&ch->stop, false);
  if (ch->wakefd < 0 || nnrpc__hmap_init(&ch->calls) || pthread_create(&ch->thr, NULL, rx_main, ch)) {
    if (ch->wakefd >= 0) close(ch->wakefd);
    nnrpc__hmap_free(&ch->calls);
    nn_close(ch->sock);
    pthread_mutex_destroy(&ch->mu);
    pthread_cond_destroy(&ch->users_cv);
    free(ch);
    return NNRPC_INTERNAL;
  }
  *out = ch;
  return NNRPC_OK;
}

NNRPC_API void nnrpc_channel_close(nnrpc_channel *ch) {
  if (!ch) return;
  pthread_mutex_lock(&ch->mu);
  ch->closing = true;
  fail_all_locked(ch, NNRPC_CANCELLED, "channel closed", false);
  while (ch->users) pthread_cond_wait(&ch->users_cv, &ch->mu);
  pthread_mutex_unlock(&ch->mu);
  atomic_store(&ch->stop, true);
  uint64_t one = 1;
  ssize_t w = write(ch->wakefd, &one, sizeof one);
  (void)w;
  pthread_join(ch->thr, NULL);
  nn_close(ch->sock);
  close(ch->wakefd);
  nnrpc__hmap_free(&ch->calls);
  pthread_mutex_destroy(&ch->mu);
  pthread_cond_destroy(&ch->users_cv);
  free(ch);
}

/* ---------------------------------------------------------------- unary call */

static nnrpc_status result_of(nnrpc_channel *ch, ccall *c, const nnrpc_method *m,
                              ProtobufCMessage **reply, const nnrpc_call_opts *opts) {
  if (c->code >= 0) return nnrpc__status(c->code, "%s", c->why);
  const nnrpc__frame *f = &c->f;
  nnrpc__arena a;
  nnrpc__arena_init(&a, (size_t)f->meta_len * 8 + 65536);
  Nnrpc__Wire__CallHeader *h = NULL;
  const char *why;
  nnrpc_status st;
  int rc = nnrpc__hdr_decode(f->meta, f->meta_len, &a.pb, ch->o.max_metadata_bytes,
                             ch->o.max_metadata_count, &h, &why);
  if (rc) {
    st = nnrpc__status(rc, "bad reply from server: %s", why);
    goto out;
  }
  if (opts && opts->trailers) {
    nnrpc_metadata_clear(opts->trailers);
    nnrpc__md_from_wire(opts->trailers, h);
  }
  if (h->status != NNRPC_OK) {
    int code = h->status < NNRPC_CODE_COUNT ? (int)h->status : NNRPC_UNKNOWN;
    const char *text = h->message[0] ? h->message : nnrpc_strerror(code);
    st = nnrpc__status_n(code, text, strlen(text));
    goto out;
  }
  if (!(f->flags & NNRPC_FF_HAS_MESSAGE)) {
    st = nnrpc__status(NNRPC_INTERNAL, "server sent OK without a reply message");
    goto out;
  }
  if (f->payload_len > ch->o.max_recv_msg) {
    st = nnrpc__status(NNRPC_RESOURCE_EXHAUSTED, "reply of %u bytes exceeds max_recv_msg (%zu)",
                       f->payload_len, ch->o.max_recv_msg);
    goto out;
  }
  nnrpc__budget b;
  nnrpc__budget_init(&b, ch->o.max_decode_bytes);
  bool over;
  *reply = nnrpc__decode(m->output, f->payload, f->payload_len, ch->o.max_decode_depth, &b.pb,
                         &over, &why);
  if (!*reply)
    st = b.over ? nnrpc__status(NNRPC_RESOURCE_EXHAUSTED, "decoded reply exceeds max_decode_bytes")
                : nnrpc__status(NNRPC_INTERNAL, "cannot decode %s reply: %s", m->output->name, why);
  else
    st = nnrpc__status_n(NNRPC_OK, "", 0);
out:
  nnrpc__arena_free(&a);
  return st;
}

static int64_t deadline_of(const nnrpc_channel *ch, const nnrpc_call_opts *opts) {
  int64_t t = opts && opts->timeout_ms ? opts->timeout_ms : ch->o.default_timeout_ms;
  if (t < 0) return NNRPC_NO_DEADLINE;
  return nnrpc__now_us() + t * 1000;
}

NNRPC_API nnrpc_status nnrpc_unary_call(nnrpc_channel *ch, const nnrpc_method *m,
                                        const ProtobufCMessage *req, ProtobufCMessage **reply,
                                        const nnrpc_call_opts *opts) {
  if (reply) *reply = NULL;
  if (!ch || !m || !req || !reply)
    return nnrpc__status(NNRPC_INVALID_ARGUMENT, "NULL argument to nnrpc_unary_call");
  if (req->descriptor != m->input)
    return nnrpc__status(NNRPC_INVALID_ARGUMENT, "request is a %s, %s takes a %s",
                         req->descriptor->name, m->path, m->input->name);
  if (m->kind != NNRPC_UNARY)
    return nnrpc__status(NNRPC_INVALID_ARGUMENT, "%s is a streaming method", m->path);
  int64_t deadline = deadline_of(ch, opts);
  const nnrpc_metadata *hd = opts ? opts->headers : NULL;
  if (hd && (hd->n > ch->o.max_metadata_count || hd->bytes > ch->o.max_metadata_bytes))
    return nnrpc__status(NNRPC_RESOURCE_EXHAUSTED, "headers exceed the metadata limits");
  size_t size = protobuf_c_message_get_packed_size(req);
  if (size > ch->o.max_send_msg)
    return nnrpc__status(NNRPC_RESOURCE_EXHAUSTED, "request of %zu bytes exceeds max_send_msg (%zu)",
                         size, ch->o.max_send_msg);

  ccall c = {.code = -1};
  pthread_mutex_lock(&ch->mu);
  if (ch->closing) {
    pthread_mutex_unlock(&ch->mu);
    return nnrpc__status(NNRPC_CANCELLED, "channel closed");
  }
  if (ch->calls.n >= ch->o.max_in_flight) {
    pthread_mutex_unlock(&ch->mu);
    return nnrpc__status(NNRPC_RESOURCE_EXHAUSTED, "channel is at max_in_flight (%u calls)",
                         ch->o.max_in_flight);
  }
  ch->users++;
  c.node.k1 = ch->next_id++;
  nnrpc__cond_init(&c.cv);
  nnrpc__hmap_put(&ch->calls, &c.node);
  pthread_mutex_unlock(&ch->mu);

  /* CALL frame: header (method, timeout, headers), then the request. */
  nnrpc_status st;
  int64_t left = deadline == NNRPC_NO_DEADLINE ? 0 : deadline - nnrpc__now_us();
  nnrpc__hdr h;
  void *msg = NULL;
  int rc = NNRPC_OK;
  if (left < 0) left = 1; /* already late: the server will answer DEADLINE_EXCEEDED */
  if (nnrpc__hdr_build(&h, m->path, (uint64_t)left, hd, 0, NULL, ch->o.max_recv_msg)) {
    rc = NNRPC_RESOURCE_EXHAUSTED;
  } else {
    size_t meta = protobuf_c_message_get_packed_size(&h.pb.base);
    uint8_t *p = meta <= UINT16_MAX ? new_msg(NNRPC_FRAME_HDR_LEN + meta + size, 0, &msg) : NULL;
    if (!p) {
      rc = NNRPC_RESOURCE_EXHAUSTED;
    } else {
      nnrpc__frame_put(p, NNRPC_F_CALL, NNRPC_FF_HAS_MESSAGE | NNRPC_FF_END_STREAM,
                       (uint16_t)meta, (uint32_t)size, c.node.k1);
      protobuf_c_message_pack(&h.pb.base, p + NNRPC_FRAME_HDR_LEN);
      protobuf_c_message_pack(req, p + NNRPC_FRAME_HDR_LEN + meta);
    }
    nnrpc__hdr_done(&h);
  }
  if (rc == NNRPC_OK) {
    pthread_mutex_lock(&ch->mu);
    if (!c.done) { /* mark sent before sending: the reply may beat us back */
      c.sent = true;
      c.ping_epoch = ch->ping_count;
      ch->nsent++;
    }
    pthread_mutex_unlock(&ch->mu);
    rc = send_msg(ch, msg, deadline);
    if (rc) nn_freemsg(msg);
  }

  pthread_mutex_lock(&ch->mu);
  if (rc != NNRPC_OK) {
    complete_locked(ch, &c, rc, rc == NNRPC_DEADLINE_EXCEEDED ? "deadline exceeded before the call could be sent (no server?)"
                                : rc == NNRPC_RESOURCE_EXHAUSTED ? "out of memory"
                                                                 : "could not send the call");
  }
  while (!c.done) {
    if (deadline == NNRPC_NO_DEADLINE) {
      pthread_cond_wait(&c.cv, &ch->mu);
      continue;
    }
    struct timespec ts = nnrpc__ts_of_us(deadline);
    if (pthread_cond_timedwait(&c.cv, &ch->mu, &ts) == ETIMEDOUT && !c.done) {
      complete_locked(ch, &c, NNRPC_DEADLINE_EXCEEDED, "deadline exceeded");
      pthread_mutex_unlock(&ch->mu);
      send_small(ch, NNRPC_F_CANCEL, c.node.k1, NULL, 0); /* tell the server to stop */
      pthread_mutex_lock(&ch->mu);
    }
  }
  pthread_mutex_unlock(&ch->mu);

  st = result_of(ch, &c, m, reply, opts);
  nnrpc__rxbuf_unref(c.rx);
  pthread_cond_destroy(&c.cv);
  pthread_mutex_lock(&ch->mu);
  if (--ch->users == 0 && ch->closing) pthread_cond_broadcast(&ch->users_cv);
  pthread_mutex_unlock(&ch->mu);
  return st;
}
