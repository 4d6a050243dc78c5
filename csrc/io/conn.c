/* A connection: the read path into its codec and extensions, the write queue, corking,
 * the close handshake and its deadlines (checked by the loop's sweep). */
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include "internal.h"
#include "deflate.h"

/* The defaults, and why (README "Limits and timeouts" has the table). */
void ws_conn_options_default(ws_conn_options_t *o) {
  o->max_length = (1ull << 26) - 1;   /* faye's default */
  o->max_fragments = 0;               /* empty fragments cost the peer header bytes, so
                                         the bytes it sends bound them already */
  o->ping_ms = 0;
  o->close_timeout_ms = 30000;
  o->handshake_timeout_ms = 30000;
  o->idle_timeout_ms = 120000;        /* uWebSockets closes idle sockets after 120 s */
  o->pong_timeout_ms = 30000;
  o->message_timeout_ms = 120000;     /* a stalled half message must not pin memory */
  o->send_timeout_ms = 60000;         /* nginx's send_timeout */
  o->high_water = 1u << 20;           /* uWebSockets' backpressure limit */
  o->max_buffered = 16u << 20;
  o->backpressure_error = 0;
  o->max_head = 16 * 1024;
  o->max_headers = 64;
  o->max_subscriptions = 1024;        /* ~32 KiB of lists: a peer that makes the script
                                         subscribe it to topic after topic is bounded */
  o->num_extensions = 0;
}

#define WS__PARK_MS 1000u   /* silence after which a conn's extensions shrink (park) */
#define WS__READS_PER_TURN 32   /* full reads of one socket per readiness, as libuv's */

static int send_frame(ws_conn_t *c, int opcode, const char *data, size_t len);

/* A conn with no role (tests' raw conns): no head to read, nothing sent early. */
static ssize_t no_head(ws_conn_t *c, char *buf, size_t len) {
  (void)buf, (void)len;
  ws__conn_destroy(c, 1006, 0);
  return -1;
}
static void no_ready(ws_conn_t *c) { (void)c; }
static int no_early(ws_conn_t *c, const char *frame, size_t len) {
  (void)c, (void)frame, (void)len;
  return WS_ECLOSED;
}
static size_t no_early_len(const ws_conn_t *c) {
  (void)c;
  return 0;
}
static void no_account(ws_conn_t *c, ssize_t delta) { (void)c, (void)delta; }
static void no_connected(ws_conn_t *c, int status) { (void)c, (void)status; }
static const ws__role_t no_role = {no_head, no_ready, no_early, no_early_len, no_account,
                                   no_connected, no_ready, NULL};
const ws__role_t *const ws__roles[3] = {&no_role, &ws__server_role, &ws__client_role};

const struct ws__rare ws__rare_none;

struct ws__rare *ws__rare(ws_conn_t *c) {
  if (!c->rare) c->rare = calloc(1, sizeof *c->rare);
  return c->rare;
}

static void free_extensions(ws_conn_t *c) {
  struct ws__exts *x = ws__r(c)->ext;
  if (!x) return;
  for (unsigned i = 0; i < x->n; i++) {
    if (x->use[i].state) x->use[i].ext->destroy(x->use[i].state);
    free((void *)x->use[i].config);
  }
  free(x->agreed);
  free(x);
  c->rare->ext = NULL;
}

int ws__conn_set_extensions(ws_conn_t *c, const ws_conn_options_t *o) {
  free_extensions(c);
  unsigned n = o->num_extensions < WS_MAX_EXTENSIONS ? o->num_extensions : WS_MAX_EXTENSIONS;
  if (!n || !(c->codec->caps & WS_CODEC_EXTENSIONS)) return 0;
  struct ws__exts *x = calloc(1, sizeof *x);
  if (!x || !ws__rare(c)) {
    free(x);
    return WS_ENOMEM;
  }
  c->rare->ext = x;
  for (unsigned i = 0; i < n; i++) {
    const ws_extension_t *e = o->extensions[i];
    void *cfg = malloc(e->config_size ? e->config_size : 1);
    if (!cfg) return WS_ENOMEM;   /* x->n configs are freed with c */
    if (e->config_size) memcpy(cfg, o->extension_configs[i], e->config_size);
    x->use[i].ext = e;
    x->use[i].config = cfg;
    x->n = i + 1;
  }
  return 0;
}

int ws__conn_extensions_agreed(ws_conn_t *c, const char *value, size_t len) {
  struct ws__exts *x = ws__r(c)->ext;
  if (!x) return 0;
  x->rsv = ws_ext_rsv(x->use, x->n);
  if (!x->rsv) {   /* nothing negotiated: an idle conn keeps nothing for it */
    free_extensions(c);
    return 0;
  }
  c->parser.rfc.rsv_allowed = (uint8_t)x->rsv;
  ws__loop_sweep_for(c->loop, 4 * WS__PARK_MS);   /* idle conns are parked (park) */
  if (value && len && !(x->agreed = malloc(len + 1))) return WS_ENOMEM;
  if (x->agreed) {
    memcpy(x->agreed, value, len);
    x->agreed[len] = 0;
  }
  return 0;
}

const char *ws_conn_extensions(const ws_conn_t *c) {
  return ws__r(c)->ext && ws__r(c)->ext->agreed ? ws__r(c)->ext->agreed : "";
}

ws_conn_t *ws__conn_new(ws_loop_t *l) {
  ws_conn_t *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  c->loop = l;
  c->fd = -1;
  c->lim = &ws__no_limits;
  l->live++;
  c->role = WS__ROLE_NONE;
  c->codec = &ws_codec_rfc6455;
  c->refs = 1;
  c->version = 13;
  c->close_code = 1006;
  c->state_at = c->heard_at = ws__now(l);
  ws__loop_link(l, c);
  return c;
}

static void finalize(ws_conn_t *c) {
  ws_loop_t *l = c->loop;
  struct ws__rare *x = c->rare;
  if (x && x->error && c->flags & WS__F_KNOWN && l->ev->on_error)
    l->ev->on_error(c, x->error->err, x->error->message);
  if (x) {
    free(x->error);
    x->error = NULL;
  }
  const char *reason = ws__r(c)->close_reason;
  if (c->flags & WS__F_KNOWN && l->ev->on_close)
    l->ev->on_close(c, c->close_code, reason ? reason : "", reason ? strlen(reason) : 0,
                    (c->flags & WS__F_CLEAN) != 0);
  if (l->ev->on_free) l->ev->on_free(c);
  if (c->subs) ws__topics_leave(c);   /* (destroy did it; a handler may not re-subscribe) */
  ws__tp_free_all(c);
  ws__role(c)->free(c);
  free_extensions(c);
  ws__buf_free(&c->in);
  ws__buf_free(&c->msg);
  ws__buf_free(&c->pending);
  ws__conn_account(c);
  ws__loop_unlink(c);
  free(c->protocol);
  if ((x = c->rare)) {   /* (a handler above may have made it) */
    free(x->close_reason);
    free(x->deferred);
    free(x->body);
    free(x);
  }
  ws__limits_put(c->loop, c->lim);
  free(c);
}

void ws__conn_unref(ws_conn_t *c) {
  if (--c->refs == 0) finalize(c);
}

/* What the socket should wait for now: input while reading, and writability while bytes
 * are queued (or a connect is under way). A socket that cannot be watched is dropped. */
static void update_io(ws_conn_t *c) {
  if (c->state == WS__S_CLOSED) return;
  unsigned ev = 0;
  if (c->flags & WS__F_READING) ev |= WS__IO_READ;
  if (ws__buf_len(&c->pending) || c->flags & WS__F_CONNECTING) ev |= WS__IO_WRITE;
  if (ev != c->io_ev && ws__io(c)->want(c, ev) != 0) ws__conn_destroy(c, 1006, 0);
}

