-- A worker for luaws serve (spec/workers_spec.lua): listens with reuseport on the port
-- in LUAWS_TEST_PORT and answers every message with "worker <LUAWS_WORKER> <message>".
-- It writes "ready <id> <n> <pid>" to stdout once listening. With LUAWS_TEST_FAIL set to
-- its id (or "all") it raises an error at start instead (lua exits 1); with
-- LUAWS_TEST_EXIT set, it exits at once with that status.
local WebSocket = require "luaws"

local id = os.getenv("LUAWS_WORKER") or "?"
if os.getenv("LUAWS_TEST_FAIL") == id or os.getenv("LUAWS_TEST_FAIL") == "all" then
  error("worker " .. id .. " fails on purpose")
end
if os.getenv("LUAWS_TEST_EXIT") then os.exit(tonumber(os.getenv("LUAWS_TEST_EXIT"))) end
local port = assert(tonumber(os.getenv("LUAWS_TEST_PORT")), "LUAWS_TEST_PORT")
local server = assert(WebSocket.listen { host = "127.0.0.1", port = port, reuseport = true })
server.onupgrade = function(req)
  local ws = WebSocket(req)
  ws.onmessage = function(e) ws:send("worker " .. id .. " " .. e.data) end
end
local stat = io.open("/proc/self/stat")
local pid = stat and stat:read("*l"):match("^(%d+)")
if stat then stat:close() end
io.stdout:write(("ready %s %s %s\n"):format(id, os.getenv("LUAWS_WORKERS"), pid or "?"))
io.stdout:flush()
WebSocket.run()
