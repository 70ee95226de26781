/* fuzz_server: the server's whole receive path. A real nnrpc server (started
 * once per process, test services of tests/protos) listens on inproc; the
 * fuzzer is a raw REQ socket, like a client's. Each input is one or more
 * client->server message bodies (fuzz.h records: envelope, frames); the
 * target prefixes each with the request id a client sends (0x80000000) and
 * sends it: receive thread -> frame parsing -> routing -> decoding -> handler
 * (worker or stream thread) -> STATUS/MESSAGE/WINDOW/PONG back.
 *
 * After the input the target cancels every call the input started and pings
 * the server until it no longer knows any of them (a PONG comes after every
 * STATUS queued before it), so every input ends with the server idle again:
 * no state but the connection's carries over, and a call that never ends is a
 * hang (abort). On the way it checks what the server sends: well-formed
 * envelopes and frames, decodable status headers and stream messages, and a
 * STATUS for every call the input started.
 *
 * The handlers are the test services' behaviours, bounded (delays, sizes,
 * message counts), so that no input can make a handler itself run long.
 * Acks are the target's job, as a real client's receiver does them: a non-zero
 * ack in the input is replaced with the seq of the last message received (an
 * ack for a message not yet received lets nanomsg drop the client's own
 * replies, which the protocol documents; it would only stall the target). */
#include "fuzz.h"

#include <nanomsg/nn.h>
#include <nanomsg/reqrep.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "stream_test.nnrpc.h"
#include "test.nnrpc.h"

/* ASan's count of live heap bytes (weak: the target also builds without ASan). */
size_t __sanitizer_get_current_allocated_bytes(void) __attribute__((weak));

#define IO_MS 10000       /* a send or the wait for a barrier longer than this is a hang */
#define MAX_IDS 4096      /* distinct call ids tracked per input */
#define MAX_PAYLOAD 2048  /* handler-made payloads */
#define MAX_MSGS 64       /* messages a Range handler sends */

static nnrpc_server *srv;
static int sock = -1;
static uint32_t last_seq; /* of the last server message received (acked) */
static uint64_t iteration;

/* ---------------------------------------------------------------- bounded test handlers */

static void nap(uint32_t ms, nnrpc_ctx *ctx) {
  for (uint32_t i = 0; i < (ms < 3 ? ms : 3) && !nnrpc_ctx_is_cancelled(ctx); i++) usleep(1000);
}

static int echo(nnrpc_ctx *ctx, const NnrpcTest__EchoRequest *req, NnrpcTest__EchoReply *reply) {
  nap(req->delay_ms, ctx);
  if (req->echo_headers) {
    const nnrpc_metadata *h = nnrpc_ctx_headers(ctx);
    for (size_t i = 0; i < nnrpc_metadata_count(h); i++) {
      const char *k;
      const void *v;
      size_t len;
      nnrpc_metadata_at(h, i, &k, &v, &len);
      if (strncmp(k, "x-", 2) == 0) nnrpc_ctx_add_trailer(ctx, k, v, len);
    }
  }
  if (req->fail_code == NNRPC_PENDING) { /* finish before returning PENDING: allowed */
    reply->tag = req->tag;
    nnrpc_ctx_finish(ctx, NNRPC_OK);
    return NNRPC_PENDING;
  }
  if (req->fail_code) return nnrpc_ctx_fail(ctx, req->fail_code, "%s", req->fail_message);
  reply->tag = req->tag;
  reply->note = nnrpc_ctx_strdup(ctx, nnrpc_ctx_method(ctx));
  if (req->reply_size) {
    size_t n = req->reply_size % (2 * MAX_PAYLOAD);
    uint8_t *p = nnrpc_ctx_alloc(ctx, n);
    if (!p) return NNRPC_RESOURCE_EXHAUSTED;
    memset(p, (int)req->tag, n);
    reply->payload = (ProtobufCBinaryData){n, p};
  } else {
    reply->payload = req->payload;
  }
  return NNRPC_OK;
}

static int nest(nnrpc_ctx *ctx, const NnrpcTest__Node *req, NnrpcTest__Node *reply) {
  uint32_t d = 0;
  for (const NnrpcTest__Node *n = req; n; n = n->child) d++;
  reply->depth = d;
  reply->child = req->child;
  return NNRPC_OK;
}

static int counter_next(nnrpc_ctx *ctx, const NnrpcTest__EchoRequest *req, NnrpcTest__EchoReply *reply) {
  static atomic_uint counter;
  reply->tag = atomic_fetch_add(&counter, 1) + 1;
  return NNRPC_OK;
}

