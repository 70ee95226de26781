/* fuzz_client: the client's receive path under hostile server frames. A raw
 * REP socket on inproc plays the server for a real nnrpc channel (opened once
 * per process). For each input the channel starts one call; the fake server
 * takes its CALL and answers with the input's messages, then with a STATUS
 * ABORTED of its own (so that a call the input left open ends at once; a
 * late STATUS is dropped by the channel). The call must then end with a
 * status, without crash, leak or hang; a stream is read to its end first.
 *
 * Input: byte 0 picks the call
 *   bits 0-2 (mod 5): Echo (unary), Nest (unary), Range (server stream),
 *                     Sum (client stream), Chat (bidi)
 *   bits 3-4: messages the client writes first (Sum, Chat)
 *   bit 5:    the client half-closes before the replies come (Sum, Chat)
 *   bit 6:    the caller asks for the trailers
 * then fuzz.h records: server->client message bodies (envelope, frames).
 * A frame whose call id is 1 gets the call's real id, 2 the previous call's
 * (a finished call); other ids are left as they are (unknown calls). The
 * fake server numbers its messages itself (the envelope's seq, which the
 * channel only echoes in its ack) and, as the real server does, sends the next
 * message only once the channel acked the last (nanomsg's raw REP drops a
 * message sent while the connection is busy; docs/protocol.md). Messages
 * without a valid envelope get no ack: after each, the fake server probes
 * with empty messages until one is acked, and sends at most MAX_UNACKED of
 * them per input (the channel drops them all the same way). */
#include "fuzz.h"

#include <nanomsg/nn.h>
#include <nanomsg/reqrep.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "stream_test.nnrpc.h"
#include "test.nnrpc.h"

#define IO_MS 10000  /* waiting longer than this for the channel is a hang */
#define CALL_MS 5000 /* each call's deadline: the terminating STATUS comes long before */
#define BT_MAX 64
#define MAX_UNACKED 4 /* messages without a valid envelope sent per input (each costs a probe) */

static int rep = -1;
static nnrpc_channel *ch;
static uint8_t bt[BT_MAX];
static size_t bt_len;
static uint32_t srv_seq;
static uint64_t prev_id;
static nnrpc_cq *cq;
static const nnrpc_method *methods[5];

/* One message from the channel within timeout_ms (its backtrace kept in bt).
 * Returns its length, or -1. */
static int recv_one(void **body, int timeout_ms) {
  struct nn_pollfd p = {rep, NN_POLLIN, 0};
  if (nn_poll(&p, 1, timeout_ms) <= 0) return -1;
  void *ctl = NULL;
  *body = NULL;
  struct nn_iovec iov = {body, NN_MSG};
  struct nn_msghdr hdr = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = &ctl, .msg_controllen = NN_MSG};
  int n = nn_recvmsg(rep, &hdr, NN_DONTWAIT);
  if (n < 0) return -1;
  for (struct nn_cmsghdr *cm = NN_CMSG_FIRSTHDR(&hdr); cm; cm = NN_CMSG_NXTHDR(&hdr, cm))
    if (cm->cmsg_level == PROTO_SP && cm->cmsg_type == SP_HDR) {
      size_t l;
      memcpy(&l, NN_CMSG_DATA(cm), sizeof l);
      FZ_CHECK(l >= 4 && l <= BT_MAX, "backtrace of %zu bytes", l);
      memcpy(bt, NN_CMSG_DATA(cm) + sizeof l, l);
      bt_len = l;
      break;
    }
  if (ctl) nn_freemsg(ctl);
  return n;
}

