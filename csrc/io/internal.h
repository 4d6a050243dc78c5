/* Internals shared by the files of the I/O layer. */
#ifndef LUAWS_IO_INTERNAL_H
#define LUAWS_IO_INTERNAL_H

#include <stddef.h>
#include "io.h"
#include "codec.h"

#define WS__READ_BUF (256 * 1024)   /* the loop's one read buffer */
#define WS__CORK_BUF (64 * 1024)    /* batches small sends made inside a handler */
#define WS__CORK_MAX (16 * 1024)    /* larger sends bypass the cork buffer */
#define WS__MSG_AHEAD (64 * 1024)      /* room made ahead of a split frame's bytes */
#define WS__DIRECT_MIN (16 * 1024)     /* a frame rest at least this big is read in place */
#define WS__TLS_HEADROOM (32 * 1024) /* TLS reads land after this much of the read buffer */

/* A piece of bytes to write (uv_buf_t's length is only 32-bit). */
typedef struct ws_iov {
  const char *base;
  size_t len;
} ws_iov_t;

/* A byte queue: live bytes are data[start .. start+len) of one heap block, which holds
 * the counts too, so that an empty queue (most of a conn's, most of the time) costs its
 * owner one pointer. */
struct ws__bufmem {
  size_t start, len, cap;
  char data[];
};
typedef struct ws_buf {
  struct ws__bufmem *m;   /* NULL: empty, nothing allocated */
} ws_buf_t;

int ws__buf_append(ws_buf_t *b, const char *data, size_t len);
char *ws__buf_reserve(ws_buf_t *b, size_t len);   /* room for len more; NULL on ENOMEM */
void ws__buf_commit(ws_buf_t *b, size_t len);     /* len bytes written in that room join */
void ws__buf_consume(ws_buf_t *b, size_t len);
void ws__buf_clear(ws_buf_t *b);                  /* empty, keeping the memory */
void ws__buf_free(ws_buf_t *b);
static inline size_t ws__buf_len(const ws_buf_t *b) { return b->m ? b->m->len : 0; }
static inline size_t ws__buf_cap(const ws_buf_t *b) { return b->m ? b->m->cap : 0; }
static inline char *ws__buf_data(const ws_buf_t *b) { return b->m ? b->m->data + b->m->start : NULL; }
static inline size_t ws__buf_room(const ws_buf_t *b) {
  return b->m ? b->m->cap - b->m->start - b->m->len : 0;
}

typedef struct ws__limits ws__limits_t;   /* a conn's timeouts and limits (below) */
typedef struct ws__stream_ops ws__stream_ops_t;   /* a socket's calls (below) */

/* The loop's topics (topics.c). */
typedef struct ws__topic ws__topic_t;
struct ws__topic {
  uint64_t hash;
  ws_conn_t **conns;   /* the subscribers, in one block with slot[] */
  uint32_t *slot;      /* conns[i]'s entry in its own list (c->subs->s[slot[i]]) */
  uint32_t n, cap;
  uint16_t len;
  uint8_t remote;      /* the backplane's marks (backplane.c); while any is set, the topic
                          stays without subscribers */
  ws__topic_t *dirty_next;   /* the backplane's list of topics to (un)subscribe */
  char name[];
};
struct ws__topics {
  ws__topic_t **tab;         /* open addressing, linear probing; NULL: a free slot */
  uint32_t cap, n;           /* slots (a power of 2, or 0 with no topic), topics */
  size_t subscriptions;
  size_t memory;             /* bytes of the table, the topics and the conns' lists */
  uint64_t key[2];           /* the hash's key, drawn with the table */
};

