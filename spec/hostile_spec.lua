-- Hostile peers and careless scripts (issue 8): a regression spec for each defect the
-- attack run found, and the limits and timeouts that are now on by default.
local H = require "helper"
local WebSocket = H.WebSocket

local F = H.frame

-- A client frame with an all-zero mask key: the payload goes as it is (a Lua XOR loop
-- over megabytes would be slow on Lua 5.1).
local function zframe(opcode, payload, fin)
  local n, b0 = #payload, (fin == false and 0 or 0x80) + opcode
  local hdr
  if n < 126 then
    hdr = string.char(b0, 0x80 + n)
  elseif n < 65536 then
    hdr = string.char(b0, 0x80 + 126, math.floor(n / 256), n % 256)
  else
    hdr = string.char(b0, 0x80 + 127, 0, 0, 0, 0, math.floor(n / 2 ^ 24) % 256,
      math.floor(n / 65536) % 256, math.floor(n / 256) % 256, n % 256)
  end
  return hdr .. "\0\0\0\0" .. payload
end

-- A server that accepts with options and runs setup(ws, rec) on each socket.
local function server_with(options, setup, listen)
  local s = H.server(listen)
  local rec = { sockets = {}, messages = {}, errors = {}, closes = {}, drains = 0 }
  s.onupgrade = function(req)
    local ws = H.track(WebSocket(req, nil, options))
    rec.sockets[#rec.sockets + 1] = ws
    ws.onmessage = function(e) rec.messages[#rec.messages + 1] = e.data end
    ws.onerror = function(e) rec.errors[#rec.errors + 1] = e end
    ws.onclose = function(e) rec.closes[#rec.closes + 1] = e end
    ws.ondrain = function() rec.drains = rec.drains + 1 end
    if setup then setup(ws, rec) end
  end
  return s, rec
end

-- The frames a raw peer has received so far.
local function frames_of(rec) return (H.parse_frames(rec.data)) end

local function close_frame(rec)
  for _, f in ipairs(frames_of(rec)) do
    if f.opcode == 8 then return f end
  end
end

describe("hostile peers", function()
  after_each(H.cleanup)

  it("delivers each message once when onmessage pauses and resumes inside itself", function()
    -- Five messages in one read; the first is resumed from a timer, the rest inside the
    -- handler. resume() there must not re-enter the parser that is delivering.
    local s, rec = server_with(nil, function(ws, rec)
      ws.onmessage = function(e)
        rec.messages[#rec.messages + 1] = e.data
        ws:pause()
        ws:send(e.data, "binary")
        if #rec.messages == 1 then
          WebSocket.setTimeout(function() ws:resume() end, 10)
        else
          ws:resume()
        end
      end
    end)
    local c, crec = H.raw_upgraded(s.port)
    local burst = {}
    for i = 1, 5 do burst[i] = F(2, "message " .. i) end
    c:_raw_write(table.concat(burst))
    H.wait(function() return #frames_of(crec) >= 5 end, 5, "five echoes")
    local t = false
    WebSocket.setTimeout(function() t = true end, 50)
    H.wait(function() return t end, 5, "a while for strays")
    assert.same({ "message 1", "message 2", "message 3", "message 4", "message 5" }, rec.messages)
    local f = frames_of(crec)
    assert.equal(5, #f)
    for i = 1, 5 do assert.equal("message " .. i, f[i].payload) end
  end)

  it("holds WebSocket.broadcast to each socket's max_buffered", function()
    local s, rec = server_with({ max_buffered = 1024 * 1024 })
    local c, crec = H.raw_upgraded(s.port)
    c:pause()                                 -- a subscriber that never reads
    H.wait(function() return #rec.sockets == 1 end, 5, "accept")
    local ws = rec.sockets[1]
    local chunk, most = string.rep("b", 256 * 1024), 0
    for _ = 1, 400 do                         -- 100 MiB if nothing stopped it
      if WebSocket.broadcast({ ws }, chunk, "binary") == 0 then break end
      most = math.max(most, ws.bufferedAmount)
      H.drain(1)
    end
    assert.is_true(most <= 1024 * 1024 + #chunk + 14, "queued " .. most)
    H.wait(function() return #rec.closes == 1 end, 5, "the non-reader dropped")
    assert.equal("EBACKPRESSURE", rec.errors[1].name)
    assert.equal(1006, rec.closes[1].code)
  end)

  it("with backpressure = \"error\", a refused send leaves the socket open", function()
    local s, rec = server_with({ max_buffered = 512 * 1024, backpressure = "error" })
    local c = H.raw_upgraded(s.port)
    c:pause()
    H.wait(function() return #rec.sockets == 1 end, 5, "accept")
    local ws, chunk, refused = rec.sockets[1], string.rep("b", 128 * 1024), nil
    for _ = 1, 400 do
      local ok, err, name = ws:send(chunk, "binary")
      if not ok then refused = { err, name }; break end
      H.drain(1)
    end
    assert.is_table(refused)
    assert.equal("EBACKPRESSURE", refused[2])
    assert.equal(WebSocket.OPEN, ws.readyState)
    assert.equal(0, #rec.errors)
  end)

  it("holds res:write to max_buffered", function()
    local s = H.server()
    local result, closed
    s.onrequest = function(req, res)
      local chunk = string.rep("r", 256 * 1024)
      res.onclose = function() closed = true end
      for _ = 1, 400 do
        local ok, err, name = res:write(chunk)
        if not ok then result = name; break end
      end
    end
    local c, crec = H.raw(s.port)
    H.wait(function() return crec.opened end, 5, "connect")
    c:pause()
    c:_raw_write("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    H.wait(function() return result end, 10, "a refused write")
    assert.equal("EBACKPRESSURE", result)
    H.wait(function() return closed end, 5, "the response closed")
  end)

  it("sends the protocol's close code even when onerror raises", function()
    local s, rec = server_with(nil, function(ws, rec)
      ws.onerror = function(e) rec.errors[#rec.errors + 1] = e; error("onerror raises") end
    end)
    local old = WebSocket.onhandlererror
    WebSocket.onhandlererror = function() end
    local c, crec = H.raw_upgraded(s.port)
    c:_raw_write(F(1, "x", { rsv = 0x40 }))
    H.wait(function() return close_frame(crec) and #rec.closes == 1 end, 5, "the close")
    WebSocket.onhandlererror = old
    assert.equal(1002, H.close_code(close_frame(crec).payload))
    assert.equal(1002, rec.closes[1].code)
    assert.equal("EPROTOCOL", rec.errors[1].name)
  end)

  it("answers 500, whole, when onupgrade raises before accepting", function()
    local s = H.server()
    s.onupgrade = function() error("no") end
    local old = WebSocket.onhandlererror
    WebSocket.onhandlererror = function() end
    local c, crec = H.raw(s.port)
    H.wait(function() return crec.opened end, 5, "connect")
    c:_raw_write(H.upgrade_request)
    H.wait(function() return crec.closed end, 5, "the answer")
    WebSocket.onhandlererror = old
    local head, body = crec.data:match("^(.-\r\n)\r\n(.*)$")
    assert.truthy(head:find("^HTTP/1.1 500 "))
    assert.equal(tonumber(head:match("Content%-Length: (%d+)")), #body)
    assert.equal("Internal Server Error\n", body)
  end)

  it("refuses an upgrade request with a body (400), accepts Content-Length: 0", function()
    local s = H.server()
    s.onupgrade = function(req) H.track(WebSocket(req)) end
    local base = H.upgrade_request:sub(1, -3)
    local cases = {
      { base .. "Content-Length: 5\r\n\r\nhello", "400" },
      { base .. "Content-Length: 0\r\nContent-Length: 0\r\n\r\n", "400" },
      { base .. "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", "400" },
      { base .. "Content-Length: 0\r\n\r\n", "101" },
    }
    for _, case in ipairs(cases) do
      local c, crec = H.raw(s.port)
      H.wait(function() return crec.opened end, 5, "connect")
      c:_raw_write(case[1])
      H.wait(function() return crec.data:find("\r\n\r\n", 1, true) end, 5, "the answer")
      assert.equal(case[2], crec.data:match("^HTTP/1.1 (%d+)"))
      c:terminate()
    end
  end)

  it("accepts a 4 MiB message in 65,537 fragments, both ways, by default", function()
    local piece = string.rep("abcdefgh", 8)          -- 64 bytes; then an empty last one
    local frames = {}
    for i = 1, 65536 do frames[i] = zframe(i == 1 and 1 or 0, piece, false) end
    frames[65537] = zframe(0, "", true)
    local wire = table.concat(frames)
    local s, rec = server_with()
    local c, crec = H.raw_upgraded(s.port)
    c:_raw_write(wire)
    H.wait(function() return #rec.messages == 1 or #rec.closes > 0 end, 20, "the message")
    assert.equal(4 * 1024 * 1024, #rec.messages[1])
    assert.equal(0, #rec.closes)
    -- And as a client: a server sends it in the same fragments, unmasked.
    local plain = {}
    for i = 1, 65536 do plain[i] = F(i == 1 and 2 or 0, piece, { mask = false, fin = false }) end
    plain[65537] = F(0, "", { mask = false })
    local hs = H.handshake_server(function(conn) conn:_raw_write(table.concat(plain)) end)
    local ws, wrec = H.client("ws://127.0.0.1:" .. hs.port .. "/")
    H.wait(function() return #wrec.messages == 1 or #wrec.closes > 0 end, 20, "the message")
    assert.equal(4 * 1024 * 1024, #wrec.messages[1].data)
    assert.is_true(wrec.messages[1].binary)
    ws:terminate()
  end)

  it("fails a client whose server chose an extension it never offered", function()
    local hs = H.handshake_server(nil, "Sec-WebSocket-Extensions: permessage-deflate\r\n")
    local ws, rec = H.client("ws://127.0.0.1:" .. hs.port .. "/")
    H.wait(function() return #rec.closes == 1 end, 5, "the failure")
    assert.equal(0, rec.opens)
    assert.equal(1006, rec.closes[1].code)
    assert.truthy(rec.errors[1]:find("Extensions", 1, true))
  end)

  it("checks every numeric option's range; math.huge is the one way to say none", function()
    local s = H.server()
    local bad = {
      { handshake_timeout = 4294968 }, { handshake_timeout = 4294967.296 },
      { max_headers = 65536 }, { max_headers = 1.5 }, { maxLength = 0 },
      { maxLength = -1 }, { ping = 0 }, { ping = 0 / 0 }, { max_buffered = "1" },
      { close_timeout = -1 }, { idle_timeout = 1e300 }, { max_head = 255 },
      { backpressure = "drop" },
    }
    for _, o in ipairs(bad) do
      assert.has_error(function() WebSocket.Client("ws://127.0.0.1:1/", nil, o) end)
    end
    for _, o in ipairs { { port = 65536 }, { max_headers = 65536 }, { backlog = 0 },
                         { handshake_timeout = 3e6 }, { max_memory = 0.5 } } do
      o.host = "127.0.0.1"
      assert.has_error(function() WebSocket.listen(o) end)
    end
    -- math.huge turns each limit off; the C core refuses what the Lua layer would not.
    local ws = WebSocket.Client("ws://127.0.0.1:" .. s.port .. "/", nil, {
      maxLength = math.huge, max_buffered = math.huge, max_fragments = math.huge,
      ping = math.huge, idle_timeout = math.huge, message_timeout = math.huge,
      send_timeout = math.huge, close_timeout = math.huge, handshake_timeout = math.huge,
      high_water = math.huge, pong_timeout = math.huge })
    H.track(ws)
    ws:terminate()
    local core = require "luaws.core"
    assert.has_error(function() core.listen { port = 0, max_head = math.huge } end)
    assert.has_error(function() core.listen { port = 0, max_memory = 2 ^ 64 } end)
  end)
end)

describe("default limits and timeouts", function()
  after_each(H.cleanup)

  it("pings a silent peer after idle_timeout and drops it after pong_timeout", function()
    local s, rec = server_with({ idle_timeout = 0.2, pong_timeout = 0.2 })
    local c, crec = H.raw_upgraded(s.port)
    H.wait(function() return crec.closed end, 5, "the drop")
    local f = frames_of(crec)
    assert.equal(9, f[1].opcode)              -- the ping came first
    assert.equal("ETIMEDOUT", rec.errors[1].name)
    assert.equal(1006, rec.closes[1].code)
  end)

  it("keeps a silent peer that answers its pings", function()
    local s, rec = server_with({ idle_timeout = 0.1, pong_timeout = 0.1 })
    local c, crec = H.raw_upgraded(s.port)
    local pings = 0
    local t = WebSocket.setInterval(function()
      local f = frames_of(crec)
      while #f > 0 do
        if f[1].opcode == 9 then pings = pings + 1; c:_raw_write(F(10, f[1].payload)) end
        table.remove(f, 1)
      end
      crec.data = ""
    end, 10)
    H.wait(function() return pings >= 3 or crec.closed end, 5, "three pings")
    WebSocket.clearInterval(t)
    assert.is_false(crec.closed)
    assert.equal(0, #rec.closes)
  end)

  it("closes with 1008 a message not finished within message_timeout", function()
    local s, rec = server_with({ message_timeout = 0.2 })
    local c, crec = H.raw_upgraded(s.port)
    c:_raw_write(F(2, string.rep("z", 1000)):sub(1, 100))   -- a tenth of a frame, then nothing
    H.wait(function() return close_frame(crec) end, 5, "the close frame")
    assert.equal(1008, H.close_code(close_frame(crec).payload))
    H.wait(function() return #rec.closes == 1 end, 5, "onclose")
    assert.equal("ETIMEDOUT", rec.errors[1].name)
    assert.equal(0, #rec.messages)
  end)

  it("drops a peer that takes none of its queued bytes within send_timeout", function()
    local s, rec = server_with({ send_timeout = 0.2 })
    local c = H.raw_upgraded(s.port)
    c:pause()
    H.wait(function() return #rec.sockets == 1 end, 5, "accept")
    assert.is_true(rec.sockets[1]:send(string.rep("q", 16 * 1024 * 1024), "binary"))
    H.wait(function() return #rec.closes == 1 end, 5, "the drop")
    assert.equal("ETIMEDOUT", rec.errors[1].name)
    assert.truthy(rec.errors[1].message:find("queued", 1, true))
  end)

  it("stops reading from a peer that does not read its echoes, and loses none", function()
    local s, rec = server_with({ high_water = 64 * 1024 }, function(ws, rec)
      ws.onmessage = function(e)
        rec.messages[#rec.messages + 1] = e.data
        ws:send(e.data, "binary")             -- the README's echo, return value ignored
      end
    end)
    local c, crec = H.raw_upgraded(s.port)
    c:pause()
    local msg = string.rep("e", 64 * 1024)
    local all = {}
    for i = 1, 200 do all[i] = zframe(2, msg) end
    c:_raw_write(table.concat(all))           -- 12.5 MiB, more than the kernel buffers
    local t = false
    WebSocket.setTimeout(function() t = true end, 300)
    H.wait(function() return t end, 5, "the server to stall")
    assert.is_true(#rec.messages < 200, "the server read on: " .. #rec.messages)
    c:resume()
    H.wait(function() return #frames_of(crec) >= 200 or crec.closed end, 20, "200 echoes")
    assert.equal(200, #frames_of(crec))
    assert.equal(200, #rec.messages)
    assert.equal(0, #rec.errors)
    assert.is_true(rec.drains >= 1)
  end)

  it("drops the peers holding the most when the server's max_memory is passed", function()
    local s, rec = server_with(nil, nil, { max_memory = 2 * 1024 * 1024 })
    local good, grec = H.client("ws://127.0.0.1:" .. s.port .. "/")
    H.wait(function() return grec.opens == 1 end, 5, "open")
    local c, crec = H.raw_upgraded(s.port)
    local big = zframe(2, string.rep("m", 8 * 1024 * 1024))
    c:_raw_write(big:sub(1, 3 * 1024 * 1024))   -- three eighths of it, then stall
    H.wait(function() return crec.closed end, 10, "the hog dropped")
    local cf = close_frame(crec)
    if cf then assert.equal(1013, H.close_code(cf.payload)) end
    assert.equal("EOVERLOAD", rec.errors[1].name)
    good:send("still here")
    H.wait(function() return #rec.messages == 1 end, 5, "the good client served")
    local st = WebSocket.stats()
    assert.is_true(st.connections >= 2)
    assert.is_true(st.buffered_in < 2 * 1024 * 1024)
  end)
end)
