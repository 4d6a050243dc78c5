/* The layers under a connection (internal.h, ws__transport_t): pushed as a client's way
 * in goes on (TLS to a proxy, its CONNECT, TLS to the server), taken out when one is
 * done with, and the two ways through them: writes down, reads up. */
#include "internal.h"

void ws__tp_push(ws_conn_t *c, ws__transport_t *t) {
  t->below = c->tp;
  t->above = NULL;
  if (c->tp) c->tp->above = t;
  c->tp = t;
}

void ws__tp_remove(ws_conn_t *c, ws__transport_t *t) {
  if (t->above) t->above->below = t->below;
  else c->tp = t->below;
  if (t->below) t->below->above = t->above;
  t->above = t->below = NULL;
}

int ws__tp_write_below(ws_conn_t *c, ws__transport_t *t, const ws_iov_t *iov, unsigned n) {
  if (t->below) return t->below->ops->write(c, t->below, iov, n);
  return ws__conn_write_raw(c, iov, n);
}

void ws__tp_up(ws_conn_t *c, ws__transport_t *from, char *buf, size_t pre, size_t len) {
  ws__transport_t *to = from ? from->above : ws__tp_bottom(c);
  if (to) to->ops->on_read(c, to, buf + pre, len);
  else ws__conn_feed(c, buf, pre, len);
}

void ws__tp_free_all(ws_conn_t *c) {
  while (c->tp) {
    ws__transport_t *t = c->tp;
    c->tp = t->below;
    t->ops->free(t);
  }
}
