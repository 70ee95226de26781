/* Writes the seed corpora of fuzz_frames, fuzz_server and fuzz_client
 * (tests/fuzz/corpus/<target>/): small valid inputs, one per protocol
 * situation, built with the runtime's own encoders. `make fuzz-corpus` runs
 * it (and tests/fuzz/plugin-seeds.sh for fuzz_plugin); the output is committed.
 *   gen_corpus DIR */
#include "fuzz.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>


typedef struct buf {
  uint8_t *p;
  size_t len, cap;
} buf;

static void put(buf *b, const void *data, size_t n) {
  if (b->len + n > b->cap) {
    b->cap = (b->len + n) * 2 + 64;
    b->p = realloc(b->p, b->cap);
    if (!b->p) abort();
  }
  if (n) memcpy(b->p + b->len, data, n);
  b->len += n;
}

static void put_env(buf *b, uint32_t seq) {
  uint8_t e[NNRPC_ENV_LEN];
  nnrpc__env_put(e, seq);
  put(b, e, sizeof e);
}

typedef struct hdr_args {
  const char *method, *message;
  uint64_t timeout_us, max_reply;
  uint32_t status, window;
  const char *md_key, *md_value;
} hdr_args;

/* A frame: meta from `h` (NULL: none), payload from `msg` or raw bytes. */
static void put_frame(buf *b, uint8_t type, uint8_t flags, uint64_t id, const hdr_args *h,
                      const ProtobufCMessage *msg, const void *raw, size_t raw_len) {
  uint8_t meta[1024];
  size_t ml = 0;
  if (h) {
    nnrpc_metadata *md = nnrpc_metadata_new();
    if (h->md_key) nnrpc_metadata_add_str(md, h->md_key, h->md_value);
    nnrpc__hdr hb;
    if (nnrpc__hdr_build(&hb, h->method, h->timeout_us, md, h->status, h->message, h->max_reply)) abort();
    hb.pb.window = h->window;
    ml = protobuf_c_message_pack(&hb.pb.base, meta);
    nnrpc__hdr_done(&hb);
    nnrpc_metadata_free(md);
  }
  uint8_t payload[4096];
  size_t pl = msg ? protobuf_c_message_pack(msg, payload) : raw_len;
  if (!msg && raw_len) memcpy(payload, raw, raw_len);
  uint8_t fh[NNRPC_FRAME_HDR_LEN];
  nnrpc__frame_put(fh, type, flags, (uint16_t)ml, (uint32_t)pl, id);
  put(b, fh, sizeof fh);
  put(b, meta, ml);
  put(b, payload, pl);
}

/* A frame header claiming `claimed` payload bytes, followed by only 4. */
static void put_truncated(buf *b, uint8_t type, uint64_t id, uint32_t claimed) {
  uint8_t fh[NNRPC_FRAME_HDR_LEN];
  nnrpc__frame_put(fh, type, 0, 0, claimed, id);
  put(b, fh, sizeof fh);
  put(b, "\x08\x01\x10\x02", 4);
}

/* A record of a multi-message input (fuzz.h). */
static void put_record(buf *in, const buf *msg) {
  uint8_t l[2];
  nnrpc__put16(l, (uint16_t)msg->len);
  put(in, l, 2);
  put(in, msg->p, msg->len);
}

static const char *out_dir;

static void save(const char *target, const char *name, const buf *b) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s", out_dir, target);
  if (mkdir(path, 0755) && errno != EEXIST) abort();
  snprintf(path, sizeof path, "%s/%s/%s", out_dir, target, name);
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(b->p, 1, b->len, f) != b->len || fclose(f)) {
    perror(path);
    exit(1);
  }
}

/* ---------------------------------------------------------------- messages */

static NnrpcTest__EchoRequest echo_req(uint64_t tag) {
  NnrpcTest__EchoRequest r = NNRPC_TEST__ECHO_REQUEST__INIT;
  static uint8_t hello[] = "hello";
  r.payload = (ProtobufCBinaryData){5, hello};
  r.tag = tag;
  return r;
}

/* A chain of `depth` nodes (at most 32). */
static NnrpcTest__Node *chain(size_t depth) {
  static NnrpcTest__Node nodes[32];
  for (size_t i = 0; i < depth; i++) {
    NnrpcTest__Node n = NNRPC_TEST__NODE__INIT;
    n.child = i + 1 < depth ? &nodes[i + 1] : NULL;
    n.label = (char *)"n";
    nodes[i] = n;
  }
  return &nodes[0];
}

