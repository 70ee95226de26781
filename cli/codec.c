/* JSON <-> protobuf wire bytes from descriptors (codec.h).
 *
 * Encoding walks the message's fields in descriptor order and writes what
 * the JSON object gives them (fields absent or null are left out, as
 * proto3 does for defaults); decoding reads the wire format field by field
 * (packed and unpacked repeated scalars both) and builds a JSON object in
 * descriptor order. The well-known types with a JSON form of their own are
 * rewritten to and from their plain message form around the generic code:
 * "1.5s" <-> {"seconds": "1", "nanos": 500000000}. */
#include "codec.h"

#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* google.protobuf.FieldDescriptorProto.Type, as plain ints */
#define T_DOUBLE 1
#define T_FLOAT 2
#define T_INT64 3
#define T_UINT64 4
#define T_INT32 5
#define T_FIXED64 6
#define T_FIXED32 7
#define T_BOOL 8
#define T_STRING 9
#define T_GROUP 10
#define T_MESSAGE 11
#define T_BYTES 12
#define T_UINT32 13
#define T_ENUM 14
#define T_SFIXED32 15
#define T_SFIXED64 16
#define T_SINT32 17
#define T_SINT64 18
enum { WT_VARINT = 0, WT_64 = 1, WT_LEN = 2, WT_32 = 5 };

#define MAX_DEPTH 100
#define REPEATED GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__LABEL__LABEL_REPEATED

static const char *type_name_of(int t) {
  static const char *const names[] = {"?", "double", "float", "int64", "uint64", "int32", "fixed64",
                                      "fixed32", "bool", "string", "group", "message", "bytes", "uint32",
                                      "enum", "sfixed32", "sfixed64", "sint32", "sint64"};
  return t >= 1 && t <= T_SINT64 ? names[t] : "?";
}

static int wire_type_of(int t) {
  switch (t) {
  case T_DOUBLE: case T_FIXED64: case T_SFIXED64: return WT_64;
  case T_FLOAT: case T_FIXED32: case T_SFIXED32: return WT_32;
  case T_STRING: case T_BYTES: case T_MESSAGE: return WT_LEN;
  case T_GROUP: return 3;
  default: return WT_VARINT;
  }
}

static bool is_64bit_int(int t) {
  return t == T_INT64 || t == T_UINT64 || t == T_FIXED64 || t == T_SFIXED64 || t == T_SINT64;
}

/* ---------------------------------------------------------------- bytes */

static void put(cli_buf *b, const void *p, size_t n) {
  if (b->failed || n == 0) return;
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + n) cap *= 2;
    uint8_t *q = realloc(b->p, cap);
    if (!q) {
      b->failed = true;
      return;
    }
    b->p = q;
    b->cap = cap;
  }
  memcpy(b->p + b->len, p, n);
  b->len += n;
}

void buf_free(cli_buf *b) {
  free(b->p);
  memset(b, 0, sizeof *b);
}

static void put_varint(cli_buf *b, uint64_t v) {
  uint8_t t[10];
  size_t n = 0;
  do {
    t[n] = (uint8_t)(v & 0x7f);
    v >>= 7;
    if (v) t[n] |= 0x80;
    n++;
  } while (v);
  put(b, t, n);
}

static void put_tag(cli_buf *b, uint32_t num, int wt) { put_varint(b, (uint64_t)num << 3 | (unsigned)wt); }

static void put_le(cli_buf *b, uint64_t v, size_t n) {
  uint8_t t[8];
  for (size_t i = 0; i < n; i++) t[i] = (uint8_t)(v >> (8 * i));
  put(b, t, n);
}

static void put_len_delimited(cli_buf *b, uint32_t num, const cli_buf *body) {
  put_tag(b, num, WT_LEN);
  put_varint(b, body->len);
  put(b, body->p, body->len);
  if (body->failed) b->failed = true;
}

/* ---------------------------------------------------------------- base64 */

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *base64_encode(const uint8_t *p, size_t n) {
  char *s = malloc(4 * ((n + 2) / 3) + 1), *o = s;
  if (!s) return NULL;
  for (size_t i = 0; i < n; i += 3) {
    uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0) | (i + 2 < n ? p[i + 2] : 0);
    *o++ = b64[v >> 18 & 63];
    *o++ = b64[v >> 12 & 63];
    *o++ = i + 1 < n ? b64[v >> 6 & 63] : '=';
    *o++ = i + 2 < n ? b64[v & 63] : '=';
  }
  *o = 0;
  return s;
}

int base64_decode(const char *s, cli_buf *out) {
  uint32_t acc = 0;
  int bits = 0;
  for (; *s && *s != '='; s++) {
    int v;
    if (*s >= 'A' && *s <= 'Z') v = *s - 'A';
    else if (*s >= 'a' && *s <= 'z') v = *s - 'a' + 26;
    else if (*s >= '0' && *s <= '9') v = *s - '0' + 52;
    else if (*s == '+' || *s == '-') v = 62;
    else if (*s == '/' || *s == '_') v = 63;
    else return -1;
    acc = acc << 6 | (uint32_t)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      uint8_t byte = (uint8_t)(acc >> bits);
      put(out, &byte, 1);
    }
  }
  while (*s == '=') s++;
  return *s ? -1 : 0;
}

/* ---------------------------------------------------------------- errors */

typedef struct ctx {
  const cli_pool *p;
  int flags;
  char *err;
  size_t errlen;
  char path[256]; /* where we are: "location.latitude", "notes[2]", "counts[a]" */
  size_t plen;
  int depth;
  bool plain; /* the next enc_message takes a well-known type's plain form */
} ctx;

