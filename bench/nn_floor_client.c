/* The floor client: one plain (cooked) REQ socket per concurrent caller.
 * --calls N as in nnrpc-bench-client (allocation counting). */
#include <nanomsg/nn.h>
#include <nanomsg/reqrep.h>
#include <nanomsg/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

static bench_args A;
static int64_t t_start, t_end;

static void *caller(void *arg) {
  bench_hist *h = arg;
  int s = nn_socket(AF_SP, NN_REQ);
  int buf = 1 << 20, one = 1, max = 16 << 20, tmo = 10000;
  nn_setsockopt(s, NN_SOL_SOCKET, NN_SNDBUF, &buf, sizeof buf);
  nn_setsockopt(s, NN_SOL_SOCKET, NN_RCVBUF, &buf, sizeof buf);
  nn_setsockopt(s, NN_SOL_SOCKET, NN_RCVMAXSIZE, &max, sizeof max);
  nn_setsockopt(s, NN_SOL_SOCKET, NN_RCVTIMEO, &tmo, sizeof tmo);
  nn_setsockopt(s, NN_TCP, NN_TCP_NODELAY, &one, sizeof one);
  nn_connect(s, A.url);
  char *msg = malloc(A.payload ? A.payload : 1);
  memset(msg, 'x', A.payload);
  long counted = 0;
  for (;;) {
    int64_t t0 = bench_now_ns();
    if (!bench_next(&A, &t0, &t_start, &t_end, counted)) break;
    void *reply = NULL;
    bool ok = nn_send(s, msg, A.payload, 0) >= 0;
    int n = ok ? nn_recv(s, &reply, NN_MSG, 0) : -1;
    int64_t t1 = bench_now_ns();
    if (n >= 0) nn_freemsg(reply);
    if (t0 < t_start) continue;
    counted++;
    if (n == (int)A.payload)
      bench_record(h, t1 - t0);
    else
      h->errors++;
  }
  free(msg);
  nn_close(s);
  return NULL;
}

int main(int argc, char **argv) {
  bench_parse(argc, argv, &A);
  pthread_t *th = calloc((size_t)A.concurrency, sizeof *th);
  bench_hist *h = calloc((size_t)A.concurrency + 1, sizeof *h);
  t_start = bench_now_ns() + (int64_t)(A.warmup * 1e9);
  t_end = t_start + (int64_t)(A.seconds * 1e9);
  for (int i = 0; i < A.concurrency; i++) pthread_create(&th[i], NULL, caller, &h[i + 1]);
  for (int i = 0; i < A.concurrency; i++) {
    pthread_join(th[i], NULL);
    bench_merge(&h[0], &h[i + 1]);
  }
  bench_report("nn-floor", &A, &h[0], A.calls ? (double)(t_end - t_start) / 1e9 : A.seconds);
  free(th);
  free(h);
  return 0;
}
