/* Unary calls end to end over real nanomsg sockets (inproc, ipc, tcp, ws):
 * success, status codes, deadlines, metadata, concurrency, size limits,
 * nesting limits, several services and URLs, shutdown with calls in flight. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "helpers/harness.h"

/* Every call in this file has a deadline. */
#define CALL_TIMEOUT_MS 10000

static nnrpc_call_opts with_timeout(int64_t ms) { return (nnrpc_call_opts){.timeout_ms = ms}; }

/* ---------------------------------------------------------------- success */

static void echo_round_trip(const char *scheme) {
  th_server *t = th_server_start(scheme, NULL);
  nnrpc_channel *ch = th_channel(t->url, NULL);
  for (int i = 0; i < 20; i++) {
    uint8_t bytes[64];
    for (size_t j = 0; j < sizeof bytes; j++) bytes[j] = (uint8_t)(j * 7 + (size_t)i); /* includes NULs */
    NnrpcTest__EchoRequest req = NNRPC_TEST__ECHO_REQUEST__INIT;
    req.payload = (ProtobufCBinaryData){sizeof bytes, bytes};
    req.tag = 1000 + (uint64_t)i;
    NnrpcTest__EchoReply *rep = NULL;
    nnrpc_call_opts o = with_timeout(CALL_TIMEOUT_MS);
    nnrpc_status st = nnrpc_test__echo__echo__call(ch, &req, &rep, &o);
    assert_int_equal(st.code, NNRPC_OK);
    assert_non_null(rep);
    assert_int_equal(rep->tag, 1000 + (uint64_t)i);
    assert_int_equal(rep->payload.len, sizeof bytes);
    assert_memory_equal(rep->payload.data, bytes, sizeof bytes);
    assert_string_equal(rep->note, "/nnrpc_test.Echo/Echo");
    nnrpc_test__echo_reply__free_unpacked(rep, NULL);
  }
  nnrpc_channel_close(ch);
  assert_int_equal(atomic_load(&t->calls), 20);
  th_server_stop(t);
}
static void test_echo_round_trip_inproc(void **st) { (void)st; echo_round_trip("inproc"); }
static void test_echo_round_trip_ipc(void **st) { (void)st; echo_round_trip("ipc"); }
static void test_echo_round_trip_tcp(void **st) { (void)st; echo_round_trip("tcp"); }
/* ws:// is supported as far as this passes (it is slow: no TCP_NODELAY). */
static void test_echo_round_trip_ws(void **st) { (void)st; echo_round_trip("ws"); }

static void test_empty_request_and_reply_round_trip(void **st) {
  (void)st;
  th_server *t = th_server_start("inproc", NULL);
  nnrpc_channel *ch = th_channel(t->url, NULL);
  NnrpcTest__EchoRequest req = NNRPC_TEST__ECHO_REQUEST__INIT; /* packs to 0 bytes */
  NnrpcTest__EchoReply *rep = NULL;
  nnrpc_call_opts o = with_timeout(CALL_TIMEOUT_MS);
  nnrpc_status s = nnrpc_test__echo__echo__call(ch, &req, &rep, &o);
  assert_int_equal(s.code, NNRPC_OK);
  assert_int_equal(rep->payload.len, 0);
  nnrpc_test__echo_reply__free_unpacked(rep, NULL);
  nnrpc_channel_close(ch);
  th_server_stop(t);
}

/* ---------------------------------------------------------------- status codes */

static void unimplemented(const char *scheme) {
  th_server *t = th_server_start(scheme, NULL);
  nnrpc_channel *ch = th_channel(t->url, NULL);
  NnrpcTest__EchoRequest req = NNRPC_TEST__ECHO_REQUEST__INIT;
  NnrpcTest__EchoReply *rep = (NnrpcTest__EchoReply *)1;
  nnrpc_call_opts o = with_timeout(CALL_TIMEOUT_MS);
  /* Declared in the service, no handler registered. */
  nnrpc_status s = nnrpc_test__echo__unimplemented__call(ch, &req, &rep, &o);
  assert_int_equal(s.code, NNRPC_UNIMPLEMENTED);
  assert_null(rep);
  /* A method the server has never heard of, and an unknown service. */
  const char *paths[] = {"/nnrpc_test.Echo/NoSuchMethod", "/nope.Nope/Echo", "", "garbage"};
  for (size_t i = 0; i < sizeof paths / sizeof *paths; i++) {
    nnrpc_method m = nnrpc_test__echo__nnrpc_service.methods[0];
    m.path = paths[i];
    ProtobufCMessage *r = NULL;
    s = nnrpc_unary_call(ch, &m, &req.base, &r, &o);
    assert_int_equal(s.code, NNRPC_UNIMPLEMENTED);
    assert_null(r);
  }
  assert_int_equal(atomic_load(&t->calls), 0);
  nnrpc_channel_close(ch);
  th_server_stop(t);
}
static void test_unimplemented_for_unknown_or_unhandled_method_inproc(void **st) { (void)st; unimplemented("inproc"); }
static void test_unimplemented_for_unknown_or_unhandled_method_ipc(void **st) { (void)st; unimplemented("ipc"); }
static void test_unimplemented_for_unknown_or_unhandled_method_tcp(void **st) { (void)st; unimplemented("tcp"); }

