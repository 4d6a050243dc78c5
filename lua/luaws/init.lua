--- luaws: a WebSocket client and server for Lua, with its core in C.
--
-- Design criteria (see also ../../README.md):
--  * the browser WebSocket API, as faye-websocket offers it to Node: onopen, onmessage,
--    onerror, onclose, addEventListener, send, ping, close; nothing more abstract;
--  * the C core does the sockets and the protocol; this file checks options, parses URLs
--    and adds the EventTarget sugar;
--  * misuse raises; runtime failures return nil, message, name;
--  * coroutines (luaws.coro) for scripts that read top to bottom, over the same core.
local core = require "luaws.core"
local options = require "luaws.options"

local M = {
  CONNECTING = 0, OPEN = 1, CLOSING = 2, CLOSED = 3,
  _VERSION = "luaws scm",
}

local methods = core.socket_methods
local hooks = setmetatable({}, { __index = M })   -- what C calls back, beside M's own
core.init(hooks)

-- The upgrade request being handled (accepted only inside onupgrade, as in C).
local upgrading = {}

-- ---- the socket ---------------------------------------------------------------

function methods.addEventListener(ws, kind, fn)
  if type(kind) ~= "string" then error("event type must be a string", 2) end
  if type(fn) ~= "function" then error("listener must be a function", 2) end
  local uv = core.uservalue(ws)
  local all = uv.listeners
  if not all then all = {}; uv.listeners = all end
  local list = all[kind]
  if not list then list = {}; all[kind] = list end
  for i = 1, #list do if list[i] == fn then return end end
  list[#list + 1] = fn
end

function methods.removeEventListener(ws, kind, fn)
  local all = core.uservalue(ws).listeners
  local list = all and all[kind]
  if not list then return end
  for i = #list, 1, -1 do
    if list[i] == fn then table.remove(list, i) end
  end
end

local cping = methods._ping
--- ping([data] [, callback]): callback runs when the matching pong arrives.
function methods.ping(ws, data, callback)
  if type(data) == "function" then data, callback = nil, data end
  data = data or ""
  local ok, err, name = cping(ws, data)
  if ok and callback then
    local uv = core.uservalue(ws)
    local waiting = uv.pongs
    if not waiting then waiting = {}; uv.pongs = waiting end
    local list = waiting[data]
    if not list then list = {}; waiting[data] = list end
    list[#list + 1] = callback
  end
  return ok, err, name
end

function hooks._onpong(ws, data)
  local waiting = core.uservalue(ws).pongs
  local list = waiting and waiting[data]
  if not list then return end            -- an unsolicited pong is ignored
  local cb = table.remove(list, 1)
  if #list == 0 then waiting[data] = nil end
  cb(data)
end

-- ---- server side ------------------------------------------------------------------

local server = require "luaws.server"
server.init(M, hooks, upgrading)

-- Does the comma-separated list s name token (any case)? string.find, not gmatch: every
-- handshake passes here, and 5.4's gmatch allocates a match state of over 500 bytes.
local function lists(s, token)
  local init = 1
  while true do
    local i, j = s:find("[^,%s]+", init)
    if not i then return false end
    if j - i + 1 == #token and s:sub(i, j):lower() == token then return true end
    init = j + 1
  end
end

--- WebSocket.isWebSocket(req): is this request a WebSocket upgrade?
function M.isWebSocket(req)
  if type(req) ~= "table" or req.method ~= "GET" then return false end
  local up = req.headers and req.headers.upgrade
  if type(up) ~= "string" then return false end
  return up == "websocket" or lists(up, "websocket")
end

--- WebSocket(req, protocols, options): accept an upgrade request inside onupgrade.
local function accept(req, protocols, opts)
  local conn = upgrading.deferred(req)
  if not conn then
    if req ~= upgrading.req or not req then
      error("WebSocket(req): req is not the upgrade request being handled by onupgrade, " ..
            "nor one it deferred", 2)
    end
    conn = upgrading.conn
  end
  local o = options.socket(opts, 3)
  local chosen
  -- hixie-75 names its one protocol WebSocket-Protocol
  local offered = req.headers["sec-websocket-protocol"] or req.headers["websocket-protocol"]
  if offered and protocols then
    local list = options.protocol_list(protocols, 3)
    local init = 1
    while not chosen do
      local i, j = offered:find("[^,%s]+", init)
      if not i then break end
      local p = offered:sub(i, j)
      for k = 1, #list do
        if list[k] == p then chosen = p; break end
      end
      init = j + 1
    end
  end
  local ws, err, name = core.accept(conn, chosen, options.header_lines(o.headers, 3), o.core)
  if not ws then return nil, err, name end
  ws.url = (req.tls and "wss://" or "ws://") .. (req.headers.host or "localhost") .. req.url
  if o.queue then ws._queue_limits = o.queue end
  if upgrading.req == req then upgrading.req, upgrading.conn = nil, nil end
  -- (set only when there: a nil stored under a new key grows the table in 5.1 and LuaJIT)
  if req._deferred then req._deferred = nil end
  return ws
end

--- WebSocket.EventSource(req, res, options), EventSource.isEventSource(req): server-sent
--- events on a plain HTTP response (lua/luaws/eventsource.lua).
M.EventSource = require "luaws.eventsource"

-- ---- client -------------------------------------------------------------------------

local client = require "luaws.client"
M.Client = client.new

-- ---- coroutines: spawn, connect, sleep, handler; ws:receive, ws:messages ---------------

require("luaws.coro").init(M, client, accept)

-- ---- loop, timers, broadcast --------------------------------------------------------

M.run = core.run
M.stop = core.stop
--- step([block]): run one turn of the loop; true while there is more to do.
M.step = core.step
M.listen = server.listen

function M.setTimeout(fn, ms) return core.set_timer(fn, ms or 0, false) end
function M.setInterval(fn, ms) return core.set_timer(fn, ms or 0, true) end
M.clearTimeout = core.clear_timer
M.clearInterval = core.clear_timer

--- broadcast(sockets, data [, "binary"]): frame data once, send to every open socket.
function M.broadcast(sockets, data, kind)
  return core.broadcast(sockets, data, kind == "binary" or kind == true)
end

--- publish(topic, data [, "binary"]): frame data once (compress once where the sockets'
--- deflate settings allow) and queue it for every open subscriber of topic, each under its
--- own back-pressure policy; returns delivered, skipped, and the list of skipped sockets
--- that stay open without the message (nil when none). ws:subscribe(topic) and
--- ws:unsubscribe(topic) make subscribers; closing leaves every topic.
M.publish = core.publish
--- subscribers(topic): how many sockets are subscribed to topic.
M.subscribers = core.subscribers

--- backplane{ url = "redis://[[user]:password@]host[:port][/db]", prefix = "luaws:",
--- max_queue = 1000, max_queue_bytes = 16 MiB, reconnect_min = 0.1, reconnect_max = 5,
--- connect_timeout = 5 }: topics across processes and hosts through Redis (README,
--- "Across processes: a Redis backplane"); one per Lua state. Returns the backplane:
--- bp.connected, bp.queued, bp.queued_bytes, bp.channels, bp.reconnects (live);
--- bp.onconnect, bp.ondisconnect, bp.onerror(event) (event.message, event.name);
--- bp:close() (returns the publishes dropped unsent). While it is open, publish() sends
--- to Redis too, and returns nil, "EBACKPLANE: ...", "EBACKPLANE" when its queue is full.
function M.backplane(o)
  local bp, err = core.backplane(options.backplane(o, 2))
  if not bp then error(err, 2) end
  bp.prefix = o.prefix or "luaws:"
  return bp
end

--- hrtime(): nanoseconds from an arbitrary point, monotonic (for timing).
M.hrtime = core.hrtime

--- pollable(): the loop as an object another scheduler can wait on (cqueues' protocol:
--- pollfd(), events(), timeout()); after each wake-up, call WebSocket.step().
---   cq:wrap(function()
---     local p = WebSocket.pollable()
---     while WebSocket.step() do cqueues.poll(p) end
---   end)
local Pollable = {
  pollfd = function() return core.backend_fd() end,
  events = function() return "r" end,
  timeout = function() return core.backend_timeout() end,
}
Pollable.__index = Pollable
function M.pollable() return setmetatable({}, Pollable) end

--- stats(): { connections, buffered_in, buffered_out, topics, subscriptions, topic_memory }
--- for the whole loop (buffers and topic_memory in bytes).
M.stats = core.stats

--- active_handles(): libuv handles still open (tests check it drops to zero).
M.active_handles = core.active_handles

return setmetatable(M, {
  __call = function(_, req, protocols, opts) return accept(req, protocols, opts) end,
})
