-- Workload (c): the same Anthropic Messages POST with "stream": true (bodies/stream.json); the
-- upstream answers with 100 SSE events. wrk's latency is the time to the end of the stream.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "common.lua")
bench_request(dir .. "bodies/stream.json", {
  ["content-type"] = "application/json",
  ["accept"] = "text/event-stream",
  ["anthropic-version"] = "2023-06-01",
})
