/* loadgen: a WebSocket load generator for luaws' benchmarks (bench/run.sh).
 *
 *   loadgen echo    [opts]   closed loop: -c conns, -m messages in flight each, -s bytes
 *   loadgen idle    [opts]   open -c conns, hold them -d seconds (or until SIGINT/SIGUSR1),
 *                            counting any message the server pushes (broadcast)
 *   loadgen connect [opts]   -c workers: connect, handshake, close frame, TCP close; repeat
 *
 * With -S every connection runs over TLS (wss://), in all three modes. Each run prints one
 * summary line of key=value pairs on stdout.
 *
 * Design criteria: the generator must not be what it measures. So: epoll, level
 * triggered, one read buffer per thread; the client frames (masked, as RFC 6455 5.3
 * requires) are built once per run and written straight from a buffer of m copies, so a
 * reply costs one read share and one write share; replies are parsed just far enough to
 * count messages (no unmasking, no UTF-8 check); one clock read per read() call. Its own
 * CPU time is printed so a saturated generator shows. The handshake uses the protocol
 * core (csrc/core) to parse and check the server's response.
 *
 * With -z every connection offers permessage-deflate (RFC 7692) and sends JSON-like text
 * messages compressed with context takeover; each echo is inflated and compared with the
 * message it answers, byte for byte. The connections of a thread all send the same
 * sequence of messages from a fresh context, so message i compresses to the same bytes on
 * every one of them: it is compressed once, when the first connection gets to it, which
 * leaves the generator's CPU for the kernel and the inflating. zlib is used directly, not
 * through the protocol core's compressor, so a fault there cannot cancel itself out.
 *
 * TLS (-S) is OpenSSL on the generator's own non-blocking sockets (SSL_set_fd), driven by
 * the same epoll loop: SSL_ERROR_WANT_READ/WRITE become the events waited for. It reads
 * ahead into a buffer big enough for a whole reply and stops calling SSL_read once OpenSSL
 * holds no bytes, so a reply costs one read() as in plain mode. The certificate is not
 * verified: this is a load tool. Encryption is work the generator does too, and its
 * printed CPU use includes it. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <zlib.h>

#include "deflate.h"
#include "message.h"
#include "ws.h"

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

enum { MODE_ECHO, MODE_IDLE, MODE_CONNECT };
static const char *mode_names[] = {"echo", "idle", "connect"};

/* Connection states. C_TLS: TCP is up, the TLS handshake runs (-S only). */
enum { C_FREE, C_CONNECTING, C_TLS, C_HANDSHAKE, C_OPEN, C_CLOSING, C_DEAD };

#define MAX_ADDRS 64
#define HS_BUF 1024           /* a 101 response is ~130 bytes; anything bigger is odd */
#define READ_BUF (256 * 1024)
#define SMALL_READ 1024       /* header reads when replies are large (see conn_event) */
#define HIST_SUB 32           /* 32 sub-buckets per power of two: ~3% resolution */
#define HIST_N (64 + 58 * HIST_SUB)

/* ---- options ------------------------------------------------------------ */

static struct {
  int mode;
  const char *host;
  int port;
  const char *path;
  int conns;            /* echo/idle: connections; connect: concurrent workers */
  int inflight;
  size_t size;
  int binary;
  double seconds;
  int threads;
  int open_parallel;    /* handshakes in progress at once while opening (idle/echo) */
  double max_fail_pct;  /* exit 2 when handshake failures exceed this share */
  long expect_msgs;     /* idle: stop once this many messages arrived (0: never) */
  int rss_pid;          /* idle: report this process's VmRSS growth per connection */
  int ready_fd;         /* idle: write "ready\n" here once all conns are open (-1: none) */
  int verbose;
  int tls;              /* -S: wss:// */
  int deflate;          /* -z: permessage-deflate */
  struct sockaddr_in dst;
  struct sockaddr_in src[MAX_ADDRS];
  int nsrc;
} opt = {
    .mode = MODE_ECHO, .host = "127.0.0.1", .port = 8000, .path = "/", .conns = 100,
    .inflight = 1, .size = 16, .seconds = 10, .threads = 1, .open_parallel = 256,
    .max_fail_pct = 1.0, .ready_fd = -1,
};

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig) {
  (void)sig;
  stop_flag = 1;
}

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- latency histogram (log-linear, nanoseconds) ------------------------- */

typedef struct hist {
  uint64_t count[HIST_N];
  uint64_t total;
} hist_t;

static int hist_index(uint64_t v) {
  if (v < 64) return (int)v;
  int e = 63 - __builtin_clzll(v);                  /* 6..63 */
  int sub = (int)((v >> (e - 5)) & (HIST_SUB - 1)); /* the 5 bits after the top one */
  return 64 + (e - 6) * HIST_SUB + sub;
}

static uint64_t hist_value(int i) {   /* the middle of bucket i */
  if (i < 64) return (uint64_t)i;
  int e = (i - 64) / HIST_SUB + 6, sub = (i - 64) % HIST_SUB;
  uint64_t lo = ((uint64_t)(HIST_SUB + sub)) << (e - 5);
  return lo + (((uint64_t)1 << (e - 5)) >> 1);
}

static void hist_add(hist_t *h, uint64_t v) {
  h->count[hist_index(v)]++;
  h->total++;
}

static double hist_pct_us(const hist_t *h, double pct) {
  if (!h->total) return 0;
  uint64_t want = (uint64_t)(pct / 100.0 * (double)h->total + 0.5), seen = 0;
  if (want < 1) want = 1;
  for (int i = 0; i < HIST_N; i++) {
    seen += h->count[i];
    if (seen >= want) return (double)hist_value(i) / 1000.0;
  }
  return 0;
}

/* ---- per-thread state ----------------------------------------------------- */

typedef struct conn {
  int fd;
  uint8_t state;
  uint8_t hdr_have;      /* bytes of a split frame header kept in hdr */
  uint8_t opcode;        /* opcode of the frame being skipped */
  uint8_t fin;           /* FIN of the current data frame */
  uint8_t ctl;           /* 1 while skipping the rest of a control frame's payload */
  uint8_t hdr[WS_MAX_HEADER];
  /* TLS: the operation that last stopped waits for the other direction (SSL_read for
   * EPOLLOUT, SSL_write for EPOLLIN), and how the TLS stream ended (1 close_notify or EOF,
   * 2 error) when that came behind data still to be handled */
  uint8_t rd_wants_out, wr_wants_in, tls_end;
  uint16_t hs_len;
  uint32_t events;       /* the epoll events asked for now */
  int src;               /* index into opt.src */
  uint64_t remaining;    /* payload bytes of the current frame still to come */
  uint64_t msg_len;      /* payload bytes of the current message so far */
  uint64_t t_start;      /* connect: when the connection was started */
  /* echo: frames in flight, their send times (a ring of opt.inflight), pending output */
  uint32_t ring_head, ring_n;
  uint64_t *ring;
  size_t wpos, wleft;
  char *hs;              /* the handshake response so far; freed once open */
  SSL *ssl;              /* -S */
  struct zconn *z;       /* -z */
  struct worker *w;
} conn_t;

/* -z: a connection's side of permessage-deflate. Output is the frames of messages tx..,
 * pending from wpos to olen (they differ, so the prebuilt ring of plain echo cannot be
 * used); input is the echo being inflated, checked against message rx at its end. */
