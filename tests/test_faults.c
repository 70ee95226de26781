/* Fault injection (docs/reliability.md, "Faults"): at most once across
 * timeouts, cancels, retries and a server restart; clients killed in the
 * middle of client and bidirectional streams; a flood of 100 000 malformed and
 * unroutable messages, from a client that acks and from one that never
 * reads; protobuf bombs in both directions (amplifying repeated fields,
 * lengths claiming gigabytes, deep nesting from a hostile server).
 *
 * Real sockets everywhere; every call has a deadline. Processes that die run
 * as children: this binary re-executed (nanomsg is not fork-safe). Memory is
 * judged by this process's VmRSS (the server runs here), except under ASan
 * and valgrind, where RSS says nothing about our allocations: there the same
 * scenarios run smaller, for correctness only. Related faults live elsewhere:
 * server SIGKILLed mid-call and restarted (test_keepalive.c, test_stream.c),
 * limits (test_unary.c, test_stream.c), hostile frames one by one
 * (test_hostile.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <nanomsg/nn.h>
#include <nanomsg/reqrep.h>
#include <nanomsg/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "callhdr.h"
#include "internal.h"
#include "wire.h"

#include "helpers/harness.h"


typedef NnrpcStreamTest__Num Num;

/* Margin for timing bounds: valgrind slows everything down. */
static int64_t slack(int64_t ms) { return th_slow() ? ms * 10 : ms; }

static uint64_t rnd(uint64_t *s) { /* xorshift64 */
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return *s;
}

/* ---------------------------------------------------------------- memory */

static long status_kib(const char *key) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  long kib = -1;
  size_t kl = strlen(key);
  while (f && fgets(line, sizeof line, f))
    if (strncmp(line, key, kl) == 0 && sscanf(line + kl, "%ld", &kib) == 1) break;
  if (f) fclose(f);
  return kib;
}
static long rss_kib(void) { return status_kib("VmRSS:"); }
static long hwm_kib(void) { return status_kib("VmHWM:"); }
/* Resets VmHWM (the peak) to the current RSS; false where not allowed. */
static bool reset_hwm(void) {
  FILE *f = fopen("/proc/self/clear_refs", "w");
  if (!f) return false;
  bool ok = fputs("5", f) >= 0;
  return fclose(f) == 0 && ok;
}

#if defined(__SANITIZE_ADDRESS__)
#define FAULTS_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FAULTS_ASAN 1
#endif
#endif
#ifdef FAULTS_ASAN
static bool rss_meaningful(void) { return false; }
#else
static bool rss_meaningful(void) { return !th_slow(); }
#endif

/* ---------------------------------------------------------------- child processes */



/* One Echo call with a deadline; its code (reply checked on OK). */
static int echo_call(nnrpc_channel *ch, uint64_t tag, int64_t timeout_ms) {
  NnrpcTest__EchoRequest req = NNRPC_TEST__ECHO_REQUEST__INIT;
  req.tag = tag;
  NnrpcTest__EchoReply *rep = NULL;
  nnrpc_call_opts o = {.timeout_ms = timeout_ms};
  nnrpc_status s = nnrpc_test__echo__echo__call(ch, &req, &rep, &o);
  if (rep) {
    if (rep->tag != tag) s.code = -100;
    nnrpc_test__echo_reply__free_unpacked(rep, NULL);
  }
  return s.code;
}

/* ================================================================ at most once */

#define AMO_MAX 8192

/* The service's books: how often each tag's handler ran. */
typedef struct amo_book {
  atomic_int runs[AMO_MAX];
  atomic_int out_of_range;
} amo_book;

static int amo_echo(nnrpc_ctx *ctx, const NnrpcTest__EchoRequest *req, NnrpcTest__EchoReply *reply) {
  amo_book *b = nnrpc_ctx_user_data(ctx);
  if (req->tag < AMO_MAX)
    atomic_fetch_add(&b->runs[req->tag], 1);
  else
    atomic_fetch_add(&b->out_of_range, 1);
  int64_t until = th_now_ms() + req->delay_ms;
  while (th_now_ms() < until) {
    if (nnrpc_ctx_is_cancelled(ctx)) return NNRPC_CANCELLED;
    th_sleep_ms(1);
  }
  reply->tag = req->tag;
  return NNRPC_OK;
}

/* A server with Echo answered by amo_echo, on `url` (retrying the bind: the
 * port of a server just closed may take a moment to free). */
static nnrpc_server *amo_server(const char *url, amo_book *b) {
  nnrpc_server *s = NULL;
  assert_int_equal(nnrpc_server_open(&s, NULL), NNRPC_OK);
  NnrpcTest__Echo_Handlers h = {.echo = amo_echo};
  assert_int_equal(nnrpc_test__echo__handlers__register(s, &h, b), NNRPC_OK);
  int rc = -1;
  for (int i = 0; i < 100 && rc != NNRPC_OK; i++)
    if ((rc = nnrpc_server_listen(s, url)) != NNRPC_OK) th_sleep_ms(20);
  if (rc != NNRPC_OK) {
    nnrpc_server_close(s);
    return NULL;
  }
  assert_int_equal(nnrpc_server_start(s), NNRPC_OK);
  return s;
}

typedef struct amo_run {
  nnrpc_channel *ch;
  int total;               /* calls to make (tags 1..total) */
  atomic_int next;         /* next tag */
  int code[AMO_MAX];       /* each tag's final status; -1: none (yet) */
  atomic_int overdue;      /* calls that returned well after their deadline */
  atomic_int retries;
  atomic_int cancels;
} amo_run;

typedef struct amo_thread {
  amo_run *r;
  int id;
} amo_thread;

/* Callers: each takes fresh tags and makes, at random, (a) an async call it
 * cancels after a random pause, (b) a blocking call it retries (as a new
 * call, with a new tag) once if it failed, (c) plain blocking calls. Deadlines
 * 5..80 ms against handlers of 0..40 ms: many expire while the handler runs. */
static void *amo_caller(void *arg) {
  amo_thread *t = arg;
  amo_run *r = t->r;
  uint64_t s = 0x9e3779b97f4a7c15ULL * (uint64_t)(t->id + 1);
  nnrpc_cq *cq = NULL;
  if (nnrpc_cq_open(&cq)) return NULL;
  bool retry_next = false;
  NnrpcTest__EchoRequest req = NNRPC_TEST__ECHO_REQUEST__INIT;
  int64_t timeout = 0;
  unsigned kind = 0;
  for (;;) {
    int tag = atomic_fetch_add(&r->next, 1);
    if (tag > r->total) break;
    if (retry_next) { /* the same request again, as a new call */
      atomic_fetch_add(&r->retries, 1);
      timeout *= 2;
      retry_next = false;
      kind = 3;
    } else {
      req.delay_ms = (uint32_t)(rnd(&s) % 40);
      timeout = 5 + (int64_t)(rnd(&s) % 75);
      kind = (unsigned)(rnd(&s) % 3);
    }
    req.tag = (uint64_t)tag;
    nnrpc_call_opts o = {.timeout_ms = timeout};
    int64_t t0 = th_now_ms();
    int code;
    NnrpcTest__EchoReply *rep = NULL;
    if (kind == 0) {
      nnrpc_completion how = {.cq = cq};
      nnrpc_call *call = NULL;
      code = nnrpc_test__echo__echo__start(r->ch, &req, &o, &how, &call);
      if (code == NNRPC_OK) {
        th_sleep_ms((int)(rnd(&s) % 30));
        nnrpc_call_cancel(call);
        atomic_fetch_add(&r->cancels, 1);
        nnrpc_call *done = nnrpc_cq_next(cq, slack(5000));
        code = done ? nnrpc_test__echo__echo__finish(done, &rep, NULL).code : -2;
      }
    } else {
      code = nnrpc_test__echo__echo__call(r->ch, &req, &rep, &o).code;
      if (kind == 1 && (code == NNRPC_DEADLINE_EXCEEDED || code == NNRPC_UNAVAILABLE)) retry_next = true;
    }
    if (rep) {
      if (rep->tag != (uint64_t)tag) code = -3;
      nnrpc_test__echo_reply__free_unpacked(rep, NULL);
    }
    if (th_now_ms() - t0 > timeout + slack(500)) atomic_fetch_add(&r->overdue, 1);
    r->code[tag] = code;
  }
  nnrpc_cq_close(cq);
  return NULL;
}

