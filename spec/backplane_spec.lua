-- The Redis backplane (csrc/io/backplane.c, csrc/lua/l_backplane.c): topics across
-- processes. Each test starts its own redis-server on a free port; luaws processes
-- (spec/backplane/node.lua) and this one publish, and every subscriber's messages are
-- counted exactly: each publish once in every process subscribed when it reached Redis,
-- none twice, a process's own publishes never back from Redis. Redis down at start,
-- killed and restarted, stopped (slow); the queue's bound; AUTH, ACL users and SELECT;
-- channels subscribed with the first local subscriber and left after the last.
local H = require "helper"
local WebSocket = H.WebSocket
local options = require "luaws.options"

local function sh_quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function shell_ok(cmd)
  local r = os.execute(cmd)
  return r == true or r == 0
end

-- Built with hiredis? (A backplane made and closed at once never connects.)
local built = true
do
  local ok, err = pcall(WebSocket.backplane, { url = "redis://127.0.0.1:1" })
  if ok then err:close() else built = not tostring(err):find("built without hiredis", 1, true) end
end
local have_redis = shell_ok("command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1")

local poll = H.poll   -- (conditions that read files and run redis-cli)

local function free_port()
  local s = assert(WebSocket.listen { host = "127.0.0.1", port = 0 })
  local port = s.port
  s:close()
  return port
end

-- redis-cli's answer (without the sanitizer runtime the specs may preload).
local function cli(port, ...)
  local args = {}
  for i, a in ipairs { ... } do args[i] = sh_quote(a) end
  local f = io.popen(("env -u LD_PRELOAD redis-cli -p %d %s 2>&1"):format(port, table.concat(args, " ")))
  local out = f:read("*a")
  f:close()
  return (out:gsub("\n+$", ""))
end

local function numsub(port, channel)
  return tonumber(cli(port, "PUBSUB", "NUMSUB", channel):match("(%d+)$"))
end

local function start_redis(port, extra)
  local p = H.spawn(("exec redis-server --port %d --bind 127.0.0.1 --save '' --appendonly no %s")
    :format(port, extra or ""))
  poll(function()
    local answer = cli(port, "PING")
    return answer == "PONG" or answer:find("NOAUTH", 1, true) or not p:running()
  end, 10, "redis-server")
  assert(p:running(), "redis-server did not start:\n" .. p:output())
  return p
end

local function kill_redis(p, signal)
  os.execute(("kill -%s %d"):format(signal or "KILL", p.pid))
  poll(function() return not p:running() end, 10, "redis-server to exit")
  p:kill()
end

local function acl_user(port, user)
  assert.equal("OK", cli(port, "ACL", "SETUSER", user, "on", ">pw-" .. user, "~*", "&*", "+@all"))
end

-- ---- luaws processes -------------------------------------------------------------

local function node_cmd(url, extra)
  local env = ("LUA_CPATH=%s LUA_PATH=%s LD_PRELOAD=%s"):format(
    sh_quote(os.getenv("LUAWS_CPATH") or "build/lua5.4/?.so;;"),
    sh_quote(os.getenv("LUAWS_LPATH") or "lua/?.lua;lua/?/init.lua;;"),
    sh_quote(os.getenv("LUAWS_PRELOAD") or ""))
  return ("exec env %s %s spec/backplane/node.lua %s %s"):format(env,
    os.getenv("LUAWS_LUA") or "lua5.4", sh_quote(url), extra and sh_quote(extra) or "")
end

