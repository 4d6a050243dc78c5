/* Request bodies (RFC 9112 6, 7.1): how a request's body is framed, decided from its
 * head, and a push parser that takes a Content-Length or chunked body off the input.
 * Framing that two readers could take two ways is refused, never guessed at: a proxy
 * and a server that disagree on where a body ends is how requests are smuggled. So the
 * chunked grammar is followed to the letter, line ends included (CRLF, no bare LF). */
#include <string.h>

#include "ws.h"

/* Where the chunked parser is. */
enum {
  WS__B_SIZE0,        /* the first HEXDIG of a chunk size: no sign, no space */
  WS__B_SIZE,         /* more HEXDIG, or what follows the size */
  WS__B_EXT_BWS,      /* whitespace, which must lead to a ";" (BWS ";") */
  WS__B_EXT_NAME0,    /* after ";": BWS, then an extension's name */
  WS__B_EXT_NAME,
  WS__B_EXT_EQ,       /* whitespace after a name: "=" or ";" */
  WS__B_EXT_VAL0,     /* after "=": BWS, then a token or a quoted-string */
  WS__B_EXT_TOKEN,
  WS__B_EXT_QUOTED,
  WS__B_EXT_QPAIR,    /* the byte after a backslash in a quoted-string */
  WS__B_EXT_QEND,     /* after the closing quote */
  WS__B_LINE_LF,      /* the LF that ends a chunk line */
  WS__B_DATA,
  WS__B_DATA_CR,      /* the CRLF after chunk-data */
  WS__B_DATA_LF,
  WS__B_TRAILER0,     /* a trailer field line, or the empty line that ends the body */
  WS__B_TRAILER_NAME,
  WS__B_TRAILER_VALUE,
  WS__B_TRAILER_LF,
  WS__B_END_LF
};

static int ws__fail(const char **why, const char *msg, int status) {
  if (why) *why = msg;
  return status;
}

/* Transfer-Encoding (6.1): the codings in order, over every header of that name. The
 * last must be chunked, which is the only one this side decodes; a request whose last
 * coding is another leaves its length unknown (6.3 item 4). */
static int ws__transfer_coding(const ws_http_head_t *h, const char **why) {
  const ws_header_t *hd = NULL;
  int chunked = 0, others = 0, last_chunked = 0;
  while ((hd = ws_http_find_next(h, hd, "Transfer-Encoding"))) {
    const char *e;
    size_t pos = 0, n;
    while (ws_http_list_next(hd->value, hd->value_len, &pos, &e, &n)) {
      /* e is one element: has_token compares it whole, case-insensitively (7). */
      last_chunked = ws_http_has_token(e, n, "chunked");
      if (last_chunked) chunked++;
      else others++;
    }
  }
  if (!last_chunked) return ws__fail(why, "chunked is not the last transfer coding", 400);
  if (chunked > 1) return ws__fail(why, "chunked applied more than once", 400);
  if (others) return ws__fail(why, "transfer coding not implemented", 501);
  return 0;
}

/* Content-Length (6.3 item 5): 1*DIGIT; a list of the same value, over one or more
 * headers, counts as that value. Anything else cannot be read one way only. */
static int ws__content_length(const ws_http_head_t *h, uint64_t *length, const char **why) {
  const ws_header_t *hd = NULL;
  int seen = 0, over = 0;
  while ((hd = ws_http_find_next(h, hd, "Content-Length"))) {
    const char *e;
    size_t pos = 0, n, i;
    int any = 0;
    while (ws_http_list_next(hd->value, hd->value_len, &pos, &e, &n)) {
      uint64_t v = 0;
      int big = 0;
      for (i = 0; i < n; i++) {
        unsigned d = (unsigned)(uint8_t)e[i] - '0';
        if (d > 9) return ws__fail(why, "malformed Content-Length", 400);
        if (big || v > (UINT64_MAX - d) / 10) big = 1;
        else v = v * 10 + d;
      }
      if (seen && (v != *length || big != over))
        return ws__fail(why, "differing Content-Length values", 400);
      *length = v;
      over = big;
      seen = any = 1;
    }
    if (!any) return ws__fail(why, "empty Content-Length", 400);
  }
  if (over) return ws__fail(why, "Content-Length too large", 413);
  return 0;
}

/* Does any header of this name hold token? */
static int ws__any_token(const ws_http_head_t *h, const char *name, const char *token) {
  const ws_header_t *hd = NULL;
  while ((hd = ws_http_find_next(h, hd, name)))
    if (ws_http_has_token(hd->value, hd->value_len, token)) return 1;
  return 0;
}

