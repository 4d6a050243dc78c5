/* For tests only (spec/c/test_conn.c, spec/fuzz/fuzz_conn.c): connections whose socket
 * is a script. The test pushes the peer's bytes in, takes the bytes the peer read, says
 * how much the peer reads, and runs the loop; no socket is ever opened. The tests link it
 * with the very conn.c, server.c and client.c the binding uses (the Makefile's build has
 * it too; the rock leaves it out); nothing else calls it. Call these from outside the
 * conn's event callbacks. */
#ifndef LUAWS_SCRIPTED_H
#define LUAWS_SCRIPTED_H

#include "io.h"

typedef struct ws_script ws_script_t;   /* the peer's end; the test frees it */

/* A server with no listener, for scripted conns; ws_server_close closes it. */
ws_server_t *ws_script_server(ws_loop_t *l, const ws_server_options_t *o, void *data);

/* A server conn reading a request head, as if s had just accepted it; s NULL: no
 * server (default options; the conn is dropped at its request head). NULL on ENOMEM. */
ws_script_t *ws_script_accept(ws_loop_t *l, ws_server_t *s);

/* A client conn in the opening handshake, its request head written: the response to it
 * is what the script pushes next. NULL on failure. */
ws_script_t *ws_script_connect(ws_loop_t *l, const char *path, const char *host,
                               const char *protocols, const char *extra_headers,
                               const ws_conn_options_t *o, void *data);

/* The same through an HTTP proxy: what the script pushes first is the proxy's answer
 * to the CONNECT request the conn wrote (the upgrade request follows a 2xx). */
ws_script_t *ws_script_connect_proxy(ws_loop_t *l, const char *path, const char *host,
                                     const char *protocols, const char *extra_headers,
                                     const ws_conn_options_t *o,
                                     const ws_proxy_options_t *proxy, void *data);

/* The conn, or NULL once its handle has closed (and its memory may be gone). */
ws_conn_t *ws_script_conn(const ws_script_t *p);

/* The peer sends len bytes. While the conn reads they arrive at once, as reads of at
 * most the buffer the conn offers (on_alloc); else they wait for ws_script_run. */
void ws_script_push(ws_script_t *p, const void *data, size_t len);
/* The peer's FIN, after what it sent. */
void ws_script_eof(ws_script_t *p);

/* How many more bytes the peer reads (SIZE_MAX, the start: all; 0: it stops reading).
 * Past it try_write says UV_EAGAIN and writes stay pending. */
void ws_script_window(ws_script_t *p, size_t bytes);

/* The bytes the peer read since the last call; valid until the next call. */
const char *ws_script_take(ws_script_t *p, size_t *len);
int ws_script_reading(const ws_script_t *p);   /* the conn reads its socket */
int ws_script_fin(const ws_script_t *p);       /* the conn shut its side down */

/* One turn of the sockets, then of the loop: pending writes go as far as the peer's
 * window, then input waiting for a reading conn and a pending EOF arrive, then a
 * shutdown whose writes are done completes; then uv_run(mode) (timers, close
 * callbacks). Returns uv_run's result. */
int ws_script_run(ws_loop_t *l, uv_run_mode mode);

/* The deadline sweep as if ahead_ms more had passed (deterministic timeouts). */
void ws_script_sweep(ws_loop_t *l, uint32_t ahead_ms);

/* Frees the script; a conn still attached is terminated, and the script goes with its
 * handle (run the loop to finish). */
void ws_script_free(ws_script_t *p);

#endif