static void stop_reading(ws_conn_t *c) {
  if (!(c->flags & WS__F_READING)) return;
  c->flags &= ~WS__F_READING;
  update_io(c);
}

/* How a connection ends, from the most to the least orderly:
 *   ws_conn_close   the closing handshake (a close frame, then wait for the peer's);
 *   ws__conn_fail   the peer broke the protocol: a close frame with the code, then end;
 *   ws__conn_end    flush what is queued, FIN, then close the handle;
 *   ws__conn_abort  give up on the peer: on_error, a close frame if it fits, destroy;
 *   ws__conn_destroy close the handle now (ws_conn_terminate).
 * Memory is freed only at the loop's turn after the socket closed (ws__loop_reap);
 * on_close fires from there too, so it is never re-entered from inside a handler. */
void ws__conn_destroy(ws_conn_t *c, unsigned code, int clean) {
  if (c->state == WS__S_CLOSED) return;
  c->state = WS__S_CLOSED;
  c->close_code = (uint16_t)code;
  if (clean) c->flags |= WS__F_CLEAN;
  ws_loop_t *l = c->loop;
  if (l->cork_owner == c) {
    l->cork_owner = NULL;
    ws__buf_clear(&l->cork);
  }
  /* Nothing more is read or sent: the buffers go now, so a budget sees them go; and it
   * leaves its topics (its memory stays until the close callback, so a publish that is
   * sending to it from a copy of the subscribers never reads freed memory). */
  if (c->subs) ws__topics_leave(c);
  ws__buf_free(&c->in);
  ws__buf_free(&c->msg);
  ws__buf_free(&c->pending);
  ws__conn_account(c);
  c->flags &= ~(WS__F_READING | WS__F_CONNECTING);
  ws__io(c)->close(c);
  l->live--;
  ws__loop_reap(c);
}

/* The transports say goodbye (TLS's close_notify); once that is written too, FIN, and the
 * socket closes (failed or not, nothing more is sent). */
static void do_shutdown(ws_conn_t *c) {
  if (c->state == WS__S_CLOSED) return;
  if (!(c->flags & WS__F_SHUTDOWN)) {
    c->flags |= WS__F_SHUTDOWN | WS__F_END_AFTER_FLUSH;
    for (ws__transport_t *t = c->tp; t; t = t->below)   /* the innermost TLS first */
      if (t->ops->shutdown) t->ops->shutdown(c, t);
    if (c->state == WS__S_CLOSED) return;
  }
  if (ws__buf_len(&c->pending) || c->flags & WS__F_FIN_OWED) return;   /* drained() comes back */
  c->flags |= WS__F_FIN_OWED;
  ws__loop_defer_fin(c);
}

void ws__conn_fin(ws_conn_t *c) {
  if (c->state == WS__S_CLOSED) return;
  if (ws__buf_len(&c->pending)) {   /* queued since: FIN follows it (drained) */
    c->flags &= ~WS__F_FIN_OWED;
    return;
  }
  ws__io(c)->shutdown(c);
  ws__conn_destroy(c, c->close_code, (c->flags & WS__F_CLEAN) != 0);
}

/* Flush what is queued, send FIN, then close. close_ms bounds the wait (the sweep). */
void ws__conn_end(ws_conn_t *c) {
  if (c->state == WS__S_CLOSED) return;
  if (!(c->flags & WS__F_END_AFTER_FLUSH)) c->state_at = ws__now(c->loop);
  c->flags |= WS__F_END_AFTER_FLUSH;
  ws__loop_sweep_for(c->loop, c->lim->close_ms);
  if (c->loop->cork_owner == c) return;     /* the uncork flush gets here again */
  if (ws__buf_len(&c->pending) == 0) do_shutdown(c);
}

/* ---- writing -------------------------------------------------------------- */

static void reading_unblocked(ws_conn_t *c);

/* The queue is empty: a throttled conn reads again, and whoever waits hears of it. */
static void drained(ws_conn_t *c) {
  if (c->flags & WS__F_END_AFTER_FLUSH) {
    do_shutdown(c);
    return;
  }
  uint32_t owed = c->flags & WS__F_DRAIN;
  c->flags &= ~(WS__F_DRAIN | WS__F_THROTTLED);
  if (owed && c->loop->ev->on_drain) c->loop->ev->on_drain(c);
  if (c->state != WS__S_CLOSED) reading_unblocked(c);
}

/* The socket is writable: the queue goes out as far as the peer takes it. */
static void writable(ws_conn_t *c) {
  while (ws__buf_len(&c->pending)) {
    ws_iov_t b = {ws__buf_data(&c->pending), ws__buf_len(&c->pending)};
    ssize_t n = ws__io(c)->write(c, &b, 1);
    if (n == UV_EAGAIN) return;   /* it still waits for writability */
    if (n < 0) {
      ws__conn_destroy(c, 1006, 0);
      return;
    }
    c->out_at = ws__now(c->loop);   /* the peer took bytes: progress */
    ws__buf_consume(&c->pending, (size_t)n);
  }
  ws__buf_free(&c->pending);   /* idle connections keep no write buffers */
  update_io(c);
  if (c->state == WS__S_CLOSED) return;
  drained(c);
  if (c->state != WS__S_CLOSED) ws__conn_account(c);
}

int ws__conn_write_raw(ws_conn_t *c, const ws_iov_t *iov, unsigned n) {
  if (c->state == WS__S_CLOSED) return WS_ECLOSED;
  unsigned i = 0;
  size_t skip = 0;
  if (!ws__buf_len(&c->pending) && !(c->flags & WS__F_CONNECTING)) {
    /* Try the syscall first; only an unsent tail is queued. */
    ssize_t r = n ? ws__io(c)->write(c, iov, n) : 0;
    if (r < 0 && r != UV_EAGAIN) {
      ws__conn_destroy(c, 1006, 0);
      return (int)r;
    }
    size_t sent = r > 0 ? (size_t)r : 0;
    while (i < n && sent >= iov[i].len) sent -= iov[i++].len;
    skip = sent;
    c->out_at = ws__now(c->loop);   /* the send timeout counts from here */
    if (i == n) return 0;
  }
  for (; i < n; i++, skip = 0)
    if (ws__buf_append(&c->pending, iov[i].base + skip, iov[i].len - skip) != 0) {
      ws__conn_destroy(c, 1006, 0);
      return WS_ENOMEM;
    }
  update_io(c);
  return 0;
}

int ws__conn_write(ws_conn_t *c, const ws_iov_t *iov, unsigned n) {
  if (c->tp) return c->tp->ops->write(c, c->tp, iov, n);
  return ws__conn_write_raw(c, iov, n);
}

void ws__conn_flush_cork(ws_loop_t *l) {
  ws_conn_t *c = l->cork_owner;
  if (!c) return;
  l->cork_owner = NULL;
  if (ws__buf_len(&l->cork)) {
    ws_iov_t b = {ws__buf_data(&l->cork), ws__buf_len(&l->cork)};
    ws__buf_clear(&l->cork);
    ws__conn_write(c, &b, 1);
  }
  if (c->flags & WS__F_END_AFTER_FLUSH && !ws__buf_len(&c->pending) && c->state != WS__S_CLOSED)
    do_shutdown(c);
}

/* Queues a whole frame given as pieces (the payload masked already when the client
 * masks): before the socket is open (client) to the role's early queue; into the cork
 * buffer when corked and small; else in one writev. */
