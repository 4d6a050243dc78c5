/* csrc/core/ext.c: the Sec-WebSocket-Extensions parser (every input against an
 * unreadable page, and split into repeated headers at every comma), the builder, and
 * the generic negotiation through the seam with deflate and a second, fake extension. */
#include <stdlib.h>

#include "deflate.h"
#include "ext.h"
#include "test.h"

static int parse(ws_ext_list_t *l, const char *s, size_t len) {
  return ws_ext_parse(l, test_guard_copy(s, len), len);
}

#define PARSE(l, s) parse(l, s, sizeof(s) - 1)

/* The list as one canonical string: name(p=v,p)|name... , to compare whole results. */
static void dump(const ws_ext_list_t *l, char *out, size_t cap) {
  size_t i, j, n = 0;
  out[0] = '\0';
  for (i = 0; i < l->num_items; i++) {
    const ws_ext_item_t *it = &l->items[i];
    n += (size_t)snprintf(out + n, cap - n, "%s%.*s(", i ? "|" : "", (int)it->name_len,
                          it->name);
    for (j = 0; j < it->num_params; j++) {
      const ws_ext_param_t *pa = &it->params[j];
      n += (size_t)snprintf(out + n, cap - n, "%s%.*s", j ? "," : "", (int)pa->name_len,
                            pa->name);
      if (pa->value)
        n += (size_t)snprintf(out + n, cap - n, "=%.*s", (int)pa->value_len, pa->value);
    }
    n += (size_t)snprintf(out + n, cap - n, ")");
  }
}

/* Parses s whole, and as repeated headers split at each comma (as a server sees
 * "Sec-WebSocket-Extensions" twice); both must give want. */
static void expect_parse(const char *s, const char *want) {
  static ws_ext_list_t l, l2;
  char got[1024], got2[1024];
  size_t len = strlen(s), i;
  int bad = 0;

  ws_ext_list_init(&l);
  CHECK_INT(parse(&l, s, len), 0);
  dump(&l, got, sizeof got);
  CHECK_STR(got, want);
  for (i = 0; i < len; i++) {
    /* A copy of each part, so the list points into text that stays alive. */
    static char a[512], b[512];
    if (s[i] != ',' || i >= sizeof a || len - i - 1 >= sizeof b) continue;
    memcpy(a, s, i);
    memcpy(b, s + i + 1, len - i - 1);
    ws_ext_list_init(&l2);
    if (ws_ext_parse(&l2, a, i) != 0 || ws_ext_parse(&l2, b, len - i - 1) != 0) bad++;
    dump(&l2, got2, sizeof got2);
    if (strcmp(got2, want) != 0) bad++;
  }
  CHECK_INT(bad, 0);
}

static void expect_junk(const char *s) {
  static ws_ext_list_t l;
  size_t len = strlen(s);
  ws_ext_list_init(&l);
  CHECK_INT(PARSE(&l, "a; b=1"), 0);
  if (parse(&l, s, len) != WS_EHTTP) {
    test_fail(__FILE__, __LINE__, s);
    return;
  }
  /* A failed parse leaves what was there. */
  CHECK_INT(l.num_items, 1);
  CHECK_INT(l.num_params, 1);
  CHECK_INT(l.scratch_len, 0);
}

