#!/usr/bin/env bash
# Makes docs/img/gui.png, README's picture of tlschat-gui: runs the
# end-to-end test (crates/gui/tests/ui/e2e.rs), which starts a server and
# three chatting peers, drives the real binary under Xvfb and photographs
# its window. Needs Xvfb, xdotool and ImageMagick (Debian: xvfb xdotool
# imagemagick), Mesa's lavapipe or a GPU, and the Noto fonts .ci/run
# installs. Shrinks the PNG with optipng when there is one.
set -euo pipefail
cd "$(dirname "$0")/.."
out="$PWD/docs/img/gui.png"
mkdir -p "$(dirname "$out")"
TLSCHAT_GUI_SCREENSHOT="$out" TLSCHAT_TEST_REQUIRE=xvfb \
  cargo test --locked -p tlschat-gui --test ui -- --exact \
  e2e::the_real_binary_joins_rooms_chats_and_is_photographed
if command -v optipng >/dev/null 2>&1; then
  optipng -quiet -o2 "$out"
fi
identify -format '%f: %w×%h, %b\n' "$out"
