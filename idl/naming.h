/* Every C name rule in one place: protoc-c 1.4.1's (its c_helpers.cc), which
 * we must match exactly to refer to its types, and ours, which must not clash
 * with them. The model computes all names with these; emitters only print. */
#ifndef NNRPC_IDL_NAMING_H
#define NNRPC_IDL_NAMING_H

#include <stdbool.h>
#include <stddef.h>

#include "strbuf.h"

/* ---- protoc-c's conversions of one name piece (appended to out) */

/* CamelToLower: "SayHello" -> "say_hello", "HTTPRequest" -> "httprequest",
 * "get_value" -> "get_value": an underscore goes before an uppercase letter
 * that follows a non-uppercase character, then everything is lowercased. */
void nnrpc_camel_to_lower(nnrpc_sb *out, const char *s, size_t n);
/* CamelToUpper: the same with uppercase: "SayHello" -> "SAY_HELLO". */
void nnrpc_camel_to_upper(nnrpc_sb *out, const char *s, size_t n);
/* ToCamel: drops underscores and uppercases the letter after each one and
 * the first: "hello_world" -> "HelloWorld", "HTTPRequest" unchanged. */
void nnrpc_to_camel(nnrpc_sb *out, const char *s, size_t n);

/* ---- full names: dot-separated pieces, empty pieces skipped, joined by "__" */

/* FullNameToC: "pkg.sub.Outer.Inner" -> "Pkg__Sub__Outer__Inner" (type names) */
void nnrpc_full_name_to_c(nnrpc_sb *out, const char *full_name);
/* FullNameToLower: -> "pkg__sub__outer__inner" (function/variable prefix) */
void nnrpc_full_name_to_lower(nnrpc_sb *out, const char *full_name);
/* FullNameToUpper: -> "PKG__SUB__OUTER__INNER" (macro prefix) */
void nnrpc_full_name_to_upper(nnrpc_sb *out, const char *full_name);

/* "dir/x.proto" -> "dir/x" (protoc-c's StripProto, which also strips ".protodevel") */
void nnrpc_strip_proto(nnrpc_sb *out, const char *proto_path);

/* ---- names protoc-c derives from a type: base name + suffix */

typedef enum nnrpc_name_base {
  NNRPC_BASE_C,     /* "Pkg__Foo" */
  NNRPC_BASE_LOWER, /* "pkg__foo" */
  NNRPC_BASE_UPPER  /* "PKG__FOO" */
} nnrpc_name_base;

typedef struct nnrpc_name_rule {
  nnrpc_name_base base;
  const char *suffix;
} nnrpc_name_rule;

/* Everything protoc-c declares at file scope for a message, an enum, a
 * service (plus, for a service, "<lower>__<method lower>" per method). */
extern const nnrpc_name_rule nnrpc_pbc_message_names[];
extern const size_t nnrpc_pbc_message_names_count;
extern const nnrpc_name_rule nnrpc_pbc_enum_names[];
extern const size_t nnrpc_pbc_enum_names_count;
extern const nnrpc_name_rule nnrpc_pbc_service_names[];
extern const size_t nnrpc_pbc_service_names_count;

/* ---- our names. P = protoc-c's service prefix ("helloworld__greeter"),
 * T = protoc-c's service type prefix ("Helloworld__Greeter"), M = protoc-c's
 * lower method name ("say_hello"), which is also the handler member. */

#define NNRPC_FMT_HANDLERS_TYPE "%s_Handlers"             /* T */
#define NNRPC_FMT_REGISTER "%s__handlers__register"       /* P */
#define NNRPC_FMT_METHODS "%s__methods"                   /* P, static */
#define NNRPC_FMT_SERVICE_DESC "%s__nnrpc_service"        /* P */
#define NNRPC_FMT_CALL "%s__%s__call"                     /* P, M */
#define NNRPC_FMT_START "%s__%s__start"                   /* P, M */
#define NNRPC_FMT_FINISH "%s__%s__finish"                 /* P, M */
#define NNRPC_FMT_INVOKE "%s__%s__invoke"                 /* P, M, static */
/* streaming methods (the finish stub of server and bidi streaming is
 * NNRPC_FMT_FINISH too, with another signature) */
#define NNRPC_FMT_OPEN "%s__%s__open"                     /* P, M */
#define NNRPC_FMT_WRITE "%s__%s__write"                   /* P, M */
#define NNRPC_FMT_READ "%s__%s__read"                     /* P, M */
#define NNRPC_FMT_CLOSE_SEND "%s__%s__close_send"         /* P, M */
#define NNRPC_FMT_CLOSE_AND_FINISH "%s__%s__close_and_finish" /* P, M */
#define NNRPC_FMT_RECV "%s__%s__recv"                     /* P, M, server side */
#define NNRPC_FMT_SEND "%s__%s__send"                     /* P, M, server side */

/* The include guard of a generated header, from its path: "dir/x-y.nnrpc.h"
 * -> "NNRPC_GENERATED_DIR_X_Y_NNRPC_H" (letters uppercased, every character
 * but letters and digits turned into '_'). */
void nnrpc_header_guard(nnrpc_sb *out, const char *header_path);

/* Why `name` (protoc-c's lowercase name of a method, which is also our
 * handler member) cannot be a member's name in C: it is a keyword (C11,
 * C23 or GNU), a lowercase macro of a header the generated code includes or
 * of gcc/clang, or begins with "__" (the compiler's own names, keywords and
 * macros among them: __int128, __linux, ...). NULL when it can. */
const char *nnrpc_reserved_c_name(const char *name);

#endif
