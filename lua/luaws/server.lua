--- The server: listen, hand requests to onrequest / onupgrade, and the response object.
local core = require "luaws.core"
local options = require "luaws.options"

local M = {}

local STATUS = {
  [200] = "OK", [201] = "Created", [204] = "No Content", [301] = "Moved Permanently",
  [302] = "Found", [304] = "Not Modified", [400] = "Bad Request", [401] = "Unauthorized",
  [403] = "Forbidden", [404] = "Not Found", [405] = "Method Not Allowed",
  [426] = "Upgrade Required", [500] = "Internal Server Error", [503] = "Service Unavailable",
  [100] = "Continue", [202] = "Accepted", [206] = "Partial Content", [307] = "Temporary Redirect",
  [308] = "Permanent Redirect", [408] = "Request Timeout", [409] = "Conflict", [410] = "Gone",
  [411] = "Length Required", [413] = "Content Too Large", [414] = "URI Too Long",
  [415] = "Unsupported Media Type", [429] = "Too Many Requests", [501] = "Not Implemented",
  [502] = "Bad Gateway", [504] = "Gateway Timeout",
}

local Response = {}
Response.__index = Response

local status_lines = {}   -- "HTTP/1.1 200 OK\r\n", made once per status
local function status_line(st)
  local line = status_lines[st]
  if not line then
    line = string.format("HTTP/1.1 %d %s\r\n", st, STATUS[st] or "Status")
    status_lines[st] = line
  end
  return line
end

-- Does the request let its connection carry the next one (RFC 9112 9.3)?
local function wants_keep_alive(req)
  local c = req.headers.connection
  if c == nil then return req.httpVersion ~= "1.0" end
  local tokens = {}
  if type(c) == "string" then
    for t in c:gmatch("[^,%s]+") do tokens[t:lower()] = true end
  end
  if req.httpVersion == "1.0" then return tokens["keep-alive"] == true end
  return not tokens.close
end

local function new_response(conn, req)
  return setmetatable({ _conn = conn, _keep = wants_keep_alive(req), _http10 = req.httpVersion == "1.0",
                        _head_only = req.method == "HEAD", headersSent = false, finished = false },
                      Response)
end

--- res:writeHead(status, headers): the status line and headers; sent with the first write.
function Response:writeHead(status, headers)
  if self.headersSent then error("writeHead: headers already sent", 2) end
  if type(status) ~= "number" or status < 100 or status > 999 or status % 1 ~= 0 then
    error("writeHead: bad status code", 2)
  end
  self._lines = options.header_lines(headers, 2) or ""
  self._length, self._te, self._close = nil, false, false
  for name, value in pairs(headers or {}) do
    -- only Content-Length, Transfer-Encoding and Connection matter here
    local len = #name
    local n = (len == 14 or len == 17 or len == 10) and name:lower()
    if n == "content-length" then
      local v = tostring(value)
      if not v:match("^%d+$") then error("writeHead: Content-Length must be digits", 2) end
      self._length = tonumber(v)
    elseif n == "transfer-encoding" then
      self._te = true
    elseif n == "connection" then
      for t in tostring(value):gmatch("[^,%s]+") do
        if t:lower() == "close" then self._close = true end
      end
    end
  end
  self.statusCode = status
end

-- The head, once the body's framing is known: Content-Length as given (or, when the whole
-- body comes with finish(), its length); else chunked for HTTP/1.1, and for HTTP/1.0 the
-- end of the connection. 1xx, 204, 304 and HEAD answers have no body.
function Response:_start(whole)
  if not self.statusCode then self:writeHead(200, { ["Content-Type"] = "text/plain" }) end
  local st, extra = self.statusCode, ""
  self._bodyless = self._head_only or st == 204 or st == 304 or st < 200
  if self._bodyless or self._length then
    self._framing = "length"
  elseif self._te then
    self._framing, self._keep = "close", false   -- the script frames it: only the close ends it
  elseif whole then
    self._framing, self._length = "length", #whole
    extra = "Content-Length: " .. #whole .. "\r\n"
  elseif not self._http10 then
    self._framing = "chunked"
    extra = "Transfer-Encoding: chunked\r\n"
  else
    self._framing, self._keep = "close", false
  end
  if self._close then self._keep = false end
  -- the server may not keep it either (a streamed body still coming, closing down)
  if self._keep and not core.http_keepable(self._conn) then self._keep = false end
  if self._keep then
    if self._http10 then extra = extra .. "Connection: keep-alive\r\n" end
  elseif not self._close then
    extra = extra .. "Connection: close\r\n"
  end
  self._left = self._length
  self.headersSent = true
  self._unsent = status_line(st) .. self._lines .. extra .. "\r\n"
end

