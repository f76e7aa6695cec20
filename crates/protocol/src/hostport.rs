//! Where a server is: `HOST[:PORT]` as a user types it, one parser for
//! every front end and for the host part of invite links.
//!
//! ```text
//! "example.org:7000" | "[::1]:6000" | "::1" | "host" → HostPort::from_str
//! HostPort → Display → "example.org:7000" | "[::1]:6000" (port always written)
//! ```
//!
//! Typed `HOST[:PORT]` takes any non-empty host (the resolver decides);
//! [`HostPort::check_link_host`] is the stricter rule for links, which are
//! passed around and clicked rather than typed.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use crate::DEFAULT_PORT;

/// Longest DNS name, in bytes (all ASCII).
pub const MAX_HOST_LEN: usize = 253;

/// `HOST[:PORT]`, with IPv6 as `[::1]:55555` (or a bare `::1`). An IP
/// address is stored in its canonical spelling (`[0:0::1]` is `::1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    host: String,
    port: u16,
}

impl HostPort {
    /// The host name or address, IPv6 without brackets.
    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// A host as a link may carry it: a DNS name of ASCII letters, digits,
    /// `-` and `.` (non-empty labels of at most 63, at most 253 in all),
    /// an IPv4 address or an IPv6 address (given here without brackets).
    /// Returns the canonical spelling (lower case, IPv6 compressed).
    pub fn check_link_host(host: &str) -> Result<String, HostError> {
        if let Ok(v6) = host.parse::<Ipv6Addr>() {
            return Ok(v6.to_string());
        }
        if let Ok(v4) = host.parse::<Ipv4Addr>() {
            return Ok(v4.to_string());
        }
        if !host.is_ascii() {
            return Err(HostError::NotAscii);
        }
        if host.is_empty() || host.len() > MAX_HOST_LEN {
            return Err(HostError::Length);
        }
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        };
        if !host.split('.').all(label_ok) {
            return Err(HostError::Chars);
        }
        // `1.2.3` or `999.1.1.1` is a mistyped address, not a name.
        if host.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            return Err(HostError::Chars);
        }
        Ok(host.to_ascii_lowercase())
    }

    /// A host already checked by [`HostPort::check_link_host`].
    pub(crate) fn from_checked(host: String, port: u16) -> HostPort {
        HostPort { host, port }
    }
}

/// Why a link's host was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    #[error("the host name is not ASCII: use its xn-- form (what `idn2` prints)")]
    NotAscii,
    #[error("a host name has 1 to {MAX_HOST_LEN} characters")]
    Length,
    #[error("a host is a DNS name (letters, digits, - and . between non-empty labels), an IPv4 address or [IPv6]")]
    Chars,
}

