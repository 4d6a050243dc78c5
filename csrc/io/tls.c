/* TLS transport: placeholder until the OpenSSL memory-BIO transport lands (issue 3). */
#include <stdio.h>
#include "tls.h"

ws_tls_ctx_t *ws_tls_ctx_new(int server, const ws_tls_options_t *o, char *err, size_t errlen) {
  snprintf(err, errlen, "TLS is not built into this luaws");
  return NULL;
}
void ws_tls_ctx_free(ws_tls_ctx_t *ctx) {}
int ws__tls_attach(ws_conn_t *c, ws_tls_ctx_t *ctx, int server, const char *servername) {
  return WS_EINVAL;
}
int ws__tls_start(ws_conn_t *c) { return WS_EINVAL; }