static void send_to_channel(const uint8_t *body, size_t len) {
  void *m = nn_allocmsg(len ? len : 1, 0);
  FZ_CHECK(m, "nn_allocmsg failed");
  memcpy(m, body, len);
  uint8_t ctl[NN_CMSG_SPACE(sizeof(size_t) + BT_MAX)] __attribute__((aligned(8)));
  struct nn_cmsghdr *cm = (struct nn_cmsghdr *)(void *)ctl;
  cm->cmsg_len = NN_CMSG_LEN(sizeof(size_t) + bt_len);
  cm->cmsg_level = PROTO_SP;
  cm->cmsg_type = SP_HDR;
  memcpy(NN_CMSG_DATA(cm), &bt_len, sizeof bt_len);
  memcpy(NN_CMSG_DATA(cm) + sizeof bt_len, bt, bt_len);
  struct nn_iovec iov = {&m, NN_MSG};
  struct nn_msghdr hdr = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl,
                          .msg_controllen = NN_CMSG_SPACE(sizeof(size_t) + bt_len)};
  FZ_CHECK(nn_sendmsg(rep, &hdr, 0) >= 0, "send to the channel failed: %s", nn_strerror(nn_errno()));
}

static int64_t now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Reads the channel's messages until the ack of `seq` (true) or timeout_us. */
static bool wait_ack(uint32_t seq, int64_t timeout_us) {
  int64_t until = now_us() + timeout_us;
  for (;;) {
    int64_t left = until - now_us();
    void *body;
    /* short waits poll finely: nn_poll counts in milliseconds */
    int n = recv_one(&body, timeout_us > 10000 && left > 0 ? (int)((left + 999) / 1000) : 0);
    if (n < 0) {
      if (left <= 0) return false;
      if (timeout_us <= 10000) usleep(20);
      continue;
    }
    uint32_t ack;
    /* (raw REP moved the request id into the backtrace: the body starts with the envelope) */
    bool ok = nnrpc__env_get(body, (size_t)n, &ack) == 0 && ack == seq;
    nn_freemsg(body);
    if (ok) return true;
  }
}

/* Sends a message whose envelope we numbered and waits for its ack. */
static void send_acked(uint8_t *body, size_t len) {
  if (++srv_seq == 0) srv_seq = 1;
  nnrpc__put32(body + 4, srv_seq);
  send_to_channel(body, len);
  FZ_CHECK(wait_ack(srv_seq, IO_MS * 1000), "the channel did not ack message %u", srv_seq);
}

/* Sends a message the channel will not ack (no valid envelope), then empty
 * numbered messages until one is acked: the connection is free again (one
 * sent while it is not is dropped by nanomsg, silently). */
static void send_unacked(const uint8_t *body, size_t len) {
  send_to_channel(body, len);
  int64_t until = now_us() + IO_MS * 1000;
  do {
    usleep(30); /* the usual time the connection takes to be free again */
    uint8_t env[NNRPC_ENV_LEN];
    nnrpc__env_put(env, 0);
    if (++srv_seq == 0) srv_seq = 1;
    nnrpc__put32(env + 4, srv_seq);
    send_to_channel(env, sizeof env);
    if (wait_ack(srv_seq, 300)) return;
  } while (now_us() < until);
  FZ_CHECK(0, "the channel acks nothing any more");
}

/* The STATUS that ends whatever call the input left open. */
static void send_terminator(uint64_t id) {
  static const char text[] = "fuzz: end of input";
  uint8_t meta[64], body[128];
  Nnrpc__Wire__CallHeader h = NNRPC__WIRE__CALL_HEADER__INIT;
  h.status = NNRPC_ABORTED;
  h.message = (char *)text;
  size_t ml = protobuf_c_message_pack(&h.base, meta);
  nnrpc__env_put(body, 0);
  nnrpc__frame_put(body + NNRPC_ENV_LEN, NNRPC_F_STATUS, 0, (uint16_t)ml, 0, id);
  memcpy(body + NNRPC_ENV_LEN + NNRPC_FRAME_HDR_LEN, meta, ml);
  send_acked(body, NNRPC_ENV_LEN + NNRPC_FRAME_HDR_LEN + ml);
}

