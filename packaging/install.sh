#!/bin/sh
# Installs tlschat-server and tlschat (Linux, macOS) from a GitHub release,
# and the desktop client tlschat-gui where the archive has it (the Linux gnu
# builds, --target x86_64-unknown-linux-gnu or aarch64-unknown-linux-gnu,
# and macOS; the .deb/.rpm or the macOS .app add a menu entry and icon).
#
#   curl -fsSL https://github.com/tlschat/tlschat/releases/latest/download/install.sh | sh
#   curl -fsSL https://github.com/tlschat/tlschat/releases/latest/download/install.sh | sh -s -- --version 0.1.0 --prefix /usr/local
#
# It downloads the release's SHA256SUMS and the archive for this OS and CPU,
# refuses to install anything unless the archive's SHA-256 matches, then
# copies the programs into ~/.local/bin (or PREFIX/bin, or --bin-dir).
#
# Options (each also read from an environment variable):
#   --version X.Y.Z     a release instead of the latest        TLSCHAT_VERSION
#   --prefix DIR        install into DIR/bin                    TLSCHAT_PREFIX
#   --bin-dir DIR       install into DIR                        TLSCHAT_BIN_DIR
#   --repo OWNER/NAME   another GitHub repository (a fork)      TLSCHAT_REPO
#   --base-url URL      a mirror laid out like URL/latest/download/FILE and
#                       URL/download/vX.Y.Z/FILE; default
#                       https://github.com/OWNER/NAME/releases   TLSCHAT_BASE_URL
#   --target TRIPLE     another build, e.g. x86_64-unknown-linux-gnu
#                                                               TLSCHAT_TARGET
set -eu

REPO=${TLSCHAT_REPO:-tlschat/tlschat}
VERSION=${TLSCHAT_VERSION:-latest}
PREFIX=${TLSCHAT_PREFIX:-}
BIN_DIR=${TLSCHAT_BIN_DIR:-}
BASE_URL=${TLSCHAT_BASE_URL:-}
TARGET=${TLSCHAT_TARGET:-}

say() {
    printf 'install.sh: %s\n' "$*" >&2
}

die() {
    say "error: $*"
    exit 1
}

usage() {
    if [ -f "$0" ] && grep -q 'tlschat' "$0" 2>/dev/null; then
        sed -n '2,/^set -eu$/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//' >&2
    else
        say "usage: install.sh [--version X.Y.Z] [--prefix DIR] [--bin-dir DIR] [--repo OWNER/NAME] [--base-url URL] [--target TRIPLE]"
    fi
}

while [ $# -gt 0 ]; do
    case $1 in
        --version | --prefix | --bin-dir | --repo | --base-url | --target)
            [ $# -ge 2 ] || die "$1 needs a value"
            case $1 in
                --version) VERSION=$2 ;;
                --prefix) PREFIX=$2 ;;
                --bin-dir) BIN_DIR=$2 ;;
                --repo) REPO=$2 ;;
                --base-url) BASE_URL=$2 ;;
                --target) TARGET=$2 ;;
            esac
            shift 2
            ;;
        --version=*) VERSION=${1#*=}; shift ;;
        --prefix=*) PREFIX=${1#*=}; shift ;;
        --bin-dir=*) BIN_DIR=${1#*=}; shift ;;
        --repo=*) REPO=${1#*=}; shift ;;
        --base-url=*) BASE_URL=${1#*=}; shift ;;
        --target=*) TARGET=${1#*=}; shift ;;
        -h | --help) usage; exit 0 ;;
        *) die "unknown option: $1 (see --help)" ;;
    esac
done

