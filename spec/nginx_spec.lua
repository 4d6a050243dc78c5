-- luaws behind nginx (examples/nginx/): a luaws server as the upstream of nginx's
-- proxy_pass with the upgrade headers, and luaws clients through it, over ws:// and over
-- wss:// with TLS ended at nginx. Each test starts its own nginx on 127.0.0.1, with the
-- example's config filled in (free ports, a temporary prefix), as a child that does not
-- daemonize, and stops it after.
local H = require "helper"
local WebSocket = H.WebSocket
local deflate = require "luaws.deflate"

local function sh(cmd)
  local ok = os.execute(cmd)
  return ok == true or ok == 0
end

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

local function write(path, s)
  local f = assert(io.open(path, "wb"))
  f:write(s)
  f:close()
end

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

local poll = H.poll   -- (cond reads files)

-- Ports nginx can listen on: what the kernel hands a listener on port 0, closed again.
-- (nginx's config needs numbers; a port taken meanwhile makes nginx fail, and the test
-- tries again.)
local function free_ports(n)
  local ports, servers = {}, {}
  for i = 1, n do
    servers[i] = assert(WebSocket.listen { host = "127.0.0.1", port = 0 })
    ports[i] = servers[i].port
  end
  for _, s in ipairs(servers) do s:close() end
  H.drain()
  return ports
end

local NGINX = os.getenv("NGINX") or "nginx"
if not sh("command -v " .. NGINX .. " >/dev/null 2>&1") and exists("/usr/sbin/nginx") then
  NGINX = "/usr/sbin/nginx"   -- /usr/sbin is not on every user's PATH
end

