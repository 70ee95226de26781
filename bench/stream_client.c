/* Streaming throughput at the receiver: counts messages arriving during
 * --seconds after --warmup, from an nnrpc server stream (Bench.Flood) or
 * from a bare nanomsg PUSH socket (nn-push), and prints one JSON line.
 *   stream-client --impl nnrpc|nn --url URL [--payload 32] [--seconds 2] [--warmup 0.5] */
#include <nanomsg/nn.h>
#include <nanomsg/pipeline.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "echo.nnrpc.h"

typedef struct counter {
  int64_t warmup_ns, len_ns; /* from the command line */
  int64_t start_ns, end_ns;  /* set at the first message: the clock starts when the stream flows */
  uint64_t msgs;
} counter;

/* Called once per message; true while the measurement goes on. */
static bool tick(counter *c) {
  int64_t now = bench_now_ns();
  if (!c->start_ns) {
    c->start_ns = now + c->warmup_ns;
    c->end_ns = c->start_ns + c->len_ns;
  }
  if (now >= c->start_ns && now < c->end_ns) c->msgs++;
  return now < c->end_ns;
}

static int run_nn(const char *url, counter *c) {
  int s = nn_socket(AF_SP, NN_PULL);
  int tmo = 5000; /* a plain stream: nanomsg's defaults (Nagle on, it batches) */
  nn_setsockopt(s, NN_SOL_SOCKET, NN_RCVTIMEO, &tmo, sizeof tmo);
  if (s < 0 || nn_connect(s, url) < 0) return 1;
  void *m;
  int n;
  while ((n = nn_recv(s, &m, NN_MSG, 0)) >= 0) {
    nn_freemsg(m);
    if (!tick(c)) break;
  }
  nn_close(s);
  return n < 0 ? 1 : 0;
}

static int run_nnrpc(const char *url, size_t size, counter *c) {
  nnrpc_channel *ch;
  if (nnrpc_channel_open(&ch, url, NULL)) return 1;
  NnrpcBench__FloodRequest req = NNRPC_BENCH__FLOOD_REQUEST__INIT;
  req.size = (uint32_t)size;
  nnrpc_call_opts o = {.timeout_ms = 60000};
  nnrpc_stream *st;
  nnrpc_status s = nnrpc_bench__bench__flood__open(ch, &req, &o, &st);
  if (s.code) {
    fprintf(stderr, "open: %s: %s\n", nnrpc_code_name(s.code), s.message);
    return 1;
  }
  NnrpcBench__EchoReply *r;
  while (nnrpc_bench__bench__flood__read(st, &r)) {
    nnrpc_bench__echo_reply__free_unpacked(r, NULL);
    if (!tick(c)) break;
  }
  nnrpc_stream_cancel(st);
  s = nnrpc_bench__bench__flood__finish(st, NULL);
  nnrpc_channel_close(ch);
  return s.code == NNRPC_CANCELLED || s.code == NNRPC_OK ? 0 : 1;
}

int main(int argc, char **argv) {
  const char *impl = NULL, *url = NULL;
  size_t payload = 32;
  double seconds = 2, warmup = 0.5;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--impl")) impl = argv[i + 1];
    else if (!strcmp(argv[i], "--url")) url = argv[i + 1];
    else if (!strcmp(argv[i], "--payload")) payload = strtoul(argv[i + 1], NULL, 10);
    else if (!strcmp(argv[i], "--seconds")) seconds = atof(argv[i + 1]);
    else if (!strcmp(argv[i], "--warmup")) warmup = atof(argv[i + 1]);
  }
  if (!impl || !url || (strcmp(impl, "nn") && strcmp(impl, "nnrpc"))) {
    fprintf(stderr, "usage: %s --impl nnrpc|nn --url URL [--payload N] [--seconds S] [--warmup S]\n", argv[0]);
    return 2;
  }
  counter c = {(int64_t)(warmup * 1e9), (int64_t)(seconds * 1e9), 0, 0, 0};
  int rc = strcmp(impl, "nn") == 0 ? run_nn(url, &c) : run_nnrpc(url, payload, &c);
  if (rc) {
    fprintf(stderr, "%s: %s failed\n", argv[0], impl);
    return 1;
  }
  double secs = (double)c.len_ns / 1e9;
  printf("{\"impl\":\"%s\",\"payload\":%zu,\"msgs_per_s\":%.0f,\"mib_per_s\":%.1f}\n",
         strcmp(impl, "nn") == 0 ? "nn-pushpull" : "nnrpc-stream", payload, (double)c.msgs / secs,
         (double)c.msgs * (double)payload / secs / 1048576.0);
  return 0;
}
