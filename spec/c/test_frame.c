/* csrc/core/frame.c: the parser against RFC 6455's examples and every rule of section
 * 5, fed whole, a byte at a time and in random chunks, with and without callbacks that
 * stop it; the header writer; masking. */
#include <stdlib.h>

#include "test.h"
#include "ws.h"

/* ---- the event log --------------------------------------------------------- */

/* Records what the parser reports: 'D' op rsv len data for each whole message (its
 * chunks joined), 'C' op len data for each control frame, then at the end either
 * 'E' err, or 'P' and the data of an unfinished message and 'L' and the count of bytes
 * the parser left unconsumed. Two runs behave the same iff their logs are equal. */
typedef struct {
  tbuf_t log, msg;
  int in_msg, msg_op, msg_rsv;
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
  if (!r->in_msg) {
    r->in_msg = 1;
    r->msg_op = op;
    r->msg_rsv = rsv;
  } else if (op != r->msg_op || rsv != r->msg_rsv) {
    r->misuse++; /* opcode and rsv are the message's, on every chunk */
  }
  if (op != WS_OP_TEXT && op != WS_OP_BINARY) r->misuse++;
  if (n == 0 && !fin) r->misuse++; /* an empty chunk only to end a message */
  tb_put(&r->msg, d, n);
  if (fin) {
    r->fin_calls++;
    tb_byte(&r->log, 'D');
    tb_byte(&r->log, op);
    tb_byte(&r->log, rsv);
    tb_u64(&r->log, r->msg.len);
    tb_put(&r->log, r->msg.p, r->msg.len);
    r->msg.len = 0;
    r->in_msg = 0;
  }
  return rec_stop(r);
}

static int rec_on_control(void *ud, int op, char *d, size_t n) {
  rec_t *r = ud;
  r->control_calls++;
  if (n > WS_MAX_CONTROL || (op != WS_OP_CLOSE && op != WS_OP_PING && op != WS_OP_PONG))
    r->misuse++;
  tb_byte(&r->log, 'C');
  tb_byte(&r->log, op);
  tb_u64(&r->log, n);
  tb_put(&r->log, d, n);
  return rec_stop(r);
}

static const ws_parser_settings_t rec_settings = {rec_on_data, rec_on_control};

static void exp_data(tbuf_t *e, int op, int rsv, const void *d, size_t n) {
  tb_byte(e, 'D');
  tb_byte(e, op);
  tb_byte(e, rsv);
  tb_u64(e, n);
  tb_put(e, d, n);
}

static void exp_control(tbuf_t *e, int op, const void *d, size_t n) {
  tb_byte(e, 'C');
  tb_byte(e, op);
  tb_u64(e, n);
  tb_put(e, d, n);
}

static void exp_end(tbuf_t *e, size_t leftover) {
  tb_byte(e, 'L');
  tb_u64(e, leftover);
}

static void exp_error(tbuf_t *e, int err) {
  tb_byte(e, 'E');
  tb_u64(e, (uint64_t)(int64_t)err);
}

/* ---- feeding, as a caller would ---------------------------------------------- */

enum { FEED_WHOLE, FEED_BYTES, FEED_RANDOM };

typedef struct {
  int role, rsv_allowed;
  uint64_t max_length;
} cfg_t;

static long feed_violations; /* consumed more than given, or no error when sticky */

/* Feeds in to a fresh parser in chunks, keeping what it did not consume and feeding it
 * again with the next chunk (and again at once after a callback stopped it). Pending
 * bytes sit right before an unreadable page, so any over-read crashes. Returns the
 * error, or 0; the log goes to *log. */
static int feed(const cfg_t *c, const uint8_t *in, size_t len, int mode, uint64_t seed,
                int stop, tbuf_t *log, rec_t *out) {
  ws_parser_t p;
  rec_t r;
  char *end = test_guard_end();
  size_t have = 0, off = 0;
  int err = 0;

  memset(&r, 0, sizeof r);
  r.stop = stop;
  r.rng = seed ^ 0x5bd1e995u;
  ws_parser_init(&p, c->role, c->max_length);
  p.rsv_allowed = (uint8_t)c->rsv_allowed;
  if (ws_parser_execute(&p, &rec_settings, &r, end, 0) != 0) feed_violations++;

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
      ssize_t k = ws_parser_execute(&p, &rec_settings, &r, end - have, have);
      if (k < 0) {
        err = (int)k;
        break;
      }
      if ((size_t)k > have) {
        feed_violations++;
        k = (ssize_t)have;
      }
      have -= (size_t)k;
      if (k == 0 || have == 0) break;
    }
    if (err || off == len) break;
  }

  if (err) {
    /* Sticky: the same error again, even for new input, and nothing is delivered. */
    long calls = r.data_calls + r.control_calls;
    if (p.error != err || ws_parser_execute(&p, &rec_settings, &r, end - 2, 2) != err ||
        ws_parser_execute(&p, &rec_settings, &r, end, 0) != err ||
        r.data_calls + r.control_calls != calls)
      feed_violations++;
    exp_error(&r.log, err);
  } else {
    if (r.in_msg) {
      tb_byte(&r.log, 'P');
      tb_u64(&r.log, r.msg.len);
      tb_put(&r.log, r.msg.p, r.msg.len);
    }
    exp_end(&r.log, have);
  }
  tb_free(&r.msg);
  *log = r.log;
  if (out) *out = r;
  return err;
}

