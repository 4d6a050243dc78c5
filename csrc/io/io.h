/* luaws I/O layer: libuv sockets, the write queue, corking, timers and the connection
 * state machine. It reports to the layer above through ws_io_events_t and knows nothing
 * of Lua. */
#ifndef LUAWS_IO_H
#define LUAWS_IO_H

#include <uv.h>
#include "ws.h"
#include "ext.h"

typedef struct ws_loop ws_loop_t;
typedef struct ws_conn ws_conn_t;
typedef struct ws_server ws_server_t;
typedef struct ws_tls_ctx ws_tls_ctx_t;   /* see tls.h; NULL for plain TCP */

/* readyState, as browsers number it. */
enum { WS_CONNECTING = 0, WS_OPEN = 1, WS_CLOSING = 2, WS_CLOSED = 3 };

#define WS_MAX_EXTENSIONS 4   /* extensions one connection may be configured with */

/* Every timeout is in ms, below 2^31 (longer ones are cut to that); 0 = none. */
#define WS_TIMEOUT_MAX 0x7fffffffu

typedef struct ws_conn_options {
  uint64_t max_length;            /* message limit, 0 = none; over it: close 1009 */
  uint32_t max_fragments;         /* frames in one message, 0 = none; over: 1009 */
  uint32_t ping_ms;               /* automatic ping interval, 0 = off */
  uint32_t close_timeout_ms;      /* wait for the peer's close / TCP close */
  uint32_t handshake_timeout_ms;  /* client: connect + TLS + HTTP handshake */
  uint32_t idle_timeout_ms;       /* silence before a ping (when ping_ms is 0) */
  uint32_t pong_timeout_ms;       /* after that ping: silence before the peer is dropped */
  uint32_t message_timeout_ms;    /* a started message must end within it (else 1008) */
  uint32_t send_timeout_ms;       /* queued bytes none of which the peer takes: dropped */
  size_t high_water;              /* bufferedAmount over it: stop reading until drained */
  size_t max_buffered;            /* a send that would queue more: backpressure policy */
  int backpressure_error;         /* 0: over max_buffered the peer is dropped (1008);
                                     1: only the send fails with EBACKPRESSURE */
  size_t max_head;                /* client: bytes in the response head */
  uint16_t max_headers;           /* client: header count in the response head */
  uint16_t max_subscriptions;     /* topics the conn may be subscribed to at once */
  /* Extensions (ext.h) a client offers / a server accepts, in order of preference, each
   * with its config (ws_extension_t.config_size bytes, copied by the conn). */
  unsigned num_extensions;
  const ws_extension_t *extensions[WS_MAX_EXTENSIONS];
  const void *extension_configs[WS_MAX_EXTENSIONS];
} ws_conn_options_t;

void ws_conn_options_default(ws_conn_options_t *o);

typedef struct ws_server_options {
  size_t max_head;                /* bytes in a request head (431 beyond) */
  uint16_t max_headers;           /* header count in a request head (431 beyond) */
  uint32_t handshake_timeout_ms;  /* from accept to a whole request head */
  size_t max_memory;              /* bytes all its conns may buffer; over it the largest
                                     are dropped (1013); 0 = no budget */
  int backlog;
  int drafts;                     /* 1: hixie-75/76 requests are served; 0: 426 */
  uint32_t keepalive_timeout_ms;  /* an idle keep-alive connection's wait for the next
                                     request (0: no limit) */
  uint64_t max_body;              /* bytes in a plain request's body (413 beyond); 0:
                                     no limit */
  int stream_bodies;              /* 1: on_request fires at the head and the body goes
                                     up in pieces (on_request_body); 0: read it whole */
  int raw;                        /* tests: connections deliver raw bytes (on_raw) */
  int reuseport;                  /* 1: SO_REUSEPORT, so that several processes listen
                                     on one port and the kernel spreads connections */
} ws_server_options_t;

void ws_server_options_default(ws_server_options_t *o);