struct ws_loop {
  uv_loop_t *uv;
  const ws_io_events_t *ev;
  void *data;                /* the layer above's (ws_loop_data) */
  char *rbuf;                /* the read buffer; a conn's input tail is put first */
  size_t rprefix;            /* bytes of tail placed at rbuf by the last alloc */
  int rdirect;               /* the last alloc gave a conn's message buffer, not rbuf */
  ws_buf_t cork;             /* corked bytes of cork_owner */
  ws_conn_t *cork_owner;
  int cork_depth;
  int nconns;
  ws_conn_t *conns;          /* every conn, for the sweep and server close */
  uv_timer_t sweep;          /* checks every conn's deadlines (ws__conn_sweep) */
  uint32_t sweep_ms;         /* its period: a quarter of the shortest timeout in use */
  int sweep_on;
  int freed;                 /* the sweep freed much: give memory back to the system */
  size_t mem_in, mem_out;    /* bytes buffered by all conns (ws_loop_stats) */
  ws_bytes_t scratch;        /* an extension's output for the message being sent */
  struct ws__keys *keys;     /* masking keys drawn in bulk (ws__mask_key), or NULL */
  int keys_wiped;            /* their page is wiped in a forked child (MADV_WIPEONFORK);
                                else the pid is checked on every key */
  pid_t keys_pid;            /* the process that drew them */
  /* Sockets (sock.c): the loop's epoll set, watched through one poll handle. */
  int sock_epfd;
  uv_poll_t sock_poll;
  int sock_active;           /* sockets in the set: the poll handle is referenced */
  int spare_fd;              /* given up to shed a backlog when out of fds */
  int live;                  /* conns whose socket is not closed (active handles) */
  uv_check_t keep;           /* ws_loop_run: keeps libuv's loop alive while a socket
                                waits (the poll handle is stopped there), and sees a
                                uv_stop made inside libuv's turn */
  int stopped;
  uv_idle_t reaper;          /* frees the conns of closed sockets at the next turn */
  const ws__stream_ops_t *script_io;   /* tests' scripted sockets' calls (scripted.c) */
  void *scripts;                       /* and their states */
  uintptr_t *reap;           /* conns, the low bit set for ws__loop_defer_fin's */
  size_t nreap, capreap;
  /* The upgrade request being handed up (on_request), for ws_conn_accept. */
  ws_conn_t *req_conn;
  const ws_http_head_t *req_head;
  const char *req_body;      /* the bytes after its head that the codec needs */
  const char *req_raw;       /* the request's bytes (head and body), for ws_conn_defer */
  size_t req_raw_len;
  struct ws__topics topics;
  ws__limits_t *limits;      /* the conns' limits in use (ws__limits_get) */
  /* The Redis backplane (backplane.c), told when a topic gets its first subscriber and
   * when it loses its last; NULL: none. The hooks must not change the topics. */
  ws_backplane_t *backplane;
  void (*topic_first)(ws_backplane_t *bp, ws__topic_t *t);
  void (*topic_empty)(ws_backplane_t *bp, ws__topic_t *t);
};

/* Loop time in ms, for the conns' deadlines; compared by unsigned difference, so it may
 * wrap (every timeout is below 2^31 ms). */
static inline uint32_t ws__now(const ws_loop_t *l) { return (uint32_t)uv_now(l->uv); }
/* The sweep's period must be short enough for a conn with this timeout (ms). */
void ws__loop_sweep_for(ws_loop_t *l, uint32_t timeout_ms);
void ws__loop_link(ws_loop_t *l, ws_conn_t *c);
/* A fresh masking key (RFC 6455 5.3: unpredictable, from a strong source): 4 bytes of
 * the OS random source, drawn 4 KiB at a time (one RAND_bytes per key cost more than the
 * rest of a small frame's sending). 0 or WS_EINTERNAL. */
int ws__mask_key(ws_loop_t *l, uint8_t key[4]);
void ws__loop_unlink(ws_conn_t *c);

/* Connection states (readyState is derived from them). */
enum {
  WS__S_HTTP,        /* server: reading a request head */
  WS__S_BODY,        /* server: reading a plain request's body (c->body) */
  WS__S_REQUEST,     /* server: head handed up; awaiting accept or an HTTP answer */
  WS__S_RESPONDING,  /* server: answering plain HTTP */
  WS__S_CONNECTING,  /* client: resolving / connecting / TLS */
  WS__S_HANDSHAKE,   /* client: request sent, reading the 101 */
  WS__S_OPEN,
  WS__S_CLOSING,
  WS__S_RAW,         /* tests: bytes in, bytes out */
  WS__S_CLOSED
};

