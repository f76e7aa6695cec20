//! `App`: the terminal UI's state (the [`ChatState`] built by the client
//! core, the input line, the scroll position, the mode) and what keys,
//! mouse and session events do to it. Nothing here draws; `ui/` renders
//! an `&App`.

use crossterm::event::{
    Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseEvent, MouseEventKind,
};
use ratatui::layout::Size;

use super::input::{Input, InputAction};
use super::text;
use tlschat_client_core::state::{ChatState, Entry};
use tlschat_client_core::{classify, secret_command, ClientEvent, CloseReason, UserLine};

/// Sends one line to the session; false if it could not be queued.
/// `tui::run` wraps [`ClientHandle::try_send`](tlschat_client_core::ClientHandle::try_send).
pub type Sender = Box<dyn FnMut(String) -> bool + Send>;

/// Rows one mouse-wheel notch scrolls.
pub const WHEEL_ROWS: usize = 3;

/// The client's own help, shown as status entries before the server's
/// `/help` answer.
pub const KEY_HELP: &[&str] = &[
    "keys: Enter send · Up/Down history · Ctrl-C or /quit [reason] leave (Ctrl-C twice: at once)",
    "scroll: PgUp/PgDn · Shift-Up/Down · mouse wheel · Ctrl-Home top · Esc or Ctrl-End bottom · Ctrl-O older kept lines",
    "editing: Left/Right · Ctrl-Left/Right word · Home/End or Ctrl-A/Ctrl-E · Backspace/Delete · Ctrl-W delete word · Ctrl-K cut to end · Ctrl-U clear · Ctrl-L redraw",
    "to select text with the mouse, hold Shift (Option in macOS Terminal)",
    "commands (from the server):",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Normal: typing and sending.
    Chat,
    /// `/quit` or Ctrl-C sent; waiting for the session to report `Closed`.
    Quitting,
    /// The session is over (`None`: it ended without saying why); the next
    /// key press leaves.
    Closed(Option<CloseReason>),
}

/// What the event loop does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Flow {
    Continue,
    /// Leave the terminal UI, with the session's close reason if it gave one.
    Exit(Option<CloseReason>),
}

