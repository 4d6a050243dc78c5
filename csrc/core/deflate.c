/* permessage-deflate (RFC 7692): negotiation, and the per-message compressor and
 * decompressor on zlib's raw deflate.
 *
 * A window of 8 bits (RFC 7692 7.1.2): zlib's raw deflate refuses windowBits 8, and
 * the RFC lets a server answer server_max_window_bits only with "the same or smaller
 * value", and a client must obey any client_max_window_bits from 8 up. So instead of
 * declining such offers or failing such responses, a direction limited to 8 bits is
 * compressed with windowBits 9 and Z_HUFFMAN_ONLY: zlib documents that this emits no
 * string matches, so no distance can reach past 256 bytes and any window suffices.
 * Inflating a window-8 stream uses windowBits 9 (a larger window reads any stream a
 * smaller one can).
 *
 * The inflater uses the negotiated window, to hold no more memory than it must. zlib
 * does not police it strictly: a peer's distance past its window is refused only when
 * the bytes it points at are not in the same inflate call's output. */
#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "deflate.h"

/* RFC 7692 7.2.1: a sync flush ends with an empty stored block's LEN and NLEN. */
static const unsigned char ws__tail[4] = {0x00, 0x00, 0xff, 0xff};

/* As Node's ws: zlib's defaults, full windows, context takeover, threshold 1024. */
static const ws_deflate_config_t ws__defaults = {Z_DEFAULT_COMPRESSION, 8, Z_DEFAULT_STRATEGY,
                                                 15, 15, 0, 0, 1024};

void ws_deflate_config_default(ws_deflate_config_t *cfg) { *cfg = ws__defaults; }

static int ws__bits_ok(int b) { return b >= 8 && b <= 15; }

int ws_deflate_config_check(const ws_deflate_config_t *cfg) {
  if (cfg->level < -1 || cfg->level > 9 || cfg->mem_level < 1 || cfg->mem_level > 9 ||
      cfg->strategy < 0 || cfg->strategy > Z_FIXED ||
      !ws__bits_ok(cfg->server_max_window_bits) ||
      (cfg->client_max_window_bits != 0 && !ws__bits_ok(cfg->client_max_window_bits)))
    return WS_EINVAL;
  return 0;
}

static const ws_deflate_config_t *ws__cfg(const void *config) {
  return config ? config : &ws__defaults;
}

/* ---- negotiation (RFC 7692 5, 7.1) -------------------------------------------- */

enum { WS__SNCT, WS__CNCT, WS__SBITS, WS__CBITS, WS__NPARAMS };

static const char *const ws__param_names[WS__NPARAMS] = {
    "server_no_context_takeover", "client_no_context_takeover", "server_max_window_bits",
    "client_max_window_bits"};

/* Which of the four a parameter is (names compare exactly: RFC 7692 only defines these
 * spellings, and a token compare is case-sensitive unless a spec says otherwise). */
static int ws__param_index(const ws_ext_param_t *pa) {
  int i;
  for (i = 0; i < WS__NPARAMS; i++) {
    size_t n = strlen(ws__param_names[i]);
    if (pa->name_len == n && memcmp(pa->name, ws__param_names[i], n) == 0) return i;
  }
  return -1;
}

/* 7.1.2.1/7.1.2.2: "a decimal integer value without leading zeroes between 8 to 15".
 * -1 for anything else. */
static int ws__bits_value(const ws_ext_param_t *pa) {
  const char *v = pa->value;
  if (!v) return -1;
  if (pa->value_len == 1 && (v[0] == '8' || v[0] == '9')) return v[0] - '0';
  if (pa->value_len == 2 && v[0] == '1' && v[1] >= '0' && v[1] <= '5') return 10 + v[1] - '0';
  return -1;
}

/* What one element says. cbits: -1 absent, 0 present without a value, else its value;
 * sbits: 0 absent. Returns 0, or -1 if an element of either role breaks the rules
 * common to both: unknown or repeated parameters (7: "MUST NOT ... more than one"),
 * a value on a no_context_takeover, a window value that is not 8..15. */
