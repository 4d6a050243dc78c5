/* The socket userdata: a box holding a ws_conn_t*, anchored while the conn lives;
 * methods, live fields, and the I/O events turned into Lua handler calls. */
#include <string.h>
#include <lualib.h>   /* LUA_JITLIBNAME: LuaJIT */

#include "binding.h"

/* luaL_checkudata without its registry look-up by name on every method call: the
 * methods (and __index) have the socket metatable as upvalue 1. Anything that is not
 * plainly a socket, or a call from a function without that upvalue, takes the full
 * check, and its error. Two tables are the same when their pointers are, and comparing
 * those costs less than lua_rawequal's generic comparison (no upvalue: NULL). */
static l_box_t *check_box(lua_State *L) {
  l_box_t *b = lua_touserdata(L, 1);
  if (b && lua_getmetatable(L, 1)) {
    int same = lua_topointer(L, -1) == lua_topointer(L, lua_upvalueindex(1));
    lua_pop(L, 1);
    if (same) return b;
  }
  return luaL_checkudata(L, 1, L_CONN_MT);
}

l_box_t *l_conn_box(lua_State *L) { return check_box(L); }

/* The conn, or NULL once it is gone (closed and freed). */
static ws_conn_t *conn_of(lua_State *L) { return check_box(L)->p; }

static l_ctx_t *ctx_of(ws_conn_t *c) { return l_ctx_of(ws_conn_loop(c)); }

static l_box_t *box_of(ws_conn_t *c) {
  lua_State *L = ctx_of(c)->L;
  l_push_ref(L, (int)(intptr_t)ws_conn_data(c));
  return lua_touserdata(L, -1);
}

/* The key of each slot (L_SLOT_*), for the uservalue table a released box uses. */
static const int slot_keys[L_SLOT_COUNT] = {
  L_K_ONOPEN, L_K_ONMESSAGE, L_K_ONERROR, L_K_ONCLOSE, L_K_ONDATA, L_K_ONDRAIN, L_K_URL,
};

/* A new socket box, anchored, without a uservalue table: an idle socket whose handlers
 * and url other sockets share costs Lua this box and its anchor alone. */
static l_sock_t *sock_new(lua_State *L, ws_conn_t *c) {
  l_sock_t *s = lua_newuserdata(L, sizeof *s);
  memset(s, 0, sizeof *s);
  s->box.p = c;
  s->box.ref = LUA_NOREF;
  luaL_getmetatable(L, L_CONN_MT);
  lua_setmetatable(L, -2);
#if LUA_VERSION_NUM == 501
  l_push_ref(L, l_ctx(L)->empty_ref);
  ws_lua_setuv(L, -2);
#endif
  lua_pushvalue(L, -1);
  s->box.ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return s;
}

/* Does the socket at ud have its uservalue table? The box says so (l_sock_t.fields), so
 * that the events of a socket without one look nothing up. */
static int has_fields(lua_State *L, int ud) {
  return ((l_sock_t *)lua_touserdata(L, ud))->fields;
}

/* Pushes the socket's uservalue table, or nil when it has none yet. */
static void push_fields(lua_State *L, int ud) {
  if (has_fields(L, ud))
    ws_lua_getuv(L, ud);
  else
    lua_pushnil(L);
}

/* Pushes the socket's uservalue table and returns 1, or pushes nothing and returns 0
 * when it has none yet. */
static int push_own_fields(lua_State *L, int ud) {
  if (!has_fields(L, ud)) return 0;
  ws_lua_getuv(L, ud);
  return 1;
}

/* Pushes the socket's uservalue table, made on first use. */
static void push_fields_made(lua_State *L, int ud) {
  if (push_own_fields(L, ud)) return;
  ((l_sock_t *)lua_touserdata(L, ud))->fields = 1;
  lua_newtable(L);
  lua_pushvalue(L, -1);
  ws_lua_setuv(L, ud < 0 ? ud - 2 : ud);
}

/* Pushes a slot's value: from the shared values while the box holds it, else from the
 * uservalue table (a value that cannot be shared, or a box released). */
static void push_slot(l_ctx_t *x, lua_State *L, l_sock_t *s, int ud, int slot) {
  if (s->slot[slot]) {
    l_shared_push(x, L, s->slot[slot]);
  } else if (!s->fields) {
    lua_pushnil(L);
  } else {
    ws_lua_getuv(L, ud);
    l_push_key(x, L, slot_keys[slot]);
    lua_rawget(L, -2);
    lua_replace(L, -2);
  }
}

/* The box lets go of its conn and of its anchor; the slots' values move to the
 * uservalue table, where a closed socket keeps its fields. */
static void sock_release(l_ctx_t *x, lua_State *L, int ud) {
  l_sock_t *s = lua_touserdata(L, ud);
  for (int i = 0; i < L_SLOT_COUNT; i++) {
    if (!s->slot[i]) continue;
    push_fields_made(L, ud);
    l_push_key(x, L, slot_keys[i]);
    l_shared_push(x, L, s->slot[i]);
    lua_rawset(L, -3);
    lua_pop(L, 1);
    l_shared_drop(x, L, s->slot[i]);
    s->slot[i] = 0;
  }
  s->box.p = NULL;
  luaL_unref(L, LUA_REGISTRYINDEX, s->box.ref);
  s->box.ref = LUA_NOREF;
}

