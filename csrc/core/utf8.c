/* Incremental UTF-8 validation (RFC 3629; Unicode 3.9 table 3-7): a small DFA over byte
 * classes, with a fast path that skips ASCII eight bytes at a time. */
#include <string.h>

#include "ws.h"

/* Byte classes: 0 ASCII, 1 80-8F, 2 90-9F, 3 A0-BF, 4 never valid (C0 C1 F5-FF),
 * 5 C2-DF, 6 E0, 7 E1-EC EE EF, 8 ED, 9 F0, 10 F1-F3, 11 F4. */
static const uint8_t ws__utf8_class[256] = {
   0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  /* 00 */
   0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  /* 10 */
   0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  /* 20 */
   0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  /* 30 */
   0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  /* 40 */
   0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  /* 50 */
   0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  /* 60 */
   0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  /* 70 */
   1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  /* 80 */
   2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  /* 90 */
   3,  3,  3,  3,  3,  3,  3,  3,  3,  3,  3,  3,  3,  3,  3,  3,  /* A0 */
   3,  3,  3,  3,  3,  3,  3,  3,  3,  3,  3,  3,  3,  3,  3,  3,  /* B0 */
   4,  4,  5,  5,  5,  5,  5,  5,  5,  5,  5,  5,  5,  5,  5,  5,  /* C0 */
   5,  5,  5,  5,  5,  5,  5,  5,  5,  5,  5,  5,  5,  5,  5,  5,  /* D0 */
   6,  7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  8,  7,  7,  /* E0 */
   9, 10, 10, 10, 11,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  /* F0 */};

/* States are premultiplied by the number of classes so a step is one load. E0, ED, F0
 * and F4 get states of their own because their second byte has a narrower range: that
 * is what rejects overlongs (E0 80-9F, F0 80-8F), surrogates (ED A0-BF) and code points
 * above U+10FFFF (F4 90-BF). */
#define N 12
#define A 0        /* accept: between characters */
#define C1 (1 * N) /* one continuation byte 80-BF to go */
#define C2 (2 * N)
#define C3 (3 * N)
#define E0 (4 * N) /* then A0-BF, C1 */
#define ED (5 * N) /* then 80-9F, C1 */
#define F0 (6 * N) /* then 90-BF, C2 */
#define F4 (7 * N) /* then 80-8F, C2 */
#define R (8 * N)  /* rejected */

static const uint8_t ws__utf8_next[9 * N] = {
  /*      asc 80  90  A0  bad C2  E0  E1  ED  F0  F1  F4 */
  /* A  */ A, R,  R,  R,  R,  C1, E0, C2, ED, F0, C3, F4,
  /* C1 */ R, A,  A,  A,  R,  R,  R,  R,  R,  R,  R,  R,
  /* C2 */ R, C1, C1, C1, R,  R,  R,  R,  R,  R,  R,  R,
  /* C3 */ R, C2, C2, C2, R,  R,  R,  R,  R,  R,  R,  R,
  /* E0 */ R, R,  R,  C1, R,  R,  R,  R,  R,  R,  R,  R,
  /* ED */ R, C1, C1, R,  R,  R,  R,  R,  R,  R,  R,  R,
  /* F0 */ R, R,  C2, C2, R,  R,  R,  R,  R,  R,  R,  R,
  /* F4 */ R, C2, R,  R,  R,  R,  R,  R,  R,  R,  R,  R,
  /* R  */ R, R,  R,  R,  R,  R,  R,  R,  R,  R,  R,  R,
};

#define WS__HIGH_BITS 0x8080808080808080ull
#define WS__CONT(c) (((c) & 0xC0) == 0x80)

/* Length of the well-formed character at s (table 3-7), or 0; s has 4 bytes or more.
 * Range checks on whole characters need no state, so they run faster than DFA steps,
 * each of which waits for the one before. */
static inline size_t ws__utf8_char(const uint8_t *s) {
  uint8_t c = s[0];
  if (c >= 0xC2 && c <= 0xDF) return WS__CONT(s[1]) ? 2 : 0;
  if (c >= 0xE0 && c <= 0xEF) {
    uint8_t lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
    return s[1] >= lo && s[1] <= hi && WS__CONT(s[2]) ? 3 : 0;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    uint8_t lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
    return s[1] >= lo && s[1] <= hi && WS__CONT(s[2]) && WS__CONT(s[3]) ? 4 : 0;
  }
  return 0;
}

int ws_utf8_validate(uint32_t *state, const uint8_t *s, size_t len) {
  const uint8_t *end = s + len;
  uint32_t st = *state;

  if (st >= R) return -1;
  while (s < end) {
    if (st == A) {
      if (*s < 0x80) {
        /* Most text is ASCII: skip whole words with no high bit. */
        while ((size_t)(end - s) >= 16) {
          uint64_t w0, w1;
          memcpy(&w0, s, 8);
          memcpy(&w1, s + 8, 8);
          if ((w0 | w1) & WS__HIGH_BITS) break;
          s += 16;
        }
        if ((size_t)(end - s) >= 8) {
          uint64_t w;
          memcpy(&w, s, 8);
          if (!(w & WS__HIGH_BITS)) s += 8;
        }
        while (s < end && *s < 0x80) s++;
        continue;
      }
      if ((size_t)(end - s) >= 4) {
        size_t n = ws__utf8_char(s);
        if (!n) {
          *state = R;
          return -1;
        }
        s += n;
        continue;
      }
    }
    /* Near the end, and inside a character split over calls: one byte at a time. */
    st = ws__utf8_next[st + ws__utf8_class[*s++]];
    if (st == R) {
      *state = st;
      return -1;
    }
  }
  *state = st;
  return 0;
}
