/* Streaming calls of all three kinds over real sockets (inproc, tcp): empty,
 * one and many messages in order, half-close, errors from the handler,
 * cancel and deadline mid-stream, a server killed mid-stream, many streams
 * with unary calls interleaved, and the flow-control memory bound. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers/harness.h"

#define TIMEOUT_MS 30000
typedef NnrpcStreamTest__Num Num;

static nnrpc_call_opts opts_ms(int64_t ms) { return (nnrpc_call_opts){.timeout_ms = ms}; }

static int many(void) { return th_slow() ? 5000 : 100000; }

/* ---------------------------------------------------------------- client streaming */

static void sum_n(const char *scheme, int n) {
  th_server *t = th_server_start(scheme, NULL);
  nnrpc_channel *ch = th_channel(t->url, NULL);
  nnrpc_call_opts o = opts_ms(TIMEOUT_MS);
  nnrpc_stream *st = NULL;
  nnrpc_status s = nnrpc_stream_test__streamer__sum__open(ch, &o, &st);
  assert_int_equal(s.code, NNRPC_OK);
  for (int i = 0; i < n; i++) {
    Num m = NNRPC_STREAM_TEST__NUM__INIT;
    m.value = i;
    assert_int_equal(nnrpc_stream_test__streamer__sum__write(st, &m), NNRPC_OK);
  }
  NnrpcStreamTest__Total *total = NULL;
  s = nnrpc_stream_test__streamer__sum__close_and_finish(st, &total, NULL);
  assert_int_equal(s.code, NNRPC_OK);
  assert_non_null(total);
  assert_int_equal(total->count, (uint64_t)n);
  assert_int_equal(total->sum, (int64_t)n * (n - 1) / 2);
  nnrpc_stream_test__total__free_unpacked(total, NULL);
  nnrpc_channel_close(ch);
  th_server_stop(t);
}
static void test_client_stream_empty_inproc(void **st) { (void)st; sum_n("inproc", 0); }
static void test_client_stream_one_message_inproc(void **st) { (void)st; sum_n("inproc", 1); }
static void test_client_stream_100k_messages_inproc(void **st) { (void)st; sum_n("inproc", many()); }
static void test_client_stream_empty_tcp(void **st) { (void)st; sum_n("tcp", 0); }
static void test_client_stream_one_message_tcp(void **st) { (void)st; sum_n("tcp", 1); }
static void test_client_stream_100k_messages_tcp(void **st) { (void)st; sum_n("tcp", many()); }

/* ---------------------------------------------------------------- server streaming */

static void range_n(const char *scheme, int n, uint32_t payload) {
  th_server *t = th_server_start(scheme, NULL);
  nnrpc_channel *ch = th_channel(t->url, NULL);
  nnrpc_call_opts o = opts_ms(TIMEOUT_MS);
  NnrpcStreamTest__RangeRequest req = NNRPC_STREAM_TEST__RANGE_REQUEST__INIT;
  req.count = (uint64_t)n;
  req.start = 7;
  req.payload_size = payload;
  nnrpc_stream *st = NULL;
  assert_int_equal(nnrpc_stream_test__streamer__range__open(ch, &req, &o, &st).code, NNRPC_OK);
  Num *m;
  int64_t want = 7;
  while (nnrpc_stream_test__streamer__range__read(st, &m)) {
    assert_int_equal(m->value, want); /* in order, none lost */
    assert_int_equal(m->payload.len, payload);
    nnrpc_stream_test__num__free_unpacked(m, NULL);
    want++;
  }
  assert_int_equal(want - 7, n);
  assert_int_equal(nnrpc_stream_test__streamer__range__finish(st, NULL).code, NNRPC_OK);
  nnrpc_channel_close(ch);
  th_server_stop(t);
}
static void test_server_stream_empty_inproc(void **st) { (void)st; range_n("inproc", 0, 0); }
static void test_server_stream_one_message_inproc(void **st) { (void)st; range_n("inproc", 1, 10); }
static void test_server_stream_100k_messages_inproc(void **st) { (void)st; range_n("inproc", many(), 0); }
static void test_server_stream_empty_tcp(void **st) { (void)st; range_n("tcp", 0, 0); }
static void test_server_stream_one_message_tcp(void **st) { (void)st; range_n("tcp", 1, 10); }
static void test_server_stream_100k_messages_tcp(void **st) { (void)st; range_n("tcp", many(), 0); }
static void test_server_stream_large_messages_tcp(void **st) { (void)st; range_n("tcp", th_count(200), 300000); }

/* ---------------------------------------------------------------- bidirectional */

typedef struct writer_arg {
  nnrpc_stream *st;
  int n;
  int rc;
  bool fail_last;
} writer_arg;

