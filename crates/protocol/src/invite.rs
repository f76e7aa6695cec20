//! Invite codes and the invite link that carries one with the server's
//! address and certificate fingerprint.
//!
//! ```text
//! 20 random bytes → InviteCode::from_bytes → 32 base32 characters (server)
//! "tlschat://HOST:PORT/?fp=SHA256:<hex>&code=<code>" → InviteLink::parse
//!   → host, port, Fingerprint, Option<InviteCode>          (clients)
//! InviteLink → Display → the canonical link                (server's /invite)
//! ```
//!
//! The link is parsed by hand rather than with the `url` crate: for a scheme
//! such as `tlschat` that crate keeps the host opaque (no IP check, no IDNA),
//! reads `+` in a query as a space, and would bring its IDNA tables into
//! the server and the terminal client. The grammar:
//!
//! ```text
//! link  = "tlschat://" host [":" port] ["/"] "?" param *("&" param) ["#" ignored]
//! host  = DNS name | IPv4 | "[" IPv6 "]"          (ASCII only; see HostPort)
//! param = "fp=" fingerprint | "code=" 32(a-z / 2-7) | other "=" value (ignored)
//! ```
//!
//! The scheme and the keys are case-insensitive; `fp` must appear once,
//! `code` at most once; values may be percent-encoded and must decode to
//! ASCII; the whole link is at most [`MAX_LINK_LEN`] bytes.

use std::fmt;

use crate::fingerprint::{Fingerprint, FingerprintError};
use crate::hostport::{HostError, HostPort};
use crate::DEFAULT_PORT;

/// Characters in an invite code.
pub const CODE_LEN: usize = 32;
/// Characters of a code that identify it in lists and `/uninvite`.
pub const PREFIX_LEN: usize = 6;
/// Longest link accepted, in bytes.
pub const MAX_LINK_LEN: usize = 2048;
/// The scheme, as printed.
pub const SCHEME: &str = "tlschat";

const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

fn in_alphabet(c: char) -> bool {
    matches!(c.to_ascii_lowercase(), 'a'..='z' | '2'..='7')
}

/// A well-formed invite code: 32 characters of `a-z 2-7` (lower case;
/// parsing accepts any case), 160 bits. `Debug` shows only its prefix.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct InviteCode(String);

/// Why a code or prefix was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodeError {
    #[error("an invite code has {CODE_LEN} characters of a-z and 2-7")]
    Code,
    #[error("an invite prefix is at least {PREFIX_LEN} characters of a-z and 2-7 (as /invites shows it)")]
    Prefix,
}

impl InviteCode {
    pub fn parse(s: &str) -> Result<InviteCode, CodeError> {
        if s.chars().count() != CODE_LEN || !s.chars().all(in_alphabet) {
            return Err(CodeError::Code);
        }
        Ok(InviteCode(s.to_ascii_lowercase()))
    }

    /// The code of 20 (random) bytes: base32, 5 bits a character.
    pub fn from_bytes(bytes: &[u8; 20]) -> InviteCode {
        let mut out = String::with_capacity(CODE_LEN);
        for chunk in bytes.chunks_exact(5) {
            let mut acc = 0u64;
            for &b in chunk {
                acc = (acc << 8) | u64::from(b);
            }
            for i in (0..8).rev() {
                out.push(char::from(ALPHABET[((acc >> (i * 5)) & 31) as usize]));
            }
        }
        InviteCode(out)
    }

    /// The secret itself, to send, hash or put into a link.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The public part that names the code in lists.
    pub fn prefix(&self) -> InvitePrefix {
        InvitePrefix(self.0.chars().take(PREFIX_LEN).collect())
    }
}

impl fmt::Debug for InviteCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InviteCode({}…)", self.prefix())
    }
}

/// The first [`PREFIX_LEN`] characters of a code, lower case: how
/// `/invites` names a code and `/uninvite` picks it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct InvitePrefix(String);

