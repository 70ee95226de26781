#include "model.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "naming.h"
#include "pbc_options.h"
#include "utf8.h"

typedef Google__Protobuf__Compiler__CodeGeneratorRequest Request;
typedef Google__Protobuf__FileDescriptorProto FileProto;
typedef Google__Protobuf__DescriptorProto MsgProto;
typedef Google__Protobuf__EnumDescriptorProto EnumProto;
typedef Google__Protobuf__ServiceDescriptorProto ServiceProto;
typedef Google__Protobuf__MethodDescriptorProto MethodProto;

/* Field numbers of descriptor.proto, for SourceCodeInfo paths. */
enum {
  FILE_MESSAGE = 4, FILE_ENUM = 5, FILE_SERVICE = 6, /* FileDescriptorProto */
  MESSAGE_NESTED = 3, MESSAGE_ENUM = 4,               /* DescriptorProto */
  ENUM_VALUE = 2,                                      /* EnumDescriptorProto */
  SERVICE_METHOD = 2,                                  /* ServiceDescriptorProto */
  METHOD_INPUT = 2, METHOD_OUTPUT = 3                  /* MethodDescriptorProto */
};

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
  nnrpc_model *m;
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

void nnrpc_put_where(nnrpc_sb *err, const char *file, nnrpc_loc loc) {
  if (loc.line > 0)
    nnrpc_sb_printf(err, "%s:%d:%d: ", file, loc.line, loc.col);
  else
    nnrpc_sb_printf(err, "%s: ", file);
}

static const nnrpc_loc no_loc = {0, 0};

static int fail_at(builder *b, const char *file, nnrpc_loc loc, const char *f, ...) NNRPC_SB_PRINTF(4, 5);
static int fail_at(builder *b, const char *file, nnrpc_loc loc, const char *f, ...) {
  va_list ap;
  va_start(ap, f);
  nnrpc_sb_clear(b->err);
  nnrpc_put_where(b->err, file, loc);
  nnrpc_sb_vprintf(b->err, f, ap);
  va_end(ap);
  return -1;
}

/* Where the construct at `path` (a SourceCodeInfo path: field numbers and
 * indexes from the FileDescriptorProto down) starts in f. */
static nnrpc_loc find_loc(const FileProto *f, const int32_t *path, size_t n) {
  nnrpc_loc loc = {0, 0};
  if (!f->source_code_info) return loc;
  for (size_t i = 0; i < f->source_code_info->n_location; i++) {
    const Google__Protobuf__SourceCodeInfo__Location *l = f->source_code_info->location[i];
    if (l->n_path != n || l->n_span < 3 || (n && memcmp(l->path, path, n * sizeof *path) != 0)) continue;
    if (l->span[0] < 0 || l->span[0] >= INT32_MAX || l->span[1] < 0 || l->span[1] >= INT32_MAX) continue;
    loc.line = l->span[0] + 1; /* protoc counts from 0 and reports from 1 */
    loc.col = l->span[1] + 1;
    break;
  }
  return loc;
}

static const FileProto *find_file(const Request *req, const char *name) {
  for (size_t i = 0; i < req->n_proto_file; i++)
    if (req->proto_file[i]->name && strcmp(req->proto_file[i]->name, name) == 0) return req->proto_file[i];
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
  for (size_t n = strlen(p); n > 0;) {
    uint32_t c;
    size_t len = nnrpc_utf8_decode(p, n, &c);
    if (len == 0 || c < 0x20 || c == 0x7f || (c < 0x80 && strchr("\"\\*?", (int)c)) ||
        nnrpc_utf8_is_bidi_control(c))
      return false;
    p += len;
    n -= len;
  }
  return true;
}

static int check_path(builder *b, const char *proto) {
  if (!proto) return fail_at(b, "protoc-gen-nnrpc", no_loc, "a file of the request has no name");
  if (path_is_safe_in_c(proto)) return 0;
  return fail_at(b, proto, no_loc,
                 "this file name cannot be written into C (it contains \", \\, *, ?, a control character, a "
                 "bidirectional control or bytes that are not UTF-8)");
}

/* ---------------------------------------------------------------- type index */

