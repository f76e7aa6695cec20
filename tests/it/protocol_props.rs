//! Property tests of the pure protocol layer: the capped line decoder, the
//! command parser and the server line encoder/parser. No sockets.

use bytes::BytesMut;
use proptest::prelude::*;

use tlschat_protocol::{
    check_text, Command, ErrorCode, Frame, LineDecoder, Nick, RoomName, ServerLine,
};

/// Decodes `input` fed in the given chunk sizes, the way the connection
/// does: never reading more than the decoder's `room`.
fn decode_chunked(input: &[u8], max: usize, chunks: &[usize]) -> (Vec<Frame>, usize) {
    let mut dec = LineDecoder::new(max);
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let mut peak = 0;
    let mut pos = 0;
    let mut sizes = chunks.iter().cycle();
    while pos < input.len() {
        let want = (*sizes.next().unwrap()).max(1).min(dec.room(&buf));
        let end = (pos + want).min(input.len());
        buf.extend_from_slice(&input[pos..end]);
        pos = end;
        peak = peak.max(buf.len());
        while let Some(f) = dec.decode(&mut buf) {
            frames.push(f);
        }
    }
    while let Some(f) = dec.decode_eof(&mut buf) {
        frames.push(f);
    }
    (frames, peak)
}

/// What the frames must be, computed the obvious way over the whole input.
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

fn bytes_with_newlines() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            4 => b'a'..=b'z',
            1 => Just(b'\n'),
            1 => Just(b'\r'),
            1 => any::<u8>(),
        ],
        0..400,
    )
}

proptest! {
    #[test]
    fn decoder_matches_reference_whatever_the_chunking(
        input in bytes_with_newlines(),
        max in 1usize..64,
        chunks in prop::collection::vec(1usize..100, 1..8),
    ) {
        let (frames, peak) = decode_chunked(&input, max, &chunks);
        prop_assert_eq!(frames, reference(&input, max));
        prop_assert!(peak <= max, "buffer held {} bytes with a limit of {}", peak, max);
    }

    #[test]
    fn parse_never_panics_and_errors_carry_text(line in "\\PC{0,200}") {
        match Command::parse(&line) {
            Ok(_) => {}
            Err(e) => prop_assert!(!e.text.is_empty()),
        }
    }

    #[test]
    fn plain_text_is_a_message_as_sent(text in "[^/\\s][^\n]{0,100}") {
        prop_assert_eq!(Command::parse(&text), Ok(Command::Say(&text)));
    }

    #[test]
    fn double_slash_escapes_one_slash(text in "[^\n]{0,100}") {
        let line = format!("//{text}");
        let expected = format!("/{text}");
        prop_assert_eq!(Command::parse(&line), Ok(Command::Say(expected.as_str())));
    }

    #[test]
    fn msg_round_trips(nick in "[A-Za-z0-9_][A-Za-z0-9_.-]{0,23}", text in "[^\\s][^\n]{0,80}") {
        let line = format!("/msg {nick} {text}");
        prop_assert_eq!(Command::parse(&line), Ok(Command::Msg { to: &nick, text: &text }));
    }

    #[test]
    fn valid_names_parse_and_invalid_ones_do_not(s in "[ -~]{0,40}") {
        let nick_ok = !s.is_empty()
            && s.len() <= 24
            && !s.starts_with(['-', '.'])
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b));
        prop_assert_eq!(Nick::parse(&s).is_ok(), nick_ok);
        let room = format!("#{s}");
        let room_ok = !s.is_empty()
            && s.len() <= 32
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-".contains(&b));
        prop_assert_eq!(RoomName::parse(&room).is_ok(), room_ok);
    }

    #[test]
    fn server_lines_round_trip(
        room in "#[a-z0-9_-]{1,32}",
        nick in "[a-z0-9_][a-z0-9_.-]{0,23}",
        text in "\\PC{0,200}",
        nicks in prop::collection::vec("[a-z0-9_][a-z0-9_.-]{0,23}", 0..20),
        count in 1usize..100_000,
    ) {
        prop_assert!(check_text(&text).is_ok());
        let lines = vec![
            ServerLine::Msg { room: &room, nick: &nick, text: &text },
            ServerLine::Action { room: &room, nick: &nick, text: &text },
            ServerLine::PrivMsg { from: &nick, to: &nick, text: &text },
            ServerLine::Part { room: &room, nick: &nick, reason: &text },
            ServerLine::Kick { nick: &nick, by: &nick, reason: &text },
            ServerLine::Join { room: &room, nick: &nick },
            ServerLine::Welcome { nick: &nick, room: &room },
            ServerLine::Users { room: &room, nicks: nicks.iter().map(String::as_str).collect() },
            ServerLine::Rooms(vec![(room.as_str(), count)]),
            ServerLine::Info(&text),
            ServerLine::Error { code: ErrorCode::BadText, text: &text },
        ];
        for line in lines {
            let encoded = line.encode();
            prop_assert_eq!(encoded.last(), Some(&b'\n'));
            let s = std::str::from_utf8(&encoded[..encoded.len() - 1]).unwrap();
            prop_assert!(!s.contains('\n'));
            prop_assert_eq!(ServerLine::parse(s), line);
        }
    }
}
