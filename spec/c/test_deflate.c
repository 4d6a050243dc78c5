/* csrc/core/deflate.c: RFC 7692's examples as literal bytes (fed whole, a byte at a
 * time and in random chunks, against an unreadable page), negotiation tables for both
 * roles, round trips for every window and context setting, decompression bombs,
 * corrupt streams, context takeover and the memory it holds. */
#include <stdlib.h>

#include <zlib.h>

#include "deflate.h"
#include "test.h"

#define LIT(s) s, sizeof(s) - 1

/* ---- helpers ---------------------------------------------------------------------- */

typedef struct {
  ws_bytes_t out;
  long calls;
  size_t biggest;   /* largest single sink call */
  int fail_after;   /* > 0: the sink fails (WS_EINTERNAL) on that call */
  int keep;         /* 0: count only (for bombs) */
} sink_t;

static int sink_fn(void *ud, const char *d, size_t n) {
  sink_t *s = ud;
  s->calls++;
  if (n > s->biggest) s->biggest = n;
  if (s->fail_after && s->calls == s->fail_after) return WS_EBACKPRESSURE;
  if (s->keep) {
    if (s->out.cap - s->out.len < n) {
      size_t cap = (s->out.cap + n) * 2;
      s->out.data = realloc(s->out.data, cap);
      if (!s->out.data) abort();
      s->out.cap = cap;
    }
    memcpy(s->out.data + s->out.len, d, n);
  }
  s->out.len += n;
  return 0;
}

enum { FEED_WHOLE, FEED_BYTES, FEED_RANDOM };

/* Inflates one message fed in chunks (each chunk copied right before the unreadable
 * page), the last call with fin. Returns the error; output in *s. */
static int inflate_msg(ws_deflate_t *d, const void *in, size_t len, int mode, uint64_t *seed,
                       uint64_t max, sink_t *s) {
  const char *p = in;
  size_t off = 0;
  int r = 0;
  do {
    size_t n = len - off;
    if (mode == FEED_BYTES && n > 1) n = 1;
    else if (mode == FEED_RANDOM && n > 0) n = 1 + (size_t)(test_rand(seed) % (n < 40 ? n : 40));
    r = ws_deflate_inflate(d, test_guard_copy(p + off, n), n, off + n == len, max, sink_fn, s);
    off += n;
  } while (!r && off < len);
  return r;
}

/* A receiving state with these parameters (a server: receives with client_*). */
static void receiver(ws_deflate_t *d, int bits, int nct) {
  ws_deflate_config_t cfg;
  ws_deflate_params_t p = {0, 0, 0, 0};
  ws_deflate_config_default(&cfg);
  cfg.threshold = 0;
  p.client_max_window_bits = bits;
  p.client_no_context_takeover = nct;
  ws_deflate_init(d, &cfg, WS_ROLE_SERVER, &p);
}

/* A sending state (a server: sends with server_*). */
static void sender(ws_deflate_t *d, const ws_deflate_config_t *base, int bits, int nct) {
  ws_deflate_config_t cfg;
  ws_deflate_params_t p = {0, 0, 0, 0};
  if (base) cfg = *base;
  else {
    ws_deflate_config_default(&cfg);
    cfg.threshold = 0;
  }
  p.server_max_window_bits = bits;
  p.server_no_context_takeover = nct;
  ws_deflate_init(d, &cfg, WS_ROLE_SERVER, &p);
}

/* Each message of a sequence inflated by one receiver, in each feeding mode (a fresh
 * receiver per mode); every mode must give want (NUL-separated expectations). */
static void expect_inflate(int nct, const char *const *msgs, const size_t *lens, size_t n,
                           const char *const *want, const size_t *want_lens) {
  int mode;
  for (mode = FEED_WHOLE; mode <= FEED_RANDOM; mode++) {
    int rounds = mode == FEED_RANDOM ? 8 : 1, k;
    uint64_t seed = 42;
    for (k = 0; k < rounds; k++) {
      ws_deflate_t d;
      size_t i;
      receiver(&d, 0, nct);
      for (i = 0; i < n; i++) {
        sink_t s = {{0}, 0, 0, 0, 1};
        int r = inflate_msg(&d, msgs[i], lens[i], mode, &seed, 0, &s);
        if (r) fprintf(stderr, "  mode %d round %d message %zu (nct %d)\n", mode, k, i, nct);
        CHECK_INT(r, 0);
        CHECK_MEM(s.out.data, s.out.len, want[i], want_lens[i]);
        ws_bytes_free(&s.out);
      }
      ws_deflate_free(&d);
    }
  }
}

#define ONE(bytes, text)                                                              \
  do {                                                                                \
    static const char m_[] = bytes;                                                   \
    const char *ms_[1] = {m_}, *ws_[1] = {text};                                      \
    size_t ml_[1] = {sizeof m_ - 1}, wl_[1] = {sizeof text - 1};                      \
    expect_inflate(0, ms_, ml_, 1, ws_, wl_);                                         \
    expect_inflate(1, ms_, ml_, 1, ws_, wl_);                                         \
  } while (0)

/* ---- RFC 7692 7.2.3 ----------------------------------------------------------------- */

