/* The three codecs: RFC 6455 and the hixie-76 and hixie-75 drafts (codec.h). */
#include <stdio.h>
#include <string.h>

#include "codec.h"

/* ---- RFC 6455 ---------------------------------------------------------------- */

static void rfc_init(ws_codec_parser_t *p, int role, int version, uint64_t max_length,
                     uint32_t max_fragments) {
  (void)version;   /* 7, 8 and 13 frame alike */
  ws_parser_init(&p->rfc, role, max_length);
  p->rfc.max_fragments = max_fragments;
}

static ssize_t rfc_execute(ws_codec_parser_t *p, const ws_parser_settings_t *s, void *ud,
                           char *buf, size_t len) {
  return ws_parser_execute(&p->rfc, s, ud, buf, len);
}

static int rfc_busy(const ws_codec_parser_t *p) {
  return p->rfc.in_frame || p->rfc.msg_opcode;
}

static size_t rfc_head(uint8_t *out, int rsv, int opcode, uint64_t len,
                       const uint8_t *mask_key) {
  return ws_frame_header(out, 1, rsv, opcode, len, mask_key);
}

static size_t no_tail(uint8_t *out) {
  (void)out;
  return 0;
}

static size_t rfc_close(uint8_t *out, unsigned code, const char *reason, size_t reason_len,
                        const uint8_t *mask_key) {
  char payload[WS_MAX_CONTROL];
  size_t n = ws_close_build(payload, code, reason, reason_len);
  size_t hl = ws_frame_header(out, 1, 0, WS_OP_CLOSE, n, mask_key);
  memcpy(out + hl, payload, n);
  if (mask_key) ws_mask((char *)out + hl, n, mask_key, 0);
  return hl + n;
}

/* Header lines a caller gives: CRLF-ended, no bare CR or LF, so they cannot end the head
 * early. */
static int lines_ok(const char *s) {
  while (s && *s) {
    const char *start = s;
    while (*s && *s != '\r' && *s != '\n') s++;
    if (s == start || s[0] != '\r' || s[1] != '\n') return 0;
    s += 2;
  }
  return 1;
}

static int value_ok(const char *s) {
  for (; s && *s; s++)
    if ((unsigned char)*s < 0x20 || *s == 0x7F) return 0;
  return 1;
}

static int rfc_response(char *out, size_t cap, int version, const ws_codec_answer_t *a) {
  (void)version;
  const ws_header_t *key = ws_http_find(a->request, "Sec-WebSocket-Key");
  if (!key || !lines_ok(a->extra) || !value_ok(a->protocol) || !value_ok(a->extensions))
    return WS_EINVAL;
  char accept[29];
  ws_handshake_accept(key->value, key->value_len, accept);
  int p = a->protocol && *a->protocol, e = a->extensions && *a->extensions;
  int n = snprintf(out, cap,
                   "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n%s%s%s%s%s%s%s\r\n",
                   accept, p ? "Sec-WebSocket-Protocol: " : "", p ? a->protocol : "",
                   p ? "\r\n" : "", e ? "Sec-WebSocket-Extensions: " : "",
                   e ? a->extensions : "", e ? "\r\n" : "", a->extra ? a->extra : "");
  if (n < 0) return WS_EINTERNAL;
  return (size_t)n >= cap ? WS_EHEADTOOBIG : n;
}

const ws_codec_t ws_codec_rfc6455 = {
    WS_CODEC_BINARY | WS_CODEC_PING | WS_CODEC_CLOSE_CODES | WS_CODEC_EXTENSIONS |
        WS_CODEC_CLIENT,
    0, rfc_init, rfc_execute, rfc_busy, rfc_head, no_tail, rfc_close, rfc_response};

/* ---- hixie-76 and hixie-75 ---------------------------------------------------- */

static void hixie_init(ws_codec_parser_t *p, int role, int version, uint64_t max_length,
                       uint32_t max_fragments) {
  (void)role;             /* server only */
  (void)max_fragments;    /* a draft message is one frame */
  ws_hixie_parser_init(&p->hixie, version, max_length);
}

static ssize_t hixie_execute(ws_codec_parser_t *p, const ws_parser_settings_t *s, void *ud,
                             char *buf, size_t len) {
  return ws_hixie_parser_execute(&p->hixie, s, ud, buf, len);
}

static int hixie_busy(const ws_codec_parser_t *p) { return ws_hixie_parser_busy(&p->hixie); }

static size_t hixie_head(uint8_t *out, int rsv, int opcode, uint64_t len,
                         const uint8_t *mask_key) {
  (void)rsv, (void)opcode, (void)len, (void)mask_key;   /* text only, never masked */
  memcpy(out, WS_HIXIE_TEXT_START, WS_HIXIE_TEXT_START_LEN);
  return WS_HIXIE_TEXT_START_LEN;
}

static size_t hixie_tail(uint8_t *out) {
  memcpy(out, WS_HIXIE_TEXT_END, WS_HIXIE_TEXT_END_LEN);
  return WS_HIXIE_TEXT_END_LEN;
}

static size_t hixie76_close(uint8_t *out, unsigned code, const char *reason,
                            size_t reason_len, const uint8_t *mask_key) {
  (void)code, (void)reason, (void)reason_len, (void)mask_key;   /* -76 has none of them */
  memcpy(out, WS_HIXIE_CLOSE, WS_HIXIE_CLOSE_LEN);
  return WS_HIXIE_CLOSE_LEN;
}

static size_t hixie75_close(uint8_t *out, unsigned code, const char *reason,
                            size_t reason_len, const uint8_t *mask_key) {
  (void)out, (void)code, (void)reason, (void)reason_len, (void)mask_key;
  return 0;   /* -75 closes the TCP connection */
}

static int hixie_response(char *out, size_t cap, int version, const ws_codec_answer_t *a) {
  if (a->extensions && *a->extensions) return WS_EINVAL;
  return ws_hixie_response(out, cap, a->request, version, a->secure, a->protocol, a->extra,
                           a->body);
}

const ws_codec_t ws_codec_hixie76 = {WS_CODEC_UTF8_OUT, WS_HIXIE76_KEY3_LEN, hixie_init,
                                     hixie_execute, hixie_busy, hixie_head, hixie_tail,
                                     hixie76_close, hixie_response};
const ws_codec_t ws_codec_hixie75 = {WS_CODEC_UTF8_OUT, 0, hixie_init, hixie_execute,
                                     hixie_busy, hixie_head, hixie_tail, hixie75_close,
                                     hixie_response};

/* ---- choosing one -------------------------------------------------------------- */

int ws_codec_select(const ws_http_head_t *h, int drafts, const ws_codec_t **codec,
                    int *version, const char **why) {
  *codec = NULL;
  *why = NULL;
  int draft = !ws_http_find(h, "Sec-WebSocket-Version") && !ws_http_find(h, "Sec-WebSocket-Key");
  if (draft && !drafts) {
    *why = "the hixie drafts are not accepted here: use Sec-WebSocket-Version 13";
    return 426;
  }
  if (draft) {
    int status = ws_hixie_check_request(h, version, why);
    if (status) return status;
    *codec = *version == 76 ? &ws_codec_hixie76 : &ws_codec_hixie75;
    return 0;
  }
  int status = ws_handshake_check_request(h, version, why);
  if (status) return status;
  *codec = &ws_codec_rfc6455;
  return 0;
}

const char *ws_codec_version_name(int version) {
  switch (version) {
  case 7: return "hybi-7";
  case 8: return "hybi-8";
  case 75: return "hixie-75";
  case 76: return "hixie-76";
  default: return "hybi-13";
  }
}