static void test_at_most_once_across_timeouts_cancels_retries_and_a_server_restart(void **st) {
  (void)st;
  amo_book *b = calloc(1, sizeof *b);
  amo_run *r = calloc(1, sizeof *r);
  assert_non_null(b);
  assert_non_null(r);
  char url[128];
  nnrpc_server *srv = NULL;
  for (int i = 0; i < 20 && !srv; i++) srv = amo_server(th_url("tcp", url, sizeof url), b);
  assert_non_null(srv);
  /* Fast keepalive: calls lost with the first server fail in ~100 ms. */
  nnrpc_channel_opts co = {.keepalive_ms = 100, .keepalive_timeout_ms = 1000};
  r->ch = th_channel(url, &co);
  r->total = th_slow() ? 120 : 600;
  atomic_init(&r->next, 1);
  for (int i = 0; i < AMO_MAX; i++) r->code[i] = -1;
  assert_int_equal(echo_call(r->ch, 0, slack(5000)), NNRPC_OK); /* connected */
  enum { THREADS = 8 };
  pthread_t th[THREADS];
  amo_thread a[THREADS];
  for (int i = 0; i < THREADS; i++) {
    a[i] = (amo_thread){r, i};
    assert_int_equal(pthread_create(&th[i], NULL, amo_caller, &a[i]), 0);
  }
  /* Halfway: the server goes (grace 0: running handlers are cancelled) and
   * a new one comes up on the same URL; the channel is never reopened. */
  while (atomic_load(&r->next) < r->total / 2) th_sleep_ms(2);
  nnrpc_server_close(srv);
  th_sleep_ms(50);
  srv = amo_server(url, b);
  assert_non_null(srv);
  for (int i = 0; i < THREADS; i++) pthread_join(th[i], NULL);
  /* The same channel serves the new server. */
  int after = -1;
  for (int i = 0; i < 20 && after != NNRPC_OK; i++) after = echo_call(r->ch, 0, slack(2000));
  assert_int_equal(after, NNRPC_OK);
  nnrpc_channel_close(r->ch);
  nnrpc_server_close(srv); /* every handler has returned: the books are final */

  int by_code[NNRPC_CODE_COUNT] = {0}, ran_not_ok = 0, twice = 0, no_status = 0, odd = 0;
  for (int tag = 1; tag <= r->total; tag++) {
    int runs = atomic_load(&b->runs[tag]), c = r->code[tag];
    if (runs > 1) {
      twice++;
      print_error("tag %d executed %d times (status %d)\n", tag, runs, c);
    }
    if (c < 0) {
      no_status++;
      continue;
    }
    by_code[c]++;
    if (c != NNRPC_OK && c != NNRPC_DEADLINE_EXCEEDED && c != NNRPC_CANCELLED && c != NNRPC_UNAVAILABLE) odd++;
    if (c == NNRPC_OK && runs != 1) odd++;
    if (c != NNRPC_OK && runs == 1) ran_not_ok++;
  }
  print_message("%d calls: OK %d, DEADLINE_EXCEEDED %d, CANCELLED %d, UNAVAILABLE %d; %d ran but did not "
                "return OK; %d cancels, %d retries; none executed twice: %s\n",
                r->total, by_code[NNRPC_OK], by_code[NNRPC_DEADLINE_EXCEEDED], by_code[NNRPC_CANCELLED],
                by_code[NNRPC_UNAVAILABLE], ran_not_ok, atomic_load(&r->cancels), atomic_load(&r->retries),
                twice ? "NO" : "yes");
  assert_int_equal(twice, 0);
  assert_int_equal(no_status, 0);
  assert_int_equal(odd, 0);
  assert_int_equal(atomic_load(&r->overdue), 0);
  assert_int_equal(atomic_load(&b->out_of_range), 0);
  /* The run really mixed the cases it claims to. */
  assert_true(by_code[NNRPC_OK] > 0);
  assert_true(by_code[NNRPC_DEADLINE_EXCEEDED] > 0);
  assert_true(by_code[NNRPC_CANCELLED] > 0);
  assert_true(ran_not_ok > 0); /* some timed out or were cancelled while their handler ran */
  free(b);
  free(r);
}

/* ================================================================ clients killed mid-stream */

/* Child: streams to the server until killed. "--sum": client streaming;
 * "--chat": bidirectional, one answer read per message. */
static int child_stream(const char *mode, const char *url) {
  nnrpc_channel *ch = NULL;
  if (nnrpc_channel_open(&ch, url, NULL)) return 2;
  bool chat = strcmp(mode, "--chat") == 0;
  nnrpc_call_opts o = {.timeout_ms = 120000};
  nnrpc_stream *s = NULL;
  nnrpc_status r = chat ? nnrpc_stream_test__streamer__chat__open(ch, &o, &s)
                        : nnrpc_stream_test__streamer__sum__open(ch, &o, &s);
  if (r.code) return 3;
  for (int64_t i = 0; i < 100000; i++) { /* the parent kills us long before */
    Num m = NNRPC_STREAM_TEST__NUM__INIT;
    m.value = i;
    int rc = chat ? nnrpc_stream_test__streamer__chat__write(s, &m) : nnrpc_stream_test__streamer__sum__write(s, &m);
    if (rc) return 4;
    if (chat) {
      Num *back = NULL;
      if (nnrpc_stream_test__streamer__chat__read(s, &back) != 1) return 5;
      nnrpc_stream_test__num__free_unpacked(back, NULL);
    }
    th_sleep_ms(1);
  }
  return 0;
}