static void handler_error(const char *scheme) {
  th_server *t = th_server_start(scheme, NULL);
  nnrpc_channel *ch = th_channel(t->url, NULL);
  nnrpc_metadata *hdr = nnrpc_metadata_new(), *trl = nnrpc_metadata_new();
  assert_int_equal(nnrpc_metadata_add_str(hdr, "x-request-id", "abc-123"), NNRPC_OK);
  NnrpcTest__EchoRequest req = NNRPC_TEST__ECHO_REQUEST__INIT;
  req.fail_code = NNRPC_NOT_FOUND;
  req.fail_message = "no user 42";
  req.echo_headers = true;
  NnrpcTest__EchoReply *rep = NULL;
  nnrpc_call_opts o = {.timeout_ms = CALL_TIMEOUT_MS, .headers = hdr, .trailers = trl};
  nnrpc_status s = nnrpc_test__echo__echo__call(ch, &req, &rep, &o);
  assert_int_equal(s.code, NNRPC_NOT_FOUND);
  assert_string_equal(s.message, "no user 42");
  assert_null(rep);
  /* Trailers travel with an error status too. */
  size_t len = 0;
  const char *v = nnrpc_metadata_get(trl, "x-request-id", &len);
  assert_non_null(v);
  assert_string_equal(v, "abc-123");
  /* Every code a handler can return arrives unchanged. */
  for (int code = 1; code < NNRPC_CODE_COUNT; code++) {
    req.fail_code = code;
    req.fail_message = "";
    req.echo_headers = false;
    s = nnrpc_test__echo__echo__call(ch, &req, &rep, &o);
    assert_int_equal(s.code, code);
    assert_non_null(s.message);
  }
  nnrpc_metadata_free(hdr);
  nnrpc_metadata_free(trl);
  nnrpc_channel_close(ch);
  th_server_stop(t);
}
static void test_handler_error_code_message_and_trailers_reach_client_inproc(void **st) { (void)st; handler_error("inproc"); }
static void test_handler_error_code_message_and_trailers_reach_client_tcp(void **st) { (void)st; handler_error("tcp"); }

/* ---------------------------------------------------------------- deadlines */

static void slow_handler_deadline(const char *scheme) {
  th_server *t = th_server_start(scheme, NULL);
  nnrpc_channel *ch = th_channel(t->url, NULL);
  NnrpcTest__EchoRequest req = NNRPC_TEST__ECHO_REQUEST__INIT;
  req.delay_ms = 5000;
  NnrpcTest__EchoReply *rep = NULL;
  nnrpc_call_opts o = with_timeout(200);
  int64_t t0 = th_now_ms();
  nnrpc_status s = nnrpc_test__echo__echo__call(ch, &req, &rep, &o);
  int64_t took = th_now_ms() - t0;
  assert_int_equal(s.code, NNRPC_DEADLINE_EXCEEDED);
  assert_null(rep);
  assert_true(took >= 195);
  assert_true(took < (th_slow() ? 3000 : 1000));
  /* The deadline travelled with the call: the handler sees it cancelled. */
  for (int i = 0; i < 300 && atomic_load(&t->cancelled) == 0; i++) th_sleep_ms(10);
  assert_int_equal(atomic_load(&t->cancelled), 1);
  nnrpc_channel_close(ch);
  th_server_stop(t);
}
static void test_deadline_exceeded_on_time_when_handler_is_slow_inproc(void **st) { (void)st; slow_handler_deadline("inproc"); }
static void test_deadline_exceeded_on_time_when_handler_is_slow_tcp(void **st) { (void)st; slow_handler_deadline("tcp"); }

static void no_server_deadline(const char *scheme) {
  char url[128];
  nnrpc_channel *ch = th_channel(th_url(scheme, url, sizeof url), NULL);
  NnrpcTest__EchoRequest req = NNRPC_TEST__ECHO_REQUEST__INIT;
  NnrpcTest__EchoReply *rep = NULL;
  nnrpc_call_opts o = with_timeout(250);
  int64_t t0 = th_now_ms();
  nnrpc_status s = nnrpc_test__echo__echo__call(ch, &req, &rep, &o);
  int64_t took = th_now_ms() - t0;
  assert_int_equal(s.code, NNRPC_DEADLINE_EXCEEDED);
  assert_true(took >= 245 && took < (th_slow() ? 3000 : 1000));
  nnrpc_channel_close(ch);
}
static void test_deadline_exceeded_when_no_server_listens_tcp(void **st) { (void)st; no_server_deadline("tcp"); }
static void test_deadline_exceeded_when_no_server_listens_ipc(void **st) { (void)st; no_server_deadline("ipc"); }
static void test_deadline_exceeded_when_no_server_listens_inproc(void **st) { (void)st; no_server_deadline("inproc"); }

static void test_channel_default_timeout_applies_to_calls_without_one(void **st) {
  (void)st;
  th_server *t = th_server_start("inproc", NULL);
  nnrpc_channel_opts co = {.default_timeout_ms = 150};
  nnrpc_channel *ch = th_channel(t->url, &co);
  NnrpcTest__EchoRequest req = NNRPC_TEST__ECHO_REQUEST__INIT;
  req.delay_ms = 3000;
  NnrpcTest__EchoReply *rep = NULL;
  int64_t t0 = th_now_ms();
  nnrpc_status s = nnrpc_test__echo__echo__call(ch, &req, &rep, NULL);
  assert_int_equal(s.code, NNRPC_DEADLINE_EXCEEDED);
  assert_true(th_now_ms() - t0 < (th_slow() ? 3000 : 1000));
  /* A per-call timeout overrides the default. */
  req.delay_ms = 300;
  nnrpc_call_opts o = with_timeout(CALL_TIMEOUT_MS);
  s = nnrpc_test__echo__echo__call(ch, &req, &rep, &o);
  assert_int_equal(s.code, NNRPC_OK);
  nnrpc_test__echo_reply__free_unpacked(rep, NULL);
  nnrpc_channel_close(ch);
  th_server_stop(t);
}

/* ---------------------------------------------------------------- metadata */

