-- Workload (b): an MCP Streamable HTTP `tools/call` JSON-RPC POST (bodies/mcp.json).
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "common.lua")
bench_request(dir .. "bodies/mcp.json", {
  ["content-type"] = "application/json",
  ["accept"] = "application/json, text/event-stream",
  ["mcp-protocol-version"] = "2025-06-18",
  ["mcp-session-id"] = "bench-session-1",
})
