/* Sec-WebSocket-Extensions (RFC 6455 9.1): the parser and builder, and the generic
 * negotiation that runs each extension's callbacks of ext.h. */
#include <stdlib.h>
#include <string.h>

#include "ext.h"

/* RFC 9110 5.6.2 tchar: ALPHA, DIGIT and these. */
static int ws__is_tchar(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         (c && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static int ws__is_token(const char *s, size_t n) {
  size_t i;
  if (n == 0) return 0;
  for (i = 0; i < n; i++)
    if (!ws__is_tchar((unsigned char)s[i])) return 0;
  return 1;
}

#define WS__IS_OWS(c) ((c) == ' ' || (c) == '\t')

static const char *ws__skip_ows(const char *p, const char *end) {
  while (p < end && WS__IS_OWS(*p)) p++;
  return p;
}

static const char *ws__skip_token(const char *p, const char *end) {
  while (p < end && ws__is_tchar((unsigned char)*p)) p++;
  return p;
}

void ws_ext_list_init(ws_ext_list_t *l) {
  l->num_items = l->num_params = l->scratch_len = 0;
}

int ws_ext_name_is(const char *name, size_t name_len, const char *expect) {
  size_t i, n = strlen(expect);
  if (name_len != n) return 0;
  for (i = 0; i < n; i++) {
    unsigned char a = (unsigned char)name[i], b = (unsigned char)expect[i];
    if (a >= 'A' && a <= 'Z') a += 'a' - 'A';
    if (b >= 'A' && b <= 'Z') b += 'a' - 'A';
    if (a != b) return 0;
  }
  return 1;
}

/* A quoted-string (RFC 9110 5.6.4) at *pp. Its content, unescaped, must be a token
 * (RFC 6455 9.1). Without quoted-pairs it is used in place; with them it is copied,
 * unescaped, into the list's scratch. */
static int ws__quoted(ws_ext_list_t *l, const char **pp, const char *end, ws_ext_param_t *pa) {
  const char *p = *pp + 1, *start = p;
  int escaped = 0;
  size_t n = 0;

  for (;;) {
    if (p == end) return WS_EHTTP;
    if (*p == '"') break;
    if (*p == '\\') {
      escaped = 1;
      if (++p == end) return WS_EHTTP;
    }
    /* Anything but a tchar would make the value not a token; say so at once. */
    if (!ws__is_tchar((unsigned char)*p)) return WS_EHTTP;
    p++;
    n++;
  }
  if (n == 0) return WS_EHTTP;
  if (!escaped) {
    pa->value = start;
  } else {
    const char *q;
    char *out;
    if (WS_EXT_SCRATCH - l->scratch_len < n) return WS_EHEADTOOBIG;
    out = l->scratch + l->scratch_len;
    pa->value = out;
    for (q = start; q < p; q++) {
      if (*q == '\\') q++;
      *out++ = *q;
    }
    l->scratch_len += n;
  }
  pa->value_len = n;
  *pp = p + 1;
  return 0;
}

int ws_ext_parse(ws_ext_list_t *l, const char *value, size_t len) {
  const char *p = value, *end = value + len;
  size_t items0 = l->num_items, params0 = l->num_params, scratch0 = l->scratch_len;
  int r = WS_EHTTP;

  for (;;) {
    ws_ext_item_t *it;
    const char *name;

    /* RFC 9110 5.6.1: empty list elements are skipped, OWS around commas. */
    while (p < end && (WS__IS_OWS(*p) || *p == ',')) p++;
    if (p == end) return 0;

    name = p;
    p = ws__skip_token(p, end);
    if (p == name) goto fail;
    if (l->num_items == WS_EXT_MAX_ITEMS) {
      r = WS_EHEADTOOBIG;
      goto fail;
    }
    it = &l->items[l->num_items++];
    it->name = name;
    it->name_len = (size_t)(p - name);
    it->params = l->params + l->num_params;
    it->num_params = 0;

    for (;;) {
      ws_ext_param_t *pa;
      p = ws__skip_ows(p, end);
      if (p == end || *p == ',') break;
      if (*p != ';') goto fail;
      p = ws__skip_ows(p + 1, end);
      name = p;
      p = ws__skip_token(p, end);
      if (p == name) goto fail;
      if (l->num_params == WS_EXT_MAX_PARAMS) {
        r = WS_EHEADTOOBIG;
        goto fail;
      }
      pa = &l->params[l->num_params++];
      it->num_params++;
      pa->name = name;
      pa->name_len = (size_t)(p - name);
      pa->value = NULL;
      pa->value_len = 0;
      p = ws__skip_ows(p, end);
      if (p == end || *p != '=') continue;
      p = ws__skip_ows(p + 1, end);
      if (p < end && *p == '"') {
        if ((r = ws__quoted(l, &p, end, pa)) < 0) goto fail;
        r = WS_EHTTP;
      } else {
        const char *v = p;
        p = ws__skip_token(p, end);
        if (p == v) goto fail;
        pa->value = v;
        pa->value_len = (size_t)(p - v);
      }
    }
  }

fail:
  l->num_items = items0;
  l->num_params = params0;
  l->scratch_len = scratch0;
  return r;
}

int ws_ext_parse_head(ws_ext_list_t *l, const ws_http_head_t *h) {
  size_t i;
  for (i = 0; i < h->num_headers; i++) {
    const ws_header_t *hd = &h->headers[i];
    int r;
    if (!ws_ext_name_is(hd->name, hd->name_len, "Sec-WebSocket-Extensions")) continue;
    if ((r = ws_ext_parse(l, hd->value, hd->value_len)) < 0) return r;
  }
  return 0;
}

static int ws__put(char *out, size_t cap, size_t *pos, const char *s, size_t n) {
  if (cap - *pos <= n) return WS_ENOMEM; /* keep room for the NUL */
  memcpy(out + *pos, s, n);
  *pos += n;
  return 0;
}

int ws_ext_build(char *out, size_t cap, size_t *len, const char *name,
                 const ws_ext_param_t *params, size_t num_params) {
  size_t pos = *len, i;

  if (!ws__is_token(name, strlen(name))) return WS_EINVAL;
  for (i = 0; i < num_params; i++) {
    if (!ws__is_token(params[i].name, params[i].name_len) ||
        (params[i].value && !ws__is_token(params[i].value, params[i].value_len)))
      return WS_EINVAL;
  }
  if (pos >= cap) return WS_ENOMEM;
  if ((pos > 0 && ws__put(out, cap, &pos, ", ", sizeof ", " - 1) < 0) ||
      ws__put(out, cap, &pos, name, strlen(name)) < 0)
    return WS_ENOMEM;
  for (i = 0; i < num_params; i++) {
    if (ws__put(out, cap, &pos, "; ", sizeof "; " - 1) < 0 ||
        ws__put(out, cap, &pos, params[i].name, params[i].name_len) < 0)
      return WS_ENOMEM;
    if (params[i].value && (ws__put(out, cap, &pos, "=", 1) < 0 ||
                            ws__put(out, cap, &pos, params[i].value, params[i].value_len) < 0))
      return WS_ENOMEM;
  }
  out[pos] = '\0';
  *len = pos;
  return 0;
}

void ws_bytes_free(ws_bytes_t *b) {
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}

/* ---- generic negotiation ------------------------------------------------------- */

int ws_ext_server_negotiate(ws_ext_use_t *use, size_t n, const ws_ext_list_t *offers,
                            char *out, size_t cap, size_t *len) {
  size_t i, j;
  int owned = 0;

  *len = 0;
  if (cap) out[0] = '\0';
  for (i = 0; i < n; i++) {
    const ws_extension_t *e = use[i].ext;
    const ws_ext_item_t *mine[WS_EXT_MAX_ITEMS];
    size_t k = 0;
    int r;

    use[i].state = NULL;
    /* RFC 6455 9.1: two extensions must not use the same RSV bit. */
    if (e->rsv & owned) continue;
    for (j = 0; j < offers->num_items; j++)
      if (ws_ext_name_is(offers->items[j].name, offers->items[j].name_len, e->name))
        mine[k++] = &offers->items[j];
    if (k == 0) continue;
    r = e->server_negotiate(use[i].config, mine, k, out, cap, len, &use[i].state);
    if (r < 0) {
      ws_ext_release(use, i);
      *len = 0;
      return r;
    }
    if (r > 0) owned |= e->rsv;
  }
  return 0;
}

int ws_ext_client_offer(const ws_ext_use_t *use, size_t n, char *out, size_t cap,
                        size_t *len) {
  size_t i;
  *len = 0;
  if (cap) out[0] = '\0';
  for (i = 0; i < n; i++) {
    int r = use[i].ext->client_offer(use[i].config, out, cap, len);
    if (r < 0) return r;
  }
  return 0;
}

int ws_ext_client_accept(ws_ext_use_t *use, size_t n, const ws_ext_list_t *response) {
  size_t i, j;
  int owned = 0;

  for (i = 0; i < n; i++) use[i].state = NULL;
  for (j = 0; j < response->num_items; j++) {
    const ws_ext_item_t *it = &response->items[j];
    for (i = 0; i < n; i++)
      if (ws_ext_name_is(it->name, it->name_len, use[i].ext->name)) break;
    /* RFC 6455 9.1: the server answers with extensions the client offered, once. */
    if (i == n || use[i].state || (use[i].ext->rsv & owned)) goto fail;
    if (use[i].ext->client_accept(use[i].config, it, &use[i].state) < 0 || !use[i].state)
      goto fail;
    owned |= use[i].ext->rsv;
  }
  return 0;

fail:
  ws_ext_release(use, n);
  return WS_EEXTENSION;
}

int ws_ext_rsv(const ws_ext_use_t *use, size_t n) {
  size_t i;
  int rsv = 0;
  for (i = 0; i < n; i++)
    if (use[i].state) rsv |= use[i].ext->rsv;
  return rsv;
}

void ws_ext_release(ws_ext_use_t *use, size_t n) {
  size_t i;
  for (i = 0; i < n; i++) {
    if (use[i].state) use[i].ext->destroy(use[i].state);
    use[i].state = NULL;
  }
}

