/* C unit tests of the I/O layer (csrc/io/conn.c, server.c, client.c, proxy.c) over scripted
 * sockets (csrc/io/scripted.h): the peer's bytes go in, and each case checks the exact
 * bytes the peer read and the exact sequence of events. Timers run on a real libuv loop;
 * no socket is opened. The last line says how it went. */
#include <stdlib.h>

#include <sys/wait.h>
#include <unistd.h>
#include "test.h"
#include "internal.h"
#include "io.h"
#include "scripted.h"

static uv_loop_t uv;
static ws_loop_t *L;
static ws_server_t *S;
static uv_timer_t tick;   /* keeps uv_run(ONCE) waking while a timeout is awaited */

/* What the events said, in order, and what the callbacks are to do. */
static struct {
  char log[4096];
  ws_conn_t *conn;
  ws_conn_options_t opt;   /* for ws_conn_accept */
  int accept;
  int depth, max_depth;    /* on_message nesting: never above 1 */
  int frees;
  char rest[256];          /* output left untaken when the script was freed */
  size_t nrest;
  void (*on_message)(ws_conn_t *c, const char *data, size_t len);
} T;

#define note(...) test_appendf(T.log, sizeof T.log, __VA_ARGS__)

static void ev_request(ws_server_t *s, ws_conn_t *c, const ws_http_head_t *h, int upgrade) {
  (void)s;
  (void)h;
  note("request %d;", upgrade);
  T.conn = c;
  if (upgrade && T.accept) CHECK_INT(ws_conn_accept(c, NULL, NULL, &T.opt), 0);
}

static void ev_open(ws_conn_t *c, const ws_http_head_t *h) {
  (void)h;
  T.conn = c;
  note("open;");
}

static void ev_message(ws_conn_t *c, int binary, const char *data, size_t len) {
  if (++T.depth > T.max_depth) T.max_depth = T.depth;
  note("message %c %.*s;", binary ? 'b' : 't', (int)len, data);
  if (T.on_message) T.on_message(c, data, len);
  T.depth--;
}

static void ev_pong(ws_conn_t *c, const char *data, size_t len) {
  (void)c;
  note("pong %.*s;", (int)len, data);
}

static void ev_error(ws_conn_t *c, int err, const char *message) {
  (void)c;
  (void)message;
  note("error %s;", ws_err_name(err) ? ws_err_name(err) : uv_err_name(err));
}

static void ev_close(ws_conn_t *c, unsigned code, const char *reason, size_t rlen, int clean) {
  (void)c;
  note("close %u %d%s%.*s;", code, clean, rlen ? " " : "", (int)rlen, reason);
}

static void ev_drain(ws_conn_t *c) {
  (void)c;
  note("drain;");
}

static void ev_free(ws_conn_t *c) {
  T.frees++;
  if (c == T.conn) T.conn = NULL;
}

static const ws_io_events_t events = {ev_request, ev_open, ev_message, ev_pong, ev_error,
                                      ev_close,   NULL,    ev_drain,   ev_free, NULL, NULL};

static void reset(void) {
  memset(&T, 0, sizeof T);
  ws_conn_options_default(&T.opt);
  T.accept = 1;
}

static void settle(void) {
  for (int i = 0; i < 8; i++) ws_script_run(L, UV_RUN_NOWAIT);
}

static void on_tick(uv_timer_t *t) { (void)t; }

/* Runs the loop until the log holds needle, for at most max_ms (a bound, not a wait). */
static int run_until(const char *needle, unsigned max_ms) {
  uv_update_time(&uv);
  uint64_t start = uv_now(&uv);
  uv_timer_start(&tick, on_tick, 2, 2);
  while (!strstr(T.log, needle) && uv_now(&uv) - start < max_ms) ws_script_run(L, UV_RUN_ONCE);
  uv_timer_stop(&tick);
  return strstr(T.log, needle) != NULL;
}

