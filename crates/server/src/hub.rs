//! The `Hub`: who is connected, who is in which room, who is banned, and
//! the only place that decides who receives what.
//!
//! ```text
//! Peer ─ say / private / join / who / rooms / kick / ban / unban / bans / quit
//!      → one section under the state lock (Hub::section)
//!      → each line encoded once → every recipient's Outbox (shared Bytes)
//! ```
//!
//! A client's [`Peer`](crate::peer) calls one method per command that
//! reaches others or needs their state, with its [`ClientId`]; what
//! concerns that client alone (its errors, `PONG`, `/help`) it queues
//! itself, and it checks the command's privilege against the session's
//! role ([`SharedRole`]) before it calls a moderator's or the admin's
//! method; who may act on whom (a moderator on users only) is checked in
//! here, under the lock. Each method takes the state lock for a short
//! synchronous section: it updates users and rooms, encodes every outgoing
//! line once, and `try_send`s the shared bytes into each recipient's
//! [`Outbox`]. Nothing in here waits on a socket. A recipient whose queue is full is collected as
//! lagging and dropped at the end of the same section ([`State::settle`]),
//! which may announce its `PART` to others (and so drop further laggards).
//!
//! A private message is the one line a single sender aims at a single
//! recipient: it goes through [`Outbox::send_private`], which holds each
//! sender address group (an IPv6 /64 by default) to a share of the
//! recipient's queue. Past it the sender
//! gets `ERROR recipient-busy` and the recipient keeps its connection;
//! room lines and server replies are what everyone gets, and a recipient
//! that cannot keep up with those is dropped as before.
//!
//! Room lines are stamped here, in the same section as their fan-out:
//! each room hands out strictly increasing unix milliseconds
//! ([`Room::stamp`]), and a new room starts past the largest stamp the
//! server ever issued ([`State::high_water`], loaded from history at
//! start), so a stamp never repeats in a room. Members in history mode get
//! the line with its stamp in front (encoded once, and only when the room
//! has such a member); every member else gets protocol v1's bytes. With
//! history on, each `MSG`/`ACTION` is offered to [`History`], which never
//! blocks (a full queue drops the row and counts it). Private messages are
//! never offered.
//!
//! Ban changes are written to disk (fsync) outside the state lock, on the
//! blocking pool, before they are confirmed; so is an account's move by
//! `/nick` ([`rename`]), whose new name is reserved meanwhile. Expired bans
//! are dropped by [`Hub::sweep`]. Who may act on whom, and the roles
//! sessions hold, are in [`moderation`].
//!
//! Lock order: the state lock may be held while taking the bans' or the
//! accounts' lock, never the other way round.

mod moderation;
mod rename;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use rustc_hash::FxBuildHasher;
use tracing::{info, warn};

use super::accounts::{Accounts, Role};
use super::bans::{canonical_ip, format_time, AddrRange, Ban, BanList};
use super::clock::Clock;
use super::history::{History, Row};
use super::outbound::{Busy, Outbox};
use super::room::{ClientId, Mode, Room};
use super::store::Storage;
use tlschat_protocol::history::stamped;
use tlschat_protocol::{ErrorCode, Nick, RoomName, ServerLine, QUIET_ROOM_THRESHOLD};

pub(crate) use self::moderation::{help, may, SharedRole};

/// What a room line says: plain text (`MSG`) or an action (`/me`, `ACTION`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Speech {
    Msg,
    Action,
}

impl Speech {
    /// The encoded `MSG` or `ACTION` of `nick` in `room`.
    fn line(self, room: &str, nick: &str, text: &str) -> Bytes {
        match self {
            Speech::Msg => ServerLine::Msg { room, nick, text },
            Speech::Action => ServerLine::Action { room, nick, text },
        }
        .encode()
    }
}

/// Why a nickname could not be registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum RegisterError {
    #[error("that nickname is in use")]
    Taken,
    /// The nickname became an account after the login looked (a
    /// `/register` or a rename into it): its password was never asked.
    #[error("that nickname is an account now")]
    NowAccount,
    #[error("the server is shutting down")]
    ShuttingDown,
}

/// Shared handle to the chat state; cheap to clone.
#[derive(Clone)]
pub(crate) struct Hub {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    bans: Mutex<BanList>,
    accounts: Mutex<Accounts>,
    storage: Storage,
    /// Where room lines are kept; `None`: history is off.
    history: Option<History>,
}

/// Where a connection comes from and what it asked for at its handshake.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Origin {
    pub addr: IpAddr,
    /// `addr`'s address group (`limits::address_group`).
    pub group: IpAddr,
    pub mode: Mode,
}

impl Origin {
    /// A protocol v1 connection from `addr` in `group`.
    #[cfg(test)]
    pub(crate) fn v1(addr: IpAddr, group: IpAddr) -> Origin {
        Origin {
            addr,
            group,
            mode: Mode::V1,
        }
    }
}

/// A room as history keys and names it: the one a `/join` entered, or
/// the one a client is in.
#[derive(Debug, Clone)]
pub(crate) struct Entered {
    pub key: Arc<str>,
    pub name: Arc<str>,
}

#[derive(Default)]
struct State {
    next_id: u64,
    users: HashMap<ClientId, User, FxBuildHasher>,
    /// Folded nickname → client.
    nicks: HashMap<Box<str>, ClientId>,
    /// Folded room name → room; a room exists while it has members.
    rooms: HashMap<Box<str>, Room>,
    /// The largest stamp ever issued (from history at start): where a new
    /// room's stamps start.
    high_water: u64,
    shutting_down: bool,
}

struct User {
    nick: Nick,
    addr: IpAddr,
    /// The address group (`limits::address_group`: the address, or its IPv6
    /// prefix) whose share of a recipient's queue this user's private
    /// messages count against: all connections from one group share one.
    group: IpAddr,
    /// Folded name of the user's room (always a key of `rooms`).
    room: Box<str>,
    outbox: Outbox,
    mode: Mode,
    role: SharedRole,
    /// A new nickname's key held in `nicks` while a `/nick` saves the
    /// account's move (see [`rename`]).
    reserved: Option<Box<str>>,
}

/// Whom a `/ban` names, and who is banning.
struct BanTarget {
    by: String,
    by_role: Role,
    nick: Option<Nick>,
    addr: Option<AddrRange>,
    /// The role of the nickname's session or account (`User` for an
    /// address).
    role: Role,
}

/// Queues `line` for `id`; a full queue puts `id` on the `lagging` list,
/// which [`State::settle`] drops.
fn deliver(id: ClientId, outbox: &Outbox, line: Bytes, lagging: &mut Vec<ClientId>) {
    if outbox.send(line).is_err() {
        lagging.push(id);
    }
}

