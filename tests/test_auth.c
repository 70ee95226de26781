/* Server interceptors and bearer-token authentication: a call without the
 * right token ends UNAUTHENTICATED and its handler never runs (unary and
 * streaming); interceptors run in order, may refuse with their own status,
 * and see every call's final code; channel-wide headers (credentials) go
 * with every call. Real sockets. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers/harness.h"

#define TOKEN "s3cret-t0ken"

static nnrpc_status echo_call(nnrpc_channel *ch, const nnrpc_call_opts *extra) {
  NnrpcTest__EchoRequest req = NNRPC_TEST__ECHO_REQUEST__INIT;
  NnrpcTest__EchoReply *rep = NULL;
  nnrpc_call_opts o = extra ? *extra : (nnrpc_call_opts){0};
  o.timeout_ms = 10000;
  nnrpc_status s = nnrpc_test__echo__echo__call(ch, &req, &rep, &o);
  if (rep) nnrpc_test__echo_reply__free_unpacked(rep, NULL);
  return s;
}

static th_server *bearer_server(const char *scheme) {
  th_server *t = th_server_prepare(scheme, NULL);
  assert_int_equal(nnrpc_server_require_bearer(t->srv, TOKEN), NNRPC_OK);
  assert_int_equal(nnrpc_server_start(t->srv), NNRPC_OK);
  return t;
}

static void test_call_without_token_is_unauthenticated_and_handler_never_runs(void **st) {
  (void)st;
  th_server *t = bearer_server("tcp");
  nnrpc_channel *ch = th_channel(t->url, NULL);
  nnrpc_status s = echo_call(ch, NULL);
  assert_int_equal(s.code, NNRPC_UNAUTHENTICATED);
  assert_string_equal(s.message, "missing or invalid bearer token");
  assert_int_equal(atomic_load(&t->calls), 0);
  nnrpc_channel_close(ch);
  th_server_stop(t);
}

static void test_wrong_tokens_are_unauthenticated(void **st) {
  (void)st;
  th_server *t = bearer_server("inproc");
  const char *bad[] = {"nope", "s3cret-t0ke", "s3cret-t0ken2", "S3CRET-T0KEN", "", TOKEN " "};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    nnrpc_channel_opts co = {.bearer_token = bad[i]};
    nnrpc_channel *ch = th_channel(t->url, &co);
    assert_int_equal(echo_call(ch, NULL).code, NNRPC_UNAUTHENTICATED);
    nnrpc_channel_close(ch);
  }
  /* A token without the scheme, or another scheme, is no bearer token. */
  const char *raw[] = {TOKEN, "Basic " TOKEN, "Bearer" TOKEN, "Bearer  " TOKEN};
  nnrpc_channel *ch = th_channel(t->url, NULL);
  for (size_t i = 0; i < sizeof raw / sizeof *raw; i++) {
    nnrpc_metadata *h = nnrpc_metadata_new();
    nnrpc_metadata_add_str(h, "authorization", raw[i]);
    nnrpc_call_opts o = {.headers = h};
    assert_int_equal(echo_call(ch, &o).code, NNRPC_UNAUTHENTICATED);
    nnrpc_metadata_free(h);
  }
  assert_int_equal(atomic_load(&t->calls), 0);
  nnrpc_channel_close(ch);
  th_server_stop(t);
}

static void test_right_token_passes_from_channel_option_or_call_header(void **st) {
  (void)st;
  th_server *t = bearer_server("tcp");
  nnrpc_channel_opts co = {.bearer_token = TOKEN};
  nnrpc_channel *ch = th_channel(t->url, &co);
  for (int i = 0; i < 3; i++) assert_int_equal(echo_call(ch, NULL).code, NNRPC_OK); /* every call */
  nnrpc_channel_close(ch);
  ch = th_channel(t->url, NULL);
  nnrpc_metadata *h = nnrpc_metadata_new();
  nnrpc_metadata_add_str(h, "authorization", "bearer " TOKEN); /* the scheme is case-insensitive */
  nnrpc_call_opts o = {.headers = h};
  assert_int_equal(echo_call(ch, &o).code, NNRPC_OK);
  nnrpc_metadata_free(h);
  assert_int_equal(atomic_load(&t->calls), 4);
  nnrpc_channel_close(ch);
  th_server_stop(t);
}

