/* libFuzzer target for a whole connection (csrc/io over scripted sockets, scripted.h):
 * the opening handshake in either role, the frames, the close handshake, backpressure
 * and timeouts, with pause / resume / send / close / terminate / subscribe / unsubscribe /
 * publish called from inside the event callbacks and from outside.
 *
 * Byte 0: bit 0 the role (0 server, 1 client); bit 1 a valid head goes first (server: the
 * upgrade request; client: the 101 answering its request), else the input is the head;
 * bit 2 that head lacks its final CRLF (the input adds headers); bits 3-4 options (0
 * defaults; 1 small high_water and max_buffered; 2 the same with the "error" policy;
 * 3 short timeouts and message limits); bit 7 permessage-deflate is configured and, with
 * a valid head, negotiated. Then operations, one byte each (low 3 bits the
 * operation, high 5 its argument), some followed by data. Each callback takes the next
 * input byte as the action it performs.
 *
 * Checked: no crash, leak or UB; a conn the layer above knew gets exactly one on_close
 * and no event after it; what the conn wrote is an HTTP head and then well-formed frames
 * (server: unmasked, client: masked), nothing after a close frame. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io.h"
#include "deflate.h"
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
  ws_conn_t *conn;        /* NULL once freed */
  ws_conn_options_t opt;
  int client, owed, closes, after_close, accepted;
  int cut;                /* it ended uncleanly: what it wrote may stop anywhere */
} G;

static uint8_t next_byte(void) { return G.pos < G.size ? G.data[G.pos++] : 0; }

static char filler[70000];   /* ASCII: valid text of any length */

/* What a callback (or the outside) does to the conn, by one input byte. */
static void act(ws_conn_t *c, uint8_t b) {
  static const unsigned codes[] = {0, 1000, 1001, 3000, 4999, 1011};
  size_t len = b >> 4;
  switch (b % 14) {
  case 1: ws_conn_pause(c); break;
  case 2: ws_conn_resume(c); break;
  case 3: ws_conn_send(c, WS_OP_TEXT, filler, len); break;
  case 4: ws_conn_send(c, WS_OP_BINARY, filler, len * 997); break;
  case 5: ws_conn_send(c, WS_OP_PING, filler, len); break;
  case 6: ws_conn_close(c, codes[len % 6], filler, len % 6 ? len : 0); break;
  case 7: ws_conn_terminate(c); break;
  case 8: ws_conn_send(c, WS_OP_TEXT, filler, sizeof filler); break;
  case 9:
    ws_conn_pause(c);
    ws_conn_resume(c);
    break;
  case 10: ws_conn_handler_failed(c); break;
  case 11: ws_conn_subscribe(c, "ab", 1 + len % 2); break;
  case 12: ws_conn_unsubscribe(c, "ab", 1 + len % 2); break;
  case 13: {   /* to itself, if it is subscribed: through the broadcast path */
    ws_publish_t r;
    REQUIRE(ws_loop_publish(ws_conn_loop(c), "ab", 1 + len % 2, len & 4 ? WS_OP_BINARY : WS_OP_TEXT,
                            filler, len * 997, &r, NULL, NULL) == 0);
    REQUIRE(r.delivered + r.skipped <= 1);
    break;
  }
  default: break;
  }
}

static void seen(ws_conn_t *c) {
  REQUIRE(c == G.conn);
  if (G.closes) G.after_close = 1;
  REQUIRE(!G.after_close);
}

static void ev_request(ws_server_t *s, ws_conn_t *c, const ws_http_head_t *h, int upgrade) {
  (void)s;
  (void)h;
  seen(c);
  G.owed = 1;
  static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
  uint8_t b = next_byte();
  switch (b & 3) {
  case 0:
    if (upgrade && ws_conn_accept(c, (b & 4) ? "chat" : NULL, NULL, &G.opt) == 0) G.accepted = 1;
    break;
  case 1:
    if (ws_conn_http_write(c, ok, sizeof ok - 1) == 0 && (b & 4)) ws_conn_http_end(c, b & 8);
    break;
  case 2: ws_conn_handler_failed(c); break;
  default: break;   /* unanswered: 400 for an upgrade, a plain request waits */
  }
  if (b & 8) act(c, next_byte());
}

static void ev_open(ws_conn_t *c, const ws_http_head_t *h) {
  seen(c);
  REQUIRE((h != NULL) == G.client);
  G.owed = 1;
  act(c, next_byte());
}

static void ev_message(ws_conn_t *c, int binary, const char *data, size_t len) {
  (void)binary;
  (void)data;
  (void)len;
  seen(c);
  act(c, next_byte());
}

static void ev_pong(ws_conn_t *c, const char *data, size_t len) {
  (void)data;
  REQUIRE(len <= 125);
  seen(c);
  act(c, next_byte());
}