static void test_rfc_examples(void) {
  ws_deflate_t d;
  ws_bytes_t out = {0};
  int rsv;

  /* 7.2.3.1: "Hello" in one compressed frame, and in two fragments. */
  ONE("\xf2\x48\xcd\xc9\xc9\x07\x00", "Hello");
  {
    static const char a[] = "\xf2\x48\xcd", b[] = "\xc9\xc9\x07\x00";
    sink_t s = {{0}, 0, 0, 0, 1};
    receiver(&d, 0, 0);
    CHECK_INT(ws_deflate_inflate(&d, LIT(a), 0, 0, sink_fn, &s), 0);
    CHECK_INT(ws_deflate_inflate(&d, LIT(b), 1, 0, sink_fn, &s), 0);
    CHECK_MEM(s.out.data, s.out.len, "Hello", 5);
    ws_bytes_free(&s.out);
    ws_deflate_free(&d);
  }

  /* 7.2.3.2: the same message twice with context takeover: the second refers back. */
  {
    static const char m1[] = "\xf2\x48\xcd\xc9\xc9\x07\x00", m2[] = "\xf2\x00\x11\x00\x00";
    const char *ms[2] = {m1, m2}, *ws[2] = {"Hello", "Hello"};
    size_t ml[2] = {sizeof m1 - 1, sizeof m2 - 1}, wl[2] = {5, 5};
    expect_inflate(0, ms, ml, 2, ws, wl);
  }
  /* ... and our compressor makes exactly these bytes. */
  sender(&d, NULL, 0, 0);
  CHECK_INT(ws_deflate_compress(&d, LIT("Hello"), &out, &rsv), 0);
  CHECK_INT(rsv, WS_RSV1);
  CHECK_MEM(out.data, out.len, "\xf2\x48\xcd\xc9\xc9\x07\x00", 7);
  out.len = 0;
  CHECK_INT(ws_deflate_compress(&d, LIT("Hello"), &out, &rsv), 0);
  CHECK_MEM(out.data, out.len, "\xf2\x00\x11\x00\x00", 5);
  ws_deflate_free(&d);
  /* Without context takeover, the second is the first again. */
  sender(&d, NULL, 0, 1);
  out.len = 0;
  CHECK_INT(ws_deflate_compress(&d, LIT("Hello"), &out, &rsv), 0);
  CHECK_INT(ws_deflate_compress(&d, LIT("Hello"), &out, &rsv), 0);
  CHECK_MEM(out.data, out.len, "\xf2\x48\xcd\xc9\xc9\x07\x00\xf2\x48\xcd\xc9\xc9\x07\x00", 14);
  ws_deflate_free(&d);

  /* 7.2.3.3: a stored (uncompressed) block. */
  ONE("\x00\x05\x00\xfa\xff\x48\x65\x6c\x6c\x6f\x00", "Hello");
  /* 7.2.3.4: a block with BFINAL set, then the sender's empty stored block. */
  ONE("\xf3\x48\xcd\xc9\xc9\x07\x00\x00", "Hello");
  /* 7.2.3.5: two blocks in one message. */
  ONE("\xf2\x48\x05\x00\x00\x00\xff\xff\xca\xc9\xc9\x07\x00", "Hello");
  /* 7.2.3.6: an empty message is one 0x00. */
  ONE("\x00", "");
  sender(&d, NULL, 0, 0);
  out.len = 0;
  CHECK_INT(ws_deflate_compress(&d, "", 0, &out, &rsv), 0);
  CHECK_INT(rsv, WS_RSV1);
  CHECK_MEM(out.data, out.len, "\x00", 1);
  CHECK_INT(ws_deflate_memory(&d), 0); /* needed no stream */
  /* ... also between two messages of a context-taking stream. */
  out.len = 0;
  CHECK_INT(ws_deflate_compress(&d, LIT("Hello"), &out, &rsv), 0);
  CHECK_INT(ws_deflate_compress(&d, "", 0, &out, &rsv), 0);
  CHECK_INT(ws_deflate_compress(&d, LIT("Hello"), &out, &rsv), 0);
  CHECK_MEM(out.data, out.len, "\xf2\x48\xcd\xc9\xc9\x07\x00\x00\xf2\x00\x11\x00\x00", 13);
  ws_deflate_free(&d);
  {
    static const char m1[] = "\xf2\x48\xcd\xc9\xc9\x07\x00", m2[] = "\x00",
                      m3[] = "\xf2\x00\x11\x00\x00";
    const char *ms[3] = {m1, m2, m3}, *ws[3] = {"Hello", "", "Hello"};
    size_t ml[3] = {7, 1, 5}, wl[3] = {5, 0, 5};
    expect_inflate(0, ms, ml, 3, ws, wl);
  }
  /* An empty payload with RSV1 (no algorithm makes one) is an empty message too, and
   * leaves the stream as it was. */
  {
    static const char m1[] = "\xf2\x48\xcd\xc9\xc9\x07\x00", m3[] = "\xf2\x00\x11\x00\x00";
    const char *ms[3] = {m1, "", m3}, *ws[3] = {"Hello", "", "Hello"};
    size_t ml[3] = {7, 0, 5}, wl[3] = {5, 0, 5};
    expect_inflate(0, ms, ml, 3, ws, wl);
  }
  /* BFINAL keeps the window: a message after it may still refer back (7.2.3.4 with
   * context takeover). */
  {
    static const char m1[] = "\xf3\x48\xcd\xc9\xc9\x07\x00\x00", m2[] = "\xf2\x00\x11\x00\x00";
    const char *ms[2] = {m1, m2}, *ws[2] = {"Hello", "Hello"};
    size_t ml[2] = {8, 5}, wl[2] = {5, 5};
    expect_inflate(0, ms, ml, 2, ws, wl);
  }
  ws_bytes_free(&out);
}

/* ---- negotiation -------------------------------------------------------------------- */

static ws_ext_list_t list;

