/* protoc-gen-nnrpc's request handling, apart from its I/O (main.c), so that
 * tests and the fuzzer (tests/fuzz/fuzz_plugin.c) can call it directly. */
#ifndef NNRPC_CODEGEN_PLUGIN_H
#define NNRPC_CODEGEN_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#define NNRPC_PLUGIN_BAD_REQUEST (-1) /* the bytes are not a CodeGeneratorRequest */
#define NNRPC_PLUGIN_NO_MEMORY (-2)

/* Turns a serialized CodeGeneratorRequest into a serialized
 * CodeGeneratorResponse (problems in the .proto files go into its `error`).
 * Returns 0 and sets *out (malloc'ed, *out_len bytes; the caller frees it),
 * or one of the codes above with *out NULL. Writes nothing anywhere. */
int nnrpc_plugin_handle(const uint8_t *in, size_t len, uint8_t **out, size_t *out_len);

#endif
