-- The server's opening handshake and its plain-HTTP side.
local H = require "helper"
local WebSocket = H.WebSocket

-- Sends a request head on a raw connection; returns the response's bytes once TCP closes
-- or the response is whole (a kept-alive connection stays open), and the response.
local function request(port, head)
  local c, rec = H.raw(port)
  H.wait(function() return rec.opened end, 5, "connect")
  c:_raw_write(head)
  local r
  H.wait(function()
    r = H.http_response(rec.data, rec.closed)
    return rec.closed or r
  end, 5, "response and close")
  c:close()
  return rec.data, r
end

local function upgrade_head(lines)
  local base = {
    "GET /chat HTTP/1.1", "Host: 127.0.0.1", "Upgrade: websocket", "Connection: Upgrade",
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13",
  }
  for k, v in pairs(lines or {}) do
    if type(k) == "number" then base[k] = v else base[#base + 1] = k .. ": " .. v end
  end
  local out = {}
  for i = 1, 50 do if base[i] and base[i] ~= "" then out[#out + 1] = base[i] end end
  return table.concat(out, "\r\n") .. "\r\n\r\n"
end

describe("server handshake", function()
  after_each(H.cleanup)

  local function rejected(lines, status)
    local s = H.server()
    local reached = 0
    s.onupgrade = function() reached = reached + 1 end
    s.onrequest = function() reached = reached + 1 end
    local resp = request(s.port, type(lines) == "string" and lines or upgrade_head(lines))
    assert.truthy(resp:find("^HTTP/1.1 " .. status .. " "), resp)
    assert.equal(0, reached, "the request reached Lua")
    return resp
  end

  it("answers the RFC 6455 example key", function()
    local s = H.server()
    local req
    s.onupgrade = function(r) req = r; WebSocket(r) end
    local c, rec = H.raw_upgraded(s.port)
    assert.truthy(rec.head:find("^HTTP/1.1 101 Switching Protocols\r\n"))
    assert.truthy(rec.head:find("\r\nSec%-WebSocket%-Accept: s3pPLMBiTxaQ9kYGzzhZRbK%+xOo=\r\n"))
    assert.truthy(rec.head:lower():find("\r\nupgrade: websocket\r\n"))
    assert.truthy(rec.head:lower():find("\r\nconnection: upgrade\r\n"))
    assert.equal("GET", req.method)
    assert.equal("/chat", req.url)
    assert.equal("websocket", req.headers.upgrade)
    assert.is_true(WebSocket.isWebSocket(req))
  end)

  it("accepts versions 7 and 8 and reports them", function()
    for _, v in ipairs { 7, 8 } do
      local s = H.server()
      local ws
      s.onupgrade = function(r) ws = WebSocket(r) end
      local c, rec = H.raw_upgraded(s.port, upgrade_head { [6] = "Sec-WebSocket-Version: " .. v })
      assert.truthy(rec.head:find("^HTTP/1.1 101"))
      assert.equal("hybi-" .. v, ws.version)
    end
  end)

  it("answers 426 with Sec-WebSocket-Version: 13 for other versions", function()
    local resp = rejected({ [6] = "Sec-WebSocket-Version: 12" }, 426)
    assert.truthy(resp:find("\r\nSec%-WebSocket%-Version: 13\r\n"))
    rejected({ [6] = "" }, 426)
  end)

  it("answers 400 to bad upgrade requests, and nothing reaches Lua", function()
    rejected({ [1] = "POST /chat HTTP/1.1" }, 400)
    rejected({ [1] = "GET /chat HTTP/1.0" }, 400)
    rejected({ [5] = "" }, 400)
    rejected({ [5] = "Sec-WebSocket-Key: short" }, 400)
    rejected({ [5] = "Sec-WebSocket-Key: !!!!!!!!!!!!!!!!!!!!!!==" }, 400)
    rejected({ [4] = "Connection: keep-alive" }, 400)
    rejected({ [2] = "" }, 400)
  end)

  it("accepts Connection: keep-alive, Upgrade", function()
    local s = H.server()
    s.onupgrade = function(r) WebSocket(r) end
    local c, rec = H.raw_upgraded(s.port, upgrade_head { [4] = "Connection: keep-alive, Upgrade" })
    assert.truthy(rec.head:find("^HTTP/1.1 101"))
  end)

  it("answers 400 to malformed HTTP and 431 to a head that is too large", function()
    rejected("GARBAGE\r\n\r\n", 400)
    rejected("GET / HTTP/1.1\r\nX: " .. string.rep("a", 20000) .. "\r\n\r\n", 431)
    local many = { "GET / HTTP/1.1" }
    for i = 1, 100 do many[#many + 1] = "X-" .. i .. ": y" end
    rejected(table.concat(many, "\r\n") .. "\r\n\r\n", 431)
  end)

  it("applies max_head and max_headers", function()
    local s = H.server { max_head = 512, max_headers = 8 }
    s.onrequest = function(_, res) res:finish("x") end
    local resp = request(s.port, "GET / HTTP/1.1\r\nX: " .. string.rep("a", 600) .. "\r\n\r\n")
    assert.truthy(resp:find("^HTTP/1.1 431"), resp)
  end)

  it("drops a connection that does not finish its head in time", function()
    local s = H.server { handshake_timeout = 0.2 }
    local c, rec = H.raw(s.port)
    H.wait(function() return rec.opened end, 5, "connect")
    c:_raw_write("GET / HTTP/1.1\r\n")
    H.wait(function() return rec.closed end, 5, "the server to drop us")
  end)

  it("negotiates the first protocol the client offers that the server supports", function()
    local s = H.server()
    local ws
    s.onupgrade = function(r) ws = WebSocket(r, { "c", "b" }) end
    local c, rec = H.raw_upgraded(s.port, upgrade_head { ["Sec-WebSocket-Protocol"] = "a, b, c" })
    assert.truthy(rec.head:find("\r\nSec%-WebSocket%-Protocol: b\r\n"))
    assert.equal("b", ws.protocol)
  end)

  it("sends no protocol when none matches, and custom headers", function()
    local s = H.server()
    s.onupgrade = function(r) WebSocket(r, { "x" }, { headers = { ["X-Hello"] = "world" } }) end
    local c, rec = H.raw_upgraded(s.port, upgrade_head { ["Sec-WebSocket-Protocol"] = "a" })
    assert.falsy(rec.head:find("Sec%-WebSocket%-Protocol"))
    assert.truthy(rec.head:find("\r\nX%-Hello: world\r\n"))
  end)

  it("answers 400 when onupgrade does not accept, or is missing", function()
    local s = H.server()
    local resp = request(s.port, upgrade_head())
    assert.truthy(resp:find("^HTTP/1.1 400"), resp)
    s.onupgrade = function() end
    resp = request(s.port, upgrade_head())
    assert.truthy(resp:find("^HTTP/1.1 400"), resp)
  end)

  it("raises when a request is accepted after its handler returned", function()
    local s = H.server()
    local saved
    s.onupgrade = function(r) saved = r end
    request(s.port, upgrade_head())
    assert.has_error(function() WebSocket(saved) end)
  end)

  it("processes frames that arrive with the request head", function()
    local s, srec = H.echo_server()
    local c, rec = H.raw(s.port)
    H.wait(function() return rec.opened end, 5, "connect")
    c:_raw_write(upgrade_head() .. H.frame(1, "early bird"))
    H.wait(function() return #srec.messages == 1 end, 5, "the pipelined frame")
    assert.equal("early bird", srec.messages[1].data)
  end)
end)

describe("plain HTTP on the WebSocket port", function()
  after_each(H.cleanup)

  it("hands ordinary requests to onrequest", function()
    local s = H.server()
    local seen
    s.onrequest = function(req, res)
      seen = req
      res:writeHead(200, { ["Content-Type"] = "text/plain", ["X-A"] = "b" })
      res:write("hello ")
      res:finish("world")
    end
    local resp, r = request(s.port, "GET /health?x=1 HTTP/1.1\r\nHost: h\r\nX-Multi: 1\r\nX-Multi: 2\r\n\r\n")
    assert.truthy(resp:find("^HTTP/1.1 200 OK\r\n"), resp)
    assert.truthy(resp:find("\r\nX%-A: b\r\n"))
    assert.equal("hello world", r.body)
    assert.equal("GET", seen.method)
    assert.equal("/health?x=1", seen.url)
    assert.equal("h", seen.headers.host)
    assert.equal("1, 2", seen.headers["x-multi"])
    assert.is_false(WebSocket.isWebSocket(seen))
  end)

  it("answers 404 without an onrequest handler", function()
    local s = H.server()
    assert.truthy(request(s.port, "GET / HTTP/1.1\r\nHost: h\r\n\r\n"):find("^HTTP/1.1 404"))
  end)

  it("answers 500 when onrequest raises, and keeps serving", function()
    local s = H.server()
    local errors = {}
    WebSocket.onhandlererror = function(err) errors[#errors + 1] = err end
    s.onrequest = function(req, res)
      if req.url == "/boom" then error("boom") end
      res:finish("fine")
    end
    local resp = request(s.port, "GET /boom HTTP/1.1\r\nHost: h\r\n\r\n")
    WebSocket.onhandlererror = nil
    assert.truthy(resp:find("^HTTP/1.1 500"), resp)
    assert.equal(1, #errors)
    assert.truthy(errors[1]:find("boom"))
    assert.equal("fine", select(2, request(s.port, "GET / HTTP/1.1\r\nHost: h\r\n\r\n")).body)
  end)

  it("lets a response finish later, from a timer", function()
    local s = H.server()
    s.onrequest = function(_, res)
      res:write("part one, ")
      WebSocket.setTimeout(function() res:finish("part two") end, 10)
    end
    local _, r = request(s.port, "GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    assert.equal("part one, part two", r.body)
  end)

  it("tells a response that the client went away", function()
    local s = H.server()
    local closed = false
    s.onrequest = function(_, res)
      res:write("streaming")
      res.onclose = function() closed = true end
    end
    local c, rec = H.raw(s.port)
    H.wait(function() return rec.opened end, 5, "connect")
    c:_raw_write("GET /events HTTP/1.1\r\nHost: h\r\n\r\n")
    H.wait(function() return rec.data:find("streaming") end, 5, "first bytes")
    c:close()
    H.wait(function() return closed end, 5, "res.onclose")
  end)
end)
