/* The wire layer and the decoding limits, tested directly against the
 * runtime's internal functions (the static library exports them): envelope
 * and frame parsing, the protobuf depth walk, decode budgets, CallHeader
 * limits, and the public metadata and status helpers. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <pthread.h>
#include <string.h>

#include "callhdr.h"
#include "internal.h"
#include "wire.h"

#include "helpers/harness.h"

/* ---------------------------------------------------------------- helpers */

/* A small deterministic generator (xorshift64*): same garbage on every run. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static uint64_t rnd(void) {
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return rng_state * 0x2545f4914f6cdd1dULL;
}

static size_t put_varint(uint8_t *p, uint64_t v) {
  size_t n = 0;
  do {
    p[n] = (uint8_t)(v & 0x7f);
    v >>= 7;
    if (v) p[n] |= 0x80;
    n++;
  } while (v);
  return n;
}

/* Encodes a chain of `depth` nnrpc_test.Node messages by hand (field 1,
 * length-delimited, each holding the next), so no protobuf-c recursion is
 * involved in building it. depth counts messages: the outermost is 1 and the
 * innermost is empty. Returns a malloc'ed buffer; *len gets its size. */
static uint8_t *nested_nodes(size_t depth, size_t *len) {
  size_t cap = depth * 6 + 16, start = cap;
  uint8_t *buf = malloc(cap);
  assert_non_null(buf);
  for (size_t i = 1; i < depth; i++) {
    uint8_t v[10];
    size_t inner = cap - start, n = put_varint(v, inner);
    start -= n;
    memcpy(buf + start, v, n);
    buf[--start] = 0x0a; /* field 1, wire type 2 */
  }
  *len = cap - start;
  memmove(buf, buf + start, *len);
  return buf;
}

static size_t chain_depth(const NnrpcTest__Node *n) {
  size_t d = 0;
  for (; n; n = n->child) d++;
  return d;
}

/* Packs a CallHeader into a malloc'ed buffer. */
static uint8_t *pack_header(const Nnrpc__Wire__CallHeader *h, size_t *len) {
  *len = protobuf_c_message_get_packed_size(&h->base);
  uint8_t *p = malloc(*len ? *len : 1);
  assert_non_null(p);
  assert_int_equal(protobuf_c_message_pack(&h->base, p), *len);
  return p;
}

/* Builds and packs a CALL header carrying md as headers. */
static uint8_t *pack_call_header(const char *method, const nnrpc_metadata *md, size_t *len) {
  nnrpc__hdr h;
  assert_int_equal(nnrpc__hdr_build(&h, method, 1000, md, 0, NULL, 4096), 0);
  uint8_t *p = pack_header(&h.pb, len);
  nnrpc__hdr_done(&h);
  return p;
}

/* ---------------------------------------------------------------- byte helpers */

static void test_integer_helpers_are_big_endian_and_round_trip(void **state) {
  (void)state;
  uint8_t b[8];
  nnrpc__put16(b, 0xa1b2);
  assert_int_equal(b[0], 0xa1);
  assert_int_equal(b[1], 0xb2);
  assert_int_equal(nnrpc__get16(b), 0xa1b2);
  nnrpc__put32(b, 0xdeadbeef);
  assert_memory_equal(b, "\xde\xad\xbe\xef", 4);
  assert_int_equal(nnrpc__get32(b), 0xdeadbeefu);
  nnrpc__put64(b, 0x0102030405060708ULL);
  assert_memory_equal(b, "\x01\x02\x03\x04\x05\x06\x07\x08", 8);
  assert_true(nnrpc__get64(b) == 0x0102030405060708ULL);
  nnrpc__put64(b, UINT64_MAX);
  assert_true(nnrpc__get64(b) == UINT64_MAX);
}

/* ---------------------------------------------------------------- envelope */

static void test_envelope_round_trips_seq_in_documented_layout(void **state) {
  (void)state;
  const uint32_t seqs[] = {0, 1, 0x12345678u, UINT32_MAX};
  for (size_t i = 0; i < sizeof seqs / sizeof seqs[0]; i++) {
    uint8_t env[NNRPC_ENV_LEN];
    memset(env, 0xcc, sizeof env);
    nnrpc__env_put(env, seqs[i]);
    assert_int_equal(env[0], NNRPC_WIRE_VERSION);
    assert_int_equal(env[1], 0); /* flags */
    assert_int_equal(env[2], 0); /* reserved */
    assert_int_equal(env[3], 0);
    assert_int_equal(nnrpc__get32(env + 4), seqs[i]);
    uint32_t seq = 0xabababab;
    assert_int_equal(nnrpc__env_get(env, sizeof env, &seq), 0);
    assert_int_equal(seq, seqs[i]);
  }
}

static void test_envelope_shorter_than_8_bytes_is_rejected_with_minus_1(void **state) {
  (void)state;
  uint8_t env[NNRPC_ENV_LEN];
  nnrpc__env_put(env, 7);
  for (size_t len = 0; len < NNRPC_ENV_LEN; len++) {
    /* A heap copy of exactly len bytes: ASan flags any read past it. */
    uint8_t *p = malloc(len ? len : 1);
    assert_non_null(p);
    memcpy(p, env, len);
    uint32_t seq = 0x55555555;
    assert_int_equal(nnrpc__env_get(p, len, &seq), -1);
    assert_int_equal(seq, 0x55555555); /* untouched on error */
    free(p);
  }
}

static void test_envelope_with_unknown_version_is_rejected_with_minus_2(void **state) {
  (void)state;
  const uint8_t versions[] = {0, 2, 0x80, 0xff};
  for (size_t i = 0; i < sizeof versions; i++) {
    uint8_t env[NNRPC_ENV_LEN];
    nnrpc__env_put(env, 9);
    env[0] = versions[i];
    uint32_t seq = 0;
    assert_int_equal(nnrpc__env_get(env, sizeof env, &seq), -2);
  }
}

static void test_envelope_reserved_flags_are_ignored(void **state) {
  (void)state;
  uint8_t env[NNRPC_ENV_LEN];
  nnrpc__env_put(env, 42);
  env[1] = 0xff; /* "reserved; ignored by receivers" */
  env[2] = env[3] = 0xff;
  uint32_t seq = 0;
  assert_int_equal(nnrpc__env_get(env, sizeof env, &seq), 0);
  assert_int_equal(seq, 42);
}

