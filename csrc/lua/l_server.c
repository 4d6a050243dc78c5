/* The server userdata and the hand-off of requests to Lua. */
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>
#include "binding.h"

static l_box_t *check_server(lua_State *L) { return luaL_checkudata(L, 1, L_SERVER_MT); }

/* Pushes the request as a table: method, url, httpVersion, headers. */
static void push_request(lua_State *L, const ws_http_head_t *h) {
  lua_createtable(L, 0, 4);
  lua_pushlstring(L, h->method, h->method_len);
  lua_setfield(L, -2, "method");
  lua_pushlstring(L, h->target, h->target_len);
  lua_setfield(L, -2, "url");
  lua_pushfstring(L, "1.%d", h->minor_version);
  lua_setfield(L, -2, "httpVersion");
  l_push_headers(L, h);
  lua_setfield(L, -2, "headers");
}

void l_server_on_request(ws_server_t *s, ws_conn_t *c, const ws_http_head_t *head, int upgrade) {
  l_ctx_t *x = l_ctx_of(ws_server_loop(s));
  lua_State *L = x->L;
  int top = lua_gettop(L);
  l_push_ref(L, (int)(intptr_t)ws_server_data(s));
  int sv = lua_gettop(L);
  l_conn_push_new(L, c);
  int cv = lua_gettop(L);
  l_box_t *b = lua_touserdata(L, cv);
  b->kind = head ? L_KIND_REQUEST : L_KIND_RAW;
  l_push_hook(x, L, head ? "_onrequest" : "_onconnection");
  lua_pushvalue(L, sv);
  lua_pushvalue(L, cv);
  if (head) {
    push_request(L, head);
    if (!upgrade && !ws_conn_request_streaming(c)) {   /* the body, read whole ("" for none) */
      size_t n;
      const char *body = ws_conn_request_body(c, &n);
      lua_pushlstring(L, body ? body : "", n);
      lua_setfield(L, -2, "body");
    }
    l_tls_push_info(L, c);
    lua_pushboolean(L, upgrade);
  }
  if (l_dispatch(L, head ? 4 : 2, cv) != 0 && b->p) ws_conn_handler_failed(b->p);
  lua_settop(L, top);
}

static void on_server_closed(ws_server_t *s) {
  lua_State *L = l_ctx_of(ws_server_loop(s))->L;
  int ref = (int)(intptr_t)ws_server_data(s);
  l_push_ref(L, ref);
  l_box_t *b = lua_touserdata(L, -1);
  b->p = NULL;
  b->ref = LUA_NOREF;
  luaL_unref(L, LUA_REGISTRYINDEX, ref);
  ws_lua_getuv(L, -1);
  lua_getfield(L, -1, "onclose");
  if (lua_isfunction(L, -1)) {
    lua_pushvalue(L, -3);
    l_dispatch(L, 1, lua_gettop(L));
  } else {
    lua_pop(L, 1);
  }
  lua_pop(L, 2);
}

static int l_server_close(lua_State *L) {
  l_box_t *b = check_server(L);
  if (b->p) {
    ws_server_close(b->p, on_server_closed);
    b->p = NULL;   /* the anchor stays until the listener is closed */
  }
  return 0;
}

static int l_server_index(lua_State *L) {
  l_box_t *b = check_server(L);
  lua_pushvalue(L, 2);
  lua_rawget(L, lua_upvalueindex(1));
  if (!lua_isnil(L, -1)) return 1;
  lua_pop(L, 1);
  if (lua_type(L, 2) == LUA_TSTRING && strcmp(lua_tostring(L, 2), "port") == 0 && b->p) {
    lua_pushinteger(L, ws_server_port(b->p));
    return 1;
  }
  ws_lua_getuv(L, 1);
  lua_pushvalue(L, 2);
  lua_rawget(L, -2);
  return 1;
}

/* server:adopt(fd [, bytes]): take over a connected TCP socket another server accepted
 * (a luv handle's fileno(), say), with the bytes already read from it. luaws works on a
 * duplicate of fd: the caller closes its own handle as usual. */
