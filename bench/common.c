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
    default:
      fprintf(stderr, "usage: %s --url URL --payload BYTES --concurrency C --seconds S [--warmup S] [--async]\n",
              argv[0]);
      exit(2);
    }
  }
  if (a->concurrency < 1 || a->concurrency > 4096 || a->seconds <= 0) {
    fprintf(stderr, "%s: bad --concurrency or --seconds\n", argv[0]);
    exit(2);
  }
}

void bench_record(bench_hist *h, int64_t ns) {
  int64_t us = ns / 1000;
  h->n[us < HIST_BUCKETS - 1 ? us : HIST_BUCKETS - 1]++;
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
    if (seen > want) return i + 0.5;
  }
  return HIST_BUCKETS;
}

void bench_report(const char *impl, const bench_args *a, const bench_hist *h, double secs) {
  printf("{\"impl\":\"%s\",\"payload\":%zu,\"concurrency\":%d,\"calls\":%llu,\"errors\":%llu,"
         "\"qps\":%.1f,\"p50_us\":%.1f,\"p99_us\":%.1f}\n",
         impl, a->payload, a->concurrency, (unsigned long long)h->calls,
         (unsigned long long)h->errors, secs > 0 ? (double)h->calls / secs : 0, quantile(h, 0.5),
         quantile(h, 0.99));
  fflush(stdout);
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
