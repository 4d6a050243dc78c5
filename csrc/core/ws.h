/* luaws protocol core: RFC 6455 framing, UTF-8, close payloads, HTTP heads and the
 * opening handshake. Sans-I/O: bytes in, callbacks out; no libuv, no Lua. */
#ifndef LUAWS_WS_H
#define LUAWS_WS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Error codes: 0 or negative, in a range apart from libuv's (-4095..-1).
 * X(name, value, close code to send, message) */
#define WS_ERRNO_MAP(X)                                                        \
  X(PROTOCOL, -30001, 1002, "protocol error")                                  \
  X(UTF8, -30002, 1007, "invalid UTF-8 in text payload")                       \
  X(TOOBIG, -30003, 1009, "message too big")                                   \
  X(EXTENSION, -30004, 1010, "extension negotiation failed")                   \
  X(INTERNAL, -30005, 1011, "internal error")                                  \
  X(CLOSED, -30006, 0, "socket is not open")                                   \
  X(AGAIN, -30007, 0, "need more input")                                       \
  X(HTTP, -30008, 0, "malformed HTTP head")                                    \
  X(HEADTOOBIG, -30009, 0, "HTTP head too large")                              \
  X(HANDSHAKE, -30010, 0, "handshake failed")                                  \
  X(TIMEDOUT, -30011, 1008, "timed out")                                       \
  X(NOMEM, -30012, 1011, "out of memory")                                      \
  X(BACKPRESSURE, -30013, 0, "send buffer limit reached")                      \
  X(INVAL, -30014, 0, "invalid argument")                                      \
  X(OVERLOAD, -30015, 1013, "server memory budget exceeded")                   \
  X(INFLATE, -30016, 1007, "invalid compressed data")                          \
  X(NOTSUPPORTED, -30017, 0, "not supported by this protocol version")       \
  X(PROXY, -30018, 0, "the proxy did not open a tunnel")                       \
  X(LIMIT, -30019, 0, "max_subscriptions reached")                              \
  X(BACKPLANE, -30020, 0, "the Redis backplane failed or its queue is full")

enum {
#define WS__ERR_ENUM(name, val, code, msg) WS_E##name = (val),
  WS_ERRNO_MAP(WS__ERR_ENUM)
#undef WS__ERR_ENUM
};

const char *ws_strerror(int err);   /* message, for any WS_E*; NULL if not ours */
const char *ws_err_name(int err);   /* "EPROTOCOL", ...; NULL if not ours */
int ws_err_close_code(int err);     /* close code a peer gets for err; 1011 if the map
                                     * gives err none (0) or err is not ours */

enum {
  WS_OP_CONT = 0x0,
  WS_OP_TEXT = 0x1,
  WS_OP_BINARY = 0x2,
  WS_OP_CLOSE = 0x8,
  WS_OP_PING = 0x9,
  WS_OP_PONG = 0xA
};

enum { WS_ROLE_SERVER = 0, WS_ROLE_CLIENT = 1 };

#define WS_RSV1 0x40
#define WS_RSV2 0x20
#define WS_RSV3 0x10

#define WS_MAX_CONTROL 125      /* RFC 6455 5.5 */
#define WS_MAX_HEADER 14        /* 2 + 8 (length) + 4 (mask key) */

/* ---- frame parser -------------------------------------------------------- */

typedef struct ws_parser_settings {
  /* Payload of a data message, in order, unmasked in place. opcode is the message's
   * (TEXT or BINARY), rsv the RSV bits of its first frame. fin is 1 on the message's
   * last chunk (len may be 0 then). Return non-zero to stop the parser after this chunk. */
  int (*on_data)(void *ud, int opcode, int rsv, char *data, size_t len, int fin);
  /* A whole control frame: CLOSE, PING or PONG, payload <= 125 bytes, unmasked.
   * Return non-zero to stop the parser after this frame. */
  int (*on_control)(void *ud, int opcode, char *data, size_t len);
} ws_parser_settings_t;

