/* The client channel: one raw REQ socket and one receive thread that acks
 * every server message, routes frames to calls by call id, expires deadlines of
 * async calls, flushes the send queue, delivers async completions and runs the
 * keepalive. A blocking caller alone on the channel receives its own reply
 * instead (rxmode, lead()): one thread receives at a time. Blocking and async calls are the same object (struct nnrpc_call)
 * on the same path; they differ only in how completion is reported (a
 * condition variable, a callback, or a completion queue).
 *
 * Keepalive (docs/protocol.md, "Liveness"): while calls are in flight the
 * receiver pings every keepalive_ms, listing the ids of calls sent before the
 * previous ping. The server answers with the ids it does not know: those
 * calls were lost with a connection or a server restart and fail with
 * UNAVAILABLE. No answer to a ping within keepalive_timeout_ms fails every
 * call in flight with UNAVAILABLE.
 */
#define _GNU_SOURCE /* ppoll: the deferred ack needs sub-millisecond waits */
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
/* How long the ack of a message that left no call in flight may wait to
 * ride on the next message to the server (usually the caller's next CALL). */
#define ACK_DELAY_US 200
/* The same when a caller received the message: nobody tells the receive
 * thread (waking it would cost as much as the hand-off the caller saved), it
 * finds the ack on its next periodic turn (keepalive_ms, 100 ms at most) and
 * sends it if it is still owed this much later. The server's shutdown does
 * not wait for such acks (docs/protocol.md, "Acknowledgements"). */
#define IDLE_ACK_DELAY_US 20000
/* A channel that started no call for this long has its receive thread read
 * again, so that what a server sends after the last call (a reply to a
 * call given up on) is acked and dropped rather than left until the next call. */
#define IDLE_WATCH_US 50000
/* Blocking callers' CALL frames of up to TX_SMALL bytes: while one caller
 * sends, the others append theirs to the channel's batch (up to TX_BATCH)
 * and go on to wait for their replies; the sender sends the batch as one
 * message after its own. At 64 callers, one nn_send (socket lock, sendmsg,
 * TCP segment, server wake-up) per call was the client's largest cost. The
 * sender never waits for anybody else's call: a batch nanomsg does not take
 * at once, or past TX_ROUNDS batches, goes back to its callers (fin =
 * FIN_SEND_YOURSELF), who send their own messages with their own deadlines. */
#define TX_SMALL (8u << 10)
#define TX_BATCH (64u << 10)
#define TX_ROUNDS 8
enum { FIN_WAIT, FIN_DONE, FIN_SEND_YOURSELF }; /* nnrpc_call.fin */

/* Who receives from the socket (nnrpc_channel.rxmode, written under mu):
 * never two threads at once, so a message is never taken by a thread that
 * has to hand it to another. */
enum {
  RX_PARKED, /* no call in flight: nobody receives */
  RX_THREAD, /* the receive thread */
  RX_CALLER, /* a blocking caller alone on the channel receives its own reply */
};

typedef struct nnrpc_call ccall;

/* A CALL message in the batch: the caller's own, owned by the batch. */
typedef struct txe {
  uint64_t id;
  void *msg;
  size_t frame_len;
} txe;

/* The channel's client interceptors, shared by its calls: a call that is
 * finished after its channel closed still runs its after hooks. */
typedef struct ic_block {
  atomic_int refs;
  size_t n;
  nnrpc_client_interceptor ic[];
} ic_block;

static void ic_unref(ic_block *b) {
  if (b && atomic_fetch_sub(&b->refs, 1) == 1) free(b);
}


/* A stream message received and not yet read. */
typedef struct cmsg {
  struct cmsg *next;
  nnrpc__rxbuf *rx;
  const uint8_t *p;
  uint32_t len;
} cmsg;

struct nnrpc_call {
  nnrpc__hnode node; /* k1 = call id; in ch->calls while not done */
  _Atomic(nnrpc_channel *) ch; /* NULL once completed: nothing left to cancel */
  atomic_bool delivered;
  bool done, sent, async;
  atomic_uint_fast64_t ping_epoch; /* ping counter when the call was sent */
  int code;            /* >= 0: completed by the channel itself (no STATUS frame) */
  const char *why;     /* static text for `code` */
  nnrpc__rxbuf *rx;    /* the message holding this call's STATUS frame */
  nnrpc__frame f;
  const nnrpc_method *m;
  /* limits copied at start, so finish never touches the channel */
  size_t max_recv, max_send, max_decode, max_md_bytes, max_md_count;
  unsigned max_depth;
  /* blocking calls: a unary caller waits on the futex word fin, not on the
   * channel's mu, so that waking it makes it fight nobody for a lock
   * (streams wait on cv with mu) */
  pthread_cond_t cv;
  atomic_uint fin; /* unary: FIN_DONE once completed */
  bool wake_fd;    /* on a deferred wake list: wake through leadfd as well */
  bool leading; /* this call's thread receives for the channel (RX_CALLER) */
  /* async calls */
  nnrpc_done_fn done_fn;
  nnrpc_cq *cq;
  void *user;
  int64_t deadline_us;
  size_t heap_i;        /* index in ch->heap while pending, else SIZE_MAX */
  void *queued_msg;     /* CALL message waiting in the send queue */
  ccall *sq_prev, *sq_next;
  ccall *next_done;     /* completion list / cq list */
  /* streams (mu while not done; the owner's alone once done) */
  bool stream, half_closed;
  cmsg *in_head, *in_tail;
  size_t in_bytes, uncredited;
  int64_t send_credit;
  uint32_t window;
  /* client interceptors */
  ic_block *ics;     /* a reference, or NULL */
  int64_t sent_us;   /* when the call was built, for after hooks */
  size_t frame_len;  /* its CALL frame's bytes (build_call_msg) */
};

/* The public stream handle is the call itself. */
struct nnrpc_stream {
  ccall c;
};

struct nnrpc_cq {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int efd; /* semaphore eventfd: its count is the number of queued calls */
  ccall *head, *tail;
  size_t n;
};

struct nnrpc_channel {
  nnrpc_channel_opts o;
  int sock, rcvfd, sndfd, wakefd;
  int leadfd;      /* eventfd: wakes the receiving caller (its call completed elsewhere) */
  atomic_int rxmode;
  atomic_size_t ncalls; /* calls.n, for the receive thread's unlocked look */
  atomic_uint_fast64_t started; /* calls registered so far */
  atomic_bool blocking_seen;    /* a blocking unary call was made: parking may pay */
  pthread_mutex_t mu;
  pthread_cond_t users_cv;
  nnrpc__hmap calls;
  atomic_uint_fast64_t next_id;
  unsigned nsent;  /* calls sent and not done */
  atomic_uint users;  /* threads inside a blocking call */
  atomic_bool closing;
  pthread_t thr;
  atomic_bool stop;
  ccall **heap;    /* async calls by deadline (min-heap) */
  size_t nheap, capheap;
  ccall *sq_head, *sq_tail;       /* async CALL messages not yet accepted by nanomsg */
  ccall *done_head, *done_tail;   /* async completions to deliver */
  /* Hints for the receiver thread, written under mu: it skips taking mu
   * for work that is not there (the lock ping-pong with callers woken from
   * their condition variable cost several futex calls per call). */
  atomic_bool has_done, has_sq;
  atomic_size_t heap_n;
  nnrpc_metadata *call_md;  /* headers of every call (opts.call_headers, bearer_token) */
  bool inproc;              /* inproc:// (see nnrpc__inproc_mu) */
  ic_block *ics;            /* opts.interceptors, or NULL */
  /* the batch of blocking callers' CALL messages (TX_SMALL), under txq_mu */
  pthread_mutex_t txq_mu;
  bool tx_sending;          /* a caller is sending: append to the batch */
  struct txe *tx;           /* the batch: each call's own message, by call id */
  size_t tx_n, tx_cap, tx_bytes;
  /* receiver-thread state */
  atomic_uint ack_owed;  /* seq of a server message not yet acknowledged; 0: none */
  atomic_bool ack_urgent; /* a receiving caller could not send an urgent ack: send it now */
  uint32_t ack_seq;      /* receiver thread: the owed ack ack_due_us was set for */
  int64_t ack_due_us;    /* receiver thread: when that ack must go out alone */
  bool send_blocked;     /* receiver thread: nanomsg refused a send; poll for writability */
  atomic_uint_fast64_t ping_count; /* written under mu */
  int64_t last_ping_us, last_rx_us;
  atomic_bool ping_outstanding;
};

/* The call whose thread is receiving for its channel, and whether it has
 * completed its own call meanwhile (complete_locked, same thread). */
static _Thread_local ccall *tl_leading;
static _Thread_local bool tl_lead_done;
/* Set while routing a message: blocking callers completed meanwhile are
 * woken after the channel mutex is released (wake_callers), so that neither
 * the wake-up system calls nor the woken threads hold up the others on mu. */
static _Thread_local ccall **tl_wake;

static void set_defaults(nnrpc_channel_opts *o) {
  if (!o->default_timeout_ms) o->default_timeout_ms = 30000;
  if (!o->max_send_msg) o->max_send_msg = 4u << 20;
  if (!o->max_recv_msg) o->max_recv_msg = 4u << 20;
  if (!o->max_metadata_bytes) o->max_metadata_bytes = 8192;
  if (!o->max_metadata_count) o->max_metadata_count = 64;
  if (!o->max_in_flight) o->max_in_flight = 10000;
  if (!o->stream_window) o->stream_window = 256u << 10;
  if (!o->keepalive_ms) o->keepalive_ms = 1000;
  if (!o->keepalive_timeout_ms) o->keepalive_timeout_ms = 5000;
  if (!o->sndbuf) o->sndbuf = 1 << 20;
  if (!o->rcvbuf) o->rcvbuf = 1 << 20;
  if (!o->max_decode_depth) o->max_decode_depth = 64;
  if (!o->max_decode_bytes) o->max_decode_bytes = 64u << 20;
}

/* Makes an eventfd readable (poll() on it returns). */
static void efd_poke(int fd) {
  uint64_t one = 1;
  ssize_t w = write(fd, &one, sizeof one);
  (void)w;
}

static void wake(nnrpc_channel *ch) { efd_poke(ch->wakefd); }

/* ---------------------------------------------------------------- sending */

