--- luaws serve: N worker processes of one script, which listen on one port with
--- listen{ reuseport = true } (the kernel spreads the connections among them).
--- M.run(o) starts them and returns the exit status once they are all gone:
---   o.command   the interpreter and its own arguments, { "lua5.4", "-e", "..." }
---   o.script, o.args   the worker script and its arguments
---   o.workers   how many; each gets LUAWS_WORKER=i (1..n) and LUAWS_WORKERS=n
---   o.restart   restart a worker that dies unexpectedly (at most RESTARTS in WINDOW s)
---   o.say       reports, a printf-like function (stderr)
--- SIGINT and SIGTERM stop the workers with SIGTERM (lua's own SIGINT handler only
--- interrupts running Lua code, so a worker waiting in its loop would not stop); a second
--- one kills those left with SIGKILL.
local WebSocket = require "luaws"
local core = require "luaws.core"

local M = {}

M.RESTARTS, M.WINDOW = 5, 10   -- at most 5 restarts in any 10 s, then it gives up

local SIG = core.signals
local SIGNAME = {}
for name, n in pairs(SIG) do SIGNAME[n] = name end

--- How a process ended, in words.
function M.describe(code, signal)
  if signal ~= 0 then return "killed by " .. (SIGNAME[signal] or "signal " .. signal) end
  return "exited with status " .. code
end

--- A restart budget: allow() is true, and counts one, while fewer than max were counted
--- in the last window seconds (timers forget each one); close() stops the timers.
function M.budget(max, window)
  local recent, timers = 0, {}
  local b = {}
  function b.allow()
    if recent >= max then return false end
    recent = recent + 1
    local t
    t = WebSocket.setTimeout(function()
      recent = recent - 1
      timers[t] = nil
    end, window * 1000)
    timers[t] = true
    return true
  end
  function b.close()
    for t in pairs(timers) do WebSocket.clearTimeout(t) end
    timers = {}
  end
  return b
end

function M.run(o)
  local say = o.say
  local n = o.workers
  local procs, running = {}, 0
  local stopping, killing, failed = false, false, false
  local budget = M.budget(M.RESTARTS, M.WINDOW)
  local watchers = {}

  local function each_running(fn)
    for i = 1, n do
      if procs[i] then fn(i, procs[i]) end
    end
  end

  local function finish()
    for _, w in ipairs(watchers) do w:close() end
    budget.close()
  end

  local function stop()
    if stopping then return end
    stopping = true
    each_running(function(_, p) p:kill(SIG.SIGTERM) end)
    if running == 0 then finish() end
  end

  local start
  local function exited(i, pid, code, signal)
    procs[i] = nil
    running = running - 1
    local stopped = stopping and (signal == SIG.SIGTERM or signal == SIG.SIGINT
      or (killing and signal == SIG.SIGKILL))
    local clean = (code == 0 and signal == 0) or stopped
    if not stopped then say("worker %d (pid %d) %s", i, pid, M.describe(code, signal)) end
    if not clean then
      if not stopping then
        if o.restart and budget.allow() then
          say("restarting worker %d", i)
          start(i)
        else
          failed = true
          if o.restart then
            say("giving up: %d restarts within %d s; stopping the workers", M.RESTARTS, M.WINDOW)
          elseif running > 0 then
            say("stopping the other workers")
          end
          stop()
        end
      else
        failed = true
      end
    end
    if running == 0 then finish() end
  end

  function start(i)
    local args = {}
    for k = 2, #o.command do args[#args + 1] = o.command[k] end
    args[#args + 1] = o.script
    for _, a in ipairs(o.args) do args[#args + 1] = a end
    local p, err = core.spawn {
      file = o.command[1], args = args,
      env = { LUAWS_WORKER = tostring(i), LUAWS_WORKERS = tostring(n) },
    }
    if not p then
      say("cannot start worker %d (%s): %s", i, o.command[1], err)
      failed = true
      stop()
      return
    end
    local pid = p.pid
    procs[i] = p
    running = running + 1
    say("worker %d started (pid %d)", i, pid)
    p.onexit = function(code, signal) exited(i, pid, code, signal) end
  end

  local function on_signal(signum)
    if not stopping then
      say("%s: stopping the workers", SIGNAME[signum] or signum)
      stop()
    elseif not killing then
      killing = true
      say("%s again: killing the workers", SIGNAME[signum] or signum)
      each_running(function(_, p) p:kill(SIG.SIGKILL) end)
    end
  end
  for _, sig in ipairs({ SIG.SIGINT, SIG.SIGTERM }) do
    watchers[#watchers + 1] = assert(core.signal(sig, on_signal))
  end

  for i = 1, n do
    if stopping then break end
    start(i)
  end
  if running == 0 then finish() end
  WebSocket.run()
  return failed and 1 or 0
end

return M
