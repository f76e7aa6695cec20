//! TLS configuration and the first-byte check on accepted connections.
//!
//! ```text
//! certs::load → LoadedCert → TlsConfigs (without ALPN; with tlschat/2)
//! accepted TcpStream → sniff → Tls: read the ClientHello, pick a config
//!                                   (TlsConfigs::for_hello), handshake
//!                            → Plaintext: send TLS_REQUIRED_LINE, close
//!                            → Closed: drop
//! ```
//!
//! Every config is built from the one provider both ends share
//! ([`tlschat_protocol::tls::provider`]).

use std::sync::Arc;

use rustls::version::{TLS12, TLS13};
use rustls_pki_types::CertificateDer;
use tlschat_protocol::history::HISTORY_ALPN;
use tlschat_protocol::tls::provider;

use crate::certs::LoadedCert;

/// The line a plaintext peer gets before the close (exact text from the
/// protocol).
pub(crate) const TLS_REQUIRED_LINE: &str =
    "ERROR tls-required this port speaks TLS: use tlschat, openssl s_client or ncat --ssl\n";

/// First byte of a TLS record of type handshake (a ClientHello).
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("the aws-lc-rs crypto provider rejected TLS 1.2/1.3 ({0}); this is a build problem, please report it")]
    Provider(#[source] rustls::Error),
    #[error("certificate {} with key {} cannot be used for TLS ({source}); generate a new pair with `tlschat-server gen-cert --force` or pass a valid --cert/--key", cert.display(), key.display())]
    ServerCert {
        cert: std::path::PathBuf,
        key: std::path::PathBuf,
        #[source]
        source: rustls::Error,
    },
    #[error(
        "no trusted certificate given; pass --ca with a PEM file holding the server's certificate"
    )]
    NoRoots,
    #[error("trusted certificate #{index} cannot be used as a trust anchor ({source}); check the file passed with --ca")]
    BadRoot {
        /// 1-based position in the list given.
        index: usize,
        #[source]
        source: rustls::Error,
    },
}

/// TLS 1.3 and 1.2, no client certificates, no ALPN (a server without
/// history); see [`server_config_for`].
pub fn server_config(cert: &LoadedCert) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    server_config_for(cert, false)
}

/// TLS 1.3 and 1.2, no client certificates; `cert` is served whatever SNI
/// the client sends (or none: clients connecting by IP send no SNI).
///
/// ALPN: with `history`, the one protocol id [`HISTORY_ALPN`] (rustls
/// refuses a client that offers ids but not this one, so the server uses
/// this config only for a ClientHello offering it: [`TlsConfigs`]);
/// without, no ALPN.
///
/// Two departures from rustls's defaults, both for the connection path:
/// - 0.5-RTT data on: the server's first line (`NICK`) rides in its first
///   flight instead of waiting for the client's `Finished`.
/// - no session resumption: no TLS 1.3 tickets, no TLS 1.2 session cache.
///   Nothing would use them: `tlschat` builds a fresh configuration, and so
///   a fresh verification, for every connection (trust on first use checks
///   the certificate each time), and `openssl s_client`/`ncat` do not
///   resume by default. Issuing tickets cost every handshake a write and
///   random numbers, and kept resumption secrets in server memory.
pub fn server_config_for(
    cert: &LoadedCert,
    history: bool,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&TLS13, &TLS12])
        .map_err(TlsError::Provider)?
        .with_no_client_auth()
        .with_single_cert(cert.chain.clone(), cert.key.clone_key())
        .map_err(|source| TlsError::ServerCert {
            cert: cert.paths.cert.clone(),
            key: cert.paths.key.clone(),
            source,
        })?;
    config.send_half_rtt_data = true;
    config.send_tls13_tickets = 0;
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    if history {
        config.alpn_protocols = vec![HISTORY_ALPN.to_vec()];
    }
    Ok(Arc::new(config))
}

/// The server's configs for one certificate, chosen per ClientHello: a
/// client offering [`HISTORY_ALPN`] to a server that keeps history gets
/// the config selecting it (history mode); any other client, whatever
/// ALPN ids it offers, the one without ALPN (protocol v1), so a client
/// learns from the handshake whether there is history.
#[derive(Clone)]
pub(crate) struct TlsConfigs {
    v1: Arc<rustls::ServerConfig>,
    history: Option<Arc<rustls::ServerConfig>>,
}

