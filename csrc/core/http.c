/* HTTP/1.x request and response heads (RFC 9112), just far enough for the opening
 * handshake and simple requests. Zero allocation: results point into the caller's
 * buffer. Every read is checked against the end, so a prefix of a head gives WS_EAGAIN. */
#include <limits.h>
#include <string.h>

#include "ws.h"

/* RFC 9110 5.6.2: tchar, the characters of a token (method, header name). */
const uint8_t ws__http_tchar[256] = {
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  0, 1, 0, 1, 1, 1, 1, 1, 0, 0, 1, 1, 0, 1, 1, 0,
  1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0,
  0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
  1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1,
  1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
  1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 0, 1, 0,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,};

/* Line ends are CRLF, or a bare LF (RFC 9112 2.2 lets a recipient accept it). */
static int ws__http_eol(const char **pp, const char *end) {
  const char *p = *pp;
  if (p == end) return WS_EAGAIN;
  if (*p == '\r') {
    if (++p == end) return WS_EAGAIN;
    if (*p != '\n') return WS_EHTTP; /* a bare CR is never a line end (2.2) */
  } else if (*p != '\n') {
    return WS_EHTTP;
  }
  *pp = p + 1;
  return 0;
}

/* "HTTP/1." DIGIT: only HTTP/1.x heads look like this (RFC 9112 2.3). */
static int ws__http_version(const char **pp, const char *end, int *minor) {
  static const char prefix[] = "HTTP/1.";
  const char *p = *pp;
  size_t i;
  for (i = 0; i < sizeof prefix - 1; i++, p++) {
    if (p == end) return WS_EAGAIN;
    if (*p != prefix[i]) return WS_EHTTP;
  }
  if (p == end) return WS_EAGAIN;
  if (*p < '0' || *p > '9') return WS_EHTTP;
  *minor = *p - '0';
  *pp = p + 1;
  return 0;
}

static int ws__http_headers(const char **pp, const char *end, ws_http_head_t *h) {
  const char *p = *pp;
  size_t n = 0;
  int r;

  for (;;) {
    const char *name, *value, *value_end;
    size_t name_len;

    if (p == end) return WS_EAGAIN;
    if (*p == '\r' || *p == '\n') break;
    /* RFC 9112 5.2: obs-fold (a line starting with whitespace) is rejected. */
    if (WS_HTTP_IS_OWS(*p)) return WS_EHTTP;
    if (n == h->num_headers) return WS_EHEADTOOBIG;

    name = p;
    while (p < end && WS_HTTP_IS_TCHAR(*p)) p++;
    if (p == end) return WS_EAGAIN;
    /* 5.1: no whitespace between the name and the colon. */
    if (p == name || *p != ':') return WS_EHTTP;
    name_len = (size_t)(p - name);
    p++;
    while (p < end && WS_HTTP_IS_OWS(*p)) p++;
    value = value_end = p;
    while (p < end && *p != '\r' && *p != '\n') {
      uint8_t c = (uint8_t)*p++;
      if (!WS_HTTP_IS_TEXT(c)) return WS_EHTTP;
      if (!WS_HTTP_IS_OWS(c)) value_end = p; /* trailing OWS is not part of the value */
    }
    if ((r = ws__http_eol(&p, end)) < 0) return r;

    h->headers[n].name = name;
    h->headers[n].name_len = name_len;
    h->headers[n].value = value;
    h->headers[n].value_len = (size_t)(value_end - value);
    n++;
  }
  if ((r = ws__http_eol(&p, end)) < 0) return r;
  h->num_headers = n; /* only on success: on WS_EAGAIN the capacity must survive */
  *pp = p;
  return 0;
}

/* The result is an int: a head longer than INT_MAX is too big, not incomplete. */
static int ws__http_result(int r, const char *p, const char *buf, size_t len) {
  if (r == WS_EAGAIN && len > INT_MAX) return WS_EHEADTOOBIG;
  return r < 0 ? r : (int)(p - buf);
}

int ws_http_parse_request(const char *buf, size_t len, ws_http_head_t *h) {
  const char *p = buf, *end = buf + (len > INT_MAX ? INT_MAX : len), *start;
  int r;

  h->method = h->target = h->reason = NULL;
  h->method_len = h->target_len = h->reason_len = 0;
  h->status = 0;

  /* RFC 9112 2.2: a server should ignore empty lines before the request line. */
  while (p < end && (*p == '\r' || *p == '\n')) {
    if ((r = ws__http_eol(&p, end)) < 0) return ws__http_result(r, p, buf, len);
  }

  /* 3: method SP request-target SP HTTP-version CRLF */
  start = p;
  while (p < end && WS_HTTP_IS_TCHAR(*p)) p++;
  if (p == end) return ws__http_result(WS_EAGAIN, p, buf, len);
  if (p == start || *p != ' ') return WS_EHTTP;
  h->method = start;
  h->method_len = (size_t)(p - start);
  start = ++p;
  while (p < end && (uint8_t)*p > 0x20 && *p != 0x7F) p++;
  if (p == end) return ws__http_result(WS_EAGAIN, p, buf, len);
  if (p == start || *p != ' ') return WS_EHTTP;
  h->target = start;
  h->target_len = (size_t)(p - start);
  p++;
  if ((r = ws__http_version(&p, end, &h->minor_version)) < 0 ||
      (r = ws__http_eol(&p, end)) < 0 || (r = ws__http_headers(&p, end, h)) < 0)
    return ws__http_result(r, p, buf, len);
  return (int)(p - buf);
}

