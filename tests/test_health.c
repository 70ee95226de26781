/* The health service: Check for the server and its services, statuses set
 * by the application, Watch streaming every change, NOT_SERVING (still
 * answered) during a graceful shutdown while other calls are turned away. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "helpers/harness.h"
#include "nnrpc/health.pb-c.h"

static th_server *health_server(void) {
  th_server *t = th_server_prepare("tcp", NULL);
  assert_int_equal(nnrpc_server_enable_health(t->srv), NNRPC_OK);
  assert_int_equal(nnrpc_server_enable_health(t->srv), NNRPC_ALREADY_EXISTS);
  assert_int_equal(nnrpc_server_start(t->srv), NNRPC_OK);
  return t;
}

static int check(nnrpc_channel *ch, const char *service, int *status) {
  nnrpc_call_opts o = {.timeout_ms = 10000};
  return nnrpc_health_check(ch, service, status, &o).code;
}

static void test_check_answers_serving_for_the_server_and_its_services(void **st) {
  (void)st;
  th_server *t = health_server();
  nnrpc_channel *ch = th_channel(t->url, NULL);
  int s = -1;
  assert_int_equal(check(ch, "", &s), NNRPC_OK);
  assert_int_equal(s, NNRPC_HEALTH_SERVING);
  assert_int_equal(check(ch, NULL, &s), NNRPC_OK);
  assert_int_equal(s, NNRPC_HEALTH_SERVING);
  assert_int_equal(check(ch, "nnrpc_test.Echo", &s), NNRPC_OK);
  assert_int_equal(s, NNRPC_HEALTH_SERVING);
  assert_int_equal(check(ch, "nnrpc.health.v1.Health", &s), NNRPC_OK);
  assert_int_equal(check(ch, "no.Such", &s), NNRPC_NOT_FOUND);
  nnrpc_channel_close(ch);
  th_server_stop(t);
}

static void test_statuses_set_by_the_application_are_what_check_answers(void **st) {
  (void)st;
  th_server *t = health_server();
  nnrpc_channel *ch = th_channel(t->url, NULL);
  int s = -1;
  assert_int_equal(nnrpc_server_set_health(t->srv, "nnrpc_test.Echo", NNRPC_HEALTH_NOT_SERVING), NNRPC_OK);
  assert_int_equal(check(ch, "nnrpc_test.Echo", &s), NNRPC_OK);
  assert_int_equal(s, NNRPC_HEALTH_NOT_SERVING);
  assert_int_equal(check(ch, "nnrpc_test.Counter", &s), NNRPC_OK); /* others unchanged */
  assert_int_equal(s, NNRPC_HEALTH_SERVING);
  assert_int_equal(nnrpc_server_set_health(t->srv, "nnrpc_test.Echo", NNRPC_HEALTH_SERVING), NNRPC_OK);
  assert_int_equal(check(ch, "nnrpc_test.Echo", &s), NNRPC_OK);
  assert_int_equal(s, NNRPC_HEALTH_SERVING);
  /* A status set for a name the server does not serve makes it known. */
  assert_int_equal(nnrpc_server_set_health(t->srv, "external.Db", NNRPC_HEALTH_NOT_SERVING), NNRPC_OK);
  assert_int_equal(check(ch, "external.Db", &s), NNRPC_OK);
  assert_int_equal(s, NNRPC_HEALTH_NOT_SERVING);
  assert_int_equal(nnrpc_server_set_health(t->srv, "x", 7), NNRPC_INVALID_ARGUMENT);
  assert_int_equal(nnrpc_server_set_health(t->srv, NULL, 1), NNRPC_INVALID_ARGUMENT);
  assert_int_equal(nnrpc_server_enable_health(t->srv), NNRPC_FAILED_PRECONDITION);
  nnrpc_channel_close(ch);
  th_server_stop(t);
}

static int watch_next(nnrpc_stream *s) {
  ProtobufCMessage *m = NULL;
  if (!nnrpc_stream_read(s, &m)) return -1;
  int v = (int)((Nnrpc__Health__V1__HealthCheckResponse *)m)->status;
  protobuf_c_message_free_unpacked(m, NULL);
  return v;
}

static nnrpc_stream *watch(nnrpc_channel *ch, const char *service) {
  Nnrpc__Health__V1__HealthCheckRequest req = NNRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
  req.service = (char *)service;
  nnrpc_call_opts o = {.timeout_ms = 20000};
  nnrpc_stream *s = NULL;
  assert_int_equal(nnrpc_stream_open(ch, &nnrpc_health_service()->methods[1], &req.base, &o, &s).code, NNRPC_OK);
  return s;
}

