/* libFuzzer target for a client's way in through an HTTP proxy (client.c's stages,
 * proxy.c) over a scripted socket (scripted.h): the proxy's answer split anyhow, what
 * comes after it (the 101, frames), EOF and timeouts, with sends, closes and terminates
 * from inside the event callbacks and from outside.
 *
 * Byte 0: bit 0 the CONNECT carries credentials and a header; bit 1 a valid 2xx answer
 * goes first; bit 2 in the same push as it, the next operation's bytes; bit 3 a small
 * max_head (256) and max_headers (4); bit 4 short timeouts. Then operations, one byte
 * each (low 3 bits the operation, high 5 its argument), some followed by data. Each
 * callback takes the next input byte as the action it performs.
 *
 * Checked: no crash, leak or UB; exactly one on_close and no event after it; what the
 * conn wrote is the CONNECT request, then (only once a model of the proxy's answer,
 * parsed apart from the conn, says a final 2xx head came) the upgrade request; on_open
 * only after that; an EPROXY error only when the model saw a refusal, or a head that is
 * not HTTP or too large. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io.h"
#include "scripted.h"

#define REQUIRE(c)                                                            \
  do {                                                                        \
    if (!(c)) {                                                               \
      fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, #c);                 \
      abort();                                                                \
    }                                                                         \
  } while (0)

static struct {
  const uint8_t *data;
  size_t size, pos;
  ws_conn_t *conn;   /* NULL once freed */
  int closes, after_close, opened, proxy_error, answered, eof;
} G;

static uint8_t next_byte(void) { return G.pos < G.size ? G.data[G.pos++] : 0; }

static char filler[4096];

static void act(ws_conn_t *c, uint8_t b) {
  size_t len = b >> 3;
  switch (b % 7) {
  case 1: ws_conn_send(c, WS_OP_TEXT, filler, len); break;
  case 2: ws_conn_send(c, WS_OP_BINARY, filler, len * 97); break;
  case 3: ws_conn_close(c, len % 2 ? 1000 : 0, NULL, 0); break;
  case 4: ws_conn_terminate(c); break;
  case 5:
    ws_conn_pause(c);
    ws_conn_resume(c);
    break;
  case 6: ws_conn_send(c, WS_OP_PING, filler, len); break;
  default: break;
  }
}

static void seen(ws_conn_t *c) {
  REQUIRE(c == G.conn);
  if (G.closes) G.after_close = 1;
  REQUIRE(!G.after_close);
}

static void ev_open(ws_conn_t *c, const ws_http_head_t *h) {
  seen(c);
  REQUIRE(h && h->status == 101);
  G.opened = 1;
  act(c, next_byte());
}

static void ev_message(ws_conn_t *c, int binary, const char *data, size_t len) {
  (void)binary, (void)data, (void)len;
  seen(c);
  act(c, next_byte());
}

static void ev_pong(ws_conn_t *c, const char *data, size_t len) {
  (void)data, (void)len;
  seen(c);
}

static void ev_drain(ws_conn_t *c) { seen(c); }

static void ev_error(ws_conn_t *c, int err, const char *message) {
  REQUIRE(message != NULL);
  seen(c);
  if (err == WS_EPROXY) G.proxy_error = 1;
}

static void ev_close(ws_conn_t *c, unsigned code, const char *reason, size_t rlen, int clean) {
  (void)code, (void)reason, (void)rlen, (void)clean;
  seen(c);
  G.closes++;
}

static void ev_free(ws_conn_t *c) {
  REQUIRE(c == G.conn);
  G.conn = NULL;
}

static const ws_io_events_t events = {NULL,     ev_open,  ev_message, ev_pong, ev_error,
                                      ev_close, NULL,     ev_drain,   ev_free};

/* ---- a model of the proxy's answer, parsed apart from the conn --------------------- */

enum { M_WAIT, M_TUNNEL, M_REFUSED };

static char *pushed;   /* every byte the proxy sent */
static size_t npushed;

/* What the bytes pushed so far make of the answer, under the conn's limits. */
static int model(size_t max_head, size_t max_headers) {
  size_t off = 0;
  uint32_t scanned = 0;
  for (;;) {
    const char *buf = pushed + off;
    size_t len = npushed - off;
    size_t end = ws_http_head_end(buf, len, &scanned);
    if (!end) return len >= max_head ? M_REFUSED : M_WAIT;
    ws_header_t hdrs[256];
    ws_http_head_t h;
    memset(&h, 0, sizeof h);
    h.headers = hdrs;
    h.num_headers = max_headers;
    int r = ws_http_parse_response(buf, end, &h);
    if (r < 0 || (size_t)r > max_head) return M_REFUSED;
    if (h.status >= 200 && h.status < 300) return M_TUNNEL;
    if (h.status < 100 || h.status >= 200) return M_REFUSED;
    off += (size_t)r;
    scanned = 0;
  }
}

static void push(ws_script_t *p, const void *d, size_t n) {
  if (!G.conn || G.eof || !n) return;
  memcpy(pushed + npushed, d, n);   /* room: the input's size, the 2xx and one 101 */
  npushed += n;
  ws_script_push(p, d, n);
}

/* ---- the run ---------------------------------------------------------------------- */

static ws_loop_t *L;
static uv_loop_t uv;
static char out[1 << 20];   /* what the conn wrote */
static size_t nout;

static void take(ws_script_t *p) {
  size_t n;
  const char *d = ws_script_take(p, &n);
  if (n > sizeof out - nout) n = sizeof out - nout;
  memcpy(out + nout, d, n);
  nout += n;
}

