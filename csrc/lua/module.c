/* luaws.core: the loop, the protected dispatcher, script timers, module functions. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "binding.h"

lua_State *l_main;
static ws_loop_t *loop;
static int traceback_ref = LUA_NOREF;   /* debug.traceback, the message handler */
static int hooks_ref = LUA_NOREF;       /* the Lua module table: onhandlererror, hooks */
static int pending_error_ref = LUA_NOREF; /* raised by onhandlererror: run() re-raises */

ws_loop_t *l_loop(void) { return loop; }

void l_push_ref(lua_State *L, int ref) { lua_rawgeti(L, LUA_REGISTRYINDEX, ref); }

int l_key_refs[L_K_COUNT];
static const char *const key_names[L_K_COUNT] = {
  "type", "target", "data", "binary", "listeners",
  "open", "message", "error", "close", "data",
  "onopen", "onmessage", "onerror", "onclose", "ondata",
  "message", "code", "reason", "wasClean",
  "name", "drain", "ondrain",
};

void l_push_hook(lua_State *L, const char *name) {
  if (hooks_ref == LUA_NOREF) {
    lua_pushnil(L);
    return;
  }
  l_push_ref(L, hooks_ref);
  lua_getfield(L, -1, name);
  lua_remove(L, -2);
}

l_box_t *l_box_new(lua_State *L, const char *mt, void *p) {
  l_box_t *b = lua_newuserdata(L, sizeof *b);
  b->p = p;
  b->ref = LUA_NOREF;
  b->kind = 0;
  luaL_getmetatable(L, mt);
  lua_setmetatable(L, -2);
  lua_newtable(L);
  ws_lua_setuv(L, -2);
  return b;
}

int l_fail(lua_State *L, int err) {
  lua_pushnil(L);
  const char *name = ws_err_name(err);
  const char *msg = ws_strerror(err);
  if (!name) {   /* a libuv error */
    name = uv_err_name(err);
    msg = uv_strerror(err);
  }
  lua_pushfstring(L, "%s: %s", name, msg);
  lua_pushstring(L, name);
  return 3;
}

/* A whole number in [0, max] (the Lua layer has checked ranges; this keeps the casts
 * defined for anyone calling core directly). */
uint64_t l_opt_u64(lua_State *L, int t, const char *name, uint64_t def, uint64_t max) {
  lua_getfield(L, t, name);
  uint64_t v = def;
  if (!lua_isnil(L, -1)) {
    lua_Number n = luaL_checknumber(L, -1);
    if (!(n >= 0 && n <= (lua_Number)max && n == (lua_Number)(uint64_t)n))
      luaL_error(L, "option %s out of range", name);
    v = (uint64_t)n;
  }
  lua_pop(L, 1);
  return v;
}

/* After a handler error: the hook decides; a hook that raises stops the loop and run()
 * raises its error. Expects the error at the top; pops it. */
static void handler_error(lua_State *L, int target) {
  l_push_hook(L, "onhandlererror");
  if (lua_isfunction(L, -1)) {
    lua_pushvalue(L, -2);
    if (target) lua_pushvalue(L, target);
    else lua_pushnil(L);
    l_push_ref(L, traceback_ref);
    lua_insert(L, -4);
    if (lua_pcall(L, 2, 0, -4) != 0) {
      if (pending_error_ref == LUA_NOREF) pending_error_ref = luaL_ref(L, LUA_REGISTRYINDEX);
      else lua_pop(L, 1);
      uv_stop(ws_loop_uv(loop));
    }
    lua_pop(L, 1);   /* traceback */
  } else {
    lua_pop(L, 1);
    fprintf(stderr, "luaws: error in handler: %s\n", lua_tostring(L, -1));
    fflush(stderr);
  }
  lua_pop(L, 1);
}

int l_dispatch(lua_State *L, int nargs, int target) {
  int fn = lua_gettop(L) - nargs;
  if (target) lua_pushvalue(L, target);
  else lua_pushnil(L);
  lua_insert(L, fn);                          /* target, fn, args */
  l_push_ref(L, traceback_ref);
  lua_insert(L, fn + 1);                      /* target, traceback, fn, args */
  int r = l_call(L, nargs, fn + 1, target ? fn : 0);
  lua_pop(L, 2);
  return r;
}

void l_push_traceback(lua_State *L) { l_push_ref(L, traceback_ref); }

