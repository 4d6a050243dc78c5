/* The Redis backplane (io.h): the loop's topics across processes, over two hiredis
 * connections on the loop's libuv loop (hiredis/adapters/libuv.h). A connection in
 * SUBSCRIBE mode takes no other command, so one subscribes and one publishes. A publish
 * carries a header (kind, origin, sequence number): a process skips its own publishes,
 * which it delivered locally already, and one sent again after a lost connection is
 * delivered once. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "internal.h"

void ws_backplane_options_default(ws_backplane_options_t *o) {
  memset(o, 0, sizeof *o);
  o->host = "127.0.0.1";
  o->port = 6379;
  o->prefix = "luaws:";
  o->prefix_len = sizeof "luaws:" - 1;
  o->max_queue = 1000;
  o->max_queue_bytes = 16u << 20;
  o->reconnect_min_ms = 100;
  o->reconnect_max_ms = 5000;
  o->connect_timeout_ms = 5000;
}

ws_backplane_t *ws_loop_backplane(ws_loop_t *l) { return l->backplane; }

#ifndef LUAWS_HIREDIS

int ws_backplane_open(ws_loop_t *l, const ws_backplane_options_t *o,
                      const ws_backplane_events_t *ev, void *data, ws_backplane_t **out) {
  (void)l, (void)o, (void)ev, (void)data;
  *out = NULL;
  return WS_ENOTSUPPORTED;
}
void *ws_backplane_data(const ws_backplane_t *bp) { (void)bp; return NULL; }
ws_loop_t *ws_backplane_loop(const ws_backplane_t *bp) { (void)bp; return NULL; }
int ws_backplane_publish(ws_backplane_t *bp, const char *topic, size_t tlen, int opcode,
                         const char *data, size_t len) {
  (void)bp, (void)topic, (void)tlen, (void)opcode, (void)data, (void)len;
  return WS_ENOTSUPPORTED;
}
void ws_backplane_stats(const ws_backplane_t *bp, ws_backplane_stats_t *st) {
  (void)bp;
  memset(st, 0, sizeof *st);
}
size_t ws_backplane_close(ws_backplane_t *bp) { (void)bp; return 0; }

#else

#include <hiredis/hiredis.h>
#include <hiredis/async.h>
#include <hiredis/adapters/libuv.h>

#define BP_PREFIX_MAX 256
#define BP_BATCH 256            /* channels in one SUBSCRIBE or UNSUBSCRIBE */
#define BP_BATCH_BYTES 16384    /* and their bytes (at least 32 channels of the longest) */
#define BP_SEEN_MAX 1024        /* origins whose last sequence number is remembered */
/* A publish's header: 0xFF (never the first byte of UTF-8 text, so a plain PUBLISH from
 * any other Redis client is told apart), 't' or 'b', 16 bytes of origin, and a 64-bit
 * big-endian sequence number. */
#define BP_MAGIC 0xff
#define BP_ORIGIN 16
#define BP_HEADER (2 + BP_ORIGIN + 8)

enum { LINK_SUB, LINK_PUB };
enum { L_WAIT, L_RESOLVING, L_CONNECTING, L_HANDSHAKE, L_READY };

/* A topic's marks (t->remote): R_ON while its channel is subscribed on the current
 * connection (SUBSCRIBE sent, no UNSUBSCRIBE since); R_DIRTY while it is on bp->dirty. */
#define R_ON 1
#define R_DIRTY 2

typedef struct bp_link bp_link_t;
typedef struct bp_resolve {
  uv_getaddrinfo_t req;
  bp_link_t *k;
} bp_resolve_t;

struct bp_link {
  ws_backplane_t *bp;
  int kind, state;
  redisAsyncContext *ac;      /* NULL unless connecting or connected */
  uv_timer_t timer;           /* the wait before a retry; the deadline of a connect, and of
                                 the answers to a (un)subscribe batch */
  bp_resolve_t *resolving;    /* the host name being resolved */
  unsigned failures;          /* in a row; 0 once it is up */
  int pending;                /* answers awaited to AUTH, SELECT, PING */
};

/* A publish Redis has not acknowledged, as the PUBLISH command it is sent as. */
typedef struct bp_msg {
  struct bp_msg *next;
  size_t len;
  char cmd[];
} bp_msg_t;

typedef struct bp_seen {
  uint8_t origin[BP_ORIGIN];
  uint64_t seq;
} bp_seen_t;

