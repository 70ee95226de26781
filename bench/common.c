#include "common.h"

#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void bench_parse(int argc, char **argv, bench_args *a) {
  static const struct option opts[] = {
      {"url", required_argument, 0, 'u'},         {"payload", required_argument, 0, 'p'},
      {"concurrency", required_argument, 0, 'c'}, {"seconds", required_argument, 0, 's'},
      {"warmup", required_argument, 0, 'w'},      {"async", no_argument, 0, 'a'},
      {"calls", required_argument, 0, 'n'},       {"mark-pid", required_argument, 0, 'm'},
      {0, 0, 0, 0}};
  *a = (bench_args){.url = "tcp://127.0.0.1:5560", .payload = 32, .concurrency = 1,
                    .seconds = 5, .warmup = 0.5};
  int c;
  while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    switch (c) {
    case 'u': a->url = optarg; break;
    case 'p': a->payload = strtoull(optarg, NULL, 10); break;
    case 'c': a->concurrency = atoi(optarg); break;
    case 's': a->seconds = atof(optarg); break;
    case 'w': a->warmup = atof(optarg); break;
    case 'a': a->async = true; break;
    case 'n': a->calls = atol(optarg); break;
    case 'm': a->mark_pid = atoi(optarg); break;
    default:
      fprintf(stderr,
              "usage: %s --url URL --payload BYTES --concurrency C --seconds S [--warmup S] [--async]\n"
              "       [--calls N [--mark-pid PID]]\n",
              argv[0]);
      exit(2);
    }
  }
  if (a->concurrency < 1 || a->concurrency > 4096 || a->seconds <= 0) {
    fprintf(stderr, "%s: bad --concurrency or --seconds\n", argv[0]);
    exit(2);
  }
  if (a->calls < 0 || (a->calls && (a->concurrency != 1 || a->async))) {
    fprintf(stderr, "%s: --calls wants a count and --concurrency 1 without --async\n", argv[0]);
    exit(2);
  }
}

static int hist_index(int64_t ns) {
  uint64_t us = ns > 0 ? (uint64_t)ns / 1000 : 0;
  if (us < HIST_LINEAR) return (int)us;
  int shift = 63 - __builtin_clzll(us) - HIST_SUB_BITS; /* >= 1 */
  int64_t i = HIST_LINEAR + (int64_t)(shift - 1) * (1 << HIST_SUB_BITS) +
              (int64_t)((us >> shift) - (1u << HIST_SUB_BITS));
  return i < HIST_BUCKETS - 1 ? (int)i : HIST_BUCKETS - 1;
}

/* The middle of bucket i, in microseconds. */
static double hist_mid_us(int i) {
  if (i < HIST_LINEAR) return i + 0.5;
  int k = i - HIST_LINEAR, shift = k / (1 << HIST_SUB_BITS) + 1;
  double lo = (double)((uint64_t)(k % (1 << HIST_SUB_BITS) + (1 << HIST_SUB_BITS)) << shift);
  return lo + (double)(1ull << shift) / 2;
}

void bench_record(bench_hist *h, int64_t ns) {
  h->n[hist_index(ns)]++;
  h->calls++;
}

void bench_merge(bench_hist *into, const bench_hist *h) {
  for (int i = 0; i < HIST_BUCKETS; i++) into->n[i] += h->n[i];
  into->calls += h->calls;
  into->errors += h->errors;
}

static double quantile(const bench_hist *h, double q) {
  if (!h->calls) return 0;
  uint64_t want = (uint64_t)(q * (double)h->calls), seen = 0;
  for (int i = 0; i < HIST_BUCKETS; i++) {
    seen += h->n[i];
    if (seen > want) return hist_mid_us(i);
  }
  return hist_mid_us(HIST_BUCKETS - 1);
}

void bench_report(const char *impl, const bench_args *a, const bench_hist *h, double secs) {
  printf("{\"impl\":\"%s\",\"payload\":%zu,\"concurrency\":%d,\"calls\":%llu,\"errors\":%llu,"
         "\"qps\":%.1f,\"p50_us\":%.1f,\"p99_us\":%.1f}\n",
         impl, a->payload, a->concurrency, (unsigned long long)h->calls,
         (unsigned long long)h->errors, secs > 0 ? (double)h->calls / secs : 0, quantile(h, 0.5),
         quantile(h, 0.99));
  fflush(stdout);
}

void bench_mark(int pid) {
  if (pid > 0) kill(pid, SIGUSR1);
  if (alloc_count_mark) alloc_count_mark();
}

static void pause_briefly(void) { nanosleep(&(struct timespec){0, 100 * 1000 * 1000}, NULL); }

bool bench_next(const bench_args *a, int64_t *t0, int64_t *start, int64_t *end, long counted) {
  if (!a->calls) return *t0 < *end;
  if (*t0 >= *start && counted == 0) {
    pause_briefly();
    bench_mark(a->mark_pid);
    pause_briefly();
    *t0 = *start = bench_now_ns();
  }
  if (counted < a->calls) return true;
  *end = *t0;
  pause_briefly();
  bench_mark(a->mark_pid);
  return false;
}

void bench_block_signals(void) {
  sigset_t s;
  sigemptyset(&s);
  sigaddset(&s, SIGINT);
  sigaddset(&s, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &s, NULL);
}

void bench_wait_for_signal(void) {
  sigset_t s;
  int sig;
  sigemptyset(&s);
  sigaddset(&s, SIGINT);
  sigaddset(&s, SIGTERM);
  sigwait(&s, &sig);
}
