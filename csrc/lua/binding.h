/* Shared by the files of the Lua binding: the only C that includes lua.h. */
#ifndef LUAWS_BINDING_H
#define LUAWS_BINDING_H

#include "compat.h"
#include "io.h"

/* The one symbol the module exports (the Makefile builds with -fvisibility=hidden). */
#define LUAWS_EXPORT __attribute__((visibility("default")))

#define L_CONN_MT "luaws.socket"
#define L_SERVER_MT "luaws.server"
#define L_TIMER_MT "luaws.timer"
#define L_BACKPLANE_MT "luaws.backplane"

typedef struct l_box {   /* a userdata: the C object is separately owned by libuv */
  void *p;
  int ref;               /* registry anchor while the C object lives */
  int kind;              /* L_KIND_*: what the conn is to Lua */
} l_box_t;

enum { L_KIND_REQUEST = 0, L_KIND_SOCKET = 1, L_KIND_RAW = 2 };

/* The fields a socket keeps in its box rather than in its uservalue table, as indexes
 * into the state's shared values (l_shared.c): the handlers and the url, which every
 * socket of a server usually has alike. */
enum {
  L_SLOT_ONOPEN, L_SLOT_ONMESSAGE, L_SLOT_ONERROR, L_SLOT_ONCLOSE, L_SLOT_ONDATA,
  L_SLOT_ONDRAIN, L_SLOT_URL,
  L_SLOT_COUNT
};

/* A socket's box: all an idle connection costs Lua besides its registry anchor. Other
 * fields go to the uservalue table, made on first use (l_conn.c). 16-bit slots keep it
 * at 32 bytes, a size class below (a value whose index is over 65535 goes to the
 * uservalue table). */
typedef struct l_sock {
  l_box_t box;
  uint16_t slot[L_SLOT_COUNT];   /* 0: not set here (maybe in the uservalue) */
  uint8_t fields;                /* 1 once the uservalue table is made */
} l_sock_t;

typedef struct l_ctx l_ctx_t;   /* below */


/* Protected call of the function below nargs arguments on the stack. On error the
 * traceback goes to WebSocket.onhandlererror(err, target) or stderr; returns 0, or -1
 * after an error (then the caller applies its own consequence: close 1011, answer 500).
 * target: stack index of the object the handler belongs to, or 0. */
int l_dispatch(lua_State *L, int nargs, int target);
/* The same with debug.traceback (l_push_traceback) already at stack index tb, below the
 * function: for a caller making several calls in a row. Pops the function and args;
 * l_calln leaves nresults results when the call succeeds, none when it fails. */
int l_call(l_ctx_t *x, lua_State *L, int nargs, int tb, int target);
int l_calln(l_ctx_t *x, lua_State *L, int nargs, int nresults, int tb, int target);
void l_push_traceback(l_ctx_t *x, lua_State *L);
/* Pushes a registered Lua hook (see core.init) by name; nil if absent. */
void l_push_hook(l_ctx_t *x, lua_State *L, const char *name);

/* Strings the event path uses every message, made once and pushed from the registry's
 * array part: lua_pushstring/lua_setfield would look each up (hash, strcmp) every time. */
enum {
  L_K_TYPE, L_K_TARGET, L_K_DATA, L_K_BINARY, L_K_LISTENERS,
  L_K_OPEN, L_K_MESSAGE, L_K_ERROR, L_K_CLOSE, L_K_DATA_EV,
  L_K_ONOPEN, L_K_ONMESSAGE, L_K_ONERROR, L_K_ONCLOSE, L_K_ONDATA,
  L_K_MESSAGE_F, L_K_CODE, L_K_REASON, L_K_WASCLEAN,
  L_K_NAME, L_K_DRAIN, L_K_ONDRAIN, L_K_URL,
  L_K_COUNT
};

/* Everything the binding keeps for one Lua state: there is no process-wide state, so two
 * Lua states in one process run two independent luaws. It lives in a userdata in the
 * state's registry (l_ctx); the I/O layer's loop points back at it (ws_loop_data). */
struct l_ctx {
  lua_State *L;              /* the thread that runs the loop (run(), step()) */
  ws_loop_t *loop;           /* made on first use (l_loop) */
  uv_loop_t *uv;             /* luv's loop when luv is loaded in the state, else own_uv */
  uv_loop_t own_uv;
  int own;                   /* own_uv is initialized */
  int running;               /* libuv's loop must not be run from inside itself */
  int traceback_ref;         /* debug.traceback, the message handler */
  int hooks_ref;             /* the Lua module table: onhandlererror, hooks */
  int pending_error_ref;     /* raised by onhandlererror: run() re-raises */
  int shared_ref;            /* l_shared.c: index -> value, value -> index */
  int shared_count_ref;      /* l_shared.c: index -> how many slots hold it */
  int empty_ref;             /* Lua 5.1: the env of a socket without fields of its own */
  int message_ref;           /* calls a handler with a new message event (l_conn.c) */
  int key_refs[L_K_COUNT];
};

