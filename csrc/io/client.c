/* The client side: its way in, a chain of stages each started when the one before says
 * it is ready (ws__role(c)->ready): TCP (resolved without blocking), TLS to an https://
 * proxy, the proxy's CONNECT (proxy.c), TLS to the server (tls.c), then the opening
 * handshake, whose answer is checked here. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "internal.h"
#include "tls.h"

/* A stage of the way in. */
typedef struct stage {
  const char *name;             /* what the conn is doing meanwhile, for its errors */
  int (*start)(ws_conn_t *c);   /* 0, or a libuv error that fails the conn */
} stage_t;

#define WS__MAX_STAGES 5

struct ws__client_hs {
  uv_getaddrinfo_t gai;
  ws_conn_t *conn;
  const stage_t *stages[WS__MAX_STAGES];   /* the way in, in order */
  int nstages, at;                         /* at: the stage under way; -1 before */
  char *dial_host;                         /* where TCP goes: the proxy, or the server */
  int dial_port;
  ws__transport_t *proxy_tls, *proxy, *tls;   /* made up front; pushed by their stages */
  char key[25];
  char *offered;     /* subprotocols offered, comma-separated, or NULL */
  char *request;     /* the whole request head, sent once the way is open */
  ws_buf_t early;    /* frames sent while connecting, as faye queues them */
  size_t request_len;
  int raw;
  int status;        /* the server's answer's status, once its head was read */
};

static void free_layer(ws__transport_t **t) {
  if (*t) (*t)->ops->free(*t);
  *t = NULL;
}

static void free_hs(ws_conn_t *c) {
  ws__client_hs_t *hs = ws__r(c)->hs;
  if (!hs) return;
  free_layer(&hs->proxy_tls);
  free_layer(&hs->proxy);
  free_layer(&hs->tls);
  free(hs->dial_host);
  free(hs->offered);
  free(hs->request);
  ws__buf_free(&hs->early);
  free(hs);
  c->rare->hs = NULL;
}

static void fail_uv(ws_conn_t *c, const char *what, int err) {
  char msg[160];
  snprintf(msg, sizeof msg, "%s %s: %s", what, uv_err_name(err), uv_strerror(err));
  ws__conn_fail(c, err, msg);
}

/* ---- the stages ------------------------------------------------------------- */

/* Starts the next stage: 0, or the error its start failed with. */
static int next_stage(ws_conn_t *c) {
  ws__client_hs_t *hs = ws__r(c)->hs;
  if (!hs || c->state == WS__S_CLOSED || hs->at + 1 >= hs->nstages) return 0;
  return hs->stages[++hs->at]->start(c);
}

/* The stage under way is done (the transports call this through the role). */
static void ready(ws_conn_t *c) {
  int r = next_stage(c);
  if (r && c->state != WS__S_CLOSED) fail_uv(c, ws__r(c)->hs->stages[ws__r(c)->hs->at]->name, r);
}

static const char *stage_name(const ws_conn_t *c) {
  const ws__client_hs_t *hs = ws__r(c)->hs;
  return hs && hs->at >= 0 ? hs->stages[hs->at]->name : NULL;
}

static void on_connected(ws_conn_t *c, int status) {
  if (c->state == WS__S_CLOSED) return;
  if (status < 0) {
    fail_uv(c, "connect", status);
    return;
  }
  int r = ws__conn_start_read(c);
  if (r) {
    fail_uv(c, "read", r);
    return;
  }
  ready(c);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
  ws_conn_t *c = req->data;
  if (c->state == WS__S_CLOSED || status < 0) {
    if (c->state != WS__S_CLOSED) fail_uv(c, "getaddrinfo", status);
    if (res) uv_freeaddrinfo(res);
    ws__conn_unref(c);
    return;
  }
  /* Prefer IPv4 when a name has both: "localhost" servers usually listen there. */
  struct addrinfo *a = res;
  for (struct addrinfo *p = res; p; p = p->ai_next)
    if (p->ai_family == AF_INET) {
      a = p;
      break;
    }
  int r = ws__sock_connect(c, a->ai_addr, a->ai_addrlen);
  uv_freeaddrinfo(res);
  if (r) fail_uv(c, "connect", r);
  ws__conn_unref(c);
}

