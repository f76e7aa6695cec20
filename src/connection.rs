//! `Connection`: a byte stream seen as protocol lines, both ways.
//!
//! The read side ([`LineReader`]) owns the only buffer an incoming line lives
//! in and reads at most one line's limit into it (see
//! [`LineDecoder`](crate::protocol::LineDecoder)), so a peer can never make
//! us hold more than that. The server uses a whole [`Connection`] during the
//! handshake, then [`Connection::into_split`]s it: the read half stays with
//! the peer task, the write half goes to the writer task behind the bounded
//! queue.

use std::io;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};

use crate::protocol::{Frame, LineDecoder};

/// The first allocation of a read buffer: most chat lines fit, and an idle
/// connection keeps no more than this.
const INITIAL_BUFFER: usize = 512;

/// Reads [`Frame`]s from any byte stream with a line limit.
#[derive(Debug)]
pub struct LineReader<R> {
    reader: R,
    buf: BytesMut,
    decoder: LineDecoder,
}

impl<R: AsyncRead + Unpin> LineReader<R> {
    pub fn new(reader: R, max_line: usize) -> LineReader<R> {
        LineReader {
            reader,
            buf: BytesMut::new(),
            decoder: LineDecoder::new(max_line),
        }
    }

    /// The next frame; `Ok(None)` at a clean end of stream.
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
                return Ok(self.decoder.decode_eof(&mut self.buf));
            }
        }
    }

    pub fn get_mut(&mut self) -> &mut R {
        &mut self.reader
    }

    pub fn get_ref(&self) -> &R {
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
        } = self.lines;
        let (r, w) = tokio::io::split(reader);
        (
            LineReader {
                reader: r,
                buf,
                decoder,
            },
            w,
        )
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
