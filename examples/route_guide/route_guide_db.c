/* Generates the RouteGuide database: see route_guide_db.h. */
#include "route_guide_db.h"

#include <stdio.h>

/* 10 x 10 word pairs give each of the 100 places its own first two words. */
static const char *const first_words[RG_DB_ROWS] = {
    "Amber", "Birch", "Cedar", "Dusky", "Elder", "Frosty", "Granite", "Hazel", "Ivory", "Juniper",
};
static const char *const second_words[RG_DB_COLS] = {
    "Fox", "Heron", "Lantern", "Meadow", "Otter", "Pine", "Raven", "Spring", "Willow", "Wren",
};
static const char *const kinds[] = {
    "Ridge", "Hollow", "Falls", "Crossing", "Point", "Bridge", "Pass", "Mill",
};
#define N_KINDS (sizeof kinds / sizeof kinds[0])

/* A fixed integer hash (the "lowbias32" mixer): spreads jitter and kinds
 * over the grid without any random state. */
static uint32_t mix32(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352dU;
  x ^= x >> 15;
  x *= 0x846ca68bU;
  x ^= x >> 16;
  return x;
}

/* An offset in [-STEP/4, STEP/4]: keeps every place nearer its own node
 * than half a step, which rectangle queries on half-step edges rely on. */
static int32_t jitter(uint32_t key) {
  return (int32_t)(mix32(key) % (RG_DB_STEP_E7 / 2 + 1)) - RG_DB_STEP_E7 / 4;
}

int32_t rg_db_node_lat(int row) { return RG_DB_ORIGIN_LAT_E7 + row * RG_DB_STEP_E7; }
int32_t rg_db_node_lon(int col) { return RG_DB_ORIGIN_LON_E7 + col * RG_DB_STEP_E7; }

void rg_db_init(rg_db *db) {
  db->count = 0;
  for (int row = 0; row < RG_DB_ROWS; row++) {
    for (int col = 0; col < RG_DB_COLS; col++) {
      uint32_t i = (uint32_t)(row * RG_DB_COLS + col);
      rg_place *p = &db->places[db->count++];
      p->latitude = rg_db_node_lat(row) + jitter(2 * i);
      p->longitude = rg_db_node_lon(col) + jitter(2 * i + 1);
      /* The row picks the first word and the column the second, so names are
       * unique; the kind only adds variety. */
      snprintf(p->name, sizeof p->name, "%s %s %s", first_words[row], second_words[col],
               kinds[mix32(i ^ 0x9e3779b9U) % N_KINDS]);
    }
  }
}

const rg_place *rg_db_find(const rg_db *db, int32_t latitude, int32_t longitude) {
  /* 100 entries: a linear scan is cheaper than any index worth writing. */
  for (size_t i = 0; i < db->count; i++)
    if (db->places[i].latitude == latitude && db->places[i].longitude == longitude)
      return &db->places[i];
  return NULL;
}
