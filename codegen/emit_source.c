#include "emit.h"

/* short names: the emitters are mostly these two calls */
#define P nnrpc_sb_printf
#define S nnrpc_sb_puts

static const char *kind_of(const nnrpc_method *m) {
  if (m->client_streaming && m->server_streaming) return "NNRPC_BIDI_STREAMING";
  if (m->client_streaming) return "NNRPC_CLIENT_STREAMING";
  if (m->server_streaming) return "NNRPC_SERVER_STREAMING";
  return "NNRPC_UNARY";
}

/* The runtime calls handlers through these: one cast per method, so the
 * user's table keeps its typed signatures. */
static void emit_invoker(nnrpc_sb *b, const nnrpc_service *s, const nnrpc_method *m) {
  P(b, "\nstatic int %s(nnrpc_ctx *ctx, const void *handlers, const ProtobufCMessage *req, ProtobufCMessage *reply)\n{\n",
    m->invoke_fn);
  P(b, "  const %s *h = handlers;\n", s->handlers_type);
  /* the runtime passes req only where there is one request, reply only
   * where there is one reply (nnrpc_invoke_fn) */
  if (m->client_streaming && m->server_streaming)
    P(b, "  (void)req;\n  (void)reply;\n  return h->%s(ctx);\n}\n", m->lower);
  else if (m->client_streaming)
    P(b, "  (void)req;\n  return h->%s(ctx, (%s *)reply);\n}\n", m->lower, m->output.c_name);
  else if (m->server_streaming)
    P(b, "  (void)reply;\n  return h->%s(ctx, (const %s *)req);\n}\n", m->lower, m->input.c_name);
  else
    P(b, "  return h->%s(ctx, (const %s *)req, (%s *)reply);\n}\n", m->lower, m->input.c_name, m->output.c_name);
}

/* A C string literal of s: quotes, backslashes, '?' (no trigraphs) and
 * anything outside printable ASCII escaped in octal. */
static void put_c_string(nnrpc_sb *b, const char *s) {
  S(b, "\"");
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (*p == '"' || *p == '\\' || *p == '?')
      P(b, "\\%c", *p);
    else if (*p < 0x20 || *p > 0x7e)
      P(b, "\\%03o", *p);
    else
      nnrpc_sb_putc(b, (char)*p);
  }
  S(b, "\"");
}

/* The descriptors of the file and of everything it imports (model.h,
 * nnrpc_fdesc), as static data every service of the file points to. The
 * names are lowercase without a double underscore: protoc-c never
 * declares such a name, and ours all have one. */
static void emit_descriptors(nnrpc_sb *b, const nnrpc_file *f) {
  P(b, "\n/* ---- descriptors of %s and the files it imports (for reflection) ---- */\n", f->proto);
  for (size_t i = 0; i < f->n_fdescs; i++) {
    const nnrpc_fdesc *d = &f->fdescs[i];
    S(b, "\n/* ");
    size_t at = b->len;
    S(b, d->proto);
    for (size_t j = at; j + 1 < b->len; j++) /* a name cannot end the comment */
      if (b->s[j] == '*' && b->s[j + 1] == '/') b->s[j + 1] = '_';
    P(b, ": google.protobuf.FileDescriptorProto, %zu bytes */\n", d->len);
    P(b, "static const uint8_t nnrpc_fd%zu_data[%zu] = {", i, d->len ? d->len : 1);
    for (size_t j = 0; j < d->len; j++) P(b, "%s0x%02x,", j % 16 ? " " : "\n  ", d->data[j]);
    S(b, d->len ? "\n};\n" : " 0 };\n");
    if (d->n_deps) {
      P(b, "static const char *const nnrpc_fd%zu_deps[%zu] = {\n", i, d->n_deps);
      for (size_t j = 0; j < d->n_deps; j++) {
        S(b, "  ");
        put_c_string(b, d->deps[j]);
        S(b, ",\n");
      }
      S(b, "};\n");
    }
    P(b, "static const nnrpc_file_descriptor nnrpc_fd%zu = {\n  .name = ", i);
    put_c_string(b, d->proto);
    P(b, ",\n  .data = nnrpc_fd%zu_data,\n  .len = %zu,\n", i, d->len);
    if (d->n_deps) P(b, "  .n_deps = %zu,\n  .deps = nnrpc_fd%zu_deps,\n", d->n_deps, i);
    S(b, "};\n");
  }
  P(b, "\nstatic const nnrpc_file_descriptor *const nnrpc_files[%zu] = {\n", f->n_fdescs);
  for (size_t i = 0; i < f->n_fdescs; i++) P(b, "  &nnrpc_fd%zu,\n", i);
  S(b, "};\n");
}

