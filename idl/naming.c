#include "naming.h"

#include <string.h>

/* ASCII only, whatever the locale: protoc identifiers are ASCII. */
static bool is_upper(char c) { return c >= 'A' && c <= 'Z'; }
static bool is_lower(char c) { return c >= 'a' && c <= 'z'; }
static bool is_alnum(char c) { return is_upper(c) || is_lower(c) || (c >= '0' && c <= '9'); }
static char to_lower(char c) { return is_upper(c) ? (char)(c - 'A' + 'a') : c; }
static char to_upper(char c) { return is_lower(c) ? (char)(c - 'a' + 'A') : c; }

/* CamelToLower and CamelToUpper differ only in the case they produce. */
static void camel_split(nnrpc_sb *out, const char *s, size_t n, char (*conv)(char)) {
  bool was_upper = true; /* no underscore before a leading capital */
  for (size_t i = 0; i < n; i++) {
    bool up = is_upper(s[i]);
    if (up && !was_upper) nnrpc_sb_putc(out, '_');
    nnrpc_sb_putc(out, conv(s[i]));
    was_upper = up;
  }
}

void nnrpc_camel_to_lower(nnrpc_sb *out, const char *s, size_t n) { camel_split(out, s, n, to_lower); }
void nnrpc_camel_to_upper(nnrpc_sb *out, const char *s, size_t n) { camel_split(out, s, n, to_upper); }

void nnrpc_to_camel(nnrpc_sb *out, const char *s, size_t n) {
  bool next_upper = true;
  for (size_t i = 0; i < n; i++) {
    if (s[i] == '_') {
      next_upper = true;
    } else {
      nnrpc_sb_putc(out, next_upper ? to_upper(s[i]) : s[i]);
      next_upper = false;
    }
  }
}

static void join_pieces(nnrpc_sb *out, const char *full_name,
                        void (*conv)(nnrpc_sb *, const char *, size_t)) {
  bool first = true;
  const char *p = full_name;
  for (;;) {
    const char *dot = strchr(p, '.');
    size_t n = dot ? (size_t)(dot - p) : strlen(p);
    if (n > 0) {
      if (!first) nnrpc_sb_puts(out, "__");
      conv(out, p, n);
      first = false;
    }
    if (!dot) break;
    p = dot + 1;
  }
}

void nnrpc_full_name_to_c(nnrpc_sb *out, const char *full_name) {
  join_pieces(out, full_name, nnrpc_to_camel);
}
void nnrpc_full_name_to_lower(nnrpc_sb *out, const char *full_name) {
  join_pieces(out, full_name, nnrpc_camel_to_lower);
}
void nnrpc_full_name_to_upper(nnrpc_sb *out, const char *full_name) {
  join_pieces(out, full_name, nnrpc_camel_to_upper);
}

static bool ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), k = strlen(suffix);
  return n >= k && strcmp(s + n - k, suffix) == 0;
}

void nnrpc_strip_proto(nnrpc_sb *out, const char *proto_path) {
  size_t n = strlen(proto_path);
  if (ends_with(proto_path, ".protodevel"))
    n -= strlen(".protodevel");
  else if (ends_with(proto_path, ".proto"))
    n -= strlen(".proto");
  nnrpc_sb_putn(out, proto_path, n);
}

const nnrpc_name_rule nnrpc_pbc_message_names[] = {
    {NNRPC_BASE_C, ""},
    {NNRPC_BASE_C, "_Closure"},
    {NNRPC_BASE_UPPER, "__INIT"},
    {NNRPC_BASE_LOWER, "__init"},
    {NNRPC_BASE_LOWER, "__descriptor"},
    /* pack helpers: only some messages get them, but listing them always
     * costs nothing (none of our names can end like these) */
    {NNRPC_BASE_LOWER, "__get_packed_size"},
    {NNRPC_BASE_LOWER, "__pack"},
    {NNRPC_BASE_LOWER, "__pack_to_buffer"},
    {NNRPC_BASE_LOWER, "__unpack"},
    {NNRPC_BASE_LOWER, "__free_unpacked"},
};
const size_t nnrpc_pbc_message_names_count = sizeof nnrpc_pbc_message_names / sizeof nnrpc_pbc_message_names[0];

const nnrpc_name_rule nnrpc_pbc_enum_names[] = {
    {NNRPC_BASE_C, ""},
    {NNRPC_BASE_LOWER, "__descriptor"},
};
const size_t nnrpc_pbc_enum_names_count = sizeof nnrpc_pbc_enum_names / sizeof nnrpc_pbc_enum_names[0];

const nnrpc_name_rule nnrpc_pbc_service_names[] = {
    {NNRPC_BASE_C, "_Service"},
    {NNRPC_BASE_C, "_ServiceDestroy"},
    {NNRPC_BASE_LOWER, "__init"},
    {NNRPC_BASE_LOWER, "__descriptor"},
    {NNRPC_BASE_UPPER, "__BASE_INIT"},
    {NNRPC_BASE_UPPER, "__INIT"},
};
const size_t nnrpc_pbc_service_names_count = sizeof nnrpc_pbc_service_names / sizeof nnrpc_pbc_service_names[0];

void nnrpc_header_guard(nnrpc_sb *out, const char *header_path) {
  const char *end = header_path + strlen(header_path);
  if (end - header_path > 2 && strcmp(end - 2, ".h") == 0) end -= 2;
  nnrpc_sb_puts(out, "NNRPC_GENERATED_");
  for (const char *p = header_path; p < end; p++) nnrpc_sb_putc(out, is_alnum(*p) ? to_upper(*p) : '_');
  nnrpc_sb_puts(out, "_H");
}

const char *nnrpc_reserved_c_name(const char *name) {
  static const char *const keywords[] = {
      /* C11's lowercase keywords */
      "auto", "break", "case", "char", "const", "continue", "default", "do", "double", "else", "enum",
      "extern", "float", "for", "goto", "if", "inline", "int", "long", "register", "restrict", "return",
      "short", "signed", "sizeof", "static", "struct", "switch", "typedef", "union", "unsigned", "void",
      "volatile", "while",
      /* C23's new ones (bool, true, false, static_assert are macros below) */
      "alignas", "alignof", "constexpr", "nullptr", "thread_local", "typeof", "typeof_unqual",
      /* GNU C's (-std=gnu11, the compilers' default) */
      "asm"};
  static const char *const macros[] = {
      /* <stdbool.h>, <stddef.h>, <assert.h>: included by <nnrpc/nnrpc.h> */
      "bool", "true", "false", "offsetof", "assert", "static_assert",
      /* predefined by gcc and clang in GNU modes */
      "linux", "unix", "i386"};
  if (name[0] == '_' && name[1] == '_') return "begins with two underscores, which C reserves for the compiler";
  for (size_t i = 0; i < sizeof keywords / sizeof keywords[0]; i++)
    if (strcmp(name, keywords[i]) == 0) return "is a C keyword";
  for (size_t i = 0; i < sizeof macros / sizeof macros[0]; i++)
    if (strcmp(name, macros[i]) == 0) return "is a standard C macro";
  return NULL;
}
