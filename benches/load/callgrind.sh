#!/usr/bin/env bash
# Instructions per request of the proxy path, counted by callgrind: the figures of
# docs/benchmarks.md ("Profile of the proxy path", the 80 % target row). Unlike run.sh's
# requests/s these do not depend on how fast the machine is or on what else it runs, so two builds
# can be compared on a shared 2-core VM. Six cases: JSON /v1/messages, MCP tools/call and an SSE
# stream of 100 events, each through tollgate without plugins (run.sh's tollgate-nop) and with the
# full chain (run.sh's tollgate-full: jwt, prompt-guard, token-ratelimit, secret-injection;
# mcp-rbac on MCP; the audit log to a file and OTLP traces to the bench upstream). The
# configurations come from tollgate-config.sh, the file run.sh uses, so both scripts measure the
# same gateway.
#
# Method, per case and run:
#   1. `valgrind --tool=callgrind` starts the release `tollgate` (1 worker thread; run.sh's
#      configuration with grace_period 0s); the bench upstream (`gateway/examples/
#      bench_upstream.rs`) and wrk run natively.
#   2. One curl request checks the answer (as run.sh does); then WARMUP_REQUESTS requests through
#      wrk. Start-up, valgrind's translation of the code on its first run, the first connections
#      to the upstream and every lazily built cache fall in this part.
#   3. Once the gateway is idle (its CPU time has stopped growing: the audit writer and the span
#      exporter have written what they had), `callgrind_control --dump` writes the counts so far
#      to a first file and zeroes them.
#   4. wrk sends exactly REQUESTS requests (STREAM_REQUESTS for SSE) on CONNECTIONS connections
#      and stops after their answers (common.lua's BENCH_REQUESTS: a connection that would send
#      one more is parked, so nothing is left in flight and every request counted is whole).
#   5. Idle again, a second dump: it holds the measured window only. Its total Ir divided by the
#      number of answers is the figure reported.
#   6. SIGTERM: the gateway drains (nothing is in flight) and exits 0 (docs/operations.md);
#      callgrind writes the shutdown's counts to a third file, which is not used.
# Why two dumps rather than "a run with N requests minus a run with none": the subtraction still
# charges the measured run with all that is done once, on the first requests (valgrind's code
# translation aside: upstream connections, lazy statics, regex caches, allocator arenas), so its
# figure moves with N, and it is the difference of two large counts of separate processes; the
# window holds steady-state requests only.
# Besides the requests, the window holds CONNECTIONS accepts and closes, the idle seconds before
# the dump, and work that goes by wall time rather than by request: Pingora's 10 ms timer thread
# (and its timer tree, where the requests of one 10 ms tick share an entry), jemalloc's time-based
# purging, the audit writer's 20 ms poll, the span exporter's 500 ms tick. Under callgrind a
# request takes ~50 times as long as natively, so that work weighs 1-2 % of a request here, more
# when the machine is busy and the window lasts longer: at aacaf14 the JSON request without
# plugins came to 106.8k instructions in a 90 s window (a busy machine) and to 105.9k in a 45 s
# one, about 20 instructions per request for each second more. The report gives each run's
# requests/s under callgrind: compare builds measured at similar rates, best alternately in one
# session. Two runs in one session differed by 0.01-0.3 %.
#
# Knobs (environment):
#   REQUESTS=12000         measured JSON and MCP requests per case
#   STREAM_REQUESTS=3000   measured SSE streams (each ~5x a JSON request's instructions)
#   WARMUP_REQUESTS=300    requests before the measured window (not counted)
#   CONNECTIONS=4          wrk connections (one wrk thread)
#   CASES="nop-json nop-mcp nop-sse full-json full-mcp full-sse"   a subset to run
#   RUNS=1                 measure every case this many times (the table shows each run and the
#                          spread); with RUNS=2 the six cases take about twice as long
#   SKIP_BUILD=1           use the binaries already in target/release ($CARGO_TARGET_DIR/release)
#   KEEP_WORK=1            keep the temp dir (configs, logs, callgrind files for callgrind_annotate)
#   OUT=results/callgrind.md   where the report is written (besides stdout)
#
# Needs valgrind (callgrind_control comes with it), wrk and curl. About 10 minutes for the six
# cases on a 2-vCPU VM; the counts do not depend on the time taken.