static void test_streams_without_token_are_refused_before_the_handler(void **st) {
  (void)st;
  th_server *t = bearer_server("tcp");
  nnrpc_channel *ch = th_channel(t->url, NULL);
  nnrpc_call_opts o = {.timeout_ms = 10000};
  NnrpcStreamTest__RangeRequest req = NNRPC_STREAM_TEST__RANGE_REQUEST__INIT;
  req.count = 10;
  nnrpc_stream *s = NULL;
  assert_int_equal(nnrpc_stream_test__streamer__range__open(ch, &req, &o, &s).code, NNRPC_OK);
  NnrpcStreamTest__Num *m = NULL;
  assert_int_equal(nnrpc_stream_test__streamer__range__read(s, &m), 0);
  assert_int_equal(nnrpc_stream_test__streamer__range__finish(s, NULL).code, NNRPC_UNAUTHENTICATED);
  assert_int_equal(nnrpc_stream_test__streamer__chat__open(ch, &o, &s).code, NNRPC_OK);
  assert_int_equal(nnrpc_stream_test__streamer__chat__finish(s, NULL).code, NNRPC_UNAUTHENTICATED);
  assert_int_equal(atomic_load(&t->streams_started), 0);
  nnrpc_channel_close(ch);
  th_server_stop(t);
}

/* ---------------------------------------------------------------- interceptors */

typedef struct trace {
  char log[512];
  int after_codes[8];
  int64_t after_us[8];
  int n_after;
} trace;

static trace tr;

static int before_a(nnrpc_ctx *ctx, void *user) {
  (void)user;
  strcat(tr.log, "a");
  /* it sees the call: method and headers */
  if (strcmp(nnrpc_ctx_method(ctx), "/nnrpc_test.Echo/Echo") != 0) strcat(tr.log, "?");
  if (nnrpc_metadata_get(nnrpc_ctx_headers(ctx), "x-deny", NULL))
    return nnrpc_ctx_fail(ctx, NNRPC_PERMISSION_DENIED, "denied %s", nnrpc_ctx_method(ctx));
  return NNRPC_OK;
}
static int before_b(nnrpc_ctx *ctx, void *user) {
  (void)ctx;
  (void)user;
  strcat(tr.log, "b");
  return NNRPC_OK;
}
static void after_a(nnrpc_ctx *ctx, int code, int64_t us, void *user) {
  (void)ctx;
  (void)user;
  strcat(tr.log, "A");
  if (tr.n_after < 8) {
    tr.after_codes[tr.n_after] = code;
    tr.after_us[tr.n_after++] = us;
  }
}
static void after_b(nnrpc_ctx *ctx, int code, int64_t us, void *user) {
  (void)ctx;
  (void)code;
  (void)us;
  (void)user;
  strcat(tr.log, "B");
}

static void test_interceptors_run_in_order_refuse_and_see_final_codes(void **st) {
  (void)st;
  memset(&tr, 0, sizeof tr);
  nnrpc_server_opts so = {.workers = 1}; /* one call at a time: a readable log */
  th_server *t = th_server_prepare("inproc", &so);
  nnrpc_server_interceptor a = {before_a, after_a, NULL}, b = {before_b, after_b, NULL};
  assert_int_equal(nnrpc_server_add_interceptor(t->srv, &a), NNRPC_OK);
  assert_int_equal(nnrpc_server_add_interceptor(t->srv, &b), NNRPC_OK);
  nnrpc_server_interceptor none = {NULL, NULL, NULL};
  assert_int_equal(nnrpc_server_add_interceptor(t->srv, &none), NNRPC_INVALID_ARGUMENT);
  assert_int_equal(nnrpc_server_start(t->srv), NNRPC_OK);
  assert_int_equal(nnrpc_server_add_interceptor(t->srv, &a), NNRPC_FAILED_PRECONDITION);
  nnrpc_channel *ch = th_channel(t->url, NULL);

  assert_int_equal(echo_call(ch, NULL).code, NNRPC_OK); /* both run, afters in reverse */
  nnrpc_metadata *h = nnrpc_metadata_new();
  nnrpc_metadata_add_str(h, "x-deny", "1");
  nnrpc_call_opts o = {.headers = h};
  nnrpc_status s = echo_call(ch, &o); /* a refuses: b and the handler never run */
  assert_int_equal(s.code, NNRPC_PERMISSION_DENIED);
  assert_string_equal(s.message, "denied /nnrpc_test.Echo/Echo");
  nnrpc_metadata_free(h);
  NnrpcTest__EchoRequest req = NNRPC_TEST__ECHO_REQUEST__INIT;
  req.fail_code = NNRPC_NOT_FOUND;
  req.delay_ms = 20;
  NnrpcTest__EchoReply *rep = NULL;
  nnrpc_call_opts o2 = {.timeout_ms = 10000};
  assert_int_equal(nnrpc_test__echo__echo__call(ch, &req, &rep, &o2).code, NNRPC_NOT_FOUND);
  nnrpc_channel_close(ch);
  int handled = atomic_load(&t->calls);
  th_server_stop(t); /* after hooks have all run once shutdown returns */
  assert_int_equal(handled, 2); /* calls 1 and 3: the refused one never reached it */

  assert_string_equal(tr.log, "abBAaBAabBA");
  assert_int_equal(tr.n_after, 3);
  assert_int_equal(tr.after_codes[0], NNRPC_OK);
  assert_int_equal(tr.after_codes[1], NNRPC_PERMISSION_DENIED);
  assert_int_equal(tr.after_codes[2], NNRPC_NOT_FOUND);
  assert_true(tr.after_us[0] >= 0);
  assert_true(tr.after_us[2] >= 19000); /* the handler slept 20 ms (ms clock) */

}

