-- Raw DEFLATE (RFC 1951) in plain Lua, for specs that check compressed bytes on the
-- wire: a reader that keeps its window across messages as a permessage-deflate receiver
-- does and records how far back each message reached, and writers for stored and
-- fixed-Huffman blocks (what a hostile or handcrafted peer sends). Slow, and only for
-- test-sized data; arithmetic only, so that it runs on Lua 5.1 to 5.4 and LuaJIT.
local M = {}

local unpack_bytes = table.unpack or unpack

local POW = {}
do
  local p = 1
  for i = 0, 31 do POW[i] = p; p = p * 2 end
end

-- RFC 1951 3.2.5: base values and extra bits of the length and distance codes.
local LBASE = { 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59,
                67, 83, 99, 115, 131, 163, 195, 227, 258 }
local LEXT = { 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4,
               5, 5, 5, 5, 0 }
local DBASE = { 1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513,
                769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577 }
local DEXT = { 0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10,
               11, 11, 12, 12, 13, 13 }
local CLORDER = { 16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15 }

-- ---- reading ------------------------------------------------------------------------

local function bits(s, need)
  local val, cnt = s.bitbuf, s.bitcnt
  while cnt < need do
    local b = s.data:byte(s.pos)
    if not b then error("inflate: input ends inside a block", 0) end
    s.pos = s.pos + 1
    val = val + b * POW[cnt]
    cnt = cnt + 8
  end
  local p = POW[need]
  local r = val % p
  s.bitbuf = math.floor(val / p)
  s.bitcnt = cnt - need
  return r
end

-- Canonical Huffman decoding table from code lengths (lengths[0 .. n-1]), as zlib's puff.
local function huffman(lengths, n)
  local count, symbol, offs = {}, {}, { [1] = 0 }
  for len = 0, 15 do count[len] = 0 end
  for sym = 0, n - 1 do count[lengths[sym]] = count[lengths[sym]] + 1 end
  for len = 1, 14 do offs[len + 1] = offs[len] + count[len] end
  for sym = 0, n - 1 do
    local len = lengths[sym]
    if len ~= 0 then symbol[offs[len]] = sym; offs[len] = offs[len] + 1 end
  end
  return { count = count, symbol = symbol }
end

local function decode(s, h)
  local code, first, index = 0, 0, 0
  for len = 1, 15 do
    code = code + bits(s, 1)
    local count = h.count[len]
    if code - count < first then return h.symbol[index + (code - first)] end
    index = index + count
    first = (first + count) * 2
    code = code * 2
  end
  error("inflate: invalid Huffman code", 0)
end

local FIXED_LIT, FIXED_DIST
do
  local l = {}
  for i = 0, 143 do l[i] = 8 end
  for i = 144, 255 do l[i] = 9 end
  for i = 256, 279 do l[i] = 7 end
  for i = 280, 287 do l[i] = 8 end
  FIXED_LIT = huffman(l, 288)
  local d = {}
  for i = 0, 29 do d[i] = 5 end
  FIXED_DIST = huffman(d, 30)
end

local function codes(s, lit, dist)
  local out = s.out
  while true do
    local sym = decode(s, lit)
    if sym < 256 then
      s.n = s.n + 1
      out[s.n] = sym
    elseif sym == 256 then
      return
    else
      sym = sym - 257
      if sym >= 29 then error("inflate: invalid length code", 0) end
      local len = LBASE[sym + 1] + bits(s, LEXT[sym + 1])
      local dsym = decode(s, dist)
      if dsym >= 30 then error("inflate: invalid distance code", 0) end
      local d = DBASE[dsym + 1] + bits(s, DEXT[dsym + 1])
      if d > s.n then error("inflate: distance too far back", 0) end
      if d > s.max_distance then s.max_distance = d end
      if d > s.n - s.start + 1 then s.before_start = true end
      for _ = 1, len do
        s.n = s.n + 1
        out[s.n] = out[s.n - d]
      end
    end
  end
end

local function dynamic(s)
  local nlen, ndist, ncode = bits(s, 5) + 257, bits(s, 5) + 1, bits(s, 4) + 4
  local cl = {}
  for i = 0, 18 do cl[i] = 0 end
  for i = 1, ncode do cl[CLORDER[i]] = bits(s, 3) end
  local lencode = huffman(cl, 19)
  local lengths, i = {}, 0
  while i < nlen + ndist do
    local sym = decode(s, lencode)
    if sym < 16 then
      lengths[i] = sym; i = i + 1
    else
      local v, rep = 0, 0
      if sym == 16 then
        if i == 0 then error("inflate: repeat with no previous length", 0) end
        v, rep = lengths[i - 1], 3 + bits(s, 2)
      elseif sym == 17 then
        rep = 3 + bits(s, 3)
      else
        rep = 11 + bits(s, 7)
      end
      if i + rep > nlen + ndist then error("inflate: too many lengths", 0) end
      for _ = 1, rep do lengths[i] = v; i = i + 1 end
    end
  end
  local lit, dist = {}, {}
  for k = 0, nlen - 1 do lit[k] = lengths[k] end
  for k = 0, ndist - 1 do dist[k] = lengths[nlen + k] end
  codes(s, huffman(lit, nlen), huffman(dist, ndist))
end

