//! What the server tells a service manager (systemd `Type=notify`) about
//! its state.
//!
//! ```text
//! listener bound, startup lines printed → READY=1, STATUS=listening on ADDR
//! SIGHUP                                → RELOADING=1, MONOTONIC_USEC=now
//! reload done (or refused)              → READY=1, STATUS=…
//! SIGTERM / Ctrl-C                      → STOPPING=1
//! ```
//!
//! Each message is one datagram to the Unix socket named by
//! `NOTIFY_SOCKET`. Without that variable (started by hand, by a test, by
//! another service manager) and on non-Unix systems nothing is sent.
//! A failed send is logged and otherwise ignored: the server keeps serving,
//! and systemd reports the missing notification itself.

/// A state change worth telling the service manager about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State<'a> {
    /// Accepting connections; `status` is shown by `systemctl status`.
    Ready { status: &'a str },
    /// Reloading the configuration (SIGHUP); `Ready` follows when done.
    Reloading,
    /// Shutting down.
    Stopping,
}

/// Sends `state` to the service manager, if there is one.
pub fn notify(state: State<'_>) {
    if let Err(e) = send(state) {
        tracing::warn!("cannot notify the service manager ({state:?}): {e}");
    }
}

#[cfg(unix)]
fn send(state: State<'_>) -> std::io::Result<()> {
    use sd_notify::NotifyState;
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return Ok(());
    }
    match state {
        State::Ready { status } => {
            // One line: the protocol separates fields by newlines.
            let status = status.replace(['\n', '\r'], " ");
            sd_notify::notify(&[NotifyState::Ready, NotifyState::Status(&status)])
        }
        // systemd 253 and later want RELOADING=1 together with the
        // monotonic time the reload started, to tell the READY=1 that ends
        // this reload from an earlier one.
        State::Reloading => {
            sd_notify::notify(&[NotifyState::Reloading, NotifyState::monotonic_usec_now()?])
        }
        State::Stopping => sd_notify::notify(&[NotifyState::Stopping]),
    }
}

#[cfg(not(unix))]
fn send(_state: State<'_>) -> std::io::Result<()> {
    Ok(())
}
