-- Topics (csrc/io/topics.c, csrc/lua/l_topics.c): ws:subscribe / unsubscribe /
-- is_subscribed / topics, WebSocket.publish / subscribers. Publishes are checked on the
-- wire from raw peers and from luaws clients: who gets a message and who does not, its
-- bytes, what back-pressure does to a subscriber that does not read, one compressed frame
-- shared by deflate subscribers, 2000 subscribers, and handlers that subscribe, leave,
-- close and publish while others are being sent to. After each, no topic may remain.
local H = require "helper"
local D = require "rawdeflate"
local WebSocket = H.WebSocket
local deflate = require "luaws.deflate"

-- A server that accepts every upgrade with options (a table, or a function of the
-- request), calls setup(ws, req) and records the server sockets' events.
local function serve(options, setup)
  local s = H.server()
  local rec = { sockets = {}, messages = {}, errors = {}, closes = {}, log = {} }
  s.onupgrade = function(req)
    local o = options
    if type(o) == "function" then o = o(req) end
    local ws = H.track(WebSocket(req, nil, o))
    rec.sockets[#rec.sockets + 1] = ws
    ws.onmessage = function(e) rec.messages[#rec.messages + 1] = e end
    ws.onerror = function(e)
      rec.errors[#rec.errors + 1] = e
      rec.log[#rec.log + 1] = "error " .. e.name
    end
    ws.onclose = function(e)
      rec.closes[#rec.closes + 1] = e
      rec.log[#rec.log + 1] = "close " .. e.code
    end
    if setup then setup(ws, req, rec) end
  end
  return s, rec
end

local function url(s, path) return "ws://127.0.0.1:" .. s.port .. (path or "/") end

-- A luaws client, opened.
local function client(s, path, options)
  local ws, rec = H.client(url(s, path), nil, options)
  H.wait(function() return rec.opens == 1 or #rec.closes > 0 end, 5, "open")
  assert.equal(1, rec.opens)
  return ws, rec
end

local datas = H.datas

-- Nothing is left of the topics once every socket is gone.
local function assert_no_topics()
  H.wait(function() return WebSocket.stats().connections == 0 end, 5, "every socket gone")
  local st = WebSocket.stats()
  assert.same({ 0, 0, 0 }, { st.topics, st.subscriptions, st.topic_memory })
end

-- Counts the frames of a server's byte stream as they arrive, keeping no payload.
local function frame_counter()
  local k = { n = 0, skip = 0, head = "" }
  function k.feed(data)
    data = k.head .. data
    k.head = ""
    local pos = 1
    while true do
      if k.skip > 0 then
        local take = math.min(k.skip, #data - pos + 1)
        k.skip, pos = k.skip - take, pos + take
        if k.skip > 0 then return end
        k.n = k.n + 1
      end
      local avail = #data - pos + 1
      if avail < 2 then k.head = data:sub(pos); return end
      local len = data:byte(pos + 1) % 128
      local hl = len == 126 and 4 or len == 127 and 10 or 2
      if avail < hl then k.head = data:sub(pos); return end
      if len >= 126 then
        len = 0
        for i = 2, hl - 1 do len = len * 256 + data:byte(pos + i) end
      end
      pos = pos + hl
      if len == 0 then k.n = k.n + 1 else k.skip = len end
    end
  end
  return k
end

local function cleanup()
  H.cleanup()
  assert_no_topics()
end

describe("subscribing", function()
  after_each(cleanup)

  it("subscribe, unsubscribe, is_subscribed, topics and subscribers", function()
    local s, rec = serve()
    local _, _ = client(s)
    local _, _ = client(s)
    H.wait(function() return #rec.sockets == 2 end, 5, "two sockets")
    local a, b = rec.sockets[1], rec.sockets[2]
    assert.is_true(a:subscribe("news"))
    assert.is_false(a:subscribe("news"))          -- already
    assert.is_true(b:subscribe("news"))
    assert.is_true(b:subscribe("sport"))
    assert.is_true(b:subscribe(""))               -- any string, the empty one too
    assert.is_true(b:subscribe("n\0ews"))
    assert.is_true(b:subscribe(("x"):rep(256)))
    assert.equal(2, WebSocket.subscribers("news"))
    assert.equal(1, WebSocket.subscribers("n\0ews"))
    assert.equal(0, WebSocket.subscribers("n"))
    assert.is_true(a:is_subscribed("news"))
    assert.is_false(a:is_subscribed("sport"))
    local topics = b:topics()
    table.sort(topics)
    assert.same({ "", "n\0ews", "news", "sport", ("x"):rep(256) }, topics)
    local st = WebSocket.stats()
    assert.equal(5, st.topics)
    assert.equal(6, st.subscriptions)
    assert.is_true(st.topic_memory > 0)
    assert.is_true(b:unsubscribe("sport"))
    assert.is_false(b:unsubscribe("sport"))
    assert.is_false(a:unsubscribe("never"))
    assert.equal(0, WebSocket.subscribers("sport"))
    assert.equal(4, WebSocket.stats().topics)
  end)

  it("raises for a topic that is not a string or is over 256 bytes, and for bad data", function()
    local s, rec = serve()
    client(s)
    H.wait(function() return #rec.sockets == 1 end, 5, "a socket")
    local ws = rec.sockets[1]
    assert.has_error(function() ws:subscribe() end)
    assert.has_error(function() ws:subscribe({}) end)
    assert.has_error(function() ws:subscribe(("x"):rep(257)) end, nil)
    local ok, err = pcall(ws.subscribe, ws, ("x"):rep(257))
    assert.is_false(ok)
    assert.truthy(tostring(err):find("over 256 bytes", 1, true))
    assert.has_error(function() ws.subscribe({}, "x") end)
    assert.has_error(function() WebSocket.publish(("x"):rep(257), "d") end)
    assert.has_error(function() WebSocket.publish("t") end)
    assert.has_error(function() WebSocket.publish("t", "d", "jpeg") end)
    assert.has_error(function() WebSocket.subscribers({}) end)
    ok, err = pcall(WebSocket.publish, "t", "bad \192\175")
    assert.is_false(ok)
    assert.truthy(tostring(err):find("UTF-8", 1, true))
    assert.same({ 0, 0 }, { WebSocket.publish("t", "bad \192\175", "binary") })
    for _, bad in ipairs { 0, 65536, 1.5, "1" } do
      assert.has_error(function() WebSocket.Client(url(s), nil, { max_subscriptions = bad }) end)
    end
  end)

  it("max_subscriptions bounds a socket's topics (ELIMIT)", function()
    local s, rec = serve({ max_subscriptions = 3 })
    client(s)
    H.wait(function() return #rec.sockets == 1 end, 5, "a socket")
    local ws = rec.sockets[1]
    for i = 1, 3 do assert.is_true(ws:subscribe("t" .. i)) end
    local ok, msg, name = ws:subscribe("t4")
    assert.same({ nil, "ELIMIT" }, { ok, name })
    assert.truthy(msg:find("max_subscriptions", 1, true))
    assert.is_false(ws:subscribe("t1"))           -- already: within the limit
    ws:unsubscribe("t2")
    assert.is_true(ws:subscribe("t4"))
  end)

  it("a closed socket cannot subscribe, is subscribed to nothing", function()
    local s, rec = serve()
    local c = client(s)
    H.wait(function() return #rec.sockets == 1 end, 5, "a socket")
    local ws = rec.sockets[1]
    ws:subscribe("x")
    c:close()
    H.wait(function() return #rec.closes == 1 end, 5, "close")
    local ok, _, name = ws:subscribe("x")
    assert.same({ nil, "ECLOSED" }, { ok, name })
    assert.is_false(ws:unsubscribe("x"))
    assert.is_false(ws:is_subscribed("x"))
    assert.same({}, ws:topics())
  end)
end)

describe("leaving", function()
  after_each(cleanup)

  -- n server sockets subscribed to "t", with their clients.
  local function subscribed(n, options)
    local s, rec = serve(options, function(ws) assert.is_true(ws:subscribe("t")) end)
    local clients = {}
    for i = 1, n do clients[i] = { client(s) } end
    H.wait(function() return #rec.sockets == n end, 5, n .. " sockets")
    assert.equal(n, WebSocket.subscribers("t"))
    return s, rec, clients
  end

  it("a socket leaves every topic as soon as its closing begins, either side", function()
    local s, rec, clients = subscribed(5)
    for _, ws in ipairs(rec.sockets) do ws:subscribe("u") end
    rec.sockets[1]:close()                        -- closing: out at once
    assert.equal(2, rec.sockets[1].readyState)
    assert.equal(4, WebSocket.subscribers("t"))
    assert.is_false(rec.sockets[1]:is_subscribed("t"))
    assert.equal(4, WebSocket.subscribers("u"))
    clients[2][1]:close()                         -- the peer's close frame
    H.wait(function() return WebSocket.subscribers("t") == 3 end, 5, "the peer's close")
    rec.sockets[3]:terminate()
    assert.equal(2, WebSocket.subscribers("t"))
    clients[4][1]:terminate()                     -- the TCP connection goes
    H.wait(function() return WebSocket.subscribers("t") == 1 end, 5, "the reset")
    s:close()                                     -- 1001 to the rest
    assert.equal(0, WebSocket.subscribers("t"))
    assert.equal(0, WebSocket.subscribers("u"))
    H.wait(function() return #rec.closes == 5 end, 5, "five closes")
  end)

  it("a handler error (1011) takes its socket out of its topics", function()
    local s, rec, clients = subscribed(2)
    local quiet = WebSocket.onhandlererror
    WebSocket.onhandlererror = function() end
    rec.sockets[1].onmessage = function() error("boom") end
    clients[1][1]:send("x")
    H.wait(function() return WebSocket.subscribers("t") == 1 end, 5, "the failed socket out")
    WebSocket.onhandlererror = quiet
    assert.equal(1, WebSocket.publish("t", "to the rest"))
  end)

  it("memory goes back to nothing once every subscriber has closed", function()
    local s, rec = serve(nil, function(ws, _, rec)
      local i = #rec.sockets
      for k = 1, 5 do ws:subscribe("topic " .. ((i + k) % 40)) end
      ws:subscribe("own " .. i)
    end)
    for _ = 1, 100 do H.client(url(s)) end
    H.wait(function() return #rec.sockets == 100 end, 10, "100 sockets")
    local st = WebSocket.stats()
    assert.equal(600, st.subscriptions)
    assert.equal(140, st.topics)
    assert.is_true(st.topic_memory > 600 * 24, st.topic_memory)
    H.cleanup()
    collectgarbage()
    assert_no_topics()
  end)
end)

describe("publishing", function()
  after_each(cleanup)

  it("reaches exactly the subscribers, text and binary, once each, in order", function()
    local s, rec = serve(nil, function(ws, req)
      for t in req.url:gmatch("%a") do ws:subscribe(t) end
    end)
    local c = {}
    for _, path in ipairs { "/a", "/b", "/ab", "/" } do c[#c + 1] = { client(s, path) } end
    H.wait(function() return #rec.sockets == 4 end, 5, "four sockets")
    assert.same({ 2, 0 }, { WebSocket.publish("a", "to a") })
    assert.same({ 2, 0 }, { WebSocket.publish("b", "\0\1\255", "binary") })
    assert.same({ 2, 0 }, { WebSocket.publish("b", "to b", true) })
    assert.same({ 0, 0 }, { WebSocket.publish("c", "nobody") })
    local big = ("0123456789"):rep(20000)
    assert.same({ 2, 0 }, { WebSocket.publish("a", big, "text") })
    local want = {
      { "t:to a", "t:" .. big },
      { "b:\0\1\255", "b:to b" },                     -- true: binary, as send's
      { "t:to a", "b:\0\1\255", "b:to b", "t:" .. big },
      {},
    }
    for i, w in ipairs(want) do
      H.wait(function() return #c[i][2].messages >= #w end, 5, "messages at client " .. i)
    end
    c[4][1]:send("sync")                          -- whatever was sent has arrived by now
    H.wait(function() return #rec.messages == 1 end, 5, "sync")
    H.drain()
    for i, w in ipairs(want) do assert.same(w, datas(c[i][2]), "client " .. i) end
  end)

  it("frames once for the raw peers: the bytes of one unmasked frame each", function()
    local s, rec = serve(nil, function(ws) ws:subscribe("r") end)
    local raws = {}
    for i = 1, 3 do raws[i] = { H.raw_upgraded(s.port) } end
    H.wait(function() return #rec.sockets == 3 end, 5, "three sockets")
    local payload = ("p"):rep(70000)              -- a 64-bit length
    assert.equal(3, WebSocket.publish("r", payload, "binary"))
    for _, r in ipairs(raws) do
      H.wait(function() return H.count_frames(r[2].data) == 1 end, 5, "the frame")
      H.assert_bytes("\130\127\0\0\0\0\0\1\17\112" .. payload, r[2].data, "frame")
    end
  end)

  it("clients subscribe too, even before they are open", function()
    local s, rec = serve()
    local ws, crec = H.client(url(s))
    assert.equal(0, ws.readyState)
    assert.is_true(ws:subscribe("c"))
    local delivered, skipped, missed = WebSocket.publish("c", "too early")
    assert.same({ 0, 1 }, { delivered, skipped })  -- not open: skipped, not missed
    assert.is_nil(missed)
    H.wait(function() return crec.opens == 1 end, 5, "open")
    assert.equal(1, WebSocket.publish("c", "from the client"))
    H.wait(function() return #rec.messages == 1 end, 5, "the message")
    assert.equal("from the client", rec.messages[1].data)
  end)

  it("publishes from handlers while subscribers leave, close and join", function()
    local order = {}
    local s, rec = serve(nil, function(ws, _, rec)
      ws:subscribe("room")
      ws.onmessage = function(e)
        if e.data == "leave" then
          assert.is_true(ws:unsubscribe("room"))
          order[#order + 1] = { WebSocket.publish("room", "left") }
        elseif e.data == "quit" then
          ws:close()
          order[#order + 1] = { WebSocket.publish("room", "quit") }
        elseif e.data == "join-all" then
          for _, other in ipairs(rec.sockets) do other:subscribe("room") end
          order[#order + 1] = { WebSocket.publish("room", "all") }
        end
      end
      ws.onclose = function()
        order[#order + 1] = { WebSocket.publish("room", "gone") }
      end
    end)
    local c = {}
    for i = 1, 4 do c[i] = { client(s) } end
    H.wait(function() return #rec.sockets == 4 end, 5, "four sockets")
    c[1][1]:send("leave")
    H.wait(function() return #order == 1 end, 5, "leave")
    assert.same({ 3, 0 }, order[1])
    c[2][1]:send("quit")
    H.wait(function() return #order >= 2 end, 5, "quit")
    assert.same({ 2, 0 }, order[2])
    H.wait(function() return #order == 3 end, 5, "its close")
    assert.same({ 2, 0 }, order[3])                -- onclose: it had left already
    c[3][1]:send("join-all")                       -- the closed one cannot rejoin
    H.wait(function() return #order == 4 end, 5, "join-all")
    assert.same({ 3, 0 }, order[4])
    H.wait(function() return #c[1][2].messages == 1 and #c[4][2].messages == 4 end, 5, "all")
    assert.same({ "t:all" }, datas(c[1][2]))
    assert.same({ "t:left" }, datas(c[2][2]))
    assert.same({ "t:left", "t:quit", "t:gone", "t:all" }, datas(c[3][2]))
    assert.same({ "t:left", "t:quit", "t:gone", "t:all" }, datas(c[4][2]))
  end)

  it("skips draft sockets for binary, and names them", function()
    local s, rec = serve(nil, function(ws) ws:subscribe("d") end)
    local c, crec = H.raw(s.port)
    H.wait(function() return crec.opened end, 5, "connect")
    c:_raw_write("GET /demo HTTP/1.1\r\nUpgrade: WebSocket\r\nConnection: Upgrade\r\n" ..
                 "Host: example.com\r\nOrigin: http://example.com\r\n\r\n")
    local r13, rec13 = H.raw_upgraded(s.port)
    H.wait(function() return #rec.sockets == 2 end, 5, "two sockets")
    local draft = rec.sockets[1].version == "hixie-75" and rec.sockets[1] or rec.sockets[2]
    local delivered, skipped, missed = WebSocket.publish("d", "\1\2", "binary")
    assert.same({ 1, 1 }, { delivered, skipped })
    assert.same({ draft }, missed)
    assert.equal(1, draft.readyState)
    assert.equal(2, WebSocket.publish("d", "text"))
    H.wait(function() return crec.data:find("\0text\255", 1, true) end, 5, "the draft's text")
    H.wait(function() return H.count_frames(rec13.data) == 2 end, 5, "both at the hybi peer")
  end)

  it("hrtime is a monotonic count of nanoseconds", function()
    local a = WebSocket.hrtime()
    local b = WebSocket.hrtime()
    assert.is_true(b >= a and a > 0)
    assert.equal(math.floor(a), a)
  end)
end)

describe("back-pressure", function()
  after_each(cleanup)

  -- A server whose sockets subscribe to "bp"; two luaws clients that read, and a raw
  -- peer that never does (the slow subscriber, third in the list, with options).
  local function setup(options)
    local s, rec = serve(function(req) return req.url == "/slow" and options or nil end,
      function(ws) ws:subscribe("bp") end)
    local good = { { client(s) }, { client(s) } }
    local slow, srec = H.raw_upgraded(s.port, (H.upgrade_request:gsub("GET /chat", "GET /slow")))
    slow:pause()
    H.wait(function() return #rec.sockets == 3 end, 5, "three sockets")
    return s, rec, good, slow, srec
  end

  it("the default policy drops a subscriber that does not read; the rest get every message", function()
    local s, rec, good, slow = setup({ max_buffered = 256 * 1024 })
    local chunk = ("c"):rep(64 * 1024)
    local sent, dropped_at = 0, nil
    for i = 1, 600 do                             -- 37 MiB if nothing stopped it
      local delivered, skipped, missed = WebSocket.publish("bp", chunk, "binary")
      sent = sent + 1
      assert.is_nil(missed)                       -- dropped is not missed: it closes
      if skipped > 0 then
        assert.same({ 2, 1 }, { delivered, skipped })
        dropped_at = i
        break
      end
      H.drain(2)
    end
    assert.truthy(dropped_at, "the slow subscriber was never dropped")
    assert.equal(2, WebSocket.subscribers("bp"))  -- out of the topic at once
    H.wait(function() return #rec.closes == 1 end, 5, "its close")
    assert.same({ "error EBACKPRESSURE", "close 1006" }, rec.log)
    assert.equal(2, WebSocket.publish("bp", "after"))
    for _, g in ipairs(good) do
      H.wait(function() return #g[2].messages == sent + 1 end, 10, "every message")
      for i = 1, sent do assert.equal(#chunk, #g[2].messages[i].data) end
      assert.equal("after", g[2].messages[sent + 1].data)
    end
    slow:terminate()
  end)

  it("backpressure = \"error\": the slow subscriber is skipped, named, kept open", function()
    local s, rec, good, slow = setup({ max_buffered = 256 * 1024, backpressure = "error" })
    local slow_ws = rec.sockets[3]
    local counter = frame_counter()
    slow.ondata = function(e) counter.feed(e.data) end
    local chunk = ("e"):rep(64 * 1024)
    local sent, reached_slow, skips = 0, 0, 0
    for _ = 1, 600 do
      local delivered, skipped, missed = WebSocket.publish("bp", chunk, "binary")
      sent = sent + 1
      if skipped > 0 then
        assert.same({ 2, 1, 1 }, { delivered, skipped, #missed })
        assert.equal(slow_ws, missed[1])
        skips = skips + 1
        if skips == 3 then break end
      else
        assert.is_nil(missed)
        reached_slow = reached_slow + 1
      end
      H.drain(2)
    end
    assert.equal(3, skips)
    assert.equal(1, slow_ws.readyState)            -- still open, still subscribed
    assert.equal(3, WebSocket.subscribers("bp"))
    assert.same({}, rec.log)
    -- It reads again: it gets exactly the messages publish said it was given.
    slow:resume()
    H.wait(function() return counter.n >= reached_slow end, 20, "the backlog")
    H.drain(5)
    assert.equal(reached_slow, counter.n)
    for _, g in ipairs(good) do
      H.wait(function() return #g[2].messages == sent end, 10, "every message")
    end
  end)

  it("a drop inside a handler's publish is told after it, never inside", function()
    local s, rec, good, slow = setup({ max_buffered = 64 * 1024 })
    local chunk = ("h"):rep(32 * 1024)
    local results = {}
    rec.sockets[1].onmessage = function()
      for _ = 1, 1000 do
        local d, sk = WebSocket.publish("bp", chunk, "binary")
        if sk > 0 then
          results[#results + 1] = { d, sk, #rec.log }
          return
        end
      end
    end
    -- nobody reads while the handler runs; the slow one passes its max_buffered first, and
    -- its events do not fire inside the handler
    good[1][1]:send("go")
    H.wait(function() return #results == 1 end, 10, "the handler's publishes")
    assert.equal(0, results[1][3])
    H.wait(function() return #rec.closes >= 1 end, 5, "the drops")
    assert.equal("error EBACKPRESSURE", rec.log[1])
    slow:terminate()
  end)
end)

describe("permessage-deflate subscribers", function()
  after_each(cleanup)

  it("share one compressed frame when they keep no context; the others compress their own", function()
    -- A window of 2^9 cannot reach back 1500 bytes; 2^15 can, so the same text compresses
    -- differently with each: a 15-bit subscriber that got the 9-bit bytes shared them.
    local per_path = {
      ["/nct9"] = { extensions = { deflate.configure { serverNoContextTakeover = true,
                                                       serverMaxWindowBits = 9 } } },
      ["/nct15"] = { extensions = { deflate.configure { serverNoContextTakeover = true } } },
      ["/ctx15"] = { extensions = { deflate } },
      ["/plain"] = {},
    }
    local s, rec = serve(function(req) return per_path[req.url] end,
      function(ws) ws:subscribe("z") end)
    local raws = {}
    for _, path in ipairs { "/nct9", "/nct15", "/nct15", "/ctx15", "/plain" } do
      local req = H.upgrade_request:gsub("GET /chat", "GET " .. path):sub(1, -3) ..
        "Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n"
      local c, crec = H.raw_upgraded(s.port, req)
      raws[#raws + 1] = { path = path, rec = crec }
      H.wait(function() return #rec.sockets == #raws end, 5, "socket " .. path)
    end
    local block, x = {}, 1
    for i = 1, 1500 do
      x = (x * 69069 + 1) % 4294967296
      block[i] = string.char(97 + math.floor(x / 16777216) % 26)
    end
    local text = table.concat(block):rep(20)
    assert.equal(5, WebSocket.publish("z", text))
    local got = {}
    for i, r in ipairs(raws) do
      H.wait(function() return H.count_frames(r.rec.data) == 1 end, 5, "the frame at " .. r.path)
      local f = H.parse_frames(r.rec.data)[1]
      got[i] = f
      if r.path == "/plain" then
        assert.equal(0, f.rsv)
        H.assert_bytes(text, f.payload, r.path)
      else
        assert.equal(4, f.rsv, r.path)
        H.assert_bytes(text, D.inflate(f.payload), r.path)
      end
    end
    assert.equal(got[1].payload, got[2].payload)   -- the 9-bit frame, shared
    assert.equal(got[1].payload, got[3].payload)
    assert.are_not.equal(got[1].payload, got[4].payload)   -- compressed on its own
    assert.is_true(#got[4].payload < #got[1].payload)
    assert.same({}, rec.errors)
  end)
end)

describe("many subscribers", function()
  after_each(cleanup)

  it("2000 raw peers over 51 topics and one each: each gets exactly its messages", function()
    local N = H.slow and 200 or 2000
    local s, rec = serve(nil, function(ws, _, rec)
      local i = #rec.sockets
      ws:subscribe("all")
      ws:subscribe("group " .. i % 50)
      ws:subscribe("own " .. i)
    end)
    local peers = {}
    for i = 1, N do
      local c, crec = H.raw(s.port)
      c.onopen = function() crec.opened = true; c:_raw_write(H.upgrade_request) end
      peers[i] = { c = c, rec = crec }
    end
    H.wait(function() return #rec.sockets == N end, 60, N .. " sockets")
    assert.equal(N, WebSocket.subscribers("all"))
    assert.equal(3 * N, WebSocket.stats().subscriptions)
    local t0 = WebSocket.hrtime()
    assert.same({ N, 0 }, { WebSocket.publish("all", "everyone") })
    local publish_ms = (WebSocket.hrtime() - t0) / 1e6
    for g = 0, 49 do
      local n = WebSocket.publish("group " .. g, "group " .. g)
      assert.equal(math.floor(N / 50), n)
    end
    for i = 1, N, 7 do assert.equal(1, WebSocket.publish("own " .. i, "own " .. i)) end
    -- server socket i is the i-th accepted, not peer i: map them by what each receives
    local expect = 2 * N + math.floor((N - 1) / 7) + 1
    H.wait(function()
      local total = 0
      for _, p in ipairs(peers) do
        local e = p.rec.data:find("\r\n\r\n", 1, true)
        if not e then return false end
        total = total + H.count_frames(p.rec.data:sub(e + 4))
      end
      return total >= expect
    end, 60, "the messages")
    H.drain(5)
    local owns = 0
    for _, p in ipairs(peers) do
      local frames = H.parse_frames(p.rec.data:sub(p.rec.data:find("\r\n\r\n", 1, true) + 4))
      assert.equal("everyone", frames[1].payload)
      assert.truthy(frames[2].payload:match("^group %d+$"))
      if frames[3] then
        owns = owns + 1
        assert.truthy(frames[3].payload:match("^own %d+$"))
        assert.is_nil(frames[4])
      end
    end
    assert.equal(math.floor((N - 1) / 7) + 1, owns)
    -- half the peers go: their sockets leave
    for i = 1, N, 2 do peers[i].c:terminate() end
    H.wait(function() return WebSocket.subscribers("all") == N / 2 end, 30, "half left")
    assert.equal(3 * N / 2, WebSocket.stats().subscriptions)
    assert.equal(N / 2, WebSocket.publish("all", "the rest"))
    assert.is_true(publish_ms < 5000, publish_ms)
  end)
end)
