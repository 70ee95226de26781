/* Call log and per-method statistics: every ended call is counted once under
 * its method with its final code, payload bytes and duration, and logged as
 * one line. Real sockets. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers/harness.h"

static const nnrpc_method_stats *find(const nnrpc_method_stats *st, size_t n, const char *method) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(st[i].method, method) == 0) return &st[i];
  return NULL;
}

static void test_stats_and_log_count_every_call_once_with_code_bytes_and_duration(void **state) {
  (void)state;
  FILE *log = tmpfile();
  assert_non_null(log);
  th_server *t = th_server_prepare("inproc", NULL);
  assert_int_equal(nnrpc_server_enable_stats(t->srv), NNRPC_OK);
  assert_int_equal(nnrpc_server_enable_stats(t->srv), NNRPC_ALREADY_EXISTS);
  assert_int_equal(nnrpc_server_log_calls(t->srv, log), NNRPC_OK);
  assert_int_equal(nnrpc_server_start(t->srv), NNRPC_OK);
  assert_int_equal(nnrpc_server_enable_stats(t->srv), NNRPC_ALREADY_EXISTS);
  nnrpc_channel *ch = th_channel(t->url, NULL);
  nnrpc_call_opts o = {.timeout_ms = 10000};
  uint8_t buf[100] = {0};
  uint64_t sent = 0, got = 0;
  for (int i = 0; i < 7; i++) {
    NnrpcTest__EchoRequest req = NNRPC_TEST__ECHO_REQUEST__INIT;
    req.payload = (ProtobufCBinaryData){sizeof buf, buf};
    req.fail_code = i < 2 ? NNRPC_NOT_FOUND : 0;
    req.delay_ms = i == 6 ? 30 : 0;
    NnrpcTest__EchoReply *rep = NULL;
    nnrpc_test__echo__echo__call(ch, &req, &rep, &o);
    sent += protobuf_c_message_get_packed_size(&req.base);
    if (rep) got += protobuf_c_message_get_packed_size(&rep->base);
    if (rep) nnrpc_test__echo_reply__free_unpacked(rep, NULL);
  }
  NnrpcStreamTest__RangeRequest rr = NNRPC_STREAM_TEST__RANGE_REQUEST__INIT;
  rr.count = 10;
  rr.payload_size = 50;
  nnrpc_stream *s = NULL;
  assert_int_equal(nnrpc_stream_test__streamer__range__open(ch, &rr, &o, &s).code, NNRPC_OK);
  NnrpcStreamTest__Num *m;
  while (nnrpc_stream_test__streamer__range__read(s, &m)) nnrpc_stream_test__num__free_unpacked(m, NULL);
  assert_int_equal(nnrpc_stream_test__streamer__range__finish(s, NULL).code, NNRPC_OK);
  nnrpc_channel_close(ch);

  nnrpc_method_stats st[16];
  size_t n = nnrpc_server_stats(t->srv, st, 16);
  assert_true(n >= 6 && n <= 16); /* Echo x3, Counter, Streamer x3 */
  const nnrpc_method_stats *e = find(st, n, "/nnrpc_test.Echo/Echo");
  assert_non_null(e);
  assert_int_equal(e->calls, 7);
  assert_int_equal(e->codes[NNRPC_OK], 5);
  assert_int_equal(e->codes[NNRPC_NOT_FOUND], 2);
  assert_int_equal(e->bytes_in, sent); /* exactly the encoded requests and replies */
  assert_int_equal(e->bytes_out, got);
  uint64_t in_hist = 0;
  for (int b = 0; b < NNRPC_STATS_BUCKETS; b++) in_hist += e->latency[b];
  assert_int_equal(in_hist, 7);
  assert_true(e->max_us >= 29000);                          /* the 30 ms call */
  assert_true(nnrpc_stats_quantile_us(e, 1.0) >= 29000);
  assert_true(nnrpc_stats_quantile_us(e, 0.5) <= nnrpc_stats_quantile_us(e, 1.0));
  const nnrpc_method_stats *r = find(st, n, "/nnrpc_stream_test.Streamer/Range");
  assert_non_null(r);
  assert_int_equal(r->calls, 1);
  assert_int_equal(r->codes[NNRPC_OK], 1);
  assert_true(r->bytes_out >= 10 * 50);
  assert_int_equal(find(st, n, "/nnrpc_test.Counter/Next")->calls, 0);
  th_server_stop(t);

  rewind(log);
  char line[512];
  int lines = 0, ok = 0, nf = 0;
  while (fgets(line, sizeof line, log)) {
    lines++;
    ok += strstr(line, "nnrpc: /nnrpc_test.Echo/Echo OK ") == line;
    nf += strstr(line, "nnrpc: /nnrpc_test.Echo/Echo NOT_FOUND ") == line;
    assert_non_null(strstr(line, " ms in="));
  }
  fclose(log);
  assert_int_equal(lines, 8);
  assert_int_equal(ok, 5);
  assert_int_equal(nf, 2);
}

static void test_quantiles_follow_the_histogram(void **state) {
  (void)state;
  nnrpc_method_stats st = {.method = "x"};
  assert_int_equal(nnrpc_stats_quantile_us(&st, 0.5), 0);
  st.latency[3] = 90; /* [4, 8) us */
  st.latency[10] = 10; /* [512, 1024) us */
  st.max_us = 900;
  assert_int_equal(nnrpc_stats_quantile_us(&st, 0.5), 8);
  assert_int_equal(nnrpc_stats_quantile_us(&st, 0.9), 8);
  assert_int_equal(nnrpc_stats_quantile_us(&st, 0.99), 1024);
  st.latency[NNRPC_STATS_BUCKETS - 1] = 100;
  st.max_us = 999999999;
  assert_int_equal(nnrpc_stats_quantile_us(&st, 1.0), 999999999);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_stats_and_log_count_every_call_once_with_code_bytes_and_duration),
      cmocka_unit_test(test_quantiles_follow_the_histogram),
  };
  if (getenv("TEST_FILTER")) cmocka_set_test_filter(getenv("TEST_FILTER"));
  return cmocka_run_group_tests(tests, NULL, NULL);
}
