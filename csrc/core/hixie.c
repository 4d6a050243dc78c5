/* The hixie-75 and hixie-76 drafts, server side: the opening handshake (request check,
 * key arithmetic, 101 response) and the sentinel-based framing parser. */
#include <limits.h>
#include <string.h>

#include <openssl/evp.h>

#include "hixie.h"

#ifndef SSIZE_MAX
#define SSIZE_MAX ((ssize_t)(SIZE_MAX >> 1))
#endif

/* ---- opening handshake ------------------------------------------------------ */

/* How many headers have this name (case-insensitive), and the first of them. */
static size_t ws__hixie_count(const ws_http_head_t *h, const char *name,
                              const ws_header_t **first) {
  size_t i, count = 0;
  *first = NULL;
  for (i = 0; i < h->num_headers; i++) {
    ws_http_head_t one = {0};
    one.headers = &h->headers[i];
    one.num_headers = 1;
    if (ws_http_find(&one, name)) {
      if (!count) *first = &h->headers[i];
      count++;
    }
  }
  return count;
}

/* Does any header of this name hold token? Several headers are one list. */
static int ws__hixie_has_token(const ws_http_head_t *h, const char *name, const char *token) {
  size_t i;
  for (i = 0; i < h->num_headers; i++) {
    ws_http_head_t one = {0};
    one.headers = &h->headers[i];
    one.num_headers = 1;
    if (ws_http_find(&one, name) &&
        ws_http_has_token(h->headers[i].value, h->headers[i].value_len, token))
      return 1;
  }
  return 0;
}

int ws_hixie76_key_value(const char *key, size_t len, uint32_t *value) {
  uint64_t number = 0, spaces = 0;
  int overflow = 0;
  size_t i;

  *value = 0;
  for (i = 0; i < len; i++) {
    char c = key[i];
    if (c >= '0' && c <= '9') {
      unsigned d = (unsigned)(c - '0');
      /* A number past 2^64 cannot give a 32-bit quotient: spaces <= len < 2^32. */
      if (number > (UINT64_MAX - d) / 10) overflow = 1;
      else number = number * 10 + d;
    } else if (c == ' ') {
      spaces++;
    }
  }
  /* -76 5.2: no spaces, or a number that is no multiple of them, aborts. */
  if (overflow || spaces == 0 || number % spaces != 0 || number / spaces > UINT32_MAX)
    return WS_EHANDSHAKE;
  *value = (uint32_t)(number / spaces);
  return 0;
}

int ws_hixie76_answer(uint32_t n1, uint32_t n2, const uint8_t key3[WS_HIXIE76_KEY3_LEN],
                      uint8_t out[WS_HIXIE76_ANSWER_LEN]) {
  uint8_t challenge[8 + WS_HIXIE76_KEY3_LEN];
  unsigned int n = 0;
  EVP_MD_CTX *ctx;
  int ok;
  int i;

  /* -76 5.2: the challenge is part_1 and part_2 as big-endian 32-bit numbers, then
   * key3; the answer is its MD5 digest. */
  for (i = 0; i < 4; i++) {
    challenge[i] = (uint8_t)(n1 >> (24 - 8 * i));
    challenge[4 + i] = (uint8_t)(n2 >> (24 - 8 * i));
  }
  memcpy(challenge + 8, key3, WS_HIXIE76_KEY3_LEN);
  ctx = EVP_MD_CTX_new();
  ok = ctx && EVP_DigestInit_ex(ctx, EVP_md5(), NULL) &&
       EVP_DigestUpdate(ctx, challenge, sizeof challenge) &&
       EVP_DigestFinal_ex(ctx, out, &n) && n == WS_HIXIE76_ANSWER_LEN;
  EVP_MD_CTX_free(ctx);
  if (!ok) {
    memset(out, 0, WS_HIXIE76_ANSWER_LEN);
    return WS_EINTERNAL;
  }
  return 0;
}

/* Checks one key header (there must be exactly one) and returns its value. */
static int ws__hixie_key(const ws_http_head_t *h, const char *name, uint32_t *value) {
  const ws_header_t *hd;
  if (ws__hixie_count(h, name, &hd) != 1) return WS_EHANDSHAKE;
  return ws_hixie76_key_value(hd->value, hd->value_len, value);
}

