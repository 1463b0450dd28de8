-- Shared by the soak scripts (loaded with dofile): counts every response status per wrk
-- thread and, when wrk ends, appends "stream<TAB>status<TAB>count" lines to $SOAK_COUNTS,
-- plus the socket errors. The stream name is $SOAK_NAME.
local threads = {}
function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads - 1)
end
statuses = {}
function count(status)
  statuses[status] = (statuses[status] or 0) + 1
end
function done(summary, latency, requests)
  local name = os.getenv("SOAK_NAME") or "wrk"
  local total = {}
  for _, t in ipairs(threads) do
    for k, v in pairs(t:get("statuses") or {}) do total[k] = (total[k] or 0) + v end
  end
  local out = assert(io.open(os.getenv("SOAK_COUNTS"), "a"))
  for k, v in pairs(total) do out:write(string.format("%s\t%s\t%d\n", name, tostring(k), v)) end
  local e = summary.errors
  out:write(string.format("%s\tsocket_errors\t%d\n", name, e.connect + e.read + e.write + e.timeout))
  out:close()
end