static void test_clients_killed_mid_client_and_bidi_stream_are_cancelled_and_released(void **st) {
  (void)st;
  nnrpc_server_opts so = {.keepalive_timeout_ms = 300};
  th_server *t = th_server_start("tcp", &so);
  nnrpc_channel *ch = th_channel(t->url, NULL);
  int reps = th_slow() ? 2 : 20, warm = reps > 4 ? 4 : 0;
  long base = 0, last = 0;
  int64_t worst_ms = 0;
  for (int i = 0; i < reps; i++) {
    pid_t pid = th_spawn_self(i % 2 ? "--chat" : "--sum", t->url);
    int64_t until = th_now_ms() + slack(10000);
    while (atomic_load(&t->streams_started) < i + 1 && th_now_ms() < until) th_sleep_ms(2);
    assert_int_equal(atomic_load(&t->streams_started), i + 1);
    th_sleep_ms(30); /* messages are flowing */
    assert_int_equal(atomic_load(&t->streams_ended), i);
    th_kill_child(pid);
    int64_t killed = th_now_ms();
    /* The handler sees the call cancelled (keepalive_timeout_ms after the
     * client went silent) and returns; its call is released. */
    until = killed + slack(5000);
    while (atomic_load(&t->streams_ended) < i + 1 && th_now_ms() < until) th_sleep_ms(5);
    assert_int_equal(atomic_load(&t->streams_ended), i + 1);
    assert_int_equal(atomic_load(&t->streams_cancelled), i + 1);
    if (th_now_ms() - killed > worst_ms) worst_ms = th_now_ms() - killed;
    /* The server keeps serving. */
    assert_int_equal(echo_call(ch, (uint64_t)i, slack(5000)), NNRPC_OK);
    long r = rss_kib();
    if (i == warm) base = r;
    last = r;
  }
  print_message("%d clients killed mid-stream (client streaming and bidi alternately): every handler "
                "cancelled within %lld ms; RSS %ld KiB after %d, %ld KiB after %d (%+ld KiB)\n",
                reps, (long long)worst_ms, base, warm + 1, last, reps, last - base);
  if (rss_meaningful()) assert_true(last - base < 1024);
  nnrpc_channel_close(ch);
  th_server_stop(t);
}

/* ================================================================ hostile raw client */

static int raw_open(const char *url, int timeout_ms) {
  int s = nn_socket(AF_SP_RAW, NN_REQ);
  assert_true(s >= 0);
  int ivl = 20, nodelay = 1;
  assert_int_equal(nn_setsockopt(s, NN_SOL_SOCKET, NN_RCVTIMEO, &timeout_ms, sizeof timeout_ms), 0);
  assert_int_equal(nn_setsockopt(s, NN_SOL_SOCKET, NN_SNDTIMEO, &timeout_ms, sizeof timeout_ms), 0);
  assert_int_equal(nn_setsockopt(s, NN_SOL_SOCKET, NN_RECONNECT_IVL, &ivl, sizeof ivl), 0);
  assert_int_equal(nn_setsockopt(s, NN_TCP, NN_TCP_NODELAY, &nodelay, sizeof nodelay), 0);
  assert_true(nn_connect(s, url) >= 0);
  return s;
}

typedef struct msgbuf {
  uint8_t p[1024];
  size_t len;
} msgbuf;

static void mb_put(msgbuf *b, const void *data, size_t n) {
  assert_true(b->len + n <= sizeof b->p);
  memcpy(b->p + b->len, data, n);
  b->len += n;
}

/* Request id (top bit set) and envelope, as every client message starts. */
static void mb_start(msgbuf *b) {
  b->len = NNRPC_REQID_LEN + NNRPC_ENV_LEN;
  nnrpc__put32(b->p, 0x80000000u);
  nnrpc__env_put(b->p + NNRPC_REQID_LEN, 0);
}

static void mb_hdr(msgbuf *b, uint8_t type, uint8_t flags, uint16_t meta_len, uint32_t payload_len, uint64_t id) {
  uint8_t h[NNRPC_FRAME_HDR_LEN];
  nnrpc__frame_put(h, type, flags, meta_len, payload_len, id);
  mb_put(b, h, sizeof h);
}

static void mb_frame(msgbuf *b, uint8_t type, uint8_t flags, uint64_t id, const void *meta, size_t ml,
                     const void *payload, size_t pl) {
  mb_hdr(b, type, flags, (uint16_t)ml, (uint32_t)pl, id);
  if (ml) mb_put(b, meta, ml);
  if (pl) mb_put(b, payload, pl);
}

/* A CALL frame as channel.c builds it, with a 10 s deadline. */
static void mb_call(msgbuf *b, uint64_t id, const char *method, uint8_t flags, const void *payload, size_t pl) {
  nnrpc__hdr h;
  assert_int_equal(nnrpc__hdr_build(&h, method, 10u * 1000 * 1000, NULL, 0, NULL, 1u << 20), 0);
  uint8_t meta[256];
  size_t ml = protobuf_c_message_get_packed_size(&h.pb.base);
  assert_true(ml <= sizeof meta);
  protobuf_c_message_pack(&h.pb.base, meta);
  nnrpc__hdr_done(&h);
  mb_frame(b, NNRPC_F_CALL, flags, id, meta, ml, payload, pl);
}

static void raw_send(int raw, const void *p, size_t len) { assert_int_equal(nn_send(raw, p, len, 0), (int)len); }

static void raw_ack(int raw, uint32_t seq) {
  uint8_t a[NNRPC_REQID_LEN + NNRPC_ENV_LEN];
  nnrpc__put32(a, 0x80000000u);
  nnrpc__env_put(a + NNRPC_REQID_LEN, seq);
  nn_send(raw, a, sizeof a, 0);
}

/* Decodes a STATUS frame's code and message. */
static int status_of(const nnrpc__frame *fr, char *msg, size_t cap) {
  nnrpc__arena a;
  nnrpc__arena_init(&a, 1u << 20);
  Nnrpc__Wire__CallHeader *h = NULL;
  const char *why = NULL;
  int code = -1;
  if (nnrpc__hdr_decode(fr->meta, fr->meta_len, &a.pb, 8192, 64, &h, &why) == NNRPC_OK) {
    code = (int)h->status;
    if (msg) snprintf(msg, cap, "%s", h->message ? h->message : "");
  }
  nnrpc__arena_free(&a);
  return code;
}

/* Reads server messages (acking each) until the STATUS of call `id`. */
static int raw_status(int raw, uint64_t id, int timeout_ms, char *msg, size_t cap) {
  int64_t until = th_now_ms() + timeout_ms;
  for (;;) {
    int left = (int)(until - th_now_ms());
    if (left <= 0) return -1;
    nn_setsockopt(raw, NN_SOL_SOCKET, NN_RCVTIMEO, &left, sizeof left);
    void *body = NULL;
    int n = nn_recv(raw, &body, NN_MSG, 0);
    if (n < 0) return -1;
    uint32_t seq;
    int code = -1;
    if (nnrpc__env_get(body, (size_t)n, &seq) == 0) {
      raw_ack(raw, seq);
      size_t off = NNRPC_ENV_LEN;
      nnrpc__frame fr;
      while (nnrpc__frame_next(body, (size_t)n, &off, &fr) == 1)
        if (fr.type == NNRPC_F_STATUS && fr.call_id == id) code = status_of(&fr, msg, cap);
    }
    nn_freemsg(body);
    if (code >= 0) return code;
  }
}

/* ---------------------------------------------------------------- the flood */

/* The raw client's reader: acks every server message, like a real client,
 * and counts the STATUS frames of the flood's routable CALLs. */
#define PROBE_ID (1ull << 40)
typedef struct acker {
  int raw;
  atomic_bool stop;
  atomic_int statuses;
  atomic_int wrong;
  atomic_bool probe_seen; /* the STATUS of call PROBE_ID */
} acker;

static void *acker_main(void *arg) {
  acker *a = arg;
  int to = 50;
  nn_setsockopt(a->raw, NN_SOL_SOCKET, NN_RCVTIMEO, &to, sizeof to);
  while (!atomic_load(&a->stop)) {
    void *body = NULL;
    int n = nn_recv(a->raw, &body, NN_MSG, 0);
    if (n < 0) continue;
    uint32_t seq;
    if (nnrpc__env_get(body, (size_t)n, &seq) == 0) {
      raw_ack(a->raw, seq);
      size_t off = NNRPC_ENV_LEN;
      nnrpc__frame fr;
      while (nnrpc__frame_next(body, (size_t)n, &off, &fr) == 1) {
        if (fr.type != NNRPC_F_STATUS) continue;
        int code = status_of(&fr, NULL, 0);
        if (fr.call_id == PROBE_ID)
          atomic_store(&a->probe_seen, code == NNRPC_UNIMPLEMENTED);
        else if (code == NNRPC_UNIMPLEMENTED || code == NNRPC_INVALID_ARGUMENT)
          atomic_fetch_add(&a->statuses, 1);
        else
          atomic_fetch_add(&a->wrong, 1);
      }
    }
    nn_freemsg(body);
  }
  return NULL;
}