/* ---------------------------------------------------------------- frames */

static void test_frame_put_then_next_round_trips_one_frame(void **state) {
  (void)state;
  const char meta[] = "META", payload[] = "the payload";
  size_t ml = 4, pl = sizeof payload - 1, len = NNRPC_FRAME_HDR_LEN + ml + pl;
  uint8_t *buf = malloc(len);
  assert_non_null(buf);
  nnrpc__frame_put(buf, NNRPC_F_CALL, NNRPC_FF_HAS_MESSAGE | NNRPC_FF_END_STREAM, (uint16_t)ml,
                   (uint32_t)pl, 0x1122334455667788ULL);
  memcpy(buf + NNRPC_FRAME_HDR_LEN, meta, ml);
  memcpy(buf + NNRPC_FRAME_HDR_LEN + ml, payload, pl);
  /* the header layout of docs/protocol.md */
  assert_int_equal(buf[0], NNRPC_F_CALL);
  assert_int_equal(buf[1], NNRPC_FF_HAS_MESSAGE | NNRPC_FF_END_STREAM);
  assert_int_equal(nnrpc__get16(buf + 2), ml);
  assert_int_equal(nnrpc__get32(buf + 4), pl);
  assert_true(nnrpc__get64(buf + 8) == 0x1122334455667788ULL);

  size_t off = 0;
  nnrpc__frame f;
  assert_int_equal(nnrpc__frame_next(buf, len, &off, &f), 1);
  assert_int_equal(f.type, NNRPC_F_CALL);
  assert_int_equal(f.flags, NNRPC_FF_HAS_MESSAGE | NNRPC_FF_END_STREAM);
  assert_int_equal(f.meta_len, ml);
  assert_int_equal(f.payload_len, pl);
  assert_true(f.call_id == 0x1122334455667788ULL);
  assert_ptr_equal(f.meta, buf + NNRPC_FRAME_HDR_LEN);
  assert_memory_equal(f.meta, meta, ml);
  assert_ptr_equal(f.payload, buf + NNRPC_FRAME_HDR_LEN + ml);
  assert_memory_equal(f.payload, payload, pl);
  assert_int_equal(off, len);
  assert_int_equal(nnrpc__frame_next(buf, len, &off, &f), 0); /* nothing more */
  assert_int_equal(off, len);
  free(buf);
}

static void test_several_frames_back_to_back_after_envelope_parse_in_order(void **state) {
  (void)state;
  enum { N = 5 };
  size_t len = NNRPC_ENV_LEN, at[N];
  uint8_t *buf = malloc(NNRPC_ENV_LEN + N * (NNRPC_FRAME_HDR_LEN + 16));
  assert_non_null(buf);
  nnrpc__env_put(buf, 3);
  for (int i = 0; i < N; i++) { /* frame i: i bytes of meta, 2*i of payload */
    at[i] = len;
    nnrpc__frame_put(buf + len, (uint8_t)(i + 1), (uint8_t)i, (uint16_t)i, (uint32_t)(2 * i),
                     (uint64_t)100 + (uint64_t)i);
    len += NNRPC_FRAME_HDR_LEN;
    memset(buf + len, 'm', (size_t)i);
    len += (size_t)i;
    memset(buf + len, 'p', (size_t)(2 * i));
    len += (size_t)(2 * i);
  }
  size_t off = NNRPC_ENV_LEN;
  nnrpc__frame f;
  for (int i = 0; i < N; i++) {
    assert_int_equal(nnrpc__frame_next(buf, len, &off, &f), 1);
    assert_int_equal(f.type, i + 1);
    assert_int_equal(f.flags, i);
    assert_int_equal(f.meta_len, i);
    assert_int_equal(f.payload_len, 2 * i);
    assert_true(f.call_id == (uint64_t)100 + (uint64_t)i);
    assert_ptr_equal(f.meta, buf + at[i] + NNRPC_FRAME_HDR_LEN);
    for (int j = 0; j < 2 * i; j++) assert_int_equal(f.payload[j], 'p');
  }
  assert_int_equal(off, len);
  assert_int_equal(nnrpc__frame_next(buf, len, &off, &f), 0);
  free(buf);
}

static void test_empty_buffer_has_no_frames(void **state) {
  (void)state;
  size_t off = 0;
  nnrpc__frame f;
  uint8_t one = 0;
  assert_int_equal(nnrpc__frame_next(&one, 0, &off, &f), 0);
  assert_int_equal(off, 0);
  /* an envelope alone (an ack) is a message with no frames */
  uint8_t env[NNRPC_ENV_LEN];
  nnrpc__env_put(env, 1);
  off = NNRPC_ENV_LEN;
  assert_int_equal(nnrpc__frame_next(env, sizeof env, &off, &f), 0);
}

static void test_frame_with_empty_meta_and_payload_is_exactly_16_bytes(void **state) {
  (void)state;
  uint8_t *buf = malloc(NNRPC_FRAME_HDR_LEN);
  assert_non_null(buf);
  nnrpc__frame_put(buf, NNRPC_F_CANCEL, 0, 0, 0, 5);
  size_t off = 0;
  nnrpc__frame f;
  assert_int_equal(nnrpc__frame_next(buf, NNRPC_FRAME_HDR_LEN, &off, &f), 1);
  assert_int_equal(off, NNRPC_FRAME_HDR_LEN);
  assert_int_equal(f.meta_len, 0);
  assert_int_equal(f.payload_len, 0);
  free(buf);
}

static void test_truncated_frame_header_is_malformed_and_offset_unchanged(void **state) {
  (void)state;
  uint8_t hdr[NNRPC_FRAME_HDR_LEN];
  nnrpc__frame_put(hdr, NNRPC_F_PING, 0, 0, 0, 0);
  for (size_t len = 1; len < NNRPC_FRAME_HDR_LEN; len++) {
    uint8_t *p = malloc(len);
    assert_non_null(p);
    memcpy(p, hdr, len);
    size_t off = 0;
    nnrpc__frame f;
    assert_int_equal(nnrpc__frame_next(p, len, &off, &f), -1);
    assert_int_equal(off, 0);
    free(p);
  }
}

