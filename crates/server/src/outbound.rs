//! Each client's outgoing path: a queue of encoded lines, bounded in bytes,
//! and the writer task that drains it into the socket.
//!
//! Neither the hub nor a client's peer task writes to a socket. They
//! [`Outbox::send`] a shared `Bytes` into a client's queue (the hub what
//! others cause, the peer its own client's replies and errors); the
//! client's writer task ([`run_writer`]: [`next_batch`] under the queue's
//! lock, then [`write_batch`]) takes whatever is queued, coalesces it into
//! one write and flushes. A client that stops reading fills its queue, the
//! next `send` fails, and the hub drops that client: nobody else ever
//! waits for it.
//!
//! The bound counts bytes, not lines: a burst of 500 short `JOIN`s is no
//! threat, while a few huge `USERS` lines are memory. Bytes count from the
//! moment they are queued until the writer has handed them to TLS.
//!
//! The queue is a `VecDeque` behind a mutex that only `send` and the writer
//! take, each for a few pointer moves, plus a [`Notify`] that wakes the writer
//! when a line lands in an empty queue. A general-purpose channel would do,
//! but it keeps a block of slots per client for good; this queue holds no
//! allocation at all while a client is idle, which is most clients most of
//! the time (see docs/performance.md).
//!
//! Private lines (`PRIVMSG`, sent with [`Outbox::send_private`]) are one
//! sender pushing at one recipient, so they are held to shares of the queue
//! instead: what one sender address has queued for a recipient is at most
//! [`SENDER_SHARE`] of the limit, all private lines together at most
//! [`PRIVATE_SHARE`]. Past a share the *sender* is told [`Busy`] and the
//! line is not queued; a private line never makes the recipient overflow.
//! Whatever private lines fill, lines everyone gets (room traffic, server
//! replies) keep at least the rest of the queue, and only those overflow
//! it: a recipient is dropped only for not keeping up with what everyone
//! gets. The shares are kept on the side ([`Shares`], allocated while
//! private lines are queued), so a broadcast line costs one more addition.
//!
//! Closing comes in two strengths; the peer's reader loop waits on
//! [`Outbox::closing`] to see either:
//! - `close`: deliver what is queued (bounded by [`DRAIN_LIMIT`]), then an
//!   orderly TLS close. Used for `/quit`, kicks and server shutdown, and
//!   implied when the last `Outbox` is dropped.
//! - `abort`: drop the queue and the socket now. Used for a client whose
//!   queue overflowed (it is not reading, so draining would only wait).

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::farewell::Farewell;

/// How long a closing writer may spend delivering what is still queued.
pub const DRAIN_LIMIT: Duration = Duration::from_secs(2);

/// Stop coalescing once a batch holds this many bytes: one TLS record's worth.
const BATCH_BYTES: usize = 16 * 1024;

/// A drained queue keeps at most this many slots (a few pointers); a burst's
/// bigger allocation goes back to the allocator.
const KEEP_SLOTS: usize = 4;

/// The part of a client's queue (limit ÷ this) that private lines from one
/// sender address may take.
pub(crate) const SENDER_SHARE: usize = 32;

/// The part of a client's queue (limit ÷ this) that private lines from all
/// senders together may take.
pub(crate) const PRIVATE_SHARE: usize = 2;

const OPEN: u8 = 0;
const CLOSING: u8 = 1;
const ABORTED: u8 = 2;

/// What the hub, the reader loop and the writer task share for one client.
#[derive(Debug)]
struct Shared {
    queue: Mutex<Queue>,
    /// `OPEN`, `CLOSING` or `ABORTED`; only ever moves forward.
    state: AtomicU8,
    /// Live `Outbox` handles: the last one dropped means `close`.
    senders: AtomicUsize,
    /// Wakes the writer: a line arrived in an empty queue, or the state moved.
    to_writer: Notify,
    /// Wakes whoever waits in [`Outbox::closing`].
    to_reader: Notify,
    limit: usize,
}

#[derive(Debug, Default)]
struct Queue {
    lines: VecDeque<Bytes>,
    /// Bytes queued plus bytes taken by the writer and not yet written.
    bytes: usize,
    /// Private lines not yet written, by sender; `None` while there are none.
    shares: Option<Box<Shares>>,
    /// Set by the writer once it drains for closing: later lines are dropped.
    sealed: bool,
    /// Set by the hub before the line that ends the client (a `KICK`):
    /// from then on the client's own replies are dropped, so none follows it.
    replies_ended: bool,
}

