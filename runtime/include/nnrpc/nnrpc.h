/*
 * nnrpc — gRPC-style RPC for C over nanomsg.
 *
 * This is the whole public API of libnnrpc. Generated code (X.nnrpc.c) calls
 * only what is declared here. Conventions:
 *   - every public symbol starts with nnrpc_ / NNRPC_;
 *   - handles (nnrpc_channel, nnrpc_server, nnrpc_ctx, nnrpc_metadata) are opaque;
 *   - functions return an int status code (NNRPC_OK == 0) or an nnrpc_status;
 *   - each function states who owns the memory it takes or returns.
 */
#ifndef NNRPC_NNRPC_H
#define NNRPC_NNRPC_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <stdio.h>
#include <protobuf-c/protobuf-c.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Version of the runtime API. Generated code checks it at compile time. */
#define NNRPC_VERSION_MAJOR 0
#define NNRPC_VERSION_MINOR 2
/* 3: nnrpc_service ends with the descriptors of its .proto files (reflection) */
#define NNRPC_API_VERSION 3

#if defined(__GNUC__)
#define NNRPC_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define NNRPC_PRINTF(a, b)
#endif

/* ---------------------------------------------------------------- status */

/* gRPC's 17 status codes: same names, same numbers. X(NAME, number, text). */
#define NNRPC_CODE_MAP(X)                                                    \
  X(OK, 0, "ok")                                                             \
  X(CANCELLED, 1, "the call was cancelled")                                  \
  X(UNKNOWN, 2, "unknown error")                                             \
  X(INVALID_ARGUMENT, 3, "invalid argument")                                 \
  X(DEADLINE_EXCEEDED, 4, "deadline exceeded")                               \
  X(NOT_FOUND, 5, "not found")                                               \
  X(ALREADY_EXISTS, 6, "already exists")                                     \
  X(PERMISSION_DENIED, 7, "permission denied")                               \
  X(RESOURCE_EXHAUSTED, 8, "resource exhausted")                             \
  X(FAILED_PRECONDITION, 9, "failed precondition")                           \
  X(ABORTED, 10, "aborted")                                                  \
  X(OUT_OF_RANGE, 11, "out of range")                                        \
  X(UNIMPLEMENTED, 12, "unimplemented")                                      \
  X(INTERNAL, 13, "internal error")                                          \
  X(UNAVAILABLE, 14, "service unavailable")                                  \
  X(DATA_LOSS, 15, "data loss")                                              \
  X(UNAUTHENTICATED, 16, "unauthenticated")

typedef enum nnrpc_code {
#define NNRPC_X_(name, num, text) NNRPC_##name = num,
  NNRPC_CODE_MAP(NNRPC_X_)
#undef NNRPC_X_
} nnrpc_code;

#define NNRPC_CODE_COUNT 17

/* The result of a call: a code and a human-readable message.
 * `message` is never NULL. It points either to static text or to storage
 * owned by the calling thread, valid until that thread's next nnrpc call
 * that returns an nnrpc_status (like errno). Copy it to keep it. */
typedef struct nnrpc_status {
  int code;
  const char *message;
} nnrpc_status;

/* "DEADLINE_EXCEEDED" for NNRPC_DEADLINE_EXCEEDED; "UNKNOWN_CODE" when out of range. */
const char *nnrpc_code_name(int code);
/* Short English description of a code; static text. */
const char *nnrpc_strerror(int code);
/* Parses "DEADLINE_EXCEEDED" (any case) or a decimal number; -1 if neither. */
int nnrpc_code_from_name(const char *name);

/* ---------------------------------------------------------------- metadata */

/* An ordered list of key/value pairs (headers or trailers). Keys are
 * lowercase ASCII [a-z0-9-_.]; values are arbitrary bytes. */
typedef struct nnrpc_metadata nnrpc_metadata;

/* Creates an empty list. The caller owns it: free with nnrpc_metadata_free. */
nnrpc_metadata *nnrpc_metadata_new(void);
void nnrpc_metadata_free(nnrpc_metadata *md);
/* Removes every entry (keeps the allocation). */
void nnrpc_metadata_clear(nnrpc_metadata *md);
/* Copies key and value in. Returns NNRPC_OK, NNRPC_INVALID_ARGUMENT for a
 * bad key, NNRPC_RESOURCE_EXHAUSTED when out of memory. */
int nnrpc_metadata_add(nnrpc_metadata *md, const char *key, const void *value,
                       size_t len);
/* Convenience for NUL-terminated string values. */
int nnrpc_metadata_add_str(nnrpc_metadata *md, const char *key, const char *value);
size_t nnrpc_metadata_count(const nnrpc_metadata *md);
/* Entry i (0-based). Pointers stay owned by md and valid until it changes. */
int nnrpc_metadata_at(const nnrpc_metadata *md, size_t i, const char **key,
                      const void **value, size_t *len);
