//! The server's end of a client's TCP connection, as rustls writes to it.
//!
//! rustls hands every write over as a vectored write (its queue of
//! records), and tokio's `TcpStream` turns each into `writev`. Almost every
//! write of a chat server is one record, the one line it relays; for that
//! `send` reaches the same TCP code by a shorter path (no iovec array to
//! import and check, no `vfs_writev`), and a broadcast pays that once per
//! recipient: 8% of the server's CPU per delivery in the paced benchmark
//! (docs/performance.md). Several records still go out in one `writev`.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// A client's `TcpStream` whose single-buffer vectored writes are plain
/// writes.
#[derive(Debug)]
pub(crate) struct ClientSocket(pub TcpStream);

/// The one non-empty buffer of `bufs`, if there is exactly one.
fn only_filled<'a, 'b>(bufs: &'a [IoSlice<'b>]) -> Option<&'a IoSlice<'b>> {
    let mut filled = bufs.iter().filter(|b| !b.is_empty());
    match (filled.next(), filled.next()) {
        (Some(one), None) => Some(one),
        _ => None,
    }
}

impl AsyncRead for ClientSocket {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for ClientSocket {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        // All-empty goes to `writev` too, which answers 0 like tokio does.
        match only_filled(bufs) {
            Some(one) => Pin::new(&mut self.0).poll_write(cx, one),
            None => Pin::new(&mut self.0).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    async fn pair() -> (ClientSocket, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (ClientSocket(server), client)
    }

    #[test]
    fn one_record_is_told_apart_from_several() {
        let (a, b, e) = (IoSlice::new(b"a"), IoSlice::new(b"b"), IoSlice::new(b""));
        assert_eq!(only_filled(&[a]).map(|s| &s[..]), Some(&b"a"[..]));
        assert_eq!(only_filled(&[e, e, b, e]).map(|s| &s[..]), Some(&b"b"[..]));
        assert!(only_filled(&[a, b]).is_none());
        assert!(only_filled(&[e, a, e, b]).is_none());
        assert!(only_filled(&[e, e]).is_none());
        assert!(only_filled(&[]).is_none());
    }

    #[tokio::test]
    async fn vectored_writes_of_one_or_many_buffers_arrive_whole() {
        let (mut sock, mut peer) = pair().await;
        assert!(sock.is_write_vectored());
        let empty: [IoSlice<'_>; 2] = [IoSlice::new(b""), IoSlice::new(b"")];
        assert_eq!(sock.write_vectored(&empty).await.unwrap(), 0);
        let one = [IoSlice::new(b""), IoSlice::new(b"one "), IoSlice::new(b"")];
        assert_eq!(sock.write_vectored(&one).await.unwrap(), 4);
        let two = [
            IoSlice::new(b"two "),
            IoSlice::new(b""),
            IoSlice::new(b"three"),
        ];
        assert_eq!(sock.write_vectored(&two).await.unwrap(), 9);
        sock.shutdown().await.unwrap();
        let mut got = String::new();
        peer.read_to_string(&mut got).await.unwrap();
        assert_eq!(got, "one two three");
    }

    #[tokio::test]
    async fn reads_pass_through() {
        let (mut sock, mut peer) = pair().await;
        peer.write_all(b"hello").await.unwrap();
        drop(peer);
        let mut got = Vec::new();
        sock.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"hello");
    }
}
