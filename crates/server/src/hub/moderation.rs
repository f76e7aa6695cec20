//! Who may do what to whom: a session's role (which `/op` and `/deop`
//! change while it runs), the limits of a moderator's kicks and bans, and
//! the `/help` each role sees.
//!
//! ```text
//! login → SharedRole (one per session) ─┬─ Peer: Command::privilege() vs role, /help
//!                                       └─ Hub User: kick / ban targets, USERS `@`
//! /op, /deop → store (blocking pool, no lock held) → accounts cache
//!   → every session of that account's SharedRole
//! ```
//!
//! The role is one atomic shared by the session's peer and its entry in
//! the hub, so the peer checks a command's privilege without the hub's
//! lock and a role change applies to the very next line.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn};

use super::{lock, ClientId, Hub};
use crate::accounts::Role;
use crate::store::StoreError;
use tlschat_protocol::command::{ADMIN_HELP, HELP, MODERATOR_HELP};
use tlschat_protocol::{ErrorCode, Nick, Privilege, ServerLine};

/// The longest ban a moderator may make, and how long a moderator's ban
/// without a duration lasts.
pub(crate) const MODERATOR_BAN: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// The widest address prefixes a moderator may ban (IPv4, IPv6): one
/// network's worth, never a provider's.
const MODERATOR_PREFIX: (u8, u8) = (24, 48);

/// A session's role, shared by its peer and the hub.
#[derive(Debug, Clone)]
pub(crate) struct SharedRole(Arc<AtomicU8>);

impl SharedRole {
    pub(crate) fn new(role: Role) -> SharedRole {
        SharedRole(Arc::new(AtomicU8::new(encode(role))))
    }

    pub(crate) fn get(&self) -> Role {
        match self.0.load(Ordering::Relaxed) {
            2 => Role::Admin,
            1 => Role::Moderator,
            _ => Role::User,
        }
    }

    pub(crate) fn set(&self, role: Role) {
        self.0.store(encode(role), Ordering::Relaxed);
    }
}

impl From<Role> for SharedRole {
    fn from(role: Role) -> SharedRole {
        SharedRole::new(role)
    }
}

fn encode(role: Role) -> u8 {
    match role {
        Role::User => 0,
        Role::Moderator => 1,
        Role::Admin => 2,
    }
}

impl Hub {
    /// `/op NICK` (`role` moderator) or `/deop NICK` (`role` user), by the
    /// admin: saved in the store first, then every session of the account
    /// holds the new role at once and is told.
    pub(crate) async fn set_role(&self, id: ClientId, target: &str, role: Role) {
        let nick = match Nick::parse(target) {
            Ok(nick) => nick,
            Err(e) => return self.error(id, ErrorCode::NoSuchNick, &format!("{target}: {e}")),
        };
        if Role::of(&nick).is_admin() {
            let text = "the admin account's role does not change";
            return self.error(id, ErrorCode::NotPermitted, text);
        }
        // The write runs on the blocking pool with no lock held: a slow
        // disk holds up this command only, never a login or the room.
        let key = nick.key().to_owned();
        match self
            .storage()
            .call(move |store| store.set_role(&key, role))
            .await
        {
            Ok(()) => {}
            Err(StoreError::NoSuchAccount) => {
                let text = format!("{nick} is not an account");
                return self.error(id, ErrorCode::NoSuchNick, &text);
            }
            Err(e) => {
                warn!(nick = %nick, error = %e, "could not save a role");
                let text = format!("role of {nick} NOT saved: {e}");
                return self.reply(id, &ServerLine::Info(&text));
            }
        }
        let spelt = lock(&self.shared.accounts)
            .cache_role(&nick, role)
            .unwrap_or(nick);
        let (told, you) = match role {
            Role::Moderator => ("is now a moderator", "you are now a moderator"),
            Role::User | Role::Admin => {
                ("is no longer a moderator", "you are no longer a moderator")
            }
        };
        info!(nick = %spelt, "{told}");
        let holder = self.set_holder_role(&spelt, role);
        self.section(|st, lagging| {
            let text = format!("{spelt} {told}");
            st.send(id, ServerLine::Info(&text).encode(), lagging);
            if let Some(t) = holder {
                st.send(t, ServerLine::Info(you).encode(), lagging);
                st.users_to_room_of(t, lagging);
            }
        });
    }

    /// The connected holder of the account `nick`, if any, holds `role`
    /// from its next line on (after `/op`, `/deop`, `/unregister`).
    pub(crate) fn set_holder_role(&self, nick: &Nick, role: Role) -> Option<ClientId> {
        let st = lock(&self.shared.state);
        let t = st.nicks.get(nick.key()).copied()?;
        // A key in `nicks` may be a rename's reservation: only the session
        // that holds the name is the account's holder.
        let user = st.users.get(&t).filter(|u| u.nick.key() == nick.key())?;
        user.role.set(role);
        Some(t)
    }