case $REPO in
    */*) ;;
    *) die "--repo wants OWNER/NAME, not '$REPO'" ;;
esac

# The build for this machine. Linux gets the static musl build, which runs
# on any distribution (old glibc, Alpine and other musl systems alike; the
# gnu builds need glibc 2.34 or newer: --target); Apple Silicon gets the
# native build even from a shell running under Rosetta.
detect_target() {
    os=$(uname -s)
    arch=$(uname -m)
    case $os in
        Linux)
            case $arch in
                x86_64 | amd64) echo x86_64-unknown-linux-musl ;;
                aarch64 | arm64) echo aarch64-unknown-linux-musl ;;
                *) die "no Linux build for $arch; build from source: cargo install --git https://github.com/$REPO" ;;
            esac
            ;;
        Darwin)
            case $arch in
                arm64 | aarch64) echo aarch64-apple-darwin ;;
                x86_64)
                    if [ "$(sysctl -n hw.optional.arm64 2>/dev/null || echo 0)" = 1 ]; then
                        echo aarch64-apple-darwin
                    else
                        echo x86_64-apple-darwin
                    fi
                    ;;
                *) die "no macOS build for $arch" ;;
            esac
            ;;
        MINGW* | MSYS* | CYGWIN* | Windows_NT)
            die "on Windows use install.ps1 (PowerShell) or the .msi"
            ;;
        *) die "no build for $os; build from source: cargo install --git https://github.com/$REPO" ;;
    esac
}

# download URL FILE
download() {
    if command -v curl >/dev/null 2>&1; then
        # https only (redirects included), unless a plain-http mirror was asked for.
        case $BASE_URL in
            http://*) curl --proto '=http,https' -fsSL --retry 3 -o "$2" "$1" ;;
            *) curl --proto '=https' --proto-redir '=https' --tlsv1.2 -fsSL --retry 3 -o "$2" "$1" ;;
        esac
    elif command -v wget >/dev/null 2>&1; then
        wget -q -O "$2" "$1"
    else
        die "neither curl nor wget is installed"
    fi
}

sha256_of() {
    if command -v sha256sum >/dev/null 2>&1; then
        sha256sum "$1" | cut -d' ' -f1
    elif command -v shasum >/dev/null 2>&1; then
        shasum -a 256 "$1" | cut -d' ' -f1
    elif command -v openssl >/dev/null 2>&1; then
        openssl dgst -sha256 -r "$1" | cut -d' ' -f1
    else
        die "no SHA-256 tool (sha256sum, shasum or openssl) to check the download"
    fi
}

[ -n "$TARGET" ] || TARGET=$(detect_target)
[ -n "$BASE_URL" ] || BASE_URL="https://github.com/$REPO/releases"
BASE_URL=${BASE_URL%/}
if [ "$VERSION" = latest ]; then
    release_url="$BASE_URL/latest/download"
else
    VERSION=${VERSION#v}
    release_url="$BASE_URL/download/v$VERSION"
fi

if [ -n "$BIN_DIR" ]; then
    dest=$BIN_DIR
elif [ -n "$PREFIX" ]; then
    dest="${PREFIX%/}/bin"
else
    [ -n "${HOME:-}" ] || die "HOME is not set; pass --prefix or --bin-dir"
    dest="$HOME/.local/bin"
fi

tmp=$(mktemp -d 2>/dev/null || mktemp -d -t tlschat-install)
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

say "downloading $release_url/SHA256SUMS"
download "$release_url/SHA256SUMS" "$tmp/SHA256SUMS" ||
    die "cannot download $release_url/SHA256SUMS (is there such a release?)"

# Lines are "HASH  NAME" (or "HASH *NAME"). For the latest release the
# archive's name, which holds the version, is found in SHA256SUMS.
if [ "$VERSION" = latest ]; then
    asset=$(awk -v t="-$TARGET.tar.gz" '{
        n = $2; sub(/^\*/, "", n)
        if (index(n, "tlschat-") == 1 && length(n) > length(t) && substr(n, length(n) - length(t) + 1) == t) print n
    }' "$tmp/SHA256SUMS" | head -n 1)
    [ -n "$asset" ] || die "the latest release has no archive for $TARGET"
else
    asset="tlschat-$VERSION-$TARGET.tar.gz"
fi
expected=$(awk -v f="$asset" '{ n = $2; sub(/^\*/, "", n); if (n == f) print $1 }' "$tmp/SHA256SUMS" | head -n 1 | tr 'A-F' 'a-f')
printf '%s' "$expected" | grep -Eq '^[0-9a-f]{64}$' ||
    die "$asset is not listed in SHA256SUMS of $release_url"

