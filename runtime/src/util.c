/* Small shared pieces: hash map, per-call arena, budgeted allocator,
 * protobuf depth check, shared receive buffers. */
#include "internal.h"

#include <nanomsg/nn.h>
#include <pthread.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>

pthread_mutex_t nnrpc__inproc_mu = PTHREAD_MUTEX_INITIALIZER;

int nnrpc__futex_wait(atomic_uint *w, unsigned val, int64_t deadline_us) {
  struct timespec ts = nnrpc__ts_of_us(deadline_us);
  /* FUTEX_WAIT_BITSET: an absolute CLOCK_MONOTONIC deadline, as our condition variables */
  long r = syscall(SYS_futex, (void *)w, FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG, val,
                   deadline_us == NNRPC_NO_DEADLINE ? NULL : &ts, NULL, FUTEX_BITSET_MATCH_ANY);
  return r == -1 && errno == ETIMEDOUT ? ETIMEDOUT : 0;
}

void nnrpc__futex_wake(atomic_uint *w) {
  /* Private futex: the kernel keys it by address alone and reads nothing there. */
  syscall(SYS_futex, (void *)w, FUTEX_WAKE | FUTEX_PRIVATE_FLAG, 1, NULL, NULL, 0);
}

int nnrpc__cond_init(pthread_cond_t *cv) {
  pthread_condattr_t a;
  pthread_condattr_init(&a);
  pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
  int rc = pthread_cond_init(cv, &a);
  pthread_condattr_destroy(&a);
  return rc;
}

/* ---------------------------------------------------------------- hash map */
static size_t hm_slot(const nnrpc__hmap *m, uint64_t k1, uint64_t k2) {
  uint64_t h = (k1 ^ (k2 * 0x9e3779b97f4a7c15ULL)) * 0xff51afd7ed558ccdULL;
  return (size_t)(h ^ (h >> 32)) & (m->nb - 1);
}

int nnrpc__hmap_init(nnrpc__hmap *m) {
  m->nb = 64;
  m->n = 0;
  m->b = calloc(m->nb, sizeof *m->b);
  return m->b ? 0 : -1;
}

void nnrpc__hmap_free(nnrpc__hmap *m) {
  free(m->b);
  m->b = NULL;
  m->nb = m->n = 0;
}

nnrpc__hnode *nnrpc__hmap_get(const nnrpc__hmap *m, uint64_t k1, uint64_t k2) {
  for (nnrpc__hnode *n = m->b[hm_slot(m, k1, k2)]; n; n = n->next)
    if (n->k1 == k1 && n->k2 == k2) return n;
  return NULL;
}

int nnrpc__hmap_put(nnrpc__hmap *m, nnrpc__hnode *node) {
  if (m->n >= m->nb) { /* keep chains short: grow at load factor 1 */
    size_t nb = m->nb * 2;
    nnrpc__hnode **b = calloc(nb, sizeof *b);
    if (b) {
      nnrpc__hmap old = *m;
      m->b = b;
      m->nb = nb;
      for (size_t i = 0; i < old.nb; i++)
        for (nnrpc__hnode *n = old.b[i], *next; n; n = next) {
          next = n->next;
          size_t s = hm_slot(m, n->k1, n->k2);
          n->next = m->b[s];
          m->b[s] = n;
        }
      free(old.b);
    }
  }
  size_t s = hm_slot(m, node->k1, node->k2);
  node->next = m->b[s];
  m->b[s] = node;
  m->n++;
  return 0;
}

nnrpc__hnode *nnrpc__hmap_del(nnrpc__hmap *m, uint64_t k1, uint64_t k2) {
  for (nnrpc__hnode **pp = &m->b[hm_slot(m, k1, k2)]; *pp; pp = &(*pp)->next)
    if ((*pp)->k1 == k1 && (*pp)->k2 == k2) {
      nnrpc__hnode *n = *pp;
      *pp = n->next;
      m->n--;
      return n;
    }
  return NULL;
}

/* ---------------------------------------------------------------- arena */
/* Chunks grow with the arena (16 KiB, then half of what it holds, at most
 * 8 MiB), and those of 1 MiB or more are mapped directly. So a big decode (a
 * protobuf bomb stopped at max_decode_bytes) gives its memory back to the
 * system when freed, instead of leaving up to max_decode_bytes in the malloc
 * arena of every thread that ever decoded one. */