struct ws_backplane {
  ws_loop_t *loop;
  const ws_backplane_events_t *ev;
  void *data;
  char *host, *username, *password, *prefix;
  size_t prefix_len;
  int port, db;
  size_t max_queue, max_queue_bytes;
  uint32_t retry_min, retry_max, timeout;
  bp_link_t sub, pub;
  uv_timer_t kick;            /* syncs the subscriptions once the hooks' caller is done */
  ws__topic_t *dirty, *dirty_tail;
  size_t inflight;            /* answers awaited for the (un)subscribe batch in flight */
  size_t channels;
  /* Publishes not acknowledged, oldest first; from `unsent` on, not yet written to the
   * current publisher connection. */
  bp_msg_t *head, *tail, *unsent;
  size_t queued, queued_bytes;
  uint8_t origin[BP_ORIGIN];
  uint64_t seq;
  bp_seen_t *seen;            /* most recently heard first */
  size_t nseen;
  uint64_t rng;
  ws_conn_t **missed;
  size_t nmissed, missed_cap;
  uint64_t reconnects;
  int connected, was_connected, closed;
  int refs;                   /* handles and requests whose callbacks are still due */
};

static void bp_unref(ws_backplane_t *bp) {
  if (--bp->refs > 0 || !bp->closed) return;
  free(bp->host);
  free(bp->username);
  free(bp->password);
  free(bp->prefix);
  free(bp->seen);
  free(bp->missed);
  free(bp);
}

static void on_kick_closed(uv_handle_t *h) { bp_unref(h->data); }
static void on_link_closed(uv_handle_t *h) { bp_unref(((bp_link_t *)h->data)->bp); }

static const char *link_name(const bp_link_t *k) {
  return k->kind == LINK_SUB ? "subscriber" : "publisher";
}

static void tell_error(ws_backplane_t *bp, const char *fmt, ...) {
  if (bp->closed || !bp->ev->on_error) return;
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  bp->ev->on_error(bp, msg);
}

/* Tells the layer above when both connections are up, or no more; the last thing any
 * path does, as the handler may close bp. */
static void update_connected(ws_backplane_t *bp) {
  int up = bp->sub.state == L_READY && bp->pub.state == L_READY;
  if (up == bp->connected || bp->closed) return;
  bp->connected = up;
  if (up) {
    if (bp->was_connected) bp->reconnects++;
    bp->was_connected = 1;
    if (bp->ev->on_connect) bp->ev->on_connect(bp);
  } else if (bp->ev->on_disconnect) {
    bp->ev->on_disconnect(bp);
  }
}

/* xorshift64*: the jitter needs no more. */
static uint64_t next_random(ws_backplane_t *bp) {
  bp->rng ^= bp->rng >> 12;
  bp->rng ^= bp->rng << 25;
  bp->rng ^= bp->rng >> 27;
  return bp->rng * 0x2545f4914f6cdd1dull;
}

/* The wait before retry n (1, 2, ...): reconnect_min doubled up to reconnect_max, then
 * somewhere in its upper half, so processes that lost Redis together come back apart. */
static uint32_t backoff(ws_backplane_t *bp, unsigned n) {
  uint64_t d = bp->retry_min;
  for (unsigned i = 1; i < n && d < bp->retry_max; i++) d *= 2;
  if (d > bp->retry_max) d = bp->retry_max;
  return (uint32_t)(d - next_random(bp) % (d / 2 + 1));
}

/* ---- subscriptions ------------------------------------------------------------ */

static void push_dirty(ws_backplane_t *bp, ws__topic_t *t) {
  t->remote |= R_DIRTY;
  t->dirty_next = NULL;
  if (bp->dirty_tail) bp->dirty_tail->dirty_next = t;
  else bp->dirty = t;
  bp->dirty_tail = t;
}

static void on_kick(uv_timer_t *h);

static void mark_dirty(ws_backplane_t *bp, ws__topic_t *t) {
  if (t->remote & R_DIRTY) return;
  push_dirty(bp, t);
  /* Not now: the hook runs inside ws:subscribe or a close, and a later turn sends every
   * change of this one in one command. */
  if (!uv_is_active((uv_handle_t *)&bp->kick)) uv_timer_start(&bp->kick, on_kick, 0, 0);
}

/* While the subscriber connection is not up, the hooks mark nothing (a topic made and
 * left meanwhile is not kept): every topic is subscribed when it comes up. */
static void hook_first(ws_backplane_t *bp, ws__topic_t *t) {
  if (bp->sub.state == L_READY) mark_dirty(bp, t);
}

