/* Async client: ONE thread keeps IN_FLIGHT calls in flight with a poll() loop
 * over the completion queue's file descriptor (next to the program's own
 * fds: here stdin, to show the pattern).
 *   async_client [URL] [TOTAL] [IN_FLIGHT]     (default tcp://127.0.0.1:5556 20000 1000) */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "helloworld.nnrpc.h"

int main(int argc, char **argv) {
  const char *url = argc > 1 ? argv[1] : "tcp://127.0.0.1:5556";
  long total = argc > 2 ? atol(argv[2]) : 20000, in_flight = argc > 3 ? atol(argv[3]) : 1000;
  nnrpc_channel *ch;
  nnrpc_cq *cq;
  if (nnrpc_channel_open(&ch, url, NULL) || nnrpc_cq_open(&cq)) {
    fprintf(stderr, "async_client: cannot open %s\n", url);
    return 1;
  }
  Helloworld__HelloRequest req = HELLOWORLD__HELLO_REQUEST__INIT;
  req.name = "async world";
  nnrpc_call_opts opts = {.timeout_ms = 10000};
  nnrpc_completion how = {.cq = cq};
  long started = 0, done = 0, ok = 0, peak = 0;
  long by_code[NNRPC_CODE_COUNT] = {0};
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  while (done < total) {
    while (started < total && started - done < in_flight) {
      int rc = helloworld__greeter__say_hello__start(ch, &req, &opts, &how, NULL);
      if (rc) {
        fprintf(stderr, "async_client: start: %s\n", nnrpc_code_name(rc));
        return 1;
      }
      started++;
    }
    if (started - done > peak) peak = started - done;
    struct pollfd fds[2] = {{nnrpc_cq_fd(cq), POLLIN, 0}, {STDIN_FILENO, 0, 0}};
    if (poll(fds, 2, 1000) <= 0) continue;
    nnrpc_call *call;
    while ((call = nnrpc_cq_next(cq, 0))) {
      Helloworld__HelloReply *reply;
      nnrpc_status st = helloworld__greeter__say_hello__finish(call, &reply, NULL);
      done++;
      by_code[st.code]++;
      if (st.code == NNRPC_OK) {
        ok++;
        helloworld__hello_reply__free_unpacked(reply, NULL);
      } else if (by_code[st.code] == 1) {
        fprintf(stderr, "async_client: %s: %s\n", nnrpc_code_name(st.code), st.message);
      }
    }
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
  printf("async_client: %ld calls, %ld OK, peak %ld in flight from one thread, %.0f calls/s\n",
         total, ok, peak, (double)total / secs);
  nnrpc_cq_close(cq);
  nnrpc_channel_close(ch);
  return ok == total ? 0 : 1;
}