static void test_parse(void) {
  static ws_ext_list_t l;

  expect_parse("permessage-deflate", "permessage-deflate()");
  expect_parse("permessage-deflate; client_max_window_bits",
               "permessage-deflate(client_max_window_bits)");
  expect_parse("permessage-deflate;client_max_window_bits=10;server_no_context_takeover",
               "permessage-deflate(client_max_window_bits=10,server_no_context_takeover)");
  expect_parse("  permessage-deflate \t;\t a = 1 ; b ,  x-foo ; c=\"d\"  ",
               "permessage-deflate(a=1,b)|x-foo(c=d)");
  /* RFC 7692 5.1's example list: two offers, the first with a parameter. */
  expect_parse("permessage-deflate; client_max_window_bits; server_max_window_bits=10, "
               "permessage-deflate; client_max_window_bits",
               "permessage-deflate(client_max_window_bits,server_max_window_bits=10)|"
               "permessage-deflate(client_max_window_bits)");
  /* Empty elements (RFC 9110 5.6.1), and nothing at all. */
  expect_parse(", ,a,,b ,", "a()|b()");
  expect_parse("", "");
  expect_parse("  ", "");
  /* Quoted-strings: used in place, or unescaped (9.1: the result must be a token). */
  expect_parse("a; b=\"10\"", "a(b=10)");
  expect_parse("a; b=\"1\\0\"; c=\"\\x\\y\"", "a(b=10,c=xy)");
  expect_parse("a;b=\"x\",c", "a(b=x)|c()");

  /* Junk. */
  expect_junk(";");
  expect_junk("a;");
  expect_junk("a; ");
  expect_junk("a;;b");
  expect_junk("a; ;b");
  expect_junk("a b");
  expect_junk("a; b c");
  expect_junk("a; b=");
  expect_junk("a; b= ");
  expect_junk("a; b=,");
  expect_junk("a; =1");
  expect_junk("a; b==1");
  expect_junk("a; b=1=2");
  expect_junk("a; b=\"");
  expect_junk("a; b=\"1");
  expect_junk("a; b=\"1\\");
  expect_junk("a; b=\"1\\\"");
  expect_junk("a; b=\"\"");
  expect_junk("a; b=\"1 2\"");
  expect_junk("a; b=\"1,2\"");
  expect_junk("a; b=\"1\"x");
  expect_junk("a; b=\"1\"\"");
  expect_junk("a; b=1\"");
  expect_junk("\"a\"");
  expect_junk("a/b");
  expect_junk("a; b/c");
  expect_junk("a\x01");
  expect_junk("a;\rb");
  expect_junk("a\xc3\xa9");
  expect_junk("a; b=\xff");
  expect_junk("a=1");
  expect_junk("a, =");
  CHECK_INT(parse(&l, "a\0b", 3), WS_EHTTP);

  /* Only len bytes count: a prefix is read as if that were all. */
  ws_ext_list_init(&l);
  CHECK_INT(ws_ext_parse(&l, "a; b=12", 6), 0);
  CHECK_MEM(l.items[0].params[0].value, l.items[0].params[0].value_len, "1", 1);
  ws_ext_list_init(&l);
  CHECK_INT(ws_ext_parse(&l, "a; b=\"1\"", 7), WS_EHTTP);
  {
    /* Every prefix of a long valid value, against the page: no crash, 0 or EHTTP. */
    static const char v[] = "permessage-deflate; a=\"1\\2\"; b, x; y=z";
    size_t i;
    int bad = 0;
    for (i = 0; i <= sizeof v - 1; i++) {
      int r;
      ws_ext_list_init(&l);
      r = parse(&l, v, i);
      if (r != 0 && r != WS_EHTTP) bad++;
    }
    CHECK_INT(bad, 0);
  }

  /* The bounds: items, parameters, scratch. */
  {
    char big[4096];
    size_t n = 0;
    int i;
    for (i = 0; i < WS_EXT_MAX_ITEMS; i++) n += (size_t)sprintf(big + n, "e%d,", i);
    ws_ext_list_init(&l);
    CHECK_INT(parse(&l, big, n), 0);
    CHECK_INT(l.num_items, WS_EXT_MAX_ITEMS);
    ws_ext_list_init(&l);
    n += (size_t)sprintf(big + n, "one-more");
    CHECK_INT(parse(&l, big, n), WS_EHEADTOOBIG);
    CHECK_INT(l.num_items, 0);

    n = (size_t)sprintf(big, "e");
    for (i = 0; i < WS_EXT_MAX_PARAMS; i++) n += (size_t)sprintf(big + n, "; p%d", i);
    ws_ext_list_init(&l);
    CHECK_INT(parse(&l, big, n), 0);
    CHECK_INT(l.items[0].num_params, WS_EXT_MAX_PARAMS);
    n += (size_t)sprintf(big + n, "; q");
    ws_ext_list_init(&l);
    CHECK_INT(parse(&l, big, n), WS_EHEADTOOBIG);

    /* Escaped values fill the scratch; unescaped ones cost none of it. */
    n = (size_t)sprintf(big, "e; p=\"");
    for (i = 0; i < WS_EXT_SCRATCH; i++) n += (size_t)sprintf(big + n, "\\x");
    n += (size_t)sprintf(big + n, "\"");
    ws_ext_list_init(&l);
    CHECK_INT(parse(&l, big, n), 0);
    CHECK_INT(l.scratch_len, WS_EXT_SCRATCH);
    CHECK_INT(PARSE(&l, "f; q=\"\\y\""), WS_EHEADTOOBIG);
    CHECK_INT(PARSE(&l, "f; q=\"y\""), 0);
    CHECK_INT(l.num_items, 2);
  }
}