typedef struct {
  int snct, cnct, sbits, cbits;
} ws__element_t;

static int ws__element(const ws_ext_item_t *it, ws__element_t *e) {
  int seen[WS__NPARAMS] = {0};
  size_t i;

  e->snct = e->cnct = e->sbits = 0;
  e->cbits = -1;
  for (i = 0; i < it->num_params; i++) {
    const ws_ext_param_t *pa = &it->params[i];
    int k = ws__param_index(pa), v;
    if (k < 0 || seen[k]++) return -1;
    switch (k) {
    case WS__SNCT:
    case WS__CNCT:
      if (pa->value) return -1; /* 7.1.1.1, 7.1.1.2: "has no value" */
      if (k == WS__SNCT) e->snct = 1;
      else e->cnct = 1;
      break;
    case WS__SBITS:
      /* 7.1.2.1: always with a value. */
      if ((v = ws__bits_value(pa)) < 0) return -1;
      e->sbits = v;
      break;
    default:
      /* 7.1.2.2: with no value only in an offer; the caller checks the role. */
      if (pa->value && (v = ws__bits_value(pa)) < 0) return -1;
      e->cbits = pa->value ? v : 0;
      break;
    }
  }
  return 0;
}

static int ws__min(int a, int b) { return a < b ? a : b; }

int ws_deflate_server_negotiate(const ws_deflate_config_t *cfg,
                                const ws_ext_item_t *const *offers, size_t num_offers,
                                ws_deflate_params_t *out) {
  size_t i;
  int cmax = cfg->client_max_window_bits ? cfg->client_max_window_bits : 15;

  memset(out, 0, sizeof *out);
  /* RFC 7692 5: the server accepts one offer, the first it can; others are declined. */
  for (i = 0; i < num_offers; i++) {
    ws__element_t e;
    if (ws__element(offers[i], &e) < 0) continue;
    /* 7.1.1: no context takeover is always granted, and may be imposed unasked. The
     * client's own hint is echoed so that we may drop our inflater between messages. */
    out->server_no_context_takeover = e.snct || cfg->server_no_context_takeover;
    out->client_no_context_takeover = e.cnct || cfg->client_no_context_takeover;
    /* 7.1.2.1: answer the same or a smaller value; unasked, we may still limit. */
    if (e.sbits) out->server_max_window_bits = ws__min(e.sbits, cfg->server_max_window_bits);
    else if (cfg->server_max_window_bits < 15)
      out->server_max_window_bits = cfg->server_max_window_bits;
    /* 7.1.2.2: only when offered, and then no more than an offered value. */
    if (e.cbits >= 0) {
      int want = e.cbits ? ws__min(e.cbits, cmax) : cmax;
      if (want < 15) out->client_max_window_bits = want;
    }
    return (int)i;
  }
  return -1;
}

static size_t ws__bits_str(char s[2], int bits) {
  if (bits < 10) {
    s[0] = (char)('0' + bits);
    return 1;
  }
  s[0] = '1';
  s[1] = (char)('0' + bits - 10);
  return 2;
}

/* Appends permessage-deflate with these parameters; bits < 0: present, no value. */
static int ws__build(char *out, size_t cap, size_t *len, int snct, int cnct, int sbits,
                     int cbits) {
  ws_ext_param_t ps[WS__NPARAMS];
  char sv[2], cv[2];
  size_t n = 0, i;

  memset(ps, 0, sizeof ps);
  if (snct) ps[n++].name = ws__param_names[WS__SNCT];
  if (cnct) ps[n++].name = ws__param_names[WS__CNCT];
  if (sbits) {
    ps[n].value = sv;
    ps[n].value_len = ws__bits_str(sv, sbits);
    ps[n++].name = ws__param_names[WS__SBITS];
  }
  if (cbits) {
    if (cbits > 0) {
      ps[n].value = cv;
      ps[n].value_len = ws__bits_str(cv, cbits);
    }
    ps[n++].name = ws__param_names[WS__CBITS];
  }
  for (i = 0; i < n; i++) ps[i].name_len = strlen(ps[i].name);
  return ws_ext_build(out, cap, len, WS_DEFLATE_NAME, ps, n);
}

