/* RouteGuide server: all four kinds of method over the generated database.
 *   route_guide_server [URL]        (default tcp://127.0.0.1:50051)
 * Runs until SIGINT or SIGTERM, then shuts down gracefully.
 *
 * Threading: GetFeature runs on the worker pool, each streaming call on a
 * thread of its own, so handlers run concurrently. The database is read-only
 * after start-up; the RouteChat notes are the only shared mutable state and
 * sit behind a mutex. */
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "route_guide.nnrpc.h"
#include "route_guide_db.h"

/* Bound the notes the server keeps, so chatty clients cannot exhaust its memory. */
#define MAX_NOTES 10000
#define MAX_NOTE_BYTES 1024

typedef struct note {
  int32_t latitude, longitude;
  char *message; /* malloc'ed */
} note;

/* Everything the handlers share, reached through nnrpc_ctx_user_data. */
typedef struct route_guide {
  rg_db db; /* read-only once the server runs */
  pthread_mutex_t mu;
  note *notes; /* guarded by mu: every note received, in arrival order */
  size_t n_notes, cap_notes;
} route_guide;

/* Written once in main before the signal handlers are installed, then only
 * read by them: the one global, as in greeter_server. */
static nnrpc_server *srv;

static void on_signal(int sig) {
  (void)sig;
  nnrpc_server_stop_async(srv); /* async-signal-safe; run() then shuts down gracefully */
}

static bool valid_point(const Routeguide__Point *p) {
  return p->latitude >= -900000000 && p->latitude <= 900000000 && p->longitude >= -1800000000 &&
         p->longitude <= 1800000000;
}

