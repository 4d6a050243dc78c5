--- Option checking: faye's names where faye has one; unknown options raise.
local M = {}

local function fail(level, fmt, ...)
  error(string.format(fmt, ...), level + 1)
end

local function number(o, name, level, min)
  local v = o[name]
  if v == nil then return nil end
  if type(v) ~= "number" or v ~= v or v < (min or 0) then
    fail(level + 1, "option %s must be a number >= %d", name, min or 0)
  end
  return v
end

local SOCKET = {
  headers = true, ping = true, maxLength = true, extensions = true, tls = true,
  proxy = true, close_timeout = true, handshake_timeout = true, max_buffered = true,
  max_head = true, max_headers = true, protocols = true, max_fragments = true,
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
  if o.extensions ~= nil then
    if type(o.extensions) ~= "table" then fail(level, "option extensions must be a list") end
    if #o.extensions > 0 then
      fail(level, "option extensions: permessage-deflate is not available in this build")
    end
  end
  if o.proxy ~= nil then fail(level, "option proxy is not available in this build") end
  if o.headers ~= nil and type(o.headers) ~= "table" then
    fail(level, "option headers must be a table")
  end
  local c = {}
  local ping = number(o, "ping", level)
  if ping then c.ping_ms = math.floor(ping * 1000) end
  c.maxLength = number(o, "maxLength", level)
  local ct = number(o, "close_timeout", level)
  if ct then c.close_timeout_ms = math.floor(ct * 1000) end
  local ht = number(o, "handshake_timeout", level)
  if ht then c.handshake_timeout_ms = math.floor(ht * 1000) end
  c.max_buffered = number(o, "max_buffered", level)
  c.max_fragments = number(o, "max_fragments", level)
  c.max_head = number(o, "max_head", level, 256)
  c.max_headers = number(o, "max_headers", level, 1)
  return { core = c, headers = o.headers, tls = o.tls, protocols = o.protocols }
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
  handshake_timeout = true, backlog = true, raw = true,
}

function M.server(o, level)
  level = (level or 1) + 1
  if type(o) ~= "table" then fail(level, "listen{...} takes a table of options") end
  for k in pairs(o) do
    if not SERVER[k] then fail(level, "unknown option %q", tostring(k)) end
  end
  if o.host ~= nil and type(o.host) ~= "string" then fail(level, "option host must be a string") end
  local port = number(o, "port", level)
  if port and (port > 65535 or port % 1 ~= 0) then fail(level, "option port must be 0-65535") end
  local ht = number(o, "handshake_timeout", level)
  return {
    host = o.host or "127.0.0.1",
    port = port or 0,
    max_head = number(o, "max_head", level, 256),
    max_headers = number(o, "max_headers", level, 1),
    handshake_timeout_ms = ht and math.floor(ht * 1000),
    backlog = number(o, "backlog", level, 1),
    raw = o.raw and true or nil,
    tls = M.tls(o.tls, "server", level),
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
  local seen = {}
  for i, p in ipairs(protocols) do
    if not is_token(p) then fail(level, "invalid subprotocol name %q", tostring(p)) end
    if seen[p] then fail(level, "subprotocol %q given twice", p) end
    seen[p] = true
  end
  return protocols
end

--- Extra headers as CRLF-ended lines (nil if none); CR, LF and bad names raise.
function M.header_lines(headers, level)
  level = (level or 1) + 1
  if not headers then return nil end
  local out = {}
  for name, value in pairs(headers) do
    if not is_token(name) then fail(level, "invalid header name %q", tostring(name)) end
    value = tostring(value)
    if value:find("[\r\n%z]") then fail(level, "header %s has CR, LF or NUL in its value", name) end
    out[#out + 1] = name .. ": " .. value .. "\r\n"
  end
  table.sort(out)
  return #out > 0 and table.concat(out) or nil
end

M.is_token = is_token
return M
