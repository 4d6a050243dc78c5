/* luaws protocol core: permessage-deflate (RFC 7692). Negotiation in both roles, and
 * the per-connection compressor and decompressor on top of zlib's raw deflate. Each
 * direction's zlib stream exists only while a message needs it, or between messages
 * when that direction keeps its context (RFC 7692 7.1.1). */
#ifndef LUAWS_DEFLATE_H
#define LUAWS_DEFLATE_H

#include "ext.h"

#define WS_DEFLATE_NAME "permessage-deflate"

typedef struct ws_deflate_config {
  int level;         /* zlib level, -1 (Z_DEFAULT_COMPRESSION) or 0..9 */
  int mem_level;     /* zlib memLevel 1..9 */
  int strategy;      /* zlib strategy (Z_DEFAULT_STRATEGY, Z_FILTERED, ...) */
  /* Window limits, 8..15. Server: server_max_window_bits is the most it compresses
   * with (sent back when under 15 or asked for), client_max_window_bits what it asks a
   * client to use when the client allows it. Client: server_max_window_bits is asked
   * for when under 15; client_max_window_bits is offered (with no value when 15) so
   * that a server may lower it. 0 for client_max_window_bits: a client does not offer
   * the parameter at all; a server treats 0 as 15. */
  int server_max_window_bits;
  int client_max_window_bits;
  /* Ask for (client) or impose (server) no context takeover in that direction. */
  int server_no_context_takeover;
  int client_no_context_takeover;
  size_t threshold;  /* messages shorter than this are sent uncompressed */
} ws_deflate_config_t;

/* level -1, memLevel 8, default strategy, windows 15, context takeover both ways,
 * threshold 1024 (as Node's ws). */
void ws_deflate_config_default(ws_deflate_config_t *cfg);
/* 0, or WS_EINVAL if a field is out of range. */
int ws_deflate_config_check(const ws_deflate_config_t *cfg);

/* The parameters of one negotiation response: 0 for an absent window bits parameter
 * (the peer may then use 15). */
typedef struct ws_deflate_params {
  int server_no_context_takeover;
  int client_no_context_takeover;
  int server_max_window_bits;
  int client_max_window_bits;
} ws_deflate_params_t;

/* Server (RFC 7692 5, 7.1): takes the first offer it can accept and declines the rest.
 * An offer is declined for an unknown or repeated parameter, a value on a
 * *_no_context_takeover, a window bits value that is not 8..15 without leading zeros,
 * or server_max_window_bits without a value. Returns the index of the offer taken
 * (*out then holds the response's parameters) or -1 if it declined them all. */
int ws_deflate_server_negotiate(const ws_deflate_config_t *cfg,
                                const ws_ext_item_t *const *offers, size_t num_offers,
                                ws_deflate_params_t *out);
/* Writes an element "permessage-deflate; ..." for these response parameters. */
int ws_deflate_params_build(const ws_deflate_params_t *p, char *out, size_t cap,
                            size_t *len);
/* Client: the offer for this configuration (one element). */
int ws_deflate_client_offer(const ws_deflate_config_t *cfg, char *out, size_t cap,
                            size_t *len);
/* Client: checks the server's one permessage-deflate element against what cfg
 * offered. 0 and *out, or WS_EEXTENSION for a response the offer did not allow:
 * unknown or repeated parameters, values out of range or where none belongs,
 * client_max_window_bits not offered or over the offered value, server_max_window_bits
 * over the value asked for. */
int ws_deflate_client_accept(const ws_deflate_config_t *cfg, const ws_ext_item_t *response,
                             ws_deflate_params_t *out);

/* The state of one connection. Keep it in place (it is not copied); zero or
 * ws_deflate_init it before use. */