set -euo pipefail
export LC_ALL=C

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
REQUESTS=${REQUESTS:-12000}
STREAM_REQUESTS=${STREAM_REQUESTS:-3000}
WARMUP_REQUESTS=${WARMUP_REQUESTS:-300}
CONNECTIONS=${CONNECTIONS:-4}
CASES=${CASES:-nop-json nop-mcp nop-sse full-json full-mcp full-sse}
RUNS=${RUNS:-1}
OUT=${OUT:-$HERE/results/callgrind.md}
# tollgate-config.sh reads THREADS, UP and WORK.
THREADS=1

PROVIDER_KEY=bench-provider-key
JWT_SECRET=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')

log() { printf '[callgrind] %s\n' "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}

for tool in valgrind callgrind_control wrk curl; do
  command -v "$tool" >/dev/null || die "$tool is required (apt-get install -y valgrind wrk curl)"
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/tollgate-callgrind.XXXXXX")
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do
    stop_pid "$pid" KILL || true
  done
  if [ "${KEEP_WORK:-0}" = 1 ]; then
    log "kept $WORK"
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------------------------------------
# Binaries

. "$HERE/tollgate-config.sh"
bench_binaries

# ---------------------------------------------------------------------------------------------
# Processes

# A port nothing uses, below the kernel's ephemeral range: a port from that range can be taken
# between the check and the bind by any outgoing connection on the machine (other builds and
# tests run here too), and Pingora then retries the bind forever.
EPHEMERAL_LOW=$(awk '{ print $1 }' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
free_port() {
  local port
  while :; do
    port=$((10000 + RANDOM % (EPHEMERAL_LOW - 10000)))
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && continue
    if command -v ss >/dev/null; then
      [ -z "$(ss -Htan "( sport = :$port )" 2>/dev/null)" ] || continue
    fi
    echo "$port"
    return
  done
}

alive() { # PID: running (a zombie, exited but not yet waited for, is not)
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [ "${stat%% *}" != Z ]
}

stop_pid() { # PID [KILL]: SIGTERM, then SIGKILL after 60 s (at once with KILL); returns its status
  local pid=$1 rc=0
  if alive "$pid"; then
    if [ "${2:-}" = KILL ]; then
      kill -KILL "$pid" 2>/dev/null || true
    else
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 600); do
        alive "$pid" || break
        sleep 0.1
      done
      alive "$pid" && { log "pid $pid did not exit 60 s after SIGTERM: killing it"; kill -KILL "$pid" 2>/dev/null || true; }
    fi
  fi
  wait "$pid" 2>/dev/null || rc=$?
  return "$rc"
}

wait_http() { # URL SECONDS: until URL answers 2xx
  local code
  for _ in $(seq $(($2 * 5))); do
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$1" || true)
    case $code in 2*) return 0 ;; esac
    sleep 0.2
  done
  return 1
}

cpu_ticks() { # utime + stime of a process (all its threads), in clock ticks
  local stat fields
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
  read -ra fields <<<"${stat##*) }"
  echo $((fields[11] + fields[12]))
}

# wait_idle PID: until the process has used at most 2 ticks (20 ms at 100 Hz) of CPU in each of
# two consecutive seconds: the last answers are out and the background threads have flushed
# (the audit writer polls every 20 ms, the span exporter every 500 ms).
# Under callgrind even an idle gateway's timers cost a little CPU, hence not "zero".
wait_idle() {
  local pid=$1 a b quiet=0
  for _ in $(seq 120); do
    a=$(cpu_ticks "$pid")
    sleep 1
    b=$(cpu_ticks "$pid")
    if [ $((b - a)) -le 2 ]; then
      quiet=$((quiet + 1))
      [ "$quiet" -ge 2 ] && return 0
    else
      quiet=0
    fi
  done
  log "pid $pid still busy after 120 s: dumping anyway"
}