int ws_deflate_params_build(const ws_deflate_params_t *p, char *out, size_t cap,
                            size_t *len) {
  return ws__build(out, cap, len, p->server_no_context_takeover,
                   p->client_no_context_takeover, p->server_max_window_bits,
                   p->client_max_window_bits);
}

int ws_deflate_client_offer(const ws_deflate_config_t *cfg, char *out, size_t cap,
                            size_t *len) {
  int cbits = cfg->client_max_window_bits;
  /* 7.1.2.2: with no value, the parameter only says "you may limit my window". */
  if (cbits == 15) cbits = -1;
  return ws__build(out, cap, len, cfg->server_no_context_takeover,
                   cfg->client_no_context_takeover,
                   cfg->server_max_window_bits < 15 ? cfg->server_max_window_bits : 0, cbits);
}

int ws_deflate_client_accept(const ws_deflate_config_t *cfg, const ws_ext_item_t *response,
                             ws_deflate_params_t *out) {
  ws__element_t e;

  memset(out, 0, sizeof *out);
  if (ws__element(response, &e) < 0) return WS_EEXTENSION;
  /* 7.1.1.1: a server accepts server_no_context_takeover by repeating it. */
  if (cfg->server_no_context_takeover && !e.snct) return WS_EEXTENSION;
  /* 7.1.2.1: asked for, it must come back, no larger. */
  if (cfg->server_max_window_bits < 15 &&
      (!e.sbits || e.sbits > cfg->server_max_window_bits))
    return WS_EEXTENSION;
  if (e.cbits >= 0) {
    /* 7.1.2.2: only if offered; in a response always with a value, no larger than
     * an offered one. */
    if (!cfg->client_max_window_bits || e.cbits == 0 || e.cbits > cfg->client_max_window_bits)
      return WS_EEXTENSION;
  }
  out->server_no_context_takeover = e.snct;
  out->client_no_context_takeover = e.cnct;
  out->server_max_window_bits = e.sbits;
  out->client_max_window_bits = e.cbits > 0 ? e.cbits : 0;
  return 0;
}

/* ---- connection state ---------------------------------------------------------- */

void ws_deflate_init(ws_deflate_t *d, const ws_deflate_config_t *cfg, int role,
                     const ws_deflate_params_t *p) {
  int sbits = p->server_max_window_bits ? p->server_max_window_bits : 15;
  int cbits = p->client_max_window_bits ? p->client_max_window_bits : 15;

  memset(d, 0, sizeof *d);
  d->cfg = *cfg;
  if (role == WS_ROLE_SERVER) {
    d->send_bits = (uint8_t)ws__min(sbits, cfg->server_max_window_bits);
    d->recv_bits = (uint8_t)cbits;
    d->send_nct = (uint8_t)p->server_no_context_takeover;
    d->recv_nct = (uint8_t)p->client_no_context_takeover;
  } else {
    /* A value we offered binds us even if the server did not repeat it (7.1.2.2). */
    if (cfg->client_max_window_bits) cbits = ws__min(cbits, cfg->client_max_window_bits);
    d->send_bits = (uint8_t)cbits;
    d->recv_bits = (uint8_t)sbits;
    d->send_nct = (uint8_t)(p->client_no_context_takeover || cfg->client_no_context_takeover);
    d->recv_nct = (uint8_t)p->server_no_context_takeover;
  }
}

/* zlib's allocations, counted so that ws_deflate_memory tells the truth. */
typedef union {
  size_t n;
  max_align_t align;
} ws__zhdr_t;

static voidpf ws__zalloc(voidpf opaque, uInt items, uInt size) {
  size_t n = (size_t)items * size;
  ws__zhdr_t *h;
  if (size && n / size != items) return Z_NULL;
  if (!(h = malloc(sizeof *h + n))) return Z_NULL;
  h->n = n;
  *(size_t *)opaque += n;
  return h + 1;
}