/* Runs in every way there is and checks that the logs agree; returns the whole-feed
 * error and leaves its log in *log (if log is not NULL). */
static int feed_all(const cfg_t *c, const uint8_t *in, size_t len, uint64_t seed,
                    tbuf_t *log) {
  tbuf_t ref, other;
  rec_t r;
  int err, i, same = 1, stop;
  long before = feed_violations;

  err = feed(c, in, len, FEED_WHOLE, seed, 0, &ref, &r);
  CHECK_INT(r.misuse, 0);
  CHECK_INT(r.data_calls >= r.fin_calls, 1);
  for (stop = 0; stop < 3; stop++) {
    for (i = 0; i < 5; i++) {
      int mode = i == 0 ? FEED_WHOLE : i == 1 ? FEED_BYTES : FEED_RANDOM;
      int e;
      if (mode == FEED_WHOLE && stop == 0) continue;
      e = feed(c, in, len, mode, seed + (uint64_t)i * 7919 + (uint64_t)stop, stop, &other, &r);
      if (e != err || !tb_eq(&ref, &other) || r.misuse) {
        same = 0;
        fprintf(stderr, "  mode %d stop %d: err %d vs %d, log %zu vs %zu bytes\n", mode,
                stop, e, err, other.len, ref.len);
      }
      tb_free(&other);
    }
  }
  CHECK(same);
  CHECK_INT(feed_violations - before, 0);
  if (log) *log = ref;
  else tb_free(&ref);
  return err;
}

static void expect_log(const cfg_t *c, const void *in, size_t len, const tbuf_t *want) {
  tbuf_t got;
  feed_all(c, in, len, len * 31 + 1, &got);
  CHECK(tb_eq(&got, want));
  tb_free(&got);
}

static void expect_error(const cfg_t *c, const void *in, size_t len, int err) {
  CHECK_INT(feed_all(c, in, len, len * 17 + 3, NULL), err);
}

/* ---- building frames ------------------------------------------------------- */

static void put_frame(tbuf_t *b, int fin, int rsv, int op, const void *payload, size_t n,
                      const uint8_t *key) {
  uint8_t h[WS_MAX_HEADER];
  size_t start;
  tb_put(b, h, ws_frame_header(h, fin, rsv, op, n, key));
  start = b->len;
  tb_put(b, payload, n);
  if (key) ws_mask((char *)b->p + start, n, key, 0);
}

static const uint8_t KEY[4] = {0x37, 0xfa, 0x21, 0x3d};
static const cfg_t SERVER = {WS_ROLE_SERVER, 0, 0};
static const cfg_t CLIENT = {WS_ROLE_CLIENT, 0, 0};

#define LIT(...) ((const uint8_t[]){__VA_ARGS__}), sizeof((const uint8_t[]){__VA_ARGS__})

/* ---- RFC 6455 5.7 ------------------------------------------------------------ */

static void test_rfc_examples(void) {
  tbuf_t want = {0}, in = {0};
  uint8_t *big;
  size_t i;

  /* A single-frame unmasked text message */
  exp_data(&want, WS_OP_TEXT, 0, "Hello", 5);
  exp_end(&want, 0);
  expect_log(&CLIENT, LIT(0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f), &want);
  /* A single-frame masked text message */
  expect_log(&SERVER, LIT(0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58),
             &want);
  /* A fragmented unmasked text message */
  expect_log(&CLIENT, LIT(0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f), &want);
  tb_free(&want);

  /* Unmasked Ping and masked Pong, each with "Hello" */
  exp_control(&want, WS_OP_PING, "Hello", 5);
  exp_end(&want, 0);
  expect_log(&CLIENT, LIT(0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f), &want);
  tb_free(&want);
  exp_control(&want, WS_OP_PONG, "Hello", 5);
  exp_end(&want, 0);
  expect_log(&SERVER, LIT(0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58),
             &want);
  tb_free(&want);

  /* 256 bytes binary message in a single unmasked frame: 0x82 0x7E 0x0100 */
  big = malloc(65536);
  for (i = 0; i < 65536; i++) big[i] = (uint8_t)(i * 7 + (i >> 8));
  tb_put(&in, LIT(0x82, 0x7E, 0x01, 0x00));
  tb_put(&in, big, 256);
  exp_data(&want, WS_OP_BINARY, 0, big, 256);
  exp_end(&want, 0);
  expect_log(&CLIENT, in.p, in.len, &want);
  tb_free(&want);
  tb_free(&in);

  /* 64KiB binary message in a single unmasked frame: 0x82 0x7F 0x0000000000010000 */
  tb_put(&in, LIT(0x82, 0x7F, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00));
  tb_put(&in, big, 65536);
  exp_data(&want, WS_OP_BINARY, 0, big, 65536);
  exp_end(&want, 0);
  expect_log(&CLIENT, in.p, in.len, &want);
  tb_free(&in);
  /* The same, masked, to a server. */
  put_frame(&in, 1, 0, WS_OP_BINARY, big, 65536, KEY);
  CHECK_MEM(in.p, 10, "\x82\xFF\x00\x00\x00\x00\x00\x01\x00\x00", 10);
  expect_log(&SERVER, in.p, in.len, &want);
  tb_free(&in);
  tb_free(&want);
  free(big);

  /* The writer makes the same bytes. */
  {
    uint8_t h[WS_MAX_HEADER];
    char hello[] = "Hello";
    CHECK_INT(ws_frame_header(h, 1, 0, WS_OP_TEXT, 5, NULL), 2);
    CHECK_MEM(h, 2, "\x81\x05", 2);
    CHECK_INT(ws_frame_header(h, 1, 0, WS_OP_TEXT, 5, KEY), 6);
    CHECK_MEM(h, 6, "\x81\x85\x37\xfa\x21\x3d", 6);
    ws_mask(hello, 5, KEY, 0);
    CHECK_MEM(hello, 5, "\x7f\x9f\x4d\x51\x58", 5);
    CHECK_INT(ws_frame_header(h, 0, 0, WS_OP_TEXT, 3, NULL), 2);
    CHECK_MEM(h, 2, "\x01\x03", 2);
    CHECK_INT(ws_frame_header(h, 1, 0, WS_OP_CONT, 2, NULL), 2);
    CHECK_MEM(h, 2, "\x80\x02", 2);
    CHECK_INT(ws_frame_header(h, 1, 0, WS_OP_PONG, 5, KEY), 6);
    CHECK_MEM(h, 2, "\x8a\x85", 2);
    CHECK_INT(ws_frame_header(h, 1, WS_RSV1, WS_OP_TEXT, 0, NULL), 2);
    CHECK_MEM(h, 2, "\xc1\x00", 2);
  }
}

