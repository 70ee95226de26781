/* Asynchronous calls: client callbacks and completion queues, server handlers
 * that finish later (NNRPC_PENDING), cancellation and deadlines of pending
 * calls, shutdown and close with calls pending. Real sockets (inproc, tcp). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "async_test.nnrpc.h"

/* ---------------------------------------------------------------- a deferring server */

typedef struct parked {
  struct parked *next;
  nnrpc_ctx *ctx;
  NnrpcAsyncTest__DelayReply *reply;
  int64_t due_ms;
} parked;

typedef struct tserver {
  nnrpc_server *srv;
  pthread_t timer;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  parked *list;     /* unordered; the timer scans it */
  int pending;      /* calls parked and not finished */
  int max_pending;
  int cancel_notices;
  bool stop;
  char url[64];
} tserver;

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* Cancel notice: unpark the call (if the timer has not taken it) and finish it. */
static void on_cancel(nnrpc_ctx *ctx, void *user) {
  tserver *t = user;
  bool mine = false;
  pthread_mutex_lock(&t->mu);
  t->cancel_notices++;
  for (parked **pp = &t->list; *pp; pp = &(*pp)->next)
    if ((*pp)->ctx == ctx) {
      *pp = (*pp)->next;
      t->pending--;
      mine = true;
      break;
    }
  pthread_mutex_unlock(&t->mu);
  if (mine) nnrpc_ctx_finish(ctx, NNRPC_CANCELLED);
}

static int delay(nnrpc_ctx *ctx, const NnrpcAsyncTest__DelayRequest *req, NnrpcAsyncTest__DelayReply *reply) {
  tserver *t = nnrpc_ctx_user_data(ctx);
  parked *p = nnrpc_ctx_alloc(ctx, sizeof *p);
  if (!p) return NNRPC_RESOURCE_EXHAUSTED;
  reply->tag = req->tag;
  *p = (parked){NULL, ctx, reply, req->never ? INT64_MAX : now_ms() + req->delay_ms};
  pthread_mutex_lock(&t->mu);
  p->next = t->list;
  t->list = p;
  if (++t->pending > t->max_pending) t->max_pending = t->pending;
  pthread_cond_signal(&t->cv);
  pthread_mutex_unlock(&t->mu);
  nnrpc_ctx_on_cancel(ctx, on_cancel, t); /* may run at once if already cancelled */
  return NNRPC_PENDING;
}

static void *timer_main(void *arg) {
  tserver *t = arg;
  pthread_mutex_lock(&t->mu);
  while (!t->stop) {
    int64_t now = now_ms();
    parked *due = NULL;
    for (parked **pp = &t->list; *pp;) {
      if ((*pp)->due_ms <= now) {
        parked *p = *pp;
        *pp = p->next;
        p->next = due;
        due = p;
        t->pending--;
      } else {
        pp = &(*pp)->next;
      }
    }
    pthread_mutex_unlock(&t->mu);
    while (due) {
      parked *next = due->next;
      nnrpc_ctx_finish(due->ctx, NNRPC_OK); /* `due` lived in the call's memory */
      due = next;
    }
    sleep_ms(1);
    pthread_mutex_lock(&t->mu);
  }
  pthread_mutex_unlock(&t->mu);
  return NULL;
}

static int url_seq;

static tserver *tserver_start(const char *scheme, int workers) {
  tserver *t = calloc(1, sizeof *t);
  assert_non_null(t);
  pthread_mutex_init(&t->mu, NULL);
  pthread_cond_init(&t->cv, NULL);
  if (strcmp(scheme, "tcp") == 0)
    snprintf(t->url, sizeof t->url, "tcp://127.0.0.1:%d", 30000 + (getpid() * 7 + url_seq++) % 20000);
  else
    snprintf(t->url, sizeof t->url, "inproc://async-%d-%d", getpid(), url_seq++);
  nnrpc_server_opts o = {.workers = (uint32_t)workers, .max_concurrent_calls = 20000};
  NnrpcAsyncTest__Timer_Handlers h = {.delay = delay};
  assert_int_equal(nnrpc_server_open(&t->srv, &o), NNRPC_OK);
  assert_int_equal(nnrpc_async_test__timer__handlers__register(t->srv, &h, t), NNRPC_OK);
  assert_int_equal(nnrpc_server_listen(t->srv, t->url), NNRPC_OK);
  assert_int_equal(nnrpc_server_start(t->srv), NNRPC_OK);
  pthread_create(&t->timer, NULL, timer_main, t);
  return t;
}