-- A node: its process, its port, and a control socket.
local function start_node(name, url, extra)
  local p = H.spawn(node_cmd(url, extra))
  local port = tonumber(p:wait_for("PORT (%d+)", 20))
  local n = { name = name, proc = p, port = port }
  n.ctl, n.ctl_rec = H.client(("ws://127.0.0.1:%d/ctl"):format(port))
  H.wait(function() return n.ctl_rec.opens == 1 or #n.ctl_rec.closes > 0 end, 10, "control socket")
  assert.equal(1, n.ctl_rec.opens)
  return n
end

local function ctl(n, cmd)
  local k = #n.ctl_rec.messages
  assert(n.ctl:send(cmd, "binary"))   -- (a publish's data may be any bytes)
  H.wait(function() return #n.ctl_rec.messages > k or #n.ctl_rec.closes > 0 end, 10, "answer to " .. cmd)
  return n.ctl_rec.messages[k + 1].data
end

local function status(n)
  local c, q, ch, r = ctl(n, "status"):match("^status (%d) (%d+) (%d+) (%d+)$")
  return { connected = c == "1", queued = tonumber(q), channels = tonumber(ch), reconnects = tonumber(r) }
end

local function events(n, kind)
  local k = 0
  for _ in n.proc:output():gmatch("EVENT " .. kind .. "\n") do k = k + 1 end
  return k
end

-- Publishes from node n; returns the local delivered count.
local function npub(n, topic, data, kind)
  local answer = ctl(n, "pub " .. (kind or "text") .. " " .. topic .. " " .. data)   -- (5.1's %s stops at "\0")
  local delivered = answer:match("^pub (%d+) %d+$")
  assert(delivered, answer)
  return tonumber(delivered)
end

-- A subscriber of topic on node n (a luaws client of its server).
local function nsub(n, topic)
  local ws, rec = H.client(("ws://127.0.0.1:%d/sub/%s"):format(n.port, topic))
  H.wait(function() return rec.opens == 1 or #rec.closes > 0 end, 10, "subscriber open")
  assert.equal(1, rec.opens)
  return rec, ws
end

local function stop_node(n)
  assert.equal("bye", ctl(n, "quit"))
  local left = n.proc:wait_for("EXIT (%d+)", 20)
  assert.equal("0", left, "handles left open in the node")
  local out = n.proc:output()
  assert.is_nil(out:find("Sanitizer", 1, true), out)
end

local datas = H.datas

local function sorted(t)
  local c = {}
  for i, v in ipairs(t) do c[i] = v end
  table.sort(c)
  return c
end

local function has(rec, data)
  for _, e in ipairs(rec.messages) do if e.data == data then return true end end
  return false
end

-- ---- this process's own subscribers ------------------------------------------------

-- A server in this process whose sockets subscribe to the topic in their path, and n
-- luaws clients of it subscribed to topic; returns their records.
local function local_subs(topic, n)
  local s = H.server()
  s.onupgrade = function(req)
    local ws = H.track(WebSocket(req))
    assert(ws:subscribe(req.url:sub(2)))
  end
  local recs = {}
  for i = 1, n or 1 do
    local _, rec = H.client(("ws://127.0.0.1:%d/%s"):format(s.port, topic))
    H.wait(function() return rec.opens == 1 end, 10, "local subscriber")
    recs[i] = rec
  end
  return recs, s
end

-- A backplane in this process that records its events; closed after each test.
local open_bps = {}
local function backplane(o)
  local bp = WebSocket.backplane(o)
  open_bps[#open_bps + 1] = bp
  local rec = { errors = {}, connects = 0, disconnects = 0 }
  bp.onerror = function(e)
    assert.equal("error", e.type)
    assert.equal(bp, e.target)
    rec.errors[#rec.errors + 1] = e
  end
  bp.onconnect = function() rec.connects = rec.connects + 1 end
  bp.ondisconnect = function() rec.disconnects = rec.disconnects + 1 end
  return bp, rec
end

local function cleanup()
  for _, bp in ipairs(open_bps) do bp:close() end
  open_bps = {}
  H.cleanup()
end

-- ---------------------------------------------------------------------------------------

describe("WebSocket.backplane's options", function()
  after_each(cleanup)

  it("reads Redis URLs: user, password (percent-decoded), host, port, db", function()
    local c = options.backplane { url = "redis://u%3A:p%40ss@[::1]:7000/2" }
    assert.same({ "::1", 7000, "u:", "p@ss", 2, "luaws:" },
      { c.host, c.port, c.username, c.password, c.db, c.prefix })
    c = options.backplane { url = "redis://:secret@redis.example", prefix = "app:" }
    assert.same({ "redis.example", 6379, nil, "secret", 0, "app:" },
      { c.host, c.port, c.username, c.password, c.db, c.prefix })
    c = options.backplane { url = "redis://secret@h:1/" }
    assert.same({ "h", 1, nil, "secret", 0 }, { c.host, c.port, c.username, c.password, c.db })
    c = options.backplane { url = "redis://h", max_queue = 5, max_queue_bytes = 100,
                            reconnect_min = 0.05, reconnect_max = 1, connect_timeout = 2 }
    assert.same({ 5, 100, 50, 1000, 2000 }, { c.max_queue, c.max_queue_bytes,
      c.reconnect_min_ms, c.reconnect_max_ms, c.connect_timeout_ms })
  end)

  it("raises for misuse", function()
    local bad = {
      { {}, "option url must be a string" },
      { { url = "http://h" }, "must be a redis:// URL" },
      { { url = "rediss://h" }, "rediss:// is not supported" },
      { { url = "redis://h:70000" }, "port out of range" },
      { { url = "redis://h/db1" }, "must be a database number" },
      { { url = "redis://" }, "no valid host" },
      { { url = "redis://:%zz@h" }, "bad percent-escape" },
      { { url = "redis://h", bogus = 1 }, 'unknown option "bogus"' },
      { { url = "redis://h", prefix = ("x"):rep(257) }, "at most 256 bytes" },
      { { url = "redis://h", max_queue = 0 }, "option max_queue must be" },
      { { url = "redis://h", reconnect_min = 2, reconnect_max = 1 }, "at least reconnect_min" },
    }
    for _, case in ipairs(bad) do
      local ok, err = pcall(WebSocket.backplane, case[1])
      assert.is_false(ok)
      assert.matches(case[2], err, 1, true)
    end
    assert.has_error(function() WebSocket.backplane("redis://h") end,
      "backplane{...} takes a table of options")
  end)

  it("is one per Lua state, made and closed without connecting", function()
    if not built then
      local ok, err = pcall(WebSocket.backplane, { url = "redis://127.0.0.1:1" })
      assert.is_false(ok)
      assert.matches("built without hiredis", err, 1, true)
      return
    end
    local bp, rec = backplane { url = "redis://127.0.0.1:" .. free_port() }
    assert.same({ false, 0, 0, 0, "luaws:" }, { bp.connected, bp.queued, bp.queued_bytes, bp.channels, bp.prefix })
    local ok, err = pcall(WebSocket.backplane, { url = "redis://127.0.0.1:1" })
    assert.is_false(ok)
    assert.matches("a backplane is open already", err, 1, true)
    assert.equal(0, bp:close())
    assert.equal(0, bp:close())   -- twice is fine
    assert.is_false(bp.connected)
    H.drain()
    assert.same({}, rec.errors)   -- closed before its first attempt: no event at all
    local again = WebSocket.backplane { url = "redis://127.0.0.1:1" }
    again:close()
  end)
end)

local function skip()
  if not built then return "luaws was built without hiredis" end
  if not have_redis then return "redis-server and redis-cli (Debian's redis-server) are not installed" end
end

describe("a Redis backplane", function()
  after_each(cleanup)

  local port, redis
  before_each(function()
    if skip() then return end
    port = free_port()
    redis = start_redis(port)
  end)

  it("three processes: every publish reaches every subscriber in every process, exactly once", function()
    if skip() then return pending(skip()) end
    local url = "redis://127.0.0.1:" .. port
    local nodes, news, other = {}, {}, {}
    for i, name in ipairs { "A", "B", "C" } do
      nodes[i] = start_node(name, url)
      news[i] = { nsub(nodes[i], "news"), nsub(nodes[i], "news") }
      other[i] = nsub(nodes[i], "other")
    end
    poll(function() return numsub(port, "luaws:news") == 3 and numsub(port, "luaws:other") == 3 end,
      10, "three processes subscribed")
    for _, n in ipairs(nodes) do
      assert.same({ connected = true, queued = 0, channels = 2, reconnects = 0 }, status(n))
      assert.equal(1, events(n, "connect"))
    end
    local expect_news, expect_other = {}, {}
    for k = 1, 5 do
      for _, n in ipairs(nodes) do
        local t, b = n.name .. "-text-" .. k, n.name .. "-bin-" .. k .. "\0\255"
        assert.equal(2, npub(n, "news", t))              -- its own two, at once
        assert.equal(2, npub(n, "news", b, "binary"))
        expect_news[#expect_news + 1] = "t:" .. t
        expect_news[#expect_news + 1] = "b:" .. b
        if k <= 3 then
          assert.equal(1, npub(n, "other", n.name .. "-other-" .. k))
          expect_other[#expect_other + 1] = "t:" .. n.name .. "-other-" .. k
        end
      end
    end
    -- Each origin's last publish arrives after all its others: when every subscriber has
    -- every "end", nothing more is on its way.
    for _, n in ipairs(nodes) do
      npub(n, "news", n.name .. "-end")
      npub(n, "other", n.name .. "-end")
      expect_news[#expect_news + 1] = "t:" .. n.name .. "-end"
      expect_other[#expect_other + 1] = "t:" .. n.name .. "-end"
    end
    poll(function()
      for i = 1, 3 do
        for _, rec in ipairs { news[i][1], news[i][2], other[i] } do
          for _, n in ipairs(nodes) do
            if not has(rec, n.name .. "-end") then return false end
          end
        end
      end
      return true
    end, 20, "every end at every subscriber")
    H.drain()
    for i = 1, 3 do
      assert.same(sorted(expect_news), sorted(datas(news[i][1])))
      assert.same(sorted(expect_news), sorted(datas(news[i][2])))
      assert.same(sorted(expect_other), sorted(datas(other[i])))
      -- one origin's publishes come in the order they were made
      local last = {}
      for _, d in ipairs(datas(news[i][1])) do
        local origin, k = d:match("^%a:(%a)%-%a+%-(%d+)")
        if origin then
          assert.is_true((last[origin] or 0) <= tonumber(k), d)
          last[origin] = tonumber(k)
        end
      end
    end
    for _, n in ipairs(nodes) do
      assert.same({ connected = true, queued = 0, channels = 2, reconnects = 0 }, status(n))
      stop_node(n)
    end
    poll(function() return numsub(port, "luaws:news") == 0 end, 10, "channels left")
  end)

  it("subscribes a channel with the first local subscriber and leaves it after the last", function()
    if skip() then return pending(skip()) end
    local bp = backplane { url = "redis://127.0.0.1:" .. port, prefix = "p:" }
    H.wait(function() return bp.connected end, 10, "connected")
    local s = H.server()
    local sockets = {}
    s.onupgrade = function(req)
      local ws = H.track(WebSocket(req))
      sockets[#sockets + 1] = ws
    end
    local clients = {}
    for i = 1, 3 do
      clients[i] = select(1, H.client(("ws://127.0.0.1:%d/"):format(s.port)))
    end
    H.wait(function() return #sockets == 3 end, 10, "three sockets")
    local function channels(want, what)
      poll(function() return numsub(port, "p:t") == want and bp.channels == (want > 0 and 1 or 0) end,
        10, what)
    end
    assert.is_true(sockets[1]:subscribe("t"))
    channels(1, "the first subscriber's SUBSCRIBE")
    assert.is_true(sockets[2]:subscribe("t"))
    assert.is_true(sockets[2]:unsubscribe("t"))
    sockets[1]:close()
    channels(0, "the last one's UNSUBSCRIBE")
    assert.equal(0, WebSocket.stats().topics)   -- the backplane keeps no topic after it
    -- subscribed and left in one turn: never SUBSCRIBEd; another topic's change after it
    -- shows the first was dealt with
    assert.is_true(sockets[2]:subscribe("u"))
    assert.is_true(sockets[2]:unsubscribe("u"))
    assert.is_true(sockets[3]:subscribe("v"))
    poll(function() return numsub(port, "p:v") == 1 end, 10, "v")
    assert.equal(0, numsub(port, "p:u"))
    -- left by a close, and by an abrupt end
    assert.is_true(sockets[2]:subscribe("t"))
    channels(1, "subscribed again")
    sockets[2]:terminate()
    sockets[3]:terminate()
    channels(0, "left at the end of the last socket")
    assert.equal(0, numsub(port, "p:v"))
    assert.equal(0, bp:close())
    H.wait(function() return WebSocket.stats().topics == 0 end, 5, "no topic")
  end)

  it("subscribes the topics that exist when it is made; close lets go of Redis, the topics stay local", function()
    if skip() then return pending(skip()) end
    local recs = local_subs("here", 2)
    local bp = backplane { url = "redis://127.0.0.1:" .. port }
    poll(function() return numsub(port, "luaws:here") == 1 end, 10, "the existing topic subscribed")
    assert.equal(0, bp:close())
    poll(function() return numsub(port, "luaws:here") == 0 end, 10, "the connection gone")
    local delivered = WebSocket.publish("here", "local only")
    assert.equal(2, delivered)
    H.wait(function() return #recs[1].messages == 1 and #recs[2].messages == 1 end, 5, "local delivery")
    assert.equal(1, WebSocket.stats().topics)
  end)

  it("Redis down at start: connects later, and the publishes queued meanwhile are delivered once", function()
    if skip() then return pending(skip()) end
    kill_redis(redis)
    -- The two processes are let in one at a time (their ACL users are made in turn):
    -- the receiver first, so that it is subscribed when the queued publishes arrive.
    local url = "redis://%s:pw-%s@127.0.0.1:" .. port
    local bp, rec = backplane { url = url:format("p", "p"), reconnect_max = 0.2 }
    local mine = local_subs("q", 1)[1]
    local r = start_node("R", url:format("r", "r"), "{ reconnect_max = 0.2 }")
    local theirs = { (nsub(r, "q")), (nsub(r, "q")) }
    H.wait(function() return #rec.errors >= 2 end, 10, "failed attempts")
    assert.matches("EBACKPLANE: Redis at 127.0.0.1:%d+, %a+ connection: Connection refused %(retrying in %d+ ms%)",
      rec.errors[1].message)
    assert.equal("EBACKPLANE", rec.errors[1].name)
    assert.is_false(bp.connected)
    local sent = { "t:one", "b:two\0\1\2", "t:three" }
    for _, d in ipairs(sent) do
      assert.equal(1, WebSocket.publish("q", d:sub(3), d:sub(1, 1) == "b" and "binary" or nil))
    end
    assert.equal(3, bp.queued)
    assert.is_true(bp.queued_bytes > 3 * 26)
    redis = start_redis(port)
    local before = #rec.errors
    H.wait(function() return #rec.errors > before end, 10, "AUTH refused")
    assert.matches("AUTH: WRONGPASS", rec.errors[#rec.errors].message, 1, true)
    acl_user(port, "r")
    poll(function() return numsub(port, "luaws:q") == 1 end, 10, "the receiver subscribed")
    assert.equal(0, rec.connects)
    acl_user(port, "p")
    H.wait(function() return bp.connected and bp.queued == 0 end, 10, "connected, queue sent")
    assert.equal(1, rec.connects)
    assert.equal(0, rec.disconnects)
    assert.equal(1, WebSocket.publish("q", "four"))
    sent[4] = "t:four"
    for _, s in ipairs(theirs) do
      H.wait(function() return #s.messages == 4 end, 10, "the queued and the live publishes")
    end
    H.wait(function() return #mine.messages == 4 end, 5, "local delivery")
    H.drain()
    assert.same(sent, datas(theirs[1]))
    assert.same(sent, datas(theirs[2]))
    assert.same(sent, datas(mine))   -- once: not again when Redis sends them back
    assert.equal(0, bp:close())
    stop_node(r)
  end)

  it("Redis killed and restarted mid-run: reconnects, resubscribes, sends what was queued", function()
    if skip() then return pending(skip()) end
    for _, u in ipairs { "a", "b", "c" } do acl_user(port, u) end
    local url = "redis://%s:pw-%s@127.0.0.1:" .. port
    local nodes, subs = {}, {}
    for i, name in ipairs { "A", "B", "C" } do
      local u = name:lower()
      nodes[i] = start_node(name, url:format(u, u), "{ reconnect_max = 0.3 }")
      subs[i] = nsub(nodes[i], "news")
    end
    local A, B, C = nodes[1], nodes[2], nodes[3]
    poll(function() return numsub(port, "luaws:news") == 3 end, 10, "three subscribed")
    for _, n in ipairs(nodes) do npub(n, "news", n.name .. "1") end
    poll(function() return #subs[1].messages == 3 and #subs[2].messages == 3 and #subs[3].messages == 3 end,
      10, "before the kill")

    kill_redis(redis)
    poll(function()
      for _, n in ipairs(nodes) do if events(n, "disconnect") ~= 1 then return false end end
      return true
    end, 10, "every node disconnected")
    for _, n in ipairs(nodes) do
      assert.equal(1, npub(n, "news", n.name .. "-down-1"))   -- delivered locally at once
      assert.equal(1, npub(n, "news", n.name .. "-down-2"))
      local st = status(n)
      assert.same({ false, 2 }, { st.connected, st.queued })
    end

    -- Back, letting one process in at a time: B, then C, then A. Redis keeps nothing for
    -- a process that is not subscribed: B's queued publishes reach no one else, C's reach
    -- B, A's reach B and C.
    redis = start_redis(port)
    local function let_in(n, user, subscribed)
      acl_user(port, user)
      poll(function() return events(n, "connect") == 2 end, 10, n.name .. " connected again")
      poll(function() return numsub(port, "luaws:news") == subscribed end, 10, n.name .. " subscribed again")
      poll(function() return status(n).queued == 0 end, 10, n.name .. "'s queue sent")
    end
    let_in(B, "b", 1)
    let_in(C, "c", 2)
    let_in(A, "a", 3)
    for _, n in ipairs(nodes) do npub(n, "news", n.name .. "3") end
    poll(function()
      for i = 1, 3 do
        for _, n in ipairs(nodes) do if not has(subs[i], n.name .. "3") then return false end end
      end
      return true
    end, 10, "the publishes after the restart")
    H.drain()
    local function t(list)
      local out = {}
      for _, d in ipairs(list) do out[#out + 1] = "t:" .. d end
      return sorted(out)
    end
    assert.same(t { "A1", "B1", "C1", "A-down-1", "A-down-2", "A3", "B3", "C3" }, sorted(datas(subs[1])))
    assert.same(t { "A1", "B1", "C1", "B-down-1", "B-down-2", "C-down-1", "C-down-2", "A-down-1",
      "A-down-2", "A3", "B3", "C3" }, sorted(datas(subs[2])))
    assert.same(t { "A1", "B1", "C1", "C-down-1", "C-down-2", "A-down-1", "A-down-2", "A3", "B3", "C3" },
      sorted(datas(subs[3])))
    for _, n in ipairs(nodes) do
      assert.same({ connected = true, queued = 0, channels = 1, reconnects = 1 }, status(n))
      assert.matches("EVENT error EBACKPLANE EBACKPLANE: Redis at 127.0.0.1:%d+, subscriber connection: [^\n]+",
        n.proc:output())
      stop_node(n)
    end
  end)

  it("the queue's bound: publish returns nil, EBACKPLANE and delivers nothing", function()
    if skip() then return pending(skip()) end
    kill_redis(redis)
    local bp = backplane { url = "redis://127.0.0.1:" .. port, max_queue = 3 }
    local mine = local_subs("b", 1)[1]
    for i = 1, 3 do assert.equal(1, WebSocket.publish("b", "m" .. i)) end
    local ok, err, name = WebSocket.publish("b", "m4")
    assert.is_nil(ok)
    assert.equal("EBACKPLANE", name)
    assert.matches("^EBACKPLANE: the queue to Redis is full: 3 publishes %(%d+ bytes%) not yet acknowledged " ..
      "%(max_queue 3, max_queue_bytes 16777216%); Redis is not connected$", err)
    H.wait(function() return #mine.messages == 3 end, 5, "three delivered")
    H.drain()
    assert.same({ "t:m1", "t:m2", "t:m3" }, datas(mine))
    assert.equal(3, bp:close())   -- dropped unsent, and said so
    -- in bytes: one publish of any size passes an empty queue
    bp = backplane { url = "redis://127.0.0.1:" .. port, max_queue_bytes = 1000 }
    assert.equal(1, WebSocket.publish("b", ("x"):rep(2000)))
    assert.is_true(bp.queued_bytes > 2000)
    ok, err, name = WebSocket.publish("b", "small")
    assert.same({ nil, "EBACKPLANE" }, { ok, name })
    assert.matches("max_queue_bytes 1000", err, 1, true)
    assert.equal(1, bp:close())
  end)

  it("a slow Redis: publishes wait for its answers, under the bound, and the loop runs on", function()
    if skip() then return pending(skip()) end
    local r = start_node("R", "redis://127.0.0.1:" .. port)
    local theirs = nsub(r, "slow")
    local bp, rec = backplane { url = "redis://127.0.0.1:" .. port, max_queue = 5 }
    H.wait(function() return bp.connected end, 10, "connected")
    poll(function() return numsub(port, "luaws:slow") == 1 end, 10, "subscribed")
    os.execute(("kill -STOP %d"):format(redis.pid))
    for i = 1, 5 do assert.equal(0, WebSocket.publish("slow", "s" .. i)) end
    local ok, err, name = WebSocket.publish("slow", "s6")
    assert.same({ nil, "EBACKPLANE" }, { ok, name })
    assert.matches("5 publishes", err, 1, true)
    assert.is_nil(err:find("not connected", 1, true))
    local ticks = 0
    local t = WebSocket.setInterval(function() ticks = ticks + 1 end, 10)
    H.wait(function() return ticks >= 20 end, 5, "timers while Redis is stopped")
    WebSocket.clearInterval(t)
    assert.equal(5, bp.queued)
    os.execute(("kill -CONT %d"):format(redis.pid))
    H.wait(function() return bp.queued == 0 end, 10, "Redis's answers")
    H.wait(function() return #theirs.messages == 5 end, 10, "the five")
    H.drain()
    assert.same({ "t:s1", "t:s2", "t:s3", "t:s4", "t:s5" }, datas(theirs))
    assert.same({ true, 0, 0 }, { bp.connected, #rec.errors, rec.disconnects })
    bp:close()
    stop_node(r)
  end)

  it("a message from another process that a subscriber cannot take is reported with the socket", function()
    if skip() then return pending(skip()) end
    local bp, rec = backplane { url = "redis://127.0.0.1:" .. port }
    local s = H.server()
    local slow
    s.onupgrade = function(req)
      local ws = H.track(WebSocket(req, nil, { backpressure = "error", max_buffered = 1024 }))
      if req.url == "/slow" then slow = ws end
      assert(ws:subscribe(req.url:sub(2)))
    end
    local reader, got = H.client(("ws://127.0.0.1:%d/slow"):format(s.port))
    local _, marks = H.client(("ws://127.0.0.1:%d/mark"):format(s.port))
    H.wait(function() return got.opens == 1 and marks.opens == 1 end, 10, "open")
    reader:pause()   -- reads nothing: the kernel's buffers fill, then the socket's queue
    H.wait(function() return bp.connected end, 10, "connected")
    poll(function() return numsub(port, "luaws:slow") == 1 and numsub(port, "luaws:mark") == 1 end,
      10, "subscribed")
    local r = start_node("R", "redis://127.0.0.1:" .. port)
    local big = ("x"):rep(1024 * 1024)
    local N = 16   -- more than the kernel's buffers hold for a reader that reads nothing
    for i = 1, N do npub(r, "slow", i .. big, "binary") end
    npub(r, "mark", "after")   -- from the same origin, so it arrives after them
    H.wait(function() return #marks.messages == 1 end, 20, "the mark")
    local missed = 0
    for _, e in ipairs(rec.errors) do
      assert.equal("EBACKPRESSURE", e.name)
      assert.equal("slow", e.topic)
      assert.same({ slow }, e.sockets)
      assert.matches("did not take a message published in another process", e.message, 1, true)
      missed = missed + 1
    end
    assert.is_true(missed >= 1 and missed < N, tostring(missed))
    reader:resume()
    -- the ones it took came first, whole and in order; the others were each reported
    H.wait(function() return #got.messages == N - missed end, 20, "the ones taken")
    H.drain()
    assert.equal(N - missed, #got.messages)
    for i, e in ipairs(got.messages) do
      assert.is_true(e.binary)
      H.assert_bytes(i .. big, e.data, "message " .. i)
    end
    bp:close()
    stop_node(r)
  end)

  it("delivers other clients' publishes (text or binary by their bytes) and drops a publish sent twice", function()
    if skip() then return pending(skip()) end
    local bp = backplane { url = "redis://127.0.0.1:" .. port }
    local mine = local_subs("x", 1)[1]
    poll(function() return numsub(port, "luaws:x") == 1 end, 10, "subscribed")
    assert.equal("1", cli(port, "PUBLISH", "luaws:x", "plain text"))
    -- A luaws publish as it travels: 0xFF, kind, 16 bytes of origin, sequence number.
    local origin = ("\1\2\3\4\5\6\7\8\9\10\11\12\13\14\15\16")
    local function publish_raw(payload)
      local name = os.tmpname()
      local f = assert(io.open(name, "wb"))
      f:write(payload)
      f:close()
      local ok = shell_ok(("env -u LD_PRELOAD redis-cli -p %d -x PUBLISH luaws:x <%s >/dev/null"):format(port, name))
      os.remove(name)
      assert.is_true(ok)
    end
    local function seq(n) return ("\0\0\0\0\0\0\0" .. string.char(n)) end
    publish_raw("\128\129 not UTF-8")
    publish_raw("\255t" .. origin .. seq(7) .. "first")
    publish_raw("\255t" .. origin .. seq(7) .. "first, again")
    publish_raw("\255b" .. origin .. seq(6) .. "older")
    publish_raw("\255b" .. origin .. seq(8) .. "next\0")
    assert.equal("1", cli(port, "PUBLISH", "luaws:x", "end"))
    H.wait(function() return has(mine, "end") end, 10, "the end")
    H.drain()
    assert.same({ "t:plain text", "b:\128\129 not UTF-8", "t:first", "b:next\0", "t:end" }, datas(mine))
    bp:close()
  end)

  it("takes a password and a database from the URL; a wrong one is an error, retried", function()
    if skip() then return pending(skip()) end
    kill_redis(redis)
    redis = start_redis(port, "--requirepass secret")
    local bp, rec = backplane { url = ("redis://:secret@127.0.0.1:%d/3"):format(port) }
    H.wait(function() return bp.connected end, 10, "connected")
    local list = cli(port, "-a", "secret", "--no-auth-warning", "CLIENT", "LIST")
    local in3 = 0
    for line in list:gmatch("[^\n]+") do if line:find(" db=3 ", 1, true) then in3 = in3 + 1 end end
    assert.equal(2, in3, list)
    assert.same({ 1, 0 }, { rec.connects, #rec.errors })
    bp:close()
    for _, case in ipairs { { ":wrong@", "", "AUTH: WRONGPASS" }, { ":secret@", "/99", "SELECT: ERR DB index is out of range" } } do
      bp, rec = backplane { url = ("redis://%s127.0.0.1:%d%s"):format(case[1], port, case[2]),
                            reconnect_max = 0.1 }
      H.wait(function() return #rec.errors >= 4 end, 10, "retries")
      assert.matches(case[3], rec.errors[1].message, 1, true)
      assert.matches(case[3], rec.errors[4].message, 1, true)
      assert.is_false(bp.connected)
      assert.equal(0, rec.connects)
      bp:close()
    end
  end)
end)
