#include "model.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "naming.h"
#include "pbc_options.h"

typedef Google__Protobuf__Compiler__CodeGeneratorRequest Request;
typedef Google__Protobuf__FileDescriptorProto FileProto;
typedef Google__Protobuf__DescriptorProto MsgProto;
typedef Google__Protobuf__EnumDescriptorProto EnumProto;
typedef Google__Protobuf__ServiceDescriptorProto ServiceProto;
typedef Google__Protobuf__MethodDescriptorProto MethodProto;

/* FileDescriptorProto field numbers, for SourceCodeInfo paths. */
enum { FILE_SERVICE = 6, SERVICE_METHOD = 2 };

/* ---------------------------------------------------------------- arena */

/* Each allocation is its own zeroed malloc on a list: the model is small,
 * and this frees everything in one call without per-field bookkeeping. */
typedef struct chunk {
  struct chunk *next;
  max_align_t data[];
} chunk;

struct nnrpc_arena {
  chunk *head;
};

static void *arena_array(nnrpc_arena *a, size_t count, size_t size) {
  if (count == 0) count = 1;
  if (size > (SIZE_MAX - sizeof(chunk)) / count) return NULL;
  chunk *c = calloc(1, sizeof(chunk) + count * size);
  if (!c) return NULL;
  c->next = a->head;
  a->head = c;
  return c->data;
}

/* ---------------------------------------------------------------- builder */

/* One message type of the request, for resolving method types by name. */
typedef struct type_entry {
  const char *full_name; /* "pkg.Outer.Inner" */
  const char *relative;  /* "Outer.Inner": the name inside its package */
  const FileProto *file;
  const MsgProto *msg;
  bool top_level;
} type_entry;

typedef struct builder {
  const Request *req;
  nnrpc_arena *arena;
  nnrpc_sb *err;
  nnrpc_sb tmp;          /* scratch for names */
  bool oom;
  type_entry *types;     /* every message in the request (malloc'd) */
  size_t n_types, cap_types;
} builder;

static void *alloc_array(builder *b, size_t count, size_t size) {
  void *p = arena_array(b->arena, count, size);
  if (!p) b->oom = true;
  return p;
}

/* Copies the scratch text into the arena and empties the scratch. Out of
 * memory is noted in b->oom and gives "", so callers check once at the end. */
static const char *keep_tmp(builder *b) {
  const char *s = "";
  if (b->tmp.failed) {
    b->oom = true;
  } else {
    const char *t = nnrpc_sb_str(&b->tmp);
    char *copy = alloc_array(b, strlen(t) + 1, 1);
    if (copy) s = strcpy(copy, t);
  }
  nnrpc_sb_clear(&b->tmp);
  return s;
}

static const char *fmt(builder *b, const char *f, ...) NNRPC_SB_PRINTF(2, 3);
static const char *fmt(builder *b, const char *f, ...) {
  va_list ap;
  va_start(ap, f);
  nnrpc_sb_clear(&b->tmp);
  nnrpc_sb_vprintf(&b->tmp, f, ap);
  va_end(ap);
  return keep_tmp(b);
}

static const char *convert(builder *b, void (*conv)(nnrpc_sb *, const char *), const char *full_name) {
  nnrpc_sb_clear(&b->tmp);
  conv(&b->tmp, full_name);
  return keep_tmp(b);
}

static int fail(builder *b, const char *file, const char *f, ...) NNRPC_SB_PRINTF(3, 4);
static int fail(builder *b, const char *file, const char *f, ...) {
  va_list ap;
  va_start(ap, f);
  nnrpc_sb_clear(b->err);
  nnrpc_sb_printf(b->err, "%s: ", file);
  nnrpc_sb_vprintf(b->err, f, ap);
  va_end(ap);
  return -1;
}

static const FileProto *find_file(const Request *req, const char *name) {
  for (size_t i = 0; i < req->n_proto_file; i++)
    if (strcmp(req->proto_file[i]->name, name) == 0) return req->proto_file[i];
  return NULL;
}

static const char *package_of(const FileProto *f) { return f->package ? f->package : ""; }

/* "pkg.Outer.Inner" -> "Outer.Inner": the part of a full name inside f's package. */
static const char *in_package(const FileProto *f, const char *full_name) {
  size_t n = strlen(package_of(f));
  if (n && strncmp(full_name, package_of(f), n) == 0 && full_name[n] == '.') return full_name + n + 1;
  return full_name;
}

