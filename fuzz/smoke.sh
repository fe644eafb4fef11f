#!/usr/bin/env bash
# A short run of every fuzz target (docs/testing.md, "Fuzzing"): builds them with cargo-fuzz on
# the nightly toolchain, replays the recorded crash inputs of fuzz/regressions/, then fuzzes each
# target for FUZZ_SECONDS seconds or FUZZ_RUNS executions, whichever comes first. Fails on any
# crash (the input is left in fuzz/artifacts/<target>/). Skips, saying so, without a nightly
# toolchain; installs cargo-fuzz when only it is missing.
#
#   fuzz/smoke.sh                  every target
#   fuzz/smoke.sh sse_scanner      some of them
#
# The build goes to $TOLLGATE_FUZZ_TARGET_DIR (default ~/.cache/tollgate/fuzz-target, which CI
# keeps between runs) and the corpus each run grows to ~/.cache/tollgate/fuzz-corpus/<target>.
set -euo pipefail
cd "$(dirname "$0")"

seconds="${FUZZ_SECONDS:-20}"
runs="${FUZZ_RUNS:-50000}"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/tollgate"
target_dir="${TOLLGATE_FUZZ_TARGET_DIR:-$cache/fuzz-target}"
corpus_root="${TOLLGATE_FUZZ_CORPUS_DIR:-$cache/fuzz-corpus}"

if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "fuzz/smoke.sh: SKIPPED: no nightly toolchain (rustup toolchain install nightly)" >&2
  exit 0
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "fuzz/smoke.sh: cargo-fuzz is missing: cargo install --locked cargo-fuzz" >&2
  cargo install --locked cargo-fuzz
fi

# Each target and the dictionary it runs with ("-" for none).
declare -A dicts=(
  [config]=dicts/toml.dict
  [mcp_request]=dicts/json.dict
  [sse_scanner]=dicts/sse.dict
  [anthropic]=dicts/sse.dict
  [list_filter]=-
  [guard_masker]=-
  [path_normalize]=dicts/path.dict
)
order=(config mcp_request sse_scanner anthropic list_filter guard_masker path_normalize)
if [ $# -gt 0 ]; then
  order=("$@")
fi
for target in "${order[@]}"; do
  [ -n "${dicts[$target]:-}" ] || { echo "fuzz/smoke.sh: no target '$target'" >&2; exit 2; }
done

echo "fuzz/smoke.sh: building the targets in $target_dir"
build_started=$SECONDS
cargo +nightly fuzz build --target-dir "$target_dir"
echo "fuzz/smoke.sh: built in $((SECONDS - build_started)) s"

# Without a fake stack per frame and an allocation stack per malloc the targets run about half
# as fast again; a crash found is replayed with full reports from its artifact.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_stack_use_after_return=0:malloc_context_size=0}"
triple=$(rustc +nightly -vV | sed -n 's/^host: //p')
bin_dir="$target_dir/$triple/release"
failed=()
for target in "${order[@]}"; do
  bin="$bin_dir/$target"
  corpus="$corpus_root/$target"
  mkdir -p "$corpus" "artifacts/$target"
  args=(-max_total_time="$seconds" -runs="$runs" -timeout=10 -rss_limit_mb=2048
    -artifact_prefix="artifacts/$target/" -print_final_stats=1)
  [ "${dicts[$target]}" = "-" ] || args+=(-dict="${dicts[$target]}")
  seeds=()
  [ -d "seeds/$target" ] && seeds+=("seeds/$target")
  started=$SECONDS
  # The recorded crashes first: each must pass now.
  if compgen -G "regressions/$target/*" >/dev/null; then
    replay="$corpus_root/$target.regressions.log"
    if ! "$bin" regressions/"$target"/* >"$replay" 2>&1; then
      echo "fuzz/smoke.sh: $target: a recorded crash input fails again:" >&2
      tail -n 30 "$replay" >&2
      failed+=("$target")
      continue
    fi
  fi
  log="$corpus_root/$target.log"
  if "$bin" "${args[@]}" "$corpus" "${seeds[@]}" >"$log" 2>&1; then
    summary=$(grep -E '^Done [0-9]+ runs' "$log" | tail -n 1)
    cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -n 1)
    echo "fuzz/smoke.sh: $target: ok, ${summary:-no summary} ($cov), $((SECONDS - started)) s"
  else
    echo "fuzz/smoke.sh: $target: FAILED (input in fuzz/artifacts/$target/):" >&2
    grep -vE '^#[0-9]+' "$log" | tail -n 40 >&2
    failed+=("$target")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz/smoke.sh: failed: ${failed[*]}" >&2
  exit 1
fi
