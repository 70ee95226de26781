/* Server reflection (nnrpc_server_enable_reflection) over a real socket:
 * the service list, files by symbol (services, methods, messages, nested
 * names, fields) and by name, with their imports; refusals; and the
 * generic calls with encoded bytes (nnrpc_unary_call_raw, the _raw stream
 * functions) against the typed test services, checked with protoc-c's own
 * encoder and decoder. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "helpers/harness.h"
#include "nnrpc/reflection.nnrpc.h"

#define TIMEOUT_MS 10000
typedef Nnrpc__Reflection__V1__FileDescriptorResponse FilesResp;

static nnrpc_call_opts opts_ms(int64_t ms) { return (nnrpc_call_opts){.timeout_ms = ms}; }

static th_server *reflecting_server(void) {
  th_server *t = th_server_prepare("inproc", NULL);
  assert_int_equal(nnrpc_server_enable_reflection(t->srv), NNRPC_OK);
  assert_int_equal(nnrpc_server_start(t->srv), NNRPC_OK);
  return t;
}

/* FileContainingSymbol: the status code; *out the reply (caller frees). */
static int by_symbol(nnrpc_channel *ch, const char *symbol, FilesResp **out) {
  Nnrpc__Reflection__V1__FileContainingSymbolRequest req = NNRPC__REFLECTION__V1__FILE_CONTAINING_SYMBOL_REQUEST__INIT;
  req.symbol = (char *)symbol;
  nnrpc_call_opts o = opts_ms(TIMEOUT_MS);
  *out = NULL;
  return nnrpc__reflection__v1__server_reflection__file_containing_symbol__call(ch, &req, out, &o).code;
}

/* The reply's files are exactly these descriptors, in this order. */
static void expect_files(FilesResp *r, const nnrpc_file_descriptor *const *want, size_t n) {
  assert_non_null(r);
  assert_int_equal(r->n_file_descriptor_proto, n);
  for (size_t i = 0; i < n; i++) {
    assert_int_equal(r->file_descriptor_proto[i].len, want[i]->len);
    assert_memory_equal(r->file_descriptor_proto[i].data, want[i]->data, want[i]->len);
  }
  nnrpc__reflection__v1__file_descriptor_response__free_unpacked(r, NULL);
}

static void test_list_services(void **state) {
  (void)state;
  th_server *t = reflecting_server();
  nnrpc_channel *ch = th_channel(t->url, NULL);
  Nnrpc__Reflection__V1__ListServicesRequest req = NNRPC__REFLECTION__V1__LIST_SERVICES_REQUEST__INIT;
  Nnrpc__Reflection__V1__ListServicesResponse *r = NULL;
  nnrpc_call_opts o = opts_ms(TIMEOUT_MS);
  nnrpc_status st = nnrpc__reflection__v1__server_reflection__list_services__call(ch, &req, &r, &o);
  assert_int_equal(st.code, NNRPC_OK);
  const char *want[] = {"nnrpc.reflection.v1.ServerReflection", "nnrpc_stream_test.Streamer", "nnrpc_test.Counter",
                        "nnrpc_test.Echo"};
  assert_int_equal(r->n_services, 4);
  for (size_t i = 0; i < 4; i++) assert_string_equal(r->services[i], want[i]); /* sorted */
  nnrpc__reflection__v1__list_services_response__free_unpacked(r, NULL);
  nnrpc_channel_close(ch);
  th_server_stop(t);
}

