-- permessage-deflate (RFC 7692), both roles: luaws against luaws, and against raw peers
-- that write handcrafted handshakes and frames and read luaws's compressed bytes with
-- a plain-Lua inflater (spec/rawdeflate.lua) that tells how far back each message
-- reached. The interop specs check the codec against Node's and Python's.
local H = require "helper"
local D = require "rawdeflate"
local WebSocket = H.WebSocket
local deflate = require "luaws.deflate"

local F = H.frame
local RSV1 = 0x40
local unpack = table.unpack or unpack

-- ---- data -----------------------------------------------------------------------

-- Incompressible bytes, the same for a seed on every interpreter (products stay below
-- 2^53, so doubles and integers agree).
local function noise(n, seed)
  local x, t, out = seed or 1, {}, {}
  for i = 1, n do
    x = (x * 69069 + 1) % 4294967296
    t[i] = math.floor(x / 16777216)
  end
  for i = 1, n, 4096 do out[#out + 1] = string.char(unpack(t, i, math.min(i + 4095, n))) end
  return table.concat(out)
end

-- Compressible ASCII text.
local function text(n, seed)
  local words = { "permessage", "deflate", "window", "context", "takeover", "luaws", "frame" }
  local t, len, i = {}, 0, seed or 0
  while len < n do
    i = i + 1
    t[#t + 1] = words[i % #words + 1] .. " " .. i .. " "
    len = len + #t[#t]
  end
  return table.concat(t):sub(1, n)
end

-- 2000 random bytes, 16 times: a compressor with a window of 2^N bytes can reach the
-- previous copy only when 2000 <= 2^N, so the longest distance it used shows its window.
local PROBE = noise(2000, 7):rep(16)

local samples_cache
-- Messages of every size class, each { data, kind }: empty, under, at and over the
-- 1024-byte threshold, UTF-8 text, incompressible binary, 300 KB text, 2 MiB binary.
local function samples()
  if not samples_cache then
    samples_cache = {
      { "", "text" }, { "x", "text" }, { text(1023), "text" }, { text(1024), "text" },
      { text(1025, 1), "binary" }, { "h\195\169llo " .. text(20000, 2), "text" },
      { noise(70000, 3), "binary" }, { text(300000, 5), "text" },
      { (noise(251, 9) .. text(4000, 4)):rep(500), "binary" },
    }
  end
  return samples_cache
end

-- ---- luaws peers -----------------------------------------------------------------

-- A server that accepts every upgrade with options (a table, or a function of the
-- request returning one), echoes what it gets unless rec.echo is false, and records
-- whole events.
local function serve(options, setup)
  local s = H.server()
  local rec = { sockets = {}, messages = {}, errors = {}, closes = {}, echo = true }
  s.onupgrade = function(req)
    local o = options
    if type(o) == "function" then o = o(req) end
    local ws = H.track(WebSocket(req, nil, o))
    rec.sockets[#rec.sockets + 1] = ws
    ws.onmessage = function(e)
      rec.messages[#rec.messages + 1] = e
      if rec.echo then ws:send(e.data, e.binary and "binary" or "text") end
    end
    ws.onerror = function(e) rec.errors[#rec.errors + 1] = e end
    ws.onclose = function(e) rec.closes[#rec.closes + 1] = e end
    if setup then setup(ws, rec) end
  end
  return s, rec
end

-- A client that records whole events (H.client keeps only error messages).
local function connect(port, options, path)
  local ws = H.track(assert(WebSocket.Client("ws://127.0.0.1:" .. port .. (path or "/"), nil,
    options)))
  local rec = { messages = {}, errors = {}, closes = {}, opens = 0 }
  ws.onopen = function() rec.opens = rec.opens + 1 end
  ws.onmessage = function(e) rec.messages[#rec.messages + 1] = e end
  ws.onerror = function(e) rec.errors[#rec.errors + 1] = e end
  ws.onclose = function(e) rec.closes[#rec.closes + 1] = e end
  return ws, rec
end

local function opened(rec)
  H.wait(function() return rec.opens == 1 or #rec.closes > 0 end, 5, "open")
  local why = rec.errors[1] and rec.errors[1].message or ""
  assert.equal(1, rec.opens, "no open: " .. why)
end

-- A luaws server with extension config scfg and a luaws client with ccfg (nil: the
-- defaults), connected.
local function pair(scfg, ccfg, sopts, copts)
  sopts, copts = sopts or {}, copts or {}
  sopts.extensions = { scfg or deflate }
  copts.extensions = { ccfg or deflate }
  local s, srec = serve(sopts)
  local ws, rec = connect(s.port, copts)
  opened(rec)
  return ws, rec, srec
end

-- Sends each { data, kind } and checks its echo byte for byte and kind.
local function echo_all(ws, rec, list)
  for i, m in ipairs(list) do
    local got = H.roundtrip(ws, rec, m[1], m[2], 20)
    assert.truthy(got, "no echo of message " .. i .. ": " ..
      (rec.closes[1] and tostring(rec.closes[1].code) or "?"))
    H.assert_bytes(m[1], got.data, "echo of message " .. i)
    assert.equal(m[2] == "binary", got.binary == true)
  end
end

-- ---- raw peers -------------------------------------------------------------------

-- The upgrade request with one Sec-WebSocket-Extensions line per argument.
local function offer_request(...)
  local lines = {}
  for i = 1, select("#", ...) do
    lines[#lines + 1] = "Sec-WebSocket-Extensions: " .. select(i, ...) .. "\r\n"
  end
  return H.upgrade_request:sub(1, -3) .. table.concat(lines) .. "\r\n"
end

-- The value of a head's Sec-WebSocket-Extensions header (nil if none; two fail).
local function extensions_of(head)
  local v
  for line in head:gmatch("[^\r\n]+") do
    local name, value = line:match("^([^:]+):%s*(.-)%s*$")
    if name and name:lower() == "sec-websocket-extensions" then
      assert.is_nil(v, "two Sec-WebSocket-Extensions headers")
      v = value
    end
  end
  return v
end

-- A raw client of port offering the given extension lines; returns conn, rec, and the
-- response's Sec-WebSocket-Extensions value.
local function raw_client(port, ...)
  local c, rec = H.raw_upgraded(port, offer_request(...))
  assert.truthy(rec.head:find("^HTTP/1.1 101"), rec.head)
  return c, rec, extensions_of(rec.head)
end

-- The data messages in what a raw peer received: each { opcode, rsv (of its first
-- frame), payload, frames, later_rsv (any RSV on its continuations) }; then the control
-- frames.
local function messages_of(data)
  local msgs, controls, cur = {}, {}, nil
  for _, f in ipairs((H.parse_frames(data))) do
    if f.opcode >= 8 then
      controls[#controls + 1] = f
    else
      if f.opcode ~= 0 then
        cur = { opcode = f.opcode, rsv = f.rsv, parts = {}, frames = 0, later_rsv = 0 }
      elseif f.rsv ~= 0 then
        cur.later_rsv = f.rsv
      end
      cur.parts[#cur.parts + 1] = f.payload
      cur.frames = cur.frames + 1
      if f.fin then
        cur.payload = table.concat(cur.parts)
        msgs[#msgs + 1] = cur
        cur = nil
      end
    end
  end
  return msgs, controls
end

-- Waits until rec.data holds n data messages; returns them.
local function wait_messages(rec, n, what)
  H.wait(function() return H.count_frames(rec.data) >= n or rec.closed end, 10,
    what or (n .. " messages"))
  local msgs = messages_of(rec.data)
  assert.equal(n, #msgs)
  return msgs
end

-- The first close frame in data, or nil.
local function close_frame(data)
  local _, controls = messages_of(data)
  for _, f in ipairs(controls) do
    if f.opcode == 8 then return f end
  end
end

local SERVER_DEFLATE = { extensions = { deflate } }

-- A raw server that answers the handshake with `ext` as its Sec-WebSocket-Extensions
-- (nil: none) and runs on_open(conn, rec); a luaws client with options connects.
-- Returns client, client rec, srv (srv.conn, srv.rec, srv.head once connected).
local function fake_server(ext, options, on_open)
  local srv = {}
  local s = H.handshake_server(function(conn, rec, head)
    srv.conn, srv.rec, srv.head = conn, rec, head
    if on_open then on_open(conn, rec) end
  end, ext and ("Sec-WebSocket-Extensions: " .. ext .. "\r\n") or nil)
  local ws, rec = connect(s.port, options)
  return ws, rec, srv
end

local function client_deflate(cfg) return { extensions = { cfg or deflate } } end

-- Server frames (unmasked), compressed or not.
local function S(opcode, payload, o)
  o = o or {}
  o.mask = false
  return F(opcode, payload, o)
end

-- ---- luaws against luaws -----------------------------------------------------------

describe("permessage-deflate between luaws peers", function()
  after_each(H.cleanup)

  it("echoes text and binary of every size, both ways, with the defaults", function()
    local ws, rec, srec = pair()
    assert.equal("permessage-deflate", ws.extensions)
    assert.equal("permessage-deflate", srec.sockets[1].extensions)
    echo_all(ws, rec, samples())
    -- The same again: each direction's context carries over from message to message.
    echo_all(ws, rec, samples())
    assert.same({}, rec.errors)
    assert.same({}, srec.errors)
    assert.equal(2 * #samples(), #srec.messages)
  end)

  -- Each parameter, set on the server's side or the client's; the response both sides
  -- report; then every size both ways, twice (context across messages).
  local cases = {
    { "server_no_context_takeover, set by the server", { serverNoContextTakeover = true }, nil,
      "permessage-deflate; server_no_context_takeover" },
    { "server_no_context_takeover, asked by the client", nil, { serverNoContextTakeover = true },
      "permessage-deflate; server_no_context_takeover" },
    { "client_no_context_takeover, imposed by the server", { clientNoContextTakeover = true }, nil,
      "permessage-deflate; client_no_context_takeover" },
    { "client_no_context_takeover, offered by the client", nil, { clientNoContextTakeover = true },
      "permessage-deflate; client_no_context_takeover" },
    { "server_max_window_bits 9, set by the server", { serverMaxWindowBits = 9 }, nil,
      "permessage-deflate; server_max_window_bits=9" },
    { "server_max_window_bits 8 (Huffman-only)", { serverMaxWindowBits = 8 }, nil,
      "permessage-deflate; server_max_window_bits=8" },
    { "server_max_window_bits 10, asked by the client", nil, { serverMaxWindowBits = 10 },
      "permessage-deflate; server_max_window_bits=10" },
    { "server_max_window_bits: the smaller of the two", { serverMaxWindowBits = 11 },
      { serverMaxWindowBits = 13 }, "permessage-deflate; server_max_window_bits=11" },
    { "client_max_window_bits 10, set by the server", { clientMaxWindowBits = 10 }, nil,
      "permessage-deflate; client_max_window_bits=10" },
    { "client_max_window_bits 9, offered by the client", nil, { clientMaxWindowBits = 9 },
      "permessage-deflate; client_max_window_bits=9" },
    { "client_max_window_bits 8 (Huffman-only)", { clientMaxWindowBits = 12 },
      { clientMaxWindowBits = 8 }, "permessage-deflate; client_max_window_bits=8" },
    { "client_max_window_bits not offered: the server may not set it",
      { clientMaxWindowBits = 10 }, { clientMaxWindowBits = false }, "permessage-deflate" },
    { "every parameter at once", { serverNoContextTakeover = true, clientNoContextTakeover = true,
      serverMaxWindowBits = 11, clientMaxWindowBits = 12 }, nil,
      "permessage-deflate; server_no_context_takeover; client_no_context_takeover; " ..
      "server_max_window_bits=11; client_max_window_bits=12" },
    { "threshold 0: every message compressed", { threshold = 0 }, { threshold = 0 },
      "permessage-deflate" },
    { "level 0, memLevel 1", { level = 0, memLevel = 1 }, { level = 0, memLevel = 1 },
      "permessage-deflate" },
    { "level 9, memLevel 9", { level = 9, memLevel = 9 }, { level = 9, memLevel = 9 },
      "permessage-deflate" },
    { "strategies filtered and huffman_only", { strategy = "filtered" },
      { strategy = "huffman_only" }, "permessage-deflate" },
    { "strategies rle and fixed", { strategy = "rle", threshold = 0 },
      { strategy = "fixed", threshold = 0 }, "permessage-deflate" },
  }
  for _, case in ipairs(cases) do
    it("echoes every size with " .. case[1], function()
      local ws, rec, srec = pair(case[2] and deflate.configure(case[2]),
        case[3] and deflate.configure(case[3]))
      assert.equal(case[4], ws.extensions)
      assert.equal(case[4], srec.sockets[1].extensions)
      echo_all(ws, rec, samples())
      echo_all(ws, rec, samples())
      assert.same({}, rec.errors)
      assert.same({}, srec.errors)
    end)
  end

  it("echoes a long run of similar messages with context takeover both ways", function()
    local ws, rec = pair()
    local list = {}
    for i = 1, 60 do list[i] = { text(3000 + i * 7, i % 5), i % 2 == 0 and "binary" or "text" } end
    echo_all(ws, rec, list)
  end)

  it("keeps ws.extensions after the socket closed, as browsers do (and ws.protocol)", function()
    local ws, rec, srec = pair(deflate.configure { serverNoContextTakeover = true })
    local expect = "permessage-deflate; server_no_context_takeover"
    ws:close(1000)
    H.wait(function() return #rec.closes == 1 and #srec.closes == 1 end, 5, "both closes")
    assert.equal(expect, ws.extensions)
    assert.equal(expect, srec.sockets[1].extensions)
  end)

  it("agrees on no extension when only one side has it", function()
    local s, srec = serve()            -- no extensions
    local ws, rec = connect(s.port, client_deflate())
    opened(rec)
    assert.equal("", ws.extensions)
    assert.equal("", srec.sockets[1].extensions)
    echo_all(ws, rec, { samples()[4], samples()[8] })

    local s2, srec2 = serve(SERVER_DEFLATE)
    local ws2, rec2 = connect(s2.port)  -- offers nothing
    opened(rec2)
    assert.equal("", ws2.extensions)
    assert.equal("", srec2.sockets[1].extensions)
    echo_all(ws2, rec2, { samples()[4], samples()[8] })
  end)
end)

-- ---- the server's side on the wire --------------------------------------------------

describe("permessage-deflate server, raw client", function()
  after_each(H.cleanup)

  it("reads the RFC 7692 7.2.3 examples as 'Hello'", function()
    local s, srec = serve(SERVER_DEFLATE)
    local c, crec, ext = raw_client(s.port, "permessage-deflate")
    assert.equal("permessage-deflate", ext)
    local hello = "\242\72\205\201\201\7\0"
    c:_raw_write(table.concat {
      F(1, hello, { rsv = RSV1 }),                                         -- 7.2.3.1
      F(1, "\242\72\205", { rsv = RSV1, fin = false }) .. F(0, "\201\201\7\0"),  -- fragmented
      F(1, hello, { rsv = RSV1 }) .. F(1, "\242\0\17\0\0", { rsv = RSV1 }), -- 7.2.3.2 takeover
      F(1, "\0\5\0\250\255Hello\0", { rsv = RSV1 }),                      -- 7.2.3.3 stored
      F(1, "\243\72\205\201\201\7\0\0", { rsv = RSV1 }),                  -- 7.2.3.4 BFINAL
      F(1, hello, { rsv = RSV1 }),                                         -- and on after it
      F(1, "\242\72\5\0\0\0\255\255\202\201\201\7\0", { rsv = RSV1 }),    -- 7.2.3.5 two blocks
      F(1, "Hello"),                                                       -- uncompressed
    })
    H.wait(function() return #srec.messages == 9 or #srec.closes > 0 end, 5, "nine messages")
    for i = 1, 9 do
      assert.same({ "Hello", false }, { srec.messages[i].data, srec.messages[i].binary })
    end
    -- The echoes are under the threshold: sent as they are, RSV1 clear.
    local msgs = wait_messages(crec, 9)
    for i = 1, 9 do assert.same({ 1, 0, "Hello" }, { msgs[i].opcode, msgs[i].rsv, msgs[i].payload }) end
    assert.same({}, srec.errors)
  end)

  it("leaves uncompressed messages out of the window (RFC 7692 6)", function()
    -- "Hello", then "XXXXX" as it is, then 7.2.3.2's copy of the 5 bytes before: those
    -- are "Hello" only if the uncompressed message is not in the window.
    local s, srec = serve(SERVER_DEFLATE)
    local c = raw_client(s.port, "permessage-deflate")
    c:_raw_write(F(1, "\242\72\205\201\201\7\0", { rsv = RSV1 }) .. F(1, "XXXXX") ..
      F(1, "\242\0\17\0\0", { rsv = RSV1 }))
    H.wait(function() return #srec.messages == 3 or #srec.closes > 0 end, 5, "three messages")
    assert.same({ "Hello", "XXXXX", "Hello" },
      { srec.messages[1].data, srec.messages[2].data, srec.messages[3].data })
  end)

  it("reads a compressed message in fragments of any size, with pings between", function()
    local s, srec = serve(SERVER_DEFLATE)
    local c = raw_client(s.port, "permessage-deflate")
    local body = text(40000, 3)
    -- Copies 1000 bytes back, a sync flush (RFC 7692 7.2.3.5), then stored blocks.
    local z = D.fixed({ body:sub(1, 1000), { 258, 1000, 20 } }) .. "\0\0\255\255" ..
      D.stored(body:sub(6161))
    local expect = body:sub(1, 1000) .. (body:sub(1, 1000)):rep(6):sub(1, 5160) .. body:sub(6161)
    -- 1-byte, 7-byte and 1000-byte fragments, and an empty last one.
    for _, size in ipairs { 1, 7, 1000 } do
      local t, i = {}, 1
      while i <= #z do
        t[#t + 1] = F(i == 1 and 1 or 0, z:sub(i, i + size - 1), { rsv = i == 1 and RSV1 or 0, fin = false })
        if #t % 50 == 0 then t[#t + 1] = F(9, "ping " .. #t) end
        i = i + size
      end
      t[#t + 1] = F(0, "")
      c:_raw_write(table.concat(t))
    end
    H.wait(function() return #srec.messages == 3 or #srec.closes > 0 end, 10, "three messages")
    for i = 1, 3 do H.assert_bytes(expect, srec.messages[i].data, "message " .. i) end
  end)

  it("reads a compressed text whose UTF-8 characters straddle the inflate steps", function()
    -- 1 + 2k: every 2-byte character crosses each even offset, 16384 among them.
    local s, srec = serve(SERVER_DEFLATE)
    local c = raw_client(s.port, "permessage-deflate")
    local t = "a" .. ("\195\169"):rep(30000) .. ("\226\130\172"):rep(7000)
    c:_raw_write(F(1, D.stored(t), { rsv = RSV1 }))
    H.wait(function() return #srec.messages == 1 or #srec.closes > 0 end, 5, "the message")
    H.assert_bytes(t, srec.messages[1].data, "text")
  end)

  it("sends messages under the threshold as they are, from it on compressed", function()
    local s = serve(SERVER_DEFLATE)
    local c, crec = raw_client(s.port, "permessage-deflate")
    local small, at = text(1023), text(1024)
    c:_raw_write(F(1, small) .. F(1, at) .. F(2, "") .. F(2, noise(5000, 1)))
    local msgs = wait_messages(crec, 4)
    -- The reader keeps one window, which the uncompressed messages are not part of.
    local inf = D.inflater()
    assert.same({ 1, 0, small }, { msgs[1].opcode, msgs[1].rsv, msgs[1].payload })
    assert.same({ 1, 4 }, { msgs[2].opcode, msgs[2].rsv })
    assert.equal(at, (inf:message(msgs[2].payload)))
    assert.same({ 2, 0, "" }, { msgs[3].opcode, msgs[3].rsv, msgs[3].payload })
    assert.same({ 2, 4 }, { msgs[4].opcode, msgs[4].rsv })
    assert.equal(noise(5000, 1), (inf:message(msgs[4].payload)))
    for _, m in ipairs(msgs) do assert.equal(1, m.frames) end
  end)

  it("keeps its compression context across messages (context takeover)", function()
    local s = serve(SERVER_DEFLATE)
    local c, crec, ext = raw_client(s.port, "permessage-deflate")
    assert.equal("permessage-deflate", ext)
    local m = noise(20000, 4)
    c:_raw_write(F(2, m) .. F(2, m) .. F(2, m))
    local msgs = wait_messages(crec, 3)
    local inf = D.inflater()
    local first, i1 = inf:message(msgs[1].payload)
    assert.equal(m, first)
    assert.is_false(i1.before_start)
    for k = 2, 3 do
      local again, info = inf:message(msgs[k].payload)
      assert.equal(m, again)
      assert.is_true(info.before_start, "message " .. k .. " did not use the earlier one")
      assert.is_true(#msgs[k].payload < 1000, #msgs[k].payload .. " bytes")
    end
  end)

  local function no_takeover(options, offer, expect)
    local s, srec = serve(options)
    local c, crec, ext = raw_client(s.port, offer)
    assert.equal(expect, ext)
    assert.equal(expect, srec.sockets[1].extensions)
    local m = noise(20000, 5)
    c:_raw_write(F(2, m) .. F(2, m) .. F(2, m))
    local msgs = wait_messages(crec, 3)
    local inf = D.inflater()           -- a receiver that keeps its window anyway
    for k = 1, 3 do
      local got, info = inf:message(msgs[k].payload)
      assert.equal(m, got)
      assert.is_false(info.before_start, "message " .. k .. " reached into an earlier one")
      assert.equal(msgs[1].payload, msgs[k].payload)
    end
  end

  it("compresses each message on its own when asked for server_no_context_takeover", function()
    no_takeover(SERVER_DEFLATE, "permessage-deflate; server_no_context_takeover",
      "permessage-deflate; server_no_context_takeover")
  end)

  it("imposes server_no_context_takeover when configured to", function()
    no_takeover({ extensions = { deflate.configure { serverNoContextTakeover = true } } },
      "permessage-deflate", "permessage-deflate; server_no_context_takeover")
  end)

  it("grants client_no_context_takeover, and imposes it when configured to", function()
    for _, case in ipairs {
      { SERVER_DEFLATE, "permessage-deflate; client_no_context_takeover" },
      { { extensions = { deflate.configure { clientNoContextTakeover = true } } }, "permessage-deflate" },
    } do
      local s, srec = serve(case[1])
      local c, crec, ext = raw_client(s.port, case[2])
      assert.equal("permessage-deflate; client_no_context_takeover", ext)
      -- A client that obeys sends each message on its own: every one reads.
      local m = text(3000, 6)
      local z = D.stored(m)
      c:_raw_write(F(1, z, { rsv = RSV1 }) .. F(1, z, { rsv = RSV1 }) .. F(1, z, { rsv = RSV1 }))
      H.wait(function() return #srec.messages == 3 or #srec.closes > 0 end, 5, "three messages")
      for k = 1, 3 do assert.equal(m, srec.messages[k].data) end
      -- The server's own context still carries over: its echoes may refer back.
      local msgs = wait_messages(crec, 3)
      local inf = D.inflater()
      for k = 1, 3 do assert.equal(m, (inf:message(msgs[k].payload))) end
    end
  end)

  -- The server's window: what it answers, and how far back its compressor reaches.
  local function window(options, offer, expect, bits)
    local s, srec = serve(options)
    local c, crec, ext = raw_client(s.port, offer)
    assert.equal(expect, ext)
    assert.equal(expect, srec.sockets[1].extensions)
    c:_raw_write(F(2, PROBE) .. F(2, PROBE))
    local msgs = wait_messages(crec, 2)
    local inf = D.inflater()
    for k = 1, 2 do
      assert.equal(4, msgs[k].rsv)
      local got, info = inf:message(msgs[k].payload)
      H.assert_bytes(PROBE, got, "probe " .. k)
      assert.is_true(info.max_distance <= 2 ^ bits,
        ("window %d bits, distance %d"):format(bits, info.max_distance))
      if bits == 15 then assert.is_true(info.max_distance >= 2000) end
    end
  end

  for _, bits in ipairs { 8, 9, 10, 11, 12, 13, 14, 15 } do
    it("compresses within server_max_window_bits=" .. bits .. " when the client asks", function()
      local v = "server_max_window_bits=" .. bits
      window(SERVER_DEFLATE, "permessage-deflate; " .. v, "permessage-deflate; " .. v, bits)
    end)
  end

  it("limits its window unasked, or to the smaller of the two", function()
    local cfg = { extensions = { deflate.configure { serverMaxWindowBits = 10 } } }
    window(cfg, "permessage-deflate", "permessage-deflate; server_max_window_bits=10", 10)
    window(cfg, "permessage-deflate; server_max_window_bits=12",
      "permessage-deflate; server_max_window_bits=10", 10)
    window(cfg, "permessage-deflate; server_max_window_bits=9",
      "permessage-deflate; server_max_window_bits=9", 9)
  end)

  it("answers client_max_window_bits only when offered, never above the offer", function()
    local cfg10 = { extensions = { deflate.configure { clientMaxWindowBits = 10 } } }
    for _, case in ipairs {
      { SERVER_DEFLATE, "permessage-deflate; client_max_window_bits", "permessage-deflate" },
      { SERVER_DEFLATE, "permessage-deflate; client_max_window_bits=12",
        "permessage-deflate; client_max_window_bits=12" },
      { cfg10, "permessage-deflate; client_max_window_bits",
        "permessage-deflate; client_max_window_bits=10" },
      { cfg10, "permessage-deflate; client_max_window_bits=9",
        "permessage-deflate; client_max_window_bits=9" },
      { cfg10, "permessage-deflate; client_max_window_bits=15",
        "permessage-deflate; client_max_window_bits=10" },
      -- 7.1.2.2: not offered, so not in the response, whatever the server would like.
      { cfg10, "permessage-deflate", "permessage-deflate" },
    } do
      local s, srec = serve(case[1])
      local c, crec, ext = raw_client(s.port, case[2])
      assert.equal(case[3], ext, case[2])
      assert.equal(case[3], srec.sockets[1].extensions)
      -- A client within the agreed window is read.
      local m = text(5000, 8)
      c:_raw_write(F(1, D.fixed({ m:sub(1, 300), { 100, 300, 3 }, m:sub(301) }), { rsv = RSV1 }))
      H.wait(function() return #srec.messages == 1 or #srec.closes > 0 end, 5, "the message")
      assert.equal(m:sub(1, 300) .. m:sub(1, 300) .. m:sub(301), srec.messages[1].data)
    end
  end)
end)

describe("permessage-deflate negotiation, server side (RFC 7692 5, 7)", function()
  after_each(H.cleanup)

  local function answer(options, ...)
    local s, srec = serve(options)
    local c, crec, ext = raw_client(s.port, ...)
    local server_ext = srec.sockets[1] and srec.sockets[1].extensions
    c:terminate()
    return ext, server_ext
  end

  it("takes the first acceptable offer and declines the rest", function()
    local cases = {
      { { "permessage-deflate; server_max_window_bits=10, permessage-deflate" },
        "permessage-deflate; server_max_window_bits=10" },
      { { "permessage-deflate, permessage-deflate; server_max_window_bits=10" },
        "permessage-deflate" },
      { { "permessage-deflate; foo, permessage-deflate; server_no_context_takeover" },
        "permessage-deflate; server_no_context_takeover" },
      -- Offers in two header lines are one list, in order.
      { { "permessage-deflate; server_max_window_bits=16",
          "permessage-deflate; client_no_context_takeover, permessage-deflate" },
        "permessage-deflate; client_no_context_takeover" },
      -- Other extensions are declined; parameters and quoted values (RFC 6455 9.1).
      { { "x-foo; a=1, permessage-deflate; server_max_window_bits=\"11\"" },
        "permessage-deflate; server_max_window_bits=11" },
      { { "x-webkit-deflate-frame" }, nil },
    }
    for _, case in ipairs(cases) do
      local ext, server_ext = answer(SERVER_DEFLATE, unpack(case[1]))
      assert.equal(case[2], ext, table.concat(case[1], " | "))
      assert.equal(case[2] or "", server_ext)
    end
  end)

  it("declines offers that break RFC 7692's rules", function()
    local bad = {
      "permessage-deflate; foo", "permessage-deflate; foo=1",
      "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
      "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
      "permessage-deflate; server_max_window_bits=10; server_max_window_bits=10",
      "permessage-deflate; client_max_window_bits; client_max_window_bits",
      "permessage-deflate; client_max_window_bits=10; client_max_window_bits",
      "permessage-deflate; server_max_window_bits=08",
      "permessage-deflate; server_max_window_bits=7",
      "permessage-deflate; server_max_window_bits=16",
      "permessage-deflate; server_max_window_bits=1a",
      "permessage-deflate; server_max_window_bits",
      "permessage-deflate; client_max_window_bits=08",
      "permessage-deflate; client_max_window_bits=7",
      "permessage-deflate; client_max_window_bits=16",
      "permessage-deflate; server_no_context_takeover=1",
      "permessage-deflate; client_no_context_takeover=true",
    }
    for _, offer in ipairs(bad) do
      local ext, server_ext = answer(SERVER_DEFLATE, offer)
      assert.is_nil(ext, offer)
      assert.equal("", server_ext)
      -- ... and takes the acceptable offer after it.
      ext = answer(SERVER_DEFLATE, offer .. ", permessage-deflate; client_no_context_takeover")
      assert.equal("permessage-deflate; client_no_context_takeover", ext, offer)
    end
  end)

  it("declines every offer when the server has no extensions", function()
    local ext, server_ext = answer(nil, "permessage-deflate; client_max_window_bits")
    assert.is_nil(ext)
    assert.equal("", server_ext)
  end)
end)

-- ---- the client's side on the wire --------------------------------------------------

describe("permessage-deflate client, raw server", function()
  after_each(H.cleanup)

  it("offers what it is configured to", function()
    for _, case in ipairs {
      { nil, "permessage-deflate; client_max_window_bits" },
      { { clientMaxWindowBits = false }, "permessage-deflate" },
      { { clientMaxWindowBits = 15 }, "permessage-deflate; client_max_window_bits" },
      { { clientMaxWindowBits = 10 }, "permessage-deflate; client_max_window_bits=10" },
      { { serverMaxWindowBits = 9 }, "permessage-deflate; server_max_window_bits=9; client_max_window_bits" },
      { { serverNoContextTakeover = true, clientNoContextTakeover = true, clientMaxWindowBits = false },
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover" },
    } do
      local ws, rec, srv = fake_server(nil, client_deflate(case[1] and deflate.configure(case[1])))
      H.wait(function() return srv.head ~= nil end, 5, "the request")
      assert.equal(case[2], extensions_of(srv.head))
      opened(rec)
      assert.equal("", ws.extensions)     -- the server took none
      ws:terminate()
    end
    -- None configured, none offered.
    local ws, rec, srv = fake_server(nil, nil)
    H.wait(function() return srv.head ~= nil end, 5, "the request")
    assert.is_nil(extensions_of(srv.head))
  end)

  it("reads the RFC 7692 7.2.3 examples as 'Hello'", function()
    local hello = "\242\72\205\201\201\7\0"
    local ws, rec = fake_server("permessage-deflate", client_deflate(), function(conn)
      conn:_raw_write(table.concat {
        S(1, hello, { rsv = RSV1 }),
        S(1, "\242\72\205", { rsv = RSV1, fin = false }) .. S(0, "\201\201\7\0"),
        S(1, hello, { rsv = RSV1 }) .. S(1, "\242\0\17\0\0", { rsv = RSV1 }),
        S(1, "\0\5\0\250\255Hello\0", { rsv = RSV1 }),
        S(1, "\243\72\205\201\201\7\0\0", { rsv = RSV1 }),
        S(1, hello, { rsv = RSV1 }),
        S(1, "\242\72\5\0\0\0\255\255\202\201\201\7\0", { rsv = RSV1 }),
        S(2, "Hello"),
      })
    end)
    H.wait(function() return #rec.messages == 9 or #rec.closes > 0 end, 5, "nine messages")
    assert.equal("permessage-deflate", ws.extensions)
    for i = 1, 8 do assert.same({ "Hello", false }, { rec.messages[i].data, rec.messages[i].binary }) end
    assert.same({ "Hello", true }, { rec.messages[9].data, rec.messages[9].binary })
  end)

  it("leaves uncompressed messages out of the window (RFC 7692 6)", function()
    local ws, rec = fake_server("permessage-deflate", client_deflate(), function(conn)
      conn:_raw_write(S(1, "\242\72\205\201\201\7\0", { rsv = RSV1 }) .. S(1, "XXXXX") ..
        S(1, "\242\0\17\0\0", { rsv = RSV1 }))
    end)
    H.wait(function() return #rec.messages == 3 or #rec.closes > 0 end, 5, "three messages")
    assert.same({ "Hello", "XXXXX", "Hello" },
      { rec.messages[1].data, rec.messages[2].data, rec.messages[3].data })
  end)

  it("reads a compressed message in fragments, with a ping between", function()
    local body = text(30000, 9)
    local z = D.stored(body)
    local ws, rec = fake_server("permessage-deflate", client_deflate(), function(conn)
      local t = {}
      for i = 1, #z, 999 do
        t[#t + 1] = S(i == 1 and 2 or 0, z:sub(i, i + 998), { rsv = i == 1 and RSV1 or 0, fin = false })
        if i == 1 then t[#t + 1] = S(9, "between") end
      end
      t[#t + 1] = S(0, "")
      conn:_raw_write(table.concat(t))
    end)
    H.wait(function() return #rec.messages == 1 or #rec.closes > 0 end, 5, "the message")
    H.assert_bytes(body, rec.messages[1].data, "message")
    assert.is_true(rec.messages[1].binary)
  end)

  it("masks and compresses from the threshold on, keeping its context", function()
    local ws, rec, srv = fake_server("permessage-deflate", client_deflate())
    opened(rec)
    local small, at, m = text(1023), text(1024, 1), noise(20000, 10)
    ws:send(small); ws:send(at); ws:send(m, "binary"); ws:send(m, "binary")
    local msgs = wait_messages(srv.rec, 4)
    local frames = H.parse_frames(srv.rec.data)
    for _, f in ipairs(frames) do assert.is_true(f.masked) end
    assert.same({ 1, 0, small }, { msgs[1].opcode, msgs[1].rsv, msgs[1].payload })
    local inf = D.inflater()
    assert.same({ 1, 4 }, { msgs[2].opcode, msgs[2].rsv })
    assert.equal(at, (inf:message(msgs[2].payload)))
    assert.same({ 2, 4 }, { msgs[3].opcode, msgs[3].rsv })
    assert.equal(m, (inf:message(msgs[3].payload)))
    local again, info = inf:message(msgs[4].payload)
    assert.equal(m, again)
    assert.is_true(info.before_start, "the second copy did not refer to the first")
  end)

  it("compresses each message on its own under client_no_context_takeover", function()
    for _, case in ipairs {
      { nil },                                                     -- imposed by the server
      { deflate.configure { clientNoContextTakeover = true } },   -- offered
    } do
      local response = "permessage-deflate; client_no_context_takeover"
      local ws, rec, srv = fake_server(response, client_deflate(case[1]))
      opened(rec)
      assert.equal(response, ws.extensions)
      local m = noise(20000, 11)
      for _ = 1, 3 do ws:send(m, "binary") end
      local msgs = wait_messages(srv.rec, 3)
      local inf = D.inflater()
      for k = 1, 3 do
        local got, info = inf:message(msgs[k].payload)
        assert.equal(m, got)
        assert.is_false(info.before_start, "message " .. k .. " reached into an earlier one")
      end
      ws:terminate()
    end
  end)

  it("reads a server that keeps no context (server_no_context_takeover)", function()
    local m = text(4000, 12)
    local z = D.fixed({ m })
    local response = "permessage-deflate; server_no_context_takeover"
    local ws, rec = fake_server(response, client_deflate(deflate.configure {
      serverNoContextTakeover = true }), function(conn)
      conn:_raw_write(S(1, z, { rsv = RSV1 }) .. S(1, z, { rsv = RSV1 }))
    end)
    H.wait(function() return #rec.messages == 2 or #rec.closes > 0 end, 5, "two messages")
    assert.equal(response, ws.extensions)
    assert.equal(m, rec.messages[1].data)
    assert.equal(m, rec.messages[2].data)
  end)

  for _, bits in ipairs { 8, 9, 10, 12, 15 } do
    it("compresses within client_max_window_bits=" .. bits .. " from the server", function()
      local response = "permessage-deflate; client_max_window_bits=" .. bits
      local ws, rec, srv = fake_server(response, client_deflate())
      opened(rec)
      assert.equal(response, ws.extensions)
      ws:send(PROBE, "binary"); ws:send(PROBE, "binary")
      local msgs = wait_messages(srv.rec, 2)
      local inf = D.inflater()
      for k = 1, 2 do
        local got, info = inf:message(msgs[k].payload)
        H.assert_bytes(PROBE, got, "probe " .. k)
        assert.is_true(info.max_distance <= 2 ^ bits,
          ("window %d bits, distance %d"):format(bits, info.max_distance))
        if bits == 15 then assert.is_true(info.max_distance >= 2000) end
      end
    end)
  end

  it("accepts the responses its offer allows", function()
    for _, case in ipairs {
      { nil, "permessage-deflate; server_no_context_takeover" },
      { nil, "permessage-deflate; client_no_context_takeover" },
      { nil, "permessage-deflate; server_max_window_bits=12" },
      { nil, "permessage-deflate; client_max_window_bits=9" },
      { { serverMaxWindowBits = 10 }, "permessage-deflate; server_max_window_bits=10" },
      { { serverMaxWindowBits = 10 }, "permessage-deflate; server_max_window_bits=8" },
      { { clientMaxWindowBits = 11 }, "permessage-deflate; client_max_window_bits=11" },
      { { clientMaxWindowBits = 11 }, "permessage-deflate; client_max_window_bits=9" },
      { { clientMaxWindowBits = 11 }, "permessage-deflate" },
      { { serverNoContextTakeover = true }, "permessage-deflate; server_no_context_takeover" },
    } do
      local m = text(3000, 13)
      local ws, rec = fake_server(case[2], client_deflate(case[1] and deflate.configure(case[1])),
        function(conn) conn:_raw_write(S(1, D.stored(m), { rsv = RSV1 })) end)
      H.wait(function() return #rec.messages == 1 or #rec.closes > 0 end, 5, "the message")
      assert.equal(case[2], ws.extensions)
      assert.equal(m, rec.messages[1].data)
      ws:terminate()
    end
  end)

  it("fails the connection on a response its offer did not allow", function()
    local cases = {
      { nil, "permessage-deflate; foo" },
      { nil, "permessage-deflate; foo=1" },
      { nil, "permessage-deflate; server_no_context_takeover; server_no_context_takeover" },
      { nil, "permessage-deflate; client_max_window_bits=10; client_max_window_bits=10" },
      { nil, "permessage-deflate; server_no_context_takeover=1" },
      { nil, "permessage-deflate; client_no_context_takeover=1" },
      { { clientMaxWindowBits = false }, "permessage-deflate; client_max_window_bits=10" },
      { nil, "permessage-deflate; client_max_window_bits" },      -- a response needs a value
      { { clientMaxWindowBits = 9 }, "permessage-deflate; client_max_window_bits=10" },
      { { serverMaxWindowBits = 10 }, "permessage-deflate; server_max_window_bits=11" },
      { { serverMaxWindowBits = 10 }, "permessage-deflate" },     -- asked for, not granted
      { { serverNoContextTakeover = true }, "permessage-deflate" },
      { nil, "permessage-deflate; server_max_window_bits" },
      { nil, "permessage-deflate; server_max_window_bits=16" },
      { nil, "permessage-deflate; server_max_window_bits=7" },
      { nil, "permessage-deflate; server_max_window_bits=08" },
      { nil, "permessage-deflate; client_max_window_bits=16" },
      { nil, "permessage-deflate; client_max_window_bits=7" },
      { nil, "x-webkit-deflate-frame" },
      { nil, "permessage-deflate, permessage-deflate" },
      { nil, "permessage-deflate, x-foo" },
    }
    for _, case in ipairs(cases) do
      local ws, rec = fake_server(case[2], client_deflate(case[1] and deflate.configure(case[1])))
      H.wait(function() return #rec.closes == 1 end, 5, "the failure")
      assert.equal(0, rec.opens, case[2])
      assert.equal(1, #rec.errors, case[2])
      assert.equal("EEXTENSION", rec.errors[1].name, case[2])
      assert.same({ 1006, false }, { rec.closes[1].code, rec.closes[1].wasClean })
      assert.equal(WebSocket.CLOSED, ws.readyState)
    end
  end)

  it("fails with EHANDSHAKE when it offered no extension", function()
    local ws, rec = fake_server("permessage-deflate", nil)
    H.wait(function() return #rec.closes == 1 end, 5, "the failure")
    assert.equal(0, rec.opens)
    assert.equal("EHANDSHAKE", rec.errors[1].name)
    assert.equal(1006, rec.closes[1].code)
  end)
end)

-- ---- hostile peers ----------------------------------------------------------------

describe("permessage-deflate, hostile peers", function()
  after_each(H.cleanup)

  -- Server role: a raw client (offering deflate unless offer is false) sends bytes; the
  -- close code that comes back, the server's onerror name and onclose code.
  local function server_fails(bytes, code, name, options, offer)
    local s, srec = serve(options or SERVER_DEFLATE)
    local c, crec
    if offer == false then c, crec = raw_client(s.port) else c, crec = raw_client(s.port, "permessage-deflate") end
    c:_raw_write(bytes)
    H.wait(function() return close_frame(crec.data) and #srec.closes == 1 end, 10, "the close")
    assert.equal(code, H.close_code(close_frame(crec.data).payload))
    assert.equal(code, srec.closes[1].code)
    assert.equal(name, srec.errors[1] and srec.errors[1].name)
    assert.equal(0, #srec.messages)
    c:terminate()
    return srec
  end

  -- Client role: a raw server answering "permessage-deflate" sends bytes.
  local function client_fails(bytes, code, name, options)
    local ws, rec, srv = fake_server("permessage-deflate", options or client_deflate(),
      function(conn) conn:_raw_write(bytes) end)
    H.wait(function() return srv.rec and close_frame(srv.rec.data) end, 10, "the client's close")
    assert.equal(code, H.close_code(close_frame(srv.rec.data).payload))
    srv.conn:close()
    H.wait(function() return #rec.closes == 1 end, 5, "onclose")
    assert.equal(code, rec.closes[1].code)
    assert.equal(name, rec.errors[1] and rec.errors[1].name)
    assert.equal(0, #rec.messages)
  end

  local hello = "\242\72\205\201\201\7\0"

  it("fails RSV1 on a control frame with 1002, both roles", function()
    server_fails(F(9, "x", { rsv = RSV1 }), 1002, "EPROTOCOL")
    server_fails(F(8, "\3\232", { rsv = RSV1 }), 1002, "EPROTOCOL")
    client_fails(S(9, "x", { rsv = RSV1 }), 1002, "EPROTOCOL")
  end)

  it("fails RSV1 on a continuation frame with 1002, both roles", function()
    server_fails(F(1, "\242\72\205", { rsv = RSV1, fin = false }) ..
      F(0, "\201\201\7\0", { rsv = RSV1 }), 1002, "EPROTOCOL")
    server_fails(F(1, "He", { fin = false }) .. F(0, "llo", { rsv = RSV1 }), 1002, "EPROTOCOL")
    client_fails(S(1, "\242\72\205", { rsv = RSV1, fin = false }) ..
      S(0, "\201\201\7\0", { rsv = RSV1 }), 1002, "EPROTOCOL")
  end)

  it("fails RSV1 when deflate was not negotiated, and RSV2/RSV3 when it was", function()
    server_fails(F(1, hello, { rsv = RSV1 }), 1002, "EPROTOCOL", nil, false)
    server_fails(F(1, hello, { rsv = RSV1 }), 1002, "EPROTOCOL", { extensions = {} })
    server_fails(F(1, hello, { rsv = 0x20 }), 1002, "EPROTOCOL")
    server_fails(F(1, hello, { rsv = 0x10 }), 1002, "EPROTOCOL")
    client_fails(S(1, hello, { rsv = 0x20 }), 1002, "EPROTOCOL")
    -- A client that did not offer it.
    local ws, rec, srv = fake_server(nil, nil, function(conn)
      conn:_raw_write(S(1, hello, { rsv = RSV1 }))
    end)
    H.wait(function() return srv.rec and close_frame(srv.rec.data) end, 5, "the close")
    assert.equal(1002, H.close_code(close_frame(srv.rec.data).payload))
  end)

  it("fails corrupt compressed data with 1007, both roles", function()
    server_fails(F(1, "\255\255\255", { rsv = RSV1 }), 1007, "EINFLATE")   -- block type 3
    server_fails(F(2, "\0\5\0\0\0Hello\0", { rsv = RSV1 }), 1007, "EINFLATE")  -- bad NLEN
    -- Corrupt in the second fragment, after a good start.
    server_fails(F(2, "\242\72\205", { rsv = RSV1, fin = false }) .. F(0, "\255\255\255\255"),
      1007, "EINFLATE")
    -- A reference before the start of the stream.
    server_fails(F(1, D.fixed({ "ab", { 10, 100 } }), { rsv = RSV1 }), 1007, "EINFLATE")
    client_fails(S(1, "\255\255\255", { rsv = RSV1 }), 1007, "EINFLATE")
  end)

  it("fails compressed text that inflates to invalid UTF-8 with 1007, both roles", function()
    server_fails(F(1, D.stored("ok \192\128"), { rsv = RSV1 }), 1007, "EUTF8")
    server_fails(F(1, D.stored(text(20000) .. "\237\160\128"), { rsv = RSV1 }), 1007, "EUTF8")
    -- Truncated at the end of the message.
    server_fails(F(1, D.stored("caf\195"), { rsv = RSV1 }), 1007, "EUTF8")
    client_fails(S(1, D.stored("\255"), { rsv = RSV1 }), 1007, "EUTF8")
  end)

  -- 10,320,001 zeros in 65 KB of fixed-Huffman codes (a literal, then 40,000 copies of
  -- the 258 bytes before).
  local bomb_cache
  local function bomb()
    bomb_cache = bomb_cache or D.fixed({ "\0", { 258, 1, 40000 } })
    return bomb_cache
  end

  it("stops a decompression bomb at maxLength with 1009, memory bounded", function()
    local MiB = 1024 * 1024
    local peak = 0
    local t = WebSocket.setInterval(function()
      local st = WebSocket.stats()
      local sum = 0
      for k, v in pairs(st) do if k ~= "connections" and type(v) == "number" then sum = sum + v end end
      if sum > peak then peak = sum end
    end, 1)
    finally(function() WebSocket.clearInterval(t) end)
    local frame = F(2, bomb(), { rsv = RSV1 })
    collectgarbage()
    local lua_before = collectgarbage("count")
    local srec = server_fails(frame, 1009, "ETOOBIG",
      { extensions = { deflate }, maxLength = MiB })
    assert.is_true(peak < 2 * MiB, "peak buffered " .. peak)
    assert.is_true(collectgarbage("count") - lua_before < 4 * 1024, "Lua heap grew")
    assert.equal(0, #srec.messages)
    -- Sent in fragments, the same.
    local z, t2 = bomb(), {}
    for i = 1, #z, 4096 do t2[#t2 + 1] = F(i == 1 and 2 or 0, z:sub(i, i + 4095), { rsv = i == 1 and RSV1 or 0, fin = false }) end
    t2[#t2 + 1] = F(0, "")
    server_fails(table.concat(t2), 1009, "ETOOBIG", { extensions = { deflate }, maxLength = MiB })
  end)

  it("stops a decompression bomb at a client's maxLength with 1009", function()
    local o = client_deflate()
    o.maxLength = 1024 * 1024
    client_fails(S(2, bomb(), { rsv = RSV1 }), 1009, "ETOOBIG", o)
  end)

  it("delivers a message that inflates to exactly maxLength", function()
    -- 100,000 bytes of a 1000-byte period in a few hundred bytes of codes (the limit
    -- is on what the message inflates to, not only on its frames).
    local period = text(1000, 14)
    local m = period:rep(100)
    local items = { period, { 258, 1000, 383 }, { 186, 1000 } }
    local z = D.fixed(items)
    items[4] = "x"
    local z1 = D.fixed(items)
    local s, srec = serve({ extensions = { deflate }, maxLength = #m })
    local c = raw_client(s.port, "permessage-deflate")
    c:_raw_write(F(1, z, { rsv = RSV1 }) .. F(1, z1, { rsv = RSV1 }))
    H.wait(function() return #srec.closes == 1 end, 5, "the close")
    assert.equal(1, #srec.messages)
    assert.equal(m, srec.messages[1].data)
    assert.equal(1009, srec.closes[1].code)
  end)
end)

-- ---- the module -------------------------------------------------------------------

describe("luaws.deflate", function()
  after_each(H.cleanup)

  it("raises on unknown fields and bad values", function()
    local bad = {
      { level = 10 }, { level = -2 }, { level = 1.5 }, { level = "9" },
      { memLevel = 0 }, { memLevel = 10 },
      { strategy = "fast" }, { strategy = 1 },
      { serverMaxWindowBits = 7 }, { serverMaxWindowBits = 16 }, { serverMaxWindowBits = false },
      { clientMaxWindowBits = 7 }, { clientMaxWindowBits = 16 }, { clientMaxWindowBits = true },
      { clientMaxWindowBits = 9.5 },
      { serverNoContextTakeover = "yes" }, { clientNoContextTakeover = 1 },
      { threshold = -1 }, { threshold = "0" }, { threshold = 0 / 0 },
      { windowBits = 15 }, { [1] = true },
    }
    for _, o in ipairs(bad) do
      assert.has_error(function() deflate.configure(o) end)
    end
    assert.has_error(function() deflate.configure("level=1") end)
    local cfg = deflate.configure { level = 1 }
    assert.has_error(function() cfg.configure { memLevel = 0 } end)
  end)

  it("makes copies: configuring leaves the original as it was", function()
    local all = deflate.configure { threshold = 0 }
    local nct = all.configure { serverNoContextTakeover = true }
    assert.are_not.equal(deflate, all)
    assert.are_not.equal(all, nct)
    for _, case in ipairs {
      { deflate, nil, 0, "permessage-deflate" },     -- threshold 1024: sent as they are
      { all, nil, 4, "permessage-deflate" },         -- threshold 0: compressed, "" too
      { nct, nil, 4, "permessage-deflate; server_no_context_takeover" },
    } do
      local s = serve({ extensions = { case[1] } })
      local c, crec, ext = raw_client(s.port, "permessage-deflate")
      assert.equal(case[4], ext)
      c:_raw_write(F(1, "hi") .. F(2, ""))
      local msgs = wait_messages(crec, 2)
      for k, m in ipairs { "hi", "" } do
        assert.equal(case[3], msgs[k].rsv)
        assert.equal(m, case[3] == 4 and D.inflate(msgs[k].payload) or msgs[k].payload)
      end
      c:terminate()
    end
  end)
end)

-- ---- broadcast --------------------------------------------------------------------

describe("WebSocket.broadcast to deflate sockets", function()
  after_each(H.cleanup)

  it("delivers every message to sockets with and without context takeover, or none", function()
    local per_path = {
      ["/nct"] = { extensions = { deflate.configure { serverNoContextTakeover = true } } },
      ["/nct9"] = { extensions = { deflate.configure { serverNoContextTakeover = true,
                                                       serverMaxWindowBits = 9 } } },
      ["/ctx"] = { extensions = { deflate } },
      ["/plain"] = {},
    }
    local s, srec = serve(function(req) return per_path[req.url] end)
    srec.echo = false
    local clients = {}
    for _, path in ipairs { "/nct", "/nct", "/nct9", "/ctx", "/ctx", "/plain" } do
      local ws, rec = connect(s.port, client_deflate(), path)
      opened(rec)
      clients[#clients + 1] = { ws = ws, rec = rec, path = path }
    end
    -- Raw subscribers, to read the bytes themselves.
    local raws = {}
    for _, path in ipairs { "/nct", "/ctx", "/plain" } do
      local req = offer_request("permessage-deflate"):gsub("GET /chat", "GET " .. path)
      local c, crec = H.raw_upgraded(s.port, req)
      assert.truthy(crec.head:find("^HTTP/1.1 101"), crec.head)
      raws[#raws + 1] = { c = c, rec = crec, path = path }
    end
    H.wait(function() return #srec.sockets == 9 end, 5, "nine sockets")
    local list = { { text(50000, 1), "text" }, { text(50000, 1), "text" },
                   { noise(30000, 2), "binary" }, { "small", "text" },
                   { text(50000, 3), "text" }, { PROBE, "binary" } }
    for _, m in ipairs(list) do
      assert.equal(9, WebSocket.broadcast(srec.sockets, m[1], m[2]))
    end
    for _, cl in ipairs(clients) do
      H.wait(function() return #cl.rec.messages == #list or #cl.rec.closes > 0 end, 10,
        "broadcasts at " .. cl.path)
      for i, m in ipairs(list) do
        H.assert_bytes(m[1], cl.rec.messages[i].data, cl.path .. " message " .. i)
        assert.equal(m[2] == "binary", cl.rec.messages[i].binary == true)
      end
    end
    for _, r in ipairs(raws) do
      local msgs = wait_messages(r.rec, #list)
      local inf = D.inflater()
      for i, m in ipairs(list) do
        local expect_rsv = (r.path ~= "/plain" and #m[1] >= 1024) and 4 or 0
        assert.equal(expect_rsv, msgs[i].rsv, r.path .. " message " .. i)
        if expect_rsv == 4 then
          local got, info = inf:message(msgs[i].payload)
          H.assert_bytes(m[1], got, r.path .. " message " .. i)
          if r.path == "/nct" then assert.is_false(info.before_start) end
        else
          H.assert_bytes(m[1], msgs[i].payload, r.path .. " message " .. i)
        end
      end
    end
    assert.same({}, srec.errors)
  end)
end)
