--- Option checking: faye's names where faye has one; unknown options raise.
local M = {}

local function fail(level, fmt, ...)
  error(string.format(fmt, ...), level + 1)
end

-- Numeric options. Each has a range; math.huge means "no limit" (or "never") wherever
-- a limit or a timeout may be turned off, and is the only way to say so.
--   kind "seconds": a duration, 0.001 up to WS_TIMEOUT_MAX ms (24.8 days), sent to C in ms;
--   kind "bytes" / "count": a whole number in [min, max].
local HUGE = math.huge
local MAX_MS = 2147483647          -- WS_TIMEOUT_MAX in csrc/io/io.h
local MAX_INT = 2 ^ 53             -- the largest whole number every Lua holds exactly

local SPECS = {
  ping = { "seconds", off = true },
  retry = { "seconds" },
  close_timeout = { "seconds", off = true },
  handshake_timeout = { "seconds", off = true },
  idle_timeout = { "seconds", off = true },
  pong_timeout = { "seconds", off = true },
  message_timeout = { "seconds", off = true },
  send_timeout = { "seconds", off = true },
  keepalive_timeout = { "seconds", off = true },
  maxLength = { "bytes", 1, MAX_INT, off = true },
  max_fragments = { "count", 1, 4294967295, off = true },
  max_buffered = { "bytes", 1, MAX_INT, off = true },
  high_water = { "bytes", 1, MAX_INT, off = true },
  max_memory = { "bytes", 1, MAX_INT, off = true },
  max_body = { "bytes", 1, MAX_INT, off = true },
  max_queued = { "count", 1, 4294967295, off = true },
  max_queued_bytes = { "bytes", 1, MAX_INT, off = true },
  max_head = { "bytes", 256, 1048576 },
  max_headers = { "count", 1, 256 },
  max_subscriptions = { "count", 1, 65535 },
  max_queue = { "count", 1, MAX_INT },
  max_queue_bytes = { "bytes", 1, MAX_INT, off = true },
  reconnect_min = { "seconds" },
  reconnect_max = { "seconds" },
  connect_timeout = { "seconds", off = true },
  backlog = { "count", 1, 65535 },
  port = { "count", 0, 65535 },
}

local function range_text(spec)
  local r = spec[1] == "seconds" and "a number of seconds from 0.001 to 2147483.647"
    or string.format("a whole number from %d to %.0f", spec[2], spec[3])
  return spec.off and r .. ", or math.huge for none" or r
end

--- Checks o[name] against its range. Returns nil when absent, 0 for math.huge (C's
--- "none"), else the value for C (milliseconds for a duration).
local function number(o, name, level)
  local v = o[name]
  if v == nil then return nil end
  local spec = SPECS[name]
  if type(v) ~= "number" or v ~= v then
    fail(level + 1, "option %s must be %s", name, range_text(spec))
  end
  if v == HUGE and spec.off then return 0 end
  if spec[1] == "seconds" then
    local ms = math.floor(v * 1000 + 0.5)
    if ms < 1 or ms > MAX_MS then fail(level + 1, "option %s must be %s", name, range_text(spec)) end
    return ms
  end
  if v % 1 ~= 0 or v < spec[2] or v > spec[3] then
    fail(level + 1, "option %s must be %s", name, range_text(spec))
  end
  return v
end
M.number = number

local SOCKET = {
  headers = true, ping = true, maxLength = true, extensions = true, tls = true,
  proxy = true, close_timeout = true, handshake_timeout = true, max_buffered = true,
  max_head = true, max_headers = true, protocols = true, max_fragments = true,
  idle_timeout = true, pong_timeout = true, message_timeout = true, send_timeout = true,
  high_water = true, backpressure = true, max_queued = true, max_queued_bytes = true,
  max_subscriptions = true,
}

--- Checks socket options (WebSocket(req, protocols, options) and Client). Returns
--- { core = <table for the C core>, headers = ..., tls = ... }.
local NO_OPTIONS = { core = {} }   -- shared: WebSocket(req) makes no garbage