typedef struct zconn {
  z_stream in;
  uint8_t in_init;       /* in holds an inflater (made at the first compressed echo) */
  uint8_t rsv1;          /* the message being read came compressed */
  uint8_t in_end;        /* its deflate stream ended (BFINAL): start afresh after it */
  char *obuf;
  size_t olen, ocap;
  char *ibuf;            /* the echo so far, opt.size + 1 bytes (one more shows a longer one) */
  size_t ilen;
  uint64_t tx, rx;       /* index of the next message to send, and of the next echo */
} zconn_t;

/* -z: one message, kept for the thread's connections: its masked frame and its text. */
typedef struct zmsg {
  char *frame;
  size_t frame_len, payload_len;
  char *text;
} zmsg_t;

typedef struct worker {
  int id;
  int epfd;
  conn_t *conns;
  int nconns;            /* conns (echo/idle) or workers (connect) of this thread */
  int next_src;
  int opening;           /* echo/idle: handshakes in progress */
  int opened_ok;         /* connections whose handshake succeeded */
  int next_to_open;
  int open_now;          /* connections currently open */
  char *rbuf;
  hist_t hist;
  uint64_t msgs, bytes, errors, hs_fail, hs_ok, closed_by_peer;
  uint64_t first_rx, last_rx;   /* idle: monotonic times of the first/last message */
  char tls_desc[96];            /* -S: version/cipher of the first connection opened */
  int measuring;                /* echo: every thread has opened its connections */
  /* -z: the messages made so far (see the top), the compressor that made them, set up
   * from the first connection's agreement (the others must agree the same), and counts */
  zmsg_t *zmsgs;
  size_t zmsgs_n, zmsgs_cap;
  z_stream zout;
  int zout_init;
  ws_deflate_params_t zparams;
  char zagreed[128];            /* the first connection's Sec-WebSocket-Extensions */
  uint64_t z_plain, z_bad, z_tx_wire, z_rx_wire, z_tx_msgs, z_rx_msgs;
  pthread_t tid;
} worker_t;

static char *frames;          /* echo: opt.inflight copies of the masked client frame */
static size_t frame_len;
static char close_frame[8];   /* masked close frame, code 1000 */
static size_t close_len;
static char request[1024];
static size_t request_len;
static char client_key[25];
static const uint8_t mask_key[4] = {0x37, 0xfa, 0x21, 0x3d};
static ws_deflate_config_t zconfig;   /* -z: what is offered (the core's defaults) */
static int large_replies;     /* plain echo, messages >= 4 * SMALL_READ: discard payloads */
static SSL_CTX *tls_ctx;      /* -S */
static uint64_t t_run_start, t_run_end;

/* ---- permessage-deflate (-z) ------------------------------------------------------- */

/* Makes message w->zmsgs_n: its text, and its frame compressed by the thread's one
 * compressor (RFC 7692 7.2.1: a sync flush, the trailing 00 00 ff ff taken off, RSV1). */
static int zmsg_make(worker_t *w) {
  if (w->zmsgs_n == w->zmsgs_cap) {
    size_t cap = w->zmsgs_cap ? 2 * w->zmsgs_cap : 1024;
    zmsg_t *m = realloc(w->zmsgs, cap * sizeof *m);
    if (!m) return -1;
    w->zmsgs = m;
    w->zmsgs_cap = cap;
  }
  if (!w->zout_init) {
    /* zlib's raw deflate has no 8-bit window: Huffman coding alone needs none */
    int bits = w->zparams.client_max_window_bits ? w->zparams.client_max_window_bits : 15;
    if (deflateInit2(&w->zout, Z_DEFAULT_COMPRESSION, Z_DEFLATED, bits < 9 ? -9 : -bits, 8,
                     bits < 9 ? Z_HUFFMAN_ONLY : Z_DEFAULT_STRATEGY) != Z_OK)
      return -1;
    w->zout_init = 1;
  } else if (w->zparams.client_no_context_takeover) {
    deflateReset(&w->zout);
  }
  zmsg_t *m = &w->zmsgs[w->zmsgs_n];
  size_t cap = WS_MAX_HEADER + opt.size + opt.size / 8 + 64;
  char *text = malloc(opt.size), *z = malloc(cap);
  if (!text || !z) {
    free(text);
    free(z);
    return -1;
  }
  make_message(w->zmsgs_n, text, opt.size);
  w->zout.next_in = (Bytef *)text;
  w->zout.avail_in = (uInt)opt.size;
  w->zout.next_out = (Bytef *)z + WS_MAX_HEADER;
  w->zout.avail_out = (uInt)(cap - WS_MAX_HEADER);
  int r = deflate(&w->zout, Z_SYNC_FLUSH);
  size_t clen = cap - WS_MAX_HEADER - w->zout.avail_out;
  if (r != Z_OK || w->zout.avail_in || !w->zout.avail_out || clen < 4 ||
      memcmp(z + WS_MAX_HEADER + clen - 4, "\0\0\xff\xff", 4) != 0) {
    free(text);
    free(z);
    return -1;
  }
  clen -= 4;
  uint8_t hdr[WS_MAX_HEADER];
  size_t h = ws_frame_header(hdr, 1, WS_RSV1, WS_OP_TEXT, clen, mask_key);
  memcpy(z + WS_MAX_HEADER - h, hdr, h);
  ws_mask(z + WS_MAX_HEADER, clen, mask_key, 0);
  memmove(z, z + WS_MAX_HEADER - h, h + clen);
  m->frame = z;
  m->frame_len = h + clen;
  m->payload_len = clen;
  m->text = text;
  w->zmsgs_n++;
  return 0;
}

static const zmsg_t *zmsg_get(worker_t *w, uint64_t i) {
  while (w->zmsgs_n <= i)
    if (zmsg_make(w) < 0) return NULL;
  return &w->zmsgs[i];
}

/* Queues the frames of the connection's next k messages; bytes queued, or 0 when out
 * of memory. */
static size_t z_queue(conn_t *c, uint32_t k) {
  zconn_t *z = c->z;
  size_t added = 0;
  if (!c->wleft) z->olen = c->wpos = 0;
  for (uint32_t i = 0; i < k; i++) {
    const zmsg_t *m = zmsg_get(c->w, z->tx);
    if (!m) return 0;
    if (z->olen + m->frame_len > z->ocap) {
      size_t cap = 2 * (z->olen + m->frame_len);
      char *o = realloc(z->obuf, cap);
      if (!o) return 0;
      z->obuf = o;
      z->ocap = cap;
    }
    memcpy(z->obuf + z->olen, m->frame, m->frame_len);
    z->olen += m->frame_len;
    added += m->frame_len;
    c->w->z_tx_wire += m->payload_len;
    c->w->z_tx_msgs++;
    z->tx++;
  }
  return added;
}

static void z_free_in(zconn_t *z) {
  if (z->in_init) inflateEnd(&z->in);
  z->in_init = 0;
}

/* A new connection in this slot starts from a fresh context. */
static void z_reset(conn_t *c) {
  z_free_in(c->z);
  c->z->ilen = c->z->olen = 0;
  c->z->tx = c->z->rx = 0;
}

/* n payload bytes of the echo being read (RFC 7692 7.2.2): inflated when it came with
 * RSV1, else kept as they are. 0, or -1 when the data is corrupt. */
