#include <stdlib.h>
#include <string.h>

#include "emit.h"
#include "naming.h"

/* A C name, who declares it, and for what. */
typedef struct entry {
  const char *name;
  bool ours;          /* protoc-gen-nnrpc's, else protoc-c's */
  const char *what;   /* "the client stub of method pkg.S.M" */
  const char *detail; /* optional second part of `what` (not owned) */
} entry;

typedef struct entries {
  entry *v;
  size_t n, cap;
  bool oom;
} entries;

/* A NULL name is a function the method's kind does not get: nothing to add. */
static void add(entries *e, const char *name, bool ours, const char *what, const char *detail) {
  if (!name) return;
  if (e->n == e->cap) {
    size_t cap = e->cap ? 2 * e->cap : 256;
    entry *v = realloc(e->v, cap * sizeof *v);
    if (!v) {
      e->oom = true;
      return;
    }
    e->v = v;
    e->cap = cap;
  }
  e->v[e->n++] = (entry){name, ours, what, detail};
}

/* By name; then protoc-c's before ours; then by description, so the
 * report is the same on every run. */
static int cmp_entry(const void *a, const void *b) {
  const entry *x = a, *y = b;
  int c = strcmp(x->name, y->name);
  if (c) return c;
  if (x->ours != y->ours) return x->ours ? 1 : -1;
  c = strcmp(x->what, y->what);
  return c ? c : strcmp(x->detail, y->detail);
}

static void describe(nnrpc_sb *err, const entry *e) {
  nnrpc_sb_printf(err, "by %s for %s%s", e->ours ? "protoc-gen-nnrpc" : "protoc-c", e->what, e->detail);
}

static int check_methods(const nnrpc_file *f, nnrpc_sb *err) {
  for (size_t i = 0; i < f->n_services; i++) {
    const nnrpc_service *s = &f->services[i];
    for (size_t j = 0; j < s->n_methods; j++) {
      const nnrpc_method *m = &s->methods[j];
      if (nnrpc_is_reserved_c_name(m->lower)) {
        nnrpc_sb_printf(err, "%s: method %s: its C name \"%s\" is reserved in C (a keyword or a standard macro); rename the method",
                        f->proto, m->full_name, m->lower);
        return -1;
      }
    }
  }
  return 0;
}

static void add_ours(entries *e, const nnrpc_file *f) {
  for (size_t i = 0; i < f->n_services; i++) {
    const nnrpc_service *s = &f->services[i];
    add(e, s->handlers_type, true, "the handler table of service ", s->full_name);
    add(e, s->register_fn, true, "the register function of service ", s->full_name);
    add(e, s->methods_array, true, "the method table of service ", s->full_name);
    add(e, s->service_desc, true, "the service description of ", s->full_name);
    for (size_t j = 0; j < s->n_methods; j++) {
      const nnrpc_method *m = &s->methods[j];
      bool streaming = m->client_streaming || m->server_streaming;
      add(e, m->call_fn, true, "the blocking client stub of method ", m->full_name);
      add(e, m->start_fn, true, "the async start stub of method ", m->full_name);
      add(e, m->finish_fn, true, streaming ? "the stream finish stub of method " : "the async finish stub of method ",
          m->full_name);
      add(e, m->invoke_fn, true, "the server invoker of method ", m->full_name);
      add(e, m->open_fn, true, "the stream open stub of method ", m->full_name);
      add(e, m->write_fn, true, "the stream write stub of method ", m->full_name);
      add(e, m->read_fn, true, "the stream read stub of method ", m->full_name);
      add(e, m->close_send_fn, true, "the stream close_send stub of method ", m->full_name);
      add(e, m->close_and_finish_fn, true, "the stream close_and_finish stub of method ", m->full_name);
      add(e, m->recv_fn, true, "the server-side receive function of method ", m->full_name);
      add(e, m->send_fn, true, "the server-side send function of method ", m->full_name);
    }
  }
}

int nnrpc_check_file(const nnrpc_file *f, nnrpc_sb *err) {
  if (check_methods(f, err)) return -1;
  entries e = {NULL, 0, 0, false};
  add_ours(&e, f);
  for (const nnrpc_symbol *s = f->pbc_symbols; s; s = s->next) add(&e, s->name, false, s->origin, "");
  if (e.oom) {
    free(e.v);
    nnrpc_sb_puts(err, "protoc-gen-nnrpc: out of memory");
    return -1;
  }
  if (e.n > 1) qsort(e.v, e.n, sizeof *e.v, cmp_entry);
  /* Report the first clash that involves one of our names; failing that,
   * one of protoc-c's own (its output would not compile either). */
  const entry *a = NULL, *b = NULL;
  for (size_t i = 1; i < e.n; i++) {
    if (strcmp(e.v[i - 1].name, e.v[i].name) != 0) continue;
    if (!a || (!a->ours && !b->ours && (e.v[i - 1].ours || e.v[i].ours))) {
      a = &e.v[i - 1];
      b = &e.v[i];
    }
  }
  int rc = 0;
  if (a) {
    nnrpc_sb_printf(err, "%s: the C name %s would be declared twice: ", f->proto, a->name);
    describe(err, a);
    nnrpc_sb_puts(err, ", and ");
    describe(err, b);
    nnrpc_sb_puts(err, "; rename one of them");
    rc = -1;
  }
  free(e.v);
  return rc;
}