static void test_header_writer(void) {
  uint8_t h[WS_MAX_HEADER];
  CHECK_INT(ws_frame_header(h, 1, 0, WS_OP_BINARY, 0, NULL), 2);
  CHECK_MEM(h, 2, "\x82\x00", 2);
  CHECK_INT(ws_frame_header(h, 1, 0, WS_OP_BINARY, 125, NULL), 2);
  CHECK_MEM(h, 2, "\x82\x7d", 2);
  CHECK_INT(ws_frame_header(h, 1, 0, WS_OP_BINARY, 126, NULL), 4);
  CHECK_MEM(h, 4, "\x82\x7e\x00\x7e", 4);
  CHECK_INT(ws_frame_header(h, 1, 0, WS_OP_BINARY, 65535, NULL), 4);
  CHECK_MEM(h, 4, "\x82\x7e\xff\xff", 4);
  CHECK_INT(ws_frame_header(h, 1, 0, WS_OP_BINARY, 65536, NULL), 10);
  CHECK_MEM(h, 10, "\x82\x7f\x00\x00\x00\x00\x00\x01\x00\x00", 10);
  CHECK_INT(ws_frame_header(h, 0, 0, WS_OP_TEXT, 0x0123456789ABCDEFull, KEY), 14);
  CHECK_MEM(h, 14, "\x01\xff\x01\x23\x45\x67\x89\xab\xcd\xef\x37\xfa\x21\x3d", 14);
  CHECK_INT(ws_frame_header(h, 1, 0, WS_OP_BINARY, 126, KEY), 8);
  CHECK_MEM(h, 8, "\x82\xfe\x00\x7e\x37\xfa\x21\x3d", 8);
  CHECK_INT(ws_frame_header(h, 1, 0, WS_OP_BINARY, 65536, KEY), 14);
  CHECK_MEM(h, 2, "\x82\xff", 2);

  /* What the writer makes, the parser reads back at each length boundary. */
  {
    static const size_t lens[] = {0, 1, 125, 126, 127, 65535, 65536, 65537};
    uint8_t *payload = malloc(65537);
    size_t i;
    memset(payload, 'x', 65537);
    for (i = 0; i < sizeof lens / sizeof lens[0]; i++) {
      tbuf_t in = {0}, want = {0};
      put_frame(&in, 1, 0, WS_OP_BINARY, payload, lens[i], KEY);
      exp_data(&want, WS_OP_BINARY, 0, payload, lens[i]);
      exp_end(&want, 0);
      expect_log(&SERVER, in.p, in.len, &want);
      tb_free(&in);
      tb_free(&want);
    }
    free(payload);
  }
}

/* ---- section 5 rules ------------------------------------------------------------ */

