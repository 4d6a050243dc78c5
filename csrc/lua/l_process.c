/* core.spawn{ file, args, env, cwd }: a child process on the loop, for the luaws
 * command's supervisor (luaws serve). It inherits stdin, stdout and stderr. The object
 * has pid, kill([sig]) and onexit(code, signal), called once when the child is gone;
 * then its handle closes (memory is freed in the close callback). core.cpus(): how many
 * processes can run at once (the default number of workers). */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include "binding.h"

#define L_PROCESS_MT "luaws.process"

extern char **environ;

typedef struct l_process {
  uv_process_t h;
  l_box_t *box;   /* valid while anchored: until the handle is closed */
  l_ctx_t *x;
  int exited;
} l_process_t;

static void on_closed(uv_handle_t *h) {
  l_process_t *p = h->data;
  l_box_release(p->x, p->box);   /* (no box: uv_spawn failed) */
  free(p);
}

static void on_exited(uv_process_t *h, int64_t status, int term_signal) {
  l_process_t *p = h->data;
  p->exited = 1;
  lua_State *L = p->x->L;
  int top = lua_gettop(L);
  l_push_ref(L, p->box->ref);
  int bx = lua_gettop(L);
  ws_lua_getuv(L, bx);
  lua_getfield(L, -1, "onexit");
  if (lua_isfunction(L, -1)) {
    lua_pushinteger(L, (lua_Integer)status);
    lua_pushinteger(L, term_signal);
    l_dispatch(L, 2, bx);
  }
  lua_settop(L, top);
  uv_close((uv_handle_t *)h, on_closed);
}

/* The strings of list t (a table of strings at index t) after first, as a NULL-ended
 * array in a userdata left on the stack; the strings stay in t. */
static char **push_argv(lua_State *L, int t, const char *first) {
  int n = lua_isnil(L, t) ? 0 : (int)ws_lua_rawlen(L, t);
  char **argv = lua_newuserdata(L, sizeof *argv * ((size_t)n + 2));
  argv[0] = (char *)first;
  for (int i = 1; i <= n; i++) {
    lua_rawgeti(L, t, i);
    if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "spawn: args[%d] is not a string", i);
    argv[i] = (char *)lua_tostring(L, -1);   /* t holds it */
    lua_pop(L, 1);
  }
  argv[n + 1] = NULL;
  return argv;
}

/* This process's environment with the names in table e (at index e) set to its values,
 * or left out where the value is false: a NULL-ended array in a userdata, the strings it
 * makes in a table below it; both left on the stack. */
static char **push_env(lua_State *L, int e) {
  lua_newtable(L);
  int made = lua_gettop(L);
  int n = 0;
  lua_pushnil(L);
  while (lua_next(L, e)) {
    if (lua_type(L, -2) != LUA_TSTRING || strchr(lua_tostring(L, -2), '='))
      luaL_error(L, "spawn: env names must be strings without '='");
    if (lua_type(L, -1) == LUA_TBOOLEAN && !lua_toboolean(L, -1)) {
      lua_pop(L, 1);
      continue;
    }
    if (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER)
      luaL_error(L, "spawn: env.%s must be a string or false", lua_tostring(L, -2));
    lua_pushfstring(L, "%s=%s", lua_tostring(L, -2), lua_tostring(L, -1));
    lua_rawseti(L, made, ++n);
    lua_pop(L, 1);
  }
  size_t inherited = 0;
  while (environ[inherited]) inherited++;
  char **envp = lua_newuserdata(L, sizeof *envp * ((size_t)n + inherited + 1));
  int k = 0;
  for (int i = 1; i <= n; i++) {
    lua_rawgeti(L, made, i);
    envp[k++] = (char *)lua_tostring(L, -1);   /* made holds it */
    lua_pop(L, 1);
  }
  for (size_t i = 0; i < inherited; i++) {
    const char *eq = strchr(environ[i], '=');
    if (!eq) continue;
    lua_pushlstring(L, environ[i], (size_t)(eq - environ[i]));
    lua_rawget(L, e);
    if (lua_isnil(L, -1)) envp[k++] = environ[i];   /* not replaced, nor removed */
    lua_pop(L, 1);
  }
  envp[k] = NULL;
  return envp;
}