/* The 101 for the upgrade request the conn wrote (none yet: nothing). */
static void answer_upgrade(ws_script_t *p, size_t connect_len) {
  const char *key = NULL;
  for (size_t i = connect_len; i + 19 + 24 <= nout; i++)
    if (!memcmp(out + i, "Sec-WebSocket-Key: ", 19)) {
      key = out + i + 19;
      break;
    }
  if (!key || G.answered) return;
  G.answered = 1;
  char accept[29], resp[256];
  ws_handshake_accept(key, 24, accept);
  int n = snprintf(resp, sizeof resp,
                   "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n", accept);
  push(p, resp, (size_t)n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!L) {
    memset(filler, 'a', sizeof filler);
    uv_loop_init(&uv);
    L = ws_loop_new(&uv, &events, NULL);
  }
  if (size < 1) return 0;
  memset(&G, 0, sizeof G);
  G.data = data;
  G.size = size;
  G.pos = 1;
  uint8_t mode = data[0];
  ws_conn_options_t o;
  ws_conn_options_default(&o);
  if (mode & 8) {
    o.max_head = 256;
    o.max_headers = 4;
  }
  if (mode & 16) o.handshake_timeout_ms = o.close_timeout_ms = o.idle_timeout_ms = 500;
  ws_proxy_options_t proxy;
  memset(&proxy, 0, sizeof proxy);
  proxy.host = "proxy.example";
  proxy.port = 3128;
  if (mode & 1) {
    proxy.user = "user";
    proxy.password = "pass";
    proxy.headers = "User-Agent: fuzz\r\n";
  }
  static const char plain[] = "CONNECT server.example.com:80 HTTP/1.1\r\n"
                              "Host: server.example.com:80\r\n\r\n";
  static const char creds[] = "CONNECT server.example.com:80 HTTP/1.1\r\n"
                              "Host: server.example.com:80\r\n"
                              "Proxy-Authorization: Basic dXNlcjpwYXNz\r\n"
                              "User-Agent: fuzz\r\n\r\n";
  const char *connect = (mode & 1) ? creds : plain;
  size_t connect_len = (mode & 1) ? sizeof creds - 1 : sizeof plain - 1;

  pushed = malloc(size + 512);
  npushed = nout = 0;
  ws_script_t *p = ws_script_connect_proxy(L, "/chat", "server.example.com", NULL, NULL, &o,
                                           &proxy, NULL);
  REQUIRE(p);
  G.conn = ws_script_conn(p);
  take(p);
  REQUIRE(nout == connect_len && !memcmp(out, connect, connect_len));

  static const char ok[] = "HTTP/1.1 200 Connection established\r\n\r\n";
  if (mode & 2) {
    if (mode & 4) {   /* the answer and what follows it in one read */
      size_t n = (size_t)next_byte() % 64;
      if (n > G.size - G.pos) n = G.size - G.pos;
      char both[sizeof ok + 64];
      memcpy(both, ok, sizeof ok - 1);
      memcpy(both + sizeof ok - 1, G.data + G.pos, n);
      G.pos += n;
      push(p, both, sizeof ok - 1 + n);
    } else {
      push(p, ok, sizeof ok - 1);
    }
  }

  while (G.pos < G.size && G.conn) {
    uint8_t op = next_byte(), arg = op >> 3;
    switch (op & 7) {
    case 0:
    case 1: {
      size_t n = arg < 31 ? (size_t)arg + 1 : 32 + (size_t)next_byte() * 8;
      if (n > G.size - G.pos) n = G.size - G.pos;
      push(p, G.data + G.pos, n);
      G.pos += n;
      break;
    }
    case 2: ws_script_window(p, arg == 0 ? 0 : arg == 31 ? SIZE_MAX : (size_t)arg * 16); break;
    case 3: ws_script_run(L, UV_RUN_NOWAIT); break;
    case 4: ws_script_sweep(L, (uint32_t)arg * 100); break;
    case 5: act(G.conn, next_byte()); break;
    case 6:
      ws_script_eof(p);
      G.eof = 1;
      break;
    case 7:
      take(p);
      answer_upgrade(p, connect_len);
      break;
    }
    take(p);
  }

  ws_script_window(p, SIZE_MAX);
  for (int i = 0; i < 4 && G.conn; i++) ws_script_run(L, UV_RUN_NOWAIT);
  take(p);
  if (G.conn) ws_conn_terminate(G.conn);
  for (int i = 0; i < 16 && (G.conn || ws_script_conn(p)); i++) ws_script_run(L, UV_RUN_NOWAIT);
  REQUIRE(!G.conn && !ws_script_conn(p));
  REQUIRE(G.closes == 1);
  take(p);

  /* Nothing but the CONNECT before the tunnel; the upgrade request only after a 2xx. */
  int m = model(o.max_head, o.max_headers);
  REQUIRE(nout >= connect_len && !memcmp(out, connect, connect_len));
  if (nout > connect_len) {
    REQUIRE(m == M_TUNNEL);
    size_t n = nout - connect_len < 4 ? nout - connect_len : 4;   /* cut short: a prefix */
    REQUIRE(!memcmp(out + connect_len, "GET ", n));
  }
  if (G.opened) REQUIRE(m == M_TUNNEL && nout > connect_len);
  if (G.proxy_error) REQUIRE(m == M_REFUSED);
  ws_script_free(p);
  free(pushed);

  ws_loop_stats_t st;
  ws_loop_stats(L, &st);
  REQUIRE(st.connections == 0 && st.buffered_in == 0 && st.buffered_out == 0);
  return 0;
}