static NnrpcStreamTest__Num num(int64_t v) {
  NnrpcStreamTest__Num n = NNRPC_STREAM_TEST__NUM__INIT;
  n.value = v;
  return n;
}

#define ECHO "/nnrpc_test.Echo/Echo"
#define NEST "/nnrpc_test.Echo/Nest"
#define SUM "/nnrpc_stream_test.Streamer/Sum"
#define RANGE "/nnrpc_stream_test.Streamer/Range"
#define CHAT "/nnrpc_stream_test.Streamer/Chat"
#define HM NNRPC_FF_HAS_MESSAGE
#define ES NNRPC_FF_END_STREAM

/* ---------------------------------------------------------------- fuzz_server: client->server inputs */

/* Empties b and starts a client->server message (ack 0). */
static void msg_start(buf *b) {
  b->len = 0;
  put_env(b, 0);
}

static void server_seeds(void) {
  const char *T = "fuzz_server";
  hdr_args call = {.method = ECHO, .timeout_us = 2000000, .max_reply = 4096};
  buf in = {0}, m = {0};
  msg_start(&m);
  NnrpcTest__EchoRequest er = echo_req(7);

  put_frame(&m, NNRPC_F_CALL, HM | ES, 1, &call, &er.base, NULL, 0);
  put_record(&in, &m);
  save(T, "unary-echo", &in);

  in.len = 0;
  hdr_args hd = call;
  hd.md_key = "x-trace";
  hd.md_value = "abc";
  er.echo_headers = 1;
  msg_start(&m);
  put_frame(&m, NNRPC_F_CALL, HM | ES, 1, &hd, &er.base, NULL, 0);
  put_record(&in, &m);
  save(T, "unary-echo-headers", &in);
  er.echo_headers = 0;

  in.len = 0;
  er.fail_code = NNRPC_NOT_FOUND;
  er.fail_message = (char *)"nope";
  msg_start(&m);
  put_frame(&m, NNRPC_F_CALL, HM | ES, 1, &call, &er.base, NULL, 0);
  put_record(&in, &m);
  save(T, "unary-echo-fail", &in);

  in.len = 0;
  er.fail_code = NNRPC_PENDING;
  msg_start(&m);
  put_frame(&m, NNRPC_F_CALL, HM | ES, 1, &call, &er.base, NULL, 0);
  put_record(&in, &m);
  save(T, "unary-echo-pending", &in);
  er.fail_code = 0;
  er.fail_message = (char *)"";

  in.len = 0;
  er.reply_size = 300;
  er.delay_ms = 2;
  msg_start(&m);
  put_frame(&m, NNRPC_F_CALL, HM | ES, 1, &call, &er.base, NULL, 0);
  put_record(&in, &m);
  save(T, "unary-echo-reply-size-delay", &in);
  er.reply_size = 0;
  er.delay_ms = 0;

  in.len = 0;
  hdr_args nest = call;
  nest.method = NEST;
  msg_start(&m);
  put_frame(&m, NNRPC_F_CALL, HM | ES, 1, &nest, &chain(3)->base, NULL, 0);
  put_frame(&m, NNRPC_F_CALL, HM | ES, 2, &nest, &chain(20)->base, NULL, 0);
  put_record(&in, &m);
  save(T, "unary-nest-shallow-and-too-deep", &in);

  in.len = 0;
  hdr_args other = call;
  other.method = "/nnrpc_test.Counter/Next";
  msg_start(&m);
  put_frame(&m, NNRPC_F_CALL, HM | ES, 1, &other, &er.base, NULL, 0);
  other.method = "/nnrpc_test.Echo/Unimplemented";
  put_frame(&m, NNRPC_F_CALL, HM | ES, 2, &other, &er.base, NULL, 0);
  other.method = "/nnrpc_test.Nope/Nope";
  put_frame(&m, NNRPC_F_CALL, HM | ES, 3, &other, &er.base, NULL, 0);
  put_record(&in, &m);
  save(T, "unary-counter-unimplemented-unknown", &in);

  in.len = 0;
  hdr_args quick = call;
  quick.timeout_us = 1;
  msg_start(&m);
  put_frame(&m, NNRPC_F_CALL, HM | ES, 1, &quick, &er.base, NULL, 0);
  put_record(&in, &m);
  msg_start(&m);
  put_frame(&m, NNRPC_F_CANCEL, 0, 1, NULL, NULL, NULL, 0);
  put_record(&in, &m);
  save(T, "unary-short-deadline-cancel", &in);

  in.len = 0;
  uint8_t big[1500];
  memset(big, 'x', sizeof big);
  msg_start(&m);
  put_frame(&m, NNRPC_F_CALL, HM | ES, 1, &call, NULL, big, sizeof big);
  put_frame(&m, NNRPC_F_CALL, ES, 2, &call, NULL, NULL, 0);
  put_frame(&m, NNRPC_F_CALL, HM | ES, 3, &call, NULL, "\xff\xff", 2);
  put_record(&in, &m);
  save(T, "unary-oversize-nomessage-malformed", &in);

  in.len = 0;
  hdr_args sum = {.method = SUM, .timeout_us = 2000000, .window = 100000};
  msg_start(&m);
  put_frame(&m, NNRPC_F_CALL, 0, 1, &sum, NULL, NULL, 0);
  put_record(&in, &m);
  for (int i = 0; i < 3; i++) {
    NnrpcStreamTest__Num n = num(i + 1);
    msg_start(&m);
    put_frame(&m, NNRPC_F_MESSAGE, 0, 1, NULL, &n.base, NULL, 0);
    put_record(&in, &m);
  }
  msg_start(&m);
  put_frame(&m, NNRPC_F_HALF_CLOSE, 0, 1, NULL, NULL, NULL, 0);
  put_record(&in, &m);
  save(T, "client-stream-sum", &in);

  in.len = 0;
  msg_start(&m);
  NnrpcStreamTest__Num bad = num(9);
  bad.fail = 1;
  put_frame(&m, NNRPC_F_CALL, 0, 1, &sum, NULL, NULL, 0);
  put_frame(&m, NNRPC_F_MESSAGE, 0, 1, NULL, &bad.base, NULL, 0);
  put_frame(&m, NNRPC_F_MESSAGE, ES, 1, NULL, NULL, "\x08", 1);
  put_record(&in, &m);
  save(T, "client-stream-sum-fail-malformed", &in);

  in.len = 0;
  msg_start(&m);
  put_frame(&m, NNRPC_F_CALL, 0, 1, &sum, NULL, NULL, 0);
  put_frame(&m, NNRPC_F_MESSAGE, 0, 1, NULL, NULL, "\x08", 1);
  put_frame(&m, NNRPC_F_HALF_CLOSE, 0, 1, NULL, NULL, NULL, 0);
  put_frame(&m, NNRPC_F_MESSAGE, 0, 1, NULL, NULL, NULL, 0);
  put_record(&in, &m);
  save(T, "client-stream-sum-malformed-after-half-close", &in);

  in.len = 0;
  NnrpcStreamTest__RangeRequest rr = NNRPC_STREAM_TEST__RANGE_REQUEST__INIT;
  rr.count = 5;
  rr.payload_size = 10;
  hdr_args range = {.method = RANGE, .timeout_us = 2000000, .window = 1000};
  msg_start(&m);
  put_frame(&m, NNRPC_F_CALL, HM | ES, 1, &range, &rr.base, NULL, 0);
  put_record(&in, &m);
  uint8_t w[4];
  nnrpc__put32(w, 5000);
  msg_start(&m);
  put_frame(&m, NNRPC_F_WINDOW, 0, 1, NULL, NULL, w, 4);
  put_record(&in, &m);
  save(T, "server-stream-range-window", &in);

  in.len = 0;
  msg_start(&m);
  put_frame(&m, NNRPC_F_CALL, HM | ES, 1, &range, &rr.base, NULL, 0);
  put_frame(&m, NNRPC_F_MESSAGE, 0, 1, NULL, &rr.base, NULL, 0); /* a message on a call that takes none */
  put_record(&in, &m);
  save(T, "server-stream-range-message", &in);

  in.len = 0;
  rr.count = 10;
  rr.fail_after = 3;
  rr.fail_code = NNRPC_DATA_LOSS;
  msg_start(&m);
  put_frame(&m, NNRPC_F_CALL, HM | ES, 1, &range, &rr.base, NULL, 0);
  put_record(&in, &m);
  save(T, "server-stream-range-fail", &in);

  in.len = 0;
  hdr_args chat = {.method = CHAT, .timeout_us = 2000000};
  msg_start(&m);
  put_frame(&m, NNRPC_F_CALL, 0, 1, &chat, NULL, NULL, 0);
  NnrpcStreamTest__Num c1 = num(1), c2 = num(2);
  put_frame(&m, NNRPC_F_MESSAGE, 0, 1, NULL, &c1.base, NULL, 0);
  put_record(&in, &m);
  msg_start(&m);
  put_frame(&m, NNRPC_F_MESSAGE, ES, 1, NULL, &c2.base, NULL, 0);
  put_record(&in, &m);
  save(T, "bidi-chat", &in);

  in.len = 0;
  msg_start(&m);
  put_frame(&m, NNRPC_F_CALL, 0, 1, &chat, NULL, NULL, 0);
  put_frame(&m, NNRPC_F_MESSAGE, 0, 1, NULL, &c1.base, NULL, 0);
  put_frame(&m, NNRPC_F_CANCEL, 0, 1, NULL, NULL, NULL, 0);
  put_frame(&m, NNRPC_F_MESSAGE, 0, 1, NULL, &c2.base, NULL, 0);
  put_record(&in, &m);
  save(T, "bidi-chat-cancel", &in);

  in.len = 0;
  uint8_t ids[24];
  nnrpc__put64(ids, 1);
  nnrpc__put64(ids + 8, 2);
  nnrpc__put64(ids + 16, 99);
  msg_start(&m);
  put_frame(&m, NNRPC_F_CALL, HM | ES, 1, &call, &er.base, NULL, 0);
  put_frame(&m, NNRPC_F_PING, 0, 0, NULL, NULL, ids, sizeof ids);
  put_frame(&m, 77, 0, 0, NULL, NULL, "?", 1);
  put_record(&in, &m);
  save(T, "ping-unknown-type", &in);

  in.len = 0;
  hdr_args many = call;
  many.md_key = "UPPER";
  many.md_value = "v";
  msg_start(&m);
  put_frame(&m, NNRPC_F_CALL, HM | ES, 1, &many, &er.base, NULL, 0);
  put_frame(&m, NNRPC_F_CALL, HM | ES, 1, &call, &er.base, NULL, 0); /* duplicate id */
  put_truncated(&m, NNRPC_F_CALL, 2, 50000);
  put_record(&in, &m);
  save(T, "bad-key-duplicate-truncated", &in);
  free(in.p);
  free(m.p);
}

