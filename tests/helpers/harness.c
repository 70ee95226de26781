/* Test fixtures (see harness.h). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers/harness.h"

extern char **environ;

pid_t th_spawn_self(const char *mode, const char *url) {
  char self[4096];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  assert_true(n > 0);
  self[n] = 0;
  char *argv[] = {self, (char *)mode, (char *)url, NULL};
  pid_t pid;
  assert_int_equal(posix_spawn(&pid, self, NULL, NULL, argv, environ), 0);
  return pid;
}

void th_kill_child(pid_t pid) {
  kill(pid, SIGKILL);
  int status;
  waitpid(pid, &status, 0);
}

int64_t th_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void th_sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

bool th_slow(void) {
  const char *s = getenv("NNRPC_TEST_SLOW");
  return s && *s && strcmp(s, "0") != 0;
}

int th_count(int n) {
  if (!th_slow()) return n;
  return n / 10 > 0 ? n / 10 : 1;
}

static atomic_int url_seq;

char *th_url(const char *scheme, char *buf, size_t n) {
  int seq = atomic_fetch_add(&url_seq, 1);
  long pid = (long)getpid();
  if (strcmp(scheme, "tcp") == 0 || strcmp(scheme, "ws") == 0) {
    /* A port derived from pid and sequence; listen retries on a clash. */
    int port = 20000 + (int)((pid * 37 + seq * 101 + th_now_ms()) % 30000);
    snprintf(buf, n, "%s://127.0.0.1:%d", scheme, port);
  } else if (strcmp(scheme, "ipc") == 0) {
    snprintf(buf, n, "ipc:///tmp/nnrpc-test-%ld-%d.ipc", pid, seq);
  } else {
    snprintf(buf, n, "inproc://nnrpc-test-%ld-%d", pid, seq);
  }
  return buf;
}

/* ---------------------------------------------------------------- Echo */

static int echo(nnrpc_ctx *ctx, const NnrpcTest__EchoRequest *req, NnrpcTest__EchoReply *reply) {
  th_server *t = nnrpc_ctx_user_data(ctx);
  atomic_fetch_add(&t->calls, 1);
  atomic_fetch_add(&t->running, 1);
  int rc = NNRPC_OK;
  if (req->delay_ms) {
    int64_t until = th_now_ms() + req->delay_ms;
    while (th_now_ms() < until) {
      if (nnrpc_ctx_is_cancelled(ctx)) {
        atomic_fetch_add(&t->cancelled, 1);
        rc = NNRPC_CANCELLED;
        goto out;
      }
      th_sleep_ms(1);
    }
  }
  if (req->echo_headers) {
    const nnrpc_metadata *h = nnrpc_ctx_headers(ctx);
    for (size_t i = 0; i < nnrpc_metadata_count(h); i++) {
      const char *k;
      const void *v;
      size_t len;
      nnrpc_metadata_at(h, i, &k, &v, &len);
      if (strncmp(k, "x-", 2) == 0) nnrpc_ctx_add_trailer(ctx, k, v, len);
    }
  }
  if (req->fail_code) {
    rc = nnrpc_ctx_fail(ctx, req->fail_code, "%s", req->fail_message);
    goto out;
  }
  reply->tag = req->tag;
  reply->note = nnrpc_ctx_strdup(ctx, nnrpc_ctx_method(ctx));
  if (req->reply_size) {
    uint8_t *p = nnrpc_ctx_alloc(ctx, req->reply_size);
    if (!p) {
      rc = NNRPC_RESOURCE_EXHAUSTED;
      goto out;
    }
    for (size_t i = 0; i < req->reply_size; i++) p[i] = th_pattern(req->tag, i);
    reply->payload.data = p;
    reply->payload.len = req->reply_size;
  } else {
    reply->payload = req->payload; /* the request outlives the reply's send */
  }
out:
  atomic_fetch_sub(&t->running, 1);
  return rc;
}

static int nest(nnrpc_ctx *ctx, const NnrpcTest__Node *req, NnrpcTest__Node *reply) {
  uint32_t d = 0;
  for (const NnrpcTest__Node *n = req; n; n = n->child) d++;
  reply->depth = d;
  reply->child = req->child; /* the request outlives the reply's send */
  reply->n_kids = req->n_kids;
  reply->kids = req->kids;
  return NNRPC_OK;
}

static int counter_next(nnrpc_ctx *ctx, const NnrpcTest__EchoRequest *req, NnrpcTest__EchoReply *reply) {
  th_server *t = nnrpc_ctx_user_data(ctx);
  reply->tag = (uint64_t)atomic_fetch_add(&t->counter, 1) + 1;
  return NNRPC_OK;
}

/* ---------------------------------------------------------------- Streamer */

static int stream_end(nnrpc_ctx *ctx, th_server *t, int code) {
  if (nnrpc_ctx_is_cancelled(ctx)) {
    atomic_fetch_add(&t->streams_cancelled, 1);
    code = NNRPC_CANCELLED;
  }
  atomic_fetch_add(&t->streams_ended, 1);
  return code;
}

