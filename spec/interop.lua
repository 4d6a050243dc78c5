-- The interop specs, shared by the peers: run(PEER) defines both directions against one
-- independent implementation (see interop_node_spec.lua, interop_python_spec.lua).
-- The peers are separate processes started with H.spawn; the luaws loop runs while we
-- wait for their output, never blocked on them.
local H = require "helper"

-- env: the calling spec file's environment, where busted put describe, it, assert.
return function(PEER, env)
  local describe, it, after_each, assert = env.describe, env.it, env.after_each, env.assert
  local BIG = 16 * 1024 * 1024
  -- sha256 of the peers' 16 MiB message, byte i = i % 251.
  local BIG_SHA256 = "287507f403176f1f5b22b9a4d9cb49f7d7f88ac19e406b5ae87ce109564846bd"
  local BIG_SECONDS = 30

  local big_data
  local function big_message()
    if not big_data then
      local period = {}
      for i = 0, 250 do period[#period + 1] = string.char(i) end
      big_data = table.concat(period):rep(math.ceil(BIG / 251)):sub(1, BIG)
    end
    return big_data
  end

  local function bytes_0_255()
    local t = {}
    for i = 0, 255 do t[#t + 1] = string.char(i) end
    return table.concat(t)
  end

  local assert_bytes = H.assert_bytes

  local find_event = H.peer_event

  -- ---- permessage-deflate (PEER.deflate: the cases) ----------------------------------

  local json = require "dkjson"
  local deflate = require "luaws.deflate"

  -- The extension list for a luaws socket: luaws.deflate configured with cfg (nil: as it is).
  local function deflate_options(cfg)
    return { extensions = { cfg and deflate.configure(cfg) or deflate } }
  end

  -- The peer's setting as its PEER_DEFLATE environment variable.
  local function deflate_env(setting)
    return ("PEER_DEFLATE='%s'"):format(json.encode(setting))
  end

  -- An extension value with each element's parameters sorted: peers list them in their
  -- own order.
  local function canon(value)
    local out = {}
    for element in (value or ""):gmatch("[^,]+") do
      local parts = {}
      for part in element:gmatch("[^;]+") do parts[#parts + 1] = part:match("^%s*(.-)%s*$") end
      local name = table.remove(parts, 1)
      table.sort(parts)
      table.insert(parts, 1, name)
      out[#out + 1] = table.concat(parts, "; ")
    end
    return table.concat(out, ", ")
  end

  -- What the peers echo under deflate (as spec/peers/sized_messages.js makes them):
  -- { data, binary } pairs from empty to 1 MiB, text and binary in turn.
  local sized_cache
  local function sized_messages()
    if sized_cache then return sized_cache end
    sized_cache = {}
    for i, n in ipairs { 0, 1, 125, 126, 1023, 1024, 1025, 4096, 65535, 65536, 300000, 1048579 } do
      if i % 2 == 1 then
        local parts, k, total = {}, 0, 0
        while total < n do
          parts[#parts + 1] = ("permessage-deflate %d window %d "):format(k, k % 7)
          total = total + #parts[#parts]
          k = k + 1
        end
        sized_cache[i] = { table.concat(parts):sub(1, n), false }
      else
        local b, x, chunks = {}, n, {}
        for j = 0, n - 1 do
          x = (x * 69069 + 1) % 4294967296
          b[#b + 1] = j % 512 < 256 and math.floor(x / 16777216) or j % 251
          if #b == 4096 then chunks[#chunks + 1] = string.char((table.unpack or unpack)(b)); b = {} end
        end
        chunks[#chunks + 1] = string.char((table.unpack or unpack)(b))
        sized_cache[i] = { table.concat(chunks), true }
      end
    end
    return sized_cache
  end

  -- Starts a peer command; the sanitizer runtime preloaded for luaws is not the peer's.
  local function spawn_peer(cmd, env)
    return H.spawn(("exec env -u LD_PRELOAD %s %s"):format(env or "", cmd))
  end

  describe("luaws server, " .. PEER.name .. " client", function()
    after_each(H.cleanup)

    -- The peer's fixed script: text, binary 0..255, 16 MiB binary, a text message in three
    -- frames, ping "p1", close(4000, "bye"); it checks each echo byte for byte. opts:
    -- protocols (luaws's), offer (the peer's, a shell word list), on_socket(ws, srec),
    -- options (luaws's socket options), env (more of the peer's environment).
    local function run_peer_client(opts)
      opts = opts or {}
      local s, srec = H.echo_server(opts.protocols or { "a", "b" }, opts.options)
      local opened = {}
      local onupgrade = s.onupgrade
      s.onupgrade = function(req)
        onupgrade(req)
        local ws = srec.sockets[#srec.sockets]
        ws.onopen = function()
          opened[#opened + 1] = ws.protocol
          srec.open_extensions = ws.extensions
        end
        if opts.on_socket then opts.on_socket(ws, srec) end
      end
      local url = ("ws://127.0.0.1:%d/interop"):format(s.port)
      local seconds = BIG_SECONDS + 30
      local p = spawn_peer(("%s %s %s"):format(PEER.client, url, opts.offer or "c b a"),
        ("PEER_TIMEOUT=%d %s"):format(seconds * H.timeout_scale, opts.env or ""))
      p:wait_for('"event": ?"summary"[^\n]*\n', seconds + 10)
      if #srec.sockets > 0 then   -- else the peer never connected: its summary says why
        H.wait(function() return #srec.closes > 0 end, 10, "server-side onclose")
      end
      return find_event(p, "summary"), srec, opened, p
    end

    it("runs the peer's whole script, every echo byte for byte", function()
      local summary, srec, opened, p = run_peer_client()
      assert.is_nil(summary.error, summary.error)
      assert.is_true(summary.ok, p:output())

      -- What the peer saw.
      assert.is_true(summary.text)
      assert.is_true(summary.binary)
      assert.is_true(summary.big)
      assert.equal(BIG, summary.big_length)
      assert.equal(BIG_SHA256, summary.big_sha256)
      assert.is_true(summary.fragmented)
      assert.is_true(summary.pong)
      assert.equal(4000, summary.close_code)
      assert.equal("bye", summary.close_reason)

      -- What luaws saw: four whole messages, the three-frame one as one message.
      assert.equal(1, #srec.sockets)
      assert.equal(4, #srec.messages)
      local m = srec.messages
      assert.same({ "hello", false }, { m[1].data, m[1].binary })
      assert_bytes(bytes_0_255(), m[2].data, "binary message")
      assert.is_true(m[2].binary)
      assert_bytes(big_message(), m[3].data, "16 MiB message")
      assert.is_true(m[3].binary)
      assert.same({ "Hello, world", false }, { m[4].data, m[4].binary })

      assert.equal(1, #srec.closes)
      local c = srec.closes[1]
      assert.same({ 4000, "bye", true }, { c.code, c.reason, c.wasClean })
      assert.same({}, srec.errors)
    end)

    it("negotiates the client's first supported subprotocol on both sides", function()
      -- The peer offers "c, b, a"; luaws supports a and b: "b" comes first in the offer.
      local summary, _, opened = run_peer_client()
      assert.is_true(summary.ok)
      assert.equal("b", summary.protocol)
      assert.same({ "b" }, opened)
    end)

    it("agrees on no subprotocol when the client offers none", function()
      local summary, _, opened = run_peer_client({ offer = "" })
      assert.is_true(summary.ok)
      assert.equal(PEER.no_protocol, summary.protocol)
      assert.same({ "" }, opened)
    end)

    it("closes with its code and reason (server-initiated)", function()
      local summary, srec = run_peer_client({
        on_socket = function(ws, rec)
          ws.onmessage = function(e)
            rec.messages[#rec.messages + 1] = e
            ws:close(4002, "server bye")
          end
        end,
      })
      assert.is_false(summary.ok)   -- the script stops at its first step: closed
      assert.same({ 4002, "server bye" }, { summary.close_code, summary.close_reason })
      assert.equal(1, #srec.messages)
      local c = srec.closes[1]
      assert.same({ 4002, "server bye", true }, { c.code, c.reason, c.wasClean })
    end)

    it("keeps ws.protocol after the socket closed, as browsers do", function()
      local _, srec = run_peer_client()
      assert.equal("b", srec.sockets[1].protocol)
      assert.equal("hybi-13", srec.sockets[1].version)
    end)

    -- permessage-deflate: the peer's whole script and every size of sized_messages,
    -- compressed both ways; both sides report the same agreed parameters.
    for _, case in ipairs(PEER.deflate and PEER.deflate.client or {}) do
      it("runs the script with permessage-deflate: " .. case.name, function()
        local summary, srec, _, p = run_peer_client({
          options = deflate_options(case.luaws), env = deflate_env(case.peer) })
        assert.is_nil(summary.error, summary.error)
        assert.is_true(summary.ok, p:output())
        assert.is_true(summary.sizes)
        assert.equal(canon(case.expect), canon(summary.extensions))
        assert.equal(case.expect, srec.open_extensions)
        local m = srec.messages
        assert.equal(4 + #sized_messages(), #m)
        assert.equal("hello", m[1].data)
        assert_bytes(big_message(), m[3].data, "16 MiB message")
        for i, sm in ipairs(sized_messages()) do
          assert_bytes(sm[1], m[4 + i].data, "sized message " .. i)
          assert.equal(sm[2], m[4 + i].binary == true)
        end
        assert.same({ 4000, "bye", true },
          { srec.closes[1].code, srec.closes[1].reason, srec.closes[1].wasClean })
        assert.same({}, srec.errors)
      end)
    end
  end)

  describe("luaws client, " .. PEER.name .. " server", function()
    after_each(H.cleanup)

    -- Starts the peer server (env: more of its environment) and connects a luaws client
    -- offering a and b, with options.
    local function connect(options, env)
      local p = spawn_peer(PEER.server, env)
      local port = p:wait_for("listening on (%d+)", 10)
      local ws, rec = H.client(("ws://127.0.0.1:%s/interop"):format(port), { "a", "b" }, options)
      H.wait(function() return rec.opens == 1 or #rec.closes > 0 end, 10, "open")
      assert.equal(1, rec.opens, "no open: " .. table.concat(rec.errors, "; "))
      return ws, rec, p
    end

    local roundtrip = H.roundtrip

    local function closed_with(rec, code, reason)
      H.wait(function() return #rec.closes > 0 end, 10, "onclose")
      assert.equal(1, #rec.closes)
      local c = rec.closes[1]
      assert.same({ code, reason, true }, { c.code, c.reason, c.wasClean })
    end

    it("gets the subprotocol the peer picked", function()
      local ws, _, p = connect()
      assert.equal("b", ws.protocol)
      assert.equal("b", p:wait_for('"event": ?"connection", ?"protocol": ?"(%w*)"', 10))
    end)

    it("echoes text and binary byte for byte", function()
      local ws, rec = connect()
      local m = roundtrip(ws, rec, "hello")
      assert.same({ "hello", false }, { m.data, m.binary })
      m = roundtrip(ws, rec, bytes_0_255(), "binary")
      assert_bytes(bytes_0_255(), m.data, "binary echo")
      assert.is_true(m.binary)
      m = roundtrip(ws, rec, "h\195\169llo \226\130\172")   -- UTF-8 survives both ways
      assert.same({ "h\195\169llo \226\130\172", false }, { m.data, m.binary })
      assert.same({}, rec.errors)
    end)

    it("echoes a 16 MiB binary message byte for byte", function()
      local ws, rec = connect()
      local m = roundtrip(ws, rec, big_message(), "binary", BIG_SECONDS)
      assert.truthy(m, "no echo")
      assert.is_true(m.binary)
      assert_bytes(big_message(), m.data, "16 MiB echo")
      assert.equal(1, #rec.messages)
    end)

    it("receives a message sent in three frames as one message", function()
      local ws, rec = connect()
      local m = roundtrip(ws, rec, "fragments")
      assert.same({ "Hello, world", false }, { m.data, m.binary })
      -- Nothing else came of the three frames: the next message is the next echo.
      m = roundtrip(ws, rec, "after")
      assert.equal("after", m.data)
      assert.equal(2, #rec.messages)
    end)

    it("gets the pong for its ping", function()
      local ws, rec, p = connect()
      local pongs = {}
      assert.is_true(ws:ping("p1", function(data) pongs[#pongs + 1] = data or true end))
      H.wait(function() return #pongs > 0 or #rec.closes > 0 end, 10, "pong")
      assert.same({ "p1" }, pongs)
      if PEER.logs_pings then p:wait_for('"event": ?"ping", ?"data": ?"p1"', 10) end
    end)

    it("closes with its code and reason (client-initiated)", function()
      local ws, rec, p = connect()
      ws:close(4000, "bye")
      closed_with(rec, 4000, "bye")
      p:wait_for('"event": ?"close"', 10)
      local e = find_event(p, "close")
      assert.same({ 4000, "bye" }, { e.code, e.reason })
      assert.equal(H.WebSocket.CLOSED, ws.readyState)
    end)

    it("reports the peer's code and reason (server-initiated)", function()
      local ws, rec = connect()
      ws:send("close-me 4001 server bye")
      closed_with(rec, 4001, "server bye")
      assert.equal(0, #rec.messages)
      assert.equal(H.WebSocket.CLOSED, ws.readyState)
    end)

    for _, case in ipairs(PEER.deflate and PEER.deflate.server or {}) do
      it("echoes every size with permessage-deflate: " .. case.name, function()
        local ws, rec, p = connect(deflate_options(case.luaws), deflate_env(case.peer))
        assert.equal(canon(case.expect), canon(ws.extensions))
        p:wait_for('"event": ?"connection"', 10)
        assert.equal(canon(case.expect), canon(find_event(p, "connection").extensions))
        for round = 1, 2 do          -- twice: the contexts carry over, unless told not to
          for i, sm in ipairs(sized_messages()) do
            local m = roundtrip(ws, rec, sm[1], sm[2] and "binary" or "text", 20)
            assert.truthy(m, "no echo of sized message " .. i)
            assert_bytes(sm[1], m.data, ("round %d, sized message %d"):format(round, i))
            assert.equal(sm[2], m.binary == true)
          end
        end
        local m = roundtrip(ws, rec, big_message(), "binary", BIG_SECONDS)
        assert_bytes(big_message(), m and m.data, "16 MiB echo")
        ws:close(4000, "bye")
        closed_with(rec, 4000, "bye")
        assert.same({}, rec.errors)
      end)
    end
  end)
end