static const char *join_name(builder *b, const char *prefix, const char *name) {
  return *prefix ? fmt(b, "%s.%s", prefix, name) : fmt(b, "%s", name);
}

/* protoc-c names a file's types and services after their proto names with
 * the package replaced by (pb_c_file).c_package when that is set. */
static const char *c_full_name(builder *b, const FileProto *f, const char *relative) {
  nnrpc_pbc_file_opts o;
  nnrpc_pbc_file_options(f->options, &o);
  nnrpc_sb_clear(&b->tmp);
  if (o.has_c_package)
    nnrpc_sb_putn(&b->tmp, o.c_package, o.c_package_len);
  else
    nnrpc_sb_puts(&b->tmp, package_of(f));
  nnrpc_sb_printf(&b->tmp, ".%s", relative); /* empty pieces are skipped later */
  return keep_tmp(b);
}

/* "dir/x.proto" + ".pb-c.h" -> "dir/x.pb-c.h" */
static const char *output_name(builder *b, const char *proto, const char *suffix) {
  nnrpc_sb_clear(&b->tmp);
  nnrpc_strip_proto(&b->tmp, proto);
  nnrpc_sb_puts(&b->tmp, suffix);
  return keep_tmp(b);
}

/* File names end up in #include "...", string literals and comments. */
static bool path_is_safe_in_c(const char *p) {
  for (; *p; p++) {
    unsigned char c = (unsigned char)*p;
    if (c < 0x20 || c == 0x7f || strchr("\"\\*?", c)) return false;
  }
  return true;
}

static int check_path(builder *b, const char *proto) {
  if (path_is_safe_in_c(proto)) return 0;
  return fail(b, proto, "this file name cannot be written into C (it contains \", \\, *, ? or a control character)");
}

/* ---------------------------------------------------------------- type index */

static void index_messages(builder *b, const FileProto *f, const char *prefix, MsgProto *const *msgs,
                           size_t n, bool top_level) {
  for (size_t i = 0; i < n && !b->oom; i++) {
    if (b->n_types == b->cap_types) {
      size_t cap = b->cap_types ? 2 * b->cap_types : 64;
      type_entry *t = realloc(b->types, cap * sizeof *t);
      if (!t) {
        b->oom = true;
        return;
      }
      b->types = t;
      b->cap_types = cap;
    }
    type_entry *e = &b->types[b->n_types++];
    e->full_name = join_name(b, prefix, msgs[i]->name);
    e->relative = in_package(f, e->full_name);
    e->file = f;
    e->msg = msgs[i];
    e->top_level = top_level;
    index_messages(b, f, e->full_name, msgs[i]->nested_type, msgs[i]->n_nested_type, false);
  }
}

static const type_entry *find_type(const builder *b, const char *name) {
  if (name[0] == '.') name++; /* protoc gives fully qualified ".pkg.Foo" */
  for (size_t i = 0; i < b->n_types; i++)
    if (strcmp(b->types[i].full_name, name) == 0) return &b->types[i];
  return NULL;
}

/* Fills *t with protoc-c's names for the message `dotted_name`. */
static int resolve_type(builder *b, const char *where, const char *dotted_name, nnrpc_type *t) {
  const type_entry *e = find_type(b, dotted_name);
  if (!e) return fail(b, where, "type %s is not in the request", dotted_name);
  nnrpc_pbc_file_opts o;
  nnrpc_pbc_file_options(e->file->options, &o);
  if (o.no_generate)
    return fail(b, where, "type %s comes from %s, for which protoc-c generates no code ((pb_c_file).no_generate)",
                e->full_name, e->file->name);
  if (check_path(b, e->file->name)) return -1;
  const char *cfull = c_full_name(b, e->file, e->relative);
  t->full_name = e->full_name;
  t->c_name = convert(b, nnrpc_full_name_to_c, cfull);
  t->lower = convert(b, nnrpc_full_name_to_lower, cfull);
  t->descriptor = fmt(b, "%s__descriptor", t->lower);
  t->header = output_name(b, e->file->name, ".pb-c.h");
  /* protoc-c's rule for pack helpers: the message's option, else the
   * file's, else only top-level messages get them */
  int helpers = nnrpc_pbc_message_pack_helpers(e->msg->options);
  if (helpers < 0) helpers = o.gen_pack_helpers;
  if (helpers < 0) helpers = e->top_level;
  t->free_fn = helpers ? fmt(b, "%s__free_unpacked", t->lower) : NULL;
  return 0;
}