static void test_channel_headers_go_with_every_call_before_its_own(void **st) {
  (void)st;
  th_server *t = th_server_start("inproc", NULL);
  nnrpc_metadata *chh = nnrpc_metadata_new();
  nnrpc_metadata_add_str(chh, "x-tenant", "blue");
  nnrpc_channel_opts co = {.call_headers = chh};
  nnrpc_channel *ch = th_channel(t->url, &co);
  nnrpc_metadata_free(chh); /* copied at open */
  nnrpc_metadata *h = nnrpc_metadata_new(), *trl = nnrpc_metadata_new();
  nnrpc_metadata_add_str(h, "x-call", "7");
  NnrpcTest__EchoRequest req = NNRPC_TEST__ECHO_REQUEST__INIT;
  req.echo_headers = true;
  NnrpcTest__EchoReply *rep = NULL;
  nnrpc_call_opts o = {.timeout_ms = 10000, .headers = h, .trailers = trl};
  for (int i = 0; i < 2; i++) {
    assert_int_equal(nnrpc_test__echo__echo__call(ch, &req, &rep, &o).code, NNRPC_OK);
    nnrpc_test__echo_reply__free_unpacked(rep, NULL);
    const char *k;
    const void *v;
    size_t len;
    assert_int_equal(nnrpc_metadata_count(trl), 2);
    nnrpc_metadata_at(trl, 0, &k, &v, &len);
    assert_string_equal(k, "x-tenant");
    nnrpc_metadata_at(trl, 1, &k, &v, &len);
    assert_string_equal(k, "x-call");
  }
  nnrpc_metadata_free(h);
  nnrpc_metadata_free(trl);
  nnrpc_channel_close(ch);
  /* Channel headers count against the metadata limits. */
  nnrpc_metadata *big = nnrpc_metadata_new();
  for (int i = 0; i < 3; i++) nnrpc_metadata_add_str(big, "x-k", "v");
  nnrpc_channel_opts small = {.call_headers = big, .max_metadata_count = 2};
  nnrpc_channel *bad = NULL;
  assert_int_equal(nnrpc_channel_open(&bad, t->url, &small), NNRPC_INVALID_ARGUMENT);
  small.max_metadata_count = 4;
  bad = th_channel(t->url, &small);
  nnrpc_metadata *two = nnrpc_metadata_new();
  nnrpc_metadata_add_str(two, "x-a", "1");
  nnrpc_metadata_add_str(two, "x-b", "2");
  nnrpc_call_opts o3 = {.headers = two};
  assert_int_equal(echo_call(bad, &o3).code, NNRPC_RESOURCE_EXHAUSTED); /* 3 + 2 > 4 */
  nnrpc_metadata_free(two);
  nnrpc_metadata_free(big);
  nnrpc_channel_close(bad);
  th_server_stop(t);
}

/* ---------------------------------------------------------------- client interceptors */

typedef struct client_trace {
  int befores, afters;
  int last_code;
  char last_method[64];
  int64_t last_us;
} client_trace;

static int client_before(nnrpc_client_call *call, nnrpc_metadata *extra, void *user) {
  client_trace *t = user;
  t->befores++;
  if (strstr(call->method, "Counter")) {
    call->reject_message = "counters are off limits";
    return NNRPC_PERMISSION_DENIED;
  }
  assert_true(call->timeout_ms > 0 && call->timeout_ms <= 10000);
  return nnrpc_metadata_add_str(extra, "x-trace", "42");
}

static void client_after(const char *method, int code, int64_t us, void *user) {
  client_trace *t = user;
  t->afters++;
  t->last_code = code;
  t->last_us = us;
  snprintf(t->last_method, sizeof t->last_method, "%s", method);
}

