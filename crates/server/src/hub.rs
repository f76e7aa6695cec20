//! The `Hub`: who is connected, who is in which room, who is banned, and
//! the only place that decides who receives what.
//!
//! Peer tasks call its methods with a [`ClientId`] and a parsed
//! [`Command`]. Each method takes the state lock for a short synchronous
//! section: it updates users and rooms, encodes every outgoing line once, and
//! `try_send`s the shared bytes into each recipient's [`Outbox`]. Nothing in
//! here waits on a socket. A recipient whose queue is full is collected as
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
//! Ban changes are written to disk (fsync) outside the state lock, on the
//! blocking pool, before they are confirmed.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use rustc_hash::FxBuildHasher;
use tracing::{info, warn};

use super::accounts::{Accounts, ADMIN};
use super::bans::{canonical_ip, AddrRange, Ban, BanList};
use super::outbound::{Busy, Outbox};
use super::room::{ClientId, Room};
use tlschat_protocol::command::{CommandError, ADMIN_HELP, HELP};
use tlschat_protocol::{Command, ErrorCode, Nick, RoomName, ServerLine, QUIET_ROOM_THRESHOLD};

/// The answer to a user's admin command.
const NOT_ADMIN: &str = "only the admin may do that";

/// Why a nickname could not be registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RegisterError {
    #[error("that nickname is in use")]
    Taken,
    #[error("the server is shutting down")]
    ShuttingDown,
}

/// Shared handle to the chat state; cheap to clone.
#[derive(Clone)]
pub struct Hub {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    bans: Mutex<BanList>,
    accounts: Mutex<Accounts>,
}

#[derive(Default)]
struct State {
    next_id: u64,
    users: HashMap<ClientId, User, FxBuildHasher>,
    /// Folded nickname → client.
    nicks: HashMap<Box<str>, ClientId>,
    /// Folded room name → room; a room exists while it has members.
    rooms: HashMap<Box<str>, Room>,
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
    admin: bool,
}

/// Queues `line` for `id`; a full queue puts `id` on the `lagging` list,
/// which [`State::settle`] drops.
fn deliver(id: ClientId, outbox: &Outbox, line: Bytes, lagging: &mut Vec<ClientId>) {
    if outbox.send(line).is_err() {
        lagging.push(id);
    }
}

