/* core.reader(fd, fn): a file descriptor (stdin) read on the loop, for scripts such as
 * the luaws command. libuv polls pipes, sockets and terminals; it cannot poll regular
 * files and devices, so those are read in its thread pool. fn(chunk) gets the bytes as
 * they come, then fn(nil) at the end or fn(nil, message, name) on an error, once. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>
#include "binding.h"

#define L_READER_MT "luaws.reader"
#define READER_CHUNK 65536

typedef struct l_reader {
  union {                   /* a file's reader owns the timer: every reader has a handle
                               to close, and memory is freed only in its close callback */
    uv_handle_t handle;
    uv_stream_t stream;
    uv_pipe_t pipe;
    uv_tcp_t tcp;
    uv_tty_t tty;
    uv_timer_t timer;       /* a file: delivers a chunk held while paused */
  } h;
  uv_fs_t req;              /* a file's read in the thread pool */
  l_box_t *box;             /* valid while anchored: until the handle is closed */
  l_ctx_t *x;               /* the Lua state's luaws */
  int fd_flags;             /* restored at the close: libuv makes a stream's file
                               description non-blocking, and fd shares it */
  int copy;                 /* our duplicate of fd, which libuv reads */
  int copy_is_ours;         /* libuv did not take the copy: we close it */
  int is_file, reading, paused, ended, closing, freed_later;
  ssize_t held;             /* a file's result read while paused; 0: none */
  char buf[READER_CHUNK];   /* copied into a Lua string before the next read */
} l_reader_t;

static void reader_close(l_reader_t *r);

/* Calls fn with a chunk or, for n < 0, (nil) at EOF or (nil, message, name). An error
 * in fn closes the reader (its own object only). */
static void deliver(l_reader_t *r, const char *data, ssize_t n) {
  lua_State *L = r->x->L;
  int top = lua_gettop(L);
  l_push_ref(L, r->box->ref);
  int bx = lua_gettop(L);
  ws_lua_getuv(L, bx);
  lua_getfield(L, -1, "fn");
  int nargs = 1;
  if (n >= 0) {
    lua_pushlstring(L, data, (size_t)n);
  } else if (n == UV_EOF) {
    lua_pushnil(L);
  } else {
    nargs = l_fail(L, (int)n);
  }
  if (l_dispatch(L, nargs, bx) != 0) reader_close(r);
  lua_settop(L, top);
}

/* The end of the input (or an error): fn hears of it once, then the reader closes. */
static void finish(l_reader_t *r, ssize_t n) {
  r->ended = 1;
  if (!r->is_file) uv_read_stop(&r->h.stream);
  deliver(r, NULL, n);
  reader_close(r);
}

static void on_alloc(uv_handle_t *h, size_t size, uv_buf_t *buf) {
  l_reader_t *r = h->data;
  (void)size;
  *buf = uv_buf_init(r->buf, sizeof r->buf);
}

static void on_stream_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  l_reader_t *r = s->data;
  if (n == 0 || r->closing) return;   /* 0: EAGAIN */
  if (n < 0) finish(r, n);
  else deliver(r, buf->base, n);
}

static void on_file_read(uv_fs_t *req);

/* Starts a file's next read in the thread pool: 0 or a libuv error. */
static int file_read(l_reader_t *r) {
  if (r->reading) return 0;
  uv_buf_t b = uv_buf_init(r->buf, sizeof r->buf);
  r->req.data = r;
  int e = uv_fs_read(r->h.handle.loop, &r->req, r->copy, &b, 1, -1, on_file_read);
  if (!e) r->reading = 1;
  return e;
}

/* A file's read result: bytes, 0 for EOF, or an error. */
static void file_result(l_reader_t *r, ssize_t n) {
  if (n > 0) {
    deliver(r, r->buf, n);
    if (r->closing || r->paused) return;
    n = file_read(r);
    if (!n) return;
  }
  finish(r, n == 0 ? UV_EOF : n);
}

static void reader_free(l_reader_t *r) {
  if (r->copy_is_ours) close(r->copy);
  free(r);
}

static void on_file_read(uv_fs_t *req) {
  l_reader_t *r = req->data;
  ssize_t n = req->result;
  uv_fs_req_cleanup(req);
  r->reading = 0;
  if (r->freed_later) {   /* closed while the read was in the thread pool */
    reader_free(r);
    return;
  }
  if (r->closing) return;
  if (r->paused) {        /* r->buf keeps it until resume() */
    r->held = n ? n : UV_EOF;
    return;
  }
  file_result(r, n);
}

static void on_held(uv_timer_t *t) {
  l_reader_t *r = t->data;
  if (r->paused || r->closing) return;   /* paused again before this ran */
  ssize_t n = r->held;
  r->held = 0;
  file_result(r, n == UV_EOF ? 0 : n);
}

