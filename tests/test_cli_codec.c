/* The nnrpc command's JSON <-> protobuf codec (cli/codec.c) on
 * tests/cli/codec_test.proto, its schema taken from the descriptors
 * protoc-gen-nnrpc embedded in codec_test.nnrpc.c. What it encodes is
 * decoded by protoc-c (and compared with protoc-c's own encoding); what
 * protoc-c encodes it decodes into the expected JSON; and each kind of bad
 * request gets its message. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "codec_test.nnrpc.h"
#include "pool.h"

typedef CodecTest__Scalars Scalars;
typedef CodecTest__Repeated Repeated;
typedef CodecTest__Holder Holder;

static cli_pool pool;

static int setup(void **state) {
  (void)state;
  pool_init(&pool);
  const nnrpc_service *s = &codec_test__codec__nnrpc_service;
  for (size_t i = 0; i < s->n_files; i++)
    if (pool_add_file(&pool, s->files[i]->data, s->files[i]->len)) return -1;
  return 0;
}

static int teardown(void **state) {
  (void)state;
  pool_free(&pool);
  return 0;
}

static json_object *parse(const char *text) {
  json_object *j = json_tokener_parse(text);
  assert_non_null(j);
  return j;
}

/* JSON text -> wire bytes (must succeed). */
static cli_buf encode(const char *type, const char *text) {
  json_object *j = parse(text);
  cli_buf b = {0};
  char err[512] = "";
  int rc = codec_encode(&pool, type, j, &b, err, sizeof err);
  if (rc) fail_msg("encoding %s: %s", text, err);
  json_object_put(j);
  return b;
}

/* wire bytes -> compact JSON text, compared with `want`. */
static void expect_decoded(const char *type, const uint8_t *p, size_t n, int flags, const char *want) {
  json_object *j = NULL;
  char err[512] = "";
  if (codec_decode(&pool, type, p ? p : (const uint8_t *)"", n, flags, &j, err, sizeof err)) fail_msg("decoding: %s", err);
  assert_string_equal(json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE), want);
  json_object_put(j);
}

/* A request that must be refused with exactly this message. */
static void expect_refused(const char *type, const char *text, const char *want) {
  json_object *j = parse(text);
  cli_buf b = {0};
  char err[512] = "";
  assert_int_equal(codec_encode(&pool, type, j, &b, err, sizeof err), -1);
  if (strncmp(err, want, strlen(want)) != 0) fail_msg("for %s\n  got:  %s\n  want: %s", text, err, want);
  buf_free(&b);
  json_object_put(j);
}

static void expect_undecodable(const char *type, const uint8_t *p, size_t n, const char *want) {
  json_object *j = NULL;
  char err[512] = "";
  assert_int_equal(codec_decode(&pool, type, p, n, 0, &j, err, sizeof err), -1);
  assert_null(j);
  assert_string_equal(err, want);
}

/* ---------------------------------------------------------------- scalars */

static const char scalars_json[] =
    "{\"d\":1.5,\"f\":-0.25,\"i64\":\"-9007199254740993\",\"u64\":\"18446744073709551615\",\"i32\":-5,"
    "\"f64\":\"123\",\"f32\":4294967295,\"b\":true,\"s\":\"h\xc3\xa9llo\",\"by\":\"AAEC/w==\",\"u32\":7,"
    "\"color\":\"GREEN\",\"sf32\":-7,\"sf64\":\"-8\",\"si32\":-9,\"si64\":\"-10\"}";

static void test_scalars_both_ways(void **state) {
  (void)state;
  cli_buf b = encode("codec_test.Scalars", scalars_json);
  Scalars *s = codec_test__scalars__unpack(NULL, b.len, b.p);
  assert_non_null(s);
  assert_true(s->d == 1.5 && s->f == -0.25f);
  assert_true(s->i64 == -9007199254740993LL && s->u64 == UINT64_MAX && s->i32 == -5);
  assert_true(s->f64 == 123 && s->f32 == UINT32_MAX && s->b && s->u32 == 7);
  assert_string_equal(s->s, "h\xc3\xa9llo");
  assert_int_equal(s->by.len, 4);
  assert_memory_equal(s->by.data, "\x00\x01\x02\xff", 4);
  assert_int_equal(s->color, CODEC_TEST__COLOR__GREEN);
  assert_true(s->sf32 == -7 && s->sf64 == -8 && s->si32 == -9 && s->si64 == -10);
  /* protoc-c encodes the same bytes, and they decode back to the same JSON */
  size_t n = codec_test__scalars__get_packed_size(s);
  uint8_t *theirs = malloc(n);
  codec_test__scalars__pack(s, theirs);
  assert_int_equal(n, b.len);
  assert_memory_equal(theirs, b.p, n);
  expect_decoded("codec_test.Scalars", theirs, n, 0, scalars_json);
  free(theirs);
  codec_test__scalars__free_unpacked(s, NULL);
  buf_free(&b);
}

