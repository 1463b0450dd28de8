-- GET with a bearer token never sent before: wrk ... -s cold.lua -- PATH TOKENS_FILE NTHREADS
-- Thread i takes lines i, i+N, ... of TOKENS_FILE and sends each exactly once. When its share
-- runs out it sends no token at all, so the 401s show up as errors (mint more tokens).
local counter = 0
function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
end
function init(args)
  path = args[1]
  local n = tonumber(args[3])
  pool = {}
  local i = 0
  for line in io.lines(args[2]) do
    if line ~= "" and i % n == tid then pool[#pool + 1] = "Bearer " .. line end
    i = i + 1
  end
  next_i = 1
  hdrs = {}
end
function request()
  local t = pool[next_i]
  if t == nil then return wrk.format("GET", path) end
  pool[next_i] = nil
  next_i = next_i + 1
  hdrs["Authorization"] = t
  return wrk.format("GET", path, hdrs)
end
