-- csrc/io/proxy.c and a client's way in through an HTTP proxy (the proxy option): a
-- real proxy (tinyproxy, started by each test on a free port) with and without
-- BasicAuth, to ws:// and wss:// servers; fake proxies (luaws raw servers) for refusals,
-- a proxy that closes or never answers, an answer that brings the 101 with it, and an
-- https:// proxy that relays CONNECT (TLS inside TLS for wss://).
local H = require "helper"
local WebSocket = H.WebSocket
local client = require "luaws.client"

local function sh(cmd)
  local ok = os.execute(cmd)
  return ok == true or ok == 0
end

-- A port nothing listens on now: bound, read, closed. Only for tinyproxy, whose
-- configuration needs a number.
local function free_port()
  local s = assert(WebSocket.listen { host = "127.0.0.1", port = 0 })
  local port = s.port
  s:close()   -- libuv closes the socket at once; the callback comes later
  return port
end

-- Starts tinyproxy on 127.0.0.1, allowing CONNECT to connect_port only; auth: BasicAuth
-- user and password. Returns its port and process (H.cleanup kills it).
local function tinyproxy(connect_port, auth)
  assert(sh("command -v tinyproxy >/dev/null"), "tinyproxy is missing: sh scripts/deps.sh")
  local port = free_port()
  local conf = os.tmpname()
  local f = assert(io.open(conf, "w"))
  f:write(("Port %d\nListen 127.0.0.1\nTimeout 30\nMaxClients 20\nAllow 127.0.0.1\n" ..
    "LogLevel Info\nConnectPort %d\n"):format(port, connect_port))
  if auth then f:write(("BasicAuth %s %s\n"):format(auth[1], auth[2])) end
  f:close()
  local p = H.spawn("exec tinyproxy -d -c " .. conf)
  local ok, err = pcall(p.wait_for, p, "Accepting connections", 10)
  os.remove(conf)
  assert(ok, err)
  return port, p
end

