-- One luaws process of spec/backplane_spec.lua: a server with a Redis backplane, whose
-- sockets subscribe to topics, and a control socket through which the spec publishes.
--   node.lua REDIS_URL [OPTIONS]     OPTIONS: a Lua table constructor for backplane{}
-- Prints "PORT n" once listening, then a line per backplane event: "EVENT connect",
-- "EVENT disconnect", "EVENT error <name> <message>". Paths:
--   /sub/<topic>  a socket subscribed to topic; it takes "sub T" and "unsub T" messages
--   /ctl          answers each command on the socket:
--     "pub text|binary <topic> <data>" -> "pub <delivered> <skipped>" or "err <name> <msg>"
--     "status"  -> "status <connected 0|1> <queued> <channels> <reconnects>"
--     "quit"    -> closes the backplane and the server; the process exits (0)
local WebSocket = require "luaws"
io.stdout:setvbuf("line")

local url, extra = arg[1], arg[2]
local o = extra and assert((loadstring or load)("return " .. extra))() or {}
o.url = url
local bp = WebSocket.backplane(o)
bp.onconnect = function() print("EVENT connect") end
bp.ondisconnect = function() print("EVENT disconnect") end
bp.onerror = function(e) print("EVENT error " .. e.name .. " " .. e.message) end

local server = WebSocket.listen { host = "127.0.0.1", port = 0 }
local sockets = {}

local function control(ws, msg)
  local kind, topic, data = msg:match("^pub (%a+) (%S+) (.*)$")
  if kind then
    local delivered, skipped, name = WebSocket.publish(topic, data, kind)
    if delivered then ws:send(("pub %d %d"):format(delivered, skipped))
    else ws:send(("err %s %s"):format(name, skipped)) end
  elseif msg == "status" then
    ws:send(("status %d %d %d %d"):format(bp.connected and 1 or 0, bp.queued, bp.channels,
      bp.reconnects))
  elseif msg == "quit" then
    ws:send("bye")
    bp:close()
    server:close()
    for s in pairs(sockets) do s:close() end
  end
end

server.onupgrade = function(req)
  local ws = WebSocket(req)
  sockets[ws] = true
  ws.onclose = function() sockets[ws] = nil end
  local topic = req.url:match("^/sub/(.+)$")
  if topic then
    assert(ws:subscribe(topic))
    ws.onmessage = function(e)
      local verb, t = e.data:match("^(%a+) (.+)$")
      if verb == "sub" then ws:subscribe(t) elseif verb == "unsub" then ws:unsubscribe(t) end
    end
  else
    ws.onmessage = function(e) control(ws, e.data) end
  end
end

print("PORT " .. server.port)
WebSocket.run()
print("EXIT " .. WebSocket.active_handles())
