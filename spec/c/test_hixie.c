/* csrc/core/hixie.c: the hixie-76 worked example, the key rules, telling -75 from -76,
 * the response bytes of both drafts, and the framing parser fed whole, a byte at a
 * time and in random chunks (against a page that faults on any over-read), with and
 * without callbacks that stop it. */
#include <stdlib.h>

#include "hixie.h"
#include "test.h"

/* ---- a growable byte buffer ---------------------------------------------- */

typedef struct {
  uint8_t *p;
  size_t len, cap;
} hb_t;

static void hb_put(hb_t *b, const void *d, size_t n) {
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n) cap *= 2;
    b->p = realloc(b->p, cap);
    if (!b->p) abort();
    b->cap = cap;
  }
  if (n) memcpy(b->p + b->len, d, n);
  b->len += n;
}

static void hb_byte(hb_t *b, int c) {
  uint8_t x = (uint8_t)c;
  hb_put(b, &x, 1);
}

static void hb_u64(hb_t *b, uint64_t v) { hb_put(b, &v, sizeof v); }

static void hb_free(hb_t *b) {
  free(b->p);
  b->p = NULL;
  b->len = b->cap = 0;
}

static int hb_eq(const hb_t *a, const hb_t *b) {
  return a->len == b->len && (a->len == 0 || memcmp(a->p, b->p, a->len) == 0);
}

#define LIT(s) (s), sizeof(s) - 1

/* ---- the opening handshake -------------------------------------------------- */

#define MAXH 16

static ws_header_t hdrs[MAXH];
static char text[4096];

/* Parses a request head from a request line and header lines (each ending in CRLF). */
static ws_http_head_t head(const char *first, const char *lines) {
  ws_http_head_t h;
  int n;
  snprintf(text, sizeof text, "%s\r\n%s\r\n", first, lines);
  memset(&h, 0, sizeof h);
  h.headers = hdrs;
  h.num_headers = MAXH;
  n = ws_http_parse_request(text, strlen(text), &h);
  if (n != (int)strlen(text)) {
    fprintf(stderr, "cannot parse test head (%d):\n%s", n, text);
    h.num_headers = 0;
  }
  return h;
}

/* -76 1.3 and 5.2: the worked example (its request, key3 and response). */
#define D76_KEY1 "4 @1  46546xW%0l 1 5"
#define D76_KEY2 "12998 5 Y3 1  .P00"
#define D76_KEY3 "^n:ds[4U"
#define D76_ANSWER "8jKS'y:G*Co,Wxa-"
#define D76_LINES                                                            \
  "Host: example.com\r\n"                                                    \
  "Connection: Upgrade\r\n"                                                  \
  "Sec-WebSocket-Key2: " D76_KEY2 "\r\n"                                     \
  "Sec-WebSocket-Protocol: sample\r\n"                                       \
  "Upgrade: WebSocket\r\n"                                                   \
  "Sec-WebSocket-Key1: " D76_KEY1 "\r\n"                                     \
  "Origin: http://example.com\r\n"
/* -75 1.2's example, with the optional WebSocket-Protocol. */
#define D75_LINES                                                            \
  "Upgrade: WebSocket\r\n"                                                   \
  "Connection: Upgrade\r\n"                                                  \
  "Host: example.com\r\n"                                                    \
  "Origin: http://example.com\r\n"                                           \
  "WebSocket-Protocol: sample\r\n"
#define BASE_LINES "Host: x\r\nUpgrade: WebSocket\r\nConnection: Upgrade\r\n"

static void test_keys(void) {
  uint32_t v1 = 1, v2 = 1;
  uint8_t answer[WS_HIXIE76_ANSWER_LEN];

  /* The worked example: 4146546015 / 5 and 1299853100 / 5, then MD5. */
  CHECK_INT(ws_hixie76_key_value(LIT(D76_KEY1), &v1), 0);
  CHECK_INT(v1, 829309203);
  CHECK_INT(ws_hixie76_key_value(LIT(D76_KEY2), &v2), 0);
  CHECK_INT(v2, 259970620);
  CHECK_INT(ws_hixie76_answer(v1, v2, (const uint8_t *)D76_KEY3, answer), 0);
  CHECK_MEM(answer, sizeof answer, D76_ANSWER, sizeof D76_ANSWER - 1);
  CHECK_INT(sizeof D76_KEY3 - 1, WS_HIXIE76_KEY3_LEN);

  /* The numbers go in big-endian: swapping them changes the answer. */
  CHECK_INT(ws_hixie76_answer(v2, v1, (const uint8_t *)D76_KEY3, answer), 0);
  CHECK(memcmp(answer, D76_ANSWER, sizeof answer) != 0);

  /* The bounds of 32 bits, with one space and with two. */
  CHECK_INT(ws_hixie76_key_value(LIT("4294967295 "), &v1), 0);
  CHECK_INT(v1, 4294967295u);
  CHECK_INT(ws_hixie76_key_value(LIT("85899 x34590 "), &v1), 0);
  CHECK_INT(v1, 4294967295u);
  CHECK_INT(ws_hixie76_key_value(LIT("a b"), &v1), 0); /* no digits: 0 */
  CHECK_INT(v1, 0);

  /* Refused: no space, a remainder, a quotient past 32 bits, a number past 64. */
  v1 = 7;
  CHECK_INT(ws_hixie76_key_value(LIT("12345"), &v1), WS_EHANDSHAKE);
  CHECK_INT(v1, 0);
  CHECK_INT(ws_hixie76_key_value(LIT(""), &v1), WS_EHANDSHAKE);
  CHECK_INT(ws_hixie76_key_value(LIT("1 2 3"), &v1), WS_EHANDSHAKE);   /* 123 / 2 */
  CHECK_INT(ws_hixie76_key_value(LIT(" 1 2 3 "), &v1), WS_EHANDSHAKE); /* 123 / 4 */
  CHECK_INT(ws_hixie76_key_value(LIT("4294967296 "), &v1), WS_EHANDSHAKE);
  CHECK_INT(ws_hixie76_key_value(LIT("85899 x34592 "), &v1), WS_EHANDSHAKE);
  CHECK_INT(ws_hixie76_key_value(LIT("18446744073709551615 "), &v1), WS_EHANDSHAKE);
  CHECK_INT(ws_hixie76_key_value(LIT("18446744073709551616 "), &v1), WS_EHANDSHAKE);
  CHECK_INT(ws_hixie76_key_value(LIT("999999999999999999999999999999 "), &v1), WS_EHANDSHAKE);
  {
    /* 2^64 - 1 is divisible by 5 but its quotient is far past 32 bits. */
    CHECK_INT(ws_hixie76_key_value(LIT("1 8 4 4 6 744073709551615"), &v1), WS_EHANDSHAKE);
  }
  /* Only the given length counts. */
  CHECK_INT(ws_hixie76_key_value("12 4", 3, &v1), 0);
  CHECK_INT(v1, 12);
}

