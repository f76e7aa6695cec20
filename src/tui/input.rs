//! The input line: a single line of text edited by grapheme cluster (what
//! a reader sees as one character: `é` written as e + U+0301, a flag, an
//! emoji ZWJ sequence with skin tones), plus the history of sent lines.
//!
//! The cursor is a byte offset that always sits on a grapheme boundary:
//! Left/Right move over whole graphemes and Backspace/Delete remove whole
//! ones, so no edit ever splits a character or an emoji. An insertion or
//! deletion can merge its neighbours into one grapheme (a combining mark
//! typed after a letter, two regional indicators meeting); the cursor is
//! then moved to a boundary again.
//!
//! Which characters may be typed, how long a line may get and how the
//! history behaves are the client core's rules, shared with the desktop
//! client ([`tlschat_client_core::may_follow`], [`History`]); an
//! unfinished emoji tag sequence shows as U+FFFD.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use unicode_segmentation::{GraphemeCursor, UnicodeSegmentation};

pub use tlschat_client_core::MAX_INPUT_BYTES;
use tlschat_client_core::{accept_pasted, accept_typed, History};

/// What a key did to the input line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputAction {
    /// Not an input-line key; the caller may use it.
    Unhandled,
    /// The text, the cursor or the history position changed (or the key
    /// was refused, e.g. the line is full).
    Edited,
    /// Enter: the line to send (already removed from the input).
    Submit(String),
}

#[derive(Debug, Default)]
pub struct Input {
    text: String,
    /// Cursor position: a byte offset into `text`, always on a grapheme
    /// boundary (`0..=text.len()`).
    cursor: usize,
    history: History,
}

impl Input {
    pub fn new() -> Input {
        Input::default()
    }

    pub fn value(&self) -> &str {
        &self.text
    }

    /// Cursor position: a byte offset into [`value`](Input::value), always
    /// on a grapheme boundary.
    pub fn cursor(&self) -> usize {
        self.cursor
    }

    pub fn history(&self) -> Vec<&str> {
        self.history.lines().collect()
    }

    /// The text before and after the cursor.
    fn split(&self) -> (&str, &str) {
        // The cursor is always a char boundary; the fallback is unreachable.
        self.text
            .split_at_checked(self.cursor)
            .unwrap_or((&self.text, ""))
    }

    fn graphemes(&self, at: usize) -> GraphemeCursor {
        GraphemeCursor::new(at, self.text.len(), true)
    }

    /// The grapheme boundary after `at` (the end if there is none).
    fn next_boundary(&self, at: usize) -> usize {
        self.graphemes(at)
            .next_boundary(&self.text, 0)
            .ok()
            .flatten()
            .unwrap_or(self.text.len())
    }

    /// The grapheme boundary before `at` (the start if there is none).
    fn prev_boundary(&self, at: usize) -> usize {
        self.graphemes(at)
            .prev_boundary(&self.text, 0)
            .ok()
            .flatten()
            .unwrap_or(0)
    }

    fn is_boundary(&self, at: usize) -> bool {
        self.text.is_char_boundary(at)
            && self
                .graphemes(at)
                .is_boundary(&self.text, 0)
                .unwrap_or(false)
    }

    /// After an insertion: if it merged into the grapheme after it, the
    /// cursor goes past that grapheme.
    fn settle_forward(&mut self) {
        if !self.is_boundary(self.cursor) {
            self.cursor = self.next_boundary(self.cursor);
        }
    }

    /// After a deletion: if the neighbours merged, the cursor goes to the
    /// start of the merged grapheme.
    fn settle_back(&mut self) {
        if !self.is_boundary(self.cursor) {
            self.cursor = self.prev_boundary(self.cursor);
        }
    }

    /// Replaces the whole text; the cursor goes to the end.
    pub fn set_value(&mut self, text: impl Into<String>) {
        self.text = text.into();
        self.cursor = self.text.len();
    }

    /// Inserts `c` at the cursor. Refuses characters that are not safe to
    /// echo (control, bidi control, invisible) and anything past
    /// [`MAX_INPUT_BYTES`].
    pub fn insert(&mut self, c: char) -> bool {
        let accepted = accept_typed(self.before_cursor(), std::iter::once(c), self.room());
        self.insert_accepted(&accepted) > 0
    }

