--- EventSource: server-sent events (WHATWG HTML, "Server-sent events") on a plain HTTP
--- response, as faye-websocket's EventSource.
--
-- Design criteria:
--  * built on the public Response only (writeHead, write, finish, ondrain, onclose), so
--    how the response is framed below (Connection: close, chunked, keep-alive) is not
--    this file's business;
--  * one send is one res:write, and its result (true, or nil, message, name) is send's;
--  * misuse raises (bad options, a line break in an event name or id); a stream that is
--    gone is a runtime failure (nil, "ECLOSED: ...", "ECLOSED");
--  * onclose fires exactly once, and never from inside close(), as a socket's.
local core = require "luaws.core"
local options = require "luaws.options"

local CONNECTING, OPEN, CLOSED = 0, 1, 3   -- faye's numbers: WebSocket's, CLOSING unused

local EventSource = { CONNECTING = CONNECTING, OPEN = OPEN, CLOSING = 2, CLOSED = CLOSED }
local methods = {}

local mt = {
  __index = function(es, k)
    if k == "bufferedAmount" then
      -- Live from the connection; none once the stream is closed (under keep-alive the
      -- connection may go on to carry another response).
      local conn = rawget(es, "readyState") ~= CLOSED and rawget(es, "_res")._conn
      return conn and conn.bufferedAmount or 0
    end
    return methods[k]
  end,
}

-- ---- the wire format -------------------------------------------------------------

-- "name: value", or "name:" for an empty value (a space would be the value's, were it
-- not stripped: the parser removes one leading space).
local function field(name, value)
  if value == "" then return name .. ":\n" end
  return name .. ": " .. value .. "\n"
end

local FIELDS = { event = true, id = true }

local function field_value(fields, name, level)
  local v = fields[name]
  if v == nil then return nil end
  if type(v) == "number" then v = tostring(v) end
  if type(v) ~= "string" then error(("send: %s must be a string"):format(name), level + 1) end
  -- A line break would end the field early; a NUL makes clients ignore an id.
  if v:find("[\r\n]") or (name == "id" and v:find("%z")) then
    error(("send: %s must not contain CR, LF%s"):format(name, name == "id" and " or NUL" or ""),
      level + 1)
  end
  return v
end