static int l_server_adopt(lua_State *L) {
  l_box_t *b = check_server(L);
  lua_Integer fd = luaL_checkinteger(L, 2);
  size_t len = 0;
  const char *data = luaL_optlstring(L, 3, "", &len);
  if (!b->p) return l_fail(L, WS_ECLOSED);
  if (fd < 0 || fd > INT_MAX) return luaL_argerror(L, 2, "not a file descriptor");
  int mine = dup((int)fd);
  if (mine < 0) return l_fail(L, uv_translate_sys_error(errno));
  int r = ws_server_adopt(b->p, mine, data, len);
  if (r == WS_EINVAL) close(mine);
  if (r) return l_fail(L, r);
  lua_pushboolean(L, 1);
  return 1;
}

static const luaL_Reg server_methods[] = {
  {"close", l_server_close},
  {"adopt", l_server_adopt},
  {NULL, NULL}
};

void l_server_open(lua_State *L) {
  l_class_open(L, L_SERVER_MT, server_methods, l_server_index);
}

/* core.listen{host=, port=, max_head=, max_headers=, handshake_timeout_ms=, max_memory=,
 * backlog=, raw=, tls=} (tls: a server context from core.tls_context, kept alive by the server) */
int l_listen(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  ws_server_options_t o;
  ws_server_options_default(&o);
  lua_getfield(L, 1, "host");
  const char *host = luaL_optstring(L, -1, "127.0.0.1");
  lua_getfield(L, 1, "port");
  int port = (int)luaL_optinteger(L, -1, 0);
  if (port < 0 || port > 65535) return luaL_error(L, "port out of range: %d", port);
  o.max_head = (size_t)l_opt_u64(L, 1, "max_head", o.max_head, 1u << 20);
  o.max_headers = (uint16_t)l_opt_u64(L, 1, "max_headers", o.max_headers, 256);
  o.handshake_timeout_ms =
      (uint32_t)l_opt_u64(L, 1, "handshake_timeout_ms", o.handshake_timeout_ms, WS_TIMEOUT_MAX);
  o.max_memory = (size_t)l_opt_u64(L, 1, "max_memory", o.max_memory, (uint64_t)1 << 53);
  o.backlog = (int)l_opt_u64(L, 1, "backlog", (uint64_t)o.backlog, 65535);
  o.keepalive_timeout_ms = (uint32_t)l_opt_u64(L, 1, "keepalive_timeout_ms",
                                               o.keepalive_timeout_ms, WS_TIMEOUT_MAX);
  o.max_body = l_opt_u64(L, 1, "max_body", o.max_body, (uint64_t)1 << 53);
  lua_getfield(L, 1, "stream_bodies");
  o.stream_bodies = lua_toboolean(L, -1);
  lua_pop(L, 1);
  lua_getfield(L, 1, "raw");
  o.raw = lua_toboolean(L, -1);
  lua_getfield(L, 1, "reuseport");
  o.reuseport = lua_toboolean(L, -1);
  lua_getfield(L, 1, "drafts");
  o.drafts = lua_isnil(L, -1) || lua_toboolean(L, -1);
  lua_getfield(L, 1, "tls");
  int tls_idx = lua_gettop(L);
  ws_tls_ctx_t *tls = l_tls_opt(L, tls_idx);
  l_box_t *b = l_box_new(L, L_SERVER_MT, NULL);
  if (tls) {
    ws_lua_getuv(L, -1);
    lua_pushvalue(L, tls_idx);
    lua_setfield(L, -2, "tls_context");
    lua_pop(L, 1);
  }
  lua_pushvalue(L, -1);
  b->ref = luaL_ref(L, LUA_REGISTRYINDEX);
  ws_server_t *s;
  int r = ws_server_listen(l_loop(L), &s, host, port, &o, tls, (void *)(intptr_t)b->ref);
  if (r) {
    luaL_unref(L, LUA_REGISTRYINDEX, b->ref);
    b->ref = LUA_NOREF;
    return l_fail(L, r);
  }
  b->p = s;
  return 1;
}