    /// Inserts pasted text; line breaks and tabs become spaces, characters
    /// [`insert`](Input::insert) refuses are left out, and the text is cut
    /// (between characters) where the line would get too long.
    pub fn insert_str(&mut self, s: &str) {
        let accepted = accept_pasted(self.before_cursor(), s, self.room());
        self.insert_accepted(&accepted);
    }

    /// The character just before the cursor.
    fn before_cursor(&self) -> Option<char> {
        self.split().0.chars().next_back()
    }

    /// Bytes the line can still take.
    fn room(&self) -> usize {
        MAX_INPUT_BYTES.saturating_sub(self.text.len())
    }

    /// Inserts, in one edit, text the input rules accepted; returns the
    /// bytes inserted.
    fn insert_accepted(&mut self, accepted: &str) -> usize {
        if accepted.is_empty() {
            return 0;
        }
        self.history.stop();
        self.text.insert_str(self.cursor, accepted);
        self.cursor += accepted.len();
        self.settle_forward();
        accepted.len()
    }

    /// Removes the bytes `from..to` (grapheme boundaries, `from <= to`) and
    /// puts the cursor at `from`.
    fn remove(&mut self, from: usize, to: usize) {
        if from < to && to <= self.text.len() {
            self.history.stop();
            self.text.replace_range(from..to, "");
            self.cursor = from;
            self.settle_back();
        }
    }

    /// Deletes the grapheme before the cursor.
    pub fn backspace(&mut self) {
        if self.cursor > 0 {
            self.remove(self.prev_boundary(self.cursor), self.cursor);
        }
    }

    /// Deletes the grapheme under the cursor.
    pub fn delete(&mut self) {
        if self.cursor < self.text.len() {
            self.remove(self.cursor, self.next_boundary(self.cursor));
        }
    }

    pub fn left(&mut self) {
        if self.cursor > 0 {
            self.cursor = self.prev_boundary(self.cursor);
        }
    }

    pub fn right(&mut self) {
        if self.cursor < self.text.len() {
            self.cursor = self.next_boundary(self.cursor);
        }
    }

    pub fn home(&mut self) {
        self.cursor = 0;
    }

    pub fn end(&mut self) {
        self.cursor = self.text.len();
    }

    /// Ctrl-U: empties the line.
    pub fn clear(&mut self) {
        self.history.stop();
        self.text.clear();
        self.cursor = 0;
    }

    /// Ctrl-K: deletes from the cursor to the end.
    pub fn kill_to_end(&mut self) {
        self.history.stop();
        self.text.truncate(self.cursor);
    }

    /// Byte offset of the start of the word before the cursor (spaces
    /// before the cursor are skipped first).
    fn word_start_before(&self) -> usize {
        let mut graphemes = self.split().0.grapheme_indices(true).rev().peekable();
        let mut start = self.cursor;
        while let Some((at, _)) = graphemes.next_if(|(_, g)| is_space(g)) {
            start = at;
        }
        while let Some((at, _)) = graphemes.next_if(|(_, g)| !is_space(g)) {
            start = at;
        }
        start
    }

    /// Byte offset just past the word after the cursor.
    fn word_end_after(&self) -> usize {
        let mut graphemes = self.split().1.graphemes(true).peekable();
        let mut end = self.cursor;
        while let Some(g) = graphemes.next_if(|g| is_space(g)) {
            end += g.len();
        }
        while let Some(g) = graphemes.next_if(|g| !is_space(g)) {
            end += g.len();
        }
        end
    }

    /// Ctrl-W: deletes the word before the cursor.
    pub fn delete_word(&mut self) {
        self.remove(self.word_start_before(), self.cursor);
    }

    pub fn word_left(&mut self) {
        self.cursor = self.word_start_before();
    }

    pub fn word_right(&mut self) {
        self.cursor = self.word_end_after();
    }

