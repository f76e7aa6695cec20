//! What a user typed, before it goes to the session: the rules every
//! front end shares. [`classify`] says what an entered line asks for
//! (nothing, leaving, help, or just sending); [`is_quit`] is the one test
//! for `/quit`, used by the front ends and by the session, which waits for
//! the server to close after it. [`may_follow`] and [`clean_typed`] decide
//! which characters may be typed or pasted at all (what
//! [`render::sanitize`] would replace is refused at the door, so what the
//! user sees is what is sent), [`MAX_INPUT_BYTES`] how long a line may get,
//! and [`History`] is the bounded list of sent lines Up/Down recall.
//! [`secret`] finds the passwords in `/register` and `/password` lines,
//! which front ends draw masked and which the history never keeps.
//!
//! [`render::sanitize`]: crate::render::sanitize

use std::ops::Range;

use tlschat_protocol::{check_text, Command, MAX_CLIENT_LINE};

use crate::render;

/// Longest line an input accepts, in bytes: the protocol's limit minus
/// the `\n`.
pub const MAX_INPUT_BYTES: usize = MAX_CLIENT_LINE - 1;
/// How many sent lines Up/Down can recall (kept in memory only).
pub const HISTORY_LEN: usize = 500;

/// U+1F3F4 WAVING BLACK FLAG: tag characters may follow it.
const TAG_BASE: char = '\u{1F3F4}';

/// Whether the server will take `line` as `/quit [reason]`: decided by the
/// server's own text rule and command parser, so the client waits for the
/// close exactly when the server is going to close. Any text is fine here,
/// whatever its script.
pub fn is_quit(line: &str) -> bool {
    check_text(line).is_ok() && matches!(Command::parse(line), Ok(Command::Quit(_)))
}

/// What an entered line asks the front end to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserLine<'a> {
    /// Blank: nothing to send.
    Blank,
    /// `/quit [reason]` (leading spaces dropped): send it and wait for
    /// the session's `Closed`.
    Quit(&'a str),
    /// `/help`: send it, and show the front end's own help beside the
    /// server's.
    Help,
    /// Anything else: send it as typed.
    Send,
}

/// Looks at an entered line as the server's parser will (leading spaces
/// ignored), so a front end acts on `/quit` and `/help` exactly when the
/// server does.
pub fn classify(line: &str) -> UserLine<'_> {
    if line.trim().is_empty() {
        return UserLine::Blank;
    }
    let command = line.trim_start();
    if is_quit(command) {
        return UserLine::Quit(command);
    }
    if matches!(Command::parse(command), Ok(Command::Help)) {
        return UserLine::Help;
    }
    UserLine::Send
}

/// What a front end draws in place of each character of a password.
pub const MASK: char = '•';

/// Commands whose arguments are all secrets: passwords (and `/register`'s
/// invite code).
const SECRET_COMMANDS: &[&str] = &["register", "password"];

/// Where the secrets of an input line are ([`secret`]): byte ranges, on
/// character boundaries, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Secret {
    ranges: Vec<Range<usize>>,
}

impl Secret {
    /// The byte ranges to mask (each a word; the spaces between stay).
    pub fn ranges(&self) -> &[Range<usize>] {
        &self.ranges
    }

    /// Whether the character starting at byte `at` is part of a secret.
    pub fn covers(&self, at: usize) -> bool {
        self.ranges.iter().any(|r| r.contains(&at))
    }

    /// `line` with every character of a secret drawn as [`MASK`].
    pub fn mask(&self, line: &str) -> String {
        line.char_indices()
            .map(|(at, c)| if self.covers(at) { MASK } else { c })
            .collect()
    }
}