static int z_feed(conn_t *c, const char *p, size_t n) {
  zconn_t *z = c->z;
  size_t cap = opt.size + 1;
  if (!z->rsv1) {
    size_t k = n < cap - z->ilen ? n : cap - z->ilen;
    memcpy(z->ibuf + z->ilen, p, k);
    z->ilen += k;
    return 0;
  }
  if (z->in_end) return 0;   /* RFC 7692 7.2.3.4: a BFINAL block ended the stream */
  if (!z->in_init) {
    memset(&z->in, 0, sizeof z->in);
    if (inflateInit2(&z->in, -15) != Z_OK) return -1;   /* 15 reads any smaller window */
    z->in_init = 1;
  }
  z->in.next_in = (Bytef *)p;
  z->in.avail_in = (uInt)n;
  while (z->in.avail_in && z->ilen < cap) {
    z->in.next_out = (Bytef *)z->ibuf + z->ilen;
    z->in.avail_out = (uInt)(cap - z->ilen);
    int r = inflate(&z->in, Z_SYNC_FLUSH);
    z->ilen = cap - z->in.avail_out;
    if (r == Z_STREAM_END) {
      z->in_end = 1;
      break;
    }
    if (r != Z_OK) return r == Z_BUF_ERROR ? 0 : -1;
  }
  return 0;   /* an echo longer than the message stops at cap: the check sees it */
}

/* The echo is complete: 1 if it is the message it answers, 0 if not, -1 if its
 * compressed data was corrupt. */
static int z_finish(conn_t *c) {
  static const char tail[4] = {0, 0, (char)0xff, (char)0xff};
  zconn_t *z = c->z;
  worker_t *w = c->w;
  int ok = 1;
  if (z->rsv1) {
    w->z_rx_wire += c->msg_len;
    w->z_rx_msgs++;
    if (z_feed(c, tail, sizeof tail) < 0) ok = -1;
    if (z->in_init && w->zparams.server_no_context_takeover) {
      inflateReset(&z->in);
    } else if (z->in_init && z->in_end) {
      /* a new stream, that may still refer to the old one's window */
      Bytef dict[1 << 15];
      uInt n = 0;
      if (inflateGetDictionary(&z->in, dict, &n) != Z_OK || inflateReset(&z->in) != Z_OK ||
          (n && inflateSetDictionary(&z->in, dict, n) != Z_OK))
        ok = -1;
    }
    z->in_end = 0;
  } else {
    w->z_plain++;   /* legal, but then this is not a deflate benchmark: an error here */
    ok = 0;
  }
  const zmsg_t *m = z->rx < w->zmsgs_n ? &w->zmsgs[z->rx] : NULL;
  if (ok == 1 && (!m || z->ilen != opt.size || memcmp(z->ibuf, m->text, opt.size) != 0)) ok = 0;
  if (ok == 0 && z->rsv1) w->z_bad++;
  z->rx++;
  z->ilen = 0;
  return ok;
}

/* ---- connection plumbing --------------------------------------------------- */

static void conn_close(conn_t *c) {
  if (c->ssl) {
    SSL_free(c->ssl);   /* the socket BIO does not own the fd */
    c->ssl = NULL;
  }
  if (c->fd >= 0) {
    close(c->fd);   /* close() also takes it out of the epoll set */
    c->fd = -1;
  }
  if (c->state == C_OPEN || c->state == C_CLOSING) c->w->open_now--;
  if (c->state == C_CONNECTING || c->state == C_TLS || c->state == C_HANDSHAKE) c->w->opening--;
  c->state = C_DEAD;
  if (c->z) z_reset(c);
  free(c->hs);
  c->hs = NULL;
}

/* Asks epoll for ev; no syscall when that is what it watches already. */
static void set_events(conn_t *c, uint32_t ev) {
  if (ev == c->events) return;
  struct epoll_event e = {.events = ev, .data.ptr = c};
  epoll_ctl(c->w->epfd, EPOLL_CTL_MOD, c->fd, &e);
  c->events = ev;
}

/* Once the request is sent: always readable; writable while output waits for the socket,
 * or while TLS needs it for a read (or has bytes for one, see conn_read). */
static void update_events(conn_t *c) {
  set_events(c, (c->wleft && !c->wr_wants_in) || c->rd_wants_out ? EPOLLIN | EPOLLOUT : EPOLLIN);
}

/* Says why TLS failed (with -v) and empties OpenSSL's error queue, which must be empty
 * before the next SSL call on this thread for SSL_get_error to be right. */
static void tls_error(const char *what) {
  if (opt.verbose) {
    char buf[256];
    unsigned long e = ERR_get_error();
    if (e) ERR_error_string_n(e, buf, sizeof buf);
    else snprintf(buf, sizeof buf, "%s", errno ? strerror(errno) : "connection closed");
    fprintf(stderr, "loadgen: %s: %s\n", what, buf);
  }
  ERR_clear_error();
}

/* write(2) on the connection, through TLS with -S: bytes taken, or -1 with errno (EAGAIN
 * when TLS must wait; wr_wants_in tells for which event). Partial-write mode makes
 * SSL_write return once per record, so a retry starts at the first byte not taken, as the
 * OpenSSL contract asks (the buffer may move: all prebuilt frames are equal). */
static ssize_t conn_write(conn_t *c, const char *p, size_t n) {
  if (!c->ssl) return write(c->fd, p, n);
  size_t done = 0;
  c->wr_wants_in = 0;
  while (done < n) {
    int k = SSL_write(c->ssl, p + done, n - done > INT32_MAX ? INT32_MAX : (int)(n - done));
    if (k > 0) {
      done += (size_t)k;
      continue;
    }
    int e = SSL_get_error(c->ssl, k);
    if (e == SSL_ERROR_WANT_READ) {
      c->wr_wants_in = 1;
    } else if (e != SSL_ERROR_WANT_WRITE) {
      tls_error("SSL_write");
      if (!done) {
        errno = EPIPE;
        return -1;
      }
    }
    break;
  }
  if (!done) {
    errno = EAGAIN;
    return -1;
  }
  return (ssize_t)done;
}

/* read(2) on the connection, through TLS with -S: bytes, 0 at the end, or -1 with errno.
 * With read-ahead, OpenSSL fetches all the socket has; SSL_read is called again only while
 * it still holds bytes, so no read() is spent on EAGAIN. When buf fills first, or the end
 * came behind data, rd_wants_out makes the next epoll turn (EPOLLOUT) come back here. */
static ssize_t conn_read(conn_t *c, char *buf, size_t n) {
  if (!c->ssl) return read(c->fd, buf, n);
  c->rd_wants_out = 0;
  if (c->tls_end) {
    errno = ECONNRESET;
    return c->tls_end == 1 ? 0 : -1;
  }
  size_t got = 0;
  while (got < n) {   /* each turn adds a byte or leaves */
    int k = SSL_read(c->ssl, buf + got, n - got > INT32_MAX ? INT32_MAX : (int)(n - got));
    if (k > 0) {
      got += (size_t)k;
      if (!SSL_has_pending(c->ssl)) break;
      if (got == n) c->rd_wants_out = 1;
      continue;
    }
    int e = SSL_get_error(c->ssl, k);
    if (e == SSL_ERROR_WANT_WRITE) c->rd_wants_out = 1;
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) break;
    c->tls_end = e == SSL_ERROR_ZERO_RETURN ? 1 : 2;
    if (c->tls_end == 2) tls_error("SSL_read");
    if (got) {
      c->rd_wants_out = 1;
      break;
    }
    errno = ECONNRESET;
    return c->tls_end == 1 ? 0 : -1;
  }
  if (!got) {
    errno = EAGAIN;
    return -1;
  }
  return (ssize_t)got;
}