function M.socket(o, level)
  if o == nil then return NO_OPTIONS end
  level = (level or 1) + 1
  if type(o) ~= "table" then fail(level, "options must be a table") end
  for k in pairs(o) do
    if not SOCKET[k] then fail(level, "unknown option %q", tostring(k)) end
  end
  local extensions
  if o.extensions ~= nil then
    if type(o.extensions) ~= "table" then fail(level, "option extensions must be a list") end
    extensions = {}
    for i, e in ipairs(o.extensions) do
      local core_config = type(e) == "table" and rawget(e, "_core")
      if type(core_config) ~= "table" then
        fail(level, "option extensions[%d] is not an extension (use require \"luaws.deflate\")", i)
      end
      if i > 4 then fail(level, "option extensions: at most 4") end
      extensions[i] = core_config
    end
  end
  if o.headers ~= nil and type(o.headers) ~= "table" then
    fail(level, "option headers must be a table")
  end
  if o.backpressure ~= nil and o.backpressure ~= "close" and o.backpressure ~= "error" then
    fail(level, 'option backpressure must be "close" or "error"')
  end
  local c = {
    ping_ms = number(o, "ping", level),
    maxLength = number(o, "maxLength", level),
    close_timeout_ms = number(o, "close_timeout", level),
    handshake_timeout_ms = number(o, "handshake_timeout", level),
    idle_timeout_ms = number(o, "idle_timeout", level),
    pong_timeout_ms = number(o, "pong_timeout", level),
    message_timeout_ms = number(o, "message_timeout", level),
    send_timeout_ms = number(o, "send_timeout", level),
    max_buffered = number(o, "max_buffered", level),
    high_water = number(o, "high_water", level),
    backpressure_error = o.backpressure == "error" or nil,
    max_fragments = number(o, "max_fragments", level),
    max_head = number(o, "max_head", level),
    max_headers = number(o, "max_headers", level),
    max_subscriptions = number(o, "max_subscriptions", level),
    extensions = extensions,
  }
  -- The receive queue of luaws.coro (math.huge: no bound).
  local queue
  if o.max_queued ~= nil or o.max_queued_bytes ~= nil then
    local n, b = number(o, "max_queued", level), number(o, "max_queued_bytes", level)
    queue = { messages = n == 0 and HUGE or n, bytes = b == 0 and HUGE or b }
  end
  return { core = c, headers = o.headers, tls = o.tls, protocols = o.protocols, queue = queue,
           proxy = M.proxy(o.proxy, level) }
end

-- TLS options and their types. Paths name PEM files and folders, as in luasec and
-- OpenSSL's own tools.
local TLS = {
  client = { cafile = "string", capath = "string", servername = "string", cert = "string",
             key = "string", verify = "boolean", ciphers = "string", ciphersuites = "string" },
  server = { cert = "string", key = "string", ca = "string", verify = "boolean",
             ciphers = "string", ciphersuites = "string" },
}

--- Checks the tls option of a client or a server (role "client" or "server"). Returns
--- nil for nil, else the table core.tls_context takes, and (client) the servername.
--- A client verifies unless verify = false; a server asks for client certificates when
--- given ca, and requires one when verify = true.
function M.tls(t, role, level)
  level = (level or 1) + 1
  if t == nil then return nil end
  if type(t) ~= "table" then fail(level, "option tls must be a table") end
  local types = TLS[role]
  for k, v in pairs(t) do
    if not types[k] then fail(level, "unknown TLS option %q", tostring(k)) end
    if type(v) ~= types[k] then fail(level, "TLS option %s must be a %s", k, types[k]) end
  end
  if t.key and not t.cert then fail(level, "TLS option key needs cert") end
  local c = { cert = t.cert, key = t.key, ciphers = t.ciphers, ciphersuites = t.ciphersuites }
  if role == "server" then
    if not t.cert then fail(level, "option tls needs cert and key for a server") end
    c.server, c.cafile, c.verify = true, t.ca, t.verify == true
    return c
  end
  c.cafile, c.capath, c.verify = t.cafile, t.capath, t.verify ~= false
  return c, t.servername
end

local SERVER = {
  host = true, port = true, tls = true, max_head = true, max_headers = true,
  handshake_timeout = true, backlog = true, raw = true, max_memory = true, drafts = true,
  keepalive_timeout = true, max_body = true, stream_bodies = true, reuseport = true,
}

function M.server(o, level)
  level = (level or 1) + 1
  if type(o) ~= "table" then fail(level, "listen{...} takes a table of options") end
  for k in pairs(o) do
    if not SERVER[k] then fail(level, "unknown option %q", tostring(k)) end
  end
  if o.host ~= nil and type(o.host) ~= "string" then fail(level, "option host must be a string") end
  if o.reuseport ~= nil and type(o.reuseport) ~= "boolean" then
    fail(level, "option reuseport must be a boolean")
  end
  return {
    host = o.host or "127.0.0.1",
    port = number(o, "port", level) or 0,
    max_head = number(o, "max_head", level),
    max_headers = number(o, "max_headers", level),
    handshake_timeout_ms = number(o, "handshake_timeout", level),
    max_memory = number(o, "max_memory", level),
    backlog = number(o, "backlog", level),
    raw = o.raw and true or nil,
    drafts = o.drafts ~= false,
    keepalive_timeout_ms = number(o, "keepalive_timeout", level),
    max_body = number(o, "max_body", level),
    stream_bodies = o.stream_bodies and true or nil,
    reuseport = o.reuseport or nil,
    tls = M.tls(o.tls, "server", level),
  }
