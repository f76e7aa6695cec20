//! Invite codes as the server keeps them: hashed, limited in uses and time,
//! with caps by the inviter's role.
//!
//! ```text
//! /invite [uses] [duration] ─new_invite(role, caps)─▶ InviteRow (hash + prefix) ─▶ Store
//! an answer to PASS join ─code_hash─▶ Store::take_invite
//! ```
//!
//! The code itself is shown once, in the link, and never stored: the store
//! holds its SHA-256 (the lookup key, so the time a lookup takes depends on
//! a hash nobody can steer) and its first characters, the public prefix
//! that names it in `/invites` and `/uninvite`.

use std::time::{Duration, SystemTime};

use aws_lc_rs::digest;
use thiserror::Error;

use crate::accounts::Role;
use crate::store::{InviteRow, INVITE_PREFIX_LEN};

/// Uses of an invite made without a count.
pub(crate) const DEFAULT_USES: u32 = 1;
/// Life of an invite made without a duration.
pub(crate) const DEFAULT_LIFE: Duration = Duration::from_secs(24 * 3600);

const DAY: u64 = 24 * 3600;

/// What a role may hand out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Caps {
    pub(crate) max_uses: u32,
    pub(crate) max_life: Duration,
    /// Live codes made by one inviter at once; `None`: no limit.
    pub(crate) max_live: Option<usize>,
}

impl Caps {
    /// `None` for a role that may not invite.
    pub(crate) fn of(role: Role) -> Option<Caps> {
        match role {
            Role::User => None,
            Role::Moderator => Some(Caps {
                max_uses: 10,
                max_life: Duration::from_secs(7 * DAY),
                max_live: Some(20),
            }),
            Role::Admin => Some(Caps {
                max_uses: 1000,
                max_life: Duration::from_secs(365 * DAY),
                max_live: None,
            }),
        }
    }
}

/// Why `/invite` was refused; the text follows the error code.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub(crate) enum InviteRefused {
    #[error("only the admin and moderators may invite")]
    NotAllowed,
    #[error("at least 1 use")]
    NoUses,
    #[error("at most {0} uses")]
    TooManyUses(u32),
    #[error("at most {0} days")]
    TooLong(u64),
    #[error("at most {0} live invites at once; /uninvite one first")]
    TooManyLive(usize),
}

/// SHA-256 of `code` in lower case (codes are case-insensitive): the key
/// the store finds a code by.
pub(crate) fn code_hash(code: &str) -> [u8; 32] {
    let digest = digest::digest(&digest::SHA256, code.to_ascii_lowercase().as_bytes());
    let mut out = [0; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// The row to store for a new `code` made by `by` (of `role`), who has
/// `live_by_them` live codes already: `uses` and `life` default to
/// [`DEFAULT_USES`] and [`DEFAULT_LIFE`] and are checked against the role's
/// [`Caps`].
pub(crate) fn new_invite(
    role: Role,
    by: &str,
    code: &str,
    uses: Option<u32>,
    life: Option<Duration>,
    live_by_them: usize,
    now: SystemTime,
) -> Result<InviteRow, InviteRefused> {
    let caps = Caps::of(role).ok_or(InviteRefused::NotAllowed)?;
    let uses = uses.unwrap_or(DEFAULT_USES);
    if uses == 0 {
        return Err(InviteRefused::NoUses);
    }
    if uses > caps.max_uses {
        return Err(InviteRefused::TooManyUses(caps.max_uses));
    }
    let life = life.unwrap_or(DEFAULT_LIFE);
    if life > caps.max_life {
        return Err(InviteRefused::TooLong(caps.max_life.as_secs() / DAY));
    }
    if let Some(max) = caps.max_live.filter(|max| live_by_them >= *max) {
        return Err(InviteRefused::TooManyLive(max));
    }
    Ok(InviteRow {
        hash: code_hash(code),
        prefix: code
            .chars()
            .take(INVITE_PREFIX_LEN)
            .collect::<String>()
            .to_ascii_lowercase(),
        uses_left: uses,
        expires: now + life,
        created: now,
        by: by.to_owned(),
        bound: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::conformance::{at, T0};
    use crate::store::{MemStore, Store};

    const CODE: &str = "abcdefghijklmnopqrstuvwxyz234567";

    #[test]
    fn the_hash_is_sha256_of_the_lowercase_code() {
        // sha256("abc"), the FIPS 180-2 test vector.
        assert_eq!(
            code_hash("ABC")
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(code_hash(CODE), code_hash(&CODE.to_uppercase()));
        assert_ne!(code_hash(CODE), code_hash("пароль-密码-🔑"));
    }

    #[test]
    fn defaults_and_caps_follow_the_role() {
        let row = new_invite(Role::Admin, "admin", CODE, None, None, 0, at(T0)).unwrap();
        assert_eq!(
            (row.prefix.as_str(), row.uses_left, row.by.as_str()),
            ("abcdef", DEFAULT_USES, "admin")
        );
        assert_eq!(row.expires, at(T0 + 24 * 3600));
        assert_eq!(row.hash, code_hash(CODE));

        let week = Some(Duration::from_secs(7 * DAY));
        let eight_days = Some(Duration::from_secs(8 * DAY));
        let year = Some(Duration::from_secs(365 * DAY));
        let make =
            |role, uses, life, live| new_invite(role, "Mod1", CODE, uses, life, live, at(T0));
        assert!(make(Role::Moderator, Some(10), week, 19).is_ok());
        assert_eq!(
            make(Role::Moderator, Some(11), None, 0),
            Err(InviteRefused::TooManyUses(10))
        );
        assert_eq!(
            make(Role::Moderator, None, eight_days, 0),
            Err(InviteRefused::TooLong(7))
        );
        assert_eq!(
            make(Role::Moderator, None, None, 20),
            Err(InviteRefused::TooManyLive(20))
        );
        assert!(make(Role::Admin, Some(1000), year, 5000).is_ok());
        assert_eq!(
            make(Role::Admin, Some(1001), None, 0),
            Err(InviteRefused::TooManyUses(1000))
        );
        assert_eq!(
            make(Role::Admin, Some(0), None, 0),
            Err(InviteRefused::NoUses)
        );
        assert_eq!(
            make(Role::User, None, None, 0),
            Err(InviteRefused::NotAllowed)
        );
    }

    #[test]
    fn a_code_made_here_is_found_by_its_answer_in_any_case() {
        let store = MemStore::default();
        let row = new_invite(Role::Admin, "admin", CODE, Some(2), None, 0, at(T0)).unwrap();
        store.add_invite(&row).unwrap();
        let answer = CODE.to_uppercase();
        let got = store
            .take_invite(&code_hash(&answer), "alice", at(T0))
            .unwrap()
            .unwrap();
        assert_eq!(got.uses_left, 1);
        assert!(store
            .take_invite(
                &code_hash("abcdefghijklmnopqrstuvwxyz234566"),
                "bob",
                at(T0)
            )
            .unwrap()
            .is_none());
        // Expired a day later.
        assert!(store
            .take_invite(&code_hash(CODE), "bob", at(T0 + 24 * 3600))
            .unwrap()
            .is_none());
    }
}