static void emit_tables(nnrpc_sb *b, const nnrpc_service *s, size_t n_files) {
  if (s->n_methods > 0) {
    P(b, "\nstatic const nnrpc_method %s[%zu] = {\n", s->methods_array, s->n_methods);
    for (size_t i = 0; i < s->n_methods; i++) {
      const nnrpc_method *m = &s->methods[i];
      P(b, "  { \"%s\", &%s, &%s, %s, %s },\n", m->path, m->input.descriptor, m->output.descriptor, kind_of(m),
        m->invoke_fn);
    }
    S(b, "};\n");
  }
  P(b, "\nconst nnrpc_service %s = {\n", s->service_desc);
  P(b, "  .name = \"%s\",\n  .n_methods = %zu,\n  .methods = %s,\n  .handlers_size = sizeof(%s),\n",
    s->full_name, s->n_methods, s->n_methods ? s->methods_array : "NULL", s->handlers_type);
  P(b, "  .n_files = %zu,\n  .files = nnrpc_files,\n};\n", n_files);
}

static void emit_register(nnrpc_sb *b, const nnrpc_service *s) {
  P(b, "\nint %s(nnrpc_server *srv, const %s *handlers, void *user_data)\n{\n", s->register_fn, s->handlers_type);
  S(b, "  if (handlers == NULL)\n    return NNRPC_INVALID_ARGUMENT;\n");
  if (s->n_methods == 0) {
    S(b, "  const bool present[1] = { false };\n");
  } else {
    P(b, "  const bool present[%zu] = {\n", s->n_methods);
    for (size_t i = 0; i < s->n_methods; i++) P(b, "    handlers->%s != NULL,\n", s->methods[i].lower);
    S(b, "  };\n");
  }
  P(b, "  return nnrpc_server_add_service(srv, &%s, handlers, present, user_data);\n}\n", s->service_desc);
}

/* Requests go to the runtime as their ProtobufCMessage header (protoc-c
 * puts it first), cast rather than `&req->base`: NULL stays NULL for the
 * runtime to reject, and a renamed base field ((pb_c_msg).base_field_name)
 * still works. */
/* The body of a typed read: `fn(handle, &got)` receives into a
 * ProtobufCMessage pointer, handed over as the typed one (never written
 * through a cast `T **`); a NULL msg goes to the runtime as NULL. */
static void emit_read_body(nnrpc_sb *b, const char *fn, const char *handle, const char *type) {
  S(b, "  ProtobufCMessage *got = NULL;\n");
  P(b, "  int more = %s(%s, msg ? &got : NULL);\n", fn, handle);
  P(b, "  if (msg != NULL)\n    *msg = (%s *)got;\n  return more;\n}\n", type);
}

/* The client stubs of a streaming method and, for its handler, the
 * server-side __recv / __send. */