/* A frame as a peer sends it: masked (from a client) or not (from a server). */
static size_t frame(char *out, int fin, int rsv, int op, const char *data, size_t len,
                    int masked) {
  static const uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};
  size_t hl = ws_frame_header((uint8_t *)out, fin, rsv, op, len, masked ? key : NULL);
  if (len) memcpy(out + hl, data, len);
  if (masked) ws_mask(out + hl, len, key, 0);
  return hl + len;
}

static void push_frame(ws_script_t *p, int fin, int op, const char *data, size_t len,
                       int masked) {
  char buf[512];
  ws_script_push(p, buf, frame(buf, fin, 0, op, data, len, masked));
}

/* The output since the last take equals the frame, unmasked. */
#define CHECK_OUT_FRAME(p, op, data, len)                                     \
  do {                                                                        \
    char want_[512];                                                          \
    size_t wn_ = frame(want_, 1, 0, (op), (data), (len), 0), n_;              \
    const char *got_ = ws_script_take((p), &n_);                              \
    CHECK_MEM(got_, n_, want_, wn_);                                          \
  } while (0)

#define CHECK_REST(lit) CHECK_MEM(T.rest, T.nrest, lit, sizeof lit - 1)

#define CHECK_OUT(p, lit)                                                     \
  do {                                                                        \
    size_t n_;                                                                \
    const char *got_ = ws_script_take((p), &n_);                              \
    CHECK_MEM(got_, n_, lit, sizeof lit - 1);                                 \
  } while (0)

static const char request[] = "GET /chat HTTP/1.1\r\nHost: server.example.com\r\n"
                              "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                              "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                              "Origin: http://example.com\r\nSec-WebSocket-Version: 13\r\n\r\n";
/* RFC 6455 1.3: the accept value for that key. */
static const char response[] = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                               "Connection: Upgrade\r\n"
                               "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";

/* A server conn opened by the RFC's request. */
static ws_script_t *open_server(void) {
  ws_script_t *p = ws_script_accept(L, S);
  CHECK(p != NULL);
  ws_script_push(p, request, sizeof request - 1);
  CHECK_STR(T.log, "request 1;open;");
  CHECK_OUT(p, response);
  T.log[0] = 0;
  return p;
}

/* Every conn is gone, its script freed (what the peer read last kept in T.rest), and no
 * handle left open. */
static void finish(ws_script_t *p) {
  settle();
  CHECK(ws_script_conn(p) == NULL);
  size_t n;
  const char *out = ws_script_take(p, &n);
  T.nrest = n < sizeof T.rest ? n : sizeof T.rest;
  memcpy(T.rest, out, T.nrest);
  ws_script_free(p);
  ws_loop_stats_t st;
  ws_loop_stats(L, &st);
  CHECK_INT(st.connections, 0);
  CHECK_INT(st.buffered_in + st.buffered_out, 0);
  CHECK_INT(ws_loop_active_handles(L), 2);   /* the fake server's and the tick */
  CHECK_INT(T.max_depth > 1, 0);
}

static void test_upgrade(void) {
  reset();
  /* The head split in every chunk size from one byte to the whole. */
  for (size_t chunk = 1; chunk <= sizeof request - 1; chunk = chunk < 8 ? chunk + 1 : chunk * 3) {
    T.log[0] = 0;
    ws_script_t *p = ws_script_accept(L, S);
    for (size_t off = 0; off < sizeof request - 1; off += chunk) {
      CHECK_STR(T.log, "");
      size_t n = sizeof request - 1 - off < chunk ? sizeof request - 1 - off : chunk;
      ws_script_push(p, request + off, n);
    }
    CHECK_STR(T.log, "request 1;open;");
    CHECK_OUT(p, response);
    CHECK_INT(ws_conn_ready_state(ws_script_conn(p)), WS_OPEN);
    ws_conn_terminate(ws_script_conn(p));
    finish(p);
    CHECK_STR(T.log, "request 1;open;close 1006 0;");
  }
}

