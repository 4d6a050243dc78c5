/* luaws protocol core: WebSocket extensions (RFC 6455 9). The Sec-WebSocket-Extensions
 * grammar (a parser into caller-owned, bounded storage, and a builder), and the seam
 * through which a connection negotiates an extension and runs each message through it.
 * Sans-I/O like the rest of the core. */
#ifndef LUAWS_EXT_H
#define LUAWS_EXT_H

#include <stddef.h>
#include <stdint.h>

#include "ws.h"

/* ---- Sec-WebSocket-Extensions values (RFC 6455 9.1, RFC 7692 5) ------------------ */

/* Bounds on what one handshake may list. A browser sends one or two extensions with a
 * few parameters; more than this is refused (WS_EHEADTOOBIG), not allocated for. */
#define WS_EXT_MAX_ITEMS 16
#define WS_EXT_MAX_PARAMS 48
#define WS_EXT_SCRATCH 512   /* for quoted-strings that hold quoted-pairs */

typedef struct ws_ext_param {
  const char *name;
  size_t name_len;
  const char *value;   /* NULL: the parameter has no value; else the token or the
                        * quoted-string's content, unescaped */
  size_t value_len;
} ws_ext_param_t;

/* One extension of the list: a name and its parameters, in the order they came. */
typedef struct ws_ext_item {
  const char *name;
  size_t name_len;
  const ws_ext_param_t *params;
  size_t num_params;
} ws_ext_item_t;

/* What ws_ext_parse fills. Zero it (or ws_ext_list_init) before the first parse; each
 * parse appends, so the values of repeated headers can be parsed one by one into the
 * same list. Names and values point into the parsed text, or into scratch when a
 * quoted-string had to be unescaped: the text must outlive the list. */
typedef struct ws_ext_list {
  ws_ext_item_t items[WS_EXT_MAX_ITEMS];
  size_t num_items;
  ws_ext_param_t params[WS_EXT_MAX_PARAMS];
  size_t num_params;
  char scratch[WS_EXT_SCRATCH];
  size_t scratch_len;
} ws_ext_list_t;

void ws_ext_list_init(ws_ext_list_t *l);

/* Parses one header value: 1#( token *( OWS ";" OWS token [ "=" ( token |
 * quoted-string ) ] ) ), with OWS around commas and semicolons and empty list elements
 * allowed (RFC 9110 5.6.1), so values joined with ", " parse as one. Returns 0,
 * WS_EHTTP for any other byte (the list is then left as it was), or WS_EHEADTOOBIG
 * when the bounds above are exceeded. Never reads past value + len; allocates nothing. */
int ws_ext_parse(ws_ext_list_t *l, const char *value, size_t len);
/* Parses every Sec-WebSocket-Extensions header of a head, in order, into l. */
int ws_ext_parse_head(ws_ext_list_t *l, const ws_http_head_t *h);

/* Does the item have this name (case-insensitive, as tokens of RFC 6455 9.1 are)? */
int ws_ext_name_is(const char *name, size_t name_len, const char *expect);

/* Writes "name; p1; p2=v2" at out + *len, after ", " when *len > 0, so one buffer can
 * take a whole list; NUL-terminates it. Names and values must be tokens (9.1: even a
 * quoted value must unescape to a token, so a token is all a value ever needs).
 * Returns 0 and advances *len; WS_EINVAL if something is not a token, WS_ENOMEM if it
 * does not fit in cap (with the NUL): then *len is unchanged. */
int ws_ext_build(char *out, size_t cap, size_t *len, const char *name,
                 const ws_ext_param_t *params, size_t num_params);

/* ---- the seam ------------------------------------------------------------------ */

/* A growable byte buffer whose memory the caller may take (and free with free()). */
typedef struct ws_bytes {
  char *data;
  size_t len, cap;
} ws_bytes_t;

void ws_bytes_free(ws_bytes_t *b);

/* Receives a transformed message's bytes, in order, a bounded step at a time. Returns
 * 0, or a negative WS_E* error that stops the transform (and is returned by it). */
