-- Interop with Node's `ws` package (spec/peers, installed by scripts/deps.sh), both
-- directions. (ws fails a handshake where it offered protocols and got none back, by
-- design: the "no subprotocol" case has the peer offer none.)
local H = require "helper"

require("interop")({
  name = "node ws",
  server = ("%s %s/ws_server.js"):format(H.node, H.peers),
  client = ("%s %s/ws_client.js"):format(H.node, H.peers),
  no_protocol = "",        -- how the peer reports "no subprotocol"
  logs_pings = true,       -- the server peer prints the pings it gets
}, getfenv and getfenv(1) or _ENV)
