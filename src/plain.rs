//! Plain (line) mode, the front end for pipes and scripts: stdin lines go
//! to the session as typed, each event is folded into the [`ChatState`]
//! and printed as one line ([`render::plain`]): the server's lines to
//! stdout, the client's own notices to stderr. At end of input: `/quit`,
//! then wait for the server to close.
//!
//! Plain mode cannot mask the passwords of `/register` and `/password`:
//! the terminal echoes what is typed before this reads it (the terminal UI
//! masks them; `--help` says so). It keeps no history, so nothing is
//! remembered either. A `/register` or `/password` line is sent without
//! leading spaces ([`secret_command`]), so it is never said in the room.
//!
//! Lines are printed as the session passes them on: after a reconnect it
//! holds the room's kept and live lines until the catch-up ended, then
//! passes them on in the order they were said, so they print in order.
//!
//! ```text
//! stdin ──lines──▶ ClientHandle::send          (EOF: /quit)
//! ClientEvent ──ChatState::apply──▶ render::plain ──▶ stdout | stderr
//! ```

use std::io::Write;

use tokio::io::AsyncBufReadExt;
use tokio::sync::mpsc;

use tlschat_client_core::state::EntryKind;
use tlschat_client_core::{exit, render, secret_command, ChatState, ClientEvent, ClientHandle};

/// Runs plain mode until the session reports `Closed`; returns the exit
/// code that goes with it (an error if the session ended without one).
pub async fn run(
    mut state: ChatState,
    handle: ClientHandle,
    mut events: mpsc::Receiver<ClientEvent>,
) -> u8 {
    tokio::spawn(send_stdin(handle));
    while let Some(event) = events.recv().await {
        if let Some(entry) = state.apply(&event) {
            print(&entry.kind);
        }
        if let ClientEvent::Closed(reason) = event {
            return reason.exit_code();
        }
    }
    exit::ERROR
}

/// Sends every stdin line (invalid UTF-8 replaced, the line break
/// dropped), then `/quit` at end of input.
async fn send_stdin(handle: ClientHandle) {
    let mut stdin = tokio::io::BufReader::new(tokio::io::stdin());
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match stdin.read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                let line = String::from_utf8_lossy(&buf);
                let line = secret_command(line.trim_end_matches(['\n', '\r']));
                if !handle.send(line).await {
                    return;
                }
            }
        }
    }
    let _ = handle.send("/quit").await;
}

/// One entry as its line: notices to stderr, the rest to stdout.
fn print(kind: &EntryKind) {
    let Some(text) = render::plain(kind) else {
        return;
    };
    if matches!(kind, EntryKind::Status(_)) {
        eprintln!("{text}");
    } else {
        let mut out = std::io::stdout().lock();
        // A closed stdout (e.g. `| head`) is not worth a panic.
        let _ = writeln!(out, "{text}").and_then(|_| out.flush());
    }
}
