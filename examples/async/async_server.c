/* Async server: SayHello handlers do not answer at once. Each call is parked
 * with a due time (DELAY_MS later) and a timer thread finishes it, so the 2
 * worker threads never block and thousands of calls can be pending.
 *   async_server [URL] [DELAY_MS]      (default tcp://127.0.0.1:5556 5) */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "helloworld.nnrpc.h"

typedef struct parked {
  struct parked *next;
  nnrpc_ctx *ctx;
  Helloworld__HelloReply *reply;
  int64_t due_ms;
} parked;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static parked *head, *tail; /* FIFO: every call has the same delay, so due times are ordered */
static int delay_ms = 5;
static volatile sig_atomic_t stopping;
static nnrpc_server *srv;

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int say_hello(nnrpc_ctx *ctx, const Helloworld__HelloRequest *req,
                     Helloworld__HelloReply *reply) {
  parked *p = nnrpc_ctx_alloc(ctx, sizeof *p); /* lives until the call is finished */
  reply->message = nnrpc_ctx_strdup(ctx, req->name);
  if (!p || !reply->message) return NNRPC_RESOURCE_EXHAUSTED;
  *p = (parked){NULL, ctx, reply, now_ms() + delay_ms};
  pthread_mutex_lock(&mu);
  if (tail) tail->next = p; else head = p;
  tail = p;
  pthread_cond_signal(&cv);
  pthread_mutex_unlock(&mu);
  return NNRPC_PENDING; /* finished by the timer thread */
}

static void *timer_main(void *arg) {
  (void)arg;
  pthread_mutex_lock(&mu);
  while (!stopping || head) {
    if (!head) {
      pthread_cond_wait(&cv, &mu);
      continue;
    }
    int64_t wait = head->due_ms - now_ms();
    if (wait > 0 && !stopping) {
      pthread_mutex_unlock(&mu);
      struct timespec ts = {0, (long)(wait > 100 ? 100 : wait) * 1000000L};
      nanosleep(&ts, NULL);
      pthread_mutex_lock(&mu);
      continue;
    }
    parked *p = head;
    head = p->next;
    if (!head) tail = NULL;
    pthread_mutex_unlock(&mu);
    nnrpc_ctx_finish(p->ctx, NNRPC_OK); /* p lived in the call's memory: gone now */
    pthread_mutex_lock(&mu);
  }
  pthread_mutex_unlock(&mu);
  return NULL;
}

static void on_signal(int sig) {
  (void)sig;
  nnrpc_server_stop_async(srv);
}

int main(int argc, char **argv) {
  const char *url = argc > 1 ? argv[1] : "tcp://127.0.0.1:5556";
  if (argc > 2) delay_ms = atoi(argv[2]);
  nnrpc_server_opts o = {.workers = 2, .max_concurrent_calls = 20000};
  Helloworld__Greeter_Handlers h = {.say_hello = say_hello};
  int rc;
  if ((rc = nnrpc_server_open(&srv, &o)) || (rc = helloworld__greeter__handlers__register(srv, &h, NULL)) ||
      (rc = nnrpc_server_listen(srv, url))) {
    fprintf(stderr, "async_server: %s: %s\n", url, nnrpc_strerror(rc));
    return 1;
  }
  pthread_t timer;
  pthread_create(&timer, NULL, timer_main, NULL);
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  printf("async_server: listening on %s, answering after %d ms\n", url, delay_ms);
  fflush(stdout);
  nnrpc_server_run(srv); /* returns once shutdown finished every pending call */
  pthread_mutex_lock(&mu);
  stopping = 1;
  pthread_cond_signal(&cv);
  pthread_mutex_unlock(&mu);
  pthread_join(timer, NULL);
  nnrpc_server_close(srv);
  return 0;
}
