/* The floor for streaming: a bare nanomsg PUSH socket sending fixed-size
 * messages as fast as the puller takes them, until SIGINT/SIGTERM.
 *   nn-push URL SIZE */
#include <nanomsg/nn.h>
#include <nanomsg/pipeline.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

static int sock = -1;

static void *pusher(void *arg) {
  size_t size = *(size_t *)arg;
  char *buf = calloc(1, size ? size : 1);
  while (buf && nn_send(sock, buf, size, 0) >= 0) {
  }
  free(buf);
  return NULL;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s URL SIZE\n", argv[0]);
    return 2;
  }
  size_t size = strtoul(argv[2], NULL, 10);
  bench_block_signals();
  sock = nn_socket(AF_SP, NN_PUSH);
  if (sock < 0 || nn_bind(sock, argv[1]) < 0) {
    fprintf(stderr, "%s: %s: %s\n", argv[0], argv[1], nn_strerror(nn_errno()));
    return 1;
  }
  pthread_t t;
  pthread_create(&t, NULL, pusher, &size);
  bench_wait_for_signal();
  nn_close(sock); /* the pusher's nn_send fails and it returns */
  pthread_join(t, NULL);
  return 0;
}
