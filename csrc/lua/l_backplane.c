/* The Redis backplane for Lua (csrc/io/backplane.c): core.backplane{...} makes it; its
 * events call bp.onconnect / ondisconnect / onerror; bp:close() ends it. */
#include <stdio.h>
#include <string.h>
#include "binding.h"

static l_box_t *check_bp(lua_State *L) { return luaL_checkudata(L, 1, L_BACKPLANE_MT); }

/* Pushes the box of bp and its handler `name`; returns 1 if that is a function (the box
 * below it), else 0 with the box alone pushed. */
static int push_handler(lua_State *L, ws_backplane_t *bp, const char *name) {
  l_push_ref(L, (int)(intptr_t)ws_backplane_data(bp));
  ws_lua_getuv(L, -1);
  lua_getfield(L, -1, name);
  lua_remove(L, -2);
  if (lua_isfunction(L, -1)) return 1;
  lua_pop(L, 1);
  return 0;
}

/* {type = type, target = box}, for the handler at the top with the box below it. */
static void push_event(lua_State *L, const char *type) {
  lua_createtable(L, 0, 4);
  lua_pushstring(L, type);
  lua_setfield(L, -2, "type");
  lua_pushvalue(L, -3);
  lua_setfield(L, -2, "target");
}

static void ev_simple(ws_backplane_t *bp, const char *name, const char *type) {
  lua_State *L = l_ctx_of(ws_backplane_loop(bp))->L;
  int top = lua_gettop(L);
  if (push_handler(L, bp, name)) {
    push_event(L, type);
    l_dispatch(L, 1, top + 1);
  }
  lua_settop(L, top);
}

static void ev_connect(ws_backplane_t *bp) { ev_simple(bp, "onconnect", "connect"); }
static void ev_disconnect(ws_backplane_t *bp) { ev_simple(bp, "ondisconnect", "disconnect"); }

/* bp.onerror{message, name, sockets, topic}, with sockets and topic (or nils) at the
 * top of the stack. An error with no onerror to hear it still goes somewhere: stderr. */
static void report(lua_State *L, ws_backplane_t *bp, const char *name, const char *message) {
  int top = lua_gettop(L);
  if (push_handler(L, bp, "onerror")) {
    push_event(L, "error");
    lua_pushstring(L, message);
    lua_setfield(L, -2, "message");
    lua_pushstring(L, name);
    lua_setfield(L, -2, "name");
    lua_pushvalue(L, top - 1);   /* the sockets that missed a message, or nil */
    lua_setfield(L, -2, "sockets");
    lua_pushvalue(L, top);       /* and their topic */
    lua_setfield(L, -2, "topic");
    l_dispatch(L, 1, top + 1);
  } else {
    fprintf(stderr, "luaws: backplane: %s\n", message);
    fflush(stderr);
  }
  lua_settop(L, top);
}

static void ev_error(ws_backplane_t *bp, const char *message) {
  lua_State *L = l_ctx_of(ws_backplane_loop(bp))->L;
  lua_pushnil(L);
  lua_pushnil(L);
  report(L, bp, "EBACKPLANE", message);
  lua_pop(L, 2);
}

static void ev_missed(ws_backplane_t *bp, const char *topic, size_t tlen, ws_conn_t **conns,
                      size_t n) {
  lua_State *L = l_ctx_of(ws_backplane_loop(bp))->L;
  lua_createtable(L, (int)n, 0);
  int k = 0;
  for (size_t i = 0; i < n; i++) {
    int ref = (int)(intptr_t)ws_conn_data(conns[i]);
    if (!ref) continue;   /* (every open socket has its box) */
    l_push_ref(L, ref);
    lua_rawseti(L, -2, ++k);
  }
  lua_pushlstring(L, topic, tlen);
  char msg[160];
  snprintf(msg, sizeof msg,
           "EBACKPRESSURE: %zu subscriber(s) of a topic did not take a message published in "
           "another process", n);
  report(L, bp, "EBACKPRESSURE", msg);
  lua_pop(L, 2);
}

static const ws_backplane_events_t events = {
  ev_connect, ev_disconnect, ev_error, ev_missed,
};

static const char *opt_string(lua_State *L, int t, const char *name, size_t *len) {
  lua_getfield(L, t, name);
  const char *s = lua_isnil(L, -1) ? NULL : luaL_checklstring(L, -1, len);
  lua_pop(L, 1);   /* (the table keeps the string alive) */
  return s;
}

/* core.backplane{ host, port, username, password, db, prefix, max_queue, max_queue_bytes,
 * reconnect_min_ms, reconnect_max_ms, connect_timeout_ms }: the Lua layer checked them.
 * The backplane, or nil and why it cannot be made (the Lua layer raises it). */
