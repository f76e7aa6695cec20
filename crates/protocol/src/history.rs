//! History mode: stamps, the ALPN id that asks for them, and what a client
//! may ask of a room's kept lines.
//!
//! ```text
//! ClientHello ALPN "tlschat/2" ─▶ server selects it ─▶ history mode:
//!   "@<at> MSG …" / "@<at> ACTION …"   live room lines, stamped (split_stamp)
//!   "HISTORY …" … "HISTORYEND …"        the replay after a JOIN
//! "/history [n]", "/history before|since <at> [n]" ─▶ HistoryAsk
//! ```
//!
//! A stamp is the server's time of a room line in unix milliseconds, unique
//! and strictly increasing within a room (the server bumps it by one when a
//! room says two lines in one millisecond), so "the lines after this one" is
//! exact. Stamps are parsed from a bounded number of ASCII digits, never
//! sliced out of a line by byte index.

use std::fmt::Write as _;

use bytes::{BufMut, Bytes, BytesMut};

/// The ALPN protocol id a client offers to ask for history mode.
pub const HISTORY_ALPN: &[u8] = b"tlschat/2";
/// Kept lines replayed after a `JOIN`.
pub const REPLAY_LINES: u32 = 50;
/// Most lines `/history [n]` and `/history before` send.
pub const MAX_HISTORY_LINES: u32 = 200;
/// Most lines `/history since` sends (and its default).
pub const MAX_CATCH_UP: u32 = 500;
/// Most hits `/search` sends.
pub const MAX_SEARCH_HITS: u32 = 20;
/// Most words in one `/search`.
pub const MAX_SEARCH_WORDS: usize = 8;
/// Longest word in a `/search`, in characters.
pub const MAX_SEARCH_WORD_CHARS: usize = 64;
/// Most digits of a stamp: unix milliseconds stay under 15 digits until the
/// year 33658.
const MAX_STAMP_DIGITS: usize = 15;

/// Reads a stamp: 1 to 15 ASCII digits, nothing else.
pub fn parse_stamp(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > MAX_STAMP_DIGITS || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Splits a received line into its stamp, if it is stamped (`@<at> …`),
/// and the v1 line after it. An `@` not followed by a valid stamp and a
/// space leaves the line as it is.
pub fn split_stamp(line: &str) -> (Option<u64>, &str) {
    let Some(rest) = line.strip_prefix('@') else {
        return (None, line);
    };
    match rest.split_once(' ') {
        Some((at, v1)) => match parse_stamp(at) {
            Some(at) => (Some(at), v1),
            None => (None, line),
        },
        None => (None, line),
    }
}

/// `@<at> ` before an encoded line (which keeps its `\n`).
pub fn stamped(at: u64, line: &[u8]) -> Bytes {
    // One allocation: the server calls this under its room lock.
    let mut b = BytesMut::with_capacity(MAX_STAMP_DIGITS + 2 + line.len());
    b.put_u8(b'@');
    // Writing into a BytesMut cannot fail.
    let _ = write!(b, "{at} ");
    b.put_slice(line);
    b.freeze()
}

/// What `/history` asks for, about the sender's current room. Counts are
/// already bounded (`1..=MAX_HISTORY_LINES`, `1..=MAX_CATCH_UP`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryAsk {
    /// `/history [n]`: the newest `n` kept lines.
    Last(u32),
    /// `/history before <at> [n]`: the newest `n` kept lines older than `at`.
    Before { at: u64, n: u32 },
    /// `/history since <at> [n]`: kept lines newer than `at`; when there are
    /// more than `n`, the newest `n`.
    Since { at: u64, n: u32 },
}

impl HistoryAsk {
    /// The command line a client sends for this request.
    pub fn to_command(self) -> String {
        match self {
            HistoryAsk::Last(n) => format!("/history {n}"),
            HistoryAsk::Before { at, n } => format!("/history before {at} {n}"),
            HistoryAsk::Since { at, n } => format!("/history since {at} {n}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn stamps_are_bounded_digits() {
        assert_eq!(parse_stamp("1764907200123"), Some(1_764_907_200_123));
        assert_eq!(parse_stamp("0"), Some(0));
        assert_eq!(parse_stamp("999999999999999"), Some(999_999_999_999_999));
        for bad in [
            "",
            "1234567890123456",
            "-1",
            "+1",
            "1e3",
            "12 3",
            "١٢٣",
            "0x10",
            "1.5",
        ] {
            assert_eq!(parse_stamp(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn split_stamp_takes_only_a_well_formed_prefix() {
        assert_eq!(
            split_stamp("@1764907200123 MSG #lobby alice привет"),
            (Some(1_764_907_200_123), "MSG #lobby alice привет")
        );
        for plain in [
            "MSG #lobby alice @1 hi",
            "@ MSG x",
            "@12a MSG x",
            "@123",
            "@@1 x",
            "@١ x",
        ] {
            assert_eq!(split_stamp(plain), (None, plain), "{plain:?}");
        }
    }

    #[test]
    fn stamped_prefixes_the_encoded_line() {
        assert_eq!(
            &stamped(42, b"MSG #r bob \xf0\x9f\x91\x8d\n")[..],
            b"@42 MSG #r bob \xf0\x9f\x91\x8d\n"
        );
    }

    proptest! {
        #[test]
        fn stamped_round_trips(at in 0u64..=999_999_999_999_999, text in "\\PC{0,40}") {
            let line = format!("MSG #r bob {text}");
            let bytes = stamped(at, line.as_bytes());
            let s = std::str::from_utf8(&bytes).unwrap();
            prop_assert_eq!(split_stamp(s), (Some(at), line.as_str()));
        }
    }
}