static void test_messages_and_close(void) {
  reset();
  ws_script_t *p = open_server();
  /* RFC 6455 5.7: a masked "Hello", then a fragmented one, binary, and a ping. */
  static const char hello[] = "\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58";
  ws_script_push(p, hello, sizeof hello - 1);
  push_frame(p, 0, WS_OP_TEXT, "Hel", 3, 1);
  push_frame(p, 1, WS_OP_CONT, "lo", 2, 1);
  push_frame(p, 1, WS_OP_BINARY, "bin", 3, 1);
  CHECK_STR(T.log, "message t Hello;message t Hello;message b bin;");
  CHECK_OUT(p, "");
  /* A ping is answered with a pong carrying its payload, unmasked. */
  push_frame(p, 1, WS_OP_PING, "Hello", 5, 1);
  CHECK_OUT(p, "\x8a\x05Hello");
  push_frame(p, 1, WS_OP_PONG, "p", 1, 1);
  /* Sends from outside any callback go out at once. */
  CHECK_INT(ws_conn_send(ws_script_conn(p), WS_OP_TEXT, "out", 3), 0);
  CHECK_OUT_FRAME(p, WS_OP_TEXT, "out", 3);
  /* The peer closes: our close echoes its code and reason, then TCP ends cleanly. */
  push_frame(p, 1, WS_OP_CLOSE, "\x03\xe8" "bye", 5, 1);
  CHECK_OUT(p, "\x88\x05\x03\xe8" "bye");
  CHECK_INT(ws_conn_ready_state(ws_script_conn(p)), WS_CLOSING);
  CHECK(!ws_script_fin(p));
  ws_script_run(L, UV_RUN_NOWAIT);
  CHECK(ws_script_fin(p));
  finish(p);
  CHECK_STR(T.log, "message t Hello;message t Hello;message b bin;pong p;close 1000 1 bye;");
  CHECK_INT(T.frees, 1);
}

static void test_protocol_error(void) {
  reset();
  ws_script_t *p = open_server();
  /* RSV1 without a negotiated extension: close 1002, then the error, then the close. */
  char buf[64];
  ws_script_push(p, buf, frame(buf, 1, WS_RSV1, WS_OP_TEXT, "x", 1, 1));
  CHECK_OUT(p, "\x88\x02\x03\xea");
  CHECK_STR(T.log, "");
  /* What follows the bad frame is not read. */
  push_frame(p, 1, WS_OP_TEXT, "after", 5, 1);
  finish(p);
  CHECK_STR(T.log, "error EPROTOCOL;close 1002 0;");
}

static int resumes_inside;
static void on_message_pausing(ws_conn_t *c, const char *data, size_t len) {
  (void)len;
  switch (data[0]) {
  case '1':   /* paused here, resumed from outside */
  case '3':   /* paused here, resumed in a later callback (a timer) */
    ws_conn_pause(c);
    break;
  case '2':   /* paused and resumed inside the same handler: input goes on after it */
    ws_conn_pause(c);
    ws_conn_resume(c);
    resumes_inside++;
    break;
  default:
    break;
  }
}

static void resume_from_timer(ws_timer_t *t, void *data) {
  ws_conn_resume(data);
  note("timer;");
  ws_timer_stop(t);
}

