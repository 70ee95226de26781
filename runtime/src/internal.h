/* Internal declarations of libnnrpc. Prefix nnrpc__ (double underscore):
 * never exported (the library is built with -fvisibility=hidden and only
 * NNRPC_API symbols are visible). */
#ifndef NNRPC_INTERNAL_H
#define NNRPC_INTERNAL_H

#include "nnrpc/nnrpc.h"

#include <assert.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#define NNRPC_API __attribute__((visibility("default")))

/* ---------------------------------------------------------------- time */
static inline int64_t nnrpc__now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}
static inline int64_t nnrpc__now_ms(void) { return nnrpc__now_us() / 1000; }
/* Absolute CLOCK_MONOTONIC timespec for a deadline in microseconds. */
static inline struct timespec nnrpc__ts_of_us(int64_t us) {
  struct timespec ts = {.tv_sec = us / 1000000, .tv_nsec = (long)(us % 1000000) * 1000};
  return ts;
}
#define NNRPC_NO_DEADLINE INT64_MAX
/* A condition variable that waits on CLOCK_MONOTONIC. */
int nnrpc__cond_init(pthread_cond_t *cv);
/* Waits while *w == val, until deadline_us (CLOCK_MONOTONIC, or
 * NNRPC_NO_DEADLINE); may return early: recheck *w. ETIMEDOUT once past. */
int nnrpc__futex_wait(atomic_uint *w, unsigned val, int64_t deadline_us);
/* Wakes one waiter. Touches no memory at w: safe after the waiter left. */
void nnrpc__futex_wake(atomic_uint *w);

/* ---------------------------------------------------------------- status */
/* Returns a status whose message is copied into thread-local storage. */
nnrpc_status nnrpc__status(int code, const char *fmt, ...) NNRPC_PRINTF(2, 3);
nnrpc_status nnrpc__status_n(int code, const char *msg, size_t len);

/* ---------------------------------------------------------------- metadata */
struct nnrpc_metadata {
  size_t n, cap;
  struct nnrpc__md_entry {
    char *key;
    char *value; /* NUL-terminated copy, len bytes before the NUL */
    size_t len;
  } *e;
  size_t bytes; /* sum of key + value lengths */
};
bool nnrpc__md_key_valid(const char *key, size_t len);

/* ---------------------------------------------------------------- hash map */
/* Intrusive chained hash map keyed by two 64-bit words. */
typedef struct nnrpc__hnode {
  struct nnrpc__hnode *next;
  uint64_t k1, k2;
} nnrpc__hnode;
typedef struct nnrpc__hmap {
  nnrpc__hnode **b;
  size_t nb, n;
} nnrpc__hmap;
int nnrpc__hmap_init(nnrpc__hmap *m);
void nnrpc__hmap_free(nnrpc__hmap *m);
nnrpc__hnode *nnrpc__hmap_get(const nnrpc__hmap *m, uint64_t k1, uint64_t k2);
/* Inserts (the key must be absent). Returns 0, or -1 when out of memory. */
int nnrpc__hmap_put(nnrpc__hmap *m, nnrpc__hnode *node);
nnrpc__hnode *nnrpc__hmap_del(nnrpc__hmap *m, uint64_t k1, uint64_t k2);
/* Iteration: for (i = 0; i < m->nb; i++) for (n = m->b[i]; n; n = next) ... */

/* ---------------------------------------------------------------- memory */
/* A bump allocator for one call: every allocation lives until reset/free.
 * `budget` caps the total; past it allocation fails and `over` is set. */
typedef struct nnrpc__arena {
  ProtobufCAllocator pb; /* alloc/free/allocator_data = this arena */
  struct nnrpc__chunk *chunks;
  char *cur, *end;
  size_t used, budget;
  bool over;
  char first[1024] __attribute__((aligned(16)));
} nnrpc__arena;
void nnrpc__arena_init(nnrpc__arena *a, size_t budget);
void *nnrpc__arena_alloc(nnrpc__arena *a, size_t n);
void nnrpc__arena_free(nnrpc__arena *a);
/* Bytes of the mapped chunk this thread keeps for its next big arena (tests). */
size_t nnrpc__arena_kept(void);

