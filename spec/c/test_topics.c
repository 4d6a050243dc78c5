/* C unit tests of the topics (csrc/io/topics.c, ws_loop_publish) over scripted sockets:
 * the registry against a model under random operations (growth of the table and of the
 * member lists, removal by swapping, leaving at close), the order a removal leaves, and
 * publishes whose sends drop subscribers in the middle of the list (back-pressure, the
 * server's memory budget). Runs on a loop of its own; part of test_io. */
#include <stdlib.h>

#include "test.h"
#include "io.h"
#include "scripted.h"

/* test_conn.c's */
void test_client_response(ws_script_t *p, char *out, size_t cap, int good);
void test_check_client_frame(const char *f, size_t n, int op, const char *data, size_t len);

static uv_loop_t uv;
static ws_loop_t *L;
static ws_server_t *S;

static struct {
  char log[4096];
  ws_conn_options_t opt;   /* for the next accept */
  ws_conn_t *missed[64];
  size_t nmissed;
} Z;

#define note(...) test_appendf(Z.log, sizeof Z.log, __VA_ARGS__)

static int id_of(const ws_conn_t *c) { return (int)(intptr_t)ws_conn_data(c); }

static void ev_request(ws_server_t *s, ws_conn_t *c, const ws_http_head_t *h, int upgrade) {
  (void)s, (void)h;
  if (upgrade) CHECK_INT(ws_conn_accept(c, NULL, NULL, &Z.opt), 0);
}

static void ev_error(ws_conn_t *c, int err, const char *message) {
  (void)message;
  note("error %d %s;", id_of(c), ws_err_name(err) ? ws_err_name(err) : uv_err_name(err));
}

static void ev_close(ws_conn_t *c, unsigned code, const char *reason, size_t rlen, int clean) {
  (void)reason, (void)rlen, (void)clean;
  note("close %d %u;", id_of(c), code);
}

static const ws_io_events_t events = {ev_request, NULL, NULL, NULL, ev_error,
                                      ev_close,   NULL, NULL, NULL, NULL, NULL};

static void settle(void) {
  for (int i = 0; i < 8; i++) ws_script_run(L, UV_RUN_NOWAIT);
}

static const char request[] = "GET /t HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                              "Connection: Upgrade\r\n"
                              "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                              "Sec-WebSocket-Version: 13\r\n\r\n";

/* An open server conn (accepted with Z.opt), tagged id, its 101 taken. */
static ws_script_t *open_conn(int id) {
  ws_script_t *p = ws_script_accept(L, S);
  CHECK(p != NULL);
  ws_script_push(p, request, sizeof request - 1);
  ws_conn_t *c = ws_script_conn(p);
  CHECK(c != NULL && ws_conn_ready_state(c) == WS_OPEN);
  ws_conn_set_data(c, (void *)(intptr_t)id);
  size_t n;
  ws_script_take(p, &n);
  return p;
}

static void free_all(ws_script_t **p, int n) {
  for (int i = 0; i < n; i++)
    if (p[i]) ws_script_free(p[i]);
  settle();
}

static void on_missed(ws_conn_t *c, void *ud) {
  (void)ud;
  if (Z.nmissed < 64) Z.missed[Z.nmissed++] = c;
}

/* The bytes the peer read since the last take are exactly one server text frame. */
static int got_frame(ws_script_t *p, const char *data, size_t len) {
  uint8_t want[64];
  size_t hl = ws_frame_header(want, 1, 0, WS_OP_TEXT, len, NULL), n;
  memcpy(want + hl, data, len);
  const char *out = ws_script_take(p, &n);
  return n == hl + len && memcmp(out, want, n) == 0;
}

static void check_empty(void) {
  ws_loop_stats_t st;
  ws_loop_stats(L, &st);
  CHECK_INT(st.topics, 0);
  CHECK_INT(st.subscriptions, 0);
  CHECK_INT(st.topic_memory, 0);
  CHECK_INT(st.connections, 0);
}