/* First value for key, or NULL. The value is NUL-terminated for convenience
 * (len excludes the NUL). Owned by md. */
const char *nnrpc_metadata_get(const nnrpc_metadata *md, const char *key, size_t *len);

/* ---------------------------------------------------------------- methods */

typedef enum nnrpc_method_kind {
  NNRPC_UNARY = 0,
  NNRPC_CLIENT_STREAMING = 1,
  NNRPC_SERVER_STREAMING = 2,
  NNRPC_BIDI_STREAMING = 3
} nnrpc_method_kind;

typedef struct nnrpc_ctx nnrpc_ctx;

/* Calls the user's typed handler for one method. Generated code provides one
 * per method. `handlers` is the runtime's copy of the user's handler table.
 * `req` is the decoded request for unary and server-streaming methods (NULL
 * otherwise); `reply` is a message initialised with the output type's init
 * for unary and client-streaming methods (NULL otherwise). The return value
 * is the status code (NNRPC_OK to send `reply`, if any). */
typedef int (*nnrpc_invoke_fn)(nnrpc_ctx *ctx, const void *handlers,
                               const ProtobufCMessage *req, ProtobufCMessage *reply);

/* Static description of one method, emitted by protoc-gen-nnrpc. */
typedef struct nnrpc_method {
  const char *path;                         /* "/pkg.Service/Method" */
  const ProtobufCMessageDescriptor *input;
  const ProtobufCMessageDescriptor *output;
  nnrpc_method_kind kind;
  nnrpc_invoke_fn invoke;                   /* server side */
} nnrpc_method;

/* One .proto file's schema, embedded by protoc-gen-nnrpc for reflection
 * (nnrpc_server_enable_reflection) and generic clients (the nnrpc command). */
typedef struct nnrpc_file_descriptor {
  const char *name;                         /* "dir/x.proto", as protoc names it */
  const uint8_t *data;                      /* a serialized google.protobuf.FileDescriptorProto */
  size_t len;                               /*   (source_code_info left out) */
  size_t n_deps;
  const char *const *deps;                  /* the files it imports, by name */
} nnrpc_file_descriptor;

/* Static description of one service, emitted by protoc-gen-nnrpc. */
typedef struct nnrpc_service {
  const char *name;                         /* "pkg.Service" */
  size_t n_methods;
  const nnrpc_method *methods;
  size_t handlers_size;                     /* sizeof the generated handler table */
  /* API 3: files[0] is the service's own .proto file, then every file it
   * imports, directly or not, each once (so the types of every method are
   * described). Static. n_files 0: no descriptors (hand-written tables). */
  size_t n_files;
  const nnrpc_file_descriptor *const *files;
} nnrpc_service;

/* ---------------------------------------------------------------- channel */

typedef struct nnrpc_channel nnrpc_channel;

/* What a client interceptor sees of a call about to be sent. */
typedef struct nnrpc_client_call {
  const char *method;            /* "/pkg.Service/Method" */
  nnrpc_method_kind kind;
  int64_t timeout_ms;            /* time left until the deadline; -1: none */
  const nnrpc_metadata *headers; /* the call's own headers; NULL: none */
  const char *reject_message;    /* a `before` hook that refuses may point this
                                    at text that outlives the call */
} nnrpc_client_call;

/* Hooks around every call of a channel (unary blocking and async, streams). */
typedef struct nnrpc_client_interceptor {
  /* Before the call is sent, on the calling thread. It may add headers to
   * `extra` (sent after the channel's and the call's own, within the
   * metadata limits). NNRPC_OK goes on; another code fails the call locally
   * with that code (message: call->reject_message) and nothing is sent.
   * NULL: none. */
  int (*before)(nnrpc_client_call *call, nnrpc_metadata *extra, void *user);
  /* When the caller learns the outcome: nnrpc_unary_call returning,
   * nnrpc_unary_finish, nnrpc_stream_finish; with the final code and the
   * time since the call was sent, in us. NULL: none. */
  void (*after)(const char *method, int code, int64_t duration_us, void *user);
  void *user;
} nnrpc_client_interceptor;

/* Channel options. Every field 0 means "the default" (in brackets), so
 * `nnrpc_channel_opts o = { .default_timeout_ms = 500 };` is complete. */
