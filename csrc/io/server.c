/* The listener, the request head and the server side of the opening handshake. */
#define _GNU_SOURCE   /* accept4 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "internal.h"
#include "tls.h"

#define WS__MAX_HEADERS_CAP 256

void ws_server_options_default(ws_server_options_t *o) {
  o->max_head = 16 * 1024;
  o->max_headers = 64;
  o->handshake_timeout_ms = 30000;
  o->max_memory = (size_t)1 << 30;   /* ten peers stalling 64 MiB messages fit; a flood
                                        of them does not take the machine */
  o->backlog = 511;
  o->drafts = 1;   /* faye serves hixie-75 and -76 by default */
  o->keepalive_timeout_ms = 5000;   /* Node's http server's keepAliveTimeout */
  o->max_body = 1u << 20;           /* nginx's client_max_body_size */
  o->stream_bodies = 0;
  o->raw = 0;
  o->reuseport = 0;
}

/* Answers an HTTP error and closes; nothing reaches the layer above. */
static void respond_error(ws_conn_t *c, int status, const char *why, const char *extra) {
  const char *text = status == 400   ? "Bad Request"
                     : status == 426 ? "Upgrade Required"
                     : status == 431 ? "Request Header Fields Too Large"
                                     : "Error";
  char buf[512];
  int n = snprintf(buf, sizeof buf,
                   "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
                   "Connection: close\r\n%s\r\n%s\n",
                   status, text, strlen(why) + 1, extra ? extra : "", why);
  if (n < 0 || (size_t)n >= sizeof buf) n = (int)strlen(buf);
  c->state = WS__S_RESPONDING;
  ws_iov_t b = {buf, (size_t)n};
  ws__conn_write(c, &b, 1);
  ws__conn_end(c);
}

static ssize_t hand_up(ws_conn_t *c, const ws_http_head_t *h, char *buf, int r, int upgrade,
                       int keep);
static ssize_t on_body(ws_conn_t *c, char *buf, size_t len);

static ssize_t on_head(ws_conn_t *c, char *buf, size_t len) {
  ws_server_t *s = c->server;
  if (!s) {
    ws__conn_destroy(c, 1006, 0);
    return -1;
  }
  if (ws__r(c)->body) return on_body(c, buf, len);
  ws_header_t hdrs[WS__MAX_HEADERS_CAP];
  ws_http_head_t h;
  memset(&h, 0, sizeof h);
  h.headers = hdrs;
  h.num_headers = s->opt.max_headers;
  size_t end = ws_http_head_end(buf, len, &c->scanned);
  int r;
  if (!end) {
    if (len < s->opt.max_head) return 0;
    r = WS_EHEADTOOBIG;
  } else {
    c->scanned = 0;
    r = ws_http_parse_request(buf, end, &h);
    if (r == WS_EAGAIN) r = WS_EHTTP;   /* a whole head that does not parse */
  }
  if (r > 0 && (size_t)r > s->opt.max_head) r = WS_EHEADTOOBIG;
  if (r == WS_EHEADTOOBIG) {
    respond_error(c, 431, "request head too large", NULL);
    return -1;
  }
  if (r < 0) {
    respond_error(c, 400, "malformed HTTP request", NULL);
    return -1;
  }
  int upgrade = ws_handshake_is_upgrade(&h);
  ws_loop_t *l = s->loop;
  int keep = 0;
  if (upgrade) {
    int version = 13;
    const char *why = NULL;
    const ws_codec_t *codec;
    int status = ws_codec_select(&h, s->opt.drafts, &codec, &version, &why);
    if (status) {
      respond_error(c, status, why ? why : "bad WebSocket handshake",
                    status == 426 ? "Sec-WebSocket-Version: 13\r\n" : NULL);
      return -1;
    }
    /* hixie-76's key3 follows the head, announced by no header: wait for it (bounded by
     * the handshake timeout); the head is searched again when it comes. */
    if (len - (size_t)r < codec->handshake_body) return 0;
    l->req_body = buf + r;
    r += (int)codec->handshake_body;
    c->codec = codec;
    c->version = (uint8_t)version;
  } else {
    /* RFC 9112 6: the body's framing, and whether the connection persists (9.3). */
    ws_http_body_t framing;
    const char *why = NULL;
    int status = ws_http_body_init(&framing, &h, s->opt.max_body, &why);
    if (status) {
      respond_error(c, status, why ? why : "bad request body framing", NULL);
      return -1;
    }
    keep = framing.keep_alive;
    if (!framing.done) {   /* a body follows: read it whole, then hand the request up */
      struct ws__body *b = malloc(sizeof *b + (size_t)r);
      if (!b || !ws__rare(c)) {
        free(b);
        ws__conn_destroy(c, 1006, 0);
        return -1;
      }
      b->framing = framing;
      b->head_len = (size_t)r;
      memcpy(b->head, buf, (size_t)r);
      c->rare->body = b;
      c->state = WS__S_BODY;
      c->state_at = ws__now(l);
      if (framing.expect_continue) {   /* RFC 9110 10.1.1: go on */
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        ws_iov_t b100 = {cont, sizeof cont - 1};
        ws__conn_write(c, &b100, 1);
      }
      if (s->opt.stream_bodies) {   /* up now; the body follows in pieces */
        c->flags |= WS__F_STREAMING;
        ssize_t h_r = hand_up(c, &h, buf, r, 0, keep);
        return h_r < 0 ? h_r : r;
      }
      return r;
    }
  }
  return hand_up(c, &h, buf, r, upgrade, keep);
}

