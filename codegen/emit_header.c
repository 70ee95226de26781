#include "emit.h"

/* short names: the emitters are mostly these two calls */
#define P nnrpc_sb_printf
#define S nnrpc_sb_puts

static bool any_deprecated(const nnrpc_file *f) {
  for (size_t i = 0; i < f->n_services; i++)
    for (size_t j = 0; j < f->services[i].n_methods; j++)
      if (f->services[i].methods[j].deprecated) return true;
  return false;
}

static bool is_streaming(const nnrpc_method *m) { return m->client_streaming || m->server_streaming; }

static bool any_streaming(const nnrpc_service *s) {
  for (size_t i = 0; i < s->n_methods; i++)
    if (is_streaming(&s->methods[i])) return true;
  return false;
}

static const char *kind_name(const nnrpc_method *m) {
  if (m->client_streaming && m->server_streaming) return "bidi streaming";
  if (m->client_streaming) return "client streaming";
  return m->server_streaming ? "server streaming" : "unary";
}

/* How the owner of a message of type t, held in the pointer expression
 * `var`, frees it: protoc-c's helper when the type has one. */
static void emit_free_call(nnrpc_sb *b, const nnrpc_type *t, const char *var) {
  if (t->free_fn)
    P(b, "%s(%s, NULL)", t->free_fn, var);
  else
    P(b, "protobuf_c_message_free_unpacked((ProtobufCMessage *)%s, NULL)", var);
}

static void emit_handler_member(nnrpc_sb *b, const nnrpc_method *m) {
  const char *in = m->input.c_name, *out = m->output.c_name;
  if (m->client_streaming && m->server_streaming)
    P(b, "  int (*%s)(nnrpc_ctx *ctx);\n", m->lower);
  else if (m->client_streaming)
    P(b, "  int (*%s)(nnrpc_ctx *ctx, %s *reply);\n", m->lower, out);
  else if (m->server_streaming)
    P(b, "  int (*%s)(nnrpc_ctx *ctx, const %s *req);\n", m->lower, in);
  else
    P(b, "  int (*%s)(nnrpc_ctx *ctx, const %s *req, %s *reply);\n", m->lower, in, out);
}

/* What a streaming handler calls to take and give messages. */
static void emit_server_stream(nnrpc_sb *b, const nnrpc_method *m) {
  P(b, "\n/* ---- %s, server side (%s) */\n", m->name, kind_name(m));
  if (m->recv_fn) {
    P(b, "/* In the %s handler: receives the client's next message. Returns 1 and\n"
         " * sets *msg, owned by the handler, or 0 when there are no more (the client\n"
         " * half-closed, or the call was cancelled: it then ends with that code,\n"
         " * whatever the handler returns). Free each message with\n"
         " * ", m->lower);
    emit_free_call(b, &m->input, "*msg");
    S(b, ". */\n");
    P(b, "int %s(nnrpc_ctx *ctx, %s **msg);\n", m->recv_fn, m->input.c_name);
  }
  if (m->send_fn) {
    P(b, "/* In the %s handler: sends one message to the client, blocking while the\n"
         " * client's window is full. msg stays the handler's (it is encoded before\n"
         " * this returns). NNRPC_OK, or an error code; CANCELLED: the call is over. */\n",
      m->lower);
    P(b, "int %s(nnrpc_ctx *ctx, const %s *msg);\n", m->send_fn, m->output.c_name);
  }
}