/* A well-behaved caller on a normal channel for as long as the flood runs. */
typedef struct steady {
  nnrpc_channel *ch;
  atomic_bool stop;
  atomic_int ok, failed;
  int first_failure;
} steady;

static void *steady_main(void *arg) {
  steady *c = arg;
  for (uint64_t i = 1; !atomic_load(&c->stop); i++) {
    int code = echo_call(c->ch, i, slack(5000));
    if (code == NNRPC_OK)
      atomic_fetch_add(&c->ok, 1);
    else if (atomic_fetch_add(&c->failed, 1) == 0)
      c->first_failure = code;
  }
  return NULL;
}

/* Message k of the flood; returns 1 when it is a routable CALL that the
 * server must answer (UNIMPLEMENTED or INVALID_ARGUMENT). */
static int flood_msg(int raw, int k, bool answered_only, uint64_t *seed, uint64_t *call_id) {
  msgbuf b;
  mb_start(&b);
  int answered = 0;
  static const int owed[] = {4, 5, 10, 11}; /* the kinds the server answers */
  switch (answered_only ? owed[k % 4] : k % 10) {
  case 0: { /* random bytes, any length: most have no valid request id or envelope */
    size_t len = (size_t)(rnd(seed) % 300);
    for (size_t i = 0; i < len; i++) b.p[i] = (uint8_t)rnd(seed);
    if (len > 4) b.p[4] = 0xee; /* never version 1: junk must not happen to be a CALL */
    b.len = len;
    break;
  }
  case 1: /* a CALL whose payload length runs 4 GiB past the end */
    mb_hdr(&b, NNRPC_F_CALL, NNRPC_FF_HAS_MESSAGE, 0, UINT32_MAX, 1);
    mb_put(&b, "\x0a\x02/x", 4);
    break;
  case 2: /* meta length past the end */
    mb_hdr(&b, NNRPC_F_CALL, NNRPC_FF_HAS_MESSAGE, 60000, 0, 2);
    mb_put(&b, "\x0a", 1);
    break;
  case 3: /* frame types that do not exist */
    mb_frame(&b, (uint8_t)(10 + rnd(seed) % 246), (uint8_t)rnd(seed), rnd(seed), "\x0a\x01x", 3, "junk", 4);
    break;
  case 4: /* CALL for a method nobody serves */
    mb_call(&b, ++*call_id, "/nnrpc_test.Echo/NoSuchMethod", NNRPC_FF_HAS_MESSAGE, NULL, 0);
    answered = 1;
    break;
  case 5: /* CALL of a real method whose request cannot be decoded */
    mb_call(&b, ++*call_id, "/nnrpc_test.Echo/Echo", NNRPC_FF_HAS_MESSAGE, "\x0a\xff\xff\xff\xff\x0f", 6);
    answered = 1;
    break;
  case 6: /* CANCELs of calls that do not exist */
    for (int i = 0; i < 8; i++) mb_frame(&b, NNRPC_F_CANCEL, 0, rnd(seed), NULL, 0, NULL, 0);
    break;
  case 7: { /* WINDOW credit for unknown streams */
    uint8_t w[4];
    nnrpc__put32(w, (uint32_t)rnd(seed));
    for (int i = 0; i < 4; i++) mb_frame(&b, NNRPC_F_WINDOW, 0, rnd(seed), NULL, 0, w, 4);
    break;
  }
  case 8: /* stream messages and half-closes for unknown streams */
    mb_frame(&b, NNRPC_F_MESSAGE, 0, rnd(seed), NULL, 0, "\x08\x01", 2);
    mb_frame(&b, NNRPC_F_HALF_CLOSE, NNRPC_FF_END_STREAM, rnd(seed), NULL, 0, NULL, 0);
    break;
  case 10: { /* PING: the server answers PONG listing the ids it does not know */
    uint8_t ids[16 * 8];
    for (int i = 0; i < 16; i++) nnrpc__put64(ids + 8 * i, rnd(seed));
    mb_frame(&b, NNRPC_F_PING, 0, 0, NULL, 0, ids, sizeof ids);
    break;
  }
  case 11: { /* a valid call, served: its reply waits for an ack too */
    NnrpcTest__EchoRequest req = NNRPC_TEST__ECHO_REQUEST__INIT;
    req.tag = rnd(seed);
    uint8_t pb[32];
    size_t pl = nnrpc_test__echo_request__pack(&req, pb);
    mb_call(&b, ++*call_id, "/nnrpc_test.Echo/Echo", NNRPC_FF_HAS_MESSAGE, pb, pl);
    answered = 1;
    break;
  }
  default: /* a wrong protocol version: the CALL inside must be ignored */
    b.p[NNRPC_REQID_LEN] = 2;
    mb_call(&b, 9, "/nnrpc_test.Echo/NoSuchMethod", NNRPC_FF_HAS_MESSAGE, NULL, 0);
    break;
  }
  raw_send(raw, b.p, b.len);
  return answered;
}

/* 100 000 hostile messages (th_count under valgrind) from one raw socket
 * while a normal channel keeps calling. `acks`: the raw client acks every
 * server message like a real one and sends the whole mix; otherwise it never
 * reads at all and sends only what the server must answer (CALLs it refuses,
 * PINGs, valid calls), so those answers can never leave: the server keeps at
 * most MAX_QUEUED_ANSWERS (1 MiB) of refusals and PONGs per connection, and
 * counts queued replies against max_concurrent_calls (server.c). */
