/* End to end through code generated from tests/protos_codegen (built by
 * tests/test_codegen.sh with the Makefile rule of docs/codegen.md, and run):
 * typed handlers are reached through the generated invokers, typed replies
 * come back through the generated stubs, over inproc:// in one process.
 * Requests and replies come from other packages (other.v1, a c_package),
 * from the well-known types (google.protobuf.Timestamp, Duration, Struct,
 * Any, wrappers, ...) and from proto2 files, for all four kinds of method;
 * services of several files of one package are served side by side; and
 * reflection finds each service's file and its imports from the
 * descriptors the generated code embeds. Prints what failed; exit 0 when
 * all held. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acme/multi_file/client.nnrpc.h"
#include "acme/multi_file/service.nnrpc.h"
#include "acme/multi_file/sub/service.nnrpc.h"
#include "empty_service.nnrpc.h"
#include "naming.nnrpc.h"
#include "nopkg.nnrpc.h"
#include "other/v1/types.nnrpc.h"
#include "streaming.nnrpc.h"
#include "wkt.nnrpc.h"

static int failures;
#define CHECK(cond)                                                      \
  do {                                                                   \
    if (!(cond)) {                                                       \
      fprintf(stderr, "%s:%d: failed: %s\n", __FILE__, __LINE__, #cond); \
      failures++;                                                        \
    }                                                                    \
  } while (0)

static int http_request(nnrpc_ctx *ctx, const Other__V1__Outer__Inner *req, Google__Protobuf__Empty *reply) {
  (void)reply;
  if (req->depth != 7) return nnrpc_ctx_fail(ctx, NNRPC_INVALID_ARGUMENT, "depth %d", (int)req->depth);
  return NNRPC_OK;
}

static int get_value(nnrpc_ctx *ctx, const Local__Sub *req, Other__V1__Outer *reply) {
  char text[32];
  snprintf(text, sizeof text, "x=%d", (int)req->x);
  Other__V1__Outer__Inner *inner = nnrpc_ctx_alloc(ctx, sizeof *inner);
  reply->name = nnrpc_ctx_strdup(ctx, text);
  if (!inner || !reply->name) return NNRPC_RESOURCE_EXHAUSTED;
  other__v1__outer__inner__init(inner);
  inner->depth = req->x + 1;
  reply->inner = inner;
  return NNRPC_OK;
}

static int say_hello2_you(nnrpc_ctx *ctx, const Rn__Thing *req, Local *reply) {
  const char *ud = nnrpc_ctx_user_data(ctx);
  if (!ud || strcmp(ud, "tricky") != 0) return nnrpc_ctx_fail(ctx, NNRPC_INTERNAL, "wrong user_data");
  reply->s = nnrpc_ctx_strdup(ctx, req->id);
  return reply->s ? NNRPC_OK : NNRPC_RESOURCE_EXHAUSTED;
}

static int store_get(nnrpc_ctx *ctx, const Other__V1__Outer *req, Other__V1__Outer__Inner__Deeper *reply) {
  (void)ctx;
  reply->ok = strcmp(req->name, "yes") == 0;
  return NNRPC_OK;
}

static void unary_calls(nnrpc_channel *ch) {
  nnrpc_call_opts opts = {.timeout_ms = 5000};

  Other__V1__Outer__Inner in = OTHER__V1__OUTER__INNER__INIT;
  Google__Protobuf__Empty *empty = NULL;
  in.depth = 7;
  nnrpc_status st = tricky__httprequest__call(ch, &in, &empty, &opts);
  CHECK(st.code == NNRPC_OK && empty != NULL);
  google__protobuf__empty__free_unpacked(empty, NULL);
  in.depth = 1;
  st = tricky__httprequest__call(ch, &in, &empty, &opts);
  CHECK(st.code == NNRPC_INVALID_ARGUMENT && strcmp(st.message, "depth 1") == 0 && empty == NULL);

  Local__Sub sub = LOCAL__SUB__INIT;
  Other__V1__Outer *outer = NULL;
  sub.x = 41;
  st = tricky__get_value__call(ch, &sub, &outer, &opts);
  CHECK(st.code == NNRPC_OK && outer && strcmp(outer->name, "x=41") == 0 && outer->inner && outer->inner->depth == 42);
  other__v1__outer__free_unpacked(outer, NULL);

  Rn__Thing thing = RN__THING__INIT;
  Local *local = NULL;
  thing.id = "abc";
  st = tricky__say_hello2_you__call(ch, &thing, &local, &opts);
  CHECK(st.code == NNRPC_OK && local && strcmp(local->s, "abc") == 0);
  local__free_unpacked(local, NULL);

  /* no handler registered: the runtime answers for it */
  Google__Protobuf__Empty nothing = GOOGLE__PROTOBUF__EMPTY__INIT;
