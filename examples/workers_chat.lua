-- A chat room served by every core: luaws serve starts one worker process per CPU, each
-- listens on the same port (reuseport: the kernel spreads the connections), and every
-- message reaches every client, whichever worker holds it, through the backplane (Redis
-- pub/sub under the topics).
--   luaws serve examples/workers_chat.lua [PORT [REDIS_URL]]
--   luaws serve --workers 2 --restart examples/workers_chat.lua 8000 redis://127.0.0.1:6379
-- PORT defaults to 8000, REDIS_URL to redis://127.0.0.1:6379. Without a backplane (a
-- luaws without one, or Redis down) each worker's clients only hear each other.
-- Connect with `luaws connect ws://127.0.0.1:8000/` from two terminals.
local WebSocket = require "luaws"

local port = tonumber(arg[1]) or 8000
local redis = arg[2] or "redis://127.0.0.1:6379"
local worker = os.getenv("LUAWS_WORKER") or "1"   -- set by luaws serve: 1 to N

local function say(...)
  io.stderr:write("worker ", worker, ": ", string.format(...), "\n")
end

-- Publishes reach the subscribers of every process connected to the same Redis.
if WebSocket.backplane then
  local ok, err = WebSocket.backplane { url = redis, prefix = "workers_chat:" }
  if not ok then say("no backplane (%s): this worker's clients only hear each other", err) end
else
  say("this luaws has no backplane: this worker's clients only hear each other")
end

local server = assert(WebSocket.listen { host = "127.0.0.1", port = port, reuseport = true })

server.onrequest = function(_, res)
  res:writeHead(200, { ["Content-Type"] = "text/plain" })
  res:finish("luaws workers chat: worker " .. worker .. " answered\n")
end

server.onupgrade = function(req)
  if not WebSocket.isWebSocket(req) then return end
  local ws = WebSocket(req)
  ws:subscribe("room")
  ws.onmessage = function(e)
    WebSocket.publish("room", e.data, e.binary and "binary" or nil)
  end
end

say("listening on 127.0.0.1:%d", server.port)
WebSocket.run()
