//! The ban list: who may not connect, kept in `<data-dir>/bans.txt`.
//!
//! Data flow: the server calls [`BanList::load`] once at start-up; the hub
//! asks [`BanList::find_nick`] / [`BanList::find_addr`] for every newcomer,
//! and the `/ban` and `/unban` commands call [`BanList::add`] and
//! [`BanList::remove`], which rewrite the whole file through
//! [`write_atomic`] *before* they report success, so a ban the admin saw
//! confirmed survives a crash. A failed write leaves the in-memory list as it
//! was, so memory and disk never disagree. `add` and `remove` do blocking
//! file I/O (including fsync); async callers should run them on a blocking
//! thread.
//!
//! Every address is stored and compared in [`canonical_ip`] form, so a client
//! reaching a dual-stack socket as `::ffff:1.2.3.4` is the same as `1.2.3.4`.
//! An address ban may cover a whole prefix ([`AddrRange`], e.g.
//! `2001:db8:1:2::/64`): an IPv6 client usually has a /64 to pick addresses
//! from, so banning one of them alone stops nobody.
//!
//! A ban may end ([`Ban::until`]). Expiry is decided when a ban is used, by
//! the list's [`Clock`]: an expired ban admits, is not listed, and stays in
//! the file until [`BanList::remove_expired`] drops it. So a restored or
//! hand-edited file holding expired bans admits those people at once.
//!
//! # File format
//!
//! Plain text, meant to be read and edited by the operator (with the server
//! stopped). One ban per line, fields separated by spaces:
//!
//! ```text
//! # tlschat bans: NICK ADDRESS SINCE [UNTIL] BY REASON (one per line; "-" = none)
//! bob 203.0.113.7 2026-11-24T14:00:00Z admin spamming the lobby
//! - 2001:db8::1 2026-11-24T15:30:00Z admin
//! mallory - 2026-11-25T09:00:00Z 2026-11-26T09:00:00Z mod1 flooding
//! ```
//!
//! - `NICK`: the banned nickname, or `-` for none;
//! - `ADDRESS`: the banned IPv4/IPv6 address, or a prefix of them in CIDR
//!   form (`2001:db8:1:2::/64`, `198.51.100.0/24`), or `-` for none (not both
//!   `-`); a single address is written without a length, as files written
//!   before prefixes existed have it;
//! - `SINCE`: when the ban was made, RFC 3339 in UTC, whole seconds;
//! - `UNTIL` (optional): when a timed ban ends, in the same form and later
//!   than `SINCE`; written only for timed bans. It is told apart from `BY`
//!   because a time holds `:`, which no nickname does (so files without it
//!   load as they always did), and a `-` there means no end;
//! - `BY`: the nickname of whoever made the ban;
//! - `REASON`: the rest of the line, possibly empty.
//!
//! Blank lines and lines starting with `#` are ignored. Any other line that
//! does not fit is an error naming the line, never silently dropped: a ban
//! quietly lost would let the banned person back in.

use std::fmt;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use std::sync::Arc;

use thiserror::Error;

use crate::clock::Clock;
use tlschat_fs::{write_atomic, Mode};
use tlschat_protocol::names::Nick;

/// The first line of every bans file we write.
const HEADER: &str =
    "# tlschat bans: NICK ADDRESS SINCE [UNTIL] BY REASON (one per line; \"-\" = none)";

/// Stands for a missing nick or address in the file and in [`Ban::describe`].
const NONE: &str = "-";

/// The last second RFC 3339 (four-digit years) can express; humantime fails
/// to format anything later.
const MAX_SECS: u64 = 253_402_300_799;

/// Why the bans file could not be read or written.
#[derive(Debug, Error)]
pub enum BanFileError {
    #[error("cannot read bans file {}: {source}; check that it is a readable file", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("bans file {} line {line}: {reason}; fix or delete that line", path.display())]
    Malformed {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("cannot write bans file {}: {source}; check that its directory exists, is writable and the disk is not full", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A ban handed to [`BanList::add`] that could not be written back in a
    /// readable form (a caller bug, caught before it reaches the file).
    #[error("cannot add ban to {}: {reason}", path.display())]
    Invalid { path: PathBuf, reason: String },
}

/// An address in canonical form: an IPv4-mapped IPv6 address
/// (`::ffff:1.2.3.4`) becomes its IPv4 address. Used for bans and every
/// per-address rule.
pub(crate) fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// A banned address, or a prefix of addresses (CIDR): `net` in
/// [`canonical_ip`] form with the bits past `len` zero. Written as a plain
/// address when it is one (`len` is the full length), else as `net/len`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AddrRange {
    net: IpAddr,
    len: u8,
}

impl AddrRange {
    /// Just `ip` (canonicalised).
    pub(crate) fn single(ip: IpAddr) -> AddrRange {
        let net = canonical_ip(ip);
        AddrRange {
            net,
            len: full_len(net),
        }
    }