static void *chat_writer(void *p) {
  writer_arg *a = p;
  a->rc = NNRPC_OK;
  for (int i = 0; i < a->n && a->rc == NNRPC_OK; i++) {
    Num m = NNRPC_STREAM_TEST__NUM__INIT;
    m.value = i;
    m.fail = a->fail_last && i == a->n - 1;
    a->rc = nnrpc_stream_test__streamer__chat__write(a->st, &m);
  }
  if (a->rc == NNRPC_OK) a->rc = nnrpc_stream_test__streamer__chat__close_send(a->st);
  return NULL;
}

static void chat_n(const char *scheme, int n) {
  th_server *t = th_server_start(scheme, NULL);
  nnrpc_channel *ch = th_channel(t->url, NULL);
  nnrpc_call_opts o = opts_ms(TIMEOUT_MS);
  nnrpc_stream *st = NULL;
  assert_int_equal(nnrpc_stream_test__streamer__chat__open(ch, &o, &st).code, NNRPC_OK);
  /* Writes and reads run at once: with a window each way, a writer that
   * never reads would (rightly) stall once the answers fill its window. */
  writer_arg a = {st, n, -1, false};
  pthread_t w;
  pthread_create(&w, NULL, chat_writer, &a);
  Num *m;
  int64_t want = 0;
  while (nnrpc_stream_test__streamer__chat__read(st, &m)) {
    assert_int_equal(m->value, want);
    nnrpc_stream_test__num__free_unpacked(m, NULL);
    want++;
  }
  pthread_join(w, NULL);
  assert_int_equal(a.rc, NNRPC_OK);
  assert_int_equal(want, n);
  assert_int_equal(nnrpc_stream_test__streamer__chat__finish(st, NULL).code, NNRPC_OK);
  nnrpc_channel_close(ch);
  th_server_stop(t);
}
static void test_bidi_stream_empty_inproc(void **st) { (void)st; chat_n("inproc", 0); }
static void test_bidi_stream_one_message_inproc(void **st) { (void)st; chat_n("inproc", 1); }
static void test_bidi_stream_100k_messages_inproc(void **st) { (void)st; chat_n("inproc", many()); }
static void test_bidi_stream_empty_tcp(void **st) { (void)st; chat_n("tcp", 0); }
static void test_bidi_stream_one_message_tcp(void **st) { (void)st; chat_n("tcp", 1); }
static void test_bidi_stream_100k_messages_tcp(void **st) { (void)st; chat_n("tcp", many()); }

/* Half-close first, then read what the server still sends. */
static void test_bidi_answers_still_arrive_after_early_half_close(void **st) {
  (void)st;
  th_server *t = th_server_start("tcp", NULL);
  nnrpc_channel *ch = th_channel(t->url, NULL);
  nnrpc_call_opts o = opts_ms(TIMEOUT_MS);
  nnrpc_stream *s = NULL;
  assert_int_equal(nnrpc_stream_test__streamer__chat__open(ch, &o, &s).code, NNRPC_OK);
  for (int i = 0; i < 5; i++) {
    Num m = NNRPC_STREAM_TEST__NUM__INIT;
    m.value = i;
    assert_int_equal(nnrpc_stream_test__streamer__chat__write(s, &m), NNRPC_OK);
  }
  assert_int_equal(nnrpc_stream_test__streamer__chat__close_send(s), NNRPC_OK);
  assert_int_equal(nnrpc_stream_test__streamer__chat__close_send(s), NNRPC_OK); /* idempotent */
  Num one = NNRPC_STREAM_TEST__NUM__INIT;
  assert_int_equal(nnrpc_stream_test__streamer__chat__write(s, &one), NNRPC_FAILED_PRECONDITION);
  Num *m;
  int got = 0;
  while (nnrpc_stream_test__streamer__chat__read(s, &m)) {
    assert_int_equal(m->value, got++);
    nnrpc_stream_test__num__free_unpacked(m, NULL);
  }
  assert_int_equal(got, 5);
  assert_int_equal(nnrpc_stream_test__streamer__chat__finish(s, NULL).code, NNRPC_OK);
  nnrpc_channel_close(ch);
  th_server_stop(t);
}

/* ---------------------------------------------------------------- errors */

static void test_server_stream_error_arrives_after_the_messages_sent_before_it(void **st) {
  (void)st;
  th_server *t = th_server_start("tcp", NULL);
  nnrpc_channel *ch = th_channel(t->url, NULL);
  nnrpc_call_opts o = opts_ms(TIMEOUT_MS);
  NnrpcStreamTest__RangeRequest req = NNRPC_STREAM_TEST__RANGE_REQUEST__INIT;
  req.count = 100;
  req.fail_after = 10;
  req.fail_code = NNRPC_ABORTED;
  nnrpc_stream *s = NULL;
  assert_int_equal(nnrpc_stream_test__streamer__range__open(ch, &req, &o, &s).code, NNRPC_OK);
  th_sleep_ms(50); /* let the status arrive behind the messages */
  Num *m;
  int got = 0;
  while (nnrpc_stream_test__streamer__range__read(s, &m)) {
    got++;
    nnrpc_stream_test__num__free_unpacked(m, NULL);
  }
  assert_int_equal(got, 10);
  nnrpc_status r = nnrpc_stream_test__streamer__range__finish(s, NULL);
  assert_int_equal(r.code, NNRPC_ABORTED);
  assert_string_equal(r.message, "failing after 10 messages");
  nnrpc_channel_close(ch);
  th_server_stop(t);
}