static void metadata_round_trip(const char *scheme) {
  th_server *t = th_server_start(scheme, NULL);
  nnrpc_channel *ch = th_channel(t->url, NULL);
  nnrpc_metadata *hdr = nnrpc_metadata_new(), *trl = nnrpc_metadata_new();
  static const uint8_t bin[] = {0, 1, 2, 0xff, 0, 'z'};
  assert_int_equal(nnrpc_metadata_add_str(hdr, "x-one", "1"), NNRPC_OK);
  assert_int_equal(nnrpc_metadata_add(hdr, "x-bin", bin, sizeof bin), NNRPC_OK);
  assert_int_equal(nnrpc_metadata_add_str(hdr, "x-dup", "a"), NNRPC_OK);
  assert_int_equal(nnrpc_metadata_add_str(hdr, "x-dup", "b"), NNRPC_OK);
  assert_int_equal(nnrpc_metadata_add_str(hdr, "authorization", "secret"), NNRPC_OK);
  assert_int_equal(nnrpc_metadata_add_str(trl, "stale", "must be cleared"), NNRPC_OK);
  NnrpcTest__EchoRequest req = NNRPC_TEST__ECHO_REQUEST__INIT;
  req.echo_headers = true;
  NnrpcTest__EchoReply *rep = NULL;
  nnrpc_call_opts o = {.timeout_ms = CALL_TIMEOUT_MS, .headers = hdr, .trailers = trl};
  nnrpc_status s = nnrpc_test__echo__echo__call(ch, &req, &rep, &o);
  assert_int_equal(s.code, NNRPC_OK);
  nnrpc_test__echo_reply__free_unpacked(rep, NULL);
  /* The handler copied the x- headers, in order, into the trailers. */
  assert_int_equal(nnrpc_metadata_count(trl), 4);
  const char *k;
  const void *v;
  size_t len;
  assert_int_equal(nnrpc_metadata_at(trl, 0, &k, &v, &len), NNRPC_OK);
  assert_string_equal(k, "x-one");
  assert_int_equal(len, 1);
  assert_memory_equal(v, "1", 1);
  assert_int_equal(nnrpc_metadata_at(trl, 1, &k, &v, &len), NNRPC_OK);
  assert_string_equal(k, "x-bin");
  assert_int_equal(len, sizeof bin);
  assert_memory_equal(v, bin, sizeof bin);
  assert_int_equal(nnrpc_metadata_at(trl, 2, &k, &v, &len), NNRPC_OK);
  assert_memory_equal(v, "a", 1);
  assert_int_equal(nnrpc_metadata_at(trl, 3, &k, &v, &len), NNRPC_OK);
  assert_memory_equal(v, "b", 1);
  assert_null(nnrpc_metadata_get(trl, "authorization", NULL));
  assert_null(nnrpc_metadata_get(trl, "stale", NULL));
  nnrpc_metadata_free(hdr);
  nnrpc_metadata_free(trl);
  nnrpc_channel_close(ch);
  th_server_stop(t);
}
static void test_metadata_headers_and_trailers_round_trip_inproc(void **st) { (void)st; metadata_round_trip("inproc"); }
static void test_metadata_headers_and_trailers_round_trip_tcp(void **st) { (void)st; metadata_round_trip("tcp"); }

static void test_headers_over_metadata_limit_are_resource_exhausted(void **st) {
  (void)st;
  th_server *t = th_server_start("inproc", NULL);
  nnrpc_channel_opts co = {.max_metadata_count = 4, .max_metadata_bytes = 64};
  nnrpc_channel *ch = th_channel(t->url, &co);
  nnrpc_metadata *hdr = nnrpc_metadata_new();
  char big[100];
  memset(big, 'v', sizeof big - 1);
  big[sizeof big - 1] = 0;
  assert_int_equal(nnrpc_metadata_add_str(hdr, "x-big", big), NNRPC_OK);
  NnrpcTest__EchoRequest req = NNRPC_TEST__ECHO_REQUEST__INIT;
  NnrpcTest__EchoReply *rep = NULL;
  nnrpc_call_opts o = {.timeout_ms = CALL_TIMEOUT_MS, .headers = hdr};
  nnrpc_status s = nnrpc_test__echo__echo__call(ch, &req, &rep, &o);
  assert_int_equal(s.code, NNRPC_RESOURCE_EXHAUSTED);
  nnrpc_metadata_clear(hdr);
  for (int i = 0; i < 5; i++) nnrpc_metadata_add_str(hdr, "x-k", "v");
  s = nnrpc_test__echo__echo__call(ch, &req, &rep, &o);
  assert_int_equal(s.code, NNRPC_RESOURCE_EXHAUSTED);
  assert_int_equal(atomic_load(&t->calls), 0);
  nnrpc_metadata_free(hdr);
  nnrpc_channel_close(ch);
  /* The server enforces its own limit on headers the client let through. */
  th_server_stop(t);
  nnrpc_server_opts so = {.max_metadata_count = 2};
  t = th_server_start("inproc", &so);
  ch = th_channel(t->url, NULL);
  hdr = nnrpc_metadata_new();
  for (int i = 0; i < 3; i++) nnrpc_metadata_add_str(hdr, "x-k", "v");
  o.headers = hdr;
  s = nnrpc_test__echo__echo__call(ch, &req, &rep, &o);
  assert_int_equal(s.code, NNRPC_RESOURCE_EXHAUSTED);
  assert_int_equal(atomic_load(&t->calls), 0);
  nnrpc_metadata_free(hdr);
  nnrpc_channel_close(ch);
  th_server_stop(t);
}

/* ---------------------------------------------------------------- concurrency */

typedef struct worker_arg {
  nnrpc_channel *ch;
  int id, n, ok;
  size_t pad; /* payload bytes past the text */
} worker_arg;

static void *hammer(void *p) {
  worker_arg *a = p;
  for (int i = 0; i < a->n; i++) {
    static _Thread_local char text[48 + (16 << 10)];
    uint64_t tag = (uint64_t)a->id << 32 | (uint64_t)i;
    int len = snprintf(text, 48, "thread %d call %d", a->id, i);
    for (size_t j = 0; j < a->pad && j < sizeof text - 48; j++) text[len++] = (char)th_pattern(tag, j);
    NnrpcTest__EchoRequest req = NNRPC_TEST__ECHO_REQUEST__INIT;
    req.payload = (ProtobufCBinaryData){(size_t)len, (uint8_t *)text};
    req.tag = tag;
    NnrpcTest__EchoReply *rep = NULL;
    nnrpc_call_opts o = with_timeout(CALL_TIMEOUT_MS * 3);
    nnrpc_status s = nnrpc_test__echo__echo__call(a->ch, &req, &rep, &o);
    if (s.code != NNRPC_OK) continue;
    /* The reply must be this request's, not a neighbour's. */
    if (rep->tag == tag && rep->payload.len == (size_t)len && memcmp(rep->payload.data, text, (size_t)len) == 0)
      a->ok++;
    nnrpc_test__echo_reply__free_unpacked(rep, NULL);
  }
  return NULL;
}

