-- An echo server: every message comes back to its sender.
--   lua5.4 examples/echo_server.lua [port]     (port 0, the default here: any free port)
--   lua5.4 examples/echo_server.lua PORT --tls CERT KEY     the same over wss://
--   lua5.4 examples/echo_server.lua PORT --deflate          with permessage-deflate
--   lua5.4 examples/echo_server.lua PORT --ondata           ws.ondata, no event objects
--   luaws serve --workers 2 examples/echo_server.lua PORT --reuseport
--                                             one echo server per worker, on one port
-- The flags go in any order after the port. --deflate takes the defaults (context
-- takeover both ways, windows of 15 bits, zlib level 6, memLevel 8) but for the
-- threshold: 256 bytes, as in the benchmarks' Node ws server (spec/peers/ws_echo_server.js).
local WebSocket = require "luaws"

-- Lua 5.4: a server's messages and event objects die young, which the generational
-- collector handles with less work (5.1 to 5.3 and LuaJIT say no, and keep theirs).
pcall(collectgarbage, "generational")

local port = tonumber(arg and arg[1]) or 8000
local tls, opts, ondata, reuseport
for i = 2, arg and #arg or 0 do
  if arg[i] == "--tls" then
    tls = { cert = arg[i + 1], key = arg[i + 2] }
  elseif arg[i] == "--ondata" then
    ondata = true
  elseif arg[i] == "--deflate" then
    opts = { extensions = { require("luaws.deflate").configure { threshold = 256 } } }
  elseif arg[i] == "--reuseport" then
    reuseport = true
  end
end
local server = assert(WebSocket.listen { host = "127.0.0.1", port = port, tls = tls, reuseport = reuseport })

server.onrequest = function(req, res)
  res:writeHead(200, { ["Content-Type"] = "text/plain" })
  res:finish("luaws echo server: connect with a WebSocket client\n")
end

-- One handler for every socket: event.target is the socket the message came to.
local function echo(event)
  event.target:send(event.data, event.binary and "binary" or nil)
end

-- The same without an event object per message (--ondata): ondata(data, binary, ws).
local function echo_data(data, binary, ws)
  ws:send(data, binary and "binary" or nil)
end

local protocols = { "echo" }   -- made once, not per connection

server.onupgrade = function(req)
  if not WebSocket.isWebSocket(req) then return end
  local ws = WebSocket(req, protocols, opts)
  if ondata then ws.ondata = echo_data else ws.onmessage = echo end
end

io.stdout:write("listening on ", server.port, "\n")
io.stdout:flush()
WebSocket.run()
