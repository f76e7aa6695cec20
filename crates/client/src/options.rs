//! What the user chose for a connection: the server (`HOST[:PORT]`), the
//! nickname, the password, how to trust the certificate, and the session's
//! timers. [`ClientOptions`] is built once by a front end and reused by
//! every reconnect; [`exit`] holds the exit codes the outcomes map to.
//! [`ClientOptions::from_link`] builds them from an invite link.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::trust::Trust;
use tlschat_protocol::{HostPort, InviteLink};

/// Exit codes of the `tlschat` binary, documented in `--help` and README.
pub mod exit {
    pub const OK: u8 = 0;
    pub const ERROR: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const TRUST: u8 = 3;
    pub const REFUSED: u8 = 4;
}

/// Everything a connection needs; reused by every reconnect. Its `Debug`
/// never shows the password.
#[derive(Clone)]
pub struct ClientOptions {
    pub server: HostPort,
    pub nick: String,
    /// For a server that asks `PASS` (an account). Kept for reconnects.
    pub password: Option<String>,
    /// For a server that asks `PASS join`: its join password or an invite
    /// code. Never sent to `PASS`, as the password is never sent to
    /// `PASS join`. Kept for reconnects.
    pub join_secret: Option<String>,
    pub(crate) trust: Trust,
    /// TOFU: add an unknown host without asking (never replaces one).
    pub accept_new: bool,
    pub(crate) connect_timeout: Duration,
    /// Silence after which the client sends `/ping`.
    pub(crate) keepalive: Duration,
    /// How long a keepalive `/ping` may go unanswered.
    pub(crate) pong_timeout: Duration,
    /// Reconnect after a lost connection.
    pub reconnect: bool,
}

impl ClientOptions {
    pub fn new(server: HostPort, nick: impl Into<String>, trust: Trust) -> ClientOptions {
        ClientOptions {
            server,
            nick: nick.into(),
            password: None,
            join_secret: None,
            trust,
            accept_new: false,
            connect_timeout: Duration::from_secs(15),
            keepalive: Duration::from_secs(60),
            pong_timeout: Duration::from_secs(30),
            reconnect: true,
        }
    }

    /// The options an invite link gives: its server, trust on first use
    /// decided by the link's fingerprint (stored in `known_hosts` without
    /// asking, never replacing what the file holds), and its code as the
    /// answer to `PASS join`.
    pub fn from_link(
        link: &InviteLink,
        nick: impl Into<String>,
        known_hosts: PathBuf,
    ) -> ClientOptions {
        let server = link.server().clone();
        let trust = Trust::Tofu {
            known_hosts,
            key: server.to_string(),
            link: Some(link.fingerprint()),
        };
        let mut opts = ClientOptions::new(server, nick, trust);
        opts.join_secret = link.code().map(|c| c.expose().to_owned());
        opts
    }
}

impl fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ClientOptions {
            server,
            nick,
            password,
            join_secret,
            trust,
            accept_new,
            connect_timeout,
            keepalive,
            pong_timeout,
            reconnect,
        } = self;
        f.debug_struct("ClientOptions")
            .field("server", server)
            .field("nick", nick)
            .field("password", &password.as_ref().map(|_| Redacted))
            .field("join_secret", &join_secret.as_ref().map(|_| Redacted))
            .field("trust", trust)
            .field("accept_new", accept_new)
            .field("connect_timeout", connect_timeout)
            .field("keepalive", keepalive)
            .field("pong_timeout", pong_timeout)
            .field("reconnect", reconnect)
            .finish()
    }
}

/// Stands in for a secret in `Debug` output.
struct Redacted;

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tlschat_protocol::Fingerprint;

    #[test]
    fn debug_output_redacts_the_password() {
        let secret = "hunter2 пароль 密码 🔑";
        let mut opts = ClientOptions::new(
            "h:1".parse().unwrap(),
            "admin",
            Trust::Pin(Fingerprint([9; 32])),
        );
        opts.password = Some(secret.into());
        opts.join_secret = Some("abcdefghijklmnopqrstuvwxyz234567".into());
        for shown in [format!("{opts:?}"), format!("{opts:#?}")] {
            assert!(!shown.contains("hunter2"), "{shown}");
            assert!(!shown.contains("abcdefgh"), "{shown}");
            assert!(shown.contains("<redacted>"), "{shown}");
            assert!(shown.contains("admin"), "{shown}");
        }
        opts.password = None;
        assert!(format!("{opts:?}").contains("password: None"));
    }

    #[test]
    fn a_link_gives_server_trust_and_join_secret() {
        let hex = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
        let code = "abcdefghijklmnopqrstuvwxyz234567";
        let link = InviteLink::parse(&format!(
            "tlschat://[::1]:6000/?fp=SHA256:{hex}&code={code}"
        ))
        .unwrap();
        let opts = ClientOptions::from_link(&link, "Алиса", "kh".into());
        assert_eq!(opts.server.to_string(), "[::1]:6000");
        assert_eq!(opts.join_secret.as_deref(), Some(code));
        assert_eq!(opts.password, None);
        let Trust::Tofu {
            known_hosts,
            key,
            link: pinned,
        } = &opts.trust
        else {
            panic!("not TOFU: {:?}", opts.trust);
        };
        assert_eq!(
            (known_hosts.to_str(), key.as_str()),
            (Some("kh"), "[::1]:6000")
        );
        assert_eq!(*pinned, Some(link.fingerprint()));
        // A trust-only link (no code) leaves PASS join to the prompter.
        let bare = InviteLink::parse(&format!("tlschat://h.example/?fp=SHA256:{hex}")).unwrap();
        let opts = ClientOptions::from_link(&bare, "bob", "kh".into());
        assert_eq!(opts.join_secret, None);
        assert_eq!(opts.server.to_string(), "h.example:55555");
    }
}
