/* Observability on the interceptor mechanism: a call log (one line per call)
 * and per-method counters with latency histograms readable through the API. */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>

/* ---------------------------------------------------------------- call log */

typedef struct call_log {
  FILE *out;
} call_log;

static void log_after(nnrpc_ctx *ctx, int code, int64_t us, void *user) {
  call_log *l = user;
  uint64_t in = 0, out = 0;
  nnrpc_ctx_bytes(ctx, &in, &out);
  /* One fprintf per line: stdio locks the stream, lines never interleave. */
  fprintf(l->out ? l->out : stderr, "nnrpc: %s %s %.3f ms in=%llu out=%llu\n", nnrpc_ctx_method(ctx),
          nnrpc_code_name(code), (double)us / 1000.0, (unsigned long long)in, (unsigned long long)out);
}

NNRPC_API int nnrpc_server_log_calls(nnrpc_server *srv, FILE *out) {
  if (!srv) return NNRPC_INVALID_ARGUMENT;
  call_log *l = malloc(sizeof *l);
  if (!l) return NNRPC_RESOURCE_EXHAUSTED;
  l->out = out;
  nnrpc_server_interceptor ic = {NULL, log_after, l};
  int rc = nnrpc__server_add_interceptor_owned(srv, &ic, l);
  if (rc) free(l);
  return rc;
}

/* ---------------------------------------------------------------- stats */

typedef struct method_counters {
  const char *method;
  _Atomic uint64_t calls, bytes_in, bytes_out, total_us, max_us;
  _Atomic uint64_t codes[NNRPC_CODE_COUNT];
  _Atomic uint64_t latency[NNRPC_STATS_BUCKETS];
} method_counters;

typedef struct stats {
  size_t n;
  method_counters m[]; /* sorted by method path */
} stats;

static int by_path(const void *a, const void *b) {
  return strcmp(((const method_counters *)a)->method, ((const method_counters *)b)->method);
}

/* Bucket i holds durations in [2^(i-1), 2^i) us; bucket 0 under 1 us. */
static size_t bucket_of(uint64_t us) {
  size_t b = 0;
  while (us && b + 1 < NNRPC_STATS_BUCKETS) {
    us >>= 1;
    b++;
  }
  return b;
}

static void stats_after(nnrpc_ctx *ctx, int code, int64_t us, void *user) {
  stats *st = user;
  method_counters key = {.method = nnrpc_ctx_method(ctx)};
  method_counters *m = bsearch(&key, st->m, st->n, sizeof *st->m, by_path);
  if (!m) return; /* a service added after stats were enabled */
  uint64_t d = us > 0 ? (uint64_t)us : 0, in = 0, out = 0;
  nnrpc_ctx_bytes(ctx, &in, &out);
  atomic_fetch_add_explicit(&m->calls, 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&m->codes[code], 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&m->bytes_in, in, memory_order_relaxed);
  atomic_fetch_add_explicit(&m->bytes_out, out, memory_order_relaxed);
  atomic_fetch_add_explicit(&m->total_us, d, memory_order_relaxed);
  atomic_fetch_add_explicit(&m->latency[bucket_of(d)], 1, memory_order_relaxed);
  uint64_t max = atomic_load_explicit(&m->max_us, memory_order_relaxed);
  while (d > max && !atomic_compare_exchange_weak(&m->max_us, &max, d)) {
  }
}

NNRPC_API int nnrpc_server_enable_stats(nnrpc_server *srv) {
  if (!srv) return NNRPC_INVALID_ARGUMENT;
  if (nnrpc__server_interceptor_user(srv, stats_after)) return NNRPC_ALREADY_EXISTS;
  size_t n = nnrpc__server_methods(srv, NULL, 0);
  const nnrpc_method **ms = malloc((n ? n : 1) * sizeof *ms);
  stats *st = calloc(1, sizeof *st + n * sizeof st->m[0]);
  if (!ms || !st) {
    free(ms);
    free(st);
    return NNRPC_RESOURCE_EXHAUSTED;
  }
  n = nnrpc__server_methods(srv, ms, n);
  st->n = n;
  for (size_t i = 0; i < n; i++) st->m[i].method = ms[i]->path; /* static, like the service */
  free(ms);
  qsort(st->m, n, sizeof *st->m, by_path);
  nnrpc_server_interceptor ic = {NULL, stats_after, st};
  int rc = nnrpc__server_add_interceptor_owned(srv, &ic, st);
  if (rc) free(st);
  return rc;
}

NNRPC_API size_t nnrpc_server_stats(nnrpc_server *srv, nnrpc_method_stats *out, size_t max) {
  stats *st = srv ? nnrpc__server_interceptor_user(srv, stats_after) : NULL;
  if (!st) return 0;
  for (size_t i = 0; i < st->n && i < max; i++) {
    const method_counters *m = &st->m[i];
    nnrpc_method_stats *o = &out[i];
    o->method = m->method;
    o->calls = atomic_load(&m->calls);
    o->bytes_in = atomic_load(&m->bytes_in);
    o->bytes_out = atomic_load(&m->bytes_out);
    o->total_us = atomic_load(&m->total_us);
    o->max_us = atomic_load(&m->max_us);
    for (size_t c = 0; c < NNRPC_CODE_COUNT; c++) o->codes[c] = atomic_load(&m->codes[c]);
    for (size_t b = 0; b < NNRPC_STATS_BUCKETS; b++) o->latency[b] = atomic_load(&m->latency[b]);
  }
  return st->n;
}

NNRPC_API int64_t nnrpc_stats_quantile_us(const nnrpc_method_stats *st, double q) {
  uint64_t total = 0;
  for (size_t b = 0; b < NNRPC_STATS_BUCKETS; b++) total += st->latency[b];
  if (!total) return 0;
  if (q < 0) q = 0;
  if (q > 1) q = 1;
  uint64_t want = (uint64_t)(q * (double)total + 0.5), seen = 0;
  if (want == 0) want = 1;
  for (size_t b = 0; b < NNRPC_STATS_BUCKETS; b++) {
    seen += st->latency[b];
    if (seen >= want) return b + 1 < NNRPC_STATS_BUCKETS ? (int64_t)1 << b : (int64_t)st->max_us;
  }
  return (int64_t)st->max_us;
}
