/* The floor: a bare nanomsg raw REP socket echoing each message with its
 * header, zero-copy. Same socket buffer sizes and TCP_NODELAY as nnrpc. */
#include <nanomsg/nn.h>
#include <nanomsg/reqrep.h>
#include <nanomsg/tcp.h>
#include <pthread.h>
#include <stdio.h>

#include "common.h"

static int sock;

static void *loop(void *arg) {
  (void)arg;
  for (;;) {
    void *body = NULL, *ctl = NULL;
    struct nn_iovec iov = {&body, NN_MSG};
    struct nn_msghdr hdr = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = &ctl, .msg_controllen = NN_MSG};
    if (nn_recvmsg(sock, &hdr, 0) < 0) return NULL; /* closed */
    if (nn_sendmsg(sock, &hdr, 0) < 0) {
      nn_freemsg(body);
      nn_freemsg(ctl);
    }
  }
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s URL\n", argv[0]);
    return 2;
  }
  bench_block_signals();
  sock = nn_socket(AF_SP_RAW, NN_REP);
  int buf = 1 << 20, one = 1, max = 16 << 20;
  nn_setsockopt(sock, NN_SOL_SOCKET, NN_SNDBUF, &buf, sizeof buf);
  nn_setsockopt(sock, NN_SOL_SOCKET, NN_RCVBUF, &buf, sizeof buf);
  nn_setsockopt(sock, NN_SOL_SOCKET, NN_RCVMAXSIZE, &max, sizeof max);
  nn_setsockopt(sock, NN_TCP, NN_TCP_NODELAY, &one, sizeof one);
  if (nn_bind(sock, argv[1]) < 0) {
    fprintf(stderr, "%s: bind %s: %s\n", argv[0], argv[1], nn_strerror(nn_errno()));
    return 1;
  }
  pthread_t t;
  pthread_create(&t, NULL, loop, NULL);
  bench_wait_for_signal();
  nn_close(sock);
  pthread_join(t, NULL);
  return 0;
}