int ws_hixie_check_request(const ws_http_head_t *h, int *version, const char **why) {
  const ws_header_t *host, *k1, *k2;
  size_t hosts, n1, n2;
  uint32_t v;

  *version = 0;
  *why = NULL;
  /* -76 4.1 (what a client sends) and 5.1 (what a server reads); -75 likewise. */
  if (!h->method || h->method_len != sizeof "GET" - 1 || memcmp(h->method, "GET", sizeof "GET" - 1) != 0) {
    *why = "method must be GET";
    return 400;
  }
  if (h->minor_version < 1) {
    *why = "HTTP/1.1 or later required";
    return 400;
  }
  /* Host goes into the location the client compares against its URL, so it must be
   * one, unambiguous value (RFC 9112 3.2: 400 for several). */
  hosts = ws__hixie_count(h, "Host", &host);
  if (hosts != 1 || host->value_len == 0) {
    *why = hosts > 1 ? "more than one Host" : "missing Host";
    return 400;
  }
  /* The target is the location's resource name, so only origin-form will do. */
  if (!h->target || h->target_len == 0 || h->target[0] != '/') {
    *why = "request target must be a path";
    return 400;
  }
  if (!ws__hixie_has_token(h, "Upgrade", "websocket")) {
    *why = "Upgrade must be WebSocket";
    return 400;
  }
  if (!ws__hixie_has_token(h, "Connection", "upgrade")) {
    *why = "Connection must include Upgrade";
    return 400;
  }
  if (ws_http_find(h, "Sec-WebSocket-Version")) {
    *why = "Sec-WebSocket-Version is not a hixie request";
    return 400;
  }
  /* -76 adds the two keys; a request with neither is -75's. */
  n1 = ws__hixie_count(h, "Sec-WebSocket-Key1", &k1);
  n2 = ws__hixie_count(h, "Sec-WebSocket-Key2", &k2);
  if (n1 == 0 && n2 == 0) {
    *version = 75;
    return 0;
  }
  if (n1 > 1 || n2 > 1) {
    *why = "more than one Sec-WebSocket-Key1 or Key2";
    return 400;
  }
  if (n1 == 0 || n2 == 0) {
    *why = "Sec-WebSocket-Key1 and Key2 must come together";
    return 400;
  }
  if (ws_hixie76_key_value(k1->value, k1->value_len, &v) < 0) {
    *why = "invalid Sec-WebSocket-Key1";
    return 400;
  }
  if (ws_hixie76_key_value(k2->value, k2->value_len, &v) < 0) {
    *why = "invalid Sec-WebSocket-Key2";
    return 400;
  }
  *version = 76;
  return 0;
}

const ws_header_t *ws_hixie_requested_protocol(const ws_http_head_t *h, int version) {
  return ws_http_find(h, version == 76 ? "Sec-WebSocket-Protocol" : "WebSocket-Protocol");
}

/* An output buffer that remembers whether anything did not fit. */
typedef struct {
  char *p;
  size_t len, cap;
  int full;
} ws__out_t;

static void ws__put(ws__out_t *o, const void *d, size_t n) {
  if (o->full || n > o->cap - o->len) {
    size_t room = o->full ? 0 : o->cap - o->len;
    if (room) memcpy(o->p + o->len, d, room);
    o->len += room;
    o->full = 1;
    return;
  }
  memcpy(o->p + o->len, d, n);
  o->len += n;
}

#define WS__PUT_LIT(o, lit) ws__put((o), (lit), sizeof(lit) - 1)

/* A header value from the caller: not empty, no control characters (so no CRLF to end
 * the head early). */
static int ws__value_ok(const char *s) {
  if (!*s) return 0;
  for (; *s; s++)
    if ((unsigned char)*s < 0x20 || *s == 0x7F) return 0;
  return 1;
}

/* Extra header lines: each non-empty and ending in CRLF, with no CR or LF elsewhere, so
 * they can neither end the head early nor smuggle in a body. */