static int check_req(const char *first, const char *lines, int *version, const char **why) {
  ws_http_head_t h = head(first, lines);
  return ws_hixie_check_request(&h, version, why);
}

#define REQ_OK(first, lines, v)                                               \
  do {                                                                        \
    int ver_;                                                                 \
    const char *why_;                                                         \
    CHECK_INT(check_req(first, lines, &ver_, &why_), 0);                      \
    CHECK_INT(ver_, v);                                                       \
    CHECK(why_ == NULL);                                                      \
  } while (0)

#define REQ_BAD(first, lines, reason)                                         \
  do {                                                                        \
    int ver_;                                                                 \
    const char *why_;                                                         \
    CHECK_INT(check_req(first, lines, &ver_, &why_), 400);                    \
    CHECK_INT(ver_, 0);                                                       \
    CHECK_STR(why_, reason);                                                  \
  } while (0)

#define K1 "Sec-WebSocket-Key1: " D76_KEY1 "\r\n"
#define K2 "Sec-WebSocket-Key2: " D76_KEY2 "\r\n"

static void test_request(void) {
  ws_http_head_t h;
  const ws_header_t *hd;

  REQ_OK("GET /demo HTTP/1.1", D76_LINES, 76);
  REQ_OK("GET /demo HTTP/1.1", D75_LINES, 75);
  REQ_OK("GET /demo HTTP/1.1", BASE_LINES, 75); /* Origin is not required */
  REQ_OK("GET /?a=b HTTP/1.1", "host: x\r\nupgrade: websocket\r\nconnection: keep-alive, upgrade\r\n"
         "sec-websocket-key1: " D76_KEY1 "\r\nsec-websocket-key2: " D76_KEY2 "\r\n", 76);

  REQ_BAD("POST /demo HTTP/1.1", D76_LINES, "method must be GET");
  REQ_BAD("GET /demo HTTP/1.0", D76_LINES, "HTTP/1.1 or later required");
  REQ_BAD("GET /demo HTTP/1.1", "Upgrade: WebSocket\r\nConnection: Upgrade\r\n", "missing Host");
  REQ_BAD("GET /demo HTTP/1.1", "Host:\r\nUpgrade: WebSocket\r\nConnection: Upgrade\r\n",
          "missing Host");
  REQ_BAD("GET /demo HTTP/1.1", BASE_LINES "Host: y\r\n", "more than one Host");
  REQ_BAD("GET * HTTP/1.1", BASE_LINES, "request target must be a path");
  REQ_BAD("GET http://x/demo HTTP/1.1", BASE_LINES, "request target must be a path");
  REQ_BAD("GET /demo HTTP/1.1", "Host: x\r\nConnection: Upgrade\r\n", "Upgrade must be WebSocket");
  REQ_BAD("GET /demo HTTP/1.1", "Host: x\r\nUpgrade: WebSockets\r\nConnection: Upgrade\r\n",
          "Upgrade must be WebSocket");
  REQ_BAD("GET /demo HTTP/1.1", "Host: x\r\nUpgrade: WebSocket\r\n",
          "Connection must include Upgrade");
  /* An RFC 6455 request (even one that also has hixie keys) is not ours. */
  REQ_BAD("GET /demo HTTP/1.1", D76_LINES "Sec-WebSocket-Version: 13\r\n",
          "Sec-WebSocket-Version is not a hixie request");
  REQ_BAD("GET /demo HTTP/1.1", BASE_LINES "Sec-WebSocket-Version: 8\r\n",
          "Sec-WebSocket-Version is not a hixie request");
  /* -76 has both keys, -75 neither. */
  REQ_BAD("GET /demo HTTP/1.1", BASE_LINES K1, "Sec-WebSocket-Key1 and Key2 must come together");
  REQ_BAD("GET /demo HTTP/1.1", BASE_LINES K2, "Sec-WebSocket-Key1 and Key2 must come together");
  REQ_BAD("GET /demo HTTP/1.1", BASE_LINES K1 K2 K1, "more than one Sec-WebSocket-Key1 or Key2");
  REQ_BAD("GET /demo HTTP/1.1", BASE_LINES K1 K2 K2, "more than one Sec-WebSocket-Key1 or Key2");
  REQ_BAD("GET /demo HTTP/1.1", BASE_LINES "Sec-WebSocket-Key1: 12345\r\n" K2,
          "invalid Sec-WebSocket-Key1");
  REQ_BAD("GET /demo HTTP/1.1", BASE_LINES K1 "Sec-WebSocket-Key2: 1 2 3\r\n",
          "invalid Sec-WebSocket-Key2");
  REQ_BAD("GET /demo HTTP/1.1", BASE_LINES K1 "Sec-WebSocket-Key2: 4294967296 x\r\n",
          "invalid Sec-WebSocket-Key2");

  /* The requested subprotocol, by each draft's header name. */
  h = head("GET /demo HTTP/1.1", D76_LINES);
  hd = ws_hixie_requested_protocol(&h, 76);
  CHECK(hd != NULL);
  if (hd) CHECK_MEM(hd->value, hd->value_len, "sample", 6);
  CHECK(ws_hixie_requested_protocol(&h, 75) == NULL);
  h = head("GET /demo HTTP/1.1", D75_LINES);
  hd = ws_hixie_requested_protocol(&h, 75);
  CHECK(hd != NULL);
  if (hd) CHECK_MEM(hd->value, hd->value_len, "sample", 6);
  CHECK(ws_hixie_requested_protocol(&h, 76) == NULL);
}