/* `threads` callers on one channel, n calls each; with `mixed`, payloads of
 * 0 to 300 bytes and, for every fourth caller, 12 KiB: small CALL frames
 * travel in batches (one caller sends the others' with its own), frames over
 * 8 KiB alone. Every reply must reach its own caller. */
static void many_threads(const char *scheme, int threads, int n, bool mixed) {
  th_server *t = th_server_start(scheme, NULL);
  nnrpc_channel *ch = th_channel(t->url, NULL);
  pthread_t th[64];
  worker_arg a[64];
  assert_true(threads <= 64);
  for (int i = 0; i < threads; i++) {
    size_t pad = !mixed ? 0 : i % 4 == 3 ? 12u << 10 : (size_t)(i % 4) * 100;
    a[i] = (worker_arg){ch, i, n, 0, pad};
    assert_int_equal(pthread_create(&th[i], NULL, hammer, &a[i]), 0);
  }
  for (int i = 0; i < threads; i++) {
    pthread_join(th[i], NULL);
    assert_int_equal(a[i].ok, n);
  }
  assert_int_equal(atomic_load(&t->calls), threads * n);
  nnrpc_channel_close(ch);
  th_server_stop(t);
}
static void eight_threads(const char *scheme) { many_threads(scheme, 8, th_count(1000), false); }
static void sixty_four_threads(const char *scheme) { many_threads(scheme, 64, th_count(200), true); }
static void test_eight_threads_thousand_calls_each_every_reply_matched_inproc(void **st) { (void)st; eight_threads("inproc"); }
static void test_eight_threads_thousand_calls_each_every_reply_matched_ipc(void **st) { (void)st; eight_threads("ipc"); }
static void test_eight_threads_thousand_calls_each_every_reply_matched_tcp(void **st) { (void)st; eight_threads("tcp"); }

static void test_sixty_four_threads_batched_small_and_lone_large_calls_every_reply_matched_tcp(void **st) {
  (void)st;
  sixty_four_threads("tcp");
}
static void test_sixty_four_threads_batched_small_and_lone_large_calls_every_reply_matched_inproc(void **st) {
  (void)st;
  sixty_four_threads("inproc");
}

typedef struct lone_call {
  nnrpc_channel *ch;
  int code;
  int64_t ms;
  int64_t timeout_ms; /* 0: 300 */
} lone_call;

static void *one_call(void *p) {
  lone_call *l = p;
  NnrpcTest__EchoRequest req = NNRPC_TEST__ECHO_REQUEST__INIT;
  NnrpcTest__EchoReply *rep = NULL;
  nnrpc_call_opts o = with_timeout(l->timeout_ms ? l->timeout_ms : 300);
  int64_t t0 = th_now_ms();
  nnrpc_status s = nnrpc_test__echo__echo__call(l->ch, &req, &rep, &o);
  l->ms = th_now_ms() - t0;
  l->code = s.code;
  if (rep) nnrpc_test__echo_reply__free_unpacked(rep, NULL);
  return NULL;
}

/* Calls queued behind a sender that cannot send (nobody listens) end by
 * their own deadlines, each with a status: none waits for another's. */
/* A caller with a short deadline is sending (nobody listens yet) while six
 * with long deadlines add theirs to its batch; the server comes up after the
 * short deadline: the six are answered, not failed with the sender. */
static void test_batched_calls_outlive_the_deadline_of_the_caller_sending_them(void **st) {
  (void)st;
  char url[64];
  th_url("tcp", url, sizeof url);
  nnrpc_channel *ch = th_channel(url, NULL);
  lone_call a = {ch, -1, 0, 100}, b[6];
  pthread_t ta, tb[6];
  assert_int_equal(pthread_create(&ta, NULL, one_call, &a), 0);
  th_sleep_ms(20); /* a is the sender, waiting for a connection */
  for (int i = 0; i < 6; i++) {
    b[i] = (lone_call){ch, -1, 0, th_slow() ? 20000 : 5000};
    assert_int_equal(pthread_create(&tb[i], NULL, one_call, &b[i]), 0);
  }
  th_sleep_ms(300);
  th_server *t = th_server_start_at(url, NULL);
  pthread_join(ta, NULL);
  assert_int_equal(a.code, NNRPC_DEADLINE_EXCEEDED);
  for (int i = 0; i < 6; i++) {
    pthread_join(tb[i], NULL);
    if (b[i].code != NNRPC_OK) fail_msg("batched call %d: %s after %lld ms", i, nnrpc_code_name(b[i].code), (long long)b[i].ms);
  }
  nnrpc_channel_close(ch);
  th_server_stop(t);
}

/* Batched calls that gave up before their batch could be sent never reach
 * the server: it runs none of them once it is up. */
static void test_batched_calls_given_up_before_sending_never_run_on_the_server(void **st) {
  (void)st;
  char url[64];
  th_url("tcp", url, sizeof url);
  nnrpc_channel *ch = th_channel(url, NULL);
  lone_call a = {ch, -1, 0, 250}, b[4];
  pthread_t ta, tb[4];
  assert_int_equal(pthread_create(&ta, NULL, one_call, &a), 0);
  th_sleep_ms(20);
  for (int i = 0; i < 4; i++) {
    b[i] = (lone_call){ch, -1, 0, 60};
    assert_int_equal(pthread_create(&tb[i], NULL, one_call, &b[i]), 0);
  }
  for (int i = 0; i < 4; i++) {
    pthread_join(tb[i], NULL);
    assert_int_equal(b[i].code, NNRPC_DEADLINE_EXCEEDED);
    assert_true(b[i].ms < (th_slow() ? 2000 : 200)); /* their own deadline, not the sender's */
  }
  pthread_join(ta, NULL);
  assert_int_equal(a.code, NNRPC_DEADLINE_EXCEEDED);
  th_server *t = th_server_start_at(url, NULL);
  lone_call probe = {ch, -1, 0, 10000};
  one_call(&probe);
  assert_int_equal(probe.code, NNRPC_OK);
  th_sleep_ms(200);
  assert_int_equal(atomic_load(&t->calls), 1); /* the probe alone */
  nnrpc_channel_close(ch);
  th_server_stop(t);
}