-- Body bytes as the framing wants them.
function Response:_body(data)
  if self._bodyless or data == "" then return "" end
  if self._framing == "chunked" then return string.format("%x\r\n", #data) .. data .. "\r\n" end
  if self._left then
    if #data > self._left then error("res:write past Content-Length", 3) end
    self._left = self._left - #data
  end
  return data
end

--- res:write(chunk): body bytes; true, or nil, message, name once the peer is gone.
function Response:write(chunk)
  if self.finished then return nil, "ECLOSED: response already finished", "ECLOSED" end
  local data = chunk and tostring(chunk) or ""
  if not self.headersSent then self:_start() end
  local out = (self._unsent or "") .. self:_body(data)   -- (the head stays unsent if it raises)
  self._unsent = nil
  if out == "" then return true end
  return core.http_write(self._conn, out)
end

--- res:finish([chunk]): the last bytes. The connection then takes the client's next
--- request (keep-alive), or closes when the request or the response says so.
function Response:finish(chunk)
  if self.finished then return true end
  local data = chunk and tostring(chunk) or ""
  if not self.headersSent then self:_start(data) end
  local out = (self._unsent or "") .. self:_body(data)
  self._unsent = nil
  if self._framing == "chunked" then out = out .. "0\r\n\r\n" end
  if self._left and self._left > 0 and not self._bodyless then self._keep = false end
  local ok, err, name = true, nil, nil
  if out ~= "" then ok, err, name = core.http_write(self._conn, out) end
  self.finished = true
  core.http_end(self._conn, self._keep and ok and true or false)
  return ok, err, name
end
Response["end"] = Response.finish   -- as Node, for those who write res["end"]

local responses = setmetatable({}, { __mode = "k" })   -- conn -> res, for onclose
local requests = setmetatable({}, { __mode = "k" })    -- conn -> req, for a streamed body

-- Upgrade requests: defer() to answer later, reject() to refuse.
local Request = {}
Request.__index = Request
local upgrading   -- init.lua's: the request onupgrade is handling, and its conn

-- The conn of an upgrade request still to answer: the one onupgrade is handling, or one
-- deferred (req._deferred is its conn). Nothing per request outlives the request.
local function conn_of(req)
  if req == upgrading.req then return upgrading.conn end
  return req._deferred or nil
end

--- req:defer(): keep the upgrade request after onupgrade returns; accept it later with
--- WebSocket(req, ...) or refuse it with req:reject(...). Bounded by handshake_timeout.
function Request:defer()
  local conn = conn_of(self)
  if not conn then error("defer: only an upgrade request, inside onupgrade", 2) end
  local ok, err, name = core.defer(conn)
  if ok then self._deferred = conn end
  return ok, err, name
end

--- req:reject(status [, headers [, body]]): answer the upgrade request with a plain HTTP
--- response; the connection closes after it.
function Request:reject(status, headers, body)
  local conn = conn_of(self)
  if not conn then error("reject: not an upgrade request still to answer", 2) end
  if type(status) ~= "number" or status < 200 or status > 999 or status % 1 ~= 0 or status == 101 then
    error("reject: bad status code", 2)
  end
  body = body and tostring(body) or ""
  local head = string.format("HTTP/1.1 %d %s\r\n%sContent-Length: %d\r\nConnection: close\r\n\r\n",
    status, STATUS[status] or "Status", options.header_lines(headers, 2) or "", #body)
  if self._deferred then self._deferred = nil end
  if upgrading.req == self then upgrading.req, upgrading.conn = nil, nil end
  local ok, err, name = core.http_write(conn, head .. body)
  core.http_end(conn, false)
  return ok, err, name
end

function M.init(WebSocket, hooks, upgrading_)
  upgrading = upgrading_
  function hooks._onrequest(server, conn, req, upgrade)
    if upgrade then
      local h = server.onupgrade
      setmetatable(req, Request)
      upgrading.req, upgrading.conn = req, conn
      if h then h(req) end   -- not accepted, deferred nor rejected: the C side answers 400
      upgrading.req, upgrading.conn = nil, nil
      return
    end
    local res = new_response(conn, req)
    responses[conn] = res
    if req.body == nil then   -- stream_bodies: the pieces follow
      requests[conn] = req
      --- req:pause() / req:resume(): stop and restart reading the body (back-pressure).
      req.pause = function() conn:pause() end
      req.resume = function() conn:resume() end
    end
    local h = server.onrequest
    if h then
      h(req, res)
      -- stream_bodies: a request without a body is complete at once
      if req.body == "" and server._stream_bodies and not req.complete then
        req.complete = true
        if req.onend then req.onend() end
      end
    else
      res:writeHead(404, { ["Content-Type"] = "text/plain" })
      res:finish("Not Found\n")
    end
  end

  --- The conn a deferred request is accepted on, or nil.
  function upgrading.deferred(req)
    return req and req._deferred or nil
  end

  -- stream_bodies: req.ondata(chunk) for each piece, then req.onend().
  function hooks._onrequestbody(conn, data, fin)
    local req = requests[conn]
    if not req then return end
    if data ~= "" and req.ondata then req.ondata(data) end
    if fin then
      requests[conn] = nil
      req.complete = true
      if req.onend then req.onend() end
    end
  end

  function hooks._onrequestdrain(conn)
    local res = responses[conn]
    if res and res.ondrain then res.ondrain() end
  end

  function hooks._onrequestclose(conn)
    local res = responses[conn]
    responses[conn] = nil
    if res then
      res.finished = true
      if res.onclose then res.onclose() end
    end
  end

  -- Raw TCP servers (tests): the socket's ondata / onclose.
  function hooks._onconnection(server, conn)
    local h = server.onconnection
    if h then h(conn) else conn:close() end
  end
end

--- WebSocket.listen{ host =, port =, ... }: a listening server; server.port tells the
--- port (useful with port = 0).
--- tls = { cert =, key = [, ca =, verify =, ciphers =, ciphersuites =] } terminates TLS on
--- the port: https:// requests reach onrequest and wss:// upgrades onupgrade. Their req
--- has req.tls = { version, cipher, alpn, verified [, subject, issuer] }; subject and
--- issuer (RFC 2253, "CN=...,O=...") are the client certificate's, when ca is given and
--- the client sent one (verify = true: a client without one is refused).
function M.listen(opts)
  local o = options.server(opts, 2)
  if o.tls then
    local ctx, err, name = core.tls_context(o.tls)
    if not ctx then return nil, err, name end
    o.tls = ctx
  end
  local s, err, name = core.listen(o)
  if s and o.stream_bodies then s._stream_bodies = true end
  return s, err, name
end

return M
