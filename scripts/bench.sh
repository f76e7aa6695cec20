#!/usr/bin/env bash
# The performance benchmark (targets, method and latest numbers:
# docs/performance.md). Builds tlschat-server and the load generator
# (tools/loadgen) in release mode, then runs every scenario against a fresh
# tlschat-server, ngircd (Debian's, TLS on, flood limits off) and the
# baseline relay, and the fanouts also against tlschat-server with history
# off and with a stalled history store, with the servers on core 0 and the
# load generator on core 1. Writes JSON lines, a markdown table and the server logs under
# bench-results/<stamp>-<mode>/ (also bench-results/latest-<mode>.*) and
# prints the table.
#
#   scripts/bench.sh              full run: 3 repetitions, medians (12-25 min),
#                                 tlschat-server built with --profile dist
#   scripts/bench.sh --quick      smoke run: tiny numbers, 1 s windows, one
#                                 repetition, tlschat with history on, off
#                                 and stalled (and ngircd only if it is
#                                 already installed); fails on any error
#   scripts/bench.sh --history    history on against off and stalled: the
#                                 fanout and paced scenarios, tlschat only
#                                 (with --quick: a smoke run of just that)
#   scripts/bench.sh --scenarios fanout,paced --reps 1 ...
#                                 any other flag goes to `tlschat-loadgen run`;
#                                 with --server-bin FILE the server is not built
#                                 (`target/release/tlschat-loadgen run --help`)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

quick=0
history=0
own_bin=0
args=()
for arg in "$@"; do
    [ "$arg" = "--quick" ] && quick=1
    case "$arg" in --server-bin|--server-bin=*) own_bin=1 ;; esac
    if [ "$arg" = "--history" ]; then
        history=1
        args+=(--scenarios fanout,paced --targets tlschat,tlschat-nohist,tlschat-stall)
    else
        args+=("$arg")
    fi
done

# The full run measures what ships: the `dist` profile of the release
# archives (fat LTO, one codegen unit). The smoke run only checks that
# everything works, so it takes the everyday release build CI has anyway.
server_bin=target/release/tlschat-server
if [ "$own_bin" = 1 ]; then
    # A given binary (release.yml measures the archives' gnu and musl
    # builds): nothing of the server to build.
    :
elif [ "$quick" = 1 ]; then
    echo "== cargo build --release (tlschat-server, tlschat-loadgen)"
    cargo build --release --locked --quiet -p tlschat --bin tlschat-server
else
    echo "== cargo build --profile dist (tlschat-server), --release (tlschat-loadgen)"
    cargo build --profile dist --locked --quiet -p tlschat --bin tlschat-server
    server_bin=target/dist/tlschat-server
fi
cargo build --release --locked --quiet -p tlschat-loadgen

have_ngircd() { command -v ngircd >/dev/null 2>&1 || [ -x /usr/sbin/ngircd ]; }
if [ "$quick" = 0 ] && [ "$history" = 0 ] && ! have_ngircd; then
    echo "== installing ngircd (apt-get)"
    sudo=()
    [ "$(id -u)" = 0 ] || sudo=(sudo)
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" apt-get install -y -qq ngircd >/dev/null
    # The package enables a system-wide daemon on port 6667; the benchmark
    # starts its own instances, so keep that one from running.
    if command -v systemctl >/dev/null 2>&1; then
        "${sudo[@]}" systemctl disable --now ngircd >/dev/null 2>&1 || true
    fi
fi

# 10,000 clients: raise the open-files limit as far as allowed (the load
# generator raises it further if it may, and the servers inherit it).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

pin=()
if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null 2>&1; then
    pin=(taskset -c 1)
fi
bin_arg=(--server-bin "$server_bin")
[ "$own_bin" = 1 ] && bin_arg=()
exec "${pin[@]}" target/release/tlschat-loadgen run "${bin_arg[@]}" "${args[@]}"