/// The secrets in an input line: every argument of `/register` and
/// `/password`, found as the server's parser finds the command word
/// (`/ Register` included). Leading spaces are looked past as well,
/// although the server would take such a line as a message: a front end
/// sends a secret line without them (see [`secret_command`]), so a
/// password typed after a stray space is never said in the room.
/// `None` for every other line.
pub fn secret(line: &str) -> Option<Secret> {
    let start = line.len() - line.trim_start_matches(' ').len();
    let body = line.get(start..)?.strip_prefix('/')?;
    // `//register` is the message `/register`.
    if body.starts_with('/') {
        return None;
    }
    let body_at = start + 1;
    let mut words = words(body).map(|(from, word)| (body_at + from, word));
    let (_, command) = words.next()?;
    if !SECRET_COMMANDS
        .iter()
        .any(|c| command.eq_ignore_ascii_case(c))
    {
        return None;
    }
    let ranges = words.map(|(from, word)| from..from + word.len()).collect();
    Some(Secret { ranges })
}

/// A line that [`secret`] finds secrets in, as it is to be sent: without
/// leading spaces, so the server reads it as the command it is and never
/// as a message to the room. Other lines are returned as they are.
pub fn secret_command(line: &str) -> &str {
    match secret(line) {
        Some(_) => line.trim_start_matches(' '),
        None => line,
    }
}

/// The words of `s` split at spaces as the server's parser splits them,
/// with their byte offsets.
fn words(s: &str) -> impl Iterator<Item = (usize, &str)> {
    s.split(' ')
        .scan(0usize, |offset, word| {
            let at = *offset;
            *offset += word.len() + 1;
            Some((at, word))
        })
        .filter(|(_, word)| !word.is_empty())
}

/// Whether `c` may be typed after `prev`: what [`render::sanitize`]
/// leaves alone, and tag characters only right after U+1F3F4 or another
/// tag character, where they may spell an emoji tag sequence (the flag of
/// Scotland).
///
/// [`render::sanitize`]: crate::render::sanitize
pub fn may_follow(prev: Option<char>, c: char) -> bool {
    if render::is_tag(c) {
        prev.is_some_and(|p| p == TAG_BASE || render::is_tag(p))
    } else {
        !render::needs_replacing(c)
    }
}

/// What may be kept of `chars` typed after `prev`, within `budget`
/// bytes: characters [`may_follow`] refuses are left out, and the text is
/// cut between characters where the budget ends.
pub fn accept_typed(
    prev: Option<char>,
    chars: impl Iterator<Item = char>,
    budget: usize,
) -> String {
    let mut budget = budget;
    let mut prev = prev;
    let mut accepted = String::new();
    for c in chars {
        if !may_follow(prev, c) {
            continue;
        }
        if c.len_utf8() > budget {
            break;
        }
        budget -= c.len_utf8();
        accepted.push(c);
        prev = Some(c);
    }
    accepted
}

/// [`accept_typed`] for pasted text, whose line breaks and tabs become
/// spaces (one line is sent, and a tab would be refused).
pub fn accept_pasted(prev: Option<char>, text: &str, budget: usize) -> String {
    let flat = text.chars().map(|c| match c {
        '\r' | '\n' | '\t' => ' ',
        c => c,
    });
    accept_typed(prev, flat, budget)
}

/// A whole input line as the input rules allow it, within `budget` bytes
/// (at most [`MAX_INPUT_BYTES`]), for a front end whose text field takes
/// any edit (a paste, an IME) and is cleaned afterwards; `None` when
/// `text` is already clean.
pub fn clean_typed(text: &str, budget: usize) -> Option<String> {
    let clean = accept_pasted(None, text, budget.min(MAX_INPUT_BYTES));
    (clean != text).then_some(clean)
}

/// The lines sent from one input, newest last, for Up/Down: at most
/// [`HISTORY_LEN`], blank lines and repeats of the last line left out.
/// While browsing, what was typed before the first Up is kept as the
/// draft that Down past the newest line gives back.
#[derive(Debug, Default)]
pub struct History {
    lines: std::collections::VecDeque<String>,
    /// Index into `lines` while browsing.
    browsing: Option<usize>,
    draft: String,
}

impl History {
    pub fn new() -> History {
        History::default()
    }

    /// The remembered lines, oldest first.
    pub fn lines(&self) -> impl Iterator<Item = &str> {
        self.lines.iter().map(String::as_str)
    }

