//! Deciding whether the client trusts the server it reached.
//!
//! Three policies, chosen by the user:
//! - [`Trust::Ca`] (`--ca FILE`): ordinary WebPKI validation against the
//!   given certificates, host name included.
//! - [`Trust::Pin`] (`--fingerprint SHA256:…`): exactly that certificate.
//! - [`Trust::Tofu`] (the default): a publicly trusted certificate (webpki
//!   roots) is accepted as usual; otherwise the `known_hosts` file decides,
//!   like ssh: a known match passes, a changed fingerprint fails hard, an
//!   unknown host completes the TLS handshake but is only *recorded*
//!   (`Verdict::Unknown`), and the caller must ask the user (or honour
//!   `--accept-new`) before it sends a single byte.
//!   With an invite link's fingerprint (`link`), an unknown host showing
//!   exactly that certificate is `Verdict::Linked` (stored without asking:
//!   the link carried the answer); another certificate fails as a changed
//!   one does, and so does a link that disagrees with known_hosts: a link
//!   never replaces what known_hosts holds.
//!
//! Every policy goes through `TrustVerifier`, which always checks the
//! handshake signatures with the crypto provider's algorithms, so a pinned
//! certificate proves the server holds its key. There is no policy that
//! skips verification.
//!
//! Several clients may decide at once: `KnownHosts::add` takes a lock,
//! re-reads the file, merges and replaces it atomically, so no decision is
//! lost and a reader never sees a partial file. Error texts quote what the
//! certificate says only through [`sanitize`], since a certificate's names
//! are chosen by whoever made it.

use std::fmt;
use std::fs::{File, OpenOptions, TryLockError};
use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use crate::render::sanitize;
use tlschat_fs::{write_atomic, Mode};
use tlschat_protocol::history::HISTORY_ALPN;
use tlschat_protocol::tls::provider;
use tlschat_protocol::Fingerprint;

/// How the client decides to trust a server.
#[derive(Debug, Clone)]
pub enum Trust {
    /// Roots from a PEM file (`--ca`).
    Ca(Vec<CertificateDer<'static>>),
    /// Exactly this certificate (`--fingerprint`).
    Pin(Fingerprint),
    /// Public roots, then the known-hosts file under `key` (`host:port`);
    /// for a host it does not hold, the fingerprint an invite link carried
    /// (`link`) decides instead of the user.
    Tofu {
        known_hosts: PathBuf,
        key: String,
        link: Option<Fingerprint>,
    },
}

/// What the verifier concluded, for the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Verified by a CA (`--ca` or public roots).
    CaVerified,
    /// The certificate matches the pin or the known-hosts entry.
    Pinned,
    /// TOFU, host not in known_hosts: ask before going on.
    Unknown,
    /// TOFU, host known with another certificate (or `--fingerprint`
    /// unlike the presented one): the handshake failed.
    Changed { known: Fingerprint },
    /// TOFU, host not in known_hosts, showing the invite link's
    /// certificate: store it without asking.
    Linked,
    /// TOFU, host not in known_hosts, showing another certificate than the
    /// invite link's: the handshake failed.
    NotLinked { link: Fingerprint },
    /// TOFU: known_hosts holds `known` for the host and the invite link
    /// names another: the handshake failed, whatever was presented.
    LinkConflict {
        known: Fingerprint,
        link: Fingerprint,
    },
}

/// What the handshake presented and how it was judged.
#[derive(Debug, Clone)]
pub(crate) struct Outcome {
    pub(crate) fingerprint: Fingerprint,
    pub(crate) verdict: Verdict,
}