static void test_frame_whose_meta_runs_past_the_end_is_malformed(void **state) {
  (void)state;
  size_t len = NNRPC_FRAME_HDR_LEN + 5;
  uint8_t *buf = calloc(1, len);
  assert_non_null(buf);
  nnrpc__frame_put(buf, NNRPC_F_CALL, 0, 6, 0, 1); /* one byte short */
  size_t off = 0;
  nnrpc__frame f;
  assert_int_equal(nnrpc__frame_next(buf, len, &off, &f), -1);
  assert_int_equal(off, 0);
  nnrpc__frame_put(buf, NNRPC_F_CALL, 0, UINT16_MAX, 0, 1);
  assert_int_equal(nnrpc__frame_next(buf, len, &off, &f), -1);
  nnrpc__frame_put(buf, NNRPC_F_CALL, 0, 5, 0, 1); /* exact fit */
  assert_int_equal(nnrpc__frame_next(buf, len, &off, &f), 1);
  assert_int_equal(off, len);
  free(buf);
}

static void test_frame_whose_payload_runs_one_byte_past_the_end_is_malformed(void **state) {
  (void)state;
  size_t len = NNRPC_FRAME_HDR_LEN + 3 + 10;
  uint8_t *buf = calloc(1, len);
  assert_non_null(buf);
  nnrpc__frame_put(buf, NNRPC_F_MESSAGE, 0, 3, 11, 1);
  size_t off = 0;
  nnrpc__frame f;
  assert_int_equal(nnrpc__frame_next(buf, len, &off, &f), -1);
  assert_int_equal(off, 0);
  nnrpc__frame_put(buf, NNRPC_F_MESSAGE, 0, 3, 10, 1);
  assert_int_equal(nnrpc__frame_next(buf, len, &off, &f), 1);
  assert_int_equal(off, len);
  free(buf);
}

static void test_frame_claiming_4gib_payload_is_rejected_without_wrap(void **state) {
  (void)state;
  /* meta_len + payload_len would wrap a 32-bit sum to a small number; the
   * parser must compare, not add. */
  const struct { uint16_t meta; uint32_t payload; } lies[] = {
      {0, UINT32_MAX}, {1, UINT32_MAX}, {4, UINT32_MAX}, {UINT16_MAX, UINT32_MAX},
      {4, UINT32_MAX - 3}, {0, 0x80000000u}};
  size_t len = NNRPC_FRAME_HDR_LEN + 4;
  uint8_t *buf = calloc(1, len);
  assert_non_null(buf);
  for (size_t i = 0; i < sizeof lies / sizeof lies[0]; i++) {
    nnrpc__frame_put(buf, NNRPC_F_CALL, NNRPC_FF_HAS_MESSAGE, lies[i].meta, lies[i].payload, 9);
    size_t off = 0;
    nnrpc__frame f;
    assert_int_equal(nnrpc__frame_next(buf, len, &off, &f), -1);
    assert_int_equal(off, 0);
  }
  free(buf);
}

static void test_frame_offsets_at_end_past_end_and_mid_buffer(void **state) {
  (void)state;
  size_t len = 2 * NNRPC_FRAME_HDR_LEN + 2;
  uint8_t *buf = calloc(1, len);
  assert_non_null(buf);
  nnrpc__frame_put(buf, NNRPC_F_PING, 0, 0, 2, 1);
  nnrpc__frame_put(buf + NNRPC_FRAME_HDR_LEN + 2, NNRPC_F_CANCEL, 0, 0, 0, 2);
  nnrpc__frame f;
  size_t off = NNRPC_FRAME_HDR_LEN + 2; /* start at the second frame */
  assert_int_equal(nnrpc__frame_next(buf, len, &off, &f), 1);
  assert_true(f.call_id == 2);
  assert_int_equal(off, len);
  off = len + 1; /* past the end: malformed, never a read */
  assert_int_equal(nnrpc__frame_next(buf, len, &off, &f), -1);
  assert_int_equal(off, len + 1);
  off = SIZE_MAX;
  assert_int_equal(nnrpc__frame_next(buf, len, &off, &f), -1);
  off = 1; /* inside the first frame: what follows is only 33 bytes of junk */
  int r = nnrpc__frame_next(buf, len, &off, &f);
  assert_true(r == -1 || (r == 1 && off <= len));
  free(buf);
}

/* Parses buf as frames and checks every frame lies inside it. Returns the
 * number of frames; fails if parsing does not end within the bound. */
static int walk_frames(const uint8_t *buf, size_t len, size_t start) {
  size_t off = start;
  nnrpc__frame f;
  int n = 0, r;
  while ((r = nnrpc__frame_next(buf, len, &off, &f)) == 1) {
    assert_true(f.meta >= buf && f.meta + f.meta_len <= buf + len);
    assert_true(f.payload == f.meta + f.meta_len && f.payload + f.payload_len <= buf + len);
    assert_true(off <= len);
    n++;
    assert_true((size_t)n <= len / NNRPC_FRAME_HDR_LEN); /* each frame takes >= 16 bytes */
  }
  assert_true(r == 0 || r == -1);
  return n;
}

