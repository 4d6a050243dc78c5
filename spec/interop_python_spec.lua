-- Interop with Python's websockets 10 (Debian's python3-websockets, installed by
-- scripts/deps.sh; always Debian's /usr/bin/python3), both directions.
local H = require "helper"

require("interop")({
  name = "python websockets",
  server = ("%s %s/py_server.py"):format(H.python, H.peers),
  client = ("%s %s/py_client.py"):format(H.python, H.peers),
  no_protocol = nil,       -- how the peer reports "no subprotocol" (JSON null)
  logs_pings = false,      -- websockets answers pings without telling the handler
}, getfenv and getfenv(1) or _ENV)
