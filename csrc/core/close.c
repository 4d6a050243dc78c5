/* Close frame payloads: a 2-byte code and a UTF-8 reason (RFC 6455 5.5.1, 7.4). */
#include <string.h>

#include "ws.h"

#define WS__CLOSE_REASON_MAX (WS_MAX_CONTROL - 2)

int ws_close_code_valid(unsigned code) {
  /* 7.4.1/7.4.2 and the IANA registry: 1004 is reserved, 1005, 1006 and 1015 must
   * never be sent, 1016-2999 are unassigned. */
  if (code >= 1000 && code <= 1003) return 1;
  if (code >= 1007 && code <= 1014) return 1;
  return code >= 3000 && code <= 4999;
}

int ws_close_code_app_valid(unsigned code) {
  /* The WebSocket API's close(): 1000 or a code of the application's own range. */
  return code == 1000 || (code >= 3000 && code <= 4999);
}

int ws_close_parse(const char *data, size_t len, unsigned *code, const char **reason,
                   size_t *reason_len) {
  uint32_t st = WS_UTF8_ACCEPT;

  *reason = "";
  *reason_len = 0;
  if (len == 0) {
    *code = 1005; /* 7.1.5: no status code was present */
    return 0;
  }
  *code = 0;
  /* 5.5.1: a body starts with a 2-byte code; 5.5: at most 125 bytes in all. */
  if (len < 2 || len > WS_MAX_CONTROL) return WS_EPROTOCOL;
  *code = (unsigned)(uint8_t)data[0] << 8 | (uint8_t)data[1];
  if (!ws_close_code_valid(*code)) return WS_EPROTOCOL;
  *reason = data + 2;
  *reason_len = len - 2;
  /* 5.5.1: the reason is UTF-8; 8.1: invalid text fails the connection (1007). */
  if (ws_utf8_validate(&st, (const uint8_t *)data + 2, len - 2) < 0 || st != WS_UTF8_ACCEPT)
    return WS_EUTF8;
  return 0;
}

size_t ws_close_build(char *out, unsigned code, const char *reason, size_t reason_len) {
  if (code == 0 || code == 1005) return 0; /* 7.1.5: 1005 means "no code sent" */
  out[0] = (char)(uint8_t)(code >> 8);
  out[1] = (char)(uint8_t)code;
  if (!reason) reason_len = 0;
  if (reason_len > WS__CLOSE_REASON_MAX) {
    /* Cut at a character boundary, so that a valid reason stays valid UTF-8. */
    int back = 0;
    reason_len = WS__CLOSE_REASON_MAX;
    while (back++ < 3 && ((uint8_t)reason[reason_len] & 0xC0) == 0x80) reason_len--;
  }
  if (reason_len) memcpy(out + 2, reason, reason_len);
  return 2 + reason_len;
}