    /// `ADDRESS` or `ADDRESS/LEN`. Bits past `LEN` are cleared
    /// (`2001:db8::1/64` is `2001:db8::/64`); an IPv4-mapped prefix of at
    /// least 96 bits is its IPv4 prefix. `/0` is refused: it would ban every
    /// address of a family. The error says what is wrong.
    pub(crate) fn parse(s: &str) -> Result<AddrRange, String> {
        let Some((addr, len)) = s.split_once('/') else {
            return s
                .parse::<IpAddr>()
                .map(AddrRange::single)
                .map_err(|_| format!("bad address `{s}`"));
        };
        let ip: IpAddr = addr
            .parse()
            .map_err(|_| format!("bad address `{addr}` in `{s}`"))?;
        let max = full_len(ip);
        let len: u8 = len
            .parse()
            .ok()
            .filter(|l| *l <= max)
            .ok_or_else(|| format!("bad prefix length in `{s}`: 1 to {max}"))?;
        let (ip, len) = match ip {
            IpAddr::V6(v6) if len >= 96 => match v6.to_ipv4_mapped() {
                Some(v4) => (IpAddr::V4(v4), len - 96),
                None => (ip, len),
            },
            _ => (ip, len),
        };
        // Checked after the IPv4-mapped conversion: `::ffff:0.0.0.0/96` is
        // IPv4's `/0`.
        if len == 0 {
            return Err(format!("`{s}` would cover every address of its kind"));
        }
        Ok(AddrRange {
            net: mask(ip, len),
            len,
        })
    }

    /// True if `ip` (canonicalised) is in this range.
    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical_ip(ip);
        ip.is_ipv4() == self.net.is_ipv4() && mask(ip, self.len) == self.net
    }

    /// True if this is a whole prefix, not a single address.
    pub(crate) fn is_prefix(&self) -> bool {
        self.len < full_len(self.net)
    }

    /// True if this covers more addresses than a prefix of `v4` bits (an
    /// IPv4 range) or `v6` bits (an IPv6 range) does.
    pub(crate) fn wider_than(&self, v4: u8, v6: u8) -> bool {
        self.len < if self.net.is_ipv4() { v4 } else { v6 }
    }
}

impl std::str::FromStr for AddrRange {
    type Err = String;
    fn from_str(s: &str) -> Result<AddrRange, String> {
        AddrRange::parse(s)
    }
}

impl fmt::Display for AddrRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_prefix() {
            write!(f, "{}/{}", self.net, self.len)
        } else {
            write!(f, "{}", self.net)
        }
    }
}

fn full_len(ip: IpAddr) -> u8 {
    match ip {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

/// `ip` with every bit past the first `len` cleared.
fn mask(ip: IpAddr, len: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let keep = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            IpAddr::V4((u32::from(v4) & keep).into())
        }
        IpAddr::V6(v6) => {
            let keep = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            IpAddr::V6((u128::from(v6) & keep).into())
        }
    }
}

/// One ban: a nickname, an address, or both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ban {
    pub(crate) nick: Option<Nick>,
    /// An address or a prefix, in [`canonical_ip`] form.
    pub(crate) addr: Option<AddrRange>,
    /// Whole seconds (what the file can hold).
    pub(crate) since: SystemTime,
    /// When a timed ban ends (whole seconds, after `since`); `None` for a
    /// ban that stays until lifted.
    pub(crate) until: Option<SystemTime>,
    /// The nickname of whoever made the ban.
    pub(crate) by: String,
    /// May be empty; no control characters or newlines.
    pub(crate) reason: String,
}

impl Ban {
    /// One line for `/bans`, e.g.
    /// `bob 127.0.0.1 since 2026-11-24T14:00:00Z by admin: spamming`, with
    /// `until TIME` after the start of a timed ban.
    pub(crate) fn describe(&self) -> String {
        let until = self
            .until
            .map(|t| format!(" until {}", format_time(t)))
            .unwrap_or_default();
        let mut s = format!(
            "{} {} since {}{until} by {}",
            self.nick_field(),
            self.addr_field(),
            format_time(self.since),
            self.by
        );
        if !self.reason.is_empty() {
            s.push_str(": ");
            s.push_str(&self.reason);
        }
        s
    }

    fn nick_field(&self) -> &str {
        self.nick.as_ref().map_or(NONE, Nick::as_str)
    }

    fn addr_field(&self) -> String {
        self.addr.map_or_else(|| NONE.to_owned(), |a| a.to_string())
    }

    /// Whether the ban still holds at `now`.
    fn in_force(&self, now: SystemTime) -> bool {
        self.until.is_none_or(|until| until > now)
    }

    /// True if `self` and `other` ban the same target (so one replaces the other).
    fn same_target(&self, other: &Ban) -> bool {
        self.nick == other.nick && self.addr == other.addr
    }
}

/// The bans in the file, and the file they live in; expired ones are
/// ignored by every lookup.
#[derive(Debug)]
pub(crate) struct BanList {
    path: PathBuf,
    bans: Vec<Ban>,
    clock: Arc<dyn Clock>,
}

impl BanList {
    /// [`BanList::load_with_clock`] with the system clock.
    #[cfg(test)]
    pub(crate) fn load(path: &Path) -> Result<BanList, BanFileError> {
        BanList::load_with_clock(path, Arc::new(crate::clock::SystemClock))
    }