impl TlsConfigs {
    pub(crate) fn new(cert: &LoadedCert, history: bool) -> Result<TlsConfigs, TlsError> {
        Ok(TlsConfigs {
            v1: server_config_for(cert, false)?,
            history: history.then(|| server_config_for(cert, true)).transpose()?,
        })
    }

    /// The config for the client that sent `hello`.
    pub(crate) fn for_hello(
        &self,
        hello: &rustls::server::ClientHello<'_>,
    ) -> Arc<rustls::ServerConfig> {
        let offers_history = || {
            hello
                .alpn()
                .is_some_and(|mut ids| ids.any(|id| id == HISTORY_ALPN))
        };
        match &self.history {
            Some(history) if offers_history() => history.clone(),
            _ => self.v1.clone(),
        }
    }
}

/// What the first byte a peer sent says.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum FirstBytes {
    /// A TLS handshake record (0x16): hand the stream to the acceptor.
    Tls,
    /// Anything else, typically someone typing into `nc`/`telnet`.
    Plaintext,
    /// The peer closed without sending anything.
    Closed,
}

/// Peeks (does not consume) the first byte of a freshly accepted TCP
/// stream, so the TLS acceptor still sees the whole ClientHello.
///
/// Waits until the peer sends something or closes; callers should wrap it
/// in a timeout so a silent peer cannot hold a connection slot forever.
pub(crate) async fn sniff(stream: &tokio::net::TcpStream) -> std::io::Result<FirstBytes> {
    let mut first = [0u8; 1];
    let n = stream.peek(&mut first).await?;
    Ok(match n {
        0 => FirstBytes::Closed,
        _ if first[0] == TLS_HANDSHAKE_RECORD => FirstBytes::Tls,
        _ => FirstBytes::Plaintext,
    })
}