typedef struct ws_parser {
  uint64_t remaining;     /* payload bytes left in the current data frame */
  uint64_t msg_len;       /* payload bytes of the current message so far */
  uint64_t max_length;    /* limit on a message; 0 = none */
  uint32_t utf8_state;    /* incremental validator state for a text message */
  uint8_t mask[4];
  uint8_t mask_pos;       /* offset into mask for the next payload byte */
  uint8_t in_frame;       /* 1 while a data frame's payload is being delivered */
  uint8_t frame_fin;      /* FIN bit of the current data frame */
  uint8_t frame_masked;
  uint8_t msg_opcode;     /* TEXT/BINARY of the message in progress, 0 if none */
  uint8_t msg_rsv;        /* RSV bits of the message's first frame */
  uint8_t role;           /* WS_ROLE_SERVER: frames must be masked; CLIENT: must not */
  uint8_t rsv_allowed;    /* RSV bits that a negotiated extension allows (WS_RSV1) */
  uint32_t fragments;     /* frames of the current message so far */
  uint32_t max_fragments; /* limit on them; 0 = none (set after ws_parser_init) */
  int error;              /* sticky: once set, execute returns it */
} ws_parser_t;

void ws_parser_init(ws_parser_t *p, int role, uint64_t max_length);

/* Feed bytes. Returns the number consumed, or a negative WS_E* error (sticky).
 * Fewer than len bytes are consumed when a frame header or a control frame is not yet
 * whole (the caller keeps the rest and feeds it again with more), or when a callback
 * stopped the parser (the rest is fed again later). Input is never dropped or replayed.
 * Data payloads are unmasked in buf itself. */
ssize_t ws_parser_execute(ws_parser_t *p, const ws_parser_settings_t *s, void *ud,
                          char *buf, size_t len);

/* Close code to send after execute failed with err (1002, 1007, 1009, ...). */
#define ws_parser_close_code(err) ws_err_close_code(err)

/* ---- frame writer -------------------------------------------------------- */

/* Writes a frame header (minimal length encoding) to out, which holds WS_MAX_HEADER
 * bytes; returns its length. mask_key is NULL for server frames. */
size_t ws_frame_header(uint8_t *out, int fin, int rsv, int opcode, uint64_t len,
                       const uint8_t *mask_key);

/* XORs data with key, starting at key offset `offset` (0..3), word at a time. */
void ws_mask(char *data, size_t len, const uint8_t key[4], size_t offset);

/* ---- UTF-8 ---------------------------------------------------------------- */

#define WS_UTF8_ACCEPT 0u
/* Incremental validation: state starts at WS_UTF8_ACCEPT. Returns 0 if the bytes so far
 * may still be valid UTF-8, -1 as soon as a byte makes it invalid (then state is
 * undefined). At the end of a message the text is whole iff state == WS_UTF8_ACCEPT. */
int ws_utf8_validate(uint32_t *state, const uint8_t *s, size_t len);

/* ---- close payloads (RFC 6455 5.5.1, 7.4) -------------------------------- */

/* May a peer send this code in a close frame? (1000-1003, 1007-1014, 3000-4999) */
int ws_close_code_valid(unsigned code);
/* May an application pass it to close()? (1000, 3000-4999, as browsers) */
int ws_close_code_app_valid(unsigned code);
/* Parses a close payload. Empty: *code = 1005, no reason (*reason = "", length 0).
 * Returns 0, WS_EPROTOCOL (1-byte or over-125-byte payload, invalid code) or WS_EUTF8
 * (reason not UTF-8). */
int ws_close_parse(const char *data, size_t len, unsigned *code, const char **reason,
                   size_t *reason_len);
/* Builds a close payload into out (WS_MAX_CONTROL bytes); code 0 or 1005 means empty.
 * reason is cut to at most 123 bytes, at a UTF-8 character boundary. Returns its length. */
