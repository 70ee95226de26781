/* The health service (idl/nnrpc/health.proto), the shape of gRPC's
 * grpc.health.v1.Health: per-service serving status, a unary Check and a
 * server-streaming Watch. A service's status is what nnrpc_server_set_health
 * said, else SERVING for every service the server has (and for ""), and
 * NOT_SERVING for all of them once a graceful shutdown began. */
#include "internal.h"
#include "nnrpc/health.pb-c.h"

#include <stdlib.h>

typedef Nnrpc__Health__V1__HealthCheckRequest hc_req;
typedef Nnrpc__Health__V1__HealthCheckResponse hc_resp;

struct nnrpc__health {
  nnrpc_server *srv;
  pthread_mutex_t mu;
  pthread_cond_t cv; /* Watch calls wait here for a change or their cancel */
  struct set_status {
    char *service;
    int status;
  } *set;
  size_t nset;
};

/* The status of `service` (mu held); SERVICE_UNKNOWN if the server has none. */
static int status_locked(nnrpc__health *h, const char *service) {
  if (nnrpc__server_draining(h->srv)) return NNRPC_HEALTH_NOT_SERVING;
  for (size_t i = 0; i < h->nset; i++)
    if (strcmp(h->set[i].service, service) == 0) return h->set[i].status;
  if (!*service || nnrpc__server_knows_service(h->srv, service)) return NNRPC_HEALTH_SERVING;
  return NNRPC_HEALTH_SERVICE_UNKNOWN;
}

static int check(nnrpc_ctx *ctx, const hc_req *req, hc_resp *reply) {
  nnrpc__health *h = nnrpc_ctx_user_data(ctx);
  pthread_mutex_lock(&h->mu);
  int st = status_locked(h, req->service);
  pthread_mutex_unlock(&h->mu);
  if (st == NNRPC_HEALTH_SERVICE_UNKNOWN)
    return nnrpc_ctx_fail(ctx, NNRPC_NOT_FOUND, "unknown service \"%s\"", req->service);
  reply->status = (Nnrpc__Health__V1__HealthCheckResponse__ServingStatus)st;
  return NNRPC_OK;
}

static void wake(nnrpc_ctx *ctx, void *user) {
  (void)ctx;
  nnrpc__health_changed(user);
}

static int watch(nnrpc_ctx *ctx, const hc_req *req) {
  nnrpc__health *h = nnrpc_ctx_user_data(ctx);
  nnrpc_ctx_on_cancel(ctx, wake, h);
  int last = -1, rc = NNRPC_OK;
  pthread_mutex_lock(&h->mu);
  while (!nnrpc_ctx_is_cancelled(ctx)) {
    int st = status_locked(h, req->service);
    if (st != last) {
      pthread_mutex_unlock(&h->mu);
      hc_resp r = NNRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
      r.status = (Nnrpc__Health__V1__HealthCheckResponse__ServingStatus)st;
      rc = nnrpc_ctx_write(ctx, &r.base);
      pthread_mutex_lock(&h->mu);
      if (rc != NNRPC_OK) break;
      last = st;
      continue;
    }
    /* Changes and cancels broadcast; the timeout covers a deadline passing. */
    struct timespec ts = nnrpc__ts_of_us(nnrpc__now_us() + 200000);
    pthread_cond_timedwait(&h->cv, &h->mu, &ts);
  }
  pthread_mutex_unlock(&h->mu);
  return rc == NNRPC_OK ? NNRPC_CANCELLED : rc;
}

static int invoke_check(nnrpc_ctx *ctx, const void *handlers, const ProtobufCMessage *req, ProtobufCMessage *reply) {
  (void)handlers;
  return check(ctx, (const hc_req *)req, (hc_resp *)reply);
}

static int invoke_watch(nnrpc_ctx *ctx, const void *handlers, const ProtobufCMessage *req, ProtobufCMessage *reply) {
  (void)handlers;
  (void)reply;
  return watch(ctx, (const hc_req *)req);
}