static int parse_offers(const char *s, const ws_ext_item_t **items) {
  size_t i;
  ws_ext_list_init(&list);
  if (ws_ext_parse(&list, test_guard_copy(s, strlen(s)), strlen(s)) != 0) return -1;
  for (i = 0; i < list.num_items; i++) items[i] = &list.items[i];
  return (int)list.num_items;
}

typedef struct {
  const char *offers;
  int taken;             /* index, or -1: all declined */
  const char *response;  /* when taken */
} server_case_t;

static void run_server_table(const ws_deflate_config_t *cfg, const server_case_t *t, size_t n) {
  size_t i;
  for (i = 0; i < n; i++) {
    const ws_ext_item_t *items[WS_EXT_MAX_ITEMS];
    ws_deflate_params_t p;
    char resp[256];
    size_t len = 0;
    int k = parse_offers(t[i].offers, items), got;
    CHECK(k >= 0);
    got = ws_deflate_server_negotiate(cfg, items, (size_t)k, &p);
    if (got != t[i].taken) {
      fprintf(stderr, "  offers: %s\n", t[i].offers);
      CHECK_INT(got, t[i].taken);
      continue;
    }
    if (got < 0) continue;
    CHECK_INT(ws_deflate_params_build(&p, resp, sizeof resp, &len), 0);
    if (strcmp(resp, t[i].response) != 0) fprintf(stderr, "  offers: %s\n", t[i].offers);
    CHECK_STR(resp, t[i].response);
  }
}

#define PD "permessage-deflate"

static void test_server_negotiation(void) {
  ws_deflate_config_t cfg;
  static const server_case_t defaults[] = {
      /* accepted, with what each parameter makes the answer say */
      {PD, 0, PD},
      {PD "; client_max_window_bits", 0, PD},
      {PD "; client_max_window_bits=10", 0, PD "; client_max_window_bits=10"},
      {PD "; client_max_window_bits=15", 0, PD},
      {PD "; client_max_window_bits=8", 0, PD "; client_max_window_bits=8"},
      {PD "; server_max_window_bits=10", 0, PD "; server_max_window_bits=10"},
      {PD "; server_max_window_bits=8", 0, PD "; server_max_window_bits=8"},
      {PD "; server_max_window_bits=15", 0, PD "; server_max_window_bits=15"},
      {PD "; server_no_context_takeover", 0, PD "; server_no_context_takeover"},
      {PD "; client_no_context_takeover", 0, PD "; client_no_context_takeover"},
      {PD "; server_max_window_bits=\"9\"", 0, PD "; server_max_window_bits=9"},
      {PD "; client_no_context_takeover; server_no_context_takeover; "
          "client_max_window_bits=9; server_max_window_bits=12",
       0,
       PD "; server_no_context_takeover; client_no_context_takeover; "
          "server_max_window_bits=12; client_max_window_bits=9"},
      /* declined: the first acceptable offer wins */
      {PD "; x=1", -1, NULL},
      {PD "; x", -1, NULL},
      {PD "; Server_No_Context_Takeover", -1, NULL},
      {PD "; server_no_context_takeover; server_no_context_takeover", -1, NULL},
      {PD "; client_no_context_takeover; client_no_context_takeover", -1, NULL},
      {PD "; server_max_window_bits=10; server_max_window_bits=10", -1, NULL},
      {PD "; client_max_window_bits; client_max_window_bits=10", -1, NULL},
      {PD "; server_no_context_takeover=1", -1, NULL},
      {PD "; client_no_context_takeover=\"x\"", -1, NULL},
      {PD "; server_max_window_bits", -1, NULL},
      {PD "; server_max_window_bits=7", -1, NULL},
      {PD "; server_max_window_bits=16", -1, NULL},
      {PD "; server_max_window_bits=08", -1, NULL},
      {PD "; server_max_window_bits=010", -1, NULL},
      {PD "; server_max_window_bits=+9", -1, NULL},
      {PD "; server_max_window_bits=9a", -1, NULL},
      {PD "; server_max_window_bits=0", -1, NULL},
      {PD "; client_max_window_bits=7", -1, NULL},
      {PD "; client_max_window_bits=16", -1, NULL},
      {PD "; client_max_window_bits=99999999999999999999", -1, NULL},
      {PD "; x, " PD "; server_max_window_bits=12", 1, PD "; server_max_window_bits=12"},
      {PD "; server_max_window_bits=10, " PD, 0, PD "; server_max_window_bits=10"},
      {PD "; server_max_window_bits=7, " PD "; client_max_window_bits=16, " PD
          "; client_no_context_takeover",
       2, PD "; client_no_context_takeover"},
      {PD "; a, " PD "; b", -1, NULL},
      {"", -1, NULL},
  };
  static const server_case_t limited[] = {
      /* server_max_window_bits=10, client_max_window_bits=10 */
      {PD, 0, PD "; server_max_window_bits=10"},
      {PD "; server_max_window_bits=12", 0, PD "; server_max_window_bits=10"},
      {PD "; server_max_window_bits=9", 0, PD "; server_max_window_bits=9"},
      {PD "; client_max_window_bits", 0,
       PD "; server_max_window_bits=10; client_max_window_bits=10"},
      {PD "; client_max_window_bits=12", 0,
       PD "; server_max_window_bits=10; client_max_window_bits=10"},
      {PD "; client_max_window_bits=9", 0,
       PD "; server_max_window_bits=10; client_max_window_bits=9"},
  };
  static const server_case_t imposing[] = {
      /* server and client no context takeover imposed unasked (7.1.1.1, 7.1.1.2) */
      {PD, 0, PD "; server_no_context_takeover; client_no_context_takeover"},
      {PD "; server_no_context_takeover", 0,
       PD "; server_no_context_takeover; client_no_context_takeover"},
  };

  ws_deflate_config_default(&cfg);
  CHECK_INT(ws_deflate_config_check(&cfg), 0);
  run_server_table(&cfg, defaults, sizeof defaults / sizeof defaults[0]);
  cfg.server_max_window_bits = 10;
  cfg.client_max_window_bits = 10;
  run_server_table(&cfg, limited, sizeof limited / sizeof limited[0]);
  ws_deflate_config_default(&cfg);
  cfg.server_no_context_takeover = cfg.client_no_context_takeover = 1;
  run_server_table(&cfg, imposing, sizeof imposing / sizeof imposing[0]);

  /* Configurations out of range. */
  ws_deflate_config_default(&cfg);
  cfg.server_max_window_bits = 7;
  CHECK_INT(ws_deflate_config_check(&cfg), WS_EINVAL);
  ws_deflate_config_default(&cfg);
  cfg.client_max_window_bits = 16;
  CHECK_INT(ws_deflate_config_check(&cfg), WS_EINVAL);
  cfg.client_max_window_bits = 0;
  CHECK_INT(ws_deflate_config_check(&cfg), 0);
  cfg.level = 10;
  CHECK_INT(ws_deflate_config_check(&cfg), WS_EINVAL);
  ws_deflate_config_default(&cfg);
  cfg.mem_level = 0;
  CHECK_INT(ws_deflate_config_check(&cfg), WS_EINVAL);
  ws_deflate_config_default(&cfg);
  cfg.strategy = 5;
  CHECK_INT(ws_deflate_config_check(&cfg), WS_EINVAL);
}

