-- Interop with Python's websockets 10 (Debian's python3-websockets, installed by
-- scripts/deps.sh; always Debian's /usr/bin/python3), both directions.
local H = require "helper"

-- permessage-deflate: the peer's setting (true: websockets' own, compression="deflate";
-- else the keyword arguments of its Client/ServerPerMessageDeflateFactory), luaws.deflate's
-- (luaws, nil for its defaults), and the agreed value as luaws writes it. websockets
-- compresses every message. (CPython's zlib refuses to compress with wbits -8, so only
-- luaws's side uses a window of 8 bits.)
local ALL = "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "

-- websockets' own settings (first: what they agree to), then each parameter on its own,
-- then the extra cases.
local function cases(first, cbits, ...)
  local list = { first,
    { name = "server_no_context_takeover", peer = { server_no_context_takeover = true },
      expect = "permessage-deflate; server_no_context_takeover" },
    { name = "client_no_context_takeover", peer = { client_no_context_takeover = true },
      expect = "permessage-deflate; client_no_context_takeover" },
    { name = "server_max_window_bits 10", peer = { server_max_window_bits = 10 },
      expect = "permessage-deflate; server_max_window_bits=10" },
    { name = "client_max_window_bits " .. cbits, peer = { client_max_window_bits = cbits },
      expect = "permessage-deflate; client_max_window_bits=" .. cbits } }
  for _, case in ipairs { ... } do list[#list + 1] = case end
  return list
end

local deflate = {
  client = cases({ name = "websockets' offer", peer = true, expect = "permessage-deflate" }, 9,
    { name = "every parameter, set by luaws", peer = true,
      luaws = { serverNoContextTakeover = true, clientNoContextTakeover = true,
                serverMaxWindowBits = 11, clientMaxWindowBits = 12 },
      expect = ALL .. "server_max_window_bits=11; client_max_window_bits=12" },
    { name = "server_max_window_bits 8, set by luaws", peer = true,
      luaws = { serverMaxWindowBits = 8 }, expect = "permessage-deflate; server_max_window_bits=8" }),
  server = cases({ name = "websockets' defaults (windows 12)", peer = true,
      expect = "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12" }, 10,
    { name = "every parameter, offered by luaws", peer = { server_no_context_takeover = false },
      luaws = { serverNoContextTakeover = true, clientNoContextTakeover = true,
                serverMaxWindowBits = 12, clientMaxWindowBits = 11, threshold = 0 },
      expect = ALL .. "server_max_window_bits=12; client_max_window_bits=11" },
    { name = "client_max_window_bits 8, offered by luaws", peer = true,
      luaws = { clientMaxWindowBits = 8 },
      expect = "permessage-deflate; server_max_window_bits=12; client_max_window_bits=8" }),
}

require("interop")({
  name = "python websockets",
  server = ("%s %s/py_server.py"):format(H.python, H.peers),
  client = ("%s %s/py_client.py"):format(H.python, H.peers),
  no_protocol = nil,       -- how the peer reports "no subprotocol" (JSON null)
  logs_pings = false,      -- websockets answers pings without telling the handler
  deflate = deflate,
}, getfenv and getfenv(1) or _ENV)
