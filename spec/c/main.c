/* Runs every C test of the protocol core; the last line says how it went. */
#include <stdlib.h>

#include "test.h"

int main(void) {
  test_errors();
  test_utf8();
  test_frame();
  test_close();
  test_http();
  test_body();
  test_handshake();
  test_hixie();
  test_ext();
  test_deflate();
  test_codec();
  printf("%ld passed, %ld failed\n", test_passed, test_failed);
  return test_failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
