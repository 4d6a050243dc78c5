/* A connection: the read path into the protocol core, the write queue, corking, the
 * close handshake and the one timer (handshake, ping or close, by state). */
#include <stdlib.h>
#include <string.h>
#include "internal.h"

void ws_conn_options_default(ws_conn_options_t *o) {
  o->max_length = (1ull << 26) - 1;   /* faye's default */
  o->max_fragments = 1u << 16;
  o->ping_ms = 0;
  o->close_timeout_ms = 30000;
  o->handshake_timeout_ms = 30000;
  o->max_buffered = 64u << 20;
  o->max_head = 16 * 1024;
  o->max_headers = 64;
}

static void on_handle_closed(uv_handle_t *h);
static int send_frame(ws_conn_t *c, int opcode, const char *data, size_t len);

ws_conn_t *ws__conn_new(ws_loop_t *l) {
  ws_conn_t *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  c->loop = l;
  if (uv_tcp_init(l->uv, &c->tcp) != 0) {
    free(c);
    return NULL;
  }
  c->tcp.data = c;
  c->refs = 1;
  c->version = 13;
  c->close_code = 1006;
  l->nconns++;
  return c;
}

static void finalize(ws_conn_t *c) {
  ws_loop_t *l = c->loop;
  if (c->flags & WS__F_KNOWN && l->ev->on_close)
    l->ev->on_close(c, c->close_code, c->close_reason ? c->close_reason : "",
                    c->close_reason ? strlen(c->close_reason) : 0,
                    (c->flags & WS__F_CLEAN) != 0);
  if (l->ev->on_free) l->ev->on_free(c);
  if (c->tp) c->tp->free(c);
  ws__client_free_hs(c);
  ws__server_unlink(c);
  ws__buf_free(&c->in);
  ws__buf_free(&c->msg);
  ws__buf_free(&c->pending);
  free(c->protocol);
  free(c->close_reason);
  l->nconns--;
  free(c);
}

void ws__conn_unref(ws_conn_t *c) {
  if (--c->refs == 0) finalize(c);
}

static void on_handle_closed(uv_handle_t *h) { ws__conn_unref(h->data); }

/* Memory is freed only in libuv's close callbacks; on_close fires from there too, so it
 * is never re-entered from inside a handler. */
void ws__conn_destroy(ws_conn_t *c, unsigned code, int clean) {
  if (c->state == WS__S_CLOSED) return;
  c->state = WS__S_CLOSED;
  c->close_code = (uint16_t)code;
  if (clean) c->flags |= WS__F_CLEAN;
  ws_loop_t *l = c->loop;
  if (l->cork_owner == c) {
    l->cork_owner = NULL;
    l->cork.len = l->cork.start = 0;
  }
  ws__conn_timer(c, 0, 0);
  uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
}

static void on_timer_closed(uv_handle_t *h) {
  ws_conn_t *c = h->data;
  free(h);
  ws__conn_unref(c);
}

/* An idle socket without ping has no timer at all: it is made and freed on demand. */
void ws__conn_timer(ws_conn_t *c, uint64_t ms, uint64_t repeat) {
  if (ms == 0 && repeat == 0) {
    if (c->timer) {
      uv_timer_stop(c->timer);
      uv_close((uv_handle_t *)c->timer, on_timer_closed);
      c->timer = NULL;
    }
    return;
  }
  if (!c->timer) {
    if (!(c->timer = malloc(sizeof *c->timer))) return;   /* no timeout beats a crash */
    uv_timer_init(c->loop->uv, c->timer);
    c->timer->data = c;
    c->refs++;
  }
  uv_timer_start(c->timer, ws__conn_on_timer, ms, repeat);
}

static void on_shutdown(uv_shutdown_t *req, int status) {
  (void)status;   /* failed or not, the socket closes next */
  ws_conn_t *c = req->data;
  free(req);
  if (c->state != WS__S_CLOSED) ws__conn_destroy(c, c->close_code, (c->flags & WS__F_CLEAN) != 0);
  ws__conn_unref(c);
}

static void do_shutdown(ws_conn_t *c) {
  if (c->flags & WS__F_SHUTDOWN || c->state == WS__S_CLOSED) return;
  c->flags |= WS__F_SHUTDOWN;
  if (c->tp && c->tp->shutdown) c->tp->shutdown(c);
  uv_shutdown_t *req = malloc(sizeof *req);
  if (req && (req->data = c, uv_shutdown(req, (uv_stream_t *)&c->tcp, on_shutdown)) == 0) {
    c->refs++;
    return;
  }
  free(req);
  ws__conn_destroy(c, c->close_code, (c->flags & WS__F_CLEAN) != 0);
}