static void ws__zfree(voidpf opaque, voidpf p) {
  ws__zhdr_t *h = (ws__zhdr_t *)p - 1;
  if (!p) return;
  *(size_t *)opaque -= h->n;
  free(h);
}

static z_stream *ws__znew(size_t *mem) {
  z_stream *z = ws__zalloc(mem, 1, sizeof *z);
  if (!z) return NULL;
  memset(z, 0, sizeof *z);
  z->zalloc = ws__zalloc;
  z->zfree = ws__zfree;
  z->opaque = mem;
  return z;
}

static int ws__zerr(int r) { return r == Z_MEM_ERROR ? WS_ENOMEM : WS_EINTERNAL; }

static int ws__deflate_init(z_stream *z, const ws_deflate_config_t *cfg, int bits) {
  /* See the top of the file for window 8. */
  int r = deflateInit2(z, cfg->level, Z_DEFLATED, -(bits < 9 ? 9 : bits), cfg->mem_level,
                       bits < 9 ? Z_HUFFMAN_ONLY : cfg->strategy);
  return r == Z_OK ? 0 : ws__zerr(r);
}

static void ws__zout_end(ws_deflate_t *d) {
  if (!d->zout) return;
  deflateEnd(d->zout);
  ws__zfree(&d->mem, d->zout);
  d->zout = NULL;
}

static void ws__zin_end(ws_deflate_t *d) {
  if (!d->zin) return;
  inflateEnd(d->zin);
  ws__zfree(&d->mem, d->zin);
  d->zin = NULL;
}

void ws_deflate_free(ws_deflate_t *d) {
  ws__zout_end(d);
  ws__zin_end(d);
  free(d->out_dict);
  free(d->in_dict);
  d->out_dict = d->in_dict = NULL;
  d->out_dict_len = d->in_dict_len = 0;
}

size_t ws_deflate_memory(const ws_deflate_t *d) {
  return d->mem + d->out_dict_len + d->in_dict_len;
}

/* A stream's window, copied out (zlib's *GetDictionary): exactly the bytes the next
 * message may refer back to. */
static int ws__take_window(z_stream *z, int out, unsigned char **dict, uint32_t *len) {
  unsigned char buf[1u << 15];
  uInt n = 0;
  int r = out ? deflateGetDictionary(z, buf, &n) : inflateGetDictionary(z, buf, &n);
  if (r != Z_OK) return WS_EINTERNAL;
  *dict = NULL;
  *len = 0;
  if (!n) return 0;
  if (!(*dict = malloc(n))) return WS_ENOMEM;
  memcpy(*dict, buf, n);
  *len = (uint32_t)n;
  return 0;
}

int ws_deflate_park(ws_deflate_t *d) {
  int r;
  if (d->error || d->in_started) return d->error;
  if (d->zout && !d->send_nct) {
    if ((r = ws__take_window(d->zout, 1, &d->out_dict, &d->out_dict_len)) < 0)
      return d->error = r;
    ws__zout_end(d);
  }
  if (d->zin && !d->recv_nct) {
    if ((r = ws__take_window(d->zin, 0, &d->in_dict, &d->in_dict_len)) < 0)
      return d->error = r;
    ws__zin_end(d);
  }
  return 0;
}

/* ---- compressing (RFC 7692 7.2.1) ---------------------------------------------- */

static int ws__buf_reserve(ws_bytes_t *b, size_t extra) {
  size_t cap;
  char *p;
  if (b->cap - b->len >= extra) return 0;
  if (extra > SIZE_MAX / 2 - b->len) return WS_ENOMEM;
  cap = b->cap * 2 > b->len + extra ? b->cap * 2 : b->len + extra;
  if (!(p = realloc(b->data, cap))) return WS_ENOMEM;
  b->data = p;
  b->cap = cap;
  return 0;
}