typedef struct {
  const char *response;
  int ok;
} client_case_t;

static void run_client_table(const ws_deflate_config_t *cfg, const char *offer,
                             const client_case_t *t, size_t n) {
  char buf[256];
  size_t len = 0, i;
  CHECK_INT(ws_deflate_client_offer(cfg, buf, sizeof buf, &len), 0);
  CHECK_STR(buf, offer);
  for (i = 0; i < n; i++) {
    const ws_ext_item_t *items[WS_EXT_MAX_ITEMS];
    ws_deflate_params_t p;
    int k = parse_offers(t[i].response, items), r;
    CHECK_INT(k, 1);
    r = ws_deflate_client_accept(cfg, items[0], &p);
    if (r != (t[i].ok ? 0 : WS_EEXTENSION)) {
      fprintf(stderr, "  response: %s\n", t[i].response);
      CHECK_INT(r, t[i].ok ? 0 : WS_EEXTENSION);
    }
  }
}

static void test_client_negotiation(void) {
  ws_deflate_config_t cfg;
  static const client_case_t defaults[] = {
      {PD, 1},
      {PD "; server_no_context_takeover", 1},   /* 7.1.1.1: even unasked */
      {PD "; client_no_context_takeover", 1},   /* 7.1.1.2: even unasked */
      {PD "; server_max_window_bits=9", 1},     /* 7.1.2.1: even unasked */
      {PD "; server_max_window_bits=15", 1},
      {PD "; client_max_window_bits=8", 1},
      {PD "; client_max_window_bits=15", 1},
      {PD "; server_no_context_takeover; client_no_context_takeover; "
          "server_max_window_bits=10; client_max_window_bits=10", 1},
      {PD "; x", 0},
      {PD "; x=1", 0},
      {PD "; server_no_context_takeover; server_no_context_takeover", 0},
      {PD "; client_max_window_bits=9; client_max_window_bits=9", 0},
      {PD "; server_no_context_takeover=1", 0},
      {PD "; client_no_context_takeover=1", 0},
      {PD "; client_max_window_bits", 0},       /* a response needs the value */
      {PD "; client_max_window_bits=7", 0},
      {PD "; client_max_window_bits=16", 0},
      {PD "; client_max_window_bits=09", 0},
      {PD "; server_max_window_bits", 0},
      {PD "; server_max_window_bits=7", 0},
      {PD "; server_max_window_bits=16", 0},
  };
  static const client_case_t not_offered[] = {
      /* client_max_window_bits not offered: a response with it fails (7.1.2.2) */
      {PD, 1},
      {PD "; client_max_window_bits=10", 0},
      {PD "; client_max_window_bits=15", 0},
  };
  static const client_case_t asked[] = {
      /* asked for server_max_window_bits=10, no server context takeover, and offered
       * client_max_window_bits=10 */
      {PD "; server_no_context_takeover; server_max_window_bits=10", 1},
      {PD "; server_no_context_takeover; server_max_window_bits=8", 1},
      {PD "; server_no_context_takeover; server_max_window_bits=10; "
          "client_max_window_bits=9", 1},
      {PD "; server_no_context_takeover; server_max_window_bits=10; "
          "client_max_window_bits=10", 1},
      {PD "; server_no_context_takeover; server_max_window_bits=10; "
          "client_max_window_bits=11", 0},
      {PD "; server_no_context_takeover; server_max_window_bits=11", 0},
      {PD "; server_no_context_takeover", 0},
      {PD "; server_max_window_bits=10", 0},
  };

  ws_deflate_config_default(&cfg);
  run_client_table(&cfg, PD "; client_max_window_bits", defaults,
                   sizeof defaults / sizeof defaults[0]);
  cfg.client_max_window_bits = 0;
  run_client_table(&cfg, PD, not_offered, sizeof not_offered / sizeof not_offered[0]);
  ws_deflate_config_default(&cfg);
  cfg.server_max_window_bits = 10;
  cfg.client_max_window_bits = 10;
  cfg.server_no_context_takeover = 1;
  run_client_table(&cfg,
                   PD "; server_no_context_takeover; server_max_window_bits=10; "
                      "client_max_window_bits=10",
                   asked, sizeof asked / sizeof asked[0]);
  cfg.client_no_context_takeover = 1;
  cfg.server_max_window_bits = 15;
  cfg.client_max_window_bits = 15;
  cfg.server_no_context_takeover = 0;
  {
    char buf[128];
    size_t len = 0;
    CHECK_INT(ws_deflate_client_offer(&cfg, buf, sizeof buf, &len), 0);
    CHECK_STR(buf, PD "; client_no_context_takeover; client_max_window_bits");
    CHECK_INT(ws_deflate_client_offer(&cfg, buf, 10, &len), WS_ENOMEM);
  }
}