/* nn_send (non-blocking) of a client message with the owed ack, if any,
 * written into its envelope: acks ride on calls instead of costing a message
 * of their own. 0 or -1 (errno); on failure the ack is owed again. */
static int send_with_ack(nnrpc_channel *ch, void **msg) {
  uint32_t a = atomic_exchange(&ch->ack_owed, 0);
  nnrpc__put32((uint8_t *)*msg + NNRPC_REQID_LEN + 4, a);
  if (ch->inproc) pthread_mutex_lock(&nnrpc__inproc_mu);
  int sent = nn_send(ch->sock, msg, NN_MSG, NN_DONTWAIT);
  if (ch->inproc) pthread_mutex_unlock(&nnrpc__inproc_mu);
  if (sent >= 0) return 0;
  int e = errno;
  unsigned zero = 0;
  if (a) atomic_compare_exchange_strong(&ch->ack_owed, &zero, a);
  errno = e;
  return -1;
}

/* Sends one message without blocking past deadline_us. Takes ownership of
 * msg (an nn_allocmsg buffer): frees it if it cannot be sent. Returns 0 or an
 * nnrpc code. */
static int send_msg(nnrpc_channel *ch, void *msg, int64_t deadline_us) {
  for (;;) {
    if (send_with_ack(ch, &msg) == 0) return NNRPC_OK;
    int rc = NNRPC_OK;
    int64_t left = deadline_us == NNRPC_NO_DEADLINE ? 100000 : deadline_us - nnrpc__now_us();
    if (errno != EAGAIN)
      rc = errno == EBADF || errno == ETERM ? NNRPC_CANCELLED : NNRPC_UNAVAILABLE;
    else if (left <= 0)
      rc = NNRPC_DEADLINE_EXCEEDED;
    else if (atomic_load(&ch->stop) || atomic_load(&ch->closing))
      rc = NNRPC_CANCELLED;
    if (rc) {
      nn_freemsg(msg);
      return rc;
    }
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
  send_msg(ch, msg, nnrpc__now_us() + 200000);
}

/* Encodes the CALL frame of a unary call. Returns 0 or an nnrpc code. */
static bool headers_too_big(const nnrpc_channel *ch, const nnrpc_metadata *hd);

/* Runs the channel's before hooks; on NNRPC_OK *merged (if they added
 * headers) holds the call's headers and theirs, to be freed by the caller. */
static int run_before(nnrpc_channel *ch, ccall *c, const nnrpc_metadata *hd, int64_t left_us,
                      nnrpc_metadata **merged) {
  *merged = NULL;
  c->sent_us = nnrpc__now_us();
  if (!ch->ics) return NNRPC_OK;
  c->ics = ch->ics;
  atomic_fetch_add(&c->ics->refs, 1);
  nnrpc_metadata *m = nnrpc_metadata_new();
  if (!m) return NNRPC_RESOURCE_EXHAUSTED;
  int rc = NNRPC_OK;
  for (size_t i = 0; hd && rc == NNRPC_OK && i < hd->n; i++)
    rc = nnrpc_metadata_add(m, hd->e[i].key, hd->e[i].value, hd->e[i].len);
  size_t own = m->n;
  nnrpc_client_call info = {c->m->path, c->m->kind, left_us ? (left_us + 999) / 1000 : -1, hd, NULL};
  for (size_t i = 0; rc == NNRPC_OK && i < ch->ics->n; i++) {
    if (!ch->ics->ic[i].before) continue;
    rc = ch->ics->ic[i].before(&info, m, ch->ics->ic[i].user);
    if (rc != NNRPC_OK) {
      if (rc < 0 || rc >= NNRPC_CODE_COUNT) rc = NNRPC_UNKNOWN;
      c->why = info.reject_message ? info.reject_message : "refused by a client interceptor";
    }
  }
  if (rc == NNRPC_OK && m->n > own) {
    if (headers_too_big(ch, m)) {
      rc = NNRPC_RESOURCE_EXHAUSTED;
      c->why = "headers added by client interceptors exceed the metadata limits";
    } else {
      *merged = m;
      return NNRPC_OK;
    }
  }
  nnrpc_metadata_free(m);
  return rc;
}

static void run_after(ccall *c, int code) {
  if (!c->ics) return;
  int64_t us = nnrpc__now_us() - c->sent_us;
  for (size_t i = c->ics->n; i-- > 0;)
    if (c->ics->ic[i].after) c->ics->ic[i].after(c->m->path, code, us, c->ics->ic[i].user);
  ic_unref(c->ics);
  c->ics = NULL;
}

static int build_call_msg(nnrpc_channel *ch, ccall *c, const ProtobufCMessage *req, size_t size,
                          const nnrpc_metadata *hd, int64_t deadline, void **msg) {
  int64_t left = deadline == NNRPC_NO_DEADLINE ? 0 : deadline - nnrpc__now_us();
  if (deadline != NNRPC_NO_DEADLINE && left < 1) left = 1; /* late: the server says so */
  nnrpc_metadata *merged;
  int brc = run_before(ch, c, hd, left, &merged);
  if (brc) return brc;
  if (merged) hd = merged;
  nnrpc__hdr h;
  if (nnrpc__hdr_build2(&h, c->m->path, (uint64_t)left, ch->call_md, hd, 0, NULL, ch->o.max_recv_msg)) {
    nnrpc_metadata_free(merged);
    return NNRPC_RESOURCE_EXHAUSTED;
  }
  if (c->stream) h.pb.window = c->window;
  /* A client or bidi stream starts without a message and stays open. */
  uint8_t flags = req ? NNRPC_FF_HAS_MESSAGE | NNRPC_FF_END_STREAM : 0;
  if (!req) size = 0;
  int rc = NNRPC_OK;
  size_t meta = protobuf_c_message_get_packed_size(&h.pb.base);
  uint8_t *p = meta <= UINT16_MAX ? new_msg(NNRPC_FRAME_HDR_LEN + meta + size, 0, msg) : NULL;
  if (!p) {
    rc = NNRPC_RESOURCE_EXHAUSTED;
  } else {
    c->frame_len = NNRPC_FRAME_HDR_LEN + meta + size;
    nnrpc__frame_put(p, NNRPC_F_CALL, flags, (uint16_t)meta, (uint32_t)size, c->node.k1);
    protobuf_c_message_pack(&h.pb.base, p + NNRPC_FRAME_HDR_LEN);
    if (req) protobuf_c_message_pack(req, p + NNRPC_FRAME_HDR_LEN + meta);
  }
  nnrpc__hdr_done(&h);
  nnrpc_metadata_free(merged);
  return rc;
}

/* ---------------------------------------------------------------- deadline heap (mu held) */

static void heap_swap(nnrpc_channel *ch, size_t i, size_t j) {
  ccall *t = ch->heap[i];
  ch->heap[i] = ch->heap[j];
  ch->heap[j] = t;
  ch->heap[i]->heap_i = i;
  ch->heap[j]->heap_i = j;
}

static void heap_fix(nnrpc_channel *ch, size_t i) {
  while (i > 0 && ch->heap[(i - 1) / 2]->deadline_us > ch->heap[i]->deadline_us) {
    heap_swap(ch, i, (i - 1) / 2);
    i = (i - 1) / 2;
  }
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, m = i;
    if (l < ch->nheap && ch->heap[l]->deadline_us < ch->heap[m]->deadline_us) m = l;
    if (r < ch->nheap && ch->heap[r]->deadline_us < ch->heap[m]->deadline_us) m = r;
    if (m == i) return;
    heap_swap(ch, i, m);
    i = m;
  }
}

static int heap_add(nnrpc_channel *ch, ccall *c) {
  if (ch->nheap == ch->capheap) {
    size_t cap = ch->capheap ? ch->capheap * 2 : 64;
    ccall **h = realloc(ch->heap, cap * sizeof *h);
    if (!h) return -1;
    ch->heap = h;
    ch->capheap = cap;
  }
  c->heap_i = ch->nheap;
  ch->heap[ch->nheap++] = c;
  atomic_store(&ch->heap_n, ch->nheap);
  heap_fix(ch, c->heap_i);
  return 0;
}

static void heap_del(nnrpc_channel *ch, ccall *c) {
  size_t i = c->heap_i;
  if (i == SIZE_MAX) return;
  c->heap_i = SIZE_MAX;
  atomic_store(&ch->heap_n, ch->nheap - 1);
  if (i != --ch->nheap) {
    ch->heap[i] = ch->heap[ch->nheap];
    ch->heap[i]->heap_i = i;
    heap_fix(ch, i);
  }
}

/* ---------------------------------------------------------------- completion (mu held) */

static void sq_remove(nnrpc_channel *ch, ccall *c) {
  if (c->sq_prev)
    c->sq_prev->sq_next = c->sq_next;
  else
    ch->sq_head = c->sq_next;
  if (c->sq_next)
    c->sq_next->sq_prev = c->sq_prev;
  else
    ch->sq_tail = c->sq_prev;
  c->sq_prev = c->sq_next = NULL;
  atomic_store(&ch->has_sq, ch->sq_head != NULL);
}

/* Sets a blocking unary caller's fin and wakes it: on the futex, or through
 * leadfd when it is receiving (it waits in poll() then). `leading` is read
 * by the caller of this function: c may be gone once fin is set. */
static void set_fin(nnrpc_channel *ch, atomic_uint *fin, unsigned v, bool leading) {
  atomic_store(fin, v);
  nnrpc__futex_wake(fin);
  if (leading) efd_poke(ch->leadfd);
}