int l_backplane(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  ws_loop_t *l = l_loop(L);
  ws_backplane_options_t o;
  ws_backplane_options_default(&o);
  const uint64_t ms = WS_TIMEOUT_MAX, big = (uint64_t)1 << 53;
  size_t n;
  const char *s;
  if ((s = opt_string(L, 1, "host", &n))) o.host = s;
  o.port = (int)l_opt_u64(L, 1, "port", (uint64_t)o.port, 65535);
  o.username = opt_string(L, 1, "username", &n);
  o.password = opt_string(L, 1, "password", &n);
  o.db = (int)l_opt_u64(L, 1, "db", 0, 1u << 30);
  if ((s = opt_string(L, 1, "prefix", &n))) o.prefix = s, o.prefix_len = n;
  o.max_queue = (size_t)l_opt_u64(L, 1, "max_queue", o.max_queue, big);
  o.max_queue_bytes = (size_t)l_opt_u64(L, 1, "max_queue_bytes", o.max_queue_bytes, big);
  o.reconnect_min_ms = (uint32_t)l_opt_u64(L, 1, "reconnect_min_ms", o.reconnect_min_ms, ms);
  o.reconnect_max_ms = (uint32_t)l_opt_u64(L, 1, "reconnect_max_ms", o.reconnect_max_ms, ms);
  o.connect_timeout_ms =
      (uint32_t)l_opt_u64(L, 1, "connect_timeout_ms", o.connect_timeout_ms, ms);
  if (ws_loop_backplane(l)) {   /* misuse: the Lua layer raises, where it was called */
    lua_pushnil(L);
    lua_pushliteral(L, "a backplane is open already in this Lua state (close it first)");
    return 2;
  }
  l_box_t *b = l_box_new(L, L_BACKPLANE_MT, NULL);
  lua_pushvalue(L, -1);
  b->ref = luaL_ref(L, LUA_REGISTRYINDEX);   /* anchored while open: its handlers live */
  ws_backplane_t *bp;
  int r = ws_backplane_open(l, &o, &events, (void *)(intptr_t)b->ref, &bp);
  if (r) {
    luaL_unref(L, LUA_REGISTRYINDEX, b->ref);
    b->ref = LUA_NOREF;
    lua_pushnil(L);
    if (r == WS_ENOTSUPPORTED)
      lua_pushliteral(L, "luaws was built without hiredis: WebSocket.backplane is not available");
    else if (r == WS_EINVAL)
      lua_pushliteral(L, "invalid backplane options");
    else
      return l_fail(L, r);
    return 2;
  }
  b->p = bp;
  return 1;
}

/* bp:close(): the number of publishes dropped unsent (0 when all had reached Redis). */
static int l_backplane_close(lua_State *L) {
  l_box_t *b = check_bp(L);
  size_t dropped = 0;
  if (b->p) {
    dropped = ws_backplane_close(b->p);
    b->p = NULL;
    luaL_unref(L, LUA_REGISTRYINDEX, b->ref);
    b->ref = LUA_NOREF;
  }
  lua_pushinteger(L, (lua_Integer)dropped);
  return 1;
}

/* Only at lua_close (it is anchored while open); the context's own finalizer may have
 * closed it already, with the loop. */
static int l_backplane_gc(lua_State *L) {
  l_box_t *b = check_bp(L);
  l_ctx_t *x = l_ctx(L);
  if (b->p && x->loop && ws_loop_backplane(x->loop) == b->p) ws_backplane_close(b->p);
  b->p = NULL;
  return 0;
}

/* Live fields: connected, queued, queued_bytes, channels, reconnects. */
static int l_backplane_index(lua_State *L) {
  l_box_t *b = check_bp(L);
  lua_pushvalue(L, 2);
  lua_rawget(L, lua_upvalueindex(1));
  if (!lua_isnil(L, -1)) return 1;
  lua_pop(L, 1);
  const char *k = lua_tostring(L, 2);
  if (k && lua_type(L, 2) == LUA_TSTRING) {
    ws_backplane_stats_t st;
    memset(&st, 0, sizeof st);
    if (b->p) ws_backplane_stats(b->p, &st);
    if (strcmp(k, "connected") == 0) {
      lua_pushboolean(L, st.connected);
      return 1;
    }
    lua_Integer v = -1;
    if (strcmp(k, "queued") == 0) v = (lua_Integer)st.queued;
    else if (strcmp(k, "queued_bytes") == 0) v = (lua_Integer)st.queued_bytes;
    else if (strcmp(k, "channels") == 0) v = (lua_Integer)st.channels;
    else if (strcmp(k, "reconnects") == 0) v = (lua_Integer)st.reconnects;
    if (v >= 0) {
      lua_pushinteger(L, v);
      return 1;
    }
  }
  ws_lua_getuv(L, 1);
  lua_pushvalue(L, 2);
  lua_rawget(L, -2);
  return 1;
}

int l_backplane_full(lua_State *L, ws_backplane_t *bp) {
  ws_backplane_stats_t st;
  ws_backplane_stats(bp, &st);
  lua_pushnil(L);
  lua_pushfstring(L,
                  "EBACKPLANE: the queue to Redis is full: %d publishes (%d bytes) not yet "
                  "acknowledged (max_queue %d, max_queue_bytes %d)%s",
                  (int)st.queued, (int)st.queued_bytes, (int)st.max_queue,
                  (int)(st.max_queue_bytes > 0x7fffffff ? 0x7fffffff : st.max_queue_bytes),
                  st.connected ? "" : "; Redis is not connected");
  lua_pushstring(L, "EBACKPLANE");
  return 3;
}

static const luaL_Reg backplane_methods[] = {
  {"close", l_backplane_close},
  {NULL, NULL}
};

void l_backplane_open(lua_State *L) {
  luaL_newmetatable(L, L_BACKPLANE_MT);
  lua_newtable(L);
  ws_lua_setfuncs(L, backplane_methods, 0);
  lua_pushcclosure(L, l_backplane_index, 1);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, l_uservalue_newindex);
  lua_setfield(L, -2, "__newindex");
  lua_pushcfunction(L, l_backplane_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
}