static void test_random_garbage_never_reads_out_of_bounds_and_always_terminates(void **state) {
  (void)state;
  rng_state = 0x243f6a8885a308d3ULL; /* fixed seed */
  int rounds = th_count(200000), frames = 0, envs = 0, decoded = 0;
  for (int i = 0; i < rounds; i++) {
    size_t len = (size_t)(rnd() % 257);
    /* exactly len bytes on the heap, so ASan and valgrind see any overrun */
    uint8_t *buf = malloc(len ? len : 1);
    assert_non_null(buf);
    for (size_t j = 0; j < len; j++) buf[j] = (uint8_t)rnd();
    if (rnd() & 1) { /* plausible headers with small lengths, to reach multi-frame paths */
      size_t o = rnd() & 1 ? NNRPC_ENV_LEN : 0;
      while (o + NNRPC_FRAME_HDR_LEN <= len) {
        uint64_t r = rnd();
        uint16_t ml = (uint16_t)(r % 24);
        uint32_t pl = (r >> 8) % 7 == 0 ? (uint32_t)(r >> 16) : (uint32_t)((r >> 16) % 40);
        nnrpc__frame_put(buf + o, (uint8_t)(r >> 40), 0, ml, pl, r);
        o += NNRPC_FRAME_HDR_LEN + ml + pl;
      }
      if (len && rnd() % 3 == 0) buf[rnd() % len] ^= (uint8_t)(1u << (rnd() % 8));
    }
    uint32_t seq;
    if (nnrpc__env_get(buf, len, &seq) == 0) envs++;
    frames += walk_frames(buf, len, 0);
    if (len >= NNRPC_ENV_LEN) frames += walk_frames(buf, len, NNRPC_ENV_LEN);

    int node_rc = nnrpc__pb_check(&nnrpc_test__node__descriptor, buf, len, 64);
    assert_true(node_rc == 0 || node_rc == NNRPC__PB_MALFORMED || node_rc == NNRPC__PB_TOO_DEEP);
    int rc = nnrpc__pb_check(&nnrpc_test__echo_request__descriptor, buf, len, 64);
    assert_true(rc == 0 || rc == NNRPC__PB_MALFORMED || rc == NNRPC__PB_TOO_DEEP);

    nnrpc__budget b;
    nnrpc__budget_init(&b, 1u << 20);
    bool too_deep;
    const char *why = NULL;
    ProtobufCMessage *m =
        nnrpc__decode(&nnrpc_test__node__descriptor, buf, len, 64, &b.pb, &too_deep, &why);
    assert_int_equal(too_deep, node_rc == NNRPC__PB_TOO_DEEP);
    if (node_rc) assert_null(m); /* protobuf-c never sees what the walk refused */
    if (m) {
      decoded++;
      protobuf_c_message_free_unpacked(m, NULL);
    } else {
      assert_non_null(why);
    }

    nnrpc__arena a;
    nnrpc__arena_init(&a, 1u << 20);
    Nnrpc__Wire__CallHeader *h = NULL;
    why = NULL;
    rc = nnrpc__hdr_decode(buf, len, &a.pb, 8192, 64, &h, &why);
    assert_true(rc == NNRPC_OK ? h != NULL : h == NULL && why != NULL);
    nnrpc__arena_free(&a);
    free(buf);
  }
  /* the generator did reach the interesting paths */
  assert_true(frames > 0);
  assert_true(envs > 0);
  assert_true(decoded > 0);
}

/* ---------------------------------------------------------------- protobuf depth and budget */

static void test_node_nested_10000_deep_is_rejected_by_depth_limit(void **state) {
  (void)state;
  size_t len;
  uint8_t *p = nested_nodes(10000, &len);
  assert_int_equal(nnrpc__pb_check(&nnrpc_test__node__descriptor, p, len, 64), NNRPC__PB_TOO_DEEP);
  nnrpc__budget b;
  nnrpc__budget_init(&b, 64u << 20);
  bool too_deep = false;
  const char *why = NULL;
  ProtobufCMessage *m =
      nnrpc__decode(&nnrpc_test__node__descriptor, p, len, 64, &b.pb, &too_deep, &why);
  assert_null(m);
  assert_true(too_deep); /* told apart from malformed bytes */
  assert_non_null(why);
  assert_non_null(strstr(why, "deeper"));
  assert_int_equal(b.used, 0); /* rejected before protobuf-c allocated anything */
  free(p);
}

static void test_node_50_deep_decodes_at_depth_limit_64(void **state) {
  (void)state;
  size_t len;
  uint8_t *p = nested_nodes(50, &len);
  assert_int_equal(nnrpc__pb_check(&nnrpc_test__node__descriptor, p, len, 64), 0);
  bool too_deep = true;
  const char *why = NULL;
  ProtobufCMessage *m =
      nnrpc__decode(&nnrpc_test__node__descriptor, p, len, 64, NULL, &too_deep, &why);
  assert_non_null(m);
  assert_false(too_deep);
  assert_int_equal(chain_depth((NnrpcTest__Node *)m), 50);
  protobuf_c_message_free_unpacked(m, NULL);
  free(p);
}

static void test_depth_limit_counts_messages_64_pass_65_fail(void **state) {
  (void)state;
  size_t len;
  uint8_t *p = nested_nodes(64, &len);
  assert_int_equal(nnrpc__pb_check(&nnrpc_test__node__descriptor, p, len, 64), 0);
  free(p);
  p = nested_nodes(65, &len);
  assert_int_equal(nnrpc__pb_check(&nnrpc_test__node__descriptor, p, len, 64), NNRPC__PB_TOO_DEEP);
  assert_int_equal(nnrpc__pb_check(&nnrpc_test__node__descriptor, p, len, 65), 0);
  free(p);
  /* limit 1: a bare message passes, any sub-message is too deep */
  p = nested_nodes(2, &len);
  assert_int_equal(nnrpc__pb_check(&nnrpc_test__node__descriptor, p, len, 1), NNRPC__PB_TOO_DEEP);
  assert_int_equal(nnrpc__pb_check(&nnrpc_test__node__descriptor, p, 0, 1), 0);
  free(p);
}