--- encode_event(data [, { event =, id = }]): the bytes of one event. Each line of data
--- (CR, LF and CRLF all end a line) is its own data field, so the client joins them
--- with LF; misuse raises. Exported for specs.
local function encode_event(data, fields, level)
  level = (level or 1) + 1
  if type(data) == "number" then data = tostring(data) end
  if type(data) ~= "string" then error("send: data must be a string", level) end
  local out = {}
  if fields ~= nil then
    if type(fields) ~= "table" then error("send: options must be a table", level) end
    for k in pairs(fields) do
      if not FIELDS[k] then error(("send: unknown option %q"):format(tostring(k)), level) end
    end
    local event, id = field_value(fields, "event", level), field_value(fields, "id", level)
    if event then out[#out + 1] = field("event", event) end
    if id then out[#out + 1] = field("id", id) end
  end
  if not data:find("[\r\n]") then
    out[#out + 1] = field("data", data)
  else
    data = (data:gsub("\r\n", "\n"):gsub("\r", "\n"))
    for line in (data .. "\n"):gmatch("([^\n]*)\n") do out[#out + 1] = field("data", line) end
  end
  out[#out + 1] = "\n"   -- the blank line that dispatches the event
  return table.concat(out)
end

function EventSource.encode_event(data, fields)
  local bytes = encode_event(data, fields, 2)   -- not a tail call: it would shift the level
  return bytes
end

-- A comment line: clients ignore it; it keeps proxies from timing out an idle stream.
local PING = ":\n\n"

-- ---- events ------------------------------------------------------------------------

local function traceback(err)
  if type(err) == "string" then return debug.traceback(err, 2) end
  return err
end

-- Calls es.on<kind> and the listeners (a snapshot: one added by a listener waits for
-- the next event). Each runs even when another raised; the first error is raised again
-- afterwards for the dispatcher to report, and, as on a socket, closes the stream.
local function dispatch(es, kind)
  local event = { type = kind, target = es }
  local calls = {}
  local handler = rawget(es, "on" .. kind)
  if type(handler) == "function" then calls[1] = handler end
  local list = es._listeners[kind]
  if list then for i = 1, #list do calls[#calls + 1] = list[i] end end
  local first
  for i = 1, #calls do
    local fn = calls[i]
    local ok, err = xpcall(function() return fn(event) end, traceback)
    if not ok and first == nil then first = err end
  end
  if first ~= nil then
    if kind ~= "close" then es:close() end
    error(first, 0)
  end
end

local function stop_timer(es, name)
  local t = rawget(es, name)
  if t then core.clear_timer(t); es[name] = nil end
end

local function fire_close(es)
  if es._close_fired then return end
  es._close_fired = true
  stop_timer(es, "_close_timer")
  local res = es._res
  res.onclose, res.ondrain = nil, nil
  dispatch(es, "close")
end

-- The client went away (or the server is closing): closed now, onclose now.
local function gone(es)
  es.readyState = CLOSED
  stop_timer(es, "_ping_timer")
  fire_close(es)
end

-- ---- the object --------------------------------------------------------------------

local function check(es, what)
  if getmetatable(es) ~= mt then error(("EventSource:%s: call it with a colon"):format(what), 3) end
end

--- es:send(data [, { event =, id = }]): true, or nil, message, name.
function methods.send(es, data, fields)
  check(es, "send")
  local frame = encode_event(data, fields, 2)
  if es.readyState ~= OPEN then return nil, "ECLOSED: the event stream is closed", "ECLOSED" end
  return es._res:write(frame)
end

--- es:ping(): a comment line; true, or nil, message, name.
function methods.ping(es)
  check(es, "ping")
  if es.readyState ~= OPEN then return nil, "ECLOSED: the event stream is closed", "ECLOSED" end
  return es._res:write(PING)
end

--- es:close(): ends the response; onclose fires on a later turn of the loop. Twice is fine.
function methods.close(es)
  check(es, "close")
  if es.readyState == CLOSED then return end
  es.readyState = CLOSED
  stop_timer(es, "_ping_timer")
  local res = es._res
  res.onclose, res.ondrain = nil, nil   -- the timer below tells, whatever finish does
  res:finish()
  es._close_timer = core.set_timer(function() fire_close(es) end, 0, false)
end

function methods.addEventListener(es, kind, fn)
  check(es, "addEventListener")
  if type(kind) ~= "string" then error("event type must be a string", 2) end
  if type(fn) ~= "function" then error("listener must be a function", 2) end
  local list = es._listeners[kind]
  if not list then list = {}; es._listeners[kind] = list end
  for i = 1, #list do if list[i] == fn then return end end
  list[#list + 1] = fn
end

function methods.removeEventListener(es, kind, fn)
  check(es, "removeEventListener")
  local list = es._listeners[kind]
  if not list then return end
  for i = #list, 1, -1 do
    if list[i] == fn then table.remove(list, i) end
  end
end

local OURS = { ["content-type"] = "Content-Type", ["cache-control"] = "Cache-Control" }

-- Ours, and the user's; a user's header of the same name (any case) replaces ours.
local function head_fields(user)
  local h = { ["Content-Type"] = "text/event-stream", ["Cache-Control"] = "no-cache" }
  for name, value in pairs(user or {}) do
    local ours = OURS[name:lower()]
    if ours then h[ours] = nil end
    h[name] = value
  end
  return h
end

--- EventSource(req, res [, { headers =, retry =, ping = }]): answers req with an event
--- stream. retry (seconds, default 5) is sent as the client's reconnection time; ping
--- (seconds, default 10, math.huge for none) sends a comment that often.
local function new(req, res, opts)
  if type(req) ~= "table" or type(req.headers) ~= "table" then
    error("EventSource(req, res, options): req must be the request onrequest got", 3)
  end
  if type(res) ~= "table" or type(res.writeHead) ~= "function" or type(res.write) ~= "function" then
    error("EventSource(req, res, options): res must be the response onrequest got", 3)
  end
  if res.headersSent then error("EventSource: the response's head was already sent", 3) end
  local o = options.eventsource(opts, 3)
  local es = setmetatable({
    url = (req.tls and "https://" or "http://") .. (req.headers.host or "localhost") ..
      (req.url or "/"),
    lastEventId = req.headers["last-event-id"] or "",
    readyState = CONNECTING,
    _res = res,
    _listeners = {},
  }, mt)
  res:writeHead(200, head_fields(o.headers))
  res.onclose = function() if not es._close_fired then gone(es) end end
  res.ondrain = function() if es.readyState == OPEN then dispatch(es, "drain") end end
  -- The head goes with the first bytes of the body: open once they are on their way.
  if not res:write(("retry: %d\n\n"):format(o.retry_ms)) then
    es.readyState = CLOSED
    es._close_timer = core.set_timer(function() fire_close(es) end, 0, false)
    return es
  end
  if es.readyState == CONNECTING then es.readyState = OPEN end
  if o.ping_ms > 0 and es.readyState == OPEN then
    es._ping_timer = core.set_timer(function() es:ping() end, o.ping_ms, true)
  end
  return es
end

--- EventSource.isEventSource(req): a GET whose Accept lists text/event-stream (q > 0).
function EventSource.isEventSource(req)
  if type(req) ~= "table" or req.method ~= "GET" or type(req.headers) ~= "table" then
    return false
  end
  local accept = req.headers.accept
  if type(accept) ~= "string" then return false end
  for range in accept:gmatch("[^,]+") do
    local mtype, params = range:match("^%s*([^;%s]+)%s*(.*)$")
    if mtype and mtype:lower() == "text/event-stream" then
      local q = params:match(";%s*[qQ]%s*=%s*([%d.]+)")
      if not q or tonumber(q) == nil or tonumber(q) > 0 then return true end
    end
  end
  return false
end

return setmetatable(EventSource, {
  __call = function(_, req, res, opts)
    local es = new(req, res, opts)   -- not a tail call: error levels count this frame
    return es
  end,
})