static void tserver_stop(tserver *t) {
  nnrpc_server_shutdown(t->srv, 0); /* cancels pending calls: on_cancel finishes them */
  pthread_mutex_lock(&t->mu);
  t->stop = true;
  pthread_mutex_unlock(&t->mu);
  pthread_join(t->timer, NULL);
  nnrpc_server_close(t->srv);
  pthread_mutex_destroy(&t->mu);
  pthread_cond_destroy(&t->cv);
  free(t);
}

static nnrpc_channel *open_channel(const char *url) {
  nnrpc_channel *ch;
  nnrpc_channel_opts o = {.keepalive_ms = 200, .keepalive_timeout_ms = 5000};
  assert_int_equal(nnrpc_channel_open(&ch, url, &o), NNRPC_OK);
  return ch;
}

static int start(nnrpc_channel *ch, uint32_t delay_ms, uint64_t tag, bool never, int64_t timeout_ms,
                 const nnrpc_completion *how, nnrpc_call **out) {
  NnrpcAsyncTest__DelayRequest req = NNRPC_ASYNC_TEST__DELAY_REQUEST__INIT;
  req.delay_ms = delay_ms;
  req.tag = tag;
  req.never = never;
  nnrpc_call_opts o = {.timeout_ms = timeout_ms};
  return nnrpc_async_test__timer__delay__start(ch, &req, &o, how, out);
}

/* Finishes a call, checks its code (and its tag when OK). */
static void finish_expect(nnrpc_call *c, int code, uint64_t tag) {
  NnrpcAsyncTest__DelayReply *r = NULL;
  nnrpc_status st = nnrpc_async_test__timer__delay__finish(c, &r, NULL);
  if (st.code != code) fail_msg("expected %s, got %s: %s", nnrpc_code_name(code), nnrpc_code_name(st.code), st.message);
  if (code == NNRPC_OK) {
    assert_non_null(r);
    assert_int_equal(r->tag, tag);
    nnrpc_async_test__delay_reply__free_unpacked(r, NULL);
  } else {
    assert_null(r);
  }
}

static nnrpc_call *next_or_fail(nnrpc_cq *cq, int64_t ms) {
  nnrpc_call *c = nnrpc_cq_next(cq, ms);
  if (!c) fail_msg("no completion within %lld ms", (long long)ms);
  return c;
}

/* ---------------------------------------------------------------- tests */

typedef struct cb_state {
  pthread_mutex_t mu;
  int completions;
  int ok;
  uint64_t tag_sum;
} cb_state;

static void count_cb(nnrpc_call *c, void *user) {
  cb_state *s = user;
  NnrpcAsyncTest__DelayReply *r = NULL;
  nnrpc_status st = nnrpc_async_test__timer__delay__finish(c, &r, NULL);
  pthread_mutex_lock(&s->mu);
  s->completions++;
  if (st.code == NNRPC_OK) {
    s->ok++;
    s->tag_sum += r->tag;
  }
  pthread_mutex_unlock(&s->mu);
  if (r) nnrpc_async_test__delay_reply__free_unpacked(r, NULL);
}

static int cb_wait(cb_state *s, int want, int ms) {
  for (int i = 0; i < ms; i++) {
    pthread_mutex_lock(&s->mu);
    int n = s->completions;
    pthread_mutex_unlock(&s->mu);
    if (n >= want) return n;
    sleep_ms(1);
  }
  return s->completions;
}

static void callback_completion(const char *scheme) {
  tserver *t = tserver_start(scheme, 2);
  nnrpc_channel *ch = open_channel(t->url);
  cb_state s = {.mu = PTHREAD_MUTEX_INITIALIZER};
  nnrpc_completion how = {.done = count_cb, .user_data = &s};
  uint64_t want = 0;
  for (uint64_t i = 1; i <= 200; i++) {
    assert_int_equal(start(ch, (uint32_t)(i % 5), i, false, 10000, &how, NULL), NNRPC_OK);
    want += i;
  }
  assert_int_equal(cb_wait(&s, 200, 10000), 200);
  assert_int_equal(s.ok, 200);
  assert_int_equal(s.tag_sum, want);
  nnrpc_channel_close(ch);
  tserver_stop(t);
}
static void test_callback_runs_once_per_call_inproc(void **st) { (void)st; callback_completion("inproc"); }
static void test_callback_runs_once_per_call_tcp(void **st) { (void)st; callback_completion("tcp"); }

