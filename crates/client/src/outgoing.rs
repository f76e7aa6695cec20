//! Lines on their way to the server: the session's write queue, with one
//! write in flight at a time so reading and deadlines go on while a
//! server does not read.

use std::future::Future;
use std::io;
use std::pin::Pin;

use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

/// Bytes of user lines the session holds for a server that is slow to read;
/// past it, user input waits (back-pressure up to the [`ClientHandle`]).
///
/// [`ClientHandle`]: crate::ClientHandle
const OUTGOING_BYTES: usize = 64 * 1024;

/// A write that owns the write half and gives it back with its result.
type WriteInFlight<W> = Pin<Box<dyn Future<Output = (W, io::Result<()>)> + Send>>;

/// Lines on their way to the server. One write is in flight at a time, as
/// a future that owns the write half and hands it back when done, so the
/// session goes on reading and keeps its deadlines while a write waits for
/// a server that does not read.
pub(crate) struct Outgoing<W> {
    idle: Option<W>,
    in_flight: Option<WriteInFlight<W>>,
    /// When the write in flight began.
    started: Option<Instant>,
    /// Lines (with their `\n`) waiting for the next write.
    queue: Vec<u8>,
}

impl<W: AsyncWrite + Unpin + Send + 'static> Outgoing<W> {
    pub(crate) fn new(writer: W) -> Outgoing<W> {
        Outgoing {
            idle: Some(writer),
            in_flight: None,
            started: None,
            queue: Vec::new(),
        }
    }

    /// Queues one line and starts writing if no write is in flight.
    pub(crate) fn push(&mut self, line: &str) {
        self.queue.extend_from_slice(line.as_bytes());
        self.queue.push(b'\n');
        self.start();
    }

    /// Room for more user lines (the session's own lines always fit).
    pub(crate) fn has_room(&self) -> bool {
        self.queue.len() < OUTGOING_BYTES
    }

    /// Since when the write in flight has been waiting, if there is one.
    pub(crate) fn stalled_since(&self) -> Option<Instant> {
        self.started
    }

    fn start(&mut self) {
        if self.queue.is_empty() {
            return;
        }
        let Some(mut writer) = self.idle.take() else {
            return;
        };
        let bytes = std::mem::take(&mut self.queue);
        self.started = Some(Instant::now());
        self.in_flight = Some(Box::pin(async move {
            let result = async {
                writer.write_all(&bytes).await?;
                writer.flush().await
            }
            .await;
            (writer, result)
        }));
    }

    /// Finishes the write in flight and starts the next; never resolves
    /// while nothing is in flight. Cancel-safe: the write lives in `self`.
    pub(crate) async fn progress(&mut self) -> io::Result<()> {
        let Some(write) = self.in_flight.as_mut() else {
            return std::future::pending().await;
        };
        let (writer, result) = write.await;
        self.in_flight = None;
        self.started = None;
        self.idle = Some(writer);
        result?;
        self.start();
        Ok(())
    }
}