/* ---------------------------------------------------------------- fuzz_client: server->client inputs */

/* Empties b and starts a server->client message (seq 1). */
static void reply_start(buf *b) {
  b->len = 0;
  put_env(b, 1);
}

static void client_seed(const char *name, uint8_t mode, buf *msgs, size_t n) {
  buf in = {0};
  put(&in, &mode, 1);
  for (size_t i = 0; i < n; i++) {
    put_record(&in, &msgs[i]);
    msgs[i].len = 0;
  }
  save("fuzz_client", name, &in);
  free(in.p);
}

static void client_seeds(void) {
  enum { ECHO_M = 0, NEST_M = 1, RANGE_M = 2, SUM_M = 3, CHAT_M = 4, TRAILERS = 0x40, CLOSE = 0x20 };
  hdr_args ok = {.md_key = "x-t", .md_value = "1"}, err = {.status = NNRPC_NOT_FOUND, .message = "no such thing"};
  buf m[4] = {{0}};

  NnrpcTest__EchoReply rep = NNRPC_TEST__ECHO_REPLY__INIT;
  rep.tag = 7;
  rep.note = (char *)"note";
  reply_start(&m[0]);
  put_frame(&m[0], NNRPC_F_STATUS, HM, 1, &ok, &rep.base, NULL, 0);
  client_seed("unary-ok-trailers", ECHO_M | TRAILERS, m, 1);

  reply_start(&m[0]);
  put_frame(&m[0], NNRPC_F_STATUS, 0, 1, &err, NULL, NULL, 0);
  client_seed("unary-error", ECHO_M, m, 1);

  reply_start(&m[0]);
  put_frame(&m[0], NNRPC_F_STATUS, 0, 1, &ok, NULL, NULL, 0);
  client_seed("unary-ok-without-reply", ECHO_M, m, 1);

  reply_start(&m[0]);
  put_frame(&m[0], NNRPC_F_STATUS, HM, 2, &ok, &rep.base, NULL, 0);
  put_frame(&m[0], NNRPC_F_STATUS, HM, 1, &ok, NULL, "\x12\x01", 2);
  client_seed("unary-late-and-malformed", ECHO_M, m, 1);

  reply_start(&m[0]);
  put_frame(&m[0], NNRPC_F_STATUS, HM, 1, &ok, &chain(4)->base, NULL, 0);
  client_seed("unary-nest", NEST_M, m, 1);

  reply_start(&m[0]);
  put_frame(&m[0], NNRPC_F_STATUS, HM, 1, &ok, &chain(20)->base, NULL, 0);
  client_seed("unary-nest-too-deep", NEST_M | TRAILERS, m, 1);

  uint8_t ids[16];
  nnrpc__put64(ids, 1);
  nnrpc__put64(ids + 8, 12345);
  reply_start(&m[0]);
  put_frame(&m[0], NNRPC_F_PONG, 0, 0, NULL, NULL, ids, sizeof ids);
  client_seed("unary-pong-unknown", ECHO_M, m, 1);

  m[0].len = 0;
  put(&m[0], "\x02\0\0\0\0\0\0\x01", 8); /* another protocol version */
  reply_start(&m[1]);
  put_frame(&m[1], NNRPC_F_STATUS, 0, 1, &err, NULL, NULL, 0);
  client_seed("unary-bad-version-then-status", ECHO_M, m, 2);

  NnrpcStreamTest__Num n1 = num(1), n2 = num(2);
  reply_start(&m[0]);
  put_frame(&m[0], NNRPC_F_MESSAGE, 0, 1, NULL, &n1.base, NULL, 0);
  reply_start(&m[1]);
  put_frame(&m[1], NNRPC_F_MESSAGE, 0, 1, NULL, &n2.base, NULL, 0);
  put_frame(&m[1], NNRPC_F_STATUS, 0, 1, &ok, NULL, NULL, 0);
  client_seed("server-stream-range", RANGE_M | TRAILERS, m, 2);

  reply_start(&m[0]);
  put_frame(&m[0], NNRPC_F_MESSAGE, 0, 1, NULL, &n1.base, NULL, 0);
  put_frame(&m[0], NNRPC_F_MESSAGE, 0, 1, NULL, NULL, "\x0a", 1);
  put_frame(&m[0], NNRPC_F_STATUS, 0, 1, &err, NULL, NULL, 0);
  client_seed("server-stream-range-malformed-message", RANGE_M, m, 1);

  uint8_t big[3000];
  memset(big, 0, sizeof big);
  big[0] = 0x12; /* Num.payload, length 2000 */
  big[1] = 0xd0;
  big[2] = 0x0f;
  reply_start(&m[0]);
  for (int i = 0; i < 3; i++) put_frame(&m[0], NNRPC_F_MESSAGE, 0, 1, NULL, NULL, big, 2003);
  client_seed("server-stream-range-credit", RANGE_M, m, 1);

  uint8_t w[4];
  nnrpc__put32(w, 100000);
  NnrpcStreamTest__Total total = NNRPC_STREAM_TEST__TOTAL__INIT;
  total.sum = 3;
  total.count = 2;
  reply_start(&m[0]);
  put_frame(&m[0], NNRPC_F_WINDOW, 0, 1, NULL, NULL, w, 4);
  reply_start(&m[1]);
  put_frame(&m[1], NNRPC_F_STATUS, HM, 1, &ok, &total.base, NULL, 0);
  client_seed("client-stream-sum", SUM_M | CLOSE | (2 << 3), m, 2);

  reply_start(&m[0]);
  put_frame(&m[0], NNRPC_F_MESSAGE, 0, 1, NULL, &n1.base, NULL, 0);
  put_frame(&m[0], NNRPC_F_STATUS, 0, 1, &err, NULL, NULL, 0);
  client_seed("client-stream-sum-message-on-wrong-kind", SUM_M | (1 << 3), m, 1);

  reply_start(&m[0]);
  put_frame(&m[0], NNRPC_F_MESSAGE, 0, 1, NULL, &n1.base, NULL, 0);
  put_frame(&m[0], NNRPC_F_WINDOW, 0, 1, NULL, NULL, w, 4);
  reply_start(&m[1]);
  put_frame(&m[1], NNRPC_F_MESSAGE, 0, 1, NULL, &n2.base, NULL, 0);
  reply_start(&m[2]);
  put_frame(&m[2], NNRPC_F_STATUS, 0, 1, &ok, NULL, NULL, 0);
  client_seed("bidi-chat", CHAT_M | CLOSE | (1 << 3) | TRAILERS, m, 3);

  reply_start(&m[0]);
  put_frame(&m[0], NNRPC_F_HEADERS, 0, 1, &ok, NULL, NULL, 0);
  put_frame(&m[0], 200, 0, 1, NULL, NULL, "??", 2);
  put_truncated(&m[0], NNRPC_F_STATUS, 1, 40);
  client_seed("bidi-unknown-types-truncated", CHAT_M, m, 1);
  for (size_t i = 0; i < 4; i++) free(m[i].p);
}