static void test_depth_walk_rejects_malformed_protobuf(void **state) {
  (void)state;
  const struct { const char *bytes; size_t len; } bad[] = {
      {"\x0a", 1},             /* tag, no length */
      {"\x0a\x05\x00", 3},     /* length past the end */
      {"\x12\x80", 2},         /* unterminated varint length */
      {"\x08", 1},             /* varint field with no value */
      {"\x0b", 1},             /* group start: unsupported */
      {"\x0c", 1},             /* group end */
      {"\x0e\x00", 2},         /* wire type 6 */
      {"\x00\x00", 2},         /* field number 0 */
      {"\x09\x01\x02", 3},     /* fixed64 cut short */
      {"\x0d\x01", 2},         /* fixed32 cut short */
      {"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 11}, /* 11-byte varint tag */
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    uint8_t *p = malloc(bad[i].len);
    assert_non_null(p);
    memcpy(p, bad[i].bytes, bad[i].len);
    assert_int_equal(nnrpc__pb_check(&nnrpc_test__node__descriptor, p, bad[i].len, 64),
                     NNRPC__PB_MALFORMED);
    free(p);
  }
}

static void test_unknown_length_delimited_fields_are_not_descended(void **state) {
  (void)state;
  /* A deep chain under an unknown field number is opaque bytes to protobuf-c,
   * so the walk must not count it against the limit. */
  size_t inner_len;
  uint8_t *inner = nested_nodes(200, &inner_len);
  uint8_t *p = malloc(inner_len + 8);
  assert_non_null(p);
  p[0] = (uint8_t)(99 << 3 | 2) | 0x80; /* field 99, two-byte tag */
  p[1] = (uint8_t)((99 << 3 | 2) >> 7);
  size_t n = 2 + put_varint(p + 2, inner_len);
  memcpy(p + n, inner, inner_len);
  assert_int_equal(nnrpc__pb_check(&nnrpc_test__node__descriptor, p, n + inner_len, 4), 0);
  free(inner);
  free(p);
}

static void test_decode_budget_smaller_than_message_is_refused_without_leak(void **state) {
  (void)state;
  size_t len;
  uint8_t *p = nested_nodes(50, &len);
  bool too_deep;
  const char *why = NULL;

  /* malloc-backed budget: the partial message is freed, nothing leaks */
  nnrpc__budget b;
  nnrpc__budget_init(&b, 256);
  ProtobufCMessage *m =
      nnrpc__decode(&nnrpc_test__node__descriptor, p, len, 64, &b.pb, &too_deep, &why);
  assert_null(m);
  assert_false(too_deep); /* the budget, not the depth, refused it */
  assert_true(b.over);
  assert_true(b.used <= 256);
  assert_non_null(why);

  /* arena budget: refused the same way, memory goes with the arena */
  nnrpc__arena a;
  nnrpc__arena_init(&a, 512);
  why = NULL;
  m = nnrpc__decode(&nnrpc_test__node__descriptor, p, len, 64, &a.pb, &too_deep, &why);
  assert_null(m);
  assert_true(a.over);
  assert_true(a.used <= 512);
  assert_non_null(why);
  nnrpc__arena_free(&a);

  /* a budget that fits accepts the same bytes */
  nnrpc__budget_init(&b, 1u << 20);
  m = nnrpc__decode(&nnrpc_test__node__descriptor, p, len, 64, &b.pb, &too_deep, &why);
  assert_non_null(m);
  assert_false(b.over);
  assert_true(b.used >= 50 * sizeof(NnrpcTest__Node));
  assert_int_equal(chain_depth((NnrpcTest__Node *)m), 50);
  protobuf_c_message_free_unpacked(m, NULL);

  nnrpc__arena_init(&a, 1u << 20);
  m = nnrpc__decode(&nnrpc_test__node__descriptor, p, len, 64, &a.pb, &too_deep, &why);
  assert_non_null(m);
  assert_false(a.over);
  nnrpc__arena_free(&a); /* frees the message too */
  free(p);
}

static void test_arena_refuses_past_budget_and_overflowing_sizes(void **state) {
  (void)state;
  nnrpc__arena a;
  nnrpc__arena_init(&a, 4096);
  void *x = nnrpc__arena_alloc(&a, 4000);
  assert_non_null(x);
  assert_int_equal((uintptr_t)x % 16, 0);
  assert_null(nnrpc__arena_alloc(&a, 200));
  assert_true(a.over);
  assert_null(nnrpc__arena_alloc(&a, SIZE_MAX)); /* rounding up must not wrap to 0 */
  assert_null(nnrpc__arena_alloc(&a, SIZE_MAX - 7));
  nnrpc__arena_free(&a);
  nnrpc__arena_init(&a, SIZE_MAX);
  assert_null(nnrpc__arena_alloc(&a, SIZE_MAX - 3));
  assert_non_null(nnrpc__arena_alloc(&a, 20000)); /* a chunk of its own */
  nnrpc__arena_free(&a);
}

static void *big_arena_chunk(void *arg) {
  (void)arg;
  nnrpc__arena a;
  nnrpc__arena_init(&a, 64u << 20);
  void *p = nnrpc__arena_alloc(&a, 1u << 20);
  memset(p, 1, 1u << 20);
  nnrpc__arena_free(&a);
  return p;
}

/* A thread's big decodes reuse one mapped chunk (no page faults per call);
 * an arena that grew past a few MiB (a bomb) keeps nothing. */
static void test_arena_reuses_a_threads_big_chunk_but_not_a_bombs(void **state) {
  (void)state;
  void *first = big_arena_chunk(NULL), *second = big_arena_chunk(NULL);
  assert_ptr_equal(first, second);
  assert_true(nnrpc__arena_kept() >= (1u << 20));
  /* a bomb-sized arena: takes the kept chunk, keeps none of its own */
  nnrpc__arena a;
  nnrpc__arena_init(&a, 64u << 20);
  for (int i = 0; i < 24; i++) assert_non_null(nnrpc__arena_alloc(&a, 1u << 20));
  assert_true(a.used > (4u << 20));
  nnrpc__arena_free(&a);
  assert_int_equal(nnrpc__arena_kept(), 0);
  /* small arenas neither take nor keep one */
  nnrpc__arena_init(&a, 64u << 20);
  assert_non_null(nnrpc__arena_alloc(&a, 100000));
  nnrpc__arena_free(&a);
  assert_int_equal(nnrpc__arena_kept(), 0);
  /* other threads keep their own */
  pthread_t t;
  void *other;
  assert_int_equal(pthread_create(&t, NULL, big_arena_chunk, NULL), 0);
  pthread_join(t, &other);
  assert_non_null(other);
  assert_int_equal(nnrpc__arena_kept(), 0);
}

/* ---------------------------------------------------------------- CallHeader */

static void test_call_header_round_trips_method_and_metadata(void **state) {
  (void)state;
  nnrpc_metadata *md = nnrpc_metadata_new();
  assert_int_equal(nnrpc_metadata_add_str(md, "x-a", "1"), NNRPC_OK);
  assert_int_equal(nnrpc_metadata_add(md, "bin", "\0\1\0", 3), NNRPC_OK);
  size_t len;
  uint8_t *p = pack_call_header("/nnrpc_test.Echo/Echo", md, &len);
  nnrpc__arena a;
  nnrpc__arena_init(&a, 1u << 20);
  Nnrpc__Wire__CallHeader *h = NULL;
  const char *why = NULL;
  assert_int_equal(nnrpc__hdr_decode(p, len, &a.pb, 8192, 64, &h, &why), NNRPC_OK);
  assert_non_null(h);
  assert_string_equal(h->method, "/nnrpc_test.Echo/Echo");
  assert_true(h->timeout_us == 1000);
  assert_true(h->max_reply_bytes == 4096);
  assert_int_equal(h->n_metadata, 2);
  nnrpc_metadata *back = nnrpc_metadata_new();
  assert_int_equal(nnrpc__md_from_wire(back, h), NNRPC_OK);
  assert_int_equal(nnrpc_metadata_count(back), 2);
  size_t vl;
  const char *v = nnrpc_metadata_get(back, "bin", &vl);
  assert_non_null(v);
  assert_int_equal(vl, 3);
  assert_memory_equal(v, "\0\1\0", 3);
  nnrpc_metadata_free(back);
  nnrpc__arena_free(&a);
  nnrpc_metadata_free(md);
  free(p);
}

static void test_call_header_over_max_metadata_count_is_resource_exhausted(void **state) {
  (void)state;
  nnrpc_metadata *md = nnrpc_metadata_new();
  for (int i = 0; i < 65; i++) {
    char k[16];
    snprintf(k, sizeof k, "k%d", i);
    assert_int_equal(nnrpc_metadata_add_str(md, k, "v"), NNRPC_OK);
  }
  size_t len;
  uint8_t *p = pack_call_header("/m", md, &len);
  nnrpc__arena a;
  nnrpc__arena_init(&a, 1u << 20);
  Nnrpc__Wire__CallHeader *h = (Nnrpc__Wire__CallHeader *)p; /* must be reset to NULL */
  const char *why = NULL;
  assert_int_equal(nnrpc__hdr_decode(p, len, &a.pb, 1u << 20, 64, &h, &why),
                   NNRPC_RESOURCE_EXHAUSTED);
  assert_null(h);
  assert_non_null(why);
  nnrpc__arena_free(&a);
  /* exactly at the limit is fine */
  nnrpc__arena_init(&a, 1u << 20);
  assert_int_equal(nnrpc__hdr_decode(p, len, &a.pb, 1u << 20, 65, &h, &why), NNRPC_OK);
  assert_int_equal(h->n_metadata, 65);
  nnrpc__arena_free(&a);
  nnrpc_metadata_free(md);
  free(p);
}

static void test_call_header_over_max_metadata_bytes_is_resource_exhausted(void **state) {
  (void)state;
  char *big = malloc(8192);
  assert_non_null(big);
  memset(big, 'v', 8192);
  nnrpc_metadata *md = nnrpc_metadata_new();
  /* keys and values count: "k" + 8191 bytes = 8192, the default limit */
  assert_int_equal(nnrpc_metadata_add(md, "k", big, 8191), NNRPC_OK);
  size_t len;
  uint8_t *p = pack_call_header("/m", md, &len);
  nnrpc__arena a;
  nnrpc__arena_init(&a, 1u << 20);
  Nnrpc__Wire__CallHeader *h = NULL;
  const char *why = NULL;
  assert_int_equal(nnrpc__hdr_decode(p, len, &a.pb, 8192, 64, &h, &why), NNRPC_OK);
  nnrpc__arena_free(&a);
  free(p);

  nnrpc_metadata_clear(md);
  assert_int_equal(nnrpc_metadata_add(md, "k", big, 8192), NNRPC_OK); /* one byte over */
  p = pack_call_header("/m", md, &len);
  nnrpc__arena_init(&a, 1u << 20);
  why = NULL;
  assert_int_equal(nnrpc__hdr_decode(p, len, &a.pb, 8192, 64, &h, &why), NNRPC_RESOURCE_EXHAUSTED);
  assert_null(h);
  assert_non_null(why);
  nnrpc__arena_free(&a);
  free(p);
  nnrpc_metadata_free(md);
  free(big);
}

static void test_call_header_garbage_bytes_are_an_error(void **state) {
  (void)state;
  size_t good_len;
  uint8_t *good = pack_call_header("/nnrpc_test.Echo/Echo", NULL, &good_len);
  const struct { const uint8_t *bytes; size_t len; } bad[] = {
      {(const uint8_t *)"\xff\xff\xff\xff\xff\xff\xff\xff", 8},
      {(const uint8_t *)"\x0a\x7f" "abc", 5}, /* method longer than the bytes */
      {(const uint8_t *)"\x1a\x03\x0a\x09z", 5}, /* metadata entry with a bad inner length */
      {(const uint8_t *)"\x0b", 1},
      {good, good_len - 1}, /* a real header cut short */
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    uint8_t *p = malloc(bad[i].len);
    assert_non_null(p);
    memcpy(p, bad[i].bytes, bad[i].len);
    nnrpc__arena a;
    nnrpc__arena_init(&a, 1u << 20);
    Nnrpc__Wire__CallHeader *h = (Nnrpc__Wire__CallHeader *)p;
    const char *why = NULL;
    int rc = nnrpc__hdr_decode(p, bad[i].len, &a.pb, 8192, 64, &h, &why);
    assert_int_equal(rc, NNRPC_INTERNAL); /* the server answers it as INVALID_ARGUMENT */
    assert_null(h);
    assert_non_null(why);
    nnrpc__arena_free(&a);
    free(p);
  }
  free(good);
}

static void test_call_header_with_invalid_metadata_key_on_the_wire_is_an_error(void **state) {
  (void)state;
  const char *keys[] = {"Upper", "", "has space", "x\xff"};
  for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
    Nnrpc__Wire__Metadata e = NNRPC__WIRE__METADATA__INIT, *ep = &e;
    e.key = (char *)keys[i];
    Nnrpc__Wire__CallHeader hh = NNRPC__WIRE__CALL_HEADER__INIT;
    hh.method = (char *)"/m";
    hh.n_metadata = 1;
    hh.metadata = &ep;
    size_t len;
    uint8_t *p = pack_header(&hh, &len);
    nnrpc__arena a;
    nnrpc__arena_init(&a, 1u << 20);
    Nnrpc__Wire__CallHeader *h = NULL;
    const char *why = NULL;
    assert_int_not_equal(nnrpc__hdr_decode(p, len, &a.pb, 8192, 64, &h, &why), NNRPC_OK);
    assert_null(h);
    assert_non_null(why);
    nnrpc__arena_free(&a);
    free(p);
  }
}

