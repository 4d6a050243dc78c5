/* core.signal(sig, fn): a signal watched on the loop, for the luaws command's supervisor
 * (luaws serve). fn(signum) runs on the loop each time the process gets sig, until
 * watcher:close(). core.signals maps names (SIGTERM) to numbers; a signal argument is
 * either (l_signal_arg), here and in process:kill. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include "binding.h"

#define L_SIGNAL_MT "luaws.signal"

static const struct {
  const char *name;
  int num;
} signal_names[] = {
  {"SIGHUP", SIGHUP},   {"SIGINT", SIGINT},   {"SIGQUIT", SIGQUIT}, {"SIGKILL", SIGKILL},
  {"SIGUSR1", SIGUSR1}, {"SIGUSR2", SIGUSR2}, {"SIGPIPE", SIGPIPE}, {"SIGALRM", SIGALRM},
  {"SIGTERM", SIGTERM}, {"SIGCHLD", SIGCHLD}, {"SIGCONT", SIGCONT}, {"SIGSTOP", SIGSTOP},
  {"SIGTSTP", SIGTSTP}, {"SIGWINCH", SIGWINCH},
};

int l_signal_arg(lua_State *L, int idx, int def) {
  if (lua_isnoneornil(L, idx)) return def;
  if (lua_type(L, idx) == LUA_TNUMBER) {
    lua_Integer n = luaL_checkinteger(L, idx);
    if (n < 0 || n > 64) luaL_argerror(L, idx, "not a signal number");
    return (int)n;
  }
  const char *s = luaL_checkstring(L, idx);
  for (size_t i = 0; i < sizeof signal_names / sizeof signal_names[0]; i++) {
    /* "SIGTERM" or "TERM", as kill(1) takes them */
    if (strcmp(s, signal_names[i].name) == 0 || strcmp(s, signal_names[i].name + 3) == 0)
      return signal_names[i].num;
  }
  return luaL_argerror(L, idx, lua_pushfstring(L, "unknown signal %s", s));
}

typedef struct l_signal {
  uv_signal_t h;
  l_box_t *box;   /* valid while anchored: until the handle is closed */
  l_ctx_t *x;
  int closing;
} l_signal_t;

static void on_closed(uv_handle_t *h) {
  l_signal_t *w = h->data;
  l_box_release(w->x, w->box);
  free(w);
}

static void watcher_close(l_signal_t *w) {
  if (w->closing) return;
  w->closing = 1;
  uv_close((uv_handle_t *)&w->h, on_closed);
}

static void on_signal(uv_signal_t *h, int signum) {
  l_signal_t *w = h->data;
  if (w->closing) return;
  lua_State *L = w->x->L;
  int top = lua_gettop(L);
  l_push_ref(L, w->box->ref);
  int bx = lua_gettop(L);
  ws_lua_getuv(L, bx);
  lua_getfield(L, -1, "fn");
  lua_pushinteger(L, signum);
  l_dispatch(L, 1, bx);
  lua_settop(L, top);
}

/* core.signal(sig, fn): a watcher, or nil, message, name. */
static int l_signal_new(lua_State *L) {
  int signum = l_signal_arg(L, 1, 0);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  uv_loop_t *loop = ws_loop_uv(l_loop(L));
  l_box_t *b = l_box_new(L, L_SIGNAL_MT, NULL);
  l_signal_t *w = calloc(1, sizeof *w);
  if (!w) return luaL_error(L, "out of memory");
  uv_signal_init(loop, &w->h);
  w->h.data = w;
  w->box = b;
  w->x = l_ctx(L);
  b->p = w;
  ws_lua_getuv(L, -1);
  lua_pushvalue(L, 2);
  lua_setfield(L, -2, "fn");
  lua_pop(L, 1);
  lua_pushvalue(L, -1);
  b->ref = luaL_ref(L, LUA_REGISTRYINDEX);
  int e = uv_signal_start(&w->h, on_signal, signum);
  if (e) {
    watcher_close(w);
    return l_fail(L, e);
  }
  return 1;
}

/* watcher:close(): fn is not called again; twice is fine. */
static int l_signal_close(lua_State *L) {
  l_box_t *b = luaL_checkudata(L, 1, L_SIGNAL_MT);
  if (b->p) watcher_close(b->p);
  return 0;
}

static const luaL_Reg signal_methods[] = {
  {"close", l_signal_close},
  {NULL, NULL}
};

void l_signal_open(lua_State *L) {
  l_class_open(L, L_SIGNAL_MT, signal_methods, NULL);
  lua_pushcfunction(L, l_signal_new);
  lua_setfield(L, -2, "signal");
  lua_createtable(L, 0, (int)(sizeof signal_names / sizeof signal_names[0]));
  for (size_t i = 0; i < sizeof signal_names / sizeof signal_names[0]; i++) {
    lua_pushinteger(L, signal_names[i].num);
    lua_setfield(L, -2, signal_names[i].name);
  }
  lua_setfield(L, -2, "signals");
}
