-- The hixie-75 and hixie-76 drafts, server side (csrc/core/hixie.c through the I/O layer):
-- the opening handshake with the drafts' worked examples, fed whole, a byte at a time and
-- in random chunks; 0x00 .. 0xFF framing; the -76 closing handshake; drafts = false; wss://.
local H = require "helper"
local WebSocket = H.WebSocket
local client = require "luaws.client"

-- draft-hixie-thewebsocketprotocol-76 1.3 (and 5.2): the worked example.
local KEY1 = "Sec-WebSocket-Key1: 4 @1  46546xW%0l 1 5"
local KEY2 = "Sec-WebSocket-Key2: 12998 5 Y3 1  .P00"
local KEY3 = "^n:ds[4U"
local ANSWER = "8jKS'y:G*Co,Wxa-"
local REQ76 = {
  "GET /demo HTTP/1.1", "Host: example.com", "Connection: Upgrade", KEY2,
  "Sec-WebSocket-Protocol: sample", "Upgrade: WebSocket", KEY1, "Origin: http://example.com",
}
local RESP76 = "HTTP/1.1 101 WebSocket Protocol Handshake\r\n" ..
  "Upgrade: WebSocket\r\nConnection: Upgrade\r\n" ..
  "Sec-WebSocket-Origin: http://example.com\r\n" ..
  "Sec-WebSocket-Location: ws://example.com/demo\r\n" ..
  "Sec-WebSocket-Protocol: sample\r\n\r\n"

-- draft-hixie-thewebsocketprotocol-75 1.3: its example.
local REQ75 = {
  "GET /demo HTTP/1.1", "Upgrade: WebSocket", "Connection: Upgrade", "Host: example.com",
  "Origin: http://example.com", "WebSocket-Protocol: sample",
}
local RESP75 = "HTTP/1.1 101 Web Socket Protocol Handshake\r\n" ..
  "Upgrade: WebSocket\r\nConnection: Upgrade\r\n" ..
  "WebSocket-Origin: http://example.com\r\n" ..
  "WebSocket-Location: ws://example.com/demo\r\n" ..
  "WebSocket-Protocol: sample\r\n\r\n"