static void test_pause_resume(void) {
  reset();
  T.on_message = on_message_pausing;
  ws_script_t *p = open_server();
  char buf[256];
  size_t n = 0;
  for (const char *m = "12345"; *m; m++) n += frame(buf + n, 1, 0, WS_OP_TEXT, m, 1, 1);
  ws_script_push(p, buf, n);   /* one read holding five messages */
  CHECK_STR(T.log, "message t 1;");
  CHECK(!ws_script_reading(p));
  push_frame(p, 1, WS_OP_TEXT, "6", 1, 1);   /* arrives while paused: waits */
  CHECK_STR(T.log, "message t 1;");
  ws_conn_resume(ws_script_conn(p));
  CHECK_STR(T.log, "message t 1;message t 2;message t 3;");
  CHECK_INT(resumes_inside, 1);
  ws_timer_start(L, 1, 0, resume_from_timer, ws_script_conn(p));
  CHECK(run_until("timer;", 2000));
  /* The held read arrives at the next socket turn, after what was left. */
  CHECK_STR(T.log, "message t 1;message t 2;message t 3;message t 4;message t 5;timer;");
  ws_script_run(L, UV_RUN_NOWAIT);
  CHECK_STR(T.log,
            "message t 1;message t 2;message t 3;message t 4;message t 5;timer;message t 6;");
  CHECK(ws_script_reading(p));
  ws_conn_terminate(ws_script_conn(p));
  finish(p);
  CHECK_INT(T.max_depth, 1);
}

/* The client's request: its key, and the answer a server would give (test_topics.c uses
 * it too). */
void test_client_response(ws_script_t *p, char *out, size_t cap, int good) {
  size_t n;
  const char *req = ws_script_take(p, &n);
  char head[1024];
  CHECK(n < sizeof head);
  memcpy(head, req, n < sizeof head ? n : 0);
  head[n < sizeof head ? n : 0] = 0;
  CHECK(strncmp(head, "GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n"
                      "Connection: Upgrade\r\nSec-WebSocket-Key: ", 106) == 0);
  CHECK(n > 4 && strcmp(head + n - 4, "\r\n\r\n") == 0);
  const char *key = strstr(head, "Sec-WebSocket-Key: ");
  char accept[29] = "";
  if (key) ws_handshake_accept(key + 19, 24, accept);
  if (!good) accept[3] ^= 1;
  snprintf(out, cap,
           "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Accept: %s\r\n\r\n",
           accept);
}

/* f[0 .. n) is one small client frame: FIN, opcode op, masked, carrying data. */
void test_check_client_frame(const char *f, size_t n, int op, const char *data, size_t len) {
  char buf[2 + 4 + 125];
  CHECK(len <= 125 && n == 2 + 4 + len);
  if (len > 125 || n != 2 + 4 + len) return;
  memcpy(buf, f, n);
  CHECK_INT((uint8_t)buf[0], 0x80 | op);
  CHECK_INT((uint8_t)buf[1], 0x80 | len);
  ws_mask(buf + 6, len, (const uint8_t *)buf + 2, 0);
  CHECK_MEM(buf + 6, len, data, len);
}

static void test_client(void) {
  reset();
  ws_conn_options_t o;
  ws_conn_options_default(&o);
  ws_script_t *p = ws_script_connect(L, "/chat", "server.example.com", NULL, NULL, &o, NULL);
  CHECK(p != NULL);
  CHECK_INT(ws_conn_ready_state(ws_script_conn(p)), WS_CONNECTING);
  /* Sent before the 101: queued, written right after it. */
  CHECK_INT(ws_conn_send(ws_script_conn(p), WS_OP_TEXT, "early", 5), 0);
  char resp[256];
  test_client_response(p, resp, sizeof resp, 1);
  for (size_t i = 0; resp[i]; i++) {   /* the response head a byte at a time */
    CHECK_STR(T.log, "");
    ws_script_push(p, resp + i, 1);
  }
  CHECK_STR(T.log, "open;");
  CHECK_INT(ws_conn_ready_state(ws_script_conn(p)), WS_OPEN);
  /* Client frames are masked: unmask and compare. */
  CHECK_INT(ws_conn_send(ws_script_conn(p), WS_OP_BINARY, "late", 4), 0);
  size_t n;
  const char *out = ws_script_take(p, &n);
  CHECK_INT(n, 2 * (2 + 4) + 5 + 4);
  if (n == 21) {
    test_check_client_frame(out, 11, WS_OP_TEXT, "early", 5);
    test_check_client_frame(out + 11, 10, WS_OP_BINARY, "late", 4);
  }
  push_frame(p, 1, WS_OP_TEXT, "Hello", 5, 0);
  CHECK_STR(T.log, "open;message t Hello;");
  /* A masked frame from a server is a protocol error; not sent here. We close: the
   * server answers, and closes TCP first (RFC 6455 7.1.1). */
  ws_conn_close(ws_script_conn(p), 1000, "done", 4);
  out = ws_script_take(p, &n);
  test_check_client_frame(out, n, WS_OP_CLOSE, "\x03\xe8" "done", 6);
  push_frame(p, 1, WS_OP_CLOSE, "\x03\xe8", 2, 0);
  settle();
  CHECK(ws_script_conn(p) != NULL);   /* waits for the server's FIN */
  CHECK(!ws_script_fin(p));
  ws_script_eof(p);
  finish(p);
  CHECK_STR(T.log, "open;message t Hello;close 1000 1;");
}

