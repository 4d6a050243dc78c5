/* TLS transport: one SSL object per layer between two memory BIOs, pumped by the
 * conn's socket reads and writes. Nothing here blocks: an SSL call that wants more input
 * returns, and the next socket read resumes it.
 *
 * Input costs no copy of its own: rbio reads the ciphertext where libuv put it, after
 * WS__TLS_HEADROOM bytes of the loop's read buffer, and SSL_read decrypts into the front
 * of that same buffer. Plaintext never overtakes unread ciphertext: a record is read
 * whole before its plaintext is written, plaintext is shorter than its record, and the
 * headroom covers the one partial record SSL may carry over from the previous read
 * (up to 2^14 bytes of plaintext, RFC 8446 5.1) plus a short unconsumed tail (c->in).
 * A TLS layer over another layer (TLS to a server inside TLS to a proxy) gets its
 * ciphertext from that layer, anywhere, and decrypts it apart, at the cost of a copy.
 * Output: SSL writes records into wbio's buffer, which goes to the layer below (the
 * socket, for the bottom layer). */
#include <arpa/inet.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/buffer.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include "tls.h"

#if OPENSSL_VERSION_NUMBER < 0x30000000L
#define SSL_get1_peer_certificate SSL_get_peer_certificate
#endif

#define WS__TLS_MAX_RECORD_PLAIN 16384   /* 2^14 */
#define WS__TLS_RECORD_OVERHEAD 64         /* header, tag, type; more than TLS 1.2/1.3 add */
/* The longest unconsumed tail that is put in front of new plaintext. */
#define WS__TLS_PREFIX_MAX (WS__TLS_HEADROOM - WS__TLS_MAX_RECORD_PLAIN)
/* Plaintext goes to SSL_write in chunks of this size, each sent at once, so the output
 * buffer stays small however large a message is. */
#define WS__TLS_CHUNK (64 * 1024)
/* Plaintext decrypted apart (TLS inside TLS) is handed up in pieces of this size. */
#define WS__TLS_APART (64 * 1024)

struct ws_tls_ctx {
  SSL_CTX *ssl;
  int server;
  int verify;
};

typedef struct ws__tls {
  ws__transport_t tp;   /* first: the layer it is under a conn */
  SSL *ssl;
  BIO *rbio, *wbio;   /* from and to the peer; owned by ssl; their buffers are ours: */
  BUF_MEM in;         /* the read being handled (in place: in the loop's read buffer) */
  BUF_MEM out;        /* records not yet handed to the conn (OPENSSL_malloc'd) */
  uint8_t server;
  uint8_t secure;     /* handshake done */
  uint8_t dead;       /* fatal TLS error: nothing more goes through ssl */
} ws__tls_t;

/* ---- contexts ---------------------------------------------------------------- */

/* The reason of the oldest queued OpenSSL error (then clears the queue). */
static const char *ssl_reason(char *buf, size_t len) {
  unsigned long e = ERR_peek_error();
  const char *r = e ? ERR_reason_error_string(e) : NULL;
#ifdef ERR_SYSTEM_ERROR
  if (e && ERR_SYSTEM_ERROR(e)) r = strerror(ERR_GET_REASON(e));   /* fopen's errno */
#endif
  if (e && !r) {
    ERR_error_string_n(e, buf, len);
    r = buf;
  }
  ERR_clear_error();
  return r ? r : "unknown error";
}

static int ctx_error(char *err, size_t errlen, const char *what, const char *arg) {
  char buf[256];
  const char *why = ssl_reason(buf, sizeof buf);
  if (arg) snprintf(err, errlen, "%s %s: %s", what, arg, why);
  else snprintf(err, errlen, "%s: %s", what, why);
  return -1;
}

static const unsigned char alpn_http11[] = "\x08http/1.1";

/* Server: choose http/1.1 when the client offers it; otherwise go on without ALPN. */
static int select_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg) {
  (void)ssl;
  (void)arg;
  unsigned int i = 0;
  while (i < inlen) {
    unsigned int n = in[i];
    if (i + 1 + n > inlen) break;
    if (n == 8 && memcmp(in + i + 1, "http/1.1", 8) == 0) {
      *out = in + i + 1;
      *outlen = 8;
      return SSL_TLSEXT_ERR_OK;
    }
    i += 1 + n;
  }
  return SSL_TLSEXT_ERR_NOACK;
}

