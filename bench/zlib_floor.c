/* zlib_floor: the zlib work of a permessage-deflate echo server, and nothing else: test
 * g's floor (bench/run.sh) without the sockets, next to bench/floor_echo.c --deflate.
 *
 *   zlib_floor [-c CONNS] [-d SECONDS] [-s BYTES] [-l LEVEL] [-m MEMLEVEL]
 *
 * -c connections (100), each with its own inflater and deflater keeping their context
 * (RFC 7692 7.1.1), take turns as the server's do under test g: each inflates the next
 * message of bench/message.h as a client compressed it (loadgen -z's compressor) and
 * compresses it again for the echo, with a sync flush. No sockets, no framing, no Lua.
 * Prints one line of key=value pairs: microseconds per message for the two steps, and
 * the echo's compressed size. Every inflated message is checked against the original. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "message.h"

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what) {
  fprintf(stderr, "zlib_floor: %s\n", what);
  exit(1);
}

int main(int argc, char **argv) {
  int conns = 100, level = Z_DEFAULT_COMPRESSION, mem_level = 8, ch;
  double seconds = 5;
  size_t size = 1024;
  while ((ch = getopt(argc, argv, "c:d:s:l:m:")) != -1) {
    switch (ch) {
    case 'c': conns = atoi(optarg); break;
    case 'd': seconds = atof(optarg); break;
    case 's': size = (size_t)strtoull(optarg, NULL, 10); break;
    case 'l': level = atoi(optarg); break;
    case 'm': mem_level = atoi(optarg); break;
    default: die("usage: zlib_floor [-c CONNS] [-d SECONDS] [-s BYTES] [-l LEVEL] [-m MEMLEVEL]");
    }
  }
  if (conns < 1 || seconds <= 0 || size < 256 || size > 4096) die("bad arguments");

  z_stream client, *in = calloc((size_t)conns, sizeof *in), *out = calloc((size_t)conns, sizeof *out);
  size_t cap = size + size / 8 + 64;
  char *text = malloc(size), *msg = malloc(cap), *plain = malloc(size + 1), *echo = malloc(cap);
  if (!in || !out || !text || !msg || !plain || !echo) die("out of memory");
  memset(&client, 0, sizeof client);
  if (deflateInit2(&client, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    die("deflateInit2");
  for (int c = 0; c < conns; c++)
    if (inflateInit2(&in[c], -15) != Z_OK ||
        deflateInit2(&out[c], level, Z_DEFLATED, -15, mem_level, Z_DEFAULT_STRATEGY) != Z_OK)
      die("zlib init");

  static const char tail[4] = {0, 0, (char)0xff, (char)0xff};
  double t_in = 0, t_out = 0, t_end = now() + seconds;
  uint64_t msgs = 0, echo_bytes = 0;
  for (uint64_t i = 0; now() < t_end; i++) {
    /* message i as every client sends it (outside the timed part; the server gets it
     * ready made), with the 00 00 ff ff a receiver appends (7.2.2) */
    make_message(i, text, size);
    client.next_in = (Bytef *)text;
    client.avail_in = (uInt)size;
    client.next_out = (Bytef *)msg;
    client.avail_out = (uInt)cap;
    if (deflate(&client, Z_SYNC_FLUSH) != Z_OK || client.avail_in || !client.avail_out)
      die("client deflate");
    size_t mlen = cap - client.avail_out;
    for (int c = 0; c < conns; c++) {
      double t0 = now();
      in[c].next_in = (Bytef *)msg;
      in[c].avail_in = (uInt)mlen;
      in[c].next_out = (Bytef *)plain;
      in[c].avail_out = (uInt)size + 1;
      int r = inflate(&in[c], Z_SYNC_FLUSH);
      if ((r != Z_OK && r != Z_BUF_ERROR) || in[c].avail_out != 1 || memcmp(plain, text, size))
        die("inflate: not the message sent");
      double t1 = now();
      out[c].next_in = (Bytef *)plain;
      out[c].avail_in = (uInt)size;
      out[c].next_out = (Bytef *)echo;
      out[c].avail_out = (uInt)cap;
      if (deflate(&out[c], Z_SYNC_FLUSH) != Z_OK || out[c].avail_in || !out[c].avail_out)
        die("deflate");
      double t2 = now();
      t_in += t1 - t0;
      t_out += t2 - t1;
      echo_bytes += cap - out[c].avail_out - sizeof tail;   /* as sent: the tail stripped */
      msgs++;
    }
  }
  printf("zlib_floor conns=%d size=%zu level=%d memLevel=%d msgs=%llu us_per_msg=%.2f "
         "inflate_us=%.2f deflate_us=%.2f echo_payload_B=%.1f\n",
         conns, size, level, mem_level, (unsigned long long)msgs, (t_in + t_out) * 1e6 / (double)msgs,
         t_in * 1e6 / (double)msgs, t_out * 1e6 / (double)msgs, (double)echo_bytes / (double)msgs);
  return 0;
}
