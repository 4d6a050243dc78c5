-- The luaws client that spec/chaos/attack.py points at its hostile servers. Prints one
-- line per event ("open", "message <binary|text> <bytes>", "error <message>",
-- "close <code> <wasClean>"), "messages <n> <bytes>" before the close, and exits by
-- itself: after onclose, or with "timeout" after a hard bound.
--   lua5.4 spec/chaos/client.lua URL [name=value ...]   (numeric socket options)
--   quiet=1: no line per message (floods), only the count.
local WebSocket = require "luaws"

local url = assert(arg[1], "usage: client.lua URL [option=value ...]")
local opts, quiet, bound = {}, false, 10
for i = 2, #arg do
  local k, v = arg[i]:match("^([%w_]+)=(.*)$")
  if k == "quiet" then quiet = v == "1"
  elseif k == "bound" then bound = tonumber(v)
  elseif k then opts[k] = tonumber(v) or v end
end

local function say(...)
  io.stdout:write(table.concat({ ... }, " "), "\n")
  io.stdout:flush()
end

local count, bytes = 0, 0
local ws, err = WebSocket.Client(url, nil, opts)
if not ws then say("error", tostring(err)); os.exit(3) end

local timer = WebSocket.setTimeout(function()
  say("timeout")
  os.exit(2)
end, bound * 1000)

ws.onopen = function() say("open") end
ws.onmessage = function(e)
  count, bytes = count + 1, bytes + #e.data
  if not quiet then say("message", e.binary and "binary" or "text", #e.data) end
end
ws.onerror = function(e) say("error", (tostring(e.message):gsub("\n", " "))) end
ws.onclose = function(e)
  say("messages", count, bytes)
  say("close", e.code, tostring(e.wasClean))
  WebSocket.clearTimeout(timer)
end

WebSocket.run()
say("exit")
