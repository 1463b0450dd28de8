-- A user's life, over and over, on one connection per thread (so each response answers the
-- request just sent): register a new account, log in (native), GET /auth/me, refresh at
-- /oauth/token, GET /auth/sessions with the new token, log out, and check that the logged-out
-- token is refused (401). A step that gets any other status than expected counts as
-- "unexpected" and restarts the flow. wrk -tN -cN ... -s flow.lua -- RUN_ID PASSWORD
dofile(os.getenv("SOAK_LUA") .. "/count.lua")
unexpected = 0
function init(args)
  run, password = args[1], args[2]
  step, n, access, refresh = 0, 0, nil, nil
  json = { ["Content-Type"] = "application/json" }
  form = { ["Content-Type"] = "application/x-www-form-urlencoded" }
end
local expected = { [0] = 201, 200, 200, 200, 200, 204, 401 }
function request()
  if step == 0 then
    n = n + 1
    email = string.format("soak-%s-%d-%d@soak.test", run, tid, n)
    return wrk.format("POST", "/auth/register", json,
      string.format('{"email":"%s","password":"%s"}', email, password))
  elseif step == 1 then
    return wrk.format("POST", "/auth/login", json,
      string.format('{"email":"%s","password":"%s","native":true}', email, password))
  elseif step == 2 or step == 6 then
    return wrk.format("GET", "/auth/me", { ["Authorization"] = "Bearer " .. access })
  elseif step == 3 then
    return wrk.format("POST", "/oauth/token", form, "grant_type=refresh_token&refresh_token=" .. refresh)
  elseif step == 4 then
    return wrk.format("GET", "/auth/sessions", { ["Authorization"] = "Bearer " .. access })
  else
    return wrk.format("POST", "/auth/logout", { ["Authorization"] = "Bearer " .. access })
  end
end
function response(status, headers, body)
  count(status)
  if status ~= expected[step] then
    unexpected = unexpected + 1
    statuses["unexpected"] = unexpected
    step = 0
    return
  end
  if step == 1 or step == 3 then
    access = body:match('"access_token":"([^"]+)"')
    refresh = body:match('"refresh_token":"([^"]+)"')
  end
  step = (step + 1) % 7
end
