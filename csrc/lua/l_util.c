/* Helpers the binding files share. */
#include "binding.h"

static char lower(char ch) { return (ch >= 'A' && ch <= 'Z') ? (char)(ch + 32) : ch; }

static void push_lower(lua_State *L, const char *s, size_t len) {
  char small[128];
  if (len <= sizeof small) {
    for (size_t i = 0; i < len; i++) small[i] = lower(s[i]);
    lua_pushlstring(L, small, len);
    return;
  }
  luaL_Buffer b;   /* a long name: rare, and Lua 5.1 has no sized buffers */
  luaL_buffinit(L, &b);
  for (size_t i = 0; i < len; i++) luaL_addchar(&b, lower(s[i]));
  luaL_pushresult(&b);
}

/* Pushes a head's headers as a table: names lower-cased, repeated headers joined with
 * ", " (as Node does). */
void l_push_headers(lua_State *L, const ws_http_head_t *h) {
  lua_createtable(L, 0, (int)h->num_headers);
  for (size_t i = 0; i < h->num_headers; i++) {
    const ws_header_t *hd = &h->headers[i];
    push_lower(L, hd->name, hd->name_len);
    lua_pushvalue(L, -1);
    lua_rawget(L, -3);
    if (lua_isstring(L, -1)) {
      lua_pushliteral(L, ", ");
      lua_pushlstring(L, hd->value, hd->value_len);
      lua_concat(L, 3);
    } else {
      lua_pop(L, 1);
      lua_pushlstring(L, hd->value, hd->value_len);
    }
    lua_rawset(L, -3);
  }
}

/* A userdata type's metatable, mt: its __index is the methods or, given index, that
 * function with the methods as its upvalue, and fields set on it go to the uservalue. */
void l_class_open(lua_State *L, const char *mt, const luaL_Reg *methods, lua_CFunction index) {
  luaL_newmetatable(L, mt);
  lua_newtable(L);
  ws_lua_setfuncs(L, methods, 0);
  if (index) {
    lua_pushcclosure(L, index, 1);
    lua_pushcfunction(L, l_uservalue_newindex);
    lua_setfield(L, -3, "__newindex");
  }
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
}

/* In a handle's close callback: the box lets go of the C object and of its anchor (not
 * when the Lua state is gone already: x->L is NULL). */
void l_box_release(l_ctx_t *x, l_box_t *b) {
  if (!x->L || !b) return;
  b->p = NULL;
  luaL_unref(x->L, LUA_REGISTRYINDEX, b->ref);
  b->ref = LUA_NOREF;
}

/* __newindex of the userdata types: fields (handlers, url, ...) live in the uservalue. */
int l_uservalue_newindex(lua_State *L) {
  luaL_checktype(L, 1, LUA_TUSERDATA);
  ws_lua_getuv(L, 1);
  lua_pushvalue(L, 2);
  lua_pushvalue(L, 3);
  lua_rawset(L, -3);
  return 0;
}