/// A client config (TLS 1.3 and 1.2) trusting exactly `roots`, verified
/// with webpki, so a self-signed server certificate can be trusted by
/// passing the certificate itself. Only tests connect with it (the
/// integration tests and this crate's); the client builds its own in
/// tlschat-client-core.
pub fn client_config_with_roots(
    roots: &[CertificateDer<'static>],
) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    // An empty store would build fine and then fail every handshake with an
    // obscure "unknown issuer"; say so now instead.
    if roots.is_empty() {
        return Err(TlsError::NoRoots);
    }
    let mut store = rustls::RootCertStore::empty();
    for (i, root) in roots.iter().enumerate() {
        store
            .add(root.clone())
            .map_err(|source| TlsError::BadRoot {
                index: i + 1,
                source,
            })?;
    }
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&TLS13, &TLS12])
        .map_err(TlsError::Provider)?
        .with_root_certificates(store)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certs::{self, CertPaths};
    use rustls::pki_types::ServerName;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_rustls::{TlsAcceptor, TlsConnector};

    /// A generated certificate written to a temp dir and loaded back.
    fn loaded_cert() -> (tempfile::TempDir, certs::LoadedCert) {
        let dir = tempfile::tempdir().unwrap();
        let sans = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        let generated = certs::generate(&sans, 1).unwrap();
        let paths = certs::write_pair(dir.path(), &generated, false).unwrap();
        let loaded = certs::load(&paths).unwrap();
        assert_eq!(paths, CertPaths::in_dir(dir.path()));
        (dir, loaded)
    }

    /// Runs a handshake over an in-memory pipe and exchanges one message
    /// each way; returns the negotiated version or the client's error.
    async fn handshake(
        server: Arc<rustls::ServerConfig>,
        client: Arc<rustls::ClientConfig>,
        name: &str,
    ) -> Result<rustls::ProtocolVersion, std::io::Error> {
        let (client_io, server_io) = tokio::io::duplex(64 * 1024);
        let name = ServerName::try_from(name.to_string()).unwrap();
        let server_side = async move {
            let mut tls = TlsAcceptor::from(server).accept(server_io).await?;
            let mut buf = [0u8; 5];
            tls.read_exact(&mut buf).await?;
            assert_eq!(&buf, b"ping\n");
            tls.write_all(b"pong\n").await?;
            tls.flush().await?;
            Ok::<_, std::io::Error>(())
        };
        let client_side = async move {
            let mut tls = TlsConnector::from(client).connect(name, client_io).await?;
            let version = tls.get_ref().1.protocol_version();
            tls.write_all(b"ping\n").await?;
            tls.flush().await?;
            let mut buf = [0u8; 5];
            tls.read_exact(&mut buf).await?;
            assert_eq!(&buf, b"pong\n");
            Ok::<_, std::io::Error>(version)
        };
        let (server_result, client_result) = tokio::join!(server_side, client_side);
        let version = client_result?;
        server_result?;
        Ok(version.unwrap())
    }

    /// The key exchange order is stated here, not inherited: a rustls
    /// release or a feature flag changing its default must not silently
    /// demote the post-quantum group.
    #[test]
    fn provider_prefers_x25519mlkem768_then_classical_groups() {
        use rustls::NamedGroup;
        let names: Vec<NamedGroup> = provider().kx_groups.iter().map(|g| g.name()).collect();
        assert_eq!(
            names,
            [
                NamedGroup::X25519MLKEM768,
                NamedGroup::X25519,
                NamedGroup::secp256r1,
                NamedGroup::secp384r1,
            ]
        );
    }

    /// The connection-path settings docs/performance.md measured: a change
    /// back to rustls's defaults would cost every handshake a write.
    #[test]
    fn server_config_sends_half_rtt_data_and_no_tickets() {
        let (_dir, cert) = loaded_cert();
        let config = server_config(&cert).unwrap();
        assert!(config.send_half_rtt_data);
        assert_eq!(config.send_tls13_tickets, 0);
        assert!(!config.session_storage.can_cache());
    }

    #[tokio::test]
    async fn handshake_with_dns_and_ip_names() {
        let (_dir, cert) = loaded_cert();
        let server = server_config(&cert).unwrap();
        let client = client_config_with_roots(&cert.chain[..1]).unwrap();
        for name in ["localhost", "127.0.0.1"] {
            let version = handshake(server.clone(), client.clone(), name)
                .await
                .unwrap();
            assert_eq!(version, rustls::ProtocolVersion::TLSv1_3, "{name}");
        }
    }

    #[tokio::test]
    async fn handshake_with_tls12_only_client() {
        let (_dir, cert) = loaded_cert();
        let server = server_config(&cert).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert.chain[0].clone()).unwrap();
        let client = rustls::ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&TLS12])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let version = handshake(server, Arc::new(client), "localhost")
            .await
            .unwrap();
        assert_eq!(version, rustls::ProtocolVersion::TLSv1_2);
    }

    #[tokio::test]
    async fn handshake_fails_for_untrusted_cert_or_wrong_name() {
        let (_dir, cert) = loaded_cert();
        let (_other_dir, other) = loaded_cert();
        let server = server_config(&cert).unwrap();
        let trusts_other = client_config_with_roots(&other.chain).unwrap();
        assert!(handshake(server.clone(), trusts_other, "localhost")
            .await
            .is_err());
        let trusts_cert = client_config_with_roots(&cert.chain).unwrap();
        assert!(handshake(server, trusts_cert, "example.org").await.is_err());
    }

    #[test]
    fn client_config_rejects_empty_or_garbage_roots() {
        assert!(matches!(
            client_config_with_roots(&[]),
            Err(TlsError::NoRoots)
        ));
        let garbage = CertificateDer::from(vec![1u8, 2, 3]);
        assert!(matches!(
            client_config_with_roots(&[garbage]),
            Err(TlsError::BadRoot { index: 1, .. })
        ));
    }

    #[tokio::test]
    async fn sniff_classifies_first_byte() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();

        let cases: [(&[u8], FirstBytes); 3] = [
            (b"hello\n", FirstBytes::Plaintext),
            (&[0x16, 0x03, 0x01], FirstBytes::Tls),
            (b"", FirstBytes::Closed),
        ];
        for (bytes, expected) in cases {
            let client = tokio::spawn(async move {
                let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
                s.write_all(bytes).await.unwrap();
                s.shutdown().await.unwrap();
                // Keep the socket open until the server has looked, so the
                // non-empty cases cannot turn into a reset.
                let mut rest = Vec::new();
                let _ = s.read_to_end(&mut rest).await;
            });
            let (stream, _) = listener.accept().await.unwrap();
            assert_eq!(sniff(&stream).await.unwrap(), expected);
            if !bytes.is_empty() {
                // Peeking did not consume anything.
                let mut buf = vec![0u8; bytes.len()];
                let mut stream = stream;
                stream.read_exact(&mut buf).await.unwrap();
                assert_eq!(buf, bytes);
            } else {
                drop(stream);
            }
            client.await.unwrap();
        }
    }
}
