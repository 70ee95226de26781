/* Just enough UTF-8 for text that ends up in the generated C: .proto
 * comments and file names arrive as protobuf `string`s, which protoc does
 * not check, and compilers object to some code points (gcc's
 * -Wbidi-chars, on by default). */
#ifndef NNRPC_IDL_UTF8_H
#define NNRPC_IDL_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Decodes the character at s (n > 0 bytes available): returns its length
 * (1..4) and sets *cp, or 0 if s does not start with well-formed UTF-8
 * (overlong forms, surrogates and code points above U+10FFFF included). */
size_t nnrpc_utf8_decode(const char *s, size_t n, uint32_t *cp);

/* The bidirectional embedding, override and isolate controls (U+202A..E,
 * U+2066..9) that gcc warns about when they are left unpaired. */
bool nnrpc_utf8_is_bidi_control(uint32_t cp);

/* U+FFFD REPLACEMENT CHARACTER, what stands in for what we cannot keep. */
#define NNRPC_UTF8_REPLACEMENT "\xEF\xBF\xBD"

#endif