typedef struct nnrpc_channel_opts {
  int64_t default_timeout_ms;     /* deadline of calls that set none [30000]; <0: none */
  size_t max_send_msg;            /* largest request payload [4 MiB] */
  size_t max_recv_msg;            /* largest reply payload [4 MiB] */
  size_t max_metadata_bytes;      /* headers/trailers, keys+values [8 KiB] */
  size_t max_metadata_count;      /* headers/trailers entries [64] */
  uint32_t max_in_flight;         /* calls in flight on the channel [10000] */
  int64_t keepalive_ms;           /* ping interval while calls are in flight [1000] */
  int64_t keepalive_timeout_ms;   /* no reply from the server this long -> UNAVAILABLE [5000] */
  int64_t connect_timeout_ms;     /* informational; a call waits for a connection until its deadline */
  int sndbuf;                     /* NN_SNDBUF / NN_RCVBUF bytes [1 MiB] */
  int rcvbuf;
  uint32_t max_decode_depth;      /* nesting depth accepted in replies [64] */
  size_t max_decode_bytes;        /* memory one decoded reply may use [64 MiB] */
  uint32_t stream_window;         /* bytes of stream messages the server may send
                                     ahead of nnrpc_stream_read, per stream [256 KiB] */
  const nnrpc_metadata *call_headers; /* sent with every call, before its own headers
                                     (credentials, tracing); copied at open [none] */
  const char *bearer_token;       /* adds "authorization: Bearer <token>" to
                                     call_headers; copied at open [none] */
  const nnrpc_client_interceptor *interceptors; /* run in order (after hooks in
                                     reverse) around every call; the array is
                                     copied at open [none] */
  size_t n_interceptors;
} nnrpc_channel_opts;

/* Opens a channel to `url` (tcp://host:port, ipc:///path, inproc://name,
 * ws://host:port). Connects in the background; calls wait for the connection
 * until their deadline. `opts` may be NULL; it is copied.
 * On success *out is a channel owned by the caller (nnrpc_channel_close).
 * Errors: NNRPC_INVALID_ARGUMENT (bad URL or option), NNRPC_INTERNAL. */
int nnrpc_channel_open(nnrpc_channel **out, const char *url,
                       const nnrpc_channel_opts *opts);

/* Fails every call still in flight with CANCELLED ("channel closed"): blocking
 * calls return, async calls complete (callbacks run, queues receive them)
 * before this returns. Then stops the channel's thread and frees it. No call
 * may be started or cancelled on it concurrently or after; async call
 * handles stay valid until nnrpc_unary_finish. NULL is a no-op. */
void nnrpc_channel_close(nnrpc_channel *ch);

/* Per-call options; NULL or zeroed fields mean the defaults. */
typedef struct nnrpc_call_opts {
  int64_t timeout_ms;             /* 0: channel default; <0: no deadline */
  const nnrpc_metadata *headers;  /* sent with the call; borrowed for the call */
  nnrpc_metadata *trailers;       /* if set, cleared and filled with the
                                     server's trailers; owned by the caller */
} nnrpc_call_opts;

/* A blocking unary call. Generated stubs wrap this with typed arguments.
 * On NNRPC_OK, *reply is a message of m->output allocated with the system
 * allocator: the caller frees it with protobuf_c_message_free_unpacked(*reply,
 * NULL) (or the generated __free_unpacked). On any other code *reply is NULL.
 * Thread-safe: any number of threads may call on one channel at once. */
nnrpc_status nnrpc_unary_call(nnrpc_channel *ch, const nnrpc_method *m,
                              const ProtobufCMessage *req, ProtobufCMessage **reply,
                              const nnrpc_call_opts *opts);

/* ---------------------------------------------------------------- async calls */

/* An asynchronous call in flight. Created by nnrpc_unary_start, completed
 * exactly once (reply, error, deadline, cancel or channel close), then
 * released by nnrpc_unary_finish. */
typedef struct nnrpc_call nnrpc_call;
/* A completion queue: completed calls wait here until nnrpc_cq_next. */
typedef struct nnrpc_cq nnrpc_cq;
/* Completion callback. Runs on the channel's receive thread: keep it short.
 * It may call nnrpc_unary_finish (on any call), nnrpc_unary_start and
 * nnrpc_call_cancel; it must not block, make blocking calls on the same
 * channel, or close the channel. */
typedef void (*nnrpc_done_fn)(nnrpc_call *call, void *user_data);

/* How a call reports completion: set `done` or `cq` (not both). */
typedef struct nnrpc_completion {
  nnrpc_done_fn done;
  nnrpc_cq *cq;
  void *user_data; /* given to `done`; nnrpc_call_user_data() for cq users */
} nnrpc_completion;

/* Starts a unary call without blocking. The request is encoded before the
 * function returns (it is not referenced afterwards); `opts->headers` is read
 * now, `opts->trailers` is ignored (pass trailers to nnrpc_unary_finish).
 * On NNRPC_OK the call will complete exactly once, and the caller owns the
 * handle until nnrpc_unary_finish; *out (may be NULL) receives it, possibly
 * after it already completed. On any other code nothing was started and
 * nothing will complete. Errors: INVALID_ARGUMENT, RESOURCE_EXHAUSTED
 * (max_send_msg, max_in_flight, metadata limits), CANCELLED (channel closing). */
