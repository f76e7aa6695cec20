//! Why a connection could not be made ([`ConnectError`]), each message
//! naming what to check, and which of those are worth a reconnect.

use std::path::PathBuf;

use crate::exit;
use crate::trust::TrustError;
use tlschat_protocol::Fingerprint;

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
    /// TOFU: known_hosts holds another certificate for this server. The
    /// handshake was aborted; nothing was sent.
    #[error("{0}")]
    CertificateChanged(Box<ChangedCertificate>),
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
    #[error("the server {0} asks for its join password or an invite code, and none was given")]
    NoJoinSecret(String),
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

/// A server (TOFU) that presented another certificate than expected: both
/// fingerprints, where the expected one came from, and the known_hosts
/// line that would have to go if the operator confirms the new one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangedCertificate {
    pub server: String,
    /// The certificate expected (from known_hosts or the invite link, as
    /// `expected` says).
    pub known: Fingerprint,
    pub got: Fingerprint,
    pub known_hosts: PathBuf,
    /// The host's line in known_hosts starts with this (`host:port`).
    pub key: String,
    pub expected: Expected,
}

/// Where the certificate a [`ChangedCertificate`] expected came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected {
    /// known_hosts holds it.
    KnownHosts,
    /// The invite link names it; known_hosts holds nothing for the server.
    Link,
    /// known_hosts holds it, and the invite link names this other one (a
    /// link never replaces a known certificate).
    KnownHostsNotLink(Fingerprint),
}

impl std::fmt::Display for ChangedCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ChangedCertificate {
            server,
            known,
            got,
            known_hosts,
            key,
            expected,
        } = self;
        let file = known_hosts.display();
        match expected {
            Expected::KnownHosts => write!(
                f,
                "WARNING: THE CERTIFICATE OF {server} HAS CHANGED!\n\
                 Someone could be intercepting your connection, or the server's certificate was replaced.\n\
                 expected: {known}\n     got: {got}\n\
                 If the operator confirms the server's new certificate {got}, remove the line for {key} from {file} and connect again."
            ),
            Expected::Link => write!(
                f,
                "WARNING: THE CERTIFICATE OF {server} IS NOT THE ONE THE INVITE LINK NAMES!\n\
                 Someone could be intercepting your connection, or the link is out of date.\n\
                 the link: {known}\n     got: {got}\n\
                 Nothing was sent and nothing was stored in {file}. Ask for a new link, or check the fingerprint with the operator."
            ),
            Expected::KnownHostsNotLink(link) => write!(
                f,
                "WARNING: THE INVITE LINK NAMES ANOTHER CERTIFICATE FOR {server} THAN {file} HOLDS!\n\
                 The link could be forged, or the server's certificate was replaced.\n\
                 known_hosts: {known}\n   the link: {link}\n  presented: {got}\n\
                 A link never replaces a known certificate: nothing was sent. If the operator confirms the certificate {link}, remove the line for {key} from {file} and open the link again."
            ),
        }
    }
}

impl std::error::Error for ChangedCertificate {}

impl ConnectError {
    pub fn exit_code(&self) -> u8 {
        match self {
            ConnectError::Untrusted(_)
            | ConnectError::CertificateChanged(_)
            | ConnectError::TrustSetup(_) => exit::TRUST,
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