static int queue_frame(ws_conn_t *c, const ws_iov_t *iov, unsigned n) {
  ws_loop_t *l = c->loop;
  size_t total = 0;
  for (unsigned i = 0; i < n; i++) total += iov[i].len;
  int early = c->state == WS__S_CONNECTING || c->state == WS__S_HANDSHAKE;
  if (early || (l->cork_depth > 0 && total <= WS__CORK_MAX)) {
    char *p, *frame = NULL;
    if (early) {
      if (!(p = frame = malloc(total ? total : 1))) return WS_ENOMEM;
    } else {
      if (l->cork_owner != c || ws__buf_len(&l->cork) + total > WS__CORK_BUF) {
        ws__conn_flush_cork(l);
        if (c->state == WS__S_CLOSED) return WS_ECLOSED;
        l->cork_owner = c;
      }
      if (!(p = ws__buf_reserve(&l->cork, total))) return WS_ENOMEM;
      ws__buf_commit(&l->cork, total);
    }
    for (unsigned i = 0; i < n; i++) {
      if (iov[i].len) memcpy(p, iov[i].base, iov[i].len);
      p += iov[i].len;
    }
    if (!early) return 0;
    int r = ws__role(c)->queue_early(c, frame, total);
    free(frame);
    return r;
  }
  if (l->cork_owner == c) {
    ws__conn_flush_cork(l);
    if (c->state == WS__S_CLOSED) return WS_ECLOSED;
  }
  return ws__conn_write(c, iov, n);
}

int ws__conn_queue(ws_conn_t *c, const ws_iov_t *iov, unsigned n) { return queue_frame(c, iov, n); }

/* Frames a whole message with c's codec (masked with a fresh key for a client) and
 * queues it. A client's payload is copied once, to be masked; a server's is not copied
 * unless it is corked. */
static int send_frame_rsv(ws_conn_t *c, int rsv, int opcode, const char *data, size_t len) {
  uint8_t hdr[WS_CODEC_MAX_HEAD], tail[WS_CODEC_MAX_HEAD], key[4];
  int client = (c->flags & WS__F_CLIENT) != 0;
  if (client && ws__mask_key(c->loop, key) != 0) return WS_EINTERNAL;
  size_t hl = c->codec->head(hdr, rsv, opcode, len, client ? key : NULL);
  size_t tl = c->codec->tail(tail);
  char *masked = NULL;
  if (client && len) {
    if (!(masked = malloc(len))) return WS_ENOMEM;
    memcpy(masked, data, len);
    ws_mask(masked, len, key, 0);
    data = masked;
  }
  ws_iov_t b[3] = {{(const char *)hdr, hl}, {data, len}, {(const char *)tail, tl}};
  int r = queue_frame(c, b, tl ? 3 : len ? 2 : 1);
  free(masked);
  return r;
}

static int send_frame(ws_conn_t *c, int opcode, const char *data, size_t len) {
  return send_frame_rsv(c, 0, opcode, data, len);
}

/* The codec's close frame; none for a version that closes by closing TCP. */
static void send_close(ws_conn_t *c, unsigned code, const char *reason, size_t rlen) {
  uint8_t frame[WS_CODEC_MAX_CLOSE], key[4];
  int client = (c->flags & WS__F_CLIENT) != 0;
  c->flags |= WS__F_CLOSE_SENT;
  if (client && ws__mask_key(c->loop, key) != 0) return;
  size_t n = c->codec->close(frame, code, reason, rlen, client ? key : NULL);
  ws_iov_t b = {(const char *)frame, n};
  if (n) queue_frame(c, &b, 1);
}

/* May len more bytes be queued? A message is refused only when bytes are already
 * queued and it would take the queue past max_buffered (so one message of any size can
 * always be sent). Refused: with the "error" policy the send fails and the conn stays;
 * otherwise the peer, which is not reading, is dropped, so nothing is lost silently. */
int ws__conn_admit(ws_conn_t *c, size_t len) {
  size_t queued = ws_conn_buffered(c);
  if (queued == 0 || len <= c->lim->max_buffered - (queued < c->lim->max_buffered ? queued : c->lim->max_buffered))
    return 0;
  if (c->flags & WS__F_BP_ERROR) return WS_EBACKPRESSURE;
  char msg[160];
  snprintf(msg, sizeof msg, "the peer is not reading: %zu bytes queued, max_buffered is %zu",
           queued, c->lim->max_buffered);
  ws__conn_abort(c, WS_EBACKPRESSURE, 1008, msg);
  return WS_EBACKPRESSURE;
}

/* After bytes were queued: past high_water, stop reading from the peer until the queue
 * drains, so back-pressure reaches a sender that does not read what it is sent. */
void ws__conn_after_queue(ws_conn_t *c) {
  if (c->state == WS__S_CLOSED) return;
  size_t queued = ws_conn_buffered(c);
  if (queued > c->lim->high_water && c->lim->high_water) {
    c->flags |= WS__F_THROTTLED | WS__F_DRAIN;
    stop_reading(c);
  }
  if (!(c->flags & WS__F_IN_INPUT)) ws__conn_account(c);
}

/* Can c's codec carry this message? */
static int sendable(const ws_conn_t *c, int opcode, const char *data, size_t len) {
  unsigned caps = c->codec->caps;
  if ((opcode & 8) && !(caps & WS_CODEC_PING)) return WS_ENOTSUPPORTED;
  if (opcode == WS_OP_BINARY && !(caps & WS_CODEC_BINARY)) return WS_ENOTSUPPORTED;
  if ((opcode & 8) && len > WS_MAX_CONTROL) return WS_EINVAL;
  if (caps & WS_CODEC_UTF8_OUT) {   /* a draft's text frame ends at the first 0xFF */
    uint32_t st = WS_UTF8_ACCEPT;
    if (ws_utf8_validate(&st, (const uint8_t *)data, len) < 0 || st != WS_UTF8_ACCEPT)
      return WS_EINVAL;
  }
  return 0;
}

/* A data message through the first negotiated extension that encodes it (into the
 * loop's scratch buffer), then framed with the RSV bits it says. */
static int send_message(ws_conn_t *c, int opcode, const char *data, size_t len) {
  struct ws__exts *x = ws__r(c)->ext;
  if (x && x->rsv && !(opcode & 8)) {
    ws_bytes_t *out = &c->loop->scratch;
    for (unsigned i = 0; i < x->n; i++) {
      if (!x->use[i].state) continue;
      int rsv = 0;
      out->len = 0;
      int r = x->use[i].ext->encode(x->use[i].state, data, len, out, &rsv);
      if (r) return r;
      if (rsv) {
        r = send_frame_rsv(c, rsv, opcode, out->data, out->len);
        if (out->cap > WS__CORK_BUF) ws_bytes_free(out);   /* keep only a small one */
        ws__conn_account(c);
        return r;
      }
    }
  }
  return send_frame(c, opcode, data, len);
}

int ws_conn_send(ws_conn_t *c, int opcode, const char *data, size_t len) {
  int early = (c->state == WS__S_CONNECTING || c->state == WS__S_HANDSHAKE) &&
              (c->flags & WS__F_CLIENT);
  if (c->state != WS__S_OPEN && !early) return WS_ECLOSED;
  int r = sendable(c, opcode, data, len);
  if (r) return r;
  if ((r = ws__conn_admit(c, len))) return r;
  r = send_message(c, opcode, data, len);
  ws__conn_after_queue(c);
  return r;
}

int ws_conn_write_raw(ws_conn_t *c, const char *data, size_t len) {
  if (c->state != WS__S_RAW) return WS_ECLOSED;
  ws_iov_t b = {data, len};
  return ws__conn_write(c, &b, 1);
}

