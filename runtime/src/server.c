/* The server: one raw REP socket bound to every URL, a leader/follower
 * thread pool, and the send discipline that keeps nanomsg's raw REP from
 * dropping replies (docs/protocol.md, "Send window").
 *
 * Threads (docs/design.md): `workers + 1` pool threads. One, the leader,
 * receives; when a message brings unary calls and another thread is idle,
 * the leader hands the socket to it and runs the first call itself, so a call
 * reaches its handler without a thread switch. With no idle thread the calls
 * queue and the leader keeps receiving: control frames (acks, pings, cancels)
 * are always read, even while every worker is busy.
 *
 * The send discipline:
 *
 *   - at most one unacknowledged message per connection; the client acks each
 *     message as soon as its receiver has it, so when the ack arrives the
 *     connection's previous write has completed and the pipe is writable;
 *   - frames that wait for the window are coalesced into one message;
 *   - nn_sendmsg is called under send_mu, so nanomsg finishes each send
 *     (inproc delivers synchronously inside it) before the next starts.
 */
#include "callhdr.h"
#include "wire.h"

#include <errno.h>
#include <fcntl.h>
#include <nanomsg/nn.h>
#include <nanomsg/reqrep.h>
#include <nanomsg/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define BT_MAX 64
#define TICK_MS 50
/* A client that sends and never acks must not grow the server's memory:
 * answers the server owes on its own account (STATUS of refused calls,
 * PONGs) wait in a connection's queue up to this many bytes, then are
 * dropped; and STATUS frames of finished calls still queued count against
 * max_concurrent_calls for the connection's new calls. A client that reads
 * never comes near either. */
#define MAX_QUEUED_ANSWERS (1u << 20)
enum { ACCT_NONE, ACCT_ANSWER, ACCT_STATUS };

typedef struct outframe {
  struct outframe *next;
  void *msg; /* nn_allocmsg'ed: NNRPC_ENV_LEN reserved bytes, then the frame */
  size_t len;
  uint8_t acct; /* ACCT_ANSWER: counted in conn.answers; ACCT_STATUS: in conn.nstatus */
} outframe;

typedef struct conn {
  nnrpc__hnode node; /* k1 = pipe key */
  uint8_t bt[BT_MAX];
  size_t bt_len;
  uint32_t seq;     /* seq of the last message sent */
  bool outstanding; /* that message is not acknowledged yet */
  bool dead;        /* silent past the keepalive timeout: its calls were cancelled */
  int64_t last_rx_ms;
  int64_t sent_ms;  /* when the last message was handed to nanomsg */
  outframe *qhead, *qtail;
  size_t answers;   /* bytes of ACCT_ANSWER frames queued (MAX_QUEUED_ANSWERS) */
  unsigned nstatus; /* ACCT_STATUS frames queued: finished calls not yet answered */
  unsigned ncalls;
  unsigned nstreams; /* streaming calls among ncalls */
} conn;

typedef struct svc_entry {
  const nnrpc_service *svc;
  void *handlers;
  bool *present;
  void *user_data;
} svc_entry;

typedef struct route {
  const char *path;
  const nnrpc_method *m;
  const svc_entry *se;
  size_t index;
} route;

enum { SRV_NEW, SRV_RUNNING, SRV_DRAINING, SRV_STOPPED };

/* A stream message received and not yet read by the handler. */
typedef struct inmsg {
  struct inmsg *next;
  nnrpc__rxbuf *rx; /* holds the bytes */
  const uint8_t *p;
  uint32_t len;
} inmsg;


struct nnrpc_ctx {
  nnrpc__hnode node; /* k1 = pipe key, k2 = call id */
  struct nnrpc_ctx *qnext;
  nnrpc_server *srv;
  conn *conn;
  uint64_t id;
  const route *rt;
  nnrpc__rxbuf *rx;
  const uint8_t *payload;
  size_t payload_len;
  bool has_message;
  nnrpc_metadata headers;
  nnrpc_metadata trailers;
  int64_t deadline_us;
  uint64_t max_reply;
  atomic_bool cancelled;
  atomic_int refs;       /* 1 for the call until finished, +1 per runtime user */
  bool running;
  bool cancel_fired;     /* on_cancel ran or is due (mu) */
  nnrpc_cancel_fn on_cancel;
  void *cancel_user;
  struct nnrpc_ctx *fire_next; /* cancel callbacks to run */
  ProtobufCMessage *reply;
  char *err_msg;
  nnrpc__arena arena;
  /* streaming calls (mu) */
  bool streaming;
  bool half_closed;        /* the client sends no more messages */
  int forced_code;         /* the runtime ended the call: this code, whatever the handler returns */
  const char *forced_why;
  inmsg *in_head, *in_tail;
  size_t in_bytes;         /* received, not read by the handler */
  size_t uncredited;       /* read, not yet returned to the client with WINDOW */
  int64_t send_credit;     /* bytes we may send before the client grants more */
  pthread_cond_t cv;       /* the handler waits for messages, credit or cancel */
  int64_t start_us;        /* received (for interceptors' durations) */
  uint64_t rx_payload, tx_payload; /* message payload bytes received / sent */
};

struct nnrpc_server {
  nnrpc_server_opts o;
  int sock;
  pthread_mutex_t mu;      /* everything below except send_mu */
  pthread_cond_t work_cv;  /* followers wait for calls or for the leadership */
  pthread_cond_t idle_cv;  /* shutdown waits for calls to end / queues to drain */
  pthread_mutex_t send_mu; /* serializes nn_sendmsg (see top of file) */
  svc_entry *svcs;
  size_t nsvcs;
  route *routes;
  size_t nroutes;
  nnrpc__hmap conns, calls;
  nnrpc_ctx *qhead, *qtail;
  unsigned active; /* calls accepted and not finished */
  int state;
  atomic_bool stop_threads;
  bool threads_started;
  pthread_t *workers;      /* the pool: o.workers + 1 threads */
  unsigned nworkers;
  bool has_leader;         /* a pool thread is receiving (mu) */
  unsigned idle;           /* pool threads waiting on work_cv (mu) */
  int wake[2]; /* run() sleeps on it; stop_async writes to it */
  atomic_bool stop_requested;
  int64_t last_tick_ms;
  nnrpc__health *health;   /* nnrpc_server_enable_health, or NULL */
  unsigned stream_threads; /* streaming handler threads still running (mu) */
  atomic_bool inproc;      /* listens on an inproc:// URL (see nnrpc__inproc_mu) */
  struct ic_entry {
    nnrpc_server_interceptor ic;
    void *owned; /* freed at close (the bearer token) */
  } *ics;
  size_t nics;
};

static void set_opts_defaults(nnrpc_server_opts *o) {
  if (!o->workers) o->workers = 4;
  if (!o->max_concurrent_calls) o->max_concurrent_calls = 1000;
  if (!o->max_recv_msg) o->max_recv_msg = 4u << 20;
  if (!o->max_send_msg) o->max_send_msg = 4u << 20;
  if (!o->max_metadata_bytes) o->max_metadata_bytes = 8192;
  if (!o->max_metadata_count) o->max_metadata_count = 64;
  if (!o->keepalive_timeout_ms) o->keepalive_timeout_ms = 10000;
  if (!o->sndbuf) o->sndbuf = 1 << 20;
  if (!o->rcvbuf) o->rcvbuf = 1 << 20;
  if (!o->max_decode_depth) o->max_decode_depth = 64;
  if (!o->max_decode_bytes) o->max_decode_bytes = 64u << 20;
  if (!o->max_batch_bytes) o->max_batch_bytes = 64u << 10;
  if (!o->stream_window) o->stream_window = 256u << 10;
  if (!o->max_concurrent_streams) o->max_concurrent_streams = 100;
}

/* ---------------------------------------------------------------- open / add / listen */

