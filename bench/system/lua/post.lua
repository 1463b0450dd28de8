-- Fixed POST: wrk ... -s post.lua -- PATH CONTENT_TYPE BODY [AUTHORIZATION]
function init(args)
  wrk.method = "POST"
  wrk.path = args[1]
  wrk.headers["Content-Type"] = args[2]
  wrk.body = args[3]
  if args[4] and args[4] ~= "" then wrk.headers["Authorization"] = args[4] end
  req = wrk.format()
end
function request() return req end