int ws_http_parse_response(const char *buf, size_t len, ws_http_head_t *h) {
  const char *p = buf, *end = buf + (len > INT_MAX ? INT_MAX : len);
  int r, i;

  h->method = h->target = h->reason = NULL;
  h->method_len = h->target_len = h->reason_len = 0;
  h->status = 0;

  /* RFC 9112 4: HTTP-version SP 3DIGIT SP [reason-phrase] CRLF */
  if ((r = ws__http_version(&p, end, &h->minor_version)) < 0)
    return ws__http_result(r, p, buf, len);
  if (p == end) return WS_EAGAIN;
  if (*p++ != ' ') return WS_EHTTP;
  for (i = 0; i < 3; i++, p++) {
    if (p == end) return WS_EAGAIN;
    if (*p < '0' || *p > '9') return WS_EHTTP;
    h->status = h->status * 10 + (*p - '0');
  }
  if (p == end) return WS_EAGAIN;
  h->reason = p;
  if (*p == ' ') {
    /* The reason may be empty; some servers also leave out the SP before it. */
    h->reason = ++p;
    while (p < end && WS_HTTP_IS_TEXT((uint8_t)*p)) p++;
    h->reason_len = (size_t)(p - h->reason);
  }
  if ((r = ws__http_eol(&p, end)) < 0 || (r = ws__http_headers(&p, end, h)) < 0)
    return ws__http_result(r, p, buf, len);
  return (int)(p - buf);
}

static int ws__ascii_ieq(const char *a, const char *b, size_t n) {
  size_t i;
  for (i = 0; i < n; i++) {
    unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
    if (x >= 'A' && x <= 'Z') x += 'a' - 'A';
    if (y >= 'A' && y <= 'Z') y += 'a' - 'A';
    if (x != y) return 0;
  }
  return 1;
}

const ws_header_t *ws_http_find(const ws_http_head_t *h, const char *name) {
  return ws_http_find_next(h, NULL, name);
}

const ws_header_t *ws_http_find_next(const ws_http_head_t *h, const ws_header_t *after,
                                     const char *name) {
  size_t i = after ? (size_t)(after - h->headers) + 1 : 0, n = strlen(name);
  for (; i < h->num_headers; i++) {
    const ws_header_t *hd = &h->headers[i];
    if (hd->name_len == n && ws__ascii_ieq(hd->name, name, n)) return hd;
  }
  return NULL;
}

/* RFC 9110 5.6.1: #list elements are separated by commas with OWS around them; empty
 * elements are allowed and ignored. */
int ws_http_list_next(const char *value, size_t len, size_t *pos, const char **elem,
                      size_t *elem_len) {
  const char *p, *end;
  if (*pos >= len) return 0; /* keeps a NULL value (len 0) out of the arithmetic */
  p = value + *pos;
  end = value + len;
  while (p < end) {
    const char *start, *e;
    while (p < end && (WS_HTTP_IS_OWS(*p) || *p == ',')) p++;
    start = p;
    while (p < end && *p != ',') p++;
    e = p;
    while (e > start && WS_HTTP_IS_OWS(e[-1])) e--;
    if (e > start) {
      *pos = (size_t)(p - value);
      *elem = start;
      *elem_len = (size_t)(e - start);
      return 1;
    }
  }
  *pos = len;
  return 0;
}

int ws_http_has_token(const char *value, size_t len, const char *token) {
  /* Tokens compare case-insensitively. */
  const char *e;
  size_t pos = 0, n, tlen = strlen(token);

  if (!value) return 0;
  while (ws_http_list_next(value, len, &pos, &e, &n))
    if (n == tlen && ws__ascii_ieq(e, token, tlen)) return 1;
  return 0;
}

/* A head ends at an empty line: "\n\r\n" or "\n\n" (a bare LF ends lines too, RFC 9112
 * 2.2). The search goes on from where the last one stopped, so a head that arrives a
 * byte at a time costs linear time, not quadratic. */
size_t ws_http_head_end(const char *buf, size_t len, uint32_t *scanned) {
  size_t i = *scanned > 2 ? *scanned - 2 : 0;
  for (; i < len; i++) {
    const char *nl = memchr(buf + i, '\n', len - i);
    if (!nl) break;
    i = (size_t)(nl - buf);
    if (i + 1 < len && buf[i + 1] == '\n') return i + 2;
    if (i + 2 < len && buf[i + 1] == '\r' && buf[i + 2] == '\n') return i + 3;
  }
  *scanned = len > UINT32_MAX ? UINT32_MAX : (uint32_t)len;
  return 0;
}