/* ---------------------------------------------------------------- protoc-c's symbols */

static void add_symbol(builder *b, nnrpc_file *out, const char *name, const char *origin) {
  nnrpc_symbol *s = alloc_array(b, 1, sizeof *s);
  if (!s) return;
  s->name = name;
  s->origin = origin;
  s->next = out->pbc_symbols;
  out->pbc_symbols = s;
}

/* Adds protoc-c's names for one type, `cfull` being its C-side full name. */
static void add_rules(builder *b, nnrpc_file *out, const nnrpc_name_rule *rules, size_t n, const char *cfull,
                      const char *origin) {
  const char *base[3];
  base[NNRPC_BASE_C] = convert(b, nnrpc_full_name_to_c, cfull);
  base[NNRPC_BASE_LOWER] = convert(b, nnrpc_full_name_to_lower, cfull);
  base[NNRPC_BASE_UPPER] = convert(b, nnrpc_full_name_to_upper, cfull);
  for (size_t i = 0; i < n; i++) add_symbol(b, out, fmt(b, "%s%s", base[rules[i].base], rules[i].suffix), origin);
}

static void add_enum_symbols(builder *b, nnrpc_file *out, const FileProto *f, const char *prefix,
                             EnumProto *const *enums, size_t n) {
  for (size_t i = 0; i < n; i++) {
    const char *full = join_name(b, prefix, enums[i]->name);
    add_rules(b, out, nnrpc_pbc_enum_names, nnrpc_pbc_enum_names_count, c_full_name(b, f, in_package(f, full)),
              fmt(b, "enum %s (%s)", full, f->name));
  }
}

static void add_message_symbols(builder *b, nnrpc_file *out, const FileProto *f, const char *prefix,
                                MsgProto *const *msgs, size_t n) {
  for (size_t i = 0; i < n; i++) {
    const char *full = join_name(b, prefix, msgs[i]->name);
    add_rules(b, out, nnrpc_pbc_message_names, nnrpc_pbc_message_names_count, c_full_name(b, f, in_package(f, full)),
              fmt(b, "message %s (%s)", full, f->name));
    add_message_symbols(b, out, f, full, msgs[i]->nested_type, msgs[i]->n_nested_type);
    add_enum_symbols(b, out, f, full, msgs[i]->enum_type, msgs[i]->n_enum_type);
  }
}

static void add_file_symbols(builder *b, nnrpc_file *out, const FileProto *f) {
  const char *pkg = package_of(f);
  add_message_symbols(b, out, f, pkg, f->message_type, f->n_message_type);
  add_enum_symbols(b, out, f, pkg, f->enum_type, f->n_enum_type);
  for (size_t i = 0; i < f->n_service; i++) {
    const ServiceProto *s = f->service[i];
    const char *origin = fmt(b, "service %s (%s)", join_name(b, pkg, s->name), f->name);
    const char *cfull = c_full_name(b, f, s->name);
    add_rules(b, out, nnrpc_pbc_service_names, nnrpc_pbc_service_names_count, cfull, origin);
    const char *lower = convert(b, nnrpc_full_name_to_lower, cfull);
    for (size_t j = 0; j < s->n_method; j++) {
      nnrpc_sb_clear(&b->tmp);
      nnrpc_sb_printf(&b->tmp, "%s__", lower);
      nnrpc_camel_to_lower(&b->tmp, s->method[j]->name, strlen(s->method[j]->name));
      const char *name = keep_tmp(b); /* before fmt() reuses the scratch */
      add_symbol(b, out, name, fmt(b, "method %s.%s (%s)", join_name(b, pkg, s->name), s->method[j]->name, f->name));
    }
  }
}

/* protoc-c's names in f and everything it imports, each file once: that is
 * what including f's .pb-c.h declares. */
static void add_symbols_with_imports(builder *b, nnrpc_file *out, const FileProto *f, bool *seen) {
  size_t idx = 0;
  while (idx < b->req->n_proto_file && b->req->proto_file[idx] != f) idx++;
  if (idx == b->req->n_proto_file || seen[idx]) return;
  seen[idx] = true;
  nnrpc_pbc_file_opts o;
  nnrpc_pbc_file_options(f->options, &o);
  if (!o.no_generate) add_file_symbols(b, out, f);
  for (size_t i = 0; i < f->n_dependency; i++) {
    const FileProto *dep = find_file(b->req, f->dependency[i]);
    if (dep) add_symbols_with_imports(b, out, dep, seen);
  }
}