static void emit_handlers(nnrpc_sb *b, const nnrpc_service *s) {
  S(b, "/* Server side: fill in the handlers you implement (NULL answers UNIMPLEMENTED),\n"
       " * then register the table with an nnrpc_server. A handler returns a status code:\n"
       " * NNRPC_OK sends *reply, another code fails the call (nnrpc_ctx_fail sets the\n"
       " * message), NNRPC_PENDING finishes it later with nnrpc_ctx_finish. Allocate\n"
       " * reply memory with nnrpc_ctx_alloc / nnrpc_ctx_strdup. */\n");
  if (any_streaming(s))
    S(b, "/* Streaming handlers run on a thread of their own and may block: they take the\n"
         " * client's messages with the method's __recv function and send theirs with its\n"
         " * __send function (below). The code they return ends the call; NNRPC_OK also\n"
         " * sends *reply for client streaming. NNRPC_PENDING is for unary handlers only. */\n");
  P(b, "typedef struct %s {\n", s->handlers_type);
  for (size_t i = 0; i < s->n_methods; i++) {
    const nnrpc_method *m = &s->methods[i];
    nnrpc_emit_comment(b, "  ", m->comment);
    emit_handler_member(b, m);
  }
  if (s->n_methods == 0) S(b, "  char nnrpc_no_methods_; /* C has no empty structs */\n");
  P(b, "} %s;\n\n", s->handlers_type);
  S(b, "/* The table is copied; user_data is given back by nnrpc_ctx_user_data().\n"
       " * Call before nnrpc_server_start. */\n");
  P(b, "int %s(nnrpc_server *srv, const %s *handlers, void *user_data);\n", s->register_fn, s->handlers_type);
  for (size_t i = 0; i < s->n_methods; i++)
    if (is_streaming(&s->methods[i])) emit_server_stream(b, &s->methods[i]);
}

/* The client stubs of a streaming method, in the order they are used. */
static void emit_client_stream(nnrpc_sb *b, const nnrpc_method *m) {
  const char *dep = m->deprecated ? " NNRPC_DEPRECATED" : "";
  const char *in = m->input.c_name, *out = m->output.c_name;
  const char *last = m->close_and_finish_fn ? m->close_and_finish_fn : m->finish_fn;
  P(b, "\n/* ---- %s, client side (%s%s) */\n", m->name, kind_name(m), m->deprecated ? ", deprecated" : "");
  nnrpc_emit_comment(b, "", m->comment);
  if (m->client_streaming) {
    P(b, "/* Opens the stream, without waiting for the server. On NNRPC_OK *stream is\n"
         " * owned by the caller; %s frees it\n"
         " * (nnrpc_stream_cancel ends the call early). */\n", last);
    P(b, "nnrpc_status %s(nnrpc_channel *ch, const nnrpc_call_opts *opts, nnrpc_stream **stream)%s;\n", m->open_fn,
      dep);
  } else {
    P(b, "/* Opens the stream and sends req (only read during this call), without\n"
         " * waiting for the server. On NNRPC_OK *stream is owned by the caller;\n"
         " * %s frees it\n"
         " * (nnrpc_stream_cancel ends the call early). */\n", last);
    P(b, "nnrpc_status %s(nnrpc_channel *ch, const %s *req, const nnrpc_call_opts *opts, nnrpc_stream **stream)%s;\n",
      m->open_fn, in, dep);
  }
  if (m->write_fn) {
    S(b, "/* Sends one request, blocking while the server's window is full. msg stays the\n"
         " * caller's (it is encoded before this returns). NNRPC_OK, or the code the call\n"
         " * failed or ended with. */\n");
    P(b, "int %s(nnrpc_stream *stream, const %s *msg)%s;\n", m->write_fn, in, dep);
  }
  if (m->read_fn) {
    P(b, "/* Receives the next reply: returns 1 and sets *msg, owned by the caller, or 0\n"
         " * (*msg NULL) when the stream is over; then\n"
         " * %s tells why. Free each reply with\n"
         " * ", m->finish_fn);
    emit_free_call(b, &m->output, "*msg");
    S(b, ". */\n");
    P(b, "int %s(nnrpc_stream *stream, %s **msg)%s;\n", m->read_fn, out, dep);
  }
  if (m->close_send_fn) {
    S(b, "/* Half-closes: the client sends no more requests. Idempotent. NNRPC_OK or the\n"
         " * code the call already ended with. */\n");
    P(b, "int %s(nnrpc_stream *stream)%s;\n", m->close_send_fn, dep);
  }
  if (m->close_and_finish_fn) {
    S(b, "/* Half-closes, waits for the reply and the call's status, and frees the\n"
         " * stream. On NNRPC_OK *reply is owned by the caller (reply may be NULL to\n"
         " * discard it); else it is NULL. trailers, if not NULL, is cleared and filled.\n"
         " * Free the reply with ");
    emit_free_call(b, &m->output, "*reply");
    S(b, ". */\n");
    P(b, "nnrpc_status %s(nnrpc_stream *stream, %s **reply, nnrpc_metadata *trailers)%s;\n", m->close_and_finish_fn,
      out, dep);
  } else {
    if (m->client_streaming)
      S(b, "/* Half-closes if that was not done yet, waits for the call's status,\n"
           " * discarding replies not read yet, and frees the stream. trailers, if not\n"
           " * NULL, is cleared and filled. */\n");
    else
      S(b, "/* Waits for the call's status, discarding replies not read yet, and frees the\n"
           " * stream. trailers, if not NULL, is cleared and filled. */\n");
    P(b, "nnrpc_status %s(nnrpc_stream *stream, nnrpc_metadata *trailers)%s;\n", m->finish_fn, dep);
  }
}