/* A body's bytes, de-chunked: into the message buffer (max_body bounds them), or up. */
static int body_data(void *ud, const char *data, size_t len) {
  ws_conn_t *c = ud;
  if (c->flags & WS__F_STREAMING) {
    if (c->loop->ev->on_request_body) c->loop->ev->on_request_body(c, data, len, 0);
    return c->state == WS__S_CLOSED ? WS_ECLOSED : 0;
  }
  return ws__buf_append(&c->msg, data, len) == 0 ? 0 : WS_ENOMEM;
}

static ssize_t on_body(ws_conn_t *c, char *buf, size_t len) {
  struct ws__body *b = c->rare->body;
  ssize_t n = ws_http_body_execute(&b->framing, buf, len, body_data, c);
  if (c->state == WS__S_CLOSED) return -1;
  if (n < 0 && (c->flags & WS__F_STREAMING) && c->state != WS__S_BODY) {
    /* A response is under way: it cannot become an error answer any more. */
    ws__conn_fail(c, (int)n, "malformed or oversized request body");
    return -1;
  }
  if (n < 0) {
    int status = n == WS_ETOOBIG ? 413 : n == WS_EHEADTOOBIG ? 431 : 400;
    respond_error(c, status, n == WS_ETOOBIG ? "request body larger than max_body"
                             : n == WS_ENOMEM ? "out of memory" : "malformed request body", NULL);
    return -1;
  }
  ws__conn_account(c);
  if (!b->framing.done) return n;
  if (c->flags & WS__F_STREAMING) {   /* the end, then the request waits its answer */
    free(c->rare->body);
    c->rare->body = NULL;
    c->flags &= ~WS__F_STREAMING;
    if (c->loop->ev->on_request_body) c->loop->ev->on_request_body(c, "", 0, 1);
    if (c->state == WS__S_CLOSED) return -1;
    if (c->state == WS__S_BODY) c->state = WS__S_REQUEST;
    if (c->state == WS__S_REQUEST || c->state == WS__S_RESPONDING) ws__conn_hold(c, 1);
    return n;
  }
  /* Whole: the head again (its copy does not move), then up with the body. */
  ws_header_t hdrs[WS__MAX_HEADERS_CAP];
  ws_http_head_t h;
  memset(&h, 0, sizeof h);
  h.headers = hdrs;
  h.num_headers = c->server->opt.max_headers;
  if (ws_http_parse_request(b->head, b->head_len, &h) <= 0) {
    ws__conn_destroy(c, 1006, 0);
    return -1;
  }
  c->rare->body = NULL;   /* read whole: the conn is done with it (b lives on for the head) */
  c->flags |= WS__F_BUFFERED;
  ssize_t r = hand_up(c, &h, b->head, 0, 0, b->framing.keep_alive);
  c->flags &= ~WS__F_BUFFERED;
  if (c->state != WS__S_CLOSED) {
    ws__buf_free(&c->msg);   /* the layer above has its copy */
    ws__conn_account(c);
  }
  free(b);
  if (r < 0) return r;
  return (c->flags & WS__F_NO_KEEP) ? (ssize_t)len : n;
}