/* Flush what is queued, send FIN, then close. The close timer bounds the wait. */
void ws__conn_end(ws_conn_t *c) {
  if (c->state == WS__S_CLOSED) return;
  c->flags |= WS__F_END_AFTER_FLUSH;
  if (c->close_timeout_ms) ws__conn_timer(c, c->close_timeout_ms, 0);
  if (c->loop->cork_owner == c) return;     /* the uncork flush gets here again */
  if (c->pending.len == 0 && !c->inflight) do_shutdown(c);
}

/* ---- writing -------------------------------------------------------------- */

static void on_write(uv_write_t *req, int status);

/* A write handed to libuv: the queued bytes move here, so sends can queue more. */
struct ws__write {
  uv_write_t req;
  ws_buf_t buf;
};

static void kick(ws_conn_t *c) {
  if (c->inflight || !c->pending.len || c->state == WS__S_CLOSED) return;
  struct ws__write *w = malloc(sizeof *w);
  if (!w) {
    ws__conn_destroy(c, 1006, 0);
    return;
  }
  w->buf = c->pending;
  memset(&c->pending, 0, sizeof c->pending);
  w->req.data = c;
  c->inflight = w;
  uv_buf_t b = uv_buf_init(w->buf.base + w->buf.start, (unsigned)w->buf.len);
  if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_write) != 0) {
    c->inflight = NULL;
    ws__buf_free(&w->buf);
    free(w);
    ws__conn_destroy(c, 1006, 0);
  }
}

static void on_write(uv_write_t *req, int status) {
  ws_conn_t *c = req->data;
  struct ws__write *w = (struct ws__write *)req;
  ws__buf_free(&w->buf);   /* idle connections keep no write buffers */
  free(w);
  c->inflight = NULL;
  if (c->state == WS__S_CLOSED) return;
  if (status < 0) {
    ws__conn_destroy(c, 1006, 0);
    return;
  }
  if (c->pending.len) {
    kick(c);
  } else if (c->flags & WS__F_END_AFTER_FLUSH) {
    do_shutdown(c);
  } else if (c->loop->ev->on_drain) {
    c->loop->ev->on_drain(c);
  }
}

int ws__conn_write_raw(ws_conn_t *c, const uv_buf_t *bufs, unsigned n) {
  if (c->state == WS__S_CLOSED) return WS_ECLOSED;
  unsigned i = 0;
  size_t skip = 0;
  if (!c->pending.len && !c->inflight) {
    /* Try the syscall first; only an unsent tail is queued. */
    int r = uv_try_write((uv_stream_t *)&c->tcp, bufs, n);
    if (r < 0 && r != UV_EAGAIN && r != UV_ENOSYS) {
      ws__conn_destroy(c, 1006, 0);
      return r;
    }
    size_t sent = r > 0 ? (size_t)r : 0;
    while (i < n && sent >= bufs[i].len) sent -= bufs[i++].len;
    skip = sent;
  }
  for (; i < n; i++, skip = 0)
    if (ws__buf_append(&c->pending, bufs[i].base + skip, bufs[i].len - skip) != 0) {
      ws__conn_destroy(c, 1006, 0);
      return WS_ENOMEM;
    }
  kick(c);
  return 0;
}

int ws__conn_write(ws_conn_t *c, const uv_buf_t *bufs, unsigned n) {
  if (c->tp) return c->tp->write(c, bufs, n);
  return ws__conn_write_raw(c, bufs, n);
}

void ws__conn_flush_cork(ws_loop_t *l) {
  ws_conn_t *c = l->cork_owner;
  if (!c) return;
  l->cork_owner = NULL;
  if (l->cork.len) {
    uv_buf_t b = uv_buf_init(l->cork.base + l->cork.start, (unsigned)l->cork.len);
    l->cork.len = l->cork.start = 0;
    ws__conn_write(c, &b, 1);
  }
  if (c->flags & WS__F_END_AFTER_FLUSH && !c->pending.len && !c->inflight &&
      c->state != WS__S_CLOSED)
    do_shutdown(c);
}