/* Compresses in with a sync flush and drops the flush's 00 00 ff ff. */
static int ws__compress(z_stream *z, const char *in, size_t len, ws_bytes_t *out) {
  size_t start = out->len, left = len;
  const char *p = in;
  int r;

  if ((r = ws__buf_reserve(out, len / 4 + 64)) < 0) return r;
  for (;;) {
    size_t room;
    if (z->avail_in == 0 && left) {
      uInt n = left > UINT_MAX ? UINT_MAX : (uInt)left;
      z->next_in = (Bytef *)p;
      z->avail_in = n;
      p += n;
      left -= n;
    }
    /* zlib asks for more than six bytes of room around a sync flush. */
    if ((r = ws__buf_reserve(out, 64)) < 0) break;
    room = out->cap - out->len > UINT_MAX ? UINT_MAX : out->cap - out->len;
    z->next_out = (Bytef *)out->data + out->len;
    z->avail_out = (uInt)room;
    r = deflate(z, left ? Z_NO_FLUSH : Z_SYNC_FLUSH);
    out->len += room - z->avail_out;
    if (r != Z_OK && r != Z_BUF_ERROR) {
      r = WS_EINTERNAL;
      break;
    }
    r = 0;
    if (!left && z->avail_in == 0 && z->avail_out != 0) break;
  }
  z->next_in = z->next_out = NULL;
  z->avail_in = z->avail_out = 0;
  if (!r && (out->len - start < sizeof ws__tail ||
             memcmp(out->data + out->len - sizeof ws__tail, ws__tail, sizeof ws__tail) != 0))
    r = WS_EINTERNAL;
  if (r < 0) {
    out->len = start;
    return r;
  }
  out->len -= sizeof ws__tail;
  return 0;
}

/* An empty message: the stripped form of one empty stored block (7.2.3.6), valid at
 * any point of a stream, so no zlib stream is needed for it. */
static int ws__compress_empty(ws_bytes_t *out) {
  int r = ws__buf_reserve(out, 1);
  if (r == 0) out->data[out->len++] = 0x00;
  return r;
}

int ws_deflate_compress(ws_deflate_t *d, const char *in, size_t len, ws_bytes_t *out,
                        int *rsv) {
  int r;

  *rsv = 0;
  if (d->error) return d->error;
  /* 6: RSV1 is per message, so a small one may go uncompressed (and then it is not
   * part of the LZ77 window on either side). */
  if (len < d->cfg.threshold) return 0;
  if (len == 0) r = ws__compress_empty(out);
  else {
    if (!d->zout) {
      if (!(d->zout = ws__znew(&d->mem))) return d->error = WS_ENOMEM;
      if ((r = ws__deflate_init(d->zout, &d->cfg, d->send_bits)) < 0) {
        ws__zfree(&d->mem, d->zout);
        d->zout = NULL;
        return d->error = r;
      }
      if (d->out_dict) {   /* parked: the window goes back first */
        r = deflateSetDictionary(d->zout, d->out_dict, d->out_dict_len);
        free(d->out_dict);
        d->out_dict = NULL;
        d->out_dict_len = 0;
        if (r != Z_OK) {
          ws__zout_end(d);
          return d->error = WS_EINTERNAL;
        }
      }
    }
    r = ws__compress(d->zout, in, len, out);
  }
  if (r < 0) {
    ws__zout_end(d);
    return d->error = r;
  }
  /* 7.1.1: without context takeover each message starts a fresh window; freeing the
   * stream now leaves an idle connection holding nothing. */
  if (d->send_nct) ws__zout_end(d);
  *rsv = WS_RSV1;
  return 0;
}

int ws_deflate_compress_shared(const ws_deflate_config_t *cfg, int window_bits,
                               const char *in, size_t len, ws_bytes_t *out) {
  size_t mem = 0;
  z_stream *z;
  int r;

  if (!ws__bits_ok(window_bits) || ws_deflate_config_check(cfg) < 0) return WS_EINVAL;
  if (len == 0) return ws__compress_empty(out);
  if (!(z = ws__znew(&mem))) return WS_ENOMEM;
  if ((r = ws__deflate_init(z, cfg, window_bits)) == 0) {
    r = ws__compress(z, in, len, out);
    deflateEnd(z);
  }
  ws__zfree(&mem, z);
  return r;
}

