//! Build script: which commit the binaries were built from, for `--version`.
//!
//! ```text
//! TLSCHAT_GIT_REV in the build environment ─┐
//! or `git rev-parse --short=8 HEAD`         ├→ TLSCHAT_VERSION_WITH_REV = "0.1.0 (rev 1a2b3c4d)"
//!    (only when this package has a `.git`) ─┘   → tlschat::VERSION → `--version`
//! ```
//!
//! Without either (a crates.io tarball, a source archive, a build where git
//! is missing or refuses the checkout) nothing is set and `--version` prints
//! the bare package version. The `.git` check keeps a package unpacked
//! inside some other repository (a distribution's packaging tree) from
//! naming that repository's commit.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Hex digits of the commit shown; as `git rev-parse --short=8`.
const REV_LEN: usize = 8;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=TLSCHAT_GIT_REV");
    let rev = match std::env::var("TLSCHAT_GIT_REV") {
        Ok(given) if !given.is_empty() => Some(given),
        _ => git_rev(),
    };
    let Some(rev) = rev else {
        return;
    };
    let Some(rev) = short_rev(&rev) else {
        println!("cargo:warning=TLSCHAT_GIT_REV={rev:?} is not a commit id; --version names none");
        return;
    };
    let version = std::env::var("CARGO_PKG_VERSION").unwrap_or_default();
    println!("cargo:rustc-env=TLSCHAT_VERSION_WITH_REV={version} (rev {rev})");
}

/// The first [`REV_LEN`] digits of a hex commit id, or `None` if `rev` is
/// not one (so a stray value never reaches `--version`).
fn short_rev(rev: &str) -> Option<String> {
    let rev = rev.trim();
    let hex = rev.len() >= REV_LEN && rev.chars().all(|c| c.is_ascii_hexdigit());
    hex.then(|| {
        rev.chars()
            .take(REV_LEN)
            .collect::<String>()
            .to_ascii_lowercase()
    })
}

/// HEAD's commit when this package is itself a git checkout (or worktree),
/// asking cargo to run this script again when HEAD moves.
fn git_rev() -> Option<String> {
    let root = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR")?);
    if !root.join(".git").exists() {
        return None;
    }
    watch_head(&root);
    git(&root, &["rev-parse", &format!("--short={REV_LEN}"), "HEAD"])
}

/// `rerun-if-changed` for the files that change when HEAD moves: HEAD
/// itself (a checkout) and the branch it points to (a commit). Paths come
/// from `git rev-parse --git-path`, which knows where a worktree keeps
/// them. Only existing paths are named: cargo reruns the script on every
/// build for a missing one.
fn watch_head(root: &Path) {
    let mut watched = vec![git_path(root, "HEAD")];
    if let Some(branch) = git(root, &["symbolic-ref", "-q", "HEAD"]) {
        let loose = git_path(root, &branch);
        // A packed branch gets a loose file again at its next commit:
        // watching the directory sees that file appear.
        watched.push(
            loose
                .as_ref()
                .and_then(|p| p.parent().map(Path::to_path_buf)),
        );
        watched.push(loose);
        watched.push(git_path(root, "packed-refs"));
    }
    for path in watched.into_iter().flatten() {
        if path.exists() {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
}

fn git_path(root: &Path, name: &str) -> Option<PathBuf> {
    let path = PathBuf::from(git(root, &["rev-parse", "--git-path", name])?);
    Some(if path.is_absolute() {
        path
    } else {
        root.join(path)
    })
}

/// One line of `git` output, or `None` if git is missing or fails.
fn git(root: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(root)
        .args(args)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    let line = text.trim();
    (!line.is_empty()).then(|| line.to_owned())
}