int nnrpc_unary_start(nnrpc_channel *ch, const nnrpc_method *m, const ProtobufCMessage *req,
                      const nnrpc_call_opts *opts, const nnrpc_completion *how,
                      nnrpc_call **out);

/* Asks a pending call to end: it completes promptly with CANCELLED (unless it
 * already completed), and the server is told. Any thread, any time before
 * nnrpc_unary_finish; not concurrently with nnrpc_unary_finish of the same
 * call or nnrpc_channel_close of its channel. */
void nnrpc_call_cancel(nnrpc_call *call);

/* user_data given at start. */
void *nnrpc_call_user_data(const nnrpc_call *call);

/* True once the call has completed (its callback ran or it was queued). */
bool nnrpc_call_is_done(const nnrpc_call *call);

/* Only after completion: decodes the result and frees the call. Same
 * contract as nnrpc_unary_call for *reply (caller-owned on OK, NULL otherwise)
 * and the status. `trailers`, if not NULL, is cleared and filled. `reply` may
 * be NULL to discard it. The handle is invalid afterwards. */
nnrpc_status nnrpc_unary_finish(nnrpc_call *call, ProtobufCMessage **reply,
                                nnrpc_metadata *trailers);

/* Creates a completion queue; the caller owns it (nnrpc_cq_close). */
int nnrpc_cq_open(nnrpc_cq **out);
/* A file descriptor that polls readable (POLLIN) exactly while completed
 * calls are queued. Owned by the queue: do not read or close it. */
int nnrpc_cq_fd(const nnrpc_cq *cq);
/* Takes the next completed call: waits up to timeout_ms (0: do not wait,
 * <0: forever). NULL on timeout. The caller then owns the call (finish it). */
nnrpc_call *nnrpc_cq_next(nnrpc_cq *cq, int64_t timeout_ms);
/* Number of completed calls waiting in the queue. */
size_t nnrpc_cq_size(const nnrpc_cq *cq);
/* Frees the queue. No call may still be due to complete into it; calls still
 * queued are finished (discarded). NULL is a no-op. */
void nnrpc_cq_close(nnrpc_cq *cq);

/* ---------------------------------------------------------------- streams (client side) */

/* A streaming call (client-, server- or bidirectional streaming) from the
 * client's side. Blocking API; the call's deadline (opts->timeout_ms or the
 * channel default) covers the whole stream. One thread may read while another
 * writes; two threads must not read (or write) the same stream at once.
 * Flow control: each direction of a stream has a window (stream_window
 * option of the receiving side): a writer blocks while the peer has that many
 * bytes unread, so memory per stream stays bounded. */
typedef struct nnrpc_stream nnrpc_stream;

/* Starts a streaming call of method m (any streaming kind). For server
 * streaming, `req` is the single request (encoded before returning); for the
 * other kinds it must be NULL. Returns when the call is on its way (it does
 * not wait for the server). On NNRPC_OK *out is owned by the caller until
 * nnrpc_stream_finish. Errors: INVALID_ARGUMENT, RESOURCE_EXHAUSTED (limits),
 * DEADLINE_EXCEEDED (no connection before the deadline), CANCELLED (closing). */
nnrpc_status nnrpc_stream_open(nnrpc_channel *ch, const nnrpc_method *m, const ProtobufCMessage *req,
                               const nnrpc_call_opts *opts, nnrpc_stream **out);

/* Sends one message (client- and bidi-streaming). Blocks while the server's
 * window is full, at most until the deadline. `msg` is not referenced after
 * the return. Returns NNRPC_OK, or: FAILED_PRECONDITION (after close_send, or
 * the call already ended with OK), RESOURCE_EXHAUSTED (larger than
 * max_send_msg), INVALID_ARGUMENT (wrong message type), or the code the call
 * ended with (CANCELLED, DEADLINE_EXCEEDED, UNAVAILABLE, a server error...). */
int nnrpc_stream_write(nnrpc_stream *st, const ProtobufCMessage *msg);

/* Half-closes: the client sends no more messages. Idempotent. Returns
 * NNRPC_OK or the code the call already ended with. */
int nnrpc_stream_close_send(nnrpc_stream *st);

/* Receives the next message (server- and bidi-streaming). Returns 1 and sets
 * *msg (caller-owned: protobuf_c_message_free_unpacked(*msg, NULL)), or 0 with
 * *msg NULL when the stream is over: the server finished, or the call failed
 * (deadline, cancel, connection lost, undecodable message).
 * nnrpc_stream_finish then tells which. Messages the server sent before its
 * final status (even an error) are still read first; after a local end
 * (cancel, deadline, lost connection) reads return 0 at once. */