static int start_tcp(ws_conn_t *c) {
  ws__client_hs_t *hs = ws__r(c)->hs;
  char portstr[16];
  snprintf(portstr, sizeof portstr, "%d", hs->dial_port);
  struct addrinfo hints;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hs->gai.data = c;
  int r = uv_getaddrinfo(c->loop->uv, &hs->gai, on_resolved, hs->dial_host, portstr, &hints);
  if (r == 0) c->refs++;   /* until on_resolved */
  return r;
}

/* A layer made up front goes under the conn now (the conn frees it from then on). */
static ws__transport_t *take(ws__transport_t **t) {
  ws__transport_t *l = *t;
  *t = NULL;
  return l;
}

static int start_proxy_tls(ws_conn_t *c) {
  ws__tls_start(c, take(&ws__r(c)->hs->proxy_tls));
  return 0;
}

static int start_connect(ws_conn_t *c) {
  ws__proxy_start(c, take(&ws__r(c)->hs->proxy));
  return 0;
}

static int start_tls(ws_conn_t *c) {
  ws__tls_start(c, take(&ws__r(c)->hs->tls));
  return 0;
}

/* The way is open: the request goes (raw test conns: open at once). */
static int start_upgrade(ws_conn_t *c) {
  ws__client_hs_t *hs = ws__r(c)->hs;
  if (hs->raw) {
    c->state = WS__S_RAW;
    free_hs(c);
    if (c->loop->ev->on_open) c->loop->ev->on_open(c, NULL);
    return 0;
  }
  c->state = WS__S_HANDSHAKE;
  ws_iov_t b = {hs->request, hs->request_len};
  ws__conn_write(c, &b, 1);
  return 0;
}

static const stage_t tcp_stage = {"TCP connect", start_tcp};
static const stage_t proxy_tls_stage = {"TLS handshake with the proxy", start_proxy_tls};
static const stage_t connect_stage = {"waiting for the proxy's answer to CONNECT", start_connect};
static const stage_t tls_stage = {"TLS handshake", start_tls};
static const stage_t upgrade_stage = {NULL, start_upgrade};

int ws__client_way_in(ws_conn_t *c, int tcp, const char *host, int port, ws_tls_ctx_t *tls,
                      const char *servername, const ws_proxy_options_t *proxy) {
  ws__client_hs_t *hs = ws__r(c)->hs;
  int r = 0;
  hs->nstages = 0;
  hs->at = -1;
  if (tcp) {
    hs->dial_port = proxy ? proxy->port : port;
    if (!(hs->dial_host = strdup(proxy ? proxy->host : host))) return WS_ENOMEM;
    hs->stages[hs->nstages++] = &tcp_stage;
  }
  if (proxy && proxy->tls) {
    const char *name = proxy->servername ? proxy->servername : proxy->host;
    if (!(hs->proxy_tls = ws__tls_new(proxy->tls, 0, name, &r))) return r;
    hs->stages[hs->nstages++] = &proxy_tls_stage;
  }
  if (proxy) {
    if (!(hs->proxy = ws__proxy_new(host, port, proxy, &r))) return r;
    hs->stages[hs->nstages++] = &connect_stage;
  }
  if (tls) {   /* SNI and verification: the server's name, never the proxy's */
    if (!(hs->tls = ws__tls_new(tls, 0, servername ? servername : host, &r))) return r;
    hs->stages[hs->nstages++] = &tls_stage;
  }
  hs->stages[hs->nstages++] = &upgrade_stage;
  return 0;
}

/* A conn that could not start: the caller gets the error; no events follow. */
static int discard(ws_conn_t *c, int r) {
  c->flags &= ~WS__F_KNOWN;
  c->data = NULL;
  ws__conn_destroy(c, 1006, 0);
  return r;
}