enum {
  WS__F_CLIENT = 1 << 0,
  WS__F_PAUSED = 1 << 1,
  WS__F_CLOSE_SENT = 1 << 2,
  WS__F_CLOSE_RECEIVED = 1 << 3,
  WS__F_END_AFTER_FLUSH = 1 << 4,   /* shut down once the write queue is empty */
  WS__F_KNOWN = 1 << 5,             /* the layer above knows the conn: on_close owed */
  WS__F_FAILED = 1 << 6,            /* failed: close is not clean */
  WS__F_READING = 1 << 7,
  WS__F_SHUTDOWN = 1 << 8,
  WS__F_CLEAN = 1 << 9,             /* close handshake done both ways */
  WS__F_HEARD = 1 << 10,            /* bytes came since the last automatic ping */
  WS__F_PINGED = 1 << 11,           /* an automatic ping is out */
  WS__F_IN_INPUT = 1 << 12,         /* ws__conn_input is running: never re-enter it */
  WS__F_THROTTLED = 1 << 13,        /* not reading: bufferedAmount passed high_water */
  WS__F_DRAIN = 1 << 14,            /* on_drain is owed when the queue empties */
  WS__F_BP_ERROR = 1 << 15,         /* over max_buffered: send fails, the conn stays */
  WS__F_HELD = 1 << 16,             /* not reading: a request is being answered */
  WS__F_DEFERRED = 1 << 17,         /* an upgrade request kept for a later answer */
  WS__F_NO_KEEP = 1 << 18,          /* this request's connection closes after it */
  WS__F_KEPT = 1 << 19,             /* between requests of a keep-alive connection */
  WS__F_STREAMING = 1 << 20,        /* the body goes up in pieces (on_request_body) */
  WS__F_BUFFERED = 1 << 21,         /* on_request: the body is whole, in c->msg */
  WS__F_CONNECTING = 1 << 22,       /* a client's TCP connect is under way */
  WS__F_FIN_OWED = 1 << 23,         /* FIN goes at the loop's next turn */
  WS__F_SCRIPTED = 1 << 24          /* a test's socket: the loop's script_io calls */
};

typedef struct ws__client_hs ws__client_hs_t;

/* Not reading: paused by the layer above, throttled by our own queue, or holding the
 * pipelined requests while one is answered. */
#define WS__BLOCKED (WS__F_PAUSED | WS__F_THROTTLED)
/* Holding (WS__F_HELD) stops the parsing, not the reading, so a client that goes away
 * is still seen; past this many buffered bytes reading stops too. */
#define WS__HELD_MAX (64 * 1024)

/* A conn's role, installed by server.c or client.c: the conn calls these and never a
 * role's functions by name, so every dependency in csrc/io points at the conn. */
typedef struct ws__role {
  /* Input in an HTTP state: bytes consumed, 0 to wait for more, or -1 when the conn was
   * failed or answered and input must stop. */
  ssize_t (*on_head)(ws_conn_t *c, char *buf, size_t len);
  /* A stage of a client's way in is done (TCP, TLS, a proxy's CONNECT): the next one
   * starts. The transports call it; a server's conn ignores it. */
  void (*ready)(ws_conn_t *c);
  /* A whole frame sent before the socket is open (client: written after the 101). */
  int (*queue_early)(ws_conn_t *c, const char *frame, size_t len);
  size_t (*early_len)(const ws_conn_t *c);
  void (*account)(ws_conn_t *c, ssize_t delta);   /* c's buffers grew or shrank */
  void (*connected)(ws_conn_t *c, int status);    /* a client's TCP connect is done */
  void (*free)(ws_conn_t *c);
  /* What a conn that is not open yet is doing, for its errors ("TLS handshake"); NULL:
   * nothing to add. May be NULL itself. */
  const char *(*stage)(const ws_conn_t *c);
} ws__role_t;

extern const ws__role_t ws__server_role, ws__client_role;
/* A conn's role is an index into ws__roles (a byte, not a pointer, in each conn). */
enum { WS__ROLE_NONE, WS__ROLE_SERVER, WS__ROLE_CLIENT };
extern const ws__role_t *const ws__roles[3];

