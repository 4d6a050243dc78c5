/* Sockets without a libuv handle each. Every conn's socket sits in one epoll set that
 * the loop owns, and libuv watches that set through one uv_poll_t; a listening server's
 * socket sits there too. A conn then costs an fd number and a few bytes of its own,
 * where a uv_tcp_t cost 248 bytes, and reads and writes are plain read(2) and writev(2)
 * calls, as libuv's own were.
 *
 * The conn says which readiness it waits for (ws__sock_ops.want); the set holds only the
 * sockets that wait for something, level-triggered, so a socket that is not read is not
 * reported again and again. What the set reports goes to ws__conn_io. A conn's memory
 * outlives its socket until the loop's next turn (ws__loop_reap), so an event for a
 * socket closed earlier in the same batch finds a closed conn, never freed memory. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>
#include "internal.h"

#define WS__POLL_BATCH 256   /* events taken per turn; the rest wait for the next */

static int sys_err(void) { return uv_translate_sys_error(errno); }

/* The poll handle (or ws_loop_run's keep handle) keeps libuv's loop running while some
 * socket waits for something. */
static void set_active(ws_loop_t *l, int delta) {
  int was = l->sock_active > 0;
  l->sock_active += delta;
  int is = l->sock_active > 0;
  if (was == is) return;
  if (is) {
    uv_ref((uv_handle_t *)&l->sock_poll);
    uv_ref((uv_handle_t *)&l->keep);
  } else {
    uv_unref((uv_handle_t *)&l->sock_poll);
    uv_unref((uv_handle_t *)&l->keep);
  }
}

/* Registers, changes or removes fd's interest; tag is what the set reports back. */
static int set_interest(ws_loop_t *l, int fd, unsigned was, unsigned now, uint64_t tag) {
  if (was == now) return 0;
  struct epoll_event e;
  memset(&e, 0, sizeof e);
  e.events = (now & WS__IO_READ ? EPOLLIN : 0u) | (now & WS__IO_WRITE ? EPOLLOUT : 0u);
  e.data.u64 = tag;
  int op = !was ? EPOLL_CTL_ADD : !now ? EPOLL_CTL_DEL : EPOLL_CTL_MOD;
  if (epoll_ctl(l->sock_epfd, op, fd, &e) != 0) return sys_err();
  if (!was) set_active(l, 1);
  else if (!now) set_active(l, -1);
  return 0;
}

/* ---- a conn's socket ------------------------------------------------------------ */

static int s_want(ws_conn_t *c, unsigned ev) {
  if (c->fd < 0) {   /* not connected yet: nothing to wait on */
    c->io_ev = 0;
    return 0;
  }
  int r = set_interest(c->loop, c->fd, c->io_ev, ev, (uint64_t)(uintptr_t)c);
  if (r == 0) c->io_ev = (uint8_t)ev;
  return r;
}

static ssize_t s_read(ws_conn_t *c, char *buf, size_t len) {
  ssize_t n;
  do n = read(c->fd, buf, len);
  while (n < 0 && errno == EINTR);
  if (n >= 0) return n;
  return errno == EAGAIN || errno == EWOULDBLOCK ? UV_EAGAIN : sys_err();
}

static ssize_t s_write(ws_conn_t *c, const ws_iov_t *iov, unsigned n) {
  ssize_t r;
  if (n == 1) {   /* the usual case (a corked batch, the queue): write(2) is the cheaper */
    do r = write(c->fd, iov[0].base, iov[0].len);
    while (r < 0 && errno == EINTR);
    if (r >= 0) return r;
    return errno == EAGAIN || errno == EWOULDBLOCK ? UV_EAGAIN : sys_err();
  }
  struct iovec v[WS__MAX_IOV];
  if (n > WS__MAX_IOV) n = WS__MAX_IOV;
  for (unsigned i = 0; i < n; i++) {
    v[i].iov_base = (void *)iov[i].base;
    v[i].iov_len = iov[i].len;
  }
  do r = writev(c->fd, v, (int)n);
  while (r < 0 && errno == EINTR);
  if (r >= 0) return r;
  return errno == EAGAIN || errno == EWOULDBLOCK ? UV_EAGAIN : sys_err();
}

static int s_shutdown(ws_conn_t *c) {
  if (c->fd < 0) return UV_ENOTCONN;
  return shutdown(c->fd, SHUT_WR) == 0 ? 0 : sys_err();
}

static void s_close(ws_conn_t *c) {
  if (c->fd < 0) return;
  s_want(c, 0);
  close(c->fd);
  c->fd = -1;
}

static int s_peer(const ws_conn_t *c, struct sockaddr_storage *ss) {
  socklen_t n = sizeof *ss;
  if (c->fd < 0) return UV_ENOTCONN;
  return getpeername(c->fd, (struct sockaddr *)ss, &n) == 0 ? 0 : sys_err();
}

