#!/usr/bin/env bash
# Load benchmark: the same workloads sent straight to a fast upstream (the floor), through
# tollgate (no plugins; full plugin chain), through nginx, and through the peer AI gateways
# LiteLLM and Portkey, on one machine in one run. Prints a Markdown table and writes it to
# benches/load/results/latest.md. Method and caveats: benches/load/README.md.
#
# Knobs (environment):
#   DURATION=10s        measured time of each wrk run (WARMUP=2s before each closed-loop run)
#   CONNECTIONS=16      wrk connections (one wrk thread)
#   THREADS=1           worker threads of tollgate, worker processes of nginx and LiteLLM
#   UPSTREAM_THREADS=1  worker threads of the bench upstream
#   TARGETS="direct tollgate-nop tollgate-full nginx litellm portkey"   a subset to run
#   SKIP_PEERS=1        leave out litellm and portkey (no venv / npm set-up)
#   RATE=40             fixed-rate runs of the JSON workloads, requests/s (0: no fixed-rate runs)
#   STREAM_RATE=10      fixed-rate runs of the SSE workload, streams/s (0: none)
#   HIGH_RATE=2000 HIGH_STREAM_RATE=200   a second fixed rate, for direct/tollgate/nginx only
#                       (the peers cannot keep up with it); 0: none
#   RATE_REPEATS=3      fixed-rate runs per row; the run with the median p99 is reported
#   TAIL_ROUNDS=5       the high rates are measured in interleaved rounds instead: every round
#                       runs direct, tollgate and nginx back to back (TAIL_DURATION=5s each), and
#                       the report gives the median over rounds of each target's p99 minus
#                       direct's in the same round; 0: sequential runs as for the low rate
#   TTFB_REQUESTS=200   sequential streams for the time-to-first-byte measure
#   PIN=auto            pin the target on its own cores, wrk + upstream + curl on the others
#                       (auto: when nproc > THREADS); 0 to never pin
#   SKIP_BUILD=1        use the binaries already in target/release ($CARGO_TARGET_DIR/release)
#   KEEP_WORK=1         keep the temp dir with configs and logs
#   OUT=results/latest.md   where the report is written (besides stdout)
#   QUIET_WAIT=300      wait up to this many seconds for the machine to be idle (under 10% busy)
#                       before the first run (for 10 s) and before each run (for 3 s); 0: never wait
#   BUSY_RETRIES=2      run again (after waiting) when other processes took more than 10% of the
#                       machine during a run

set -uo pipefail
export LC_ALL=C

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
CONNECTIONS=${CONNECTIONS:-16}
THREADS=${THREADS:-1}
UPSTREAM_THREADS=${UPSTREAM_THREADS:-1}
SKIP_PEERS=${SKIP_PEERS:-0}
RATE=${RATE:-40}
STREAM_RATE=${STREAM_RATE:-10}
HIGH_RATE=${HIGH_RATE:-2000}
HIGH_STREAM_RATE=${HIGH_STREAM_RATE:-200}
RATE_REPEATS=${RATE_REPEATS:-3}
TAIL_ROUNDS=${TAIL_ROUNDS:-5}
TAIL_DURATION=${TAIL_DURATION:-5s}
TTFB_REQUESTS=${TTFB_REQUESTS:-200}
PIN=${PIN:-auto}
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/tollgate/bench
LITELLM_VERSION=1.108.7
PORTKEY_VERSION=1.15.2
# @portkey-ai/gateway's streaming /v1/messages fails with `TypeError: immutable` on newer
# @hono/node-server releases (Portkey-AI/gateway#1389, #1550); 1.14.1 is the last one that works.
PORTKEY_HONO_NODE_SERVER=1.14.1
ALL_TARGETS="direct tollgate-nop tollgate-full nginx litellm portkey"
if [ "$SKIP_PEERS" = 1 ]; then
  ALL_TARGETS="direct tollgate-nop tollgate-full nginx"
fi
TARGETS=${TARGETS:-$ALL_TARGETS}
if [ "$SKIP_PEERS" = 1 ]; then
  TARGETS=$(for t in $TARGETS; do case $t in litellm | portkey) ;; *) echo "$t" ;; esac; done)
fi
TARGETS=$(echo "$TARGETS" | xargs)

PROVIDER_KEY=bench-provider-key
LITELLM_MASTER_KEY=sk-bench-$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
JWT_SECRET=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')

log() { printf '[bench] %s\n' "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/tollgate-load.XXXXXX")
PIDS=()
NOTES=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do
    stop_pid "$pid"
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
# Tools and builds