    /// Up: the previous (older) history line.
    pub fn history_prev(&mut self) {
        if let Some(line) = self.history.older(&self.text) {
            self.set_value(line);
        }
    }

    /// Down: the next (newer) history line, then back to the draft.
    pub fn history_next(&mut self) {
        if let Some(line) = self.history.newer() {
            self.set_value(line);
        }
    }

    /// Enter: takes the line out of the input and remembers it in the
    /// history (blank lines and repeats of the last line are not kept).
    pub fn submit(&mut self) -> String {
        let line = std::mem::take(&mut self.text);
        self.cursor = 0;
        self.history.push(&line);
        line
    }

    /// Applies one key press. Ctrl combinations edit; a character typed
    /// with Ctrl+Alt (AltGr on Windows) is inserted like any other.
    pub fn handle_key(&mut self, key: &KeyEvent) -> InputAction {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        let alt = key.modifiers.contains(KeyModifiers::ALT);
        match key.code {
            KeyCode::Enter => return InputAction::Submit(self.submit()),
            KeyCode::Char(c) if ctrl && !alt => match c.to_ascii_lowercase() {
                'a' => self.home(),
                'e' => self.end(),
                'u' => self.clear(),
                'k' => self.kill_to_end(),
                'w' => self.delete_word(),
                'h' => self.backspace(),
                'b' => self.left(),
                'f' => self.right(),
                _ => return InputAction::Unhandled,
            },
            KeyCode::Char(c) => {
                self.insert(c);
            }
            KeyCode::Backspace if ctrl || alt => self.delete_word(),
            KeyCode::Backspace => self.backspace(),
            KeyCode::Delete => self.delete(),
            KeyCode::Left if ctrl || alt => self.word_left(),
            KeyCode::Right if ctrl || alt => self.word_right(),
            KeyCode::Left => self.left(),
            KeyCode::Right => self.right(),
            KeyCode::Home if !ctrl => self.home(),
            KeyCode::End if !ctrl => self.end(),
            KeyCode::Up if key.modifiers.is_empty() => self.history_prev(),
            KeyCode::Down if key.modifiers.is_empty() => self.history_next(),
            _ => return InputAction::Unhandled,
        }
        InputAction::Edited
    }
}

