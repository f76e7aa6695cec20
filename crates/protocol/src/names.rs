//! Validated names: [`Nick`] and [`RoomName`].
//!
//! Every nickname and room name that enters the server passes through
//! `parse` here, so the rest of the code never sees an unchecked name. Both
//! compare without regard to ASCII case (`Alice` and `alice` are one user,
//! `#Rust` and `#rust` one room) but keep the spelling they were given for
//! display; [`Nick::key`] and [`RoomName::key`] give the folded form used as a
//! map key.
//!
//! [`split_mark`] reads the role mark a `USERS` entry may carry (`@bob`).

use std::fmt;

use thiserror::Error;

/// Longest nickname, in characters (all of them ASCII).
pub const MAX_NICK_LEN: usize = 24;
/// Longest room name after the `#`.
pub const MAX_ROOM_LEN: usize = 32;

/// Why a name was rejected; the text goes to the client after the error code.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NameError {
    #[error("a nickname cannot be empty")]
    EmptyNick,
    #[error("a nickname is at most {MAX_NICK_LEN} characters")]
    NickTooLong,
    #[error("a nickname may only use A-Z a-z 0-9 _ - .")]
    NickChars,
    #[error("a nickname cannot start with - or .")]
    NickStart,
    #[error("a room name starts with # (for example #lobby)")]
    RoomHash,
    #[error("a room name has 1 to {MAX_ROOM_LEN} characters after the #")]
    RoomLen,
    #[error("a room name may only use A-Z a-z 0-9 _ - after the #")]
    RoomChars,
}

/// A valid nickname: 1 to 24 of `A-Z a-z 0-9 _ - .`, not starting with `-` or `.`.
#[derive(Debug, Clone)]
pub struct Nick {
    display: Box<str>,
    key: Box<str>,
}

impl Nick {
    pub fn parse(s: &str) -> Result<Nick, NameError> {
        if s.is_empty() {
            return Err(NameError::EmptyNick);
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        {
            return Err(NameError::NickChars);
        }
        // All ASCII from here on, so bytes are characters.
        if s.len() > MAX_NICK_LEN {
            return Err(NameError::NickTooLong);
        }
        if s.starts_with(['-', '.']) {
            return Err(NameError::NickStart);
        }
        Ok(Nick {
            display: s.into(),
            key: s.to_ascii_lowercase().into(),
        })
    }

    /// The spelling the user chose.
    pub fn as_str(&self) -> &str {
        &self.display
    }

    /// The case-folded form: equal for nicknames that are the same user.
    pub fn key(&self) -> &str {
        &self.key
    }
}

impl PartialEq for Nick {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}
impl Eq for Nick {}

impl std::hash::Hash for Nick {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.key.hash(state)
    }
}

impl fmt::Display for Nick {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display)
    }
}

/// A role shown before a nickname in `USERS`. `@` is no nickname
/// character, so a marked entry is never a nickname of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mark {
    /// `@`: a moderator. The admin is unmarked.
    Moderator,
}

impl Mark {
    pub fn as_char(self) -> char {
        match self {
            Mark::Moderator => '@',
        }
    }
}

/// A `USERS` entry's mark (one leading `@`) and the nickname after it.
pub fn split_mark(entry: &str) -> (Option<Mark>, &str) {
    match entry.strip_prefix('@') {
        Some(nick) => (Some(Mark::Moderator), nick),
        None => (None, entry),
    }
}

/// A valid room name: `#` then 1 to 32 of `A-Z a-z 0-9 _ -`.
#[derive(Debug, Clone)]
pub struct RoomName {
    display: Box<str>,
    key: Box<str>,
}

impl RoomName {
    pub fn parse(s: &str) -> Result<RoomName, NameError> {
        let Some(rest) = s.strip_prefix('#') else {
            return Err(NameError::RoomHash);
        };
        if !rest
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
        {
            return Err(NameError::RoomChars);
        }
        if rest.is_empty() || rest.len() > MAX_ROOM_LEN {
            return Err(NameError::RoomLen);
        }
        Ok(RoomName {
            display: s.into(),
            key: s.to_ascii_lowercase().into(),
        })
    }

    /// The room everyone enters first.
    pub fn lobby() -> RoomName {
        RoomName {
            display: "#lobby".into(),
            key: "#lobby".into(),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.display
    }

    /// The case-folded form: equal for names of the same room.
    pub fn key(&self) -> &str {
        &self.key
    }
}

impl PartialEq for RoomName {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}
impl Eq for RoomName {}

impl std::hash::Hash for RoomName {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.key.hash(state)
    }
}

impl fmt::Display for RoomName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nick_rules() {
        assert!(Nick::parse("alice").is_ok());
        assert!(Nick::parse("A_b-c.9").is_ok());
        assert!(Nick::parse(&"x".repeat(24)).is_ok());
        assert_eq!(Nick::parse(""), Err(NameError::EmptyNick));
        assert_eq!(Nick::parse(&"x".repeat(25)), Err(NameError::NickTooLong));
        assert_eq!(Nick::parse("-bob"), Err(NameError::NickStart));
        assert_eq!(Nick::parse(".bob"), Err(NameError::NickStart));
        assert_eq!(Nick::parse("bo b"), Err(NameError::NickChars));
        assert_eq!(Nick::parse("bób"), Err(NameError::NickChars));
        assert_eq!(Nick::parse("bob\u{0}"), Err(NameError::NickChars));
    }

    #[test]
    fn nicks_compare_without_case_but_keep_spelling() {
        let a = Nick::parse("Alice").unwrap();
        let b = Nick::parse("aLICE").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.as_str(), "Alice");
        assert_eq!(a.key(), "alice");
    }

    #[test]
    fn users_entries_carry_at_most_one_mark() {
        assert_eq!(split_mark("@bob"), (Some(Mark::Moderator), "bob"));
        assert_eq!(split_mark("bob"), (None, "bob"));
        assert_eq!(split_mark("@@bob"), (Some(Mark::Moderator), "@bob"));
        assert_eq!(split_mark("@"), (Some(Mark::Moderator), ""));
        assert_eq!(split_mark("@Алиса"), (Some(Mark::Moderator), "Алиса"));
        assert_eq!(split_mark("密@"), (None, "密@"));
        assert!(Nick::parse(&format!("{}bob", Mark::Moderator.as_char())).is_err());
    }

    #[test]
    fn room_rules() {
        assert!(RoomName::parse("#lobby").is_ok());
        assert!(RoomName::parse(&format!("#{}", "r".repeat(32))).is_ok());
        assert_eq!(RoomName::parse("lobby"), Err(NameError::RoomHash));
        assert_eq!(RoomName::parse("#"), Err(NameError::RoomLen));
        assert_eq!(
            RoomName::parse(&format!("#{}", "r".repeat(33))),
            Err(NameError::RoomLen)
        );
        assert_eq!(RoomName::parse("#a.b"), Err(NameError::RoomChars));
        assert_eq!(RoomName::parse("#Rust"), RoomName::parse("#rust"));
        assert_eq!(RoomName::lobby(), RoomName::parse("#LOBBY").unwrap());
    }
}
