/* Topics for Lua (csrc/io/topics.c): ws:subscribe, unsubscribe, is_subscribed, topics;
 * WebSocket.publish and WebSocket.subscribers. */
#include "binding.h"

static const char *check_topic(lua_State *L, int arg, size_t *len) {
  const char *topic = luaL_checklstring(L, arg, len);
  if (*len > WS_TOPIC_MAX)
    luaL_argerror(L, arg, lua_pushfstring(L, "topic is over %d bytes", WS_TOPIC_MAX));
  return topic;
}

/* The socket at argument 1 (NULL once closed); raises for a request or a raw conn. */
static ws_conn_t *socket_of(lua_State *L) {
  l_box_t *b = l_conn_box(L);
  if (b->kind != L_KIND_SOCKET) luaL_argerror(L, 1, "not a WebSocket");
  return b->p;
}

/* ws:subscribe(topic): true, false if it was already; nil, msg, "ECLOSED" | "ELIMIT". */
int l_conn_subscribe(lua_State *L) {
  ws_conn_t *c = socket_of(L);
  size_t len;
  const char *topic = check_topic(L, 2, &len);
  int r = c ? ws_conn_subscribe(c, topic, len) : WS_ECLOSED;
  if (r < 0) return l_fail(L, r);
  lua_pushboolean(L, r);
  return 1;
}

/* ws:unsubscribe(topic): true if it was subscribed (and is no more), else false; and
 * ws:is_subscribed(topic). */
static int membership(lua_State *L, int leave) {
  ws_conn_t *c = socket_of(L);
  size_t len;
  const char *topic = check_topic(L, 2, &len);
  lua_pushboolean(L, c && (leave ? ws_conn_unsubscribe(c, topic, len)
                                 : ws_conn_is_subscribed(c, topic, len)));
  return 1;
}

int l_conn_unsubscribe(lua_State *L) { return membership(L, 1); }
int l_conn_is_subscribed(lua_State *L) { return membership(L, 0); }

/* ws:topics(): a list of its topics, in no particular order. */
int l_conn_topics(lua_State *L) {
  ws_conn_t *c = socket_of(L);
  size_t n = c ? ws_conn_subscriptions(c) : 0;
  lua_createtable(L, (int)n, 0);
  for (size_t i = 0; i < n; i++) {
    size_t len;
    const char *name = ws_conn_topic(c, i, &len);
    lua_pushlstring(L, name, len);
    lua_rawseti(L, -2, (int)i + 1);
  }
  return 1;
}

struct missed_list {
  lua_State *L;
  int n;   /* sockets in the table at the top (made at the first) */
};

static void on_missed(ws_conn_t *c, void *ud) {
  struct missed_list *m = ud;
  int ref = (int)(intptr_t)ws_conn_data(c);
  if (!ref) return;   /* (every open socket has its box) */
  if (m->n == 0) lua_newtable(m->L);
  l_push_ref(m->L, ref);
  lua_rawseti(m->L, -2, ++m->n);
}

/* WebSocket.publish(topic, data [, "binary"]): delivered, skipped, and the list of the
 * skipped sockets that stay open without the message (nil when none); with a backplane,
 * sent to Redis too, or nil, "EBACKPLANE: ...", "EBACKPLANE" when its queue is full. */
int l_publish(lua_State *L) {
  size_t tlen, len;
  const char *topic = check_topic(L, 1, &tlen);
  const char *data = luaL_checklstring(L, 2, &len);
  int binary = l_opt_binary(L, 3);
  if (!binary) {   /* checked once here rather than failed by each peer with 1007 */
    uint32_t st = WS_UTF8_ACCEPT;
    if (ws_utf8_validate(&st, (const uint8_t *)data, len) != 0 || st != WS_UTF8_ACCEPT)
      return luaL_argerror(L, 2, "text is not valid UTF-8 (publish it as \"binary\")");
  }
  lua_settop(L, 3);
  ws_loop_t *l = l_loop(L);
  int opcode = binary ? WS_OP_BINARY : WS_OP_TEXT;
  ws_backplane_t *bp = ws_loop_backplane(l);
  if (bp) {   /* to Redis first: refused there, it is delivered nowhere */
    int r = ws_backplane_publish(bp, topic, tlen, opcode, data, len);
    if (r == WS_EBACKPLANE) return l_backplane_full(L, bp);
    if (r) return l_fail(L, r);
  }
  struct missed_list m = {L, 0};
  ws_publish_t out;
  int r = ws_loop_publish(l, topic, tlen, opcode, data, len, &out, on_missed, &m);
  if (r) return l_fail(L, r);
  lua_pushinteger(L, (lua_Integer)out.delivered);
  lua_pushinteger(L, (lua_Integer)out.skipped);
  if (m.n) lua_pushvalue(L, 4);   /* the list, made by on_missed */
  else lua_pushnil(L);
  return 3;
}

/* WebSocket.subscribers(topic): how many sockets are subscribed to it. */
int l_subscribers(lua_State *L) {
  size_t len;
  const char *topic = check_topic(L, 1, &len);
  lua_pushinteger(L, (lua_Integer)ws_loop_subscribers(l_loop(L), topic, len));
  return 1;
}
