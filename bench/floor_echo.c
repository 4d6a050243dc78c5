/* floor_echo: the thinnest WebSocket server we can write, as a measuring stick for the
 * tests of bench/run.sh. One thread, epoll, no libuv, no Lua, no checks beyond what the
 * load generator needs. What it reaches is what the kernel and the generator allow on
 * this machine, and so the ceiling for any server there.
 *
 *   floor_echo [--tls CERT KEY] [--deflate [--park]] [--workers N]
 *
 * It listens on 127.0.0.1, any free port, and prints "listening on PORT". An upgrade
 * request gets 101; then every data frame is echoed unmasked, and a close frame is
 * answered with one before TCP closes. Any other request gets a kept-alive 200 with
 * "Hello, world!", the answer of bench/http_server.lua; the answers to one read go out in
 * one write. But GET /subscribe, /publish?n=P&size=S and /count (the topics test) are
 * answered as bench/topics_server.lua answers them, and the connection closes.
 *   --tls CERT KEY  wss:// and https://: OpenSSL on the same loop, records read ahead from
 *                   the socket, and all of an answer's records sent in one write
 *   --deflate       permessage-deflate as luaws's defaults (windows of 15 bits, level 6,
 *                   memLevel 8, context takeover both ways): each connection keeps a zlib
 *                   inflater and deflater, and every message is compressed
 *   --park          with --deflate: between messages a connection keeps only the window
 *                   of each direction, as luaws does with an idle connection
 *   --workers N     a supervisor and N worker processes, each with a socket of its own
 *                   on the one port (SO_REUSEPORT), as `luaws serve --workers N`
 *   --lua           (built with -DFLOOR_LUA and a Lua) every data message goes through a
 *                   Lua function, in a protected call, before it is echoed:
 *                   function(data, binary, fd) send(fd, data, binary) end, send being a
 *                   C function that frames it. No userdata, no method look-up, no event
 *                   table, no UTF-8 check: the least any server that calls Lua once per
 *                   message can do, and so the ceiling for luaws's ws.ondata.
 *   --lua-event     the same with what the browser's API asks for on top, at its cheapest:
 *                   an event table per message, whose target is a socket userdata, and
 *                   event.target:send(event.data) found in a plain methods table; the
 *                   ceiling for luaws's onmessage.
 *
 * It is not a server to use: it trusts its peer (frames are whole messages of at most
 * MAX_MSG bytes, requests have no body, every write completes), and closes the
 * connection on anything else. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/buffer.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <zlib.h>

#include "ws.h"

#ifdef FLOOR_LUA
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#endif

#define BUF_SIZE (256 * 1024)
#define MAX_MSG (BUF_SIZE / 2)
#define MAX_FD 65536
#define MAX_HEAD 8192        /* a longer request head is dropped */
#define MAX_WORKERS 64
/* read ahead: a 64 KiB message with its record overheads comes in one read() */
#define TLS_READ_BUF (80 * 1024)

typedef struct {   /* per connection: unfinished bytes (a frame or a request head) */
  char *buf;
  size_t len;
  uint8_t ws;      /* 1 after the upgrade */
  uint8_t sub;     /* subscribed (GET /subscribe) */
} peer_t;

typedef struct {   /* --deflate: a connection's inflater [0] and deflater [1] */
  z_stream *z[2];  /* NULL while parked */
  Bytef *win[2];   /* --park: the window the next message of that direction may refer to */
  uInt win_len[2];
} zpeer_t;

static peer_t peers[MAX_FD];
static SSL *ssls[MAX_FD];         /* --tls; apart, so a plain connection costs no more */
static zpeer_t *zpeers[MAX_FD];   /* --deflate, once the upgrade agreed it */
static char in[BUF_SIZE], out[BUF_SIZE + 64];
static size_t olen;               /* bytes in out, sent at the end of a read */
static Bytef plain[MAX_MSG + 1], zbuf[MAX_MSG + MAX_MSG / 8 + 64];   /* --deflate */
static int ws_open, max_fd;
static int *subs;                 /* the subscribers' fds */
static size_t nsubs, subs_cap;
static int deflate_on, park;
static SSL_CTX *tls_ctx;
static BUF_MEM tls_out;           /* every connection's records go here, then to write() */