/* ---------------------------------------------------------------- services */

static void add_include(nnrpc_file *out, const char *header) {
  for (size_t i = 0; i < out->n_includes; i++)
    if (strcmp(out->includes[i], header) == 0) return;
  out->includes[out->n_includes++] = header; /* sized for the worst case */
}

static int build_method(builder *b, const FileProto *f, const nnrpc_service *s, const MethodProto *mp,
                        nnrpc_method *m) {
  m->name = mp->name;
  m->full_name = fmt(b, "%s.%s", s->full_name, mp->name);
  m->path = fmt(b, "/%s/%s", s->full_name, mp->name);
  nnrpc_sb_clear(&b->tmp);
  nnrpc_camel_to_lower(&b->tmp, mp->name, strlen(mp->name));
  m->lower = keep_tmp(b);
  m->client_streaming = mp->has_client_streaming && mp->client_streaming;
  m->server_streaming = mp->has_server_streaming && mp->server_streaming;
  m->deprecated = mp->options && mp->options->has_deprecated && mp->options->deprecated;
  const char *where = fmt(b, "%s: method %s", f->name, m->full_name);
  if (resolve_type(b, where, mp->input_type, &m->input) || resolve_type(b, where, mp->output_type, &m->output))
    return -1;
  /* only the names of functions the method's kind gets (see model.h) */
  const bool cs = m->client_streaming, ss = m->server_streaming, unary = !cs && !ss;
  const char *p = s->lower, *ml = m->lower;
  m->call_fn = unary ? fmt(b, NNRPC_FMT_CALL, p, ml) : NULL;
  m->start_fn = unary ? fmt(b, NNRPC_FMT_START, p, ml) : NULL;
  m->finish_fn = unary || ss ? fmt(b, NNRPC_FMT_FINISH, p, ml) : NULL;
  m->invoke_fn = fmt(b, NNRPC_FMT_INVOKE, p, ml);
  m->open_fn = !unary ? fmt(b, NNRPC_FMT_OPEN, p, ml) : NULL;
  m->write_fn = cs ? fmt(b, NNRPC_FMT_WRITE, p, ml) : NULL;
  m->read_fn = ss ? fmt(b, NNRPC_FMT_READ, p, ml) : NULL;
  m->close_send_fn = cs && ss ? fmt(b, NNRPC_FMT_CLOSE_SEND, p, ml) : NULL;
  m->close_and_finish_fn = cs && !ss ? fmt(b, NNRPC_FMT_CLOSE_AND_FINISH, p, ml) : NULL;
  m->recv_fn = cs ? fmt(b, NNRPC_FMT_RECV, p, ml) : NULL;
  m->send_fn = ss ? fmt(b, NNRPC_FMT_SEND, p, ml) : NULL;
  return 0;
}

static int build_service(builder *b, const FileProto *f, const ServiceProto *sp, nnrpc_file *out,
                         nnrpc_service *s) {
  s->name = sp->name;
  s->full_name = join_name(b, package_of(f), sp->name);
  const char *cfull = c_full_name(b, f, sp->name);
  s->c_name = convert(b, nnrpc_full_name_to_c, cfull);
  s->lower = convert(b, nnrpc_full_name_to_lower, cfull);
  s->handlers_type = fmt(b, NNRPC_FMT_HANDLERS_TYPE, s->c_name);
  s->register_fn = fmt(b, NNRPC_FMT_REGISTER, s->lower);
  s->methods_array = fmt(b, NNRPC_FMT_METHODS, s->lower);
  s->service_desc = fmt(b, NNRPC_FMT_SERVICE_DESC, s->lower);
  s->n_methods = sp->n_method;
  s->methods = alloc_array(b, sp->n_method, sizeof *s->methods);
  if (!s->methods) return -1;
  for (size_t i = 0; i < sp->n_method; i++) {
    nnrpc_method *m = &s->methods[i];
    if (build_method(b, f, s, sp->method[i], m)) return -1;
    add_include(out, m->input.header);
    add_include(out, m->output.header);
  }
  return 0;
}