int ws__client_new(ws_loop_t *l, ws_conn_t **out, const char *path, const char *host_header,
                   const char *protocols, const char *extra_headers,
                   const ws_conn_options_t *o, int raw, void *data) {
  ws_conn_t *c = ws__conn_new(l);
  if (!c) return WS_ENOMEM;
  ws__client_hs_t *hs = calloc(1, sizeof *hs);
  int r = WS_ENOMEM;
  if (!hs || !ws__rare(c)) {
    free(hs);
    goto fail;
  }
  c->rare->hs = hs;
  hs->conn = c;
  hs->raw = raw;
  hs->at = -1;
  c->flags |= WS__F_CLIENT | WS__F_KNOWN;
  c->state = WS__S_CONNECTING;
  c->data = data;
  c->role = WS__ROLE_CLIENT;
  ws__conn_apply_options(c, o, WS_ROLE_CLIENT);
  if ((r = ws__conn_set_extensions(c, o)) != 0) goto fail;
  char offer[512] = "";
  size_t olen = 0;
  if (ws__r(c)->ext && (r = ws_ext_client_offer(ws__r(c)->ext->use, ws__r(c)->ext->n, offer, sizeof offer, &olen)) != 0)
    goto fail;
  if ((r = ws_handshake_client_key(hs->key)) != 0) goto fail;
  r = WS_ENOMEM;
  if (protocols && *protocols && !(hs->offered = strdup(protocols))) goto fail;
  size_t cap = 256 + strlen(path) + strlen(host_header) + (protocols ? strlen(protocols) : 0) +
               (extra_headers ? strlen(extra_headers) : 0) + olen;
  if (!(hs->request = malloc(cap))) goto fail;
  int n = snprintf(hs->request, cap,
                   "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n%s%s%s%s%s%s%s\r\n",
                   path, host_header, hs->key, hs->offered ? "Sec-WebSocket-Protocol: " : "",
                   hs->offered ? hs->offered : "", hs->offered ? "\r\n" : "",
                   olen ? "Sec-WebSocket-Extensions: " : "", offer, olen ? "\r\n" : "",
                   extra_headers ? extra_headers : "");
  hs->request_len = (size_t)n;
  *out = c;
  return 0;
fail:
  return discard(c, r);
}

int ws_conn_connect(ws_loop_t *l, ws_conn_t **out, const char *host, int port,
                    const char *path, const char *host_header, const char *protocols,
                    const char *extra_headers, const ws_conn_options_t *o,
                    ws_tls_ctx_t *tls, const char *servername,
                    const ws_proxy_options_t *proxy, int raw, void *data) {
  ws_conn_t *c;
  int r = ws__client_new(l, &c, path, host_header, protocols, extra_headers, o, raw, data);
  if (r) return r;
  if ((r = ws__client_way_in(c, 1, host, port, tls, servername, proxy)) != 0 ||
      (r = next_stage(c)) != 0)
    return discard(c, r);
  *out = c;
  return 0;
}

/* The server's answer to the offer (RFC 6455 9.1, RFC 7692 5): anything the offer did
 * not allow fails the connection (WS_EEXTENSION). */
static int accept_extensions(ws_conn_t *c, const ws_http_head_t *h) {
  ws_ext_list_t *answer = malloc(sizeof *answer);
  if (!answer) return WS_ENOMEM;
  ws_ext_list_init(answer);
  int r = ws_ext_parse_head(answer, h);
  if (r == WS_EHTTP || r == WS_EHEADTOOBIG) r = WS_EEXTENSION;
  if (r == 0) r = ws_ext_client_accept(ws__r(c)->ext->use, ws__r(c)->ext->n, answer);
  free(answer);
  if (r) return r;
  /* What ws.extensions tells: the answer's value(s), as the server wrote them. */
  char agreed[512];
  size_t len = 0;
  for (size_t i = 0; i < h->num_headers; i++) {
    const ws_header_t *hd = &h->headers[i];
    if (hd->name_len != 24 || strncasecmp(hd->name, "Sec-WebSocket-Extensions", 24) != 0 ||
        !hd->value_len)
      continue;
    if (len + 2 + hd->value_len >= sizeof agreed) break;
    if (len) memcpy(agreed + len, ", ", 2), len += 2;
    memcpy(agreed + len, hd->value, hd->value_len);
    len += hd->value_len;
  }
  return ws__conn_extensions_agreed(c, agreed, len);
}