static int ctx_setup(SSL_CTX *s, int server, const ws_tls_options_t *o, char *err, size_t el) {
  SSL_CTX_set_min_proto_version(s, TLS1_2_VERSION);
  SSL_CTX_set_mode(s, SSL_MODE_RELEASE_BUFFERS);   /* idle connections hold no records */
  SSL_CTX_set_options(s, SSL_OP_NO_RENEGOTIATION); /* a peer cannot make us redo work */
  if (o->ciphers && !SSL_CTX_set_cipher_list(s, o->ciphers))
    return ctx_error(err, el, "TLS ciphers", o->ciphers);
  if (o->ciphersuites && !SSL_CTX_set_ciphersuites(s, o->ciphersuites))
    return ctx_error(err, el, "TLS ciphersuites", o->ciphersuites);
  if (o->cert) {
    const char *key = o->key ? o->key : o->cert;
    if (SSL_CTX_use_certificate_chain_file(s, o->cert) != 1)
      return ctx_error(err, el, "TLS cert", o->cert);
    if (SSL_CTX_use_PrivateKey_file(s, key, SSL_FILETYPE_PEM) != 1)
      return ctx_error(err, el, "TLS key", key);
    if (SSL_CTX_check_private_key(s) != 1) return ctx_error(err, el, "TLS key", key);
  } else if (o->key) {
    snprintf(err, el, "TLS key %s given without a cert", o->key);
    return -1;
  } else if (server) {
    snprintf(err, el, "a TLS server needs a cert and a key");
    return -1;
  }
  if (o->cafile || o->capath) {
    if (SSL_CTX_load_verify_locations(s, o->cafile, o->capath) != 1)
      return ctx_error(err, el, "TLS CA", o->cafile ? o->cafile : o->capath);
  } else if ((!server || o->verify) && SSL_CTX_set_default_verify_paths(s) != 1) {
    return ctx_error(err, el, "TLS system CA store", NULL);
  }
  int mode = SSL_VERIFY_NONE;
  if (server) {
    /* Resumed sessions must come back to this context (required with client certs). */
    SSL_CTX_set_session_id_context(s, (const unsigned char *)"luaws", 5);
    SSL_CTX_set_alpn_select_cb(s, select_alpn, NULL);
    if (o->cafile) {   /* tells clients which CAs their certificate should come from */
      STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(o->cafile);
      if (names) SSL_CTX_set_client_CA_list(s, names);
      ERR_clear_error();
    }
    /* Given CAs: a client certificate is asked for and checked; verify: required. */
    if (o->cafile || o->capath || o->verify) mode = SSL_VERIFY_PEER;
    if (o->verify) mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
  } else {
    if (SSL_CTX_set_alpn_protos(s, alpn_http11, sizeof alpn_http11 - 1) != 0)
      return ctx_error(err, el, "TLS ALPN", NULL);
    if (o->verify) mode = SSL_VERIFY_PEER;
  }
  SSL_CTX_set_verify(s, mode, NULL);
  return 0;
}

ws_tls_ctx_t *ws_tls_ctx_new(int server, const ws_tls_options_t *o, char *err, size_t errlen) {
  ERR_clear_error();
  ws_tls_ctx_t *ctx = calloc(1, sizeof *ctx);
  if (!ctx) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  ctx->server = server;
  ctx->verify = o->verify;
  ctx->ssl = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
  if (!ctx->ssl) {
    ctx_error(err, errlen, "TLS context", NULL);
    free(ctx);
    return NULL;
  }
  if (ctx_setup(ctx->ssl, server, o, err, errlen) != 0) {
    ws_tls_ctx_free(ctx);
    return NULL;
  }
  return ctx;
}

/* Each SSL made from the context holds a reference to the SSL_CTX, so this only drops
 * ours. */
void ws_tls_ctx_free(ws_tls_ctx_t *ctx) {
  if (!ctx) return;
  SSL_CTX_free(ctx->ssl);
  free(ctx);
}

/* ---- the transport ------------------------------------------------------------ */

/* Points a memory BIO at one of our buffers. BIO_NOCLOSE: the BIO never frees it; the
 * call also resets the BIO's read position to the buffer's start. */
static void bio_use(BIO *b, BUF_MEM *m) { BIO_set_mem_buf(b, m, BIO_NOCLOSE); }

/* Sends what SSL has written, through the layer below. */
static int flush_out(ws_conn_t *c, ws__tls_t *t) {
  if (!t->out.length) return 0;
  ws_iov_t b = {t->out.data, t->out.length};
  int r = ws__tp_write_below(c, &t->tp, &b, 1);   /* the syscall first; only a tail is queued */
  t->out.length = 0;
  bio_use(t->wbio, &t->out);
  return r;
}

/* Room for need bytes of records before SSL writes them, so the buffer is not regrown
 * (and the old one cleansed) record by record. Called while it is empty. */