static void zpeer_free(zpeer_t *zp) {
  for (int d = 0; d < 2; d++) {
    if (zp->z[d]) {
      if (d) deflateEnd(zp->z[d]);
      else inflateEnd(zp->z[d]);
      free(zp->z[d]);
    }
    free(zp->win[d]);
  }
  free(zp);
}

static void lua_drop(int fd);

static void drop(int fd) {
  lua_drop(fd);
  if (peers[fd].ws) ws_open--;
  free(peers[fd].buf);
  memset(&peers[fd], 0, sizeof peers[fd]);
  if (ssls[fd]) {
    SSL_free(ssls[fd]);
    ssls[fd] = NULL;
    ERR_clear_error();
  }
  if (zpeers[fd]) {
    zpeer_free(zpeers[fd]);
    zpeers[fd] = NULL;
  }
  close(fd);
}

/* ---- the one seam: plain or TLS ------------------------------------------------ */

/* Points ssl's output at tls_out, empty (the BIO keeps its own view of the length). */
static void tls_use(SSL *ssl) { BIO_set_mem_buf(SSL_get_wbio(ssl), &tls_out, BIO_NOCLOSE); }

static int tls_flush(int fd) {
  size_t n = tls_out.length;
  tls_out.length = 0;
  return n && write(fd, tls_out.data, n) != (ssize_t)n ? -1 : 0;
}

/* read(2), or SSL_read with --tls: bytes, 0 at the end, or -1 (errno EAGAIN: nothing
 * yet). SSL_read is called again only while OpenSSL holds bytes, which epoll cannot see. */
static ssize_t conn_read(int fd, char *p, size_t n) {
  SSL *ssl = ssls[fd];
  if (!ssl) return read(fd, p, n);
  size_t got = 0;
  int k = 0;
  tls_use(ssl);
  while (got < n) {
    k = SSL_read(ssl, p + got, (int)(n - got));
    if (k <= 0) break;
    got += (size_t)k;
    if (!SSL_has_pending(ssl)) break;
  }
  int e = k > 0 ? SSL_ERROR_NONE : SSL_get_error(ssl, k);
  if (e != SSL_ERROR_NONE && e != SSL_ERROR_WANT_READ) ERR_clear_error();
  if (tls_flush(fd) < 0) return -1;   /* the handshake's flights, session tickets */
  if (got) return (ssize_t)got;
  errno = e == SSL_ERROR_WANT_READ ? EAGAIN : ECONNRESET;
  return e == SSL_ERROR_ZERO_RETURN ? 0 : -1;
}

/* write(2), or SSL_write with --tls: 0 when all of it went, else -1. */
static int conn_write(int fd, const char *p, size_t n) {
  SSL *ssl = ssls[fd];
  if (!ssl) return write(fd, p, n) == (ssize_t)n ? 0 : -1;
  tls_use(ssl);
  if (SSL_write(ssl, p, (int)n) != (int)n) {
    ERR_clear_error();
    tls_out.length = 0;
    return -1;
  }
  return tls_flush(fd);
}

static int flush(int fd) {
  size_t n = olen;
  olen = 0;
  return n ? conn_write(fd, out, n) : 0;
}

/* Room for n more bytes in out (n <= sizeof out), sending what it holds first if need
 * be; NULL to drop. */
static char *room(int fd, size_t n) {
  if (olen + n > sizeof out && flush(fd) < 0) return NULL;
  return out + olen;
}

static int put_frame(int fd, int rsv, int op, const void *d, size_t len) {
  char *o = room(fd, WS_MAX_HEADER + len);
  if (!o) return -1;
  size_t hl = ws_frame_header((uint8_t *)o, 1, rsv, op, len, NULL);
  memcpy(o + hl, d, len);
  olen += hl + len;
  return 0;
}

