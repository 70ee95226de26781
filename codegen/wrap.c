#include <stdlib.h>
#include <string.h>

#include "emit.h"

enum { MAX_DEPTH = 16 };

/* Where a line may break: the piece before it ends at `end`, the next one
 * starts at `next` (past the blank after a comma), at column `align`. */
typedef struct brk {
  size_t end, next, align;
  size_t group;  /* where the bracket's contents start */
  bool force;    /* always taken */
  bool checked;  /* by fall_back() */
} brk;

typedef struct brks {
  brk *v;
  size_t n, cap;
  bool oom;
} brks;

static void add_brk(brks *b, size_t at, brk k) {
  if (b->n == b->cap) {
    size_t cap = b->cap ? 2 * b->cap : 16;
    brk *v = realloc(b->v, cap * sizeof *v);
    if (!v) {
      b->oom = true;
      return;
    }
    b->v = v;
    b->cap = cap;
  }
  memmove(b->v + at + 1, b->v + at, (b->n - at) * sizeof *b->v);
  b->v[at] = k;
  b->n++;
}

/* The commas of s[0, n) that a line may break after, with the column just
 * inside their bracket ("{ a, b }" aligns on a, past the blank). */
static void find_commas(const char *s, size_t n, brks *b) {
  size_t open[MAX_DEPTH], depth = 0;
  bool quoted = false;
  for (size_t i = 0; i < n && !b->oom; i++) {
    char c = s[i];
    if (quoted) {
      if (c == '\\')
        i++;
      else if (c == '"')
        quoted = false;
    } else if (c == '"') {
      quoted = true;
    } else if (c == '/' && i + 1 < n && s[i + 1] == '*') {
      break; /* a trailing comment is not split */
    } else if (c == '(' || c == '{') {
      if (depth < MAX_DEPTH) open[depth] = i + 1 + (c == '{' && i + 1 < n && s[i + 1] == ' ');
      depth++;
    } else if ((c == ')' || c == '}') && depth > 0) {
      depth--;
    } else if (c == ',' && depth > 0 && depth <= MAX_DEPTH && i + 1 < n && s[i + 1] == ' ') {
      size_t g = open[depth - 1];
      add_brk(b, b->n, (brk){i + 1, i + 2, g, g, false, false});
    }
  }
}

/* A list whose pieces do not fit aligned inside its bracket starts on a
 * line of its own instead, indented by 4 from the line:
 *   int long_function_name(
 *       const Some__Long__Type *first, const Other__Type *second);  */
static void fall_back(size_t n, size_t indent, size_t width, brks *b) {
  for (size_t k = 0; k < b->n && !b->oom; k++) {
    if (b->v[k].checked) continue;
    size_t g = b->v[k].group; /* k is the group's first comma */
    bool fits = true;
    for (size_t j = k; j < b->n; j++) {
      if (b->v[j].group != g) continue;
      b->v[j].checked = true;
      size_t end = j + 1 < b->n ? b->v[j + 1].end : n;
      if (g + (end - b->v[j].next) > width) fits = false;
    }
    if (fits) continue;
    for (size_t j = k; j < b->n; j++)
      if (b->v[j].group == g) b->v[j].align = indent + 4;
    add_brk(b, k, (brk){g, g, indent + 4, g, true, true});
    k++;
  }
}

/* Writes one code line, broken at the commas of its parenthesized or braced
 * lists as needed to stay within `width` columns. */
static void put_wrapped(nnrpc_sb *out, const char *s, size_t n, size_t indent, size_t width) {
  brks b = {NULL, 0, 0, false};
  find_commas(s, n, &b);
  fall_back(n, indent, width, &b);
  if (b.oom) {
    free(b.v);
    nnrpc_sb_putn(out, s, n);
    return;
  }
  /* greedy: each piece goes on the current line if it fits */
  size_t start = 0, col = 0;
  for (size_t k = 0; k <= b.n; k++) {
    size_t end = k < b.n ? b.v[k].end : n; /* the piece is s[start, end) */
    size_t len = end - start;
    if (k > 0) {
      const brk *prev = &b.v[k - 1];
      bool blank = prev->next > prev->end;
      if (prev->force || col + blank + len > width) {
        nnrpc_sb_putc(out, '\n');
        for (size_t j = 0; j < prev->align; j++) nnrpc_sb_putc(out, ' ');
        col = prev->align;
      } else if (blank) {
        nnrpc_sb_putc(out, ' ');
        col++;
      }
    }
    nnrpc_sb_putn(out, s + start, len);
    col += len;
    if (k < b.n) start = b.v[k].next;
  }
  free(b.v);
}

/* Updates whether a block comment is open after the line s[0, n). */
static bool comment_open_after(const char *s, size_t n, bool open) {
  for (size_t i = 0; i + 1 < n; i++) {
    if (!open && s[i] == '/' && s[i + 1] == '*') {
      open = true;
      i++;
    } else if (open && s[i] == '*' && s[i + 1] == '/') {
      open = false;
      i++;
    }
  }
  return open;
}

void nnrpc_wrap_lines(nnrpc_sb *out, size_t from, size_t width) {
  if (out->failed || out->len <= from) return;
  size_t n = out->len - from;
  char *text = malloc(n);
  if (!text) {
    out->failed = true;
    return;
  }
  memcpy(text, out->s + from, n);
  out->len = from;
  out->s[from] = '\0';
  bool in_comment = false;
  for (size_t p = 0; p < n;) {
    const char *line = text + p;
    const char *eol = memchr(line, '\n', n - p);
    size_t len = eol ? (size_t)(eol - line) : n - p;
    size_t ind = 0;
    while (ind < len && line[ind] == ' ') ind++;
    bool code = !in_comment && ind < len && line[ind] != '#' && !(line[ind] == '/' && ind + 1 < len &&
                                                                  line[ind + 1] == '*');
    if (code && len > width)
      put_wrapped(out, line, len, ind, width);
    else
      nnrpc_sb_putn(out, line, len);
    in_comment = comment_open_after(line, len, in_comment);
    if (eol) nnrpc_sb_putc(out, '\n');
    p += len + (eol ? 1 : 0);
  }
  free(text);
}
