-- The luaws command (bin/luaws, lua/luaws/cli.lua), driven as a process through pipes
-- with the interpreter that runs this spec: connect against luaws servers in this
-- process, listen against luaws clients in this process. Each process's stdout, stderr
-- and exit status are checked; every wait is bounded.
local H = require "helper"
local WebSocket = H.WebSocket
local cli = require "luaws.cli"
local deflate = require "luaws.deflate"

local C = require "command"
local LUAWS, q, sh, spit = C.LUAWS, C.q, C.sh, C.spit
local run, luaws, cleanup = C.run, C.luaws, C.cleanup

local function url(s, path) return "ws://127.0.0.1:" .. s.port .. (path or "/") end

-- A server whose sockets run on_open(ws, req) once accepted; rec as H.echo_server's.
local function server(on_open, protocols, options)
  local s = H.server()
  local rec = { sockets = {}, messages = {}, closes = {}, requests = {} }
  s.onupgrade = function(req)
    local ws = H.track(WebSocket(req, protocols, options))
    rec.sockets[#rec.sockets + 1] = ws
    rec.requests[#rec.requests + 1] = req
    ws.onmessage = function(e) rec.messages[#rec.messages + 1] = e end
    ws.onclose = function(e) rec.closes[#rec.closes + 1] = e end
    ws.onopen = function() on_open(ws, req) end
  end
  return s, rec
end

-- The port of a `luaws listen` process, from its first line on stderr.
local function listening(p)
  return tonumber(p:wait_for("listening on 127%.0%.0%.1:(%d+)", "stderr"))
end

local function open_client(u, protocols, options)
  local ws, rec = H.client(u, protocols, options)
  H.wait(function() return rec.opens > 0 or #rec.closes > 0 end, 10, "open")
  assert.equal(1, rec.opens, "no open: " .. table.concat(rec.errors, "; "))
  return ws, rec
end

local function messages(rec)
  local t = {}
  for i, m in ipairs(rec.messages) do t[i] = m.data end
  return t
end

describe("luaws.cli (pure parts)", function()
  it("splits lines the same whether fed whole, a byte at a time or in random chunks", function()
    local input = "one\n\ntwo \r\nwörld\n" .. ("x"):rep(70000) .. "\nlast without newline"
    local expected = { "one", "", "two \r", "wörld", ("x"):rep(70000), "last without newline" }
    local function run(chunks)
      local lines = {}
      local feed = cli.line_splitter(function(l) lines[#lines + 1] = l end)
      for _, c in ipairs(chunks) do feed(c) end
      feed(nil)
      return lines
    end
    assert.same(expected, run({ input }))
    local bytes = {}
    for i = 1, #input do bytes[i] = input:sub(i, i) end
    assert.same(expected, run(bytes))
    math.randomseed(7)
    for _ = 1, 20 do
      local chunks, pos = {}, 1
      while pos <= #input do
        local n = math.random(1, 9000)
        chunks[#chunks + 1] = input:sub(pos, pos + n - 1)
        pos = pos + n
      end
      assert.same(expected, run(chunks))
    end
    assert.same({ "a" }, run({ "a\n" }))   -- a final newline makes no empty line
    assert.same({}, run({}))
  end)

  it("parses options in any order, --name=value, and -- before arguments", function()
    local r = cli.parse { "connect", "-H", "X-A: 1", "ws://h/", "--header=X-B:  two words ",
      "-p", "chat", "--wait=1.5", "-x", "m1", "-x", "m2", "--deflate" }
    assert.same({ { "X-A", "1" }, { "X-B", "two words" } }, r.headers)
    assert.same({ "chat" }, r.protocols)
    assert.same({ "m1", "m2" }, r.execute)
    assert.same({ "ws://h/", 1.5, true }, { r.url, r.wait, r.deflate })
    r = cli.parse { "listen", "--broadcast", "--", "0" }
    assert.same({ "listen", "broadcast", 0 }, { r.command, r.mode, r.port })
    assert.equal("echo", cli.parse({ "listen", "8000" }).mode)
    assert.same({ command = "help", topic = "listen" }, cli.parse { "listen", "--help" })
    local function usage(argv)
      local ok, err = pcall(cli.parse, argv)
      assert.is_false(ok)
      assert.is_string(err.usage)
      return err.usage
    end
    assert.matches("unknown option %-%-nope", usage { "connect", "--nope", "ws://h/" })
    assert.matches("takes one URL", usage { "connect" })
    assert.matches("scheme must be ws or wss", usage { "connect", "http://h/" })
    assert.matches("Name: value", usage { "connect", "-H", "no colon", "ws://h/" })
    assert.matches("%-%-wait takes", usage { "connect", "--wait", "soon", "ws://h/" })
    assert.matches("subprotocol", usage { "connect", "-p", "a b", "ws://h/" })
    assert.matches("0 to 65535", usage { "listen", "65536" })
    assert.matches("choose one", usage { "listen", "--echo", "--print", "0" })
    assert.matches("go together", usage { "listen", "--tls-cert", "c.pem", "0" })
    assert.matches("unknown command", usage { "dial" })
  end)
end)

describe("the luaws command", function()
  after_each(cleanup)

  describe("as a whole", function()
    it("documents every command, every option and the exit statuses in --help", function()
      local status, out = luaws("--help"):wait_exit()
      assert.equal(0, status)
      for _, s in ipairs({ "luaws connect", "luaws listen", "--header", "--protocol", "--cafile",
        "--insecure", "--deflate", "--execute", "--wait", "--no-close", "--binary", "--raw",
        "--show-close", "--echo", "--print", "--broadcast", "--host", "--tls-cert", "--tls-key",
        "--max-clients", "--once", "Exit status", "1000", "1005", "1006", "luaws serve", "--workers",
        "--restart", "--lua" }) do
        assert.truthy(out:find(s, 1, true), "--help lacks " .. s)
      end
      local _, connect_help = luaws("connect --help"):wait_exit()
      assert.truthy(connect_help:find("--execute", 1, true))
      assert.falsy(connect_help:find("--broadcast", 1, true))
      status, out = luaws("--version"):wait_exit()
      assert.same({ 0, WebSocket._VERSION .. "\n" }, { status, out })
    end)

    it("exits 2 for a usage error, saying what is wrong on stderr", function()
      local cases = {
        { "", "a command is needed" },
        { "connect", "takes one URL" },
        { "connect --bogus ws://127.0.0.1/", "unknown option %-%-bogus" },
        { "connect http://127.0.0.1/", "scheme must be ws or wss" },
        { "connect ws:///nohost", "no valid host" },
        { "connect -H nocolon ws://127.0.0.1/", "Name: value" },
        { "connect --wait", "%-%-wait takes SECONDS" },
        { "listen 65536", "0 to 65535" },
        { "listen --print --broadcast 0", "choose one" },
      }
      local ps = {}
      for i, c in ipairs(cases) do ps[i] = luaws(c[1]) end
      for i, c in ipairs(cases) do
        local status, out, err = ps[i]:wait_exit()
        assert.equal(2, status, c[1])
        assert.equal("", out, c[1])
        assert.matches(c[2], err)
        assert.matches("Try 'luaws", err)
      end
    end)
  end)

  describe("connect", function()
    it("sends the lines of a pipe and prints the replies, then closes with 1000 (exit 0)", function()
      local s, rec = H.echo_server()
      local status, out, err = luaws("connect " .. url(s), "hello\nwörld\n\nlast"):wait_exit()
      assert.equal(0, status, err)
      assert.equal("hello\nwörld\n\nlast\n", out)
      assert.equal("", err)
      assert.same({ "hello", "wörld", "", "last" }, messages(rec))
      H.wait(function() return #rec.closes == 1 end, 5, "server close")
      assert.same({ 1000, true }, { rec.closes[1].code, rec.closes[1].wasClean })
    end)

    it("reads stdin from a regular file: many lines and a long one, in order", function()
      local s, rec = H.echo_server()
      local lines = {}
      for i = 1, 3000 do lines[i] = "line " .. i end
      lines[1501] = ("y"):rep(200000)   -- longer than a read: split across chunks
      local text = table.concat(lines, "\n") .. "\n"
      local file = os.tmpname()
      spit(file, text)
      local status, out, err = luaws("connect " .. url(s), { file = file }):wait_exit(30)
      os.remove(file)
      assert.equal(0, status, err)
      H.assert_bytes(text, out, "stdout")
      assert.equal(3000, #rec.messages)
    end)

    it("stops reading stdin while the server does not read, rather than outrun it", function()
      -- 40 MB of lines: the kernel takes some 10 MB; the rest would pass the client's
      -- max_buffered (16 MiB) and drop the connection, had it read them all
      local got, bytes = 0, 0
      local s, rec = server(function(ws)
        ws:pause()
        WebSocket.setTimeout(function() ws:resume() end, 300)
        ws.onmessage = function(e) got, bytes = got + 1, bytes + #e.data end
      end)
      local file = os.tmpname()
      spit(file, (("z"):rep(999) .. "\n"):rep(40000))
      local status, out, err = luaws("connect " .. url(s), { file = file }):wait_exit(60)
      os.remove(file)
      assert.same({ 0, "", "" }, { status, out, err })
      assert.same({ 40000, 40000 * 999 }, { got, bytes })
      H.wait(function() return #rec.closes == 1 end, 5, "server close")
      assert.equal(1000, rec.closes[1].code)
    end)

    it("sends each line as it comes from a pipe, and ends at its end", function()
      local s, rec = H.echo_server()
      local p = luaws("connect " .. url(s), { fifo = true })
      p:write("one\n")
      p:wait_for("^one\n$")
      p:write("tw")
      p:write("o\nthree\n")
      p:wait_for("^one\ntwo\nthree\n$")
      assert.same({ "one", "two", "three" }, messages(rec))
      assert.equal(0, #rec.closes)
      p:close_input()
      local status = p:wait_exit()
      assert.equal(0, status)
      H.wait(function() return #rec.closes == 1 end, 5, "server close")
      assert.equal(1000, rec.closes[1].code)
    end)

    it("reads a terminal: each line as it is typed, and Ctrl-D ends the input", function()
      local s, rec = H.echo_server()
      local p = run("python3 spec/peers/pty_run.py " .. q(LUAWS .. " connect " .. url(s)))
      local status, out, err = p:wait_exit(30)
      assert.equal(0, status, err)
      assert.matches("^hello\r\nhello\r\n\nstatus 0\n$", out)   -- the echo, then the reply
      assert.same({ "hello" }, messages(rec))
      H.wait(function() return #rec.closes == 1 end, 5, "server close")
      assert.equal(1000, rec.closes[1].code)
    end)

    it("runs without a stdin at all, as if it were empty", function()
      local s, rec = H.echo_server()
      local status, out, err = luaws("connect -x hi " .. url(s), "closed"):wait_exit()
      assert.same({ 0, "hi\n", "" }, { status, out, err })
      status, out, err = luaws("connect " .. url(s), "closed"):wait_exit()
      assert.same({ 0, "", "" }, { status, out, err })
      assert.same({ "hi" }, messages(rec))
    end)

    it("exits 0 when the server closes with 1000 while stdin is still open", function()
      local s = server(function(ws) ws:send("bye now"); ws:close(1000, "done") end)
      local p = luaws("connect --show-close " .. url(s), { fifo = true })
      local status, out, err = p:wait_exit()
      assert.same({ 0, "bye now\n" }, { status, out })
      assert.matches('closed 1000 "done"', err)
    end)

    it("exits 3 when the server closes with 1001, 4000 or drops the connection", function()
      local s1 = server(function(ws) ws:close(4000, "custom") end)
      local s2 = server(function(ws) ws:terminate() end)
      local s3 = H.server()
      s3.onupgrade = function(req) H.track(WebSocket(req)).onopen = function() s3:close() end end
      local p1 = luaws("connect " .. url(s1), { fifo = true })
      local p2 = luaws("connect " .. url(s2), { fifo = true })
      local p3 = luaws("connect " .. url(s3), { fifo = true })
      local status, _, err = p1:wait_exit()
      assert.equal(3, status)
      assert.matches('closed 4000 "custom"', err)
      status, _, err = p2:wait_exit()
      assert.equal(3, status)
      assert.matches("closed 1006", err)
      status, _, err = p3:wait_exit()
      assert.equal(3, status)
      assert.matches("closed 1001", err)
    end)

    it("exits 1 when the connection is refused or the handshake is", function()
      local gone = H.server()
      local port = gone.port
      gone:close()
      local s = H.server()
      s.onupgrade = function(req) req:reject(403, nil, "no") end
      local p1 = luaws("connect ws://127.0.0.1:" .. port .. "/")
      local p2 = luaws("connect " .. url(s))
      local status, out, err = p1:wait_exit()
      assert.same({ 1, "" }, { status, out })
      assert.matches("ECONNREFUSED", err)
      status, out, err = p2:wait_exit()
      assert.same({ 1, "" }, { status, out })
      assert.matches("403", err)
    end)

    it("sends the -H headers and offers the -p subprotocols", function()
      local s, rec = H.echo_server({ "superchat" })
      local status, out, err = luaws("connect -v -H 'X-Token: abc' -H 'X-Token: def' " ..
        "--header='Origin: http://example.com' -p chat -p superchat " .. url(s, "/room?a=1"),
        "hi\n"):wait_exit()
      assert.equal(0, status, err)
      assert.equal("hi\n", out)
      local req = rec.last_request
      assert.equal("/room?a=1", req.url)
      assert.equal("abc, def", req.headers["x-token"])
      assert.equal("http://example.com", req.headers.origin)
      assert.equal("chat, superchat", req.headers["sec-websocket-protocol"])
      assert.equal("superchat", rec.sockets[1].protocol)
      assert.matches("connected to ws://127%.0%.0%.1:%d+/room%?a=1 %(protocol superchat%)", err)
      assert.matches("closed 1000", err)
    end)

    it("negotiates permessage-deflate with --deflate, and only then", function()
      local s, rec = H.echo_server(nil, { extensions = { deflate } })
      local big = ("compressible text "):rep(1000)
      local status, out, err = luaws("connect --deflate -x " .. q(big) .. " " .. url(s)):wait_exit()
      assert.equal(0, status, err)
      assert.equal(big .. "\n", out)
      assert.matches("^permessage%-deflate", rec.sockets[1].extensions)
      assert.matches("permessage%-deflate", rec.last_request.headers["sec-websocket-extensions"])
      status = luaws("connect -x plain " .. url(s)):wait_exit()
      assert.equal(0, status)
      assert.equal("", rec.sockets[2].extensions)
    end)

    it("sends --binary lines as binary and prints binary replies in hex, or --raw", function()
      local s, rec = H.echo_server()
      local status, out = luaws("connect --binary " .. url(s), "ab\n\1\2\n"):wait_exit()
      assert.same({ 0, "6162\n0102\n" }, { status, out })
      assert.same({ "ab", true }, { rec.messages[1].data, rec.messages[1].binary })
      status, out = luaws("connect --binary --raw " .. url(s), "ab\n"):wait_exit()
      assert.same({ 0, "ab\n" }, { status, out })
    end)

    it("reports a line that is not UTF-8 and sends the rest", function()
      local s, rec = H.echo_server()
      local status, out, err = luaws("connect " .. url(s), "\255bad\nok\n"):wait_exit()
      assert.same({ 0, "ok\n" }, { status, out })
      assert.matches("line 1 is not UTF%-8", err)
      assert.same({ "ok" }, messages(rec))
    end)

    it("with -x sends its messages without reading stdin and waits for the replies", function()
      -- replies come later than the pong: -x waits for one message per -x
      local got = {}
      local s = server(function(ws)
        ws.onmessage = function(e)
          got[#got + 1] = e.data
          WebSocket.setTimeout(function() ws:send("re: " .. e.data) end, 50)
        end
      end)
      local p = luaws("connect -x one -x two " .. url(s), { fifo = true })   -- stdin stays open
      local status, out, err = p:wait_exit()
      assert.equal(0, status, err)
      assert.equal("re: one\nre: two\n", out)
      assert.same({ "one", "two" }, got)
    end)

    it("waits --wait seconds at the end of the input for late replies", function()
      local s = server(function(ws)
        ws.onmessage = function(e)
          WebSocket.setTimeout(function() ws:send("late " .. e.data) end, 50)
        end
      end)
      local status, out = luaws("connect --wait 0.5 " .. url(s), "x\n"):wait_exit()
      assert.same({ 0, "late x\n" }, { status, out })
    end)

    it("with --no-close keeps the connection after the input ends, until the server closes", function()
      local s, rec = H.echo_server()
      local p = luaws("connect -n " .. url(s), "a\n")
      p:wait_for("^a\n$")
      H.wait(function() return #rec.messages == 1 end, 5, "message")
      assert.is_nil(p:status())
      assert.equal(0, #rec.closes)
      rec.sockets[1]:close(1000)
      assert.equal(0, (p:wait_exit()))
    end)

    describe("over wss://", function()
      local D

      setup(function()
        D = os.tmpname()
        os.remove(D)
        assert(sh("sh scripts/make_certs.sh " .. D .. " >/dev/null 2>&1"), "make_certs.sh failed")
        D = D .. "/"
      end)

      teardown(function()
        if D then sh("rm -rf " .. q(D)) end
      end)

      local function tls_echo()
        local s = H.server { tls = { cert = D .. "server.pem", key = D .. "server.key" } }
        s.onupgrade = function(req)
          local ws = H.track(WebSocket(req))
          ws.onmessage = function(e) ws:send(e.data) end
        end
        return "wss://127.0.0.1:" .. s.port .. "/"
      end

      it("verifies against --cafile, fails (exit 1) without it, and skips checks with --insecure", function()
        local u = tls_echo()
        local p1 = luaws("connect --cafile " .. q(D .. "ca.pem") .. " " .. u, "secure\n")
        local p2 = luaws("connect " .. u, "secure\n")
        local p3 = luaws("connect --insecure " .. u, "insecure\n")
        local status, out, err = p1:wait_exit()
        assert.same({ 0, "secure\n" }, { status, out }, err)
        status, out, err = p2:wait_exit()
        assert.same({ 1, "" }, { status, out })
        assert.matches("certificate verify failed", err)
        status, out, err = p3:wait_exit()
        assert.same({ 0, "insecure\n" }, { status, out }, err)
      end)

      it("serves wss:// with listen --tls-cert and --tls-key", function()
        local p = luaws("listen --tls-cert " .. q(D .. "server.pem") .. " --tls-key " ..
          q(D .. "server.key") .. " 0")
        local port = listening(p)
        assert.matches("%(TLS%)", p:stderr())
        local ws, rec = open_client("wss://127.0.0.1:" .. port .. "/", nil, { tls = { cafile = D .. "ca.pem" } })
        assert.equal("over tls", H.roundtrip(ws, rec, "over tls").data)
      end)
    end)
  end)

  describe("listen", function()
    it("echoes by default, and reports clients on stderr", function()
      local p = luaws("listen 0")
      local port = listening(p)
      local ws, rec = open_client("ws://127.0.0.1:" .. port .. "/path")
      local m = H.roundtrip(ws, rec, "echo me")
      assert.same({ "echo me", false }, { m.data, m.binary })
      m = H.roundtrip(ws, rec, "\0\1\2", "binary")
      assert.same({ "\0\1\2", true }, { m.data, m.binary })
      assert.matches("client 1 connected: /path", p:stderr())
      ws:close(4001, "later")
      p:wait_for('client 1 closed 4001 "later"', "stderr")
      assert.equal("", p:stdout())
    end)

    it("with --print writes messages to stdout and sends stdin lines to the clients", function()
      local p = luaws("listen --print 0", { fifo = true })
      local port = listening(p)
      local ws, rec = open_client("ws://127.0.0.1:" .. port .. "/")
      ws:send("to stdout")
      p:wait_for("^to stdout\n$")
      p:write("from stdin\n")
      H.wait(function() return #rec.messages == 1 end, 5, "stdin line")
      assert.equal("from stdin", rec.messages[1].data)
    end)

    it("with --broadcast sends each message to the other clients and stdin lines to all", function()
      local p = luaws("listen --broadcast 0", { fifo = true })
      local port = listening(p)
      local a, ra = open_client("ws://127.0.0.1:" .. port .. "/")
      local b, rb = open_client("ws://127.0.0.1:" .. port .. "/")
      p:wait_for("client 2 connected", "stderr")
      a:send("from a")
      H.wait(function() return #rb.messages == 1 end, 5, "b gets a's message")
      b:send("from b")
      H.wait(function() return #ra.messages == 1 end, 5, "a gets b's message")
      p:write("to all\n")
      H.wait(function() return #ra.messages == 2 and #rb.messages == 2 end, 5, "stdin line")
      -- a's stream is in order: had its own message come back, it would come first
      assert.same({ "from b", "to all" }, messages(ra))
      assert.same({ "from a", "to all" }, messages(rb))
      p:wait_for("^from a\nfrom b\n$")
    end)

    it("with --deflate accepts permessage-deflate, with -p chooses a subprotocol", function()
      local p = luaws("listen --deflate -p chat -p json 0")
      local port = listening(p)
      local ws, rec = open_client("ws://127.0.0.1:" .. port .. "/", { "xml", "json" },
        { extensions = { deflate } })
      assert.matches("^permessage%-deflate", ws.extensions)
      assert.equal("json", ws.protocol)
      local big = ("deflate me "):rep(500)
      assert.equal(big, H.roundtrip(ws, rec, big).data)
      p:wait_for("protocol json, extensions permessage%-deflate", "stderr")
      local plain = open_client("ws://127.0.0.1:" .. port .. "/")
      assert.same({ "", "" }, { plain.extensions, plain.protocol })
    end)

    it("with --once exits after its client, with the status of that close", function()
      local p1 = luaws("listen --once 0")
      local p2 = luaws("listen --once 0")
      local c1 = open_client("ws://127.0.0.1:" .. listening(p1) .. "/")
      local c2 = open_client("ws://127.0.0.1:" .. listening(p2) .. "/")
      c1:close(1000)
      c2:close(4000, "odd")
      assert.equal(0, (p1:wait_exit()))
      assert.equal(3, (p2:wait_exit()))
    end)

    it("with --max-clients refuses a client over the limit with 503", function()
      local p = luaws("listen --max-clients 1 0")
      local port = listening(p)
      local first = open_client("ws://127.0.0.1:" .. port .. "/")
      local _, rec = H.client("ws://127.0.0.1:" .. port .. "/")
      H.wait(function() return #rec.closes == 1 end, 5, "refusal")
      assert.equal(0, rec.opens)
      assert.matches("503", rec.errors[1])
      first:close()
      p:wait_for("client 1 closed", "stderr")
      open_client("ws://127.0.0.1:" .. port .. "/")   -- a place again
    end)

    it("exits 1 when the port is taken", function()
      local s = H.server()
      local status, _, err = luaws("listen " .. s.port):wait_exit()
      assert.equal(1, status)
      assert.matches("cannot listen on 127%.0%.0%.1:" .. s.port .. ": EADDRINUSE", err)
    end)
  end)
end)