static void test_watch_streams_the_status_then_every_change(void **st) {
  (void)st;
  th_server *t = health_server();
  nnrpc_channel *ch = th_channel(t->url, NULL);
  nnrpc_stream *s = watch(ch, "nnrpc_test.Echo");
  assert_int_equal(watch_next(s), NNRPC_HEALTH_SERVING);
  nnrpc_server_set_health(t->srv, "nnrpc_test.Echo", NNRPC_HEALTH_NOT_SERVING);
  assert_int_equal(watch_next(s), NNRPC_HEALTH_NOT_SERVING);
  nnrpc_server_set_health(t->srv, "nnrpc_test.Counter", NNRPC_HEALTH_NOT_SERVING); /* not ours */
  nnrpc_server_set_health(t->srv, "nnrpc_test.Echo", NNRPC_HEALTH_SERVING);
  assert_int_equal(watch_next(s), NNRPC_HEALTH_SERVING);
  nnrpc_stream *u = watch(ch, "no.Such");
  assert_int_equal(watch_next(u), NNRPC_HEALTH_SERVICE_UNKNOWN);
  nnrpc_stream_cancel(u);
  assert_int_equal(nnrpc_stream_finish(u, NULL, NULL).code, NNRPC_CANCELLED);
  nnrpc_stream_cancel(s);
  assert_int_equal(nnrpc_stream_finish(s, NULL, NULL).code, NNRPC_CANCELLED);
  nnrpc_channel_close(ch);
  th_server_stop(t);
}

static void *slow_echo(void *p) {
  NnrpcTest__EchoRequest req = NNRPC_TEST__ECHO_REQUEST__INIT;
  req.delay_ms = 700;
  NnrpcTest__EchoReply *rep = NULL;
  nnrpc_call_opts o = {.timeout_ms = 10000};
  nnrpc_status *out = malloc(sizeof *out);
  *out = nnrpc_test__echo__echo__call(p, &req, &rep, &o);
  if (rep) nnrpc_test__echo_reply__free_unpacked(rep, NULL);
  return out;
}

static void *shutdown_main(void *srv) {
  nnrpc_server_shutdown(srv, 5000);
  return NULL;
}

static void test_graceful_shutdown_turns_health_not_serving_and_still_answers_checks(void **st) {
  (void)st;
  th_server *t = health_server();
  nnrpc_channel *ch = th_channel(t->url, NULL);
  nnrpc_stream *s = watch(ch, "");
  assert_int_equal(watch_next(s), NNRPC_HEALTH_SERVING);
  pthread_t slow, sd;
  pthread_create(&slow, NULL, slow_echo, ch); /* keeps the server draining a while */
  for (int i = 0; i < 500 && atomic_load(&t->running) < 1; i++) th_sleep_ms(2);
  pthread_create(&sd, NULL, shutdown_main, t->srv);
  assert_int_equal(watch_next(s), NNRPC_HEALTH_NOT_SERVING); /* the watcher hears it */
  int status = -1;
  assert_int_equal(check(ch, "", &status), NNRPC_OK); /* checks still answered... */
  assert_int_equal(status, NNRPC_HEALTH_NOT_SERVING);
  NnrpcTest__EchoRequest req = NNRPC_TEST__ECHO_REQUEST__INIT;
  NnrpcTest__EchoReply *rep = NULL;
  nnrpc_call_opts o = {.timeout_ms = 10000};
  assert_int_equal(nnrpc_test__echo__echo__call(ch, &req, &rep, &o).code, NNRPC_UNAVAILABLE); /* ...calls not */
  nnrpc_status *r;
  pthread_join(slow, (void **)&r);
  assert_int_equal(r->code, NNRPC_OK); /* the running call finished within the grace */
  free(r);
  nnrpc_stream_cancel(s); /* the watch ends; the shutdown can complete */
  nnrpc_stream_finish(s, NULL, NULL);
  pthread_join(sd, NULL);
  nnrpc_channel_close(ch);
  th_server_stop(t);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_check_answers_serving_for_the_server_and_its_services),
      cmocka_unit_test(test_statuses_set_by_the_application_are_what_check_answers),
      cmocka_unit_test(test_watch_streams_the_status_then_every_change),
      cmocka_unit_test(test_graceful_shutdown_turns_health_not_serving_and_still_answers_checks),
  };
  if (getenv("TEST_FILTER")) cmocka_set_test_filter(getenv("TEST_FILTER"));
  return cmocka_run_group_tests(tests, NULL, NULL);
}