    /// Remembers a sent line and stops browsing. Lines with a password in
    /// them ([`secret`]) are never kept.
    pub fn push(&mut self, line: &str) {
        self.stop();
        if line.trim().is_empty()
            || self.lines.back().is_some_and(|last| last == line)
            || secret(line).is_some()
        {
            return;
        }
        if self.lines.len() == HISTORY_LEN {
            self.lines.pop_front();
        }
        self.lines.push_back(line.to_owned());
    }

    /// Up: the next older line, or `None` when there is none (at the
    /// oldest, or nothing sent). `current` is the input's text, kept as the
    /// draft when browsing starts.
    pub fn older(&mut self, current: &str) -> Option<String> {
        let i = match self.browsing {
            None if self.lines.is_empty() => return None,
            None => {
                self.draft = current.to_owned();
                self.lines.len() - 1
            }
            Some(0) => return None,
            Some(i) => i - 1,
        };
        self.browsing = Some(i);
        self.lines.get(i).cloned()
    }

    /// Down: the next newer line, then the draft; `None` when not browsing.
    pub fn newer(&mut self) -> Option<String> {
        let i = self.browsing?;
        match self.lines.get(i + 1) {
            Some(line) => {
                self.browsing = Some(i + 1);
                Some(line.clone())
            }
            None => {
                self.browsing = None;
                Some(std::mem::take(&mut self.draft))
            }
        }
    }

    /// Leaves browsing (the line was edited or sent); the draft is dropped.
    pub fn stop(&mut self) {
        self.browsing = None;
        self.draft.clear();
    }

