/* JSON <-> protobuf wire bytes, driven by the descriptors of a cli_pool:
 * the proto3 JSON mapping (https://protobuf.dev/programming-guides/proto3/#json)
 * for scalars (64-bit integers as strings), strings, bytes (base64), enums
 * (by name), nested and repeated messages, maps, and the well-known types
 * Timestamp, Duration, the wrappers, Struct / Value / ListValue, FieldMask,
 * Empty and Any (when the packed type is in the pool). JSON values are
 * json-c's. */
#ifndef NNRPC_CLI_CODEC_H
#define NNRPC_CLI_CODEC_H

#include <json-c/json.h>

#include "pool.h"

/* Growable bytes. */
typedef struct cli_buf {
  uint8_t *p;
  size_t len, cap;
  bool failed; /* out of memory: sticky */
} cli_buf;
void buf_free(cli_buf *b);

/* Encodes `json` (a JSON object, or the well-known type's JSON form) as a
 * message of `msg` (a full name in the pool). Returns 0, or -1 with a
 * message in err ("field "location.latitude" (int32): ...; " first). */
int codec_encode(const cli_pool *p, const char *msg, json_object *json, cli_buf *out, char *err, size_t errlen);

#define CODEC_EMIT_DEFAULTS 1 /* fields at their default value too (not oneof members) */

/* Decodes wire bytes as a message of `msg`. Returns 0 with *out (the
 * caller puts it), or -1 with a message in err. Unknown fields are
 * skipped. */
int codec_decode(const cli_pool *p, const char *msg, const uint8_t *data, size_t len, int flags,
                 json_object **out, char *err, size_t errlen);

/* Standard base64 with padding; decoding also takes the URL-safe alphabet
 * and missing padding. decode: -1 on a character outside the alphabet. */
char *base64_encode(const uint8_t *p, size_t n);
int base64_decode(const char *s, cli_buf *out);

#endif
