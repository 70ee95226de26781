#include "pbc_options.h"

#include <stdint.h>

#define PB_C_OPTIONS_FIELD 1019 /* both (pb_c_file) and (pb_c_msg) */

/* A protobuf wire-format reader over one buffer; `bad` stops everything. */
typedef struct reader {
  const uint8_t *p, *end;
  bool bad;
} reader;

static uint64_t read_varint(reader *r) {
  uint64_t v = 0;
  for (unsigned shift = 0; shift < 64; shift += 7) {
    if (r->p >= r->end) break;
    uint8_t byte = *r->p++;
    v |= (uint64_t)(byte & 0x7f) << shift;
    if (!(byte & 0x80)) return v;
  }
  r->bad = true;
  return 0;
}

/* Next field: returns false at the end. A length-delimited field's bytes
 * are given in *data and *len, a varint's value in *value; others are skipped. */
static bool next_field(reader *r, uint32_t *field, const uint8_t **data, size_t *len, uint64_t *value) {
  if (r->bad || r->p >= r->end) return false;
  uint64_t key = read_varint(r);
  *field = (uint32_t)(key >> 3);
  *data = NULL;
  *len = 0;
  *value = 0;
  switch (key & 7) {
  case 0:
    *value = read_varint(r);
    break;
  case 1:
  case 5: {
    size_t n = (key & 7) == 1 ? 8 : 4;
    if ((size_t)(r->end - r->p) < n) r->bad = true;
    else r->p += n;
    break;
  }
  case 2: {
    uint64_t n = read_varint(r);
    if (r->bad || n > (uint64_t)(r->end - r->p)) {
      r->bad = true;
      break;
    }
    *data = r->p;
    *len = (size_t)n;
    r->p += n;
    break;
  }
  default: /* groups: protobuf-c's options have none */
    r->bad = true;
  }
  return !r->bad;
}

/* Calls visit() for each field inside every length-delimited copy of field
 * 1019 (several copies merge, the last value of a field wins). */
static void each_option_field(const ProtobufCMessage *options,
                              void (*visit)(void *ctx, uint32_t field, const uint8_t *data,
                                            size_t len, uint64_t value),
                              void *ctx) {
  if (!options) return;
  for (unsigned i = 0; i < options->n_unknown_fields; i++) {
    const ProtobufCMessageUnknownField *u = &options->unknown_fields[i];
    if (u->tag != PB_C_OPTIONS_FIELD || u->wire_type != PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED) continue;
    /* protobuf-c keeps an unknown field's raw bytes: here the length prefix
     * comes first */
    reader r = {u->data, u->data + u->len, false};
    uint64_t n = read_varint(&r);
    if (r.bad || n != (uint64_t)(r.end - r.p)) continue;
    uint32_t field;
    const uint8_t *data;
    size_t len;
    uint64_t value;
    while (next_field(&r, &field, &data, &len, &value)) visit(ctx, field, data, len, value);
  }
}

static void visit_file(void *ctx, uint32_t field, const uint8_t *data, size_t len, uint64_t value) {
  nnrpc_pbc_file_opts *o = ctx;
  if (field == 1 && !data) o->no_generate = value != 0;
  if (field == 2 && !data) o->gen_pack_helpers = value != 0;
  if (field == 6 && data) {
    o->has_c_package = true;
    o->c_package = (const char *)data;
    o->c_package_len = len;
  }
}

void nnrpc_pbc_file_options(const Google__Protobuf__FileOptions *o, nnrpc_pbc_file_opts *out) {
  *out = (nnrpc_pbc_file_opts){false, -1, false, "", 0};
  each_option_field(o ? &o->base : NULL, visit_file, out);
}

static void visit_message(void *ctx, uint32_t field, const uint8_t *data, size_t len, uint64_t value) {
  (void)len;
  if (field == 1 && !data) *(int *)ctx = value != 0;
}

int nnrpc_pbc_message_pack_helpers(const Google__Protobuf__MessageOptions *o) {
  int v = -1;
  each_option_field(o ? &o->base : NULL, visit_message, &v);
  return v;
}
