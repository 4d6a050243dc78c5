/* A tiny test framework for the protocol core: CHECK macros that count passes and
 * failures and print where a failure happened. */
#ifndef WS_TEST_H
#define WS_TEST_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>

extern long test_passed, test_failed;

void test_fail(const char *file, int line, const char *what);
/* Deterministic PRNG (splitmix64), so a failing random case can be run again. */
uint64_t test_rand(uint64_t *state);

/* Input placed right before an unreadable page, so that any read past its end
 * crashes at once (as picohttpparser's tests do). The copy is writable. */
#define TEST_GUARD_SIZE (4u << 20)
char *test_guard_end(void);
char *test_guard_copy(const void *data, size_t len);

#define CHECK(cond)                                                           \
  do {                                                                        \
    if (cond) test_passed++;                                                  \
    else test_fail(__FILE__, __LINE__, #cond);                                \
  } while (0)

#define CHECK_INT(a, b) \
  test_check_int(__FILE__, __LINE__, #a, #b, (long long)(a), (long long)(b))

#define CHECK_MEM(a, alen, b, blen)                                           \
  test_check_mem(__FILE__, __LINE__, #a, #b, (a), (alen), (b), (blen))

#define CHECK_STR(a, b) test_check_str(__FILE__, __LINE__, #a, #b, (a), (b))

void test_check_int(const char *file, int line, const char *as, const char *bs, long long a,
                    long long b);
void test_check_mem(const char *file, int line, const char *as, const char *bs,
                    const void *a, size_t alen, const void *b, size_t blen);
void test_check_str(const char *file, int line, const char *as, const char *bs,
                    const char *a, const char *b);
/* Appends a formatted note to the string buf (cap bytes): the event logs of the I/O tests. */
void test_appendf(char *buf, size_t cap, const char *fmt, ...);

/* A growable byte buffer (aborts when out of memory). */
typedef struct {
  uint8_t *p;
  size_t len, cap;
} tbuf_t;
void tb_put(tbuf_t *b, const void *d, size_t n);
void tb_byte(tbuf_t *b, int c);
void tb_u64(tbuf_t *b, uint64_t v);
void tb_free(tbuf_t *b);
int tb_eq(const tbuf_t *a, const tbuf_t *b);

void test_errors(void);
void test_frame(void);
void test_utf8(void);
void test_close(void);
void test_http(void);
void test_body(void);
void test_handshake(void);
void test_hixie(void);
void test_ext(void);
void test_deflate(void);
void test_codec(void);
void test_topics(void);   /* test_io: csrc/io/topics.c */
void test_backplane(void);   /* test_io: csrc/io/backplane.c without Redis */

#endif
