//! Turning what the server sent into text that is safe to show.
//!
//! [`sanitize`] runs on every piece of network text before it reaches a
//! terminal. It replaces with U+FFFD what could hide or rearrange text, or
//! move the cursor: control characters (C0, DEL, C1, so no escape
//! sequence), every bidirectional control (Trojan-Source style reordering),
//! the line and paragraph separators, and the invisible format characters
//! no real text needs. The server already refuses control characters, but
//! the client does not rely on that (defence in depth against a hostile or
//! buggy server). [`plain`] renders one [`Entry`](crate::state::Entry) as the line plain mode
//! prints.

use std::borrow::Cow;

use crate::state::{stamp_time, EntryKind, Kept};

/// What every replaced character becomes: visible, one column wide.
pub const REPLACEMENT: char = '\u{FFFD}';
/// U+1F3F4 WAVING BLACK FLAG, the base of emoji tag sequences (the flags
/// of England, Scotland and Wales).
const TAG_BASE: char = '\u{1F3F4}';
/// U+E007F CANCEL TAG, the end of an emoji tag sequence.
const CANCEL_TAG: char = '\u{E007F}';
/// The longest tag spec of an emoji tag sequence: a CLDR subdivision id
/// (`gbsct`) has at most 7 letters and digits.
const MAX_TAG_SPEC: usize = 7;

/// Replaces what [`needs_replacing`] names with U+FFFD, except the tag
/// characters of a well-formed emoji tag sequence; TAB becomes a space.
/// Borrowed when nothing changes (the common case, whatever the script).
pub fn sanitize(s: &str) -> Cow<'_, str> {
    if !s.chars().any(|c| c == '\t' || needs_replacing(c)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\t' => out.push(' '),
            TAG_BASE => {
                out.push(c);
                let rest = chars.as_str();
                let (tags, after) = rest
                    .split_at_checked(emoji_tag_sequence_len(rest))
                    .unwrap_or(("", rest));
                out.push_str(tags);
                chars = after.chars();
            }
            c if needs_replacing(c) => out.push(REPLACEMENT),
            c => out.push(c),
        }
    }
    if out == s {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(out)
    }
}

/// FNV-1a, 64 bit: a fixed hash, so a nick has the same colour in every
/// run, on every machine and in every front end (std's `RandomState` is seeded per process).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// [`sanitize`] line by line, keeping the line breaks: for the client's own
/// multi-line notices (the changed-certificate warning).
pub fn sanitize_lines(s: &str) -> String {
    s.lines().map(sanitize).collect::<Vec<_>>().join("\n")
}

/// A tag character (U+E0020–U+E007F): invisible ASCII look-alikes, kept
/// only inside an emoji tag sequence.
pub fn is_tag(c: char) -> bool {
    matches!(c, '\u{E0020}'..='\u{E007F}')
}

/// Length in bytes of the tag spec and cancel tag that follow a
/// [`TAG_BASE`] at the start of `s`, if they form an emoji tag sequence
/// (1 to [`MAX_TAG_SPEC`] tag digits or small letters, then CANCEL TAG);
/// 0 if they do not.
fn emoji_tag_sequence_len(s: &str) -> usize {
    let mut len = 0;
    for (n, c) in s.chars().enumerate() {
        match c {
            '\u{E0030}'..='\u{E0039}' | '\u{E0061}'..='\u{E007A}' if n < MAX_TAG_SPEC => {
                len += c.len_utf8();
            }
            CANCEL_TAG if n > 0 => return len + c.len_utf8(),
            _ => return 0,
        }
    }
    0
}

