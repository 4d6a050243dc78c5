-- Interop with Node's `ws` package (spec/peers, installed by scripts/deps.sh), both
-- directions. (ws fails a handshake where it offered protocols and got none back, by
-- design: the "no subprotocol" case has the peer offer none.)
local H = require "helper"

-- permessage-deflate: ws's perMessageDeflate options (peer), luaws.deflate's (luaws,
-- nil for its defaults), and the agreed value as luaws writes it. threshold 0 has ws
-- compress every message, as luaws's cases with threshold 0 do.
local ALL = "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
local deflate = {
  client = {   -- the peer is the client
    { name = "ws's offer", peer = { threshold = 0 }, expect = "permessage-deflate" },
    { name = "serverNoContextTakeover", peer = { serverNoContextTakeover = true, threshold = 0 },
      expect = "permessage-deflate; server_no_context_takeover" },
    { name = "clientNoContextTakeover", peer = { clientNoContextTakeover = true, threshold = 0 },
      expect = "permessage-deflate; client_no_context_takeover" },
    { name = "serverMaxWindowBits 10", peer = { serverMaxWindowBits = 10, threshold = 0 },
      expect = "permessage-deflate; server_max_window_bits=10" },
    { name = "serverMaxWindowBits 8", peer = { serverMaxWindowBits = 8, threshold = 0 },
      expect = "permessage-deflate; server_max_window_bits=8" },
    { name = "clientMaxWindowBits 9", peer = { clientMaxWindowBits = 9, threshold = 0 },
      expect = "permessage-deflate; client_max_window_bits=9" },
    { name = "every parameter, set by luaws", peer = { threshold = 0 },
      luaws = { serverNoContextTakeover = true, clientNoContextTakeover = true,
                serverMaxWindowBits = 11, clientMaxWindowBits = 12, threshold = 0 },
      expect = ALL .. "server_max_window_bits=11; client_max_window_bits=12" },
  },
  server = {   -- the peer is the server
    { name = "ws's defaults", peer = { threshold = 0 }, expect = "permessage-deflate" },
    { name = "serverNoContextTakeover", peer = { serverNoContextTakeover = true, threshold = 0 },
      expect = "permessage-deflate; server_no_context_takeover" },
    { name = "clientNoContextTakeover", peer = { clientNoContextTakeover = true, threshold = 0 },
      expect = "permessage-deflate; client_no_context_takeover" },
    { name = "serverMaxWindowBits 10", peer = { serverMaxWindowBits = 10, threshold = 0 },
      expect = "permessage-deflate; server_max_window_bits=10" },
    { name = "clientMaxWindowBits 10", peer = { clientMaxWindowBits = 10, threshold = 0 },
      expect = "permessage-deflate; client_max_window_bits=10" },
    { name = "clientMaxWindowBits 8", peer = { clientMaxWindowBits = 8, threshold = 0 },
      expect = "permessage-deflate; client_max_window_bits=8" },
    { name = "every parameter, offered by luaws", peer = { threshold = 0 },
      luaws = { serverNoContextTakeover = true, clientNoContextTakeover = true,
                serverMaxWindowBits = 12, clientMaxWindowBits = 11, threshold = 0 },
      expect = ALL .. "server_max_window_bits=12; client_max_window_bits=11" },
  },
}

require("interop")({
  name = "node ws",
  server = ("%s %s/ws_server.js"):format(H.node, H.peers),
  client = ("%s %s/ws_client.js"):format(H.node, H.peers),
  no_protocol = "",        -- how the peer reports "no subprotocol"
  logs_pings = true,       -- the server peer prints the pings it gets
  deflate = deflate,
}, getfenv and getfenv(1) or _ENV)
