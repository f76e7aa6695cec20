#!/usr/bin/env bash
# Usage: packaging/sha256sums.sh DIR
#
# Writes DIR/SHA256SUMS over every other file in DIR, in the format
# `sha256sum -c` reads ("HASH  NAME", sorted by name), which is what
# install.sh, install.ps1 and users check downloads against.
set -euo pipefail

if [ $# -ne 1 ]; then
    echo "usage: $0 DIR" >&2
    exit 2
fi
cd "$1"
if command -v sha256sum >/dev/null 2>&1; then
    sum() { sha256sum "$@"; }
else
    sum() { shasum -a 256 "$@"; }
fi
files=()
while IFS= read -r f; do
    files+=("$f")
done < <(find . -maxdepth 1 -type f ! -name SHA256SUMS -printf '%f\n' 2>/dev/null | LC_ALL=C sort)
if [ ${#files[@]} -eq 0 ]; then
    echo "sha256sums.sh: no files in $PWD" >&2
    exit 1
fi
sum "${files[@]}" > SHA256SUMS.tmp
mv SHA256SUMS.tmp SHA256SUMS
cat SHA256SUMS