static void test_parse_head(void) {
  static const char req[] =
      "GET / HTTP/1.1\r\n"
      "Host: x\r\n"
      "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
      "X: y\r\n"
      "sec-websocket-extensions: x-foo, permessage-deflate\r\n"
      "\r\n";
  ws_header_t hdrs[8];
  ws_http_head_t h;
  static ws_ext_list_t l;
  char got[256];

  memset(&h, 0, sizeof h);
  h.headers = hdrs;
  h.num_headers = 8;
  CHECK_INT(ws_http_parse_request(req, sizeof req - 1, &h), (int)sizeof req - 1);
  ws_ext_list_init(&l);
  CHECK_INT(ws_ext_parse_head(&l, &h), 0);
  dump(&l, got, sizeof got);
  CHECK_STR(got, "permessage-deflate(client_max_window_bits)|x-foo()|permessage-deflate()");
  hdrs[3].value = "x-foo;";
  hdrs[3].value_len = 6;
  ws_ext_list_init(&l);
  CHECK_INT(ws_ext_parse_head(&l, &h), WS_EHTTP);
  CHECK(ws_ext_name_is("Permessage-Deflate", 18, "permessage-deflate"));
  CHECK(!ws_ext_name_is("permessage-deflat", 17, "permessage-deflate"));
}

static void test_build(void) {
  char out[64];
  size_t len = 0;
  ws_ext_param_t ps[2] = {{"a", 1, NULL, 0}, {"b", 1, "10", 2}};
  static ws_ext_list_t l;
  char got[128];

  CHECK_INT(ws_ext_build(out, sizeof out, &len, "x-one", ps, 2), 0);
  CHECK_STR(out, "x-one; a; b=10");
  CHECK_INT(len, sizeof "x-one; a; b=10" - 1);
  CHECK_INT(ws_ext_build(out, sizeof out, &len, "x-two", NULL, 0), 0);
  CHECK_STR(out, "x-one; a; b=10, x-two");
  /* What it writes parses back to the same. */
  ws_ext_list_init(&l);
  CHECK_INT(ws_ext_parse(&l, out, len), 0);
  dump(&l, got, sizeof got);
  CHECK_STR(got, "x-one(a,b=10)|x-two()");

  /* Too small: nothing changes; exactly enough (with the NUL) works. */
  len = 0;
  CHECK_INT(ws_ext_build(out, sizeof "x-one; a; b=10" - 1, &len, "x-one", ps, 2), WS_ENOMEM);
  CHECK_INT(len, 0);
  CHECK_INT(ws_ext_build(out, sizeof "x-one; a; b=10", &len, "x-one", ps, 2), 0);
  CHECK_STR(out, "x-one; a; b=10");
  CHECK_INT(ws_ext_build(out, len + 3, &len, "y", NULL, 0), WS_ENOMEM);
  CHECK_INT(len, sizeof "x-one; a; b=10" - 1);
  CHECK_INT(ws_ext_build(out, 0, &len, "y", NULL, 0), WS_ENOMEM);

  /* Not tokens. */
  len = 0;
  CHECK_INT(ws_ext_build(out, sizeof out, &len, "a b", NULL, 0), WS_EINVAL);
  CHECK_INT(ws_ext_build(out, sizeof out, &len, "", NULL, 0), WS_EINVAL);
  ps[1].value = "1 0";
  ps[1].value_len = 3;
  CHECK_INT(ws_ext_build(out, sizeof out, &len, "x", ps, 2), WS_EINVAL);
  ps[1].value_len = 0;
  CHECK_INT(ws_ext_build(out, sizeof out, &len, "x", ps, 2), WS_EINVAL);
  CHECK_INT(len, 0);
}

/* ---- the seam -------------------------------------------------------------------- */

/* A second extension, to show the seam carries more than deflate: it owns RSV2,
 * accepts an offer with no parameters, and its encode/decode xor each byte with 0x20. */
static int fake_destroyed;