static void test_batched_calls_to_an_unreachable_server_each_end_near_their_deadline(void **st) {
  (void)st;
  nnrpc_channel *ch = th_channel("tcp://127.0.0.1:1", NULL);
  enum { THREADS = 16 };
  pthread_t th[THREADS];
  lone_call l[THREADS];
  for (int i = 0; i < THREADS; i++) {
    l[i] = (lone_call){ch, -1, 0, 0};
    assert_int_equal(pthread_create(&th[i], NULL, one_call, &l[i]), 0);
  }
  for (int i = 0; i < THREADS; i++) {
    pthread_join(th[i], NULL);
    if (l[i].code != NNRPC_DEADLINE_EXCEEDED && l[i].code != NNRPC_UNAVAILABLE)
      fail_msg("call %d: %s", i, nnrpc_code_name(l[i].code));
    assert_true(l[i].ms < (th_slow() ? 5000 : 1500));
  }
  nnrpc_channel_close(ch);
}

static void count_done(nnrpc_call *c, void *user) { (void)c; atomic_fetch_add((atomic_int *)user, 1); }

static void test_server_over_max_concurrent_calls_answers_resource_exhausted(void **st) {
  (void)st;
  nnrpc_server_opts so = {.max_concurrent_calls = 2, .workers = 4};
  th_server *t = th_server_start("inproc", &so);
  nnrpc_channel *ch = th_channel(t->url, NULL);
  atomic_int done = 0;
  nnrpc_call *calls[2];
  NnrpcTest__EchoRequest slow = NNRPC_TEST__ECHO_REQUEST__INIT;
  slow.delay_ms = 600;
  nnrpc_call_opts o = with_timeout(CALL_TIMEOUT_MS);
  nnrpc_completion how = {.done = count_done, .user_data = &done};
  for (int i = 0; i < 2; i++)
    assert_int_equal(nnrpc_test__echo__echo__start(ch, &slow, &o, &how, &calls[i]), NNRPC_OK);
  for (int i = 0; i < 500 && atomic_load(&t->running) < 2; i++) th_sleep_ms(2);
  assert_int_equal(atomic_load(&t->running), 2);
  NnrpcTest__EchoRequest quick = NNRPC_TEST__ECHO_REQUEST__INIT;
  NnrpcTest__EchoReply *rep = NULL;
  nnrpc_status s = nnrpc_test__echo__echo__call(ch, &quick, &rep, &o);
  assert_int_equal(s.code, NNRPC_RESOURCE_EXHAUSTED);
  /* The accepted calls are unharmed, and capacity comes back. */
  for (int i = 0; i < 2; i++) {
    for (int w = 0; w < 1000 && !nnrpc_call_is_done(calls[i]); w++) th_sleep_ms(5);
    assert_int_equal(nnrpc_test__echo__echo__finish(calls[i], NULL, NULL).code, NNRPC_OK);
  }
  s = nnrpc_test__echo__echo__call(ch, &quick, &rep, &o);
  assert_int_equal(s.code, NNRPC_OK);
  nnrpc_test__echo_reply__free_unpacked(rep, NULL);
  nnrpc_channel_close(ch);
  th_server_stop(t);
}

static void test_channel_over_max_in_flight_refuses_to_start(void **st) {
  (void)st;
  th_server *t = th_server_start("inproc", NULL);
  nnrpc_channel_opts co = {.max_in_flight = 2};
  nnrpc_channel *ch = th_channel(t->url, &co);
  atomic_int done = 0;
  nnrpc_call *calls[3];
  NnrpcTest__EchoRequest slow = NNRPC_TEST__ECHO_REQUEST__INIT;
  slow.delay_ms = 300;
  nnrpc_call_opts o = with_timeout(CALL_TIMEOUT_MS);
  nnrpc_completion how = {.done = count_done, .user_data = &done};
  assert_int_equal(nnrpc_test__echo__echo__start(ch, &slow, &o, &how, &calls[0]), NNRPC_OK);
  assert_int_equal(nnrpc_test__echo__echo__start(ch, &slow, &o, &how, &calls[1]), NNRPC_OK);
  assert_int_equal(nnrpc_test__echo__echo__start(ch, &slow, &o, &how, &calls[2]), NNRPC_RESOURCE_EXHAUSTED);
  NnrpcTest__EchoReply *rep = NULL;
  assert_int_equal(nnrpc_test__echo__echo__call(ch, &slow, &rep, &o).code, NNRPC_RESOURCE_EXHAUSTED);
  for (int w = 0; w < 2000 && atomic_load(&done) < 2; w++) th_sleep_ms(5);
  assert_int_equal(atomic_load(&done), 2);
  for (int i = 0; i < 2; i++) assert_int_equal(nnrpc_test__echo__echo__finish(calls[i], NULL, NULL).code, NNRPC_OK);
  assert_int_equal(nnrpc_test__echo__echo__call(ch, &slow, &rep, &o).code, NNRPC_OK);
  nnrpc_test__echo_reply__free_unpacked(rep, NULL);
  nnrpc_channel_close(ch);
  th_server_stop(t);
}

/* ---------------------------------------------------------------- size limits */

static nnrpc_status echo_bytes(nnrpc_channel *ch, size_t send, uint32_t reply_size) {
  uint8_t *buf = calloc(1, send ? send : 1);
  assert_non_null(buf);
  NnrpcTest__EchoRequest req = NNRPC_TEST__ECHO_REQUEST__INIT;
  req.payload = (ProtobufCBinaryData){send, buf};
  req.reply_size = reply_size;
  NnrpcTest__EchoReply *rep = NULL;
  nnrpc_call_opts o = with_timeout(CALL_TIMEOUT_MS);
  nnrpc_status s = nnrpc_test__echo__echo__call(ch, &req, &rep, &o);
  if (rep) nnrpc_test__echo_reply__free_unpacked(rep, NULL);
  free(buf);
  return s;
}

