#!/usr/bin/env python3
"""Platform check for src/ and crates/*/src/: no Unix-only API outside a cfg(unix) item.

Only the host's standard library is installed here, so a Windows build
cannot be tried; this scan catches the usual way a Unix-only API slips in:
a use of `std::os::unix`, `tokio::signal::unix`, `libc::`, `nix::`, ...
that is not inside an item (block, fn, use, statement) carrying a Unix-only
cfg attribute, or a file gated with `#![cfg(unix)]` or `#[cfg(unix)] mod x;`.
It also checks that every `#[cfg(unix)] fn NAME` has a non-Unix counterpart
(`#[cfg(not(unix))]` or `#[cfg(windows)]` fn NAME) in the same file, and that
Cargo.toml has no Unix-only crate among its unconditional dependencies.

Usage: python3 packaging/check-platform.py [REPO_ROOT]
"""

import pathlib
import re
import sys

UNIX_API = re.compile(
    r"\b(std::os::unix|std::os::fd|tokio::signal::unix|tokio::net::Unix\w+"
    r"|libc::|nix::|signal_hook::|rustix::|users::|daemonize::)"
)
# Predicates that are only true on Unix-like targets.
UNIX_CFG = re.compile(
    r"^\s*(unix|target_family\s*=\s*\"unix\""
    r"|target_os\s*=\s*\"(linux|macos|freebsd|openbsd|netbsd|android|ios|illumos|solaris|dragonfly)\")\s*$"
)
UNIX_ONLY_CRATES = {"nix", "signal-hook", "users", "daemonize", "uzers", "termios", "rlimit"}


def strip_comments_and_strings(text: str) -> str:
    """Blank out comments, string and char literals, keeping offsets and newlines."""
    out = list(text)
    i, n = 0, len(text)

    def blank(a, b):
        for k in range(a, b):
            if out[k] != "\n":
                out[k] = " "

    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            blank(i, j)
            i = j
        elif text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            blank(i, j)
            i = j
        elif c == "r" and re.match(r'r#*"', text[i:i + 10]) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            m = re.match(r'r(#*)"', text[i:])
            end = text.find('"' + m.group(1), i + len(m.group(0)))
            end = n if end < 0 else end + 1 + len(m.group(1))
            blank(i, end)
            i = end
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            blank(i, j + 1)
            i = j + 1
        elif c == "'":
            # A char literal ('a', '\n', '\u{1F600}'), not a lifetime ('a).
            m = re.match(r"'(\\u\{[0-9a-fA-F]+\}|\\.|[^\\'])'", text[i:])
            if m:
                blank(i, i + len(m.group(0)))
                i += len(m.group(0))
            else:
                i += 1
        else:
            i += 1
    return "".join(out)


def split_top(s: str):
    """Split a cfg argument list at top-level commas."""
    parts, depth, cur = [], 0, ""
    for ch in s:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur)
    return parts


def unix_only(pred: str) -> bool:
    """True when the cfg predicate can hold only on Unix targets."""
    pred = pred.strip()
    if UNIX_CFG.match(pred):
        return True
    m = re.match(r"^all\s*\((.*)\)$", pred, re.S)
    if m:
        return any(unix_only(p) for p in split_top(m.group(1)))
    m = re.match(r"^any\s*\((.*)\)$", pred, re.S)
    if m:
        parts = split_top(m.group(1))
        return bool(parts) and all(unix_only(p) for p in parts)
    return False


def non_unix(pred: str) -> bool:
    pred = pred.strip()
    return bool(re.match(r"^(windows|not\s*\(\s*unix\s*\)|target_os\s*=\s*\"windows\"|target_family\s*=\s*\"windows\")$", pred))


ATTR = re.compile(r"#(!?)\[\s*cfg\s*\(")


def attr_end(code: str, start: int) -> int:
    """Index just past the `]` closing the attribute starting at `start`."""
    depth = 0
    for k in range(start, len(code)):
        if code[k] == "[":
            depth += 1
        elif code[k] == "]":
            depth -= 1
            if depth == 0:
                return k + 1
    return len(code)


