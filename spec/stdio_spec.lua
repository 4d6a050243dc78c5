-- csrc/lua/l_stdio.c: core.reader(fd, fn) on descriptors of this process (a regular
-- file, a FIFO), so that the sanitizer and valgrind runs see it; spec/cli_spec.lua
-- drives it as stdin (pipes, files, a terminal) through the luaws command.
local H = require "helper"
local WebSocket = H.WebSocket
local core = require "luaws.core"

local function pid()
  local f = assert(io.open("/proc/self/stat"))
  local s = f:read("*l")
  f:close()
  return tonumber(s:match("^(%d+)"))
end

-- This process's descriptors open on path.
local function fds(path)
  local set = {}
  local p = io.popen("ls -l /proc/" .. pid() .. "/fd")
  for line in p:lines() do
    local fd, target = line:match("(%d+) %-> (.*)$")
    if target == path then set[tonumber(fd)] = true end
  end
  p:close()
  return set
end

-- io.open, and the descriptor it got (Lua's files do not tell theirs).
local function open(path, mode)
  local before = fds(path)
  local f = assert(io.open(path, mode))
  local fd
  for n in pairs(fds(path)) do
    if not before[n] then fd = n end
  end
  return f, assert(fd, "no new descriptor for " .. path)
end

-- A reader of fd that records chunks, the end and errors.
local function reader(fd, on_chunk)
  local rec = { chunks = {}, ended = false }
  local r, err = core.reader(fd, function(chunk, e, name)
    if chunk then
      rec.chunks[#rec.chunks + 1] = chunk
      if on_chunk then on_chunk(chunk, rec) end
    else
      assert(not rec.ended, "the end came twice")
      rec.ended, rec.err, rec.name = true, e, name
    end
  end)
  assert(r, err)
  rec.reader = r
  return rec
end

-- Runs the loop for ms milliseconds: for checking that nothing happens meanwhile.
local function run_for(ms)
  local done = false
  WebSocket.setTimeout(function() done = true end, ms)
  H.wait(function() return done end, 5, ms .. " ms")
end

describe("core.reader", function()
  local files = {}
  local function tmpfile(data)
    local path = os.tmpname()
    files[#files + 1] = path
    if data then
      local f = assert(io.open(path, "wb"))
      f:write(data)
      f:close()
    end
    return path
  end

  after_each(function()
    H.cleanup()
    for _, p in ipairs(files) do os.remove(p) end
    files = {}
  end)

  local data = {}
  for i = 1, 20000 do data[i] = ("line %05d\n"):format(i) end
  data = table.concat(data)   -- 220,000 bytes: four reads

  it("reads a regular file whole, in chunks, then ends once", function()
    local path = tmpfile(data)
    local f, fd = open(path, "rb")
    local rec = reader(fd)
    H.wait(function() return rec.ended end, 5, "the end")
    f:close()
    H.assert_bytes(data, table.concat(rec.chunks), "the file")
    assert.is_true(#rec.chunks >= 4)
    assert.is_nil(rec.err)
    rec.reader:close()   -- closed already: fine
  end)

  it("delivers nothing while paused, and the rest in order after resume", function()
    local path = tmpfile(data)
    local f, fd = open(path, "rb")
    local rec = reader(fd, function(_, rec)
      if #rec.chunks == 1 then rec.reader:pause() end
    end)
    H.wait(function() return #rec.chunks == 1 end, 5, "a chunk")
    run_for(50)
    assert.equal(1, #rec.chunks)
    rec.reader:resume()
    rec.reader:resume()   -- twice is fine
    H.wait(function() return rec.ended end, 5, "the end")
    H.assert_bytes(data, table.concat(rec.chunks), "the file")
    -- paused while its first read is in the thread pool: the chunk is held
    f:seek("set", 0)
    local held = reader(fd)
    held.reader:pause()
    run_for(50)
    assert.equal(0, #held.chunks)
    held.reader:resume()
    H.wait(function() return held.ended end, 5, "the end")
    f:close()
    H.assert_bytes(data, table.concat(held.chunks), "the file, read paused")
  end)

  it("reads a FIFO as bytes come, and ends when its writer closes", function()
    local path = tmpfile()
    os.remove(path)
    assert(os.execute("mkfifo " .. path))
    -- Open it read-only without blocking: a read-write handle first stands in as writer.
    local both = assert(io.open(path, "r+"))
    local r, fd = open(path, "rb")
    local w = assert(io.open(path, "wb"))
    both:close()
    local rec = reader(fd)
    w:write("one\n")
    w:flush()
    H.wait(function() return #rec.chunks == 1 end, 5, "the first bytes")
    assert.equal("one\n", rec.chunks[1])
    rec.reader:pause()
    w:write("two\n")
    w:flush()
    run_for(50)
    assert.equal(1, #rec.chunks)
    rec.reader:resume()
    H.wait(function() return #rec.chunks == 2 end, 5, "bytes after resume")
    assert.equal("two\n", rec.chunks[2])
    w:close()
    H.wait(function() return rec.ended end, 5, "the end")
    assert.is_nil(rec.err)
    r:close()
  end)

  it("stops at close() from inside its function, and on an error in it", function()
    local path = tmpfile(data)
    local f, fd = open(path, "rb")
    local rec = reader(fd, function(_, rec) rec.reader:close() end)
    local raised = 0
    local failing = assert(core.reader(fd, function(chunk)
      if chunk then raised = raised + 1; error("boom") end
    end))
    local seen
    WebSocket.onhandlererror = function(err) seen = err end
    H.wait(function() return raised == 1 end, 5, "the failing reader's chunk")
    run_for(50)
    WebSocket.onhandlererror = nil
    f:close()
    assert.equal(1, #rec.chunks)
    assert.is_false(rec.ended)   -- closed by the script: no end is reported
    assert.equal(1, raised)
    assert.matches("boom", seen)
    failing:pause()               -- on a closed reader: nothing, no error
    failing:close()
  end)

  it("returns EBADF for a descriptor that is not open, and raises for misuse", function()
    local r, err, name = core.reader(1000, function() end)
    assert.same({ nil, "EBADF" }, { r, name })
    assert.matches("^EBADF: ", err)
    assert.has_error(function() core.reader(0) end)
    assert.has_error(function() core.reader("zero", function() end) end)
  end)
end)