local function stored(s)
  s.bitbuf, s.bitcnt = 0, 0          -- to the byte boundary (fewer than 8 bits are held)
  local a, b, c, d = s.data:byte(s.pos, s.pos + 3)
  if not d then error("inflate: input ends inside a stored block header", 0) end
  local len = a + b * 256
  if len + c + d * 256 ~= 65535 then error("inflate: stored block length check", 0) end
  s.pos = s.pos + 4
  if s.pos + len - 1 > #s.data then error("inflate: input ends inside a stored block", 0) end
  for k = 0, len - 1 do
    s.n = s.n + 1
    s.out[s.n] = s.data:byte(s.pos + k)
  end
  s.pos = s.pos + len
end

local Inflater = {}
Inflater.__index = Inflater

--- An inflater whose window carries over from message to message.
function M.inflater()
  return setmetatable({ out = {}, n = 0 }, Inflater)
end

--- Inflates one message's payload as RFC 7692 7.2.2 says (the 0x00 0x00 0xff 0xff tail
--- appended). Returns the text and { max_distance = longest back-reference,
--- before_start = whether a reference reached into an earlier message }. Raises on
--- corrupt data.
function Inflater:message(payload)
  local s = self
  s.data, s.pos, s.bitbuf, s.bitcnt = payload .. "\0\0\255\255", 1, 0, 0
  s.start, s.max_distance, s.before_start = s.n + 1, 0, false
  repeat
    if s.pos > #s.data and s.bitcnt == 0 then break end
    local final = bits(s, 1)
    local kind = bits(s, 2)
    if kind == 0 then stored(s)
    elseif kind == 1 then codes(s, FIXED_LIT, FIXED_DIST)
    elseif kind == 2 then dynamic(s)
    else error("inflate: invalid block type", 0) end
  until final == 1
  local t, CHUNK = {}, 4096
  for i = s.start, s.n, CHUNK do
    t[#t + 1] = string.char(unpack_bytes(s.out, i, math.min(i + CHUNK - 1, s.n)))
  end
  return table.concat(t), { max_distance = s.max_distance, before_start = s.before_start }
end

--- Inflates a single message with a fresh window.
function M.inflate(payload)
  return M.inflater():message(payload)
end

-- ---- writing ------------------------------------------------------------------------

local function le16(n) return string.char(n % 256, math.floor(n / 256)) end

--- Stored blocks (BFINAL 0) holding data, and the header byte of the empty stored block
--- whose LEN and NLEN the sender removes (RFC 7692 7.2.1, as in its example 7.2.3.3).
function M.stored(data)
  local t, i = {}, 1
  repeat
    local chunk = data:sub(i, i + 65534)
    t[#t + 1] = "\0" .. le16(#chunk) .. le16(65535 - #chunk) .. chunk
    i = i + 65535
  until i > #data
  t[#t + 1] = "\0"
  return table.concat(t)
end

-- A bit writer: values go in least significant bit first, Huffman codes most
-- significant bit first (RFC 1951 3.1.1).
local Writer = {}
Writer.__index = Writer

local function writer() return setmetatable({ t = {}, acc = 0, cnt = 0 }, Writer) end

function Writer:put(value, n)
  self.acc = self.acc + value * POW[self.cnt]
  self.cnt = self.cnt + n
  while self.cnt >= 8 do
    local b = self.acc % 256
    self.t[#self.t + 1] = string.char(b)
    self.acc = math.floor(self.acc / 256)
    self.cnt = self.cnt - 8
  end
end

function Writer:code(code, n)
  local r = 0
  for _ = 1, n do
    r = r * 2 + code % 2
    code = math.floor(code / 2)
  end
  self:put(r, n)
end

function Writer:bytes()
  if self.cnt > 0 then self:put(0, 8 - self.cnt) end
  return table.concat(self.t)
end

-- RFC 1951 3.2.6: the fixed literal/length code.
local function fixed_symbol(w, sym)
  if sym < 144 then w:code(0x30 + sym, 8)
  elseif sym < 256 then w:code(0x190 + sym - 144, 9)
  elseif sym < 280 then w:code(sym - 256, 7)
  else w:code(0xC0 + sym - 280, 8) end
end

local function find(base, v)
  local k = #base
  while base[k] > v do k = k - 1 end
  return k
end

--- A fixed-Huffman block (BFINAL 0) of items, each a string of literals or
--- { length, distance [, times] } (a back-reference, repeated `times`), then the empty
--- stored block's header byte as M.stored ends. `final` sets BFINAL instead (and
--- nothing follows).
function M.fixed(items, final)
  local w = writer()
  w:put(final and 1 or 0, 1)
  w:put(1, 2)
  for _, it in ipairs(items) do
    if type(it) == "string" then
      for i = 1, #it do fixed_symbol(w, it:byte(i)) end
    else
      local len, dist = it[1], it[2]
      local lk = len == 258 and 29 or find(LBASE, len)
      local dk = find(DBASE, dist)
      for _ = 1, it[3] or 1 do
        fixed_symbol(w, 256 + lk)
        w:put(len - LBASE[lk], LEXT[lk])
        w:code(dk - 1, 5)
        w:put(dist - DBASE[dk], DEXT[dk])
      end
    end
  end
  fixed_symbol(w, 256)
  if not final then w:put(0, 3) end
  return w:bytes()
end

return M
