/* Soak (docs/reliability.md, "Soak"): `make soak SOAK_SECONDS=60`.
 *
 *   soak [seconds]          (default: $SOAK_SECONDS, else 60)
 *
 * Starts the test server (tests/helpers/harness.c: Echo, Counter, Streamer)
 * in a child process (this program re-executed with --serve URL: nanomsg is
 * not fork-safe) on loopback tcp, then runs 64 caller threads over 4 channels
 * for the given time. Each caller picks, at random, a unary call (40%) or a
 * server-, client- or bidirectional-streaming call (20% each), and an intent:
 *
 *   OK (60%)        work far shorter than a 10 s deadline: must end OK, and
 *                   streams must carry exactly what was sent, in order;
 *   deadline (20%)  a deadline of 10..100 ms shorter than the work (a 200 ms+
 *                   handler, or an endless stream): must end DEADLINE_EXCEEDED;
 *   cancel (20%)    cancelled by the client after 0..20 ms or a few messages,
 *                   long before the work ends: must end CANCELLED.
 *
 * Every call has a deadline, so the run ends within seconds + 10 s. Any other
 * outcome is an unexpected error (the first ones are printed to stderr).
 *
 * Memory: the server's VmRSS (/proc/<pid>/status) is sampled every second.
 * The reference is taken at ~25% of the run, after warm-up (thread stacks,
 * buffers, hash tables and malloc's free lists have reached their working
 * size): the median of the samples from 15% to 35% of the run. It is compared
 * with the end: the median of the samples of the last 20%. Growth of 5% or
 * more fails the run. Medians, because single samples of this ~4 MiB server
 * swing by +-5% with the calls in flight at that instant.
 *
 * The server process limits glibc to 2 malloc arenas (mallopt M_ARENA_MAX).
 * With glibc's default (8 per core) the short-lived stream threads spread
 * over up to 16 arenas, each growing its own free lists at its own pace: RSS
 * creeps up for minutes (+2-3% a minute by the medians above; 5.1 -> 5.9 MiB
 * over 150 s) while the heap in use stays flat (0.5-0.7 MiB). That is
 * allocator slack, not nnrpc's memory, and it would eat the margin that a
 * real leak must cross. (MALLOC_ARENA_MAX=2 is common practice for servers
 * with many short-lived threads.) SOAK_ARENAS=n sets another limit, 0 keeps
 * glibc's default. Sensitivity: one leaked malloc(1) per unary call (32 bytes,
 * ~1100 calls/s) shows as +17% in a 30 s run.
 *
 * The last line is the summary:
 *   soak: N calls in S s (R calls/s), ok A, deadline B, cancelled C, unexpected U;
 *   server RSS X KiB at ~25% -> Y KiB at the end (+G%)
 * Exit status: 0 when U == 0 and G < 5, else 1 (2: setup failed).
 * SOAK_VERBOSE=1 prints every sample and the server's heap in use. */
#include <pthread.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers/harness.h"

extern char **environ;

#define CALLERS 64
#define CHANNELS 4
#define SAMPLE_MS 1000
#define MAX_SAMPLES 100000
#define LONG_MS 10000 /* the deadline of calls meant to succeed */
#define MAX_GROWTH_PCT 5.0

typedef NnrpcStreamTest__Num Num;

enum intent { WANT_OK, WANT_DEADLINE, WANT_CANCEL };
static const char *const intent_name[] = {"ok", "deadline", "cancel"};
static const int intent_code[] = {NNRPC_OK, NNRPC_DEADLINE_EXCEEDED, NNRPC_CANCELLED};
enum kind { UNARY, SERVER_STREAM, CLIENT_STREAM, BIDI, KINDS };
static const char *const kind_name[] = {"unary", "server-stream", "client-stream", "bidi"};

#define BAD_CONTENT (-100) /* OK, but the data was wrong */

static atomic_llong calls, by_intent[3], unexpected, by_kind[KINDS];
static atomic_bool stop;

static uint64_t rnd(uint64_t *s) {
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return *s;
}
static int64_t range(uint64_t *s, int64_t lo, int64_t hi) { return lo + (int64_t)(rnd(s) % (uint64_t)(hi - lo + 1)); }

