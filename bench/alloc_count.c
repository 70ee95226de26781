/* An LD_PRELOAD shim that counts heap allocations: malloc, calloc, realloc
 * and free (free(NULL) is not counted), forwarding to glibc's __libc_*.
 *
 * The counts go out as one line per mark and one at exit:
 *   alloc_count pid=P mark=K malloc=.. calloc=.. realloc=.. free=.. bytes=..
 * (mark=exit at exit) to the file $ALLOC_COUNT_OUT (appended) or to stderr.
 * A mark is SIGUSR1 or a call to alloc_count_mark() (the bench client calls it
 * through a weak reference, so it only happens when the shim is loaded).
 *
 * With ALLOC_COUNT_SITES=1 every allocation (not free) between an odd mark and the next
 * even one is also attributed to its call stack; the distinct stacks and their
 * counts are written at exit as
 *   alloc_site pid=P kind=malloc count=N bytes=B frames=OBJ+0xOFF(SYM);OBJ+0xOFF(SYM);...
 * innermost frame first (tools/bench.sh resolves them with addr2line). That
 * mode is slow (a backtrace per allocation); use it for a few hundred calls. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <execinfo.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t n);
extern void __libc_free(void *p);

void alloc_count_mark(void);

enum { K_MALLOC, K_CALLOC, K_REALLOC, K_FREE, K_N };
static const char *const kind_name[K_N] = {"malloc", "calloc", "realloc", "free"};

static atomic_ulong counts[K_N];
static atomic_ulong bytes;
static atomic_uint marks;
static int out_fd = 2;

/* ---------------------------------------------------------------- call sites */
#define SITE_DEPTH 24
#define SITE_SLOTS 4096
typedef struct site {
  atomic_ulong key; /* 0: free slot */
  atomic_ulong count, bytes;
  atomic_int ready; /* frames written */
  int kind, nframes;
  void *frames[SITE_DEPTH];
} site;

static int sites_on;            /* ALLOC_COUNT_SITES set */
static atomic_int recording;    /* inside a mark window */
static site sites[SITE_SLOTS];
static __thread int in_shim __attribute__((tls_model("initial-exec")));

__attribute__((noinline)) static void record_site(int kind, size_t n) {
  if (!sites_on || !atomic_load_explicit(&recording, memory_order_relaxed) || in_shim) return;
  in_shim = 1; /* backtrace() may allocate (the unwinder loads on first use) */
  void *fr[SITE_DEPTH + 2];
  int nf = backtrace(fr, SITE_DEPTH + 2);
  /* fr[0] is record_site, fr[1] our malloc/calloc/...: keep from the caller on */
  int skip = nf > 2 ? 2 : nf;
  void **f = fr + skip;
  nf -= skip;
  uint64_t h = 1469598103934665603ull ^ (uint64_t)kind;
  for (int i = 0; i < nf; i++) h = (h ^ (uint64_t)(uintptr_t)f[i]) * 1099511628211ull;
  if (!h) h = 1;
  for (unsigned i = 0; i < SITE_SLOTS; i++) {
    site *s = &sites[(h + i) % SITE_SLOTS];
    unsigned long k = atomic_load(&s->key);
    if (k == 0) {
      unsigned long zero = 0;
      if (atomic_compare_exchange_strong(&s->key, &zero, h)) {
        s->kind = kind;
        s->nframes = nf;
        memcpy(s->frames, f, (size_t)nf * sizeof *f);
        atomic_store(&s->ready, 1);
        atomic_fetch_add(&s->count, 1);
        atomic_fetch_add(&s->bytes, n);
        break;
      }
      k = zero; /* somebody else took it: compare with theirs */
    }
    if (k == h) {
      atomic_fetch_add(&s->count, 1);
      atomic_fetch_add(&s->bytes, n);
      break;
    }
  }
  in_shim = 0;
}

/* ---------------------------------------------------------------- output (async-signal-safe) */
typedef struct line {
  char b[4096];
  size_t n;
} line;

static void put_s(line *l, const char *s) {
  while (*s && l->n < sizeof l->b - 1) l->b[l->n++] = *s++;
}
static void put_u(line *l, unsigned long v, int base) {
  char t[24];
  int i = 0;
  do {
    t[i++] = "0123456789abcdef"[v % (unsigned)base];
    v /= (unsigned)base;
  } while (v);
  while (i && l->n < sizeof l->b - 1) l->b[l->n++] = t[--i];
}
static void put_end(line *l) {
  l->b[l->n++] = '\n';
  for (size_t off = 0; off < l->n;) {
    ssize_t w = write(out_fd, l->b + off, l->n - off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) break;
    off += (size_t)w;
  }
}