int l_conn_push_new(lua_State *L, ws_conn_t *c) {
  l_sock_t *s = sock_new(L, c);
  ws_conn_set_data(c, (void *)(intptr_t)s->box.ref);
  return 1;
}

void l_conn_options(lua_State *L, int t, ws_conn_options_t *o) {
  ws_conn_options_default(o);
  if (lua_isnoneornil(L, t)) return;
  luaL_checktype(L, t, LUA_TTABLE);
  const uint64_t ms = WS_TIMEOUT_MAX, bytes = (uint64_t)1 << 53;
  o->max_length = l_opt_u64(L, t, "maxLength", o->max_length, bytes);
  o->max_fragments = (uint32_t)l_opt_u64(L, t, "max_fragments", o->max_fragments, UINT32_MAX);
  o->ping_ms = (uint32_t)l_opt_u64(L, t, "ping_ms", o->ping_ms, ms);
  o->close_timeout_ms = (uint32_t)l_opt_u64(L, t, "close_timeout_ms", o->close_timeout_ms, ms);
  o->handshake_timeout_ms =
      (uint32_t)l_opt_u64(L, t, "handshake_timeout_ms", o->handshake_timeout_ms, ms);
  o->idle_timeout_ms = (uint32_t)l_opt_u64(L, t, "idle_timeout_ms", o->idle_timeout_ms, ms);
  o->pong_timeout_ms = (uint32_t)l_opt_u64(L, t, "pong_timeout_ms", o->pong_timeout_ms, ms);
  o->message_timeout_ms =
      (uint32_t)l_opt_u64(L, t, "message_timeout_ms", o->message_timeout_ms, ms);
  o->send_timeout_ms = (uint32_t)l_opt_u64(L, t, "send_timeout_ms", o->send_timeout_ms, ms);
  o->max_buffered = (size_t)l_opt_u64(L, t, "max_buffered", o->max_buffered, bytes);
  o->high_water = (size_t)l_opt_u64(L, t, "high_water", o->high_water, bytes);
  lua_getfield(L, t, "backpressure_error");
  o->backpressure_error = lua_toboolean(L, -1);
  lua_pop(L, 1);
  o->max_head = (size_t)l_opt_u64(L, t, "max_head", o->max_head, 1u << 20);
  o->max_headers = (uint16_t)l_opt_u64(L, t, "max_headers", o->max_headers, 256);
  o->max_subscriptions =
      (uint16_t)l_opt_u64(L, t, "max_subscriptions", o->max_subscriptions, UINT16_MAX);
  l_extension_options(L, t, o);
}

/* ---- events --------------------------------------------------------------- */

/* Calls ud's on<type> handler (none when handler < 0) and its listeners with the event
 * at index ev; pops everything above ud. uv: ud's uservalue (push_fields), tb: the traceback
 * (l_push_traceback). handler is an L_SLOT_*, type an L_K_* key. An error in a handler
 * closes the socket with 1011. The uservalue and listener tables are plain: raw access. */
static void emit_at(l_ctx_t *x, lua_State *L, int ud, int uv, int tb, int ev, int handler,
                    int type) {
  l_box_t *b = lua_touserdata(L, ud);
  int failed = 0;
  if (handler < 0)
    lua_pushnil(L);
  else
    push_slot(x, L, (l_sock_t *)b, ud, handler);
  if (lua_isfunction(L, -1)) {
    lua_pushvalue(L, ev);
    failed |= l_call(x, L, 1, tb, ud);
    push_fields(L, ud);   /* the handler may have made the uservalue table (a listener) */
    lua_replace(L, uv);
  } else {
    lua_pop(L, 1);
  }
  if (lua_istable(L, uv)) {
    l_push_key(x, L, L_K_LISTENERS);
    lua_rawget(L, uv);
  } else {
    lua_pushnil(L);
  }
  if (lua_istable(L, -1)) {
    l_push_key(x, L, type);
    lua_rawget(L, -2);
    if (lua_istable(L, -1)) {
      /* Call a snapshot: listeners added or removed by a listener wait for next time. */
      int list = lua_gettop(L), n = (int)ws_lua_rawlen(L, list);
      luaL_checkstack(L, n + 2, "too many listeners");
      for (int i = 1; i <= n; i++) lua_rawgeti(L, list, i);
      for (int i = 0; i < n; i++) {
        lua_pushvalue(L, list + 1 + i);
        lua_pushvalue(L, ev);
        failed |= l_call(x, L, 1, tb, ud);
      }
      lua_pop(L, n);
    }
  }
  lua_settop(L, ud);
  if (failed && b->p && type != L_K_CLOSE) ws_conn_handler_failed(b->p);
}

/* emit_at for the event at the top, above ud: stack ..., ud, event. */
static void emit(l_ctx_t *x, lua_State *L, int handler, int type) {
  int ud = lua_gettop(L) - 1;
  l_push_traceback(x, L);
  push_fields(L, ud);
  emit_at(x, L, ud, ud + 3, ud + 2, ud + 1, handler, type);
}