/* ---- permessage-deflate ---------------------------------------------------------- */

/* Direction d's stream, made again from its window after a park. */
static z_stream *z_get(zpeer_t *zp, int d) {
  if (zp->z[d]) return zp->z[d];
  z_stream *z = calloc(1, sizeof *z);
  if (!z) return NULL;
  int r = d ? deflateInit2(z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY)
            : inflateInit2(z, -15);
  if (r != Z_OK) {
    free(z);
    return NULL;
  }
  zp->z[d] = z;
  if (zp->win_len[d]) {
    r = d ? deflateSetDictionary(z, zp->win[d], zp->win_len[d])
          : inflateSetDictionary(z, zp->win[d], zp->win_len[d]);
    if (r != Z_OK) return NULL;
  }
  free(zp->win[d]);
  zp->win[d] = NULL;
  zp->win_len[d] = 0;
  return z;
}

/* Keeps direction d's window alone and frees its stream (first: the window may then
 * take the stream's place in the heap). */
static int z_park(zpeer_t *zp, int d) {
  Bytef w[1 << 15];
  uInt n = 0;
  z_stream *z = zp->z[d];
  int r = d ? deflateGetDictionary(z, w, &n) : inflateGetDictionary(z, w, &n);
  if (d) deflateEnd(z);
  else inflateEnd(z);
  free(z);
  zp->z[d] = NULL;
  if (r != Z_OK || (n && !(zp->win[d] = malloc(n)))) return -1;
  memcpy(zp->win[d], w, n);
  zp->win_len[d] = n;
  return 0;
}

/* Inflates a message (RFC 7692 7.2.2: its data and 00 00 ff ff) and compresses it again
 * for the echo (7.2.1: a sync flush, its 00 00 ff ff taken off). */
static int z_echo(int fd, int op, const char *d, size_t len) {
  static const Bytef tail[4] = {0, 0, 0xff, 0xff};
  zpeer_t *zp = zpeers[fd];
  z_stream *zi = z_get(zp, 0), *zo = z_get(zp, 1);
  if (!zi || !zo) return -1;
  zi->next_out = plain;
  zi->avail_out = sizeof plain;
  for (int step = 0; step < 2; step++) {
    zi->next_in = step ? (Bytef *)tail : (Bytef *)d;
    zi->avail_in = step ? sizeof tail : (uInt)len;
    int r = inflate(zi, Z_SYNC_FLUSH);
    if ((r != Z_OK && r != Z_BUF_ERROR) || zi->avail_in || !zi->avail_out) return -1;
  }
  zo->next_in = plain;
  zo->avail_in = (uInt)(sizeof plain - zi->avail_out);
  zo->next_out = zbuf;
  zo->avail_out = sizeof zbuf;
  if (deflate(zo, Z_SYNC_FLUSH) != Z_OK || zo->avail_in || !zo->avail_out) return -1;
  size_t zlen = sizeof zbuf - zo->avail_out - sizeof tail;
  if (park && (z_park(zp, 0) < 0 || z_park(zp, 1) < 0)) return -1;
  return put_frame(fd, WS_RSV1, op, zbuf, zlen);
}

/* ---- --lua, --lua-event: a Lua function per message -------------------------------- */

static int lua_on;   /* 1: --lua, 2: --lua-event */
#ifdef FLOOR_LUA
static lua_State *Lst;
static int lua_failed;   /* a put_frame that failed inside the handler */

static int lua_put(lua_State *L, int fd) {
  size_t len;
  const char *d = lua_tolstring(L, 2, &len);
  if (put_frame(fd, 0, lua_toboolean(L, 3) ? WS_OP_BINARY : WS_OP_TEXT, d, len) < 0)
    lua_failed = 1;
  return 0;
}

/* --lua: send(fd, data, binary) frames data for fd */
static int lua_send_fd(lua_State *L) { return lua_put(L, (int)lua_tointeger(L, 1)); }

