/* The per-loop state: the one read buffer, corking, script timers, byte queues. */
#include <stdlib.h>
#include <string.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <sys/mman.h>
#include <unistd.h>
#include "internal.h"

int ws__buf_append(ws_buf_t *b, const char *data, size_t len) {
  char *p = ws__buf_reserve(b, len);
  if (!p) return WS_ENOMEM;
  if (len) memcpy(p, data, len);
  b->m->len += len;
  return 0;
}

char *ws__buf_reserve(ws_buf_t *b, size_t len) {
  struct ws__bufmem *m = b->m, *nm;
  if (m && m->start + m->len + len <= m->cap) return m->data + m->start + m->len;
  if (m && m->start > 0 && m->len + len <= m->cap) {   /* slide back before growing */
    memmove(m->data, m->data + m->start, m->len);
    m->start = 0;
    return m->data + m->len;
  }
  size_t have = m ? m->len : 0, cap = m ? m->cap : 256;
  while (cap < have + len) {
    if (cap > (SIZE_MAX - sizeof *m) / 2) return NULL;
    cap *= 2;
  }
  if (!m || m->start == 0) {   /* realloc may grow in place (or by mremap): no copy then */
    if (!(nm = realloc(m, sizeof *nm + cap))) return NULL;
    if (!m) nm->start = nm->len = 0;
  } else {
    if (!(nm = malloc(sizeof *nm + cap))) return NULL;
    memcpy(nm->data, m->data + m->start, m->len);
    nm->start = 0;
    nm->len = m->len;
    free(m);
  }
  nm->cap = cap;
  b->m = nm;
  return nm->data + nm->len;
}

void ws__buf_commit(ws_buf_t *b, size_t len) {
  if (len) b->m->len += len;
}

void ws__buf_consume(ws_buf_t *b, size_t len) {
  struct ws__bufmem *m = b->m;
  if (!len) return;
  m->start += len;
  m->len -= len;
  if (m->len == 0) m->start = 0;
}

void ws__buf_clear(ws_buf_t *b) {
  if (b->m) b->m->start = b->m->len = 0;
}

void ws__buf_free(ws_buf_t *b) {
  free(b->m);
  b->m = NULL;
}

const ws__limits_t ws__no_limits;

#define WS__LIMITS_SEARCH 16   /* sets compared before a new one is made */

const ws__limits_t *ws__limits_get(ws_loop_t *l, const ws__limits_t *want) {
  int k = 0;
  for (ws__limits_t *p = l->limits; p && k < WS__LIMITS_SEARCH; p = p->next, k++)
    if (memcmp(p, want, WS__LIMITS_CMP) == 0) {
      p->refs++;
      return p;
    }
  ws__limits_t *p = malloc(sizeof *p);
  if (!p) return NULL;
  memcpy(p, want, WS__LIMITS_CMP);
  p->refs = 1;
  p->next = l->limits;   /* the newest first: the next conn likely wants the same */
  l->limits = p;
  return p;
}

void ws__limits_put(ws_loop_t *l, const ws__limits_t *lim) {
  if (lim == &ws__no_limits || --((ws__limits_t *)lim)->refs) return;
  for (ws__limits_t **pp = &l->limits; *pp; pp = &(*pp)->next)
    if (*pp == lim) {
      *pp = lim->next;
      break;
    }
  free((void *)lim);
}

#define WS__SWEEP_MAX 1000u   /* ms: the sweep's longest period */
#define WS__SWEEP_MIN 5u

ws_loop_t *ws_loop_new(uv_loop_t *uv, const ws_io_events_t *events, void *data) {
  ws_loop_t *l = calloc(1, sizeof *l);
  if (!l) return NULL;
  l->rbuf = malloc(WS__READ_BUF);
  if (!l->rbuf) {
    free(l);
    return NULL;
  }
  l->uv = uv;
  l->ev = events;
  l->data = data;
  l->sweep_ms = WS__SWEEP_MAX;
  if (ws__sock_loop_init(l) != 0) {
    free(l->rbuf);
    free(l);
    return NULL;
  }
  uv_timer_init(uv, &l->sweep);
  l->sweep.data = l;
  uv_unref((uv_handle_t *)&l->sweep);   /* deadlines alone keep no loop running */
  return l;
}

uv_loop_t *ws_loop_uv(ws_loop_t *l) { return l->uv; }

/* One page: a child made by fork() sees it zeroed (MADV_WIPEONFORK, Linux 4.14), so it
 * never sends its parent's keys, at no cost per key. */
struct ws__keys {
  uint32_t left;             /* unused bytes at the end of bytes */
  uint8_t bytes[4092];
};

int ws__mask_key(ws_loop_t *l, uint8_t key[4]) {
  if (!l->keys) {
    void *p = mmap(NULL, sizeof *l->keys, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                   -1, 0);
    if (p == MAP_FAILED) return WS_EINTERNAL;
#ifdef MADV_WIPEONFORK
    l->keys_wiped = madvise(p, sizeof *l->keys, MADV_WIPEONFORK) == 0;
#endif
    l->keys = p;
    l->keys_pid = getpid();
  }
  struct ws__keys *k = l->keys;
  if (!l->keys_wiped && l->keys_pid != getpid()) k->left = 0;   /* a forked child */
  if (k->left < 4) {
    if (ws_random(k->bytes, sizeof k->bytes) != 0) return WS_EINTERNAL;
    k->left = sizeof k->bytes;
    l->keys_pid = getpid();
  }
  k->left -= 4;
  memcpy(key, k->bytes + k->left, 4);
  memset(k->bytes + k->left, 0, 4);   /* a key is used once */
  return 0;
}
void *ws_loop_data(const ws_loop_t *l) { return l->data; }
ws_loop_t *ws_conn_loop(const ws_conn_t *c) { return c->loop; }
ws_loop_t *ws_server_loop(const ws_server_t *s) { return s->loop; }