static void test_basics(void) {
  ws_conn_options_default(&Z.opt);
  Z.log[0] = 0;
  ws_script_t *p[3] = {open_conn(0), open_conn(1), open_conn(2)};
  ws_conn_t *a = ws_script_conn(p[0]), *b = ws_script_conn(p[1]);
  CHECK_INT(ws_conn_subscribe(a, "news", 4), 1);
  CHECK_INT(ws_conn_subscribe(a, "news", 4), 0);
  CHECK_INT(ws_conn_subscribe(b, "news", 4), 1);
  CHECK_INT(ws_conn_subscribe(b, "", 0), 1);   /* any bytes, the empty string too */
  CHECK_INT(ws_conn_subscribe(b, "ne\0ws", 5), 1);
  char big[WS_TOPIC_MAX + 1];
  memset(big, 'x', sizeof big);
  CHECK_INT(ws_conn_subscribe(b, big, WS_TOPIC_MAX + 1), WS_EINVAL);
  CHECK_INT(ws_conn_subscribe(b, big, WS_TOPIC_MAX), 1);
  CHECK_INT(ws_loop_subscribers(L, "news", 4), 2);
  CHECK_INT(ws_loop_subscribers(L, "ne\0ws", 5), 1);
  CHECK_INT(ws_loop_subscribers(L, "ne", 2), 0);
  CHECK(ws_conn_is_subscribed(b, "", 0));
  CHECK(!ws_conn_is_subscribed(a, "", 0));
  CHECK_INT(ws_conn_subscriptions(b), 4);
  size_t len;
  CHECK(ws_conn_topic(b, 4, &len) == NULL);
  int seen = 0;
  for (size_t i = 0; i < 4; i++) {
    const char *t = ws_conn_topic(b, i, &len);
    seen += len == 5 && memcmp(t, "ne\0ws", 5) == 0;
  }
  CHECK_INT(seen, 1);

  /* A publish reaches exactly the subscribers, framed once for them all. */
  ws_publish_t r;
  CHECK_INT(ws_loop_publish(L, "news", 4, WS_OP_TEXT, "hi", 2, &r, on_missed, NULL), 0);
  CHECK_INT(r.delivered, 2);
  CHECK_INT(r.skipped, 0);
  CHECK(got_frame(p[0], "hi", 2));
  CHECK(got_frame(p[1], "hi", 2));
  CHECK(got_frame(p[2], "", 0) == 0);   /* nothing at all for the third */
  CHECK_INT(ws_loop_publish(L, "none", 4, WS_OP_TEXT, "x", 1, &r, NULL, NULL), 0);
  CHECK_INT(r.delivered + r.skipped, 0);
  CHECK_INT(ws_loop_publish(L, big, WS_TOPIC_MAX + 1, WS_OP_TEXT, "x", 1, &r, NULL, NULL),
            WS_EINVAL);
  CHECK_INT(ws_loop_publish(L, "news", 4, WS_OP_PING, "x", 1, &r, NULL, NULL), WS_EINVAL);
  CHECK_INT(Z.nmissed, 0);

  CHECK_INT(ws_conn_unsubscribe(a, "news", 4), 1);
  CHECK_INT(ws_conn_unsubscribe(a, "news", 4), 0);
  CHECK_INT(ws_conn_unsubscribe(a, "nope", 4), 0);
  CHECK_INT(ws_loop_subscribers(L, "news", 4), 1);

  /* Closing leaves every topic at once, before the close handshake ends; a closing
   * socket cannot subscribe. */
  ws_conn_close(b, 1000, NULL, 0);
  CHECK_INT(ws_conn_ready_state(b), WS_CLOSING);
  CHECK_INT(ws_conn_subscriptions(b), 0);
  CHECK_INT(ws_loop_subscribers(L, "news", 4), 0);
  CHECK_INT(ws_conn_subscribe(b, "news", 4), WS_ECLOSED);
  ws_loop_stats_t st;
  ws_loop_stats(L, &st);
  CHECK_INT(st.topics, 0);
  CHECK_INT(st.topic_memory, 0);

  /* The limit. */
  ws_conn_t *c = ws_script_conn(p[2]);
  for (int i = 0; i < 1024; i++) {
    char t[16];
    int n = snprintf(t, sizeof t, "t%d", i);
    CHECK_INT(ws_conn_subscribe(c, t, (size_t)n) == 1, 1);
  }
  CHECK_INT(ws_conn_subscribe(c, "one more", 8), WS_ELIMIT);
  CHECK_INT(ws_conn_subscribe(c, "t5", 2), 0);   /* already: no limit to pass */
  ws_loop_stats(L, &st);
  CHECK_INT(st.topics, 1024);
  CHECK_INT(st.subscriptions, 1024);
  ws_conn_terminate(c);
  ws_loop_stats(L, &st);
  CHECK_INT(st.topics, 0);
  free_all(p, 3);
  check_empty();
}

/* Random subscribes, unsubscribes and closes against a model; every few steps each
 * topic's count and each pair's membership is compared, and a publish must reach
 * exactly the model's subscribers. */