impl Queue {
    /// The writer handed `len` more bytes to TLS: they no longer count, and
    /// private lines that are now written give their share back.
    fn release(&mut self, len: usize) {
        self.bytes -= len;
        if let Some(shares) = &mut self.shares {
            shares.release(len);
            if shares.lines.is_empty() {
                self.shares = None;
            }
        }
    }
}

/// The private lines in a client's queue: how many bytes each sender has
/// there, and where each line ends (counted in bytes the writer releases
/// from the moment these shares exist) so that it is given back once
/// written. Counting only while private lines are queued keeps the
/// broadcast path free of this bookkeeping.
#[derive(Debug, Default)]
struct Shares {
    /// Sender address → bytes of its private lines still queued. Keyed by
    /// addresses peers choose: the standard keyed hasher.
    by_sender: HashMap<IpAddr, usize>,
    /// `(end, sender, length)` of each private line, in queue order.
    lines: VecDeque<(u64, IpAddr, usize)>,
    /// All private bytes still queued.
    total: usize,
    /// Bytes the writer released since these shares exist.
    released: u64,
}

impl Shares {
    fn of(&self, sender: IpAddr) -> usize {
        self.by_sender.get(&sender).copied().unwrap_or(0)
    }

    /// Records a private line queued behind `ahead` bytes (queued or taken
    /// by the writer and not yet released).
    fn add(&mut self, ahead: usize, sender: IpAddr, len: usize) {
        let end = self.released + (ahead + len) as u64;
        *self.by_sender.entry(sender).or_insert(0) += len;
        self.lines.push_back((end, sender, len));
        self.total += len;
    }

    /// The writer released `len` more bytes: gives back the share of every
    /// private line that is now written.
    fn release(&mut self, len: usize) {
        self.released += len as u64;
        while let Some(&(end, sender, len)) = self.lines.front() {
            if end > self.released {
                break;
            }
            self.lines.pop_front();
            self.total -= len;
            if let Some(n) = self.by_sender.get_mut(&sender) {
                *n -= len;
                if *n == 0 {
                    self.by_sender.remove(&sender);
                }
            }
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // Nothing panics while holding it; if something did, the queue is
        // still a valid queue.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn state(&self) -> u8 {
        self.state.load(Ordering::Acquire)
    }

    /// Appends a line that passed its checks and wakes the writer if it
    /// may be waiting.
    fn push(&self, mut q: MutexGuard<'_, Queue>, line: Bytes) {
        let len = line.len();
        q.bytes += len;
        let was_empty = q.lines.is_empty();
        q.lines.push_back(line);
        drop(q);
        // Only an empty queue can have a writer waiting for it.
        if was_empty {
            self.to_writer.notify_one();
        }
    }

    /// Moves the state forward to `to` and wakes both sides.
    fn advance(&self, to: u8) {
        if self.state.fetch_max(to, Ordering::AcqRel) < to {
            self.to_writer.notify_one();
            self.to_reader.notify_waiters();
        }
    }
}

/// The sending side of a client's queue, held by the hub (and the peer).
#[derive(Debug)]
pub(crate) struct Outbox {
    shared: Arc<Shared>,
}

/// The queue was full: the client is not keeping up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Overflow;

/// A private line was refused: its sender (or private lines altogether)
/// already hold their share of the recipient's queue. The sender is told;
/// the recipient keeps its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Busy;

impl Outbox {
    /// Queues a line without waiting, or reports [`Overflow`] if it would
    /// take the queue past its byte limit (a line larger than the limit
    /// still goes into an empty queue). `Ok` also when the client is
    /// already closed: the line is then dropped, which is what a closed
    /// client's line deserves.
    pub(crate) fn send(&self, line: Bytes) -> Result<(), Overflow> {
        self.queue(self.shared.lock(), line)
    }

