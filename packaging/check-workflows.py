#!/usr/bin/env python3
"""Checks the shape of the release pipeline that actionlint cannot know:
who holds which token, what triggers the dry run, pinned toolchains and
runner images, and that the jobs the release depends on exist. verify.sh
runs it (in check-jsonschema's venv, which has ruamel.yaml).

Usage: check-workflows.py REPO_ROOT
Prints one line per finding and exits 1 if there is any.
"""

import pathlib
import re
import sys

from ruamel.yaml import YAML

problems = []


def check(cond, msg):
    if not cond:
        problems.append(msg)


def load(root, rel):
    path = root / rel
    if not path.is_file():
        problems.append(f"{rel} is missing")
        return {}
    return YAML(typ="safe").load(path.read_text(encoding="utf-8")) or {}


def on_of(wf):
    # YAML 1.1 reads a bare `on:` key as the boolean True.
    return wf.get("on", wf.get(True)) or {}


def steps_text(job):
    return "\n".join(str(s.get("run", "")) for s in job.get("steps") or [])


def uses(job):
    return [str(s.get("uses", "")) for s in job.get("steps") or []]


def runner_labels(job):
    labels = [str(job.get("runs-on", ""))]
    for entry in ((job.get("strategy") or {}).get("matrix") or {}).get("include") or []:
        if "os" in entry:
            labels.append(str(entry["os"]))
    return labels


