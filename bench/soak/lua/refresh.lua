-- Refresh-token rotation chains, every token used exactly once (as bench/system/lua/refresh.lua),
-- every status counted; any answer but 200 counts as "unexpected". Give each connection
-- several chains: wrk sometimes asks for a connection's first request twice, and the token
-- of the request it never sends is lost with its chain.
-- wrk ... -s refresh.lua -- TOKENS_FILE NTHREADS
dofile(os.getenv("SOAK_LUA") .. "/count.lua")
function init(args)
  local n = tonumber(args[2])
  pool = {}
  local i = 0
  for line in io.lines(args[1]) do
    if line ~= "" and i % n == tid then table.insert(pool, line) end
    i = i + 1
  end
  hdrs = { ["Content-Type"] = "application/x-www-form-urlencoded" }
end
function request()
  local t = table.remove(pool)
  if t == nil then t = "exhausted" end
  return wrk.format("POST", "/oauth/token", hdrs, "grant_type=refresh_token&refresh_token=" .. t)
end
unexpected = 0
function response(status, headers, body)
  count(status)
  if status ~= 200 then
    unexpected = unexpected + 1
    statuses["unexpected"] = unexpected
  end
  local t = body:match('"refresh_token":"([^"]+)"')
  if t then table.insert(pool, t) end
end
