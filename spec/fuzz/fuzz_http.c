/* libFuzzer target for the HTTP head parser and the handshake checks. The input is
 * parsed as a request and as a response from an exact-size copy (so ASan sees any
 * over-read), with a small and a large header array. A head that parses must point
 * only into the input, parse again alone to the same length, and its proper prefixes
 * must need more input. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ws.h"

#define REQUIRE(c)                                                            \
  do {                                                                        \
    if (!(c)) {                                                               \
      fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, #c);                 \
      abort();                                                                \
    }                                                                         \
  } while (0)

#define INSIDE(p, n, buf, len) \
  ((n) == 0 || ((p) >= (buf) && (size_t)((p) - (buf)) <= (len) && (n) <= (len) - (size_t)((p) - (buf))))

typedef int (*parse_fn)(const char *, size_t, ws_http_head_t *);

static int parse(parse_fn f, const uint8_t *data, size_t len, ws_header_t *hdrs, size_t cap,
                 ws_http_head_t *h, char **copy) {
  char *buf = malloc(len ? len : 1);
  int r;
  if (len) memcpy(buf, data, len);
  memset(h, 0, sizeof *h);
  h->headers = hdrs;
  h->num_headers = cap;
  r = f(buf, len, h);
  *copy = buf;
  return r;
}

static void check(parse_fn f, int response, const uint8_t *data, size_t len, size_t cap) {
  ws_header_t hdrs[32], hdrs2[32];
  ws_http_head_t h, h2;
  char *buf, *buf2;
  int r = parse(f, data, len, hdrs, cap, &h, &buf);
  size_t i;

  REQUIRE(r == WS_EAGAIN || r == WS_EHTTP || r == WS_EHEADTOOBIG || r > 0);
  if (r == WS_EAGAIN || r == WS_EHEADTOOBIG) REQUIRE(h.num_headers == cap);
  if (r > 0) {
    REQUIRE((size_t)r <= len);
    REQUIRE(h.num_headers <= cap);
    REQUIRE(h.minor_version >= 0 && h.minor_version <= 9);
    if (response) REQUIRE(h.status >= 0 && h.status <= 999);
    REQUIRE(INSIDE(h.method, h.method_len, buf, (size_t)r));
    REQUIRE(INSIDE(h.target, h.target_len, buf, (size_t)r));
    REQUIRE(INSIDE(h.reason, h.reason_len, buf, (size_t)r));
    for (i = 0; i < h.num_headers; i++) {
      const ws_header_t *hd = &h.headers[i];
      REQUIRE(hd->name_len > 0 && INSIDE(hd->name, hd->name_len, buf, (size_t)r));
      REQUIRE(INSIDE(hd->value, hd->value_len, buf, (size_t)r));
      REQUIRE(ws_http_find(&h, "x") == NULL || ws_http_find(&h, "x")->name_len == 1);
      (void)ws_http_has_token(hd->value, hd->value_len, "upgrade");
    }
    /* The head alone parses the same; one byte less needs more. */
    REQUIRE(parse(f, data, (size_t)r, hdrs2, cap, &h2, &buf2) == r);
    REQUIRE(h2.num_headers == h.num_headers);
    free(buf2);
    REQUIRE(parse(f, data, (size_t)r - 1, hdrs2, cap, &h2, &buf2) == WS_EAGAIN);
    free(buf2);

    if (!response) {
      int version = -1, st;
      const char *why = NULL;
      (void)ws_handshake_is_upgrade(&h);
      st = ws_handshake_check_request(&h, &version, &why);
      REQUIRE((st == 0 && (version == 7 || version == 8 || version == 13) && !why) ||
              ((st == 400 || st == 426) && why));
    } else {
      const char *why = NULL;
      int st = ws_handshake_check_response(&h, "dGhlIHNhbXBsZSBub25jZQ==", "chat, superchat",
                                           &why);
      REQUIRE((st == 0 && !why) || (st == WS_EHANDSHAKE && why));
      st = ws_handshake_check_response(&h, "dGhlIHNhbXBsZSBub25jZQ==", NULL, &why);
      REQUIRE(st == 0 || st == WS_EHANDSHAKE);
    }
  }
  free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  check(ws_http_parse_request, 0, data, size, 3);
  check(ws_http_parse_request, 0, data, size, 32);
  check(ws_http_parse_response, 1, data, size, 3);
  check(ws_http_parse_response, 1, data, size, 32);
  return 0;
}
