-- Test i's server (bench/run.sh): plain HTTP, the same small answer to every request,
-- "Hello, world!" (13 bytes, text/plain), on kept-alive and pipelined connections. Its
-- counterpart on Node's http module is spec/peers/http_server.js.
--   lua5.4 bench/http_server.lua [port]    (port 0, the default: any free port)
local WebSocket = require "luaws"

pcall(collectgarbage, "generational")   -- as examples/echo_server.lua

local port = tonumber(arg and arg[1]) or 0
local server = assert(WebSocket.listen { host = "127.0.0.1", port = port })

local BODY = "Hello, world!"
local HEADERS = { ["Content-Type"] = "text/plain" }

-- The whole body comes with finish(), so the answer carries its Content-Length and the
-- connection stays open for the next request.
server.onrequest = function(req, res)
  res:writeHead(200, HEADERS)
  res:finish(BODY)
end

io.stdout:write("listening on ", server.port, "\n")
io.stdout:flush()
WebSocket.run()