/// Why trust setup failed before any connection.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("cannot read the CA file {}: {source}", path.display())]
    CaRead {
        path: PathBuf,
        source: rustls_pki_types::pem::Error,
    },
    #[error("no certificate in the CA file {}", path.display())]
    CaEmpty { path: PathBuf },
    #[error("cannot use the CA file {}: {reason}", path.display())]
    CaBad { path: PathBuf, reason: String },
    #[error("known_hosts file {} line {line}: {reason}; fix or delete that line", path.display())]
    KnownHostsMalformed {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("cannot read {}: {source}", path.display())]
    KnownHostsRead {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {}: {source}", path.display())]
    KnownHostsWrite {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is locked by another tlschat for more than {} s; try again", path.display(), waited.as_secs())]
    KnownHostsLocked { path: PathBuf, waited: Duration },
}

/// Loads `--ca FILE`.
pub fn load_ca(path: &Path) -> Result<Vec<CertificateDer<'static>>, TrustError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|source| TrustError::CaRead {
            path: path.to_path_buf(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TrustError::CaEmpty {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

// ---- known_hosts -------------------------------------------------------------

/// The TOFU store: one `host:port SHA256:<hex>` per line, `#` comments.
#[derive(Debug, Clone)]
pub struct KnownHosts {
    path: PathBuf,
    entries: Vec<(String, Fingerprint)>,
}

impl KnownHosts {
    /// The platform's config dir (`~/.config/tlschat/known_hosts` on Linux).
    pub fn default_path() -> Option<PathBuf> {
        directories::ProjectDirs::from("", "", "tlschat")
            .map(|d| d.config_dir().join("known_hosts"))
    }

    /// A missing file is an empty store.
    pub(crate) fn load(path: &Path) -> Result<KnownHosts, TrustError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(source) => {
                return Err(TrustError::KnownHostsRead {
                    path: path.to_path_buf(),
                    source,
                })
            }
        };
        let mut entries = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let malformed = |reason: String| TrustError::KnownHostsMalformed {
                path: path.to_path_buf(),
                line: i + 1,
                reason,
            };
            let mut fields = line.split_whitespace();
            let (Some(host), Some(fp), None) = (fields.next(), fields.next(), fields.next()) else {
                return Err(malformed("expected `HOST:PORT SHA256:<hex>`".into()));
            };
            let fp = Fingerprint::parse(fp).map_err(|e| malformed(e.to_string()))?;
            entries.push((canonical_key(host), fp));
        }
        Ok(KnownHosts {
            path: path.to_path_buf(),
            entries,
        })
    }

    pub(crate) fn get(&self, key: &str) -> Option<Fingerprint> {
        let key = canonical_key(key);
        self.entries
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, f)| *f)
    }

    /// The lock file beside `path` that writers hold.
    pub(crate) fn lock_path(&self) -> PathBuf {
        let mut name = self
            .path
            .file_name()
            .map(|n| n.to_os_string())
            .unwrap_or_else(|| "known_hosts".into());
        name.push(".lock");
        self.path.with_file_name(name)
    }

    /// Adds an unknown host. Never replaces an entry: a changed certificate
    /// is the user's decision, made by editing the file.
    ///
    /// Under the writers' lock, the file is read again and the entry added
    /// to what is there now, then the file is replaced atomically: hosts
    /// that other clients added since [`KnownHosts::load`] are kept, and if
    /// one of them added this host first, its entry stays and is returned.
    pub(crate) fn add(&mut self, key: &str, fp: Fingerprint) -> Result<Added, TrustError> {
        let key = canonical_key(key);
        if let Some(known) = self.get(&key) {
            return Ok(Added::Present(known));
        }
        let err = |source| TrustError::KnownHostsWrite {
            path: self.path.clone(),
            source,
        };
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        let _lock = self.lock()?;
        self.entries = KnownHosts::load(&self.path)?.entries;
        if let Some(known) = self.get(&key) {
            return Ok(Added::Present(known));
        }
        let mut text =
            String::from("# tlschat known hosts: HOST:PORT SHA256:<certificate fingerprint>\n");
        for (k, f) in self
            .entries
            .iter()
            .chain(std::iter::once(&(key.clone(), fp)))
        {
            text.push_str(&format!("{k} {f}\n"));
        }
        write_atomic(&self.path, text.as_bytes(), Mode::Private).map_err(err)?;
        self.entries.push((key, fp));
        Ok(Added::New)
    }

    /// Takes the writers' lock (released when the file is dropped), waiting
    /// a bounded time for another writer.
    ///
    /// The lock is on a separate file that is never replaced or deleted.
    /// Locking known_hosts itself would not work: `write_atomic` renames a
    /// new file over it, so a writer that opens it after a rename locks the
    /// new inode while another still holds the lock on the old one, and both
    /// go ahead (on Windows the lock would also make the rename fail).
    /// Readers take no lock: the rename makes every read see a whole file.
    fn lock(&self) -> Result<File, TrustError> {
        const WAIT: Duration = Duration::from_secs(10);
        let path = self.lock_path();
        let mut options = OpenOptions::new();
        options.create(true).truncate(false).write(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options
            .open(&path)
            .map_err(|source| TrustError::KnownHostsWrite {
                path: path.clone(),
                source,
            })?;
        let start = Instant::now();
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(file),
                Err(TryLockError::WouldBlock) if start.elapsed() < WAIT => {
                    // Writers hold it for one small file write.
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(TryLockError::WouldBlock) => {
                    return Err(TrustError::KnownHostsLocked {
                        path: self.path.clone(),
                        waited: WAIT,
                    })
                }
                Err(TryLockError::Error(source)) => {
                    return Err(TrustError::KnownHostsWrite { path, source })
                }
            }
        }
    }
}