static int fake_server(const void *config, const ws_ext_item_t *const *offers, size_t n,
                       char *out, size_t cap, size_t *len, void **state) {
  size_t i;
  (void)config;
  for (i = 0; i < n; i++) {
    if (offers[i]->num_params) continue;
    if (ws_ext_build(out, cap, len, "x-flip", NULL, 0) < 0) return WS_ENOMEM;
    *state = malloc(1);
    return *state ? 1 : WS_ENOMEM;
  }
  return 0;
}

static int fake_offer(const void *config, char *out, size_t cap, size_t *len) {
  (void)config;
  return ws_ext_build(out, cap, len, "x-flip", NULL, 0);
}

static int fake_accept(const void *config, const ws_ext_item_t *r, void **state) {
  (void)config;
  if (r->num_params) return WS_EEXTENSION;
  *state = malloc(1);
  return *state ? 0 : WS_ENOMEM;
}

static int fake_decode(void *state, const char *in, size_t len, int fin, uint64_t max,
                       ws_ext_sink_fn sink, void *ud) {
  char b[64];
  size_t i;
  (void)state;
  (void)fin;
  (void)max;
  for (i = 0; i < len && i < sizeof b; i++) b[i] = (char)(in[i] ^ 0x20);
  return sink(ud, b, i);
}

static int fake_encode(void *state, const char *in, size_t len, ws_bytes_t *out, int *rsv) {
  size_t i;
  (void)state;
  out->data = malloc(len + 1);
  for (i = 0; i < len; i++) out->data[i] = (char)(in[i] ^ 0x20);
  out->len = len;
  out->cap = len + 1;
  *rsv = WS_RSV2;
  return 0;
}

static size_t fake_memory(const void *state) { return state ? 1 : 0; }

static void fake_destroy(void *state) {
  fake_destroyed++;
  free(state);
}

static const ws_extension_t fake_ext = {"x-flip",    WS_RSV2,     0,           fake_server,
                                        fake_offer,  fake_accept, fake_decode,
                                        fake_encode, fake_memory, NULL,        fake_destroy};

static int collect(void *ud, const char *d, size_t n) {
  ws_bytes_t *b = ud;
  memcpy(b->data + b->len, d, n);
  b->len += n;
  return 0;
}