static void test_client_stream_handler_error_reaches_client_and_write_reports_it(void **st) {
  (void)st;
  th_server *t = th_server_start("inproc", NULL);
  nnrpc_channel *ch = th_channel(t->url, NULL);
  nnrpc_call_opts o = opts_ms(TIMEOUT_MS);
  nnrpc_stream *s = NULL;
  assert_int_equal(nnrpc_stream_test__streamer__sum__open(ch, &o, &s).code, NNRPC_OK);
  Num m = NNRPC_STREAM_TEST__NUM__INIT;
  m.fail = true;
  assert_int_equal(nnrpc_stream_test__streamer__sum__write(s, &m), NNRPC_OK);
  /* Writes after the server ended report its status instead of crashing. */
  m.fail = false;
  int rc = NNRPC_OK;
  for (int i = 0; i < 2000 && rc == NNRPC_OK; i++) {
    rc = nnrpc_stream_test__streamer__sum__write(s, &m);
    if (rc == NNRPC_OK) th_sleep_ms(1);
  }
  assert_int_equal(rc, NNRPC_FAILED_PRECONDITION);
  NnrpcStreamTest__Total *total = (NnrpcStreamTest__Total *)1;
  nnrpc_status r = nnrpc_stream_test__streamer__sum__close_and_finish(s, &total, NULL);
  assert_int_equal(r.code, NNRPC_FAILED_PRECONDITION);
  assert_string_equal(r.message, "fail requested after 0");
  assert_null(total);
  nnrpc_channel_close(ch);
  th_server_stop(t);
}

static void test_bidi_handler_error_follows_the_answers_already_sent(void **st) {
  (void)st;
  th_server *t = th_server_start("tcp", NULL);
  nnrpc_channel *ch = th_channel(t->url, NULL);
  nnrpc_call_opts o = opts_ms(TIMEOUT_MS);
  nnrpc_stream *s = NULL;
  assert_int_equal(nnrpc_stream_test__streamer__chat__open(ch, &o, &s).code, NNRPC_OK);
  writer_arg a = {s, 20, -1, true}; /* the 20th message asks the handler to fail */
  pthread_t w;
  pthread_create(&w, NULL, chat_writer, &a);
  Num *m;
  int got = 0;
  while (nnrpc_stream_test__streamer__chat__read(s, &m)) {
    assert_int_equal(m->value, got++);
    nnrpc_stream_test__num__free_unpacked(m, NULL);
  }
  pthread_join(w, NULL);
  assert_int_equal(got, 19);
  assert_int_equal(nnrpc_stream_test__streamer__chat__finish(s, NULL).code, NNRPC_ABORTED);
  nnrpc_channel_close(ch);
  th_server_stop(t);
}

/* ---------------------------------------------------------------- cancel, deadline */

static void wait_ended(th_server *t, int n) {
  for (int i = 0; i < 500 && atomic_load(&t->streams_ended) < n; i++) th_sleep_ms(10);
  assert_int_equal(atomic_load(&t->streams_ended), n);
}

static void cancel_mid_stream(const char *scheme) {
  th_server *t = th_server_start(scheme, NULL);
  nnrpc_channel *ch = th_channel(t->url, NULL);
  nnrpc_call_opts o = opts_ms(TIMEOUT_MS);
  NnrpcStreamTest__RangeRequest req = NNRPC_STREAM_TEST__RANGE_REQUEST__INIT;
  req.forever = true;
  nnrpc_stream *s = NULL;
  assert_int_equal(nnrpc_stream_test__streamer__range__open(ch, &req, &o, &s).code, NNRPC_OK);
  Num *m;
  for (int i = 0; i < 100; i++) {
    assert_int_equal(nnrpc_stream_test__streamer__range__read(s, &m), 1);
    nnrpc_stream_test__num__free_unpacked(m, NULL);
  }
  int64_t t0 = th_now_ms();
  nnrpc_stream_cancel(s);
  assert_int_equal(nnrpc_stream_test__streamer__range__read(s, &m), 0);
  assert_null(m);
  assert_int_equal(nnrpc_stream_test__streamer__range__finish(s, NULL).code, NNRPC_CANCELLED);
  /* The handler hears it promptly and frees its stream. */
  wait_ended(t, 1);
  assert_int_equal(atomic_load(&t->streams_cancelled), 1);
  assert_true(th_now_ms() - t0 < (th_slow() ? 5000 : 1000));
  nnrpc_channel_close(ch);
  th_server_stop(t);
}
static void test_client_cancel_mid_stream_stops_the_handler_inproc(void **st) { (void)st; cancel_mid_stream("inproc"); }
static void test_client_cancel_mid_stream_stops_the_handler_tcp(void **st) { (void)st; cancel_mid_stream("tcp"); }