NNRPC_API int nnrpc_server_open(nnrpc_server **out, const nnrpc_server_opts *opts) {
  if (!out) return NNRPC_INVALID_ARGUMENT;
  *out = NULL;
  nnrpc_server *s = calloc(1, sizeof *s);
  if (!s) return NNRPC_RESOURCE_EXHAUSTED;
  if (opts) s->o = *opts;
  set_opts_defaults(&s->o);
  if (s->o.workers > 1024 || s->o.max_metadata_bytes > 60000) {
    free(s);
    return NNRPC_INVALID_ARGUMENT;
  }
  s->sock = nn_socket(AF_SP_RAW, NN_REP);
  if (s->sock < 0) {
    free(s);
    return NNRPC_INTERNAL;
  }
  /* A finite receive limit: nanomsg allocates the claimed size up front and
   * aborts on a forged huge length when unlimited. Twice the message limit
   * lets a merely oversized request get a clear RESOURCE_EXHAUSTED. */
  size_t lim = s->o.max_recv_msg * 2 + 65536 + 2 * s->o.max_metadata_bytes;
  int ilim = lim > INT32_MAX ? INT32_MAX : (int)lim;
  int tick = TICK_MS;
  nn_setsockopt(s->sock, NN_SOL_SOCKET, NN_RCVMAXSIZE, &ilim, sizeof ilim);
  int nodelay = 1; /* our acks are small messages: Nagle would hold the next call behind them */
  nn_setsockopt(s->sock, NN_TCP, NN_TCP_NODELAY, &nodelay, sizeof nodelay);
  nn_setsockopt(s->sock, NN_SOL_SOCKET, NN_SNDBUF, &s->o.sndbuf, sizeof s->o.sndbuf);
  nn_setsockopt(s->sock, NN_SOL_SOCKET, NN_RCVBUF, &s->o.rcvbuf, sizeof s->o.rcvbuf);
  nn_setsockopt(s->sock, NN_SOL_SOCKET, NN_RCVTIMEO, &tick, sizeof tick);
  pthread_mutex_init(&s->mu, NULL);
  pthread_mutex_init(&s->send_mu, NULL);
  nnrpc__cond_init(&s->work_cv);
  nnrpc__cond_init(&s->idle_cv);
  if (nnrpc__hmap_init(&s->conns) || nnrpc__hmap_init(&s->calls) || pipe(s->wake)) {
    nnrpc_server_close(s);
    return NNRPC_RESOURCE_EXHAUSTED;
  }
  fcntl(s->wake[0], F_SETFL, O_NONBLOCK);
  fcntl(s->wake[1], F_SETFL, O_NONBLOCK);
  s->state = SRV_NEW;
  *out = s;
  return NNRPC_OK;
}

static int add_interceptor(nnrpc_server *srv, const nnrpc_server_interceptor *ic, void *owned) {
  if (!srv || !ic || (!ic->before && !ic->after)) return NNRPC_INVALID_ARGUMENT;
  pthread_mutex_lock(&srv->mu);
  int rc = NNRPC_OK;
  struct ic_entry *n = NULL;
  if (srv->state != SRV_NEW)
    rc = NNRPC_FAILED_PRECONDITION;
  else if (!(n = realloc(srv->ics, (srv->nics + 1) * sizeof *n)))
    rc = NNRPC_RESOURCE_EXHAUSTED;
  else {
    srv->ics = n;
    srv->ics[srv->nics++] = (struct ic_entry){*ic, owned};
  }
  pthread_mutex_unlock(&srv->mu);
  return rc;
}

NNRPC_API int nnrpc_server_add_service(nnrpc_server *srv, const nnrpc_service *svc,
                                       const void *handlers, const bool *present,
                                       void *user_data) {
  if (!srv || !svc || !handlers || !present) return NNRPC_INVALID_ARGUMENT;
  pthread_mutex_lock(&srv->mu);
  int rc = NNRPC_OK;
  if (srv->state != SRV_NEW) {
    rc = NNRPC_FAILED_PRECONDITION;
    goto out;
  }
  for (size_t i = 0; i < srv->nsvcs; i++)
    if (strcmp(srv->svcs[i].svc->name, svc->name) == 0) {
      rc = NNRPC_ALREADY_EXISTS;
      goto out;
    }
  svc_entry *v = realloc(srv->svcs, (srv->nsvcs + 1) * sizeof *v);
  if (!v) {
    rc = NNRPC_RESOURCE_EXHAUSTED;
    goto out;
  }
  srv->svcs = v;
  svc_entry *e = &v[srv->nsvcs];
  e->svc = svc;
  e->user_data = user_data;
  e->handlers = malloc(svc->handlers_size ? svc->handlers_size : 1);
  e->present = malloc(svc->n_methods ? svc->n_methods : 1);
  if (!e->handlers || !e->present) {
    free(e->handlers);
    free(e->present);
    rc = NNRPC_RESOURCE_EXHAUSTED;
    goto out;
  }
  memcpy(e->handlers, handlers, svc->handlers_size);
  memcpy(e->present, present, svc->n_methods);
  srv->nsvcs++;
out:
  pthread_mutex_unlock(&srv->mu);
  return rc;
}

NNRPC_API int nnrpc_server_add_interceptor(nnrpc_server *srv, const nnrpc_server_interceptor *ic) {
  return add_interceptor(srv, ic, NULL);
}

/* "authorization: Bearer <token>" (scheme in any case), compared without
 * early exit so the time taken says nothing about where a guess differs. */
static int bearer_check(nnrpc_ctx *ctx, void *user) {
  const char *want = user;
  size_t wl = strlen(want), len = 0;
  const char *v = nnrpc_metadata_get(nnrpc_ctx_headers(ctx), "authorization", &len);
  unsigned diff = !v || len != 7 + wl;
  if (!diff) {
    static const char scheme[] = "bearer ";
    for (size_t i = 0; i < 7; i++) diff |= (unsigned)((v[i] | (i < 6 ? 0x20 : 0)) ^ scheme[i]);
    for (size_t i = 0; i < wl; i++) diff |= (unsigned)(v[7 + i] ^ want[i]);
  }
  if (diff) return nnrpc_ctx_fail(ctx, NNRPC_UNAUTHENTICATED, "missing or invalid bearer token");
  return NNRPC_OK;
}

NNRPC_API int nnrpc_server_require_bearer(nnrpc_server *srv, const char *token) {
  if (!srv || !token || !*token) return NNRPC_INVALID_ARGUMENT;
  char *copy = strdup(token);
  if (!copy) return NNRPC_RESOURCE_EXHAUSTED;
  nnrpc_server_interceptor ic = {bearer_check, NULL, copy};
  int rc = add_interceptor(srv, &ic, copy);
  if (rc) free(copy);
  return rc;
}

NNRPC_API int nnrpc_server_listen(nnrpc_server *srv, const char *url) {
  if (!srv || !url) return NNRPC_INVALID_ARGUMENT;
  if (strncmp(url, "inproc://", 9) == 0) atomic_store(&srv->inproc, true);
  if (nn_bind(srv->sock, url) < 0)
    return errno == EADDRINUSE ? NNRPC_ALREADY_EXISTS
           : errno == EINVAL || errno == EPROTONOSUPPORT || errno == ENODEV ? NNRPC_INVALID_ARGUMENT
                                                                             : NNRPC_UNAVAILABLE;
  return NNRPC_OK;
}

static int route_cmp(const void *a, const void *b) {
  return strcmp(((const route *)a)->path, ((const route *)b)->path);
}

static const route *find_route(const nnrpc_server *s, const char *path) {
  route key = {.path = path};
  return bsearch(&key, s->routes, s->nroutes, sizeof key, route_cmp);
}

/* ---------------------------------------------------------------- sending */

/* Queues a frame for conn; caller holds mu. Takes ownership of f. */
static void conn_enqueue(conn *c, outframe *f) {
  f->next = NULL;
  if (f->acct == ACCT_ANSWER) c->answers += f->len;
  if (f->acct == ACCT_STATUS) c->nstatus++;
  if (c->qtail)
    c->qtail->next = f;
  else
    c->qhead = f;
  c->qtail = f;
}

static void free_frames(outframe *f) {
  while (f) {
    outframe *next = f->next;
    nn_freemsg(f->msg);
    free(f);
    f = next;
  }
}

/* Sends what conn's window allows: at most one unacknowledged message,
 * coalescing queued frames up to max_batch_bytes. */