static void hook_empty(ws_backplane_t *bp, ws__topic_t *t) {
  if (bp->sub.state == L_READY && (t->remote & R_ON)) mark_dirty(bp, t);   /* (a dirty one
                                                                             stays dirty) */
}

/* Every topic, marked dirty alone (its marks from another connection cleared). */
static void mark_all(ws_backplane_t *bp) {
  struct ws__topics *r = &bp->loop->topics;
  bp->dirty = bp->dirty_tail = NULL;
  for (uint32_t i = 0; i < r->cap; i++) {
    ws__topic_t *t = r->tab[i];
    if (!t) continue;
    t->remote = 0;
    push_dirty(bp, t);
  }
}

/* No channel is subscribed any more (the subscriber connection is gone, or bp closes):
 * the topics kept for their channels without subscribers go. */
static void forget_channels(ws_backplane_t *bp) {
  bp->inflight = bp->channels = 0;
  mark_all(bp);   /* (collects them: the table cannot be walked while topics go) */
  for (ws__topic_t *t = bp->dirty, *next; t; t = next) {
    next = t->dirty_next;
    t->remote = 0;
    ws__topic_release(bp->loop, t);
  }
  bp->dirty = bp->dirty_tail = NULL;
}

static void abandon(bp_link_t *k);
static void link_lost(bp_link_t *k, const char *why);
static void on_timer(uv_timer_t *h);
static void on_channel(redisAsyncContext *ac, void *reply, void *priv);

/* Sends the next batch of changes: SUBSCRIBE for topics that gained a subscriber, or
 * UNSUBSCRIBE for ones that lost their last, never both kinds, and one batch at a time.
 * hiredis keeps one callback per channel and a "subscribed" flag that an answer may
 * clear; with one kind in flight, no UNSUBSCRIBE answer can arrive after a SUBSCRIBE of
 * the same channel was sent, nor after the flag was set again (hiredis 0.14). */
static void sync_subscriptions(ws_backplane_t *bp) {
  bp_link_t *k = &bp->sub;
  if (bp->closed || k->state != L_READY || bp->inflight || !bp->dirty) return;
  const char *argv[BP_BATCH + 1];
  size_t argvlen[BP_BATCH + 1];
  char names[BP_BATCH_BYTES];
  size_t n = 0, used = 0;
  int kind = 0;   /* 1: SUBSCRIBE, 2: UNSUBSCRIBE */
  ws__topic_t *t = bp->dirty, *next;
  bp->dirty = bp->dirty_tail = NULL;
  for (; t; t = next) {
    next = t->dirty_next;
    int want = t->n > 0, on = (t->remote & R_ON) != 0;
    size_t len = bp->prefix_len + t->len;
    if (want == on) {   /* changed back before it was sent */
      t->remote &= (uint8_t)~R_DIRTY;
      ws__topic_release(bp->loop, t);
      continue;
    }
    int this_kind = want ? 1 : 2;
    if (!kind) kind = this_kind;
    if (this_kind != kind || n == BP_BATCH || used + len > sizeof names) {
      push_dirty(bp, t);   /* in a later batch */
      continue;
    }
    memcpy(names + used, bp->prefix, bp->prefix_len);
    memcpy(names + used + bp->prefix_len, t->name, t->len);
    argv[1 + n] = names + used;
    argvlen[1 + n] = len;
    used += len;
    n++;
    t->remote &= (uint8_t)~R_DIRTY;
    if (want) {
      t->remote |= R_ON;
    } else {
      t->remote &= (uint8_t)~R_ON;
      ws__topic_release(bp->loop, t);
    }
  }
  if (!n) return;
  argv[0] = kind == 1 ? "SUBSCRIBE" : "UNSUBSCRIBE";
  argvlen[0] = strlen(argv[0]);
  if (redisAsyncCommandArgv(k->ac, on_channel, NULL, (int)n + 1, argv, argvlen) != REDIS_OK) {
    abandon(k);
    link_lost(k, "hiredis refused the command");
    return;
  }
  bp->inflight = n;
  uv_timer_start(&k->timer, on_timer, bp->timeout, 0);   /* bounded, as a connect is */
}

/* ---- publishes ------------------------------------------------------------------- */

static void on_published(redisAsyncContext *ac, void *r, void *priv);

static void send_msg(bp_link_t *k, bp_msg_t *m) {
  redisAsyncFormattedCommand(k->ac, on_published, NULL, m->cmd, m->len);
}