/* ---------------------------------------------------------------- metadata API */

static void test_metadata_rejects_bad_keys_with_invalid_argument(void **state) {
  (void)state;
  nnrpc_metadata *md = nnrpc_metadata_new();
  assert_non_null(md);
  char long_key[257];
  memset(long_key, 'a', 256);
  long_key[256] = 0;
  const char *bad[] = {"Key", "KEY", "", " ", "a b", "tab\t", "x:y", "ключ", "a/b", long_key};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    assert_int_equal(nnrpc_metadata_add_str(md, bad[i], "v"), NNRPC_INVALID_ARGUMENT);
    assert_int_equal(nnrpc_metadata_add(md, bad[i], "v", 1), NNRPC_INVALID_ARGUMENT);
  }
  assert_int_equal(nnrpc_metadata_add_str(md, NULL, "v"), NNRPC_INVALID_ARGUMENT);
  assert_int_equal(nnrpc_metadata_add(md, "ok", NULL, 3), NNRPC_INVALID_ARGUMENT);
  assert_int_equal(nnrpc_metadata_add_str(NULL, "ok", "v"), NNRPC_INVALID_ARGUMENT);
  assert_int_equal(nnrpc_metadata_count(md), 0);
  /* the whole allowed alphabet, and the longest key */
  assert_int_equal(nnrpc_metadata_add_str(md, "az09-_.", "v"), NNRPC_OK);
  long_key[255] = 0;
  assert_int_equal(nnrpc_metadata_add_str(md, long_key, "v"), NNRPC_OK);
  assert_int_equal(nnrpc_metadata_add(md, "empty", NULL, 0), NNRPC_OK);
  assert_int_equal(nnrpc_metadata_count(md), 3);
  nnrpc_metadata_free(md);
}

