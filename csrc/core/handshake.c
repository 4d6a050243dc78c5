/* The opening handshake of RFC 6455 section 4: checking an upgrade request (server),
 * making a key and checking the response (client), and Sec-WebSocket-Accept. */
#include <limits.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "ws.h"

/* 1.3: the GUID appended to the key before hashing. */
static const char ws__guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/* Is this header called name (case-insensitive)? One comparison, in ws_http_find. */
static int ws__header_is(const ws_header_t *hd, const char *name) {
  ws_http_head_t one = {0};
  one.headers = (ws_header_t *)hd;
  one.num_headers = 1;
  return ws_http_find(&one, name) != NULL;
}

/* Does any header of this name hold token? Several headers of one name are one
 * comma-separated list (RFC 9110 5.3). */
static int ws__has_token(const ws_http_head_t *h, const char *name, const char *token) {
  size_t i;
  for (i = 0; i < h->num_headers; i++) {
    const ws_header_t *hd = &h->headers[i];
    if (ws__header_is(hd, name) && ws_http_has_token(hd->value, hd->value_len, token))
      return 1;
  }
  return 0;
}

/* How many headers have this name, and the first of them. */
static size_t ws__count(const ws_http_head_t *h, const char *name, const ws_header_t **first) {
  size_t i, count = 0;
  *first = NULL;
  for (i = 0; i < h->num_headers; i++) {
    if (ws__header_is(&h->headers[i], name)) {
      if (!count) *first = &h->headers[i];
      count++;
    }
  }
  return count;
}

static int ws__value_is(const ws_header_t *hd, const char *s) {
  size_t n = strlen(s);
  return hd->value_len == n && memcmp(hd->value, s, n) == 0;
}

static int ws__base64_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
         c == '+' || c == '/';
}

/* 4.2.1: the key is base64 of 16 bytes: 22 characters of the alphabet, then "==". */
static int ws__key_valid(const ws_header_t *hd) {
  size_t i;
  if (hd->value_len != 24 || hd->value[22] != '=' || hd->value[23] != '=') return 0;
  for (i = 0; i < 22; i++)
    if (!ws__base64_char(hd->value[i])) return 0;
  return 1;
}

int ws_handshake_is_upgrade(const ws_http_head_t *h) {
  return ws__has_token(h, "Upgrade", "websocket");
}

int ws_handshake_check_request(const ws_http_head_t *h, int *version, const char **why) {
  const ws_header_t *hd;

  *version = 0;
  *why = NULL;
  /* 4.2.1, items 1-6, in order. */
  if (!h->method || h->method_len != 3 || memcmp(h->method, "GET", 3) != 0) {
    *why = "method must be GET";
    return 400;
  }
  if (h->minor_version < 1) {
    *why = "HTTP/1.1 or later required";
    return 400;
  }
  if (!ws_http_find(h, "Host")) {
    *why = "missing Host";
    return 400;
  }
  /* An upgrade request has no body (4.1: the client sends a GET; RFC 9110 9.3.1 gives a
   * GET body no meaning). Taking one would parse the body's bytes as frames. */
  if (ws__count(h, "Content-Length", &hd) > 1 || (hd && !ws__value_is(hd, "0")) ||
      ws_http_find(h, "Transfer-Encoding")) {
    *why = "an upgrade request must not have a body";
    return 400;
  }
  if (!ws__has_token(h, "Upgrade", "websocket")) {
    *why = "Upgrade must be websocket";
    return 400;
  }
  if (!ws__has_token(h, "Connection", "upgrade")) {
    *why = "Connection must include Upgrade";
    return 400;
  }
  /* 4.4: an unsupported version gets 426 and the versions we speak. */
  if (ws__count(h, "Sec-WebSocket-Version", &hd) != 1) {
    *why = hd ? "more than one Sec-WebSocket-Version" : "missing Sec-WebSocket-Version";
    return 426;
  }
  if (ws__value_is(hd, "13")) *version = 13;
  else if (ws__value_is(hd, "8")) *version = 8;
  else if (ws__value_is(hd, "7")) *version = 7;
  else {
    *why = "unsupported Sec-WebSocket-Version";
    return 426;
  }
  if (ws__count(h, "Sec-WebSocket-Key", &hd) != 1) {
    *version = 0;
    *why = hd ? "more than one Sec-WebSocket-Key" : "missing Sec-WebSocket-Key";
    return 400;
  }
  if (!ws__key_valid(hd)) {
    *version = 0;
    *why = "invalid Sec-WebSocket-Key";
    return 400;
  }
  return 0;
}

