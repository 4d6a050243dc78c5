-- Shared by the specs: run the loop until something happens (bounded), raw peers,
-- external peer processes, and the end-of-test check that nothing is left open.
local WebSocket = require "luaws"
local client = require "luaws.client"

local H = { WebSocket = WebSocket }

-- Scale for slow runs (valgrind): fewer iterations, longer timeouts.
H.slow = os.getenv("LUAWS_VALGRIND") ~= nil
H.timeout_scale = H.slow and 20 or (os.getenv("LUAWS_SANITIZE") and 4 or 1)

--- Runs the loop until cond() is true; fails the test after `seconds`.
function H.wait(cond, seconds, what)
  seconds = (seconds or 5) * H.timeout_scale
  local expired = false
  local t = WebSocket.setTimeout(function() expired = true end, seconds * 1000)
  while not cond() do
    if expired then
      error(("timed out after %gs waiting for %s"):format(seconds, what or "a condition"), 2)
    end
    WebSocket.step(true)
  end
  WebSocket.clearTimeout(t)
end

--- H.wait for a condition nothing in the loop signals (it reads files, runs a command):
--- the loop wakes every 20 ms to look.
function H.poll(cond, seconds, what)
  local t = WebSocket.setInterval(function() end, 20)
  local ok, err = pcall(H.wait, cond, seconds, what)
  WebSocket.clearInterval(t)
  if not ok then error(err, 2) end
end

--- A record's messages as "t:data" (text) and "b:data" (binary), in order.
function H.datas(rec)
  local t = {}
  for i, e in ipairs(rec.messages) do t[i] = (e.binary and "b:" or "t:") .. e.data end
  return t
end

--- Runs the loop for the events due now, without blocking.
function H.drain(rounds)
  for _ = 1, rounds or 10 do WebSocket.step(false) end
end

local open_servers = {}
local open_sockets = {}   -- what the helpers made; terminated by H.cleanup()

