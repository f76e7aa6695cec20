#!/usr/bin/env bash
# Usage: packaging/archive.sh TARGET BIN_DIR OUT_DIR
#
# Packs a release archive the way release.yml publishes it (and verify.sh
# rebuilds it for its fake release):
#   OUT_DIR/tlschat-VERSION-TARGET.tar.gz   (.zip for Windows targets)
# holding one directory tlschat-VERSION-TARGET/ with tlschat-server,
# tlschat, README.md, CHANGELOG.md, LICENSE-MIT, LICENSE-APACHE, complete/
# (bash, zsh, fish and PowerShell completions) and doc/ (man pages), the
# last two as packaging/generate-assets.sh writes them into BIN_DIR; and
# the desktop client tlschat-gui when BIN_DIR has it (release.yml builds it
# for the Linux gnu, Windows and macOS targets, not for musl).
#
# The archive is reproducible (packaging/pack.py): sorted names, owner 0,
# fixed modes, every mtime SOURCE_DATE_EPOCH. SOURCE_DATE_EPOCH defaults
# to the time of the commit checked out (release.yml sets it from the tag's
# commit). VERSION comes from Cargo.toml unless set in the environment.
# Prints the archive's path.
set -euo pipefail

if [ $# -ne 3 ]; then
    echo "usage: $0 TARGET BIN_DIR OUT_DIR" >&2
    exit 2
fi
target=$1
bin_dir=$2
out_dir=$3
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=packaging/release-env.sh
. "$root/packaging/release-env.sh"

exe=
case $target in
    *windows*) exe=.exe ;;
esac

name="tlschat-$version-$target"
mkdir -p "$out_dir"
out_dir=$(cd "$out_dir" && pwd)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir "$stage/$name" "$stage/$name/complete" "$stage/$name/doc"
for bin in tlschat-server tlschat; do
    if [ ! -f "$bin_dir/$bin$exe" ]; then
        echo "archive.sh: missing $bin_dir/$bin$exe" >&2
        exit 1
    fi
    cp "$bin_dir/$bin$exe" "$stage/$name/"
    for f in "complete/$bin.bash" "complete/_$bin" "complete/$bin.fish" "complete/_$bin.ps1" "doc/$bin.1"; do
        if [ ! -s "$bin_dir/$f" ]; then
            echo "archive.sh: missing $bin_dir/$f (run packaging/generate-assets.sh $bin_dir)" >&2
            exit 1
        fi
        cp "$bin_dir/$f" "$stage/$name/$f"
    done
done
chmod 755 "$stage/$name/tlschat-server$exe" "$stage/$name/tlschat$exe"
if [ -f "$bin_dir/tlschat-gui$exe" ]; then
    cp "$bin_dir/tlschat-gui$exe" "$stage/$name/"
    chmod 755 "$stage/$name/tlschat-gui$exe"
fi
for doc in README.md CHANGELOG.md LICENSE-MIT LICENSE-APACHE; do
    cp "$root/$doc" "$stage/$name/"
done

case $target in
    *windows*) archive="$out_dir/$name.zip" kind=zip ;;
    *) archive="$out_dir/$name.tar.gz" kind=tar.gz ;;
esac
rm -f "$archive"
"$python" "$root/packaging/pack.py" "$kind" "$archive" "$stage" "$name"
echo "$archive"
