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
  const char *file;   /* the .proto it comes from */
  nnrpc_loc loc;      /* where in `file`, if known */
} entry;

typedef struct entries {
  entry *v;
  size_t n, cap;
  bool oom;
} entries;

/* A NULL name is a function the method's kind does not get: nothing to add. */
static void add(entries *e, const char *name, bool ours, const char *what, const char *detail, const char *file,
                nnrpc_loc loc) {
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
  e->v[e->n++] = (entry){name, ours, what, detail, file, loc};
}

/* By name; then protoc-c's before ours; then by description, so the
 * report is the same on every run. */
static int cmp_entry(const void *a, const void *b) {
  const entry *x = a, *y = b;
  int c = strcmp(x->name, y->name);
  if (c) return c;
  if (x->ours != y->ours) return x->ours ? 1 : -1;
  c = strcmp(x->what, y->what);
  if (c) return c;
  c = strcmp(x->detail, y->detail);
  return c ? c : strcmp(x->file, y->file);
}

/* `where` is the file the message starts with: our names elsewhere say
 * which file they are for (protoc-c's always do). */
static void describe(nnrpc_sb *err, const entry *e, const char *where) {
  nnrpc_sb_printf(err, "by %s for %s%s", e->ours ? "protoc-gen-nnrpc" : "protoc-c", e->what, e->detail);
  if (e->ours && strcmp(e->file, where) != 0) nnrpc_sb_printf(err, " (%s)", e->file);
}

static int check_methods(const nnrpc_file *f, nnrpc_sb *err) {
  for (size_t i = 0; i < f->n_services; i++) {
    const nnrpc_service *s = &f->services[i];
    for (size_t j = 0; j < s->n_methods; j++) {
      const nnrpc_method *m = &s->methods[j];
      const char *why = nnrpc_reserved_c_name(m->lower);
      if (why) {
        nnrpc_put_where(err, f->proto, m->loc);
        nnrpc_sb_printf(err, "method %s: its C name \"%s\" (protoc-c's, and the member of %s) %s; rename the method",
                        m->full_name, m->lower, s->handlers_type, why);
        return -1;
      }
    }
  }
  return 0;
}

static void add_ours(entries *e, const nnrpc_file *f) {
  for (size_t i = 0; i < f->n_services; i++) {
    const nnrpc_service *s = &f->services[i];
    const char *p = f->proto;
    add(e, s->handlers_type, true, "the handler table of service ", s->full_name, p, s->loc);
    add(e, s->register_fn, true, "the register function of service ", s->full_name, p, s->loc);
    add(e, s->methods_array, true, "the method table of service ", s->full_name, p, s->loc);
    add(e, s->service_desc, true, "the service description of ", s->full_name, p, s->loc);
    for (size_t j = 0; j < s->n_methods; j++) {
      const nnrpc_method *m = &s->methods[j];
      const char *n = m->full_name;
      const nnrpc_loc l = m->loc;
      bool streaming = m->client_streaming || m->server_streaming;
      add(e, m->call_fn, true, "the blocking client stub of method ", n, p, l);
      add(e, m->start_fn, true, "the async start stub of method ", n, p, l);
      add(e, m->finish_fn, true, streaming ? "the stream finish stub of method " : "the async finish stub of method ",
          n, p, l);
      add(e, m->invoke_fn, true, "the server invoker of method ", n, p, l);
      add(e, m->open_fn, true, "the stream open stub of method ", n, p, l);
      add(e, m->write_fn, true, "the stream write stub of method ", n, p, l);
      add(e, m->read_fn, true, "the stream read stub of method ", n, p, l);
      add(e, m->close_send_fn, true, "the stream close_send stub of method ", n, p, l);
      add(e, m->close_and_finish_fn, true, "the stream close_and_finish stub of method ", n, p, l);
      add(e, m->recv_fn, true, "the server-side receive function of method ", n, p, l);
      add(e, m->send_fn, true, "the server-side send function of method ", n, p, l);
    }
  }
}

/* The position of file `proto` among the files of the run. */
static size_t file_rank(const nnrpc_model *m, const char *proto) {
  for (size_t i = 0; m && i < m->n_files; i++)
    if (strcmp(m->files[i].proto, proto) == 0) return i;
  return 0;
}

/* The position a clash is reported at: that of the construct which made
 * it, the later of the two (in the file protoc names later, or further down
 * the same file); else whichever is known. */
static const entry *report_at(const entry *a, const entry *b, const nnrpc_model *m) {
  bool ka = a->loc.line > 0, kb = b->loc.line > 0;
  if (ka && kb) {
    size_t ra = file_rank(m, a->file), rb = file_rank(m, b->file);
    if (ra != rb) return rb > ra ? b : a;
    return (b->loc.line > a->loc.line || (b->loc.line == a->loc.line && b->loc.col > a->loc.col)) ? b : a;
  }
  return ka ? a : kb ? b : NULL;
}

int nnrpc_check_file(const nnrpc_file *f, nnrpc_sb *err) {
  if (check_methods(f, err)) return -1;
  /* every name generated in this run (the files are linked together) and
   * every name protoc-c declares for them and their imports */
  entries e = {NULL, 0, 0, false};
  const nnrpc_model *m = f->model;
  if (m) {
    for (size_t i = 0; i < m->n_files; i++) add_ours(&e, &m->files[i]);
    for (const nnrpc_symbol *s = m->pbc_symbols; s; s = s->next) add(&e, s->name, false, s->origin, "", s->file, s->loc);
  } else {
    add_ours(&e, f);
  }
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
    const entry *at = report_at(a, b, m);
    const char *where = at ? at->file : b->ours ? b->file : a->ours ? a->file : f->proto;
    nnrpc_put_where(err, where, at ? at->loc : (nnrpc_loc){0, 0});
    nnrpc_sb_printf(err, "the C name %s would be declared twice: ", a->name);
    describe(err, a, where);
    nnrpc_sb_puts(err, ", and ");
    describe(err, b, where);
    nnrpc_sb_puts(err, "; rename one of them");
    rc = -1;
  }
  free(e.v);
  return rc;
}
