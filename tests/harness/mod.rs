//! The one test harness, shared by both integration-test binaries
//! (`tests/it`, `tests/heavy`).
//!
//! What flows through it: a test starts a server, in-process
//! ([`TestServer`], `tlschat-server-core` on an ephemeral loopback port) or
//! the real binary ([`ServerProcess`]); both stop when dropped. It talks to
//! that server over real TLS through [`Client`], made by the one connect
//! helper ([`tls_connect`], trusting only the server's certificate) and
//! logged in by the one login sequence ([`Client::finish_login`]). Child
//! processes (the servers, the real `tlschat` client as [`ClientProcess`],
//! `openssl s_client`) are read through [`Pipe`]. A test that needs a
//! program from outside the Rust toolchain asks [`outside_program`] first.

mod client;
mod client_process;
mod pipe;
mod process;
mod programs;
mod server;

pub use client::*;
pub use client_process::*;
pub use pipe::*;
pub use process::*;
pub use programs::*;
pub use server::*;
