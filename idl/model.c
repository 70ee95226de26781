#include "model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "naming.h"

typedef Google__Protobuf__FileDescriptorProto FileProto;
typedef Google__Protobuf__DescriptorProto MsgProto;
typedef Google__Protobuf__Compiler__CodeGeneratorRequest Request;

static const FileProto *find_file(const Request *req, const char *name) {
  for (size_t i = 0; i < req->n_proto_file; i++)
    if (strcmp(req->proto_file[i]->name, name) == 0) return req->proto_file[i];
  return NULL;
}

/* Does message list `msgs` (under `prefix`) define `want` ("pkg.A.B")? */
static bool defines(MsgProto *const *msgs, size_t n, const char *prefix, const char *want) {
  for (size_t i = 0; i < n; i++) {
    size_t pl = strlen(prefix), nl = strlen(msgs[i]->name);
    char *full = malloc(pl + nl + 2);
    if (!full) abort();
    sprintf(full, "%s%s%s", prefix, pl ? "." : "", msgs[i]->name);
    bool hit = strcmp(full, want) == 0 ||
               (strncmp(want, full, strlen(full)) == 0 && want[strlen(full)] == '.' &&
                defines(msgs[i]->nested_type, msgs[i]->n_nested_type, full, want));
    free(full);
    if (hit) return true;
  }
  return false;
}

static int resolve(const Request *req, const char *dotted, nnrpc_type_ref *t) {
  const char *full = dotted[0] == '.' ? dotted + 1 : dotted;
  for (size_t i = 0; i < req->n_proto_file; i++) {
    const FileProto *f = req->proto_file[i];
    const char *pkg = f->package ? f->package : "";
    size_t pl = strlen(pkg);
    if (pl && !(strncmp(full, pkg, pl) == 0 && full[pl] == '.')) continue;
    if (defines(f->message_type, f->n_message_type, pkg, full)) {
      t->full_name = full;
      t->c_type = nnrpc_full_name_to_c(full);
      t->lower = nnrpc_full_name_to_lower(full);
      t->file = f->name;
      return 0;
    }
  }
  return -1;
}

/* Leading comment attached to the element at `path` in the file's source info. */
static const char *comment_at(const FileProto *f, const int32_t *path, size_t n) {
  if (!f->source_code_info) return NULL;
  for (size_t i = 0; i < f->source_code_info->n_location; i++) {
    const Google__Protobuf__SourceCodeInfo__Location *l = f->source_code_info->location[i];
    if (l->n_path == n && memcmp(l->path, path, n * sizeof *path) == 0)
      return l->leading_comments && l->leading_comments[0] ? l->leading_comments : NULL;
  }
  return NULL;
}

static void add_include(nnrpc_model_file *m, const char *proto) {
  char *base = nnrpc_strip_proto(proto), *h = malloc(strlen(base) + 8);
  if (!h) abort();
  sprintf(h, "%s.pb-c.h", base);
  free(base);
  for (size_t i = 0; i < m->n_includes; i++)
    if (strcmp(m->includes[i], h) == 0) {
      free(h);
      return;
    }
  m->includes = realloc(m->includes, (m->n_includes + 1) * sizeof *m->includes);
  if (!m->includes) abort();
  m->includes[m->n_includes++] = h;
}

nnrpc_model_file *nnrpc_model_build(const Request *req, const char *file_name, char *err, size_t errlen) {
  const FileProto *f = find_file(req, file_name);
  if (!f) {
    snprintf(err, errlen, "%s: not in the request", file_name);
    return NULL;
  }
  nnrpc_model_file *m = calloc(1, sizeof *m);
  if (!m) abort();
  m->name = f->name;
  m->base = nnrpc_strip_proto(f->name);
  add_include(m, f->name);
  const char *pkg = f->package ? f->package : "";
  m->n_services = f->n_service;
  m->services = calloc(f->n_service ? f->n_service : 1, sizeof *m->services);
  if (!m->services) abort();
  for (size_t si = 0; si < f->n_service; si++) {
    const Google__Protobuf__ServiceDescriptorProto *sp = f->service[si];
    nnrpc_model_service *s = &m->services[si];
    s->name = sp->name;
    s->full_name = malloc(strlen(pkg) + strlen(sp->name) + 2);
    if (!s->full_name) abort();
    sprintf(s->full_name, "%s%s%s", pkg, *pkg ? "." : "", sp->name);
    s->c_type = nnrpc_full_name_to_c(s->full_name);
    s->lower = nnrpc_full_name_to_lower(s->full_name);
    int32_t spath[2] = {6, (int32_t)si};
    s->comment = comment_at(f, spath, 2);
    s->n_methods = sp->n_method;
    s->methods = calloc(sp->n_method ? sp->n_method : 1, sizeof *s->methods);
    if (!s->methods) abort();
    for (size_t mi = 0; mi < sp->n_method; mi++) {
      const Google__Protobuf__MethodDescriptorProto *mp = sp->method[mi];
      nnrpc_model_method *x = &s->methods[mi];
      x->name = mp->name;
      x->lower = nnrpc_camel_to_lower(mp->name);
      x->path = malloc(strlen(s->full_name) + strlen(mp->name) + 3);
      if (!x->path) abort();
      sprintf(x->path, "/%s/%s", s->full_name, mp->name);
      x->client_streaming = mp->has_client_streaming && mp->client_streaming;
      x->server_streaming = mp->has_server_streaming && mp->server_streaming;
      x->deprecated = mp->options && mp->options->has_deprecated && mp->options->deprecated;
      int32_t mpath[4] = {6, (int32_t)si, 2, (int32_t)mi};
      x->comment = comment_at(f, mpath, 4);
      if (resolve(req, mp->input_type, &x->input) || resolve(req, mp->output_type, &x->output)) {
        snprintf(err, errlen, "%s: method %s.%s: cannot resolve its input or output type", f->name,
                 s->full_name, mp->name);
        nnrpc_model_free(m);
        return NULL;
      }
      add_include(m, x->input.file);
      add_include(m, x->output.file);
    }
  }
  return m;
}

void nnrpc_model_free(nnrpc_model_file *m) {
  if (!m) return;
  for (size_t si = 0; si < m->n_services; si++) {
    nnrpc_model_service *s = &m->services[si];
    for (size_t mi = 0; mi < s->n_methods; mi++) {
      nnrpc_model_method *x = &s->methods[mi];
      free(x->lower);
      free(x->path);
      free(x->input.c_type);
      free(x->input.lower);
      free(x->output.c_type);
      free(x->output.lower);
    }
    free(s->methods);
    free(s->full_name);
    free(s->c_type);
    free(s->lower);
  }
  free(m->services);
  for (size_t i = 0; i < m->n_includes; i++) free(m->includes[i]);
  free(m->includes);
  free(m->base);
  free(m);
}