static void test_scalar_spellings(void **state) {
  (void)state;
  /* proto names and JSON names, integers as strings or integral numbers,
   * enums by number, floats as strings, null as the default */
  cli_buf b = encode("codec_test.Holder",
                     "{\"snake_case_name\":\"a\",\"scalars\":{\"i32\":\"12\",\"i64\":3e3,\"u64\":\"7\","
                     "\"color\":1,\"d\":\"-Infinity\",\"f\":\"NaN\",\"s\":null}}");
  Holder *h = codec_test__holder__unpack(NULL, b.len, b.p);
  assert_non_null(h);
  assert_string_equal(h->snake_case_name, "a");
  assert_true(h->scalars->i32 == 12 && h->scalars->i64 == 3000 && h->scalars->u64 == 7);
  assert_int_equal(h->scalars->color, CODEC_TEST__COLOR__RED);
  assert_true(isinf(h->scalars->d) && h->scalars->d < 0 && isnan(h->scalars->f));
  assert_string_equal(h->scalars->s, "");
  codec_test__holder__free_unpacked(h, NULL);
  expect_decoded("codec_test.Holder", b.p, b.len, 0,
                 "{\"scalars\":{\"d\":\"-Infinity\",\"f\":\"NaN\",\"i64\":\"3000\",\"u64\":\"7\",\"i32\":12,"
                 "\"color\":\"RED\"},\"snakeCaseName\":\"a\"}");
  buf_free(&b);
  /* shortest round-trip numbers; an enum value the schema does not name */
  Scalars s = CODEC_TEST__SCALARS__INIT;
  s.d = 0.1;
  s.f = 0.1f;
  s.color = 7;
  uint8_t buf[64];
  size_t n = codec_test__scalars__pack(&s, buf);
  expect_decoded("codec_test.Scalars", buf, n, 0, "{\"d\":0.1,\"f\":0.1,\"color\":7}");
}

static void test_emit_defaults(void **state) {
  (void)state;
  expect_decoded("codec_test.Scalars", NULL, 0, CODEC_EMIT_DEFAULTS,
                 "{\"d\":0,\"f\":0,\"i64\":\"0\",\"u64\":\"0\",\"i32\":0,\"f64\":\"0\",\"f32\":0,\"b\":false,"
                 "\"s\":\"\",\"by\":\"\",\"u32\":0,\"color\":\"COLOR_UNSPECIFIED\",\"sf32\":0,\"sf64\":\"0\","
                 "\"si32\":0,\"si64\":\"0\"}");
  expect_decoded("codec_test.Repeated", NULL, 0, CODEC_EMIT_DEFAULTS,
                 "{\"ints\":[],\"strs\":[],\"msgs\":[],\"colors\":[],\"ds\":[],\"zz\":[],\"unpacked\":[],"
                 "\"blobs\":[]}");
  expect_decoded("codec_test.Scalars", NULL, 0, 0, "{}");
}

/* ---------------------------------------------------------------- repeated */