def main():
    root = pathlib.Path(sys.argv[1])
    release = load(root, ".github/workflows/release.yml")
    ci = load(root, ".github/workflows/ci.yml")
    advisories = load(root, ".github/workflows/advisories.yml")
    dependabot = load(root, ".github/dependabot.yml")

    # Triggers: tags publish; workflow_dispatch and pull requests touching
    # the release's inputs are dry runs.
    on = on_of(release)
    check("v[0-9]+.[0-9]+.[0-9]+*" in ((on.get("push") or {}).get("tags") or []),
          "release.yml: not triggered by a vX.Y.Z tag")
    check("workflow_dispatch" in on, "release.yml: no workflow_dispatch (dry run)")
    paths = set(((on.get("pull_request") or {}).get("paths")) or [])
    for p in ("packaging/**", ".github/**", "Cargo.toml", "Cargo.lock"):
        check(p in paths, f"release.yml: a pull request touching {p} does not run the dry run")

    # Tokens: read-only by default; write only in publish, which runs only
    # for a tag and runs no project code.
    check(release.get("permissions") == {"contents": "read"},
          "release.yml: the workflow's default permissions are not contents: read")
    jobs = release.get("jobs") or {}
    for name, job in jobs.items():
        perms = job.get("permissions")
        check(isinstance(perms, dict), f"release.yml: job {name} does not set its permissions")
        perms = perms or {}
        writes = {k for k, v in perms.items() if v == "write"}
        attests = any("attest-build-provenance" in u for u in uses(job))
        if name == "publish":
            check(writes == {"contents"}, f"release.yml: publish should hold contents: write only, has {sorted(writes)}")
            check(not any("actions/checkout" in u for u in uses(job)), "release.yml: publish checks out the repository")
            check(not re.search(r"\b(cargo|bash packaging|scripts/)", steps_text(job)),
                  "release.yml: publish runs build code")
            check("publish == 'true'" in str(job.get("if", "")), "release.yml: publish does not run only on a tag")
        else:
            check(perms.get("contents") == "read", f"release.yml: job {name} does not hold contents: read")
            allowed = {"id-token", "attestations"} if attests else set()
            check(writes <= allowed, f"release.yml: job {name} holds write permissions {sorted(writes)}")
            check("github.token" not in str(job) and "GH_TOKEN" not in str(job),
                  f"release.yml: job {name} sees the GitHub token")
        if attests:
            check(perms.get("id-token") == "write" and perms.get("attestations") == "write",
                  f"release.yml: job {name} attests without id-token: write and attestations: write")
    build = jobs.get("build") or {}
    check(any("attest-build-provenance" in u for u in uses(build)), "release.yml: the build jobs do not attest")
    check(any("upload-artifact" in u for u in uses(build)), "release.yml: the build jobs upload no artifact")
    for name in ("plan", "build", "bench", "reproduce", "assemble", "publish"):
        check(name in jobs, f"release.yml: no job {name}")

    # Pinned toolchain and images.
    toolchain = str((release.get("env") or {}).get("RUST_TOOLCHAIN", ""))
    check(re.fullmatch(r"1\.\d+\.\d+", toolchain) is not None, "release.yml: RUST_TOOLCHAIN is not a pinned 1.X.Y")
    text = (root / ".github/workflows/release.yml").read_text(encoding="utf-8")
    check("install stable" not in text and "default stable" not in text, "release.yml: builds with a floating stable")
    for wf_name, wf in (("release.yml", release), ("ci.yml", ci), ("advisories.yml", advisories)):
        for name, job in (wf.get("jobs") or {}).items():
            for label in runner_labels(job):
                check("latest" not in label, f"{wf_name}: job {name} runs on a floating image {label}")

    # The jobs of the dry run.
    check("bench.sh --quick" in steps_text(jobs.get("bench") or {}) and
          "GITHUB_STEP_SUMMARY" in steps_text(jobs.get("bench") or {}),
          "release.yml: bench does not run bench.sh --quick into the job summary")
    repro = steps_text(jobs.get("reproduce") or {})
    check("cargo build" in repro and "sha256sum" in repro, "release.yml: reproduce does not rebuild and compare checksums")
    check("/dependents" in steps_text(build) and "VCRUNTIME" in steps_text(build),
          "release.yml: the Windows builds are not checked for the C runtime DLL")
    check("msi-version.sh" in steps_text(jobs.get("plan") or {}), "release.yml: the MSI version does not come from msi-version.sh")
    check("generate-assets.sh" in steps_text(build), "release.yml: no completions or man pages")

    # The desktop client: built wherever it can run (not on static musl),
    # packed and checked; its packages, .app and cask.
    for entry in ((build.get("strategy") or {}).get("matrix") or {}).get("include") or []:
        target = str(entry.get("target", ""))
        check(bool(entry.get("gui")) == ("musl" not in target),
              f"release.yml: {target} should {'not ' if 'musl' in target else ''}build tlschat-gui (matrix gui)")
    build_text = steps_text(build)
    for needle, what in (("-p tlschat-gui", "builds tlschat-gui"), ("macos/bundle.sh", "makes tlschat.app"),
                         ("cargo deb -p tlschat-gui", "makes the tlschat-gui .deb"),
                         ("generate-rpm -p crates/gui", "makes the tlschat-gui .rpm"),
                         ("Windows GUI", "checks tlschat-gui.exe's subsystem"),
                         ("FindResourceW", "checks tlschat-gui.exe's icon")):
        check(needle in build_text, f"release.yml: the build job never {what}")
    check("-p tlschat-gui" in repro, "release.yml: reproduce does not rebuild tlschat-gui")
    check("tlschat-gui.rb.in" in steps_text(jobs.get("assemble") or {}), "release.yml: assemble does not render the cask")

    # ci.yml: the MSRV build reads rust-version and leaves the GUI (its own,
    # newer rust-version) out; the test jobs build and test every default
    # member, the GUI included.
    msrv = steps_text((ci.get("jobs") or {}).get("msrv") or {})
    check("rust-version" in msrv and "cargo +" in msrv, "ci.yml: no msrv job building with Cargo.toml's rust-version")
    check("--exclude tlschat-gui" in msrv, "ci.yml: the msrv job does not leave tlschat-gui out")
    test_text = steps_text((ci.get("jobs") or {}).get("test") or {})
    check(re.search(r"^cargo test --locked$", test_text, re.M) is not None,
          "ci.yml: the test jobs do not run cargo test --locked over the default members")
    manifest = (root / "Cargo.toml").read_text(encoding="utf-8")
    default_members = re.search(r"^default-members = \[(.*)\]$", manifest, re.M)
    check(default_members is not None and '"crates/gui"' in default_members.group(1),
          "Cargo.toml: crates/gui is not a default member (ci.yml's tests would skip the GUI)")

    # Weekly advisories; dependabot for actions and cargo.
    sched = on_of(advisories).get("schedule") or []
    check(any("cron" in s for s in sched), "advisories.yml: no schedule")
    check("check advisories" in steps_text((advisories.get("jobs") or {}).get("advisories") or {}),
          "advisories.yml: does not run cargo deny check advisories")
    ecosystems = {u.get("package-ecosystem") for u in dependabot.get("updates") or []}
    check({"github-actions", "cargo"} <= ecosystems, f"dependabot.yml: updates {sorted(ecosystems)}, not github-actions and cargo")

    for p in problems:
        print(f"check-workflows: {p}")
    if problems:
        return 1
    print("check-workflows: triggers, tokens, pinned toolchain and images, dry-run jobs, msrv, advisories, dependabot")
    return 0


if __name__ == "__main__":
    sys.exit(main())