static void flush_queue(ws_backplane_t *bp) {
  for (bp_msg_t *m = bp->unsent; m; m = m->next) send_msg(&bp->pub, m);
  bp->unsent = NULL;
}

static void on_published(redisAsyncContext *ac, void *r, void *priv) {
  (void)priv;
  bp_link_t *k = ac->data;
  redisReply *reply = r;
  if (!k || !reply) return;   /* (NULL: the connection is going; the publish stays queued) */
  ws_backplane_t *bp = k->bp;
  bp_msg_t *m = bp->head;     /* Redis answers in order: this is the oldest one */
  if (!m || m == bp->unsent) return;
  bp->head = m->next;
  if (!bp->head) bp->tail = NULL;
  bp->queued--;
  bp->queued_bytes -= m->len;
  free(m);
  if (reply->type == REDIS_REPLY_ERROR)
    tell_error(bp, "EBACKPLANE: Redis refused a publish: %.*s", (int)reply->len, reply->str);
}

/* ---- receiving ---------------------------------------------------------------- */

static uint64_t be64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v = v << 8 | p[i];
  return v;
}

/* Is seq new from origin? Each origin publishes in order on one connection, so anything
 * at or below the last one heard is a publish sent again after a lost connection. */
static int fresh(ws_backplane_t *bp, const uint8_t *origin, uint64_t seq) {
  size_t i;
  for (i = 0; i < bp->nseen; i++)
    if (memcmp(bp->seen[i].origin, origin, BP_ORIGIN) == 0) break;
  if (i < bp->nseen && seq <= bp->seen[i].seq) return 0;
  if (i == bp->nseen) {   /* a new origin: the one heard from longest ago makes room */
    if (!bp->seen && !(bp->seen = malloc(BP_SEEN_MAX * sizeof *bp->seen))) return 1;
    if (bp->nseen < BP_SEEN_MAX) bp->nseen++;
    i = bp->nseen - 1;
  }
  memmove(bp->seen + 1, bp->seen, i * sizeof *bp->seen);
  memcpy(bp->seen[0].origin, origin, BP_ORIGIN);
  bp->seen[0].seq = seq;
  return 1;
}

static void note_missed(ws_conn_t *c, void *ud) {
  ws_backplane_t *bp = ud;
  if (bp->nmissed == bp->missed_cap) {
    size_t cap = bp->missed_cap ? bp->missed_cap * 2 : 16;
    ws_conn_t **p = realloc(bp->missed, cap * sizeof *p);
    if (!p) return;
    bp->missed = p;
    bp->missed_cap = cap;
  }
  bp->missed[bp->nmissed++] = c;
}

static void deliver(ws_backplane_t *bp, const char *channel, size_t clen, const char *p,
                    size_t len) {
  if (clen < bp->prefix_len || memcmp(channel, bp->prefix, bp->prefix_len) != 0) return;
  const char *topic = channel + bp->prefix_len;
  size_t tlen = clen - bp->prefix_len;
  const uint8_t *u = (const uint8_t *)p;
  int opcode;
  if (len >= BP_HEADER && u[0] == BP_MAGIC && (u[1] == 't' || u[1] == 'b')) {
    if (memcmp(u + 2, bp->origin, BP_ORIGIN) == 0) return;   /* ours: delivered locally */
    if (!fresh(bp, u + 2, be64(u + 2 + BP_ORIGIN))) return;
    opcode = u[1] == 't' ? WS_OP_TEXT : WS_OP_BINARY;
    p += BP_HEADER;
    len -= BP_HEADER;
  } else {   /* a plain PUBLISH from another client: text when it is UTF-8 */
    uint32_t st = WS_UTF8_ACCEPT;
    opcode = ws_utf8_validate(&st, u, len) == 0 && st == WS_UTF8_ACCEPT ? WS_OP_TEXT
                                                                       : WS_OP_BINARY;
  }
  ws_publish_t out;
  bp->nmissed = 0;
  if (ws_loop_publish(bp->loop, topic, tlen, opcode, p, len, &out, note_missed, bp) == 0 &&
      bp->nmissed && bp->ev->on_missed && !bp->closed)
    bp->ev->on_missed(bp, topic, tlen, bp->missed, bp->nmissed);
}

static int is(const redisReply *r, const char *s) {
  size_t n = strlen(s);
  return r->type == REDIS_REPLY_STRING && r->len == n && memcmp(r->str, s, n) == 0;
}

