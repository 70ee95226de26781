#include "pool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void pool_init(cli_pool *p) { memset(p, 0, sizeof *p); }

void pool_free(cli_pool *p) {
  for (size_t i = 0; i < p->n_files; i++) google__protobuf__file_descriptor_proto__free_unpacked(p->files[i], NULL);
  for (size_t i = 0; i < p->n_entries; i++) free(p->entries[i].full_name);
  free(p->files);
  free(p->entries);
  memset(p, 0, sizeof *p);
}

static char *join(const char *scope, const char *name) {
  size_t a = strlen(scope), b = strlen(name);
  char *s = malloc(a + b + 2);
  if (!s) return NULL;
  if (a) {
    memcpy(s, scope, a);
    s[a++] = '.';
  }
  memcpy(s + a, name, b + 1);
  return s;
}

static int add_entry(cli_pool *p, pool_entry e) {
  if (!e.full_name) return -1;
  if (p->n_entries == p->cap_entries) {
    size_t cap = p->cap_entries ? 2 * p->cap_entries : 64;
    pool_entry *n = realloc(p->entries, cap * sizeof *n);
    if (!n) {
      free(e.full_name);
      return -1;
    }
    p->entries = n;
    p->cap_entries = cap;
  }
  p->entries[p->n_entries++] = e;
  return 0;
}

static int index_enums(cli_pool *p, const FileProto *f, bool proto3, const char *scope, EnumProto **ens,
                       size_t n) {
  for (size_t i = 0; i < n; i++)
    if (ens[i]->name &&
        add_entry(p, (pool_entry){join(scope, ens[i]->name), POOL_ENUM, f, proto3, NULL, ens[i], NULL}))
      return -1;
  return 0;
}

static int index_messages(cli_pool *p, const FileProto *f, bool proto3, const char *scope, MsgProto **msgs,
                          size_t n) {
  for (size_t i = 0; i < n; i++) {
    const MsgProto *m = msgs[i];
    if (!m->name) continue;
    char *full = join(scope, m->name);
    if (add_entry(p, (pool_entry){full, POOL_MESSAGE, f, proto3, m, NULL, NULL})) return -1;
    if (index_messages(p, f, proto3, full, m->nested_type, m->n_nested_type) ||
        index_enums(p, f, proto3, full, m->enum_type, m->n_enum_type))
      return -1;
  }
  return 0;
}

bool pool_has_file(const cli_pool *p, const char *name) {
  for (size_t i = 0; i < p->n_files; i++)
    if (p->files[i]->name && strcmp(p->files[i]->name, name) == 0) return true;
  return false;
}

static int add_unpacked(cli_pool *p, FileProto *f) {
  if (!f->name || pool_has_file(p, f->name)) {
    google__protobuf__file_descriptor_proto__free_unpacked(f, NULL);
    return 0;
  }
  FileProto **files = realloc(p->files, (p->n_files + 1) * sizeof *files);
  if (!files) {
    google__protobuf__file_descriptor_proto__free_unpacked(f, NULL);
    return -1;
  }
  p->files = files;
  p->files[p->n_files++] = f;
  const char *pkg = f->package ? f->package : "";
  bool proto3 = f->syntax && strcmp(f->syntax, "proto3") == 0;
  if (index_messages(p, f, proto3, pkg, f->message_type, f->n_message_type) ||
      index_enums(p, f, proto3, pkg, f->enum_type, f->n_enum_type))
    return -1;
  for (size_t i = 0; i < f->n_service; i++)
    if (f->service[i]->name &&
        add_entry(p, (pool_entry){join(pkg, f->service[i]->name), POOL_SERVICE, f, proto3, NULL, NULL,
                                  f->service[i]}))
      return -1;
  return 0;
}

int pool_add_file(cli_pool *p, const uint8_t *data, size_t len) {
  FileProto *f = google__protobuf__file_descriptor_proto__unpack(NULL, len, data);
  return f ? add_unpacked(p, f) : -1;
}

int pool_add_set(cli_pool *p, const uint8_t *data, size_t len) {
  Google__Protobuf__FileDescriptorSet *set = google__protobuf__file_descriptor_set__unpack(NULL, len, data);
  if (!set) return -1;
  int rc = 0;
  for (size_t i = 0; i < set->n_file && rc == 0; i++) {
    rc = add_unpacked(p, set->file[i]);
    set->file[i] = NULL; /* the pool has it (or freed it) */
  }
  for (size_t i = 0; i < set->n_file; i++)
    if (set->file[i]) google__protobuf__file_descriptor_proto__free_unpacked(set->file[i], NULL);
  set->n_file = 0;
  google__protobuf__file_descriptor_set__free_unpacked(set, NULL);
  return rc;
}

const pool_entry *pool_find(const cli_pool *p, const char *name) {
  if (name[0] == '.') name++;
  for (size_t i = 0; i < p->n_entries; i++)
    if (strcmp(p->entries[i].full_name, name) == 0) return &p->entries[i];
  return NULL;
}

const pool_entry *pool_find_kind(const cli_pool *p, const char *name, pool_kind kind) {
  const pool_entry *e = pool_find(p, name);
  return e && e->kind == kind ? e : NULL;
}

const MethodProto *pool_method(const ServiceProto *s, const char *name) {
  for (size_t i = 0; i < s->n_method; i++)
    if (s->method[i]->name && strcmp(s->method[i]->name, name) == 0) return s->method[i];
  return NULL;
}

const char *pool_json_name(const FieldProto *f, char *buf, size_t n) {
  if (f->json_name) return f->json_name;
  size_t o = 0;
  bool up = false;
  for (const char *c = f->name ? f->name : ""; *c && o + 1 < n; c++) {
    if (*c == '_') {
      up = true;
      continue;
    }
    buf[o++] = up && *c >= 'a' && *c <= 'z' ? (char)(*c - 'a' + 'A') : *c;
    up = false;
  }
  if (n) buf[o] = 0;
  return buf;
}

const MsgProto *pool_map_entry(const cli_pool *p, const FieldProto *f) {
  if (f->type != GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_MESSAGE || !f->type_name ||
      f->label != GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__LABEL__LABEL_REPEATED)
    return NULL;
  const pool_entry *e = pool_find_kind(p, f->type_name, POOL_MESSAGE);
  if (!e || !e->msg->options || !e->msg->options->has_map_entry || !e->msg->options->map_entry) return NULL;
  return e->msg->n_field == 2 ? e->msg : NULL;
}

bool pool_packed(const pool_entry *msg, const FieldProto *f) {
  if (f->label != GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__LABEL__LABEL_REPEATED) return false;
  switch (f->type) {
  case GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_STRING:
  case GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_BYTES:
  case GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_MESSAGE:
  case GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_GROUP:
    return false;
  default:
    break;
  }
  if (f->options && f->options->has_packed) return f->options->packed;
  return msg->proto3; /* proto3 packs by default, proto2 does not */
}
