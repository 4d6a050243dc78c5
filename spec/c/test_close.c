/* csrc/core/close.c: close codes and close payloads (RFC 6455 5.5.1, 7.4). */
#include "test.h"
#include "ws.h"

static int spec_valid(unsigned c) {
  return (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1014) || (c >= 3000 && c <= 4999);
}

void test_close(void) {
  unsigned code, c;
  const char *reason;
  size_t rlen;
  char out[WS_MAX_CONTROL + 8];
  int bad = 0;

  /* The code table, against the rule written out once more. */
  for (c = 0; c < 70000; c++) {
    if (ws_close_code_valid(c) != spec_valid(c)) bad++;
    if (ws_close_code_app_valid(c) != (c == 1000 || (c >= 3000 && c <= 4999))) bad++;
  }
  CHECK_INT(bad, 0);
  CHECK(ws_close_code_valid(1000));
  CHECK(ws_close_code_valid(1003));
  CHECK(!ws_close_code_valid(1004));
  CHECK(!ws_close_code_valid(1005));
  CHECK(!ws_close_code_valid(1006));
  CHECK(ws_close_code_valid(1007));
  CHECK(ws_close_code_valid(1014));
  CHECK(!ws_close_code_valid(1015));
  CHECK(!ws_close_code_valid(1016));
  CHECK(!ws_close_code_valid(2999));
  CHECK(ws_close_code_valid(3000));
  CHECK(ws_close_code_valid(4999));
  CHECK(!ws_close_code_valid(5000));
  CHECK(!ws_close_code_valid(0));
  CHECK(!ws_close_code_valid(999));
  CHECK(!ws_close_code_app_valid(1001));
  CHECK(ws_close_code_app_valid(1000));
  CHECK(ws_close_code_app_valid(3000));

  /* Parse. */
  CHECK_INT(ws_close_parse("", 0, &code, &reason, &rlen), 0);
  CHECK_INT(code, 1005);
  CHECK_INT(rlen, 0);
  CHECK(reason != NULL);
  CHECK_INT(ws_close_parse("\x03", 1, &code, &reason, &rlen), WS_EPROTOCOL);
  CHECK_INT(ws_close_parse("\x03\xe8", 2, &code, &reason, &rlen), 0);
  CHECK_INT(code, 1000);
  CHECK_INT(rlen, 0);
  CHECK_INT(ws_close_parse("\x03\xe9" "bye", 5, &code, &reason, &rlen), 0);
  CHECK_INT(code, 1001);
  CHECK_MEM(reason, rlen, "bye", 3);
  CHECK_INT(ws_close_parse("\x0f\xa0" "\xe2\x82\xac", 5, &code, &reason, &rlen), 0);
  CHECK_INT(code, 4000);
  CHECK_INT(ws_close_parse("\x03\xe7", 2, &code, &reason, &rlen), WS_EPROTOCOL);  /* 999 */
  CHECK_INT(ws_close_parse("\x03\xec", 2, &code, &reason, &rlen), WS_EPROTOCOL);  /* 1004 */
  CHECK_INT(ws_close_parse("\x03\xed", 2, &code, &reason, &rlen), WS_EPROTOCOL);  /* 1005 */
  CHECK_INT(ws_close_parse("\x03\xee", 2, &code, &reason, &rlen), WS_EPROTOCOL);  /* 1006 */
  CHECK_INT(ws_close_parse("\x03\xf7", 2, &code, &reason, &rlen), WS_EPROTOCOL);  /* 1015 */
  CHECK_INT(ws_close_parse("\x0b\xb7", 2, &code, &reason, &rlen), WS_EPROTOCOL);  /* 2999 */
  CHECK_INT(ws_close_parse("\x13\x88", 2, &code, &reason, &rlen), WS_EPROTOCOL);  /* 5000 */
  CHECK_INT(ws_close_parse("\x00\x00", 2, &code, &reason, &rlen), WS_EPROTOCOL);
  CHECK_INT(ws_close_parse("\xff\xff", 2, &code, &reason, &rlen), WS_EPROTOCOL);
  CHECK_INT(ws_close_parse("\x03\xe8" "a\xff", 4, &code, &reason, &rlen), WS_EUTF8);
  CHECK_INT(ws_close_parse("\x03\xe8" "\xe2\x82", 4, &code, &reason, &rlen), WS_EUTF8);
  CHECK_INT(ws_close_parse("\x03\xe8" "\xed\xa0\x80", 5, &code, &reason, &rlen), WS_EUTF8);

  /* Build. */
  CHECK_INT(ws_close_build(out, 0, "ignored", 7), 0);
  CHECK_INT(ws_close_build(out, 1005, "ignored", 7), 0);
  CHECK_INT(ws_close_build(out, 1000, NULL, 0), 2);
  CHECK_MEM(out, 2, "\x03\xe8", 2);
  CHECK_INT(ws_close_build(out, 4321, "bye", 3), 5);
  CHECK_MEM(out, 5, "\x10\xe1" "bye", 5);
  CHECK_INT(ws_close_parse(out, 5, &code, &reason, &rlen), 0);
  CHECK_INT(code, 4321);
  CHECK_MEM(reason, rlen, "bye", 3);
  {
    /* Long reasons are cut to fit 125 bytes, at a character boundary. */
    char r[300];
    memset(r, 'a', sizeof r);
    CHECK_INT(ws_close_build(out, 1000, r, sizeof r), WS_MAX_CONTROL);
    CHECK_INT(ws_close_build(out, 1000, r, 123), 125);
    CHECK_INT(ws_close_build(out, 1000, r, 124), 125);
    memcpy(r + 122, "\xc3\xa9", 2); /* a 2-byte character across the cut */
    CHECK_INT(ws_close_build(out, 1000, r, 124), 124);
    CHECK_INT(ws_close_parse(out, 124, &code, &reason, &rlen), 0);
    memcpy(r + 121, "\xf0\x9f\x98\x80", 4); /* a 4-byte one */
    CHECK_INT(ws_close_build(out, 1000, r, 200), 123);
    CHECK_INT(ws_close_parse(out, 123, &code, &reason, &rlen), 0);
    memset(r, 'a', sizeof r);
    memcpy(r + 120, "\xe2\x82\xac", 3); /* ends exactly at the cut */
    CHECK_INT(ws_close_build(out, 1000, r, 200), 125);
    CHECK_INT(ws_close_parse(out, 125, &code, &reason, &rlen), 0);
    CHECK_INT(rlen, 123);
  }
}