int l_call(lua_State *L, int nargs, int tb, int target) {
  ws_loop_cork(loop);                         /* sends made in the handler leave together */
  int r = lua_pcall(L, nargs, 0, tb);
  if (r != 0) handler_error(L, target);
  ws_loop_uncork(loop);
  return r ? -1 : 0;
}

static int running;   /* libuv's loop must not be run from inside itself */

static int l_run(lua_State *L) {
  if (running) return luaL_error(L, "WebSocket.run() called from inside the loop (in a handler)");
  l_main = L;
  running = 1;
  uv_run(ws_loop_uv(loop), UV_RUN_DEFAULT);
  running = 0;
  if (pending_error_ref != LUA_NOREF) {
    l_push_ref(L, pending_error_ref);
    luaL_unref(L, LUA_REGISTRYINDEX, pending_error_ref);
    pending_error_ref = LUA_NOREF;
    return lua_error(L);
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* One turn of the loop without blocking (or blocking once, with `true`). */
static int l_step(lua_State *L) {
  if (running) return luaL_error(L, "WebSocket.step() called from inside the loop (in a handler)");
  l_main = L;
  running = 1;
  int more = uv_run(ws_loop_uv(loop), lua_toboolean(L, 1) ? UV_RUN_ONCE : UV_RUN_NOWAIT);
  running = 0;
  lua_pushboolean(L, more);
  return 1;
}

static int l_stop(lua_State *L) {
  (void)L;
  uv_stop(ws_loop_uv(loop));
  return 0;
}

static int l_init(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_pushvalue(L, 1);
  if (hooks_ref != LUA_NOREF) luaL_unref(L, LUA_REGISTRYINDEX, hooks_ref);
  hooks_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return 0;
}

static int l_stats(lua_State *L) {
  ws_loop_stats_t st;
  ws_loop_stats(loop, &st);
  lua_createtable(L, 0, 3);
  lua_pushinteger(L, (lua_Integer)st.connections);
  lua_setfield(L, -2, "connections");
  lua_pushinteger(L, (lua_Integer)st.buffered_in);
  lua_setfield(L, -2, "buffered_in");
  lua_pushinteger(L, (lua_Integer)st.buffered_out);
  lua_setfield(L, -2, "buffered_out");
  return 1;
}

static int l_active_handles(lua_State *L) {
  lua_pushinteger(L, ws_loop_active_handles(loop));
  return 1;
}

/* ---- timers ---------------------------------------------------------------- */

static void timer_fire(ws_timer_t *t, void *data) {
  l_box_t *b = data;
  lua_State *L = l_main;
  int ref = b->ref;
  l_push_ref(L, ref);                 /* keep the box alive during the call */
  ws_lua_getuv(L, -1);
  lua_getfield(L, -1, "fn");
  lua_getfield(L, -2, "repeating");
  int repeating = lua_toboolean(L, -1);
  lua_pop(L, 1);
  lua_remove(L, -2);
  if (!repeating) {                   /* one-shot: done before the call, so a handler
                                         that clears it changes nothing */
    ws_timer_stop(t);
    b->p = NULL;
    luaL_unref(L, LUA_REGISTRYINDEX, ref);
    b->ref = LUA_NOREF;
  }
  l_dispatch(L, 0, 0);
  lua_pop(L, 1);
}

static int l_set_timer(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_Number ms = luaL_checknumber(L, 2);
  int repeating = lua_toboolean(L, 3);
  if (ms < 0) ms = 0;
  l_box_t *b = l_box_new(L, L_TIMER_MT, NULL);
  ws_lua_getuv(L, -1);
  lua_pushvalue(L, 1);
  lua_setfield(L, -2, "fn");
  lua_pushboolean(L, repeating);
  lua_setfield(L, -2, "repeating");
  lua_pop(L, 1);
  uint64_t t = (uint64_t)ms;
  b->p = ws_timer_start(loop, t, repeating ? (t ? t : 1) : 0, timer_fire, b);
  if (!b->p) return luaL_error(L, "out of memory");
  lua_pushvalue(L, -1);
  b->ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return 1;
}

static int l_clear_timer(lua_State *L) {
  l_box_t *b = luaL_testudata(L, 1, L_TIMER_MT);
  if (!b || !b->p) return 0;   /* nil, fired or cleared: fine, as in browsers */
  ws_timer_stop(b->p);
  b->p = NULL;
  luaL_unref(L, LUA_REGISTRYINDEX, b->ref);
  b->ref = LUA_NOREF;
  return 0;
}

static int l_strerror(lua_State *L) {
  int e = (int)luaL_checkinteger(L, 1);
  const char *m = ws_strerror(e);
  lua_pushstring(L, m ? m : uv_strerror(e));
  return 1;
}

/* Pure helper, exported for specs: Sec-WebSocket-Accept for a key. */
static int l_handshake_accept(lua_State *L) {
  size_t len;
  const char *key = luaL_checklstring(L, 1, &len);
  char out[29];
  ws_handshake_accept(key, len, out);
  lua_pushstring(L, out);
  return 1;
}

/* When the Lua state closes, the loop goes too, if nothing is left on it. */
static int l_loop_gc(lua_State *L) {
  if (loop && ws_loop_free(loop) == 0) loop = NULL;
  if (traceback_ref != LUA_NOREF) {
    luaL_unref(L, LUA_REGISTRYINDEX, traceback_ref);
    traceback_ref = LUA_NOREF;
  }
  hooks_ref = pending_error_ref = LUA_NOREF;
  memset(l_key_refs, 0, sizeof l_key_refs);   /* the state they lived in is closing */
  l_conn_forget();
  l_main = NULL;
  return 0;
}

static const luaL_Reg funcs[] = {
  {"handshake_accept", l_handshake_accept},
  {"run", l_run},
  {"step", l_step},
  {"stop", l_stop},
  {"init", l_init},
  {"active_handles", l_active_handles},
  {"stats", l_stats},
  {"set_timer", l_set_timer},
  {"clear_timer", l_clear_timer},
  {"listen", l_listen},
  {"connect", l_connect},
  {"accept", l_accept},
  {"http_write", l_http_write},
  {"http_end", l_http_end},
  {"defer", l_defer},
  {"broadcast", l_broadcast},
  {"uservalue", l_uservalue},
  {"strerror", l_strerror},
  {"tls_context", l_tls_context},
  {NULL, NULL}
};

int luaopen_luaws_core(lua_State *L) {
  if (!loop) {
    /* A write to a peer that reset the connection must be an error (EPIPE), not a signal
     * that kills the process: as Node and luasocket do, unless the host set a handler. */
    struct sigaction sa;
    if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL) signal(SIGPIPE, SIG_IGN);
    /* libuv aborts when a descriptor it made for itself is 0, 1 or 2: a process started
     * with one of them closed gets /dev/null there first, as Node does. */
    for (int fd = 0; fd <= 2; fd++) {
      if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF) continue;
      int n = open("/dev/null", O_RDWR);
      if (n > 2) close(n);
    }
    loop = ws_loop_get(uv_default_loop(), &l_events);
    if (!loop) return luaL_error(L, "luaws: out of memory");
    /* OpenSSL sets up its random generator and digests on first use: do it at load,
     * not in the first handshake (whose latency and memory it would otherwise carry). */
    char warm[29];
    ws_handshake_accept("dGhlIHNhbXBsZSBub25jZQ==", 24, warm);
    (void)ws_random(warm, 16);
  }
  if (!l_main) l_main = L;
  lua_getfield(L, LUA_REGISTRYINDEX, "luaws.loop");
  if (lua_isnil(L, -1)) {   /* once per state, even when the module is loaded again */
    lua_newuserdata(L, 1);  /* its __gc frees the loop at lua_close */
    lua_newtable(L);
    lua_pushcfunction(L, l_loop_gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    lua_setfield(L, LUA_REGISTRYINDEX, "luaws.loop");
  }
  lua_pop(L, 1);
  if (traceback_ref == LUA_NOREF) {
    lua_getglobal(L, "debug");
    lua_getfield(L, -1, "traceback");
    traceback_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pop(L, 1);
  }
  if (!l_key_refs[0]) {
    for (int i = 0; i < L_K_COUNT; i++) {
      lua_pushstring(L, key_names[i]);
      l_key_refs[i] = luaL_ref(L, LUA_REGISTRYINDEX);
    }
  }
  luaL_newmetatable(L, L_TIMER_MT);
  lua_pop(L, 1);
  l_conn_open(L);
  l_server_open(L);
  l_tls_open(L);
  lua_newtable(L);
  ws_lua_setfuncs(L, funcs, 0);
  l_stdio_open(L);
  luaL_getmetatable(L, L_CONN_MT);
  lua_getfield(L, -1, "__methods");
  lua_setfield(L, -3, "socket_methods");
  lua_pop(L, 1);
  return 1;
}