/* ---- whole handshakes, then messages both ways -------------------------------------- */

static void handshake(const ws_deflate_config_t *ccfg, const ws_deflate_config_t *scfg,
                      ws_deflate_t *client, ws_deflate_t *server) {
  const ws_ext_item_t *items[WS_EXT_MAX_ITEMS];
  ws_deflate_params_t sp, cp;
  char buf[256];
  size_t len = 0;
  int k;

  CHECK_INT(ws_deflate_client_offer(ccfg, buf, sizeof buf, &len), 0);
  k = parse_offers(buf, items);
  CHECK_INT(ws_deflate_server_negotiate(scfg, items, (size_t)k, &sp), 0);
  len = 0;
  CHECK_INT(ws_deflate_params_build(&sp, buf, sizeof buf, &len), 0);
  k = parse_offers(buf, items);
  CHECK_INT(k, 1);
  CHECK_INT(ws_deflate_client_accept(ccfg, items[0], &cp), 0);
  ws_deflate_init(client, ccfg, WS_ROLE_CLIENT, &cp);
  ws_deflate_init(server, scfg, WS_ROLE_SERVER, &sp);
  /* Each side's send window is what the other inflates with, or smaller. */
  CHECK(client->send_bits <= server->recv_bits);
  CHECK(server->send_bits <= client->recv_bits);
  CHECK_INT(server->recv_nct <= client->send_nct, 1);
  CHECK_INT(client->recv_nct <= server->send_nct, 1);
}

/* Test data: text-like, repetitive at long distances, and random. */
static void make_data(char *p, size_t n, uint64_t seed, int kind) {
  size_t i;
  for (i = 0; i < n; i++) {
    if (kind == 0) p[i] = "the quick brown fox jumps over the lazy dog "[(i * 7 + seed) % 44];
    else if (kind == 1) { /* text-like bytes, each 350 of them repeated 350 bytes on */
      size_t j = i % 700 < 350 ? i : i - 350;
      p[i] = "abcdefghijklmnopqrstuvwxyz .,;!?"[((j + seed) * 2654435761u >> 7) % 32];
    }
    else p[i] = (char)test_rand(&seed);
  }
}

static void send_recv(ws_deflate_t *from, ws_deflate_t *to, const char *msg, size_t n,
                      int mode, uint64_t *seed) {
  ws_bytes_t wire = {0};
  sink_t s = {{0}, 0, 0, 0, 1};
  int rsv = -1;
  CHECK_INT(ws_deflate_compress(from, msg, n, &wire, &rsv), 0);
  if (rsv == WS_RSV1) {
    CHECK_INT(inflate_msg(to, wire.data, wire.len, mode, seed, 0, &s), 0);
    CHECK(s.out.len == n && (n == 0 || memcmp(s.out.data, msg, n) == 0));
    CHECK(s.biggest <= WS_DEFLATE_STEP);
  } else {
    CHECK_INT(rsv, 0);
    CHECK_INT(wire.len, 0);
  }
  ws_bytes_free(&wire);
  ws_bytes_free(&s.out);
}

static void test_round_trips(void) {
  static char msg[200000];
  int variant;
  uint64_t seed = 7;

  for (variant = 0; variant < 24; variant++) {
    ws_deflate_config_t ccfg, scfg;
    ws_deflate_t c, s;
    int i;
    ws_deflate_config_default(&ccfg);
    ws_deflate_config_default(&scfg);
    ccfg.threshold = scfg.threshold = variant % 3 == 0 ? 100 : 0;
    ccfg.server_max_window_bits = 8 + variant % 8;
    ccfg.client_max_window_bits = variant % 5 == 0 ? 0 : 8 + (variant * 3) % 8;
    scfg.server_max_window_bits = 15 - variant % 8;
    scfg.client_max_window_bits = 8 + (variant * 5) % 8;
    ccfg.server_no_context_takeover = variant & 1;
    scfg.client_no_context_takeover = (variant >> 1) & 1;
    ccfg.level = scfg.level = variant % 11 - 1;
    ccfg.mem_level = 1 + variant % 9;
    scfg.strategy = variant % 5;
    handshake(&ccfg, &scfg, &c, &s);
    for (i = 0; i < 12; i++) {
      size_t n = i == 0 ? 0 : i == 1 ? 50 : (size_t)(test_rand(&seed) % (i == 11 ? sizeof msg : 3000));
      int mode = i % 3;
      make_data(msg, n, seed, i % 3);
      send_recv(&c, &s, msg, n, mode, &seed);
      send_recv(&s, &c, msg, n, mode, &seed);
      if (i % 4 == 3 || (variant & 4 && i % 2)) {
        /* Parked between messages (an idle connection): only the windows stay, and the
         * next messages, which may refer back into them, still round-trip. */
        CHECK_INT(ws_deflate_park(&c), 0);
        CHECK_INT(ws_deflate_park(&s), 0);
        CHECK(c.zout == NULL || c.send_nct);
        CHECK(s.zin == NULL || s.recv_nct);
        CHECK(ws_deflate_memory(&c) <= (size_t)c.out_dict_len + c.in_dict_len + (c.zout || c.zin ? 1u << 20 : 0));
        if (!c.zout && !c.zin) CHECK_INT(ws_deflate_memory(&c), c.out_dict_len + c.in_dict_len);
        CHECK(c.out_dict_len <= 1u << 15 && s.in_dict_len <= 1u << 15);
      }
    }
    /* Between messages, a direction without context takeover holds no stream. */
    if (s.recv_nct && c.send_nct) CHECK(s.zin == NULL && c.zout == NULL);
    if (c.recv_nct && s.send_nct) CHECK(c.zin == NULL && s.zout == NULL);
    ws_deflate_free(&c);
    ws_deflate_free(&s);
    CHECK_INT(ws_deflate_memory(&c) + ws_deflate_memory(&s), 0);
  }
}