static void emit_stream_stubs(nnrpc_sb *b, const nnrpc_service *s, size_t i) {
  const nnrpc_method *m = &s->methods[i];
  const char *in = m->input.c_name, *out = m->output.c_name;
  if (m->client_streaming) {
    P(b, "\nnnrpc_status %s(nnrpc_channel *ch, const nnrpc_call_opts *opts, nnrpc_stream **stream)\n{\n", m->open_fn);
    P(b, "  return nnrpc_stream_open(ch, &%s[%zu], NULL, opts, stream);\n}\n", s->methods_array, i);
  } else {
    P(b, "\nnnrpc_status %s(nnrpc_channel *ch, const %s *req, const nnrpc_call_opts *opts, nnrpc_stream **stream)\n{\n",
      m->open_fn, in);
    P(b, "  return nnrpc_stream_open(ch, &%s[%zu], (const ProtobufCMessage *)req, opts, stream);\n}\n",
      s->methods_array, i);
  }
  if (m->write_fn) {
    P(b, "\nint %s(nnrpc_stream *stream, const %s *msg)\n{\n", m->write_fn, in);
    S(b, "  return nnrpc_stream_write(stream, (const ProtobufCMessage *)msg);\n}\n");
  }
  if (m->read_fn) {
    P(b, "\nint %s(nnrpc_stream *stream, %s **msg)\n{\n", m->read_fn, out);
    emit_read_body(b, "nnrpc_stream_read", "stream", out);
  }
  if (m->close_send_fn) {
    P(b, "\nint %s(nnrpc_stream *stream)\n{\n", m->close_send_fn);
    S(b, "  return nnrpc_stream_close_send(stream);\n}\n");
  }
  if (m->close_and_finish_fn) {
    P(b, "\nnnrpc_status %s(nnrpc_stream *stream, %s **reply, nnrpc_metadata *trailers)\n{\n", m->close_and_finish_fn,
      out);
    /* a failed half-close leaves the call's code for finish to report */
    S(b, "  ProtobufCMessage *out = NULL;\n"
         "  (void)nnrpc_stream_close_send(stream);\n"
         "  nnrpc_status st = nnrpc_stream_finish(stream, reply ? &out : NULL, trailers);\n");
    P(b, "  if (reply != NULL)\n    *reply = (%s *)out;\n  return st;\n}\n", out);
  } else {
    P(b, "\nnnrpc_status %s(nnrpc_stream *stream, nnrpc_metadata *trailers)\n{\n", m->finish_fn);
    S(b, "  return nnrpc_stream_finish(stream, NULL, trailers);\n}\n");
  }
  if (m->recv_fn) {
    P(b, "\nint %s(nnrpc_ctx *ctx, %s **msg)\n{\n", m->recv_fn, in);
    emit_read_body(b, "nnrpc_ctx_read", "ctx", in);
  }
  if (m->send_fn) {
    P(b, "\nint %s(nnrpc_ctx *ctx, const %s *msg)\n{\n", m->send_fn, out);
    S(b, "  return nnrpc_ctx_write(ctx, (const ProtobufCMessage *)msg);\n}\n");
  }
}

static void emit_stubs(nnrpc_sb *b, const nnrpc_service *s, size_t i) {
  const nnrpc_method *m = &s->methods[i];
  if (m->client_streaming || m->server_streaming) {
    emit_stream_stubs(b, s, i);
    return;
  }
  const char *in = m->input.c_name, *out = m->output.c_name;
  P(b, "\nnnrpc_status %s(nnrpc_channel *ch, const %s *req, %s **reply, const nnrpc_call_opts *opts)\n{\n", m->call_fn,
    in, out);
  S(b, "  ProtobufCMessage *out = NULL;\n");
  P(b, "  nnrpc_status st = nnrpc_unary_call(ch, &%s[%zu], (const ProtobufCMessage *)req, reply ? &out : NULL, opts);\n",
    s->methods_array, i);
  P(b, "  if (reply != NULL)\n    *reply = (%s *)out;\n  return st;\n}\n", out);

  P(b, "\nint %s(nnrpc_channel *ch, const %s *req, const nnrpc_call_opts *opts, const nnrpc_completion *how, nnrpc_call **call)\n{\n",
    m->start_fn, in);
  P(b, "  return nnrpc_unary_start(ch, &%s[%zu], (const ProtobufCMessage *)req, opts, how, call);\n}\n", s->methods_array,
    i);

  P(b, "\nnnrpc_status %s(nnrpc_call *call, %s **reply, nnrpc_metadata *trailers)\n{\n", m->finish_fn, out);
  S(b, "  ProtobufCMessage *out = NULL;\n"
       "  nnrpc_status st = nnrpc_unary_finish(call, reply ? &out : NULL, trailers);\n");
  P(b, "  if (reply != NULL)\n    *reply = (%s *)out;\n  return st;\n}\n", out);
}

void nnrpc_emit_source(const nnrpc_file *f, nnrpc_sb *b) {
  const size_t start = b->len;
  P(b, "/* Generated by protoc-gen-nnrpc. DO NOT EDIT! */\n"
       "/* Generated from: %s */\n\n", f->proto);
  /* next to this file, whatever -I the user compiles with */
  P(b, "#include \"%s\"\n", f->h_include);
  emit_descriptors(b, f);
  for (size_t i = 0; i < f->n_services; i++) {
    const nnrpc_service *s = &f->services[i];
    P(b, "\n/* ---- service %s ---- */\n", s->full_name);
    for (size_t j = 0; j < s->n_methods; j++) emit_invoker(b, s, &s->methods[j]);
    emit_tables(b, s, f->n_fdescs);
    emit_register(b, s);
    for (size_t j = 0; j < s->n_methods; j++) emit_stubs(b, s, j);
  }
  nnrpc_wrap_lines(b, start, NNRPC_GEN_WIDTH);
}