static void flood(bool acks) {
  th_server *t = th_server_start("tcp", NULL);
  steady c = {.ch = th_channel(t->url, NULL)};
  assert_int_equal(echo_call(c.ch, 0, slack(5000)), NNRPC_OK);
  int raw = raw_open(t->url, (int)slack(5000));
  acker a = {.raw = raw};
  pthread_t ta, tc;
  if (acks) assert_int_equal(pthread_create(&ta, NULL, acker_main, &a), 0);
  assert_int_equal(pthread_create(&tc, NULL, steady_main, &c), 0);
  int n = th_count(100000), warm = n / 10, answered = 0;
  uint64_t seed = 0x2545f4914f6cdd1dULL, call_id = 0;
  long base = 0, peak = 0;
  int64_t t0 = th_now_ms();
  for (int k = 0; k < n; k++) {
    answered += flood_msg(raw, k, !acks, &seed, &call_id);
    if (k % 2000 == 0 || k == warm || k == n - 1) {
      long r = rss_kib();
      if (k == warm) base = r;
      if (k > warm && r > peak) peak = r;
    }
  }
  int64_t flood_ms = th_now_ms() - t0;
  /* Until the server has worked through the flood, valid calls keep going.
   * Answers on one connection keep their order: once a last CALL's answer is
   * in, every earlier answer has come (or was dropped: a client that sends
   * faster than it reads may find MAX_QUEUED_ANSWERS full). */
  if (acks) {
    msgbuf b;
    mb_start(&b);
    mb_call(&b, PROBE_ID, "/nnrpc_test.Echo/NoSuchMethod", NNRPC_FF_HAS_MESSAGE, NULL, 0);
    raw_send(raw, b.p, b.len);
    int64_t until = th_now_ms() + slack(10000);
    while (!atomic_load(&a.probe_seen) && th_now_ms() < until) th_sleep_ms(10);
  }
  int probe = echo_call(c.ch, 1u << 30, slack(5000));
  atomic_store(&c.stop, true);
  pthread_join(tc, NULL);
  if (acks) {
    atomic_store(&a.stop, true);
    pthread_join(ta, NULL);
  }
  long end = rss_kib();
  if (end > peak) peak = end;
  print_message("%d hostile messages in %lld ms (%s); %d owed an answer, %d answers read; %d valid calls OK, "
                "%d failed; RSS %ld KiB after warm-up, peak %ld KiB (%+ld KiB)\n",
                n, (long long)flood_ms, acks ? "client acks, full mix" : "client never reads, only what is answered",
                answered, atomic_load(&a.statuses), atomic_load(&c.ok), atomic_load(&c.failed), base, peak,
                peak - base);
  if (atomic_load(&c.failed)) fail_msg("%d valid calls failed, first with %d", atomic_load(&c.failed), c.first_failure);
  assert_int_equal(probe, NNRPC_OK);
  assert_true(atomic_load(&c.ok) > 0);
  if (acks) {
    assert_true(atomic_load(&a.probe_seen)); /* the raw connection is still served */
    assert_true(atomic_load(&a.statuses) <= answered); /* never twice */
    assert_true(atomic_load(&a.statuses) > 0);
    assert_int_equal(atomic_load(&a.wrong), 0);
  }
  if (rss_meaningful()) assert_true(peak - base < 4 * 1024);
  nn_close(raw);
  nnrpc_channel_close(c.ch);
  th_server_stop(t);
}

static void test_flood_of_100k_malformed_and_unroutable_messages_keeps_calls_working_and_memory_flat(void **st) {
  (void)st;
  flood(true);
}

static void test_flood_from_a_client_that_never_reads_keeps_server_memory_bounded(void **st) {
  (void)st;
  flood(false);
}

/* Clients that send CALLs nobody serves, never read the answers, and go
 * away: the server forgets them after keepalive_timeout_ms with whatever
 * was queued for them, so 20 such clients cost no more than one. */
static void test_clients_that_vanish_with_answers_queued_are_forgotten(void **st) {
  (void)st;
  nnrpc_server_opts so = {.keepalive_timeout_ms = 200};
  th_server *t = th_server_start("tcp", &so);
  nnrpc_channel *ch = th_channel(t->url, NULL);
  int rounds = th_slow() ? 3 : 20, per = th_count(3000), warm = rounds > 4 ? 4 : 0;
  long base = 0, last = 0;
  for (int i = 0; i < rounds; i++) {
    int raw = raw_open(t->url, (int)slack(5000));
    msgbuf b;
    for (int k = 0; k < per; k++) {
      mb_start(&b);
      mb_call(&b, (uint64_t)k + 1, "/nnrpc_test.Echo/NoSuchMethod", NNRPC_FF_HAS_MESSAGE, NULL, 0);
      raw_send(raw, b.p, b.len);
    }
    assert_int_equal(echo_call(ch, (uint64_t)i, slack(5000)), NNRPC_OK); /* the server has read them */
    nn_close(raw);
    th_sleep_ms(200 + 150); /* silent past keepalive_timeout_ms, and a tick */
    long r = rss_kib();
    if (i == warm) base = r;
    last = r;
  }
  print_message("%d clients left %d unread answers each: RSS %ld KiB after %d, %ld KiB after %d (%+ld KiB)\n",
                rounds, per, base, warm + 1, last, rounds, last - base);
  if (rss_meaningful()) assert_true(last - base < 1024);
  nnrpc_channel_close(ch);
  th_server_stop(t);
}

/* A client that sends calls and never acks a reply: the server serves at
 * most max_concurrent_calls of them (replies waiting for the client count as
 * calls in progress) and refuses the rest, so their replies cannot pile up;
 * once the client reads, the connection serves again. */
static void test_client_that_never_acks_is_served_at_most_max_concurrent_calls(void **st) {
  (void)st;
  nnrpc_server_opts so = {.max_concurrent_calls = 10};
  th_server *t = th_server_start("tcp", &so);
  int raw = raw_open(t->url, (int)slack(5000));
  enum { N = 30 };
  NnrpcTest__EchoRequest req = NNRPC_TEST__ECHO_REQUEST__INIT;
  uint8_t pb[32];
  size_t pl = nnrpc_test__echo_request__pack(&req, pb);
  msgbuf b;
  for (int i = 1; i <= N; i++) { /* one at a time: each ends before the next comes */
    mb_start(&b);
    mb_call(&b, (uint64_t)i, "/nnrpc_test.Echo/Echo", NNRPC_FF_HAS_MESSAGE, pb, pl);
    raw_send(raw, b.p, b.len);
    int64_t until = th_now_ms() + slack(1000);
    while (atomic_load(&t->calls) < i && atomic_load(&t->calls) < 11 && th_now_ms() < until) th_sleep_ms(1);
    th_sleep_ms(5);
  }
  /* Now read (and ack) everything. */
  int code[N + 1], ok = 0, refused = 0;
  for (int i = 0; i <= N; i++) code[i] = -1;
  char refusal[256] = "";
  int64_t until = th_now_ms() + slack(5000);
  while (ok + refused < N && th_now_ms() < until) {
    int left = (int)(until - th_now_ms());
    nn_setsockopt(raw, NN_SOL_SOCKET, NN_RCVTIMEO, &left, sizeof left);
    void *body = NULL;
    int n = nn_recv(raw, &body, NN_MSG, 0);
    if (n < 0) break;
    uint32_t seq;
    if (nnrpc__env_get(body, (size_t)n, &seq) == 0) {
      raw_ack(raw, seq);
      size_t off = NNRPC_ENV_LEN;
      nnrpc__frame fr;
      while (nnrpc__frame_next(body, (size_t)n, &off, &fr) == 1) {
        if (fr.type != NNRPC_F_STATUS || fr.call_id < 1 || fr.call_id > N || code[fr.call_id] >= 0) continue;
        char msg[256];
        code[fr.call_id] = status_of(&fr, msg, sizeof msg);
        if (code[fr.call_id] == NNRPC_OK) ok++;
        if (code[fr.call_id] == NNRPC_RESOURCE_EXHAUSTED && refused++ == 0) snprintf(refusal, sizeof refusal, "%s", msg);
      }
    }
    nn_freemsg(body);
  }
  print_message("%d calls from a client that did not ack: %d served, %d refused (\"%s\")\n", N, ok, refused, refusal);
  assert_int_equal(ok + refused, N);
  assert_true(ok >= 10 && ok <= 11); /* max_concurrent_calls, and the one reply that left */
  assert_int_equal(atomic_load(&t->calls), ok);
  assert_non_null(strstr(refusal, "not yet acknowledged"));
  /* Reading, it is served again. */
  mb_start(&b);
  mb_call(&b, 1000, "/nnrpc_test.Echo/Echo", NNRPC_FF_HAS_MESSAGE, pb, pl);
  raw_send(raw, b.p, b.len);
  assert_int_equal(raw_status(raw, 1000, (int)slack(5000), NULL, 0), NNRPC_OK);
  nn_close(raw);
  th_server_stop(t);
}

