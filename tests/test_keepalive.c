/* Keepalive: a server that vanishes (SIGKILL, not a clean close) fails the
 * calls waiting on it with UNAVAILABLE long before their deadlines; a server
 * restarted on the same URL serves the same channel again; a client that
 * vanishes has its calls cancelled on the server. The peer that dies runs
 * in a child process (this binary re-executed: nanomsg is not fork-safe). */
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


/* Margin for timing bounds: valgrind slows everything down. */
static int64_t slack(int64_t ms) { return th_slow() ? ms * 5 : ms; }



/* One quick call; its status code. */
static int ping_call(nnrpc_channel *ch, int64_t timeout_ms) {
  NnrpcTest__EchoRequest req = NNRPC_TEST__ECHO_REQUEST__INIT;
  NnrpcTest__EchoReply *rep = NULL;
  nnrpc_call_opts o = {.timeout_ms = timeout_ms};
  nnrpc_status s = nnrpc_test__echo__echo__call(ch, &req, &rep, &o);
  if (rep) nnrpc_test__echo_reply__free_unpacked(rep, NULL);
  return s.code;
}

static void wait_until_served(nnrpc_channel *ch) {
  assert_int_equal(ping_call(ch, slack(10000)), NNRPC_OK);
}

typedef struct slow_arg {
  nnrpc_channel *ch;
  nnrpc_status st;
  int64_t done_ms;
} slow_arg;

static void *slow_call(void *p) {
  slow_arg *a = p;
  NnrpcTest__EchoRequest req = NNRPC_TEST__ECHO_REQUEST__INIT;
  req.delay_ms = 60000;
  NnrpcTest__EchoReply *rep = NULL;
  nnrpc_call_opts o = {.timeout_ms = 30000};
  a->st = nnrpc_test__echo__echo__call(a->ch, &req, &rep, &o);
  a->done_ms = th_now_ms();
  if (rep) nnrpc_test__echo_reply__free_unpacked(rep, NULL);
  return NULL;
}

static const nnrpc_channel_opts fast_keepalive = {.keepalive_ms = 100, .keepalive_timeout_ms = 700};

static void vanished_server(const char *scheme) {
  char url[128];
  th_url(scheme, url, sizeof url);
  pid_t pid = th_spawn_self("--serve", url);
  nnrpc_channel *ch = th_channel(url, &fast_keepalive);
  wait_until_served(ch);
  slow_arg a = {ch, {0, NULL}, 0};
  pthread_t th;
  pthread_create(&th, NULL, slow_call, &a);
  th_sleep_ms(300); /* the call reaches the handler */
  int64_t killed = th_now_ms();
  th_kill_child(pid);
  pthread_join(th, NULL);
  assert_int_equal(a.st.code, NNRPC_UNAVAILABLE);
  /* keepalive_timeout_ms is 700: far sooner than the 30 s deadline. */
  assert_true(a.done_ms - killed < slack(2500));

  /* The server comes back on the same URL: the same channel works again. */
  pid = th_spawn_self("--serve", url);
  wait_until_served(ch);
  assert_int_equal(ping_call(ch, slack(5000)), NNRPC_OK);
  nnrpc_channel_close(ch);
  th_kill_child(pid);
  if (strcmp(scheme, "ipc") == 0) unlink(url + 6);
}
static void test_vanished_server_fails_call_with_unavailable_then_restart_serves_channel_tcp(void **st) {
  (void)st;
  vanished_server("tcp");
}
static void test_vanished_server_fails_call_with_unavailable_then_restart_serves_channel_ipc(void **st) {
  (void)st;
  vanished_server("ipc");
}

/* Killed and at once restarted: the new server answers the client's ping
 * with "unknown call", so the call fails fast even though pings succeed. */
