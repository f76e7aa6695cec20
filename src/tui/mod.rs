//! The terminal UI (ratatui + crossterm), shaped like ratatui's
//! event-driven-async template:
//!
//! ```text
//! mod.rs   run(): terminal setup/restore, the select! loop over
//!          terminal events, session events and the draw deadline
//! app.rs   App: ChatState + input + scroll + mode; what events do
//! text.rs  entries as wrapped, measured lines (app scrolls by them)
//! ui/      renders &App, one module per area (messages, sidebar,
//!          status bar, input line); never changes it
//! theme.rs colours
//! input.rs the input line: editing by grapheme, and history
//! ```
//!
//! ```text
//! app ──▶ text ◀── ui ──▶ app     (ui reads &App; app never calls ui)
//! ```
//!
//! Only crossterm is used (no Unix-only code), so it runs in Windows
//! Terminal and conhost as in macOS and Linux terminals. Raw mode, the
//! alternate screen and mouse capture are undone on every way out: normal
//! return, error (a drop guard) and panic (ratatui's panic hook plus one
//! for mouse capture).

pub mod app;
pub mod input;
pub mod text;
mod theme;
pub mod ui;

use std::io;
use std::time::Duration;

use crossterm::event::{
    DisableMouseCapture, EnableMouseCapture, Event, EventStream, MouseEventKind,
};
use futures_util::StreamExt;
use ratatui::layout::Size;
use ratatui::DefaultTerminal;
use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};

pub use app::{App, Flow, Mode};

use tlschat_client_core::state::ChatState;
use tlschat_client_core::{ClientEvent, ClientHandle, CloseReason};

/// At most this often (about 30 frames a second), and only after a change.
const FRAME: Duration = Duration::from_millis(33);
/// How long `/quit` or Ctrl-C waits for the session to report `Closed`.
const QUIT_WAIT: Duration = Duration::from_secs(3);
/// Session events handled before the screen is redrawn, so a burst is
/// drawn once, not once per line.
const EVENT_BATCH: usize = 256;

/// Runs the terminal UI until the user leaves or the session ends.
///
/// `state` already holds the server and nick; `handle` and `events` come
/// from [`tlschat_client_core::start`]. Returns the session's
/// [`CloseReason`], or `None` if the UI ended without the session
/// reporting `Closed` (Ctrl-C twice, or no `Closed` within 3 s of
/// `/quit`).
pub async fn run(
    state: ChatState,
    handle: ClientHandle,
    mut events: mpsc::Receiver<ClientEvent>,
) -> io::Result<Option<CloseReason>> {
    // Every way out restores the terminal, a failed set-up included.
    let _restore = RestoreOnDrop;
    let mut terminal = ratatui::try_init()?;
    install_mouse_panic_hook();
    crossterm::execute!(io::stdout(), EnableMouseCapture)?;
    let mut app = App::new(state, Box::new(move |line| handle.try_send(line)));
    event_loop(&mut terminal, &mut app, &mut events).await
}

