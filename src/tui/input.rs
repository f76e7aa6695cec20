//! The input line: a single line of text edited by char index (never by
//! byte, so multi-byte characters are never split), plus the history of
//! sent lines.
//!
//! Only characters that are safe to echo are accepted: control characters
//! and the bidirectional overrides that [`render::sanitize`] would replace
//! are refused at the door, so what the user sees is what is sent.
//!
//! [`render::sanitize`]: crate::client::render::sanitize

use std::borrow::Cow;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use crate::client::render::sanitize;
use crate::protocol::MAX_CLIENT_LINE;

/// Longest line the input accepts, in bytes: the protocol's limit minus
/// the `\n`.
pub const MAX_INPUT_BYTES: usize = MAX_CLIENT_LINE - 1;
/// How many sent lines Up/Down can recall (kept in memory only).
pub const HISTORY_LEN: usize = 500;

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
    /// Cursor position in chars, `0..=char count`.
    cursor: usize,
    history: Vec<String>,
    /// Index into `history` while browsing with Up/Down.
    browsing: Option<usize>,
    /// What was typed before browsing started, restored by Down.
    draft: String,
}

impl Input {
    pub fn new() -> Input {
        Input::default()
    }

    pub fn value(&self) -> &str {
        &self.text
    }

    /// Cursor position, in chars.
    pub fn cursor(&self) -> usize {
        self.cursor
    }

    pub fn history(&self) -> &[String] {
        &self.history
    }

    fn len_chars(&self) -> usize {
        self.text.chars().count()
    }

    /// Byte offset of char index `i` (the end for `i` past the last char).
    fn byte_index(&self, i: usize) -> usize {
        self.text
            .char_indices()
            .nth(i)
            .map_or(self.text.len(), |(b, _)| b)
    }

    /// Replaces the whole text; the cursor goes to the end.
    pub fn set_value(&mut self, text: impl Into<String>) {
        self.text = text.into();
        self.cursor = self.len_chars();
    }

    /// Inserts `c` at the cursor. Refuses characters that are not safe to
    /// echo (control, bidi override) and anything past [`MAX_INPUT_BYTES`].
    pub fn insert(&mut self, c: char) -> bool {
        if !is_safe(c) {
            return false;
        }
        if self.text.len() + c.len_utf8() > MAX_INPUT_BYTES {
            return false;
        }
        self.browsing = None;
        let at = self.byte_index(self.cursor);
        self.text.insert(at, c);
        self.cursor += 1;
        true
    }

    /// Inserts pasted text; line breaks and tabs become spaces.
    pub fn insert_str(&mut self, s: &str) {
        for c in s.chars() {
            let c = if matches!(c, '\r' | '\n' | '\t') {
                ' '
            } else {
                c
            };
            self.insert(c);
        }
    }

    /// Deletes the char before the cursor.
    pub fn backspace(&mut self) {
        if self.cursor > 0 {
            self.browsing = None;
            self.cursor -= 1;
            let at = self.byte_index(self.cursor);
            self.text.remove(at);
        }
    }

    /// Deletes the char under the cursor.
    pub fn delete(&mut self) {
        if self.cursor < self.len_chars() {
            self.browsing = None;
            let at = self.byte_index(self.cursor);
            self.text.remove(at);
        }
    }

    pub fn left(&mut self) {
        self.cursor = self.cursor.saturating_sub(1);
    }

    pub fn right(&mut self) {
        self.cursor = (self.cursor + 1).min(self.len_chars());
    }

    pub fn home(&mut self) {
        self.cursor = 0;
    }

    pub fn end(&mut self) {
        self.cursor = self.len_chars();
    }

    /// Ctrl-U: empties the line.
    pub fn clear(&mut self) {
        self.browsing = None;
        self.text.clear();
        self.cursor = 0;
    }

    /// Ctrl-K: deletes from the cursor to the end.
    pub fn kill_to_end(&mut self) {
        self.browsing = None;
        let at = self.byte_index(self.cursor);
        self.text.truncate(at);
    }

    /// Char index of the start of the word before the cursor (spaces
    /// before the cursor are skipped first).
    fn word_start_before(&self) -> usize {
        let chars: Vec<char> = self.text.chars().collect();
        let mut i = self.cursor;
        while i > 0 && chars[i - 1].is_whitespace() {
            i -= 1;
        }
        while i > 0 && !chars[i - 1].is_whitespace() {
            i -= 1;
        }
        i
    }