def gated_spans(code: str, wanted=None):
    """Spans (start, end) of code under a cfg attribute whose predicate
    satisfies `wanted` (default: Unix-only), and whether the whole file is
    gated by such an inner attribute."""
    wanted = wanted or unix_only
    spans, whole_file = [], False
    for m in ATTR.finditer(code):
        end = attr_end(code, m.start() + 1 + len(m.group(1)))
        inner = code[m.end():end - 1].strip()
        inner = inner[:-1] if inner.endswith(")") else inner
        if not wanted(inner):
            continue
        if m.group(1) == "!":
            whole_file = True
            continue
        # The item runs to the first `;` at depth 0 or to the `}` closing
        # its first top-level brace, whichever comes first.
        depth, k = 0, end
        while k < len(code):
            ch = code[k]
            if ch in "([":
                depth += 1
            elif ch in ")]":
                depth -= 1
            elif ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
                if depth == 0:
                    k += 1
                    break
                if depth < 0:
                    break
            elif ch == ";" and depth == 0:
                k += 1
                break
            k += 1
        spans.append((m.start(), k))
    return spans, whole_file


def gated_modules(code: str):
    names = set()
    for m in re.finditer(r"#\[\s*cfg\s*\(([^\]]*?)\)\s*\]\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*;", code, re.S):
        if unix_only(m.group(1)):
            names.add(m.group(2))
    return names


def cfg_fns(code: str):
    """Names of fns gated Unix-only and of fns gated non-Unix, outside
    test code (a Unix-only test needs no Windows twin)."""
    test_spans, _ = gated_spans(code, lambda p: p.strip() == "test")
    unix_fns, other_fns = set(), set()
    pat = re.compile(r"#\[\s*cfg\s*\(([^\]]*?)\)\s*\]\s*(?:#\[[^\]]*\]\s*)*(?:pub(?:\([^)]*\))?\s+)?(?:async\s+)?(?:unsafe\s+)?fn\s+(\w+)", re.S)
    for m in pat.finditer(code):
        if any(a <= m.start() < b for a, b in test_spans):
            continue
        if unix_only(m.group(1)):
            unix_fns.add(m.group(2))
        elif non_unix(m.group(1)):
            other_fns.add(m.group(2))
    return unix_fns, other_fns


def main() -> int:
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve()
    files = sorted(root.glob("src/**/*.rs")) + sorted(root.glob("crates/*/src/**/*.rs"))
    codes = {f: strip_comments_and_strings(f.read_text(encoding="utf-8")) for f in files}

    gated_files = set()
    for f, code in codes.items():
        for name in gated_modules(code):
            base = f.parent if f.name in ("mod.rs", "lib.rs", "main.rs") else f.parent / f.stem
            for cand in (base / f"{name}.rs", base / name / "mod.rs"):
                gated_files.add(cand)

    problems, uses = [], 0
    for f, code in codes.items():
        rel = f.relative_to(root)
        spans, whole = gated_spans(code)
        for m in UNIX_API.finditer(code):
            uses += 1
            if whole or f in gated_files or any(a <= m.start() < b for a, b in spans):
                continue
            line = code.count("\n", 0, m.start()) + 1
            problems.append(f"{rel}:{line}: `{m.group(1)}` used outside a cfg(unix) item")
        if whole or f in gated_files:
            continue
        unix_fns, other_fns = cfg_fns(code)
        for name in sorted(unix_fns - other_fns):
            problems.append(f"{rel}: `#[cfg(unix)] fn {name}` has no `#[cfg(not(unix))]`/`#[cfg(windows)]` counterpart")

    # Unix-only crates must sit under [target.'cfg(unix)'.*dependencies].
    manifests = [root / "Cargo.toml"] + sorted(root.glob("crates/*/Cargo.toml"))
    for manifest in manifests:
        problems.extend(unconditional_unix_crates(root, manifest))

    for p in problems:
        print(f"check-platform: {p}")
    print(f"check-platform: {len(files)} files, {uses} Unix-only API uses, {len(problems)} problem(s)")
    return 1 if problems else 0


def unconditional_unix_crates(root: pathlib.Path, manifest: pathlib.Path) -> list:
    """Unix-only crates listed outside [target.'cfg(unix)'.*dependencies]."""
    problems = []
    rel = manifest.relative_to(root)
    section = None
    for no, raw in enumerate(manifest.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if line.startswith("["):
            section = line.strip("[]").strip()
            continue
        m = re.match(r"^([A-Za-z0-9_-]+)(?:\.workspace)?\s*=", line)
        if m and section in ("dependencies", "dev-dependencies", "build-dependencies") and m.group(1) in UNIX_ONLY_CRATES:
            problems.append(f"{rel}:{no}: `{m.group(1)}` is Unix-only; move it under [target.'cfg(unix)'.{section}]")
    return problems


if __name__ == "__main__":
    sys.exit(main())