static void test_cq_fd_readable_exactly_while_completions_queued(void **st) {
  (void)st;
  tserver *t = tserver_start("inproc", 2);
  nnrpc_channel *ch = open_channel(t->url);
  nnrpc_cq *cq;
  assert_int_equal(nnrpc_cq_open(&cq), NNRPC_OK);
  struct pollfd p = {nnrpc_cq_fd(cq), POLLIN, 0};
  assert_int_equal(poll(&p, 1, 0), 0); /* empty: not readable */
  nnrpc_completion how = {.cq = cq};
  for (uint64_t i = 0; i < 10; i++) assert_int_equal(start(ch, 0, i, false, 10000, &how, NULL), NNRPC_OK);
  for (int i = 0; i < 5000 && nnrpc_cq_size(cq) < 10; i++) sleep_ms(1);
  assert_int_equal(nnrpc_cq_size(cq), 10);
  for (int left = 10; left > 0; left--) {
    assert_int_equal(poll(&p, 1, 0), 1);
    assert_true(p.revents & POLLIN);
    nnrpc_call *c = next_or_fail(cq, 0);
    NnrpcAsyncTest__DelayReply *r = NULL;
    assert_int_equal(nnrpc_async_test__timer__delay__finish(c, &r, NULL).code, NNRPC_OK);
    assert_true(r->tag < 10);
    nnrpc_async_test__delay_reply__free_unpacked(r, NULL);
    assert_int_equal(nnrpc_cq_size(cq), (size_t)left - 1);
  }
  assert_int_equal(poll(&p, 1, 0), 0); /* drained: not readable again */
  assert_null(nnrpc_cq_next(cq, 0));
  nnrpc_cq_close(cq);
  nnrpc_channel_close(ch);
  tserver_stop(t);
}

static void test_cancel_before_server_answers_gives_cancelled_and_notifies_server(void **st) {
  (void)st;
  tserver *t = tserver_start("tcp", 2);
  nnrpc_channel *ch = open_channel(t->url);
  nnrpc_cq *cq;
  assert_int_equal(nnrpc_cq_open(&cq), NNRPC_OK);
  nnrpc_completion how = {.cq = cq};
  nnrpc_call *c;
  assert_int_equal(start(ch, 0, 7, true, 20000, &how, &c), NNRPC_OK);
  for (int i = 0; i < 5000; i++) { /* wait until the server holds it */
    pthread_mutex_lock(&t->mu);
    int n = t->pending;
    pthread_mutex_unlock(&t->mu);
    if (n == 1) break;
    sleep_ms(1);
  }
  int64_t t0 = now_ms();
  nnrpc_call_cancel(c);
  finish_expect(next_or_fail(cq, 2000), NNRPC_CANCELLED, 0);
  assert_true(now_ms() - t0 < 1000);
  for (int i = 0; i < 5000; i++) { /* the server hears of it and frees the call */
    pthread_mutex_lock(&t->mu);
    int n = t->cancel_notices, p = t->pending;
    pthread_mutex_unlock(&t->mu);
    if (n == 1 && p == 0) break;
    sleep_ms(1);
  }
  assert_int_equal(t->cancel_notices, 1);
  assert_int_equal(t->pending, 0);
  nnrpc_cq_close(cq);
  nnrpc_channel_close(ch);
  tserver_stop(t);
}

static void test_cancel_after_completion_keeps_the_reply(void **st) {
  (void)st;
  tserver *t = tserver_start("inproc", 2);
  nnrpc_channel *ch = open_channel(t->url);
  nnrpc_cq *cq;
  assert_int_equal(nnrpc_cq_open(&cq), NNRPC_OK);
  nnrpc_completion how = {.cq = cq};
  nnrpc_call *c;
  assert_int_equal(start(ch, 0, 42, false, 10000, &how, &c), NNRPC_OK);
  nnrpc_call *done = next_or_fail(cq, 5000);
  assert_ptr_equal(done, c);
  assert_true(nnrpc_call_is_done(c));
  nnrpc_call_cancel(c); /* too late: a no-op */
  finish_expect(c, NNRPC_OK, 42);
  assert_null(nnrpc_cq_next(cq, 50)); /* completed exactly once */
  nnrpc_cq_close(cq);
  nnrpc_channel_close(ch);
  tserver_stop(t);
}