/// `t` in unix milliseconds (a time before 1970 is 0).
fn unix_ms(t: std::time::SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Locks a mutex even if a panicking thread poisoned it: every section
/// below leaves the state consistent before anything that could panic.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Hub {
    #[cfg(test)]
    pub(crate) fn new(bans: BanList, accounts: Accounts, storage: Storage) -> Hub {
        Hub::with_history(bans, accounts, storage, None)
    }

    /// A hub that keeps room lines in `history` (`None`: history off).
    pub(crate) fn with_history(
        bans: BanList,
        accounts: Accounts,
        storage: Storage,
        history: Option<History>,
    ) -> Hub {
        let state = State {
            high_water: history.as_ref().map_or(0, History::high_water),
            ..State::default()
        };
        Hub {
            shared: Arc::new(Shared {
                state: Mutex::new(state),
                bans: Mutex::new(bans),
                accounts: Mutex::new(accounts),
                storage,
                history,
            }),
        }
    }

    /// Where room lines are kept, if history is on.
    pub(crate) fn history(&self) -> Option<&History> {
        self.shared.history.as_ref()
    }

    /// The store (accounts, roles, invites, settings) and the clock. Store
    /// calls go through [`Storage::call`] (the blocking pool), never under
    /// the state lock; the accounts cache changes after the store committed.
    pub(crate) fn storage(&self) -> &Storage {
        &self.shared.storage
    }

    // ---- handshake -------------------------------------------------------

    /// The `BAN` reason for a nickname or address that may not enter. The
    /// admin, who proves itself with a password, is exempt from bans
    /// (otherwise banning anyone on a shared address locks the admin out).
    pub(crate) fn ban_reason(&self, nick: &Nick, addr: IpAddr) -> Option<String> {
        if Role::of(nick).is_admin() {
            // `/ban admin` is refused; a hand-written ban on the admin in
            // bans.txt must not lock the operator out either.
            return None;
        }
        // A moderator, too, proves itself with a password: an address ban
        // on someone sharing its address must not lock it out.
        let staff = self.account_role(nick) != Role::User;
        let bans = lock(&self.shared.bans);
        let ban = bans
            .find_nick(nick)
            .or_else(|| bans.find_addr(addr).filter(|_| !staff))?;
        Some(match ban.reason.as_str() {
            "" => "you are banned from this server".to_owned(),
            r => format!("you are banned from this server: {r}"),
        })
    }

    pub(crate) fn is_taken(&self, nick: &Nick) -> bool {
        lock(&self.shared.state).nicks.contains_key(nick.key())
    }

    /// The stored password hash if `nick` is a registered account.
    pub(crate) fn password_hash(&self, nick: &Nick) -> Option<String> {
        lock(&self.shared.accounts).hash_of(nick).map(str::to_owned)
    }

    /// Enters a user that finished the handshake into `#lobby`: queues
    /// `WELCOME`, `JOIN` and `USERS` to it and announces it to the room.
    /// `checked`: the nickname's account password was asked and right.
    pub(crate) fn register(
        &self,
        nick: Nick,
        role: impl Into<SharedRole>,
        checked: bool,
        from: Origin,
        outbox: Outbox,
    ) -> Result<ClientId, RegisterError> {
        let Origin { addr, group, mode } = from;
        self.section(|st, lagging| {
            if st.shutting_down {
                return Err(RegisterError::ShuttingDown);
            }
            if st.nicks.contains_key(nick.key()) {
                return Err(RegisterError::Taken);
            }
            // Read again under the state lock: an `/op` or `/deop` saved
            // since the login looked finds this session registered, or this
            // finds the role it saved (see `moderation`). A nickname that
            // became an account while its login waited (at `PASS join`)
            // was never asked that account's password; one whose account
            // went away meanwhile keeps no role of it.
            let role: SharedRole = role.into();
            match lock(&self.shared.accounts).role_of(&nick) {
                Some(_) if !checked => return Err(RegisterError::NowAccount),
                Some(saved) => role.set(saved),
                None if checked => role.set(Role::of(&nick)),
                None => {}
            }
            st.next_id += 1;
            let id = ClientId(st.next_id);
            let lobby = RoomName::lobby();
            let welcome = ServerLine::Welcome {
                nick: nick.as_str(),
                room: lobby.as_str(),
            }
            .encode();
            // Cannot overflow: the queue is new.
            let _ = outbox.send(welcome);
            info!(nick = %nick, %addr, "logged in");
            st.nicks.insert(nick.key().into(), id);
            st.users.insert(
                id,
                User {
                    role,
                    reserved: None,
                    nick,
                    addr: canonical_ip(addr),
                    group,
                    room: lobby.key().into(),
                    outbox,
                    mode,
                },
            );
            st.enter(id, lobby, lagging);
            Ok(id)
        })
    }

    // ---- after the handshake ---------------------------------------------
    //
    // One method per command that reaches others or needs their state; each
    // is one short section under the state lock. The peer answers what
    // concerns its client alone (replies to `PING` and `/help`, its errors)
    // itself, and has checked the command's privilege before it calls a
    // moderator's or the admin's method.

    /// Runs `f` in one section under the state lock, then drops whoever's
    /// queue overflowed meanwhile.
    fn section<T>(&self, f: impl FnOnce(&mut State, &mut Vec<ClientId>) -> T) -> T {
        let mut st = lock(&self.shared.state);
        let mut lagging = Vec::new();
        let out = f(&mut st, &mut lagging);
        st.settle(lagging);
        out
    }

    /// Sends one line to one client, for replies that follow disk I/O.
    fn reply(&self, id: ClientId, line: &ServerLine<'_>) {
        self.section(|st, lagging| st.send(id, line.encode(), lagging));
    }

    fn error(&self, id: ClientId, code: ErrorCode, text: &str) {
        self.reply(id, &ServerLine::Error { code, text });
    }

    /// A line to the speaker's room, the speaker included; stamped, and
    /// offered to history, when history is on.
    pub(crate) fn say(&self, id: ClientId, speech: Speech, text: &str) {
        let history = self.shared.history.as_ref();
        // Read before the lock: the room's stamp is at least one past its
        // last anyway, so a clock read a little early changes no order.
        let now = history.map(|_| unix_ms(self.shared.storage.clock.now()));
        self.section(|st, lagging| {
            let Some(now) = now else {
                return st.say(id, speech, text, lagging);
            };
            if let Some(row) = st.say_stamped(id, speech, text, now, lagging) {
                if let Some(history) = history {
                    history.offer(row);
                }
            }
        });
    }

    /// `/msg NICK TEXT`.
    pub(crate) fn private(&self, id: ClientId, to: &str, text: &str) {
        self.section(|st, lagging| st.private(id, to, text, lagging));
    }

    /// `/join #ROOM`: the room entered, if the client moved.
    pub(crate) fn join(&self, id: ClientId, room: RoomName) -> Option<Entered> {
        self.section(|st, lagging| st.join(id, room, lagging))
    }

    /// The room `id` is in, as history keys and names it.
    pub(crate) fn room_of(&self, id: ClientId) -> Option<Entered> {
        let st = lock(&self.shared.state);
        let room = st.rooms.get(&st.users.get(&id)?.room)?;
        Some(Entered {
            key: room.key().clone(),
            name: room.shown().clone(),
        })
    }

    /// `/who`: the `USERS` of the client's room.
    pub(crate) fn who(&self, id: ClientId) {
        self.section(|st, lagging| {
            if let Some(me) = st.users.get(&id) {
                let line = st.users_line(&me.room);
                st.send(id, line, lagging);
            }
        });
    }

    /// `/rooms`: every room with its head count.
    pub(crate) fn rooms(&self, id: ClientId) {
        self.section(|st, lagging| {
            let line = st.rooms_line();
            st.send(id, line, lagging);
        });
    }

    /// `/kick NICK [REASON]`, by the admin or a moderator.
    pub(crate) fn kick(&self, id: ClientId, nick: &str, reason: Option<&str>) {
        let reason = reason.unwrap_or("no reason given");
        self.section(|st, lagging| st.kick(id, nick, reason, lagging));
    }

    /// The client's own line overflowed its queue (the peer queues those
    /// itself): it is dropped like any client that does not read.
    pub(crate) fn not_reading(&self, id: ClientId) {
        self.section(|_, lagging| lagging.push(id));
    }

    /// `/bans`: one `INFO` per ban.
    pub(crate) fn list_bans(&self, id: ClientId) {
        let lines: Vec<Bytes> = {
            let bans = lock(&self.shared.bans);
            if bans.is_empty() {
                vec![ServerLine::Info("no bans").encode()]
            } else {
                bans.iter()
                    .map(|b| ServerLine::Info(&b.describe()).encode())
                    .collect()
            }
        };
        self.section(|st, lagging| {
            for line in lines {
                st.send(id, line, lagging);
            }
        });
    }

    /// `/quit`: the room (the quitter included) sees the `PART`, then the
    /// client is closed after its queue drains.
    pub(crate) fn quit(&self, id: ClientId, reason: Option<&str>) {
        let reason = match reason {
            Some(r) => format!("quit: {r}"),
            None => "quit".to_owned(),
        };
        self.section(|st, lagging| st.remove(id, &reason, true, lagging));
    }

    /// The connection ended without `/quit` (EOF, error, shutdown).
    pub(crate) fn disconnected(&self, id: ClientId) {
        self.section(|st, lagging| st.remove(id, "disconnected", false, lagging));
    }

    /// `/ban NICK|ADDRESS[/LEN] [DURATION] [REASON]`: a connected nickname
    /// is banned with the address it came from; an address or a prefix
    /// alone; any other nickname alone. A moderator's ban is bounded
    /// ([`moderation`]) and never replaces one on the same target that
    /// lasts longer. The ban is persisted, then every session it covers
    /// (the nickname, and every user from the address) is kicked.
    pub(crate) async fn ban(
        &self,
        id: ClientId,
        target: &str,
        duration: Option<Duration>,
        reason: Option<&str>,
    ) {
        let Some(BanTarget {
            by,
            by_role,
            nick,
            addr,
            role,
        }) = self.ban_target(id, target)
        else {
            return;
        };
        if role.is_admin() {
            return self.error(
                id,
                ErrorCode::NotPermitted,
                "the admin account cannot be banned",
            );
        }
        let allowed = if moderation::may_act_on(by_role, role) {
            addr.map_or(Ok(()), |a| moderation::prefix_allowed(by_role, &a))
        } else {
            Err("a moderator cannot ban the admin or a moderator".to_owned())
        };
        let length = allowed.and_then(|()| moderation::ban_length(by_role, duration));
        let length = match length {
            Ok(length) => length,
            Err(why) => return self.error(id, ErrorCode::NotPermitted, &why),
        };
        let since = self.clock().now();
        let until = length.and_then(|d| since.checked_add(d));
        let ban = Ban {
            nick: nick.clone(),
            addr,
            since,
            until,
            by: by.clone(),
            reason: reason.unwrap_or("").to_owned(),
        };
        let shared = self.shared.clone();
        let saved = tokio::task::spawn_blocking(move || {
            let mut bans = lock(&shared.bans);
            // Looked up under the lock the add takes: no ban slips between.
            match bans.outlasting(&ban).filter(|_| !by_role.is_admin()) {
                Some(longer) => Ok(Err(longer.until)),
                None => bans.add(ban).map(Ok).map_err(|e| e.to_string()),
            }
        })
        .await
        .unwrap_or_else(|e| Err(format!("the ban task failed: {e}")));
        match saved {
            Ok(Ok(())) => {}
            Ok(Err(longer)) => {
                let until = longer.map_or("with no end".to_owned(), |t| {
                    format!("until {}", format_time(t))
                });
                let text = format!(
                    "{target} is banned for longer ({until}); only the admin may shorten it"
                );
                return self.error(id, ErrorCode::NotPermitted, &text);
            }
            Err(e) => {
                warn!(error = %e, "could not save a ban");
                let text = format!("ban of {target} NOT saved: {e}");
                return self.reply(id, &ServerLine::Info(&text));
            }
        }
        let whom = match (&nick, addr) {
            (Some(n), Some(a)) => format!("{n} ({a})"),
            (Some(n), None) => format!("{n} (not connected: nickname only)"),
            (None, Some(a)) => format!("{a} (address only)"),
            (None, None) => target.to_owned(),
        };
        let until = until.map(|t| format!(" until {}", format_time(t)));
        let until = until.unwrap_or_default();
        info!(by = %by, banned = %whom, "ban{until}");
        let kick_reason = match reason {
            Some(r) => format!("banned: {r}"),
            None => "banned".to_owned(),
        };
        self.section(|st, lagging| {
            let also = st.kick_banned(nick.as_ref(), addr, &by, &kick_reason, lagging);
            let text = format!("banned {whom}{until}");
            st.send(id, ServerLine::Info(&text).encode(), lagging);
            if let (Some(a), Some(also)) = (addr, also) {
                let text = format!("also disconnected from {a}:{also}");
                st.send(id, ServerLine::Info(&text).encode(), lagging);
            }
        });
    }

    /// The clock new bans are dated by and expire by.
    pub(crate) fn clock(&self) -> Arc<dyn Clock> {
        lock(&self.shared.bans).clock()
    }

    /// Drops the bans that have ended from the list and from `bans.txt`
    /// (rewritten only if any had), and the expired invites from the
    /// store, on the blocking pool.
    pub(crate) async fn sweep(&self) {
        let storage = self.storage();
        let now = storage.now();
        match storage
            .call(move |store| store.delete_expired_invites(now))
            .await
        {
            Ok(0) => {}
            Ok(n) => info!("dropped {n} expired invites"),
            Err(e) => warn!(error = %e, "could not drop the expired invites"),
        }
        let shared = self.shared.clone();
        let swept = tokio::task::spawn_blocking(move || {
            lock(&shared.bans)
                .remove_expired()
                .map_err(|e| e.to_string())
        })
        .await
        .unwrap_or_else(|e| Err(format!("the sweep task failed: {e}")));
        match swept {
            Ok(ended) => {
                for ban in ended {
                    info!(ban = %ban, "ban expired");
                }
            }
            Err(e) => warn!(error = %e, "could not drop the expired bans"),
        }
    }

    /// Who `/ban TARGET` by `id` names (see [`Hub::ban`]). `None` after
    /// answering a target that is neither a nickname nor an address.
    fn ban_target(&self, id: ClientId, target: &str) -> Option<BanTarget> {
        let (by, by_role, found) = {
            let st = lock(&self.shared.state);
            let me = st.users.get(&id)?;
            let found = st.find(target).map(|t| {
                let u = &st.users[&t];
                (u.nick.clone(), u.addr, u.role.get())
            });
            (me.nick.to_string(), me.role.get(), found)
        };
        let (nick, addr, role) = match found {
            Some((nick, addr, role)) => (Some(nick), Some(AddrRange::single(addr)), role),
            None => match AddrRange::parse(target) {
                Ok(range) => (None, Some(range), Role::User),
                Err(_) => match Nick::parse(target) {
                    Ok(nick) => {
                        let role = self.account_role(&nick);
                        (Some(nick), None, role)
                    }
                    Err(e) => {
                        self.error(id, ErrorCode::NoSuchNick, &format!("{target}: {e}"));
                        return None;
                    }
                },
            },
        };
        Some(BanTarget {
            by,
            by_role,
            nick,
            addr,
            role,
        })
    }

    /// The role an account's holder logs in with; a nickname that is no
    /// account is a user (and `admin` always the admin).
    pub(crate) fn account_role(&self, nick: &Nick) -> Role {
        lock(&self.shared.accounts)
            .role_of(nick)
            .unwrap_or_else(|| Role::of(nick))
    }

    /// `/unban NICK|ADDRESS`: lifts every ban on that nickname or address.
    pub(crate) async fn unban(&self, id: ClientId, target: &str) {
        let shared = self.shared.clone();
        let owned = target.to_owned();
        let removed = tokio::task::spawn_blocking(move || {
            lock(&shared.bans).remove(&owned).map_err(|e| e.to_string())
        })
        .await
        .unwrap_or_else(|e| Err(format!("the unban task failed: {e}")));
        match removed {
            Ok(removed) if removed.is_empty() => self.error(
                id,
                ErrorCode::NoSuchNick,
                &format!("no ban matches {target}"),
            ),
            Ok(removed) => {
                info!(target, count = removed.len(), "unban");
                for ban in removed {
                    let text = format!("unbanned {}", ban.describe());
                    self.reply(id, &ServerLine::Info(&text));
                }
            }
            Err(e) => {
                let text = format!("unban of {target} NOT saved: {e}");
                self.reply(id, &ServerLine::Info(&text));
            }
        }
    }

    /// Server shutdown: every client gets `INFO <text>` and is closed once
    /// its queue drains. No further registrations.
    pub(crate) fn shutdown(&self, text: &str) {
        let mut st = lock(&self.shared.state);
        st.shutting_down = true;
        let line = ServerLine::Info(text).encode();
        for user in st.users.values() {
            let _ = user.outbox.send(line.clone());
            user.outbox.close();
        }
    }

    /// A reloaded bans file replaces the list (SIGHUP). Connected users it
    /// now bans stay until they reconnect.
    pub(crate) fn replace_bans(&self, bans: BanList) {
        *lock(&self.shared.bans) = bans;
    }

    /// The nickname of a connected client (for commands that act on the
    /// caller's own account).
    pub(crate) fn nick_of(&self, id: ClientId) -> Option<Nick> {
        lock(&self.shared.state)
            .users
            .get(&id)
            .map(|u| u.nick.clone())
    }

    /// The accounts cache, for a change the store has already committed
    /// (`/register`, `/password`, `/unregister`).
    pub(crate) fn with_accounts<T>(&self, f: impl FnOnce(&mut Accounts) -> T) -> T {
        f(&mut lock(&self.shared.accounts))
    }

    /// A reloaded accounts file replaces the password hashes (SIGHUP after
    /// `tlschat-server passwd`).
    pub(crate) fn replace_accounts(&self, accounts: Accounts) {
        *lock(&self.shared.accounts) = accounts;
    }

    /// Holds the state lock until the result is dropped: tests show that
    /// a path does not take it.
    #[cfg(test)]
    pub(crate) fn hold_state(&self) -> impl Sized + '_ {
        lock(&self.shared.state)
    }

    /// How many users are logged in.
    #[cfg(test)]
    pub(crate) fn user_count(&self) -> usize {
        lock(&self.shared.state).users.len()
    }
}

