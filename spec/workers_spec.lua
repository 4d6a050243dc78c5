-- Every core: listen{ reuseport = true } (csrc/io/server.c), core.spawn and core.signal
-- (csrc/lua/l_process.c, l_signal.c) and luaws serve (lua/luaws/supervisor.lua), whose
-- workers (spec/workers/echo_worker.lua) run as processes on a free port. No fixed
-- ports; every wait is bounded.
local H = require "helper"
local C = require "command"
local WebSocket = H.WebSocket
local core = require "luaws.core"
local cli = require "luaws.cli"
local supervisor = require "luaws.supervisor"

local SIG = core.signals

local function my_pid()
  local f = assert(io.open("/proc/self/stat"))
  local pid = tonumber(f:read("*l"):match("^(%d+)"))
  f:close()
  return pid
end

local function alive(pid)
  local ok = os.execute(("kill -0 %d 2>/dev/null"):format(pid))
  return ok == true or ok == 0
end

local function signal(pid, name)
  assert(C.sh(("kill -%s %d"):format(name, pid)), "kill -" .. name)
end

-- A port free now: bound to find it, then let go (the kernel does not hand out the same
-- ephemeral port again at once).
local function free_port()
  local s = assert(WebSocket.listen { host = "127.0.0.1", port = 0 })
  local port = s.port
  s:close()
  return port
end

-- n clients to port, each sending "hi"; returns the number answered and, per worker id,
-- how many of them it answered. Closes them all.
local function fan_out(port, n)
  local answered, by_id, closed = 0, {}, 0
  local list = {}
  for i = 1, n do
    local ws = H.track(assert(WebSocket.Client("ws://127.0.0.1:" .. port .. "/")))
    list[i] = ws
    ws.onopen = function() ws:send("hi") end
    ws.onmessage = function(e)
      local id = e.data:match("^worker (%d+) hi$")
      assert(id, "unexpected answer " .. e.data)
      by_id[id] = (by_id[id] or 0) + 1
      answered = answered + 1
      ws:close()
    end
    ws.onclose = function() closed = closed + 1 end
  end
  H.wait(function() return closed == n end, 20, n .. " clients answered and closed")
  return answered, by_id
end

describe("listen{ reuseport = true }", function()
  after_each(H.cleanup)

  it("lets two listeners share a port, and the kernel spreads connections over both", function()
    local a = H.server { reuseport = true }
    local b = H.server { reuseport = true, port = a.port }
    assert.equal(a.port, b.port)
    local counts = { 0, 0 }
    for id, s in ipairs({ a, b }) do
      s.onupgrade = function(req)
        counts[id] = counts[id] + 1
        local ws = H.track(WebSocket(req))
        ws.onmessage = function(e) ws:send("worker " .. id .. " " .. e.data) end
      end
    end
    local answered, by_id = fan_out(a.port, 40)
    assert.equal(40, answered)
    assert.same({ 40, by_id["1"], by_id["2"] }, { counts[1] + counts[2], counts[1], counts[2] })
    -- The spread is by a hash of the addresses: both get some of 40 (all on one is a
    -- chance of 2^-39).
    assert.is_true(counts[1] > 0 and counts[2] > 0, ("%d and %d"):format(counts[1], counts[2]))
    -- One of them closed: the other takes every connection.
    a:close()
    local _, after = fan_out(b.port, 10)
    assert.same({ ["2"] = 10 }, after)
  end)

  it("is refused with EADDRINUSE unless every listener on the port asks for it", function()
    local a = H.server()
    local s, err, name = WebSocket.listen { host = "127.0.0.1", port = a.port }
    assert.same({ nil, "EADDRINUSE" }, { s, name })
    assert.matches("^EADDRINUSE: ", err)
    s, err, name = WebSocket.listen { host = "127.0.0.1", port = a.port, reuseport = true }
    assert.same({ nil, "EADDRINUSE" }, { s, name })
    local b = H.server { reuseport = true }
    s, err, name = WebSocket.listen { host = "127.0.0.1", port = b.port }
    assert.same({ nil, "EADDRINUSE" }, { s, name })
    assert.has_error(function() WebSocket.listen { port = 0, reuseport = "yes" } end,
      "option reuseport must be a boolean")
  end)

  it("works on IPv6 too", function()
    local a = WebSocket.listen { host = "::1", port = 0, reuseport = true }
    if not a then return pending("no IPv6 loopback here") end
    local b = assert(WebSocket.listen { host = "::1", port = a.port, reuseport = true })
    assert.equal(a.port, b.port)
    a:close()
    b:close()
  end)
end)