static void emit_client(nnrpc_sb *b, const nnrpc_method *m) {
  if (is_streaming(m)) {
    emit_client_stream(b, m);
    return;
  }
  const char *dep = m->deprecated ? " NNRPC_DEPRECATED" : "";
  P(b, "\n/* ---- %s, client side%s */\n", m->name, m->deprecated ? " (deprecated)" : "");
  nnrpc_emit_comment(b, "", m->comment);
  S(b, "/* Blocking call. On NNRPC_OK *reply is owned by the caller: free it with\n"
       " * ");
  emit_free_call(b, &m->output, "*reply");
  S(b, ". */\n");
  P(b, "nnrpc_status %s(nnrpc_channel *ch, const %s *req, %s **reply, const nnrpc_call_opts *opts)%s;\n",
    m->call_fn, m->input.c_name, m->output.c_name, dep);
  S(b, "/* Starts the same call without blocking; it completes through `how` (a callback\n"
       " * or a completion queue). */\n");
  P(b, "int %s(nnrpc_channel *ch, const %s *req, const nnrpc_call_opts *opts, const nnrpc_completion *how, nnrpc_call **call)%s;\n",
    m->start_fn, m->input.c_name, dep);
  S(b, "/* Once it completed: the result, as for the blocking call (reply may be NULL to\n"
       " * discard it), and the call is freed. */\n");
  P(b, "nnrpc_status %s(nnrpc_call *call, %s **reply, nnrpc_metadata *trailers)%s;\n", m->finish_fn,
    m->output.c_name, dep);
}

void nnrpc_emit_header(const nnrpc_file *f, nnrpc_sb *b) {
  const size_t start = b->len;
  P(b, "/* Generated by protoc-gen-nnrpc. DO NOT EDIT! */\n"
       "/* Generated from: %s */\n\n", f->proto);
  P(b, "#ifndef %s\n#define %s\n\n", f->guard, f->guard);
  S(b, "#include <nnrpc/nnrpc.h>\n");
  for (size_t i = 0; i < f->n_includes; i++) P(b, "#include \"%s\"\n", f->includes[i]);
  P(b, "\n#if NNRPC_API_VERSION != %d\n"
       "#error \"%s was generated for nnrpc API version %d: regenerate it\"\n"
       "#endif\n", NNRPC_GEN_API_VERSION, f->out_h, NNRPC_GEN_API_VERSION);
  if (any_deprecated(f))
    S(b, "\n#ifndef NNRPC_DEPRECATED\n"
         "#if defined(__GNUC__)\n"
         "#define NNRPC_DEPRECATED __attribute__((deprecated))\n"
         "#else\n"
         "#define NNRPC_DEPRECATED\n"
         "#endif\n"
         "#endif\n");
  S(b, "\nPROTOBUF_C__BEGIN_DECLS\n");
  for (size_t i = 0; i < f->n_services; i++) {
    const nnrpc_service *s = &f->services[i];
    P(b, "\n/* ---- service %s ---- */\n\n", s->full_name);
    if (nnrpc_emit_comment(b, "", s->comment)) S(b, "\n");
    emit_handlers(b, s);
    for (size_t j = 0; j < s->n_methods; j++) emit_client(b, &s->methods[j]);
    S(b, "\n/* Service description used by the runtime (reflection, generic clients). */\n");
    P(b, "extern const nnrpc_service %s;\n", s->service_desc);
  }
  P(b, "\nPROTOBUF_C__END_DECLS\n\n#endif /* %s */\n", f->guard);
  nnrpc_wrap_lines(b, start, NNRPC_GEN_WIDTH);
}