/* What the layer above is told. conn->data / server->data are its own pointers. */
typedef struct ws_io_events {
  /* Server: a whole request head. is_upgrade: a valid WebSocket upgrade request (an
   * invalid one was answered 400/426 and never gets here). The head points into a
   * buffer valid only during the call. Accept with ws_conn_accept() or answer with
   * ws_conn_http_write()/ws_conn_http_end(), during the call or (plain HTTP) later. */
  void (*on_request)(ws_server_t *s, ws_conn_t *c, const ws_http_head_t *head,
                     int is_upgrade);
  /* The socket is open. head: the client's view of the server's 101 response (valid only
   * during the call), NULL on the server side. */
  void (*on_open)(ws_conn_t *c, const ws_http_head_t *head);
  void (*on_message)(ws_conn_t *c, int binary, const char *data, size_t len);
  void (*on_pong)(ws_conn_t *c, const char *data, size_t len);
  void (*on_error)(ws_conn_t *c, int err, const char *message);
  /* Fires exactly once for every conn the layer above knew of: one that reached on_open,
   * a client, or a request handed up by on_request (accepted or not). */
  void (*on_close)(ws_conn_t *c, unsigned code, const char *reason, size_t reason_len,
                   int was_clean);
  void (*on_raw)(ws_conn_t *c, const char *data, size_t len);  /* raw mode; len 0: EOF */
  /* The write queue emptied after bufferedAmount passed high_water (reading resumes). */
  void (*on_drain)(ws_conn_t *c);
  /* The conn's memory is about to be freed (after libuv's close callback). */
  void (*on_free)(ws_conn_t *c);
  /* A plain HTTP request was answered whole and the connection stays for the next one:
   * the layer above lets go of this request (no on_close comes for it). */
  void (*on_request_done)(ws_conn_t *c);
  /* stream_bodies: a piece of the request's body (de-chunked); fin on the last call
   * (len may be 0 then). The request may be answered meanwhile. */
  void (*on_request_body)(ws_conn_t *c, const char *data, size_t len, int fin);
} ws_io_events_t;

/* ---- loop ---------------------------------------------------------------- */

/* A luaws loop on the libuv loop uv (one per user of the library: a Lua state; there is
 * no process-wide state), reporting to events; data is the layer above's. */
ws_loop_t *ws_loop_new(uv_loop_t *uv, const ws_io_events_t *events, void *data);
uv_loop_t *ws_loop_uv(ws_loop_t *l);
/* uv_run(uv, UV_RUN_DEFAULT) for this loop: until nothing is left, or uv_stop. The
 * process sleeps in the sockets' own epoll set, with libuv's inside it, so a socket's
 * readiness wakes one set rather than two; libuv's handles run as under uv_run. */
void ws_loop_run(ws_loop_t *l);
void *ws_loop_data(const ws_loop_t *l);
ws_loop_t *ws_conn_loop(const ws_conn_t *c);
ws_loop_t *ws_server_loop(const ws_server_t *s);
/* Frees the loop state when nothing uses it any more (at the Lua state's close); the uv
 * loop stays (its owner closes it). 0, or UV_EBUSY while connections remain. */
int ws_loop_free(ws_loop_t *l);
/* Corking: sends made between cork and uncork (nested) are batched per connection and
 * written when the outermost uncork runs. */
void ws_loop_cork(ws_loop_t *l);
void ws_loop_uncork(ws_loop_t *l);
/* Builds the server frame for data once; sends it to every conn (broadcast), each under
 * its own max_buffered policy. permessage-deflate conns that keep no send context share
 * one compressed frame; the others compress their own. Returns how many it was queued
 * for. */
size_t ws_loop_broadcast(ws_loop_t *l, ws_conn_t **conns, size_t n, int opcode,
                         const char *data, size_t len);

typedef struct ws_loop_stats {
  size_t connections;
  size_t buffered_in;     /* unconsumed input and unfinished messages */
  size_t buffered_out;    /* queued for peers */
  size_t topics;          /* topics with at least one subscriber */
  size_t subscriptions;
  size_t topic_memory;    /* bytes the topics take: their table, names, member lists */
} ws_loop_stats_t;
void ws_loop_stats(ws_loop_t *l, ws_loop_stats_t *st);

/* ---- server -------------------------------------------------------------- */

/* Listens on host:port (port 0: any). Returns 0 or a libuv/ws error. */
int ws_server_listen(ws_loop_t *l, ws_server_t **out, const char *host, int port,
                     const ws_server_options_t *o, ws_tls_ctx_t *tls, void *data);
