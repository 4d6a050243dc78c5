/* The helpers of test.h, shared by the C test binaries (main.c, test_conn.c). */
#include <stdarg.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "test.h"

long test_passed, test_failed;

void test_fail(const char *file, int line, const char *what) {
  test_failed++;
  fprintf(stderr, "%s:%d: FAIL %s\n", file, line, what);
}

void test_check_int(const char *file, int line, const char *as, const char *bs, long long a,
                    long long b) {
  if (a == b) {
    test_passed++;
    return;
  }
  test_failed++;
  fprintf(stderr, "%s:%d: FAIL %s == %s (%lld != %lld)\n", file, line, as, bs, a, b);
}

void test_check_mem(const char *file, int line, const char *as, const char *bs,
                    const void *a, size_t alen, const void *b, size_t blen) {
  if (alen == blen && (alen == 0 || memcmp(a, b, alen) == 0)) {
    test_passed++;
    return;
  }
  test_failed++;
  fprintf(stderr, "%s:%d: FAIL %s (%zu bytes) equals %s (%zu bytes)\n", file, line, as, alen,
          bs, blen);
}

void test_check_str(const char *file, int line, const char *as, const char *bs,
                    const char *a, const char *b) {
  if (a && b && strcmp(a, b) == 0) {
    test_passed++;
    return;
  }
  test_failed++;
  fprintf(stderr, "%s:%d: FAIL %s == %s (\"%s\" != \"%s\")\n", file, line, as, bs,
          a ? a : "(null)", b ? b : "(null)");
}

uint64_t test_rand(uint64_t *state) {
  uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/* One mapping: TEST_GUARD_SIZE writable bytes, then a page with no access at all. */
char *test_guard_end(void) {
  static char *end;
  if (!end) {
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    char *base = mmap(NULL, TEST_GUARD_SIZE + page, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED || mprotect(base + TEST_GUARD_SIZE, page, PROT_NONE) != 0) {
      perror("mmap");
      exit(2);
    }
    end = base + TEST_GUARD_SIZE;
  }
  return end;
}

char *test_guard_copy(const void *data, size_t len) {
  char *p = test_guard_end() - len;
  if (len > TEST_GUARD_SIZE) {
    fprintf(stderr, "test_guard_copy: %zu bytes is too many\n", len);
    exit(2);
  }
  if (len) memcpy(p, data, len);
  return p;
}

/* A growable byte buffer, for the tests' event logs. */
void tb_put(tbuf_t *b, const void *d, size_t n) {
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n) cap *= 2;
    b->p = realloc(b->p, cap);
    if (!b->p) abort();
    b->cap = cap;
  }
  if (n) memcpy(b->p + b->len, d, n);
  b->len += n;
}

void tb_byte(tbuf_t *b, int c) {
  uint8_t x = (uint8_t)c;
  tb_put(b, &x, 1);
}

void tb_u64(tbuf_t *b, uint64_t v) { tb_put(b, &v, sizeof v); }

void tb_free(tbuf_t *b) {
  free(b->p);
  b->p = NULL;
  b->len = b->cap = 0;
}

int tb_eq(const tbuf_t *a, const tbuf_t *b) {
  return a->len == b->len && (a->len == 0 || memcmp(a->p, b->p, a->len) == 0);
}

void test_appendf(char *buf, size_t cap, const char *fmt, ...) {
  size_t n = strlen(buf);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf + n, cap - n, fmt, ap);
  va_end(ap);
}
