/* Two Lua states in one process, each with its own luaws: each runs an echo server and a
 * client on its own loop, stepped in turn from here; neither sees the other's sockets,
 * timers or handler errors. Proves that luaws keeps no process-wide state.
 * Usage: two_states CPATH LPATH (package.cpath / package.path for the build to test). */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

static int passed, failed;
#define CHECK(c)                                                                    \
  do {                                                                              \
    if (c) passed++;                                                                \
    else {                                                                          \
      failed++;                                                                     \
      fprintf(stderr, "%s:%d: FAIL %s\n", __FILE__, __LINE__, #c);                  \
    }                                                                               \
  } while (0)

/* Each state: a server on port 0 that echoes with its own tag, a client that sends
 * "ping" and records what comes back, a handler error of its own, and a timer. */
static const char setup[] =
    "local tag = ...\n"
    "local WebSocket = require 'luaws'\n"
    "result = {}\n"
    "WebSocket.onhandlererror = function(err) result.error = (result.error or 0) + 1 end\n"
    "local s = assert(WebSocket.listen { port = 0 })\n"
    "s.onupgrade = function(req)\n"
    "  local ws = WebSocket(req)\n"
    "  ws.onmessage = function(e) ws:send(tag .. ':' .. e.data) end\n"
    "end\n"
    "local c = WebSocket.Client('ws://127.0.0.1:' .. s.port .. '/')\n"
    "c.onopen = function() c:send('ping') end\n"
    "c.onmessage = function(e) result.echo = e.data c:close() end\n"
    "c.onclose = function(e) result.code = e.code s:close() end\n"
    "WebSocket.setTimeout(function() result.timer = tag end, 1)\n"
    "WebSocket.setTimeout(function() error('boom in ' .. tag) end, 2)\n"
    "result.step = WebSocket.step\n";

static lua_State *new_state(const char *cpath, const char *lpath, const char *tag) {
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  lua_getglobal(L, "package");
  lua_pushstring(L, cpath);
  lua_setfield(L, -2, "cpath");
  lua_pushstring(L, lpath);
  lua_setfield(L, -2, "path");
  lua_pop(L, 1);
  if (luaL_loadbuffer(L, setup, sizeof setup - 1, "setup") != 0) {
    fprintf(stderr, "%s\n", lua_tostring(L, -1));
    exit(1);
  }
  lua_pushstring(L, tag);
  if (lua_pcall(L, 1, 0, 0) != 0) {
    fprintf(stderr, "%s: %s\n", tag, lua_tostring(L, -1));
    exit(1);
  }
  return L;
}

/* One non-blocking turn of the state's loop; 1 while it has more to do. */
static int step(lua_State *L) {
  lua_getglobal(L, "result");
  lua_getfield(L, -1, "step");
  lua_pushboolean(L, 0);
  if (lua_pcall(L, 1, 1, 0) != 0) {
    fprintf(stderr, "step: %s\n", lua_tostring(L, -1));
    exit(1);
  }
  int more = lua_toboolean(L, -1);
  lua_pop(L, 2);
  return more;
}

static const char *field(lua_State *L, const char *name, char *buf, size_t cap) {
  lua_getglobal(L, "result");
  lua_getfield(L, -1, name);
  snprintf(buf, cap, "%s", lua_isnil(L, -1) ? "(nil)" : lua_tostring(L, -1));
  lua_pop(L, 2);
  return buf;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s CPATH LPATH\n", argv[0]);
    return 2;
  }
  lua_State *a = new_state(argv[1], argv[2], "A");
  lua_State *b = new_state(argv[1], argv[2], "B");
  /* Both run to completion, stepped in turn, bounded (about 10 s of 1 ms naps). */
  int more_a = 1, more_b = 1;
  for (int i = 0; i < 10000 && (more_a || more_b); i++) {
    if (more_a) more_a = step(a);
    if (more_b) more_b = step(b);
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
  }
  CHECK(!more_a && !more_b);
  char buf[64];
  CHECK(strcmp(field(a, "echo", buf, sizeof buf), "A:ping") == 0);
  CHECK(strcmp(field(b, "echo", buf, sizeof buf), "B:ping") == 0);
  CHECK(strcmp(field(a, "timer", buf, sizeof buf), "A") == 0);
  CHECK(strcmp(field(b, "timer", buf, sizeof buf), "B") == 0);
  CHECK(strcmp(field(a, "error", buf, sizeof buf), "1") == 0);   /* its own error only */
  CHECK(strcmp(field(b, "error", buf, sizeof buf), "1") == 0);
  CHECK(strcmp(field(a, "code", buf, sizeof buf), "1005") == 0);
  CHECK(strcmp(field(b, "code", buf, sizeof buf), "1005") == 0);
  if (failed)
    fprintf(stderr, "A: %s, B: %s\n", field(a, "code", buf, sizeof buf),
            field(b, "echo", buf + 32, 32));
  lua_close(a);
  /* b still works after a is gone: a second round trip. */
  int r = luaL_dostring(b, "local WebSocket = require 'luaws'\n"
                   "local s = assert(WebSocket.listen { port = 0 })\n"
                   "s.onupgrade = function(req) local ws = WebSocket(req) "
                   "ws.onmessage = function(e) ws:send(e.data) end end\n"
                   "local c = WebSocket.Client('ws://127.0.0.1:' .. s.port .. '/')\n"
                   "c.onopen = function() c:send('again') end\n"
                   "c.onmessage = function(e) result.again = e.data c:close() s:close() end\n"
                   "WebSocket.run()");
  CHECK(r == 0);
  CHECK(strcmp(field(b, "again", buf, sizeof buf), "again") == 0);
  lua_close(b);
  printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