end

local EVENTSOURCE = { headers = true, retry = true, ping = true }

--- Checks EventSource options. Returns { headers, retry_ms, ping_ms } with faye's
--- defaults (retry 5 s, ping 10 s); ping = math.huge sends no pings (ping_ms 0).
function M.eventsource(o, level)
  level = (level or 1) + 1
  if o == nil then o = {} end
  if type(o) ~= "table" then fail(level, "options must be a table") end
  for k in pairs(o) do
    if not EVENTSOURCE[k] then fail(level, "unknown option %q", tostring(k)) end
  end
  if o.headers ~= nil and type(o.headers) ~= "table" then
    fail(level, "option headers must be a table")
  end
  M.header_lines(o.headers, level)   -- bad names and values raise here, not at writeHead
  return {
    headers = o.headers,
    retry_ms = number(o, "retry", level) or 5000,
    ping_ms = number(o, "ping", level) or 10000,
  }
end

-- RFC 7230 token characters: what a subprotocol name may be made of.
local function is_token(s)
  return type(s) == "string" and #s > 0 and not s:find("[^!#$%%&'*+%-.^_`|~%w]")
end

--- A protocols argument (string or list) as a list of checked tokens.
function M.protocol_list(protocols, level)
  level = (level or 1) + 1
  if protocols == nil then return {} end
  if type(protocols) == "string" then protocols = { protocols } end
  if type(protocols) ~= "table" then fail(level, "protocols must be a string or a list") end
  for i, p in ipairs(protocols) do   -- (a short list: no table to find repeats with)
    if not is_token(p) then fail(level, "invalid subprotocol name %q", tostring(p)) end
    for k = 1, i - 1 do
      if protocols[k] == p then fail(level, "subprotocol %q given twice", p) end
    end
  end
  return protocols
end

--- Extra headers as CRLF-ended lines (nil if none); CR, LF and bad names raise.
-- Header names already found to be tokens (a server answers with the same few names
-- again and again); bounded, so a script making up names cannot grow it without end.
local token_names, token_count = {}, 0