pub struct App {
    pub state: ChatState,
    pub input: Input,
    /// Rows scrolled up from the bottom; 0 follows new messages.
    scroll: usize,
    /// Size of the message pane at the last draw.
    viewport: Size,
    /// `None` once dropped (dropping the handle ends the session as `/quit`).
    send: Option<Sender>,
    mode: Mode,
    redraw: bool,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("state", &self.state)
            .field("input", &self.input)
            .field("scroll", &self.scroll)
            .field("viewport", &self.viewport)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl App {
    pub fn new(state: ChatState, send: Sender) -> App {
        App {
            state,
            input: Input::new(),
            scroll: 0,
            viewport: Size::new(80, 20),
            send: Some(send),
            mode: Mode::Chat,
            redraw: false,
        }
    }

    pub fn mode(&self) -> &Mode {
        &self.mode
    }

    pub fn scroll(&self) -> usize {
        self.scroll
    }

    /// Ctrl-L asked for a full redraw; reading clears the request.
    pub fn take_redraw_request(&mut self) -> bool {
        std::mem::take(&mut self.redraw)
    }

    /// The message pane's size, set before each draw (after a resize the
    /// same scroll offset may point past the top: it is clamped).
    pub fn set_viewport(&mut self, size: Size) {
        if size != self.viewport {
            self.viewport = size;
            self.scroll = self.clamp(self.scroll);
        }
    }

    fn clamp(&self, wanted: usize) -> usize {
        text::clamp_scroll(
            &self.state,
            usize::from(self.viewport.width),
            usize::from(self.viewport.height),
            wanted,
        )
    }

    /// One page: the pane's height less a row of context.
    fn page(&self) -> usize {
        usize::from(self.viewport.height).saturating_sub(2).max(1)
    }

    pub fn scroll_up(&mut self, rows: usize) {
        self.scroll = self.clamp(self.scroll.saturating_add(rows));
    }

    pub fn scroll_down(&mut self, rows: usize) {
        self.scroll = self.scroll.saturating_sub(rows);
    }

    pub fn scroll_to_bottom(&mut self) {
        self.scroll = 0;
    }

    // ---- terminal events -------------------------------------------------------

    pub fn handle_event(&mut self, event: Event) -> Flow {
        match event {
            // Windows reports releases too: act on presses only.
            Event::Key(key) if key.kind == KeyEventKind::Press => self.on_key(key),
            Event::Mouse(mouse) => {
                self.on_mouse(mouse);
                Flow::Continue
            }
            Event::Paste(text) if self.mode == Mode::Chat => {
                self.input.insert_str(&text);
                Flow::Continue
            }
            // Resize: the loop redraws with the new size.
            _ => Flow::Continue,
        }
    }

    pub fn on_mouse(&mut self, mouse: MouseEvent) {
        match mouse.kind {
            MouseEventKind::ScrollUp => self.scroll_up(WHEEL_ROWS),
            MouseEventKind::ScrollDown => self.scroll_down(WHEEL_ROWS),
            _ => {}
        }
    }

    /// Keys that scroll in every mode; true if `key` was one.
    fn scroll_key(&mut self, key: &KeyEvent) -> bool {
        let shift = key.modifiers.contains(KeyModifiers::SHIFT);
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        match key.code {
            KeyCode::PageUp => self.scroll_up(self.page()),
            KeyCode::PageDown => self.scroll_down(self.page()),
            KeyCode::Up if shift => self.scroll_up(1),
            KeyCode::Down if shift => self.scroll_down(1),
            KeyCode::Home if ctrl => self.scroll_up(usize::MAX),
            KeyCode::End if ctrl => self.scroll_to_bottom(),
            _ => return false,
        }
        true
    }

    pub fn on_key(&mut self, key: KeyEvent) -> Flow {
        let ctrl_c = key.modifiers.contains(KeyModifiers::CONTROL)
            && !key.modifiers.contains(KeyModifiers::ALT)
            && matches!(key.code, KeyCode::Char('c' | 'C'));
        if self.scroll_key(&key) {
            return Flow::Continue;
        }
        match &self.mode {
            Mode::Closed(reason) => return Flow::Exit(reason.clone()),
            // Ctrl-C twice: leave without waiting for the session.
            Mode::Quitting if ctrl_c => return Flow::Exit(None),
            Mode::Quitting => return Flow::Continue,
            Mode::Chat => {}
        }
        if ctrl_c {
            self.begin_quit("/quit".to_owned());
            return Flow::Continue;
        }
        match key.code {
            KeyCode::Esc => self.scroll_to_bottom(),
            KeyCode::Char('l' | 'L') if key.modifiers == KeyModifiers::CONTROL => {
                self.redraw = true
            }
            KeyCode::Char('o' | 'O') if key.modifiers == KeyModifiers::CONTROL => self.load_older(),
            _ => {
                if let InputAction::Submit(line) = self.input.handle_key(&key) {
                    self.submit(line);
                }
            }
        }
        Flow::Continue
    }

    /// Enter: `/quit` and `/help` are looked at here (leading spaces
    /// ignored, otherwise as the server's parser sees them), everything
    /// else goes to the server as typed, but a line with a password
    /// without leading spaces (it is a command, never a message).
    fn submit(&mut self, line: String) {
        let asked = classify(&line);
        if asked == UserLine::Blank {
            return;
        }
        self.scroll_to_bottom();
        match asked {
            UserLine::Quit(command) => return self.begin_quit(command.to_owned()),
            UserLine::Help => {
                for text in KEY_HELP {
                    self.state.status(*text);
                }
            }
            UserLine::Blank | UserLine::Send => {}
        }
        let line = secret_command(&line).to_owned();
        if !self.send_line(line) {
            self.state
                .status("not sent: the connection's queue is full or the session is over");
        }
    }

    /// Ctrl-O: asks for the kept lines before the oldest one shown in the
    /// room, once per batch (nothing when none are left).
    fn load_older(&mut self) {
        let Some(ask) = self.state.older_history() else {
            self.state.status("no earlier kept lines to load");
            return;
        };
        if !self.send_line(ask) {
            self.state
                .status("not sent: the connection's queue is full or the session is over");
        }
    }

    fn send_line(&mut self, line: String) -> bool {
        self.send.as_mut().is_some_and(|send| send(line))
    }

    /// Sends `/quit [reason]` and waits for the session to report `Closed`.
    pub fn begin_quit(&mut self, line: String) {
        if self.mode != Mode::Chat {
            return;
        }
        self.mode = Mode::Quitting;
        self.scroll_to_bottom();
        self.state.status("leaving…");
        if !self.send_line(line) {
            // Dropping the only handle makes the session leave as /quit does.
            self.send = None;
        }
    }

    // ---- session events --------------------------------------------------------

    pub fn on_client_event(&mut self, event: ClientEvent) -> Flow {
        let added = self.state.apply(&event).map(|e| e as *const Entry);
        if let Some(added) = added.filter(|_| self.scroll > 0) {
            // Scrolled up: keep the same rows on screen. A kept line placed
            // by its stamp may land above them, which moves nothing.
            let width = usize::from(self.viewport.width);
            let mut below = 0;
            for entry in self.state.entries.iter().rev() {
                if std::ptr::eq(entry, added) {
                    if below < self.scroll {
                        self.scroll += text::entry_lines(entry, &self.state, width).len();
                    }
                    break;
                }
                below += text::entry_lines(entry, &self.state, width).len();
                if below >= self.scroll {
                    break;
                }
            }
        }
        if let ClientEvent::Closed(reason) = event {
            if self.mode == Mode::Quitting {
                return Flow::Exit(Some(reason));
            }
            self.close(Some(reason));
        }
        Flow::Continue
    }

    /// The session's event channel ended without `Closed`.
    pub fn on_session_gone(&mut self) -> Flow {
        match self.mode {
            Mode::Quitting => Flow::Exit(None),
            Mode::Closed(_) => Flow::Continue,
            Mode::Chat => {
                self.state.status("the session ended");
                self.close(None);
                Flow::Continue
            }
        }
    }

    fn close(&mut self, reason: Option<CloseReason>) {
        self.mode = Mode::Closed(reason);
        self.send = None;
        self.scroll_to_bottom();
        self.state.status("press any key to exit");
    }
}

/// Tests feed raw lines through the session's reading, as it passes them on.
#[cfg(test)]
impl App {
    pub(crate) fn on_server_line(&mut self, line: &str) -> Flow {
        let room = self.state.room.clone();
        let mut lines =
            tlschat_client_core::ServerLines::with_history(self.state.nick.clone(), room);
        let mut flow = Flow::Continue;
        for event in lines.read(line).into_iter().flatten() {
            flow = self.on_client_event(event);
        }
        flow
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use tlschat_client_core::state::{Batch, EntryKind, HistoryEnd};
    use tlschat_protocol::Fingerprint;

    type Sent = Arc<Mutex<Vec<String>>>;

    fn app_with(accept: bool) -> (App, Sent) {
        let sent: Sent = Arc::default();
        let log = sent.clone();
        let send: Sender = Box::new(move |line| {
            log.lock().unwrap().push(line);
            accept
        });
        let mut app = App::new(ChatState::new("host:55555", "alice"), send);
        app.on_client_event(ClientEvent::Connected {
            server: "host:55555".into(),
            nick: "alice".into(),
            fingerprint: Fingerprint([7; 32]),
            tls: "TLS 1.3, X25519MLKEM768".into(),
        });
        app.on_server_line("JOIN #lobby alice");
        app.on_server_line("USERS #lobby bob alice");
        (app, sent)
    }

    fn press(app: &mut App, code: KeyCode) -> Flow {
        app.handle_event(Event::Key(KeyEvent::new(code, KeyModifiers::NONE)))
    }

    fn ctrl_c(app: &mut App) -> Flow {
        app.handle_event(Event::Key(KeyEvent::new(
            KeyCode::Char('c'),
            KeyModifiers::CONTROL,
        )))
    }

    fn type_line(app: &mut App, s: &str) {
        for c in s.chars() {
            press(app, KeyCode::Char(c));
        }
    }

    fn statuses(app: &App) -> Vec<String> {
        app.state
            .entries
            .iter()
            .filter_map(|e| match &e.kind {
                EntryKind::Status(s) => Some(s.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn typing_and_enter_sends_the_line() {
        let (mut app, sent) = app_with(true);
        type_line(&mut app, "hello wörld");
        assert_eq!(app.input.value(), "hello wörld");
        press(&mut app, KeyCode::Backspace);
        press(&mut app, KeyCode::Enter);
        assert_eq!(*sent.lock().unwrap(), ["hello wörl"]);
        assert_eq!(app.input.value(), "");
        // Blank lines are not sent; history recalls the last line.
        type_line(&mut app, "   ");
        press(&mut app, KeyCode::Enter);
        press(&mut app, KeyCode::Up);
        assert_eq!(app.input.value(), "hello wörl");
        press(&mut app, KeyCode::Enter);
        assert_eq!(sent.lock().unwrap().len(), 2);
    }

    #[test]
    fn a_password_line_is_sent_as_a_command_and_not_recalled() {
        let (mut app, sent) = app_with(true);
        type_line(&mut app, "привет");
        press(&mut app, KeyCode::Enter);
        type_line(&mut app, "  /register пароль-密码-🔑");
        press(&mut app, KeyCode::Enter);
        assert_eq!(
            *sent.lock().unwrap(),
            ["привет", "/register пароль-密码-🔑"]
        );
        press(&mut app, KeyCode::Up);
        assert_eq!(app.input.value(), "привет");
        press(&mut app, KeyCode::Up);
        assert_eq!(app.input.value(), "привет");
    }

    #[test]
    fn key_releases_are_ignored() {
        let (mut app, _) = app_with(true);
        let mut release = KeyEvent::new(KeyCode::Char('x'), KeyModifiers::NONE);
        release.kind = KeyEventKind::Release;
        app.handle_event(Event::Key(release));
        press(&mut app, KeyCode::Char('x'));
        assert_eq!(app.input.value(), "x");
    }

    #[test]
    fn a_failed_send_says_so() {
        let (mut app, sent) = app_with(false);
        type_line(&mut app, "hi");
        press(&mut app, KeyCode::Enter);
        assert_eq!(*sent.lock().unwrap(), ["hi"]);
        assert!(statuses(&app).last().unwrap().starts_with("not sent"));
    }

    #[test]
    fn ctrl_o_asks_for_older_kept_lines_once_per_batch() {
        let (mut app, sent) = app_with(true);
        let ctrl_o = |app: &mut App| {
            app.handle_event(Event::Key(KeyEvent::new(
                KeyCode::Char('o'),
                KeyModifiers::CONTROL,
            )))
        };
        ctrl_o(&mut app);
        assert!(sent.lock().unwrap().is_empty());
        assert!(statuses(&app).last().unwrap().starts_with("no earlier"));
        app.on_client_event(ClientEvent::Line(EntryKind::HistoryEnd(HistoryEnd {
            room: "#lobby".into(),
            batch: Batch::Replay,
            sent: 1,
            left: 9,
            shown: 1,
            oldest: Some(200),
            newest_shown: Some(200),
        })));
        ctrl_o(&mut app);
        ctrl_o(&mut app);
        assert_eq!(*sent.lock().unwrap(), ["/history before 200 50"]);
        assert_eq!(app.input.value(), "");
    }

    #[test]
    fn help_shows_keys_and_asks_the_server() {
        let (mut app, sent) = app_with(true);
        type_line(&mut app, "/help");
        press(&mut app, KeyCode::Enter);
        assert_eq!(*sent.lock().unwrap(), ["/help"]);
        let st = statuses(&app);
        assert!(st.iter().any(|s| s.contains("PgUp/PgDn")), "{st:?}");
    }

    #[test]
    fn quit_waits_for_closed() {
        let (mut app, sent) = app_with(true);
        type_line(&mut app, "/quit see you");
        assert_eq!(press(&mut app, KeyCode::Enter), Flow::Continue);
        assert_eq!(*sent.lock().unwrap(), ["/quit see you"]);
        assert_eq!(app.mode(), &Mode::Quitting);
        // Typing does nothing now; session lines are still shown.
        press(&mut app, KeyCode::Char('x'));
        assert_eq!(app.input.value(), "");
        assert_eq!(app.on_server_line("PART #lobby alice quit"), Flow::Continue);
        assert_eq!(
            app.on_client_event(ClientEvent::Closed(CloseReason::Quit)),
            Flow::Exit(Some(CloseReason::Quit))
        );
    }

    #[test]
    fn ctrl_c_quits_and_twice_leaves_at_once() {
        let (mut app, sent) = app_with(true);
        assert_eq!(ctrl_c(&mut app), Flow::Continue);
        assert_eq!(*sent.lock().unwrap(), ["/quit"]);
        assert_eq!(app.mode(), &Mode::Quitting);
        assert_eq!(ctrl_c(&mut app), Flow::Exit(None));
    }

    #[test]
    fn quit_with_a_dead_session_drops_the_handle() {
        let (mut app, _) = app_with(false);
        ctrl_c(&mut app);
        assert!(app.send.is_none());
        assert_eq!(app.on_session_gone(), Flow::Exit(None));
    }

    #[test]
    fn closed_by_the_server_waits_for_a_key() {
        let (mut app, _) = app_with(true);
        let kicked = CloseReason::Kicked {
            by: "admin".into(),
            reason: "spam".into(),
        };
        assert_eq!(
            app.on_client_event(ClientEvent::Closed(kicked.clone())),
            Flow::Continue
        );
        assert_eq!(app.mode(), &Mode::Closed(Some(kicked.clone())));
        let st = statuses(&app);
        assert_eq!(st[st.len() - 2], "kicked by admin: spam");
        assert_eq!(st[st.len() - 1], "press any key to exit");
        // The channel ending after Closed changes nothing; scrolling is
        // allowed; any other key leaves with the reason.
        assert_eq!(app.on_session_gone(), Flow::Continue);
        assert_eq!(press(&mut app, KeyCode::PageUp), Flow::Continue);
        assert_eq!(
            press(&mut app, KeyCode::Char('q')),
            Flow::Exit(Some(kicked))
        );
    }

    #[test]
    fn session_gone_without_closed() {
        let (mut app, _) = app_with(true);
        assert_eq!(app.on_session_gone(), Flow::Continue);
        assert_eq!(app.mode(), &Mode::Closed(None));
        assert_eq!(press(&mut app, KeyCode::Enter), Flow::Exit(None));
    }

    fn fill(app: &mut App, n: usize) {
        for i in 0..n {
            app.on_server_line(&format!("MSG #lobby bob line {i}"));
        }
    }

    #[test]
    fn scrolling_is_bounded() {
        let (mut app, _) = app_with(true);
        app.set_viewport(Size::new(60, 10));
        app.state.entries.clear();
        fill(&mut app, 5);
        // Everything fits: nothing to scroll.
        press(&mut app, KeyCode::PageUp);
        assert_eq!(app.scroll(), 0);
        fill(&mut app, 25); // 30 one-row entries in a 10-row pane
        press(&mut app, KeyCode::PageUp);
        assert_eq!(app.scroll(), 8);
        for _ in 0..10 {
            press(&mut app, KeyCode::PageUp);
        }
        // At the top the first row shows above the "more below" line.
        assert_eq!(app.scroll(), 30 - 9);
        press(&mut app, KeyCode::PageDown);
        assert_eq!(app.scroll(), 13);
        for _ in 0..10 {
            press(&mut app, KeyCode::PageDown);
        }
        assert_eq!(app.scroll(), 0);
        app.on_mouse(MouseEvent {
            kind: MouseEventKind::ScrollUp,
            column: 0,
            row: 0,
            modifiers: KeyModifiers::NONE,
        });
        assert_eq!(app.scroll(), WHEEL_ROWS);
        press(&mut app, KeyCode::Esc);
        assert_eq!(app.scroll(), 0);
        // A smaller pane after a resize: clamped.
        app.on_key(KeyEvent::new(KeyCode::Home, KeyModifiers::CONTROL));
        assert_eq!(app.scroll(), 21);
        app.set_viewport(Size::new(60, 30));
        assert_eq!(app.scroll(), 0);
    }

    #[test]
    fn new_messages_keep_a_scrolled_view_still() {
        let (mut app, _) = app_with(true);
        app.set_viewport(Size::new(60, 10));
        fill(&mut app, 30);
        press(&mut app, KeyCode::PageUp);
        let before = app.scroll();
        fill(&mut app, 2);
        assert_eq!(app.scroll(), before + 2);
        // At the bottom, the view follows.
        press(&mut app, KeyCode::Esc);
        fill(&mut app, 2);
        assert_eq!(app.scroll(), 0);
    }

    #[test]
    fn kept_lines_placed_above_a_scrolled_view_do_not_move_it() {
        use tlschat_client_core::state::{EntryKind, Kept};
        let (mut app, _) = app_with(true);
        app.set_viewport(Size::new(60, 10));
        for i in 0..30 {
            app.on_server_line(&format!("@{} MSG #lobby bob строка {i}", 1000 + 10 * i));
        }
        press(&mut app, KeyCode::PageUp);
        let before = app.scroll();
        let kept = |at: u64| {
            ClientEvent::Line(EntryKind::History(Kept {
                room: "#lobby".into(),
                at,
                nick: "bob".into(),
                action: false,
                text: "שלום 👩‍👩‍👧".into(),
            }))
        };
        // Older than everything: it lands above the rows on screen.
        app.on_client_event(kept(5));
        assert_eq!(app.scroll(), before);
        // Between the two newest lines, below the rows on screen: the
        // view moves up by its row, as for a new line.
        app.on_client_event(kept(1285));
        assert_eq!(app.scroll(), before + 1);
        app.on_server_line("@2000 MSG #lobby bob e\u{301}");
        assert_eq!(app.scroll(), before + 2);
    }
}
