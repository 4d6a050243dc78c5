-- Socket lifetimes: garbage collection, close from handlers, handler errors, server
-- close, many cycles; and the socket surface (fields, methods, events, timers).
local H = require "helper"
local WebSocket = H.WebSocket

local function pair(server_setup, protocols, options, client_options)
  local s = H.server()
  local server_ws
  s.onupgrade = function(req)
    server_ws = H.track(WebSocket(req, protocols, options))
    if server_setup then server_setup(server_ws, req) end
  end
  local ws, rec = H.client("ws://127.0.0.1:" .. s.port .. "/p", protocols, client_options)
  H.wait(function() return rec.opens == 1 or #rec.closes > 0 end, 5, "open")
  return ws, rec, function() return server_ws end, s
end

-- A server whose sockets' handler `field` (onmessage or ondata) raises with the
-- message's data: the client sees 1011, and onhandlererror gets one error, with the
-- handler's line and a traceback.
local function raising_handler_closes(field)
  local errors = {}
  WebSocket.onhandlererror = function(err) errors[#errors + 1] = err end
  local s = H.server()
  s.onupgrade = function(req)
    local ws = H.track(WebSocket(req))
    ws[field] = function(e) error("raised by " .. (type(e) == "string" and e or e.data)) end
  end
  local c, rec = H.client("ws://127.0.0.1:" .. s.port .. "/")
  c:send("the handler")
  H.wait(function() return #rec.closes == 1 end, 5, "1011")
  WebSocket.onhandlererror = nil
  assert.equal(1011, rec.closes[1].code)
  assert.equal(1, #errors)
  assert.truthy(errors[1]:find("lifecycle_spec.lua:%d+: raised by the handler"))
  assert.truthy(errors[1]:find("stack traceback", 1, true))
end

describe("lifecycle", function()
  after_each(H.cleanup)

  it("keeps a socket that Lua forgot working, through collectgarbage()", function()
    local got = {}
    local s = H.server()
    s.onupgrade = function(req)
      local ws = WebSocket(req)   -- no reference kept anywhere
      ws.onmessage = function(e)
        collectgarbage()
        collectgarbage()
        ws:send("echo " .. e.data)
      end
    end
    do
      local ws = WebSocket.Client("ws://127.0.0.1:" .. s.port .. "/")
      H.track(ws)
      ws.onopen = function() ws:send("a") end
      ws.onmessage = function(e)
        got[#got + 1] = e.data
        collectgarbage()
        if #got < 3 then ws:send("again") end
      end
    end
    collectgarbage()
    collectgarbage()
    H.wait(function() return #got == 3 end, 5, "three echoes")
    assert.same({ "echo a", "echo again", "echo again" }, got)
  end)

  it("closes from inside onmessage: onclose fires later, exactly once", function()
    local closes, during = 0, nil
    local ws, rec = pair(function(sws)
      sws.onmessage = function()
        sws:close(4002, "from handler")
        during = closes
        sws:close()            -- twice is fine
        assert.is_nil((sws:send("after close")))
      end
      sws.onclose = function() closes = closes + 1 end
    end)
    ws:send("x")
    H.wait(function() return #rec.closes == 1 and closes == 1 end, 5, "close")
    H.drain()
    assert.equal(0, during)
    assert.equal(1, closes)
    assert.equal(4002, rec.closes[1].code)
    assert.equal("from handler", rec.closes[1].reason)
    assert.is_true(rec.closes[1].wasClean)
  end)

  it("closes a socket with 1011 when its handler raises; others do not notice", function()
    local errors = {}
    WebSocket.onhandlererror = function(err, target) errors[#errors + 1] = { err, target } end
    local s, srec = H.server(), nil
    local sockets = {}
    s.onupgrade = function(req)
      local ws = H.track(WebSocket(req))
      sockets[#sockets + 1] = ws
      ws.onmessage = function(e)
        if e.data == "boom" then ws.boomed = true; error("handler failed") end
        ws:send(e.data)
      end
    end
    local a, arec = H.client("ws://127.0.0.1:" .. s.port .. "/")
    local b, brec = H.client("ws://127.0.0.1:" .. s.port .. "/")
    a:send("boom")
    b:send("fine")
    H.wait(function() return #arec.closes == 1 and #brec.messages == 1 end, 5, "1011 and echo")
    WebSocket.onhandlererror = nil
    assert.equal(1011, arec.closes[1].code)
    assert.equal(1, #errors)
    assert.truthy(errors[1][1]:find("handler failed"))
    assert.truthy(errors[1][1]:find("traceback"))
    assert.is_true(errors[1][2].boomed)   -- the target is the socket whose handler raised
    assert.equal(WebSocket.OPEN, b.readyState)
    b:send("still here")
    H.wait(function() return #brec.messages == 2 end, 5, "second echo")
  end)

  it("hands onmessage a new event per message: type, target, data, binary", function()
    -- The socket has no fields of its own, so its events take the way made for that
    -- (l_conn.c, the event made in Lua); a listener added later takes the other way.
    local s, server_ws, events, heard = H.server(), nil, {}, {}
    s.onupgrade = function(req)
      server_ws = H.track(WebSocket(req))
      server_ws.onmessage = function(e) events[#events + 1] = e end
    end
    local c, rec = H.client("ws://127.0.0.1:" .. s.port .. "/")
    H.wait(function() return rec.opens == 1 end, 5, "open")
    c:send("one")
    c:send("\0\255", "binary")
    H.wait(function() return #events == 2 end, 5, "two messages")
    server_ws:addEventListener("message", function(e) heard[#heard + 1] = e end)
    c:send("three")
    H.wait(function() return #events == 3 and #heard == 1 end, 5, "a third, to both")
    for i, want in ipairs({ { "one", false }, { "\0\255", true }, { "three", false } }) do
      local e = events[i]
      assert.equal("message", e.type)
      assert.equal(server_ws, e.target)
      assert.equal(want[1], e.data)
      assert.equal(want[2], e.binary)
    end
    assert.are_not.equal(events[1], events[2])   -- kept events stay as they were
    assert.equal(events[3], heard[1])            -- the handler and the listener share one
  end)

  it("names the raising onmessage handler's line in the traceback", function()
    raising_handler_closes("onmessage")
  end)

  it("lets onhandlererror stop the loop and re-raise from run()", function()
    WebSocket.onhandlererror = function(err) error("fatal: " .. err, 0) end
    local t = WebSocket.setTimeout(function() error("in a timer") end, 1)
    local ok, err = pcall(WebSocket.run)
    WebSocket.onhandlererror = nil
    assert.is_false(ok)
    assert.truthy(tostring(err):find("fatal: .*in a timer"))
  end)

  it("closes open sockets with 1001 when the server closes", function()
    local s, srec = H.echo_server()
    local ws1, r1 = H.client("ws://127.0.0.1:" .. s.port .. "/")
    local ws2, r2 = H.client("ws://127.0.0.1:" .. s.port .. "/")
    H.wait(function() return r1.opens == 1 and r2.opens == 1 end, 5, "opens")
    local server_closed = false
    local port = s.port
    s.onclose = function() server_closed = true end
    s:close()
    H.wait(function() return #r1.closes == 1 and #r2.closes == 1 and server_closed end, 5, "closes")
    assert.equal(1001, r1.closes[1].code)
    assert.is_true(r1.closes[1].wasClean)
    assert.equal(1001, r2.closes[1].code)
    local ws3, r3 = H.client("ws://127.0.0.1:" .. port .. "/")
    H.wait(function() return #r3.closes == 1 end, 5, "refused")
    assert.equal(1006, r3.closes[1].code)
  end)

  it("reports 1006 when the peer vanishes", function()
    local ws, rec, sws = pair()
    sws():terminate()
    H.wait(function() return #rec.closes == 1 end, 5, "close")
    assert.equal(1006, rec.closes[1].code)
    assert.is_false(rec.closes[1].wasClean)
    assert.equal(WebSocket.CLOSED, ws.readyState)
  end)

  it("survives many open/close cycles with nothing left behind", function()
    local s = H.echo_server()
    local n = H.slow and 50 or 2000
    local done, batch = 0, 50
    local function one()
      local ws = WebSocket.Client("ws://127.0.0.1:" .. s.port .. "/")
      ws.onopen = function() ws:send("hi") end
      ws.onmessage = function() ws:close() end
      ws.onclose = function(e)
        assert(e.code == 1005 and e.wasClean, "unclean close " .. e.code)
        done = done + 1
      end
    end
    for _ = 1, n / batch do
      local target = done + batch
      for _ = 1, batch do one() end
      H.wait(function() return done >= target end, 10, "a batch of cycles")
    end
    assert.equal(n, done)
  end)
end)

describe("socket surface", function()
  after_each(H.cleanup)

  it("has the browser's fields", function()
    local ws, rec, sws = pair(nil, { "chat" })
    assert.equal(WebSocket.OPEN, ws.readyState)
    assert.equal(1, WebSocket.OPEN)
    assert.equal("chat", ws.protocol)
    assert.equal("chat", sws().protocol)
    assert.equal("", ws.extensions)
    assert.equal("hybi-13", ws.version)
    assert.equal("hybi-13", sws().version)
    assert.truthy(ws.url:find("^ws://127%.0%.0%.1:%d+/p$"))
    assert.truthy(sws().url:find("^ws://127%.0%.0%.1:%d+/p$"))
    assert.equal(0, ws.bufferedAmount)
    assert.equal(101, ws.statusCode)
    assert.equal("websocket", ws.headers.upgrade:lower())
  end)

  it("counts real queued bytes in bufferedAmount", function()
    local ws, rec, sws = pair(function(sws) sws:pause() end, nil, nil,
      { max_buffered = 64 * 1024 * 1024 })   -- the default (16 MiB) would drop the peer
    local chunk = string.rep("x", 1024 * 1024)
    local total = 0
    for _ = 1, 32 do ws:send(chunk, "binary"); total = total + #chunk end
    -- The kernel takes some; the rest is ours and counted.
    assert.is_true(ws.bufferedAmount > 0 and ws.bufferedAmount <= total + 32 * 14)
    local got = 0
    sws().onmessage = function(e) got = got + #e.data end
    sws():resume()
    H.wait(function() return got == total end, 10, "all bytes")
    H.wait(function() return ws.bufferedAmount == 0 end, 5, "the queue to drain")
  end)

  it("pause() holds messages back and resume() delivers them in order", function()
    local got = {}
    local ws, rec, sws = pair(function(sws)
      sws.onmessage = function(e) got[#got + 1] = e.data end
    end)
    sws():pause()
    for i = 1, 5 do ws:send("m" .. i) end
    local t = false
    WebSocket.setTimeout(function() t = true end, 50)
    H.wait(function() return t end, 5, "a while")
    assert.equal(0, #got)
    sws():resume()
    H.wait(function() return #got == 5 end, 5, "messages after resume")
    assert.same({ "m1", "m2", "m3", "m4", "m5" }, got)
  end)

  it("pause() inside onmessage stops delivery of the rest of the same read", function()
    local got = {}
    local ws, rec, sws = pair(function(sws)
      sws.onmessage = function(e)
        got[#got + 1] = e.data
        if #got == 1 then sws:pause() end
      end
    end)
    for i = 1, 4 do ws:send("m" .. i) end
    local t = false
    WebSocket.setTimeout(function() t = true end, 50)
    H.wait(function() return t end, 5, "a while")
    assert.same({ "m1" }, got)
    sws():resume()
    H.wait(function() return #got == 4 end, 5, "the rest")
    assert.same({ "m1", "m2", "m3", "m4" }, got)
  end)

  it("calls ping callbacks on the matching pong", function()
    local ws, rec = pair()
    local pongs = {}
    ws:ping("one", function() pongs[#pongs + 1] = "one" end)
    ws:ping(function() pongs[#pongs + 1] = "empty" end)
    ws:ping("two", function() pongs[#pongs + 1] = "two" end)
    H.wait(function() return #pongs == 3 end, 5, "pongs")
    assert.same({ "one", "empty", "two" }, pongs)
    assert.has_error(function() ws:ping(string.rep("x", 126)) end)
  end)

  it("sends automatic pings with the ping option", function()
    local pings = 0
    local srv = H.handshake_server(function(conn, rec)
      rec.ondata = function()   -- a peer that answers each ping with a pong
        local frames = H.parse_frames(rec.data)
        for i = pings + 1, #frames do
          assert.equal(9, frames[i].opcode)
          conn:_raw_write(H.frame(10, frames[i].payload, { mask = false }))
        end
        pings = #frames
      end
    end)
    local ws, rec = H.client("ws://127.0.0.1:" .. srv.port .. "/", nil, { ping = 0.02 })
    H.wait(function() return pings >= 3 end, 5, "three pings")
    assert.equal(WebSocket.OPEN, ws.readyState)
  end)

  it("drops a peer that sends nothing for a whole ping interval", function()
    local s = H.handshake_server(function() end)   -- upgrades, then never says a word
    local ws, rec = H.client("ws://127.0.0.1:" .. s.port .. "/", nil, { ping = 0.05 })
    H.wait(function() return #rec.closes == 1 end, 5, "the dead peer to be dropped")
    assert.equal(1, rec.opens)
    assert.truthy(rec.errors[1] and rec.errors[1]:find("no pong"), tostring(rec.errors[1]))
    assert.equal(1006, rec.closes[1].code)
  end)

  it("keeps a peer that answers its pings", function()
    local ticks = 0
    local s2 = H.echo_server()
    local c, crec = H.client("ws://127.0.0.1:" .. s2.port .. "/", nil, { ping = 0.02 })
    local t = WebSocket.setInterval(function() ticks = ticks + 1 end, 20)
    H.wait(function() return ticks >= 10 end, 5, "ten ping intervals")
    WebSocket.clearInterval(t)
    assert.equal(WebSocket.OPEN, c.readyState)
    assert.equal(0, #crec.errors)
  end)

  it("drops a peer that floods pings and never reads the pongs", function()
    local s, srec = H.echo_server(nil, { max_buffered = 4096 })
    local c, rec = H.raw_upgraded(s.port)
    c:pause()                                -- we never read what the server sends
    local ping = H.frame(9, string.rep("p", 125))
    local batch = ping:rep(512)
    for _ = 1, 400 do                        -- at most 26 MB of pings
      if #srec.closes > 0 then break end
      c:_raw_write(batch)
      H.drain(2)
    end
    H.wait(function() return #srec.closes == 1 end, 10, "the server to drop the flooder")
    assert.equal(1006, srec.closes[1].code)
    assert.truthy(srec.errors[1]:find("does not read"), srec.errors[1])
  end)

  it("dispatches to addEventListener listeners, and removeEventListener removes", function()
    local ws, rec, sws = pair()
    local a, b = {}, {}
    local fa = function(e) a[#a + 1] = e.data end
    local fb = function(e) b[#b + 1] = e.type end
    sws().onmessage = function(e) sws():send(e.data) end
    ws:addEventListener("message", fa)
    ws:addEventListener("message", fb)
    ws:addEventListener("message", fa)   -- once only
    ws:send("1")
    H.wait(function() return #a == 1 and #b == 1 and #rec.messages == 1 end, 5, "first")
    ws:removeEventListener("message", fa)
    ws:send("2")
    H.wait(function() return #b == 2 end, 5, "second")
    assert.same({ "1" }, a)
    assert.same({ "message", "message" }, b)
    local closed = {}
    ws:addEventListener("close", function(e) closed[#closed + 1] = e.code end)
    ws:close(1000)
    H.wait(function() return #closed == 1 end, 5, "close listener")
    assert.same({ 1000 }, closed)
    assert.equal(ws, rec.closes[1].target)
  end)

  it("calls every one of 500 listeners of one event, in order", function()
    local ws, rec, sws = pair()
    sws().onmessage = function(e) sws():send(e.data) end
    local order = {}
    for i = 1, 500 do
      ws:addEventListener("message", function() order[#order + 1] = i end)
    end
    ws:send("x")
    H.wait(function() return #rec.messages == 1 and #order == 500 end, 5, "the listeners")
    for i = 1, 500 do assert.equal(i, order[i]) end
  end)

  it("checks close() arguments as browsers do", function()
    local ws = pair()
    assert.has_error(function() ws:close(1001) end)
    assert.has_error(function() ws:close(2999) end)
    assert.has_error(function() ws:close(5000) end)
    assert.has_error(function() ws:close(1000, string.rep("r", 124)) end)
    assert.has_error(function() ws:close(1000, "\255") end)
    assert.has_no_error(function() ws:close(3000, string.rep("r", 123)) end)
  end)

  it("returns nil, message, name from send on a closed socket", function()
    local ws, rec = pair()
    ws:terminate()
    H.wait(function() return #rec.closes == 1 end, 5, "close")
    local ok, msg, name = ws:send("late")
    assert.is_nil(ok)
    assert.equal("ECLOSED", name)
    assert.truthy(msg:find("ECLOSED"))
    assert.has_no_error(function() ws:close() end)
    assert.has_no_error(function() ws:terminate() end)
  end)

  it("raises on text that is not UTF-8, and sends it as binary", function()
    local ws, rec = pair(function(sws) sws.onmessage = function(e) sws:send(e.data, "binary") end end)
    assert.has_error(function() ws:send("\255\254") end)
    ws:send("\255\254", "binary")
    H.wait(function() return #rec.messages == 1 end, 5, "echo")
    assert.equal("\255\254", rec.messages[1].data)
  end)

  it("fails send with EBACKPRESSURE beyond max_buffered", function()
    local s = H.handshake_server(function(conn) conn:pause() end)   -- never reads
    local ws, rec = H.client("ws://127.0.0.1:" .. s.port .. "/", nil, { max_buffered = 1024 * 1024 })
    H.wait(function() return rec.opens == 1 end, 5, "open")
    local results = {}
    local big = string.rep("z", 64 * 1024)
    for i = 1, 2000 do
      local ok, _, name = ws:send(big)
      if not ok then results.name = name; break end
    end
    assert.equal("EBACKPRESSURE", results.name)
  end)

  it("raises on unknown options and bad URLs", function()
    assert.has_error(function() WebSocket.Client("ws://127.0.0.1:1/", nil, { bogus = 1 }) end)
    assert.has_error(function() WebSocket.Client("http://127.0.0.1/") end)
    assert.has_error(function() WebSocket.Client("ws://127.0.0.1/#frag") end)
    assert.has_error(function() WebSocket.Client("ws://:80/") end)
    assert.has_error(function() WebSocket.Client("ws://127.0.0.1:99999/") end)
    assert.has_error(function() WebSocket.Client("ws://127.0.0.1/", { "bad name" }) end)
    assert.has_error(function() WebSocket.listen { port = 0, nope = true } end)
  end)
end)

describe("socket fields", function()
  after_each(H.cleanup)

  it("keeps handlers and fields of its own per socket, and after the close", function()
    local calls = {}
    local function first(e) calls[#calls + 1] = "first " .. e.data end
    local function second(e) calls[#calls + 1] = "second " .. e.data end
    local ws, rec, first_sws = pair(function(sws)
      sws.onmessage = first
      sws.user = "ann"
      sws[1] = true
    end)
    local srv = first_sws()
    local function sws() return srv end
    local other, orec = H.client(ws.url)
    H.wait(function() return orec.opens == 1 end, 5, "the second socket")
    ws:send("a")
    H.wait(function() return #calls == 1 end, 5, "a")
    sws().onmessage = second   -- replaced: only the new one runs
    ws:send("b")
    H.wait(function() return #calls == 2 end, 5, "b")
    sws().onmessage = nil
    sws():addEventListener("message", first)
    ws:send("c")
    H.wait(function() return #calls == 3 end, 5, "c")
    assert.same({ "first a", "second b", "first c" }, calls)
    local handler = {}   -- not a function: kept, read back, never called
    sws().onopen = handler
    assert.equal(handler, sws().onopen)
    assert.is_nil(sws().onmessage)
    assert.equal("ann", sws().user)
    assert.is_true(sws()[1])
    assert.is_nil(ws.user)                  -- fields are per socket
    local url = sws().url
    local closes = 0
    local function onclose() closes = closes + 1 end
    sws().onclose = onclose
    ws:close()
    H.wait(function() return sws().readyState == WebSocket.CLOSED end, 5, "the close")
    H.drain()
    collectgarbage()
    assert.equal(1, closes)
    assert.equal(onclose, sws().onclose)   -- still there once the conn is freed
    assert.equal(handler, sws().onopen)
    assert.equal(url, sws().url)
    assert.equal("ann", sws().user)
    sws().onclose = first                    -- and settable
    assert.equal(first, sws().onclose)
    sws().onclose = nil
    assert.is_nil(sws().onclose)
    other:close()
  end)

  it("calls a listener that onmessage or ondata added, for the same message", function()
    local got = {}
    local ws = pair(function(sws)
      sws.ondata = function(data) got[#got + 1] = "ondata " .. data end
      sws.onmessage = function(e)
        got[#got + 1] = "onmessage " .. e.data
        if #got == 2 then
          sws:addEventListener("message", function(e2) got[#got + 1] = "listener " .. e2.data end)
        end
      end
    end)
    ws:send("a")
    H.wait(function() return #got == 3 end, 5, "a")
    assert.same({ "ondata a", "onmessage a", "listener a" }, got)
  end)

  it("costs Lua under 150 bytes per idle socket whose handler is shared", function()
    local N = 300
    local s = H.server()
    local function echo(e) e.target:send(e.data) end
    local opened = 0
    s.onupgrade = function(req)
      WebSocket(req).onmessage = echo   -- the socket kept by the core alone
      opened = opened + 1
    end
    local function upgrade(e) e.target:_raw_write(H.upgrade_request) end
    local client = require "luaws.client"
    local peers = {}
    for i = 1, N do peers[i] = false end   -- made before the count, not in it
    collectgarbage()
    collectgarbage()
    local before = collectgarbage("count")
    for i = 1, N do
      local c = assert(client.raw("127.0.0.1", s.port))
      c.onopen = upgrade
      peers[i] = c
    end
    H.wait(function() return opened == N end, 10, "every upgrade")
    H.drain()
    collectgarbage()
    collectgarbage()
    -- a raw peer is the same box as the server's socket: half of it is the server's
    local per_socket = (collectgarbage("count") - before) * 1024 / (2 * N)
    for i = 1, N do peers[i]:close() end
    H.wait(function() return WebSocket.stats().connections == 0 end, 10, "every close")
    assert.is_true(per_socket < 150, ("%.0f bytes per socket"):format(per_socket))
  end)
end)

describe("URL parsing", function()
  local parse = require("luaws.client").parse_url
  it("splits ws and wss URLs, with defaults", function()
    assert.same({ scheme = "ws", host = "example.com", port = 80, path = "/", host_header = "example.com", secure = false },
      parse("ws://example.com"))
    assert.same({ scheme = "wss", host = "example.com", port = 443, path = "/a?b=c", host_header = "example.com", secure = true },
      parse("wss://example.com/a?b=c"))
    assert.same({ scheme = "ws", host = "::1", port = 8080, path = "/", host_header = "[::1]:8080", secure = false },
      parse("ws://[::1]:8080/"))
    assert.equal("/?x", parse("ws://h?x").path)
  end)
end)

describe("timers", function()
  after_each(H.cleanup)

  it("runs setTimeout once, setInterval until cleared, and clearTimeout cancels", function()
    local once, every, never = 0, 0, 0
    WebSocket.setTimeout(function() once = once + 1 end, 1)
    local iv
    iv = WebSocket.setInterval(function()
      every = every + 1
      if every == 3 then WebSocket.clearInterval(iv) end
    end, 1)
    local t = WebSocket.setTimeout(function() never = never + 1 end, 1)
    WebSocket.clearTimeout(t)
    WebSocket.clearTimeout(t)
    H.wait(function() return once == 1 and every == 3 end, 5, "timers")
    H.drain()
    assert.equal(0, never)
    assert.equal(3, every)
  end)

  it("refuses run() and step() from inside the loop", function()
    local results = {}
    WebSocket.setTimeout(function()
      results[1] = { pcall(WebSocket.run) }
      results[2] = { pcall(WebSocket.step) }
    end, 1)
    H.wait(function() return #results == 2 end, 5, "the timer")
    assert.is_false(results[1][1])
    assert.truthy(tostring(results[1][2]):find("inside the loop"))
    assert.is_false(results[2][1])
  end)

  it("stop() ends run()", function()
    WebSocket.setTimeout(function() WebSocket.stop() end, 1)
    local long = WebSocket.setTimeout(function() end, 60000)
    assert.is_true(WebSocket.run())
    WebSocket.clearTimeout(long)
  end)
end)

describe("a peer that resets while we write", function()
  after_each(H.cleanup)

  it("is an error for that socket, not a signal for the process", function()
    local s, srec = H.echo_server()
    local big = H.frame(2, string.rep("b", 100000))
    local rounds = 5
    for round = 1, rounds do
      local c, rec = H.raw_upgraded(s.port)
      for _ = 1, 20 do c:_raw_write(big) end
      -- Gone (FIN, then RST) while the server still has echoes to write: its next write
      -- meets a reset socket in CLOSE_WAIT (EPIPE), by default a SIGPIPE that kills.
      H.wait(function() return #rec.data > 0 end, 10, "the first echo bytes")
      c:close()   -- FIN after our frames, then a reset for the echoes we never read
    end
    H.wait(function() return #srec.closes == rounds end, 10, "the server sockets to close")
    for _, e in ipairs(srec.closes) do assert.equal(1006, e.code) end
    local ws, rec = H.client("ws://127.0.0.1:" .. s.port .. "/")
    ws:send("still here")
    H.wait(function() return #rec.messages == 1 end, 5, "an echo afterwards")
  end)
end)

describe("ondata(data, binary, ws): messages without event objects", function()
  after_each(H.cleanup)

  it("gets text and binary, with the socket, and onmessage still gets its events", function()
    local s = H.server()
    local got, events = {}, {}
    s.onupgrade = function(req)
      local ws = H.track(WebSocket(req))
      ws.ondata = function(data, binary, target)
        got[#got + 1] = { data, binary, target == ws }
        target:send(data, binary and "binary" or nil)
      end
      if req.url == "/both" then
        ws.onmessage = function(e) events[#events + 1] = e.data end
      end
    end
    local c, rec = H.client("ws://127.0.0.1:" .. s.port .. "/")
    c:send("text")
    c:send("\0\1", "binary")
    H.wait(function() return #rec.messages == 2 end, 5, "two echoes")
    assert.same({ { "text", false, true }, { "\0\1", true, true } }, got)
    assert.same({}, events)
    local c2, rec2 = H.client("ws://127.0.0.1:" .. s.port .. "/both")
    c2:send("twice")
    H.wait(function() return #rec2.messages == 1 end, 5, "the echo")
    assert.same({ "twice" }, events)
    assert.equal("twice", got[3][1])
  end)

  it("lets ondata pause, resume and close its own socket", function()
    local s = H.server()
    local seen = {}
    s.onupgrade = function(req)
      local ws = H.track(WebSocket(req))
      ws.ondata = function(data, _, target)
        seen[#seen + 1] = data
        if data == "pause" then
          target:pause()
          WebSocket.setTimeout(function() target:resume() end, 1)
        elseif data == "flip" then
          target:pause()
          target:resume()
        elseif data == "close" then
          target:close(4001, "asked")
        end
      end
    end
    local c, rec = H.client("ws://127.0.0.1:" .. s.port .. "/")
    for _, m in ipairs { "pause", "a", "flip", "b", "close", "after" } do c:send(m) end
    H.wait(function() return #rec.closes == 1 end, 5, "the close")
    assert.same({ "pause", "a", "flip", "b", "close" }, seen)
    assert.equal(4001, rec.closes[1].code)
  end)

  it("closes the socket with 1011 when ondata raises, as any handler", function()
    raising_handler_closes("ondata")
  end)
end)
