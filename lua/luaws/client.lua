--- The client: WebSocket.Client(url, protocols, options), as a browser's WebSocket.
local core = require "luaws.core"
local options = require "luaws.options"

local M = {}

--- Parses ws://, wss:// URLs: scheme, host (IPv6 without brackets), port, path (with
--- query), and the Host header. Raises on anything else, as browsers do.
function M.parse_url(url, level)
  level = (level or 1) + 1
  if type(url) ~= "string" then error("URL must be a string", level) end
  local scheme, rest = url:match("^(%a[%w+.-]*)://(.*)$")
  scheme = scheme and scheme:lower()
  if scheme ~= "ws" and scheme ~= "wss" then
    error("URL scheme must be ws or wss: " .. url, level)
  end
  if rest:find("#", 1, true) then error("URL must not have a fragment: " .. url, level) end
  local authority, path = rest:match("^([^/?]*)(.*)$")
  if path == "" then path = "/" elseif path:sub(1, 1) == "?" then path = "/" .. path end
  if authority:find("@", 1, true) then error("URL must not carry credentials: " .. url, level) end
  local host, port
  if authority:sub(1, 1) == "[" then
    host, port = authority:match("^%[([%x:.]+)%]:?(%d*)$")
  else
    host, port = authority:match("^([^:]+):?(%d*)$")
  end
  if not host or host == "" then error("URL has no valid host: " .. url, level) end
  local default = scheme == "wss" and 443 or 80
  port = tonumber(port ~= "" and port or nil) or default
  if port < 1 or port > 65535 then error("URL port out of range: " .. url, level) end
  local hosthdr = host:find(":", 1, true) and ("[" .. host .. "]") or host
  if port ~= default then hosthdr = hosthdr .. ":" .. port end
  if path:find("[%s%c]") then error("URL path has spaces or control characters", level) end
  return { scheme = scheme, host = host, port = port, path = path, host_header = hosthdr,
           secure = scheme == "wss" }
end

-- Client TLS contexts by their options: loading a CA store costs milliseconds, so
-- sockets with the same options share one. Weak: an unused context is collected (each
-- connection holds OpenSSL's own reference to it).
local contexts = setmetatable({}, { __mode = "v" })

local function tls_context(t)
  local key = table.concat({ t.cafile or "", t.capath or "", t.cert or "", t.key or "",
    t.ciphers or "", t.ciphersuites or "", tostring(t.verify) }, "\0")
  local ctx = contexts[key]
  if ctx then return ctx end
  local err, name
  ctx, err, name = core.tls_context(t)
  if ctx then contexts[key] = ctx end
  return ctx, err, name
end

--- WebSocket.Client(url, protocols, options). For wss:// (port 443 by default) the
--- server's certificate chain is verified against the system's CA store and its name
--- against the URL's host; options.tls = { cafile, capath, servername, cert, key,
--- verify, ciphers, ciphersuites } changes that (verify = false: no checks at all).
--- options.proxy = { origin = "http(s)://[user:password@]host[:port]", headers, tls }:
--- through that HTTP proxy (CONNECT); tls is for an https:// proxy, checked against its
--- own name.
--- M.open is M.new with level: how many calls up from it misuse is blamed.
function M.open(url, protocols, opts, level)
  local u = M.parse_url(url, level)
  local o = options.socket(opts, level)
  local list = options.protocol_list(protocols or o.protocols, level)
  local tls, servername = options.tls(o.tls or (u.secure and {}) or nil, "client", level)
  local ctx, err, name
  if u.secure then
    ctx, err, name = tls_context(tls)
    if not ctx then return nil, err, name end
  end
  local proxy = o.proxy
  if proxy then   -- the core takes the proxy's own TLS context in place of its options
    local pctx
    if proxy.tls then
      pctx, err, name = tls_context(proxy.tls)
      if not pctx then return nil, err, name end
    end
    proxy = { host = proxy.host, port = proxy.port, tls = pctx, servername = proxy.servername,
              user = proxy.user, password = proxy.password, headers = proxy.headers }
  end
  local ws
  ws, err, name = core.connect {
    host = u.host, port = u.port, path = u.path, host_header = u.host_header,
    protocols = #list > 0 and table.concat(list, ", ") or nil,
    headers = options.header_lines(o.headers, level), options = o.core,
    tls = ctx, servername = servername, proxy = proxy,
  }
  if not ws then return nil, err, name end
  ws.url = url
  if o.queue then ws._queue_limits = o.queue end
  return ws
end

function M.new(url, protocols, opts)
  local ws, err, name = M.open(url, protocols, opts, 3)
  return ws, err, name
end

--- A raw TCP connection for tests: ondata(event), onopen, onclose; ws:_raw_write(bytes).
--- With tls (client TLS options), the bytes go through TLS, opened once it is up.
function M.raw(host, port, tls)
  local ctx, servername, err, name
  if tls then
    tls, servername = options.tls(tls, "client", 2)
    ctx, err, name = tls_context(tls)
    if not ctx then return nil, err, name end
  end
  return core.connect { host = host, port = port, raw = true, tls = ctx, servername = servername }
end

return M