impl State {
    fn room_of(&self, id: ClientId) -> &str {
        self.users
            .get(&id)
            .and_then(|u| self.rooms.get(&u.room))
            .map_or("", |r| r.name().as_str())
    }

    fn find(&self, nick: &str) -> Option<ClientId> {
        self.nicks.get(nick.to_ascii_lowercase().as_str()).copied()
    }

    fn send(&self, id: ClientId, line: Bytes, lagging: &mut Vec<ClientId>) {
        if let Some(u) = self.users.get(&id) {
            deliver(id, &u.outbox, line, lagging);
        }
    }

    fn send_error(&self, id: ClientId, code: ErrorCode, text: &str, lagging: &mut Vec<ClientId>) {
        self.send(id, ServerLine::Error { code, text }.encode(), lagging);
    }

    /// Fans one encoded line out to every member of a room.
    fn to_room(&self, room: &str, line: &Bytes, lagging: &mut Vec<ClientId>) {
        let Some(room) = self.rooms.get(room) else {
            return;
        };
        for (id, outbox, _) in room.outboxes() {
            deliver(id, outbox, line.clone(), lagging);
        }
    }

    /// `MSG` or `ACTION` from `id` to every member of its room.
    fn say(&self, id: ClientId, speech: Speech, text: &str, lagging: &mut Vec<ClientId>) {
        let Some(me) = self.users.get(&id) else {
            return;
        };
        let Some(room) = self.rooms.get(&me.room) else {
            return;
        };
        let (nick, name) = (me.nick.as_str(), room.name().as_str());
        let line = speech.line(name, nick, text);
        for (member, outbox, _) in room.outboxes() {
            deliver(member, outbox, line.clone(), lagging);
        }
    }

