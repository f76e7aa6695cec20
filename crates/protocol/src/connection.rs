//! `Connection`: a byte stream seen as protocol lines, both ways.
//!
//! The read side ([`LineReader`]) owns the only buffer an incoming line lives
//! in and reads at most one line's limit into it (see
//! [`LineDecoder`](crate::LineDecoder)), so a peer can never make
//! us hold more than that. The server uses a whole [`Connection`] during the
//! handshake, then [`Connection::into_split`]s it: the read half stays with
//! the peer task, the write half goes to the writer task behind the bounded
//! queue.
//!
//! The split is ours rather than `tokio::io::split` for one reason: the
//! write half can reach the TLS session ([`WriteHalf::with_stream`]), so the
//! server can put a client's last line and the TLS `close_notify` in one
//! write instead of two.
//!
//! At the end of the stream the two sides differ: the server takes a last
//! line without `\n` as a line (a person typing into `openssl s_client`
//! may close without one), while the client reads with
//! [`Connection::complete_lines_only`]: a server line cut off by the close is
//! reported as [`CutOffLine`], never shown as if it were whole.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

use crate::{Frame, LineDecoder};

/// The first allocation of a read buffer: most chat lines fit, and an idle
/// connection keeps no more than this.
const INITIAL_BUFFER: usize = 512;

/// The stream ended in the middle of a line; what was cut off is dropped.
/// Carried as the source of an [`io::ErrorKind::UnexpectedEof`] error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the connection ended in the middle of a line ({bytes} bytes not shown)")]
pub struct CutOffLine {
    pub bytes: usize,
}

impl CutOffLine {
    /// The `CutOffLine` inside `e`, if that is why the read failed.
    pub fn of(e: &io::Error) -> Option<&CutOffLine> {
        e.get_ref().and_then(|inner| inner.downcast_ref())
    }
}

/// Reads [`Frame`]s from any byte stream with a line limit.
#[derive(Debug)]
pub struct LineReader<R> {
    reader: R,
    buf: BytesMut,
    decoder: LineDecoder,
    /// At end of stream, a last line without `\n` is an error rather than a line.
    complete_lines_only: bool,
}

impl<R: AsyncRead + Unpin> LineReader<R> {
    pub fn new(reader: R, max_line: usize) -> LineReader<R> {
        LineReader {
            reader,
            buf: BytesMut::new(),
            decoder: LineDecoder::new(max_line),
            complete_lines_only: false,
        }
    }

    /// The next frame; `Ok(None)` at a clean end of stream. With
    /// [`Connection::complete_lines_only`], a line cut off by the end of the
    /// stream is an `UnexpectedEof` error carrying [`CutOffLine`].
    pub async fn read_frame(&mut self) -> io::Result<Option<Frame>> {
        loop {
            if let Some(frame) = self.decoder.decode(&mut self.buf) {
                return Ok(Some(frame));
            }
            let room = self.decoder.room(&self.buf);
            if self.buf.capacity() == self.buf.len() {
                let want = room.min(INITIAL_BUFFER.max(self.buf.len()));
                self.buf.reserve(want);
            }
            let n = (&mut self.reader)
                .take(room as u64)
                .read_buf(&mut self.buf)
                .await?;
            if n == 0 {
                return self.at_eof();
            }
        }
    }

    fn at_eof(&mut self) -> io::Result<Option<Frame>> {
        if self.complete_lines_only {
            // Complete lines still buffered come first; a line being
            // discarded as too long leaves nothing here (the decoder
            // clears it), so what remains is a cut-off line.
            if let Some(frame) = self.decoder.decode(&mut self.buf) {
                return Ok(Some(frame));
            }
            if !self.buf.is_empty() {
                let bytes = self.buf.len();
                self.buf.clear();
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    CutOffLine { bytes },
                ));
            }
        }
        Ok(self.decoder.decode_eof(&mut self.buf))
    }

    pub fn get_mut(&mut self) -> &mut R {
        &mut self.reader
    }

    fn get_ref(&self) -> &R {
        &self.reader
    }
}