/* ---------------------------------------------------------------- fuzz_frames: single messages */

static void frame_seeds(void) {
  const char *T = "fuzz_frames";
  hdr_args call = {.method = ECHO, .timeout_us = 2000000, .max_reply = 4096, .md_key = "x-a", .md_value = "b"};
  hdr_args st = {.status = NNRPC_OK, .md_key = "x-t", .md_value = "1"};
  hdr_args err = {.status = NNRPC_UNAVAILABLE, .message = "later"};
  NnrpcTest__EchoRequest er = echo_req(3);
  NnrpcTest__EchoReply rep = NNRPC_TEST__ECHO_REPLY__INIT;
  rep.note = (char *)"n";
  NnrpcStreamTest__Num n1 = num(-5);
  NnrpcStreamTest__RangeRequest rr = NNRPC_STREAM_TEST__RANGE_REQUEST__INIT;
  rr.count = 3;
  uint8_t w[4], ids[16];
  nnrpc__put32(w, 65536);
  nnrpc__put64(ids, 4);
  nnrpc__put64(ids + 8, 5);

  buf b = {0};
  msg_start(&b);
  put_frame(&b, NNRPC_F_CALL, HM | ES, 0, &call, &er.base, NULL, 0);
  save(T, "call-echo", &b);

  reply_start(&b);
  put_frame(&b, NNRPC_F_STATUS, HM, 1, &st, &rep.base, NULL, 0);
  put_frame(&b, NNRPC_F_STATUS, 0, 2, &err, NULL, NULL, 0);
  save(T, "status-ok-and-error", &b);

  msg_start(&b);
  hdr_args range = {.method = RANGE, .window = 1 << 20};
  put_frame(&b, NNRPC_F_CALL, HM | ES, 5, &range, &rr.base, NULL, 0);
  put_frame(&b, NNRPC_F_WINDOW, 0, 5, NULL, NULL, w, 4);
  save(T, "call-range-window", &b);

  reply_start(&b);
  put_frame(&b, NNRPC_F_MESSAGE, 0, 0, NULL, &n1.base, NULL, 0);
  put_frame(&b, NNRPC_F_MESSAGE, 0, 3, NULL, &chain(5)->base, NULL, 0);
  put_frame(&b, NNRPC_F_PONG, 0, 0, NULL, NULL, ids, sizeof ids);
  save(T, "messages-pong", &b);

  msg_start(&b);
  put_frame(&b, NNRPC_F_PING, 0, 0, NULL, NULL, ids, sizeof ids);
  put_frame(&b, NNRPC_F_CANCEL, 0, 4, NULL, NULL, NULL, 0);
  put_frame(&b, NNRPC_F_HALF_CLOSE, 0, 5, NULL, NULL, NULL, 0);
  save(T, "ping-cancel-half-close", &b);

  msg_start(&b);
  put_frame(&b, NNRPC_F_MESSAGE, 63, 2, NULL, &chain(30)->base, NULL, 0);
  put_truncated(&b, NNRPC_F_STATUS, 1, 100);
  save(T, "deep-then-truncated", &b);
  free(b.p);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s DIR\n", argv[0]);
    return 2;
  }
  out_dir = argv[1];
  frame_seeds();
  server_seeds();
  client_seeds();
  return 0;
}