    /// [`State::say`] with history on: the line gets the room's next
    /// stamp (members in history mode see it), and the returned row is
    /// what history keeps.
    fn say_stamped(
        &mut self,
        id: ClientId,
        speech: Speech,
        text: &str,
        now_ms: u64,
        lagging: &mut Vec<ClientId>,
    ) -> Option<Row> {
        let me = self.users.get(&id)?;
        let room = self.rooms.get_mut(&me.room)?;
        let at = room.stamp(now_ms);
        self.high_water = self.high_water.max(at);
        let (nick, name) = (me.nick.as_str(), room.name().as_str());
        let line = speech.line(name, nick, text);
        let with_stamp = room.has_history_members().then(|| stamped(at, &line));
        for (member, outbox, mode) in room.outboxes() {
            let line = match (&with_stamp, mode) {
                (Some(s), Mode::History) => s.clone(),
                _ => line.clone(),
            };
            deliver(member, outbox, line, lagging);
        }
        Some(Row {
            room_key: room.key().clone(),
            room: room.shown().clone(),
            at,
            nick: nick.into(),
            action: speech == Speech::Action,
            text: text.into(),
        })
    }

    /// `PRIVMSG` from `id` to `to`, echoed to the sender (once, if it is
    /// the recipient); held to the sender's share of the recipient's queue.
    fn private(&self, id: ClientId, to: &str, text: &str, lagging: &mut Vec<ClientId>) {
        let Some(me) = self.users.get(&id) else {
            return;
        };
        let Some(target) = self.find(to) else {
            let text = format!("{to} is not connected");
            return self.send_error(id, ErrorCode::NoSuchNick, &text, lagging);
        };
        let recipient = &self.users[&target];
        let line = ServerLine::PrivMsg {
            from: me.nick.as_str(),
            to: recipient.nick.as_str(),
            text,
        }
        .encode();
        match recipient.outbox.send_private(line.clone(), me.group) {
            Ok(()) if target != id => self.send(id, line, lagging),
            Ok(()) => {}
            Err(Busy) => {
                let text = format!(
                    "{} is not reading fast enough: message not delivered; try again later",
                    recipient.nick
                );
                self.send_error(id, ErrorCode::RecipientBusy, &text, lagging);
            }
        }
    }

    /// Moves `id` into `room`, unless it is there already.
    fn join(
        &mut self,
        id: ClientId,
        room: RoomName,
        lagging: &mut Vec<ClientId>,
    ) -> Option<Entered> {
        let me = self.users.get(&id)?;
        if room.key() == &*me.room {
            let text = format!("you are already in {}", self.room_of(id));
            self.send(id, ServerLine::Info(&text).encode(), lagging);
            return None;
        }
        self.exit(id, "moved", true, lagging);
        self.enter(id, room, lagging)
    }

    /// `ROOMS`: every room with its head count, by name.
    fn rooms_line(&self) -> Bytes {
        let mut rooms: Vec<_> = self
            .rooms
            .values()
            .map(|r| (r.name().as_str(), r.len()))
            .collect();
        rooms.sort_unstable();
        ServerLine::Rooms(rooms).encode()
    }

    fn users_line(&self, room: &str) -> Bytes {
        let Some(r) = self.rooms.get(room) else {
            return Bytes::new();
        };
        // `@nick` for a moderator; the admin and users unmarked, so a server
        // without moderators sends v1's line.
        let entries: Vec<std::borrow::Cow<'_, str>> = r
            .members()
            .filter_map(|m| self.users.get(&m))
            .map(|u| match u.role.get() {
                Role::Moderator => format!("@{}", u.nick).into(),
                Role::User | Role::Admin => u.nick.as_str().into(),
            })
            .collect();
        ServerLine::Users {
            room: r.name().as_str(),
            nicks: entries.iter().map(|e| e.as_ref()).collect(),
        }
        .encode()
    }