/* Cancel from another thread while the owner is blocked in read. */
typedef struct reader_arg {
  nnrpc_stream *st;
  int got;
  int64_t ended_ms;
} reader_arg;

static void *slow_range_reader(void *p) {
  reader_arg *a = p;
  Num *m;
  while (nnrpc_stream_test__streamer__range__read(a->st, &m)) {
    a->got++;
    nnrpc_stream_test__num__free_unpacked(m, NULL);
  }
  a->ended_ms = th_now_ms();
  return NULL;
}

static void test_cancel_from_another_thread_wakes_a_blocked_reader(void **st) {
  (void)st;
  th_server *t = th_server_start("tcp", NULL);
  nnrpc_channel *ch = th_channel(t->url, NULL);
  nnrpc_call_opts o = opts_ms(TIMEOUT_MS);
  NnrpcStreamTest__RangeRequest req = NNRPC_STREAM_TEST__RANGE_REQUEST__INIT;
  req.forever = true;
  req.delay_ms = 1000; /* the reader blocks between messages */
  nnrpc_stream *s = NULL;
  assert_int_equal(nnrpc_stream_test__streamer__range__open(ch, &req, &o, &s).code, NNRPC_OK);
  reader_arg a = {s, 0, 0};
  pthread_t r;
  pthread_create(&r, NULL, slow_range_reader, &a);
  th_sleep_ms(100);
  int64_t t0 = th_now_ms();
  nnrpc_stream_cancel(s);
  pthread_join(r, NULL);
  assert_true(a.ended_ms - t0 < 500);
  assert_int_equal(nnrpc_stream_test__streamer__range__finish(s, NULL).code, NNRPC_CANCELLED);
  wait_ended(t, 1);
  nnrpc_channel_close(ch);
  th_server_stop(t);
}

static void deadline_mid_stream(const char *scheme) {
  th_server *t = th_server_start(scheme, NULL);
  nnrpc_channel *ch = th_channel(t->url, NULL);
  nnrpc_call_opts o = opts_ms(300);
  NnrpcStreamTest__RangeRequest req = NNRPC_STREAM_TEST__RANGE_REQUEST__INIT;
  req.forever = true;
  req.delay_ms = 5;
  nnrpc_stream *s = NULL;
  int64_t t0 = th_now_ms();
  assert_int_equal(nnrpc_stream_test__streamer__range__open(ch, &req, &o, &s).code, NNRPC_OK);
  reader_arg a = {s, 0, 0};
  slow_range_reader(&a);
  assert_true(a.got > 5);
  assert_true(a.ended_ms - t0 >= 295 && a.ended_ms - t0 < (th_slow() ? 3000 : 800));
  assert_int_equal(nnrpc_stream_test__streamer__range__finish(s, NULL).code, NNRPC_DEADLINE_EXCEEDED);
  wait_ended(t, 1); /* the server ended it too */
  assert_int_equal(atomic_load(&t->streams_cancelled), 1);
  nnrpc_channel_close(ch);
  th_server_stop(t);
}
static void test_deadline_mid_stream_ends_both_sides_on_time_inproc(void **st) { (void)st; deadline_mid_stream("inproc"); }
static void test_deadline_mid_stream_ends_both_sides_on_time_tcp(void **st) { (void)st; deadline_mid_stream("tcp"); }

/* A writer blocked on a full window gives up at the deadline. */
static void test_writer_blocked_by_slow_reader_gives_up_at_deadline(void **st) {
  (void)st;
  th_server *t = th_server_start("tcp", NULL);
  nnrpc_channel *ch = th_channel(t->url, NULL);
  nnrpc_call_opts o = opts_ms(500);
  nnrpc_stream *s = NULL;
  assert_int_equal(nnrpc_stream_test__streamer__sum__open(ch, &o, &s).code, NNRPC_OK);
  static uint8_t big[32768];
  Num m = NNRPC_STREAM_TEST__NUM__INIT;
  m.delay_ms = 10000; /* the handler sleeps after the first message */
  m.payload = (ProtobufCBinaryData){sizeof big, big};
  int rc = NNRPC_OK, sent = 0;
  int64_t t0 = th_now_ms();
  while (rc == NNRPC_OK && sent < 10000) {
    rc = nnrpc_stream_test__streamer__sum__write(s, &m);
    sent += rc == NNRPC_OK;
  }
  assert_int_equal(rc, NNRPC_DEADLINE_EXCEEDED);
  assert_true(th_now_ms() - t0 < (th_slow() ? 4000 : 1500));
  /* Bounded: the server's window (256 KiB) and one message, not 10000. */
  assert_true(sent * (int)sizeof big <= (256 + 64 + 64) * 1024);
  assert_int_equal(nnrpc_stream_test__streamer__sum__close_and_finish(s, NULL, NULL).code, NNRPC_DEADLINE_EXCEEDED);
  nnrpc_channel_close(ch);
  th_server_stop(t);
}

/* ---------------------------------------------------------------- misuse */