/* Every channel's callback: its messages and the answers to (UN)SUBSCRIBE. */
static void on_channel(redisAsyncContext *ac, void *r, void *priv) {
  (void)priv;
  bp_link_t *k = ac->data;
  redisReply *reply = r;
  if (!k || !reply || reply->type != REDIS_REPLY_ARRAY || reply->elements < 3) return;
  ws_backplane_t *bp = k->bp;
  redisReply **e = reply->element;
  if (is(e[0], "message") && e[1]->type == REDIS_REPLY_STRING &&
      e[2]->type == REDIS_REPLY_STRING) {
    deliver(bp, e[1]->str, e[1]->len, e[2]->str, e[2]->len);
  } else if (is(e[0], "subscribe") || is(e[0], "unsubscribe")) {
    if (e[2]->type == REDIS_REPLY_INTEGER) bp->channels = (size_t)e[2]->integer;
    if (bp->inflight && --bp->inflight == 0) {
      uv_timer_stop(&k->timer);
      sync_subscriptions(bp);
    }
  }
}

/* ---- connections ---------------------------------------------------------------- */

/* Lets go of the link's hiredis context. Its callbacks still due (pending commands with
 * no reply, the disconnect) find no link and do nothing; inside one of its own callbacks
 * hiredis frees it when that returns. Never called from its connect callback. */
static void abandon(bp_link_t *k) {
  redisAsyncContext *ac = k->ac;
  if (!ac) return;
  k->ac = NULL;
  ac->data = NULL;
  redisAsyncFree(ac);
}

/* The link is down (its context gone or let go): it tries again after a backoff. */
static void link_failed(bp_link_t *k, const char *why) {
  ws_backplane_t *bp = k->bp;
  k->state = L_WAIT;
  k->failures++;
  uint32_t ms = backoff(bp, k->failures);
  uv_timer_start(&k->timer, on_timer, ms, 0);
  tell_error(bp, "EBACKPLANE: Redis at %s:%d, %s connection: %s (retrying in %u ms)", bp->host,
             bp->port, link_name(k), why, ms);
  update_connected(bp);
}

static void link_lost(bp_link_t *k, const char *why) {
  ws_backplane_t *bp = k->bp;
  if (k->kind == LINK_SUB) forget_channels(bp);
  else bp->unsent = bp->head;   /* sent again; whoever had them drops them (fresh) */
  link_failed(k, why);
}

static void link_ready(bp_link_t *k) {
  ws_backplane_t *bp = k->bp;
  uv_timer_stop(&k->timer);
  k->state = L_READY;
  k->failures = 0;
  if (k->kind == LINK_PUB) {
    flush_queue(bp);
  } else {
    mark_all(bp);   /* a new connection: every topic's channel is subscribed again */
    sync_subscriptions(bp);
  }
  update_connected(bp);
}

static void on_handshake(redisAsyncContext *ac, void *r, void *priv) {
  bp_link_t *k = ac->data;
  redisReply *reply = r;
  if (!k || !reply) return;
  if (reply->type == REDIS_REPLY_ERROR) {
    char why[300];
    snprintf(why, sizeof why, "%s: %.*s", (const char *)priv, (int)reply->len, reply->str);
    abandon(k);
    link_failed(k, why);
  } else if (--k->pending == 0) {
    link_ready(k);
  }
}

static void on_connected(const redisAsyncContext *cac, int status) {
  redisAsyncContext *ac = (redisAsyncContext *)cac;
  bp_link_t *k = ac->data;
  if (!k) return;
  if (status != REDIS_OK) {
    char why[256];
    snprintf(why, sizeof why, "%s", ac->errstr);
    k->ac = NULL;   /* hiredis frees it when this returns */
    ac->data = NULL;
    link_failed(k, why);
    return;
  }
  ws_backplane_t *bp = k->bp;
  k->state = L_HANDSHAKE;
  redisEnableKeepAlive(&ac->c);   /* a peer that vanished is noticed on an idle link */
  /* Up once PING answers; AUTH and SELECT go first, pipelined. Each answer comes in a
   * reply callback, where hiredis lets a handler free the context. */
  k->pending = 0;
  if (bp->password) {
    const char *argv[3] = {"AUTH", bp->username, bp->password};
    size_t argvlen[3] = {4, bp->username ? strlen(bp->username) : 0, strlen(bp->password)};
    if (!bp->username) argv[1] = argv[2], argvlen[1] = argvlen[2];
    redisAsyncCommandArgv(ac, on_handshake, (void *)"AUTH", bp->username ? 3 : 2, argv, argvlen);
    k->pending++;
  }
  if (bp->db > 0) {
    redisAsyncCommand(ac, on_handshake, (void *)"SELECT", "SELECT %d", bp->db);
    k->pending++;
  }
  redisAsyncCommand(ac, on_handshake, (void *)"PING", "PING");
  k->pending++;
}

