//! What a user typed, before it goes to the session: the rules every
//! front end shares. [`classify`] says what an entered line asks for
//! (nothing, leaving, help, or just sending); [`is_quit`] is the one test
//! for `/quit`, used by the front ends and by the session, which waits for
//! the server to close after it.

use tlschat_protocol::{check_text, Command};

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

#[cfg(test)]
mod tests {
    use super::*;

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