static void conn_flush(nnrpc_server *s, conn *c) {
  pthread_mutex_lock(&s->mu);
  if (c->outstanding || !c->qhead || c->dead) {
    pthread_mutex_unlock(&s->mu);
    return;
  }
  outframe *f = c->qhead;
  void *msg;
  size_t len;
  if (!f->next || f->len >= s->o.max_batch_bytes) { /* alone: zero copy */
    c->qhead = f->next;
    msg = f->msg;
    len = f->len;
    if (f->acct == ACCT_ANSWER) c->answers -= f->len;
    if (f->acct == ACCT_STATUS) c->nstatus--;
    free(f);
  } else {
    size_t total = NNRPC_ENV_LEN;
    outframe *g = f;
    while (g && (g == f || total + g->len - NNRPC_ENV_LEN <= s->o.max_batch_bytes)) {
      total += g->len - NNRPC_ENV_LEN;
      g = g->next;
    }
    msg = nn_allocmsg(total, 0);
    if (!msg) {
      pthread_mutex_unlock(&s->mu);
      return; /* retried at the next tick */
    }
    size_t off = NNRPC_ENV_LEN;
    while (c->qhead != g) {
      outframe *h = c->qhead;
      memcpy((uint8_t *)msg + off, (uint8_t *)h->msg + NNRPC_ENV_LEN, h->len - NNRPC_ENV_LEN);
      off += h->len - NNRPC_ENV_LEN;
      c->qhead = h->next;
      if (h->acct == ACCT_ANSWER) c->answers -= h->len;
      if (h->acct == ACCT_STATUS) c->nstatus--;
      nn_freemsg(h->msg);
      free(h);
    }
    len = total;
  }
  if (!c->qhead) c->qtail = NULL;
  if (++c->seq == 0) c->seq = 1;
  c->outstanding = true;
  c->sent_ms = nnrpc__now_ms();
  nnrpc__env_put(msg, c->seq);

  uint8_t ctl[NN_CMSG_SPACE(sizeof(size_t) + BT_MAX)] __attribute__((aligned(8)));
  struct nn_cmsghdr *cm = (struct nn_cmsghdr *)(void *)ctl;
  cm->cmsg_len = NN_CMSG_LEN(sizeof(size_t) + c->bt_len);
  cm->cmsg_level = PROTO_SP;
  cm->cmsg_type = SP_HDR;
  size_t btl = c->bt_len;
  memcpy(NN_CMSG_DATA(cm), &btl, sizeof btl);
  memcpy(NN_CMSG_DATA(cm) + sizeof btl, c->bt, btl);
  pthread_mutex_unlock(&s->mu);

  struct nn_iovec iov = {&msg, NN_MSG};
  struct nn_msghdr hdr = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl,
                          .msg_controllen = NN_CMSG_SPACE(sizeof(size_t) + btl)};
  (void)len;
  pthread_mutex_lock(&s->send_mu);
  if (s->inproc) pthread_mutex_lock(&nnrpc__inproc_mu);
  int rc = nn_sendmsg(s->sock, &hdr, NN_DONTWAIT);
  if (s->inproc) pthread_mutex_unlock(&nnrpc__inproc_mu);
  pthread_mutex_unlock(&s->send_mu);
  if (rc < 0) nn_freemsg(msg); /* socket closing: nothing more will be sent */
}

/* Builds a frame (nn_allocmsg with the envelope reserved). `msg` may be NULL. */
static outframe *make_frame(uint8_t type, uint8_t flags, uint64_t call_id, nnrpc__hdr *h,
                            const ProtobufCMessage *msg, size_t msg_size, const void *raw,
                            size_t raw_len) {
  size_t meta = h ? protobuf_c_message_get_packed_size(&h->pb.base) : 0;
  if (meta > UINT16_MAX) return NULL;
  size_t payload = msg ? msg_size : raw_len;
  if (payload > UINT32_MAX) return NULL;
  outframe *f = malloc(sizeof *f);
  if (!f) return NULL;
  f->next = NULL; /* a frame for a dead connection is freed as a list of one */
  f->acct = ACCT_NONE;
  f->len = NNRPC_ENV_LEN + NNRPC_FRAME_HDR_LEN + meta + payload;
  f->msg = nn_allocmsg(f->len, 0);
  if (!f->msg) {
    free(f);
    return NULL;
  }
  uint8_t *p = (uint8_t *)f->msg + NNRPC_ENV_LEN;
  nnrpc__frame_put(p, type, flags, (uint16_t)meta, (uint32_t)payload, call_id);
  p += NNRPC_FRAME_HDR_LEN;
  if (h) protobuf_c_message_pack(&h->pb.base, p);
  p += meta;
  if (msg)
    protobuf_c_message_pack(msg, p);
  else if (raw_len)
    memcpy(p, raw, raw_len);
  return f;
}

/* Queues a STATUS frame for a call that never reached a handler. mu held. */
static void queue_status_locked(conn *c, uint64_t id, int code, const char *message) {
  nnrpc__hdr h;
  if (c->answers >= MAX_QUEUED_ANSWERS) return; /* the client does not read them */
  if (nnrpc__hdr_build(&h, NULL, 0, NULL, (uint32_t)code, message, 0)) return;
  outframe *f = make_frame(NNRPC_F_STATUS, 0, id, &h, NULL, 0, NULL, 0);
  nnrpc__hdr_done(&h);
  if (f) {
    f->acct = ACCT_ANSWER;
    conn_enqueue(c, f);
  }
}

/* ---------------------------------------------------------------- calls */

static void ctx_free(nnrpc_ctx *x) {
  for (inmsg *m = x->in_head, *next; m; m = next) {
    next = m->next;
    nnrpc__rxbuf_unref(m->rx);
    free(m);
  }
  if (x->streaming) pthread_cond_destroy(&x->cv);
  nnrpc__rxbuf_unref(x->rx);
  nnrpc_metadata_clear(&x->headers);
  free(x->headers.e);
  nnrpc_metadata_clear(&x->trailers);
  free(x->trailers.e);
  free(x->err_msg);
  nnrpc__arena_free(&x->arena);
  free(x);
}

static void ctx_unref(nnrpc_ctx *x) {
  if (atomic_fetch_sub_explicit(&x->refs, 1, memory_order_acq_rel) == 1) ctx_free(x);
}

/* Marks x cancelled; if it has a cancel callback that has not run, takes a
 * reference and links x into *fire for the caller to run after unlocking. mu held. */
static void cancel_locked(nnrpc_ctx *x, nnrpc_ctx **fire) {
  atomic_store(&x->cancelled, true);
  if (x->streaming) pthread_cond_broadcast(&x->cv);
  if (x->on_cancel && !x->cancel_fired) {
    x->cancel_fired = true;
    atomic_fetch_add(&x->refs, 1);
    x->fire_next = *fire;
    *fire = x;
  }
}

static void run_cancel_callbacks(nnrpc_ctx *fire) {
  while (fire) {
    nnrpc_ctx *next = fire->fire_next;
    fire->on_cancel(fire, fire->cancel_user);
    ctx_unref(fire);
    fire = next;
  }
}

static void conn_release_locked(nnrpc_server *s, conn *c) {
  assert(c->ncalls > 0);
  c->ncalls--;
  (void)s;
}

/* Ends a call: queues its STATUS frame (unless its client is gone), forgets
 * it, frees it, and flushes the connection. */
