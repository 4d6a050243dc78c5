/* csrc/core/errors.c: names, messages and close codes from WS_ERRNO_MAP. */
#include "test.h"
#include "ws.h"

void test_errors(void) {
  CHECK_STR(ws_err_name(WS_EPROTOCOL), "EPROTOCOL");
  CHECK_STR(ws_err_name(WS_EUTF8), "EUTF8");
  CHECK_STR(ws_err_name(WS_EAGAIN), "EAGAIN");
  CHECK_STR(ws_err_name(WS_EINVAL), "EINVAL");
  CHECK_STR(ws_strerror(WS_EPROTOCOL), "protocol error");
  CHECK_STR(ws_strerror(WS_ETOOBIG), "message too big");
  CHECK_STR(ws_strerror(WS_EHEADTOOBIG), "HTTP head too large");
  CHECK(ws_strerror(0) == NULL);
  CHECK(ws_strerror(-1) == NULL);
  CHECK(ws_err_name(-30000) == NULL);
  CHECK(ws_err_name(-30021) == NULL);   /* past the last */
  CHECK_STR(ws_err_name(WS_EPROXY), "EPROXY");
  CHECK_STR(ws_err_name(WS_ELIMIT), "ELIMIT");
  CHECK_STR(ws_err_name(WS_EBACKPLANE), "EBACKPLANE");
  CHECK_STR(ws_err_name(WS_ENOTSUPPORTED), "ENOTSUPPORTED");
  CHECK_STR(ws_err_name(WS_EOVERLOAD), "EOVERLOAD");
  CHECK(ws_err_close_code(WS_EOVERLOAD) == 1013);

  CHECK_INT(ws_err_close_code(WS_EPROTOCOL), 1002);
  CHECK_INT(ws_err_close_code(WS_EUTF8), 1007);
  CHECK_INT(ws_err_close_code(WS_ETOOBIG), 1009);
  CHECK_INT(ws_err_close_code(WS_EEXTENSION), 1010);
  CHECK_INT(ws_err_close_code(WS_EINTERNAL), 1011);
  CHECK_INT(ws_err_close_code(WS_ENOMEM), 1011);
  CHECK_INT(ws_err_close_code(WS_EAGAIN), 1011);  /* no code of its own */
  CHECK_INT(ws_err_close_code(-12345), 1011);     /* not ours */
  CHECK_INT(ws_parser_close_code(WS_EUTF8), 1007);

  /* Every code of the map has a name, a message, and a distinct value. */
  {
    static const int all[] = {
#define X(name, val, code, msg) WS_E##name,
      WS_ERRNO_MAP(X)
#undef X
    };
    size_t i, j;
    for (i = 0; i < sizeof all / sizeof all[0]; i++) {
      CHECK(ws_err_name(all[i]) != NULL && ws_err_name(all[i])[0] == 'E');
      CHECK(ws_strerror(all[i]) != NULL);
      CHECK(all[i] < -4095); /* apart from libuv's range */
      for (j = 0; j < i; j++) CHECK(all[i] != all[j]);
    }
  }
}