need_root_install() {
  local missing=()
  command -v wrk >/dev/null || missing+=(wrk)
  command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx)
  command -v curl >/dev/null || missing+=(curl)
  command -v taskset >/dev/null || missing+=(util-linux)
  [ ${#missing[@]} -eq 0 ] && return
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "installing ${missing[*]} with apt-get"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >"$WORK/apt.log" 2>&1 ||
      { apt-get update -qq >>"$WORK/apt.log" 2>&1 &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >>"$WORK/apt.log" 2>&1; } ||
      log "apt-get install failed (see $WORK/apt.log)"
  else
    log "missing ${missing[*]} and not root: install them (apt-get install -y ${missing[*]})"
  fi
}
need_root_install
command -v wrk >/dev/null || die "wrk is required"
command -v curl >/dev/null || die "curl is required"
NGINX_BIN=$(command -v nginx || echo /usr/sbin/nginx)

. "$HERE/tollgate-config.sh"
bench_binaries

# Peers, each in the cache dir, pinned versions; a failure is recorded and the peer skipped.
declare -A UNAVAILABLE=()
has_target() { [[ " $TARGETS " == *" $1 "* ]]; }

setup_litellm() {
  local venv="$CACHE/litellm-venv"
  if [ -x "$venv/bin/litellm" ] &&
    [ "$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("litellm"))' 2>/dev/null)" = "$LITELLM_VERSION" ]; then
    return 0
  fi
  log "installing litellm[proxy]==$LITELLM_VERSION into $venv (a few minutes)"
  mkdir -p "$CACHE"
  command -v python3 >/dev/null || { UNAVAILABLE[litellm]="python3 not found"; return 1; }
  { python3 -m venv "$venv" && "$venv/bin/pip" install -q "litellm[proxy]==$LITELLM_VERSION"; } \
    >"$CACHE/litellm-install.log" 2>&1 ||
    { UNAVAILABLE[litellm]="pip install failed: $(tail -n 1 "$CACHE/litellm-install.log")"; return 1; }
}

setup_portkey() {
  local dir="$CACHE/portkey"
  local pkg="$dir/node_modules/@portkey-ai/gateway/package.json"
  local hono="$dir/node_modules/@hono/node-server/package.json"
  command -v node >/dev/null && command -v npm >/dev/null ||
    { UNAVAILABLE[portkey]="node/npm not found"; return 1; }
  if [ -f "$pkg" ] && grep -q "\"version\": \"$PORTKEY_VERSION\"" "$pkg" &&
    grep -q "\"version\": \"$PORTKEY_HONO_NODE_SERVER\"" "$hono" 2>/dev/null; then
    return 0
  fi
  log "installing @portkey-ai/gateway@$PORTKEY_VERSION into $dir"
  mkdir -p "$dir"
  cat >"$dir/package.json" <<EOF
{"private": true,
 "dependencies": {"@portkey-ai/gateway": "$PORTKEY_VERSION"},
 "overrides": {"@hono/node-server": "$PORTKEY_HONO_NODE_SERVER"}}
EOF
  (cd "$dir" && npm install --no-audit --no-fund) >"$CACHE/portkey-install.log" 2>&1 ||
    { UNAVAILABLE[portkey]="npm install failed: $(tail -n 1 "$CACHE/portkey-install.log")"; return 1; }
}

has_target litellm && setup_litellm
has_target portkey && setup_portkey

# ---------------------------------------------------------------------------------------------
# CPU placement

NPROC=$(nproc)
TARGET_CPUS=""
LOAD_CPUS=""
if [ "$PIN" != 0 ] && command -v taskset >/dev/null && [ "$NPROC" -gt "$THREADS" ]; then
  TARGET_CPUS=0
  [ "$THREADS" -gt 1 ] && TARGET_CPUS="0-$((THREADS - 1))"
  LOAD_CPUS=$THREADS
  [ $((NPROC - 1)) -gt "$THREADS" ] && LOAD_CPUS="$THREADS-$((NPROC - 1))"
fi
# Prefix for the load generator's commands (wrk, curl).
LOAD_PREFIX=()
[ -n "$LOAD_CPUS" ] && LOAD_PREFIX=(taskset -c "$LOAD_CPUS")

# ---------------------------------------------------------------------------------------------
# Processes

free_port() {
  local port
  while :; do
    port=$((20000 + RANDOM % 20000))
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || { echo "$port"; return; }
  done
}

# start NAME CPUS CMD...: starts CMD in its own process group; sets STARTED_PID.
start() {
  local name=$1 cpus=$2
  shift 2
  if [ -n "$cpus" ]; then
    setsid taskset -c "$cpus" "$@" >"$WORK/$name.log" 2>&1 </dev/null &
  else
    setsid "$@" >"$WORK/$name.log" 2>&1 </dev/null &
  fi
  STARTED_PID=$!
  PIDS+=("$STARTED_PID")
}

alive() { # PID: running (a zombie, exited but not yet waited for, is not)
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [ "${stat%% *}" != Z ]
}

stop_pid() { # PID: TERM its process group, KILL after 5 s
  local pid=$1
  alive "$pid" || { wait "$pid" 2>/dev/null; return 0; }
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null
  for _ in $(seq 50); do
    alive "$pid" || break
    sleep 0.1
  done
  kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
}

# wait_http URL SECONDS: until URL answers 2xx (any status when 3rd arg is "any").
wait_http() {
  local url=$1 secs=$2 any=${3:-} code
  for _ in $(seq $((secs * 10))); do
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$url")
    if [ "$any" = any ] && [ "$code" != 000 ]; then return 0; fi
    case $code in 2*) return 0 ;; esac
    sleep 0.1
  done
  return 1
}

tree_pids() {
  local child
  echo "$1"
  for child in $(pgrep -P "$1"); do tree_pids "$child"; done
}
cpu_ticks() { # utime + stime of a process tree, in clock ticks
  local total=0 pid stat fields
  for pid in $(tree_pids "$1"); do
    stat=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
    read -ra fields <<<"${stat##*) }"
    total=$((total + fields[11] + fields[12]))
  done
  echo "$total"
}
reset_peak_rss() {
  local pid
  for pid in $(tree_pids "$1"); do echo 5 >"/proc/$pid/clear_refs" 2>/dev/null; done
}
peak_rss_kib() { # sum of VmHWM over the tree
  local total=0 pid kib
  for pid in $(tree_pids "$1"); do
    kib=$(awk '/^VmHWM/ {print $2}' "/proc/$pid/status" 2>/dev/null)
    total=$((total + ${kib:-0}))
  done
  echo "$total"
}
CLK_TCK=$(getconf CLK_TCK)
machine_busy_ticks() { # user + nice + system + irq + softirq + steal of all CPUs
  awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat
}
read_children_ticks() { # CHILD_TICKS: CPU time of this shell's waited-for children (wrk, curl)
  times >"$WORK/times" # in this shell, not in a $(...) subshell, which has no children of its own
  CHILD_TICKS=$(awk -v tck="$CLK_TCK" 'NR == 2 {
      split($0, f, /[ ms]+/); printf "%d\n", (f[1] * 60 + f[2] + f[3] * 60 + f[4]) * tck }' "$WORK/times")
}
now_ns() { date +%s%N; }

