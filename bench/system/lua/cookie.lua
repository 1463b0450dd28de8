-- GET with a session cookie drawn round-robin from a file of session ids.
-- wrk ... -s cookie.lua -- PATH IDS_FILE
function init(args)
  path = args[1]
  ids = {}
  for line in io.lines(args[2]) do if line ~= "" then table.insert(ids, line) end end
  i = 0
end
function request()
  i = i % #ids + 1
  return wrk.format("GET", path, { ["Cookie"] = "sid=" .. ids[i] })
end
