//! The tests that need a process of their own: each loads the machine on
//! purpose (500 clients, floods, slowloris) or measures time (lockouts,
//! deadlines), so none may share the machine with an unrelated test, and
//! they raise the process's open-files limit (`RLIMIT_NOFILE`) for the
//! client and server ends of every connection. [`LOAD`] orders them within
//! this binary; cargo runs test binaries one after another, so nothing of
//! `tests/it` runs beside them.

use std::sync::RwLock;

// These tests use a small part of the shared harness.
#[allow(dead_code, unused_imports)]
#[path = "../harness/mod.rs"]
mod harness;

mod abuse;
mod load;

/// A test that must run alone takes this for writing; the light ones of
/// this binary take it for reading and run beside each other.
static LOAD: RwLock<()> = RwLock::new(());
