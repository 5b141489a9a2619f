-- wrk script for benches/http_load.rs. Arguments: MODE [PREFIX]
--   MODE "get":  GET the path given on wrk's URL, repeatedly.
--   MODE "put":  thread N PUTs the requests of PREFIX..N..".tsv" ("PATH<TAB>BODY" per line) in
--                order; the files name disjoint names, so no two threads race on a name's seq.
-- done() prints one parseable RESULT line.
local threads, counter = {}, 1

function setup(thread)
  thread:set("id", counter)
  table.insert(threads, thread)
  counter = counter + 1
end

function init(args)
  mode = args[1] or "get"
  ok2xx, non2xx = 0, 0
  reqs, idx = {}, 0
  if mode == "put" then
    local headers = { ["Content-Type"] = "application/json" }
    for line in io.lines(args[2] .. id .. ".tsv") do
      local path, body = line:match("^([^\t]+)\t(.*)$")
      if path then reqs[#reqs + 1] = wrk.format("PUT", path, headers, body) end
    end
    assert(#reqs > 0, "no requests in " .. args[2] .. id .. ".tsv")
  end
end

function request()
  if mode ~= "put" then return wrk.format("GET") end
  idx = idx % #reqs + 1
  return reqs[idx]
end

function response(status, headers, body)
  if status >= 200 and status < 300 then ok2xx = ok2xx + 1 else non2xx = non2xx + 1 end
end

function done(summary, latency, requests)
  local ok, bad = 0, 0
  for _, t in ipairs(threads) do ok = ok + t:get("ok2xx"); bad = bad + t:get("non2xx") end
  local e = summary.errors
  io.write(string.format("RESULT rps=%.1f p50_ms=%.3f p99_ms=%.3f ok2xx=%d non2xx=%d errors=%d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    ok, bad, e.connect + e.read + e.write + e.timeout))
end