/* ---- window 8 (see the top of deflate.c) -------------------------------------------- */

static void test_window8(void) {
  static char msg[20000], back[20000];
  ws_deflate_t d, r;
  ws_bytes_t wire = {0};
  uint64_t seed = 3;
  int rsv;
  z_stream z;

  /* Repeats at distances over 256: a matching compressor would refer to them. */
  make_data(msg, sizeof msg, 5, 1);
  sender(&d, NULL, 8, 0);
  CHECK_INT(ws_deflate_compress(&d, msg, sizeof msg, &wire, &rsv), 0);
  CHECK(wire.len < sizeof msg);   /* Huffman coding still pays */
  /* zlib's own raw inflate with a 256-byte window reads it. */
  memset(&z, 0, sizeof z);
  CHECK_INT(inflateInit2(&z, -8), Z_OK);
  memcpy(wire.data + wire.len, "\x00\x00\xff\xff", 4); /* room: the buffer was bigger */
  z.next_in = (Bytef *)wire.data;
  z.avail_in = (uInt)wire.len + 4;
  z.next_out = (Bytef *)back;
  z.avail_out = sizeof back;
  CHECK_INT(inflate(&z, Z_SYNC_FLUSH), Z_OK);
  CHECK_INT(z.total_out, sizeof msg);
  CHECK(memcmp(back, msg, sizeof msg) == 0);
  inflateEnd(&z);
  /* And so does a window-8 receiver, message after message. */
  receiver(&r, 8, 0);
  send_recv(&d, &r, msg, sizeof msg, FEED_RANDOM, &seed);
  send_recv(&d, &r, msg, sizeof msg, FEED_WHOLE, &seed);
  ws_deflate_free(&d);
  ws_deflate_free(&r);
  ws_bytes_free(&wire);
}

/* ---- bombs and limits --------------------------------------------------------------- */

static void test_bombs(void) {
  size_t big = 64u << 20;
  char *zeros = calloc(1, big);
  ws_deflate_config_t cfg;
  ws_bytes_t bomb = {0};
  ws_deflate_t d;
  uint64_t seed = 9;
  int mode;

  ws_deflate_config_default(&cfg);
  cfg.level = 9;
  CHECK(zeros != NULL);
  CHECK_INT(ws_deflate_compress_shared(&cfg, 15, zeros, big, &bomb), 0);
  free(zeros);
  CHECK(bomb.len < 100000); /* 64 MiB in under 100 KB */

  for (mode = FEED_WHOLE; mode <= FEED_RANDOM; mode++) {
    sink_t s = {{0}, 0, 0, 0, 0};
    uint64_t max = 1u << 20;
    size_t off = 0;
    int r = 0;
    receiver(&d, 15, 0);
    /* Fed piece by piece, it stops within a few KB of input, at 1 MiB out. */
    while (!r && off < bomb.len) {
      size_t n = mode == FEED_WHOLE ? bomb.len : mode == FEED_BYTES ? 1 : 1 + test_rand(&seed) % 64;
      if (n > bomb.len - off) n = bomb.len - off;
      r = ws_deflate_inflate(&d, test_guard_copy(bomb.data + off, n), n,
                             off + n == bomb.len, max, sink_fn, &s);
      off += n;
    }
    CHECK_INT(r, WS_ETOOBIG);
    CHECK(s.out.len <= max);
    CHECK(s.out.len > max - WS_DEFLATE_STEP);
    CHECK(s.biggest <= WS_DEFLATE_STEP);
    if (mode != FEED_WHOLE) CHECK(off < 4096);
    /* Bounded memory: a 32 KiB window and zlib's state, nothing that grows. */
    CHECK(ws_deflate_memory(&d) == 0); /* the failed stream was dropped at once */
    CHECK_INT(ws_deflate_inflate(&d, "\x00", 1, 1, 0, sink_fn, &s), WS_ETOOBIG); /* sticky */
    CHECK_INT(ws_err_close_code(WS_ETOOBIG), 1009);
    ws_deflate_free(&d);
  }
  /* The memory held while inflating is bounded too (checked from inside the sink). */
  {
    sink_t s = {{0}, 0, 0, 0, 0};
    receiver(&d, 15, 0);
    CHECK_INT(ws_deflate_inflate(&d, bomb.data, 1000, 0, 0, sink_fn, &s), 0);
    CHECK(ws_deflate_memory(&d) > 32768 && ws_deflate_memory(&d) < 64 * 1024);
    ws_deflate_free(&d);
  }
  /* No limit: all 64 MiB come out, a step at a time. */
  {
    sink_t s = {{0}, 0, 0, 0, 0};
    receiver(&d, 15, 0);
    CHECK_INT(ws_deflate_inflate(&d, bomb.data, bomb.len, 1, 0, sink_fn, &s), 0);
    CHECK_INT(s.out.len, big);
    CHECK(s.biggest == WS_DEFLATE_STEP);
    ws_deflate_free(&d);
  }
  /* Exactly max is fine; one byte over is not. */
  {
    sink_t s = {{0}, 0, 0, 0, 1};
    receiver(&d, 15, 0);
    CHECK_INT(ws_deflate_inflate(&d, LIT("\xf2\x48\xcd\xc9\xc9\x07\x00"), 1, 5, sink_fn, &s), 0);
    CHECK_INT(ws_deflate_inflate(&d, LIT("\xf2\x00\x11\x00\x00"), 1, 4, sink_fn, &s),
              WS_ETOOBIG);
    CHECK_MEM(s.out.data, s.out.len, "Hello", 5);
    ws_bytes_free(&s.out);
    ws_deflate_free(&d);
  }
  ws_bytes_free(&bomb);
}

