-- One fixed request, every status counted.
-- wrk ... -s fixed.lua -- METHOD PATH [AUTHORIZATION] [CONTENT_TYPE BODY]
dofile(os.getenv("SOAK_LUA") .. "/count.lua")
function init(args)
  local headers = {}
  if args[3] and args[3] ~= "" then headers["Authorization"] = args[3] end
  if args[4] then headers["Content-Type"] = args[4] end
  req = wrk.format(args[1], args[2], headers, args[5])
end
function request() return req end
function response(status, headers, body) count(status) end