l_ctx_t *l_ctx(lua_State *L);   /* the state's context */
void l_conn_ctx_open(l_ctx_t *x, lua_State *L);   /* l_conn.c's part of the context */
static inline l_ctx_t *l_ctx_of(ws_loop_t *l) { return (l_ctx_t *)ws_loop_data(l); }
/* The state's loop, made on first use: on luv's libuv loop when luv is loaded, so that
 * either's run() drives both; else on a loop of its own. Raises when out of memory. */
ws_loop_t *l_loop(lua_State *L);
#define l_push_key(x, L, k) lua_rawgeti((L), LUA_REGISTRYINDEX, (x)->key_refs[k])

/* Pushes the userdata anchored by ref. */
void l_push_ref(lua_State *L, int ref);
l_box_t *l_box_new(lua_State *L, const char *mt, void *p);
/* Raises a Lua error for misuse; returns nil, message, name for runtime failures. */
int l_fail(lua_State *L, int err);
uint64_t l_opt_u64(lua_State *L, int t, const char *name, uint64_t def, uint64_t max);
void l_push_headers(lua_State *L, const ws_http_head_t *h);   /* l_util.c */
int l_uservalue_newindex(lua_State *L);
void l_class_open(lua_State *L, const char *mt, const luaL_Reg *methods, lua_CFunction index);
void l_box_release(l_ctx_t *x, l_box_t *b);

/* Values many boxes hold alike, stored once per state and counted (l_shared.c).
 * hold: the index of the function or string at idx, counted once more; drop: one count
 * less (index 0: nothing); push: the value (nil for 0). */
uint32_t l_shared_hold(l_ctx_t *x, lua_State *L, int idx);
void l_shared_drop(l_ctx_t *x, lua_State *L, uint32_t i);
void l_shared_push(l_ctx_t *x, lua_State *L, uint32_t i);
void l_shared_open(l_ctx_t *x, lua_State *L);

void l_conn_open(lua_State *L);      /* metatable + methods */
/* The socket box at argument 1 (raises if it is not one). */
l_box_t *l_conn_box(lua_State *L);
/* send's kind argument: "binary" or true -> 1; "text", nil or false -> 0; else raises. */
int l_opt_binary(lua_State *L, int arg);
/* socket methods and module functions of the topics (l_topics.c) */
int l_conn_subscribe(lua_State *L);
int l_conn_unsubscribe(lua_State *L);
int l_conn_is_subscribed(lua_State *L);
int l_conn_topics(lua_State *L);
int l_publish(lua_State *L);
int l_subscribers(lua_State *L);

/* The Redis backplane (l_backplane.c): core.backplane, its metatable, and publish's
 * answer when its queue is full (nil, "EBACKPLANE: ...", "EBACKPLANE"). */
int l_backplane(lua_State *L);
void l_backplane_open(lua_State *L);
int l_backplane_full(lua_State *L, ws_backplane_t *bp);

void l_server_open(lua_State *L);
void l_tls_open(lua_State *L);
void l_stdio_open(lua_State *L);   /* core.reader: the metatable and the function */
void l_process_open(lua_State *L);   /* core.spawn, core.cpus */
void l_signal_open(lua_State *L);    /* core.signal, core.signals */
/* A signal argument at idx: a number, or a name ("SIGTERM" or "TERM"); def when absent.
 * Raises for an unknown name. */
int l_signal_arg(lua_State *L, int idx, int def);
int l_conn_push_new(lua_State *L, ws_conn_t *c);   /* wraps c (server side) */

void l_conn_options(lua_State *L, int t, ws_conn_options_t *o);
void l_extension_options(lua_State *L, int t, ws_conn_options_t *o);   /* l_ext.c */
extern const ws_io_events_t l_events;

/* module functions living in other files */
int l_connect(lua_State *L);
int l_accept(lua_State *L);
int l_http_write(lua_State *L);
int l_http_end(lua_State *L);
int l_defer(lua_State *L);
int l_http_keepable(lua_State *L);
int l_listen(lua_State *L);
int l_broadcast(lua_State *L);
int l_uservalue(lua_State *L);
int l_tls_context(lua_State *L);

/* TLS (l_tls.c): the context at idx (NULL for nil; raises for anything else), and
 * req.tls for a TLS connection's request table at the top. */
ws_tls_ctx_t *l_tls_opt(lua_State *L, int idx);
void l_tls_push_info(lua_State *L, ws_conn_t *c);

#endif
