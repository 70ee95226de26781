#include "describe.h"

#include <stdlib.h>
#include <string.h>

static const char *const scalar_names[] = {"?", "double", "float", "int64", "uint64", "int32", "fixed64",
                                           "fixed32", "bool", "string", "group", "message", "bytes",
                                           "uint32", "enum", "sfixed32", "sfixed64", "sint32", "sint64"};

const char *method_kind_name(const MethodProto *m) {
  bool cs = m->has_client_streaming && m->client_streaming;
  bool ss = m->has_server_streaming && m->server_streaming;
  return cs && ss ? "bidi streaming" : cs ? "client streaming" : ss ? "server streaming" : "unary";
}

static const char *undot(const char *s) { return s && s[0] == '.' ? s + 1 : s ? s : "?"; }

/* Types still to print, in order of first use; each once. */
typedef struct todo {
  const char **names;
  size_t n, cap;
} todo;

static void want(todo *t, const char *name) {
  name = undot(name);
  for (size_t i = 0; i < t->n; i++)
    if (strcmp(t->names[i], name) == 0) return;
  if (t->n == t->cap) {
    size_t cap = t->cap ? 2 * t->cap : 16;
    const char **n = realloc(t->names, cap * sizeof *n);
    if (!n) return;
    t->names = n;
    t->cap = cap;
  }
  t->names[t->n++] = name;
}

static const char *field_type(const FieldProto *f) {
  if (f->type_name) return undot(f->type_name);
  return f->type >= 1 && f->type <= 18 ? scalar_names[f->type] : "?";
}

static void print_options(FILE *out, const FieldProto *f) {
  const char *sep = " [";
  if (f->default_value) {
    bool quote = f->type == GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_STRING ||
                 f->type == GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_BYTES;
    fprintf(out, "%sdefault = %s%s%s", sep, quote ? "\"" : "", f->default_value, quote ? "\"" : "");
    sep = ", ";
  }
  if (f->options && f->options->has_packed) {
    fprintf(out, "%spacked = %s", sep, f->options->packed ? "true" : "false");
    sep = ", ";
  }
  if (f->options && f->options->has_deprecated && f->options->deprecated) {
    fprintf(out, "%sdeprecated = true", sep);
    sep = ", ";
  }
  if (sep[0] == ',') fputc(']', out);
}

static void print_field(FILE *out, const cli_pool *p, const pool_entry *m, const FieldProto *f, const char *indent,
                        todo *t) {
  const MsgProto *entry = pool_map_entry(p, f);
  fputs(indent, out);
  if (entry) {
    const FieldProto *k = entry->field[0]->number == 1 ? entry->field[0] : entry->field[1];
    const FieldProto *v = k == entry->field[0] ? entry->field[1] : entry->field[0];
    fprintf(out, "map<%s, %s> ", field_type(k), field_type(v));
    if (v->type_name) want(t, v->type_name);
  } else {
    bool p3opt = f->has_proto3_optional && f->proto3_optional;
    if (f->label == GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__LABEL__LABEL_REPEATED) fputs("repeated ", out);
    else if (f->label == GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__LABEL__LABEL_REQUIRED) fputs("required ", out);
    else if (p3opt || (!m->proto3 && !f->has_oneof_index)) fputs("optional ", out);
    fprintf(out, "%s ", field_type(f));
    if (f->type_name) want(t, f->type_name);
  }
  fprintf(out, "%s = %d", f->name ? f->name : "?", f->number);
  print_options(out, f);
  fputs(";\n", out);
}

static void print_message(FILE *out, const cli_pool *p, const pool_entry *e, todo *t) {
  const MsgProto *m = e->msg;
  fprintf(out, "// %s (%s)\nmessage %s {\n", e->full_name, e->file->name, m->name);
  for (size_t i = 0; i < m->n_field; i++) {
    const FieldProto *f = m->field[i];
    bool real_oneof = f->has_oneof_index && !(f->has_proto3_optional && f->proto3_optional) &&
                      (size_t)f->oneof_index < m->n_oneof_decl;
    if (!real_oneof) {
      print_field(out, p, e, f, "  ", t);
      continue;
    }
    bool first = true; /* a oneof's block goes where its first field is */
    for (size_t j = 0; j < i && first; j++)
      first = !(m->field[j]->has_oneof_index && m->field[j]->oneof_index == f->oneof_index);
    if (!first) continue;
    fprintf(out, "  oneof %s {\n", m->oneof_decl[f->oneof_index]->name ? m->oneof_decl[f->oneof_index]->name : "?");
    for (size_t j = i; j < m->n_field; j++)
      if (m->field[j]->has_oneof_index && m->field[j]->oneof_index == f->oneof_index)
        print_field(out, p, e, m->field[j], "    ", t);
    fputs("  }\n", out);
  }
  fputs("}\n", out);
}

static void print_enum(FILE *out, const pool_entry *e) {
  fprintf(out, "// %s (%s)\nenum %s {\n", e->full_name, e->file->name, e->en->name);
  for (size_t i = 0; i < e->en->n_value; i++)
    fprintf(out, "  %s = %d;\n", e->en->value[i]->name ? e->en->value[i]->name : "?", e->en->value[i]->number);
  fputs("}\n", out);
}

static void print_rpc(FILE *out, const MethodProto *m, bool comment_kind) {
  bool cs = m->has_client_streaming && m->client_streaming;
  bool ss = m->has_server_streaming && m->server_streaming;
  fprintf(out, "rpc %s(%s%s) returns (%s%s);", m->name ? m->name : "?", cs ? "stream " : "",
          undot(m->input_type), ss ? "stream " : "", undot(m->output_type));
  if (comment_kind) fprintf(out, "  // %s", method_kind_name(m));
  fputc('\n', out);
}

/* The types in t from index `from` on, and those they use. */
static void print_todo(FILE *out, const cli_pool *p, todo *t, size_t from) {
  for (size_t i = from; i < t->n; i++) {
    const pool_entry *e = pool_find(p, t->names[i]);
    fputc('\n', out);
    if (!e)
      fprintf(out, "// %s: not in the schema the server gave\n", t->names[i]);
    else if (e->kind == POOL_MESSAGE)
      print_message(out, p, e, t);
    else if (e->kind == POOL_ENUM)
      print_enum(out, e);
  }
  free(t->names);
}

void describe_service(FILE *out, const cli_pool *p, const pool_entry *svc, const MethodProto *only) {
  todo t = {0};
  const ServiceProto *s = svc->svc;
  if (only) {
    fprintf(out, "// %s.%s (%s): %s\n", svc->full_name, only->name, svc->file->name, method_kind_name(only));
    print_rpc(out, only, false);
    want(&t, only->input_type);
    want(&t, only->output_type);
  } else {
    fprintf(out, "// %s (%s)\nservice %s {\n", svc->full_name, svc->file->name, s->name);
    for (size_t i = 0; i < s->n_method; i++) {
      fputs("  ", out);
      print_rpc(out, s->method[i], true);
      want(&t, s->method[i]->input_type);
      want(&t, s->method[i]->output_type);
    }
    fputs("}\n", out);
  }
  print_todo(out, p, &t, 0);
}

void describe_type(FILE *out, const cli_pool *p, const pool_entry *e) {
  todo t = {0};
  want(&t, e->full_name);
  if (e->kind == POOL_MESSAGE)
    print_message(out, p, e, &t);
  else
    print_enum(out, e);
  print_todo(out, p, &t, 1);
}