const ws__stream_ops_t ws__sock_ops = {s_want, s_read, s_write, s_shutdown, s_close, s_peer};

static void no_delay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);   /* not TCP: no matter */
}

int ws__sock_open(ws_conn_t *c, int fd) {
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0) return sys_err();
  fcntl(fd, F_SETFD, FD_CLOEXEC);
  no_delay(fd);
  c->fd = fd;
  return 0;
}

int ws__sock_connect(ws_conn_t *c, const struct sockaddr *a, socklen_t alen) {
  int fd = socket(a->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return sys_err();
  c->fd = fd;   /* closed with the conn from here on */
  no_delay(fd);
  int r;
  do r = connect(fd, a, alen);
  while (r != 0 && errno == EINTR);
  if (r != 0 && errno != EINPROGRESS) return sys_err();
  /* Done or under way: writable says which (SO_ERROR), from the loop, never from here. */
  c->flags |= WS__F_CONNECTING;
  return ws__io(c)->want(c, WS__IO_WRITE);
}

int ws__sock_connect_result(ws_conn_t *c) {
  int err = 0;
  socklen_t n = sizeof err;
  if (c->fd < 0) return UV_ENOTCONN;
  if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &n) != 0) return sys_err();
  return err ? uv_translate_sys_error(err) : 0;
}

/* ---- other sockets in the set (a server's listener) ----------------------------- */

int ws__poll_set(ws_loop_t *l, ws__pollable_t *p, unsigned ev) {
  int r = set_interest(l, p->fd, p->ev, ev, (uint64_t)(uintptr_t)p | 1u);
  if (r == 0) p->ev = ev;
  return r;
}

/* ---- the loop's set ----------------------------------------------------------------- */

#define WS__TAG_UV 2   /* ws_loop_run: libuv's backend fd in the set */

/* Hands n events of the set to their sockets; returns whether libuv's fd was among them. */
static int dispatch(struct epoll_event *ev, int n) {
  int uv_ready = 0;
  for (int i = 0; i < n; i++) {
    uint64_t tag = ev[i].data.u64;
    if (tag == WS__TAG_UV) {
      uv_ready = 1;
      continue;
    }
    unsigned e = ev[i].events, io = 0;
    if (e & (EPOLLIN | EPOLLERR | EPOLLHUP)) io |= WS__IO_READ;
    if (e & (EPOLLOUT | EPOLLERR | EPOLLHUP)) io |= WS__IO_WRITE;
    if (tag & 1) {
      ws__pollable_t *p = (ws__pollable_t *)(uintptr_t)(tag & ~(uint64_t)1);
      if (p->ev) p->cb(p, io);
    } else {
      ws_conn_t *c = (ws_conn_t *)(uintptr_t)tag;
      if (c->fd >= 0) ws__conn_io(c, io & c->io_ev);
    }
  }
  return uv_ready;
}

static void on_poll(uv_poll_t *h, int status, int events) {
  (void)status, (void)events;
  ws_loop_t *l = h->data;
  struct epoll_event ev[WS__POLL_BATCH];
  int n;
  do n = epoll_wait(l->sock_epfd, ev, WS__POLL_BATCH, 0);
  while (n < 0 && errno == EINTR);
  if (n > 0) dispatch(ev, n);
}

/* After libuv's poll phase: a uv_stop made by a libuv callback is noted here, before
 * uv_run clears it on its way out. */
static void keep_cb(uv_check_t *h) {
  ws_loop_t *l = h->data;
  if (l->uv->stop_flag) l->stopped = 1;
}

/* The set is where the process sleeps: libuv's backend fd goes into it (so the poll
 * handle, which put the set into libuv's, stops: epoll sets cannot nest both ways), and
 * libuv turns (uv_run, without waiting) when its fd is ready or its next timer is due. */
void ws_loop_run(ws_loop_t *l) {
  uv_loop_t *uv = l->uv;
  struct epoll_event e;
  memset(&e, 0, sizeof e);
  e.events = EPOLLIN;
  e.data.u64 = WS__TAG_UV;
  uv_poll_stop(&l->sock_poll);
  if (epoll_ctl(l->sock_epfd, EPOLL_CTL_ADD, uv_backend_fd(uv), &e) != 0) {
    uv_poll_start(&l->sock_poll, UV_READABLE, on_poll);   /* as before, nested */
    uv_run(uv, UV_RUN_DEFAULT);
    return;
  }
  uv_check_start(&l->keep, keep_cb);
  l->stopped = 0;
  struct epoll_event ev[WS__POLL_BATCH];
  for (;;) {
    uv_update_time(uv);
    if (uv->stop_flag || l->stopped) {   /* uv_stop: from a socket's handler, or libuv's */
      uv->stop_flag = 0;
      break;
    }
    if (!uv_loop_alive(uv)) break;
    int t = uv_backend_timeout(uv);
    int n;
    do n = epoll_wait(l->sock_epfd, ev, WS__POLL_BATCH, t);
    while (n < 0 && errno == EINTR);
    int uv_turn = t == 0 || n <= 0;   /* work was due, or the wait ran out: a timer */
    if (n > 0 && dispatch(ev, n)) uv_turn = 1;
    if (!uv_turn && t > 0) {   /* a timer may have come due while the sockets ran */
      uv_update_time(uv);
      uv_turn = uv_backend_timeout(uv) == 0;
    }
    if (uv_turn && !uv->stop_flag) uv_run(uv, UV_RUN_NOWAIT);
  }
  epoll_ctl(l->sock_epfd, EPOLL_CTL_DEL, uv_backend_fd(uv), &e);
  uv_check_stop(&l->keep);
  uv_poll_start(&l->sock_poll, UV_READABLE, on_poll);
}

