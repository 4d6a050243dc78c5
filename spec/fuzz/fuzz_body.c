/* libFuzzer target for request bodies: a request head is parsed, its framing decided
 * (with and without a body limit), and the bytes after the head fed to the body parser
 * whole, a byte at a time, in chunks whose sizes come from the first input bytes, and
 * with callbacks that stop it. Every way must give the same bytes, error and end; no
 * call may consume more than it was given, deliver more than it consumed or data from
 * outside its buffer; done and errors are sticky. */
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

typedef struct {
  uint64_t hash, bytes; /* of the body bytes delivered */
  const char *base;     /* the buffer of the execute call in progress */
  size_t base_len;
  uint32_t stop_seed;   /* non-zero: stop now and then */
} sink_t;

typedef struct {
  int err;
  size_t used;
  int done;
  uint64_t hash, bytes;
} outcome_t;

static uint64_t fnv(uint64_t h, const void *d, size_t n) {
  const uint8_t *p = d;
  size_t i;
  for (i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
  return h;
}

static int on_data(void *ud, const char *d, size_t n) {
  sink_t *s = ud;
  REQUIRE(n > 0);
  REQUIRE(d >= s->base && n <= s->base_len && (size_t)(d - s->base) <= s->base_len - n);
  s->hash = fnv(s->hash, d, n);
  s->bytes += n;
  if (!s->stop_seed) return 0;
  s->stop_seed = s->stop_seed * 1103515245u + 12345u;
  return (s->stop_seed >> 16) % 3 == 0;
}

/* Feeds like a caller: what a stopped call did not take is fed again; the bytes after
 * the body are left for the next request. Each call gets an exact-size copy. */
static outcome_t run(const ws_http_head_t *h, uint64_t max, const uint8_t *in, size_t len,
                     const uint8_t *sizes, size_t nsizes, uint32_t stop_seed) {
  ws_http_body_t b, before;
  sink_t s;
  outcome_t o;
  const char *why;
  size_t si = 0;

  memset(&o, 0, sizeof o);
  memset(&s, 0, sizeof s);
  s.hash = 0xcbf29ce484222325ull;
  s.stop_seed = stop_seed;
  REQUIRE(ws_http_body_init(&b, h, max, &why) == 0 && why == NULL);
  while (o.used < len && !b.done) {
    size_t n = len - o.used;
    char *buf;
    ssize_t k;
    if (nsizes) {
      n = 1 + sizes[si++ % nsizes];
      if (n > len - o.used) n = len - o.used;
    }
    buf = malloc(n);
    memcpy(buf, in + o.used, n);
    s.base = buf;
    s.base_len = n;
    k = ws_http_body_execute(&b, buf, n, on_data, &s);
    free(buf);
    if (k < 0) {
      char x = '0';
      REQUIRE(k == b.error);
      REQUIRE(k == WS_EHTTP || k == WS_ETOOBIG || k == WS_EHEADTOOBIG);
      REQUIRE(b.kind == WS_BODY_CHUNKED && !b.keep_alive && !b.done);
      REQUIRE(ws_http_body_execute(&b, &x, 1, on_data, &s) == k);
      o.err = (int)k;
      break;
    }
    REQUIRE((size_t)k <= n);
    /* Short only when the body ended or a callback said stop; never stuck. */
    REQUIRE((size_t)k == n || b.done || stop_seed);
    REQUIRE(k > 0 || b.done);
    o.used += (size_t)k;
    REQUIRE(s.bytes == b.received && b.received <= o.used);
    if (max) REQUIRE(b.received <= max);
  }
  if (b.kind == WS_BODY_LENGTH) {
    REQUIRE(b.received == o.used);
    REQUIRE(b.done == (b.received == b.length));
  }
  if (b.kind == WS_BODY_NONE) REQUIRE(o.used == 0 && b.done);
  if (b.kind == WS_BODY_CHUNKED && b.done && !o.err)
    REQUIRE(o.used >= 5 && memcmp(in + o.used - 2, "\r\n", 2) == 0);
  if (b.done) {
    char x = '0';
    before = b;
    REQUIRE(ws_http_body_execute(&b, &x, 1, on_data, &s) == 0);
    REQUIRE(memcmp(&before, &b, sizeof b) == 0);
  }
  o.done = b.done;
  o.hash = s.hash;
  o.bytes = s.bytes;
  return o;
}

static void same(outcome_t a, outcome_t b) {
  REQUIRE(a.err == b.err && a.done == b.done && a.hash == b.hash && a.bytes == b.bytes);
  if (!a.err) REQUIRE(a.used == b.used);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const uint8_t one = 0;
  static const uint64_t limits[4] = {7, 100, 4096, 1 << 20};
  ws_header_t hdrs[32];
  ws_http_head_t h;
  const uint8_t *sizes, *in;
  size_t nsizes, len;
  char *buf;
  int r, lim;

  if (size < 1) return 0;
  /* First byte: bits 0-2 how many of the next bytes are chunk sizes; bits 3-4 a body
   * limit. The rest is a request head and what follows it. */
  nsizes = data[0] & 7;
  if (size < 1 + nsizes) return 0;
  sizes = data + 1;
  in = data + 1 + nsizes;
  len = size - 1 - nsizes;

  buf = malloc(len ? len : 1);
  if (len) memcpy(buf, in, len);
  memset(&h, 0, sizeof h);
  h.headers = hdrs;
  h.num_headers = 32;
  r = ws_http_parse_request(buf, len, &h);
  if (r > 0) {
    const uint8_t *body = in + r;
    size_t body_len = len - (size_t)r;
    for (lim = 0; lim < 2; lim++) {
      uint64_t max = lim ? limits[(data[0] >> 3) & 3] : 0;
      ws_http_body_t b;
      const char *why = NULL;
      int st = ws_http_body_init(&b, &h, max, &why);
      REQUIRE(st == 0 || st == 400 || st == 413 || st == 501);
      if (st) {
        char x = '0';
        REQUIRE(why != NULL && !b.keep_alive && b.done && b.kind == WS_BODY_NONE);
        REQUIRE(ws_http_body_execute(&b, &x, 1, NULL, NULL) < 0);
        if (st == 413) REQUIRE(ws_http_find(&h, "Content-Length"));
        if (st == 501) REQUIRE(ws_http_find(&h, "Transfer-Encoding"));
        continue;
      }
      REQUIRE(why == NULL);
      REQUIRE(b.kind == WS_BODY_NONE || b.kind == WS_BODY_LENGTH || b.kind == WS_BODY_CHUNKED);
      if (b.kind == WS_BODY_CHUNKED) REQUIRE(h.minor_version >= 1);
      if (b.kind == WS_BODY_LENGTH && max) REQUIRE(b.length <= max);
      if (b.expect_continue) REQUIRE(!b.done && h.minor_version >= 1);
      if (!h.minor_version && b.keep_alive) REQUIRE(ws_http_find(&h, "Connection"));
      {
        outcome_t whole = run(&h, max, body, body_len, NULL, 0, 0);
        same(run(&h, max, body, body_len, &one, 1, 0), whole);
        if (nsizes) same(run(&h, max, body, body_len, sizes, nsizes, 0), whole);
        same(run(&h, max, body, body_len, sizes, nsizes, 0x9e3779b9u ^ (uint32_t)size), whole);
      }
    }
  }
  free(buf);
  return 0;
}
