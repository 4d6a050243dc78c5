--- Coroutines: scripts that read top to bottom, over the same sockets and the same loop.
--
-- WebSocket.spawn(fn, ...) runs fn in a coroutine; inside it WebSocket.connect,
-- ws:receive, ws:messages, ws:close and WebSocket.sleep wait by yielding to the loop,
-- and WebSocket.handler(fn) runs one such coroutine per accepted server socket.
-- Design criteria:
--  * a coroutine is resumed from spawn, or from the loop's own callbacks (a socket's
--    events, a timer); nothing here has the C core call Lua from inside a coroutine, so
--    C always calls into the thread that runs the loop (ws:resume() waits a turn);
--  * messages nobody has received wait in a queue per socket; at max_queued messages or
--    max_queued_bytes bytes the socket stops reading, so TCP's back-pressure reaches the
--    peer, and reads again once receive() has taken it down to a quarter (the marks of
--    Python's websockets): memory stays bounded, nothing is lost, the order is kept;
--  * an error in a coroutine goes where a handler's goes (WebSocket.onhandlererror or
--    stderr) and closes the sockets that coroutine opened with 1011, nothing else;
--  * between a yield and its resume there are only Lua-to-Lua calls: Lua 5.1 cannot
--    yield across pcall, a metamethod or a for loop's iterator.
local core = require "luaws.core"
local options = require "luaws.options"

local M = {}

local create, resume, running, status, yield =
  coroutine.create, coroutine.resume, coroutine.running, coroutine.status, coroutine.yield

local methods = core.socket_methods
local cpause, cresume, close = methods.pause, methods.resume, methods.close

local CONNECTING, OPEN = 0, 1
local MAX_QUEUED, MAX_QUEUED_BYTES = 16, 1024 * 1024
local MAX_SECONDS = 2147483.647   -- the longest timer (WS_TIMEOUT_MAX ms)
local PARK = {}                   -- what park() yields: an event or a timer will wake it

-- Whether this Lua can yield from a generic for's iterator (PUC 5.1 cannot).
M.for_yields = (function()
  local co = create(function()
    for _ in function() return yield() end do return end
  end)
  return (resume(co))
end)()

-- Coroutines run by spawn or handler: co -> { sockets = { [ws] = true }, target = ws,
-- close_on_return = bool }. Parked ones: co -> the waiter list it is on (true: a sleep).
local tasks = setmetatable({}, { __mode = "k" })
local parked = setmetatable({}, { __mode = "k" })

local function current(what)
  local co = running()
  if not (co and tasks[co]) then
    error(what .. " waits by yielding: call it inside a function run by WebSocket.spawn " ..
          "or WebSocket.handler", 3)
  end
  return co
end

local function seconds_ms(s, what, level)
  if type(s) ~= "number" or not (s >= 0 and s <= MAX_SECONDS) then
    error(what .. " must be a number of seconds from 0 to " .. MAX_SECONDS, level + 1)
  end
  return s * 1000
end

local step