say "downloading $release_url/$asset"
download "$release_url/$asset" "$tmp/$asset" || die "cannot download $release_url/$asset"
actual=$(sha256_of "$tmp/$asset")
if [ "$actual" != "$expected" ]; then
    say "error: checksum mismatch for $asset"
    say "  expected $expected (SHA256SUMS)"
    say "  got      $actual"
    die "refusing to install: the download is corrupt or has been tampered with"
fi
say "checksum OK ($actual)"

mkdir "$tmp/x"
tar -xzf "$tmp/$asset" -C "$tmp/x" || die "cannot unpack $asset"
src="$tmp/x/${asset%.tar.gz}"
[ -d "$src" ] || src="$tmp/x"
bins="tlschat-server tlschat"
for bin in $bins; do
    [ -f "$src/$bin" ] || die "$asset holds no $bin"
done
# The desktop client, in the archives of the targets it is built for.
if [ -f "$src/tlschat-gui" ]; then
    bins="$bins tlschat-gui"
fi

mkdir -p "$dest" || die "cannot create $dest"
for bin in $bins; do
    # Copy next to the target, then rename: replaces a running binary safely.
    cp "$src/$bin" "$dest/.$bin.new" || die "cannot write to $dest"
    chmod 755 "$dest/.$bin.new"
    mv -f "$dest/.$bin.new" "$dest/$bin"
done

# Linux: a menu entry for the desktop client, which also makes it the
# handler of tlschat:// invite links (the .deb and .rpm install the same
# file system-wide): into PREFIX/share/applications with --prefix, else
# into the user's own applications directory, where it is also made the
# default handler (xdg-mime).
register_links() {
    case "$dest" in
        *[\"\`\$\\%]*)
            say "note: no menu entry: $dest holds a character a .desktop file cannot quote"
            return 0 ;;
    esac
    if [ -n "$PREFIX" ]; then
        apps="$PREFIX/share/applications"
    else
        apps="${XDG_DATA_HOME:-${HOME:-}/.local/share}/applications"
    fi
    mkdir -p "$apps" || { say "note: no menu entry: cannot create $apps"; return 0; }
    cat > "$apps/.tlschat-gui.desktop.new" <<EOF || return 0
[Desktop Entry]
Type=Application
Name=tlschat
GenericName=Chat client
Comment=Private group chat over TLS
Exec="$dest/tlschat-gui" %u
Icon=tlschat-gui
Terminal=false
Categories=Network;Chat;InstantMessaging;
Keywords=chat;tls;
StartupWMClass=tlschat-gui
MimeType=x-scheme-handler/tlschat;
EOF
    mv -f "$apps/.tlschat-gui.desktop.new" "$apps/tlschat-gui.desktop" || return 0
    if command -v update-desktop-database >/dev/null 2>&1; then
        update-desktop-database -q "$apps" || true
    fi
    if [ -z "$PREFIX" ] && command -v xdg-mime >/dev/null 2>&1; then
        xdg-mime default tlschat-gui.desktop x-scheme-handler/tlschat || true
    fi
    say "menu entry and tlschat:// links: $apps/tlschat-gui.desktop"
}
case " $bins " in
    *" tlschat-gui "*) [ "$(uname -s)" != Linux ] || register_links ;;
esac

say "installed into $dest:"
"$dest/tlschat-server" --version
"$dest/tlschat" --version
case " $bins " in
    *" tlschat-gui "*) say "and the desktop client: $dest/tlschat-gui" ;;
    *) say "no desktop client in $asset (it is in the Linux gnu and macOS archives)" ;;
esac

case ":${PATH:-}:" in
    *":$dest:"* | *":$dest/:"*) ;;
    *)
        say "note: $dest is not on your PATH. Add it, e.g. in ~/.profile or ~/.zshrc:"
        say "  export PATH=\"$dest:\$PATH\""
        ;;
esac