/* Great-circle distance in metres (haversine formula, mean Earth radius). */
static double distance_m(const Routeguide__Point *a, const Routeguide__Point *b) {
  const double radius = 6371000.0, rad_per_e7 = M_PI / 180.0 / 1e7;
  double lat1 = a->latitude * rad_per_e7, lat2 = b->latitude * rad_per_e7;
  /* differences in double: int32 E7 values can overflow when subtracted */
  double dlat = ((double)b->latitude - a->latitude) * rad_per_e7;
  double dlon = ((double)b->longitude - a->longitude) * rad_per_e7;
  double h = sin(dlat / 2) * sin(dlat / 2) + cos(lat1) * cos(lat2) * sin(dlon / 2) * sin(dlon / 2);
  if (h > 1) h = 1; /* rounding, for antipodal points: keeps sqrt(1 - h) real */
  return 2 * radius * atan2(sqrt(h), sqrt(1 - h));
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---------------------------------------------------------------- GetFeature (unary) */

static int get_feature(nnrpc_ctx *ctx, const Routeguide__Point *req, Routeguide__Feature *reply) {
  route_guide *rg = nnrpc_ctx_user_data(ctx);
  if (!valid_point(req))
    return nnrpc_ctx_fail(ctx, NNRPC_INVALID_ARGUMENT, "point (%d, %d) is off the globe",
                          (int)req->latitude, (int)req->longitude);
  Routeguide__Point *loc = nnrpc_ctx_alloc(ctx, sizeof *loc); /* freed after the reply is sent */
  if (!loc) return NNRPC_RESOURCE_EXHAUSTED;
  routeguide__point__init(loc);
  loc->latitude = req->latitude;
  loc->longitude = req->longitude;
  reply->location = loc;
  const rg_place *p = rg_db_find(&rg->db, req->latitude, req->longitude);
  /* The database outlives every call, so the reply may point into it; the
   * runtime only reads the reply. No feature: name stays "" (not an error). */
  if (p) reply->name = (char *)p->name;
  return NNRPC_OK;
}

/* ---------------------------------------------------------------- ListFeatures (server streaming) */

static int list_features(nnrpc_ctx *ctx, const Routeguide__Rectangle *req) {
  route_guide *rg = nnrpc_ctx_user_data(ctx);
  if (!req->lo || !req->hi) return nnrpc_ctx_fail(ctx, NNRPC_INVALID_ARGUMENT, "rectangle needs lo and hi");
  int32_t lat_min = req->lo->latitude < req->hi->latitude ? req->lo->latitude : req->hi->latitude;
  int32_t lat_max = req->lo->latitude < req->hi->latitude ? req->hi->latitude : req->lo->latitude;
  int32_t lon_min = req->lo->longitude < req->hi->longitude ? req->lo->longitude : req->hi->longitude;
  int32_t lon_max = req->lo->longitude < req->hi->longitude ? req->hi->longitude : req->lo->longitude;
  for (size_t i = 0; i < rg->db.count; i++) {
    const rg_place *p = &rg->db.places[i];
    if (p->latitude < lat_min || p->latitude > lat_max || p->longitude < lon_min || p->longitude > lon_max)
      continue;
    Routeguide__Point loc = ROUTEGUIDE__POINT__INIT;
    loc.latitude = p->latitude;
    loc.longitude = p->longitude;
    Routeguide__Feature f = ROUTEGUIDE__FEATURE__INIT;
    f.name = (char *)p->name; /* only read: __send encodes before it returns */
    f.location = &loc;
    /* Blocks while the client's window is full; CANCELLED means the call is over. */
    int rc = routeguide__route_guide__list_features__send(ctx, &f);
    if (rc != NNRPC_OK) return rc;
  }
  return NNRPC_OK;
}

/* ---------------------------------------------------------------- RecordRoute (client streaming) */

static int record_route(nnrpc_ctx *ctx, Routeguide__RouteSummary *reply) {
  route_guide *rg = nnrpc_ctx_user_data(ctx);
  double start = now_s(), distance = 0;
  Routeguide__Point prev = ROUTEGUIDE__POINT__INIT, *pt;
  int32_t points = 0, features = 0;
  while (routeguide__route_guide__record_route__recv(ctx, &pt) == 1) {
    Routeguide__Point cur = ROUTEGUIDE__POINT__INIT;
    cur.latitude = pt->latitude;
    cur.longitude = pt->longitude;
    routeguide__point__free_unpacked(pt, NULL); /* ours: __recv hands it over */
    if (!valid_point(&cur))
      return nnrpc_ctx_fail(ctx, NNRPC_INVALID_ARGUMENT, "point %d (%d, %d) is off the globe", (int)points,
                            (int)cur.latitude, (int)cur.longitude);
    if (points == INT32_MAX) return nnrpc_ctx_fail(ctx, NNRPC_OUT_OF_RANGE, "route too long");
    if (points > 0) distance += distance_m(&prev, &cur);
    if (rg_db_find(&rg->db, cur.latitude, cur.longitude)) features++;
    points++;
    prev = cur;
  }
  /* 0 from __recv also means "cancelled": the call then ends with that code
   * whatever we return, so a summary would be wasted. */
  if (nnrpc_ctx_is_cancelled(ctx)) return NNRPC_CANCELLED;
  reply->point_count = points;
  reply->feature_count = features;
  reply->distance = distance < INT32_MAX ? (int32_t)lround(distance) : INT32_MAX;
  reply->elapsed_time = (int32_t)(now_s() - start);
  return NNRPC_OK;
}

/* ---------------------------------------------------------------- RouteChat (bidirectional) */

static void free_strings(char **v, size_t n) {
  for (size_t i = 0; v && i < n; i++) free(v[i]);
  free(v);
}

/* Appends a note; takes `message` on success. Called with rg->mu held. */
static int store_note(route_guide *rg, int32_t lat, int32_t lon, char *message) {
  if (rg->n_notes == MAX_NOTES) return NNRPC_RESOURCE_EXHAUSTED;
  if (rg->n_notes == rg->cap_notes) {
    size_t cap = rg->cap_notes ? 2 * rg->cap_notes : 16;
    note *grown = realloc(rg->notes, cap * sizeof *grown);
    if (!grown) return NNRPC_RESOURCE_EXHAUSTED;
    rg->notes = grown;
    rg->cap_notes = cap;
  }
  rg->notes[rg->n_notes++] = (note){lat, lon, message};
  return NNRPC_OK;
}

/* Copies out the messages of the notes at (lat, lon), then stores a new note
 * there, under one lock: concurrent chats see one consistent history. The
 * copies are sent after unlocking, so a slow client never holds up the
 * others. On success *out (malloc'ed, *n strings) is the caller's. */
static int exchange_note(route_guide *rg, int32_t lat, int32_t lon, const char *message, char ***out,
                         size_t *n) {
  char *copy = strdup(message);
  if (!copy) return NNRPC_RESOURCE_EXHAUSTED;
  int rc = NNRPC_OK;
  char **earlier = NULL;
  size_t count = 0;
  pthread_mutex_lock(&rg->mu);
  for (size_t i = 0; i < rg->n_notes; i++)
    if (rg->notes[i].latitude == lat && rg->notes[i].longitude == lon) count++;
  if (count && !(earlier = calloc(count, sizeof *earlier))) rc = NNRPC_RESOURCE_EXHAUSTED;
  for (size_t i = 0, k = 0; rc == NNRPC_OK && k < count; i++) {
    if (rg->notes[i].latitude != lat || rg->notes[i].longitude != lon) continue;
    if (!(earlier[k++] = strdup(rg->notes[i].message))) rc = NNRPC_RESOURCE_EXHAUSTED;
  }
  if (rc == NNRPC_OK) rc = store_note(rg, lat, lon, copy);
  pthread_mutex_unlock(&rg->mu);
  if (rc != NNRPC_OK) {
    free_strings(earlier, count);
    free(copy);
    return rc;
  }
  *out = earlier;
  *n = count;
  return NNRPC_OK;
}

static int route_chat(nnrpc_ctx *ctx) {
  route_guide *rg = nnrpc_ctx_user_data(ctx);
  Routeguide__RouteNote *in;
  int rc = NNRPC_OK;
  while (rc == NNRPC_OK && routeguide__route_guide__route_chat__recv(ctx, &in) == 1) {
    if (!in->location || !valid_point(in->location)) {
      rc = nnrpc_ctx_fail(ctx, NNRPC_INVALID_ARGUMENT, "a note needs a location on the globe");
    } else if (strlen(in->message) > MAX_NOTE_BYTES) {
      rc = nnrpc_ctx_fail(ctx, NNRPC_INVALID_ARGUMENT, "a note holds at most %d bytes", MAX_NOTE_BYTES);
    } else {
      Routeguide__Point loc = ROUTEGUIDE__POINT__INIT; /* the replies' location: the same point */
      loc.latitude = in->location->latitude;
      loc.longitude = in->location->longitude;
      char **earlier = NULL;
      size_t n = 0;
      rc = exchange_note(rg, loc.latitude, loc.longitude, in->message, &earlier, &n);
      if (rc != NNRPC_OK) rc = nnrpc_ctx_fail(ctx, rc, "no room for more notes");
      for (size_t i = 0; i < n && rc == NNRPC_OK; i++) {
        Routeguide__RouteNote out = ROUTEGUIDE__ROUTE_NOTE__INIT;
        out.location = &loc;
        out.message = earlier[i];
        rc = routeguide__route_guide__route_chat__send(ctx, &out);
      }
      free_strings(earlier, n);
    }
    routeguide__route_note__free_unpacked(in, NULL);
  }
  return rc;
}

/* ---------------------------------------------------------------- main */

int main(int argc, char **argv) {
  const char *url = argc > 1 ? argv[1] : "tcp://127.0.0.1:50051";
  /* ~5 KB of places: on the heap, with the notes, for the handlers to share */
  route_guide *rg = calloc(1, sizeof *rg);
  if (!rg) return 1;
  rg_db_init(&rg->db);
  pthread_mutex_init(&rg->mu, NULL);

  Routeguide__RouteGuide_Handlers handlers = {
      .get_feature = get_feature,
      .list_features = list_features,
      .record_route = record_route,
      .route_chat = route_chat,
  };
  int rc;
  if ((rc = nnrpc_server_open(&srv, NULL)) ||
      (rc = routeguide__route_guide__handlers__register(srv, &handlers, rg)) ||
      (rc = nnrpc_server_enable_reflection(srv)) || /* for `nnrpc list/describe/call` */
      (rc = nnrpc_server_listen(srv, url))) {
    fprintf(stderr, "route_guide_server: %s: %s\n", url, nnrpc_strerror(rc));
    nnrpc_server_close(srv);
    pthread_mutex_destroy(&rg->mu);
    free(rg);
    return 1;
  }
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  printf("route_guide_server: listening on %s (%zu features)\n", url, rg->db.count);
  fflush(stdout); /* the demo script waits for this line */
  rc = nnrpc_server_run(srv);
  /* run() returns after the shutdown: no handler is running any more. */
  nnrpc_server_close(srv);
  size_t kept = rg->n_notes; /* no lock needed: no handler is left to race with */
  for (size_t i = 0; i < rg->n_notes; i++) free(rg->notes[i].message);
  free(rg->notes);
  pthread_mutex_destroy(&rg->mu);
  free(rg);
  printf("route_guide_server: stopped (%zu notes kept)\n", kept);
  return rc ? 1 : 0;
}