size_t ws_close_build(char *out, unsigned code, const char *reason, size_t reason_len);

/* ---- HTTP heads (just far enough for the handshake and simple requests) ---- */

typedef struct ws_header {
  const char *name;
  size_t name_len;
  const char *value;
  size_t value_len;
} ws_header_t;

typedef struct ws_http_head {
  const char *method;      /* request */
  size_t method_len;
  const char *target;      /* request-target, e.g. "/chat?x=1" */
  size_t target_len;
  int status;              /* response */
  const char *reason;
  size_t reason_len;
  int minor_version;       /* HTTP/1.x */
  ws_header_t *headers;    /* caller's array */
  size_t num_headers;      /* in: capacity of headers; out: number found (set only on
                            * success, so a caller can retry after WS_EAGAIN) */
} ws_http_head_t;

/* Parses a request or response head from buf; pointers point into buf. Returns the
 * head's length (through the blank line), WS_EAGAIN if incomplete, WS_EHTTP if
 * malformed, WS_EHEADTOOBIG if it has more headers than the capacity.
 * Allocates nothing; never reads past buf + len. */
int ws_http_parse_request(const char *buf, size_t len, ws_http_head_t *h);
int ws_http_parse_response(const char *buf, size_t len, ws_http_head_t *h);

/* Where a head ends (the byte after its empty line) in buf, or 0 while it has not come.
 * *scanned: bytes of buf already searched (0 at first); updated, so that a head that
 * arrives in many pieces is searched once in all, not once per piece. */
size_t ws_http_head_end(const char *buf, size_t len, uint32_t *scanned);

/* First header with this name (case-insensitive), or NULL. */
const ws_header_t *ws_http_find(const ws_http_head_t *h, const char *name);
/* The next one after `after` (NULL: from the first), or NULL. Several headers of one
 * name are one comma-separated list (RFC 9110 5.3). */
const ws_header_t *ws_http_find_next(const ws_http_head_t *h, const ws_header_t *after,
                                     const char *name);
/* Does a comma-separated header value contain token (case-insensitive)? */
int ws_http_has_token(const char *value, size_t len, const char *token);
/* Steps through a comma-separated value (RFC 9110 5.6.1): returns 1 with the next
 * non-empty element, OWS trimmed, in *elem and *elem_len; 0 at the end. *pos is the
 * offset reached (0 at first). Commas inside quoted strings are not special. */
int ws_http_list_next(const char *value, size_t len, size_t *pos, const char **elem,
                      size_t *elem_len);

/* RFC 9110 5.6.2: is c a tchar, a character of a token? 5.6.3: OWS. 5.5: may c be in a
 * field value (HTAB, SP, VCHAR, obs-text)? */
extern const uint8_t ws__http_tchar[256];
#define WS_HTTP_IS_TCHAR(c) (ws__http_tchar[(uint8_t)(c)])
#define WS_HTTP_IS_OWS(c) ((c) == ' ' || (c) == '\t')
#define WS_HTTP_IS_TEXT(c) ((c) == '\t' || ((uint8_t)(c) >= 0x20 && (uint8_t)(c) != 0x7F))

/* ---- request bodies (RFC 9112 6, 7.1) -------------------------------------- */

enum { WS_BODY_NONE = 0, WS_BODY_LENGTH = 1, WS_BODY_CHUNKED = 2 };

/* Bounds on what a chunked body carries besides its data. */
#define WS_HTTP_MAX_CHUNK_LINE 4096 /* a chunk's size and extensions, CRLF included */
#define WS_HTTP_MAX_TRAILERS 8192   /* the trailer section, its last CRLF included */