/* Completes a call. code < 0: a STATUS frame was stored in c->f/rx. */
static void complete_locked(nnrpc_channel *ch, ccall *c, int code, const char *why) {
  if (c->done) return;
  nnrpc__hmap_del(&ch->calls, c->node.k1, 0);
  atomic_store_explicit(&ch->ncalls, ch->calls.n, memory_order_relaxed);
  if (c->sent) ch->nsent--;
  c->done = true;
  c->code = code;
  c->why = why;
  heap_del(ch, c);
  atomic_store(&c->ch, NULL);
  if (!c->async && c->queued_msg) { /* a batch gave it back, unsent */
    nn_freemsg(c->queued_msg);
    c->queued_msg = NULL;
  }
  if (!c->async) {
    if (c->stream) {
      pthread_cond_broadcast(&c->cv); /* a reader and a writer may both wait */
    } else if (c == tl_leading) { /* the receiving caller completed its own call */
      tl_lead_done = true;
      atomic_store(&c->fin, FIN_DONE);
    } else if (tl_wake) {
      c->wake_fd = c->leading;
      c->next_done = *tl_wake;
      *tl_wake = c;
    } else {
      set_fin(ch, &c->fin, FIN_DONE, c->leading);
    }
    return;
  }
  if (c->queued_msg) { /* never reached nanomsg: nothing on the wire */
    sq_remove(ch, c);
    nn_freemsg(c->queued_msg);
    c->queued_msg = NULL;
  }
  c->next_done = NULL; /* delivered by the receive thread */
  if (ch->done_tail)
    ch->done_tail->next_done = c;
  else
    ch->done_head = c;
  ch->done_tail = c;
  atomic_store(&ch->has_done, true);
}

/* Wakes the blocking callers tl_wake collected (mu not held). A caller
 * leaves only once it has seen fin: nothing of c is read after setting it. */
static void wake_callers(nnrpc_channel *ch, ccall *list) {
  while (list) {
    ccall *c = list;
    list = c->next_done;
    set_fin(ch, &c->fin, FIN_DONE, c->wake_fd);
  }
}

static void fail_all_locked(nnrpc_channel *ch, int code, const char *why, bool only_sent) {
  for (size_t i = 0; i < ch->calls.nb; i++)
    for (nnrpc__hnode *n = ch->calls.b[i], *next; n; n = next) {
      next = n->next;
      if (!only_sent || ((ccall *)n)->sent) complete_locked(ch, (ccall *)n, code, why);
    }
}

static void cq_push(nnrpc_cq *q, ccall *c) {
  pthread_mutex_lock(&q->mu);
  c->next_done = NULL;
  if (q->tail)
    q->tail->next_done = c;
  else
    q->head = c;
  q->tail = c;
  q->n++;
  efd_poke(q->efd);
  pthread_cond_signal(&q->cv);
  pthread_mutex_unlock(&q->mu);
}

/* Receive thread: hands completed async calls to their callback or queue. */
static void deliver(nnrpc_channel *ch) {
  if (!atomic_load(&ch->has_done)) return;
  pthread_mutex_lock(&ch->mu);
  ccall *c = ch->done_head;
  ch->done_head = ch->done_tail = NULL;
  atomic_store(&ch->has_done, false);
  pthread_mutex_unlock(&ch->mu);
  while (c) {
    ccall *next = c->next_done;
    /* Read before `delivered`: from then on a caller polling
     * nnrpc_call_is_done may finish (free) c. */
    nnrpc_cq *cq = c->cq;
    nnrpc_done_fn fn = c->done_fn;
    void *user = c->user;
    atomic_store(&c->delivered, true);
    if (cq)
      cq_push(cq, c);
    else
      fn(c, user); /* may finish (free) c: read nothing after */
    c = next;
  }
}

/* ---------------------------------------------------------------- receiver thread */

/* A MESSAGE or WINDOW frame of a stream. Returns a call id to send CANCEL
 * for when the server broke the stream's rules, else 0. mu held. */
static uint64_t on_stream_frame_locked(nnrpc_channel *ch, const nnrpc__frame *f, nnrpc__rxbuf *rx) {
  ccall *c = (ccall *)nnrpc__hmap_get(&ch->calls, f->call_id, 0);
  if (!c || c->done || !c->stream) return 0;
  if (f->type == NNRPC_F_WINDOW) {
    if (f->payload_len == 4) {
      c->send_credit += nnrpc__get32(f->payload);
      pthread_cond_broadcast(&c->cv);
    }
    return 0;
  }
  const char *why = NULL;
  int code = NNRPC_RESOURCE_EXHAUSTED;
  size_t window = c->window > NNRPC_INITIAL_WINDOW ? c->window : NNRPC_INITIAL_WINDOW;
  if (c->m->kind != NNRPC_SERVER_STREAMING && c->m->kind != NNRPC_BIDI_STREAMING) {
    code = NNRPC_INTERNAL;
    why = "server sent stream messages on a call that takes none";
  } else if (f->payload_len > c->max_recv) {
    why = "stream message larger than max_recv_msg";
  } else if (c->in_bytes + c->uncredited + NNRPC_MSG_COST(f->payload_len) > window + NNRPC_MSG_COST(c->max_recv)) {
    why = "server overran the stream's flow-control window";
  } else {
    cmsg *m = malloc(sizeof *m);
    if (m) {
      nnrpc__rxbuf_ref(rx);
      *m = (cmsg){NULL, rx, f->payload, f->payload_len};
      if (c->in_tail)
        c->in_tail->next = m;
      else
        c->in_head = m;
      c->in_tail = m;
      c->in_bytes += NNRPC_MSG_COST(f->payload_len);
      pthread_cond_broadcast(&c->cv);
      return 0;
    }
    why = "out of memory";
  }
  complete_locked(ch, c, code, why);
  return f->call_id;
}

/* Routes one server message. Returns whether its ack is urgent. */
static bool on_message(nnrpc_channel *ch, void *body, size_t len) {
  uint32_t seq;
  if (nnrpc__env_get(body, len, &seq)) {
    nn_freemsg(body);
    return false;
  }
  nnrpc__rxbuf *rx = nnrpc__rxbuf_new(body, len);
  if (!rx) {
    nn_freemsg(body);
    return false;
  }
  atomic_store(&ch->ack_owed, seq);
  uint64_t cancel_ids[8];
  size_t ncancel = 0;
  ccall *woken = NULL;
  pthread_mutex_lock(&ch->mu);
  tl_wake = &woken;
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
      atomic_store(&ch->ping_outstanding, false);
      for (size_t i = 0; i + 8 <= f.payload_len; i += 8) {
        ccall *c = (ccall *)nnrpc__hmap_get(&ch->calls, nnrpc__get64(f.payload + i), 0);
        if (c)
          complete_locked(ch, c, NNRPC_UNAVAILABLE,
                          "the server no longer knows this call (connection lost or server restarted)");
      }
    } else if (f.type == NNRPC_F_MESSAGE || f.type == NNRPC_F_WINDOW) {
      uint64_t id = on_stream_frame_locked(ch, &f, rx);
      if (id && ncancel < sizeof cancel_ids / sizeof *cancel_ids) cancel_ids[ncancel++] = id;
    }
  }
  /* With calls still in flight the server may have more for us: ack at
   * once. With none, it has nothing to send until our next message, which
   * carries the ack (after ACK_DELAY_US at the latest, alone). */
  bool urgent = ch->calls.n > 0;
  tl_wake = NULL;
  pthread_mutex_unlock(&ch->mu);
  wake_callers(ch, woken);
  nnrpc__rxbuf_unref(rx);
  for (size_t i = 0; i < ncancel; i++) send_small(ch, NNRPC_F_CANCEL, cancel_ids[i], NULL, 0);
  return urgent;
}

/* Sends the owed ack on its own (receiver thread). */
static void send_ack(nnrpc_channel *ch) {
  uint32_t a = atomic_load(&ch->ack_owed);
  if (!a) return;
  void *msg;
  if (!new_msg(0, 0, &msg)) return;
  if (send_with_ack(ch, &msg)) {
    nn_freemsg(msg); /* pipe busy: retried as soon as it is writable */
    ch->send_blocked = true;
    ch->ack_seq = a;
    ch->ack_due_us = 0;
  }
}

/* Sends an owed ack alone once it has waited its delay without a message
 * to the server taking it along (receiver thread). */
static void ack_tick(nnrpc_channel *ch) {
  if (atomic_exchange(&ch->ack_urgent, false)) {
    send_ack(ch);
    return;
  }
  uint32_t owed = atomic_load(&ch->ack_owed);
  if (!owed) {
    ch->ack_seq = 0;
    ch->ack_due_us = 0;
    return;
  }
  int64_t now = nnrpc__now_us();
  if (owed != ch->ack_seq) { /* a new one: its delay starts */
    ch->ack_seq = owed;
    ch->ack_due_us = now + (atomic_load(&ch->rxmode) == RX_THREAD ? ACK_DELAY_US : IDLE_ACK_DELAY_US);
  } else if (now >= ch->ack_due_us) {
    send_ack(ch);
  }
}

/* Hands queued async CALL messages to nanomsg while it accepts them. */
static void flush_sendq(nnrpc_channel *ch) {
  if (!atomic_load(&ch->has_sq)) return;
  pthread_mutex_lock(&ch->mu);
  while (ch->sq_head) {
    ccall *c = ch->sq_head;
    void *msg = c->queued_msg;
    if (send_with_ack(ch, &msg) < 0) {
      ch->send_blocked = true;
      break;
    }
    c->queued_msg = NULL;
    sq_remove(ch, c);
    c->sent = true;
    c->ping_epoch = ch->ping_count;
    ch->nsent++;
  }
  pthread_mutex_unlock(&ch->mu);
}

/* Fails async calls whose deadline passed; tells the server. Returns the
 * time until the next deadline in ms (capped at cap_ms). */
static int expire(nnrpc_channel *ch, int cap_ms) {
  uint64_t cancel_ids[64];
  size_t ncancel;
  int next_ms = cap_ms;
  if (atomic_load(&ch->heap_n) == 0) return cap_ms; /* blocking calls time out by themselves */
  do {
    ncancel = 0;
    int64_t now = nnrpc__now_us();
    pthread_mutex_lock(&ch->mu);
    while (ch->nheap && ch->heap[0]->deadline_us <= now && ncancel < 64) {
      ccall *c = ch->heap[0];
      if (c->sent) cancel_ids[ncancel++] = c->node.k1;
      complete_locked(ch, c, NNRPC_DEADLINE_EXCEEDED, "deadline exceeded");
    }
    if (ch->nheap) {
      int64_t ms = (ch->heap[0]->deadline_us - now + 999) / 1000;
      next_ms = ms < cap_ms ? (int)ms : cap_ms;
    }
    pthread_mutex_unlock(&ch->mu);
    for (size_t i = 0; i < ncancel; i++) send_small(ch, NNRPC_F_CANCEL, cancel_ids[i], NULL, 0);
  } while (ncancel == 64);
  return next_ms;
}

