/* luaws.core: the loop, the protected dispatcher, script timers, module functions. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "binding.h"

static const char ctx_key = 0;   /* its address keys the context in the registry */

l_ctx_t *l_ctx(lua_State *L) {
  lua_pushlightuserdata(L, (void *)&ctx_key);
  lua_rawget(L, LUA_REGISTRYINDEX);
  l_ctx_t *x = lua_touserdata(L, -1);
  lua_pop(L, 1);
  if (!x) luaL_error(L, "luaws: the module is not loaded in this Lua state");
  return x;
}

/* luv keeps its context in the registry under "luv_context"; its first field is the
 * uv_loop_t * it runs (luv.c, luv_ctx_t). */
static uv_loop_t *luv_loop_of(lua_State *L) {
  lua_getfield(L, LUA_REGISTRYINDEX, "luv_context");
  void *ctx = lua_touserdata(L, -1);
  lua_pop(L, 1);
  return ctx ? *(uv_loop_t **)ctx : NULL;
}

/* On luv's loop, luaws's state must go before luv closes that loop at lua_close: this
 * guard, made after luv's loop (so finalized before it), frees it. */
static int l_luv_guard_gc(lua_State *L) {
  l_ctx_t *x = *(l_ctx_t **)lua_touserdata(L, 1);
  if (x->loop) ws_backplane_close(ws_loop_backplane(x->loop));
  if (x->loop && ws_loop_free(x->loop) == 0) x->loop = NULL;
  x->uv = NULL;   /* luv's, about to go: never touched again */
  return 0;
}