int nnrpc_stream_read(nnrpc_stream *st, ProtobufCMessage **msg);

/* Ends the call now with CANCELLED and tells the server. Any thread, any
 * time before nnrpc_stream_finish; blocked reads/writes return at once. */
void nnrpc_stream_cancel(nnrpc_stream *st);

/* Waits for the call's final status (until the deadline), discarding
 * messages not read yet, then frees the stream. For client streaming,
 * `reply` (may be NULL) receives the single reply on NNRPC_OK (caller-owned,
 * as for nnrpc_unary_call); for other kinds pass NULL. `trailers`, if not
 * NULL, is cleared and filled. The handle is invalid afterwards. Calling it
 * without close_send on a client/bidi stream half-closes first. */
nnrpc_status nnrpc_stream_finish(nnrpc_stream *st, ProtobufCMessage **reply, nnrpc_metadata *trailers);

/* ---------------------------------------------------------------- generic calls (encoded messages) */

/* Calls by method path with messages as protobuf wire bytes, for programs
 * that know the schema only at run time (the nnrpc command line tool, with
 * descriptors from reflection). Deadlines, metadata, limits and errors are
 * those of the typed calls above; the runtime checks only that the bytes
 * are well-formed protobuf, not that they fit the method's types (a server
 * that cannot decode a request answers INVALID_ARGUMENT). `path` is
 * "/pkg.Service/Method".
 *
 * Unary: on NNRPC_OK *reply is a malloc'ed buffer of *reply_len bytes (not
 * NULL even when empty) that the caller frees with free(); otherwise *reply
 * is NULL and *reply_len 0. */
nnrpc_status nnrpc_unary_call_raw(nnrpc_channel *ch, const char *path, const uint8_t *req,
                                  size_t req_len, uint8_t **reply, size_t *reply_len,
                                  const nnrpc_call_opts *opts);

/* Streams: nnrpc_stream_open for a method of `kind` (a streaming kind);
 * `req` is the request of a server-streaming call (req_len bytes; NULL is
 * an empty message) and must be NULL for the other kinds. Use the stream
 * with nnrpc_stream_write_raw / nnrpc_stream_read_raw and the ordinary
 * nnrpc_stream_close_send / nnrpc_stream_cancel, and end it with
 * nnrpc_stream_finish_raw (not nnrpc_stream_finish: the stream owns a copy
 * of the path that only the _raw finish frees). */
nnrpc_status nnrpc_stream_open_raw(nnrpc_channel *ch, const char *path, nnrpc_method_kind kind,
                                   const uint8_t *req, size_t req_len, const nnrpc_call_opts *opts,
                                   nnrpc_stream **out);
/* As nnrpc_stream_write; the bytes are copied before it returns. */
int nnrpc_stream_write_raw(nnrpc_stream *st, const uint8_t *msg, size_t len);
/* As nnrpc_stream_read: 1 with *msg a malloc'ed buffer of *len bytes (the
 * caller frees it), or 0 with *msg NULL when the stream is over. */
int nnrpc_stream_read_raw(nnrpc_stream *st, uint8_t **msg, size_t *len);
/* As nnrpc_stream_finish; `reply` and `reply_len` (may be NULL) receive a
 * client-streaming call's reply as for nnrpc_unary_call_raw. */
nnrpc_status nnrpc_stream_finish_raw(nnrpc_stream *st, uint8_t **reply, size_t *reply_len,
                                     nnrpc_metadata *trailers);

/* ---------------------------------------------------------------- server */

typedef struct nnrpc_server nnrpc_server;

typedef struct nnrpc_server_opts {
  uint32_t workers;               /* unary handlers running at once [4]; the pool
                                     has one more thread, which keeps receiving */
  uint32_t max_concurrent_calls;  /* calls accepted and not finished [1000];
                                     past it: RESOURCE_EXHAUSTED */
  size_t max_recv_msg;            /* largest request payload [4 MiB] */
  size_t max_send_msg;            /* largest reply payload [4 MiB] */
  size_t max_metadata_bytes;      /* [8 KiB] */
  size_t max_metadata_count;      /* [64] */
  int64_t keepalive_timeout_ms;   /* client silent this long -> its calls are
                                     cancelled [10000] */
  int sndbuf;                     /* [1 MiB] */
  int rcvbuf;
  uint32_t max_decode_depth;      /* [64] */
  size_t max_decode_bytes;        /* per request [64 MiB] */
  size_t max_batch_bytes;         /* frames coalesced into one message [64 KiB] */
  uint32_t stream_window;         /* bytes of stream messages a client may send
                                     ahead of nnrpc_ctx_read, per stream [256 KiB] */
  uint32_t max_concurrent_streams;/* streaming calls open at once per connection
                                     (each has a thread); past it:
                                     RESOURCE_EXHAUSTED [100] */
} nnrpc_server_opts;