static void test_client_bad_accept(void) {
  reset();
  ws_conn_options_t o;
  ws_conn_options_default(&o);
  ws_script_t *p = ws_script_connect(L, "/chat", "server.example.com", NULL, NULL, &o, NULL);
  char resp[256];
  test_client_response(p, resp, sizeof resp, 0);
  ws_script_push(p, resp, strlen(resp));
  CHECK_STR(T.log, "");
  finish(p);
  CHECK_STR(T.log, "error EHANDSHAKE;close 1006 0;");
  CHECK_REST("");
}

/* A client through a proxy (proxy.c): the exact CONNECT; the answer (an interim 100,
 * then the 2xx) in every chunk size, with the start of the 101 in its last push; nothing
 * but the CONNECT written before the 2xx; the 101, and the frame queued meanwhile. */
static void test_proxy(void) {
  static const char connect[] = "CONNECT server.example.com:80 HTTP/1.1\r\n"
                                "Host: server.example.com:80\r\n"
                                "Proxy-Authorization: Basic dXNlcjpwQHNz\r\n"   /* user:p@ss */
                                "User-Agent: t\r\n\r\n";
  static const char answer[] = "HTTP/1.1 100 Continue\r\n\r\n"
                               "HTTP/1.1 200 Connection established\r\nVia: x\r\n\r\n"
                               "HTTP/1.1 101 Swi";   /* the 101 starts in the same read */
  ws_proxy_options_t px = {"proxy", 3128, NULL, NULL, "user", "p@ss", "User-Agent: t\r\n"};
  ws_conn_options_t o;
  ws_conn_options_default(&o);
  for (size_t chunk = 1; chunk <= sizeof answer - 1; chunk = chunk < 8 ? chunk + 1 : chunk * 3) {
    reset();
    ws_script_t *p = ws_script_connect_proxy(L, "/chat", "server.example.com", NULL, NULL, &o,
                                             &px, NULL);
    CHECK(p != NULL);
    CHECK_OUT(p, connect);
    CHECK_INT(ws_conn_send(ws_script_conn(p), WS_OP_TEXT, "early", 5), 0);
    for (size_t off = 0; off < sizeof answer - 1; off += chunk) {
      size_t n;
      if (off < sizeof answer - 1 - 16) {   /* the 2xx has not all come */
        ws_script_take(p, &n);
        CHECK_INT(n, 0);   /* no request before the tunnel is up */
      }
      n = sizeof answer - 1 - off < chunk ? sizeof answer - 1 - off : chunk;
      ws_script_push(p, answer + off, n);
    }
    char resp[256];
    test_client_response(p, resp, sizeof resp, 1);
    CHECK(strncmp(resp, "HTTP/1.1 101 Swi", 16) == 0);
    CHECK_STR(T.log, "");
    ws_script_push(p, resp + 16, strlen(resp) - 16);
    CHECK_STR(T.log, "open;");
    size_t n;
    const char *out = ws_script_take(p, &n);
    CHECK_INT(n, 2 + 4 + 5);
    if (n == 11) {
      char f[11];
      memcpy(f, out, n);
      ws_mask(f + 6, 5, (const uint8_t *)f + 2, 0);
      CHECK_MEM(f + 6, 5, "early", 5);
    }
    push_frame(p, 1, WS_OP_TEXT, "Hello", 5, 0);
    ws_conn_terminate(ws_script_conn(p));
    finish(p);
    CHECK_STR(T.log, "open;message t Hello;close 1006 0;");
  }
}