ws_loop_t *l_loop(lua_State *L) {
  l_ctx_t *x = l_ctx(L);
  if (x->loop) return x->loop;
  uv_loop_t *uv = luv_loop_of(L);
  if (uv) {
    l_ctx_t **g = lua_newuserdata(L, sizeof *g);
    *g = x;
    lua_newtable(L);
    lua_pushcfunction(L, l_luv_guard_gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    lua_setfield(L, LUA_REGISTRYINDEX, "luaws.luv_guard");
  } else {
    if (!x->own) {
      int r = uv_loop_init(&x->own_uv);
      if (r) luaL_error(L, "luaws: uv_loop_init: %s", uv_strerror(r));
      x->own = 1;
    }
    uv = &x->own_uv;
  }
  x->uv = uv;
  x->loop = ws_loop_new(uv, &l_events, x);
  if (!x->loop) luaL_error(L, "luaws: out of memory");
  return x->loop;
}

void l_push_ref(lua_State *L, int ref) { lua_rawgeti(L, LUA_REGISTRYINDEX, ref); }

static const char *const key_names[L_K_COUNT] = {
  "type", "target", "data", "binary", "listeners",
  "open", "message", "error", "close", "data",
  "onopen", "onmessage", "onerror", "onclose", "ondata",
  "message", "code", "reason", "wasClean",
  "name", "drain", "ondrain", "url",
};

void l_push_hook(l_ctx_t *x, lua_State *L, const char *name) {
  if (x->hooks_ref == LUA_NOREF) {
    lua_pushnil(L);
    return;
  }
  l_push_ref(L, x->hooks_ref);
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
static void handler_error(l_ctx_t *x, lua_State *L, int target) {
  l_push_hook(x, L, "onhandlererror");
  if (lua_isfunction(L, -1)) {
    lua_pushvalue(L, -2);
    if (target) lua_pushvalue(L, target);
    else lua_pushnil(L);
    l_push_ref(L, x->traceback_ref);
    lua_insert(L, -4);
    if (lua_pcall(L, 2, 0, -4) != 0) {
      if (x->pending_error_ref == LUA_NOREF) x->pending_error_ref = luaL_ref(L, LUA_REGISTRYINDEX);
      else lua_pop(L, 1);
      if (x->uv) uv_stop(x->uv);
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
  l_ctx_t *x = l_ctx(L);
  int fn = lua_gettop(L) - nargs;
  if (target) lua_pushvalue(L, target);
  else lua_pushnil(L);
  lua_insert(L, fn);                          /* target, fn, args */
  l_push_ref(L, x->traceback_ref);
  lua_insert(L, fn + 1);                      /* target, traceback, fn, args */
  int r = l_call(x, L, nargs, fn + 1, target ? fn : 0);
  lua_pop(L, 2);
  return r;
}

void l_push_traceback(l_ctx_t *x, lua_State *L) { l_push_ref(L, x->traceback_ref); }

int l_call(l_ctx_t *x, lua_State *L, int nargs, int tb, int target) {
  return l_calln(x, L, nargs, 0, tb, target);
}

int l_calln(l_ctx_t *x, lua_State *L, int nargs, int nresults, int tb, int target) {
  ws_loop_cork(x->loop);                      /* sends made in the handler leave together */
  int r = lua_pcall(L, nargs, nresults, tb);
  if (r != 0) handler_error(x, L, target);
  ws_loop_uncork(x->loop);
  return r ? -1 : 0;
}

/* Fails the socket at index i (if it is one, and open) as a raising handler would. */
static void fail_socket(lua_State *L, int i) {
  l_box_t *b = luaL_testudata(L, i, L_CONN_MT);
  if (b && b->p && b->kind == L_KIND_SOCKET) ws_conn_handler_failed(b->p);
}

/* core.handler_error(err, target [, sockets]): an error raised outside the dispatcher
 * (in a coroutine, luaws.coro), with its traceback, goes where a handler's goes; the
 * socket target and those in the list sockets close with 1011. */
static int l_handler_error(lua_State *L) {
  luaL_checkstring(L, 1);
  lua_settop(L, 3);
  lua_pushvalue(L, 1);
  handler_error(l_ctx(L), L, lua_isnil(L, 2) ? 0 : 2);
  fail_socket(L, 2);
  if (lua_istable(L, 3)) {
    int n = (int)ws_lua_rawlen(L, 3);
    for (int i = 1; i <= n; i++) {
      lua_rawgeti(L, 3, i);
      fail_socket(L, 4);
      lua_pop(L, 1);
    }
  }
  return 0;
}

/* Runs the uv loop in mode; events run on the calling thread (x->L) meanwhile. */
static int run_loop(lua_State *L, uv_run_mode mode, const char *what) {
  l_ctx_t *x = l_ctx(L);
  ws_loop_t *l = l_loop(L);
  if (x->running) return luaL_error(L, "WebSocket.%s() called from inside the loop (in a handler)", what);
  lua_State *prev = x->L;
  x->L = L;
  x->running = 1;
  int more = 0;
  if (mode == UV_RUN_DEFAULT) ws_loop_run(l);
  else more = uv_run(ws_loop_uv(l), mode);
  x->running = 0;
  x->L = prev ? prev : L;
  if (x->pending_error_ref != LUA_NOREF) {
    l_push_ref(L, x->pending_error_ref);
    luaL_unref(L, LUA_REGISTRYINDEX, x->pending_error_ref);
    x->pending_error_ref = LUA_NOREF;
    return lua_error(L);
  }
  return more;
}

static int l_run(lua_State *L) {
  run_loop(L, UV_RUN_DEFAULT, "run");
  lua_pushboolean(L, 1);
  return 1;
}

/* One turn of the loop without blocking (or blocking once, with `true`). */
static int l_step(lua_State *L) {
  int more = run_loop(L, lua_toboolean(L, 1) ? UV_RUN_ONCE : UV_RUN_NOWAIT, "step");
  lua_pushboolean(L, more);
  return 1;
}

static int l_stop(lua_State *L) {
  uv_stop(ws_loop_uv(l_loop(L)));
  return 0;
}

/* For a host loop (cqueues): the descriptor that becomes readable when the loop has
 * work, and the seconds until its next timer (nil: none; 0: work is due now). The host
 * waits on both, then calls step(). */
static int l_backend_fd(lua_State *L) {
  lua_pushinteger(L, uv_backend_fd(ws_loop_uv(l_loop(L))));
  return 1;
}

static int l_backend_timeout(lua_State *L) {
  uv_loop_t *uv = ws_loop_uv(l_loop(L));
  uv_update_time(uv);
  int ms = uv_backend_timeout(uv);
  if (ms < 0) lua_pushnil(L);
  else lua_pushnumber(L, ms / 1000.0);
  return 1;
}

/* "luv" when luaws runs on luv's loop (luv was loaded first), else "own". */
static int l_loop_kind(lua_State *L) {
  l_loop(L);
  l_ctx_t *x = l_ctx(L);
  lua_pushstring(L, x->uv == &x->own_uv ? "own" : "luv");
  return 1;
}

static int l_init(lua_State *L) {
  l_ctx_t *x = l_ctx(L);
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_pushvalue(L, 1);
  if (x->hooks_ref != LUA_NOREF) luaL_unref(L, LUA_REGISTRYINDEX, x->hooks_ref);
  x->hooks_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return 0;
}

static int l_stats(lua_State *L) {
  ws_loop_stats_t st;
  ws_loop_stats(l_loop(L), &st);
  const struct {
    const char *name;
    size_t value;
  } f[] = {{"connections", st.connections}, {"buffered_in", st.buffered_in},
           {"buffered_out", st.buffered_out}, {"topics", st.topics},
           {"subscriptions", st.subscriptions}, {"topic_memory", st.topic_memory}};
  lua_createtable(L, 0, (int)(sizeof f / sizeof f[0]));
  for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
    lua_pushinteger(L, (lua_Integer)f[i].value);
    lua_setfield(L, -2, f[i].name);
  }
  return 1;
}

/* Nanoseconds from an arbitrary point, monotonic (libuv's uv_hrtime, luv's uv.hrtime):
 * for timing; CLOCK_MONOTONIC on Linux, so other processes' clocks compare with it. */
static int l_hrtime(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)uv_hrtime());
  return 1;
}

static int l_active_handles(lua_State *L) {
  lua_pushinteger(L, ws_loop_active_handles(l_loop(L)));
  return 1;
}

/* ---- timers ---------------------------------------------------------------- */

/* A script timer's box, and the context it runs in. */
typedef struct l_timer {
  l_box_t box;
  l_ctx_t *x;
} l_timer_t;

static void timer_fire(ws_timer_t *t, void *data) {
  l_timer_t *lt = data;
  l_box_t *b = &lt->box;
  lua_State *L = lt->x->L;
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
  ws_loop_t *loop = l_loop(L);
  l_timer_t *lt = lua_newuserdata(L, sizeof *lt);
  l_box_t *b = &lt->box;
  b->p = NULL;
  b->ref = LUA_NOREF;
  b->kind = 0;
  lt->x = l_ctx(L);
  luaL_getmetatable(L, L_TIMER_MT);
  lua_setmetatable(L, -2);
  lua_newtable(L);
  ws_lua_setuv(L, -2);
  ws_lua_getuv(L, -1);
  lua_pushvalue(L, 1);
  lua_setfield(L, -2, "fn");
  lua_pushboolean(L, repeating);
  lua_setfield(L, -2, "repeating");
  lua_pop(L, 1);
  uint64_t t = (uint64_t)ms;
  b->p = ws_timer_start(loop, t, repeating ? (t ? t : 1) : 0, timer_fire, lt);
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

/* When the Lua state closes, its loop goes too, if nothing is left on it (else it is
 * left, as memory still in libuv's hands cannot be freed under it). */
static int l_ctx_gc(lua_State *L) {
  l_ctx_t *x = lua_touserdata(L, 1);
  /* (on luv's loop, the guard did this, or the loop may be gone: leave it) */
  if (x->loop && x->uv == &x->own_uv) {
    ws_backplane_close(ws_loop_backplane(x->loop));   /* (its handles close in the free) */
    if (ws_loop_free(x->loop) == 0) x->loop = NULL;
  }
  if (!x->loop && x->own && uv_loop_close(&x->own_uv) == 0) x->own = 0;
  x->L = NULL;
  return 0;
}

static const luaL_Reg funcs[] = {
  {"handshake_accept", l_handshake_accept},
  {"run", l_run},
  {"step", l_step},
  {"stop", l_stop},
  {"loop_kind", l_loop_kind},
  {"backend_fd", l_backend_fd},
  {"backend_timeout", l_backend_timeout},
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
  {"http_keepable", l_http_keepable},
  {"broadcast", l_broadcast},
  {"publish", l_publish},
  {"backplane", l_backplane},
  {"subscribers", l_subscribers},
  {"hrtime", l_hrtime},
  {"uservalue", l_uservalue},
  {"strerror", l_strerror},
  {"handler_error", l_handler_error},
  {"tls_context", l_tls_context},
  {NULL, NULL}
};

LUAWS_EXPORT int luaopen_luaws_core(lua_State *L) {
  lua_pushlightuserdata(L, (void *)&ctx_key);
  lua_rawget(L, LUA_REGISTRYINDEX);
  l_ctx_t *x = lua_touserdata(L, -1);
  lua_pop(L, 1);
  if (!x) {   /* once per state, even when the module is loaded again */
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
    /* OpenSSL sets up its random generator and digests on first use: do it at load,
     * not in the first handshake (whose latency and memory it would otherwise carry). */
    char warm[29];
    ws_handshake_accept("dGhlIHNhbXBsZSBub25jZQ==", 24, warm);
    (void)ws_random(warm, 16);
    lua_pushlightuserdata(L, (void *)&ctx_key);
    x = lua_newuserdata(L, sizeof *x);   /* its __gc frees the loop at lua_close */
    memset(x, 0, sizeof *x);
    x->L = L;
    x->traceback_ref = x->hooks_ref = x->pending_error_ref = LUA_NOREF;
    x->shared_ref = x->shared_count_ref = x->empty_ref = x->message_ref = LUA_NOREF;
    lua_newtable(L);
    lua_pushcfunction(L, l_ctx_gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    lua_rawset(L, LUA_REGISTRYINDEX);
    lua_getglobal(L, "debug");
    lua_getfield(L, -1, "traceback");
    x->traceback_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pop(L, 1);
    for (int i = 0; i < L_K_COUNT; i++) {
      lua_pushstring(L, key_names[i]);
      x->key_refs[i] = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    l_shared_open(x, L);
    l_conn_ctx_open(x, L);
#if LUA_VERSION_NUM == 501   /* a userdata's env must be a table: one empty one for all */
    lua_newtable(L);
    x->empty_ref = luaL_ref(L, LUA_REGISTRYINDEX);
#endif
  }
  luaL_newmetatable(L, L_TIMER_MT);
  lua_pop(L, 1);
  l_conn_open(L);
  l_server_open(L);
  l_tls_open(L);
  l_backplane_open(L);
  lua_newtable(L);
  ws_lua_setfuncs(L, funcs, 0);
  l_stdio_open(L);
  l_process_open(L);
  l_signal_open(L);
  luaL_getmetatable(L, L_CONN_MT);
  lua_getfield(L, -1, "__methods");
  lua_setfield(L, -3, "socket_methods");
  lua_pop(L, 1);
  return 1;
}