int ws_conn_request_streaming(const ws_conn_t *c) { return (c->flags & WS__F_STREAMING) != 0; }

const char *ws_conn_request_body(const ws_conn_t *c, size_t *len) {
  if (c->state != WS__S_REQUEST || !(c->flags & WS__F_BUFFERED) || !ws__buf_len(&c->msg)) {
    *len = 0;
    return NULL;
  }
  *len = ws__buf_len(&c->msg);
  return ws__buf_data(&c->msg);
}

/* The request is whole (head, and body if any): to the layer above. r: bytes of buf it
 * took (what the caller returns as consumed when the conn reads on). */
static ssize_t hand_up(ws_conn_t *c, const ws_http_head_t *h, char *buf, int r, int upgrade,
                       int keep) {
  ws_server_t *s = c->server;
  ws_loop_t *l = c->loop;
  c->flags &= ~(WS__F_KEPT | WS__F_NO_KEEP);
  if (!keep) c->flags |= WS__F_NO_KEEP;
  c->state = WS__S_REQUEST;
  c->flags |= WS__F_KNOWN;
  l->req_conn = c;
  l->req_head = h;
  l->req_raw = buf;
  l->req_raw_len = (size_t)r;
  if (l->ev->on_request) l->ev->on_request(s, c, h, upgrade);
  l->req_conn = NULL;
  l->req_head = NULL;
  l->req_body = NULL;
  l->req_raw = NULL;
  if (c->state == WS__S_CLOSED) return -1;
  if (upgrade) {
    if (c->state == WS__S_OPEN) {
      ws__conn_set_open(c, NULL);
      return r;
    }
    if (c->state == WS__S_REQUEST && (c->flags & WS__F_DEFERRED)) {
      ws__conn_hold(c, 1);   /* frames the client sends early wait for the answer */
      return r;
    }
    if (c->state == WS__S_REQUEST) respond_error(c, 400, "WebSocket upgrade not accepted", NULL);
    return -1;
  }
  /* The next request (pipelined, or on a kept connection) waits while this one is
   * answered (a streamed body is read on first); after the last one, the rest is
   * dropped. */
  if (!(c->flags & WS__F_STREAMING) &&
      (c->state == WS__S_REQUEST || c->state == WS__S_RESPONDING))
    ws__conn_hold(c, 1);
  return r;
}

/* The server's side of extension negotiation (RFC 6455 9.1): the value to answer with,
 * into out (empty when none was accepted). */
static int negotiate_extensions(ws_conn_t *c, const ws_http_head_t *h, char *out, size_t cap,
                                size_t *len) {
  *len = 0;
  out[0] = 0;
  if (!ws__r(c)->ext) return 0;
  ws_ext_list_t *offers = malloc(sizeof *offers);
  if (!offers) return WS_ENOMEM;
  ws_ext_list_init(offers);
  int r = ws_ext_parse_head(offers, h);
  if (r == 0) r = ws_ext_server_negotiate(ws__r(c)->ext->use, ws__r(c)->ext->n, offers, out, cap, len);
  free(offers);
  if (r == 0) r = ws__conn_extensions_agreed(c, out, *len);
  return r;
}

static int accept_now(ws_conn_t *c, const char *protocol, const char *extra_headers,
                      const ws_conn_options_t *o);

/* A deferred upgrade opens on the next loop turn, so that handlers set right after the
 * accept see on_open, as they do for an upgrade accepted inside on_request. */
static void open_deferred(ws_timer_t *t, void *data) {
  ws_timer_stop(t);
  ws_conn_t *c = data;
  if (c->state == WS__S_OPEN) {
    ws__conn_set_open(c, NULL);
    ws__conn_hold(c, 0);
  }
  ws__conn_unref(c);
}