/* ---------------------------------------------------------------- the calls */

typedef struct caller {
  nnrpc_channel *ch;
  nnrpc_cq *cq;
  uint64_t seed;
  char why[256]; /* the status message of the last call */
} caller;

static int keep(caller *c, nnrpc_status s) {
  snprintf(c->why, sizeof c->why, "%s", s.message);
  return s.code;
}

static int unary(caller *c, enum intent in) {
  NnrpcTest__EchoRequest req = NNRPC_TEST__ECHO_REQUEST__INIT;
  req.tag = rnd(&c->seed);
  uint8_t data[64];
  req.payload = (ProtobufCBinaryData){(size_t)range(&c->seed, 0, sizeof data), data};
  for (size_t i = 0; i < req.payload.len; i++) data[i] = th_pattern(req.tag, i);
  nnrpc_call_opts o = {.timeout_ms = LONG_MS};
  NnrpcTest__EchoReply *rep = NULL;
  int code;
  if (in == WANT_CANCEL) { /* async, cancelled while the handler works */
    req.delay_ms = 1000;
    nnrpc_completion how = {.cq = c->cq};
    nnrpc_call *call = NULL;
    code = nnrpc_test__echo__echo__start(c->ch, &req, &o, &how, &call);
    if (code) return code;
    th_sleep_ms((int)range(&c->seed, 0, 20));
    nnrpc_call_cancel(call);
    nnrpc_call *done = nnrpc_cq_next(c->cq, LONG_MS + 1000);
    if (!done) return keep(c, (nnrpc_status){-1, "no completion"});
    code = keep(c, nnrpc_test__echo__echo__finish(done, &rep, NULL));
  } else {
    if (in == WANT_DEADLINE) {
      req.delay_ms = 200;
      o.timeout_ms = range(&c->seed, 10, 100);
    } else {
      req.delay_ms = (uint32_t)range(&c->seed, 0, 5);
    }
    code = keep(c, nnrpc_test__echo__echo__call(c->ch, &req, &rep, &o));
  }
  if (rep) {
    if (rep->tag != req.tag || rep->payload.len != req.payload.len ||
        memcmp(rep->payload.data, data, req.payload.len) != 0)
      code = BAD_CONTENT;
    nnrpc_test__echo_reply__free_unpacked(rep, NULL);
  }
  return code;
}

static int server_stream(caller *c, enum intent in) {
  NnrpcStreamTest__RangeRequest req = NNRPC_STREAM_TEST__RANGE_REQUEST__INIT;
  req.start = range(&c->seed, 0, 1000000);
  req.count = (uint64_t)range(&c->seed, 0, 100);
  req.payload_size = (uint32_t)range(&c->seed, 0, 64);
  nnrpc_call_opts o = {.timeout_ms = LONG_MS};
  int64_t cancel_after = -1;
  if (in != WANT_OK) {
    req.forever = true;
    req.delay_ms = 5;
  }
  if (in == WANT_DEADLINE) o.timeout_ms = range(&c->seed, 10, 100);
  if (in == WANT_CANCEL) cancel_after = range(&c->seed, 0, 10);
  nnrpc_stream *st = NULL;
  nnrpc_status s = nnrpc_stream_test__streamer__range__open(c->ch, &req, &o, &st);
  if (s.code) return keep(c, s);
  bool good = true;
  int64_t got = 0;
  Num *m;
  if (cancel_after == 0) nnrpc_stream_cancel(st);
  while (nnrpc_stream_test__streamer__range__read(st, &m) == 1) {
    good = good && m->value == req.start + got && m->payload.len == req.payload_size;
    nnrpc_stream_test__num__free_unpacked(m, NULL);
    if (++got == cancel_after) nnrpc_stream_cancel(st);
  }
  int code = keep(c, nnrpc_stream_test__streamer__range__finish(st, NULL));
  if (code == NNRPC_OK && (!good || (uint64_t)got != req.count)) code = BAD_CONTENT;
  return code;
}

