local H = require "helper"
local WebSocket = H.WebSocket

describe("echo round trip", function()
  after_each(H.cleanup)

  it("sends text and binary and closes cleanly", function()
    local s, srec = H.echo_server({ "chat" })
    local ws, rec = H.client("ws://127.0.0.1:" .. s.port .. "/x", { "chat" })
    H.wait(function() return rec.opens == 1 end, 5, "open")
    assert.equal("chat", ws.protocol)
    ws:send("hello")
    ws:send("\0\1\2", "binary")
    H.wait(function() return #rec.messages == 2 end, 5, "echoes")
    assert.equal("hello", rec.messages[1].data)
    assert.is_false(rec.messages[1].binary)
    assert.equal("\0\1\2", rec.messages[2].data)
    assert.is_true(rec.messages[2].binary)
    ws:close(4000, "bye")
    H.wait(function() return #rec.closes == 1 and #srec.closes == 1 end, 5, "close")
    assert.same({ 4000, "bye", true }, { rec.closes[1].code, rec.closes[1].reason, rec.closes[1].wasClean })
    assert.same({ 4000, "bye", true }, { srec.closes[1].code, srec.closes[1].reason, srec.closes[1].wasClean })
  end)
end)
