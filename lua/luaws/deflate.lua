--- permessage-deflate (RFC 7692) for WebSocket(req, protocols, { extensions = { ... } })
--- and WebSocket.Client(url, protocols, { extensions = { ... } }).
--
--   local deflate = require "luaws.deflate"
--   WebSocket(req, nil, { extensions = { deflate } })               -- the defaults
--   local small = deflate.configure { serverNoContextTakeover = true, level = 1 }
--
-- configure{} returns a configured copy; a copy can be configured again. The names are
-- Node ws's: level, memLevel, strategy, serverMaxWindowBits, clientMaxWindowBits,
-- serverNoContextTakeover, clientNoContextTakeover, threshold.
local STRATEGIES = { default = 0, filtered = 1, huffman_only = 2, rle = 3, fixed = 4 }

local function whole(v, lo, hi)
  return type(v) == "number" and v == v and v % 1 == 0 and v >= lo and v <= hi
end

local CHECK = {
  level = { function(v) return whole(v, -1, 9) end, "a whole number from -1 to 9" },
  memLevel = { function(v) return whole(v, 1, 9) end, "a whole number from 1 to 9" },
  strategy = { function(v) return STRATEGIES[v] ~= nil end,
               '"default", "filtered", "huffman_only", "rle" or "fixed"' },
  serverMaxWindowBits = { function(v) return whole(v, 8, 15) end, "a whole number from 8 to 15" },
  clientMaxWindowBits = { function(v) return v == false or whole(v, 8, 15) end,
                          "a whole number from 8 to 15, or false (not offered)" },
  serverNoContextTakeover = { function(v) return type(v) == "boolean" end, "a boolean" },
  clientNoContextTakeover = { function(v) return type(v) == "boolean" end, "a boolean" },
  threshold = { function(v) return whole(v, 0, 2 ^ 53) end, "a whole number of bytes" },
}

-- The table the C core reads (csrc/lua/l_ext.c).
local function core_config(c)
  local cmw = c.clientMaxWindowBits
  return {
    name = "permessage-deflate",
    level = c.level, mem_level = c.memLevel,
    strategy = c.strategy and STRATEGIES[c.strategy],
    server_max_window_bits = c.serverMaxWindowBits,
    client_max_window_bits = cmw == false and 0 or cmw,
    server_no_context_takeover = c.serverNoContextTakeover,
    client_no_context_takeover = c.clientNoContextTakeover,
    threshold = c.threshold,
  }
end

local function make(config)
  local ext = { name = "permessage-deflate" }
  for k, v in pairs(config) do ext[k] = v end
  ext._core = core_config(config)
  --- configure{...}: a copy with these settings changed.
  function ext.configure(t)
    if type(t) ~= "table" then error("deflate.configure takes a table", 2) end
    local merged = {}
    for k, v in pairs(config) do merged[k] = v end
    for k, v in pairs(t) do
      local check = CHECK[k]
      if not check then error(string.format("unknown permessage-deflate option %q", tostring(k)), 2) end
      if not check[1](v) then
        error(string.format("permessage-deflate option %s must be %s", k, check[2]), 2)
      end
      merged[k] = v
    end
    return make(merged)
  end
  return ext
end

return make({})