static void reserve_out(ws__tls_t *t, size_t need) {
  if (t->out.max >= need || t->out.length) return;
  char *p = OPENSSL_malloc(need);
  if (!p) return;   /* the BIO grows it itself, or fails the write */
  OPENSSL_free(t->out.data);
  t->out.data = p;
  t->out.max = need;
  bio_use(t->wbio, &t->out);
}

/* Once sent, the output buffer goes: an idle connection keeps no buffer of its own
 * (SSL_MODE_RELEASE_BUFFERS does the same for OpenSSL's record buffers). */
static void trim_out(ws__tls_t *t) {
  if (t->out.length || !t->out.data) return;
  OPENSSL_free(t->out.data);
  t->out.data = NULL;
  t->out.max = 0;
  bio_use(t->wbio, &t->out);
}

/* A fatal TLS error: the alert SSL queued goes out, the layer above hears OpenSSL's
 * reason, and the connection is dropped (no close frame can cross a broken TLS). The
 * code only picks a close code, which is never sent; the message is what users see. */
static void tls_fail(ws_conn_t *c, ws__tls_t *t, const char *what) {
  char buf[256], msg[400];
  unsigned long e = ERR_peek_error();
  long v = SSL_get_verify_result(t->ssl);
  if (ERR_GET_LIB(e) == ERR_LIB_SSL && ERR_GET_REASON(e) == SSL_R_CERTIFICATE_VERIFY_FAILED &&
      v != X509_V_OK) {
    snprintf(msg, sizeof msg, "%s: certificate verify failed: %s", what,
             X509_verify_cert_error_string(v));
    ERR_clear_error();
  } else {
    snprintf(msg, sizeof msg, "%s: %s", what, ssl_reason(buf, sizeof buf));
  }
  t->dead = 1;
  flush_out(c, t);
  ws__conn_fail(c, t->secure ? WS_EPROTOCOL : WS_EHANDSHAKE, msg);
  if (c->state != WS__S_CLOSED) ws__conn_destroy(c, 1006, 0);
}

/* Returns 1 once the handshake is done, 0 while it waits for input, -1 if it failed. */
static int handshake(ws_conn_t *c, ws__tls_t *t) {
  ERR_clear_error();
  int r = SSL_do_handshake(t->ssl);
  int e = r == 1 ? SSL_ERROR_NONE : SSL_get_error(t->ssl, r);
  if (e != SSL_ERROR_NONE && e != SSL_ERROR_WANT_READ) {
    tls_fail(c, t, "TLS handshake failed");
    return -1;
  }
  if (flush_out(c, t) != 0 || c->state == WS__S_CLOSED) return -1;
  if (e == SSL_ERROR_WANT_READ) return 0;
  t->secure = 1;
  if (!t->server) ws__role(c)->ready(c);   /* the client's next stage */
  return c->state == WS__S_CLOSED ? -1 : 1;
}

/* The peer's close_notify: answer with ours, then it is the end of its stream. */
static void on_close_notify(ws_conn_t *c, ws__tls_t *t) {
  if (!(SSL_get_shutdown(t->ssl) & SSL_SENT_SHUTDOWN)) {
    ERR_clear_error();
    SSL_shutdown(t->ssl);
    flush_out(c, t);
  }
  ERR_clear_error();
  if (c->state != WS__S_CLOSED) ws__conn_eof(c);
}

/* Decrypts all that SSL can and hands it up (ws__tp_up). In place (base: the read
 * buffer's front, end: the end of the ciphertext): in one piece, after the conn's
 * unconsumed tail when the conn is next and the tail is short (ws__conn_prefix_room).
 * Apart (base NULL: the ciphertext came from a layer below, anywhere): into a buffer of
 * its own, a chunk at a time. */
