#include "utf8.h"

size_t nnrpc_utf8_decode(const char *s, size_t n, uint32_t *cp) {
  const unsigned char *u = (const unsigned char *)s;
  if (n == 0) return 0;
  if (u[0] < 0x80) {
    *cp = u[0];
    return 1;
  }
  size_t len;
  uint32_t c, min;
  if ((u[0] & 0xE0) == 0xC0) {
    len = 2, c = u[0] & 0x1F, min = 0x80;
  } else if ((u[0] & 0xF0) == 0xE0) {
    len = 3, c = u[0] & 0x0F, min = 0x800;
  } else if ((u[0] & 0xF8) == 0xF0) {
    len = 4, c = u[0] & 0x07, min = 0x10000;
  } else {
    return 0; /* a continuation byte, or 0xF8..0xFF */
  }
  if (n < len) return 0;
  for (size_t i = 1; i < len; i++) {
    if ((u[i] & 0xC0) != 0x80) return 0;
    c = (c << 6) | (u[i] & 0x3F);
  }
  if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return 0;
  *cp = c;
  return len;
}

bool nnrpc_utf8_is_bidi_control(uint32_t cp) {
  return (cp >= 0x202A && cp <= 0x202E) || (cp >= 0x2066 && cp <= 0x2069);
}