/* Leading comments of services ([6, s]) and methods ([6, s, 2, m]). */
static void attach_comments(const FileProto *f, nnrpc_file *out) {
  if (!f->source_code_info) return;
  for (size_t i = 0; i < f->source_code_info->n_location; i++) {
    const Google__Protobuf__SourceCodeInfo__Location *l = f->source_code_info->location[i];
    const char *text = l->leading_comments;
    if (!text || !*text || l->n_path < 2 || l->path[0] != FILE_SERVICE) continue;
    if (l->path[1] < 0 || (size_t)l->path[1] >= out->n_services) continue;
    nnrpc_service *s = &out->services[l->path[1]];
    if (l->n_path == 2) s->comment = text;
    if (l->n_path == 4 && l->path[2] == SERVICE_METHOD && l->path[3] >= 0 && (size_t)l->path[3] < s->n_methods)
      s->methods[l->path[3]].comment = text;
  }
}

static int build_file(builder *b, const FileProto *f, nnrpc_file *out) {
  if (check_path(b, f->name)) return -1;
  out->proto = f->name;
  out->out_h = output_name(b, f->name, ".nnrpc.h");
  out->out_c = output_name(b, f->name, ".nnrpc.c");
  const char *slash = strrchr(out->out_h, '/');
  out->h_include = slash ? slash + 1 : out->out_h;
  nnrpc_sb_clear(&b->tmp);
  nnrpc_header_guard(&b->tmp, f->name);
  out->guard = keep_tmp(b);

  size_t max_includes = 1;
  for (size_t i = 0; i < f->n_service; i++) max_includes += 2 * f->service[i]->n_method;
  out->includes = alloc_array(b, max_includes, sizeof *out->includes);
  out->services = alloc_array(b, f->n_service, sizeof *out->services);
  if (!out->includes || !out->services) return -1;
  nnrpc_pbc_file_opts o;
  nnrpc_pbc_file_options(f->options, &o);
  if (!o.no_generate) add_include(out, output_name(b, f->name, ".pb-c.h"));
  out->n_services = f->n_service;
  for (size_t i = 0; i < f->n_service; i++)
    if (build_service(b, f, f->service[i], out, &out->services[i])) return -1;
  attach_comments(f, out);

  bool *seen = calloc(b->req->n_proto_file + 1, sizeof *seen);
  if (!seen) {
    b->oom = true;
    return -1;
  }
  add_symbols_with_imports(b, out, f, seen);
  free(seen);
  return 0;
}

/* ---------------------------------------------------------------- entry points */

int nnrpc_model_build(const Request *req, nnrpc_model *m, nnrpc_sb *err) {
  builder b = {req, NULL, err, NNRPC_SB_INIT, false, NULL, 0, 0};
  memset(m, 0, sizeof *m);
  m->arena = calloc(1, sizeof *m->arena);
  if (!m->arena) goto oom;
  b.arena = m->arena;

  for (size_t i = 0; i < req->n_proto_file; i++) {
    const FileProto *f = req->proto_file[i];
    index_messages(&b, f, package_of(f), f->message_type, f->n_message_type, true);
  }
  m->files = alloc_array(&b, req->n_file_to_generate, sizeof *m->files);
  if (b.oom) goto oom;
  for (size_t i = 0; i < req->n_file_to_generate; i++) {
    const FileProto *f = find_file(req, req->file_to_generate[i]);
    if (!f) {
      fail(&b, req->file_to_generate[i], "not among the request's files");
      goto fail;
    }
    if (build_file(&b, f, &m->files[i])) goto fail;
    m->n_files = i + 1;
  }
  if (b.oom) goto oom;
  free(b.types);
  nnrpc_sb_free(&b.tmp);
  return 0;

oom:
  b.oom = true;
fail:
  if (b.oom) { /* out of memory trumps whatever message the failure left */
    nnrpc_sb_clear(err);
    nnrpc_sb_puts(err, "protoc-gen-nnrpc: out of memory");
  }
  free(b.types);
  nnrpc_sb_free(&b.tmp);
  nnrpc_model_free(m);
  return -1;
}

void nnrpc_model_free(nnrpc_model *m) {
  if (m->arena) {
    chunk *c = m->arena->head;
    while (c) {
      chunk *next = c->next;
      free(c);
      c = next;
    }
    free(m->arena);
  }
  memset(m, 0, sizeof *m);
}