/* Frames data (masked with a fresh key for a client) and writes it: into the cork
 * buffer when corked and small, else header and payload in one writev. */
static int send_frame_rsv(ws_conn_t *c, int rsv, int opcode, const char *data, size_t len) {
  ws_loop_t *l = c->loop;
  uint8_t hdr[WS_MAX_HEADER], key[4];
  int client = (c->flags & WS__F_CLIENT) != 0;
  if (client && ws_random(key, 4) != 0) return WS_EINTERNAL;
  size_t hl = ws_frame_header(hdr, 1, rsv, opcode, len, client ? key : NULL);

  if (c->state == WS__S_CONNECTING || c->state == WS__S_HANDSHAKE) {
    char *frame = malloc(hl + len);
    if (!frame) return WS_ENOMEM;
    memcpy(frame, hdr, hl);
    if (len) memcpy(frame + hl, data, len);
    ws_mask(frame + hl, len, key, 0);
    int r = ws__client_queue_early(c, frame, hl + len);
    free(frame);
    return r;
  }
  if (l->cork_depth > 0 && hl + len <= WS__CORK_MAX) {
    if (l->cork_owner != c || l->cork.len + hl + len > WS__CORK_BUF) {
      ws__conn_flush_cork(l);
      if (c->state == WS__S_CLOSED) return WS_ECLOSED;
      l->cork_owner = c;
    }
    char *p = ws__buf_reserve(&l->cork, hl + len);
    if (!p) return WS_ENOMEM;
    memcpy(p, hdr, hl);
    if (len) memcpy(p + hl, data, len);
    if (client) ws_mask(p + hl, len, key, 0);
    l->cork.len += hl + len;
    return 0;
  }
  if (l->cork_owner == c) {
    ws__conn_flush_cork(l);
    if (c->state == WS__S_CLOSED) return WS_ECLOSED;
  }
  if (!client) {
    uv_buf_t b[2] = {uv_buf_init((char *)hdr, (unsigned)hl), uv_buf_init((char *)data, (unsigned)len)};
    return ws__conn_write(c, b, len ? 2 : 1);
  }
  /* A client must mask, so the payload is copied once into a frame buffer. */
  char *frame = malloc(hl + len);
  if (!frame) return WS_ENOMEM;
  memcpy(frame, hdr, hl);
  if (len) memcpy(frame + hl, data, len);
  ws_mask(frame + hl, len, key, 0);
  uv_buf_t b = uv_buf_init(frame, (unsigned)(hl + len));
  int r = ws__conn_write(c, &b, 1);
  free(frame);
  return r;
}

static int send_frame(ws_conn_t *c, int opcode, const char *data, size_t len) {
  return send_frame_rsv(c, 0, opcode, data, len);
}

static void send_close(ws_conn_t *c, unsigned code, const char *reason, size_t rlen) {
  char payload[WS_MAX_CONTROL];
  size_t n = ws_close_build(payload, code, reason, rlen);
  c->flags |= WS__F_CLOSE_SENT;
  send_frame(c, WS_OP_CLOSE, payload, n);
}

int ws_conn_send(ws_conn_t *c, int opcode, const char *data, size_t len) {
  int early = (c->state == WS__S_CONNECTING || c->state == WS__S_HANDSHAKE) &&
              (c->flags & WS__F_CLIENT);
  if (c->state != WS__S_OPEN && !early) return WS_ECLOSED;
  if ((opcode & 8) && len > WS_MAX_CONTROL) return WS_EINVAL;
  if (ws_conn_buffered(c) + len > c->max_buffered) return WS_EBACKPRESSURE;
  return send_frame(c, opcode, data, len);
}

int ws_conn_write_raw(ws_conn_t *c, const char *data, size_t len) {
  if (c->state != WS__S_RAW) return WS_ECLOSED;
  uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
  return ws__conn_write(c, &b, 1);
}

size_t ws_conn_buffered(const ws_conn_t *c) {
  size_t n = c->pending.len + (c->inflight ? c->inflight->buf.len : 0) + ws__client_early_len(c);
  if (c->loop->cork_owner == c) n += c->loop->cork.len;
  return n;
}

/* ---- closing -------------------------------------------------------------- */