/* A handler that gives up when its deadline passes (nnrpc_ctx_is_cancelled)
 * returns CANCELLED; the call's status is DEADLINE_EXCEEDED all the same. A
 * raw client, which has no timer of its own, sees what the server sends. */
static void test_handler_giving_up_at_its_deadline_ends_the_call_with_deadline_exceeded(void **st) {
  (void)st;
  th_server *t = th_server_start("tcp", NULL);
  int raw = raw_open(t->url, (int)slack(5000));
  nnrpc__hdr h;
  uint8_t meta[256];
  msgbuf b;
  NnrpcTest__EchoRequest req = NNRPC_TEST__ECHO_REQUEST__INIT;
  req.delay_ms = 5000; /* the handler polls nnrpc_ctx_is_cancelled meanwhile */
  uint8_t pb[32];
  size_t pl = nnrpc_test__echo_request__pack(&req, pb);
  const struct {
    const char *method;
    uint8_t flags;
    const void *payload;
    size_t len;
  } calls[] = {
      {"/nnrpc_test.Echo/Echo", NNRPC_FF_HAS_MESSAGE, pb, pl}, /* unary */
      {"/nnrpc_stream_test.Streamer/Sum", 0, NULL, 0},         /* a client stream the client never feeds */
  };
  for (size_t i = 0; i < sizeof calls / sizeof calls[0]; i++) {
    assert_int_equal(nnrpc__hdr_build(&h, calls[i].method, 100 * 1000, NULL, 0, NULL, 1u << 20), 0);
    size_t ml = protobuf_c_message_pack(&h.pb.base, meta);
    nnrpc__hdr_done(&h);
    mb_start(&b);
    mb_frame(&b, NNRPC_F_CALL, calls[i].flags, 300 + i, meta, ml, calls[i].payload, calls[i].len);
    int64_t t0 = th_now_ms();
    raw_send(raw, b.p, b.len);
    char msg[256] = "";
    int code = raw_status(raw, 300 + i, (int)slack(5000), msg, sizeof msg);
    print_message("%s with 100 ms: %s \"%s\" after %lld ms\n", calls[i].method, nnrpc_code_name(code), msg,
                  (long long)(th_now_ms() - t0));
    assert_int_equal(code, NNRPC_DEADLINE_EXCEEDED);
  }
  assert_int_equal(atomic_load(&t->cancelled), 1); /* Echo gave up */
  assert_int_equal(atomic_load(&t->streams_cancelled), 1);
  nn_close(raw);
  th_server_stop(t);
}

/* ================================================================ protobuf bombs */

/* A Node whose `kids` are n empty Nodes: 2 bytes each on the wire, a whole
 * message plus a pointer each once decoded. All kids share one empty Node,
 * so building it costs the sender only the pointer array. */
static NnrpcTest__Node empty_kid = NNRPC_TEST__NODE__INIT;

static NnrpcTest__Node bomb(size_t n) {
  NnrpcTest__Node root = NNRPC_TEST__NODE__INIT;
  root.kids = malloc(n * sizeof *root.kids);
  assert_non_null(root.kids);
  for (size_t i = 0; i < n; i++) root.kids[i] = &empty_kid;
  root.n_kids = n;
  return root;
}

static void test_request_of_2m_empty_kids_is_resource_exhausted_with_bounded_memory(void **st) {
  (void)st;
  /* ~4 MiB (under the default max_recv_msg) of 2-byte kids decode to
   * ~200 MiB with protobuf-c (each kid: a 64-byte message, an 8-byte pointer
   * and a 32-byte scan record): far past the default max_decode_bytes
   * (64 MiB). Under valgrind: 200 000 kids against 4 MiB. */
  bool small = th_slow();
  nnrpc_server_opts so = {.max_decode_bytes = small ? 4u << 20 : 0};
  th_server *t = th_server_start("tcp", &so);
  nnrpc_channel *ch = th_channel(t->url, NULL);
  size_t n = small ? 200000 : 2000000;
  NnrpcTest__Node root = bomb(n);
  size_t wire = nnrpc_test__node__get_packed_size(&root);
  assert_true(wire <= 4u << 20);
  bool hwm = rss_meaningful() && reset_hwm();
  long before = rss_kib(), peak = 0;
  char msg[256] = "";
  for (int i = 0; i < 5; i++) { /* repeated: nothing accumulates */
    th_sleep_ms(200); /* the server frees a call just after sending its status */
    long start = rss_kib();
    if (hwm) reset_hwm();
    NnrpcTest__Node *rep = NULL;
    nnrpc_call_opts o = {.timeout_ms = slack(30000)};
    nnrpc_status s = nnrpc_test__echo__nest__call(ch, &root, &rep, &o);
    snprintf(msg, sizeof msg, "%s", s.message);
    assert_int_equal(s.code, NNRPC_RESOURCE_EXHAUSTED);
    assert_null(rep);
    assert_non_null(strstr(msg, "max_decode_bytes"));
    if (hwm && hwm_kib() - start > peak) peak = hwm_kib() - start;
  }
  th_sleep_ms(200);
  long after = rss_kib();
  print_message("request of %zu empty kids (%zu bytes): RESOURCE_EXHAUSTED \"%s\"; peak %+ld KiB per bomb, "
                "RSS after 5 bombs %+ld KiB\n",
                n, wire, msg, hwm ? peak : -1L, after - before);
  /* Bounded by the budget (64 MiB) plus the message in flight on both
   * sides, not by what decoding the whole request would take (~200 MiB);
   * and given back afterwards, not kept by malloc for each pool thread that
   * decoded a bomb (before util.c mapped big arena chunks: +107 MiB after
   * 3 bombs). What stays is the 4 MB message buffers malloc keeps. */
  if (hwm) assert_true(peak < (64 + 16) * 1024);
  if (rss_meaningful()) assert_true(after - before < 24 * 1024);
  free(root.kids);
  /* The server is fine: a modest tree is served. */
  root = bomb(1000);
  NnrpcTest__Node *rep = NULL;
  nnrpc_call_opts o = {.timeout_ms = slack(5000)};
  assert_int_equal(nnrpc_test__echo__nest__call(ch, &root, &rep, &o).code, NNRPC_OK);
  assert_int_equal(rep->n_kids, 1000);
  nnrpc_test__node__free_unpacked(rep, NULL);
  free(root.kids);
  nnrpc_channel_close(ch);
  th_server_stop(t);
}

static void test_reply_amplified_past_the_clients_max_decode_bytes_is_resource_exhausted(void **st) {
  (void)st;
  th_server *t = th_server_start("tcp", NULL);
  nnrpc_channel_opts small = {.max_decode_bytes = 1u << 20};
  nnrpc_channel *ch = th_channel(t->url, &small), *big = th_channel(t->url, NULL);
  size_t n = 100000; /* 200 KB on the wire, ~10 MB decoded */
  NnrpcTest__Node root = bomb(n);
  nnrpc_call_opts o = {.timeout_ms = slack(10000)};
  NnrpcTest__Node *rep = NULL;
  nnrpc_status s = nnrpc_test__echo__nest__call(ch, &root, &rep, &o);
  assert_int_equal(s.code, NNRPC_RESOURCE_EXHAUSTED);
  assert_non_null(strstr(s.message, "max_decode_bytes"));
  assert_null(rep);
  /* The same reply within the default budget: the echo really is that big. */
  assert_int_equal(nnrpc_test__echo__nest__call(big, &root, &rep, &o).code, NNRPC_OK);
  assert_int_equal(rep->n_kids, n);
  nnrpc_test__node__free_unpacked(rep, NULL);
  /* The small channel still works. */
  root.n_kids = 10;
  assert_int_equal(nnrpc_test__echo__nest__call(ch, &root, &rep, &o).code, NNRPC_OK);
  assert_int_equal(rep->n_kids, 10);
  nnrpc_test__node__free_unpacked(rep, NULL);
  free(root.kids);
  nnrpc_channel_close(big);
  nnrpc_channel_close(ch);
  th_server_stop(t);
}

