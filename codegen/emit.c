#include "emit.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void nnrpc_buf_puts(nnrpc_buf *b, const char *s) {
  size_t n = strlen(s);
  if (b->n + n + 1 > b->cap) {
    b->cap = (b->n + n + 1) * 2;
    b->s = realloc(b->s, b->cap);
    if (!b->s) abort();
  }
  memcpy(b->s + b->n, s, n + 1);
  b->n += n;
}

void nnrpc_buf_printf(nnrpc_buf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  char *t = malloc((size_t)n + 1);
  if (!t) abort();
  va_start(ap, fmt);
  vsnprintf(t, (size_t)n + 1, fmt, ap);
  va_end(ap);
  nnrpc_buf_puts(b, t);
  free(t);
}

/* A .proto comment as C comment lines "<indent> * text", made inert: no
 * comment delimiters, no trigraphs, no line splices, no control bytes. */
static void put_comment(nnrpc_buf *b, const char *indent, const char *text) {
  if (!text) return;
  nnrpc_buf_printf(b, "%s/*\n", indent);
  const char *p = text;
  while (*p) {
    const char *eol = strchr(p, '\n');
    size_t len = eol ? (size_t)(eol - p) : strlen(p);
    char *line = malloc(2 * len + 1), *o = line;
    if (!line) abort();
    for (size_t i = 0; i < len; i++) {
      char c = p[i], next = i + 1 < len ? p[i + 1] : 0;
      if ((c == '*' && next == '/') || (c == '/' && next == '*') || (c == '?' && next == '?')) {
        *o++ = c;
        *o++ = ' ';
      } else if ((unsigned char)c < 0x20 && c != '\t') {
        *o++ = ' ';
      } else {
        *o++ = c;
      }
    }
    while (o > line && (o[-1] == ' ' || o[-1] == '\t' || o[-1] == '\\' || o[-1] == '\r')) o--;
    *o = 0;
    if (*line || eol) nnrpc_buf_printf(b, "%s *%s%s\n", indent, *line ? "" : "", *line ? line : "");
    free(line);
    if (!eol) break;
    p = eol + 1;
  }
  nnrpc_buf_printf(b, "%s */\n", indent);
}

static bool is_streaming(const nnrpc_model_method *m) { return m->client_streaming || m->server_streaming; }

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int nnrpc_emit_check(const nnrpc_model_file *f, char *err, size_t errlen) {
  size_t n = 0, cap = 16;
  char **names = malloc(cap * sizeof *names);
  if (!names) abort();
#define ADD(...)                                                         \
  do {                                                                   \
    if (n == cap) {                                                      \
      cap *= 2;                                                          \
      names = realloc(names, cap * sizeof *names);                       \
      if (!names) abort();                                               \
    }                                                                    \
    int len_ = snprintf(NULL, 0, __VA_ARGS__);                           \
    names[n] = malloc((size_t)len_ + 1);                                 \
    if (!names[n]) abort();                                              \
    snprintf(names[n++], (size_t)len_ + 1, __VA_ARGS__);                 \
  } while (0)
  int rc = 0;
  for (size_t si = 0; si < f->n_services && !rc; si++) {
    const nnrpc_model_service *s = &f->services[si];
    /* protoc-c's names for the service, then ours */
    ADD("%s_Service", s->c_type);
    ADD("%s__init", s->lower);
    ADD("%s__descriptor", s->lower);
    ADD("%s_Handlers", s->c_type);
    ADD("%s__handlers__register", s->lower);
    ADD("%s__methods", s->lower);
    ADD("%s__nnrpc_service", s->lower);
    for (size_t mi = 0; mi < s->n_methods; mi++) {
      const nnrpc_model_method *m = &s->methods[mi];
      if (is_streaming(m)) {
        snprintf(err, errlen, "%s: method %s.%s: streaming methods are not supported yet by protoc-gen-nnrpc",
                 f->name, s->full_name, m->name);
        rc = -1;
        break;
      }
      ADD("%s__%s", s->lower, m->lower);
      ADD("%s__%s__call", s->lower, m->lower);
      ADD("%s__%s__start", s->lower, m->lower);
      ADD("%s__%s__finish", s->lower, m->lower);
      ADD("%s__%s__invoke", s->lower, m->lower);
    }
  }
#undef ADD
  if (!rc) {
    qsort(names, n, sizeof *names, cmp_str);
    for (size_t i = 1; i < n; i++)
      if (strcmp(names[i - 1], names[i]) == 0) {
        snprintf(err, errlen, "%s: the generated C name %s would be defined twice (two services or methods whose names convert to the same C identifier)",
                 f->name, names[i]);
        rc = -1;
        break;
      }
  }
  for (size_t i = 0; i < n; i++) free(names[i]);
  free(names);
  return rc;
}

