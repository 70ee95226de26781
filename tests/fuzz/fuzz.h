/* Shared pieces of the libFuzzer targets (tests/fuzz/fuzz_*.c; docs/reliability.md).
 *
 * Inputs that carry several nanomsg messages are a list of records
 *   | u16 length (big-endian) | length bytes |
 * A length past the end of the input takes the rest, so every input is valid. */
#ifndef NNRPC_FUZZ_H
#define NNRPC_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "callhdr.h"
#include "internal.h"
#include "wire.h"

#include "async_test.pb-c.h"
#include "stream_test.pb-c.h"
#include "test.pb-c.h"
#include "nnrpc/wire.pb-c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* Takes the next record of the input; false when there are no more. */
static inline bool fz_next_record(const uint8_t **p, size_t *left, const uint8_t **rec, size_t *len) {
  if (*left < 2) return false;
  size_t n = nnrpc__get16(*p);
  *p += 2;
  *left -= 2;
  if (n > *left) n = *left;
  *rec = *p;
  *len = n;
  *p += n;
  *left -= n;
  return true;
}

/* A property the target checks does not hold: a bug. abort() so libFuzzer
 * saves the input. */
#define FZ_CHECK(cond, ...)                                             \
  do {                                                                  \
    if (!(cond)) {                                                      \
      fprintf(stderr, "fuzz check failed: %s (%s:%d): ", #cond, __FILE__, __LINE__); \
      fprintf(stderr, __VA_ARGS__);                                     \
      fputc('\n', stderr);                                              \
      abort();                                                          \
    }                                                                   \
  } while (0)

/* Every message type of the test protos (tests/protos) and the wire header. */
static const ProtobufCMessageDescriptor *const fz_descs[] = {
    &nnrpc_test__echo_request__descriptor,      &nnrpc_test__echo_reply__descriptor,
    &nnrpc_test__node__descriptor,              &nnrpc_stream_test__num__descriptor,
    &nnrpc_stream_test__total__descriptor,      &nnrpc_stream_test__range_request__descriptor,
    &nnrpc_async_test__delay_request__descriptor, &nnrpc_async_test__delay_reply__descriptor,
    &nnrpc__wire__call_header__descriptor,      &nnrpc__wire__metadata__descriptor,
};
#define FZ_NDESCS (sizeof fz_descs / sizeof fz_descs[0])

#endif
