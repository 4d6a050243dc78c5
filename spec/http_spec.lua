-- The server's HTTP/1.1 side: keep-alive, pipelining, response framing, and upgrades
-- deferred past onupgrade (accepted or refused later).
local H = require "helper"
local WebSocket = H.WebSocket

-- A raw client; returns it and its record.
local function connect(port)
  local c, rec = H.raw(port)
  H.wait(function() return rec.opened end, 5, "connect")
  return c, rec
end

-- Reads n whole responses from rec.data (HEAD answers: pass head_only); returns them.
local function responses(rec, n, what, head_only)
  local got
  H.wait(function()
    got = {}
    local data = rec.data
    while #got < n do
      local r = H.http_response(data, rec.closed, head_only)
      if not r then break end
      got[#got + 1] = r
      data = data:sub(r.length + 1)
    end
    return #got == n or rec.closed
  end, 5, what or "responses")
  assert.equal(n, #got, "responses received: " .. rec.data)
  return got
end

local function get(path, extra)
  return "GET " .. path .. " HTTP/1.1\r\nHost: h\r\n" .. (extra or "") .. "\r\n"
end

describe("HTTP keep-alive", function()
  after_each(H.cleanup)

  local function counting_server(opts)
    local s = H.server(opts)
    local seen = {}
    s.onrequest = function(req, res)
      seen[#seen + 1] = req.url
      res:writeHead(200, { ["Content-Type"] = "text/plain" })
      res:finish("you asked for " .. req.url)
    end
    return s, seen
  end

  it("keeps an HTTP/1.1 connection for the next request", function()
    local s, seen = counting_server()
    local c, rec = connect(s.port)
    c:_raw_write(get("/one"))
    local r = responses(rec, 1)
    assert.equal("you asked for /one", r[1].body)
    assert.equal(tostring(#"you asked for /one"), r[1].headers["content-length"])
    assert.is_nil(r[1].headers.connection)
    c:_raw_write(get("/two"))
    r = responses(rec, 2)
    assert.equal("you asked for /two", r[2].body)
    assert.same({ "/one", "/two" }, seen)
    assert.is_falsy(rec.closed)
  end)

  it("answers pipelined requests in order, even when an earlier one finishes later", function()
    local s = H.server()
    s.onrequest = function(req, res)
      if req.url == "/slow" then
        WebSocket.setTimeout(function() res:finish("slow") end, 30)
      else
        res:finish("fast " .. req.url)
      end
    end
    local c, rec = connect(s.port)
    c:_raw_write(get("/a") .. get("/slow") .. get("/b") .. get("/c"))
    local r = responses(rec, 4)
    assert.same({ "fast /a", "slow", "fast /b", "fast /c" },
      { r[1].body, r[2].body, r[3].body, r[4].body })
  end)

  it("closes after a request that says Connection: close, and after HTTP/1.0", function()
    local s = counting_server()
    local c, rec = connect(s.port)
    c:_raw_write(get("/x", "Connection: close\r\n"))
    local r = responses(rec, 1)
    assert.equal("close", r[1].headers.connection)
    H.wait(function() return rec.closed end, 5, "close")

    c, rec = connect(s.port)
    c:_raw_write("GET /y HTTP/1.0\r\nHost: h\r\n\r\n")
    r = responses(rec, 1)
    assert.equal("you asked for /y", r[1].body)
    H.wait(function() return rec.closed end, 5, "close after 1.0")
  end)

  it("keeps an HTTP/1.0 connection that asks for keep-alive, and says so", function()
    local s = counting_server()
    local c, rec = connect(s.port)
    c:_raw_write("GET /y HTTP/1.0\r\nHost: h\r\nConnection: keep-alive\r\n\r\n")
    local r = responses(rec, 1)
    assert.equal("keep-alive", r[1].headers.connection)
    c:_raw_write("GET /z HTTP/1.0\r\nHost: h\r\nConnection: keep-alive\r\n\r\n")
    r = responses(rec, 2)
    assert.equal("you asked for /z", r[2].body)
  end)

  it("closes an idle keep-alive connection after keepalive_timeout", function()
    local s = counting_server { keepalive_timeout = 0.2 }
    local c, rec = connect(s.port)
    c:_raw_write(get("/one"))
    responses(rec, 1)
    H.wait(function() return rec.closed end, 5, "the idle close")
  end)

  it("frames a streamed body with chunked coding, and a HEAD or 204 answer with none", function()
    local s = H.server()
    s.onrequest = function(req, res)
      if req.url == "/204" then
        res:writeHead(204, {})
        res:finish()
        return
      end
      res:writeHead(200, { ["Content-Type"] = "text/plain" })
      res:write("part one, ")
      res:write("")
      res:finish("part two")
    end
    local c, rec = connect(s.port)
    c:_raw_write(get("/stream"))
    local r = responses(rec, 1)
    assert.equal("chunked", r[1].headers["transfer-encoding"])
    assert.equal("part one, part two", r[1].body)
    assert.truthy(rec.data:find("\r\n\r\na\r\npart one, \r\n8\r\npart two\r\n0\r\n\r\n$", 1, false), rec.data)
    rec.data = ""
    c:_raw_write("HEAD /stream HTTP/1.1\r\nHost: h\r\n\r\n")
    r = responses(rec, 1, "HEAD", true)
    assert.equal(rec.data, rec.data:match("^.-\r\n\r\n"))   -- a head, nothing after it
    rec.data = ""
    c:_raw_write(get("/204"))
    r = responses(rec, 1, "204")
    assert.equal(204, r[1].status)
    assert.equal(rec.data, rec.data:match("^.-\r\n\r\n"))
    assert.is_falsy(rec.closed)
  end)

  it("uses the script's Content-Length, refuses bytes past it, and closes a short body", function()
    local s = H.server()
    local err
    s.onrequest = function(req, res)
      res:writeHead(200, { ["Content-Length"] = 5 })
      if req.url == "/over" then
        err = select(2, pcall(res.write, res, "123456"))
        res:finish("12345")
      else
        res:finish("123")   -- short: the connection cannot carry another response
      end
    end
    local c, rec = connect(s.port)
    c:_raw_write(get("/over"))
    local r = responses(rec, 1)
    assert.equal("12345", r[1].body)
    assert.truthy(tostring(err):find("past Content%-Length"))
    c:_raw_write(get("/short"))
    H.wait(function() return rec.closed end, 5, "close after a short body")
  end)

  it("is reused by curl for two URLs on one connection", function()
    local s, seen = counting_server()
    local base = "http://127.0.0.1:" .. s.port
    local p = H.spawn("curl -sv " .. base .. "/a " .. base .. "/b; echo EXIT $?")
    p:wait_for("EXIT %d+", 10)
    local out = p:output()
    assert.matches("you asked for /a", out, 1, true)
    assert.matches("you asked for /b", out, 1, true)
    assert.matches("Re-using existing connection", out, 1, true)
    assert.matches("EXIT 0", out, 1, true)
    assert.same({ "/a", "/b" }, seen)
  end)

  it("is reused by Python's http.client", function()
    local s, seen = counting_server()
    local script = ([[
import http.client
c = http.client.HTTPConnection("127.0.0.1", %d, timeout=5)
for path in ("/p1", "/p2", "/p3"):
    c.request("GET", path)
    r = c.getresponse()
    print(r.status, r.read().decode())
print("sock", c.sock is not None)
]]):format(s.port)
    local p = H.spawn("python3 -c '" .. script .. "'; echo EXIT $?")
    p:wait_for("EXIT %d+", 10)
    local out = p:output()
    assert.matches("200 you asked for /p3", out, 1, true)
    assert.matches("EXIT 0", out, 1, true)
    assert.same({ "/p1", "/p2", "/p3" }, seen)
  end)
end)

describe("deferred upgrades", function()
  after_each(H.cleanup)

  it("accepts a deferred request later, from a timer; early frames wait for it", function()
    local s = H.server()
    local deferred
    s.onupgrade = function(req)
      deferred = req
      assert.is_true(req:defer())
      WebSocket.setTimeout(function()
        local ws = H.track(WebSocket(req))
        ws.onopen = function() ws:send("opened late") end
        ws.onmessage = function(e) ws:send("echo " .. e.data) end
      end, 30)
    end
    local c, rec = H.raw_upgraded(s.port, H.upgrade_request .. H.frame(1, "early"))
    H.wait(function()
      local frames = H.parse_frames(rec.data)
      return #frames >= 2
    end, 5, "two frames")
    local frames = H.parse_frames(rec.data)
    assert.equal("opened late", frames[1].payload)
    assert.equal("echo early", frames[2].payload)
    assert.is_true(deferred._deferred == nil)
  end)

  it("refuses a deferred request with req:reject", function()
    local s = H.server()
    s.onupgrade = function(req)
      req:defer()
      WebSocket.setTimeout(function() req:reject(403, { ["X-Why"] = "no token" }, "forbidden") end, 10)
    end
    local c, rec = connect(s.port)
    c:_raw_write(H.upgrade_request)
    local r = responses(rec, 1)
    assert.equal(403, r[1].status)
    assert.equal("no token", r[1].headers["x-why"])
    assert.equal("forbidden", r[1].body)
    H.wait(function() return rec.closed end, 5, "close")
  end)

  it("answers 408 to a deferred request left past handshake_timeout", function()
    local s = H.server { handshake_timeout = 0.2 }
    s.onupgrade = function(req) req:defer() end
    local c, rec = connect(s.port)
    c:_raw_write(H.upgrade_request)
    local r = responses(rec, 1)
    assert.equal(408, r[1].status)
    H.wait(function() return rec.closed end, 5, "close")
  end)

  it("still answers 400 to an upgrade that is neither accepted, deferred nor refused", function()
    local s = H.server()
    s.onupgrade = function() end
    local c, rec = connect(s.port)
    c:_raw_write(H.upgrade_request)
    assert.equal(400, responses(rec, 1)[1].status)
  end)

  it("raises when a request that was not deferred is accepted after onupgrade", function()
    local s = H.server()
    local kept, err
    s.onupgrade = function(req) kept = req end
    local c, rec = connect(s.port)
    c:_raw_write(H.upgrade_request)
    H.wait(function() return kept end, 5, "onupgrade")
    err = select(2, pcall(WebSocket, kept))
    assert.truthy(tostring(err):find("nor one it deferred"))
  end)
end)

describe("HTTP request bodies", function()
  after_each(H.cleanup)

  local function body_server(opts)
    local s = H.server(opts)
    local got = {}
    s.onrequest = function(req, res)
      got[#got + 1] = req
      res:finish(req.method .. " " .. req.url .. " " .. #req.body .. " " .. req.body:sub(1, 20))
    end
    return s, got
  end

  it("reads a Content-Length body and a chunked one, then the next pipelined request", function()
    local s, got = body_server()
    local c, rec = connect(s.port)
    c:_raw_write("POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\nhello world" ..
                 "POST /b HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n" ..
                 "5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n" ..
                 get("/c"))
    local r = responses(rec, 3)
    assert.equal("POST /a 11 hello world", r[1].body)
    assert.equal("POST /b 11 hello world", r[2].body)
    assert.equal("GET /c 0 ", r[3].body)
    assert.equal("", got[3].body)
  end)

  it("reads a body that arrives a byte at a time", function()
    local s = body_server()
    local c, rec = connect(s.port)
    local req = "POST /slow HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    for i = 1, #req do
      c:_raw_write(req:sub(i, i))
      H.drain(2)
    end
    assert.equal("POST /slow 3 abc", responses(rec, 1)[1].body)
  end)

  it("answers Expect: 100-continue before the body", function()
    local s = body_server()
    local c, rec = connect(s.port)
    c:_raw_write("PUT /up HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
    H.wait(function() return rec.data:find("\r\n\r\n", 1, true) end, 5, "100 Continue")
    assert.equal("HTTP/1.1 100 Continue\r\n\r\n", rec.data)
    rec.data = ""
    c:_raw_write("data")
    assert.equal("PUT /up 4 data", responses(rec, 1)[1].body)
  end)

  it("answers 413 to a body over max_body, and closes", function()
    local s = body_server { max_body = 10 }
    local c, rec = connect(s.port)
    c:_raw_write("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\n")
    assert.equal(413, responses(rec, 1)[1].status)
    H.wait(function() return rec.closed end, 5, "close")
    c, rec = connect(s.port)
    c:_raw_write("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n8\r\n12345678\r\n8\r\n12345678\r\n")
    assert.equal(413, responses(rec, 1)[1].status)
    H.wait(function() return rec.closed end, 5, "close")
  end)

  it("refuses the framings that smuggle requests (RFC 9112 6.3), and closes", function()
    local s, got = body_server()
    local cases = {
      { "Content-Length: 3\r\nTransfer-Encoding: chunked\r\n", 400 },
      { "Content-Length: 3\r\nContent-Length: 4\r\n", 400 },
      { "Transfer-Encoding: chunked, gzip\r\n", 400 },
      { "Transfer-Encoding: gzip, chunked\r\n", 501 },
      { "Content-Length: +3\r\n", 400 },
    }
    for _, case in ipairs(cases) do
      local c, rec = connect(s.port)
      c:_raw_write("POST / HTTP/1.1\r\nHost: h\r\n" .. case[1] .. "\r\nabc")
      assert.equal(case[2], responses(rec, 1, case[1])[1].status, case[1])
      H.wait(function() return rec.closed end, 5, "close")
    end
    local c, rec = connect(s.port)
    c:_raw_write("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
    assert.equal(400, responses(rec, 1, "bad chunk size")[1].status)
    H.wait(function() return rec.closed end, 5, "close")
    assert.equal(0, #got)
  end)

  it("takes uploads from curl, plain and chunked, on one connection", function()
    local s, got = body_server()
    local base = "http://127.0.0.1:" .. s.port
    local p
    local f = os.tmpname()
    local out = io.open(f, "wb"); out:write(string.rep("x", 100000)); out:close()
    p = H.spawn(("curl -sv --data-binary @%s %s/plain --next -H 'Transfer-Encoding: chunked' " ..
      "--data-binary @%s %s/chunked; echo; echo EXIT $?"):format(f, base, f, base))
    p:wait_for("EXIT %d+", 20)
    os.remove(f)
    local text = p:output()
    assert.matches("POST /plain 100000 xxxx", text, 1, true)
    assert.matches("POST /chunked 100000 xxxx", text, 1, true)
    assert.matches("Re-using existing connection", text, 1, true)
    assert.equal(2, #got)
    assert.equal(string.rep("x", 100000), got[2].body)
  end)

  it("takes a body from Node's http module and from Python's http.client", function()
    local s, got = body_server()
    local node = ([[
const http = require("http");
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
function post(path, body, chunked) {
  return new Promise((ok) => {
    const req = http.request({ host: "127.0.0.1", port: %d, path, method: "POST", agent,
      headers: chunked ? {} : { "Content-Length": Buffer.byteLength(body) } }, (res) => {
      let d = ""; res.on("data", (c) => d += c); res.on("end", () => ok(d));
    });
    if (chunked) { req.write(body.slice(0, 3)); req.write(body.slice(3)); } else req.write(body);
    req.end();
  });
}
(async () => {
  console.log("node:", await post("/n1", "from node", false));
  console.log("node:", await post("/n2", "chunked from node", true));
  agent.destroy();
})();
]]):format(s.port)
    local py = ([[
import http.client
c = http.client.HTTPConnection("127.0.0.1", %d, timeout=5)
c.request("POST", "/p1", body=b"from python")
print("python:", c.getresponse().read().decode())
c.request("POST", "/p2", body=iter([b"chunked ", b"from python"]), encode_chunked=True)
print("python:", c.getresponse().read().decode())
]]):format(s.port)
    local p = H.spawn("node -e '" .. node .. "'; python3 -c '" .. py .. "'; echo EXIT $?")
    p:wait_for("EXIT %d+", 20)
    local out = p:output()
    assert.matches("node: POST /n1 9 from node", out, 1, true)
    assert.matches("node: POST /n2 17 chunked from node", out, 1, true)
    assert.matches("python: POST /p1 11 from python", out, 1, true)
    assert.matches("python: POST /p2 19 chunked from pyth", out, 1, true)
    assert.equal(4, #got)
  end)
end)

describe("streamed request bodies (listen{ stream_bodies = true })", function()
  after_each(H.cleanup)

  it("hands the request up at its head and the body in pieces, then the next request", function()
    local s = H.server { stream_bodies = true }
    local log = {}
    s.onrequest = function(req, res)
      log[#log + 1] = "head " .. req.url .. " body=" .. tostring(req.body)
      local got = {}
      req.ondata = function(chunk) got[#got + 1] = chunk end
      req.onend = function()
        log[#log + 1] = "end " .. req.url .. " " .. table.concat(got)
        res:finish("got " .. #table.concat(got))
      end
    end
    local c, rec = connect(s.port)
    c:_raw_write("POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")
    H.wait(function() return #log >= 1 end, 5, "the head")
    assert.equal("head /up body=nil", log[1])
    c:_raw_write("4\r\ndefg\r\n0\r\n\r\n" .. get("/next"))
    local r = responses(rec, 2)
    assert.equal("got 7", r[1].body)
    assert.equal("end /up abcdefg", log[2])
    assert.equal("head /next body=", log[3])   -- no body: "" and complete at once
    assert.equal("got 0", r[2].body)
  end)

  it("may answer before the body has come, and then closes after it", function()
    local s = H.server { stream_bodies = true, max_body = 100 }
    local ended = false
    s.onrequest = function(req, res)
      req.onend = function() ended = true end
      res:writeHead(413, { ["Content-Type"] = "text/plain" })
      res:finish("too much")
    end
    local c, rec = connect(s.port)
    c:_raw_write("POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nab")
    local r = responses(rec, 1)
    assert.equal(413, r[1].status)
    H.wait(function() return rec.closed end, 5, "close")
  end)

  it("pauses the body for back-pressure, and drops a stalled one after handshake_timeout", function()
    local s = H.server { stream_bodies = true, handshake_timeout = 0.3 }
    local pieces, the_req = 0, nil
    s.onrequest = function(req, res)
      the_req = req
      req.ondata = function()
        pieces = pieces + 1
        if req.url == "/pause" then req:pause() end
      end
      req.onend = function() res:finish("done") end
    end
    local c, rec = connect(s.port)
    c:_raw_write("POST /pause HTTP/1.1\r\nHost: h\r\nContent-Length: 6\r\n\r\nabc")
    H.wait(function() return pieces == 1 end, 5, "the first piece")
    c:_raw_write("def")
    H.drain(20)
    assert.equal(1, pieces)   -- paused: the rest waits
    the_req.resume()
    assert.equal("done", responses(rec, 1)[1].body)
    assert.equal(2, pieces)
    -- a body that stops coming
    local c2, rec2 = connect(s.port)
    c2:_raw_write("POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 6\r\n\r\nab")
    H.wait(function() return rec2.closed end, 5, "the stalled body dropped")
  end)
end)

describe("HTTP details", function()
  after_each(H.cleanup)

  it("says Connection: close when the server cannot keep the connection (closing down)", function()
    local s = H.server()
    local later
    s.onrequest = function(_, res) later = res end
    local c, rec = connect(s.port)
    c:_raw_write(get("/slow"))
    H.wait(function() return later end, 5, "the request")
    s:close()
    later:finish("bye")
    local r = responses(rec, 1)
    assert.equal("close", r[1].headers.connection)
    H.wait(function() return rec.closed end, 5, "close")
  end)

  it("keeps idle connections without a time limit when keepalive_timeout is math.huge", function()
    local s = H.server { keepalive_timeout = math.huge }
    s.onrequest = function(_, res) res:finish("ok") end
    local c, rec = connect(s.port)
    c:_raw_write(get("/a"))
    responses(rec, 1)
    c:_raw_write(get("/b"))
    assert.equal("ok", responses(rec, 2)[2].body)
  end)

  it("returns ECLOSED when a deferred request's client went away before the accept", function()
    local s = H.server()
    local kept
    s.onupgrade = function(req) req:defer() kept = req end
    local c = connect(s.port)
    c:_raw_write(H.upgrade_request)
    H.wait(function() return kept end, 5, "onupgrade")
    c:close()
    H.wait(function() return WebSocket.stats().connections == 0 end, 5, "both ends gone")
    local ws, msg, name = WebSocket(kept)
    assert.is_nil(ws)
    assert.equal("ECLOSED", name, msg)
  end)
end)