#if defined(__GNUC__)
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#endif
  st = tricky__old_call__call(ch, &nothing, &local, &opts);
  CHECK(st.code == NNRPC_UNIMPLEMENTED && local == NULL);

  /* NULL arguments are refused, not crashed on */
  CHECK(tricky__get_value__call(ch, &sub, NULL, &opts).code == NNRPC_INVALID_ARGUMENT);
  CHECK(tricky__get_value__call(ch, NULL, &outer, &opts).code == NNRPC_INVALID_ARGUMENT && outer == NULL);

  Other__V1__Outer q = OTHER__V1__OUTER__INIT;
  Other__V1__Outer__Inner__Deeper *deeper = NULL;
  q.name = "yes";
  st = other__v1__store__get__call(ch, &q, &deeper, &opts);
  CHECK(st.code == NNRPC_OK && deeper && deeper->ok);
  protobuf_c_message_free_unpacked((ProtobufCMessage *)deeper, NULL);
  st = other__v1__store__put_item__call(ch, &in, &outer, &opts);
  CHECK(st.code == NNRPC_UNIMPLEMENTED);
}

static void async_call(nnrpc_channel *ch) {
  nnrpc_cq *cq = NULL;
  CHECK(nnrpc_cq_open(&cq) == NNRPC_OK);
  if (!cq) return;
  nnrpc_completion how = {.cq = cq};
  nnrpc_call_opts opts = {.timeout_ms = 5000};
  Local__Sub sub = LOCAL__SUB__INIT;
  sub.x = 1;
  CHECK(tricky__get_value__start(ch, &sub, &opts, &how, NULL) == NNRPC_OK);
  nnrpc_call *call = nnrpc_cq_next(cq, 5000);
  CHECK(call != NULL);
  if (call) {
    Other__V1__Outer *outer = NULL;
    nnrpc_status st = tricky__get_value__finish(call, &outer, NULL);
    CHECK(st.code == NNRPC_OK && outer && strcmp(outer->name, "x=1") == 0);
    other__v1__outer__free_unpacked(outer, NULL);
  }
  nnrpc_cq_close(cq);
}

/* ---------------------------------------------------------------- well-known types */

#define EPOCH 1700000000

static int clock_now(nnrpc_ctx *ctx, const Google__Protobuf__Empty *req, Google__Protobuf__Timestamp *reply) {
  (void)ctx, (void)req;
  reply->seconds = EPOCH;
  reply->nanos = 5;
  return NNRPC_OK;
}

static int clock_until(nnrpc_ctx *ctx, const Google__Protobuf__Timestamp *req, Google__Protobuf__Duration *reply) {
  (void)ctx;
  reply->seconds = req->seconds - EPOCH;
  reply->nanos = req->nanos;
  return NNRPC_OK;
}

static int clock_echo(nnrpc_ctx *ctx, const Google__Protobuf__StringValue *req,
                      Google__Protobuf__StringValue *reply) {
  reply->value = nnrpc_ctx_strdup(ctx, req->value);
  return reply->value ? NNRPC_OK : NNRPC_RESOURCE_EXHAUSTED;
}

/* the request Struct, packed into an Any */
static int clock_describe(nnrpc_ctx *ctx, const Google__Protobuf__Struct *req, Google__Protobuf__Any *reply) {
  size_t n = google__protobuf__struct__get_packed_size(req);
  uint8_t *buf = nnrpc_ctx_alloc(ctx, n ? n : 1);
  reply->type_url = nnrpc_ctx_strdup(ctx, "type.googleapis.com/google.protobuf.Struct");
  if (!buf || !reply->type_url) return NNRPC_RESOURCE_EXHAUSTED;
  reply->value.len = google__protobuf__struct__pack(req, buf);
  reply->value.data = buf;
  return NNRPC_OK;
}

