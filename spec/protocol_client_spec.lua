-- RFC 6455 rules, client role: a raw server answers the handshake (or not), sends the
-- offending bytes, and we check what our client does and sends.
local H = require "helper"
local WebSocket = H.WebSocket
local F = H.frame

-- A raw server that upgrades, then sends `bytes`; returns client, rec, server rec.
local function against(bytes, options, extra)
  local srec
  local s = H.handshake_server(function(conn, rec)
    srec = rec
    rec.conn = conn
    if bytes then conn:_raw_write(bytes) end
  end, extra)
  local ws, rec = H.client("ws://127.0.0.1:" .. s.port .. "/", nil, options)
  return ws, rec, function() return srec end
end

-- Waits for the client's close frame, answers it as a server should (close TCP).
local function expect_client_close(bytes, code, options)
  local ws, rec, srec = against(bytes, options)
  H.wait(function()
    local r = srec()
    return r and #H.parse_frames(r.data) > 0
  end, 5, "the client's close frame")
  local frames = H.parse_frames(srec().data)
  local f = frames[#frames]
  assert.equal(8, f.opcode)
  assert.is_true(f.masked)
  assert.equal(code, H.close_code(f.payload))
  srec().conn:close()
  H.wait(function() return #rec.closes == 1 end, 5, "onclose")
  assert.equal(code, rec.closes[1].code)
  assert.is_false(rec.closes[1].wasClean)
  assert.equal(1, #rec.errors)
  return rec
end

describe("client framing rules", function()
  after_each(H.cleanup)

  it("reads the RFC 6455 5.7 unmasked 'Hello'", function()
    local ws, rec = against("\129\5Hello")
    H.wait(function() return #rec.messages == 1 end, 5, "message")
    assert.equal("Hello", rec.messages[1].data)
    assert.equal(1, rec.opens)
  end)

  it("fails a masked server frame with 1002", function()
    expect_client_close(F(1, "hi", { mask = "abcd" }), 1002)
  end)

  it("fails RSV bits without an extension with 1002", function()
    expect_client_close(F(1, "hi", { mask = false, rsv = 0x40 }), 1002)
  end)

  it("fails an unknown opcode with 1002", function()
    expect_client_close(F(3, "", { mask = false }), 1002)
  end)

  it("fails an oversized control frame with 1002", function()
    expect_client_close(F(9, string.rep("x", 126), { mask = false }), 1002)
  end)

  it("fails invalid UTF-8 with 1007", function()
    expect_client_close(F(1, "\192\128", { mask = false }), 1007)
  end)

  it("fails a message over maxLength with 1009", function()
    expect_client_close(F(2, string.rep("x", 200), { mask = false }), 1009, { maxLength = 100 })
  end)

  it("masks every frame with a fresh key", function()
    local ws, rec, srec = against(nil)
    H.wait(function() return rec.opens == 1 end, 5, "open")
    for i = 1, 8 do ws:send("same payload") end
    H.wait(function() return #H.parse_frames(srec().data) == 8 end, 5, "frames")
    local keys = {}
    for _, f in ipairs(H.parse_frames(srec().data)) do
      assert.is_true(f.masked)
      assert.equal("same payload", f.payload)
      keys[f.key] = true
    end
    local n = 0
    for _ in pairs(keys) do n = n + 1 end
    assert.is_true(n >= 7, "keys repeat: " .. n .. " distinct of 8")
  end)

  it("encodes lengths minimally: 125, 126, 65535, 65536", function()
    local ws, rec, srec = against(nil)
    H.wait(function() return rec.opens == 1 end, 5, "open")
    for _, n in ipairs { 125, 126, 65535, 65536 } do ws:send(string.rep("a", n), "binary") end
    H.wait(function() return #H.parse_frames(srec().data) == 4 end, 5, "frames")
    local d = srec().data
    assert.equal(0x80 + 125, d:byte(2))
    local p = 2 + 4 + 125 + 1
    assert.equal(0x80 + 126, d:byte(p + 1))
    p = p + 2 + 2 + 4 + 126
    assert.equal(0x80 + 126, d:byte(p + 1))
    p = p + 2 + 2 + 4 + 65535
    assert.equal(0x80 + 127, d:byte(p + 1))
  end)

  it("sends messages queued while connecting, in order, after open", function()
    local ws, rec, srec = against(nil)
    assert.equal(WebSocket.CONNECTING, ws.readyState)
    ws:send("one")
    ws:send("two")
    assert.is_true(ws.bufferedAmount > 0)
    H.wait(function() local r = srec() return r and #H.parse_frames(r.data) == 2 end, 5, "frames")
    local frames = H.parse_frames(srec().data)
    assert.equal("one", frames[1].payload)
    assert.equal("two", frames[2].payload)
  end)

  it("answers a server's close and waits for the server to close TCP", function()
    local ws, rec, srec = against(F(8, "\15\161going", { mask = false }))
    H.wait(function() local r = srec() return r and #H.parse_frames(r.data) == 1 end, 5, "close reply")
    local f = H.parse_frames(srec().data)[1]
    assert.equal(4001, H.close_code(f.payload))
    assert.equal(WebSocket.CLOSING, ws.readyState)
    srec().conn:close()
    H.wait(function() return #rec.closes == 1 end, 5, "onclose")
    assert.same({ 4001, "going", true }, { rec.closes[1].code, rec.closes[1].reason, rec.closes[1].wasClean })
  end)

  it("drops the connection when the server never answers its close", function()
    local ws, rec = against(nil, { close_timeout = 0.2 })
    H.wait(function() return rec.opens == 1 end, 5, "open")
    ws:close(1000)
    H.wait(function() return #rec.closes == 1 end, 5, "onclose after the close timeout")
    assert.equal(1006, rec.closes[1].code)
    assert.is_false(rec.closes[1].wasClean)
  end)
end)

describe("client handshake", function()
  after_each(H.cleanup)

  local function failing(response, options, protocols)
    local s = H.handshake_server(nil, response)
    local ws, rec = H.client("ws://127.0.0.1:" .. s.port .. "/", protocols, options)
    H.wait(function() return #rec.closes == 1 end, 5, "onclose")
    assert.equal(0, rec.opens)
    assert.equal(1, #rec.errors)
    assert.equal(1006, rec.closes[1].code)
    assert.is_false(rec.closes[1].wasClean)
    assert.equal(WebSocket.CLOSED, ws.readyState)
    return rec.errors[1]
  end

  it("fails on a wrong Sec-WebSocket-Accept", function()
    local msg = failing(function() return "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n" ..
      "Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n" end)
    assert.truthy(msg:lower():find("accept"), msg)
  end)

  it("fails on a status other than 101", function()
    local msg = failing(function() return "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n" end)
    assert.truthy(msg:find("404"), msg)
  end)

  it("fails without Upgrade: websocket", function()
    failing(function(_, accept) return "HTTP/1.1 101 Switching Protocols\r\n" ..
      "Connection: Upgrade\r\nSec-WebSocket-Accept: " .. accept .. "\r\n\r\n" end)
  end)

  it("fails without Connection: Upgrade", function()
    failing(function(_, accept) return "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n" ..
      "Sec-WebSocket-Accept: " .. accept .. "\r\n\r\n" end)
  end)

  it("fails when the server picks a protocol that was not offered", function()
    failing("Sec-WebSocket-Protocol: evil\r\n", nil, { "a", "b" })
    failing("Sec-WebSocket-Protocol: a\r\n")
  end)

  it("fails on a malformed response", function()
    failing(function() return "HTTP/1.1 1x1 what\r\n\r\n" end)
  end)

  it("fails when the handshake takes too long", function()
    local msg = failing(function() return nil end, { handshake_timeout = 0.2 })
    assert.truthy(msg:find("timed out"), msg)
  end)

  it("fails on a response head that is too large", function()
    failing(function() return "HTTP/1.1 101 Switching Protocols\r\nX: " .. string.rep("a", 20000) .. "\r\n\r\n" end)
  end)

  it("fires onerror then onclose 1006 when the connection is refused", function()
    local s = H.server()
    local port = s.port
    s:close()
    H.drain()
    local order = {}
    local ws = WebSocket.Client("ws://127.0.0.1:" .. port .. "/")
    ws.onopen = function() order[#order + 1] = "open" end
    ws.onerror = function(e) order[#order + 1] = "error: " .. e.message end
    ws.onclose = function(e) order[#order + 1] = "close " .. e.code end
    H.wait(function() return #order == 2 end, 5, "error and close")
    assert.truthy(order[1]:find("ECONNREFUSED"), order[1])
    assert.equal("close 1006", order[2])
  end)

  it("sends the request RFC 6455 4.1 asks for", function()
    local head
    local s = H.handshake_server(function(_, _, h) head = h end, "Sec-WebSocket-Protocol: b\r\n")
    local ws, rec = H.client("ws://127.0.0.1:" .. s.port .. "/path?q=1", { "a", "b" }, { headers = { ["X-Token"] = "t" } })
    H.wait(function() return rec.opens == 1 end, 5, "open")
    assert.truthy(head:find("^GET /path%?q=1 HTTP/1.1\r\n"))
    assert.truthy(head:find("\r\nHost: 127.0.0.1:" .. s.port .. "\r\n", 1, true))
    assert.truthy(head:find("\r\nSec%-WebSocket%-Version: 13\r\n"))
    assert.truthy(head:find("\r\nSec%-WebSocket%-Protocol: a, b\r\n"))
    assert.truthy(head:find("\r\nX%-Token: t\r\n"))
    local key = head:match("Sec%-WebSocket%-Key: ([^\r]+)")
    assert.equal(24, #key)
    assert.equal("b", ws.protocol)
    assert.equal(101, ws.statusCode)
    assert.equal("b", ws.headers["sec-websocket-protocol"])
  end)

  it("connects to IPv6 literals", function()
    local s = H.server { host = "::1" }
    local ok = s.port ~= nil
    s.onupgrade = function(req) local ws = WebSocket(req); ws.onmessage = function(e) ws:send(e.data) end end
    local ws, rec = H.client("ws://[::1]:" .. s.port .. "/")
    ws:send("v6")
    H.wait(function() return #rec.messages == 1 or #rec.closes == 1 end, 5, "echo over ::1")
    assert.is_true(ok)
    assert.equal("v6", rec.messages[1].data)
  end)

  it("resolves host names without blocking", function()
    local s = H.echo_server()
    local ws, rec = H.client("ws://localhost:" .. s.port .. "/")
    ws:send("by name")
    H.wait(function() return #rec.messages == 1 or #rec.closes == 1 end, 5, "echo")
    assert.equal("by name", rec.messages[1].data)
  end)
end)
