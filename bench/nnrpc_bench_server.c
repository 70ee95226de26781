/* nnrpc echo server for benchmarks: runs until SIGINT/SIGTERM. */
#include <stdio.h>

#include "common.h"
#include "echo.nnrpc.h"

static int echo(nnrpc_ctx *ctx, const NnrpcBench__EchoRequest *req, NnrpcBench__EchoReply *reply) {
  (void)ctx;
  reply->payload = req->payload; /* the request lives until the reply is sent */
  return NNRPC_OK;
}

static int flood(nnrpc_ctx *ctx, const NnrpcBench__FloodRequest *req) {
  static const uint8_t zeros[65536];
  NnrpcBench__EchoReply r = NNRPC_BENCH__ECHO_REPLY__INIT;
  r.payload = (ProtobufCBinaryData){req->size < sizeof zeros ? req->size : sizeof zeros, (uint8_t *)zeros};
  for (uint64_t i = 0; req->count == 0 || i < req->count; i++) {
    int rc = nnrpc_bench__bench__flood__send(ctx, &r);
    if (rc) return rc; /* cancelled: the client has measured enough */
  }
  return NNRPC_OK;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s URL\n", argv[0]);
    return 2;
  }
  bench_block_signals(); /* before the runtime starts its threads */
  nnrpc_server *srv;
  NnrpcBench__Bench_Handlers h = {.echo = echo, .flood = flood};
  nnrpc_server_opts o = {.workers = 2};
  int rc;
  if ((rc = nnrpc_server_open(&srv, &o)) || (rc = nnrpc_bench__bench__handlers__register(srv, &h, NULL)) ||
      (rc = nnrpc_server_listen(srv, argv[1])) || (rc = nnrpc_server_start(srv))) {
    fprintf(stderr, "%s: %s: %s\n", argv[0], argv[1], nnrpc_strerror(rc));
    return 1;
  }
  bench_wait_for_signal();
  nnrpc_server_close(srv);
  return 0;
}
