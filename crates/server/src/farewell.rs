//! A client's last line and the TLS close in one write.
//!
//! ```text
//! writer task: last queued line ─→ Farewell::queue_farewell ─→ rustls buffer
//!                                   (+ close_notify if it all fit)
//!              shutdown() ─────────→ one write carries both
//! ```
//!
//! A kicked or banned client's `KICK` line and the `close_notify` then leave
//! in one TCP segment instead of two, which matters when thousands close at
//! once (a shutdown, a mass ban).

use std::io;

use tlschat_protocol::connection::WriteHalf;
use tokio::io::{AsyncRead, AsyncWrite};

/// A writer that can put its last bytes and its orderly close into one
/// write: the caller then only has to `shutdown()`.
pub(crate) trait Farewell: AsyncWrite + Unpin {
    /// Queues a prefix of `last`, without writing, followed by the close
    /// if all of it fit; returns how much was queued. The caller writes
    /// the rest (if any), then calls `shutdown()`, which sends what was
    /// queued. The default queues nothing.
    fn queue_farewell(&mut self, last: &[u8]) -> usize {
        let _ = last;
        0
    }
}

/// In-memory pipes stand in for sockets in tests; they have no TLS to close.
#[cfg(test)]
impl Farewell for tokio::io::DuplexStream {}

impl<IO: AsyncRead + AsyncWrite + Unpin> Farewell
    for WriteHalf<tokio_rustls::server::TlsStream<IO>>
{
    fn queue_farewell(&mut self, last: &[u8]) -> usize {
        self.with_stream(|stream| {
            let (_, tls) = stream.get_mut();
            // Something already waiting to go out goes first, the usual way.
            if tls.wants_write() {
                return 0;
            }
            // Encrypts into rustls's outgoing buffer; bounded by its buffer
            // limit, so a huge line may only partly fit.
            let queued = io::Write::write(&mut tls.writer(), last).unwrap_or(0);
            if queued == last.len() {
                tls.send_close_notify();
            }
            queued
        })
    }
}