/* ---- corrupt streams ---------------------------------------------------------------- */

static void expect_corrupt(const char *in, size_t len) {
  int mode;
  for (mode = FEED_WHOLE; mode <= FEED_RANDOM; mode++) {
    ws_deflate_t d;
    sink_t s = {{0}, 0, 0, 0, 1};
    uint64_t seed = len;
    receiver(&d, 15, mode == FEED_BYTES);
    CHECK_INT(inflate_msg(&d, in, len, mode, &seed, 0, &s), WS_EINFLATE);
    CHECK_INT(ws_deflate_memory(&d), 0);
    /* Sticky, even for a good message. */
    CHECK_INT(ws_deflate_inflate(&d, LIT("\xf2\x48\xcd\xc9\xc9\x07\x00"), 1, 0, sink_fn, &s),
              WS_EINFLATE);
    ws_bytes_free(&s.out);
    ws_deflate_free(&d);
  }
}

static void test_corrupt(void) {
  ws_deflate_t d;
  sink_t s = {{0}, 0, 0, 0, 1};

  expect_corrupt(LIT("\x06"));                      /* BTYPE 11, reserved */
  expect_corrupt(LIT("\x07\x00"));
  expect_corrupt(LIT("\x00\x05\x00\x00\x00Hello")); /* NLEN is not ~LEN */
  expect_corrupt(LIT("\xf2\x00\x11\x00\x00"));      /* refers back past a fresh window */
  expect_corrupt(LIT("\xf2\x48\xcd"));              /* cut short: no block boundary */
  expect_corrupt(LIT("\xf2\x48\xcd\xc9\xc9\x07"));
  expect_corrupt(LIT("\x00\x05\x00\xfa\xff\x48\x65\x6c"));
  expect_corrupt(LIT("\xff\xff\xff\xff\xff\xff"));
  CHECK_INT(ws_err_close_code(WS_EINFLATE), 1007);

  /* A stream that refers back is fine with context takeover and corrupt without it:
   * the inflater is dropped after each message. */
  receiver(&d, 15, 1);
  CHECK_INT(ws_deflate_inflate(&d, LIT("\xf2\x48\xcd\xc9\xc9\x07\x00"), 1, 0, sink_fn, &s), 0);
  CHECK_INT(ws_deflate_memory(&d), 0);
  CHECK_INT(ws_deflate_inflate(&d, LIT("\xf2\x00\x11\x00\x00"), 1, 0, sink_fn, &s),
            WS_EINFLATE);
  ws_deflate_free(&d);

  /* The sink's error stops it and is returned. */
  {
    static char msg[100000];
    ws_bytes_t wire = {0};
    int rsv;
    sink_t f = {{0}, 0, 0, 2, 0};
    make_data(msg, sizeof msg, 1, 2);
    sender(&d, NULL, 0, 1);
    CHECK_INT(ws_deflate_compress(&d, msg, sizeof msg, &wire, &rsv), 0);
    ws_deflate_free(&d);
    receiver(&d, 15, 0);
    CHECK_INT(ws_deflate_inflate(&d, wire.data, wire.len, 1, 0, sink_fn, &f),
              WS_EBACKPRESSURE);
    CHECK_INT(f.calls, 2);
    CHECK_INT(ws_deflate_inflate(&d, "", 0, 1, 0, sink_fn, &f), WS_EBACKPRESSURE);
    ws_deflate_free(&d);
    ws_bytes_free(&wire);
  }
  ws_bytes_free(&s.out);
}

/* ---- context takeover and memory ---------------------------------------------------- */