static void test_stream_api_rejects_misuse_with_clear_codes(void **st) {
  (void)st;
  th_server *t = th_server_start("inproc", NULL);
  nnrpc_channel *ch = th_channel(t->url, NULL);
  nnrpc_call_opts o = opts_ms(TIMEOUT_MS);
  nnrpc_stream *s = NULL;
  /* unary method through the stream API, and a stream method through unary */
  NnrpcTest__EchoRequest ereq = NNRPC_TEST__ECHO_REQUEST__INIT;
  assert_int_equal(nnrpc_stream_open(ch, &nnrpc_test__echo__nnrpc_service.methods[0], &ereq.base, &o, &s).code,
                   NNRPC_INVALID_ARGUMENT);
  ProtobufCMessage *rep = NULL;
  NnrpcStreamTest__RangeRequest rreq = NNRPC_STREAM_TEST__RANGE_REQUEST__INIT;
  const nnrpc_method *range_m = &nnrpc_stream_test__streamer__nnrpc_service.methods[1];
  assert_int_equal(nnrpc_unary_call(ch, range_m, &rreq.base, &rep, &o).code, NNRPC_INVALID_ARGUMENT);
  /* server streaming needs its request; the others take none at open */
  assert_int_equal(nnrpc_stream_open(ch, range_m, NULL, &o, &s).code, NNRPC_INVALID_ARGUMENT);
  const nnrpc_method *chat_m = &nnrpc_stream_test__streamer__nnrpc_service.methods[2];
  assert_int_equal(nnrpc_stream_open(ch, chat_m, &rreq.base, &o, &s).code, NNRPC_INVALID_ARGUMENT);
  /* reading a client stream, writing a server stream, wrong message types */
  assert_int_equal(nnrpc_stream_test__streamer__range__open(ch, &rreq, &o, &s).code, NNRPC_OK);
  Num m = NNRPC_STREAM_TEST__NUM__INIT;
  assert_int_equal(nnrpc_stream_write(s, &m.base), NNRPC_INVALID_ARGUMENT);
  assert_int_equal(nnrpc_stream_test__streamer__range__finish(s, NULL).code, NNRPC_OK);
  assert_int_equal(nnrpc_stream_test__streamer__chat__open(ch, &o, &s).code, NNRPC_OK);
  assert_int_equal(nnrpc_stream_write(s, &rreq.base), NNRPC_INVALID_ARGUMENT);
  nnrpc_stream_cancel(s);
  assert_int_equal(nnrpc_stream_test__streamer__chat__write(s, &m), NNRPC_CANCELLED);
  assert_int_equal(nnrpc_stream_test__streamer__chat__close_send(s), NNRPC_CANCELLED);
  assert_int_equal(nnrpc_stream_test__streamer__chat__finish(s, NULL).code, NNRPC_CANCELLED);
  /* a stream message over max_send_msg */
  nnrpc_channel_opts co = {.max_send_msg = 100};
  nnrpc_channel *small = th_channel(t->url, &co);
  assert_int_equal(nnrpc_stream_test__streamer__sum__open(small, &o, &s).code, NNRPC_OK);
  static uint8_t buf[200];
  m.payload = (ProtobufCBinaryData){sizeof buf, buf};
  assert_int_equal(nnrpc_stream_test__streamer__sum__write(s, &m), NNRPC_RESOURCE_EXHAUSTED);
  m.payload.len = 10;
  assert_int_equal(nnrpc_stream_test__streamer__sum__write(s, &m), NNRPC_OK);
  assert_int_equal(nnrpc_stream_test__streamer__sum__close_and_finish(s, NULL, NULL).code, NNRPC_OK);
  nnrpc_channel_close(small);
  nnrpc_channel_close(ch);
  th_server_stop(t);
}

static void test_server_refuses_stream_messages_over_its_max_recv(void **st) {
  (void)st;
  nnrpc_server_opts so = {.max_recv_msg = 1000};
  th_server *t = th_server_start("tcp", &so);
  nnrpc_channel *ch = th_channel(t->url, NULL);
  nnrpc_call_opts o = opts_ms(TIMEOUT_MS);
  nnrpc_stream *s = NULL;
  assert_int_equal(nnrpc_stream_test__streamer__sum__open(ch, &o, &s).code, NNRPC_OK);
  static uint8_t buf[5000];
  Num m = NNRPC_STREAM_TEST__NUM__INIT;
  m.payload = (ProtobufCBinaryData){sizeof buf, buf};
  assert_int_equal(nnrpc_stream_test__streamer__sum__write(s, &m), NNRPC_OK); /* the server decides */
  nnrpc_status r = nnrpc_stream_test__streamer__sum__close_and_finish(s, NULL, NULL);
  assert_int_equal(r.code, NNRPC_RESOURCE_EXHAUSTED);
  /* The handler, if it got to run at all, has ended. */
  for (int i = 0; i < 500 && atomic_load(&t->streams_started) != atomic_load(&t->streams_ended); i++) th_sleep_ms(10);
  assert_int_equal(atomic_load(&t->streams_started), atomic_load(&t->streams_ended));
  nnrpc_channel_close(ch);
  th_server_stop(t);
}