static int sum(nnrpc_ctx *ctx, NnrpcStreamTest__Total *reply) {
  NnrpcStreamTest__Num *m;
  while (nnrpc_stream_test__streamer__sum__recv(ctx, &m)) {
    bool fail = m->fail;
    uint32_t delay = m->delay_ms;
    reply->sum += m->value;
    nnrpc_stream_test__num__free_unpacked(m, NULL);
    if (fail) return nnrpc_ctx_fail(ctx, NNRPC_FAILED_PRECONDITION, "fail requested");
    reply->count++;
    nap(delay, ctx);
  }
  return nnrpc_ctx_is_cancelled(ctx) ? NNRPC_CANCELLED : NNRPC_OK;
}

static int range(nnrpc_ctx *ctx, const NnrpcStreamTest__RangeRequest *req) {
  size_t size = req->payload_size % MAX_PAYLOAD;
  uint8_t *buf = malloc(size ? size : 1);
  if (!buf) return NNRPC_RESOURCE_EXHAUSTED;
  memset(buf, (int)req->start, size);
  uint64_t count = req->forever ? MAX_MSGS : req->count % MAX_MSGS;
  int rc = NNRPC_OK;
  for (uint64_t i = 0; i < count; i++) {
    if (req->fail_after && i == req->fail_after) {
      rc = nnrpc_ctx_fail(ctx, req->fail_code, "failing after %llu messages", (unsigned long long)i);
      break;
    }
    nap(req->delay_ms, ctx);
    NnrpcStreamTest__Num n = NNRPC_STREAM_TEST__NUM__INIT;
    n.value = req->start + (int64_t)i;
    n.payload = (ProtobufCBinaryData){size, buf};
    rc = nnrpc_stream_test__streamer__range__send(ctx, &n);
    if (rc != NNRPC_OK) break;
  }
  free(buf);
  return rc;
}

static int chat(nnrpc_ctx *ctx) {
  NnrpcStreamTest__Num *m;
  int rc = NNRPC_OK;
  while (rc == NNRPC_OK && nnrpc_stream_test__streamer__chat__recv(ctx, &m)) {
    if (m->fail) {
      rc = nnrpc_ctx_fail(ctx, NNRPC_ABORTED, "fail requested at %lld", (long long)m->value);
    } else {
      nap(m->delay_ms, ctx);
      NnrpcStreamTest__Num n = NNRPC_STREAM_TEST__NUM__INIT;
      n.value = m->value;
      n.payload = m->payload;
      rc = nnrpc_stream_test__streamer__chat__send(ctx, &n);
    }
    nnrpc_stream_test__num__free_unpacked(m, NULL);
  }
  return rc;
}

/* ---------------------------------------------------------------- the raw client */

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void send_body(const uint8_t *body, size_t len) {
  uint8_t *m = nn_allocmsg(NNRPC_REQID_LEN + len, 0);
  FZ_CHECK(m, "nn_allocmsg failed");
  nnrpc__put32(m, 0x80000000u);
  if (len) memcpy(m + NNRPC_REQID_LEN, body, len);
  FZ_CHECK(nn_send(sock, &m, NN_MSG, 0) >= 0, "send to the server failed (a hang?): %s", nn_strerror(nn_errno()));
}

typedef struct input_state {
  uint64_t ids[MAX_IDS]; /* CALL ids the input sent (valid envelopes only) */
  bool answered[MAX_IDS];
  size_t nids;
  uint64_t sentinel; /* the barrier's own id in its PING, never a call */
  int pong_unknown;  /* ids of `ids` the barrier's PONG lists; -1 until it came */
} input_state;

static size_t find_id(const input_state *st, uint64_t id) {
  for (size_t i = 0; i < st->nids; i++)
    if (st->ids[i] == id) return i;
  return SIZE_MAX;
}