# ---------------------------------------------------------------------------------------------
# The upstream (on the load generator's cores) and the JWT

UP_PORT=$(free_port)
start upstream "$LOAD_CPUS" env BENCH_UPSTREAM_THREADS="$UPSTREAM_THREADS" "$UPSTREAM_BIN" "127.0.0.1:$UP_PORT"
UP_PID=$STARTED_PID
wait_http "http://127.0.0.1:$UP_PORT/healthz" 10 || die "bench_upstream did not start ($WORK/upstream.log)"
UP="http://127.0.0.1:$UP_PORT"

JWT=$(BENCH_JWT_SECRET=$JWT_SECRET "$TOLLGATE" token --secret-env BENCH_JWT_SECRET --alg HS256 \
  --sub bench-user --iss tollgate-bench --aud tollgate --claim groups=bench --ttl 6h) ||
  die "tollgate token failed"

# ---------------------------------------------------------------------------------------------
# Target configurations

# tollgate_config FILE LISTEN ADMIN full|nop: tollgate-config.sh (shared with callgrind.sh)

nginx_config() { # DIR PORT
  local dir=$1 port=$2
  mkdir -p "$dir/logs" "$dir/tmp"
  cat >"$dir/nginx.conf" <<EOF
worker_processes $THREADS;
daemon off;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $dir/tmp/body;
  proxy_temp_path $dir/tmp/proxy;
  fastcgi_temp_path $dir/tmp/fastcgi;
  uwsgi_temp_path $dir/tmp/uwsgi;
  scgi_temp_path $dir/tmp/scgi;
  keepalive_requests 1000000;
  upstream bench_upstream {
    server 127.0.0.1:$UP_PORT;
    keepalive 64;
    keepalive_requests 1000000;
  }
  server {
    listen 127.0.0.1:$port;
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_buffering off;
    location /anthropic/ {
      proxy_set_header x-api-key "$PROVIDER_KEY";
      proxy_pass http://bench_upstream/;
    }
    location = /mcp {
      proxy_set_header authorization "Bearer $PROVIDER_KEY";
      proxy_pass http://bench_upstream;
    }
  }
}
EOF
}

litellm_config() { # DIR
  local dir=$1
  cat >"$dir/litellm.yaml" <<EOF
model_list:
  - model_name: bench-model
    litellm_params:
      model: anthropic/bench-model
      api_base: $UP
      api_key: $PROVIDER_KEY
general_settings:
  master_key: $LITELLM_MASTER_KEY
litellm_settings:
  telemetry: false
EOF
  cat >"$dir/litellm-log.json" <<'EOF'
{"version": 1, "disable_existing_loggers": false,
 "formatters": {"plain": {"format": "%(levelname)s %(name)s %(message)s"}},
 "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain"}},
 "loggers": {"uvicorn": {"handlers": ["stderr"], "level": "WARNING"},
             "uvicorn.error": {"level": "WARNING"},
             "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": false}}}
EOF
}

# Per target: URL of each workload (empty: not run) and extra request headers.
declare -A URL_A URL_B URL_C HDR_LLM HDR_MCP TARGET_PID
TOKEN_HDRS_LLM="x-api-key: $JWT"
TOKEN_HDRS_MCP="authorization: Bearer $JWT"

gateway_routes() { # TARGET BASE_URL: the /anthropic and /mcp routes tollgate and nginx both serve
  URL_A[$1]="$2/anthropic/v1/messages"
  URL_B[$1]="$2/mcp"
  URL_C[$1]="$2/anthropic/v1/messages"
  HDR_LLM[$1]=$TOKEN_HDRS_LLM
  HDR_MCP[$1]=$TOKEN_HDRS_MCP
}