static void test_cancel_while_waiting_for_a_connection_never_sends(void **st) {
  (void)st;
  nnrpc_channel *ch = open_channel("tcp://127.0.0.1:1"); /* nobody listens */
  nnrpc_cq *cq;
  assert_int_equal(nnrpc_cq_open(&cq), NNRPC_OK);
  nnrpc_completion how = {.cq = cq};
  nnrpc_call *c[20];
  for (int i = 0; i < 20; i++) assert_int_equal(start(ch, 0, (uint64_t)i, false, 20000, &how, &c[i]), NNRPC_OK);
  for (int i = 0; i < 20; i++) nnrpc_call_cancel(c[i]);
  for (int i = 0; i < 20; i++) finish_expect(next_or_fail(cq, 2000), NNRPC_CANCELLED, 0);
  nnrpc_cq_close(cq);
  nnrpc_channel_close(ch);
}

static void test_deadline_of_pending_async_call_fires_on_time(void **st) {
  (void)st;
  tserver *t = tserver_start("tcp", 2);
  nnrpc_channel *ch = open_channel(t->url);
  nnrpc_cq *cq;
  assert_int_equal(nnrpc_cq_open(&cq), NNRPC_OK);
  nnrpc_completion how = {.cq = cq};
  int64_t t0 = now_ms();
  for (int i = 0; i < 50; i++) assert_int_equal(start(ch, 0, (uint64_t)i, true, 300, &how, NULL), NNRPC_OK);
  for (int i = 0; i < 50; i++) finish_expect(next_or_fail(cq, 5000), NNRPC_DEADLINE_EXCEEDED, 0);
  int64_t took = now_ms() - t0;
  assert_true(took >= 290);
  assert_true(took < 3000); /* a hang check, not a timing assertion */
  for (int i = 0; i < 5000; i++) { /* the server's deadline fires too: every call freed */
    pthread_mutex_lock(&t->mu);
    int p = t->pending;
    pthread_mutex_unlock(&t->mu);
    if (p == 0) break;
    sleep_ms(1);
  }
  assert_int_equal(t->pending, 0);
  nnrpc_cq_close(cq);
  nnrpc_channel_close(ch);
  tserver_stop(t);
}

static void test_no_server_async_call_gets_deadline_exceeded(void **st) {
  (void)st;
  nnrpc_channel *ch = open_channel("inproc://nobody-binds-this");
  cb_state s = {.mu = PTHREAD_MUTEX_INITIALIZER};
  nnrpc_completion how = {.done = count_cb, .user_data = &s};
  for (int i = 0; i < 10; i++) assert_int_equal(start(ch, 0, 1, false, 200, &how, NULL), NNRPC_OK);
  assert_int_equal(cb_wait(&s, 10, 5000), 10);
  assert_int_equal(s.ok, 0);
  nnrpc_channel_close(ch);
}

static void test_ten_thousand_calls_pending_on_a_two_worker_server(void **st) {
  (void)st;
  int n = getenv("NNRPC_TEST_SLOW") ? 1000 : 10000;
  tserver *t = tserver_start("tcp", 2);
  nnrpc_channel *ch = open_channel(t->url);
  nnrpc_cq *cq;
  assert_int_equal(nnrpc_cq_open(&cq), NNRPC_OK);
  nnrpc_completion how = {.cq = cq};
  /* Parked far in the future, then released all at once by the test. */
  for (int i = 0; i < n; i++) assert_int_equal(start(ch, 0, (uint64_t)i, true, 60000, &how, NULL), NNRPC_OK);
  for (int i = 0; i < 20000; i++) {
    pthread_mutex_lock(&t->mu);
    int p = t->pending;
    pthread_mutex_unlock(&t->mu);
    if (p == n) break;
    sleep_ms(1);
  }
  assert_int_equal(t->pending, n);
  assert_int_equal(nnrpc_cq_size(cq), 0);
  pthread_mutex_lock(&t->mu);
  for (parked *p = t->list; p; p = p->next) p->due_ms = 0;
  pthread_mutex_unlock(&t->mu);
  uint64_t sum = 0;
  for (int i = 0; i < n; i++) {
    NnrpcAsyncTest__DelayReply *r = NULL;
    nnrpc_status s = nnrpc_async_test__timer__delay__finish(next_or_fail(cq, 20000), &r, NULL);
    assert_int_equal(s.code, NNRPC_OK);
    sum += r->tag;
    nnrpc_async_test__delay_reply__free_unpacked(r, NULL);
  }
  assert_int_equal(sum, (uint64_t)n * (uint64_t)(n - 1) / 2);
  nnrpc_cq_close(cq);
  nnrpc_channel_close(ch);
  tserver_stop(t);
}