void ws__conn_fail(ws_conn_t *c, int err, const char *message) {
  if (c->state == WS__S_CLOSED) return;
  ws_loop_t *l = c->loop;
  unsigned code = (unsigned)ws_err_close_code(err);
  c->flags |= WS__F_FAILED;
  c->flags &= ~WS__F_CLEAN;
  int was_socket = c->state == WS__S_OPEN || c->state == WS__S_CLOSING;
  if (c->flags & WS__F_KNOWN && l->ev->on_error) l->ev->on_error(c, err, message);
  if (c->state == WS__S_CLOSED) return;
  if (was_socket) {
    if (!(c->flags & WS__F_CLOSE_SENT)) send_close(c, code, NULL, 0);
    c->close_code = (uint16_t)code;
    c->state = WS__S_CLOSING;
    ws__conn_end(c);
  } else {
    ws__conn_destroy(c, 1006, 0);
  }
}

void ws_conn_close(ws_conn_t *c, unsigned code, const char *reason, size_t reason_len) {
  switch (c->state) {
  case WS__S_OPEN:
    send_close(c, code, reason, reason_len);
    c->state = WS__S_CLOSING;
    if (c->state == WS__S_CLOSING && c->close_timeout_ms) ws__conn_timer(c, c->close_timeout_ms, 0);
    break;
  case WS__S_CLOSING:
  case WS__S_CLOSED:
    break;
  case WS__S_RAW:
  case WS__S_RESPONDING:
    ws__conn_end(c);
    break;
  default:   /* connecting, or an unanswered request: no handshake to close */
    ws__conn_destroy(c, 1006, 0);
  }
}

void ws_conn_terminate(ws_conn_t *c) { ws__conn_destroy(c, 1006, 0); }

/* ---- reading -------------------------------------------------------------- */

static void deliver(ws_conn_t *c, int binary, const char *data, size_t len) {
  if (c->loop->ev->on_message) c->loop->ev->on_message(c, binary, data, len);
}

/* Gives up on a peer that is gone or hostile: onerror, then onclose 1006. */
static void drop(ws_conn_t *c, const char *why) {
  c->flags |= WS__F_FAILED;
  if (c->flags & WS__F_KNOWN && c->loop->ev->on_error) c->loop->ev->on_error(c, WS_ETIMEDOUT, why);
  ws__conn_destroy(c, 1006, 0);
}

/* Room to make in the message buffer for the current frame's rest, beyond the `have`
 * bytes it holds: never more than the frame still owes, and never more than what came
 * (or WS__MSG_AHEAD), so a peer that announces a big frame and sends little of it makes
 * us hold at most twice what it sent. */
static size_t msg_ahead(const ws_conn_t *c, size_t have) {
  size_t cap = have > WS__MSG_AHEAD ? have : WS__MSG_AHEAD;
  return c->parser.remaining < cap ? (size_t)c->parser.remaining : cap;
}

static int on_data(void *ud, int opcode, int rsv, char *data, size_t len, int fin) {
  (void)rsv;   /* no extension is negotiated yet, so the parser lets no RSV bit through */
  ws_conn_t *c = ud;
  if (c->state != WS__S_OPEN) {   /* after close(): discard, look for the peer's close */
    ws__buf_free(&c->msg);
    return 0;
  }
  if (!fin || c->msg.len) {
    if (c->msg.base && data == c->msg.base + c->msg.start + c->msg.len && len <= ws__buf_room(&c->msg)) {
      c->msg.len += len;   /* read straight into the message (on_alloc) */
    } else {
      /* The first piece of a split frame: room for more of it at once (msg_ahead). */
      if (!c->msg.len && c->parser.in_frame) ws__buf_reserve(&c->msg, len + msg_ahead(c, len));
      if (ws__buf_append(&c->msg, data, len) != 0) {
        ws__conn_fail(c, WS_ENOMEM, "out of memory");
        return 1;
      }
    }
    if (!fin) return 0;
    deliver(c, opcode == WS_OP_BINARY, c->msg.base + c->msg.start, c->msg.len);
    ws__buf_free(&c->msg);
  } else {
    deliver(c, opcode == WS_OP_BINARY, data, len);
  }
  return c->state == WS__S_CLOSED || (c->flags & WS__F_PAUSED);
}

