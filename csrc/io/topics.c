/* Topics: the loop's registry of named groups of conns, for ws_loop_publish. A hash
 * table (open addressing, linear probing) keyed by the topic's bytes holds each topic's
 * subscribers in a dense array; each conn keeps the list of its subscriptions. Every
 * entry knows its twin's index in the other array, so subscribe, unsubscribe and leaving
 * every topic at close cost O(1) per subscription, and a publish O(subscribers). */
#include <stdlib.h>
#include <string.h>
#include "internal.h"

struct ws__subs {
  uint32_t n, cap;
  struct ws__sub {
    ws__topic_t *t;
    uint32_t at;       /* this conn's index in t->conns */
  } s[];
};

#define WS__TOPICS_MIN 8u   /* slots of a new table */

/* SipHash-1-3 with a key drawn per loop: topic names may come from peers, and a keyed
 * hash keeps them from choosing names that all collide (hash flooding). */
static uint64_t le64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
  return v;
}

#define ROTL(x, b) (((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                       \
  do {                                                                                 \
    v0 += v1, v1 = ROTL(v1, 13), v1 ^= v0, v0 = ROTL(v0, 32);                          \
    v2 += v3, v3 = ROTL(v3, 16), v3 ^= v2;                                             \
    v0 += v3, v3 = ROTL(v3, 21), v3 ^= v0;                                             \
    v2 += v1, v1 = ROTL(v1, 17), v1 ^= v2, v2 = ROTL(v2, 32);                          \
  } while (0)

static uint64_t topic_hash(const uint64_t key[2], const char *name, size_t len) {
  const uint8_t *p = (const uint8_t *)name, *end = p + (len & ~(size_t)7);
  uint64_t v0 = 0x736f6d6570736575ull ^ key[0], v1 = 0x646f72616e646f6dull ^ key[1];
  uint64_t v2 = 0x6c7967656e657261ull ^ key[0], v3 = 0x7465646279746573ull ^ key[1];
  uint64_t b = (uint64_t)len << 56;
  for (; p != end; p += 8) {
    uint64_t m = le64(p);
    v3 ^= m;
    SIPROUND;
    v0 ^= m;
  }
  for (size_t i = 0; i < (len & 7); i++) b |= (uint64_t)p[i] << (8 * i);
  v3 ^= b;
  SIPROUND;
  v0 ^= b;
  v2 ^= 0xff;
  SIPROUND;
  SIPROUND;
  SIPROUND;
  return v0 ^ v1 ^ v2 ^ v3;
}

/* The table slot holding the topic, or the empty slot where it would go. */
static uint32_t probe(const struct ws__topics *r, uint64_t h, const char *name, size_t len) {
  uint32_t mask = r->cap - 1, i = (uint32_t)h & mask;
  for (ws__topic_t *t; (t = r->tab[i]); i = (i + 1) & mask)
    if (t->hash == h && t->len == len && memcmp(t->name, name, len) == 0) break;
  return i;
}

static ws__topic_t *find(ws_loop_t *l, const char *name, size_t len) {
  struct ws__topics *r = &l->topics;
  if (!r->n || len > WS_TOPIC_MAX) return NULL;
  return r->tab[probe(r, topic_hash(r->key, name, len), name, len)];
}

/* Rehashes into cap slots (a power of 2 above the count); 0 or WS_ENOMEM. */
static int resize(struct ws__topics *r, uint32_t cap) {
  ws__topic_t **tab = calloc(cap, sizeof *tab);
  if (!tab) return WS_ENOMEM;
  for (uint32_t i = 0; i < r->cap; i++) {
    ws__topic_t *t = r->tab[i];
    if (!t) continue;
    uint32_t j = (uint32_t)t->hash & (cap - 1);
    while (tab[j]) j = (j + 1) & (cap - 1);
    tab[j] = t;
  }
  free(r->tab);
  r->memory += ((size_t)cap - r->cap) * sizeof *tab;
  r->tab = tab;
  r->cap = cap;
  return 0;
}

static ws__topic_t *create(ws_loop_t *l, const char *name, size_t len) {
  struct ws__topics *r = &l->topics;
  if (!r->tab) {
    if (ws_random(r->key, sizeof r->key) != 0) {   /* unkeyed is still a working table */
      r->key[0] = (uint64_t)(uintptr_t)l;
      r->key[1] = uv_hrtime();
    }
    if (resize(r, WS__TOPICS_MIN)) return NULL;
  } else if ((r->n + 1) * 2 > r->cap && resize(r, r->cap * 2)) {   /* load at most 1/2 */
    return NULL;
  }
  ws__topic_t *t = malloc(sizeof *t + len);
  if (!t) return NULL;
  memset(t, 0, sizeof *t);
  t->hash = topic_hash(r->key, name, len);
  t->len = (uint16_t)len;
  if (len) memcpy(t->name, name, len);
  r->tab[probe(r, t->hash, name, len)] = t;
  r->n++;
  r->memory += sizeof *t + len;
  return t;
}