/* Checks one message from the server and acks it. */
static void on_reply(input_state *st, const uint8_t *body, size_t len) {
  uint32_t seq;
  FZ_CHECK(nnrpc__env_get(body, len, &seq) == 0, "server sent a message without a valid envelope");
  FZ_CHECK(seq != 0, "server sent seq 0");
  last_seq = seq;
  uint8_t ack[NNRPC_ENV_LEN];
  nnrpc__env_put(ack, seq);
  send_body(ack, NNRPC_ENV_LEN);
  size_t off = NNRPC_ENV_LEN;
  nnrpc__frame f;
  int r;
  while ((r = nnrpc__frame_next(body, len, &off, &f)) == 1) {
    switch (f.type) {
    case NNRPC_F_STATUS: {
      nnrpc__arena a;
      nnrpc__arena_init(&a, 1u << 20);
      Nnrpc__Wire__CallHeader *h = NULL;
      const char *why = NULL;
      FZ_CHECK(nnrpc__hdr_decode(f.meta, f.meta_len, &a.pb, 8192, 64, &h, &why) == NNRPC_OK,
               "server sent a STATUS header we cannot decode: %s", why);
      FZ_CHECK(h->status < NNRPC_CODE_COUNT, "server sent status %u", h->status);
      FZ_CHECK(!(f.flags & NNRPC_FF_HAS_MESSAGE) || h->status == NNRPC_OK, "a failed STATUS with a message");
      FZ_CHECK(h->status == NNRPC_OK || f.payload_len == 0, "a failed STATUS with a payload");
      nnrpc__arena_free(&a);
      size_t i = find_id(st, f.call_id);
      FZ_CHECK(i != SIZE_MAX, "STATUS for call %llu that this input never started", (unsigned long long)f.call_id);
      st->answered[i] = true;
      break;
    }
    case NNRPC_F_MESSAGE: {
      bool deep;
      const char *why;
      ProtobufCMessage *m = nnrpc__decode(&nnrpc_stream_test__num__descriptor, f.payload, f.payload_len, 64, NULL,
                                          &deep, &why);
      FZ_CHECK(m, "server sent a stream message we cannot decode: %s", why);
      protobuf_c_message_free_unpacked(m, NULL);
      FZ_CHECK(find_id(st, f.call_id) != SIZE_MAX, "MESSAGE for a call this input never started");
      break;
    }
    case NNRPC_F_WINDOW:
      FZ_CHECK(f.payload_len == 4, "WINDOW with %u bytes", f.payload_len);
      FZ_CHECK(find_id(st, f.call_id) != SIZE_MAX, "WINDOW for a call this input never started");
      break;
    case NNRPC_F_PONG: {
      FZ_CHECK(f.payload_len % 8 == 0, "PONG with %u bytes", f.payload_len);
      bool mine = false;
      int unknown = 0;
      for (size_t i = 0; i < f.payload_len; i += 8) {
        uint64_t id = nnrpc__get64(f.payload + i);
        if (id == st->sentinel)
          mine = true;
        else if (find_id(st, id) != SIZE_MAX)
          unknown++;
      }
      if (mine) st->pong_unknown = unknown;
      break;
    }
    default:
      FZ_CHECK(0, "server sent frame type %u", f.type);
    }
  }
  FZ_CHECK(r == 0, "server sent a malformed frame");
}

/* Receives (and checks) server messages for up to timeout_ms (0: only what is there). */
static void pump(input_state *st, int timeout_ms) {
  for (;;) {
    struct nn_pollfd p = {sock, NN_POLLIN, 0};
    int rc = nn_poll(&p, 1, timeout_ms);
    if (rc <= 0) return;
    void *body = NULL;
    int n = nn_recv(sock, &body, NN_MSG, NN_DONTWAIT);
    if (n < 0) return;
    on_reply(st, body, (size_t)n);
    nn_freemsg(body);
    timeout_ms = 0;
  }
}

/* Frames of the same kind for many call ids, in messages of at most 256. */
static void send_frames(uint8_t type, const uint64_t *ids, size_t n) {
  for (size_t i = 0; i < n; i += 256) {
    size_t k = n - i < 256 ? n - i : 256;
    uint8_t buf[NNRPC_ENV_LEN + 256 * NNRPC_FRAME_HDR_LEN];
    nnrpc__env_put(buf, last_seq);
    for (size_t j = 0; j < k; j++)
      nnrpc__frame_put(buf + NNRPC_ENV_LEN + j * NNRPC_FRAME_HDR_LEN, type, 0, 0, 0, ids[i + j]);
    send_body(buf, NNRPC_ENV_LEN + k * NNRPC_FRAME_HDR_LEN);
  }
}

