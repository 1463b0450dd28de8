-- Refresh-token rotation chains, every token used exactly once (as bench/system/lua/refresh.lua),
-- every status counted. wrk ... -s refresh.lua -- TOKENS_FILE NTHREADS
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
function response(status, headers, body)
  count(status)
  local t = body:match('"refresh_token":"([^"]+)"')
  if t then table.insert(pool, t) end
end