size_t ws_conn_buffered(const ws_conn_t *c) {
  size_t n = ws__buf_len(&c->pending) + ws__role(c)->early_len(c);
  if (c->loop->cork_owner == c) n += ws__buf_len(&c->loop->cork);
  return n;
}

/* ---- closing -------------------------------------------------------------- */

/* Errors are told from the close callback, just before on_close: never from inside the
 * send, read or timer that found them, so no handler runs nested in another, and a
 * handler that raises cannot change what the peer was told. */
static void note_error(ws_conn_t *c, int err, const char *message) {
  c->flags |= WS__F_FAILED;
  c->flags &= ~WS__F_CLEAN;
  if (!(c->flags & WS__F_KNOWN) || ws__r(c)->error) return;
  size_t n = strlen(message);
  struct ws__rare *x = ws__rare(c);
  if (x && (x->error = malloc(sizeof *x->error + n + 1))) {
    x->error->err = err;
    memcpy(x->error->message, message, n + 1);
  }
}

/* The closing handshake began (either side), or the conn failed: nothing more is sent
 * to it, so it leaves its topics now. */
static void set_closing(ws_conn_t *c) {
  c->state = WS__S_CLOSING;
  if (c->subs) ws__topics_leave(c);
}

void ws__conn_fail(ws_conn_t *c, int err, const char *message) {
  if (c->state == WS__S_CLOSED) return;
  note_error(c, err, message);
  if (c->state == WS__S_OPEN || c->state == WS__S_CLOSING) {
    /* The drafts have no close codes: their peer just sees the connection end. */
    int codes = (c->codec->caps & WS_CODEC_CLOSE_CODES) != 0;
    unsigned code = codes ? (unsigned)ws_err_close_code(err) : 1006;
    if (!(c->flags & WS__F_CLOSE_SENT) && codes) send_close(c, code, NULL, 0);
    c->close_code = (uint16_t)code;
    set_closing(c);
    ws__buf_free(&c->msg);
    ws__conn_end(c);
    return;
  }
  ws__conn_destroy(c, 1006, 0);
}

void ws__conn_abort(ws_conn_t *c, int err, unsigned code, const char *message) {
  if (c->state == WS__S_CLOSED) return;
  note_error(c, err, message);
  if (code && (c->state == WS__S_OPEN || c->state == WS__S_CLOSING) &&
      !(c->flags & WS__F_CLOSE_SENT) && !ws__buf_len(&c->pending) && !c->tp) {
    /* Best effort, and only where nothing is queued ahead of it. */
    uint8_t frame[WS_CODEC_MAX_CLOSE], key[4];
    int client = (c->flags & WS__F_CLIENT) != 0;
    size_t n = 0;
    if ((c->codec->caps & WS_CODEC_CLOSE_CODES) && (!client || ws__mask_key(c->loop, key) == 0))
      n = c->codec->close(frame, code, NULL, 0, client ? key : NULL);
    if (n) {
      ws_iov_t b = {(const char *)frame, n};
      ws__io(c)->write(c, &b, 1);
    }
  }
  ws__conn_destroy(c, 1006, 0);
}

