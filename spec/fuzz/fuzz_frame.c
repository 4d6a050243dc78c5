/* libFuzzer target for the frame parser. Each input is parsed in both roles, with and
 * without RSV1 allowed, with and without a size limit, and fed whole, a byte at a
 * time, in chunks whose sizes come from the first input bytes, and with callbacks that
 * stop the parser. Every way must report the same events (as a hash), consume no more
 * than it was given, touch no byte it did not consume, and report data only from
 * inside the buffer it was handed. */
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
  uint64_t events; /* hash of whole messages and control frames, in order */
  uint64_t msg;    /* hash of the message in progress */
  uint64_t msg_len;
  int in_msg, msg_op, msg_rsv;
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
  REQUIRE(op == WS_OP_TEXT || op == WS_OP_BINARY);
  REQUIRE(n > 0 || fin);
  if (!r->in_msg) {
    r->in_msg = 1;
    r->msg_op = op;
    r->msg_rsv = rsv;
    r->msg = 0xcbf29ce484222325ull;
    r->msg_len = 0;
  }
  REQUIRE(op == r->msg_op && rsv == r->msg_rsv);
  r->msg = fnv(r->msg, d, n);
  r->msg_len += n;
  if (fin) {
    if (op == WS_OP_TEXT && !(rsv & WS_RSV1)) {
      /* The parser said this message is UTF-8; check the claim on the last chunk only
       * when it is the whole message. */
      if (r->msg_len == n) {
        uint32_t st = WS_UTF8_ACCEPT;
        REQUIRE(ws_utf8_validate(&st, (const uint8_t *)d, n) == 0 && st == WS_UTF8_ACCEPT);
      }
    }
    r->events = fnv_u64(fnv_u64(fnv_u64(r->events, 'D' | op << 8 | rsv << 16), r->msg_len),
                        r->msg);
    r->in_msg = 0;
  }
  return want_stop(r);
}

static int on_control(void *ud, int op, char *d, size_t n) {
  run_t *r = ud;
  unsigned code;
  const char *reason;
  size_t rlen;
  REQUIRE(d >= r->base && n <= WS_MAX_CONTROL && (size_t)(d - r->base) <= r->base_len - n);
  REQUIRE(op == WS_OP_CLOSE || op == WS_OP_PING || op == WS_OP_PONG);
  if (op == WS_OP_CLOSE) {
    int e = ws_close_parse(d, n, &code, &reason, &rlen);
    REQUIRE(e == 0 || e == WS_EPROTOCOL || e == WS_EUTF8);
    if (e == 0) {
      char out[WS_MAX_CONTROL];
      size_t m = ws_close_build(out, code, reason, rlen);
      REQUIRE(m == n && (n == 0 || memcmp(out, d, n) == 0));
    }
  }
  r->events = fnv(fnv_u64(fnv_u64(r->events, 'C' | op << 8), n), d, n);
  return want_stop(r);
}

static const ws_parser_settings_t settings = {on_data, on_control};

/* Feeds like a caller: pending bytes are kept and fed again with the next chunk. Each
 * execute call gets an exact-size copy, so ASan sees any over-read. */
static uint64_t run(const uint8_t *in, size_t len, int role, int rsv, uint64_t max,
                    const uint8_t *sizes, size_t nsizes, uint32_t stop_seed) {
  ws_parser_t p;
  run_t r;
  uint8_t *pend = malloc(len + 1);
  size_t have = 0, off = 0, si = 0;
  int err = 0;

  memset(&r, 0, sizeof r);
  r.events = 0xcbf29ce484222325ull;
  r.stop_seed = stop_seed;
  ws_parser_init(&p, role, max);
  p.rsv_allowed = (uint8_t)rsv;
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
      k = ws_parser_execute(&p, &settings, &r, buf, have);
      if (k < 0) {
        REQUIRE(k == p.error);
        REQUIRE(k == WS_EPROTOCOL || k == WS_EUTF8 || k == WS_ETOOBIG);
        err = (int)k;
        free(buf);
        break;
      }
      REQUIRE((size_t)k <= have);
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
    REQUIRE(ws_parser_execute(&p, &settings, &r, &x, 1) == err);
    return fnv_u64(r.events, (uint64_t)(int64_t)err);
  }
  if (r.in_msg) r.events = fnv_u64(fnv_u64(r.events, 'P'), r.msg);
  return fnv_u64(fnv_u64(r.events, 'L'), have);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const uint8_t one = 0;
  const uint8_t *sizes = data, *in;
  size_t nsizes, len;
  int role, rsv, lim;

  if (size < 1) return 0;
  /* First byte: how many of the next bytes are chunk sizes (0-7). */
  nsizes = data[0] & 7;
  if (size < 1 + nsizes) return 0;
  sizes = data + 1;
  in = data + 1 + nsizes;
  len = size - 1 - nsizes;

  for (role = 0; role < 2; role++) {
    for (rsv = 0; rsv <= WS_RSV1; rsv += WS_RSV1) {
      for (lim = 0; lim < 2; lim++) {
        uint64_t max = lim ? 1 + (data[0] >> 3) * 7 : 0;
        uint64_t whole = run(in, len, role, rsv, max, NULL, 0, 0);
        REQUIRE(run(in, len, role, rsv, max, &one, 1, 0) == whole);
        if (nsizes) REQUIRE(run(in, len, role, rsv, max, sizes, nsizes, 0) == whole);
        REQUIRE(run(in, len, role, rsv, max, sizes, nsizes, 0x9e3779b9u ^ (uint32_t)size) ==
                whole);
      }
    }
  }
  return 0;
}