static int ws__lines_ok(const char *s) {
  while (*s) {
    const char *start = s;
    while (*s && *s != '\r' && *s != '\n') s++;
    if (s == start || s[0] != '\r' || s[1] != '\n') return 0;
    s += 2;
  }
  return 1;
}

int ws_hixie_response(char *out, size_t cap, const ws_http_head_t *h, int version,
                      int secure, const char *protocol, const char *extra,
                      const uint8_t *key3) {
  const ws_header_t *host = ws_http_find(h, "Host"), *origin = ws_http_find(h, "Origin");
  uint8_t answer[WS_HIXIE76_ANSWER_LEN];
  ws__out_t o;

  if ((version != 75 && version != 76) || (version == 76 && !key3) || !host ||
      !h->target || (protocol && !ws__value_ok(protocol)) || (extra && !ws__lines_ok(extra)))
    return WS_EINVAL;
  if (version == 76) {
    uint32_t n1, n2;
    int r;
    if (ws__hixie_key(h, "Sec-WebSocket-Key1", &n1) < 0 ||
        ws__hixie_key(h, "Sec-WebSocket-Key2", &n2) < 0)
      return WS_EHANDSHAKE;
    if ((r = ws_hixie76_answer(n1, n2, key3, answer)) < 0) return r;
  }
  if (cap > INT_MAX) cap = INT_MAX; /* the length is returned as an int */

  o.p = out;
  o.len = 0;
  o.cap = cap;
  o.full = 0;
  /* -75 4.1: a client compares the first 85 bytes exactly, so the status line (with
   * "Web Socket") and the Upgrade and Connection lines must be these, in this order.
   * -76 5.2 spells it "WebSocket" and allows any order; this one serves both. */
  if (version == 75) WS__PUT_LIT(&o, "HTTP/1.1 101 Web Socket Protocol Handshake\r\n");
  else WS__PUT_LIT(&o, "HTTP/1.1 101 WebSocket Protocol Handshake\r\n");
  WS__PUT_LIT(&o, "Upgrade: WebSocket\r\nConnection: Upgrade\r\n");
  if (origin) {
    if (version == 75) WS__PUT_LIT(&o, "WebSocket-Origin: ");
    else WS__PUT_LIT(&o, "Sec-WebSocket-Origin: ");
    ws__put(&o, origin->value, origin->value_len);
    WS__PUT_LIT(&o, "\r\n");
  }
  /* The location is the URL the client opened: scheme, Host as sent, resource name. */
  if (version == 75) WS__PUT_LIT(&o, "WebSocket-Location: ");
  else WS__PUT_LIT(&o, "Sec-WebSocket-Location: ");
  if (secure) WS__PUT_LIT(&o, "wss://");
  else WS__PUT_LIT(&o, "ws://");
  ws__put(&o, host->value, host->value_len);
  ws__put(&o, h->target, h->target_len);
  WS__PUT_LIT(&o, "\r\n");
  if (protocol) {
    if (version == 75) WS__PUT_LIT(&o, "WebSocket-Protocol: ");
    else WS__PUT_LIT(&o, "Sec-WebSocket-Protocol: ");
    ws__put(&o, protocol, strlen(protocol));
    WS__PUT_LIT(&o, "\r\n");
  }
  if (extra) ws__put(&o, extra, strlen(extra));
  WS__PUT_LIT(&o, "\r\n");
  if (version == 76) ws__put(&o, answer, sizeof answer);
  return o.full ? WS_EHEADTOOBIG : (int)o.len;
}

/* ---- framing parser ------------------------------------------------------------ */

enum {
  WS__HIXIE_TYPE,    /* the next byte is a frame type */
  WS__HIXIE_TEXT,    /* in a 0x00 frame: text up to 0xFF */
  WS__HIXIE_DISCARD, /* in a sentinel frame of another type: discarded up to 0xFF */
  WS__HIXIE_LENGTH,  /* in the length of a high-bit frame */
  WS__HIXIE_SKIP     /* in the payload of a high-bit frame: discarded */
};

void ws_hixie_parser_init(ws_hixie_parser_t *p, int version, uint64_t max_length) {
  memset(p, 0, sizeof *p);
  p->version = (uint8_t)version;
  p->max_length = max_length;
  p->utf8_state = WS_UTF8_ACCEPT;
  p->state = WS__HIXIE_TYPE;
}