static int on_control(void *ud, int opcode, char *data, size_t len) {
  ws_conn_t *c = ud;
  if (opcode == WS_OP_PING) {
    /* A peer that pings but never reads would grow our queue of pongs without end. */
    if (ws_conn_buffered(c) > c->max_buffered) {
      drop(c, "peer sends pings but does not read the pongs");
      return 1;
    }
    if (!(c->flags & WS__F_CLOSE_SENT)) send_frame(c, WS_OP_PONG, data, len);
    return c->state == WS__S_CLOSED;
  }
  if (opcode == WS_OP_PONG) {
    if (c->loop->ev->on_pong) c->loop->ev->on_pong(c, data, len);
    return c->state == WS__S_CLOSED || (c->flags & WS__F_PAUSED);
  }
  unsigned code;
  const char *reason;
  size_t rlen;
  int err = ws_close_parse(data, len, &code, &reason, &rlen);
  if (err) {
    ws__conn_fail(c, err, err == WS_EUTF8 ? "invalid UTF-8 in close reason" : "invalid close frame");
    return 1;
  }
  c->flags |= WS__F_CLOSE_RECEIVED;
  c->close_code = (uint16_t)code;
  free(c->close_reason);
  c->close_reason = NULL;
  if (rlen && (c->close_reason = malloc(rlen + 1))) {
    memcpy(c->close_reason, reason, rlen);
    c->close_reason[rlen] = 0;
  }
  if (!(c->flags & WS__F_CLOSE_SENT)) send_close(c, code == 1005 ? 0 : code, reason, rlen);
  if (c->state == WS__S_CLOSED) return 1;
  c->state = WS__S_CLOSING;
  c->flags |= WS__F_CLEAN;
  if (c->flags & WS__F_CLIENT) {
    /* RFC 6455 7.1.1: the server closes TCP first; the client waits, bounded. */
    if (c->close_timeout_ms) ws__conn_timer(c, c->close_timeout_ms, 0);
  } else {
    ws__conn_end(c);
  }
  return 1;
}

static const ws_parser_settings_t parser_settings = {on_data, on_control};

/* Consumes buf (which starts with any earlier unconsumed tail); keeps what is left. */
void ws__conn_input(ws_conn_t *c, char *buf, size_t len) {
  int from_in = c->in.len && buf == c->in.base + c->in.start;
  size_t off = 0;
  while (off < len && c->state != WS__S_CLOSED && !(c->flags & WS__F_PAUSED)) {
    ssize_t n;
    switch (c->state) {
    case WS__S_HTTP:
      n = ws__server_on_head(c, buf + off, len - off);
      break;
    case WS__S_HANDSHAKE:
      n = ws__client_on_head(c, buf + off, len - off);
      break;
    case WS__S_OPEN:
    case WS__S_CLOSING:
      if (c->flags & WS__F_CLOSE_RECEIVED) {
        n = (ssize_t)(len - off);   /* nothing after a close frame counts */
        break;
      }
      n = ws_parser_execute(&c->parser, &parser_settings, c, buf + off, len - off);
      if (n < 0) {
        ws__conn_fail(c, (int)n, ws_strerror((int)n));
        n = -1;
      }
      break;
    case WS__S_RAW:
      if (c->loop->ev->on_raw) c->loop->ev->on_raw(c, buf + off, len - off);
      n = (ssize_t)(len - off);
      break;
    default:   /* answering plain HTTP, or not reading: a request body is dropped */
      n = (ssize_t)(len - off);
    }
    if (n <= 0) break;
    off += (size_t)n;
  }
  if (c->state == WS__S_CLOSED) {
    ws__buf_free(&c->in);
    return;
  }
  if (from_in) {
    ws__buf_consume(&c->in, off);
    if (!c->in.len) ws__buf_free(&c->in);
  } else if (off < len) {
    c->in.len = c->in.start = 0;
    if (ws__buf_append(&c->in, buf + off, len - off) != 0) ws__conn_fail(c, WS_ENOMEM, "out of memory");
  } else {
    ws__buf_free(&c->in);
  }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)suggested;   /* libuv's 64 KiB guess; the loop's buffer is bigger */
  ws_conn_t *c = h->data;
  ws_loop_t *l = c->loop;
  size_t pre = 0;
  l->rdirect = 0;
  /* The rest of a big frame whose start is already in the message buffer: read it in
   * there, and the parser unmasks it in place (no copy out of the loop's buffer). The
   * read is no longer than the frame, so it never takes in the next frame's header. */
  if (!c->tp && c->state == WS__S_OPEN && c->msg.len && !c->in.len && c->parser.in_frame &&
      c->parser.remaining >= WS__DIRECT_MIN) {
    size_t want = msg_ahead(c, c->msg.len);
    char *p = ws__buf_reserve(&c->msg, want);
    if (p) {
      size_t room = ws__buf_room(&c->msg);
      if (room > want) room = want;
      l->rdirect = 1;
      l->rprefix = 0;
      *buf = uv_buf_init(p, (unsigned)room);
      return;
    }
  }
  /* A split frame header's bytes go first, so the parser sees them contiguous. */
  if (!c->tp && c->in.len && c->in.len <= WS__READ_BUF / 2) {
    pre = c->in.len;
    memcpy(l->rbuf, c->in.base + c->in.start, pre);
  } else if (c->tp) {
    pre = WS__TLS_HEADROOM;   /* TLS decrypts into the front, in place (tls.c) */
  }
  l->rprefix = pre;
  *buf = uv_buf_init(l->rbuf + pre, (unsigned)(WS__READ_BUF - pre));
}