int ws_server_port(ws_server_t *s);
/* Takes over a connection another server accepted (faye-websocket's way in): fd, a
 * connected TCP socket, and the bytes already read from it (a request head, maybe
 * more), which are handled first. s owns fd from then on, and closes it on failure.
 * Plain TCP only (WS_EINVAL on a TLS or raw server, fd untouched). 0 or an error. */
int ws_server_adopt(ws_server_t *s, uv_os_sock_t fd, const char *data, size_t len);
size_t ws_server_buffered(ws_server_t *s);   /* bytes its conns buffer, in and out */
void *ws_server_data(ws_server_t *s);
/* Stops accepting; open sockets get close 1001. on_server_closed fires when done. */
void ws_server_close(ws_server_t *s, void (*on_closed)(ws_server_t *s));

/* ---- connections ----------------------------------------------------------- */

/* An HTTP proxy for a client to go through: a tunnel asked for with CONNECT (RFC 9110
 * 9.3.6), then TLS to the server (wss://) and the opening handshake inside it. */
typedef struct ws_proxy_options {
  const char *host;              /* the proxy */
  int port;
  ws_tls_ctx_t *tls;             /* an https:// proxy: TLS to it first; NULL: plain */
  const char *servername;        /* its SNI and the name verified; NULL: host */
  const char *user, *password;   /* Proxy-Authorization: Basic, when user is not NULL */
  const char *headers;           /* more CONNECT headers, CRLF-ended lines, or NULL */
} ws_proxy_options_t;

/* Client: connect to ws(s)://host:port/path. host_header and extra_headers (CRLF-ended
 * lines, may be NULL) go into the request; protocols is a comma-separated list or NULL.
 * proxy: through that proxy, or NULL. Events start on the next loop turns; on failure
 * on_error then on_close(1006). */
int ws_conn_connect(ws_loop_t *l, ws_conn_t **out, const char *host, int port,
                    const char *path, const char *host_header, const char *protocols,
                    const char *extra_headers, const ws_conn_options_t *o,
                    ws_tls_ctx_t *tls, const char *servername,
                    const ws_proxy_options_t *proxy, int raw, void *data);

/* Server: answer the upgrade request being handled with 101; protocol may be NULL;
 * extra_headers: CRLF-ended lines or NULL. on_open fires when the request handler has
 * returned. Returns 0 or WS_EINVAL if the conn is not an unanswered upgrade. */
int ws_conn_accept(ws_conn_t *c, const char *protocol, const char *extra_headers,
                   const ws_conn_options_t *o);

/* Plain HTTP answer (the layer above formats status line and headers). */
int ws_conn_http_write(ws_conn_t *c, const char *data, size_t len);
/* The answer is whole. keep: the layer above framed it so that the connection may
 * carry the next request (HTTP/1.1 keep-alive); the conn then reads the next request
 * (on_request_done first), unless the request forbade it, had a body that was not
 * read, or the server is closing: then it flushes and closes the TCP connection. */
void ws_conn_http_end(ws_conn_t *c, int keep);
/* Could the connection carry another request after this answer (so the answer need not
 * say Connection: close)? No after a request that said close, with a streamed body
 * still coming, on a deferred upgrade, or once the server is closing. */
int ws_conn_http_keepable(const ws_conn_t *c);
/* Inside on_request for an upgrade: the request stays unanswered after the call, to be
 * accepted (ws_conn_accept) or answered (ws_conn_http_write / _end) later; input waits.
 * Bounded by the server's handshake timeout (then 408 and the connection closes).
 * 0, or WS_EINVAL outside on_request / for a plain request. */
int ws_conn_defer(ws_conn_t *c);
/* During on_request for a plain request: its body (read whole, de-chunked), or NULL
 * with *len 0 when it had none. */
const char *ws_conn_request_body(const ws_conn_t *c, size_t *len);
/* Is c's request body coming in pieces (stream_bodies), after on_request? */
int ws_conn_request_streaming(const ws_conn_t *c);
/* The layer above's handler for c raised: an unanswered request (plain or upgrade) gets
 * 500, a response under way is cut short, an open socket closes with 1011. */
void ws_conn_handler_failed(ws_conn_t *c);

/* Sends a data message (WS_OP_TEXT / WS_OP_BINARY) or PING / PONG, through the
 * negotiated extensions. 0 or an error: WS_ECLOSED, WS_EBACKPRESSURE, WS_EINVAL (control
 * payload > 125; text that is not UTF-8 on a draft connection), WS_ENOTSUPPORTED (binary
 * or ping on a draft connection). */
