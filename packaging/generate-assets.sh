#!/usr/bin/env bash
# Usage: packaging/generate-assets.sh BIN_DIR [GENERATOR_DIR]
#
# Writes the shell completions and man pages that the programs print about
# themselves (`--generate`, from their clap definitions) next to the build:
#   BIN_DIR/complete/tlschat-server.bash  _tlschat-server  tlschat-server.fish
#                    _tlschat-server.ps1  (and the same four for tlschat)
#   BIN_DIR/doc/tlschat-server.1  tlschat.1           (archives, Homebrew)
#   BIN_DIR/doc/tlschat-server.1.gz  tlschat.1.gz     (the .deb and .rpm)
# The layout is ripgrep's. The files are read from the programs in
# GENERATOR_DIR (default BIN_DIR): a cross-compiled build cannot run here,
# so release.yml passes a host build of the same commit, whose clap
# definitions are the same. `gzip -n` leaves the name and time out of the
# .gz header, so the packages stay reproducible.
set -euo pipefail

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
    echo "usage: $0 BIN_DIR [GENERATOR_DIR]" >&2
    exit 2
fi
bin_dir=$1
gen_dir=${2:-$1}

exe=
if [ -f "$gen_dir/tlschat-server.exe" ]; then
    exe=.exe
fi

mkdir -p "$bin_dir/complete" "$bin_dir/doc"
for bin in tlschat-server tlschat; do
    prog="$gen_dir/$bin$exe"
    if [ ! -x "$prog" ]; then
        echo "generate-assets.sh: missing $prog" >&2
        exit 1
    fi
    # `--generate` writes to stdout; a failure must not leave an empty file.
    gen() { # gen WHAT FILE
        if ! "$prog" --generate "$1" > "$2.tmp"; then
            rm -f "$2.tmp"
            echo "generate-assets.sh: $prog --generate $1 failed" >&2
            exit 1
        fi
        if [ ! -s "$2.tmp" ]; then
            echo "generate-assets.sh: $bin --generate $1 printed nothing" >&2
            exit 1
        fi
        mv "$2.tmp" "$2"
    }
    gen complete-bash "$bin_dir/complete/$bin.bash"
    gen complete-zsh "$bin_dir/complete/_$bin"
    gen complete-fish "$bin_dir/complete/$bin.fish"
    gen complete-powershell "$bin_dir/complete/_$bin.ps1"
    gen man "$bin_dir/doc/$bin.1"
    gzip -n -9 -c "$bin_dir/doc/$bin.1" > "$bin_dir/doc/$bin.1.gz"
done
echo "$bin_dir/complete $bin_dir/doc"