/// True for a character [`sanitize`] replaces when it stands on its own.
///
/// Replaced: controls; every `Bidi_Control` (U+061C, U+200E, U+200F,
/// U+202A–U+202E, U+2066–U+2069), which reorder the text around them; the
/// line and paragraph separators U+2028 and U+2029, which break the line;
/// and the invisible format characters (`Default_Ignorable_Code_Point`,
/// plus the interlinear annotation marks U+FFF9–U+FFFB), which can hide
/// text or make two different texts look the same.
///
/// Kept, because real text needs them and they can only join or vary what
/// is next to them (they are zero width, so the layout does not change):
/// - U+200D ZERO WIDTH JOINER: emoji ZWJ sequences (👨‍👩‍👧, 🧑🏽‍💻) and
///   conjuncts in Indic scripts (Malayalam chillu, Sinhala);
/// - U+200C ZERO WIDTH NON-JOINER: Persian, Kurdish and Indic spelling;
/// - U+FE00–U+FE0F and U+E0100–U+E01EF variation selectors: emoji versus
///   text presentation (❤️), and ideographic variants in CJK names;
/// - U+180B–U+180F Mongolian variation selectors and vowel separator;
/// - U+034F COMBINING GRAPHEME JOINER, a combining mark that orders other
///   marks in Hebrew and Latin text (combining marks in general are
///   ordinary characters here: many scripts are written with them);
/// - the tag characters U+E0020–U+E007F, but only in an emoji tag
///   sequence (🏴 + tag letters + CANCEL TAG): [`sanitize`] decides that,
///   as here they count as replaced.
///
/// Also replaced although some text once used them: U+00AD SOFT HYPHEN
/// (terminals disagree on whether it takes a column), the Hangul fillers
/// U+115F, U+1160, U+3164, U+FFA0 (modern Korean never needs them; they
/// make blank names), and the Khmer inherent vowels U+17B4, U+17B5 (Unicode
/// says not to use them).
pub fn needs_replacing(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            // Bidi_Control.
            '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
            // Line and paragraph separators.
            | '\u{2028}' | '\u{2029}'
            // Invisible format characters (Default_Ignorable_Code_Point
            // less the kept ones above).
            | '\u{00AD}'
            | '\u{115F}' | '\u{1160}' | '\u{3164}' | '\u{FFA0}'
            | '\u{17B4}' | '\u{17B5}'
            | '\u{200B}'
            | '\u{2060}'..='\u{2065}'
            | '\u{206A}'..='\u{206F}'
            | '\u{FEFF}'
            | '\u{FFF0}'..='\u{FFFB}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0000}'..='\u{E00FF}'
            | '\u{E01F0}'..='\u{E0FFF}'
        )
}

/// When a kept line was said, in local time: `2026-12-05 14:03`
/// (`?` for a stamp past what a date can show).
pub fn stamp(at: u64) -> String {
    match stamp_time(at) {
        Some(t) => t.format(STAMP_FORMAT).to_string(),
        None => "?".to_owned(),
    }
}

/// How [`stamp`] writes a date and time.
pub const STAMP_FORMAT: &str = "%Y-%m-%d %H:%M";

/// A room line's words as every front end writes them, sanitized:
/// `nick: text`, or `* nick text` for one said with `/me`.
pub fn said(nick: &str, text: &str, action: bool) -> String {
    let s = sanitize;
    if action {
        format!("* {} {}", s(nick), s(text))
    } else {
        format!("{}: {}", s(nick), s(text))
    }
}

/// A kept line as plain mode prints a live one, sanitized.
fn plain_kept(k: &Kept) -> String {
    format!(
        "[{}] {}",
        sanitize(&k.room),
        said(&k.nick, &k.text, k.action)
    )
}

