/* luaws protocol core: codecs. A codec is one protocol version's framing and handshake
 * answer, as a connection drives it: parse bytes into events, frame a message, frame a
 * close, and write the 101 response. RFC 6455 (versions 7, 8, 13) and the hixie-76 and
 * hixie-75 drafts are the three; the connection picks one per request (ws_codec_select)
 * and never branches on the version again. Sans-I/O like the rest of the core. */
#ifndef LUAWS_CODEC_H
#define LUAWS_CODEC_H

#include "ws.h"
#include "hixie.h"

/* A connection's parser state, whichever codec it has. */
typedef union ws_codec_parser {
  ws_parser_t rfc;
  ws_hixie_parser_t hixie;
} ws_codec_parser_t;

/* What a codec can carry. */
enum {
  WS_CODEC_BINARY = 1 << 0,       /* binary messages */
  WS_CODEC_PING = 1 << 1,         /* ping and pong frames */
  WS_CODEC_CLOSE_CODES = 1 << 2,  /* close frames carry a code and a reason */
  WS_CODEC_EXTENSIONS = 1 << 3,   /* RSV bits and Sec-WebSocket-Extensions */
  WS_CODEC_CLIENT = 1 << 4,       /* a client may speak it (luaws's client speaks 13) */
  WS_CODEC_UTF8_OUT = 1 << 5      /* text sent must be valid UTF-8 (else framing breaks) */
};

#define WS_CODEC_MAX_HEAD WS_MAX_HEADER                    /* head() writes at most this */
#define WS_CODEC_MAX_CLOSE (WS_MAX_HEADER + WS_MAX_CONTROL)  /* close() writes at most this */

/* What the 101 response is made of (ws_codec_t.response). */
typedef struct ws_codec_answer {
  const ws_http_head_t *request;
  const uint8_t *body;      /* the bytes after the head that the handshake needs
                             * (ws_codec_t.handshake_body of them; NULL when 0) */
  int secure;               /* TLS: the drafts' location is wss:// */
  const char *protocol;     /* the subprotocol chosen, or NULL */
  const char *extensions;   /* Sec-WebSocket-Extensions value, or NULL (RFC 6455 only) */
  const char *extra;        /* CRLF-ended header lines, or NULL */
} ws_codec_answer_t;

typedef struct ws_codec {
  unsigned caps;
  size_t handshake_body;    /* bytes after the request head the answer needs (-76: 8) */
  void (*init)(ws_codec_parser_t *p, int role, int version, uint64_t max_length,
               uint32_t max_fragments);
  /* The contract of ws_parser_execute (ws.h). The drafts' closing handshake is reported
   * as a CLOSE control frame with an empty payload. */
  ssize_t (*execute)(ws_codec_parser_t *p, const ws_parser_settings_t *s, void *ud,
                     char *buf, size_t len);
  int (*busy)(const ws_codec_parser_t *p);   /* a frame or message is under way */
  /* A whole message is head, payload, tail. head gets the RSV bits (codecs without
   * WS_CODEC_EXTENSIONS get 0) and a mask key for a client (NULL for a server); the
   * caller masks the payload. Each returns its length. */
  size_t (*head)(uint8_t *out, int rsv, int opcode, uint64_t len, const uint8_t *mask_key);
  size_t (*tail)(uint8_t *out);
  /* A whole close frame (code 0: none) into out (WS_CODEC_MAX_CLOSE bytes), masked when
   * mask_key is given. 0: this version closes by closing the TCP connection. */
  size_t (*close)(uint8_t *out, unsigned code, const char *reason, size_t reason_len,
                  const uint8_t *mask_key);
  /* The whole 101 response into out. Its length, or a negative WS_E* error
   * (WS_EHEADTOOBIG when it does not fit cap). */
  int (*response)(char *out, size_t cap, int version, const ws_codec_answer_t *a);
} ws_codec_t;

extern const ws_codec_t ws_codec_rfc6455, ws_codec_hixie76, ws_codec_hixie75;

/* Server: the codec and version for an upgrade request (ws_handshake_is_upgrade holds).
 * A request with no Sec-WebSocket-Version and no Sec-WebSocket-Key is a draft: hixie-76
 * with both Key1 and Key2, hixie-75 with neither; with drafts 0 it is answered 426 as
 * an unsupported version. Returns 0, or the HTTP status to answer (400, 426) and *why. */
int ws_codec_select(const ws_http_head_t *h, int drafts, const ws_codec_t **codec,
                    int *version, const char **why);

/* "hybi-13", "hybi-8", "hybi-7", "hixie-76", "hixie-75". */
const char *ws_codec_version_name(int version);

#endif