/* Hand-encoded requests whose protobuf lengths claim gigabytes, sent from a
 * raw socket (a real client cannot encode them). */
static void test_request_lengths_claiming_gigabytes_get_invalid_argument(void **st) {
  (void)st;
  th_server *t = th_server_start("tcp", NULL);
  int raw = raw_open(t->url, (int)slack(5000));
  const struct {
    const char *method, *what;
    const char *bytes;
    size_t len;
  } lies[] = {
      {"/nnrpc_test.Echo/Echo", "bytes field claiming 4 GiB", "\x0a\xff\xff\xff\xff\x0f" "abc", 9},
      {"/nnrpc_test.Echo/Echo", "bytes field claiming 2^63", "\x0a\xff\xff\xff\xff\xff\xff\xff\xff\x7f" "a", 11},
      {"/nnrpc_test.Echo/Echo", "length varint of 11 bytes", "\x0a\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 12},
      {"/nnrpc_test.Echo/Nest", "kid claiming 2 GiB", "\x22\x00\x22\x00\x22\x80\x80\x80\x80\x08\x00", 11},
      {"/nnrpc_test.Echo/Nest", "child whose kid claims 1 GiB", "\x0a\x07\x22\x80\x80\x80\x80\x04\x00", 9},
      {"/nnrpc_test.Echo/Nest", "string claiming 4 GiB", "\x12\xff\xff\xff\xff\x0f" "x", 7},
  };
  msgbuf b;
  for (size_t i = 0; i < sizeof lies / sizeof lies[0]; i++) {
    mb_start(&b);
    mb_call(&b, 100 + i, lies[i].method, NNRPC_FF_HAS_MESSAGE, lies[i].bytes, lies[i].len);
    raw_send(raw, b.p, b.len);
    char msg[256] = "";
    int code = raw_status(raw, 100 + i, (int)slack(5000), msg, sizeof msg);
    print_message("%s: %s \"%s\"\n", lies[i].what, nnrpc_code_name(code), msg);
    assert_int_equal(code, NNRPC_INVALID_ARGUMENT);
    assert_non_null(strstr(msg, "malformed"));
  }
  assert_int_equal(atomic_load(&t->calls), 0); /* no handler saw any of them */
  /* A client stream message claiming gigabytes ends the stream the same way. */
  mb_start(&b);
  mb_call(&b, 200, "/nnrpc_stream_test.Streamer/Sum", 0, NULL, 0);
  mb_frame(&b, NNRPC_F_MESSAGE, 0, 200, NULL, 0, "\x12\xff\xff\xff\xff\x0f", 6);
  raw_send(raw, b.p, b.len);
  char msg[256] = "";
  assert_int_equal(raw_status(raw, 200, (int)slack(5000), msg, sizeof msg), NNRPC_INVALID_ARGUMENT);
  assert_non_null(strstr(msg, "cannot be decoded"));
  int64_t until = th_now_ms() + slack(2000);
  while (atomic_load(&t->streams_ended) < 1 && th_now_ms() < until) th_sleep_ms(5);
  assert_int_equal(atomic_load(&t->streams_ended), 1);
  nnrpc_channel *ch = th_channel(t->url, NULL);
  assert_int_equal(echo_call(ch, 5, slack(5000)), NNRPC_OK);
  nnrpc_channel_close(ch);
  th_server_stop(t);
  nn_close(raw);
}

/* ---------------------------------------------------------------- a hostile server */

/* A fake server on a raw REP socket: it answers each CALL for Nest with an
 * OK STATUS whose reply bytes are chosen by the request's label. */
typedef struct fake {
  int sock;
  atomic_bool stop;
  uint8_t *deep; /* 10 000 nested Nodes */
  size_t deep_len;
  uint8_t *kids; /* 300 000 empty kids */
  size_t kids_len;
} fake;

/* `depth` nested Nodes (field 1), encoded from the inside out. */
static uint8_t *nested_nodes(size_t depth, size_t *len) {
  size_t cap = depth * 6 + 16, start = cap;
  uint8_t *buf = malloc(cap);
  assert_non_null(buf);
  for (size_t i = 1; i < depth; i++) {
    size_t inner = cap - start;
    uint8_t v[10];
    size_t n = 0;
    do {
      v[n] = (uint8_t)(inner & 0x7f);
      inner >>= 7;
      if (inner) v[n] |= 0x80;
      n++;
    } while (inner);
    start -= n;
    memcpy(buf + start, v, n);
    buf[--start] = 0x0a;
  }
  *len = cap - start;
  memmove(buf, buf + start, *len);
  return buf;
}

/* Answers every CALL frame of one client message, back along its backtrace. */
static void fake_answer(fake *fk, const uint8_t *body, size_t len, const uint8_t *bt, size_t bt_len,
                        uint32_t *seq) {
  size_t off = NNRPC_ENV_LEN;
  nnrpc__frame fr;
  uint32_t ack;
  if (nnrpc__env_get(body, len, &ack) || bt_len > 64) return;
  while (nnrpc__frame_next(body, len, &off, &fr) == 1) {
    if (fr.type != NNRPC_F_CALL) continue;
    NnrpcTest__Node *req = nnrpc_test__node__unpack(NULL, fr.payload_len, fr.payload);
    const char *label = req && req->label ? req->label : "";
    const uint8_t *payload = NULL;
    size_t pl = 0;
    uint32_t claimed = 0; /* a lying frame payload_len */
    if (strcmp(label, "gig") == 0) { /* a string field claiming 4 GiB */
      payload = (const uint8_t *)"\x12\xff\xff\xff\xff\x0f" "x";
      pl = 7;
    } else if (strcmp(label, "deep") == 0) {
      payload = fk->deep;
      pl = fk->deep_len;
    } else if (strcmp(label, "kids") == 0) {
      payload = fk->kids;
      pl = fk->kids_len;
    } else if (strcmp(label, "frame") == 0) {
      payload = (const uint8_t *)"\x18\x01";
      pl = 2;
      claimed = UINT32_MAX;
    }
    if (req) nnrpc_test__node__free_unpacked(req, NULL);
    nnrpc__hdr h;
    if (nnrpc__hdr_build(&h, NULL, 0, NULL, 0, NULL, 0)) continue;
    size_t ml = protobuf_c_message_get_packed_size(&h.pb.base);
    size_t total = NNRPC_ENV_LEN + NNRPC_FRAME_HDR_LEN + ml + pl;
    uint8_t *msg = nn_allocmsg(total, 0);
    if (!msg) {
      nnrpc__hdr_done(&h);
      continue;
    }
    if (++*seq == 0) *seq = 1;
    nnrpc__env_put(msg, *seq);
    nnrpc__frame_put(msg + NNRPC_ENV_LEN, NNRPC_F_STATUS, NNRPC_FF_HAS_MESSAGE, (uint16_t)ml,
                     claimed ? claimed : (uint32_t)pl, fr.call_id);
    protobuf_c_message_pack(&h.pb.base, msg + NNRPC_ENV_LEN + NNRPC_FRAME_HDR_LEN);
    nnrpc__hdr_done(&h);
    if (pl) memcpy(msg + NNRPC_ENV_LEN + NNRPC_FRAME_HDR_LEN + ml, payload, pl);
    uint8_t ctl[NN_CMSG_SPACE(sizeof(size_t) + 64)] __attribute__((aligned(8)));
    struct nn_cmsghdr *cm = (struct nn_cmsghdr *)(void *)ctl;
    cm->cmsg_len = NN_CMSG_LEN(sizeof(size_t) + bt_len);
    cm->cmsg_level = PROTO_SP;
    cm->cmsg_type = SP_HDR;
    memcpy(NN_CMSG_DATA(cm), &bt_len, sizeof bt_len);
    memcpy(NN_CMSG_DATA(cm) + sizeof bt_len, bt, bt_len);
    struct nn_iovec iov = {&msg, NN_MSG};
    struct nn_msghdr hdr = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl,
                            .msg_controllen = NN_CMSG_SPACE(sizeof(size_t) + bt_len)};
    if (nn_sendmsg(fk->sock, &hdr, 0) < 0) nn_freemsg(msg);
  }
}

