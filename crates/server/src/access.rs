//! Who gets in: the join gate of a closed server (join password, invite
//! codes) and the access settings a reload swaps.
//!
//! ```text
//! Login (peer.rs): a non-account on a closed server ─ PASS join ─▶ answer
//!   ─ reserved Guess (limits.rs, shared with every PASS) ─▶ JoinGate::check
//!       an InviteCode? ─ SHA-256 ─▶ Store::take_invite / a read-only look (blocking pool)
//!       else           ─ SHA-256 ─▶ constant-time compare with the join password's
//!   ─ Guess::settle(right) ─▶ admitted (for every later nickname) or REFUSE
//! ```
//!
//! A server is *closed* when it has a join password or `private = true`; on
//! its defaults it is open and nothing here runs, so v1 clients see v1. The
//! join password is kept only as its SHA-256 and compared in constant time;
//! an invite code is looked up by its SHA-256, never by its public prefix,
//! so the time an answer takes tells nothing about stored codes.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use aws_lc_rs::constant_time::verify_slices_are_equal;
use aws_lc_rs::digest;
use tracing::warn;

use crate::certs::LoadedCert;
use crate::config::{AccessConfig, PublicName};
use crate::invites::code_hash;
use crate::limits::Guess;
use crate::store::{InviteRow, Registration, Storage, StoreError};
use tlschat_protocol::{Fingerprint, HostPort, InviteCode};

/// The access settings in force, swapped whole by a reload.
#[derive(Debug)]
pub(crate) struct Access {
    current: RwLock<Arc<AccessState>>,
    identity: RwLock<Identity>,
    /// Whether a link has named the inviter's local address yet (the
    /// warning about it is logged once).
    pub(crate) warned_local_host: AtomicBool,
}

/// What invite links say about the server: its certificate's fingerprint,
/// and the host a link names when no `public_name` is set (the first
/// `--san`, else the certificate's first DNS name that is not `localhost`).
/// Swapped with the certificate.
#[derive(Debug, Clone)]
pub(crate) struct Identity {
    pub(crate) fingerprint: Fingerprint,
    pub(crate) default_host: Option<String>,
}

impl Identity {
    /// The identity of `cert`; `first_san` (a given `--san`) wins over the
    /// certificate's names.
    pub(crate) fn of(cert: &LoadedCert, first_san: Option<&str>) -> Identity {
        let from_san = first_san.and_then(|san| HostPort::check_link_host(san).ok());
        Identity {
            fingerprint: cert.fingerprint,
            default_host: from_san.or_else(|| cert.chain.first().and_then(|der| dns_name(der))),
        }
    }
}

/// The first DNS name of a certificate that is not `localhost`.
fn dns_name(der: &[u8]) -> Option<String> {
    use x509_parser::extensions::GeneralName;
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let sans = cert.subject_alternative_name().ok()??;
    sans.value.general_names.iter().find_map(|name| match name {
        GeneralName::DNSName(dns) if !dns.eq_ignore_ascii_case("localhost") => {
            HostPort::check_link_host(dns).ok()
        }
        _ => None,
    })
}

/// One generation of the access settings.
#[derive(Debug)]
pub(crate) struct AccessState {
    pub(crate) gate: JoinGate,
    pub(crate) public_name: Option<PublicName>,
    /// The configured policy; a policy saved by `/registration` wins.
    pub(crate) registration: Registration,
}

impl Access {
    pub(crate) fn new(config: &AccessConfig, identity: Identity) -> Access {
        Access {
            current: RwLock::new(Arc::new(AccessState::new(config))),
            identity: RwLock::new(identity),
            warned_local_host: AtomicBool::new(false),
        }
    }

    pub(crate) fn identity(&self) -> Identity {
        self.identity
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// A reloaded certificate: links name its fingerprint from now on.
    pub(crate) fn set_identity(&self, identity: Identity) {
        *self.identity.write().unwrap_or_else(|e| e.into_inner()) = identity;
    }

    pub(crate) fn get(&self) -> Arc<AccessState> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// A reload: new connections see `config`; admitted ones stay admitted.
    pub(crate) fn set(&self, config: &AccessConfig) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) =
            Arc::new(AccessState::new(config));
    }

    /// A reload that could not read the join password: `config` but the
    /// join password in force (a file that cannot be read must neither
    /// open the server nor hold back the other settings).
    pub(crate) fn set_keeping_join_password(&self, config: &AccessConfig) {
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        let mut next = AccessState::new(config);
        next.gate.digest = current.gate.digest;
        *current = Arc::new(next);
    }
}

impl AccessState {
    fn new(config: &AccessConfig) -> AccessState {
        AccessState {
            gate: JoinGate {
                digest: config.join_password.as_deref().map(sha256),
                private: config.private,
            },
            public_name: config.public_name.clone(),
            registration: config.registration,
        }
    }
}