static void test_violations(void) {
  static const int bad_ops[] = {3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF};
  cfg_t deflate = {WS_ROLE_SERVER, WS_RSV1, 0};
  size_t i;

  /* 5.1: a server gets only masked frames, a client only unmasked ones. */
  expect_error(&SERVER, LIT(0x81, 0x05, 'H', 'e', 'l', 'l', 'o'), WS_EPROTOCOL);
  expect_error(&CLIENT, LIT(0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58),
               WS_EPROTOCOL);
  expect_error(&SERVER, LIT(0x89, 0x00), WS_EPROTOCOL);

  /* 5.2: RSV bits without an extension that defines them. */
  expect_error(&CLIENT, LIT(0xc1, 0x01, 'a'), WS_EPROTOCOL);
  expect_error(&CLIENT, LIT(0xa1, 0x01, 'a'), WS_EPROTOCOL);
  expect_error(&CLIENT, LIT(0x91, 0x01, 'a'), WS_EPROTOCOL);
  expect_error(&deflate, LIT(0xa1, 0x80, 1, 2, 3, 4), WS_EPROTOCOL); /* RSV2 not allowed */
  /* RFC 7692 6: RSV1 only on a message's first frame. */
  expect_error(&deflate, LIT(0x41, 0x80, 1, 2, 3, 4, 0xc0, 0x80, 1, 2, 3, 4), WS_EPROTOCOL);
  expect_error(&deflate, LIT(0x01, 0x80, 1, 2, 3, 4, 0xc0, 0x80, 1, 2, 3, 4), WS_EPROTOCOL);
  expect_error(&deflate, LIT(0xc9, 0x80, 1, 2, 3, 4), WS_EPROTOCOL);
  expect_error(&deflate, LIT(0xc8, 0x80, 1, 2, 3, 4), WS_EPROTOCOL);
  {
    /* ... where it is fine, and reaches on_data on every chunk of the message. */
    tbuf_t want = {0};
    exp_data(&want, WS_OP_BINARY, WS_RSV1, "", 0);
    exp_data(&want, WS_OP_TEXT, WS_RSV1, "\xff\xfe", 2); /* not inflated: not checked */
    exp_end(&want, 0);
    expect_log(&deflate, LIT(0xc2, 0x80, 1, 2, 3, 4,
                             0x41, 0x81, 0, 0, 0, 0, 0xff, 0x80, 0x81, 0, 0, 0, 0, 0xfe),
               &want);
    tb_free(&want);
  }

  /* 5.2: reserved opcodes, data and control. */
  for (i = 0; i < sizeof bad_ops / sizeof bad_ops[0]; i++) {
    uint8_t f[2] = {(uint8_t)(0x80 | bad_ops[i]), 0x00};
    expect_error(&CLIENT, f, 2, WS_EPROTOCOL);
    expect_error(&CLIENT, f, 1, WS_EPROTOCOL); /* known from the first byte */
  }

  /* 5.5: control frames are never fragmented and carry at most 125 bytes. */
  expect_error(&CLIENT, LIT(0x09, 0x00), WS_EPROTOCOL);
  expect_error(&CLIENT, LIT(0x08, 0x00), WS_EPROTOCOL);
  expect_error(&CLIENT, LIT(0x89, 0x7e, 0x00, 0x7e), WS_EPROTOCOL);
  expect_error(&CLIENT, LIT(0x8a, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0), WS_EPROTOCOL);
  expect_error(&SERVER, LIT(0x88, 0xfe), WS_EPROTOCOL);
  {
    tbuf_t in = {0}, want = {0};
    char p125[125];
    memset(p125, 'p', sizeof p125);
    put_frame(&in, 1, 0, WS_OP_PING, p125, 125, KEY);
    exp_control(&want, WS_OP_PING, p125, 125);
    exp_end(&want, 0);
    expect_log(&SERVER, in.p, in.len, &want);
    tb_free(&in);
    tb_free(&want);
  }

  /* 5.4: a continuation with nothing to continue; a new message inside another. */
  expect_error(&CLIENT, LIT(0x80, 0x01, 'a'), WS_EPROTOCOL);
  expect_error(&CLIENT, LIT(0x00, 0x00), WS_EPROTOCOL);
  expect_error(&CLIENT, LIT(0x81, 0x01, 'a', 0x80, 0x01, 'b'), WS_EPROTOCOL);
  expect_error(&CLIENT, LIT(0x01, 0x01, 'a', 0x81, 0x01, 'b'), WS_EPROTOCOL);
  expect_error(&CLIENT, LIT(0x01, 0x01, 'a', 0x02, 0x01, 'b'), WS_EPROTOCOL);
  expect_error(&CLIENT, LIT(0x02, 0x00, 0x89, 0x00, 0x82, 0x00), WS_EPROTOCOL);
  {
    /* 5.4: control frames may come between the fragments of a message. */
    tbuf_t want = {0};
    exp_control(&want, WS_OP_PING, "p", 1);
    exp_control(&want, WS_OP_PONG, "", 0);
    exp_control(&want, WS_OP_CLOSE, "\x03", 1); /* the caller checks close payloads */
    exp_data(&want, WS_OP_TEXT, 0, "abc", 3);
    exp_end(&want, 0);
    expect_log(&CLIENT, LIT(0x01, 0x01, 'a', 0x89, 0x01, 'p', 0x00, 0x01, 'b', 0x8a, 0x00,
                            0x88, 0x01, 0x03, 0x80, 0x01, 'c'),
               &want);
    tb_free(&want);
  }

  /* 5.2: lengths in the minimal number of bytes; 64-bit lengths below 2^63. */
  expect_error(&CLIENT, LIT(0x82, 0x7e, 0x00, 0x7d), WS_EPROTOCOL);
  expect_error(&CLIENT, LIT(0x82, 0x7e, 0x00, 0x00), WS_EPROTOCOL);
  expect_error(&CLIENT, LIT(0x82, 0x7f, 0, 0, 0, 0, 0, 0, 0xff, 0xff), WS_EPROTOCOL);
  expect_error(&CLIENT, LIT(0x82, 0x7f, 0, 0, 0, 0, 0, 0, 0, 0x7e), WS_EPROTOCOL);
  expect_error(&CLIENT, LIT(0x82, 0x7f, 0x80, 0, 0, 0, 0, 0, 0, 0), WS_EPROTOCOL);
  expect_error(&CLIENT, LIT(0x82, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff),
               WS_EPROTOCOL);
  {
    /* The smallest lengths that are minimal are fine; so is the largest. */
    tbuf_t want = {0};
    exp_end(&want, 0);
    expect_log(&CLIENT, LIT(0x02, 0x7f, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff), &want);
    tb_free(&want);
  }

  /* Sticky: after an error, even a good frame gets the error. */
  {
    ws_parser_t p;
    rec_t r;
    char bad[] = "\x83\x00", good[] = "\x81\x01" "a";
    memset(&r, 0, sizeof r);
    ws_parser_init(&p, WS_ROLE_CLIENT, 0);
    CHECK_INT(ws_parser_execute(&p, &rec_settings, &r, bad, 2), WS_EPROTOCOL);
    CHECK_INT(p.error, WS_EPROTOCOL);
    CHECK_INT(ws_parser_execute(&p, &rec_settings, &r, good, 3), WS_EPROTOCOL);
    CHECK_INT(r.data_calls, 0);
    tb_free(&r.log);
    tb_free(&r.msg);
  }
}