static int clock_select(nnrpc_ctx *ctx, const Google__Protobuf__FieldMask *req, Other__V1__Outer__Inner *reply) {
  (void)ctx;
  reply->depth = (int32_t)req->n_paths;
  return NNRPC_OK;
}

static int clock_ticks(nnrpc_ctx *ctx, const Google__Protobuf__Int32Value *req) {
  for (int32_t i = 0; i < req->value; i++) {
    Google__Protobuf__Timestamp t = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
    t.seconds = EPOCH + i;
    int rc = my_co__clock_v1__clock__ticks__send(ctx, &t);
    if (rc != NNRPC_OK) return rc;
  }
  return NNRPC_OK;
}

static int clock_sum(nnrpc_ctx *ctx, Google__Protobuf__Int64Value *reply) {
  Google__Protobuf__Int64Value *v;
  while (my_co__clock_v1__clock__sum__recv(ctx, &v) == 1) {
    reply->value += v->value;
    google__protobuf__int64_value__free_unpacked(v, NULL);
  }
  return NNRPC_OK;
}

/* one timestamp per Outer: as many seconds as its name has letters */
static int clock_stamp(nnrpc_ctx *ctx) {
  Other__V1__Outer *o;
  while (my_co__clock_v1__clock__stamp__recv(ctx, &o) == 1) {
    Google__Protobuf__Timestamp t = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
    t.seconds = (int64_t)strlen(o->name);
    other__v1__outer__free_unpacked(o, NULL);
    int rc = my_co__clock_v1__clock__stamp__send(ctx, &t);
    if (rc != NNRPC_OK) return rc;
  }
  return NNRPC_OK;
}

static void clock_unary(nnrpc_channel *ch, const nnrpc_call_opts *opts) {
  Google__Protobuf__Empty empty = GOOGLE__PROTOBUF__EMPTY__INIT;
  Google__Protobuf__Timestamp *now = NULL;
  nnrpc_status st = my_co__clock_v1__clock__now__call(ch, &empty, &now, opts);
  CHECK(st.code == NNRPC_OK && now && now->seconds == EPOCH && now->nanos == 5);

  Google__Protobuf__Duration *d = NULL;
  if (now) {
    now->seconds += 90;
    st = my_co__clock_v1__clock__until__call(ch, now, &d, opts);
    CHECK(st.code == NNRPC_OK && d && d->seconds == 90 && d->nanos == 5);
    google__protobuf__timestamp__free_unpacked(now, NULL);
    if (d) google__protobuf__duration__free_unpacked(d, NULL);
  }

  Google__Protobuf__StringValue sv = GOOGLE__PROTOBUF__STRING_VALUE__INIT, *back = NULL;
  sv.value = "héllo";
  st = my_co__clock_v1__clock__echo__call(ch, &sv, &back, opts);
  CHECK(st.code == NNRPC_OK && back && strcmp(back->value, "héllo") == 0);
  if (back) google__protobuf__string_value__free_unpacked(back, NULL);

  /* {"name": "nnrpc"} */
  Google__Protobuf__Value value = GOOGLE__PROTOBUF__VALUE__INIT;
  value.kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE;
  value.string_value = "nnrpc";
  Google__Protobuf__Struct__FieldsEntry entry = GOOGLE__PROTOBUF__STRUCT__FIELDS_ENTRY__INIT, *entries[1] = {&entry};
  entry.key = "name";
  entry.value = &value;
  Google__Protobuf__Struct req = GOOGLE__PROTOBUF__STRUCT__INIT;
  req.n_fields = 1;
  req.fields = entries;
  Google__Protobuf__Any *any = NULL;
  st = my_co__clock_v1__clock__describe__call(ch, &req, &any, opts);
  CHECK(st.code == NNRPC_OK && any && strcmp(any->type_url, "type.googleapis.com/google.protobuf.Struct") == 0);
  if (any) {
    Google__Protobuf__Struct *got = google__protobuf__struct__unpack(NULL, any->value.len, any->value.data);
    CHECK(got && got->n_fields == 1 && strcmp(got->fields[0]->key, "name") == 0 &&
          strcmp(got->fields[0]->value->string_value, "nnrpc") == 0);
    if (got) google__protobuf__struct__free_unpacked(got, NULL);
    google__protobuf__any__free_unpacked(any, NULL);
  }

  char *paths[] = {"a.b", "c"};
  Google__Protobuf__FieldMask mask = GOOGLE__PROTOBUF__FIELD_MASK__INIT;
  mask.n_paths = 2;
  mask.paths = paths;
  Other__V1__Outer__Inner *inner = NULL;
  st = my_co__clock_v1__clock__select__call(ch, &mask, &inner, opts);
  CHECK(st.code == NNRPC_OK && inner && inner->depth == 2);
  if (inner) protobuf_c_message_free_unpacked((ProtobufCMessage *)inner, NULL); /* nested: no helper */
}

