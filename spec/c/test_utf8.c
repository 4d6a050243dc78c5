/* csrc/core/utf8.c: the incremental validator, against fixed cases (Autobahn 6.x style)
 * and a plain code-point decoder written here as a reference. */
#include <stdlib.h>

#include "test.h"
#include "ws.h"

/* 1 valid and complete, 0 a valid prefix (a character cut short), -1 invalid. */
static int validate_all(const char *s, size_t n) {
  uint32_t st = WS_UTF8_ACCEPT;
  if (ws_utf8_validate(&st, (const uint8_t *)s, n) < 0) return -1;
  return st == WS_UTF8_ACCEPT ? 1 : 0;
}

/* Same answer when fed one byte at a time, carrying the state. */
static int validate_bytewise(const char *s, size_t n) {
  uint32_t st = WS_UTF8_ACCEPT;
  size_t i;
  for (i = 0; i < n; i++)
    if (ws_utf8_validate(&st, (const uint8_t *)s + i, 1) < 0) return -1;
  return st == WS_UTF8_ACCEPT ? 1 : 0;
}

/* Reference: decode code points one by one and check RFC 3629's rules directly. */
static int ref_decode(const uint8_t *s, size_t n, size_t *i, uint32_t *cp) {
  uint8_t b = s[*i];
  size_t need, k;
  uint32_t c, min;
  if (b < 0x80) { *cp = b; (*i)++; return 1; }
  if (b >= 0xC0 && b < 0xE0) { need = 1; c = b & 0x1F; min = 0x80; }
  else if (b >= 0xE0 && b < 0xF0) { need = 2; c = b & 0x0F; min = 0x800; }
  else if (b >= 0xF0 && b < 0xF8) { need = 3; c = b & 0x07; min = 0x10000; }
  else return -1;
  for (k = 1; k <= need; k++) {
    if (*i + k >= n) return 0;
    if ((s[*i + k] & 0xC0) != 0x80) return -1;
    c = c << 6 | (s[*i + k] & 0x3F);
  }
  if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return -1;
  *cp = c;
  *i += need + 1;
  return 1;
}

static int ref_valid(const uint8_t *s, size_t n) {
  size_t i = 0;
  uint32_t cp;
  while (i < n) {
    int r = ref_decode(s, n, &i, &cp);
    if (r < 0) return -1;
    if (r == 0) {
      /* A cut-short character is a valid prefix only if some ending makes it valid:
       * try the boundary values of every second-byte range, then 80 for the rest. */
      static const uint8_t seconds[] = {0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF};
      uint8_t buf[4];
      size_t have = n - i, j, t;
      for (t = 0; t < sizeof seconds; t++) {
        size_t len, ii = 0;
        memcpy(buf, s + i, have);
        len = s[i] >= 0xF0 ? 4 : s[i] >= 0xE0 ? 3 : 2;
        for (j = have; j < len; j++) buf[j] = (j == 1) ? seconds[t] : 0x80;
        if (ref_decode(buf, len, &ii, &cp) == 1) return 0;
      }
      return -1;
    }
  }
  return 1;
}

/* Encodes cp in exactly n bytes (1-4), overlong or out of range if asked to. */
static size_t encode(uint32_t cp, size_t n, uint8_t *b) {
  static const uint8_t lead[] = {0, 0x00, 0xC0, 0xE0, 0xF0};
  size_t i;
  for (i = n - 1; i > 0; i--) {
    b[i] = (uint8_t)(0x80 | (cp & 0x3F));
    cp >>= 6;
  }
  b[0] = (uint8_t)(lead[n] | cp);
  return n;
}

static size_t min_len(uint32_t cp) { return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4; }

#define V(lit, expect)                                                        \
  do {                                                                        \
    CHECK_INT(validate_all(lit, sizeof(lit) - 1), expect);                    \
    CHECK_INT(validate_bytewise(lit, sizeof(lit) - 1), expect);               \
    CHECK_INT(ref_valid((const uint8_t *)lit, sizeof(lit) - 1), expect);      \
    CHECK_INT(validate_all(lit "abcd", sizeof(lit) + 3), (expect) ? (expect) : -1); \
  } while (0)