/* A refusal, a proxy that closes in its answer, and one that never answers: an error,
 * close 1006, and nothing written after the CONNECT. */
static void test_proxy_failures(void) {
  static const char *const answers[] = {"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n",
                                        "HTTP/1.1 200 Connection", "", "HTTP/1.1 20x OK\r\n\r\n"};
  static const char *const logs[] = {"error EPROXY;close 1006 0;", "error EHANDSHAKE;close 1006 0;",
                                     "error ETIMEDOUT;close 1006 0;", "error EPROXY;close 1006 0;"};
  ws_proxy_options_t px = {"proxy", 3128, NULL, NULL, NULL, NULL, NULL};
  ws_conn_options_t o;
  ws_conn_options_default(&o);
  for (int i = 0; i < 4; i++) {
    reset();
    ws_script_t *p = ws_script_connect_proxy(L, "/chat", "server.example.com", NULL, NULL, &o,
                                             &px, NULL);
    CHECK_OUT(p, "CONNECT server.example.com:80 HTTP/1.1\r\nHost: server.example.com:80\r\n\r\n");
    ws_script_push(p, answers[i], strlen(answers[i]));
    if (i == 1) ws_script_eof(p);
    if (i == 2) ws_script_sweep(L, o.handshake_timeout_ms);
    finish(p);
    CHECK_STR(T.log, logs[i]);
    CHECK_REST("");
  }
}

static void test_high_water(void) {
  reset();
  T.opt.high_water = 16;
  ws_script_t *p = open_server();
  ws_conn_t *c = ws_script_conn(p);
  ws_script_window(p, 0);   /* the peer stops reading */
  char big[100];
  memset(big, 'x', sizeof big);
  CHECK_INT(ws_conn_send(c, WS_OP_BINARY, big, sizeof big), 0);
  CHECK_INT(ws_conn_buffered(c), 102);
  CHECK(!ws_script_reading(p));   /* over high_water: reading stops */
  push_frame(p, 1, WS_OP_TEXT, "in", 2, 1);
  ws_script_run(L, UV_RUN_NOWAIT);
  CHECK_STR(T.log, "");
  CHECK_OUT(p, "");
  ws_script_window(p, 50);   /* it reads some: not drained yet */
  ws_script_run(L, UV_RUN_NOWAIT);
  CHECK_STR(T.log, "");
  ws_script_window(p, SIZE_MAX);
  ws_script_run(L, UV_RUN_NOWAIT);
  /* Drained: on_drain, then reading resumes and the held frame arrives. */
  CHECK_STR(T.log, "drain;message t in;");
  CHECK_OUT_FRAME(p, WS_OP_BINARY, big, sizeof big);
  CHECK_INT(ws_conn_buffered(c), 0);
  CHECK(ws_script_reading(p));
  ws_conn_terminate(c);
  finish(p);
}

