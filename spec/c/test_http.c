/* csrc/core/http.c: request and response heads, every input placed against an
 * unreadable page so that any over-read crashes. */
#include "test.h"
#include "ws.h"

#define MAXH 16

static ws_header_t hdrs[MAXH];

static int parse_req(const char *s, size_t len, ws_http_head_t *h, size_t cap) {
  char *g = test_guard_copy(s, len);
  memset(h, 0, sizeof *h);
  h->headers = hdrs;
  h->num_headers = cap;
  return ws_http_parse_request(g, len, h);
}

static int parse_res(const char *s, size_t len, ws_http_head_t *h, size_t cap) {
  char *g = test_guard_copy(s, len);
  memset(h, 0, sizeof *h);
  h->headers = hdrs;
  h->num_headers = cap;
  return ws_http_parse_response(g, len, h);
}

#define REQ(s, h) parse_req(s, sizeof(s) - 1, h, MAXH)
#define RES(s, h) parse_res(s, sizeof(s) - 1, h, MAXH)

/* Every proper prefix of a good head needs more input; the whole gives its length. */
static void check_prefixes(const char *s, size_t len, int response) {
  ws_http_head_t h;
  size_t i;
  int bad = 0;
  for (i = 0; i < len; i++) {
    int r = response ? parse_res(s, i, &h, MAXH) : parse_req(s, i, &h, MAXH);
    if (r != WS_EAGAIN) {
      bad++;
      fprintf(stderr, "  prefix %zu of %zu: %d\n", i, len, r);
    }
  }
  CHECK_INT(bad, 0);
  CHECK_INT(response ? parse_res(s, len, &h, MAXH) : parse_req(s, len, &h, MAXH), (int)len);
}

#define HV(h, i, n, v)                                                        \
  do {                                                                        \
    CHECK_MEM((h).headers[i].name, (h).headers[i].name_len, n, sizeof(n) - 1); \
    CHECK_MEM((h).headers[i].value, (h).headers[i].value_len, v, sizeof(v) - 1); \
  } while (0)

static const char rfc_request[] =
    "GET /chat HTTP/1.1\r\n"
    "Host: server.example.com\r\n"
    "Upgrade: websocket\r\n"
    "Connection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Origin: http://example.com\r\n"
    "Sec-WebSocket-Protocol: chat, superchat\r\n"
    "Sec-WebSocket-Version: 13\r\n"
    "\r\n";