int ws_conn_send(ws_conn_t *c, int opcode, const char *data, size_t len);
/* Raw mode: bytes as they are. */
int ws_conn_write_raw(ws_conn_t *c, const char *data, size_t len);
/* Starts the close handshake (code 0: none). Safe in any state, any number of times. */
void ws_conn_close(ws_conn_t *c, unsigned code, const char *reason, size_t reason_len);
/* Drops the TCP connection now; on_close(1006). */
void ws_conn_terminate(ws_conn_t *c);
void ws_conn_pause(ws_conn_t *c);
void ws_conn_resume(ws_conn_t *c);

int ws_conn_ready_state(const ws_conn_t *c);
size_t ws_conn_buffered(const ws_conn_t *c);
const char *ws_conn_protocol(const ws_conn_t *c);   /* "" if none */
const char *ws_conn_version(const ws_conn_t *c);    /* "hybi-13", "hixie-76", ... */
const char *ws_conn_extensions(const ws_conn_t *c); /* the agreed Sec-WebSocket-Extensions
                                                       value; "" if none */
int ws_conn_is_client(const ws_conn_t *c);
/* Client, until open: the status of the server's answer (0 before its head came); a
 * handshake that failed on it keeps it for on_error / on_close. */
int ws_conn_response_status(const ws_conn_t *c);
void *ws_conn_data(const ws_conn_t *c);
void ws_conn_set_data(ws_conn_t *c, void *data);
/* Peer address "ip" and port; 0 or a libuv error. */
int ws_conn_peer(const ws_conn_t *c, char *ip, size_t iplen, int *port);

/* ---- topics (topics.c) -------------------------------------------------------- */

/* A topic is any byte string up to WS_TOPIC_MAX bytes; the loop keeps a topic while it
 * has subscribers. Subscribers are conns that are open or opening: a conn leaves all its
 * topics when it starts closing (or is dropped). */
#define WS_TOPIC_MAX 256

/* 1: subscribed now; 0: it was already. WS_EINVAL: topic over WS_TOPIC_MAX; WS_ECLOSED:
 * c is closing or closed (or not a WebSocket); WS_ELIMIT: c has max_subscriptions
 * already; WS_ENOMEM. */
int ws_conn_subscribe(ws_conn_t *c, const char *topic, size_t len);
/* 1: it was subscribed, and is no more; 0: it was not. */
int ws_conn_unsubscribe(ws_conn_t *c, const char *topic, size_t len);
int ws_conn_is_subscribed(const ws_conn_t *c, const char *topic, size_t len);
/* c's topics: how many, and the i-th (NULL past the end); valid until they change. */
size_t ws_conn_subscriptions(const ws_conn_t *c);
const char *ws_conn_topic(const ws_conn_t *c, size_t i, size_t *len);
size_t ws_loop_subscribers(ws_loop_t *l, const char *topic, size_t len);

typedef struct ws_publish {
  size_t delivered;   /* subscribers the message was queued for */
  size_t skipped;     /* the others: not open yet, dropped by their back-pressure policy,
                         refused by it ("error" policy), or unable to carry it */
} ws_publish_t;
/* ws_loop_broadcast to the subscribers of topic, as they are when it is called.
 * missed (may be NULL) is called after the sends, for each subscriber that was open and
 * stays open without the message (the "error" back-pressure policy refused it, or a
 * draft cannot carry binary): the ones the caller must hear of, as the dropped ones hear
 * on_error/on_close. 0, or WS_EINVAL (topic too long, opcode not text or binary), or
 * WS_ENOMEM (nothing was sent). */
int ws_loop_publish(ws_loop_t *l, const char *topic, size_t tlen, int opcode, const char *data,
                    size_t len, ws_publish_t *out, void (*missed)(ws_conn_t *c, void *ud),
                    void *ud);

/* ---- the Redis backplane (backplane.c) ---------------------------------------- */

/* Topics across processes: the loop's topics are mirrored as Redis channels (prefix +
 * topic) on a Redis server that many processes share. A process subscribes to a channel
 * while it has a local subscriber; a publish is delivered locally at once and sent to
 * Redis, and each process delivers what comes from Redis to its own subscribers, except
 * its own publishes. Built with hiredis (LUAWS_HIREDIS); without it, open fails with
 * WS_ENOTSUPPORTED. */
