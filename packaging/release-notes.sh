#!/usr/bin/env bash
# Usage: packaging/release-notes.sh VERSION [CHANGELOG] [--bench FILE]...
#
# Prints the body of CHANGELOG.md's section for VERSION (the lines after
# "## [VERSION]" up to the next "## " heading or link references), which
# release.yml uses as the GitHub release notes. Falls back to the
# "## [Unreleased]" section; fails if both are missing or empty.
# Each --bench FILE is a gnu/musl comparison written by
# `bench-compare.py compare`; with any, the notes end with a paragraph on
# which Linux build to prefer.
set -euo pipefail

positional=()
bench=()
while [ $# -gt 0 ]; do
    case $1 in
        --bench)
            [ $# -ge 2 ] || { echo "release-notes.sh: --bench needs a file" >&2; exit 2; }
            bench+=("$2")
            shift 2
            ;;
        *)
            positional+=("$1")
            shift
            ;;
    esac
done
version=${positional[0]:?usage: release-notes.sh VERSION [CHANGELOG] [--bench FILE]...}
version=${version#v}
here=$(cd "$(dirname "$0")" && pwd)
changelog=${positional[1]:-$here/../CHANGELOG.md}

section() {
    awk -v want="$1" '
        /^## / {
            if (on) exit
            if (index($0, "## [" want "]") == 1) { on = 1; next }
        }
        /^\[[^]]+\]: / { if (on) exit }
        on { print }
    ' "$changelog" | sed -e '/./,$!d' | awk '{ lines[NR] = $0 } NF { last = NR } END { for (i = 1; i <= last; i++) print lines[i] }'
}

notes=$(section "$version")
if [ -z "$notes" ]; then
    notes=$(section "Unreleased")
fi
if [ -z "$notes" ]; then
    echo "release-notes.sh: no section for $version (nor Unreleased) in $changelog" >&2
    exit 1
fi
printf '%s\n' "$notes"
if [ ${#bench[@]} -gt 0 ]; then
    echo
    python3 "$here/bench-compare.py" notes "${bench[@]}"
fi