/* malloc-backed allocator counting bytes, for decoding replies the caller
 * later frees with protobuf_c_message_free_unpacked(msg, NULL). */
typedef struct nnrpc__budget {
  ProtobufCAllocator pb;
  size_t used, budget;
  bool over;
} nnrpc__budget;
void nnrpc__budget_init(nnrpc__budget *b, size_t budget);

/* Walks protobuf wire bytes against the descriptor without allocating:
 * 0 ok, NNRPC__PB_MALFORMED, NNRPC__PB_TOO_DEEP. Bounds recursion so that
 * protobuf-c's own (unbounded) recursion never sees a deep message. */
#define NNRPC__PB_MALFORMED (-1)
#define NNRPC__PB_TOO_DEEP (-2)
int nnrpc__pb_check(const ProtobufCMessageDescriptor *d, const uint8_t *p, size_t len,
                    unsigned max_depth);

/* Decodes `len` bytes as a message of `d`: depth check, then unpack with
 * `alloc`. On failure returns NULL and sets *why (static text). */
ProtobufCMessage *nnrpc__decode(const ProtobufCMessageDescriptor *d, const uint8_t *p,
                                size_t len, unsigned max_depth, ProtobufCAllocator *alloc,
                                bool *too_deep, const char **why);
/* (*too_deep tells a depth refusal from malformed bytes; running out of the
 * allocator's budget is reported by the allocator itself.) */

/* ---------------------------------------------------------------- received messages */
/* One message from nn_recvmsg (NN_MSG), shared by the frames it carries. */
typedef struct nnrpc__rxbuf {
  atomic_int refs;
  void *msg;  /* nn_allocmsg'ed body */
  size_t len;
} nnrpc__rxbuf;
nnrpc__rxbuf *nnrpc__rxbuf_new(void *msg, size_t len);
void nnrpc__rxbuf_ref(nnrpc__rxbuf *b);
void nnrpc__rxbuf_unref(nnrpc__rxbuf *b);

/* ---------------------------------------------------------------- inproc */
/* nanomsg's inproc transport hands a message to the peer socket inside
 * nn_send; if the peer is nn_close()d meanwhile (a client that got its reply
 * closes at once), the sender touches freed memory (seen under valgrind).
 * Both ends of inproc live in this process, so sends on inproc sockets and
 * closes of inproc sockets take this one lock. util.c. */
extern pthread_mutex_t nnrpc__inproc_mu;

/* ---------------------------------------------------------------- health (health.c) */
typedef struct nnrpc__health nnrpc__health;
const nnrpc_service *nnrpc__health_service(void);
void nnrpc__health_changed(nnrpc__health *h); /* wakes Watch calls */
void nnrpc__health_free(nnrpc__health *h);
/* server.c, for health.c */
bool nnrpc__server_knows_service(nnrpc_server *s, const char *name);
bool nnrpc__server_draining(nnrpc_server *s);
int nnrpc__server_attach_health(nnrpc_server *s, nnrpc__health *h);
nnrpc__health *nnrpc__server_health(nnrpc_server *s);
size_t nnrpc__server_methods(nnrpc_server *s, const nnrpc_method **out, size_t max);
/* An interceptor whose `owned` block is freed with the server. */
int nnrpc__server_add_interceptor_owned(nnrpc_server *s, const nnrpc_server_interceptor *ic, void *owned);
/* The user pointer of the interceptor whose after hook is `after`, or NULL. */
void *nnrpc__server_interceptor_user(nnrpc_server *s, void (*after)(nnrpc_ctx *, int, int64_t, void *));

/* ---------------------------------------------------------------- reflection (reflection.c) */
/* server.c, for reflection.c: copies up to max of the services added so far
 * and returns how many there are */
size_t nnrpc__server_services(nnrpc_server *s, const nnrpc_service **out, size_t max);

#endif