static int fail(ctx *c, const FieldProto *f, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(ctx *c, const FieldProto *f, const char *fmt, ...) {
  int n = 0;
  if (c->plen && f)
    n = snprintf(c->err, c->errlen, "field \"%s\" (%s): ", c->path, type_name_of(f->type));
  else if (c->plen)
    n = snprintf(c->err, c->errlen, "field \"%s\": ", c->path);
  if (n < 0 || (size_t)n >= c->errlen) n = 0;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(c->err + n, c->errlen - (size_t)n, fmt, ap);
  va_end(ap);
  return -1;
}

/* Appends to the path; returns the length to restore. */
static size_t path_push(ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static size_t path_push(ctx *c, const char *fmt, ...) {
  size_t old = c->plen;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(c->path + c->plen, sizeof c->path - c->plen, fmt, ap);
  va_end(ap);
  if (n > 0) c->plen = c->plen + (size_t)n < sizeof c->path ? c->plen + (size_t)n : sizeof c->path - 1;
  return old;
}
static void path_pop(ctx *c, size_t old) {
  c->plen = old;
  c->path[old] = 0;
}
static size_t path_field(ctx *c, const char *name) { return path_push(c, c->plen ? ".%s" : "%s", name); }

/* A JSON value, short, for messages: "abc" (quoted), 1.5, an object... */
static const char *show(json_object *v, char *buf, size_t n) {
  switch (json_object_get_type(v)) {
  case json_type_null: return "null";
  case json_type_object: return "an object";
  case json_type_array: return "an array";
  default: break;
  }
  const char *s = json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
  if (strlen(s) < n) return s;
  snprintf(buf, n, "%.*s...", (int)(n - 4), s);
  return buf;
}

/* ---------------------------------------------------------------- JSON -> numbers */

static int want_int(ctx *c, const FieldProto *f, json_object *v, int64_t min, int64_t max, int64_t *out) {
  char sb[48];
  errno = 0;
  switch (json_object_get_type(v)) {
  case json_type_int: {
    int64_t i = json_object_get_int64(v);
    if (i == INT64_MAX && json_object_get_uint64(v) > (uint64_t)INT64_MAX) goto range;
    if (i < min || i > max) goto range;
    *out = i;
    return 0;
  }
  case json_type_double: {
    double d = json_object_get_double(v);
    if (!isfinite(d) || d != trunc(d)) return fail(c, f, "expected an integer, got %s", show(v, sb, sizeof sb));
    if (d < (double)min || d >= -(double)INT64_MIN || d > (double)max) goto range;
    *out = (int64_t)d;
    return 0;
  }
  case json_type_string: {
    const char *s = json_object_get_string(v);
    char *end;
    long long i = strtoll(s, &end, 10);
    if (!*s || *end) return fail(c, f, "expected an integer, got %s", show(v, sb, sizeof sb));
    if (errno == ERANGE || i < min || i > max) goto range;
    *out = i;
    return 0;
  }
  default:
    return fail(c, f, "expected an integer, got %s", show(v, sb, sizeof sb));
  }
range:
  return fail(c, f, "%s is out of range (%" PRId64 " to %" PRId64 ")", show(v, sb, sizeof sb), min, max);
}

static int want_uint(ctx *c, const FieldProto *f, json_object *v, uint64_t max, uint64_t *out) {
  char sb[48];
  errno = 0;
  switch (json_object_get_type(v)) {
  case json_type_int:
    if (json_object_get_int64(v) < 0) goto range;
    *out = json_object_get_uint64(v);
    if (*out > max) goto range;
    return 0;
  case json_type_double: {
    double d = json_object_get_double(v);
    if (!isfinite(d) || d != trunc(d)) return fail(c, f, "expected an integer, got %s", show(v, sb, sizeof sb));
    if (d < 0 || d >= 18446744073709551616.0 || d > (double)max) goto range;
    *out = (uint64_t)d;
    return 0;
  }
  case json_type_string: {
    const char *s = json_object_get_string(v);
    char *end;
    if (!*s || *s == '-') goto bad_or_range;
    unsigned long long u = strtoull(s, &end, 10);
    if (*end) return fail(c, f, "expected an integer, got %s", show(v, sb, sizeof sb));
    if (errno == ERANGE || u > max) goto range;
    *out = u;
    return 0;
  bad_or_range:
    if (*s == '-' && s[1]) goto range;
    return fail(c, f, "expected an integer, got %s", show(v, sb, sizeof sb));
  }
  default:
    return fail(c, f, "expected an integer, got %s", show(v, sb, sizeof sb));
  }
range:
  return fail(c, f, "%s is out of range (0 to %" PRIu64 ")", show(v, sb, sizeof sb), max);
}

static int want_double(ctx *c, const FieldProto *f, json_object *v, bool is_float, double *out) {
  char sb[48];
  json_type t = json_object_get_type(v);
  if (t == json_type_int || t == json_type_double) {
    *out = json_object_get_double(v);
  } else if (t == json_type_string) {
    const char *s = json_object_get_string(v);
    char *end;
    if (strcmp(s, "NaN") == 0) *out = NAN;
    else if (strcmp(s, "Infinity") == 0) *out = INFINITY;
    else if (strcmp(s, "-Infinity") == 0) *out = -INFINITY;
    else if (*s && (*out = strtod(s, &end), !*end) && isfinite(*out)) (void)0;
    else return fail(c, f, "expected a number, got %s", show(v, sb, sizeof sb));
  } else {
    return fail(c, f, "expected a number, got %s", show(v, sb, sizeof sb));
  }
  if (is_float && isfinite(*out) && fabs(*out) > FLT_MAX)
    return fail(c, f, "%s is out of range for a float", show(v, sb, sizeof sb));
  return 0;
}

/* ---------------------------------------------------------------- JSON -> wire */

static int enc_message(ctx *c, const pool_entry *m, json_object *j, cli_buf *out);

static const pool_entry *type_of(ctx *c, const FieldProto *f, pool_kind kind) {
  const pool_entry *e = f->type_name ? pool_find_kind(c->p, f->type_name, kind) : NULL;
  if (!e) fail(c, f, "type %s is not in the schema", f->type_name ? f->type_name : "(none)");
  return e;
}

static int enum_value(ctx *c, const FieldProto *f, json_object *v, int64_t *out) {
  char sb[48];
  const pool_entry *e = type_of(c, f, POOL_ENUM);
  if (!e) return -1;
  if (json_object_get_type(v) == json_type_null && strcmp(e->full_name, "google.protobuf.NullValue") == 0) {
    *out = 0;
    return 0;
  }
  if (json_object_get_type(v) != json_type_string) return want_int(c, f, v, INT32_MIN, INT32_MAX, out);
  const char *s = json_object_get_string(v);
  for (size_t i = 0; i < e->en->n_value; i++)
    if (e->en->value[i]->name && strcmp(e->en->value[i]->name, s) == 0) {
      *out = e->en->value[i]->number;
      return 0;
    }
  char names[160] = "";
  for (size_t i = 0, o = 0; i < e->en->n_value && o < sizeof names; i++) {
    int n = snprintf(names + o, sizeof names - o, "%s%s", i ? ", " : "", e->en->value[i]->name);
    o += n > 0 ? (size_t)n : 0;
  }
  return fail(c, f, "%s is not a value of enum %s (%s)", show(v, sb, sizeof sb), e->full_name, names);
}

/* One value of field f, without its tag: into `out` as its wire type. */
static int enc_value(ctx *c, const FieldProto *f, json_object *v, cli_buf *out) {
  char sb[48];
  int64_t i = 0;
  uint64_t u = 0;
  double d = 0;
  switch (f->type) {
  case T_INT32:
    if (want_int(c, f, v, INT32_MIN, INT32_MAX, &i)) return -1;
    put_varint(out, (uint64_t)i); /* negative: ten bytes, as the spec wants */
    return 0;
  case T_INT64:
    if (want_int(c, f, v, INT64_MIN, INT64_MAX, &i)) return -1;
    put_varint(out, (uint64_t)i);
    return 0;
  case T_SINT32:
    if (want_int(c, f, v, INT32_MIN, INT32_MAX, &i)) return -1;
    put_varint(out, (uint32_t)(((uint32_t)i << 1) ^ (uint32_t)((int32_t)i >> 31)));
    return 0;
  case T_SINT64:
    if (want_int(c, f, v, INT64_MIN, INT64_MAX, &i)) return -1;
    put_varint(out, ((uint64_t)i << 1) ^ (uint64_t)(i >> 63));
    return 0;
  case T_SFIXED32:
    if (want_int(c, f, v, INT32_MIN, INT32_MAX, &i)) return -1;
    put_le(out, (uint32_t)i, 4);
    return 0;
  case T_SFIXED64:
    if (want_int(c, f, v, INT64_MIN, INT64_MAX, &i)) return -1;
    put_le(out, (uint64_t)i, 8);
    return 0;
  case T_UINT32:
    if (want_uint(c, f, v, UINT32_MAX, &u)) return -1;
    put_varint(out, u);
    return 0;
  case T_UINT64:
    if (want_uint(c, f, v, UINT64_MAX, &u)) return -1;
    put_varint(out, u);
    return 0;
  case T_FIXED32:
    if (want_uint(c, f, v, UINT32_MAX, &u)) return -1;
    put_le(out, u, 4);
    return 0;
  case T_FIXED64:
    if (want_uint(c, f, v, UINT64_MAX, &u)) return -1;
    put_le(out, u, 8);
    return 0;
  case T_BOOL:
    if (json_object_get_type(v) != json_type_boolean)
      return fail(c, f, "expected true or false, got %s", show(v, sb, sizeof sb));
    put_varint(out, json_object_get_boolean(v) ? 1 : 0);
    return 0;
  case T_ENUM:
    if (enum_value(c, f, v, &i)) return -1;
    put_varint(out, (uint64_t)i);
    return 0;
  case T_FLOAT: {
    if (want_double(c, f, v, true, &d)) return -1;
    float fl = (float)d;
    uint32_t bits;
    memcpy(&bits, &fl, 4);
    put_le(out, bits, 4);
    return 0;
  }
  case T_DOUBLE: {
    if (want_double(c, f, v, false, &d)) return -1;
    uint64_t bits;
    memcpy(&bits, &d, 8);
    put_le(out, bits, 8);
    return 0;
  }
  case T_STRING:
    if (json_object_get_type(v) != json_type_string)
      return fail(c, f, "expected a string, got %s", show(v, sb, sizeof sb));
    put_varint(out, (uint64_t)json_object_get_string_len(v));
    put(out, json_object_get_string(v), (size_t)json_object_get_string_len(v));
    return 0;
  case T_BYTES: {
    cli_buf raw = {0};
    if (json_object_get_type(v) != json_type_string || base64_decode(json_object_get_string(v), &raw)) {
      buf_free(&raw);
      return fail(c, f, "expected base64 bytes, got %s", show(v, sb, sizeof sb));
    }
    put_varint(out, raw.len);
    put(out, raw.p, raw.len);
    buf_free(&raw);
    return 0;
  }
  case T_MESSAGE: {
    const pool_entry *m = type_of(c, f, POOL_MESSAGE);
    cli_buf body = {0};
    if (!m || enc_message(c, m, v, &body)) {
      buf_free(&body);
      return -1;
    }
    put_varint(out, body.len);
    put(out, body.p, body.len);
    if (body.failed) out->failed = true;
    buf_free(&body);
    return 0;
  }
  default:
    return fail(c, f, "fields of type %s are not supported", type_name_of(f->type));
  }
}

/* A map key (JSON object keys are strings) as a JSON value of its type. */
static json_object *key_value(const FieldProto *key, const char *s) {
  if (key->type == T_STRING) return json_object_new_string(s);
  if (key->type == T_BOOL) {
    if (strcmp(s, "true") == 0) return json_object_new_boolean(1);
    if (strcmp(s, "false") == 0) return json_object_new_boolean(0);
  }
  return json_object_new_string(s); /* integers: parsed from the string as usual */
}

static int enc_field(ctx *c, const pool_entry *m, const FieldProto *f, json_object *v, cli_buf *out) {
  char sb[48];
  const MsgProto *entry = pool_map_entry(c->p, f);
  if (entry) { /* map<K, V>: a JSON object; each pair is an entry message {1: key, 2: value} */
    if (json_object_get_type(v) != json_type_object)
      return fail(c, NULL, "a map takes a JSON object, got %s", show(v, sb, sizeof sb));
    const FieldProto *kf = entry->field[0]->number == 1 ? entry->field[0] : entry->field[1];
    const FieldProto *vf = kf == entry->field[0] ? entry->field[1] : entry->field[0];
    json_object_object_foreach(v, key, val) {
      size_t old = path_push(c, "[%s]", key);
      cli_buf e = {0};
      json_object *k = key_value(kf, key);
      int rc = k ? 0 : -1;
      if (rc == 0) {
        put_tag(&e, 1, wire_type_of(kf->type));
        rc = enc_value(c, kf, k, &e);
      }
      json_object_put(k);
      if (rc == 0 && (json_object_get_type(val) != json_type_null || vf->type == T_MESSAGE)) {
        put_tag(&e, 2, wire_type_of(vf->type));
        rc = enc_value(c, vf, val, &e);
      }
      if (rc == 0) put_len_delimited(out, (uint32_t)f->number, &e);
      buf_free(&e);
      path_pop(c, old);
      if (rc) return -1;
    }
    return 0;
  }
  if (f->label == REPEATED) {
    if (json_object_get_type(v) != json_type_array)
      return fail(c, f, "a repeated field takes a JSON array, got %s", show(v, sb, sizeof sb));
    bool packed = pool_packed(m, f);
    cli_buf body = {0};
    size_t n = json_object_array_length(v);
    for (size_t i = 0; i < n; i++) {
      size_t old = path_push(c, "[%zu]", i);
      json_object *el = json_object_array_get_idx(v, i);
      int rc;
      if (json_object_get_type(el) == json_type_null && f->type != T_MESSAGE)
        rc = fail(c, f, "null in a repeated field");
      else if (packed)
        rc = enc_value(c, f, el, &body);
      else {
        put_tag(out, (uint32_t)f->number, wire_type_of(f->type));
        rc = enc_value(c, f, el, out);
      }
      path_pop(c, old);
      if (rc) {
        buf_free(&body);
        return -1;
      }
    }
    if (packed && n) put_len_delimited(out, (uint32_t)f->number, &body);
    buf_free(&body);
    return 0;
  }
  put_tag(out, (uint32_t)f->number, wire_type_of(f->type));
  return enc_value(c, f, v, out);
}

static const FieldProto *field_by_json_key(const MsgProto *m, const char *key) {
  char jb[128];
  for (size_t i = 0; i < m->n_field; i++) {
    const FieldProto *f = m->field[i];
    if ((f->name && strcmp(f->name, key) == 0) || strcmp(pool_json_name(f, jb, sizeof jb), key) == 0) return f;
  }
  return NULL;
}

static int unknown_field(ctx *c, const pool_entry *m, const char *key) {
  char names[200] = "", jb[128];
  size_t o = 0;
  for (size_t i = 0; i < m->msg->n_field && o < sizeof names; i++) {
    int n = snprintf(names + o, sizeof names - o, "%s%s", i ? ", " : "",
                     pool_json_name(m->msg->field[i], jb, sizeof jb));
    o += n > 0 ? (size_t)n : 0;
  }
  size_t old = path_field(c, key);
  path_pop(c, old); /* the message's own path, for the prefix */
  return fail(c, NULL, "unknown field \"%s\" in %s (%s%s)", key, m->full_name,
              m->msg->n_field ? "fields: " : "no fields", names);
}

static int enc_wkt(ctx *c, const pool_entry *m, json_object *j, cli_buf *out, bool *done);

static int enc_message(ctx *c, const pool_entry *m, json_object *j, cli_buf *out) {
  char sb[48];
  if (++c->depth > MAX_DEPTH) return fail(c, NULL, "nested deeper than %d messages", MAX_DEPTH);
  bool done = false;
  int rc = 0;
  if (c->plain)
    c->plain = false;
  else
    rc = enc_wkt(c, m, j, out, &done);
  if (done) {
    c->depth--;
    return rc;
  }
  if (json_object_get_type(j) == json_type_null) { /* an empty message */
    c->depth--;
    return 0;
  }
  if (json_object_get_type(j) != json_type_object) {
    c->depth--;
    return fail(c, NULL, "expected a JSON object for %s, got %s", m->full_name, show(j, sb, sizeof sb));
  }
  /* every key must name a field, at most one per oneof */
  int oneof_seen[64];
  const char *oneof_key[64];
  for (size_t i = 0; i < 64; i++) oneof_seen[i] = 0;
  json_object_object_foreach(j, key, val) {
    const FieldProto *f = field_by_json_key(m->msg, key);
    if (!f) {
      c->depth--;
      return unknown_field(c, m, key);
    }
    bool p3opt = f->has_proto3_optional && f->proto3_optional; /* a oneof of its own */
    if (f->has_oneof_index && f->oneof_index >= 0 && f->oneof_index < 64 && !p3opt &&
        json_object_get_type(val) != json_type_null) {
      if (oneof_seen[f->oneof_index]++) {
        c->depth--;
        return fail(c, NULL, "\"%s\" and \"%s\" are members of one oneof: set one", oneof_key[f->oneof_index], key);
      }
      oneof_key[f->oneof_index] = key;
    }
  }
  char jb[128];
  for (size_t i = 0; i < m->msg->n_field; i++) {
    const FieldProto *f = m->msg->field[i];
    json_object *v = NULL;
    const char *jname = pool_json_name(f, jb, sizeof jb);
    if (!json_object_object_get_ex(j, jname, &v) && !(f->name && json_object_object_get_ex(j, f->name, &v)))
      continue;
    size_t old = path_field(c, jname);
    /* null is the default, left out; but a google.protobuf.Value says it */
    bool null_value = f->type == T_MESSAGE && f->label != REPEATED && f->type_name &&
                      strcmp(f->type_name, ".google.protobuf.Value") == 0;
    if ((json_object_get_type(v) != json_type_null || null_value) && enc_field(c, m, f, v, out)) {
      c->depth--;
      return -1;
    }
    path_pop(c, old);
  }
  c->depth--;
  if (out->failed) return fail(c, NULL, "out of memory");
  return 0;
}

/* ---------------------------------------------------------------- wire -> JSON */

typedef struct raw {
  int wt;
  uint64_t u;        /* varint, fixed32, fixed64 */
  const uint8_t *p;  /* length-delimited */
  size_t len;
} raw;

static bool rd_varint(const uint8_t **p, const uint8_t *end, uint64_t *v) {
  *v = 0;
  for (int shift = 0; shift < 64 && *p < end; shift += 7) {
    uint8_t b = *(*p)++;
    *v |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) return true;
  }
  return false;
}

static uint64_t rd_le(const uint8_t *p, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; i++) v |= (uint64_t)p[i] << (8 * i);
  return v;
}

