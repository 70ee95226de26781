/* RouteGuide client: one call of each kind, as in gRPC's route_guide example.
 *   route_guide_client [URL]        (default tcp://127.0.0.1:50051)
 * Every call has a deadline; every failure is printed with its status code.
 * Exits 0 only if all calls succeeded. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "route_guide.nnrpc.h"
#include "route_guide_db.h"

/* Per call, streams included: the deadline covers the whole stream. */
#define DEADLINE_MS 5000
#define ROUTE_POINTS 10
#define ROUTE_SEED 20240601u

typedef struct point_str {
  char s[48];
} point_str;

/* "(45.1234567, 7.2345678)"; a struct so it can be used inline in printf. */
static point_str fmt_point(int32_t latitude, int32_t longitude) {
  point_str p;
  snprintf(p.s, sizeof p.s, "(%.7f, %.7f)", latitude / 1e7, longitude / 1e7);
  return p;
}

/* Prints a failed status (at once: its message lives only until this
 * thread's next nnrpc call) and returns its code. */
static int report(const char *what, nnrpc_status st) {
  if (st.code != NNRPC_OK)
    fprintf(stderr, "route_guide_client: %s failed: %s: %s\n", what, nnrpc_code_name(st.code), st.message);
  return st.code;
}

/* A 32-bit LCG: the route is "random" but the same on every run, so the
 * demo output and the tests are reproducible. Its low bits are poor, so only
 * the high 16 are used. State is the caller's (no hidden global, unlike rand). */
static uint32_t next_random(uint32_t *state) {
  *state = *state * 1664525u + 1013904223u;
  return *state >> 16;
}

/* ---------------------------------------------------------------- GetFeature (unary) */

static int get_feature(nnrpc_channel *ch, int32_t latitude, int32_t longitude) {
  Routeguide__Point req = ROUTEGUIDE__POINT__INIT;
  req.latitude = latitude;
  req.longitude = longitude;
  Routeguide__Feature *f;
  nnrpc_call_opts opts = {.timeout_ms = DEADLINE_MS};
  int code = report("GetFeature", routeguide__route_guide__get_feature__call(ch, &req, &f, &opts));
  if (code != NNRPC_OK) return code;
  if (f->name[0])
    printf("GetFeature %s -> \"%s\"\n", fmt_point(latitude, longitude).s, f->name);
  else
    printf("GetFeature %s -> no feature\n", fmt_point(latitude, longitude).s);
  routeguide__feature__free_unpacked(f, NULL); /* ours on OK */
  return NNRPC_OK;
}

static int get_features(nnrpc_channel *ch, const rg_db *db) {
  const rg_place *known = &db->places[4 * RG_DB_COLS + 7];
  int code = get_feature(ch, known->latitude, known->longitude);
  if (code != NNRPC_OK) return code;
  return get_feature(ch, 0, 0); /* far from the map: nothing there */
}

/* ---------------------------------------------------------------- ListFeatures (server streaming) */