static void on_disconnected(const redisAsyncContext *cac, int status) {
  redisAsyncContext *ac = (redisAsyncContext *)cac;
  bp_link_t *k = ac->data;
  if (!k) return;
  char why[256];
  snprintf(why, sizeof why, "%s", status == REDIS_OK || !ac->errstr[0] ? "connection closed"
                                                                       : ac->errstr);
  k->ac = NULL;   /* hiredis frees it when this returns */
  ac->data = NULL;
  link_lost(k, why);
}

/* hiredis 0.14's libuv adapter drops a poll that reports an error (libuv's status for
 * POLLERR: a refused connect, a reset connection), so hiredis would never hear of it. Its
 * calls stay; the poll callback becomes this one, which hands an error to hiredis as a
 * readable and writable socket (as the adapter of hiredis 1.x does), where it finds it. */
static void on_poll(uv_poll_t *h, int status, int events) {
  redisLibuvEvents *p = h->data;
  int ev = status ? p->events : events;
  if (p->context && (ev & UV_READABLE)) redisAsyncHandleRead(p->context);
  if (p->context && (ev & UV_WRITABLE)) redisAsyncHandleWrite(p->context);
}

static void repoll(void *privdata) {
  redisLibuvEvents *p = privdata;
  if (p->events) uv_poll_start(&p->handle, p->events, on_poll);
}

static void add_read(void *p) { redisLibuvAddRead(p), repoll(p); }
static void del_read(void *p) { redisLibuvDelRead(p), repoll(p); }
static void add_write(void *p) { redisLibuvAddWrite(p), repoll(p); }
static void del_write(void *p) { redisLibuvDelWrite(p), repoll(p); }

static void link_connect(bp_link_t *k, const char *ip) {
  ws_backplane_t *bp = k->bp;
  redisAsyncContext *ac = redisAsyncConnect(ip, bp->port);   /* non-blocking connect */
  char why[256];
  if (!ac) {
    link_failed(k, "out of memory");
    return;
  }
  if (ac->err || redisLibuvAttach(ac, ws_loop_uv(bp->loop)) != REDIS_OK) {
    snprintf(why, sizeof why, "%s", ac->err ? ac->errstr : "cannot watch the socket");
    redisAsyncFree(ac);
    link_failed(k, why);
    return;
  }
  ac->ev.addRead = add_read;
  ac->ev.delRead = del_read;
  ac->ev.addWrite = add_write;
  ac->ev.delWrite = del_write;
  repoll(ac->ev.data);   /* (a connecting socket is watched for writing already) */
  ac->data = k;
  redisAsyncSetConnectCallback(ac, on_connected);
  redisAsyncSetDisconnectCallback(ac, on_disconnected);
  k->ac = ac;
  k->state = L_CONNECTING;
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
  bp_resolve_t *r = req->data;
  bp_link_t *k = r->k;
  ws_backplane_t *bp = k->bp;
  int current = k->resolving == r;
  free(r);
  if (current) k->resolving = NULL;
  if (current && !bp->closed) {
    char ip[64] = "";
    if (status == 0 && res) {
      if (res->ai_family == AF_INET6)
        uv_ip6_name((const struct sockaddr_in6 *)res->ai_addr, ip, sizeof ip);
      else
        uv_ip4_name((const struct sockaddr_in *)res->ai_addr, ip, sizeof ip);
    }
    if (ip[0]) {
      link_connect(k, ip);
    } else {
      char why[300];
      snprintf(why, sizeof why, "resolving %s: %s", bp->host,
               status ? uv_strerror(status) : "no address");
      link_failed(k, why);
    }
  }
  if (res) uv_freeaddrinfo(res);
  bp_unref(bp);
}

/* A connection attempt: resolve the host off the loop (hiredis would block on it), then
 * connect; all of it bounded by connect_timeout. */