    /// Reads `path`; `clock` decides which timed bans have ended. A missing
    /// file is an empty list. A malformed line is a
    /// [`BanFileError::Malformed`] naming its 1-based line number. Blank lines
    /// and `#` comments are skipped.
    pub(crate) fn load_with_clock(
        path: &Path,
        clock: Arc<dyn Clock>,
    ) -> Result<BanList, BanFileError> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(source) => {
                return Err(BanFileError::Read {
                    path: path.to_owned(),
                    source,
                })
            }
        };
        let mut bans = Vec::new();
        for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
            let malformed = |reason: String| BanFileError::Malformed {
                path: path.to_owned(),
                line: i + 1,
                reason,
            };
            let line = std::str::from_utf8(raw)
                .map_err(|_| malformed("not valid UTF-8".to_owned()))?
                .trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            bans.push(parse_line(line).map_err(malformed)?);
        }
        Ok(BanList {
            path: path.to_owned(),
            bans,
            clock,
        })
    }

    /// The ban in force on `nick`, if any (case-insensitive, via `Nick`
    /// equality).
    pub(crate) fn find_nick(&self, nick: &Nick) -> Option<&Ban> {
        self.iter().find(|b| b.nick.as_ref() == Some(nick))
    }

    /// A ban in force on `ip` or on a prefix holding it, if any; `ip` is
    /// canonicalised first.
    pub(crate) fn find_addr(&self, ip: IpAddr) -> Option<&Ban> {
        self.iter().find(|b| b.addr.is_some_and(|r| r.contains(ip)))
    }

    /// The ban in force on the same (nick, address) target as `ban` that
    /// ends after it, or never (while `ban` ends): what only the admin may
    /// replace with `ban`.
    pub(crate) fn outlasting(&self, ban: &Ban) -> Option<&Ban> {
        let ends = ban.until?;
        self.iter()
            .find(|b| b.same_target(ban) && b.until.is_none_or(|until| until > ends))
    }

    /// Adds `ban` and persists the list before returning `Ok`. A ban on the
    /// same (nick, address) target replaces the old one. The ban is stored
    /// normalised, exactly as a reload would give it back: address
    /// canonicalised, `since` cut to whole seconds, control characters in the
    /// reason turned into spaces and the reason trimmed. On error the
    /// in-memory list is unchanged.
    pub(crate) fn add(&mut self, ban: Ban) -> Result<(), BanFileError> {
        let ban = self.normalise(ban)?;
        let mut next: Vec<Ban> = self
            .bans
            .iter()
            .filter(|b| !b.same_target(&ban))
            .cloned()
            .collect();
        // Newest last, so the file and `/bans` read in order of banning.
        next.push(ban);
        self.commit(next)
    }

    /// Removes every ban whose nick equals `target` (case-insensitively) or
    /// whose address equals `target` read as an address or prefix
    /// (canonicalised; an address does not lift a prefix holding it).
    /// Persists before returning; returns the removed bans. If nothing
    /// matched, returns an empty `Vec` and leaves the file untouched. On error
    /// the in-memory list is unchanged.
    pub(crate) fn remove(&mut self, target: &str) -> Result<Vec<Ban>, BanFileError> {
        let target = target.trim();
        // A string like "1.2.3.4" is both a valid nick and an address; such
        // a target removes bans of either kind, as documented.
        let nick = Nick::parse(target).ok();
        let addr = AddrRange::parse(target).ok();
        let matches =
            |b: &Ban| (nick.is_some() && b.nick == nick) || (addr.is_some() && b.addr == addr);
        let (removed, kept): (Vec<Ban>, Vec<Ban>) =
            self.bans.iter().cloned().partition(|b| matches(b));
        if removed.is_empty() {
            return Ok(removed);
        }
        self.commit(kept)?;
        Ok(removed)
    }

    /// Removes the bans that have ended, rewriting the file only if there
    /// were any; returns them. On error the in-memory list is unchanged.
    pub(crate) fn remove_expired(&mut self) -> Result<Vec<Ban>, BanFileError> {
        let now = self.clock.now();
        let (kept, ended): (Vec<Ban>, Vec<Ban>) =
            self.bans.iter().cloned().partition(|b| b.in_force(now));
        if ended.is_empty() {
            return Ok(ended);
        }
        self.commit(kept)?;
        Ok(ended)
    }

    /// The bans in force, in the order they were made.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Ban> {
        let now = self.clock.now();
        self.bans.iter().filter(move |b| b.in_force(now))
    }

    /// The clock that decides which bans have ended; new bans are dated
    /// by it too.
    pub(crate) fn clock(&self) -> Arc<dyn Clock> {
        self.clock.clone()
    }

    /// How many bans are in force.
    pub(crate) fn len(&self) -> usize {
        self.iter().count()
    }

    /// Whether no ban is in force.
    pub(crate) fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }

    /// Writes `next` to disk and only then makes it the list in memory.
    fn commit(&mut self, next: Vec<Ban>) -> Result<(), BanFileError> {
        write_atomic(&self.path, render(&next).as_bytes(), Mode::Private).map_err(|source| {
            BanFileError::Write {
                path: self.path.clone(),
                source,
            }
        })?;
        self.bans = next;
        Ok(())
    }

    /// Puts `ban` in the form the file round-trips, or rejects what the file
    /// cannot represent.
    fn normalise(&self, mut ban: Ban) -> Result<Ban, BanFileError> {
        let invalid = |reason: &str| BanFileError::Invalid {
            path: self.path.clone(),
            reason: reason.to_owned(),
        };
        if ban.nick.is_none() && ban.addr.is_none() {
            return Err(invalid("a ban needs a nickname, an address or both"));
        }
        // BY is one space-separated field in the file, so it must be a nick.
        if Nick::parse(&ban.by).is_err() {
            return Err(invalid("the banning user is not a valid nickname"));
        }
        ban.since = whole_seconds(ban.since);
        ban.until = ban.until.map(whole_seconds);
        if ban.until.is_some_and(|until| until <= ban.since) {
            return Err(invalid("a timed ban must end after it starts"));
        }
        // A newline in the reason would start a new (forged) line in the file.
        let reason: String = ban
            .reason
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        ban.reason = reason.trim().to_owned();
        Ok(ban)
    }
}

