/* csrc/core/handshake.c: the opening handshake, RFC 6455 section 4. */
#include <stdlib.h>

#include <openssl/evp.h>
#include <openssl/sha.h>

#include "test.h"
#include "ws.h"

#define MAXH 16

static ws_header_t hdrs[MAXH];
static char text[4096];

/* Parses a head built from a request line and header lines (joined by CRLF). */
static ws_http_head_t head(int response, const char *first, const char *lines) {
  ws_http_head_t h;
  int n;
  snprintf(text, sizeof text, "%s\r\n%s\r\n", first, lines);
  memset(&h, 0, sizeof h);
  h.headers = hdrs;
  h.num_headers = MAXH;
  n = response ? ws_http_parse_response(text, strlen(text), &h)
               : ws_http_parse_request(text, strlen(text), &h);
  if (n != (int)strlen(text)) {
    fprintf(stderr, "cannot parse test head (%d):\n%s", n, text);
    h.num_headers = 0;
  }
  return h;
}

#define GOOD_HEADERS                                                          \
  "Host: server.example.com\r\n"                                              \
  "Upgrade: websocket\r\n"                                                    \
  "Connection: Upgrade\r\n"                                                   \
  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"                           \
  "Origin: http://example.com\r\n"                                            \
  "Sec-WebSocket-Version: 13\r\n"

static int check_req(const char *first, const char *lines, int *version, const char **why) {
  ws_http_head_t h = head(0, first, lines);
  return ws_handshake_check_request(&h, version, why);
}

#define REQ_OK(lines, v)                                                      \
  do {                                                                        \
    int ver_;                                                                 \
    const char *why_;                                                         \
    CHECK_INT(check_req("GET /chat HTTP/1.1", lines, &ver_, &why_), 0);        \
    CHECK_INT(ver_, v);                                                       \
  } while (0)

#define REQ_BAD(first, lines, status, reason)                                 \
  do {                                                                        \
    int ver_;                                                                 \
    const char *why_;                                                         \
    CHECK_INT(check_req(first, lines, &ver_, &why_), status);                 \
    CHECK_STR(why_, reason);                                                  \
  } while (0)

