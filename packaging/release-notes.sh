#!/usr/bin/env bash
# Usage: packaging/release-notes.sh VERSION [CHANGELOG]
#
# Prints the body of CHANGELOG.md's section for VERSION (the lines after
# "## [VERSION]" up to the next "## " heading or link references), which
# release.yml uses as the GitHub release notes. Falls back to the
# "## [Unreleased]" section; fails if both are missing or empty.
set -euo pipefail

version=${1:?usage: release-notes.sh VERSION [CHANGELOG]}
version=${version#v}
changelog=${2:-$(cd "$(dirname "$0")/.." && pwd)/CHANGELOG.md}

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