    /// [`Outbox::send`] under the queue's lock `q`.
    fn queue(&self, q: MutexGuard<'_, Queue>, line: Bytes) -> Result<(), Overflow> {
        let shared = &*self.shared;
        if q.sealed || shared.state() == ABORTED {
            return Ok(());
        }
        let len = line.len();
        if q.bytes > 0 && q.bytes.saturating_add(len) > shared.limit {
            return Err(Overflow);
        }
        shared.push(q, line);
        Ok(())
    }

    /// Queues a private line from `sender` (an address, see the module
    /// docs), or reports [`Busy`] if the sender's share, the share of all
    /// private lines or the queue itself has no room for it. Never
    /// [`Overflow`]: a private line alone never drops the recipient. Into
    /// an empty queue any line goes, like with [`Outbox::send`].
    pub(crate) fn send_private(&self, line: Bytes, sender: IpAddr) -> Result<(), Busy> {
        let shared = &*self.shared;
        let mut q = shared.lock();
        if q.sealed || shared.state() == ABORTED {
            return Ok(());
        }
        let len = line.len();
        if q.bytes > 0 {
            let fits = |used: usize, share: usize| used == 0 || used.saturating_add(len) <= share;
            let (mine, private) = q
                .shares
                .as_ref()
                .map_or((0, 0), |s| (s.of(sender), s.total));
            if !fits(q.bytes, shared.limit)
                || !fits(mine, shared.limit / SENDER_SHARE)
                || !fits(private, shared.limit / PRIVATE_SHARE)
            {
                return Err(Busy);
            }
        }
        let ahead = q.bytes;
        q.shares
            .get_or_insert_with(Box::default)
            .add(ahead, sender, len);
        shared.push(q, line);
        Ok(())
    }

    /// Queues a reply to the client's own line (an `ERROR`, `PONG`, `/help`),
    /// which its peer sends without the hub's lock: like [`Outbox::send`],
    /// but dropped once [`Outbox::end_replies`] ran or the client is
    /// closing. Checked under the queue's lock, so a reply is queued either
    /// before the hub's last line or not at all.
    pub(crate) fn send_reply(&self, line: Bytes) -> Result<(), Overflow> {
        let q = self.shared.lock();
        if q.replies_ended || self.shared.state() != OPEN {
            return Ok(());
        }
        self.queue(q, line)
    }

    /// The hub is about to queue the line that ends this client: no reply
    /// of the client's own may come after it.
    pub(crate) fn end_replies(&self) {
        self.shared.lock().replies_ended = true;
    }

    /// Deliver what is queued, then close.
    pub(crate) fn close(&self) {
        self.shared.advance(CLOSING);
    }

    /// Close now, dropping what is queued.
    pub(crate) fn abort(&self) {
        self.shared.advance(ABORTED);
    }

    /// Resolves once the client is closing (either way): the reader loop
    /// waits on this.
    pub(crate) async fn closing(&self) {
        let shared = &*self.shared;
        loop {
            let notified = shared.to_reader.notified();
            tokio::pin!(notified);
            // Registered before the check, so a close in between still wakes us.
            notified.as_mut().enable();
            if shared.state() != OPEN {
                return;
            }
            notified.await;
        }
    }

    #[cfg(test)]
    pub(crate) fn is_closing(&self) -> bool {
        self.shared.state() != OPEN
    }
}

impl Clone for Outbox {
    fn clone(&self) -> Outbox {
        self.shared.senders.fetch_add(1, Ordering::Relaxed);
        Outbox {
            shared: self.shared.clone(),
        }
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        if self.shared.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.shared.advance(CLOSING);
        }
    }
}

/// The receiving side, owned by the writer task.
#[derive(Debug)]
pub(crate) struct Inbox {
    shared: Arc<Shared>,
}

/// The hub's tests read what a client would receive straight from its
/// queue: no writer task, no socket.
#[cfg(test)]
impl Inbox {
    /// Every line queued since the last call, without its newline.
    pub(crate) fn take_lines(&self) -> Vec<String> {
        let mut q = self.shared.lock();
        let lines: Vec<Bytes> = q.lines.drain(..).collect();
        for line in &lines {
            q.release(line.len());
        }
        lines
            .iter()
            .map(|l| String::from_utf8_lossy(l).trim_end_matches('\n').to_owned())
            .collect()
    }
}