int ws_http_body_init(ws_http_body_t *b, const ws_http_head_t *request, uint64_t max_body,
                      const char **why) {
  int r = 0;
  memset(b, 0, sizeof *b);
  b->max_body = max_body;
  if (why) *why = NULL;

  if (ws_http_find(request, "Transfer-Encoding")) {
    /* 6.1: an HTTP/1.0 message with Transfer-Encoding has faulty framing; 6.3 item 3:
     * with Content-Length as well it "ought to be handled as an error". */
    if (request->minor_version == 0)
      r = ws__fail(why, "Transfer-Encoding in an HTTP/1.0 request", 400);
    else if (ws_http_find(request, "Content-Length"))
      r = ws__fail(why, "both Transfer-Encoding and Content-Length", 400);
    else
      r = ws__transfer_coding(request, why);
    b->kind = WS_BODY_CHUNKED;
  } else if (ws_http_find(request, "Content-Length")) {
    r = ws__content_length(request, &b->length, why);
    if (!r && max_body && b->length > max_body)
      r = ws__fail(why, "Content-Length over the body limit", 413);
    b->kind = WS_BODY_LENGTH;
    b->remaining = b->length;
    b->done = b->length == 0;
  } else {
    b->done = 1; /* 6.3 item 6: a request without either has no body */
  }
  if (r) {
    /* The body was not read: what follows on the connection cannot be found. */
    b->kind = WS_BODY_NONE;
    b->length = b->remaining = 0;
    b->done = 1;
    b->error = r == 413 ? WS_ETOOBIG : WS_EHTTP;
    return r;
  }

  /* 9.3: "close" ends the connection; else 1.1 persists, 1.0 only with keep-alive. */
  b->keep_alive = !ws__any_token(request, "Connection", "close") &&
                  (request->minor_version >= 1 ||
                   ws__any_token(request, "Connection", "keep-alive"));
  /* RFC 9110 10.1.1: ignored in HTTP/1.0; no 100 is owed for a body that is not coming. */
  b->expect_continue = request->minor_version >= 1 && !b->done &&
                       ws__any_token(request, "Expect", "100-continue");
  return 0;
}

