/* Masking (RFC 6455 5.3): XOR with a repeating 4-byte key, a word at a time. */
#include <stdint.h>
#include <string.h>

#include "ws.h"

/* On x86-64 the loader picks an AVX2 build of the loop where the CPU has it (twice the
 * width of SSE2, which is all the baseline may assume). clang 14 cannot export such a
 * function to other files, so its builds (the sanitizer runs) keep the one loop. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__linux__)
__attribute__((target_clones("avx2", "default")))
#endif
void ws_mask(char *data, size_t len, const uint8_t key[4], size_t offset) {
  unsigned char *d = (unsigned char *)data;
  size_t k = offset & 3;

  /* Unaligned 8-byte loads and stores (memcpy) cost x86-64 and arm64 nothing extra, so
   * there is no byte-wise lead-in: a short message is one or two words and a tail. */
  if (len >= 8) {
    /* The key repeats every 4 bytes, so one 8-byte word of it, started at the current
     * offset, stays in step for the whole run: read from the key written out three times
     * (a byte loop costs a short message more than its unmasking). */
    uint8_t kb[12];
    uint64_t kw, w0, w1, w2, w3;
    memcpy(kb, key, 4);
    memcpy(kb + 4, key, 4);
    memcpy(kb + 8, key, 4);
    memcpy(&kw, kb + k, 8);
    while (len >= 32) {
      memcpy(&w0, d, 8);
      memcpy(&w1, d + 8, 8);
      memcpy(&w2, d + 16, 8);
      memcpy(&w3, d + 24, 8);
      w0 ^= kw;
      w1 ^= kw;
      w2 ^= kw;
      w3 ^= kw;
      memcpy(d, &w0, 8);
      memcpy(d + 8, &w1, 8);
      memcpy(d + 16, &w2, 8);
      memcpy(d + 24, &w3, 8);
      d += 32;
      len -= 32;
    }
    while (len >= 8) {
      memcpy(&w0, d, 8);
      w0 ^= kw;
      memcpy(d, &w0, 8);
      d += 8;
      len -= 8;
    }
  }
  while (len--) {
    *d++ ^= key[k];
    k = (k + 1) & 3;
  }
}