/* A plain request whose body is being read (server.c): its framing, and a copy of its
 * head, parsed again when the body (in c->msg) is whole. */
struct ws__body {
  ws_http_body_t framing;
  size_t head_len;
  char head[];
};

/* An error to tell the layer above just before on_close (conn.c, note_error). */
struct ws__error {
  int err;
  char message[];
};

/* The extensions a conn is configured with, and what negotiation made of them. Only a
 * conn configured with some has one. */
struct ws__exts {
  unsigned n;
  int rsv;                  /* RSV bits the negotiated ones own (0: none negotiated) */
  int text;                 /* the message being decoded is text */
  uint32_t utf8;            /* its UTF-8 validator state (on the decoded bytes) */
  char *agreed;             /* Sec-WebSocket-Extensions value agreed, or NULL */
  ws_ext_use_t use[WS_MAX_EXTENSIONS];   /* configs are copies owned here */
};

/* Layers between the socket and the connection: TLS (tls.c), a proxy's CONNECT
 * (proxy.c). They stack: c->tp is the top one (NULL: plain TCP), which the conn writes
 * through, each layer writing to the one below it (ws__tp_write_below); reads enter at
 * the bottom one and each layer hands what it makes of them up (ws__tp_up), the top one
 * to the conn. A layer installs its calls here; the conn never names them. */
typedef struct ws__transport ws__transport_t;
typedef struct ws__transport_ops {
  size_t headroom;   /* as the bottom layer, reads land this far into the loop's read
                        buffer (TLS decrypts into the front, in place) */
  void (*on_read)(ws_conn_t *c, ws__transport_t *t, char *data, size_t len);
  int (*write)(ws_conn_t *c, ws__transport_t *t, const ws_iov_t *iov, unsigned n);
  void (*shutdown)(ws_conn_t *c, ws__transport_t *t);   /* before FIN; may be NULL */
  void (*free)(ws__transport_t *t);
} ws__transport_ops_t;

struct ws__transport {
  const ws__transport_ops_t *ops;
  ws__transport_t *below;   /* toward the socket; NULL: the socket itself */
  ws__transport_t *above;   /* toward the conn; NULL: the conn */
};

/* The socket calls a conn makes: sock.c's (ws__sock_ops, an fd in the loop's epoll set)
 * but in tests (scripted.c). Readiness, not completion: the conn says what it waits for
 * (want: WS__IO_READ, WS__IO_WRITE), the socket calls ws__conn_io when it may read or
 * write, and read and write never block (UV_EAGAIN: nothing now). */
enum { WS__IO_READ = 1, WS__IO_WRITE = 2 };
#define WS__MAX_IOV 16   /* pieces one write takes; the rest is queued */
struct ws__stream_ops {
  int (*want)(ws_conn_t *c, unsigned events);
  ssize_t (*read)(ws_conn_t *c, char *buf, size_t len);   /* 0: the peer's FIN */
  ssize_t (*write)(ws_conn_t *c, const ws_iov_t *iov, unsigned n);   /* bytes taken */
  int (*shutdown)(ws_conn_t *c);   /* FIN (nothing is queued by then) */
  void (*close)(ws_conn_t *c);     /* no call follows; the conn's memory stays until the
                                      loop's next turn (ws__loop_reap) */
  int (*peer)(const ws_conn_t *c, struct sockaddr_storage *ss);
};

extern const ws__stream_ops_t ws__sock_ops;
/* The socket is readable or writable (events: WS__IO_*, only what c waits for). */
void ws__conn_io(ws_conn_t *c, unsigned events);

/* Another socket in the loop's set (a server's listener): cb gets WS__IO_* events. */
typedef struct ws__pollable ws__pollable_t;
struct ws__pollable {
  int fd;
  unsigned ev;   /* what it waits for now */
  void (*cb)(ws__pollable_t *p, unsigned events);
};
int ws__poll_set(ws_loop_t *l, ws__pollable_t *p, unsigned events);   /* 0: leaves the set */

