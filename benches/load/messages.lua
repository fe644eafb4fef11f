-- Workload (a): a small (~1 KB) Anthropic Messages JSON POST (bodies/messages.json).
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "common.lua")
bench_request(dir .. "bodies/messages.json", {
  ["content-type"] = "application/json",
  ["anthropic-version"] = "2023-06-01",
})