/// A queue for one client that holds up to `limit_bytes` of lines (`0`: no
/// limit).
pub(crate) fn channel(limit_bytes: usize) -> (Outbox, Inbox) {
    let shared = Arc::new(Shared {
        queue: Mutex::new(Queue::default()),
        state: AtomicU8::new(OPEN),
        senders: AtomicUsize::new(1),
        to_writer: Notify::new(),
        to_reader: Notify::new(),
        // 0 switches the limit off, like every limit.
        limit: if limit_bytes == 0 {
            usize::MAX
        } else {
            limit_bytes
        },
    });
    (
        Outbox {
            shared: shared.clone(),
        },
        Inbox { shared },
    )
}

/// Drains `inbox` into `writer` until the client is closed or aborted.
/// Returns the write error, if the socket failed first.
pub(crate) async fn run_writer<W>(inbox: Inbox, mut writer: W) -> std::io::Result<()>
where
    W: Farewell,
{
    let shared = &*inbox.shared;
    let mut batch: Vec<u8> = Vec::new();
    // Set once closing begins: everything after it must be done by then.
    let mut drain_deadline: Option<Instant> = None;
    let deadline = loop {
        let (bytes, last) = match next_batch(shared, &mut batch, &mut drain_deadline) {
            Next::Write(bytes, last) => (bytes, last),
            Next::Idle => {
                release(&mut batch);
                shared.to_writer.notified().await;
                continue;
            }
            Next::Drained(deadline) => break deadline,
            Next::Aborted => return Ok(()),
        };
        let len = bytes.as_slice().len();
        let written = write_batch(
            shared,
            &mut writer,
            bytes.as_slice(),
            last,
            &mut drain_deadline,
        );
        if !written.await? {
            return Ok(());
        }
        shared.lock().release(len);
    };
    // Closing and drained: an orderly TLS close, within the same bound.
    until_aborted(shared, tokio::time::timeout_at(deadline, writer.shutdown()))
        .await
        .map_or(Ok(()), |r| r.unwrap_or(Ok(())))
}

/// What the writer does next.
enum Next<'a> {
    /// Write this batch; `true` if it is the last thing ever sent.
    Write(Batch<'a>, bool),
    /// Nothing queued: wait for a line or a close.
    Idle,
    /// Closing and nothing left: close the connection by this deadline.
    Drained(Instant),
    /// Aborted: stop now.
    Aborted,
}

/// One section under the queue's lock: seals the queue once closing
/// begins (starting the drain bound), then takes what is queued.
fn next_batch<'a>(
    shared: &Shared,
    batch: &'a mut Vec<u8>,
    drain_deadline: &mut Option<Instant>,
) -> Next<'a> {
    let mut q = shared.lock();
    match shared.state() {
        ABORTED => return Next::Aborted,
        CLOSING if !q.sealed => {
            q.sealed = true;
            start_drain(drain_deadline);
        }
        _ => {}
    }
    match (take_batch(&mut q, batch), *drain_deadline) {
        // Sealed and now empty: this batch is the last thing ever sent.
        (Some(bytes), _) => Next::Write(bytes, q.sealed && q.lines.is_empty()),
        (None, Some(deadline)) => Next::Drained(deadline),
        (None, None) => Next::Idle,
    }
}

/// Writes one batch; the `last` one goes into the TLS session with the
/// close where it fits (see [`Farewell`]), so the shutdown sends both in
/// one write and only what did not fit is written here. `false` if the
/// client was aborted or the drain bound passed first: the writer stops.
async fn write_batch<W: Farewell>(
    shared: &Shared,
    writer: &mut W,
    bytes: &[u8],
    last: bool,
    drain_deadline: &mut Option<Instant>,
) -> std::io::Result<bool> {
    let queued = if last {
        writer.queue_farewell(bytes)
    } else {
        0
    };
    let rest = &bytes[queued..];
    if rest.is_empty() {
        return Ok(true);
    }
    let write = write_flush(writer, rest);
    tokio::pin!(write);
    // A client that does not read can block this write forever: abort
    // stops it at once, and once closing, the write in progress gets the
    // drain bound too (finished, not cut, so no line leaves half-written).
    loop {
        let expired = async {
            match *drain_deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            r = &mut write => return r.map(|()| true),
            _ = shared.to_writer.notified() => match shared.state() {
                ABORTED => return Ok(false),
                CLOSING => start_drain(drain_deadline),
                // A new line: taken after this write.
                _ => {}
            },
            _ = expired => return Ok(false),
        }
    }
}