static void test_repeated(void **state) {
  (void)state;
  cli_buf b = encode("codec_test.Repeated",
                     "{\"ints\":[1,-2,300],\"strs\":[\"a\",\"\"],\"msgs\":[{\"i32\":1},{}],"
                     "\"colors\":[\"RED\",2,\"NEGATIVE\"],\"ds\":[0.1,\"NaN\",\"-Infinity\"],\"zz\":[\"-1\",\"1\"],"
                     "\"unpacked\":[1,2],\"blobs\":[\"\"]}");
  Repeated *r = codec_test__repeated__unpack(NULL, b.len, b.p);
  assert_non_null(r);
  assert_int_equal(r->n_ints, 3);
  assert_int_equal(r->ints[1], -2);
  assert_int_equal(r->ints[2], 300);
  assert_int_equal(r->n_strs, 2);
  assert_int_equal(r->n_msgs, 2);
  assert_int_equal(r->msgs[0]->i32, 1);
  assert_int_equal(r->n_colors, 3);
  assert_int_equal(r->colors[2], CODEC_TEST__COLOR__NEGATIVE);
  assert_int_equal(r->n_zz, 2);
  assert_true(r->zz[0] == -1 && r->zz[1] == 1);
  assert_int_equal(r->n_unpacked, 2);
  assert_int_equal(r->n_blobs, 1);
  /* packed where proto3 packs, [packed = false] not: protoc-c's bytes exactly */
  size_t n = codec_test__repeated__get_packed_size(r);
  uint8_t *theirs = malloc(n);
  codec_test__repeated__pack(r, theirs);
  assert_int_equal(n, b.len);
  assert_memory_equal(theirs, b.p, n);
  free(theirs);
  codec_test__repeated__free_unpacked(r, NULL);
  expect_decoded("codec_test.Repeated", b.p, b.len, 0,
                 "{\"ints\":[1,-2,300],\"strs\":[\"a\",\"\"],\"msgs\":[{\"i32\":1},{}],"
                 "\"colors\":[\"RED\",\"GREEN\",\"NEGATIVE\"],\"ds\":[0.1,\"NaN\",\"-Infinity\"],"
                 "\"zz\":[\"-1\",\"1\"],\"unpacked\":[1,2],\"blobs\":[\"\"]}");
  buf_free(&b);
  /* a decoder takes repeated scalars packed or not */
  static const uint8_t unpacked_ints[] = {0x08, 0x01, 0x08, 0x02, 0x0a, 0x02, 0x03, 0x04};
  expect_decoded("codec_test.Repeated", unpacked_ints, sizeof unpacked_ints, 0, "{\"ints\":[1,2,3,4]}");
}

/* ---------------------------------------------------------------- maps, oneofs, well-known types */

static const char holder_json[] =
    "{\"scalars\":{\"s\":\"x\"},\"counts\":{\"a\":1,\"b\":2},\"byId\":{\"7\":{\"i32\":7}},"
    "\"flags\":{\"true\":\"yes\"},\"name\":\"pick\",\"at\":\"1972-01-01T10:00:20.021Z\","
    "\"took\":\"-1.500s\",\"label\":\"lbl\",\"big\":\"12\",\"meta\":{\"k\":[1,\"two\",null,{\"x\":true}]},"
    "\"anyValue\":null,\"list\":[1,2],\"mask\":\"a.bC,d\","
    "\"packed\":{\"@type\":\"type.googleapis.com/codec_test.Scalars\",\"i32\":3},\"nothing\":{},"
    "\"child\":{\"number\":5},\"snakeCaseName\":\"sn\"}";

