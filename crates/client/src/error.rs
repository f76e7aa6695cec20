//! Why a connection could not be made ([`ConnectError`]), each message
//! naming what to check, and which of those are worth a reconnect.

use crate::exit;
use crate::trust::TrustError;

/// Why a connection could not be made; [`ConnectError::exit_code`] maps it
/// to the documented exit codes.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot find host {host}: {source}; check the name")]
    Resolve {
        host: String,
        source: std::io::Error,
    },
    #[error("cannot connect to {server}: {source}; is the server running and its port open?")]
    Connect {
        server: String,
        source: std::io::Error,
    },
    #[error("{what} with {server} timed out after {secs} s; check the address and that the port is open")]
    Timeout {
        server: String,
        what: &'static str,
        secs: u64,
    },
    #[error("{0}")]
    Tls(String),
    #[error("{0}")]
    Untrusted(String),
    #[error("{0}")]
    TrustSetup(#[from] TrustError),
    #[error("the server refused the login: {0}")]
    Refused(String),
    #[error("banned: {0}")]
    Banned(String),
    #[error("nickname not accepted: {0}")]
    Nick(String),
    #[error("the server asks a password for {0}; set TLSCHAT_PASSWORD, pass --password-file, or run in a terminal to be asked")]
    NoPassword(String),
    #[error("the server said: {0}")]
    Server(String),
    #[error("the server closed the connection during login")]
    Closed,
    /// The server said something the protocol does not allow; the text
    /// quotes it sanitized.
    #[error("protocol error: {0}; disconnected")]
    Protocol(String),
    #[error("connection error: {0}")]
    Io(#[from] std::io::Error),
}

impl ConnectError {
    pub fn exit_code(&self) -> u8 {
        match self {
            ConnectError::Untrusted(_) | ConnectError::TrustSetup(_) => exit::TRUST,
            ConnectError::Refused(_) | ConnectError::Banned(_) => exit::REFUSED,
            _ => exit::ERROR,
        }
    }

    /// Worth retrying after a lost connection (a network hiccup, a
    /// nickname still held by our own dead session), as opposed to a
    /// decision (refused, banned, untrusted).
    pub(crate) fn is_transient(&self) -> bool {
        matches!(
            self,
            ConnectError::Resolve { .. }
                | ConnectError::Connect { .. }
                | ConnectError::Timeout { .. }
                | ConnectError::Nick(_)
                | ConnectError::Server(_)
                | ConnectError::Closed
                | ConnectError::Io(_)
        )
    }
}