static ssize_t on_head(ws_conn_t *c, char *buf, size_t len) {
  ws_header_t hdrs[256];
  ws_http_head_t h;
  memset(&h, 0, sizeof h);
  h.headers = hdrs;
  h.num_headers = c->lim->max_headers > 256 ? 256 : c->lim->max_headers;
  size_t end = ws_http_head_end(buf, len, &c->scanned);
  int r;
  if (!end) {
    if (len < c->lim->max_head) return 0;
    r = WS_EHEADTOOBIG;
  } else {
    c->scanned = 0;
    r = ws_http_parse_response(buf, end, &h);
    if (r == WS_EAGAIN) r = WS_EHTTP;
    if (r > 0 && (size_t)r > c->lim->max_head) r = WS_EHEADTOOBIG;
  }
  if (r == WS_EHEADTOOBIG) {
    ws__conn_fail(c, WS_EHANDSHAKE, "handshake response head too large");
    return -1;
  }
  if (r < 0) {
    ws__conn_fail(c, WS_EHANDSHAKE, "malformed handshake response");
    return -1;
  }
  ws__r(c)->hs->status = h.status;   /* told to the layer above even when it fails */
  if (h.status != 101) {
    char msg[96];
    snprintf(msg, sizeof msg, "unexpected response code: %d", h.status);
    ws__conn_fail(c, WS_EHANDSHAKE, msg);
    return -1;
  }
  const char *why = NULL;
  if (ws_handshake_check_response_ext(&h, ws__r(c)->hs->key, ws__r(c)->hs->offered, ws__r(c)->ext != NULL, &why)) {
    ws__conn_fail(c, WS_EHANDSHAKE, why ? why : "bad handshake response");
    return -1;
  }
  int er = ws__r(c)->ext ? accept_extensions(c, &h) : 0;
  if (er) {
    ws__conn_fail(c, er, er == WS_EEXTENSION
                            ? "Sec-WebSocket-Extensions: the server's answer was not one the "
                              "offer allowed"
                            : ws_strerror(er));
    return -1;
  }
  const ws_header_t *p = ws_http_find(&h, "sec-websocket-protocol");
  if (p && p->value_len) {
    c->protocol = malloc(p->value_len + 1);
    if (c->protocol) {
      memcpy(c->protocol, p->value, p->value_len);
      c->protocol[p->value_len] = 0;
    }
  }
  ws_buf_t early = ws__r(c)->hs->early;
  memset(&ws__r(c)->hs->early, 0, sizeof early);
  free_hs(c);
  if (ws__buf_len(&early)) {
    ws_iov_t b = {ws__buf_data(&early), ws__buf_len(&early)};
    ws__conn_write(c, &b, 1);
  }
  ws__buf_free(&early);
  if (c->state == WS__S_CLOSED) return -1;
  ws__conn_set_open(c, &h);
  return r;
}

int ws_conn_response_status(const ws_conn_t *c) {
  return (c->flags & WS__F_CLIENT) && ws__r(c)->hs ? ws__r(c)->hs->status : 0;
}

/* Queues a whole frame made while connecting; it is written right after the 101. */
static int queue_early(ws_conn_t *c, const char *frame, size_t len) {
  if (!ws__r(c)->hs) return WS_ECLOSED;
  return ws__buf_append(&ws__r(c)->hs->early, frame, len);
}

static size_t early_len(const ws_conn_t *c) {
  return ws__r(c)->hs ? ws__buf_len(&ws__r(c)->hs->early) : 0;
}

static void no_account(ws_conn_t *c, ssize_t delta) { (void)c, (void)delta; }

const ws__role_t ws__client_role = {on_head,    ready,        queue_early, early_len,
                                    no_account, on_connected, free_hs,     stage_name};