/// A stream with line framing on both sides.
#[derive(Debug)]
pub struct Connection<S> {
    lines: LineReader<S>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<S> {
    pub fn new(stream: S, max_line: usize) -> Connection<S> {
        Connection {
            lines: LineReader::new(stream, max_line),
        }
    }

    /// For the client: a line the peer's close cut off is reported as
    /// [`CutOffLine`] instead of being taken as a line (see the module docs).
    pub fn complete_lines_only(mut self) -> Connection<S> {
        self.lines.complete_lines_only = true;
        self
    }

    pub async fn read_frame(&mut self) -> io::Result<Option<Frame>> {
        self.lines.read_frame().await
    }

    /// Writes one encoded line (with its `\n`) and flushes it.
    pub async fn write_line(&mut self, line: &[u8]) -> io::Result<()> {
        let stream = self.lines.get_mut();
        stream.write_all(line).await?;
        stream.flush().await
    }

    /// Orderly close of the write side (for TLS: `close_notify`).
    pub async fn shutdown(&mut self) -> io::Result<()> {
        self.lines.get_mut().shutdown().await
    }

    pub fn get_ref(&self) -> &S {
        self.lines.get_ref()
    }

    /// Splits into a line reader (keeping any bytes already buffered) and
    /// the raw write half.
    pub fn into_split(self) -> (LineReader<ReadHalf<S>>, WriteHalf<S>) {
        let LineReader {
            reader,
            buf,
            decoder,
            complete_lines_only,
        } = self.lines;
        let stream = Arc::new(Mutex::new(reader));
        (
            LineReader {
                reader: ReadHalf(stream.clone()),
                buf,
                decoder,
                complete_lines_only,
            },
            WriteHalf(stream),
        )
    }
}

/// The read half of a split stream.
#[derive(Debug)]
pub struct ReadHalf<S>(Arc<Mutex<S>>);

/// The write half of a split stream.
#[derive(Debug)]
pub struct WriteHalf<S>(Arc<Mutex<S>>);

/// Each half holds the lock only for one poll: a read or a write that is
/// not ready returns `Pending` and lets go. Like `tokio::io::split`, this
/// is a plain mutex; the halves live on two tasks and rarely meet.
impl<S> WriteHalf<S> {
    /// Runs `f` on the whole stream, for what only the stream can do, such
    /// as queueing the TLS `close_notify` behind a last line.
    pub fn with_stream<R>(&mut self, f: impl FnOnce(&mut S) -> R) -> R {
        f(&mut locked(&self.0))
    }
}

fn locked<S>(stream: &Mutex<S>) -> MutexGuard<'_, S> {
    // A poll that panicked leaves the stream as the I/O library left it;
    // the connection fails on its next error like any other.
    stream.lock().unwrap_or_else(|e| e.into_inner())
}

impl<S: AsyncRead + Unpin> AsyncRead for ReadHalf<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut *locked(&self.0)).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteHalf<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *locked(&self.0)).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *locked(&self.0)).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        locked(&self.0).is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *locked(&self.0)).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *locked(&self.0)).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_lines_across_chunks_and_skips_long_ones() {
        let (mut a, b) = tokio::io::duplex(64);
        let mut conn = Connection::new(b, 16);
        let writer = tokio::spawn(async move {
            a.write_all(b"hel").await.unwrap();
            a.write_all(b"lo\n").await.unwrap();
            a.write_all(&[b'x'; 40]).await.unwrap();
            a.write_all(b"\nafter\r\n").await.unwrap();
            a.write_all(b"\xff\nlast").await.unwrap();
        });
        assert_eq!(
            conn.read_frame().await.unwrap(),
            Some(Frame::Line("hello".into()))
        );
        assert_eq!(conn.read_frame().await.unwrap(), Some(Frame::TooLong));
        assert_eq!(
            conn.read_frame().await.unwrap(),
            Some(Frame::Line("after".into()))
        );
        assert_eq!(conn.read_frame().await.unwrap(), Some(Frame::InvalidUtf8));
        writer.await.unwrap();
        assert_eq!(
            conn.read_frame().await.unwrap(),
            Some(Frame::Line("last".into()))
        );
        assert_eq!(conn.read_frame().await.unwrap(), None);
    }

    #[tokio::test]
    async fn too_long_is_reported_before_the_newline_arrives() {
        let (mut a, b) = tokio::io::duplex(64);
        let mut conn = Connection::new(b, 16);
        a.write_all(&[b'x'; 20]).await.unwrap();
        // No newline sent, and the writer stays open: the error must come anyway.
        assert_eq!(conn.read_frame().await.unwrap(), Some(Frame::TooLong));
        assert!(conn.lines.buf.len() <= 16);
    }

    #[tokio::test]
    async fn complete_lines_only_reports_a_cut_off_last_line() {
        let (mut a, b) = tokio::io::duplex(64);
        let mut conn = Connection::new(b, 64).complete_lines_only();
        a.write_all("ganz Ζ\nhalb 半".as_bytes()).await.unwrap();
        drop(a);
        assert_eq!(
            conn.read_frame().await.unwrap(),
            Some(Frame::Line("ganz Ζ".into()))
        );
        let e = conn.read_frame().await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        assert_eq!(
            CutOffLine::of(&e),
            Some(&CutOffLine {
                bytes: "halb 半".len()
            })
        );
        assert_eq!(conn.read_frame().await.unwrap(), None);
    }

    #[tokio::test]
    async fn complete_lines_only_ends_cleanly_after_a_whole_or_too_long_line() {
        let (mut a, b) = tokio::io::duplex(64);
        let (mut r, _w) = Connection::new(b, 8).complete_lines_only().into_split();
        a.write_all(b"ok\n").await.unwrap();
        a.write_all(&[b'x'; 20]).await.unwrap();
        drop(a);
        assert_eq!(
            r.read_frame().await.unwrap(),
            Some(Frame::Line("ok".into()))
        );
        assert_eq!(r.read_frame().await.unwrap(), Some(Frame::TooLong));
        assert_eq!(r.read_frame().await.unwrap(), None);
    }

    #[tokio::test]
    async fn split_keeps_buffered_lines() {
        let (mut a, b) = tokio::io::duplex(64);
        a.write_all(b"one\ntwo\n").await.unwrap();
        let mut conn = Connection::new(b, 16);
        assert_eq!(
            conn.read_frame().await.unwrap(),
            Some(Frame::Line("one".into()))
        );
        let (mut r, mut w) = conn.into_split();
        assert_eq!(
            r.read_frame().await.unwrap(),
            Some(Frame::Line("two".into()))
        );
        w.write_all(b"pong\n").await.unwrap();
        let mut got = [0u8; 5];
        a.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"pong\n");
    }
}
