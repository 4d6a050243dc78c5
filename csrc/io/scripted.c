/* Scripted sockets for tests (scripted.h): libuv's stream calls played against byte
 * buffers. Completions wait for ws_script_run, as libuv's wait for the loop; closing
 * uses the conn's real (never connected) TCP handle, so the close callback, and with it
 * every free, comes from the loop as it does for TCP. */
#include <stdlib.h>
#include <string.h>
#include "internal.h"
#include "scripted.h"

struct ws_script {
  ws_conn_t *conn;
  ws_buf_t in;              /* pushed, not read yet */
  ws_buf_t out;             /* what the peer read */
  size_t taken;             /* bytes of out handed to the test by the last take */
  size_t window;            /* bytes the peer still reads */
  int reading, eof, fin, orphan;
  uv_alloc_cb alloc;
  uv_read_cb read;
  uv_write_t *wreq;         /* the one write a conn has out at a time */
  uv_buf_t wbuf;
  size_t wdone;
  uv_write_cb wcb;
  uv_shutdown_t *sreq;
  uv_shutdown_cb scb;
  uv_close_cb ccb;
};

static const ws__stream_ops_t script_ops;

static ws_script_t *script_of(void *stream) {
  return ((ws_conn_t *)((uv_handle_t *)stream)->data)->io_data;
}

/* Moves up to len bytes to the peer, as its window allows; returns how many. */
static size_t peer_reads(ws_script_t *p, const char *data, size_t len) {
  size_t n = len < p->window ? len : p->window;
  if (!n || ws__buf_append(&p->out, data, n) != 0) return 0;
  if (p->window != SIZE_MAX) p->window -= n;
  return n;
}

static int s_read_start(uv_stream_t *s, uv_alloc_cb alloc, uv_read_cb read) {
  ws_script_t *p = script_of(s);
  p->reading = 1;   /* what waits arrives at the next turn, never inside this call */
  p->alloc = alloc;
  p->read = read;
  return 0;
}

static int s_read_stop(uv_stream_t *s) {
  script_of(s)->reading = 0;
  return 0;
}

static int s_try_write(uv_stream_t *s, const uv_buf_t bufs[], unsigned n) {
  ws_script_t *p = script_of(s);
  size_t took = 0;
  if (p->wreq || p->fin) return p->fin ? UV_EPIPE : UV_EAGAIN;
  for (unsigned i = 0; i < n; i++) {
    size_t k = peer_reads(p, bufs[i].base, bufs[i].len);
    took += k;
    if (k < bufs[i].len) break;
  }
  return took ? (int)took : UV_EAGAIN;
}

static int s_write(uv_write_t *req, uv_stream_t *s, const uv_buf_t bufs[], unsigned n,
                   uv_write_cb cb) {
  ws_script_t *p = script_of(s);
  if (p->fin) return UV_EPIPE;
  if (p->wreq || n != 1) return UV_EINVAL;   /* conn.c writes one buffer at a time */
  p->wreq = req;
  p->wbuf = bufs[0];
  p->wdone = 0;
  p->wcb = cb;
  return 0;
}

static int s_shutdown(uv_shutdown_t *req, uv_stream_t *s, uv_shutdown_cb cb) {
  ws_script_t *p = script_of(s);
  if (p->sreq || p->fin) return UV_EINVAL;
  p->sreq = req;
  p->scb = cb;
  return 0;
}

/* libuv cancels a closing stream's requests just before its close callback. */
static void s_on_closed(uv_handle_t *h) {
  ws_script_t *p = script_of(h);
  uv_write_t *w = p->wreq;
  uv_shutdown_t *sh = p->sreq;
  p->wreq = NULL;
  p->sreq = NULL;
  if (w) p->wcb(w, UV_ECANCELED);
  if (sh) p->scb(sh, UV_ECANCELED);
  p->conn = NULL;
  ((ws_conn_t *)h->data)->io_data = NULL;
  p->ccb(h);   /* may free the conn */
  if (p->orphan) ws_script_free(p);
}

static void s_close(uv_handle_t *h, uv_close_cb cb) {
  ws_script_t *p = script_of(h);
  p->reading = 0;
  p->ccb = cb;
  uv_close(h, s_on_closed);
}

static const ws__stream_ops_t script_ops = {s_read_start, s_read_stop, s_try_write,
                                            s_write,      s_shutdown,  s_close};

/* Input waiting for a reading conn arrives, in reads as big as its buffer; then EOF. */
static void deliver(ws_script_t *p) {
  while (p->reading && (p->in.len || p->eof)) {
    uv_stream_t *s = (uv_stream_t *)&p->conn->tcp;
    uv_buf_t b = uv_buf_init(NULL, 0);
    if (!p->in.len) {
      p->eof = 0;
      p->reading = 0;   /* libuv stops reading at EOF */
      p->read(s, UV_EOF, &b);
      return;
    }
    p->alloc((uv_handle_t *)s, 64 * 1024, &b);
    if (!b.len) break;
    size_t n = p->in.len < b.len ? p->in.len : b.len;
    memcpy(b.base, p->in.base + p->in.start, n);
    ws__buf_consume(&p->in, n);
    p->read(s, (ssize_t)n, &b);
  }
  if (!p->in.len) ws__buf_free(&p->in);
}

static void turn(ws_script_t *p) {
  while (p->wreq) {
    size_t n = peer_reads(p, p->wbuf.base + p->wdone, p->wbuf.len - p->wdone);
    if (!n && p->wbuf.len) break;
    p->wdone += n;
    if (p->wdone < p->wbuf.len) break;
    uv_write_t *w = p->wreq;
    p->wreq = NULL;
    p->wcb(w, 0);   /* may write again */
  }
  deliver(p);
  if (p->sreq && !p->wreq) {
    uv_shutdown_t *sh = p->sreq;
    p->sreq = NULL;
    p->fin = 1;
    p->scb(sh, 0);
  }
}

int ws_script_run(ws_loop_t *l, uv_run_mode mode) {
  /* A conn is freed only from a close callback, inside uv_run: the list holds still. */
  for (ws_conn_t *c = l->conns; c; c = c->next)
    if (c->io == &script_ops && c->io_data) turn(c->io_data);
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
  c->io = &script_ops;
  c->io_data = p;
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
  c->role->ready(c);
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
  p->taken = p->out.len;
  *len = p->out.len;
  return p->out.base ? p->out.base + p->out.start : "";
}

int ws_script_reading(const ws_script_t *p) { return p->reading; }
int ws_script_fin(const ws_script_t *p) { return p->fin; }

void ws_script_free(ws_script_t *p) {
  if (p->conn) {
    p->orphan = 1;
    ws_conn_terminate(p->conn);
    return;
  }
  ws__buf_free(&p->in);
  ws__buf_free(&p->out);
  free(p);
}
