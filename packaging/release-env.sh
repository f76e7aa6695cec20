# Sourced (bash) by packaging/archive.sh and packaging/macos/bundle.sh, with
# `root` set to the repository: what every release file is stamped with.
#   version            VERSION from the environment, else Cargo.toml's
#   SOURCE_DATE_EPOCH  exported; by default the time of the commit checked
#                      out (release.yml sets it from the tag's commit)
#   python             the Python that runs pack.py (python3, or the
#                      Windows runners' python)
# Exits with a message naming the calling script when one cannot be had.
# shellcheck shell=bash disable=SC2034 # the variables are the sourcing script's

version=${VERSION:-$(sed -n 's/^version = "\([^"]*\)"$/\1/p' "$root/Cargo.toml" | head -n 1)}
if [ -z "$version" ]; then
    echo "$(basename "$0"): no version in Cargo.toml" >&2
    exit 1
fi
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
    SOURCE_DATE_EPOCH=$(git -C "$root" log -1 --format=%ct 2>/dev/null || true)
    if [ -z "$SOURCE_DATE_EPOCH" ]; then
        echo "$(basename "$0"): set SOURCE_DATE_EPOCH (not in a git checkout)" >&2
        exit 1
    fi
fi
export SOURCE_DATE_EPOCH

python=python3
if ! command -v python3 >/dev/null 2>&1 || ! python3 -c '' >/dev/null 2>&1; then
    python=python # the Windows runners' Python
fi
