/* fuzz_frames: the wire decoding both sides run on every received message,
 * without sockets or threads. The input is one nanomsg message body as a
 * receiver sees it (envelope, then frames): nnrpc__env_get, the
 * nnrpc__frame_next loop, nnrpc__hdr_decode of each frame's meta (with the
 * metadata copy of nnrpc__md_from_wire), and nnrpc__pb_check/nnrpc__decode of
 * each payload against a test-proto message type. A payload that decodes must
 * survive a pack/unpack round trip unchanged. */
#include "fuzz.h"

#include <string.h>

static void check_payload(const ProtobufCMessageDescriptor *d, const uint8_t *p, size_t len,
                          unsigned depth) {
  nnrpc__budget b;
  nnrpc__budget_init(&b, 1u << 20);
  bool too_deep = false;
  const char *why = NULL;
  ProtobufCMessage *m = nnrpc__decode(d, p, len, depth, &b.pb, &too_deep, &why);
  if (!m) {
    FZ_CHECK(why != NULL, "nnrpc__decode failed without a reason");
    return;
  }
  FZ_CHECK(!too_deep, "decoded a message reported too deep");
  /* Whatever decoded re-encodes, and the re-encoding decodes to the same bytes. */
  size_t n1 = protobuf_c_message_get_packed_size(m);
  uint8_t *b1 = malloc(n1 ? n1 : 1);
  FZ_CHECK(b1, "out of memory");
  FZ_CHECK(protobuf_c_message_pack(m, b1) == n1, "pack size differs from get_packed_size");
  ProtobufCMessage *m2 = nnrpc__decode(d, b1, n1, depth + 1, NULL, &too_deep, &why);
  FZ_CHECK(m2, "re-encoded %s does not decode: %s", d->name, why);
  size_t n2 = protobuf_c_message_get_packed_size(m2);
  uint8_t *b2 = malloc(n2 ? n2 : 1);
  FZ_CHECK(b2, "out of memory");
  protobuf_c_message_pack(m2, b2);
  FZ_CHECK(n1 == n2 && memcmp(b1, b2, n1) == 0, "%s round trip changed the encoding", d->name);
  free(b1);
  free(b2);
  protobuf_c_message_free_unpacked(m2, NULL);
  protobuf_c_message_free_unpacked(m, &b.pb);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  uint32_t seq;
  if (nnrpc__env_get(data, size, &seq)) return 0;
  size_t off = NNRPC_ENV_LEN, prev = off;
  nnrpc__frame f;
  int r;
  unsigned n = 0;
  while ((r = nnrpc__frame_next(data, size, &off, &f)) == 1) {
    FZ_CHECK(off > prev && off <= size, "frame_next moved from %zu to %zu of %zu", prev, off, size);
    FZ_CHECK(f.meta == data + prev + NNRPC_FRAME_HDR_LEN && f.payload == f.meta + f.meta_len &&
                 off - prev == NNRPC_FRAME_HDR_LEN + (size_t)f.meta_len + f.payload_len,
             "frame fields disagree with the offsets");
    prev = off;
    /* The meta, as channel.c (result_of) and server.c (on_call_locked) decode it. */
    nnrpc__arena a;
    nnrpc__arena_init(&a, (size_t)f.meta_len * 8 + 65536);
    Nnrpc__Wire__CallHeader *h = NULL;
    const char *why = NULL;
    int rc = nnrpc__hdr_decode(f.meta, f.meta_len, &a.pb, 8192, 64, &h, &why);
    if (rc == NNRPC_OK) {
      FZ_CHECK(h && h->method && h->message, "decoded header without its strings");
      nnrpc_metadata md = {0};
      FZ_CHECK(nnrpc__md_from_wire(&md, h) == NNRPC_OK, "metadata accepted by hdr_decode refused");
      FZ_CHECK(md.n == h->n_metadata && md.bytes <= 8192, "metadata copy differs");
      nnrpc_metadata_clear(&md);
      free(md.e);
    } else {
      FZ_CHECK(!h && why, "failed hdr_decode without a reason");
    }
    nnrpc__arena_free(&a);
    /* The payload, as one of the test messages (the frame picks which). */
    const ProtobufCMessageDescriptor *d = fz_descs[(f.type + f.call_id + n) % FZ_NDESCS];
    check_payload(d, f.payload, f.payload_len, 1 + f.flags % 64);
    n++;
  }
  FZ_CHECK(r == 0 || r == -1, "frame_next returned %d", r);
  FZ_CHECK(r == -1 || off == size, "frames ended at %zu of %zu", off, size);
  return 0;
}