static char *guard_of(const char *base) {
  char *g = malloc(strlen(base) + 32), *o = g;
  if (!g) abort();
  o += sprintf(o, "NNRPC_GENERATED_");
  for (const char *p = base; *p; p++) *o++ = isalnum((unsigned char)*p) ? (char)toupper((unsigned char)*p) : '_';
  strcpy(o, "_NNRPC_H");
  return g;
}

static bool any_deprecated(const nnrpc_model_file *f) {
  for (size_t si = 0; si < f->n_services; si++)
    for (size_t mi = 0; mi < f->services[si].n_methods; mi++)
      if (f->services[si].methods[mi].deprecated) return true;
  return false;
}

void nnrpc_emit_header(const nnrpc_model_file *f, nnrpc_buf *b) {
  char *guard = guard_of(f->base);
  nnrpc_buf_printf(b, "/* Generated by protoc-gen-nnrpc. DO NOT EDIT! */\n/* Generated from: %s */\n\n", f->name);
  nnrpc_buf_printf(b, "#ifndef %s\n#define %s\n\n#include <nnrpc/nnrpc.h>\n", guard, guard);
  for (size_t i = 0; i < f->n_includes; i++) nnrpc_buf_printf(b, "#include \"%s\"\n", f->includes[i]);
  nnrpc_buf_printf(b, "\n#if NNRPC_API_VERSION != 1\n#error \"%s.nnrpc.h was generated for nnrpc API version 1: regenerate it\"\n#endif\n\n", f->base);
  if (any_deprecated(f))
    nnrpc_buf_puts(b, "#ifndef NNRPC_DEPRECATED\n#if defined(__GNUC__)\n#define NNRPC_DEPRECATED __attribute__((deprecated))\n#else\n#define NNRPC_DEPRECATED\n#endif\n#endif\n\n");
  nnrpc_buf_puts(b, "PROTOBUF_C__BEGIN_DECLS\n");
  for (size_t si = 0; si < f->n_services; si++) {
    const nnrpc_model_service *s = &f->services[si];
    nnrpc_buf_printf(b, "\n/* ---------------------------------------------------------------- service %s */\n\n", s->full_name);
    put_comment(b, "", s->comment);
    nnrpc_buf_printf(b, "\n/* Server side: fill in the handlers you implement (NULL answers UNIMPLEMENTED)\n"
                        " * and register the table with nnrpc_server. A handler returns a status code\n"
                        " * (NNRPC_OK sends `reply`), or NNRPC_PENDING to finish later with\n"
                        " * nnrpc_ctx_finish. Reply memory comes from nnrpc_ctx_alloc/strdup. */\n");
    nnrpc_buf_printf(b, "typedef struct %s_Handlers {\n", s->c_type);
    for (size_t mi = 0; mi < s->n_methods; mi++) {
      const nnrpc_model_method *m = &s->methods[mi];
      put_comment(b, "  ", m->comment);
      nnrpc_buf_printf(b, "  int (*%s)(nnrpc_ctx *ctx, const %s *req, %s *reply);\n", m->lower, m->input.c_type, m->output.c_type);
    }
    nnrpc_buf_printf(b, "} %s_Handlers;\n\n", s->c_type);
    nnrpc_buf_printf(b, "/* Registers the handlers (the table is copied); user_data is given back by\n * nnrpc_ctx_user_data(). Call before nnrpc_server_start. */\n");
    nnrpc_buf_printf(b, "int %s__handlers__register(nnrpc_server *srv, const %s_Handlers *handlers, void *user_data);\n", s->lower, s->c_type);
    for (size_t mi = 0; mi < s->n_methods; mi++) {
      const nnrpc_model_method *m = &s->methods[mi];
      const char *dep = m->deprecated ? " NNRPC_DEPRECATED" : "";
      nnrpc_buf_printf(b, "\n/* ---- client side of %s */\n", m->path);
      put_comment(b, "", m->comment);
      nnrpc_buf_printf(b, "/* Blocking call. On NNRPC_OK *reply is the caller's: free it with\n * %s__free_unpacked(*reply, NULL). */\n", m->output.lower);
      nnrpc_buf_printf(b, "nnrpc_status %s__%s__call(nnrpc_channel *ch, const %s *req, %s **reply, const nnrpc_call_opts *opts)%s;\n",
                       s->lower, m->lower, m->input.c_type, m->output.c_type, dep);
      nnrpc_buf_printf(b, "/* Starts the call without blocking; completion is reported through `how`. */\n");
      nnrpc_buf_printf(b, "int %s__%s__start(nnrpc_channel *ch, const %s *req, const nnrpc_call_opts *opts, const nnrpc_completion *how, nnrpc_call **call)%s;\n",
                       s->lower, m->lower, m->input.c_type, dep);
      nnrpc_buf_printf(b, "/* After completion: the result (as for __call), and frees the call. */\n");
      nnrpc_buf_printf(b, "nnrpc_status %s__%s__finish(nnrpc_call *call, %s **reply, nnrpc_metadata *trailers)%s;\n",
                       s->lower, m->lower, m->output.c_type, dep);
    }
    nnrpc_buf_printf(b, "\n/* Service description used by the runtime (generic clients, reflection). */\n");
    nnrpc_buf_printf(b, "extern const nnrpc_service %s__nnrpc_service;\n", s->lower);
  }
  nnrpc_buf_printf(b, "\nPROTOBUF_C__END_DECLS\n\n#endif /* %s */\n", guard);
  free(guard);
}

