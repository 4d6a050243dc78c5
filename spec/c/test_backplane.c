/* C unit tests of what the backplane (csrc/io/backplane.c) asks of the topics, over
 * scripted sockets: the hooks on a topic's first subscriber and its last, a topic held
 * with no subscriber while marked, and released; and the backplane's own bookkeeping
 * without Redis (its loop never runs a connection attempt here): options refused, the
 * queue's bound in messages and bytes, topics held and let go at close. Its traffic with
 * Redis is spec/backplane_spec.lua's. Part of test_io. */
#include <stdlib.h>

#include "test.h"
#include "internal.h"
#include "scripted.h"

static uv_loop_t uv;
static ws_loop_t *L;
static ws_server_t *S;
static char hooks[256];
static int hold;   /* the empty hook marks the topic (as the backplane does) */

static void on_first(ws_backplane_t *bp, ws__topic_t *t) {
  CHECK(bp == (ws_backplane_t *)&hold);
  test_appendf(hooks, sizeof hooks, "first %.*s %u;", (int)t->len, t->name, t->n);
}

static void on_empty(ws_backplane_t *bp, ws__topic_t *t) {
  (void)bp;
  test_appendf(hooks, sizeof hooks, "empty %.*s;", (int)t->len, t->name);
  if (hold) t->remote = 1;
}

static void ev_request(ws_server_t *s, ws_conn_t *c, const ws_http_head_t *h, int upgrade) {
  (void)s, (void)h;
  ws_conn_options_t o;
  ws_conn_options_default(&o);
  if (upgrade) CHECK_INT(ws_conn_accept(c, NULL, NULL, &o), 0);
}

static const ws_io_events_t events = {ev_request, NULL, NULL, NULL, NULL, NULL,
                                      NULL,       NULL, NULL, NULL, NULL};

static void settle(void) {
  for (int i = 0; i < 8; i++) ws_script_run(L, UV_RUN_NOWAIT);
}

static const char request[] = "GET /t HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                              "Connection: Upgrade\r\n"
                              "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                              "Sec-WebSocket-Version: 13\r\n\r\n";

static ws_script_t *open_conn(void) {
  ws_script_t *p = ws_script_accept(L, S);
  CHECK(p != NULL);
  ws_script_push(p, request, sizeof request - 1);
  CHECK(ws_conn_ready_state(ws_script_conn(p)) == WS_OPEN);
  return p;
}

static size_t topics(void) {
  ws_loop_stats_t st;
  ws_loop_stats(L, &st);
  return st.topics;
}

static void test_hooks(void) {
  L->backplane = (ws_backplane_t *)&hold;
  L->topic_first = on_first;
  L->topic_empty = on_empty;
  ws_script_t *p[2] = {open_conn(), open_conn()};
  ws_conn_t *a = ws_script_conn(p[0]), *b = ws_script_conn(p[1]);
  hooks[0] = 0;
  hold = 0;
  CHECK_INT(ws_conn_subscribe(a, "x", 1), 1);
  CHECK_INT(ws_conn_subscribe(b, "x", 1), 1);
  CHECK_INT(ws_conn_subscribe(b, "y", 1), 1);
  CHECK_INT(ws_conn_unsubscribe(a, "x", 1), 1);
  CHECK_INT(ws_conn_unsubscribe(b, "x", 1), 1);
  CHECK_STR(hooks, "first x 1;first y 1;empty x;");
  CHECK_INT(topics(), 1);   /* unmarked: gone at once */

  /* Marked by its empty hook, a topic stays, subscribers or not; its next subscriber
   * is a first again; released, it goes. */
  hooks[0] = 0;
  hold = 1;
  ws_script_free(p[1]);   /* b leaves y as it closes */
  CHECK_STR(hooks, "empty y;");
  CHECK_INT(topics(), 1);
  CHECK_INT(ws_loop_subscribers(L, "y", 1), 0);
  ws_publish_t out;
  CHECK_INT(ws_loop_publish(L, "y", 1, WS_OP_TEXT, "m", 1, &out, NULL, NULL), 0);
  CHECK_INT(out.delivered + out.skipped, 0);
  CHECK_INT(ws_conn_subscribe(a, "y", 1), 1);
  CHECK_STR(hooks, "empty y;first y 1;");
  CHECK_INT(ws_conn_unsubscribe(a, "y", 1), 1);
  ws__topic_t *t = NULL;
  for (uint32_t i = 0; i < L->topics.cap; i++)
    if (L->topics.tab[i]) t = L->topics.tab[i];
  CHECK(t != NULL && t->n == 0 && t->remote == 1);
  t->remote = 0;
  ws__topic_release(L, t);
  CHECK_INT(topics(), 0);
  L->backplane = NULL;
  L->topic_first = L->topic_empty = NULL;
  ws_script_free(p[0]);
  settle();
}