static void *fake_main(void *arg) {
  fake *fk = arg;
  uint32_t seq = 0;
  int to = 50;
  nn_setsockopt(fk->sock, NN_SOL_SOCKET, NN_RCVTIMEO, &to, sizeof to);
  while (!atomic_load(&fk->stop)) {
    void *body = NULL, *ctl = NULL;
    struct nn_iovec iov = {&body, NN_MSG};
    struct nn_msghdr hdr = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = &ctl, .msg_controllen = NN_MSG};
    int n = nn_recvmsg(fk->sock, &hdr, 0);
    if (n < 0) continue;
    struct nn_cmsghdr *cm = NN_CMSG_FIRSTHDR(&hdr);
    while (cm && !(cm->cmsg_level == PROTO_SP && cm->cmsg_type == SP_HDR)) cm = NN_CMSG_NXTHDR(&hdr, cm);
    if (cm && cm->cmsg_len >= NN_CMSG_LEN(sizeof(size_t))) {
      size_t bt_len;
      memcpy(&bt_len, NN_CMSG_DATA(cm), sizeof bt_len);
      if (bt_len <= cm->cmsg_len - NN_CMSG_LEN(sizeof(size_t)))
        fake_answer(fk, body, (size_t)n, NN_CMSG_DATA(cm) + sizeof(size_t), bt_len, &seq);
    }
    nn_freemsg(body);
    if (ctl) nn_freemsg(ctl);
  }
  return NULL;
}

/* One Nest call with `label` to the fake server; its status. */
static nnrpc_status nest_label(nnrpc_channel *ch, const char *label, int64_t timeout_ms) {
  NnrpcTest__Node req = NNRPC_TEST__NODE__INIT;
  req.label = (char *)label;
  NnrpcTest__Node *rep = NULL;
  nnrpc_call_opts o = {.timeout_ms = timeout_ms};
  nnrpc_status s = nnrpc_test__echo__nest__call(ch, &req, &rep, &o);
  if (rep) nnrpc_test__node__free_unpacked(rep, NULL);
  return s;
}

/* Bombs from the server's side: the client ends each call with a clear
 * status, within its limits, and the channel keeps working. */
static void test_hostile_server_replies_get_clear_statuses_on_the_client(void **st) {
  (void)st;
  fake fk = {.sock = nn_socket(AF_SP_RAW, NN_REP)};
  assert_true(fk.sock >= 0);
  char url[128];
  int rc = -1;
  for (int i = 0; i < 20 && rc < 0; i++) rc = nn_bind(fk.sock, th_url("tcp", url, sizeof url));
  assert_true(rc >= 0);
  fk.deep = nested_nodes(10000, &fk.deep_len);
  size_t nk = 300000; /* 600 KB on the wire, ~30 MB decoded */
  fk.kids_len = nk * 2;
  fk.kids = malloc(fk.kids_len);
  assert_non_null(fk.kids);
  for (size_t i = 0; i < nk; i++) fk.kids[2 * i] = 0x22, fk.kids[2 * i + 1] = 0;
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, fake_main, &fk), 0);
  nnrpc_channel_opts co = {.max_decode_bytes = 4u << 20, .keepalive_ms = 5000};
  nnrpc_channel *ch = th_channel(url, &co);
  assert_int_equal(nest_label(ch, "", slack(5000)).code, NNRPC_OK); /* connected; a plain reply works */
  const struct {
    const char *label, *what;
    int code;
    const char *says;
  } cases[] = {
      {"gig", "reply string claiming 4 GiB", NNRPC_INTERNAL, "cannot decode"},
      {"deep", "reply nested 10 000 deep", NNRPC_RESOURCE_EXHAUSTED, "deeper"},
      {"kids", "reply of 300 000 empty kids (~30 MB decoded)", NNRPC_RESOURCE_EXHAUSTED, "max_decode_bytes"},
      {"frame", "STATUS frame claiming a 4 GiB payload (dropped)", NNRPC_DEADLINE_EXCEEDED, ""},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    int64_t timeout = strcmp(cases[i].label, "frame") == 0 ? 300 : slack(5000);
    nnrpc_status s = nest_label(ch, cases[i].label, timeout);
    print_message("%s: %s \"%s\"\n", cases[i].what, nnrpc_code_name(s.code), s.message);
    assert_int_equal(s.code, cases[i].code);
    assert_non_null(strstr(s.message, cases[i].says));
    assert_int_equal(nest_label(ch, "", slack(5000)).code, NNRPC_OK);
  }
  nnrpc_channel_close(ch);
  atomic_store(&fk.stop, true);
  pthread_join(th, NULL);
  nn_close(fk.sock);
  free(fk.deep);
  free(fk.kids);
}

/* ================================================================ main */

int main(int argc, char **argv) {
  if (argc == 3) return child_stream(argv[1], argv[2]);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_at_most_once_across_timeouts_cancels_retries_and_a_server_restart),
      cmocka_unit_test(test_clients_killed_mid_client_and_bidi_stream_are_cancelled_and_released),
      cmocka_unit_test(test_flood_of_100k_malformed_and_unroutable_messages_keeps_calls_working_and_memory_flat),
      cmocka_unit_test(test_flood_from_a_client_that_never_reads_keeps_server_memory_bounded),
      cmocka_unit_test(test_clients_that_vanish_with_answers_queued_are_forgotten),
      cmocka_unit_test(test_client_that_never_acks_is_served_at_most_max_concurrent_calls),
      cmocka_unit_test(test_handler_giving_up_at_its_deadline_ends_the_call_with_deadline_exceeded),
      cmocka_unit_test(test_request_of_2m_empty_kids_is_resource_exhausted_with_bounded_memory),
      cmocka_unit_test(test_reply_amplified_past_the_clients_max_decode_bytes_is_resource_exhausted),
      cmocka_unit_test(test_request_lengths_claiming_gigabytes_get_invalid_argument),
      cmocka_unit_test(test_hostile_server_replies_get_clear_statuses_on_the_client),
  };
  if (getenv("TEST_FILTER")) cmocka_set_test_filter(getenv("TEST_FILTER"));
  return cmocka_run_group_tests(tests, NULL, NULL);
}