static void read_plaintext(ws_conn_t *c, ws__tls_t *t, char *base, char *end) {
  char *own = NULL;
  if (!base) {
    if (!(own = malloc(WS__TLS_PREFIX_MAX + WS__TLS_APART))) {
      ws__conn_fail(c, WS_ENOMEM, "out of memory");
      return;
    }
    base = own;
    end = own + WS__TLS_PREFIX_MAX + WS__TLS_APART;
  }
  int e = SSL_ERROR_NONE;
  while (e == SSL_ERROR_NONE) {
    size_t pre = t->tp.above ? 0 : ws__conn_prefix_room(c, WS__TLS_PREFIX_MAX), got = 0;
    for (;;) {
      size_t room = (size_t)(end - (base + pre + got));
      if (room == 0) {
        /* In place, all ciphertext was read: only a partial record can be left. */
        if (!own) e = SSL_ERROR_WANT_READ;
        break;
      }
      ERR_clear_error();
      int n = SSL_read(t->ssl, base + pre + got, room > INT_MAX ? INT_MAX : (int)room);
      if (n <= 0) {
        e = SSL_get_error(t->ssl, n);
        break;
      }
      got += (size_t)n;
    }
    if (got) {
      ws__tp_up(c, &t->tp, base, pre, got);
      if (c->state == WS__S_CLOSED) break;
    }
  }
  free(own);
  if (c->state == WS__S_CLOSED) return;
  /* SSL_read may have answered something (a TLS 1.3 key update). */
  if (flush_out(c, t) != 0 || c->state == WS__S_CLOSED) return;
  if (e == SSL_ERROR_ZERO_RETURN) on_close_notify(c, t);
  else if (e != SSL_ERROR_WANT_READ) tls_fail(c, t, t->secure ? "TLS error" : "TLS handshake failed");
}

static void tls_on_read(ws_conn_t *c, ws__transport_t *tp, char *data, size_t len) {
  ws__tls_t *t = (ws__tls_t *)tp;
  char *base = c->loop->rbuf;
  if (t->dead) return;
  /* From the socket, where conn.c's on_alloc kept the headroom: decrypted in place.
   * From a layer below (TLS inside TLS, the bytes after a proxy's answer): apart. */
  int in_place = !tp->below && data == base + WS__TLS_HEADROOM;
  t->in.data = data;
  t->in.length = t->in.max = len;
  bio_use(t->rbio, &t->in);
  if (t->secure || handshake(c, t) == 1) read_plaintext(c, t, in_place ? base : NULL, data + len);
  /* SSL read all it was given (it stops only at WANT_READ, or once the conn is gone):
   * the BIO lets go of the input, which the next read reuses. */
  t->in.data = NULL;
  t->in.length = t->in.max = 0;
  bio_use(t->rbio, &t->in);
  trim_out(t);
}

/* Plaintext to the peer. Small buffers (a frame header and its payload) are joined so
 * they make one TLS record; large ones are written in chunks, each sent at once. */
static int tls_write(ws_conn_t *c, ws__transport_t *tp, const ws_iov_t *bufs, unsigned n) {
  ws__tls_t *t = (ws__tls_t *)tp;
  if (t->dead || c->state == WS__S_CLOSED) return WS_ECLOSED;
  if (!t->secure) return WS_EINVAL;   /* nothing is sent before the handshake is done */
  char small[4096];
  size_t total = 0;
  for (unsigned i = 0; i < n; i++) total += bufs[i].len;
  ws_iov_t joined;
  if (n > 1 && total <= sizeof small) {
    size_t off = 0;
    for (unsigned i = 0; i < n; i++) {
      if (bufs[i].len) memcpy(small + off, bufs[i].base, bufs[i].len);
      off += bufs[i].len;
    }
    joined.base = small;
    joined.len = total;
    bufs = &joined;
    n = 1;
  }
  for (unsigned i = 0; i < n; i++) {
    for (size_t off = 0; off < bufs[i].len;) {
      size_t chunk = bufs[i].len - off;
      if (chunk > WS__TLS_CHUNK) chunk = WS__TLS_CHUNK;
      reserve_out(t, chunk + (chunk / WS__TLS_MAX_RECORD_PLAIN + 1) * WS__TLS_RECORD_OVERHEAD);
      ERR_clear_error();
      /* A memory BIO never refuses a write, so SSL_write takes all or fails. */
      int r = SSL_write(t->ssl, bufs[i].base + off, (int)chunk);
      if (r <= 0) {
        tls_fail(c, t, "TLS write failed");
        return WS_ECLOSED;
      }
      off += (size_t)r;
      int w = flush_out(c, t);
      if (w) return w;
    }
  }
  trim_out(t);
  return 0;
}

/* close_notify before FIN, once the handshake is done and TLS is still sound. */
static void tls_shutdown(ws_conn_t *c, ws__transport_t *tp) {
  ws__tls_t *t = (ws__tls_t *)tp;
  if (!t->secure || t->dead || (SSL_get_shutdown(t->ssl) & SSL_SENT_SHUTDOWN)) return;
  ERR_clear_error();
  SSL_shutdown(t->ssl);
  ERR_clear_error();
  flush_out(c, t);
}

static void tls_free(ws__transport_t *tp) {
  ws__tls_t *t = (ws__tls_t *)tp;
  SSL_free(t->ssl);   /* frees the BIOs and drops its reference to the SSL_CTX */
  OPENSSL_free(t->out.data);
  free(t);
}

