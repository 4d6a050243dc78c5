-- The topics test's server (bench/run.sh, test j): holds every connection it gets; on
-- demand subscribes them all to one topic, then publishes to it.
--   lua5.4 bench/topics_server.lua [port]   (port 0: any free port)
-- GET /subscribe: every open socket subscribes to "bench"; answers "count=N
--   subscribed=S topic_memory=B" (B: what the topic registry holds, WebSocket.stats()).
-- GET /publish?n=P&size=S: P publishes of S bytes of text to "bench", back to back,
--   timed with the monotonic clock around each WebSocket.publish call; answers
--   "count=N publishes=P delivered=D skipped=K us_per_publish=T p50_us=M min_us=A
--   max_us=B t0_ns=C" (T the mean, M the median; C: WebSocket.hrtime() before the first,
--   CLOCK_MONOTONIC on Linux, which the generator's receive times use too).
-- GET /count: "count=N", the open sockets.
local WebSocket = require "luaws"

local port = tonumber(arg and arg[1]) or 0
local open, sockets = 0, setmetatable({}, { __mode = "k" })

local function subscribe_all()
  for ws in pairs(sockets) do ws:subscribe("bench") end
  local st = WebSocket.stats()
  return string.format("count=%d subscribed=%d topic_memory=%d\n", open, st.subscriptions,
    st.topic_memory)
end

local function publish_all(p, size)
  local payload = ("p"):rep(size)
  local delivered, skipped, times = 0, 0, {}
  local t0 = WebSocket.hrtime()
  for i = 1, p do
    local a = WebSocket.hrtime()
    local d, k = WebSocket.publish("bench", payload)
    times[i] = (WebSocket.hrtime() - a) / 1e3
    delivered, skipped = delivered + d, skipped + k
  end
  local us = (WebSocket.hrtime() - t0) / 1e3 / p
  table.sort(times)
  return string.format("count=%d publishes=%d delivered=%d skipped=%d us_per_publish=%.1f " ..
    "p50_us=%.1f min_us=%.1f max_us=%.1f t0_ns=%d\n", open, p, delivered, skipped, us,
    times[math.ceil(p / 2)], times[1], times[p], t0)
end

local server = assert(WebSocket.listen { host = "127.0.0.1", port = port, backlog = 4096 })

server.onrequest = function(req, res)
  res:writeHead(200, { ["Content-Type"] = "text/plain" })
  local path, query = req.url:match("^([^?]*)%??(.*)$")
  if path == "/subscribe" then
    res:finish(subscribe_all())
  elseif path == "/publish" then
    local p = tonumber(query:match("n=(%d+)")) or 100
    local size = tonumber(query:match("size=(%d+)")) or 64
    res:finish(publish_all(p, size))
  elseif path == "/count" then
    res:finish(string.format("count=%d\n", open))
  else
    res:finish("luaws topics server: GET /subscribe, /publish?n=P&size=S, /count\n")
  end
end

server.onupgrade = function(req)
  if not WebSocket.isWebSocket(req) then return end
  local ws = WebSocket(req)
  open = open + 1
  sockets[ws] = true   -- weak: an open socket is anchored by luaws itself
  ws.onclose = function() open = open - 1 end
end

io.stdout:write("listening on ", server.port, "\n")
io.stdout:flush()
WebSocket.run()
