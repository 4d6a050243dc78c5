-- The broadcast test's server (bench/run.sh, test f): holds every connection it gets and,
-- on demand, sends one message to all of them with WebSocket.broadcast.
--   lua5.4 bench/broadcast_server.lua [port [size]]   (port 0: any free port; size: bytes
--                                                      of the broadcast message, 16)
-- Triggers: GET /broadcast, or a text message "broadcast" from any client. GET /broadcast
-- answers "count=N ms=T": sockets sent to and the CPU time of the broadcast call (it is
-- synchronous, so CPU time is its duration; Lua has no monotonic wall clock).
-- GET /count answers "count=N", the open sockets.
local WebSocket = require "luaws"

local port = tonumber(arg and arg[1]) or 0
local size = tonumber(arg and arg[2]) or 16
local payload = ("b"):rep(size)

local sockets, slot = {}, {}   -- an array for broadcast, and each socket's index in it

local function add(ws)
  local i = #sockets + 1
  sockets[i], slot[ws] = ws, i
end

local function remove(ws)
  local i = slot[ws]
  if not i then return end
  local n = #sockets
  local last = sockets[n]
  sockets[i], slot[last] = last, i   -- swap the last one into the hole
  sockets[n], slot[ws] = nil, nil
end

local function broadcast()
  local t0 = os.clock()
  local count = WebSocket.broadcast(sockets, payload)
  return count, (os.clock() - t0) * 1000
end

local server = assert(WebSocket.listen { host = "127.0.0.1", port = port, backlog = 4096 })

server.onrequest = function(req, res)
  res:writeHead(200, { ["Content-Type"] = "text/plain" })
  if req.url == "/broadcast" then
    local count, ms = broadcast()
    res:finish(string.format("count=%d ms=%.3f\n", count, ms))
  elseif req.url == "/count" then
    res:finish(string.format("count=%d\n", #sockets))
  else
    res:finish("luaws broadcast server: GET /broadcast, GET /count\n")
  end
end

server.onupgrade = function(req)
  if not WebSocket.isWebSocket(req) then return end
  local ws = WebSocket(req)
  add(ws)
  ws.onmessage = function(event)
    if event.data == "broadcast" then
      local count, ms = broadcast()
      io.stdout:write(string.format("broadcast count=%d ms=%.3f\n", count, ms))
      io.stdout:flush()
    end
  end
  ws.onclose = function() remove(ws) end
end

io.stdout:write("listening on ", server.port, "\n")
io.stdout:flush()
WebSocket.run()