static void test_streams_past_max_concurrent_streams_are_resource_exhausted(void **st) {
  (void)st;
  nnrpc_server_opts so = {.max_concurrent_streams = 2};
  th_server *t = th_server_start("tcp", &so);
  nnrpc_channel *ch = th_channel(t->url, NULL);
  nnrpc_call_opts o = opts_ms(TIMEOUT_MS);
  nnrpc_stream *a = NULL, *b = NULL, *c = NULL;
  assert_int_equal(nnrpc_stream_test__streamer__chat__open(ch, &o, &a).code, NNRPC_OK);
  assert_int_equal(nnrpc_stream_test__streamer__chat__open(ch, &o, &b).code, NNRPC_OK);
  for (int i = 0; i < 500 && atomic_load(&t->streams_started) < 2; i++) th_sleep_ms(2);
  assert_int_equal(nnrpc_stream_test__streamer__chat__open(ch, &o, &c).code, NNRPC_OK);
  nnrpc_status r = nnrpc_stream_test__streamer__chat__finish(c, NULL);
  assert_int_equal(r.code, NNRPC_RESOURCE_EXHAUSTED);
  assert_string_equal(r.message, "connection is at max_concurrent_streams");
  /* Unary calls are not streams; a finished stream frees its place. */
  NnrpcTest__EchoRequest req = NNRPC_TEST__ECHO_REQUEST__INIT;
  NnrpcTest__EchoReply *rep = NULL;
  assert_int_equal(nnrpc_test__echo__echo__call(ch, &req, &rep, &o).code, NNRPC_OK);
  nnrpc_test__echo_reply__free_unpacked(rep, NULL);
  assert_int_equal(nnrpc_stream_test__streamer__chat__finish(a, NULL).code, NNRPC_OK);
  wait_ended(t, 1);
  for (int i = 0; i < 100; i++) { /* the server releases the slot just after the status */
    assert_int_equal(nnrpc_stream_test__streamer__chat__open(ch, &o, &c).code, NNRPC_OK);
    r = nnrpc_stream_test__streamer__chat__finish(c, NULL);
    if (r.code == NNRPC_OK) break;
    th_sleep_ms(5);
  }
  assert_int_equal(r.code, NNRPC_OK);
  assert_int_equal(nnrpc_stream_test__streamer__chat__finish(b, NULL).code, NNRPC_OK);
  nnrpc_channel_close(ch);
  th_server_stop(t);
}

/* ---------------------------------------------------------------- many streams */

typedef struct bidi_arg {
  nnrpc_channel *ch;
  int id, n, ok;
} bidi_arg;

static void *one_bidi(void *p) {
  bidi_arg *a = p;
  nnrpc_call_opts o = opts_ms(TIMEOUT_MS);
  nnrpc_stream *s = NULL;
  if (nnrpc_stream_test__streamer__chat__open(a->ch, &o, &s).code) return NULL;
  bool good = true;
  for (int i = 0; i < a->n && good; i++) {
    /* Alternate a stream round trip with a unary call on the same channel. */
    Num m = NNRPC_STREAM_TEST__NUM__INIT;
    m.value = (int64_t)a->id * 1000000 + i;
    good = nnrpc_stream_test__streamer__chat__write(s, &m) == NNRPC_OK;
    Num *r = NULL;
    good = good && nnrpc_stream_test__streamer__chat__read(s, &r) == 1 && r->value == m.value;
    if (r) nnrpc_stream_test__num__free_unpacked(r, NULL);
    NnrpcTest__EchoRequest req = NNRPC_TEST__ECHO_REQUEST__INIT;
    req.tag = (uint64_t)m.value;
    NnrpcTest__EchoReply *rep = NULL;
    good = good && nnrpc_test__echo__echo__call(a->ch, &req, &rep, &o).code == NNRPC_OK && rep->tag == req.tag;
    if (rep) nnrpc_test__echo_reply__free_unpacked(rep, NULL);
    a->ok += good;
  }
  nnrpc_stream_test__streamer__chat__close_send(s);
  if (nnrpc_stream_test__streamer__chat__finish(s, NULL).code != NNRPC_OK) a->ok = -1;
  return NULL;
}

static void fifty_bidi(const char *scheme) {
  th_server *t = th_server_start(scheme, NULL);
  nnrpc_channel *ch = th_channel(t->url, NULL);
  enum { N = 50 };
  int n = th_count(200);
  pthread_t th[N];
  bidi_arg a[N];
  for (int i = 0; i < N; i++) {
    a[i] = (bidi_arg){ch, i, n, 0};
    pthread_create(&th[i], NULL, one_bidi, &a[i]);
  }
  for (int i = 0; i < N; i++) {
    pthread_join(th[i], NULL);
    assert_int_equal(a[i].ok, n);
  }
  wait_ended(t, N);
  nnrpc_channel_close(ch);
  th_server_stop(t);
}
static void test_fifty_bidi_streams_with_interleaved_unary_calls_inproc(void **st) { (void)st; fifty_bidi("inproc"); }
static void test_fifty_bidi_streams_with_interleaved_unary_calls_tcp(void **st) { (void)st; fifty_bidi("tcp"); }