/// The join password (as its SHA-256) and private mode.
pub(crate) struct JoinGate {
    digest: Option<[u8; 32]>,
    private: bool,
}

impl std::fmt::Debug for JoinGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinGate")
            .field("join_password", &self.digest.map(|_| "<set>"))
            .field("private", &self.private)
            .finish()
    }
}

/// How an answer to `PASS join` admitted its connection.
#[derive(Debug, Clone)]
pub(crate) enum Admitted {
    Password,
    /// A live code, bound to the nickname it was taken for (or, when the
    /// nickname was in use, only looked at: nothing taken).
    Invite(InviteRow),
}

impl JoinGate {
    /// Whether a non-account must answer `PASS join`.
    pub(crate) fn is_closed(&self) -> bool {
        self.digest.is_some() || self.private
    }

    /// Checks `answer` under the reserved `guess`, which is settled here
    /// (a wrong answer counts towards the address's lockout). A well-formed
    /// code is looked up in the store: with `take`, a use is taken for
    /// `nick_key` (or its earlier binding found); without, the code is only
    /// looked at (the nickname is in use, so nobody gets in on it now). Any
    /// answer that is no live code is compared with the join password.
    pub(crate) async fn check(
        &self,
        storage: &Storage,
        answer: &str,
        nick_key: &str,
        take: bool,
        guess: Guess,
    ) -> Result<Option<Admitted>, StoreError> {
        let invite = match InviteCode::parse(answer.trim()) {
            Ok(code) => {
                let lookup = find_invite(storage, code_hash(code.expose()), nick_key, take).await;
                match lookup {
                    Ok(found) => found,
                    Err(e) => {
                        // A store failure is nobody's wrong guess.
                        drop(guess);
                        return Err(e);
                    }
                }
            }
            Err(_) => None,
        };
        let admitted = match invite {
            Some(row) => Some(Admitted::Invite(row)),
            None => self
                .digest
                .as_ref()
                .filter(|digest| verify_slices_are_equal(*digest, &sha256(answer)).is_ok())
                .map(|_| Admitted::Password),
        };
        if let Some(length) = guess.settle(admitted.is_some()) {
            warn!(
                "too many wrong passwords or invite codes: address locked out for {} s",
                length.as_secs()
            );
        }
        Ok(admitted)
    }
}

/// The live invite hashed to `hash` that admits `nick_key`: taken (one use,
/// or its earlier binding) with `take`, looked at without.
async fn find_invite(
    storage: &Storage,
    hash: [u8; 32],
    nick_key: &str,
    take: bool,
) -> Result<Option<InviteRow>, StoreError> {
    let now: SystemTime = storage.now();
    let nick_key = nick_key.to_owned();
    storage
        .call(move |store| {
            if take {
                return store.take_invite(&hash, &nick_key, now);
            }
            Ok(store.invites(now)?.into_iter().find(|row| {
                row.hash == hash && (row.uses_left > 0 || row.bound.contains(&nick_key))
            }))
        })
        .await
}

fn sha256(text: &str) -> [u8; 32] {
    let digest = digest::digest(&digest::SHA256, text.as_bytes());
    let mut out = [0; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::CertificateDer;

    fn der_of(sans: &[&str]) -> Vec<u8> {
        let sans: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
        let generated = crate::certs::generate(&sans, 1).unwrap();
        CertificateDer::from_pem_slice(generated.cert_pem.as_bytes())
            .unwrap()
            .to_vec()
    }

    /// A link's default host is the certificate's first DNS name that is
    /// not `localhost`; addresses and `localhost` alone give none (the
    /// inviter's local address is used then).
    #[test]
    fn the_default_link_host_skips_localhost_and_addresses() {
        assert_eq!(dns_name(&der_of(&["localhost", "127.0.0.1", "::1"])), None);
        assert_eq!(
            dns_name(&der_of(&[
                "LOCALHOST",
                "203.0.113.7",
                "Chat.Example.org",
                "b.example"
            ])),
            Some("chat.example.org".to_owned())
        );
        assert_eq!(dns_name(b"not a certificate"), None);
    }

    /// The join password is kept as a digest and compared exactly; a
    /// server without one (and not private) is open.
    #[test]
    fn the_gate_is_closed_by_a_join_password_or_private_mode() {
        let state = |join_password: Option<&str>, private| {
            AccessState::new(&AccessConfig {
                join_password: join_password.map(str::to_owned),
                private,
                ..AccessConfig::default()
            })
        };
        assert!(!state(None, false).gate.is_closed());
        assert!(state(None, true).gate.is_closed());
        let closed = state(Some("пароль-密码-🔑"), false);
        assert!(closed.gate.is_closed());
        let shown = format!("{:?}", closed.gate);
        assert!(
            !shown.contains("пароль") && shown.contains("<set>"),
            "{shown}"
        );
    }
}