/* Starts a non-blocking connect from the next source address. 0 or -1. */
static int conn_start(conn_t *c) {
  worker_t *w = c->w;
  c->state = C_DEAD;
  c->hdr_have = c->ctl = 0;
  c->remaining = c->msg_len = 0;
  c->hs_len = 0;
  c->ring_head = c->ring_n = 0;
  c->wpos = c->wleft = 0;
  c->rd_wants_out = c->wr_wants_in = c->tls_end = 0;
  c->t_start = now_ns();
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  int one = 1;
  /* connect mode writes only when all it sent was answered: Nagle never holds a byte */
  if (opt.mode != MODE_CONNECT) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (opt.nsrc) {
    /* The port is picked at connect() time, per destination, so each source address
     * gives a full ephemeral range (~28k) towards the server. */
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    c->src = w->next_src++ % opt.nsrc;
    if (bind(fd, (struct sockaddr *)&opt.src[c->src], sizeof opt.src[0]) < 0) {
      close(fd);
      return -1;
    }
  }
  if (connect(fd, (struct sockaddr *)&opt.dst, sizeof opt.dst) < 0 && errno != EINPROGRESS) {
    close(fd);
    return -1;
  }
  c->fd = fd;
  c->state = C_CONNECTING;
  w->opening++;
  c->events = EPOLLOUT;
  if (!opt.tls) {
    /* On loopback the TCP handshake is usually done inside connect(): then the request
     * goes now, and the wait for writability (an epoll turn, SO_ERROR, a MOD) is saved.
     * If it is not done yet, write fails with EAGAIN and the usual path follows. */
    ssize_t n = write(fd, request, request_len);
    if (n == (ssize_t)request_len) {
      c->state = C_HANDSHAKE;
      c->events = EPOLLIN;
    } else if (n >= 0 || (errno != EAGAIN && errno != ENOTCONN)) {
      conn_close(c);
      return -1;
    }
  }
  struct epoll_event e = {.events = c->events, .data.ptr = c};
  if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &e) < 0) {
    conn_close(c);
    return -1;
  }
  return 0;
}

static void hs_failed(conn_t *c, const char *why) {
  if (opt.verbose) fprintf(stderr, "loadgen: handshake failed: %s\n", why);
  c->w->hs_fail++;
  conn_close(c);
}

static void conn_opened(conn_t *c);
static void conn_got_data(conn_t *c, char *p, size_t n, uint64_t t);

/* Sends the upgrade request (it fits the socket buffer of a fresh socket). */
static void send_request(conn_t *c) {
  ssize_t n = conn_write(c, request, request_len);
  if (n != (ssize_t)request_len) {
    hs_failed(c, "short write of the upgrade request");
    return;
  }
  c->state = C_HANDSHAKE;
  update_events(c);
}

/* One step of the TLS handshake, then the upgrade request once it is done. */
static void tls_handshake(conn_t *c) {
  int r = SSL_do_handshake(c->ssl);
  if (r == 1) {
    send_request(c);
    return;
  }
  int e = SSL_get_error(c->ssl, r);
  if (e == SSL_ERROR_WANT_READ) {
    set_events(c, EPOLLIN);
  } else if (e == SSL_ERROR_WANT_WRITE) {
    set_events(c, EPOLLOUT);
  } else {
    tls_error("TLS handshake");
    hs_failed(c, "TLS handshake");
  }
}

static void on_connected(conn_t *c) {
  int err = 0;
  socklen_t len = sizeof err;
  getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
  if (err) {
    hs_failed(c, strerror(err));
    return;
  }
  if (!opt.tls) {
    send_request(c);
    return;
  }
  if (!(c->ssl = SSL_new(tls_ctx)) || SSL_set_fd(c->ssl, c->fd) != 1) {
    tls_error("SSL_new");
    hs_failed(c, "SSL_new");
    return;
  }
  SSL_set_connect_state(c->ssl);
  c->state = C_TLS;
  tls_handshake(c);
}

/* -z: the response must take the offer; the parameters it agrees must be the ones the
 * thread's first connection got, as its messages are compressed once for all. */
static int check_deflate(conn_t *c, const ws_http_head_t *head, const char **why) {
  worker_t *w = c->w;
  ws_ext_list_t ext;
  ws_deflate_params_t p;
  ws_ext_list_init(&ext);
  if (ws_ext_parse_head(&ext, head) != 0) {
    *why = "malformed Sec-WebSocket-Extensions";
    return -1;
  }
  if (ext.num_items != 1 || !ws_ext_name_is(ext.items[0].name, ext.items[0].name_len,
                                            WS_DEFLATE_NAME)) {
    *why = ext.num_items ? "an extension that was not offered"
                         : "the server did not accept permessage-deflate";
    return -1;
  }
  if (ws_deflate_client_accept(&zconfig, &ext.items[0], &p) != 0) {
    *why = "permessage-deflate parameters the offer did not allow";
    return -1;
  }
  if (!w->zagreed[0]) {
    const ws_header_t *h = ws_http_find(head, "Sec-WebSocket-Extensions");
    size_t k = 0;
    for (size_t i = 0; h && i < h->value_len && k + 1 < sizeof w->zagreed; i++)
      if (h->value[i] != ' ') w->zagreed[k++] = h->value[i];   /* one token in the summary */
    w->zagreed[k] = 0;
    w->zparams = p;
  } else if (memcmp(&p, &w->zparams, sizeof p) != 0) {
    *why = "permessage-deflate parameters differ between connections";
    return -1;
  }
  return 0;
}

/* The response with the protocol core; with -z the extension is checked here and the
 * rest by the core, which knows no extensions (it is shown the head without them). */
static int check_response(conn_t *c, const ws_http_head_t *head, const char **why) {
  if (!opt.deflate) return ws_handshake_check_response(head, client_key, NULL, why);
  ws_header_t rest[32];
  ws_http_head_t h = *head;
  h.headers = rest;
  h.num_headers = 0;
  for (size_t i = 0; i < head->num_headers; i++)
    if (!(head->headers[i].name_len == sizeof "Sec-WebSocket-Extensions" - 1 &&
          strncasecmp(head->headers[i].name, "Sec-WebSocket-Extensions",
                      head->headers[i].name_len) == 0))
      rest[h.num_headers++] = head->headers[i];
  if (ws_handshake_check_response(&h, client_key, NULL, why) != 0) return -1;
  return check_deflate(c, head, why);
}

/* Handshake bytes arrived: check the response with the protocol core. */
static void on_handshake_data(conn_t *c, uint64_t t) {
  if (!c->hs && !(c->hs = malloc(HS_BUF))) {
    hs_failed(c, "out of memory");
    return;
  }
  ssize_t n = conn_read(c, c->hs + c->hs_len, HS_BUF - c->hs_len);
  if (n <= 0) {
    if (n < 0 && errno == EAGAIN) {
      update_events(c);
      return;
    }
    hs_failed(c, n == 0 ? "connection closed during the handshake" : strerror(errno));
    return;
  }
  c->hs_len += (uint16_t)n;
  ws_header_t headers[32];
  ws_http_head_t head = {.headers = headers, .num_headers = 32};
  int r = ws_http_parse_response(c->hs, c->hs_len, &head);
  if (r == WS_EAGAIN) {
    if (c->hs_len == HS_BUF) hs_failed(c, "response head too large");
    return;
  }
  const char *why = "malformed response";
  if (r < 0 || check_response(c, &head, &why) != 0) {
    hs_failed(c, why);
    return;
  }
  /* Frames the server sent right behind the head go to the frame reader. */
  size_t rest = c->hs_len - (size_t)r;
  char tail[HS_BUF];
  memcpy(tail, c->hs + r, rest);
  free(c->hs);
  c->hs = NULL;
  c->w->opening--;
  c->w->open_now++;
  c->state = C_OPEN;
  c->w->hs_ok++;
  if (c->ssl && !c->w->tls_desc[0])
    snprintf(c->w->tls_desc, sizeof c->w->tls_desc, "%s/%s", SSL_get_version(c->ssl),
             SSL_get_cipher_name(c->ssl));
  conn_opened(c);
  if (rest && c->state == C_OPEN) conn_got_data(c, tail, rest, t);
  /* TLS may hold more bytes behind the head (rd_wants_out); in connect mode, a failed
   * close frame has already started the next connection in this slot */
  if (c->state == C_OPEN || c->state == C_CLOSING) update_events(c);
}