/// The form a known_hosts key is compared in: lower case, and an IPv6
/// address (`[ADDRESS]:PORT`) in its canonical spelling, so that a line
/// written as `[0:0::1]:6000` pins the server a link names as
/// `[::1]:6000`, and the other way round.
fn canonical_key(key: &str) -> String {
    let key = key.to_ascii_lowercase();
    let v6 = key
        .strip_prefix('[')
        .and_then(|rest| rest.split_once("]:"))
        .and_then(|(addr, port)| Some((addr.parse::<Ipv6Addr>().ok()?, port)));
    match v6 {
        Some((addr, port)) => format!("[{addr}]:{port}"),
        None => key,
    }
}

/// What [`KnownHosts::add`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Added {
    /// The entry was written.
    New,
    /// The host already had an entry (perhaps just written by another
    /// client), with this fingerprint; the file was left as it was.
    Present(Fingerprint),
}

// ---- the verifier ------------------------------------------------------------

/// The one `ServerCertVerifier` of the client, for every [`Trust`] policy.
pub(crate) struct TrustVerifier {
    policy: Policy,
    provider: Arc<CryptoProvider>,
    outcome: OutcomeSlot,
}

enum Policy {
    /// The verifier for the `--ca` roots, and the fingerprints of the
    /// certificates in that file.
    Ca(Arc<WebPkiServerVerifier>, Vec<Fingerprint>),
    Pin(Fingerprint),
    Tofu {
        public: Arc<WebPkiServerVerifier>,
        known: Option<Fingerprint>,
        link: Option<Fingerprint>,
    },
}

impl fmt::Debug for TrustVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TrustVerifier")
    }
}

/// Where the verifier leaves its [`Outcome`] for the handshake just made.
pub(crate) type OutcomeSlot = Arc<Mutex<Option<Outcome>>>;

/// A TLS client config for `trust`, and its [`OutcomeSlot`].
pub(crate) fn client_config(
    trust: &Trust,
) -> Result<(Arc<rustls::ClientConfig>, OutcomeSlot), TrustError> {
    let provider = provider();
    let webpki = |roots: RootCertStore| {
        WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone()).build()
    };
    let policy = match trust {
        Trust::Ca(certs) => {
            let mut roots = RootCertStore::empty();
            for cert in certs {
                roots.add(cert.clone()).map_err(|e| TrustError::CaBad {
                    path: PathBuf::from("--ca"),
                    reason: e.to_string(),
                })?;
            }
            let verifier = webpki(roots).map_err(|e| TrustError::CaBad {
                path: PathBuf::from("--ca"),
                reason: e.to_string(),
            })?;
            Policy::Ca(
                verifier,
                certs.iter().map(|c| Fingerprint::of_der(c)).collect(),
            )
        }
        Trust::Pin(fp) => Policy::Pin(*fp),
        Trust::Tofu {
            known_hosts,
            key,
            link,
        } => {
            let known = KnownHosts::load(known_hosts)?.get(key);
            let roots = RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            };
            let public = webpki(roots).map_err(|e| TrustError::CaBad {
                path: PathBuf::from("webpki-roots"),
                reason: e.to_string(),
            })?;
            Policy::Tofu {
                public,
                known,
                link: *link,
            }
        }
    };
    let outcome = Arc::new(Mutex::new(None));
    let verifier = Arc::new(TrustVerifier {
        policy,
        provider: provider.clone(),
        outcome: outcome.clone(),
    });
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TrustError::CaBad {
            path: PathBuf::from("provider"),
            reason: e.to_string(),
        })?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    // Asks for history mode; a server without history selects nothing and
    // the session stays v1.
    config.alpn_protocols = vec![HISTORY_ALPN.to_vec()];
    Ok((Arc::new(config), outcome))
}