#define CHUNK_MIN 16384
#define CHUNK_MAX (8u << 20)
#define CHUNK_MMAP (1u << 20)
struct nnrpc__chunk {
  struct nnrpc__chunk *next;
  size_t size;
  bool mapped;
  char data[] __attribute__((aligned(16)));
};

/* Each thread keeps its last mapped chunk of up to CHUNK_CACHE_MAX for the
 * next big decode: mapping 1 MiB afresh for every 1 MiB call cost 256 page
 * faults and page clears per call (18% of the server's time at one call in
 * flight). An arena that grew past twice that (a bomb, a huge message) keeps
 * nothing: its memory goes back to the system at once. What stays is at most
 * one chunk per thread, unmapped when the thread ends. */
#define CHUNK_CACHE_MAX (2u << 20)
static pthread_key_t chunk_key;
static pthread_once_t chunk_once = PTHREAD_ONCE_INIT;
static bool chunk_key_ok;

static void chunk_unmap(void *p) {
  struct nnrpc__chunk *c = p;
  munmap(c, sizeof *c + c->size);
}
static void chunk_key_init(void) { chunk_key_ok = pthread_key_create(&chunk_key, chunk_unmap) == 0; }

static struct nnrpc__chunk *chunk_map(size_t sz) {
  pthread_once(&chunk_once, chunk_key_init);
  struct nnrpc__chunk *c = chunk_key_ok ? pthread_getspecific(chunk_key) : NULL;
  if (c && c->size >= sz) {
    pthread_setspecific(chunk_key, NULL);
    return c;
  }
  c = mmap(NULL, sizeof *c + sz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (c == MAP_FAILED) return NULL;
  c->size = sz;
  return c;
}

static void chunk_unmap_or_keep(struct nnrpc__chunk *c, bool may_keep) {
  struct nnrpc__chunk *kept = chunk_key_ok ? pthread_getspecific(chunk_key) : NULL;
  if (!may_keep || !chunk_key_ok || c->size > CHUNK_CACHE_MAX || (kept && kept->size >= c->size)) {
    chunk_unmap(c);
    return;
  }
  if (kept) chunk_unmap(kept); /* keep the bigger one */
  pthread_setspecific(chunk_key, c);
}

size_t nnrpc__arena_kept(void) {
  pthread_once(&chunk_once, chunk_key_init);
  struct nnrpc__chunk *c = chunk_key_ok ? pthread_getspecific(chunk_key) : NULL;
  return c ? c->size : 0;
}

static void *arena_pb_alloc(void *d, size_t n) { return nnrpc__arena_alloc(d, n); }
static void arena_pb_free(void *d, void *p) { (void)d; (void)p; /* freed with the arena */ }

void nnrpc__arena_init(nnrpc__arena *a, size_t budget) {
  a->pb.alloc = arena_pb_alloc;
  a->pb.free = arena_pb_free;
  a->pb.allocator_data = a;
  a->chunks = NULL;
  a->cur = a->first;
  a->end = a->first + sizeof a->first;
  a->used = 0;
  a->budget = budget;
  a->over = false;
}

void *nnrpc__arena_alloc(nnrpc__arena *a, size_t n) {
  size_t need = (n + 15) & ~(size_t)15;
  if (need < n || need > a->budget - a->used || a->used > a->budget) {
    a->over = true;
    return NULL;
  }
  if ((size_t)(a->end - a->cur) < need) {
    size_t sz = a->used / 2 < CHUNK_MIN ? CHUNK_MIN : a->used / 2 > CHUNK_MAX ? CHUNK_MAX : a->used / 2;
    if (sz < need) sz = need;
    struct nnrpc__chunk *c;
    bool mapped = sizeof *c + sz >= CHUNK_MMAP;
    if (mapped) {
      if (!(c = chunk_map(sz))) return NULL;
      sz = c->size; /* a kept chunk may be bigger */
    } else if (!(c = malloc(sizeof *c + sz))) {
      return NULL;
    }
    c->mapped = mapped;
    c->next = a->chunks;
    c->size = sz;
    a->chunks = c;
    a->cur = c->data;
    a->end = c->data + sz;
  }
  void *p = a->cur;
  a->cur += need;
  a->used += need;
  return p;
}

void nnrpc__arena_free(nnrpc__arena *a) {
  bool may_keep = a->used <= 2 * CHUNK_CACHE_MAX;
  for (struct nnrpc__chunk *c = a->chunks, *next; c; c = next) {
    next = c->next;
    if (c->mapped)
      chunk_unmap_or_keep(c, may_keep);
    else
      free(c);
  }
  a->chunks = NULL;
  a->cur = a->first;
  a->end = a->first + sizeof a->first;
  a->used = 0;
}

/* ---------------------------------------------------------------- budgeted malloc */
static void *budget_alloc(void *d, size_t n) {
  nnrpc__budget *b = d;
  if (n > b->budget - b->used) {
    b->over = true;
    return NULL;
  }
  b->used += n;
  return malloc(n);
}
static void budget_free(void *d, void *p) { (void)d; free(p); }

void nnrpc__budget_init(nnrpc__budget *b, size_t budget) {
  b->pb.alloc = budget_alloc;
  b->pb.free = budget_free;
  b->pb.allocator_data = b;
  b->used = 0;
  b->budget = budget;
  b->over = false;
}

/* ---------------------------------------------------------------- protobuf depth check */
static int rd_varint(const uint8_t **pp, const uint8_t *end, uint64_t *v) {
  const uint8_t *p = *pp;
  uint64_t r = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (p == end) return -1;
    uint8_t b = *p++;
    r |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) {
      *pp = p;
      *v = r;
      return 0;
    }
  }
  return -1;
}