static void test_metadata_get_at_count_clear_keep_order_and_first_match(void **state) {
  (void)state;
  nnrpc_metadata *md = nnrpc_metadata_new();
  assert_int_equal(nnrpc_metadata_count(md), 0);
  assert_null(nnrpc_metadata_get(md, "a", NULL));
  for (int i = 0; i < 10; i++) { /* grows past the first allocation */
    char v[16];
    snprintf(v, sizeof v, "v%d", i);
    assert_int_equal(nnrpc_metadata_add_str(md, i % 2 ? "odd" : "even", v), NNRPC_OK);
  }
  assert_int_equal(nnrpc_metadata_count(md), 10);
  size_t len = 99;
  assert_string_equal(nnrpc_metadata_get(md, "even", &len), "v0");
  assert_int_equal(len, 2);
  assert_string_equal(nnrpc_metadata_get(md, "odd", NULL), "v1");
  assert_null(nnrpc_metadata_get(md, "none", &len));
  for (size_t i = 0; i < 10; i++) {
    const char *k;
    const void *v;
    char want[8];
    snprintf(want, sizeof want, "v%zu", i);
    assert_int_equal(nnrpc_metadata_at(md, i, &k, &v, &len), NNRPC_OK);
    assert_string_equal(k, i % 2 ? "odd" : "even");
    assert_int_equal(len, strlen(want));
    assert_memory_equal(v, want, len);
  }
  assert_int_equal(nnrpc_metadata_at(md, 10, NULL, NULL, NULL), NNRPC_OUT_OF_RANGE);
  assert_int_equal(nnrpc_metadata_at(NULL, 0, NULL, NULL, NULL), NNRPC_OUT_OF_RANGE);
  nnrpc_metadata_clear(md);
  assert_int_equal(nnrpc_metadata_count(md), 0);
  assert_null(nnrpc_metadata_get(md, "even", NULL));
  assert_int_equal(nnrpc_metadata_at(md, 0, NULL, NULL, NULL), NNRPC_OUT_OF_RANGE);
  assert_int_equal(nnrpc_metadata_add_str(md, "again", "x"), NNRPC_OK); /* usable after clear */
  assert_int_equal(nnrpc_metadata_count(md), 1);
  nnrpc_metadata_free(md);
  nnrpc_metadata_free(NULL);
  nnrpc_metadata_clear(NULL);
  assert_int_equal(nnrpc_metadata_count(NULL), 0);
  assert_null(nnrpc_metadata_get(NULL, "a", NULL));
}

static void test_metadata_binary_values_keep_nul_bytes_and_exact_length(void **state) {
  (void)state;
  const uint8_t bin[] = {0, 1, 0, 0xff, 0, 'z', 0};
  nnrpc_metadata *md = nnrpc_metadata_new();
  assert_int_equal(nnrpc_metadata_add(md, "blob-bin", bin, sizeof bin), NNRPC_OK);
  size_t len = 0;
  const char *v = nnrpc_metadata_get(md, "blob-bin", &len);
  assert_non_null(v);
  assert_int_equal(len, sizeof bin);
  assert_memory_equal(v, bin, sizeof bin);
  assert_int_equal(v[len], 0); /* NUL-terminated for convenience */
  const void *vv;
  assert_int_equal(nnrpc_metadata_at(md, 0, NULL, &vv, &len), NNRPC_OK);
  assert_memory_equal(vv, bin, sizeof bin);
  nnrpc_metadata_free(md);
}

/* ---------------------------------------------------------------- status API */

static const struct { const char *name; int code; } all_codes[] = {
#define X_(name, num, text) {#name, num},
    NNRPC_CODE_MAP(X_)
#undef X_
};