static void test_one_thread_keeps_a_thousand_calls_in_flight(void **st) {
  (void)st;
  int total = getenv("NNRPC_TEST_SLOW") ? 2000 : 20000;
  tserver *t = tserver_start("tcp", 2);
  nnrpc_channel *ch = open_channel(t->url);
  nnrpc_cq *cq;
  assert_int_equal(nnrpc_cq_open(&cq), NNRPC_OK);
  nnrpc_completion how = {.cq = cq};
  int started = 0, done = 0, peak = 0;
  while (done < total) {
    while (started < total && started - done < 1000)
      assert_int_equal(start(ch, 20, (uint64_t)started++, false, 60000, &how, NULL), NNRPC_OK);
    if (started - done > peak) peak = started - done;
    struct pollfd p = {nnrpc_cq_fd(cq), POLLIN, 0};
    assert_int_equal(poll(&p, 1, 10000), 1);
    nnrpc_call *c;
    while ((c = nnrpc_cq_next(cq, 0))) {
      assert_int_equal(nnrpc_unary_finish(c, NULL, NULL).code, NNRPC_OK);
      done++;
    }
  }
  assert_int_equal(peak, 1000);
  assert_true(t->max_pending >= 10); /* the server held many at once (each for 20 ms) */
  nnrpc_cq_close(cq);
  nnrpc_channel_close(ch);
  tserver_stop(t);
}

/* Per-call completion counters prove "exactly once". */
static int completions_per_call[300];
static void tally_cb(nnrpc_call *c, void *user) {
  (void)user;
  NnrpcAsyncTest__DelayReply *r = NULL;
  uintptr_t i = (uintptr_t)nnrpc_call_user_data(c);
  nnrpc_status s = nnrpc_async_test__timer__delay__finish(c, &r, NULL);
  __atomic_add_fetch(&completions_per_call[i], 1, __ATOMIC_SEQ_CST);
  assert_true(s.code == NNRPC_CANCELLED || s.code == NNRPC_UNAVAILABLE || s.code == NNRPC_OK);
  if (r) nnrpc_async_test__delay_reply__free_unpacked(r, NULL);
}

static void test_server_shutdown_with_async_calls_pending_completes_each_once(void **st) {
  (void)st;
  memset(completions_per_call, 0, sizeof completions_per_call);
  tserver *t = tserver_start("tcp", 2);
  nnrpc_channel *ch = open_channel(t->url);
  for (uintptr_t i = 0; i < 300; i++) {
    nnrpc_completion how = {.done = tally_cb, .user_data = (void *)i};
    assert_int_equal(start(ch, 0, i, true, 20000, &how, NULL), NNRPC_OK);
  }
  for (int i = 0; i < 10000; i++) {
    pthread_mutex_lock(&t->mu);
    int p = t->pending;
    pthread_mutex_unlock(&t->mu);
    if (p == 300) break;
    sleep_ms(1);
  }
  tserver_stop(t); /* cancels every pending call; each gets a CANCELLED reply */
  for (int i = 0; i < 300; i++)
    for (int w = 0; w < 10000 && !__atomic_load_n(&completions_per_call[i], __ATOMIC_SEQ_CST); w++) sleep_ms(1);
  nnrpc_channel_close(ch);
  for (int i = 0; i < 300; i++) assert_int_equal(completions_per_call[i], 1);
}

