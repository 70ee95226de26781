/* Server reflection (nnrpc.reflection.v1.ServerReflection, idl/nnrpc/
 * reflection.proto): the service list and the embedded file descriptors of
 * a server's services (nnrpc_service.files, written by protoc-gen-nnrpc).
 *
 * Nothing is kept between calls: each call looks at the server's services
 * (they cannot change once it runs) and answers with pointers into their
 * static descriptors, so there is no state to free. Symbols are found by
 * walking the serialized FileDescriptorProtos with a small wire reader: the
 * runtime does not link descriptor.proto's code (users who compile it for
 * custom options would get duplicate symbols). */
#include "internal.h"

#include <stdlib.h>

#include "nnrpc/reflection.nnrpc.h"

typedef Nnrpc__Reflection__V1__ListServicesRequest ListReq;
typedef Nnrpc__Reflection__V1__ListServicesResponse ListResp;
typedef Nnrpc__Reflection__V1__FileContainingSymbolRequest SymbolReq;
typedef Nnrpc__Reflection__V1__FileByFilenameRequest FileReq;
typedef Nnrpc__Reflection__V1__FileDescriptorResponse FilesResp;

/* ---------------------------------------------------------------- the server's files */

typedef struct known {
  const nnrpc_service **svcs;
  size_t n_svcs;
  const nnrpc_file_descriptor **files; /* every file of every service, each once */
  size_t n_files;
} known;

static const nnrpc_file_descriptor *find_file(const known *k, const char *name) {
  for (size_t i = 0; i < k->n_files; i++)
    if (strcmp(k->files[i]->name, name) == 0) return k->files[i];
  return NULL;
}

/* Everything in per-call memory: returns NNRPC_OK or RESOURCE_EXHAUSTED. */
static int gather(nnrpc_ctx *ctx, known *k) {
  nnrpc_server *srv = nnrpc_ctx_user_data(ctx);
  memset(k, 0, sizeof *k);
  size_t n = nnrpc__server_services(srv, NULL, 0), nf = 0;
  k->svcs = nnrpc_ctx_alloc(ctx, (n ? n : 1) * sizeof *k->svcs);
  if (!k->svcs) return NNRPC_RESOURCE_EXHAUSTED;
  n = nnrpc__server_services(srv, k->svcs, n); /* the same: services are added before start */
  k->n_svcs = n;
  for (size_t i = 0; i < n; i++) nf += k->svcs[i]->n_files;
  k->files = nnrpc_ctx_alloc(ctx, (nf ? nf : 1) * sizeof *k->files);
  if (!k->files) return NNRPC_RESOURCE_EXHAUSTED;
  for (size_t i = 0; i < n; i++)
    for (size_t j = 0; j < k->svcs[i]->n_files; j++) {
      const nnrpc_file_descriptor *f = k->svcs[i]->files[j];
      if (f && f->name && !find_file(k, f->name)) k->files[k->n_files++] = f;
    }
  return NNRPC_OK;
}

/* The reply: `root`, then every file it imports, directly or not, each once
 * (an import the server does not have is left out: the client will say). */
static int answer_files(nnrpc_ctx *ctx, const known *k, const nnrpc_file_descriptor *root,
                        FilesResp *reply) {
  const nnrpc_file_descriptor **out = nnrpc_ctx_alloc(ctx, k->n_files * sizeof *out);
  ProtobufCBinaryData *bin = nnrpc_ctx_alloc(ctx, k->n_files * sizeof *bin);
  if (!out || !bin) return NNRPC_RESOURCE_EXHAUSTED;
  size_t n = 0;
  out[n++] = root;
  for (size_t i = 0; i < n; i++) /* breadth first over the imports */
    for (size_t d = 0; d < out[i]->n_deps; d++) {
      const nnrpc_file_descriptor *dep = find_file(k, out[i]->deps[d]);
      bool have = !dep;
      for (size_t j = 0; j < n && !have; j++) have = out[j] == dep;
      if (!have && n < k->n_files) out[n++] = dep;
    }
  for (size_t i = 0; i < n; i++) {
    bin[i].len = out[i]->len;
    bin[i].data = (uint8_t *)out[i]->data; /* only read: packed into the reply */
  }
  reply->n_file_descriptor_proto = n;
  reply->file_descriptor_proto = bin;
  return NNRPC_OK;
}

