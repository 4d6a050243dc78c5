-- Server-sent events: a page at / that opens new EventSource("/events") and lists what
-- arrives, and the stream at /events, a tick a second. Each tick carries its number as
-- its id, so a browser that reconnects (it does, `retry` seconds after a stream ends)
-- sends Last-Event-ID and the count carries on where it stopped.
--   lua5.4 examples/eventsource_server.lua [PORT [TICKS [SECONDS]]]
-- PORT 8000 (0: any free port); TICKS per connection, 30; SECONDS between ticks, 1.
-- Open http://127.0.0.1:PORT/ in a browser, or read the stream with curl:
--   curl -N -H 'Accept: text/event-stream' http://127.0.0.1:PORT/events
local WebSocket = require "luaws"
local EventSource = WebSocket.EventSource

local port = tonumber(arg and arg[1]) or 8000
local ticks = tonumber(arg and arg[2]) or 30
local interval = tonumber(arg and arg[3]) or 1

local PAGE = [[<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>luaws EventSource</title>
<style>
  body { font: 15px/1.5 system-ui, sans-serif; margin: 2em; }
  #state { font-weight: bold; }
  li { font-family: ui-monospace, monospace; }
</style>
</head>
<body>
<h1>Server-sent events from luaws</h1>
<p>Stream: <span id="state">connecting</span></p>
<ol id="events"></ol>
<script>
  var list = document.getElementById("events");
  var state = document.getElementById("state");
  var source = new EventSource("/events");
  function show(e) {
    var li = document.createElement("li");
    li.textContent = e.type + (e.lastEventId ? " #" + e.lastEventId : "") + ": " + e.data;
    list.appendChild(li);
  }
  source.addEventListener("greeting", show);
  source.addEventListener("tick", show);
  source.onmessage = show;
  source.onopen = function() { state.textContent = "open"; };
  source.onerror = function() {   // the stream ended: the browser reconnects after retry
    state.textContent = source.readyState === EventSource.CLOSED ? "closed" : "reconnecting";
  };
</script>
</body>
</html>
]]

local server = assert(WebSocket.listen { host = "127.0.0.1", port = port })

server.onrequest = function(req, res)
  local path = req.url:match("^[^?]*")
  if path == "/events" and EventSource.isEventSource(req) then
    local es = EventSource(req, res, { retry = 2, ping = 15 })
    local n = tonumber(es.lastEventId) or 0   -- a reconnecting browser says where it was
    print(("events: a client at tick %d"):format(n))
    es:send(("hello; tick %d comes next"):format(n + 1), { event = "greeting" })
    local sent, timer = 0, nil
    timer = WebSocket.setInterval(function()
      n, sent = n + 1, sent + 1
      es:send(os.date("!%H:%M:%S UTC"), { event = "tick", id = n })
      if sent >= ticks then es:close() end   -- the browser comes back after retry
    end, interval * 1000)
    es.onclose = function()
      WebSocket.clearInterval(timer)
      print(("events: stream closed at tick %d"):format(n))
    end
  elseif path == "/" and req.method == "GET" then
    res:writeHead(200, { ["Content-Type"] = "text/html; charset=utf-8" })
    res:finish(PAGE)
  else
    res:writeHead(404, { ["Content-Type"] = "text/plain" })
    res:finish("Not Found\n")
  end
end

print(("eventsource: open http://127.0.0.1:%d/"):format(server.port))
io.stdout:flush()
WebSocket.run()