static void test_request_over_channel_max_send_is_refused_before_sending(void **st) {
  (void)st;
  th_server *t = th_server_start("inproc", NULL);
  nnrpc_channel_opts co = {.max_send_msg = 1024};
  nnrpc_channel *ch = th_channel(t->url, &co);
  assert_int_equal(echo_bytes(ch, 2048, 0).code, NNRPC_RESOURCE_EXHAUSTED);
  assert_int_equal(atomic_load(&t->calls), 0);
  assert_int_equal(echo_bytes(ch, 1000, 0).code, NNRPC_OK);
  nnrpc_channel_close(ch);
  th_server_stop(t);
}

static void test_request_over_server_max_recv_is_resource_exhausted(void **st) {
  (void)st;
  nnrpc_server_opts so = {.max_recv_msg = 1024};
  th_server *t = th_server_start("tcp", &so);
  nnrpc_channel *ch = th_channel(t->url, NULL);
  nnrpc_status s = echo_bytes(ch, 4096, 0);
  assert_int_equal(s.code, NNRPC_RESOURCE_EXHAUSTED);
  assert_int_equal(atomic_load(&t->calls), 0);
  /* The connection survives: the next call in bounds works. */
  assert_int_equal(echo_bytes(ch, 512, 0).code, NNRPC_OK);
  nnrpc_channel_close(ch);
  th_server_stop(t);
}

static void test_reply_over_client_max_recv_is_resource_exhausted(void **st) {
  (void)st;
  th_server *t = th_server_start("tcp", NULL);
  nnrpc_channel_opts co = {.max_recv_msg = 1024};
  nnrpc_channel *ch = th_channel(t->url, &co);
  assert_int_equal(echo_bytes(ch, 0, 4096).code, NNRPC_RESOURCE_EXHAUSTED);
  assert_int_equal(echo_bytes(ch, 0, 900).code, NNRPC_OK);
  nnrpc_channel_close(ch);
  th_server_stop(t);
}

static void test_reply_over_server_max_send_is_resource_exhausted(void **st) {
  (void)st;
  nnrpc_server_opts so = {.max_send_msg = 1024};
  th_server *t = th_server_start("inproc", &so);
  nnrpc_channel *ch = th_channel(t->url, NULL);
  nnrpc_status s = echo_bytes(ch, 0, 4096);
  assert_int_equal(s.code, NNRPC_RESOURCE_EXHAUSTED);
  assert_non_null(strstr(s.message, "max_send_msg"));
  assert_int_equal(echo_bytes(ch, 0, 900).code, NNRPC_OK);
  nnrpc_channel_close(ch);
  th_server_stop(t);
}

static void test_default_max_message_is_four_mib_both_ways(void **st) {
  (void)st;
  th_server *t = th_server_start("inproc", NULL);
  nnrpc_channel *ch = th_channel(t->url, NULL);
  const size_t mib4 = 4u << 20;
  assert_int_equal(echo_bytes(ch, mib4 - 64, 0).code, NNRPC_OK);
  assert_int_equal(echo_bytes(ch, mib4 + 1, 0).code, NNRPC_RESOURCE_EXHAUSTED);
  assert_int_equal(echo_bytes(ch, 0, (uint32_t)mib4 + 1).code, NNRPC_RESOURCE_EXHAUSTED);
  nnrpc_channel_close(ch);
  th_server_stop(t);
}

/* ---------------------------------------------------------------- nesting */

static nnrpc_status nest_call(nnrpc_channel *ch, int depth, uint32_t *got) {
  NnrpcTest__Node *nodes = calloc((size_t)depth, sizeof *nodes);
  assert_non_null(nodes);
  for (int i = 0; i < depth; i++) {
    nnrpc_test__node__init(&nodes[i]);
    nodes[i].child = i + 1 < depth ? &nodes[i + 1] : NULL;
  }
  NnrpcTest__Node *rep = NULL;
  nnrpc_call_opts o = with_timeout(CALL_TIMEOUT_MS);
  nnrpc_status s = nnrpc_test__echo__nest__call(ch, &nodes[0], &rep, &o);
  if (rep) {
    *got = rep->depth;
    nnrpc_test__node__free_unpacked(rep, NULL);
  }
  free(nodes);
  return s;
}

static void test_request_nested_past_max_decode_depth_is_invalid_argument(void **st) {
  (void)st;
  th_server *t = th_server_start("tcp", NULL);
  nnrpc_channel *ch = th_channel(t->url, NULL);
  uint32_t got = 0;
  assert_int_equal(nest_call(ch, 60, &got).code, NNRPC_OK);
  assert_int_equal(got, 60);
  /* Deeper than the default limit (64): refused, not a stack overflow. */
  assert_int_equal(nest_call(ch, 2000, &got).code, NNRPC_INVALID_ARGUMENT);
  assert_int_equal(nest_call(ch, 60, &got).code, NNRPC_OK);
  nnrpc_channel_close(ch);
  th_server_stop(t);
}

static void test_reply_nested_past_channel_max_decode_depth_is_refused(void **st) {
  (void)st;
  th_server *t = th_server_start("inproc", NULL);
  nnrpc_channel_opts co = {.max_decode_depth = 3};
  nnrpc_channel *ch = th_channel(t->url, &co);
  /* The server (limit 64) accepts 10 levels and sends them back; the
   * client refuses to decode more than 3. */
  uint32_t got = 0;
  nnrpc_status s = nest_call(ch, 10, &got);
  assert_int_equal(s.code, NNRPC_RESOURCE_EXHAUSTED);
  assert_non_null(strstr(s.message, "depth"));
  assert_int_equal(nest_call(ch, 3, &got).code, NNRPC_OK);
  assert_int_equal(got, 3);
  nnrpc_channel_close(ch);
  th_server_stop(t);
}

/* ---------------------------------------------------------------- services, URLs */

