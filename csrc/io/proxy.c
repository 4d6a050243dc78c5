/* A client's proxy stage, a small driver of its own (as websocket-driver's proxy.js):
 * it asks an HTTP proxy for a tunnel (CONNECT host:port, RFC 9110 9.3.6) and reads the
 * answer with the core's response parser. It is a layer on top of the conn's (TCP, or
 * TLS to the proxy) only while the answer comes; on a 2xx it takes itself out, and the
 * bytes the proxy sent after its head go on to the next stage (TLS or the 101). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>
#include "internal.h"

#define WS__PROXY_HEADERS 256   /* the answer's header count is checked against max_headers */

typedef struct ws__proxy {
  ws__transport_t tp;   /* first: the layer it is under a conn */
  char *request;        /* the CONNECT head, until it is sent */
  size_t request_len;
  ws_buf_t head;        /* the answer so far */
  uint32_t scanned;     /* bytes of it already searched for its end */
} ws__proxy_t;

static void proxy_free(ws__transport_t *tp) {
  ws__proxy_t *p = (ws__proxy_t *)tp;
  free(p->request);
  ws__buf_free(&p->head);
  free(p);
}

/* Parses the answer once its head is whole: 1 the tunnel is up (*used: the head's
 * length), 0 wait for more, -1 the conn was failed. Interim 1xx answers are skipped. */
static int parse_answer(ws_conn_t *c, ws__proxy_t *p, size_t *used) {
  ws_header_t hdrs[WS__PROXY_HEADERS];
  ws_http_head_t h;
  for (;;) {
    char *buf = ws__buf_data(&p->head);
    size_t end = ws_http_head_end(buf, ws__buf_len(&p->head), &p->scanned);
    if (!end) {
      if (ws__buf_len(&p->head) < c->lim->max_head) return 0;
      ws__conn_fail(c, WS_EPROXY, "the proxy's answer to CONNECT is too large");
      return -1;
    }
    p->scanned = 0;
    memset(&h, 0, sizeof h);
    h.headers = hdrs;
    h.num_headers = c->lim->max_headers < WS__PROXY_HEADERS ? c->lim->max_headers : WS__PROXY_HEADERS;
    int r = ws_http_parse_response(buf, end, &h);
    if (r == WS_EHEADTOOBIG || (r > 0 && (size_t)r > c->lim->max_head)) {
      ws__conn_fail(c, WS_EPROXY, "the proxy's answer to CONNECT is too large");
      return -1;
    }
    if (r < 0) {
      ws__conn_fail(c, WS_EPROXY, "the proxy's answer to CONNECT is not HTTP");
      return -1;
    }
    if (h.status >= 200 && h.status < 300) {
      *used = (size_t)r;
      return 1;
    }
    if (h.status < 100 || h.status >= 200) {
      char msg[200];
      int rlen = h.reason_len > 100 ? 100 : (int)h.reason_len;
      snprintf(msg, sizeof msg, "the proxy refused CONNECT: %d %.*s", h.status, rlen,
               h.reason ? h.reason : "");
      ws__conn_fail(c, WS_EPROXY, msg);
      return -1;
    }
    ws__buf_consume(&p->head, (size_t)r);   /* 1xx: the final answer follows */
  }
}

static void proxy_on_read(ws_conn_t *c, ws__transport_t *tp, char *data, size_t len) {
  ws__proxy_t *p = (ws__proxy_t *)tp;
  if (ws__buf_append(&p->head, data, len) != 0) {
    ws__conn_fail(c, WS_ENOMEM, "out of memory");
    return;
  }
  size_t used = 0;
  if (parse_answer(c, p, &used) <= 0) return;
  /* The tunnel is up: this layer goes, the next stage starts over those below, and what
   * came after the answer is the first of that stage's input. */
  ws__transport_t *below = tp->below;
  ws__tp_remove(c, tp);
  ws__role(c)->ready(c);
  size_t rest = ws__buf_len(&p->head) - used;
  if (rest && c->state != WS__S_CLOSED)
    ws__tp_up(c, below, ws__buf_data(&p->head) + used, 0, rest);
  proxy_free(tp);
}

/* Nothing but the request goes out before the answer; whatever would passes through. */
static int proxy_write(ws_conn_t *c, ws__transport_t *tp, const ws_iov_t *iov, unsigned n) {
  return ws__tp_write_below(c, tp, iov, n);
}

static const ws__transport_ops_t proxy_ops = {0, proxy_on_read, proxy_write, NULL, proxy_free};

/* A host name or address fit for the request line: no spaces, controls or '/'. */
static int plain_host(const char *host) {
  if (!*host) return 0;
  for (const unsigned char *s = (const unsigned char *)host; *s; s++)
    if (*s <= 0x20 || *s == 0x7f || *s == '/' || *s == '@') return 0;
  return 1;
}

ws__transport_t *ws__proxy_new(const char *host, int port, const ws_proxy_options_t *o,
                               int *err) {
  *err = WS_EINVAL;
  if (!plain_host(host) || port < 1 || port > 65535) return NULL;
  *err = WS_ENOMEM;
  ws__proxy_t *p = calloc(1, sizeof *p);
  if (!p) return NULL;
  p->tp.ops = &proxy_ops;
  /* The authority form (RFC 9110 7.2): an IPv6 address in brackets. */
  char authority[300];
  int v6 = strchr(host, ':') != NULL;
  if (snprintf(authority, sizeof authority, "%s%s%s:%d", v6 ? "[" : "", host, v6 ? "]" : "",
               port) >= (int)sizeof authority) {
    *err = WS_EINVAL;
    goto fail;
  }
  /* Basic credentials (RFC 7617): base64 of "user:password". */
  char *auth = NULL;
  size_t alen = 0;
  if (o->user) {
    const char *pw = o->password ? o->password : "";
    size_t ul = strlen(o->user), pl = strlen(pw), n = ul + 1 + pl;
    unsigned char *plain = malloc(n);
    if (!plain || n > INT32_MAX / 2 || !(auth = malloc(4 * ((n + 2) / 3) + 1))) {
      free(plain);
      goto fail;
    }
    memcpy(plain, o->user, ul);
    plain[ul] = ':';
    memcpy(plain + ul + 1, pw, pl);
    alen = (size_t)EVP_EncodeBlock((unsigned char *)auth, plain, (int)n);
    OPENSSL_cleanse(plain, n);
    free(plain);
  }
  size_t cap = 128 + 2 * strlen(authority) + alen + (o->headers ? strlen(o->headers) : 0);
  if ((p->request = malloc(cap))) {
    int n = snprintf(p->request, cap, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n%s%s%s%s\r\n",
                     authority, authority, auth ? "Proxy-Authorization: Basic " : "",
                     auth ? auth : "", auth ? "\r\n" : "", o->headers ? o->headers : "");
    p->request_len = (size_t)n;
  }
  if (auth) OPENSSL_cleanse(auth, alen);
  free(auth);
  if (p->request) return &p->tp;
fail:
  proxy_free(&p->tp);
  return NULL;
}

void ws__proxy_start(ws_conn_t *c, ws__transport_t *tp) {
  ws__proxy_t *p = (ws__proxy_t *)tp;
  ws__tp_push(c, tp);
  ws_iov_t b = {p->request, p->request_len};
  ws__tp_write_below(c, tp, &b, 1);   /* a failure has destroyed c */
  OPENSSL_cleanse(p->request, p->request_len);   /* it may hold credentials */
  free(p->request);
  p->request = NULL;
}
