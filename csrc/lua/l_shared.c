/* Values many boxes hold alike (the one handler function a server gives every socket,
 * their common url), stored once per Lua state with a count, so that a box keeps an
 * index of 4 bytes instead of a table entry. */
#include "binding.h"

/* Pushes the table of values (t[i] = value, t[value] = i) and the table of counts. */
static void push_tables(l_ctx_t *x, lua_State *L) {
  l_push_ref(L, x->shared_ref);
  l_push_ref(L, x->shared_count_ref);
}

uint32_t l_shared_hold(l_ctx_t *x, lua_State *L, int idx) {
  int t = lua_gettop(L) + 1, n = t + 1;
  if (idx < 0) idx = t + idx;
  push_tables(x, L);
  lua_pushvalue(L, idx);
  lua_rawget(L, t);
  lua_Integer i = lua_tointeger(L, -1);   /* 0 when it is not held yet */
  lua_pop(L, 1);
  if (i) {
    lua_rawgeti(L, n, (int)i);
    lua_Integer count = lua_tointeger(L, -1);
    lua_pop(L, 1);
    lua_pushinteger(L, count + 1);
    lua_rawseti(L, n, (int)i);
  } else {
    lua_pushvalue(L, idx);
    i = luaL_ref(L, t);   /* reuses the indexes let go */
    lua_pushvalue(L, idx);
    lua_pushinteger(L, i);
    lua_rawset(L, t);
    lua_pushinteger(L, 1);
    lua_rawseti(L, n, (int)i);
  }
  lua_pop(L, 2);
  return (uint32_t)i;
}

void l_shared_drop(l_ctx_t *x, lua_State *L, uint32_t i) {
  if (!i) return;
  int t = lua_gettop(L) + 1, n = t + 1;
  push_tables(x, L);
  lua_rawgeti(L, n, (int)i);
  lua_Integer count = lua_tointeger(L, -1) - 1;
  lua_pop(L, 1);
  if (count > 0) {
    lua_pushinteger(L, count);
    lua_rawseti(L, n, (int)i);
  } else {
    lua_pushnil(L);
    lua_rawseti(L, n, (int)i);
    lua_rawgeti(L, t, (int)i);
    lua_pushnil(L);
    lua_rawset(L, t);
    luaL_unref(L, t, (int)i);
  }
  lua_pop(L, 2);
}

void l_shared_push(l_ctx_t *x, lua_State *L, uint32_t i) {
  if (!i) {
    lua_pushnil(L);
    return;
  }
  l_push_ref(L, x->shared_ref);
  lua_rawgeti(L, -1, (int)i);
  lua_replace(L, -2);   /* (less work than lua_remove's rotation) */
}

void l_shared_open(l_ctx_t *x, lua_State *L) {
  lua_newtable(L);
  x->shared_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_newtable(L);
  x->shared_count_ref = luaL_ref(L, LUA_REGISTRYINDEX);
}