static const char *kind_of(const nnrpc_model_method *m) {
  return m->client_streaming ? (m->server_streaming ? "NNRPC_BIDI_STREAMING" : "NNRPC_CLIENT_STREAMING")
                             : (m->server_streaming ? "NNRPC_SERVER_STREAMING" : "NNRPC_UNARY");
}

void nnrpc_emit_source(const nnrpc_model_file *f, nnrpc_buf *b) {
  const char *slash = strrchr(f->base, '/');
  nnrpc_buf_printf(b, "/* Generated by protoc-gen-nnrpc. DO NOT EDIT! */\n/* Generated from: %s */\n\n", f->name);
  nnrpc_buf_printf(b, "#include \"%s.nnrpc.h\"\n", slash ? slash + 1 : f->base);
  if (any_deprecated(f)) /* our own definitions call the deprecated stubs' bodies */
    nnrpc_buf_puts(b, "\n#if defined(__GNUC__)\n#pragma GCC diagnostic ignored \"-Wdeprecated-declarations\"\n#endif\n");
  for (size_t si = 0; si < f->n_services; si++) {
    const nnrpc_model_service *s = &f->services[si];
    const char *P = s->lower;
    nnrpc_buf_printf(b, "\n/* ---------------------------------------------------------------- service %s */\n", s->full_name);
    for (size_t mi = 0; mi < s->n_methods; mi++) {
      const nnrpc_model_method *m = &s->methods[mi];
      nnrpc_buf_printf(b, "\nstatic int %s__%s__invoke(nnrpc_ctx *ctx, const void *handlers, const ProtobufCMessage *req, ProtobufCMessage *reply)\n{\n", P, m->lower);
      nnrpc_buf_printf(b, "  const %s_Handlers *h = handlers;\n", s->c_type);
      nnrpc_buf_printf(b, "  return h->%s(ctx, (const %s *)req, (%s *)reply);\n}\n", m->lower, m->input.c_type, m->output.c_type);
    }
    if (s->n_methods) {
      nnrpc_buf_printf(b, "\nstatic const nnrpc_method %s__methods[%zu] = {\n", P, s->n_methods);
      for (size_t mi = 0; mi < s->n_methods; mi++) {
        const nnrpc_model_method *m = &s->methods[mi];
        nnrpc_buf_printf(b, "  { \"%s\", &%s__descriptor, &%s__descriptor, %s, %s__%s__invoke },\n", m->path,
                         m->input.lower, m->output.lower, kind_of(m), P, m->lower);
      }
      nnrpc_buf_puts(b, "};\n");
    }
    nnrpc_buf_printf(b, "\nconst nnrpc_service %s__nnrpc_service = {\n  \"%s\", %zu, ", P, s->full_name, s->n_methods);
    if (s->n_methods)
      nnrpc_buf_printf(b, "%s__methods", P);
    else
      nnrpc_buf_puts(b, "NULL");
    nnrpc_buf_printf(b, ", sizeof(%s_Handlers)\n};\n", s->c_type);

    nnrpc_buf_printf(b, "\nint %s__handlers__register(nnrpc_server *srv, const %s_Handlers *handlers, void *user_data)\n{\n", P, s->c_type);
    if (s->n_methods) {
      nnrpc_buf_printf(b, "  const bool present[%zu] = {\n", s->n_methods);
      for (size_t mi = 0; mi < s->n_methods; mi++)
        nnrpc_buf_printf(b, "    handlers->%s != NULL,\n", s->methods[mi].lower);
      nnrpc_buf_puts(b, "  };\n");
    } else {
      nnrpc_buf_puts(b, "  const bool present[1] = { false };\n");
    }
    nnrpc_buf_printf(b, "  return nnrpc_server_add_service(srv, &%s__nnrpc_service, handlers, present, user_data);\n}\n", P);

    for (size_t mi = 0; mi < s->n_methods; mi++) {
      const nnrpc_model_method *m = &s->methods[mi];
      const char *I = m->input.c_type, *O = m->output.c_type;
      nnrpc_buf_printf(b, "\nnnrpc_status %s__%s__call(nnrpc_channel *ch, const %s *req, %s **reply, const nnrpc_call_opts *opts)\n{\n", P, m->lower, I, O);
      nnrpc_buf_printf(b, "  ProtobufCMessage *out = NULL;\n"
                          "  nnrpc_status st = nnrpc_unary_call(ch, &%s__methods[%zu], req ? &req->base : NULL, &out, opts);\n"
                          "  *reply = (%s *)out;\n  return st;\n}\n", P, mi, O);
      nnrpc_buf_printf(b, "\nint %s__%s__start(nnrpc_channel *ch, const %s *req, const nnrpc_call_opts *opts, const nnrpc_completion *how, nnrpc_call **call)\n{\n", P, m->lower, I);
      nnrpc_buf_printf(b, "  return nnrpc_unary_start(ch, &%s__methods[%zu], req ? &req->base : NULL, opts, how, call);\n}\n", P, mi);
      nnrpc_buf_printf(b, "\nnnrpc_status %s__%s__finish(nnrpc_call *call, %s **reply, nnrpc_metadata *trailers)\n{\n", P, m->lower, O);
      nnrpc_buf_printf(b, "  ProtobufCMessage *out = NULL;\n"
                          "  nnrpc_status st = nnrpc_unary_finish(call, reply ? &out : NULL, trailers);\n"
                          "  if (reply) *reply = (%s *)out;\n  return st;\n}\n", O);
    }
  }
}
