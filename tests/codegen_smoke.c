/* End to end through code generated from tests/protos_codegen (built and run
 * by tests/test_codegen.sh): typed handlers are reached through the
 * generated invokers, typed replies come back through the generated stubs,
 * over inproc:// in one process. Prints what failed; exit 0 when all held. */
#include <stdio.h>
#include <string.h>

#include "empty_service.nnrpc.h"
#include "nopkg.nnrpc.h"
#include "other/v1/types.nnrpc.h"

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

int main(void) {
  const char *url = "inproc://nnrpc-codegen-smoke";
  nnrpc_server *srv = NULL;
  nnrpc_channel *ch = NULL;
  CHECK(nnrpc_server_open(&srv, NULL) == NNRPC_OK);
  if (!srv) return 1;

  Tricky_Handlers tricky = {.httprequest = http_request, .get_value = get_value, .say_hello2_you = say_hello2_you};
  Other__V1__Store_Handlers store = {.get = store_get};
  Idle__Idle_Handlers idle = {0};
  CHECK(tricky__handlers__register(srv, NULL, NULL) == NNRPC_INVALID_ARGUMENT);
  CHECK(tricky__handlers__register(srv, &tricky, "tricky") == NNRPC_OK);
  CHECK(other__v1__store__handlers__register(srv, &store, NULL) == NNRPC_OK);
  CHECK(idle__idle__handlers__register(srv, &idle, NULL) == NNRPC_OK);
  CHECK(strcmp(tricky__nnrpc_service.name, "Tricky") == 0 && tricky__nnrpc_service.n_methods == 4);
  CHECK(idle__idle__nnrpc_service.n_methods == 0);

  CHECK(nnrpc_server_listen(srv, url) == NNRPC_OK);
  CHECK(nnrpc_server_start(srv) == NNRPC_OK);
  CHECK(nnrpc_channel_open(&ch, url, NULL) == NNRPC_OK);
  if (ch) {
    unary_calls(ch);
    async_call(ch);
    nnrpc_channel_close(ch);
  }
  nnrpc_server_close(srv);
  if (failures) fprintf(stderr, "%d check(s) failed\n", failures);
  return failures ? 1 : 0;
}