static void finish_call(nnrpc_server *s, nnrpc_ctx *x, int code, const ProtobufCMessage *reply) {
  outframe *f = NULL;
  size_t reply_size = 0;
  const char *msg = x->err_msg;
  if (x->streaming) {
    pthread_mutex_lock(&s->mu);
    if (x->forced_code) {
      code = x->forced_code;
      msg = x->forced_why;
    }
    pthread_mutex_unlock(&s->mu);
  }
  /* A handler that gave up because its deadline passed (nnrpc_ctx_is_cancelled)
   * says CANCELLED; the call ended with DEADLINE_EXCEEDED, and so its client
   * must hear, even when this status beats the client's own timer. */
  if (code == NNRPC_CANCELLED && x->deadline_us != NNRPC_NO_DEADLINE && nnrpc__now_us() >= x->deadline_us) {
    code = NNRPC_DEADLINE_EXCEEDED;
    msg = "deadline exceeded";
  }
  if (code == NNRPC_OK && reply) {
    reply_size = protobuf_c_message_get_packed_size(reply);
    if (reply_size > s->o.max_send_msg) {
      code = NNRPC_RESOURCE_EXHAUSTED;
      msg = "reply larger than the server's max_send_msg";
    } else if (x->max_reply && reply_size > x->max_reply) {
      code = NNRPC_RESOURCE_EXHAUSTED;
      msg = "reply larger than the client's max_recv_msg";
    }
  }
  if (code < 0 || code >= NNRPC_CODE_COUNT) {
    code = NNRPC_UNKNOWN;
    msg = "handler returned an invalid status code";
  }
  if (code != NNRPC_OK && !msg) msg = "";
  {
    nnrpc__hdr h;
    if (nnrpc__hdr_build(&h, NULL, 0, &x->trailers, (uint32_t)code, msg, 0) == 0) {
      bool with = code == NNRPC_OK && reply;
      if (with) x->tx_payload += reply_size;
      f = make_frame(NNRPC_F_STATUS, with ? NNRPC_FF_HAS_MESSAGE : 0, x->id, &h,
                     with ? reply : NULL, reply_size, NULL, 0);
      if (!f && with) { /* out of memory for the reply: say so */
        f = make_frame(NNRPC_F_STATUS, 0, x->id, &h, NULL, 0, NULL, 0);
      }
      nnrpc__hdr_done(&h);
      if (f) f->acct = ACCT_STATUS;
    }
  }
  for (size_t i = s->nics; i-- > 0;) /* the call still counts as active: s stays alive */
    if (s->ics[i].ic.after) s->ics[i].ic.after(x, code, nnrpc__now_us() - x->start_us, s->ics[i].ic.user);
  conn *c = x->conn;
  pthread_mutex_lock(&s->mu);
  nnrpc__hmap_del(&s->calls, x->node.k1, x->node.k2);
  if (f && !c->dead)
    conn_enqueue(c, f);
  else if (f)
    free_frames(f);
  pthread_mutex_unlock(&s->mu);
  conn_flush(s, c);
  /* Only now let go of the connection and the server: until the call is
   * released, tick() cannot free c and shutdown cannot free s. */
  pthread_mutex_lock(&s->mu);
  conn_release_locked(s, c);
  c->nstreams -= x->streaming;
  s->active--;
  if (s->state == SRV_DRAINING) pthread_cond_broadcast(&s->idle_cv);
  pthread_mutex_unlock(&s->mu);
  ctx_unref(x);
}

static void run_call(nnrpc_server *s, nnrpc_ctx *x) {
  const route *rt = x->rt;
  if (x->deadline_us != NNRPC_NO_DEADLINE && nnrpc__now_us() >= x->deadline_us) {
    nnrpc_ctx_fail(x, NNRPC_DEADLINE_EXCEEDED, "deadline exceeded before the handler started");
    finish_call(s, x, NNRPC_DEADLINE_EXCEEDED, NULL);
    return;
  }
  if (atomic_load(&x->cancelled)) {
    finish_call(s, x, NNRPC_CANCELLED, NULL);
    return;
  }
  for (size_t i = 0; i < s->nics; i++) {
    if (!s->ics[i].ic.before) continue;
    int rc = s->ics[i].ic.before(x, s->ics[i].ic.user);
    if (rc == NNRPC_OK) continue;
    if (rc < 0 || rc >= NNRPC_CODE_COUNT) rc = nnrpc_ctx_fail(x, NNRPC_UNKNOWN, "interceptor returned %d", rc);
    finish_call(s, x, rc, NULL);
    return;
  }
  nnrpc_method_kind kind = rt->m->kind;
  bool has_req = kind == NNRPC_UNARY || kind == NNRPC_SERVER_STREAMING;
  bool has_reply = kind == NNRPC_UNARY || kind == NNRPC_CLIENT_STREAMING;
  bool too_deep; /* the sender's fault: INVALID_ARGUMENT like malformed bytes */
  const char *why = NULL;
  ProtobufCMessage *req = NULL;
  if (has_req)
    req = nnrpc__decode(rt->m->input, x->payload, x->payload_len, s->o.max_decode_depth, &x->arena.pb,
                        &too_deep, &why);
  nnrpc__rxbuf_unref(x->rx); /* decoded: the received bytes are no longer needed */
  x->rx = NULL;
  if (has_req && !req) {
    int code = x->arena.over ? NNRPC_RESOURCE_EXHAUSTED : NNRPC_INVALID_ARGUMENT;
    nnrpc_ctx_fail(x, code, "cannot decode %s request: %s", rt->m->input->name,
                   x->arena.over ? "decoded size exceeds max_decode_bytes" : why);
    finish_call(s, x, code, NULL);
    return;
  }
  ProtobufCMessage *reply = NULL;
  if (has_reply) {
    reply = nnrpc__arena_alloc(&x->arena, rt->m->output->sizeof_message);
    if (!reply) {
      nnrpc_ctx_fail(x, NNRPC_RESOURCE_EXHAUSTED, "out of memory for the reply");
      finish_call(s, x, NNRPC_RESOURCE_EXHAUSTED, NULL);
      return;
    }
    protobuf_c_message_init(rt->m->output, reply);
  }
  x->reply = reply;
  atomic_fetch_add(&x->refs, 1); /* nnrpc_ctx_finish may run before invoke returns */
  int code = rt->m->invoke(x, rt->se->handlers, req, reply);
  if (code == NNRPC_PENDING && x->streaming)
    code = nnrpc_ctx_fail(x, NNRPC_INTERNAL, "a streaming handler returned NNRPC_PENDING");
  if (code != NNRPC_PENDING) finish_call(s, x, code, reply);
  ctx_unref(x);
}

/* A streaming call runs on a thread of its own: its handler blocks in
 * nnrpc_ctx_read/write for as long as the stream lasts. */
static void *stream_main(void *arg) {
  nnrpc_ctx *x = arg;
  nnrpc_server *s = x->srv;
  run_call(s, x);
  pthread_mutex_lock(&s->mu);
  s->stream_threads--;
  pthread_cond_broadcast(&s->idle_cv);
  pthread_mutex_unlock(&s->mu);
  return NULL;
}

/* Appends a list of calls (linked by qnext) to the work queue. mu held. */
static void enqueue_locked(nnrpc_server *s, nnrpc_ctx *list) {
  while (list) {
    nnrpc_ctx *next = list->qnext;
    list->qnext = NULL;
    if (s->qtail)
      s->qtail->qnext = list;
    else
      s->qhead = list;
    s->qtail = list;
    pthread_cond_signal(&s->work_cv);
    list = next;
  }
}

/* ---------------------------------------------------------------- receiving */

static conn *get_conn_locked(nnrpc_server *s, const uint8_t *bt, size_t bt_len) {
  uint32_t key = nnrpc__get32(bt) & 0x7fffffff;
  conn *c = (conn *)nnrpc__hmap_get(&s->conns, key, 0);
  if (!c) {
    c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->node.k1 = key;
    nnrpc__hmap_put(&s->conns, &c->node);
  }
  memcpy(c->bt, bt, bt_len);
  c->bt_len = bt_len;
  return c;
}