    /// A fresh `USERS` to the room of `id`, after its role changed.
    pub(crate) fn refresh_users_of(&self, id: ClientId) {
        self.section(|st, lagging| st.users_to_room_of(id, lagging));
    }

    /// `/ops`: the moderators' accounts, for everyone.
    pub(crate) fn ops(&self, id: ClientId) {
        let names: Vec<String> = lock(&self.shared.accounts)
            .with_role(Role::Moderator)
            .map(Nick::to_string)
            .collect();
        let text = match names.is_empty() {
            true => "no moderators".to_owned(),
            false => format!("moderators: {}", names.join(" ")),
        };
        self.reply(id, &ServerLine::Info(&text));
    }
}

/// Whether `role` may use a command of `privilege`.
pub(crate) fn may(role: Role, privilege: Privilege) -> bool {
    match privilege {
        Privilege::Anyone => true,
        Privilege::Moderator => role != Role::User,
        Privilege::Admin => role.is_admin(),
    }
}

/// Whether `by` may kick or ban a session of role `target`: the admin
/// anyone, a moderator users only.
pub(crate) fn may_act_on(by: Role, target: Role) -> bool {
    by.is_admin() || target == Role::User
}

/// The `/help` lines `role` sees: its own commands and no others.
pub(crate) fn help(role: Role) -> impl Iterator<Item = &'static str> {
    let extra = match role {
        Role::User => &[][..],
        Role::Moderator => MODERATOR_HELP,
        Role::Admin => ADMIN_HELP,
    };
    HELP.iter().chain(extra).copied()
}

/// How long a ban by `role` lasts when `asked` for (`None`: no duration
/// given): `Ok(None)` until lifted (the admin's default), or the refusal's
/// text for a moderator over its limit.
pub(crate) fn ban_length(role: Role, asked: Option<Duration>) -> Result<Option<Duration>, String> {
    match (role.is_admin(), asked) {
        (true, asked) => Ok(asked),
        (false, None) => Ok(Some(MODERATOR_BAN)),
        (false, Some(d)) if d <= MODERATOR_BAN => Ok(Some(d)),
        (false, Some(_)) => Err("a moderator bans for at most 7d".to_owned()),
    }
}

