#!/usr/bin/env python3
"""Compares the gnu and the musl Linux build from two runs of
`scripts/bench.sh --quick` on the same runner (their runs.jsonl), for
release.yml's dry run and the release notes.

  bench-compare.py compare ARCH GNU.jsonl MUSL.jsonl OUT.json
      writes OUT.json (figures, musl/gnu ratios, the preferred build) and
      prints a markdown table for the job summary
  bench-compare.py notes OUT.json...
      prints the release notes' paragraph on which Linux build to prefer

The figures are the throughputs of the quick run (fanout deliveries/s,
handshake logins/s, scale joins/s; higher is better). A build is preferred
only if it is more than 10% faster on one of them and slower on none by
more than 10%; otherwise the builds are equivalent and install.sh's musl
default stands. A quick run is short and noisy: the notes say so.
"""

import json
import sys

FIGURES = [
    ("fanout", "deliveries_per_s", "fanout deliveries/s"),
    ("handshakes", "logins_per_s", "handshakes: logins/s"),
    ("scale", "joins_per_s", "scale: joins/s"),
]
THRESHOLD = 0.10


def runs(path):
    """{(scenario, metric): value} of the tlschat runs that succeeded."""
    out = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            v = json.loads(line)
            if v.get("kind") != "run" or v.get("target") != "tlschat" or not v.get("ok"):
                continue
            for key, value in (v.get("metrics") or {}).items():
                if isinstance(value, (int, float)):
                    out[(v["scenario"], key)] = float(value)
    return out


def compare(arch, gnu_path, musl_path, out_path):
    gnu, musl = runs(gnu_path), runs(musl_path)
    rows = []
    for scenario, metric, label in FIGURES:
        g, m = gnu.get((scenario, metric)), musl.get((scenario, metric))
        if g is None or m is None or g <= 0:
            continue
        rows.append({"figure": label, "gnu": g, "musl": m, "ratio": m / g})
    if not rows:
        sys.exit("bench-compare.py: no figure found in both runs")
    faster = [r for r in rows if r["ratio"] > 1 + THRESHOLD]
    slower = [r for r in rows if r["ratio"] < 1 - THRESHOLD]
    prefer = None
    if slower and not faster:
        prefer = "gnu"
    elif faster and not slower:
        prefer = "musl"
    result = {"arch": arch, "figures": rows, "prefer": prefer}
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1)
        f.write("\n")
    print(f"### {arch}: gnu and musl builds, `scripts/bench.sh --quick` on one runner\n")
    print("| figure | gnu | musl | musl/gnu |")
    print("|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['figure']} | {r['gnu']:.0f} | {r['musl']:.0f} | {r['ratio']:.2f} |")
    print()
    print(f"Preferred: {prefer or 'either (within 10%)'}")


def notes(paths):
    lines = []
    for path in paths:
        with open(path, encoding="utf-8") as f:
            r = json.load(f)
        arch = r["arch"]
        ratios = ", ".join(f"{x['figure']} {x['ratio']:.2f}" for x in r["figures"])
        if r["prefer"] == "gnu":
            lines.append(
                f"- **{arch}**: the musl build was more than 10% slower than the gnu build "
                f"(musl/gnu: {ratios}). On a distribution with glibc 2.35 or newer prefer "
                f"the gnu build: the .deb or .rpm, or `install.sh --target {arch}-unknown-linux-gnu`; "
                "the musl build is for older or musl-based systems."
            )
        elif r["prefer"] == "musl":
            lines.append(
                f"- **{arch}**: the musl build was more than 10% faster than the gnu build "
                f"(musl/gnu: {ratios}); prefer it (`install.sh`'s default)."
            )
        else:
            lines.append(
                f"- **{arch}**: the gnu and musl builds were within 10% of each other "
                f"(musl/gnu: {ratios}); either will do."
            )
    print("### Which Linux build")
    print()
    print(
        "Measured by the release workflow with `scripts/bench.sh --quick` on one "
        "GitHub runner per architecture (a short run: differences of a few percent are noise)."
    )
    print()
    print("\n".join(lines))


def main():
    if len(sys.argv) == 6 and sys.argv[1] == "compare":
        compare(*sys.argv[2:])
    elif len(sys.argv) >= 3 and sys.argv[1] == "notes":
        notes(sys.argv[2:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