    /// A fresh `USERS` to the room `id` is in, so every member list shows
    /// its new `@` (or loses it) at once; not in a big room, where joins and
    /// parts are not told either.
    pub(crate) fn users_to_room_of(&self, id: ClientId, lagging: &mut Vec<ClientId>) {
        let Some(room) = self.users.get(&id).map(|u| u.room.clone()) else {
            return;
        };
        if self
            .rooms
            .get(&room)
            .is_some_and(|r| r.len() <= QUIET_ROOM_THRESHOLD)
        {
            let line = self.users_line(&room);
            self.to_room(&room, &line, lagging);
        }
    }

    /// Puts `id` into `room`: `JOIN` to the room (only to the joiner in a
    /// big room), then `USERS` to the joiner.
    fn enter(
        &mut self,
        id: ClientId,
        room: RoomName,
        lagging: &mut Vec<ClientId>,
    ) -> Option<Entered> {
        let user = self.users.get_mut(&id)?;
        let key: Box<str> = room.key().into();
        user.room = key.clone();
        let after = self.high_water;
        let r = self
            .rooms
            .entry(key.clone())
            .or_insert_with(|| Room::new(room, after));
        r.insert(id, user.outbox.clone(), user.mode);
        let entered = Entered {
            key: r.key().clone(),
            name: r.shown().clone(),
        };
        let quiet = r.len() > QUIET_ROOM_THRESHOLD;
        let line = ServerLine::Join {
            room: self.rooms[&key].name().as_str(),
            nick: self.users[&id].nick.as_str(),
        }
        .encode();
        if quiet {
            self.send(id, line, lagging);
        } else {
            self.to_room(&key, &line, lagging);
        }
        let users = self.users_line(&key);
        self.send(id, users, lagging);
        Some(entered)
    }

    /// Takes `id` out of its room with a `PART` to the others (not in a big
    /// room) and, if `tell_self`, to itself.
    fn exit(&mut self, id: ClientId, reason: &str, tell_self: bool, lagging: &mut Vec<ClientId>) {
        let Some(user) = self.users.get(&id) else {
            return;
        };
        let key = user.room.clone();
        let Some(r) = self.rooms.get_mut(&key) else {
            return;
        };
        let quiet = r.len() > QUIET_ROOM_THRESHOLD;
        let line = ServerLine::Part {
            room: r.name().as_str(),
            nick: user.nick.as_str(),
            reason,
        }
        .encode();
        r.remove(id);
        let empty = r.is_empty();
        if tell_self {
            self.send(id, line.clone(), lagging);
        }
        if empty {
            self.rooms.remove(&key);
        } else if !quiet {
            self.to_room(&key, &line, lagging);
        }
    }

    /// Removes a user entirely and closes its connection after its queue
    /// drains.
    fn remove(&mut self, id: ClientId, reason: &str, tell_self: bool, lagging: &mut Vec<ClientId>) {
        if self.shutting_down {
            // Everyone is leaving: no PART storm while the server stops.
            if let Some(u) = self.users.remove(&id) {
                self.forget_nicks(&u);
                if let Some(r) = self.rooms.get_mut(&u.room) {
                    r.remove(id);
                }
            }
            return;
        }
        self.exit(id, reason, tell_self, lagging);
        if let Some(u) = self.users.remove(&id) {
            self.forget_nicks(&u);
            u.outbox.close();
            info!(nick = %u.nick, reason, "left");
        }
    }

    /// Frees the nickname of a user that left, and the one it had
    /// reserved for a rename.
    fn forget_nicks(&mut self, u: &User) {
        self.nicks.remove(u.nick.key());
        if let Some(key) = &u.reserved {
            self.nicks.remove(key);
        }
    }

    /// Every user's session (no admin's, no moderator's) whose address is
    /// in `range`, but `except`, in order of login.
    fn sessions_in(&self, range: AddrRange, except: Option<ClientId>) -> Vec<(ClientId, Nick)> {
        let mut found: Vec<(ClientId, Nick)> = self
            .users
            .iter()
            .filter(|(id, u)| {
                Some(**id) != except && u.role.get() == Role::User && range.contains(u.addr)
            })
            .map(|(id, u)| (*id, u.nick.clone()))
            .collect();
        found.sort_unstable_by_key(|(id, _)| *id);
        found
    }

    /// `/kick` by the client `by_id`.
    fn kick(&mut self, by_id: ClientId, target: &str, reason: &str, lagging: &mut Vec<ClientId>) {
        let Some(t) = self.find(target) else {
            return self.send_error(
                by_id,
                ErrorCode::NoSuchNick,
                &format!("{target} is not connected"),
                lagging,
            );
        };
        if t == by_id {
            return self.send_error(
                by_id,
                ErrorCode::NotPermitted,
                "you cannot kick yourself",
                lagging,
            );
        }
        let (by, target) = (&self.users[&by_id], &self.users[&t]);
        if !moderation::may_act_on(by.role.get(), target.role.get()) {
            return self.send_error(
                by_id,
                ErrorCode::NotPermitted,
                "a moderator cannot kick the admin or a moderator",
                lagging,
            );
        }
        let by = by.nick.to_string();
        let nick = target.nick.to_string();
        self.kick_user(t, &by, reason, lagging);
        let text = format!("kicked {nick}");
        self.send(by_id, ServerLine::Info(&text).encode(), lagging);
    }

    /// Kicks every session a new ban covers: the session named `nick`,
    /// then every other non-admin one from `addr`, in order of login.
    /// Returns the latter's nicknames (` a b c`), if there were any.
    fn kick_banned(
        &mut self,
        nick: Option<&Nick>,
        addr: Option<AddrRange>,
        by: &str,
        reason: &str,
        lagging: &mut Vec<ClientId>,
    ) -> Option<String> {
        let named = nick.and_then(|n| self.nicks.get(n.key()).copied());
        let others = addr.map_or_else(Vec::new, |a| self.sessions_in(a, named));
        if let Some(t) = named {
            self.kick_user(t, by, reason, lagging);
        }
        if others.is_empty() {
            return None;
        }
        let mut also = String::new();
        for (t, nick) in &others {
            self.kick_user(*t, by, reason, lagging);
            also.push(' ');
            also.push_str(nick.as_str());
        }
        Some(also)
    }

    /// `KICK` to the target's room and the target, `PART` to the others,
    /// then the target is closed once the `KICK` is delivered.
    fn kick_user(&mut self, t: ClientId, by: &str, reason: &str, lagging: &mut Vec<ClientId>) {
        let Some(user) = self.users.get(&t) else {
            return;
        };
        let line = ServerLine::Kick {
            nick: user.nick.as_str(),
            by,
            reason,
        }
        .encode();
        // Its peer answers its own lines without this lock: none of those
        // answers may follow the `KICK`.
        user.outbox.end_replies();
        // The target is a member of its room, so this reaches it too.
        self.to_room(&user.room.clone(), &line, lagging);
        info!(nick = %self.users[&t].nick, by, reason, "kick");
        self.remove(t, "kicked", false, lagging);
    }

