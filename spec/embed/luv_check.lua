-- Run by spec/embed_spec.lua in a process of its own (luv must come before luaws's
-- first socket or timer): luaws on luv's loop. Prints "ok NAME" / "FAIL NAME: why".
-- arg[1]: "luv-first" or "luaws-first" (the order of require).
local order = arg[1] or "luv-first"
local uv, WebSocket
if order == "luv-first" then
  uv = require "luv"
  WebSocket = require "luaws"
else
  WebSocket = require "luaws"
  uv = require "luv"
end
local core = require "luaws.core"

local function report(name, ok, why)
  print((ok and "ok " or "FAIL ") .. name .. (ok and "" or ": " .. tostring(why)))
  io.stdout:flush()
end

report("on luv's loop (" .. order .. ")", core.loop_kind() == "luv", core.loop_kind())

-- A guard against a hang: every case ends within 10 s.
local guard = uv.new_timer()
guard:start(10000, 0, function() report("in time", false, "timed out") os.exit(1) end)
guard:unref()

-- 1. uv.run() drives luaws sockets, with a luv timer ticking beside them.
do
  local s = assert(WebSocket.listen { port = 0 })
  s.onupgrade = function(req)
    local ws = WebSocket(req)
    ws.onmessage = function(e) ws:send("echo " .. e.data) end
  end
  local ticks, got = 0, nil
  local t = uv.new_timer()
  t:start(1, 0, function()   -- the luv timer starts the luaws client: both must run
    ticks = ticks + 1
    t:close()
    local c = WebSocket.Client("ws://127.0.0.1:" .. s.port .. "/")
    c.onopen = function() c:send("one") end
    c.onmessage = function(e) got = e.data c:close() end
    c.onclose = function() s:close() end
  end)
  uv.run()
  report("uv.run drives luaws", got == "echo one" and ticks == 1, tostring(got) .. " " .. ticks)
end

-- 2. WebSocket.run() drives luv handles: a luv TCP echo server, a luv client of it, and
-- a luaws timer.
do
  local server = uv.new_tcp()
  server:bind("127.0.0.1", 0)
  server:listen(16, function()
    local conn = uv.new_tcp()
    server:accept(conn)
    conn:read_start(function(err, data)
      if data then conn:write(data) else conn:close() end
    end)
  end)
  local port = server:getsockname().port
  local client, echoed, fired = uv.new_tcp(), nil, false
  client:connect("127.0.0.1", port, function()
    client:read_start(function(_, data)
      echoed = data
      client:close()
      server:close()
    end)
    client:write("through luv")
  end)
  WebSocket.setTimeout(function() fired = true end, 1)
  WebSocket.run()
  report("WebSocket.run drives luv", echoed == "through luv" and fired, tostring(echoed))
end

-- 3. Adoption: luv accepts and reads the request head; luaws takes the socket over and
-- answers the upgrade.
do
  local s = assert(WebSocket.listen { port = 0 })   -- (its own port goes unused)
  s.onupgrade = function(req)
    local ws = WebSocket(req)
    ws.onmessage = function(e) ws:send("adopted " .. e.data) end
  end
  local lsrv = uv.new_tcp()
  lsrv:bind("127.0.0.1", 0)
  lsrv:listen(16, function()
    local conn = uv.new_tcp()
    lsrv:accept(conn)
    local head = ""
    conn:read_start(function(err, data)
      if not data then conn:close() return end
      head = head .. data
      if head:find("\r\n\r\n", 1, true) then
        conn:read_stop()
        assert(s:adopt(conn:fileno(), head))
        conn:close()   -- luaws has its own descriptor
        lsrv:close()
      end
    end)
  end)
  local got
  local c = WebSocket.Client("ws://127.0.0.1:" .. lsrv:getsockname().port .. "/")
  c.onopen = function() c:send("hello") end
  c.onmessage = function(e) got = e.data c:close() end
  c.onclose = function() s:close() end
  uv.run()
  report("adopts a socket luv accepted", got == "adopted hello", got)
end
guard:close()
uv.run()
print("done")
