#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "emit.h"
#include "utf8.h"

/* Appends one sanitized line (without its newline) to out. */
static void put_line(nnrpc_sb *out, const char *s, size_t n) {
  size_t start = out->len;
  char prev = '\0';
  for (size_t i = 0; i < n;) {
    uint32_t cp;
    size_t len = nnrpc_utf8_decode(s + i, n - i, &cp);
    if (len == 0 || (len > 1 && nnrpc_utf8_is_bidi_control(cp))) {
      /* bytes that are not UTF-8 (protoc passes them on), and controls
       * that could reorder how the code around is displayed (gcc's
       * -Wbidi-chars) */
      nnrpc_sb_puts(out, NNRPC_UTF8_REPLACEMENT);
      i += len ? len : 1;
      prev = '\0';
      continue;
    }
    if (len > 1) {
      nnrpc_sb_putn(out, s + i, len);
      i += len;
      prev = '\0';
      continue;
    }
    char c = s[i++];
    if (c == '\r') continue;
    if ((unsigned char)c < 0x20 || c == 0x7f) c = ' ';
    /* split "*" "/" and "/" "*" so the text can neither end nor nest a comment */
    if ((prev == '*' && c == '/') || (prev == '/' && c == '*')) nnrpc_sb_putc(out, ' ');
    nnrpc_sb_putc(out, c);
    prev = c;
  }
  if (out->failed) return;
  /* a line ending in a backslash (or its trigraph ??/), even before blanks,
   * would splice the next line onto it */
  for (;;) {
    size_t len = out->len - start;
    const char *line = out->s + start;
    if (len > 0 && (line[len - 1] == ' ' || line[len - 1] == '\t' || line[len - 1] == '\\'))
      out->len--;
    else if (len >= 3 && memcmp(line + len - 3, "?\?/", 3) == 0)
      out->len -= 3;
    else
      break;
    out->s[out->len] = '\0';
  }
}

bool nnrpc_emit_comment(nnrpc_sb *out, const char *indent, const char *text) {
  if (!text) return false;
  /* sanitize every line into one buffer, then drop blank lines at both ends */
  nnrpc_sb body = NNRPC_SB_INIT;
  for (const char *p = text;;) {
    const char *eol = strchr(p, '\n');
    size_t n = eol ? (size_t)(eol - p) : strlen(p);
    put_line(&body, p, n);
    nnrpc_sb_putc(&body, '\n');
    if (!eol) break;
    p = eol + 1;
  }
  if (body.failed) {
    out->failed = true;
    nnrpc_sb_free(&body);
    return false;
  }
  const char *first = body.s, *end = body.s + body.len;
  while (first < end && *first == '\n') first++;
  while (end > first && end[-1] == '\n') end--;
  if (first == end) {
    nnrpc_sb_free(&body);
    return false;
  }
  bool one_line = memchr(first, '\n', (size_t)(end - first)) == NULL;
  if (!one_line) nnrpc_sb_printf(out, "%s/*\n", indent);
  for (const char *p = first; p < end;) {
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    size_t n = eol ? (size_t)(eol - p) : (size_t)(end - p);
    /* always a blank after the opening star: a line starting with "/" must
     * not touch it */
    const char *gap = n > 0 && p[0] != ' ' ? " " : "";
    if (one_line)
      nnrpc_sb_printf(out, "%s/*%s%.*s */\n", indent, gap, (int)n, p);
    else if (n == 0)
      nnrpc_sb_printf(out, "%s *\n", indent);
    else
      nnrpc_sb_printf(out, "%s *%s%.*s\n", indent, gap, (int)n, p);
    p += n + 1;
  }
  if (!one_line) nnrpc_sb_printf(out, "%s */\n", indent);
  nnrpc_sb_free(&body);
  return true;
}