static int ws__hex(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  c |= 0x20;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

/* After a chunk size or an extension's name or value (7.1.1): ";" starts an extension,
 * whitespace must come before one, CR ends the line. */
static int ws__ext_after(ws_http_body_t *b, int c) {
  if (c == ';') b->state = WS__B_EXT_NAME0;
  else if (WS_HTTP_IS_OWS(c)) b->state = WS__B_EXT_BWS;
  else if (c == '\r') b->state = WS__B_LINE_LF;
  else return WS_EHTTP;
  return 0;
}

static int ws__go(ws_http_body_t *b, int ok, int state) {
  if (!ok) return WS_EHTTP;
  b->state = (uint8_t)state;
  return 0;
}

/* One byte of a chunked body outside chunk-data. */
static int ws__chunked_byte(ws_http_body_t *b, int c) {
  int d;
  if (b->state <= WS__B_LINE_LF && ++b->line > WS_HTTP_MAX_CHUNK_LINE) return WS_EHTTP;
  if (b->state >= WS__B_TRAILER0 && ++b->line > WS_HTTP_MAX_TRAILERS) return WS_EHEADTOOBIG;

  switch (b->state) {
  case WS__B_SIZE0:
  case WS__B_SIZE:
    if ((d = ws__hex(c)) >= 0) {
      uint64_t limit = b->max_body ? b->max_body : UINT64_MAX;
      /* Any number of digits, but the value must fit (a size that wraps is a classic
       * smuggle), and a chunk over the limit fails before its data. */
      if (b->remaining > UINT64_MAX >> 4) return WS_EHTTP;
      b->remaining = b->remaining << 4 | (uint64_t)d;
      if (b->remaining > limit - b->received) return WS_ETOOBIG;
      b->state = WS__B_SIZE;
      return 0;
    }
    if (b->state == WS__B_SIZE0) return WS_EHTTP;
    return ws__ext_after(b, c);
  case WS__B_EXT_BWS:
    if (WS_HTTP_IS_OWS(c)) return 0;
    return ws__go(b, c == ';', WS__B_EXT_NAME0);
  case WS__B_EXT_NAME0:
    if (WS_HTTP_IS_OWS(c)) return 0;
    return ws__go(b, WS_HTTP_IS_TCHAR(c), WS__B_EXT_NAME);
  case WS__B_EXT_NAME:
    if (WS_HTTP_IS_TCHAR(c)) return 0;
    if (c == '=') return ws__go(b, 1, WS__B_EXT_VAL0);
    if (WS_HTTP_IS_OWS(c)) return ws__go(b, 1, WS__B_EXT_EQ);
    return ws__ext_after(b, c);
  case WS__B_EXT_EQ:
    if (WS_HTTP_IS_OWS(c)) return 0;
    if (c == '=') return ws__go(b, 1, WS__B_EXT_VAL0);
    return ws__go(b, c == ';', WS__B_EXT_NAME0);
  case WS__B_EXT_VAL0:
    if (WS_HTTP_IS_OWS(c)) return 0;
    if (c == '"') return ws__go(b, 1, WS__B_EXT_QUOTED);
    return ws__go(b, WS_HTTP_IS_TCHAR(c), WS__B_EXT_TOKEN);
  case WS__B_EXT_TOKEN:
    if (WS_HTTP_IS_TCHAR(c)) return 0;
    return ws__ext_after(b, c);
  case WS__B_EXT_QUOTED: /* RFC 9110 5.6.4: qdtext, or a backslash and one more */
    if (c == '"') return ws__go(b, 1, WS__B_EXT_QEND);
    if (c == '\\') return ws__go(b, 1, WS__B_EXT_QPAIR);
    return ws__go(b, WS_HTTP_IS_TEXT(c), WS__B_EXT_QUOTED);
  case WS__B_EXT_QPAIR:
    return ws__go(b, WS_HTTP_IS_TEXT(c), WS__B_EXT_QUOTED);
  case WS__B_EXT_QEND:
    return ws__ext_after(b, c);
  case WS__B_LINE_LF:
    b->line = 0;
    /* 7.1: a chunk of size 0 is the last; the trailer section follows it. */
    return ws__go(b, c == '\n', b->remaining ? WS__B_DATA : WS__B_TRAILER0);
  case WS__B_DATA_CR:
    return ws__go(b, c == '\r', WS__B_DATA_LF);
  case WS__B_DATA_LF:
    return ws__go(b, c == '\n', WS__B_SIZE0);
  case WS__B_TRAILER0: /* 7.1.2: field lines, read and dropped; no obs-fold (5.2) */
    if (c == '\r') return ws__go(b, 1, WS__B_END_LF);
    return ws__go(b, WS_HTTP_IS_TCHAR(c), WS__B_TRAILER_NAME);
  case WS__B_TRAILER_NAME:
    if (WS_HTTP_IS_TCHAR(c)) return 0;
    return ws__go(b, c == ':', WS__B_TRAILER_VALUE);
  case WS__B_TRAILER_VALUE:
    if (c == '\r') return ws__go(b, 1, WS__B_TRAILER_LF);
    return ws__go(b, WS_HTTP_IS_TEXT(c), WS__B_TRAILER_VALUE);
  case WS__B_TRAILER_LF:
    return ws__go(b, c == '\n', WS__B_TRAILER0);
  case WS__B_END_LF:
    if (c != '\n') return WS_EHTTP;
    b->done = 1;
    return 0;
  }
  return WS_EINTERNAL;
}

ssize_t ws_http_body_execute(ws_http_body_t *b, char *buf, size_t len,
                             int (*on_data)(void *ud, const char *data, size_t len),
                             void *ud) {
  size_t i = 0;
  if (b->error) return b->error;
  if (b->kind == WS_BODY_NONE) return 0;
  while (i < len && !b->done) {
    if (b->kind == WS_BODY_LENGTH || b->state == WS__B_DATA) {
      /* remaining > 0 here: a body or chunk of size 0 never gets this far. */
      size_t n = len - i;
      const char *data = buf + i;
      if (n > b->remaining) n = (size_t)b->remaining;
      b->remaining -= n;
      b->received += n;
      i += n;
      if (!b->remaining) {
        if (b->kind == WS_BODY_LENGTH) b->done = 1;
        else b->state = WS__B_DATA_CR;
      }
      if (on_data && on_data(ud, data, n)) break;
    } else {
      int r = ws__chunked_byte(b, (uint8_t)buf[i]);
      if (r < 0) {
        b->error = r;
        b->keep_alive = 0;
        return r;
      }
      i++;
    }
  }
  return (ssize_t)i;
}