void ws_handshake_accept(const char *key, size_t key_len, char out[29]) {
  unsigned char md[SHA_DIGEST_LENGTH];
  char buf[128];

  /* 4.2.2 item 5.4: base64(SHA-1(key + GUID)). A real key is 24 bytes; a longer one
   * is hashed in two steps rather than cut. */
  if (key_len <= sizeof buf - (sizeof ws__guid - 1)) {
    memcpy(buf, key, key_len);
    memcpy(buf + key_len, ws__guid, sizeof ws__guid - 1);
    SHA1((const unsigned char *)buf, key_len + sizeof ws__guid - 1, md);
  } else {
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx || !EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) ||
        !EVP_DigestUpdate(ctx, key, key_len) ||
        !EVP_DigestUpdate(ctx, ws__guid, sizeof ws__guid - 1) ||
        !EVP_DigestFinal_ex(ctx, md, NULL)) {
      EVP_MD_CTX_free(ctx);
      out[0] = '\0'; /* matches no peer's accept value */
      return;
    }
    EVP_MD_CTX_free(ctx);
  }
  EVP_EncodeBlock((unsigned char *)out, md, SHA_DIGEST_LENGTH);
}

int ws_random(void *buf, size_t len) {
  unsigned char *p = buf;
  while (len > 0) {
    int n = len > INT_MAX ? INT_MAX : (int)len;
    if (RAND_bytes(p, n) != 1) return WS_EINTERNAL;
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

int ws_handshake_client_key(char out[25]) {
  unsigned char nonce[16];
  /* 4.1 item 7: a nonce of 16 random bytes, base64-encoded. */
  if (ws_random(nonce, sizeof nonce) < 0) {
    out[0] = '\0';
    return WS_EINTERNAL;
  }
  EVP_EncodeBlock((unsigned char *)out, nonce, sizeof nonce);
  return 0;
}

/* Is value (n bytes) exactly one of the comma-separated entries of list? */
static int ws__offered(const char *list, const char *value, size_t n) {
  const char *p = list;
  while (*p) {
    const char *start, *e;
    while (*p == ' ' || *p == '\t' || *p == ',') p++;
    start = p;
    while (*p && *p != ',') p++;
    e = p;
    while (e > start && (e[-1] == ' ' || e[-1] == '\t')) e--;
    if (e > start && (size_t)(e - start) == n && memcmp(start, value, n) == 0) return 1;
  }
  return 0;
}

int ws_handshake_check_response(const ws_http_head_t *h, const char *key,
                                const char *offered, const char **why) {
  return ws_handshake_check_response_ext(h, key, offered, 0, why);
}

int ws_handshake_check_response_ext(const ws_http_head_t *h, const char *key,
                                    const char *offered, int extensions_offered,
                                    const char **why) {
  const ws_header_t *hd;
  char expect[29];

  *why = NULL;
  /* 4.1, "If the server's response is not 101..." and the checks after it, in order. */
  if (h->status != 101) {
    *why = "unexpected response status";
    return WS_EHANDSHAKE;
  }
  if (!ws__has_token(h, "Upgrade", "websocket")) {
    *why = "Upgrade is not websocket";
    return WS_EHANDSHAKE;
  }
  if (!ws__has_token(h, "Connection", "upgrade")) {
    *why = "Connection is not Upgrade";
    return WS_EHANDSHAKE;
  }
  ws_handshake_accept(key, strlen(key), expect);
  if (ws__count(h, "Sec-WebSocket-Accept", &hd) != 1 || !ws__value_is(hd, expect)) {
    *why = "Sec-WebSocket-Accept mismatch";
    return WS_EHANDSHAKE;
  }
  /* The server picks at most one of the protocols the client offered. */
  if (ws__count(h, "Sec-WebSocket-Protocol", &hd) > 1 ||
      (hd && !(offered && hd->value_len && ws__offered(offered, hd->value, hd->value_len)))) {
    *why = "Sec-WebSocket-Protocol was not offered";
    return WS_EHANDSHAKE;
  }
  /* 4.1: an extension the client did not offer fails the connection. A client that
   * offered some checks the answer itself (ext.h, ws_ext_client_accept). */
  for (size_t i = 0; i < h->num_headers && !extensions_offered; i++)
    if (ws__header_is(&h->headers[i], "Sec-WebSocket-Extensions") && h->headers[i].value_len) {
      *why = "Sec-WebSocket-Extensions names an extension that was not offered";
      return WS_EHANDSHAKE;
    }
  return 0;
}
