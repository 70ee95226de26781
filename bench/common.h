/* Shared by the benchmark clients: argument parsing, a latency histogram and
 * the one-line JSON result. */
#ifndef NNRPC_BENCH_COMMON_H
#define NNRPC_BENCH_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

typedef struct bench_args {
  const char *url;
  size_t payload;
  int concurrency;
  double seconds;
  double warmup;
  bool async; /* nnrpc client only: one thread, `concurrency` calls in flight */
} bench_args;

/* Parses --url --payload --concurrency --seconds [--warmup] [--async]; exits with usage on error. */
void bench_parse(int argc, char **argv, bench_args *a);

/* Latency histogram: 1 us buckets up to 100 ms, then one overflow bucket. */
#define HIST_BUCKETS 100001
typedef struct bench_hist {
  uint64_t n[HIST_BUCKETS];
  uint64_t calls, errors;
} bench_hist;

static inline int64_t bench_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}
void bench_record(bench_hist *h, int64_t ns);
void bench_merge(bench_hist *into, const bench_hist *h);
/* Prints {"impl":..., "qps":..., "p50_us":..., "p99_us":...}. */
void bench_report(const char *impl, const bench_args *a, const bench_hist *h, double secs);

/* Blocks SIGINT/SIGTERM in the calling thread (and threads it creates later)
 * and returns when one arrives. */
void bench_wait_for_signal(void);
void bench_block_signals(void);
#endif