static void ev_drain(ws_conn_t *c) {
  seen(c);
  act(c, next_byte());
}

static void ev_error(ws_conn_t *c, int err, const char *message) {
  (void)err;
  REQUIRE(message != NULL);
  seen(c);
}

static void ev_close(ws_conn_t *c, unsigned code, const char *reason, size_t rlen, int clean) {
  (void)code;
  (void)reason;
  (void)rlen;
  seen(c);
  G.closes++;
  if (!clean) G.cut = 1;
}

static void ev_free(ws_conn_t *c) {
  REQUIRE(c == G.conn);
  G.conn = NULL;
}

/* A keep-alive request answered: no on_close is owed for it, and none may come but for
 * a later request. */
static void ev_request_done(ws_conn_t *c) {
  seen(c);
  REQUIRE(G.owed && !G.accepted);
  G.owed = 0;
}

static const ws_io_events_t events = {ev_request, ev_open, ev_message, ev_pong, ev_error,
                                      ev_close,   NULL,    ev_drain,   ev_free, ev_request_done, NULL};

/* ---- the output must be a head, then frames, nothing after a close ------------------ */

static int out_closed;

static int out_data(void *ud, int op, int rsv, char *d, size_t n, int fin) {
  (void)ud, (void)op, (void)rsv, (void)d, (void)n, (void)fin;
  REQUIRE(!out_closed);
  return 0;
}

static int out_control(void *ud, int op, char *d, size_t n) {
  (void)ud;
  REQUIRE(!out_closed);
  if (op == WS_OP_CLOSE) {
    unsigned code;
    const char *reason;
    size_t rlen;
    REQUIRE(ws_close_parse(d, n, &code, &reason, &rlen) == 0);
    out_closed = 1;
  }
  return 0;
}

static const ws_parser_settings_t out_settings = {out_data, out_control};

static int deflated;   /* this run negotiates permessage-deflate: RSV1 may be set */

static void check_output(const char *out, size_t n, int client, int upgraded) {
  if (!n) return;
  const char *end = NULL;
  for (size_t i = 0; i + 4 <= n; i++)
    if (!memcmp(out + i, "\r\n\r\n", 4)) {
      end = out + i + 4;
      break;
    }
  if (client) {
    REQUIRE(!memcmp(out, "GET ", 4) && end);
  } else {
    /* a conn dropped while its head was queued (terminate at on_open, a peer that
     * reads 16 bytes) cuts it short; else it is whole */
    REQUIRE(!memcmp(out, "HTTP/1.1 ", n < 9 ? n : 9) && (n >= 9 || G.cut));
    if (!upgraded || n < 9) return;   /* an HTTP answer, and maybe a body */
    REQUIRE(!memcmp(out, "HTTP/1.1 101 ", n < 13 ? n : 13) && (end || G.cut));
    if (!end) return;
  }
  /* The peer's parser: a server's frames are read by a client and the reverse. */
  ws_parser_t p;
  size_t len = n - (size_t)(end - out);
  char *frames = malloc(len ? len : 1);
  memcpy(frames, end, len);
  ws_parser_init(&p, client ? WS_ROLE_SERVER : WS_ROLE_CLIENT, 0);
  if (deflated) p.rsv_allowed = WS_RSV1;
  out_closed = 0;
  ssize_t r = ws_parser_execute(&p, &out_settings, NULL, frames, len);
  REQUIRE(r >= 0);
  free(frames);
}

/* ---- the run -------------------------------------------------------------------- */

static ws_loop_t *L;
static ws_server_t *S;
static uv_loop_t uv;

static void setup(void) {
  memset(filler, 'a', sizeof filler);
  uv_loop_init(&uv);
  L = ws_loop_new(&uv, &events, NULL);
  ws_server_options_t so;
  ws_server_options_default(&so);
  so.max_head = 4096;
  S = ws_script_server(L, &so, NULL);
}

static const char request[] = "GET /chat HTTP/1.1\r\nHost: server.example.com\r\n"
                              "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                              "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                              "Sec-WebSocket-Protocol: chat\r\nSec-WebSocket-Version: 13\r\n\r\n";
static const char deflate_request[] =
    "GET /chat HTTP/1.1\r\nHost: server.example.com\r\n"
    "Upgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
    "Sec-WebSocket-Protocol: chat\r\nSec-WebSocket-Version: 13\r\n\r\n";