# ---------------------------------------------------------------------------------------------
# The upstream and the JWT (the same token run.sh's clients send)

UP_PORT=$(free_port)
BENCH_UPSTREAM_THREADS=1 setsid "$WORK/bin/bench_upstream" "127.0.0.1:$UP_PORT" \
  >"$WORK/upstream.log" 2>&1 </dev/null &
PIDS+=("$!")
UP="http://127.0.0.1:$UP_PORT"
wait_http "$UP/healthz" 10 || die "bench_upstream did not start ($WORK/upstream.log)"

JWT=$(BENCH_JWT_SECRET=$JWT_SECRET "$TOLLGATE" token --secret-env BENCH_JWT_SECRET --alg HS256 \
  --sub bench-user --iss tollgate-bench --aud tollgate --claim groups=bench --ttl 6h) ||
  die "tollgate token failed"

# tollgate_config FILE LISTEN ADMIN full|nop: run.sh's configurations

# ---------------------------------------------------------------------------------------------
# Workloads (the same scripts, bodies and headers as run.sh's gateway targets)

case_kind() { echo "${1%%-*}"; }     # nop | full
case_workload() { echo "${1#*-}"; }  # json | mcp | sse
workload_path() { case $1 in mcp) echo /mcp ;; *) echo /anthropic/v1/messages ;; esac; }
workload_script() { case $1 in json) echo messages.lua ;; mcp) echo mcp.lua ;; sse) echo stream.lua ;; esac; }
workload_body() { case $1 in json) echo messages.json ;; mcp) echo mcp.json ;; sse) echo stream.json ;; esac; }
workload_name() {
  case $1 in json) echo "JSON \`/v1/messages\`" ;; mcp) echo "MCP \`tools/call\`" ;; sse) echo "SSE stream (100 events)" ;; esac
}
workload_token() { # the JWT header run.sh sends (tollgate-nop ignores it)
  case $1 in mcp) echo "authorization: Bearer $JWT" ;; *) echo "x-api-key: $JWT" ;; esac
}
workload_requests() { case $1 in sse) echo "$STREAM_REQUESTS" ;; *) echo "$REQUESTS" ;; esac; }

check_once() { # URL WORKLOAD: one request with curl; the answer must be right (as in run.sh)
  local url=$1 w=$2 out="$WORK/check.out" code events
  local -a hdrs=(-H "content-type: application/json" -H "$(workload_token "$w")")
  [ "$w" = mcp ] && hdrs+=(-H "accept: application/json, text/event-stream"
    -H "mcp-protocol-version: 2025-06-18" -H "mcp-session-id: bench-session-1")
  code=$(curl -s -N -o "$out" -w '%{http_code}' --max-time 60 "${hdrs[@]}" \
    --data-binary "@$HERE/bodies/$(workload_body "$w")" "$url" || true)
  [ "$code" = 200 ] || { log "check: HTTP $code: $(head -c 200 "$out")"; return 1; }
  case $w in
  json) grep -q '"usage"' "$out" ;;
  mcp) grep -q '"result"' "$out" ;;
  sse)
    events=$(grep -c '^event:' "$out" || true)
    grep -q message_stop "$out" && [ "$events" -ge 100 ]
    ;;
  esac || { log "check: wrong answer: $(head -c 200 "$out")"; return 1; }
}

