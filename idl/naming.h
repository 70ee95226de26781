/* C identifiers exactly as protoc-c 1.4 derives them (its c_helpers.cc):
 * one place for the rules the model and the emitters share. */
#ifndef NNRPC_IDL_NAMING_H
#define NNRPC_IDL_NAMING_H

/* "SayHello" -> "say_hello", "HTTPRequest" -> "httprequest" (an underscore
 * before an uppercase letter that follows a non-uppercase one). */
char *nnrpc_camel_to_lower(const char *name);
/* "foo_bar" -> "FooBar". */
char *nnrpc_to_camel(const char *name);
/* ".pkg.sub.Outer.Inner" -> "Pkg__Sub__Outer__Inner" (ToCamel per piece). */
char *nnrpc_full_name_to_c(const char *full_name);
/* ".pkg.Outer.Inner" -> "pkg__outer__inner" (CamelToLower per piece). */
char *nnrpc_full_name_to_lower(const char *full_name);
/* ".pkg.Outer.Inner" -> "PKG__OUTER__INNER" (CamelToUpper per piece). */
char *nnrpc_full_name_to_upper(const char *full_name);
/* "dir/x.proto" -> "dir/x" */
char *nnrpc_strip_proto(const char *file_name);
#endif