/* At the loop's next turn: the conns whose socket closed lose that reference (and their
 * memory with the last one), and the conns that asked for it send FIN (marked by the
 * low bit). */
static void on_reap(uv_idle_t *h) {
  ws_loop_t *l = h->data;
  while (l->nreap) {   /* what this closes goes in the same turn */
    size_t n = l->nreap;
    uintptr_t *batch = l->reap;
    l->reap = NULL;
    l->nreap = l->capreap = 0;
    for (size_t i = 0; i < n; i++) {
      ws_conn_t *c = (ws_conn_t *)(batch[i] & ~(uintptr_t)1);
      if (batch[i] & 1) ws__conn_fin(c);
      ws__conn_unref(c);
    }
    free(batch);
  }
  uv_idle_stop(h);
}

static void defer(ws_conn_t *c, uintptr_t tag) {
  ws_loop_t *l = c->loop;
  if (l->nreap == l->capreap) {
    size_t cap = l->capreap ? l->capreap * 2 : 16;
    uintptr_t *p = realloc(l->reap, cap * sizeof *p);
    if (!p) abort();   /* memory of conns that can never be freed: nothing sane is left */
    l->reap = p;
    l->capreap = cap;
  }
  l->reap[l->nreap++] = (uintptr_t)c | tag;
  uv_idle_start(&l->reaper, on_reap);
}

void ws__loop_reap(ws_conn_t *c) { defer(c, 0); }

void ws__loop_defer_fin(ws_conn_t *c) {
  c->refs++;
  defer(c, 1);
}

int ws__sock_loop_init(ws_loop_t *l) {
  l->sock_epfd = epoll_create1(EPOLL_CLOEXEC);
  if (l->sock_epfd < 0) return sys_err();
  l->spare_fd = open("/", O_RDONLY | O_CLOEXEC);   /* see ws__sock_accept_failed */
  int r = uv_poll_init(l->uv, &l->sock_poll, l->sock_epfd);
  if (r) {
    close(l->sock_epfd);
    if (l->spare_fd >= 0) close(l->spare_fd);
    return r;
  }
  l->sock_poll.data = l;
  uv_poll_start(&l->sock_poll, UV_READABLE, on_poll);
  uv_unref((uv_handle_t *)&l->sock_poll);   /* referenced while a socket waits */
  uv_idle_init(l->uv, &l->reaper);
  l->reaper.data = l;
  uv_check_init(l->uv, &l->keep);
  l->keep.data = l;
  uv_unref((uv_handle_t *)&l->keep);
  return 0;
}

void ws__sock_loop_close(ws_loop_t *l) {
  uv_close((uv_handle_t *)&l->sock_poll, NULL);
  uv_close((uv_handle_t *)&l->reaper, NULL);
  uv_close((uv_handle_t *)&l->keep, NULL);
  close(l->sock_epfd);
  if (l->spare_fd >= 0) close(l->spare_fd);
  free(l->reap);
}

int ws__loop_own_handle(const ws_loop_t *l, const uv_handle_t *h) {
  return h == (const uv_handle_t *)&l->sweep || h == (const uv_handle_t *)&l->sock_poll ||
         h == (const uv_handle_t *)&l->reaper || h == (const uv_handle_t *)&l->keep;
}

/* Out of fds (EMFILE): the peers waiting in the backlog would be reported again and
 * again. The spare fd makes room to take each one and close it (it learns at once that
 * it was refused, rather than waiting in vain), as libuv does. */
void ws__sock_accept_failed(ws_loop_t *l, int listen_fd) {
  if (l->spare_fd < 0) return;
  close(l->spare_fd);
  for (int i = 0; i < 64; i++) {
    int fd = accept(listen_fd, NULL, NULL);
    if (fd < 0) break;
    close(fd);
  }
  l->spare_fd = open("/", O_RDONLY | O_CLOEXEC);
}
