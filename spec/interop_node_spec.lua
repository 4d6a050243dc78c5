-- Interop with Node's `ws` package (spec/peers, installed by scripts/deps.sh), both
-- directions. (ws fails a handshake where it offered protocols and got none back, by
-- design: the "no subprotocol" case has the peer offer none.)
local H = require "helper"

-- permessage-deflate: ws's perMessageDeflate options (peer), luaws.deflate's (luaws,
-- nil for its defaults), and the agreed value as luaws writes it. threshold 0 has ws
-- compress every message, as luaws's cases with threshold 0 do.
local ALL = "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "

-- ws's defaults, then each parameter on its own (the windows as given), then extra.
local function cases(sbits, cbits, extra)
  local list = {
    { name = "ws's defaults", peer = { threshold = 0 }, expect = "permessage-deflate" },
    { name = "serverNoContextTakeover", peer = { serverNoContextTakeover = true, threshold = 0 },
      expect = "permessage-deflate; server_no_context_takeover" },
    { name = "clientNoContextTakeover", peer = { clientNoContextTakeover = true, threshold = 0 },
      expect = "permessage-deflate; client_no_context_takeover" },
  }
  for _, bits in ipairs(sbits) do
    list[#list + 1] = { name = "serverMaxWindowBits " .. bits,
      peer = { serverMaxWindowBits = bits, threshold = 0 },
      expect = "permessage-deflate; server_max_window_bits=" .. bits }
  end
  for _, bits in ipairs(cbits) do
    list[#list + 1] = { name = "clientMaxWindowBits " .. bits,
      peer = { clientMaxWindowBits = bits, threshold = 0 },
      expect = "permessage-deflate; client_max_window_bits=" .. bits }
  end
  list[#list + 1] = extra
  return list
end

local deflate = {
  client = cases({ 10, 8 }, { 9 }, { name = "every parameter, set by luaws", peer = { threshold = 0 },
    luaws = { serverNoContextTakeover = true, clientNoContextTakeover = true,
              serverMaxWindowBits = 11, clientMaxWindowBits = 12, threshold = 0 },
    expect = ALL .. "server_max_window_bits=11; client_max_window_bits=12" }),
  server = cases({ 10 }, { 10, 8 }, { name = "every parameter, offered by luaws",
    peer = { threshold = 0 },
    luaws = { serverNoContextTakeover = true, clientNoContextTakeover = true,
              serverMaxWindowBits = 12, clientMaxWindowBits = 11, threshold = 0 },
    expect = ALL .. "server_max_window_bits=12; client_max_window_bits=11" }),
}

require("interop")({
  name = "node ws",
  server = ("%s %s/ws_server.js"):format(H.node, H.peers),
  client = ("%s %s/ws_client.js"):format(H.node, H.peers),
  no_protocol = "",        -- how the peer reports "no subprotocol"
  logs_pings = true,       -- the server peer prints the pings it gets
  deflate = deflate,
}, getfenv and getfenv(1) or _ENV)