start_target() { # NAME: starts it, fills URL_*/HDR_*, sets TARGET_PID; non-zero on failure
  local t=$1 port admin dir
  case $t in
  direct)
    TARGET_PID[$t]=$UP_PID
    URL_A[$t]="$UP/v1/messages"
    URL_B[$t]="$UP/mcp"
    URL_C[$t]="$UP/v1/messages"
    HDR_LLM[$t]="x-api-key: $PROVIDER_KEY"
    HDR_MCP[$t]="authorization: Bearer $PROVIDER_KEY"
    ;;
  tollgate-nop | tollgate-full)
    port=$(free_port)
    admin=$(free_port)
    tollgate_config "$WORK/$t.toml" "127.0.0.1:$port" "127.0.0.1:$admin" "${t#tollgate-}"
    BENCH_JWT_SECRET="$JWT_SECRET" BENCH_PROVIDER_KEY="$PROVIDER_KEY" \
      "$TOLLGATE" check -c "$WORK/$t.toml" >"$WORK/$t.check" 2>&1 || {
      NOTES+=("$t: \`tollgate check\` failed: $(head -c 300 "$WORK/$t.check" | tr '\n' ' ')")
      return 1
    }
    start "$t" "$TARGET_CPUS" env RUST_LOG=warn BENCH_JWT_SECRET="$JWT_SECRET" \
      BENCH_PROVIDER_KEY="$PROVIDER_KEY" "$TOLLGATE" run -c "$WORK/$t.toml"
    TARGET_PID[$t]=$STARTED_PID
    wait_http "http://127.0.0.1:$admin/readyz" 20 || return 1
    gateway_routes "$t" "http://127.0.0.1:$port"
    ;;
  nginx)
    port=$(free_port)
    dir="$WORK/nginx"
    nginx_config "$dir" "$port"
    start nginx "$TARGET_CPUS" "$NGINX_BIN" -p "$dir" -c "$dir/nginx.conf" -e "$dir/logs/error.log"
    TARGET_PID[$t]=$STARTED_PID
    wait_http "http://127.0.0.1:$port/" 10 any || return 1
    gateway_routes "$t" "http://127.0.0.1:$port"
    ;;
  litellm)
    [ -n "${UNAVAILABLE[litellm]:-}" ] && return 1
    port=$(free_port)
    litellm_config "$WORK"
    # LITELLM_LOCAL_MODEL_COST_MAP: no fetch of the model price list from the internet.
    start litellm "$TARGET_CPUS" env -C "$WORK" LITELLM_LOCAL_MODEL_COST_MAP=True \
      LITELLM_LOG=ERROR "$CACHE/litellm-venv/bin/litellm" --config "$WORK/litellm.yaml" \
      --host 127.0.0.1 --port "$port" --num_workers "$THREADS" \
      --log_config "$WORK/litellm-log.json"
    TARGET_PID[$t]=$STARTED_PID
    wait_http "http://127.0.0.1:$port/health/liveliness" 120 || return 1
    URL_A[$t]="http://127.0.0.1:$port/v1/messages"
    URL_C[$t]="http://127.0.0.1:$port/v1/messages"
    HDR_LLM[$t]="x-api-key: $LITELLM_MASTER_KEY"
    ;;
  portkey)
    [ -n "${UNAVAILABLE[portkey]:-}" ] && return 1
    port=$(free_port)
    start portkey "$TARGET_CPUS" env NODE_ENV=production node \
      "$CACHE/portkey/node_modules/@portkey-ai/gateway/build/start-server.js" \
      "--port=$port" --headless
    TARGET_PID[$t]=$STARTED_PID
    wait_http "http://127.0.0.1:$port/" 30 any || return 1
    URL_A[$t]="http://127.0.0.1:$port/v1/messages"
    URL_C[$t]="http://127.0.0.1:$port/v1/messages"
    HDR_LLM[$t]=$(printf '%s\n' "x-portkey-provider: anthropic" \
      "x-portkey-custom-host: $UP/v1" "authorization: Bearer $PROVIDER_KEY")
    ;;
  *)
    NOTES+=("unknown target \`$t\`")
    return 1
    ;;
  esac
}

# ---------------------------------------------------------------------------------------------
# Checks (one request each, with curl) and measurements

curl_hdr_args() { # HEADER-LINES -> curl -H args in CURL_H
  CURL_H=()
  local line
  while IFS= read -r line; do
    [ -n "$line" ] && CURL_H+=(-H "$line")
  done <<<"$1"
}

workload_url() { # TARGET WORKLOAD
  case $2 in a) echo "${URL_A[$1]:-}" ;; b) echo "${URL_B[$1]:-}" ;; c) echo "${URL_C[$1]:-}" ;; esac
}
workload_hdrs() {
  case $2 in b) echo "${HDR_MCP[$1]:-}" ;; *) echo "${HDR_LLM[$1]:-}" ;; esac
}
workload_script() { case $1 in a) echo messages.lua ;; b) echo mcp.lua ;; c) echo stream.lua ;; esac; }
workload_body() { case $1 in a) echo messages.json ;; b) echo mcp.json ;; c) echo stream.json ;; esac; }
workload_name() {
  case $1 in a) echo "JSON /v1/messages" ;; b) echo "MCP tools/call" ;; c) echo "SSE /v1/messages (100 events)" ;; esac
}
content_type() {
  case $1 in
  a | c) echo "content-type: application/json" ;;
  b) printf '%s\n' "content-type: application/json" "accept: application/json, text/event-stream" \
    "mcp-protocol-version: 2025-06-18" "mcp-session-id: bench-session-1" ;;
  esac
}

check_once() { # TARGET WORKLOAD -> 0 when the answer is right
  local t=$1 w=$2 url out code events
  url=$(workload_url "$t" "$w")
  curl_hdr_args "$(content_type "$w")
$(workload_hdrs "$t" "$w")"
  out="$WORK/check-$t-$w.out"
  code=$(curl -s -N -o "$out" -w '%{http_code}' --max-time 10 "${CURL_H[@]}" \
    --data-binary "@$HERE/bodies/$(workload_body "$w")" "$url")
  if [ "$code" != 200 ]; then
    CHECK_ERR="HTTP $code: $(head -c 200 "$out" | tr '\n' ' ')"
    return 1
  fi
  case $w in
  a) grep -q '"usage"' "$out" && grep -q '"text"' "$out" || { CHECK_ERR="no message in the answer"; return 1; } ;;
  b) grep -q '"result"' "$out" && grep -q '"id":1' "$out" || { CHECK_ERR="no JSON-RPC result"; return 1; } ;;
  c)
    events=$(grep -c '^event:' "$out")
    grep -q 'message_stop' "$out" && [ "$events" -ge 100 ] ||
      { CHECK_ERR="$events SSE events, no message_stop"; return 1; }
    [ "$events" -ne 100 ] && NOTES+=("$t: the stream check got $events SSE events (upstream sends 100)")
    ;;
  esac
  return 0
}

RESULTS="$WORK/results.tsv"
: >"$RESULTS"