int ws_loop_free(ws_loop_t *l) {
  if (l->nconns > 0) return UV_EBUSY;   /* conns still point at it: leave it be */
  uv_close((uv_handle_t *)&l->sweep, NULL);
  ws__sock_loop_close(l);
  uv_run(l->uv, UV_RUN_NOWAIT);          /* pending close callbacks (the uv loop is the
                                            caller's: it closes it, if it owns it) */
  ws__buf_free(&l->cork);
  ws_bytes_free(&l->scratch);
  if (l->keys) munmap(l->keys, sizeof *l->keys);
  ws__topics_free(l);
  free(l->rbuf);
  free(l);
  return 0;
}

/* ---- deadlines: one timer walks every conn ------------------------------------ *
 * Every conn's timeouts (handshake, idle and pong, message, send, close, ping) are
 * checked by one periodic walk, as uWebSockets does, rather than a libuv timer per
 * conn: an idle conn then costs a list link, not a timer handle. A timeout fires between
 * its time and a quarter of it later (the period is at most a quarter of the shortest
 * timeout in use, and at most a second). */

static void sweep_cb(uv_timer_t *t);

void ws__loop_sweep(ws_loop_t *l, uint32_t now) {
  uint32_t shortest = 0;
  ws_loop_cork(l);
  for (ws_conn_t *c = l->conns, *next; c; c = next) {
    next = c->next;   /* c may close, but is freed only in a later close callback */
    uint32_t m = ws__conn_sweep(c, now);
    if (m && (!shortest || m < shortest)) shortest = m;
  }
  ws_loop_uncork(l);
#ifdef __GLIBC__
  /* Parked conns freed zlib's 64 KiB tables, which glibc keeps in its heap: hand the
   * free pages back, so that idle connections cost what they hold. */
  if (l->freed) malloc_trim(0);
#endif
  l->freed = 0;
  /* Lengthen the period again once short timeouts are gone. */
  uint32_t want = shortest ? shortest / 4 : WS__SWEEP_MAX;
  if (want < WS__SWEEP_MIN) want = WS__SWEEP_MIN;
  if (want > WS__SWEEP_MAX) want = WS__SWEEP_MAX;
  if (want != l->sweep_ms && l->sweep_on) {   /* (a test's walk may find it stopped) */
    l->sweep_ms = want;
    uv_timer_start(&l->sweep, sweep_cb, want, want);
  }
}

static void sweep_cb(uv_timer_t *t) {
  ws_loop_t *l = t->data;
  ws__loop_sweep(l, ws__now(l));
}

void ws__loop_sweep_for(ws_loop_t *l, uint32_t timeout_ms) {
  uint32_t want = timeout_ms / 4;
  if (!timeout_ms) return;
  if (want < WS__SWEEP_MIN) want = WS__SWEEP_MIN;
  if (l->sweep_on && want >= l->sweep_ms) return;
  if (want < l->sweep_ms) l->sweep_ms = want;
  l->sweep_on = 1;
  uv_timer_start(&l->sweep, sweep_cb, l->sweep_ms, l->sweep_ms);
}

void ws__loop_link(ws_loop_t *l, ws_conn_t *c) {
  c->prev = NULL;
  c->next = l->conns;
  if (l->conns) l->conns->prev = c;
  l->conns = c;
  l->nconns++;
}

void ws__loop_unlink(ws_conn_t *c) {
  ws_loop_t *l = c->loop;
  if (c->prev) c->prev->next = c->next;
  else l->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  c->next = c->prev = NULL;
  if (--l->nconns == 0 && l->sweep_on) {
    uv_timer_stop(&l->sweep);
    l->sweep_on = 0;
  }
}

void ws_loop_cork(ws_loop_t *l) { l->cork_depth++; }

void ws_loop_uncork(ws_loop_t *l) {
  if (l->cork_depth > 0 && --l->cork_depth == 0) ws__conn_flush_cork(l);
}

struct ws__count {
  ws_loop_t *l;
  int n;
};

static void count_handle(uv_handle_t *h, void *arg) {
  struct ws__count *k = arg;
  if (!uv_is_closing(h) && !ws__loop_own_handle(k->l, h)) k->n++;
}

/* The sweep timer and the sockets' poll are the loop's own, not handles that anything
 * left open; each conn's socket counts as one, until it closes. */
int ws_loop_active_handles(ws_loop_t *l) {
  struct ws__count k = {l, l->live};
  uv_walk(l->uv, count_handle, &k);
  return k.n;
}

struct ws_timer {
  uv_timer_t h;
  void (*cb)(ws_timer_t *t, void *data);
  void *data;
};

static void timer_fire(uv_timer_t *h) {
  ws_timer_t *t = h->data;
  t->cb(t, t->data);
}

ws_timer_t *ws_timer_start(ws_loop_t *l, uint64_t ms, uint64_t repeat_ms,
                           void (*cb)(ws_timer_t *t, void *data), void *data) {
  ws_timer_t *t = malloc(sizeof *t);
  if (!t) return NULL;
  uv_timer_init(l->uv, &t->h);
  t->h.data = t;
  uv_update_time(l->uv);   /* a script may have run long since the loop last looked */
  t->cb = cb;
  t->data = data;
  uv_timer_start(&t->h, timer_fire, ms, repeat_ms);
  return t;
}

static void timer_free(uv_handle_t *h) { free(h->data); }

void ws_timer_stop(ws_timer_t *t) {
  uv_timer_stop(&t->h);
  uv_close((uv_handle_t *)&t->h, timer_free);
}