typedef struct ws_http_body {
  uint64_t length;          /* WS_BODY_LENGTH: the Content-Length */
  uint64_t received;        /* body bytes handed to on_data so far */
  uint64_t max_body;        /* limit on them; 0 = none */
  uint64_t remaining;       /* bytes left of the body (LENGTH) or of the chunk (CHUNKED) */
  uint32_t line;            /* bytes of the chunk line or the trailers so far */
  uint8_t kind;             /* WS_BODY_NONE, WS_BODY_LENGTH or WS_BODY_CHUNKED */
  uint8_t state;            /* where the chunked parser is */
  uint8_t expect_continue;  /* the client waits for "100 Continue" before the body */
  uint8_t keep_alive;       /* the connection persists after the answer (RFC 9112 9.3) */
  uint8_t done;             /* the body is whole; the next request starts after it */
  int error;                /* sticky: once set, execute returns it */
} ws_http_body_t;

/* Decides how a request's body is framed (RFC 9112 6.1-6.3). Returns 0: b->kind says
 * none, Content-Length (b->length) or chunked, b->done is 1 when there is nothing to
 * read. Else the status to answer, with *why (why may be NULL): 400 for framing that
 * cannot be trusted (Transfer-Encoding with Content-Length or in HTTP/1.0, chunked not
 * last or twice, a bad or ambiguous Content-Length), 501 for a transfer coding before
 * chunked (none is decoded here), 413 for a Content-Length over max_body (0 = no limit).
 * After any of them the connection must close; b->keep_alive is 0. */
int ws_http_body_init(ws_http_body_t *b, const ws_http_head_t *request, uint64_t max_body,
                      const char **why);

/* Feeds bytes that follow the head. Body bytes go to on_data as they come, de-chunked
 * (on_data NULL: discarded); a non-zero return stops the parser after that call. Returns
 * the bytes consumed: all of len, or fewer when a callback stopped it or the body ended
 * (b->done = 1: the rest is the next request). Or a negative error, sticky, after which
 * the connection must close: WS_EHTTP (answer 400) for bad chunked framing, WS_ETOOBIG
 * (413) for a body over max_body, WS_EHEADTOOBIG (431) for trailers over
 * WS_HTTP_MAX_TRAILERS. Allocates nothing; never reads past buf + len. */
ssize_t ws_http_body_execute(ws_http_body_t *b, char *buf, size_t len,
                             int (*on_data)(void *ud, const char *data, size_t len),
                             void *ud);

/* ---- opening handshake (RFC 6455 4) --------------------------------------- */

/* Server: is this request an attempt to upgrade to WebSocket (has Upgrade: websocket)? */
int ws_handshake_is_upgrade(const ws_http_head_t *h);
/* Server: checks an upgrade request (4.2.1). Returns 0 and the version (7, 8 or 13), or
 * the HTTP status to answer (400, or 426 for an unsupported version) and *why. */
int ws_handshake_check_request(const ws_http_head_t *h, int *version, const char **why);
/* Sec-WebSocket-Accept for a key: 28 characters and a NUL into out. */
void ws_handshake_accept(const char *key, size_t key_len, char out[29]);
/* Client: a fresh Sec-WebSocket-Key (16 random bytes, base64): 24 chars + NUL. 0 or
 * WS_EINTERNAL if the OS random source failed. */
int ws_handshake_client_key(char out[25]);
/* Client: checks a response (4.1): 101, Upgrade, Connection, Sec-WebSocket-Accept for key,
 * and that Sec-WebSocket-Protocol, if any, is one of the comma-separated `offered` (NULL:
 * none offered). Returns 0, or WS_EHANDSHAKE with *why. */
int ws_handshake_check_response(const ws_http_head_t *h, const char *key,
                                const char *offered, const char **why);

/* The same, for a client that offered extensions: their answer is not checked here
 * (ext.h's ws_ext_client_accept does that). */
int ws_handshake_check_response_ext(const ws_http_head_t *h, const char *key,
                                    const char *offered, int extensions_offered,
                                    const char **why);

/* Random bytes from the OS source (OpenSSL RAND_bytes). 0 or WS_EINTERNAL. */
int ws_random(void *buf, size_t len);

#endif
