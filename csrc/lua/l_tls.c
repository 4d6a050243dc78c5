/* TLS contexts as Lua userdata, and a TLS connection's details for the request table. */
#include <string.h>
#include "binding.h"
#include "tls.h"

#define L_TLS_MT "luaws.tls_context"

typedef struct l_tls {
  ws_tls_ctx_t *ctx;
} l_tls_t;

static const char *opt_string(lua_State *L, int t, const char *name) {
  lua_getfield(L, t, name);
  int type = lua_type(L, -1);
  if (type != LUA_TNIL && type != LUA_TSTRING) luaL_error(L, "TLS option %s must be a string", name);
  const char *s = lua_tostring(L, -1);
  lua_pop(L, 1);   /* the table still holds the string, so s stays valid */
  return s;
}

/* core.tls_context{ server=, cert=, key=, cafile=, capath=, ciphers=, ciphersuites=,
 * verify= }: a context, or nil, message, "ETLS" when OpenSSL refuses the options (a
 * missing file, a bad key, an empty cipher list). verify defaults to true for a client,
 * false for a server. */
int l_tls_context(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  ws_tls_options_t o;
  memset(&o, 0, sizeof o);
  lua_getfield(L, 1, "server");
  int server = lua_toboolean(L, -1);
  lua_getfield(L, 1, "verify");
  o.verify = lua_isnil(L, -1) ? !server : lua_toboolean(L, -1);
  lua_pop(L, 2);
  o.cert = opt_string(L, 1, "cert");
  o.key = opt_string(L, 1, "key");
  o.cafile = opt_string(L, 1, "cafile");
  o.capath = opt_string(L, 1, "capath");
  o.ciphers = opt_string(L, 1, "ciphers");
  o.ciphersuites = opt_string(L, 1, "ciphersuites");
  l_tls_t *u = lua_newuserdata(L, sizeof *u);
  u->ctx = NULL;
  luaL_getmetatable(L, L_TLS_MT);
  lua_setmetatable(L, -2);
  char err[512];
  u->ctx = ws_tls_ctx_new(server, &o, err, sizeof err);
  if (!u->ctx) {
    lua_pushnil(L);
    lua_pushfstring(L, "ETLS: %s", err);
    lua_pushliteral(L, "ETLS");
    return 3;
  }
  return 1;
}

ws_tls_ctx_t *l_tls_opt(lua_State *L, int idx) {
  if (lua_isnoneornil(L, idx)) return NULL;
  l_tls_t *u = luaL_checkudata(L, idx, L_TLS_MT);
  if (!u->ctx) luaL_argerror(L, idx, "TLS context is freed");
  return u->ctx;
}

/* Connections hold their own reference to the OpenSSL context: freeing ours is safe
 * while they live. */
static int l_tls_gc(lua_State *L) {
  l_tls_t *u = luaL_checkudata(L, 1, L_TLS_MT);
  ws_tls_ctx_free(u->ctx);
  u->ctx = NULL;
  return 0;
}

void l_tls_open(lua_State *L) {
  luaL_newmetatable(L, L_TLS_MT);
  lua_pushcfunction(L, l_tls_gc);
  lua_setfield(L, -2, "__gc");
  lua_pushliteral(L, "luaws.tls_context");
  lua_setfield(L, -2, "__name");
  lua_pop(L, 1);
}

/* Sets field tls of the table at the top when c is a TLS connection: version, cipher,
 * alpn, verified, and the peer certificate's subject and issuer if it sent one. */
void l_tls_push_info(lua_State *L, ws_conn_t *c) {
  ws_tls_info_t info;
  if (ws_conn_tls_info(c, &info) != 0) return;
  lua_createtable(L, 0, 7);
  lua_pushstring(L, info.version);
  lua_setfield(L, -2, "version");
  lua_pushstring(L, info.cipher);
  lua_setfield(L, -2, "cipher");
  if (info.alpn[0]) {
    lua_pushstring(L, info.alpn);
    lua_setfield(L, -2, "alpn");
  }
  lua_pushboolean(L, info.verified);
  lua_setfield(L, -2, "verified");
  if (info.peer_cert) {
    lua_pushstring(L, info.subject);
    lua_setfield(L, -2, "subject");
    lua_pushstring(L, info.issuer);
    lua_setfield(L, -2, "issuer");
  }
  lua_setfield(L, -2, "tls");
}