#define NC 40
#define NT 300
static void test_model(void) {
  ws_conn_options_default(&Z.opt);
  static unsigned char in[NC][NT];
  memset(in, 0, sizeof in);
  ws_script_t *p[NC];
  for (int i = 0; i < NC; i++) p[i] = open_conn(i);
  uint64_t seed = 42;
  size_t max_topics = 0;
  for (int step = 0; step < 40000; step++) {
    int ci = (int)(test_rand(&seed) % NC), ti = (int)(test_rand(&seed) % NT);
    ws_conn_t *c = ws_script_conn(p[ci]);
    char t[16];
    int tl = snprintf(t, sizeof t, "topic-%d", ti);
    unsigned op = (unsigned)(test_rand(&seed) % 100);
    if (op < 60) {
      int r = ws_conn_subscribe(c, t, (size_t)tl);
      if (r != !in[ci][ti]) CHECK_INT(r, !in[ci][ti]);
      in[ci][ti] = 1;
    } else if (op < 99) {
      int r = ws_conn_unsubscribe(c, t, (size_t)tl);
      if (r != in[ci][ti]) CHECK_INT(r, in[ci][ti]);
      in[ci][ti] = 0;
    } else {   /* the conn goes; a new one takes its place */
      ws_script_free(p[ci]);
      p[ci] = open_conn(ci);
      memset(in[ci], 0, sizeof in[ci]);
    }
    if (step % 997) continue;
    ws_loop_stats_t st;
    ws_loop_stats(L, &st);
    size_t topics = 0, subs = 0;
    for (int j = 0; j < NT; j++) {
      size_t n = 0;
      for (int i = 0; i < NC; i++) n += in[i][j];
      tl = snprintf(t, sizeof t, "topic-%d", j);
      if (ws_loop_subscribers(L, t, (size_t)tl) != n) CHECK_INT(ws_loop_subscribers(L, t, (size_t)tl), n);
      for (int i = 0; i < NC; i++)
        if (ws_conn_is_subscribed(ws_script_conn(p[i]), t, (size_t)tl) != in[i][j])
          CHECK_INT(ws_conn_is_subscribed(ws_script_conn(p[i]), t, (size_t)tl), in[i][j]);
      topics += n > 0;
      subs += n;
    }
    CHECK_INT(st.topics, topics);
    CHECK_INT(st.subscriptions, subs);
    if (topics > max_topics) max_topics = topics;
    ws_publish_t r;
    CHECK_INT(ws_loop_publish(L, t, (size_t)tl, WS_OP_TEXT, "m", 1, &r, NULL, NULL), 0);
    CHECK_INT(r.delivered, ws_loop_subscribers(L, t, (size_t)tl));
    for (int i = 0; i < NC; i++) {
      size_t n;
      ws_script_take(p[i], &n);
      if ((n == 3) != in[i][NT - 1]) CHECK_INT(n, in[i][NT - 1] ? 3 : 0);
    }
  }
  CHECK(max_topics > 64);   /* the table grew several times */
  free_all(p, NC);
  check_empty();
}

/* A conn whose peer reads nothing and has a message queued: the next publish is over
 * its max_buffered (50). */
static ws_script_t *stalled_conn(int id, int error_policy) {
  Z.opt.max_buffered = 50;
  Z.opt.backpressure_error = error_policy;
  ws_script_t *p = open_conn(id);
  ws_script_window(p, 0);
  CHECK_INT(ws_conn_send(ws_script_conn(p), WS_OP_TEXT, "queued", 6), 0);
  ws_conn_options_default(&Z.opt);
  return p;
}

/* The ids of the conns missed reported, as a string. */
static const char *missed_ids(void) {
  static char buf[64];
  size_t n = 0;
  buf[0] = 0;
  for (size_t i = 0; i < Z.nmissed && n + 2 < sizeof buf; i++)
    n += (size_t)snprintf(buf + n, sizeof buf - n, "%d", id_of(Z.missed[i]));
  return buf;
}

static ws_publish_t publish(const char *topic, const char *data, size_t len) {
  ws_publish_t r;
  Z.nmissed = 0;
  CHECK_INT(ws_loop_publish(L, topic, strlen(topic), WS_OP_TEXT, data, len, &r, on_missed, NULL), 0);
  return r;
}