static ws_deflate_config_t deflate_config;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!L) setup();
  if (size < 1) return 0;
  memset(&G, 0, sizeof G);
  G.data = data;
  G.size = size;
  G.pos = 1;
  uint8_t mode = data[0];
  G.client = mode & 1;
  int valid_head = (mode >> 1) & 1, open_head = (mode >> 2) & 1;
  ws_conn_options_default(&G.opt);
  switch ((mode >> 3) & 3) {
  case 1:
  case 2:
    G.opt.high_water = 64;
    G.opt.max_buffered = 256;
    G.opt.backpressure_error = ((mode >> 3) & 3) == 2;
    break;
  case 3:
    G.opt.idle_timeout_ms = G.opt.pong_timeout_ms = 400;
    G.opt.message_timeout_ms = G.opt.close_timeout_ms = G.opt.send_timeout_ms = 1000;
    G.opt.handshake_timeout_ms = 1000;
    G.opt.max_length = 100;
    G.opt.max_fragments = 3;
    if (mode & 0x20) G.opt.ping_ms = 300;
    break;
  default:
    break;
  }
  deflated = (mode & 0x80) && valid_head;
  if (mode & 0x80) {
    ws_deflate_config_default(&deflate_config);
    deflate_config.threshold = 8;   /* the fillers compress */
    G.opt.num_extensions = 1;
    G.opt.extensions[0] = &ws_deflate_extension;
    G.opt.extension_configs[0] = &deflate_config;
  }

  ws_script_t *p;
  size_t prelude_len = 0;
  char prelude[512];
  if (G.client) {
    p = ws_script_connect(L, "/chat", "server.example.com", (mode & 0x40) ? "chat" : NULL,
                          NULL, &G.opt, NULL);
    REQUIRE(p);
    G.conn = ws_script_conn(p);
    G.owed = 1;
    /* The request is kept for the output check. */
    size_t n;
    const char *req = ws_script_take(p, &n);
    REQUIRE(n < sizeof prelude);
    memcpy(prelude, req, n);
    prelude_len = n;
    if (valid_head) {   /* the 101 for the key it sent */
      char resp[512], accept[29] = "";
      for (size_t i = 0; i + 19 + 24 <= n; i++)
        if (!memcmp(prelude + i, "Sec-WebSocket-Key: ", 19)) {
          ws_handshake_accept(prelude + i + 19, 24, accept);
          break;
        }
      size_t k = (size_t)snprintf(resp, sizeof resp,
                           "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                           "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n%s%s",
                           accept, deflated ? "Sec-WebSocket-Extensions: permessage-deflate; "
                                              "server_no_context_takeover\r\n" : "",
                           open_head ? "" : "\r\n");
      ws_script_push(p, resp, k);
    }
  } else {
    p = ws_script_accept(L, S);
    REQUIRE(p);
    G.conn = ws_script_conn(p);
    if (valid_head && deflated)
      ws_script_push(p, deflate_request, sizeof deflate_request - 1 - (open_head ? 2 : 0));
    else if (valid_head)
      ws_script_push(p, request, sizeof request - 1 - (open_head ? 2 : 0));
  }

  /* The operations. */
  while (G.pos < G.size) {
    uint8_t op = next_byte(), arg = op >> 3;
    switch (op & 7) {
    case 0:
    case 1: {   /* the peer sends bytes */
      size_t n = arg < 31 ? (size_t)arg + 1 : 32 + (size_t)next_byte() * 8;
      if (n > G.size - G.pos) n = G.size - G.pos;
      const uint8_t *d = G.data + G.pos;
      G.pos += n;
      ws_script_push(p, d, n);
      break;
    }
    case 2:
      ws_script_window(p, arg == 0 ? 0 : arg == 31 ? SIZE_MAX : (size_t)arg * 16);
      break;
    case 3:
    case 4:
      ws_script_run(L, UV_RUN_NOWAIT);
      break;
    case 5:
      ws_script_sweep(L, (uint32_t)arg * 100);
      break;
    case 6:
      if (G.conn) act(G.conn, next_byte());
      break;
    case 7:
      ws_script_eof(p);
      break;
    }
  }

  /* The end: the peer reads everything, then the conn is dropped if still there. */
  ws_script_window(p, SIZE_MAX);
  for (int i = 0; i < 4 && G.conn; i++) ws_script_run(L, UV_RUN_NOWAIT);
  if (G.conn) ws_conn_terminate(G.conn);
  for (int i = 0; i < 16 && (G.conn || ws_script_conn(p)); i++) ws_script_run(L, UV_RUN_NOWAIT);
  REQUIRE(!G.conn && !ws_script_conn(p));
  REQUIRE(G.closes == G.owed);

  size_t n;
  const char *out = ws_script_take(p, &n);
  char *all = malloc(prelude_len + n + 1);
  memcpy(all, prelude, prelude_len);
  memcpy(all + prelude_len, out, n);
  check_output(all, prelude_len + n, G.client, G.client || G.accepted);
  free(all);
  ws_script_free(p);

  ws_loop_stats_t st;
  ws_loop_stats(L, &st);
  REQUIRE(st.connections == 0 && st.buffered_in == 0 && st.buffered_out == 0);
  REQUIRE(st.topics == 0 && st.subscriptions == 0 && st.topic_memory == 0);
  return 0;
}
