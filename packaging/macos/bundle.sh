#!/usr/bin/env bash
# Usage: packaging/macos/bundle.sh TARGET BIN_DIR OUT_DIR
#
# Makes the desktop client's macOS application and packs it:
#   OUT_DIR/tlschat-gui-VERSION-TARGET.app.zip
# holding tlschat.app/Contents/
#   Info.plist               packaging/macos/Info.plist.in, version filled in
#   MacOS/tlschat-gui        BIN_DIR/tlschat-gui
#   Resources/tlschat.icns   packaging/macos/tlschat.icns (packaging/gui/icons.sh)
#   _CodeSignature/          where `codesign` exists (macOS): an ad-hoc
#                            signature over the whole bundle
# The app is not signed with a Developer ID nor notarized (that needs an
# Apple developer account): packaging/README.md says what a user sees.
# The ad-hoc signature keeps the bundle consistent, so Gatekeeper offers
# "Open Anyway" instead of calling it damaged; it has no time in it.
#
# The zip is packed like the archives (packaging/pack.py: sorted names,
# fixed modes, every time SOURCE_DATE_EPOCH, no extra fields), rather than
# with `ditto -c -k`, which stores the files' own times and attributes; a
# bundle without symlinks or resource forks loses nothing by it.
# VERSION and SOURCE_DATE_EPOCH as in archive.sh. Prints the zip's path.
set -euo pipefail

[ $# -eq 3 ] || { echo "usage: $0 TARGET BIN_DIR OUT_DIR" >&2; exit 2; }
target=$1 bin_dir=$2 out_dir=$3
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=packaging/release-env.sh
. "$root/packaging/release-env.sh"
short_version=${version%%[-+]*}
if ! printf '%s' "$short_version" | grep -Eq '^[0-9]+\.[0-9]+\.[0-9]+$'; then
    echo "bundle.sh: cannot read X.Y.Z from version '$version'" >&2
    exit 1
fi
if [ ! -f "$bin_dir/tlschat-gui" ]; then
    echo "bundle.sh: missing $bin_dir/tlschat-gui" >&2
    exit 1
fi

mkdir -p "$out_dir"
out_dir=$(cd "$out_dir" && pwd)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
app="$stage/tlschat.app"
mkdir -p "$app/Contents/MacOS" "$app/Contents/Resources"
sed -e "s|@VERSION@|$version|g" -e "s|@SHORT_VERSION@|$short_version|g" "$here/Info.plist.in" > "$app/Contents/Info.plist"
if grep -q '@[A-Z_]*@' "$app/Contents/Info.plist"; then
    echo "bundle.sh: placeholders left in Info.plist" >&2
    exit 1
fi
cp "$bin_dir/tlschat-gui" "$app/Contents/MacOS/tlschat-gui"
chmod 755 "$app/Contents/MacOS/tlschat-gui"
cp "$here/tlschat.icns" "$app/Contents/Resources/tlschat.icns"
if command -v codesign >/dev/null 2>&1; then
    codesign --force --sign - --timestamp=none "$app"
    codesign --verify --strict --verbose=2 "$app"
fi

zip="$out_dir/tlschat-gui-$version-$target.app.zip"
rm -f "$zip"
"$python" "$root/packaging/pack.py" zip "$zip" "$stage" tlschat.app
echo "$zip"