describe("core.spawn and core.signal", function()
  after_each(H.cleanup)

  it("runs a process with args and env, and reports its exit once", function()
    local out = os.tmpname()
    local p = assert(core.spawn {
      file = "sh", args = { "-c", 'printf "%s|%s|%s" "$1" "$LUAWS_A" "${HOME-unset}" >"$2"; exit 3', "sh", "one two", out },
      env = { LUAWS_A = "b=c", HOME = false },
    })
    assert.is_number(p.pid)
    local exits = {}
    p.onexit = function(code, sig)
      exits[#exits + 1] = { code, sig }
      collectgarbage()
    end
    H.wait(function() return #exits > 0 end, 10, "the exit")
    H.drain()
    assert.same({ { 3, 0 } }, exits)
    assert.equal("one two|b=c|unset", C.slurp(out))
    os.remove(out)
    local ok, _, name = p:kill()
    assert.same({ nil, "ESRCH" }, { ok, name })
  end)

  it("kills with a signal given by name or number, and says which in onexit", function()
    for _, sig in ipairs({ "KILL", SIG.SIGTERM, "SIGINT" }) do
      local p = assert(core.spawn { file = "sleep", args = { "30" } })
      local got
      p.onexit = function(code, s) got = { code, s } end
      assert.is_true(p:kill(sig))
      H.wait(function() return got ~= nil end, 10, "the exit")
      local n = type(sig) == "number" and sig or SIG[sig] or SIG["SIG" .. sig]
      assert.same({ 0, n }, got)
    end
    assert.has_error(function() core.spawn { file = "true" }:kill("SIGNOPE") end)
    H.wait(function() return WebSocket.active_handles() == 0 end, 10, "true to exit")
  end)

  it("returns ENOENT for a program that does not exist, and leaves nothing open", function()
    local p, err, name = core.spawn { file = "/nonexistent/luaws-test" }
    assert.same({ nil, "ENOENT" }, { p, name })
    assert.matches("^ENOENT", err)
    assert.has_error(function() core.spawn { args = {} } end)
    assert.has_error(function() core.spawn { file = "true", args = { 1 } } end, "spawn: args[1] is not a string")
    assert.has_error(function() core.spawn { file = "true", env = { ["A=B"] = "c" } } end)
  end)

  it("calls a signal watcher on the loop until it is closed", function()
    local got = {}
    local w = assert(core.signal("SIGUSR1", function(n) got[#got + 1] = n end))
    signal(my_pid(), "USR1")
    H.wait(function() return #got == 1 end, 5, "SIGUSR1")
    signal(my_pid(), "USR1")
    H.wait(function() return #got == 2 end, 5, "SIGUSR1 again")
    assert.same({ SIG.SIGUSR1, SIG.SIGUSR1 }, got)
    w:close()
    w:close()
    assert.has_error(function() core.signal("SIGNOPE", print) end)
    assert.equal(2, core.signals.SIGINT)
  end)
end)

describe("luaws serve", function()
  after_each(C.cleanup)

  -- luaws serve ARGS with the echo worker on a free port; env: more variables.
  local function serve(args, env)
    local port = free_port()
    local vars = "LUAWS_TEST_PORT=" .. port
    for k, v in pairs(env or {}) do vars = vars .. " " .. k .. "=" .. C.q(v) end
    local p = C.run("env " .. vars .. " " .. C.LUAWS .. " serve " .. args .. " spec/workers/echo_worker.lua")
    p.port = port
    -- The pid of worker i once it is ready (the nth time: after restarts).
    function p:ready(i, nth)
      local pids
      self:wait_until(function()
        pids = {}
        for pid in self:stdout():gmatch("ready " .. i .. " %d+ (%d+)") do pids[#pids + 1] = tonumber(pid) end
        return #pids >= (nth or 1)
      end, 20, ("worker %d ready"):format(i))
      return pids[nth or 1]
    end
    return p
  end

  it("parses its options, which end at the script", function()
    local r = cli.parse { "serve", "--workers", "3", "--restart", "--lua=luajit", "w.lua", "--workers", "x" }
    assert.same({ "serve", 3, true, "luajit", "w.lua", { "--workers", "x" } },
      { r.command, r.workers, r.restart, r.lua, r.script, r.args })
    assert.same({ "w.lua", {} }, { cli.parse({ "serve", "w.lua" }).script, cli.parse({ "serve", "w.lua" }).args })
    for _, case in ipairs({
      { { "serve" }, "takes a SCRIPT" },
      { { "serve", "--workers", "0", "w.lua" }, "whole number from 1" },
      { { "serve", "--deflate", "w.lua" }, "unknown option %-%-deflate" },
    }) do
      local ok, err = pcall(cli.parse, case[1])
      assert.is_false(ok)
      assert.matches(case[2], err.usage)
    end
    assert.same({ "lua5.4", "-e", "x" }, cli.interpreter { [-3] = "lua5.4", [-2] = "-e", [-1] = "x", [0] = "luaws" })
    assert.is_nil(cli.interpreter { "serve" })
    local status, out = C.luaws("serve --help"):wait_exit()
    assert.equal(0, status)
    for _, s in ipairs({ "--workers", "--restart", "--lua", "LUAWS_WORKER", "LUAWS_WORKERS", "reuseport", "SIGTERM" }) do
      assert.truthy(out:find(s, 1, true), "serve --help lacks " .. s)
    end
    assert.equal(2, (C.luaws("serve"):wait_exit()))
  end)

  it("runs N workers on one port that answer connections, and SIGTERM stops them all (exit 0)", function()
    local p = serve("--workers 2")
    local pids = { p:ready(1), p:ready(2) }
    assert.matches("ready 1 2 ", p:stdout())   -- LUAWS_WORKERS
    for i = 1, 2 do assert.matches(("worker %d started %%(pid %d%%)"):format(i, pids[i]), p:stderr()) end
    local answered, by_id = fan_out(p.port, 40)
    assert.equal(40, answered)
    assert.is_true((by_id["1"] or 0) > 0 and (by_id["2"] or 0) > 0,
      ("worker 1 answered %d, worker 2 %d"):format(by_id["1"] or 0, by_id["2"] or 0))
    signal(p.pid, "TERM")
    local status, _, err = p:wait_exit(20)
    assert.equal(0, status, err)
    assert.matches("SIGTERM: stopping the workers", err)
    for _, pid in ipairs(pids) do assert.is_false(alive(pid), "worker " .. pid .. " still runs") end
  end)

  it("stops on SIGINT too, with --workers 1", function()
    local p = serve("--workers 1")
    local pid = p:ready(1)
    assert.equal(1, (fan_out(p.port, 1)))
    signal(p.pid, "INT")
    local status, _, err = p:wait_exit(20)
    assert.equal(0, status, err)
    assert.is_false(alive(pid))
  end)

  it("with --restart, restarts a worker killed with SIGKILL; the new one serves", function()
    local p = serve("--workers 2 --restart")
    local old = p:ready(1)
    p:ready(2)
    signal(old, "KILL")
    local new = p:ready(1, 2)
    assert.are_not.equal(old, new)
    assert.matches(("worker 1 %%(pid %d%%) killed by SIGKILL"):format(old), p:stderr())
    assert.matches("restarting worker 1", p:stderr())
    assert.equal(20, (fan_out(p.port, 20)))
    signal(p.pid, "TERM")
    local status, _, err = p:wait_exit(20)
    assert.equal(0, status, err)
    assert.is_false(alive(new))
  end)

  it("exits 1 when the worker script fails", function()
    local p = serve("--workers 2", { LUAWS_TEST_FAIL = "all" })
    local status, _, err = p:wait_exit(20)
    assert.equal(1, status, err)
    assert.matches("fails on purpose", err)
    assert.matches("worker %d %(pid %d+%) exited with status 1", err)
  end)

  it("without --restart, stops the other workers when one fails, and exits 1", function()
    local p = serve("--workers 2", { LUAWS_TEST_FAIL = "2" })
    local status, _, err = p:wait_exit(20)
    assert.equal(1, status, err)
    assert.matches("worker 2 %(pid %d+%) exited with status 1", err)
    assert.matches("stopping the other workers", err)
  end)

  it("with --restart, gives up on a worker that keeps failing, and exits 1", function()
    local p = serve("--workers 1 --restart", { LUAWS_TEST_FAIL = "1" })
    local status, _, err = p:wait_exit(30)
    assert.equal(1, status, err)
    local _, restarts = err:gsub("restarting worker 1", "")
    assert.equal(supervisor.RESTARTS, restarts)
    assert.matches("giving up: 5 restarts within 10 s", err)
  end)

  it("exits 0 once every worker exited 0, restarting none of them", function()
    local p = serve("--workers 2 --restart", { LUAWS_TEST_EXIT = "0" })
    local status, _, err = p:wait_exit(20)
    assert.equal(0, status, err)
    assert.falsy(err:find("restarting", 1, true))
    assert.matches("worker 1 %(pid %d+%) exited with status 0", err)
  end)

  it("exits 1 when it cannot start a worker (--lua)", function()
    local status, _, err = C.luaws("serve --workers 2 --lua /nonexistent/lua spec/workers/echo_worker.lua")
      :wait_exit(20)
    assert.equal(1, status, err)
    assert.matches("cannot start worker 1 %(/nonexistent/lua%): ENOENT", err)
  end)

  -- n chat clients of examples/workers_chat.lua on port; client 1 sends probes until
  -- one reaches all n (subscriptions, through Redis too, are not instant).
  local function chat_reaches_all(port, n)
    local got, list, open = {}, {}, 0
    for i = 1, n do
      local ws = H.track(assert(WebSocket.Client("ws://127.0.0.1:" .. port .. "/")))
      list[i] = ws
      ws.onopen = function() open = open + 1 end
      ws.onmessage = function(e) got[e.data] = (got[e.data] or 0) + 1 end
    end
    H.wait(function() return open == n end, 10, "the chat clients to open")
    local k = 0
    local t = WebSocket.setInterval(function()
      k = k + 1
      list[1]:send("probe " .. k)
    end, 200)
    local ok, err = pcall(H.wait, function()
      for _, c in pairs(got) do if c == n then return true end end
    end, 10, "a message to reach all " .. n .. " clients")
    WebSocket.clearInterval(t)
    for _, ws in ipairs(list) do ws:close() end
    assert(ok, err)
  end

  it("runs examples/workers_chat.lua: a chat room within one worker", function()
    if not WebSocket.publish then return pending("no topics in this luaws") end
    local port = free_port()
    local p = C.luaws("serve --workers 1 examples/workers_chat.lua " .. port)
    p:wait_for("listening on", "stderr", 20)
    chat_reaches_all(port, 5)
    signal(p.pid, "TERM")
    assert.equal(0, (p:wait_exit(20)))
  end)

  it("runs examples/workers_chat.lua: one room across 2 workers through the backplane", function()
    if not WebSocket.backplane then return pending("no backplane in this luaws") end
    if not C.sh("command -v redis-server >/dev/null 2>&1") then return pending("no redis-server") end
    local rport = free_port()
    local redis = H.spawn(("exec redis-server --port %d --bind 127.0.0.1 --save '' --appendonly no"):format(rport))
    redis:wait_for("Ready to accept connections", 20)
    local port = free_port()
    local p = C.luaws(("serve --workers 2 examples/workers_chat.lua %d redis://127.0.0.1:%d"):format(port, rport))
    p:wait_until(function(self)
      local _, n = self:stderr():gsub("listening on", "")
      return n == 2
    end, 20, "both workers to listen")
    assert.falsy(p:stderr():find("no backplane", 1, true), p:stderr())
    chat_reaches_all(port, 20)   -- 20 clients: all on one worker is a chance of 2^-19
    signal(p.pid, "TERM")
    assert.equal(0, (p:wait_exit(20)))
  end)
end)
