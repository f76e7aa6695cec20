//! Desktop notifications: a mention of our nickname or a private message
//! while the window is not focused. [`Notifier`] is what the app calls;
//! [`DesktopNotifier`] shows them through the platform (notify-rust) on a
//! thread of its own, since showing one can block (D-Bus activation waits
//! up to its timeout when no notification daemon runs); tests use
//! [`RecordingNotifier`]. Between the two, [`Coalescer`] keeps a flood
//! (a hostile user sending a thousand private messages or mentions) to a
//! few notifications, each counting the ones held back before it.

use std::collections::{HashMap, VecDeque};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One notification: a title and a body, already sanitised, and the
/// conversation it comes from (a room or a private peer, case-folded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub title: String,
    pub body: String,
    pub conversation: String,
}

/// At most one notification per conversation in this long…
const QUIET: Duration = Duration::from_secs(5);
/// …and at most this many in that long, whatever the conversations.
const BURST: usize = 3;
/// Conversations with notifications held back that are remembered; past
/// it, a new conversation's are dropped uncounted.
const TRACKED: usize = 256;
/// Characters of a message a notification shows.
const BODY_CHARS: usize = 200;

/// Decides which notices are shown: the first of a conversation, then
/// none from it for [`QUIET`] (nor more than [`BURST`] in all), the ones
/// held back counted into the next shown.
#[derive(Debug, Default)]
pub struct Coalescer {
    /// Per conversation: when one was last shown, and how many were held
    /// back since.
    recent: HashMap<String, (Option<Instant>, usize)>,
    /// When the last few were shown.
    shown: VecDeque<Instant>,
}

impl Coalescer {
    /// `notice` to show now, or `None` when it is held back.
    pub fn admit(&mut self, mut notice: Notice, now: Instant) -> Option<Notice> {
        let recent = |t: &Instant| now.saturating_duration_since(*t) < QUIET;
        self.shown.retain(recent);
        self.recent
            .retain(|_, (last, held)| *held > 0 || last.as_ref().is_some_and(recent));
        if self.recent.len() >= TRACKED && !self.recent.contains_key(&notice.conversation) {
            return None;
        }
        let (last, held) = self.recent.entry(notice.conversation.clone()).or_default();
        if last.as_ref().is_some_and(recent) || self.shown.len() >= BURST {
            *held += 1;
            return None;
        }
        *last = Some(now);
        self.shown.push_back(now);
        let mut body: String = notice.body.chars().take(BODY_CHARS).collect();
        if body.len() < notice.body.len() {
            body.push('…');
        }
        match std::mem::take(held) {
            0 => {}
            1 => body.push_str("\n(and 1 more)"),
            n => body.push_str(&format!("\n(and {n} more)")),
        }
        notice.body = body;
        Some(notice)
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn notice(conversation: &str, body: &str) -> Notice {
        Notice {
            title: format!("{conversation} (private)"),
            body: body.to_owned(),
            conversation: conversation.to_owned(),
        }
    }

    #[test]
    fn a_flood_from_one_conversation_is_one_notification_then_a_count() {
        let mut c = Coalescer::default();
        let start = Instant::now();
        let shown: Vec<Notice> = (0..1000)
            .filter_map(|i| c.admit(notice("mallory", &format!("spam {i}")), start))
            .collect();
        assert_eq!(shown.len(), 1);
        assert_eq!(shown[0].body, "spam 0");
        let later = c.admit(notice("mallory", "spam 1000"), start + QUIET);
        assert_eq!(
            later.map(|n| n.body).as_deref(),
            Some("spam 1000\n(and 999 more)")
        );
    }

    #[test]
    fn many_conversations_at_once_are_a_few_notifications() {
        let mut c = Coalescer::default();
        let start = Instant::now();
        let shown = (0..1000)
            .filter_map(|i| c.admit(notice(&format!("nick{i}"), "hi"), start))
            .count();
        assert_eq!(shown, BURST);
        assert!(c.recent.len() <= TRACKED);
    }

    #[test]
    fn a_long_message_is_cut_short() {
        let mut c = Coalescer::default();
        let long = "ж".repeat(10_000);
        let shown = c.admit(notice("bob", &long), Instant::now());
        let body = shown.map(|n| n.body).unwrap_or_default();
        assert_eq!(body.chars().count(), BODY_CHARS + 1);
    }
}