/* Builds a response for the request, checks it against want byte for byte, then checks
 * that every smaller buffer is refused with the prefix that fits, written right before
 * an unreadable page so that no byte goes past cap. */
static void expect_response(const char *first, const char *lines, int version, int secure,
                            const char *protocol, const char *extra, const char *want,
                            size_t want_len) {
  ws_http_head_t h = head(first, lines);
  char out[1024];
  size_t cap;
  int n = ws_hixie_response(out, sizeof out, &h, version, secure, protocol, extra,
                            (const uint8_t *)D76_KEY3);
  long bad = 0;

  CHECK_INT(n, (long long)want_len);
  if (n > 0) CHECK_MEM(out, (size_t)n, want, want_len);
  for (cap = 0; cap <= want_len; cap++) {
    char *g = test_guard_end() - cap;
    int r = ws_hixie_response(g, cap, &h, version, secure, protocol, extra,
                              (const uint8_t *)D76_KEY3);
    if (cap < want_len ? r != WS_EHEADTOOBIG : r != (int)want_len) bad++;
    if (memcmp(g, want, cap) != 0) bad++;
  }
  CHECK_INT(bad, 0);
}

#define L76 "HTTP/1.1 101 WebSocket Protocol Handshake\r\n"
#define L75 "HTTP/1.1 101 Web Socket Protocol Handshake\r\n"
#define UC "Upgrade: WebSocket\r\nConnection: Upgrade\r\n"

static void test_response(void) {
  static const char d76[] = L76 UC
    "Sec-WebSocket-Origin: http://example.com\r\n"
    "Sec-WebSocket-Location: ws://example.com/demo\r\n"
    "Sec-WebSocket-Protocol: sample\r\n"
    "\r\n" D76_ANSWER;
  static const char d76s[] = L76 UC
    "Sec-WebSocket-Origin: http://example.com\r\n"
    "Sec-WebSocket-Location: wss://example.com/demo\r\n"
    "X-A: 1\r\nX-B: 2\r\n"
    "\r\n" D76_ANSWER;
  static const char d75[] = L75 UC
    "WebSocket-Origin: http://example.com\r\n"
    "WebSocket-Location: ws://example.com/demo\r\n"
    "WebSocket-Protocol: sample\r\n"
    "\r\n";
  static const char d75s[] = L75 UC
    "WebSocket-Location: wss://x:8443/a/b?c=d\r\n"
    "Server: luaws\r\n"
    "\r\n";
  ws_http_head_t h;
  char out[512];

  /* -75 4.1: a client compares the first 85 bytes exactly. */
  CHECK_INT(sizeof L75 UC - 1, 85);

  /* -76's worked example, whole; then wss://, extra lines and no protocol. */
  expect_response("GET /demo HTTP/1.1", D76_LINES, 76, 0, "sample", NULL, LIT(d76));
  expect_response("GET /demo HTTP/1.1", D76_LINES, 76, 1, NULL, "X-A: 1\r\nX-B: 2\r\n",
                  LIT(d76s));
  expect_response("GET /demo HTTP/1.1", D75_LINES, 75, 0, "sample", "", LIT(d75));
  /* No Origin, no origin header; Host with its port, and the target with its query. */
  expect_response("GET /a/b?c=d HTTP/1.1",
                  "Host: x:8443\r\nUpgrade: WebSocket\r\nConnection: Upgrade\r\n", 75, 1,
                  NULL, "Server: luaws\r\n", LIT(d75s));

  /* Arguments that would break the head, or cannot be answered. */
  h = head("GET /demo HTTP/1.1", D76_LINES);
  CHECK_INT(ws_hixie_response(out, sizeof out, &h, 13, 0, NULL, NULL, (const uint8_t *)D76_KEY3),
            WS_EINVAL);
  CHECK_INT(ws_hixie_response(out, sizeof out, &h, 76, 0, NULL, NULL, NULL), WS_EINVAL);
  CHECK_INT(ws_hixie_response(out, sizeof out, &h, 76, 0, "a\r\nX: y", NULL,
                              (const uint8_t *)D76_KEY3), WS_EINVAL);
  CHECK_INT(ws_hixie_response(out, sizeof out, &h, 76, 0, "", NULL, (const uint8_t *)D76_KEY3),
            WS_EINVAL);
  CHECK_INT(ws_hixie_response(out, sizeof out, &h, 75, 0, NULL, "X: y", NULL), WS_EINVAL);
  CHECK_INT(ws_hixie_response(out, sizeof out, &h, 75, 0, NULL, "\r\n", NULL), WS_EINVAL);
  CHECK_INT(ws_hixie_response(out, sizeof out, &h, 75, 0, NULL, "X: y\r\n\r\n", NULL),
            WS_EINVAL);
  CHECK_INT(ws_hixie_response(out, sizeof out, &h, 75, 0, NULL, "X: y\nZ: w\r\n", NULL),
            WS_EINVAL);
  CHECK_INT(ws_hixie_response(out, sizeof out, &h, 75, 0, NULL, "X: y\rZ: w\r\n", NULL),
            WS_EINVAL);
  /* -75 needs no key3; the same head gives a -75 response. */
  CHECK(ws_hixie_response(out, sizeof out, &h, 75, 0, NULL, NULL, NULL) > 0);
  /* A -76 response to a request whose keys are not valid. */
  h = head("GET /demo HTTP/1.1", D75_LINES);
  CHECK_INT(ws_hixie_response(out, sizeof out, &h, 76, 0, NULL, NULL, (const uint8_t *)D76_KEY3),
            WS_EHANDSHAKE);
  h = head("GET /demo HTTP/1.1", BASE_LINES K1 "Sec-WebSocket-Key2: 1 2 3\r\n");
  CHECK_INT(ws_hixie_response(out, sizeof out, &h, 76, 0, NULL, NULL, (const uint8_t *)D76_KEY3),
            WS_EHANDSHAKE);

  /* The response parses as a 101 with the headers a -76 client checks. */
  {
    ws_header_t rh[MAXH];
    ws_http_head_t r;
    int n;
    memset(&r, 0, sizeof r);
    r.headers = rh;
    r.num_headers = MAXH;
    CHECK_INT(ws_http_parse_response(d76, sizeof d76 - 1, &r),
              (long long)(sizeof d76 - 1 - WS_HIXIE76_ANSWER_LEN));
    CHECK_INT(r.status, 101);
    CHECK(ws_http_find(&r, "Sec-WebSocket-Location") != NULL);
    n = (int)r.num_headers;
    CHECK_INT(n, 5);
  }
}