/* Reads one value of wire type wt. */
static bool rd_value(const uint8_t **p, const uint8_t *end, int wt, raw *r) {
  r->wt = wt;
  switch (wt) {
  case WT_VARINT:
    return rd_varint(p, end, &r->u);
  case WT_64:
    if (end - *p < 8) return false;
    r->u = rd_le(*p, 8);
    *p += 8;
    return true;
  case WT_32:
    if (end - *p < 4) return false;
    r->u = rd_le(*p, 4);
    *p += 4;
    return true;
  case WT_LEN:
    if (!rd_varint(p, end, &r->u) || r->u > (uint64_t)(end - *p)) return false;
    r->p = *p;
    r->len = (size_t)r->u;
    *p += r->len;
    return true;
  default:
    return false;
  }
}

static json_object *new_i64(int64_t v) {
  char s[24];
  snprintf(s, sizeof s, "%" PRId64, v);
  return json_object_new_string(s);
}
static json_object *new_u64(uint64_t v) {
  char s[24];
  snprintf(s, sizeof s, "%" PRIu64, v);
  return json_object_new_string(s);
}

/* The shortest text that reads back as the same number. */
static json_object *new_number(double d, bool is_float) {
  if (isnan(d)) return json_object_new_string("NaN");
  if (isinf(d)) return json_object_new_string(d > 0 ? "Infinity" : "-Infinity");
  char s[40];
  for (int prec = is_float ? 6 : 15; prec <= 17; prec++) {
    snprintf(s, sizeof s, "%.*g", prec, d);
    double back = strtod(s, NULL);
    if (is_float ? (float)back == (float)d : back == d) break;
  }
  return json_object_new_double_s(d, s);
}