# drive URL WORKLOAD N OUTFILE: exactly N requests through wrk; prints how many were answered and
# how long that took (µs).
# Fails when wrk saw an error or a non-2xx answer, or ran into its -d safety limit before N answers.
drive() {
  local url=$1 w=$2 n=$3 out=$4 line requests duration errors
  BENCH_REQUESTS=$n BENCH_HEADERS="$(workload_token "$w")" \
    wrk -t 1 -c "$CONNECTIONS" -d 1800s --timeout 60s -s "$HERE/$(workload_script "$w")" "$url" \
    >"$out" 2>&1 || { log "wrk failed: $(tail -n 3 "$out" | tr '\n' ' ')"; return 1; }
  line=$(grep '^BENCH_RESULT' "$out") || { log "no result from wrk: $(tail -n 3 "$out" | tr '\n' ' ')"; return 1; }
  requests=$(sed 's/.* requests=\([0-9]*\).*/\1/' <<<"$line")
  duration=$(sed 's/.* duration_us=\([0-9]*\).*/\1/' <<<"$line")
  errors=$(awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^(connect|read|write|status|timeout)=/) { split($i, kv, "="); s += kv[2] } }
    END { print s + 0 }' <<<"$line")
  [ "$errors" = 0 ] || { log "wrk: $errors errors: $line"; return 1; }
  [ "$requests" -ge "$n" ] || { log "wrk stopped after $requests of $n answers: $line"; return 1; }
  echo "$requests $duration"
}

callgrind_total() { # FILE: the total Ir of one callgrind output file
  awk '/^(totals|summary):/ { print $2; found = 1; exit } END { if (!found) exit 1 }' "$1"
}

# dump PID FILE-PREFIX: ask callgrind for a dump (which also zeroes its counters); sets DUMPED to
# the file. callgrind_control goes through vgdb, which ptraces the process when all its threads
# sleep in a system call (epoll_wait); valgrind is started with --vgdb=yes (its default) for that.
dump() {
  local pid=$1 prefix=$2 n
  # With --callgrind-out-file=PREFIX callgrind numbers the requested dumps PREFIX.1, PREFIX.2, ...
  n=$(($(find "$(dirname "$prefix")" -maxdepth 1 -name "$(basename "$prefix").*" | wc -l) + 1))
  DUMPED="$prefix.$n"
  callgrind_control --dump "$pid" >"$WORK/callgrind_control.log" 2>&1 ||
    { log "callgrind_control failed: $(cat "$WORK/callgrind_control.log")"; return 1; }
  # The file is complete once it has its totals line.
  for _ in $(seq 300); do
    [ -f "$DUMPED" ] && callgrind_total "$DUMPED" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  log "no complete dump $DUMPED"
  return 1
}

# start_gateway CASE RUN nop|full PREFIX: tollgate under callgrind with run.sh's configuration,
# ready to serve; sets GATEWAY_PID and GATEWAY_PORT. Tries new ports when one was taken meanwhile.
start_gateway() {
  local c=$1 run=$2 kind=$3 prefix=$4 conf="$WORK/$1.toml" log="$WORK/$1.$2.log" port admin attempt pid
  for attempt in 1 2 3; do
    port=$(free_port)
    admin=$(free_port)
    while [ "$admin" = "$port" ]; do admin=$(free_port); done
    tollgate_config "$conf" "127.0.0.1:$port" "127.0.0.1:$admin" "$kind"
    BENCH_JWT_SECRET="$JWT_SECRET" BENCH_PROVIDER_KEY="$PROVIDER_KEY" \
      "$TOLLGATE" check -c "$conf" >"$WORK/$c.check" 2>&1 ||
      { log "tollgate check failed: $(head -c 300 "$WORK/$c.check")"; return 1; }
    : >"$WORK/audit.log"
    rm -f "$prefix" "$prefix".*
    # --callgrind-out-file without %p: the requested dumps are PREFIX.1, PREFIX.2, ...
    env RUST_LOG=warn BENCH_JWT_SECRET="$JWT_SECRET" BENCH_PROVIDER_KEY="$PROVIDER_KEY" \
      setsid valgrind --tool=callgrind --vgdb=yes --callgrind-out-file="$prefix" \
      "$TOLLGATE" run -c "$conf" >"$log" 2>&1 </dev/null &
    pid=$!
    PIDS+=("$pid")
    # Ready, or given up when a listener's port is taken (Pingora would retry it for ever) or the
    # process is gone; start-up under callgrind takes a few seconds, on a busy machine more.
    for _ in $(seq 900); do
      if [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$admin/readyz" || true)" = 200 ]; then
        GATEWAY_PID=$pid
        GATEWAY_PORT=$port
        return 0
      fi
      grep -q 'is in use' "$log" && break
      alive "$pid" || break
      sleep 0.2
    done
    log "tollgate did not become ready (attempt $attempt): $(grep -v '^==' "$log" | tail -n 3 | tr '\n' ' ' | head -c 400)"
    stop_pid "$pid" KILL || true
  done
  return 1
}