static void test_max_buffered(void) {
  /* The "close" policy: the peer that does not read is dropped. */
  reset();
  T.opt.max_buffered = 50;
  ws_script_t *p = open_server();
  ws_conn_t *c = ws_script_conn(p);
  ws_script_window(p, 0);
  char data[40];
  memset(data, 'y', sizeof data);
  CHECK_INT(ws_conn_send(c, WS_OP_TEXT, data, sizeof data), 0);   /* an empty queue takes any */
  CHECK_INT(ws_conn_send(c, WS_OP_TEXT, data, sizeof data), WS_EBACKPRESSURE);
  CHECK_INT(ws_conn_ready_state(c), WS_CLOSED);
  finish(p);
  CHECK_STR(T.log, "error EBACKPRESSURE;close 1006 0;");
  CHECK_REST("");

  /* The "error" policy: only the send fails; the conn stays. */
  reset();
  T.opt.max_buffered = 50;
  T.opt.backpressure_error = 1;
  p = open_server();
  c = ws_script_conn(p);
  ws_script_window(p, 0);
  CHECK_INT(ws_conn_send(c, WS_OP_TEXT, data, sizeof data), 0);
  CHECK_INT(ws_conn_send(c, WS_OP_TEXT, data, sizeof data), WS_EBACKPRESSURE);
  CHECK_INT(ws_conn_ready_state(c), WS_OPEN);
  ws_script_window(p, SIZE_MAX);
  ws_script_run(L, UV_RUN_NOWAIT);
  CHECK_OUT_FRAME(p, WS_OP_TEXT, data, sizeof data);
  CHECK_INT(ws_conn_send(c, WS_OP_TEXT, "ok", 2), 0);
  CHECK_OUT_FRAME(p, WS_OP_TEXT, "ok", 2);
  CHECK_STR(T.log, "");
  ws_conn_terminate(c);
  finish(p);
  CHECK_STR(T.log, "close 1006 0;");
}

static void test_timeouts(void) {
  /* Idle: a ping after idle_timeout, then the silent peer is dropped after pong_timeout
   * (with a best-effort close 1001). */
  reset();
  T.opt.idle_timeout_ms = 20;
  T.opt.pong_timeout_ms = 20;
  ws_script_t *p = open_server();
  uv_update_time(&uv);
  uint64_t t0 = uv_now(&uv);
  CHECK(run_until("close", 3000));
  CHECK(uv_now(&uv) - t0 >= 20);   /* pong_timeout after a ping sent after t0 */
  finish(p);
  CHECK_STR(T.log, "error ETIMEDOUT;close 1006 0;");
  CHECK_REST("\x89\x00\x88\x02\x03\xe9");

  /* A pong (any bytes) in time keeps it open. */
  reset();
  T.opt.idle_timeout_ms = 20;
  T.opt.pong_timeout_ms = 40;
  p = open_server();
  uv_timer_start(&tick, on_tick, 2, 2);
  size_t n = 0;
  for (int i = 0; i < 2000 && !n; i++) {
    ws_script_run(L, UV_RUN_ONCE);
    ws_script_take(p, &n);
  }
  uv_timer_stop(&tick);
  CHECK_INT(n, 2);
  push_frame(p, 1, WS_OP_PONG, "", 0, 1);
  CHECK_STR(T.log, "pong ;");
  CHECK(run_until("close", 50) == 0);   /* a drop comes 60 ms after the pong at the soonest */
  CHECK(ws_script_conn(p) != NULL);
  ws_conn_terminate(ws_script_conn(p));
  finish(p);

  /* A message begun and not finished within message_timeout: close 1008. */
  reset();
  T.opt.idle_timeout_ms = 0;
  T.opt.message_timeout_ms = 20;
  p = open_server();
  push_frame(p, 0, WS_OP_TEXT, "half", 4, 1);
  CHECK(run_until("close", 3000));
  finish(p);
  CHECK_STR(T.log, "error ETIMEDOUT;close 1008 0;");
  CHECK_REST("\x88\x02\x03\xf0");

  /* Paused with whole messages read and waiting: no message_timeout, however long. */
  reset();
  T.opt.idle_timeout_ms = 0;
  T.opt.message_timeout_ms = 20;
  T.on_message = on_message_pausing;
  p = open_server();
  char two[64];
  size_t n2 = frame(two, 1, 0, WS_OP_TEXT, "1", 1, 1);
  n2 += frame(two + n2, 1, 0, WS_OP_TEXT, "x", 1, 1);
  ws_script_push(p, two, n2);
  CHECK_STR(T.log, "message t 1;");
  CHECK(run_until("close", 100) == 0);
  ws_conn_resume(ws_script_conn(p));
  CHECK_STR(T.log, "message t 1;message t x;");
  ws_conn_terminate(ws_script_conn(p));
  finish(p);
}

