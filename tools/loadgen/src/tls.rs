//! The load generator's TLS: one self-signed ECDSA P-256 certificate per
//! run (made with tlschat's own generator) served by all three servers, and
//! a client configuration that pins it and never resumes a session, so every
//! connection pays a full handshake on both sides.
//!
//! The client accepts the pinned certificate by its bytes and does not
//! check the server's handshake signature: an ECDSA P-256 verification
//! costs more than the server's signature, and the load generator has one
//! core, like the server. The server's side of the handshake is complete.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tlschat_protocol::history::HISTORY_ALPN;
use tlschat_server_core::certs::{self, CertPaths};

/// Writes `cert.pem` and `key.pem` (PKCS#8) into `dir`.
pub fn make_cert(dir: &Path) -> Result<CertPaths> {
    let sans = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    let generated = certs::generate(&sans, 30).context("generating the benchmark certificate")?;
    let paths = certs::write_pair(dir, &generated, true).context("writing the certificate")?;
    Ok(paths)
}

/// Accepts exactly the pinned certificate (see the module comment for why
/// handshake signatures are not checked).
#[derive(Debug)]
struct Pinned {
    cert: CertificateDer<'static>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.cert.as_ref() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// TLS 1.3 and 1.2 (1.3 is negotiated with all three servers), tlschat's
/// provider (aws-lc-rs, X25519MLKEM768 first: tlschat and the baseline
/// relay negotiate it, a server without ML-KEM such as ngircd on OpenSSL
/// before 3.5 gets X25519), the certificate pinned, resumption disabled;
/// with `history`, ALPN `tlschat/2` offered as tlschat's own clients do.
pub fn client_config(paths: &CertPaths, history: bool) -> Result<Arc<rustls::ClientConfig>> {
    let loaded = certs::load(paths).context("loading the benchmark certificate")?;
    let provider = tlschat_protocol::tls::provider();
    let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("TLS versions")?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Pinned {
            cert: loaded.chain[0].clone(),
            provider,
        }))
        .with_no_client_auth();
    config.resumption = rustls::client::Resumption::disabled();
    if history {
        config.alpn_protocols = vec![HISTORY_ALPN.to_vec()];
    }
    Ok(Arc::new(config))
}
