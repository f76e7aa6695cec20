//! Each client's outgoing path: a queue of encoded lines, bounded in bytes,
//! and the writer task that drains it into the socket.
//!
//! The hub never writes to a socket. It [`Outbox::send`]s a shared `Bytes`
//! into a client's queue; the client's writer task ([`run_writer`]) takes
//! whatever is queued, coalesces it into one write and flushes. A client
//! that stops reading fills its queue, the next `send` fails, and the hub
//! drops that client: nobody else ever waits for it.
//!
//! The bound counts bytes, not lines: a burst of 500 short `JOIN`s is no
//! threat, while a few huge `USERS` lines are memory. Bytes count from the
//! moment they are queued until the writer has handed them to TLS.
//!
//! Closing comes in two strengths, both signalled with tokens so that the
//! peer's reader loop sees them too:
//! - `close`: deliver what is queued (bounded by [`DRAIN_LIMIT`]), then an
//!   orderly TLS close. Used for `/quit`, kicks and server shutdown.
//! - `abort`: drop the queue and the socket now. Used for a client whose
//!   queue overflowed (it is not reading, so draining would only wait).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// How long a closing writer may spend delivering what is still queued.
pub const DRAIN_LIMIT: Duration = Duration::from_secs(2);

/// Stop coalescing once a batch holds this many bytes: one TLS record's worth.
const BATCH_BYTES: usize = 16 * 1024;

/// The sending side of a client's queue, held by the hub.
#[derive(Debug, Clone)]
pub struct Outbox {
    tx: mpsc::UnboundedSender<Bytes>,
    queued: Arc<AtomicUsize>,
    limit: usize,
    close: CancellationToken,
    abort: CancellationToken,
}

/// The queue was full: the client is not keeping up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overflow;

impl Outbox {
    /// Queues a line without waiting, or reports [`Overflow`] if it would
    /// take the queue past its byte limit (a line larger than the limit
    /// still goes into an empty queue). `Ok` also when the client is
    /// already closed: the line is then dropped, which is what a closed
    /// client's line deserves.
    pub fn send(&self, line: Bytes) -> Result<(), Overflow> {
        let len = line.len();
        let before = self.queued.fetch_add(len, Ordering::Relaxed);
        if before > 0 && before.saturating_add(len) > self.limit {
            self.queued.fetch_sub(len, Ordering::Relaxed);
            return Err(Overflow);
        }
        if self.tx.send(line).is_err() {
            self.queued.fetch_sub(len, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Deliver what is queued, then close.
    pub fn close(&self) {
        self.close.cancel();
    }

    /// Close now, dropping what is queued.
    pub fn abort(&self) {
        self.abort.cancel();
    }

    /// Resolves once the client is closing (either way): the reader loop
    /// waits on this.
    pub fn closing(&self) -> tokio_util::sync::WaitForCancellationFuture<'_> {
        self.close.cancelled()
    }

    pub fn is_closing(&self) -> bool {
        self.close.is_cancelled()
    }
}

/// The receiving side, owned by the writer task.
#[derive(Debug)]
pub struct Inbox {
    rx: mpsc::UnboundedReceiver<Bytes>,
    queued: Arc<AtomicUsize>,
    close: CancellationToken,
    abort: CancellationToken,
}

/// A queue for one client that holds up to `limit_bytes` of lines (`0`: no
/// limit).
pub fn channel(limit_bytes: usize) -> (Outbox, Inbox) {
    // Unbounded as a channel, bounded in bytes by `Outbox::send`.
    let (tx, rx) = mpsc::unbounded_channel();
    let queued = Arc::new(AtomicUsize::new(0));
    let abort = CancellationToken::new();
    // Aborting implies closing, so the reader loop only has to watch `close`.
    let close = abort.child_token();
    (
        Outbox {
            tx,
            queued: queued.clone(),
            // 0 switches the limit off, like every limit.
            limit: if limit_bytes == 0 {
                usize::MAX
            } else {
                limit_bytes
            },
            close: close.clone(),
            abort: abort.clone(),
        },
        Inbox {
            rx,
            queued,
            close,
            abort,
        },
    )
}

/// Drains `inbox` into `writer` until the client is closed or aborted.
/// Returns the write error, if the socket failed first.
pub async fn run_writer<W>(mut inbox: Inbox, mut writer: W) -> std::io::Result<()>
where
    W: AsyncWrite + Unpin,
{
    let mut batch: Vec<u8> = Vec::new();
    // Set once closing begins: everything after it must be done by then.
    let mut drain_deadline = None;
    loop {
        let first = tokio::select! {
            biased;
            _ = inbox.abort.cancelled() => return Ok(()),
            _ = inbox.close.cancelled() => break,
            line = inbox.rx.recv() => match line {
                Some(line) => line,
                None => break,
            },
        };
        let closed_at = {
            let bytes = collect_batch(&mut inbox.rx, first, &mut batch);
            let len = bytes.len();
            let write = write_flush(&mut writer, bytes);
            tokio::pin!(write);
            let closing = tokio::select! {
                biased;
                _ = inbox.abort.cancelled() => return Ok(()),
                r = &mut write => {
                    r?;
                    inbox.queued.fetch_sub(len, Ordering::Relaxed);
                    false
                }
                // A client that does not read can block this write forever:
                // once closing, the write in progress gets the drain bound
                // too (finished, not cut, so no line leaves half-written).
                _ = inbox.close.cancelled() => true,
            };
            if closing {
                let deadline = tokio::time::Instant::now() + DRAIN_LIMIT;
                tokio::select! {
                    biased;
                    _ = inbox.abort.cancelled() => return Ok(()),
                    r = tokio::time::timeout_at(deadline, write) => match r {
                        Ok(r) => r?,
                        Err(_) => return Ok(()),
                    },
                }
                Some(deadline)
            } else {
                None
            }
        };
        if closed_at.is_some() {
            drain_deadline = closed_at;
            break;
        }
        if inbox.rx.is_empty() {
            release(&mut batch);
        }
    }
    // Closing: deliver what is already queued, within a bound, then close TLS.
    inbox.rx.close();
    let drain = async {
        while let Some(first) = inbox.rx.recv().await {
            let bytes = collect_batch(&mut inbox.rx, first, &mut batch);
            write_flush(&mut writer, bytes).await?;
        }
        writer.shutdown().await
    };
    let deadline = drain_deadline.unwrap_or_else(|| tokio::time::Instant::now() + DRAIN_LIMIT);
    tokio::select! {
        biased;
        _ = inbox.abort.cancelled() => Ok(()),
        r = tokio::time::timeout_at(deadline, drain) => r.unwrap_or(Ok(())),
    }
}

/// One line alone is written as is; several queued lines are copied into
/// `batch` so they leave in one TLS record and one syscall.
fn collect_batch<'a>(
    rx: &mut mpsc::UnboundedReceiver<Bytes>,
    first: Bytes,
    batch: &'a mut Vec<u8>,
) -> Batch<'a> {
    let Ok(second) = rx.try_recv() else {
        return Batch::One(first);
    };
    batch.clear();
    batch.extend_from_slice(&first);
    batch.extend_from_slice(&second);
    while batch.len() < BATCH_BYTES {
        match rx.try_recv() {
            Ok(line) => batch.extend_from_slice(&line),
            Err(_) => break,
        }
    }
    Batch::Many(batch)
}

