//! Programs from outside the Rust toolchain that some tests drive (tmux,
//! openssl, zsh): the one rule for what happens when one is missing.
//!
//! `cargo test --locked` must pass on a machine that has only the Rust
//! toolchain, so a test whose program is absent prints why and passes
//! without running. CI must not pass that way: `.ci/run` installs the
//! programs and sets [`REQUIRE_VAR`] to the comma-separated names it
//! requires (or `all`), and a required program that is missing fails the
//! test instead.

use std::io::Write;
use std::process::{Command, Stdio};

/// Names the programs whose absence fails a test instead of skipping it:
/// `tmux,openssl`, or `all` (every program a test asks for, zsh included).
pub const REQUIRE_VAR: &str = "TLSCHAT_TEST_REQUIRE";

/// Whether `program` runs (`program probe…` exits 0). When it does not:
/// panics if [`REQUIRE_VAR`] names it, else prints that the calling test
/// skips what needs it and why, and returns false (the caller skips that:
/// usually the whole test, by returning at once).
#[must_use]
pub fn outside_program(program: &str, probe: &[&str]) -> bool {
    let runs = Command::new(program)
        .args(probe)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| e.to_string())
        .and_then(|out| {
            if out.status.success() {
                Ok(())
            } else {
                Err(format!(
                    "`{program} {}` failed ({}): {}",
                    probe.join(" "),
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                ))
            }
        });
    let Err(why) = runs else { return true };
    // libtest names each test's thread after the test.
    let current = std::thread::current();
    let test = current.name().unwrap_or("this test");
    if required(program) {
        panic!("{test} needs `{program}` on PATH, and {REQUIRE_VAR} requires it: {why}");
    }
    // Straight to stderr, not `eprintln!`: libtest hides what a passing
    // test prints that way, and a skip must be seen.
    let _ = writeln!(
        std::io::stderr(),
        "{test}: skipping what needs `{program}`, which does not run here ({why}); \
         set {REQUIRE_VAR}={program} to make this a failure"
    );
    false
}

/// Does [`REQUIRE_VAR`] name `program` (or `all`)?
fn required(program: &str) -> bool {
    std::env::var(REQUIRE_VAR).is_ok_and(|list| {
        list.split(',')
            .map(str::trim)
            .any(|name| name == program || name == "all")
    })
}