/* --lua-event: ws:send(data [, "binary"]) on a socket userdata (its fd), checked as a
 * good Lua C module checks its self: the metatable, upvalue 1, compared */
static int lua_sock_send(lua_State *L) {
  int *fd = lua_touserdata(L, 1), same = 0;
  if (fd && lua_getmetatable(L, 1)) {
    same = lua_rawequal(L, -1, lua_upvalueindex(1));
    lua_pop(L, 1);
  }
  if (!same) return luaL_argerror(L, 1, "a socket expected");
  return lua_put(L, *fd);
}

/* --lua: the least a Lua handler per message can cost. --lua-event: what the browser's
 * API adds to it, at its cheapest: an event table per message, a socket userdata as its
 * target, ws:send found in a plain methods table (luaws's __index is a function, since a
 * socket also has live fields); the handler is examples/echo_server.lua's, word for word. */
static const char lua_code[] =
    "local send, mode = ...\n"
    "if mode == 1 then\n"
    "  return function(data, binary, fd) send(fd, data, binary) end\n"
    "end\n"
    "pcall(collectgarbage, 'generational')\n"
    "local function echo(event)\n"
    "  event.target:send(event.data, event.binary and 'binary' or nil)\n"
    "end\n"
    "return function(data, binary, ws)\n"
    "  echo({type = 'message', target = ws, data = data, binary = binary})\n"
    "end\n";

/* The handler at index 1; --lua-event: the socket metatable at 2 and the sockets (by
 * fd) at 3. */
static int lua_setup(void) {
  lua_State *L = Lst = luaL_newstate();
  if (!L) return -1;
  luaL_openlibs(L);
  if (luaL_loadstring(L, lua_code) != 0) return -1;
  lua_newtable(L);                     /* the socket metatable */
  lua_newtable(L);                     /* its methods */
  lua_pushvalue(L, -2);
  lua_pushcclosure(L, lua_sock_send, 1);
  lua_setfield(L, -2, "send");
  lua_setfield(L, -2, "__index");
  lua_insert(L, 1);
  lua_pushcfunction(L, lua_on == 1 ? lua_send_fd : lua_sock_send);
  lua_pushinteger(L, lua_on);
  if (lua_pcall(L, 2, 1, 0) != 0) return -1;
  lua_insert(L, 1);
  lua_newtable(L);
  return 0;
}

/* the socket userdata of fd at the top, made at its first message */
static void lua_push_sock(lua_State *L, int fd) {
  lua_rawgeti(L, 3, fd);
  if (!lua_isnil(L, -1)) return;
  lua_pop(L, 1);
  *(int *)lua_newuserdata(L, sizeof(int)) = fd;
  lua_pushvalue(L, 2);
  lua_setmetatable(L, -2);
  lua_pushvalue(L, -1);
  lua_rawseti(L, 3, fd);
}

static void lua_drop(int fd) {
  if (lua_on != 2) return;
  lua_pushnil(Lst);
  lua_rawseti(Lst, 3, fd);
}

static int lua_echo(int fd, int op, const char *d, size_t len) {
  lua_State *L = Lst;
  lua_pushvalue(L, 1);
  lua_pushlstring(L, d, len);
  lua_pushboolean(L, op == WS_OP_BINARY);
  if (lua_on == 1)
    lua_pushinteger(L, fd);
  else
    lua_push_sock(L, fd);
  lua_failed = 0;
  if (lua_pcall(L, 3, 0, 0) != 0) {
    lua_pop(L, 1);
    return -1;
  }
  return lua_failed ? -1 : 0;
}
#else
static int lua_setup(void) { return -1; }
static void lua_drop(int fd) { (void)fd; }
static int lua_echo(int fd, int op, const char *d, size_t len) {
  (void)fd, (void)op, (void)d, (void)len;
  return -1;
}
#endif

/* ---- WebSocket ------------------------------------------------------------------- */

