/* Scripted sockets for tests (scripted.h): the socket calls played against byte
 * buffers. Readiness waits for ws_script_run, as a socket's waits for the loop; a closed
 * conn is freed at the loop's next turn (ws__loop_reap), as a real one is. */
#include <stdlib.h>
#include <string.h>
#include "internal.h"
#include "scripted.h"

struct ws_script {
  ws_conn_t *conn;
  ws_loop_t *loop;
  ws_script_t *next;        /* the loop's scripts */
  ws_buf_t in;              /* pushed, not read yet */
  ws_buf_t out;             /* what the peer read */
  size_t taken;             /* bytes of out handed to the test by the last take */
  size_t window;            /* bytes the peer still reads */
  int eof, fin, orphan;
};

static const ws__stream_ops_t script_ops;

/* Tests have a few scripted conns: a walk finds a conn's script. */
static ws_script_t *script_of(const ws_conn_t *c) {
  for (ws_script_t *p = c->loop->scripts; p; p = p->next)
    if (p->conn == c) return p;
  return NULL;
}

/* Moves up to len bytes to the peer, as its window allows; returns how many. */
static size_t peer_reads(ws_script_t *p, const char *data, size_t len) {
  size_t n = len < p->window ? len : p->window;
  if (!n || ws__buf_append(&p->out, data, n) != 0) return 0;
  if (p->window != SIZE_MAX) p->window -= n;
  return n;
}

static int s_want(ws_conn_t *c, unsigned ev) {
  c->io_ev = (uint8_t)ev;   /* what waits arrives at the next turn, never inside this call */
  return 0;
}

static ssize_t s_read(ws_conn_t *c, char *buf, size_t len) {
  ws_script_t *p = script_of(c);
  if (!ws__buf_len(&p->in)) {
    if (!p->eof) return UV_EAGAIN;
    p->eof = 0;
    return 0;
  }
  size_t n = ws__buf_len(&p->in) < len ? ws__buf_len(&p->in) : len;
  memcpy(buf, ws__buf_data(&p->in), n);
  ws__buf_consume(&p->in, n);
  return (ssize_t)n;
}

static ssize_t s_write(ws_conn_t *c, const ws_iov_t *iov, unsigned n) {
  ws_script_t *p = script_of(c);
  size_t took = 0;
  if (p->fin) return UV_EPIPE;
  for (unsigned i = 0; i < n; i++) {
    size_t k = iov[i].len ? peer_reads(p, iov[i].base, iov[i].len) : 0;
    took += k;
    if (k < iov[i].len) break;
  }
  return took ? (ssize_t)took : UV_EAGAIN;
}

static int s_shutdown(ws_conn_t *c) {
  ws_script_t *p = script_of(c);
  if (p->fin) return UV_EINVAL;
  p->fin = 1;
  return 0;
}

static void s_close(ws_conn_t *c) {
  ws_script_t *p = script_of(c);
  c->io_ev = 0;
  if (!p) return;
  p->conn = NULL;
  if (p->orphan) ws_script_free(p);
}

static int s_peer(const ws_conn_t *c, struct sockaddr_storage *ss) {
  (void)c, (void)ss;
  return UV_ENOTCONN;   /* a script has no address */
}

static const ws__stream_ops_t script_ops = {s_want, s_read, s_write, s_shutdown, s_close, s_peer};

/* Input waiting for a reading conn arrives, in reads as big as its buffer; then EOF. */
static void deliver(ws_script_t *p) {
  while (p->conn && p->conn->io_ev & WS__IO_READ && (ws__buf_len(&p->in) || p->eof)) {
    size_t before = ws__buf_len(&p->in);
    int eof = p->eof;
    ws__conn_io(p->conn, WS__IO_READ);
    if (p->conn && ws__buf_len(&p->in) == before && p->eof == eof) break;   /* it read nothing */
  }
  if (!ws__buf_len(&p->in)) ws__buf_free(&p->in);
}

static void turn(ws_script_t *p) {
  while (p->conn && p->conn->io_ev & WS__IO_WRITE && p->window) {
    size_t before = ws__buf_len(&p->out);
    ws__conn_io(p->conn, WS__IO_WRITE);
    if (ws__buf_len(&p->out) == before) break;
  }
  deliver(p);
}