static int dec_message(ctx *c, const pool_entry *m, const uint8_t *p, size_t len, json_object **out);

static const char *wt_name(int wt) {
  switch (wt) {
  case WT_VARINT: return "varint";
  case WT_64: return "64-bit";
  case WT_32: return "32-bit";
  case WT_LEN: return "length-delimited";
  default: return "group";
  }
}

static int dec_value(ctx *c, const FieldProto *f, const raw *r, json_object **out) {
  *out = NULL;
  if (r->wt != wire_type_of(f->type))
    return fail(c, f, "wire type %s where the schema has %s", wt_name(r->wt), wt_name(wire_type_of(f->type)));
  switch (f->type) {
  case T_INT32: *out = json_object_new_int((int32_t)r->u); break;
  case T_INT64: *out = new_i64((int64_t)r->u); break;
  case T_UINT32: *out = json_object_new_int64((uint32_t)r->u); break;
  case T_UINT64: *out = new_u64(r->u); break;
  case T_SINT32: *out = json_object_new_int((int32_t)((uint32_t)r->u >> 1 ^ (uint32_t)-(int32_t)(r->u & 1))); break;
  case T_SINT64: *out = new_i64((int64_t)(r->u >> 1 ^ (uint64_t)-(int64_t)(r->u & 1))); break;
  case T_FIXED32: *out = json_object_new_int64((uint32_t)r->u); break;
  case T_SFIXED32: *out = json_object_new_int((int32_t)(uint32_t)r->u); break;
  case T_FIXED64: *out = new_u64(r->u); break;
  case T_SFIXED64: *out = new_i64((int64_t)r->u); break;
  case T_BOOL: *out = json_object_new_boolean(r->u != 0); break;
  case T_FLOAT: {
    uint32_t bits = (uint32_t)r->u;
    float fl;
    memcpy(&fl, &bits, 4);
    *out = new_number(fl, true);
    break;
  }
  case T_DOUBLE: {
    double d;
    memcpy(&d, &r->u, 8);
    *out = new_number(d, false);
    break;
  }
  case T_ENUM: {
    const pool_entry *e = f->type_name ? pool_find_kind(c->p, f->type_name, POOL_ENUM) : NULL;
    int32_t v = (int32_t)r->u;
    if (e && strcmp(e->full_name, "google.protobuf.NullValue") == 0) return 0; /* null */
    for (size_t i = 0; e && i < e->en->n_value; i++)
      if (e->en->value[i]->number == v && e->en->value[i]->name) {
        *out = json_object_new_string(e->en->value[i]->name);
        return 0;
      }
    *out = json_object_new_int(v); /* a value the schema does not name */
    break;
  }
  case T_STRING: *out = json_object_new_string_len((const char *)r->p, (int)r->len); break;
  case T_BYTES: {
    char *s = base64_encode(r->p, r->len);
    *out = s ? json_object_new_string(s) : NULL;
    free(s);
    break;
  }
  case T_MESSAGE: {
    const pool_entry *m = type_of(c, f, POOL_MESSAGE);
    return m ? dec_message(c, m, r->p, r->len, out) : -1;
  }
  default:
    return fail(c, f, "fields of type %s are not supported", type_name_of(f->type));
  }
  return *out ? 0 : fail(c, f, "out of memory");
}