/* Echoes the whole frames in p[0..n); returns the bytes used, or -1 to drop. */
static ssize_t frames(int fd, char *p, size_t n) {
  size_t pos = 0;
  while (n - pos >= 2) {
    uint8_t *h = (uint8_t *)p + pos;
    uint64_t len = h[1] & 0x7F;
    size_t hl = 2;
    if (len == 126) {
      if (n - pos < 4) break;
      len = (uint64_t)h[2] << 8 | h[3];
      hl = 4;
    } else if (len == 127) {
      if (n - pos < 10) break;
      len = 0;
      for (int i = 2; i < 10; i++) len = len << 8 | h[i];
      hl = 10;
    }
    if (!(h[1] & 0x80) || len > MAX_MSG) return -1;
    if (n - pos < hl + 4 + len) break;
    char *d = (char *)h + hl + 4;
    int op = h[0] & 0x0F;
    ws_mask(d, (size_t)len, h + hl, 0);
    pos += hl + 4 + (size_t)len;
    if (op == WS_OP_CLOSE) {
      /* RFC 6455 5.5.1: a close frame back with the peer's code; 7.1.1: then the server
       * closes TCP first */
      if (put_frame(fd, 0, op, d, len < 2 ? 0 : 2) == 0) flush(fd);
      return -1;
    }
    int r = (h[0] & WS_RSV1) && zpeers[fd] ? z_echo(fd, op, d, (size_t)len)
            : lua_on                        ? lua_echo(fd, op, d, (size_t)len)
                                            : put_frame(fd, 0, op, d, (size_t)len);
    if (r < 0) return -1;
  }
  return (ssize_t)pos;
}

/* ---- HTTP -------------------------------------------------------------------------- */

/* The value of header name in a request head h[0..n) whose lines all end in CRLF. */
static const char *header(const char *h, size_t n, const char *name, size_t *len) {
  size_t nl = strlen(name);
  const char *e = h + n;
  for (const char *l = memchr(h, '\n', n); l && ++l < e; l = memchr(l, '\n', (size_t)(e - l))) {
    if ((size_t)(e - l) <= nl || l[nl] != ':' || strncasecmp(l, name, nl) != 0) continue;
    const char *v = l + nl + 1, *ve = memchr(v, '\r', (size_t)(e - v));
    if (!ve) return NULL;
    while (v < ve && *v == ' ') v++;
    *len = (size_t)(ve - v);
    return v;
  }
  return NULL;
}

static int upgrade(int fd, const char *h, size_t n) {
  static const char pmd[] = "permessage-deflate";
  size_t kl, el;
  const char *k = header(h, n, "Sec-WebSocket-Key", &kl);
  const char *ext = header(h, n, "Sec-WebSocket-Extensions", &el);
  char accept[29], *o = room(fd, 256);
  if (!k || !o) return -1;
  ws_handshake_accept(k, kl, accept);
  int z = deflate_on && ext && memmem(ext, el, pmd, sizeof pmd - 1);
  if (z && !(zpeers[fd] = calloc(1, sizeof *zpeers[fd]))) return -1;
  olen += (size_t)snprintf(o, 256,
                           "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                           "Connection: Upgrade\r\nSec-WebSocket-Accept: %.28s\r\n%s\r\n",
                           accept, z ? "Sec-WebSocket-Extensions: permessage-deflate\r\n" : "");
  peers[fd].ws = 1;
  ws_open++;
  return 0;
}

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* GET /subscribe: every open WebSocket connection, in a list of fds. */
static int subscribe_all(char *body, size_t cap) {
  nsubs = 0;
  for (int fd = 0; fd <= max_fd; fd++) {
    if (!peers[fd].ws) continue;
    if (nsubs == subs_cap) {
      size_t c = subs_cap ? 2 * subs_cap : 1024;
      int *s = realloc(subs, c * sizeof *s);
      if (!s) return -1;
      subs = s;
      subs_cap = c;
    }
    subs[nsubs++] = fd;
    peers[fd].sub = 1;
  }
  return snprintf(body, cap, "count=%d subscribed=%zu topic_memory=%zu\n", ws_open, nsubs,
                  subs_cap * sizeof *subs);
}

