-- The server that spec/chaos/attack.py attacks from outside: a luaws process with short
-- limits, whose URL path selects a behaviour. Prints "port N" on stdout, then serves
-- until GET /shutdown (so that the sanitizers' exit checks run).
--   lua5.4 spec/chaos/server.lua      (LUA_PATH / LUA_CPATH as scripts/run_specs.sh)
-- LUAWS_CHAOS_OLD=1: pass only the options that luaws had before the new limits.
local WebSocket = require "luaws"
local options = require "luaws.options"

-- Short limits, so that every timeout case of the suite takes seconds.
local SOCKET = {
  maxLength = 16 * 1024 * 1024,
  max_buffered = 8 * 1024 * 1024,
  idle_timeout = 1, pong_timeout = 1, message_timeout = 2, send_timeout = 2,
}
local NEW = { idle_timeout = true, pong_timeout = true, message_timeout = true, send_timeout = true }
local old = os.getenv("LUAWS_CHAOS_OLD") == "1"

local socket_opts, missing = {}, {}
for name, value in pairs(SOCKET) do
  local ok = not (old and NEW[name]) and pcall(options.socket, { [name] = value })
  if ok then socket_opts[name] = value else missing[#missing + 1] = name end
end
table.sort(missing)
-- /big: the default maxLength (2^26-1), for a stalled frame of 64 MiB-1.
local big_opts = {}
for k, v in pairs(socket_opts) do big_opts[k] = v end
big_opts.maxLength = nil

WebSocket.onhandlererror = function(err)
  io.stderr:write("chaos server: handler error: ", tostring(err):gsub("\n.*", ""), "\n")
end

local server = assert(WebSocket.listen {
  host = "127.0.0.1", port = 0, handshake_timeout = 2,
  max_head = 16 * 1024, max_headers = 64,
})

server.onrequest = function(req, res)
  if req.url == "/shutdown" then
    res:writeHead(200, { ["Content-Type"] = "text/plain" })
    res:finish("bye\n")
    WebSocket.setTimeout(function()
      server:close()
      WebSocket.stop()
    end, 50)
    return
  end
  res:writeHead(200, { ["Content-Type"] = "text/plain" })
  res:finish("luaws chaos server\n")
end

local function echo(event)
  event.target:send(event.data, event.binary and "binary" or nil)
end

local broadcast_set = {}   -- socket -> true, for /broadcast
local function broadcast_list()
  local list = {}
  for ws in pairs(broadcast_set) do list[#list + 1] = ws end
  return list
end

local function query(url)
  local q = {}
  for k, v in (url:match("%?(.*)") or ""):gmatch("([^&=]+)=([^&]*)") do q[k] = v end
  return q
end

local behaviours = {}

behaviours["/echo"] = function(ws) ws.onmessage = echo end

behaviours["/broadcast"] = function(ws)
  broadcast_set[ws] = true
  ws.onmessage = function(e)
    WebSocket.broadcast(broadcast_list(), e.data, e.binary and "binary" or nil)
  end
  ws.onclose = function() broadcast_set[ws] = nil end
end

behaviours["/flood"] = function(ws, req)
  local q = query(req.url)
  local bytes = math.min(tonumber(q.bytes) or 1024, 64 * 1024 * 1024)
  local count = math.min(tonumber(q.count) or 1, 100000)
  local data = string.rep("F", bytes)
  ws.onopen = function()
    for _ = 1, count do ws:send(data, "binary") end   -- return values ignored, as scripts do
  end
  ws.onmessage = echo
end

behaviours["/raise-onmessage"] = function(ws)
  ws.onmessage = function() error("chaos: onmessage raises") end
end

behaviours["/raise-onopen"] = function(ws)
  ws.onopen = function() error("chaos: onopen raises") end
  ws.onmessage = echo
end

behaviours["/raise-onerror"] = function(ws)
  ws.onmessage = echo
  ws.onerror = function() error("chaos: onerror raises") end
end

behaviours["/raise-onclose"] = function(ws)
  ws.onmessage = echo
  ws.onclose = function() error("chaos: onclose raises") end
end

-- Paused on every message: the first resumed from a timer, the later ones at once.
behaviours["/pause-resume"] = function(ws)
  local n = 0
  ws.onmessage = function(e)
    n = n + 1
    ws:pause()
    ws:send(e.data, e.binary and "binary" or nil)
    if n == 1 then
      WebSocket.setTimeout(function() ws:resume() end, 100)
    else
      ws:resume()
    end
  end
end

-- Paused and resumed inside onopen (twice, and a resume too many): reads on as before.
behaviours["/pause-onopen"] = function(ws)
  ws.onopen = function()
    ws:resume()
    ws:pause(); ws:pause(); ws:resume(); ws:resume()
    collectgarbage()
  end
  ws.onmessage = echo
end

-- Every misuse a script might commit: none of it may crash or raise out of C.
behaviours["/misuse"] = function(ws)
  ws.onmessage = function(e)
    ws:send(e.data, e.binary and "binary" or nil)
    pcall(ws.ping, ws, string.rep("p", 200))      -- over 125 bytes
    pcall(ws.send, ws, "\255\254", nil)           -- text that is not UTF-8
    pcall(ws.close, ws, 999)                      -- a code a script may not send
    pcall(ws.close, ws, 1000, string.rep("r", 200))
    ws:close(1000, "bye")
    ws:close()
    ws:close(4000, "again")
    ws:send("after close")
    ws:ping("after close")
    ws:pause(); ws:resume()
    collectgarbage()
  end
  ws.onclose = function()
    ws:send("in onclose")
    ws:close()
    ws:terminate()
    ws:pause(); ws:resume()
    collectgarbage()
  end
end

server.onupgrade = function(req)
  local path = req.url:match("^[^?]*")
  if path == "/raise-onupgrade" then error("chaos: onupgrade raises") end
  local setup = behaviours[path]
  if not setup or not WebSocket.isWebSocket(req) then return end
  local ws = WebSocket(req, nil, path == "/big" and big_opts or socket_opts)
  setup(ws, req)
end
behaviours["/big"] = behaviours["/echo"]

io.stdout:write("port ", server.port, "\n")
io.stdout:write("missing ", #missing > 0 and table.concat(missing, ",") or "-", "\n")
io.stdout:flush()
WebSocket.run()
io.stdout:write("stopped\n")