static json_object *default_value(ctx *c, const FieldProto *f) {
  if (f->label == REPEATED) return pool_map_entry(c->p, f) ? json_object_new_object() : json_object_new_array();
  switch (f->type) {
  case T_MESSAGE: return NULL;
  case T_STRING: case T_BYTES: return json_object_new_string("");
  case T_BOOL: return json_object_new_boolean(0);
  case T_FLOAT: case T_DOUBLE: return json_object_new_double_s(0, "0");
  case T_ENUM: {
    const pool_entry *e = f->type_name ? pool_find_kind(c->p, f->type_name, POOL_ENUM) : NULL;
    if (e && strcmp(e->full_name, "google.protobuf.NullValue") == 0) return NULL;
    for (size_t i = 0; e && i < e->en->n_value; i++)
      if (e->en->value[i]->number == 0 && e->en->value[i]->name) return json_object_new_string(e->en->value[i]->name);
    return json_object_new_int(0);
  }
  default: return is_64bit_int(f->type) ? json_object_new_string("0") : json_object_new_int(0);
  }
}

/* One map entry's bytes -> (key text, value) into obj. */
static int dec_map_entry(ctx *c, const FieldProto *f, const MsgProto *entry, const raw *r, json_object *obj) {
  if (r->wt != WT_LEN) return fail(c, f, "a map entry with wire type %s", wt_name(r->wt));
  const FieldProto *kf = entry->field[0]->number == 1 ? entry->field[0] : entry->field[1];
  const FieldProto *vf = kf == entry->field[0] ? entry->field[1] : entry->field[0];
  json_object *k = NULL, *v = NULL;
  bool have_v = false;
  const uint8_t *p = r->p, *end = r->p + r->len;
  int rc = 0;
  while (p < end && rc == 0) {
    uint64_t tag;
    raw x;
    if (!rd_varint(&p, end, &tag) || !rd_value(&p, end, (int)(tag & 7), &x)) {
      rc = fail(c, f, "malformed map entry");
      break;
    }
    const FieldProto *which = (tag >> 3) == 1 ? kf : (tag >> 3) == 2 ? vf : NULL;
    if (!which) continue;
    json_object *val = NULL;
    rc = dec_value(c, which, &x, &val);
    json_object **slot = which == kf ? &k : &v;
    json_object_put(*slot);
    *slot = val;
    if (which == vf) have_v = true;
  }
  if (rc == 0) {
    if (!k) k = default_value(c, kf);
    if (!have_v && vf->type == T_MESSAGE) { /* an empty message, in its JSON form */
      const pool_entry *vm = type_of(c, vf, POOL_MESSAGE);
      rc = vm ? dec_message(c, vm, (const uint8_t *)"", 0, &v) : -1;
    } else if (!have_v) {
      v = default_value(c, vf);
    }
  }
  if (rc == 0) {
    json_object_object_add(obj, k ? json_object_get_string(k) : "", v);
    v = NULL;
  }
  json_object_put(k);
  json_object_put(v);
  return rc;
}

