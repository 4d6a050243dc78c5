-- luaws inside other loops: luv's (a process of its own: luv must come first), and any
-- scheduler that can wait on a descriptor (cqueues, and lua-http's websocket client on
-- it), in this process.
local H = require "helper"
local WebSocket = H.WebSocket

local function lua_cmd(script, args)
  return ("LUA_CPATH=%q LUA_PATH=%q LD_PRELOAD=%q %s %s %s"):format(
    os.getenv("LUAWS_CPATH") or "build/lua5.4/?.so;;",
    os.getenv("LUAWS_LPATH") or "lua/?.lua;lua/?/init.lua;;",
    os.getenv("LUAWS_PRELOAD") or "", os.getenv("LUAWS_LUA") or "lua5.4", script, args or "")
end

local function has(module)
  return (pcall(require, module))
end

describe("luaws on luv's loop", function()
  after_each(H.cleanup)
  for _, order in ipairs { "luv-first", "luaws-first" } do
    it("shares luv's loop (" .. order .. "): uv.run and WebSocket.run drive both, and adopts a socket luv accepted", function()
      if not has("luv") then
        pending("luv (Debian's lua-luv) is not installed for " .. _VERSION)
        return
      end
      local p = H.spawn(lua_cmd("spec/embed/luv_check.lua", order) .. "; echo EXIT $?")
      p:wait_for("EXIT %d+", 20)
      local out = p:output()
      assert.matches("ok on luv's loop", out, 1, true)
      assert.matches("ok uv.run drives luaws", out, 1, true)
      assert.matches("ok WebSocket.run drives luv", out, 1, true)
      assert.matches("ok adopts a socket luv accepted", out, 1, true)
      assert.matches("done\nEXIT 0", out, 1, true)
      assert.is_nil(out:find("FAIL", 1, true), out)
    end)
  end
end)

describe("luaws driven by another scheduler", function()
  after_each(H.cleanup)

  it("exposes its loop as a pollable (descriptor, events, timeout)", function()
    local p = WebSocket.pollable()
    assert.is_true(p:pollfd() >= 0)
    assert.equal("r", p:events())
    local t = WebSocket.setTimeout(function() end, 250)
    local timeout = p:timeout()
    assert.is_true(timeout ~= nil and timeout <= 0.25, tostring(timeout))
    WebSocket.clearTimeout(t)
  end)

  it("runs a lua-http websocket client against a luaws server on one cqueues loop", function()
    if not (has("cqueues") and has("http.websocket")) then
      pending("cqueues and lua-http (Debian's lua-cqueues, lua-http) are not installed for " .. _VERSION)
      return
    end
    local cqueues = require "cqueues"
    local websocket = require "http.websocket"
    local s = H.server()
    s.onupgrade = function(req)
      local ws = WebSocket(req)
      ws.onmessage = function(e) ws:send("echo " .. e.data) end
    end
    local cq = cqueues.new()
    local done, got, kind = false, nil, nil
    cq:wrap(function()
      local p = WebSocket.pollable()
      while not done do
        WebSocket.step(false)
        cqueues.poll(p, 0.05)
      end
    end)
    cq:wrap(function()
      local ws = websocket.new_from_uri("ws://127.0.0.1:" .. s.port .. "/")
      assert(ws:connect(5))
      assert(ws:send("from lua-http"))
      got, kind = ws:receive(5)
      ws:close()
      done = true
    end)
    assert(cq:loop(10))
    assert.equal("echo from lua-http", got)
    assert.equal("text", kind)
  end)
end)