impl FromStr for HostPort {
    type Err = String;
    fn from_str(s: &str) -> Result<HostPort, String> {
        let bad_port = |p: &str| format!("bad port `{p}` in `{s}`: a number from 1 to 65535");
        let port_of = |p: &str| match p.parse::<u16>() {
            Ok(0) | Err(_) => Err(bad_port(p)),
            Ok(n) => Ok(n),
        };
        if let Some(rest) = s.strip_prefix('[') {
            let (host, after) = rest
                .split_once(']')
                .ok_or_else(|| format!("`{s}`: missing `]` after an IPv6 address"))?;
            let v6 = host
                .parse::<Ipv6Addr>()
                .map_err(|_| format!("`{host}` is not an IPv6 address"))?;
            let port = match after {
                "" => DEFAULT_PORT,
                p => port_of(
                    p.strip_prefix(':')
                        .ok_or_else(|| format!("`{s}`: expected `:PORT` after `]`"))?,
                )?,
            };
            return Ok(HostPort {
                host: v6.to_string(),
                port,
            });
        }
        if let Ok(v6) = s.parse::<Ipv6Addr>() {
            return Ok(HostPort {
                host: v6.to_string(),
                port: DEFAULT_PORT,
            });
        }
        let (host, port) = match s.rsplit_once(':') {
            Some((h, p)) => (h, port_of(p)?),
            None => (s, DEFAULT_PORT),
        };
        if host.is_empty() {
            return Err(format!("`{s}`: no host name"));
        }
        if host.contains(':') {
            return Err(format!(
                "`{host}` is not an IPv6 address; an IPv6 address with a port is written [ADDRESS]:PORT"
            ));
        }
        // An IPv4 address has one spelling already (its parser takes no
        // other), so the known_hosts key is the same however it is typed.
        Ok(HostPort {
            host: host.to_owned(),
            port,
        })
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hp(s: &str) -> Result<HostPort, String> {
        s.parse()
    }

    #[test]
    fn host_port_forms() {
        assert_eq!(
            hp("example.org").unwrap(),
            HostPort {
                host: "example.org".into(),
                port: 55555
            }
        );
        assert_eq!(hp("example.org:7000").unwrap().port(), 7000);
        assert_eq!(
            hp("[::1]:6000").unwrap(),
            HostPort {
                host: "::1".into(),
                port: 6000
            }
        );
        assert_eq!(hp("[::1]").unwrap().port(), 55555);
        assert_eq!(hp("::1").unwrap().host(), "::1");
        assert!(hp("host:0").is_err());
        assert!(hp("host:x").is_err());
        assert!(hp(":55555").is_err());
        assert!(hp("[::1").is_err());
        assert!(hp("[::1]x").is_err());
        // Printed with brackets, it would not parse back.
        assert!(hp("a:b:7").is_err());
        assert!(hp("1::2::3:7").is_err());
        assert_eq!(hp("[::1]:6000").unwrap().to_string(), "[::1]:6000");
        // An address is stored in one spelling, whatever was typed: it is
        // the known_hosts key.
        assert_eq!(hp("[0:0::1]:6000").unwrap().to_string(), "[::1]:6000");
        assert_eq!(hp("2001:DB8:0:0::1").unwrap().host(), "2001:db8::1");
        assert_eq!(
            hp("[::ffff:7f00:1]:6000").unwrap().to_string(),
            "[::ffff:127.0.0.1]:6000"
        );
        assert_eq!(hp("h:1").unwrap().to_string(), "h:1");
        // Typed hosts are the resolver's business, non-ASCII included.
        assert_eq!(hp("тест.рф:7").unwrap().host(), "тест.рф");
    }

    #[test]
    fn link_hosts() {
        let ok = |s: &str| HostPort::check_link_host(s);
        assert_eq!(ok("Chat.Example.ORG"), Ok("chat.example.org".into()));
        assert_eq!(ok("xn--e1aybc.xn--p1ai"), Ok("xn--e1aybc.xn--p1ai".into()));
        assert_eq!(ok("192.0.2.7"), Ok("192.0.2.7".into()));
        assert_eq!(ok("2001:DB8:0:0::1"), Ok("2001:db8::1".into()));
        assert_eq!(ok("localhost"), Ok("localhost".into()));
        assert_eq!(ok(&"a".repeat(63)), Ok("a".repeat(63)));
        assert_eq!(ok("тест.рф"), Err(HostError::NotAscii));
        assert_eq!(ok("ex\u{200b}ample.org"), Err(HostError::NotAscii));
        assert_eq!(ok(""), Err(HostError::Length));
        let long = format!("{}.{}", "a".repeat(63), "b.".repeat(95));
        assert_eq!(ok(&long), Err(HostError::Length));
        for bad in [
            "a..b",
            ".a",
            "a.",
            "-a.b",
            "a-.b",
            "a_b",
            "a b",
            "a%2eb",
            "1.2.3",
            "999.1.1.1",
            "user@host",
            "[::1]",
            "fe80::1%eth0",
            &"a".repeat(64),
        ] {
            assert_eq!(ok(bad), Err(HostError::Chars), "{bad:?}");
        }
    }
}