int ws__sock_loop_init(ws_loop_t *l);
void ws__sock_loop_close(ws_loop_t *l);
/* c takes fd (non-blocking, no Nagle); the caller closes it on failure. */
int ws__sock_open(ws_conn_t *c, int fd);
/* A socket for c, connecting to a: the role's connected() says how it went. */
int ws__sock_connect(ws_conn_t *c, const struct sockaddr *a, socklen_t alen);
int ws__sock_connect_result(ws_conn_t *c);   /* 0 or the connect's error */
void ws__sock_accept_failed(ws_loop_t *l, int listen_fd);   /* EMFILE: shed the backlog */
/* c's socket is closed: its reference goes at the loop's next turn. */
void ws__loop_reap(ws_conn_t *c);
/* At the loop's next turn, ws__conn_fin(c) (as libuv's shutdown completed at a later turn,
 * so the conn stays closing meanwhile; it holds a reference till then). */
void ws__loop_defer_fin(ws_conn_t *c);
void ws__conn_fin(ws_conn_t *c);   /* FIN, then the socket closes */
/* The loop's own libuv handles, which ws_loop_active_handles does not count. */
int ws__loop_own_handle(const ws_loop_t *l, const uv_handle_t *h);

/* A conn's timeouts (ms, 0: none) and limits. Conns with the same ones share one copy
 * (ws__limits_get): an idle conn holds a pointer, not 50 bytes of numbers. */
struct ws__limits {
  uint32_t handshake_ms, close_ms, ping_ms, idle_ms, pong_ms, message_ms, send_ms;
  uint16_t max_head, max_headers, max_subscriptions;
  size_t max_buffered, high_water;
  /* not compared: */
  uint32_t refs;
  ws__limits_t *next;
};
#define WS__LIMITS_CMP offsetof(ws__limits_t, refs)
extern const ws__limits_t ws__no_limits;   /* a fresh conn's: none at all */
/* A shared copy of *want (refs taken), or NULL on ENOMEM; put gives it back. */
const ws__limits_t *ws__limits_get(ws_loop_t *l, const ws__limits_t *want);
void ws__limits_put(ws_loop_t *l, const ws__limits_t *lim);

struct ws_conn {
  ws_loop_t *loop;
  ws_server_t *server;
  ws_conn_t *next, *prev;          /* the loop's list of conns */
  void *data;
  ws__transport_t *tp;             /* the top layer (NULL: plain TCP) */
  char *protocol;                  /* negotiated subprotocol, NULL if none */
  const ws_codec_t *codec;         /* the protocol version's framing (codec.h) */
  ws_codec_parser_t parser;
  struct ws__subs *subs;           /* its topics (topics.c), or NULL: none */
  struct ws__rare *rare;           /* what few conns need (ws__r, ws__rare), or NULL */
  ws_buf_t in;                     /* unconsumed input (split header, paused) */
  ws_buf_t msg;                    /* an unfinished message */
  ws_buf_t pending;                /* queued, not yet handed to libuv */
  const ws__limits_t *lim;         /* its timeouts and limits, shared with its like */
  size_t acct_in, acct_out;        /* buffered bytes last counted in the loop's totals */
  /* The times the timeouts (c->lim, checked by the loop's sweep) count from. */
  uint32_t state_at;               /* connecting, accepted, or closing began */
  uint32_t heard_at;               /* bytes last came from the peer */
  uint32_t ping_at;                /* the automatic ping went out */
  uint32_t msg_at;                 /* the message in progress began; 0 if none */
  uint32_t out_at;                 /* the peer last took queued bytes (or they queued) */
  uint32_t scanned;                /* bytes of a head already searched for its end */
  uint32_t flags;
  uint16_t close_code;             /* for on_close */
  uint8_t state;
  uint8_t version;                 /* 13, 8, 7; 76, 75 for the drafts */
  uint8_t refs;                    /* its socket (till reaped) and requests still out */
  uint8_t io_ev;                   /* what the socket waits for (WS__IO_*) */
  uint8_t role;                    /* WS__ROLE_*: its ws__roles entry */
  uint8_t msg_binary;
  int fd;                          /* the socket, or -1 */
};

/* What few conns need, and most only for a while: a conn makes it when it first needs
 * it, and it goes with the conn. */