/* Creates a server (not yet listening). opts may be NULL; it is copied.
 * The caller owns *out and frees it with nnrpc_server_close. */
int nnrpc_server_open(nnrpc_server **out, const nnrpc_server_opts *opts);

/* Adds a service. Generated code calls this from X__register(); users rarely
 * call it directly. `handlers` (handlers_size bytes) is copied; entries that
 * are NULL answer UNIMPLEMENTED. `present[i]` says whether method i has a
 * handler. user_data is returned by nnrpc_ctx_user_data. Must be called
 * before nnrpc_server_start. Errors: NNRPC_ALREADY_EXISTS (same service
 * twice), NNRPC_FAILED_PRECONDITION (already started). */
int nnrpc_server_add_service(nnrpc_server *srv, const nnrpc_service *svc,
                             const void *handlers, const bool *present,
                             void *user_data);

/* Binds a URL: tcp://0.0.0.0:5555 (a star host works too), ipc:///path, inproc://name, ws://... May be
 * called several times; before or after start. */
int nnrpc_server_listen(nnrpc_server *srv, const char *url);

/* Starts the receive thread and the worker pool; returns at once. */
int nnrpc_server_start(nnrpc_server *srv);

/* Starts if needed, then blocks until nnrpc_server_shutdown is called. */
int nnrpc_server_run(nnrpc_server *srv);

/* Graceful shutdown: new calls get UNAVAILABLE, running calls have grace_ms
 * to finish, then are cancelled (handlers see nnrpc_ctx_is_cancelled), and
 * their replies are flushed. Returns when every handler has returned.
 * Thread-safe; a second call is a no-op. Not async-signal-safe: from a signal
 * handler, use nnrpc_server_stop_async. */
void nnrpc_server_shutdown(nnrpc_server *srv, int64_t grace_ms);

/* Async-signal-safe request to shut down (with the default grace of 5 s):
 * nnrpc_server_run returns after the shutdown completes. */
void nnrpc_server_stop_async(nnrpc_server *srv);

/* Shuts down (grace 0) if running, then frees everything. NULL is a no-op. */
void nnrpc_server_close(nnrpc_server *srv);

/* ---------------------------------------------------------------- interceptors */

/* Hooks around every call of a server (all methods, all kinds). */
typedef struct nnrpc_server_interceptor {
  /* Runs before the handler, on the thread that would run it, once the
   * call's method, headers and deadline are known (nnrpc_ctx_method/headers/
   * remaining_ms). NNRPC_OK goes on; any other code ends the call with that
   * code (and the message set with nnrpc_ctx_fail) without running the
   * handler. NULL: no check. */
  int (*before)(nnrpc_ctx *ctx, void *user);
  /* Runs once when the call ends, with its final code and its duration in
   * microseconds since the server received it, on the thread that ended it.
   * Must not block. NULL: none. */
  void (*after)(nnrpc_ctx *ctx, int code, int64_t duration_us, void *user);
  void *user;
} nnrpc_server_interceptor;

/* Adds an interceptor (the struct is copied). `before` hooks run in the order
 * added and stop at the first refusal; `after` hooks all run, in reverse
 * order. Before nnrpc_server_start. Errors: INVALID_ARGUMENT,
 * FAILED_PRECONDITION (started), RESOURCE_EXHAUSTED. */
int nnrpc_server_add_interceptor(nnrpc_server *srv, const nnrpc_server_interceptor *ic);

/* Bearer-token authentication: an interceptor that ends every call lacking
 * "authorization: Bearer <token>" with UNAUTHENTICATED before any handler
 * runs. The token is copied and compared in constant time. nanomsg transports
 * are not encrypted: on a network, a token is only as secret as the link
 * (see README, Security). Errors as nnrpc_server_add_interceptor. */
int nnrpc_server_require_bearer(nnrpc_server *srv, const char *token);

/* ---------------------------------------------------------------- observability */

/* Logs one line per call to `out` (NULL: stderr), when it ends:
 * "nnrpc: /pkg.Service/Method OK 0.153 ms in=12 out=20" (payload bytes
 * received and sent). An interceptor; `out` is borrowed for the server's
 * life. Before nnrpc_server_start. */
int nnrpc_server_log_calls(nnrpc_server *srv, FILE *out);

/* Latency histogram buckets: bucket 0 counts calls under 1 us, bucket i
 * (1..NNRPC_STATS_BUCKETS-2) those in [2^(i-1), 2^i) us, the last all longer. */
#define NNRPC_STATS_BUCKETS 28

