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
//!   ([`Verdict::Unknown`]), and the caller must ask the user (or honour
//!   `--accept-new`) before it sends a single byte.
//!
//! Every policy goes through [`TrustVerifier`], which always checks the
//! handshake signatures with the crypto provider's algorithms, so a pinned
//! certificate proves the server holds its key. There is no policy that
//! skips verification.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use crate::certs::Fingerprint;
use crate::fsutil::{write_atomic, Mode};
use crate::tls::provider;

/// How the client decides to trust a server.
#[derive(Debug, Clone)]
pub enum Trust {
    /// Roots from a PEM file (`--ca`).
    Ca(Vec<CertificateDer<'static>>),
    /// Exactly this certificate (`--fingerprint`).
    Pin(Fingerprint),
    /// Public roots, then the known-hosts file under `key` (`host:port`).
    Tofu { known_hosts: PathBuf, key: String },
}

/// What the verifier concluded, for the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Verified by a CA (`--ca` or public roots).
    CaVerified,
    /// The certificate matches the pin or the known-hosts entry.
    Pinned,
    /// TOFU, host not in known_hosts: ask before going on.
    Unknown,
    /// TOFU, host known with another certificate: the handshake failed.
    Changed { known: Fingerprint },
}

/// What the handshake presented and how it was judged.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub fingerprint: Fingerprint,
    pub verdict: Verdict,
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
    pub fn load(path: &Path) -> Result<KnownHosts, TrustError> {
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
            entries.push((host.to_ascii_lowercase(), fp));
        }
        Ok(KnownHosts {
            path: path.to_path_buf(),
            entries,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn get(&self, key: &str) -> Option<Fingerprint> {
        let key = key.to_ascii_lowercase();
        self.entries
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, f)| *f)
    }

    /// Adds an unknown host and saves atomically. Never replaces an entry:
    /// a changed certificate is the user's decision, made by editing the file.
    pub fn add(&mut self, key: &str, fp: Fingerprint) -> Result<(), TrustError> {
        let key = key.to_ascii_lowercase();
        if self.get(&key).is_some() {
            return Ok(());
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
        let err = |source| TrustError::KnownHostsWrite {
            path: self.path.clone(),
            source,
        };
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        write_atomic(&self.path, text.as_bytes(), Mode::Private).map_err(err)?;
        self.entries.push((key, fp));
        Ok(())
    }
}

// ---- the verifier ------------------------------------------------------------

/// The one `ServerCertVerifier` of the client, for every [`Trust`] policy.
pub struct TrustVerifier {
    policy: Policy,
    provider: Arc<CryptoProvider>,
    outcome: OutcomeSlot,
}

enum Policy {
    Ca(Arc<WebPkiServerVerifier>),
    Pin(Fingerprint),
    Tofu {
        public: Arc<WebPkiServerVerifier>,
        known: Option<Fingerprint>,
    },
}

impl fmt::Debug for TrustVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TrustVerifier")
    }
}

/// Where the verifier leaves its [`Outcome`] for the handshake just made.
pub type OutcomeSlot = Arc<Mutex<Option<Outcome>>>;

/// A TLS client config for `trust`, and its [`OutcomeSlot`].
pub fn client_config(
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
            Policy::Ca(webpki(roots).map_err(|e| TrustError::CaBad {
                path: PathBuf::from("--ca"),
                reason: e.to_string(),
            })?)
        }
        Trust::Pin(fp) => Policy::Pin(*fp),
        Trust::Tofu { known_hosts, key } => {
            let known = KnownHosts::load(known_hosts)?.get(key);
            let roots = RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            };
            let public = webpki(roots).map_err(|e| TrustError::CaBad {
                path: PathBuf::from("webpki-roots"),
                reason: e.to_string(),
            })?;
            Policy::Tofu { public, known }
        }
    };
    let outcome = Arc::new(Mutex::new(None));
    let verifier = Arc::new(TrustVerifier {
        policy,
        provider: provider.clone(),
        outcome: outcome.clone(),
    });
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TrustError::CaBad {
            path: PathBuf::from("provider"),
            reason: e.to_string(),
        })?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok((Arc::new(config), outcome))
}

/// The error a pin mismatch fails the handshake with.
fn pin_mismatch() -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure)
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
            Policy::Ca(webpki) => {
                let r =
                    webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp, now);
                if r.is_ok() {
                    self.record(fp, Verdict::CaVerified);
                }
                r
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
            Policy::Tofu { public, known } => {
                if public
                    .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
                    .is_ok()
                {
                    self.record(fp, Verdict::CaVerified);
                    return Ok(ServerCertVerified::assertion());
                }
                match known {
                    Some(k) if *k == fp => {
                        self.record(fp, Verdict::Pinned);
                        Ok(ServerCertVerified::assertion())
                    }
                    Some(k) => {
                        self.record(fp, Verdict::Changed { known: *k });
                        Err(pin_mismatch())
                    }
                    None => {
                        // Completes the handshake so the user can be shown
                        // the fingerprint; the caller sends nothing until
                        // the user (or --accept-new) has said yes.
                        self.record(fp, Verdict::Unknown);
                        Ok(ServerCertVerified::assertion())
                    }
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

/// A one-line explanation of a TLS failure, with the fix.
pub fn explain_tls_error(err: &rustls::Error, outcome: Option<&Outcome>, server: &str) -> String {
    if let Some(Outcome {
        fingerprint,
        verdict: Verdict::Changed { known },
    }) = outcome
    {
        return format!(
            "the certificate of {server} does not match the expected fingerprint: expected {known}, got {fingerprint}"
        );
    }
    let text = err.to_string();
    match err {
        rustls::Error::InvalidCertificate(ce) => match ce {
            // BadSignature: an issuer with the right name but another key,
            // e.g. an old cert.pem after `gen-cert --force`.
            CertificateError::UnknownIssuer | CertificateError::BadSignature => format!(
                "{server}'s certificate is not signed by a trusted CA ({text}); pass the right --ca FILE, or pin it with --fingerprint SHA256:… as printed by the server"
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
            _ if text.contains("CaUsedAsEndEntity") => format!(
                "{server}'s certificate is marked as a CA and cannot be used directly with --ca ({text}); use --fingerprint SHA256:… instead"
            ),
            _ => format!("{server}'s certificate was rejected ({text}); try --fingerprint SHA256:… as printed by the server"),
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
        kh.add("Host:1", Fingerprint([1; 32])).unwrap();
        kh.add("host:1", Fingerprint([2; 32])).unwrap();
        let kh = KnownHosts::load(&path).unwrap();
        assert_eq!(kh.get("HOST:1"), Some(Fingerprint([1; 32])));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(&format!("host:1 {}", Fingerprint([1; 32]))));
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