enum Batch<'a> {
    One(Bytes),
    Many(&'a [u8]),
}

impl Batch<'_> {
    fn len(&self) -> usize {
        match self {
            Batch::One(b) => b.len(),
            Batch::Many(b) => b.len(),
        }
    }
}

async fn write_flush<W: AsyncWrite + Unpin>(w: &mut W, batch: Batch<'_>) -> std::io::Result<()> {
    match batch {
        Batch::One(b) => w.write_all(&b).await?,
        Batch::Many(b) => w.write_all(b).await?,
    }
    w.flush().await
}

/// Once the queue is drained the client may stay idle for hours: it should
/// not keep the buffer its last burst (e.g. the login's JOIN/USERS) grew.
/// Allocating it again for the next burst costs far less than the write.
fn release(batch: &mut Vec<u8>) {
    if batch.capacity() > 0 {
        *batch = Vec::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn delivers_in_order_and_drains_on_close() {
        let (out, inbox) = channel(1024);
        let (w, mut r) = tokio::io::duplex(1024);
        let task = tokio::spawn(run_writer(inbox, w));
        for i in 0..5 {
            out.send(Bytes::from(format!("line {i}\n"))).unwrap();
        }
        out.close();
        task.await.unwrap().unwrap();
        let mut got = String::new();
        r.read_to_string(&mut got).await.unwrap();
        assert_eq!(got, "line 0\nline 1\nline 2\nline 3\nline 4\n");
    }

    #[tokio::test]
    async fn full_queue_overflows_instead_of_waiting() {
        let (out, _inbox) = channel(4);
        assert!(out.send(Bytes::from_static(b"a\n")).is_ok());
        assert!(out.send(Bytes::from_static(b"b\n")).is_ok());
        assert_eq!(out.send(Bytes::from_static(b"c\n")), Err(Overflow));
    }

    #[tokio::test]
    async fn the_limit_counts_bytes_and_frees_them_once_written() {
        let (out, inbox) = channel(10);
        // A line larger than the whole limit still goes into an empty queue.
        out.send(Bytes::from(vec![b'x'; 50])).unwrap();
        assert_eq!(out.send(Bytes::from_static(b"y\n")), Err(Overflow));
        let (w, mut r) = tokio::io::duplex(1024);
        let task = tokio::spawn(run_writer(inbox, w));
        let mut got = vec![0u8; 50];
        r.read_exact(&mut got).await.unwrap();
        // Written: the bytes no longer count.
        tokio::time::timeout(Duration::from_secs(5), async {
            while out.send(Bytes::from_static(b"0123456789")).is_err() {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("written bytes are released");
        out.close();
        task.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn close_bounds_a_write_stuck_on_a_full_socket() {
        let (out, inbox) = channel(4096);
        // A tiny pipe nobody reads: the writer blocks on it.
        let (w, _r) = tokio::io::duplex(8);
        let task = tokio::spawn(run_writer(inbox, w));
        for _ in 0..10 {
            out.send(Bytes::from_static(b"0123456789\n")).unwrap();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        out.close();
        tokio::time::timeout(DRAIN_LIMIT + Duration::from_secs(1), task)
            .await
            .expect("a closing writer gives up after DRAIN_LIMIT")
            .unwrap()
            .unwrap();
    }

    #[tokio::test]
    async fn abort_stops_a_writer_stuck_on_a_full_socket() {
        let (out, inbox) = channel(4096);
        // A tiny pipe nobody reads: the writer blocks on it.
        let (w, _r) = tokio::io::duplex(8);
        let task = tokio::spawn(run_writer(inbox, w));
        for _ in 0..10 {
            out.send(Bytes::from_static(b"0123456789\n")).unwrap();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        out.abort();
        assert!(out.is_closing());
        tokio::time::timeout(Duration::from_secs(1), task)
            .await
            .expect("writer must stop at once")
            .unwrap()
            .unwrap();
    }
}