static int sum(nnrpc_ctx *ctx, NnrpcStreamTest__Total *reply) {
  th_server *t = nnrpc_ctx_user_data(ctx);
  atomic_fetch_add(&t->streams_started, 1);
  NnrpcStreamTest__Num *m;
  while (nnrpc_stream_test__streamer__sum__recv(ctx, &m)) {
    bool fail = m->fail;
    uint32_t delay = m->delay_ms;
    reply->sum += m->value;
    nnrpc_stream_test__num__free_unpacked(m, NULL);
    if (fail)
      return stream_end(ctx, t, nnrpc_ctx_fail(ctx, NNRPC_FAILED_PRECONDITION, "fail requested after %llu",
                                               (unsigned long long)reply->count));
    reply->count++;
    if (delay) th_sleep_ms((int)delay);
  }
  return stream_end(ctx, t, NNRPC_OK);
}

static int range(nnrpc_ctx *ctx, const NnrpcStreamTest__RangeRequest *req) {
  th_server *t = nnrpc_ctx_user_data(ctx);
  atomic_fetch_add(&t->streams_started, 1);
  uint8_t *buf = req->payload_size ? malloc(req->payload_size) : NULL;
  for (size_t i = 0; i < req->payload_size; i++) buf[i] = th_pattern((uint64_t)req->start, i);
  int rc = NNRPC_OK;
  for (uint64_t i = 0; req->forever || i < req->count; i++) {
    if (req->fail_after && i == req->fail_after) {
      rc = nnrpc_ctx_fail(ctx, req->fail_code, "failing after %llu messages", (unsigned long long)i);
      break;
    }
    if (req->delay_ms) th_sleep_ms((int)req->delay_ms);
    NnrpcStreamTest__Num n = NNRPC_STREAM_TEST__NUM__INIT;
    n.value = req->start + (int64_t)i;
    n.payload = (ProtobufCBinaryData){req->payload_size, buf};
    rc = nnrpc_stream_test__streamer__range__send(ctx, &n);
    if (rc != NNRPC_OK) break;
  }
  free(buf);
  return stream_end(ctx, t, rc);
}

static int chat(nnrpc_ctx *ctx) {
  th_server *t = nnrpc_ctx_user_data(ctx);
  atomic_fetch_add(&t->streams_started, 1);
  NnrpcStreamTest__Num *m;
  int rc = NNRPC_OK;
  while (rc == NNRPC_OK && nnrpc_stream_test__streamer__chat__recv(ctx, &m)) {
    if (m->fail) {
      rc = nnrpc_ctx_fail(ctx, NNRPC_ABORTED, "fail requested at %lld", (long long)m->value);
    } else {
      if (m->delay_ms) th_sleep_ms((int)m->delay_ms);
      NnrpcStreamTest__Num n = NNRPC_STREAM_TEST__NUM__INIT;
      n.value = m->value;
      n.payload = m->payload;
      rc = nnrpc_stream_test__streamer__chat__send(ctx, &n);
    }
    nnrpc_stream_test__num__free_unpacked(m, NULL);
  }
  return stream_end(ctx, t, rc);
}

static th_server *server_new(const nnrpc_server_opts *opts) {
  th_server *t = calloc(1, sizeof *t);
  if (!t) return NULL;
  NnrpcTest__Echo_Handlers eh = {.echo = echo, .nest = nest};
  NnrpcTest__Counter_Handlers ch = {.next = counter_next};
  NnrpcStreamTest__Streamer_Handlers sh = {.sum = sum, .range = range, .chat = chat};
  if (nnrpc_server_open(&t->srv, opts) || nnrpc_test__echo__handlers__register(t->srv, &eh, t) ||
      nnrpc_stream_test__streamer__handlers__register(t->srv, &sh, t) ||
      nnrpc_test__counter__handlers__register(t->srv, &ch, t)) {
    nnrpc_server_close(t->srv);
    free(t);
    return NULL;
  }
  return t;
}

th_server *th_server_prepare(const char *scheme, const nnrpc_server_opts *opts) {
  th_server *t = server_new(opts);
  assert_non_null(t);
  int rc = -1;
  for (int attempt = 0; attempt < 20 && rc != NNRPC_OK; attempt++)
    rc = nnrpc_server_listen(t->srv, th_url(scheme, t->url, sizeof t->url));
  assert_int_equal(rc, NNRPC_OK);
  return t;
}

th_server *th_server_start(const char *scheme, const nnrpc_server_opts *opts) {
  th_server *t = th_server_prepare(scheme, opts);
  assert_int_equal(nnrpc_server_start(t->srv), NNRPC_OK);
  return t;
}

th_server *th_server_start_at(const char *url, const nnrpc_server_opts *opts) {
  th_server *t = server_new(opts);
  if (!t) return NULL;
  snprintf(t->url, sizeof t->url, "%s", url);
  if (nnrpc_server_listen(t->srv, url) || nnrpc_server_start(t->srv)) {
    nnrpc_server_close(t->srv);
    free(t);
    return NULL;
  }
  return t;
}

void th_server_stop(th_server *t) {
  if (!t) return;
  nnrpc_server_close(t->srv);
  if (strncmp(t->url, "ipc://", 6) == 0) unlink(t->url + 6);
  free(t);
}

nnrpc_channel *th_channel(const char *url, const nnrpc_channel_opts *opts) {
  nnrpc_channel *ch = NULL;
  assert_int_equal(nnrpc_channel_open(&ch, url, opts), NNRPC_OK);
  return ch;
}
