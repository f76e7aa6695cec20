#!/usr/bin/env bash
# Runs every cargo-fuzz target of tlschat for SECONDS each (default 30), one
# after the other, on one core. Usage: bash fuzz/run.sh [SECONDS]
#
# Each target starts from its committed seed corpus (fuzz/corpus/TARGET),
# copied to a working corpus (fuzz/work/TARGET, git-ignored) that the run
# grows, so the committed corpus never changes. A crash leaves its input in
# fuzz/artifacts/TARGET/ and makes this script exit non-zero. Needs the
# nightly toolchain; installs cargo-fuzz if it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

secs=${1:-30}
if ! [[ $secs =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: bash fuzz/run.sh [SECONDS]  (a positive whole number, default 30)" >&2
  exit 2
fi
targets=(line_decoder command_parser client_lines invite_link)
export CARGO_TERM_COLOR=never

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  echo "== installing the nightly toolchain"
  rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz"
  cargo install --locked cargo-fuzz
fi

echo "== cargo +nightly fuzz build (every target)"
build_start=$SECONDS
cargo +nightly fuzz build
echo "build: $((SECONDS - build_start)) s"

summary=()
failed=()
for target in "${targets[@]}"; do
  seeds="$root/fuzz/corpus/$target"
  work="$root/fuzz/work/$target"
  log="$root/fuzz/work/$target.log"
  rm -rf "$work"
  mkdir -p "$work"
  cp -R "$seeds/." "$work/"

  echo "== fuzzing $target for $secs s (full log: fuzz/work/$target.log)"
  status=0
  # New inputs go to the first corpus dir (the working copy); the seed dir
  # is only read. NEW/REDUCE progress lines and the recommended dictionary
  # stay in the log.
  cargo +nightly fuzz run "$target" "$work" "$seeds" -- \
    -max_total_time="$secs" -rss_limit_mb=2048 -print_final_stats=1 \
    >"$log" 2>&1 || status=$?
  awk '/^###### Recommended dictionary/ { skip = 1 }
       !skip && !/^#[0-9]+[[:space:]]+(NEW|REDUCE) / { print }
       /^###### End of recommended dictionary/ { skip = 0 }' "$log"

  done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE ' "$log" | tail -n 1 || true)
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
  corpus=$(find "$work" -type f | wc -l)
  if [ "$status" -ne 0 ]; then
    failed+=("$target")
    summary+=("$target: FAILED (exit $status) after ${execs:-?} executions; input in fuzz/artifacts/$target/")
  else
    summary+=("$target: ${execs:-?} executions in $secs s, ${rate:-?} exec/s, corpus $corpus files | ${done_line:-no DONE line}")
  fi
done

echo "== fuzz summary"
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzzing found a crash in: ${failed[*]}" >&2
  exit 1
fi