static int client_stream(caller *c, enum intent in) {
  nnrpc_call_opts o = {.timeout_ms = in == WANT_DEADLINE ? range(&c->seed, 10, 100) : LONG_MS};
  nnrpc_stream *st = NULL;
  nnrpc_status s = nnrpc_stream_test__streamer__sum__open(c->ch, &o, &st);
  if (s.code) return keep(c, s);
  int64_t n = in == WANT_OK ? range(&c->seed, 0, 100) : range(&c->seed, 1, 10), sum = 0;
  for (int64_t i = 0; i < n; i++) {
    Num m = NNRPC_STREAM_TEST__NUM__INIT;
    m.value = range(&c->seed, -1000, 1000);
    if (in == WANT_DEADLINE && i == 0) m.delay_ms = 200; /* the handler stalls */
    sum += m.value;
    if (nnrpc_stream_test__streamer__sum__write(st, &m) != NNRPC_OK) break; /* finish says why */
  }
  if (in == WANT_CANCEL) nnrpc_stream_cancel(st);
  NnrpcStreamTest__Total *tot = NULL;
  int code = keep(c, nnrpc_stream_test__streamer__sum__close_and_finish(st, &tot, NULL));
  if (tot) {
    if (tot->sum != sum || tot->count != (uint64_t)n) code = BAD_CONTENT;
    nnrpc_stream_test__total__free_unpacked(tot, NULL);
  }
  return code;
}

static int bidi(caller *c, enum intent in) {
  nnrpc_call_opts o = {.timeout_ms = in == WANT_DEADLINE ? range(&c->seed, 10, 100) : LONG_MS};
  nnrpc_stream *st = NULL;
  nnrpc_status s = nnrpc_stream_test__streamer__chat__open(c->ch, &o, &st);
  if (s.code) return keep(c, s);
  int64_t n = in == WANT_OK ? range(&c->seed, 0, 50) : range(&c->seed, 1, 10);
  bool good = true;
  for (int64_t i = 0; i < n && good; i++) {
    Num m = NNRPC_STREAM_TEST__NUM__INIT;
    m.value = i;
    if (in == WANT_DEADLINE) m.delay_ms = 200; /* the handler stalls before answering */
    if (nnrpc_stream_test__streamer__chat__write(st, &m) != NNRPC_OK) break;
    Num *back = NULL;
    if (nnrpc_stream_test__streamer__chat__read(st, &back) != 1) break;
    good = back->value == i;
    nnrpc_stream_test__num__free_unpacked(back, NULL);
    if (in == WANT_CANCEL && i == n - 1) nnrpc_stream_cancel(st);
  }
  if (in == WANT_OK && good) { /* half-close: the stream then ends with nothing more */
    nnrpc_stream_test__streamer__chat__close_send(st);
    Num *extra = NULL;
    if (nnrpc_stream_test__streamer__chat__read(st, &extra) == 1) {
      good = false;
      nnrpc_stream_test__num__free_unpacked(extra, NULL);
    }
  }
  int code = keep(c, nnrpc_stream_test__streamer__chat__finish(st, NULL));
  if (code == NNRPC_OK && !good) code = BAD_CONTENT;
  return code;
}

static void *caller_main(void *arg) {
  caller *c = arg;
  while (!atomic_load(&stop)) {
    unsigned r = (unsigned)(rnd(&c->seed) % 100);
    enum kind k = r < 40 ? UNARY : r < 60 ? SERVER_STREAM : r < 80 ? CLIENT_STREAM : BIDI;
    r = (unsigned)(rnd(&c->seed) % 100);
    enum intent in = r < 60 ? WANT_OK : r < 80 ? WANT_DEADLINE : WANT_CANCEL;
    c->why[0] = 0;
    int code = k == UNARY ? unary(c, in) : k == SERVER_STREAM ? server_stream(c, in)
               : k == CLIENT_STREAM ? client_stream(c, in) : bidi(c, in);
    atomic_fetch_add(&calls, 1);
    atomic_fetch_add(&by_kind[k], 1);
    if (code == intent_code[in]) {
      atomic_fetch_add(&by_intent[in], 1);
    } else if (atomic_fetch_add(&unexpected, 1) < 20) {
      fprintf(stderr, "soak: unexpected: %s call meant to end %s ended %s (%d) \"%s\"\n", kind_name[k],
              intent_name[in], code == BAD_CONTENT ? "OK with wrong data" : nnrpc_code_name(code), code, c->why);
    }
  }
  return NULL;
}

