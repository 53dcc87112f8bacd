-- Oracle for test/differential/lua-pattern.test.ts: answers, for many
-- (pattern, subject) pairs, what Lua's own string.find, string.match and
-- string.gmatch do,
-- so the translator in src/firewall/lua-pattern.ts can be compared with the
-- real thing. One process serves a whole test run.
--
-- Usage: lua5.4 lua-pattern.lua
--
-- Input (stdin), repeated until end of input, one case each:
--   a header line "<p> <s> <w>\n" (three byte counts), then that many bytes of
--   pattern, subject and witness, raw. The witness is a second subject, only
--   used to see whether the pattern raises an error on it.
-- A header line "version" instead asks for _VERSION.
--
-- Output (stdout): one line per case, in input order, four fields separated
-- by tabs:
--   find     "nil" | "err <message as hex>" | "ok <start> <end> <captures…>"
--   match    "nil" | "err <message as hex>" | "ok <values…>"
--   gmatch   "err <message as hex>" | "ok <count> <first values…>"
--   witness  "<f><m><g>", each "e" (an error) or "o" (none): string.find,
--            string.match and a full string.gmatch loop on the witness
-- where a capture or value is "s<hex>" (a string) or "n<number>" (a
-- position capture). Everything is flushed after each line.

local function hex(s)
  return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

local function value(v)
  if type(v) == "number" then return "n" .. v end
  return "s" .. hex(v)
end

local function find(s, p)
  local r = table.pack(pcall(string.find, s, p))
  if not r[1] then return "err " .. hex(tostring(r[2])) end
  if r[2] == nil then return "nil" end
  local out = { "ok", r[2], r[3] }
  for i = 4, r.n do out[#out + 1] = value(r[i]) end
  return table.concat(out, " ")
end

local function match(s, p)
  local r = table.pack(pcall(string.match, s, p))
  if not r[1] then return "err " .. hex(tostring(r[2])) end
  if r[2] == nil then return "nil" end
  local out = { "ok" }
  for i = 2, r.n do out[#out + 1] = value(r[i]) end
  return table.concat(out, " ")
end

local function gmatch(s, p)
  local ok, res = pcall(function()
    local vals = {}
    -- The loop variable takes the first value of each step, as SCAN does.
    for v in s:gmatch(p) do vals[#vals + 1] = value(v) end
    return vals
  end)
  if not ok then return "err " .. hex(tostring(res)) end
  return "ok " .. #res .. (#res > 0 and (" " .. table.concat(res, " ")) or "")
end

local function raises(f, ...)
  return pcall(f, ...) and "o" or "e"
end

-- io.read(0) looks ahead for the end of input, which on a pipe waits for the
-- next case; an empty field must not read at all.
local function take(n)
  n = tonumber(n)
  if n == 0 then return "" end
  return assert(io.read(n), "input ended inside a case")
end

local function loop(s, p)
  for _ in s:gmatch(p) do end
end

while true do
  local header = io.read("l")
  if header == nil then break end
  if header == "version" then
    io.write(_VERSION, "\n")
  else
    local pl, sl, wl = header:match("^(%d+) (%d+) (%d+)$")
    assert(pl, "bad header: " .. header)
    local p = take(pl)
    local s = take(sl)
    local w = take(wl)
    io.write(find(s, p), "\t", match(s, p), "\t", gmatch(s, p), "\t",
      raises(string.find, w, p), raises(string.match, w, p), raises(loop, w, p), "\n")
  end
  io.stdout:flush()
end