static void test_seam(void) {
  ws_deflate_config_t cfg;
  ws_ext_use_t server[2] = {{&ws_deflate_extension, &cfg, NULL}, {&fake_ext, NULL, NULL}};
  ws_ext_use_t client[2] = {{&ws_deflate_extension, &cfg, NULL}, {&fake_ext, NULL, NULL}};
  static ws_ext_list_t l;
  char hdr[256], resp[256];
  size_t len;

  ws_deflate_config_default(&cfg);
  cfg.threshold = 0;
  /* Client offer -> server response -> client accepts: both extensions, both sides. */
  CHECK_INT(ws_ext_client_offer(client, 2, hdr, sizeof hdr, &len), 0);
  CHECK_STR(hdr, "permessage-deflate; client_max_window_bits, x-flip");
  CHECK_INT(len, strlen(hdr));
  ws_ext_list_init(&l);
  CHECK_INT(ws_ext_parse(&l, hdr, len), 0);
  CHECK_INT(ws_ext_server_negotiate(server, 2, &l, resp, sizeof resp, &len), 0);
  CHECK_STR(resp, "permessage-deflate, x-flip");
  CHECK_INT(ws_ext_rsv(server, 2), WS_RSV1 | WS_RSV2);
  ws_ext_list_init(&l);
  CHECK_INT(ws_ext_parse(&l, resp, len), 0);
  CHECK_INT(ws_ext_client_accept(client, 2, &l), 0);
  CHECK_INT(ws_ext_rsv(client, 2), WS_RSV1 | WS_RSV2);
  CHECK(client[1].ext->memory(client[1].state) == 1);
  CHECK(client[0].ext->memory(client[0].state) >= sizeof(ws_deflate_t));

  /* A message through each extension and back, through the vtable only. */
  {
    static const char msg[] = "Hello, Hello, Hello, Hello, Hello";
    size_t i;
    for (i = 0; i < 2; i++) {
      ws_bytes_t wire = {0}, got = {0};
      int rsv = -1;
      got.data = malloc(256);
      got.cap = 256;
      CHECK_INT(client[i].ext->encode(client[i].state, msg, sizeof msg - 1, &wire, &rsv), 0);
      CHECK_INT(rsv, i == 0 ? WS_RSV1 : WS_RSV2);
      CHECK(wire.len > 0 && wire.len < sizeof msg - 1 + (i == 0 ? 0 : 1));
      CHECK_INT(server[i].ext->decode(server[i].state, wire.data, wire.len, 1, 0, collect,
                                      &got), 0);
      CHECK_MEM(got.data, got.len, msg, sizeof msg - 1);
      ws_bytes_free(&wire);
      ws_bytes_free(&got);
    }
  }

  /* Server: no offers, or only ones it declines: nothing to send. */
  ws_ext_release(server, 2);
  ws_ext_list_init(&l);
  CHECK_INT(ws_ext_parse(&l, "x-other, x-flip; a", sizeof "x-other, x-flip; a" - 1), 0);
  CHECK_INT(ws_ext_server_negotiate(server, 2, &l, hdr, sizeof hdr, &len), 0);
  CHECK_INT(len, 0);
  CHECK_STR(hdr, "");
  CHECK_INT(ws_ext_rsv(server, 2), 0);
  /* Too small a buffer for the response: an error, and no state left behind. */
  ws_ext_list_init(&l);
  CHECK_INT(ws_ext_parse(&l, "permessage-deflate, x-flip", sizeof "permessage-deflate, x-flip" - 1), 0);
  fake_destroyed = 0;
  CHECK_INT(ws_ext_server_negotiate(server, 2, &l, hdr, sizeof "permessage-deflate", &len),
            WS_ENOMEM);
  CHECK(server[0].state == NULL && server[1].state == NULL);
  CHECK_INT(len, 0);
  ws_ext_release(client, 2);

  /* Client: a response it did not allow fails and leaves no state. */
  {
    static const char *const bad[] = {
        "x-other",                                   /* not offered */
        "permessage-deflate, permessage-deflate",    /* twice (RFC 7692 5) */
        "x-flip, x-flip",
        "permessage-deflate; nope",                  /* deflate refuses it */
        "x-flip; a",                                 /* x-flip refuses it */
        "permessage-deflate, x-flip, x-other",
    };
    size_t i;
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
      ws_ext_list_init(&l);
      CHECK_INT(ws_ext_parse(&l, bad[i], strlen(bad[i])), 0);
      CHECK_INT(ws_ext_client_accept(client, 2, &l), WS_EEXTENSION);
      CHECK(client[0].state == NULL && client[1].state == NULL);
    }
    ws_ext_list_init(&l);
    CHECK_INT(ws_ext_client_accept(client, 2, &l), 0); /* none accepted is fine */
    CHECK_INT(ws_ext_rsv(client, 2), 0);
    CHECK_INT(ws_ext_parse(&l, "x-flip", 6), 0);
    CHECK_INT(ws_ext_client_accept(client, 2, &l), 0);
    CHECK_INT(ws_ext_rsv(client, 2), WS_RSV2);
    fake_destroyed = 0;
    ws_ext_release(client, 2);
    CHECK_INT(fake_destroyed, 1);
    CHECK(client[1].state == NULL);
  }

  /* Two extensions may not own one RSV bit: the second is declined. */
  {
    ws_ext_use_t two[2] = {{&ws_deflate_extension, NULL, NULL},
                           {&ws_deflate_extension, NULL, NULL}};
    ws_ext_list_init(&l);
    CHECK_INT(ws_ext_parse(&l, "permessage-deflate", 18), 0);
    CHECK_INT(ws_ext_server_negotiate(two, 2, &l, hdr, sizeof hdr, &len), 0);
    CHECK_STR(hdr, "permessage-deflate");
    CHECK(two[0].state != NULL && two[1].state == NULL);
    ws_ext_release(two, 2);
  }
}

static void test_errors_ext(void) {
  CHECK_INT(ws_err_close_code(WS_EINFLATE), 1007);
  CHECK_INT(ws_err_close_code(WS_ETOOBIG), 1009);
  CHECK_INT(ws_err_close_code(WS_EEXTENSION), 1010);
  CHECK_STR(ws_err_name(WS_EINFLATE), "EINFLATE");
  CHECK_STR(ws_err_name(WS_ETOOBIG), "ETOOBIG");
  CHECK_STR(ws_strerror(WS_EINFLATE), "invalid compressed data");
}

void test_ext(void) {
  test_parse();
  test_parse_head();
  test_build();
  test_seam();
  test_errors_ext();
}