static const nnrpc_method methods[] = {
    {.path = "/nnrpc.health.v1.Health/Check",
     .input = &nnrpc__health__v1__health_check_request__descriptor,
     .output = &nnrpc__health__v1__health_check_response__descriptor,
     .kind = NNRPC_UNARY,
     .invoke = invoke_check},
    {.path = "/nnrpc.health.v1.Health/Watch",
     .input = &nnrpc__health__v1__health_check_request__descriptor,
     .output = &nnrpc__health__v1__health_check_response__descriptor,
     .kind = NNRPC_SERVER_STREAMING,
     .invoke = invoke_watch},
};

static const nnrpc_service health_service = {
    .name = "nnrpc.health.v1.Health", .n_methods = 2, .methods = methods, .handlers_size = sizeof(int)};

const nnrpc_service *nnrpc__health_service(void) { return &health_service; }
NNRPC_API const nnrpc_service *nnrpc_health_service(void) { return &health_service; }

void nnrpc__health_changed(nnrpc__health *h) {
  pthread_mutex_lock(&h->mu);
  pthread_cond_broadcast(&h->cv);
  pthread_mutex_unlock(&h->mu);
}

void nnrpc__health_free(nnrpc__health *h) {
  if (!h) return;
  for (size_t i = 0; i < h->nset; i++) free(h->set[i].service);
  free(h->set);
  pthread_mutex_destroy(&h->mu);
  pthread_cond_destroy(&h->cv);
  free(h);
}

NNRPC_API int nnrpc_server_enable_health(nnrpc_server *srv) {
  if (!srv) return NNRPC_INVALID_ARGUMENT;
  nnrpc__health *h = calloc(1, sizeof *h);
  if (!h) return NNRPC_RESOURCE_EXHAUSTED;
  h->srv = srv;
  pthread_mutex_init(&h->mu, NULL);
  nnrpc__cond_init(&h->cv);
  int rc = nnrpc__server_attach_health(srv, h);
  if (rc) {
    nnrpc__health_free(h);
    return rc;
  }
  static const int no_handlers = 0;
  static const bool present[2] = {true, true};
  return nnrpc_server_add_service(srv, &health_service, &no_handlers, present, h);
}

NNRPC_API int nnrpc_server_set_health(nnrpc_server *srv, const char *service, int status) {
  if (!srv || !service || status < NNRPC_HEALTH_UNKNOWN || status > NNRPC_HEALTH_NOT_SERVING)
    return NNRPC_INVALID_ARGUMENT;
  nnrpc__health *h = nnrpc__server_health(srv);
  if (!h) return NNRPC_FAILED_PRECONDITION;
  int rc = NNRPC_OK;
  pthread_mutex_lock(&h->mu);
  size_t i = 0;
  while (i < h->nset && strcmp(h->set[i].service, service) != 0) i++;
  if (i == h->nset) {
    struct set_status *n = realloc(h->set, (h->nset + 1) * sizeof *n);
    char *name = strdup(service);
    if (!n || !name) {
      if (n) h->set = n;
      free(name);
      rc = NNRPC_RESOURCE_EXHAUSTED;
    } else {
      h->set = n;
      h->set[h->nset++] = (struct set_status){name, status};
    }
  } else {
    h->set[i].status = status;
  }
  pthread_cond_broadcast(&h->cv);
  pthread_mutex_unlock(&h->mu);
  return rc;
}

NNRPC_API nnrpc_status nnrpc_health_check(nnrpc_channel *ch, const char *service, int *status,
                                          const nnrpc_call_opts *opts) {
  if (status) *status = NNRPC_HEALTH_UNKNOWN;
  hc_req req = NNRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
  req.service = (char *)(service ? service : "");
  ProtobufCMessage *out = NULL;
  nnrpc_status st = nnrpc_unary_call(ch, &methods[0], &req.base, &out, opts);
  if (st.code == NNRPC_OK && status) *status = (int)((hc_resp *)out)->status;
  if (out) protobuf_c_message_free_unpacked(out, NULL);
  return st;
}
