/* Extensions in socket options: the core options' `extensions` list (made and checked
 * by lua/luaws/deflate.lua and options.lua) turned into ws_conn_options_t entries. */
#include <string.h>
#include "binding.h"
#include "deflate.h"

static int int_field(lua_State *L, int t, const char *name, int def, int lo, int hi) {
  lua_getfield(L, t, name);
  int v = def;
  if (!lua_isnil(L, -1)) {
    lua_Number n = luaL_checknumber(L, -1);
    if (!(n >= lo && n <= hi && n == (lua_Number)(int)n))
      luaL_error(L, "permessage-deflate option %s out of range", name);
    v = (int)n;
  }
  lua_pop(L, 1);
  return v;
}

static int bool_field(lua_State *L, int t, const char *name) {
  lua_getfield(L, t, name);
  int v = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return v;
}

/* The configs live in userdata left on the stack: the caller's call to the core copies
 * them (ws__conn_set_extensions) before it returns. */
void l_extension_options(lua_State *L, int t, ws_conn_options_t *o) {
  o->num_extensions = 0;
  lua_getfield(L, t, "extensions");
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    return;
  }
  luaL_checktype(L, -1, LUA_TTABLE);
  int list = lua_gettop(L);
  int n = (int)ws_lua_rawlen(L, list);
  if (n > WS_MAX_EXTENSIONS) luaL_error(L, "at most %d extensions", WS_MAX_EXTENSIONS);
  for (int i = 1; i <= n; i++) {
    lua_rawgeti(L, list, i);
    int e = lua_gettop(L);
    luaL_checktype(L, e, LUA_TTABLE);
    lua_getfield(L, e, "name");
    const char *name = lua_tostring(L, -1);
    if (!name || strcmp(name, WS_DEFLATE_NAME) != 0)
      luaL_error(L, "unknown extension %s", name ? name : "(no name)");
    lua_pop(L, 1);
    ws_deflate_config_t *cfg = lua_newuserdata(L, sizeof *cfg);
    lua_insert(L, list);   /* below the list: it stays on the stack */
    list++, e++;
    ws_deflate_config_default(cfg);
    cfg->level = int_field(L, e, "level", cfg->level, -1, 9);
    cfg->mem_level = int_field(L, e, "mem_level", cfg->mem_level, 1, 9);
    cfg->strategy = int_field(L, e, "strategy", cfg->strategy, 0, 4);
    cfg->server_max_window_bits =
        int_field(L, e, "server_max_window_bits", cfg->server_max_window_bits, 8, 15);
    cfg->client_max_window_bits =
        int_field(L, e, "client_max_window_bits", cfg->client_max_window_bits, 0, 15);
    cfg->server_no_context_takeover = bool_field(L, e, "server_no_context_takeover");
    cfg->client_no_context_takeover = bool_field(L, e, "client_no_context_takeover");
    cfg->threshold = (size_t)l_opt_u64(L, e, "threshold", cfg->threshold, (uint64_t)1 << 53);
    if (ws_deflate_config_check(cfg) != 0) luaL_error(L, "permessage-deflate: bad configuration");
    o->extensions[o->num_extensions] = &ws_deflate_extension;
    o->extension_configs[o->num_extensions++] = cfg;
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}