static void test_removal_order(void) {
  /* Members are kept densely: a removal moves the last into the hole. The order shows
   * in the subscribers the "error" policy refuses, which missed reports in list order. */
  ws_conn_options_default(&Z.opt);
  Z.log[0] = 0;
  ws_script_t *p[5];
  ws_conn_t *c[5];
  for (int i = 0; i < 5; i++) {
    p[i] = stalled_conn(i, 1);
    c[i] = ws_script_conn(p[i]);
    CHECK_INT(ws_conn_subscribe(c[i], "o", 1), 1);
  }
  char big[48];
  memset(big, 'b', sizeof big);
  ws_publish_t r = publish("o", big, sizeof big);
  CHECK_INT(r.delivered, 0);
  CHECK_INT(r.skipped, 5);
  CHECK_STR(missed_ids(), "01234");
  ws_conn_unsubscribe(c[0], "o", 1);
  publish("o", big, sizeof big);
  CHECK_STR(missed_ids(), "4123");
  ws_conn_unsubscribe(c[2], "o", 1);
  publish("o", big, sizeof big);
  CHECK_STR(missed_ids(), "413");
  ws_conn_unsubscribe(c[3], "o", 1);   /* the last: nothing moves */
  ws_conn_subscribe(c[0], "o", 1);
  publish("o", big, sizeof big);
  CHECK_STR(missed_ids(), "410");

  /* The same in a conn's own list; the moved entries still find their topics. */
  ws_conn_subscribe(c[1], "x", 1);
  ws_conn_subscribe(c[1], "y", 1);
  ws_conn_subscribe(c[1], "z", 1);
  ws_conn_unsubscribe(c[1], "o", 1);   /* first of o, x, y, z: z moves in */
  size_t len;
  const char *t0 = ws_conn_topic(c[1], 0, &len);
  CHECK(len == 1 && t0[0] == 'z');
  publish("o", big, sizeof big);
  CHECK_STR(missed_ids(), "40");
  publish("z", big, sizeof big);
  CHECK_STR(missed_ids(), "1");
  CHECK_INT(ws_conn_unsubscribe(c[1], "z", 1), 1);
  CHECK_INT(ws_conn_unsubscribe(c[1], "x", 1), 1);
  CHECK_INT(ws_conn_unsubscribe(c[1], "y", 1), 1);
  CHECK_INT(ws_conn_subscriptions(c[1]), 0);
  /* Refused but open: nothing was closed, nothing queued beyond the first message. */
  for (int i = 0; i < 5; i++) {
    CHECK_INT(ws_conn_ready_state(c[i]), WS_OPEN);
    CHECK_INT(ws_conn_buffered(c[i]), 8);
  }
  CHECK_STR(Z.log, "");
  free_all(p, 5);
  check_empty();
}

static void test_publish_drops(void) {
  /* The "drop" policy in the middle of the list: the others still get the message; the
   * dropped one is told (on_error, on_close) and has left the topic by the time the
   * publish returns. */
  ws_conn_options_default(&Z.opt);
  Z.log[0] = 0;
  ws_script_t *p[3] = {open_conn(0), stalled_conn(1, 0), open_conn(2)};
  for (int i = 0; i < 3; i++) CHECK_INT(ws_conn_subscribe(ws_script_conn(p[i]), "d", 1), 1);
  char big[48];
  memset(big, 'd', sizeof big);
  ws_publish_t r = publish("d", big, sizeof big);
  CHECK_INT(r.delivered, 2);
  CHECK_INT(r.skipped, 1);
  CHECK_INT(Z.nmissed, 0);   /* closed, not missed: it hears of it by on_close */
  CHECK_INT(ws_loop_subscribers(L, "d", 1), 2);
  CHECK(got_frame(p[0], big, sizeof big));
  CHECK(got_frame(p[2], big, sizeof big));
  CHECK_STR(Z.log, "");   /* told from the close callback, never inside the publish */
  settle();
  CHECK_STR(Z.log, "error 1 EBACKPRESSURE;close 1 1006;");
  free_all(p, 3);
  check_empty();
}

static const char request75[] = "GET /demo HTTP/1.1\r\nUpgrade: WebSocket\r\n"
                                "Connection: Upgrade\r\nHost: example.com\r\n"
                                "Origin: http://example.com\r\n\r\n";

