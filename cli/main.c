/* nnrpc: a command line client for nnrpc servers (docs/tools.md).
 *
 *   nnrpc [options] list URL [SERVICE]
 *   nnrpc [options] describe URL SYMBOL
 *   nnrpc [options] call URL pkg.Service/Method [JSON | @FILE | -]
 *
 * The schema comes from the server's reflection service, or from .proto
 * files (--proto, compiled by protoc) or a descriptor set (--protoset).
 * Requests are JSON, turned into protobuf by cli/codec.c from the
 * descriptors; replies are printed as JSON. The exit status is the call's
 * status code (0 OK, 4 DEADLINE_EXCEEDED, ...), with "CODE: message" on
 * stderr; 64 for a bad command line. */
#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "codec.h"
#include "describe.h"
#include "nnrpc/nnrpc.h"
#include "nnrpc/reflection.nnrpc.h"
#include "pool.h"

#define EXIT_USAGE 64
#define DEFAULT_TIMEOUT_MS 10000

static const char usage_text[] =
    "usage: nnrpc [options] list URL [SERVICE]         the server's services, or a service's methods\n"
    "       nnrpc [options] describe URL SYMBOL        a service, method (pkg.Service/Method), message\n"
    "                                                  or enum as .proto text, with the types it uses\n"
    "       nnrpc [options] call URL pkg.Service/Method [JSON | @FILE | -]\n"
    "                                                  call a method; the request is JSON (default {},\n"
    "                                                  several objects for a client stream); replies\n"
    "                                                  are printed as JSON, one per line for streams\n"
    "options:\n"
    "  -H, --header 'key: value'   metadata sent with every call (repeatable)\n"
    "  -t, --timeout MS            deadline of each call in milliseconds [10000]; 0: none\n"
    "      --proto FILE            the schema from .proto files (repeatable; run through protoc)\n"
    "  -I, --import-path DIR       where --proto files and their imports are (repeatable)\n"
    "      --protoset FILE         the schema from a FileDescriptorSet (protoc --descriptor_set_out)\n"
    "      --emit-defaults         print fields that have their default value too\n"
    "  -c, --compact               print a unary reply on one line\n"
    "  -v, --verbose               print the reply's trailers on stderr\n"
    "  -h, --help                  this text\n"
    "Without --proto or --protoset the schema comes from the server's reflection service\n"
    "(nnrpc_server_enable_reflection). Exit status: the call's status code (0 OK, 3 INVALID_ARGUMENT,\n"
    "4 DEADLINE_EXCEEDED, 12 UNIMPLEMENTED, 14 UNAVAILABLE, ...), with CODE: message on stderr;\n"
    "64 for a bad command line.\n";

typedef struct options {
  nnrpc_metadata *headers;
  int64_t timeout_ms;
  const char **protos, **includes, **protosets;
  size_t n_protos, n_includes, n_protosets;
  int decode_flags;
  bool compact, verbose;
} options;

static options opt;
static const char *url;
static cli_pool pool;
static nnrpc_channel *ch;

/* Ends the program with a status code: "CODE: message" on stderr. */
static void die(int code, const char *fmt, ...) __attribute__((noreturn, format(printf, 2, 3)));
static void die(int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "%s: ", nnrpc_code_name(code));
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  nnrpc_channel_close(ch);
  pool_free(&pool);
  nnrpc_metadata_free(opt.headers);
  exit(code);
}

