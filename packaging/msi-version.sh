#!/usr/bin/env bash
# Usage: packaging/msi-version.sh VERSION
#
# Prints the MSI ProductVersion for a release version. Windows Installer
# compares only major.minor.build, each at most 255.255.65535, and has no
# pre-releases: 0.2.0-rc.1 written as 0.2.0 would be the final's version,
# and the final would not replace it. So:
#
#   X.Y.Z                 -> X.Y.Z          (Z below 65000)
#   X.Y.0-PRE (Y > 0)     -> X.(Y-1).(65000 + 100*K + N)
#   X.0.0-PRE (X > 0)     -> (X-1).255.(65000 + 100*K + N)
#   X.Y.Z-PRE (Z > 0)     -> X.Y.(Z-1)
#
# where K is 1 for alpha, 2 for beta, 3 for rc, 0 for any other label, and
# N the pre-release's last number (at most 99; 0 if none). A pre-release
# of a new minor or major version thus sorts after every final of the
# previous one (whose patch numbers stay below 65000), alpha < beta < rc,
# and before its own final. A pre-release of a patch version has no room
# between two finals: it shares the previous patch's number, which
# main.wxs's AllowSameVersionUpgrades turns into an upgrade in both
# directions, so there is never more than one tlschat installed.
# Build metadata (+...) is ignored. Fails on what it cannot map.
set -euo pipefail

v=${1:?usage: msi-version.sh VERSION}
v=${v#v}
v=${v%%+*}
core=${v%%-*}
pre=
case $v in *-*) pre=${v#*-} ;; esac

fail() {
    echo "msi-version.sh: $*" >&2
    exit 1
}

if ! printf '%s\n' "$core" | grep -Eq '^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$'; then
    fail "'$1' is not a semantic version X.Y.Z[-PRE][+BUILD]"
fi
IFS=. read -r major minor patch <<EOF_CORE
$core
EOF_CORE
[ "$major" -le 255 ] || fail "major version $major is above the MSI limit of 255"
[ "$minor" -le 255 ] || fail "minor version $minor is above the MSI limit of 255"
[ "$patch" -lt 65000 ] || fail "patch version $patch is 65000 or more (the MSI range reserved for pre-releases)"

if [ -z "$pre" ]; then
    echo "$major.$minor.$patch"
    exit 0
fi

if [ "$patch" -gt 0 ]; then
    echo "$major.$minor.$((patch - 1))"
    exit 0
fi

kind=0
case $pre in
    alpha*) kind=1 ;;
    beta*) kind=2 ;;
    rc*) kind=3 ;;
esac
n=$(printf '%s\n' "$pre" | grep -Eo '[0-9]+' | tail -n 1 || true)
n=${n:-0}
n=$((10#$n))
[ "$n" -le 99 ] || fail "pre-release number $n is above 99"
build=$((65000 + 100 * kind + n))

if [ "$minor" -gt 0 ]; then
    echo "$major.$((minor - 1)).$build"
elif [ "$major" -gt 0 ]; then
    echo "$((major - 1)).255.$build"
else
    fail "no MSI version sorts before 0.0.0, so 0.0.0-$pre has none"
fi