function M.header_lines(headers, level)
  level = (level or 1) + 1
  if not headers then return nil end
  local out = {}
  for name, value in pairs(headers) do
    if not token_names[name] then
      if not is_token(name) then fail(level, "invalid header name %q", tostring(name)) end
      if token_count < 256 then token_names[name], token_count = true, token_count + 1 end
    end
    value = tostring(value)
    if value:find("[\r\n%z]") then fail(level, "header %s has CR, LF or NUL in its value", name) end
    out[#out + 1] = name .. ": " .. value .. "\r\n"
  end
  if #out > 1 then table.sort(out) end
  return #out > 0 and table.concat(out) or nil
end

-- Percent-decodes a URL's user or password (RFC 3986 2.1); a stray "%" raises.
local function percent_decode(s, what, level, option)
  if s:gsub("%%%x%x", ""):find("%", 1, true) then
    fail(level + 1, "%s: a bad percent-escape in its %s", option or "option proxy.origin", what)
  end
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

-- A URL's authority, [userinfo@]host[:port] (host may be an [IPv6] literal): userinfo
-- (nil without "@"), host, port (default_port when absent). A bad host or port raises.
local function authority_parts(authority, default_port, option, url, level)
  local userinfo, hostport = authority:match("^(.*)@([^@]*)$")
  hostport = hostport or authority
  local host, port
  if hostport:sub(1, 1) == "[" then
    host, port = hostport:match("^%[([%x:.]+)%]:?(%d*)$")
  else
    host, port = hostport:match("^([^:]+):?(%d*)$")
  end
  if not host or host:find("[%s%c]") then
    fail(level + 1, "%s has no valid host: %s", option, url)
  end
  port = tonumber(port ~= "" and port or nil) or default_port
  if port < 1 or port > 65535 then fail(level + 1, "%s: port out of range: %s", option, url) end
  return userinfo, host, port
end

local PROXY = { origin = true, headers = true, tls = true }
local PROXY_PORTS = { http = 80, https = 443 }

--- Checks the proxy option { origin = "http(s)://[user:password@]host[:port]", headers,
--- tls }. Returns nil for nil, else { host, port, user, password (percent-decoded; nil
--- without credentials), headers (CRLF-ended lines), tls (for an https:// origin: the
--- table core.tls_context takes), servername }.
function M.proxy(p, level)
  level = (level or 1) + 1
  if p == nil then return nil end
  if type(p) ~= "table" then fail(level, "option proxy must be a table") end
  for k in pairs(p) do
    if not PROXY[k] then fail(level, "unknown proxy option %q", tostring(k)) end
  end
  local origin = p.origin
  if type(origin) ~= "string" then
    fail(level, "option proxy.origin must be a string (\"http://host:port\")")
  end
  local scheme, rest = origin:match("^(%a[%w+.-]*)://(.*)$")
  scheme = scheme and scheme:lower()
  if not PROXY_PORTS[scheme] then
    fail(level, "option proxy.origin must be an http:// or https:// URL: %s", origin)
  end
  local authority, path = rest:match("^([^/?#]*)(.*)$")
  if path ~= "" and path ~= "/" then
    fail(level, "option proxy.origin must not have a path, query or fragment: %s", origin)
  end
  local userinfo, host, port = authority_parts(authority, PROXY_PORTS[scheme], "option proxy.origin",
    origin, level)
  local user, password
  if userinfo and userinfo ~= "" then
    local u, pw = userinfo:match("^([^:]*):(.*)$")
    user = percent_decode(u or userinfo, "user", level)
    password = pw and percent_decode(pw, "password", level)
  end
  if p.tls ~= nil and scheme ~= "https" then
    fail(level, "option proxy.tls is for an https:// proxy origin")
  end
  local tls, servername
  if scheme == "https" then tls, servername = M.tls(p.tls or {}, "client", level) end
  if p.headers ~= nil and type(p.headers) ~= "table" then
    fail(level, "option proxy.headers must be a table")
  end
  return { host = host, port = port, user = user, password = password, tls = tls,
           servername = servername, headers = M.header_lines(p.headers, level) }
end

local BACKPLANE = {
  url = true, prefix = true, max_queue = true, max_queue_bytes = true, reconnect_min = true,
  reconnect_max = true, connect_timeout = true,
}

--- Checks WebSocket.backplane's options: url = "redis://[[user]:password@]host[:port][/db]"
--- (Redis's own URL form; user and password percent-decoded), prefix (channel = prefix ..
--- topic; "luaws:" by default, at most 256 bytes), max_queue, max_queue_bytes,
--- reconnect_min, reconnect_max, connect_timeout. Returns the table core.backplane takes.
function M.backplane(o, level)
  level = (level or 1) + 1
  if type(o) ~= "table" then fail(level, "backplane{...} takes a table of options") end
  for k in pairs(o) do
    if not BACKPLANE[k] then fail(level, "unknown option %q", tostring(k)) end
  end
  local url = o.url
  if type(url) ~= "string" then
    fail(level, "option url must be a string (\"redis://host:port\")")
  end
  local scheme, rest = url:match("^(%a[%w+.-]*)://(.*)$")
  scheme = scheme and scheme:lower()
  if scheme == "rediss" or scheme == "unix" then
    fail(level, "option url: %s:// is not supported (a redis:// URL over TCP)", scheme)
  elseif scheme ~= "redis" then
    fail(level, "option url must be a redis:// URL: %s", url)
  end
  local authority, path = rest:match("^([^/?#]*)(.*)$")
  local db = 0
  if path ~= "" and path ~= "/" then
    local digits = path:match("^/(%d+)$")
    if not digits then fail(level, "option url: the path must be a database number: %s", url) end
    db = tonumber(digits)
    if db > 2 ^ 30 then fail(level, "option url: database number out of range: %s", url) end
  end
  local userinfo, host, port = authority_parts(authority, 6379, "option url", url, level)
  local username, password
  if userinfo and userinfo ~= "" then
    local u, pw = userinfo:match("^([^:]*):(.*)$")
    if not u then   -- redis://secret@host, as redis-cli takes it: a password alone
      u, pw = "", userinfo
    end
    username = u ~= "" and percent_decode(u, "user", level, "option url") or nil
    password = percent_decode(pw, "password", level, "option url")
  end
  local prefix = o.prefix
  if prefix == nil then prefix = "luaws:" end
  if type(prefix) ~= "string" or #prefix > 256 then
    fail(level, "option prefix must be a string of at most 256 bytes")
  end
  local c = {
    host = host, port = port, username = username, password = password, db = db,
    prefix = prefix,
    max_queue = number(o, "max_queue", level),
    max_queue_bytes = number(o, "max_queue_bytes", level),
    reconnect_min_ms = number(o, "reconnect_min", level),
    reconnect_max_ms = number(o, "reconnect_max", level),
    connect_timeout_ms = number(o, "connect_timeout", level),
  }
  local min, max = c.reconnect_min_ms or 100, c.reconnect_max_ms or 5000
  if max < min then
    fail(level, "option reconnect_max must be at least reconnect_min (%g s)", min / 1000)
  end
  return c
end

M.is_token = is_token
return M
