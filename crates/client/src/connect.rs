//! Making a connection: TCP (each resolved address in turn), the TLS
//! handshake, and the trust decision (`trust.rs` judges the certificate;
//! an unknown host under TOFU is accepted with `--accept-new`, by asking
//! the [`Prompter`], or without asking when it shows the certificate its
//! invite link names, and stored in known_hosts before anything is sent).
//! [`connect`] goes on to the login (`login.rs`).

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::error::{ChangedCertificate, Expected};
use crate::login::Connected;
use crate::trust::{self, Added, KnownHosts, Outcome, Trust, Verdict};
use crate::{render, ClientOptions, ConnectError};
use tlschat_protocol::connection::Connection;
use tlschat_protocol::{Fingerprint, MAX_SERVER_LINE};

/// Questions only a person can answer, asked during [`establish`] and
/// [`Trusted::login`].
pub trait Prompter: Send {
    /// An unknown server: trust this certificate from now on?
    fn confirm_new_host(&mut self, server: &str, fingerprint: &Fingerprint) -> bool;
    /// The server wants a password for `nick`.
    fn password(&mut self, nick: &str) -> Option<String>;
    /// The server wants its join password or an invite code (`PASS join`).
    /// A front end that cannot ask answers `None` and the login ends.
    fn join_secret(&mut self, server: &str) -> Option<String> {
        let _ = server;
        None
    }
}

/// A TLS connection whose certificate is trusted; nothing sent on it yet.
pub struct Trusted {
    pub(crate) conn: Connection<TlsStream<TcpStream>>,
    pub fingerprint: Fingerprint,
    pub(crate) verdict: Verdict,
    /// The known_hosts file this connection's certificate was added to
    /// (TOFU, an unknown host accepted); `None` if nothing was stored.
    pub stored_in: Option<PathBuf>,
    /// The certificate was trusted because the invite link named it (the
    /// host was not in known_hosts; no one was asked).
    pub by_link: bool,
}

impl fmt::Debug for Trusted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Trusted")
            .field("fingerprint", &self.fingerprint)
            .field("verdict", &self.verdict)
            .field("stored_in", &self.stored_in)
            .field("by_link", &self.by_link)
            .finish()
    }
}

/// Connects, establishes trust and logs in: [`establish`], then
/// [`Trusted::login`].
pub(crate) async fn connect<'p>(
    opts: &ClientOptions,
    mut prompter: Option<&mut (dyn Prompter + 'p)>,
) -> Result<Connected, ConnectError> {
    let trusted = establish(opts, prompter.as_deref_mut()).await?;
    trusted.login(opts, prompter).await
}

/// Connects and establishes trust; an unknown host accepted under TOFU is
/// stored in known_hosts here, before anything is sent, whatever the login
/// then brings ([`Trusted::stored_in`] says so).
pub async fn establish<'p>(
    opts: &ClientOptions,
    prompter: Option<&mut (dyn Prompter + 'p)>,
) -> Result<Trusted, ConnectError> {
    let server = opts.server.to_string();
    let (config, outcome_slot) = trust::client_config(&opts.trust)?;
    let tcp = tcp_connect(opts).await?;
    let name = match opts.server.host().parse::<IpAddr>() {
        Ok(ip) => ServerName::IpAddress(ip.into()),
        Err(_) => ServerName::try_from(opts.server.host().to_owned()).map_err(|_| {
            ConnectError::Tls(format!("`{}` is not a valid host name", opts.server.host()))
        })?,
    };
    let handshake = TlsConnector::from(config).connect(name, tcp);
    let tls = match timeout(opts.connect_timeout, handshake).await {
        Err(_) => {
            return Err(ConnectError::Timeout {
                server,
                what: "the TLS handshake",
                secs: opts.connect_timeout.as_secs(),
            })
        }
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            let outcome = outcome_slot
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            return Err(tls_failure(&e, outcome.as_ref(), opts));
        }
    };
    let outcome = outcome_slot
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
        .ok_or_else(|| ConnectError::Tls("the server presented no certificate".into()))?;
    let stored_in = match outcome.verdict {
        Verdict::Unknown => decide_unknown(opts, &outcome, prompter)?,
        // The link carried the answer the user would have been asked for.
        Verdict::Linked => store_new_host(opts, &outcome)?,
        _ => None,
    };
    Ok(Trusted {
        conn: Connection::new(tls, MAX_SERVER_LINE).complete_lines_only(),
        fingerprint: outcome.fingerprint,
        by_link: outcome.verdict == Verdict::Linked,
        verdict: outcome.verdict,
        stored_in,
    })
}