/* ---------------------------------------------------------------- reading descriptors */

/* One field of a protobuf message: its number, and its bytes when
 * length-delimited. Returns false at the end or on malformed input. */
typedef struct field {
  uint32_t num;
  const uint8_t *p;
  size_t len;
} field;

static bool varint(const uint8_t **p, const uint8_t *end, uint64_t *v) {
  *v = 0;
  for (int shift = 0; shift < 64 && *p < end; shift += 7) {
    uint8_t b = *(*p)++;
    *v |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) return true;
  }
  return false;
}

static bool next_field(const uint8_t **p, const uint8_t *end, field *f) {
  uint64_t tag, v;
  while (*p < end) {
    if (!varint(p, end, &tag)) return false;
    f->num = (uint32_t)(tag >> 3);
    switch (tag & 7) {
    case 0:
      if (!varint(p, end, &v)) return false;
      continue;
    case 1:
      if (end - *p < 8) return false;
      *p += 8;
      continue;
    case 5:
      if (end - *p < 4) return false;
      *p += 4;
      continue;
    case 2:
      if (!varint(p, end, &v) || v > (uint64_t)(end - *p)) return false;
      f->p = *p;
      f->len = (size_t)v;
      *p += v;
      return true;
    default:
      return false;
    }
  }
  return false;
}

/* The string field `num` of a message (its last occurrence), or NULL. */
static bool string_field(const uint8_t *p, size_t len, uint32_t num, const uint8_t **s, size_t *n) {
  const uint8_t *end = p + len;
  field f;
  bool found = false;
  while (next_field(&p, end, &f))
    if (f.num == num) {
      *s = f.p;
      *n = f.len;
      found = true;
    }
  return found;
}

/* Whether `rest` is the name `s` (n bytes), or starts with it and a dot
 * (then *after points past the dot). */
static int name_match(const char *rest, const uint8_t *s, size_t n, const char **after) {
  if (strncmp(rest, (const char *)s, n) != 0 || memchr(s, 0, n)) return 0;
  if (rest[n] == 0) return 1;
  if (rest[n] == '.') {
    *after = rest + n + 1;
    return 2;
  }
  return 0;
}

/* Field numbers of descriptor.proto. */
enum {
  FILE_PACKAGE = 2, FILE_MESSAGE = 4, FILE_ENUM = 5, FILE_SERVICE = 6, FILE_EXTENSION = 7,
  MSG_FIELD = 2, MSG_NESTED = 3, MSG_ENUM = 4, MSG_EXTENSION = 6,
  SERVICE_METHOD = 2, NAME = 1
};

/* Whether `rest` names something declared in the body of a message (or of
 * a file, `in_file`): messages (recursively), enums, fields, extensions,
 * services and their methods. */
static bool declares(const uint8_t *p, size_t len, const char *rest, bool in_file, int depth) {
  const uint8_t *end = p + len, *name;
  size_t n;
  field f;
  if (depth > 100) return false;
  while (next_field(&p, end, &f)) {
    bool message = in_file ? f.num == FILE_MESSAGE : f.num == MSG_NESTED;
    bool service = in_file && f.num == FILE_SERVICE;
    bool leaf = in_file ? f.num == FILE_ENUM || f.num == FILE_EXTENSION
                        : f.num == MSG_ENUM || f.num == MSG_FIELD || f.num == MSG_EXTENSION;
    if (!(message || service || leaf) || !string_field(f.p, f.len, NAME, &name, &n)) continue;
    const char *after = NULL;
    int m = name_match(rest, name, n, &after);
    if (m == 1) return true;
    if (m == 2 && message && declares(f.p, f.len, after, false, depth + 1)) return true;
    if (m == 2 && service) { /* its methods */
      const uint8_t *q = f.p, *qend = f.p + f.len;
      const char *unused;
      field g;
      while (next_field(&q, qend, &g))
        if (g.num == SERVICE_METHOD && string_field(g.p, g.len, NAME, &name, &n) &&
            name_match(after, name, n, &unused) == 1)
          return true;
    }
  }
  return false;
}

