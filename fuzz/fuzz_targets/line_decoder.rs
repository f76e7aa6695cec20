//! Fuzzes `LineDecoder` (crates/protocol/src/line.rs), fed the way
//! `connection::LineReader` feeds it: decode until `None`, then read at most
//! `room()` bytes, repeat; at end of input, `decode_eof` until `None`.
//!
//! Input layout (missing bytes read as 0):
//!
//! ```text
//! [max lo][max hi]   max = 1 + (u16 LE % 4096)
//! [k]                1 + k % 8 read sizes follow, used in turn (cycled)
//! [size]...          0 = as many bytes as `room()` allows, n = at most n
//! rest               the byte stream
//! ```
//!
//! Checked: the buffer never holds more than `max` bytes; `room()` is never
//! zero and never lets the buffer pass `max`; every `Frame::Line` has no
//! `\n` and is shorter than `max`; the frames equal a reference computed
//! over the whole input at once; after `decode_eof` the buffer is empty.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use tlschat_protocol::{Frame, LineDecoder};

/// The largest limit tried (the protocol's own is 4096).
const MAX_LIMIT: usize = 4096;

struct Header<'a> {
    max: usize,
    sizes: Vec<usize>,
    stream: &'a [u8],
}

fn split_header(data: &[u8]) -> Header<'_> {
    let byte = |i: usize| data.get(i).copied().unwrap_or(0);
    let max = 1 + usize::from(u16::from_le_bytes([byte(0), byte(1)])) % MAX_LIMIT;
    let k = 1 + usize::from(byte(2)) % 8;
    let sizes = (0..k)
        .map(|i| match byte(3 + i) {
            0 => usize::MAX,
            n => usize::from(n),
        })
        .collect();
    let stream = data.get(3 + k..).unwrap_or(&[]);
    Header { max, sizes, stream }
}

/// What the frames must be, computed the obvious way over the whole input
/// (the same function as in tests/it/protocol_props.rs).
fn reference(input: &[u8], max: usize) -> Vec<Frame> {
    let mut out = Vec::new();
    let mut segments: Vec<&[u8]> = input.split(|&b| b == b'\n').collect();
    let ends_with_newline = input.last() == Some(&b'\n');
    if ends_with_newline || input.is_empty() {
        segments.pop();
    }
    let last = segments.len().saturating_sub(1);
    for (i, seg) in segments.into_iter().enumerate() {
        let complete = i < last || ends_with_newline;
        // A complete line counts its newline against the limit.
        let size = seg.len() + usize::from(complete);
        if size > max || (!complete && seg.len() >= max) {
            out.push(Frame::TooLong);
            continue;
        }
        let seg = seg.strip_suffix(b"\r").unwrap_or(seg);
        out.push(match std::str::from_utf8(seg) {
            Ok(s) => Frame::Line(s.to_owned()),
            Err(_) => Frame::InvalidUtf8,
        });
    }
    out
}

fn check_frame(frame: &Frame, max: usize) {
    if let Frame::Line(line) = frame {
        assert!(!line.contains('\n'), "a line holds a newline: {line:?}");
        assert!(
            line.len() < max,
            "a line of {} bytes passed the limit {max}",
            line.len()
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let Header { max, sizes, stream } = split_header(data);
    let mut dec = LineDecoder::new(max);
    assert_eq!(dec.max(), max);
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let mut sizes = sizes.into_iter().cycle();
    let mut pos = 0;
    while pos < stream.len() {
        let room = dec.room(&buf);
        assert!(room >= 1, "room() is zero");
        assert!(
            buf.len() + room <= max,
            "room() {room} lets a buffer of {} pass the limit {max}",
            buf.len()
        );
        // One read: never more than `room`, as LineReader does with `take`.
        let want = sizes.next().unwrap().min(room);
        let end = pos + want.min(stream.len() - pos);
        buf.extend_from_slice(&stream[pos..end]);
        pos = end;
        assert!(
            buf.len() <= max,
            "the buffer holds {} bytes with a limit of {max}",
            buf.len()
        );
        while let Some(frame) = dec.decode(&mut buf) {
            check_frame(&frame, max);
            frames.push(frame);
        }
        assert!(
            buf.len() < max,
            "decode returned None with {} bytes buffered, limit {max}",
            buf.len()
        );
    }
    while let Some(frame) = dec.decode_eof(&mut buf) {
        check_frame(&frame, max);
        frames.push(frame);
    }
    assert!(buf.is_empty(), "bytes left after decode_eof: {buf:?}");
    assert_eq!(dec.decode_eof(&mut buf), None);
    assert_eq!(frames, reference(stream, max), "max {max}");
});