/* ---------------------------------------------------------------- the server process */

static volatile sig_atomic_t term;
static void on_term(int sig) {
  (void)sig;
  term = 1;
}

static int serve(const char *url) {
  signal(SIGTERM, on_term);
#ifdef __GLIBC__
  const char *arenas = getenv("SOAK_ARENAS");
  int narenas = arenas && *arenas ? atoi(arenas) : 2;
  if (narenas > 0) mallopt(M_ARENA_MAX, narenas);
#endif
  nnrpc_server_opts so = {.workers = 8};
  th_server *t = th_server_start_at(url, &so);
  if (!t) return 2;
  pid_t parent = getppid();
  for (int i = 1; !term && getppid() == parent; i++) {
    th_sleep_ms(50);
#ifdef __GLIBC__
    if (getenv("SOAK_VERBOSE") && i % 40 == 0) { /* the heap in use, to tell a leak from allocator slack */
      struct mallinfo2 mi = mallinfo2();
      fprintf(stderr, "soak: server heap: %zu KiB in use, %zu KiB free in arenas, %zu KiB mapped\n",
              mi.uordblks >> 10, mi.fordblks >> 10, mi.hblkhd >> 10);
    }
#endif
  }
#ifdef __GLIBC__
  if (getenv("SOAK_VERBOSE")) {
    struct mallinfo2 mi = mallinfo2();
    fprintf(stderr, "soak: server heap when idle: %zu KiB in use, %zu KiB free in arenas\n", mi.uordblks >> 10,
            mi.fordblks >> 10);
  }
#endif
  th_server_stop(t);
  return 0;
}

/* The median of the samples taken between from_ms and to_ms; -1 if none. */
static int cmp_long(const void *a, const void *b) {
  long x = *(const long *)a, y = *(const long *)b;
  return (x > y) - (x < y);
}
static long median_of(const long *rss, const int64_t *at, int n, int64_t from_ms, int64_t to_ms) {
  static long w[MAX_SAMPLES];
  int k = 0;
  for (int i = 0; i < n; i++)
    if (at[i] >= from_ms && at[i] <= to_ms) w[k++] = rss[i];
  if (k == 0) return -1;
  qsort(w, (size_t)k, sizeof w[0], cmp_long);
  return w[k / 2];
}