describe("nginx in front of luaws", function()
  local certs   -- folder, ending in "/"
  local nginx   -- the running one: { prefix, proc, http_port, https_port }

  setup(function()
    assert(sh("command -v " .. NGINX .. " >/dev/null 2>&1"),
      "nginx is not installed (scripts/deps.sh installs Debian's nginx)")
    certs = os.tmpname()
    os.remove(certs)
    assert(sh("sh scripts/make_certs.sh " .. certs .. " >/dev/null 2>&1"), "make_certs.sh failed")
    certs = certs .. "/"
  end)

  teardown(function()
    if certs then sh("rm -rf '" .. certs .. "'") end
  end)

  -- Stops nginx and waits (bounded) until it is gone: its pid file goes last.
  local function stop_nginx()
    if not nginx then return end
    local n = nginx
    nginx = nil
    if exists(n.prefix .. "/nginx.pid") then
      sh("kill -TERM $(cat '" .. n.prefix .. "/nginx.pid') 2>/dev/null")
      local ok = pcall(poll, function() return not exists(n.prefix .. "/nginx.pid") end, 5, "nginx to stop")
      if not ok then sh("kill -KILL $(cat '" .. n.prefix .. "/nginx.pid') 2>/dev/null") end
    end
    n.proc:kill()
    sh("rm -rf '" .. n.prefix .. "'")
  end

  after_each(function()
    stop_nginx()
    H.cleanup()
  end)

  -- Starts nginx with examples/nginx/nginx.conf in front of 127.0.0.1:upstream_port;
  -- sets nginx.http_port and nginx.https_port.
  local function start_nginx(upstream_port)
    local template = read("examples/nginx/nginx.conf")
    for _ = 1, 3 do
      local prefix = os.tmpname()
      os.remove(prefix)
      assert(sh("mkdir -p '" .. prefix .. "'"))
      local ports = free_ports(2)
      local values = { PREFIX = prefix, UPSTREAM_PORT = upstream_port, HTTP_PORT = ports[1],
                       HTTPS_PORT = ports[2], CERT = certs .. "server.pem", KEY = certs .. "server.key" }
      local conf = template:gsub("@(%u[%u_]*)@", function(name)
        return tostring(assert(values[name], "the template names @" .. name .. "@, unknown here"))
      end)
      write(prefix .. "/nginx.conf", conf)
      write(prefix .. "/luaws-proxy.conf", read("examples/nginx/luaws-proxy.conf"))
      -- exec: the pid H.spawn reports is nginx's own
      local proc = H.spawn(("exec %s -p '%s' -c '%s/nginx.conf' -e '%s/error.log' -g 'daemon off;'")
        :format(NGINX, prefix, prefix, prefix))
      nginx = { prefix = prefix, proc = proc, http_port = ports[1], https_port = ports[2] }
      -- nginx listens before it writes its pid file; a bad config or a taken port ends it.
      poll(function() return exists(prefix .. "/nginx.pid") or not proc:running() end, 10, "nginx to start")
      if proc:running() and exists(prefix .. "/nginx.pid") then return nginx end
      local log = proc:output() .. (exists(prefix .. "/error.log") and read(prefix .. "/error.log") or "")
      stop_nginx()
      if not log:find("Address already in use", 1, true) then error("nginx did not start:\n" .. log) end
    end
    error("nginx found no free ports in three tries")
  end

  -- An echo server as the upstream, with nginx in front; rec as H.echo_server's.
  local function proxied_echo(protocols, options)
    local s, rec = H.echo_server(protocols, options)
    s.onrequest = function(req, res)
      rec.last_request = req
      res:writeHead(200, { ["Content-Type"] = "text/plain" })
      res:finish("hello from luaws via " .. tostring(req.headers["x-forwarded-proto"]))
    end
    start_nginx(s.port)
    return s, rec
  end

  local function open_client(url, protocols, options)
    local ws, rec = H.client(url, protocols, options)
    H.wait(function() return rec.opens > 0 or #rec.closes > 0 end, 10, "open")
    assert.equal(1, rec.opens, "no open: " .. table.concat(rec.errors, "; "))
    return ws, rec
  end

  local function bytes(n)
    local t = {}
    for i = 1, n do t[i] = string.char((i * 7919) % 251) end
    return table.concat(t)
  end

  it("proxies ws:// upgrades: text, binary and a 1 MiB message, byte for byte", function()
    local _, srec = proxied_echo()
    local ws, rec = open_client("ws://127.0.0.1:" .. nginx.http_port .. "/chat")
    assert.equal(101, ws.statusCode)
    assert.matches("^nginx", ws.headers.server)
    local m = H.roundtrip(ws, rec, "hello ¡olé! 🦊")
    assert.same({ "hello ¡olé! 🦊", false }, { m.data, m.binary })
    local all = {}
    for i = 0, 255 do all[#all + 1] = string.char(i) end
    m = H.roundtrip(ws, rec, table.concat(all), "binary")
    assert.same({ table.concat(all), true }, { m.data, m.binary })
    local big = bytes(1024 * 1024)
    m = H.roundtrip(ws, rec, big, "binary", 20)
    H.assert_bytes(big, m.data, "1 MiB echo")
    assert.equal(3, #srec.messages)
    assert.same({}, rec.errors)
    assert.same({}, srec.errors)
  end)

  it("hands the server the upgrade headers nginx sets, and the client's subprotocol", function()
    local _, srec = proxied_echo({ "chat" })
    local ws = open_client("ws://127.0.0.1:" .. nginx.http_port .. "/room?x=1", { "other", "chat" })
    assert.equal("chat", ws.protocol)
    local req = srec.last_request
    assert.equal("/room?x=1", req.url)
    assert.equal("1.1", req.httpVersion)
    assert.equal("websocket", req.headers.upgrade)
    assert.equal("upgrade", req.headers.connection)
    assert.equal("127.0.0.1:" .. nginx.http_port, req.headers.host)
    assert.equal("127.0.0.1", req.headers["x-forwarded-for"])
    assert.equal("http", req.headers["x-forwarded-proto"])
    assert.equal("ws://127.0.0.1:" .. nginx.http_port .. "/room?x=1", srec.sockets[1].url)
  end)

  it("passes close codes and reasons both ways, cleanly", function()
    local s, srec = proxied_echo()
    local ws, rec = open_client("ws://127.0.0.1:" .. nginx.http_port .. "/")
    ws:close(4000, "client bye")
    H.wait(function() return #rec.closes > 0 and #srec.closes > 0 end, 10, "close")
    assert.same({ 4000, "client bye", true }, { rec.closes[1].code, rec.closes[1].reason, rec.closes[1].wasClean })
    assert.same({ 4000, "client bye", true }, { srec.closes[1].code, srec.closes[1].reason, srec.closes[1].wasClean })

    local _, rec2 = open_client("ws://127.0.0.1:" .. nginx.http_port .. "/")
    H.wait(function() return #srec.sockets == 2 end, 5, "the second server socket")
    srec.sockets[2]:close(4001, "server bye")
    H.wait(function() return #rec2.closes > 0 and #srec.closes > 1 end, 10, "close")
    assert.same({ 4001, "server bye", true }, { rec2.closes[1].code, rec2.closes[1].reason, rec2.closes[1].wasClean })
    assert.same({ 4001, "server bye", true }, { srec.closes[2].code, srec.closes[2].reason, srec.closes[2].wasClean })

    -- server:close() ends its sockets with 1001 (going away), through nginx too
    local _, rec3 = open_client("ws://127.0.0.1:" .. nginx.http_port .. "/")
    s:close()
    H.wait(function() return #rec3.closes > 0 end, 10, "close")
    assert.same({ 1001, true }, { rec3.closes[1].code, rec3.closes[1].wasClean })
    assert.same({}, rec.errors)
    assert.same({}, rec2.errors)
  end)

  it("negotiates permessage-deflate end to end (nginx passes the extension through)", function()
    local _, srec = proxied_echo(nil, { extensions = { deflate } })
    local ws, rec = open_client("ws://127.0.0.1:" .. nginx.http_port .. "/", nil,
      { extensions = { deflate.configure { clientNoContextTakeover = true } } })
    assert.equal("permessage-deflate; client_no_context_takeover", ws.extensions)
    assert.equal(ws.extensions, srec.sockets[1].extensions)
    local text = ("the quick brown fox jumps over the lazy dog; "):rep(5000)
    for _ = 1, 3 do
      local m = H.roundtrip(ws, rec, text)
      H.assert_bytes(text, m.data, "compressed echo")
    end
    assert.same({}, rec.errors)
  end)

  it("carries plain HTTP to onrequest on the same port, and keeps the client's connection", function()
    proxied_echo()
    local c, rec = H.raw(nginx.http_port)
    H.wait(function() return rec.opened or rec.closed end, 5, "connect")
    for i = 1, 2 do
      c:_raw_write("GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
      local r
      H.wait(function()
        r = H.http_response(rec.data, rec.closed)
        return r or rec.closed
      end, 5, "response " .. i)
      assert.is_table(r, "no response: " .. rec.data)
      assert.equal(200, r.status)
      assert.equal("hello from luaws via http", r.body)
      rec.data = rec.data:sub(r.length + 1)
    end
    assert.is_false(rec.closed)
  end)

  it("serves wss:// with TLS ended at nginx, verified against the test CA", function()
    local _, srec = proxied_echo()
    local url = "wss://localhost:" .. nginx.https_port .. "/secure"
    local ws, rec = open_client(url, nil, { tls = { cafile = certs .. "ca.pem" } })
    local m = H.roundtrip(ws, rec, "over TLS")
    assert.equal("over TLS", m.data)
    local big = bytes(256 * 1024)
    m = H.roundtrip(ws, rec, big, "binary", 20)
    H.assert_bytes(big, m.data, "256 KiB echo over TLS")
    -- luaws itself saw plain ws://, and nginx said the client came over https
    local req = srec.last_request
    assert.is_nil(req.tls)
    assert.equal("https", req.headers["x-forwarded-proto"])
    assert.equal("localhost:" .. nginx.https_port, req.headers.host)
    ws:close(4002, "tls bye")
    H.wait(function() return #rec.closes > 0 and #srec.closes > 0 end, 10, "close")
    assert.same({ 4002, "tls bye", true }, { rec.closes[1].code, rec.closes[1].reason, rec.closes[1].wasClean })
    assert.same({ 4002, "tls bye", true }, { srec.closes[1].code, srec.closes[1].reason, srec.closes[1].wasClean })
  end)

  it("refuses nginx's certificate when the client does not trust the CA", function()
    proxied_echo()
    local _, rec = H.client("wss://localhost:" .. nginx.https_port .. "/", nil,
      { tls = { cafile = certs .. "other-ca.pem" } })
    H.wait(function() return #rec.closes > 0 end, 10, "onclose")
    assert.equal(0, rec.opens)
    assert.matches("certificate verify failed", rec.errors[1])
    assert.equal(1006, rec.closes[1].code)
  end)

  it("broadcasts to twenty clients through nginx", function()
    local s = H.server()
    local sockets = {}
    s.onupgrade = function(req)
      local ws = H.track(WebSocket(req))
      ws.onopen = function() sockets[#sockets + 1] = ws end
    end
    start_nginx(s.port)
    local recs = {}
    for i = 1, 20 do
      local _, rec = H.client("ws://127.0.0.1:" .. nginx.http_port .. "/")
      recs[i] = rec
    end
    H.wait(function() return #sockets == 20 end, 10, "twenty sockets")
    assert.equal(20, WebSocket.broadcast(sockets, "to all"))
    assert.equal(20, WebSocket.broadcast(sockets, "\0\1\2", "binary"))
    H.wait(function()
      for _, rec in ipairs(recs) do if #rec.messages < 2 then return false end end
      return true
    end, 10, "every client's two messages")
    for _, rec in ipairs(recs) do
      assert.same({ "to all", false, "\0\1\2", true },
        { rec.messages[1].data, rec.messages[1].binary, rec.messages[2].data, rec.messages[2].binary })
      assert.same({}, rec.errors)
    end
  end)

  it("fails the client's handshake (502 from nginx) when luaws is not there", function()
    local port = free_ports(1)[1]   -- nothing listens on it
    start_nginx(port)
    local ws, rec = H.client("ws://127.0.0.1:" .. nginx.http_port .. "/")
    H.wait(function() return #rec.closes > 0 end, 10, "onclose")
    assert.equal(0, rec.opens)
    assert.same({ "unexpected response code: 502" }, rec.errors)
    assert.equal(502, ws.statusCode)   -- as faye's driver keeps it
    assert.same({ 1006, false }, { rec.closes[1].code, rec.closes[1].wasClean })
  end)
end)