struct ws__rare {
  ws__client_hs_t *hs;             /* client handshake state, freed at open */
  struct ws__exts *ext;            /* configured extensions, or NULL */
  char *close_reason;              /* the peer's close reason, if any */
  struct ws__error *error;         /* an abort's error, told just before on_close */
  struct ws__body *body;           /* the request whose body is being read, or NULL */
  char *deferred;                  /* a deferred upgrade request's bytes (ws_conn_defer) */
  size_t deferred_len;
};
extern const struct ws__rare ws__rare_none;
static inline const struct ws__rare *ws__r(const ws_conn_t *c) {   /* to read */
  return c->rare ? c->rare : &ws__rare_none;
}
struct ws__rare *ws__rare(ws_conn_t *c);   /* to write: made if need be; NULL: ENOMEM */

static inline const ws__role_t *ws__role(const ws_conn_t *c) { return ws__roles[c->role]; }

/* A conn's socket calls: its own fd's, or a test's script. */
static inline const ws__stream_ops_t *ws__io(const ws_conn_t *c) {
  return c->flags & WS__F_SCRIPTED ? c->loop->script_io : &ws__sock_ops;
}

struct ws_server {
  uv_tcp_t tcp;                    /* its socket (bind, address, close) */
  ws__pollable_t listener;         /* the socket in the loop's set, once listening */
  ws_loop_t *loop;
  void *data;
  ws_tls_ctx_t *tls;
  ws_server_options_t opt;
  size_t mem;                      /* bytes its conns buffer (opt.max_memory bounds it) */
  int evicting;
  void (*on_closed)(ws_server_t *s);
  int closing;
};

ws_conn_t *ws__conn_new(ws_loop_t *l);
int ws__conn_start_read(ws_conn_t *c);
void ws__conn_input(ws_conn_t *c, char *buf, size_t len);
void ws__conn_destroy(ws_conn_t *c, unsigned code, int clean);
void ws__conn_fail(ws_conn_t *c, int err, const char *message);
void ws__conn_set_open(ws_conn_t *c, const ws_http_head_t *head);
void ws__conn_apply_options(ws_conn_t *c, const ws_conn_options_t *o, int role);
int ws__conn_write(ws_conn_t *c, const ws_iov_t *iov, unsigned n);
/* Queues bytes as a frame is: into the loop's cork when corked and small (answers to
 * pipelined requests leave in one write), else written at once. */
int ws__conn_queue(ws_conn_t *c, const ws_iov_t *iov, unsigned n);
int ws__conn_write_raw(ws_conn_t *c, const ws_iov_t *iov, unsigned n);
void ws__conn_end(ws_conn_t *c);
void ws__conn_eof(ws_conn_t *c);   /* the peer's stream ended inside the transport */
/* Acts on whichever of c's deadlines has passed; returns the shortest timeout c has. */
uint32_t ws__conn_sweep(ws_conn_t *c, uint32_t now);
/* Counts c's buffers in the loop's totals and its server's budget. */
void ws__conn_account(ws_conn_t *c);
/* Before queueing len bytes: 0, or WS_EBACKPRESSURE under c's max_buffered policy (the
 * "drop" policy has aborted c then). After queueing: throttles reading past high_water. */
int ws__conn_admit(ws_conn_t *c, size_t len);
void ws__conn_after_queue(ws_conn_t *c);
void ws__conn_feed(ws_conn_t *c, char *buf, size_t pre, size_t len);
size_t ws__conn_prefix_room(const ws_conn_t *c, size_t max);
/* Gives up on a peer (gone, silent, or over a limit): on_error with err, a close frame
 * with code if the socket takes it at once, then the TCP connection is dropped. */
void ws__conn_abort(ws_conn_t *c, int err, unsigned code, const char *message);
void ws__conn_flush_cork(ws_loop_t *l);
/* Frames data once and queues it for each open conn of conns (ws_loop_broadcast); returns
 * how many it was queued for. missed: when not NULL, the conns that were open and stay
 * open without it (refused by the "error" back-pressure policy, or a protocol that cannot
 * carry it) are moved to the front of conns, and *missed counts them. */
