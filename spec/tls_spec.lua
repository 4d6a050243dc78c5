-- csrc/io/tls.c and the TLS options: wss:// clients, TLS servers, verification, client
-- certificates, and independent TLS peers (openssl s_server / s_client, Node's ws,
-- Python's websockets). Certificates are made for this run by scripts/make_certs.sh.
local H = require "helper"
local WebSocket = H.WebSocket
local client = require "luaws.client"

local BIG = 16 * 1024 * 1024

local function sh(cmd)
  local ok = os.execute(cmd)
  return ok == true or ok == 0
end

local function pattern_escape(s) return (s:gsub("[%^%$%(%)%%%.%[%]%*%+%-%?]", "%%%0")) end

local find_event = H.peer_event

local function big_message()
  local period = {}
  for i = 0, 250 do period[#period + 1] = string.char(i) end
  return table.concat(period):rep(math.ceil(BIG / 251)):sub(1, BIG)
end

describe("TLS", function()
  local D   -- the certificates' folder, ending in "/"

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

  -- Server options for certificate NAME (server, expired, wronghost).
  local function cert(name, extra)
    local t = { cert = D .. name .. ".pem", key = D .. name .. ".key" }
    for k, v in pairs(extra or {}) do t[k] = v end
    return t
  end

  -- A TLS echo server; rec records its requests, sockets and their events. Plain HTTP
  -- requests are answered "hello over https".
  local function tls_server(tls, listen_extra)
    local opts = { tls = tls or cert("server") }
    for k, v in pairs(listen_extra or {}) do opts[k] = v end
    local s = H.server(opts)
    local rec = { requests = {}, sockets = {}, messages = {}, closes = {}, errors = {} }
    s.onupgrade = function(req)
      rec.requests[#rec.requests + 1] = req
      local ws = WebSocket(req)
      rec.sockets[#rec.sockets + 1] = ws
      ws.onmessage = function(e)
        rec.messages[#rec.messages + 1] = e
        if e.data:match("^close%-me ") then
          local code, reason = e.data:match("^close%-me (%d+) (.*)$")
          ws:close(tonumber(code), reason)
        else
          ws:send(e.data, e.binary and "binary" or nil)
        end
      end
      ws.onerror = function(e) rec.errors[#rec.errors + 1] = e.message end
      ws.onclose = function(e) rec.closes[#rec.closes + 1] = e end
    end
    s.onrequest = function(req, res)
      rec.requests[#rec.requests + 1] = req
      res:writeHead(200, { ["Content-Type"] = "text/plain" })
      res:finish("hello over https")
    end
    return s, rec
  end

  local function ca() return { cafile = D .. "ca.pem" } end

  -- Connects and waits for open (or failure: then the test fails with the errors).
  local function open_client(url, tls)
    local ws, rec = H.client(url, nil, { tls = tls })
    H.wait(function() return rec.opens > 0 or #rec.closes > 0 end, 10, "open")
    assert.equal(1, rec.opens, "no open: " .. table.concat(rec.errors, "; "))
    return ws, rec
  end

  -- Connects expecting the handshake to fail: one error, close 1006, never an open.
  local function handshake_error(url, tls)
    local _, rec = H.client(url, nil, { tls = tls })
    H.wait(function() return #rec.closes > 0 end, 10, "onclose")
    H.drain()
    assert.equal(0, rec.opens)
    assert.equal(1, #rec.errors)
    assert.equal(1, #rec.closes)
    assert.same({ 1006, false }, { rec.closes[1].code, rec.closes[1].wasClean })
    return rec.errors[1]
  end

  local roundtrip = H.roundtrip

  -- A raw connection through TLS (client options tls): rec.data, rec.opened, rec.closed.
  local function raw_tls(port, tls, host)
    local c = assert(client.raw(host or "127.0.0.1", port, tls))
    local rec = { data = "", opened = false, closed = false, errors = {} }
    c.onopen = function() rec.opened = true end
    c.ondata = function(e) rec.data = rec.data .. e.data end
    c.onerror = function(e) rec.errors[#rec.errors + 1] = e.message end
    c.onclose = function() rec.closed = true end
    return c, rec
  end

  describe("luaws client and server", function()
    it("exchange text, binary and a 16 MiB message over wss://", function()
      local s, srec = tls_server()
      local ws, rec = open_client("wss://localhost:" .. s.port .. "/chat", ca())
      local m = roundtrip(ws, rec, "hello")
      assert.same({ "hello", false }, { m.data, m.binary })
      local bytes = {}
      for i = 0, 255 do bytes[#bytes + 1] = string.char(i) end
      bytes = table.concat(bytes)
      m = roundtrip(ws, rec, bytes, "binary")
      assert.same({ bytes, true }, { m.data, m.binary })
      local big = big_message()
      m = roundtrip(ws, rec, big, "binary", 30)
      assert.is_true(m.data == big, "16 MiB echo differs")
      assert.equal(3, #srec.messages)
      assert.is_true(srec.messages[3].data == big)
      assert.same({}, rec.errors)
      assert.same({}, srec.errors)
    end)

    it("close with code and reason, cleanly, both ways", function()
      local s, srec = tls_server()
      local ws, rec = open_client("wss://127.0.0.1:" .. s.port .. "/", ca())
      ws:close(4000, "bye")
      H.wait(function() return #rec.closes > 0 and #srec.closes > 0 end, 10, "close")
      assert.same({ 4000, "bye", true }, { rec.closes[1].code, rec.closes[1].reason, rec.closes[1].wasClean })
      assert.same({ 4000, "bye", true }, { srec.closes[1].code, srec.closes[1].reason, srec.closes[1].wasClean })

      local ws2, rec2 = open_client("wss://127.0.0.1:" .. s.port .. "/", ca())
      ws2:send("close-me 4001 server bye")
      H.wait(function() return #rec2.closes > 0 and #srec.closes > 1 end, 10, "close")
      assert.same({ 4001, "server bye", true }, { rec2.closes[1].code, rec2.closes[1].reason, rec2.closes[1].wasClean })
      assert.same({ 4001, "server bye", true }, { srec.closes[2].code, srec.closes[2].reason, srec.closes[2].wasClean })
      assert.same({}, rec.errors)
      assert.same({}, rec2.errors)
    end)

    it("gives the server socket a wss:// url and the request its TLS details", function()
      local s, srec = tls_server()
      open_client("wss://localhost:" .. s.port .. "/room?x=1", ca())
      H.wait(function() return #srec.sockets > 0 end, 5, "server socket")
      assert.equal("wss://localhost:" .. s.port .. "/room?x=1", srec.sockets[1].url)
      local t = srec.requests[1].tls
      assert.equal("TLSv1.3", t.version)
      assert.equal("http/1.1", t.alpn)
      assert.is_string(t.cipher)
      assert.is_false(t.verified)
      assert.is_nil(t.subject)
    end)

    it("leaves plain ws:// requests without req.tls and with a ws:// url", function()
      local s, rec = H.echo_server()
      open_client("ws://127.0.0.1:" .. s.port .. "/")
      H.wait(function() return #rec.sockets > 0 end, 5, "server socket")
      assert.is_nil(rec.last_request.tls)
      assert.equal("ws://127.0.0.1:" .. s.port .. "/", rec.sockets[1].url)
    end)

    it("serves https:// requests to onrequest", function()
      local s, srec = tls_server()
      local c, rec = raw_tls(s.port, ca())
      H.wait(function() return rec.opened or rec.closed end, 5, "TLS open")
      c:_raw_write("GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
      local r
      H.wait(function()
        r = H.http_response(rec.data, rec.closed)
        return r or rec.closed
      end, 5, "response")
      assert.truthy(rec.data:match("^HTTP/1.1 200 OK\r\n"), rec.data)
      assert.equal("hello over https", r.body)
      assert.equal("/health", srec.requests[1].url)
      assert.equal("TLSv1.3", srec.requests[1].tls.version)
      assert.same({}, rec.errors)
    end)

    it("sends frames queued while connecting once TLS and the handshake are done", function()
      local s = tls_server()
      local ws, rec = H.client("wss://localhost:" .. s.port .. "/", nil, { tls = ca() })
      assert.is_true(ws:send("early"))
      H.wait(function() return #rec.messages > 0 or #rec.closes > 0 end, 10, "echo")
      assert.equal("early", rec.messages[1].data)
    end)

    it("keeps working when a TLS context and a server's options are collected", function()
      local s, srec = tls_server()
      local ws, rec = open_client("wss://localhost:" .. s.port .. "/", ca())
      collectgarbage()
      collectgarbage()
      local m = roundtrip(ws, rec, "still here")
      assert.equal("still here", m.data)
      local _, rec2 = open_client("wss://localhost:" .. s.port .. "/", ca())
      assert.equal(1, rec2.opens)
      assert.equal(2, #srec.sockets)
    end)
  end)

  describe("client verification", function()
    it("fails for an unknown CA with OpenSSL's reason, against the system store", function()
      local s, srec = tls_server()
      local err = handshake_error("wss://localhost:" .. s.port .. "/")
      assert.matches("certificate verify failed: unable to get local issuer certificate", err, 1, true)
      assert.same({}, srec.requests)
    end)

    it("fails for a CA other than the one given in cafile", function()
      local s = tls_server()
      local err = handshake_error("wss://localhost:" .. s.port .. "/", { cafile = D .. "other-ca.pem" })
      assert.matches("certificate verify failed: unable to get local issuer certificate", err, 1, true)
    end)

    it("trusts a CA folder given in capath", function()
      assert(sh(("mkdir -p %scapath && cp %sca.pem %scapath/ && openssl rehash %scapath 2>/dev/null || c_rehash %scapath >/dev/null 2>&1")
        :format(D, D, D, D, D)))
      local s = tls_server()
      open_client("wss://localhost:" .. s.port .. "/", { capath = D .. "capath" })
    end)

    it("fails for a certificate for another host name", function()
      local s = tls_server(cert("wronghost"))
      local err = handshake_error("wss://localhost:" .. s.port .. "/", ca())
      -- OpenSSL spells it "Hostname mismatch" or "hostname mismatch" by version.
      assert.matches("certificate verify failed: hostname mismatch", err:lower(), 1, true)
    end)

    it("fails for a certificate without the IP address connected to", function()
      local s = tls_server(cert("wronghost"))
      local err = handshake_error("wss://127.0.0.1:" .. s.port .. "/", ca())
      assert.matches("certificate verify failed: IP address mismatch", err, 1, true)
    end)

    it("fails for an expired certificate", function()
      local s = tls_server(cert("expired"))
      local err = handshake_error("wss://localhost:" .. s.port .. "/", ca())
      assert.matches("certificate verify failed: certificate has expired", err, 1, true)
    end)

    it("verifies against servername when it is given", function()
      local s = tls_server(cert("wronghost"))
      open_client("wss://127.0.0.1:" .. s.port .. "/", { cafile = D .. "ca.pem", servername = "wrong.example" })
    end)

    it("connects to all of them with verify = false", function()
      for _, name in ipairs({ "server", "wronghost", "expired" }) do
        local s = tls_server(cert(name))
        local ws, rec = open_client("wss://localhost:" .. s.port .. "/", { verify = false })
        assert.equal("ok", roundtrip(ws, rec, "ok").data)
      end
    end)
  end)

  describe("client certificates", function()
    local function client_cert(name)
      return { cafile = D .. "ca.pem", cert = D .. name .. ".pem", key = D .. name .. ".key" }
    end

    it("are required with verify = true, and the subject reaches req.tls", function()
      local s, srec = tls_server(cert("server", { ca = D .. "ca.pem", verify = true }))
      open_client("wss://localhost:" .. s.port .. "/", client_cert("client"))
      local t = srec.requests[1].tls
      assert.is_true(t.verified)
      assert.matches("CN=luaws test client", t.subject, 1, true)
      assert.matches("CN=luaws test CA", t.issuer, 1, true)
    end)

    it("are refused when missing and verify = true: no open, an error", function()
      local s, srec = tls_server(cert("server", { ca = D .. "ca.pem", verify = true }))
      local err = handshake_error("wss://localhost:" .. s.port .. "/", ca())
      assert.matches("alert certificate required", err, 1, true)
      assert.same({}, srec.requests)
    end)

    it("are refused when signed by an untrusted CA", function()
      local s, srec = tls_server(cert("server", { ca = D .. "ca.pem" }))
      local err = handshake_error("wss://localhost:" .. s.port .. "/", client_cert("rogue"))
      assert.matches("alert unknown ca", err, 1, true)
      assert.same({}, srec.requests)
    end)

    it("are optional with ca alone: without one, req.tls.verified is false", function()
      local s, srec = tls_server(cert("server", { ca = D .. "ca.pem" }))
      open_client("wss://localhost:" .. s.port .. "/", ca())
      open_client("wss://localhost:" .. s.port .. "/", client_cert("client"))
      assert.same({ false }, { srec.requests[1].tls.verified, srec.requests[1].tls.subject })
      assert.is_true(srec.requests[2].tls.verified)
      assert.matches("CN=luaws test client", srec.requests[2].tls.subject, 1, true)
    end)

    it("are not asked for without ca and verify", function()
      local s, srec = tls_server()
      open_client("wss://localhost:" .. s.port .. "/", client_cert("client"))
      assert.is_nil(srec.requests[1].tls.subject)
    end)
  end)

  describe("options", function()
    it("raise for unknown TLS options and wrong types", function()
      assert.has_error(function() WebSocket.Client("wss://localhost/", nil, { tls = { cafle = "x" } }) end,
        'unknown TLS option "cafle"')
      assert.has_error(function() WebSocket.Client("wss://localhost/", nil, { tls = { verify = "no" } }) end,
        "TLS option verify must be a boolean")
      assert.has_error(function() WebSocket.Client("wss://localhost/", nil, { tls = { ca = "x" } }) end,
        'unknown TLS option "ca"')
      assert.has_error(function() WebSocket.Client("wss://localhost/", nil, { tls = "yes" }) end,
        "option tls must be a table")
      assert.has_error(function() WebSocket.listen { port = 0, tls = cert("server", { cafile = "x" }) } end,
        'unknown TLS option "cafile"')
      assert.has_error(function() WebSocket.listen { port = 0, tls = { key = D .. "server.key" } } end)
    end)

    it("return nil, message, name when OpenSSL refuses them", function()
      local s, err, name = WebSocket.listen { port = 0, tls = cert("missing") }
      assert.is_nil(s)
      assert.equal("ETLS", name)
      assert.matches("TLS cert " .. pattern_escape(D) .. "missing.pem: No such file or directory", err)
      s, err, name = WebSocket.listen { port = 0, tls = { cert = D .. "server.pem", key = D .. "client.key" } }
      assert.is_nil(s)
      assert.equal("ETLS", name)
      assert.matches("TLS key", err, 1, true)
      local ws
      ws, err, name = WebSocket.Client("wss://localhost:1/", nil, { tls = { cafile = D .. "nope.pem" } })
      assert.is_nil(ws)
      assert.equal("ETLS", name)
      assert.matches("nope.pem: No such file or directory", err, 1, true)
      s, err, name = WebSocket.listen { port = 0, tls = cert("server", { ciphers = "NO-SUCH-CIPHER" }) }
      assert.is_nil(s)
      assert.equal("ETLS", name)
      assert.matches("no cipher match", err, 1, true)
    end)

    it("default wss:// to port 443", function()
      assert.equal(443, client.parse_url("wss://example.com/").port)
      assert.equal("example.com", client.parse_url("wss://example.com/").host_header)
      assert.equal("example.com:8443", client.parse_url("wss://example.com:8443/").host_header)
    end)
  end)

  describe("a TLS port given something else", function()
    -- An open wss:// socket that must not notice what happens to the others.
    local function bystander(s)
      local ws, rec = open_client("wss://localhost:" .. s.port .. "/", ca())
      return function()
        assert.equal("still fine", roundtrip(ws, rec, "still fine").data)
        assert.same({}, rec.errors)
        assert.same({}, rec.closes)
      end
    end

    it("drops garbage", function()
      local s, srec = tls_server()
      local check = bystander(s)
      local c, rec = H.raw(s.port)
      H.wait(function() return rec.opened or rec.closed end, 5, "TCP open")
      local junk = {}
      for i = 1, 4096 do junk[i] = string.char((i * 7919) % 256) end
      c:_raw_write(table.concat(junk))
      H.wait(function() return rec.closed end, 5, "the server to drop the connection")
      assert.equal(1, #srec.requests)   -- the bystander's only
      check()
    end)

    it("drops plain HTTP without answering in plain text", function()
      local s, srec = tls_server()
      local check = bystander(s)
      local c, rec = H.raw(s.port)
      H.wait(function() return rec.opened or rec.closed end, 5, "TCP open")
      c:_raw_write("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
      H.wait(function() return rec.closed end, 5, "the server to drop the connection")
      assert.is_nil(rec.data:find("HTTP/1.1", 1, true))
      if #rec.data > 0 then assert.equal(0x15, rec.data:byte(1)) end   -- a TLS alert record
      assert.equal(1, #srec.requests)
      check()
    end)

    it("drops a plain ws:// client, which gets an error and no open", function()
      local s, srec = tls_server()
      local check = bystander(s)
      local _, rec = H.client("ws://127.0.0.1:" .. s.port .. "/")
      H.wait(function() return #rec.closes > 0 end, 5, "onclose")
      assert.equal(0, rec.opens)
      assert.equal(1006, rec.closes[1].code)
      assert.equal(1, #srec.requests)
      check()
    end)

    it("drops a client that stalls in the TLS handshake, after handshake_timeout", function()
      local s = tls_server(nil, { handshake_timeout = 0.3 })
      local c, rec = H.raw(s.port)
      H.wait(function() return rec.opened or rec.closed end, 5, "TCP open")
      c:_raw_write("\22\3\1\2\0\1")   -- the start of a ClientHello, never finished
      H.wait(function() return rec.closed end, 5, "the server to time out")
    end)

    it("times out a wss:// client whose server never answers the TLS handshake", function()
      local s = H.raw_server(function() end)   -- accepts TCP, says nothing
      local _, rec = H.client("wss://127.0.0.1:" .. s.port .. "/", nil,
        { tls = ca(), handshake_timeout = 0.3 })
      H.wait(function() return #rec.closes > 0 end, 5, "onclose")
      assert.equal(0, rec.opens)
      assert.matches("timed out", rec.errors[1], 1, true)
    end)
  end)

  describe("openssl", function()
    it("s_server gets SNI, ALPN, data and our close_notify", function()
      local p = H.spawn(("exec openssl s_server -accept 127.0.0.1:0 -cert %sserver.pem -key %sserver.key -rev -tlsextdebug")
        :format(D, D))
      local port = p:wait_for("ACCEPT 127%.0%.0%.1:(%d+)", 10)
      local c, rec = raw_tls(tonumber(port), { cafile = D .. "ca.pem", servername = "localhost" })
      H.wait(function() return rec.opened or rec.closed end, 5, "TLS open")
      assert.same({}, rec.errors)
      c:_raw_write("hello luaws\n")
      H.wait(function() return rec.data:find("\n") or rec.closed end, 5, "reversed line")
      assert.equal("swaul olleh\n", rec.data)
      c:close()
      H.wait(function() return rec.closed end, 5, "close")
      -- s_server says CONNECTION CLOSED only for a close_notify (a bare FIN is an error).
      p:wait_for("CONNECTION CLOSED", 5)
      local out = p:output()
      assert.matches('"server name"[^\n]*\n[^\n]*localhost', out)
      assert.matches('"application layer protocol negotiation"[^\n]*\n[^\n]*http/1%.1', out)
    end)

    it("s_server gets no SNI for an IP address", function()
      local p = H.spawn(("exec openssl s_server -accept 127.0.0.1:0 -cert %sserver.pem -key %sserver.key -rev -tlsextdebug")
        :format(D, D))
      local port = p:wait_for("ACCEPT 127%.0%.0%.1:(%d+)", 10)
      local c, rec = raw_tls(tonumber(port), ca())
      H.wait(function() return rec.opened or rec.closed end, 5, "TLS open")
      assert.same({}, rec.errors)
      c:_raw_write("abc\n")
      H.wait(function() return rec.data:find("\n") or rec.closed end, 5, "reversed line")
      assert.equal("cba\n", rec.data)
      assert.is_nil(p:output():find('"server name"', 1, true))
    end)

    -- Runs s_client against port with input from a file; returns its output once it ends.
    local function s_client(port, input, args)
      local f = assert(io.open(D .. "input", "wb"))
      f:write(input)
      f:close()
      local p = H.spawn(("openssl s_client -connect 127.0.0.1:%d -servername localhost -CAfile %sca.pem -verify_return_error -ign_eof %s <%sinput; echo \"EXIT $?\"")
        :format(port, D, args or "", D))
      p:wait_for("EXIT %d+", 10)
      return p:output()
    end

    it("s_client verifies us, gets ALPN http/1.1, an https answer and our close_notify", function()
      local s = tls_server()
      local out = s_client(s.port, "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
                           "-alpn http/1.1")
      assert.matches("Verify return code: 0 (ok)", out, 1, true)
      assert.matches("ALPN protocol: http/1.1", out, 1, true)
      assert.matches("HTTP/1.1 200 OK", out, 1, true)
      assert.matches("hello over https", out, 1, true)
      assert.matches("\nclosed\n", out, 1, true)   -- SSL_ERROR_ZERO_RETURN: a close_notify
      assert.matches("EXIT 0", out, 1, true)
    end)

    it("s_client speaks WebSocket through TLS: upgrade, echo, close", function()
      local s, srec = tls_server()
      local input = H.upgrade_request .. H.frame(1, "through s_client") .. H.frame(8, "\15\160bye")
      local out = s_client(s.port, input)
      assert.matches("HTTP/1.1 101 Switching Protocols", out, 1, true)
      assert.matches("through s_client", out, 1, true)
      H.wait(function() return #srec.closes > 0 end, 5, "server onclose")
      assert.same({ 4000, "bye", true }, { srec.closes[1].code, srec.closes[1].reason, srec.closes[1].wasClean })
    end)

    it("the server takes the configured TLS 1.2 cipher list and refuses TLS 1.1", function()
      local s, srec = tls_server(cert("server", { ciphers = "ECDHE-ECDSA-AES256-GCM-SHA384" }))
      local req = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"
      local out = s_client(s.port, req, "-tls1_2 -cipher ECDHE-ECDSA-AES128-GCM-SHA256")
      assert.is_nil(out:find("hello over https", 1, true))
      assert.matches("handshake failure", out, 1, true)
      out = s_client(s.port, req, "-tls1_2 -cipher ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-GCM-SHA256")
      assert.matches("hello over https", out, 1, true)
      assert.same({ "TLSv1.2", "ECDHE-ECDSA-AES256-GCM-SHA384" },
        { srec.requests[1].tls.version, srec.requests[1].tls.cipher })
      out = s_client(s.port, req, "-tls1_1 -cipher DEFAULT@SECLEVEL=0")
      assert.is_nil(out:find("hello over https", 1, true))
      assert.matches("alert protocol version", out, 1, true)
      assert.equal(1, #srec.requests)
    end)

    it("s_client with a client certificate shows as req.tls.subject", function()
      local s, srec = tls_server(cert("server", { ca = D .. "ca.pem", verify = true }))
      local out = s_client(s.port, "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
        ("-cert %sclient.pem -key %sclient.key"):format(D, D))
      assert.matches("hello over https", out, 1, true)
      assert.matches("CN=luaws test client", srec.requests[1].tls.subject, 1, true)
    end)
  end)

  -- Node's ws and Python's websockets: their servers over wss:// (spec/peers/*tls*), and
  -- the interop specs' client scripts pointed at our TLS server, trusting our test CA
  -- through the variables their TLS stacks read.
  local peers = {
    { name = "node ws",
      server = function() return ("exec %s %s/ws_tls_server.js %sserver.pem %sserver.key"):format(H.node, H.peers, D, D) end,
      client = function(url)
        return ("NODE_EXTRA_CA_CERTS=%sca.pem exec %s %s/ws_client.js %s"):format(D, H.node, H.peers, url)
      end },
    { name = "python websockets",
      server = function() return ("exec %s %s/py_tls_server.py %sserver.pem %sserver.key"):format(H.python, H.peers, D, D) end,
      client = function(url)
        return ("SSL_CERT_FILE=%sca.pem exec %s %s/py_client.py %s"):format(D, H.python, H.peers, url)
      end },
  }

  for _, peer in ipairs(peers) do
    describe(peer.name, function()
      it("server: our wss:// client exchanges text, binary, 16 MiB and closes", function()
        local p = H.spawn(peer.server())
        local port = p:wait_for("listening on (%d+)", 10)
        local ws, rec = open_client("wss://localhost:" .. port .. "/", ca())
        assert.equal("hello", roundtrip(ws, rec, "hello").data)
        local m = roundtrip(ws, rec, "\0\1\2\255", "binary")
        assert.same({ "\0\1\2\255", true }, { m.data, m.binary })
        local big = big_message()
        m = roundtrip(ws, rec, big, "binary", 30)
        assert.is_true(m.data == big, "16 MiB echo differs")
        ws:close(4000, "bye")
        H.wait(function() return #rec.closes > 0 end, 10, "close")
        assert.same({ 4000, "bye", true }, { rec.closes[1].code, rec.closes[1].reason, rec.closes[1].wasClean })
        p:wait_for('"event": ?"close"', 10)
        local e = find_event(p, "close")
        assert.same({ 4000, "bye" }, { e.code, e.reason })
        assert.same({}, rec.errors)
      end)

      it("server: closes with its code and reason", function()
        local p = H.spawn(peer.server())
        local port = p:wait_for("listening on (%d+)", 10)
        local ws, rec = open_client("wss://localhost:" .. port .. "/", ca())
        ws:send("close-me 4001 peer bye")
        H.wait(function() return #rec.closes > 0 end, 10, "close")
        assert.same({ 4001, "peer bye", true }, { rec.closes[1].code, rec.closes[1].reason, rec.closes[1].wasClean })
      end)

      it("client: runs its script against our TLS server, every echo byte for byte", function()
        local s, srec = tls_server()
        local p = H.spawn(peer.client("wss://localhost:" .. s.port .. "/interop"))
        p:wait_for('"event": ?"summary"[^\n]*\n', 60)
        local summary = find_event(p, "summary")
        assert.is_true(summary.ok, p:output())
        assert.same({ 4000, "bye" }, { summary.close_code, summary.close_reason })
        H.wait(function() return #srec.closes > 0 end, 10, "server onclose")
        assert.same({ 4000, "bye", true }, { srec.closes[1].code, srec.closes[1].reason, srec.closes[1].wasClean })
        assert.equal(4, #srec.messages)
        assert.is_true(srec.messages[3].data == big_message())
        assert.equal("TLSv1.3", srec.requests[1].tls.version)
        assert.same({}, srec.errors)
      end)
    end)
  end
end)
