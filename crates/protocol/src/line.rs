//! Capped line framing: bytes in, [`Frame`]s out.
//!
//! [`LineDecoder::decode`] takes complete lines off the front of a buffer.
//! The buffer never has to hold more than `max` bytes: once `max` bytes have
//! arrived without a `\n`, the decoder reports [`Frame::TooLong`] at once and
//! then discards bytes as they stream in, up to and including the next `\n`.
//! A bad line costs the sender that line only; the next one is read normally.

use bytes::{Buf, BytesMut};

/// One unit of input, as the reader should act on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A complete line without its `\n` (and without a `\r` before it).
    Line(String),
    /// A line passed the limit; what follows up to its `\n` is skipped.
    TooLong,
    /// A complete line that was not UTF-8; it was discarded.
    InvalidUtf8,
}

/// Splits a byte stream into lines of at most `max` bytes including `\n`.
#[derive(Debug, Clone)]
pub struct LineDecoder {
    max: usize,
    discarding: bool,
    /// How many bytes at the front of the buffer are known to hold no `\n`:
    /// a line arriving a byte at a time is scanned once, not once per byte.
    scanned: usize,
}

impl LineDecoder {
    pub fn new(max: usize) -> LineDecoder {
        assert!(max > 0, "a line limit must allow the newline");
        LineDecoder {
            max,
            discarding: false,
            scanned: 0,
        }
    }

    /// The limit, in bytes including the `\n`.
    pub fn max(&self) -> usize {
        self.max
    }

    /// How many more bytes the caller may read into `buf` without holding
    /// more than one line's limit. Never zero.
    pub fn room(&self, buf: &BytesMut) -> usize {
        self.max.saturating_sub(buf.len()).max(1)
    }

    /// Takes the next frame off `buf`, or `None` if more bytes are needed.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Option<Frame> {
        loop {
            let from = self.scanned.min(buf.len());
            let newline = memchr(&buf[from..]).map(|i| from + i);
            self.scanned = if newline.is_some() { 0 } else { buf.len() };
            if self.discarding {
                match newline {
                    Some(i) => {
                        buf.advance(i + 1);
                        self.discarding = false;
                        continue;
                    }
                    None => {
                        buf.clear();
                        self.scanned = 0;
                        return None;
                    }
                }
            }
            return match newline {
                Some(i) if i < self.max => {
                    let line = buf.split_to(i + 1);
                    Some(to_frame(&line[..i]))
                }
                // The newline came too late: the line is already over the limit.
                Some(_) => {
                    self.discarding = true;
                    Some(Frame::TooLong)
                }
                None if buf.len() >= self.max => {
                    self.discarding = true;
                    buf.clear();
                    self.scanned = 0;
                    Some(Frame::TooLong)
                }
                None => None,
            };
        }
    }

    /// At end of input: a last line without `\n` still counts (nothing the
    /// peer sent is lost), a line being discarded does not.
    pub fn decode_eof(&mut self, buf: &mut BytesMut) -> Option<Frame> {
        if let Some(frame) = self.decode(buf) {
            return Some(frame);
        }
        self.scanned = 0;
        if self.discarding || buf.is_empty() {
            buf.clear();
            return None;
        }
        let line = buf.split();
        Some(to_frame(&line))
    }
}

fn memchr(buf: &[u8]) -> Option<usize> {
    buf.iter().position(|&b| b == b'\n')
}

fn to_frame(mut line: &[u8]) -> Frame {
    if let [rest @ .., b'\r'] = line {
        line = rest;
    }
    match std::str::from_utf8(line) {
        Ok(s) => Frame::Line(s.to_owned()),
        Err(_) => Frame::InvalidUtf8,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(dec: &mut LineDecoder, buf: &mut BytesMut, bytes: &[u8]) -> Vec<Frame> {
        buf.extend_from_slice(bytes);
        std::iter::from_fn(|| dec.decode(buf)).collect()
    }

    fn line(s: &str) -> Frame {
        Frame::Line(s.into())
    }

    #[test]
    fn splits_lines_and_drops_cr() {
        let mut d = LineDecoder::new(4096);
        let mut b = BytesMut::new();
        assert_eq!(
            feed(&mut d, &mut b, b"a\nb\r\n\nc"),
            vec![line("a"), line("b"), line("")]
        );
        assert_eq!(feed(&mut d, &mut b, b"d\n"), vec![line("cd")]);
        assert!(b.is_empty());
    }

    #[test]
    fn limit_includes_newline() {
        let mut d = LineDecoder::new(8);
        let mut b = BytesMut::new();
        assert_eq!(feed(&mut d, &mut b, b"1234567\n"), vec![line("1234567")]);
        assert_eq!(
            feed(&mut d, &mut b, b"12345678\nok\n"),
            vec![Frame::TooLong, line("ok")]
        );
    }

    #[test]
    fn too_long_is_reported_before_the_newline_and_the_rest_skipped() {
        let mut d = LineDecoder::new(8);
        let mut b = BytesMut::new();
        assert_eq!(feed(&mut d, &mut b, b"12345678"), vec![Frame::TooLong]);
        assert!(b.is_empty());
        assert_eq!(feed(&mut d, &mut b, b"more and more"), vec![]);
        assert!(b.is_empty());
        assert_eq!(feed(&mut d, &mut b, b"end\nnext\n"), vec![line("next")]);
    }

    #[test]
    fn invalid_utf8_costs_one_line() {
        let mut d = LineDecoder::new(64);
        let mut b = BytesMut::new();
        assert_eq!(
            feed(&mut d, &mut b, b"\xff\xfe\nfine\n"),
            vec![Frame::InvalidUtf8, line("fine")]
        );
    }

    #[test]
    fn eof_keeps_a_last_partial_line_but_not_a_discarded_one() {
        let mut d = LineDecoder::new(8);
        let mut b = BytesMut::from(&b"tail"[..]);
        assert_eq!(d.decode(&mut b), None);
        assert_eq!(d.decode_eof(&mut b), Some(line("tail")));
        assert_eq!(d.decode_eof(&mut b), None);

        let mut b = BytesMut::from(&b"123456789"[..]);
        assert_eq!(d.decode(&mut b), Some(Frame::TooLong));
        b.extend_from_slice(b"abc");
        assert_eq!(d.decode_eof(&mut b), None);
    }

    #[test]
    fn room_never_lets_the_buffer_pass_the_limit() {
        let d = LineDecoder::new(8);
        let b = BytesMut::from(&b"12345"[..]);
        assert_eq!(d.room(&b), 3);
    }
}
