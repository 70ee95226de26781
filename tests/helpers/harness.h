/* Shared test fixtures: unique URLs per transport, a real server running the
 * nnrpc_test.Echo and nnrpc_test.Counter services (tests/protos/test.proto),
 * and small time helpers. Every test binary links this. */
#ifndef NNRPC_TEST_HARNESS_H
#define NNRPC_TEST_HARNESS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "stream_test.nnrpc.h"
#include "test.nnrpc.h"

int64_t th_now_ms(void);
void th_sleep_ms(int ms);
/* True under `make valgrind` (NNRPC_TEST_SLOW=1): tests shrink their counts. */
bool th_slow(void);
/* Scales a count down under th_slow() (never below 1). */
int th_count(int n);

/* A fresh URL of `scheme` ("inproc", "ipc", "tcp", "ws") that no other test in any
 * running binary uses. Returns buf. */
char *th_url(const char *scheme, char *buf, size_t n);

typedef struct th_server {
  nnrpc_server *srv;
  char url[128];
  atomic_int calls;      /* Echo.Echo handler entries */
  atomic_int cancelled;  /* slow handlers that saw nnrpc_ctx_is_cancelled */
  atomic_int running;    /* handlers running now */
  atomic_int counter;    /* Counter.Next state */
  atomic_int streams_started;   /* Streamer handlers entered */
  atomic_int streams_ended;     /* ... and returned */
  atomic_int streams_cancelled; /* ... that found their call cancelled */
} th_server;

/* Opens a server with the test services (Echo, Counter, and Streamer from
 * tests/protos/stream_test.proto), listens on a fresh URL of
 * `scheme` and starts it. opts may be NULL. Fails the test on error. */
th_server *th_server_start(const char *scheme, const nnrpc_server_opts *opts);
/* The same, listening but not started: add interceptors, then
 * nnrpc_server_start(t->srv). */
th_server *th_server_prepare(const char *scheme, const nnrpc_server_opts *opts);
/* The same on a given URL, without cmocka asserts (usable outside a test,
 * e.g. in a child process). NULL on failure. */
th_server *th_server_start_at(const char *url, const nnrpc_server_opts *opts);
/* Starts this test binary again as `argv[0] mode url` (exec'd: nanomsg is
 * not fork-safe): the child process that a test kills. Fails the test on error. */
pid_t th_spawn_self(const char *mode, const char *url);
/* SIGKILLs the child and reaps it. */
void th_kill_child(pid_t pid);

/* Shuts down (grace 0) and frees. */
void th_server_stop(th_server *t);

/* Opens a channel to url with opts (may be NULL). Fails the test on error. */
nnrpc_channel *th_channel(const char *url, const nnrpc_channel_opts *opts);

/* The pattern Echo fills `reply_size` bytes with: byte i = (tag + i) & 0xff. */
static inline uint8_t th_pattern(uint64_t tag, size_t i) { return (uint8_t)((tag + i) & 0xff); }

#endif