/* A snapshot of one method's counters (nnrpc_server_stats). */
typedef struct nnrpc_method_stats {
  const char *method;                 /* "/pkg.Service/Method"; static */
  uint64_t calls;                     /* ended calls */
  uint64_t codes[NNRPC_CODE_COUNT];   /* ended calls by final status code */
  uint64_t bytes_in, bytes_out;       /* message payload bytes */
  uint64_t total_us, max_us;          /* durations, from receipt to end */
  uint64_t latency[NNRPC_STATS_BUCKETS];
} nnrpc_method_stats;

/* Counts every call of every method added so far, by method (an
 * interceptor). After adding services, before nnrpc_server_start.
 * Errors: INVALID_ARGUMENT, ALREADY_EXISTS, FAILED_PRECONDITION (started),
 * RESOURCE_EXHAUSTED. */
int nnrpc_server_enable_stats(nnrpc_server *srv);

/* Copies the counters of up to `max` methods into out (sorted by method)
 * and returns how many methods there are (0 if stats are not enabled). Any
 * thread, any time; each counter is read atomically. */
size_t nnrpc_server_stats(nnrpc_server *srv, nnrpc_method_stats *out, size_t max);

/* The duration under which a fraction q (0..1) of the calls ended, in us,
 * to the resolution of the histogram (a power of two; the maximum for the
 * last bucket). 0 without calls. */
int64_t nnrpc_stats_quantile_us(const nnrpc_method_stats *st, double q);

/* How many message payload bytes a call received and sent so far (inside a
 * handler or an interceptor). */
void nnrpc_ctx_bytes(const nnrpc_ctx *ctx, uint64_t *received, uint64_t *sent);

/* ---------------------------------------------------------------- health checking */

/* gRPC's health statuses (nnrpc.health.v1.HealthCheckResponse.ServingStatus). */
typedef enum nnrpc_health_status {
  NNRPC_HEALTH_UNKNOWN = 0,
  NNRPC_HEALTH_SERVING = 1,
  NNRPC_HEALTH_NOT_SERVING = 2,
  NNRPC_HEALTH_SERVICE_UNKNOWN = 3 /* Watch only */
} nnrpc_health_status;

/* Serves nnrpc.health.v1.Health (idl/nnrpc/health.proto: Check, and Watch as
 * a server stream) on srv. Every service the server has, and "" (the whole
 * server), is SERVING unless set otherwise; all turn NOT_SERVING when a
 * graceful shutdown begins (health checks are still answered while draining).
 * Before nnrpc_server_start. Errors: INVALID_ARGUMENT, FAILED_PRECONDITION
 * (started), ALREADY_EXISTS (enabled twice), RESOURCE_EXHAUSTED. */
int nnrpc_server_enable_health(nnrpc_server *srv);

/* Sets a service's status (the name is copied; "" is the whole server):
 * NNRPC_HEALTH_UNKNOWN, SERVING or NOT_SERVING. Any thread, any time after
 * enable_health; Watch calls hear of it at once. */
int nnrpc_server_set_health(nnrpc_server *srv, const char *service, int status);

/* The service's description, for a Watch through nnrpc_stream_open(ch,
 * &nnrpc_health_service()->methods[1], &request, ...): requests and replies
 * are nnrpc.health.v1 messages (compile idl/nnrpc/health.proto with protoc-c
 * for their C types, or use nnrpc_health_check). Static; never NULL. */
const nnrpc_service *nnrpc_health_service(void);

/* Client side: Check. On NNRPC_OK *status is the service's status; a service
 * the server does not know gives NNRPC_NOT_FOUND. service NULL means "". */
nnrpc_status nnrpc_health_check(nnrpc_channel *ch, const char *service, int *status,
                                const nnrpc_call_opts *opts);

/* ---------------------------------------------------------------- reflection */

/* Serves nnrpc.reflection.v1.ServerReflection (idl/nnrpc/reflection.proto)
 * on srv: ListServices names every service the server has (this one
 * included); FileContainingSymbol and FileByFilename return serialized
 * google.protobuf.FileDescriptorProtos of a file and of everything it
 * imports, from the descriptors protoc-gen-nnrpc embeds in each service
 * (nnrpc_service.files). Symbols are services, methods ("pkg.Service.Method"
 * or "pkg.Service/Method"), messages, enums, fields and extensions, nested
 * ones too, of any file the server's services bring. The `nnrpc` command
 * (docs/tools.md) lists, describes and calls services through it.
 *
 * Call it before nnrpc_server_start (usually after adding the services;
 * every service added before the start is listed). It allocates nothing
 * that outlives a call: the names and descriptors it serves are the
 * services' static data, so there is nothing to free or disable. It tells
 * any client the server's whole schema: leave it off where that matters,
 * or guard it with an interceptor (nnrpc_server_require_bearer covers it).
 * Errors: INVALID_ARGUMENT, FAILED_PRECONDITION (started), ALREADY_EXISTS
 * (enabled twice), RESOURCE_EXHAUSTED. */
