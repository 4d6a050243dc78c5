/* libFuzzer target for permessage-deflate's inflate path and the extension header
 * parser. Byte 0 chooses: bit 7 set, the rest is a Sec-WebSocket-Extensions value,
 * parsed from an exact-size copy and negotiated in both roles; else the rest is a
 * series of compressed messages (each a length byte and that many bytes), inflated by
 * one receiver whole and by another in chunks: both must report the same output and
 * error, never pass the size limit, never hand the sink more than a step, and hold no
 * zlib memory between messages without context takeover. What inflates is compressed
 * again and must come back the same. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deflate.h"

#define REQUIRE(c)                                                            \
  do {                                                                        \
    if (!(c)) {                                                               \
      fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, #c);                 \
      abort();                                                                \
    }                                                                         \
  } while (0)

#define INSIDE(p, n, buf, len) \
  ((p) >= (buf) && (size_t)((p) - (buf)) <= (len) && (n) <= (len) - (size_t)((p) - (buf)))

typedef struct {
  uint64_t hash, len;
  uint64_t max;
  char *keep;   /* the output, up to keep_cap bytes */
  size_t keep_cap;
} out_t;

static int sink(void *ud, const char *d, size_t n) {
  out_t *o = ud;
  size_t i;
  REQUIRE(n > 0 && n <= WS_DEFLATE_STEP);
  for (i = 0; i < n; i++) o->hash = (o->hash ^ (uint8_t)d[i]) * 0x100000001b3ull;
  if (o->keep && o->len + n <= o->keep_cap) memcpy(o->keep + o->len, d, n);
  o->len += n;
  REQUIRE(!o->max || o->len <= o->max);
  return 0;
}

static void check_list(const ws_ext_list_t *l, const char *buf, size_t len) {
  size_t i, j;
  for (i = 0; i < l->num_items; i++) {
    const ws_ext_item_t *it = &l->items[i];
    REQUIRE(it->name_len > 0 && INSIDE(it->name, it->name_len, buf, len));
    for (j = 0; j < it->num_params; j++) {
      const ws_ext_param_t *pa = &it->params[j];
      REQUIRE(pa->name_len > 0 && INSIDE(pa->name, pa->name_len, buf, len));
      if (pa->value)
        REQUIRE(pa->value_len > 0 && (INSIDE(pa->value, pa->value_len, buf, len) ||
                                      INSIDE(pa->value, pa->value_len, l->scratch,
                                             l->scratch_len)));
    }
  }
}

static void fuzz_header(const uint8_t *data, size_t size) {
  static ws_ext_list_t l, back;
  const ws_ext_item_t *mine[WS_EXT_MAX_ITEMS], *one[1];
  ws_deflate_config_t cfg;
  char *buf = malloc(size ? size : 1), resp[512];
  size_t i, k = 0, len;
  int r, round;

  if (size) memcpy(buf, data, size);
  ws_ext_list_init(&l);
  r = ws_ext_parse(&l, buf, size);
  REQUIRE(r == 0 || r == WS_EHTTP || r == WS_EHEADTOOBIG);
  if (r < 0) REQUIRE(l.num_items == 0 && l.num_params == 0 && l.scratch_len == 0);
  if (r == 0) {
    check_list(&l, buf, size);
    for (i = 0; i < l.num_items; i++)
      if (ws_ext_name_is(l.items[i].name, l.items[i].name_len, WS_DEFLATE_NAME))
        mine[k++] = &l.items[i];
    for (round = 0; round < 2; round++) {
      ws_deflate_params_t p;
      int taken;
      ws_deflate_config_default(&cfg);
      if (round) {
        cfg.server_max_window_bits = 9;
        cfg.client_max_window_bits = 10;
        cfg.server_no_context_takeover = 1;
      }
      taken = ws_deflate_server_negotiate(&cfg, mine, k, &p);
      REQUIRE(taken >= -1 && taken < (int)k);
      if (taken >= 0) {
        /* The response parses back, and is itself an offer a server accepts. */
        len = 0;
        REQUIRE(ws_deflate_params_build(&p, resp, sizeof resp, &len) == 0);
        ws_ext_list_init(&back);
        REQUIRE(ws_ext_parse(&back, resp, len) == 0 && back.num_items == 1);
        one[0] = &back.items[0];
        REQUIRE(ws_deflate_server_negotiate(&cfg, one, 1, &p) == 0);
      }
    }
    for (i = 0; i < l.num_items; i++) {
      ws_deflate_params_t p;
      r = ws_deflate_client_accept(&cfg, &l.items[i], &p);
      REQUIRE(r == 0 || r == WS_EEXTENSION);
    }
    {
      ws_ext_use_t use[1] = {{&ws_deflate_extension, &cfg, NULL}};
      r = ws_ext_client_accept(use, 1, &l);
      REQUIRE(r == 0 || r == WS_EEXTENSION);
      if (r < 0) REQUIRE(use[0].state == NULL);
      ws_ext_release(use, 1);
      REQUIRE(ws_ext_server_negotiate(use, 1, &l, resp, sizeof resp, &len) == 0);
      ws_ext_release(use, 1);
    }
  }
  free(buf);
}