static void test_two_services_on_one_server_are_routed_apart(void **st) {
  (void)st;
  th_server *t = th_server_start("inproc", NULL);
  nnrpc_channel *ch = th_channel(t->url, NULL);
  NnrpcTest__EchoRequest req = NNRPC_TEST__ECHO_REQUEST__INIT;
  nnrpc_call_opts o = with_timeout(CALL_TIMEOUT_MS);
  for (uint64_t i = 1; i <= 3; i++) {
    NnrpcTest__EchoReply *rep = NULL;
    assert_int_equal(nnrpc_test__counter__next__call(ch, &req, &rep, &o).code, NNRPC_OK);
    assert_int_equal(rep->tag, i);
    nnrpc_test__echo_reply__free_unpacked(rep, NULL);
  }
  assert_int_equal(atomic_load(&t->calls), 0);
  nnrpc_channel_close(ch);
  th_server_stop(t);
}

static void test_server_serves_several_urls_at_once(void **st) {
  (void)st;
  th_server *t = th_server_start("inproc", NULL);
  char ipc[128], tcp[128];
  assert_int_equal(nnrpc_server_listen(t->srv, th_url("ipc", ipc, sizeof ipc)), NNRPC_OK);
  int rc = -1;
  for (int i = 0; i < 20 && rc; i++) rc = nnrpc_server_listen(t->srv, th_url("tcp", tcp, sizeof tcp));
  assert_int_equal(rc, NNRPC_OK);
  const char *urls[] = {t->url, ipc, tcp};
  for (int i = 0; i < 3; i++) {
    nnrpc_channel *ch = th_channel(urls[i], NULL);
    assert_int_equal(echo_bytes(ch, 10, 0).code, NNRPC_OK);
    nnrpc_channel_close(ch);
  }
  assert_int_equal(atomic_load(&t->calls), 3);
  th_server_stop(t);
  unlink(ipc + 6);
}

/* ---------------------------------------------------------------- bad arguments */

static void test_bad_arguments_get_clear_errors(void **st) {
  (void)st;
  nnrpc_channel *ch = NULL;
  assert_int_equal(nnrpc_channel_open(&ch, "nosuch://x", NULL), NNRPC_INVALID_ARGUMENT);
  assert_int_equal(nnrpc_channel_open(&ch, NULL, NULL), NNRPC_INVALID_ARGUMENT);
  assert_int_equal(nnrpc_channel_open(NULL, "inproc://x", NULL), NNRPC_INVALID_ARGUMENT);
  nnrpc_server *srv = NULL;
  assert_int_equal(nnrpc_server_open(&srv, NULL), NNRPC_OK);
  assert_int_equal(nnrpc_server_listen(srv, "nosuch://x"), NNRPC_INVALID_ARGUMENT);
  NnrpcTest__Echo_Handlers h = {0};
  assert_int_equal(nnrpc_test__echo__handlers__register(srv, &h, NULL), NNRPC_OK);
  assert_int_equal(nnrpc_test__echo__handlers__register(srv, &h, NULL), NNRPC_ALREADY_EXISTS);
  nnrpc_server_close(srv);

  th_server *t = th_server_start("inproc", NULL);
  ch = th_channel(t->url, NULL);
  nnrpc_call_opts o = with_timeout(CALL_TIMEOUT_MS);
  NnrpcTest__EchoRequest req = NNRPC_TEST__ECHO_REQUEST__INIT;
  ProtobufCMessage *rep = NULL;
  /* A Node sent to a method taking an EchoRequest. */
  NnrpcTest__Node node = NNRPC_TEST__NODE__INIT;
  nnrpc_status s = nnrpc_unary_call(ch, &nnrpc_test__echo__nnrpc_service.methods[0], &node.base, &rep, &o);
  assert_int_equal(s.code, NNRPC_INVALID_ARGUMENT);
  s = nnrpc_unary_call(ch, &nnrpc_test__echo__nnrpc_service.methods[0], NULL, &rep, &o);
  assert_int_equal(s.code, NNRPC_INVALID_ARGUMENT);
  s = nnrpc_unary_call(ch, NULL, &req.base, &rep, &o);
  assert_int_equal(s.code, NNRPC_INVALID_ARGUMENT);
  s = nnrpc_unary_call(ch, &nnrpc_test__echo__nnrpc_service.methods[0], &req.base, NULL, &o);
  assert_int_equal(s.code, NNRPC_INVALID_ARGUMENT);
  nnrpc_channel_close(ch);
  th_server_stop(t);
}

/* ---------------------------------------------------------------- shutdown */

typedef struct slow_arg {
  nnrpc_channel *ch;
  uint32_t delay_ms;
  nnrpc_status st;
} slow_arg;

static void *slow_call(void *p) {
  slow_arg *a = p;
  NnrpcTest__EchoRequest req = NNRPC_TEST__ECHO_REQUEST__INIT;
  req.delay_ms = a->delay_ms;
  NnrpcTest__EchoReply *rep = NULL;
  nnrpc_call_opts o = with_timeout(CALL_TIMEOUT_MS);
  a->st = nnrpc_test__echo__echo__call(a->ch, &req, &rep, &o);
  if (rep) nnrpc_test__echo_reply__free_unpacked(rep, NULL);
  return NULL;
}

static void *shutdown_thread(void *p) {
  nnrpc_server_shutdown(p, 3000);
  return NULL;
}

static void test_graceful_shutdown_finishes_running_calls_and_refuses_new_ones(void **st) {
  (void)st;
  th_server *t = th_server_start("tcp", NULL);
  nnrpc_channel *ch = th_channel(t->url, NULL);
  enum { N = 4 };
  pthread_t th[N];
  slow_arg a[N];
  for (int i = 0; i < N; i++) {
    a[i] = (slow_arg){ch, 500, {0, NULL}};
    pthread_create(&th[i], NULL, slow_call, &a[i]);
  }
  for (int i = 0; i < 1000 && atomic_load(&t->running) < N; i++) th_sleep_ms(2);
  assert_int_equal(atomic_load(&t->running), N);
  pthread_t sd;
  pthread_create(&sd, NULL, shutdown_thread, t->srv);
  th_sleep_ms(100);
  /* Draining: a new call is turned away at once. */
  assert_int_equal(echo_bytes(ch, 1, 0).code, NNRPC_UNAVAILABLE);
  for (int i = 0; i < N; i++) {
    pthread_join(th[i], NULL);
    assert_int_equal(a[i].st.code, NNRPC_OK);
  }
  pthread_join(sd, NULL);
  assert_int_equal(atomic_load(&t->cancelled), 0);
  nnrpc_channel_close(ch);
  th_server_stop(t);
}