static void test_maps_oneofs_and_well_known_types(void **state) {
  (void)state;
  cli_buf b = encode("codec_test.Holder", holder_json);
  Holder *h = codec_test__holder__unpack(NULL, b.len, b.p);
  assert_non_null(h);
  assert_string_equal(h->scalars->s, "x");
  assert_int_equal(h->n_counts, 2);
  assert_string_equal(h->counts[1]->key, "b");
  assert_int_equal(h->counts[1]->value, 2);
  assert_int_equal(h->n_by_id, 1);
  assert_int_equal(h->by_id[0]->key, 7);
  assert_int_equal(h->by_id[0]->value->i32, 7);
  assert_true(h->n_flags == 1 && h->flags[0]->key && strcmp(h->flags[0]->value, "yes") == 0);
  assert_int_equal(h->choice_case, CODEC_TEST__HOLDER__CHOICE_NAME);
  assert_string_equal(h->name, "pick");
  assert_true(h->at->seconds == 63108020 && h->at->nanos == 21000000);
  assert_true(h->took->seconds == -1 && h->took->nanos == -500000000);
  assert_string_equal(h->label->value, "lbl");
  assert_int_equal(h->big->value, 12);
  assert_int_equal(h->meta->n_fields, 1);
  assert_int_equal(h->meta->fields[0]->value->list_value->n_values, 4);
  assert_int_equal(h->meta->fields[0]->value->list_value->values[2]->kind_case,
                   GOOGLE__PROTOBUF__VALUE__KIND_NULL_VALUE);
  assert_int_equal(h->any_value->kind_case, GOOGLE__PROTOBUF__VALUE__KIND_NULL_VALUE);
  assert_int_equal(h->list->n_values, 2);
  assert_int_equal(h->mask->n_paths, 2);
  assert_string_equal(h->mask->paths[0], "a.b_c");
  assert_string_equal(h->packed->type_url, "type.googleapis.com/codec_test.Scalars");
  assert_int_equal(h->packed->value.len, 2);
  assert_memory_equal(h->packed->value.data, "\x28\x03", 2);
  assert_non_null(h->nothing);
  assert_int_equal(h->child->number, 5);
  codec_test__holder__free_unpacked(h, NULL);
  expect_decoded("codec_test.Holder", b.p, b.len, 0, holder_json);
  buf_free(&b);
  /* a Timestamp with an offset, fractions of 6 and 9 digits */
  b = encode("codec_test.Holder", "{\"at\":\"1970-01-01T01:00:00.000001+01:00\",\"took\":\"0.000000001s\"}");
  expect_decoded("codec_test.Holder", b.p, b.len, 0, "{\"at\":\"1970-01-01T00:00:00.000001Z\",\"took\":\"0.000000001s\"}");
  buf_free(&b);
}

/* ---------------------------------------------------------------- refusals */

static void test_bad_requests(void **state) {
  (void)state;
  const char *S = "codec_test.Scalars", *H = "codec_test.Holder";
  expect_refused(S, "{\"i32\":\"x\"}", "field \"i32\" (int32): expected an integer, got \"x\"");
  expect_refused(S, "{\"i32\":1.5}", "field \"i32\" (int32): expected an integer, got 1.5");
  expect_refused(S, "{\"i32\":2147483648}",
                 "field \"i32\" (int32): 2147483648 is out of range (-2147483648 to 2147483647)");
  expect_refused(S, "{\"u32\":-1}", "field \"u32\" (uint32): -1 is out of range (0 to 4294967295)");
  expect_refused(S, "{\"u64\":\"-1\"}", "field \"u64\" (uint64): \"-1\" is out of range (0 to 18446744073709551615)");
  expect_refused(S, "{\"i64\":\"9223372036854775808\"}", "field \"i64\" (int64): \"9223372036854775808\" is out of range");
  expect_refused(S, "{\"b\":\"true\"}", "field \"b\" (bool): expected true or false, got \"true\"");
  expect_refused(S, "{\"s\":5}", "field \"s\" (string): expected a string, got 5");
  expect_refused(S, "{\"s\":{}}", "field \"s\" (string): expected a string, got an object");
  expect_refused(S, "{\"by\":\"!!\"}", "field \"by\" (bytes): expected base64 bytes, got \"!!\"");
  expect_refused(S, "{\"f\":1e39}", "field \"f\" (float): 1e39 is out of range for a float");
  expect_refused(S, "{\"color\":\"BLUE\"}",
                 "field \"color\" (enum): \"BLUE\" is not a value of enum codec_test.Color "
                 "(COLOR_UNSPECIFIED, RED, GREEN, NEGATIVE)");
  expect_refused(S, "{\"nope\":1}", "unknown field \"nope\" in codec_test.Scalars (fields: d, f, i64, u64,");
  expect_refused(S, "[]", "expected a JSON object for codec_test.Scalars, got an array");
  expect_refused(H, "{\"scalars\":{\"i32\":\"x\"}}", "field \"scalars.i32\" (int32): expected an integer");
  expect_refused(H, "{\"child\":{\"child\":{\"nope\":1}}}", "field \"child.child\": unknown field \"nope\" in codec_test.Holder");
  expect_refused("codec_test.Repeated", "{\"msgs\":[{},{\"i32\":[]}]}",
                 "field \"msgs[1].i32\" (int32): expected an integer, got an array");
  expect_refused("codec_test.Repeated", "{\"ints\":5}", "field \"ints\" (int32): a repeated field takes a JSON array, got 5");
  expect_refused("codec_test.Repeated", "{\"ints\":[1,null]}", "field \"ints[1]\" (int32): null in a repeated field");
  expect_refused(H, "{\"counts\":{\"a\":\"x\"}}", "field \"counts[a]\" (int32): expected an integer, got \"x\"");
  expect_refused(H, "{\"byId\":{\"seven\":{}}}", "field \"byId[seven]\" (int64): expected an integer, got \"seven\"");
  expect_refused(H, "{\"counts\":[]}", "field \"counts\": a map takes a JSON object, got an array");
  expect_refused(H, "{\"name\":\"a\",\"number\":1}", "\"name\" and \"number\" are members of one oneof: set one");
  expect_refused(H, "{\"at\":\"yesterday\"}",
                 "field \"at\": \"yesterday\" is not an RFC 3339 time like \"1972-01-01T10:00:20.021Z\"");
  expect_refused(H, "{\"at\":\"1972-13-01T10:00:20Z\"}", "field \"at\": \"1972-13-01T10:00:20Z\" is not an RFC 3339");
  expect_refused(H, "{\"took\":\"5\"}", "field \"took\": a Duration is a string like \"1.5s\", got \"5\"");
  expect_refused(H, "{\"meta\":[1]}", "field \"meta\": a Struct is a JSON object, got an array");
  expect_refused(H, "{\"packed\":{\"@type\":\"type.googleapis.com/x.Y\"}}",
                 "field \"packed\": Any: type type.googleapis.com/x.Y is not in the schema");
  expect_refused(H, "{\"label\":5}", "field \"label.value\" (string): expected a string, got 5");
}

