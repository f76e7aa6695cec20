//! Which key exchange the real `tlschat-server` negotiates: the hybrid
//! post-quantum X25519MLKEM768 with tlschat's own client configuration,
//! and still a classical group with a peer that offers nothing else.
//! Real binary, real TLS over loopback; the session is used afterwards
//! (a login), not just the handshake.

use std::sync::Arc;

use rustls::crypto::{aws_lc_rs, CryptoProvider};
use rustls::pki_types::CertificateDer;
use rustls::NamedGroup;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::harness::*;

const STEP: std::time::Duration = std::time::Duration::from_secs(15);

/// Connects with `config`, logs in as `nick` and returns the group the
/// handshake negotiated and the `WELCOME` line.
async fn negotiate(
    server: &ServerProcess,
    config: Arc<rustls::ClientConfig>,
    nick: &str,
) -> (NamedGroup, String) {
    let tls = tls_connect(socket_for(server.addr, None), server.addr, config)
        .await
        .expect("TLS handshake");
    let group = tls
        .get_ref()
        .1
        .negotiated_key_exchange_group()
        .expect("a TLS 1.3 handshake negotiates a group")
        .name();
    let mut tls = BufReader::new(tls);
    assert_eq!(next_line(&mut tls).await, "NICK");
    tls.get_mut()
        .write_all(format!("{nick}\n").as_bytes())
        .await
        .expect("send the nickname");
    let welcome = next_line(&mut tls).await;
    (group, welcome)
}

async fn next_line(tls: &mut BufReader<tokio_rustls::client::TlsStream<TcpStream>>) -> String {
    let mut line = String::new();
    tokio::time::timeout(STEP, tls.read_line(&mut line))
        .await
        .expect("a line within STEP")
        .expect("read a line");
    line.trim_end().to_owned()
}

/// A client config trusting `cert`, with exactly these key exchange groups.
fn client_with_groups(
    cert: &CertificateDer<'static>,
    groups: &[&'static dyn rustls::crypto::SupportedKxGroup],
) -> Arc<rustls::ClientConfig> {
    let provider = CryptoProvider {
        kx_groups: groups.to_vec(),
        ..aws_lc_rs::default_provider()
    };
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(cert.clone())
        .expect("the server certificate as a root");
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tlschat_client_config_negotiates_x25519mlkem768() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let server = ServerProcess::start(tmp.path());
    let config = tlschat_server_core::tls::client_config_with_roots(&[server.cert()])
        .expect("client config");
    let (group, welcome) = negotiate(&server, config, "pq_alice").await;
    assert_eq!(group, NamedGroup::X25519MLKEM768);
    assert_eq!(welcome, "WELCOME pq_alice #lobby");
}

/// A peer without ML-KEM (OpenSSL before 3.5, an older rustls or ring
/// build) offers only classical groups and must still get in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_offering_only_classical_groups_still_connects() {
    use aws_lc_rs::kx_group;
    let tmp = tempfile::tempdir().expect("tempdir");
    let server = ServerProcess::start(tmp.path());
    let cases: [(
        &[&'static dyn rustls::crypto::SupportedKxGroup],
        NamedGroup,
        &str,
    ); 2] = [
        (&[kx_group::X25519], NamedGroup::X25519, "x25519_bob"),
        (&[kx_group::SECP256R1], NamedGroup::secp256r1, "p256_carol"),
    ];
    for (groups, expected, nick) in cases {
        let config = client_with_groups(&server.cert(), groups);
        let (group, welcome) = negotiate(&server, config, nick).await;
        assert_eq!(group, expected, "{nick}");
        assert_eq!(welcome, format!("WELCOME {nick} #lobby"));
    }
}
