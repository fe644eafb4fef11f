-- Shared by the workload scripts (messages.lua, mcp.lua, stream.lua); loaded with dofile.
--
-- bench_request(body_file, headers): a fixed POST built once (wrk sends the same bytes on every
--   request). Extra headers come from the environment: BENCH_HEADERS="name: value" lines.
-- BENCH_RATE=N (requests/s for this wrk thread; run.sh uses -t 1): fixed-rate mode. Each request
--   is given the next slot of a schedule N per second with delay(); a connection whose answer
--   comes late sends late (wrk has no coordinated-omission correction, unlike wrk2), so at a rate
--   the target cannot keep up with the achieved rate drops below N and latencies are too kind.
-- BENCH_REQUESTS=N (callgrind.sh, with -t 1): send exactly N requests and stop after their N
--   answers instead of at the end of -d: a count, not a duration, so that every run under
--   callgrind does the same work however fast the machine is. A connection that would send the
--   (N+1)-th request is parked instead, so nothing is left in flight for the target to finish.
-- done(): prints one machine-readable line (latencies in microseconds) with p99.9, which wrk's
--   own --latency output lacks.

function bench_request(body_file, headers)
  local f = assert(io.open(body_file, "rb"))
  local body = f:read("*a")
  f:close()
  wrk.method = "POST"
  wrk.body = body
  for name, value in pairs(headers) do
    wrk.headers[name] = value
  end
  for line in (os.getenv("BENCH_HEADERS") or ""):gmatch("[^\n]+") do
    local name, value = line:match("^%s*([^:]+):%s*(.-)%s*$")
    if name then
      wrk.headers[name] = value
    end
  end
end

local rate = tonumber(os.getenv("BENCH_RATE") or "")
if rate and rate > 0 then
  local ffi = require("ffi")
  ffi.cdef([[
    typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
    int clock_gettime(int clock_id, bench_timespec *tp);
  ]])
  local ts = ffi.new("bench_timespec")
  local function now_ms()
    ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
    return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
  end
  local interval = 1000 / rate
  local next_at = nil

  function delay()
    local now = now_ms()
    if next_at == nil or next_at < now then
      next_at = now -- behind schedule: send now, do not burst to catch up
    end
    local wait = next_at - now
    next_at = next_at + interval
    return math.floor(wait)
  end
end

local limit = tonumber(os.getenv("BENCH_REQUESTS") or "")
if limit and limit > 0 then
  local ffi = require("ffi")
  ffi.cdef([[
    int getpid(void);
    int kill(int pid, int sig);
  ]])
  local sent, answered = 0, 0
  local paced = delay -- BENCH_RATE's schedule, if any

  -- wrk calls delay() once before each request it sends.
  function delay()
    sent = sent + 1
    if sent > limit then
      return 3600 * 1000 -- parked until the thread stops
    end
    return paced and paced() or 0
  end

  function response(status, headers, body)
    answered = answered + 1
    if answered == limit then
      wrk.thread:stop()
      -- wrk's main thread sleeps for the whole -d; its SIGINT handler ends that sleep, and a
      -- signal sent to the process goes to the main thread, which does not block it.
      ffi.C.kill(ffi.C.getpid(), 2)
    end
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH_RESULT requests=%d duration_us=%d p50=%.1f p75=%.1f p90=%.1f p99=%.1f p999=%.1f "
      .. "max=%.1f mean=%.1f connect=%d read=%d write=%d status=%d timeout=%d\n",
    summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(75), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9), latency.max, latency.mean,
    e.connect, e.read, e.write, e.status, e.timeout))
end
