/* The nnrpc command's schema: FileDescriptorProtos (from reflection or from
 * protoc --descriptor_set_out), indexed by the full names of what they
 * declare. Descriptors are protoc-c's google.protobuf types. */
#ifndef NNRPC_CLI_POOL_H
#define NNRPC_CLI_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "google/protobuf/descriptor.pb-c.h"

typedef Google__Protobuf__FileDescriptorProto FileProto;
typedef Google__Protobuf__DescriptorProto MsgProto;
typedef Google__Protobuf__FieldDescriptorProto FieldProto;
typedef Google__Protobuf__EnumDescriptorProto EnumProto;
typedef Google__Protobuf__ServiceDescriptorProto ServiceProto;
typedef Google__Protobuf__MethodDescriptorProto MethodProto;

typedef enum pool_kind { POOL_MESSAGE, POOL_ENUM, POOL_SERVICE } pool_kind;

/* One named declaration. */
typedef struct pool_entry {
  char *full_name;       /* "pkg.Outer.Inner", no leading dot (owned) */
  pool_kind kind;
  const FileProto *file; /* where it is declared */
  bool proto3;           /* the file's syntax (packing, presence) */
  const MsgProto *msg;   /* POOL_MESSAGE */
  const EnumProto *en;   /* POOL_ENUM */
  const ServiceProto *svc; /* POOL_SERVICE */
} pool_entry;

typedef struct cli_pool {
  FileProto **files;
  size_t n_files;
  pool_entry *entries;
  size_t n_entries, cap_entries;
} cli_pool;

void pool_init(cli_pool *p);
void pool_free(cli_pool *p);

/* Adds one serialized FileDescriptorProto; a file already there (same
 * name) is skipped. 0, or -1 when the bytes are not a FileDescriptorProto. */
int pool_add_file(cli_pool *p, const uint8_t *data, size_t len);
/* Adds every file of a serialized FileDescriptorSet. 0 or -1. */
int pool_add_set(cli_pool *p, const uint8_t *data, size_t len);

bool pool_has_file(const cli_pool *p, const char *name);

/* A declaration by full name (a leading '.' is ignored), or NULL. */
const pool_entry *pool_find(const cli_pool *p, const char *name);
/* As pool_find, only for that kind. */
const pool_entry *pool_find_kind(const cli_pool *p, const char *name, pool_kind kind);

/* A method of a service by name, or NULL. */
const MethodProto *pool_method(const ServiceProto *s, const char *name);

/* The JSON name of a field: json_name when protoc set it (owned by the
 * field), else the lowerCamelCase of its name (proto3 JSON mapping) written
 * into buf (n bytes, truncated). */
const char *pool_json_name(const FieldProto *f, char *buf, size_t n);

/* A field's map entry message, when the field is a map (else NULL). */
const MsgProto *pool_map_entry(const cli_pool *p, const FieldProto *f);

/* Whether a repeated scalar field is packed on the wire. */
bool pool_packed(const pool_entry *msg, const FieldProto *f);

#endif