static int list_features(nnrpc_channel *ch, const rg_db *db) {
  (void)db;
  /* Grid rows 2-5 x columns 3-6, edges half a step outside the nodes: the
   * 16 places of that block and no other (see route_guide_db.h). */
  Routeguide__Point lo = ROUTEGUIDE__POINT__INIT, hi = ROUTEGUIDE__POINT__INIT;
  lo.latitude = rg_db_node_lat(2) - RG_DB_STEP_E7 / 2;
  lo.longitude = rg_db_node_lon(3) - RG_DB_STEP_E7 / 2;
  hi.latitude = rg_db_node_lat(5) + RG_DB_STEP_E7 / 2;
  hi.longitude = rg_db_node_lon(6) + RG_DB_STEP_E7 / 2;
  Routeguide__Rectangle rect = ROUTEGUIDE__RECTANGLE__INIT;
  rect.lo = &lo;
  rect.hi = &hi;
  printf("ListFeatures %s - %s:\n", fmt_point(lo.latitude, lo.longitude).s,
         fmt_point(hi.latitude, hi.longitude).s);

  nnrpc_call_opts opts = {.timeout_ms = DEADLINE_MS};
  nnrpc_stream *st;
  int code = report("ListFeatures", routeguide__route_guide__list_features__open(ch, &rect, &opts, &st));
  if (code != NNRPC_OK) return code;
  Routeguide__Feature *f;
  size_t n = 0;
  while (routeguide__route_guide__list_features__read(st, &f) == 1) { /* 0: over, for any reason */
    const Routeguide__Point *at = f->location;
    printf("  %-26s %s\n", f->name, at ? fmt_point(at->latitude, at->longitude).s : "(no location)");
    routeguide__feature__free_unpacked(f, NULL);
    n++;
  }
  /* finish says why the stream ended (and frees st) */
  code = report("ListFeatures", routeguide__route_guide__list_features__finish(st, NULL));
  if (code != NNRPC_OK) return code;
  printf("ListFeatures: %zu features\n", n);
  return NNRPC_OK;
}

/* ---------------------------------------------------------------- RecordRoute (client streaming) */

static int record_route(nnrpc_channel *ch, const rg_db *db) {
  nnrpc_call_opts opts = {.timeout_ms = DEADLINE_MS};
  nnrpc_stream *st;
  int code = report("RecordRoute", routeguide__route_guide__record_route__open(ch, &opts, &st));
  if (code != NNRPC_OK) return code;
  printf("RecordRoute: visiting %d places\n", ROUTE_POINTS);
  uint32_t seed = ROUTE_SEED;
  int write_rc = NNRPC_OK;
  for (int i = 0; i < ROUTE_POINTS && write_rc == NNRPC_OK; i++) {
    const rg_place *p = &db->places[next_random(&seed) % db->count];
    Routeguide__Point pt = ROUTEGUIDE__POINT__INIT;
    pt.latitude = p->latitude;
    pt.longitude = p->longitude;
    printf("  %-26s %s\n", p->name, fmt_point(p->latitude, p->longitude).s);
    write_rc = routeguide__route_guide__record_route__write(st, &pt);
  }
  /* A failed write may be local (the call goes on): cancel, so that no
   * summary of half a route counts as success. If the call had already
   * failed, cancel changes nothing and finish reports the server's reason. */
  if (write_rc != NNRPC_OK) {
    fprintf(stderr, "route_guide_client: RecordRoute write failed: %s\n", nnrpc_code_name(write_rc));
    nnrpc_stream_cancel(st);
  }
  Routeguide__RouteSummary *sum;
  code = report("RecordRoute", routeguide__route_guide__record_route__close_and_finish(st, &sum, NULL));
  if (code != NNRPC_OK) return code;
  if (write_rc != NNRPC_OK) { /* the call had ended OK before all points went out */
    routeguide__route_summary__free_unpacked(sum, NULL);
    return write_rc;
  }
  printf("RecordRoute: %d points, %d features, %d m, %d s\n", (int)sum->point_count, (int)sum->feature_count,
         (int)sum->distance, (int)sum->elapsed_time);
  routeguide__route_summary__free_unpacked(sum, NULL);
  return NNRPC_OK;
}

/* ---------------------------------------------------------------- RouteChat (bidirectional) */

/* Three places, two notes each: the second round of notes gets the first
 * round back (on a server that has seen no chat before). */
static const struct {
  int place; /* index into the database */
  const char *message;
} chat_notes[] = {
    {0, "First message"},  {1, "Second message"}, {RG_DB_COLS, "Third message"},
    {0, "Fourth message"}, {1, "Fifth message"},  {RG_DB_COLS, "Sixth message"},
};
#define N_CHAT_NOTES (sizeof chat_notes / sizeof chat_notes[0])

typedef struct chat_writer {
  nnrpc_stream *st;
  const rg_db *db;
  int rc; /* set by the writer thread, read after pthread_join */
} chat_writer;