/* ---- the framing parser: an event log ------------------------------------------ */

/* Records what the parser reports: 'D' len data for each whole text frame (its pieces
 * joined), 'C' for each closing handshake, then at the end either 'E' err, or 'P' and
 * the data of an unfinished frame and 'L' and the count of bytes left unconsumed. Two
 * runs behave the same iff their logs are equal. */
typedef struct {
  hb_t log, msg;
  int in_msg;
  int stop; /* callbacks return non-zero: 0 never, 1 always, 2 at random */
  uint64_t rng;
  long data_calls, fin_calls, control_calls, misuse;
} rec_t;

static int rec_stop(rec_t *r) {
  return r->stop == 1 || (r->stop == 2 && test_rand(&r->rng) % 3 == 0);
}

static int rec_on_data(void *ud, int op, int rsv, char *d, size_t n, int fin) {
  rec_t *r = ud;
  r->data_calls++;
  r->in_msg = 1;
  if (op != WS_OP_TEXT || rsv != 0) r->misuse++;
  if (n == 0 && !fin) r->misuse++;         /* an empty piece only to end a frame */
  if (memchr(d, 0xFF, n)) r->misuse++;     /* the sentinel is never data */
  hb_put(&r->msg, d, n);
  if (fin) {
    r->fin_calls++;
    hb_byte(&r->log, 'D');
    hb_u64(&r->log, r->msg.len);
    hb_put(&r->log, r->msg.p, r->msg.len);
    r->msg.len = 0;
    r->in_msg = 0;
  }
  return rec_stop(r);
}

static int rec_on_control(void *ud, int op, char *d, size_t n) {
  rec_t *r = ud;
  (void)d;
  r->control_calls++;
  if (op != WS_OP_CLOSE || n != 0 || r->in_msg) r->misuse++;
  hb_byte(&r->log, 'C');
  return rec_stop(r);
}

static const ws_parser_settings_t rec_settings = {rec_on_data, rec_on_control};

static void exp_text(hb_t *e, const void *d, size_t n) {
  hb_byte(e, 'D');
  hb_u64(e, n);
  hb_put(e, d, n);
}

static void exp_close(hb_t *e) { hb_byte(e, 'C'); }

static void exp_end(hb_t *e) {
  hb_byte(e, 'L');
  hb_u64(e, 0);
}

static void exp_error(hb_t *e, int err) {
  hb_byte(e, 'E');
  hb_u64(e, (uint64_t)(int64_t)err);
}

/* ---- feeding, as a caller would ---------------------------------------------- */

enum { FEED_WHOLE, FEED_BYTES, FEED_RANDOM };

typedef struct {
  int version;
  uint64_t max_length;
} cfg_t;

static long feed_violations; /* consumed more than given, or no error when sticky */

/* Feeds in to a fresh parser in chunks, keeping what it did not consume and feeding it
 * again with the next chunk (and again at once after a callback stopped it). Pending
 * bytes sit right before an unreadable page, so any over-read crashes. Returns the
 * error, or 0; the log goes to *log. */