/// Locks a mutex even if a panicking thread poisoned it: every section
/// below leaves the state consistent before anything that could panic.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Hub {
    pub fn new(bans: BanList, accounts: Accounts) -> Hub {
        Hub {
            shared: Arc::new(Shared {
                state: Mutex::new(State::default()),
                bans: Mutex::new(bans),
                accounts: Mutex::new(accounts),
            }),
        }
    }

    // ---- handshake -------------------------------------------------------

    /// The `BAN` reason for a nickname or address that may not enter. The
    /// admin, who proves itself with a password, is exempt from bans
    /// (otherwise banning anyone on a shared address locks the admin out).
    pub fn ban_reason(&self, nick: &Nick, addr: IpAddr) -> Option<String> {
        if nick.key() == ADMIN {
            // `/ban admin` is refused; a hand-written ban on the admin in
            // bans.txt must not lock the operator out either.
            return None;
        }
        let bans = lock(&self.shared.bans);
        let ban = bans.find_nick(nick).or_else(|| bans.find_addr(addr))?;
        Some(match ban.reason.as_str() {
            "" => "you are banned from this server".to_owned(),
            r => format!("you are banned from this server: {r}"),
        })
    }

    pub fn is_taken(&self, nick: &Nick) -> bool {
        lock(&self.shared.state).nicks.contains_key(nick.key())
    }

    /// The stored password hash if `nick` is a registered account.
    pub fn password_hash(&self, nick: &Nick) -> Option<String> {
        lock(&self.shared.accounts).hash_of(nick).map(str::to_owned)
    }

    /// Enters a user that finished the handshake (password already checked)
    /// into `#lobby`: queues `WELCOME`, `JOIN` and `USERS` to it and
    /// announces it to the room. `group` is `addr`'s address group.
    pub fn register(
        &self,
        nick: Nick,
        addr: IpAddr,
        group: IpAddr,
        outbox: Outbox,
    ) -> Result<ClientId, RegisterError> {
        let mut st = lock(&self.shared.state);
        if st.shutting_down {
            return Err(RegisterError::ShuttingDown);
        }
        if st.nicks.contains_key(nick.key()) {
            return Err(RegisterError::Taken);
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
                admin: nick.key() == ADMIN,
                nick,
                addr: canonical_ip(addr),
                group,
                room: lobby.key().into(),
                outbox,
            },
        );
        let mut lagging = Vec::new();
        st.enter(id, lobby, &mut lagging);
        st.settle(lagging);
        Ok(id)
    }

    // ---- after the handshake ---------------------------------------------

    /// Sends one line to one client (replies, errors).
    pub fn reply(&self, id: ClientId, line: &ServerLine<'_>) {
        let mut st = lock(&self.shared.state);
        let mut lagging = Vec::new();
        st.send(id, line.encode(), &mut lagging);
        st.settle(lagging);
    }

    pub fn error(&self, id: ClientId, code: ErrorCode, text: &str) {
        self.reply(id, &ServerLine::Error { code, text });
    }

    /// Answers a line that is not a valid command. A misused admin command
    /// is `not-permitted` for anyone but the admin: its usage is not theirs.
    pub fn command_error(&self, id: ClientId, e: &CommandError) {
        if e.admin_only && !self.is_admin(id) {
            return self.error(id, ErrorCode::NotPermitted, NOT_ADMIN);
        }
        self.error(id, e.code, &e.text);
    }

    /// Admin rights come with the nickname, so they cannot change while a
    /// client is connected: one check before a command is enough.
    fn is_admin(&self, id: ClientId) -> bool {
        lock(&self.shared.state)
            .users
            .get(&id)
            .is_some_and(|u| u.admin)
    }

    /// Carries out one command of a logged-in client. `/ban` and `/unban`
    /// write the bans file (off the async workers) before they confirm;
    /// everything else is one short section under the state lock.
    pub async fn handle(&self, id: ClientId, cmd: Command<'_>) {
        // Only admin commands take the lock for this.
        if cmd.needs_admin() && !self.is_admin(id) {
            return self.error(id, ErrorCode::NotPermitted, NOT_ADMIN);
        }
        match cmd {
            Command::Ban { nick, reason } => self.ban(id, nick, reason).await,
            Command::Unban(target) => self.unban(id, target).await,
            Command::Quit(reason) => self.quit(id, reason),
            Command::Bans => self.list_bans(id),
            other => self.apply(id, other),
        }
    }

    /// The commands that need no disk I/O.
    fn apply(&self, id: ClientId, cmd: Command<'_>) {
        let mut st = lock(&self.shared.state);
        let mut lagging = Vec::new();
        let Some(me) = st.users.get(&id) else {
            return;
        };
        match cmd {
            Command::Empty => {}
            Command::Say(text) => {
                let line = ServerLine::Msg {
                    room: st.room_of(id),
                    nick: me.nick.as_str(),
                    text,
                }
                .encode();
                st.to_room(&me.room.clone(), &line, &mut lagging);
            }
            Command::Me(text) => {
                let line = ServerLine::Action {
                    room: st.room_of(id),
                    nick: me.nick.as_str(),
                    text,
                }
                .encode();
                st.to_room(&me.room.clone(), &line, &mut lagging);
            }
            Command::Msg { to, text } => match st.find(to) {
                Some(target) => {
                    let recipient = &st.users[&target];
                    let line = ServerLine::PrivMsg {
                        from: me.nick.as_str(),
                        to: recipient.nick.as_str(),
                        text,
                    }
                    .encode();
                    match recipient.outbox.send_private(line.clone(), me.group) {
                        Ok(()) if target != id => st.send(id, line, &mut lagging),
                        Ok(()) => {}
                        Err(Busy) => {
                            let text = format!(
                                "{} is not reading fast enough: message not delivered; try again later",
                                recipient.nick
                            );
                            st.send_error(id, ErrorCode::RecipientBusy, &text, &mut lagging);
                        }
                    }
                }
                None => st.send_error(
                    id,
                    ErrorCode::NoSuchNick,
                    &format!("{to} is not connected"),
                    &mut lagging,
                ),
            },
            Command::Join(room) => {
                if room.key() == &*me.room {
                    let text = format!("you are already in {}", st.room_of(id));
                    st.send(id, ServerLine::Info(&text).encode(), &mut lagging);
                } else {
                    st.exit(id, "moved", true, &mut lagging);
                    st.enter(id, room, &mut lagging);
                }
            }
            Command::Who => {
                let line = st.users_line(&me.room.clone());
                st.send(id, line, &mut lagging);
            }
            Command::Rooms => {
                let mut rooms: Vec<_> = st
                    .rooms
                    .values()
                    .map(|r| (r.name().as_str(), r.len()))
                    .collect();
                rooms.sort_unstable();
                let line = ServerLine::Rooms(rooms).encode();
                st.send(id, line, &mut lagging);
            }
            Command::Help => {
                let admin = me.admin;
                let extra = if admin { ADMIN_HELP } else { &[] };
                for text in HELP.iter().chain(extra) {
                    st.send(id, ServerLine::Info(text).encode(), &mut lagging);
                }
            }
            Command::Ping(token) => st.send(id, ServerLine::Pong(token).encode(), &mut lagging),
            Command::Kick { nick, reason } => {
                st.kick(id, nick, reason.unwrap_or("no reason given"), &mut lagging)
            }
            Command::Bans | Command::Quit(_) | Command::Ban { .. } | Command::Unban(_) => {
                // Routed by `handle` before it gets here.
            }
        }
        st.settle(lagging);
    }

    /// `/bans`: one `INFO` per ban.
    fn list_bans(&self, id: ClientId) {
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
        let mut st = lock(&self.shared.state);
        let mut lagging = Vec::new();
        for line in lines {
            st.send(id, line, &mut lagging);
        }
        st.settle(lagging);
    }

    /// `/quit`: the room (the quitter included) sees the `PART`, then the
    /// client is closed after its queue drains.
    fn quit(&self, id: ClientId, reason: Option<&str>) {
        let reason = match reason {
            Some(r) => format!("quit: {r}"),
            None => "quit".to_owned(),
        };
        let mut st = lock(&self.shared.state);
        let mut lagging = Vec::new();
        st.remove(id, &reason, true, &mut lagging);
        st.settle(lagging);
    }

    /// The connection ended without `/quit` (EOF, error, shutdown).
    pub fn disconnected(&self, id: ClientId) {
        let mut st = lock(&self.shared.state);
        let mut lagging = Vec::new();
        st.remove(id, "disconnected", false, &mut lagging);
        st.settle(lagging);
    }

    /// `/ban NICK|ADDRESS[/LEN] [REASON]`: a connected nickname is banned
    /// with the address it came from; an address or a prefix alone; any
    /// other nickname alone. The ban is persisted, then every non-admin
    /// session it covers (the nickname, and everyone from the address) is
    /// kicked.
    async fn ban(&self, id: ClientId, target: &str, reason: Option<&str>) {
        let (by, found) = {
            let st = lock(&self.shared.state);
            let Some(me) = st.users.get(&id) else { return };
            let found = st.find(target).map(|t| {
                let u = &st.users[&t];
                (u.nick.clone(), u.addr)
            });
            (me.nick.to_string(), found)
        };
        let (nick, addr) = match found {
            Some((nick, addr)) => (Some(nick), Some(AddrRange::single(addr))),
            None => match AddrRange::parse(target) {
                Ok(range) => (None, Some(range)),
                Err(_) => match Nick::parse(target) {
                    Ok(nick) => (Some(nick), None),
                    Err(e) => {
                        return self.error(id, ErrorCode::NoSuchNick, &format!("{target}: {e}"));
                    }
                },
            },
        };
        if nick.as_ref().is_some_and(|n| n.key() == ADMIN) {
            return self.error(
                id,
                ErrorCode::NotPermitted,
                "the admin account cannot be banned",
            );
        }
        let ban = Ban {
            nick: nick.clone(),
            addr,
            since: std::time::SystemTime::now(),
            by: by.clone(),
            reason: reason.unwrap_or("").to_owned(),
        };
        let shared = self.shared.clone();
        let saved = tokio::task::spawn_blocking(move || {
            lock(&shared.bans).add(ban).map_err(|e| e.to_string())
        })
        .await
        .unwrap_or_else(|e| Err(format!("the ban task failed: {e}")));
        if let Err(e) = saved {
            warn!(error = %e, "could not save a ban");
            let text = format!("ban of {target} NOT saved: {e}");
            return self.reply(id, &ServerLine::Info(&text));
        }
        let whom = match (&nick, addr) {
            (Some(n), Some(a)) => format!("{n} ({a})"),
            (Some(n), None) => format!("{n} (not connected: nickname only)"),
            (None, Some(a)) => format!("{a} (address only)"),
            (None, None) => target.to_owned(),
        };
        info!(by = %by, banned = %whom, "ban");
        let kick_reason = match reason {
            Some(r) => format!("banned: {r}"),
            None => "banned".to_owned(),
        };
        let mut st = lock(&self.shared.state);
        let mut lagging = Vec::new();
        let named = nick.as_ref().and_then(|n| st.nicks.get(n.key()).copied());
        let others = addr.map_or_else(Vec::new, |a| st.sessions_in(a, named));
        if let Some(t) = named {
            st.kick_user(t, &by, &kick_reason, &mut lagging);
        }
        let mut also = String::new();
        for (t, nick) in &others {
            st.kick_user(*t, &by, &kick_reason, &mut lagging);
            also.push(' ');
            also.push_str(nick.as_str());
        }
        let text = format!("banned {whom}");
        st.send(id, ServerLine::Info(&text).encode(), &mut lagging);
        if let (Some(a), false) = (addr, others.is_empty()) {
            let text = format!("also disconnected from {a}:{also}");
            st.send(id, ServerLine::Info(&text).encode(), &mut lagging);
        }
        st.settle(lagging);
    }

    /// `/unban NICK|ADDRESS`: lifts every ban on that nickname or address.
    async fn unban(&self, id: ClientId, target: &str) {
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
    pub fn shutdown(&self, text: &str) {
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
    pub fn replace_bans(&self, bans: BanList) {
        *lock(&self.shared.bans) = bans;
    }

    /// A reloaded accounts file replaces the password hashes (SIGHUP after
    /// `tlschat-server passwd`).
    pub fn replace_accounts(&self, accounts: Accounts) {
        *lock(&self.shared.accounts) = accounts;
    }

    /// How many users are logged in.
    pub fn user_count(&self) -> usize {
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
        for (id, outbox) in room.outboxes() {
            deliver(id, outbox, line.clone(), lagging);
        }
    }

    fn users_line(&self, room: &str) -> Bytes {
        let Some(r) = self.rooms.get(room) else {
            return Bytes::new();
        };
        let nicks = r
            .members()
            .filter_map(|m| self.users.get(&m))
            .map(|u| u.nick.as_str())
            .collect();
        ServerLine::Users {
            room: r.name().as_str(),
            nicks,
        }
        .encode()
    }

    /// Puts `id` into `room`: `JOIN` to the room (only to the joiner in a
    /// big room), then `USERS` to the joiner.
    fn enter(&mut self, id: ClientId, room: RoomName, lagging: &mut Vec<ClientId>) {
        let Some(user) = self.users.get_mut(&id) else {
            return;
        };
        let key: Box<str> = room.key().into();
        user.room = key.clone();
        let r = self
            .rooms
            .entry(key.clone())
            .or_insert_with(|| Room::new(room));
        r.insert(id, user.outbox.clone());
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
                self.nicks.remove(u.nick.key());
                if let Some(r) = self.rooms.get_mut(&u.room) {
                    r.remove(id);
                }
            }
            return;
        }
        self.exit(id, reason, tell_self, lagging);
        if let Some(u) = self.users.remove(&id) {
            self.nicks.remove(u.nick.key());
            u.outbox.close();
            info!(nick = %u.nick, reason, "left");
        }
    }

    /// Every non-admin session whose address is in `range`, but `except`,
    /// in order of login.
    fn sessions_in(&self, range: AddrRange, except: Option<ClientId>) -> Vec<(ClientId, Nick)> {
        let mut found: Vec<(ClientId, Nick)> = self
            .users
            .iter()
            .filter(|(id, u)| Some(**id) != except && !u.admin && range.contains(u.addr))
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
        let by = self.users[&by_id].nick.to_string();
        let nick = self.users[&t].nick.to_string();
        self.kick_user(t, &by, reason, lagging);
        let text = format!("kicked {nick}");
        self.send(by_id, ServerLine::Info(&text).encode(), lagging);
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
    struct Peer {
        id: ClientId,
        lines: Lines<BufReader<DuplexStream>>,
    }

    impl Peer {
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

    fn new_hub(dir: &std::path::Path) -> Hub {
        Hub::new(
            BanList::load(&dir.join("bans.txt")).unwrap(),
            Accounts::load(&dir.join("accounts.txt")).unwrap(),
        )
    }

    async fn enter(hub: &Hub, nick: &str, addr: &str, queue: usize, pipe: usize) -> Peer {
        let (outbox, inbox) = channel(queue);
        let (w, r) = tokio::io::duplex(pipe);
        tokio::spawn(run_writer(inbox, w));
        let addr: IpAddr = addr.parse().unwrap();
        let group = crate::limits::address_group(addr, 64);
        let id = hub
            .register(Nick::parse(nick).unwrap(), addr, group, outbox)
            .unwrap();
        let mut peer = Peer {
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
    async fn flood_until_busy(hub: &Hub, from: &mut Peer, to: &str) -> usize {
        let text = format!("{TEXT} {}", "x".repeat(350));
        for sent in 0..100 {
            hub.handle(from.id, Command::Msg { to, text: &text }).await;
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
        hub.handle(
            second.id,
            Command::Msg {
                to: "victim",
                text: &text,
            },
        )
        .await;
        second.wait_for("ERROR recipient-busy ").await;
        // Another address has its own.
        let text = format!("{TEXT} from elsewhere");
        hub.handle(
            other.id,
            Command::Msg {
                to: "VICTIM",
                text: &text,
            },
        )
        .await;
        let echo = other.wait_for("PRIVMSG ").await;
        assert_eq!(echo, format!("PRIVMSG other victim {text}"));
        assert_eq!(hub.user_count(), 4, "nobody was dropped");

        // Once the victim reads, the message from elsewhere arrives.
        victim.wait_for("PRIVMSG other victim ").await;
        // ... and, its queue written, the flooder may send again.
        let line = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                hub.handle(
                    flooder.id,
                    Command::Msg {
                        to: "victim",
                        text: TEXT,
                    },
                )
                .await;
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
            hub.handle(a.id, Command::Say(&text)).await;
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