static void on_eof(ws_conn_t *c) {
  int clean = (c->flags & (WS__F_CLOSE_SENT | WS__F_CLOSE_RECEIVED)) ==
              (WS__F_CLOSE_SENT | WS__F_CLOSE_RECEIVED) && !(c->flags & WS__F_FAILED);
  if (c->state == WS__S_HANDSHAKE || c->state == WS__S_CONNECTING) {
    ws__conn_fail(c, WS_EHANDSHAKE, "connection closed during the handshake");
    return;
  }
  if (c->flags & WS__F_FAILED) {
    ws__conn_destroy(c, c->close_code, 0);
    return;
  }
  if (c->state == WS__S_RAW && c->loop->ev->on_raw) c->loop->ev->on_raw(c, "", 0);
  ws__conn_destroy(c, clean ? c->close_code : 1006, clean);
}

/* The transport saw the end of the peer's stream (TLS close_notify). */
void ws__conn_eof(ws_conn_t *c) {
  if (c->state != WS__S_CLOSED) on_eof(c);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  ws_conn_t *c = s->data;
  ws_loop_t *l = c->loop;
  if (nread == 0) return;
  if (nread < 0) {
    if (c->state != WS__S_CLOSED) on_eof(c);
    return;
  }
  c->flags |= WS__F_HEARD;
  ws_loop_cork(l);
  if (c->tp) {
    c->tp->on_read(c, buf->base, (size_t)nread);
  } else if (l->rdirect) {
    l->rdirect = 0;
    ws__conn_input(c, buf->base, (size_t)nread);
  } else if (l->rprefix || !c->in.len) {
    c->in.len = c->in.start = 0;   /* its bytes were copied to the front of rbuf */
    ws__conn_input(c, l->rbuf, l->rprefix + (size_t)nread);
  } else if (ws__buf_append(&c->in, buf->base, (size_t)nread) == 0) {
    ws__conn_input(c, c->in.base + c->in.start, c->in.len);
  } else {
    ws__conn_fail(c, WS_ENOMEM, "out of memory");
  }
  ws_loop_uncork(l);
}