/* ---- echo ----------------------------------------------------------------- */

/* Writes what is pending; waits for the socket (or TLS) while some is left. */
static void echo_flush(conn_t *c) {
  ssize_t n = conn_write(c, c->z ? c->z->obuf + c->wpos : frames + c->wpos, c->wleft);
  if (n < 0) {
    if (errno != EAGAIN) {
      c->w->errors++;
      conn_close(c);
      return;
    }
    n = 0;
  }
  c->wleft -= (size_t)n;
  c->wpos = c->z ? c->wpos + (size_t)n : (c->wpos + (size_t)n) % frame_len;
  update_events(c);
}

/* Queues k more frames. Without -z all frames are equal, so pending output is always a
 * suffix of the prebuilt buffer starting at wpos, at most inflight frames long. */
static void echo_send(conn_t *c, uint32_t k, uint64_t t) {
  for (uint32_t i = 0; i < k; i++) {
    c->ring[(c->ring_head + c->ring_n) % (uint32_t)opt.inflight] = t;
    c->ring_n++;
  }
  int idle_before = c->wleft == 0;
  if (c->z) {
    size_t n = z_queue(c, k);
    if (!n) {
      c->w->errors++;
      conn_close(c);
      return;
    }
    c->wleft += n;
  } else {
    c->wleft += (size_t)k * frame_len;
  }
  if (idle_before) echo_flush(c);
  /* else the event that echo_flush waits for is on already, and it sends the lot */
}

static void echo_start(conn_t *c) { echo_send(c, (uint32_t)opt.inflight, now_ns()); }

/* A whole message came back. */
static void on_message(conn_t *c, uint64_t t) {
  worker_t *w = c->w;
  if (opt.mode == MODE_CONNECT) return;   /* it only counts closing handshakes */
  if (opt.mode == MODE_ECHO) {
    if (c->msg_len != opt.size || !c->ring_n) w->errors++;
    if (c->ring_n) {
      uint64_t sent = c->ring[c->ring_head];
      c->ring_head = (c->ring_head + 1) % (uint32_t)opt.inflight;
      c->ring_n--;
      if (w->measuring) {
        hist_add(&w->hist, t - sent);
        w->msgs++;
        w->bytes += c->msg_len;
      }
    }
  } else {
    w->msgs++;
    w->bytes += c->msg_len;
    if (!w->first_rx) w->first_rx = t;
    w->last_rx = t;
  }
}

/* ---- connect ---------------------------------------------------------------- */

static void connect_next(conn_t *c) {
  while (!stop_flag && conn_start(c) < 0) {
    c->w->errors++;
    c->w->hs_fail++;
    if (errno == EMFILE || errno == EADDRNOTAVAIL) {
      /* out of descriptors or ports: back off instead of spinning */
      struct timespec ts = {0, 1000000};
      nanosleep(&ts, NULL);
    }
  }
}

static void connect_done(conn_t *c, uint64_t t, int ok) {
  worker_t *w = c->w;
  if (ok) {
    w->msgs++;
    hist_add(&w->hist, t - c->t_start);
    if (c->ssl && c->tls_end != 2) {
      SSL_shutdown(c->ssl);   /* our close_notify, as a well-behaved client sends it */
      ERR_clear_error();
    }
  } else {
    w->errors++;
  }
  conn_close(c);
  if (!stop_flag) connect_next(c);
}

/* ---- frame reader (server frames: unmasked) -------------------------------- */

/* Length of the frame header starting with these two bytes. */
static size_t header_len(const uint8_t *h) {
  size_t n = 2 + ((h[1] & 0x7f) == 126 ? 2 : (h[1] & 0x7f) == 127 ? 8 : 0);
  return n + ((h[1] & 0x80) ? 4 : 0);
}

static uint64_t header_payload(const uint8_t *h) {
  uint64_t len = h[1] & 0x7f;
  if (len == 126) return ((uint64_t)h[2] << 8) | h[3];
  if (len == 127) {
    len = 0;
    for (int i = 2; i < 10; i++) len = (len << 8) | h[i];
  }
  return len;
}

/* Counts messages in n bytes of frames; payloads are skipped, not looked at. p is NULL
 * when the n bytes were payload discarded in the kernel. */
static void conn_got_data(conn_t *c, char *p, size_t n, uint64_t t) {
  uint32_t done = 0;
  while (n) {
    if (c->remaining) {
      size_t k = c->remaining < n ? (size_t)c->remaining : n;
      c->remaining -= k;
      if (c->z && !c->ctl && z_feed(c, p, k) < 0) {
        c->w->errors++;   /* corrupt: the stream cannot go on */
        conn_close(c);
        return;
      }
      if (p) p += k;
      n -= k;
      if (!c->ctl) c->msg_len += k;
      if (c->remaining) break;
      if (c->ctl) {
        c->ctl = 0;
        continue;
      }
    } else {
      /* a frame header, perhaps split across reads */
      const uint8_t *h;
      size_t need;
      if (c->hdr_have == 0 && n >= 2 && n >= header_len((const uint8_t *)p)) {
        h = (const uint8_t *)p;
        need = header_len(h);
        p += need;
        n -= need;
      } else {
        while (n && (c->hdr_have < 2 || c->hdr_have < header_len(c->hdr))) {
          c->hdr[c->hdr_have++] = (uint8_t)*p++;
          n--;
        }
        if (c->hdr_have < 2 || c->hdr_have < header_len(c->hdr)) break;
        h = c->hdr;
        c->hdr_have = 0;
      }
      if (h[1] & 0x80) {   /* RFC 6455 5.1: a server must not mask */
        c->w->errors++;
        conn_close(c);
        return;
      }
      int op = h[0] & 0x0f;
      c->remaining = header_payload(h);
      if (op >= WS_OP_CLOSE) {
        /* a control frame: skip its payload (<= 125 bytes) whole or in parts */
        size_t k = c->remaining < n ? (size_t)c->remaining : n;
        c->remaining -= k;
        p += k;
        n -= k;
        if (op == WS_OP_CLOSE) {
          if (opt.mode == MODE_CONNECT && c->state == C_CLOSING) {
            connect_done(c, t, 1);
          } else {
            c->w->closed_by_peer++;
            c->w->errors++;
            conn_close(c);
          }
          return;
        }
        c->ctl = c->remaining != 0;   /* a ping or pong split across reads */
        continue;
      }
      c->fin = h[0] & 0x80;
      if (op) {
        c->opcode = (uint8_t)op;
        c->msg_len = 0;
        if (c->z) c->z->rsv1 = (h[0] & WS_RSV1) != 0;
      }
    }
    if (!c->remaining && c->fin) {
      if (c->z) {
        int ok = z_finish(c);
        if (ok < 0) {
          c->w->errors++;
          conn_close(c);
          return;
        }
        if (!ok) c->w->errors++;
        c->msg_len = opt.size;   /* counted above; the rest counts it as a message */
        if (opt.mode == MODE_IDLE) z_free_in(c->z);   /* it expects no more */
      }
      on_message(c, t);
      done++;
      c->msg_len = 0;
    }
  }
  if (done && opt.mode == MODE_ECHO && c->state == C_OPEN && !stop_flag) echo_send(c, done, t);
}