/* Pushes a new event table {type=..., target=ud}; ud at index ud, type an L_K_* key. */
static void new_event(l_ctx_t *x, lua_State *L, int ud, int type, int extra) {
  lua_createtable(L, 0, 2 + extra);
  l_push_key(x, L, L_K_TYPE);
  l_push_key(x, L, type);
  lua_rawset(L, -3);
  l_push_key(x, L, L_K_TARGET);
  lua_pushvalue(L, ud);
  lua_rawset(L, -3);
}

/* Does the socket s at ud have a handler (an L_SLOT_*) or listeners for events of type
 * (an L_K_* key)? An event nobody listens to is not made. A slot says so without a
 * look-up; a socket without a uservalue table has nothing else. */
static int listened(l_ctx_t *x, lua_State *L, l_sock_t *s, int ud, int handler, int type) {
  if (s->slot[handler]) return 1;
  if (!s->fields) return 0;
  ws_lua_getuv(L, ud);
  int uv = lua_gettop(L), yes;
  l_push_key(x, L, slot_keys[handler]);
  lua_rawget(L, uv);
  yes = !lua_isnil(L, -1);
  if (!yes) {
    l_push_key(x, L, L_K_LISTENERS);
    lua_rawget(L, uv);
    if (lua_istable(L, -1)) {
      l_push_key(x, L, type);
      lua_rawget(L, -2);
      yes = lua_istable(L, -1) && ws_lua_rawlen(L, -1) > 0;
    }
  }
  lua_settop(L, uv - 1);
  return yes;
}

static void ev_open(ws_conn_t *c, const ws_http_head_t *head) {
  l_ctx_t *x = ctx_of(c);
  lua_State *L = x->L;
  l_box_t *b = box_of(c);
  int ud = lua_gettop(L);
  if (b->kind == L_KIND_REQUEST) b->kind = L_KIND_SOCKET;
  if (head) {   /* client: the server's answer, as faye's statusCode and headers */
    push_fields_made(L, ud);
    lua_pushinteger(L, head->status);
    lua_setfield(L, -2, "statusCode");
    l_push_headers(L, head);
    lua_setfield(L, -2, "headers");
    lua_pop(L, 1);
  }
  if (listened(x, L, (l_sock_t *)b, ud, L_SLOT_ONOPEN, L_K_OPEN)) {
    new_event(x, L, ud, L_K_OPEN, 0);
    emit(x, L, L_SLOT_ONOPEN, L_K_OPEN);
  }
  lua_pop(L, 1);
}

/* The message event for a socket whose onmessage handler is a function in its slot,
 * made in Lua: a table constructor costs less than the same table built through the C
 * API, a push and a lua_rawset per field, and LuaJIT compiles it. It returns the event,
 * for the listeners the handler may have added. */
static const char message_event_code[] =
    "return function(handler, target, data, binary)\n"
    "  local event = {type = 'message', target = target, data = data, binary = binary}\n"
    "  handler(event)\n"
    "  return event\n"
    "end\n";

void l_conn_ctx_open(l_ctx_t *x, lua_State *L) {
  if (luaL_loadbuffer(L, message_event_code, sizeof message_event_code - 1,
                      "=luaws message event") != 0)
    lua_error(L);
  lua_call(L, 0, 1);
  x->message_ref = luaL_ref(L, LUA_REGISTRYINDEX);
}

/* A message: ondata(data, binary, ws) first, when set (no event object is made for it,
 * the cheapest way in); then, if anyone listens for them, the message event: made by
 * message_event_code when onmessage is its only taker, else here for the handler and
 * the listeners. The uservalue and the traceback are pushed once for all. */
static void ev_message(ws_conn_t *c, int binary, const char *data, size_t len) {
  l_ctx_t *x = ctx_of(c);
  lua_State *L = x->L;
  l_box_t *b = box_of(c);
  l_sock_t *s = (l_sock_t *)b;
  int ud = lua_gettop(L), uv = ud + 1, tb = ud + 2;
  push_fields(L, ud);
  l_push_traceback(x, L);
  push_slot(x, L, s, ud, L_SLOT_ONDATA);
  if (lua_isfunction(L, -1)) {
    lua_pushlstring(L, data, len);
    lua_pushboolean(L, binary);
    lua_pushvalue(L, ud);
    if (l_call(x, L, 3, tb, ud) && b->p) ws_conn_handler_failed(b->p);
    if (!b->p || !listened(x, L, s, ud, L_SLOT_ONMESSAGE, L_K_MESSAGE)) {
      lua_settop(L, ud - 1);
      return;
    }
    push_fields(L, ud);   /* ondata may have made the uservalue table (a listener) */
    lua_replace(L, uv);
  } else {
    lua_pop(L, 1);
  }
  if (s->slot[L_SLOT_ONMESSAGE] && !s->fields) {   /* no listeners yet */
    l_push_ref(L, x->message_ref);
    l_shared_push(x, L, s->slot[L_SLOT_ONMESSAGE]);
    if (!lua_isfunction(L, -1)) {
      lua_settop(L, ud - 1);
      return;
    }
    lua_pushvalue(L, ud);
    lua_pushlstring(L, data, len);   /* the one copy of the payload */
    lua_pushboolean(L, binary);
    if (l_calln(x, L, 4, 1, tb, ud)) {
      if (b->p) ws_conn_handler_failed(b->p);
    } else if (s->fields) {   /* the handler may have added listeners */
      push_fields(L, ud);
      lua_replace(L, uv);
      emit_at(x, L, ud, uv, tb, tb + 1, -1, L_K_MESSAGE);
    }
    lua_settop(L, ud - 1);
    return;
  }
  new_event(x, L, ud, L_K_MESSAGE, 2);
  l_push_key(x, L, L_K_DATA);
  lua_pushlstring(L, data, len);   /* the one copy of the payload */
  lua_rawset(L, -3);
  l_push_key(x, L, L_K_BINARY);
  lua_pushboolean(L, binary);
  lua_rawset(L, -3);
  emit_at(x, L, ud, uv, tb, tb + 1, L_SLOT_ONMESSAGE, L_K_MESSAGE);
  lua_settop(L, ud - 1);
}