int nnrpc_server_enable_reflection(nnrpc_server *srv);

/* The reflection service's description (static): its method paths and
 * embedded descriptors, for clients. */
const nnrpc_service *nnrpc_reflection_service(void);

/* ---------------------------------------------------------------- handler context */

/* Inside a handler: user_data given at registration. */
void *nnrpc_ctx_user_data(const nnrpc_ctx *ctx);
/* "/pkg.Service/Method" of the call. */
const char *nnrpc_ctx_method(const nnrpc_ctx *ctx);
/* The client's headers (read-only, owned by the call). Never NULL. */
const nnrpc_metadata *nnrpc_ctx_headers(const nnrpc_ctx *ctx);
/* Milliseconds until the call's deadline (<=0: passed); INT64_MAX if none. */
int64_t nnrpc_ctx_remaining_ms(const nnrpc_ctx *ctx);
/* True once the client cancelled, the deadline passed, the client vanished
 * or the server is shutting down past its grace period. */
bool nnrpc_ctx_is_cancelled(const nnrpc_ctx *ctx);
/* Adds a trailer sent with the status. Copies key and value. */
int nnrpc_ctx_add_trailer(nnrpc_ctx *ctx, const char *key, const void *value, size_t len);
/* Memory that lives until the call's reply has been sent: use it for reply
 * strings, bytes and sub-messages. Never returns NULL for n <= the decode
 * budget (aborts the call with RESOURCE_EXHAUSTED otherwise: returns NULL). */
void *nnrpc_ctx_alloc(nnrpc_ctx *ctx, size_t n);
char *nnrpc_ctx_strdup(nnrpc_ctx *ctx, const char *s);
/* An allocator drawing from the same per-call memory, for protobuf-c calls. */
ProtobufCAllocator *nnrpc_ctx_allocator(nnrpc_ctx *ctx);
/* A handler returns NNRPC_PENDING to finish the call later, from any thread,
 * with nnrpc_ctx_finish. Until then the call holds no worker thread, and the
 * request, the reply and the ctx stay valid. */
#define NNRPC_PENDING (-1)

/* Ends a call whose handler returned NNRPC_PENDING: sends `reply` (the
 * message the handler was given, filled in by now) if code is NNRPC_OK, else
 * the code and the message set with nnrpc_ctx_fail. Any thread, exactly once.
 * Afterwards ctx, the request and the reply are invalid. Only one thread at a
 * time may use a ctx. */
void nnrpc_ctx_finish(nnrpc_ctx *ctx, int code);

/* Called once when the call is cancelled: the client cancelled or vanished,
 * the deadline passed, or the server's shutdown grace ended. Runs on a
 * runtime thread (the server's receive thread, or the thread calling
 * nnrpc_server_shutdown), or at once in the calling thread if the call is
 * already cancelled. It must not block; it may call nnrpc_ctx_finish. The
 * ctx stays valid while it runs. Deadline checks have 50 ms granularity. */
typedef void (*nnrpc_cancel_fn)(nnrpc_ctx *ctx, void *user_data);
void nnrpc_ctx_on_cancel(nnrpc_ctx *ctx, nnrpc_cancel_fn fn, void *user_data);

/* Streaming handlers (they run on a thread of their own, not a worker, so
 * they may block in these calls; NNRPC_PENDING is for unary handlers only). */

/* Receives the client's next message (client- and bidi-streaming handlers).
 * Returns 1 and sets *msg (owned by the handler: free it with
 * protobuf_c_message_free_unpacked(*msg, NULL)), or 0 when there are no more:
 * the client half-closed, or the call was cancelled (nnrpc_ctx_is_cancelled;
 * the call then ends with that code whatever the handler returns, and so it
 * does when a message cannot be decoded: INVALID_ARGUMENT). */
int nnrpc_ctx_read(nnrpc_ctx *ctx, ProtobufCMessage **msg);

/* Sends one message to the client (server- and bidi-streaming handlers).
 * Blocks while the client's window is full. `msg` is encoded before it
 * returns. Returns NNRPC_OK, RESOURCE_EXHAUSTED (over max_send_msg or the
 * client's max_recv_msg; the call goes on), INVALID_ARGUMENT (wrong type or
 * not a streaming call), or CANCELLED (the call is over: return). */
int nnrpc_ctx_write(nnrpc_ctx *ctx, const ProtobufCMessage *msg);

/* Sets the status message and returns code, so a handler can
 * `return nnrpc_ctx_fail(ctx, NNRPC_NOT_FOUND, "no user %d", id);` */
int nnrpc_ctx_fail(nnrpc_ctx *ctx, int code, const char *fmt, ...) NNRPC_PRINTF(3, 4);

#ifdef __cplusplus
}
#endif
#endif /* NNRPC_NNRPC_H */