static void test_file_containing_symbol(void **state) {
  (void)state;
  th_server *t = reflecting_server();
  nnrpc_channel *ch = th_channel(t->url, NULL);
  const nnrpc_service *echo = &nnrpc_test__echo__nnrpc_service;
  const nnrpc_service *streamer = &nnrpc_stream_test__streamer__nnrpc_service;
  assert_int_equal(echo->n_files, 1);
  assert_string_equal(echo->files[0]->name, "test.proto");
  static const char *const in_test_proto[] = {
      "nnrpc_test.Echo", ".nnrpc_test.Echo", "nnrpc_test.Echo.Nest", "nnrpc_test.Echo/Nest",
      "nnrpc_test.Counter", "nnrpc_test.Counter/Next", "nnrpc_test.Node", "nnrpc_test.EchoRequest.payload"};
  for (size_t i = 0; i < sizeof in_test_proto / sizeof *in_test_proto; i++) {
    FilesResp *r;
    assert_int_equal(by_symbol(ch, in_test_proto[i], &r), NNRPC_OK);
    expect_files(r, echo->files, 1);
  }
  FilesResp *r;
  assert_int_equal(by_symbol(ch, "nnrpc_stream_test.RangeRequest", &r), NNRPC_OK);
  expect_files(r, streamer->files, 1);
  /* the reflection service describes itself */
  assert_int_equal(by_symbol(ch, "nnrpc.reflection.v1.FileDescriptorResponse", &r), NNRPC_OK);
  expect_files(r, nnrpc_reflection_service()->files, 1);
  static const char *const unknown[] = {"nnrpc_test.Nope", "nnrpc_test", "nnrpc_test.Echo.Nope",
                                        "nnrpc_test.EchoRequest.nope", "Echo", "nnrpc_test.Echo/"};
  for (size_t i = 0; i < sizeof unknown / sizeof *unknown; i++) {
    assert_int_equal(by_symbol(ch, unknown[i], &r), NNRPC_NOT_FOUND);
    assert_null(r);
  }
  assert_int_equal(by_symbol(ch, "", &r), NNRPC_INVALID_ARGUMENT);
  nnrpc_channel_close(ch);
  th_server_stop(t);
}

static void test_file_by_filename(void **state) {
  (void)state;
  th_server *t = reflecting_server();
  nnrpc_channel *ch = th_channel(t->url, NULL);
  Nnrpc__Reflection__V1__FileByFilenameRequest req = NNRPC__REFLECTION__V1__FILE_BY_FILENAME_REQUEST__INIT;
  FilesResp *r = NULL;
  nnrpc_call_opts o = opts_ms(TIMEOUT_MS);
  req.filename = "stream_test.proto";
  assert_int_equal(nnrpc__reflection__v1__server_reflection__file_by_filename__call(ch, &req, &r, &o).code, NNRPC_OK);
  expect_files(r, nnrpc_stream_test__streamer__nnrpc_service.files, 1);
  req.filename = "nope.proto";
  nnrpc_status st = nnrpc__reflection__v1__server_reflection__file_by_filename__call(ch, &req, &r, &o);
  assert_int_equal(st.code, NNRPC_NOT_FOUND);
  assert_non_null(strstr(st.message, "nope.proto"));
  nnrpc_channel_close(ch);
  th_server_stop(t);
}

/* A service table written by hand has no descriptors: listed, not described. */
static void test_service_without_descriptors(void **state) {
  (void)state;
  th_server *t = th_server_prepare("inproc", NULL);
  static const nnrpc_service hand = {.name = "hand.Made", .handlers_size = 1};
  static const char handlers[1];
  bool present[1] = {false};
  assert_int_equal(nnrpc_server_add_service(t->srv, &hand, handlers, present, NULL), NNRPC_OK);
  assert_int_equal(nnrpc_server_enable_reflection(t->srv), NNRPC_OK);
  assert_int_equal(nnrpc_server_start(t->srv), NNRPC_OK);
  nnrpc_channel *ch = th_channel(t->url, NULL);
  Nnrpc__Reflection__V1__FileContainingSymbolRequest req = NNRPC__REFLECTION__V1__FILE_CONTAINING_SYMBOL_REQUEST__INIT;
  req.symbol = "hand.Made";
  FilesResp *r = NULL;
  nnrpc_call_opts o = opts_ms(TIMEOUT_MS);
  nnrpc_status st = nnrpc__reflection__v1__server_reflection__file_containing_symbol__call(ch, &req, &r, &o);
  assert_int_equal(st.code, NNRPC_NOT_FOUND);
  assert_non_null(strstr(st.message, "no descriptors"));
  nnrpc_channel_close(ch);
  th_server_stop(t);
}

