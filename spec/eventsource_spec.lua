-- lua/luaws/eventsource.lua: server-sent events. The wire format is checked byte for
-- byte and through a parser written from the WHATWG HTML standard ("Server-sent events",
-- 9.2.6); the stream is read as HTTP by a parser that de-chunks a chunked body, so these
-- specs hold whether a response is delimited by the close or sent chunked; curl and a
-- Python reader (spec/peers/sse_reader.py) read it as real clients.
local H = require "helper"
local WebSocket = H.WebSocket
local EventSource = WebSocket.EventSource

-- ---- an HTTP/1.1 response, as a client reads it ----------------------------------------

--- Parses the bytes of a response received so far. nil until the head is complete, else
--- { status, headers (lower-case names, repeats joined with ", "), body, complete }.
--- The body is de-chunked under Transfer-Encoding: chunked (complete at the last chunk),
--- else Content-Length long, else delimited by the close (complete once eof).
local function parse_response(bytes, eof)
  local head_end = bytes:find("\r\n\r\n", 1, true)
  if not head_end then return nil end
  local head = bytes:sub(1, head_end + 1)
  local status = head:match("^HTTP/1%.1 (%d%d%d) [^\r\n]*\r\n")
  assert(status, "not an HTTP/1.1 status line: " .. head)
  local headers, first = {}, true
  for line in head:gmatch("([^\r\n]*)\r\n") do
    if not first then
      local name, value = line:match("^([^:%s]+):[ \t]*(.-)[ \t]*$")
      assert(name, "malformed header line: " .. line)
      name = name:lower()
      headers[name] = headers[name] and headers[name] .. ", " .. value or value
    end
    first = false
  end
  local rest = bytes:sub(head_end + 4)
  local r = { status = tonumber(status), headers = headers, complete = false }
  local te = headers["transfer-encoding"]
  if te and te:lower():find("chunked", 1, true) then
    local parts, pos = {}, 1
    while true do
      local line_end = rest:find("\r\n", pos, true)
      if not line_end then break end
      local size = tonumber(rest:sub(pos, line_end - 1):match("^%x+") or "", 16)
      assert(size, "bad chunk size line: " .. rest:sub(pos, line_end - 1))
      if size == 0 then   -- the last chunk; trailers end with an empty line
        r.complete = rest:find("\r\n\r\n", line_end, true) ~= nil
        break
      end
      local from = line_end + 2
      if #rest < from + size + 1 then break end
      assert(rest:sub(from + size, from + size + 1) == "\r\n", "chunk not ended by CRLF")
      parts[#parts + 1] = rest:sub(from, from + size - 1)
      pos = from + size + 2
    end
    r.body = table.concat(parts)
  elseif headers["content-length"] then
    local n = assert(tonumber(headers["content-length"]))
    r.body, r.complete = rest:sub(1, n), #rest >= n
  else
    r.body, r.complete = rest, eof
  end
  return r
end

-- ---- the event stream, as the WHATWG standard says a client reads it -----------------

--- Interprets a whole stream (9.2.6): returns { events = { {type, data, lastEventId} },
--- comments = { ... }, retry = ms or nil }. An unterminated last line and an event
--- without its blank line are dropped, as at the end of a stream.
local function parse_events(text)
  local out = { events = {}, comments = {} }
  local data, etype, idbuf, last_id = "", "", "", ""
  text = text:gsub("^\239\187\191", "")
  local function line(l)
    if l == "" then   -- dispatch
      last_id = idbuf
      if data == "" then etype = ""; return end
      if data:sub(-1) == "\n" then data = data:sub(1, -2) end
      out.events[#out.events + 1] = { type = etype ~= "" and etype or "message", data = data,
                                      lastEventId = last_id }
      data, etype = "", ""
      return
    end
    if l:sub(1, 1) == ":" then out.comments[#out.comments + 1] = l:sub(2); return end
    local name, value = l:match("^([^:]*):(.*)$")
    if name then
      if value:sub(1, 1) == " " then value = value:sub(2) end
    else
      name, value = l, ""
    end
    if name == "event" then etype = value
    elseif name == "data" then data = data .. value .. "\n"
    elseif name == "id" then if not value:find("%z") then idbuf = value end
    elseif name == "retry" then if value:find("^%d+$") then out.retry = tonumber(value) end
    end
  end
  local pos = 1
  while true do
    local s = text:find("[\r\n]", pos)
    if not s then break end
    line(text:sub(pos, s - 1))
    if text:sub(s, s + 1) == "\r\n" then s = s + 1 end
    pos = s + 1
  end
  return out
end

-- ---- a server and a raw client -------------------------------------------------------

--- A server whose onrequest makes an EventSource with opts and calls setup(es, req, res);
--- rec.streams, rec.closes (onclose calls), rec.requests.
local function es_server(opts, setup)
  local s = H.server()
  local rec = { streams = {}, closes = 0, requests = {} }
  s.onrequest = function(req, res)
    rec.requests[#rec.requests + 1] = req
    local es = EventSource(req, res, opts)
    rec.streams[#rec.streams + 1] = es
    es.onclose = function(e)
      rec.closes = rec.closes + 1
      rec.close_event = e
    end
    if setup then setup(es, req, res) end
  end
  return s, rec
end

--- Opens a raw connection and sends a GET for an event stream; extra: header lines.
local function get(port, path, extra)
  local c, rec = H.raw(port)
  H.wait(function() return rec.opened or rec.closed end, 5, "connect")
  c:_raw_write(("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n%s\r\n")
    :format(path or "/events", extra or ""))
  return c, rec
end

--- Runs the loop until the response read so far satisfies cond(response); returns it.
local function wait_response(rec, cond, what)
  local r
  H.wait(function()
    r = parse_response(rec.data, rec.closed)
    return r ~= nil and cond(r)
  end, 5, what)
  return r
end

local function body_is(expected)
  return function(r) return r.body == expected end
end

describe("EventSource.isEventSource", function()
  local function req(method, accept)
    return { method = method, url = "/", httpVersion = "1.1", headers = { accept = accept } }
  end

  it("is true for a GET whose Accept lists text/event-stream", function()
    for _, accept in ipairs { "text/event-stream", "text/html, text/event-stream",
      "text/html,text/event-stream;q=0.9", "Text/Event-Stream", "*/*, text/event-stream ; q=1" } do
      assert.is_true(EventSource.isEventSource(req("GET", accept)), accept)
    end
  end)

  it("is false for other methods, other types, q=0 and no Accept", function()
    local cases = {
      req("POST", "text/event-stream"), req("HEAD", "text/event-stream"), req("GET", "text/html"),
      req("GET", "text/event-streams"), req("GET", "xtext/event-stream"),
      req("GET", "text/event-stream;q=0"), req("GET", "*/*"), req("GET", nil),
      { method = "GET" }, "GET",
    }
    for i, r in ipairs(cases) do
      assert.is_false(EventSource.isEventSource(r), "case " .. i)
    end
    assert.is_false(EventSource.isEventSource(nil))
  end)

  it("tells apart the requests a server gets", function()
    local s = H.server()
    local seen = {}
    s.onrequest = function(r, res)
      seen[#seen + 1] = EventSource.isEventSource(r)
      res:finish("x")
    end
    local _, rec = get(s.port)
    H.wait(function() return rec.closed or #seen == 1 end, 5, "request")
    local c2, rec2 = H.raw(s.port)
    H.wait(function() return rec2.opened end, 5, "connect")
    c2:_raw_write("GET / HTTP/1.1\r\nHost: h\r\nAccept: text/html\r\n\r\n")
    H.wait(function() return #seen == 2 end, 5, "second request")
    assert.same({ true, false }, seen)
  end)
end)

describe("EventSource.encode_event (the wire format)", function()
  local enc = EventSource.encode_event

  it("writes one data field per line, a space after the colon, and a blank line", function()
    assert.equal("data: hello\n\n", enc("hello"))
    assert.equal("data: a\ndata: b\n\n", enc("a\nb"))
    assert.equal("data: a\ndata: b\n\n", enc("a\rb"))
    assert.equal("data: a\ndata: b\n\n", enc("a\r\nb"))
    assert.equal("data: a\ndata:\ndata: b\n\n", enc("a\n\rb"))      -- LF then CR: two ends
    assert.equal("data: a\ndata:\ndata: b\n\n", enc("a\r\r\nb"))    -- CR then CRLF
    assert.equal("data: a\ndata:\ndata: b\n\n", enc("a\n\nb"))
    assert.equal("data: a\ndata:\n\n", enc("a\n"))
    assert.equal("data:\ndata: b\n\n", enc("\nb"))
    assert.equal("data:\n\n", enc(""))                               -- "data:" with nothing
    assert.equal("data:  lead\n\n", enc(" lead"))                    -- its own space stays
    assert.equal("data: x: y\n\n", enc("x: y"))
    assert.equal("data: 42\n\n", enc(42))
  end)

  it("writes event and id before the data; an empty id is id: alone", function()
    assert.equal("event: greeting\nid: 1\ndata: hi\n\n",
      enc("hi", { event = "greeting", id = "1" }))
    assert.equal("id: 7\ndata: x\n\n", enc("x", { id = 7 }))
    assert.equal("id:\ndata: x\n\n", enc("x", { id = "" }))          -- resets lastEventId
    assert.equal("event: a b:c\ndata: x\n\n", enc("x", { event = "a b:c" }))
    assert.equal("data: x\n\n", enc("x", {}))
  end)

  it("raises for line breaks in event or id, NUL in id, and bad arguments", function()
    local cases = {
      { "x", { event = "a\nb" } }, { "x", { event = "a\rb" } }, { "x", { event = "\r\n" } },
      { "x", { id = "1\n" } }, { "x", { id = "\r1" } }, { "x", { id = "1\0" } },
      { "x", { id = {} } }, { "x", { event = true } }, { "x", { retry = 5 } },
      { "x", "event" }, { nil }, { {} }, { true },
    }
    for i, c in ipairs(cases) do
      local ok, err = pcall(enc, c[1], c[2])
      assert.is_false(ok, "case " .. i)
      assert.truthy(tostring(err):find("send: ", 1, true), err)
    end
  end)

  it("round-trips through the standard's parser: data joined with LF, each field kept", function()
    local samples = {
      "", "one", "two\nlines", "cr\ronly", "crlf\r\nend", "trailing\n", "\n", "\r\n\r\n",
      " leading space", "  two spaces", ":colon first", "data: inside", "event: fake",
      "¡Hola, mundo! ☃", "tab\tand\0nul", "\n\nmiddle\n\n",
    }
    local seed, chars = 7, { "a", " ", ":", "\r", "\n", "é", "x", "\r\n" }
    for _ = 1, 200 do   -- and random mixes of line ends, spaces and colons
      local t = {}
      for j = 1, seed % 9 do t[j] = chars[(seed * j) % #chars + 1] end
      samples[#samples + 1] = table.concat(t)
      seed = (seed * 1103515245 + 12345) % 2147483648
    end
    local stream, want = {}, {}
    for i, data in ipairs(samples) do
      local id = i % 3 == 0 and tostring(i) or nil
      local event = i % 4 == 0 and "kind" .. i or nil
      stream[#stream + 1] = enc(data, { id = id, event = event })
      want[#want + 1] = { data = (data:gsub("\r\n", "\n"):gsub("\r", "\n")),
                          type = event or "message", id = id }
    end
    local got = parse_events(table.concat(stream)).events
    assert.equal(#want, #got)
    local last = ""
    for i, w in ipairs(want) do
      last = w.id or last
      assert.equal(w.data, got[i].data, "sample " .. i)
      assert.equal(w.type, got[i].type, "sample " .. i)
      assert.equal(last, got[i].lastEventId, "sample " .. i)
    end
  end)
end)

describe("the spec's HTTP reader", function()
  it("de-chunks a chunked body, and reads one delimited by the close", function()
    local chunked = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n" ..
      "Transfer-Encoding: chunked\r\n\r\n" .. "d\r\nretry: 5000\n\n\r\n" ..
      "5;ext=1\r\ndata:\r\n" .. "2\r\n x\r\n" .. "2\r\n\n\n\r\n" .. "0\r\n\r\n"
    local r = parse_response(chunked:sub(1, -3), false)
    assert.equal("retry: 5000\n\ndata: x\n\n", r.body)
    assert.is_false(r.complete)
    r = parse_response(chunked, false)
    assert.is_true(r.complete)
    assert.equal("text/event-stream", r.headers["content-type"])
    local plain = "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nretry: 5000\n\n"
    assert.is_false(parse_response(plain, false).complete)
    assert.equal("retry: 5000\n\n", parse_response(plain, true).body)
  end)
end)

describe("EventSource", function()
  after_each(H.cleanup)

  it("answers 200 with text/event-stream, no-cache, the user's headers, then retry", function()
    local s = es_server({ retry = 10, headers = { ["X-Custom"] = "yes", ["X-Num"] = 3 } })
    local _, rec = get(s.port)
    local r = wait_response(rec, body_is("retry: 10000\n\n"), "the head and retry line")
    assert.equal(200, r.status)
    assert.equal("text/event-stream", r.headers["content-type"])
    assert.equal("no-cache", r.headers["cache-control"])
    assert.equal("yes", r.headers["x-custom"])
    assert.equal("3", r.headers["x-num"])
  end)

  it("lets a user's header replace Cache-Control, in any case; retry rounds to ms", function()
    local s = es_server({ retry = 0.0504, headers = { ["cache-control"] = "no-store" } })
    local _, rec = get(s.port)
    local r = wait_response(rec, body_is("retry: 50\n\n"), "the retry line")
    assert.equal("no-store", r.headers["cache-control"])
    assert.equal("text/event-stream", r.headers["content-type"])
  end)

  it("sends faye's default retry of 5 s", function()
    local s = es_server()
    local _, rec = get(s.port)
    wait_response(rec, body_is("retry: 5000\n\n"), "the retry line")
  end)

  it("writes events byte for byte, readable by the standard's parser", function()
    local results = {}
    local s = es_server({ retry = 1 }, function(es)
      results[#results + 1] = es:send("hello", { event = "greeting", id = "1" })
      results[#results + 1] = es:send("line one\r\nline two\rline three\nfour")
      results[#results + 1] = es:send("")
      results[#results + 1] = es:send(" spaced: out", { id = "" })
      results[#results + 1] = es:send("¡Hola! ☃", { id = 99 })
    end)
    local _, rec = get(s.port)
    local expected = "retry: 1000\n\n" ..
      "event: greeting\nid: 1\ndata: hello\n\n" ..
      "data: line one\ndata: line two\ndata: line three\ndata: four\n\n" ..
      "data:\n\n" ..
      "id:\ndata:  spaced: out\n\n" ..
      "id: 99\ndata: ¡Hola! ☃\n\n"
    wait_response(rec, body_is(expected), "five events")
    assert.same({ true, true, true, true, true }, results)
    local parsed = parse_events(expected)
    assert.equal(1000, parsed.retry)
    assert.same({
      { type = "greeting", data = "hello", lastEventId = "1" },
      { type = "message", data = "line one\nline two\nline three\nfour", lastEventId = "1" },
      { type = "message", data = "", lastEventId = "1" },
      { type = "message", data = " spaced: out", lastEventId = "" },
      { type = "message", data = "¡Hola! ☃", lastEventId = "99" },
    }, parsed.events)
  end)

  it("sends a comment for ping(), and on the ping timer", function()
    local s, srec = es_server({ retry = 1, ping = 0.03 }, function(es)
      assert.is_true(es:ping())
    end)
    local _, rec = get(s.port)
    local r = wait_response(rec, function(r)
      return #r.body >= #"retry: 1000\n\n" + 3 * 3
    end, "three pings")
    assert.equal("retry: 1000\n\n:\n\n:\n\n:\n\n", r.body:sub(1, #"retry: 1000\n\n" + 9))
    assert.truthy(r.body:find("^retry: 1000\n\n[:\n]*$"), r.body)
    assert.equal(3, #parse_events(r.body:sub(1, #"retry: 1000\n\n" + 9)).comments)
    assert.equal(0, #parse_events(r.body).events)
    srec.streams[1]:close()   -- clears the timer: H.cleanup finds no handle left
    H.wait(function() return srec.closes == 1 end, 5, "onclose")
  end)

  it("runs a ping timer only while open, and none with ping = math.huge", function()
    local s = H.server()
    local timers, streams = {}, {}
    s.onrequest = function(req, res)
      local before = WebSocket.active_handles()
      local es = EventSource(req, res, req.url == "/quiet" and { ping = math.huge } or nil)
      timers[req.url] = WebSocket.active_handles() - before
      streams[req.url] = es
    end
    local _, rec = get(s.port, "/quiet")
    get(s.port, "/default")
    H.wait(function() return streams["/default"] and streams["/quiet"] end, 5, "two streams")
    assert.same({ ["/quiet"] = 0, ["/default"] = 1 }, timers)
    local before = WebSocket.active_handles()
    streams["/default"]:close()   -- the interval goes, the close event's one-shot comes
    assert.equal(before, WebSocket.active_handles())
    streams["/quiet"]:send("x")
    wait_response(rec, body_is("retry: 5000\n\ndata: x\n\n"), "the event")
  end)

  it("has url, and lastEventId from Last-Event-ID (a reconnecting client's)", function()
    local s, srec = es_server()
    get(s.port, "/events?topic=a", "Last-Event-ID: 42\r\n")
    get(s.port, "/fresh")
    H.wait(function() return #srec.streams == 2 end, 5, "two streams")
    table.sort(srec.streams, function(a, b) return a.url < b.url end)
    assert.equal("42", srec.streams[1].lastEventId)
    assert.equal("http://127.0.0.1/events?topic=a", srec.streams[1].url)
    assert.equal("", srec.streams[2].lastEventId)
    assert.equal("http://127.0.0.1/fresh", srec.streams[2].url)
  end)

  it("is OPEN once its head is written, CLOSED at close(); onclose fires later, once", function()
    local states, during, sends, srec = {}, nil, {}, nil
    local s
    s, srec = es_server({ ping = math.huge }, function(es)
      states[#states + 1] = es.readyState
      es:send("before")
      es:close()
      states[#states + 1] = es.readyState
      during = srec.closes
      es:close()   -- twice is fine
      sends[1] = { es:send("after") }
      sends[2] = { es:ping() }
      assert.equal(0, es.bufferedAmount)
    end)
    local _, rec = get(s.port)
    local r = wait_response(rec, function(r) return r.complete end, "the end of the response")
    assert.equal("retry: 5000\n\ndata: before\n\n", r.body)
    H.wait(function() return srec.closes == 1 end, 5, "onclose")
    H.drain()
    assert.same({ EventSource.OPEN, EventSource.CLOSED }, states)
    assert.same({ 0, 1, 2, 3 }, { EventSource.CONNECTING, EventSource.OPEN,
                                  EventSource.CLOSING, EventSource.CLOSED })
    assert.equal(0, during)
    assert.equal(1, srec.closes)
    assert.equal("close", srec.close_event.type)
    assert.equal(srec.streams[1], srec.close_event.target)
    assert.equal(nil, sends[1][1])
    assert.equal("ECLOSED", sends[1][3])
    assert.truthy(sends[1][2]:find("^ECLOSED: "))
    assert.equal("ECLOSED", sends[2][3])
  end)

  it("closes from a timer; the client sees the response end", function()
    local s, srec = es_server({ ping = math.huge }, function(es)
      WebSocket.setTimeout(function()
        es:send("late")
        es:close()
      end, 20)
    end)
    local _, rec = get(s.port)
    local r = wait_response(rec, function(r) return r.complete end, "the end of the response")
    assert.equal("retry: 5000\n\ndata: late\n\n", r.body)
    H.wait(function() return srec.closes == 1 end, 5, "onclose")
    assert.equal(EventSource.CLOSED, srec.streams[1].readyState)
  end)

  it("fires onclose and close listeners once when the client goes away", function()
    local listened, removed = 0, 0
    local s, srec = es_server({ ping = math.huge }, function(es)
      local function never() removed = removed + 1 end
      es:addEventListener("close", function(e)
        assert.equal("close", e.type)
        listened = listened + 1
        collectgarbage()
      end)
      es:addEventListener("close", never)
      es:removeEventListener("close", never)
    end)
    local c, rec = get(s.port)
    wait_response(rec, body_is("retry: 5000\n\n"), "the stream")
    local es = srec.streams[1]
    assert.equal(EventSource.OPEN, es.readyState)
    c:close()
    H.wait(function() return srec.closes == 1 and listened == 1 end, 5, "onclose")
    H.drain()
    assert.equal(1, srec.closes)
    assert.equal(1, listened)
    assert.equal(0, removed)
    assert.equal(EventSource.CLOSED, es.readyState)
    local ok, err, name = es:send("nobody")
    assert.is_nil(ok)
    assert.equal("ECLOSED", name)
    assert.truthy(err:find("^ECLOSED: "))
    es:close()   -- after the client left: nothing more
    H.drain()
    assert.equal(1, srec.closes)
  end)

  it("fires onclose once when the server closes", function()
    local s, srec = es_server({ ping = 0.05 })
    local _, rec = get(s.port)
    wait_response(rec, body_is("retry: 5000\n\n"), "the stream")
    s:close()
    H.wait(function() return srec.closes == 1 end, 5, "onclose")
    -- The connection ends (a chunked body, cut short: the client reconnects).
    H.wait(function() return rec.closed end, 5, "the connection closed")
    H.drain()
    assert.equal(1, srec.closes)
  end)

  it("keeps a stream that Lua forgot working, through collectgarbage()", function()
    local closes = 0
    local s = H.server()
    s.onrequest = function(req, res)
      local es = EventSource(req, res, { ping = 0.02 })   -- no reference kept
      es.onclose = function() closes = closes + 1; collectgarbage() end
    end
    local c, rec = get(s.port)
    local t = WebSocket.setInterval(function() collectgarbage() end, 5)
    wait_response(rec, function(r) return #parse_events(r.body).comments >= 3 end, "pings")
    WebSocket.clearInterval(t)
    c:close()
    H.wait(function() return closes == 1 end, 5, "onclose")
  end)

  it("runs every close listener when one raises, and reports the error", function()
    local errors, listened = {}, 0
    WebSocket.onhandlererror = function(err) errors[#errors + 1] = err end
    local s, srec = es_server({ ping = math.huge }, function(es)
      es:addEventListener("close", function() error("listener raises") end)
      es:addEventListener("close", function() listened = listened + 1 end)
    end)
    local c, rec = get(s.port)
    wait_response(rec, body_is("retry: 5000\n\n"), "the stream")
    c:close()
    H.wait(function() return listened == 1 end, 5, "the second listener")
    H.drain()
    WebSocket.onhandlererror = nil
    assert.equal(1, srec.closes)
    assert.equal(1, #errors)
    assert.truthy(errors[1]:find("listener raises", 1, true))
  end)

  it("raises for bad options, at the caller's line", function()
    local s = H.server()
    local errs, done = {}, false
    local bad = {
      { bogus = 1 }, { retry = 0 }, { retry = -1 }, { retry = "5" }, { retry = math.huge },
      { ping = 0 }, { ping = "x" }, { ping = 0 / 0 }, { headers = "X-A: b" },
      { headers = { ["X-A"] = "a\r\nb" } }, { headers = { ["bad name"] = "x" } }, "retry",
    }
    s.onrequest = function(req, res)
      for i, o in ipairs(bad) do
        local ok, err = pcall(function() local es = EventSource(req, res, o); return es end)
        errs[i] = not ok and err or "no error"
      end
      errs.nil_req = select(2, pcall(function() local es = EventSource(nil, res); return es end))
      errs.nil_res = select(2, pcall(function() local es = EventSource(req, nil); return es end))
      assert.is_false(res.headersSent)   -- nothing was written by a refused call
      res:write("already")
      errs.sent = select(2, pcall(function() local es = EventSource(req, res); return es end))
      res:finish()
      done = true
    end
    local _, rec = get(s.port)
    H.wait(function() return done end, 5, "the request")
    for i = 1, #bad do
      local err = tostring(errs[i])
      assert.truthy(err:find("eventsource_spec.lua:%d+: "), "case " .. i .. ": " .. err)
    end
    assert.truthy(errs[1]:find('unknown option "bogus"', 1, true))
    assert.truthy(errs[2]:find("option retry must be", 1, true))
    assert.truthy(errs[6]:find("option ping must be", 1, true))
    assert.truthy(errs[10]:find("CR, LF or NUL", 1, true))
    assert.truthy(errs.nil_req:find("eventsource_spec.lua:%d+: .*req must be"))
    assert.truthy(errs.nil_res:find("eventsource_spec.lua:%d+: .*res must be"))
    assert.truthy(errs.sent:find("eventsource_spec.lua:%d+: .*already sent"))
    wait_response(rec, function(r) return r.complete end, "the plain response")
  end)

  it("raises on misuse in send, at the caller's line, open or closed", function()
    local errs = {}
    local s = es_server({ ping = math.huge }, function(es)
      errs[1] = select(2, pcall(function() es:send("x", { id = "a\nb" }) end))
      errs[2] = select(2, pcall(function() es:send({}) end))
      errs[3] = select(2, pcall(function() es.send("x") end))
      es:close()
      errs[4] = select(2, pcall(function() es:send("x", { event = "\r" }) end))
    end)
    get(s.port)
    H.wait(function() return #errs == 4 end, 5, "the request")
    for i = 1, 4 do assert.truthy(errs[i]:find("eventsource_spec.lua:%d+: "), errs[i]) end
    assert.truthy(errs[1]:find("id must not contain CR, LF or NUL", 1, true))
    assert.truthy(errs[2]:find("data must be a string", 1, true))
    assert.truthy(errs[3]:find("with a colon", 1, true))
  end)

  it("makes a stream on a response whose client has gone: CLOSED, onclose once", function()
    local s = H.server()
    local held, gone, closes, result
    s.onrequest = function(req, res)
      held = { req, res }
      res.onclose = function() gone = true end
    end
    local c, rec = get(s.port)
    H.wait(function() return held end, 5, "the request")
    c:close()
    H.wait(function() return gone end, 5, "the response closed")
    local es = EventSource(held[1], held[2])
    es.onclose = function() closes = (closes or 0) + 1 end
    assert.equal(EventSource.CLOSED, es.readyState)
    result = { es:send("x") }
    H.wait(function() return closes == 1 end, 5, "onclose")
    H.drain()
    assert.equal(1, closes)
    assert.equal("ECLOSED", result[3])
    assert.is_true(rec.closed)
  end)
end)

describe("EventSource back-pressure", function()
  after_each(H.cleanup)

  -- A client that does not read: events of 64 KiB until the stream queues past 1 MiB
  -- (the connection's high_water). Returns how many were sent.
  local function fill(es, chunk)
    for i = 1, 200 do
      assert.is_true(es:send(chunk))
      if es.bufferedAmount > 1024 * 1024 then return i end
    end
    error("bufferedAmount never passed high_water: " .. es.bufferedAmount)
  end

  -- A raw client that asks for a stream and does not read it (until c:resume()). Its
  -- bytes are kept in a list (a string grown per read would cost quadratic time over
  -- megabytes); bytes() joins them. Returns c, rec, bytes.
  local function paused_client(port)
    local c, rec = H.raw(port)
    local parts = {}
    c.ondata = function(e) parts[#parts + 1] = e.data end
    H.wait(function() return rec.opened end, 5, "connect")
    c:pause()
    c:_raw_write("GET /events HTTP/1.1\r\nHost: h\r\nAccept: text/event-stream\r\n\r\n")
    return c, rec, function() return table.concat(parts) end
  end

  -- Runs the loop until the response is complete or its connection closed; returns it.
  local function whole_response(rec, bytes)
    H.wait(function() return rec.closed or (parse_response(bytes(), false) or {}).complete end,
      10, "the end of the response")
    return parse_response(bytes(), true)
  end

  it("reports bufferedAmount and fires ondrain once the queue empties", function()
    local drains, at_drain = 0, nil
    local s, srec = es_server({ ping = math.huge }, function(es)
      es.ondrain = function(e)
        assert.equal("drain", e.type)
        drains = drains + 1
        at_drain = es.bufferedAmount
      end
    end)
    local c, rec, bytes = paused_client(s.port)
    H.wait(function() return #srec.streams == 1 end, 5, "the stream")
    local es = srec.streams[1]
    local chunk = string.rep("e", 65536)
    local n = fill(es, chunk)
    assert.is_true(es.bufferedAmount > 1024 * 1024)
    assert.equal(0, drains)
    c:resume()
    H.wait(function() return drains == 1 end, 10, "ondrain")
    assert.equal(0, at_drain)
    assert.is_true(es:send("end"))
    es:close()
    local r = whole_response(rec, bytes)
    local events = ("data: " .. chunk .. "\n\n"):rep(n) .. "data: end\n\n"
    assert.equal("retry: 5000\n\n" .. events, r.body)
    H.wait(function() return srec.closes == 1 end, 5, "onclose")
    assert.equal(1, drains)
  end)

  it("closes the stream when a drain handler raises", function()
    local errors = {}
    WebSocket.onhandlererror = function(err) errors[#errors + 1] = err end
    local s, srec = es_server({ ping = math.huge }, function(es)
      es.ondrain = function() error("drain raises") end
    end)
    local c, rec, bytes = paused_client(s.port)
    H.wait(function() return #srec.streams == 1 end, 5, "the stream")
    local n = fill(srec.streams[1], string.rep("d", 65536))
    c:resume()
    H.wait(function() return srec.closes == 1 end, 10, "onclose")
    WebSocket.onhandlererror = nil
    assert.equal(1, #errors)
    assert.truthy(errors[1]:find("drain raises", 1, true))
    assert.equal(EventSource.CLOSED, srec.streams[1].readyState)
    local r = whole_response(rec, bytes)
    assert.equal(13 + n * (65536 + 8), #r.body)
  end)

  it("returns nil, EBACKPRESSURE past max_buffered, then closes once", function()
    local result
    local s, srec = es_server({ ping = math.huge }, function(es)
      local chunk = string.rep("r", 256 * 1024)
      for _ = 1, 400 do
        local ok, err, name = es:send(chunk)
        if not ok then result = { err, name }; break end
      end
    end)
    paused_client(s.port)
    H.wait(function() return result end, 10, "a refused send")
    assert.equal("EBACKPRESSURE", result[2])
    assert.truthy(result[1]:find("^EBACKPRESSURE: "))
    H.wait(function() return srec.closes == 1 end, 5, "onclose")
    H.drain()
    assert.equal(1, srec.closes)
    local es = srec.streams[1]
    assert.equal(EventSource.CLOSED, es.readyState)
    assert.equal("ECLOSED", select(3, es:send("x")))
  end)
end)

describe("EventSource with real clients", function()
  after_each(H.cleanup)

  -- A client process; the sanitizer runtime preloaded for luaws is not the client's.
  local function spawn_peer(cmd)
    return H.spawn("exec env -u LD_PRELOAD " .. cmd)
  end

  local function wait_output(p, cond, what)
    local t = WebSocket.setInterval(function() end, 20)   -- wakes the loop to poll
    local ok, err = pcall(H.wait, function() return cond(p:output()) end, 10, what)
    WebSocket.clearInterval(t)
    if not ok then error(err .. "\npeer output:\n" .. p:output(), 2) end
  end

  it("streams to curl -N, byte for byte", function()
    local s, srec = es_server({ retry = 2, ping = math.huge }, function(es)
      es:send("hello", { event = "greeting", id = "1" })
      local n = 0
      local t
      t = WebSocket.setInterval(function()
        n = n + 1
        es:send("tick " .. n .. "\r\nsecond line", { id = tostring(n + 1) })
        if n == 3 then
          WebSocket.clearInterval(t)
          es:close()
        end
      end, 10)
    end)
    local p = spawn_peer(("curl -sSN --max-time 10 -H 'Accept: text/event-stream' " ..
      "-H 'Last-Event-ID: 5' http://127.0.0.1:%d/events"):format(s.port))
    local expected = "retry: 2000\n\nevent: greeting\nid: 1\ndata: hello\n\n" ..
      "id: 2\ndata: tick 1\ndata: second line\n\n" ..
      "id: 3\ndata: tick 2\ndata: second line\n\n" ..
      "id: 4\ndata: tick 3\ndata: second line\n\n"
    wait_output(p, function(out) return out == expected end, "curl's output")
    H.wait(function() return srec.closes == 1 end, 5, "onclose")
    assert.equal("5", srec.streams[1].lastEventId)
    assert.equal("text/event-stream", srec.requests[1].headers.accept)
  end)

  it("fires onclose once when curl goes away", function()
    local s, srec = es_server({ ping = 0.05 })
    local p = spawn_peer(("curl -sSN --max-time 10 -H 'Accept: text/event-stream' " ..
      "http://127.0.0.1:%d/events"):format(s.port))
    wait_output(p, function(out) return out:find("retry: 5000\n\n:\n\n", 1, true) end,
      "the stream and a ping")
    p:kill()
    H.wait(function() return srec.closes == 1 end, 5, "onclose")
    H.drain()
    assert.equal(1, srec.closes)
  end)

  it("is parsed by a WHATWG reader in Python, which reconnects with Last-Event-ID", function()
    local s, srec = es_server({ retry = 0.05, ping = math.huge }, function(es, req)
      if req.headers["last-event-id"] == nil then
        es:send("first\nline", { event = "greeting", id = "1" })
        es:ping()
        es:send("", { id = "2" })
        es:send("cr\rcrlf\r\nlf\nend")
        es:send(" spaced: colon", { id = "" })
        es:send("¡Hola, mundo! ☃", { event = "unicode", id = "3" })
        es:close()
      else
        es:send("welcome back " .. es.lastEventId, { id = "4" })
        es:close()
      end
    end)
    local p = spawn_peer(("%s %s/sse_reader.py http://127.0.0.1:%d/events --reconnect 1")
      :format(H.python, H.peers, s.port))
    p:wait_for('"event": "done"', 10)
    local messages, opens, retries, comments = {}, {}, {}, 0
    for _, e in ipairs(H.peer_events(p)) do
      if e.event == "message" then
        messages[#messages + 1] = { type = e.type, data = e.data, lastEventId = e.lastEventId }
      elseif e.event == "open" then opens[#opens + 1] = e
      elseif e.event == "retry" then retries[#retries + 1] = e.ms
      elseif e.event == "comment" then comments = comments + 1
      elseif e.event == "fail" then error("reader failed: " .. p:output())
      end
    end
    assert.same({
      { type = "greeting", data = "first\nline", lastEventId = "1" },
      { type = "message", data = "", lastEventId = "2" },
      { type = "message", data = "cr\ncrlf\nlf\nend", lastEventId = "2" },
      { type = "message", data = " spaced: colon", lastEventId = "" },
      { type = "unicode", data = "¡Hola, mundo! ☃", lastEventId = "3" },
      { type = "message", data = "welcome back 3", lastEventId = "4" },
    }, messages)
    assert.equal(2, #opens)
    assert.equal(200, opens[1].status)
    assert.equal("text/event-stream", opens[1].contentType)
    assert.equal("no-cache", opens[1].cacheControl)
    assert.equal("3", opens[2].sentLastEventId)
    assert.same({ 50, 50 }, retries)
    assert.equal(1, comments)
    H.wait(function() return srec.closes == 2 end, 5, "both onclose")
    assert.equal("", srec.streams[1].lastEventId)
    assert.equal("3", srec.streams[2].lastEventId)
  end)

  it("fires onclose once when the Python reader leaves mid-stream", function()
    local s, srec = es_server({ ping = math.huge }, function(es)
      es:send("one")
      es:send("two")
    end)
    local p = spawn_peer(("%s %s/sse_reader.py http://127.0.0.1:%d/events --leave-after 1")
      :format(H.python, H.peers, s.port))
    p:wait_for('"event": "done"', 10)
    local left = H.peer_event(p, "left")
    assert.truthy(left, p:output())
    H.wait(function() return srec.closes == 1 end, 5, "onclose")
    H.drain()
    assert.equal(1, srec.closes)
    assert.equal(EventSource.CLOSED, srec.streams[1].readyState)
  end)
end)

describe("examples/eventsource_server.lua", function()
  after_each(H.cleanup)

  it("serves its page, and ticks that carry on from Last-Event-ID", function()
    -- Run in this process with quick ticks; its WebSocket.run() returns at once and the
    -- spec runs the loop. Its print goes nowhere.
    local server
    local run, listen = WebSocket.run, WebSocket.listen
    finally(function() WebSocket.run, WebSocket.listen = run, listen end)
    WebSocket.run = function() end
    WebSocket.listen = function(o)   -- H.server's, so that H.cleanup closes it
      WebSocket.listen = listen
      server = H.server(o)
      return server
    end
    local env = setmetatable({ print = function() end, arg = { "0", "2", "0.01" } },
      { __index = _G })
    local chunk = assert(loadfile("examples/eventsource_server.lua"))
    if setfenv then
      setfenv(chunk, env)
    else
      chunk = assert(loadfile("examples/eventsource_server.lua", "t", env))
    end
    chunk()
    WebSocket.run, WebSocket.listen = run, listen
    assert.truthy(server)

    local c, rec = H.raw(server.port)
    H.wait(function() return rec.opened end, 5, "connect")
    c:_raw_write("GET / HTTP/1.1\r\nHost: h\r\nAccept: text/html\r\n\r\n")
    local page = wait_response(rec, function(r) return r.complete end, "the page")
    assert.equal(200, page.status)
    assert.equal("text/html; charset=utf-8", page.headers["content-type"])
    assert.truthy(page.body:find('new EventSource("/events")', 1, true))

    local _, first = get(server.port, "/events")
    local _, again = get(server.port, "/events", "Last-Event-ID: 5\r\n")
    local function events(r) return parse_events(r.body).events end
    local r1 = wait_response(first, function(r) return r.complete end, "the first stream")
    local r2 = wait_response(again, function(r) return r.complete end, "the second stream")
    assert.equal(2000, parse_events(r1.body).retry)
    assert.same({ "greeting", "tick", "tick" },
      { events(r1)[1].type, events(r1)[2].type, events(r1)[3].type })
    assert.equal("hello; tick 1 comes next", events(r1)[1].data)
    assert.same({ "1", "2" }, { events(r1)[2].lastEventId, events(r1)[3].lastEventId })
    assert.truthy(events(r1)[2].data:find("^%d%d:%d%d:%d%d UTC$"))
    assert.equal(3, #events(r1))
    assert.equal("hello; tick 6 comes next", events(r2)[1].data)
    assert.same({ "6", "7" }, { events(r2)[2].lastEventId, events(r2)[3].lastEventId })
  end)
end)