async fn tcp_connect(opts: &ClientOptions) -> Result<TcpStream, ConnectError> {
    let server = opts.server.to_string();
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((opts.server.host(), opts.server.port()))
        .await
        .map_err(|source| ConnectError::Resolve {
            host: opts.server.host().to_owned(),
            source,
        })?
        .collect();
    let mut last = None;
    for addr in addrs {
        match timeout(opts.connect_timeout, TcpStream::connect(addr)).await {
            Ok(Ok(tcp)) => {
                let _ = tcp.set_nodelay(true);
                return Ok(tcp);
            }
            Ok(Err(e)) => {
                last = Some(ConnectError::Connect {
                    server: server.clone(),
                    source: e,
                })
            }
            Err(_) => {
                last = Some(ConnectError::Timeout {
                    server: server.clone(),
                    what: "connecting",
                    secs: opts.connect_timeout.as_secs(),
                })
            }
        }
    }
    Err(last.unwrap_or_else(|| ConnectError::Resolve {
        host: opts.server.host().to_owned(),
        source: std::io::Error::new(std::io::ErrorKind::NotFound, "no addresses"),
    }))
}

fn tls_failure(
    e: &std::io::Error,
    outcome: Option<&Outcome>,
    opts: &ClientOptions,
) -> ConnectError {
    let server = opts.server.to_string();
    if let Some(changed) = outcome.and_then(|o| changed_certificate(o, opts)) {
        return changed;
    }
    let rustls_err = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match rustls_err {
        Some(err @ rustls::Error::InvalidCertificate(_)) => {
            ConnectError::Untrusted(trust::explain_tls_error(err, outcome, &server))
        }
        Some(rustls::Error::InvalidMessage(_) | rustls::Error::PeerSentOversizedRecord) => {
            ConnectError::Tls(format!(
                "{server} did not answer with TLS; is it a tlschat server, and is the port right?"
            ))
        }
        Some(err) => ConnectError::Tls(trust::explain_tls_error(err, outcome, &server)),
        None if e.kind() == std::io::ErrorKind::UnexpectedEof => ConnectError::Tls(format!(
            "{server} closed the connection during the TLS handshake; is it a tlschat server?"
        )),
        None => ConnectError::Tls(format!(
            "TLS handshake with {server} failed: {}",
            render::sanitize(&e.to_string())
        )),
    }
}

/// The error for a certificate other than the one expected (a pin, a
/// known_hosts entry, an invite link), if that is what `outcome` says.
fn changed_certificate(outcome: &Outcome, opts: &ClientOptions) -> Option<ConnectError> {
    let server = opts.server.to_string();
    let got = outcome.fingerprint;
    let (known, expected) = match outcome.verdict {
        Verdict::Changed { known } => (known, Expected::KnownHosts),
        Verdict::NotLinked { link } => (link, Expected::Link),
        Verdict::LinkConflict { known, link } => (known, Expected::KnownHostsNotLink(link)),
        _ => return None,
    };
    let Trust::Tofu {
        known_hosts, key, ..
    } = &opts.trust
    else {
        return Some(ConnectError::Untrusted(format!(
            "the certificate of {server} does not match --fingerprint: expected {known}, got {got}; \
             check the fingerprint with the operator (tlschat-server fingerprint)"
        )));
    };
    Some(ConnectError::CertificateChanged(Box::new(
        ChangedCertificate {
            server,
            known,
            got,
            known_hosts: known_hosts.clone(),
            key: key.clone(),
            expected,
        },
    )))
}

/// TOFU for a host not in known_hosts: `--accept-new`, or ask a person.
/// The known_hosts file the host was added to, if this call added it.
fn decide_unknown<'p>(
    opts: &ClientOptions,
    outcome: &Outcome,
    prompter: Option<&mut (dyn Prompter + 'p)>,
) -> Result<Option<PathBuf>, ConnectError> {
    let server = opts.server.to_string();
    let accepted = if opts.accept_new {
        true
    } else if let Some(p) = prompter {
        p.confirm_new_host(&server, &outcome.fingerprint)
    } else {
        return Err(ConnectError::Untrusted(format!(
            "{server} is not a known host (certificate {}) and there is no terminal to ask; \
             check the fingerprint with the operator, then pass --fingerprint {} or --accept-new",
            outcome.fingerprint, outcome.fingerprint
        )));
    };
    if !accepted {
        return Err(ConnectError::Untrusted(format!(
            "certificate of {server} not accepted; nothing was sent"
        )));
    }
    store_new_host(opts, outcome)
}

/// Adds a host TOFU accepted to known_hosts; the file, if this call added
/// it.
fn store_new_host(
    opts: &ClientOptions,
    outcome: &Outcome,
) -> Result<Option<PathBuf>, ConnectError> {
    let Trust::Tofu {
        known_hosts, key, ..
    } = &opts.trust
    else {
        return Err(ConnectError::Untrusted("unexpected trust outcome".into()));
    };
    let mut kh = KnownHosts::load(known_hosts)?;
    match kh.add(key, outcome.fingerprint)? {
        Added::New => Ok(Some(known_hosts.clone())),
        Added::Present(fp) if fp == outcome.fingerprint => Ok(None),
        // Another tlschat stored this host between our handshake and now,
        // with another certificate: the same alarm as a changed one.
        Added::Present(known) => Err(ConnectError::Untrusted(format!(
            "{key} was just added to {} with certificate {known}, but this connection \
             presented {}; someone could be intercepting one of the connections. \
             Nothing was sent; check the fingerprint with the operator.",
            known_hosts.display(),
            outcome.fingerprint
        ))),
    }
}