impl InvitePrefix {
    /// At least [`PREFIX_LEN`] code characters (a whole code too); only
    /// the first [`PREFIX_LEN`] are kept.
    pub fn parse(s: &str) -> Result<InvitePrefix, CodeError> {
        if s.chars().count() < PREFIX_LEN || !s.chars().all(in_alphabet) {
            return Err(CodeError::Prefix);
        }
        Ok(InvitePrefix(
            s.chars()
                .take(PREFIX_LEN)
                .map(|c| c.to_ascii_lowercase())
                .collect(),
        ))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for InvitePrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A parsed invite link: where the server is, which certificate it shows,
/// and (unless it only carries trust) the code that admits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InviteLink {
    server: HostPort,
    fingerprint: Fingerprint,
    code: Option<InviteCode>,
}

/// Why a link was refused; the text is for the person who pasted it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("the link is longer than {MAX_LINK_LEN} bytes")]
    TooLong,
    #[error("not a tlschat link: it starts with tlschat://")]
    Scheme,
    #[error("bad host in the link: {0}")]
    Host(#[from] HostError),
    #[error("the link has no host")]
    NoHost,
    #[error("bad port in the link: a number from 1 to 65535")]
    Port,
    #[error("the link has a path; expected tlschat://HOST:PORT/?fp=…")]
    Path,
    #[error("the link has no fingerprint (fp=SHA256:…)")]
    NoFingerprint,
    #[error("bad fingerprint in the link: {0}")]
    Fingerprint(FingerprintError),
    #[error("bad invite code in the link: {0}")]
    Code(CodeError),
    #[error("the link has {0} twice")]
    Duplicate(&'static str),
    #[error("a bad %-escape in the link")]
    Escape,
    #[error("the link's {0} is not ASCII")]
    NotAscii(&'static str),
}

impl InviteLink {
    /// A link for `server` (its host checked as a link host).
    pub fn new(
        server: &HostPort,
        fingerprint: Fingerprint,
        code: Option<InviteCode>,
    ) -> Result<InviteLink, LinkError> {
        let host = HostPort::check_link_host(server.host())?;
        Ok(InviteLink {
            server: HostPort::from_checked(host, server.port()),
            fingerprint,
            code,
        })
    }

    pub fn server(&self) -> &HostPort {
        &self.server
    }

    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    pub fn code(&self) -> Option<&InviteCode> {
        self.code.as_ref()
    }

    /// True for text that is meant as a link (its scheme), valid or not:
    /// front ends then report the link's error rather than a `HOST:PORT` one.
    pub fn looks_like(s: &str) -> bool {
        s.trim_start()
            .get(..SCHEME.len() + 3)
            .is_some_and(|head| head.eq_ignore_ascii_case("tlschat://"))
    }

    pub fn parse(s: &str) -> Result<InviteLink, LinkError> {
        if s.len() > MAX_LINK_LEN {
            return Err(LinkError::TooLong);
        }
        let s = s.trim();
        let rest = match s.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case(SCHEME) => rest,
            _ => return Err(LinkError::Scheme),
        };
        let rest = rest.split_once('#').map_or(rest, |(before, _)| before);
        let (authority, tail) = match rest.find(['/', '?']) {
            Some(at) => rest.split_at_checked(at).ok_or(LinkError::Path)?,
            None => (rest, ""),
        };
        let tail = tail.strip_prefix('/').unwrap_or(tail);
        let query = match tail.strip_prefix('?') {
            Some(q) => q,
            None if tail.is_empty() => return Err(LinkError::NoFingerprint),
            None => return Err(LinkError::Path),
        };
        let server = parse_authority(authority)?;

        let (mut fingerprint, mut code) = (None, None);
        for param in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = param.split_once('=').unwrap_or((param, ""));
            if key.eq_ignore_ascii_case("fp") {
                let value = decode(value, "fingerprint")?;
                let fp = Fingerprint::parse(&value).map_err(LinkError::Fingerprint)?;
                if fingerprint.replace(fp).is_some() {
                    return Err(LinkError::Duplicate("fp"));
                }
            } else if key.eq_ignore_ascii_case("code") {
                let value = decode(value, "code")?;
                let c = InviteCode::parse(&value).map_err(LinkError::Code)?;
                if code.replace(c).is_some() {
                    return Err(LinkError::Duplicate("code"));
                }
            }
        }
        Ok(InviteLink {
            server,
            fingerprint: fingerprint.ok_or(LinkError::NoFingerprint)?,
            code,
        })
    }
}

/// `host[:port]` with the host checked as a link host.
fn parse_authority(authority: &str) -> Result<HostPort, LinkError> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (v6, after) = rest.split_once(']').ok_or(HostError::Chars)?;
        if !v6.contains(':') {
            return Err(HostError::Chars.into());
        }
        match after {
            "" => (v6, None),
            p => (v6, Some(p.strip_prefix(':').ok_or(LinkError::Port)?)),
        }
    } else {
        match authority.split_once(':') {
            // An IPv6 address needs its brackets: `::1:7` is ambiguous.
            Some((_, p)) if p.contains(':') => return Err(HostError::Chars.into()),
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(LinkError::NoHost);
    }
    let host = HostPort::check_link_host(host)?;
    let port = match port {
        None => DEFAULT_PORT,
        Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
            match p.parse::<u16>() {
                Ok(0) | Err(_) => return Err(LinkError::Port),
                Ok(n) => n,
            }
        }
        Some(_) => return Err(LinkError::Port),
    };
    Ok(HostPort::from_checked(host, port))
}