static void test_shutdown_past_grace_cancels_handlers_and_clients_hear_it(void **st) {
  (void)st;
  th_server *t = th_server_start("tcp", NULL);
  nnrpc_channel *ch = th_channel(t->url, NULL);
  enum { N = 3 };
  pthread_t th[N];
  slow_arg a[N];
  for (int i = 0; i < N; i++) {
    a[i] = (slow_arg){ch, 8000, {0, NULL}};
    pthread_create(&th[i], NULL, slow_call, &a[i]);
  }
  for (int i = 0; i < 1000 && atomic_load(&t->running) < N; i++) th_sleep_ms(2);
  assert_int_equal(atomic_load(&t->running), N);
  int64_t t0 = th_now_ms();
  nnrpc_server_shutdown(t->srv, 100);
  for (int i = 0; i < N; i++) {
    pthread_join(th[i], NULL);
    /* The handler gave up with CANCELLED; the client hears exactly that. */
    assert_int_equal(a[i].st.code, NNRPC_CANCELLED);
  }
  assert_true(th_now_ms() - t0 < 3000);
  assert_int_equal(atomic_load(&t->cancelled), N);
  nnrpc_channel_close(ch);
  th_server_stop(t);
}

static void test_channel_close_fails_blocked_calls_with_cancelled(void **st) {
  (void)st;
  th_server *t = th_server_start("inproc", NULL);
  nnrpc_channel *ch = th_channel(t->url, NULL);
  slow_arg a = {ch, 5000, {0, NULL}};
  pthread_t th;
  pthread_create(&th, NULL, slow_call, &a);
  for (int i = 0; i < 1000 && atomic_load(&t->running) < 1; i++) th_sleep_ms(2);
  nnrpc_channel_close(ch);
  pthread_join(th, NULL);
  assert_int_equal(a.st.code, NNRPC_CANCELLED);
  /* The server hears of it (keepalive or cancel) and stops the handler. */
  th_server_stop(t);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_echo_round_trip_inproc),
      cmocka_unit_test(test_echo_round_trip_ipc),
      cmocka_unit_test(test_echo_round_trip_tcp),
      cmocka_unit_test(test_echo_round_trip_ws),
      cmocka_unit_test(test_empty_request_and_reply_round_trip),
      cmocka_unit_test(test_unimplemented_for_unknown_or_unhandled_method_inproc),
      cmocka_unit_test(test_unimplemented_for_unknown_or_unhandled_method_ipc),
      cmocka_unit_test(test_unimplemented_for_unknown_or_unhandled_method_tcp),
      cmocka_unit_test(test_handler_error_code_message_and_trailers_reach_client_inproc),
      cmocka_unit_test(test_handler_error_code_message_and_trailers_reach_client_tcp),
      cmocka_unit_test(test_deadline_exceeded_on_time_when_handler_is_slow_inproc),
      cmocka_unit_test(test_deadline_exceeded_on_time_when_handler_is_slow_tcp),
      cmocka_unit_test(test_deadline_exceeded_when_no_server_listens_tcp),
      cmocka_unit_test(test_deadline_exceeded_when_no_server_listens_ipc),
      cmocka_unit_test(test_deadline_exceeded_when_no_server_listens_inproc),
      cmocka_unit_test(test_channel_default_timeout_applies_to_calls_without_one),
      cmocka_unit_test(test_metadata_headers_and_trailers_round_trip_inproc),
      cmocka_unit_test(test_metadata_headers_and_trailers_round_trip_tcp),
      cmocka_unit_test(test_headers_over_metadata_limit_are_resource_exhausted),
      cmocka_unit_test(test_eight_threads_thousand_calls_each_every_reply_matched_inproc),
      cmocka_unit_test(test_eight_threads_thousand_calls_each_every_reply_matched_ipc),
      cmocka_unit_test(test_eight_threads_thousand_calls_each_every_reply_matched_tcp),
      cmocka_unit_test(test_sixty_four_threads_batched_small_and_lone_large_calls_every_reply_matched_tcp),
      cmocka_unit_test(test_sixty_four_threads_batched_small_and_lone_large_calls_every_reply_matched_inproc),
      cmocka_unit_test(test_batched_calls_to_an_unreachable_server_each_end_near_their_deadline),
      cmocka_unit_test(test_batched_calls_outlive_the_deadline_of_the_caller_sending_them),
      cmocka_unit_test(test_batched_calls_given_up_before_sending_never_run_on_the_server),
      cmocka_unit_test(test_server_over_max_concurrent_calls_answers_resource_exhausted),
      cmocka_unit_test(test_channel_over_max_in_flight_refuses_to_start),
      cmocka_unit_test(test_request_over_channel_max_send_is_refused_before_sending),
      cmocka_unit_test(test_request_over_server_max_recv_is_resource_exhausted),
      cmocka_unit_test(test_reply_over_client_max_recv_is_resource_exhausted),
      cmocka_unit_test(test_reply_over_server_max_send_is_resource_exhausted),
      cmocka_unit_test(test_default_max_message_is_four_mib_both_ways),
      cmocka_unit_test(test_request_nested_past_max_decode_depth_is_invalid_argument),
      cmocka_unit_test(test_reply_nested_past_channel_max_decode_depth_is_refused),
      cmocka_unit_test(test_two_services_on_one_server_are_routed_apart),
      cmocka_unit_test(test_server_serves_several_urls_at_once),
      cmocka_unit_test(test_bad_arguments_get_clear_errors),
      cmocka_unit_test(test_graceful_shutdown_finishes_running_calls_and_refuses_new_ones),
      cmocka_unit_test(test_shutdown_past_grace_cancels_handlers_and_clients_hear_it),
      cmocka_unit_test(test_channel_close_fails_blocked_calls_with_cancelled),
  };
  if (getenv("TEST_FILTER")) cmocka_set_test_filter(getenv("TEST_FILTER"));
  return cmocka_run_group_tests(tests, NULL, NULL);
}
