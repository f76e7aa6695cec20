#!/usr/bin/env bash
# Usage: packaging/gui/icons.sh [--check]
#
# The desktop client's icons, all made from one picture,
# crates/gui/assets/tlschat-256.png (256x256, RGBA), with ImageMagick's
# `convert` and Python:
#   crates/gui/assets/tlschat.ico        Windows (build.rs puts it into the .exe):
#                                        ICO_SIZES in one file
#   packaging/gui/icons/tlschat-gui-N.png Linux hicolor icons at the smaller
#                                        HICOLOR_SIZES (256 is the picture itself)
#   packaging/macos/tlschat.icns         the macOS .app's icon: PNG images in
#                                        the ICNS_TYPES slots
# The results are committed, so that no build needs ImageMagick. Run this
# after changing the picture; `--check` (packaging/verify.sh) makes them
# again in a temporary directory and fails unless the committed files have
# the same sizes and, pixel by pixel, the same pictures (ImageMagick
# versions differ in their compressed bytes, not in what they draw).
set -euo pipefail
cd "$(dirname "$0")/../.."

source_png=crates/gui/assets/tlschat-256.png
ico=crates/gui/assets/tlschat.ico
hicolor_dir=packaging/gui/icons
icns=packaging/macos/tlschat.icns
ICO_SIZES=(256 128 64 48 32 24 16)
HICOLOR_SIZES=(16 24 32 48 64 128)
# ICNS slot type and its pixel size (ic11..ic13 are the @2x slots of 16,
# 32 and 128 points). PNG payloads are what iconutil writes for these.
ICNS_TYPES=(icp4:16 icp5:32 ic11:32 icp6:64 ic12:64 ic07:128 ic08:256 ic13:256)

[ "$(identify -format '%wx%h' "$source_png")" = 256x256 ] || { echo "icons.sh: $source_png is not 256x256" >&2; exit 1; }

# make OUT_ROOT: every derived icon under OUT_ROOT, at the committed paths.
make() {
    local out=$1 size csv
    mkdir -p "$out/$(dirname "$ico")" "$out/$hicolor_dir" "$out/$(dirname "$icns")"
    for size in "${HICOLOR_SIZES[@]}"; do
        # -strip and no time chunks: the same picture gives the same bytes.
        convert "$source_png" -resize "${size}x${size}" -strip -define png:exclude-chunks=date,time \
            "PNG32:$out/$hicolor_dir/tlschat-gui-$size.png"
    done
    csv=$(IFS=,; echo "${ICO_SIZES[*]}")
    convert "$source_png" -strip -define "icon:auto-resize=$csv" "$out/$ico"
    python3 - "$out/$icns" "$source_png" "$out/$hicolor_dir" "${ICNS_TYPES[@]}" <<'PY'
import struct, sys
out, source, small_dir, *slots = sys.argv[1:]
chunks = b""
for slot in slots:
    kind, size = slot.split(":")
    path = source if size == "256" else f"{small_dir}/tlschat-gui-{size}.png"
    data = open(path, "rb").read()
    chunks += kind.encode("ascii") + struct.pack(">I", 8 + len(data)) + data
open(out, "wb").write(b"icns" + struct.pack(">I", 8 + len(chunks)) + chunks)
PY
}

if [ "${1:-}" != --check ]; then
    make .
    echo "icons.sh: wrote $ico, $hicolor_dir/tlschat-gui-{$(IFS=,; echo "${HICOLOR_SIZES[*]}")}.png, $icns"
    exit 0
fi

fresh=$(mktemp -d)
trap 'rm -rf "$fresh"' EXIT
make "$fresh"
fail() {
    echo "icons.sh: $* (run bash packaging/gui/icons.sh and commit the result)" >&2
    exit 1
}
# same_picture A B: the same size, and a root-mean-square difference below
# 2% of full scale. ImageMagick versions resample a little differently
# (another filter gives about 0.3%); another picture is far above (the
# negated icon: 66%).
same_picture() {
    local rmse
    [ "$(identify -format '%wx%h' "$1")" = "$(identify -format '%wx%h' "$2")" ] || return 1
    # `compare` exits 1 when the pictures differ at all; the figure decides.
    rmse=$(compare -metric RMSE "$1" "$2" null: 2>&1 | sed -n 's/.*(\([0-9.e+-]*\)).*/\1/p') || true
    [ -n "$rmse" ] && python3 -c 'import sys; sys.exit(0 if float(sys.argv[1]) < 0.02 else 1)' "$rmse"
}
for size in "${HICOLOR_SIZES[@]}"; do
    f=$hicolor_dir/tlschat-gui-$size.png
    [ -f "$f" ] || fail "no $f"
    same_picture "$f" "$fresh/$f" || fail "$f is not $source_png at ${size}x${size}"
done
# The .ico: its images, largest first, each the picture at that size.
sizes=$(identify -format '%w ' "$ico" | sed 's/ $//')
[ "$sizes" = "${ICO_SIZES[*]}" ] || fail "$ico holds sizes '$sizes', not '${ICO_SIZES[*]}'"
for i in "${!ICO_SIZES[@]}"; do
    same_picture "${ico}[$i]" "$fresh/${ico}[$i]" || fail "$ico: the ${ICO_SIZES[$i]}px image is not $source_png"
done
same_picture "${ico}[0]" "$source_png" || fail "$ico's 256px image is not $source_png"
# The .icns: its slots in order, each a PNG of its size equal to the picture.
python3 - "$icns" "$fresh" "${ICNS_TYPES[@]}" <<'PY' || fail "$icns is not made from $source_png"
import struct, subprocess, sys
path, fresh, *slots = sys.argv[1:]
data = open(path, "rb").read()
assert data[:4] == b"icns" and struct.unpack(">I", data[4:8])[0] == len(data), "not an icns file"
at, found = 8, []
while at < len(data):
    kind, length = data[at:at + 4].decode("ascii"), struct.unpack(">I", data[at + 4:at + 8])[0]
    payload = data[at + 8:at + length]
    assert payload[:8] == b"\x89PNG\r\n\x1a\n", f"{kind}: not a PNG"
    width, height = struct.unpack(">II", payload[16:24])
    found.append(f"{kind}:{width}")
    assert width == height, f"{kind}: {width}x{height}"
    open(f"{fresh}/slot-{kind}.png", "wb").write(payload)
    at += length
want = list(slots)
assert found == want, f"slots {found}, want {want}"
PY
for slot in "${ICNS_TYPES[@]}"; do
    kind=${slot%%:*} size=${slot#*:}
    if [ "$size" = 256 ]; then want=$source_png; else want=$fresh/$hicolor_dir/tlschat-gui-$size.png; fi
    same_picture "$fresh/slot-$kind.png" "$want" || fail "$icns: slot $kind is not $source_png at ${size}px"
done
echo "icons.sh: $ico (${ICO_SIZES[*]}), $hicolor_dir (${HICOLOR_SIZES[*]}), $icns (${ICNS_TYPES[*]}) match $source_png"