static int feed(const cfg_t *c, const uint8_t *in, size_t len, int mode, uint64_t seed,
                int stop, hb_t *log, rec_t *out) {
  ws_hixie_parser_t p;
  rec_t r;
  char *end = test_guard_end();
  size_t have = 0, off = 0;
  int err = 0;

  memset(&r, 0, sizeof r);
  r.stop = stop;
  r.rng = seed ^ 0x5bd1e995u;
  ws_hixie_parser_init(&p, c->version, c->max_length);
  if (ws_hixie_parser_execute(&p, &rec_settings, &r, end, 0) != 0) feed_violations++;

  for (;;) {
    if (off < len) {
      size_t n = len - off;
      if (mode == FEED_BYTES) n = 1;
      else if (mode == FEED_RANDOM) {
        uint64_t x = test_rand(&seed);
        size_t m = (x & 7) == 0 ? 2000 : (x & 7) < 3 ? 3 : 40;
        n = 1 + (size_t)((x >> 8) % m);
        if (n > len - off) n = len - off;
      }
      memmove(end - have - n, end - have, have);
      memcpy(end - n, in + off, n);
      have += n;
      off += n;
    }
    for (;;) {
      ssize_t k = ws_hixie_parser_execute(&p, &rec_settings, &r, end - have, have);
      if (k < 0) {
        err = (int)k;
        break;
      }
      if ((size_t)k > have) {
        feed_violations++;
        k = (ssize_t)have;
      }
      /* Only a stop leaves bytes behind: this parser never waits for more. */
      if ((size_t)k < have && !stop) feed_violations++;
      have -= (size_t)k;
      if (k == 0 || have == 0) break;
    }
    if (err || off == len) break;
  }

  if (err) {
    /* Sticky: the same error again, even for new input, and nothing is delivered. */
    long calls = r.data_calls + r.control_calls;
    if (p.error != err || ws_hixie_parser_execute(&p, &rec_settings, &r, end - 2, 2) != err ||
        ws_hixie_parser_execute(&p, &rec_settings, &r, end, 0) != err ||
        r.data_calls + r.control_calls != calls)
      feed_violations++;
    exp_error(&r.log, err);
  } else {
    if (r.in_msg) {
      hb_byte(&r.log, 'P');
      hb_u64(&r.log, r.msg.len);
      hb_put(&r.log, r.msg.p, r.msg.len);
    }
    hb_byte(&r.log, 'L');
    hb_u64(&r.log, have);
  }
  hb_free(&r.msg);
  *log = r.log;
  if (out) *out = r;
  return err;
}

/* Runs in every way there is and checks that the logs agree; returns the whole-feed
 * error and leaves its log in *log (if log is not NULL). */
static int feed_all(const cfg_t *c, const uint8_t *in, size_t len, uint64_t seed, hb_t *log) {
  hb_t ref, other;
  rec_t r;
  int err, i, same = 1, stop;
  long before = feed_violations;

  err = feed(c, in, len, FEED_WHOLE, seed, 0, &ref, &r);
  CHECK_INT(r.misuse, 0);
  for (stop = 0; stop < 3; stop++) {
    for (i = 0; i < 5; i++) {
      int mode = i == 0 ? FEED_WHOLE : i == 1 ? FEED_BYTES : FEED_RANDOM;
      int e;
      if (mode == FEED_WHOLE && stop == 0) continue;
      e = feed(c, in, len, mode, seed + (uint64_t)i * 7919 + (uint64_t)stop, stop, &other, &r);
      if (e != err || !hb_eq(&ref, &other) || r.misuse) {
        same = 0;
        fprintf(stderr, "  mode %d stop %d: err %d vs %d, log %zu vs %zu bytes\n", mode,
                stop, e, err, other.len, ref.len);
      }
      hb_free(&other);
    }
  }
  CHECK(same);
  CHECK_INT(feed_violations - before, 0);
  if (log) *log = ref;
  else hb_free(&ref);
  return err;
}

/* Both report the caller's line, where the input is. */
static void expect_log_at(int line, const cfg_t *c, const void *in, size_t len, hb_t *want) {
  hb_t got;
  feed_all(c, in, len, len * 31 + 1, &got);
  if (hb_eq(&got, want)) test_passed++;
  else test_fail(__FILE__, line, "the log is the one expected");
  hb_free(&got);
  hb_free(want);
}

static void expect_error_at(int line, const cfg_t *c, const void *in, size_t len, int err) {
  int got = feed_all(c, in, len, len * 17 + 3, NULL);
  test_check_int(__FILE__, line, "the error", "the one expected", got, err);
}

#define expect_log(...) expect_log_at(__LINE__, __VA_ARGS__)
#define expect_error(...) expect_error_at(__LINE__, __VA_ARGS__)

static const cfg_t V76 = {76, 0};
static const cfg_t V75 = {75, 0};

/* ---- the framing parser: events ------------------------------------------------- */