static void clock_streams(nnrpc_channel *ch, const nnrpc_call_opts *opts) {
  /* server streaming */
  nnrpc_stream *st = NULL;
  Google__Protobuf__Int32Value count = GOOGLE__PROTOBUF__INT32_VALUE__INIT;
  count.value = 3;
  nnrpc_status s = my_co__clock_v1__clock__ticks__open(ch, &count, opts, &st);
  CHECK(s.code == NNRPC_OK);
  if (s.code == NNRPC_OK) {
    Google__Protobuf__Timestamp *t;
    int n = 0;
    while (my_co__clock_v1__clock__ticks__read(st, &t) == 1) {
      CHECK(t->seconds == EPOCH + n);
      n++;
      google__protobuf__timestamp__free_unpacked(t, NULL);
    }
    s = my_co__clock_v1__clock__ticks__finish(st, NULL);
    CHECK(s.code == NNRPC_OK && n == 3);
  }

  /* client streaming */
  s = my_co__clock_v1__clock__sum__open(ch, opts, &st);
  CHECK(s.code == NNRPC_OK);
  if (s.code == NNRPC_OK) {
    for (int64_t i = 1; i <= 4; i++) {
      Google__Protobuf__Int64Value v = GOOGLE__PROTOBUF__INT64_VALUE__INIT;
      v.value = i;
      CHECK(my_co__clock_v1__clock__sum__write(st, &v) == NNRPC_OK);
    }
    Google__Protobuf__Int64Value *total = NULL;
    s = my_co__clock_v1__clock__sum__close_and_finish(st, &total, NULL);
    CHECK(s.code == NNRPC_OK && total && total->value == 10);
    if (total) google__protobuf__int64_value__free_unpacked(total, NULL);
  }

  /* bidirectional, one reply per request */
  s = my_co__clock_v1__clock__stamp__open(ch, opts, &st);
  CHECK(s.code == NNRPC_OK);
  if (s.code == NNRPC_OK) {
    const char *names[] = {"a", "bcd", "efghij"};
    for (int i = 0; i < 3; i++) {
      Other__V1__Outer o = OTHER__V1__OUTER__INIT;
      o.name = (char *)names[i];
      CHECK(my_co__clock_v1__clock__stamp__write(st, &o) == NNRPC_OK);
      Google__Protobuf__Timestamp *t = NULL;
      CHECK(my_co__clock_v1__clock__stamp__read(st, &t) == 1 && t && t->seconds == (int64_t)strlen(names[i]));
      if (t) google__protobuf__timestamp__free_unpacked(t, NULL);
    }
    CHECK(my_co__clock_v1__clock__stamp__close_send(st) == NNRPC_OK);
    s = my_co__clock_v1__clock__stamp__finish(st, NULL);
    CHECK(s.code == NNRPC_OK);
  }
}

/* ---------------------------------------------------------------- several files, one package */

static int service_get(nnrpc_ctx *ctx, const Acme__MultiFile__V1__Query *req, Acme__MultiFile__V1__Item *reply) {
  reply->id = nnrpc_ctx_strdup(ctx, req->prefix);
  reply->count = 1;
  return reply->id ? NNRPC_OK : NNRPC_RESOURCE_EXHAUSTED;
}

static int server_status(nnrpc_ctx *ctx, const Acme__MultiFile__V1__Status *req, Acme__MultiFile__V1__Status *reply) {
  (void)ctx;
  reply->code = req->code + 1;
  return NNRPC_OK;
}