static void done_noop(nnrpc_call *c, void *u) {
  (void)c;
  (void)u;
}

static void test_client_interceptors_add_headers_refuse_calls_and_see_outcomes(void **st) {
  (void)st;
  th_server *t = th_server_start("inproc", NULL);
  client_trace tr2 = {0};
  nnrpc_client_interceptor ic = {client_before, client_after, &tr2};
  nnrpc_channel_opts co = {.interceptors = &ic, .n_interceptors = 1};
  nnrpc_channel *ch = th_channel(t->url, &co);
  /* unary: the header reaches the server (echoed back as a trailer) */
  nnrpc_metadata *trl = nnrpc_metadata_new();
  NnrpcTest__EchoRequest req = NNRPC_TEST__ECHO_REQUEST__INIT;
  req.echo_headers = true;
  NnrpcTest__EchoReply *rep = NULL;
  nnrpc_call_opts o = {.timeout_ms = 10000, .trailers = trl};
  assert_int_equal(nnrpc_test__echo__echo__call(ch, &req, &rep, &o).code, NNRPC_OK);
  nnrpc_test__echo_reply__free_unpacked(rep, NULL);
  assert_string_equal(nnrpc_metadata_get(trl, "x-trace", NULL), "42");
  assert_int_equal(tr2.afters, 1);
  assert_int_equal(tr2.last_code, NNRPC_OK);
  assert_string_equal(tr2.last_method, "/nnrpc_test.Echo/Echo");
  /* refused locally: nothing sent, the handler never runs */
  nnrpc_status s = nnrpc_test__counter__next__call(ch, &req, &rep, &o);
  assert_int_equal(s.code, NNRPC_PERMISSION_DENIED);
  assert_string_equal(s.message, "counters are off limits");
  assert_int_equal(atomic_load(&t->counter), 0);
  assert_int_equal(tr2.last_code, NNRPC_PERMISSION_DENIED);
  nnrpc_call *call = NULL;
  nnrpc_completion how = {.done = done_noop};
  assert_int_equal(nnrpc_test__counter__next__start(ch, &req, &o, &how, &call), NNRPC_PERMISSION_DENIED);
  /* async: after runs at finish */
  req.fail_code = NNRPC_NOT_FOUND;
  assert_int_equal(nnrpc_test__echo__echo__start(ch, &req, &o, &how, &call), NNRPC_OK);
  for (int i = 0; i < 1000 && !nnrpc_call_is_done(call); i++) th_sleep_ms(2);
  int afters = tr2.afters;
  assert_int_equal(nnrpc_test__echo__echo__finish(call, NULL, NULL).code, NNRPC_NOT_FOUND);
  assert_int_equal(tr2.afters, afters + 1);
  assert_int_equal(tr2.last_code, NNRPC_NOT_FOUND);
  /* streams: before at open, after at finish */
  NnrpcStreamTest__RangeRequest rr = NNRPC_STREAM_TEST__RANGE_REQUEST__INIT;
  rr.count = 3;
  nnrpc_stream *strm = NULL;
  assert_int_equal(nnrpc_stream_test__streamer__range__open(ch, &rr, &o, &strm).code, NNRPC_OK);
  NnrpcStreamTest__Num *m;
  while (nnrpc_stream_test__streamer__range__read(strm, &m)) nnrpc_stream_test__num__free_unpacked(m, NULL);
  assert_int_equal(nnrpc_stream_test__streamer__range__finish(strm, NULL).code, NNRPC_OK);
  assert_string_equal(tr2.last_method, "/nnrpc_stream_test.Streamer/Range");
  assert_int_equal(tr2.befores, 5);
  assert_int_equal(tr2.afters, 4); /* the refused async start never began */
  nnrpc_metadata_free(trl);
  nnrpc_channel_close(ch);
  th_server_stop(t);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_call_without_token_is_unauthenticated_and_handler_never_runs),
      cmocka_unit_test(test_wrong_tokens_are_unauthenticated),
      cmocka_unit_test(test_right_token_passes_from_channel_option_or_call_header),
      cmocka_unit_test(test_streams_without_token_are_refused_before_the_handler),
      cmocka_unit_test(test_interceptors_run_in_order_refuse_and_see_final_codes),
      cmocka_unit_test(test_channel_headers_go_with_every_call_before_its_own),
      cmocka_unit_test(test_client_interceptors_add_headers_refuse_calls_and_see_outcomes),
  };
  if (getenv("TEST_FILTER")) cmocka_set_test_filter(getenv("TEST_FILTER"));
  return cmocka_run_group_tests(tests, NULL, NULL);
}