/// Percent-decodes a query value that must be ASCII (`+` stays `+`).
fn decode(value: &str, what: &'static str) -> Result<String, LinkError> {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        let c = if c == '%' {
            let hi = chars.next().and_then(|h| h.to_digit(16));
            let lo = chars.next().and_then(|l| l.to_digit(16));
            let (Some(hi), Some(lo)) = (hi, lo) else {
                return Err(LinkError::Escape);
            };
            // Two hex digits: at most 0xff, so the cast is exact.
            char::from((hi * 16 + lo) as u8)
        } else {
            c
        };
        if !c.is_ascii() {
            return Err(LinkError::NotAscii(what));
        }
        out.push(c);
    }
    Ok(out)
}

impl fmt::Display for InviteLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SCHEME}://{}/?fp={}", self.server, self.fingerprint)?;
        if let Some(code) = &self.code {
            write!(f, "&code={}", code.expose())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const HEX: &str = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
    const CODE: &str = "abcdefghijklmnopqrstuvwxyz234567";

    fn fp() -> Fingerprint {
        Fingerprint::parse(HEX).unwrap()
    }

    fn link(s: &str) -> Result<InviteLink, LinkError> {
        InviteLink::parse(s)
    }

    #[test]
    fn codes_and_prefixes() {
        let c = InviteCode::parse(&CODE.to_uppercase()).unwrap();
        assert_eq!(c.expose(), CODE);
        assert_eq!(c.prefix().as_str(), "abcdef");
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("ghij") && shown.contains("abcdef"),
            "{shown}"
        );
        for bad in [
            "",
            "abc",
            &CODE.replace('2', "1"),
            &format!("{CODE}a"),
            "абвгдеёжзийклмнопрстуфхцчшщъыьэ",
        ] {
            assert_eq!(InviteCode::parse(bad), Err(CodeError::Code), "{bad:?}");
        }
        assert_eq!(InvitePrefix::parse("ABCDEFxyz").unwrap().as_str(), "abcdef");
        assert_eq!(InvitePrefix::parse(CODE).unwrap(), c.prefix());
        for bad in ["abcde", "abcde1", "абвгде", "abc def", ""] {
            assert_eq!(InvitePrefix::parse(bad), Err(CodeError::Prefix), "{bad:?}");
        }
        // RFC 4648 base32 (lower case, no padding): "foobar" padded to 20 bytes.
        let mut bytes = [0u8; 20];
        bytes[..6].copy_from_slice(b"foobar");
        let code = InviteCode::from_bytes(&bytes);
        assert!(code.expose().starts_with("mzxw6ytboi"), "{}", code.expose());
        assert_eq!(InviteCode::parse(code.expose()), Ok(code));
        assert_eq!(InviteCode::from_bytes(&[0xff; 20]).expose(), "7".repeat(32));
    }

    #[test]
    fn canonical_link_round_trips() {
        let text = format!("tlschat://chat.example.org:7000/?fp=SHA256:{HEX}&code={CODE}");
        let l = link(&text).unwrap();
        assert_eq!(l.server().host(), "chat.example.org");
        assert_eq!(l.server().port(), 7000);
        assert_eq!(l.fingerprint(), fp());
        assert_eq!(l.code().map(InviteCode::expose), Some(CODE));
        assert_eq!(l.to_string(), text);
        let trust_only = format!("tlschat://[2001:db8::1]:55555/?fp=SHA256:{HEX}");
        assert_eq!(link(&trust_only).unwrap().to_string(), trust_only);
        assert_eq!(link(&trust_only).unwrap().code(), None);
    }

    #[test]
    fn lenient_forms_print_canonically() {
        let canonical = format!("tlschat://chat.example.org:55555/?fp=SHA256:{HEX}&code={CODE}");
        let colons: Vec<&str> = (0..32).filter_map(|i| HEX.get(i * 2..i * 2 + 2)).collect();
        for form in [
            format!(
                "TLSChat://Chat.Example.ORG?FP=sha256:{}&Code={}",
                HEX.to_uppercase(),
                CODE.to_uppercase()
            ),
            format!("  tlschat://chat.example.org/?fp=SHA256%3A{HEX}&code={CODE}#frag&fp=x\n"),
            format!(
                "tlschat://chat.example.org:55555/?x=1&&fp={}&code={CODE}&later=%FF",
                colons.join("%3a")
            ),
            format!("tlschat://chat.example.org?code={CODE}&fp={HEX}&"),
        ] {
            assert_eq!(
                link(&form).map(|l| l.to_string()),
                Ok(canonical.clone()),
                "{form}"
            );
        }
    }

    #[test]
    fn hostile_links_are_refused() {
        let q = format!("?fp=SHA256:{HEX}");
        let cases: Vec<(String, LinkError)> = vec![
            (format!("https://h/{q}"), LinkError::Scheme),
            (format!("tlschat:/h/{q}"), LinkError::Scheme),
            (format!("tlschat://{q}"), LinkError::NoHost),
            (format!("tlschat://:7/{q}"), LinkError::NoHost),
            (
                format!("tlschat://тест.рф/{q}"),
                LinkError::Host(HostError::NotAscii),
            ),
            (
                format!("tlschat://xn--e1aybc.xn--p1ai:7/{q}&code="),
                LinkError::Code(CodeError::Code),
            ),
            (
                format!("tlschat://::1/{q}"),
                LinkError::Host(HostError::Chars),
            ),
            (
                format!("tlschat://[::1/{q}"),
                LinkError::Host(HostError::Chars),
            ),
            (
                format!("tlschat://[127.0.0.1]/{q}"),
                LinkError::Host(HostError::Chars),
            ),
            (format!("tlschat://[::1]x/{q}"), LinkError::Port),
            (
                format!("tlschat://[fe80::1%25eth0]/{q}"),
                LinkError::Host(HostError::Chars),
            ),
            (format!("tlschat://h:0/{q}"), LinkError::Port),
            (format!("tlschat://h:65536/{q}"), LinkError::Port),
            (format!("tlschat://h:+7/{q}"), LinkError::Port),
            (format!("tlschat://h:/{q}"), LinkError::Port),
            (
                format!("tlschat://user@h/{q}"),
                LinkError::Host(HostError::Chars),
            ),
            (
                format!("tlschat://h%2eorg/{q}"),
                LinkError::Host(HostError::Chars),
            ),
            (format!("tlschat://h/path{q}"), LinkError::Path),
            ("tlschat://h/".into(), LinkError::NoFingerprint),
            ("tlschat://h".into(), LinkError::NoFingerprint),
            (
                format!("tlschat://h/?code={CODE}"),
                LinkError::NoFingerprint,
            ),
            (
                format!("tlschat://h/{q}&fp=SHA256:{HEX}"),
                LinkError::Duplicate("fp"),
            ),
            (
                format!("tlschat://h/{q}&code={CODE}&CODE={CODE}"),
                LinkError::Duplicate("code"),
            ),
            (format!("tlschat://h/{q}%"), LinkError::Escape),
            (format!("tlschat://h/{q}%4"), LinkError::Escape),
            (format!("tlschat://h/?fp=%G1{HEX}"), LinkError::Escape),
            (
                format!("tlschat://h/?fp=%C3%A9{HEX}"),
                LinkError::NotAscii("fingerprint"),
            ),
            (
                format!("tlschat://h/{q}&code=пароль"),
                LinkError::NotAscii("code"),
            ),
            (
                format!("tlschat://h/{q}&code={CODE}+"),
                LinkError::Code(CodeError::Code),
            ),
            (
                format!("tlschat://h/?fp=SHA1:{HEX}"),
                LinkError::Fingerprint(FingerprintError::UnsupportedAlgorithm("SHA1".into())),
            ),
        ];
        for (text, want) in cases {
            assert_eq!(link(&text), Err(want), "{text}");
        }
        let long = format!("tlschat://h/{q}&pad={}", "a".repeat(MAX_LINK_LEN));
        assert_eq!(link(&long), Err(LinkError::TooLong));
        let limit = format!("tlschat://h/{q}&pad=");
        let fits = format!("{limit}{}", "a".repeat(MAX_LINK_LEN - limit.len()));
        assert!(link(&fits).is_ok());
        assert_eq!(link(&format!("{fits}a")), Err(LinkError::TooLong));
        assert_eq!(link(&"🔑".repeat(600)), Err(LinkError::TooLong));
    }

    #[test]
    fn link_from_server_side_parts() {
        let hp: HostPort = "[::1]:6000".parse().unwrap();
        let code = InviteCode::parse(CODE).unwrap();
        let l = InviteLink::new(&hp, fp(), Some(code)).unwrap();
        assert_eq!(
            l.to_string(),
            format!("tlschat://[::1]:6000/?fp=SHA256:{HEX}&code={CODE}")
        );
        let idn: HostPort = "тест.рф".parse().unwrap();
        assert_eq!(
            InviteLink::new(&idn, fp(), None),
            Err(LinkError::Host(HostError::NotAscii))
        );
        assert!(InviteLink::looks_like("  TLSCHAT://x"));
        assert!(!InviteLink::looks_like("tlschat.example.org:7000"));
        assert!(!InviteLink::looks_like("тлс"));
    }

    fn host_strategy() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?(\\.[a-z]([a-z0-9-]{0,8}[a-z0-9])?){0,3}"
                .prop_filter("not all digits", |h| !h
                    .bytes()
                    .all(|b| b.is_ascii_digit() || b == b'.')),
            any::<[u8; 4]>().prop_map(|b| std::net::Ipv4Addr::from(b).to_string()),
            any::<[u8; 16]>().prop_map(|b| std::net::Ipv6Addr::from(b).to_string()),
        ]
    }

    proptest! {
        #[test]
        fn any_link_prints_and_parses_back(
            host in host_strategy(),
            port in 1u16..,
            fp in any::<[u8; 32]>(),
            code in proptest::option::of(any::<[u8; 20]>()),
        ) {
            let hp: HostPort = if host.contains(':') {
                format!("[{host}]:{port}")
            } else {
                format!("{host}:{port}")
            }.parse().unwrap();
            let l = InviteLink::new(&hp, Fingerprint(fp), code.as_ref().map(InviteCode::from_bytes)).unwrap();
            let text = l.to_string();
            prop_assert_eq!(InviteLink::parse(&text), Ok(l));
            prop_assert!(text.len() <= MAX_LINK_LEN);
        }

        #[test]
        fn any_text_parses_or_refuses_without_panic(s in "\\PC{0,80}|tlschat://[\\[\\]a-z0-9:.%@/?&=#-]{0,80}") {
            if let Ok(l) = InviteLink::parse(&s) {
                prop_assert_eq!(InviteLink::parse(&l.to_string()), Ok(l));
            }
        }
    }
}