/// The whole file for `bans`, header first.
fn render(bans: &[Ban]) -> String {
    let mut out = String::with_capacity(64 * (bans.len() + 1));
    out.push_str(HEADER);
    out.push('\n');
    for ban in bans {
        out.push_str(ban.nick_field());
        out.push(' ');
        out.push_str(&ban.addr_field());
        out.push(' ');
        out.push_str(&format_time(ban.since));
        out.push(' ');
        if let Some(until) = ban.until {
            out.push_str(&format_time(until));
            out.push(' ');
        }
        out.push_str(&ban.by);
        // No trailing space for an empty reason: editors strip them anyway.
        if !ban.reason.is_empty() {
            out.push(' ');
            out.push_str(&ban.reason);
        }
        out.push('\n');
    }
    out
}

/// Parses one non-blank, non-comment, trimmed line; the error is the reason
/// for [`BanFileError::Malformed`].
fn parse_line(line: &str) -> Result<Ban, String> {
    const SHAPE: &str = "expected `NICK ADDRESS SINCE [UNTIL] BY [REASON]`";
    let (nick_s, rest) = next_field(line);
    let (addr_s, rest) = next_field(rest);
    let (since_s, rest) = next_field(rest);
    let (fourth, after_fourth) = next_field(rest);
    // A time holds `:` and `-` starts no nickname: either is UNTIL, anything
    // else is BY of a line without UNTIL.
    let (until_s, (by_s, rest)) = if fourth == NONE || fourth.contains(':') {
        (Some(fourth), next_field(after_fourth))
    } else {
        (None, (fourth, after_fourth))
    };
    if by_s.is_empty() {
        return Err(format!("too few fields, {SHAPE}"));
    }
    let nick = match nick_s {
        NONE => None,
        s => Some(Nick::parse(s).map_err(|e| format!("bad nickname `{s}` ({e})"))?),
    };
    let addr = match addr_s {
        NONE => None,
        s => Some(AddrRange::parse(s)?),
    };
    if nick.is_none() && addr.is_none() {
        return Err("both NICK and ADDRESS are `-`; a ban needs at least one".to_owned());
    }
    let since = humantime::parse_rfc3339(since_s).map_err(|e| {
        format!("bad time `{since_s}` ({e}); use RFC 3339 UTC like 2026-11-24T14:00:00Z")
    })?;
    let since = whole_seconds(since);
    let until = match until_s {
        None | Some(NONE) => None,
        Some(s) => {
            let until = humantime::parse_rfc3339(s).map_err(|e| {
                format!("bad end time `{s}` ({e}); use RFC 3339 UTC like 2026-11-24T14:00:00Z")
            })?;
            let until = whole_seconds(until);
            if until <= since {
                return Err(format!(
                    "the ban ends (`{s}`) before it starts (`{since_s}`)"
                ));
            }
            Some(until)
        }
    };
    let by = Nick::parse(by_s).map_err(|e| format!("bad banning nickname `{by_s}` ({e})"))?;
    let reason = rest.trim();
    if reason.chars().any(char::is_control) {
        return Err("control character (such as a tab) in the reason".to_owned());
    }
    Ok(Ban {
        nick,
        addr,
        since,
        until,
        by: by.as_str().to_owned(),
        reason: reason.to_owned(),
    })
}

/// Splits off the first whitespace-separated field of `s`: `(field, rest)`.
/// Runs of spaces between fields are tolerated (hand-edited files).
fn next_field(s: &str) -> (&str, &str) {
    let s = s.trim_start();
    // `find` returns a char boundary, so the split cannot fail.
    s.find(char::is_whitespace)
        .and_then(|i| s.split_at_checked(i))
        .unwrap_or((s, ""))
}