    /// Whether Up/Down is walking the history now.
    pub fn is_browsing(&self) -> bool {
        self.browsing.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_walks_back_and_forth_and_gives_the_draft_back() {
        let mut h = History::new();
        assert_eq!(h.older("typed"), None);
        for line in ["привет", "  ", "γειά", "γειά", "👩🏽‍💻 ok"] {
            h.push(line);
        }
        assert_eq!(h.lines().collect::<Vec<_>>(), ["привет", "γειά", "👩🏽‍💻 ok"]);
        assert_eq!(h.newer(), None);
        assert_eq!(h.older("שלום").as_deref(), Some("👩🏽‍💻 ok"));
        assert_eq!(h.older("ignored").as_deref(), Some("γειά"));
        assert_eq!(h.older("").as_deref(), Some("привет"));
        assert_eq!(h.older(""), None);
        assert_eq!(h.newer().as_deref(), Some("γειά"));
        assert_eq!(h.newer().as_deref(), Some("👩🏽‍💻 ok"));
        assert_eq!(h.newer().as_deref(), Some("שלום"));
        assert!(!h.is_browsing());
        assert_eq!(h.newer(), None);
    }

    #[test]
    fn passwords_are_found_as_the_server_parses_the_command() {
        let pw = "пароль-密码-🔑";
        let line = format!("/register {pw}");
        let secret = secret(&line).expect("a secret");
        assert_eq!(secret.ranges().to_vec(), vec![10..10 + pw.len()]);
        let n = pw.chars().count();
        assert_eq!(secret.mask(&line), format!("/register {}", "•".repeat(n)));
        let line = format!("  / PassWord  old{pw}   new{pw} ");
        let secret = self::secret(&line).expect("a secret");
        let masked = secret.mask(&line);
        assert_eq!(
            masked,
            format!(
                "  / PassWord  {}   {} ",
                "•".repeat(n + 3),
                "•".repeat(n + 3)
            )
        );
        // Every range is on character boundaries and covers one word.
        for r in secret.ranges() {
            let word = line.get(r.clone()).expect("char boundaries");
            assert!(word.starts_with("old") || word.starts_with("new"), "{word}");
        }
        assert_eq!(secret_command(&line), line.trim_start());
        // The code of /register is a secret too; an unfinished command
        // masks what it has.
        assert_eq!(
            self::secret("/register pw code").unwrap().ranges(),
            [10..12, 13..17]
        );
        assert_eq!(self::secret("/register").unwrap().ranges(), []);
        assert_eq!(self::secret("/REGISTER ").unwrap().ranges(), []);
        for other in [
            "/registerx pw",
            "/msg bob /register pw",
            "//register pw",
            "register pw",
            "привет /password a b",
            "/passwords a",
            "",
            "   ",
            "/",
        ] {
            assert_eq!(self::secret(other), None, "{other:?}");
            assert_eq!(secret_command(other), other);
        }
    }

    #[test]
    fn lines_with_passwords_never_enter_the_history() {
        let mut h = History::new();
        h.push("привет");
        h.push("/register пароль-密码-🔑");
        h.push(" /password old new");
        h.push("/nick bob");
        assert_eq!(h.lines().collect::<Vec<_>>(), ["привет", "/nick bob"]);
    }

    #[test]
    fn history_is_bounded_and_drops_the_oldest() {
        let mut h = History::new();
        for i in 0..HISTORY_LEN + 7 {
            h.push(&format!("строка {i}"));
        }
        assert_eq!(h.lines().count(), HISTORY_LEN);
        assert_eq!(h.lines().next(), Some("строка 7"));
    }

    #[test]
    fn typed_text_keeps_every_script_and_refuses_what_would_be_replaced() {
        let real = "привет γειά שלום مرحبا 你好 e\u{301} 👩🏽‍💻 🏴\u{E0067}\u{E0062}\u{E0073}\u{E0063}\u{E0074}\u{E007F}";
        assert_eq!(clean_typed(real, MAX_INPUT_BYTES), None);
        assert_eq!(
            clean_typed("a\u{202E}b\u{1b}[31mc\u{200B}d\te\r\nf", MAX_INPUT_BYTES).as_deref(),
            Some("ab[31mcd e  f")
        );
        // A tag character away from a flag spells nothing: left out.
        assert_eq!(
            clean_typed("x\u{E0067}y", MAX_INPUT_BYTES).as_deref(),
            Some("xy")
        );
        // Cut between characters at the protocol's limit, never inside one.
        let long = "ж".repeat(MAX_INPUT_BYTES);
        let cut = clean_typed(&long, MAX_INPUT_BYTES).unwrap_or_default();
        assert!(cut.len() <= MAX_INPUT_BYTES && cut.len() + 2 > MAX_INPUT_BYTES);
        assert!(cut.chars().all(|c| c == 'ж'));
    }

    #[test]
    fn entered_lines_are_classified_as_the_server_parses_them() {
        assert_eq!(classify("  \t "), UserLine::Blank);
        assert_eq!(classify("  /quit bye"), UserLine::Quit("/quit bye"));
        assert_eq!(classify("/help"), UserLine::Help);
        assert_eq!(classify(" /HELP"), UserLine::Help);
        assert_eq!(classify("/helpme"), UserLine::Send);
        assert_eq!(classify("привет /quit"), UserLine::Send);
    }

    #[test]
    fn quit_detection() {
        assert!(is_quit("/quit"));
        assert!(is_quit("/QUIT bye"));
        assert!(!is_quit("/quitter"));
        assert!(!is_quit("quit"));
        // As the server parses it: `/ quit` is a quit, `  /quit` a message.
        assert!(is_quit("/ quit"));
        assert!(!is_quit("  /quit"));
        assert!(!is_quit("/quit \u{1b}"));
        assert!(is_quit("/quit до свидания"));
        assert!(!is_quit("/quit\u{301}"));
        // A fifth byte inside a multi-byte character is not a quit (and
        // never a panic): Cyrillic, Greek, Hebrew, Arabic, CJK, emoji.
        for line in [
            "привет мир",
            "γειά σου",
            "שלום עולם",
            "مرحبا",
            "你好",
            "ab😀",
            "/qui\u{e9}t",
            "/quitté",
            "/quit😀",
        ] {
            assert!(!is_quit(line), "{line}");
        }
    }
}