/// Whether a moderator may ban `range`: not wider than [`MODERATOR_PREFIX`].
pub(crate) fn prefix_allowed(role: Role, range: &crate::bans::AddrRange) -> Result<(), String> {
    let (v4, v6) = MODERATOR_PREFIX;
    if role.is_admin() || !range.wider_than(v4, v6) {
        return Ok(());
    }
    Err(format!(
        "a moderator bans prefixes no wider than /{v4} (IPv4) or /{v6} (IPv6)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shared_role_changes_for_every_holder() {
        let role = SharedRole::new(Role::User);
        let peer = role.clone();
        role.set(Role::Moderator);
        assert_eq!(peer.get(), Role::Moderator);
        role.set(Role::Admin);
        assert_eq!(peer.get(), Role::Admin);
        role.set(Role::User);
        assert_eq!(peer.get(), Role::User);
    }

    #[test]
    fn privileges_and_targets_follow_the_role() {
        use Privilege as P;
        for (role, allowed) in [
            (Role::User, [true, false, false]),
            (Role::Moderator, [true, true, false]),
            (Role::Admin, [true, true, true]),
        ] {
            let got = [P::Anyone, P::Moderator, P::Admin].map(|p| may(role, p));
            assert_eq!(got, allowed, "{role:?}");
        }
        assert!(may_act_on(Role::Admin, Role::Moderator));
        assert!(may_act_on(Role::Moderator, Role::User));
        assert!(!may_act_on(Role::Moderator, Role::Moderator));
        assert!(!may_act_on(Role::Moderator, Role::Admin));
    }

    #[test]
    fn a_moderators_bans_are_bounded() {
        let day = Duration::from_secs(24 * 60 * 60);
        assert_eq!(ban_length(Role::Admin, None), Ok(None));
        assert_eq!(
            ban_length(Role::Admin, Some(300 * day)),
            Ok(Some(300 * day))
        );
        assert_eq!(ban_length(Role::Moderator, None), Ok(Some(7 * day)));
        assert_eq!(
            ban_length(Role::Moderator, Some(7 * day)),
            Ok(Some(7 * day))
        );
        assert!(ban_length(Role::Moderator, Some(8 * day)).is_err());
        let range = |s: &str| crate::bans::AddrRange::parse(s).unwrap();
        for ok in [
            "198.51.100.0/24",
            "198.51.100.7",
            "2001:db8:1::/48",
            "2001:db8::1",
        ] {
            assert!(prefix_allowed(Role::Moderator, &range(ok)).is_ok(), "{ok}");
        }
        for wide in ["198.51.0.0/23", "2001:db8::/47"] {
            assert!(
                prefix_allowed(Role::Moderator, &range(wide)).is_err(),
                "{wide}"
            );
            assert!(prefix_allowed(Role::Admin, &range(wide)).is_ok(), "{wide}");
        }
    }

    #[test]
    fn help_shows_each_role_its_commands() {
        let has = |role, cmd: &str| help(role).any(|l| l.starts_with(cmd));
        assert!(has(Role::User, "/nick") && has(Role::User, "/ops"));
        assert!(!has(Role::User, "/kick") && !has(Role::User, "/bans"));
        assert!(has(Role::Moderator, "/kick") && has(Role::Moderator, "/ban "));
        assert!(!has(Role::Moderator, "/unban") && !has(Role::Moderator, "/op "));
        assert!(has(Role::Admin, "/unban") && has(Role::Admin, "/op "));
    }
}

/// Moderators against the hub: what they may kick and ban, how long their
/// bans last, and how timed bans end.
#[cfg(test)]
mod hub_tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::super::routing::log_in;
    use super::super::tests::hub_with;
    use super::super::*;
    use crate::clock::ManualClock;

    /// 2026-11-24T14:00:00Z.
    const T0: u64 = 1_795_528_800;

    fn clocked() -> (tempfile::TempDir, Arc<ManualClock>, Hub) {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(UNIX_EPOCH + Duration::from_secs(T0)));
        let accounts = Accounts::load(&dir.path().join("accounts.txt")).unwrap();
        let hub = hub_with(dir.path(), clock.clone(), accounts);
        (dir, clock, hub)
    }

    #[tokio::test]
    async fn a_moderator_kicks_and_bans_users_only_and_for_a_week_at_most() {
        let (_dir, _clock, hub) = clocked();
        let admin = log_in(&hub, "admin", Role::Admin, "10.0.0.9");
        let m1 = log_in(&hub, "mod1", Role::Moderator, "10.0.0.1");
        let m2 = log_in(&hub, "mod2", Role::Moderator, "10.0.0.2");
        let alice = log_in(&hub, "alice", Role::User, "10.0.0.3");
        let bob = log_in(&hub, "bob", Role::User, "10.0.0.4");
        for c in [&admin, &m1, &m2, &alice, &bob] {
            c.lines();
        }
        let refused = "ERROR not-permitted a moderator cannot kick the admin or a moderator";
        hub.kick(m1.id, "admin", None);
        hub.kick(m1.id, "MOD2", Some("причина 🚫"));
        assert_eq!(m1.lines(), [refused, refused]);
        assert!(!admin.closed() && !m2.closed());
        hub.kick(m1.id, "alice", Some("спам 垃圾"));
        assert_eq!(alice.lines(), ["KICK alice mod1 спам 垃圾"]);
        assert!(alice.closed());
        assert_eq!(m1.lines().last().unwrap(), "INFO kicked alice");
        // The admin kicks a moderator.
        hub.kick(admin.id, "mod2", None);
        assert!(m2.closed());
        m1.lines();

        let not = |t: &str| format!("ERROR not-permitted {t}");
        hub.ban(m1.id, "bob", Some(Duration::from_secs(8 * 86_400)), None)
            .await;
        hub.ban(m1.id, "admin", None, None).await;
        hub.ban(m1.id, "198.51.100.0/23", None, None).await;
        hub.ban(m1.id, "2001:db8::/47", None, None).await;
        assert_eq!(
            m1.lines(),
            [
                not("a moderator bans for at most 7d"),
                not("the admin account cannot be banned"),
                not("a moderator bans prefixes no wider than /24 (IPv4) or /48 (IPv6)"),
                not("a moderator bans prefixes no wider than /24 (IPv4) or /48 (IPv6)"),
            ]
        );
        assert!(!bob.closed());
        let m3 = log_in(&hub, "mod3", Role::Moderator, "10.0.0.5");
        hub.ban(m1.id, "mod3", None, None).await;
        assert_eq!(
            m1.lines().last().unwrap(),
            &not("a moderator cannot ban the admin or a moderator")
        );
        assert!(!m3.closed());

        // No duration: a week.
        hub.ban(m1.id, "bob", None, Some("флуд")).await;
        assert_eq!(bob.lines().last().unwrap(), "KICK bob mod1 banned: флуд");
        assert_eq!(
            m1.lines().last().unwrap(),
            "INFO banned bob (10.0.0.4) until 2026-12-01T14:00:00Z"
        );
        hub.ban(
            m1.id,
            "2001:db8:1::/48",
            Some(Duration::from_secs(3600)),
            None,
        )
        .await;
        assert_eq!(
            m1.lines(),
            ["INFO banned 2001:db8:1::/48 (address only) until 2026-11-24T15:00:00Z"]
        );
        hub.list_bans(m1.id);
        assert_eq!(
            m1.lines(),
            [
                "INFO bob 10.0.0.4 since 2026-11-24T14:00:00Z until 2026-12-01T14:00:00Z by mod1: флуд",
                "INFO - 2001:db8:1::/48 since 2026-11-24T14:00:00Z until 2026-11-24T15:00:00Z by mod1",
            ]
        );
    }

    #[tokio::test]
    async fn a_timed_ban_ends_by_the_clock_and_the_sweep_drops_it() {
        let (dir, clock, hub) = clocked();
        let admin = log_in(&hub, "admin", Role::Admin, "10.0.0.9");
        admin.lines();
        let alice = Nick::parse("alice").unwrap();
        let elsewhere: IpAddr = "10.1.1.1".parse().unwrap();
        hub.ban(
            admin.id,
            "alice",
            Some(Duration::from_secs(30 * 60)),
            Some("ждать"),
        )
        .await;
        hub.ban(admin.id, "mallory", None, None).await;
        assert_eq!(
            admin.lines(),
            [
                "INFO banned alice (not connected: nickname only) until 2026-11-24T14:30:00Z",
                "INFO banned mallory (not connected: nickname only)",
            ]
        );
        assert!(hub.ban_reason(&alice, elsewhere).is_some());
        let store = hub.storage().store.clone();
        let code = crate::store::conformance::invite(3, "abcdef", 1, T0 + 30 * 60, "admin");
        store.add_invite(&code).unwrap();
        let file = dir.path().join("bans.txt");
        let written = std::fs::read_to_string(&file).unwrap();
        assert!(
            written.contains("\nalice - 2026-11-24T14:00:00Z 2026-11-24T14:30:00Z admin ждать\n"),
            "{written}"
        );

        clock.advance(Duration::from_secs(29 * 60));
        hub.sweep().await;
        assert!(hub.ban_reason(&alice, elsewhere).is_some());
        assert_eq!(std::fs::read_to_string(&file).unwrap(), written);

        clock.advance(Duration::from_secs(2 * 60));
        assert_eq!(hub.ban_reason(&alice, elsewhere), None);
        hub.list_bans(admin.id);
        let listed = admin.lines();
        assert_eq!(listed.len(), 1, "{listed:?}");
        assert!(listed[0].starts_with("INFO mallory - since "), "{listed:?}");
        // Still in the file until the sweep.
        assert_eq!(std::fs::read_to_string(&file).unwrap(), written);
        assert_eq!(store.invites(UNIX_EPOCH).unwrap().len(), 1);
        hub.sweep().await;
        assert!(
            store.invites(UNIX_EPOCH).unwrap().is_empty(),
            "expired invite kept"
        );
        let swept = std::fs::read_to_string(&file).unwrap();
        assert!(!swept.contains("alice"), "{swept}");
        assert!(swept.contains("\nmallory - "), "{swept}");
    }

    #[test]
    fn moderators_are_marked_in_users_and_the_admin_is_not() {
        let (_dir, _clock, hub) = clocked();
        let alice = log_in(&hub, "alice", Role::User, "10.0.0.1");
        let _admin = log_in(&hub, "admin", Role::Admin, "10.0.0.9");
        let m = log_in(&hub, "Mod1", Role::Moderator, "10.0.0.2");
        assert_eq!(
            m.lines(),
            [
                "WELCOME Mod1 #lobby",
                "JOIN #lobby Mod1",
                "USERS #lobby alice admin @Mod1"
            ]
        );
        alice.lines();
        hub.who(alice.id);
        assert_eq!(alice.lines(), ["USERS #lobby alice admin @Mod1"]);
    }

    /// A moderator shares its address with users: an address ban does not
    /// kick it or keep it out, a ban on its nickname by the admin does.
    #[tokio::test]
    async fn address_bans_pass_over_the_staff() {
        let (_dir, _clock, hub) = clocked();
        let admin = log_in(&hub, "admin", Role::Admin, "10.0.0.9");
        let m = log_in(&hub, "mod1", Role::Moderator, "10.0.0.1");
        let eve = log_in(&hub, "eve", Role::User, "10.0.0.1");
        hub.ban(m.id, "eve", None, None).await;
        assert!(eve.closed());
        assert!(!m.closed() && !admin.closed());
        hub.ban(admin.id, "10.0.0.0/24", None, None).await;
        assert!(!m.closed());
    }
}
