-- Fixed GET with an Authorization header: wrk ... -s get_auth.lua -- PATH AUTHORIZATION
function init(args)
  wrk.path = args[1]
  wrk.headers["Authorization"] = args[2]
  req = wrk.format()
end
function request() return req end