static void test_channel_close_with_async_calls_pending_completes_each_once(void **st) {
  (void)st;
  memset(completions_per_call, 0, sizeof completions_per_call);
  tserver *t = tserver_start("inproc", 2);
  nnrpc_channel *ch = open_channel(t->url);
  for (uintptr_t i = 0; i < 300; i++) {
    nnrpc_completion how = {.done = tally_cb, .user_data = (void *)i};
    assert_int_equal(start(ch, 0, i, true, 20000, &how, NULL), NNRPC_OK);
  }
  nnrpc_channel_close(ch); /* every callback has run when this returns */
  for (int i = 0; i < 300; i++) assert_int_equal(completions_per_call[i], 1);
  tserver_stop(t);
}

static void test_start_rejects_bad_arguments(void **st) {
  (void)st;
  nnrpc_channel *ch = open_channel("inproc://bad-args");
  NnrpcAsyncTest__DelayRequest req = NNRPC_ASYNC_TEST__DELAY_REQUEST__INIT;
  nnrpc_cq *cq;
  assert_int_equal(nnrpc_cq_open(&cq), NNRPC_OK);
  nnrpc_completion neither = {0}, both = {.done = count_cb, .cq = cq};
  assert_int_equal(nnrpc_async_test__timer__delay__start(ch, &req, NULL, &neither, NULL), NNRPC_INVALID_ARGUMENT);
  assert_int_equal(nnrpc_async_test__timer__delay__start(ch, &req, NULL, &both, NULL), NNRPC_INVALID_ARGUMENT);
  assert_int_equal(nnrpc_async_test__timer__delay__start(ch, &req, NULL, NULL, NULL), NNRPC_INVALID_ARGUMENT);
  nnrpc_cq_close(cq);
  nnrpc_channel_close(ch);
}

static void test_finish_before_completion_is_refused(void **st) {
  (void)st;
  tserver *t = tserver_start("inproc", 2);
  nnrpc_channel *ch = open_channel(t->url);
  nnrpc_cq *cq;
  assert_int_equal(nnrpc_cq_open(&cq), NNRPC_OK);
  nnrpc_completion how = {.cq = cq};
  nnrpc_call *c;
  assert_int_equal(start(ch, 0, 1, true, 20000, &how, &c), NNRPC_OK);
  assert_false(nnrpc_call_is_done(c));
  assert_int_equal(nnrpc_unary_finish(c, NULL, NULL).code, NNRPC_FAILED_PRECONDITION);
  nnrpc_call_cancel(c);
  finish_expect(next_or_fail(cq, 2000), NNRPC_CANCELLED, 0);
  nnrpc_cq_close(cq);
  nnrpc_channel_close(ch);
  tserver_stop(t);
}

/* ------------------------------------------------ a blocking caller receiving for the channel */
/* A blocking call started alone on an idle channel receives its own reply
 * (no hand-off from the receive thread). While it waits, everything else on
 * the channel goes through it: these pin down that nothing is lost or late. */

typedef struct blocker {
  nnrpc_channel *ch;
  uint32_t delay_ms;
  bool never;
  int64_t timeout_ms;
  int code;
  uint64_t tag;
  int64_t took_ms;
  pthread_t thr;
} blocker;

static void *blocker_main(void *arg) {
  blocker *b = arg;
  NnrpcAsyncTest__DelayRequest req = NNRPC_ASYNC_TEST__DELAY_REQUEST__INIT;
  req.delay_ms = b->delay_ms;
  req.never = b->never;
  req.tag = 99;
  NnrpcAsyncTest__DelayReply *r = NULL;
  nnrpc_call_opts o = {.timeout_ms = b->timeout_ms};
  int64_t t0 = now_ms();
  nnrpc_status st = nnrpc_async_test__timer__delay__call(b->ch, &req, &r, &o);
  b->took_ms = now_ms() - t0;
  b->code = st.code;
  if (r) {
    b->tag = r->tag;
    nnrpc_async_test__delay_reply__free_unpacked(r, NULL);
  }
  return NULL;
}

/* Starts a lone blocking call and waits until the server holds it. */
static void blocker_start(blocker *b, tserver *t) {
  pthread_create(&b->thr, NULL, blocker_main, b);
  for (int i = 0; i < 5000; i++) {
    pthread_mutex_lock(&t->mu);
    int n = t->pending;
    pthread_mutex_unlock(&t->mu);
    if (n == 1) return;
    sleep_ms(1);
  }
  fail_msg("the blocking call never reached the server");
}