/// webpki's "CA certificate used as an end entity", which rustls passes on
/// only as an opaque `Other` error.
fn is_ca_used_as_end_entity(e: &rustls::Error) -> bool {
    matches!(
        e,
        rustls::Error::InvalidCertificate(CertificateError::Other(_))
    ) && format!("{e:?}").contains("CaUsedAsEndEntity")
}

/// The error a pin mismatch fails the handshake with.
fn pin_mismatch() -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure)
}

/// TOFU's judgement of a certificate that is not publicly trusted: what
/// known_hosts holds for the host decides, else the invite link's
/// fingerprint, else the user (`Unknown`).
fn tofu_verdict(
    presented: Fingerprint,
    known: Option<Fingerprint>,
    link: Option<Fingerprint>,
) -> Verdict {
    match (known, link) {
        (Some(known), Some(link)) if known != link => Verdict::LinkConflict { known, link },
        (Some(known), _) if known == presented => Verdict::Pinned,
        (Some(known), _) => Verdict::Changed { known },
        (None, Some(link)) if link == presented => Verdict::Linked,
        (None, Some(link)) => Verdict::NotLinked { link },
        (None, None) => Verdict::Unknown,
    }
}

impl TrustVerifier {
    fn record(&self, fingerprint: Fingerprint, verdict: Verdict) {
        let mut slot = self.outcome.lock().unwrap_or_else(|e| e.into_inner());
        *slot = Some(Outcome {
            fingerprint,
            verdict,
        });
    }
}