/* Sends every note, then half-closes, while main() reads the replies: the
 * server may answer at any time, so reading and writing happen at once. */
static void *chat_write(void *arg) {
  chat_writer *w = arg;
  for (size_t i = 0; i < N_CHAT_NOTES && w->rc == NNRPC_OK; i++) {
    const rg_place *p = &w->db->places[chat_notes[i].place];
    Routeguide__Point loc = ROUTEGUIDE__POINT__INIT;
    loc.latitude = p->latitude;
    loc.longitude = p->longitude;
    Routeguide__RouteNote note = ROUTEGUIDE__ROUTE_NOTE__INIT;
    note.location = &loc;
    note.message = (char *)chat_notes[i].message; /* only read: encoded before __write returns */
    w->rc = routeguide__route_guide__route_chat__write(w->st, &note);
  }
  if (w->rc == NNRPC_OK) w->rc = routeguide__route_guide__route_chat__close_send(w->st);
  /* On a failed write, end the call so the reader is not left waiting. */
  if (w->rc != NNRPC_OK) nnrpc_stream_cancel(w->st);
  return NULL;
}

static int route_chat(nnrpc_channel *ch, const rg_db *db) {
  nnrpc_call_opts opts = {.timeout_ms = DEADLINE_MS};
  nnrpc_stream *st;
  int code = report("RouteChat", routeguide__route_guide__route_chat__open(ch, &opts, &st));
  if (code != NNRPC_OK) return code;
  printf("RouteChat: sending %zu notes at 3 places\n", N_CHAT_NOTES);
  chat_writer w = {.st = st, .db = db, .rc = NNRPC_OK};
  pthread_t writer;
  if (pthread_create(&writer, NULL, chat_write, &w)) {
    fprintf(stderr, "route_guide_client: RouteChat: cannot start the writer thread\n");
    nnrpc_stream_cancel(st);
    routeguide__route_guide__route_chat__finish(st, NULL); /* frees st */
    return NNRPC_INTERNAL;
  }
  Routeguide__RouteNote *note;
  size_t n = 0;
  while (routeguide__route_guide__route_chat__read(st, &note) == 1) {
    const Routeguide__Point *at = note->location;
    printf("  got \"%s\" at %s\n", note->message, at ? fmt_point(at->latitude, at->longitude).s : "(nowhere)");
    routeguide__route_note__free_unpacked(note, NULL);
    n++;
  }
  pthread_join(writer, NULL); /* before finish: the stream must outlive the writer */
  if (w.rc != NNRPC_OK) /* printed here: the writer thread only records it */
    fprintf(stderr, "route_guide_client: RouteChat write failed: %s\n", nnrpc_code_name(w.rc));
  code = report("RouteChat", routeguide__route_guide__route_chat__finish(st, NULL));
  if (code != NNRPC_OK) return code;
  if (w.rc != NNRPC_OK) return w.rc;
  printf("RouteChat: %zu notes received\n", n);
  return NNRPC_OK;
}

/* ---------------------------------------------------------------- main */

int main(int argc, char **argv) {
  const char *url = argc > 1 ? argv[1] : "tcp://127.0.0.1:50051";
  rg_db db; /* the server's database, rebuilt here to pick known points */
  rg_db_init(&db);
  nnrpc_channel *ch;
  if (nnrpc_channel_open(&ch, url, NULL)) {
    fprintf(stderr, "route_guide_client: cannot open a channel to %s\n", url);
    return 1;
  }
  static const struct {
    int (*run)(nnrpc_channel *, const rg_db *);
  } steps[] = {{get_features}, {list_features}, {record_route}, {route_chat}};
  int failures = 0;
  for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
    int code = steps[i].run(ch, &db);
    if (code == NNRPC_OK) continue;
    failures++;
    /* No server, or none answering: the other calls would only time out too. */
    if (code == NNRPC_UNAVAILABLE || code == NNRPC_DEADLINE_EXCEEDED) break;
  }
  nnrpc_channel_close(ch);
  return failures ? 1 : 0;
}