/* ---- per-connection events ---------------------------------------------------- */

static void conn_opened(conn_t *c) {
  if (opt.mode == MODE_CONNECT) {
    ssize_t n = conn_write(c, close_frame, close_len);
    if (n != (ssize_t)close_len) {
      connect_done(c, now_ns(), 0);
      return;
    }
    c->state = C_CLOSING;
  } else if (opt.mode == MODE_ECHO && c->w->measuring) {
    echo_start(c);
  } else if (opt.mode == MODE_IDLE && c->z) {
    /* one message each way, so that both sides' zlib state exists before the hold */
    size_t n = z_queue(c, 1);
    if (!n) {
      c->w->errors++;
      conn_close(c);
      return;
    }
    c->wleft = n;
    echo_flush(c);
  }
}

static void conn_event(conn_t *c, uint32_t ev) {
  worker_t *w = c->w;
  if (c->state == C_CONNECTING || c->state == C_TLS || c->state == C_HANDSHAKE) {
    if (c->state == C_CONNECTING) on_connected(c);
    else if (c->state == C_TLS) tls_handshake(c);
    else on_handshake_data(c, now_ns());
    if (opt.mode == MODE_CONNECT && c->state == C_DEAD && !stop_flag) connect_next(c);
    return;
  }
  if (c->wleft && ((ev & EPOLLOUT) || (c->wr_wants_in && (ev & EPOLLIN)))) {
    echo_flush(c);
    if (c->state == C_DEAD) return;
  }
  if ((ev & (EPOLLIN | EPOLLERR | EPOLLHUP)) || (c->rd_wants_out && (ev & EPOLLOUT))) {
    ssize_t n;
    uint64_t t = now_ns();
    if (large_replies) {
      /* Big payloads are never looked at, so they are dropped in the kernel
       * (MSG_TRUNC on TCP discards without copying): a small read for the header,
       * then one discard for the payload. */
      n = read(c->fd, w->rbuf, SMALL_READ);
      if (n > 0) {
        conn_got_data(c, w->rbuf, (size_t)n, t);
        if (c->state == C_OPEN && c->remaining >= SMALL_READ && !c->ctl) {
          ssize_t k = recv(c->fd, NULL, (size_t)c->remaining, MSG_TRUNC | MSG_DONTWAIT);
          if (k > 0) conn_got_data(c, NULL, (size_t)k, t);
        }
        return;
      }
    } else {
      n = conn_read(c, w->rbuf, READ_BUF);
      if (n > 0) {
        conn_got_data(c, w->rbuf, (size_t)n, t);
        if (c->ssl && (c->state == C_OPEN || c->state == C_CLOSING)) {
          if (c->wleft && c->wr_wants_in) echo_flush(c);   /* what SSL_write waited for came */
          else update_events(c);
        }
        return;
      }
    }
    if (n < 0 && errno == EAGAIN) {
      if (c->ssl) update_events(c);
    } else {
      if (opt.mode == MODE_CONNECT && c->state == C_CLOSING) {
        connect_done(c, now_ns(), 1);   /* the server closed TCP right behind its frame */
      } else {
        w->closed_by_peer++;
        w->errors++;
        conn_close(c);
      }
    }
  }
}

/* ---- the loop -------------------------------------------------------------------- */

/* echo/idle: keeps up to open_parallel handshakes going until every conn was tried. */
static void open_more(worker_t *w) {
  while (w->next_to_open < w->nconns && w->opening < opt.open_parallel && !stop_flag) {
    conn_t *c = &w->conns[w->next_to_open++];
    if (conn_start(c) < 0) {
      if (opt.verbose) fprintf(stderr, "loadgen: connect: %s\n", strerror(errno));
      w->hs_fail++;
    }
  }
}

static int all_tried(worker_t *w) { return w->next_to_open == w->nconns && w->opening == 0; }

static void run_loop(worker_t *w, uint64_t until_ns, int until_opened) {
  struct epoll_event evs[512];
  while (!stop_flag) {
    if (until_opened) {
      open_more(w);
      if (all_tried(w)) return;
    }
    uint64_t t = now_ns();
    if (until_ns && t >= until_ns) return;
    int timeout = 100;
    if (until_ns && (until_ns - t) / 1000000 < (uint64_t)timeout) timeout = (int)((until_ns - t) / 1000000) + 1;
    int n = epoll_wait(w->epfd, evs, 512, timeout);
    if (n < 0) {
      if (errno == EINTR) continue;
      perror("epoll_wait");
      return;
    }
    for (int i = 0; i < n; i++) {
      conn_t *c = evs[i].data.ptr;
      if (c->state != C_DEAD && c->state != C_FREE) conn_event(c, evs[i].events);
    }
    if (opt.mode == MODE_IDLE && opt.expect_msgs && !until_opened) {
      /* threads each count their own; a single thread is the usual case here */
      if ((long)w->msgs >= opt.expect_msgs / opt.threads) return;
    }
  }
}

static pthread_barrier_t opened_barrier;
static pthread_barrier_t done_barrier;

static void *worker_main(void *arg) {
  worker_t *w = arg;
  uint64_t deadline;
  if (opt.mode == MODE_CONNECT) {
    pthread_barrier_wait(&opened_barrier);
    deadline = now_ns() + (uint64_t)(opt.seconds * 1e9);
    for (int i = 0; i < w->nconns && !stop_flag; i++) connect_next(&w->conns[i]);
    run_loop(w, deadline, 0);
  } else {
    /* opening is bounded too: a server that never answers must not hang us */
    run_loop(w, now_ns() + (uint64_t)(opt.seconds * 1e9) + 30000000000ull, 1);
    w->opened_ok = (int)w->hs_ok;
    pthread_barrier_wait(&opened_barrier);
    deadline = now_ns() + (uint64_t)(opt.seconds * 1e9);
    w->measuring = 1;
    if (opt.mode == MODE_ECHO) {
      for (int i = 0; i < w->nconns; i++)
        if (w->conns[i].state == C_OPEN) echo_start(&w->conns[i]);
    }
    run_loop(w, deadline, 0);
  }
  pthread_barrier_wait(&done_barrier);
  return NULL;
}

/* ---- setup ------------------------------------------------------------------------ */

static void usage(void) {
  fprintf(stderr,
          "usage: loadgen echo|idle|connect [options]\n"
          "  -h HOST      server address (127.0.0.1)\n"
          "  -p PORT      server port (8000)\n"
          "  -P PATH      request path (/)\n"
          "  -c N         connections (echo, idle) or concurrent workers (connect) [100]\n"
          "  -m K         messages in flight per connection (echo) [1]\n"
          "  -s BYTES     message size (echo; idle with -z) [16; 1024 with -z]\n"
          "  -b           binary messages (default: text)\n"
          "  -d SECONDS   duration [10]; idle: hold time (SIGINT/SIGUSR1 ends it early)\n"
          "  -a ADDRS     source addresses: 127.0.0.1,127.0.0.2 or 127.0.0.1-8\n"
          "  -t N         threads [1]\n"
          "  -o N         handshakes in progress at once while opening [256]\n"
          "  -F PCT       exit 2 when more than PCT%% of handshakes fail [1]\n"
          "  -x N         idle: stop once N messages arrived (broadcast test)\n"
          "  -r PID       idle: report PID's VmRSS growth per connection\n"
          "  -R FD        idle: write \"ready\" to FD once every connection is open\n"
          "  -S           TLS (wss://); the server's certificate is not verified\n"
          "  -z           permessage-deflate: offer it, send -s bytes (256..4096) of\n"
          "               JSON-like text compressed, inflate and check each echo;\n"
          "               idle: one message each way on every connection first\n"
          "  -v           say why handshakes fail\n");
  exit(1);
}