static void test_accept(void) {
  char out[29], key[25], key2[25];
  size_t i;

  /* RFC 6455 1.3 and 4.2.2. */
  ws_handshake_accept("dGhlIHNhbXBsZSBub25jZQ==", 24, out);
  CHECK_STR(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");

  /* A key too long for the stack buffer gives the same as hashing key + GUID here. */
  {
    char longkey[300], joined[400], want[29];
    unsigned char md[SHA_DIGEST_LENGTH];
    for (i = 0; i < sizeof longkey; i++) longkey[i] = (char)('A' + i % 26);
    memcpy(joined, longkey, sizeof longkey);
    memcpy(joined + sizeof longkey, "258EAFA5-E914-47DA-95CA-C5AB0DC85B11", 36);
    SHA1((unsigned char *)joined, sizeof longkey + 36, md);
    EVP_EncodeBlock((unsigned char *)want, md, SHA_DIGEST_LENGTH);
    ws_handshake_accept(longkey, sizeof longkey, out);
    CHECK_STR(out, want);
    /* and around the boundary between the two ways */
    for (i = 80; i < 100; i++) {
      memcpy(joined, longkey, i);
      memcpy(joined + i, "258EAFA5-E914-47DA-95CA-C5AB0DC85B11", 36);
      SHA1((unsigned char *)joined, i + 36, md);
      EVP_EncodeBlock((unsigned char *)want, md, SHA_DIGEST_LENGTH);
      ws_handshake_accept(longkey, i, out);
      CHECK_STR(out, want);
    }
  }

  /* Client keys: 24 characters of base64 for 16 bytes, fresh each time. */
  CHECK_INT(ws_handshake_client_key(key), 0);
  CHECK_INT(ws_handshake_client_key(key2), 0);
  CHECK_INT(strlen(key), 24);
  CHECK(key[22] == '=' && key[23] == '=');
  CHECK(strcmp(key, key2) != 0);
  {
    unsigned char raw[20];
    CHECK_INT(EVP_DecodeBlock(raw, (unsigned char *)key, 24), 18); /* 16 + 2 padding */
  }

  {
    unsigned char a[64], b[64];
    memset(a, 0, sizeof a);
    memset(b, 0, sizeof b);
    CHECK_INT(ws_random(a, sizeof a), 0);
    CHECK_INT(ws_random(b, sizeof b), 0);
    CHECK(memcmp(a, b, sizeof a) != 0);
    CHECK_INT(ws_random(a, 0), 0);
  }
}

static void test_request(void) {
  ws_http_head_t h;
  int ver;
  const char *why;

  REQ_OK(GOOD_HEADERS, 13);
  REQ_OK("Host: x\r\nUpgrade: WebSocket\r\nConnection: keep-alive, Upgrade\r\n"
         "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==\r\nSec-WebSocket-Version: 8\r\n", 8);
  REQ_OK("Host: x\r\nUpgrade: h2c, websocket\r\nConnection: upgrade\r\n"
         "Connection: keep-alive\r\n"
         "Sec-WebSocket-Key: +/+/+/+/+/+/+/+/+/+/+w==\r\nSec-WebSocket-Version: 7\r\n", 7);
  {
    /* HTTP/1.2, should it come, is still 1.1 or later. */
    CHECK_INT(check_req("GET / HTTP/1.2", GOOD_HEADERS, &ver, &why), 0);
  }

  REQ_BAD("POST /chat HTTP/1.1", GOOD_HEADERS, 400, "method must be GET");
  REQ_BAD("get /chat HTTP/1.1", GOOD_HEADERS, 400, "method must be GET");
  REQ_BAD("GET /chat HTTP/1.0", GOOD_HEADERS, 400, "HTTP/1.1 or later required");
  REQ_BAD("GET /chat HTTP/1.1",
          "Upgrade: websocket\r\nConnection: Upgrade\r\n"
          "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n",
          400, "missing Host");
  REQ_BAD("GET /chat HTTP/1.1",
          "Host: x\r\nConnection: Upgrade\r\n"
          "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n",
          400, "Upgrade must be websocket");
  REQ_BAD("GET /chat HTTP/1.1",
          "Host: x\r\nUpgrade: websockets\r\nConnection: Upgrade\r\n"
          "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n",
          400, "Upgrade must be websocket");
  REQ_BAD("GET /chat HTTP/1.1",
          "Host: x\r\nUpgrade: websocket\r\nConnection: keep-alive\r\n"
          "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n",
          400, "Connection must include Upgrade");
  /* 4.4: versions we do not speak get 426. */
  REQ_BAD("GET /chat HTTP/1.1",
          "Host: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
          "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
          426, "missing Sec-WebSocket-Version");
  REQ_BAD("GET /chat HTTP/1.1",
          "Host: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
          "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 12\r\n",
          426, "unsupported Sec-WebSocket-Version");
  REQ_BAD("GET /chat HTTP/1.1",
          "Host: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
          "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 013\r\n",
          426, "unsupported Sec-WebSocket-Version");
  REQ_BAD("GET /chat HTTP/1.1",
          "Host: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
          "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13, 8\r\n",
          426, "unsupported Sec-WebSocket-Version");
  /* 4.2.1 item 5: the key, once, base64 of 16 bytes. */
  REQ_BAD("GET /chat HTTP/1.1",
          "Host: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n",
          400, "missing Sec-WebSocket-Key");
  REQ_BAD("GET /chat HTTP/1.1",
          "Host: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
          "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
          "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
          400, "more than one Sec-WebSocket-Key");
  REQ_BAD("GET /chat HTTP/1.1",
          "Host: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
          "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=\r\n",
          400, "invalid Sec-WebSocket-Key");
  REQ_BAD("GET /chat HTTP/1.1",
          "Host: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
          "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ\r\n",
          400, "invalid Sec-WebSocket-Key");
  REQ_BAD("GET /chat HTTP/1.1",
          "Host: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
          "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==AA\r\n",
          400, "invalid Sec-WebSocket-Key");
  REQ_BAD("GET /chat HTTP/1.1",
          "Host: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
          "Sec-WebSocket-Key: dGhlIHNhbXBs*ZSBub25jZQ==\r\n",
          400, "invalid Sec-WebSocket-Key");
  REQ_BAD("GET /chat HTTP/1.1",
          "Host: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
          "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=A\r\n",
          400, "invalid Sec-WebSocket-Key");
  REQ_BAD("GET /chat HTTP/1.1",
          "Host: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
          "Sec-WebSocket-Key: \r\n",
          400, "invalid Sec-WebSocket-Key");

  /* is_upgrade only looks at Upgrade. */
  h = head(0, "GET / HTTP/1.1", "Host: x\r\nUpgrade: websocket\r\n");
  CHECK(ws_handshake_is_upgrade(&h));
  h = head(0, "GET / HTTP/1.1", "Host: x\r\nUpgrade: h2c\r\nUpgrade: WebSocket\r\n");
  CHECK(ws_handshake_is_upgrade(&h));
  h = head(0, "GET / HTTP/1.1", "Host: x\r\nUpgrade: h2c\r\n");
  CHECK(!ws_handshake_is_upgrade(&h));
  h = head(0, "GET / HTTP/1.1", "Host: x\r\nConnection: Upgrade\r\n");
  CHECK(!ws_handshake_is_upgrade(&h));
}

static int check_res(const char *first, const char *lines, const char *key,
                     const char *offered, const char **why) {
  ws_http_head_t h = head(1, first, lines);
  return ws_handshake_check_response(&h, key, offered, why);
}

#define RFC_KEY "dGhlIHNhbXBsZSBub25jZQ=="
#define RES_OK "Upgrade: websocket\r\nConnection: Upgrade\r\n" \
               "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
#define LINE101 "HTTP/1.1 101 Switching Protocols"

static void test_response(void) {
  const char *why;

  CHECK_INT(check_res(LINE101, RES_OK, RFC_KEY, NULL, &why), 0);
  CHECK_INT(check_res(LINE101, RES_OK, RFC_KEY, "chat, superchat", &why), 0);
  CHECK_INT(check_res(LINE101, RES_OK "Sec-WebSocket-Protocol: chat\r\n", RFC_KEY,
                      "chat, superchat", &why), 0);
  CHECK_INT(check_res(LINE101, RES_OK "Sec-WebSocket-Protocol: superchat\r\n", RFC_KEY,
                      "chat,superchat", &why), 0);
  CHECK_INT(check_res(LINE101, "upgrade: WebSocket\r\nconnection: upgrade\r\n"
                      "sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n",
                      RFC_KEY, NULL, &why), 0);

  CHECK_INT(check_res("HTTP/1.1 200 OK", RES_OK, RFC_KEY, NULL, &why), WS_EHANDSHAKE);
  CHECK_STR(why, "unexpected response status");
  CHECK_INT(check_res(LINE101, "Connection: Upgrade\r\n"
                      "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n",
                      RFC_KEY, NULL, &why), WS_EHANDSHAKE);
  CHECK_STR(why, "Upgrade is not websocket");
  CHECK_INT(check_res(LINE101, "Upgrade: websocket\r\n"
                      "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n",
                      RFC_KEY, NULL, &why), WS_EHANDSHAKE);
  CHECK_STR(why, "Connection is not Upgrade");
  CHECK_INT(check_res(LINE101, "Upgrade: websocket\r\nConnection: Upgrade\r\n", RFC_KEY,
                      NULL, &why), WS_EHANDSHAKE);
  CHECK_STR(why, "Sec-WebSocket-Accept mismatch");
  CHECK_INT(check_res(LINE101, RES_OK, "AAAAAAAAAAAAAAAAAAAAAA==", NULL, &why),
            WS_EHANDSHAKE);
  CHECK_STR(why, "Sec-WebSocket-Accept mismatch");
  CHECK_INT(check_res(LINE101, "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                      "Sec-WebSocket-Accept: S3PPLMBITXAQ9KYGZZHZRBK+XOO=\r\n",
                      RFC_KEY, NULL, &why), WS_EHANDSHAKE);
  CHECK_INT(check_res(LINE101, RES_OK "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n",
                      RFC_KEY, NULL, &why), WS_EHANDSHAKE);

  /* Sec-WebSocket-Protocol: one of those offered, exactly. */
  CHECK_INT(check_res(LINE101, RES_OK "Sec-WebSocket-Protocol: chat\r\n", RFC_KEY, NULL, &why),
            WS_EHANDSHAKE);
  CHECK_STR(why, "Sec-WebSocket-Protocol was not offered");
  CHECK_INT(check_res(LINE101, RES_OK "Sec-WebSocket-Protocol: Chat\r\n", RFC_KEY, "chat",
                      &why), WS_EHANDSHAKE);
  CHECK_INT(check_res(LINE101, RES_OK "Sec-WebSocket-Protocol: cha\r\n", RFC_KEY, "chat",
                      &why), WS_EHANDSHAKE);
  CHECK_INT(check_res(LINE101, RES_OK "Sec-WebSocket-Protocol: chat, superchat\r\n", RFC_KEY,
                      "chat, superchat", &why), WS_EHANDSHAKE);
  CHECK_INT(check_res(LINE101, RES_OK "Sec-WebSocket-Protocol: chat\r\n"
                      "Sec-WebSocket-Protocol: chat\r\n", RFC_KEY, "chat", &why),
            WS_EHANDSHAKE);
  CHECK_INT(check_res(LINE101, RES_OK "Sec-WebSocket-Protocol:\r\n", RFC_KEY, "chat", &why),
            WS_EHANDSHAKE);
  CHECK_INT(check_res(LINE101, RES_OK "Sec-WebSocket-Protocol: \r\n", RFC_KEY, "", &why),
            WS_EHANDSHAKE);

  /* A round trip: a fresh key, the server's check and accept, the client's check. */
  {
    char key[25], accept[29], lines[512];
    int ver;
    const char *w;
    CHECK_INT(ws_handshake_client_key(key), 0);
    snprintf(lines, sizeof lines,
             "Host: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n", key);
    CHECK_INT(check_req("GET / HTTP/1.1", lines, &ver, &w), 0);
    ws_handshake_accept(key, 24, accept);
    snprintf(lines, sizeof lines,
             "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n", accept);
    CHECK_INT(check_res(LINE101, lines, key, NULL, &w), 0);
  }
}

void test_handshake(void) {
  test_accept();
  test_request();
  test_response();
}