/* Whether the file declares `sym` ("pkg.Outer.Inner", no leading dot). */
static bool file_declares(const nnrpc_file_descriptor *fd, const char *sym) {
  const uint8_t *pkg = NULL;
  size_t n = 0;
  const char *rest = sym;
  if (string_field(fd->data, fd->len, FILE_PACKAGE, &pkg, &n) && n > 0 &&
      name_match(sym, pkg, n, &rest) != 2)
    return false;
  return declares(fd->data, fd->len, rest, true, 0);
}

/* ---------------------------------------------------------------- handlers */

static int by_name(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static int list_services(nnrpc_ctx *ctx, const ListReq *req, ListResp *reply) {
  (void)req;
  known k;
  if (gather(ctx, &k)) return NNRPC_RESOURCE_EXHAUSTED;
  char **names = nnrpc_ctx_alloc(ctx, (k.n_svcs ? k.n_svcs : 1) * sizeof *names);
  if (!names) return NNRPC_RESOURCE_EXHAUSTED;
  for (size_t i = 0; i < k.n_svcs; i++) names[i] = (char *)k.svcs[i]->name; /* only read */
  qsort(names, k.n_svcs, sizeof *names, by_name);
  reply->n_services = k.n_svcs;
  reply->services = names;
  return NNRPC_OK;
}

static int file_containing_symbol(nnrpc_ctx *ctx, const SymbolReq *req, FilesResp *reply) {
  known k;
  if (gather(ctx, &k)) return NNRPC_RESOURCE_EXHAUSTED;
  const char *sym = req->symbol[0] == '.' ? req->symbol + 1 : req->symbol;
  char *dotted = nnrpc_ctx_strdup(ctx, sym); /* "pkg.Service/Method" -> "pkg.Service.Method" */
  if (!dotted) return NNRPC_RESOURCE_EXHAUSTED;
  for (char *c = dotted; *c; c++)
    if (*c == '/') *c = '.';
  if (!*dotted) return nnrpc_ctx_fail(ctx, NNRPC_INVALID_ARGUMENT, "no symbol given");
  /* services first: a service without descriptors deserves its own message */
  for (size_t i = 0; i < k.n_svcs; i++) {
    const nnrpc_service *s = k.svcs[i];
    size_t n = strlen(s->name);
    if (strncmp(dotted, s->name, n) != 0 || (dotted[n] != 0 && dotted[n] != '.')) continue;
    if (s->n_files == 0)
      return nnrpc_ctx_fail(ctx, NNRPC_NOT_FOUND,
                            "service %s has no descriptors (its nnrpc_service was not made by "
                            "protoc-gen-nnrpc)", s->name);
    if (file_declares(s->files[0], dotted)) return answer_files(ctx, &k, s->files[0], reply);
  }
  for (size_t i = 0; i < k.n_files; i++)
    if (file_declares(k.files[i], dotted)) return answer_files(ctx, &k, k.files[i], reply);
  return nnrpc_ctx_fail(ctx, NNRPC_NOT_FOUND, "symbol %s not found on this server", sym);
}

static int file_by_filename(nnrpc_ctx *ctx, const FileReq *req, FilesResp *reply) {
  known k;
  if (gather(ctx, &k)) return NNRPC_RESOURCE_EXHAUSTED;
  const nnrpc_file_descriptor *f = find_file(&k, req->filename);
  if (!f) return nnrpc_ctx_fail(ctx, NNRPC_NOT_FOUND, "file %s not found on this server", req->filename);
  return answer_files(ctx, &k, f, reply);
}

/* ---------------------------------------------------------------- public */

NNRPC_API int nnrpc_server_enable_reflection(nnrpc_server *srv) {
  if (!srv) return NNRPC_INVALID_ARGUMENT;
  Nnrpc__Reflection__V1__ServerReflection_Handlers h = {
      .list_services = list_services,
      .file_containing_symbol = file_containing_symbol,
      .file_by_filename = file_by_filename,
  };
  return nnrpc__reflection__v1__server_reflection__handlers__register(srv, &h, srv);
}

NNRPC_API const nnrpc_service *nnrpc_reflection_service(void) {
  return &nnrpc__reflection__v1__server_reflection__nnrpc_service;
}