static void test_context_and_memory(void) {
  static char msg[5000];
  ws_deflate_t a, b;
  ws_bytes_t w1 = {0}, w2 = {0};
  int rsv, nct;

  make_data(msg, sizeof msg, 11, 2); /* random: only the window can shrink a repeat */
  for (nct = 0; nct < 2; nct++) {
    sender(&a, NULL, 15, nct);
    w1.len = w2.len = 0;
    CHECK_INT(ws_deflate_compress(&a, msg, sizeof msg, &w1, &rsv), 0);
    CHECK_INT(ws_deflate_compress(&a, msg, sizeof msg, &w2, &rsv), 0);
    if (nct) {
      /* Nothing kept: the second message is the first again, and no memory is held. */
      CHECK_MEM(w2.data, w2.len, w1.data, w1.len);
      CHECK_INT(ws_deflate_memory(&a), 0);
      CHECK(a.zout == NULL);
    } else {
      /* The window holds the first message: the second is a few bytes of reference. */
      CHECK(w1.len > sizeof msg);
      CHECK(w2.len < 100);
      CHECK(ws_deflate_memory(&a) > 100000);
    }
    /* The receiver with the same setting reads both; memory follows the same rule. */
    receiver(&b, 15, nct);
    {
      sink_t s = {{0}, 0, 0, 0, 1};
      CHECK_INT(ws_deflate_inflate(&b, w1.data, w1.len, 1, 0, sink_fn, &s), 0);
      if (nct) CHECK_INT(ws_deflate_memory(&b), 0);
      else CHECK(ws_deflate_memory(&b) > 32768);
      CHECK_INT(ws_deflate_inflate(&b, w2.data, w2.len, 1, 0, sink_fn, &s), 0);
      CHECK_INT(s.out.len, 2 * sizeof msg);
      CHECK(memcmp(s.out.data + sizeof msg, msg, sizeof msg) == 0);
      ws_bytes_free(&s.out);
    }
    /* Mid-message, even a no-context receiver holds its stream; after fin it is gone. */
    {
      sink_t s = {{0}, 0, 0, 0, 0};
      CHECK_INT(ws_deflate_inflate(&b, w1.data, 10, 0, 0, sink_fn, &s), 0);
      CHECK(ws_deflate_memory(&b) > 0);
      CHECK_INT(ws_deflate_inflate(&b, w1.data + 10, w1.len - 10, 1, 0, sink_fn, &s), 0);
      CHECK_INT(s.out.len, sizeof msg);
      if (nct) CHECK_INT(ws_deflate_memory(&b), 0);
    }
    ws_deflate_free(&a);
    ws_deflate_free(&b);
    CHECK_INT(ws_deflate_memory(&a) + ws_deflate_memory(&b), 0);
  }

  /* The threshold: small messages go as they are and leave the stream untouched. */
  {
    ws_deflate_config_t cfg;
    ws_deflate_config_default(&cfg);
    sender(&a, &cfg, 15, 0);
    w1.len = 0;
    CHECK_INT(ws_deflate_compress(&a, msg, 1023, &w1, &rsv), 0);
    CHECK_INT(rsv, 0);
    CHECK_INT(w1.len, 0);
    CHECK_INT(ws_deflate_memory(&a), 0);
    CHECK_INT(ws_deflate_compress(&a, msg, 1024, &w1, &rsv), 0);
    CHECK_INT(rsv, WS_RSV1);
    CHECK(w1.len > 0);
    ws_deflate_free(&a);
  }
  ws_bytes_free(&w1);
  ws_bytes_free(&w2);
}

/* ---- broadcast ---------------------------------------------------------------------- */

static void test_shared(void) {
  static char msg[30000];
  ws_deflate_config_t cfg;
  ws_bytes_t once = {0}, own = {0};
  ws_deflate_t a, r;
  uint64_t seed = 1;
  int rsv, bits;

  ws_deflate_config_default(&cfg);
  make_data(msg, sizeof msg, 4, 0);
  for (bits = 8; bits <= 15; bits++) {
    once.len = own.len = 0;
    CHECK_INT(ws_deflate_compress_shared(&cfg, bits, msg, sizeof msg, &once), 0);
    /* The same bytes as a no-context sender of that window makes for itself. */
    sender(&a, NULL, bits, 1);
    a.cfg = cfg;
    a.cfg.threshold = 0;
    CHECK_INT(ws_deflate_compress(&a, msg, sizeof msg, &own, &rsv), 0);
    CHECK_MEM(once.data, once.len, own.data, own.len);
    CHECK(ws_deflate_can_share(&a, bits));
    CHECK(bits == 8 || !ws_deflate_can_share(&a, bits + 1) || bits == 15);
    ws_deflate_free(&a);
    /* A receiver that has context from earlier messages reads it too. */
    receiver(&r, 15, 0);
    sender(&a, NULL, 15, 1);
    send_recv(&a, &r, msg, 5000, FEED_WHOLE, &seed);
    {
      sink_t s = {{0}, 0, 0, 0, 1};
      CHECK_INT(inflate_msg(&r, once.data, once.len, FEED_RANDOM, &seed, 0, &s), 0);
      CHECK_MEM(s.out.data, s.out.len, msg, sizeof msg);
      ws_bytes_free(&s.out);
    }
    send_recv(&a, &r, msg, 5000, FEED_WHOLE, &seed);
    ws_deflate_free(&a);
    ws_deflate_free(&r);
  }
  /* A sender that keeps context cannot use it: its peer's window would drift. */
  sender(&a, NULL, 15, 0);
  CHECK(!ws_deflate_can_share(&a, 15));
  ws_deflate_free(&a);
  CHECK_INT(ws_deflate_compress_shared(&cfg, 7, msg, 10, &once), WS_EINVAL);
  CHECK_INT(ws_deflate_compress_shared(&cfg, 16, msg, 10, &once), WS_EINVAL);
  once.len = 0;
  CHECK_INT(ws_deflate_compress_shared(&cfg, 15, "", 0, &once), 0);
  CHECK_MEM(once.data, once.len, "\x00", 1);
  ws_bytes_free(&once);
  ws_bytes_free(&own);
}

void test_deflate(void) {
  test_rfc_examples();
  test_server_negotiation();
  test_client_negotiation();
  test_round_trips();
  test_window8();
  test_bombs();
  test_corrupt();
  test_context_and_memory();
  test_shared();
}