static void test_max_length(void) {
  cfg_t lim = {WS_ROLE_CLIENT, 0, 10};
  cfg_t lim_deflate = {WS_ROLE_CLIENT, WS_RSV1, 10};
  tbuf_t want = {0};

  /* Exactly the limit is fine, in one frame or several. */
  exp_data(&want, WS_OP_BINARY, 0, "0123456789", 10);
  exp_end(&want, 0);
  expect_log(&lim, LIT(0x82, 10, '0', '1', '2', '3', '4', '5', '6', '7', '8', '9'), &want);
  expect_log(&lim, LIT(0x02, 4, '0', '1', '2', '3', 0x00, 0, 0x80, 6, '4', '5', '6', '7', '8',
                       '9'),
             &want);
  tb_free(&want);

  /* One byte more is refused when the header says so, before any payload arrives. */
  expect_error(&lim, LIT(0x82, 11), WS_ETOOBIG);
  expect_error(&lim, LIT(0x82, 0x7e, 0x01, 0x00), WS_ETOOBIG);
  expect_error(&lim, LIT(0x82, 0x7f, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff),
               WS_ETOOBIG);
  {
    /* Over several frames: the first is delivered, the second's header fails. */
    ws_parser_t p;
    rec_t r;
    char in[] = "\x01\x06" "abcdef" "\x80\x05";
    memset(&r, 0, sizeof r);
    ws_parser_init(&p, WS_ROLE_CLIENT, 10);
    CHECK_INT(ws_parser_execute(&p, &rec_settings, &r, in, sizeof in - 1), WS_ETOOBIG);
    CHECK_INT(r.data_calls, 1);
    CHECK_INT(r.msg.len, 6);
    tb_free(&r.log);
    tb_free(&r.msg);
  }
  /* A new message starts counting from zero again. */
  exp_data(&want, WS_OP_TEXT, 0, "abcdefgh", 8);
  exp_data(&want, WS_OP_TEXT, 0, "abcdefgh", 8);
  exp_end(&want, 0);
  expect_log(&lim, LIT(0x81, 8, 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 0x81, 8, 'a', 'b', 'c',
                       'd', 'e', 'f', 'g', 'h'),
             &want);
  tb_free(&want);
  /* Control frames do not count. */
  exp_control(&want, WS_OP_PING, "0123456789ab", 12);
  exp_end(&want, 0);
  expect_log(&lim, LIT(0x89, 12, '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', 'a', 'b'),
             &want);
  tb_free(&want);
  /* A compressed message is limited after inflation, by the layer above. */
  exp_data(&want, WS_OP_BINARY, WS_RSV1, "0123456789ab", 12);
  exp_end(&want, 0);
  expect_log(&lim_deflate, LIT(0x42, 6, '0', '1', '2', '3', '4', '5', 0x80, 6, '6', '7', '8',
                               '9', 'a', 'b'),
             &want);
  tb_free(&want);
  expect_error(&lim_deflate, LIT(0x02, 6, '0', '1', '2', '3', '4', '5', 0x80, 6), WS_ETOOBIG);
}