--- Registers a socket for H.cleanup() to terminate if the test leaves it open.
function H.track(ws)
  open_sockets[#open_sockets + 1] = ws
  return ws
end

--- A server on 127.0.0.1, port 0; closed by H.cleanup().
function H.server(opts)
  opts = opts or {}
  opts.host = opts.host or "127.0.0.1"
  opts.port = opts.port or 0
  local s = assert(WebSocket.listen(opts))
  open_servers[#open_servers + 1] = s
  return s
end

--- An echo server: returns server, and a record of what its sockets saw.
function H.echo_server(protocols, options)
  local s = H.server()
  local rec = { sockets = {}, messages = {}, closes = {}, errors = {} }
  s.onupgrade = function(req)
    local ws = H.track(WebSocket(req, protocols, options))
    rec.sockets[#rec.sockets + 1] = ws
    rec.last_request = req
    ws.onmessage = function(e)
      rec.messages[#rec.messages + 1] = e
      ws:send(e.data, e.binary and "binary" or nil)
    end
    ws.onerror = function(e) rec.errors[#rec.errors + 1] = e.message end
    ws.onclose = function(e) rec.closes[#rec.closes + 1] = e end
  end
  return s, rec
end

--- A client that records its events.
function H.client(url, protocols, options)
  local ws = H.track(assert(WebSocket.Client(url, protocols, options)))
  local rec = { messages = {}, errors = {}, closes = {}, opens = 0 }
  ws.onopen = function() rec.opens = rec.opens + 1 end
  ws.onmessage = function(e) rec.messages[#rec.messages + 1] = e end
  ws.onerror = function(e) rec.errors[#rec.errors + 1] = e.message end
  ws.onclose = function(e) rec.closes[#rec.closes + 1] = e end
  return ws, rec
end

--- Sends data on ws and runs the loop until the next message (returned) or a close.
function H.roundtrip(ws, rec, data, kind, seconds)
  local n = #rec.messages
  assert(ws:send(data, kind))
  H.wait(function() return #rec.messages > n or #rec.closes > 0 end, seconds or 10, "echo")
  return rec.messages[n + 1]
end

--- A raw TCP client: collects what it receives in rec.data; rec.closed on EOF.
function H.raw(port, host)
  local c = H.track(assert(client.raw(host or "127.0.0.1", port)))
  local rec = { data = "", closed = false, opened = false }
  c.onopen = function() rec.opened = true end
  c.ondata = function(e) rec.data = rec.data .. e.data end
  c.onclose = function() rec.closed = true end
  return c, rec
end

--- A raw TCP server: for each connection, calls handler(conn, rec).
--- Reads one HTTP response from the front of data (RFC 9112 6.3): returns a table
--- { status, headers (lower-case names), body, length (bytes of data it took) }, or nil
--- while it is not whole. A response framed by the connection's close is whole once
--- closed is true.
function H.http_response(data, closed, head_only)
  local head_end = data:find("\r\n\r\n", 1, true)
  if not head_end then return nil end
  local head = data:sub(1, head_end + 1)
  local status = tonumber(head:match("^HTTP/1%.%d (%d%d%d)"))
  local headers = {}
  for name, value in head:gmatch("\r\n([^:\r\n]+):[ \t]*([^\r\n]*)") do
    name = name:lower()
    headers[name] = headers[name] and headers[name] .. ", " .. value or value
  end
  local pos = head_end + 4
  local r = { status = status, headers = headers }
  if head_only or status == 204 or status == 304 or (status and status < 200) then
    r.body, r.length = "", pos - 1
  elseif (headers["transfer-encoding"] or ""):lower():find("chunked") then
    local parts = {}
    while true do
      local size_end = data:find("\r\n", pos, true)
      if not size_end then return nil end
      local size = tonumber(data:sub(pos, size_end - 1):match("^(%x+)"), 16)
      assert(size, "bad chunk size line: " .. data:sub(pos, size_end - 1))
      if size == 0 then
        local trailer_end = data:find("\r\n", size_end + 2, true)
        if not trailer_end then return nil end
        -- trailers end with an empty line; none are sent here
        r.length = trailer_end + 1
        break
      end
      if #data < size_end + 2 + size + 2 - 1 then return nil end
      parts[#parts + 1] = data:sub(size_end + 2, size_end + 1 + size)
      pos = size_end + 2 + size + 2
    end
    r.body = table.concat(parts)
  elseif headers["content-length"] then
    local n = tonumber(headers["content-length"])
    if #data < pos - 1 + n then return nil end
    r.body, r.length = data:sub(pos, pos - 1 + n), pos - 1 + n
  else
    if not closed then return nil end
    r.body, r.length = data:sub(pos), #data
  end
  return r
end

function H.raw_server(handler)
  local s = H.server { raw = true }
  s.onconnection = function(conn)
    H.track(conn)
    local rec = { data = "", closed = false }
    conn.ondata = function(e)
      rec.data = rec.data .. e.data
      if rec.ondata then rec.ondata(e.data) end
    end
    conn.onclose = function() rec.closed = true end
    handler(conn, rec)
  end
  return s
end

-- ---- frames, as a peer writes them -------------------------------------------------

local function u16(n) return string.char(math.floor(n / 256) % 256, n % 256) end
local function u64(n)
  local t = {}
  for i = 7, 0, -1 do t[#t + 1] = string.char(math.floor(n / 2 ^ (8 * i)) % 256) end
  return table.concat(t)
end

-- XOR of two bytes, with what the interpreter has: the bit library (LuaJIT), bit32
-- (5.2), the ~ operator (5.3+), or plain arithmetic (PUC 5.1).
local bxor
do
  local ok, bit = pcall(require, "bit")
  if ok then
    bxor = bit.bxor
  elseif bit32 then
    bxor = bit32.bxor
  else
    local f = (loadstring or load)("return function(a, b) return a ~ b end")
    bxor = f and f() or function(a, b)
      local r, m = 0, 1
      for _ = 1, 8 do
        local x, y = a % 2, b % 2
        if x ~= y then r = r + m end
        a, b, m = (a - x) / 2, (b - y) / 2, m * 2
      end
      return r
    end
  end
end

--- A frame as bytes. opts: fin (default true), rsv (bits 0x70), mask (4-byte key or
--- false; default a fixed key, as a client sends), len (override the length field).
function H.frame(opcode, payload, opts)
  opts = opts or {}
  payload = payload or ""
  local fin = opts.fin == nil and true or opts.fin
  local b0 = (fin and 0x80 or 0) + (opts.rsv or 0) + opcode
  local key = opts.mask
  if key == nil then key = "\55\250\33\61" end
  local n = opts.len or #payload
  local hdr
  local mbit = key and 0x80 or 0
  if n < 126 and not opts.len16 and not opts.len64 then
    hdr = string.char(b0, mbit + n)
  elseif n < 65536 and not opts.len64 then
    hdr = string.char(b0, mbit + 126) .. u16(n)
  else
    hdr = string.char(b0, mbit + 127) .. u64(n)
  end
  if not key then return hdr .. payload end
  local out, k = {}, { key:byte(1, 4) }
  for i = 1, #payload do
    out[i] = string.char(bxor(payload:byte(i), k[(i - 1) % 4 + 1]))
  end
  return hdr .. key .. table.concat(out)
end

-- The frame that starts at pos in s, if all of it is there: its first byte, the length
-- of its header (with the mask key), its payload length, and whether it is masked.
local function frame_at(s, pos)
  if #s - pos + 1 < 2 then return nil end
  local b0, b1 = s:byte(pos, pos + 1)
  local masked = b1 >= 128
  local n, hl = b1 % 128, 2
  if n == 126 then
    if #s - pos + 1 < 4 then return nil end
    n = s:byte(pos + 2) * 256 + s:byte(pos + 3); hl = 4
  elseif n == 127 then
    if #s - pos + 1 < 10 then return nil end
    n = 0
    for i = 2, 9 do n = n * 256 + s:byte(pos + i) end
    hl = 10
  end
  if masked then hl = hl + 4 end
  if #s - pos + 1 < hl + n then return nil end
  return b0, hl, n, masked
end

--- Parses frames (masked or not) from a byte string: list of {opcode, fin, payload}, rest.
function H.parse_frames(s)
  local frames, pos = {}, 1
  while true do
    local b0, hl, n, masked = frame_at(s, pos)
    if not b0 then break end
    local key = masked and s:sub(pos + hl - 4, pos + hl - 1) or nil
    local payload = s:sub(pos + hl, pos + hl + n - 1)
    if key then
      local k, out = { key:byte(1, 4) }, {}
      for i = 1, #payload do out[i] = string.char(bxor(payload:byte(i), k[(i - 1) % 4 + 1])) end
      payload = table.concat(out)
    end
    frames[#frames + 1] = { opcode = b0 % 16, fin = b0 >= 128, rsv = math.floor(b0 / 16) % 8,
                            masked = masked, key = key, payload = payload }
    pos = pos + hl + n
  end
  return frames, s:sub(pos)
end

--- How many data messages (final data or continuation frames) and control frames are
--- complete in s, reading headers only: cheap enough for a wait's condition, where
--- H.parse_frames would unmask megabytes in Lua each round.
function H.count_frames(s)
  local msgs, controls, pos = 0, 0, 1
  while true do
    local b0, hl, n = frame_at(s, pos)
    if not b0 then break end
    if b0 % 16 >= 8 then controls = controls + 1
    elseif b0 >= 128 then msgs = msgs + 1 end
    pos = pos + hl + n
  end
  return msgs, controls
end

--- Byte-for-byte equality that names the first difference instead of printing megabytes.
function H.assert_bytes(expected, actual, what)
  if expected == actual then return end
  assert(type(actual) == "string", what .. ": got " .. type(actual))
  local n = math.min(#expected, #actual)
  local i = 1
  while i <= n and expected:byte(i) == actual:byte(i) do i = i + 1 end
  error(("%s differs: %d bytes expected, %d received, first difference at byte %d")
    :format(what, #expected, #actual, i), 2)
end

--- The close code in a close frame's payload (nil if empty).
function H.close_code(payload)
  if #payload < 2 then return nil end
  return payload:byte(1) * 256 + payload:byte(2)
end

H.upgrade_request = table.concat({
  "GET /chat HTTP/1.1",
  "Host: 127.0.0.1",
  "Upgrade: websocket",
  "Connection: Upgrade",
  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
  "Sec-WebSocket-Version: 13",
  "", "" }, "\r\n")

--- Opens a raw connection to server s, completes the upgrade; returns conn, rec with
--- rec.data holding what came after the 101 head.
function H.raw_upgraded(port, request)
  local c, rec = H.raw(port)
  H.wait(function() return rec.opened or rec.closed end, 5, "raw connect")
  c:_raw_write(request or H.upgrade_request)
  H.wait(function() return rec.data:find("\r\n\r\n", 1, true) or rec.closed end, 5, "101 response")
  local head_end = rec.data:find("\r\n\r\n", 1, true)
  rec.head = rec.data:sub(1, head_end + 3)
  rec.data = rec.data:sub(head_end + 4)
  return c, rec
end

local core = require "luaws.core"

--- A raw server that completes the opening handshake of whatever request arrives, then
--- calls on_open(conn, rec, request_head) and records later bytes in rec.data.
--- response_extra: lines added to the 101 (e.g. "Sec-WebSocket-Protocol: x\r\n"), or a
--- function(request_head) returning the whole response head.
function H.handshake_server(on_open, response_extra)
  return H.raw_server(function(conn, rec)
    local done = false
    rec.ondata = function()
      if done then return end
      local e = rec.data:find("\r\n\r\n", 1, true)
      if not e then return end
      done = true
      local head = rec.data:sub(1, e + 3)
      rec.data = rec.data:sub(e + 4)
      local key = head:match("[Ss]ec%-[Ww]eb[Ss]ocket%-[Kk]ey: *([^\r]+)")
      local resp
      if type(response_extra) == "function" then
        resp = response_extra(head, core.handshake_accept(key or ""))
      else
        resp = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" ..
          "Sec-WebSocket-Accept: " .. core.handshake_accept(key or "") .. "\r\n" .. (response_extra or "") .. "\r\n"
      end
      if resp then conn:_raw_write(resp) end
      if on_open then on_open(conn, rec, head) end
    end
  end)
end

-- ---- external peers ---------------------------------------------------------------

local procs = {}

local function tmpname()
  local n = os.tmpname()
  return n
end

--- Starts a command in the background; output to a file. Returns a handle with
--- :output(), :wait_line(pattern, seconds) and :kill().
function H.spawn(cmd)
  local out = tmpname()
  -- The command runs from a script file, without the sanitizer runtime a test build
  -- preloads (a shell or peer under it would report its own leaks into the output).
  local script = tmpname()
  local sf = assert(io.open(script, "wb"))
  sf:write(cmd, "\n")
  sf:close()
  local f = io.popen(("(exec env -u LD_PRELOAD sh %s) >%s 2>&1 & echo $!"):format(script, out))
  local pid = tonumber(f:read("*l"))
  f:close()
  local p = { pid = pid, out = out, script = script }
  function p:output()
    local fh = io.open(self.out, "rb")
    if not fh then return "" end
    local s = fh:read("*a")
    fh:close()
    return s
  end
  function p:running()
    return os.execute(("kill -0 %d 2>/dev/null"):format(self.pid)) == true
      or os.execute(("kill -0 %d 2>/dev/null"):format(self.pid)) == 0
  end
  --- Runs the loop until the output matches pattern; returns the captures.
  function p:wait_for(pattern, seconds)
    local caps
    local t = WebSocket.setInterval(function() end, 20)   -- wakes the loop to poll
    local ok, err = pcall(H.wait, function()
      caps = { self:output():match(pattern) }
      return #caps > 0
    end, seconds or 10, "peer output matching " .. pattern)
    WebSocket.clearInterval(t)
    if not ok then error(err .. "\npeer output:\n" .. self:output(), 2) end
    return table.unpack and table.unpack(caps) or unpack(caps)
  end
  function p:kill()
    if self.pid then os.execute(("kill %d 2>/dev/null"):format(self.pid)) end
    self.pid = nil
    os.remove(self.out)
    os.remove(self.script)
  end
  procs[#procs + 1] = p
  return p
end

--- The JSON events a peer process printed, in order (other lines are skipped).
function H.peer_events(proc)
  local json = require "dkjson"
  local list = {}
  for line in proc:output():gmatch("[^\n]+") do
    if line:sub(1, 1) == "{" then list[#list + 1] = json.decode(line) end
  end
  return list
end

--- The first event of that kind a peer printed, or nil.
function H.peer_event(proc, kind)
  for _, e in ipairs(H.peer_events(proc)) do
    if e.event == kind then return e end
  end
end

H.node = "node"
H.python = "/usr/bin/python3"
H.peers = "spec/peers"

--- Closes what a test left, runs the loop until every handle is gone, and checks it.
function H.cleanup()
  for _, p in ipairs(procs) do p:kill() end
  procs = {}
  for _, s in ipairs(open_servers) do s:close() end
  open_servers = {}
  for _, ws in ipairs(open_sockets) do ws:terminate() end
  open_sockets = {}
  -- The wait's own timer is the one handle allowed while waiting.
  pcall(H.wait, function() return WebSocket.active_handles() <= 1 end, 5)
  H.drain(3)
  collectgarbage()
  collectgarbage()
  assert(WebSocket.active_handles() == 0,
    ("%d libuv handles left open after the test"):format(WebSocket.active_handles()))
end

return H
