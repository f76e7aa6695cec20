//! Making, storing, loading and fingerprinting the server's TLS certificate.
//!
//! Two ways in, one way out:
//!
//! ```text
//! generate(sans, days) → GeneratedCert (PEM text + fingerprint)
//!     → write_pair(dir)   → DIR/cert.pem (0644) + DIR/key.pem (0600), atomically
//! cert.pem + key.pem (ours or the operator's, e.g. from Let's Encrypt)
//!     → load(paths)       → LoadedCert (DER chain + key, checked) → tls::TlsConfigs
//! ```
//!
//! [`load_or_generate`] glues the two together for the zero-configuration
//! first start. [`load`] checks everything a human can get wrong (missing
//! file, wrong file, swapped files, expired certificate, key from another
//! pair) up front so the server refuses to start with an error naming the
//! file and the fix, instead of failing every handshake later.
//!
//! Each generated or loaded certificate carries its [`Fingerprint`]
//! (tlschat-protocol), printed at startup for clients to pin.

use std::fmt;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use tlschat_fs::{check_private_dir, create_private_dir, write_atomic, Mode, UnsafeDir};
use tlschat_protocol::Fingerprint;

/// Lifetime of a generated certificate, in days (about ten years: a
/// self-signed certificate is trusted by pinning, so rotating it only makes
/// every client warn).
pub const DEFAULT_DAYS: u32 = 3650;

/// File name of the certificate chain inside a certificate directory.
const CERT_FILE: &str = "cert.pem";
/// File name of the private key inside a certificate directory.
const KEY_FILE: &str = "key.pem";