static void test_max_fragments(void) {
  ws_parser_t p;
  rec_t r;
  /* Three empty fragments are fine with a limit of 3; a fourth frame fails. */
  char ok[] = "\x01\x00" "\x00\x00" "\x80\x00";
  char over[] = "\x01\x00" "\x00\x00" "\x00\x00" "\x80\x00";
  memset(&r, 0, sizeof r);
  ws_parser_init(&p, WS_ROLE_CLIENT, 0);
  p.max_fragments = 3;
  CHECK_INT(ws_parser_execute(&p, &rec_settings, &r, ok, sizeof ok - 1), (long long)(sizeof ok - 1));
  /* The count starts again with each message. */
  CHECK_INT(ws_parser_execute(&p, &rec_settings, &r, ok, sizeof ok - 1), (long long)(sizeof ok - 1));
  CHECK_INT(ws_parser_execute(&p, &rec_settings, &r, over, sizeof over - 1), WS_ETOOBIG);
  CHECK_INT(ws_err_close_code(WS_ETOOBIG), 1009);
  tb_free(&r.log);
  tb_free(&r.msg);
  /* No limit by default. */
  memset(&r, 0, sizeof r);
  ws_parser_init(&p, WS_ROLE_CLIENT, 0);
  CHECK_INT(ws_parser_execute(&p, &rec_settings, &r, over, sizeof over - 1), (long long)(sizeof over - 1));
  tb_free(&r.log);
  tb_free(&r.msg);
}

static void test_utf8_rules(void) {
  tbuf_t want = {0};

  /* 8.1: invalid text fails with 1007, whole or cut anywhere. */
  expect_error(&CLIENT, LIT(0x81, 0x03, 'a', 'b', 0xff), WS_EUTF8);
  expect_error(&CLIENT, LIT(0x81, 0x03, 0xed, 0xa0, 0x80), WS_EUTF8);
  expect_error(&CLIENT, LIT(0x81, 0x04, 0xf4, 0x90, 0x80, 0x80), WS_EUTF8);
  expect_error(&CLIENT, LIT(0x81, 0x02, 0xc0, 0x80), WS_EUTF8);
  /* Cut short at the end of the message, also by an empty last frame. */
  expect_error(&CLIENT, LIT(0x81, 0x02, 0xe2, 0x82), WS_EUTF8);
  expect_error(&CLIENT, LIT(0x01, 0x02, 0xe2, 0x82, 0x80, 0x00), WS_EUTF8);
  /* A character split over frames, with a ping between, is fine. */
  exp_control(&want, WS_OP_PING, "", 0);
  exp_data(&want, WS_OP_TEXT, 0, "\xe2\x82\xac", 3);
  exp_end(&want, 0);
  expect_log(&CLIENT, LIT(0x01, 0x01, 0xe2, 0x89, 0x00, 0x00, 0x01, 0x82, 0x80, 0x01, 0xac),
             &want);
  tb_free(&want);
  /* Binary messages are not text. */
  exp_data(&want, WS_OP_BINARY, 0, "\xff\xfe", 2);
  exp_end(&want, 0);
  expect_log(&CLIENT, LIT(0x82, 0x02, 0xff, 0xfe), &want);
  tb_free(&want);

  /* Fail fast: a bad byte in the first fragment fails before the message ends, and
   * the chunk holding it is never delivered. */
  {
    ws_parser_t p;
    rec_t r;
    char in[] = "\x01\x04" "ab\xc0\xaf";
    memset(&r, 0, sizeof r);
    ws_parser_init(&p, WS_ROLE_CLIENT, 0);
    CHECK_INT(ws_parser_execute(&p, &rec_settings, &r, in, sizeof in - 1), WS_EUTF8);
    CHECK_INT(r.data_calls, 0);
    tb_free(&r.log);
    tb_free(&r.msg);

    /* The same in a long frame of which only the start has come. */
    memset(&r, 0, sizeof r);
    ws_parser_init(&p, WS_ROLE_CLIENT, 0);
    {
      char in2[] = "\x01\x7e\x10\x00" "hello \xff";
      CHECK_INT(ws_parser_execute(&p, &rec_settings, &r, in2, sizeof in2 - 1), WS_EUTF8);
    }
    CHECK_INT(r.data_calls, 0);
    tb_free(&r.log);
    tb_free(&r.msg);

    /* A good chunk before it was delivered; the bad one is not. */
    memset(&r, 0, sizeof r);
    ws_parser_init(&p, WS_ROLE_CLIENT, 0);
    {
      char in3[] = "\x01\x08" "good" "\xff" "bad";
      CHECK_INT(ws_parser_execute(&p, &rec_settings, &r, in3, 6), 6);
      CHECK_INT(ws_parser_execute(&p, &rec_settings, &r, in3 + 6, 4), WS_EUTF8);
    }
    CHECK_INT(r.data_calls, 1);
    CHECK_MEM(r.msg.p, r.msg.len, "good", 4);
    tb_free(&r.log);
    tb_free(&r.msg);
  }
}

/* ---- consumption, partial input, stopping --------------------------------------- */

static ssize_t exec1(ws_parser_t *p, rec_t *r, const char *in, size_t len) {
  char *g = test_guard_copy(in, len);
  return ws_parser_execute(p, &rec_settings, r, g, len);
}