static void test_parser_events(void) {
  hb_t want = {0}, in = {0};
  const cfg_t *both[2] = {&V75, &V76};
  int v;

  for (v = 0; v < 2; v++) {
    const cfg_t *c = both[v];

    /* -76 4.2 / -75 4.2: text between 0x00 and 0xFF, empty or not, NUL included. */
    exp_text(&want, "Hello", 5);
    exp_end(&want);
    expect_log(c, LIT("\x00" "Hello" "\xff"), &want);
    exp_text(&want, "", 0);
    exp_text(&want, "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5", 11);
    exp_text(&want, "a\0b", 3);
    exp_end(&want);
    expect_log(c, LIT("\x00\xff" "\x00\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xff"
                      "\x00" "a\x00" "b\xff"), &want);

    /* Length-prefixed frames are read and discarded, 0x00 and 0xFF inside them too. */
    exp_text(&want, "x", 1);
    exp_end(&want);
    expect_log(c, LIT("\x80\x02" "ab" "\x00" "x" "\xff" "\x80\x00" "\xfe\x03\xff\x00\x00"),
               &want);
    {
      size_t i;
      /* Type 0x80, then 0x81 0x00: 1 * 128 + 0 bytes; then 0x80 0x03: 0 * 128 + 3. */
      hb_put(&in, LIT("\x80\x81\x00"));
      for (i = 0; i < 128; i++) hb_byte(&in, i % 3 == 0 ? 0xFF : i % 3 == 1 ? 0x00 : 'z');
      hb_put(&in, LIT("\x80\x80\x03" "\xff\x00\xff" "\x00" "ok" "\xff"));
      exp_text(&want, "ok", 2);
      exp_end(&want);
      expect_log(c, in.p, in.len, &want);
      hb_free(&in);
    }

    /* The closing handshake: 0xFF with length 0 however written, for both drafts; the
     * parser goes on after it (what comes next is the connection's business). */
    exp_close(&want);
    exp_end(&want);
    expect_log(c, LIT("\xff\x00"), &want);
    exp_close(&want);
    exp_text(&want, "a", 1);
    exp_close(&want);
    exp_end(&want);
    expect_log(c, LIT("\xff\x00" "\x00" "a" "\xff" "\xff\x80\x00"), &want);
    /* 0xFF with a length is just a frame to discard. */
    exp_end(&want);
    expect_log(c, LIT("\xff\x01" "z" "\xff\x81\x00"), &want); /* the last is unfinished */

    /* Other sentinel types (-76 5.3: read to 0xFF, discard): no event, no UTF-8 check. */
    exp_text(&want, "ok", 2);
    exp_end(&want);
    expect_log(c, LIT("\x01" "abc" "\xff" "\x7f\xc0\xfe\xff" "\x00" "ok" "\xff"), &want);

    /* Unfinished frames are reported as pending. */
    hb_put(&want, LIT("P"));
    hb_u64(&want, 3);
    hb_put(&want, LIT("abc"));
    exp_end(&want);
    expect_log(c, LIT("\x00" "abc"), &want);
  }
}

static void test_parser_errors(void) {
  const cfg_t lim = {76, 5}, lim3 = {75, 3};

  /* Bad UTF-8 at any byte, and a character cut off by 0xFF. */
  expect_error(&V76, LIT("\x00" "ab\xc0\xaf" "\xff"), WS_EUTF8);
  expect_error(&V76, LIT("\x00\xed\xa0\x80\xff"), WS_EUTF8);       /* a surrogate */
  expect_error(&V75, LIT("\x00\xf4\x90\x80\x80\xff"), WS_EUTF8);   /* past U+10FFFF */
  expect_error(&V76, LIT("\x00\xe2\x82\xff"), WS_EUTF8);
  expect_error(&V75, LIT("\x00" "ok" "\xff" "\x00\x80"), WS_EUTF8); /* no 0xFF needed */
  {
    /* Fail fast: the piece holding the bad byte is never delivered; one before it is. */
    ws_hixie_parser_t p;
    rec_t r;
    char in[] = "\x00" "good" "\xc0" "bad";
    memset(&r, 0, sizeof r);
    ws_hixie_parser_init(&p, 76, 0);
    CHECK_INT(ws_hixie_parser_execute(&p, &rec_settings, &r, in, sizeof in - 1), WS_EUTF8);
    CHECK_INT(r.data_calls, 0);
    ws_hixie_parser_init(&p, 76, 0);
    CHECK_INT(ws_hixie_parser_execute(&p, &rec_settings, &r, in, 5), 5);
    CHECK_INT(ws_hixie_parser_execute(&p, &rec_settings, &r, in + 5, 4), WS_EUTF8);
    CHECK_INT(r.data_calls, 1);
    CHECK_MEM(r.msg.p, r.msg.len, "good", 4);
    /* Sticky: even a good frame after it gets the error. */
    CHECK_INT(ws_hixie_parser_execute(&p, &rec_settings, &r, in, 1), WS_EUTF8);
    CHECK_INT(p.error, WS_EUTF8);
    CHECK_INT(r.data_calls, 1);
    hb_free(&r.log);
    hb_free(&r.msg);
  }

  /* max_length: exactly the limit is fine, one byte more fails, whatever the frame. */
  {
    hb_t want = {0};
    exp_text(&want, "abcde", 5);
    exp_text(&want, "", 0);
    exp_end(&want);
    expect_log(&lim, LIT("\x00" "abcde" "\xff" "\x80\x05" "vwxyz" "\x00\xff" "\x01" "12345"
                         "\xff"), &want);
  }
  expect_error(&lim, LIT("\x00" "abcdef" "\xff"), WS_ETOOBIG);
  expect_error(&lim, LIT("\x00" "abcdef"), WS_ETOOBIG);     /* before any 0xFF comes */
  expect_error(&lim, LIT("\x80\x06"), WS_ETOOBIG);          /* at the length, not after */
  expect_error(&lim, LIT("\x80\x81\x00"), WS_ETOOBIG);
  expect_error(&lim, LIT("\x01" "abcdef"), WS_ETOOBIG);     /* discarded, but bounded */
  expect_error(&lim, LIT("\x80\x80\x80\x80\x80\x86"), WS_ETOOBIG);
  {
    /* As soon as the count passes it: the 6th byte fails, not the 0xFF. */
    ws_hixie_parser_t p;
    rec_t r;
    memset(&r, 0, sizeof r);
    ws_hixie_parser_init(&p, 76, 5);
    CHECK_INT(ws_hixie_parser_execute(&p, &rec_settings, &r, LIT("\x00" "abc")), 4);
    CHECK_INT(ws_hixie_parser_execute(&p, &rec_settings, &r, LIT("de")), 2);
    CHECK_INT(ws_hixie_parser_execute(&p, &rec_settings, &r, LIT("f")), WS_ETOOBIG);
    CHECK_INT(r.data_calls, 2);
    /* ... and a length as soon as its groups pass it: 1, then 128, then 16384. */
    ws_hixie_parser_init(&p, 76, 200);
    CHECK_INT(ws_hixie_parser_execute(&p, &rec_settings, &r, LIT("\x80\x81")), 2);
    CHECK_INT(ws_hixie_parser_execute(&p, &rec_settings, &r, LIT("\x80")), 1);
    CHECK_INT(ws_hixie_parser_execute(&p, &rec_settings, &r, LIT("\x80")), WS_ETOOBIG);
    hb_free(&r.log);
    hb_free(&r.msg);
  }
  /* Whichever comes first of bad UTF-8 and the limit decides, however the input is cut. */
  expect_error(&lim3, LIT("\x00" "a\xc0" "bcd" "\xff"), WS_EUTF8);
  expect_error(&lim3, LIT("\x00" "abc\xc0" "\xff"), WS_ETOOBIG);
  expect_error(&lim3, LIT("\x00" "ab\xe2\x82" "\xff"), WS_ETOOBIG);
  expect_error(&lim3, LIT("\x00" "a\xe2\x82" "\xff"), WS_EUTF8);

  /* Without a limit, a length is still bounded by 64 bits: 2^64 - 1 is taken... */
  {
    hb_t want = {0};
    hb_put(&want, LIT("L"));
    hb_u64(&want, 0);
    expect_log(&V76, LIT("\x80\x81\xff\xff\xff\xff\xff\xff\xff\xff\x7f"), &want);
  }
  /* ... one more group is not. */
  expect_error(&V76, LIT("\x80\x81\xff\xff\xff\xff\xff\xff\xff\xff\xff\x00"), WS_ETOOBIG);
  expect_error(&V75, LIT("\x80\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x00"), WS_ETOOBIG);
  CHECK_INT(ws_err_close_code(WS_ETOOBIG), 1009);
}