/* Takes t out of the table (backward-shift deletion: no tombstones) and frees it. */
static void destroy(ws_loop_t *l, ws__topic_t *t) {
  struct ws__topics *r = &l->topics;
  uint32_t mask = r->cap - 1, i = probe(r, t->hash, t->name, t->len), j = i;
  r->tab[i] = NULL;
  for (;;) {
    j = (j + 1) & mask;
    ws__topic_t *u = r->tab[j];
    if (!u) break;
    uint32_t home = (uint32_t)u->hash & mask;
    /* u may fill the hole at i unless its home lies cyclically in (i, j] */
    if (i <= j ? (home <= i || home > j) : (home <= i && home > j)) {
      r->tab[i] = u;
      r->tab[j] = NULL;
      i = j;
    }
  }
  r->n--;
  r->memory -= sizeof *t + t->len + (size_t)t->cap * (sizeof *t->conns + sizeof *t->slot);
  free(t->conns);
  free(t);
  if (r->n == 0) {   /* no topic left: the table goes too */
    r->memory -= (size_t)r->cap * sizeof *r->tab;
    free(r->tab);
    r->tab = NULL;
    r->cap = 0;
  } else if (r->cap > WS__TOPICS_MIN && r->n * 8 < r->cap) {
    resize(r, r->cap / 2);   /* (if it fails, the bigger table still works) */
  }
}

/* t's member arrays with room for cap (>= t->n); 0 or WS_ENOMEM. */
static int topic_room(ws_loop_t *l, ws__topic_t *t, uint32_t cap) {
  char *mem = malloc((size_t)cap * (sizeof *t->conns + sizeof *t->slot));
  if (!mem) return WS_ENOMEM;
  ws_conn_t **conns = (ws_conn_t **)mem;
  uint32_t *slot = (uint32_t *)(mem + (size_t)cap * sizeof *conns);
  if (t->n) {
    memcpy(conns, t->conns, t->n * sizeof *conns);
    memcpy(slot, t->slot, t->n * sizeof *slot);
  }
  free(t->conns);
  l->topics.memory += ((size_t)cap - t->cap) * (sizeof *conns + sizeof *slot);
  t->conns = conns;
  t->slot = slot;
  t->cap = cap;
  return 0;
}

static size_t subs_size(uint32_t cap) {
  return sizeof(struct ws__subs) + (size_t)cap * sizeof(struct ws__sub);
}

static int subs_room(ws_conn_t *c, uint32_t cap) {
  uint32_t old = c->subs ? c->subs->cap : 0;
  struct ws__subs *s = realloc(c->subs, subs_size(cap));
  if (!s) return WS_ENOMEM;
  if (!c->subs) s->n = 0;
  s->cap = cap;
  c->subs = s;
  c->loop->topics.memory += subs_size(cap) - (old ? subs_size(old) : 0);
  return 0;
}

/* Index of t in c's list, or -1. Scans whichever is shorter: c's list or t's members. */
static long index_of(const ws_conn_t *c, const ws__topic_t *t) {
  const struct ws__subs *s = c->subs;
  if (!s || !t) return -1;
  if (s->n <= t->n) {
    for (uint32_t i = 0; i < s->n; i++)
      if (s->s[i].t == t) return (long)i;
  } else {
    for (uint32_t i = 0; i < t->n; i++)
      if (t->conns[i] == c) return (long)t->slot[i];
  }
  return -1;
}

/* Ends c's subscription at index i of its list: the last member of the topic and the
 * last entry of the list move into the holes, their twins told their new index. */
static void remove_at(ws_conn_t *c, uint32_t i) {
  ws_loop_t *l = c->loop;
  struct ws__subs *s = c->subs;
  ws__topic_t *t = s->s[i].t;
  uint32_t at = s->s[i].at, last = --t->n;
  if (at != last) {
    ws_conn_t *moved = t->conns[last];
    t->conns[at] = moved;
    t->slot[at] = t->slot[last];
    moved->subs->s[t->slot[at]].at = at;
  }
  last = --s->n;
  if (i != last) {
    s->s[i] = s->s[last];
    s->s[i].t->slot[s->s[i].at] = i;
  }
  l->topics.subscriptions--;
  if (t->n == 0) {
    if (l->topic_empty) l->topic_empty(l->backplane, t);
    if (!t->remote) destroy(l, t);
  } else if (t->cap >= 8 && t->n * 4 < t->cap) topic_room(l, t, t->cap / 2);
  if (s->n == 0) {
    l->topics.memory -= subs_size(s->cap);
    free(s);
    c->subs = NULL;
  } else if (s->cap >= 8 && s->n * 4 < s->cap) {
    subs_room(c, s->cap / 2);
  }
}