static ssize_t ws__hixie_fail(ws_hixie_parser_t *p, int err) {
  p->error = err;
  return err;
}

ssize_t ws_hixie_parser_execute(ws_hixie_parser_t *p, const ws_parser_settings_t *s,
                                void *ud, char *buf, size_t len) {
  size_t pos = 0;

  if (p->error) return p->error;
  if (len > (size_t)SSIZE_MAX) len = (size_t)SSIZE_MAX; /* the count must fit the result */

  while (pos < len) {
    uint8_t *d = (uint8_t *)buf + pos;
    size_t avail = len - pos;

    switch (p->state) {
    case WS__HIXIE_TYPE:
      /* -76 5.3: the high bit of the type says length-prefixed or sentinel. */
      p->type = d[0];
      p->count = 0;
      pos++;
      if (d[0] & 0x80) {
        p->state = WS__HIXIE_LENGTH;
      } else {
        p->state = d[0] == 0x00 ? WS__HIXIE_TEXT : WS__HIXIE_DISCARD;
        p->utf8_state = WS_UTF8_ACCEPT;
      }
      break;

    case WS__HIXIE_TEXT:
    case WS__HIXIE_DISCARD: {
      const uint8_t *stop = memchr(d, 0xFF, avail);
      size_t n = stop ? (size_t)(stop - d) : avail;
      int fin = stop != NULL, text = p->state == WS__HIXIE_TEXT;

      /* Fail at the byte that passes the limit, but only if no earlier byte was bad
       * UTF-8: the first bad byte decides, however the input was cut. count never
       * exceeds max_length, so the subtraction cannot wrap. */
      if (p->max_length && n > p->max_length - p->count) {
        size_t allowed = (size_t)(p->max_length - p->count);
        if (text && ws_utf8_validate(&p->utf8_state, d, allowed) < 0)
          return ws__hixie_fail(p, WS_EUTF8);
        return ws__hixie_fail(p, WS_ETOOBIG);
      }
      /* The drafts replace bad UTF-8 with U+FFFD; the connection closes instead, as
       * RFC 6455 8.1 does, and a text frame ending inside a character is bad too. */
      if (text && (ws_utf8_validate(&p->utf8_state, d, n) < 0 ||
                   (fin && p->utf8_state != WS_UTF8_ACCEPT)))
        return ws__hixie_fail(p, WS_EUTF8);
      p->count += n;
      pos += n + (size_t)fin;
      if (fin) p->state = WS__HIXIE_TYPE;
      if (text && s->on_data && s->on_data(ud, WS_OP_TEXT, 0, (char *)d, n, fin))
        return (ssize_t)pos;
      break;
    }

    case WS__HIXIE_LENGTH: {
      uint8_t b = d[0];
      pos++;
      /* -76 5.3: length = length * 128 + (b & 0x7F) while b's high bit is set.
       * A length past 2^64 is too big for any limit. */
      if (p->count > (UINT64_MAX >> 7)) return ws__hixie_fail(p, WS_ETOOBIG);
      p->count = p->count << 7 | (b & 0x7F);
      if (p->max_length && p->count > p->max_length) return ws__hixie_fail(p, WS_ETOOBIG);
      if (b & 0x80) break;
      if (p->count) {
        p->state = WS__HIXIE_SKIP;
        break;
      }
      p->state = WS__HIXIE_TYPE;
      /* -76 4.2 and 5.3: type 0xFF with length 0 is the closing handshake. */
      if (p->type == 0xFF && s->on_control && s->on_control(ud, WS_OP_CLOSE, buf + pos, 0))
        return (ssize_t)pos;
      break;
    }

    case WS__HIXIE_SKIP: {
      /* -76 5.3: "Read /length/ bytes. Discard the read bytes." */
      size_t n = p->count < avail ? (size_t)p->count : avail;
      p->count -= n;
      pos += n;
      if (p->count == 0) p->state = WS__HIXIE_TYPE;
      break;
    }
    }
  }
  return (ssize_t)pos;
}

int ws_hixie_parser_busy(const ws_hixie_parser_t *p) { return p->state != WS__HIXIE_TYPE; }
