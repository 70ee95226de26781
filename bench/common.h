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
  long calls;  /* after the warm-up, exactly this many calls (instead of --seconds); one caller */
  int mark_pid; /* with --calls: SIGUSR1 to this process around the counted calls */
} bench_args;

/* Parses --url --payload --concurrency --seconds [--warmup] [--async]
 * [--calls N [--mark-pid PID]]; exits with usage on error. */
void bench_parse(int argc, char **argv, bench_args *a);

/* Latency histogram, log-linear: 1 us buckets below 1024 us, then 512
 * buckets per power of two (under 0.2 % error) up to about 4.7 hours, then
 * one overflow bucket. */
#define HIST_SUB_BITS 9
#define HIST_LINEAR (1 << (HIST_SUB_BITS + 1))
#define HIST_BUCKETS (HIST_LINEAR + 25 * (1 << HIST_SUB_BITS) + 1)
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

/* Allocation counting (bench/alloc_count.so, LD_PRELOAD): a mark dumps the
 * shim's counters. Defined by the shim only, hence weak: without the shim it
 * is NULL and bench_mark() only signals `pid` (when > 0). */
void alloc_count_mark(void) __attribute__((weak));
void bench_mark(int pid);

/* A caller's loop test before each call starting at *t0: true to make it.
 * Without --calls: until *end (calls before *start are the warm-up). With
 * --calls: the warm-up until *start, then a mark (a pause either side, so the
 * server is idle when its signal lands; *start and *t0 reset to after it),
 * exactly a->calls calls (`counted` so far), a pause, a mark, and *end set to
 * the end of the last call. */
bool bench_next(const bench_args *a, int64_t *t0, int64_t *start, int64_t *end, long counted);
#endif