/* Waits for the CALL frame of the call just started; returns its id. */
static uint64_t take_call(void) {
  int64_t until = now_us() / 1000 + IO_MS;
  for (;;) {
    void *body;
    int left = (int)(until - now_us() / 1000);
    int n = recv_one(&body, left > 0 ? left : 0);
    FZ_CHECK(n >= 0, "the channel did not send its CALL");
    const uint8_t *p = body;
    size_t len = (size_t)n, off = NNRPC_ENV_LEN;
    uint32_t ack;
    nnrpc__frame f;
    uint64_t id = 0;
    if (nnrpc__env_get(p, len, &ack) == 0)
      while (nnrpc__frame_next(p, len, &off, &f) == 1)
        if (f.type == NNRPC_F_CALL) id = f.call_id;
    nn_freemsg(body);
    if (id) return id;
  }
}

static const nnrpc_method *find_method(const nnrpc_service *s, const char *path) {
  for (size_t i = 0; i < s->n_methods; i++)
    if (strcmp(s->methods[i].path, path) == 0) return &s->methods[i];
  FZ_CHECK(0, "no method %s", path);
  return NULL;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  char url[64];
  snprintf(url, sizeof url, "inproc://nnrpc-fuzz-client-%ld", (long)getpid());
  rep = nn_socket(AF_SP_RAW, NN_REP);
  FZ_CHECK(rep >= 0 && nn_bind(rep, url) >= 0, "cannot bind the fake server");
  /* Small limits, so that inputs of a few KiB reach them; no keepalive pings
   * (the fake server does not answer them). */
  nnrpc_channel_opts o = {.default_timeout_ms = CALL_MS, .max_recv_msg = 4096, .max_metadata_count = 8,
                          .max_metadata_bytes = 512, .keepalive_ms = 1000000000, .keepalive_timeout_ms = 1000000000,
                          .max_decode_depth = 16, .max_decode_bytes = 64 << 10, .stream_window = 4096};
  FZ_CHECK(nnrpc_channel_open(&ch, url, &o) == NNRPC_OK && nnrpc_cq_open(&cq) == NNRPC_OK, "cannot open the channel");
  methods[0] = find_method(&nnrpc_test__echo__nnrpc_service, "/nnrpc_test.Echo/Echo");
  methods[1] = find_method(&nnrpc_test__echo__nnrpc_service, "/nnrpc_test.Echo/Nest");
  methods[2] = find_method(&nnrpc_stream_test__streamer__nnrpc_service, "/nnrpc_stream_test.Streamer/Range");
  methods[3] = find_method(&nnrpc_stream_test__streamer__nnrpc_service, "/nnrpc_stream_test.Streamer/Sum");
  methods[4] = find_method(&nnrpc_stream_test__streamer__nnrpc_service, "/nnrpc_stream_test.Streamer/Chat");
  return 0;
}

/* started_us: when the call started. A status from the input may well say
 * DEADLINE_EXCEEDED; running into the deadline itself means the channel
 * missed the terminating STATUS. */