/* A CALL frame. A unary call ready to run is appended to *ready. mu held. */
static void on_call_locked(nnrpc_server *s, conn *c, const nnrpc__frame *f, nnrpc__rxbuf *rx,
                           nnrpc_ctx ***ready) {
  const char *why = NULL;
  int code = NNRPC_OK;
  if (nnrpc__hmap_get(&s->calls, c->node.k1, f->call_id)) return; /* duplicate id: ignore */
  if (s->state != SRV_RUNNING && s->state != SRV_DRAINING) {
    queue_status_locked(c, f->call_id, NNRPC_UNAVAILABLE, "server is shutting down");
    return;
  }
  if (s->active >= s->o.max_concurrent_calls) {
    queue_status_locked(c, f->call_id, NNRPC_RESOURCE_EXHAUSTED,
                        "server is at max_concurrent_calls");
    return;
  }
  if (c->ncalls + c->nstatus >= s->o.max_concurrent_calls) { /* the client does not read its replies */
    queue_status_locked(c, f->call_id, NNRPC_RESOURCE_EXHAUSTED,
                        "connection is at max_concurrent_calls (counting replies not yet acknowledged)");
    return;
  }
  nnrpc_ctx *x = calloc(1, sizeof *x);
  if (!x) {
    queue_status_locked(c, f->call_id, NNRPC_RESOURCE_EXHAUSTED, "server out of memory");
    return;
  }
  nnrpc__arena_init(&x->arena, s->o.max_decode_bytes);
  x->srv = s;
  x->id = f->call_id;
  x->deadline_us = NNRPC_NO_DEADLINE;
  x->start_us = nnrpc__now_us();
  atomic_init(&x->cancelled, false);
  atomic_init(&x->refs, 1);
  Nnrpc__Wire__CallHeader *h = NULL;
  code = nnrpc__hdr_decode(f->meta, f->meta_len, &x->arena.pb, s->o.max_metadata_bytes,
                           s->o.max_metadata_count, &h, &why);
  if (code) {
    if (code == NNRPC_INTERNAL) code = NNRPC_INVALID_ARGUMENT;
    goto reject;
  }
  x->rt = find_route(s, h->method);
  /* Draining: new calls are turned away, except health checks, which then
   * answer NOT_SERVING so load balancers stop sending. */
  if (s->state == SRV_DRAINING && !(x->rt && x->rt->se->svc == nnrpc__health_service())) {
    code = NNRPC_UNAVAILABLE;
    why = "server is shutting down";
    goto reject;
  }
  if (!x->rt) {
    code = NNRPC_UNIMPLEMENTED;
    why = "unknown method";
    goto reject;
  }
  if (!x->rt->se->present[x->rt->index]) {
    code = NNRPC_UNIMPLEMENTED;
    why = "method not implemented by this server";
    goto reject;
  }
  nnrpc_method_kind kind = x->rt->m->kind;
  bool one_request = kind == NNRPC_UNARY || kind == NNRPC_SERVER_STREAMING;
  if (one_request != !!(f->flags & NNRPC_FF_HAS_MESSAGE)) {
    code = NNRPC_INVALID_ARGUMENT;
    why = one_request ? "call without its request message" : "a client stream carries no message in CALL";
    goto reject;
  }
  if (f->payload_len > s->o.max_recv_msg) {
    code = NNRPC_RESOURCE_EXHAUSTED;
    why = "request larger than the server's max_recv_msg";
    goto reject;
  }
  if (nnrpc__md_from_wire(&x->headers, h)) {
    code = NNRPC_RESOURCE_EXHAUSTED;
    why = "server out of memory";
    goto reject;
  }
  if (h->timeout_us) x->deadline_us = nnrpc__now_us() + (int64_t)(h->timeout_us > INT64_MAX / 2 ? INT64_MAX / 2 : h->timeout_us);
  x->max_reply = h->max_reply_bytes;
  if (kind != NNRPC_UNARY && c->nstreams >= s->o.max_concurrent_streams) {
    code = NNRPC_RESOURCE_EXHAUSTED;
    why = "connection is at max_concurrent_streams";
    goto reject;
  }
  if (kind != NNRPC_UNARY) {
    x->streaming = true;
    x->half_closed = one_request || (f->flags & NNRPC_FF_END_STREAM);
    x->send_credit = h->window ? h->window : NNRPC_INITIAL_WINDOW;
    if (nnrpc__cond_init(&x->cv)) {
      x->streaming = false;
      code = NNRPC_RESOURCE_EXHAUSTED;
      why = "server out of resources";
      goto reject;
    }
  }
  /* The header was only needed until here: start the arena afresh for the
   * request and reply. */
  nnrpc__arena_free(&x->arena);
  x->conn = c;
  c->ncalls++;
  c->nstreams += x->streaming;
  x->node.k1 = c->node.k1;
  x->node.k2 = f->call_id;
  nnrpc__hmap_put(&s->calls, &x->node);
  nnrpc__rxbuf_ref(rx);
  x->rx = rx;
  x->payload = f->payload;
  x->payload_len = f->payload_len;
  x->rx_payload = f->payload_len;
  s->active++;
  if (x->streaming) {
    if (s->o.stream_window > NNRPC_INITIAL_WINDOW) { /* open our receive window fully */
      uint8_t w[4];
      nnrpc__put32(w, s->o.stream_window - NNRPC_INITIAL_WINDOW);
      outframe *o = make_frame(NNRPC_F_WINDOW, 0, x->id, NULL, NULL, 0, w, 4);
      if (o) conn_enqueue(c, o);
    }
    pthread_t t;
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    x->running = true;
    s->stream_threads++;
    if (pthread_create(&t, &a, stream_main, x)) { /* ends at once: the status says why */
      s->stream_threads--;
      x->forced_code = NNRPC_RESOURCE_EXHAUSTED;
      x->forced_why = "server cannot start a thread for the stream";
      atomic_store(&x->cancelled, true);
      x->qnext = NULL;
      enqueue_locked(s, x);
    }
    pthread_attr_destroy(&a);
    return;
  }
  x->qnext = NULL;
  **ready = x;
  *ready = &x->qnext;
  return;
reject:
  queue_status_locked(c, f->call_id, code, why);
  nnrpc_metadata_clear(&x->headers);
  free(x->headers.e);
  nnrpc__arena_free(&x->arena);
  free(x);
}

/* Ends a streaming call on the runtime's behalf (flow-control violation,
 * oversized or undecodable message): the client gets `code`. mu held. */
static void force_locked(nnrpc_ctx *x, int code, const char *why, nnrpc_ctx **fire) {
  if (!x->forced_code) {
    x->forced_code = code;
    x->forced_why = why;
  }
  cancel_locked(x, fire);
}

/* MESSAGE / HALF_CLOSE / WINDOW frames of a client stream. mu held. */
static void on_stream_frame_locked(nnrpc_server *s, conn *c, const nnrpc__frame *f, nnrpc__rxbuf *rx,
                                   nnrpc_ctx **fire) {
  nnrpc_ctx *x = (nnrpc_ctx *)nnrpc__hmap_get(&s->calls, c->node.k1, f->call_id);
  if (!x || !x->streaming || atomic_load(&x->cancelled)) return; /* late frames of ended calls */
  if (f->type == NNRPC_F_WINDOW) {
    if (f->payload_len == 4) {
      x->send_credit += nnrpc__get32(f->payload);
      pthread_cond_broadcast(&x->cv);
    }
    return;
  }
  if (f->type == NNRPC_F_MESSAGE) {
    nnrpc_method_kind k = x->rt->m->kind;
    if (x->half_closed || (k != NNRPC_CLIENT_STREAMING && k != NNRPC_BIDI_STREAMING)) {
      force_locked(x, NNRPC_INVALID_ARGUMENT, "stream message after half-close or on a call that takes none", fire);
      return;
    }
    if (f->payload_len > s->o.max_recv_msg) {
      force_locked(x, NNRPC_RESOURCE_EXHAUSTED, "stream message larger than the server's max_recv_msg", fire);
      return;
    }
    /* The client may send while it has credit, so one message past the window. */
    size_t window = s->o.stream_window > NNRPC_INITIAL_WINDOW ? s->o.stream_window : NNRPC_INITIAL_WINDOW;
    if (x->in_bytes + x->uncredited + NNRPC_MSG_COST(f->payload_len) > window + NNRPC_MSG_COST(s->o.max_recv_msg)) {
      force_locked(x, NNRPC_RESOURCE_EXHAUSTED, "client overran the stream's flow-control window", fire);
      return;
    }
    inmsg *m = malloc(sizeof *m);
    if (!m) {
      force_locked(x, NNRPC_RESOURCE_EXHAUSTED, "server out of memory", fire);
      return;
    }
    nnrpc__rxbuf_ref(rx);
    *m = (inmsg){NULL, rx, f->payload, f->payload_len};
    if (x->in_tail)
      x->in_tail->next = m;
    else
      x->in_head = m;
    x->in_tail = m;
    x->in_bytes += NNRPC_MSG_COST(f->payload_len);
    x->rx_payload += f->payload_len;
  }
  if (f->type == NNRPC_F_HALF_CLOSE || (f->flags & NNRPC_FF_END_STREAM)) x->half_closed = true;
  pthread_cond_broadcast(&x->cv);
}

/* A PING frame: answer with the listed call ids this server does not know. mu held. */
static void on_ping_locked(nnrpc_server *s, conn *c, const nnrpc__frame *f) {
  size_t n = f->payload_len / 8, unknown = 0;
  if (c->answers >= MAX_QUEUED_ANSWERS) return; /* the client does not read them */
  uint8_t *ids = n ? malloc(n * 8) : NULL;
  if (n && !ids) return;
  for (size_t i = 0; i < n; i++) {
    uint64_t id = nnrpc__get64(f->payload + 8 * i);
    if (!nnrpc__hmap_get(&s->calls, c->node.k1, id)) nnrpc__put64(ids + 8 * unknown++, id);
  }
  outframe *o = make_frame(NNRPC_F_PONG, 0, 0, NULL, NULL, 0, ids, unknown * 8);
  free(ids);
  if (o) {
    o->acct = ACCT_ANSWER;
    conn_enqueue(c, o);
  }
}

/* Processes one client message; returns the unary calls it made ready to
 * run (linked by qnext, in arrival order). */