/// `t` cut to whole seconds and clamped to what RFC 3339 can write, so
/// formatting can never panic and a reload gives back an equal time.
fn whole_seconds(t: SystemTime) -> SystemTime {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        .min(MAX_SECS);
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// `t` in RFC 3339, UTC, whole seconds (`2026-11-24T14:00:00Z`).
pub(crate) fn format_time(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(whole_seconds(t)).to_string()
}

impl fmt::Display for Ban {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn nick(s: &str) -> Nick {
        Nick::parse(s).unwrap()
    }

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn ban(n: Option<&str>, a: Option<&str>, reason: &str) -> Ban {
        Ban {
            nick: n.map(nick),
            addr: a.map(|a| a.parse().unwrap()),
            since: at(1_795_528_800), // 2026-11-24T14:00:00Z
            until: None,
            by: "admin".to_owned(),
            reason: reason.to_owned(),
        }
    }

    fn setup() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bans.txt");
        (dir, path)
    }

    #[test]
    fn a_prefix_covering_every_ipv4_address_is_refused_in_any_spelling() {
        for s in [
            "0.0.0.0/0",
            "::/0",
            "::ffff:0.0.0.0/96",
            "::ffff:203.0.113.5/96",
        ] {
            assert!(AddrRange::parse(s).is_err(), "{s} was accepted");
        }
        let r = AddrRange::parse("::ffff:203.0.113.0/120").unwrap();
        assert!(r.contains("203.0.113.5".parse().unwrap()));
        assert!(!r.contains("198.51.100.5".parse().unwrap()));
    }

    #[test]
    fn canonical_ip_unmaps_ipv4_mapped_ipv6() {
        let mapped: IpAddr = "::ffff:1.2.3.4".parse().unwrap();
        assert_eq!(canonical_ip(mapped), IpAddr::V4(Ipv4Addr::new(1, 2, 3, 4)));
        let v6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
        assert_eq!(canonical_ip(v6), v6);
        let v4 = IpAddr::V4(Ipv4Addr::LOCALHOST);
        assert_eq!(canonical_ip(v4), v4);
    }

    #[test]
    fn prefixes_parse_mask_and_print_back() {
        let r = |s: &str| AddrRange::parse(s).unwrap().to_string();
        assert_eq!(r("2001:db8:1:2::/64"), "2001:db8:1:2::/64");
        // Host bits are cleared; a full length is a plain address.
        assert_eq!(r("2001:DB8:1:2:aaaa::1/64"), "2001:db8:1:2::/64");
        assert_eq!(r("2001:db8::1/128"), "2001:db8::1");
        assert_eq!(r("2001:db8::1"), "2001:db8::1");
        assert_eq!(r("198.51.100.77/24"), "198.51.100.0/24");
        assert_eq!(r("198.51.100.77/32"), "198.51.100.77");
        assert_eq!(r("2001:db8::/1"), "::/1");
        // IPv4-mapped prefixes are IPv4 prefixes, like mapped addresses.
        assert_eq!(r("::ffff:198.51.100.0/120"), "198.51.100.0/24");
        assert_eq!(r("::ffff:198.51.100.7"), "198.51.100.7");
        for bad in [
            "2001:db8::/0",
            "0.0.0.0/0",
            "2001:db8::/129",
            "1.2.3.4/33",
            "1.2.3.4/",
            "1.2.3.4/-1",
            "1.2.3.4/２４",
            "/64",
            "2001:db8::/64/64",
            "2001:db8::/６４",
            "alice",
            "1.2.3",
            "привет/8",
        ] {
            assert!(AddrRange::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_prefix_holds_the_addresses_under_it_only() {
        let p: AddrRange = "2001:db8:1:2::/64".parse().unwrap();
        assert!(p.is_prefix());
        assert!(p.contains("2001:db8:1:2::".parse().unwrap()));
        assert!(p.contains("2001:db8:1:2:ffff:ffff:ffff:ffff".parse().unwrap()));
        assert!(!p.contains("2001:db8:1:3::".parse().unwrap()));
        assert!(!p.contains("2001:db8:1:1:ffff:ffff:ffff:ffff".parse().unwrap()));
        assert!(!p.contains("127.0.0.1".parse().unwrap()));
        let v4: AddrRange = "10.1.0.0/16".parse().unwrap();
        assert!(v4.contains("10.1.255.3".parse().unwrap()));
        assert!(v4.contains("::ffff:10.1.2.3".parse().unwrap()));
        assert!(!v4.contains("10.2.0.0".parse().unwrap()));
        assert!(!v4.contains("::a01:203".parse().unwrap()));
        let one: AddrRange = "::1".parse().unwrap();
        assert!(!one.is_prefix());
        assert!(one.contains("::1".parse().unwrap()));
        assert!(!one.contains("::2".parse().unwrap()));
        let odd: AddrRange = "2001:db8:ff00::/41".parse().unwrap();
        assert!(odd.contains("2001:db8:ff7f::1".parse().unwrap()));
        assert!(!odd.contains("2001:db8:ff80::1".parse().unwrap()));
    }

    #[test]
    fn prefix_bans_load_match_and_unban_by_their_own_spelling() {
        let (_dir, path) = setup();
        // A file from before prefixes, plus a hand-written prefix line.
        let text = "bob 203.0.113.7 2026-11-24T14:00:00Z admin old style\n\
                    - 2001:db8:1:2::/64 2026-11-24T15:45:00Z admin перемешивает 👩🏽‍💻\n";
        std::fs::write(&path, text).unwrap();
        let mut list = BanList::load(&path).unwrap();
        assert_eq!(list.len(), 2);
        let ban = list
            .find_addr("2001:db8:1:2::beef".parse().unwrap())
            .unwrap();
        assert_eq!(ban.reason, "перемешивает 👩🏽‍💻");
        assert!(list
            .find_addr("2001:db8:1:3::beef".parse().unwrap())
            .is_none());
        assert!(list.find_addr("203.0.113.7".parse().unwrap()).is_some());
        assert!(list.find_addr("203.0.113.8".parse().unwrap()).is_none());
        assert_eq!(
            ban.describe(),
            "- 2001:db8:1:2::/64 since 2026-11-24T15:45:00Z by admin: перемешивает 👩🏽‍💻"
        );
        // A rewrite keeps both spellings as they were.
        list.add(ban_at(None, Some("198.51.100.9/24"))).unwrap();
        let written = std::fs::read_to_string(&path).unwrap();
        assert!(written.contains("\nbob 203.0.113.7 "), "{written}");
        assert!(written.contains("\n- 2001:db8:1:2::/64 "), "{written}");
        assert!(written.contains("\n- 198.51.100.0/24 "), "{written}");
        assert_eq!(BanList::load(&path).unwrap().len(), 3);
        // An address under a prefix does not lift it; the prefix does.
        assert!(list.remove("2001:db8:1:2::beef").unwrap().is_empty());
        assert_eq!(list.remove("2001:db8:1:2::1/64").unwrap().len(), 1);
        assert!(list
            .find_addr("2001:db8:1:2::beef".parse().unwrap())
            .is_none());
    }

    fn ban_at(n: Option<&str>, a: Option<&str>) -> Ban {
        ban(n, a, "")
    }

    #[test]
    fn timed_bans_round_trip_and_end_by_the_clock() {
        use crate::clock::ManualClock;
        let (_dir, path) = setup();
        // A file without UNTIL (as every older server wrote) plus one with.
        let old = "bob 203.0.113.7 2026-11-24T14:00:00Z admin old style\n";
        std::fs::write(&path, old).unwrap();
        let clock = Arc::new(ManualClock::new(at(1_795_528_800)));
        let mut list = BanList::load_with_clock(&path, clock.clone()).unwrap();
        assert_eq!(list.iter().next().unwrap().until, None);

        let mut timed = ban(Some("Mallory"), Some("2001:db8::/48"), "спам 垃圾 🚫");
        timed.by = "mod1".to_owned();
        timed.until = Some(at(1_795_528_800 + 30 * 60) + Duration::from_millis(400));
        list.add(timed).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.ends_with(
                "\nMallory 2001:db8::/48 2026-11-24T14:00:00Z 2026-11-24T14:30:00Z mod1 спам 垃圾 🚫\n"
            ),
            "{text}"
        );
        assert!(text.contains("\nbob 203.0.113.7 2026-11-24T14:00:00Z admin old style\n"));
        let reloaded = BanList::load_with_clock(&path, clock.clone()).unwrap();
        let got: Vec<Ban> = reloaded.iter().cloned().collect();
        assert_eq!(got, list.iter().cloned().collect::<Vec<_>>());
        assert_eq!(got[1].until, Some(at(1_795_528_800 + 30 * 60)));
        assert_eq!(
            got[1].describe(),
            "Mallory 2001:db8::/48 since 2026-11-24T14:00:00Z until 2026-11-24T14:30:00Z \
             by mod1: спам 垃圾 🚫"
        );
        assert!(reloaded.find_nick(&nick("mallory")).is_some());
        assert!(reloaded
            .find_addr("2001:db8:0:1::5".parse().unwrap())
            .is_some());

        // At its end the ban no longer holds, is not listed, and stays in
        // the file until removed.
        clock.advance(Duration::from_secs(30 * 60));
        assert!(reloaded.find_nick(&nick("mallory")).is_none());
        assert!(reloaded
            .find_addr("2001:db8:0:1::5".parse().unwrap())
            .is_none());
        assert_eq!(reloaded.len(), 1);
        assert!(!reloaded.is_empty());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
        // A reload (or a restored file) with the expired line ignores it too.
        let reloaded = BanList::load_with_clock(&path, clock.clone()).unwrap();
        assert!(reloaded.find_nick(&nick("mallory")).is_none());

        let gone = list.remove_expired().unwrap();
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].reason, "спам 垃圾 🚫");
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            format!("{HEADER}\n{old}")
        );
        // Nothing expired: the file is not rewritten.
        std::fs::write(&path, format!("# mine\n{old}")).unwrap();
        let mut list = BanList::load_with_clock(&path, clock).unwrap();
        assert!(list.remove_expired().unwrap().is_empty());
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            format!("# mine\n{old}")
        );
    }

    #[test]
    fn a_ban_ending_before_it_starts_is_refused() {
        let (line, msg) =
            malformed("bob - 2026-11-24T14:00:00Z 2026-11-24T14:00:00Z admin пароль\n");
        assert_eq!(line, 1);
        assert!(
            msg.contains("ends (`2026-11-24T14:00:00Z`) before it starts"),
            "{msg}"
        );
        let (_, msg) = malformed("bob - 2026-11-24T14:00:00Z 2026-11-24T13:00:00Z admin\n");
        assert!(msg.contains("before it starts"), "{msg}");
        let (_, msg) = malformed("bob - 2026-11-24T14:00:00Z 2026-11-24T25:00:00Z admin\n");
        assert!(msg.contains("bad end time"), "{msg}");
        let (_, msg) = malformed("bob - 2026-11-24T14:00:00Z 2026-11-25T14:00:00Z\n");
        assert!(msg.contains("too few fields"), "{msg}");
        // `-` as UNTIL: no end.
        let (_dir, path) = setup();
        std::fs::write(&path, "bob - 2026-11-24T14:00:00Z - admin why\n").unwrap();
        let list = BanList::load(&path).unwrap();
        let b = list.iter().next().unwrap();
        assert_eq!(
            (b.until, b.by.as_str(), b.reason.as_str()),
            (None, "admin", "why")
        );

        let mut list = BanList::load(&setup().1).unwrap();
        let mut b = ban(Some("bob"), None, "");
        b.until = Some(b.since + Duration::from_millis(500));
        assert!(matches!(list.add(b), Err(BanFileError::Invalid { .. })));
        assert!(list.is_empty());
    }

    #[test]
    fn missing_file_is_an_empty_list() {
        let (_dir, path) = setup();
        let list = BanList::load(&path).unwrap();
        assert!(list.is_empty());
        assert!(!path.exists(), "loading must not create the file");
    }

    #[test]
    fn find_by_nick_ignores_case_and_by_address_unmaps_ipv4() {
        let (_dir, path) = setup();
        let mut list = BanList::load(&path).unwrap();
        list.add(ban(Some("Bob"), None, "spam")).unwrap();
        // Stored from a mapped address: must match the plain IPv4 form too.
        list.add(ban(None, Some("::ffff:10.0.0.9"), "")).unwrap();

        assert_eq!(list.find_nick(&nick("bOB")).unwrap().reason, "spam");
        assert!(list.find_nick(&nick("alice")).is_none());
        let v4: IpAddr = "10.0.0.9".parse().unwrap();
        let mapped: IpAddr = "::ffff:10.0.0.9".parse().unwrap();
        let stored = Some(AddrRange::single(v4));
        assert_eq!(list.find_addr(v4).unwrap().addr, stored);
        assert_eq!(list.find_addr(mapped).unwrap().addr, stored);
        assert!(list.find_addr("10.0.0.8".parse().unwrap()).is_none());
    }

    #[test]
    fn persists_and_reloads_with_readable_text() {
        let (_dir, path) = setup();
        let mut list = BanList::load(&path).unwrap();
        let b1 = ban(Some("bob"), Some("127.0.0.1"), "spamming  the lobby, twice");
        let b2 = ban(None, Some("2001:db8::1"), "");
        let b3 = ban(Some("Mallory"), None, "x");
        for b in [&b1, &b2, &b3] {
            list.add(b.clone()).unwrap();
        }

        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            format!(
                "{HEADER}\n\
                 bob 127.0.0.1 2026-11-24T14:00:00Z admin spamming  the lobby, twice\n\
                 - 2001:db8::1 2026-11-24T14:00:00Z admin\n\
                 Mallory - 2026-11-24T14:00:00Z admin x\n"
            )
        );

        let reloaded = BanList::load(&path).unwrap();
        let got: Vec<Ban> = reloaded.iter().cloned().collect();
        assert_eq!(got, vec![b1, b2, b3]);
        assert_eq!(got[2].nick.as_ref().unwrap().as_str(), "Mallory");
        assert_eq!(
            got[0].describe(),
            "bob 127.0.0.1 since 2026-11-24T14:00:00Z by admin: spamming  the lobby, twice"
        );
        assert_eq!(
            got[1].describe(),
            "- 2001:db8::1 since 2026-11-24T14:00:00Z by admin"
        );
    }

    #[test]
    fn add_normalises_to_what_a_reload_gives() {
        let (_dir, path) = setup();
        let mut list = BanList::load(&path).unwrap();
        let mut b = ban(Some("eve"), Some("::ffff:1.2.3.4"), " line\nbreak\t ");
        b.since += Duration::from_millis(700);
        list.add(b).unwrap();
        let stored = list.iter().next().unwrap().clone();
        assert_eq!(stored.addr, Some("1.2.3.4".parse().unwrap()));
        assert_eq!(stored.since, at(1_795_528_800));
        assert_eq!(stored.reason, "line break");
        let reloaded = BanList::load(&path).unwrap();
        assert_eq!(reloaded.iter().next(), Some(&stored));
    }

    #[test]
    fn add_rejects_bans_the_file_cannot_hold() {
        let (_dir, path) = setup();
        let mut list = BanList::load(&path).unwrap();
        let err = list.add(ban(None, None, "")).unwrap_err();
        assert!(matches!(err, BanFileError::Invalid { .. }), "{err}");
        let mut b = ban(Some("bob"), None, "");
        b.by = "two words".to_owned();
        assert!(matches!(list.add(b), Err(BanFileError::Invalid { .. })));
        assert!(list.is_empty());
        assert!(!path.exists());
    }

    #[test]
    fn banning_the_same_target_twice_replaces_it() {
        let (_dir, path) = setup();
        let mut list = BanList::load(&path).unwrap();
        list.add(ban(Some("bob"), Some("1.2.3.4"), "first"))
            .unwrap();
        list.add(ban(Some("bob"), None, "nick only")).unwrap();
        list.add(ban(Some("BOB"), Some("::ffff:1.2.3.4"), "second"))
            .unwrap();
        assert_eq!(list.len(), 2);
        let reasons: Vec<&str> = list.iter().map(|b| b.reason.as_str()).collect();
        assert_eq!(reasons, ["nick only", "second"]);
        assert_eq!(BanList::load(&path).unwrap().len(), 2);
    }

    #[test]
    fn remove_by_nick_and_by_address() {
        let (_dir, path) = setup();
        let mut list = BanList::load(&path).unwrap();
        list.add(ban(Some("bob"), Some("1.2.3.4"), "a")).unwrap();
        list.add(ban(Some("carol"), None, "b")).unwrap();
        list.add(ban(None, Some("1.2.3.4"), "c")).unwrap();
        list.add(ban(None, Some("2001:db8::1"), "d")).unwrap();

        let removed = list.remove("BOB").unwrap();
        assert_eq!(removed.len(), 1);
        assert_eq!(removed[0].reason, "a");

        // Both the plain and the mapped spelling name the same address.
        let removed = list.remove("::ffff:1.2.3.4").unwrap();
        assert_eq!(removed.len(), 1);
        assert_eq!(removed[0].reason, "c");

        let removed = list.remove("2001:DB8::1").unwrap();
        assert_eq!(removed.len(), 1);

        let left: Vec<Ban> = BanList::load(&path).unwrap().iter().cloned().collect();
        assert_eq!(left, vec![ban(Some("carol"), None, "b")]);
        assert_eq!(list.len(), 1);
    }

    #[test]
    fn remove_without_a_match_leaves_the_file_untouched() {
        let (_dir, path) = setup();
        // Hand-written content with a comment: a rewrite would lose it.
        let text = "# mine\nbob - 2026-11-24T14:00:00Z admin\n";
        std::fs::write(&path, text).unwrap();
        let mut list = BanList::load(&path).unwrap();
        assert!(list.remove("alice").unwrap().is_empty());
        assert!(list.remove("9.9.9.9").unwrap().is_empty());
        assert!(list.remove("not a target").unwrap().is_empty());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
        assert_eq!(list.len(), 1);
    }

    #[test]
    fn comments_blank_lines_crlf_and_extra_spaces_are_accepted() {
        let (_dir, path) = setup();
        let text = "# header\r\n\r\n   \n  # indented comment\n\
                    bob   ::ffff:1.2.3.4  2026-11-24T14:00:00Z admin   why  not \r\n";
        std::fs::write(&path, text).unwrap();
        let list = BanList::load(&path).unwrap();
        let b = list.iter().next().unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(b.addr, Some("1.2.3.4".parse().unwrap()));
        assert_eq!(b.reason, "why  not");
    }

    fn malformed(content: &str) -> (usize, String) {
        let (_dir, path) = setup();
        std::fs::write(&path, content).unwrap();
        match BanList::load(&path) {
            Err(e @ BanFileError::Malformed { line, .. }) => (line, e.to_string()),
            other => panic!("expected Malformed, got {other:?}"),
        }
    }

    #[test]
    fn malformed_lines_report_their_line_number() {
        let good = "bob - 2026-11-24T14:00:00Z admin ok\n";
        let (line, msg) = malformed(&format!(
            "# c\n{good}\n- 1.2.3 2026-11-24T14:00:00Z admin\n"
        ));
        assert_eq!(line, 4);
        assert!(msg.contains("line 4: bad address `1.2.3`"), "{msg}");
        assert!(msg.contains("bans.txt"), "{msg}");
        assert!(msg.ends_with("fix or delete that line"), "{msg}");

        let (line, msg) = malformed(&format!("{good}b@d - 2026-11-24T14:00:00Z admin\n"));
        assert_eq!(line, 2);
        assert!(msg.contains("bad nickname `b@d`"), "{msg}");

        let (line, msg) = malformed("bob - 2026-13-01T00:00:00Z admin\n");
        assert_eq!(line, 1);
        assert!(msg.contains("bad time `2026-13-01T00:00:00Z`"), "{msg}");

        let (line, msg) = malformed(&format!("{good}{good}- - 2026-11-24T14:00:00Z admin\n"));
        assert_eq!(line, 3);
        assert!(msg.contains("both NICK and ADDRESS are `-`"), "{msg}");

        let (line, msg) = malformed("bob - 2026-11-24T14:00:00Z\n");
        assert_eq!(line, 1);
        assert!(msg.contains("too few fields"), "{msg}");

        let (line, _) = malformed("bob - 2026-11-24T14:00:00Z -admin\n");
        assert_eq!(line, 1);

        let (line, msg) = malformed("bob - 2026-11-24T14:00:00Z admin a\tb\n");
        assert_eq!(line, 1);
        assert!(msg.contains("control character"), "{msg}");
    }

    #[test]
    fn non_utf8_line_is_malformed() {
        let (_dir, path) = setup();
        std::fs::write(&path, b"# ok\nbob - 2026-11-24T14:00:00Z admin \xff\n").unwrap();
        assert!(matches!(
            BanList::load(&path),
            Err(BanFileError::Malformed { line: 2, .. })
        ));
    }

    #[test]
    fn write_failure_leaves_the_list_unchanged() {
        let (dir, _) = setup();
        // The parent directory does not exist, so the atomic write fails.
        let path = dir.path().join("missing").join("bans.txt");
        let mut list = BanList::load(&path).unwrap();
        let err = list.add(ban(Some("bob"), None, "")).unwrap_err();
        assert!(matches!(err, BanFileError::Write { .. }), "{err}");
        assert!(list.is_empty());
    }

    #[test]
    fn times_outside_rfc3339_do_not_panic() {
        let mut b = ban(Some("bob"), None, "");
        b.since = UNIX_EPOCH - Duration::from_secs(5);
        assert!(b.describe().contains("1970-01-01T00:00:00Z"));
        b.since = UNIX_EPOCH + Duration::from_secs(u64::MAX / 4);
        assert!(b.describe().contains("9999-12-31T23:59:59Z"));
    }
}