-- The coroutine ended: an error is reported as a handler's and fails its sockets; a
-- handler's socket closes when its function returns.
local function finish(co, ok, err)
  local task = tasks[co]
  tasks[co] = nil
  for ws in pairs(task.sockets) do core.uservalue(ws)._queue.owner = nil end
  if ok then
    if task.close_on_return then close(task.target, 1000) end
    return
  end
  local others = {}
  for ws in pairs(task.sockets) do
    if ws.readyState == CONNECTING then ws:terminate() end   -- no handshake to close
    if ws ~= task.target then others[#others + 1] = ws end
  end
  core.handler_error(debug.traceback(co, tostring(err)), task.target, others)
end

function step(co, ...)
  local ok, what = resume(co, ...)
  if not ok or status(co) == "dead" then return finish(co, ok, what) end
  if what ~= PARK then   -- a bare coroutine.yield(): carry on at the loop's next turn
    core.set_timer(function() step(co) end, 0)
  end
end

-- Waits on list (a socket's waiters), or for a timer's wake(co, true) when list is nil.
local function park(list)
  local co = running()
  parked[co] = list or true
  if list then list[#list + 1] = co end
  return yield(PARK)
end

-- Resumes co if it is parked on `on`.
local function wake(co, on)
  if parked[co] ~= on then return end
  parked[co] = nil
  if on ~= true then
    for i = #on, 1, -1 do
      if on[i] == co then table.remove(on, i) end
    end
  end
  step(co)
end

-- Wakes every waiter; each looks again at what it waits for (another may have taken it).
local function signal(list)
  local n = #list
  if n == 1 then return wake(list[1], list) end
  local waiting = {}
  for i = 1, n do waiting[i] = list[i] end
  for i = 1, n do wake(waiting[i], list) end
end

-- ---- the receive queue ------------------------------------------------------------

local function queued(st) return st.tail - st.head + 1 end

-- Reading again happens at the loop's next turn: resume() delivers what is waiting at
-- once, and must not call into Lua from inside the coroutine that asked.
local function read_again(ws, st)
  st.paused = false
  core.set_timer(function() cresume(ws) end, 0)
end

local listeners = {}

function listeners.open(e)
  signal(core.uservalue(e.target)._queue.waiters)
end

function listeners.message(e)
  local ws = e.target
  if ws.onmessage ~= nil then return end   -- the callback style takes this socket's messages
  local st = core.uservalue(ws)._queue
  local data = e.data
  local i = st.tail + 1
  st.tail = i
  st.data[i] = data
  st.kinds[i] = e.binary and "binary" or "text"
  st.bytes = st.bytes + #data
  if not st.paused and (queued(st) >= st.max or st.bytes >= st.max_bytes) then
    st.paused = true
    cpause(ws)   -- inside the message's event: the core stops right after it
  end
  signal(st.waiters)
end

function listeners.error(e)
  local st = core.uservalue(e.target)._queue
  st.err, st.err_name = e.message, e.name
end

function listeners.close(e)
  local ws = e.target
  local st = core.uservalue(ws)._queue
  st.closed, st.code, st.reason, st.clean = true, e.code, e.reason, e.wasClean
  st.paused = false
  local task = st.owner and tasks[st.owner]
  if task then task.sockets[ws] = nil end
  signal(st.waiters)
end

-- The socket's queue, made on first use (a socket from connect or handler has one from
-- the start, so it misses nothing). owner: the coroutine whose socket it is.
local function attach(ws, owner)
  local uv = core.uservalue(ws)
  local st = uv._queue
  if st then return st end
  local limits = uv._queue_limits
  st = {
    data = {}, kinds = {}, head = 1, tail = 0, bytes = 0, waiters = {},
    max = limits and limits.messages or MAX_QUEUED,
    max_bytes = limits and limits.bytes or MAX_QUEUED_BYTES,
    owner = owner,
  }
  uv._queue = st
  -- A socket freed before it was first used here: its close event went by (the core's
  -- free leaves `version` in the uservalue); its code went to onclose.
  if uv.version ~= nil then st.closed = true end
  for kind, fn in pairs(listeners) do methods.addEventListener(ws, kind, fn) end
  if owner then tasks[owner].sockets[ws] = true end
  return st
end

local function queue_of(ws, what)
  if ws.onmessage ~= nil then
    error(what .. ": this socket has an onmessage handler, which takes its messages " ..
          "(set ws.onmessage = nil to receive them here; addEventListener listeners may stay)", 3)
  end
  return attach(ws)
end

--- ws:receive([seconds]): the next message, as data, "text" or "binary". On timeout
--- nil, "timeout", "ETIMEDOUT"; once the socket has closed (and its queue is empty)
--- nil, "closed", code, reason. receive(0) only looks.
function methods.receive(ws, seconds)
  local co = current("ws:receive")
  local st = queue_of(ws, "ws:receive")
  local ms = seconds ~= nil and seconds ~= math.huge and seconds_ms(seconds, "receive: timeout", 2)
  local timer, expired = nil, ms == 0
  while true do
    local i = st.head
    if i <= st.tail then
      local data, kind = st.data[i], st.kinds[i]
      st.data[i], st.kinds[i] = nil, nil
      st.head = i + 1
      st.bytes = st.bytes - #data
      if st.head > st.tail then st.head, st.tail = 1, 0 end
      if st.paused and queued(st) <= st.max / 4 and st.bytes <= st.max_bytes / 4 then
        read_again(ws, st)
      end
      if timer then core.clear_timer(timer) end
      return data, kind
    end
    if st.closed then
      if timer then core.clear_timer(timer) end
      return nil, "closed", st.code, st.reason
    end
    if expired then return nil, "timeout", "ETIMEDOUT" end
    if ms and not timer then
      timer = core.set_timer(function()
        expired = true
        wake(co, st.waiters)
      end, ms)
    end
    park(st.waiters)
  end
end

--- for data, kind in ws:messages() do ... end: every message until the socket closes.
function methods.messages(ws)
  if not M.for_yields then
    error("ws:messages(): Lua 5.1 cannot yield inside a for loop's iterator; write " ..
          "`while true do local data, kind = ws:receive() if not data then break end ... end`", 2)
  end
  current("ws:messages")
  queue_of(ws, "ws:messages")
  local receive = methods.receive
  return function()
    local data, kind = receive(ws)
    if data then return data, kind end
  end
end

--- ws:close([code [, reason]]): in a coroutine, on a socket that receives, waits for the
--- close to complete and returns code, reason, wasClean. Elsewhere as before: true.
function methods.close(ws, code, reason)
  local ok = close(ws, code, reason)
  local st = core.uservalue(ws)._queue
  if not st then return ok end
  -- The peer's close frame is behind what waits unread; the core discards the messages
  -- that come after our close, and keeps looking for it.
  if st.paused then read_again(ws, st) end
  local co = running()
  if not (co and tasks[co]) or (st.closed and not st.code) then return ok end
  while not st.closed do park(st.waiters) end
  return st.code, st.reason, st.clean
end

--- ws:resume(): from a coroutine, reading resumes at the loop's next turn.
function methods.resume(ws)
  local co = running()
  if co and tasks[co] then
    core.set_timer(function() cresume(ws) end, 0)
  else
    cresume(ws)
  end
end

-- ---- the module functions --------------------------------------------------------

function M.init(WebSocket, client, accept)
  --- WebSocket.spawn(fn, ...): runs fn(...) in a coroutine now, until it first waits.
  function WebSocket.spawn(fn, ...)
    if type(fn) ~= "function" then error("WebSocket.spawn: fn must be a function", 2) end
    local co = create(fn)
    tasks[co] = { sockets = {} }
    step(co, ...)
    return co
  end

  --- WebSocket.sleep(seconds): waits on a timer.
  function WebSocket.sleep(seconds)
    local co = current("WebSocket.sleep")
    local ms = seconds_ms(seconds, "WebSocket.sleep: seconds", 2)
    core.set_timer(function() wake(co, true) end, ms)
    park(nil)
  end

  --- WebSocket.connect(url, protocols, options): in a coroutine, a client socket once
  --- open; or nil, message, name (refused, failed handshake, timed out).
  function WebSocket.connect(url, protocols, opts)
    local co = current("WebSocket.connect")
    local ws, err, name = client.open(url, protocols, opts, 3)
    if not ws then return nil, err, name end
    local st = attach(ws, co)
    while ws.readyState == CONNECTING and not st.closed do park(st.waiters) end
    if ws.readyState == OPEN then
      local task = tasks[co]
      task.target = task.target or ws   -- what onhandlererror is told, should co raise
      return ws
    end
    return nil, st.err or "ECLOSED: closed during the opening handshake", st.err_name or "ECLOSED"
  end

  --- WebSocket.handler(fn [, protocols [, options]]): an onupgrade function that accepts
  --- each WebSocket upgrade and runs fn(ws, req) in a coroutine of its own; the socket
  --- closes when fn returns (1000) or raises (1011).
  function WebSocket.handler(fn, protocols, opts)
    if type(fn) ~= "function" then error("WebSocket.handler: fn must be a function", 2) end
    options.protocol_list(protocols, 2)   -- misuse raises here, not at each upgrade
    options.socket(opts, 2)
    return function(req)
      if not WebSocket.isWebSocket(req) then return end   -- the server answers 400
      local ws = accept(req, protocols, opts)
      if not ws then return end   -- the client went away meanwhile
      local co = create(fn)
      tasks[co] = { sockets = {}, target = ws, close_on_return = true }
      attach(ws, co)
      step(co, ws, req)
    end
  end
end

return M