static void check_status(nnrpc_status st, const ProtobufCMessage *reply, const nnrpc_method *m, int64_t started_us) {
  FZ_CHECK(st.code >= 0 && st.code < NNRPC_CODE_COUNT && st.message, "bad status %d", st.code);
  FZ_CHECK(now_us() - started_us < CALL_MS * 1000, "the call ran into its deadline: the channel missed the STATUS");
  FZ_CHECK(!reply || (st.code == NNRPC_OK && reply->descriptor == m->output), "a reply with status %d", st.code);
  bool one_reply = m->kind == NNRPC_UNARY || m->kind == NNRPC_CLIENT_STREAMING;
  FZ_CHECK(st.code != NNRPC_OK || !one_reply || reply, "OK without the reply");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  uint8_t mode = data[0];
  const nnrpc_method *m = methods[(mode & 7) % 5];
  nnrpc_metadata *trailers = mode & 0x40 ? nnrpc_metadata_new() : NULL;
  nnrpc_call_opts opts = {.timeout_ms = CALL_MS, .trailers = trailers};
  nnrpc_call *call = NULL;
  nnrpc_stream *stream = NULL;
  NnrpcTest__EchoRequest er = NNRPC_TEST__ECHO_REQUEST__INIT;
  NnrpcTest__Node node = NNRPC_TEST__NODE__INIT;
  NnrpcStreamTest__RangeRequest rr = NNRPC_STREAM_TEST__RANGE_REQUEST__INIT;
  const ProtobufCMessage *req = m->input == &nnrpc_test__echo_request__descriptor ? &er.base
                                : m->input == &nnrpc_test__node__descriptor       ? &node.base
                                                                                  : &rr.base;
  int64_t started_us = now_us();
  if (m->kind == NNRPC_UNARY) {
    nnrpc_completion how = {.cq = cq};
    FZ_CHECK(nnrpc_unary_start(ch, m, req, &opts, &how, &call) == NNRPC_OK, "cannot start the call");
  } else {
    nnrpc_status st = nnrpc_stream_open(ch, m, m->kind == NNRPC_SERVER_STREAMING ? req : NULL, &opts, &stream);
    FZ_CHECK(st.code == NNRPC_OK, "cannot open the stream: %s", st.message);
  }
  uint64_t id = take_call();
  if (stream && m->kind != NNRPC_SERVER_STREAMING) {
    for (int i = 0; i < (mode >> 3 & 3); i++) {
      NnrpcStreamTest__Num n = NNRPC_STREAM_TEST__NUM__INIT;
      n.value = i;
      nnrpc_stream_write(stream, &n.base);
    }
    if (mode & 0x20) nnrpc_stream_close_send(stream);
  }

  /* The input's messages, then the terminator. */
  const uint8_t *p = data + 1, *rec;
  size_t left = size - 1, len, unacked = 0;
  uint8_t *body = malloc(size + 1);
  FZ_CHECK(body, "out of memory");
  while (fz_next_record(&p, &left, &rec, &len)) {
    memcpy(body, rec, len);
    uint32_t seq;
    if (nnrpc__env_get(body, len, &seq) == 0) {
      size_t off = NNRPC_ENV_LEN, at = off;
      nnrpc__frame f;
      while (nnrpc__frame_next(body, len, &off, &f) == 1) {
        if (f.call_id == 1 || f.call_id == 2) nnrpc__put64(body + at + 8, f.call_id == 1 ? id : prev_id);
        at = off;
      }
      send_acked(body, len);
    } else if (unacked++ < MAX_UNACKED) {
      send_unacked(body, len);
    }
  }
  free(body);
  send_terminator(id);
  prev_id = id;

  /* The call ends now, with a status. */
  ProtobufCMessage *reply = NULL;
  nnrpc_status st;
  if (call) {
    nnrpc_call *done = nnrpc_cq_next(cq, IO_MS);
    FZ_CHECK(done == call, "the call did not complete");
    st = nnrpc_unary_finish(call, &reply, trailers);
  } else {
    ProtobufCMessage *msg;
    for (int i = 0; nnrpc_stream_read(stream, &msg); i++) {
      FZ_CHECK(msg && msg->descriptor == m->output, "stream_read gave a wrong message");
      protobuf_c_message_free_unpacked(msg, NULL);
      FZ_CHECK(i < 100000, "a stream that does not end");
    }
    st = nnrpc_stream_finish(stream, m->kind == NNRPC_CLIENT_STREAMING ? &reply : NULL, trailers);
  }
  check_status(st, reply, m, started_us);
  if (reply) protobuf_c_message_free_unpacked(reply, NULL);
  nnrpc_metadata_free(trailers);
  /* Whatever else the channel sent (credit, CANCEL): not needed. */
  void *rest;
  while (recv_one(&rest, 0) >= 0) nn_freemsg(rest);
  return 0;
}