# measure CASE RUN: sets MEASURED_REQUESTS, MEASURED_US (wrk's time for them) and MEASURED_IR for
# one case; non-zero on any error
# (the gateway is then left to cleanup, which kills it).
measure() {
  local c=$1 run=$2 kind w prefix pid n rc url
  kind=$(case_kind "$c")
  w=$(case_workload "$c")
  n=$(workload_requests "$w")
  prefix="$WORK/callgrind.$c.$run"
  start_gateway "$c" "$run" "$kind" "$prefix" || return 1
  pid=$GATEWAY_PID
  url="http://127.0.0.1:$GATEWAY_PORT$(workload_path "$w")"
  check_once "$url" "$w" || return 1
  drive "$url" "$w" "$WARMUP_REQUESTS" "$WORK/wrk-warmup.$c.$run.txt" >/dev/null || return 1
  wait_idle "$pid"
  dump "$pid" "$prefix" || return 1
  read -r MEASURED_REQUESTS MEASURED_US <<<"$(drive "$url" "$w" "$n" "$WORK/wrk.$c.$run.txt")"
  [ -n "$MEASURED_US" ] || return 1
  wait_idle "$pid"
  dump "$pid" "$prefix" || return 1
  MEASURED_IR=$(callgrind_total "$DUMPED")
  rc=0
  stop_pid "$pid" || rc=$?
  [ "$rc" = 0 ] || log "tollgate under valgrind exited with status $rc (the measured dump is already written)"
  return 0
}

# ---------------------------------------------------------------------------------------------
# Run

RESULTS="$WORK/results.tsv"
: >"$RESULTS"
STARTED=$(date +%s)
for run in $(seq "$RUNS"); do
  for c in $CASES; do
    case $c in nop-json | nop-mcp | nop-sse | full-json | full-mcp | full-sse) ;; *) die "unknown case $c" ;; esac
    log "run $run/$RUNS: $c ($(workload_requests "$(case_workload "$c")") requests after $WARMUP_REQUESTS warm-up)"
    t0=$(date +%s)
    measure "$c" "$run" || die "$c failed (KEEP_WORK=1 keeps the logs in $WORK)"
    requests=$MEASURED_REQUESTS
    ir=$MEASURED_IR
    log "  $c: $ir instructions / $requests requests = $((ir / requests)) per request" \
      "($((requests * 1000000 / MEASURED_US)) requests/s under callgrind; $(($(date +%s) - t0)) s in all)"
    printf '%s\t%s\t%s\t%s\t%s\n' "$c" "$run" "$requests" "$ir" "$MEASURED_US" >>"$RESULTS"
  done
done
ELAPSED=$(($(date +%s) - STARTED))

# ---------------------------------------------------------------------------------------------
# Report

REV=$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
(cd "$ROOT" && git diff --quiet HEAD -- gateway plugins Cargo.toml Cargo.lock 2>/dev/null) || REV="$REV + uncommitted changes"
[ "${SKIP_BUILD:-0}" = 1 ] && REV="$REV (SKIP_BUILD=1: binaries built earlier, maybe from another revision)"

