-- A chat room for browsers. GET / serves index.html (beside this file), whose script
-- joins the room over a WebSocket on /chat; each message, text or binary, goes to
-- everyone in the room with WebSocket.broadcast. GET /watch serves watch.html, which
-- follows the room's text without joining, as server-sent events from /events.
--   lua5.4 examples/chat/server.lua [PORT] [--tls CERT KEY]
-- PORT 8000 (0: any free port). It prints "chat: listening on PORT" once it listens.
-- In the room, "/quit [reason]" asks the server to close your socket (code 4000).
local WebSocket = require "luaws"
local deflate = require "luaws.deflate"
local EventSource = WebSocket.EventSource

local dir = (arg and arg[0] or ""):match("^(.*)/") or "."
local port = tonumber(arg and arg[1]) or 8000
local tls
for i = 2, arg and #arg or 0 do
  if arg[i] == "--tls" then tls = { cert = arg[i + 1], key = arg[i + 2] } end
end

local function read(name)
  local f = assert(io.open(dir .. "/" .. name, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end
local PAGES = { ["/"] = read("index.html"), ["/watch"] = read("watch.html") }

local room = {}       -- the open sockets, as WebSocket.broadcast takes them
local watchers = {}   -- EventSource streams of /events

-- Text goes to the room and to the watchers; binary to the room only (an event stream
-- carries text).
local function tell_all(data, binary)
  WebSocket.broadcast(room, data, binary and "binary" or nil)
  if binary then return end
  for _, es in ipairs(watchers) do es:send(data) end
end

-- Takes item out of list; true if it was there.
local function remove(list, item)
  for i = #list, 1, -1 do
    if list[i] == item then return table.remove(list, i) ~= nil end
  end
  return false
end

local server = assert(WebSocket.listen { host = "127.0.0.1", port = port, tls = tls })

server.onrequest = function(req, res)
  local path = req.url:match("^[^?]*")
  if path == "/events" and EventSource.isEventSource(req) then
    local es = EventSource(req, res, { ping = 15 })
    watchers[#watchers + 1] = es
    es:send(("%d in the room"):format(#room), { event = "hello" })
    es.onclose = function() remove(watchers, es) end
  elseif PAGES[path] and (req.method == "GET" or req.method == "HEAD") then
    res:writeHead(200, { ["Content-Type"] = "text/html; charset=utf-8",
                         ["Cache-Control"] = "no-cache" })
    res:finish(PAGES[path])
  else
    res:writeHead(404, { ["Content-Type"] = "text/plain" })
    res:finish("Not Found\n")
  end
end

server.onupgrade = function(req)
  if req.url:match("^[^?]*") ~= "/chat" or not WebSocket.isWebSocket(req) then
    return req:reject(404, { ["Content-Type"] = "text/plain" }, "no room here\n")
  end
  -- A chat message is small: a megabyte (after inflating) is plenty, and more closes
  -- the sender's socket with 1009.
  local ws = WebSocket(req, nil, { extensions = { deflate }, maxLength = 1024 * 1024 })
  ws.onopen = function()
    room[#room + 1] = ws
    tell_all(("* someone joined (%d here)"):format(#room))
  end
  ws.onmessage = function(event)
    local quit = not event.binary and event.data:match("^/quit ?(.*)$")
    if quit then
      -- a close reason holds at most 123 bytes (RFC 6455 5.5)
      ws:close(4000, (quit ~= "" and #quit <= 123) and quit or "bye")
    else
      tell_all(event.data, event.binary)
    end
  end
  ws.onclose = function(event)
    if not remove(room, ws) then return end   -- it never joined
    tell_all(("* someone left (%d%s)"):format(event.code, event.reason ~= "" and " " .. event.reason or ""))
  end
end

io.stdout:write(("chat: listening on %d\n"):format(server.port))
io.stdout:flush()
WebSocket.run()