typedef struct ws_backplane ws_backplane_t;

typedef struct ws_backplane_options {
  const char *host;               /* a name (resolved off the loop) or an address */
  int port;
  const char *username;           /* AUTH username password (Redis 6 ACLs); may be NULL */
  const char *password;           /* AUTH password; NULL: no AUTH */
  int db;                         /* SELECT db when > 0 */
  const char *prefix;             /* channel = prefix .. topic */
  size_t prefix_len;
  size_t max_queue;               /* publishes Redis has not acknowledged, at most */
  size_t max_queue_bytes;         /* and their bytes */
  uint32_t reconnect_min_ms;      /* the first wait after a failure; doubled each time */
  uint32_t reconnect_max_ms;      /* up to this */
  uint32_t connect_timeout_ms;    /* connect + AUTH/SELECT, and a (un)subscribe's answer */
} ws_backplane_options_t;

void ws_backplane_options_default(ws_backplane_options_t *o);

typedef struct ws_backplane_events {
  /* Both connections are up (AUTH and SELECT done): the first time, and after every
   * reconnection (the topics are being subscribed again, queued publishes sent). */
  void (*on_connect)(ws_backplane_t *bp);
  /* A connection was lost while both were up. on_error told why, just before. */
  void (*on_disconnect)(ws_backplane_t *bp);
  /* A connection failed or was lost (it is retried after a backoff), or Redis refused a
   * publish. message says which connection and why. */
  void (*on_error)(ws_backplane_t *bp, const char *message);
  /* A message from another process reached topic's subscribers but these open ones did
   * not take it (their "error" back-pressure policy, or a draft that cannot carry it). */
  void (*on_missed)(ws_backplane_t *bp, const char *topic, size_t tlen, ws_conn_t **conns,
                    size_t n);
} ws_backplane_events_t;

/* Starts the backplane of l (one per loop); it connects from the loop, so no event fires
 * before this returns. 0, WS_EINVAL (l has one already, or a prefix over 256 bytes),
 * WS_ENOTSUPPORTED (built without hiredis) or WS_ENOMEM. */
int ws_backplane_open(ws_loop_t *l, const ws_backplane_options_t *o,
                      const ws_backplane_events_t *ev, void *data, ws_backplane_t **out);
ws_backplane_t *ws_loop_backplane(ws_loop_t *l);   /* NULL: none */
void *ws_backplane_data(const ws_backplane_t *bp);
ws_loop_t *ws_backplane_loop(const ws_backplane_t *bp);
/* Queues a publish for Redis (sent at once when connected, else when connected again).
 * 0, or WS_EBACKPLANE when max_queue or max_queue_bytes would be passed (nothing is
 * queued), or WS_ENOMEM. The caller delivers it locally (ws_loop_publish). */
int ws_backplane_publish(ws_backplane_t *bp, const char *topic, size_t tlen, int opcode,
                         const char *data, size_t len);

typedef struct ws_backplane_stats {
  int connected;          /* both connections up */
  size_t queued;          /* publishes not yet acknowledged by Redis */
  size_t queued_bytes;
  size_t channels;        /* channels Redis confirmed on the subscriber connection */
  uint64_t reconnects;    /* times it was connected again after being connected */
  size_t max_queue, max_queue_bytes;
} ws_backplane_stats_t;
void ws_backplane_stats(const ws_backplane_t *bp, ws_backplane_stats_t *st);

/* Disconnects, lets the topics go and frees bp (its memory once libuv is done with its
 * handles); no event fires after. Returns the publishes dropped unsent. */
size_t ws_backplane_close(ws_backplane_t *bp);

/* ---- timers for scripts ---------------------------------------------------- */

typedef struct ws_timer ws_timer_t;
ws_timer_t *ws_timer_start(ws_loop_t *l, uint64_t ms, uint64_t repeat_ms,
                           void (*cb)(ws_timer_t *t, void *data), void *data);
/* Stops and frees (in libuv's close callback); t must not be used after. */
void ws_timer_stop(ws_timer_t *t);

/* Count of libuv handles not closing (tests: none may be left). */
int ws_loop_active_handles(ws_loop_t *l);

#endif