/// Closing began: from the first time it is seen (in the middle of a write
/// or when the queue is sealed), the rest gets [`DRAIN_LIMIT`], once.
fn start_drain(deadline: &mut Option<Instant>) {
    deadline.get_or_insert_with(|| Instant::now() + DRAIN_LIMIT);
}

/// `fut`'s output, or `None` if the client is aborted first.
async fn until_aborted<F: std::future::Future>(shared: &Shared, fut: F) -> Option<F::Output> {
    tokio::pin!(fut);
    loop {
        tokio::select! {
            biased;
            r = &mut fut => return Some(r),
            _ = shared.to_writer.notified() => {
                if shared.state() == ABORTED {
                    return None;
                }
            }
        }
    }
}

/// Takes what is queued: one line alone is written as is; several are
/// copied into `batch` so they leave in one TLS record and one syscall.
/// `None` when the queue is empty (its spare slots then go back too).
fn take_batch<'a>(q: &mut Queue, batch: &'a mut Vec<u8>) -> Option<Batch<'a>> {
    let first = q.lines.pop_front()?;
    let taken = match q.lines.pop_front() {
        None => Batch::One(first),
        Some(second) => {
            batch.clear();
            batch.extend_from_slice(&first);
            batch.extend_from_slice(&second);
            while batch.len() < BATCH_BYTES {
                match q.lines.pop_front() {
                    Some(line) => batch.extend_from_slice(&line),
                    None => break,
                }
            }
            Batch::Many(batch)
        }
    };
    if q.lines.is_empty() && q.lines.capacity() > KEEP_SLOTS {
        q.lines = VecDeque::new();
    }
    Some(taken)
}

enum Batch<'a> {
    One(Bytes),
    Many(&'a [u8]),
}

impl Batch<'_> {
    fn as_slice(&self) -> &[u8] {
        match self {
            Batch::One(b) => b,
            Batch::Many(b) => b,
        }
    }
}