/* proto2: the request's defaults arrive, the reply's required field is set */
static int client_get(nnrpc_ctx *ctx, const Acme__MultiFile__V1__Order *req, Acme__MultiFile__V1__Item *reply) {
  if (req->has_quantity || req->quantity != 1 || strcmp(req->note, "none") != 0)
    return nnrpc_ctx_fail(ctx, NNRPC_INVALID_ARGUMENT, "defaults lost");
  reply->id = nnrpc_ctx_strdup(ctx, req->item_id);
  reply->count = req->quantity;
  return reply->id ? NNRPC_OK : NNRPC_RESOURCE_EXHAUSTED;
}

static int stream_call(nnrpc_ctx *ctx) {
  Acme__MultiFile__V1__Order *o;
  while (acme__multi_file__v1__stream__call__recv(ctx, &o) == 1) {
    Acme__MultiFile__V1__Item item = ACME__MULTI_FILE__V1__ITEM__INIT;
    item.id = o->item_id;
    item.count = o->quantity;
    int rc = acme__multi_file__v1__stream__call__send(ctx, &item);
    acme__multi_file__v1__order__free_unpacked(o, NULL);
    if (rc != NNRPC_OK) return rc;
  }
  return NNRPC_OK;
}

static void multi_file_calls(nnrpc_channel *ch, const nnrpc_call_opts *opts) {
  Acme__MultiFile__V1__Query q = ACME__MULTI_FILE__V1__QUERY__INIT;
  Acme__MultiFile__V1__Item *item = NULL;
  q.prefix = "abc";
  nnrpc_status st = acme__multi_file__v1__service__get__call(ch, &q, &item, opts);
  CHECK(st.code == NNRPC_OK && item && strcmp(item->id, "abc") == 0);
  if (item) acme__multi_file__v1__item__free_unpacked(item, NULL);

  /* same method name, another service of the same file: not implemented */
  Acme__MultiFile__V1__Status *status = NULL;
  st = acme__multi_file__v1__server__get__call(ch, &q, &status, opts);
  CHECK(st.code == NNRPC_UNIMPLEMENTED && status == NULL);
  Acme__MultiFile__V1__Status code = ACME__MULTI_FILE__V1__STATUS__INIT;
  code.code = 41;
  st = acme__multi_file__v1__server__status__call(ch, &code, &status, opts);
  CHECK(st.code == NNRPC_OK && status && status->code == 42);
  if (status) acme__multi_file__v1__status__free_unpacked(status, NULL);

  Acme__MultiFile__V1__Order order = ACME__MULTI_FILE__V1__ORDER__INIT;
  order.item_id = "x1";
  st = acme__multi_file__v1__client__get__call(ch, &order, &item, opts);
  CHECK(st.code == NNRPC_OK && item && strcmp(item->id, "x1") == 0 && item->count == 1);
  if (item) acme__multi_file__v1__item__free_unpacked(item, NULL);

  nnrpc_stream *s = NULL;
  st = acme__multi_file__v1__stream__call__open(ch, opts, &s);
  CHECK(st.code == NNRPC_OK);
  if (st.code == NNRPC_OK) {
    order.has_quantity = 1;
    order.quantity = 7;
    CHECK(acme__multi_file__v1__stream__call__write(s, &order) == NNRPC_OK);
    CHECK(acme__multi_file__v1__stream__call__close_send(s) == NNRPC_OK);
    CHECK(acme__multi_file__v1__stream__call__read(s, &item) == 1 && item && item->count == 7);
    if (item) acme__multi_file__v1__item__free_unpacked(item, NULL);
    CHECK(acme__multi_file__v1__stream__call__read(s, &item) == 0 && item == NULL);
    st = acme__multi_file__v1__stream__call__finish(s, NULL);
    CHECK(st.code == NNRPC_OK);
  }
}

/* ---------------------------------------------------------------- odd method names */

static int names_echo(nnrpc_ctx *ctx, const MyCo__NamingTest__V1__Ping *req, MyCo__NamingTest__V1__Ping *reply) {
  reply->text = nnrpc_ctx_strdup(ctx, req->text);
  return reply->text ? NNRPC_OK : NNRPC_RESOURCE_EXHAUSTED;
}