/* core.spawn{ file =, args = { ... }, env = { NAME = value | false }, cwd = }: the
 * process, or nil, message, name (ENOENT: no such file). file is looked up in PATH
 * unless it has a slash; args are argv[1...] (argv[0] is file). */
static int l_spawn(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  lua_getfield(L, 1, "file");   /* 2 */
  const char *file = luaL_checkstring(L, 2);
  lua_getfield(L, 1, "args");   /* 3 */
  if (!lua_isnil(L, 3)) luaL_checktype(L, 3, LUA_TTABLE);
  lua_getfield(L, 1, "env");    /* 4 */
  if (!lua_isnil(L, 4)) luaL_checktype(L, 4, LUA_TTABLE);
  lua_getfield(L, 1, "cwd");    /* 5 */
  const char *cwd = luaL_optstring(L, 5, NULL);
  char **argv = push_argv(L, 3, file);
  char **envp = lua_isnil(L, 4) ? NULL : push_env(L, 4);
  uv_loop_t *loop = ws_loop_uv(l_loop(L));

  l_box_t *b = l_box_new(L, L_PROCESS_MT, NULL);
  l_process_t *p = calloc(1, sizeof *p);
  if (!p) return luaL_error(L, "out of memory");
  p->x = l_ctx(L);
  p->h.data = p;
  uv_stdio_container_t stdio[3];
  for (int fd = 0; fd < 3; fd++) {
    stdio[fd].flags = UV_INHERIT_FD;
    stdio[fd].data.fd = fd;
  }
  uv_process_options_t o;
  memset(&o, 0, sizeof o);
  o.exit_cb = on_exited;
  o.file = file;
  o.args = argv;
  o.env = envp;
  o.cwd = cwd;
  o.stdio_count = 3;
  o.stdio = stdio;
  int e = uv_spawn(loop, &p->h, &o);
  if (e) {   /* the handle was initialized all the same: it closes, and frees p */
    uv_close((uv_handle_t *)&p->h, on_closed);
    return l_fail(L, e);
  }
  p->box = b;
  b->p = p;
  ws_lua_getuv(L, -1);
  lua_pushinteger(L, p->h.pid);
  lua_setfield(L, -2, "pid");
  lua_pop(L, 1);
  lua_pushvalue(L, -1);
  b->ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return 1;
}

/* process:kill([sig]): sends sig (a number or a name; SIGTERM by default). true, or nil,
 * message, name (ESRCH once it has exited). */
static int l_process_kill(lua_State *L) {
  l_box_t *b = luaL_checkudata(L, 1, L_PROCESS_MT);
  int sig = l_signal_arg(L, 2, SIGTERM);
  l_process_t *p = b->p;
  if (!p || p->exited) return l_fail(L, UV_ESRCH);
  int e = uv_process_kill(&p->h, sig);
  if (e) return l_fail(L, e);
  lua_pushboolean(L, 1);
  return 1;
}

static int l_process_index(lua_State *L) {
  luaL_checkudata(L, 1, L_PROCESS_MT);
  lua_pushvalue(L, 2);
  lua_rawget(L, lua_upvalueindex(1));
  if (!lua_isnil(L, -1)) return 1;
  ws_lua_getuv(L, 1);
  lua_pushvalue(L, 2);
  lua_rawget(L, -2);
  return 1;
}

/* core.cpus(): the CPUs this process may run on (its affinity mask, as nproc says). */
static int l_cpus(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)uv_available_parallelism());
  return 1;
}

static const luaL_Reg process_methods[] = {
  {"kill", l_process_kill},
  {NULL, NULL}
};

void l_process_open(lua_State *L) {
  l_class_open(L, L_PROCESS_MT, process_methods, l_process_index);
  lua_pushcfunction(L, l_spawn);
  lua_setfield(L, -2, "spawn");
  lua_pushcfunction(L, l_cpus);
  lua_setfield(L, -2, "cpus");
}