static void test_async_calls_complete_while_a_blocking_caller_receives(void **st) {
  (void)st;
  tserver *t = tserver_start("tcp", 2);
  nnrpc_channel *ch = open_channel(t->url);
  blocker b = {.ch = ch, .delay_ms = 1500, .timeout_ms = 10000};
  blocker_start(&b, t);
  nnrpc_cq *cq;
  assert_int_equal(nnrpc_cq_open(&cq), NNRPC_OK);
  nnrpc_completion how = {.cq = cq};
  int64_t t0 = now_ms();
  for (uint64_t i = 0; i < 100; i++) assert_int_equal(start(ch, 0, i, false, 10000, &how, NULL), NNRPC_OK);
  for (int i = 0; i < 100; i++) {
    nnrpc_call *c = next_or_fail(cq, 5000);
    NnrpcAsyncTest__DelayReply *r = NULL;
    assert_int_equal(nnrpc_async_test__timer__delay__finish(c, &r, NULL).code, NNRPC_OK);
    nnrpc_async_test__delay_reply__free_unpacked(r, NULL);
  }
  assert_true(now_ms() - t0 < 1000); /* not held back until the blocking call ends */
  pthread_join(b.thr, NULL);
  assert_int_equal(b.code, NNRPC_OK);
  assert_int_equal(b.tag, 99);
  nnrpc_cq_close(cq);
  nnrpc_channel_close(ch);
  tserver_stop(t);
}

typedef struct quick_caller {
  nnrpc_channel *ch;
  int ok;
  int64_t took_ms;
} quick_caller;

static void *quick_main(void *arg) {
  quick_caller *q = arg;
  int64_t t0 = now_ms();
  for (uint64_t i = 0; i < 200; i++) {
    NnrpcAsyncTest__DelayRequest req = NNRPC_ASYNC_TEST__DELAY_REQUEST__INIT;
    req.tag = i;
    NnrpcAsyncTest__DelayReply *r = NULL;
    nnrpc_call_opts o = {.timeout_ms = 5000};
    if (nnrpc_async_test__timer__delay__call(q->ch, &req, &r, &o).code == NNRPC_OK && r->tag == i) q->ok++;
    if (r) nnrpc_async_test__delay_reply__free_unpacked(r, NULL);
  }
  q->took_ms = now_ms() - t0;
  return NULL;
}

static void test_blocking_calls_of_other_threads_complete_while_one_caller_receives(void **st) {
  (void)st;
  tserver *t = tserver_start("tcp", 2);
  nnrpc_channel *ch = open_channel(t->url);
  blocker b = {.ch = ch, .delay_ms = 2000, .timeout_ms = 10000};
  blocker_start(&b, t);
  quick_caller q[3] = {{ch, 0, 0}, {ch, 0, 0}, {ch, 0, 0}};
  pthread_t thr[3];
  for (int i = 0; i < 3; i++) pthread_create(&thr[i], NULL, quick_main, &q[i]);
  for (int i = 0; i < 3; i++) pthread_join(thr[i], NULL);
  for (int i = 0; i < 3; i++) {
    assert_int_equal(q[i].ok, 200);
    assert_true(q[i].took_ms < 1900); /* done before the receiving caller's reply came */
  }
  pthread_join(b.thr, NULL);
  assert_int_equal(b.code, NNRPC_OK);
  /* and once it has gone, the receive thread serves the next calls */
  quick_caller after = {ch, 0, 0};
  quick_main(&after);
  assert_int_equal(after.ok, 200);
  nnrpc_channel_close(ch);
  tserver_stop(t);
}

static void test_calls_in_flight_when_the_receiving_caller_leaves_still_complete(void **st) {
  (void)st;
  tserver *t = tserver_start("tcp", 2);
  nnrpc_channel *ch = open_channel(t->url);
  blocker b = {.ch = ch, .delay_ms = 300, .timeout_ms = 10000};
  blocker_start(&b, t);
  nnrpc_cq *cq;
  assert_int_equal(nnrpc_cq_open(&cq), NNRPC_OK);
  nnrpc_completion how = {.cq = cq};
  for (int i = 0; i < 50; i++) assert_int_equal(start(ch, 800, 7, false, 10000, &how, NULL), NNRPC_OK);
  pthread_join(b.thr, NULL); /* it leaves with the 50 still in flight */
  assert_int_equal(b.code, NNRPC_OK);
  for (int i = 0; i < 50; i++) finish_expect(next_or_fail(cq, 5000), NNRPC_OK, 7);
  nnrpc_cq_close(cq);
  nnrpc_channel_close(ch);
  tserver_stop(t);
}

