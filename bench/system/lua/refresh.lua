-- Refresh-token rotation, every token used exactly once.
-- wrk ... -s refresh.lua -- TOKENS_FILE NTHREADS
-- TOKENS_FILE holds one native refresh token per line. Thread i takes lines i, i+N, ...;
-- each response's new refresh_token goes back into the thread's pool, so every connection
-- keeps a chain going (pool size >= connections per thread).
local counter = 0
function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
end
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
  local t = body:match('"refresh_token":"([^"]+)"')
  if t then table.insert(pool, t) end
end