static nnrpc_ctx *handle_message(nnrpc_server *s, void *body, size_t len, const uint8_t *bt,
                                 size_t bt_len) {
  nnrpc_ctx *ready = NULL, **ready_tail = &ready;
  nnrpc_ctx *fire = NULL;
  uint32_t ack;
  if (bt_len < 4 || bt_len > BT_MAX || nnrpc__env_get(body, len, &ack)) {
    nn_freemsg(body); /* unroutable or not ours: drop */
    return NULL;
  }
  nnrpc__rxbuf *rx = nnrpc__rxbuf_new(body, len);
  if (!rx) {
    nn_freemsg(body);
    return NULL;
  }
  pthread_mutex_lock(&s->mu);
  conn *c = get_conn_locked(s, bt, bt_len);
  if (!c) {
    pthread_mutex_unlock(&s->mu);
    nnrpc__rxbuf_unref(rx);
    return NULL;
  }
  c->last_rx_ms = nnrpc__now_ms();
  c->dead = false;
  if (ack && c->outstanding && ack == c->seq) c->outstanding = false;
  size_t off = NNRPC_ENV_LEN;
  nnrpc__frame f;
  int r;
  while ((r = nnrpc__frame_next(body, len, &off, &f)) == 1) {
    switch (f.type) {
    case NNRPC_F_CALL:
      on_call_locked(s, c, &f, rx, &ready_tail);
      break;
    case NNRPC_F_CANCEL: {
      nnrpc_ctx *x = (nnrpc_ctx *)nnrpc__hmap_get(&s->calls, c->node.k1, f.call_id);
      if (x) cancel_locked(x, &fire);
      break;
    }
    case NNRPC_F_PING:
      on_ping_locked(s, c, &f);
      break;
    case NNRPC_F_MESSAGE:
    case NNRPC_F_HALF_CLOSE:
    case NNRPC_F_WINDOW:
      on_stream_frame_locked(s, c, &f, rx, &fire);
      break;
    default: /* unknown or unexpected frame types are ignored */
      break;
    }
  }
  pthread_mutex_unlock(&s->mu);
  nnrpc__rxbuf_unref(rx);
  run_cancel_callbacks(fire);
  conn_flush(s, c);
  return ready;
}

/* Periodic work: cancel calls of silent clients, forget idle connections. */
static void tick(nnrpc_server *s) {
  int64_t now = nnrpc__now_ms(), now_us = nnrpc__now_us();
  nnrpc_ctx *fire = NULL;
  pthread_mutex_lock(&s->mu);
  for (size_t j = 0; j < s->calls.nb; j++) /* deadlines of running and pending calls */
    for (nnrpc__hnode *m = s->calls.b[j]; m; m = m->next) {
      nnrpc_ctx *x = (nnrpc_ctx *)m;
      if (x->deadline_us <= now_us && !atomic_load(&x->cancelled)) cancel_locked(x, &fire);
    }
  for (size_t i = 0; i < s->conns.nb; i++) {
    for (nnrpc__hnode *n = s->conns.b[i], *next; n; n = next) {
      next = n->next;
      conn *c = (conn *)n;
      bool silent = now - c->last_rx_ms > s->o.keepalive_timeout_ms;
      if (silent && !c->dead && c->ncalls) {
        c->dead = true; /* its client stopped pinging: cancel its calls */
        free_frames(c->qhead);
        c->qhead = c->qtail = NULL;
        c->answers = 0;
        c->nstatus = 0;
        for (size_t j = 0; j < s->calls.nb; j++)
          for (nnrpc__hnode *m = s->calls.b[j]; m; m = m->next)
            if (((nnrpc_ctx *)m)->conn == c) cancel_locked((nnrpc_ctx *)m, &fire);
      }
      /* Forgotten with whatever still waits for it: a client silent this
       * long with nothing in flight is gone (or never reads). */
      if (silent && c->ncalls == 0) {
        nnrpc__hmap_del(&s->conns, c->node.k1, 0);
        free_frames(c->qhead);
        free(c);
      }
    }
  }
  pthread_mutex_unlock(&s->mu);
  run_cancel_callbacks(fire);
  s->last_tick_ms = now;
}

/* The leader's turn: one receive (at most TICK_MS), then periodic work.
 * Returns the unary calls that message made ready. */
static nnrpc_ctx *lead_once(nnrpc_server *s) {
  nnrpc_ctx *ready = NULL;
  void *body = NULL, *ctl = NULL;
  struct nn_iovec iov = {&body, NN_MSG};
  struct nn_msghdr hdr = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = &ctl,
                          .msg_controllen = NN_MSG};
  int n = nn_recvmsg(s->sock, &hdr, 0);
  if (n >= 0) {
    const uint8_t *bt = NULL;
    size_t bt_len = 0;
    struct nn_cmsghdr *cm = NN_CMSG_FIRSTHDR(&hdr);
    while (cm) {
      if (cm->cmsg_level == PROTO_SP && cm->cmsg_type == SP_HDR &&
          cm->cmsg_len >= NN_CMSG_LEN(sizeof(size_t))) {
        memcpy(&bt_len, NN_CMSG_DATA(cm), sizeof bt_len);
        if (bt_len <= cm->cmsg_len - NN_CMSG_LEN(sizeof(size_t)))
          bt = NN_CMSG_DATA(cm) + sizeof(size_t);
        else
          bt_len = 0;
        break;
      }
      cm = NN_CMSG_NXTHDR(&hdr, cm);
    }
    ready = handle_message(s, body, (size_t)n, bt, bt ? bt_len : 0);
    if (ctl) nn_freemsg(ctl);
  }
  if (nnrpc__now_ms() - s->last_tick_ms >= TICK_MS) tick(s);
  return ready;
}

/* Every pool thread: lead when nobody does, else run queued calls, else wait. */
static void *pool_main(void *arg) {
  nnrpc_server *s = arg;
  bool leading = false;
  pthread_mutex_lock(&s->mu);
  while (!atomic_load(&s->stop_threads)) {
    if (!leading && !s->has_leader) leading = s->has_leader = true;
    if (leading) {
      pthread_mutex_unlock(&s->mu);
      nnrpc_ctx *ready = lead_once(s);
      pthread_mutex_lock(&s->mu);
      if (!ready) continue;
      nnrpc_ctx *mine = NULL;
      if (s->idle > 0) { /* a follower takes the socket; this thread runs a call */
        leading = s->has_leader = false;
        pthread_cond_signal(&s->work_cv);
        mine = ready;
        ready = ready->qnext;
      }
      enqueue_locked(s, ready);
      if (mine) {
        mine->running = true;
        pthread_mutex_unlock(&s->mu);
        run_call(s, mine);
        pthread_mutex_lock(&s->mu);
      }
      continue;
    }
    if (s->qhead) {
      nnrpc_ctx *x = s->qhead;
      s->qhead = x->qnext;
      if (!s->qhead) s->qtail = NULL;
      x->running = true;
      pthread_mutex_unlock(&s->mu);
      run_call(s, x);
      pthread_mutex_lock(&s->mu);
      continue;
    }
    s->idle++;
    pthread_cond_wait(&s->work_cv, &s->mu);
    s->idle--;
  }
  if (leading) s->has_leader = false;
  pthread_mutex_unlock(&s->mu);
  return NULL;
}

/* ---------------------------------------------------------------- life cycle */

NNRPC_API int nnrpc_server_start(nnrpc_server *s) {
  if (!s) return NNRPC_INVALID_ARGUMENT;
  pthread_mutex_lock(&s->mu);
  if (s->state != SRV_NEW) {
    pthread_mutex_unlock(&s->mu);
    return s->state == SRV_RUNNING ? NNRPC_OK : NNRPC_FAILED_PRECONDITION;
  }
  size_t n = 0;
  for (size_t i = 0; i < s->nsvcs; i++) n += s->svcs[i].svc->n_methods;
  s->routes = calloc(n ? n : 1, sizeof *s->routes);
  s->workers = calloc(s->o.workers + 1, sizeof *s->workers);
  if (!s->routes || !s->workers) {
    pthread_mutex_unlock(&s->mu);
    return NNRPC_RESOURCE_EXHAUSTED;
  }
  for (size_t i = 0; i < s->nsvcs; i++)
    for (size_t j = 0; j < s->svcs[i].svc->n_methods; j++)
      s->routes[s->nroutes++] = (route){s->svcs[i].svc->methods[j].path,
                                        &s->svcs[i].svc->methods[j], &s->svcs[i], j};
  qsort(s->routes, s->nroutes, sizeof *s->routes, route_cmp);
  s->state = SRV_RUNNING;
  s->last_tick_ms = nnrpc__now_ms();
  atomic_store(&s->stop_threads, false);
  int rc = 0;
  for (unsigned i = 0; rc == 0 && i < s->o.workers + 1; i++) {
    rc = pthread_create(&s->workers[i], NULL, pool_main, s);
    if (rc == 0) s->nworkers++;
  }
  s->threads_started = true;
  pthread_mutex_unlock(&s->mu);
  return rc == 0 ? NNRPC_OK : NNRPC_INTERNAL;
}