int ws_deflate_can_share(const ws_deflate_t *d, int window_bits) {
  return !d->error && d->send_nct && d->send_bits >= window_bits;
}

/* ---- inflating (RFC 7692 7.2.2) ------------------------------------------------- */

/* The peer ended its deflate stream (BFINAL, 7.2.3.4). What follows in the message is
 * the sender's empty stored block, not DEFLATE data: it is skipped. The next message
 * starts a new stream that may still refer to this one's window (context takeover),
 * so the window is carried over. */
static int ws__inflate_restart(ws_deflate_t *d) {
  z_stream *z = d->zin;
  d->in_skip = 1;
  z->next_in = NULL; /* the rest of this input is skipped, not kept for the next call */
  z->avail_in = 0;
  if (!d->recv_nct) {
    Bytef *dict = malloc((size_t)1 << 15);
    uInt n = 0;
    int r;
    if (!dict) return WS_ENOMEM;
    r = inflateGetDictionary(z, dict, &n);
    if (r == Z_OK) r = inflateReset(z);
    if (r == Z_OK && n) r = inflateSetDictionary(z, dict, n);
    free(dict);
    return r == Z_OK ? 0 : ws__zerr(r);
  }
  return inflateReset(z) == Z_OK ? 0 : WS_EINTERNAL;
}

static int ws__inflate_run(ws_deflate_t *d, const unsigned char *in, size_t len, uint64_t max,
                           ws_ext_sink_fn sink, void *ud) {
  z_stream *z = d->zin;
  unsigned char buf[WS_DEFLATE_STEP];
  size_t left = len;

  for (;;) {
    size_t room = sizeof buf, n;
    int r;
    if (z->avail_in == 0 && left) {
      uInt k = left > UINT_MAX ? UINT_MAX : (uInt)left;
      z->next_in = (Bytef *)in;
      z->avail_in = k;
      in += k;
      left -= k;
    }
    /* One byte past the limit is enough to know it was passed; none of it is sent. */
    if (max && max - d->in_total < room) room = (size_t)(max - d->in_total) + 1;
    z->next_out = buf;
    z->avail_out = (uInt)room;
    r = inflate(z, Z_SYNC_FLUSH);
    n = room - z->avail_out;
    z->next_out = NULL;
    /* The limit first: output made before a corrupt spot is real, and how much of it
     * one call sees depends on how the input was cut. */
    d->in_total += n;
    if (max && d->in_total > max) return WS_ETOOBIG;
    if (r == Z_DATA_ERROR || r == Z_NEED_DICT) return WS_EINFLATE;
    if (r != Z_OK && r != Z_BUF_ERROR && r != Z_STREAM_END) return ws__zerr(r);
    if (n) {
      int e = sink(ud, (const char *)buf, n);
      if (e) return e < 0 ? e : WS_EINTERNAL;
    }
    if (r == Z_STREAM_END) return ws__inflate_restart(d);
    if (!left && z->avail_in == 0 && z->avail_out != 0) return 0;
  }
}

