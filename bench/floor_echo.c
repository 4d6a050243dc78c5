/* floor_echo: the thinnest WebSocket echo server we can write, as a measuring stick for
 * test a (bench/run.sh). One thread, epoll, no libuv, no Lua, no checks beyond what the
 * load generator needs: a read, an unmask, a write. What it reaches is what the kernel
 * and the generator allow on this machine, and so the ceiling for any server there.
 *
 *   floor_echo        listens on 127.0.0.1, any free port, and prints "listening on PORT"
 *
 * It answers an upgrade request with 101 and then echoes every data frame unmasked. It
 * is not a server to use: it trusts its peer (frames are at most BUF_SIZE bytes,
 * requests come whole in one read), and closes the connection on anything else. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ws.h"

#define BUF_SIZE (256 * 1024)
#define MAX_FD 65536

typedef struct {   /* per connection: an unfinished frame's bytes */
  char *buf;
  size_t len;
  int open;        /* 1 after the handshake */
} peer_t;

static peer_t peers[MAX_FD];
static char in[BUF_SIZE], out[BUF_SIZE + 16];

static void drop(int fd) {
  free(peers[fd].buf);
  memset(&peers[fd], 0, sizeof peers[fd]);
  close(fd);
}

static void handshake(int fd) {
  ssize_t r = read(fd, in, sizeof in - 1);
  if (r <= 0) {
    drop(fd);
    return;
  }
  in[r] = 0;
  char *k = strcasestr(in, "\r\nSec-WebSocket-Key:");
  char *end = k ? strstr(k + 20, "\r\n") : NULL;
  if (!end) {
    drop(fd);
    return;
  }
  k += 20;
  while (*k == ' ') k++;
  char accept[29];
  ws_handshake_accept(k, (size_t)(end - k), accept);
  int n = snprintf(out, sizeof out,
                   "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Accept: %.28s\r\n\r\n", accept);
  if (write(fd, out, (size_t)n) != n) {
    drop(fd);
    return;
  }
  peers[fd].open = 1;
}

/* Echoes the whole frames in p[0..n); returns the bytes used, or -1 to drop. */
static ssize_t echo(int fd, char *p, size_t n) {
  size_t pos = 0, o = 0;
  while (n - pos >= 2) {
    uint8_t *h = (uint8_t *)p + pos;
    uint64_t len = h[1] & 0x7F;
    size_t hl = 2;
    if (len == 126) {
      if (n - pos < 4) break;
      len = (uint64_t)h[2] << 8 | h[3];
      hl = 4;
    } else if (len == 127) {
      if (n - pos < 10) break;
      len = 0;
      for (int i = 2; i < 10; i++) len = len << 8 | h[i];
      hl = 10;
    }
    if (!(h[1] & 0x80) || len > BUF_SIZE / 2 || (h[0] & 0x0F) == WS_OP_CLOSE) return -1;
    if (n - pos < hl + 4 + len) break;
    if (o + 10 + len > sizeof out) {   /* flush what is made so far */
      if (write(fd, out, o) != (ssize_t)o) return -1;
      o = 0;
    }
    char *d = (char *)h + hl + 4;
    ws_mask(d, (size_t)len, h + hl, 0);
    o += ws_frame_header((uint8_t *)out + o, 1, 0, h[0] & 0x0F, len, NULL);
    memcpy(out + o, d, (size_t)len);
    o += (size_t)len;
    pos += hl + 4 + (size_t)len;
  }
  if (o && write(fd, out, o) != (ssize_t)o) return -1;   /* a short write: give up */
  return (ssize_t)pos;
}

static void readable(int fd) {
  peer_t *pe = &peers[fd];
  if (!pe->open) {
    handshake(fd);
    return;
  }
  size_t have = pe->len;
  if (have) memcpy(in, pe->buf, have);
  ssize_t r = read(fd, in + have, sizeof in - have);
  if (r <= 0) {
    drop(fd);
    return;
  }
  size_t n = have + (size_t)r;
  ssize_t used = echo(fd, in, n);
  if (used < 0) {
    drop(fd);
    return;
  }
  pe->len = n - (size_t)used;
  if (pe->len) {
    char *nb = realloc(pe->buf, pe->len);
    if (!nb) {
      drop(fd);
      return;
    }
    pe->buf = nb;
    memcpy(pe->buf, in + used, pe->len);
  }
}

int main(void) {
  int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t al = sizeof a;
  if (ls < 0 || bind(ls, (struct sockaddr *)&a, sizeof a) < 0 || listen(ls, 4096) < 0 ||
      getsockname(ls, (struct sockaddr *)&a, &al) < 0) {
    perror("floor_echo: listen");
    return 1;
  }
  printf("listening on %d\n", ntohs(a.sin_port));
  fflush(stdout);
  int ep = epoll_create1(0);
  struct epoll_event e = {.events = EPOLLIN, .data.fd = ls}, evs[512];
  epoll_ctl(ep, EPOLL_CTL_ADD, ls, &e);
  for (;;) {
    int n = epoll_wait(ep, evs, 512, -1);
    for (int i = 0; i < n; i++) {
      int fd = evs[i].data.fd;
      if (fd != ls) {
        readable(fd);
        continue;
      }
      int c;
      while ((c = accept4(ls, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
        if (c >= MAX_FD) {
          close(c);
          continue;
        }
        setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        e.data.fd = c;
        epoll_ctl(ep, EPOLL_CTL_ADD, c, &e);
      }
    }
  }
}