    /// Char index just past the word after the cursor.
    fn word_end_after(&self) -> usize {
        let chars: Vec<char> = self.text.chars().collect();
        let mut i = self.cursor;
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        while i < chars.len() && !chars[i].is_whitespace() {
            i += 1;
        }
        i
    }

    /// Ctrl-W: deletes the word before the cursor.
    pub fn delete_word(&mut self) {
        let start = self.word_start_before();
        if start < self.cursor {
            self.browsing = None;
            let (a, b) = (self.byte_index(start), self.byte_index(self.cursor));
            self.text.replace_range(a..b, "");
            self.cursor = start;
        }
    }

    pub fn word_left(&mut self) {
        self.cursor = self.word_start_before();
    }

    pub fn word_right(&mut self) {
        self.cursor = self.word_end_after();
    }

    /// Up: the previous (older) history line.
    pub fn history_prev(&mut self) {
        let i = match self.browsing {
            None if self.history.is_empty() => return,
            None => {
                self.draft = std::mem::take(&mut self.text);
                self.history.len() - 1
            }
            Some(0) => return,
            Some(i) => i - 1,
        };
        self.browsing = Some(i);
        self.set_value(self.history[i].clone());
    }

    /// Down: the next (newer) history line, then back to the draft.
    pub fn history_next(&mut self) {
        let Some(i) = self.browsing else { return };
        if i + 1 < self.history.len() {
            self.browsing = Some(i + 1);
            self.set_value(self.history[i + 1].clone());
        } else {
            self.browsing = None;
            let draft = std::mem::take(&mut self.draft);
            self.set_value(draft);
        }
    }

    /// Enter: takes the line out of the input and remembers it in the
    /// history (blank lines and repeats of the last line are not kept).
    pub fn submit(&mut self) -> String {
        let line = std::mem::take(&mut self.text);
        self.cursor = 0;
        self.browsing = None;
        self.draft.clear();
        if !line.trim().is_empty() && self.history.last() != Some(&line) {
            if self.history.len() == HISTORY_LEN {
                self.history.remove(0);
            }
            self.history.push(line.clone());
        }
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

/// A character [`sanitize`] leaves alone.
fn is_safe(c: char) -> bool {
    let mut buf = [0u8; 4];
    matches!(sanitize(c.encode_utf8(&mut buf)), Cow::Borrowed(_))
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn edits_by_char_not_byte() {
        let mut i = typed("héllo wörld");
        assert_eq!(i.cursor(), 11);
        i.handle_key(&key(KeyCode::Left));
        i.handle_key(&key(KeyCode::Backspace)); // removes the 'l' before 'd'
        assert_eq!(i.value(), "héllo wörd");
        i.handle_key(&key(KeyCode::Home));
        i.handle_key(&key(KeyCode::Right));
        i.handle_key(&key(KeyCode::Delete)); // removes 'é'
        assert_eq!(i.value(), "hllo wörd");
        i.handle_key(&key(KeyCode::Char('€')));
        assert_eq!(i.value(), "h€llo wörd");
        assert_eq!(i.cursor(), 2);
        i.handle_key(&ctrl('e'));
        assert_eq!(i.cursor(), 10);
        i.handle_key(&ctrl('a'));
        assert_eq!(i.cursor(), 0);
        i.handle_key(&key(KeyCode::Backspace)); // nothing before the cursor
        i.handle_key(&key(KeyCode::Left));
        assert_eq!((i.value(), i.cursor()), ("h€llo wörd", 0));
        i.handle_key(&key(KeyCode::End));
        i.handle_key(&key(KeyCode::Delete)); // nothing after the cursor
        i.handle_key(&key(KeyCode::Right));
        assert_eq!((i.value(), i.cursor()), ("h€llo wörd", 10));
        i.handle_key(&ctrl('u'));
        assert_eq!((i.value(), i.cursor()), ("", 0));
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
    fn control_and_bidi_characters_are_refused() {
        let mut i = typed("a");
        assert!(!i.insert('\u{1b}'));
        assert!(!i.insert('\u{7}'));
        assert!(!i.insert('\u{9b}'));
        assert!(!i.insert('\u{202E}'));
        i.insert_str("b\nc\u{1b}[2Jd");
        assert_eq!(i.value(), "ab c[2Jd");
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
