# shellcheck shell=bash
# tollgate's binaries and configurations for the load benchmarks, shared by run.sh and
# callgrind.sh (sourced, not run), so that the callgrind figures are taken with exactly the
# gateway that run.sh measures for throughput.
#
# bench_binaries builds (unless SKIP_BUILD=1) the release tollgate and bench_upstream and copies
# them to $WORK/bin, so that a rebuild during the run (another checkout, same target dir) cannot
# swap them; it sets TOLLGATE and UPSTREAM_BIN. It reads ROOT and WORK and calls log and die.
#
# tollgate_config FILE LISTEN ADMIN full|nop writes one tollgate.toml. It reads the caller's
# globals: THREADS (worker threads), UP (the bench upstream's base URL, also the OTLP "collector")
# and WORK (the temp dir; the full chain's audit log goes to $WORK/audit.log). The full chain reads
# its JWT secret and the provider key from BENCH_JWT_SECRET and BENCH_PROVIDER_KEY in the
# gateway's environment.

tollgate_config() { # FILE LISTEN ADMIN full|nop
  local file=$1 listen=$2 admin=$3 kind=$4
  {
    cat <<EOF
[server]
listen = "$listen"
admin = "$admin"
threads = $THREADS
grace_period = "0s"
shutdown_timeout = "1s"

EOF
    if [ "$kind" = nop ]; then
      cat <<EOF
[telemetry]
audit_log = "off"

[[route]]
name = "anthropic"
match = { path_prefix = "/anthropic" }
upstream = { url = "$UP", kind = "llm", provider = "anthropic", strip_prefix = true }
plugins = []

[[route]]
name = "mcp"
match = { path_prefix = "/mcp" }
upstream = { url = "$UP/mcp", kind = "mcp" }
plugins = []
EOF
    else
      cat <<EOF
[telemetry]
audit_log = "$WORK/audit.log"
# Traces too: two spans per request exported over OTLP/HTTP. The bench upstream plays the
# collector (it answers 404 to /v1/traces, so the spans count as dropped, but the gateway does
# all of the work: building, batching, encoding, sending).
otlp_endpoint = "$UP"
otlp_protocol = "http/protobuf"

[plugin.auth]
type = "jwt"
secret = { env = "BENCH_JWT_SECRET" }
issuer = "tollgate-bench"
audiences = ["tollgate"]
token_from = ["x-api-key", "authorization"]
claims_to_headers = { sub = "x-user-id" }

[plugin.guard]
type = "prompt-guard"
rules = [
  { regex = "(?i)ignore (previous|all) instructions", action = "reject", name = "injection" },
  { builtin = "anthropic_api_key", action = "reject" },
  { builtin = "private_key", action = "reject" },
  { builtin = "email", action = "mask" },
  { builtin = "credit_card", action = "mask" },
]

[plugin.tools]
type = "mcp-rbac"
default = "deny"
rules = [{ tools = ["add", "multiply"], claim = "groups", any_of = ["bench"] }]

[plugin.budget]
type = "token-ratelimit"
unit = "tokens"
key = "jwt.sub"
max_tokens = 1000000000000
refill_tokens = 1000000000000
refill_interval = "1s"

[plugin.calls]
type = "token-ratelimit"
unit = "requests"
key = "jwt.sub"
max_tokens = 1000000000000
refill_tokens = 1000000000000
refill_interval = "1s"

[plugin.provider-key]
type = "secret-injection"
header = "x-api-key"
value = { env = "BENCH_PROVIDER_KEY" }

[plugin.mcp-key]
type = "secret-injection"
header = "authorization"
prefix = "Bearer "
value = { env = "BENCH_PROVIDER_KEY" }

[[route]]
name = "anthropic"
match = { path_prefix = "/anthropic" }
upstream = { url = "$UP", kind = "llm", provider = "anthropic", strip_prefix = true }
plugins = ["auth", "guard", "budget", "provider-key"]

[[route]]
name = "mcp"
match = { path_prefix = "/mcp" }
upstream = { url = "$UP/mcp", kind = "mcp" }
plugins = ["auth", "tools", "guard", "calls", "mcp-key"]
EOF
    fi
  } >"$file"
}

bench_binaries() {
  if [ "${SKIP_BUILD:-0}" != 1 ]; then
    log "building tollgate and bench_upstream (release)"
    (cd "$ROOT" && cargo build --release -p tollgate --bin tollgate --example bench_upstream) ||
      die "cargo build failed"
  fi
  local target_dir=${CARGO_TARGET_DIR:-$ROOT/target}
  [ -x "$target_dir/release/tollgate" ] && [ -x "$target_dir/release/examples/bench_upstream" ] ||
    die "binaries missing in $target_dir/release"
  mkdir -p "$WORK/bin"
  cp "$target_dir/release/tollgate" "$target_dir/release/examples/bench_upstream" "$WORK/bin/"
  TOLLGATE="$WORK/bin/tollgate"
  UPSTREAM_BIN="$WORK/bin/bench_upstream"
}