# measure TARGET WORKLOAD MODE(closed|rate) [RATE]: one wrk run, repeated (after waiting for
# quiet) when other processes used more than 10% of the machine; appends a line to $RESULTS.
# A fixed-rate run is made RATE_REPEATS times and the one with the median p99 is kept: on a
# shared VM a single run's tail moves with the neighbours more than with the target.
measure() {
  local attempt run runs=1
  local -a rows=()
  [ "$3" = rate ] && runs=$RATE_REPEATS
  for run in $(seq "$runs"); do
    for attempt in $(seq 0 "${BUSY_RETRIES:-2}"); do
      wait_quiet 3
      measure_once "$@" || return 1
      [ "$OTHER" -le 10 ] && break
      [ "$attempt" -lt "${BUSY_RETRIES:-2}" ] && log "  other processes took ${OTHER}% of the machine: again"
    done
    rows+=("$LAST_ROW")
  done
  if [ "$runs" -gt 1 ]; then
    log "  p99 of the $runs runs (µs): $(printf '%s\n' "${rows[@]}" | grep -o 'p99=[0-9.]*' | cut -d= -f2 | xargs)"
    LAST_ROW=$(printf '%s\n' "${rows[@]}" |
      awk 'match($0, /p99=[0-9.]+/) { print substr($0, RSTART + 4, RLENGTH - 4) "\t" $0 }' |
      sort -n | sed -n "$(((runs + 1) / 2))p" | cut -f2-)
  fi
  printf '%s\n' "$LAST_ROW" >>"$RESULTS"
  if [ "$1" = tollgate-full ] && [ -f "$WORK/audit.log" ]; then
    log "  audit log: $(wc -l <"$WORK/audit.log") lines"
  fi
}

measure_once() {
  local t=$1 w=$2 mode=$3 rate=${4:-0} url pid out ticks0 ticks1 line
  url=$(workload_url "$t" "$w")
  pid=${TARGET_PID[$t]}
  out="$WORK/wrk-$t-$w-$mode${4:-}.txt"
  local -a wrk_env=(BENCH_HEADERS="$(workload_hdrs "$t" "$w")")
  [ "$mode" = rate ] && wrk_env+=(BENCH_RATE="$rate")
  if [ "$mode" = closed ] && [ "$WARMUP" != 0 ] && [ "$WARMUP" != 0s ]; then
    env "${wrk_env[@]}" "${LOAD_PREFIX[@]}" wrk -t 1 -c "$CONNECTIONS" -d "$WARMUP" --timeout 10s \
      -s "$HERE/$(workload_script "$w")" "$url" >/dev/null 2>&1
  fi
  [ -f "$WORK/audit.log" ] && : >"$WORK/audit.log"
  reset_peak_rss "$pid"
  local up0 up1 busy0 busy1 kids0 kids1 t0 t1 other
  ticks0=$(cpu_ticks "$pid")
  up0=$(cpu_ticks "$UP_PID")
  read_children_ticks
  kids0=$CHILD_TICKS
  busy0=$(machine_busy_ticks)
  t0=$(now_ns)
  env "${wrk_env[@]}" "${LOAD_PREFIX[@]}" wrk -t 1 -c "$CONNECTIONS" -d "$DURATION" --timeout 10s --latency \
    -s "$HERE/$(workload_script "$w")" "$url" >"$out" 2>&1
  t1=$(now_ns)
  busy1=$(machine_busy_ticks)
  ticks1=$(cpu_ticks "$pid")
  up1=$(cpu_ticks "$UP_PID")
  read_children_ticks
  kids1=$CHILD_TICKS
  # CPU used by processes other than the target, the upstream and wrk, in % of the machine.
  [ "$pid" = "$UP_PID" ] && up1=$up0
  other=$(awk -v b=$((busy1 - busy0)) -v t=$((ticks1 - ticks0)) -v u=$((up1 - up0)) \
    -v k=$((kids1 - kids0)) -v ns=$((t1 - t0)) -v tck="$CLK_TCK" -v n="$NPROC" \
    'BEGIN { o = (b - t - u - k) / (ns / 1e9 * tck * n) * 100; if (o < 0) o = 0; printf "%.0f", o }')
  line=$(grep '^BENCH_RESULT' "$out")
  if [ -z "$line" ]; then
    NOTES+=("$t $w $mode: wrk failed: $(tail -n 2 "$out" | tr '\n' ' ')")
    return 1
  fi
  OTHER=$other
  LAST_ROW=$(printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s' "$mode" "$w" "$t" "$rate" "$((ticks1 - ticks0))" \
    "$(peak_rss_kib "$pid")" "$line" "$other")
}

# Time to first byte of a stream: TTFB_REQUESTS sequential streams on one kept-alive connection;
# time from the request sent (pretransfer) to the first byte of the answer (starttransfer).
TTFB="$WORK/ttfb.tsv"
: >"$TTFB"
measure_ttfb() { # TARGET
  local t=$1 url
  wait_quiet 3
  url=$(workload_url "$t" c)
  curl_hdr_args "$(content_type c)
$(workload_hdrs "$t" c)"
  local -a urls=()
  for _ in $(seq "$TTFB_REQUESTS"); do urls+=(-o /dev/null "$url"); done
  "${LOAD_PREFIX[@]}" curl -s -N "${CURL_H[@]}" --data-binary "@$HERE/bodies/stream.json" \
    -w '%{http_code} %{time_pretransfer} %{time_starttransfer}\n' "${urls[@]}" \
    >"$WORK/ttfb-$t.txt" 2>/dev/null
  awk -v t="$t" '$1 == 200 { print t "\t" ($3 - $2) * 1000 } $1 != 200 { bad++ }
    END { if (bad) print t "\tERR\t" bad }' "$WORK/ttfb-$t.txt" >>"$TTFB"
}

high_rate() { # WORKLOAD
  if [ "$1" = c ]; then echo "$HIGH_STREAM_RATE"; else echo "$HIGH_RATE"; fi
}

# Interleaved tail rounds: the p99 of a shared VM moves with its neighbours from one minute to
# the next by more than what a proxy adds, so targets measured minutes apart are not comparable.
# Within a round direct, tollgate and nginx run back to back (a few seconds each) and see the same
# neighbours; the median over rounds of (target p99 - direct p99 of that round) is what is
# reported. A round in which other processes took more than 10 % of the machine is run again.
TAILS="$WORK/tails.tsv"
: >"$TAILS"
tail_round() { # WORKLOAD ROUND TARGETS...: appends "w round target p99_us other" lines
  local w=$1 round=$2 t attempt busy p99
  shift 2
  local -a rows
  for attempt in $(seq 0 "${BUSY_RETRIES:-2}"); do
    wait_quiet 3
    rows=()
    busy=0
    for t in "$@"; do
      measure_once "$t" "$w" rate "$(high_rate "$w")" || return 1
      p99=$(printf '%s
' "$LAST_ROW" | grep -o 'p99=[0-9.]*' | head -n 1 | cut -d= -f2)
      rows+=("$w	$round	$t	$p99	$OTHER")
      [ "$OTHER" -gt 10 ] && busy=1
    done
    [ "$busy" = 0 ] && break
    [ "$attempt" -lt "${BUSY_RETRIES:-2}" ] && log "  other processes took over 10% of the machine in round $round: again"
  done
  printf '%s\n' "${rows[@]}" >>"$TAILS"
}

run_tail_rounds() {
  local t w round
  local -a started=()
  for t in $TARGETS; do
    case $t in direct | tollgate-nop | tollgate-full | nginx) ;; *) continue ;; esac
    if start_target "$t"; then
      started+=("$t")
    else
      NOTES+=("tail rounds: $t did not start")
      [ -n "${TARGET_PID[$t]:-}" ] && [ "$t" != direct ] && stop_pid "${TARGET_PID[$t]}"
    fi
  done
  if [ "${started[0]:-}" = direct ] && [ "${#started[@]}" -gt 1 ]; then
    local saved=$DURATION
    DURATION=$TAIL_DURATION
    for w in a b c; do
      [ "$(high_rate "$w")" = 0 ] && continue
      for round in $(seq "$TAIL_ROUNDS"); do
        log "tail rounds: workload $w at $(high_rate "$w")/s, round $round of $TAIL_ROUNDS"
        tail_round "$w" "$round" "${started[@]}" || NOTES+=("tail rounds: workload $w round $round failed")
      done
    done
    DURATION=$saved
  else
    NOTES+=("tail rounds: not run (they need direct and at least one other target)")
  fi
  for t in "${started[@]}"; do
    [ "$t" != direct ] && stop_pid "${TARGET_PID[$t]}"
  done
}