/* Every reply has left: nothing queued, and each connection's last message
 * acked or handed to nanomsg long enough ago to be on the wire (an idle
 * client defers its ack to its next message, which may never come). */
#define DRAIN_SENT_MS 100
static bool queues_empty_locked(nnrpc_server *s) {
  int64_t now = nnrpc__now_ms();
  for (size_t i = 0; i < s->conns.nb; i++)
    for (nnrpc__hnode *n = s->conns.b[i]; n; n = n->next) {
      conn *c = (conn *)n;
      if (!c->dead && (c->qhead || (c->outstanding && now - c->sent_ms < DRAIN_SENT_MS))) return false;
    }
  return true;
}

static void wait_until(nnrpc_server *s, int64_t deadline_us, bool (*done)(nnrpc_server *)) {
  while (!done(s) && nnrpc__now_us() < deadline_us) {
    int64_t t = nnrpc__now_us() + TICK_MS * 1000;
    if (t > deadline_us) t = deadline_us;
    struct timespec ts = nnrpc__ts_of_us(t);
    pthread_cond_timedwait(&s->idle_cv, &s->mu, &ts);
  }
}
static bool no_active(nnrpc_server *s) { return s->active == 0; }
static bool no_stream_threads(nnrpc_server *s) { return s->stream_threads == 0; }
static bool drained(nnrpc_server *s) { return queues_empty_locked(s); }

NNRPC_API void nnrpc_server_shutdown(nnrpc_server *s, int64_t grace_ms) {
  if (!s) return;
  pthread_mutex_lock(&s->mu);
  if (s->state == SRV_NEW) s->state = SRV_STOPPED;
  if (s->state != SRV_RUNNING) {
    pthread_mutex_unlock(&s->mu);
    return;
  }
  s->state = SRV_DRAINING; /* new calls now get UNAVAILABLE */
  if (s->health) { /* watchers hear NOT_SERVING; health.c locks h then s, never under s */
    pthread_mutex_unlock(&s->mu);
    nnrpc__health_changed(s->health);
    pthread_mutex_lock(&s->mu);
  }
  wait_until(s, nnrpc__now_us() + (grace_ms > 0 ? grace_ms : 0) * 1000, no_active);
  if (s->active) { /* grace is over: cancel the rest and wait for handlers */
    nnrpc_ctx *fire = NULL;
    for (size_t j = 0; j < s->calls.nb; j++)
      for (nnrpc__hnode *m = s->calls.b[j]; m; m = m->next) cancel_locked((nnrpc_ctx *)m, &fire);
    pthread_mutex_unlock(&s->mu);
    run_cancel_callbacks(fire);
    pthread_mutex_lock(&s->mu);
    wait_until(s, INT64_MAX, no_active);
  }
  wait_until(s, INT64_MAX, no_stream_threads); /* they touch s until their last unlock */
  /* Let the last replies reach their clients (bounded: a dead client never acks). */
  wait_until(s, nnrpc__now_us() + 1000 * 1000, drained);
  s->state = SRV_STOPPED;
  atomic_store(&s->stop_threads, true);
  pthread_cond_broadcast(&s->work_cv);
  pthread_mutex_unlock(&s->mu);
  for (unsigned i = 0; i < s->nworkers; i++) pthread_join(s->workers[i], NULL);
  ssize_t w = write(s->wake[1], "x", 1);
  (void)w;
}

NNRPC_API void nnrpc_server_stop_async(nnrpc_server *s) {
  if (!s) return;
  atomic_store(&s->stop_requested, true);
  int saved = errno;
  ssize_t w = write(s->wake[1], "x", 1);
  (void)w;
  errno = saved;
}

NNRPC_API int nnrpc_server_run(nnrpc_server *s) {
  int rc = nnrpc_server_start(s);
  if (rc) return rc;
  for (;;) {
    struct pollfd p = {s->wake[0], POLLIN, 0};
    poll(&p, 1, 200);
    char buf[16];
    while (read(s->wake[0], buf, sizeof buf) > 0) {
    }
    if (atomic_load(&s->stop_requested)) nnrpc_server_shutdown(s, 5000);
    pthread_mutex_lock(&s->mu);
    bool stopped = s->state == SRV_STOPPED;
    pthread_mutex_unlock(&s->mu);
    if (stopped) return NNRPC_OK;
  }
}

NNRPC_API void nnrpc_server_close(nnrpc_server *s) {
  if (!s) return;
  nnrpc_server_shutdown(s, 0);
  if (s->sock >= 0) {
    bool inproc = atomic_load(&s->inproc);
    if (inproc) pthread_mutex_lock(&nnrpc__inproc_mu); /* see internal.h: no inproc send in flight */
    nn_close(s->sock);
    if (inproc) pthread_mutex_unlock(&nnrpc__inproc_mu);
  }
  /* Calls still queued at shutdown were answered; free whatever remains. */
  for (size_t j = 0; s->calls.b && j < s->calls.nb; j++)
    for (nnrpc__hnode *m = s->calls.b[j], *next; m; m = next) {
      next = m->next;
      ctx_free((nnrpc_ctx *)m);
    }
  for (size_t i = 0; s->conns.b && i < s->conns.nb; i++)
    for (nnrpc__hnode *n = s->conns.b[i], *next; n; n = next) {
      next = n->next;
      free_frames(((conn *)n)->qhead);
      free(n);
    }
  nnrpc__hmap_free(&s->calls);
  nnrpc__hmap_free(&s->conns);
  for (size_t i = 0; i < s->nsvcs; i++) {
    free(s->svcs[i].handlers);
    free(s->svcs[i].present);
  }
  free(s->svcs);
  free(s->routes);
  for (size_t i = 0; i < s->nics; i++) free(s->ics[i].owned);
  nnrpc__health_free(s->health);
  free(s->ics);
  free(s->workers);
  if (s->wake[0] > 0) close(s->wake[0]);
  if (s->wake[1] > 0) close(s->wake[1]);
  pthread_mutex_destroy(&s->mu);
  pthread_mutex_destroy(&s->send_mu);
  pthread_cond_destroy(&s->work_cv);
  pthread_cond_destroy(&s->idle_cv);
  free(s);
}

/* ---------------------------------------------------------------- handler context */

NNRPC_API void *nnrpc_ctx_user_data(const nnrpc_ctx *x) { return x->rt->se->user_data; }
NNRPC_API const char *nnrpc_ctx_method(const nnrpc_ctx *x) { return x->rt->m->path; }
NNRPC_API const nnrpc_metadata *nnrpc_ctx_headers(const nnrpc_ctx *x) { return &x->headers; }

NNRPC_API int64_t nnrpc_ctx_remaining_ms(const nnrpc_ctx *x) {
  if (x->deadline_us == NNRPC_NO_DEADLINE) return INT64_MAX;
  return (x->deadline_us - nnrpc__now_us()) / 1000;
}

NNRPC_API bool nnrpc_ctx_is_cancelled(const nnrpc_ctx *x) {
  return atomic_load(&((nnrpc_ctx *)x)->cancelled) ||
         (x->deadline_us != NNRPC_NO_DEADLINE && nnrpc__now_us() >= x->deadline_us);
}

NNRPC_API int nnrpc_ctx_add_trailer(nnrpc_ctx *x, const char *key, const void *value, size_t len) {
  if (x->trailers.n >= x->srv->o.max_metadata_count ||
      x->trailers.bytes + strlen(key) + len > x->srv->o.max_metadata_bytes)
    return NNRPC_RESOURCE_EXHAUSTED;
  return nnrpc_metadata_add(&x->trailers, key, value, len);
}

NNRPC_API void *nnrpc_ctx_alloc(nnrpc_ctx *x, size_t n) { return nnrpc__arena_alloc(&x->arena, n); }