static void usage_error(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
static void usage_error(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("nnrpc: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputs("\n", stderr);
  va_end(ap);
  fputs(usage_text, stderr);
  exit(EXIT_USAGE);
}

static void push(const char ***list, size_t *n, const char *s) {
  const char **l = realloc(*list, (*n + 1) * sizeof *l);
  if (!l) die(NNRPC_RESOURCE_EXHAUSTED, "out of memory");
  l[(*n)++] = s;
  *list = l;
}

static void add_header(const char *kv) {
  const char *colon = strchr(kv, ':');
  if (!colon || colon == kv) usage_error("-H %s: expected 'key: value'", kv);
  size_t n = (size_t)(colon - kv);
  while (n && (kv[n - 1] == ' ' || kv[n - 1] == '\t')) n--;
  char *key = strndup(kv, n);
  if (!key) die(NNRPC_RESOURCE_EXHAUSTED, "out of memory");
  for (char *c = key; *c; c++)
    if (*c >= 'A' && *c <= 'Z') *c = (char)(*c - 'A' + 'a'); /* keys are lowercase, as in gRPC */
  const char *value = colon + 1;
  while (*value == ' ' || *value == '\t') value++;
  int rc = nnrpc_metadata_add_str(opt.headers, key, value);
  if (rc) {
    fprintf(stderr, "nnrpc: -H %s: a key is lowercase letters, digits, '-', '_' and '.'\n", kv);
    free(key);
    die(rc, "bad metadata key");
  }
  free(key);
}

static nnrpc_call_opts call_opts(nnrpc_metadata *trailers) {
  nnrpc_call_opts o = {.timeout_ms = opt.timeout_ms, .headers = opt.headers, .trailers = trailers};
  return o;
}

static void print_trailers(const nnrpc_metadata *md) {
  if (!opt.verbose || !md) return;
  for (size_t i = 0; i < nnrpc_metadata_count(md); i++) {
    const char *k;
    const void *v;
    size_t n;
    nnrpc_metadata_at(md, i, &k, &v, &n);
    fprintf(stderr, "trailer %s: %.*s\n", k, (int)n, (const char *)v);
  }
}

/* ---------------------------------------------------------------- files */

static char *read_stream(FILE *f, size_t *len) {
  size_t cap = 4096, n = 0;
  char *s = malloc(cap);
  while (s) {
    n += fread(s + n, 1, cap - n - 1, f);
    if (n < cap - 1) break;
    char *t = realloc(s, cap * 2);
    if (!t) free(s);
    s = t;
    cap *= 2;
  }
  if (!s) die(NNRPC_RESOURCE_EXHAUSTED, "out of memory");
  if (ferror(f)) {
    free(s);
    return NULL;
  }
  s[n] = 0;
  if (len) *len = n;
  return s;
}

static char *read_file(const char *path, size_t *len) {
  FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
  if (!f) die(NNRPC_INVALID_ARGUMENT, "%s: %s", path, strerror(errno));
  char *s = read_stream(f, len);
  if (f != stdin) fclose(f);
  if (!s) die(NNRPC_INVALID_ARGUMENT, "%s: cannot read it", path);
  return s;
}

/* ---------------------------------------------------------------- schema */

static void load_protoset(const char *path) {
  size_t len;
  char *data = read_file(path, &len);
  int rc = pool_add_set(&pool, (const uint8_t *)data, len);
  free(data);
  if (rc) die(NNRPC_INVALID_ARGUMENT, "%s: not a FileDescriptorSet (protoc --descriptor_set_out)", path);
}

/* protoc --descriptor_set_out=TMP --include_imports -I... FILES */
static void load_protos(void) {
  char tmp[] = "/tmp/nnrpc-protoset-XXXXXX";
  int fd = mkstemp(tmp);
  if (fd < 0) die(NNRPC_INTERNAL, "cannot create a temporary file: %s", strerror(errno));
  close(fd);
  size_t n = 0, cap = 4 + 2 * opt.n_protos + opt.n_includes;
  char **argv = calloc(cap, sizeof *argv);
  char *out_arg = malloc(sizeof "--descriptor_set_out=" + sizeof tmp);
  if (!argv || !out_arg) die(NNRPC_RESOURCE_EXHAUSTED, "out of memory");
  const char *protoc = getenv("PROTOC") ? getenv("PROTOC") : "protoc";
  sprintf(out_arg, "--descriptor_set_out=%s", tmp);
  argv[n++] = (char *)protoc;
  argv[n++] = out_arg;
  argv[n++] = (char *)"--include_imports";
  for (size_t i = 0; i < opt.n_includes; i++) {
    argv[n] = malloc(strlen(opt.includes[i]) + 3);
    if (!argv[n]) die(NNRPC_RESOURCE_EXHAUSTED, "out of memory");
    sprintf(argv[n++], "-I%s", opt.includes[i]);
  }
  if (opt.n_includes == 0) /* each file's own directory */
    for (size_t i = 0; i < opt.n_protos; i++) {
      const char *slash = strrchr(opt.protos[i], '/');
      int dl = slash ? (int)(slash - opt.protos[i]) : 1;
      argv[n] = malloc((size_t)dl + 3);
      if (!argv[n]) die(NNRPC_RESOURCE_EXHAUSTED, "out of memory");
      sprintf(argv[n++], "-I%.*s", dl, slash ? opt.protos[i] : ".");
    }
  for (size_t i = 0; i < opt.n_protos; i++) argv[n++] = (char *)opt.protos[i];
  argv[n] = NULL;
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    execvp(protoc, argv);
    fprintf(stderr, "nnrpc: cannot run %s: %s\n", protoc, strerror(errno));
    _exit(127);
  }
  int status = 0;
  while (pid > 0 && waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  for (size_t i = 3; i < n - opt.n_protos; i++) free(argv[i]);
  free(argv);
  free(out_arg);
  if (pid < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    unlink(tmp);
    die(NNRPC_INVALID_ARGUMENT, "protoc could not compile the --proto files (its messages are above)");
  }
  load_protoset(tmp);
  unlink(tmp);
}

static bool have_files_option(void) { return opt.n_protos || opt.n_protosets; }

static void load_local_schema(void) {
  for (size_t i = 0; i < opt.n_protosets; i++) load_protoset(opt.protosets[i]);
  if (opt.n_protos) load_protos();
}

static void open_channel(void) {
  if (ch) return;
  nnrpc_channel_opts o = {.default_timeout_ms = DEFAULT_TIMEOUT_MS};
  int rc = nnrpc_channel_open(&ch, url, &o);
  if (rc) die(rc, "cannot open a channel to %s (URLs look like tcp://host:port or ipc:///path)", url);
}

/* The reflection service's answer to a failure of one of its calls. */
static void reflection_failed(nnrpc_status st) {
  if (st.code == NNRPC_UNIMPLEMENTED)
    die(st.code, "the server at %s does not serve reflection (nnrpc_server_enable_reflection): "
                 "give its schema with --proto FILE [-I DIR] or --protoset FILE (server said: %s)",
        url, st.message);
  die(st.code, "reflection: %s", st.message);
}

/* The server's service names (reflection); the caller frees the reply. */
static Nnrpc__Reflection__V1__ListServicesResponse *list_services(void) {
  open_channel();
  Nnrpc__Reflection__V1__ListServicesRequest req = NNRPC__REFLECTION__V1__LIST_SERVICES_REQUEST__INIT;
  Nnrpc__Reflection__V1__ListServicesResponse *reply = NULL;
  nnrpc_call_opts o = call_opts(NULL);
  nnrpc_status st = nnrpc__reflection__v1__server_reflection__list_services__call(ch, &req, &reply, &o);
  if (st.code) reflection_failed(st);
  return reply;
}

/* "a, b, c" (malloc'ed) */
static char *join_names(const char *const *names, size_t n) {
  size_t l = 5;
  for (size_t i = 0; i < n; i++) l += strlen(names[i]) + 2;
  char *s = malloc(l);
  if (!s) return NULL;
  strcpy(s, n ? "" : "none");
  for (size_t i = 0; i < n; i++) {
    if (i) strcat(s, ", ");
    strcat(s, names[i]);
  }
  return s;
}

/* The services the schema (or the server) offers, for messages. */
static char *service_names(void) {
  if (!have_files_option()) {
    Nnrpc__Reflection__V1__ListServicesResponse *r = list_services();
    char *s = join_names((const char *const *)r->services, r->n_services);
    nnrpc__reflection__v1__list_services_response__free_unpacked(r, NULL);
    return s;
  }
  const char **names = calloc(pool.n_entries + 1, sizeof *names);
  size_t n = 0;
  for (size_t i = 0; names && i < pool.n_entries; i++)
    if (pool.entries[i].kind == POOL_SERVICE) names[n++] = pool.entries[i].full_name;
  char *s = names ? join_names(names, n) : NULL;
  free(names);
  return s;
}

/* Asks the server for the file defining `symbol` and its imports. Returns
 * false when the server knows no such symbol (NOT_FOUND). */
static bool fetch_symbol(const char *symbol) {
  open_channel();
  Nnrpc__Reflection__V1__FileContainingSymbolRequest req = NNRPC__REFLECTION__V1__FILE_CONTAINING_SYMBOL_REQUEST__INIT;
  req.symbol = (char *)symbol;
  Nnrpc__Reflection__V1__FileDescriptorResponse *reply = NULL;
  nnrpc_call_opts o = call_opts(NULL);
  nnrpc_status st = nnrpc__reflection__v1__server_reflection__file_containing_symbol__call(ch, &req, &reply, &o);
  if (st.code == NNRPC_NOT_FOUND) return false;
  if (st.code) reflection_failed(st);
  for (size_t i = 0; i < reply->n_file_descriptor_proto; i++)
    if (pool_add_file(&pool, reply->file_descriptor_proto[i].data, reply->file_descriptor_proto[i].len)) {
      nnrpc__reflection__v1__file_descriptor_response__free_unpacked(reply, NULL);
      die(NNRPC_INTERNAL, "reflection: the server sent a descriptor that does not parse");
    }
  nnrpc__reflection__v1__file_descriptor_response__free_unpacked(reply, NULL);
  return true;
}

/* The schema that defines `symbol`: from the server, or the local files. */
static bool load_schema_for(const char *symbol) {
  if (have_files_option()) {
    if (!pool.n_files) load_local_schema();
    return pool_find(&pool, symbol) != NULL;
  }
  return fetch_symbol(symbol);
}

/* Splits "pkg.Service/Method" (or "pkg.Service.Method"). */
static void split_method(const char *target, char **svc, const char **method) {
  const char *cut = strrchr(target, '/');
  if (!cut) cut = strrchr(target, '.');
  if (!cut || cut == target || !cut[1]) usage_error("%s: expected pkg.Service/Method", target);
  *svc = strndup(target[0] == '/' ? target + 1 : target, (size_t)(cut - target) - (target[0] == '/'));
  if (!*svc) die(NNRPC_RESOURCE_EXHAUSTED, "out of memory");
  *method = cut + 1;
}

/* ---------------------------------------------------------------- list / describe */

static int cmd_list(const char *service) {
  if (!service && !have_files_option()) {
    Nnrpc__Reflection__V1__ListServicesResponse *r = list_services();
    for (size_t i = 0; i < r->n_services; i++) printf("%s\n", r->services[i]);
    nnrpc__reflection__v1__list_services_response__free_unpacked(r, NULL);
    return 0;
  }
  if (!service) {
    load_local_schema();
    for (size_t i = 0; i < pool.n_entries; i++)
      if (pool.entries[i].kind == POOL_SERVICE) printf("%s\n", pool.entries[i].full_name);
    return 0;
  }
  const pool_entry *e = load_schema_for(service) ? pool_find_kind(&pool, service, POOL_SERVICE) : NULL;
  if (!e) {
    char *names = service_names();
    die(NNRPC_NOT_FOUND, "no service %s (services: %s)", service, names ? names : "?");
  }
  for (size_t i = 0; i < e->svc->n_method; i++) printf("%s/%s\n", e->full_name, e->svc->method[i]->name);
  return 0;
}

static int cmd_describe(const char *symbol) {
  const char *sym = symbol[0] == '.' ? symbol + 1 : symbol;
  if (!load_schema_for(sym)) {
    /* "pkg.Service/Method": the local schema knows the service */
    char *svc = NULL;
    const char *method = NULL;
    if (strchr(sym, '/')) split_method(sym, &svc, &method);
    bool found = svc && have_files_option() && pool_find(&pool, svc);
    free(svc);
    if (!found) {
      char *names = service_names();
      die(NNRPC_NOT_FOUND, "%s is not a service, method, message or enum of %s (services: %s)", sym,
          have_files_option() ? "the given files" : "the server", names ? names : "?");
    }
  }
  const pool_entry *e = pool_find(&pool, sym);
  if (e && e->kind == POOL_SERVICE) {
    describe_service(stdout, &pool, e, NULL);
    return 0;
  }
  if (e) {
    describe_type(stdout, &pool, e);
    return 0;
  }
  char *svc;
  const char *method;
  split_method(sym, &svc, &method);
  e = pool_find_kind(&pool, svc, POOL_SERVICE);
  const MethodProto *m = e ? pool_method(e->svc, method) : NULL;
  free(svc);
  if (!m) die(NNRPC_NOT_FOUND, "%s is not a service, method, message or enum the schema has", sym);
  describe_service(stdout, &pool, e, m);
  return 0;
}

/* ---------------------------------------------------------------- call */

/* The request text as a list of JSON values (a stream of them). */
static json_object **parse_requests(const char *text, size_t *n) {
  json_tokener *tok = json_tokener_new_ex(64);
  if (!tok) die(NNRPC_RESOURCE_EXHAUSTED, "out of memory");
  /* strict JSON; values one after another (a client stream's requests) */
  json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_ALLOW_TRAILING_CHARS | JSON_TOKENER_VALIDATE_UTF8);
  json_object **list = NULL;
  size_t count = 0, len = strlen(text), at = 0;
  for (;;) {
    while (at < len && strchr(" \t\r\n", text[at])) at++;
    if (at == len) break;
    json_tokener_reset(tok);
    /* the NUL too: it ends a number at the end of the text */
    json_object *v = json_tokener_parse_ex(tok, text + at, (int)(len - at + 1));
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    if (jerr == json_tokener_continue) jerr = json_tokener_error_parse_eof;
    if (jerr != json_tokener_success) {
      size_t where = at + json_tokener_get_parse_end(tok), from = where > 12 ? where - 12 : 0;
      json_tokener_free(tok);
      die(NNRPC_INVALID_ARGUMENT, "the request is not valid JSON: %s at offset %zu, near '%s%.*s'",
          json_tokener_error_desc(jerr), where, from ? "..." : "", (int)(where - from + (where < len)), text + from);
    }
    at += json_tokener_get_parse_end(tok);
    json_object **l = realloc(list, (count + 1) * sizeof *l);
    if (!l) die(NNRPC_RESOURCE_EXHAUSTED, "out of memory");
    list = l;
    list[count++] = v;
  }
  json_tokener_free(tok);
  *n = count;
  return list;
}

#define JSON_FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

/* Indented JSON, two spaces a level; empty objects and arrays as {} and []
 * (json-c's own pretty printer opens a line for them). */
static void print_pretty(json_object *v, int indent) {
  json_type t = json_object_get_type(v);
  bool empty = t == json_type_object ? json_object_object_length(v) == 0
               : t == json_type_array ? json_object_array_length(v) == 0
                                      : true;
  if (empty) {
    fputs(json_object_to_json_string_ext(v, JSON_FLAGS), stdout);
    return;
  }
  const char *sep = "";
  if (t == json_type_object) {
    fputs("{", stdout);
    json_object_object_foreach(v, key, val) {
      json_object *k = json_object_new_string(key);
      printf("%s\n%*s%s: ", sep, indent + 2, "", json_object_to_json_string_ext(k, JSON_FLAGS));
      json_object_put(k);
      print_pretty(val, indent + 2);
      sep = ",";
    }
    printf("\n%*s}", indent, "");
  } else {
    fputs("[", stdout);
    for (size_t i = 0; i < json_object_array_length(v); i++) {
      printf("%s\n%*s", sep, indent + 2, "");
      print_pretty(json_object_array_get_idx(v, i), indent + 2);
      sep = ",";
    }
    printf("\n%*s]", indent, "");
  }
}

static void print_json(json_object *v, bool compact) {
  if (compact)
    fputs(json_object_to_json_string_ext(v, JSON_FLAGS), stdout);
  else
    print_pretty(v, 0);
  fputc('\n', stdout);
  fflush(stdout);
}

static void print_reply(const char *type, const uint8_t *data, size_t len, bool compact) {
  json_object *v = NULL;
  char err[512];
  if (codec_decode(&pool, type, data, len, opt.decode_flags, &v, err, sizeof err))
    die(NNRPC_INTERNAL, "cannot decode the reply as %s: %s", type, err);
  print_json(v, compact);
  json_object_put(v);
}

typedef struct writer {
  nnrpc_stream *st;
  cli_buf *msgs;
  size_t n;
  int rc;
} writer;

static void *write_all(void *arg) {
  writer *w = arg;
  for (size_t i = 0; i < w->n && w->rc == NNRPC_OK; i++)
    w->rc = nnrpc_stream_write_raw(w->st, w->msgs[i].p, w->msgs[i].len);
  nnrpc_stream_close_send(w->st);
  return NULL;
}

static int cmd_call(const char *target, const char *request) {
  char *svc_name;
  const char *method_name;
  split_method(target, &svc_name, &method_name);
  const pool_entry *svc = load_schema_for(svc_name) ? pool_find_kind(&pool, svc_name, POOL_SERVICE) : NULL;
  if (!svc) {
    char *names = service_names();
    die(NNRPC_UNIMPLEMENTED, "unknown service %s (%s has: %s)", svc_name,
        have_files_option() ? "the schema" : "the server", names ? names : "?");
  }
  const MethodProto *m = pool_method(svc->svc, method_name);
  if (!m) {
    char names[512] = "";
    for (size_t i = 0, o = 0; i < svc->svc->n_method && o < sizeof names; i++) {
      int k = snprintf(names + o, sizeof names - o, "%s%s", i ? ", " : "", svc->svc->method[i]->name);
      o += k > 0 ? (size_t)k : 0;
    }
    die(NNRPC_UNIMPLEMENTED, "%s has no method %s (methods: %s)", svc->full_name, method_name, names);
  }
  const char *in_type = m->input_type[0] == '.' ? m->input_type + 1 : m->input_type;
  const char *out_type = m->output_type[0] == '.' ? m->output_type + 1 : m->output_type;
  bool cs = m->has_client_streaming && m->client_streaming, ss = m->has_server_streaming && m->server_streaming;
  char path[1024];
  snprintf(path, sizeof path, "/%s/%s", svc->full_name, m->name);

  /* the request(s): JSON -> wire bytes, all before the call starts */
  char *text = request && request[0] == '@' ? read_file(request + 1, NULL)
               : request && strcmp(request, "-") == 0 ? read_file("-", NULL)
                                                      : strdup(request ? request : "{}");
  if (!text) die(NNRPC_RESOURCE_EXHAUSTED, "out of memory");
  size_t n_req;
  json_object **reqs = parse_requests(text, &n_req);
  free(text);
  if (!cs && n_req > 1)
    die(NNRPC_INVALID_ARGUMENT, "%s is %s: it takes one request, got %zu", path, method_kind_name(m), n_req);
  json_object *empty = NULL;
  if (!cs && n_req == 0) { /* no request: {} */
    empty = json_object_new_object();
    reqs = realloc(reqs, sizeof *reqs);
    if (!reqs) die(NNRPC_RESOURCE_EXHAUSTED, "out of memory");
    reqs[0] = empty;
    n_req = 1;
  }
  cli_buf *msgs = calloc(n_req ? n_req : 1, sizeof *msgs);
  if (!msgs) die(NNRPC_RESOURCE_EXHAUSTED, "out of memory");
  for (size_t i = 0; i < n_req; i++) {
    char err[512];
    if (codec_encode(&pool, in_type, reqs[i], &msgs[i], err, sizeof err)) {
      if (n_req > 1) die(NNRPC_INVALID_ARGUMENT, "request %zu (%s): %s", i + 1, in_type, err);
      die(NNRPC_INVALID_ARGUMENT, "request (%s): %s", in_type, err);
    }
    json_object_put(reqs[i]);
  }
  free(reqs);

  open_channel();
  nnrpc_metadata *trailers = nnrpc_metadata_new();
  nnrpc_call_opts o = call_opts(trailers);
  nnrpc_status st;
  if (!cs && !ss) {
    uint8_t *reply = NULL;
    size_t reply_len = 0;
    st = nnrpc_unary_call_raw(ch, path, msgs[0].p, msgs[0].len, &reply, &reply_len, &o);
    if (st.code == NNRPC_OK) print_reply(out_type, reply, reply_len, opt.compact);
    free(reply);
  } else {
    nnrpc_stream *s = NULL;
    nnrpc_method_kind kind = cs && ss ? NNRPC_BIDI_STREAMING : cs ? NNRPC_CLIENT_STREAMING : NNRPC_SERVER_STREAMING;
    st = nnrpc_stream_open_raw(ch, path, kind, ss && !cs ? msgs[0].p : NULL, ss && !cs ? msgs[0].len : 0, &o, &s);
    if (st.code == NNRPC_OK) {
      writer w = {s, msgs, n_req, NNRPC_OK};
      pthread_t thr;
      bool threaded = false;
      if (cs && ss) /* bidi: write while reading */
        threaded = pthread_create(&thr, NULL, write_all, &w) == 0;
      if (cs && !threaded) write_all(&w);
      uint8_t *msg;
      size_t len;
      while (ss && nnrpc_stream_read_raw(s, &msg, &len) == 1) {
        print_reply(out_type, msg, len, true);
        free(msg);
      }
      if (threaded) pthread_join(thr, NULL);
      uint8_t *reply = NULL;
      size_t reply_len = 0;
      st = nnrpc_stream_finish_raw(s, cs && !ss ? &reply : NULL, cs && !ss ? &reply_len : NULL, trailers);
      if (st.code == NNRPC_OK && cs && !ss) print_reply(out_type, reply, reply_len, opt.compact);
      free(reply);
    }
  }
  for (size_t i = 0; i < n_req; i++) buf_free(&msgs[i]);
  free(msgs);
  free(svc_name);
  print_trailers(trailers);
  nnrpc_metadata_free(trailers);
  if (st.code != NNRPC_OK) die(st.code, "%s", st.message);
  return 0;
}

/* ---------------------------------------------------------------- main */

int main(int argc, char **argv) {
  enum { OPT_PROTO = 256, OPT_PROTOSET, OPT_EMIT_DEFAULTS };
  static const struct option longs[] = {
      {"header", required_argument, NULL, 'H'},       {"timeout", required_argument, NULL, 't'},
      {"proto", required_argument, NULL, OPT_PROTO},  {"import-path", required_argument, NULL, 'I'},
      {"protoset", required_argument, NULL, OPT_PROTOSET},
      {"emit-defaults", no_argument, NULL, OPT_EMIT_DEFAULTS},
      {"compact", no_argument, NULL, 'c'},            {"verbose", no_argument, NULL, 'v'},
      {"help", no_argument, NULL, 'h'},               {NULL, 0, NULL, 0}};
  opt.headers = nnrpc_metadata_new();
  opt.timeout_ms = DEFAULT_TIMEOUT_MS;
  if (!opt.headers) die(NNRPC_RESOURCE_EXHAUSTED, "out of memory");
  pool_init(&pool);
  int c;
  while ((c = getopt_long(argc, argv, "H:t:I:cvh", longs, NULL)) != -1) {
    switch (c) {
    case 'H': add_header(optarg); break;
    case 't': {
      char *end;
      errno = 0;
      long long t = strtoll(optarg, &end, 10);
      if (!*optarg || *end || errno || t < 0) usage_error("--timeout %s: expected milliseconds (0: none)", optarg);
      opt.timeout_ms = t == 0 ? -1 : t;
      break;
    }
    case OPT_PROTO: push(&opt.protos, &opt.n_protos, optarg); break;
    case 'I': push(&opt.includes, &opt.n_includes, optarg); break;
    case OPT_PROTOSET: push(&opt.protosets, &opt.n_protosets, optarg); break;
    case OPT_EMIT_DEFAULTS: opt.decode_flags |= CODEC_EMIT_DEFAULTS; break;
    case 'c': opt.compact = true; break;
    case 'v': opt.verbose = true; break;
    case 'h': fputs(usage_text, stdout); return 0;
    default: fputs(usage_text, stderr); return EXIT_USAGE;
    }
  }
  if (opt.n_includes && !opt.n_protos) usage_error("-I needs --proto FILE");
  int nargs = argc - optind;
  if (nargs < 1) usage_error("a command is needed: list, describe or call");
  const char *cmd = argv[optind];
  if (nargs < 2) usage_error("%s needs the server's URL (tcp://host:port, ipc:///path)", cmd);
  url = argv[optind + 1];
  int rc;
  if (strcmp(cmd, "list") == 0) {
    if (nargs > 3) usage_error("list takes URL [SERVICE]");
    rc = cmd_list(nargs == 3 ? argv[optind + 2] : NULL);
  } else if (strcmp(cmd, "describe") == 0) {
    if (nargs != 3) usage_error("describe takes URL SYMBOL");
    rc = cmd_describe(argv[optind + 2]);
  } else if (strcmp(cmd, "call") == 0) {
    if (nargs < 3 || nargs > 4) usage_error("call takes URL pkg.Service/Method [JSON]");
    rc = cmd_call(argv[optind + 2], nargs == 4 ? argv[optind + 3] : NULL);
  } else {
    usage_error("unknown command %s (list, describe, call)", cmd);
  }
  nnrpc_channel_close(ch);
  pool_free(&pool);
  nnrpc_metadata_free(opt.headers);
  free(opt.protos);
  free(opt.includes);
  free(opt.protosets);
  return rc;
}