static int parse_addrs(const char *s) {
  char buf[256];
  snprintf(buf, sizeof buf, "%s", s);
  for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
    char *dash = strchr(tok, '-');
    int lo, hi;
    struct in_addr a;
    if (dash) {
      *dash = 0;
      if (inet_pton(AF_INET, tok, &a) != 1) return -1;
      lo = (int)(ntohl(a.s_addr) & 0xff);
      hi = atoi(dash + 1);
      if (hi < lo || hi > 255) return -1;
    } else {
      if (inet_pton(AF_INET, tok, &a) != 1) return -1;
      lo = hi = (int)(ntohl(a.s_addr) & 0xff);
    }
    uint32_t base = ntohl(a.s_addr) & ~0xffu;
    for (int i = lo; i <= hi; i++) {
      if (opt.nsrc == MAX_ADDRS) return -1;
      struct sockaddr_in *sa = &opt.src[opt.nsrc++];
      memset(sa, 0, sizeof *sa);
      sa->sin_family = AF_INET;
      sa->sin_addr.s_addr = htonl(base | (uint32_t)i);
    }
  }
  return 0;
}

static void build_frames(void) {
  const uint8_t *key = mask_key;
  uint8_t hdr[WS_MAX_HEADER];
  size_t h = ws_frame_header(hdr, 1, 0, opt.binary ? WS_OP_BINARY : WS_OP_TEXT,
                             opt.size, key);
  frame_len = h + opt.size;
  frames = malloc(frame_len * (size_t)opt.inflight);
  if (!frames) {
    perror("malloc");
    exit(1);
  }
  memcpy(frames, hdr, h);
  for (size_t i = 0; i < opt.size; i++)
    frames[h + i] = opt.binary ? (char)(i * 131 + 7) : (char)('a' + i % 26);
  ws_mask(frames + h, opt.size, key, 0);
  for (int i = 1; i < opt.inflight; i++) memcpy(frames + (size_t)i * frame_len, frames, frame_len);

  char payload[2] = {0x03, (char)0xe8};   /* 1000, normal closure */
  size_t ch = ws_frame_header((uint8_t *)close_frame, 1, 0, WS_OP_CLOSE, 2, key);
  memcpy(close_frame + ch, payload, 2);
  ws_mask(close_frame + ch, 2, key, 0);
  close_len = ch + 2;

  if (ws_handshake_client_key(client_key) != 0) {
    fprintf(stderr, "loadgen: no random source\n");
    exit(1);
  }
  /* -z: the core's default offer, "permessage-deflate; client_max_window_bits" */
  char offer[128] = "";
  size_t offer_len = 0;
  ws_deflate_config_default(&zconfig);
  if (opt.deflate && ws_deflate_client_offer(&zconfig, offer, sizeof offer, &offer_len) != 0) {
    fprintf(stderr, "loadgen: cannot make the permessage-deflate offer\n");
    exit(1);
  }
  int n = snprintf(request, sizeof request,
                   "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                   "Sec-WebSocket-Version: 13\r\n%s%s%s\r\n",
                   opt.path, opt.host, opt.port, client_key,
                   opt.deflate ? "Sec-WebSocket-Extensions: " : "", offer,
                   opt.deflate ? "\r\n" : "");
  if (n <= 0 || (size_t)n >= sizeof request) {
    fprintf(stderr, "loadgen: path too long\n");
    exit(1);
  }
  request_len = (size_t)n;
}

static int tls_setup(void) {
  if (!(tls_ctx = SSL_CTX_new(TLS_client_method()))) {
    tls_error("SSL_CTX_new");
    return -1;
  }
  SSL_CTX_set_verify(tls_ctx, SSL_VERIFY_NONE, NULL);
  SSL_CTX_set_mode(tls_ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
#ifdef SSL_OP_IGNORE_UNEXPECTED_EOF
  SSL_CTX_set_options(tls_ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);   /* TCP close ends it too */
#endif
  /* read ahead: one read() takes all the socket has, into a buffer that holds a whole
   * reply (plus record overheads) in echo; idle connections keep no buffers at all */
  SSL_CTX_set_read_ahead(tls_ctx, 1);
  if (opt.mode == MODE_ECHO) {
    size_t want = frame_len * (size_t)opt.inflight;
    want += want / 16 + 4096;
    SSL_CTX_set_default_read_buffer_len(tls_ctx, want < READ_BUF ? want : READ_BUF);
  } else if (opt.mode == MODE_IDLE) {
    SSL_CTX_set_mode(tls_ctx, SSL_MODE_RELEASE_BUFFERS);
  }
  return 0;
}

static long vmrss_kb(int pid) {
  char path[64], line[256];
  long kb = -1;
  snprintf(path, sizeof path, "/proc/%d/status", pid);
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "VmRSS: %ld", &kb) == 1) break;
  fclose(f);
  return kb;
}

static double cpu_seconds(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
         ru.ru_stime.tv_usec / 1e6;
}