static void test_consumption(void) {
  ws_parser_t p;
  rec_t r;

  memset(&r, 0, sizeof r);
  ws_parser_init(&p, WS_ROLE_CLIENT, 0);
  CHECK_INT(exec1(&p, &r, "", 0), 0);
  /* A header is taken only whole. */
  CHECK_INT(exec1(&p, &r, "\x81", 1), 0);
  CHECK_INT(exec1(&p, &r, "\x82\x7e\x01", 3), 0);
  CHECK_INT(exec1(&p, &r, "\x82\x7f\x00\x00\x00\x00\x00\x01\x00", 9), 0);
  /* Payload is delivered as it comes, header and all. */
  CHECK_INT(exec1(&p, &r, "\x81\x05" "He", 4), 4);
  CHECK_INT(r.data_calls, 1);
  CHECK_INT(r.fin_calls, 0);
  CHECK_INT(exec1(&p, &r, "llo", 3), 3);
  CHECK_INT(r.fin_calls, 1);
  CHECK_MEM(r.log.p + 11, 5, "Hello", 5);
  /* A control frame is taken only whole. */
  CHECK_INT(exec1(&p, &r, "\x89\x05" "Hel", 5), 0);
  CHECK_INT(r.control_calls, 0);
  CHECK_INT(exec1(&p, &r, "\x89\x05" "Hello" "\x89", 8), 7);
  CHECK_INT(r.control_calls, 1);
  /* Empty frames: one fin=1 call with no data for the message, none for the others. */
  r.data_calls = 0;
  CHECK_INT(exec1(&p, &r, "\x01\x00\x00\x00\x80\x00", 6), 6);
  CHECK_INT(r.data_calls, 1);
  CHECK_INT(r.fin_calls, 2);
  tb_free(&r.log);
  tb_free(&r.msg);

  /* A mask key is part of the header. */
  memset(&r, 0, sizeof r);
  ws_parser_init(&p, WS_ROLE_SERVER, 0);
  CHECK_INT(exec1(&p, &r, "\x81\x85\x37\xfa\x21", 5), 0);
  CHECK_INT(exec1(&p, &r, "\x81\x85\x37\xfa\x21\x3d", 6), 6);
  CHECK_INT(r.data_calls, 0);
  CHECK_INT(exec1(&p, &r, "\x7f\x9f", 2), 2);
  CHECK_INT(exec1(&p, &r, "\x4d\x51\x58", 3), 3);
  CHECK_INT(r.fin_calls, 1);
  CHECK_MEM(r.log.p + 11, 5, "Hello", 5);
  tb_free(&r.log);
  tb_free(&r.msg);

  /* Stopping: the count includes the chunk or frame that stopped it, no more. */
  memset(&r, 0, sizeof r);
  r.stop = 1;
  ws_parser_init(&p, WS_ROLE_CLIENT, 0);
  {
    const char in[] = "\x81\x05" "Hello" "\x89\x01" "x" "\x82\x03" "abc" "\x81\x00";
    size_t off = 0;
    ssize_t k;
    CHECK_INT(k = exec1(&p, &r, in + off, sizeof in - 1 - off), 7);
    off += (size_t)k;
    CHECK_INT(r.data_calls, 1);
    CHECK_INT(k = exec1(&p, &r, in + off, sizeof in - 1 - off), 3);
    off += (size_t)k;
    CHECK_INT(r.control_calls, 1);
    CHECK_INT(k = exec1(&p, &r, in + off, sizeof in - 1 - off), 5);
    off += (size_t)k;
    CHECK_INT(k = exec1(&p, &r, in + off, sizeof in - 1 - off), 2);
    off += (size_t)k;
    CHECK_INT(off, sizeof in - 1);
    CHECK_INT(r.fin_calls, 3);
    CHECK_INT(exec1(&p, &r, "", 0), 0);
  }
  tb_free(&r.log);
  tb_free(&r.msg);

  /* Callbacks may be left out. */
  {
    ws_parser_settings_t none = {NULL, NULL};
    char in[] = "\x81\x01" "a" "\x89\x00";
    ws_parser_init(&p, WS_ROLE_CLIENT, 0);
    CHECK_INT(ws_parser_execute(&p, &none, NULL, in, 5), 5);
  }
}

/* ---- random streams ---------------------------------------------------------- */

static const char *const texts[] = {"", "a", "Hello", "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5",
                                    "\xe2\x82\xac", "\xf0\x90\x8d\x88", "\xef\xbf\xbd", " ",
                                    "\x7f", "\xc2\x80"};

static size_t rand_len(uint64_t *seed) {
  uint64_t x = test_rand(seed);
  switch (x % 16) {
  case 0: return 0;
  case 1: return 100 + (size_t)(x >> 8) % 300;
  case 2: return (x >> 8) % 40 == 0 ? 65536 + (size_t)(x >> 16) % 10000 : 126;
  default: return (size_t)(x >> 8) % 30;
  }
}

/* A stream of random messages in random fragments with control frames between them,
 * and the log a parser must produce for it. */
