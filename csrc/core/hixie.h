/* The hixie-75 and hixie-76 drafts of WebSocket (draft-hixie-thewebsocketprotocol-75 and
 * -76), server side only: checking the opening handshake, writing its response, and the
 * 0x00 ... 0xFF framing as a push parser with the contract of ws_parser_execute, so a
 * connection drives either codec the same way. Sans-I/O, like the rest of csrc/core. */
#ifndef LUAWS_HIXIE_H
#define LUAWS_HIXIE_H

#include "ws.h"

/* ---- opening handshake ------------------------------------------------------ */

#define WS_HIXIE76_KEY3_LEN 8    /* -76 5.2: the bytes that follow the request head */
#define WS_HIXIE76_ANSWER_LEN 16 /* -76 5.2: the MD5 digest that follows the response */

/* Server: checks an upgrade request of either draft (GET, HTTP/1.1, one Host, a path as
 * target, Upgrade: WebSocket, Connection: Upgrade, no Sec-WebSocket-Version). Both
 * Sec-WebSocket-Key1 and Key2, each valid: *version = 76; neither: *version = 75.
 * Returns 0, or the HTTP status to answer (400) and *why. Origin is not required.
 * For 76 the answer needs key3, the WS_HIXIE76_KEY3_LEN bytes that follow the head (no
 * Content-Length announces them), so the caller reads those before responding. */
int ws_hixie_check_request(const ws_http_head_t *h, int *version, const char **why);

/* The subprotocol the client asked for (-76: Sec-WebSocket-Protocol, -75:
 * WebSocket-Protocol), or NULL. It is one name, not a list, in both drafts. */
const ws_header_t *ws_hixie_requested_protocol(const ws_http_head_t *h, int version);

/* -76 5.2: a key's digits read as one decimal number, divided by the key's spaces. 0 and
 * *value, or WS_EHANDSHAKE when the key has no space, the number is not a multiple of
 * the spaces, or the quotient does not fit 32 bits. */
int ws_hixie76_key_value(const char *key, size_t len, uint32_t *value);

/* -76 5.2: MD5 of n1 and n2 (each 4 bytes, big-endian) and key3. 0, or WS_EINTERNAL if
 * libcrypto has no MD5 (a FIPS-only build). */
int ws_hixie76_answer(uint32_t n1, uint32_t n2, const uint8_t key3[WS_HIXIE76_KEY3_LEN],
                      uint8_t out[WS_HIXIE76_ANSWER_LEN]);

/* Writes the whole 101 response for a request that ws_hixie_check_request accepted
 * as `version`: status line, Upgrade, Connection, the origin (echoing Origin; left out
 * when the request had none), the location (ws:// or, if secure, wss://, then Host and
 * the request target), the protocol (if not NULL), the caller's `extra` header lines
 * (each ending in CRLF; NULL for none), the blank line and, for 76, the 16-byte answer
 * to key3. Returns the length written, WS_EHEADTOOBIG if it does not fit in cap bytes
 * (out then holds a prefix), WS_EINVAL for a bad argument (version, a protocol or extra
 * lines that would break the head, no key3 for 76), WS_EHANDSHAKE if h's keys are
 * invalid, WS_EINTERNAL if MD5 is unavailable. */
int ws_hixie_response(char *out, size_t cap, const ws_http_head_t *h, int version,
                      int secure, const char *protocol, const char *extra,
                      const uint8_t *key3);

/* ---- framing parser (-76 4.2 and 5.3; -75 4.2 and 5.3) --------------------- */

typedef struct ws_hixie_parser {
  uint64_t count;       /* text: bytes of the frame so far; length: the length so far;
                         * skip: bytes still to skip */
  uint64_t max_length;  /* limit on a frame's payload; 0 = none */
  uint32_t utf8_state;  /* incremental validator state for a text frame */
  uint8_t version;      /* 75 or 76 */
  uint8_t state;        /* what the next byte is (WS__HIXIE_* in hixie.c) */
  uint8_t type;         /* frame type byte of the frame in progress */
  int error;            /* sticky: once set, execute returns it */
} ws_hixie_parser_t;

void ws_hixie_parser_init(ws_hixie_parser_t *p, int version, uint64_t max_length);

/* Feeds bytes, with exactly the contract of ws_parser_execute: returns the number
 * consumed or a negative WS_E* error (sticky); a callback that returns non-zero stops
 * it after that callback, and the rest is fed again later; input is never dropped or
 * replayed. It never needs more input to consume what it has, so it consumes less than
 * len only when a callback stopped it.
 * - 0x00 ... 0xFF: text, through on_data(ud, WS_OP_TEXT, 0, data, len, fin) in pieces
 *   as it arrives; fin = 1 on the piece that ends at 0xFF (len may be 0 then). UTF-8 is
 *   checked as it comes: WS_EUTF8 at the first bad byte, or at 0xFF inside a character.
 * - a type byte with the high bit: a length follows (7-bit groups, high bit = more) and
 *   that many bytes, which are read and discarded. Type 0xFF with length 0 (0xFF 0x00)
 *   is the closing handshake (-76 4.2, 5.3), reported as on_control(ud,
 *   WS_OP_CLOSE, <empty>, 0); -75 has no closing handshake, but its readers discard
 *   such a frame, so reporting it alike loses nothing.
 * - any other type byte without the high bit: the drafts (-76 5.3, -75 5.3) read up to
 *   0xFF and discard what they read; so does this, without a callback or UTF-8 check.
 * A frame's payload over max_length fails with WS_ETOOBIG at the byte that passes it
 * (a length, at the length byte that makes it pass). Never fails with WS_EPROTOCOL:
 * every byte sequence is valid framing in these drafts. */
ssize_t ws_hixie_parser_execute(ws_hixie_parser_t *p, const ws_parser_settings_t *s,
                                void *ud, char *buf, size_t len);

/* Is a frame under way (some of it read, not its end)? */
int ws_hixie_parser_busy(const ws_hixie_parser_t *p);

/* ---- framing writer ------------------------------------------------------------ */

/* A text frame is WS_HIXIE_TEXT_START, the UTF-8 text (which never holds 0xFF), then
 * WS_HIXIE_TEXT_END. Neither draft can send binary data. */
#define WS_HIXIE_TEXT_START "\x00"
#define WS_HIXIE_TEXT_END "\xff"
#define WS_HIXIE_TEXT_START_LEN (sizeof WS_HIXIE_TEXT_START - 1)
#define WS_HIXIE_TEXT_END_LEN (sizeof WS_HIXIE_TEXT_END - 1)
/* -76 4.2: the closing handshake; -75 closes the TCP connection instead. */
#define WS_HIXIE_CLOSE "\xff\x00"
#define WS_HIXIE_CLOSE_LEN (sizeof WS_HIXIE_CLOSE - 1)

#endif