/* ---------------------------------------------------------------- server killed */

static void test_server_killed_mid_stream_gives_unavailable_not_a_hang(void **st) {
  (void)st;
  char url[128];
  th_url("tcp", url, sizeof url);
  pid_t pid = th_spawn_self("--serve", url);
  nnrpc_channel_opts co = {.keepalive_ms = 100, .keepalive_timeout_ms = 700};
  nnrpc_channel *ch = th_channel(url, &co);
  nnrpc_call_opts o = opts_ms(30000);
  NnrpcStreamTest__RangeRequest req = NNRPC_STREAM_TEST__RANGE_REQUEST__INIT;
  req.forever = true;
  req.delay_ms = 20;
  nnrpc_stream *s = NULL;
  assert_int_equal(nnrpc_stream_test__streamer__range__open(ch, &req, &o, &s).code, NNRPC_OK);
  Num *m;
  assert_int_equal(nnrpc_stream_test__streamer__range__read(s, &m), 1); /* it is streaming */
  nnrpc_stream_test__num__free_unpacked(m, NULL);
  int64_t t0 = th_now_ms();
  th_kill_child(pid);
  reader_arg a = {s, 0, 0};
  slow_range_reader(&a);
  assert_true(a.ended_ms - t0 < (th_slow() ? 10000 : 3000));
  assert_int_equal(nnrpc_stream_test__streamer__range__finish(s, NULL).code, NNRPC_UNAVAILABLE);
  nnrpc_channel_close(ch);
}

/* ---------------------------------------------------------------- flow control bound */

static long rss_kib(void) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  long kib = -1;
  while (f && fgets(line, sizeof line, f))
    if (sscanf(line, "VmRSS: %ld", &kib) == 1) break;
  if (f) fclose(f);
  return kib;
}

/* The whole process (client and server) must stay within a few MiB while a
 * fast writer pushes 1 GiB at a reader that keeps sleeping. Under ASan
 * (quarantine) and valgrind (own allocator) RSS says nothing about our
 * memory: there a smaller transfer runs for correctness only. */
#define RSS_BOUND_KIB (8 * 1024)
#if defined(__SANITIZE_ADDRESS__)
static bool rss_meaningful(void) { return false; }
#else
static bool rss_meaningful(void) { return !th_slow(); }
#endif

static void test_one_gib_to_a_sleeping_server_keeps_memory_bounded(void **st) {
  (void)st;
  th_server *t = th_server_start("tcp", NULL);
  nnrpc_channel *ch = th_channel(t->url, NULL);
  nnrpc_call_opts o = opts_ms(th_slow() ? 600000 : 120000);
  size_t chunk = 64 * 1024, total = rss_meaningful() ? (size_t)1 << 30 : (size_t)32 << 20;
  uint8_t *buf = calloc(1, chunk);
  nnrpc_stream *s = NULL;
  assert_int_equal(nnrpc_stream_test__streamer__sum__open(ch, &o, &s).code, NNRPC_OK);
  Num m = NNRPC_STREAM_TEST__NUM__INIT;
  m.payload = (ProtobufCBinaryData){chunk, buf};
  long base = 0, peak = 0;
  for (size_t i = 0; i < total / chunk; i++) {
    m.value = 1;
    m.delay_ms = i % 2048 == 0 ? 100 : 0; /* the reader naps now and then */
    assert_int_equal(nnrpc_stream_test__streamer__sum__write(s, &m), NNRPC_OK);
    long r = rss_kib();
    if (i == 64) base = r; /* after warm-up: buffers, threads, the window */
    if (i > 64 && r > peak) peak = r;
  }
  NnrpcStreamTest__Total *tot = NULL;
  assert_int_equal(nnrpc_stream_test__streamer__sum__close_and_finish(s, &tot, NULL).code, NNRPC_OK);
  assert_int_equal(tot->count, total / chunk);
  nnrpc_stream_test__total__free_unpacked(tot, NULL);
  print_message("client->server %zu MiB: RSS %ld KiB after warm-up, peak %ld KiB (+%ld KiB)\n", total >> 20, base,
                peak, peak - base);
  free(buf);
  if (rss_meaningful()) assert_true(peak - base < RSS_BOUND_KIB);
  nnrpc_channel_close(ch);
  th_server_stop(t);
}