    /// Drops every client whose queue overflowed. Announcing each drop can
    /// overflow further queues; loop until none is left.
    fn settle(&mut self, mut lagging: Vec<ClientId>) {
        while let Some(id) = lagging.pop() {
            let Some(user) = self.users.get(&id) else {
                continue;
            };
            warn!(nick = %user.nick, "send queue full: disconnecting a client that is not reading");
            user.outbox.abort();
            self.remove(id, "disconnected: not reading", false, &mut lagging);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncBufReadExt, BufReader, DuplexStream, Lines};

    use super::*;
    use crate::outbound::{channel, run_writer, PRIVATE_SHARE, SENDER_SHARE};

    /// A logged-in client whose socket is a pipe of `pipe` bytes.
    struct Piped {
        id: ClientId,
        lines: Lines<BufReader<DuplexStream>>,
    }

    impl Piped {
        async fn next(&mut self) -> String {
            tokio::time::timeout(Duration::from_secs(5), self.lines.next_line())
                .await
                .expect("a line within 5 s")
                .expect("pipe read")
                .expect("not closed")
        }

        /// Reads until a line starting with `prefix`.
        async fn wait_for(&mut self, prefix: &str) -> String {
            loop {
                let line = self.next().await;
                if line.starts_with(prefix) {
                    return line;
                }
            }
        }
    }

    pub(super) fn new_hub(dir: &std::path::Path) -> Hub {
        Hub::new(
            BanList::load(&dir.join("bans.txt")).unwrap(),
            Accounts::load(&dir.join("accounts.txt")).unwrap(),
            Storage::in_memory(),
        )
    }

    /// A hub whose bans expire by `clock`, with `accounts`.
    pub(super) fn hub_with(
        dir: &std::path::Path,
        clock: Arc<dyn Clock>,
        accounts: Accounts,
    ) -> Hub {
        let storage = Storage {
            store: Arc::new(crate::store::MemStore::default()),
            clock: clock.clone(),
        };
        Hub::new(
            BanList::load_with_clock(&dir.join("bans.txt"), clock).unwrap(),
            accounts,
            storage,
        )
    }

    /// A hub whose accounts are the cache of `store`, as a server's are.
    pub(super) fn hub_on_store(
        dir: &std::path::Path,
        clock: Arc<dyn Clock>,
        store: Arc<crate::store::MemStore>,
    ) -> Hub {
        let accounts = Accounts::from_store(store.clone(), clock.clone()).unwrap();
        Hub::new(
            BanList::load_with_clock(&dir.join("bans.txt"), clock.clone()).unwrap(),
            accounts,
            Storage { store, clock },
        )
    }

    async fn enter(hub: &Hub, nick: &str, addr: &str, queue: usize, pipe: usize) -> Piped {
        let (outbox, inbox) = channel(queue);
        let (w, r) = tokio::io::duplex(pipe);
        tokio::spawn(run_writer(inbox, w));
        let addr: IpAddr = addr.parse().unwrap();
        let group = crate::limits::address_group(addr, 64);
        let id = hub
            .register(
                Nick::parse(nick).unwrap(),
                Role::User,
                false,
                Origin::v1(addr, group),
                outbox,
            )
            .unwrap();
        let mut peer = Piped {
            id,
            lines: BufReader::new(r).lines(),
        };
        peer.wait_for("USERS ").await;
        peer
    }

    const QUEUE: usize = 8 * 1024;
    /// Every text path carries non-ASCII: Cyrillic, Greek, Arabic, Hebrew,
    /// CJK, emoji with ZWJ and skin tone, a combining mark.
    const TEXT: &str = "привет γειά مرحبا שלום 你好 👩🏽‍💻 e\u{301}";

    /// `from` sends private messages of ~400 bytes to `to` until one is
    /// refused; returns how many got through.
    async fn flood_until_busy(hub: &Hub, from: &mut Piped, to: &str) -> usize {
        let text = format!("{TEXT} {}", "x".repeat(350));
        for sent in 0..100 {
            hub.private(from.id, to, &text);
            let answer = loop {
                let line = from.next().await;
                // Others entering the lobby meanwhile.
                if !line.starts_with("JOIN ") {
                    break line;
                }
            };
            if answer.starts_with("ERROR recipient-busy ") {
                return sent;
            }
            assert!(answer.starts_with("PRIVMSG "), "{answer}");
        }
        panic!("100 private messages and never busy");
    }

    /// One address floods a recipient that does not read: the flooder is
    /// told `recipient-busy` once it holds its share, the recipient stays,
    /// another address still reaches it, and it gets that message once it
    /// reads.
    #[tokio::test]
    async fn a_private_flood_makes_its_sender_busy_not_the_recipient_gone() {
        let dir = tempfile::tempdir().unwrap();
        let hub = new_hub(dir.path());
        // The victim's pipe holds almost nothing: its queue does the holding.
        let mut victim = enter(&hub, "victim", "10.0.0.9", QUEUE, 64).await;
        let mut flooder = enter(&hub, "flooder", "10.0.0.1", QUEUE, 1 << 20).await;
        let mut second = enter(&hub, "second", "10.0.0.1", QUEUE, 1 << 20).await;
        let mut other = enter(&hub, "other", "10.0.0.2", QUEUE, 1 << 20).await;

        let got_through = flood_until_busy(&hub, &mut flooder, "victim").await;
        assert!(
            got_through * 400 <= QUEUE / SENDER_SHARE + 1024,
            "{got_through} lines"
        );
        // Another connection from the same address shares the same share.
        let text = format!("{TEXT} {}", "s".repeat(350));
        hub.private(second.id, "victim", &text);
        second.wait_for("ERROR recipient-busy ").await;
        // Another address has its own.
        let text = format!("{TEXT} from elsewhere");
        hub.private(other.id, "VICTIM", &text);
        let echo = other.wait_for("PRIVMSG ").await;
        assert_eq!(echo, format!("PRIVMSG other victim {text}"));
        assert_eq!(hub.user_count(), 4, "nobody was dropped");

        // Once the victim reads, the message from elsewhere arrives.
        victim.wait_for("PRIVMSG other victim ").await;
        // ... and, its queue written, the flooder may send again.
        let line = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                hub.private(flooder.id, "victim", TEXT);
                let answer = flooder.next().await;
                if answer.starts_with("PRIVMSG ") {
                    return answer;
                }
            }
        })
        .await
        .expect("the share comes back once the victim reads");
        assert_eq!(line, format!("PRIVMSG flooder victim {TEXT}"));
    }

    /// Room lines still drop a member that does not read, private lines
    /// queued or not: they are what everyone gets.
    #[tokio::test]
    async fn room_lines_still_drop_a_member_that_stops_reading() {
        let dir = tempfile::tempdir().unwrap();
        let hub = new_hub(dir.path());
        let _victim = enter(&hub, "victim", "10.0.0.9", QUEUE, 64).await;
        let mut a = enter(&hub, "alice", "10.0.0.1", 1 << 20, 1 << 20).await;
        let mut b = enter(&hub, "bob", "10.0.0.2", 1 << 20, 1 << 20).await;
        flood_until_busy(&hub, &mut a, "victim").await;
        flood_until_busy(&hub, &mut b, "victim").await;
        let text = format!("{TEXT} {}", "r".repeat(300));
        for _ in 0..(QUEUE / 300 + 1) {
            hub.say(a.id, Speech::Msg, &text);
        }
        a.wait_for("PART #lobby victim disconnected: not reading")
            .await;
        b.wait_for("PART #lobby victim disconnected: not reading")
            .await;
        assert_eq!(hub.user_count(), 2);
    }

    /// All private lines together stay within their share, so the rest of
    /// the queue is left to what everyone gets.
    #[tokio::test]
    async fn private_lines_from_many_addresses_stop_at_their_share() {
        let dir = tempfile::tempdir().unwrap();
        let hub = new_hub(dir.path());
        let _victim = enter(&hub, "victim", "10.0.0.9", QUEUE, 64).await;
        let mut total = 0;
        let mut busy_at_once = false;
        for i in 1..=2 * SENDER_SHARE {
            let mut s = enter(
                &hub,
                &format!("s{i}"),
                &format!("10.0.1.{i}"),
                QUEUE,
                1 << 20,
            )
            .await;
            let sent = flood_until_busy(&hub, &mut s, "victim").await;
            busy_at_once |= sent == 0;
            total += sent;
        }
        assert!(busy_at_once, "later senders find the private share full");
        assert!(total * 400 <= QUEUE / PRIVATE_SHARE + 1024, "{total} lines");
        assert_eq!(hub.user_count(), 1 + 2 * SENDER_SHARE);
    }
}