static void test_enable_refusals(void **state) {
  (void)state;
  assert_int_equal(nnrpc_server_enable_reflection(NULL), NNRPC_INVALID_ARGUMENT);
  th_server *t = th_server_prepare("inproc", NULL);
  assert_int_equal(nnrpc_server_enable_reflection(t->srv), NNRPC_OK);
  assert_int_equal(nnrpc_server_enable_reflection(t->srv), NNRPC_ALREADY_EXISTS);
  assert_int_equal(nnrpc_server_start(t->srv), NNRPC_OK);
  th_server_stop(t);
  t = th_server_start("inproc", NULL);
  assert_int_equal(nnrpc_server_enable_reflection(t->srv), NNRPC_FAILED_PRECONDITION);
  th_server_stop(t);
}

/* Reflection is a service like any other: interceptors guard it. */
static void test_reflection_behind_bearer(void **state) {
  (void)state;
  th_server *t = th_server_prepare("inproc", NULL);
  assert_int_equal(nnrpc_server_enable_reflection(t->srv), NNRPC_OK);
  assert_int_equal(nnrpc_server_require_bearer(t->srv, "tok"), NNRPC_OK);
  assert_int_equal(nnrpc_server_start(t->srv), NNRPC_OK);
  nnrpc_channel *ch = th_channel(t->url, NULL);
  FilesResp *r;
  assert_int_equal(by_symbol(ch, "nnrpc_test.Echo", &r), NNRPC_UNAUTHENTICATED);
  nnrpc_channel_close(ch);
  nnrpc_channel_opts co = {.bearer_token = "tok"};
  ch = th_channel(t->url, &co);
  assert_int_equal(by_symbol(ch, "nnrpc_test.Echo", &r), NNRPC_OK);
  nnrpc__reflection__v1__file_descriptor_response__free_unpacked(r, NULL);
  nnrpc_channel_close(ch);
  th_server_stop(t);
}

/* ---------------------------------------------------------------- generic calls */

static uint8_t *pack(const ProtobufCMessage *m, size_t *len) {
  *len = protobuf_c_message_get_packed_size(m);
  uint8_t *b = malloc(*len ? *len : 1);
  assert_non_null(b);
  protobuf_c_message_pack(m, b);
  return b;
}