/* GET /publish?n=P&size=S: P publishes of S bytes of text, back to back, each framed once
 * and written to every subscriber, timed as bench/topics_server.lua times them. */
static int publish_all(long p, long size, char *body, size_t cap) {
  if (p < 1 || p > 100000 || size < 0 || size > MAX_MSG) return -1;
  double *times = malloc((size_t)p * sizeof *times);
  char *frame = malloc(WS_MAX_HEADER + (size_t)size);
  if (!times || !frame) {
    free(times);
    free(frame);
    return -1;
  }
  size_t fl = ws_frame_header((uint8_t *)frame, 1, 0, WS_OP_TEXT, (uint64_t)size, NULL);
  memset(frame + fl, 'p', (size_t)size);
  fl += (size_t)size;
  long delivered = 0, skipped = 0;
  uint64_t t0 = now_ns();
  for (long i = 0; i < p; i++) {
    uint64_t a = now_ns();
    for (size_t j = 0; j < nsubs; j++) {
      int fd = subs[j];
      if (!peers[fd].sub) {
        skipped++;
      } else if (conn_write(fd, frame, fl) < 0) {
        drop(fd);
        skipped++;
      } else {
        delivered++;
      }
    }
    times[i] = (double)(now_ns() - a) / 1e3;
  }
  double us = (double)(now_ns() - t0) / 1e3 / (double)p;
  qsort(times, (size_t)p, sizeof *times, cmp_double);
  int n = snprintf(body, cap,
                   "count=%d publishes=%ld delivered=%ld skipped=%ld us_per_publish=%.1f "
                   "p50_us=%.1f min_us=%.1f max_us=%.1f t0_ns=%llu\n",
                   ws_open, p, delivered, skipped, us, times[(p + 1) / 2 - 1], times[0],
                   times[p - 1], (unsigned long long)t0);
  free(times);
  free(frame);
  return n;
}

/* A number in the query string of path[0..n): name=N after '?' or '&'. */
static long param(const char *path, size_t n, const char *name, long dflt) {
  size_t nl = strlen(name);
  for (size_t i = 0; i + nl + 1 < n; i++)
    if ((path[i] == '?' || path[i] == '&') && strncmp(path + i + 1, name, nl) == 0 &&
        path[i + 1 + nl] == '=')
      return strtol(path + i + 2 + nl, NULL, 10);
  return dflt;
}

/* Is p[0..n) the path want, with or without a query? */
static int path_is(const char *p, size_t n, const char *want) {
  size_t wl = strlen(want);
  return n >= wl && memcmp(p, want, wl) == 0 && (n == wl || p[wl] == '?');
}