static int dec_wkt(ctx *c, const pool_entry *m, json_object **obj);

static int dec_message(ctx *c, const pool_entry *m, const uint8_t *p, size_t len, json_object **out) {
  *out = NULL;
  if (++c->depth > MAX_DEPTH) return fail(c, NULL, "nested deeper than %d messages", MAX_DEPTH);
  size_t nf = m->msg->n_field;
  json_object **vals = calloc(nf ? nf : 1, sizeof *vals);
  bool *seen = calloc(nf ? nf : 1, sizeof *seen);
  const uint8_t *end = p + len;
  int rc = vals && seen ? 0 : fail(c, NULL, "out of memory");
  char jb[128];
  while (rc == 0 && p < end) {
    uint64_t tag;
    raw r;
    if (!rd_varint(&p, end, &tag) || (tag >> 3) == 0) {
      rc = fail(c, NULL, "malformed %s: bad tag", m->full_name);
      break;
    }
    if ((tag & 7) == 3 || (tag & 7) == 4) {
      rc = fail(c, NULL, "%s: groups are not supported", m->full_name);
      break;
    }
    if (!rd_value(&p, end, (int)(tag & 7), &r)) {
      rc = fail(c, NULL, "malformed %s: field %u is cut short", m->full_name, (unsigned)(tag >> 3));
      break;
    }
    size_t i = 0;
    while (i < nf && (uint64_t)m->msg->field[i]->number != tag >> 3) i++;
    if (i == nf) continue; /* unknown to the schema: skipped */
    const FieldProto *f = m->msg->field[i];
    size_t old = path_field(c, pool_json_name(f, jb, sizeof jb));
    const MsgProto *entry = pool_map_entry(c->p, f);
    seen[i] = true;
    if (entry) {
      if (!vals[i]) vals[i] = json_object_new_object();
      rc = dec_map_entry(c, f, entry, &r, vals[i]);
    } else if (f->label == REPEATED) {
      if (!vals[i]) vals[i] = json_object_new_array();
      if (r.wt == WT_LEN && wire_type_of(f->type) != WT_LEN) { /* packed */
        const uint8_t *q = r.p, *qend = r.p + r.len;
        while (rc == 0 && q < qend) {
          raw x;
          json_object *el = NULL;
          if (!rd_value(&q, qend, wire_type_of(f->type), &x)) rc = fail(c, f, "malformed packed values");
          else if ((rc = dec_value(c, f, &x, &el)) == 0) json_object_array_add(vals[i], el);
        }
      } else {
        json_object *el = NULL;
        if ((rc = dec_value(c, f, &r, &el)) == 0) json_object_array_add(vals[i], el);
      }
    } else {
      json_object *v = NULL;
      rc = dec_value(c, f, &r, &v);
      json_object_put(vals[i]); /* the last one wins */
      vals[i] = v;
    }
    path_pop(c, old);
  }
  json_object *obj = rc == 0 ? json_object_new_object() : NULL;
  for (size_t i = 0; i < nf && vals && seen; i++) {
    const FieldProto *f = m->msg->field[i];
    json_object *v = vals[i];
    vals[i] = NULL;
    if (!obj) {
      json_object_put(v);
      continue;
    }
    bool in_oneof = f->has_oneof_index; /* real oneofs and proto3 optional: presence matters */
    if (!seen[i] && (c->flags & CODEC_EMIT_DEFAULTS) && !in_oneof) v = default_value(c, f), seen[i] = true;
    if (seen[i]) json_object_object_add(obj, pool_json_name(f, jb, sizeof jb), v);
    else json_object_put(v);
  }
  free(vals);
  free(seen);
  if (rc == 0 && !obj) rc = fail(c, NULL, "out of memory");
  if (rc == 0) rc = dec_wkt(c, m, &obj);
  if (rc) json_object_put(obj);
  else *out = obj;
  c->depth--;
  return rc;
}

/* ---------------------------------------------------------------- well-known types */

#define WKT(name) (strcmp(m->full_name, "google.protobuf." name) == 0)

static bool is_wrapper(const pool_entry *m) {
  return WKT("DoubleValue") || WKT("FloatValue") || WKT("Int64Value") || WKT("UInt64Value") ||
         WKT("Int32Value") || WKT("UInt32Value") || WKT("BoolValue") || WKT("StringValue") || WKT("BytesValue");
}

/* An integer member of a plain-form object (missing: 0). */
static int64_t member_int(json_object *o, const char *key) {
  json_object *v;
  if (!o || !json_object_object_get_ex(o, key, &v)) return 0;
  return json_object_get_type(v) == json_type_string ? strtoll(json_object_get_string(v), NULL, 10)
                                                     : json_object_get_int64(v);
}

static void frac9(char *s, size_t n, int32_t nanos) {
  if (nanos == 0) *s = 0;
  else if (nanos % 1000000 == 0) snprintf(s, n, ".%03d", nanos / 1000000);
  else if (nanos % 1000 == 0) snprintf(s, n, ".%06d", nanos / 1000);
  else snprintf(s, n, ".%09d", nanos);
}

/* Parses ".123" (1 to 9 digits) into nanoseconds; returns chars used. */
static int parse_frac(const char *s, int32_t *nanos) {
  *nanos = 0;
  if (*s != '.') return 0;
  int n = 1;
  int32_t scale = 100000000;
  while (s[n] >= '0' && s[n] <= '9') {
    if (n > 9) return -1;
    *nanos += (s[n] - '0') * scale;
    scale /= 10;
    n++;
  }
  return n > 1 ? n : -1;
}

#define TS_MIN (-62135596800LL) /* 0001-01-01T00:00:00Z */
#define TS_MAX 253402300799LL   /* 9999-12-31T23:59:59Z */
#define DUR_MAX 315576000000LL