static void naming_calls(nnrpc_channel *ch, const nnrpc_call_opts *opts) {
  typedef nnrpc_status (*stub)(nnrpc_channel *, const MyCo__NamingTest__V1__Ping *, MyCo__NamingTest__V1__Ping **,
                               const nnrpc_call_opts *);
  const stub stubs[] = {my_co__naming_test__v1__names__trailing___call,
                        my_co__naming_test__v1__names__get_http2_response__call,
                        my_co__naming_test__v1__names___private__call,
                        my_co__naming_test__v1__names__xmlhttp__request__call};
  for (size_t i = 0; i < sizeof stubs / sizeof stubs[0]; i++) {
    MyCo__NamingTest__V1__Ping ping = MY_CO__NAMING_TEST__V1__PING__INIT, *pong = NULL;
    ping.text = "odd";
    nnrpc_status st = stubs[i](ch, &ping, &pong, opts);
    CHECK(st.code == NNRPC_OK && pong && strcmp(pong->text, "odd") == 0);
    if (pong) my_co__naming_test__v1__ping__free_unpacked(pong, NULL);
  }
}

/* ---- reflection: the embedded descriptors of services whose types come
 * from other files and packages, through the generic (bytes) call. */

/* The names (field 1) of the FileDescriptorProtos in a reply (repeated
 * bytes, field 1), "|"-joined into out. */
static void file_names(const uint8_t *p, size_t len, char *out, size_t cap) {
  size_t o = 0;
  out[0] = 0;
  while (len >= 2 && p[0] == 0x0a) { /* field 1, length-delimited */
    size_t n = 0, shift = 0, i = 1;
    while (i < len && (p[i] & 0x80)) n |= (size_t)(p[i++] & 0x7f) << shift, shift += 7;
    if (i >= len) return;
    n |= (size_t)p[i++] << shift;
    if (n > len - i) return;
    const uint8_t *fd = p + i; /* its first field is the name: 0x0a len "dir/x.proto" */
    if (n >= 2 && fd[0] == 0x0a && fd[1] < 0x80 && (size_t)fd[1] + 2 <= n && o + fd[1] + 2 < cap)
      o += (size_t)snprintf(out + o, cap - o, "%s%.*s", o ? "|" : "", fd[1], (const char *)fd + 2);
    p += i + n;
    len -= i + n;
  }
}

/* FileContainingSymbol(symbol): the status code, the files' names in out. */
static int symbol_files(nnrpc_channel *ch, const nnrpc_call_opts *opts, const char *symbol, char *out,
                        size_t cap) {
  uint8_t req[256];
  size_t n = strlen(symbol);
  req[0] = 0x0a; /* symbol = 1 */
  req[1] = (uint8_t)n;
  memcpy(req + 2, symbol, n);
  uint8_t *reply = NULL;
  size_t reply_len = 0;
  nnrpc_status st = nnrpc_unary_call_raw(ch, "/nnrpc.reflection.v1.ServerReflection/FileContainingSymbol",
                                         req, n + 2, &reply, &reply_len, opts);
  out[0] = 0;
  if (st.code == NNRPC_OK) file_names(reply, reply_len, out, cap);
  free(reply);
  return st.code;
}

static void reflection_calls(nnrpc_channel *ch, const nnrpc_call_opts *opts) {
  char names[1024];
  /* a service using the well-known types and another package: its file,
   * then every import, depth first */
  CHECK(symbol_files(ch, opts, "my_co.clock_v1.Clock", names, sizeof names) == NNRPC_OK);
  CHECK(strcmp(names, "wkt.proto|google/protobuf/any.proto|google/protobuf/duration.proto|"
                      "google/protobuf/empty.proto|google/protobuf/field_mask.proto|"
                      "google/protobuf/struct.proto|google/protobuf/timestamp.proto|"
                      "google/protobuf/wrappers.proto|other/v1/types.proto") == 0);
  CHECK(symbol_files(ch, opts, "my_co.clock_v1.Clock/Ticks", names, sizeof names) == NNRPC_OK &&
        strncmp(names, "wkt.proto|", 10) == 0);
  /* types of imported files, nested ones, and a file without services
   * (renamed.proto: known only as an import of nopkg.proto) */
  CHECK(symbol_files(ch, opts, ".other.v1.Outer.Inner", names, sizeof names) == NNRPC_OK &&
        strcmp(names, "other/v1/types.proto") == 0);
  CHECK(symbol_files(ch, opts, "long.package_name.Thing", names, sizeof names) == NNRPC_OK &&
        strncmp(names, "renamed.proto|protobuf-c/protobuf-c.proto|google/protobuf/descriptor.proto", 73) == 0);
  CHECK(symbol_files(ch, opts, "google.protobuf.Timestamp", names, sizeof names) == NNRPC_OK &&
        strcmp(names, "google/protobuf/timestamp.proto") == 0);
  CHECK(symbol_files(ch, opts, "Tricky.HTTPRequest", names, sizeof names) == NNRPC_OK &&
        strncmp(names, "nopkg.proto|", 12) == 0);
  CHECK(symbol_files(ch, opts, "my_co.clock_v1.Clock/Nope", names, sizeof names) == NNRPC_NOT_FOUND);
  CHECK(symbol_files(ch, opts, "other.v1", names, sizeof names) == NNRPC_NOT_FOUND);
}