/// The select loop: terminal input, session events, the next frame and
/// `/quit`'s deadline, until the app says to exit.
async fn event_loop(
    terminal: &mut DefaultTerminal,
    app: &mut App,
    events: &mut mpsc::Receiver<ClientEvent>,
) -> io::Result<Option<CloseReason>> {
    let mut input = EventStream::new();
    let mut input_open = true;
    let mut events_open = true;
    let mut screen = Screen::default();
    let mut quit_deadline: Option<Instant> = None;
    loop {
        let next_draw = screen.draw_if_due(terminal, app)?;
        if *app.mode() == Mode::Quitting && quit_deadline.is_none() {
            quit_deadline = Some(Instant::now() + QUIT_WAIT);
        }
        let flow = tokio::select! {
            _ = sleep_until(next_draw), if screen.dirty => Flow::Continue,
            _ = sleep_until(quit_deadline.unwrap_or_else(Instant::now)), if quit_deadline.is_some() => {
                Flow::Exit(None)
            }
            event = input.next(), if input_open => match event {
                Some(Ok(event)) => {
                    screen.dirty |= may_change_screen(&event);
                    app.handle_event(event)
                }
                // No more terminal input: leave as Ctrl-C would.
                Some(Err(_)) | None => {
                    screen.dirty = true;
                    input_open = false;
                    app.begin_quit("/quit".to_owned());
                    Flow::Continue
                }
            },
            event = events.recv(), if events_open => {
                screen.dirty = true;
                match event {
                    Some(event) => on_session_events(app, event, events),
                    None => {
                        events_open = false;
                        app.on_session_gone()
                    }
                }
            }
        };
        if let Flow::Exit(reason) = flow {
            return Ok(reason);
        }
        if !input_open {
            if let Mode::Closed(reason) = app.mode() {
                // No key press can come to acknowledge it.
                return Ok(reason.clone());
            }
        }
    }
}

/// When the screen was drawn and whether it needs drawing again.
struct Screen {
    dirty: bool,
    last_draw: Option<Instant>,
}

impl Default for Screen {
    fn default() -> Screen {
        Screen {
            dirty: true,
            last_draw: None,
        }
    }
}

impl Screen {
    /// Draws if something changed and a frame's time has passed since the
    /// last draw; returns when the next frame may be drawn.
    fn draw_if_due(
        &mut self,
        terminal: &mut DefaultTerminal,
        app: &mut App,
    ) -> io::Result<Instant> {
        if app.take_redraw_request() {
            terminal.clear()?;
            self.dirty = true;
        }
        let next_draw = self.last_draw.map_or_else(Instant::now, |t| t + FRAME);
        if self.dirty && Instant::now() >= next_draw {
            terminal.draw(|frame| {
                let pane = ui::layout(frame.area()).messages;
                app.set_viewport(Size::new(pane.width, pane.height));
                ui::draw(frame, app);
            })?;
            self.dirty = false;
            self.last_draw = Some(Instant::now());
        }
        Ok(next_draw)
    }
}

/// One session event and those already waiting behind it (up to
/// [`EVENT_BATCH`]), so a burst is drawn once.
fn on_session_events(
    app: &mut App,
    first: ClientEvent,
    events: &mut mpsc::Receiver<ClientEvent>,
) -> Flow {
    let mut flow = app.on_client_event(first);
    for _ in 0..EVENT_BATCH {
        if flow != Flow::Continue {
            break;
        }
        match events.try_recv() {
            Ok(event) => flow = app.on_client_event(event),
            Err(_) => break,
        }
    }
    flow
}

/// Mouse capture reports every move and click; only the wheel scrolls.
fn may_change_screen(event: &Event) -> bool {
    match event {
        Event::Mouse(m) => matches!(
            m.kind,
            MouseEventKind::ScrollUp | MouseEventKind::ScrollDown
        ),
        _ => true,
    }
}

/// Undoes mouse capture, raw mode and the alternate screen when `run`
/// returns, early or not.
struct RestoreOnDrop;

impl Drop for RestoreOnDrop {
    fn drop(&mut self) {
        let _ = crossterm::execute!(io::stdout(), DisableMouseCapture);
        ratatui::restore();
    }
}

/// ratatui's panic hook restores raw mode and the screen; this one, run
/// first, also turns mouse capture off, or the shell would receive mouse
/// escape sequences after a panic.
fn install_mouse_panic_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let _ = crossterm::execute!(io::stdout(), DisableMouseCapture);
        previous(info);
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Compile-time check: the binary may `tokio::spawn` the UI.
    #[allow(dead_code)]
    fn run_is_send(state: ChatState, handle: ClientHandle, events: mpsc::Receiver<ClientEvent>) {
        fn is_send<T: Send>(_: T) {}
        is_send(run(state, handle, events));
    }
}