static int dec_wkt(ctx *c, const pool_entry *m, json_object **obj) {
  if (strncmp(m->full_name, "google.protobuf.", 16) != 0) return 0;
  json_object *o = *obj, *v = NULL, *repl = NULL;
  char s[64], fr[16];
  if (WKT("Timestamp")) {
    int64_t secs = member_int(o, "seconds"), nanos = member_int(o, "nanos");
    if (secs < TS_MIN || secs > TS_MAX || nanos < 0 || nanos > 999999999)
      return fail(c, NULL, "Timestamp out of range (%" PRId64 " s, %" PRId64 " ns)", secs, nanos);
    time_t t = (time_t)secs;
    struct tm tm;
    gmtime_r(&t, &tm);
    frac9(fr, sizeof fr, (int32_t)nanos);
    snprintf(s, sizeof s, "%04d-%02d-%02dT%02d:%02d:%02d%sZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
             tm.tm_hour, tm.tm_min, tm.tm_sec, fr);
    repl = json_object_new_string(s);
  } else if (WKT("Duration")) {
    int64_t secs = member_int(o, "seconds"), nanos = member_int(o, "nanos");
    if (secs < -DUR_MAX || secs > DUR_MAX || nanos < -999999999 || nanos > 999999999 ||
        (secs > 0 && nanos < 0) || (secs < 0 && nanos > 0))
      return fail(c, NULL, "Duration out of range (%" PRId64 " s, %" PRId64 " ns)", secs, nanos);
    frac9(fr, sizeof fr, (int32_t)(nanos < 0 ? -nanos : nanos));
    snprintf(s, sizeof s, "%s%" PRId64 "%ss", secs < 0 || nanos < 0 ? "-" : "", secs < 0 ? -secs : secs, fr);
    repl = json_object_new_string(s);
  } else if (is_wrapper(m)) {
    if (json_object_object_get_ex(o, "value", &v)) repl = json_object_get(v);
    else { /* the default, typed */
      for (size_t i = 0; i < m->msg->n_field; i++)
        if (m->msg->field[i]->number == 1) repl = default_value(c, m->msg->field[i]);
    }
  } else if (WKT("Struct")) {
    repl = json_object_object_get_ex(o, "fields", &v) ? json_object_get(v) : json_object_new_object();
  } else if (WKT("ListValue")) {
    repl = json_object_object_get_ex(o, "values", &v) ? json_object_get(v) : json_object_new_array();
  } else if (WKT("Value")) {
    json_object_object_foreach(o, key, val) { /* the one member of the oneof; none: null */
      (void)key;
      repl = json_object_get(val);
    }
  } else if (WKT("FieldMask")) {
    cli_buf b = {0};
    if (json_object_object_get_ex(o, "paths", &v))
      for (size_t i = 0; i < json_object_array_length(v); i++) {
        if (i) put(&b, ",", 1);
        bool up = false;
        for (const char *q = json_object_get_string(json_object_array_get_idx(v, i)); *q; q++) {
          if (*q == '_') {
            up = true;
            continue;
          }
          char ch = up && *q >= 'a' && *q <= 'z' ? (char)(*q - 'a' + 'A') : *q;
          put(&b, &ch, 1);
          up = false;
        }
      }
    put(&b, "", 1);
    repl = b.failed ? NULL : json_object_new_string((const char *)b.p);
    buf_free(&b);
  } else if (WKT("Any")) {
    json_object *url, *val;
    if (!json_object_object_get_ex(o, "typeUrl", &url)) return 0;
    const char *u = json_object_get_string(url), *slash = strrchr(u, '/');
    const pool_entry *t = pool_find_kind(c->p, slash ? slash + 1 : u, POOL_MESSAGE);
    if (!t) return 0; /* a type the schema lacks: the plain form */
    cli_buf bytes = {0};
    if (json_object_object_get_ex(o, "value", &val) && base64_decode(json_object_get_string(val), &bytes)) {
      buf_free(&bytes);
      return fail(c, NULL, "Any: value is not base64");
    }
    json_object *inner = NULL;
    int rc = dec_message(c, t, bytes.p ? bytes.p : (const uint8_t *)"", bytes.len, &inner);
    buf_free(&bytes);
    if (rc) return -1;
    repl = json_object_new_object();
    json_object_object_add(repl, "@type", json_object_get(url));
    if (json_object_get_type(inner) == json_type_object && strncmp(t->full_name, "google.protobuf.", 16) != 0) {
      json_object_object_foreach(inner, key, iv) json_object_object_add(repl, key, json_object_get(iv));
      json_object_put(inner);
    } else {
      json_object_object_add(repl, "value", inner);
    }
  } else {
    return 0;
  }
  json_object_put(o);
  *obj = repl;
  return 0;
}

/* Rewrites a well-known type's JSON into its plain message form and
 * encodes that; *done false leaves the message to the generic code. */