static void make_stream(uint64_t *seed, const cfg_t *c, tbuf_t *in, tbuf_t *want) {
  int msgs = 1 + (int)(test_rand(seed) % 5), m;
  for (m = 0; m < msgs; m++) {
    tbuf_t data = {0};
    int op = test_rand(seed) & 1 ? WS_OP_TEXT : WS_OP_BINARY;
    int rsv = c->rsv_allowed && test_rand(seed) % 3 == 0 ? WS_RSV1 : 0;
    size_t target = rand_len(seed), off = 0;
    int frags = 1 + (int)(test_rand(seed) % 4), f;
    while (data.len < target) {
      if (op == WS_OP_TEXT) {
        const char *t = texts[test_rand(seed) % (sizeof texts / sizeof texts[0])];
        tb_put(&data, t, strlen(t));
      } else {
        tb_byte(&data, (int)test_rand(seed));
      }
    }
    if (!data.p) data.p = malloc(1); /* so that data.p + off is always defined */
    for (f = 0; f < frags; f++) {
      size_t n = f == frags - 1 ? data.len - off : (size_t)(test_rand(seed) % (data.len - off + 1));
      uint8_t key[4];
      uint64_t k = test_rand(seed);
      memcpy(key, &k, 4);
      if (test_rand(seed) % 3 == 0) {
        static const int ctl[] = {WS_OP_PING, WS_OP_PONG, WS_OP_CLOSE};
        uint8_t pl[WS_MAX_CONTROL];
        size_t pn = test_rand(seed) % 4 == 0 ? WS_MAX_CONTROL : test_rand(seed) % 8, i;
        int cop = ctl[test_rand(seed) % 3];
        for (i = 0; i < pn; i++) pl[i] = (uint8_t)test_rand(seed);
        put_frame(in, 1, 0, cop, pl, pn, c->role == WS_ROLE_SERVER ? key : NULL);
        exp_control(want, cop, pl, pn);
      }
      put_frame(in, f == frags - 1, f == 0 ? rsv : 0, f == 0 ? op : WS_OP_CONT, data.p + off, n,
                c->role == WS_ROLE_SERVER ? key : NULL);
      off += n;
    }
    exp_data(want, op, rsv, data.p, data.len);
    tb_free(&data);
  }
  exp_end(want, 0);
}

static void test_random_streams(void) {
  uint64_t seed = 0xC0FFEE;
  int iter, good = 0, runs = 0;
  for (iter = 0; iter < 300; iter++) {
    cfg_t c = {iter & 1 ? WS_ROLE_CLIENT : WS_ROLE_SERVER, iter & 2 ? WS_RSV1 : 0, 0};
    tbuf_t in = {0}, want = {0}, got;
    size_t cut;
    make_stream(&seed, &c, &in, &want);
    feed_all(&c, in.p, in.len, seed, &got);
    good += tb_eq(&got, &want);
    tb_free(&got);
    /* Damaged copies: whatever the parser makes of them, it makes the same of them
     * however they are fed. Cut short, or with one byte changed. */
    cut = in.len ? (size_t)(test_rand(&seed) % in.len) : 0;
    feed_all(&c, in.p, cut, seed, NULL);
    if (in.len) {
      size_t at = (size_t)(test_rand(&seed) % (in.len < 64 ? in.len : 64));
      in.p[at] ^= (uint8_t)(1 + test_rand(&seed) % 255);
      c.max_length = test_rand(&seed) % 2 ? 0 : 1 + test_rand(&seed) % 200;
      feed_all(&c, in.p, in.len, seed, NULL);
    }
    runs++;
    tb_free(&in);
    tb_free(&want);
  }
  CHECK_INT(good, runs);
}

/* ---- masking ------------------------------------------------------------------ */

static void test_mask(void) {
  static const uint8_t key[4] = {0xa1, 0x02, 0xf3, 0x5c};
  char buf[128], ref[128];
  size_t align, off, len, i;
  int bad = 0;
  for (align = 0; align < 8; align++) {
    for (off = 0; off < 4; off++) {
      for (len = 0; len <= 100; len++) {
        for (i = 0; i < sizeof buf; i++) buf[i] = ref[i] = (char)(i * 13 + len);
        for (i = 0; i < len; i++) ref[align + i] ^= (char)key[(off + i) & 3];
        ws_mask(buf + align, len, key, off);
        if (memcmp(buf, ref, sizeof buf) != 0) bad++; /* also: nothing outside touched */
      }
    }
  }
  CHECK_INT(bad, 0);
  /* Masking twice gives the input back; a long run in pieces is one run. */
  {
    char a[1000], b[1000];
    for (i = 0; i < sizeof a; i++) a[i] = b[i] = (char)(i ^ (i >> 3));
    ws_mask(a, 333, key, 0);
    ws_mask(a + 333, 667, key, 333);
    ws_mask(b, 1000, key, 0);
    CHECK_MEM(a, 1000, b, 1000);
    ws_mask(a, 1000, key, 0);
    for (i = 0; i < sizeof a; i++)
      if (a[i] != (char)(i ^ (i >> 3))) bad++;
    CHECK_INT(bad, 0);
  }
  /* At the end of a mapping: no access past len. */
  {
    char *g = test_guard_copy("abcdefghijklmnopq", 17);
    ws_mask(g, 17, key, 1);
    ws_mask(g, 17, key, 1);
    CHECK_MEM(g, 17, "abcdefghijklmnopq", 17);
  }
}

void test_frame(void) {
  test_rfc_examples();
  test_header_writer();
  test_violations();
  test_max_length();
  test_max_fragments();
  test_utf8_rules();
  test_consumption();
  test_random_streams();
  test_mask();
}