static void keepalive(nnrpc_channel *ch) {
  int64_t now = nnrpc__now_us();
  /* Nothing due (these fields belong to this thread): skip the lock. */
  if (!atomic_load(&ch->ping_outstanding) && now - ch->last_ping_us < ch->o.keepalive_ms * 1000) return;
  pthread_mutex_lock(&ch->mu);
  if (ch->nsent == 0) {
    atomic_store(&ch->ping_outstanding, false);
    pthread_mutex_unlock(&ch->mu);
    return;
  }
  if (atomic_load(&ch->ping_outstanding) && ch->last_rx_us < ch->last_ping_us &&
      now - ch->last_ping_us > ch->o.keepalive_timeout_ms * 1000) {
    fail_all_locked(ch, NNRPC_UNAVAILABLE, "no reply from the server within keepalive_timeout_ms",
                    true);
    atomic_store(&ch->ping_outstanding, false);
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
  if (!atomic_load(&ch->ping_outstanding)) ch->last_ping_us = now;
  atomic_store(&ch->ping_outstanding, true);
  pthread_mutex_unlock(&ch->mu);
  send_small(ch, NNRPC_F_PING, 0, ids, n * 8);
  free(ids);
}

static void *rx_main(void *arg) {
  nnrpc_channel *ch = arg;
  int cap = (int)(ch->o.keepalive_ms < 100 ? ch->o.keepalive_ms : 100);
  int timeout = cap;
  uint64_t seen_started = 0;
  int64_t idle_since = nnrpc__now_us();
  bool idle_watch = false; /* receiving because the channel is idle */
  while (!atomic_load(&ch->stop)) {
    /* With no call left, stop receiving: a caller starting alone may then
     * receive its own reply (RX_CALLER). Idle for IDLE_WATCH_US: receive
     * again, until a call starts. */
    int mode = atomic_load(&ch->rxmode);
    uint64_t started = atomic_load_explicit(&ch->started, memory_order_relaxed);
    int64_t now = nnrpc__now_us();
    if (started != seen_started) {
      seen_started = started;
      idle_since = now;
      idle_watch = false;
    }
    /* (only on channels that make blocking unary calls: for async calls and
     * streams it saves nothing and would delay acks of late messages) */
    if (mode == RX_THREAD && !idle_watch && atomic_load_explicit(&ch->ncalls, memory_order_relaxed) == 0 &&
        atomic_load_explicit(&ch->blocking_seen, memory_order_relaxed)) {
      pthread_mutex_lock(&ch->mu);
      if (ch->calls.n == 0) atomic_store(&ch->rxmode, mode = RX_PARKED);
      pthread_mutex_unlock(&ch->mu);
    } else if (mode == RX_PARKED && now - idle_since >= IDLE_WATCH_US) {
      pthread_mutex_lock(&ch->mu);
      if (ch->calls.n == 0 && atomic_load(&ch->rxmode) == RX_PARKED) {
        atomic_store(&ch->rxmode, mode = RX_THREAD);
        idle_watch = true;
      }
      pthread_mutex_unlock(&ch->mu);
    }
    /* Only RX_THREAD -> RX_PARKED is ours, so `mode` holds until the next
     * turn, but for RX_PARKED becoming RX_THREAD, which writes wakefd. */
    bool watch = mode == RX_THREAD;
    /* sndfd only after a refused send: it is readable whenever sending is possible */
    bool want_send = ch->send_blocked || atomic_load(&ch->has_sq);
    struct pollfd p[3] = {{watch ? ch->rcvfd : -1, POLLIN, 0}, {ch->wakefd, POLLIN, 0}, {ch->sndfd, POLLIN, 0}};
    int64_t wait_us = (int64_t)timeout * 1000;
    if (ch->ack_due_us) {
      int64_t left = ch->ack_due_us - nnrpc__now_us();
      if (left < wait_us) wait_us = left > 0 ? left : 0;
    }
    struct timespec ts = {(time_t)(wait_us / 1000000), (long)(wait_us % 1000000) * 1000};
    ppoll(p, want_send ? 3 : 2, &ts, NULL);
    ch->send_blocked = false;
    if (p[1].revents) {
      uint64_t v;
      ssize_t r = read(ch->wakefd, &v, sizeof v);
      (void)r;
    }
    for (int i = 0; watch && i < 64; i++) { /* drain what is there, acking each message */
      void *body = NULL;
      int n = nn_recv(ch->sock, &body, NN_MSG, NN_DONTWAIT);
      if (n < 0) break;
      if (on_message(ch, body, (size_t)n)) send_ack(ch);
    }
    ack_tick(ch); /* an urgent ack nanomsg refused, or a deferred one now due */
    flush_sendq(ch);
    timeout = expire(ch, cap);
    keepalive(ch);
    deliver(ch);
  }
  deliver(ch); /* completions of the close */
  send_ack(ch); /* a deferred ack: the server's shutdown waits for it */
  return NULL;
}

/* ---------------------------------------------------------------- batched sends */

/* Adds c's CALL message to the batch if a caller is sending (the batch owns
 * it then); else makes the calling thread the sender (*sender). Returns
 * whether it was added. */
static bool tx_append(nnrpc_channel *ch, ccall *c, void *msg, bool *sender) {
  *sender = false;
  if (c->frame_len > TX_SMALL) return false;
  bool added = false;
  pthread_mutex_lock(&ch->txq_mu);
  if (!ch->tx_sending) {
    ch->tx_sending = *sender = true;
  } else if (ch->tx_bytes + c->frame_len <= TX_BATCH) {
    if (ch->tx_n == ch->tx_cap) {
      size_t cap = ch->tx_cap ? ch->tx_cap * 2 : 64;
      txe *t = realloc(ch->tx, cap * sizeof *t);
      if (t) ch->tx = t, ch->tx_cap = cap;
    }
    if (ch->tx_n < ch->tx_cap) {
      ch->tx[ch->tx_n++] = (txe){c->node.k1, msg, c->frame_len};
      ch->tx_bytes += c->frame_len;
      added = true;
    }
  }
  pthread_mutex_unlock(&ch->txq_mu);
  return added;
}

/* Gives c's unsent message back to its caller, who sends it (mu held). */
static void tx_give_back_locked(nnrpc_channel *ch, ccall *c, void *msg) {
  c->queued_msg = msg;
  set_fin(ch, &c->fin, FIN_SEND_YOURSELF, c->leading); /* a receiving caller: lead() returns for it */
}

/* Sends one batch as one message, or gives it back. Under mu from the look
 * at its calls to the send: a call that ended meanwhile (deadline, close)
 * is left out, so nothing of it reaches the server, and no call ends
 * between being sent and getting its ping epoch. */
static void tx_send(nnrpc_channel *ch, txe *t, size_t n, bool give_back) {
  pthread_mutex_lock(&ch->mu);
  size_t total = 0, live = 0;
  for (size_t i = 0; i < n; i++) {
    ccall *c = (ccall *)nnrpc__hmap_get(&ch->calls, t[i].id, 0);
    if (!c || c->done) {
      nn_freemsg(t[i].msg);
      t[i].msg = NULL;
      continue;
    }
    total += t[i].frame_len;
    live++;
  }
  void *msg = NULL;
  uint8_t *p = live && !give_back ? new_msg(total, 0, &msg) : NULL;
  if (p) {
    for (size_t i = 0; i < n; i++)
      if (t[i].msg) {
        memcpy(p, (uint8_t *)t[i].msg + NNRPC_REQID_LEN + NNRPC_ENV_LEN, t[i].frame_len);
        p += t[i].frame_len;
      }
    if (send_with_ack(ch, &msg) == 0) { /* non-blocking: nobody waits for anybody else's call */
      msg = NULL;
      uint64_t epoch = ch->ping_count;
      for (size_t i = 0; i < n; i++)
        if (t[i].msg) {
          ((ccall *)nnrpc__hmap_get(&ch->calls, t[i].id, 0))->ping_epoch = epoch;
          nn_freemsg(t[i].msg);
          t[i].msg = NULL;
        }
    }
  }
  if (msg) nn_freemsg(msg);
  for (size_t i = 0; i < n; i++) /* not sent: back to their callers */
    if (t[i].msg) tx_give_back_locked(ch, (ccall *)nnrpc__hmap_get(&ch->calls, t[i].id, 0), t[i].msg);
  pthread_mutex_unlock(&ch->mu);
}

/* The sender, after its own message: sends what others added meanwhile,
 * until nothing is left, and gives the role up. */
static void tx_flush(nnrpc_channel *ch) {
  int rounds = 0;
  pthread_mutex_lock(&ch->txq_mu);
  while (ch->tx_n) {
    txe *t = ch->tx;
    size_t n = ch->tx_n;
    ch->tx = NULL;
    ch->tx_n = ch->tx_cap = ch->tx_bytes = 0;
    pthread_mutex_unlock(&ch->txq_mu);
    tx_send(ch, t, n, ++rounds > TX_ROUNDS); /* past TX_ROUNDS: its own reply waits */
    free(t);
    pthread_mutex_lock(&ch->txq_mu);
  }
  ch->tx_sending = false;
  pthread_mutex_unlock(&ch->txq_mu);
}

/* ---------------------------------------------------------------- a caller receiving */

/* Call c's thread receives for the channel until c completes or its
 * deadline passes (RX_CALLER). Its reply then reaches it without the
 * receive thread's hand-off; messages for other calls are routed as the
 * receive thread would, which takes over when c is done if calls remain. */
static void lead(nnrpc_channel *ch, ccall *c, int64_t deadline) {
  tl_leading = c;
  tl_lead_done = false;
  bool expired = false;
  while (!tl_lead_done) {
    int ms = -1;
    if (deadline != NNRPC_NO_DEADLINE) {
      int64_t left = deadline - nnrpc__now_us();
      if (left <= 0) {
        expired = true;
        break;
      }
      ms = left > INT32_MAX / 2 * (int64_t)1000 ? INT32_MAX / 2 : (int)((left + 999) / 1000);
    }
    struct pollfd p[2] = {{ch->rcvfd, POLLIN, 0}, {ch->leadfd, POLLIN, 0}};
    poll(p, 2, ms);
    if (p[1].revents) { /* completed by another thread: keepalive, channel close */
      uint64_t v;
      ssize_t r = read(ch->leadfd, &v, sizeof v);
      (void)r;
      pthread_mutex_lock(&ch->mu);
      bool done = c->done || atomic_load(&c->fin) == FIN_SEND_YOURSELF; /* send it, then wait */
      pthread_mutex_unlock(&ch->mu);
      if (done) break;
    }
    for (int i = 0; i < 64 && !tl_lead_done; i++) {
      void *body = NULL;
      int n = nn_recv(ch->sock, &body, NN_MSG, NN_DONTWAIT);
      if (n < 0) break;
      if (on_message(ch, body, (size_t)n)) { /* other calls in flight: ack now */
        void *msg;
        if (!new_msg(0, 0, &msg) || send_with_ack(ch, &msg)) {
          if (msg) nn_freemsg(msg);
          atomic_store(&ch->ack_urgent, true); /* nanomsg refused it: the receive thread retries */
          wake(ch);
        }
      } /* else no call left: the next message to the server carries the ack */
      if (atomic_load(&ch->has_done)) wake(ch); /* async completions to deliver */
    }
  }
  pthread_mutex_lock(&ch->mu);
  bool cancel = expired && !c->done && c->sent && c->ping_epoch != UINT64_MAX;
  if (expired) complete_locked(ch, c, NNRPC_DEADLINE_EXCEEDED, "deadline exceeded");
  c->leading = false;
  tl_leading = NULL;
  bool kick = ch->calls.n > 0;
  atomic_store(&ch->rxmode, kick ? RX_THREAD : RX_PARKED);
  pthread_mutex_unlock(&ch->mu);
  if (kick) wake(ch);
  if (cancel) send_small(ch, NNRPC_F_CANCEL, c->node.k1, NULL, 0); /* tell the server to stop */
}

/* A call that is not a caller receiving its own reply needs the receive
 * thread to receive. mu held; *kick: write wakefd after unlocking. */
static void need_receiver_locked(nnrpc_channel *ch, bool *kick) {
  atomic_store_explicit(&ch->ncalls, ch->calls.n, memory_order_relaxed);
  if (atomic_load(&ch->rxmode) == RX_PARKED) {
    atomic_store(&ch->rxmode, RX_THREAD);
    *kick = true;
  }
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
  if (ch->o.n_interceptors) { /* our own copy: the caller's array is borrowed */
    size_t n = ch->o.n_interceptors;
    if (!ch->o.interceptors || !(ch->ics = malloc(sizeof *ch->ics + n * sizeof ch->ics->ic[0]))) {
      int rc = ch->o.interceptors ? NNRPC_RESOURCE_EXHAUSTED : NNRPC_INVALID_ARGUMENT;
      free(ch);
      return rc;
    }
    atomic_init(&ch->ics->refs, 1);
    ch->ics->n = n;
    memcpy(ch->ics->ic, ch->o.interceptors, n * sizeof ch->ics->ic[0]);
  }
  ch->o.interceptors = NULL;
  ch->o.n_interceptors = 0;
  /* Channel-wide headers: our own copy, the caller's are only borrowed. */
  const nnrpc_metadata *ch_md = ch->o.call_headers;
  const char *token = ch->o.bearer_token;
  ch->o.call_headers = NULL;
  ch->o.bearer_token = NULL;
  if (ch_md || token) {
    int rc = (ch->call_md = nnrpc_metadata_new()) ? NNRPC_OK : NNRPC_RESOURCE_EXHAUSTED;
    for (size_t i = 0; ch_md && rc == NNRPC_OK && i < ch_md->n; i++)
      rc = nnrpc_metadata_add(ch->call_md, ch_md->e[i].key, ch_md->e[i].value, ch_md->e[i].len);
    if (token && rc == NNRPC_OK) {
      size_t tl = strlen(token);
      char *v = malloc(7 + tl + 1);
      rc = v ? NNRPC_OK : NNRPC_RESOURCE_EXHAUSTED;
      if (v) {
        memcpy(v, "Bearer ", 7);
        memcpy(v + 7, token, tl + 1);
        rc = nnrpc_metadata_add(ch->call_md, "authorization", v, 7 + tl);
        free(v);
      }
    }
    if (rc == NNRPC_OK && (ch->call_md->n > ch->o.max_metadata_count || ch->call_md->bytes > ch->o.max_metadata_bytes))
      rc = NNRPC_INVALID_ARGUMENT;
    if (rc) {
      nnrpc_metadata_free(ch->call_md);
      ic_unref(ch->ics);
      free(ch);
      return rc;
    }
  }
  ch->inproc = strncmp(url, "inproc://", 9) == 0;
  ch->wakefd = ch->leadfd = -1;
  ch->sock = nn_socket(AF_SP_RAW, NN_REQ);
  if (ch->sock < 0) {
    nnrpc_metadata_free(ch->call_md);
    ic_unref(ch->ics);
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
    nnrpc_metadata_free(ch->call_md);
    ic_unref(ch->ics);
    free(ch);
    return rc;
  }
  nn_getsockopt(ch->sock, NN_SOL_SOCKET, NN_RCVFD, &ch->rcvfd, &sz);
  sz = sizeof(int);
  nn_getsockopt(ch->sock, NN_SOL_SOCKET, NN_SNDFD, &ch->sndfd, &sz);
  ch->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  ch->leadfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  pthread_mutex_init(&ch->mu, NULL);
  pthread_mutex_init(&ch->txq_mu, NULL);
  nnrpc__cond_init(&ch->users_cv);
  atomic_init(&ch->next_id, 1);
  atomic_init(&ch->users, 0);
  atomic_init(&ch->closing, false);
  atomic_init(&ch->stop, false);
  atomic_init(&ch->has_done, false);
  atomic_init(&ch->has_sq, false);
  atomic_init(&ch->heap_n, 0);
  atomic_init(&ch->rxmode, RX_PARKED);
  atomic_init(&ch->ncalls, 0);
  atomic_init(&ch->started, 0);
  atomic_init(&ch->blocking_seen, false);
  atomic_init(&ch->ack_urgent, false);
  atomic_init(&ch->ping_outstanding, false);
  if (ch->wakefd < 0 || ch->leadfd < 0 || nnrpc__hmap_init(&ch->calls) ||
      pthread_create(&ch->thr, NULL, rx_main, ch)) {
    if (ch->wakefd >= 0) close(ch->wakefd);
    if (ch->leadfd >= 0) close(ch->leadfd);
    nnrpc__hmap_free(&ch->calls);
    nn_close(ch->sock);
    pthread_mutex_destroy(&ch->mu);
    pthread_mutex_destroy(&ch->txq_mu);
    pthread_cond_destroy(&ch->users_cv);
    nnrpc_metadata_free(ch->call_md);
    ic_unref(ch->ics);
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
  wake(ch);
  pthread_join(ch->thr, NULL); /* it delivers the async completions first */
  if (ch->inproc) pthread_mutex_lock(&nnrpc__inproc_mu); /* see internal.h: no inproc send in flight */
  nn_close(ch->sock);
  if (ch->inproc) pthread_mutex_unlock(&nnrpc__inproc_mu);
  close(ch->wakefd);
  close(ch->leadfd);
  nnrpc__hmap_free(&ch->calls);
  free(ch->heap);
  free(ch->tx); /* empty: its last sender was a user, gone */
  pthread_mutex_destroy(&ch->txq_mu);
  nnrpc_metadata_free(ch->call_md);
  ic_unref(ch->ics);
  pthread_mutex_destroy(&ch->mu);
  pthread_cond_destroy(&ch->users_cv);
  free(ch);
}

/* ---------------------------------------------------------------- results */

static nnrpc_status result_of(ccall *c, ProtobufCMessage **reply, nnrpc_metadata *trailers) {
  if (trailers) nnrpc_metadata_clear(trailers);
  if (c->code >= 0) return nnrpc__status(c->code, "%s", c->why);
  const nnrpc__frame *f = &c->f;
  nnrpc__arena a;
  nnrpc__arena_init(&a, (size_t)f->meta_len * 8 + 65536);
  Nnrpc__Wire__CallHeader *h = NULL;
  const char *why;
  nnrpc_status st;
  int rc = nnrpc__hdr_decode(f->meta, f->meta_len, &a.pb, c->max_md_bytes, c->max_md_count, &h, &why);
  if (rc) {
    st = nnrpc__status(rc, "bad reply from server: %s", why);
    goto out;
  }
  if (trailers) nnrpc__md_from_wire(trailers, h);
  if (h->status != NNRPC_OK) {
    int code = h->status < NNRPC_CODE_COUNT ? (int)h->status : NNRPC_UNKNOWN;
    const char *text = h->message[0] ? h->message : nnrpc_strerror(code);
    st = nnrpc__status_n(code, text, strlen(text));
    goto out;
  }
  if (!reply) { /* discarded, or a stream whose messages came before */
    st = nnrpc__status_n(NNRPC_OK, "", 0);
    goto out;
  }
  if (!(f->flags & NNRPC_FF_HAS_MESSAGE)) {
    st = nnrpc__status(NNRPC_INTERNAL, "server sent OK without a reply message");
    goto out;
  }
  if (f->payload_len > c->max_recv) {
    st = nnrpc__status(NNRPC_RESOURCE_EXHAUSTED, "reply of %u bytes exceeds max_recv_msg (%zu)",
                       f->payload_len, c->max_recv);
    goto out;
  }
  nnrpc__budget b;
  nnrpc__budget_init(&b, c->max_decode);
  bool too_deep;
  *reply = nnrpc__decode(c->m->output, f->payload, f->payload_len, c->max_depth, &b.pb, &too_deep, &why);
  /* Our own limits refusing a reply are RESOURCE_EXHAUSTED (as gRPC does for
   * max receive size); bytes that do not parse are INTERNAL. */
  if (!*reply)
    st = b.over      ? nnrpc__status(NNRPC_RESOURCE_EXHAUSTED, "decoded reply exceeds max_decode_bytes")
         : too_deep ? nnrpc__status(NNRPC_RESOURCE_EXHAUSTED, "%s reply nested deeper than max_decode_depth (%u)",
                                     c->m->output->name, c->max_depth)
                    : nnrpc__status(NNRPC_INTERNAL, "cannot decode %s reply: %s", c->m->output->name, why);
  else
    st = nnrpc__status_n(NNRPC_OK, "", 0);
out:
  nnrpc__arena_free(&a);
  return st;
}

/* ---------------------------------------------------------------- starting calls */

static int64_t deadline_of(const nnrpc_channel *ch, const nnrpc_call_opts *opts) {
  int64_t t = opts && opts->timeout_ms ? opts->timeout_ms : ch->o.default_timeout_ms;
  if (t < 0) return NNRPC_NO_DEADLINE;
  return nnrpc__now_us() + t * 1000;
}

/* The call's headers and the channel's together, against the limits. */
static bool headers_too_big(const nnrpc_channel *ch, const nnrpc_metadata *hd) {
  size_t n = (hd ? hd->n : 0) + (ch->call_md ? ch->call_md->n : 0);
  size_t bytes = (hd ? hd->bytes : 0) + (ch->call_md ? ch->call_md->bytes : 0);
  return n > ch->o.max_metadata_count || bytes > ch->o.max_metadata_bytes;
}

/* What every call kind checks of its request (req may be NULL: a stream
 * opened without one) and headers; the packed size goes to *size. */
static nnrpc_status check_request(nnrpc_channel *ch, const nnrpc_method *m, const ProtobufCMessage *req,
                                  const nnrpc_call_opts *opts, size_t *size) {
  if (req && req->descriptor != m->input)
    return nnrpc__status(NNRPC_INVALID_ARGUMENT, "request is a %s, %s takes a %s",
                         req->descriptor->name, m->path, m->input->name);
  if (headers_too_big(ch, opts ? opts->headers : NULL))
    return nnrpc__status(NNRPC_RESOURCE_EXHAUSTED, "headers exceed the metadata limits");
  *size = req ? protobuf_c_message_get_packed_size(req) : 0;
  if (*size > ch->o.max_send_msg)
    return nnrpc__status(NNRPC_RESOURCE_EXHAUSTED, "request of %zu bytes exceeds max_send_msg (%zu)",
                         *size, ch->o.max_send_msg);
  return nnrpc__status_n(NNRPC_OK, "", 0);
}

/* Checks a unary call's arguments; returns the request's packed size via *size. */
static nnrpc_status check_call(nnrpc_channel *ch, const nnrpc_method *m, const ProtobufCMessage *req,
                               const nnrpc_call_opts *opts, size_t *size) {
  if (!ch || !m || !req)
    return nnrpc__status(NNRPC_INVALID_ARGUMENT, "NULL argument");
  if (req->descriptor != m->input)
    return check_request(ch, m, req, opts, size); /* the type message first, as always */
  if (m->kind != NNRPC_UNARY)
    return nnrpc__status(NNRPC_INVALID_ARGUMENT, "%s is a streaming method", m->path);
  return check_request(ch, m, req, opts, size);
}

/* Registers c under a new id. mu held. */
static nnrpc_status register_locked(nnrpc_channel *ch, ccall *c, const nnrpc_method *m) {
  if (ch->closing) return nnrpc__status(NNRPC_CANCELLED, "channel closed");
  if (ch->calls.n >= ch->o.max_in_flight)
    return nnrpc__status(NNRPC_RESOURCE_EXHAUSTED, "channel is at max_in_flight (%u calls)",
                         ch->o.max_in_flight);
  atomic_store(&c->ch, ch);
  c->m = m;
  c->code = -1;
  c->heap_i = SIZE_MAX;
  c->max_recv = ch->o.max_recv_msg;
  c->max_send = ch->o.max_send_msg;
  c->max_decode = ch->o.max_decode_bytes;
  c->max_md_bytes = ch->o.max_metadata_bytes;
  c->max_md_count = ch->o.max_metadata_count;
  c->max_depth = ch->o.max_decode_depth;
  if (!c->node.k1) c->node.k1 = atomic_fetch_add_explicit(&ch->next_id, 1, memory_order_relaxed);
  nnrpc__hmap_put(&ch->calls, &c->node);
  atomic_store_explicit(&ch->ncalls, ch->calls.n, memory_order_relaxed);
  atomic_fetch_add_explicit(&ch->started, 1, memory_order_relaxed);
  return nnrpc__status_n(NNRPC_OK, "", 0);
}

/* Why a call failed before or while it was sent. */
static const char *failure_why(const ccall *c, int rc) {
  return c->why                             ? c->why
         : rc == NNRPC_DEADLINE_EXCEEDED    ? "deadline exceeded before the call could be sent (no server?)"
         : rc == NNRPC_RESOURCE_EXHAUSTED ? "out of memory"
                                            : "could not send the call";
}

static void mark_sent_locked(nnrpc_channel *ch, ccall *c) {
  c->sent = true;
  c->ping_epoch = ch->ping_count;
  ch->nsent++;
}

NNRPC_API nnrpc_status nnrpc_unary_call(nnrpc_channel *ch, const nnrpc_method *m,
                                        const ProtobufCMessage *req, ProtobufCMessage **reply,
                                        const nnrpc_call_opts *opts) {
  if (!reply) return nnrpc__status(NNRPC_INVALID_ARGUMENT, "NULL reply pointer");
  *reply = NULL;
  size_t size;
  nnrpc_status st = check_call(ch, m, req, opts, &size);
  if (st.code) return st;
  int64_t deadline = deadline_of(ch, opts);

  /* Two turns of the channel mutex per call (register, after sending): at
   * 64 callers the turns were where their threads queued up. */
  ccall c = {0};
  c.m = m;
  c.node.k1 = atomic_fetch_add_explicit(&ch->next_id, 1, memory_order_relaxed);
  if (!atomic_load_explicit(&ch->blocking_seen, memory_order_relaxed))
    atomic_store_explicit(&ch->blocking_seen, true, memory_order_relaxed);
  void *msg = NULL;
  int rc = build_call_msg(ch, &c, req, size, opts ? opts->headers : NULL, deadline, &msg);
  pthread_mutex_lock(&ch->mu);
  st = register_locked(ch, &c, m);
  if (st.code) {
    pthread_mutex_unlock(&ch->mu);
    if (msg) nn_freemsg(msg);
    run_after(&c, st.code); /* its before hooks ran */
    return st;
  }
  atomic_fetch_add(&ch->users, 1);
  if (rc == NNRPC_OK) {
    mark_sent_locked(ch, &c); /* before sending: the reply may beat us back */
    /* But keepalive may only ask the server about the call once nanomsg has
     * taken it: send_msg can wait a long time for a busy pipe, and a ping
     * sent meanwhile would make the server disown a call it never saw. */
    atomic_store(&c.ping_epoch, UINT64_MAX);
  } else {
    complete_locked(ch, &c, rc, failure_why(&c, rc));
  }
  pthread_mutex_unlock(&ch->mu);

  if (rc == NNRPC_OK) {
    bool sender;
    if (!tx_append(ch, &c, msg, &sender)) { /* else the batch's sender sets ping_epoch */
      rc = send_msg(ch, msg, deadline);
      if (sender) tx_flush(ch);
      /* (keepalive counts pings under mu; an epoch stored after a ping's
       * count was taken only delays asking about the call by one ping) */
      atomic_store(&c.ping_epoch, atomic_load(&ch->ping_count));
    }
    /* Nobody receiving (no other call in flight, or only blocking calls not
     * yet sent, which left the mode alone): receive our own reply. Someone
     * receiving cannot stop while this call is in flight: no lock needed to
     * see it. */
    bool lead_now = false;
    if (rc != NNRPC_OK || atomic_load(&ch->rxmode) == RX_PARKED) {
      pthread_mutex_lock(&ch->mu);
      if (rc != NNRPC_OK) {
        complete_locked(ch, &c, rc, failure_why(&c, rc));
      } else if (!c.done && atomic_load(&ch->rxmode) == RX_PARKED) {
        atomic_store(&ch->rxmode, RX_CALLER);
        c.leading = lead_now = true;
      }
      pthread_mutex_unlock(&ch->mu);
    }
    if (lead_now) lead(ch, &c, deadline);
  }

  unsigned fin;
  while ((fin = atomic_load(&c.fin)) != FIN_DONE) {
    if (fin == FIN_SEND_YOURSELF) { /* a batch gave our message back */
      pthread_mutex_lock(&ch->mu);
      void *back = c.queued_msg;
      c.queued_msg = NULL;
      if (!c.done) atomic_store(&c.fin, FIN_WAIT);
      pthread_mutex_unlock(&ch->mu);
      if (!back) continue; /* completed meanwhile: fin becomes FIN_DONE */
      int src = send_msg(ch, back, deadline);
      pthread_mutex_lock(&ch->mu);
      if (src)
        complete_locked(ch, &c, src, failure_why(&c, src));
      else
        c.ping_epoch = ch->ping_count;
      pthread_mutex_unlock(&ch->mu);
      continue;
    }
    if (nnrpc__futex_wait(&c.fin, FIN_WAIT, deadline) == ETIMEDOUT && atomic_load(&c.fin) == FIN_WAIT) {
      pthread_mutex_lock(&ch->mu);
      /* Tell the server to stop only if the call reached nanomsg: one still
       * in a batch is left out of it, and a CANCEL before its CALL would be
       * ignored anyway. Already completed: its wake-up is on the way. */
      bool cancel = !c.done && c.ping_epoch != UINT64_MAX;
      if (c.done) deadline = NNRPC_NO_DEADLINE; /* no spinning until fin is set */
      complete_locked(ch, &c, NNRPC_DEADLINE_EXCEEDED, "deadline exceeded");
      pthread_mutex_unlock(&ch->mu);
      if (cancel) send_small(ch, NNRPC_F_CANCEL, c.node.k1, NULL, 0);
    }
  }

  st = result_of(&c, reply, opts ? opts->trailers : NULL);
  run_after(&c, st.code);
  nnrpc__rxbuf_unref(c.rx);
  if (atomic_fetch_sub(&ch->users, 1) == 1 && atomic_load(&ch->closing)) {
    pthread_mutex_lock(&ch->mu); /* nnrpc_channel_close waits on users_cv under mu */
    pthread_cond_broadcast(&ch->users_cv);
    pthread_mutex_unlock(&ch->mu);
  }
  return st;
}

NNRPC_API int nnrpc_unary_start(nnrpc_channel *ch, const nnrpc_method *m, const ProtobufCMessage *req,
                                const nnrpc_call_opts *opts, const nnrpc_completion *how,
                                nnrpc_call **out) {
  if (out) *out = NULL;
  if (!how || !how->done == !how->cq) return NNRPC_INVALID_ARGUMENT;
  size_t size;
  nnrpc_status st = check_call(ch, m, req, opts, &size);
  if (st.code) return st.code;
  ccall *c = calloc(1, sizeof *c);
  if (!c) return NNRPC_RESOURCE_EXHAUSTED;
  c->async = true;
  c->done_fn = how->done;
  c->cq = how->cq;
  c->user = how->user_data;
  c->deadline_us = deadline_of(ch, opts);

  /* The call becomes visible to the receive thread (map, heap) only once its
   * message is built: from then on it may complete and be freed by its
   * callback, so nothing here touches it after the final unlock. */
  pthread_mutex_lock(&ch->mu);
  st = register_locked(ch, c, m);
  if (st.code == NNRPC_OK) nnrpc__hmap_del(&ch->calls, c->node.k1, 0);
  atomic_store_explicit(&ch->ncalls, ch->calls.n, memory_order_relaxed);
  pthread_mutex_unlock(&ch->mu);
  void *msg = NULL;
  int rc = st.code ? st.code
                   : build_call_msg(ch, c, req, size, opts ? opts->headers : NULL, c->deadline_us, &msg);
  if (rc) {
    ic_unref(c->ics); /* never started: no after hook */
    free(c);
    return rc;
  }
  pthread_mutex_lock(&ch->mu);
  if (ch->closing || (c->deadline_us != NNRPC_NO_DEADLINE && heap_add(ch, c))) {
    bool closing = ch->closing;
    pthread_mutex_unlock(&ch->mu);
    nn_freemsg(msg);
    ic_unref(c->ics);
    free(c);
    return closing ? NNRPC_CANCELLED : NNRPC_RESOURCE_EXHAUSTED;
  }
  nnrpc__hmap_put(&ch->calls, &c->node);
  if (out) *out = c;
  bool kick = c->heap_i == 0; /* a new earliest deadline */
  need_receiver_locked(ch, &kick);
  if (!ch->sq_head && send_with_ack(ch, &msg) == 0) {
    mark_sent_locked(ch, c);
  } else { /* connection busy or not up yet: the receive thread sends it */
    c->queued_msg = msg;
    c->sq_prev = ch->sq_tail;
    if (ch->sq_tail)
      ch->sq_tail->sq_next = c;
    else
      ch->sq_head = c;
    ch->sq_tail = c;
    atomic_store(&ch->has_sq, true);
    kick = true;
  }
  pthread_mutex_unlock(&ch->mu);
  if (kick) wake(ch);
  return NNRPC_OK;
}

NNRPC_API void nnrpc_call_cancel(nnrpc_call *c) {
  if (!c) return;
  nnrpc_channel *ch = atomic_load(&c->ch); /* NULL once completed */
  if (!ch) return;
  pthread_mutex_lock(&ch->mu);
  bool was_sent = !c->done && c->sent;
  uint64_t id = c->node.k1;
  complete_locked(ch, c, NNRPC_CANCELLED, "cancelled by the client");
  pthread_mutex_unlock(&ch->mu);
  if (was_sent) send_small(ch, NNRPC_F_CANCEL, id, NULL, 0);
  wake(ch);
}

NNRPC_API void *nnrpc_call_user_data(const nnrpc_call *c) { return c ? c->user : NULL; }

NNRPC_API bool nnrpc_call_is_done(const nnrpc_call *c) { return c && atomic_load(&((nnrpc_call *)c)->delivered); }

NNRPC_API nnrpc_status nnrpc_unary_finish(nnrpc_call *c, ProtobufCMessage **reply,
                                          nnrpc_metadata *trailers) {
  if (reply) *reply = NULL;
  if (!c || !atomic_load(&c->delivered))
    return nnrpc__status(NNRPC_FAILED_PRECONDITION, "nnrpc_unary_finish before the call completed");
  nnrpc_status st = result_of(c, reply, trailers);
  run_after(c, st.code);
  nnrpc__rxbuf_unref(c->rx);
  free(c);
  return st;
}

/* ---------------------------------------------------------------- completion queue */

NNRPC_API int nnrpc_cq_open(nnrpc_cq **out) {
  if (!out) return NNRPC_INVALID_ARGUMENT;
  nnrpc_cq *q = calloc(1, sizeof *q);
  if (!q) return NNRPC_RESOURCE_EXHAUSTED;
  q->efd = eventfd(0, EFD_SEMAPHORE | EFD_NONBLOCK | EFD_CLOEXEC);
  if (q->efd < 0) {
    free(q);
    return NNRPC_INTERNAL;
  }
  pthread_mutex_init(&q->mu, NULL);
  nnrpc__cond_init(&q->cv);
  *out = q;
  return NNRPC_OK;
}

NNRPC_API int nnrpc_cq_fd(const nnrpc_cq *q) { return q ? q->efd : -1; }

NNRPC_API size_t nnrpc_cq_size(const nnrpc_cq *q) {
  pthread_mutex_lock(&((nnrpc_cq *)q)->mu);
  size_t n = q->n;
  pthread_mutex_unlock(&((nnrpc_cq *)q)->mu);
  return n;
}

NNRPC_API nnrpc_call *nnrpc_cq_next(nnrpc_cq *q, int64_t timeout_ms) {
  if (!q) return NULL;
  int64_t deadline = timeout_ms < 0 ? NNRPC_NO_DEADLINE : nnrpc__now_us() + timeout_ms * 1000;
  pthread_mutex_lock(&q->mu);
  while (!q->head) {
    if (deadline == NNRPC_NO_DEADLINE) {
      pthread_cond_wait(&q->cv, &q->mu);
    } else {
      struct timespec ts = nnrpc__ts_of_us(deadline);
      if (pthread_cond_timedwait(&q->cv, &q->mu, &ts) == ETIMEDOUT) break;
    }
  }
  ccall *c = q->head;
  if (c) {
    q->head = c->next_done;
    if (!q->head) q->tail = NULL;
    q->n--;
    uint64_t v;
    ssize_t r = read(q->efd, &v, sizeof v); /* semaphore: takes one */
    (void)r;
  }
  pthread_mutex_unlock(&q->mu);
  return c;
}

NNRPC_API void nnrpc_cq_close(nnrpc_cq *q) {
  if (!q) return;
  nnrpc_call *c;
  while ((c = nnrpc_cq_next(q, 0))) nnrpc_unary_finish(c, NULL, NULL);
  close(q->efd);
  pthread_mutex_destroy(&q->mu);
  pthread_cond_destroy(&q->cv);
  free(q);
}

/* ---------------------------------------------------------------- streams */

/* The stream's code once it is over, for write/close_send: the final status
 * code, with OK turned into FAILED_PRECONDITION (nothing more can be sent). */
static int ended_code(ccall *c, bool ok_is_ok) {
  nnrpc_status st = result_of(c, NULL, NULL);
  return st.code == NNRPC_OK && !ok_is_ok ? NNRPC_FAILED_PRECONDITION : st.code;
}

static void user_leave_locked(nnrpc_channel *ch) {
  if (atomic_fetch_sub(&ch->users, 1) == 1 && ch->closing) pthread_cond_broadcast(&ch->users_cv);
}

/* Sends `len` bytes of credit for stream c. A credit that cannot be sent
 * before the deadline is lost with the call, which fails anyway. */
static void send_credit(nnrpc_channel *ch, ccall *c, size_t credit) {
  void *msg;
  uint8_t *p = new_msg(NNRPC_FRAME_HDR_LEN + 4, 0, &msg);
  if (!p) return;
  nnrpc__frame_put(p, NNRPC_F_WINDOW, 0, 0, 4, c->node.k1);
  nnrpc__put32(p + NNRPC_FRAME_HDR_LEN, (uint32_t)credit);
  send_msg(ch, msg, c->deadline_us);
}

NNRPC_API nnrpc_status nnrpc_stream_open(nnrpc_channel *ch, const nnrpc_method *m, const ProtobufCMessage *req,
                                         const nnrpc_call_opts *opts, nnrpc_stream **out) {
  if (out) *out = NULL;
  if (!ch || !m || !out) return nnrpc__status(NNRPC_INVALID_ARGUMENT, "NULL argument");
  if (m->kind == NNRPC_UNARY)
    return nnrpc__status(NNRPC_INVALID_ARGUMENT, "%s is a unary method: use nnrpc_unary_call", m->path);
  bool one_request = m->kind == NNRPC_SERVER_STREAMING;
  if (one_request != (req != NULL))
    return nnrpc__status(NNRPC_INVALID_ARGUMENT, one_request ? "%s takes a request" : "%s takes no request at open",
                         m->path);
  size_t size;
  nnrpc_status chk = check_request(ch, m, req, opts, &size);
  if (chk.code) return chk;
  const nnrpc_metadata *hd = opts ? opts->headers : NULL;
  nnrpc_stream *st = calloc(1, sizeof *st);
  if (!st) return nnrpc__status(NNRPC_RESOURCE_EXHAUSTED, "out of memory");
  ccall *c = &st->c;
  c->stream = true;
  c->half_closed = one_request;
  c->window = ch->o.stream_window;
  c->send_credit = NNRPC_INITIAL_WINDOW;
  c->deadline_us = deadline_of(ch, opts);
  if (nnrpc__cond_init(&c->cv)) {
    free(st);
    return nnrpc__status(NNRPC_RESOURCE_EXHAUSTED, "out of resources");
  }
  pthread_mutex_lock(&ch->mu);
  nnrpc_status rs = register_locked(ch, c, m);
  if (rs.code == NNRPC_OK && c->deadline_us != NNRPC_NO_DEADLINE && heap_add(ch, c)) {
    nnrpc__hmap_del(&ch->calls, c->node.k1, 0);
    atomic_store_explicit(&ch->ncalls, ch->calls.n, memory_order_relaxed);
    rs = nnrpc__status(NNRPC_RESOURCE_EXHAUSTED, "out of memory");
  }
  if (rs.code) {
    pthread_mutex_unlock(&ch->mu);
    pthread_cond_destroy(&c->cv);
    free(st);
    return rs;
  }
  ch->users++;
  bool kick = c->heap_i == 0; /* a new earliest deadline for the receive thread */
  need_receiver_locked(ch, &kick);
  pthread_mutex_unlock(&ch->mu);
  if (kick) wake(ch);

  void *msg = NULL;
  int rc = build_call_msg(ch, c, req, size, hd, c->deadline_us, &msg);
  if (rc == NNRPC_OK) {
    pthread_mutex_lock(&ch->mu);
    if (!c->done) mark_sent_locked(ch, c);
    c->ping_epoch = UINT64_MAX; /* not before nanomsg took it (see nnrpc_unary_call) */
    pthread_mutex_unlock(&ch->mu);
    rc = send_msg(ch, msg, c->deadline_us);
  }
  pthread_mutex_lock(&ch->mu);
  if (!c->done) c->ping_epoch = ch->ping_count;
  if (rc)
    complete_locked(ch, c, rc,
                    rc == NNRPC_DEADLINE_EXCEEDED ? "deadline exceeded before the call could be sent (no server?)"
                                                  : "could not send the call");
  user_leave_locked(ch);
  pthread_mutex_unlock(&ch->mu);
  if (rc) {
    rs = nnrpc__status(rc, "%s", c->why);
    ic_unref(c->ics); /* refused or never sent: no after hook */
    pthread_cond_destroy(&c->cv);
    free(st);
    return rs;
  }
  *out = st;
  return nnrpc__status_n(NNRPC_OK, "", 0);
}

NNRPC_API int nnrpc_stream_write(nnrpc_stream *st, const ProtobufCMessage *msg) {
  if (!st || !msg) return NNRPC_INVALID_ARGUMENT;
  ccall *c = &st->c;
  if ((c->m->kind != NNRPC_CLIENT_STREAMING && c->m->kind != NNRPC_BIDI_STREAMING) || msg->descriptor != c->m->input)
    return NNRPC_INVALID_ARGUMENT;
  size_t size = protobuf_c_message_get_packed_size(msg);
  if (size > c->max_send) return NNRPC_RESOURCE_EXHAUSTED;
  nnrpc_channel *ch = atomic_load(&c->ch);
  if (!ch) return ended_code(c, false);
  void *nm;
  uint8_t *p = new_msg(NNRPC_FRAME_HDR_LEN + size, 0, &nm);
  if (!p) return NNRPC_RESOURCE_EXHAUSTED;
  nnrpc__frame_put(p, NNRPC_F_MESSAGE, 0, 0, (uint32_t)size, c->node.k1);
  protobuf_c_message_pack(msg, p + NNRPC_FRAME_HDR_LEN);

  pthread_mutex_lock(&ch->mu);
  ch->users++;
  /* The deadline is the receive thread's: it completes the call and wakes us. */
  while (!c->done && !c->half_closed && c->send_credit <= 0) pthread_cond_wait(&c->cv, &ch->mu);
  int rc = NNRPC_OK;
  if (c->half_closed && !c->done)
    rc = NNRPC_FAILED_PRECONDITION;
  else if (!c->done)
    c->send_credit -= (int64_t)NNRPC_MSG_COST(size);
  pthread_mutex_unlock(&ch->mu);
  if (c->done) { /* final: the receive thread no longer changes it */
    nn_freemsg(nm);
    pthread_mutex_lock(&ch->mu);
    user_leave_locked(ch);
    pthread_mutex_unlock(&ch->mu);
    return ended_code(c, false);
  }
  if (rc == NNRPC_OK)
    rc = send_msg(ch, nm, c->deadline_us);
  else
    nn_freemsg(nm);
  pthread_mutex_lock(&ch->mu);
  if (rc && rc != NNRPC_FAILED_PRECONDITION) complete_locked(ch, c, rc, "could not send the stream message");
  user_leave_locked(ch);
  pthread_mutex_unlock(&ch->mu);
  return rc;
}

NNRPC_API int nnrpc_stream_close_send(nnrpc_stream *st) {
  if (!st) return NNRPC_INVALID_ARGUMENT;
  ccall *c = &st->c;
  nnrpc_channel *ch = atomic_load(&c->ch);
  if (!ch) return ended_code(c, true);
  pthread_mutex_lock(&ch->mu);
  bool send = !c->done && !c->half_closed;
  c->half_closed = true;
  pthread_cond_broadcast(&c->cv); /* a writer waiting for credit gives up */
  ch->users++;
  pthread_mutex_unlock(&ch->mu);
  int rc = NNRPC_OK;
  if (send) {
    void *msg;
    uint8_t *p = new_msg(NNRPC_FRAME_HDR_LEN, 0, &msg);
    if (!p) {
      rc = NNRPC_RESOURCE_EXHAUSTED;
    } else {
      nnrpc__frame_put(p, NNRPC_F_HALF_CLOSE, 0, 0, 0, c->node.k1);
      rc = send_msg(ch, msg, c->deadline_us);
    }
  }
  pthread_mutex_lock(&ch->mu);
  if (rc) complete_locked(ch, c, rc, "could not send the half-close");
  bool done = c->done;
  user_leave_locked(ch);
  pthread_mutex_unlock(&ch->mu);
  return done ? ended_code(c, true) : rc;
}

/* Takes the next received message; credits the server in batches. *credit
 * is set when a WINDOW frame is due. mu held (or the call is done). */
static cmsg *pop_locked(ccall *c, size_t *credit) {
  cmsg *m = c->in_head;
  if (!m) return NULL;
  c->in_head = m->next;
  if (!c->in_head) c->in_tail = NULL;
  c->in_bytes -= NNRPC_MSG_COST(m->len);
  c->uncredited += NNRPC_MSG_COST(m->len);
  /* Half a window at a time: a WINDOW frame per message would double the
   * frames of a small-message stream. */
  if (!c->done && c->uncredited >= c->window / 2) {
    *credit = c->uncredited;
    c->uncredited = 0;
  }
  return m;
}

NNRPC_API int nnrpc_stream_read(nnrpc_stream *st, ProtobufCMessage **msg) {
  if (msg) *msg = NULL;
  if (!st || !msg) return 0;
  ccall *c = &st->c;
  if (c->m->kind != NNRPC_SERVER_STREAMING && c->m->kind != NNRPC_BIDI_STREAMING) return 0;
  size_t credit = 0;
  cmsg *m;
  nnrpc_channel *ch = atomic_load(&c->ch);
  if (ch) {
    pthread_mutex_lock(&ch->mu);
    ch->users++;
    while (!c->in_head && !c->done) pthread_cond_wait(&c->cv, &ch->mu);
    m = c->done && c->code >= 0 ? NULL : pop_locked(c, &credit);
    pthread_mutex_unlock(&ch->mu);
    if (credit) send_credit(ch, c, credit);
    pthread_mutex_lock(&ch->mu);
    user_leave_locked(ch);
    pthread_mutex_unlock(&ch->mu);
  } else if (c->code < 0) { /* ended by the server's STATUS: what it sent first is still read */
    m = pop_locked(c, &credit);
  } else { /* ended here (cancel, deadline, connection lost): nothing more */
    m = NULL;
  }
  if (!m) return 0;
  nnrpc__budget b;
  nnrpc__budget_init(&b, c->max_decode);
  bool too_deep;
  const char *why = NULL;
  *msg = nnrpc__decode(c->m->output, m->p, m->len, c->max_depth, &b.pb, &too_deep, &why);
  nnrpc__rxbuf_unref(m->rx);
  free(m);
  if (*msg) return 1;
  /* A message we cannot take ends the call: the rest would be out of order. */
  int code = b.over || too_deep ? NNRPC_RESOURCE_EXHAUSTED : NNRPC_INTERNAL;
  why = b.over ? "stream message exceeds max_decode_bytes when decoded"
        : too_deep ? "stream message nested deeper than max_decode_depth"
                   : "stream message from the server cannot be decoded";
  ch = atomic_load(&c->ch);
  bool tell = false;
  if (ch) {
    pthread_mutex_lock(&ch->mu);
    tell = !c->done;
    complete_locked(ch, c, code, why);
    pthread_mutex_unlock(&ch->mu);
  }
  if (!tell) { /* already over: the local failure replaces the status */
    c->code = code;
    c->why = why;
  } else {
    send_small(ch, NNRPC_F_CANCEL, c->node.k1, NULL, 0);
  }
  return 0;
}

NNRPC_API void nnrpc_stream_cancel(nnrpc_stream *st) {
  if (st) nnrpc_call_cancel(&st->c);
}

NNRPC_API nnrpc_status nnrpc_stream_finish(nnrpc_stream *st, ProtobufCMessage **reply, nnrpc_metadata *trailers) {
  if (reply) *reply = NULL;
  if (!st) return nnrpc__status(NNRPC_INVALID_ARGUMENT, "NULL stream");
  ccall *c = &st->c;
  nnrpc_channel *ch = atomic_load(&c->ch);
  if (ch && !c->half_closed) nnrpc_stream_close_send(st);
  ch = atomic_load(&c->ch);
  if (ch) {
    pthread_mutex_lock(&ch->mu);
    ch->users++;
    while (!c->done) { /* drop unread messages, keeping the server's window open */
      size_t credit = 0;
      cmsg *m;
      while ((m = pop_locked(c, &credit))) {
        nnrpc__rxbuf_unref(m->rx);
        free(m);
      }
      if (credit) {
        pthread_mutex_unlock(&ch->mu);
        send_credit(ch, c, credit);
        pthread_mutex_lock(&ch->mu);
        continue;
      }
      pthread_cond_wait(&c->cv, &ch->mu);
    }
    user_leave_locked(ch);
    pthread_mutex_unlock(&ch->mu);
  }
  for (cmsg *m = c->in_head, *next; m; m = next) {
    next = m->next;
    nnrpc__rxbuf_unref(m->rx);
    free(m);
  }
  bool one_reply = c->m->kind == NNRPC_CLIENT_STREAMING;
  nnrpc_status rs = result_of(c, one_reply ? reply : NULL, trailers);
  run_after(c, rs.code);
  nnrpc__rxbuf_unref(c->rx);
  pthread_cond_destroy(&c->cv);
  free(st);
  return rs;
}