size_t ws__loop_send_all(ws_loop_t *l, ws_conn_t **conns, size_t n, int opcode,
                         const char *data, size_t len, size_t *missed);
/* c leaves every topic it is subscribed to (it is closing). */
void ws__topics_leave(ws_conn_t *c);
void ws__topics_free(ws_loop_t *l);
/* t's remote marks were cleared: it goes if nobody is subscribed to it. */
void ws__topic_release(ws_loop_t *l, ws__topic_t *t);

/* The layer stack (transport.c). */
static inline ws__transport_t *ws__tp_bottom(const ws_conn_t *c) {
  ws__transport_t *t = c->tp;
  while (t && t->below) t = t->below;
  return t;
}
/* Puts t on top of c's layers: the conn's writes go through it from now on. */
void ws__tp_push(ws_conn_t *c, ws__transport_t *t);
/* Takes t out from among c's layers (a stage that is done); the caller frees it. */
void ws__tp_remove(ws_conn_t *c, ws__transport_t *t);
/* Bytes layer t sends: to the layer below it, or to the socket. */
int ws__tp_write_below(ws_conn_t *c, ws__transport_t *t, const ws_iov_t *iov, unsigned n);
/* What layer `from` made of a read (from NULL: the socket's bytes), to the layer above
 * it, or to the conn (ws__conn_feed: buf has `pre` bytes of room before the len new). */
void ws__tp_up(ws_conn_t *c, ws__transport_t *from, char *buf, size_t pre, size_t len);
/* Frees every layer (at the conn's end). */
void ws__tp_free_all(ws_conn_t *c);

/* A layer that asks an HTTP proxy for a tunnel to host:port (proxy.c, CONNECT). NULL on
 * failure, with *err. */
ws__transport_t *ws__proxy_new(const char *host, int port, const ws_proxy_options_t *p,
                               int *err);
/* Puts it on top of c's layers and sends the request. On a 2xx answer it takes itself
 * out, says ws__role(c)->ready, and hands what followed the answer to the next stage. */
void ws__proxy_start(ws_conn_t *c, ws__transport_t *t);

/* A client conn with its request head built, not yet connected; freed on failure. */
int ws__client_new(ws_loop_t *l, ws_conn_t **out, const char *path, const char *host_header,
                   const char *protocols, const char *extra_headers,
                   const ws_conn_options_t *o, int raw, void *data);
/* Chooses c's way in: TCP to the proxy or to host:port (tcp 0: the socket is there
 * already, as a scripted one), TLS to an https:// proxy, the proxy's CONNECT, TLS
 * (tls not NULL), the opening handshake. Makes its layers now, so that a bad option
 * fails here; ws__role(c)->ready starts the first stage. */
int ws__client_way_in(ws_conn_t *c, int tcp, const char *host, int port, ws_tls_ctx_t *tls,
                      const char *servername, const ws_proxy_options_t *proxy);
/* A server with its (unbound) TCP handle, whose socket exists already for family
 * AF_INET or AF_INET6 (AF_UNSPEC: made at the bind); ws_server_close frees it. */
ws_server_t *ws__server_new(ws_loop_t *l, const ws_server_options_t *o, ws_tls_ctx_t *tls,
                           void *data, int family);
/* An accepted conn of s: options, TLS, then reading the request head (or raw). */
void ws__server_start(ws_server_t *s, ws_conn_t *c);
/* Acts on every conn's deadlines as at time now (the sweep timer's walk). */
void ws__loop_sweep(ws_loop_t *l, uint32_t now);
void ws__conn_unref(ws_conn_t *c);
/* Stops reading while a request is answered (on 1), and reads on, the buffered
 * pipelined bytes first (on 0). */
void ws__conn_hold(ws_conn_t *c, int on);
/* Copies o's extensions and their configs into c (none: c->ext stays NULL). */
int ws__conn_set_extensions(ws_conn_t *c, const ws_conn_options_t *o);
/* Negotiation is done: what was agreed (value may be NULL) and the RSV bits it owns. */
int ws__conn_extensions_agreed(ws_conn_t *c, const char *value, size_t len);

#endif