static void fuzz_messages(uint8_t flags, const uint8_t *data, size_t size) {
  static const uint64_t maxes[4] = {0, 100, 5000, 1 << 20};
  ws_deflate_config_t cfg;
  ws_deflate_params_t p = {0, 0, 0, 0};
  ws_deflate_t whole, chunked;
  uint64_t max = maxes[(flags >> 4) & 3];
  uint32_t rng = flags * 2654435761u + 1;
  size_t pos = 0;
  int err = 0;

  ws_deflate_config_default(&cfg);
  cfg.threshold = 0;
  p.client_no_context_takeover = flags & 1;
  p.client_max_window_bits = 8 + ((flags >> 1) & 7);
  ws_deflate_init(&whole, &cfg, WS_ROLE_SERVER, &p);
  ws_deflate_init(&chunked, &cfg, WS_ROLE_SERVER, &p);

  while (pos < size && !err) {
    size_t n = data[pos++], off = 0;
    out_t a = {0xcbf29ce484222325ull, 0, max, NULL, 0}, b = a;
    char *msg;
    int e2 = 0;
    if (n > size - pos) n = size - pos;
    msg = malloc(n ? n : 1);
    if (n) memcpy(msg, data + pos, n);
    a.keep = malloc(4096);
    a.keep_cap = 4096;
    err = ws_deflate_inflate(&whole, msg, n, 1, max, sink, &a);
    do {
      size_t k = n - off;
      char *piece;
      rng = rng * 1103515245u + 12345u;
      if (k > 1) k = 1 + (rng >> 16) % k;
      piece = malloc(k ? k : 1);
      if (k) memcpy(piece, msg + off, k);
      e2 = ws_deflate_inflate(&chunked, piece, k, off + k == n, max, sink, &b);
      free(piece);
      off += k;
    } while (!e2 && off < n);
    REQUIRE(err == 0 || err == WS_EINFLATE || err == WS_ETOOBIG);
    if (err != e2) {
      /* zlib lets a distance past a small window through when the bytes it points at
       * are in the same call's output, so a peer breaking its window may be caught
       * only in some cuts of the input. With 15 bits, no distance can be too far. */
      REQUIRE(p.client_max_window_bits < 15 && (err == WS_EINFLATE || e2 == WS_EINFLATE));
      free(a.keep);
      free(msg);
      break;
    }
    /* Output before an error depends on where the input was cut; after none, not. */
    if (!err) REQUIRE(a.len == b.len && a.hash == b.hash);
    if (err) {
      REQUIRE(ws_deflate_memory(&whole) == 0);
      REQUIRE(ws_deflate_inflate(&whole, "", 0, 1, max, sink, &a) == err);
    } else {
      if (p.client_no_context_takeover) REQUIRE(ws_deflate_memory(&whole) == 0);
      if (a.len <= a.keep_cap) {
        /* What came out compresses and inflates back to itself. */
        ws_deflate_t s, r;
        ws_deflate_params_t q = {1, 1, 0, 0};
        ws_bytes_t w = {0};
        out_t c = {0xcbf29ce484222325ull, 0, 0, NULL, 0};
        int rsv;
        q.server_max_window_bits = p.client_max_window_bits;
        ws_deflate_init(&s, &cfg, WS_ROLE_SERVER, &q);
        ws_deflate_init(&r, &cfg, WS_ROLE_CLIENT, &q);
        REQUIRE(ws_deflate_compress(&s, a.keep, (size_t)a.len, &w, &rsv) == 0);
        REQUIRE(rsv == WS_RSV1);
        REQUIRE(ws_deflate_inflate(&r, w.data, w.len, 1, 0, sink, &c) == 0);
        REQUIRE(c.len == a.len && c.hash == a.hash);
        REQUIRE(ws_deflate_memory(&s) == 0 && ws_deflate_memory(&r) == 0);
        ws_bytes_free(&w);
        ws_deflate_free(&s);
        ws_deflate_free(&r);
      }
    }
    free(a.keep);
    free(msg);
    pos += n;
  }
  ws_deflate_free(&whole);
  ws_deflate_free(&chunked);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0) return 0;
  if (data[0] & 0x80) fuzz_header(data + 1, size - 1);
  else fuzz_messages(data[0], data + 1, size - 1);
  return 0;
}