static int enc_wkt(ctx *c, const pool_entry *m, json_object *j, cli_buf *out, bool *done) {
  char sb[48];
  *done = false;
  if (strncmp(m->full_name, "google.protobuf.", 16) != 0) return 0;
  json_type t = json_object_get_type(j);
  json_object *plain = NULL, *type_url;
  if (!(WKT("Timestamp") || WKT("Duration") || is_wrapper(m) || WKT("Struct") || WKT("ListValue") ||
        WKT("Value") || WKT("FieldMask") || WKT("Any")))
    return 0;
  if (WKT("Any") && t == json_type_object && !json_object_object_get_ex(j, "@type", &type_url))
    return 0; /* an Any in its plain form: typeUrl and value */
  *done = true; /* from here on, this function encodes j or refuses it */
  if (WKT("Timestamp")) {
    if (t != json_type_string)
      return fail(c, NULL, "a Timestamp is a string like \"1972-01-01T10:00:20.021Z\", got %s", show(j, sb, sizeof sb));
    const char *s = json_object_get_string(j);
    struct tm tm = {0};
    int n = 0, y, mo, d, h, mi, se;
    int32_t nanos = 0;
    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &se, &n) != 6 || n != 19 ||
        mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60)
      goto bad_ts;
    int fn = parse_frac(s + n, &nanos);
    if (fn < 0) goto bad_ts;
    n += fn;
    int64_t off = 0;
    if (s[n] == 'Z' && !s[n + 1]) {
      off = 0;
    } else if ((s[n] == '+' || s[n] == '-') && strlen(s + n) == 6 && s[n + 3] == ':') {
      int oh, om;
      if (sscanf(s + n + 1, "%2d:%2d", &oh, &om) != 2 || oh > 23 || om > 59) goto bad_ts;
      off = (s[n] == '+' ? 1 : -1) * (oh * 3600 + om * 60);
    } else {
      goto bad_ts;
    }
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = se;
    int64_t secs = (int64_t)timegm(&tm) - off;
    if (secs < TS_MIN || secs > TS_MAX) goto bad_ts;
    plain = json_object_new_object();
    if (secs) json_object_object_add(plain, "seconds", new_i64(secs));
    if (nanos) json_object_object_add(plain, "nanos", json_object_new_int(nanos));
    goto encode;
  bad_ts:
    return fail(c, NULL, "%s is not an RFC 3339 time like \"1972-01-01T10:00:20.021Z\"", show(j, sb, sizeof sb));
  } else if (WKT("Duration")) {
    const char *s = t == json_type_string ? json_object_get_string(j) : "";
    bool neg = *s == '-';
    char *end;
    errno = 0;
    long long secs = strtoll(s + neg, &end, 10);
    int32_t nanos = 0;
    int fn = end > s + neg && *(s + neg) >= '0' && *(s + neg) <= '9' ? parse_frac(end, &nanos) : -1;
    if (fn < 0 || errno || strcmp(end + fn, "s") != 0 || secs > DUR_MAX)
      return fail(c, NULL, "a Duration is a string like \"1.5s\", got %s", show(j, sb, sizeof sb));
    plain = json_object_new_object();
    if (secs) json_object_object_add(plain, "seconds", new_i64(neg ? -secs : secs));
    if (nanos) json_object_object_add(plain, "nanos", json_object_new_int(neg ? -nanos : nanos));
  } else if (is_wrapper(m)) {
    plain = json_object_new_object();
    json_object_object_add(plain, "value", json_object_get(j));
  } else if (WKT("Struct")) {
    if (t != json_type_object) return fail(c, NULL, "a Struct is a JSON object, got %s", show(j, sb, sizeof sb));
    plain = json_object_new_object();
    json_object_object_add(plain, "fields", json_object_get(j));
  } else if (WKT("ListValue")) {
    if (t != json_type_array) return fail(c, NULL, "a ListValue is a JSON array, got %s", show(j, sb, sizeof sb));
    plain = json_object_new_object();
    json_object_object_add(plain, "values", json_object_get(j));
  } else if (WKT("Value")) {
    plain = json_object_new_object();
    switch (t) {
    case json_type_null: json_object_object_add(plain, "nullValue", json_object_new_string("NULL_VALUE")); break;
    case json_type_boolean: json_object_object_add(plain, "boolValue", json_object_get(j)); break;
    case json_type_int: case json_type_double: json_object_object_add(plain, "numberValue", json_object_get(j)); break;
    case json_type_string: json_object_object_add(plain, "stringValue", json_object_get(j)); break;
    case json_type_object: json_object_object_add(plain, "structValue", json_object_get(j)); break;
    case json_type_array: json_object_object_add(plain, "listValue", json_object_get(j)); break;
    }
  } else if (WKT("FieldMask")) {
    if (t != json_type_string)
      return fail(c, NULL, "a FieldMask is a string like \"a.b,c\", got %s", show(j, sb, sizeof sb));
    json_object *paths = json_object_new_array();
    cli_buf b = {0};
    for (const char *q = json_object_get_string(j);; q++) {
      if (*q == ',' || !*q) {
        put(&b, "", 1);
        if (b.len > 1) json_object_array_add(paths, json_object_new_string((const char *)b.p));
        b.len = 0;
        if (!*q) break;
      } else if (*q >= 'A' && *q <= 'Z') {
        char u[2] = {'_', (char)(*q - 'A' + 'a')};
        put(&b, u, 2);
      } else {
        put(&b, q, 1);
      }
    }
    buf_free(&b);
    plain = json_object_new_object();
    json_object_object_add(plain, "paths", paths);
  } else if (WKT("Any")) {
    json_object *url;
    if (t != json_type_object || !json_object_object_get_ex(j, "@type", &url) ||
        json_object_get_type(url) != json_type_string)
      return fail(c, NULL, "an Any is an object with \"@type\", got %s", show(j, sb, sizeof sb));
    const char *u = json_object_get_string(url), *slash = strrchr(u, '/');
    const pool_entry *inner = pool_find_kind(c->p, slash ? slash + 1 : u, POOL_MESSAGE);
    if (!inner) return fail(c, NULL, "Any: type %s is not in the schema", u);
    json_object *body = NULL, *v;
    if (strncmp(inner->full_name, "google.protobuf.", 16) == 0 && json_object_object_get_ex(j, "value", &v)) {
      body = json_object_get(v);
    } else {
      body = json_object_new_object();
      json_object_object_foreach(j, key, val) {
        if (strcmp(key, "@type") != 0) json_object_object_add(body, key, json_object_get(val));
      }
    }
    cli_buf bytes = {0};
    int rc = enc_message(c, inner, body, &bytes);
    json_object_put(body);
    if (rc) {
      buf_free(&bytes);
      return -1;
    }
    char *b64s = base64_encode(bytes.p ? bytes.p : (const uint8_t *)"", bytes.len);
    buf_free(&bytes);
    plain = json_object_new_object();
    json_object_object_add(plain, "typeUrl", json_object_get(url));
    json_object_object_add(plain, "value", json_object_new_string(b64s ? b64s : ""));
    free(b64s);
  } else { /* not reached: the types above are all there is */
    *done = false;
    return 0;
  }
encode:
  c->plain = true; /* the plain form goes through the generic code */
  int rc = enc_message(c, m, plain, out);
  json_object_put(plain);
  return rc;
}

/* ---------------------------------------------------------------- entry points */

int codec_encode(const cli_pool *p, const char *msg, json_object *json, cli_buf *out, char *err, size_t errlen) {
  ctx c = {.p = p, .err = err, .errlen = errlen};
  const pool_entry *m = pool_find_kind(p, msg, POOL_MESSAGE);
  if (!m) {
    snprintf(err, errlen, "message type %s is not in the schema", msg);
    return -1;
  }
  return enc_message(&c, m, json, out);
}

int codec_decode(const cli_pool *p, const char *msg, const uint8_t *data, size_t len, int flags,
                 json_object **out, char *err, size_t errlen) {
  ctx c = {.p = p, .flags = flags, .err = err, .errlen = errlen};
  *out = NULL;
  const pool_entry *m = pool_find_kind(p, msg, POOL_MESSAGE);
  if (!m) {
    snprintf(err, errlen, "message type %s is not in the schema", msg);
    return -1;
  }
  return dec_message(&c, m, data, len, out);
}
