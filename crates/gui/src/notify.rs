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
/// Conversations remembered; past it, the one heard from longest ago is
/// forgotten (with what it held back), so a flood from ever new nicknames
/// cannot lock newcomers out.
const TRACKED: usize = 256;
/// Characters of a message a notification shows.
const BODY_CHARS: usize = 200;

/// Decides which notices are shown: the first of a conversation, then
/// none from it for [`QUIET`] (nor more than [`BURST`] in all), the ones
/// held back counted into the next shown.
#[derive(Debug, Default)]
pub struct Coalescer {
    /// Per conversation: when one was last shown, how many were held back
    /// since, and when it was last heard from.
    recent: HashMap<String, Tracked>,
    /// When the last few were shown.
    shown: VecDeque<Instant>,
}

#[derive(Debug, Clone, Copy)]
struct Tracked {
    last_shown: Option<Instant>,
    held: usize,
    heard: Instant,
}

impl Coalescer {
    /// `notice` to show now, or `None` when it is held back.
    pub fn admit(&mut self, mut notice: Notice, now: Instant) -> Option<Notice> {
        let recent = |t: &Instant| now.saturating_duration_since(*t) < QUIET;
        self.shown.retain(recent);
        self.recent
            .retain(|_, t| t.held > 0 || t.last_shown.as_ref().is_some_and(recent));
        if self.recent.len() >= TRACKED && !self.recent.contains_key(&notice.conversation) {
            let oldest = self
                .recent
                .iter()
                .min_by_key(|(_, t)| t.heard)
                .map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                self.recent.remove(&oldest);
            }
        }
        let tracked = self
            .recent
            .entry(notice.conversation.clone())
            .or_insert(Tracked {
                last_shown: None,
                held: 0,
                heard: now,
            });
        tracked.heard = now;
        if tracked.last_shown.as_ref().is_some_and(recent) || self.shown.len() >= BURST {
            tracked.held += 1;
            return None;
        }
        tracked.last_shown = Some(now);
        self.shown.push_back(now);
        let mut body: String = notice.body.chars().take(BODY_CHARS).collect();
        if body.len() < notice.body.len() {
            body.push('…');
        }
        match std::mem::take(&mut tracked.held) {
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
                        .body(&platform_body(&notice.body))
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

/// The body as the platform reads it. The freedesktop specification lets
/// a notification server take the body as markup (`<b>`, `<a href>`,
/// `<img>`), so a peer's `<` and `&` are escaped there; Windows and macOS
/// show plain text.
fn platform_body(body: &str) -> std::borrow::Cow<'_, str> {
    if cfg!(all(unix, not(target_os = "macos"))) {
        markup_escaped(body)
    } else {
        std::borrow::Cow::Borrowed(body)
    }
}

/// `&`, `<` and `>` as entities.
fn markup_escaped(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.contains(['&', '<', '>']) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
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
    fn ever_new_nicknames_cannot_lock_out_the_next_one() {
        let mut c = Coalescer::default();
        let start = Instant::now();
        // Thousands of nicknames, each with something held back.
        for i in 0..2000 {
            let nick = format!("sock{i}");
            c.admit(notice(&nick, "hi"), start);
            c.admit(notice(&nick, "hi again"), start);
        }
        assert!(c.recent.len() <= TRACKED);
        // Once the burst is over, a friend is heard again.
        let friend = c.admit(notice("друг", "привет"), start + QUIET);
        assert_eq!(friend.map(|n| n.body).as_deref(), Some("привет"));
    }

    #[test]
    fn markup_in_a_body_is_shown_as_text() {
        assert_eq!(
            markup_escaped("<a href=\"x\">клик</a> & <img src=y>"),
            "&lt;a href=\"x\"&gt;клик&lt;/a&gt; &amp; &lt;img src=y&gt;"
        );
        assert!(matches!(
            markup_escaped("שלום 👋"),
            std::borrow::Cow::Borrowed(_)
        ));
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