/// Who receives what, read straight from each client's queue: no sockets,
/// no writer tasks.
#[cfg(test)]
mod routing {
    use super::tests::new_hub;
    use super::*;
    use crate::outbound::{channel, Inbox};

    const TEXT: &str = "привет γειά مرحبا שלום 你好 👩🏽‍💻 e\u{301}";

    pub(super) struct Client {
        pub(super) id: ClientId,
        /// A second handle, to see whether the hub closed the client.
        outbox: Outbox,
        inbox: Inbox,
    }

    impl Client {
        /// What the client received since the last look.
        pub(super) fn lines(&self) -> Vec<String> {
            self.inbox.take_lines()
        }

        pub(super) fn closed(&self) -> bool {
            self.outbox.is_closing()
        }
    }

    pub(super) fn log_in(hub: &Hub, nick: &str, role: Role, addr: &str) -> Client {
        let (outbox, inbox) = channel(0);
        let addr: IpAddr = addr.parse().unwrap();
        let nick = Nick::parse(nick).unwrap();
        // As if a registered nickname's password was right.
        let checked = hub.with_accounts(|a| a.is_registered(&nick));
        let id = hub
            .register(nick, role, checked, Origin::v1(addr, addr), outbox.clone())
            .unwrap();
        Client { id, outbox, inbox }
    }

    fn room(name: &str) -> RoomName {
        RoomName::parse(name).unwrap()
    }

    /// A hub (and the directory of its files) with `alice` and `bob` in
    /// `#lobby` and `carol` in `#rust`, each at its own address; every
    /// queue emptied.
    fn three() -> (tempfile::TempDir, Hub, [Client; 3]) {
        let dir = tempfile::tempdir().unwrap();
        let hub = new_hub(dir.path());
        let alice = log_in(&hub, "alice", Role::User, "10.0.0.1");
        let bob = log_in(&hub, "bob", Role::User, "10.0.0.2");
        let carol = log_in(&hub, "carol", Role::User, "10.0.0.3");
        hub.join(carol.id, room("#rust"));
        for c in [&alice, &bob, &carol] {
            c.lines();
        }
        (dir, hub, [alice, bob, carol])
    }

    fn none() -> Vec<String> {
        Vec::new()
    }

    #[test]
    fn a_login_is_welcomed_and_announced_to_its_room_only() {
        let dir = tempfile::tempdir().unwrap();
        let hub = new_hub(dir.path());
        let alice = log_in(&hub, "alice", Role::User, "10.0.0.1");
        assert_eq!(
            alice.lines(),
            [
                "WELCOME alice #lobby",
                "JOIN #lobby alice",
                "USERS #lobby alice"
            ]
        );
        let carol = log_in(&hub, "carol", Role::User, "10.0.0.3");
        hub.join(carol.id, room("#rust"));
        alice.lines();
        carol.lines();
        let bob = log_in(&hub, "bob", Role::User, "10.0.0.2");
        assert_eq!(
            bob.lines(),
            [
                "WELCOME bob #lobby",
                "JOIN #lobby bob",
                "USERS #lobby alice bob"
            ]
        );
        assert_eq!(alice.lines(), ["JOIN #lobby bob"]);
        assert_eq!(carol.lines(), none());
    }

    #[test]
    fn a_room_line_reaches_every_member_and_nobody_else() {
        let (_dir, hub, [alice, bob, carol]) = three();
        for (speech, word) in [(Speech::Msg, "MSG"), (Speech::Action, "ACTION")] {
            hub.say(alice.id, speech, TEXT);
            let line = format!("{word} #lobby alice {TEXT}");
            assert_eq!(alice.lines(), [line.as_str()]);
            assert_eq!(bob.lines(), [line]);
            assert_eq!(carol.lines(), none());
        }
    }

    #[test]
    fn a_private_line_reaches_its_recipient_and_its_sender_only() {
        let (_dir, hub, [alice, bob, carol]) = three();
        hub.private(alice.id, "CAROL", TEXT);
        let line = format!("PRIVMSG alice carol {TEXT}");
        assert_eq!(carol.lines(), [line.as_str()]);
        assert_eq!(alice.lines(), [line]);
        assert_eq!(bob.lines(), none());
        // To oneself: once, not echoed again.
        hub.private(alice.id, "alice", TEXT);
        assert_eq!(alice.lines(), [format!("PRIVMSG alice alice {TEXT}")]);
        // To nobody: the error goes to the sender alone.
        hub.private(alice.id, "zed", TEXT);
        assert_eq!(alice.lines(), ["ERROR no-such-nick zed is not connected"]);
        assert_eq!(bob.lines(), none());
        assert_eq!(carol.lines(), none());
    }

    #[test]
    fn moving_rooms_is_announced_to_the_room_left_and_the_room_entered() {
        let (_dir, hub, [alice, bob, carol]) = three();
        hub.join(bob.id, room("#rust"));
        assert_eq!(
            bob.lines(),
            [
                "PART #lobby bob moved",
                "JOIN #rust bob",
                "USERS #rust carol bob"
            ]
        );
        assert_eq!(alice.lines(), ["PART #lobby bob moved"]);
        assert_eq!(carol.lines(), ["JOIN #rust bob"]);

        hub.join(bob.id, room("#rust"));
        assert_eq!(bob.lines(), ["INFO you are already in #rust"]);
        assert_eq!(carol.lines(), none());

        hub.who(alice.id);
        assert_eq!(alice.lines(), ["USERS #lobby alice"]);
        hub.rooms(alice.id);
        assert_eq!(alice.lines(), ["ROOMS #lobby=1 #rust=2"]);
        assert_eq!(bob.lines(), none());

        hub.quit(bob.id, Some("bye"));
        assert_eq!(bob.lines(), ["PART #rust bob quit: bye"]);
        assert!(bob.closed());
        assert_eq!(carol.lines(), ["PART #rust bob quit: bye"]);
        hub.disconnected(carol.id);
        assert_eq!(alice.lines(), none());
        hub.rooms(alice.id);
        assert_eq!(alice.lines(), ["ROOMS #lobby=1"], "an empty room is gone");
    }

    /// Past [`QUIET_ROOM_THRESHOLD`] members a join or a part is told to
    /// the one joining or leaving only.
    #[test]
    fn a_big_room_tells_joins_and_parts_to_the_mover_only() {
        let dir = tempfile::tempdir().unwrap();
        let hub = new_hub(dir.path());
        let big = || room("#big");
        let observer = log_in(&hub, "observer", Role::User, "10.0.0.1");
        hub.join(observer.id, big());
        for i in 1..QUIET_ROOM_THRESHOLD - 1 {
            let c = log_in(&hub, &format!("u{i}"), Role::User, "10.0.1.1");
            hub.join(c.id, big());
        }
        observer.lines();
        // The room's last member to be announced, then the first that is not.
        let last = log_in(&hub, "last", Role::User, "10.0.2.1");
        let quiet = log_in(&hub, "quiet", Role::User, "10.0.2.2");
        hub.join(last.id, big());
        assert_eq!(observer.lines(), ["JOIN #big last"]);
        hub.join(quiet.id, big());
        assert_eq!(observer.lines(), none());
        let told = quiet.lines();
        assert!(told.contains(&"JOIN #big quiet".to_owned()), "{told:?}");
        hub.disconnected(quiet.id);
        assert_eq!(observer.lines(), none());
        hub.disconnected(last.id);
        assert_eq!(observer.lines(), ["PART #big last disconnected"]);
    }