static void test_one_gib_to_a_sleeping_client_keeps_memory_bounded(void **st) {
  (void)st;
  th_server *t = th_server_start("tcp", NULL);
  nnrpc_channel *ch = th_channel(t->url, NULL);
  nnrpc_call_opts o = opts_ms(th_slow() ? 600000 : 120000);
  size_t chunk = 64 * 1024, total = rss_meaningful() ? (size_t)1 << 30 : (size_t)32 << 20;
  NnrpcStreamTest__RangeRequest req = NNRPC_STREAM_TEST__RANGE_REQUEST__INIT;
  req.count = total / chunk;
  req.payload_size = (uint32_t)chunk;
  nnrpc_stream *s = NULL;
  assert_int_equal(nnrpc_stream_test__streamer__range__open(ch, &req, &o, &s).code, NNRPC_OK);
  Num *m;
  size_t got = 0;
  long base = 0, peak = 0;
  while (nnrpc_stream_test__streamer__range__read(s, &m)) {
    got += m->payload.len;
    nnrpc_stream_test__num__free_unpacked(m, NULL);
    size_t i = got / chunk;
    if (i % 2048 == 0) th_sleep_ms(100); /* a slow reader */
    long r = rss_kib();
    if (i == 64) base = r;
    if (i > 64 && r > peak) peak = r;
  }
  assert_int_equal(got, total);
  assert_int_equal(nnrpc_stream_test__streamer__range__finish(s, NULL).code, NNRPC_OK);
  print_message("server->client %zu MiB: RSS %ld KiB after warm-up, peak %ld KiB (+%ld KiB)\n", total >> 20, base,
                peak, peak - base);
  if (rss_meaningful()) assert_true(peak - base < RSS_BOUND_KIB);
  nnrpc_channel_close(ch);
  th_server_stop(t);
}

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "--serve") == 0) { /* the server a test kills */
    th_server *t = th_server_start_at(argv[2], NULL);
    if (!t) return 2;
    for (int i = 0; i < 600; i++) th_sleep_ms(100);
    th_server_stop(t);
    return 0;
  }
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_client_stream_empty_inproc),
      cmocka_unit_test(test_client_stream_one_message_inproc),
      cmocka_unit_test(test_client_stream_100k_messages_inproc),
      cmocka_unit_test(test_client_stream_empty_tcp),
      cmocka_unit_test(test_client_stream_one_message_tcp),
      cmocka_unit_test(test_client_stream_100k_messages_tcp),
      cmocka_unit_test(test_server_stream_empty_inproc),
      cmocka_unit_test(test_server_stream_one_message_inproc),
      cmocka_unit_test(test_server_stream_100k_messages_inproc),
      cmocka_unit_test(test_server_stream_empty_tcp),
      cmocka_unit_test(test_server_stream_one_message_tcp),
      cmocka_unit_test(test_server_stream_100k_messages_tcp),
      cmocka_unit_test(test_server_stream_large_messages_tcp),
      cmocka_unit_test(test_bidi_stream_empty_inproc),
      cmocka_unit_test(test_bidi_stream_one_message_inproc),
      cmocka_unit_test(test_bidi_stream_100k_messages_inproc),
      cmocka_unit_test(test_bidi_stream_empty_tcp),
      cmocka_unit_test(test_bidi_stream_one_message_tcp),
      cmocka_unit_test(test_bidi_stream_100k_messages_tcp),
      cmocka_unit_test(test_bidi_answers_still_arrive_after_early_half_close),
      cmocka_unit_test(test_server_stream_error_arrives_after_the_messages_sent_before_it),
      cmocka_unit_test(test_client_stream_handler_error_reaches_client_and_write_reports_it),
      cmocka_unit_test(test_bidi_handler_error_follows_the_answers_already_sent),
      cmocka_unit_test(test_client_cancel_mid_stream_stops_the_handler_inproc),
      cmocka_unit_test(test_client_cancel_mid_stream_stops_the_handler_tcp),
      cmocka_unit_test(test_cancel_from_another_thread_wakes_a_blocked_reader),
      cmocka_unit_test(test_deadline_mid_stream_ends_both_sides_on_time_inproc),
      cmocka_unit_test(test_deadline_mid_stream_ends_both_sides_on_time_tcp),
      cmocka_unit_test(test_writer_blocked_by_slow_reader_gives_up_at_deadline),
      cmocka_unit_test(test_stream_api_rejects_misuse_with_clear_codes),
      cmocka_unit_test(test_server_refuses_stream_messages_over_its_max_recv),
      cmocka_unit_test(test_streams_past_max_concurrent_streams_are_resource_exhausted),
      cmocka_unit_test(test_fifty_bidi_streams_with_interleaved_unary_calls_inproc),
      cmocka_unit_test(test_fifty_bidi_streams_with_interleaved_unary_calls_tcp),
      cmocka_unit_test(test_server_killed_mid_stream_gives_unavailable_not_a_hang),
      cmocka_unit_test(test_one_gib_to_a_sleeping_server_keeps_memory_bounded),
      cmocka_unit_test(test_one_gib_to_a_sleeping_client_keeps_memory_bounded),
  };
  if (getenv("TEST_FILTER")) cmocka_set_test_filter(getenv("TEST_FILTER"));
  return cmocka_run_group_tests(tests, NULL, NULL);
}