static void send_ping(input_state *st) {
  size_t n = st->nids + 1;
  uint8_t *buf = malloc(NNRPC_ENV_LEN + NNRPC_FRAME_HDR_LEN + 8 * n);
  FZ_CHECK(buf, "out of memory");
  nnrpc__env_put(buf, last_seq);
  nnrpc__frame_put(buf + NNRPC_ENV_LEN, NNRPC_F_PING, 0, 0, (uint32_t)(8 * n), 0);
  uint8_t *p = buf + NNRPC_ENV_LEN + NNRPC_FRAME_HDR_LEN;
  nnrpc__put64(p, st->sentinel);
  for (size_t i = 0; i < st->nids; i++) nnrpc__put64(p + 8 * (i + 1), st->ids[i]);
  send_body(buf, NNRPC_ENV_LEN + NNRPC_FRAME_HDR_LEN + 8 * n);
  free(buf);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  /* Small limits, so that inputs of a few KiB reach every one of them. */
  nnrpc_server_opts o = {.workers = 2, .max_concurrent_calls = 32, .max_recv_msg = 1024,
                         .max_send_msg = 4096, .max_metadata_bytes = 512, .max_metadata_count = 8,
                         .max_decode_depth = 16, .max_decode_bytes = 64 << 10, .max_batch_bytes = 4096,
                         .stream_window = 128 << 10};
  NnrpcTest__Echo_Handlers eh = {.echo = echo, .nest = nest};
  NnrpcTest__Counter_Handlers ch = {.next = counter_next};
  NnrpcStreamTest__Streamer_Handlers sh = {.sum = sum, .range = range, .chat = chat};
  char url[64];
  snprintf(url, sizeof url, "inproc://nnrpc-fuzz-server-%ld", (long)getpid());
  FZ_CHECK(nnrpc_server_open(&srv, &o) == NNRPC_OK && nnrpc_test__echo__handlers__register(srv, &eh, NULL) == 0 &&
               nnrpc_test__counter__handlers__register(srv, &ch, NULL) == 0 &&
               nnrpc_stream_test__streamer__handlers__register(srv, &sh, NULL) == 0 &&
               nnrpc_server_listen(srv, url) == NNRPC_OK && nnrpc_server_start(srv) == NNRPC_OK,
           "cannot start the server");
  sock = nn_socket(AF_SP_RAW, NN_REQ);
  int to = IO_MS;
  FZ_CHECK(sock >= 0 && nn_setsockopt(sock, NN_SOL_SOCKET, NN_SNDTIMEO, &to, sizeof to) == 0 &&
               nn_connect(sock, url) >= 0,
           "cannot connect to the server");
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static input_state st;
  st.nids = 0;
  memset(st.answered, 0, sizeof st.answered);
  st.sentinel = 0xf5f5000000000000ull | ++iteration;
  st.pong_unknown = -1;
  const uint8_t *p = data, *rec;
  size_t left = size, len;
  uint8_t *body = malloc(size + NNRPC_ENV_LEN);
  FZ_CHECK(body, "out of memory");
  while (fz_next_record(&p, &left, &rec, &len)) {
    memcpy(body, rec, len);
    uint32_t ack;
    if (nnrpc__env_get(body, len, &ack) == 0) {
      if (ack) nnrpc__put32(body + 4, last_seq); /* see the top of the file */
      size_t off = NNRPC_ENV_LEN;
      nnrpc__frame f;
      while (nnrpc__frame_next(body, len, &off, &f) == 1)
        if (f.type == NNRPC_F_CALL && f.call_id != st.sentinel && find_id(&st, f.call_id) == SIZE_MAX &&
            st.nids < MAX_IDS)
          st.ids[st.nids++] = f.call_id;
    }
    send_body(body, len);
    pump(&st, 0);
  }
  free(body);
  /* The barrier: end every call, then wait until the server knows none. */
  send_frames(NNRPC_F_CANCEL, st.ids, st.nids);
  int64_t until = now_ms() + IO_MS;
  for (;;) {
    st.pong_unknown = -1;
    send_ping(&st);
    while (st.pong_unknown < 0 && now_ms() < until) pump(&st, 100);
    FZ_CHECK(st.pong_unknown >= 0, "no PONG within %d ms: the server hangs", IO_MS);
    if ((size_t)st.pong_unknown == st.nids) break;
    FZ_CHECK(now_ms() < until, "calls still running %d ms after CANCEL", IO_MS);
    usleep(200);
  }
  for (size_t i = 0; i < st.nids; i++)
    FZ_CHECK(st.answered[i], "call %llu got no STATUS", (unsigned long long)st.ids[i]);
  /* The server is idle here: its memory must not grow with the inputs. */
  if ((iteration & ((1u << 16) - 1)) == 0 && __sanitizer_get_current_allocated_bytes)
    fprintf(stderr, "fuzz_server: %llu inputs, live heap %zu KiB (libFuzzer's included)\n",
            (unsigned long long)iteration, __sanitizer_get_current_allocated_bytes() >> 10);
  return 0;
}