async fn write_flush<W: AsyncWrite + Unpin>(w: &mut W, bytes: &[u8]) -> std::io::Result<()> {
    w.write_all(bytes).await?;
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

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[tokio::test]
    async fn private_lines_are_held_to_the_senders_share_and_the_private_share() {
        // A share of 100 bytes per sender.
        let limit = 100 * SENDER_SHARE;
        let private_share = limit / PRIVATE_SHARE;
        let (out, _inbox) = channel(limit);
        let line = |n: usize| Bytes::from(vec![b'p'; n]);
        let sender = |i: usize| IpAddr::from(std::net::Ipv6Addr::from(i as u128));
        // Into an empty queue anything goes, even past the share.
        out.send_private(line(150), ip("10.0.0.1")).unwrap();
        assert_eq!(out.send_private(line(1), ip("10.0.0.1")), Err(Busy));
        // Other senders have their own shares, up to the private share.
        let mut private = 150;
        let mut i = 1;
        while private + 100 <= private_share {
            out.send_private(line(100), sender(i)).unwrap();
            private += 100;
            i += 1;
        }
        let gap = private_share - private;
        assert_eq!(out.send_private(line(gap + 1), sender(i)), Err(Busy));
        out.send_private(line(gap), sender(i)).unwrap();
        // Lines everyone gets still fill the rest, and only they overflow.
        out.send(line(limit - private_share)).unwrap();
        assert_eq!(out.send(line(1)), Err(Overflow));
        assert_eq!(out.send_private(line(1), sender(i + 1)), Err(Busy));
    }

    #[tokio::test]
    async fn written_private_lines_give_their_share_back() {
        let (out, inbox) = channel(800);
        let shared = out.shared.clone();
        let (w, mut r) = tokio::io::duplex(8);
        let task = tokio::spawn(run_writer(inbox, w));
        out.send(Bytes::from(vec![b'a'; 90])).unwrap();
        out.send_private(Bytes::from(vec![b'b'; 90]), ip("10.0.0.1"))
            .unwrap();
        assert_eq!(
            out.send_private(Bytes::from(vec![b'c'; 20]), ip("10.0.0.1")),
            Err(Busy)
        );
        let mut got = vec![0u8; 180];
        r.read_exact(&mut got).await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), async {
            while shared.lock().bytes > 0 {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("written bytes are released");
        assert!(shared.lock().shares.is_none(), "nothing private is left");
        out.send_private(Bytes::from(vec![b'c'; 20]), ip("10.0.0.1"))
            .unwrap();
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

    /// The drain bound counts from the close, once: a write that the close
    /// caught half-done and that then finished does not restart it for the
    /// lines still queued.
    #[tokio::test(start_paused = true)]
    async fn the_drain_bound_starts_once_at_the_close() {
        let (out, inbox) = channel(4096);
        let (w, mut r) = tokio::io::duplex(8);
        let task = tokio::spawn(run_writer(inbox, w));
        out.send(Bytes::from_static(b"0123456789\n")).unwrap();
        tokio::task::yield_now().await;
        for _ in 0..10 {
            out.send(Bytes::from_static(b"0123456789\n")).unwrap();
        }
        let closed = Instant::now();
        out.close();
        // The reader takes a little halfway through the bound: the write in
        // progress finishes, the rest of the queue blocks again.
        tokio::time::sleep(DRAIN_LIMIT / 2).await;
        let mut buf = [0u8; 8];
        r.read_exact(&mut buf).await.unwrap();
        task.await.unwrap().unwrap();
        assert!(
            closed.elapsed() <= DRAIN_LIMIT + Duration::from_millis(10),
            "the writer gave up {:?} after the close",
            closed.elapsed()
        );
    }

    #[tokio::test]
    async fn dropping_the_last_outbox_closes_after_delivering() {
        let (out, inbox) = channel(1024);
        let (w, mut r) = tokio::io::duplex(1024);
        let task = tokio::spawn(run_writer(inbox, w));
        let second = out.clone();
        out.send(Bytes::from_static(b"a\n")).unwrap();
        drop(out);
        second.send(Bytes::from_static(b"b\n")).unwrap();
        drop(second);
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("the writer ends once nobody can send")
            .unwrap()
            .unwrap();
        let mut got = String::new();
        r.read_to_string(&mut got).await.unwrap();
        assert_eq!(got, "a\nb\n");
    }

    #[tokio::test]
    async fn closing_resolves_for_a_waiter_and_after_the_fact() {
        let (out, _inbox) = channel(1024);
        let waiter = {
            let out = out.clone();
            tokio::spawn(async move { out.closing().await })
        };
        tokio::task::yield_now().await;
        assert!(!out.is_closing());
        out.close();
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("a waiting reader is woken")
            .unwrap();
        tokio::time::timeout(Duration::from_secs(5), out.closing())
            .await
            .expect("closing() after the close resolves at once");
    }

    /// The peer's replies race the hub's lines without a common lock: once
    /// the hub announced the line that ends the client, a reply is dropped
    /// rather than sent after it.
    #[test]
    fn a_reply_never_follows_the_hubs_last_line() {
        let (out, inbox) = channel(1024);
        out.send_reply(Bytes::from_static(b"ERROR early\n"))
            .unwrap();
        out.end_replies();
        out.send_reply(Bytes::from_static(b"ERROR late\n")).unwrap();
        out.send(Bytes::from_static(b"KICK\n")).unwrap();
        out.close();
        out.send_reply(Bytes::from_static(b"PONG\n")).unwrap();
        assert_eq!(inbox.take_lines(), ["ERROR early", "KICK"]);
    }

    #[tokio::test]
    async fn lines_after_the_drain_began_are_dropped_not_refused() {
        let (out, inbox) = channel(1024);
        let (w, mut r) = tokio::io::duplex(1024);
        out.send(Bytes::from_static(b"kept\n")).unwrap();
        out.close();
        tokio::spawn(run_writer(inbox, w)).await.unwrap().unwrap();
        assert_eq!(out.send(Bytes::from_static(b"late\n")), Ok(()));
        let mut got = String::new();
        r.read_to_string(&mut got).await.unwrap();
        assert_eq!(got, "kept\n");
    }

    #[tokio::test]
    async fn a_drained_queue_gives_its_slots_back() {
        let (out, inbox) = channel(0);
        let shared = out.shared.clone();
        let (w, mut r) = tokio::io::duplex(1 << 20);
        let task = tokio::spawn(run_writer(inbox, w));
        for i in 0..200 {
            out.send(Bytes::from(format!("burst {i}\n"))).unwrap();
        }
        let mut buf = vec![0u8; 64 * 1024];
        let mut seen = 0;
        while seen
            < (0..200)
                .map(|i| format!("burst {i}\n").len())
                .sum::<usize>()
        {
            seen += r.read(&mut buf).await.unwrap();
        }
        // The writer frees the bytes once its write returned: wait for that.
        tokio::time::timeout(Duration::from_secs(5), async {
            while shared.lock().bytes > 0 {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("written bytes are released");
        {
            let q = shared.lock();
            assert!(q.lines.is_empty());
            assert!(
                q.lines.capacity() <= KEEP_SLOTS,
                "kept {}",
                q.lines.capacity()
            );
            assert_eq!(q.bytes, 0);
        }
        out.close();
        task.await.unwrap().unwrap();
    }

    /// Counts the writes that reach the "socket", to see what leaves together.
    struct CountingIo {
        inner: tokio::io::DuplexStream,
        writes: Arc<AtomicUsize>,
    }

    impl tokio::io::AsyncRead for CountingIo {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
        }
    }

    impl AsyncWrite for CountingIo {
        fn poll_write(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
            buf: &[u8],
        ) -> std::task::Poll<std::io::Result<usize>> {
            self.writes.fetch_add(1, Ordering::SeqCst);
            std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
        }

        /// Like a socket's `writev`: all the slices in one write (the pipe
        /// is large enough for what these tests send).
        fn poll_write_vectored(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
            bufs: &[std::io::IoSlice<'_>],
        ) -> std::task::Poll<std::io::Result<usize>> {
            self.writes.fetch_add(1, Ordering::SeqCst);
            let all: Vec<u8> = bufs.iter().flat_map(|b| b.iter().copied()).collect();
            std::pin::Pin::new(&mut self.inner).poll_write(cx, &all)
        }

        fn is_write_vectored(&self) -> bool {
            true
        }

        fn poll_flush(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::pin::Pin::new(&mut self.inner).poll_flush(cx)
        }

        fn poll_shutdown(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
        }
    }

    /// Over real TLS: the last line and `close_notify` leave in one write,
    /// and the client sees every line and then a clean TLS close.
    #[tokio::test]
    async fn the_last_line_and_the_tls_close_leave_together() {
        let dir = tempfile::tempdir().unwrap();
        let generated = crate::certs::generate(&["localhost".to_string()], 1).unwrap();
        let paths = crate::certs::write_pair(dir.path(), &generated, false).unwrap();
        let cert = crate::certs::load(&paths).unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(crate::tls::server_config(&cert).unwrap());
        let connector = tokio_rustls::TlsConnector::from(
            crate::tls::client_config_with_roots(&cert.chain[..1]).unwrap(),
        );
        let (client_io, server_io) = tokio::io::duplex(64 * 1024);
        let writes = Arc::new(AtomicUsize::new(0));
        let server_io = CountingIo {
            inner: server_io,
            writes: writes.clone(),
        };
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let (server, client) = tokio::join!(
            acceptor.accept(server_io),
            connector.connect(name, client_io)
        );
        let mut client = client.unwrap();
        let conn = tlschat_protocol::connection::Connection::new(server.unwrap(), 64);
        let (_reader, write_half) = conn.into_split();

        let (out, inbox) = channel(1024);
        let task = tokio::spawn(run_writer(inbox, write_half));
        out.send(Bytes::from_static(b"first\n")).unwrap();
        let mut got = [0u8; 6];
        client.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"first\n");
        let before = writes.load(Ordering::SeqCst);
        out.send(Bytes::from_static(b"PART #lobby zed quit\n"))
            .unwrap();
        out.close();
        task.await.unwrap().unwrap();
        assert_eq!(
            writes.load(Ordering::SeqCst) - before,
            1,
            "the last line and close_notify in one write"
        );
        let mut rest = String::new();
        // read_to_string fails on a close without close_notify.
        client.read_to_string(&mut rest).await.unwrap();
        assert_eq!(rest, "PART #lobby zed quit\n");
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
