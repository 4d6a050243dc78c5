/* libFuzzer target for the hixie-75/76 codec. The framing parser gets each input as
 * either draft, with and without a size limit, fed whole, a byte at a time, in chunks
 * whose sizes come from the first input bytes, and with callbacks that stop it. Every
 * way must report the same events (as a hash), consume all it is given unless stopped,
 * touch no byte it did not consume, and report only text that is UTF-8, inside the
 * buffer, within the limit and free of 0xFF. The same input, read as a request head,
 * goes through the handshake check, and an accepted request must get a response that
 * parses as a 101 and that fits exactly the length reported. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hixie.h"

#define REQUIRE(c)                                                            \
  do {                                                                        \
    if (!(c)) {                                                               \
      fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, #c);                 \
      abort();                                                                \
    }                                                                         \
  } while (0)

typedef struct {
  uint64_t events;  /* hash of whole text frames and closes, in order */
  uint8_t *msg;     /* the text frame in progress (capacity: the input's length) */
  size_t msg_len;
  int in_msg;
  uint64_t max;
  const char *base; /* the buffer of the execute call in progress */
  size_t base_len;
  uint32_t stop_seed; /* non-zero: stop now and then */
} run_t;

static uint64_t fnv(uint64_t h, const void *d, size_t n) {
  const uint8_t *p = d;
  size_t i;
  for (i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
  return h;
}

static uint64_t fnv_u64(uint64_t h, uint64_t v) { return fnv(h, &v, sizeof v); }

static int want_stop(run_t *r) {
  if (!r->stop_seed) return 0;
  r->stop_seed = r->stop_seed * 1103515245u + 12345u;
  return (r->stop_seed >> 16) % 3 == 0;
}

static int on_data(void *ud, int op, int rsv, char *d, size_t n, int fin) {
  run_t *r = ud;
  REQUIRE(d >= r->base && n <= r->base_len && (size_t)(d - r->base) <= r->base_len - n);
  REQUIRE(op == WS_OP_TEXT && rsv == 0);
  REQUIRE(n > 0 || fin);
  REQUIRE(!memchr(d, 0xFF, n));
  r->in_msg = 1;
  if (n) memcpy(r->msg + r->msg_len, d, n);
  r->msg_len += n;
  REQUIRE(!r->max || r->msg_len <= r->max);
  if (fin) {
    uint32_t st = WS_UTF8_ACCEPT;
    REQUIRE(ws_utf8_validate(&st, r->msg, r->msg_len) == 0 && st == WS_UTF8_ACCEPT);
    r->events = fnv(fnv_u64(fnv_u64(r->events, 'D'), r->msg_len), r->msg, r->msg_len);
    r->msg_len = 0;
    r->in_msg = 0;
  }
  return want_stop(r);
}

static int on_control(void *ud, int op, char *d, size_t n) {
  run_t *r = ud;
  REQUIRE(op == WS_OP_CLOSE && n == 0 && !r->in_msg);
  REQUIRE(d >= r->base && (size_t)(d - r->base) <= r->base_len);
  r->events = fnv_u64(r->events, 'C');
  return want_stop(r);
}

static const ws_parser_settings_t settings = {on_data, on_control};

/* Feeds like a caller: pending bytes are kept and fed again with the next chunk. Each
 * execute call gets an exact-size copy, so ASan sees any over-read. */
static uint64_t run(const uint8_t *in, size_t len, int version, uint64_t max,
                    const uint8_t *sizes, size_t nsizes, uint32_t stop_seed) {
  ws_hixie_parser_t p;
  run_t r;
  uint8_t *pend = malloc(len + 1);
  size_t have = 0, off = 0, si = 0;
  int err = 0;

  memset(&r, 0, sizeof r);
  r.events = 0xcbf29ce484222325ull;
  r.stop_seed = stop_seed;
  r.max = max;
  r.msg = malloc(len + 1);
  ws_hixie_parser_init(&p, version, max);
  while (!err) {
    if (off < len) {
      size_t n = len - off;
      if (nsizes) {
        n = 1 + sizes[si++ % nsizes];
        if (n > len - off) n = len - off;
      }
      memcpy(pend + have, in + off, n);
      have += n;
      off += n;
    }
    for (;;) {
      char *buf = malloc(have ? have : 1);
      ssize_t k;
      if (have) memcpy(buf, pend, have);
      r.base = buf;
      r.base_len = have;
      k = ws_hixie_parser_execute(&p, &settings, &r, buf, have);
      if (k < 0) {
        REQUIRE(k == p.error);
        REQUIRE(k == WS_EUTF8 || k == WS_ETOOBIG);
        err = (int)k;
        free(buf);
        break;
      }
      REQUIRE((size_t)k <= have);
      /* This parser never waits for more input: only a stop leaves bytes behind. */
      REQUIRE((size_t)k == have || stop_seed);
      /* Bytes not consumed are handed back untouched. */
      REQUIRE(memcmp(buf + k, pend + k, have - (size_t)k) == 0);
      memmove(pend, pend + k, have - (size_t)k);
      have -= (size_t)k;
      free(buf);
      if (k == 0 || have == 0) break;
    }
    if (off == len) break;
  }
  free(pend);
  if (err) {
    char x = 0;
    free(r.msg);
    REQUIRE(ws_hixie_parser_execute(&p, &settings, &r, &x, 1) == err);
    return fnv_u64(r.events, (uint64_t)(int64_t)err);
  }
  if (r.in_msg) r.events = fnv(fnv_u64(r.events, 'P'), r.msg, r.msg_len);
  free(r.msg);
  return fnv_u64(fnv_u64(r.events, 'L'), have);
}

/* The input as a request head: the check and, when it accepts, the response. */
static void handshake(const uint8_t *data, size_t size) {
  ws_header_t hdrs[32];
  ws_http_head_t h;
  char *copy = malloc(size ? size : 1);
  const char *why;
  int n, version, status, secure;

  if (size) memcpy(copy, data, size);
  memset(&h, 0, sizeof h);
  h.headers = hdrs;
  h.num_headers = 32;
  n = ws_http_parse_request(copy, size, &h);
  if (n > 0) {
    uint8_t key3[WS_HIXIE76_KEY3_LEN] = {0};
    size_t cap = 512 + 2 * size, len;
    char *out = malloc(cap);
    status = ws_hixie_check_request(&h, &version, &why);
    REQUIRE(status == 0 || (status == 400 && why && version == 0));
    if (status == 0) {
      REQUIRE(version == 75 || version == 76);
      memcpy(key3, copy + n, size - (size_t)n < sizeof key3 ? size - (size_t)n : sizeof key3);
      for (secure = 0; secure < 2; secure++) {
        int m = ws_hixie_response(out, cap, &h, version, secure, "chat", "X: y\r\n", key3);
        ws_header_t rh[32];
        ws_http_head_t r;
        char *exact;
        REQUIRE(m > 0 && (size_t)m <= cap);
        len = (size_t)m;
        /* It parses as a 101 whose head ends where the -76 answer begins. */
        memset(&r, 0, sizeof r);
        r.headers = rh;
        r.num_headers = 32;
        REQUIRE(ws_http_parse_response(out, len, &r) ==
                (int)(len - (version == 76 ? WS_HIXIE76_ANSWER_LEN : 0)));
        REQUIRE(r.status == 101);
        REQUIRE(ws_http_find(&r, version == 76 ? "Sec-WebSocket-Location" : "WebSocket-Location"));
        /* The length is exact: it fits that many bytes and not one fewer. */
        exact = malloc(len);
        REQUIRE(ws_hixie_response(exact, len, &h, version, secure, "chat", "X: y\r\n", key3) == m);
        REQUIRE(memcmp(exact, out, len) == 0);
        REQUIRE(ws_hixie_response(exact, len - 1, &h, version, secure, "chat", "X: y\r\n",
                                  key3) == WS_EHEADTOOBIG);
        free(exact);
      }
    }
    free(out);
  }
  free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const uint8_t one = 0;
  const uint8_t *sizes, *in;
  size_t nsizes, len;
  int version, lim;

  if (size < 1) return 0;
  /* First byte: how many of the next bytes are chunk sizes (low 3 bits), the draft
   * (bit 3) and a size limit (high bits). */
  nsizes = data[0] & 7;
  if (size < 1 + nsizes) return 0;
  version = data[0] & 8 ? 75 : 76;
  sizes = data + 1;
  in = data + 1 + nsizes;
  len = size - 1 - nsizes;

  for (lim = 0; lim < 2; lim++) {
    uint64_t max = lim ? 1 + (data[0] >> 4) * 7 : 0;
    uint64_t whole = run(in, len, version, max, NULL, 0, 0);
    REQUIRE(run(in, len, version, max, &one, 1, 0) == whole);
    if (nsizes) REQUIRE(run(in, len, version, max, sizes, nsizes, 0) == whole);
    REQUIRE(run(in, len, version, max, sizes, nsizes, 0x9e3779b9u ^ (uint32_t)size) == whole);
  }
  handshake(data, size);
  handshake(in, len);
  return 0;
}