static void index_messages(builder *b, const FileProto *f, const char *prefix, MsgProto *const *msgs,
                           size_t n, bool top_level) {
  for (size_t i = 0; i < n && !b->oom; i++) {
    if (!msgs[i]->name) continue; /* protoc always names them */
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

/* Fills *t with protoc-c's names for the message `dotted_name`, the
 * request or reply type of `method`, written at `loc` of `file`. */
static int resolve_type(builder *b, const char *file, nnrpc_loc loc, const char *method, const char *dotted_name,
                        nnrpc_type *t) {
  const type_entry *e = dotted_name ? find_type(b, dotted_name) : NULL;
  if (!e)
    return fail_at(b, file, loc, "method %s: type %s is not in the request", method,
                   dotted_name ? dotted_name : "(none)");
  nnrpc_pbc_file_opts o;
  nnrpc_pbc_file_options(e->file->options, &o);
  if (o.no_generate)
    return fail_at(b, file, loc,
                   "method %s: type %s comes from %s, for which protoc-c generates no code ((pb_c_file).no_generate)",
                   method, e->full_name, e->file->name);
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

/* The SourceCodeInfo path of the construct being visited, to locate the
 * symbols of files we generate (deeper nesting than this goes unlocated). */
enum { MAX_PATH = 64 };
typedef struct sym_ctx {
  const FileProto *f;
  bool locate;           /* f is one of the files to generate */
  int32_t path[MAX_PATH];
  size_t depth;          /* may exceed MAX_PATH */
} sym_ctx;

static void push(sym_ctx *c, int32_t field, size_t index) {
  if (c->depth + 2 <= MAX_PATH) {
    c->path[c->depth] = field;
    c->path[c->depth + 1] = (int32_t)index;
  }
  c->depth += 2;
}
static void pop(sym_ctx *c) { c->depth -= 2; }

static nnrpc_loc here(const sym_ctx *c) {
  if (!c->locate || c->depth > MAX_PATH) return no_loc;
  return find_loc(c->f, c->path, c->depth);
}

static void add_symbol(builder *b, const sym_ctx *c, nnrpc_loc loc, const char *name, const char *origin) {
  nnrpc_symbol *s = alloc_array(b, 1, sizeof *s);
  if (!s) return;
  s->name = name;
  s->origin = origin;
  s->file = c->f->name;
  s->loc = loc;
  s->next = b->m->pbc_symbols;
  b->m->pbc_symbols = s;
}

/* Adds protoc-c's names for one type, `cfull` being its C-side full name. */
static void add_rules(builder *b, const sym_ctx *c, const nnrpc_name_rule *rules, size_t n, const char *cfull,
                      const char *origin) {
  const char *base[3];
  base[NNRPC_BASE_C] = convert(b, nnrpc_full_name_to_c, cfull);
  base[NNRPC_BASE_LOWER] = convert(b, nnrpc_full_name_to_lower, cfull);
  base[NNRPC_BASE_UPPER] = convert(b, nnrpc_full_name_to_upper, cfull);
  nnrpc_loc loc = here(c);
  for (size_t i = 0; i < n; i++)
    add_symbol(b, c, loc, fmt(b, "%s%s", base[rules[i].base], rules[i].suffix), origin);
}

static void add_enum_symbols(builder *b, sym_ctx *c, const char *prefix, int32_t field, EnumProto *const *enums,
                             size_t n) {
  const FileProto *f = c->f;
  for (size_t i = 0; i < n; i++) {
    if (!enums[i]->name) continue;
    push(c, field, i);
    const char *full = join_name(b, prefix, enums[i]->name);
    const char *cfull = c_full_name(b, f, in_package(f, full));
    add_rules(b, c, nnrpc_pbc_enum_names, nnrpc_pbc_enum_names_count, cfull, fmt(b, "enum %s (%s)", full, f->name));
    /* the values: enumerators at file scope, "PKG__COLOR__" + the name as written */
    const char *upper = convert(b, nnrpc_full_name_to_upper, cfull);
    for (size_t j = 0; j < enums[i]->n_value; j++) {
      const char *v = enums[i]->value[j]->name;
      if (!v) continue;
      push(c, ENUM_VALUE, j);
      nnrpc_loc loc = here(c);
      const char *name = fmt(b, "%s__%s", upper, v);
      add_symbol(b, c, loc, name, fmt(b, "value %s of enum %s (%s)", v, full, f->name));
      pop(c);
    }
    pop(c);
  }
}

static void add_message_symbols(builder *b, sym_ctx *c, const char *prefix, int32_t field, MsgProto *const *msgs,
                                size_t n) {
  const FileProto *f = c->f;
  for (size_t i = 0; i < n; i++) {
    if (!msgs[i]->name) continue;
    push(c, field, i);
    const char *full = join_name(b, prefix, msgs[i]->name);
    add_rules(b, c, nnrpc_pbc_message_names, nnrpc_pbc_message_names_count, c_full_name(b, f, in_package(f, full)),
              fmt(b, "message %s (%s)", full, f->name));
    add_message_symbols(b, c, full, MESSAGE_NESTED, msgs[i]->nested_type, msgs[i]->n_nested_type);
    add_enum_symbols(b, c, full, MESSAGE_ENUM, msgs[i]->enum_type, msgs[i]->n_enum_type);
    pop(c);
  }
}

static void add_file_symbols(builder *b, sym_ctx *c) {
  const FileProto *f = c->f;
  const char *pkg = package_of(f);
  add_message_symbols(b, c, pkg, FILE_MESSAGE, f->message_type, f->n_message_type);
  add_enum_symbols(b, c, pkg, FILE_ENUM, f->enum_type, f->n_enum_type);
  for (size_t i = 0; i < f->n_service; i++) {
    const ServiceProto *s = f->service[i];
    if (!s->name) continue;
    push(c, FILE_SERVICE, i);
    const char *origin = fmt(b, "service %s (%s)", join_name(b, pkg, s->name), f->name);
    const char *cfull = c_full_name(b, f, s->name);
    add_rules(b, c, nnrpc_pbc_service_names, nnrpc_pbc_service_names_count, cfull, origin);
    const char *lower = convert(b, nnrpc_full_name_to_lower, cfull);
    for (size_t j = 0; j < s->n_method; j++) {
      const char *mname = s->method[j]->name;
      if (!mname) continue;
      push(c, SERVICE_METHOD, j);
      nnrpc_sb_clear(&b->tmp);
      nnrpc_sb_printf(&b->tmp, "%s__", lower);
      nnrpc_camel_to_lower(&b->tmp, mname, strlen(mname));
      const char *name = keep_tmp(b); /* before fmt() reuses the scratch */
      add_symbol(b, c, here(c), name, fmt(b, "method %s.%s (%s)", join_name(b, pkg, s->name), mname, f->name));
      pop(c);
    }
    pop(c);
  }
}

static bool is_to_generate(const Request *req, const char *name) {
  for (size_t i = 0; i < req->n_file_to_generate; i++)
    if (req->file_to_generate[i] && strcmp(req->file_to_generate[i], name) == 0) return true;
  return false;
}

/* protoc-c's names in f and everything it imports, each file once (seen[]
 * is indexed like the request's files): what including f's .pb-c.h
 * declares, and what its code is linked with. */
static void add_symbols_with_imports(builder *b, const FileProto *f, bool *seen, size_t level) {
  size_t idx = 0;
  while (idx < b->req->n_proto_file && b->req->proto_file[idx] != f) idx++;
  if (idx == b->req->n_proto_file || seen[idx] || level > b->req->n_proto_file) return;
  seen[idx] = true;
  nnrpc_pbc_file_opts o;
  nnrpc_pbc_file_options(f->options, &o);
  if (!o.no_generate && f->name) {
    sym_ctx c = {f, is_to_generate(b->req, f->name), {0}, 0};
    add_file_symbols(b, &c);
  }
  for (size_t i = 0; i < f->n_dependency; i++) {
    const FileProto *dep = f->dependency[i] ? find_file(b->req, f->dependency[i]) : NULL;
    if (dep) add_symbols_with_imports(b, dep, seen, level + 1);
  }
}

/* ---------------------------------------------------------------- services */

static void add_include(nnrpc_file *out, const char *header) {
  for (size_t i = 0; i < out->n_includes; i++)
    if (strcmp(out->includes[i], header) == 0) return;
  out->includes[out->n_includes++] = header; /* sized for the worst case */
}

static int build_method(builder *b, const FileProto *f, const nnrpc_service *s, size_t si, size_t mi,
                        nnrpc_method *m) {
  const MethodProto *mp = f->service[si]->method[mi];
  int32_t path[5] = {FILE_SERVICE, (int32_t)si, SERVICE_METHOD, (int32_t)mi, 0};
  m->loc = find_loc(f, path, 4);
  if (!mp->name || !*mp->name) return fail_at(b, f->name, m->loc, "service %s: a method without a name", s->full_name);
  m->name = mp->name;
  m->full_name = fmt(b, "%s.%s", s->full_name, mp->name);
  m->path = fmt(b, "/%s/%s", s->full_name, mp->name);
  nnrpc_sb_clear(&b->tmp);
  nnrpc_camel_to_lower(&b->tmp, mp->name, strlen(mp->name));
  m->lower = keep_tmp(b);
  m->client_streaming = mp->has_client_streaming && mp->client_streaming;
  m->server_streaming = mp->has_server_streaming && mp->server_streaming;
  m->deprecated = mp->options && mp->options->has_deprecated && mp->options->deprecated;
  /* a type's problem is reported where the type is written, if protoc says */
  nnrpc_loc in_loc, out_loc;
  path[4] = METHOD_INPUT;
  in_loc = find_loc(f, path, 5);
  path[4] = METHOD_OUTPUT;
  out_loc = find_loc(f, path, 5);
  if (resolve_type(b, f->name, in_loc.line ? in_loc : m->loc, m->full_name, mp->input_type, &m->input) ||
      resolve_type(b, f->name, out_loc.line ? out_loc : m->loc, m->full_name, mp->output_type, &m->output))
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

static int build_service(builder *b, const FileProto *f, size_t si, nnrpc_file *out, nnrpc_service *s) {
  const ServiceProto *sp = f->service[si];
  const int32_t path[2] = {FILE_SERVICE, (int32_t)si};
  s->loc = find_loc(f, path, 2);
  if (!sp->name || !*sp->name) return fail_at(b, f->name, s->loc, "a service without a name");
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
    if (build_method(b, f, s, si, i, m)) return -1;
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

/* ---------------------------------------------------------------- descriptors */

/* Appends f's descriptor to out->fdescs, then its imports' (depth first,
 * each file once; an import missing from the request is left out). */
static void add_fdesc(builder *b, const FileProto *f, nnrpc_file *out, size_t cap) {
  if (!f->name || out->n_fdescs == cap) return;
  for (size_t i = 0; i < out->n_fdescs; i++)
    if (strcmp(out->fdescs[i].proto, f->name) == 0) return;
  nnrpc_fdesc *d = &out->fdescs[out->n_fdescs++];
  d->proto = f->name;
  /* protoc sends source_code_info only for the files to generate: without
   * it, an imported file's bytes are the same in every generated file */
  FileProto copy = *f;
  copy.source_code_info = NULL;
  d->len = google__protobuf__file_descriptor_proto__get_packed_size(&copy);
  uint8_t *data = alloc_array(b, d->len, 1);
  if (data) google__protobuf__file_descriptor_proto__pack(&copy, data);
  d->data = data;
  const char **deps = alloc_array(b, f->n_dependency, sizeof *deps);
  for (size_t i = 0; deps && i < f->n_dependency; i++)
    if (f->dependency[i]) deps[d->n_deps++] = f->dependency[i];
  d->deps = deps;
  for (size_t i = 0; i < d->n_deps; i++) {
    const FileProto *dep = find_file(b->req, d->deps[i]);
    if (dep) add_fdesc(b, dep, out, cap);
  }
}

static int build_file(builder *b, const FileProto *f, nnrpc_file *out) {
  if (check_path(b, f->name)) return -1;
  out->model = b->m;
  out->proto = f->name;
  const char *suffix = b->m->params.suffix;
  out->out_h = output_name(b, f->name, fmt(b, "%s.h", suffix));
  out->out_c = output_name(b, f->name, fmt(b, "%s.c", suffix));
  const char *slash = strrchr(out->out_h, '/');
  out->h_include = slash ? slash + 1 : out->out_h;
  nnrpc_sb_clear(&b->tmp);
  nnrpc_header_guard(&b->tmp, out->out_h);
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
    if (build_service(b, f, i, out, &out->services[i])) return -1;
  attach_comments(f, out);
  if (f->n_service > 0) { /* the descriptors the generated code embeds */
    out->fdescs = alloc_array(b, b->req->n_proto_file, sizeof *out->fdescs);
    if (out->fdescs) add_fdesc(b, f, out, b->req->n_proto_file);
  }
  return 0;
}

/* ---------------------------------------------------------------- parameters */

#define PARAMS_HELP "suffix=SUFFIX (x.proto gives xSUFFIX.h and xSUFFIX.c; the default is .nnrpc)"

static int bad_param(builder *b, const char *f, ...) NNRPC_SB_PRINTF(2, 3);
static int bad_param(builder *b, const char *f, ...) {
  va_list ap;
  va_start(ap, f);
  nnrpc_sb_clear(b->err);
  nnrpc_sb_puts(b->err, "protoc-gen-nnrpc: ");
  nnrpc_sb_vprintf(b->err, f, ap);
  va_end(ap);
  return -1;
}

/* suffix=SUFFIX: any name made of letters, digits, '.', '_' and '-', but
 * protoc-c's own. */
static int set_suffix(builder *b, const char *v, int n) {
  if (n == 0) return bad_param(b, "parameter suffix needs a value, as in suffix=.rpc");
  for (int i = 0; i < n; i++) {
    char c = v[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
          c == '-'))
      return bad_param(b, "suffix=%.*s: a suffix is made of letters, digits, '.', '_' and '-'", n, v);
  }
  if (n == 5 && memcmp(v, ".pb-c", 5) == 0)
    return bad_param(b, "suffix=.pb-c would overwrite protoc-c's output");
  b->m->params.suffix = fmt(b, "%.*s", n, v);
  return 0;
}

/* protoc hands over --nnrpc_opt (and --nnrpc_out=PARAMS:DIR) as one string,
 * several options joined by ','. */
static int parse_params(builder *b, const char *s) {
  bool have_suffix = false;
  b->m->params.suffix = ".nnrpc";
  while (s && *s) {
    const char *end = strchr(s, ',');
    int n = end ? (int)(end - s) : (int)strlen(s);
    const char *eq = memchr(s, '=', (size_t)n);
    int key = eq ? (int)(eq - s) : n;
    if (n == 0) {
      /* "a,,b" or a trailing comma: nothing */
    } else if (key == 6 && memcmp(s, "suffix", 6) == 0) {
      if (have_suffix) return bad_param(b, "parameter suffix is given twice");
      have_suffix = true;
      if (set_suffix(b, eq ? eq + 1 : "", eq ? n - key - 1 : 0)) return -1;
    } else {
      return bad_param(b, "unknown parameter \"%.*s\"; the plugin takes " PARAMS_HELP, n, s);
    }
    s = end ? end + 1 : s + n;
  }
  return 0;
}

/* ---------------------------------------------------------------- entry points */

int nnrpc_model_build(const Request *req, nnrpc_model *m, nnrpc_sb *err) {
  builder b = {req, m, NULL, err, NNRPC_SB_INIT, false, NULL, 0, 0};
  bool *seen = NULL;
  memset(m, 0, sizeof *m);
  m->arena = calloc(1, sizeof *m->arena);
  if (!m->arena) goto oom;
  b.arena = m->arena;
  if (parse_params(&b, req->parameter)) goto fail;

  for (size_t i = 0; i < req->n_proto_file; i++) {
    const FileProto *f = req->proto_file[i];
    index_messages(&b, f, package_of(f), f->message_type, f->n_message_type, true);
  }
  m->files = alloc_array(&b, req->n_file_to_generate, sizeof *m->files);
  seen = calloc(req->n_proto_file + 1, sizeof *seen);
  if (b.oom || !seen) goto oom;
  for (size_t i = 0; i < req->n_file_to_generate; i++) {
    const char *name = req->file_to_generate[i];
    const FileProto *f = name ? find_file(req, name) : NULL;
    if (!f) {
      fail_at(&b, name ? name : "(no name)", no_loc, "not among the request's files");
      goto fail;
    }
    if (build_file(&b, f, &m->files[i])) goto fail;
    m->n_files = i + 1;
    add_symbols_with_imports(&b, f, seen, 0);
  }
  if (b.oom) goto oom;
  free(seen);
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
  free(seen);
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