static void test_states(void) {
  ws_conn_options_default(&Z.opt);
  Z.log[0] = 0;
  /* A draft socket takes text; binary skips it, and it stays open: missed. */
  ws_script_t *h = ws_script_accept(L, S);
  ws_script_push(h, request75, sizeof request75 - 1);
  ws_conn_t *hc = ws_script_conn(h);
  CHECK_INT(ws_conn_ready_state(hc), WS_OPEN);
  CHECK_STR(ws_conn_version(hc), "hixie-75");
  ws_conn_set_data(hc, (void *)(intptr_t)7);
  size_t n;
  ws_script_take(h, &n);
  CHECK_INT(ws_conn_subscribe(hc, "s", 1), 1);
  ws_publish_t r;
  Z.nmissed = 0;
  CHECK_INT(ws_loop_publish(L, "s", 1, WS_OP_BINARY, "\1\2", 2, &r, on_missed, NULL), 0);
  CHECK_INT(r.delivered, 0);
  CHECK_INT(r.skipped, 1);
  CHECK_STR(missed_ids(), "7");
  r = publish("s", "hi", 2);
  CHECK_INT(r.delivered, 1);
  const char *out = ws_script_take(h, &n);
  CHECK_MEM(out, n, "\0hi\xff", 4);

  /* A client subscribes while it connects: a publish skips it (not open, not missed),
   * the next one after the 101 reaches it, masked. */
  ws_conn_options_t o;
  ws_conn_options_default(&o);
  ws_script_t *cl = ws_script_connect(L, "/chat", "server.example.com", NULL, NULL, &o,
                                      (void *)(intptr_t)8);
  ws_conn_t *cc = ws_script_conn(cl);
  CHECK_INT(ws_conn_ready_state(cc), WS_CONNECTING);
  CHECK_INT(ws_conn_subscribe(cc, "s", 1), 1);
  r = publish("s", "early", 5);
  CHECK_INT(r.delivered, 1);   /* the draft socket */
  CHECK_INT(r.skipped, 1);
  CHECK_INT(Z.nmissed, 0);
  ws_script_take(h, &n);
  char resp[256];
  test_client_response(cl, resp, sizeof resp, 1);
  ws_script_push(cl, resp, strlen(resp));
  CHECK_INT(ws_conn_ready_state(cc), WS_OPEN);
  r = publish("s", "late", 4);
  CHECK_INT(r.delivered, 2);
  out = ws_script_take(cl, &n);
  test_check_client_frame(out, n, WS_OP_TEXT, "late", 4);
  /* The peer's close frame: the client leaves its topics as the closing begins. */
  ws_script_push(cl, "\x88\x02\x03\xe8", 4);
  CHECK_INT(ws_conn_ready_state(cc), WS_CLOSING);
  CHECK(!ws_conn_is_subscribed(cc, "s", 1));
  CHECK_INT(ws_loop_subscribers(L, "s", 1), 1);
  ws_script_free(cl);
  ws_script_free(h);
  settle();
  check_empty();
}

static void test_budget_eviction(void) {
  /* A send of the publish takes the server past max_memory, and the budget drops the
   * conn holding the most: one the publish has not reached yet, in the middle of the
   * list. The copy of the list keeps the rest in order: each of them gets it once. */
  ws_server_options_t so;
  ws_server_options_default(&so);
  so.max_memory = 131072 + 256 + 128;   /* the big one's queue and one small one's */
  ws_server_t *s2 = ws_script_server(L, &so, NULL);
  ws_server_t *s1 = S;
  S = s2;
  ws_conn_options_default(&Z.opt);
  Z.log[0] = 0;
  ws_script_t *p[4];
  for (int i = 0; i < 4; i++) {
    p[i] = open_conn(i);
    ws_script_window(p[i], 0);
    CHECK_INT(ws_conn_subscribe(ws_script_conn(p[i]), "m", 1), 1);
  }
  static char fat[100000];
  CHECK_INT(ws_conn_send(ws_script_conn(p[2]), WS_OP_BINARY, fat, sizeof fat), 0);
  CHECK_INT(ws_conn_ready_state(ws_script_conn(p[2])), WS_OPEN);
  ws_publish_t r = publish("m", "small", 5);
  CHECK_INT(r.delivered, 3);
  CHECK_INT(r.skipped, 1);
  CHECK_INT(Z.nmissed, 0);
  CHECK_INT(ws_loop_subscribers(L, "m", 1), 3);
  for (int i = 0; i < 4; i++) ws_script_window(p[i], SIZE_MAX);
  settle();
  for (int i = 0; i < 4; i++)
    if (i != 2) CHECK(got_frame(p[i], "small", 5));
  CHECK_STR(Z.log, "error 2 EOVERLOAD;close 2 1006;");
  free_all(p, 4);
  S = s1;
  ws_server_close(s2, NULL);
  settle();
  check_empty();
}

void test_topics(void) {
  uv_loop_init(&uv);
  L = ws_loop_new(&uv, &events, NULL);
  ws_server_options_t so;
  ws_server_options_default(&so);
  S = ws_script_server(L, &so, NULL);

  test_basics();
  test_model();
  test_removal_order();
  test_publish_drops();
  test_states();
  test_budget_eviction();

  ws_server_close(S, NULL);
  settle();
  CHECK_INT(ws_loop_active_handles(L), 0);
  CHECK_INT(ws_loop_free(L), 0);
  CHECK_INT(uv_loop_close(&uv), 0);
}
