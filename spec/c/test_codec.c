/* The codecs (codec.h): choosing one per request, and each one's framing, close frame
 * and 101 answer, against the bytes the RFC and the drafts give. */
#include <string.h>

#include "codec.h"
#include "test.h"

static ws_header_t hdrs[64];
static char text[2048];

static ws_http_head_t request(const char *lines) {
  ws_http_head_t h;
  memset(&h, 0, sizeof h);
  h.headers = hdrs;
  h.num_headers = 64;
  snprintf(text, sizeof text, "GET /chat?x=1 HTTP/1.1\r\nHost: example.com\r\n%s\r\n", lines);
  CHECK(ws_http_parse_request(text, strlen(text), &h) > 0);
  return h;
}

#define RFC_LINES                                                                    \
  "Upgrade: websocket\r\nConnection: Upgrade\r\n"                                    \
  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
#define H76_LINES                                                                    \
  "Upgrade: WebSocket\r\nConnection: Upgrade\r\nOrigin: http://example.com\r\n"      \
  "Sec-WebSocket-Key1: 4 @1  46546xW%0l 1 5\r\nSec-WebSocket-Key2: 12998 5 Y3 1  .P00\r\n"
#define H75_LINES "Upgrade: WebSocket\r\nConnection: Upgrade\r\nOrigin: http://example.com\r\n"

static void test_select(void) {
  const ws_codec_t *codec;
  int version;
  const char *why;
  ws_http_head_t h = request(RFC_LINES "Sec-WebSocket-Version: 13\r\n");
  CHECK_INT(ws_codec_select(&h, 1, &codec, &version, &why), 0);
  CHECK(codec == &ws_codec_rfc6455);
  CHECK_INT(version, 13);
  h = request(RFC_LINES "Sec-WebSocket-Version: 8\r\n");
  CHECK_INT(ws_codec_select(&h, 0, &codec, &version, &why), 0);
  CHECK_INT(version, 8);
  CHECK_STR(ws_codec_version_name(version), "hybi-8");

  h = request(H76_LINES);
  CHECK_INT(ws_codec_select(&h, 1, &codec, &version, &why), 0);
  CHECK(codec == &ws_codec_hixie76);
  CHECK_INT(version, 76);
  CHECK_STR(ws_codec_version_name(version), "hixie-76");
  CHECK_INT(codec->handshake_body, 8);
  /* The drafts refused: 426, as an unsupported version. */
  CHECK_INT(ws_codec_select(&h, 0, &codec, &version, &why), 426);
  CHECK(codec == NULL && why != NULL);

  h = request(H75_LINES);
  CHECK_INT(ws_codec_select(&h, 1, &codec, &version, &why), 0);
  CHECK(codec == &ws_codec_hixie75);
  CHECK_STR(ws_codec_version_name(version), "hixie-75");
  CHECK_INT(codec->handshake_body, 0);

  /* Only one -76 key: neither draft. */
  h = request("Upgrade: WebSocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key1: 1 2\r\n");
  CHECK_INT(ws_codec_select(&h, 1, &codec, &version, &why), 400);
  /* A key without a version is RFC 6455 missing its version: 400 or 426, never a draft. */
  h = request(RFC_LINES);
  CHECK(ws_codec_select(&h, 1, &codec, &version, &why) >= 400);
  CHECK(codec == NULL);
  h = request(RFC_LINES "Sec-WebSocket-Version: 12\r\n");
  CHECK_INT(ws_codec_select(&h, 1, &codec, &version, &why), 426);
}

static void test_rfc_framing(void) {
  const ws_codec_t *k = &ws_codec_rfc6455;
  uint8_t out[WS_CODEC_MAX_CLOSE];
  /* RFC 6455 5.7: an unmasked "Hello" is 0x81 0x05 ... */
  CHECK_INT(k->head(out, 0, WS_OP_TEXT, 5, NULL), 2);
  CHECK_INT(out[0], 0x81);
  CHECK_INT(out[1], 0x05);
  CHECK_INT(k->tail(out), 0);
  /* RSV1 (a compressed message) and the 16-bit length form. */
  CHECK_INT(k->head(out, WS_RSV1, WS_OP_BINARY, 256, NULL), 4);
  CHECK_INT(out[0], 0xC2);
  CHECK_INT(out[1], 126);
  CHECK_INT(out[2], 1);
  CHECK_INT(out[3], 0);
  /* A masked close frame with code 1000, unmasked back by the same key. */
  const uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};
  size_t n = k->close(out, 1000, "bye", 3, key);
  CHECK_INT(n, 2 + 4 + 5);
  CHECK_INT(out[0], 0x88);
  CHECK_INT(out[1], 0x80 | 5);
  ws_mask((char *)out + 6, 5, key, 0);
  CHECK_MEM(out + 6, 5, "\x03\xe8" "bye", 5);
  CHECK_INT(k->close(out, 0, NULL, 0, NULL), 2);   /* no code: an empty close */
  CHECK(k->caps & WS_CODEC_BINARY && k->caps & WS_CODEC_PING && k->caps & WS_CODEC_EXTENSIONS);
}