-- A client that records its events, with the error names.
local function proxied(url, options)
  local ws = H.track(assert(WebSocket.Client(url, nil, options)))
  local rec = { messages = {}, errors = {}, names = {}, closes = {}, opens = 0 }
  ws.onopen = function() rec.opens = rec.opens + 1 end
  ws.onmessage = function(e) rec.messages[#rec.messages + 1] = e end
  ws.onerror = function(e)
    rec.errors[#rec.errors + 1] = e.message
    rec.names[#rec.names + 1] = e.name
  end
  ws.onclose = function(e) rec.closes[#rec.closes + 1] = e end
  return ws, rec
end

local function wait_open(rec)
  H.wait(function() return rec.opens > 0 or #rec.closes > 0 end, 10, "open")
  assert.equal(1, rec.opens, "no open: " .. table.concat(rec.errors, "; "))
end

-- The way in fails: one error, then close 1006, never an open. Returns the error.
local function wait_failure(rec, seconds)
  H.wait(function() return #rec.closes > 0 end, seconds or 10, "onclose")
  H.drain()
  assert.equal(0, rec.opens)
  assert.equal(1, #rec.errors)
  assert.equal(1, #rec.closes)
  assert.same({ 1006, false }, { rec.closes[1].code, rec.closes[1].wasClean })
  return rec.errors[1], rec.names[1]
end

-- A fake proxy: a raw server that hands each whole request head to answer(conn, head,
-- n); heads lists them, and after[n] what client n sent after its head.
local function fake_proxy(answer, listen)
  local heads, after = {}, {}
  local opts = { raw = true }
  for k, v in pairs(listen or {}) do opts[k] = v end
  local s = H.server(opts)
  s.onconnection = function(conn)
    H.track(conn)
    local buf, n = "", nil
    conn.ondata = function(e)
      if n then
        after[n] = after[n] .. e.data
        return
      end
      buf = buf .. e.data
      local e2 = buf:find("\r\n\r\n", 1, true)
      if not e2 then return end
      heads[#heads + 1] = buf:sub(1, e2 + 3)
      n = #heads
      after[n] = buf:sub(e2 + 4)
      answer(conn, heads[n], n)
    end
  end
  return s, heads, after
end

-- An echo server; rec.requests holds its upgrade requests.
local function echo_server(listen)
  local s = H.server(listen)
  local rec = { requests = {}, errors = {} }
  s.onupgrade = function(req)
    rec.requests[#rec.requests + 1] = req
    local ws = H.track(WebSocket(req))
    ws.onmessage = function(e) ws:send(e.data, e.binary and "binary" or nil) end
    ws.onerror = function(e) rec.errors[#rec.errors + 1] = e.message end
  end
  return s, rec
end

local function pattern_escape(s) return (s:gsub("[%^%$%(%)%%%.%[%]%*%+%-%?]", "%%%0")) end

describe("proxy", function()
  local D   -- the test certificates' folder, ending in "/"

  setup(function()
    D = os.tmpname()
    os.remove(D)
    assert(sh("sh scripts/make_certs.sh " .. D .. " >/dev/null 2>&1"), "make_certs.sh failed")
    D = D .. "/"
  end)

  teardown(function()
    if D then sh("rm -rf '" .. D .. "'") end
  end)

  after_each(H.cleanup)

  local function cert(name) return { cert = D .. name .. ".pem", key = D .. name .. ".key" } end
  local function ca() return { cafile = D .. "ca.pem" } end

  -- A relaying https:// (or, without tls, http://) proxy: a luaws raw listener that opens
  -- TCP to the CONNECT target, answers 200 once it is up, then relays both ways.
  local function relay_proxy(tls)
    return fake_proxy(function(conn, head)
      local host, port = head:match("^CONNECT ([%w.%-]+):(%d+) HTTP/1%.1\r\n")
      local up = H.track(assert(client.raw(host, tonumber(port))))
      local tunnel = false
      up.onopen = function()
        tunnel = true
        conn:_raw_write("HTTP/1.1 200 Connection established\r\n\r\n")
      end
      up.ondata = function(e) conn:_raw_write(e.data) end
      up.onclose = function() conn:close() end
      conn.ondata = function(e)
        assert(tunnel, "the client sent bytes before the tunnel was up")
        up:_raw_write(e.data)
      end
      conn.onclose = function() up:close() end
    end, { tls = tls })
  end

  describe("tinyproxy", function()
    it("carries a ws:// connection: text, binary, the close", function()
      local s, srec = echo_server()
      local port, proc = tinyproxy(s.port)
      local ws, rec = proxied("ws://127.0.0.1:" .. s.port .. "/chat?room=1",
        { proxy = { origin = "http://127.0.0.1:" .. port } })
      wait_open(rec)
      assert.equal("hi", H.roundtrip(ws, rec, "hi").data)
      local bytes = {}
      for i = 0, 255 do bytes[#bytes + 1] = string.char(i) end
      bytes = table.concat(bytes):rep(400)
      local m = H.roundtrip(ws, rec, bytes, "binary")
      assert.is_true(m.binary and m.data == bytes)
      ws:close(4000, "done")
      H.wait(function() return #rec.closes > 0 end, 5, "close")
      assert.same({ 4000, "done", true }, { rec.closes[1].code, rec.closes[1].reason, rec.closes[1].wasClean })
      -- It went through the proxy, asked for this server, and the upgrade came after.
      assert.matches("CONNECT 127.0.0.1:" .. s.port .. " HTTP/1.1", proc:output(), 1, true)
      assert.equal("/chat?room=1", srec.requests[1].url)
      assert.equal("127.0.0.1:" .. s.port, srec.requests[1].headers.host)
      assert.same({}, rec.errors)
    end)

    it("sends the messages queued while connecting once the socket is open", function()
      local s = echo_server()
      local port = tinyproxy(s.port)
      local ws, rec = proxied("ws://127.0.0.1:" .. s.port .. "/", { proxy = { origin = "http://127.0.0.1:" .. port } })
      assert.is_true(ws:send("one"))
      assert.is_true(ws:send("two"))
      H.wait(function() return #rec.messages >= 2 or #rec.closes > 0 end, 10, "echoes")
      assert.same({ "one", "two" }, { rec.messages[1].data, rec.messages[2].data })
    end)

    it("authenticates with BasicAuth from the origin's user and password, percent-decoded", function()
      local s = echo_server()
      local port = tinyproxy(s.port, { "alice", "s3cret" })
      -- %63 is "c": the proxy only accepts it decoded.
      local ws, rec = proxied("ws://127.0.0.1:" .. s.port .. "/",
        { proxy = { origin = "http://al%69ce:s3%63ret@127.0.0.1:" .. port .. "/" } })
      wait_open(rec)
      assert.equal("authenticated", H.roundtrip(ws, rec, "authenticated").data)
    end)

    it("fails with the proxy's status for wrong or missing credentials", function()
      local s, srec = echo_server()
      local port = tinyproxy(s.port, { "alice", "s3cret" })
      for _, origin in ipairs({ "http://alice:wrong@127.0.0.1:" .. port, "http://127.0.0.1:" .. port }) do
        local _, rec = proxied("ws://127.0.0.1:" .. s.port .. "/", { proxy = { origin = origin } })
        local err, name = wait_failure(rec)
        -- tinyproxy answers 401 where RFC 9110 says 407
        assert.matches("^the proxy refused CONNECT: 40[17] ", err)
        assert.equal("EPROXY", name)
      end
      assert.same({}, srec.requests)
    end)

    it("fails with 403 when the proxy does not allow CONNECT to that port", function()
      local s = echo_server()
      local other = echo_server()
      local port = tinyproxy(other.port)
      local _, rec = proxied("ws://127.0.0.1:" .. s.port .. "/", { proxy = { origin = "http://127.0.0.1:" .. port } })
      local err, name = wait_failure(rec)
      assert.matches("^the proxy refused CONNECT: 403 ", err)
      assert.equal("EPROXY", name)
    end)

    it("carries wss://: TLS to the server, verified against the server's name", function()
      local s, srec = echo_server { tls = cert("server") }
      local port, proc = tinyproxy(s.port)
      local ws, rec = proxied("wss://localhost:" .. s.port .. "/secure",
        { tls = ca(), proxy = { origin = "http://127.0.0.1:" .. port } })
      wait_open(rec)
      local big = ("0123456789abcdef"):rep(64 * 1024)   -- 1 MiB, many TLS records
      assert.is_true(H.roundtrip(ws, rec, big, "binary", 20).data == big)
      assert.matches("CONNECT localhost:" .. s.port .. " HTTP/1.1", proc:output(), 1, true)
      assert.equal("TLSv1.3", srec.requests[1].tls.version)   -- TLS ended at the server
      assert.equal("wss://localhost:" .. s.port .. "/secure", ws.url)
    end)

    it("fails wss:// when the server's certificate is for another name", function()
      local s, srec = echo_server { tls = cert("wronghost") }
      local port = tinyproxy(s.port)
      local _, rec = proxied("wss://localhost:" .. s.port .. "/",
        { tls = ca(), proxy = { origin = "http://127.0.0.1:" .. port } })
      local err = wait_failure(rec)
      assert.matches("certificate verify failed: hostname mismatch", err:lower(), 1, true)
      assert.same({}, srec.requests)
    end)
  end)

  describe("fake proxies", function()
    it("send CONNECT with Host, Proxy-Authorization and the given headers, and nothing more", function()
      local p, heads, after = fake_proxy(function() end)
      local _, rec = proxied("ws://example.com:8080/x", {
        handshake_timeout = 0.3,
        proxy = { origin = "http://us%3Aer:p%40ss%25@127.0.0.1:" .. p.port,
                  headers = { ["User-Agent"] = "luaws", ["X-Trace"] = "1" } } })
      H.wait(function() return #heads > 0 end, 5, "CONNECT")
      assert.equal("CONNECT example.com:8080 HTTP/1.1\r\nHost: example.com:8080\r\n" ..
        "Proxy-Authorization: Basic dXM6ZXI6cEBzcyU=\r\n" ..   -- base64 of "us:er:p@ss%"
        "User-Agent: luaws\r\nX-Trace: 1\r\n\r\n", heads[1])
      local err, name = wait_failure(rec)   -- it never answers: the handshake timeout
      assert.equal("opening handshake timed out (waiting for the proxy's answer to CONNECT)", err)
      assert.equal("ETIMEDOUT", name)
      assert.equal("", after[1])   -- no upgrade request before the tunnel is up
    end)

    it("ask for an IPv6 server in brackets, and send no credentials without a user", function()
      local p, heads = fake_proxy(function(conn) conn:_raw_write("HTTP/1.1 502 Bad Gateway\r\n\r\n") end)
      local _, rec = proxied("ws://[::1]:9/", { proxy = { origin = "http://127.0.0.1:" .. p.port } })
      wait_failure(rec)
      assert.equal("CONNECT [::1]:9 HTTP/1.1\r\nHost: [::1]:9\r\n\r\n", heads[1])
    end)

    for _, answer in ipairs({
      { "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"x\"\r\n" ..
        "Content-Length: 0\r\n\r\n", "407 Proxy Authentication Required" },
      { "HTTP/1.1 403 Forbidden\r\nContent-Length: 5\r\n\r\nnope\n", "403 Forbidden" },
      { "HTTP/1.0 502 Bad Gateway\r\n\r\n", "502 Bad Gateway" },
    }) do
      it("fail with the answer's status and reason: " .. answer[2], function()
        local p, _, after = fake_proxy(function(conn) conn:_raw_write(answer[1]) end)
        local _, rec = proxied("ws://127.0.0.1:9/", { proxy = { origin = "http://127.0.0.1:" .. p.port } })
        local err, name = wait_failure(rec)
        assert.equal("the proxy refused CONNECT: " .. answer[2], err)
        assert.equal("EPROXY", name)
        assert.equal("", after[1])
      end)
    end

    it("fail when the proxy closes before it answers, or in the middle of its answer", function()
      for _, partial in ipairs({ "", "HTTP/1.1 200 Conn" }) do
        local p = fake_proxy(function(conn)
          if #partial > 0 then conn:_raw_write(partial) end
          conn:close()
        end)
        local _, rec = proxied("ws://127.0.0.1:9/", { proxy = { origin = "http://127.0.0.1:" .. p.port } })
        local err, name = wait_failure(rec)
        assert.equal("connection closed during the handshake (waiting for the proxy's answer to CONNECT)", err)
        assert.equal("EHANDSHAKE", name)
      end
    end)

    it("fail for an answer that is not HTTP, or too large", function()
      local p = fake_proxy(function(conn) conn:_raw_write("SSH-2.0-OpenSSH\r\n\r\n") end)
      local _, rec = proxied("ws://127.0.0.1:9/", { proxy = { origin = "http://127.0.0.1:" .. p.port } })
      assert.equal("the proxy's answer to CONNECT is not HTTP", (wait_failure(rec)))
      local p2 = fake_proxy(function(conn) conn:_raw_write("HTTP/1.1 200 OK\r\nX: " .. ("y"):rep(2000)) end)
      _, rec = proxied("ws://127.0.0.1:9/", { max_head = 1024, proxy = { origin = "http://127.0.0.1:" .. p2.port } })
      assert.equal("the proxy's answer to CONNECT is too large", (wait_failure(rec)))
    end)

    it("fail when nothing listens where the proxy should be", function()
      local _, rec = proxied("ws://127.0.0.1:9/", { proxy = { origin = "http://127.0.0.1:" .. free_port() } })
      local err, name = wait_failure(rec)
      assert.matches("ECONNREFUSED", err, 1, true)
      assert.equal("ECONNREFUSED", name)
    end)

    -- The fake proxy is the WebSocket server too: the bytes after its 2xx head go to the
    -- upgrade, even when they come in the same read as the head.
    local function proxy_and_server(first, on_request)
      return fake_proxy(function(conn)
        conn:_raw_write(first)
        local buf = ""
        conn.ondata = function(e)
          buf = buf .. e.data
          local e2 = buf:find("\r\n\r\n", 1, true)
          if e2 then
            conn.ondata = function() end
            local key = buf:match("Sec%-WebSocket%-Key: ([^\r]+)")
            on_request(conn, require("luaws.core").handshake_accept(key))
          end
        end
      end)
    end

    it("keep the bytes that came with the 2xx head for the 101 (the head split across writes)", function()
      local p = proxy_and_server("HTTP/1.1 200 Connection established\r\nVia: fake\r\n\r\nHTTP/1.1 101 Swit",
        function(conn, accept)
          conn:_raw_write("ching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" ..
            "Sec-WebSocket-Accept: " .. accept .. "\r\n\r\n" .. H.frame(1, "first", { mask = false }))
        end)
      local _, rec = proxied("ws://example.com/", { proxy = { origin = "http://127.0.0.1:" .. p.port } })
      wait_open(rec)
      H.wait(function() return #rec.messages > 0 end, 5, "message")
      assert.equal("first", rec.messages[1].data)
    end)

    it("hand a 101 sent in the same write as the 2xx head to the upgrade", function()
      -- Its accept cannot match a key not yet sent: the upgrade, not a timeout, fails.
      local p = proxy_and_server("HTTP/1.1 200 OK\r\n\r\nHTTP/1.1 101 Switching Protocols\r\n" ..
        "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: x3JJHMbDL1EzLkh9GBhXDw6cDCs=\r\n\r\n",
        function() end)
      local _, rec = proxied("ws://example.com/", { handshake_timeout = 5, proxy = { origin = "http://127.0.0.1:" .. p.port } })
      local err, name = wait_failure(rec)
      assert.matches("Sec-WebSocket-Accept", err, 1, true)
      assert.equal("EHANDSHAKE", name)
    end)

    it("skip an interim 1xx answer before the 2xx", function()
      local p = proxy_and_server("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n\r\n", function(conn, accept)
        conn:_raw_write("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" ..
          "Sec-WebSocket-Accept: " .. accept .. "\r\n\r\n")
      end)
      local _, rec = proxied("ws://example.com/", { proxy = { origin = "http://127.0.0.1:" .. p.port } })
      wait_open(rec)
    end)

    it("relay ws:// and wss:// when the proxy is plain and relays", function()
      local s = echo_server()
      local ts = echo_server { tls = cert("server") }
      local p, heads = relay_proxy()
      local ws, rec = proxied("ws://127.0.0.1:" .. s.port .. "/", { proxy = { origin = "http://127.0.0.1:" .. p.port } })
      wait_open(rec)
      assert.equal("plain", H.roundtrip(ws, rec, "plain").data)
      local wss, srec = proxied("wss://localhost:" .. ts.port .. "/",
        { tls = ca(), proxy = { origin = "http://127.0.0.1:" .. p.port } })
      wait_open(srec)
      assert.equal("secure", H.roundtrip(wss, srec, "secure").data)
      assert.equal(2, #heads)
    end)
  end)

  describe("an https:// proxy", function()
    it("carries ws:// inside TLS to the proxy", function()
      local s = echo_server()
      local p, heads = relay_proxy(cert("server"))
      local ws, rec = proxied("ws://127.0.0.1:" .. s.port .. "/",
        { proxy = { origin = "https://127.0.0.1:" .. p.port, tls = ca() } })
      wait_open(rec)
      assert.equal("over TLS", H.roundtrip(ws, rec, "over TLS").data)
      assert.matches("^CONNECT 127%.0%.0%.1:" .. s.port .. " HTTP/1%.1\r\n", heads[1])
    end)

    it("carries wss:// as TLS inside TLS: big messages both ways, a clean close", function()
      local s, srec = echo_server { tls = cert("server") }
      local p = relay_proxy(cert("server"))
      local ws, rec = proxied("wss://localhost:" .. s.port .. "/inner",
        { tls = ca(), proxy = { origin = "https://127.0.0.1:" .. p.port, tls = ca() } })
      wait_open(rec)
      for _, n in ipairs({ 1, 125, 70000, 3 * 1024 * 1024 + 7 }) do
        local data = ("x"):rep(n - 1) .. tostring(n % 10)
        local m = H.roundtrip(ws, rec, data, "binary", 30)
        assert.is_true(m.data == data, "echo of " .. n .. " bytes differs")
      end
      assert.equal("TLSv1.3", srec.requests[1].tls.version)
      ws:close(1000, "bye")
      H.wait(function() return #rec.closes > 0 end, 10, "close")
      assert.same({ 1000, "bye", true }, { rec.closes[1].code, rec.closes[1].reason, rec.closes[1].wasClean })
      assert.same({}, rec.errors)
      assert.same({}, srec.errors)
    end)

    it("verifies the proxy against its own name, and the server against the server's", function()
      local s, srec = echo_server { tls = cert("server") }
      local p = relay_proxy(cert("wronghost"))
      local _, rec = proxied("wss://localhost:" .. s.port .. "/",
        { tls = ca(), proxy = { origin = "https://127.0.0.1:" .. p.port, tls = ca() } })
      assert.matches("certificate verify failed: IP address mismatch", (wait_failure(rec)), 1, true)
      -- The proxy's servername makes it pass; the server is then checked on its own.
      local _, rec2 = proxied("wss://localhost:" .. s.port .. "/", { tls = ca(),
        proxy = { origin = "https://127.0.0.1:" .. p.port, tls = { cafile = D .. "ca.pem", servername = "wrong.example" } } })
      wait_open(rec2)
      local bad = echo_server { tls = cert("expired") }
      local _, rec3 = proxied("wss://localhost:" .. bad.port .. "/", { tls = ca(),
        proxy = { origin = "https://127.0.0.1:" .. p.port, tls = { cafile = D .. "ca.pem", servername = "wrong.example" } } })
      assert.matches("certificate verify failed: certificate has expired", (wait_failure(rec3)), 1, true)
      assert.equal(1, #srec.requests)
    end)

    it("fails with the proxy's refusal inside TLS", function()
      local p = fake_proxy(function(conn) conn:_raw_write("HTTP/1.1 407 Proxy Authentication Required\r\n\r\n") end,
        { tls = cert("server") })
      local _, rec = proxied("wss://localhost:9/", { tls = ca(), proxy = { origin = "https://localhost:" .. p.port, tls = ca() } })
      assert.equal("the proxy refused CONNECT: 407 Proxy Authentication Required", (wait_failure(rec)))
    end)
  end)

  describe("the option", function()
    local function raises(proxy, message)
      assert.has_error(function() WebSocket.Client("ws://127.0.0.1:9/", nil, { proxy = proxy }) end, message)
    end

    it("raises for a bad origin, unknown keys and wrong types", function()
      raises("http://127.0.0.1:3128", "option proxy must be a table")
      raises({}, 'option proxy.origin must be a string ("http://host:port")')
      raises({ origin = "socks5://127.0.0.1:1080" },
        "option proxy.origin must be an http:// or https:// URL: socks5://127.0.0.1:1080")
      raises({ origin = "127.0.0.1:3128" }, "option proxy.origin must be an http:// or https:// URL: 127.0.0.1:3128")
      raises({ origin = "http://:3128" }, "option proxy.origin has no valid host: http://:3128")
      raises({ origin = "http://pro xy:3128" }, "option proxy.origin has no valid host: http://pro xy:3128")
      raises({ origin = "http://proxy:99999" }, "option proxy.origin: port out of range: http://proxy:99999")
      raises({ origin = "http://proxy:3128/path" },
        "option proxy.origin must not have a path, query or fragment: http://proxy:3128/path")
      raises({ origin = "http://u:p%zz@proxy" }, "option proxy.origin: a bad percent-escape in its password")
      raises({ origin = "http://u%4@proxy" }, "option proxy.origin: a bad percent-escape in its user")
      raises({ origin = "http://proxy", tls = ca() }, "option proxy.tls is for an https:// proxy origin")
      raises({ origin = "https://proxy", tls = { cafle = "x" } }, 'unknown TLS option "cafle"')
      raises({ origin = "http://proxy", headers = "X: y" }, "option proxy.headers must be a table")
      raises({ origin = "http://proxy", headers = { ["X"] = "a\r\nb" } }, "header X has CR, LF or NUL in its value")
      raises({ origin = "http://proxy", host = "x" }, 'unknown proxy option "host"')
    end)

    it("takes default ports, IPv6 literals and an empty path", function()
      local opts = require "luaws.options"
      local p = opts.proxy { origin = "http://proxy.local" }
      assert.same({ "proxy.local", 80 }, { p.host, p.port })
      p = opts.proxy { origin = "HTTPS://[::1]/" }
      assert.same({ "::1", 443, true }, { p.host, p.port, p.tls.verify })
      p = opts.proxy { origin = "http://user@proxy:3128" }
      assert.same({ "user", nil }, { p.user, p.password })
      p = opts.proxy { origin = "http://a%20b:c%3Ad@proxy:3128" }
      assert.same({ "a b", "c:d" }, { p.user, p.password })
    end)

    it("returns nil, message, ETLS when the proxy's TLS options do not load", function()
      local ws, err, name = WebSocket.Client("ws://127.0.0.1:9/", nil,
        { proxy = { origin = "https://127.0.0.1:1", tls = { cafile = D .. "nope.pem" } } })
      assert.is_nil(ws)
      assert.equal("ETLS", name)
      assert.matches(pattern_escape(D .. "nope.pem"), err)
    end)
  end)
end)