    #[test]
    fn a_kick_tells_the_room_closes_the_target_and_answers_the_admin() {
        let (_dir, hub, [alice, bob, carol]) = three();
        let admin = log_in(&hub, "admin", Role::Admin, "10.0.0.9");
        admin.lines();
        alice.lines();
        bob.lines();

        hub.kick(admin.id, "ALICE", Some("spam"));
        assert_eq!(alice.lines(), ["KICK alice admin spam"]);
        assert!(alice.closed());
        assert_eq!(
            bob.lines(),
            ["KICK alice admin spam", "PART #lobby alice kicked"]
        );
        assert_eq!(
            admin.lines(),
            [
                "KICK alice admin spam",
                "PART #lobby alice kicked",
                "INFO kicked alice"
            ]
        );
        assert_eq!(carol.lines(), none());
        assert_eq!(hub.user_count(), 3);

        // Errors go to the kicker alone.
        hub.kick(admin.id, "zed", None);
        assert_eq!(admin.lines(), ["ERROR no-such-nick zed is not connected"]);
        hub.kick(admin.id, "admin", None);
        assert_eq!(
            admin.lines(),
            ["ERROR not-permitted you cannot kick yourself"]
        );
        hub.kick(admin.id, "carol", None);
        assert_eq!(carol.lines(), ["KICK carol admin no reason given"]);
        assert_eq!(bob.lines(), none());
        assert!(!admin.closed() && !bob.closed());
    }

    #[tokio::test]
    async fn a_ban_kicks_the_nickname_and_its_address_but_never_the_admin() {
        let dir = tempfile::tempdir().unwrap();
        let hub = new_hub(dir.path());
        let alice = log_in(&hub, "alice", Role::User, "10.0.0.1");
        let mallory = log_in(&hub, "mallory", Role::User, "10.0.0.1");
        let bob = log_in(&hub, "bob", Role::User, "10.0.0.2");
        let admin = log_in(&hub, "admin", Role::Admin, "10.0.0.1");
        for c in [&alice, &mallory, &bob, &admin] {
            c.lines();
        }

        hub.ban(admin.id, "alice", None, Some("spam")).await;
        assert_eq!(alice.lines(), ["KICK alice admin banned: spam"]);
        assert_eq!(mallory.lines()[0], "KICK alice admin banned: spam");
        assert!(alice.closed() && mallory.closed());
        assert_eq!(
            bob.lines(),
            [
                "KICK alice admin banned: spam",
                "PART #lobby alice kicked",
                "KICK mallory admin banned: spam",
                "PART #lobby mallory kicked",
            ]
        );
        let told = admin.lines();
        assert_eq!(
            told[told.len() - 2..],
            [
                "INFO banned alice (10.0.0.1)",
                "INFO also disconnected from 10.0.0.1: mallory"
            ]
        );
        assert!(!admin.closed() && !bob.closed());
        assert_eq!(hub.user_count(), 2);

        // Kept for the next login, on disk too; the admin stays exempt.
        let on_disk = BanList::load(&dir.path().join("bans.txt")).unwrap();
        assert_eq!(on_disk.len(), 1);
        let nick = |n: &str| Nick::parse(n).unwrap();
        let elsewhere: IpAddr = "10.9.9.9".parse().unwrap();
        assert_eq!(
            hub.ban_reason(&nick("alice"), elsewhere).as_deref(),
            Some("you are banned from this server: spam")
        );
        assert!(hub
            .ban_reason(&nick("eve"), "10.0.0.1".parse().unwrap())
            .is_some());
        assert!(hub
            .ban_reason(&nick("admin"), "10.0.0.1".parse().unwrap())
            .is_none());

        // The admin account itself cannot be banned: told to the admin only.
        hub.ban(admin.id, "admin", None, None).await;
        assert_eq!(
            admin.lines(),
            ["ERROR not-permitted the admin account cannot be banned"]
        );
        assert_eq!(bob.lines(), none());
    }

    /// With history on, a history-mode member gets each room line with a
    /// stamp and a v1 member the same line without; a room that empties
    /// and comes back starts past every stamp issued, even with the clock
    /// standing still; private lines are never stamped or kept.
    #[test]
    fn room_lines_are_stamped_for_history_members_and_never_repeat_a_stamp() {
        use crate::clock::ManualClock;
        use crate::history::{History, HistorySettings};
        let dir = tempfile::tempdir().unwrap();
        let start = std::time::UNIX_EPOCH + Duration::from_secs(1_000);
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(start));
        let history = History::in_memory(
            HistorySettings::new(500, Duration::from_secs(3600)),
            clock.clone(),
        );
        let storage = Storage {
            store: Arc::new(crate::store::MemStore::default()),
            clock,
        };
        let hub = Hub::with_history(
            BanList::load(&dir.path().join("bans.txt")).unwrap(),
            Accounts::load(&dir.path().join("accounts.txt")).unwrap(),
            storage,
            Some(history),
        );
        let enter = |nick: &str, mode: Mode| {
            let (outbox, inbox) = channel(0);
            let addr: IpAddr = "10.0.0.1".parse().unwrap();
            let from = Origin {
                addr,
                group: addr,
                mode,
            };
            let nick = Nick::parse(nick).unwrap();
            let id = hub.register(nick, Role::User, false, from, outbox.clone());
            let client = Client {
                id: id.unwrap(),
                outbox,
                inbox,
            };
            hub.join(client.id, room("#r"));
            client.lines();
            client
        };
        let h = enter("alice", Mode::History);
        let v1 = enter("bob", Mode::V1);
        h.lines();
        hub.say(v1.id, Speech::Action, TEXT);
        assert_eq!(h.lines(), [format!("@1000000 ACTION #r bob {TEXT}")]);
        assert_eq!(v1.lines(), [format!("ACTION #r bob {TEXT}")]);
        hub.private(h.id, "bob", TEXT);
        assert_eq!(v1.lines(), [format!("PRIVMSG alice bob {TEXT}")]);
        for c in [&h, &v1] {
            hub.join(c.id, RoomName::lobby());
        }
        hub.rooms(h.id);
        assert_eq!(h.lines().last().unwrap(), "ROOMS #lobby=2");
        hub.join(h.id, room("#r"));
        h.lines();
        hub.say(h.id, Speech::Msg, TEXT);
        assert_eq!(h.lines(), [format!("@1000001 MSG #r alice {TEXT}")]);
        // Only the v1 member left: nothing is stamped.
        hub.join(v1.id, room("#r"));
        hub.disconnected(h.id);
        v1.lines();
        hub.say(v1.id, Speech::Msg, TEXT);
        assert_eq!(v1.lines(), [format!("MSG #r bob {TEXT}")]);
    }

    /// A client whose own reply overflows its queue is dropped like any
    /// other laggard: its room sees it leave.
    #[test]
    fn a_client_not_reading_is_dropped_with_a_part() {
        let (_dir, hub, [alice, bob, _carol]) = three();
        hub.not_reading(bob.id);
        assert!(bob.closed());
        assert_eq!(alice.lines(), ["PART #lobby bob disconnected: not reading"]);
        assert_eq!(hub.user_count(), 2);
    }
}
