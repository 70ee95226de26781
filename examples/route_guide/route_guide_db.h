/* The RouteGuide feature database, shared by the server (which serves it) and
 * the client (which picks known points from it).
 *
 * It is not loaded from a file: rg_db_init generates it, the same on every
 * run and machine, as a ROWS x COLS grid of places around a fixed origin.
 * Each place sits within a quarter step of its grid node, so a rectangle
 * whose edges lie half a step outside a block of nodes holds exactly that
 * block's places (the client and the tests rely on that). Names are made up
 * from word lists. Coordinates are E7 degrees, as in route_guide.proto. */
#ifndef ROUTE_GUIDE_DB_H
#define ROUTE_GUIDE_DB_H

#include <stddef.h>
#include <stdint.h>

#define RG_DB_ROWS 10
#define RG_DB_COLS 10
#define RG_DB_SIZE (RG_DB_ROWS * RG_DB_COLS)
#define RG_DB_ORIGIN_LAT_E7 451000000  /* 45.1 N: grid node (0, 0) */
#define RG_DB_ORIGIN_LON_E7 72000000   /* 7.2 E */
#define RG_DB_STEP_E7 100000           /* 0.01 degree between grid nodes */
#define RG_DB_NAME_MAX 48

typedef struct rg_place {
  int32_t latitude;
  int32_t longitude;
  char name[RG_DB_NAME_MAX];
} rg_place;

typedef struct rg_db {
  size_t count;
  rg_place places[RG_DB_SIZE]; /* row-major: places[row * RG_DB_COLS + col] */
} rg_db;

/* Fills *db. Deterministic; the result is read-only afterwards, so any number
 * of threads may read it without a lock. */
void rg_db_init(rg_db *db);

/* The place at exactly (latitude, longitude), or NULL. */
const rg_place *rg_db_find(const rg_db *db, int32_t latitude, int32_t longitude);

/* Latitude / longitude of grid node row / col (no jitter). */
int32_t rg_db_node_lat(int row);
int32_t rg_db_node_lon(int col);

#endif