--- A request head from base lines: overrides [i] = line replaces line i ("" drops it),
--- name = value appends a header.
local function head(base, overrides)
  local lines = {}
  for i = 1, #base do lines[i] = base[i] end
  local n = #base
  for k, v in pairs(overrides or {}) do
    if type(k) == "number" then lines[k] = v end
  end
  for k, v in pairs(overrides or {}) do
    if type(k) == "string" then n = n + 1; lines[n] = k .. ": " .. v end
  end
  local out = {}
  for i = 1, n do
    if lines[i] and lines[i] ~= "" then out[#out + 1] = lines[i] end
  end
  return table.concat(out, "\r\n") .. "\r\n\r\n"
end

-- Park-Miller: exact in doubles (PUC 5.1) and integers alike, so every Lua cuts the same.
local function prng(seed)
  local x = seed
  return function(n)
    x = x * 16807 % 2147483647
    return x % n + 1
  end
end

--- bytes cut into pieces: "whole", "bytes" (one each), or a seed for random sizes 1..max.
local function pieces(bytes, how, max)
  if how == "whole" then return { bytes } end
  local out, i = {}, 1
  local rand = type(how) == "number" and prng(how)
  while i <= #bytes do
    local n = rand and rand(max or 17) or 1
    out[#out + 1] = bytes:sub(i, i + n - 1)
    i = i + n
  end
  return out
end

--- Writes each piece in its own write, running the loop between so each is its own read.
local function write_pieces(c, list)
  for _, p in ipairs(list) do
    c:_raw_write(p)
    H.drain(2)
  end
end

--- Runs the loop for ms: a bounded window in which nothing should happen.
local function quiet(ms)
  local done = false
  WebSocket.setTimeout(function() done = true end, ms or 50)
  H.wait(function() return done end, 5, "a quiet moment")
end

--- A server that accepts every upgrade with protocols and options; rec records requests,
--- sockets and their events (messages as event tables).
local function draft_server(protocols, options, listen)
  local s = H.server(listen)
  local rec = { upgrades = 0, plain = 0, requests = {}, sockets = {}, messages = {}, errors = {},
                closes = {} }
  s.onupgrade = function(req)
    rec.upgrades = rec.upgrades + 1
    rec.requests[#rec.requests + 1] = req
    local ws = H.track(WebSocket(req, protocols, options))
    rec.sockets[#rec.sockets + 1] = ws
    ws.onmessage = function(e) rec.messages[#rec.messages + 1] = e end
    ws.onerror = function(e) rec.errors[#rec.errors + 1] = e end
    ws.onclose = function(e) rec.closes[#rec.closes + 1] = e end
  end
  s.onrequest = function(_, res) rec.plain = rec.plain + 1; res:finish("no") end
  return s, rec
end

local function datas(rec)
  local t = {}
  for i, e in ipairs(rec.messages) do t[i] = e.data end
  return t
end

local function connect(port)
  local c, crec = H.raw(port)
  H.wait(function() return crec.opened or crec.closed end, 5, "connect")
  assert.is_true(crec.opened, "no connection")
  return c, crec
end

--- Waits for a response head (and, with extra, that many bytes after it); returns the
--- head and what followed it, leaving crec.data empty.
local function response(crec, extra, what)
  local function split()
    local e = crec.data:find("\r\n\r\n", 1, true)
    if e and #crec.data >= e + 3 + (extra or 0) then return e end
  end
  H.wait(function() return split() or crec.closed end, 5, what or "the response")
  local e = split()
  assert.truthy(e, "no whole response: " .. ("%q"):format(crec.data))
  local h, rest = crec.data:sub(1, e + 3), crec.data:sub(e + 4)
  crec.data = ""
  return h, rest
end

--- A request that is answered and closed: the whole answer.
local function refused(port, bytes)
  local c, crec = connect(port)
  c:_raw_write(bytes)
  H.wait(function() return crec.closed end, 5, "the answer and close")
  return crec.data
end

--- An open -76 (or -75) socket: the raw client, its record, and the server's socket.
local function open76(s, rec, request)
  local c, crec = connect(s.port)
  c:_raw_write(request or head(REQ76) .. KEY3)
  local h, answer = response(crec, 16)
  assert.equal("HTTP/1.1 101 ", h:sub(1, 13))
  assert.equal(ANSWER, answer)
  H.wait(function() return #rec.sockets > 0 end, 5, "the server socket")
  return c, crec, rec.sockets[#rec.sockets]
end

local function open75(s, rec, request)
  local c, crec = connect(s.port)
  c:_raw_write(request or head(REQ75))
  local h, rest = response(crec)
  assert.equal("HTTP/1.1 101 Web Socket Protocol Handshake\r\n", h:match("^[^\n]*\n"))
  assert.equal("", rest)
  H.wait(function() return #rec.sockets > 0 end, 5, "the server socket")
  return c, crec, rec.sockets[#rec.sockets]
end

local OPEN = { [75] = open75, [76] = open76 }

describe("hixie-76 opening handshake", function()
  after_each(H.cleanup)

  -- The worked example, sent as fed; then a frame both ways, to show the stream is in step.
  local function worked_example(how)
    local s, rec = draft_server { "other", "sample" }
    local c, crec = connect(s.port)
    write_pieces(c, pieces(head(REQ76) .. KEY3, how))
    local h, answer = response(crec, 16)
    assert.equal(RESP76, h)
    assert.equal(ANSWER, answer)
    assert.equal(1, rec.upgrades)
    local ws, req = rec.sockets[1], rec.requests[1]
    assert.equal("hixie-76", ws.version)
    assert.equal("sample", ws.protocol)
    assert.equal("ws://example.com/demo", ws.url)
    assert.equal("/demo", req.url)
    assert.equal("12998 5 Y3 1  .P00", req.headers["sec-websocket-key2"])
    assert.is_true(WebSocket.isWebSocket(req))
    write_pieces(c, pieces("\0after the key\255", how))
    H.wait(function() return #rec.messages == 1 or #rec.closes > 0 end, 5, "the frame")
    assert.same({ "after the key" }, datas(rec))
    assert.is_true(ws:send("back"))
    H.wait(function() return crec.data == "\0back\255" or crec.closed end, 5, "the answer frame")
    assert.equal("\0back\255", crec.data)
    assert.same({}, rec.closes)
  end

  it("answers the draft's worked example, sent whole", function()
    worked_example("whole")
  end)

  it("answers the worked example sent a byte at a time", function()
    worked_example("bytes")
  end)

  it("answers the worked example sent in random chunks", function()
    for seed = 1, 5 do worked_example(seed * 7919) end
  end)

  it("waits for key3 in later writes, and onupgrade runs only once it is there", function()
    local s, rec = draft_server { "sample" }
    local c, crec = connect(s.port)
    c:_raw_write(head(REQ76))
    quiet(50)
    assert.equal(0, rec.upgrades)
    assert.equal("", crec.data)
    c:_raw_write(KEY3:sub(1, 3))
    quiet(30)
    assert.equal(0, rec.upgrades)
    assert.equal("", crec.data)
    c:_raw_write(KEY3:sub(4) .. "\0pipelined\255")
    local h, answer = response(crec, 16)
    assert.equal(RESP76, h)
    assert.equal(ANSWER, answer)
    assert.equal(1, rec.upgrades)
    H.wait(function() return #rec.messages == 1 end, 5, "the frame after key3")
    assert.same({ "pipelined" }, datas(rec))
  end)

  it("reads frames that arrive in the same write as the head and key3", function()
    local s, rec = draft_server()
    local c, crec = connect(s.port)
    c:_raw_write(head(REQ76) .. KEY3 .. "\0one\255\0two\255")
    response(crec, 16)
    H.wait(function() return #rec.messages == 2 end, 5, "both frames")
    assert.same({ "one", "two" }, datas(rec))
  end)

  it("drops a client whose key3 never comes, at the handshake timeout", function()
    local s, rec = draft_server(nil, nil, { handshake_timeout = 0.2 })
    local c, crec = connect(s.port)
    c:_raw_write(head(REQ76) .. KEY3:sub(1, 7))
    quiet(50)                                          -- waiting for the eighth byte
    assert.same({ false, "" }, { crec.closed, crec.data })
    H.wait(function() return crec.closed end, 5, "the server to drop us")
    assert.equal(0, rec.upgrades)
    assert.falsy(crec.data:find(" 101 ", 1, true), crec.data)
  end)

  it("leaves out the origin and protocol when there are none, and uses Host and target as sent", function()
    local s, rec = draft_server { "chat" }
    local c, crec = connect(s.port)
    c:_raw_write(head(REQ76, { [1] = "GET /chat?room=1 HTTP/1.1", [2] = "Host: 127.0.0.1:" .. s.port,
      [8] = "" }) .. KEY3)
    local h, answer = response(crec, 16)
    assert.equal("HTTP/1.1 101 WebSocket Protocol Handshake\r\n" ..
      "Upgrade: WebSocket\r\nConnection: Upgrade\r\n" ..
      "Sec-WebSocket-Location: ws://127.0.0.1:" .. s.port .. "/chat?room=1\r\n\r\n", h)
    assert.equal(ANSWER, answer)
    assert.equal("", rec.sockets[1].protocol)
  end)

  it("answers 400 to invalid keys, and nothing reaches Lua", function()
    local s, rec = draft_server()
    local cases = {
      { [7] = "Sec-WebSocket-Key1: 1868545188" },       -- no space
      { [4] = "Sec-WebSocket-Key2: 1 3 5" },            -- 135 is not a multiple of 2 spaces
      { [7] = "Sec-WebSocket-Key1: 42949 67296" },      -- 2^32 / 1 space: over 32 bits
      { [7] = "" },                                     -- Key2 alone
      { [4] = "" },                                     -- Key1 alone
    }
    for i, case in ipairs(cases) do
      local resp = refused(s.port, head(REQ76, case) .. KEY3)
      assert.truthy(resp:find("^HTTP/1.1 400 "), "case " .. i .. ": " .. resp)
    end
    assert.same({ 0, 0 }, { rec.upgrades, rec.plain })
  end)
end)

describe("hixie-75 opening handshake", function()
  after_each(H.cleanup)

  it("answers the draft's example, whole, a byte at a time and in random chunks", function()
    for _, how in ipairs { "whole", "bytes", 4243 } do
      local s, rec = draft_server { "sample" }
      local c, crec = connect(s.port)
      write_pieces(c, pieces(head(REQ75), how))
      local h, rest = response(crec)
      assert.equal(RESP75, h)
      assert.equal("", rest)
      local ws = rec.sockets[1]
      assert.equal("hixie-75", ws.version)
      assert.equal("sample", ws.protocol)
      assert.equal("ws://example.com/demo", ws.url)
      c:_raw_write("\0hi\255")
      H.wait(function() return #rec.messages == 1 end, 5, "the frame")
      assert.same({ "hi" }, datas(rec))
    end
  end)

  it("sends no WebSocket-Protocol when none was chosen, and no origin without Origin", function()
    local s, rec = draft_server { "other" }
    local c, crec = connect(s.port)
    c:_raw_write(head(REQ75, { [5] = "" }))
    local h = response(crec)
    assert.equal("HTTP/1.1 101 Web Socket Protocol Handshake\r\n" ..
      "Upgrade: WebSocket\r\nConnection: Upgrade\r\n" ..
      "WebSocket-Location: ws://example.com/demo\r\n\r\n", h)
    assert.equal("hixie-75", rec.sockets[1].version)
  end)

  it("does not wait for key3: a frame right after the head is read", function()
    local s, rec = draft_server()
    local c, crec = connect(s.port)
    c:_raw_write(head(REQ75) .. "\0early\255")
    response(crec)
    H.wait(function() return #rec.messages == 1 end, 5, "the frame")
    assert.same({ "early" }, datas(rec))
  end)
end)

describe("drafts and versions", function()
  after_each(H.cleanup)

  it("reports hixie-76, hixie-75 and, for RFC clients, hybi-13", function()
    local s, rec = draft_server()
    open76(s, rec)
    open75(s, rec)
    local ws, crec = H.client("ws://127.0.0.1:" .. s.port .. "/")
    H.wait(function() return crec.opens == 1 or #crec.closes > 0 end, 5, "the RFC client")
    H.wait(function() return #rec.sockets == 3 end, 5, "the third socket")
    assert.same({ "hixie-76", "hixie-75", "hybi-13" },
      { rec.sockets[1].version, rec.sockets[2].version, rec.sockets[3].version })
  end)

  it("answers draft requests 426 with listen{ drafts = false }, and RFC ones still 101", function()
    local s, rec = draft_server(nil, nil, { drafts = false })
    for _, req in ipairs { head(REQ76) .. KEY3, head(REQ75) } do
      local resp = refused(s.port, req)
      assert.truthy(resp:find("^HTTP/1.1 426 "), resp)
      assert.truthy(resp:find("\r\nSec%-WebSocket%-Version: 13\r\n"), resp)
    end
    assert.same({ 0, 0 }, { rec.upgrades, rec.plain })
    local c, crec = H.raw_upgraded(s.port)
    assert.truthy(crec.head:find("^HTTP/1.1 101 Switching Protocols\r\n"))
    assert.equal("hybi-13", rec.sockets[1].version)
  end)
end)

describe("hixie framing", function()
  after_each(H.cleanup)

  for _, v in ipairs { 76, 75 } do
    it("-" .. v .. ": delivers 0x00 .. 0xFF text frames, whole, bytewise and in chunks", function()
      local wire = "\0hello\255\0\255\0h\195\169llo \226\130\172\240\159\152\128\255\0" ..
        string.rep("x", 300) .. "\255"
      local want = { "hello", "", "h\195\169llo \226\130\172\240\159\152\128", string.rep("x", 300) }
      for _, how in ipairs { "whole", "bytes", 31337, 4 } do
        local s, rec = draft_server()
        local c = OPEN[v](s, rec)
        write_pieces(c, pieces(wire, how, 5))
        H.wait(function() return #rec.messages == #want or #rec.closes > 0 end, 5, "the frames")
        assert.same(want, datas(rec))
        for _, e in ipairs(rec.messages) do assert.falsy(e.binary) end
        assert.same({}, rec.closes)
      end
    end)

    it("-" .. v .. ": discards frames with a high-bit type and a length, and other types", function()
      local s, rec = draft_server()
      local c = OPEN[v](s, rec)
      c:_raw_write("\128\2ab\0one\255" ..            -- type 0x80, length 2
        "\128\129\0" .. string.rep("\255", 128) .. -- length 128 in two 7-bit groups
        "\200\3\0\255\0" ..                         -- sentinel bytes inside a length frame
        (v == 76 and "\255\5hello" or "") ..        -- 0xFF with a length is not the close
        "\1junk\255" ..                             -- a sentinel frame of another type
        "\0two\255")
      H.wait(function() return #rec.messages == 2 or #rec.closes > 0 end, 5, "the frames")
      quiet(30)
      assert.same({ "one", "two" }, datas(rec))
      assert.same({}, rec.closes)
    end)

    it("-" .. v .. ": drops the connection on invalid UTF-8 (1006)", function()
      for _, bad in ipairs { "\0ab\192\175\255", "\0\226\130\255", "\0\237\160\128\255" } do
        local s, rec = draft_server()
        local c, crec = OPEN[v](s, rec)
        c:_raw_write("\0good\255")
        H.wait(function() return #rec.messages == 1 end, 5, "the good frame")
        c:_raw_write(bad .. "\0never\255")
        H.wait(function() return #rec.closes == 1 and crec.closed end, 5, "the drop")
        assert.same({ "good" }, datas(rec))
        assert.same({ 1006, false }, { rec.closes[1].code, rec.closes[1].wasClean })
      end
    end)

    it("-" .. v .. ": bounds a frame by maxLength, ended or not", function()
      local s, rec = draft_server(nil, { maxLength = 16 })
      local c, crec = OPEN[v](s, rec)
      c:_raw_write("\0" .. string.rep("a", 16) .. "\255")
      H.wait(function() return #rec.messages == 1 or #rec.closes > 0 end, 5, "the frame at the limit")
      c:_raw_write("\0" .. string.rep("b", 17))         -- no 0xFF will come
      H.wait(function() return #rec.closes == 1 and crec.closed end, 5, "the drop")
      assert.same({ string.rep("a", 16) }, datas(rec))
      assert.same({ 1006, false }, { rec.closes[1].code, rec.closes[1].wasClean })
      -- A frame that never ends, a byte at a time, far past the limit: still dropped.
      c, crec = OPEN[v](s, rec)
      write_pieces(c, pieces("\0" .. string.rep("c", 40), "bytes"))
      H.wait(function() return #rec.closes == 2 and crec.closed end, 5, "the second drop")
      assert.equal(1006, rec.closes[2].code)
      -- A length frame announcing more than the limit (hixie.h: fails at its length byte).
      c, crec = OPEN[v](s, rec)
      c:_raw_write("\128\17")
      H.wait(function() return #rec.closes == 3 and crec.closed end, 5, "the third drop")
      assert.equal(1006, rec.closes[3].code)
      assert.equal(1, #rec.messages)
    end)

    it("-" .. v .. ": sends text as 0x00 .. 0xFF; binary and ping are not supported", function()
      local s, rec = draft_server()
      local c, crec, ws = OPEN[v](s, rec)
      assert.is_true(ws:send("h\195\169llo"))
      assert.is_true(ws:send(""))
      for _, call in ipairs {
        function() return ws:send("bin", "binary") end,
        function() return ws:send("bin", true) end,
        function() return ws:ping() end,
        function() return ws:ping("p") end,
      } do
        local ok, msg, name = call()
        assert.is_nil(ok)
        assert.is_string(msg)
        assert.equal("ENOTSUPPORTED", name)
      end
      assert.is_true(ws:send("z"))
      H.wait(function() return #crec.data >= 13 or crec.closed end, 5, "the frames")
      quiet(30)
      assert.equal("\0h\195\169llo\255\0\255\0z\255", crec.data)
      assert.equal(WebSocket.OPEN, ws.readyState)
      assert.same({}, rec.closes)
    end)

    it("-" .. v .. ": send() of text that is not UTF-8 raises, as on any socket, and sends nothing", function()
      local s, rec = draft_server()
      local c, crec, ws = OPEN[v](s, rec)
      local ok, err = pcall(ws.send, ws, "bad \192\175")
      assert.is_false(ok)
      assert.truthy(tostring(err):find("text only", 1, true))
      assert.is_true(ws:send("z"))
      H.wait(function() return #crec.data >= 3 or crec.closed end, 5, "the frame")
      assert.equal("\0z\255", crec.data)
    end)
  end

  it("broadcasts in each socket's own framing", function()
    local s, rec = draft_server()
    local c76, r76 = open76(s, rec)
    local c75, r75 = open75(s, rec)
    local c13, r13 = H.raw_upgraded(s.port)
    H.wait(function() return #rec.sockets == 3 end, 5, "three sockets")
    WebSocket.broadcast(rec.sockets, "to all")
    H.wait(function() return #r76.data >= 8 and #r75.data >= 8 and #r13.data >= 8 end, 5, "three copies")
    assert.equal("\0to all\255", r76.data)
    assert.equal("\0to all\255", r75.data)
    local f = H.parse_frames(r13.data)
    assert.same({ 1, "to all" }, { f[1].opcode, f[1].payload })
  end)
end)

describe("hixie closing", function()
  after_each(H.cleanup)

  it("-76: answers the client's 0xFF 0x00 and closes TCP (1000, clean)", function()
    local s, rec = draft_server()
    local c, crec, ws = open76(s, rec)
    c:_raw_write("\0last\255\255\0")
    H.wait(function() return crec.closed and #rec.closes == 1 end, 5, "the close")
    assert.same({ "last" }, datas(rec))
    assert.equal("\255\0", crec.data)
    assert.same({ 1000, true }, { rec.closes[1].code, rec.closes[1].wasClean })
    assert.equal(WebSocket.CLOSED, ws.readyState)
    local ok, _, name = ws:send("late")
    assert.same({ nil, "ECLOSED" }, { ok, name })
  end)

  it("-76: the closing handshake sent a byte at a time", function()
    local s, rec = draft_server()
    local c, crec = open76(s, rec)
    write_pieces(c, { "\255", "\0" })
    H.wait(function() return crec.closed and #rec.closes == 1 end, 5, "the close")
    assert.equal("\255\0", crec.data)
    assert.same({ 1000, true }, { rec.closes[1].code, rec.closes[1].wasClean })
  end)

  it("-76: close() sends 0xFF 0x00; a client that answers it is closed cleanly (1000)", function()
    local s, rec = draft_server()
    local c, crec, ws = open76(s, rec)
    ws:send("bye")
    ws:close()
    ws:close()                                          -- twice is fine
    H.wait(function() return crec.data:find("\255\0", 1, true) or crec.closed end, 5, "0xFF 0x00")
    assert.equal("\0bye\255\255\0", crec.data)
    if not crec.closed then c:_raw_write("\255\0") end -- as a -76 client answers
    H.wait(function() return crec.closed and #rec.closes == 1 end, 5, "the close")
    assert.equal("\0bye\255\255\0", crec.data)
    assert.same({ 1000, true }, { rec.closes[1].code, rec.closes[1].wasClean })
  end)

  it("-76: close() ends the connection even when the client never answers", function()
    local s, rec = draft_server(nil, { close_timeout = 0.3 })
    local c, crec, ws = open76(s, rec)
    ws:close()
    H.wait(function() return crec.closed and #rec.closes == 1 end, 5, "the close")
    assert.equal("\255\0", crec.data)
    assert.equal(1000, rec.closes[1].code)
  end)

  it("-76: a TCP drop without 0xFF 0x00 is 1006", function()
    local s, rec = draft_server()
    local c, crec = open76(s, rec)
    c:_raw_write("\0x\255")
    H.wait(function() return #rec.messages == 1 end, 5, "the frame")
    c:close()
    H.wait(function() return #rec.closes == 1 end, 5, "onclose")
    assert.same({ 1006, false }, { rec.closes[1].code, rec.closes[1].wasClean })
  end)

  it("-75: the client closing TCP is the close (1000)", function()
    local s, rec = draft_server()
    local c, crec = open75(s, rec)
    c:_raw_write("\0x\255")
    H.wait(function() return #rec.messages == 1 end, 5, "the frame")
    c:close()
    H.wait(function() return #rec.closes == 1 end, 5, "onclose")
    assert.equal(1000, rec.closes[1].code)
  end)

  it("-75: close() closes TCP without a closing frame (1000)", function()
    local s, rec = draft_server()
    local c, crec, ws = open75(s, rec)
    ws:send("bye")
    ws:close()
    H.wait(function() return crec.closed and #rec.closes == 1 end, 5, "the close")
    assert.equal("\0bye\255", crec.data)
    assert.equal(1000, rec.closes[1].code)
  end)
end)

describe("hixie over TLS", function()
  local D

  setup(function()
    D = os.tmpname()
    os.remove(D)
    local ok = os.execute("sh scripts/make_certs.sh " .. D .. " >/dev/null 2>&1")
    assert(ok == true or ok == 0, "make_certs.sh failed")
    D = D .. "/"
  end)

  teardown(function()
    if D then os.execute("rm -rf '" .. D .. "'") end
  end)

  after_each(H.cleanup)

  local function raw_tls(port)
    local c = H.track(assert(client.raw("127.0.0.1", port, { cafile = D .. "ca.pem" })))
    local rec = { data = "", opened = false, closed = false }
    c.onopen = function() rec.opened = true end
    c.ondata = function(e) rec.data = rec.data .. e.data end
    c.onclose = function() rec.closed = true end
    H.wait(function() return rec.opened or rec.closed end, 10, "TLS open")
    assert.is_true(rec.opened, "no TLS connection")
    return c, rec
  end

  local function tls_server()
    return draft_server({ "sample" }, nil, { tls = { cert = D .. "server.pem", key = D .. "server.key" } })
  end

  it("-76 over wss://: the location is wss://, frames and the close go through TLS", function()
    local s, rec = tls_server()
    local c, crec = raw_tls(s.port)
    write_pieces(c, pieces(head(REQ76) .. KEY3, 2718))
    local h, answer = response(crec, 16)
    assert.equal((RESP76:gsub("ws://", "wss://")), h)
    assert.equal(ANSWER, answer)
    local ws = rec.sockets[1]
    assert.equal("hixie-76", ws.version)
    assert.equal("wss://example.com/demo", ws.url)
    c:_raw_write("\0secret\255")
    H.wait(function() return #rec.messages == 1 end, 5, "the frame")
    assert.same({ "secret" }, datas(rec))
    ws:send("reply")
    H.wait(function() return crec.data == "\0reply\255" end, 5, "the reply")
    c:_raw_write("\255\0")
    H.wait(function() return crec.closed and #rec.closes == 1 end, 5, "the close")
    assert.equal("\0reply\255\255\0", crec.data)
    assert.same({ 1000, true }, { rec.closes[1].code, rec.closes[1].wasClean })
  end)

  it("-75 over wss://: WebSocket-Location is wss://", function()
    local s, rec = tls_server()
    local c, crec = raw_tls(s.port)
    c:_raw_write(head(REQ75))
    local h, rest = response(crec)
    assert.equal((RESP75:gsub("ws://", "wss://")), h)
    assert.equal("", rest)
    assert.equal("hixie-75", rec.sockets[1].version)
    c:_raw_write("\0over tls\255")
    H.wait(function() return #rec.messages == 1 end, 5, "the frame")
    assert.same({ "over tls" }, datas(rec))
  end)
end)
