-- Commands run as processes for the specs (cli_spec, workers_spec): the luaws command
-- with the interpreter and module paths that run busted, each process's stdout, stderr
-- and exit status in files, every wait bounded (the loop runs meanwhile).
local H = require "helper"
local WebSocket = H.WebSocket

local C = {}

-- The interpreter running busted (arg's lowest index), and the module paths it was
-- given, so that the command runs the build under test.
C.LUA = (function()
  local i = -1
  while arg and arg[i - 1] do i = i - 1 end
  return arg and arg[i] or "lua5.4"
end)()

function C.q(s) return "'" .. (tostring(s):gsub("'", [['\'']])) .. "'" end

C.LUAWS = C.LUA .. " -e " .. C.q(("package.path = %q; package.cpath = %q")
  :format(package.path, package.cpath)) .. " bin/luaws"

function C.sh(cmd)
  local ok = os.execute(cmd)
  return ok == true or ok == 0
end

function C.slurp(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

function C.spit(path, data)
  local f = assert(io.open(path, "wb"))
  f:write(data)
  f:close()
end

local procs = {}

--- Starts a shell command. stdin: a string (given through a pipe, `cat FILE |`),
--- { file = path } (a regular file), { fifo = true } (a FIFO this spec writes to with
--- p:write and ends with p:close_input), "closed" (none at all) or nil (/dev/null).
function C.run(cmd, stdin)
  local p = { out = os.tmpname(), err = os.tmpname(), st = os.tmpname(), files = {} }
  os.remove(p.st)
  if stdin == "closed" then
    cmd = cmd .. " <&-"
  elseif type(stdin) == "string" then
    local input = os.tmpname()
    p.files[#p.files + 1] = input
    C.spit(input, stdin)
    cmd = "cat " .. C.q(input) .. " | " .. cmd
  elseif stdin and stdin.file then
    cmd = cmd .. " <" .. C.q(stdin.file)
  elseif stdin and stdin.fifo then
    p.fifo = os.tmpname()
    os.remove(p.fifo)
    assert(C.sh("mkfifo " .. C.q(p.fifo)))
    p.files[#p.files + 1] = p.fifo
    cmd = cmd .. " <" .. C.q(p.fifo)
  else
    cmd = cmd .. " </dev/null"
  end
  local f = io.popen(("( %s >%s 2>%s & echo $!; exec >/dev/null 2>&1; wait $!; echo $? >%s.tmp; mv %s.tmp %s ) &")
    :format(cmd, C.q(p.out), C.q(p.err), C.q(p.st), C.q(p.st), C.q(p.st)))
  p.pid = tonumber(f:read("*l"))
  f:close()
  assert(p.pid, "could not start " .. cmd)
  if p.fifo then
    -- Opened read-write after the start, so that no process started since holds it:
    -- closing it is then the end of the command's input.
    p.writer = assert(io.open(p.fifo, "r+"))
  end
  procs[#procs + 1] = p

  function p:stdout() return C.slurp(self.out) or "" end
  function p:stderr() return C.slurp(self.err) or "" end
  function p:status()
    local s = C.slurp(self.st)
    return s and tonumber(s:match("%d+"))
  end
  function p:write(s)
    self.writer:write(s)
    self.writer:flush()
  end
  function p:close_input()
    if self.writer then self.writer:close() end
    self.writer = nil
  end
  -- Runs the loop until cond(); a timer wakes it to look at the files.
  local function wait(self, cond, seconds, what)
    local t = WebSocket.setInterval(function() end, 10)
    local ok, err = pcall(H.wait, cond, seconds or 10, what)
    WebSocket.clearInterval(t)
    if not ok then
      error(("%s\nstdout: %s\nstderr: %s"):format(err, self:stdout(), self:stderr()), 3)
    end
  end
  --- Runs the loop until cond(self) is true (at most seconds).
  function p:wait_until(cond, seconds, what) wait(self, function() return cond(self) end, seconds, what) end
  --- Waits for the exit; returns the status, stdout and stderr.
  function p:wait_exit(seconds)
    wait(self, function() return self:status() ~= nil end, seconds, "the command to exit")
    return self:status(), self:stdout(), self:stderr()
  end
  --- Waits until stdout (or stderr, when which is "stderr") matches; returns the captures.
  function p:wait_for(pattern, which, seconds)
    local caps
    wait(self, function()
      caps = { self[which or "stdout"](self):match(pattern) }
      return #caps > 0
    end, seconds, ("%s to match %q"):format(which or "stdout", pattern))
    return (table.unpack or unpack)(caps)
  end
  function p:kill()
    if self.pid and not self:status() then os.execute("kill " .. self.pid .. " 2>/dev/null") end
  end
  return p
end

--- Starts `luaws ARGS`, stdin as for run().
function C.luaws(args, stdin) return C.run(C.LUAWS .. " " .. args, stdin) end

function C.cleanup()
  for _, p in ipairs(procs) do
    p:close_input()
    p:kill()
    for _, f in ipairs({ p.out, p.err, p.st, (table.unpack or unpack)(p.files) }) do os.remove(f) end
  end
  procs = {}
  H.cleanup()
end

return C
