/* Runs a fuzz target's LLVMFuzzerTestOneInput on given inputs, without
 * libFuzzer: to reproduce a finding under a debugger, and to soak a target
 * on a fixed set of inputs (no corpus growth), watching its memory.
 *   replay_<target> [-n ROUNDS] FILE|DIR...
 * After each round it prints the inputs run, the live heap (memory allocated
 * and not freed, whoever holds it) and the RSS. Also builds without
 * sanitizers (a plain malloc shows what ASan's own bookkeeping adds). */
#include <dirent.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));
/* ASan's count of live heap bytes; without ASan, glibc's. */
size_t __sanitizer_get_current_allocated_bytes(void) __attribute__((weak));

static size_t live_heap(void) {
  if (__sanitizer_get_current_allocated_bytes) return __sanitizer_get_current_allocated_bytes();
  return mallinfo2().uordblks;
}

typedef struct input {
  uint8_t *p;
  size_t len;
} input;

static input *inputs;
static size_t ninputs, cap;

static void add_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    perror(path);
    exit(2);
  }
  if (ninputs == cap) {
    cap = cap ? 2 * cap : 64;
    inputs = realloc(inputs, cap * sizeof *inputs);
    if (!inputs) abort();
  }
  input *in = &inputs[ninputs++];
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  in->len = n > 0 ? (size_t)n : 0;
  in->p = malloc(in->len ? in->len : 1);
  if (!in->p || fread(in->p, 1, in->len, f) != in->len) abort();
  fclose(f);
}

static void add_path(const char *path) {
  struct stat st;
  if (stat(path, &st)) {
    perror(path);
    exit(2);
  }
  if (!S_ISDIR(st.st_mode)) {
    add_file(path);
    return;
  }
  DIR *d = opendir(path);
  struct dirent *e;
  while (d && (e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", path, e->d_name);
    add_file(p);
  }
  if (d) closedir(d);
}

static long rss_kib(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  long pages = 0, resident = 0;
  if (f && fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
  if (f) fclose(f);
  return resident * 4;
}

int main(int argc, char **argv) {
  long rounds = 1;
  int i = 1;
  if (i + 1 < argc && strcmp(argv[i], "-n") == 0) {
    rounds = atol(argv[i + 1]);
    i += 2;
  }
  if (i == argc) {
    fprintf(stderr, "usage: %s [-n ROUNDS] FILE|DIR...\n", argv[0]);
    return 2;
  }
  if (LLVMFuzzerInitialize) LLVMFuzzerInitialize(&argc, &argv);
  for (; i < argc; i++) add_path(argv[i]);
  for (long r = 1; r <= rounds; r++) {
    for (size_t k = 0; k < ninputs; k++) LLVMFuzzerTestOneInput(inputs[k].p, inputs[k].len);
    printf("round %ld: %zu inputs, live heap %zu KiB, RSS %ld KiB\n", r, ninputs,
           live_heap() >> 10, rss_kib());
    fflush(stdout);
  }
  for (size_t k = 0; k < ninputs; k++) free(inputs[k].p);
  free(inputs);
  return 0;
}
