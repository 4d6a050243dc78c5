-- Coroutines (lua/luaws/coro.lua): spawn, connect, receive, messages, sleep, close and
-- handler, against callback peers in the same loop; the receive queue's bound; errors.
local H = require "helper"
local WebSocket = H.WebSocket
local core = require "luaws.core"
local coro = require "luaws.coro"

local function url(s, path) return "ws://127.0.0.1:" .. s.port .. (path or "/") end

-- Runs fn in a coroutine and the loop until it has returned (its results) or raised.
local function run(fn, seconds)
  local done, results
  WebSocket.spawn(function()
    results = { fn() }
    done = true
  end)
  H.wait(function() return done end, seconds or 5, "the coroutine to finish")
  return (table.unpack or unpack)(results)
end

-- What the socket's receive queue holds (messages, bytes), and whether it paused reading.
local function queue(ws)
  local st = core.uservalue(ws)._queue
  return st.tail - st.head + 1, st.bytes, st.paused, st
end

-- Errors reported to WebSocket.onhandlererror while fn runs: a list of { err, target }.
local function reported(fn)
  local errors = {}
  WebSocket.onhandlererror = function(err, target) errors[#errors + 1] = { err, target } end
  local ok, err = pcall(fn, errors)
  WebSocket.onhandlererror = nil
  if not ok then error(err, 0) end
  return errors
end

describe("coroutines", function()
  after_each(H.cleanup)

  it("runs a client top to bottom against a callback echo server", function()
    local s, srec = H.echo_server({ "chat" })
    local ws, proto, a, ak, b, bk, code, reason, clean = run(function()
      local ws = H.track(assert(WebSocket.connect(url(s, "/echo"), { "chat" })))
      local proto = ws.protocol
      assert(ws:send("hello"))
      local a, ak = ws:receive(5)
      assert(ws:send("\0\1\2\255", "binary"))
      local b, bk = ws:receive(5)
      return ws, proto, a, ak, b, bk, ws:close(1000, "done")
    end)
    assert.equal("chat", proto)
    assert.equal("hello", a)
    assert.equal("text", ak)
    assert.equal("\0\1\2\255", b)
    assert.equal("binary", bk)
    assert.same({ 1000, "done", true }, { code, reason, clean })   -- close() waited for it
    assert.equal(WebSocket.CLOSED, ws.readyState)
    assert.equal(2, #srec.messages)
    H.wait(function() return #srec.closes == 1 end, 5, "server close")
    assert.equal(1000, srec.closes[1].code)
  end)

  it("runs a server coroutine per socket with WebSocket.handler", function()
    local s = H.server()
    local seen, running = {}, 0
    s.onupgrade = WebSocket.handler(function(ws, req)
      running = running + 1
      local name = req.url:sub(2)
      seen[#seen + 1] = name .. " " .. tostring(ws.protocol)
      while true do
        local data = ws:receive()
        if data == nil or data == "bye" then break end
        WebSocket.sleep(0.001 * #data)   -- the other socket's coroutine runs meanwhile
        assert(ws:send(name .. ":" .. data))
      end
      running = running - 1
    end, { "chat" })                     -- returning closes the socket with 1000
    local a, arec = H.client(url(s, "/a"), { "chat" })
    local b, brec = H.client(url(s, "/b"), { "chat" })
    H.wait(function() return arec.opens == 1 and brec.opens == 1 end, 5, "opens")
    assert.equal(2, running)
    for i = 1, 5 do
      a:send("x" .. i)
      b:send("y" .. i)
    end
    H.wait(function() return #arec.messages == 5 and #brec.messages == 5 end, 5, "echoes")
    for i = 1, 5 do
      assert.equal("a:x" .. i, arec.messages[i].data)
      assert.equal("b:y" .. i, brec.messages[i].data)
    end
    a:send("bye")
    H.wait(function() return #arec.closes == 1 end, 5, "the handler's close")
    assert.equal(1000, arec.closes[1].code)
    assert.is_true(arec.closes[1].wasClean)
    assert.equal(WebSocket.OPEN, b.readyState)   -- the other coroutine goes on
    table.sort(seen)
    assert.same({ "a chat", "b chat" }, seen)
    assert.equal(1, running)
    b:close()
    H.wait(function() return running == 0 end, 5, "the second handler to return")
  end)

  it("times a receive out, and keeps the message that comes later", function()
    local s = H.server()
    s.onupgrade = function(req)
      local ws = H.track(WebSocket(req))
      ws.onmessage = function(e)
        WebSocket.setTimeout(function() ws:send("late " .. e.data) end, 100)
      end
    end
    local r0, r1, r2, late, kind = run(function()
      local ws = H.track(assert(WebSocket.connect(url(s))))
      local r0 = { ws:receive(0) }          -- only looks
      ws:send("m")
      local r1 = { ws:receive(0.02) }
      local r2 = { ws:receive(0.02) }
      local late, kind = ws:receive(5)
      ws:close()
      return r0, r1, r2, late, kind
    end)
    assert.same({ nil, "timeout", "ETIMEDOUT" }, r0)
    assert.same({ nil, "timeout", "ETIMEDOUT" }, r1)
    assert.same({ nil, "timeout", "ETIMEDOUT" }, r2)
    assert.equal("late m", late)
    assert.equal("text", kind)
  end)

  it("returns what came before a close, then nil, 'closed', code, reason", function()
    local s = H.server()
    s.onupgrade = function(req)
      local ws = H.track(WebSocket(req))
      ws.onopen = function()
        ws:send("one")
        ws:send("two", "binary")
        ws:close(4001, "bye")
      end
    end
    local got = { run(function()
      local ws = H.track(assert(WebSocket.connect(url(s))))
      WebSocket.sleep(0.05)   -- everything has arrived before the first receive
      local r = {}
      for i = 1, 4 do r[i] = { ws:receive(5) } end
      r[5] = { ws:close() }   -- already closed: its code, without waiting
      return r
    end) }
    assert.same({
      { "one", "text" }, { "two", "binary" },
      { nil, "closed", 4001, "bye" }, { nil, "closed", 4001, "bye" },
      { 4001, "bye", true },
    }, got[1])
  end)

  it("ends a messages() loop when the socket closes (or says why Lua 5.1 cannot)", function()
    local s = H.server()
    s.onupgrade = function(req)
      local ws = H.track(WebSocket(req))
      ws.onopen = function()
        for i = 1, 3 do ws:send("m" .. i) end
        WebSocket.setTimeout(function() ws:close(1000) end, 20)
      end
    end
    local list, state, err = run(function()
      local ws = H.track(assert(WebSocket.connect(url(s))))
      local list = {}
      if not coro.for_yields then
        local ok, err = pcall(ws.messages, ws)
        ws:close()
        return nil, nil, err
      end
      for data, kind in ws:messages() do list[#list + 1] = data .. "/" .. kind end
      return list, ws.readyState
    end)
    if coro.for_yields then
      assert.same({ "m1/text", "m2/text", "m3/text" }, list)
      assert.equal(WebSocket.CLOSED, state)
    else
      assert.truthy(err:find("Lua 5.1 cannot yield inside a for loop's iterator", 1, true))
      assert.truthy(err:find("ws:receive()", 1, true))
    end
  end)

  it("bounds the queue of a coroutine that does not read: back-pressure, no loss, order kept", function()
    local N, SIZE = 1024, 16 * 1024
    local s = H.server()
    local sent, server_ws, pump = 0, nil, nil
    s.onupgrade = function(req)
      server_ws = H.track(WebSocket(req, nil, { max_buffered = math.huge }))
      server_ws.onopen = function()
        -- Sends as fast as the kernel takes it, keeping little in its own queue.
        pump = WebSocket.setInterval(function()
          while sent < N and server_ws.bufferedAmount < 64 * 1024 do
            sent = sent + 1
            server_ws:send(("%06d"):format(sent) .. ("x"):rep(SIZE - 6), "binary")
          end
          if sent == N then WebSocket.clearInterval(pump) end
        end, 1)
      end
    end
    local during, stalled_at, received, order_ok = {}, nil, 0, true
    run(function()
      local ws = H.track(assert(WebSocket.connect(url(s), nil,
        { max_queued = 8, max_queued_bytes = 64 * 1024 })))
      collectgarbage()
      local heap = collectgarbage("count")
      -- Sleep until the sender has stalled: three looks in a row with nothing sent.
      local last, same = -1, 0
      for _ = 1, 200 do
        WebSocket.sleep(0.02)
        if sent == last then same = same + 1 else same = 0 end
        last = sent
        if same == 3 or sent == N then break end
      end
      collectgarbage()
      during.count, during.bytes, during.paused = queue(ws)
      during.heap = collectgarbage("count") - heap
      during.buffered_in = WebSocket.stats().buffered_in
      stalled_at = sent
      for i = 1, N do
        local data, kind = ws:receive(10)
        if not data then break end
        received = received + 1
        if kind ~= "binary" or #data ~= SIZE or data:sub(1, 6) ~= ("%06d"):format(i) then
          order_ok = false
        end
      end
      ws:close()
    end, 60)
    assert.is_true(stalled_at < N)                 -- the sender felt it: TCP's back-pressure
    assert.is_true(during.paused)
    assert.is_true(during.count <= 8 and during.count >= 4)   -- 4 * 16 KiB: at max_queued_bytes
    assert.is_true(during.bytes <= 64 * 1024)
    assert.is_true(during.heap < 1024, ("the heap grew by %d KiB"):format(math.floor(during.heap)))
    assert.is_true(during.buffered_in < 512 * 1024)   -- one read's rest, at most
    assert.equal(N, received)
    assert.is_true(order_ok)
  end)

  it("keeps a paused socket past message_timeout: what waits unread is not the peer's delay", function()
    local s = H.server()
    s.onupgrade = function(req)
      local ws = H.track(WebSocket(req))
      ws.onopen = function() for i = 1, 3 do ws:send("m" .. i) end end
    end
    local got = { run(function()
      local ws = H.track(assert(WebSocket.connect(url(s), nil,
        { max_queued = 1, message_timeout = 0.05 })))
      WebSocket.sleep(0.3)   -- paused after m1, with m2 and m3 read and unparsed
      local r = {}
      for i = 1, 3 do r[i] = ws:receive(5) end
      r[4] = ws.readyState
      ws:close()
      return r
    end) }
    assert.same({ "m1", "m2", "m3", WebSocket.OPEN }, got[1])
  end)

  it("closes a socket whose queue is full without waiting for close_timeout", function()
    local s = H.server()
    s.onupgrade = function(req)
      local ws = H.track(WebSocket(req))
      ws.onopen = function() for i = 1, 50 do ws:send("m" .. i) end end
    end
    local started = os.time()
    local code, reason, clean, r1, r2, r3 = run(function()
      local ws = H.track(assert(WebSocket.connect(url(s), nil, { max_queued = 2, close_timeout = 30 })))
      for _ = 1, 500 do
        if select(3, queue(ws)) then break end
        WebSocket.sleep(0.01)
      end
      local code, reason, clean = ws:close(1000, "enough")
      return code, reason, clean, { ws:receive() }, { ws:receive() }, { ws:receive() }
    end, 10)
    assert.same({ 1000, "enough", true }, { code, reason, clean })
    -- What was queued stays; what came after our close the core read past, to its close.
    assert.same({ "m1", "text" }, r1)
    assert.same({ "m2", "text" }, r2)
    assert.same({ nil, "closed", 1000, "enough" }, r3)
    assert.is_true(os.time() - started < 10)
  end)

  it("reports an error in a coroutine like a handler's; the rest goes on", function()
    local s, srec = H.echo_server()
    local other, early_returned, spawned
    local errors = reported(function(errors)
      spawned = WebSocket.spawn(function()
        local ws = H.track(assert(WebSocket.connect(url(s))))
        ws.failing = true
        ws:send("x")
        assert(ws:receive(5))
        error("boom")
      end)
      assert.equal("thread", type(spawned))
      WebSocket.spawn(function() error("early") end)   -- before its first wait
      early_returned = true
      WebSocket.spawn(function()
        WebSocket.sleep(0.05)
        collectgarbage()
        other = "still here"
      end)
      H.wait(function() return #errors == 2 and other and #srec.closes == 1 end, 5, "errors")
    end)
    assert.is_true(early_returned)   -- spawn itself did not raise
    assert.truthy(errors[1][1]:find("early", 1, true))
    assert.is_nil(errors[1][2])
    assert.truthy(errors[2][1]:find("boom", 1, true))
    assert.truthy(errors[2][1]:find("stack traceback", 1, true))
    assert.is_true(errors[2][2].failing)   -- the target: the socket the coroutine opened
    assert.equal(1011, srec.closes[1].code)
    assert.equal("still here", other)
    assert.equal("dead", coroutine.status(spawned))
    -- The loop goes on: a new coroutine runs.
    assert.equal("echo", run(function()
      local ws = H.track(assert(WebSocket.connect(url(s))))
      ws:send("echo")
      local data = ws:receive(5)
      ws:close()
      return data
    end))
  end)

  it("closes a handler's socket with 1011 when it raises", function()
    local s = H.server()
    local errors = reported(function(errors)
      s.onupgrade = WebSocket.handler(function(ws)
        ws:send("hi")
        local data = ws:receive()
        error("handler " .. data)
      end)
      local ws, rec = H.client(url(s))
      H.wait(function() return #rec.messages == 1 end, 5, "hi")
      ws:send("failed")
      H.wait(function() return #rec.closes == 1 end, 5, "close")
      assert.equal(1011, rec.closes[1].code)
    end)
    assert.equal(1, #errors)
    assert.truthy(errors[1][1]:find("handler failed", 1, true))
  end)

  it("lets onhandlererror stop the loop and run() raise, from a coroutine too", function()
    WebSocket.onhandlererror = function(err) error("fatal: " .. err, 0) end
    WebSocket.spawn(function()
      WebSocket.sleep(0.001)
      error("in a coroutine")
    end)
    local ok, err = pcall(WebSocket.run)
    WebSocket.onhandlererror = nil
    assert.is_false(ok)
    assert.truthy(tostring(err):find("fatal: .*in a coroutine"))
  end)

  it("raises for what cannot be mixed, and mixes the rest", function()
    local s, srec = H.echo_server()
    -- Outside a spawned coroutine.
    for _, f in ipairs {
      function() WebSocket.connect(url(s)) end,
      function() WebSocket.sleep(0) end,
      function() coroutine.wrap(function() WebSocket.sleep(0) end)() end,
    } do
      local ok, err = pcall(f)
      assert.is_false(ok)
      assert.truthy(err:find("call it inside a function run by WebSocket.spawn", 1, true))
    end
    local cb, cbrec = H.client(url(s))   -- a callback socket, with onmessage
    H.wait(function() return cbrec.opens == 1 end, 5, "open")
    local ok, err = pcall(cb.receive, cb)
    assert.is_false(ok)
    assert.truthy(err:find("call it inside", 1, true))
    local heard, opened, closed = {}, 0, nil
    local r = { run(function()
      local ok1, err1 = pcall(cb.receive, cb)                -- has an onmessage handler
      local ok2, err2 = pcall(WebSocket.spawn, 42)
      -- A coroutine socket with a listener and handlers besides receive().
      local ws = H.track(assert(WebSocket.connect(url(s))))
      ws:addEventListener("message", function(e) heard[#heard + 1] = e.data end)
      ws.onclose = function(e) closed = e.code end
      ws:send("both")
      local data = ws:receive(5)
      -- onmessage set later takes the messages; receive() then says so.
      ws.onmessage = function(e) heard[#heard + 1] = "handler " .. e.data end
      ws:send("later")
      for _ = 1, 500 do
        if #heard == 3 then break end
        WebSocket.sleep(0.01)
      end
      local ok3, err3 = pcall(ws.receive, ws, 0)
      -- A callback socket without onmessage can receive(), from its first call.
      cb.onmessage = nil
      cb:send("to the queue")
      local cbdata = cb:receive(5)
      ws:close(1000)
      return ok1, err1, ok2, err2, data, ok3, err3, cbdata
    end) }
    assert.is_false(r[1])
    assert.truthy(r[2]:find("this socket has an onmessage handler", 1, true))
    assert.is_false(r[3])
    assert.truthy(r[4]:find("fn must be a function", 1, true))
    assert.equal("both", r[5])
    assert.same({ "both", "handler later", "later" }, heard)
    assert.is_false(r[6])
    assert.truthy(r[7]:find("onmessage handler", 1, true))
    assert.equal("to the queue", r[8])
    assert.equal(1000, closed)
  end)

  it("returns nil, message, name when connect fails", function()
    local gone = H.server()
    local port = gone.port
    gone:close()
    H.wait(function() return WebSocket.active_handles() <= 1 end, 5, "the listener to close")
    local refusing = H.raw_server(function(conn, rec)
      rec.ondata = function()
        if rec.data:find("\r\n\r\n", 1, true) then
          conn:_raw_write("HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
        end
      end
    end)
    local a, b, c = run(function()
      return { WebSocket.connect("ws://127.0.0.1:" .. port .. "/") },
             { WebSocket.connect(url(refusing)) },
             { pcall(function() WebSocket.connect("http://127.0.0.1/") end) }
    end)
    assert.is_nil(a[1])
    assert.truthy(a[2]:find("ECONNREFUSED", 1, true))
    assert.equal("ECONNREFUSED", a[3])
    assert.is_nil(b[1])
    assert.truthy(b[2]:find("403", 1, true))
    assert.equal("EHANDSHAKE", b[3])
    assert.is_false(c[1])   -- misuse raises, and blames the caller's line
    assert.truthy(c[2]:find("coro_spec.lua:%d+: URL scheme must be ws or wss"))
  end)

  it("keeps coroutines and sockets nobody references alive through collectgarbage()", function()
    local s = H.echo_server()
    local got = {}
    do
      WebSocket.spawn(function()
        local ws = assert(WebSocket.connect(url(s)))
        H.track(ws)
        for i = 1, 3 do
          collectgarbage()
          ws:send("m" .. i)
          WebSocket.sleep(0.001)
          collectgarbage()
          got[#got + 1] = ws:receive(5)
        end
        coroutine.yield()   -- a bare yield: carries on at the loop's next turn
        got[#got + 1] = "after yield"
        ws:close()
      end)
    end
    collectgarbage()
    collectgarbage()
    H.wait(function() return #got == 4 end, 5, "the coroutine")
    assert.same({ "m1", "m2", "m3", "after yield" }, got)
  end)
end)