static void no_event(ws_backplane_t *bp) {
  (void)bp;
  test_fail(__FILE__, __LINE__, "an event without Redis");
}
static void no_error(ws_backplane_t *bp, const char *m) {
  (void)bp;
  test_fail(__FILE__, __LINE__, m);
}
static const ws_backplane_events_t bp_events = {no_event, no_event, no_error, NULL};

static void test_without_redis(void) {
  ws_backplane_options_t o;
  ws_backplane_options_default(&o);
  ws_backplane_t *bp, *other;
#ifndef LUAWS_HIREDIS
  CHECK_INT(ws_backplane_open(L, &o, &bp_events, NULL, &bp), WS_ENOTSUPPORTED);
  (void)other;
#else
  o.port = 1;   /* never tried: the loop does not run a connection attempt here */
  o.max_queue = 3;
  o.prefix_len = 257;
  CHECK_INT(ws_backplane_open(L, &o, &bp_events, NULL, &bp), WS_EINVAL);
  o.prefix_len = 6;
  CHECK_INT(ws_backplane_open(L, &o, &bp_events, NULL, &bp), 0);
  CHECK(ws_loop_backplane(L) == bp);
  CHECK_INT(ws_backplane_open(L, &o, &bp_events, NULL, &other), WS_EINVAL);

  /* the bound: 3 publishes; then none, of any size */
  for (int i = 0; i < 3; i++)
    CHECK_INT(ws_backplane_publish(bp, "t", 1, WS_OP_TEXT, "hello", 5), 0);
  CHECK_INT(ws_backplane_publish(bp, "t", 1, WS_OP_TEXT, "", 0), WS_EBACKPLANE);
  ws_backplane_stats_t st;
  ws_backplane_stats(bp, &st);
  /* *3 $7 PUBLISH, $7 luaws:t, $31 (26 of header, 5 of data): 17 + 13 + 38 */
  CHECK_INT(st.queued, 3);
  CHECK_INT(st.queued_bytes, 3 * (17 + 13 + 38));
  CHECK_INT(st.connected, 0);
  CHECK_INT(ws_backplane_publish(bp, "t", 1, 7, "x", 1), WS_EINVAL);

  /* Not connected, it keeps no topic: one made and left goes at once (a long outage
   * with topics coming and going costs nothing), one with a subscriber stays after it. */
  ws_script_t *p = open_conn();
  ws_conn_t *c = ws_script_conn(p);
  CHECK_INT(ws_conn_subscribe(c, "gone", 4), 1);
  CHECK_INT(ws_conn_unsubscribe(c, "gone", 4), 1);
  CHECK_INT(topics(), 0);
  CHECK_INT(ws_conn_subscribe(c, "kept", 4), 1);
  CHECK_INT(ws_backplane_close(bp), 3);   /* the publishes dropped unsent */
  CHECK(ws_loop_backplane(L) == NULL);
  CHECK_INT(topics(), 1);
  CHECK_INT(ws_conn_unsubscribe(c, "kept", 4), 1);
  CHECK_INT(topics(), 0);
  CHECK_INT(ws_backplane_close(NULL), 0);

  /* in bytes: one publish of any size passes an empty queue */
  o.max_queue = 100;
  o.max_queue_bytes = 100;
  CHECK_INT(ws_backplane_open(L, &o, &bp_events, NULL, &bp), 0);
  char big[200] = {0};
  CHECK_INT(ws_backplane_publish(bp, "t", 1, WS_OP_BINARY, big, sizeof big), 0);
  CHECK_INT(ws_backplane_publish(bp, "t", 1, WS_OP_BINARY, big, 1), WS_EBACKPLANE);
  CHECK_INT(ws_backplane_close(bp), 1);
  ws_script_free(p);
  settle();
#endif
}

void test_backplane(void) {
  uv_loop_init(&uv);
  L = ws_loop_new(&uv, &events, NULL);
  ws_server_options_t so;
  ws_server_options_default(&so);
  S = ws_script_server(L, &so, NULL);

  test_hooks();
  test_without_redis();

  ws_server_close(S, NULL);
  settle();
  CHECK_INT(ws_loop_active_handles(L), 0);
  CHECK_INT(ws_loop_free(L), 0);
  CHECK_INT(uv_loop_close(&uv), 0);
}