/// The line plain mode prints for an entry, or `None` for entries it does
/// not show. Every field is sanitized.
pub fn plain(kind: &EntryKind) -> Option<String> {
    let s = sanitize;
    Some(match kind {
        EntryKind::Message {
            room, nick, text, ..
        } => format!("[{}] {}", s(room), said(nick, text, false)),
        EntryKind::Action {
            room, nick, text, ..
        } => format!("[{}] {}", s(room), said(nick, text, true)),
        EntryKind::History(k) => format!("{} {}", stamp(k.at), plain_kept(k)),
        EntryKind::Found(k) => format!("found: {} {}", stamp(k.at), plain_kept(k)),
        EntryKind::HistoryEnd(end) => end.separator()?,
        EntryKind::FoundEnd { room, count, more } => match (count, more) {
            (0, _) => format!("* nothing found in {}", s(room)),
            (n, false) => format!("* {n} found in {}", s(room)),
            (n, true) => format!(
                "* {n} found in {}, and more: add words to narrow it",
                s(room)
            ),
        },
        EntryKind::Private { from, to, text } => format!("[{} -> {}] {}", s(from), s(to), s(text)),
        EntryKind::Join { room, nick } => format!("* {} joined {}", s(nick), s(room)),
        EntryKind::Part { room, nick, reason } => {
            format!("* {} left {} ({})", s(nick), s(room), s(reason))
        }
        EntryKind::Kick { nick, by, reason } => {
            format!("* {} was kicked by {} ({})", s(nick), s(by), s(reason))
        }
        EntryKind::Rename { old, new } => format!("* {} is now known as {}", s(old), s(new)),
        EntryKind::Users { room, nicks } => {
            let list: Vec<_> = nicks.iter().map(|n| s(n)).collect();
            format!("* in {}: {}", s(room), list.join(" "))
        }
        EntryKind::Rooms(rooms) => {
            let list: Vec<_> = rooms
                .iter()
                .map(|(r, n)| format!("{} ({n})", s(r)))
                .collect();
            if list.is_empty() {
                "* no rooms".to_owned()
            } else {
                format!("* rooms: {}", list.join(", "))
            }
        }
        EntryKind::Info(text) => format!("* {}", s(text)),
        EntryKind::Error { code, text } => format!("! {}: {}", s(code), s(text)),
        EntryKind::Status(text) => format!("-- {}", sanitize_lines(text)),
        EntryKind::Pong(token) => match token {
            Some(t) => format!("* pong {}", s(t)),
            None => "* pong".to_owned(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_neutralises_escapes_and_bidi() {
        assert!(matches!(sanitize("plain ünï 😀"), Cow::Borrowed(_)));
        assert_eq!(sanitize("a\u{1b}[31mb"), "a\u{FFFD}[31mb");
        assert_eq!(sanitize("x\u{9b}2Jy"), "x\u{FFFD}2Jy");
        assert_eq!(sanitize("evil\u{202E}txt"), "evil\u{FFFD}txt");
        assert_eq!(sanitize("a\tb\r\n"), "a b\u{FFFD}\u{FFFD}");
    }

    /// Default_Ignorable_Code_Point as Unicode lists it
    /// (DerivedCoreProperties.txt): invisible by definition.
    const DEFAULT_IGNORABLE: &[(char, char)] = &[
        ('\u{00AD}', '\u{00AD}'),
        ('\u{034F}', '\u{034F}'),
        ('\u{061C}', '\u{061C}'),
        ('\u{115F}', '\u{1160}'),
        ('\u{17B4}', '\u{17B5}'),
        ('\u{180B}', '\u{180F}'),
        ('\u{200B}', '\u{200F}'),
        ('\u{202A}', '\u{202E}'),
        ('\u{2060}', '\u{206F}'),
        ('\u{3164}', '\u{3164}'),
        ('\u{FE00}', '\u{FE0F}'),
        ('\u{FEFF}', '\u{FEFF}'),
        ('\u{FFA0}', '\u{FFA0}'),
        ('\u{FFF0}', '\u{FFF8}'),
        ('\u{1BCA0}', '\u{1BCA3}'),
        ('\u{1D173}', '\u{1D17A}'),
        ('\u{E0000}', '\u{E0FFF}'),
    ];

    /// The invisible characters real text needs, kept on purpose (see
    /// `needs_replacing`); tag characters are kept only inside an emoji
    /// tag sequence, tested separately.
    fn kept_invisible(c: char) -> bool {
        matches!(c,
            '\u{034F}' | '\u{180B}'..='\u{180F}' | '\u{200C}' | '\u{200D}'
            | '\u{FE00}'..='\u{FE0F}' | '\u{E0100}'..='\u{E01EF}')
    }

    fn chars_of(ranges: &[(char, char)]) -> Vec<char> {
        ranges.iter().flat_map(|&(a, b)| a..=b).collect()
    }

    #[track_caller]
    fn assert_replaced(c: char) {
        assert!(needs_replacing(c), "U+{:04X}", c as u32);
        assert_eq!(sanitize(&c.to_string()), "\u{FFFD}", "U+{:04X}", c as u32);
        assert_eq!(
            sanitize(&format!("a{c}б{c}")),
            "a\u{FFFD}б\u{FFFD}",
            "U+{:04X}",
            c as u32
        );
    }

    #[test]
    fn bidi_controls_and_separators_are_replaced() {
        // Every Bidi_Control code point (PropList.txt), then the line and
        // paragraph separators.
        let bidi = chars_of(&[
            ('\u{061C}', '\u{061C}'),
            ('\u{200E}', '\u{200F}'),
            ('\u{202A}', '\u{202E}'),
            ('\u{2066}', '\u{2069}'),
        ]);
        assert_eq!(bidi.len(), 12);
        for c in bidi.into_iter().chain(['\u{2028}', '\u{2029}']) {
            assert_replaced(c);
        }
    }

    #[test]
    fn invisible_characters_are_replaced_unless_text_needs_them() {
        let mut kept = Vec::new();
        for c in chars_of(DEFAULT_IGNORABLE) {
            if kept_invisible(c) {
                kept.push(c);
                assert!(!needs_replacing(c), "U+{:04X}", c as u32);
                assert!(matches!(sanitize(&format!("x{c}")), Cow::Borrowed(_)));
            } else {
                assert_replaced(c);
            }
        }
        assert_eq!(kept.len(), 1 + 5 + 2 + 16 + 240);
        // Invisible format characters outside that list.
        for c in ['\u{FFF9}', '\u{FFFA}', '\u{FFFB}'] {
            assert_replaced(c);
        }
        // Every control character, C0, DEL and C1; TAB becomes a space.
        for c in ('\0'..='\u{1F}').chain('\u{7F}'..='\u{9F}') {
            if c == '\t' {
                assert_eq!(sanitize("a\tb"), "a b");
            } else {
                assert_replaced(c);
            }
        }
    }

    #[test]
    fn real_text_passes_unchanged() {
        for text in [
            "plain ünï 😀",
            "Привет, мир! Ёжик",
            "Καλημέρα κόσμε, ΐΰ",
            "مرحبا بالعالم، ١٢٣",
            "يلوّح ﷺ",
            // Arabic prepended concatenation mark (a visible number sign).
            "\u{0600}١٢",
            "שָׁלוֹם עוֹלָם",
            "你好，世界。漢字",
            "こんにちは、カタカナ、ｶﾀｶﾅ",
            "안녕하세요 세계",
            "สวัสดีชาวโลก",
            "नमस्ते दुनिया, क्षत्रिय",
            "ஆங்கிலம்",
            "ᠮᠣᠩᠭᠣᠯ\u{180B}ᠠ\u{180E}ᠠ",
            // Persian and Indic text with ZWNJ and ZWJ.
            "می\u{200C}خواهم",
            "ക്\u{200D}",
            // Combining marks, the grapheme joiner, Zalgo-ish stacks.
            "e\u{301}te\u{301} n\u{303}o\u{308} a\u{34F}\u{300}",
            "Z\u{351}\u{36B}\u{343}a\u{36A}l\u{310}g\u{352}o",
            // Emoji: ZWJ sequences, skin tones, flags, presentation selectors.
            "👨\u{200D}👩\u{200D}👧\u{200D}👦 🧑🏽\u{200D}💻 👋🏽 👍🏿",
            "🏳\u{FE0F}\u{200D}🌈 🇺🇦🇯🇵 ❤\u{FE0F} ☺\u{FE0E}",
            "🏴\u{E0067}\u{E0062}\u{E0073}\u{E0063}\u{E0074}\u{E007F}",
            "🏴\u{E0067}\u{E0062}\u{E0065}\u{E006E}\u{E0067}\u{E007F} wales 🏴\u{E0067}\u{E0062}\u{E0077}\u{E006C}\u{E0073}\u{E007F}",
            // Ideographic variation sequence (a Japanese name's glyph).
            "葛\u{E0100}城",
            "spaces\u{A0}\u{2009}\u{3000}ok",
            "\u{FFFD} stays",
        ] {
            assert!(
                matches!(sanitize(text), Cow::Borrowed(_)),
                "{text:?} became {:?}",
                sanitize(text)
            );
        }
    }

    #[test]
    fn tag_characters_only_inside_an_emoji_tag_sequence() {
        let scotland = "🏴\u{E0067}\u{E0062}\u{E0073}\u{E0063}\u{E0074}\u{E007F}";
        assert_eq!(sanitize(&format!("a{scotland}b")), format!("a{scotland}b"));
        // Hidden ASCII in tag characters (no flag before them).
        assert_eq!(sanitize("hi\u{E0068}\u{E0069}"), "hi\u{FFFD}\u{FFFD}");
        // A flag whose sequence is not finished, has capital or space tags,
        // is empty or is too long: its tags are replaced.
        for (input, want) in [
            ("🏴\u{E0067}\u{E0062}", "🏴\u{FFFD}\u{FFFD}"),
            ("🏴\u{E0047}\u{E0042}\u{E007F}", "🏴\u{FFFD}\u{FFFD}\u{FFFD}"),
            ("🏴\u{E0020}\u{E007F}", "🏴\u{FFFD}\u{FFFD}"),
            ("🏴\u{E007F}", "🏴\u{FFFD}"),
            (
                "🏴\u{E0061}\u{E0061}\u{E0061}\u{E0061}\u{E0061}\u{E0061}\u{E0061}\u{E0061}\u{E007F}",
                "🏴\u{FFFD}\u{FFFD}\u{FFFD}\u{FFFD}\u{FFFD}\u{FFFD}\u{FFFD}\u{FFFD}\u{FFFD}",
            ),
            // After a valid sequence, further tags are stray again.
            (
                "🏴\u{E0061}\u{E0062}\u{E007F}\u{E0063}",
                "🏴\u{E0061}\u{E0062}\u{E007F}\u{FFFD}",
            ),
        ] {
            assert_eq!(sanitize(input), want, "{input:?}");
        }
    }

    #[test]
    fn plain_lines() {
        let msg = EntryKind::Message {
            room: "#lobby".into(),
            nick: "alice".into(),
            text: "hi \u{1b}[2J".into(),
            at: None,
        };
        assert_eq!(plain(&msg).unwrap(), "[#lobby] alice: hi \u{FFFD}[2J");
        let join = EntryKind::Join {
            room: "#lobby".into(),
            nick: "bob".into(),
        };
        assert_eq!(plain(&join).unwrap(), "* bob joined #lobby");
        let pm = EntryKind::Private {
            from: "a".into(),
            to: "b".into(),
            text: "psst".into(),
        };
        assert_eq!(plain(&pm).unwrap(), "[a -> b] psst");
    }
}