/* ---- consumption and stopping ----------------------------------------------------- */

static ssize_t exec1(ws_hixie_parser_t *p, rec_t *r, const char *in, size_t len) {
  char *g = test_guard_copy(in, len);
  return ws_hixie_parser_execute(p, &rec_settings, r, g, len);
}

static void test_consumption(void) {
  ws_hixie_parser_t p;
  rec_t r;

  CHECK(sizeof p <= 32);
  memset(&r, 0, sizeof r);
  ws_hixie_parser_init(&p, 76, 0);
  CHECK_INT(exec1(&p, &r, "", 0), 0);
  /* Everything is consumed as it comes: a type byte alone, text in pieces. */
  CHECK_INT(exec1(&p, &r, "\x00", 1), 1);
  CHECK_INT(r.data_calls, 0);
  CHECK_INT(exec1(&p, &r, "He", 2), 2);
  CHECK_INT(r.data_calls, 1);
  CHECK_INT(r.fin_calls, 0);
  CHECK_INT(exec1(&p, &r, "llo\xff", 4), 4);
  CHECK_INT(r.fin_calls, 1);
  CHECK_MEM(r.log.p + 9, 5, "Hello", 5);
  /* The close frame a byte at a time. */
  CHECK_INT(exec1(&p, &r, "\xff", 1), 1);
  CHECK_INT(r.control_calls, 0);
  CHECK_INT(exec1(&p, &r, "\x00", 1), 1);
  CHECK_INT(r.control_calls, 1);
  /* 0xFF right after the last piece: one empty fin=1 call. */
  r.data_calls = 0;
  CHECK_INT(exec1(&p, &r, "\x00" "ab", 3), 3);
  CHECK_INT(exec1(&p, &r, "\xff", 1), 1);
  CHECK_INT(r.data_calls, 2);
  CHECK_INT(r.fin_calls, 2);
  hb_free(&r.log);
  hb_free(&r.msg);

  /* Stopping: the count includes the piece or frame that stopped it, no more. */
  memset(&r, 0, sizeof r);
  r.stop = 1;
  ws_hixie_parser_init(&p, 76, 0);
  {
    static const char in[] = "\x00" "Hello" "\xff" "\xff\x00" "\x00" "ab" "\xff"
                             "\x80\x01" "x" "\x01" "y" "\xff" "\x00\xff" "\x00" "abc";
    size_t off = 0;
    ssize_t k;
    CHECK_INT(k = exec1(&p, &r, in + off, sizeof in - 1 - off), 7);
    off += (size_t)k;
    CHECK_INT(r.data_calls, 1);
    CHECK_INT(k = exec1(&p, &r, in + off, sizeof in - 1 - off), 2);
    off += (size_t)k;
    CHECK_INT(r.control_calls, 1);
    CHECK_INT(k = exec1(&p, &r, in + off, sizeof in - 1 - off), 4);
    off += (size_t)k;
    /* The discarded frames give no callback, so they go with the next text frame. */
    CHECK_INT(k = exec1(&p, &r, in + off, sizeof in - 1 - off), 8);
    off += (size_t)k;
    CHECK_INT(r.fin_calls, 3);
    CHECK_INT(k = exec1(&p, &r, in + off, sizeof in - 1 - off), 4);
    off += (size_t)k;
    CHECK_INT(off, sizeof in - 1);
    CHECK_INT(r.data_calls, 4);
    CHECK_INT(r.fin_calls, 3);
    /* Stopped on an unfinished piece: the rest comes later. */
    CHECK_INT(exec1(&p, &r, "def\xff" "\x00" "z", 6), 4);
    CHECK_INT(r.fin_calls, 4);
    CHECK_MEM(r.log.p + r.log.len - 6, 6, "abcdef", 6);
    CHECK_INT(exec1(&p, &r, "", 0), 0);
  }
  hb_free(&r.log);
  hb_free(&r.msg);

  /* Callbacks may be left out. */
  {
    ws_parser_settings_t none = {NULL, NULL};
    char in[] = "\x00" "a" "\xff" "\xff\x00" "\x80\x01" "b";
    ws_hixie_parser_init(&p, 76, 0);
    CHECK_INT(ws_hixie_parser_execute(&p, &none, NULL, in, sizeof in - 1),
              (long long)(sizeof in - 1));
  }
}