static void test_raw_unary(void **state) {
  (void)state;
  th_server *t = th_server_start("inproc", NULL);
  nnrpc_channel *ch = th_channel(t->url, NULL);
  NnrpcTest__EchoRequest req = NNRPC_TEST__ECHO_REQUEST__INIT;
  req.payload.data = (uint8_t *)"abc";
  req.payload.len = 3;
  req.tag = 77;
  req.echo_headers = true;
  size_t len;
  uint8_t *bytes = pack(&req.base, &len), *reply = NULL;
  size_t reply_len = 0;
  nnrpc_metadata *hd = nnrpc_metadata_new(), *tr = nnrpc_metadata_new();
  nnrpc_metadata_add_str(hd, "x-who", "raw");
  nnrpc_call_opts o = {.timeout_ms = TIMEOUT_MS, .headers = hd, .trailers = tr};
  nnrpc_status st = nnrpc_unary_call_raw(ch, "/nnrpc_test.Echo/Echo", bytes, len, &reply, &reply_len, &o);
  assert_int_equal(st.code, NNRPC_OK);
  NnrpcTest__EchoReply *r = nnrpc_test__echo_reply__unpack(NULL, reply_len, reply);
  assert_non_null(r);
  assert_int_equal(r->payload.len, 3);
  assert_memory_equal(r->payload.data, "abc", 3);
  assert_int_equal(r->tag, 77);
  nnrpc_test__echo_reply__free_unpacked(r, NULL);
  free(reply);
  assert_string_equal(nnrpc_metadata_get(tr, "x-who", NULL), "raw");
  nnrpc_metadata_free(hd);
  nnrpc_metadata_free(tr);
  o = opts_ms(TIMEOUT_MS);

  /* no bytes: an empty request */
  st = nnrpc_unary_call_raw(ch, "/nnrpc_test.Echo/Echo", NULL, 0, &reply, &reply_len, &o);
  assert_int_equal(st.code, NNRPC_OK);
  r = nnrpc_test__echo_reply__unpack(NULL, reply_len, reply);
  assert_non_null(r);
  assert_int_equal(r->payload.len, 0);
  assert_string_equal(r->note, "/nnrpc_test.Echo/Echo");
  nnrpc_test__echo_reply__free_unpacked(r, NULL);
  free(reply);
  /* errors: the server's, a deadline, bytes that are not protobuf, wrong types, no method */
  req.fail_code = NNRPC_NOT_FOUND;
  req.fail_message = "gone";
  free(bytes);
  bytes = pack(&req.base, &len);
  o = opts_ms(TIMEOUT_MS);
  st = nnrpc_unary_call_raw(ch, "/nnrpc_test.Echo/Echo", bytes, len, &reply, &reply_len, &o);
  assert_int_equal(st.code, NNRPC_NOT_FOUND);
  assert_string_equal(st.message, "gone");
  assert_null(reply);
  assert_int_equal(reply_len, 0);
  free(bytes);
  NnrpcTest__EchoRequest slow = NNRPC_TEST__ECHO_REQUEST__INIT;
  slow.delay_ms = 2000;
  bytes = pack(&slow.base, &len);
  o = opts_ms(100);
  st = nnrpc_unary_call_raw(ch, "/nnrpc_test.Echo/Echo", bytes, len, &reply, &reply_len, &o);
  assert_int_equal(st.code, NNRPC_DEADLINE_EXCEEDED);
  free(bytes);
  o = opts_ms(TIMEOUT_MS);
  static const uint8_t cut[] = {0x0a, 0x05, 'a'};          /* payload: 5 bytes announced, 1 there */
  static const uint8_t wrong_type[] = {0x0d, 1, 2, 3, 4};  /* payload (bytes) as a fixed32 */
  st = nnrpc_unary_call_raw(ch, "/nnrpc_test.Echo/Echo", cut, sizeof cut, &reply, &reply_len, &o);
  assert_int_equal(st.code, NNRPC_INVALID_ARGUMENT);
  st = nnrpc_unary_call_raw(ch, "/nnrpc_test.Echo/Echo", wrong_type, sizeof wrong_type, &reply, &reply_len, &o);
  assert_int_equal(st.code, NNRPC_INVALID_ARGUMENT);
  st = nnrpc_unary_call_raw(ch, "/nnrpc_test.Echo/Nope", NULL, 0, &reply, &reply_len, &o);
  assert_int_equal(st.code, NNRPC_UNIMPLEMENTED);
  st = nnrpc_unary_call_raw(ch, NULL, NULL, 0, &reply, &reply_len, &o);
  assert_int_equal(st.code, NNRPC_INVALID_ARGUMENT);
  nnrpc_channel_close(ch);
  th_server_stop(t);
}