/* Answers a request that is no upgrade: 1 when the connection is to close after it. */
static int answer(int fd, const char *h, size_t n) {
  static const char hello[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                              "Content-Length: 13\r\n\r\nHello, world!";
  const char *path = h + 4, *end = NULL;   /* "GET /path HTTP/1.1" */
  if (n > 4 && memcmp(h, "GET ", 4) == 0) end = memchr(path, ' ', n - 4);
  size_t pl = end ? (size_t)(end - path) : 0;
  char body[512];
  int bl = 0;
  if (path_is(path, pl, "/subscribe"))
    bl = subscribe_all(body, sizeof body);
  else if (path_is(path, pl, "/publish"))
    bl = publish_all(param(path, pl, "n", 100), param(path, pl, "size", 64), body, sizeof body);
  else if (path_is(path, pl, "/count"))
    bl = snprintf(body, sizeof body, "count=%d\n", ws_open);
  if (bl < 0) return -1;
  char *o = room(fd, bl ? 128 + (size_t)bl : sizeof hello - 1);
  if (!o) return -1;
  if (!bl) {
    memcpy(o, hello, sizeof hello - 1);
    olen += sizeof hello - 1;
    return 0;
  }
  olen += (size_t)snprintf(o, 128 + (size_t)bl,
                           "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
                           "Connection: close\r\n\r\n%s", bl, body);
  return 1;
}

/* Answers the whole request heads in p[0..n); returns the bytes used (the rest waits
 * for more), or -1 to drop. An upgrade ends them: what follows it is frames. */
static ssize_t requests(int fd, char *p, size_t n) {
  size_t pos = 0, ul;
  while (pos < n) {
    char *h = p + pos, *end = memmem(h, n - pos, "\r\n\r\n", 4);
    if (!end) return n - pos > MAX_HEAD ? -1 : (ssize_t)pos;
    size_t hl = (size_t)(end - h) + 2;   /* the head, its last line's CRLF included */
    pos += hl + 2;
    if (header(h, hl, "Upgrade", &ul)) return upgrade(fd, h, hl) < 0 ? -1 : (ssize_t)pos;
    int r = answer(fd, h, hl);
    if (r) {
      if (r > 0) flush(fd);
      return -1;
    }
  }
  return (ssize_t)pos;
}

/* ---- the loop ---------------------------------------------------------------------- */

static void readable(int fd) {
  peer_t *pe = &peers[fd];
  size_t have = pe->len;
  if (have) memcpy(in, pe->buf, have);
  ssize_t r = conn_read(fd, in + have, sizeof in - have);
  if (r < 0 && errno == EAGAIN) return;
  if (r <= 0) {
    drop(fd);
    return;
  }
  size_t n = have + (size_t)r;
  ssize_t used = 0;
  olen = 0;
  if (!pe->ws) used = requests(fd, in, n);
  if (used >= 0 && pe->ws) {
    ssize_t k = frames(fd, in + used, n - (size_t)used);
    used = k < 0 ? -1 : used + k;
  }
  if (used < 0 || flush(fd) < 0) {
    drop(fd);
    return;
  }
  pe->len = n - (size_t)used;
  if (pe->len) {
    char *nb = realloc(pe->buf, pe->len);
    if (!nb) {
      drop(fd);
      return;
    }
    pe->buf = nb;
    memcpy(pe->buf, in + used, pe->len);
  }
}

static int tls_accept(int fd) {
  SSL *ssl = SSL_new(tls_ctx);
  BIO *r = BIO_new_socket(fd, BIO_NOCLOSE), *w = BIO_new(BIO_s_mem());
  if (!ssl || !r || !w) {
    SSL_free(ssl);
    BIO_free(r);
    BIO_free(w);
    ERR_clear_error();
    return -1;
  }
  SSL_set_bio(ssl, r, w);
  SSL_set_accept_state(ssl);
  ssls[fd] = ssl;
  return 0;
}

static int serve(int ls, int port) {
  int ep = epoll_create1(0), one = 1;
  struct epoll_event e = {.events = EPOLLIN, .data.fd = ls}, evs[512];
  if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, ls, &e) < 0) {
    perror("floor_echo: epoll");
    return 1;
  }
  printf("listening on %d\n", port);
  fflush(stdout);
  for (;;) {
    int n = epoll_wait(ep, evs, 512, -1);
    for (int i = 0; i < n; i++) {
      int fd = evs[i].data.fd;
      if (fd != ls) {
        readable(fd);
        continue;
      }
      int c;
      while ((c = accept4(ls, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
        if (c >= MAX_FD || (tls_ctx && tls_accept(c) < 0)) {
          close(c);
          continue;
        }
        if (c > max_fd) max_fd = c;
        setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        e.data.fd = c;
        epoll_ctl(ep, EPOLL_CTL_ADD, c, &e);
      }
    }
  }
}

static int listen_on(int port, int reuse) {
  int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t al = sizeof a;
  if (s < 0 || (reuse && setsockopt(s, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) ||
      bind(s, (struct sockaddr *)&a, sizeof a) < 0 || listen(s, 4096) < 0 ||
      getsockname(s, (struct sockaddr *)&a, &al) < 0) {
    perror("floor_echo: listen");
    exit(1);
  }
  return s;
}

static int port_of(int s) {
  struct sockaddr_in a;
  socklen_t al = sizeof a;
  getsockname(s, (struct sockaddr *)&a, &al);
  return ntohs(a.sin_port);
}

static int tls_setup(const char *cert, const char *key) {
  if (!(tls_ctx = SSL_CTX_new(TLS_server_method())) ||
      SSL_CTX_use_certificate_chain_file(tls_ctx, cert) != 1 ||
      SSL_CTX_use_PrivateKey_file(tls_ctx, key, SSL_FILETYPE_PEM) != 1) {
    ERR_print_errors_fp(stderr);
    return -1;
  }
  SSL_CTX_set_min_proto_version(tls_ctx, TLS1_2_VERSION);
  SSL_CTX_set_mode(tls_ctx, SSL_MODE_RELEASE_BUFFERS);   /* idle connections hold no records */
  SSL_CTX_set_read_ahead(tls_ctx, 1);
  SSL_CTX_set_default_read_buffer_len(tls_ctx, TLS_READ_BUF);
  return 0;
}

int main(int argc, char **argv) {
  const char *cert = NULL, *key = NULL;
  int workers = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--tls") == 0 && i + 2 < argc) {
      cert = argv[++i];
      key = argv[++i];
    } else if (strcmp(argv[i], "--deflate") == 0) {
      deflate_on = 1;
    } else if (strcmp(argv[i], "--lua") == 0) {
      lua_on = 1;
    } else if (strcmp(argv[i], "--lua-event") == 0) {
      lua_on = 2;
    } else if (strcmp(argv[i], "--park") == 0) {
      park = 1;
    } else if (strcmp(argv[i], "--workers") == 0 && i + 1 < argc) {
      workers = atoi(argv[++i]);
      if (workers < 1 || workers > MAX_WORKERS) workers = -1;
    } else {
      workers = -1;
    }
  }
  if (workers < 0 || (park && !deflate_on)) {
    fprintf(stderr, "usage: floor_echo [--tls CERT KEY] [--deflate [--park]] [--workers N] [--lua | --lua-event]\n");
    return 1;
  }
  if (lua_on && lua_setup() < 0) {
    fprintf(stderr, "floor_echo: --lua and --lua-event need a build with -DFLOOR_LUA and a Lua\n");
    return 1;
  }
  if (cert && tls_setup(cert, key) < 0) return 1;
  /* OpenSSL sets itself up at its first use (2 MB here), which would count as the first
   * connections' memory: a handshake's SHA-1 now makes that happen before any */
  static const char sample_key[] = "dGhlIHNhbXBsZSBub25jZQ==";   /* RFC 6455 1.3 */
  char accept[29];
  ws_handshake_accept(sample_key, sizeof sample_key - 1, accept);
  signal(SIGPIPE, SIG_IGN);   /* a write to a peer that left fails, and drops it */

  int ls[MAX_WORKERS], nls = workers ? workers : 1;
  ls[0] = listen_on(0, workers > 0);
  int port = port_of(ls[0]);
  for (int i = 1; i < nls; i++) ls[i] = listen_on(port, 1);
  if (!workers) return serve(ls[0], port);
  pid_t sup = getpid();
  for (int i = 0; i < nls; i++) {
    pid_t pid = fork();
    if (pid < 0) {
      perror("floor_echo: fork");
      return 1;   /* the workers made so far go too (PR_SET_PDEATHSIG) */
    }
    if (pid == 0) {
      prctl(PR_SET_PDEATHSIG, SIGTERM);   /* the workers end with the supervisor */
      if (getppid() != sup) _exit(0);
      for (int j = 0; j < nls; j++)
        if (j != i) close(ls[j]);
      return serve(ls[i], port);
    }
  }
  for (int i = 0; i < nls; i++) close(ls[i]);
  while (wait(NULL) > 0) continue;   /* until the last worker has gone */
  return 0;
}
