--- The server: listen, hand requests to onrequest / onupgrade, and the response object.
local core = require "luaws.core"
local options = require "luaws.options"

local M = {}

local STATUS = {
  [200] = "OK", [201] = "Created", [204] = "No Content", [301] = "Moved Permanently",
  [302] = "Found", [304] = "Not Modified", [400] = "Bad Request", [401] = "Unauthorized",
  [403] = "Forbidden", [404] = "Not Found", [405] = "Method Not Allowed",
  [426] = "Upgrade Required", [500] = "Internal Server Error", [503] = "Service Unavailable",
}

local Response = {}
Response.__index = Response

--- res:writeHead(status, headers): the status line and headers; sent with the first write.
function Response:writeHead(status, headers)
  if self.headersSent then error("writeHead: headers already sent", 2) end
  if type(status) ~= "number" or status < 100 or status > 999 then
    error("writeHead: bad status code", 2)
  end
  local lines = options.header_lines(headers, 2) or ""
  self._head = string.format("HTTP/1.1 %d %s\r\n%sConnection: close\r\n\r\n",
    status, STATUS[status] or "Status", lines)
  self.statusCode = status
end

--- res:write(chunk): body bytes; true, or nil, message, name once the peer is gone.
function Response:write(chunk)
  if self.finished then return nil, "ECLOSED: response already finished", "ECLOSED" end
  if not self._head then self:writeHead(200, { ["Content-Type"] = "text/plain" }) end
  local data = chunk and tostring(chunk) or ""
  if not self.headersSent then
    self.headersSent = true
    data = self._head .. data
  end
  if data == "" then return true end
  return core.http_write(self._conn, data)
end

--- res:finish([chunk]): the last bytes; the connection closes after them.
function Response:finish(chunk)
  if self.finished then return true end
  local ok, err, name = self:write(chunk)
  self.finished = true
  core.http_end(self._conn)
  return ok, err, name
end
Response["end"] = Response.finish   -- as Node, for those who write res["end"]

local responses = setmetatable({}, { __mode = "k" })   -- conn -> res, for onclose

function M.init(WebSocket, hooks, upgrading)
  function hooks._onrequest(server, conn, req, upgrade)
    if upgrade then
      local h = server.onupgrade
      upgrading.req, upgrading.conn = req, conn
      if h then h(req) end   -- not accepted when it returns: the C side answers 400
      upgrading.req, upgrading.conn = nil, nil
      return
    end
    local res = setmetatable({ _conn = conn, headersSent = false, finished = false }, Response)
    responses[conn] = res
    local h = server.onrequest
    if h then
      h(req, res)
    else
      res:writeHead(404, { ["Content-Type"] = "text/plain" })
      res:finish("Not Found\n")
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
  return core.listen(o)
end

return M
