/* helloworld server: answers Greeter.SayHello until SIGINT/SIGTERM.
 *   greeter_server [URL [TOKEN]]   (default tcp://127.0.0.1:5555)
 * With TOKEN, every call must carry "authorization: Bearer TOKEN". It serves
 * reflection, so `nnrpc list URL` shows what it offers (docs/tools.md). */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "helloworld.nnrpc.h"

static nnrpc_server *srv;

static void on_signal(int sig) {
  (void)sig;
  nnrpc_server_stop_async(srv); /* async-signal-safe; run() then shuts down gracefully */
}

static int say_hello(nnrpc_ctx *ctx, const Helloworld__HelloRequest *req,
                     Helloworld__HelloReply *reply) {
  if (!req->name[0]) return nnrpc_ctx_fail(ctx, NNRPC_INVALID_ARGUMENT, "name is empty");
  size_t n = strlen(req->name) + sizeof "Hello, !";
  reply->message = nnrpc_ctx_alloc(ctx, n); /* freed by the runtime after the reply is sent */
  if (!reply->message) return NNRPC_RESOURCE_EXHAUSTED;
  snprintf(reply->message, n, "Hello, %s!", req->name);
  return NNRPC_OK;
}

int main(int argc, char **argv) {
  const char *url = argc > 1 ? argv[1] : "tcp://127.0.0.1:5555";
  const char *token = argc > 2 ? argv[2] : NULL;
  Helloworld__Greeter_Handlers handlers = {.say_hello = say_hello};
  int rc;
  if ((rc = nnrpc_server_open(&srv, NULL)) ||
      (rc = helloworld__greeter__handlers__register(srv, &handlers, NULL)) ||
      (rc = nnrpc_server_enable_reflection(srv)) || /* for `nnrpc list/describe/call` */
      (token && (rc = nnrpc_server_require_bearer(srv, token))) ||
      (rc = nnrpc_server_listen(srv, url))) {
    fprintf(stderr, "greeter_server: %s: %s\n", url, nnrpc_strerror(rc));
    nnrpc_server_close(srv);
    return 1;
  }
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  printf("greeter_server: listening on %s\n", url);
  fflush(stdout);
  rc = nnrpc_server_run(srv);
  nnrpc_server_close(srv);
  printf("greeter_server: stopped\n");
  return rc ? 1 : 0;
}