int main(int argc, char **argv) {
  if (argc < 2) usage();
  int m;
  for (m = 0; m < 3; m++)
    if (strcmp(argv[1], mode_names[m]) == 0) break;
  if (m == 3) usage();
  opt.mode = m;
  if (m == MODE_CONNECT) opt.conns = 50;
  int ch, size_set = 0;
  optind = 2;
  while ((ch = getopt(argc, argv, "h:p:P:c:m:s:bd:a:t:o:F:x:r:R:Svz")) != -1) {
    switch (ch) {
    case 'h': opt.host = optarg; break;
    case 'p': opt.port = atoi(optarg); break;
    case 'P': opt.path = optarg; break;
    case 'c': opt.conns = atoi(optarg); break;
    case 'm': opt.inflight = atoi(optarg); break;
    case 's': opt.size = (size_t)strtoull(optarg, NULL, 10); size_set = 1; break;
    case 'b': opt.binary = 1; break;
    case 'd': opt.seconds = atof(optarg); break;
    case 'a':
      if (parse_addrs(optarg) < 0) usage();
      break;
    case 't': opt.threads = atoi(optarg); break;
    case 'o': opt.open_parallel = atoi(optarg); break;
    case 'F': opt.max_fail_pct = atof(optarg); break;
    case 'x': opt.expect_msgs = atol(optarg); break;
    case 'r': opt.rss_pid = atoi(optarg); break;
    case 'R': opt.ready_fd = atoi(optarg); break;
    case 'S': opt.tls = 1; break;
    case 'v': opt.verbose = 1; break;
    case 'z': opt.deflate = 1; break;
    default: usage();
    }
  }
  if (opt.deflate && !size_set) opt.size = 1024;
  if (opt.conns < 1 || opt.inflight < 1 || opt.threads < 1 || opt.threads > opt.conns ||
      opt.seconds <= 0 || opt.port <= 0 || opt.port > 65535 || opt.open_parallel < 1 ||
      (opt.deflate && (opt.binary || opt.size < 256 || opt.size > 4096)))
    usage();
  opt.dst.sin_family = AF_INET;
  opt.dst.sin_port = htons((uint16_t)opt.port);
  if (inet_pton(AF_INET, opt.host, &opt.dst.sin_addr) != 1) {
    fprintf(stderr, "loadgen: -h takes an IPv4 address\n");
    return 1;
  }
  build_frames();
  /* TLS has to decrypt every byte, so only plain replies can be dropped in the kernel */
  large_replies = !opt.tls && !opt.deflate && opt.mode == MODE_ECHO && opt.size >= 4 * SMALL_READ;
  if (opt.tls && tls_setup() < 0) return 1;

  struct sigaction sa = {.sa_handler = on_signal};
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGUSR1, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);

  long rss0 = opt.rss_pid ? vmrss_kb(opt.rss_pid) : -1;
  worker_t *ws = calloc((size_t)opt.threads, sizeof *ws);
  pthread_barrier_init(&opened_barrier, NULL, (unsigned)opt.threads + 1);
  pthread_barrier_init(&done_barrier, NULL, (unsigned)opt.threads + 1);
  for (int i = 0; i < opt.threads; i++) {
    worker_t *w = &ws[i];
    w->id = i;
    w->nconns = opt.conns / opt.threads + (i < opt.conns % opt.threads);
    w->epfd = epoll_create1(EPOLL_CLOEXEC);
    w->conns = calloc((size_t)w->nconns, sizeof(conn_t));
    w->rbuf = malloc(READ_BUF);
    w->next_src = i;
    if (w->epfd < 0 || !w->conns || !w->rbuf) {
      perror("loadgen: setup");
      return 1;
    }
    for (int j = 0; j < w->nconns; j++) {
      conn_t *c = &w->conns[j];
      c->fd = -1;
      c->w = w;
      if (opt.mode == MODE_ECHO && !(c->ring = malloc(sizeof(uint64_t) * (size_t)opt.inflight))) {
        perror("malloc");
        return 1;
      }
      if (opt.deflate && (!(c->z = calloc(1, sizeof *c->z)) || !(c->z->ibuf = malloc(opt.size + 1)))) {
        perror("malloc");
        return 1;
      }
    }
  }
  uint64_t t_open = now_ns();
  for (int i = 0; i < opt.threads; i++) {
    if (pthread_create(&ws[i].tid, NULL, worker_main, &ws[i]) != 0) {
      perror("pthread_create");
      return 1;
    }
  }
  /* every thread has opened its connections (echo, idle): the measured window starts */
  pthread_barrier_wait(&opened_barrier);
  t_run_start = now_ns();
  double open_secs = (double)(t_run_start - t_open) / 1e9;
  double cpu0 = cpu_seconds();
  if (opt.mode == MODE_IDLE && opt.ready_fd >= 0) {
    int opened = 0;
    for (int i = 0; i < opt.threads; i++) opened += ws[i].opened_ok;
    dprintf(opt.ready_fd, "ready %d\n", opened);
  }
  pthread_barrier_wait(&done_barrier);
  t_run_end = now_ns();
  double cpu1 = cpu_seconds();
  long rss1 = opt.rss_pid ? vmrss_kb(opt.rss_pid) : -1;
  for (int i = 0; i < opt.threads; i++) pthread_join(ws[i].tid, NULL);

  /* merge */
  hist_t *h = calloc(1, sizeof *h);
  uint64_t msgs = 0, bytes = 0, errors = 0, hs_fail = 0, hs_ok = 0, peer_closed = 0;
  uint64_t first_rx = 0, last_rx = 0;
  uint64_t z_plain = 0, z_bad = 0, z_tx_wire = 0, z_rx_wire = 0, z_tx_msgs = 0, z_rx_msgs = 0;
  const char *zagreed = NULL;
  int open_now = 0;
  const char *tls_desc = NULL;
  for (int i = 0; i < opt.threads; i++) {
    worker_t *w = &ws[i];
    for (int j = 0; j < HIST_N; j++) h->count[j] += w->hist.count[j];
    h->total += w->hist.total;
    msgs += w->msgs;
    bytes += w->bytes;
    errors += w->errors;
    hs_fail += w->hs_fail;
    hs_ok += w->hs_ok;
    peer_closed += w->closed_by_peer;
    open_now += w->open_now;
    if (w->first_rx && (!first_rx || w->first_rx < first_rx)) first_rx = w->first_rx;
    if (w->last_rx > last_rx) last_rx = w->last_rx;
    if (!tls_desc && w->tls_desc[0]) tls_desc = w->tls_desc;
    if (!zagreed && w->zagreed[0]) zagreed = w->zagreed;
    z_plain += w->z_plain;
    z_bad += w->z_bad;
    z_tx_wire += w->z_tx_wire;
    z_rx_wire += w->z_rx_wire;
    z_tx_msgs += w->z_tx_msgs;
    z_rx_msgs += w->z_rx_msgs;
  }
  double secs = (double)(t_run_end - t_run_start) / 1e9;
  if (secs <= 0) secs = 1e-9;
  double cpu_pct = 100.0 * (cpu1 - cpu0) / secs;
  char extra[640] = "";
  int n = 0;
  if (opt.tls) n = snprintf(extra, sizeof extra, " tls=%s", tls_desc ? tls_desc : "none");
  /* -z: what was agreed, the mean compressed payload each way (a reply's is the server's
   * compression), echoes that came uncompressed and echoes that differed (both errors) */
  if (opt.deflate)
    n += snprintf(extra + n, sizeof extra - (size_t)n,
                  " deflate=%s tx_payload_B=%.1f rx_payload_B=%.1f z_plain=%llu z_bad=%llu",
                  zagreed ? zagreed : "none", z_tx_msgs ? (double)z_tx_wire / (double)z_tx_msgs : 0,
                  z_rx_msgs ? (double)z_rx_wire / (double)z_rx_msgs : 0,
                  (unsigned long long)z_plain, (unsigned long long)z_bad);
  if (opt.mode == MODE_IDLE) {
    n += snprintf(extra + n, sizeof extra - (size_t)n, " open=%d open_secs=%.2f", open_now,
                  open_secs);
    if (rss0 >= 0 && rss1 >= 0 && hs_ok)
      n += snprintf(extra + n, sizeof extra - (size_t)n,
                    " rss_before_kb=%ld rss_after_kb=%ld rss_per_conn_B=%.0f", rss0, rss1,
                    (double)(rss1 - rss0) * 1024.0 / (double)hs_ok);
    if (first_rx)
      snprintf(extra + n, sizeof extra - (size_t)n,
               " first_rx_ns=%llu last_rx_ns=%llu rx_spread_ms=%.3f",
               (unsigned long long)first_rx, (unsigned long long)last_rx,
               (double)(last_rx - first_rx) / 1e6);
  }
  printf("mode=%s conns=%d inflight=%d size=%zu %s secs=%.2f msgs=%llu msgs/s=%.0f "
         "MB/s=%.2f p50_us=%.1f p99_us=%.1f errors=%llu hs_ok=%llu hs_fail=%llu "
         "peer_closed=%llu cpu=%.1f%%%s\n",
         mode_names[opt.mode], opt.conns, opt.inflight, opt.size, opt.binary ? "binary" : "text",
         secs, (unsigned long long)msgs, (double)msgs / secs, (double)bytes / secs / 1e6,
         hist_pct_us(h, 50), hist_pct_us(h, 99), (unsigned long long)errors,
         (unsigned long long)hs_ok, (unsigned long long)hs_fail,
         (unsigned long long)peer_closed, cpu_pct, extra);
  fflush(stdout);

  uint64_t tried = hs_ok + hs_fail;
  if (tried && 100.0 * (double)hs_fail / (double)tried > opt.max_fail_pct) {
    fprintf(stderr, "loadgen: %llu of %llu handshakes failed\n", (unsigned long long)hs_fail,
            (unsigned long long)tried);
    return 2;
  }
  if (!hs_ok || (opt.mode != MODE_IDLE && !msgs)) {
    fprintf(stderr, "loadgen: no progress\n");
    return 3;
  }
  return 0;
}
