-- The README's first command: an echo server and a client in one process, printing
-- what they exchange. Ends by itself.
local WebSocket = require "luaws"

local server = assert(WebSocket.listen { host = "127.0.0.1", port = 0 })
print("server: listening on 127.0.0.1:" .. server.port)

server.onupgrade = function(req)
  local ws = WebSocket(req, { "echo" })
  print(("server: upgrade %s from %s"):format(req.url, req.headers["user-agent"] or "a client"))
  ws.onmessage = function(event)
    print(("server: got %d %s bytes, echoing"):format(#event.data, event.binary and "binary" or "text"))
    ws:send(event.data, event.binary and "binary" or nil)
  end
  ws.onclose = function(event)
    print(("server: closed %d %q"):format(event.code, event.reason))
    server:close()
  end
end

local ws = WebSocket.Client("ws://127.0.0.1:" .. server.port .. "/echo", { "echo" })
local messages = { "Hello, world!", "¡Hola, mundo!", string.rep("luaws ", 20000) }
local got = 0

ws.onopen = function()
  print(("client: open, protocol %q, status %d"):format(ws.protocol, ws.statusCode))
  for _, m in ipairs(messages) do ws:send(m) end
  ws:send("\0\1\2\3", "binary")
  ws:ping("are you there?", function() print("client: pong") end)
end

ws.onmessage = function(event)
  got = got + 1
  local text = event.binary and ("<%d binary bytes>"):format(#event.data)
    or #event.data > 40 and (event.data:sub(1, 24) .. "... (" .. #event.data .. " bytes)")
    or event.data
  print("client: echo " .. text)
  if got == #messages + 1 then ws:close(1000, "bye") end
end

ws.onerror = function(event) print("client: error " .. event.message) end
ws.onclose = function(event)
  print(("client: closed %d %q clean=%s"):format(event.code, event.reason, tostring(event.wasClean)))
end

WebSocket.run()