int ws_script_run(ws_loop_t *l, uv_run_mode mode) {
  /* A conn is freed only at the loop's turn after its close, inside uv_run: the list
   * holds still. */
  for (ws_conn_t *c = l->conns; c; c = c->next)
    if (c->flags & WS__F_SCRIPTED) {
      ws_script_t *p = script_of(c);
      if (p) turn(p);
    }
  return uv_run(l->uv, mode);
}

void ws_script_sweep(ws_loop_t *l, uint32_t ahead_ms) {
  ws__loop_sweep(l, ws__now(l) + ahead_ms);
}

static ws_script_t *attach(ws_conn_t *c) {
  ws_script_t *p = calloc(1, sizeof *p);
  if (!p) return NULL;
  p->conn = c;
  p->window = SIZE_MAX;
  p->loop = c->loop;
  p->next = c->loop->scripts;
  c->loop->scripts = p;
  c->loop->script_io = &script_ops;
  c->flags |= WS__F_SCRIPTED;
  return p;
}

ws_server_t *ws_script_server(ws_loop_t *l, const ws_server_options_t *o, void *data) {
  return ws__server_new(l, o, NULL, data, AF_UNSPEC);
}

ws_script_t *ws_script_accept(ws_loop_t *l, ws_server_t *s) {
  ws_conn_t *c = ws__conn_new(l);
  if (!c) return NULL;
  ws_script_t *p = attach(c);
  if (!p) {
    ws__conn_destroy(c, 1006, 0);
    return NULL;
  }
  if (s) {
    ws__server_start(s, c);
  } else {
    ws_conn_options_t o;
    ws_conn_options_default(&o);
    ws__conn_apply_options(c, &o, WS_ROLE_SERVER);
    c->state = WS__S_HTTP;
    ws__conn_start_read(c);
  }
  return p;
}

ws_script_t *ws_script_connect_proxy(ws_loop_t *l, const char *path, const char *host,
                                     const char *protocols, const char *extra_headers,
                                     const ws_conn_options_t *o,
                                     const ws_proxy_options_t *proxy, void *data) {
  ws_conn_t *c;
  if (ws__client_new(l, &c, path, host, protocols, extra_headers, o, 0, data) != 0)
    return NULL;
  ws_script_t *p = attach(c);
  if (!p) {
    ws_conn_terminate(c);
    return NULL;
  }
  if (ws__client_way_in(c, 0, host, 80, NULL, NULL, proxy) != 0) {
    ws_script_free(p);   /* terminates c; p goes with its handle */
    return NULL;
  }
  ws__conn_start_read(c);
  ws__role(c)->ready(c);
  return p;
}

ws_script_t *ws_script_connect(ws_loop_t *l, const char *path, const char *host,
                               const char *protocols, const char *extra_headers,
                               const ws_conn_options_t *o, void *data) {
  return ws_script_connect_proxy(l, path, host, protocols, extra_headers, o, NULL, data);
}

ws_conn_t *ws_script_conn(const ws_script_t *p) { return p->conn; }

void ws_script_push(ws_script_t *p, const void *data, size_t len) {
  if (!p->conn || p->eof || !len) return;
  if (ws__buf_append(&p->in, data, len) != 0) return;
  deliver(p);
}

void ws_script_eof(ws_script_t *p) {
  if (!p->conn) return;
  p->eof = 1;
  deliver(p);
}

void ws_script_window(ws_script_t *p, size_t bytes) { p->window = bytes; }

const char *ws_script_take(ws_script_t *p, size_t *len) {
  ws__buf_consume(&p->out, p->taken);
  p->taken = ws__buf_len(&p->out);
  *len = ws__buf_len(&p->out);
  const char *out = ws__buf_data(&p->out);
  return out ? out : "";
}

int ws_script_reading(const ws_script_t *p) {
  return p->conn && p->conn->io_ev & WS__IO_READ;
}
int ws_script_fin(const ws_script_t *p) { return p->fin; }

void ws_script_free(ws_script_t *p) {
  if (p->conn) {
    p->orphan = 1;
    ws_conn_terminate(p->conn);
    return;
  }
  ws__buf_free(&p->in);
  ws__buf_free(&p->out);
  if (p->loop)
    for (ws_script_t **pp = (ws_script_t **)&p->loop->scripts; *pp; pp = &(*pp)->next)
      if (*pp == p) {
        *pp = p->next;
        break;
      }
  free(p);
}