static void test_every_status_code_has_its_grpc_name_and_text(void **state) {
  (void)state;
  assert_int_equal(sizeof all_codes / sizeof all_codes[0], NNRPC_CODE_COUNT);
  assert_int_equal(NNRPC_CODE_COUNT, 17);
  for (int i = 0; i < NNRPC_CODE_COUNT; i++) {
    assert_int_equal(all_codes[i].code, i); /* gRPC's numbering, no gaps */
    assert_string_equal(nnrpc_code_name(i), all_codes[i].name);
    assert_non_null(nnrpc_strerror(i));
    assert_true(strlen(nnrpc_strerror(i)) > 0);
  }
  assert_string_equal(nnrpc_code_name(NNRPC_DEADLINE_EXCEEDED), "DEADLINE_EXCEEDED");
  assert_string_equal(nnrpc_code_name(NNRPC_UNAUTHENTICATED), "UNAUTHENTICATED");
}

static void test_out_of_range_codes_are_named_unknown_code(void **state) {
  (void)state;
  const int bad[] = {-1, 17, 18, 100, INT_MAX, INT_MIN, NNRPC_PENDING};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    assert_string_equal(nnrpc_code_name(bad[i]), "UNKNOWN_CODE");
    assert_true(strlen(nnrpc_strerror(bad[i])) > 0);
  }
}

static void test_code_from_name_round_trips_any_case_and_decimal(void **state) {
  (void)state;
  for (int i = 0; i < NNRPC_CODE_COUNT; i++) {
    const char *n = all_codes[i].name;
    char lower[64], mixed[64], dec[16];
    size_t k = 0;
    for (; n[k]; k++) {
      lower[k] = (char)(n[k] >= 'A' && n[k] <= 'Z' ? n[k] - 'A' + 'a' : n[k]);
      mixed[k] = k % 2 ? lower[k] : n[k];
    }
    lower[k] = mixed[k] = 0;
    snprintf(dec, sizeof dec, "%d", i);
    assert_int_equal(nnrpc_code_from_name(n), i);
    assert_int_equal(nnrpc_code_from_name(lower), i);
    assert_int_equal(nnrpc_code_from_name(mixed), i);
    assert_int_equal(nnrpc_code_from_name(dec), i);
    assert_int_equal(nnrpc_code_from_name(nnrpc_code_name(i)), i);
  }
}

static void test_code_from_name_returns_minus_1_for_junk(void **state) {
  (void)state;
  const char *junk[] = {"", "17", "18", "-1", "+3", " 3", "3 ", "3x", "0x3", "OKAY", "OK ",
                        " OK", "DEADLINE", "DEADLINE-EXCEEDED", "UNKNOWN_CODE",
                        "99999999999999999999999", "\xff"};
  for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++)
    assert_int_equal(nnrpc_code_from_name(junk[i]), -1);
  assert_int_equal(nnrpc_code_from_name(NULL), -1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_integer_helpers_are_big_endian_and_round_trip),
      cmocka_unit_test(test_envelope_round_trips_seq_in_documented_layout),
      cmocka_unit_test(test_envelope_shorter_than_8_bytes_is_rejected_with_minus_1),
      cmocka_unit_test(test_envelope_with_unknown_version_is_rejected_with_minus_2),
      cmocka_unit_test(test_envelope_reserved_flags_are_ignored),
      cmocka_unit_test(test_frame_put_then_next_round_trips_one_frame),
      cmocka_unit_test(test_several_frames_back_to_back_after_envelope_parse_in_order),
      cmocka_unit_test(test_empty_buffer_has_no_frames),
      cmocka_unit_test(test_frame_with_empty_meta_and_payload_is_exactly_16_bytes),
      cmocka_unit_test(test_truncated_frame_header_is_malformed_and_offset_unchanged),
      cmocka_unit_test(test_frame_whose_meta_runs_past_the_end_is_malformed),
      cmocka_unit_test(test_frame_whose_payload_runs_one_byte_past_the_end_is_malformed),
      cmocka_unit_test(test_frame_claiming_4gib_payload_is_rejected_without_wrap),
      cmocka_unit_test(test_frame_offsets_at_end_past_end_and_mid_buffer),
      cmocka_unit_test(test_random_garbage_never_reads_out_of_bounds_and_always_terminates),
      cmocka_unit_test(test_node_nested_10000_deep_is_rejected_by_depth_limit),
      cmocka_unit_test(test_node_50_deep_decodes_at_depth_limit_64),
      cmocka_unit_test(test_depth_limit_counts_messages_64_pass_65_fail),
      cmocka_unit_test(test_depth_walk_rejects_malformed_protobuf),
      cmocka_unit_test(test_unknown_length_delimited_fields_are_not_descended),
      cmocka_unit_test(test_decode_budget_smaller_than_message_is_refused_without_leak),
      cmocka_unit_test(test_arena_refuses_past_budget_and_overflowing_sizes),
      cmocka_unit_test(test_arena_reuses_a_threads_big_chunk_but_not_a_bombs),
      cmocka_unit_test(test_call_header_round_trips_method_and_metadata),
      cmocka_unit_test(test_call_header_over_max_metadata_count_is_resource_exhausted),
      cmocka_unit_test(test_call_header_over_max_metadata_bytes_is_resource_exhausted),
      cmocka_unit_test(test_call_header_garbage_bytes_are_an_error),
      cmocka_unit_test(test_call_header_with_invalid_metadata_key_on_the_wire_is_an_error),
      cmocka_unit_test(test_metadata_rejects_bad_keys_with_invalid_argument),
      cmocka_unit_test(test_metadata_get_at_count_clear_keep_order_and_first_match),
      cmocka_unit_test(test_metadata_binary_values_keep_nul_bytes_and_exact_length),
      cmocka_unit_test(test_every_status_code_has_its_grpc_name_and_text),
      cmocka_unit_test(test_out_of_range_codes_are_named_unknown_code),
      cmocka_unit_test(test_code_from_name_round_trips_any_case_and_decimal),
      cmocka_unit_test(test_code_from_name_returns_minus_1_for_junk),
  };
  if (getenv("TEST_FILTER")) cmocka_set_test_filter(getenv("TEST_FILTER"));
  return cmocka_run_group_tests(tests, NULL, NULL);
}