/// A grapheme that separates words.
fn is_space(g: &str) -> bool {
    g.chars().all(char::is_whitespace)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tlschat_client_core::HISTORY_LEN;

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    fn ctrl(c: char) -> KeyEvent {
        KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL)
    }

    fn typed(s: &str) -> Input {
        let mut i = Input::new();
        for c in s.chars() {
            assert_eq!(i.handle_key(&key(KeyCode::Char(c))), InputAction::Edited);
        }
        i
    }

    #[test]
    fn edits_by_character_not_byte() {
        let mut i = typed("héllo wörld");
        assert_eq!(i.cursor(), "héllo wörld".len());
        i.handle_key(&key(KeyCode::Left));
        i.handle_key(&key(KeyCode::Backspace)); // removes the 'l' before 'd'
        assert_eq!(i.value(), "héllo wörd");
        i.handle_key(&key(KeyCode::Home));
        i.handle_key(&key(KeyCode::Right));
        i.handle_key(&key(KeyCode::Delete)); // removes 'é'
        assert_eq!(i.value(), "hllo wörd");
        i.handle_key(&key(KeyCode::Char('€')));
        assert_eq!(i.value(), "h€llo wörd");
        assert_eq!(i.cursor(), "h€".len());
        i.handle_key(&ctrl('e'));
        assert_eq!(i.cursor(), i.value().len());
        i.handle_key(&ctrl('a'));
        assert_eq!(i.cursor(), 0);
        i.handle_key(&key(KeyCode::Backspace)); // nothing before the cursor
        i.handle_key(&key(KeyCode::Left));
        assert_eq!((i.value(), i.cursor()), ("h€llo wörd", 0));
        i.handle_key(&key(KeyCode::End));
        i.handle_key(&key(KeyCode::Delete)); // nothing after the cursor
        i.handle_key(&key(KeyCode::Right));
        assert_eq!((i.value(), i.cursor()), ("h€llo wörd", "h€llo wörd".len()));
        i.handle_key(&ctrl('u'));
        assert_eq!((i.value(), i.cursor()), ("", 0));
    }

    /// Graphemes that are several characters: combining marks, emoji ZWJ
    /// sequences, skin tones, flags (regional indicators and a tag
    /// sequence), Devanagari conjuncts, Hangul jamo.
    const CLUSTERS: &[&str] = &[
        "e\u{301}",
        "n\u{303}\u{308}",
        "👨\u{200D}👩\u{200D}👧\u{200D}👦",
        "🧑🏽\u{200D}💻",
        "👋🏿",
        "🇺🇦",
        "🏴\u{E0067}\u{E0062}\u{E0073}\u{E0063}\u{E0074}\u{E007F}",
        "❤\u{FE0F}",
        "क्ष",
        "\u{1100}\u{1161}\u{11A8}",
    ];

    #[test]
    fn left_right_backspace_delete_move_over_whole_graphemes() {
        for cluster in CLUSTERS {
            let line = format!("a{cluster}b{cluster}");
            let mut i = typed(&line);
            assert_eq!(i.value(), line, "{cluster:?} typed one char at a time");
            i.handle_key(&key(KeyCode::Backspace));
            assert_eq!(i.value(), format!("a{cluster}b"), "{cluster:?}");
            i.handle_key(&key(KeyCode::Left));
            i.handle_key(&key(KeyCode::Left));
            assert_eq!(i.cursor(), 1, "{cluster:?}");
            i.handle_key(&key(KeyCode::Right));
            assert_eq!(i.cursor(), 1 + cluster.len(), "{cluster:?}");
            i.handle_key(&key(KeyCode::Left));
            i.handle_key(&key(KeyCode::Delete));
            assert_eq!((i.value(), i.cursor()), ("ab", 1), "{cluster:?}");
            i.set_value(format!("{cluster}{cluster}"));
            i.handle_key(&key(KeyCode::Left));
            assert_eq!(i.cursor(), cluster.len(), "{cluster:?}");
            i.handle_key(&ctrl('k'));
            assert_eq!(i.value(), *cluster);
            i.handle_key(&ctrl('w'));
            assert_eq!(i.value(), "");
        }
    }

    #[test]
    fn an_insertion_that_merges_keeps_the_cursor_on_a_boundary() {
        // A combining mark typed after a letter joins it.
        let mut i = typed("e");
        i.insert('\u{301}');
        assert_eq!((i.value(), i.cursor()), ("e\u{301}", 3));
        i.handle_key(&key(KeyCode::Backspace));
        assert_eq!(i.value(), "");
        // A letter typed before a combining mark takes the mark: the cursor
        // goes past both.
        i.set_value("\u{301}x");
        i.home();
        i.insert('a');
        assert_eq!((i.value(), i.cursor()), ("a\u{301}x", 3));
        // A regional indicator typed before a flag pairs with its first half.
        i.set_value("🇩🇪");
        i.home();
        i.insert('🇫');
        assert_eq!(i.value(), "🇫🇩🇪");
        assert_eq!(i.cursor(), "🇫🇩".len());
        // Deleting what separated two regional indicators merges them; the
        // cursor goes to the start of the new flag.
        i.set_value("🇩x🇪");
        i.left();
        i.backspace();
        assert_eq!((i.value(), i.cursor()), ("🇩🇪", 0));
    }

    #[test]
    fn ctrl_w_deletes_the_word_before_the_cursor() {
        let mut i = typed("say hello  there");
        i.handle_key(&ctrl('w'));
        assert_eq!(i.value(), "say hello  ");
        i.handle_key(&ctrl('w'));
        assert_eq!(i.value(), "say ");
        i.set_value("one two three");
        i.handle_key(&KeyEvent::new(KeyCode::Left, KeyModifiers::CONTROL));
        assert_eq!(i.cursor(), 8);
        i.handle_key(&ctrl('w'));
        assert_eq!((i.value(), i.cursor()), ("one three", 4));
        i.handle_key(&KeyEvent::new(KeyCode::Right, KeyModifiers::CONTROL));
        assert_eq!(i.cursor(), 9);
        i.handle_key(&ctrl('a'));
        i.handle_key(&ctrl('k'));
        assert_eq!(i.value(), "");
    }

    #[test]
    fn control_bidi_and_invisible_characters_are_refused() {
        let mut i = typed("a");
        for c in [
            '\n',
            '\t',
            '\u{1b}',
            '\u{7}',
            '\u{9b}',
            '\u{202E}',
            '\u{61C}',
            '\u{2028}',
            '\u{200B}',
            '\u{FEFF}',
            '\u{E0041}',
        ] {
            assert!(!i.insert(c), "U+{:04X}", c as u32);
        }
        i.insert_str("b\nc\u{1b}[2Jd\u{2066}e\u{E0068}");
        assert_eq!(i.value(), "ab c[2Jde");
        // What real text needs is typed: ZWNJ, ZWJ, variation selectors,
        // and tag characters after the black flag.
        i.clear();
        i.insert_str("می\u{200C}خواهم 👩\u{200D}🔬 ❤\u{FE0F} 🏴\u{E0067}\u{E0062}\u{E0077}\u{E006C}\u{E0073}\u{E007F}");
        assert_eq!(
            i.value(),
            "می\u{200C}خواهم 👩\u{200D}🔬 ❤\u{FE0F} 🏴\u{E0067}\u{E0062}\u{E0077}\u{E006C}\u{E0073}\u{E007F}"
        );
    }

    #[test]
    fn altgr_characters_are_typed() {
        // Windows reports AltGr+Q (`@` on a German layout) as Ctrl+Alt+@.
        let mut i = Input::new();
        let altgr = KeyModifiers::CONTROL | KeyModifiers::ALT;
        assert_eq!(
            i.handle_key(&KeyEvent::new(KeyCode::Char('@'), altgr)),
            InputAction::Edited
        );
        assert_eq!(i.value(), "@");
        assert_eq!(i.handle_key(&ctrl('x')), InputAction::Unhandled);
    }

    #[test]
    fn the_line_is_capped_at_the_protocol_limit() {
        let mut i = Input::new();
        i.insert_str(&"x".repeat(MAX_INPUT_BYTES + 10));
        assert_eq!(i.value().len(), MAX_INPUT_BYTES);
        assert!(!i.insert('y'));
        // Cut between characters, never inside one.
        i.clear();
        i.insert_str(&"я".repeat(MAX_INPUT_BYTES));
        assert_eq!(i.value().len(), MAX_INPUT_BYTES - 1);
        assert!(i.insert('y'));
        assert!(!i.insert('я'));
    }

    #[test]
    fn history_up_down_and_draft() {
        let mut i = Input::new();
        assert_eq!(i.handle_key(&key(KeyCode::Up)), InputAction::Edited); // empty history: no-op
        assert_eq!(i.value(), "");
        for line in ["first", "second", "second", "  "] {
            i.set_value(line);
            assert_eq!(
                i.handle_key(&key(KeyCode::Enter)),
                InputAction::Submit(line.into())
            );
        }
        assert_eq!(i.history(), ["first", "second"]);
        i.set_value("draft");
        i.handle_key(&key(KeyCode::Up));
        assert_eq!((i.value(), i.cursor()), ("second", 6));
        i.handle_key(&key(KeyCode::Up));
        assert_eq!(i.value(), "first");
        i.handle_key(&key(KeyCode::Up)); // stays at the oldest
        assert_eq!(i.value(), "first");
        i.handle_key(&key(KeyCode::Down));
        assert_eq!(i.value(), "second");
        i.handle_key(&key(KeyCode::Down));
        assert_eq!(i.value(), "draft");
        i.handle_key(&key(KeyCode::Down));
        assert_eq!(i.value(), "draft");
    }

    #[test]
    fn history_is_bounded() {
        let mut i = Input::new();
        for n in 0..HISTORY_LEN + 3 {
            i.set_value(n.to_string());
            i.submit();
        }
        assert_eq!(i.history().len(), HISTORY_LEN);
        assert_eq!(i.history()[0], "3");
    }
}
