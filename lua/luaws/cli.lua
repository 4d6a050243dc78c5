--- The luaws command (bin/luaws), in the manner of wscat and websocat:
---   luaws connect [options] URL    stdin lines out as messages, messages to stdout
---   luaws listen [options] PORT    an echo, print or broadcast server
---   luaws serve [options] SCRIPT [ARGS...]   worker processes of a server script
-- main(argv) returns the exit status. parse(argv) and line_splitter(fn) are pure and
-- exported for the specs. Messages go to stdout, one a line; everything else to stderr.
local WebSocket = require "luaws"
local core = require "luaws.core"
local client = require "luaws.client"
local options = require "luaws.options"
local deflate = require "luaws.deflate"

local M = {}

--- Exit statuses (README, and `luaws --help`).
M.EXIT = { clean = 0, failed = 1, usage = 2, unclean = 3 }

local CONNECT_HELP = [[
luaws connect [options] URL
  Opens a WebSocket to URL (ws:// or wss://), sends each line read from stdin as a
  message (without its newline) and writes each message received to stdout, on a line
  of its own. stdin may be a terminal, a pipe or a file. At the end of the input
  (Ctrl-D on a terminal) it pings the server; the pong comes back once the server has
  taken every line, after the replies it made at once, which are printed. Then it
  closes with 1000 and waits for the server's close. Errors go to stderr.

  -H, --header 'NAME: VALUE'  an extra header in the opening handshake (repeatable)
  -p, --protocol NAME     offer a subprotocol (repeatable, in order of preference)
  --deflate               offer permessage-deflate (RFC 7692)
  --cafile FILE           wss://: trust the CA certificates in FILE (PEM) instead of
                          the system's
  -k, --insecure          wss://: check neither the server's certificate nor its name
  -x, --execute MSG       send MSG instead of reading stdin (repeatable); then wait
                          until as many messages have arrived (at most --wait seconds,
                          default 5) and close
  --wait SECONDS          at the end of the input, wait this long for messages before
                          closing (default 0: only for the pong)
  --close-on-eof          at the end of the input, close (the default)
  -n, --no-close          at the end of the input, keep the connection until the
                          server closes it
  --binary                send the lines as binary messages (default: text, which
                          must be UTF-8; other lines are reported and skipped)
  --raw                   write binary messages as they are (default: in hex)
  --ping SECONDS          ping every SECONDS; a server silent for that long is dropped
  --show-close            report the close code and reason on stderr (a close that
                          is not clean is always reported)
  -v, --verbose           report the connection's events on stderr
  -h, --help

  Exit status:
    0  the connection closed cleanly: code 1000, or 1005 (a close without a code)
    1  no connection: a bad address, refused, TLS or certificate failure, a
       handshake the server refused (a status other than 101)
    2  usage: an unknown option, a missing argument, a malformed URL
    3  the connection ended otherwise: lost without a close (1006), or closed with
       another code (1001, 1011, 4000, ...)
]]

local LISTEN_HELP = [[
luaws listen [options] PORT
  Accepts WebSocket connections on PORT (0: any free port) and writes
  "luaws: listening on HOST:PORT" to stderr, then each client's connection and close.
  It runs until it is killed (or, with --once, until its client leaves).

  --echo                  send each message back to its sender (the default)
  --print                 write each message to stdout, one a line; send each line of
                          stdin to every client (stdin is read while one is connected)
  --broadcast             send each message to every other client and write it to
                          stdout; send each line of stdin to every client
  --host HOST             the address to listen on (default 127.0.0.1; 0.0.0.0 or ::
                          for every interface)
  -p, --protocol NAME     a subprotocol the server speaks (repeatable): the first one a
                          client offers that is on the list is chosen
  --deflate               accept permessage-deflate
  --tls-cert FILE, --tls-key FILE
                          serve wss:// with this certificate chain and key (PEM)
  --max-clients N         at most N clients at once; more are answered 503
  --once                  serve one client, then exit; the exit status tells how its
                          connection ended, as for connect (0 or 3)
  --binary, --raw, --ping SECONDS
                          as for connect
  -h, --help

  Exit status: 1 when it cannot listen (the port is taken, a bad certificate), 2 for
  usage; with --once, 0 or 3 as for connect.
]]

local SERVE_HELP = [[
luaws serve [options] SCRIPT [ARGS...]
  Runs N worker processes of the server script SCRIPT, each `LUA SCRIPT ARGS...` with
  the Lua that runs luaws (and its -e and other options), and the environment variables
  LUAWS_WORKER (1 to N) and LUAWS_WORKERS (N). Each worker listens on the same port with
  WebSocket.listen{ port = PORT, reuseport = true }, and the kernel spreads the
  connections among them. The workers' stdin, stdout and stderr are this command's.
  Options go before SCRIPT; everything after it is the script's.

  --workers N             how many workers (default: the number of CPUs)
  --restart               restart a worker that exits with a status other than 0 or is
                          killed, at most 5 times within 10 s; then give up, stop the
                          others and exit 1 (without --restart, one worker's failure
                          stops the others)
  --lua PATH              run the workers with this interpreter (default: the one running
                          luaws, with its options)
  -h, --help

  SIGINT and SIGTERM stop the workers (with SIGTERM); a second one kills them (SIGKILL).

  Exit status, once every worker has exited: 0 when each exited with status 0 or was
  stopped by a signal sent to luaws serve; 1 otherwise (a worker failed, or could not
  start); 2 for usage.
]]

local HELP = [[
Usage: luaws connect [options] URL
       luaws listen [options] PORT
       luaws serve [options] SCRIPT [ARGS...]
       luaws --help | --version

A WebSocket client and server for the command line, built on luaws (like wscat and
websocat): connect sends the lines of stdin as messages and prints the messages it
receives; listen runs an echo, print or broadcast server; serve runs worker processes
of a server script on one port.

]] .. CONNECT_HELP .. "\n" .. LISTEN_HELP .. "\n" .. SERVE_HELP .. [[

Examples:
  luaws connect ws://127.0.0.1:8000/chat           # type lines; Ctrl-D closes
  echo '{"op":"ping"}' | luaws connect wss://example.com/api
  luaws connect -x hello -H 'Authorization: Bearer t' -p chat ws://127.0.0.1:8000/
  luaws connect --cafile ca.pem --deflate wss://127.0.0.1:8443/
  luaws listen 8000                                # an echo server
  luaws listen --broadcast --deflate 8000          # a chat hub; stdin lines to all
  luaws serve --workers 2 --restart examples/workers_chat.lua 8000
]]

-- ---- arguments ---------------------------------------------------------------------

local function usage(fmt, ...)
  error({ usage = string.format(fmt, ...) }, 0)
end

local function seconds(v, name)
  local n = tonumber(v)
  if not n or n ~= n or n < 0 then usage("%s takes a number of seconds, not %q", name, v) end
  return n
end

local function positive_seconds(v, name)
  local n = seconds(v, name)
  if n < 0.001 then usage("%s takes a number of seconds from 0.001, not %q", name, v) end
  return n
end

local function count(v, name)
  local n = tonumber(v)
  if not n or n ~= n or n < 1 or n % 1 ~= 0 then usage("%s takes a whole number from 1, not %q", name, v) end
  return n
end

local function protocol(v, name)
  if not options.is_token(v) then usage("%s: %q is not a valid subprotocol name", name, v) end
  return v
end

-- 'Name: value', as curl's -H.
local function header(v, name)
  local n, value = v:match("^([^:]*):[ \t]*(.-)[ \t]*$")
  if not n or not options.is_token(n) then usage("%s takes 'Name: value', not %q", name, v) end
  if value:find("[\r\n%z]") then usage("%s: the value of %s has CR, LF or NUL", name, n) end
  return { n, value }
end

local COMMON = {
  { names = { "-h", "--help" }, key = "help" },
  { names = { "-p", "--protocol" }, key = "protocols", arg = "NAME", multi = true, check = protocol },
  { names = { "--deflate" }, key = "deflate" },
  { names = { "--binary" }, key = "binary" },
  { names = { "--raw" }, key = "raw" },
  { names = { "--ping" }, key = "ping", arg = "SECONDS", check = positive_seconds },
}

local COMMANDS = {
  connect = {
    { names = { "-H", "--header" }, key = "headers", arg = "'NAME: VALUE'", multi = true, check = header },
    { names = { "--cafile" }, key = "cafile", arg = "FILE" },
    { names = { "-k", "--insecure" }, key = "insecure" },
    { names = { "-x", "--execute" }, key = "execute", arg = "MSG", multi = true },
    { names = { "--wait" }, key = "wait", arg = "SECONDS", check = seconds },
    { names = { "--close-on-eof" }, key = "no_close", value = false },
    { names = { "-n", "--no-close" }, key = "no_close", value = true },
    { names = { "--show-close" }, key = "show_close" },
    { names = { "-v", "--verbose" }, key = "verbose" },
  },
  listen = {
    { names = { "--echo" }, key = "mode", value = "echo", once = true },
    { names = { "--print" }, key = "mode", value = "print", once = true },
    { names = { "--broadcast" }, key = "mode", value = "broadcast", once = true },
    { names = { "--host" }, key = "host", arg = "HOST" },
    { names = { "--tls-cert" }, key = "tls_cert", arg = "FILE" },
    { names = { "--tls-key" }, key = "tls_key", arg = "FILE" },
    { names = { "--max-clients" }, key = "max_clients", arg = "N", check = count },
    { names = { "--once" }, key = "once" },
  },
  serve = {   -- COMMON's options are not serve's
    { names = { "-h", "--help" }, key = "help" },
    { names = { "--workers" }, key = "workers", arg = "N", check = count },
    { names = { "--restart" }, key = "restart" },
    { names = { "--lua" }, key = "lua", arg = "PATH" },
  },
}

-- Commands whose options end at the first argument (serve: the script's own follow).
local ARGS_END_OPTIONS = { serve = true }

local function option_table(command)
  local t = {}
  local lists = command == "serve" and { COMMANDS.serve } or { COMMON, COMMANDS[command] }
  for _, list in ipairs(lists) do
    for _, o in ipairs(list) do
      for _, n in ipairs(o.names) do t[n] = o end
    end
  end
  return t
end

-- A URL as the client takes it, or a usage error with parse_url's reason.
local function check_url(url)
  local ok, err = pcall(client.parse_url, url)
  if not ok then usage("%s", (tostring(err):gsub("^[^:]*:%d+: ", ""))) end
  return url
end

--- Parses a command line (arg, without the script name). Returns a table: command
--- ("connect", "listen", "help" or "version"), topic (help), and the options by key;
--- raises { usage = message } for a usage error.
function M.parse(argv)
  local command = argv[1]
  if command == nil then usage("a command is needed: connect, listen or serve") end
  if command == "-h" or command == "--help" or command == "help" then
    local topic = command == "help" and argv[2] or nil
    if topic and not COMMANDS[topic] then usage("no help on %q: commands are connect, listen and serve", topic) end
    return { command = "help", topic = topic }
  end
  if command == "--version" or command == "-V" then return { command = "version" } end
  if not COMMANDS[command] then usage("unknown command %q: connect, listen or serve", command) end
  local known = option_table(command)
  local r, rest, i, only_args = { command = command }, {}, 2, false
  while i <= #argv do
    local a = argv[i]
    local name, inline = a:match("^(%-%-[^=]+)=(.*)$")
    name = name or a
    if only_args or a == "-" or a:sub(1, 1) ~= "-" then
      rest[#rest + 1] = a
      if ARGS_END_OPTIONS[command] then only_args = true end
    elseif a == "--" then
      only_args = true
    else
      local o = known[name]
      if not o then usage("unknown option %s for %s", name, command) end
      local v = o.value
      if v == nil then v = true end
      if o.arg then
        if inline then
          v = inline
        else
          i = i + 1
          v = argv[i]
          if v == nil then usage("%s takes %s", name, o.arg) end
        end
        if o.check then v = o.check(v, name) end
      elseif inline then
        usage("%s takes no value", name)
      end
      if o.once and r[o.key] ~= nil and r[o.key] ~= v then
        usage("%s: choose one of --echo, --print and --broadcast", name)
      end
      if o.multi then
        r[o.key] = r[o.key] or {}
        table.insert(r[o.key], v)
      else
        r[o.key] = v
      end
    end
    i = i + 1
  end
  if r.help then return { command = "help", topic = command } end
  if command == "serve" then
    if #rest < 1 then usage("serve takes a SCRIPT to run") end
    r.script = table.remove(rest, 1)
    r.args = rest
  elseif command == "connect" then
    if #rest ~= 1 then usage("connect takes one URL (%d given)", #rest) end
    r.url = check_url(rest[1])
  else
    if #rest ~= 1 then usage("listen takes one PORT (%d given)", #rest) end
    local port = tonumber(rest[1])
    if not port or port % 1 ~= 0 or port < 0 or port > 65535 then
      usage("PORT must be a number from 0 to 65535, not %q", rest[1])
    end
    r.port = port
    r.mode = r.mode or "echo"
    if (r.tls_cert == nil) ~= (r.tls_key == nil) then usage("--tls-cert and --tls-key go together") end
  end
  return r
end

-- ---- input and output --------------------------------------------------------------

--- Returns feed(chunk): calls on_line(line) for each whole line in the chunks fed, the
--- "\n" left out; feed(nil) at the end passes on a last line that had no "\n".
function M.line_splitter(on_line)
  local parts = {}   -- the unfinished line, in pieces (a long line costs linear time)
  return function(chunk)
    if chunk == nil then
      if #parts > 0 then
        local line = table.concat(parts)
        parts = {}
        on_line(line)
      end
      return
    end
    local pos = 1
    while true do
      local nl = chunk:find("\n", pos, true)
      if not nl then break end
      local line = chunk:sub(pos, nl - 1)
      if #parts > 0 then
        parts[#parts + 1] = line
        line = table.concat(parts)
        parts = {}
      end
      on_line(line)
      pos = nl + 1
    end
    if pos <= #chunk then parts[#parts + 1] = chunk:sub(pos) end
  end
end

local function say(fmt, ...)
  io.stderr:write("luaws: ", string.format(fmt, ...), "\n")
end

local function hex(s)
  return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

-- A message on stdout, on its line; false when stdout is gone (a closed pipe).
local function show(e, raw)
  local data = e.data
  if e.binary and not raw then data = hex(data) end
  local ok = io.stdout:write(data, "\n")
  return ok ~= nil and io.stdout:flush() ~= nil
end

-- The stdin lines, each to send(line): paused while buffered() says the sockets hold
-- more than HIGH bytes, until they are under LOW (polled: the sockets keep reading
-- their peer meanwhile, so an echo server's replies cannot stall both ends).
local HIGH, LOW, POLL_MS = 1024 * 1024, 256 * 1024, 10
local PONG_WAIT = 10   -- seconds: the end of the input waits this long at most for a pong

local function read_stdin(send, buffered, on_end)
  local poll, reader
  local feed = M.line_splitter(send)
  local err, name
  reader, err, name = core.reader(0, function(chunk, e)
    feed(chunk)
    if chunk == nil then
      if poll then WebSocket.clearInterval(poll) end
      if e then say("reading stdin: %s", e) end
      on_end()
    elseif buffered() > HIGH and not poll then
      reader:pause()
      poll = WebSocket.setInterval(function()
        if buffered() < LOW then
          WebSocket.clearInterval(poll)
          poll = nil
          reader:resume()
        end
      end, POLL_MS)
    end
  end)
  if not reader then
    say("cannot read stdin: %s", err)
    return nil, name
  end
  return {
    pause = function() reader:pause() end,
    resume = function() if not poll then reader:resume() end end,
    close = function()
      if poll then WebSocket.clearInterval(poll) end
      reader:close()
    end,
  }
end

-- Sends a line as a message; text that is not UTF-8 is reported and skipped.
local function send_line(send, line, binary, lineno)
  if not pcall(send, line, binary and "binary" or nil) then
    say("line %d is not UTF-8: not sent (--binary sends bytes)", lineno)
  end
end

local function close_status(opened, code)
  if not opened then return M.EXIT.failed end
  return (code == 1000 or code == 1005) and M.EXIT.clean or M.EXIT.unclean
end

local function close_text(e)
  return string.format("closed %d%s%s", e.code, e.reason ~= "" and string.format(" %q", e.reason) or "",
    e.wasClean and "" or " (not clean)")
end

local function details(ws)
  local t = {}
  if ws.protocol and ws.protocol ~= "" then t[#t + 1] = "protocol " .. ws.protocol end
  if ws.extensions and ws.extensions ~= "" then t[#t + 1] = "extensions " .. ws.extensions end
  return #t > 0 and " (" .. table.concat(t, ", ") .. ")" or ""
end

-- A timer for seconds, or none for a wait too long for a timer (forever).
local function after(secs, fn)
  if secs * 1000 >= 2147483647 then return nil end
  return WebSocket.setTimeout(fn, secs * 1000)
end

-- ---- connect -----------------------------------------------------------------------

local function connect(o)
  local headers
  for _, h in ipairs(o.headers or {}) do
    headers = headers or {}
    local name = h[1]
    headers[name] = headers[name] and headers[name] .. ", " .. h[2] or h[2]
  end
  local opts = {
    headers = headers, ping = o.ping, extensions = o.deflate and { deflate } or nil,
    high_water = math.huge,   -- read_stdin's pause stands in: see HIGH
  }
  if o.cafile or o.insecure then opts.tls = { cafile = o.cafile, verify = not o.insecure } end
  local ws, err = WebSocket.Client(o.url, o.protocols, opts)
  if not ws then
    say("%s", err)
    return M.EXIT.failed
  end
  local opened, status, input = false, nil, nil
  local received, awaited, lineno = 0, nil, 0
  local timers = {}

  local function close()
    if ws.readyState == WebSocket.OPEN then ws:close(1000) end
  end

  -- The end of the input. A browser's socket, and so luaws's, drops the messages that
  -- arrive once close() is called, so first a ping: its pong comes back after the
  -- server has taken every message sent before it, and after its immediate replies.
  -- Then the wait: -x, until one message per -x came (at most --wait, default 5 s);
  -- otherwise --wait (default 0).
  local ponged, waited = false, false
  local function settle()
    if ponged and (waited or (awaited and received >= awaited)) then close() end
  end
  local function input_ended()
    input = nil
    if o.no_close then return end
    local function pong()
      ponged = true
      settle()
    end
    ws:ping("luaws: end of input", pong)
    timers[#timers + 1] = after(PONG_WAIT, pong)   -- a server that does not answer pings
    local wait = o.wait or (awaited and 5 or 0)
    local function done()
      waited = true
      settle()
    end
    if wait > 0 then timers[#timers + 1] = after(wait, done) else done() end
  end
  local function send(data, kind) return ws:send(data, kind) end

  ws.onopen = function()
    opened = true
    if o.verbose then say("connected to %s%s", o.url, details(ws)) end
    if o.execute then
      for i, msg in ipairs(o.execute) do send_line(send, msg, o.binary, i) end
      awaited = #o.execute
      return input_ended()
    end
    input = read_stdin(function(line)
      lineno = lineno + 1
      send_line(send, line, o.binary, lineno)
    end, function() return ws.bufferedAmount end, input_ended)
    if not input then close() end
  end
  ws.onmessage = function(e)
    received = received + 1
    if not show(e, o.raw) then   -- the reader of stdout left (`| head -1`): done
      if input then input.close() end
      input = nil
      close()
      return
    end
    settle()
  end
  ws.onerror = function(e) say("%s", e.message) end
  ws.onclose = function(e)
    if input then input.close() end
    for _, t in ipairs(timers) do WebSocket.clearTimeout(t) end
    status = close_status(opened, e.code)
    if opened and (o.show_close or o.verbose or status ~= M.EXIT.clean) then say("%s", close_text(e)) end
  end
  WebSocket.run()
  return status or M.EXIT.failed
end

-- ---- listen ------------------------------------------------------------------------

local function listen(o)
  local tls = o.tls_cert and { cert = o.tls_cert, key = o.tls_key } or nil
  local host = o.host or "127.0.0.1"
  local server, err = WebSocket.listen { host = host, port = o.port, tls = tls }
  local where = (host:find(":", 1, true) and "[" .. host .. "]" or host) .. ":"
  if not server then
    say("cannot listen on %s%d: %s", where, o.port, err)
    return M.EXIT.failed
  end
  say("listening on %s%d%s", where, server.port, tls and " (TLS)" or "")
  local sockopts = { ping = o.ping, extensions = o.deflate and { deflate } or nil }
  local clients, next_id, served, status = {}, 0, false, nil
  local input, input_done, lineno = nil, false, 0
  local kind = o.binary and "binary" or nil

  local function others(ws)
    local list = {}
    for _, c in ipairs(clients) do
      if c ~= ws then list[#list + 1] = c end
    end
    return list
  end
  local function buffered()
    local most = 0
    for _, c in ipairs(clients) do
      local n = c.bufferedAmount
      if n > most then most = n end
    end
    return most
  end
  local function broadcast(line, k) return WebSocket.broadcast(clients, line, k) end
  local function start_input()   -- print and broadcast: stdin goes to the clients
    if o.mode == "echo" or input_done then return end
    if input then return input.resume() end
    input = read_stdin(function(line)
      lineno = lineno + 1
      send_line(broadcast, line, o.binary, lineno)
    end, buffered, function() input, input_done = nil, true end)
    if not input then input_done = true end
  end

  server.onrequest = function(_, res)
    res:writeHead(426, { ["Content-Type"] = "text/plain", Upgrade = "websocket" })
    res:finish("A WebSocket server (luaws listen): connect with a WebSocket client.\n")
  end
  server.onupgrade = function(req)
    if (o.once and served) or (o.max_clients and #clients >= o.max_clients) then
      say("refused a client from %s: %s", req.url, o.once and "--once" or "--max-clients")
      req:reject(503, { ["Content-Type"] = "text/plain" }, "too many clients\n")
      return
    end
    local ws, why = WebSocket(req, o.protocols, sockopts)
    if not ws then
      say("could not accept %s: %s", req.url, why)
      return
    end
    served = true
    next_id = next_id + 1
    local id = next_id
    clients[#clients + 1] = ws
    ws.onopen = function()
      say("client %d connected: %s%s", id, req.url, details(ws))
      start_input()
    end
    ws.onmessage = function(e)
      local k = e.binary and "binary" or nil
      if o.mode == "echo" then
        ws:send(e.data, k)
        return
      end
      show(e, o.raw)
      if o.mode == "broadcast" then WebSocket.broadcast(others(ws), e.data, k) end
    end
    ws.onerror = function(e) say("client %d: %s", id, e.message) end
    ws.onclose = function(e)
      for i = #clients, 1, -1 do
        if clients[i] == ws then table.remove(clients, i) end
      end
      say("client %d %s", id, close_text(e))
      if #clients == 0 and input then input.pause() end
      if o.once then
        status = close_status(true, e.code)
        if input then input.close() end
        input, input_done = nil, true
        server:close()
      end
    end
  end
  WebSocket.run()
  return status or M.EXIT.clean
end

-- ---- serve -----------------------------------------------------------------------

--- The interpreter running this script and its own arguments (arg[-n] .. arg[-1], as
--- lua.c and luajit set them: { "lua5.4", "-e", "package.path = ..." }), or nil when
--- argv has none (main called from Lua with a plain list).
function M.interpreter(argv)
  local lowest = 0
  while argv[lowest - 1] ~= nil do lowest = lowest - 1 end
  if lowest == 0 then return nil end
  local t = {}
  for i = lowest, -1 do t[#t + 1] = argv[i] end
  return t
end

local function serve(o, argv)
  local command = o.lua and { o.lua } or M.interpreter(argv)
  if not command then
    say("serve: cannot tell which Lua runs luaws: give it with --lua PATH")
    return M.EXIT.usage
  end
  local supervisor = require "luaws.supervisor"
  return supervisor.run {
    command = command, script = o.script, args = o.args, restart = o.restart,
    workers = o.workers or core.cpus(),
    say = function(fmt, ...) say("serve: " .. fmt, ...) end,
  }
end

-- ---- main --------------------------------------------------------------------------

--- Runs a command line; returns the exit status.
function M.main(argv)
  local ok, r = pcall(M.parse, argv)
  if not ok then
    if type(r) ~= "table" or not r.usage then error(r, 0) end
    say("%s", r.usage)
    local cmd = COMMANDS[argv[1]] and argv[1] .. " " or ""
    io.stderr:write("Try 'luaws ", cmd, "--help'.\n")
    return M.EXIT.usage
  end
  if r.command == "help" then
    local topics = { connect = CONNECT_HELP, listen = LISTEN_HELP, serve = SERVE_HELP }
    io.stdout:write(topics[r.topic] or HELP)
    return 0
  elseif r.command == "version" then
    io.stdout:write(WebSocket._VERSION, "\n")
    return 0
  elseif r.command == "connect" then
    return connect(r)
  elseif r.command == "serve" then
    return serve(r, argv)
  end
  return listen(r)
end

return M