static const ws__transport_ops_t tls_ops = {WS__TLS_HEADROOM, tls_on_read, tls_write,
                                            tls_shutdown, tls_free};

/* SNI and the name to verify. RFC 6066 3: SNI is a host name, never an IP literal;
 * an address is checked against the certificate's IP subjectAltNames instead. */
static int set_peer_name(SSL *ssl, const char *name, int verify) {
  unsigned char addr[16];
  int ip = inet_pton(AF_INET, name, addr) == 1 || inet_pton(AF_INET6, name, addr) == 1;
  if (!ip && SSL_set_tlsext_host_name(ssl, name) != 1) return -1;
  if (!verify) return 0;
  X509_VERIFY_PARAM *p = SSL_get0_param(ssl);
  X509_VERIFY_PARAM_set_hostflags(p, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
  if (ip) return X509_VERIFY_PARAM_set1_ip_asc(p, name) == 1 ? 0 : -1;
  return SSL_set1_host(ssl, name) == 1 ? 0 : -1;
}

ws__transport_t *ws__tls_new(ws_tls_ctx_t *ctx, int server, const char *servername, int *err) {
  *err = WS_EINVAL;
  if (!ctx || ctx->server != server) return NULL;
  *err = WS_ENOMEM;
  ws__tls_t *t = calloc(1, sizeof *t);
  if (!t) return NULL;
  ERR_clear_error();
  t->tp.ops = &tls_ops;
  t->server = (uint8_t)server;
  t->ssl = SSL_new(ctx->ssl);
  t->rbio = BIO_new(BIO_s_mem());
  t->wbio = BIO_new(BIO_s_mem());
  if (!t->ssl || !t->rbio || !t->wbio) {
    BIO_free(t->rbio);
    BIO_free(t->wbio);
    SSL_free(t->ssl);
    free(t);
    ERR_clear_error();
    return NULL;
  }
  bio_use(t->rbio, &t->in);
  bio_use(t->wbio, &t->out);
  SSL_set_bio(t->ssl, t->rbio, t->wbio);
  if (server) {
    SSL_set_accept_state(t->ssl);
  } else {
    SSL_set_connect_state(t->ssl);
    if (servername && set_peer_name(t->ssl, servername, ctx->verify) != 0) {
      SSL_free(t->ssl);
      free(t);
      ERR_clear_error();
      *err = WS_EINVAL;
      return NULL;
    }
  }
  return &t->tp;
}

int ws__tls_attach(ws_conn_t *c, ws_tls_ctx_t *ctx, int server, const char *servername) {
  int err;
  ws__transport_t *t = ws__tls_new(ctx, server, servername, &err);
  if (!t) return err;
  ws__tp_push(c, t);
  return 0;
}

void ws__tls_start(ws_conn_t *c, ws__transport_t *tp) {
  ws__tp_push(c, tp);
  handshake(c, (ws__tls_t *)tp);   /* the ClientHello; failures are reported through c */
}

/* The innermost TLS: the server's, when a client also has TLS to its proxy. */
int ws_conn_tls_info(const ws_conn_t *c, ws_tls_info_t *info) {
  const ws__transport_t *tp = c->tp;
  while (tp && tp->ops != &tls_ops) tp = tp->below;
  const ws__tls_t *t = (const ws__tls_t *)tp;
  if (!t || !t->secure) return WS_EINVAL;
  memset(info, 0, sizeof *info);
  info->version = SSL_get_version(t->ssl);
  info->cipher = SSL_get_cipher_name(t->ssl);
  const unsigned char *alpn;
  unsigned int alen;
  SSL_get0_alpn_selected(t->ssl, &alpn, &alen);
  if (alen >= sizeof info->alpn) alen = 0;
  if (alen) memcpy(info->alpn, alpn, alen);
  X509 *peer = SSL_get1_peer_certificate(t->ssl);
  if (peer) {
    info->peer_cert = 1;
    info->verified = SSL_get_verify_result(t->ssl) == X509_V_OK;
    const X509_NAME *names[2] = {X509_get_subject_name(peer), X509_get_issuer_name(peer)};
    char *out[2] = {info->subject, info->issuer};
    for (int i = 0; i < 2; i++) {
      BIO *b = BIO_new(BIO_s_mem());
      if (!b) break;
      X509_NAME_print_ex(b, names[i], 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB);
      int n = BIO_read(b, out[i], (int)sizeof info->subject - 1);
      out[i][n > 0 ? n : 0] = 0;
      BIO_free(b);
    }
    X509_free(peer);
  }
  ERR_clear_error();
  return 0;
}