/* Calls the Lua hook `name`(ws, data [, flag]) for c (flag < 0: none); a hook that
 * raises counts as the conn's handler failing. */
static void hook_data(ws_conn_t *c, const char *name, const char *data, size_t len, int flag) {
  l_ctx_t *x = ctx_of(c);
  lua_State *L = x->L;
  box_of(c);
  int ud = lua_gettop(L);
  l_push_hook(x, L, name);
  if (lua_isfunction(L, -1)) {
    lua_pushvalue(L, ud);
    lua_pushlstring(L, data, len);
    if (flag >= 0) lua_pushboolean(L, flag);
    if (l_dispatch(L, flag >= 0 ? 3 : 2, ud) != 0) ws_conn_handler_failed(c);
  } else {
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}

static void ev_pong(ws_conn_t *c, const char *data, size_t len) {
  hook_data(c, "_onpong", data, len, -1);
}

/* A client whose handshake failed on the server's answer: statusCode tells its status,
 * as faye's driver sets it before it checks the answer. */
static void note_status(lua_State *L, int ud, ws_conn_t *c) {
  int status = ws_conn_response_status(c);
  if (!status) return;
  push_fields_made(L, ud);
  lua_pushinteger(L, status);
  lua_setfield(L, -2, "statusCode");
  lua_pop(L, 1);
}

static void ev_error(ws_conn_t *c, int err, const char *message) {
  l_ctx_t *x = ctx_of(c);
  lua_State *L = x->L;
  l_box_t *b = box_of(c);
  int ud = lua_gettop(L);
  note_status(L, ud, c);
  if (!listened(x, L, (l_sock_t *)b, ud, L_SLOT_ONERROR, L_K_ERROR)) {
    lua_pop(L, 1);
    return;
  }
  const char *name = ws_err_name(err);
  new_event(x, L, ud, L_K_ERROR, 2);
  l_push_key(x, L, L_K_MESSAGE_F);
  lua_pushstring(L, message);
  lua_rawset(L, -3);
  l_push_key(x, L, L_K_NAME);   /* EPROTOCOL, ETIMEDOUT, EBACKPRESSURE, ECONNREFUSED, ... */
  lua_pushstring(L, name ? name : uv_err_name(err));
  lua_rawset(L, -3);
  emit(x, L, L_SLOT_ONERROR, L_K_ERROR);
  lua_pop(L, 1);
}

/* A plain HTTP request's events go to the Lua server module's hook, with the conn. */
static void request_hook(l_ctx_t *x, lua_State *L, const char *name, int ud) {
  l_push_hook(x, L, name);
  if (lua_isfunction(L, -1)) {
    lua_pushvalue(L, ud);
    l_dispatch(L, 1, ud);
  } else {
    lua_pop(L, 1);
  }
}

static void ev_drain(ws_conn_t *c) {
  l_ctx_t *x = ctx_of(c);
  lua_State *L = x->L;
  l_box_t *b = box_of(c);
  int ud = lua_gettop(L);
  if (b->kind == L_KIND_REQUEST) {   /* a plain HTTP response (res) */
    request_hook(x, L, "_onrequestdrain", ud);
  } else if (listened(x, L, (l_sock_t *)b, ud, L_SLOT_ONDRAIN, L_K_DRAIN)) {
    new_event(x, L, ud, L_K_DRAIN, 0);
    emit(x, L, L_SLOT_ONDRAIN, L_K_DRAIN);
  }
  lua_pop(L, 1);
}

static void ev_close(ws_conn_t *c, unsigned code, const char *reason, size_t rlen, int clean) {
  l_ctx_t *x = ctx_of(c);
  lua_State *L = x->L;
  l_box_t *b = box_of(c);
  int ud = lua_gettop(L);
  if (b->kind == L_KIND_REQUEST) {   /* a plain HTTP exchange ended (res, EventSource) */
    request_hook(x, L, "_onrequestclose", ud);
  } else if (listened(x, L, (l_sock_t *)b, ud, L_SLOT_ONCLOSE, L_K_CLOSE)) {
    new_event(x, L, ud, L_K_CLOSE, 3);
    l_push_key(x, L, L_K_CODE);
    lua_pushinteger(L, code);
    lua_rawset(L, -3);
    l_push_key(x, L, L_K_REASON);
    lua_pushlstring(L, reason, rlen);
    lua_rawset(L, -3);
    l_push_key(x, L, L_K_WASCLEAN);
    lua_pushboolean(L, clean);
    lua_rawset(L, -3);
    emit(x, L, L_SLOT_ONCLOSE, L_K_CLOSE);
  }
  lua_pop(L, 1);
}

static void ev_raw(ws_conn_t *c, const char *data, size_t len) {
  if (!len) return;   /* EOF: the close event follows */
  l_ctx_t *x = ctx_of(c);
  lua_State *L = x->L;
  box_of(c);
  int ud = lua_gettop(L);
  new_event(x, L, ud, L_K_DATA_EV, 1);
  l_push_key(x, L, L_K_DATA);
  lua_pushlstring(L, data, len);
  lua_rawset(L, -3);
  emit(x, L, L_SLOT_ONDATA, L_K_DATA_EV);
  lua_pop(L, 1);
}

static void ev_free(ws_conn_t *c) {
  l_ctx_t *x = ctx_of(c);
  lua_State *L = x->L;
  if (!ws_conn_data(c)) return;   /* never reached Lua */
  l_box_t *b = box_of(c);
  if (b->kind == L_KIND_SOCKET) {   /* these stay readable after close, as in browsers */
    push_fields_made(L, -1);
    lua_pushstring(L, ws_conn_protocol(c));
    lua_setfield(L, -2, "protocol");
    lua_pushstring(L, ws_conn_extensions(c));
    lua_setfield(L, -2, "extensions");
    lua_pushstring(L, ws_conn_version(c));
    lua_setfield(L, -2, "version");
    lua_pop(L, 1);
  }
  sock_release(x, L, lua_gettop(L));
  lua_pop(L, 1);
}

void l_server_on_request(ws_server_t *s, ws_conn_t *c, const ws_http_head_t *head, int upgrade);

/* A keep-alive connection answered a request: that request's box lets go of the conn
 * (res is over: its onclose fires), and the next request gets a box of its own. */
static void ev_request_done(ws_conn_t *c) {
  l_ctx_t *x = ctx_of(c);
  lua_State *L = x->L;
  if (!ws_conn_data(c)) return;
  box_of(c);
  int ud = lua_gettop(L);
  request_hook(x, L, "_onrequestclose", ud);
  sock_release(x, L, ud);
  ws_conn_set_data(c, NULL);
  lua_pop(L, 1);
}

/* stream_bodies: a piece of the request's body, to the server module's hook. */
static void ev_request_body(ws_conn_t *c, const char *data, size_t len, int fin) {
  if (ws_conn_data(c)) hook_data(c, "_onrequestbody", data, len, fin);
}

const ws_io_events_t l_events = {
  l_server_on_request, ev_open, ev_message, ev_pong, ev_error, ev_close, ev_raw, ev_drain,
  ev_free, ev_request_done, ev_request_body,
};

/* ---- methods -------------------------------------------------------------- */

static int closed_result(lua_State *L) { return l_fail(L, WS_ECLOSED); }

int l_opt_binary(lua_State *L, int arg) {
  if (lua_type(L, arg) == LUA_TSTRING) {
    const char *kind = lua_tostring(L, arg);
    if (strcmp(kind, "binary") == 0) return 1;
    if (strcmp(kind, "text") != 0) luaL_argerror(L, arg, "expected \"binary\" or \"text\"");
    return 0;
  }
  return lua_toboolean(L, arg);
}

static int l_conn_send(lua_State *L) {
  ws_conn_t *c = conn_of(L);
  size_t len;
  const char *data = luaL_checklstring(L, 2, &len);
  int binary = l_opt_binary(L, 3);
  if (!c) return closed_result(L);
  if (!binary) {   /* a text frame must be UTF-8 or the peer fails us with 1007 */
    uint32_t st = WS_UTF8_ACCEPT;
    if (ws_utf8_validate(&st, (const uint8_t *)data, len) != 0 || st != WS_UTF8_ACCEPT)
      return luaL_argerror(L, 2, strncmp(ws_conn_version(c), "hixie", 5) == 0
                                     ? "text is not valid UTF-8 (the drafts carry text only)"
                                     : "text is not valid UTF-8 (send it as \"binary\")");
  }
  int r = ws_conn_send(c, binary ? WS_OP_BINARY : WS_OP_TEXT, data, len);
  if (r) return l_fail(L, r);
  lua_pushboolean(L, 1);
  return 1;
}

static int l_conn_ping_frame(lua_State *L) {
  ws_conn_t *c = conn_of(L);
  size_t len = 0;
  const char *data = luaL_optlstring(L, 2, "", &len);
  if (len > WS_MAX_CONTROL) return luaL_argerror(L, 2, "ping payload is over 125 bytes");
  if (!c) return closed_result(L);
  int r = ws_conn_send(c, WS_OP_PING, data, len);
  if (r) return l_fail(L, r);
  lua_pushboolean(L, 1);
  return 1;
}

static int l_conn_close(lua_State *L) {
  ws_conn_t *c = conn_of(L);
  lua_Integer code = 0;
  size_t rlen = 0;
  const char *reason = luaL_optlstring(L, 3, "", &rlen);
  if (!lua_isnoneornil(L, 2)) {
    code = luaL_checkinteger(L, 2);
    /* As browsers: 1000 or 3000-4999 from the application. */
    if (!ws_close_code_app_valid((unsigned)code))
      return luaL_argerror(L, 2, "close code must be 1000 or in 3000-4999");
  }
  if (rlen > 123) return luaL_argerror(L, 3, "close reason is over 123 bytes");
  uint32_t st = WS_UTF8_ACCEPT;
  if (ws_utf8_validate(&st, (const uint8_t *)reason, rlen) != 0 || st != WS_UTF8_ACCEPT)
    return luaL_argerror(L, 3, "close reason is not valid UTF-8");
  if (rlen && !code) code = 1000;
  if (c) ws_conn_close(c, (unsigned)code, reason, rlen);
  lua_pushboolean(L, 1);
  return 1;
}

static int l_conn_terminate(lua_State *L) {
  ws_conn_t *c = conn_of(L);
  if (c) ws_conn_terminate(c);
  return 0;
}

static int l_conn_pause(lua_State *L) {
  ws_conn_t *c = conn_of(L);
  if (c) ws_conn_pause(c);
  return 0;
}

static int l_conn_resume(lua_State *L) {
  ws_conn_t *c = conn_of(L);
  if (c) ws_conn_resume(c);
  return 0;
}

static int l_conn_raw_write(lua_State *L) {
  ws_conn_t *c = conn_of(L);
  size_t len;
  const char *data = luaL_checklstring(L, 2, &len);
  if (!c) return closed_result(L);
  int r = ws_conn_write_raw(c, data, len);
  if (r) return l_fail(L, r);
  lua_pushboolean(L, 1);
  return 1;
}

static int l_conn_peer(lua_State *L) {
  ws_conn_t *c = conn_of(L);
  if (!c) return closed_result(L);
  char ip[64];
  int port = 0, r = ws_conn_peer(c, ip, sizeof ip, &port);
  if (r) return l_fail(L, r);
  lua_pushstring(L, ip);
  lua_pushinteger(L, port);
  return 2;
}

/* Fields read live from C; the slots' from the shared values; everything else lives in
 * the uservalue table. */
static int l_conn_index(lua_State *L) {
  lua_pushvalue(L, 2);
  lua_rawget(L, lua_upvalueindex(2));   /* methods: each checks its own self */
  if (!lua_isnil(L, -1)) return 1;
  lua_pop(L, 1);
  l_box_t *b = check_box(L);
  lua_pushvalue(L, 2);
  lua_rawget(L, lua_upvalueindex(3));   /* slot names */
  int slot = (int)lua_tointeger(L, -1) - 1;
  lua_pop(L, 1);
  if (slot >= 0 && ((l_sock_t *)b)->slot[slot]) {
    l_shared_push(l_ctx(L), L, ((l_sock_t *)b)->slot[slot]);
    return 1;
  }
  ws_conn_t *c = b->p;
  /* (lua_tostring would turn a number key into a string in place) */
  const char *k = lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : NULL;
  if (k) {
    if (strcmp(k, "readyState") == 0) {
      lua_pushinteger(L, c ? ws_conn_ready_state(c) : WS_CLOSED);
      return 1;
    }
    if (strcmp(k, "bufferedAmount") == 0) {
      lua_pushinteger(L, c ? (lua_Integer)ws_conn_buffered(c) : 0);
      return 1;
    }
    if (c && strcmp(k, "protocol") == 0) {
      lua_pushstring(L, ws_conn_protocol(c));
      return 1;
    }
    if (c && strcmp(k, "version") == 0) {
      lua_pushstring(L, ws_conn_version(c));
      return 1;
    }
    if (c && strcmp(k, "extensions") == 0 && b->kind == L_KIND_SOCKET) {
      lua_pushstring(L, ws_conn_extensions(c));
      return 1;
    }
  }
  push_fields(L, 1);
  if (lua_istable(L, -1)) {
    lua_pushvalue(L, 2);
    lua_rawget(L, -2);
  } else {
    lua_pushnil(L);
  }
  if (lua_isnil(L, -1) && k && strcmp(k, "extensions") == 0 && b->kind == L_KIND_SOCKET)
    lua_pushliteral(L, "");   /* none negotiated; an extension sets its own */
  return 1;
}

static int l_conn_tostring(lua_State *L) {
  l_box_t *b = check_box(L);
  lua_pushfstring(L, "luaws.socket (%s)", b->p ? "open" : "closed");
  return 1;
}

/* A field set on a socket: a handler function or the url, into a slot while the conn
 * lives (the box's anchor keeps the count); anything else into the uservalue table. */
static int l_conn_newindex(lua_State *L) {
  l_sock_t *s = (l_sock_t *)check_box(L);
  l_ctx_t *x = l_ctx(L);
  lua_settop(L, 3);
  lua_pushvalue(L, 2);
  lua_rawget(L, lua_upvalueindex(2));   /* slot names */
  int slot = (int)lua_tointeger(L, -1) - 1;
  lua_pop(L, 1);
  int t = lua_type(L, 3);
  if (slot >= 0) {
    uint32_t old = s->slot[slot];
    s->slot[slot] = 0;
    if (s->box.p && (t == LUA_TFUNCTION || t == LUA_TSTRING)) {
      uint32_t i = l_shared_hold(x, L, 3);
      if (i <= UINT16_MAX) {
        s->slot[slot] = (uint16_t)i;
        lua_pushnil(L);   /* and none left in the uservalue table to show when unset */
        lua_replace(L, 3);
      } else {
        l_shared_drop(x, L, i);
      }
    }
    l_shared_drop(x, L, old);
  }
  if (lua_isnil(L, 3)) {
    if (!push_own_fields(L, 1)) return 0;   /* nothing to forget */
  } else {
    push_fields_made(L, 1);
  }
  lua_pushvalue(L, 2);
  lua_pushvalue(L, 3);
  lua_rawset(L, -3);
  return 0;
}

/* core.uservalue(ud): the fields table of a userdata (a socket's made on first use). */
int l_uservalue(lua_State *L) {
  luaL_checktype(L, 1, LUA_TUSERDATA);
  if (luaL_testudata(L, 1, L_CONN_MT))
    push_fields_made(L, 1);
  else
    ws_lua_getuv(L, 1);
  return 1;
}

static const luaL_Reg methods[] = {
  {"send", l_conn_send},
  {"_ping", l_conn_ping_frame},
  {"close", l_conn_close},
  {"terminate", l_conn_terminate},
  {"pause", l_conn_pause},
  {"resume", l_conn_resume},
  {"_raw_write", l_conn_raw_write},
  {"peer", l_conn_peer},
  {"subscribe", l_conn_subscribe},
  {"unsubscribe", l_conn_unsubscribe},
  {"is_subscribed", l_conn_is_subscribed},
  {"topics", l_conn_topics},
  {NULL, NULL}
};

#ifdef LUA_JITLIBNAME
/* LuaJIT: a Lua __index finds a method in the methods table itself and calls the C one
 * for the rest, since its calls into C cost more than a compiled table look-up (a method
 * call in an echo handler: 160 instructions fewer). Lua 5.x calls the C one directly: its
 * Lua call would cost 60 more. */
static const char index_code[] =
    "local methods, index = ...\n"
    "return function(ws, k)\n"
    "  local m = methods[k]\n"
    "  if m ~= nil then return m end\n"
    "  return index(ws, k)\n"
    "end\n";

/* Replaces the C __index function at the top with index_code's; the methods at m. */
static void push_index(lua_State *L, int m) {
  m = m < 0 ? lua_gettop(L) + m + 1 : m;
  if (luaL_loadbuffer(L, index_code, sizeof index_code - 1, "=luaws socket index") != 0)
    lua_error(L);
  lua_pushvalue(L, m);
  lua_pushvalue(L, -3);
  lua_call(L, 2, 1);
  lua_replace(L, -2);
}
#else
static void push_index(lua_State *L, int m) { (void)L, (void)m; }
#endif

void l_conn_open(lua_State *L) {
  luaL_newmetatable(L, L_CONN_MT);
  lua_newtable(L);
  lua_pushvalue(L, -2);
  ws_lua_setfuncs(L, methods, 1);   /* each with the metatable (check_box) */
  lua_pushvalue(L, -1);
  lua_setfield(L, -3, "__methods");
  lua_createtable(L, 0, L_SLOT_COUNT);   /* slot names: name -> slot + 1 */
  for (int i = 0; i < L_SLOT_COUNT; i++) {
    l_push_key(l_ctx(L), L, slot_keys[i]);
    lua_pushinteger(L, i + 1);
    lua_rawset(L, -3);
  }
  lua_pushvalue(L, -3);             /* __index: upvalues the metatable, the methods, the */
  lua_pushvalue(L, -3);             /* slot names */
  lua_pushvalue(L, -3);
  lua_pushcclosure(L, l_conn_index, 3);
  push_index(L, -3);
  lua_setfield(L, -4, "__index");
  lua_pushvalue(L, -3);             /* __newindex: the metatable, the slot names */
  lua_insert(L, -2);
  lua_pushcclosure(L, l_conn_newindex, 2);
  lua_setfield(L, -3, "__newindex");
  lua_pop(L, 1);                    /* the methods */
  lua_pushcfunction(L, l_conn_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);
}

/* core.connect{host=, port=, path=, host_header=, protocols=, headers=, raw=, options=,
 * tls=, servername=, proxy={host=, port=, tls=, servername=, user=, password=, headers=}} */
int l_connect(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_getfield(L, 1, "host");
  lua_getfield(L, 1, "port");
  lua_getfield(L, 1, "path");
  lua_getfield(L, 1, "host_header");
  lua_getfield(L, 1, "protocols");
  lua_getfield(L, 1, "headers");
  lua_getfield(L, 1, "raw");
  lua_getfield(L, 1, "options");
  lua_getfield(L, 1, "tls");
  lua_getfield(L, 1, "servername");
  lua_getfield(L, 1, "proxy");
  const char *host = luaL_checkstring(L, 2);
  int port = (int)luaL_checkinteger(L, 3);
  const char *path = luaL_optstring(L, 4, "/");
  const char *host_header = luaL_optstring(L, 5, host);
  const char *protocols = luaL_optstring(L, 6, NULL);
  const char *headers = luaL_optstring(L, 7, NULL);
  int raw = lua_toboolean(L, 8);
  ws_conn_options_t o;
  l_conn_options(L, 9, &o);
  ws_tls_ctx_t *tls = l_tls_opt(L, 10);
  const char *servername = luaL_optstring(L, 11, NULL);
  if (port < 1 || port > 65535) return luaL_error(L, "port out of range: %d", port);
  ws_proxy_options_t proxy, *via = NULL;
  if (!lua_isnil(L, 12)) {   /* { host, port, tls, servername, user, password, headers } */
    luaL_checktype(L, 12, LUA_TTABLE);
    memset(&proxy, 0, sizeof proxy);
    lua_getfield(L, 12, "host");
    lua_getfield(L, 12, "port");
    lua_getfield(L, 12, "tls");
    lua_getfield(L, 12, "servername");
    lua_getfield(L, 12, "user");
    lua_getfield(L, 12, "password");
    lua_getfield(L, 12, "headers");
    proxy.host = luaL_checkstring(L, 13);
    proxy.port = (int)luaL_checkinteger(L, 14);
    proxy.tls = l_tls_opt(L, 15);
    proxy.servername = luaL_optstring(L, 16, NULL);
    proxy.user = luaL_optstring(L, 17, NULL);
    proxy.password = luaL_optstring(L, 18, NULL);
    proxy.headers = luaL_optstring(L, 19, NULL);
    if (proxy.port < 1 || proxy.port > 65535)
      return luaL_error(L, "proxy port out of range: %d", proxy.port);
    via = &proxy;
  }
  l_box_t *b = &sock_new(L, NULL)->box;
  b->kind = raw ? L_KIND_RAW : L_KIND_SOCKET;
  ws_conn_t *c;
  int r = ws_conn_connect(l_loop(L), &c, host, port, path, host_header, protocols, headers, &o,
                          tls, servername, via, raw, (void *)(intptr_t)b->ref);
  if (r) {
    luaL_unref(L, LUA_REGISTRYINDEX, b->ref);
    b->ref = LUA_NOREF;
    return l_fail(L, r);
  }
  b->p = c;
  return 1;
}

/* core.accept(conn, protocol, extra_headers, options) */
int l_accept(lua_State *L) {
  l_box_t *b = check_box(L);
  const char *protocol = luaL_optstring(L, 2, NULL);
  const char *headers = luaL_optstring(L, 3, NULL);
  ws_conn_options_t o;
  l_conn_options(L, 4, &o);
  if (!b->p) return l_fail(L, WS_ECLOSED);   /* a deferred request's client went away */
  int r = ws_conn_accept(b->p, protocol, headers, &o);
  if (r == WS_EINVAL)
    return luaL_error(L, "this request is not an unanswered upgrade request "
                         "(accept it inside onupgrade)");
  if (r) return l_fail(L, r);
  b->kind = L_KIND_SOCKET;
  lua_settop(L, 1);
  return 1;
}

int l_broadcast(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  size_t len;
  const char *data = luaL_checklstring(L, 2, &len);
  int binary = lua_toboolean(L, 3);
  int n = (int)ws_lua_rawlen(L, 1);
  ws_conn_t *stackbuf[64];
  ws_conn_t **conns = n <= 64 ? stackbuf : lua_newuserdata(L, sizeof(ws_conn_t *) * (size_t)n);
  int k = 0;
  for (int i = 1; i <= n; i++) {
    lua_rawgeti(L, 1, i);
    l_box_t *b = luaL_testudata(L, -1, L_CONN_MT);
    if (b && b->p && ws_conn_ready_state(b->p) == WS_OPEN) conns[k++] = b->p;
    lua_pop(L, 1);
  }
  size_t sent = ws_loop_broadcast(l_loop(L), conns, (size_t)k, binary ? WS_OP_BINARY : WS_OP_TEXT,
                                  data, len);
  lua_pushinteger(L, (lua_Integer)sent);
  return 1;
}

int l_http_write(lua_State *L) {
  ws_conn_t *c = conn_of(L);
  size_t len;
  const char *data = luaL_checklstring(L, 2, &len);
  if (!c) return closed_result(L);
  int r = ws_conn_http_write(c, data, len);
  if (r) return l_fail(L, r);
  lua_pushboolean(L, 1);
  return 1;
}

/* core.http_end(conn, keep): the response is whole; keep: the connection may carry the
 * next request. */
int l_http_end(lua_State *L) {
  ws_conn_t *c = conn_of(L);
  if (c) ws_conn_http_end(c, lua_toboolean(L, 2));
  return 0;
}

/* core.http_keepable(conn): may the answer keep the connection for another request? */
int l_http_keepable(lua_State *L) {
  ws_conn_t *c = conn_of(L);
  lua_pushboolean(L, c && ws_conn_http_keepable(c));
  return 1;
}

/* core.defer(conn): inside onupgrade, keep the request for a later answer. */
int l_defer(lua_State *L) {
  ws_conn_t *c = conn_of(L);
  int r = c ? ws_conn_defer(c) : WS_ECLOSED;
  if (r == WS_EINVAL) return luaL_error(L, "defer: only an upgrade request, inside onupgrade");
  if (r) return l_fail(L, r);
  lua_pushboolean(L, 1);
  return 1;
}