static void test_request(void) {
  ws_http_head_t h;
  int n;

  n = REQ(rfc_request, &h);
  CHECK_INT(n, (int)sizeof rfc_request - 1);
  CHECK_MEM(h.method, h.method_len, "GET", 3);
  CHECK_MEM(h.target, h.target_len, "/chat", 5);
  CHECK_INT(h.minor_version, 1);
  CHECK_INT(h.num_headers, 7);
  HV(h, 0, "Host", "server.example.com");
  HV(h, 4, "Origin", "http://example.com");
  HV(h, 5, "Sec-WebSocket-Protocol", "chat, superchat");
  HV(h, 6, "Sec-WebSocket-Version", "13");
  CHECK(h.reason == NULL);
  check_prefixes(rfc_request, sizeof rfc_request - 1, 0);

  /* Bytes after the head (a body, a first frame) are not part of it. */
  CHECK_INT(REQ("GET / HTTP/1.0\r\n\r\n\x81\x85", &h), 18);
  CHECK_INT(h.minor_version, 0);
  CHECK_INT(h.num_headers, 0);

  /* Bare LF line ends, and empty lines before the request line. */
  {
    static const char lf[] = "\r\n\nPOST /x?y=1 HTTP/1.1\nA: b\nC:\n\n";
    CHECK_INT(REQ(lf, &h), (int)sizeof lf - 1);
    CHECK_MEM(h.method, h.method_len, "POST", 4);
    CHECK_MEM(h.target, h.target_len, "/x?y=1", 6);
    CHECK_INT(h.num_headers, 2);
    HV(h, 0, "A", "b");
    HV(h, 1, "C", "");
    check_prefixes(lf, sizeof lf - 1, 0);
  }

  /* OWS around values is trimmed, inside it is kept; obs-text is allowed. */
  CHECK_INT(REQ("GET / HTTP/1.1\r\nX-A: \t a  b \t\r\nX-B:c\r\nX-C: \xc3\xa9\r\n\r\n", &h) > 0, 1);
  HV(h, 0, "X-A", "a  b");
  HV(h, 1, "X-B", "c");
  HV(h, 2, "X-C", "\xc3\xa9");
  CHECK_INT(REQ("GET / HTTP/1.1\r\nX:    \r\n\r\n", &h) > 0, 1);
  HV(h, 0, "X", "");

  /* Malformed heads. */
  CHECK_INT(REQ("GET /chat HTTP/2.0\r\n\r\n", &h), WS_EHTTP);
  CHECK_INT(REQ("GET /chat HTTP/1.1x\r\n\r\n", &h), WS_EHTTP);
  CHECK_INT(REQ("GET /chat http/1.1\r\n\r\n", &h), WS_EHTTP);
  CHECK_INT(REQ("GET /chat HTTP/1.\r\n\r\n", &h), WS_EHTTP);
  CHECK_INT(REQ("GET  /chat HTTP/1.1\r\n\r\n", &h), WS_EHTTP);
  CHECK_INT(REQ("GET /chat  HTTP/1.1\r\n\r\n", &h), WS_EHTTP);
  CHECK_INT(REQ(" GET /chat HTTP/1.1\r\n\r\n", &h), WS_EHTTP);
  CHECK_INT(REQ("GET\r\n\r\n", &h), WS_EHTTP);
  CHECK_INT(REQ("G(T / HTTP/1.1\r\n\r\n", &h), WS_EHTTP);
  CHECK_INT(REQ("GET /\x01 HTTP/1.1\r\n\r\n", &h), WS_EHTTP);
  CHECK_INT(REQ("GET / HTTP/1.1\rX\r\n\r\n", &h), WS_EHTTP);
  CHECK_INT(REQ("GET / HTTP/1.1\r\nBad Name: x\r\n\r\n", &h), WS_EHTTP);
  CHECK_INT(REQ("GET / HTTP/1.1\r\nName : x\r\n\r\n", &h), WS_EHTTP);
  CHECK_INT(REQ("GET / HTTP/1.1\r\n: x\r\n\r\n", &h), WS_EHTTP);
  CHECK_INT(REQ("GET / HTTP/1.1\r\nNoColon\r\n\r\n", &h), WS_EHTTP);
  CHECK_INT(REQ("GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n", &h), WS_EHTTP);   /* obs-fold */
  CHECK_INT(REQ("GET / HTTP/1.1\r\n\tA: b\r\n\r\n", &h), WS_EHTTP);
  CHECK_INT(REQ("GET / HTTP/1.1\r\nA: b\x01\r\n\r\n", &h), WS_EHTTP);
  CHECK_INT(REQ("GET / HTTP/1.1\r\nA: b\x7f\r\n\r\n", &h), WS_EHTTP);
  CHECK_INT(REQ("GET / HTTP/1.1\r\nA: b\rc\r\n\r\n", &h), WS_EHTTP);
  CHECK_INT(REQ("GET / HTTP/1.1\r\nA: b\r\n\rX", &h), WS_EHTTP);
  CHECK_INT(REQ("GET / HTTP/1.1\r\nA\x00: b\r\n\r\n", &h), WS_EHTTP);
  CHECK_INT(REQ("\rGET / HTTP/1.1\r\n\r\n", &h), WS_EHTTP);

  /* Too many headers for the caller's array; exactly as many is fine. */
  {
    static const char three[] = "GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
    CHECK_INT(parse_req(three, sizeof three - 1, &h, 2), WS_EHEADTOOBIG);
    CHECK_INT(parse_req(three, sizeof three - 1, &h, 3), (int)sizeof three - 1);
    CHECK_INT(h.num_headers, 3);
    CHECK_INT(parse_req(three, sizeof three - 1, &h, 0), WS_EHEADTOOBIG);
    CHECK_INT(parse_req("GET / HTTP/1.1\r\n\r\n", 18, &h, 0), 18);
    /* An incomplete head leaves the capacity alone, so the caller can just retry. */
    CHECK_INT(parse_req(three, 25, &h, 3), WS_EAGAIN);
    CHECK_INT(h.num_headers, 3);
  }
}

