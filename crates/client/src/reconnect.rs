//! After a lost connection: wait with backoff, answer user lines meanwhile
//! (`/quit` ends the session, anything else is not sent), and connect
//! again until it works or a decision (refused, banned, untrusted) ends
//! the session.

use std::time::Duration;

use rand::Rng;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::connect::connect;
use crate::input::is_quit;
use crate::login::Connected;
use crate::session::close;
use crate::state::EntryKind;
use crate::ClientOptions;
use crate::{ClientEvent, CloseReason};
use tlschat_protocol::ErrorCode;

/// Backoff 1 s doubling to 30 s, ±20 % jitter, until a connection is back
/// or a decision (refused, banned, untrusted, user quit) ends the session.
pub(crate) async fn reconnect(
    opts: &ClientOptions,
    mut reason: String,
    commands: &mut mpsc::Receiver<String>,
    events: &mpsc::Sender<ClientEvent>,
) -> Option<Connected> {
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let delay = backoff(attempt);
        let _ = events
            .send(ClientEvent::Reconnecting {
                reason: reason.clone(),
                delay,
                attempt,
            })
            .await;
        let wake = Instant::now() + delay;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(wake) => break,
                cmd = commands.recv() => match cmd {
                    None => return None,
                    Some(line) if is_quit(&line) => {
                        close(events, CloseReason::Quit).await;
                        return None;
                    }
                    Some(_) => {
                        let _ = events.send(ClientEvent::Line(EntryKind::Error {
                            code: ErrorCode::Timeout.to_string(),
                            text: "not connected: the line was not sent".into(),
                        })).await;
                    }
                },
            }
        }
        match connect(opts, None).await {
            Ok(c) => return Some(c),
            Err(e) if e.is_transient() => reason = e.to_string(),
            Err(e) => {
                close(events, CloseReason::from_error(e)).await;
                return None;
            }
        }
    }
}

/// The delay before reconnect attempt `n` (1-based).
pub(crate) fn backoff(attempt: u32) -> Duration {
    let base = 1u64 << attempt.saturating_sub(1).min(5);
    let secs = base.min(30) as f64;
    let jitter = rand::rng().random_range(0.8..1.2);
    Duration::from_secs_f64(secs * jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_thirty_seconds_with_jitter() {
        for (attempt, base) in [
            (1, 1.0),
            (2, 2.0),
            (3, 4.0),
            (5, 16.0),
            (6, 30.0),
            (20, 30.0),
        ] {
            let d = backoff(attempt).as_secs_f64();
            assert!(d >= base * 0.8 && d <= base * 1.2, "attempt {attempt}: {d}");
        }
    }
}