static void test_bad_replies(void **state) {
  (void)state;
  static const uint8_t cut[] = {0x08};
  static const uint8_t wrong_wire_type[] = {0x0d, 0, 0, 0, 0};
  static const uint8_t group[] = {0x0b, 0x0c};
  static const uint8_t unknown_field[] = {0xf8, 0x07, 0x01};
  expect_undecodable("codec_test.Scalars", cut, sizeof cut, "malformed codec_test.Scalars: field 1 is cut short");
  expect_undecodable("codec_test.Scalars", wrong_wire_type, sizeof wrong_wire_type,
                     "field \"d\" (double): wire type 32-bit where the schema has 64-bit");
  expect_undecodable("codec_test.Scalars", group, sizeof group, "codec_test.Scalars: groups are not supported");
  expect_decoded("codec_test.Scalars", unknown_field, sizeof unknown_field, 0, "{}"); /* skipped */
  json_object *j = NULL;
  char err[128];
  assert_int_equal(codec_decode(&pool, "codec_test.Nope", cut, 0, 0, &j, err, sizeof err), -1);
  assert_string_equal(err, "message type codec_test.Nope is not in the schema");
}

static void test_base64(void **state) {
  (void)state;
  static const char *const enc[] = {"", "AA==", "AAE=", "AAEC", "AAEC/w==", "AAEC/+4="};
  static const uint8_t data[] = {0x00, 0x01, 0x02, 0xff, 0xee};
  for (size_t n = 0; n <= 5; n++) {
    char *s = base64_encode(data, n);
    assert_string_equal(s, enc[n]);
    cli_buf b = {0};
    assert_int_equal(base64_decode(s, &b), 0);
    assert_int_equal(b.len, n);
    if (n) assert_memory_equal(b.p, data, n);
    buf_free(&b);
    free(s);
  }
  cli_buf b = {0};
  assert_int_equal(base64_decode("AAEC_-4", &b), 0); /* URL-safe, no padding */
  assert_int_equal(b.len, 5);
  assert_memory_equal(b.p, data, 5);
  buf_free(&b);
  assert_int_equal(base64_decode("AA=A", &b), -1);
  buf_free(&b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_scalars_both_ways),
      cmocka_unit_test(test_scalar_spellings),
      cmocka_unit_test(test_emit_defaults),
      cmocka_unit_test(test_repeated),
      cmocka_unit_test(test_maps_oneofs_and_well_known_types),
      cmocka_unit_test(test_bad_requests),
      cmocka_unit_test(test_bad_replies),
      cmocka_unit_test(test_base64),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