static void test_rfc_response(void) {
  ws_http_head_t h = request(RFC_LINES "Sec-WebSocket-Version: 13\r\n");
  char out[512];
  ws_codec_answer_t a = {&h, NULL, 0, "chat", "permessage-deflate; server_no_context_takeover",
                         "X-A: 1\r\n"};
  int n = ws_codec_rfc6455.response(out, sizeof out, 13, &a);
  CHECK(n > 0);
  out[n > 0 ? n : 0] = 0;
  /* RFC 6455 1.3's example key gives this accept value. */
  CHECK_STR(out, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                 "Sec-WebSocket-Protocol: chat\r\n"
                 "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n"
                 "X-A: 1\r\n\r\n");
  CHECK_INT(ws_codec_rfc6455.response(out, 40, 13, &a), WS_EHEADTOOBIG);
  ws_codec_answer_t bad = {&h, NULL, 0, "a\r\nb", NULL, NULL};
  CHECK_INT(ws_codec_rfc6455.response(out, sizeof out, 13, &bad), WS_EINVAL);
  ws_codec_answer_t badx = {&h, NULL, 0, NULL, NULL, "X-A: 1\n"};
  CHECK_INT(ws_codec_rfc6455.response(out, sizeof out, 13, &badx), WS_EINVAL);
}

static int got_text, got_close;
static char got[64];
static size_t got_len;
static int on_data(void *ud, int opcode, int rsv, char *data, size_t len, int fin) {
  (void)ud, (void)rsv;
  CHECK_INT(opcode, WS_OP_TEXT);
  if (got_len + len <= sizeof got) memcpy(got + got_len, data, len), got_len += len;
  got_text += fin;
  return 0;
}
static int on_control(void *ud, int opcode, char *data, size_t len) {
  (void)ud, (void)data;
  CHECK_INT(opcode, WS_OP_CLOSE);
  CHECK_INT(len, 0);
  got_close++;
  return 0;
}

static void test_hixie_codecs(void) {
  const ws_parser_settings_t s = {on_data, on_control};
  for (int v = 75; v <= 76; v++) {
    const ws_codec_t *k = v == 76 ? &ws_codec_hixie76 : &ws_codec_hixie75;
    uint8_t out[WS_CODEC_MAX_CLOSE];
    CHECK(!(k->caps & (WS_CODEC_BINARY | WS_CODEC_PING | WS_CODEC_EXTENSIONS)));
    CHECK(k->caps & WS_CODEC_UTF8_OUT);
    CHECK_INT(k->head(out, WS_RSV1, WS_OP_TEXT, 5, NULL), 1);
    CHECK_INT(out[0], 0x00);
    CHECK_INT(k->tail(out), 1);
    CHECK_INT(out[0], 0xFF);
    if (v == 76) {
      CHECK_INT(k->close(out, 1000, "x", 1, NULL), 2);
      CHECK_MEM(out, 2, "\xff\x00", 2);
    } else {
      CHECK_INT(k->close(out, 1000, "x", 1, NULL), 0);   /* -75 closes TCP */
    }
    /* A parser through the codec: two frames, a discarded length frame, then the close. */
    ws_codec_parser_t p;
    k->init(&p, WS_ROLE_SERVER, v, 100, 0);
    char in[] = "\x00hi\xff\x80\x02zz\x00there\xff\xff\x00";
    got_text = got_close = 0;
    got_len = 0;
    CHECK(!k->busy(&p));
    CHECK_INT(k->execute(&p, &s, NULL, in, 3), 3);
    CHECK(k->busy(&p));
    CHECK_INT(k->execute(&p, &s, NULL, in + 3, sizeof in - 1 - 3), sizeof in - 1 - 3);
    CHECK(!k->busy(&p));
    CHECK_INT(got_text, 2);
    CHECK_INT(got_close, 1);
    CHECK_MEM(got, got_len, "hithere", 7);
  }
  /* The -76 answer through the codec: the draft's worked example. */
  ws_http_head_t h = request(H76_LINES);
  char out[512];
  ws_codec_answer_t a = {&h, (const uint8_t *)"^n:ds[4U", 1, NULL, NULL, NULL};
  int n = ws_codec_hixie76.response(out, sizeof out, 76, &a);
  CHECK(n > 16);
  CHECK_MEM(out + (n > 16 ? n - 16 : 0), 16, "8jKS'y:G*Co,Wxa-", 16);
  CHECK(n > 0 && strstr(out, "Sec-WebSocket-Location: wss://example.com/chat?x=1\r\n") != NULL);
  ws_codec_answer_t withext = {&h, (const uint8_t *)"^n:ds[4U", 0, NULL, "permessage-deflate",
                               NULL};
  CHECK_INT(ws_codec_hixie76.response(out, sizeof out, 76, &withext), WS_EINVAL);
  h = request(H75_LINES);
  ws_codec_answer_t a75 = {&h, NULL, 0, "sample", NULL, NULL};
  n = ws_codec_hixie75.response(out, sizeof out, 75, &a75);
  CHECK(n > 0);
  out[n > 0 ? n : 0] = 0;
  CHECK(strncmp(out, "HTTP/1.1 101 Web Socket Protocol Handshake\r\n", 44) == 0);
  CHECK(strstr(out, "WebSocket-Location: ws://example.com/chat?x=1\r\n") != NULL);
  CHECK(strstr(out, "WebSocket-Protocol: sample\r\n") != NULL);
}

void test_codec(void) {
  test_select();
  test_rfc_framing();
  test_rfc_response();
  test_hixie_codecs();
}