static void test_response(void) {
  ws_http_head_t h;
  static const char rfc_response[] =
      "HTTP/1.1 101 Switching Protocols\r\n"
      "Upgrade: websocket\r\n"
      "Connection: Upgrade\r\n"
      "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
      "Sec-WebSocket-Protocol: chat\r\n"
      "\r\n";

  CHECK_INT(RES(rfc_response, &h), (int)sizeof rfc_response - 1);
  CHECK_INT(h.status, 101);
  CHECK_INT(h.minor_version, 1);
  CHECK_MEM(h.reason, h.reason_len, "Switching Protocols", 19);
  CHECK_INT(h.num_headers, 4);
  HV(h, 2, "Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  CHECK(h.method == NULL && h.target == NULL);
  check_prefixes(rfc_response, sizeof rfc_response - 1, 1);

  CHECK_INT(RES("HTTP/1.0 200 OK\n\n", &h), 17);
  CHECK_INT(h.status, 200);
  CHECK_INT(h.minor_version, 0);
  CHECK_INT(RES("HTTP/1.1 404\r\n\r\n", &h), 16);
  CHECK_INT(h.status, 404);
  CHECK_INT(h.reason_len, 0);
  CHECK_INT(RES("HTTP/1.1 204 \r\n\r\n", &h), 17);
  CHECK_INT(h.reason_len, 0);
  CHECK_INT(RES("HTTP/1.1 500 Oops\tnow \xff\r\n\r\n", &h), 27);
  CHECK_MEM(h.reason, h.reason_len, "Oops\tnow \xff", 10);
  check_prefixes("HTTP/1.1 404\r\n\r\n", 16, 1);

  CHECK_INT(RES("HTTP/1.1 20x OK\r\n\r\n", &h), WS_EHTTP);
  CHECK_INT(RES("HTTP/1.1  200 OK\r\n\r\n", &h), WS_EHTTP);
  CHECK_INT(RES("HTTP/1.1 2000 OK\r\n\r\n", &h), WS_EHTTP);
  CHECK_INT(RES("HTTP/1.1 20\r\n\r\n", &h), WS_EHTTP);
  CHECK_INT(RES("HTTP/2 200 OK\r\n\r\n", &h), WS_EHTTP);
  CHECK_INT(RES("HTTP/1.1 200 O\x01K\r\n\r\n", &h), WS_EHTTP);
  CHECK_INT(RES("HTTP/1.1 200 OK\r\nA b: c\r\n\r\n", &h), WS_EHTTP);
  CHECK_INT(RES("GET / HTTP/1.1\r\n\r\n", &h), WS_EHTTP);
  CHECK_INT(parse_res("HTTP/1.1 200 OK\r\nA: 1\r\n\r\n", 25, &h, 0), WS_EHEADTOOBIG);
}

static void test_find_and_tokens(void) {
  ws_http_head_t h;
  const ws_header_t *f;

  CHECK_INT(REQ("GET / HTTP/1.1\r\nhost: a\r\nUPGRADE: x\r\nHost: b\r\n\r\n", &h) > 0, 1);
  f = ws_http_find(&h, "Host");
  CHECK(f == &h.headers[0]); /* the first of two */
  f = ws_http_find(&h, "upgrade");
  CHECK(f == &h.headers[1]);
  CHECK(ws_http_find(&h, "Hos") == NULL);
  CHECK(ws_http_find(&h, "Hosts") == NULL);
  CHECK(ws_http_find(&h, "Origin") == NULL);
  /* Every header of a name, in order. */
  f = ws_http_find_next(&h, NULL, "HOST");
  CHECK(f == &h.headers[0]);
  f = ws_http_find_next(&h, f, "HOST");
  CHECK(f == &h.headers[2]);
  CHECK(ws_http_find_next(&h, f, "HOST") == NULL);
  CHECK(ws_http_find_next(&h, &h.headers[1], "upgrade") == NULL);

  /* List elements, OWS trimmed, empty ones skipped. */
  {
    static const char v[] = " a ,, b\t c ,\t,d,";
    const char *e;
    size_t pos = 0, n;
    CHECK_INT(ws_http_list_next(v, sizeof v - 1, &pos, &e, &n), 1);
    CHECK_MEM(e, n, "a", 1);
    CHECK_INT(ws_http_list_next(v, sizeof v - 1, &pos, &e, &n), 1);
    CHECK_MEM(e, n, "b\t c", 4);
    CHECK_INT(ws_http_list_next(v, sizeof v - 1, &pos, &e, &n), 1);
    CHECK_MEM(e, n, "d", 1);
    CHECK_INT(ws_http_list_next(v, sizeof v - 1, &pos, &e, &n), 0);
    CHECK_INT(ws_http_list_next(v, sizeof v - 1, &pos, &e, &n), 0);
    pos = 0;
    CHECK_INT(ws_http_list_next(" ,\t, ", 5, &pos, &e, &n), 0);
    pos = 0;
    CHECK_INT(ws_http_list_next(NULL, 0, &pos, &e, &n), 0);
    /* Only len bytes count, read against an unreadable page. */
    {
      const char *g = test_guard_copy("x, y", 4);
      pos = 0;
      CHECK_INT(ws_http_list_next(g, 4, &pos, &e, &n), 1);
      CHECK_INT(ws_http_list_next(g, 4, &pos, &e, &n), 1);
      CHECK_MEM(e, n, "y", 1);
      CHECK_INT(ws_http_list_next(g, 4, &pos, &e, &n), 0);
    }
  }

#define TOK(v, t) ws_http_has_token(v, sizeof(v) - 1, t)
  CHECK(TOK("Upgrade", "upgrade"));
  CHECK(TOK("keep-alive, Upgrade", "upgrade"));
  CHECK(TOK("keep-alive,Upgrade", "upgrade"));
  CHECK(TOK("Upgrade , keep-alive", "upgrade"));
  CHECK(TOK(" \tupgrade\t ", "UPGRADE"));
  CHECK(TOK(",,upgrade,,", "upgrade"));
  CHECK(TOK("a, b, c", "c"));
  CHECK(!TOK("keep-alive", "upgrade"));
  CHECK(!TOK("upgrades", "upgrade"));
  CHECK(!TOK("xupgrade", "upgrade"));
  CHECK(!TOK("upgrade-insecure-requests", "upgrade"));
  CHECK(!TOK("up grade", "upgrade"));
  CHECK(!TOK("upgrade x", "upgrade"));
  CHECK(!TOK("", "upgrade"));
  CHECK(!TOK(",", "upgrade"));
  CHECK(!TOK("upgrade", ""));
  CHECK(!TOK("a,,b", ""));
  CHECK(!ws_http_has_token(NULL, 0, "upgrade"));
  /* Only len bytes count. */
  CHECK(!ws_http_has_token("upgradeX", 6, "upgrade"));
  CHECK(ws_http_has_token("upgradeX", 7, "upgrade"));
#undef TOK
}

/* The end of a head, found by a search that goes on where it stopped: fed a byte at a
 * time it gives the same end as fed whole, and never before the head is complete. */
static void test_head_end(void) {
  static const char *const heads[] = {
    "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    "GET / HTTP/1.1\nHost: a\n\n",
    "GET / HTTP/1.1\r\nHost: a\n\r\n",
    "HTTP/1.1 101 OK\r\nX: \r\n\r\n",
  };
  for (size_t k = 0; k < sizeof heads / sizeof heads[0]; k++) {
    const char *h = heads[k];
    size_t n = strlen(h);
    char buf[128];
    snprintf(buf, sizeof buf, "%sBODY", h);   /* bytes after the head do not count */
    uint32_t scanned = 0;
    CHECK_INT(ws_http_head_end(buf, n + 4, &scanned), n);
    scanned = 0;
    for (size_t len = 1; len < n; len++) {
      char *g = test_guard_copy(buf, len);
      CHECK_INT(ws_http_head_end(g, len, &scanned), 0);
      CHECK_INT(scanned, len);
    }
    char *g = test_guard_copy(buf, n);
    CHECK_INT(ws_http_head_end(g, n, &scanned), n);
  }
  /* A long head without its end is searched once: scanned covers it all. */
  static char big[16384];
  memset(big, 'a', sizeof big);
  for (size_t i = 100; i < sizeof big; i += 100) big[i] = '\n';
  uint32_t scanned = 0;
  CHECK_INT(ws_http_head_end(big, sizeof big, &scanned), 0);
  CHECK_INT(scanned, sizeof big);
  big[sizeof big - 1] = '\n';
  big[sizeof big - 2] = '\n';
  CHECK_INT(ws_http_head_end(big, sizeof big, &scanned), sizeof big);
}

void test_http(void) {
  test_request();
  test_response();
  test_find_and_tokens();
  test_head_end();
}
