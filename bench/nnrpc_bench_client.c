/* nnrpc echo client: C threads calling on ONE channel (one connection), or
 * with --async one thread keeping C calls in flight through a completion
 * queue. With --calls N (one thread) it makes exactly N calls after the
 * warm-up, between two marks for the allocation counter (bench/alloc_count.c):
 * its own and, with --mark-pid, the server's. */
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "echo.nnrpc.h"

static bench_args A;
static nnrpc_channel *ch;
static int64_t t_start, t_end;

static void *caller(void *arg) {
  bench_hist *h = arg;
  uint8_t *buf = malloc(A.payload ? A.payload : 1);
  memset(buf, 'x', A.payload);
  NnrpcBench__EchoRequest req = NNRPC_BENCH__ECHO_REQUEST__INIT;
  req.payload.data = buf;
  req.payload.len = A.payload;
  nnrpc_call_opts o = {.timeout_ms = 10000};
  long counted = 0;
  for (;;) {
    int64_t t0 = bench_now_ns();
    if (!bench_next(&A, &t0, &t_start, &t_end, counted)) break;
    NnrpcBench__EchoReply *r;
    nnrpc_status st = nnrpc_bench__bench__echo__call(ch, &req, &r, &o);
    int64_t t1 = bench_now_ns();
    bool ok = st.code == NNRPC_OK && r->payload.len == A.payload;
    if (st.code == NNRPC_OK) nnrpc_bench__echo_reply__free_unpacked(r, NULL);
    if (t0 < t_start) continue; /* warm-up */
    counted++;
    if (ok)
      bench_record(h, t1 - t0);
    else
      h->errors++;
  }
  free(buf);
  return NULL;
}

/* One thread, A.concurrency calls in flight; per-call latency from start to
 * completion. */
typedef struct slot {
  int64_t t0;
} slot;

static void run_async(bench_hist *h) {
  nnrpc_cq *cq;
  nnrpc_cq_open(&cq);
  uint8_t *buf = malloc(A.payload ? A.payload : 1);
  memset(buf, 'x', A.payload);
  NnrpcBench__EchoRequest req = NNRPC_BENCH__ECHO_REQUEST__INIT;
  req.payload.data = buf;
  req.payload.len = A.payload;
  nnrpc_call_opts o = {.timeout_ms = 10000};
  slot *slots = calloc((size_t)A.concurrency, sizeof *slots);
  int in_flight = 0;
  for (int i = 0; i < A.concurrency; i++) {
    nnrpc_completion how = {.cq = cq, .user_data = &slots[i]};
    slots[i].t0 = bench_now_ns();
    if (nnrpc_bench__bench__echo__start(ch, &req, &o, &how, NULL) == NNRPC_OK) in_flight++;
  }
  while (in_flight > 0) {
    struct pollfd p = {nnrpc_cq_fd(cq), POLLIN, 0};
    poll(&p, 1, 1000);
    nnrpc_call *c;
    while ((c = nnrpc_cq_next(cq, 0))) {
      slot *sl = nnrpc_call_user_data(c);
      NnrpcBench__EchoReply *r;
      nnrpc_status st = nnrpc_bench__bench__echo__finish(c, &r, NULL);
      int64_t t1 = bench_now_ns();
      in_flight--;
      bool ok = st.code == NNRPC_OK && r->payload.len == A.payload;
      if (st.code == NNRPC_OK) nnrpc_bench__echo_reply__free_unpacked(r, NULL);
      if (sl->t0 >= t_start) {
        if (ok) bench_record(h, t1 - sl->t0);
        else h->errors++;
      }
      if (t1 < t_end) {
        nnrpc_completion how = {.cq = cq, .user_data = sl};
        sl->t0 = t1;
        if (nnrpc_bench__bench__echo__start(ch, &req, &o, &how, NULL) == NNRPC_OK) in_flight++;
      }
    }
  }
  free(slots);
  free(buf);
  nnrpc_cq_close(cq);
}

int main(int argc, char **argv) {
  bench_parse(argc, argv, &A);
  if (nnrpc_channel_open(&ch, A.url, NULL)) {
    fprintf(stderr, "cannot open channel to %s\n", A.url);
    return 1;
  }
  pthread_t *th = calloc((size_t)A.concurrency, sizeof *th);
  bench_hist *h = calloc((size_t)A.concurrency + 1, sizeof *h);
  t_start = bench_now_ns() + (int64_t)(A.warmup * 1e9);
  t_end = t_start + (int64_t)(A.seconds * 1e9);
  if (A.async) {
    run_async(&h[0]);
  } else {
    for (int i = 0; i < A.concurrency; i++) pthread_create(&th[i], NULL, caller, &h[i + 1]);
    for (int i = 0; i < A.concurrency; i++) {
      pthread_join(th[i], NULL);
      bench_merge(&h[0], &h[i + 1]);
    }
  }
  bench_report(A.async ? "nnrpc-async" : "nnrpc", &A, &h[0],
               A.calls ? (double)(t_end - t_start) / 1e9 : A.seconds);
  nnrpc_channel_close(ch);
  free(th);
  free(h);
  return 0;
}
