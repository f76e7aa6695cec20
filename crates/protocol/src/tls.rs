//! The cryptography both ends agree on: one rustls crypto provider
//! (aws-lc-rs) with the key exchange groups in `KX_GROUPS`' order.
//!
//! ```text
//! provider() ─→ the server's ServerConfig (tlschat-server-core)
//!            └→ the client's ClientConfig (tlschat-client-core)
//! ```
//!
//! Every config is built from [`provider`] explicitly rather than the
//! process-wide default provider, so nothing depends on which crypto backend
//! some other crate happened to install first, or on the order a rustls
//! release or feature flag picks.

use std::sync::{Arc, OnceLock};

use rustls::crypto::aws_lc_rs::{self, kx_group};
use rustls::crypto::{CryptoProvider, SupportedKxGroup};

/// The key exchange groups offered (client) and accepted (server), most
/// preferred first: the hybrid post-quantum X25519MLKEM768, so a recorded
/// session cannot be decrypted later with a quantum computer; then the
/// classical groups for peers without ML-KEM (OpenSSL before 3.5, `ncat`,
/// older rustls), which is what they negotiated before. The server takes
/// the first of these in the client's own order, so every client that
/// lists the hybrid first (rustls, OpenSSL 3.5, browsers) gets it.
///
/// X25519 must stay listed on its own: with it, a rustls client sends an
/// X25519 key share next to the hybrid one (computed once, shared by both),
/// so a server without ML-KEM completes the handshake without a
/// HelloRetryRequest round trip.
pub(crate) const KX_GROUPS: &[&dyn SupportedKxGroup] = &[
    kx_group::X25519MLKEM768,
    kx_group::X25519,
    kx_group::SECP256R1,
    kx_group::SECP384R1,
];

/// The one crypto provider the project uses: aws-lc-rs, with `KX_GROUPS`.
pub fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| {
            Arc::new(CryptoProvider {
                kx_groups: KX_GROUPS.to_vec(),
                ..aws_lc_rs::default_provider()
            })
        })
        .clone()
}