# ---------------------------------------------------------------------------------------------
# Run

wait_quiet() { # SECONDS: until the machine has been under 10% busy for SECONDS (QUIET_WAIT cap)
  local need=$1 limit=${QUIET_WAIT:-300} waited=0 a b quiet=0 busy
  [ "$limit" = 0 ] && return 0
  while [ "$waited" -lt "$limit" ]; do
    a=$(machine_busy_ticks)
    sleep 1
    b=$(machine_busy_ticks)
    waited=$((waited + 1))
    busy=$(((b - a) * 100 / (CLK_TCK * NPROC)))
    if [ "$busy" -lt 10 ]; then
      quiet=$((quiet + 1))
      [ "$quiet" -ge "$need" ] && return 0
    else
      [ $((waited % 30)) -eq 1 ] && log "machine busy (${busy}%): waiting for it to be idle (QUIET_WAIT=$limit)"
      quiet=0
    fi
  done
  log "the machine stayed busy for ${limit}s: measuring anyway (see the 'other load %' column)"
  return 1
}
wait_quiet 10

PINNING="none"
[ -n "$TARGET_CPUS" ] && PINNING="target on CPU $TARGET_CPUS, wrk + upstream + curl on CPU $LOAD_CPUS"
log "work dir $WORK; targets: $TARGETS; pinning: $PINNING"
STARTED_AT=$(date -u '+%Y-%m-%d %H:%M UTC')
for t in $TARGETS; do
  case $t in litellm | portkey) workloads="a c" ;; *) workloads="a b c" ;; esac
  if [ -n "${UNAVAILABLE[$t]:-}" ]; then
    NOTES+=("$t: not run: ${UNAVAILABLE[$t]}")
    continue
  fi
  log "target $t: starting"
  if ! start_target "$t"; then
    NOTES+=("$t: did not start (log: $(tail -n 3 "$WORK/$t.log" 2>/dev/null | tr '\n' ' ' | head -c 300))")
    [ -n "${TARGET_PID[$t]:-}" ] && [ "$t" != direct ] && stop_pid "${TARGET_PID[$t]}"
    continue
  fi
  if [ "$t" = tollgate-full ]; then
    code=$(curl -s -o /dev/null -w '%{http_code}' -H 'content-type: application/json' \
      --data-binary "@$HERE/bodies/messages.json" "${URL_A[$t]}")
    [ "$code" = 401 ] || NOTES+=("tollgate-full: a request without a token got $code, not 401")
  fi
  for w in $workloads; do
    if ! check_once "$t" "$w"; then
      NOTES+=("$t, $(workload_name "$w"): check failed: $CHECK_ERR")
      log "target $t workload $w: check failed: $CHECK_ERR"
      continue
    fi
    log "target $t workload $w: closed loop"
    measure "$t" "$w" closed
    rates="$RATE"
    [ "$w" = c ] && rates="$STREAM_RATE"
    case $t in
    litellm | portkey) ;;
    *) [ "$TAIL_ROUNDS" = 0 ] && rates="$rates $(high_rate "$w")" ;;
    esac
    for r in $rates; do
      [ "$r" = 0 ] && continue
      log "target $t workload $w: fixed rate $r/s"
      measure "$t" "$w" rate "$r"
    done
    if [ "$w" = c ] && [ "$TTFB_REQUESTS" != 0 ]; then
      log "target $t workload $w: time to first byte"
      measure_ttfb "$t"
    fi
  done
  [ "$t" != direct ] && stop_pid "${TARGET_PID[$t]}"