impl ServerCertVerifier for TrustVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let fp = Fingerprint::of_der(end_entity);
        match &self.policy {
            Policy::Ca(webpki, given) => {
                match webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
                    Ok(v) => {
                        self.record(fp, Verdict::CaVerified);
                        Ok(v)
                    }
                    // A CA certificate shown as the server's own: only the
                    // user's own file can make that a configuration
                    // mistake; any other is simply not from the user's CA.
                    Err(e) if is_ca_used_as_end_entity(&e) && !given.contains(&fp) => Err(
                        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer),
                    ),
                    Err(e) => Err(e),
                }
            }
            Policy::Pin(pin) => {
                if fp == *pin {
                    self.record(fp, Verdict::Pinned);
                    Ok(ServerCertVerified::assertion())
                } else {
                    self.record(fp, Verdict::Changed { known: *pin });
                    Err(pin_mismatch())
                }
            }
            Policy::Tofu {
                public,
                known,
                link,
            } => {
                if public
                    .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
                    .is_ok()
                {
                    // A link does not pin a publicly trusted certificate:
                    // its renewals would break every link handed out.
                    self.record(fp, Verdict::CaVerified);
                    return Ok(ServerCertVerified::assertion());
                }
                let verdict = tofu_verdict(fp, *known, *link);
                let accepted = matches!(
                    verdict,
                    Verdict::Pinned | Verdict::Linked | Verdict::Unknown
                );
                self.record(fp, verdict);
                if accepted {
                    // Unknown completes the handshake so the user can be
                    // shown the fingerprint; the caller sends nothing until
                    // the user (or --accept-new) has said yes.
                    Ok(ServerCertVerified::assertion())
                } else {
                    Err(pin_mismatch())
                }
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A one-line explanation of a TLS failure, with the fix. What the
/// certificate says (its names, in rustls's text) is sanitized.
///
/// A certificate rejected under `--ca` may be an impostor's, so the text
/// never suggests trusting it another way (`--fingerprint`, known_hosts);
/// the one exception is a CA certificate the user's own `--ca` file holds
/// and the server presents as its own (a setup mistake, not an attack).
pub(crate) fn explain_tls_error(
    err: &rustls::Error,
    outcome: Option<&Outcome>,
    server: &str,
) -> String {
    if let Some(Outcome {
        fingerprint,
        verdict:
            Verdict::Changed { known }
            | Verdict::NotLinked { link: known }
            | Verdict::LinkConflict { known, .. },
    }) = outcome
    {
        return format!(
            "the certificate of {server} does not match the expected fingerprint: expected {known}, got {fingerprint}"
        );
    }
    let text = err.to_string();
    let text = sanitize(&text);
    match err {
        rustls::Error::InvalidCertificate(ce) => match ce {
            // BadSignature: an issuer with the right name but another key,
            // e.g. an old cert.pem after `gen-cert --force`.
            CertificateError::UnknownIssuer | CertificateError::BadSignature => format!(
                "{server}'s certificate is not signed by the CA given with --ca ({text}). \
                 This may be an impostor: nothing was sent. If the operator replaced the \
                 server's certificate, get the new CA certificate from them"
            ),
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => format!(
                "{server}'s certificate is not valid for that name ({text}); connect with a name or address in the certificate, or regenerate it with `tlschat-server gen-cert --force --san NAME`"
            ),
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => format!(
                "{server}'s certificate has expired ({text}); ask the operator to renew it"
            ),
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => format!(
                "{server}'s certificate is not valid yet ({text}); check this machine's clock"
            ),
            _ if is_ca_used_as_end_entity(err) => format!(
                "{server}'s certificate is the CA certificate from your --ca file, which cannot be used directly as a server's certificate ({text}); pin it with --fingerprint SHA256:… instead"
            ),
            _ => format!(
                "{server}'s certificate was rejected ({text}); nothing was sent; ask the server's operator"
            ),
        },
        _ => format!("TLS handshake with {server} failed: {text}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_hosts_round_trip_and_never_replace() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("known_hosts");
        let mut kh = KnownHosts::load(&path).unwrap();
        assert_eq!(kh.get("Host:1"), None);
        assert_eq!(kh.add("Host:1", Fingerprint([1; 32])).unwrap(), Added::New);
        assert_eq!(
            kh.add("host:1", Fingerprint([2; 32])).unwrap(),
            Added::Present(Fingerprint([1; 32]))
        );
        let kh = KnownHosts::load(&path).unwrap();
        assert_eq!(kh.get("HOST:1"), Some(Fingerprint([1; 32])));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(&format!("host:1 {}", Fingerprint([1; 32]))));
    }

    /// An IPv6 key is one address whatever its spelling, in the file
    /// (lines written before keys were canonical) and in a lookup.
    #[test]
    fn ipv6_keys_match_in_any_spelling() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known_hosts");
        std::fs::write(
            &path,
            format!(
                "[0:0::1]:6000 {}\n[2001:DB8::0:1]:7 {}\n",
                Fingerprint([1; 32]),
                Fingerprint([2; 32])
            ),
        )
        .unwrap();
        let mut kh = KnownHosts::load(&path).unwrap();
        assert_eq!(kh.get("[::1]:6000"), Some(Fingerprint([1; 32])));
        assert_eq!(kh.get("[0::0:1]:6000"), Some(Fingerprint([1; 32])));
        assert_eq!(kh.get("[2001:db8::1]:7"), Some(Fingerprint([2; 32])));
        assert_eq!(kh.get("[::1]:6001"), None);
        assert_eq!(
            kh.add("[::1]:6000", Fingerprint([3; 32])).unwrap(),
            Added::Present(Fingerprint([1; 32]))
        );
    }

    #[test]
    fn add_merges_what_others_wrote_since_the_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known_hosts");
        let mut mine = KnownHosts::load(&path).unwrap();
        let mut theirs = KnownHosts::load(&path).unwrap();
        theirs.add("other:1", Fingerprint([3; 32])).unwrap();
        theirs.add("both:1", Fingerprint([4; 32])).unwrap();
        // Loaded before those were written: both are kept, and the host
        // someone else added first keeps its entry.
        assert_eq!(
            mine.add("mine:1", Fingerprint([5; 32])).unwrap(),
            Added::New
        );
        assert_eq!(
            mine.add("both:1", Fingerprint([6; 32])).unwrap(),
            Added::Present(Fingerprint([4; 32]))
        );
        let now = KnownHosts::load(&path).unwrap();
        assert_eq!(now.get("other:1"), Some(Fingerprint([3; 32])));
        assert_eq!(now.get("both:1"), Some(Fingerprint([4; 32])));
        assert_eq!(now.get("mine:1"), Some(Fingerprint([5; 32])));
        assert!(mine.lock_path().exists());
        assert_eq!(mine.lock_path(), dir.path().join("known_hosts.lock"));
    }

    #[test]
    fn a_held_lock_makes_writers_wait() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known_hosts");
        let mut kh = KnownHosts::load(&path).unwrap();
        let held = kh.lock().unwrap();
        let (trying, tried) = std::sync::mpsc::channel();
        let writer = std::thread::spawn(move || {
            trying.send(()).unwrap();
            kh.add("h:1", Fingerprint([1; 32]))
        });
        // The writer is on its way; give it time to reach the lock and
        // check that it waits there instead of writing.
        tried.recv().unwrap();
        std::thread::sleep(Duration::from_millis(200));
        assert!(!path.exists(), "written while the lock was held");
        drop(held);
        assert_eq!(writer.join().unwrap().unwrap(), Added::New);
        assert!(KnownHosts::load(&path).unwrap().get("h:1").is_some());
    }

    #[test]
    fn certificate_names_in_errors_are_sanitized() {
        let err = rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext {
            expected: ServerName::try_from("127.0.0.1").unwrap().to_owned(),
            presented: vec![
                "DnsName(\"x\u{1b}]0;PWNED\u{7}\")".into(),
                "Привет\u{9b}2J".into(),
            ],
        });
        let text = explain_tls_error(&err, None, "127.0.0.1:1");
        assert!(!text.chars().any(|c| c.is_control()), "{text:?}");
        assert!(text.contains("x\u{FFFD}]0;PWNED\u{FFFD}"), "{text}");
        assert!(text.contains("Привет\u{FFFD}2J"), "{text}");
    }

    #[test]
    fn a_ca_mismatch_suggests_no_other_trust() {
        for ce in [
            CertificateError::UnknownIssuer,
            CertificateError::BadSignature,
            CertificateError::InvalidPurpose,
        ] {
            let text = explain_tls_error(&rustls::Error::InvalidCertificate(ce), None, "h:1");
            assert!(!text.contains("--fingerprint"), "{text}");
            assert!(!text.contains("known_hosts"), "{text}");
        }
        let text = explain_tls_error(
            &rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer),
            None,
            "h:1",
        );
        assert!(
            text.contains("not signed by the CA") && text.contains("impostor"),
            "{text}"
        );
    }

    #[test]
    fn a_link_decides_only_for_hosts_known_hosts_does_not_hold() {
        let (a, b, c) = (
            Fingerprint([1; 32]),
            Fingerprint([2; 32]),
            Fingerprint([3; 32]),
        );
        assert_eq!(tofu_verdict(a, None, Some(a)), Verdict::Linked);
        assert_eq!(
            tofu_verdict(b, None, Some(a)),
            Verdict::NotLinked { link: a }
        );
        assert_eq!(tofu_verdict(a, Some(a), Some(a)), Verdict::Pinned);
        assert_eq!(
            tofu_verdict(b, Some(a), Some(a)),
            Verdict::Changed { known: a }
        );
        // known_hosts and the link disagree: refused whichever one the
        // server matches (a link never replaces a known certificate).
        for presented in [a, b, c] {
            assert_eq!(
                tofu_verdict(presented, Some(a), Some(b)),
                Verdict::LinkConflict { known: a, link: b }
            );
        }
        assert_eq!(tofu_verdict(a, None, None), Verdict::Unknown);
        assert_eq!(
            tofu_verdict(b, Some(a), None),
            Verdict::Changed { known: a }
        );
    }

    #[test]
    fn malformed_known_hosts_names_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kh");
        std::fs::write(&path, "# c\nhost:1 SHA256:zz\n").unwrap();
        let e = KnownHosts::load(&path).unwrap_err().to_string();
        assert!(e.contains("line 2"), "{e}");
    }
}