static void link_start(bp_link_t *k) {
  ws_backplane_t *bp = k->bp;
  uv_timer_start(&k->timer, on_timer, bp->timeout, 0);
  struct in6_addr a6;
  if (uv_inet_pton(AF_INET, bp->host, &a6) == 0 || uv_inet_pton(AF_INET6, bp->host, &a6) == 0) {
    link_connect(k, bp->host);
    return;
  }
  bp_resolve_t *r = malloc(sizeof *r);
  if (!r) {
    link_failed(k, "out of memory");
    return;
  }
  r->k = k;
  r->req.data = r;
  struct addrinfo hints;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  int e = uv_getaddrinfo(ws_loop_uv(bp->loop), &r->req, on_resolved, bp->host, NULL, &hints);
  if (e) {
    free(r);
    char why[300];
    snprintf(why, sizeof why, "resolving %s: %s", bp->host, uv_strerror(e));
    link_failed(k, why);
    return;
  }
  bp->refs++;
  k->resolving = r;
  k->state = L_RESOLVING;
}

static void on_timer(uv_timer_t *h) {
  bp_link_t *k = h->data;
  switch (k->state) {
  case L_WAIT:
    link_start(k);
    break;
  case L_READY:   /* a (un)subscribe batch went unanswered (an ACL refusing a channel?) */
    abandon(k);
    link_lost(k, "no answer to SUBSCRIBE/UNSUBSCRIBE within connect_timeout");
    break;
  default:
    if (k->resolving) uv_cancel((uv_req_t *)&k->resolving->req);
    k->resolving = NULL;
    abandon(k);
    link_failed(k, "no connection within connect_timeout");
    break;
  }
}

static void on_kick(uv_timer_t *h) { sync_subscriptions(h->data); }

/* ---- the API ------------------------------------------------------------------------ */

static char *dup_or_null(const char *s) {
  return s ? strdup(s) : NULL;
}

int ws_backplane_open(ws_loop_t *l, const ws_backplane_options_t *o,
                      const ws_backplane_events_t *ev, void *data, ws_backplane_t **out) {
  *out = NULL;
  if (l->backplane || o->prefix_len > BP_PREFIX_MAX || !o->host || o->port <= 0 ||
      o->port > 65535 || !o->max_queue || !o->reconnect_min_ms ||
      o->reconnect_max_ms < o->reconnect_min_ms)
    return WS_EINVAL;
  ws_backplane_t *bp = calloc(1, sizeof *bp);
  if (!bp) return WS_ENOMEM;
  bp->loop = l;
  bp->ev = ev;
  bp->data = data;
  bp->host = strdup(o->host);
  bp->username = dup_or_null(o->username);
  bp->password = dup_or_null(o->password);
  bp->prefix = malloc(o->prefix_len + 1);
  if (!bp->host || (o->username && !bp->username) || (o->password && !bp->password) ||
      !bp->prefix) {
    bp->closed = 1;
    bp->refs = 1;
    bp_unref(bp);
    return WS_ENOMEM;
  }
  memcpy(bp->prefix, o->prefix, o->prefix_len);
  bp->prefix[o->prefix_len] = 0;
  bp->prefix_len = o->prefix_len;
  bp->port = o->port;
  bp->db = o->db;
  bp->max_queue = o->max_queue;
  bp->max_queue_bytes = o->max_queue_bytes ? o->max_queue_bytes : SIZE_MAX;
  bp->retry_min = o->reconnect_min_ms;
  bp->retry_max = o->reconnect_max_ms;
  bp->timeout = o->connect_timeout_ms ? o->connect_timeout_ms : WS_TIMEOUT_MAX;
  if (ws_random(bp->origin, sizeof bp->origin) != 0) {   /* unlikely; still unique enough */
    uint64_t a = uv_hrtime(), b = (uint64_t)(uintptr_t)bp;
    memcpy(bp->origin, &a, 8);
    memcpy(bp->origin + 8, &b, 8);
  }
  memcpy(&bp->rng, bp->origin, sizeof bp->rng);
  bp->rng |= 1;
  bp_link_t *links[2] = {&bp->sub, &bp->pub};
  for (int i = 0; i < 2; i++) {
    links[i]->bp = bp;
    links[i]->kind = i == 0 ? LINK_SUB : LINK_PUB;
    links[i]->state = L_WAIT;
    uv_timer_init(ws_loop_uv(l), &links[i]->timer);
    links[i]->timer.data = links[i];
    uv_timer_start(&links[i]->timer, on_timer, 0, 0);   /* connects from the loop */
  }
  uv_timer_init(ws_loop_uv(l), &bp->kick);
  bp->kick.data = bp;
  bp->refs = 3;
  l->backplane = bp;
  l->topic_first = hook_first;
  l->topic_empty = hook_empty;
  *out = bp;
  return 0;
}