int nnrpc__pb_check(const ProtobufCMessageDescriptor *d, const uint8_t *p, size_t len,
                    unsigned max_depth) {
  const uint8_t *end = p + len;
  while (p < end) {
    uint64_t tag, v;
    if (rd_varint(&p, end, &tag) || (tag >> 3) == 0 || (tag >> 3) > 0x1fffffff)
      return NNRPC__PB_MALFORMED;
    switch (tag & 7) {
    case 0:
      if (rd_varint(&p, end, &v)) return NNRPC__PB_MALFORMED;
      break;
    case 1:
      if (end - p < 8) return NNRPC__PB_MALFORMED;
      p += 8;
      break;
    case 5:
      if (end - p < 4) return NNRPC__PB_MALFORMED;
      p += 4;
      break;
    case 2: {
      if (rd_varint(&p, end, &v) || v > (uint64_t)(end - p)) return NNRPC__PB_MALFORMED;
      const ProtobufCFieldDescriptor *f =
          d ? protobuf_c_message_descriptor_get_field(d, (unsigned)(tag >> 3)) : NULL;
      if (f && f->type == PROTOBUF_C_TYPE_MESSAGE) {
        if (max_depth <= 1) return NNRPC__PB_TOO_DEEP;
        int rc = nnrpc__pb_check(f->descriptor, p, (size_t)v, max_depth - 1);
        if (rc) return rc;
      }
      p += v;
      break;
    }
    default: /* groups are not supported by protobuf-c */
      return NNRPC__PB_MALFORMED;
    }
  }
  return 0;
}

ProtobufCMessage *nnrpc__decode(const ProtobufCMessageDescriptor *d, const uint8_t *p,
                                size_t len, unsigned max_depth, ProtobufCAllocator *alloc,
                                bool *too_deep, const char **why) {
  int rc = nnrpc__pb_check(d, p, len, max_depth);
  *too_deep = rc == NNRPC__PB_TOO_DEEP;
  if (*too_deep) {
    *why = "message nested deeper than the decode depth limit";
    return NULL;
  }
  if (rc) {
    *why = "malformed protobuf message";
    return NULL;
  }
  ProtobufCMessage *m = protobuf_c_message_unpack(d, alloc, len, p);
  if (!m) *why = "protobuf message could not be decoded";
  return m;
}

/* ---------------------------------------------------------------- receive buffers */
nnrpc__rxbuf *nnrpc__rxbuf_new(void *msg, size_t len) {
  nnrpc__rxbuf *b = malloc(sizeof *b);
  if (!b) return NULL;
  atomic_init(&b->refs, 1);
  b->msg = msg;
  b->len = len;
  return b;
}

void nnrpc__rxbuf_ref(nnrpc__rxbuf *b) { atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed); }

void nnrpc__rxbuf_unref(nnrpc__rxbuf *b) {
  if (b && atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) == 1) {
    nn_freemsg(b->msg);
    free(b);
  }
}