static void on_closed(uv_handle_t *h) {
  l_reader_t *r = h->data;
  l_box_release(r->x, r->box);
  if (r->reading) r->freed_later = 1;   /* the thread pool still writes into it */
  else reader_free(r);
}

static void reader_close(l_reader_t *r) {
  if (r->closing) return;
  r->closing = r->ended = 1;
  fcntl(r->copy, F_SETFL, r->fd_flags);   /* the description fd shares */
  uv_close(&r->h.handle, on_closed);
}

/* core.reader(fd, fn): a reader, or nil, message, name (EBADF for a closed fd). */
static int l_reader_new(lua_State *L) {
  int fd = (int)luaL_checkinteger(L, 1);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  uv_loop_t *loop = ws_loop_uv(l_loop(L));
  uv_handle_type type = uv_guess_handle(fd);
  if (type == UV_UNKNOWN_HANDLE || type == UV_UDP) return l_fail(L, UV_EBADF);
  int flags = fcntl(fd, F_GETFL);
  int copy = fcntl(fd, F_DUPFD_CLOEXEC, 3);
  if (flags < 0 || copy < 0) return l_fail(L, uv_translate_sys_error(errno));
  l_reader_t *r = calloc(1, sizeof *r);
  if (!r) {
    close(copy);
    return luaL_error(L, "out of memory");
  }
  r->fd_flags = flags;
  r->copy = copy;
  int e = 0;
  switch (type) {
  case UV_TTY:   /* libuv reopens the terminal, so fd's description stays blocking */
    e = uv_tty_init(loop, &r->h.tty, copy, 1);
    break;
  case UV_TCP:
    uv_tcp_init(loop, &r->h.tcp);
    e = uv_tcp_open(&r->h.tcp, copy);
    break;
  case UV_NAMED_PIPE:
    uv_pipe_init(loop, &r->h.pipe, 0);
    e = uv_pipe_open(&r->h.pipe, copy);
    break;
  default:       /* UV_FILE: a regular file or a device */
    r->is_file = 1;
    uv_timer_init(loop, &r->h.timer);
    break;
  }
  int used = -1;
  if (r->is_file || e || uv_fileno(&r->h.handle, &used) != 0 || used != copy) r->copy_is_ours = 1;
  if (e && type == UV_TTY) {   /* uv_tty_init made no handle */
    reader_free(r);
    return l_fail(L, e);
  }
  r->h.handle.data = r;
  l_box_t *b = l_box_new(L, L_READER_MT, r);
  r->box = b;
  r->x = l_ctx(L);
  ws_lua_getuv(L, -1);
  lua_pushvalue(L, 2);
  lua_setfield(L, -2, "fn");
  lua_pop(L, 1);
  lua_pushvalue(L, -1);
  b->ref = luaL_ref(L, LUA_REGISTRYINDEX);
  if (!e) e = r->is_file ? file_read(r) : uv_read_start(&r->h.stream, on_alloc, on_stream_read);
  if (e) {
    reader_close(r);
    return l_fail(L, e);
  }
  return 1;
}

static l_reader_t *reader_of(lua_State *L) {
  l_box_t *b = luaL_checkudata(L, 1, L_READER_MT);
  l_reader_t *r = b->p;
  return r && !r->ended ? r : NULL;   /* at the end: nothing left to pause or resume */
}

/* reader:pause(): no chunk arrives until resume(). */
static int l_reader_pause(lua_State *L) {
  l_reader_t *r = reader_of(L);
  if (r && !r->paused) {
    r->paused = 1;
    if (!r->is_file) uv_read_stop(&r->h.stream);
  }
  return 0;
}

static int l_reader_resume(lua_State *L) {
  l_reader_t *r = reader_of(L);
  if (!r || !r->paused) return 0;
  r->paused = 0;
  int e = 0;
  if (!r->is_file) e = uv_read_start(&r->h.stream, on_alloc, on_stream_read);
  else if (r->held) uv_timer_start(&r->h.timer, on_held, 0, 0);   /* not from inside
                                                                     the caller's code */
  else e = file_read(r);
  if (!e) return 0;
  reader_close(r);   /* fn is not called from inside resume() */
  return l_fail(L, e);
}

/* reader:close(): stops reading; fn is not called again. Twice is fine. */
static int l_reader_close(lua_State *L) {
  l_box_t *b = luaL_checkudata(L, 1, L_READER_MT);
  if (b->p) reader_close(b->p);
  return 0;
}

static const luaL_Reg reader_methods[] = {
  {"pause", l_reader_pause},
  {"resume", l_reader_resume},
  {"close", l_reader_close},
  {NULL, NULL}
};

void l_stdio_open(lua_State *L) {
  l_class_open(L, L_READER_MT, reader_methods, NULL);
  lua_pushcfunction(L, l_reader_new);
  lua_setfield(L, -2, "reader");
}