static void test_http_errors(void) {
  reset();
  /* An upgrade request with a body: 400, and nothing reaches the layer above. */
  static const char with_body[] = "GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                                  "Connection: Upgrade\r\nContent-Length: 5\r\n"
                                  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                                  "Sec-WebSocket-Version: 13\r\n\r\nhello";
  ws_script_t *p = ws_script_accept(L, S);
  ws_script_push(p, with_body, sizeof with_body - 1);
  CHECK_OUT(p, "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 40\r\n"
               "Connection: close\r\n\r\nan upgrade request must not have a body\n");
  ws_script_run(L, UV_RUN_NOWAIT);
  CHECK(ws_script_fin(p));
  finish(p);
  CHECK_STR(T.log, "");

  /* Not accepted by the handler: 400 as well. */
  reset();
  T.accept = 0;
  p = ws_script_accept(L, S);
  ws_script_push(p, request, sizeof request - 1);
  CHECK_OUT(p, "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 31\r\n"
               "Connection: close\r\n\r\nWebSocket upgrade not accepted\n");
  finish(p);
  CHECK_STR(T.log, "request 1;close 1006 0;");   /* the layer above knew the request */

  /* EOF in the middle of a head: dropped quietly. */
  reset();
  p = ws_script_accept(L, S);
  ws_script_push(p, request, 20);
  ws_script_eof(p);
  finish(p);
  CHECK_STR(T.log, "");
  CHECK_REST("");
}

/* A forked child must not send its parent's masking keys (RFC 6455 5.3: each key is
 * fresh): the key pool is drawn again in the child. */
static void test_mask_keys_after_fork(void) {
  uint8_t first[4], child[4], next[4];
  int fds[2];
  CHECK_INT(ws__mask_key(L, first), 0);   /* the pool exists and has keys left */
  CHECK_INT(pipe(fds), 0);
  pid_t pid = fork();
  if (pid == 0) {
    uint8_t k[4];
    ssize_t w = ws__mask_key(L, k) == 0 ? write(fds[1], k, 4) : -1;
    _exit(w == 4 ? 0 : 1);
  }
  CHECK(pid > 0);
  CHECK_INT(read(fds[0], child, 4), 4);
  int status = 1;
  waitpid(pid, &status, 0);
  CHECK_INT(status, 0);
  close(fds[0]);
  close(fds[1]);
  CHECK_INT(ws__mask_key(L, next), 0);    /* what the child would have taken */
  CHECK(memcmp(child, next, 4) != 0);
  CHECK(memcmp(first, next, 4) != 0);
}

int main(void) {
  uv_loop_init(&uv);
  uv_timer_init(&uv, &tick);
  L = ws_loop_new(&uv, &events, NULL);
  ws_server_options_t so;
  ws_server_options_default(&so);
  S = ws_script_server(L, &so, NULL);

  test_mask_keys_after_fork();
  test_upgrade();
  test_messages_and_close();
  test_protocol_error();
  test_pause_resume();
  test_client();
  test_client_bad_accept();
  test_proxy();
  test_proxy_failures();
  test_high_water();
  test_max_buffered();
  test_timeouts();
  test_http_errors();

  ws_server_close(S, NULL);
  uv_close((uv_handle_t *)&tick, NULL);
  settle();
  CHECK_INT(ws_loop_active_handles(L), 0);
  CHECK_INT(ws_loop_free(L), 0);
  CHECK_INT(uv_loop_close(&uv), 0);   /* every handle of it is gone */
  test_topics();
  test_backplane();
  printf("%ld passed, %ld failed\n", test_passed, test_failed);
  return test_failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