static long rss_of(pid_t pid) {
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
  FILE *f = fopen(path, "r");
  long kib = -1;
  while (f && fgets(line, sizeof line, f))
    if (sscanf(line, "VmRSS: %ld", &kib) == 1) break;
  if (f) fclose(f);
  return kib;
}

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "--serve") == 0) return serve(argv[2]);
  const char *env = getenv("SOAK_SECONDS");
  int seconds = argc > 1 ? atoi(argv[1]) : env && *env ? atoi(env) : 60;
  if (seconds < 4) seconds = 4;

  char url[128], self[4096];
  th_url("tcp", url, sizeof url);
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) return 2;
  self[n] = 0;
  char *cargv[] = {self, "--serve", url, NULL};
  pid_t pid;
  if (posix_spawn(&pid, self, NULL, NULL, cargv, environ)) return 2;

  nnrpc_channel *ch[CHANNELS];
  for (int i = 0; i < CHANNELS; i++)
    if (nnrpc_channel_open(&ch[i], url, NULL)) return 2;
  /* The server is up when a call goes through. */
  int up = -1;
  for (int i = 0; i < 50 && up != NNRPC_OK; i++) {
    NnrpcTest__EchoRequest req = NNRPC_TEST__ECHO_REQUEST__INIT;
    NnrpcTest__EchoReply *rep = NULL;
    nnrpc_call_opts o = {.timeout_ms = 200};
    up = nnrpc_test__echo__echo__call(ch[0], &req, &rep, &o).code;
    if (rep) nnrpc_test__echo_reply__free_unpacked(rep, NULL);
  }
  if (up != NNRPC_OK) {
    fprintf(stderr, "soak: the server at %s did not come up\n", url);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return 2;
  }

  static caller cs[CALLERS];
  pthread_t th[CALLERS];
  int64_t t0 = th_now_ms(), end = t0 + (int64_t)seconds * 1000;
  for (int i = 0; i < CALLERS; i++) {
    cs[i].ch = ch[i % CHANNELS];
    cs[i].seed = 0x9e3779b97f4a7c15ULL * (uint64_t)(i + 1) ^ (uint64_t)t0;
    if (nnrpc_cq_open(&cs[i].cq) || pthread_create(&th[i], NULL, caller_main, &cs[i])) return 2;
  }
  /* One sample a second (see the top of the file for what is compared). */
  static long rss[MAX_SAMPLES];
  static int64_t at[MAX_SAMPLES];
  int nsamples = 0;
  int64_t next = t0 + SAMPLE_MS;
  while (th_now_ms() < end) {
    int64_t now = th_now_ms();
    if (now >= next) {
      long r = rss_of(pid);
      if (r < 0) break; /* the server died: the callers' errors will say so */
      if (nsamples < MAX_SAMPLES) {
        rss[nsamples] = r;
        at[nsamples++] = now - t0;
      }
      next += SAMPLE_MS;
      if (getenv("SOAK_VERBOSE"))
        printf("soak: %5.1f s: %lld calls, %lld unexpected, server RSS %ld KiB\n", (double)(now - t0) / 1000.0,
               atomic_load(&calls), atomic_load(&unexpected), r);
    }
    th_sleep_ms(20);
  }
  int64_t span = end - t0;
  long warm_kib = median_of(rss, at, nsamples, span * 15 / 100, span * 35 / 100);
  long last_kib = median_of(rss, at, nsamples, span * 80 / 100, span);
  atomic_store(&stop, true);
  for (int i = 0; i < CALLERS; i++) {
    pthread_join(th[i], NULL);
    nnrpc_cq_close(cs[i].cq);
  }
  double secs = (double)(th_now_ms() - t0) / 1000.0;
  for (int i = 0; i < CHANNELS; i++) nnrpc_channel_close(ch[i]);
  kill(pid, SIGTERM);
  int status = 0;
  for (int i = 0; i < 200 && waitpid(pid, &status, WNOHANG) == 0; i++) th_sleep_ms(50);
  if (waitpid(pid, &status, WNOHANG) == 0) { /* did not stop in 10 s */
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    status = -1;
  }
  bool server_ok = status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0;

  double growth = warm_kib > 0 && last_kib > 0 ? 100.0 * (double)(last_kib - warm_kib) / (double)warm_kib : 100.0;
  long long total = atomic_load(&calls), bad = atomic_load(&unexpected);
  printf("soak: %lld calls by %d callers on %d channels (unary %lld, server-stream %lld, client-stream %lld, "
         "bidi %lld)\n",
         total, CALLERS, CHANNELS, atomic_load(&by_kind[UNARY]), atomic_load(&by_kind[SERVER_STREAM]),
         atomic_load(&by_kind[CLIENT_STREAM]), atomic_load(&by_kind[BIDI]));
  if (!server_ok) printf("soak: the server process did not exit cleanly (status %d)\n", status);
  printf("soak: %lld calls in %.0f s (%.0f calls/s), ok %lld, deadline %lld, cancelled %lld, unexpected %lld; "
         "server RSS %ld KiB at ~25%% -> %ld KiB at the end (%+.1f%%)\n",
         total, secs, (double)total / secs, atomic_load(&by_intent[WANT_OK]),
         atomic_load(&by_intent[WANT_DEADLINE]), atomic_load(&by_intent[WANT_CANCEL]), bad, warm_kib, last_kib,
         growth);
  return bad == 0 && growth < MAX_GROWTH_PCT && server_ok && total > 0 ? 0 : 1;
}