NNRPC_API char *nnrpc_ctx_strdup(nnrpc_ctx *x, const char *str) {
  size_t n = strlen(str) + 1;
  char *p = nnrpc__arena_alloc(&x->arena, n);
  if (p) memcpy(p, str, n);
  return p;
}

NNRPC_API ProtobufCAllocator *nnrpc_ctx_allocator(nnrpc_ctx *x) { return &x->arena.pb; }

NNRPC_API int nnrpc_ctx_fail(nnrpc_ctx *x, int code, const char *fmt, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  free(x->err_msg);
  x->err_msg = strdup(buf);
  return code;
}

NNRPC_API int nnrpc_ctx_read(nnrpc_ctx *x, ProtobufCMessage **msg) {
  if (msg) *msg = NULL;
  if (!x || !msg || !x->streaming) return 0;
  nnrpc_server *s = x->srv;
  conn *c = x->conn;
  pthread_mutex_lock(&s->mu);
  while (!x->in_head && !x->half_closed && !atomic_load(&x->cancelled)) pthread_cond_wait(&x->cv, &s->mu);
  inmsg *m = atomic_load(&x->cancelled) ? NULL : x->in_head;
  outframe *credit = NULL;
  if (m) {
    x->in_head = m->next;
    if (!x->in_head) x->in_tail = NULL;
    x->in_bytes -= NNRPC_MSG_COST(m->len);
    x->uncredited += NNRPC_MSG_COST(m->len);
    /* Return credit in batches of half a window: one WINDOW frame per
     * message would double the frames of a small-message stream. */
    if (x->uncredited >= s->o.stream_window / 2 && !c->dead) {
      uint8_t w[4];
      nnrpc__put32(w, (uint32_t)x->uncredited);
      credit = make_frame(NNRPC_F_WINDOW, 0, x->id, NULL, NULL, 0, w, 4);
      if (credit) {
        x->uncredited = 0;
        conn_enqueue(c, credit);
      }
    }
  }
  pthread_mutex_unlock(&s->mu);
  if (credit) conn_flush(s, c);
  if (!m) return 0;
  nnrpc__budget b;
  nnrpc__budget_init(&b, s->o.max_decode_bytes);
  bool too_deep;
  const char *why = NULL;
  *msg = nnrpc__decode(x->rt->m->input, m->p, m->len, s->o.max_decode_depth, &b.pb, &too_deep, &why);
  nnrpc__rxbuf_unref(m->rx);
  free(m);
  if (*msg) return 1;
  nnrpc_ctx *fire = NULL;
  pthread_mutex_lock(&s->mu);
  force_locked(x, b.over ? NNRPC_RESOURCE_EXHAUSTED : NNRPC_INVALID_ARGUMENT,
               b.over ? "stream message exceeds max_decode_bytes when decoded"
                      : "stream message cannot be decoded (malformed or nested too deep)",
               &fire);
  pthread_mutex_unlock(&s->mu);
  run_cancel_callbacks(fire);
  return 0;
}

NNRPC_API int nnrpc_ctx_write(nnrpc_ctx *x, const ProtobufCMessage *msg) {
  if (!x || !msg || !x->streaming) return NNRPC_INVALID_ARGUMENT;
  nnrpc_method_kind k = x->rt->m->kind;
  if ((k != NNRPC_SERVER_STREAMING && k != NNRPC_BIDI_STREAMING) || msg->descriptor != x->rt->m->output)
    return NNRPC_INVALID_ARGUMENT;
  nnrpc_server *s = x->srv;
  size_t size = protobuf_c_message_get_packed_size(msg);
  if (size > s->o.max_send_msg || (x->max_reply && size > x->max_reply)) return NNRPC_RESOURCE_EXHAUSTED;
  outframe *f = make_frame(NNRPC_F_MESSAGE, 0, x->id, NULL, msg, size, NULL, 0);
  if (!f) return NNRPC_RESOURCE_EXHAUSTED;
  conn *c = x->conn;
  pthread_mutex_lock(&s->mu);
  while (x->send_credit <= 0 && !atomic_load(&x->cancelled)) pthread_cond_wait(&x->cv, &s->mu);
  bool ok = !atomic_load(&x->cancelled) && !c->dead;
  if (ok) {
    x->send_credit -= (int64_t)NNRPC_MSG_COST(size);
    x->tx_payload += size;
    conn_enqueue(c, f);
  }
  pthread_mutex_unlock(&s->mu);
  if (!ok) {
    free_frames(f);
    return NNRPC_CANCELLED;
  }
  conn_flush(s, c);
  return NNRPC_OK;
}

NNRPC_API void nnrpc_ctx_finish(nnrpc_ctx *x, int code) {
  if (!x) return;
  finish_call(x->srv, x, code, x->reply);
}

NNRPC_API void nnrpc_ctx_on_cancel(nnrpc_ctx *x, nnrpc_cancel_fn fn, void *user_data) {
  nnrpc_server *s = x->srv;
  nnrpc_ctx *fire = NULL;
  pthread_mutex_lock(&s->mu);
  x->on_cancel = fn;
  x->cancel_user = user_data;
  x->cancel_fired = false;
  if (fn && nnrpc_ctx_is_cancelled(x)) cancel_locked(x, &fire);
  pthread_mutex_unlock(&s->mu);
  run_cancel_callbacks(fire);
}

/* ---------------------------------------------------------------- for health.c */

bool nnrpc__server_knows_service(nnrpc_server *s, const char *name) {
  bool found = false;
  pthread_mutex_lock(&s->mu);
  for (size_t i = 0; i < s->nsvcs && !found; i++) found = strcmp(s->svcs[i].svc->name, name) == 0;
  pthread_mutex_unlock(&s->mu);
  return found;
}

bool nnrpc__server_draining(nnrpc_server *s) {
  pthread_mutex_lock(&s->mu);
  bool d = s->state != SRV_RUNNING && s->state != SRV_NEW;
  pthread_mutex_unlock(&s->mu);
  return d;
}

int nnrpc__server_attach_health(nnrpc_server *s, nnrpc__health *h) {
  pthread_mutex_lock(&s->mu);
  int rc = s->state != SRV_NEW ? NNRPC_FAILED_PRECONDITION : s->health ? NNRPC_ALREADY_EXISTS : NNRPC_OK;
  if (rc == NNRPC_OK) s->health = h;
  pthread_mutex_unlock(&s->mu);
  return rc;
}

nnrpc__health *nnrpc__server_health(nnrpc_server *s) {
  pthread_mutex_lock(&s->mu);
  nnrpc__health *h = s->health;
  pthread_mutex_unlock(&s->mu);
  return h;
}

NNRPC_API void nnrpc_ctx_bytes(const nnrpc_ctx *x, uint64_t *received, uint64_t *sent) {
  if (received) *received = x ? x->rx_payload : 0;
  if (sent) *sent = x ? x->tx_payload : 0;
}

/* for observe.c: every method of every service added so far */
size_t nnrpc__server_methods(nnrpc_server *s, const nnrpc_method **out, size_t max) {
  size_t n = 0;
  pthread_mutex_lock(&s->mu);
  for (size_t i = 0; i < s->nsvcs; i++)
    for (size_t j = 0; j < s->svcs[i].svc->n_methods; j++, n++)
      if (n < max) out[n] = &s->svcs[i].svc->methods[j];
  pthread_mutex_unlock(&s->mu);
  return n;
}

int nnrpc__server_add_interceptor_owned(nnrpc_server *s, const nnrpc_server_interceptor *ic, void *owned) {
  return add_interceptor(s, ic, owned);
}

void *nnrpc__server_interceptor_user(nnrpc_server *s, void (*after)(nnrpc_ctx *, int, int64_t, void *)) {
  void *user = NULL;
  pthread_mutex_lock(&s->mu);
  for (size_t i = 0; i < s->nics && !user; i++)
    if (s->ics[i].ic.after == after) user = s->ics[i].ic.user;
  pthread_mutex_unlock(&s->mu);
  return user;
}

/* for reflection.c: the services added so far, in order */
size_t nnrpc__server_services(nnrpc_server *s, const nnrpc_service **out, size_t max) {
  pthread_mutex_lock(&s->mu);
  size_t n = s->nsvcs;
  for (size_t i = 0; i < n && i < max; i++) out[i] = s->svcs[i].svc;
  pthread_mutex_unlock(&s->mu);
  return n;
}