int ws_conn_accept(ws_conn_t *c, const char *protocol, const char *extra_headers,
                   const ws_conn_options_t *o) {
  ws_loop_t *l = c->loop;
  if (c->state != WS__S_REQUEST) return WS_EINVAL;
  if (c == l->req_conn) return accept_now(c, protocol, extra_headers, o);
  if (!(c->flags & WS__F_DEFERRED) || !c->server) return WS_EINVAL;
  /* The request kept by ws_conn_defer, parsed again. */
  ws_header_t hdrs[WS__MAX_HEADERS_CAP];
  ws_http_head_t h;
  memset(&h, 0, sizeof h);
  h.headers = hdrs;
  h.num_headers = c->server->opt.max_headers;
  struct ws__rare *x = c->rare;
  int n = x && x->deferred ? ws_http_parse_request(x->deferred, x->deferred_len, &h) : 0;
  if (n <= 0) return WS_EINTERNAL;
  l->req_conn = c;
  l->req_head = &h;
  l->req_body = x->deferred + n;
  int r = accept_now(c, protocol, extra_headers, o);
  l->req_conn = NULL;
  l->req_head = NULL;
  l->req_body = NULL;
  if (r) return r;
  c->flags &= ~WS__F_DEFERRED;
  free(x->deferred);
  x->deferred = NULL;
  if (!ws_timer_start(l, 0, 0, open_deferred, c)) {
    ws__conn_destroy(c, 1006, 0);
    return WS_ENOMEM;
  }
  c->refs++;
  return 0;
}

static int accept_now(ws_conn_t *c, const char *protocol, const char *extra_headers,
                      const ws_conn_options_t *o) {
  ws_loop_t *l = c->loop;
  ws__conn_apply_options(c, o, WS_ROLE_SERVER);
  char agreed[512];
  size_t alen = 0;
  int r = ws__conn_set_extensions(c, o);
  if (r == 0) r = negotiate_extensions(c, l->req_head, agreed, sizeof agreed, &alen);
  if (r) return r == WS_EHTTP || r == WS_EHEADTOOBIG ? WS_EHANDSHAKE : r;
  ws_codec_answer_t a = {l->req_head, (const uint8_t *)l->req_body, c->tp != NULL,
                         protocol && *protocol ? protocol : NULL, alen ? agreed : NULL,
                         extra_headers};
  size_t cap = 512 + (protocol ? strlen(protocol) : 0) + alen +
               (extra_headers ? strlen(extra_headers) : 0) + l->req_head->target_len;
  const ws_header_t *host = ws_http_find(l->req_head, "Host"),
                    *origin = ws_http_find(l->req_head, "Origin");
  cap += (host ? host->value_len : 0) + (origin ? origin->value_len : 0);
  char *buf = malloc(cap);
  if (!buf) return WS_ENOMEM;
  int n = c->codec->response(buf, cap, c->version, &a);
  if (n < 0) {
    free(buf);
    return n;
  }
  if (a.protocol && !(c->protocol = strdup(protocol))) {
    free(buf);
    return WS_ENOMEM;
  }
  ws_iov_t b = {buf, (size_t)n};
  r = ws__conn_write(c, &b, 1);
  free(buf);
  if (r) return r;
  c->state = WS__S_OPEN;   /* on_open fires when the request handler has returned */
  return 0;
}

int ws_conn_http_write(ws_conn_t *c, const char *data, size_t len) {
  if (c->state != WS__S_REQUEST && c->state != WS__S_RESPONDING) return WS_ECLOSED;
  int r = ws__conn_admit(c, len);
  if (r) return r;
  c->state = WS__S_RESPONDING;
  ws_iov_t b = {data, len};
  r = ws__conn_queue(c, &b, 1);
  ws__conn_after_queue(c);
  return r;
}

void ws_conn_handler_failed(ws_conn_t *c) {
  static const char response[] = "HTTP/1.1 500 Internal Server Error\r\n"
                                 "Content-Type: text/plain\r\n"
                                 "Content-Length: 22\r\n"
                                 "Connection: close\r\n\r\n"
                                 "Internal Server Error\n";
  _Static_assert(sizeof "Internal Server Error\n" - 1 == 22, "Content-Length of the 500");
  switch (c->state) {
  case WS__S_REQUEST: {
    ws_iov_t b = {response, sizeof response - 1};
    c->state = WS__S_RESPONDING;
    ws__conn_write(c, &b, 1);
    ws__conn_end(c);
    break;
  }
  case WS__S_RESPONDING:
    ws__conn_end(c);
    break;
  case WS__S_OPEN:
    ws_conn_close(c, 1011, "handler error", sizeof "handler error" - 1);
    break;
  default:   /* closing already, or a raw test conn */
    if (c->state == WS__S_RAW) ws__conn_end(c);
  }
}