int ws_conn_subscribe(ws_conn_t *c, const char *topic, size_t len) {
  if (len > WS_TOPIC_MAX) return WS_EINVAL;
  /* Subscribers are sockets that are open or opening (a client before its 101, a
   * server's between accept and on_open); a closing one has left its topics. */
  if (c->state != WS__S_OPEN && c->state != WS__S_CONNECTING && c->state != WS__S_HANDSHAKE)
    return WS_ECLOSED;
  ws_loop_t *l = c->loop;
  ws__topic_t *t = find(l, topic, len);
  if (index_of(c, t) >= 0) return 0;
  if ((c->subs ? c->subs->n : 0) >= c->lim->max_subscriptions) return WS_ELIMIT;
  if (!t && !(t = create(l, topic, len))) return WS_ENOMEM;
  if ((t->n == t->cap && topic_room(l, t, t->cap ? t->cap * 2 : 1)) ||
      ((!c->subs || c->subs->n == c->subs->cap) && subs_room(c, c->subs ? c->subs->cap * 2 : 1))) {
    if (t->n == 0 && !t->remote) destroy(l, t);
    return WS_ENOMEM;
  }
  struct ws__subs *s = c->subs;
  t->conns[t->n] = c;
  t->slot[t->n] = s->n;
  s->s[s->n].t = t;
  s->s[s->n].at = t->n;
  t->n++;
  s->n++;
  l->topics.subscriptions++;
  if (t->n == 1 && l->topic_first) l->topic_first(l->backplane, t);
  return 1;
}

int ws_conn_unsubscribe(ws_conn_t *c, const char *topic, size_t len) {
  long i = index_of(c, find(c->loop, topic, len));
  if (i < 0) return 0;
  remove_at(c, (uint32_t)i);
  return 1;
}

int ws_conn_is_subscribed(const ws_conn_t *c, const char *topic, size_t len) {
  return index_of(c, find(c->loop, topic, len)) >= 0;
}

size_t ws_conn_subscriptions(const ws_conn_t *c) { return c->subs ? c->subs->n : 0; }

const char *ws_conn_topic(const ws_conn_t *c, size_t i, size_t *len) {
  if (!c->subs || i >= c->subs->n) return NULL;
  *len = c->subs->s[i].t->len;
  return c->subs->s[i].t->name;
}

void ws__topics_leave(ws_conn_t *c) {
  while (c->subs) remove_at(c, c->subs->n - 1);   /* the last: nothing moves in c's list */
}

size_t ws_loop_subscribers(ws_loop_t *l, const char *topic, size_t len) {
  ws__topic_t *t = find(l, topic, len);
  return t ? t->n : 0;
}

int ws_loop_publish(ws_loop_t *l, const char *topic, size_t tlen, int opcode, const char *data,
                    size_t len, ws_publish_t *out, void (*missed)(ws_conn_t *c, void *ud),
                    void *ud) {
  out->delivered = out->skipped = 0;
  if (tlen > WS_TOPIC_MAX || (opcode != WS_OP_TEXT && opcode != WS_OP_BINARY)) return WS_EINVAL;
  ws__topic_t *t = find(l, topic, tlen);
  if (!t) return 0;
  /* The sends work on a copy of the subscriber list: a conn that a send drops (its
   * back-pressure policy, a failed write, its server's memory budget) leaves its topics
   * at once, which reorders the list, and may empty and free the topic. The conns
   * themselves stay allocated until libuv's close callbacks, which run later. */
  size_t n = t->n, nmissed = 0;
  ws_conn_t *few[64], **snap = n <= 64 ? few : malloc(n * sizeof *snap);
  if (!snap) return WS_ENOMEM;
  memcpy(snap, t->conns, n * sizeof *snap);
  out->delivered = ws__loop_send_all(l, snap, n, opcode, data, len, missed ? &nmissed : NULL);
  out->skipped = n - out->delivered;
  for (size_t i = 0; i < nmissed; i++) missed(snap[i], ud);
  if (snap != few) free(snap);
  return 0;
}

void ws__topic_release(ws_loop_t *l, ws__topic_t *t) {
  if (t->n == 0 && !t->remote) destroy(l, t);
}

void ws__topics_free(ws_loop_t *l) {
  /* Every conn left its topics when it closed, so only an empty table can be here. */
  free(l->topics.tab);
  memset(&l->topics, 0, sizeof l->topics);
}
