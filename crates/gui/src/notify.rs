//! Desktop notifications: a mention of our nickname or a private message
//! while the window is not focused. [`Notifier`] is what the app calls;
//! [`DesktopNotifier`] shows them through the platform (notify-rust) on a
//! thread of its own, since showing one can block (D-Bus activation waits
//! up to its timeout when no notification daemon runs); tests use
//! [`RecordingNotifier`].

use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Arc, Mutex};

/// One notification: a title and a body, already sanitised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub title: String,
    pub body: String,
}

/// Shows notifications; never blocks the caller.
pub trait Notifier {
    fn notify(&self, notice: Notice);
}

/// How many notifications may wait to be shown; past it, new ones are
/// dropped (a flood of private messages is one alert, not a backlog).
const QUEUE: usize = 8;

/// The platform's notifications, shown by a background thread.
#[derive(Debug)]
pub struct DesktopNotifier {
    queue: SyncSender<Notice>,
}

impl DesktopNotifier {
    pub fn start() -> std::io::Result<DesktopNotifier> {
        let (queue, notices) = sync_channel::<Notice>(QUEUE);
        std::thread::Builder::new()
            .name("tlschat-notify".into())
            .spawn(move || {
                let mut reported = false;
                for notice in notices {
                    let shown = notify_rust::Notification::new()
                        .appname("tlschat")
                        .summary(&notice.title)
                        .body(&notice.body)
                        .show();
                    // Say once why notifications do not work, not per message.
                    if let Err(e) = shown {
                        if !reported {
                            eprintln!("tlschat-gui: cannot show notifications: {e}");
                            reported = true;
                        }
                    }
                }
            })?;
        Ok(DesktopNotifier { queue })
    }
}

impl Notifier for DesktopNotifier {
    fn notify(&self, notice: Notice) {
        let _ = self.queue.try_send(notice);
    }
}

/// Shows nothing (no thread could be started for notifications).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoNotifier;

impl Notifier for NoNotifier {
    fn notify(&self, _: Notice) {}
}

/// Keeps what would have been shown, for tests.
#[derive(Debug, Clone, Default)]
pub struct RecordingNotifier {
    shown: Arc<Mutex<Vec<Notice>>>,
}

impl RecordingNotifier {
    pub fn shown(&self) -> Vec<Notice> {
        self.shown.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Notifier for RecordingNotifier {
    fn notify(&self, notice: Notice) {
        self.shown
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(notice);
    }
}
