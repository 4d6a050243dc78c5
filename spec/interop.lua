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

  -- Byte-for-byte equality that names the first difference instead of printing 16 MiB.
  local function assert_bytes(expected, actual, what)
    if expected == actual then return end
    assert(type(actual) == "string", what .. ": got " .. type(actual))
    local n = math.min(#expected, #actual)
    local i = 1
    while i <= n and expected:byte(i) == actual:byte(i) do i = i + 1 end
    error(("%s differs: %d bytes expected, %d received, first difference at byte %d")
      :format(what, #expected, #actual, i), 2)
  end

  local find_event = H.peer_event

  -- Starts a peer command; the sanitizer runtime preloaded for luaws is not the peer's.
  local function spawn_peer(cmd, env)
    return H.spawn(("exec env -u LD_PRELOAD %s %s"):format(env or "", cmd))
  end

  describe("luaws server, " .. PEER.name .. " client", function()
    after_each(H.cleanup)

    -- The peer's fixed script: text, binary 0..255, 16 MiB binary, a text message in three
    -- frames, ping "p1", close(4000, "bye"); it checks each echo byte for byte. opts:
    -- protocols (luaws's), offer (the peer's, a shell word list), on_socket(ws, srec).
    local function run_peer_client(opts)
      opts = opts or {}
      local s, srec = H.echo_server(opts.protocols or { "a", "b" })
      local opened = {}
      local onupgrade = s.onupgrade
      s.onupgrade = function(req)
        onupgrade(req)
        local ws = srec.sockets[#srec.sockets]
        ws.onopen = function() opened[#opened + 1] = ws.protocol end
        if opts.on_socket then opts.on_socket(ws, srec) end
      end
      local url = ("ws://127.0.0.1:%d/interop"):format(s.port)
      local seconds = BIG_SECONDS + 30
      local p = spawn_peer(("%s %s %s"):format(PEER.client, url, opts.offer or "c b a"),
        ("PEER_TIMEOUT=%d"):format(seconds * H.timeout_scale))
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
  end)

  describe("luaws client, " .. PEER.name .. " server", function()
    after_each(H.cleanup)

    -- Starts the peer server and connects a luaws client offering a and b.
    local function connect()
      local p = spawn_peer(PEER.server)
      local port = p:wait_for("listening on (%d+)", 10)
      local ws, rec = H.client(("ws://127.0.0.1:%s/interop"):format(port), { "a", "b" })
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
  end)
end