typedef struct ws_deflate {
  ws_deflate_config_t cfg;
  void *zout, *zin;        /* z_stream *, NULL when not held */
  size_t mem;              /* bytes zlib holds for this connection */
  uint64_t in_total;       /* inflated bytes of the message in progress */
  uint8_t send_bits, recv_bits;   /* negotiated windows, 8..15 */
  uint8_t send_nct, recv_nct;     /* no context takeover per direction */
  uint8_t in_started;      /* the message in progress has had compressed bytes */
  uint8_t in_skip;         /* its deflate stream ended (BFINAL): skip the rest */
  int error;               /* sticky */
  /* A parked direction (ws_deflate_park): its stream is freed and only its window, the
   * context the next message may refer to, is kept here (malloc'd; NULL if none). */
  unsigned char *out_dict, *in_dict;
  uint32_t out_dict_len, in_dict_len;
} ws_deflate_t;

/* Sets up a connection's state from the negotiated parameters for a role (WS_ROLE_*):
 * a server sends with the server_* parameters and receives with the client_* ones.
 * Allocates nothing. */
void ws_deflate_init(ws_deflate_t *d, const ws_deflate_config_t *cfg, int role,
                     const ws_deflate_params_t *p);
/* Frees the zlib streams; d may be used again only after ws_deflate_init. */
void ws_deflate_free(ws_deflate_t *d);
/* Bytes of zlib memory d holds now (0 between messages when neither direction keeps
 * its context), parked windows included. */
size_t ws_deflate_memory(const ws_deflate_t *d);
/* Between messages, for an idle connection: frees each zlib stream that keeps its
 * context and keeps only its window (at most 2^bits bytes, what the last messages
 * put in it); the next message in that direction makes a stream again and primes it
 * with the window, so both peers' windows still agree (RFC 7692 7.2.1, 7.2.2). A
 * compressor holds about 256 KiB and an inflater 40 KiB; a parked connection holds its
 * windows' bytes. Does nothing in a message, or after an error. 0 or WS_ENOMEM /
 * WS_EINTERNAL (sticky). */
int ws_deflate_park(ws_deflate_t *d);

/* Bytes of output each sink call gets at most. */
#define WS_DEFLATE_STEP 16384

/* Inflates a chunk of a compressed message (RFC 7692 7.2.2); fin on its last chunk,
 * which may be empty. Output goes to sink in steps of at most WS_DEFLATE_STEP bytes.
 * Returns 0, WS_ETOOBIG as soon as the message would inflate to more than max bytes
 * (0: no limit; no byte past max reaches the sink), WS_EINFLATE for corrupt data,
 * WS_ENOMEM, or the sink's error. Errors are sticky. */
int ws_deflate_inflate(ws_deflate_t *d, const char *in, size_t len, int fin, uint64_t max,
                       ws_ext_sink_fn sink, void *ud);

/* Compresses a whole message (RFC 7692 7.2.1) into out (appended; out may be reused
 * across messages after setting out->len = 0). *rsv is WS_RSV1, or 0 when the message
 * is under the threshold: then nothing is written and it is sent as it is. Returns 0,
 * WS_ENOMEM or WS_EINTERNAL (sticky). */
int ws_deflate_compress(ws_deflate_t *d, const char *in, size_t len, ws_bytes_t *out,
                        int *rsv);

/* Broadcast: compresses once, with a fresh stream that keeps no context, for every
 * connection where ws_deflate_can_share(d, window_bits) holds. Appends to out; the
 * frames carry RSV1. Returns 0, WS_ENOMEM, WS_EINTERNAL or WS_EINVAL. */
int ws_deflate_compress_shared(const ws_deflate_config_t *cfg, int window_bits,
                               const char *in, size_t len, ws_bytes_t *out);
/* Can d send a message that ws_deflate_compress_shared made with window_bits? Only if
 * its send direction keeps no context (the peer's window must see exactly what d's
 * compressor saw) and its window is at least that large. */
int ws_deflate_can_share(const ws_deflate_t *d, int window_bits);

/* permessage-deflate as an extension of ext.h; its config is a ws_deflate_config_t,
 * its state a malloc'd ws_deflate_t. */
extern const ws_extension_t ws_deflate_extension;

#endif