void ws_conn_http_end(ws_conn_t *c, int keep) {
  if (c->state != WS__S_REQUEST && c->state != WS__S_RESPONDING) return;
  if (!keep || !ws_conn_http_keepable(c)) {
    c->state = WS__S_RESPONDING;
    ws__conn_end(c);
    return;
  }
  /* The next request: the layer above lets go of this one first. */
  c->flags &= ~WS__F_KNOWN;
  c->flags |= WS__F_KEPT;
  if (c->loop->ev->on_request_done) c->loop->ev->on_request_done(c);
  if (c->state == WS__S_CLOSED) return;
  c->state = WS__S_HTTP;
  c->state_at = ws__now(c->loop);
  c->scanned = 0;
  c->codec = &ws_codec_rfc6455;
  c->version = 13;
  ws__conn_hold(c, 0);
}

int ws_conn_http_keepable(const ws_conn_t *c) {
  ws_server_t *s = c->server;
  return (c->state == WS__S_REQUEST || c->state == WS__S_RESPONDING) &&
         !(c->flags & (WS__F_NO_KEEP | WS__F_DEFERRED)) && !ws__r(c)->body && s && !s->closing;
}

int ws_conn_defer(ws_conn_t *c) {
  ws_loop_t *l = c->loop;
  if (c != l->req_conn || c->state != WS__S_REQUEST || !ws_handshake_is_upgrade(l->req_head))
    return WS_EINVAL;
  if (c->flags & WS__F_DEFERRED) return 0;
  size_t n = l->req_raw_len + (l->req_body ? c->codec->handshake_body : 0);
  struct ws__rare *x = ws__rare(c);
  if (!x || !(x->deferred = malloc(n))) return WS_ENOMEM;
  memcpy(x->deferred, l->req_raw, n);
  x->deferred_len = n;
  c->flags |= WS__F_DEFERRED;
  c->state_at = ws__now(l);
  ws__loop_sweep_for(l, c->lim->handshake_ms);
  return 0;
}

/* Over the budget, the conns holding the most are dropped (1013, Try Again Later) until
 * it is met: one hostile peer cannot take what the others need. */
static void account(ws_conn_t *c, ssize_t delta) {
  ws_server_t *s = c->server;
  if (!s) return;
  s->mem += (size_t)delta;
  if (s->evicting) return;   /* an eviction below, accounting for what it freed */
  s->evicting = 1;
  while (s->opt.max_memory && s->mem > s->opt.max_memory) {
    ws_conn_t *worst = NULL;
    for (ws_conn_t *c = s->loop->conns; c; c = c->next)
      if (c->server == s && c->state != WS__S_CLOSED &&
          (!worst || c->acct_in + c->acct_out > worst->acct_in + worst->acct_out))
        worst = c;
    if (!worst) break;
    char msg[160];
    snprintf(msg, sizeof msg, "the server's buffers passed max_memory (%zu bytes); this "
             "connection held the most (%zu)", s->opt.max_memory, worst->acct_in + worst->acct_out);
    ws__conn_abort(worst, WS_EOVERLOAD, 1013, msg);   /* frees its buffers: s->mem drops */
  }
  s->evicting = 0;
}

size_t ws_server_buffered(ws_server_t *s) { return s->mem; }

#define WS__ACCEPTS_PER_TURN 128   /* then the other sockets get their turn */

