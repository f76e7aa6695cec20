//! Links the system hands to the running window: an [`Inbox`] that any
//! thread pushes to and the app drains at the start of every frame.
//!
//! ```text
//! macOS GURL Apple Event (macos_url.rs) ─push─▶ Inbox ─drain─▶ App (each frame)
//!                      push also asks the window to repaint ──┘
//! ```
//!
//! On Linux and Windows a clicked link starts the program with the link as
//! its argument (`.desktop` `%u`, the registry's `-- "%1"`), which `cli.rs`
//! reads; only macOS delivers links to a running app, and it does so here.
//! The inbox itself knows no platform, so the tests drive it everywhere.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

/// Links kept while the window has not drained them: a person clicks a
/// few; past this the oldest go (another program could send thousands).
pub const KEPT: usize = 16;

/// Links waiting for the window, oldest first, and the window to wake.
#[derive(Default)]
pub struct Inbox {
    links: Mutex<VecDeque<String>>,
    ctx: Mutex<Option<egui::Context>>,
}

impl Inbox {
    /// Queues `link` and wakes the window if it is known yet (a link that
    /// arrives before it is taken at its first frame).
    pub fn push(&self, link: String) {
        {
            let mut links = lock(&self.links);
            if links.len() >= KEPT {
                links.pop_front();
            }
            links.push_back(link);
        }
        if let Some(ctx) = lock(&self.ctx).as_ref() {
            ctx.request_repaint();
        }
    }

    /// The window to wake from now on; wakes it at once for any link
    /// already waiting.
    pub fn attach(&self, ctx: &egui::Context) {
        *lock(&self.ctx) = Some(ctx.clone());
        if !lock(&self.links).is_empty() {
            ctx.request_repaint();
        }
    }

    /// Every waiting link, oldest first.
    pub fn drain(&self) -> Vec<String> {
        lock(&self.links).drain(..).collect()
    }
}

/// The process's inbox: the one the macOS event handler fills and the
/// real window drains (tests give each app an inbox of its own).
pub fn global() -> Arc<Inbox> {
    static INBOX: OnceLock<Arc<Inbox>> = OnceLock::new();
    Arc::clone(INBOX.get_or_init(Arc::default))
}

/// A poisoned lock still holds whole links (each push is one call), so it
/// is used as it is.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_come_out_in_order_and_a_flood_keeps_the_newest() {
        let inbox = Inbox::default();
        inbox.push("tlschat://a".into());
        inbox.push("tlschat://б".into());
        assert_eq!(inbox.drain(), ["tlschat://a", "tlschat://б"]);
        assert!(inbox.drain().is_empty());
        for i in 0..KEPT + 3 {
            inbox.push(format!("tlschat://{i}"));
        }
        let kept = inbox.drain();
        assert_eq!(kept.len(), KEPT);
        assert_eq!(kept.first().map(String::as_str), Some("tlschat://3"));
        assert_eq!(
            kept.last().cloned(),
            Some(format!("tlschat://{}", KEPT + 2))
        );
    }

    #[test]
    fn a_link_wakes_the_window_once_it_is_known() {
        let ctx = egui::Context::default();
        let settle = || {
            for _ in 0..3 {
                let mut out = ctx.run_ui(Default::default(), |_| {});
                out.textures_delta.clear();
            }
        };
        let inbox = Inbox::default();
        inbox.push("tlschat://early".into());
        settle();
        assert!(!ctx.has_requested_repaint());
        inbox.attach(&ctx);
        assert!(ctx.has_requested_repaint(), "a link was waiting");
        settle();
        assert!(!ctx.has_requested_repaint());
        inbox.push("tlschat://late".into());
        assert!(ctx.has_requested_repaint());
        assert_eq!(inbox.drain(), ["tlschat://early", "tlschat://late"]);
    }
}
