/* RFC 6455 section 5 framing: the push parser (bytes in, callbacks out), the frame
 * header writer and masking. */
#include <limits.h>
#include <string.h>

#include "ws.h"

#ifndef SSIZE_MAX
#define SSIZE_MAX ((ssize_t)(SIZE_MAX >> 1))
#endif

void ws_parser_init(ws_parser_t *p, int role, uint64_t max_length) {
  memset(p, 0, sizeof *p);
  p->role = (uint8_t)role;
  p->max_length = max_length;
  p->utf8_state = WS_UTF8_ACCEPT;
}

static ssize_t ws__parser_fail(ws_parser_t *p, int err) {
  p->error = err;
  return err;
}

/* The message in progress is over: the next data frame must start a new one. */
static void ws__parser_end_message(ws_parser_t *p) {
  p->msg_opcode = 0;
  p->msg_rsv = 0;
  p->msg_len = 0;
  p->utf8_state = WS_UTF8_ACCEPT;
}

/* Extension data (RSV1 = compressed, RFC 7692 6) is checked by the layer that inflates
 * it: limits and UTF-8 only mean something on the inflated bytes. */
#define WS__CHECKED(p) (!((p)->msg_rsv & WS_RSV1))

ssize_t ws_parser_execute(ws_parser_t *p, const ws_parser_settings_t *s, void *ud,
                          char *buf, size_t len) {
  size_t pos = 0;

  if (p->error) return p->error;
  if (len > (size_t)SSIZE_MAX) len = (size_t)SSIZE_MAX; /* the count must fit the result */

  while (pos < len) {
    const uint8_t *h;
    size_t avail = len - pos, hlen;
    uint64_t plen;
    int fin, rsv, op, masked;

    if (p->in_frame) {
      /* Payload of a data frame: deliver whatever has arrived, unmasked in place. */
      char *d = buf + pos;
      size_t n = p->remaining < avail ? (size_t)p->remaining : avail;
      int opcode = p->msg_opcode, mrsv = p->msg_rsv;

      if (p->frame_masked) {
        ws_mask(d, n, p->mask, p->mask_pos);
        p->mask_pos = (uint8_t)((p->mask_pos + n) & 3);
      }
      p->remaining -= n;
      p->msg_len += n;
      fin = p->remaining == 0 && p->frame_fin;
      /* RFC 6455 8.1: fail as soon as the text cannot be UTF-8, not only at its end. */
      if (opcode == WS_OP_TEXT && WS__CHECKED(p) &&
          (ws_utf8_validate(&p->utf8_state, (const uint8_t *)d, n) < 0 ||
           (fin && p->utf8_state != WS_UTF8_ACCEPT)))
        return ws__parser_fail(p, WS_EUTF8);
      pos += n;
      if (p->remaining == 0) p->in_frame = 0;
      if (fin) ws__parser_end_message(p);
      if (s->on_data && s->on_data(ud, opcode, mrsv, d, n, fin)) return (ssize_t)pos;
      continue;
    }

    /* A frame header (5.2). Each check runs as soon as its bytes are here, but the
     * header is consumed only when whole. */
    h = (const uint8_t *)buf + pos;
    fin = h[0] >> 7;
    rsv = h[0] & 0x70;
    op = h[0] & 0x0F;
    if (rsv & ~p->rsv_allowed) return ws__parser_fail(p, WS_EPROTOCOL);
    if ((op > WS_OP_BINARY && op < WS_OP_CLOSE) || op > WS_OP_PONG)
      return ws__parser_fail(p, WS_EPROTOCOL);
    if (op >= WS_OP_CLOSE) {
      /* 5.5: control frames are never fragmented; RFC 7692 6: never compressed. */
      if (!fin || (rsv & WS_RSV1)) return ws__parser_fail(p, WS_EPROTOCOL);
    } else if (op == WS_OP_CONT) {
      /* 5.4: a continuation needs a message to continue; RSV1 marks only the first. */
      if (!p->msg_opcode || (rsv & WS_RSV1)) return ws__parser_fail(p, WS_EPROTOCOL);
    } else if (p->msg_opcode) {
      /* 5.4: fragments of two messages never interleave. */
      return ws__parser_fail(p, WS_EPROTOCOL);
    }
    if (avail < 2) break;

    masked = h[1] >> 7;
    plen = h[1] & 0x7F;
    /* 5.1, 5.3: a client masks every frame, a server none. */
    if (masked != (p->role == WS_ROLE_SERVER)) return ws__parser_fail(p, WS_EPROTOCOL);
    if (op >= WS_OP_CLOSE && plen > WS_MAX_CONTROL) return ws__parser_fail(p, WS_EPROTOCOL);

    hlen = 2;
    if (plen == 126) {
      if (avail < 4) break;
      plen = (uint64_t)h[2] << 8 | h[3];
      /* 5.2: "the minimal number of bytes MUST be used to encode the length" */
      if (plen < 126) return ws__parser_fail(p, WS_EPROTOCOL);
      hlen = 4;
    } else if (plen == 127) {
      int i;
      if (avail < 10) break;
      plen = 0;
      for (i = 2; i < 10; i++) plen = plen << 8 | h[i];
      /* 5.2: the most significant bit MUST be 0. */
      if ((plen >> 63) || plen < 65536) return ws__parser_fail(p, WS_EPROTOCOL);
      hlen = 10;
    }

    if (op < WS_OP_CLOSE && p->max_length) {
      /* Refuse an oversized message before reading any of it (7.4.1: 1009). msg_len
       * never exceeds max_length for a checked message, so this cannot wrap. */
      int compressed = op == WS_OP_CONT ? !WS__CHECKED(p) : !!(rsv & WS_RSV1);
      uint64_t so_far = op == WS_OP_CONT ? p->msg_len : 0;
      if (!compressed && plen > p->max_length - so_far) return ws__parser_fail(p, WS_ETOOBIG);
    }

    if (masked) hlen += 4;
    if (avail < hlen) break;

    if (op >= WS_OP_CLOSE) {
      /* A control frame is handed over whole, so the caller never has to buffer one. */
      char *d;
      if (avail - hlen < plen) break;
      d = buf + pos + hlen;
      if (masked) ws_mask(d, (size_t)plen, h + hlen - 4, 0);
      pos += hlen + (size_t)plen;
      if (s->on_control && s->on_control(ud, op, d, (size_t)plen)) return (ssize_t)pos;
      continue;
    }

    if (op != WS_OP_CONT) {
      p->msg_opcode = (uint8_t)op;
      p->msg_rsv = (uint8_t)rsv;
      p->msg_len = 0;
      p->utf8_state = WS_UTF8_ACCEPT;
      p->fragments = 1;
    } else if (p->max_fragments && ++p->fragments > p->max_fragments) {
      /* Empty fragments cost no bytes, so maxLength alone would not bound them. */
      return ws__parser_fail(p, WS_ETOOBIG);
    }
    p->frame_fin = (uint8_t)fin;
    p->frame_masked = (uint8_t)masked;
    p->remaining = plen;
    p->mask_pos = 0;
    if (masked) memcpy(p->mask, h + hlen - 4, 4);
    pos += hlen;
    if (plen) {
      p->in_frame = 1;
    } else if (fin) {
      /* An empty final frame still ends the message: one fin=1 call per message. */
      int opcode = p->msg_opcode, mrsv = p->msg_rsv;
      if (opcode == WS_OP_TEXT && WS__CHECKED(p) && p->utf8_state != WS_UTF8_ACCEPT)
        return ws__parser_fail(p, WS_EUTF8);
      ws__parser_end_message(p);
      if (s->on_data && s->on_data(ud, opcode, mrsv, buf + pos, 0, 1)) return (ssize_t)pos;
    }
  }
  return (ssize_t)pos;
}

size_t ws_frame_header(uint8_t *out, int fin, int rsv, int opcode, uint64_t len,
                       const uint8_t *mask_key) {
  size_t n = 2;
  uint8_t mask_bit = mask_key ? 0x80 : 0;

  out[0] = (uint8_t)((fin ? 0x80 : 0) | (rsv & 0x70) | (opcode & 0x0F));
  if (len < 126) {
    out[1] = (uint8_t)(mask_bit | len);
  } else if (len <= 0xFFFF) {
    out[1] = mask_bit | 126;
    out[2] = (uint8_t)(len >> 8);
    out[3] = (uint8_t)len;
    n = 4;
  } else {
    int i;
    out[1] = mask_bit | 127;
    for (i = 0; i < 8; i++) out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
    n = 10;
  }
  if (mask_key) {
    memcpy(out + n, mask_key, 4);
    n += 4;
  }
  return n;
}
