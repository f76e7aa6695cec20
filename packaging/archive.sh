#!/usr/bin/env bash
# Usage: packaging/archive.sh TARGET BIN_DIR OUT_DIR
#
# Packs a release archive the way release.yml publishes it (and verify.sh
# rebuilds it for its fake release):
#   OUT_DIR/tlschat-VERSION-TARGET.tar.gz   (.zip for Windows targets)
# holding one directory tlschat-VERSION-TARGET/ with tlschat-server,
# tlschat, README.md, CHANGELOG.md, LICENSE-MIT and LICENSE-APACHE.
# VERSION comes from Cargo.toml unless set in the environment. Prints the
# archive's path.
set -euo pipefail

if [ $# -ne 3 ]; then
    echo "usage: $0 TARGET BIN_DIR OUT_DIR" >&2
    exit 2
fi
target=$1
bin_dir=$2
out_dir=$3
root=$(cd "$(dirname "$0")/.." && pwd)
version=${VERSION:-$(sed -n 's/^version = "\([^"]*\)"$/\1/p' "$root/Cargo.toml" | head -n 1)}
if [ -z "$version" ]; then
    echo "archive.sh: no version in Cargo.toml" >&2
    exit 1
fi

exe=
case $target in
    *windows*) exe=.exe ;;
esac

name="tlschat-$version-$target"
mkdir -p "$out_dir"
out_dir=$(cd "$out_dir" && pwd)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir "$stage/$name"
for bin in tlschat-server tlschat; do
    if [ ! -f "$bin_dir/$bin$exe" ]; then
        echo "archive.sh: missing $bin_dir/$bin$exe" >&2
        exit 1
    fi
    cp "$bin_dir/$bin$exe" "$stage/$name/"
done
chmod 755 "$stage/$name/tlschat-server$exe" "$stage/$name/tlschat$exe"
for doc in README.md CHANGELOG.md LICENSE-MIT LICENSE-APACHE; do
    cp "$root/$doc" "$stage/$name/"
done

case $target in
    *windows*)
        archive="$out_dir/$name.zip"
        rm -f "$archive"
        if command -v 7z >/dev/null 2>&1; then
            (cd "$stage" && 7z a -tzip -bso0 -bsp0 "$archive" "$name" >/dev/null)
        else
            (cd "$stage" && python3 -m zipfile -c "$archive" "$name")
        fi
        ;;
    *)
        archive="$out_dir/$name.tar.gz"
        tar -C "$stage" -czf "$archive" "$name"
        ;;
esac
echo "$archive"
