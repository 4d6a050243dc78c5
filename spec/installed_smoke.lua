-- Run by scripts/rock_smoke.sh against the copy `luarocks make` installed.
local H = require "helper"

describe("the installed rock", function()
  after_each(H.cleanup)

  it("loads luaws.core from the LuaRocks tree", function()
    local path = package.searchpath("luaws.core", package.cpath)
    assert.truthy(path and path:find("rocktree", 1, true), path)
    assert.truthy(package.searchpath("luaws", package.path):find("rocktree", 1, true))
    assert.truthy(package.searchpath("luaws.eventsource", package.path):find("rocktree", 1, true))
    assert.is_true(require("luaws").EventSource.isEventSource {
      method = "GET", headers = { accept = "text/event-stream" } })
  end)

  it("echoes a message", function()
    local s = H.echo_server()
    local ws, rec = H.client("ws://127.0.0.1:" .. s.port .. "/")
    H.wait(function() return rec.opens == 1 end, 5, "open")
    ws:send("from the rock")
    H.wait(function() return #rec.messages == 1 end, 5, "echo")
    assert.equal("from the rock", rec.messages[1].data)
    ws:close()
    H.wait(function() return #rec.closes == 1 end, 5, "close")
  end)

  it("installs the luaws command: listen --once echoes, then exits", function()
    local bin = assert(os.getenv("LUAWS_BIN"), "LUAWS_BIN: the installed command")
    local p = H.spawn(bin .. " listen --once 0 </dev/null")
    local port = p:wait_for("listening on 127%.0%.0%.1:(%d+)")
    local ws, rec = H.client("ws://127.0.0.1:" .. port .. "/")
    assert.equal("from the command", H.roundtrip(ws, rec, "from the command").data)
    ws:close(1000)
    p:wait_for("client 1 closed 1000")
    H.wait(function() return #rec.closes == 1 and not p:running() end, 5, "the command's exit")
  end)
end)