report() {
  echo "## Instructions per request, callgrind ($(date -u '+%Y-%m-%d %H:%M UTC'))"
  echo
  echo "tollgate $REV, release, 1 worker thread, run.sh's tollgate-nop / tollgate-full configurations;" \
    "$(valgrind --version); wrk 1 thread, $CONNECTIONS connections; $REQUESTS JSON/MCP requests," \
    "$STREAM_REQUESTS streams per case after $WARMUP_REQUESTS warm-up requests; counted between two" \
    "callgrind dumps (start-up, warm-up and shutdown excluded); $RUNS run(s), ${ELAPSED} s."
  echo
  awk -F'\t' -v runs="$RUNS" '
    function k(v,   s) { # thousands of instructions, one decimal, a comma above 999.9k
      s = sprintf("%.1f", v / 1000)
      if (v >= 999950) s = int(v / 1e6) "," substr(s, length(int(v / 1e6)) + 1)
      return s "k"
    }
    { per[$1, $2] = $4 / $3; rps[$1, $2] = $3 / ($5 / 1e6); if (!($1 in seen)) { seen[$1] = 1; order[++n] = $1 } }
    END {
      names["json"] = "JSON `/v1/messages`"; names["mcp"] = "MCP `tools/call`"; names["sse"] = "SSE stream (100 events)"
      head = "| workload | plugins |"; rule = "|---|---|"
      for (r = 1; r <= runs; r++) { head = head (runs > 1 ? " run " r " |" : " instructions per request |"); rule = rule "---|" }
      if (runs > 1) { head = head " mean | spread (max − min, instructions) |"; rule = rule "---|---|" }
      head = head " requests/s under callgrind |"; rule = rule "---|"
      print head; print rule
      split("json mcp sse", ws, " ")
      for (i = 1; i <= 3; i++) for (j = 1; j <= 2; j++) {
        c = (j == 1 ? "nop-" : "full-") ws[i]
        if (!(c in seen)) continue
        line = sprintf("| %s | %s |", names[ws[i]], j == 1 ? "none" : "full chain")
        lo = ""; hi = ""; sum = 0
        for (r = 1; r <= runs; r++) {
          v = per[c, r]; sum += v
          if (lo == "" || v < lo) lo = v
          if (hi == "" || v > hi) hi = v
          line = line " " k(v) " |"
        }
        mean[c] = sum / runs
        if (runs > 1) line = line sprintf(" %s | %d (%.2f %%) |", k(mean[c]), hi - lo, (hi - lo) / mean[c] * 100)
        rates = ""
        for (r = 1; r <= runs; r++) rates = rates (r > 1 ? " / " : "") sprintf("%.0f", rps[c, r])
        line = line " " rates " |"
        print line
      }
      first = 1
      for (i = 1; i <= 3; i++) if ((("nop-" ws[i]) in mean) && (("full-" ws[i]) in mean)) {
        # (parenthesised: a bare ">" in a printf argument list is an output redirection)
        if (first) { print ""; printf("No plugins / full chain (%s): ", (runs > 1 ? "means" : "instructions per request")); first = 0 } else printf(", ")
        printf("%s %s / %s = %.0f %%", (ws[i] == "json" ? "JSON" : toupper(ws[i])), k(mean["nop-" ws[i]]),
          k(mean["full-" ws[i]]), mean["nop-" ws[i]] / mean["full-" ws[i]] * 100)
      }
      if (!first) print "."
      print ""
      print "Work that goes by wall time (timers, the allocator'"'"'s purging) is in the counts too: a run at a lower"
      print "rate under callgrind (a busier machine) counts about 1 % more; compare runs of similar rates."
    }' "$RESULTS"
}

mkdir -p "$(dirname "$OUT")"
report | tee "$OUT"
if [ "${KEEP_WORK:-0}" = 1 ]; then
  log "callgrind files: $WORK/callgrind.CASE.RUN.N (N = 2: the measured window); e.g." \
    "callgrind_annotate --inclusive=yes $WORK/callgrind.full-json.1.2"
fi
