/* The per-loop state: the one read buffer, corking, script timers, byte queues. */
#include <stdlib.h>
#include <string.h>
#include "internal.h"

int ws__buf_append(ws_buf_t *b, const char *data, size_t len) {
  char *p = ws__buf_reserve(b, len);
  if (!p) return WS_ENOMEM;
  memcpy(p, data, len);
  b->len += len;
  return 0;
}

char *ws__buf_reserve(ws_buf_t *b, size_t len) {
  if (b->start + b->len + len <= b->cap) return b->base + b->start + b->len;
  if (b->start > 0 && b->len + len <= b->cap) {   /* slide back before growing */
    memmove(b->base, b->base + b->start, b->len);
    b->start = 0;
    return b->base + b->len;
  }
  size_t cap = b->cap ? b->cap : 256;
  while (cap < b->len + len) {
    if (cap > SIZE_MAX / 2) return NULL;
    cap *= 2;
  }
  char *nb;
  if (b->start == 0) {   /* realloc may grow in place (or by mremap): no copy then */
    if (!(nb = realloc(b->base, cap))) return NULL;
  } else {
    if (!(nb = malloc(cap))) return NULL;
    if (b->len) memcpy(nb, b->base + b->start, b->len);
    free(b->base);
  }
  b->base = nb;
  b->cap = cap;
  b->start = 0;
  return nb + b->len;
}

void ws__buf_consume(ws_buf_t *b, size_t len) {
  b->start += len;
  b->len -= len;
  if (b->len == 0) b->start = 0;
}

void ws__buf_free(ws_buf_t *b) {
  free(b->base);
  memset(b, 0, sizeof *b);
}

static ws_loop_t *the_loop;   /* one per process: luaws drives uv_default_loop() */

ws_loop_t *ws_loop_get(uv_loop_t *uv, const ws_io_events_t *events) {
  if (the_loop) return the_loop;
  ws_loop_t *l = calloc(1, sizeof *l);
  if (!l) return NULL;
  l->rbuf = malloc(WS__READ_BUF);
  if (!l->rbuf) {
    free(l);
    return NULL;
  }
  l->uv = uv;
  l->ev = events;
  the_loop = l;
  return l;
}

uv_loop_t *ws_loop_uv(ws_loop_t *l) { return l->uv; }

int ws_loop_free(ws_loop_t *l) {
  if (l->nconns > 0) return UV_EBUSY;   /* conns still point at it: leave it be */
  uv_run(l->uv, UV_RUN_NOWAIT);          /* pending close callbacks */
  int r = uv_loop_close(l->uv);
  if (r) return r;
  ws__buf_free(&l->cork);
  free(l->rbuf);
  free(l);
  the_loop = NULL;
  return 0;
}

void ws_loop_cork(ws_loop_t *l) { l->cork_depth++; }

void ws_loop_uncork(ws_loop_t *l) {
  if (l->cork_depth > 0 && --l->cork_depth == 0) ws__conn_flush_cork(l);
}

static void count_handle(uv_handle_t *h, void *arg) {
  if (!uv_is_closing(h)) ++*(int *)arg;
}

int ws_loop_active_handles(ws_loop_t *l) {
  int n = 0;
  uv_walk(l->uv, count_handle, &n);
  return n;
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
