-- Mints access tokens with the client_credentials grant and writes each to a file.
-- wrk ... -s mint.lua -- OUT_PREFIX BASIC_AUTHORIZATION
-- Thread i appends the access_token of every 200 response to OUT_PREFIX.i (one per line);
-- concatenate the files afterwards. Every token is a new, real token of the server.
local counter = 0
function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
end
function init(args)
  out = io.open(args[1] .. "." .. tid, "w")
  wrk.method = "POST"
  wrk.path = "/oauth/token"
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
  wrk.headers["Authorization"] = args[2]
  wrk.body = "grant_type=client_credentials"
  req = wrk.format()
end
function request() return req end
function response(status, headers, body)
  local t = body:match('"access_token":"([^"]+)"')
  if t then out:write(t, "\n") end
end
