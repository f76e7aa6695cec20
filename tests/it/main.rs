//! The root package's integration tests, one binary: linking the whole
//! dependency graph once instead of once per file. Each module is one
//! subject; all share `tests/harness`.
//!
//! The abuse and load tests are a binary of their own (`tests/heavy`):
//! they load the machine on purpose or measure time, so they must not run
//! beside these, and they raise the process's open-files limit.

// Some helpers of the shared harness serve only the heavy tests.
#[allow(dead_code)]
#[path = "../harness/mod.rs"]
mod harness;

mod accounts;
mod cli;
mod client_cli;
mod client_history;
mod client_link;
mod client_text_props;
mod client_unicode;
mod crash_safety;
mod generate;
mod hostile_server;
mod isolation;
mod key_exchange;
mod moderation;
mod notify;
mod openssl;
mod private;
mod protocol;
mod protocol_props;
mod rename;
mod storage;
mod tui_tmux;