const SECONDS_PER_DAY: u64 = 24 * 60 * 60;
/// 9999-12-31T00:00:00Z: the last day X.509 (GeneralizedTime) can express.
const MAX_NOT_AFTER_UNIX: u64 = 253_402_214_400;

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// Everything that can go wrong making or loading a certificate. Every
/// message names the file involved and what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// The directory of a generated pair could be written by others.
    #[error(transparent)]
    UnsafeDir(#[from] UnsafeDir),
    #[error("{name:?} cannot go into the certificate: {reason}; pass host names like chat.example.com or IP addresses like 192.0.2.7")]
    InvalidSan { name: String, reason: &'static str },
    #[error("a certificate needs at least one host name or IP address; pass one, e.g. --san chat.example.com")]
    NoSans,
    #[error("a certificate lifetime of {days} days is not possible; choose between 1 and about 2,900,000 days (X.509 dates end in 9999)")]
    InvalidDays { days: u32 },
    #[error("could not generate the certificate: {0}")]
    Generate(#[source] rcgen::Error),
    #[error("{} already exists; pass --force to replace it, e.g. `tlschat-server gen-cert --force` (clients that pinned the old certificate will then warn)", path.display())]
    Exists { path: PathBuf },
    #[error("could not create directory {}: {source}; create it yourself or choose another directory", path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("could not write {}: {source}; check that the directory is writable and the disk is not full", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{} does not exist; generate a certificate with `tlschat-server gen-cert` or pass --cert/--key pointing at existing files", path.display())]
    Missing { path: PathBuf },
    #[error("{present} exists but {missing} does not; restore {missing}, or generate a new pair with `tlschat-server gen-cert --force`", present = present.display(), missing = missing.display())]
    Incomplete { present: PathBuf, missing: PathBuf },
    #[error("could not read {}: {source}; check that the user running tlschat can read it", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{} is not valid PEM ({source}); replace it with a PEM file, or generate a new pair with `tlschat-server gen-cert --force`", path.display())]
    Pem {
        path: PathBuf,
        #[source]
        source: pem::Error,
    },
    #[error("no certificate found in {} (expected a -----BEGIN CERTIFICATE----- block){hint}", path.display())]
    NoCertificate { path: PathBuf, hint: &'static str },
    #[error("no private key found in {} (expected a -----BEGIN PRIVATE KEY-----, EC PRIVATE KEY or RSA PRIVATE KEY block){hint}", path.display())]
    NoPrivateKey { path: PathBuf, hint: &'static str },
    #[error("certificate #{index} in {} cannot be parsed ({reason}); replace the file, or generate a new pair with `tlschat-server gen-cert --force`", path.display())]
    BadCertificate {
        path: PathBuf,
        /// 1-based position in the file.
        index: usize,
        reason: String,
    },
    #[error("the private key in {} cannot be used ({reason}); tlschat needs an unencrypted ECDSA (P-256/P-384), Ed25519 or RSA key in PKCS#8, SEC1 or PKCS#1 PEM", path.display())]
    BadKey { path: PathBuf, reason: String },
    #[error("certificate {} expired on {not_after}; generate a new one with `tlschat-server gen-cert --force` or pass a valid --cert/--key", path.display())]
    Expired { path: PathBuf, not_after: String },
    #[error("certificate {} is not valid before {not_before}; check this machine's clock, or generate a new one with `tlschat-server gen-cert --force`", path.display())]
    NotYetValid { path: PathBuf, not_before: String },
    #[error("private key {} does not belong to certificate {}; pass the key generated together with this certificate, or generate a new pair with `tlschat-server gen-cert --force`", key.display(), cert.display())]
    KeyMismatch { cert: PathBuf, key: PathBuf },
}

// ---------------------------------------------------------------------------
// Generating
// ---------------------------------------------------------------------------

/// A freshly generated certificate and key, as PEM text.
#[derive(Clone)]
pub struct GeneratedCert {
    pub(crate) cert_pem: String,
    /// PKCS#8 PEM. Secret: never log it.
    pub(crate) key_pem: String,
    pub fingerprint: Fingerprint,
}

impl fmt::Debug for GeneratedCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeneratedCert")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"[secret key elided]")
            .field("fingerprint", &self.fingerprint)
            .finish()
    }
}

/// ECDSA P-256 self-signed END-ENTITY certificate (not a CA: basic
/// constraints say CA:FALSE), EKU serverAuth, key usage digitalSignature,
/// subject CN `tlschat server <hostname>`, valid from now-1day (tolerates
/// clients whose clock is slightly behind) to now+`days`.
///
/// Each SAN that parses as an [`IpAddr`] becomes an IP SAN, anything else a
/// DNS SAN (`*.example.com` wildcards allowed). Duplicates are dropped
/// (DNS names compared case-insensitively, IPs by value).
pub fn generate(sans: &[String], days: u32) -> Result<GeneratedCert, CertError> {
    let sans = san_entries(sans)?;
    let now = unix_now();
    let not_after = now.saturating_add(u64::from(days).saturating_mul(SECONDS_PER_DAY));
    if days == 0 || not_after > MAX_NOT_AFTER_UNIX {
        return Err(CertError::InvalidDays { days });
    }

    let mut params = rcgen::CertificateParams::default();
    // rcgen exposes its dates as `time::OffsetDateTime` without re-exporting
    // the crate; build them from the epoch so we need no direct `time` dep.
    let epoch = rcgen::date_time_ymd(1970, 1, 1);
    params.not_before = epoch + Duration::from_secs(now.saturating_sub(SECONDS_PER_DAY));
    params.not_after = epoch + Duration::from_secs(not_after);
    params.subject_alt_names = sans;
    params.is_ca = rcgen::IsCa::ExplicitNoCa;
    params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::CommonName, common_name());
    params.distinguished_name = dn;

    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(CertError::Generate)?;
    let cert = params.self_signed(&key).map_err(CertError::Generate)?;
    Ok(GeneratedCert {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        fingerprint: Fingerprint::of_der(cert.der()),
    })
}

/// "tlschat server <hostname>", cut to the 64 characters X.520 allows.
fn common_name() -> String {
    let host = gethostname::gethostname();
    let host = host.to_string_lossy();
    let cn = if host.trim().is_empty() {
        "tlschat server".to_string()
    } else {
        format!("tlschat server {}", host.trim())
    };
    cn.chars().take(64).collect()
}

/// Validates, classifies and deduplicates the requested SANs.
fn san_entries(sans: &[String]) -> Result<Vec<rcgen::SanType>, CertError> {
    let mut seen: Vec<String> = Vec::new();
    let mut out = Vec::new();
    for name in sans {
        let (key, san) = match name.parse::<IpAddr>() {
            Ok(ip) => (ip.to_string(), rcgen::SanType::IpAddress(ip)),
            Err(_) => {
                check_dns_name(name).map_err(|reason| CertError::InvalidSan {
                    name: name.clone(),
                    reason,
                })?;
                let ia5 = name
                    .as_str()
                    .try_into()
                    .map_err(|_| CertError::InvalidSan {
                        name: name.clone(),
                        reason: "it contains non-ASCII characters",
                    })?;
                (name.to_ascii_lowercase(), rcgen::SanType::DnsName(ia5))
            }
        };
        if !seen.contains(&key) {
            seen.push(key);
            out.push(san);
        }
    }
    if out.is_empty() {
        return Err(CertError::NoSans);
    }
    Ok(out)
}

/// Ok if `name` is usable as a DNS SAN: a syntactically valid host name
/// (per rustls' own rules, so clients will accept it), optionally a
/// `*.` wildcard, no trailing dot.
fn check_dns_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("it is empty");
    }
    if !name.is_ascii() {
        return Err("it contains non-ASCII characters (use the xn-- punycode form)");
    }
    if name.ends_with('.') {
        return Err("it ends with '.' (drop the trailing dot)");
    }
    let base = name.strip_prefix("*.").unwrap_or(name);
    if base.contains('*') {
        return Err("'*' is only allowed as the whole first label, as in *.example.com");
    }
    if rustls_pki_types::DnsName::try_from(base).is_err() {
        return Err("it is neither an IP address nor a valid DNS name (letters, digits, '-' and '.', labels of 1-63 characters, not all-numeric)");
    }
    Ok(())
}