static void test_call_lost_by_restarted_server_fails_with_unavailable(void **st) {
  (void)st;
  char url[128];
  th_url("tcp", url, sizeof url);
  pid_t pid = th_spawn_self("--serve", url);
  nnrpc_channel_opts co = {.keepalive_ms = 100, .keepalive_timeout_ms = 20000};
  nnrpc_channel *ch = th_channel(url, &co);
  wait_until_served(ch);
  slow_arg a = {ch, {0, NULL}, 0};
  pthread_t th;
  pthread_create(&th, NULL, slow_call, &a);
  th_sleep_ms(300);
  th_kill_child(pid);
  int64_t killed = th_now_ms();
  pid = th_spawn_self("--serve", url);
  pthread_join(th, NULL);
  assert_int_equal(a.st.code, NNRPC_UNAVAILABLE);
  assert_true(a.done_ms - killed < slack(5000)); /* not the 20 s keepalive timeout */
  /* At most once: the call was not re-sent to the new server. */
  assert_int_equal(ping_call(ch, slack(5000)), NNRPC_OK);
  nnrpc_channel_close(ch);
  th_kill_child(pid);
}

/* A client process dies in the middle of a call: the server cancels the
 * handler within its keepalive_timeout_ms. */
static void test_server_cancels_calls_of_a_vanished_client(void **st) {
  (void)st;
  nnrpc_server_opts so = {.keepalive_timeout_ms = 500};
  th_server *t = th_server_start("tcp", &so);
  pid_t pid = th_spawn_self("--call", t->url);
  for (int i = 0; i < 1000 && atomic_load(&t->running) < 1; i++) th_sleep_ms(10);
  assert_int_equal(atomic_load(&t->running), 1);
  int64_t killed = th_now_ms();
  th_kill_child(pid);
  while (atomic_load(&t->cancelled) < 1 && th_now_ms() - killed < slack(5000)) th_sleep_ms(10);
  assert_int_equal(atomic_load(&t->cancelled), 1);
  assert_true(th_now_ms() - killed < slack(2000));
  th_server_stop(t);
}

/* A live server whose handler is slow is not mistaken for a dead one:
 * keepalive pings are answered while the call runs. */
static void test_slow_handler_on_live_server_is_not_declared_unavailable(void **st) {
  (void)st;
  th_server *t = th_server_start("tcp", NULL);
  nnrpc_channel_opts co = {.keepalive_ms = 50, .keepalive_timeout_ms = 300};
  nnrpc_channel *ch = th_channel(t->url, &co);
  NnrpcTest__EchoRequest req = NNRPC_TEST__ECHO_REQUEST__INIT;
  req.delay_ms = 1500;
  NnrpcTest__EchoReply *rep = NULL;
  nnrpc_call_opts o = {.timeout_ms = slack(10000)};
  nnrpc_status s = nnrpc_test__echo__echo__call(ch, &req, &rep, &o);
  assert_int_equal(s.code, NNRPC_OK);
  nnrpc_test__echo_reply__free_unpacked(rep, NULL);
  nnrpc_channel_close(ch);
  th_server_stop(t);
}

static int child_main(const char *mode, const char *url) {
  if (strcmp(mode, "--serve") == 0) {
    th_server *t = th_server_start_at(url, NULL);
    if (!t) return 2;
    for (int i = 0; i < 600; i++) th_sleep_ms(100); /* the parent kills us */
    th_server_stop(t);
    return 0;
  }
  nnrpc_channel *ch = NULL;
  if (nnrpc_channel_open(&ch, url, NULL)) return 2;
  slow_arg a = {ch, {0, NULL}, 0};
  slow_call(&a); /* the parent kills us meanwhile */
  nnrpc_channel_close(ch);
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 3) return child_main(argv[1], argv[2]);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_vanished_server_fails_call_with_unavailable_then_restart_serves_channel_tcp),
      cmocka_unit_test(test_vanished_server_fails_call_with_unavailable_then_restart_serves_channel_ipc),
      cmocka_unit_test(test_call_lost_by_restarted_server_fails_with_unavailable),
      cmocka_unit_test(test_server_cancels_calls_of_a_vanished_client),
      cmocka_unit_test(test_slow_handler_on_live_server_is_not_declared_unavailable),
  };
  if (getenv("TEST_FILTER")) cmocka_set_test_filter(getenv("TEST_FILTER"));
  return cmocka_run_group_tests(tests, NULL, NULL);
}