static void test_raw_streams(void **state) {
  (void)state;
  th_server *t = th_server_start("inproc", NULL);
  nnrpc_channel *ch = th_channel(t->url, NULL);
  nnrpc_call_opts o = opts_ms(TIMEOUT_MS);
  size_t len;
  uint8_t *msg;

  /* server streaming: Range */
  NnrpcStreamTest__RangeRequest rr = NNRPC_STREAM_TEST__RANGE_REQUEST__INIT;
  rr.count = 5;
  rr.start = 10;
  uint8_t *bytes = pack(&rr.base, &len);
  nnrpc_stream *st = NULL;
  nnrpc_status s = nnrpc_stream_open_raw(ch, "/nnrpc_stream_test.Streamer/Range", NNRPC_SERVER_STREAMING, bytes, len,
                                         &o, &st);
  free(bytes);
  assert_int_equal(s.code, NNRPC_OK);
  int n = 0;
  while (nnrpc_stream_read_raw(st, &msg, &len) == 1) {
    NnrpcStreamTest__Num *num = nnrpc_stream_test__num__unpack(NULL, len, msg);
    assert_non_null(num);
    assert_int_equal(num->value, 10 + n);
    nnrpc_stream_test__num__free_unpacked(num, NULL);
    free(msg);
    n++;
  }
  assert_null(msg);
  assert_int_equal(n, 5);
  assert_int_equal(nnrpc_stream_finish_raw(st, NULL, NULL, NULL).code, NNRPC_OK);

  /* client streaming: Sum */
  s = nnrpc_stream_open_raw(ch, "/nnrpc_stream_test.Streamer/Sum", NNRPC_CLIENT_STREAMING, NULL, 0, &o, &st);
  assert_int_equal(s.code, NNRPC_OK);
  for (int i = 1; i <= 4; i++) {
    NnrpcStreamTest__Num num = NNRPC_STREAM_TEST__NUM__INIT;
    num.value = i;
    bytes = pack(&num.base, &len);
    assert_int_equal(nnrpc_stream_write_raw(st, bytes, len), NNRPC_OK);
    free(bytes);
  }
  static const uint8_t cut[] = {0x12, 0x09};
  assert_int_equal(nnrpc_stream_write_raw(st, cut, sizeof cut), NNRPC_INVALID_ARGUMENT);
  uint8_t *reply = NULL;
  s = nnrpc_stream_finish_raw(st, &reply, &len, NULL);
  assert_int_equal(s.code, NNRPC_OK);
  NnrpcStreamTest__Total *total = nnrpc_stream_test__total__unpack(NULL, len, reply);
  assert_non_null(total);
  assert_int_equal(total->sum, 10);
  assert_int_equal(total->count, 4);
  nnrpc_stream_test__total__free_unpacked(total, NULL);
  free(reply);

  /* an empty reply (Total{}: no bytes) is an empty buffer, not NULL */
  s = nnrpc_stream_open_raw(ch, "/nnrpc_stream_test.Streamer/Sum", NNRPC_CLIENT_STREAMING, NULL, 0, &o, &st);
  assert_int_equal(s.code, NNRPC_OK);
  s = nnrpc_stream_finish_raw(st, &reply, &len, NULL);
  assert_int_equal(s.code, NNRPC_OK);
  assert_non_null(reply);
  assert_int_equal(len, 0);
  free(reply);

  /* bidi: Chat answers each message */
  s = nnrpc_stream_open_raw(ch, "/nnrpc_stream_test.Streamer/Chat", NNRPC_BIDI_STREAMING, NULL, 0, &o, &st);
  assert_int_equal(s.code, NNRPC_OK);
  for (int i = 0; i < 3; i++) {
    NnrpcStreamTest__Num num = NNRPC_STREAM_TEST__NUM__INIT;
    num.value = 100 + i;
    bytes = pack(&num.base, &len);
    assert_int_equal(nnrpc_stream_write_raw(st, bytes, len), NNRPC_OK);
    free(bytes);
    assert_int_equal(nnrpc_stream_read_raw(st, &msg, &len), 1);
    NnrpcStreamTest__Num *back = nnrpc_stream_test__num__unpack(NULL, len, msg);
    assert_non_null(back);
    assert_int_equal(back->value, 100 + i);
    nnrpc_stream_test__num__free_unpacked(back, NULL);
    free(msg);
  }
  assert_int_equal(nnrpc_stream_close_send(st), NNRPC_OK);
  assert_int_equal(nnrpc_stream_read_raw(st, &msg, &len), 0);
  assert_int_equal(nnrpc_stream_finish_raw(st, NULL, NULL, NULL).code, NNRPC_OK);

  /* refusals */
  assert_int_equal(nnrpc_stream_open_raw(ch, "/nnrpc_stream_test.Streamer/Range", NNRPC_UNARY, NULL, 0, &o, &st).code,
                   NNRPC_INVALID_ARGUMENT);
  assert_int_equal(nnrpc_stream_open_raw(ch, "/nnrpc_stream_test.Streamer/Sum", NNRPC_CLIENT_STREAMING, cut,
                                         sizeof cut, &o, &st).code,
                   NNRPC_INVALID_ARGUMENT);
  assert_int_equal(nnrpc_stream_open_raw(ch, "/nnrpc_stream_test.Streamer/Range", NNRPC_SERVER_STREAMING, cut,
                                         sizeof cut, &o, &st).code,
                   NNRPC_INVALID_ARGUMENT);
  assert_null(st);
  nnrpc_channel_close(ch);
  th_server_stop(t);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_list_services),
      cmocka_unit_test(test_file_containing_symbol),
      cmocka_unit_test(test_file_by_filename),
      cmocka_unit_test(test_service_without_descriptors),
      cmocka_unit_test(test_enable_refusals),
      cmocka_unit_test(test_reflection_behind_bearer),
      cmocka_unit_test(test_raw_unary),
      cmocka_unit_test(test_raw_streams),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