/// The names a generated certificate covers by default: loopback in every
/// form a local client might type, this machine's host name (when it is a
/// valid DNS name), then `extra`; deduplicated case-insensitively, first
/// occurrence wins.
pub fn default_sans(extra: &[String]) -> Vec<String> {
    let mut names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    let host = gethostname::gethostname();
    if let Some(host) = host.to_str() {
        if check_dns_name(host).is_ok() && !host.starts_with('*') {
            names.push(host.to_string());
        }
    }
    names.extend(extra.iter().cloned());

    let mut out: Vec<String> = Vec::with_capacity(names.len());
    for name in names {
        if !out.iter().any(|n| n.eq_ignore_ascii_case(&name)) {
            out.push(name);
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------

/// Where a certificate and its key live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertPaths {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl CertPaths {
    /// `dir/cert.pem` and `dir/key.pem`.
    pub fn in_dir(dir: &Path) -> CertPaths {
        CertPaths {
            cert: dir.join(CERT_FILE),
            key: dir.join(KEY_FILE),
        }
    }
}

/// Writes DIR/cert.pem (world-readable) and DIR/key.pem (owner-only on
/// Unix), each atomically, creating DIR (owner-only on Unix) and its
/// parents. Refuses with [`CertError::Exists`] if either file exists and
/// `force` is false.
pub fn write_pair(dir: &Path, cert: &GeneratedCert, force: bool) -> Result<CertPaths, CertError> {
    let paths = CertPaths::in_dir(dir);
    create_private_dir(dir).map_err(|source| CertError::CreateDir {
        path: dir.to_path_buf(),
        source,
    })?;
    if !force {
        for path in [&paths.cert, &paths.key] {
            if exists(path)? {
                return Err(CertError::Exists { path: path.clone() });
            }
        }
    }
    // Key first: if we die between the two writes, the leftover is a key
    // without a certificate, which load_or_generate reports rather than
    // silently serving a certificate whose key is gone.
    write_atomic(&paths.key, cert.key_pem.as_bytes(), Mode::Private).map_err(|source| {
        CertError::Write {
            path: paths.key.clone(),
            source,
        }
    })?;
    write_atomic(&paths.cert, cert.cert_pem.as_bytes(), Mode::Public).map_err(|source| {
        CertError::Write {
            path: paths.cert.clone(),
            source,
        }
    })?;
    Ok(paths)
}

fn exists(path: &Path) -> Result<bool, CertError> {
    path.try_exists().map_err(|source| CertError::Read {
        path: path.to_path_buf(),
        source,
    })
}

// ---------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------

/// A certificate chain and its key, checked and ready for rustls.
#[derive(Debug)]
pub struct LoadedCert {
    /// Leaf first, as in the PEM file.
    pub chain: Vec<CertificateDer<'static>>,
    /// PKCS#8, SEC1 or PKCS#1 RSA.
    pub(crate) key: PrivateKeyDer<'static>,
    /// Of the leaf.
    pub fingerprint: Fingerprint,
    pub(crate) paths: CertPaths,
    /// The leaf's expiry, for "expires in N days" warnings.
    pub(crate) not_after: SystemTime,
}

// By hand: PrivateKeyDer has clone_key() rather than Clone, so copies of
// the secret are explicit.
impl Clone for LoadedCert {
    fn clone(&self) -> Self {
        LoadedCert {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
            fingerprint: self.fingerprint,
            paths: self.paths.clone(),
            not_after: self.not_after,
        }
    }
}

/// Loads and checks a PEM certificate chain and its private key: both
/// files readable and PEM, at least one certificate and one key, every
/// certificate parseable, the leaf valid now, and the key the leaf's.
pub fn load(paths: &CertPaths) -> Result<LoadedCert, CertError> {
    let chain = read_chain(&paths.cert)?;
    let mut not_after = UNIX_EPOCH;
    for (i, der) in chain.iter().enumerate() {
        let (_, x509) =
            x509_parser::parse_x509_certificate(der).map_err(|e| CertError::BadCertificate {
                path: paths.cert.clone(),
                index: i + 1,
                reason: e.to_string(),
            })?;
        if i == 0 {
            not_after = check_validity(&paths.cert, x509.validity())?;
        }
    }
    // read_chain guarantees a first element.
    let leaf = chain.first().ok_or_else(|| CertError::NoCertificate {
        path: paths.cert.clone(),
        hint: "",
    })?;
    let fingerprint = Fingerprint::of_der(leaf);

    let key = read_key(&paths.key)?;
    check_key_matches(paths, &chain, &key)?;

    Ok(LoadedCert {
        chain,
        key,
        fingerprint,
        paths: paths.clone(),
        not_after,
    })
}

/// Loads DIR/cert.pem + DIR/key.pem; if neither exists, generates a pair
/// for [`default_sans`]`(extra_sans)` valid [`DEFAULT_DAYS`], writes and
/// loads it. If only one exists, refuses (never overwrites the survivor:
/// it may be the operator's only copy). An existing DIR that others could
/// write into is refused ([`check_private_dir`]): they could swap the key.
/// Returns `(cert, generated)`.
pub(crate) fn load_or_generate(
    dir: &Path,
    extra_sans: &[String],
) -> Result<(LoadedCert, bool), CertError> {
    let paths = CertPaths::in_dir(dir);
    if exists(dir)? {
        check_private_dir(dir)?;
    }
    match (exists(&paths.cert)?, exists(&paths.key)?) {
        (true, true) => Ok((load(&paths)?, false)),
        (false, false) => {
            let generated = generate(&default_sans(extra_sans), DEFAULT_DAYS)?;
            let paths = write_pair(dir, &generated, false)?;
            Ok((load(&paths)?, true))
        }
        (true, false) => Err(CertError::Incomplete {
            present: paths.cert,
            missing: paths.key,
        }),
        (false, true) => Err(CertError::Incomplete {
            present: paths.key,
            missing: paths.cert,
        }),
    }
}

/// Fingerprint of the first certificate in a PEM file.
pub fn fingerprint_file(cert: &Path) -> Result<Fingerprint, CertError> {
    let chain = read_chain(cert)?;
    chain
        .first()
        .map(|der| Fingerprint::of_der(der))
        .ok_or_else(|| CertError::NoCertificate {
            path: cert.to_path_buf(),
            hint: "",
        })
}

fn read_file(path: &Path) -> Result<Vec<u8>, CertError> {
    std::fs::read(path).map_err(|source| {
        if source.kind() == io::ErrorKind::NotFound {
            CertError::Missing {
                path: path.to_path_buf(),
            }
        } else {
            CertError::Read {
                path: path.to_path_buf(),
                source,
            }
        }
    })
}

/// All certificates in a PEM file, in order; never empty on success.
fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, CertError> {
    let bytes = read_file(path)?;
    let chain = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| CertError::Pem {
            path: path.to_path_buf(),
            source,
        })?;
    if chain.is_empty() {
        let hint = if contains(&bytes, b"PRIVATE KEY-----") {
            "; it holds a private key: are --cert and --key swapped?"
        } else if !contains(&bytes, b"-----BEGIN ") {
            "; the file is not PEM (convert DER with `openssl x509 -inform der -in FILE -out cert.pem`)"
        } else {
            ""
        };
        return Err(CertError::NoCertificate {
            path: path.to_path_buf(),
            hint,
        });
    }
    Ok(chain)
}

/// The first private key in a PEM file (PKCS#8, SEC1 or PKCS#1).
fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, CertError> {
    let bytes = read_file(path)?;
    match PrivateKeyDer::from_pem_slice(&bytes) {
        Ok(key) => Ok(key),
        Err(pem::Error::NoItemsFound) => {
            let hint = if contains(&bytes, b"ENCRYPTED PRIVATE KEY") {
                "; the key is encrypted: decrypt it with `openssl pkey -in KEY -out key.pem`"
            } else if contains(&bytes, b"BEGIN CERTIFICATE") {
                "; it holds a certificate: are --cert and --key swapped?"
            } else if !contains(&bytes, b"-----BEGIN ") {
                "; the file is not PEM (convert DER with `openssl pkey -inform der -in FILE -out key.pem`)"
            } else {
                ""
            };
            Err(CertError::NoPrivateKey {
                path: path.to_path_buf(),
                hint,
            })
        }
        Err(source) => Err(CertError::Pem {
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Errors if the leaf is not valid right now; returns its expiry.
fn check_validity(
    path: &Path,
    validity: &x509_parser::certificate::Validity,
) -> Result<SystemTime, CertError> {
    let now = i64::try_from(unix_now()).unwrap_or(i64::MAX);
    if validity.not_after.timestamp() < now {
        return Err(CertError::Expired {
            path: path.to_path_buf(),
            not_after: format_time(&validity.not_after),
        });
    }
    if validity.not_before.timestamp() > now {
        return Err(CertError::NotYetValid {
            path: path.to_path_buf(),
            not_before: format_time(&validity.not_before),
        });
    }
    Ok(system_time(validity.not_after.timestamp()))
}

/// Parses the key with the provider rustls will use (so "loads here" means
/// "works in the handshake") and compares its public half with the leaf's.
fn check_key_matches(
    paths: &CertPaths,
    chain: &[CertificateDer<'static>],
    key: &PrivateKeyDer<'static>,
) -> Result<(), CertError> {
    let signing_key = tlschat_protocol::tls::provider()
        .key_provider
        .load_private_key(key.clone_key())
        .map_err(|e| CertError::BadKey {
            path: paths.key.clone(),
            reason: e.to_string(),
        })?;
    let certified = rustls::sign::CertifiedKey::new(chain.to_vec(), signing_key);
    match certified.keys_match() {
        // Unknown: the key type cannot report its public key; rustls itself
        // accepts that, and so do we.
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => Ok(()),
        Err(rustls::Error::InconsistentKeys(_)) => Err(CertError::KeyMismatch {
            cert: paths.cert.clone(),
            key: paths.key.clone(),
        }),
        Err(e) => Err(CertError::BadCertificate {
            path: paths.cert.clone(),
            index: 1,
            reason: e.to_string(),
        }),
    }
}

fn unix_now() -> u64 {
    // A clock before 1970 is broken anyway; treat it as the epoch.
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn system_time(unix: i64) -> SystemTime {
    let magnitude = Duration::from_secs(unix.unsigned_abs());
    let t = if unix >= 0 {
        UNIX_EPOCH.checked_add(magnitude)
    } else {
        UNIX_EPOCH.checked_sub(magnitude)
    };
    // Only unrepresentable on platforms with a narrow SystemTime.
    t.unwrap_or(UNIX_EPOCH)
}

/// "2025-01-01 00:00:00 UTC".
fn format_time(t: &x509_parser::time::ASN1Time) -> String {
    let dt = t.to_datetime();
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
        dt.year(),
        u8::from(dt.month()),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use x509_parser::extensions::GeneralName;

    fn sans(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    fn parse_cert(der: &[u8]) -> x509_parser::certificate::X509Certificate<'_> {
        x509_parser::parse_x509_certificate(der).unwrap().1
    }

    /// Minimal PEM encoder so tests can write SEC1/PKCS#1 keys without a
    /// base64 dependency.
    fn to_pem(label: &str, der: &[u8]) -> String {
        const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut b64 = String::new();
        for chunk in der.chunks(3) {
            let n = (u32::from(chunk[0]) << 16)
                | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
                | u32::from(*chunk.get(2).unwrap_or(&0));
            for i in 0..4 {
                if i <= chunk.len() {
                    b64.push(B64[((n >> (18 - 6 * i)) & 63) as usize] as char);
                } else {
                    b64.push('=');
                }
            }
        }
        let mut out = format!("-----BEGIN {label}-----\n");
        for line in b64.as_bytes().chunks(64) {
            out.push_str(std::str::from_utf8(line).unwrap());
            out.push('\n');
        }
        out.push_str(&format!("-----END {label}-----\n"));
        out
    }

    /// Splits one DER TLV off `input`: (tag, contents, rest).
    fn der_tlv(input: &[u8]) -> (u8, &[u8], &[u8]) {
        let tag = input[0];
        let (len, header) = match input[1] {
            n if n < 0x80 => (usize::from(n), 2),
            0x81 => (usize::from(input[2]), 3),
            0x82 => ((usize::from(input[2]) << 8) | usize::from(input[3]), 4),
            n => panic!("unsupported DER length byte {n:#x}"),
        };
        (tag, &input[header..header + len], &input[header + len..])
    }

    /// The private key inside a PKCS#8 PrivateKeyInfo: for EC keys that is
    /// the SEC1 ECPrivateKey, for RSA keys the PKCS#1 RSAPrivateKey.
    fn unwrap_pkcs8(pkcs8: &[u8]) -> Vec<u8> {
        let (tag, body, _) = der_tlv(pkcs8);
        assert_eq!(tag, 0x30);
        let (_version, _, rest) = der_tlv(body);
        let (_algorithm, _, rest) = der_tlv(rest);
        let (tag, key, _) = der_tlv(rest);
        assert_eq!(tag, 0x04, "expected OCTET STRING");
        key.to_vec()
    }

    fn write(dir: &Path, name: &str, contents: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }

    #[test]
    fn generate_write_load_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let generated = generate(
            &sans(&["localhost", "127.0.0.1", "::1", "chat.example.com"]),
            30,
        )
        .unwrap();
        let paths = write_pair(dir.path(), &generated, false).unwrap();
        assert_eq!(paths, CertPaths::in_dir(dir.path()));

        let loaded = load(&paths).unwrap();
        assert_eq!(loaded.fingerprint, generated.fingerprint);
        assert_eq!(loaded.chain.len(), 1);
        assert_eq!(
            fingerprint_file(&paths.cert).unwrap(),
            generated.fingerprint
        );
        assert!(matches!(loaded.key, PrivateKeyDer::Pkcs8(_)));
        let days_left = loaded
            .not_after
            .duration_since(SystemTime::now())
            .unwrap()
            .as_secs()
            / SECONDS_PER_DAY;
        assert!((29..=30).contains(&days_left), "{days_left}");

        let x509 = parse_cert(&loaded.chain[0]);
        let san = x509.subject_alternative_name().unwrap().unwrap();
        let mut dns = Vec::new();
        let mut ips = Vec::new();
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(d) => dns.push(d.to_string()),
                GeneralName::IPAddress(ip) => ips.push(ip.to_vec()),
                other => panic!("unexpected SAN {other:?}"),
            }
        }
        assert_eq!(dns, ["localhost", "chat.example.com"]);
        assert_eq!(
            ips,
            [
                vec![127, 0, 0, 1],
                std::net::Ipv6Addr::LOCALHOST.octets().to_vec()
            ]
        );

        // An end-entity certificate, not a CA, for TLS servers only.
        assert!(!x509.is_ca());
        let bc = x509.basic_constraints().unwrap().unwrap();
        assert!(!bc.value.ca);
        let eku = x509.extended_key_usage().unwrap().unwrap();
        assert!(eku.value.server_auth);
        let ku = x509.key_usage().unwrap().unwrap();
        assert!(ku.value.digital_signature());
        assert!(!ku.value.key_cert_sign());
        let cn = x509.subject().iter_common_name().next().unwrap();
        assert!(cn.as_str().unwrap().starts_with("tlschat server"));
        // Backdated by a day for clients with slow clocks.
        let now = i64::try_from(unix_now()).unwrap();
        let backdate = now - x509.validity().not_before.timestamp();
        assert!((86_000..=86_500).contains(&backdate), "{backdate}");
    }

    #[test]
    fn sans_are_deduplicated_and_validated() {
        let g = generate(
            &sans(&[
                "Example.com",
                "example.COM",
                "::1",
                "0:0::1",
                "*.example.org",
            ]),
            1,
        )
        .unwrap();
        let der = CertificateDer::from_pem_slice(g.cert_pem.as_bytes()).unwrap();
        let x509 = parse_cert(&der);
        let san = x509.subject_alternative_name().unwrap().unwrap();
        assert_eq!(san.value.general_names.len(), 3);

        for bad in [
            "",
            "exa mple.com",
            "-bad.com",
            "bad..com",
            "trailing.dot.",
            "1.2.3",
            "a.*.com",
            "bücher.de",
        ] {
            let err = generate(&sans(&["localhost", bad]), 1).unwrap_err();
            match &err {
                CertError::InvalidSan { name, .. } => assert_eq!(name, bad),
                other => panic!("{bad:?}: {other:?}"),
            }
            assert!(err.to_string().contains("cannot go into the certificate"));
        }
        assert!(matches!(generate(&[], 1), Err(CertError::NoSans)));
        assert!(matches!(
            generate(&sans(&["localhost"]), 0),
            Err(CertError::InvalidDays { days: 0 })
        ));
        assert!(matches!(
            generate(&sans(&["localhost"]), u32::MAX),
            Err(CertError::InvalidDays { .. })
        ));
    }

    #[test]
    fn default_sans_cover_loopback_and_dedup() {
        let s = default_sans(&sans(&[
            "LOCALHOST",
            "chat.example.com",
            "Chat.Example.com",
        ]));
        assert_eq!(&s[..3], ["localhost", "127.0.0.1", "::1"]);
        assert_eq!(
            s.iter()
                .filter(|n| n.eq_ignore_ascii_case("localhost"))
                .count(),
            1
        );
        assert_eq!(
            s.iter()
                .filter(|n| n.eq_ignore_ascii_case("chat.example.com"))
                .count(),
            1
        );
        assert_eq!(s.last().unwrap(), "chat.example.com");
        // Whatever this machine is called, the defaults must be generatable.
        generate(&s, 1).unwrap();
    }

    #[test]
    fn write_pair_refuses_without_force() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("a/b");
        let first = generate(&sans(&["localhost"]), 1).unwrap();
        let paths = write_pair(&sub, &first, false).unwrap();

        let second = generate(&sans(&["localhost"]), 1).unwrap();
        let err = write_pair(&sub, &second, false).unwrap_err();
        match &err {
            CertError::Exists { path } => assert_eq!(path, &paths.cert),
            other => panic!("{other:?}"),
        }
        assert!(err.to_string().contains("--force"));
        assert!(err.to_string().contains(&paths.cert.display().to_string()));
        assert_eq!(fingerprint_file(&paths.cert).unwrap(), first.fingerprint);

        // Only the key left over: still refused, naming the key.
        std::fs::remove_file(&paths.cert).unwrap();
        match write_pair(&sub, &second, false) {
            Err(CertError::Exists { path }) => assert_eq!(path, paths.key),
            other => panic!("{other:?}"),
        }

        write_pair(&sub, &second, true).unwrap();
        assert_eq!(load(&paths).unwrap().fingerprint, second.fingerprint);

        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&paths.key), 0o600);
            assert_eq!(mode(&paths.cert), 0o644);
        }
    }

    #[test]
    fn load_or_generate_generates_once_and_refuses_half_pairs() {
        let dir = tempfile::tempdir().unwrap();
        let (first, generated) =
            load_or_generate(dir.path(), &sans(&["chat.example.com"])).unwrap();
        assert!(generated);
        let (second, generated) = load_or_generate(dir.path(), &[]).unwrap();
        assert!(!generated);
        assert_eq!(first.fingerprint, second.fingerprint);
        let x509 = parse_cert(&first.chain[0]);
        let san = x509.subject_alternative_name().unwrap().unwrap();
        assert!(san
            .value
            .general_names
            .contains(&GeneralName::DNSName("chat.example.com")));

        let key = std::fs::read(&first.paths.key).unwrap();
        std::fs::remove_file(&first.paths.key).unwrap();
        let err = load_or_generate(dir.path(), &[]).unwrap_err();
        match &err {
            CertError::Incomplete { present, missing } => {
                assert_eq!(present, &first.paths.cert);
                assert_eq!(missing, &first.paths.key);
            }
            other => panic!("{other:?}"),
        }
        // The surviving certificate was not touched.
        assert_eq!(
            fingerprint_file(&first.paths.cert).unwrap(),
            first.fingerprint
        );

        std::fs::write(&first.paths.key, key).unwrap();
        std::fs::remove_file(&first.paths.cert).unwrap();
        match load_or_generate(dir.path(), &[]) {
            Err(CertError::Incomplete { present, missing }) => {
                assert_eq!(present, first.paths.key);
                assert_eq!(missing, first.paths.cert);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn expired_and_future_certificates_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(sans(&["localhost"])).unwrap();
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2021, 6, 30);
        let cert = params.self_signed(&key).unwrap();
        let paths = CertPaths {
            cert: write(dir.path(), "old.pem", &cert.pem()),
            key: write(dir.path(), "old.key", &key.serialize_pem()),
        };
        let err = load(&paths).unwrap_err();
        assert!(matches!(err, CertError::Expired { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains(&paths.cert.display().to_string()), "{msg}");
        assert!(msg.contains("expired on 2021-06-30"), "{msg}");
        assert!(msg.contains("gen-cert --force"), "{msg}");

        params.not_before = rcgen::date_time_ymd(4000, 1, 1);
        params.not_after = rcgen::date_time_ymd(4001, 1, 1);
        let cert = params.self_signed(&key).unwrap();
        std::fs::write(&paths.cert, cert.pem()).unwrap();
        let err = load(&paths).unwrap_err();
        assert!(matches!(err, CertError::NotYetValid { .. }), "{err:?}");
        assert!(err.to_string().contains("4000-01-01"), "{err}");
    }

    #[test]
    fn mismatched_key_is_refused_naming_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let a = generate(&sans(&["localhost"]), 1).unwrap();
        let b = generate(&sans(&["localhost"]), 1).unwrap();
        let paths = CertPaths {
            cert: write(dir.path(), "a.pem", &a.cert_pem),
            key: write(dir.path(), "b.key", &b.key_pem),
        };
        let err = load(&paths).unwrap_err();
        assert!(matches!(err, CertError::KeyMismatch { .. }), "{err:?}");
        assert!(err.to_string().contains(&paths.key.display().to_string()));
    }

    #[test]
    fn garbage_files_give_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let good = generate(&sans(&["localhost"]), 1).unwrap();
        let cert = write(dir.path(), "cert.pem", &good.cert_pem);
        let key = write(dir.path(), "key.pem", &good.key_pem);
        let garbage = write(dir.path(), "garbage", "hello, I am not a certificate\n");
        let load_pair = |c: &PathBuf, k: &PathBuf| {
            load(&CertPaths {
                cert: c.clone(),
                key: k.clone(),
            })
            .unwrap_err()
        };

        let missing = dir.path().join("nope.pem");
        let err = load_pair(&missing, &key);
        assert!(
            matches!(&err, CertError::Missing { path } if path == &missing),
            "{err:?}"
        );
        assert!(err.to_string().contains("gen-cert"));
        assert!(
            matches!(load_pair(&cert, &missing), CertError::Missing { path } if path == missing)
        );

        let err = load_pair(&garbage, &key);
        assert!(
            matches!(&err, CertError::NoCertificate { path, .. } if path == &garbage),
            "{err:?}"
        );
        assert!(err.to_string().contains("not PEM"), "{err}");
        let err = load_pair(&cert, &garbage);
        assert!(
            matches!(&err, CertError::NoPrivateKey { path, .. } if path == &garbage),
            "{err:?}"
        );

        // Swapped files.
        let err = load_pair(&key, &cert);
        assert!(err.to_string().contains("swapped"), "{err}");

        // PEM armour around garbage.
        let bad_b64 = write(
            dir.path(),
            "bad64.pem",
            "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
        );
        assert!(matches!(load_pair(&bad_b64, &key), CertError::Pem { .. }));
        let unterminated = write(
            dir.path(),
            "unterminated.pem",
            "-----BEGIN CERTIFICATE-----\nAAAA\n",
        );
        assert!(matches!(
            load_pair(&unterminated, &key),
            CertError::Pem { .. }
        ));
        let not_der = write(
            dir.path(),
            "notder.pem",
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        );
        let err = load_pair(&not_der, &key);
        assert!(
            matches!(err, CertError::BadCertificate { index: 1, .. }),
            "{err:?}"
        );
        let bad_key = write(
            dir.path(),
            "badkey.pem",
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        );
        let err = load_pair(&cert, &bad_key);
        assert!(
            matches!(&err, CertError::BadKey { path, .. } if path == &bad_key),
            "{err:?}"
        );

        let encrypted = write(
            dir.path(),
            "enc.pem",
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n",
        );
        let err = load_pair(&cert, &encrypted);
        assert!(err.to_string().contains("encrypted"), "{err}");

        assert!(matches!(
            fingerprint_file(&garbage),
            Err(CertError::NoCertificate { .. })
        ));
        assert!(matches!(
            fingerprint_file(&missing),
            Err(CertError::Missing { .. })
        ));
    }

    #[test]
    fn sec1_ec_keys_load() {
        let dir = tempfile::tempdir().unwrap();
        let g = generate(&sans(&["localhost"]), 1).unwrap();
        let pkcs8 = PrivateKeyDer::from_pem_slice(g.key_pem.as_bytes()).unwrap();
        let sec1 = unwrap_pkcs8(pkcs8.secret_der());
        let paths = CertPaths {
            cert: write(dir.path(), "cert.pem", &g.cert_pem),
            key: write(dir.path(), "key.pem", &to_pem("EC PRIVATE KEY", &sec1)),
        };
        let loaded = load(&paths).unwrap();
        assert!(matches!(loaded.key, PrivateKeyDer::Sec1(_)));
        assert_eq!(loaded.fingerprint, g.fingerprint);
    }

    /// A 2048-bit RSA key made once with `openssl genpkey`, for tests only
    /// (neither rcgen nor the crypto provider generates RSA keys here).
    const TEST_RSA_PKCS8: &str = "-----BEGIN PRIVATE KEY-----
MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQCXyNSGMOXmMiZE
7JIkMnGeDijeQkYHjIdHrQoNeRlbdHbyBfEhp1QhkHlVp/FVwfM3wThhqOlIpjIh
uYXyOoZU1dwGU8xXPEcqmZt9HYyyA1AfRDY5dsnjeLdB65bWffeITbt4cHBirPKM
+3HOzjU++93Bljd+f35gAHtoOHGzwVEra51xZixGulUaMQwVXthAux6/yMA21oLO
fnr/LIBAGiHf9nyRSKH0zAUvxPT8AGLlNcUsvgjPs8AYRIGhoXov0zmO0TY3ZQOo
0WGEXR1mlG8MnYgLiXTjzAGVPemQJjNHDpdI+0KGG7ZZXMzFUuzj+ov6j7OpyJFA
8vGDlx2FAgMBAAECggEAJPFVgL/ABPIpzFbEDxlT/AM4QThiMQ4sEu7z5mmWGWNU
W/3EPcurN2whjA6PN684Elbt8R8agHsq8nhkOJuz/Ev8/HFC5+yc6apvZNlfWChk
ROfmRsA5zSqhd+LuWJBaQguhWGQNhobPli7Q+WPJI+ZLiAWWxiwjxxv27VvnmLdR
oGnB0Lh4/gOqAo4IGod3kZi1OnIeBS9u+v6lZtIrlyCdGrXsl0/UoXNonHb2OYAe
ceXGTWPVlWKPiCIzMSp5VpuIo8kEzIj9dMYtDfbf6UGYBGINzQ86iNgUGnfKJ/yO
9XkXZjgMiSTMZMBfNGahFj6tTZCVZrqMZk3yzRwF4QKBgQDIxCThGHlX4ZM3UsKN
fyW0QrWPitvRRrK4Q9PCxcmSJv7+Hvbau1ftXKEkeYdUJYoNHgzqjxUbbBF0QGoD
5PSzuOzviaBBP/Rqvr4O9NDP0kU/4uGq8yFdsAMFUTL+QW3E9Ia6M8E73KqT4cZx
KCak0ofozu9t2a3EXuS8hbuXDQKBgQDBiu5t/NzRNacfu8d+FI2Ou/FjcDCCQ681
HgEKqUGCVtwggbt7jgBOX3L8UYXrK4RpOrGjPl+2JP3n+WaH4+eF6dh7n4Jhg53S
75H4FuRFO08E9EHGWhRJ2ixAEI8GmDrpUpP7ll3yrXcEG/+kGHcYRps7oiq6saDP
BRnr0peCWQKBgHLiOrBMDvPI8zMPOqE5htvV6ItRTGQ+7noe5ghooeXuRrAoC94y
oigDf3qdyGDQcmT7Myzt34gnmP1K9t9vns9RHNQdjwSHklea+qsYUHz7uADM1ZG7
Ovafh7r9Mg7oZeX0fzwB7atRpJKm+aU68pISnw8Li1ry20qpen6ekC/pAoGAEIy0
vqr0pt8Tn18LO/i98gqYJYyeWUU4Yi5ioGrAs0iCIjV1tqb517nJt1GxRd6+v9DJ
B9B5lrWrEH7/CXevgH/yhv+ownXitPrPXIt4kYL0ytOoHDHvsjD5v7CqykGSKAlr
pgPBnNLAbpWGUp3U8Tp4Y60GQliWC53ADa5ATmECgYEAmNbzBs5gjkMxo4rITGOP
V2g+dfG04h5aoMe1Lfdkcx9wluOaX5kX5GYPRM/Oz07XfOEXmx//szNZzI+ZPunL
OdOm4nSjFH2b5T7KvUBBICecwd5EsGSwUhClnxR9FCjbo7lRGWo8GrKKqaFfz0DB
zgymK8liZ8WpZNrL10Cg4WI=
-----END PRIVATE KEY-----
";

    #[test]
    fn rsa_pkcs1_keys_load() {
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::from_pem_and_sign_algo(TEST_RSA_PKCS8, &rcgen::PKCS_RSA_SHA256)
            .unwrap();
        let cert = rcgen::CertificateParams::new(sans(&["localhost"]))
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let pkcs1 = unwrap_pkcs8(&key.serialize_der());
        let paths = CertPaths {
            cert: write(dir.path(), "cert.pem", &cert.pem()),
            key: write(dir.path(), "key.pem", &to_pem("RSA PRIVATE KEY", &pkcs1)),
        };
        let loaded = load(&paths).unwrap();
        assert!(matches!(loaded.key, PrivateKeyDer::Pkcs1(_)));
        // Usable as the certificate's key, asked of the provider itself:
        // `tls` builds on this module, so its tests, not these, cover the
        // whole server configuration.
        rustls::sign::CertifiedKey::from_der(
            loaded.chain.clone(),
            loaded.key.clone_key(),
            &tlschat_protocol::tls::provider(),
        )
        .unwrap();
    }

    #[test]
    fn chains_load_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let leaf = generate(&sans(&["localhost"]), 1).unwrap();
        let other = generate(&sans(&["ca.example"]), 1).unwrap();
        let paths = CertPaths {
            cert: write(
                dir.path(),
                "chain.pem",
                &format!("{}{}", leaf.cert_pem, other.cert_pem),
            ),
            // Keys may also sit in a combined file after the certificates.
            key: write(
                dir.path(),
                "key.pem",
                &format!("{}{}", leaf.cert_pem, leaf.key_pem),
            ),
        };
        let loaded = load(&paths).unwrap();
        assert_eq!(loaded.chain.len(), 2);
        assert_eq!(Fingerprint::of_der(&loaded.chain[0]), leaf.fingerprint);
        assert_eq!(Fingerprint::of_der(&loaded.chain[1]), other.fingerprint);
        assert_eq!(loaded.fingerprint, leaf.fingerprint);
    }
}