/* The listener is readable: the peers waiting in its backlog become conns. */
static void on_connection(ws__pollable_t *p, unsigned events) {
  (void)events;
  ws_server_t *s = (ws_server_t *)((char *)p - offsetof(ws_server_t, listener));
  for (int i = 0; i < WS__ACCEPTS_PER_TURN && !s->closing; i++) {
    int fd = accept4(p->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EMFILE || errno == ENFILE) ws__sock_accept_failed(s->loop, p->fd);
      if (errno == EINTR || errno == ECONNABORTED) continue;
      return;   /* EAGAIN: the backlog is empty */
    }
    ws_conn_t *c = ws__conn_new(s->loop);
    if (!c) {
      close(fd);
      continue;
    }
    if (ws__sock_open(c, fd) != 0) {
      close(fd);
      ws__conn_destroy(c, 1006, 0);
      continue;
    }
    ws__server_start(s, c);
  }
}

static void no_secure(ws_conn_t *c) { (void)c; }
static int no_early(ws_conn_t *c, const char *frame, size_t len) {
  (void)c, (void)frame, (void)len;
  return WS_ECLOSED;   /* a server's conn is never written to before it is open */
}
static size_t no_early_len(const ws_conn_t *c) {
  (void)c;
  return 0;
}

static void no_connect(ws_conn_t *c, int status) { (void)c, (void)status; }

const ws__role_t ws__server_role = {on_head, no_secure, no_early, no_early_len, account,
                                    no_connect, no_secure, NULL};

void ws__server_start(ws_server_t *s, ws_conn_t *c) {
  c->server = s;
  c->role = WS__ROLE_SERVER;
  ws_conn_options_t o;
  ws_conn_options_default(&o);
  o.handshake_timeout_ms = s->opt.handshake_timeout_ms;
  o.idle_timeout_ms = s->opt.keepalive_timeout_ms;   /* HTTP states: the keep-alive wait */
  ws__conn_apply_options(c, &o, WS_ROLE_SERVER);
  if (s->tls && ws__tls_attach(c, s->tls, 1, NULL) != 0) {
    ws__conn_destroy(c, 1006, 0);
    return;
  }
  if (s->opt.raw) {
    c->state = WS__S_RAW;
    c->flags |= WS__F_KNOWN;
    if (s->loop->ev->on_request) s->loop->ev->on_request(s, c, NULL, 0);
  } else {
    c->state = WS__S_HTTP;
  }
  if (c->state != WS__S_CLOSED) ws__conn_start_read(c);
}

static int resolve(uv_loop_t *uv, const char *host, int port, struct sockaddr_storage *ss) {
  struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
  struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
  if (uv_ip4_addr(host, port, a4) == 0) return 0;
  if (uv_ip6_addr(host, port, a6) == 0) return 0;
  uv_getaddrinfo_t req;
  struct addrinfo hints;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  int r = uv_getaddrinfo(uv, &req, NULL, host, NULL, &hints);   /* synchronous */
  if (r) return r;
  memcpy(ss, req.addrinfo->ai_addr, req.addrinfo->ai_addrlen);
  uv_freeaddrinfo(req.addrinfo);
  if (ss->ss_family == AF_INET6) a6->sin6_port = htons((uint16_t)port);
  else a4->sin_port = htons((uint16_t)port);
  return 0;
}

ws_server_t *ws__server_new(ws_loop_t *l, const ws_server_options_t *o, ws_tls_ctx_t *tls,
                           void *data, int family) {
  ws_server_t *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  s->loop = l;
  s->opt = *o;
  if (s->opt.max_headers > WS__MAX_HEADERS_CAP) s->opt.max_headers = WS__MAX_HEADERS_CAP;
  s->tls = tls;
  s->data = data;
  if (uv_tcp_init_ex(l->uv, &s->tcp, (unsigned)family) != 0) {   /* no socket to be had */
    free(s);
    return NULL;
  }
  s->tcp.data = s;
  s->listener.fd = -1;
  s->listener.cb = on_connection;
  return s;
}

/* libuv 1.44 has no UV_TCP_REUSEPORT: the option goes on the socket made for the
 * address's family, before the bind. */
static int set_reuseport(uv_tcp_t *tcp) {
#ifdef SO_REUSEPORT
  uv_os_fd_t fd;
  int one = 1;
  int r = uv_fileno((uv_handle_t *)tcp, &fd);
  if (r) return r;
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0)
    return uv_translate_sys_error(errno);
  return 0;
#else
  (void)tcp;
  return UV_ENOTSUP;