int ws_deflate_inflate(ws_deflate_t *d, const char *in, size_t len, int fin, uint64_t max,
                       ws_ext_sink_fn sink, void *ud) {
  int r = 0;

  if (d->error) return d->error;
  if (len && !d->in_skip) {
    if (!d->zin) {
      int bits = d->recv_bits < 9 ? 9 : d->recv_bits; /* see the top of the file */
      if (!(d->zin = ws__znew(&d->mem))) return d->error = WS_ENOMEM;
      if ((r = inflateInit2((z_stream *)d->zin, -bits)) != Z_OK) {
        ws__zfree(&d->mem, d->zin);
        d->zin = NULL;
        return d->error = ws__zerr(r);
      }
      r = 0;
      if (d->in_dict) {   /* parked: the window goes back first */
        r = inflateSetDictionary(d->zin, d->in_dict, d->in_dict_len);
        free(d->in_dict);
        d->in_dict = NULL;
        d->in_dict_len = 0;
        if (r != Z_OK) {
          ws__zin_end(d);
          return d->error = WS_EINTERNAL;
        }
      }
    }
    d->in_started = 1;
    r = ws__inflate_run(d, (const unsigned char *)in, len, max, sink, ud);
  }
  /* 7.2.2: the tail the sender stripped. An empty payload (which RFC 7692's algorithm
   * never makes) is taken as an empty message and leaves the stream alone. */
  if (!r && fin && d->in_started && !d->in_skip) {
    r = ws__inflate_run(d, ws__tail, sizeof ws__tail, max, sink, ud);
    /* The tail must end a stored block, leaving the stream between blocks (zlib sets
     * 128 in data_type there); else the message was cut short and its last block
     * would swallow the next message. */
    if (!r && !d->in_skip && !(((z_stream *)d->zin)->data_type & 128)) r = WS_EINFLATE;
  }
  if (r) {
    ws__zin_end(d);
    return d->error = r;
  }
  if (fin) {
    d->in_total = 0;
    d->in_skip = d->in_started = 0;
    /* 7.1.1: no context takeover from the peer: nothing to keep between messages. */
    if (d->recv_nct) ws__zin_end(d);
  }
  return 0;
}

/* ---- the extension of ext.h ------------------------------------------------------ */

static int ws__ext_server_negotiate(const void *config, const ws_ext_item_t *const *offers,
                                    size_t num_offers, char *out, size_t cap, size_t *len,
                                    void **state) {
  const ws_deflate_config_t *cfg = ws__cfg(config);
  ws_deflate_params_t p;
  ws_deflate_t *d;
  size_t len0 = *len;
  int r;

  if (ws_deflate_server_negotiate(cfg, offers, num_offers, &p) < 0) return 0;
  if ((r = ws_deflate_params_build(&p, out, cap, len)) < 0) return r;
  if (!(d = malloc(sizeof *d))) {
    *len = len0;
    if (cap > len0) out[len0] = '\0';
    return WS_ENOMEM;
  }
  ws_deflate_init(d, cfg, WS_ROLE_SERVER, &p);
  *state = d;
  return 1;
}

static int ws__ext_client_offer(const void *config, char *out, size_t cap, size_t *len) {
  return ws_deflate_client_offer(ws__cfg(config), out, cap, len);
}

static int ws__ext_client_accept(const void *config, const ws_ext_item_t *response,
                                 void **state) {
  const ws_deflate_config_t *cfg = ws__cfg(config);
  ws_deflate_params_t p;
  ws_deflate_t *d;
  int r;

  if ((r = ws_deflate_client_accept(cfg, response, &p)) < 0) return r;
  if (!(d = malloc(sizeof *d))) return WS_ENOMEM;
  ws_deflate_init(d, cfg, WS_ROLE_CLIENT, &p);
  *state = d;
  return 0;
}

static int ws__ext_decode(void *state, const char *in, size_t len, int fin, uint64_t max,
                          ws_ext_sink_fn sink, void *ud) {
  return ws_deflate_inflate(state, in, len, fin, max, sink, ud);
}

static int ws__ext_encode(void *state, const char *in, size_t len, ws_bytes_t *out, int *rsv) {
  return ws_deflate_compress(state, in, len, out, rsv);
}

static size_t ws__ext_memory(const void *state) {
  return sizeof(ws_deflate_t) + ws_deflate_memory(state);
}

static int ws__ext_park(void *state) { return ws_deflate_park(state); }

static void ws__ext_destroy(void *state) {
  if (!state) return;
  ws_deflate_free(state);
  free(state);
}

const ws_extension_t ws_deflate_extension = {
    .name = WS_DEFLATE_NAME,
    .rsv = WS_RSV1,
    .config_size = sizeof(ws_deflate_config_t),
    .server_negotiate = ws__ext_server_negotiate,
    .client_offer = ws__ext_client_offer,
    .client_accept = ws__ext_client_accept,
    .decode = ws__ext_decode,
    .encode = ws__ext_encode,
    .memory = ws__ext_memory,
    .park = ws__ext_park,
    .destroy = ws__ext_destroy,
};