/* ---- the writer ------------------------------------------------------------------ */

static void test_writer(void) {
  hb_t in = {0}, want = {0};
  CHECK_INT(WS_HIXIE_TEXT_START_LEN, 1);
  CHECK_INT(WS_HIXIE_TEXT_END_LEN, 1);
  CHECK_INT(WS_HIXIE_CLOSE_LEN, 2);
  CHECK_MEM(WS_HIXIE_TEXT_START WS_HIXIE_TEXT_END WS_HIXIE_CLOSE, 4, "\x00\xff\xff\x00", 4);
  /* What the writer makes, the parser reads back. */
  hb_put(&in, WS_HIXIE_TEXT_START, WS_HIXIE_TEXT_START_LEN);
  hb_put(&in, LIT("h\xc3\xa9llo"));
  hb_put(&in, WS_HIXIE_TEXT_END, WS_HIXIE_TEXT_END_LEN);
  hb_put(&in, WS_HIXIE_CLOSE, WS_HIXIE_CLOSE_LEN);
  exp_text(&want, LIT("h\xc3\xa9llo"));
  exp_close(&want);
  exp_end(&want);
  expect_log(&V76, in.p, in.len, &want);
  hb_free(&in);
}

/* ---- random streams ---------------------------------------------------------- */

static const char *const texts[] = {"", "a", "Hello", "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5",
                                    "\xe2\x82\xac", "\xf0\x90\x8d\x88", "\xef\xbf\xbd", " ",
                                    "\x7f", "\xc2\x80", "\x00"};

static size_t rand_len(uint64_t *seed) {
  uint64_t x = test_rand(seed);
  switch (x % 16) {
  case 0: return 0;
  case 1: return 100 + (size_t)(x >> 8) % 300;
  case 2: return (x >> 8) % 40 == 0 ? 20000 + (size_t)(x >> 16) % 50000 : 128;
  default: return (size_t)(x >> 8) % 30;
  }
}

/* Writes a -76 length: 7-bit groups, most significant first, high bit = more. */
static void put_length(hb_t *b, uint64_t n) {
  uint8_t g[10];
  int k = 0;
  do {
    g[k++] = (uint8_t)(n & 0x7F);
    n >>= 7;
  } while (n);
  while (k > 1) hb_byte(b, g[--k] | 0x80);
  hb_byte(b, g[0]);
}

/* A stream of random frames of every kind, and the log a parser must produce for it. */
static void make_stream(uint64_t *seed, hb_t *in, hb_t *want) {
  int frames = 1 + (int)(test_rand(seed) % 8), f;
  for (f = 0; f < frames; f++) {
    hb_t data = {0};
    size_t target = rand_len(seed), i;
    switch (test_rand(seed) % 6) {
    case 0: case 1: case 2: /* text */
      while (data.len < target) {
        const char *t = texts[test_rand(seed) % (sizeof texts / sizeof texts[0])];
        hb_put(&data, t, t[0] ? strlen(t) : 1);
      }
      hb_byte(in, 0x00);
      hb_put(in, data.p, data.len);
      hb_byte(in, 0xFF);
      exp_text(want, data.p, data.len);
      break;
    case 3: /* length-prefixed, any bytes, any type with the high bit */
      hb_byte(in, 0x80 | (int)(test_rand(seed) & 0x7F));
      if (in->p[in->len - 1] == 0xFF && target == 0) exp_close(want);
      put_length(in, target);
      for (i = 0; i < target; i++) hb_byte(in, (int)test_rand(seed));
      break;
    case 4: /* sentinel with another type: discarded, need not be UTF-8 */
      hb_byte(in, 1 + (int)(test_rand(seed) % 0x7F));
      for (i = 0; i < target; i++) hb_byte(in, (int)(test_rand(seed) % 0xFF));
      hb_byte(in, 0xFF);
      break;
    default:
      hb_put(in, WS_HIXIE_CLOSE, WS_HIXIE_CLOSE_LEN);
      exp_close(want);
    }
    hb_free(&data);
  }
  exp_end(want);
}

static void test_random_streams(void) {
  uint64_t seed = 0x411E76;
  int iter, good = 0, runs = 0;
  for (iter = 0; iter < 300; iter++) {
    cfg_t c = {iter & 1 ? 75 : 76, 0};
    hb_t in = {0}, want = {0}, got;
    size_t cut;
    make_stream(&seed, &in, &want);
    feed_all(&c, in.p, in.len, seed, &got);
    good += hb_eq(&got, &want);
    hb_free(&got);
    /* Damaged copies: whatever the parser makes of them, it makes the same of them
     * however they are fed. Cut short, or with one byte changed and a random limit. */
    cut = in.len ? (size_t)(test_rand(&seed) % in.len) : 0;
    feed_all(&c, in.p, cut, seed, NULL);
    if (in.len) {
      size_t at = (size_t)(test_rand(&seed) % in.len);
      in.p[at] ^= (uint8_t)(1 + test_rand(&seed) % 255);
      c.max_length = test_rand(&seed) % 2 ? 0 : 1 + test_rand(&seed) % 200;
      feed_all(&c, in.p, in.len, seed, NULL);
    }
    runs++;
    hb_free(&in);
    hb_free(&want);
  }
  CHECK_INT(good, runs);
}

void test_hixie(void) {
  test_keys();
  test_request();
  test_response();
  test_parser_events();
  test_parser_errors();
  test_consumption();
  test_writer();
  test_random_streams();
}