void ws_conn_close(ws_conn_t *c, unsigned code, const char *reason, size_t reason_len) {
  switch (c->state) {
  case WS__S_OPEN:
    send_close(c, code, reason, reason_len);
    if (c->state != WS__S_OPEN) break;   /* the write failed: it is closed */
    if (!(c->codec->caps & WS_CODEC_CLOSE_CODES)) {
      /* The drafts: -76 sent its closing frame, -75 none; neither waits for an answer
       * (as faye's drivers), and the close is a clean one. */
      set_closing(c);
      c->close_code = 1000;
      c->flags |= WS__F_CLEAN;
      ws__conn_end(c);
      break;
    }
    set_closing(c);
    c->state_at = ws__now(c->loop);
    ws__loop_sweep_for(c->loop, c->lim->close_ms);
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


/* Room to make in the message buffer for the current frame's rest, beyond the `have`
 * bytes it holds: never more than the frame still owes, and never more than what came
 * (or WS__MSG_AHEAD), so a peer that announces a big frame and sends little of it makes
 * us hold at most twice what it sent. */
static size_t msg_ahead(const ws_conn_t *c, size_t have) {
  size_t cap = have > WS__MSG_AHEAD ? have : WS__MSG_AHEAD;
  return c->parser.rfc.remaining < cap ? (size_t)c->parser.rfc.remaining : cap;
}

/* An RFC 6455 data frame's payload is under way (its rest may be read in place). */
static int in_frame(const ws_conn_t *c) {
  return c->codec == &ws_codec_rfc6455 && c->parser.rfc.in_frame;
}

/* An extension's decoded bytes: into the message, UTF-8 checked as they come. */
static int decoded(void *ud, const char *data, size_t len) {
  ws_conn_t *c = ud;
  if (ws__r(c)->ext->text && ws_utf8_validate(&ws__r(c)->ext->utf8, (const uint8_t *)data, len) < 0)
    return WS_EUTF8;
  return ws__buf_append(&c->msg, data, len) == 0 ? 0 : WS_ENOMEM;
}

/* A message whose first frame has RSV bits an extension owns goes through it, a chunk
 * at a time, bounded by maxLength on the decoded size (the parser bounds the wire size). */
static int on_extension_data(ws_conn_t *c, int opcode, int rsv, const char *data, size_t len,
                             int fin) {
  struct ws__exts *x = ws__r(c)->ext;
  unsigned i = 0;
  while (i < x->n && !(x->use[i].state && (x->use[i].ext->rsv & rsv))) i++;
  if (i == x->n) {   /* bits no negotiated extension owns: the parser lets none through */
    ws__conn_fail(c, WS_EPROTOCOL, "reserved bits set that no extension owns");
    return 1;
  }
  if (!ws__buf_len(&c->msg)) {
    x->text = opcode == WS_OP_TEXT;
    x->utf8 = WS_UTF8_ACCEPT;
  }
  int r = x->use[i].ext->decode(x->use[i].state, data, len, fin, c->parser.rfc.max_length,
                                decoded, c);
  if (!r && fin && x->text && x->utf8 != WS_UTF8_ACCEPT) r = WS_EUTF8;
  if (r) {
    ws__conn_fail(c, r, r == WS_ETOOBIG ? "message too big (after inflating)" : ws_strerror(r));
    return 1;
  }
  ws__conn_account(c);
  if (!fin) return 0;
  c->msg_at = 0;
  const char *whole = ws__buf_data(&c->msg);
  deliver(c, opcode == WS_OP_BINARY, whole ? whole : "", ws__buf_len(&c->msg));
  ws__buf_free(&c->msg);
  return c->state == WS__S_CLOSED || (c->flags & WS__BLOCKED);
}

static int on_data(void *ud, int opcode, int rsv, char *data, size_t len, int fin) {
  ws_conn_t *c = ud;
  if (c->state != WS__S_OPEN) {   /* after close(): discard, look for the peer's close */
    ws__buf_free(&c->msg);
    return 0;
  }
  if (rsv && ws__r(c)->ext) return on_extension_data(c, opcode, rsv, data, len, fin);
  if (!fin || ws__buf_len(&c->msg)) {
    const char *so_far = ws__buf_data(&c->msg);
    if (so_far && data == so_far + ws__buf_len(&c->msg) && len <= ws__buf_room(&c->msg)) {
      ws__buf_commit(&c->msg, len);   /* read straight into the message (on_alloc) */
    } else {
      /* The first piece of a split frame: room for more of it at once (msg_ahead). */
      if (!ws__buf_len(&c->msg) && in_frame(c)) ws__buf_reserve(&c->msg, len + msg_ahead(c, len));
      if (ws__buf_append(&c->msg, data, len) != 0) {
        ws__conn_fail(c, WS_ENOMEM, "out of memory");
        return 1;
      }
    }
    if (!fin) return 0;
    c->msg_at = 0;
    deliver(c, opcode == WS_OP_BINARY, ws__buf_data(&c->msg), ws__buf_len(&c->msg));
    ws__buf_free(&c->msg);
  } else {
    c->msg_at = 0;
    deliver(c, opcode == WS_OP_BINARY, data, len);
  }
  return c->state == WS__S_CLOSED || (c->flags & WS__BLOCKED);
}

static int on_control(void *ud, int opcode, char *data, size_t len) {
  ws_conn_t *c = ud;
  if (opcode == WS_OP_PING) {
    /* A peer that pings but never reads would grow our queue of pongs without end. */
    if (ws_conn_buffered(c) > c->lim->max_buffered) {
      ws__conn_abort(c, WS_EBACKPRESSURE, 1008, "peer sends pings but does not read the pongs");
      return 1;
    }
    if (!(c->flags & WS__F_CLOSE_SENT)) send_frame(c, WS_OP_PONG, data, len);
    ws__conn_after_queue(c);
    return c->state == WS__S_CLOSED || (c->flags & WS__F_THROTTLED);
  }
  if (opcode == WS_OP_PONG) {
    if (c->loop->ev->on_pong) c->loop->ev->on_pong(c, data, len);
    return c->state == WS__S_CLOSED || (c->flags & WS__BLOCKED);
  }
  unsigned code;
  const char *reason;
  size_t rlen;
  int err = ws_close_parse(data, len, &code, &reason, &rlen);
  if (!(c->codec->caps & WS_CODEC_CLOSE_CODES)) code = 1000;   /* -76's 0xFF 0x00 */
  if (err) {
    ws__conn_fail(c, err, err == WS_EUTF8 ? "invalid UTF-8 in close reason" : "invalid close frame");
    return 1;
  }
  c->flags |= WS__F_CLOSE_RECEIVED;
  c->close_code = (uint16_t)code;
  struct ws__rare *x = rlen || c->rare ? ws__rare(c) : NULL;
  if (x) {
    free(x->close_reason);
    x->close_reason = NULL;
  }
  if (x && rlen && (x->close_reason = malloc(rlen + 1))) {
    memcpy(x->close_reason, reason, rlen);
    x->close_reason[rlen] = 0;
  }
  if (!(c->flags & WS__F_CLOSE_SENT)) send_close(c, code == 1005 ? 0 : code, reason, rlen);
  if (c->state == WS__S_CLOSED) return 1;
  if (c->state != WS__S_CLOSING) c->state_at = ws__now(c->loop);
  set_closing(c);
  c->flags |= WS__F_CLEAN;
  ws__buf_free(&c->msg);
  c->msg_at = 0;
  if (c->flags & WS__F_CLIENT) {
    /* RFC 6455 7.1.1: the server closes TCP first; the client waits, bounded. */
    ws__loop_sweep_for(c->loop, c->lim->close_ms);
  } else {
    ws__conn_end(c);
  }
  return 1;
}

static const ws_parser_settings_t parser_settings = {on_data, on_control};

/* A message (or a frame header) has begun and not ended: message_timeout runs. */
static void note_message(ws_conn_t *c) {
  if (c->msg_at || c->state != WS__S_OPEN) return;
  if (c->codec->busy(&c->parser) || ws__buf_len(&c->in)) {
    c->msg_at = ws__now(c->loop) | 1;   /* never 0, which means none */
    ws__loop_sweep_for(c->loop, c->lim->message_ms);
  }
}

/* Consumes buf (which starts with any earlier unconsumed tail); keeps what is left.
 * Never re-entered for one conn: a resume() from inside a handler only clears the flag,
 * and this loop goes on. */
void ws__conn_input(ws_conn_t *c, char *buf, size_t len) {
  int from_in = ws__buf_len(&c->in) && buf == ws__buf_data(&c->in);
  size_t off = 0;
  c->flags |= WS__F_IN_INPUT;
  while (off < len && c->state != WS__S_CLOSED && !(c->flags & (WS__BLOCKED | WS__F_HELD))) {
    ssize_t n;
    switch (c->state) {
    case WS__S_HTTP:
    case WS__S_BODY:
    case WS__S_HANDSHAKE:
      n = ws__role(c)->on_head(c, buf + off, len - off);
      break;
    case WS__S_OPEN:
    case WS__S_CLOSING:
      if (c->flags & WS__F_CLOSE_RECEIVED) {
        n = (ssize_t)(len - off);   /* nothing after a close frame counts */
        break;
      }
      n = c->codec->execute(&c->parser, &parser_settings, c, buf + off, len - off);
      if (n < 0) {
        ws__conn_fail(c, (int)n, ws_strerror((int)n));
        n = -1;
      }
      break;
    case WS__S_RAW:
      if (c->loop->ev->on_raw) c->loop->ev->on_raw(c, buf + off, len - off);
      n = (ssize_t)(len - off);
      break;
    case WS__S_REQUEST:
    case WS__S_RESPONDING:
      if (ws__r(c)->body) {   /* a streamed request body, still coming while it is answered */
        n = ws__role(c)->on_head(c, buf + off, len - off);
        break;
      }
      n = (ssize_t)(len - off);   /* after the last request: dropped */
      break;
    default:   /* not reading: dropped */
      n = (ssize_t)(len - off);
    }
    if (n <= 0) break;
    off += (size_t)n;
  }
  c->flags &= ~WS__F_IN_INPUT;
  /* Closed, or failed (the rest is never parsed: the parser's error is sticky, and buf
   * may lie in the message buffer that the failure freed): nothing is kept. */
  if (c->state == WS__S_CLOSED || (c->flags & WS__F_FAILED)) {
    ws__buf_free(&c->in);
    return;
  }
  if (from_in) {
    ws__buf_consume(&c->in, off);
    if (!ws__buf_len(&c->in)) ws__buf_free(&c->in);
  } else if (off < len) {
    ws__buf_clear(&c->in);
    if (ws__buf_append(&c->in, buf + off, len - off) != 0) ws__conn_fail(c, WS_ENOMEM, "out of memory");
  } else {
    ws__buf_free(&c->in);
  }
  note_message(c);
  if ((c->flags & (WS__F_HELD | WS__F_READING)) == (WS__F_HELD | WS__F_READING) &&
      ws__buf_len(&c->in) > WS__HELD_MAX)
    stop_reading(c);   /* a pipelining client waits its turn */
  ws__conn_account(c);
}

/* Hands bytes that just arrived to the conn, after its unconsumed tail: buf has room
 * for `pre` bytes in front of the new ones (pre is 0 or the tail's length, from
 * ws__conn_prefix_room), where the tail is copied; with no room the new bytes are
 * appended to the tail. */
void ws__conn_feed(ws_conn_t *c, char *buf, size_t pre, size_t len) {
  if (pre) memcpy(buf, ws__buf_data(&c->in), pre);
  if (pre || !ws__buf_len(&c->in)) {
    ws__buf_clear(&c->in);   /* its bytes were copied to the front of buf */
    ws__conn_input(c, buf, pre + len);
  } else if (ws__buf_append(&c->in, buf + pre, len) == 0) {
    ws__conn_input(c, ws__buf_data(&c->in), ws__buf_len(&c->in));
  } else {
    ws__conn_fail(c, WS_ENOMEM, "out of memory");
  }
}

/* A split frame header's bytes go in front of the next read, so the parser sees them
 * contiguous; a request head (which grows by appending, and is searched on from where
 * the last search stopped) and a long tail stay in c->in. */
size_t ws__conn_prefix_room(const ws_conn_t *c, size_t max) {
  if (!ws__buf_len(&c->in) || ws__buf_len(&c->in) > max) return 0;
  if (c->state != WS__S_OPEN && c->state != WS__S_CLOSING) return 0;
  return ws__buf_len(&c->in);
}

/* Where the next read goes: the loop's buffer, after room for what is kept in front. */
static void read_place(ws_conn_t *c, uv_buf_t *buf) {
  ws_loop_t *l = c->loop;
  size_t pre = 0;
  l->rdirect = 0;
  /* The rest of a big frame whose start is already in the message buffer: read it in
   * there, and the parser unmasks it in place (no copy out of the loop's buffer). The
   * read is no longer than the frame, so it never takes in the next frame's header. */
  if (!c->tp && c->state == WS__S_OPEN && ws__buf_len(&c->msg) && !ws__buf_len(&c->in) &&
      in_frame(c) && !c->parser.rfc.msg_rsv && c->parser.rfc.remaining >= WS__DIRECT_MIN) {
    size_t want = msg_ahead(c, ws__buf_len(&c->msg));
    char *p = ws__buf_reserve(&c->msg, want);
    if (p) {
      size_t room = ws__buf_room(&c->msg);
      if (room > want) room = want;
      l->rdirect = 1;
      l->rprefix = 0;
      *buf = uv_buf_init(p, (unsigned)(room < WS__READ_BUF ? room : WS__READ_BUF));
      return;
    }
  }
  if (c->tp) pre = ws__tp_bottom(c)->ops->headroom;
  else pre = ws__conn_prefix_room(c, WS__READ_BUF / 2);   /* ws__conn_feed copies it */
  l->rprefix = pre;
  *buf = uv_buf_init(l->rbuf + pre, (unsigned)(WS__READ_BUF - pre));
}

/* Did the connection end as its protocol version closes? RFC 6455: both close frames
 * went; hixie-76: one 0xFF 0x00 went either way; hixie-75: closing TCP is its close. */
static int ended_cleanly(const ws_conn_t *c) {
  if (c->flags & WS__F_FAILED) return 0;
  uint32_t both = WS__F_CLOSE_SENT | WS__F_CLOSE_RECEIVED;
  if (c->codec->caps & WS_CODEC_CLOSE_CODES) return (c->flags & both) == both;
  if (c->codec == &ws_codec_hixie75) return c->state == WS__S_OPEN || c->state == WS__S_CLOSING;
  return (c->flags & both) != 0;
}

/* A client's way in failed; the role says in which stage. */
static void fail_opening(ws_conn_t *c, int err, const char *what) {
  const char *stage = ws__role(c)->stage ? ws__role(c)->stage(c) : NULL;
  char msg[160];
  if (stage) snprintf(msg, sizeof msg, "%s (%s)", what, stage);
  else snprintf(msg, sizeof msg, "%s", what);
  ws__conn_fail(c, err, msg);
}

static void on_eof(ws_conn_t *c) {
  int clean = ended_cleanly(c);
  if (clean && !(c->codec->caps & WS_CODEC_CLOSE_CODES)) c->close_code = 1000;
  if (c->state == WS__S_HANDSHAKE || c->state == WS__S_CONNECTING) {
    fail_opening(c, WS_EHANDSHAKE, "connection closed during the handshake");
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

static void on_read(ws_conn_t *c, ssize_t nread, const uv_buf_t *buf) {
  ws_loop_t *l = c->loop;
  if (nread == 0) return;
  if (nread < 0) {   /* the peer's FIN, or a reset: nothing more comes */
    stop_reading(c);
    if (c->state != WS__S_CLOSED) on_eof(c);
    return;
  }
  c->flags |= WS__F_HEARD;
  c->heard_at = ws__now(l);
  ws_loop_cork(l);
  if (c->tp) {
    ws__transport_t *t = ws__tp_bottom(c);
    t->ops->on_read(c, t, buf->base, (size_t)nread);
  } else if (l->rdirect) {
    l->rdirect = 0;
    ws__conn_input(c, buf->base, (size_t)nread);
  } else {
    ws__conn_feed(c, l->rbuf, l->rprefix, (size_t)nread);
  }
  ws_loop_uncork(l);
}

/* The socket has bytes: read them while it has (a read that fills the buffer may have
 * left more), at most WS__READS_PER_TURN times, so one busy peer cannot starve the rest. */
static void readable(ws_conn_t *c) {
  for (int k = 0; k < WS__READS_PER_TURN; k++) {
    if (!(c->flags & WS__F_READING) || c->state == WS__S_CLOSED) return;
    uv_buf_t b;
    read_place(c, &b);
    ssize_t n = ws__io(c)->read(c, b.base, b.len);
    if (n == UV_EAGAIN) {
      c->loop->rdirect = 0;
      return;
    }
    on_read(c, n ? n : UV_EOF, &b);
    if (n <= 0 || (size_t)n < b.len) return;
  }
}

void ws__conn_io(ws_conn_t *c, unsigned events) {
  if (events & WS__IO_WRITE && c->flags & WS__F_CONNECTING) {
    c->flags &= ~WS__F_CONNECTING;
    int r = ws__sock_connect_result(c);
    update_io(c);
    if (c->state != WS__S_CLOSED) ws__role(c)->connected(c, r);
    return;
  }
  if (events & WS__IO_READ) readable(c);
  if (events & WS__IO_WRITE && c->state != WS__S_CLOSED && ws__buf_len(&c->pending)) writable(c);
}

int ws__conn_start_read(ws_conn_t *c) {
  if (c->flags & (WS__F_READING | WS__BLOCKED) || c->state == WS__S_CLOSED) return 0;
  c->flags |= WS__F_READING;
  unsigned ev = c->io_ev | WS__IO_READ;
  int r = ws__io(c)->want(c, ev);
  if (r) c->flags &= ~WS__F_READING;
  return r;
}

void ws_conn_pause(ws_conn_t *c) {
  if (c->state == WS__S_CLOSED || c->flags & WS__F_PAUSED) return;
  c->flags |= WS__F_PAUSED;
  stop_reading(c);
}

/* Neither paused nor throttled any more: what arrived meanwhile comes first, then
 * reading starts again. Inside the conn's own input (a handler's resume()), the input
 * loop that is running goes on by itself: it is never entered twice. */
static void reading_unblocked(ws_conn_t *c) {
  if (c->state == WS__S_CLOSED || c->flags & WS__BLOCKED) return;
  if (c->flags & WS__F_IN_INPUT) {   /* a handler's resume(): read on after this input */
    ws__conn_start_read(c);
    return;
  }
  if (ws__buf_len(&c->in)) {
    ws_loop_cork(c->loop);
    ws__conn_input(c, ws__buf_data(&c->in), ws__buf_len(&c->in));
    ws_loop_uncork(c->loop);
  }
  ws__conn_start_read(c);
}

void ws__conn_hold(ws_conn_t *c, int on) {
  if (c->state == WS__S_CLOSED) return;
  if (on) {
    c->flags |= WS__F_HELD;
  } else if (c->flags & WS__F_HELD) {
    c->flags &= ~WS__F_HELD;
    reading_unblocked(c);
  }
}

void ws_conn_resume(ws_conn_t *c) {
  if (c->state == WS__S_CLOSED || !(c->flags & WS__F_PAUSED)) return;
  c->flags &= ~WS__F_PAUSED;
  reading_unblocked(c);
}

/* ---- state and deadlines --------------------------------------------------- */

void ws__conn_set_open(ws_conn_t *c, const ws_http_head_t *head) {
  ws_loop_t *l = c->loop;
  c->state = WS__S_OPEN;
  c->flags |= WS__F_KNOWN;
  c->heard_at = c->ping_at = ws__now(l);
  ws__loop_sweep_for(l, c->lim->ping_ms);
  ws__loop_sweep_for(l, c->lim->idle_ms);
  ws__loop_sweep_for(l, c->lim->send_ms);
  if (l->ev->on_open) l->ev->on_open(c, head);
}

static int due(uint32_t now, uint32_t since, uint32_t ms) {
  return ms && (uint32_t)(now - since) >= ms;
}

/* Keep-alive. With the ping option, a ping every interval, and a peer that sent nothing
 * at all in a whole interval after one is gone. Without it, a peer silent for idle_ms is
 * pinged, and dropped if it is still silent pong_ms later. */
static void keepalive(ws_conn_t *c, uint32_t now) {
  if (!(c->codec->caps & WS_CODEC_PING)) return;   /* the drafts cannot ping */
  if (c->flags & WS__BLOCKED) {
    /* We are not reading (paused, or throttled by our own queue), so we cannot hear the
     * peer: its silence means nothing. send_timeout bounds a peer that takes nothing. */
    c->heard_at = now;
    c->flags |= WS__F_HEARD;
    return;
  }
  if (c->lim->ping_ms) {
    if (!due(now, c->ping_at, c->lim->ping_ms)) return;
    if ((c->flags & (WS__F_PINGED | WS__F_HEARD)) == WS__F_PINGED) {
      ws__conn_abort(c, WS_ETIMEDOUT, 1001, "no pong within the ping interval");
      return;
    }
  } else if (c->flags & WS__F_PINGED) {
    if (c->flags & WS__F_HEARD) {
      c->flags &= ~WS__F_PINGED;
    } else if (due(now, c->ping_at, c->lim->pong_ms)) {
      ws__conn_abort(c, WS_ETIMEDOUT, 1001, "the peer was silent and did not answer a ping");
    }
    return;
  } else if (!due(now, c->heard_at, c->lim->idle_ms)) {
    return;
  }
  c->flags = (c->flags & ~WS__F_HEARD) | WS__F_PINGED;
  c->ping_at = now;
  ws__loop_sweep_for(c->loop, c->lim->pong_ms);
  send_frame(c, WS_OP_PING, NULL, 0);
}

/* A conn silent both ways for WS__PARK_MS, between messages: its extensions shrink to
 * what the next message needs (permessage-deflate frees its zlib streams and keeps
 * their windows), and the loop gives the freed memory back to the system. */
static void park(ws_conn_t *c, uint32_t now) {
  struct ws__exts *x = ws__r(c)->ext;
  if (!x || !x->rsv || ws__buf_len(&c->msg) || c->codec->busy(&c->parser) || ws_conn_buffered(c) ||
      !due(now, c->heard_at, WS__PARK_MS) || !due(now, c->out_at, WS__PARK_MS))
    return;
  size_t before = 0, after = 0;
  for (unsigned i = 0; i < x->n; i++) {
    if (!x->use[i].state || !x->use[i].ext->park) continue;
    before += x->use[i].ext->memory(x->use[i].state);
    int r = x->use[i].ext->park(x->use[i].state);
    if (r) {
      ws__conn_fail(c, r, ws_strerror(r));
      return;
    }
    after += x->use[i].ext->memory(x->use[i].state);
  }
  if (after < before) {
    c->loop->freed = 1;
    ws__conn_account(c);
  }
}

uint32_t ws__conn_sweep(ws_conn_t *c, uint32_t now) {
  switch (c->state) {
  case WS__S_HTTP: {
    /* Between the requests of a keep-alive connection, its idle wait (idle_ms); once
     * a request head has begun, or for the first one, the handshake timeout. */
    uint32_t ms =
        (c->flags & WS__F_KEPT) && !ws__buf_len(&c->in) ? c->lim->idle_ms : c->lim->handshake_ms;
    if (due(now, c->state_at, ms)) ws__conn_destroy(c, 1006, 0);
    return ms;
  }
  case WS__S_BODY:   /* the body must come within the handshake timeout too */
    if (due(now, c->state_at, c->lim->handshake_ms)) ws__conn_destroy(c, 1006, 0);
    return c->lim->handshake_ms;
  case WS__S_REQUEST:
  case WS__S_RESPONDING:
    if (ws__r(c)->body && !(c->flags & WS__BLOCKED) && due(now, c->heard_at, c->lim->handshake_ms)) {
      /* a streamed body stalled (not while the script paused it) */
      ws__conn_destroy(c, 1006, 0);
      return 0;
    }
    if (c->state == WS__S_RESPONDING) break;
    if ((c->flags & WS__F_DEFERRED) && due(now, c->state_at, c->lim->handshake_ms)) {
      static const char timeout[] = "HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n"
                                    "Connection: close\r\n\r\n";
      ws_iov_t b = {timeout, sizeof timeout - 1};
      c->state = WS__S_RESPONDING;
      c->flags &= ~WS__F_DEFERRED;
      ws__conn_write(c, &b, 1);
      ws__conn_end(c);
      return c->lim->close_ms;
    }
    if (c->flags & WS__F_DEFERRED) return c->lim->handshake_ms;
    break;
  case WS__S_CONNECTING:
  case WS__S_HANDSHAKE:
    if (due(now, c->state_at, c->lim->handshake_ms))
      fail_opening(c, WS_ETIMEDOUT, "opening handshake timed out");
    return c->lim->handshake_ms;
  case WS__S_CLOSED:
    return 0;
  default:
    break;
  }
  int closing = c->state == WS__S_CLOSING || (c->flags & WS__F_END_AFTER_FLUSH);
  if (closing && due(now, c->state_at, c->lim->close_ms)) {
    /* The peer did not answer our close, or did not close TCP. */
    int clean = (c->flags & WS__F_CLEAN) &&
                ((c->flags & WS__F_CLOSE_RECEIVED) || !(c->codec->caps & WS_CODEC_CLOSE_CODES));
    ws__conn_destroy(c, clean ? c->close_code : 1006, clean);
    return 0;
  }
  if (c->lim->send_ms && ws_conn_buffered(c) && due(now, c->out_at, c->lim->send_ms)) {
    char msg[128];
    snprintf(msg, sizeof msg, "the peer took none of %zu queued bytes in %u ms",
             ws_conn_buffered(c), (unsigned)c->lim->send_ms);
    ws__conn_abort(c, WS_ETIMEDOUT, 1008, msg);
    return 0;
  }
  if (c->state != WS__S_OPEN || closing) return c->lim->close_ms;
  if (c->msg_at && (c->flags & WS__BLOCKED)) {
    /* We are not reading (paused, or throttled by our own queue): what waits unread is
     * ours to hold, not the peer's delay. Its clock restarts when reading does. */
    c->msg_at = now | 1;
  } else if (c->msg_at && due(now, c->msg_at, c->lim->message_ms)) {
    ws__conn_fail(c, WS_ETIMEDOUT, "a message was not completed within message_timeout");
    return c->lim->close_ms;
  }
  park(c, now);
  keepalive(c, now);
  uint32_t m = c->lim->ping_ms ? c->lim->ping_ms : c->lim->idle_ms;
  if (c->flags & WS__F_PINGED && c->lim->pong_ms && (!m || c->lim->pong_ms < m)) m = c->lim->pong_ms;
  if (c->msg_at && c->lim->message_ms && (!m || c->lim->message_ms < m)) m = c->lim->message_ms;
  if (c->lim->send_ms && (!m || c->lim->send_ms < m)) m = c->lim->send_ms;
  return m;
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

const char *ws_conn_version(const ws_conn_t *c) { return ws_codec_version_name(c->version); }

int ws_conn_is_client(const ws_conn_t *c) { return (c->flags & WS__F_CLIENT) != 0; }
void *ws_conn_data(const ws_conn_t *c) { return c->data; }
void ws_conn_set_data(ws_conn_t *c, void *data) { c->data = data; }

int ws_conn_peer(const ws_conn_t *c, char *ip, size_t iplen, int *port) {
  struct sockaddr_storage ss;
  int r = c->state == WS__S_CLOSED ? UV_ENOTCONN : ws__io(c)->peer(c, &ss);
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

static uint32_t timeout_ms(uint32_t ms) { return ms > WS_TIMEOUT_MAX ? WS_TIMEOUT_MAX : ms; }

void ws__conn_apply_options(ws_conn_t *c, const ws_conn_options_t *o, int role) {
  c->codec->init(&c->parser, role, c->version, o->max_length, o->max_fragments);
  ws__limits_t want;
  memset(&want, 0, sizeof want);
  want.max_buffered = o->max_buffered ? o->max_buffered : SIZE_MAX;
  want.high_water = o->high_water;
  if (o->backpressure_error) c->flags |= WS__F_BP_ERROR;
  else c->flags &= ~WS__F_BP_ERROR;
  want.ping_ms = timeout_ms(o->ping_ms);
  want.close_ms = timeout_ms(o->close_timeout_ms);
  want.handshake_ms = timeout_ms(o->handshake_timeout_ms);
  want.idle_ms = timeout_ms(o->idle_timeout_ms);
  want.pong_ms = timeout_ms(o->pong_timeout_ms);
  want.message_ms = timeout_ms(o->message_timeout_ms);
  want.send_ms = timeout_ms(o->send_timeout_ms);
  want.max_head = o->max_head > 65535 ? 65535 : (uint16_t)o->max_head;
  want.max_headers = o->max_headers;
  want.max_subscriptions = o->max_subscriptions;
  const ws__limits_t *lim = ws__limits_get(c->loop, &want);
  if (lim) {   /* (out of memory: the conn keeps what it had) */
    ws__limits_put(c->loop, c->lim);
    c->lim = lim;
  }
  ws__loop_sweep_for(c->loop, c->lim->handshake_ms);
}

/* ---- memory ----------------------------------------------------------------- */

void ws__conn_account(ws_conn_t *c) {
  ws_loop_t *l = c->loop;
  size_t in = ws__buf_cap(&c->in) + ws__buf_cap(&c->msg);
  if (ws__r(c)->ext && c->state != WS__S_CLOSED)   /* an extension's state (zlib's) */
    for (unsigned i = 0; i < ws__r(c)->ext->n; i++)
      if (ws__r(c)->ext->use[i].state) in += ws__r(c)->ext->use[i].ext->memory(ws__r(c)->ext->use[i].state);
  /* A closed conn sends nothing more: the write libuv still holds is freed by its
   * callback, and counting it until then would make a budget drop conn after conn for
   * bytes that are already on their way out of memory. */
  size_t out = c->state == WS__S_CLOSED ? 0
               : ws__buf_cap(&c->pending) + ws__role(c)->early_len(c);
  l->mem_in += in - c->acct_in;     /* unsigned: a decrease wraps back correctly */
  l->mem_out += out - c->acct_out;
  ssize_t delta = (ssize_t)(in + out) - (ssize_t)(c->acct_in + c->acct_out);
  c->acct_in = in;
  c->acct_out = out;
  if (delta) ws__role(c)->account(c, delta);
}

void ws_loop_stats(ws_loop_t *l, ws_loop_stats_t *st) {
  st->connections = (size_t)l->nconns;
  st->buffered_in = l->mem_in;
  st->buffered_out = l->mem_out;
  st->topics = l->topics.n;
  st->subscriptions = l->topics.subscriptions;
  st->topic_memory = l->topics.memory;
}

/* The permessage-deflate state of c, when negotiated. */
static ws_deflate_t *deflate_of(const ws_conn_t *c) {
  if (!ws__r(c)->ext) return NULL;
  for (unsigned i = 0; i < ws__r(c)->ext->n; i++)
    if (ws__r(c)->ext->use[i].ext == &ws_deflate_extension) return ws__r(c)->ext->use[i].state;
  return NULL;
}

#define WS__FLAT_MAX (64 * 1024)   /* a payload copied once into a whole frame */

size_t ws__loop_send_all(ws_loop_t *l, ws_conn_t **conns, size_t n, int opcode,
                         const char *data, size_t len, size_t *missed) {
  uint8_t hdr[WS_MAX_HEADER], zhdr[WS_MAX_HEADER];
  size_t hl = ws_frame_header(hdr, 1, 0, opcode, len, NULL), zhl = 0;
  ws_bytes_t shared = {NULL, 0, 0};   /* compressed once, for every conn that can share */
  int shared_bits = 0;
  char *flat = NULL;
  size_t sent = 0;
  if (missed) *missed = 0;
  ws__conn_flush_cork(l);
  for (size_t i = 0; i < n; i++) {
    ws_conn_t *c = conns[i];
    int r = WS_ECLOSED;
    if (c->state != WS__S_OPEN || (r = sendable(c, opcode, data, len)) != 0 ||
        (r = ws__conn_admit(c, hl + len)) != 0) {
      /* Still open: refused, and told to the caller (missed; *missed <= i, so only
       * entries already read are written over). Closed by the "drop" policy: it hears
       * of it by on_error and on_close. */
      if (missed && c->state == WS__S_OPEN) conns[(*missed)++] = c;
      continue;
    }
    ws_deflate_t *d = deflate_of(c);
    int share = d && len >= d->cfg.threshold && !(c->flags & WS__F_CLIENT) &&
                shared_bits >= 0 &&
                ws_deflate_can_share(d, shared_bits ? shared_bits : d->send_bits);
    if (share && !shared_bits) {
      if (ws_deflate_compress_shared(&d->cfg, d->send_bits, data, len, &shared) == 0) {
        shared_bits = d->send_bits;
        zhl = ws_frame_header(zhdr, 1, WS_RSV1, opcode, shared.len, NULL);
      } else {
        shared_bits = -1;   /* never share after a failure: each compresses its own */
        share = 0;
      }
    }
    if (share) {
      ws_iov_t b[2] = {{(const char *)zhdr, zhl}, {shared.data, shared.len}};
      r = ws__conn_write(c, b, shared.len ? 2 : 1);
    } else if (d || c->codec != &ws_codec_rfc6455 || (c->flags & WS__F_CLIENT)) {
      r = send_message(c, opcode, data, len);   /* its own framing or compression */
    } else {
      /* The frame in one piece, made at the first conn that takes it as it is: one
       * write() per conn rather than a writev() of header and payload. */
      if (!flat && len <= WS__FLAT_MAX && n > 1 && (flat = malloc(hl + len))) {
        memcpy(flat, hdr, hl);
        memcpy(flat + hl, data, len);
      }
      ws_iov_t b[2] = {{(const char *)hdr, hl}, {data, len}};
      if (flat) b[0].base = flat, b[0].len = hl + len;
      r = ws__conn_write(c, b, flat ? 1 : 2);
    }
    ws__conn_after_queue(c);
    if (r == 0) sent++;
    else if (missed && c->state == WS__S_OPEN) conns[(*missed)++] = c;
  }
  ws_bytes_free(&shared);
  free(flat);
  return sent;
}

size_t ws_loop_broadcast(ws_loop_t *l, ws_conn_t **conns, size_t n, int opcode,
                         const char *data, size_t len) {
  return ws__loop_send_all(l, conns, n, opcode, data, len, NULL);
}