typedef int (*ws_ext_sink_fn)(void *ud, const char *data, size_t len);

/* An extension, as a connection sees it. A second extension is one more of these; the
 * codec never changes. `config` is the extension's own configuration (for deflate a
 * ws_deflate_config_t), `state` what negotiation made for one connection.
 *
 * Handshake. Server: server_negotiate gets every element of the request's
 * Sec-WebSocket-Extensions with this extension's name, in the client's order; it
 * accepts the first it can (returns 1, writes its response element into out with
 * ws_ext_build, and makes *state), or declines them all (0), or fails (< 0, e.g.
 * WS_ENOMEM). Client: client_offer writes the offer element into out with ws_ext_build;
 * client_accept checks the one response element with this name (0 and *state, or
 * WS_EEXTENSION when the response is not one the offer allowed: the client then fails
 * the connection, RFC 6455 4.1 / 9.1).
 *
 * Messages. The codec lets `rsv` through once the extension is negotiated. A received
 * message whose first frame has any of those bits set goes through decode, chunk by
 * chunk as the parser delivers it (fin on the last); the output goes to the sink in
 * steps of at most a few KiB and stops with WS_ETOOBIG as soon as it would pass max
 * (0: none). Other messages bypass the extension. To send, encode transforms a whole
 * payload into out and says which RSV bits to set; *rsv == 0 with out untouched means
 * "send the payload as it is". Any error is sticky for the connection: the close code
 * is ws_ext_close_code(err). memory says how many bytes the state holds now; destroy
 * frees it (state may be NULL). */
typedef struct ws_extension {
  const char *name;
  int rsv;
  size_t config_size;   /* bytes of its config, which a connection copies */
  int (*server_negotiate)(const void *config, const ws_ext_item_t *const *offers,
                          size_t num_offers, char *out, size_t cap, size_t *len,
                          void **state);
  int (*client_offer)(const void *config, char *out, size_t cap, size_t *len);
  int (*client_accept)(const void *config, const ws_ext_item_t *response, void **state);
  int (*decode)(void *state, const char *in, size_t len, int fin, uint64_t max,
                ws_ext_sink_fn sink, void *ud);
  int (*encode)(void *state, const char *in, size_t len, ws_bytes_t *out, int *rsv);
  size_t (*memory)(const void *state);
  /* Optional (NULL: none). Called between messages on a connection that has been idle:
   * shrink the state to what the next message needs. 0 or an error (sticky). */
  int (*park)(void *state);
  void (*destroy)(void *state);
} ws_extension_t;

/* The extensions a connection may use, each with its configuration, in the order a
 * server prefers them and a client offers them; the negotiated states land in state. */
typedef struct ws_ext_use {
  const ws_extension_t *ext;
  const void *config;
  void *state;   /* NULL: not negotiated */
} ws_ext_use_t;

/* Server: given the request's parsed offers, negotiates each extension of use[] and
 * writes the response header's value into out (*len = 0 and nothing to send if none
 * was accepted). An extension whose RSV bits another accepted one owns is declined.
 * Returns 0 or a negative error (WS_ENOMEM; WS_ENOMEM too when out is too small). */
int ws_ext_server_negotiate(ws_ext_use_t *use, size_t n, const ws_ext_list_t *offers,
                            char *out, size_t cap, size_t *len);
/* Client: writes the offer header's value (every extension of use[]). */
int ws_ext_client_offer(const ws_ext_use_t *use, size_t n, char *out, size_t cap,
                        size_t *len);
/* Client: checks the parsed response. Fails with WS_EEXTENSION when it names an
 * extension not offered, names one twice, or one of them rejects its parameters; on
 * failure no state is left in use[]. */
int ws_ext_client_accept(ws_ext_use_t *use, size_t n, const ws_ext_list_t *response);
/* RSV bits the negotiated extensions own (for ws_parser_t.rsv_allowed). */
int ws_ext_rsv(const ws_ext_use_t *use, size_t n);
/* Destroys every negotiated state. */
void ws_ext_release(ws_ext_use_t *use, size_t n);

#endif