int ws__conn_start_read(ws_conn_t *c) {
  if (c->flags & WS__F_READING || c->state == WS__S_CLOSED) return 0;
  c->flags |= WS__F_READING;
  return uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

void ws_conn_pause(ws_conn_t *c) {
  if (c->state == WS__S_CLOSED || c->flags & WS__F_PAUSED) return;
  c->flags |= WS__F_PAUSED;
  if (c->flags & WS__F_READING) {
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->flags &= ~WS__F_READING;
  }
}

void ws_conn_resume(ws_conn_t *c) {
  if (c->state == WS__S_CLOSED || !(c->flags & WS__F_PAUSED)) return;
  c->flags &= ~WS__F_PAUSED;
  if (c->in.len) {   /* what arrived while paused comes first */
    ws_loop_cork(c->loop);
    ws__conn_input(c, c->in.base + c->in.start, c->in.len);
    ws_loop_uncork(c->loop);
  }
  if (!(c->flags & WS__F_PAUSED)) ws__conn_start_read(c);
}

/* ---- state ---------------------------------------------------------------- */

void ws__conn_set_open(ws_conn_t *c, const ws_http_head_t *head) {
  c->state = WS__S_OPEN;
  c->flags |= WS__F_KNOWN;
  ws__conn_timer(c, c->ping_ms, c->ping_ms);
  if (c->loop->ev->on_open) c->loop->ev->on_open(c, head);
}

void ws__conn_on_timer(uv_timer_t *t) {
  ws_conn_t *c = t->data;
  switch (c->state) {
  case WS__S_OPEN:
    if (!(c->flags & WS__F_END_AFTER_FLUSH)) {
      /* A whole interval without a byte from the peer, not even the pong: it is gone. */
      if ((c->flags & (WS__F_PINGED | WS__F_HEARD)) == WS__F_PINGED) {
        drop(c, "no pong within the ping interval");
        return;
      }
      c->flags = (uint16_t)((c->flags & ~WS__F_HEARD) | WS__F_PINGED);
      send_frame(c, WS_OP_PING, NULL, 0);
      return;
    }
    break;
  case WS__S_HTTP:
  case WS__S_REQUEST:
    ws__conn_destroy(c, 1006, 0);
    return;
  case WS__S_CONNECTING:
  case WS__S_HANDSHAKE:
    ws__conn_fail(c, WS_ETIMEDOUT, "opening handshake timed out");
    return;
  default:
    break;
  }
  /* Close timeout: the peer did not answer our close, or did not close TCP. */
  int clean = (c->flags & WS__F_CLEAN) && (c->flags & WS__F_CLOSE_RECEIVED);
  ws__conn_destroy(c, clean ? c->close_code : 1006, clean);
}

int ws_conn_ready_state(const ws_conn_t *c) {
  switch (c->state) {
  case WS__S_OPEN:
  case WS__S_RAW:
    return WS_OPEN;
  case WS__S_CLOSING:
    return WS_CLOSING;
  case WS__S_CLOSED:
    return WS_CLOSED;
  default:
    return WS_CONNECTING;
  }
}

const char *ws_conn_protocol(const ws_conn_t *c) { return c->protocol ? c->protocol : ""; }

const char *ws_conn_version(const ws_conn_t *c) {
  switch (c->version) {
  case 7: return "hybi-7";
  case 8: return "hybi-8";
  default: return "hybi-13";
  }
}

int ws_conn_is_client(const ws_conn_t *c) { return (c->flags & WS__F_CLIENT) != 0; }
void *ws_conn_data(const ws_conn_t *c) { return c->data; }
void ws_conn_set_data(ws_conn_t *c, void *data) { c->data = data; }

int ws_conn_peer(const ws_conn_t *c, char *ip, size_t iplen, int *port) {
  struct sockaddr_storage ss;
  int n = sizeof ss;
  int r = uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &n);
  if (r) return r;
  if (ss.ss_family == AF_INET6) {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
    *port = ntohs(a->sin6_port);
    return uv_ip6_name(a, ip, iplen);
  }
  struct sockaddr_in *a = (struct sockaddr_in *)&ss;
  *port = ntohs(a->sin_port);
  return uv_ip4_name(a, ip, iplen);
}

void ws__conn_apply_options(ws_conn_t *c, const ws_conn_options_t *o, int role) {
  ws_parser_init(&c->parser, role, o->max_length);
  c->parser.max_fragments = o->max_fragments;
  c->max_buffered = o->max_buffered;
  c->ping_ms = o->ping_ms;
  c->close_timeout_ms = o->close_timeout_ms;
  c->max_head = o->max_head > 65535 ? 65535 : (uint16_t)o->max_head;
  c->max_headers = o->max_headers;
}

size_t ws_loop_broadcast(ws_loop_t *l, ws_conn_t **conns, size_t n, int opcode,
                         const char *data, size_t len) {
  uint8_t hdr[WS_MAX_HEADER];
  size_t hl = ws_frame_header(hdr, 1, 0, opcode, len, NULL);
  size_t sent = 0;
  ws__conn_flush_cork(l);
  for (size_t i = 0; i < n; i++) {
    ws_conn_t *c = conns[i];
    if (c->state != WS__S_OPEN) continue;
    if (c->flags & WS__F_CLIENT) {
      if (send_frame(c, opcode, data, len) == 0) sent++;
      continue;
    }
    uv_buf_t b[2] = {uv_buf_init((char *)hdr, (unsigned)hl), uv_buf_init((char *)data, (unsigned)len)};
    if (ws__conn_write(c, b, 2) == 0) sent++;
  }
  return sent;
}