void *ws_backplane_data(const ws_backplane_t *bp) { return bp->data; }
ws_loop_t *ws_backplane_loop(const ws_backplane_t *bp) { return bp->loop; }

static size_t bulk_size(size_t n) {
  size_t digits = 1;
  for (size_t v = n; v >= 10; v /= 10) digits++;
  return 1 + digits + 2 + n + 2;   /* $<n>\r\n<bytes>\r\n */
}

int ws_backplane_publish(ws_backplane_t *bp, const char *topic, size_t tlen, int opcode,
                         const char *data, size_t len) {
  if (bp->closed) return WS_ECLOSED;
  if (tlen > WS_TOPIC_MAX || (opcode != WS_OP_TEXT && opcode != WS_OP_BINARY)) return WS_EINVAL;
  static const char head[] = "*3\r\n$7\r\nPUBLISH\r\n";
  size_t clen = bp->prefix_len + tlen, plen = BP_HEADER + len;
  size_t size = sizeof head - 1 + bulk_size(clen) + bulk_size(plen);
  /* The bound counts what Redis has not acknowledged: queued while disconnected, and
   * sent to a slow Redis. One publish of any size passes an empty queue. */
  if (bp->queued && (bp->queued >= bp->max_queue ||
                     size > bp->max_queue_bytes - (bp->queued_bytes < bp->max_queue_bytes
                                                       ? bp->queued_bytes
                                                       : bp->max_queue_bytes)))
    return WS_EBACKPLANE;
  bp_msg_t *m = malloc(sizeof *m + size);
  if (!m) return WS_ENOMEM;
  /* Formatted here, once: hiredis's formatter would need header and payload in one piece
   * first. */
  char *p = m->cmd;
  memcpy(p, head, sizeof head - 1);
  p += sizeof head - 1;
  p += sprintf(p, "$%zu\r\n", clen);
  memcpy(p, bp->prefix, bp->prefix_len);
  memcpy(p + bp->prefix_len, topic, tlen);
  p += clen;
  p += sprintf(p, "\r\n$%zu\r\n", plen);
  uint8_t *h = (uint8_t *)p;
  h[0] = BP_MAGIC;
  h[1] = opcode == WS_OP_TEXT ? 't' : 'b';
  memcpy(h + 2, bp->origin, BP_ORIGIN);
  uint64_t seq = ++bp->seq;
  for (int i = 7; i >= 0; i--, seq >>= 8) h[2 + BP_ORIGIN + i] = (uint8_t)seq;
  p += BP_HEADER;
  if (len) memcpy(p, data, len);
  p += len;
  memcpy(p, "\r\n", 2);
  m->len = size;
  m->next = NULL;
  if (bp->tail) bp->tail->next = m;
  else bp->head = m;
  bp->tail = m;
  bp->queued++;
  bp->queued_bytes += size;
  if (bp->pub.state == L_READY) send_msg(&bp->pub, m);
  else if (!bp->unsent) bp->unsent = m;
  return 0;
}

void ws_backplane_stats(const ws_backplane_t *bp, ws_backplane_stats_t *st) {
  st->connected = bp->connected;
  st->queued = bp->queued;
  st->queued_bytes = bp->queued_bytes;
  st->channels = bp->channels;
  st->reconnects = bp->reconnects;
  st->max_queue = bp->max_queue;
  st->max_queue_bytes = bp->max_queue_bytes;
}

size_t ws_backplane_close(ws_backplane_t *bp) {
  if (!bp || bp->closed) return 0;
  bp->closed = 1;
  ws_loop_t *l = bp->loop;
  l->backplane = NULL;
  l->topic_first = l->topic_empty = NULL;
  bp_link_t *links[2] = {&bp->sub, &bp->pub};
  for (int i = 0; i < 2; i++) {
    bp_link_t *k = links[i];
    if (k->resolving) uv_cancel((uv_req_t *)&k->resolving->req);   /* its callback frees it */
    k->resolving = NULL;
    abandon(k);
    uv_close((uv_handle_t *)&k->timer, on_link_closed);
  }
  uv_close((uv_handle_t *)&bp->kick, on_kick_closed);
  forget_channels(bp);
  size_t dropped = bp->queued;
  for (bp_msg_t *m = bp->head, *next; m; m = next) {
    next = m->next;
    free(m);
  }
  bp->head = bp->tail = bp->unsent = NULL;
  bp->queued = bp->queued_bytes = 0;
  return dropped;
}

#endif