static void dump_counts(const char *mark, unsigned long mark_no) {
  line l = {.n = 0};
  put_s(&l, "alloc_count pid=");
  put_u(&l, (unsigned long)getpid(), 10);
  put_s(&l, " mark=");
  if (mark)
    put_s(&l, mark);
  else
    put_u(&l, mark_no, 10);
  for (int k = 0; k < K_N; k++) {
    put_s(&l, " ");
    put_s(&l, kind_name[k]);
    put_s(&l, "=");
    put_u(&l, atomic_load(&counts[k]), 10);
  }
  put_s(&l, " bytes=");
  put_u(&l, atomic_load(&bytes), 10);
  put_end(&l);
}

void alloc_count_mark(void) {
  int saved = errno;
  unsigned m = atomic_fetch_add(&marks, 1) + 1;
  /* odd marks open the attribution window, even ones close it; the counts
   * are dumped first at an opening mark and last at a closing one, so the
   * window holds no allocation of the dump itself (it makes none anyway) */
  if (m & 1) {
    dump_counts(NULL, m);
    atomic_store(&recording, 1);
  } else {
    atomic_store(&recording, 0);
    dump_counts(NULL, m);
  }
  errno = saved;
}

static void on_usr1(int sig) {
  (void)sig;
  alloc_count_mark();
}

static char self_exe[4096];

static void dump_sites(void) {
  if (!sites_on) return;
  in_shim = 1;
  for (unsigned i = 0; i < SITE_SLOTS; i++) {
    site *s = &sites[i];
    if (!atomic_load(&s->key) || !atomic_load(&s->ready)) continue;
    line l = {.n = 0};
    put_s(&l, "alloc_site pid=");
    put_u(&l, (unsigned long)getpid(), 10);
    put_s(&l, " kind=");
    put_s(&l, kind_name[s->kind]);
    put_s(&l, " count=");
    put_u(&l, atomic_load(&s->count), 10);
    put_s(&l, " bytes=");
    put_u(&l, atomic_load(&s->bytes), 10);
    put_s(&l, " frames=");
    for (int j = 0; j < s->nframes; j++) {
      Dl_info di;
      /* a return address points after the call: look up the call itself */
      uintptr_t pc = (uintptr_t)s->frames[j] - 1;
      if (j) put_s(&l, ";");
      if (dladdr((void *)pc, &di) && di.dli_fname) {
        put_s(&l, di.dli_fname[0] ? di.dli_fname : self_exe);
        put_s(&l, "+0x");
        put_u(&l, pc - (uintptr_t)di.dli_fbase, 16);
        put_s(&l, "(");
        put_s(&l, di.dli_sname ? di.dli_sname : "?");
        put_s(&l, ")");
      } else {
        put_s(&l, "?+0x");
        put_u(&l, pc, 16);
        put_s(&l, "(?)");
      }
    }
    put_end(&l);
  }
}

__attribute__((constructor)) static void alloc_count_init(void) {
  const char *out = getenv("ALLOC_COUNT_OUT");
  if (out && *out) {
    int fd = open(out, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd >= 0) out_fd = fd;
  }
  const char *s = getenv("ALLOC_COUNT_SITES");
  if (s && *s && strcmp(s, "0")) {
    ssize_t n = readlink("/proc/self/exe", self_exe, sizeof self_exe - 1);
    self_exe[n > 0 ? n : 0] = 0;
    void *fr[4];
    in_shim = 1;
    backtrace(fr, 4); /* loads the unwinder now, outside any window */
    in_shim = 0;
    sites_on = 1;
  }
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_usr1;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGUSR1, &sa, NULL);
}

__attribute__((destructor)) static void alloc_count_fini(void) {
  dump_counts("exit", 0);
  dump_sites();
}

/* ---------------------------------------------------------------- the allocator */
void *malloc(size_t n) {
  atomic_fetch_add_explicit(&counts[K_MALLOC], 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&bytes, n, memory_order_relaxed);
  record_site(K_MALLOC, n);
  return __libc_malloc(n);
}

void *calloc(size_t n, size_t size) {
  atomic_fetch_add_explicit(&counts[K_CALLOC], 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&bytes, n * size, memory_order_relaxed);
  record_site(K_CALLOC, n * size);
  return __libc_calloc(n, size);
}

void *realloc(void *p, size_t n) {
  atomic_fetch_add_explicit(&counts[K_REALLOC], 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&bytes, n, memory_order_relaxed);
  record_site(K_REALLOC, n);
  return __libc_realloc(p, n);
}

void free(void *p) {
  if (p) atomic_fetch_add_explicit(&counts[K_FREE], 1, memory_order_relaxed);
  __libc_free(p);
}