done
if [ "$TAIL_ROUNDS" != 0 ]; then
  run_tail_rounds
fi

# ---------------------------------------------------------------------------------------------
# Report

version_of() {
  case $1 in
  wrk) wrk -v 2>&1 | head -n 1 | awk '{print $1, $2}' ;;
  nginx) "$NGINX_BIN" -v 2>&1 | sed 's/^nginx version: //' ;;
  litellm) "$CACHE/litellm-venv/bin/python" -c 'import importlib.metadata as m; print(m.version("litellm"))' 2>/dev/null ;;
  portkey) sed -n 's/^  "version": "\(.*\)",$/\1/p' "$CACHE/portkey/node_modules/@portkey-ai/gateway/package.json" 2>/dev/null ;;
  hono) sed -n 's/^  "version": "\(.*\)",$/\1/p' "$CACHE/portkey/node_modules/@hono/node-server/package.json" 2>/dev/null ;;
  esac
}
REV=$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null)
(cd "$ROOT" && git diff --quiet HEAD -- gateway plugins Cargo.toml Cargo.lock 2>/dev/null) || REV="$REV + uncommitted changes"
# With SKIP_BUILD the binaries may be older than the checkout: the report says so.
[ "${SKIP_BUILD:-0}" = 1 ] && REV="$REV checkout (SKIP_BUILD=1: binaries built earlier, maybe from another revision)"
CPU_MODEL=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
MEM=$(awk '/^MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo)

report() {
  echo "## Load benchmark ($STARTED_AT)"
  echo
  echo "Machine: $NPROC CPUs ($CPU_MODEL), $MEM, $(uname -sr). tollgate $REV (release)."
  echo "wrk $(version_of wrk | awk '{print $2}'), 1 thread, $CONNECTIONS connections, $DURATION per run" \
    "(closed loop after a $WARMUP warm-up). Targets: $THREADS worker thread(s)/process(es);" \
    "bench upstream: $UPSTREAM_THREADS thread(s)." \
    "${TARGET_CPUS:+Pinned: target on CPU $TARGET_CPUS; wrk, curl and the upstream on CPU $LOAD_CPUS.}"
  local versions
  versions="nginx $(version_of nginx)"
  has_target litellm && versions="$versions, LiteLLM $(version_of litellm)"
  has_target portkey && versions="$versions, Portkey gateway $(version_of portkey) (node $(node -v 2>/dev/null), @hono/node-server $(version_of hono))"
  echo "Versions: $versions."
  echo
  echo "### Closed loop (as fast as the target answers)"
  echo
  render closed
  if awk -F'\t' '$1 == "rate"' "$RESULTS" | grep -q .; then
    echo
    echo "### Fixed rate (wrk + Lua delay(), not corrected for coordinated omission; the higher rates for direct, tollgate and nginx only; each row the median-p99 run of $RATE_REPEATS)"
    echo
    render rate
  fi
  if [ -s "$TAILS" ]; then
    echo
    echo "### Added p99 at the high rates, interleaved rounds ($TAIL_ROUNDS rounds of $TAIL_DURATION per target; JSON and MCP at $HIGH_RATE req/s, SSE at $HIGH_STREAM_RATE streams/s)"
    echo
    render_tails
  fi
  if [ -s "$TTFB" ]; then
    echo
    echo "### SSE time to first byte ($TTFB_REQUESTS sequential streams, one connection)"
    echo
    echo "| target | p50 ms | p90 ms | p99 ms | max ms | +p50 vs direct ms |"
    echo "|---|---|---|---|---|---|"
    local t p50 base="" add sorted="$WORK/ttfb-sorted.txt"
    for t in $(cut -f1 "$TTFB" | awk '!seen[$0]++'); do
      awk -F'\t' -v t="$t" '$1 == t && $2 != "ERR" { print $2 }' "$TTFB" | sort -g >"$sorted"
      [ -s "$sorted" ] || continue
      p50=$(pct "$sorted" 0.5)
      [ "$t" = direct ] && base=$p50
      add="—"
      [ -n "$base" ] && [ "$t" != direct ] && add=$(awk -v a="$p50" -v b="$base" 'BEGIN { printf "%+.3f", a - b }')
      printf '| %s | %.3f | %.3f | %.3f | %.3f | %s |%s\n' "$t" "$p50" "$(pct "$sorted" 0.9)" \
        "$(pct "$sorted" 0.99)" "$(pct "$sorted" 1)" "$add" \
        "$(awk -F'\t' -v t="$t" '$1 == t && $2 == "ERR" { printf " (%d non-200 answers)", $3 }' "$TTFB")"
    done
  fi
  echo
  echo "- CPU s/1k req: user + system CPU seconds of the target's processes (for *direct*, the upstream's) per 1,000 answered requests, from /proc/PID/stat. Peak RSS: VmHWM summed over the target's processes, reset before each run."
  echo "- +p50 / +p99: the target's percentile minus direct's for the same workload and mode. SSE latency is the time to the end of the 100-event stream."
  echo "- other load %: CPU time used during the run by processes other than the target, the upstream and wrk, in % of all $NPROC CPUs (from /proc/stat). Above a few % the row is disturbed by something else on the machine."
  awk -F'\t' '$8 > 10 { r = r (r ? ", " : "") $3 " " $2 ($1 == "rate" ? " at " $4 "/s" : " closed loop") }
    END { if (r) print "- disturbed by other processes on every attempt (other load above 10%; workload a = JSON, b = MCP, c = SSE): " r "." }' \
    "$RESULTS"
  local note
  for note in "${NOTES[@]}"; do echo "- $note"; done
}

# One row per workload and target: the median, lowest and highest over the rounds of the
# target's p99 minus direct's p99 of the same round, and the median p99s themselves.
render_tails() {
  echo "| workload | target | rounds | median +p99 ms | lowest +p99 ms | highest +p99 ms | median p99 ms | direct's median p99 ms |"
  echo "|---|---|---|---|---|---|---|---|"
  awk -F'\t' '
    function median(list,   n, v, i, j, x) {
      n = split(list, v, " ")
      for (i = 2; i <= n; i++) for (j = i; j > 1 && v[j - 1] + 0 > v[j] + 0; j--) { x = v[j]; v[j] = v[j - 1]; v[j - 1] = x }
      lo = v[1]; hi = v[n]
      return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
    }
    $3 == "direct" { base[$1, $2] = $4; directs[$1] = directs[$1] " " $4; next }
    { rows[++n] = $0 }
    END {
      names["a"] = "JSON /v1/messages"; names["b"] = "MCP tools/call"; names["c"] = "SSE /v1/messages"
      for (i = 1; i <= n; i++) {
        split(rows[i], f, "\t")
        if (!((f[1], f[2]) in base)) continue
        key = f[1] SUBSEP f[3]
        if (!(key in count)) order[++m] = key
        count[key]++
        added[key] = added[key] " " (f[4] - base[f[1], f[2]]) / 1000
        own[key] = own[key] " " f[4] / 1000
      }
      for (k = 1; k <= m; k++) {
        split(order[k], kt, SUBSEP)
        med = median(added[order[k]]); l = lo; h = hi
        printf "| %s | %s | %d | %+.3f | %+.3f | %+.3f | %.3f | %.3f |\n", names[kt[1]], kt[2], count[order[k]], \
          med, l, h, median(own[order[k]]), median(directs[kt[1]]) / 1000
      }
    }' "$TAILS"
}

pct() { # SORTED-FILE FRACTION: nearest-rank percentile
  awk -v p="$2" '{ a[NR] = $1 } END { i = int(p * NR + 0.999999); if (i < 1) i = 1; if (i > NR) i = NR; print a[i] }' "$1"
}

render() { # MODE
  local mode=$1
  if [ "$mode" = closed ]; then
    echo "| workload | target | req/s | p50 ms | p90 ms | p99 ms | p99.9 ms | +p50 ms | +p99 ms | CPU s/1k req | peak RSS MiB | errors | other load % |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
  else
    echo "| workload | target | rate | achieved req/s | p50 ms | p90 ms | p99 ms | p99.9 ms | +p50 ms | +p99 ms | CPU s/1k req | peak RSS MiB | errors | other load % |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
  fi
  awk -F'\t' -v mode="$mode" -v tck="$CLK_TCK" '
    function field(s, name,   r) { r = s; sub(".*(^| )" name "=", "", r); sub(" .*", "", r); return r + 0 }
    $1 == mode {
      n++; w[n] = $2; t[n] = $3; rate[n] = $4; ticks[n] = $5; rss[n] = $6; s = $7; other[n] = $8
      req[n] = field(s, "requests"); dur[n] = field(s, "duration_us")
      p50[n] = field(s, "p50") / 1000; p90[n] = field(s, "p90") / 1000
      p99[n] = field(s, "p99") / 1000; p999[n] = field(s, "p999") / 1000
      err[n] = field(s, "connect") + field(s, "read") + field(s, "write") + field(s, "status") + field(s, "timeout")
      if ($3 == "direct") { b50[$2, $4] = p50[n]; b99[$2, $4] = p99[n] }
      if (!(($4 + 0) in seen_rate)) { seen_rate[$4 + 0] = 1; rates[++nr] = $4 + 0 }
    }
    END {
      for (i = 2; i <= nr; i++) for (j = i; j > 1 && rates[j - 1] > rates[j]; j--) {
        x = rates[j]; rates[j] = rates[j - 1]; rates[j - 1] = x
      }
      split("a b c", ws, " ")
      names["a"] = "JSON /v1/messages"; names["b"] = "MCP tools/call"; names["c"] = "SSE /v1/messages"
      for (k = 1; k <= 3; k++) for (q = 1; q <= nr; q++) for (i = 1; i <= n; i++) {
        if (w[i] != ws[k] || rate[i] + 0 != rates[q]) continue
        rps = dur[i] > 0 ? req[i] / (dur[i] / 1e6) : 0
        key = w[i] SUBSEP rate[i]
        a50 = ((key in b50) && t[i] != "direct") ? sprintf("%+.3f", p50[i] - b50[key]) : "—"
        a99 = ((key in b99) && t[i] != "direct") ? sprintf("%+.3f", p99[i] - b99[key]) : "—"
        cpu = req[i] > 0 ? sprintf("%.3f", ticks[i] / tck / req[i] * 1000) : "—"
        head = sprintf("| %s | %s |", names[w[i]], t[i])
        if (mode == "rate") head = head sprintf(" %d |", rate[i])
        printf "%s %.0f | %.3f | %.3f | %.3f | %.3f | %s | %s | %s | %.1f | %d | %s |\n", head, rps, p50[i], p90[i], \
          p99[i], p999[i], a50, a99, cpu, rss[i] / 1024, err[i], other[i]
      }
    }' "$RESULTS"
}

OUT=${OUT:-$HERE/results/latest.md}
mkdir -p "$(dirname "$OUT")"
report | tee "$OUT"
