/* Differences between Lua 5.1/LuaJIT and 5.2-5.4 that the binding touches. */
#ifndef LUAWS_COMPAT_H
#define LUAWS_COMPAT_H

#include <lua.h>
#include <lauxlib.h>

#if LUA_VERSION_NUM == 501 && !defined(LUA_LJDIR)   /* PUC Lua 5.1 (LuaJIT has it) */
static inline void *ws_lua_testudata(lua_State *L, int i, const char *tname) {
  void *p = lua_touserdata(L, i);
  if (!p || !lua_getmetatable(L, i)) return NULL;
  luaL_getmetatable(L, tname);
  int same = lua_rawequal(L, -1, -2);
  lua_pop(L, 2);
  return same ? p : NULL;
}
#define luaL_testudata ws_lua_testudata
#endif

#if LUA_VERSION_NUM == 501
#define ws_lua_setuv(L, i) lua_setfenv(L, (i))
#define ws_lua_getuv(L, i) lua_getfenv(L, (i))
#define ws_lua_rawlen(L, i) lua_objlen(L, (i))
static inline void ws_lua_setfuncs(lua_State *L, const luaL_Reg *l, int nup) {
  for (; l->name; l++) {
    for (int i = 0; i < nup; i++) lua_pushvalue(L, -nup);
    lua_pushcclosure(L, l->func, nup);
    lua_setfield(L, -(nup + 2), l->name);
  }
  lua_pop(L, nup);
}
#else
#define ws_lua_setuv(L, i) lua_setuservalue(L, (i))
#define ws_lua_getuv(L, i) lua_getuservalue(L, (i))
#define ws_lua_rawlen(L, i) lua_rawlen(L, (i))
#define ws_lua_setfuncs luaL_setfuncs
#endif

#endif