void test_utf8(void) {
  /* Valid, and the edges of every range. */
  V("", 1);
  V("Hello, world", 1);
  V("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5", 1); /* Autobahn 6.2.1 "kosme" */
  V("\x00", 1);
  V("\x7f", 1);
  V("\xc2\x80", 1);             /* U+0080 */
  V("\xdf\xbf", 1);             /* U+07FF */
  V("\xe0\xa0\x80", 1);         /* U+0800 */
  V("\xed\x9f\xbf", 1);         /* U+D7FF */
  V("\xee\x80\x80", 1);         /* U+E000 */
  V("\xef\xbf\xbd", 1);         /* U+FFFD */
  V("\xef\xbf\xbf", 1);         /* U+FFFF */
  V("\xf0\x90\x80\x80", 1);     /* U+10000 */
  V("\xf4\x8f\xbf\xbf", 1);     /* U+10FFFF */

  /* Overlongs (Autobahn 6.8-6.9). */
  V("\xc0\x80", -1);
  V("\xc1\xbf", -1);
  V("\xe0\x80\x80", -1);
  V("\xe0\x9f\xbf", -1);
  V("\xf0\x80\x80\x80", -1);
  V("\xf0\x8f\xbf\xbf", -1);
  V("\xc0\xaf", -1);
  V("\xe0\x80\xaf", -1);
  V("\xf0\x80\x80\xaf", -1);
  /* Surrogates (6.19-6.21). */
  V("\xed\xa0\x80", -1);
  V("\xed\xad\xbf", -1);
  V("\xed\xbf\xbf", -1);
  V("\xed\xa0\x80\xed\xb0\x80", -1);
  /* Above U+10FFFF and bytes that never occur (6.3, 6.4, 6.6). */
  V("\xf4\x90\x80\x80", -1);
  V("\xf4\x90", -1);
  V("\xf5\x80\x80\x80", -1);
  V("\xf7\xbf\xbf\xbf", -1);
  V("\xf8\x88\x80\x80\x80", -1);
  V("\xfe", -1);
  V("\xff", -1);
  V("\xfe\xfe\xff\xff", -1);
  /* Lone and unexpected continuation bytes (6.6). */
  V("\x80", -1);
  V("\xbf", -1);
  V("a\x80\xbf", -1);
  V("\xc2\x41", -1);
  V("\xe2\x82\x41", -1);
  V("\xf0\x90\x80\x41", -1);
  V("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80\x65\x64\x69\x74\x65\x64", -1);
  /* Cut short: not invalid yet, but not whole either (6.5, at a message end: 1007). */
  V("\xe2\x82", 0);
  V("\xc2", 0);
  V("\xf0\x90\x80", 0);
  V("\xf4", 0);
  V("\xce\xba\xe1\xbd", 0);
  V("\xe0", 0);
  V("\xed", 0);
  V("\xed\x9f", 0);

  /* The ASCII fast path: an invalid byte at every position of a long ASCII run is
   * found, and a multi-byte character anywhere is followed correctly. */
  {
    char buf[80];
    size_t i;
    for (i = 0; i < sizeof buf; i++) {
      memset(buf, 'a', sizeof buf);
      buf[i] = (char)0x80;
      CHECK_INT(validate_all(buf, sizeof buf), -1);
    }
    for (i = 0; i + 3 <= sizeof buf; i++) {
      memset(buf, 'a', sizeof buf);
      memcpy(buf + i, "\xe2\x82\xac", 3);
      CHECK_INT(validate_all(buf, sizeof buf), 1);
      CHECK_INT(validate_all(buf, i + 2), 0);
      buf[i + 2] = 'z';
      CHECK_INT(validate_all(buf, sizeof buf), -1);
    }
  }

  /* Once invalid, always invalid: a rejected state is never reused as valid. */
  {
    uint32_t st = WS_UTF8_ACCEPT;
    CHECK_INT(ws_utf8_validate(&st, (const uint8_t *)"\xff", 1), -1);
    CHECK_INT(ws_utf8_validate(&st, (const uint8_t *)"abc", 3), -1);
  }

  /* Random strings of characters, some overlong, surrogate or too large, some with a
   * byte changed or cut short, against the reference, whole and split at every point. */
  {
    static const uint32_t edges[] = {0,      0x7F,   0x80,    0x7FF,    0x800,   0xD7FF,
                                     0xD800, 0xDFFF, 0xE000,  0xFFFD,   0xFFFF,  0x10000,
                                     0xFFFFF, 0x10FFFF, 0x110000, 0x13FFFF, 0x7C0, 0x40};
    static const uint8_t pool[] = {'a', 0x00, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF,
                                   0xC0, 0xC1, 0xC2, 0xDF, 0xE0, 0xE1, 0xEC, 0xED, 0xEE,
                                   0xEF, 0xF0, 0xF1, 0xF3, 0xF4, 0xF5, 0xFF};
    uint64_t seed = 12345;
    int iter, mismatches = 0, splits = 0, valid = 0;
    for (iter = 0; iter < 30000; iter++) {
      uint8_t s[64];
      size_t n = 0, cut, chars = test_rand(&seed) % 8, i;
      int want, got;
      for (i = 0; i < chars; i++) {
        uint64_t r = test_rand(&seed);
        uint32_t cp = (r & 1) ? edges[(r >> 8) % (sizeof edges / sizeof edges[0])]
                              : (uint32_t)((r >> 8) % 0x110000);
        size_t len = min_len(cp);
        if ((r >> 40) % 8 == 0 && len < 4) len++; /* overlong */
        if (cp >= 0x110000) len = 4;
        if ((r >> 44) % 4 == 0) { /* some ASCII between */
          s[n++] = 'a';
        }
        n += encode(cp, len, s + n);
      }
      switch (test_rand(&seed) % 4) {
      case 0: if (n) s[test_rand(&seed) % n] = pool[test_rand(&seed) % sizeof pool]; break;
      case 1: if (n) n -= test_rand(&seed) % 4 % (n + 1); break;
      default: break;
      }
      want = ref_valid(s, n);
      valid += want == 1;
      got = validate_all((const char *)s, n);
      if (got != want) mismatches++;
      for (cut = 0; cut <= n; cut++) {
        uint32_t st = WS_UTF8_ACCEPT;
        int r = ws_utf8_validate(&st, s, cut);
        if (r == 0) r = ws_utf8_validate(&st, s + cut, n - cut);
        r = r < 0 ? -1 : st == WS_UTF8_ACCEPT ? 1 : 0;
        if (r != want) splits++;
      }
    }
    CHECK_INT(mismatches, 0);
    CHECK_INT(splits, 0);
    CHECK(valid > 3000 && valid < 27000); /* both kinds were tried */
  }

  /* Every code point, encoded by hand, is accepted iff it is a scalar value. */
  {
    uint32_t cp;
    int bad = 0;
    for (cp = 0; cp <= 0x10FFFF; cp++) {
      uint8_t b[4];
      size_t n;
      int want = !(cp >= 0xD800 && cp <= 0xDFFF);
      n = encode(cp, min_len(cp), b);
      if ((validate_all((const char *)b, n) == 1) != want) bad++;
      /* Again with room after it (whole characters are checked another way then), and
       * with its last byte changed into one that cannot continue it. */
      {
        uint8_t pad[8] = {0};
        memcpy(pad, b, n);
        memcpy(pad + n, "abc", 3);
        if ((validate_all((const char *)pad, n + 3) == 1) != want) bad++;
        if (n > 1) {
          pad[n - 1] = 'x';
          if (validate_all((const char *)pad, n + 3) != -1) bad++;
        }
      }
    }
    CHECK_INT(bad, 0);
  }
}
