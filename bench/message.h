/* The benchmarks' permessage-deflate message (bench/loadgen.c -z, bench/zlib_floor.c):
 * JSON-like text made from its index alone, so that every connection and every program
 * sends the same sequence. */
#ifndef LUAWS_BENCH_MESSAGE_H
#define LUAWS_BENCH_MESSAGE_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>

static uint64_t splitmix64(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* Message i: size bytes of JSON-like text (an order book update). The fields and most
 * words repeat from message to message, as in a real feed, while the sequence number,
 * ids, prices, quantities and the words of the memo are drawn from i, so no two messages
 * are equal and a compressor with context still has work to do. Deterministic: the
 * echo's check makes it again. 256 <= size <= 4096. */
static void make_message(uint64_t i, char *out, size_t size) {
  static const char *const syms[] = {"BTC-USD", "ETH-USD", "SOL-USD", "AAPL", "MSFT",
                                     "TSLA", "EUR-USD", "GBP-JPY"};
  static const char *const words[] = {
      "order", "filled", "partial", "limit", "market", "cancel", "replace", "venue",
      "client", "account", "margin", "settle", "pending", "expired", "routed", "quote",
      "spread", "bid", "ask", "depth", "level", "auction", "open", "close",
      "halt", "resume", "print", "block", "iceberg", "hidden", "peg", "sweep"};
  char buf[8192];
  uint64_t r = i;
  size_t n;
  uint64_t a = splitmix64(&r), b = splitmix64(&r);
  n = (size_t)snprintf(buf, sizeof buf,
                       "{\"type\":\"book\",\"seq\":%llu,\"id\":\"%016llx\",\"ts\":%llu,"
                       "\"symbol\":\"%s\",\"user\":{\"id\":%u,\"name\":\"trader-%u\","
                       "\"tier\":\"%s\"},\"side\":\"%s\",\"levels\":[",
                       (unsigned long long)i, (unsigned long long)a,
                       1700000000000ull + i * 7 + (b & 7), syms[b % 8],
                       (unsigned)(b >> 8) % 100000, (unsigned)(b >> 8) % 100000,
                       (b >> 30) & 1 ? "gold" : "basic", (b >> 31) & 1 ? "buy" : "sell");
  unsigned price = 10000 + (unsigned)(a % 90000);
  for (int k = 0; n + 64 < size / 2 + 128 && n + 64 < sizeof buf; k++) {
    uint64_t x = splitmix64(&r);
    price += (unsigned)(x % 50);
    n += (size_t)snprintf(buf + n, sizeof buf - n, "%s{\"px\":%u.%02u,\"qty\":%u,\"n\":%u}",
                          k ? "," : "", price / 100, price % 100, (unsigned)(x >> 8) % 5000,
                          (unsigned)(x >> 24) % 40 + 1);
  }
  n += (size_t)snprintf(buf + n, sizeof buf - n, "],\"memo\":\"");
  while (n + 2 < size) {
    uint64_t x = splitmix64(&r);
    n += (size_t)snprintf(buf + n, sizeof buf - n, "%s ", words[x % 32]);
  }
  memcpy(out, buf, size - 2);
  memcpy(out + size - 2, "\"}", 2);
}

#endif
