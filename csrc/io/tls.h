/* TLS under a connection: OpenSSL with memory BIOs, pumped by the conn's reads and
 * writes through the ws__transport_t seam. */
#ifndef LUAWS_TLS_H
#define LUAWS_TLS_H

#include "internal.h"

typedef struct ws_tls_options {
  const char *cert, *key;       /* PEM paths: server certificate, or client certificate;
                                   key NULL: the key is in the cert file */
  const char *cafile, *capath;  /* trust anchors (server: for client certificates);
                                   NULL: the system store */
  const char *ciphers;          /* TLS 1.2 cipher list; NULL: OpenSSL's default */
  const char *ciphersuites;     /* TLS 1.3 suites; NULL: OpenSSL's default */
  int verify;                   /* client: verify the server (default 1); server: require
                                   a client certificate */
} ws_tls_options_t;

/* Makes a context (server or client). Returns NULL and a message in err on failure.
 * Connections take their own reference to the OpenSSL context, so the context may be
 * freed while connections made with it are still open. */
ws_tls_ctx_t *ws_tls_ctx_new(int server, const ws_tls_options_t *o, char *err, size_t errlen);
void ws_tls_ctx_free(ws_tls_ctx_t *ctx);

/* A TLS layer, not yet under a conn; servername: SNI and the name to verify (client).
 * NULL on failure, with *err. */
ws__transport_t *ws__tls_new(ws_tls_ctx_t *ctx, int server, const char *servername, int *err);
/* Puts TLS on top of c's layers (a server's, before it reads). 0 or an error. */
int ws__tls_attach(ws_conn_t *c, ws_tls_ctx_t *ctx, int server, const char *servername);
/* Client: puts the layer t on top of c's layers and begins the handshake through those
 * below; ws__role(c)->ready(c) once it is done. Failures are reported through c. */
void ws__tls_start(ws_conn_t *c, ws__transport_t *t);

/* What a TLS connection negotiated, and the peer's certificate (if it sent one). */
typedef struct ws_tls_info {
  const char *version;          /* "TLSv1.3", ... */
  const char *cipher;
  char alpn[32];                /* "" if none was negotiated */
  int peer_cert;                /* the peer sent a certificate */
  int verified;                 /* ... and it passed verification */
  char subject[512], issuer[512];   /* RFC 2253 ("CN=x,O=y"); "" without a certificate */
} ws_tls_info_t;

/* 0 and *info for a TLS connection whose handshake is done; WS_EINVAL otherwise. */
int ws_conn_tls_info(const ws_conn_t *c, ws_tls_info_t *info);

#endif
