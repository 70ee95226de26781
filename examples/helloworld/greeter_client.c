/* helloworld client: calls Greeter.SayHello once and prints the greeting.
 *   greeter_client [URL] [NAME]    (default tcp://127.0.0.1:5555 world) */
#include <stdio.h>

#include "helloworld.nnrpc.h"

int main(int argc, char **argv) {
  const char *url = argc > 1 ? argv[1] : "tcp://127.0.0.1:5555";
  nnrpc_channel *ch;
  if (nnrpc_channel_open(&ch, url, NULL)) {
    fprintf(stderr, "greeter_client: cannot open a channel to %s\n", url);
    return 1;
  }
  Helloworld__HelloRequest req = HELLOWORLD__HELLO_REQUEST__INIT;
  req.name = argc > 2 ? argv[2] : "world";
  Helloworld__HelloReply *reply;
  nnrpc_call_opts opts = {.timeout_ms = 2000};
  nnrpc_status st = helloworld__greeter__say_hello__call(ch, &req, &reply, &opts);
  if (st.code != NNRPC_OK) {
    fprintf(stderr, "greeter_client: SayHello failed: %s: %s\n", nnrpc_code_name(st.code), st.message);
    nnrpc_channel_close(ch);
    return 1;
  }
  printf("Greeter.SayHello -> \"%s\"\n", reply->message);
  helloworld__hello_reply__free_unpacked(reply, NULL);
  nnrpc_channel_close(ch);
  return 0;
}
