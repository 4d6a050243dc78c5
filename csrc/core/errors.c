/* Names, messages and close codes of the WS_E* errors, all made from WS_ERRNO_MAP so
 * that the three can never disagree. */
#include "ws.h"

const char *ws_strerror(int err) {
  switch (err) {
#define WS__ERR_MSG(name, val, code, msg) case WS_E##name: return msg;
    WS_ERRNO_MAP(WS__ERR_MSG)
#undef WS__ERR_MSG
  }
  return NULL;
}

const char *ws_err_name(int err) {
  switch (err) {
#define WS__ERR_NAME(name, val, code, msg) case WS_E##name: return "E" #name;
    WS_ERRNO_MAP(WS__ERR_NAME)
#undef WS__ERR_NAME
  }
  return NULL;
}

int ws_err_close_code(int err) {
  int code = 0;
  switch (err) {
#define WS__ERR_CODE(name, val, c, msg) case WS_E##name: code = (c); break;
    WS_ERRNO_MAP(WS__ERR_CODE)
#undef WS__ERR_CODE
  }
  /* Errors that have no code of their own (0 in the map) are not the peer's fault;
   * 1011 is the one close code that fits any of them (RFC 6455 7.4.1). */
  return code ? code : 1011;
}
