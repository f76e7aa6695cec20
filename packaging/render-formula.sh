#!/usr/bin/env bash
# Usage: packaging/render-formula.sh VERSION OWNER/REPO DIR [TEMPLATE]
#
# Prints the Homebrew formula for VERSION: packaging/homebrew/tlschat.rb.in
# with the repository and the SHA-256 of each archive it names, read from
# DIR/SHA256SUMS (or hashed from DIR when there is no SHA256SUMS). Fails if
# an archive is missing. TEMPLATE tlschat-gui.rb.in gives the desktop
# client's cask instead, whose checksums are the macOS .app.zip files'
# (@SHA256_APP_TARGET@).
set -euo pipefail

if [ $# -lt 3 ] || [ $# -gt 4 ]; then
    echo "usage: $0 VERSION OWNER/REPO DIR [TEMPLATE]" >&2
    exit 2
fi
version=${1#v}
repo=$2
dir=$3
template="$(cd "$(dirname "$0")" && pwd)/homebrew/${4:-tlschat.rb.in}"
[ -f "$template" ] || { echo "render-formula.sh: no template $template" >&2; exit 2; }

sha_of() {
    local file=$1 sum=""
    if [ -f "$dir/SHA256SUMS" ]; then
        sum=$(awk -v f="$file" '{ n = $2; sub(/^\*/, "", n); if (n == f) print $1 }' "$dir/SHA256SUMS")
    elif [ -f "$dir/$file" ]; then
        if command -v sha256sum >/dev/null 2>&1; then
            sum=$(sha256sum "$dir/$file" | cut -d' ' -f1)
        else
            sum=$(shasum -a 256 "$dir/$file" | cut -d' ' -f1)
        fi
    fi
    if ! printf '%s' "$sum" | grep -Eq '^[0-9a-f]{64}$'; then
        echo "render-formula.sh: no SHA-256 for $file in $dir" >&2
        return 1
    fi
    printf '%s' "$sum"
}

formula=$(sed -e "s|@VERSION@|$version|g" -e "s|@REPO@|$repo|g" "$template")
# Each checksum the template asks for: @SHA256_TARGET@ (an archive),
# @SHA256_APP_TARGET@ (a macOS .app.zip).
for target in aarch64-apple-darwin x86_64-apple-darwin aarch64-unknown-linux-musl x86_64-unknown-linux-musl; do
    if [[ "$formula" == *"@SHA256_${target}@"* ]]; then
        sum=$(sha_of "tlschat-$version-$target.tar.gz")
        formula=${formula//"@SHA256_${target}@"/$sum}
    fi
    if [[ "$formula" == *"@SHA256_APP_${target}@"* ]]; then
        sum=$(sha_of "tlschat-gui-$version-$target.app.zip")
        formula=${formula//"@SHA256_APP_${target}@"/$sum}
    fi
done
if printf '%s\n' "$formula" | grep -q '@[A-Za-z0-9_-]*@'; then
    echo "render-formula.sh: placeholders left in the formula" >&2
    exit 1
fi
printf '%s\n' "$formula"