int main(void) {
  const char *url = "inproc://nnrpc-codegen-smoke";
  nnrpc_server *srv = NULL;
  nnrpc_channel *ch = NULL;
  CHECK(nnrpc_server_open(&srv, NULL) == NNRPC_OK);
  if (!srv) return 1;

  Tricky_Handlers tricky = {.httprequest = http_request, .get_value = get_value, .say_hello2_you = say_hello2_you};
  Other__V1__Store_Handlers store = {.get = store_get};
  Idle__Idle_Handlers idle = {0};
  MyCo__ClockV1__Clock_Handlers clock = {
      .now = clock_now, .until = clock_until, .echo = clock_echo, .describe = clock_describe,
      .select = clock_select, .ticks = clock_ticks, .sum = clock_sum, .stamp = clock_stamp};
  Acme__MultiFile__V1__Service_Handlers service = {.get = service_get};
  Acme__MultiFile__V1__Server_Handlers server = {.status = server_status};
  Acme__MultiFile__V1__Client_Handlers client = {.get = client_get};
  Acme__MultiFile__V1__Stream_Handlers stream = {.call = stream_call};
  MyCo__NamingTest__V1__Names_Handlers names = {
      .trailing_ = names_echo, .get_http2_response = names_echo, ._private = names_echo,
      .xmlhttp__request = names_echo};
  CHECK(tricky__handlers__register(srv, NULL, NULL) == NNRPC_INVALID_ARGUMENT);
  CHECK(tricky__handlers__register(srv, &tricky, "tricky") == NNRPC_OK);
  CHECK(other__v1__store__handlers__register(srv, &store, NULL) == NNRPC_OK);
  CHECK(idle__idle__handlers__register(srv, &idle, NULL) == NNRPC_OK);
  CHECK(my_co__clock_v1__clock__handlers__register(srv, &clock, NULL) == NNRPC_OK);
  CHECK(acme__multi_file__v1__service__handlers__register(srv, &service, NULL) == NNRPC_OK);
  CHECK(acme__multi_file__v1__server__handlers__register(srv, &server, NULL) == NNRPC_OK);
  CHECK(acme__multi_file__v1__client__handlers__register(srv, &client, NULL) == NNRPC_OK);
  CHECK(acme__multi_file__v1__stream__handlers__register(srv, &stream, NULL) == NNRPC_OK);
  CHECK(my_co__naming_test__v1__names__handlers__register(srv, &names, NULL) == NNRPC_OK);
  CHECK(strcmp(tricky__nnrpc_service.name, "Tricky") == 0 && tricky__nnrpc_service.n_methods == 4);
  CHECK(idle__idle__nnrpc_service.n_methods == 0);
  CHECK(nnrpc_server_enable_reflection(srv) == NNRPC_OK);
  CHECK(nnrpc_server_enable_reflection(srv) == NNRPC_ALREADY_EXISTS);

  CHECK(nnrpc_server_listen(srv, url) == NNRPC_OK);
  CHECK(nnrpc_server_start(srv) == NNRPC_OK);
  CHECK(nnrpc_channel_open(&ch, url, NULL) == NNRPC_OK);
  if (ch) {
    nnrpc_call_opts opts = {.timeout_ms = 5000};
    unary_calls(ch);
    async_call(ch);
    clock_unary(ch, &opts);
    clock_streams(ch, &opts);
    multi_file_calls(ch, &opts);
    naming_calls(ch, &opts);
    reflection_calls(ch, &opts);
    nnrpc_channel_close(ch);
  }
  nnrpc_server_close(srv);
  if (failures) fprintf(stderr, "%d check(s) failed\n", failures);
  return failures ? 1 : 0;
}