static void test_channel_close_wakes_a_receiving_blocking_caller(void **st) {
  (void)st;
  tserver *t = tserver_start("inproc", 2);
  nnrpc_channel *ch = open_channel(t->url);
  blocker b = {.ch = ch, .never = true, .timeout_ms = 20000};
  blocker_start(&b, t);
  nnrpc_channel_close(ch); /* returns once the blocked caller has left */
  pthread_join(b.thr, NULL);
  assert_int_equal(b.code, NNRPC_CANCELLED);
  assert_true(b.took_ms < 5000);
  tserver_stop(t);
}

static void test_receiving_blocking_caller_meets_its_deadline_and_cancels_on_the_server(void **st) {
  (void)st;
  tserver *t = tserver_start("tcp", 2);
  nnrpc_channel *ch = open_channel(t->url);
  blocker b = {.ch = ch, .never = true, .timeout_ms = 300};
  blocker_main(&b);
  assert_int_equal(b.code, NNRPC_DEADLINE_EXCEEDED);
  assert_true(b.took_ms >= 290 && b.took_ms < 1500);
  for (int i = 0; i < 5000; i++) { /* the server hears of it */
    pthread_mutex_lock(&t->mu);
    int n = t->cancel_notices;
    pthread_mutex_unlock(&t->mu);
    if (n == 1) break;
    sleep_ms(1);
  }
  assert_int_equal(t->cancel_notices, 1);
  /* a late reply to a call given up on does not disturb the next ones */
  blocker late = {.ch = ch, .delay_ms = 200, .timeout_ms = 100};
  blocker_main(&late);
  assert_int_equal(late.code, NNRPC_DEADLINE_EXCEEDED);
  sleep_ms(300); /* the server's answer arrives at an idle channel */
  for (int i = 0; i < 50; i++) {
    blocker ok = {.ch = ch, .timeout_ms = 5000};
    blocker_main(&ok);
    assert_int_equal(ok.code, NNRPC_OK);
    assert_int_equal(ok.tag, 99);
  }
  nnrpc_channel_close(ch);
  tserver_stop(t);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_callback_runs_once_per_call_inproc),
      cmocka_unit_test(test_callback_runs_once_per_call_tcp),
      cmocka_unit_test(test_cq_fd_readable_exactly_while_completions_queued),
      cmocka_unit_test(test_cancel_before_server_answers_gives_cancelled_and_notifies_server),
      cmocka_unit_test(test_cancel_after_completion_keeps_the_reply),
      cmocka_unit_test(test_cancel_while_waiting_for_a_connection_never_sends),
      cmocka_unit_test(test_deadline_of_pending_async_call_fires_on_time),
      cmocka_unit_test(test_no_server_async_call_gets_deadline_exceeded),
      cmocka_unit_test(test_ten_thousand_calls_pending_on_a_two_worker_server),
      cmocka_unit_test(test_one_thread_keeps_a_thousand_calls_in_flight),
      cmocka_unit_test(test_server_shutdown_with_async_calls_pending_completes_each_once),
      cmocka_unit_test(test_channel_close_with_async_calls_pending_completes_each_once),
      cmocka_unit_test(test_start_rejects_bad_arguments),
      cmocka_unit_test(test_finish_before_completion_is_refused),
      cmocka_unit_test(test_async_calls_complete_while_a_blocking_caller_receives),
      cmocka_unit_test(test_blocking_calls_of_other_threads_complete_while_one_caller_receives),
      cmocka_unit_test(test_calls_in_flight_when_the_receiving_caller_leaves_still_complete),
      cmocka_unit_test(test_channel_close_wakes_a_receiving_blocking_caller),
      cmocka_unit_test(test_receiving_blocking_caller_meets_its_deadline_and_cancels_on_the_server),
  };
  return cmocka_run_group_tests_name("async", tests, NULL, NULL);
}
