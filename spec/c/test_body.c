/* csrc/core/body.c: how a request's body is framed (every smuggling shape), and the body
 * parser fed whole, a byte at a time and in random chunks, with callbacks that stop it,
 * every piece placed against an unreadable page. */
#include "test.h"
#include "ws.h"

#define MAXH 16

static ws_header_t hdrs[MAXH];

/* Parses a request head (it must parse) and decides its body. */
static int init(const char *head, uint64_t max, ws_http_body_t *b, const char **why) {
  ws_http_head_t h;
  size_t len = strlen(head);
  char *g = test_guard_copy(head, len);
  memset(&h, 0, sizeof h);
  h.headers = hdrs;
  h.num_headers = MAXH;
  if (ws_http_parse_request(g, len, &h) != (int)len) {
    fprintf(stderr, "  head does not parse: %s\n", head);
    test_failed++;
    return -1;
  }
  *why = "unset";
  return ws_http_body_init(b, &h, max, why);
}

/* ---- deciding the framing --------------------------------------------------- */

typedef struct {
  const char *head;
  uint64_t max;
  int status;
  int kind;
  uint64_t length;
  int keep_alive;
  int expect;
} framing_t;

#define R(m, v) m " / HTTP/1." #v "\r\nHost: a\r\n"
#define POST11 R("POST", 1)
#define POST10 R("POST", 0)
#define NO WS_BODY_NONE
#define LEN WS_BODY_LENGTH
#define CHK WS_BODY_CHUNKED

