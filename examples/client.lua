-- A client: connects, sends a few messages, prints what comes back, then closes.
--   lua5.4 examples/client.lua ws://127.0.0.1:8000/
local WebSocket = require "luaws"

local url = arg and arg[1] or "ws://127.0.0.1:8000/"
local ws = WebSocket.Client(url, { "echo" })
local messages = { "Hello, world!", "¡Hola, mundo!", string.rep("x", 70000) }
local received = 0

ws.onopen = function()
  print(("open: %s (protocol %q)"):format(ws.url, ws.protocol))
  for _, m in ipairs(messages) do ws:send(m) end
  ws:send("\0\1\2\3", "binary")
end

ws.onmessage = function(event)
  received = received + 1
  local shown = #event.data > 40 and (event.data:sub(1, 20) .. "... (" .. #event.data .. " bytes)") or event.data
  if event.binary then shown = ("%d binary bytes"):format(#event.data) end
  print("message: " .. shown)
  if received == #messages + 1 then ws:close(1000, "done") end
end

ws.onerror = function(event) print("error: " .. event.message) end
ws.onclose = function(event)
  print(("close: code %d, reason %q, clean %s"):format(event.code, event.reason, tostring(event.wasClean)))
end

WebSocket.run()