#endif
}

int ws_server_listen(ws_loop_t *l, ws_server_t **out, const char *host, int port,
                     const ws_server_options_t *o, ws_tls_ctx_t *tls, void *data) {
  struct sockaddr_storage ss;
  int r = resolve(l->uv, host, port, &ss);
  if (r) return r;
  ws_server_t *s = ws__server_new(l, o, tls, data, ss.ss_family);
  if (!s) return WS_ENOMEM;
  uv_os_fd_t fd = -1;
  int one = 1;
  socklen_t alen = ss.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
  /* The socket is libuv's handle's; the listening and the accepting are ours (sock.c). */
  if ((o->reuseport && (r = set_reuseport(&s->tcp)) != 0) ||
      (r = uv_fileno((uv_handle_t *)&s->tcp, &fd)) != 0 ||
      (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 && (r = uv_translate_sys_error(errno))) ||
      (bind(fd, (struct sockaddr *)&ss, alen) != 0 && (r = uv_translate_sys_error(errno))) ||
      (listen(fd, o->backlog) != 0 && (r = uv_translate_sys_error(errno))) ||
      (s->listener.fd = fd, r = ws__poll_set(l, &s->listener, WS__IO_READ)) != 0) {
    uv_close((uv_handle_t *)&s->tcp, (uv_close_cb)free);
    return r;
  }
  *out = s;
  return 0;
}

int ws_server_adopt(ws_server_t *s, uv_os_sock_t fd, const char *data, size_t len) {
  if (s->tls || s->closing || s->opt.raw) return WS_EINVAL;
  ws_conn_t *c = ws__conn_new(s->loop);
  if (!c) return WS_ENOMEM;
  int r = ws__sock_open(c, fd);
  if (r) {
    close(fd);   /* s owns fd whatever happens */
    ws__conn_destroy(c, 1006, 0);
    return r;
  }
  if (len && ws__buf_append(&c->in, data, len) != 0) {
    ws__conn_destroy(c, 1006, 0);   /* closes fd with the handle */
    return WS_ENOMEM;
  }
  ws__server_start(s, c);
  if (c->state != WS__S_CLOSED && ws__buf_len(&c->in)) {   /* what the other server read, first */
    ws_loop_cork(s->loop);
    ws__conn_input(c, ws__buf_data(&c->in), ws__buf_len(&c->in));
    ws_loop_uncork(s->loop);
  }
  return 0;
}

int ws_server_port(ws_server_t *s) {
  struct sockaddr_storage ss;
  int n = sizeof ss;
  if (uv_tcp_getsockname(&s->tcp, (struct sockaddr *)&ss, &n) != 0) return -1;
  if (ss.ss_family == AF_INET6) return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
  return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

void *ws_server_data(ws_server_t *s) { return s->data; }

static void on_listener_closed(uv_handle_t *h) {
  ws_server_t *s = h->data;
  if (s->on_closed) s->on_closed(s);
  free(s);
}

void ws_server_close(ws_server_t *s, void (*on_closed)(ws_server_t *s)) {
  if (s->closing) return;
  s->closing = 1;
  s->on_closed = on_closed;
  for (ws_conn_t *c = s->loop->conns; c; c = c->next) {
    if (c->server != s) continue;
    c->server = NULL;   /* its buffers no longer count against the server */
    if (c->state == WS__S_OPEN) {
      ws_conn_close(c, 1001, "server closing", sizeof "server closing" - 1);
    } else if (c->state == WS__S_REQUEST && !ws__r(c)->body && !(c->flags & WS__F_DEFERRED)) {
      /* A plain request not answered yet may still be (as Node's server.close() lets
       * it); then the connection closes: no next request. */
      c->flags |= WS__F_NO_KEEP;
    } else if (c->state == WS__S_RESPONDING || c->state == WS__S_RAW) {   /* streams end */
      ws__conn_end(c);
    } else if (c->state != WS__S_CLOSING) {
      ws__conn_destroy(c, 1006, 0);
    }
  }
  if (s->listener.fd >= 0) ws__poll_set(s->loop, &s->listener, 0);
  uv_close((uv_handle_t *)&s->tcp, on_listener_closed);
}