static const framing_t framings[] = {
  /* No body; RFC 9112 9.3's persistence rules. */
  {R("GET", 1) "\r\n", 0, 0, NO, 0, 1, 0},
  {R("GET", 0) "\r\n", 0, 0, NO, 0, 0, 0},
  {R("GET", 0) "Connection: keep-alive\r\n\r\n", 0, 0, NO, 0, 1, 0},
  {R("GET", 0) "Connection: Keep-Alive, Close\r\n\r\n", 0, 0, NO, 0, 0, 0},
  {R("GET", 0) "Connection: x\r\nConnection: keep-alive\r\n\r\n", 0, 0, NO, 0, 1, 0},
  {R("GET", 1) "Connection: close\r\n\r\n", 0, 0, NO, 0, 0, 0},
  {R("GET", 1) "Connection: Upgrade\r\nConnection: CLOSE\r\n\r\n", 0, 0, NO, 0, 0, 0},
  {R("GET", 1) "Connection: closed, keep-alive\r\n\r\n", 0, 0, NO, 0, 1, 0},
  {R("GET", 9) "\r\n", 0, 0, NO, 0, 1, 0},
  /* Content-Length (6.3 item 5): digits; a list of one value; field OWS is trimmed. */
  {POST11 "Content-Length: 5\r\n\r\n", 0, 0, LEN, 5, 1, 0},
  {POST10 "Content-Length: 5\r\n\r\n", 0, 0, LEN, 5, 0, 0},
  {POST11 "Content-Length: 0\r\n\r\n", 0, 0, LEN, 0, 1, 0},
  {POST11 "Content-Length:  \t1 \t\r\n\r\n", 0, 0, LEN, 1, 1, 0},
  {POST11 "Content-Length: 1,1\r\n\r\n", 0, 0, LEN, 1, 1, 0},
  {POST11 "Content-Length: 1 , 1,\t1\r\n\r\n", 0, 0, LEN, 1, 1, 0},
  {POST11 "Content-Length: 1,,\r\n\r\n", 0, 0, LEN, 1, 1, 0},
  {POST11 "Content-Length: 3\r\ncontent-length: 3\r\n\r\n", 0, 0, LEN, 3, 1, 0},
  {POST11 "Content-Length: 007\r\n\r\n", 0, 0, LEN, 7, 1, 0},
  {POST11 "Content-Length: 01, 1\r\n\r\n", 0, 0, LEN, 1, 1, 0},
  {POST11 "Content-Length: 18446744073709551615\r\n\r\n", 0, 0, LEN, UINT64_MAX, 1, 0},
  {POST11 "Content-Length: 100\r\n\r\n", 100, 0, LEN, 100, 1, 0},
  {POST11 "Content-Length: 1,2\r\n\r\n", 0, 400, NO, 0, 0, 0},
  {POST11 "Content-Length: 3\r\nContent-Length: 4\r\n\r\n", 0, 400, NO, 0, 0, 0},
  {POST11 "Content-Length: 3\r\nContent-Length: 3, 4\r\n\r\n", 0, 400, NO, 0, 0, 0},
  {POST11 "Content-Length: +1\r\n\r\n", 0, 400, NO, 0, 0, 0},
  {POST11 "Content-Length: -1\r\n\r\n", 0, 400, NO, 0, 0, 0},
  {POST11 "Content-Length: 0x1\r\n\r\n", 0, 400, NO, 0, 0, 0},
  {POST11 "Content-Length: 1 1\r\n\r\n", 0, 400, NO, 0, 0, 0},
  {POST11 "Content-Length: 1.0\r\n\r\n", 0, 400, NO, 0, 0, 0},
  {POST11 "Content-Length: 1e3\r\n\r\n", 0, 400, NO, 0, 0, 0},
  {POST11 "Content-Length: \"1\"\r\n\r\n", 0, 400, NO, 0, 0, 0},
  {POST11 "Content-Length: 5\xa0\r\n\r\n", 0, 400, NO, 0, 0, 0},
  {POST11 "Content-Length:\r\n\r\n", 0, 400, NO, 0, 0, 0},
  {POST11 "Content-Length: ,\r\n\r\n", 0, 400, NO, 0, 0, 0},
  {POST11 "Content-Length: 1\r\nContent-Length:\r\n\r\n", 0, 400, NO, 0, 0, 0},
  /* Too big for the limit, or for 64 bits: 413, never wrapped. */
  {POST11 "Content-Length: 101\r\n\r\n", 100, 413, NO, 0, 0, 0},
  {POST11 "Content-Length: 18446744073709551616\r\n\r\n", 0, 413, NO, 0, 0, 0},
  {POST11 "Content-Length: 99999999999999999999999999\r\n\r\n", 0, 413, NO, 0, 0, 0},
  {POST11 "Content-Length: 99999999999999999999, 1\r\n\r\n", 0, 400, NO, 0, 0, 0},
  /* Transfer-Encoding (6.1, 6.3 items 3 and 4). */
  {POST11 "Transfer-Encoding: chunked\r\n\r\n", 0, 0, CHK, 0, 1, 0},
  {POST11 "Transfer-Encoding: Chunked\r\n\r\n", 0, 0, CHK, 0, 1, 0},
  {POST11 "Transfer-Encoding: , chunked ,\r\n\r\n", 0, 0, CHK, 0, 1, 0},
  {POST11 "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n", 0, 0, CHK, 0, 0, 0},
  {POST10 "Transfer-Encoding: chunked\r\n\r\n", 0, 400, NO, 0, 0, 0},
  {POST10 "Transfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n", 0, 400, NO, 0, 0, 0},
  {POST11 "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", 0, 400, NO, 0, 0, 0},
  {POST11 "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 0, 400, NO, 0, 0, 0},
  {POST11 "Content-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n", 0, 400, NO, 0, 0, 0},
  {POST11 "Transfer-Encoding: chunked, gzip\r\n\r\n", 0, 400, NO, 0, 0, 0},
  {POST11 "Transfer-Encoding: gzip\r\n\r\n", 0, 400, NO, 0, 0, 0},
  {POST11 "Transfer-Encoding: identity\r\n\r\n", 0, 400, NO, 0, 0, 0},
  {POST11 "Transfer-Encoding: chunked, chunked\r\n\r\n", 0, 400, NO, 0, 0, 0},
  {POST11 "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 0, 400, NO, 0, 0, 0},
  {POST11 "Transfer-Encoding:\r\n\r\n", 0, 400, NO, 0, 0, 0},
  {POST11 "Transfer-Encoding: xchunked\r\n\r\n", 0, 400, NO, 0, 0, 0},
  {POST11 "Transfer-Encoding: chunked x\r\n\r\n", 0, 400, NO, 0, 0, 0},
  {POST11 "Transfer-Encoding: chunked;q=1\r\n\r\n", 0, 400, NO, 0, 0, 0},
  {POST11 "Transfer-Encoding: \"chunked\"\r\n\r\n", 0, 400, NO, 0, 0, 0},
  {POST11 "Transfer-Encoding: x=\"a,chunked\"\r\n\r\n", 0, 400, NO, 0, 0, 0},
  {POST11 "Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n", 0, 400, NO, 0, 0, 0},
  /* A coding before chunked: the framing holds, but nothing here decodes gzip. */
  {POST11 "Transfer-Encoding: gzip, chunked\r\n\r\n", 0, 501, NO, 0, 0, 0},
  {POST11 "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n", 0, 501, NO, 0, 0, 0},
  {POST11 "Transfer-Encoding: x;a=\"b\", chunked\r\n\r\n", 0, 501, NO, 0, 0, 0},
  /* Expect: 100-continue (RFC 9110 10.1.1): only in 1.1, only when a body is coming. */
  {POST11 "Expect: 100-continue\r\nContent-Length: 5\r\n\r\n", 0, 0, LEN, 5, 1, 1},
  {POST11 "Expect: 100-Continue\r\nTransfer-Encoding: chunked\r\n\r\n", 0, 0, CHK, 0, 1, 1},
  {POST11 "Expect: foo\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n", 0, 0, LEN, 1, 1, 1},
  {POST11 "Expect: 100-continue\r\nContent-Length: 0\r\n\r\n", 0, 0, LEN, 0, 1, 0},
  {POST11 "Expect: 100-continue\r\n\r\n", 0, 0, NO, 0, 1, 0},
  {POST10 "Expect: 100-continue\r\nContent-Length: 5\r\n\r\n", 0, 0, LEN, 5, 0, 0},
  {POST11 "Expect: 100-continued\r\nContent-Length: 5\r\n\r\n", 0, 0, LEN, 5, 1, 0},
  {POST11 "Expect: 100-continue\r\nContent-Length: 101\r\n\r\n", 100, 413, NO, 0, 0, 0},
};

static void test_framing(void) {
  size_t i;
  for (i = 0; i < sizeof framings / sizeof framings[0]; i++) {
    const framing_t *f = &framings[i];
    ws_http_body_t b;
    const char *why;
    long before = test_failed;
    int st = init(f->head, f->max, &b, &why);
    CHECK_INT(st, f->status);
    CHECK_INT(b.kind, f->kind);
    CHECK(b.length == f->length);
    CHECK_INT(b.keep_alive, f->keep_alive);
    CHECK_INT(b.expect_continue, f->expect);
    if (st) {
      CHECK(why != NULL && strcmp(why, "unset") != 0);
      CHECK_INT(b.done, 1);
      /* The connection cannot go on: execute refuses anything. */
      CHECK(ws_http_body_execute(&b, (char *)"0\r\n\r\n", 5, NULL, NULL) < 0);
    } else {
      CHECK(why == NULL);
      CHECK_INT(b.done, f->kind == NO || (f->kind == LEN && f->length == 0));
    }
    if (test_failed != before) fprintf(stderr, "  framing %zu: %s\n", i, f->head);
  }

  /* Heads that smuggle by shape never get this far: the head parser refuses them. */
  {
    static const char *const bad[] = {
      "POST / HTTP/1.1\r\nTransfer-Encoding: gzip,\r\n chunked\r\n\r\n",   /* obs-fold */
      "POST / HTTP/1.1\r\nContent-Length: 1\r\n 2\r\n\r\n",
      "POST / HTTP/1.1\r\nTransfer-Encoding : chunked\r\n\r\n",
      "POST / HTTP/1.1\r\nContent-Length\t: 5\r\n\r\n",
      "POST / HTTP/1.1\r\n Transfer-Encoding: chunked\r\n\r\n",
      "POST / HTTP/1.1\r\nTransfer-Encoding: \013chunked\r\n\r\n",
      "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\rX: y\r\n\r\n",
    };
    size_t k;
    for (k = 0; k < sizeof bad / sizeof bad[0]; k++) {
      ws_http_head_t h;
      memset(&h, 0, sizeof h);
      h.headers = hdrs;
      h.num_headers = MAXH;
      CHECK_INT(ws_http_parse_request(bad[k], strlen(bad[k]), &h), WS_EHTTP);
    }
  }
  /* A header called something close is not the header. */
  {
    ws_http_body_t b;
    const char *why;
    CHECK_INT(init(POST11 "Transfer_Encoding: chunked\r\nContent-Lengths: 5\r\n\r\n", 0, &b,
                   &why), 0);
    CHECK_INT(b.kind, NO);
    CHECK_INT(b.done, 1);
  }
}

/* ---- the body parser ---------------------------------------------------------- */

typedef struct {
  tbuf_t data;
  char *base;       /* the piece being fed */
  size_t base_len;
  long bad_calls;   /* empty, outside the piece, or a short call */
  int stop;         /* callbacks ask to stop */
} sink_t;

static int on_data(void *ud, const char *d, size_t n) {
  sink_t *s = ud;
  /* Never empty, always inside the piece handed in. */
  if (n == 0 || d < s->base || n > s->base_len || (size_t)(d - s->base) > s->base_len - n)
    s->bad_calls++;
  tb_put(&s->data, d, n);
  return s->stop;
}

typedef struct {
  int err;      /* 0 or the error execute gave */
  size_t used;  /* bytes consumed before the body ended, or before the error */
  int done;
} outcome_t;

/* Feeds in after head; mode 0: whole, 1: a byte at a time, else random pieces from seed
 * mode. When a callback stopped the parser, the rest of the piece is fed again. */
static outcome_t feed(const char *head, uint64_t max, const char *in, size_t len, int mode,
                      int stop, sink_t *s) {
  outcome_t o = {0, 0, 0};
  ws_http_body_t b;
  const char *why;
  uint64_t seed = (uint64_t)mode;
  memset(s, 0, sizeof *s);
  s->stop = stop;
  if (init(head, max, &b, &why) != 0) {
    o.err = -1;
    return o;
  }
  while (o.used < len && !b.done) {
    size_t piece = mode == 0 ? len - o.used : mode == 1 ? 1 : 1 + test_rand(&seed) % 7;
    ssize_t r;
    if (piece > len - o.used) piece = len - o.used;
    s->base = test_guard_copy(in + o.used, piece);
    s->base_len = piece;
    r = ws_http_body_execute(&b, s->base, piece, on_data, s);
    if (r < 0) {
      o.err = (int)r;
      /* Sticky, whatever comes next. */
      CHECK_INT(ws_http_body_execute(&b, (char *)"0\r\n\r\n", 5, on_data, s), r);
      CHECK_INT(b.keep_alive, 0);
      break;
    }
    /* Never more than given; short only when the body ended or a callback said stop
     * (counted with the callbacks' faults, so that one check covers every piece). */
    if ((size_t)r > piece || ((size_t)r < piece && !b.done && !stop)) s->bad_calls++;
    o.used += (size_t)r;
  }
  o.done = b.done;
  if (b.done) {
    /* Done is sticky: nothing more is taken. */
    CHECK_INT(ws_http_body_execute(&b, (char *)"0\r\n\r\n", 5, on_data, s), 0);
    CHECK(b.received == s->data.len);
  }
  CHECK_INT(s->bad_calls, 0);
  return o;
}

#define CHUNKED POST11 "Transfer-Encoding: chunked\r\n\r\n"

/* Every way of feeding gives the same outcome and the same bytes. want_err 0: the body
 * must end after want_used bytes. */
static void expect_body(int line, const char *head, uint64_t max, const char *in, size_t len,
                        int want_err, size_t want_used, const char *want, size_t want_len) {
  int mode, stop;
  long before = test_failed;
  for (stop = 0; stop <= 1; stop++) {
    for (mode = 0; mode < 12; mode++) {
      sink_t s;
      outcome_t o = feed(head, max, in, len, mode, stop, &s);
      CHECK_INT(o.err, want_err);
      if (!want_err) {
        CHECK_INT(o.done, 1);
        CHECK_INT(o.used, want_used);
      }
      if (want) CHECK_MEM(s.data.p, s.data.len, want, want_len);
      tb_free(&s.data);
    }
  }
  if (test_failed != before) fprintf(stderr, "  expect_body at line %d\n", line);
}

#define OK(head, max, in, used, want) \
  expect_body(__LINE__, head, max, in, sizeof(in) - 1, 0, used, want, sizeof(want) - 1)
#define ALL(head, max, in, want) OK(head, max, in, sizeof(in) - 1, want)
#define FAILS(head, max, in, err) \
  expect_body(__LINE__, head, max, in, sizeof(in) - 1, err, 0, NULL, 0)
/* A body not over yet: everything is taken, nothing fails, done is not set. */
#define PARTIAL(head, max, in, want) PARTIAL_(__LINE__, head, max, in, sizeof(in) - 1, want, sizeof(want) - 1)

static void PARTIAL_(int line, const char *head, uint64_t max, const char *in, size_t len,
                     const char *want, size_t want_len) {
  int mode;
  long before = test_failed;
  for (mode = 0; mode < 12; mode++) {
    sink_t s;
    outcome_t o = feed(head, max, in, len, mode, 0, &s);
    CHECK_INT(o.err, 0);
    CHECK_INT(o.done, 0);
    CHECK_INT(o.used, len);
    CHECK_MEM(s.data.p, s.data.len, want, want_len);
    tb_free(&s.data);
  }
  if (test_failed != before) fprintf(stderr, "  PARTIAL at line %d\n", line);
}

static const char next_request[] = "GET /next HTTP/1.1\r\nHost: a\r\n\r\n";

static void test_chunked(void) {
  /* Chunks, extensions (RFC 9112 7.1.1, BWS included) and trailers (7.1.2), then the
   * next pipelined request, which is not taken. */
  static const char body[] =
      "4;name=value\r\nWiki\r\n"
      "5 ; a = b ;c;d=\"q\\\"x;y\\\\\"\r\npedia\r\n"
      "E\r\n in\r\n\r\nchunks.\r\n"
      "0000;last\r\n"
      "Expires: Wed, 21 Oct 2015 07:28:00 GMT\r\n"
      "X-Empty:\r\n"
      "\r\n"
      "GET /next HTTP/1.1\r\nHost: a\r\n\r\n";
  OK(CHUNKED, 0, body, sizeof body - sizeof next_request, "Wikipedia in\r\n\r\nchunks.");
  OK(CHUNKED, 23, body, sizeof body - sizeof next_request, "Wikipedia in\r\n\r\nchunks.");
  ALL(CHUNKED, 0, "0\r\n\r\n", "");
  ALL(CHUNKED, 0, "a\r\n0123456789\r\nA\r\nabcdefghij\r\n0\r\n\r\n", "0123456789abcdefghij");
  /* Leading zeros are digits too; 16 hex digits fit. */
  ALL(CHUNKED, 0, "00000000000000000000001\r\nx\r\n0\r\n\r\n", "x");
  PARTIAL(CHUNKED, 0, "FFFFFFFFFFFFFFFF\r\nabc", "abc");
  PARTIAL(CHUNKED, 0, "5\r\nab", "ab");
  PARTIAL(CHUNKED, 0, "5\r\nabcde\r\n0\r\nX: y\r\n", "abcde");

  /* The size: hex only, no sign, no space before it, no 0x; it must fit 64 bits. */
  FAILS(CHUNKED, 0, "\r\n", WS_EHTTP);
  FAILS(CHUNKED, 0, " 5\r\nhello\r\n0\r\n\r\n", WS_EHTTP);
  FAILS(CHUNKED, 0, "+5\r\nhello\r\n0\r\n\r\n", WS_EHTTP);
  FAILS(CHUNKED, 0, "-5\r\nhello\r\n0\r\n\r\n", WS_EHTTP);
  FAILS(CHUNKED, 0, "0x5\r\nhello\r\n0\r\n\r\n", WS_EHTTP);
  FAILS(CHUNKED, 0, "g\r\n", WS_EHTTP);
  FAILS(CHUNKED, 0, "10000000000000000\r\n", WS_EHTTP);
  FAILS(CHUNKED, 0, "FFFFFFFFFFFFFFFFF\r\n", WS_EHTTP);
  FAILS(CHUNKED, 0, "1\r\nx\r\nFFFFFFFFFFFFFFFF\r\n", WS_ETOOBIG); /* the total would wrap */
  /* Whitespace after the size must lead to an extension; line ends are CRLF. */
  FAILS(CHUNKED, 0, "5 \r\nhello\r\n0\r\n\r\n", WS_EHTTP);
  FAILS(CHUNKED, 0, "5\nhello\r\n0\r\n\r\n", WS_EHTTP);
  FAILS(CHUNKED, 0, "5\rhello\r\n0\r\n\r\n", WS_EHTTP);
  FAILS(CHUNKED, 0, "5\r\r\nhello\r\n0\r\n\r\n", WS_EHTTP);
  /* Chunk data is followed by CRLF, exactly. */
  FAILS(CHUNKED, 0, "5\r\nhello\n0\r\n\r\n", WS_EHTTP);
  FAILS(CHUNKED, 0, "5\r\nhelloX\r\n0\r\n\r\n", WS_EHTTP);
  FAILS(CHUNKED, 0, "5\r\nhello\r0\r\n\r\n", WS_EHTTP);
  FAILS(CHUNKED, 0, "3\r\nhello\r\n0\r\n\r\n", WS_EHTTP);
  /* Extensions: ";" name [ "=" token / quoted-string ], nothing else. */
  FAILS(CHUNKED, 0, "5;\r\nhello\r\n0\r\n\r\n", WS_EHTTP);
  FAILS(CHUNKED, 0, "5;a=\r\nhello\r\n0\r\n\r\n", WS_EHTTP);
  FAILS(CHUNKED, 0, "5;a b\r\nhello\r\n0\r\n\r\n", WS_EHTTP);
  FAILS(CHUNKED, 0, "5;a=b \r\nhello\r\n0\r\n\r\n", WS_EHTTP);
  FAILS(CHUNKED, 0, "5;a=b c\r\nhello\r\n0\r\n\r\n", WS_EHTTP);
  FAILS(CHUNKED, 0, "5;a=\"x\r\nhello\r\n0\r\n\r\n", WS_EHTTP);
  FAILS(CHUNKED, 0, "5;a=\"x\"y\r\nhello\r\n0\r\n\r\n", WS_EHTTP);
  FAILS(CHUNKED, 0, "5;a=\"\\\r\"\r\nhello\r\n0\r\n\r\n", WS_EHTTP);
  FAILS(CHUNKED, 0, "5;a=b\nhello\r\n0\r\n\r\n", WS_EHTTP);
  FAILS(CHUNKED, 0, "5;a\x01\r\nhello\r\n0\r\n\r\n", WS_EHTTP);
  FAILS(CHUNKED, 0, "5;a=\"\x7f\"\r\nhello\r\n0\r\n\r\n", WS_EHTTP);
  FAILS(CHUNKED, 0, "5,a\r\nhello\r\n0\r\n\r\n", WS_EHTTP);
  ALL(CHUNKED, 0, "5;a=\"\"\r\nhello\r\n0;b\r\n\r\n", "hello");
  ALL(CHUNKED, 0, "5;a=\"\t\xc3\xa9\"\r\nhello\r\n0\r\n\r\n", "hello");
  /* Trailers: field lines, no obs-fold, and the empty line is CRLF too. */
  FAILS(CHUNKED, 0, "0\r\nA: b\r\n c\r\n\r\n", WS_EHTTP);
  FAILS(CHUNKED, 0, "0\r\n: b\r\n\r\n", WS_EHTTP);
  FAILS(CHUNKED, 0, "0\r\nA b: c\r\n\r\n", WS_EHTTP);
  FAILS(CHUNKED, 0, "0\r\nA\r\n\r\n", WS_EHTTP);
  FAILS(CHUNKED, 0, "0\r\nA: \x01\r\n\r\n", WS_EHTTP);
  FAILS(CHUNKED, 0, "0\r\nA: b\n\r\n", WS_EHTTP);
  FAILS(CHUNKED, 0, "0\r\nA: b\r\n\n", WS_EHTTP);
  FAILS(CHUNKED, 0, "0\r\n\n", WS_EHTTP);
  FAILS(CHUNKED, 0, "0\r\n\rX", WS_EHTTP);

  /* max_body counts the de-chunked bytes; a chunk over it fails at its size. */
  ALL(CHUNKED, 6, "3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n", "abcdef");
  {
    static const char six[] = "3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n";
    expect_body(__LINE__, CHUNKED, 5, six, sizeof six - 1, WS_ETOOBIG, 0, "abc", 3);
  }
  FAILS(CHUNKED, 5, "6\r\n", WS_ETOOBIG);
  FAILS(CHUNKED, 5, "0000000000006", WS_ETOOBIG);
}

/* The bounds: a chunk line of WS_HTTP_MAX_CHUNK_LINE bytes and a trailer section of
 * WS_HTTP_MAX_TRAILERS pass; one more byte fails. */
static void test_bounds(void) {
  static char in[WS_HTTP_MAX_TRAILERS + 64];
  size_t n;
  sink_t s;
  outcome_t o;
  int extra, mode;

  for (extra = 0; extra <= 1; extra++) {
    for (mode = 0; mode < 3; mode++) {
      /* "1;" + name + CRLF is the line; then "x\r\n0\r\n\r\n". */
      n = 0;
      memcpy(in, "1;", 2);
      n = 2;
      memset(in + n, 'e', WS_HTTP_MAX_CHUNK_LINE - 4 + extra);
      n += WS_HTTP_MAX_CHUNK_LINE - 4 + extra;
      memcpy(in + n, "\r\nx\r\n0\r\n\r\n", 10);
      n += 10;
      o = feed(CHUNKED, 0, in, n, mode, 0, &s);
      CHECK_INT(o.err, extra ? WS_EHTTP : 0);
      CHECK_INT(o.done, !extra);
      tb_free(&s.data);

      /* Leading zeros count against the line too. */
      memset(in, '0', WS_HTTP_MAX_CHUNK_LINE - 3 + extra);
      n = WS_HTTP_MAX_CHUNK_LINE - 3 + extra;
      memcpy(in + n, "1\r\nx\r\n0\r\n\r\n", 11);
      n += 11;
      o = feed(CHUNKED, 0, in, n, mode, 0, &s);
      CHECK_INT(o.err, extra ? WS_EHTTP : 0);
      tb_free(&s.data);

      /* "0\r\n", then "X: " + value + CRLF, then CRLF: the trailers are all but the
       * first three bytes. */
      memcpy(in, "0\r\nX: ", 6);
      n = 6;
      memset(in + n, 'v', WS_HTTP_MAX_TRAILERS - 7 + extra);
      n += WS_HTTP_MAX_TRAILERS - 7 + extra;
      memcpy(in + n, "\r\n\r\n", 4);
      n += 4;
      o = feed(CHUNKED, 0, in, n, mode, 0, &s);
      CHECK_INT(o.err, extra ? WS_EHEADTOOBIG : 0);
      if (!extra) CHECK_INT(o.used, n);
      tb_free(&s.data);
    }
  }
}

static void test_length(void) {
  static const char pipelined[] = "hello" "GET /next HTTP/1.1\r\nHost: a\r\n\r\n";
  OK(POST11 "Content-Length: 5\r\n\r\n", 0, pipelined, 5, "hello");
  OK(POST11 "Content-Length: 5\r\n\r\n", 5, "hello", 5, "hello");
  OK(POST11 "Content-Length: 1, 1\r\n\r\n", 0, "\r\n", 1, "\r");
  /* Bytes that look like chunked framing are just data here. */
  OK(POST11 "Content-Length: 5\r\n\r\n", 0, "0\r\n\r\nX", 5, "0\r\n\r\n");
  PARTIAL(POST11 "Content-Length: 10\r\n\r\n", 0, "hello", "hello");

  /* The bytes after the body are the next request, whole. */
  {
    ws_http_body_t b;
    ws_http_head_t h;
    const char *why;
    char *g;
    ssize_t r;
    CHECK_INT(init(POST11 "Content-Length: 5\r\n\r\n", 0, &b, &why), 0);
    g = test_guard_copy(pipelined, sizeof pipelined - 1);   /* init's copy is gone now */
    r = ws_http_body_execute(&b, g, sizeof pipelined - 1, NULL, NULL);   /* discarded */
    CHECK_INT(r, 5);
    CHECK_INT(b.done, 1);
    CHECK(b.received == 5);
    memset(&h, 0, sizeof h);
    h.headers = hdrs;
    h.num_headers = MAXH;
    CHECK_INT(ws_http_parse_request(g + r, sizeof pipelined - 1 - (size_t)r, &h),
              (int)sizeof next_request - 1);
    CHECK_MEM(h.target, h.target_len, "/next", 5);
  }
  /* No body: nothing is taken, whatever follows. */
  {
    ws_http_body_t b;
    const char *why;
    CHECK_INT(init(R("GET", 1) "\r\n", 0, &b, &why), 0);
    CHECK_INT(ws_http_body_execute(&b, (char *)next_request, sizeof next_request - 1, NULL,
                                   NULL), 0);
  }
}

/* Random bodies cut into random chunks, checked against the bytes they were made of. */
static void test_random(void) {
  uint64_t seed = 42;
  int round;
  static char in[8192], want[4096];
  for (round = 0; round < 200; round++) {
    size_t n = 0, w = 0;
    int chunks = (int)(test_rand(&seed) % 6), c, mode;
    for (c = 0; c < chunks; c++) {
      size_t size = 1 + test_rand(&seed) % 300, k;
      n += (size_t)snprintf(in + n, sizeof in - n, test_rand(&seed) & 1 ? "%zx" : "%zX", size);
      if (test_rand(&seed) & 1) n += (size_t)snprintf(in + n, sizeof in - n, ";i=%d", c);
      memcpy(in + n, "\r\n", 2);
      n += 2;
      for (k = 0; k < size; k++) in[n++] = want[w++] = (char)test_rand(&seed);
      memcpy(in + n, "\r\n", 2);
      n += 2;
    }
    memcpy(in + n, "0\r\nT: 1\r\n\r\n", 11);
    n += 11;
    for (mode = 0; mode < 6; mode++) {
      sink_t s;
      outcome_t o = feed(CHUNKED, 0, in, n, mode + round * 6, round & 1, &s);
      CHECK_INT(o.err, 0);
      CHECK_INT(o.done, 1);
      CHECK_INT(o.used, n);
      CHECK_MEM(s.data.p, s.data.len, want, w);
      tb_free(&s.data);
    }
  }
}

void test_body(void) {
  test_framing();
  test_chunked();
  test_bounds();
  test_length();
  test_random();
}
