//! A certificate's fingerprint: the SHA-256 of its DER, which clients pin
//! for self-signed certificates.
//!
//! ```text
//! certificate DER → Fingerprint::of_der → "SHA256:<64 hex>" (Display)
//! what a user typed or a file holds → Fingerprint::parse → Fingerprint
//! ```
//!
//! The server prints it at startup; the clients parse it from the command
//! line and `known_hosts`, compare it with the certificate a server shows,
//! and print the [`Fingerprint::short`] form in status lines.

use std::fmt;
use std::str::FromStr;

use aws_lc_rs::digest;

/// SHA-256 of a certificate's DER.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Fingerprint(pub [u8; 32]);

/// Why a fingerprint given by a user could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FingerprintError {
    #[error("the fingerprint is empty; expected SHA256: followed by 64 hex digits, as printed by tlschat-server at startup")]
    Empty,
    #[error("fingerprint algorithm {0:?} is not supported; tlschat uses SHA256 fingerprints (SHA256: followed by 64 hex digits), as printed by tlschat-server at startup")]
    UnsupportedAlgorithm(String),
    #[error("the fingerprint has an invalid character {ch:?} at position {position}; expected hex digits (0-9, a-f), optionally separated by ':' between bytes")]
    InvalidChar { ch: char, position: usize },
    #[error("the fingerprint has a misplaced ':' at position {position}; ':' may only separate two-digit bytes")]
    MisplacedSeparator { position: usize },
    #[error("the fingerprint has {digits} hex digits, expected 64 (a SHA-256 fingerprint); copy the whole value printed by tlschat-server at startup")]
    WrongLength { digits: usize },
}

impl Fingerprint {
    /// SHA-256 of `der` (the certificate's DER bytes, not its PEM text).
    pub fn of_der(der: &[u8]) -> Fingerprint {
        let digest = digest::digest(&digest::SHA256, der);
        let mut out = [0u8; 32];
        // SHA-256 output is always 32 bytes.
        out.copy_from_slice(digest.as_ref());
        Fingerprint(out)
    }

    /// Parses `SHA256:<64 hex>` or bare hex, in any case, with optional
    /// `:` between byte pairs (the form `openssl x509 -fingerprint` prints).
    pub fn parse(s: &str) -> Result<Fingerprint, FingerprintError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(FingerprintError::Empty);
        }
        let hex = strip_algorithm(s)?;
        // Positions in errors are 1-based and count from the start of the
        // user's (trimmed) input, prefix included, so they can find the spot.
        let offset = s.chars().count() - hex.chars().count();

        let mut nibbles = Vec::with_capacity(64);
        let mut prev_was_colon = false;
        for (i, ch) in hex.chars().enumerate() {
            let position = offset + i + 1;
            if ch == ':' {
                let between_bytes =
                    !nibbles.is_empty() && nibbles.len() % 2 == 0 && !prev_was_colon;
                if !between_bytes {
                    return Err(FingerprintError::MisplacedSeparator { position });
                }
                prev_was_colon = true;
                continue;
            }
            let Some(value) = ch.to_digit(16) else {
                return Err(FingerprintError::InvalidChar { ch, position });
            };
            prev_was_colon = false;
            // to_digit(16) is always < 16.
            nibbles.push(value as u8);
        }
        if prev_was_colon {
            return Err(FingerprintError::MisplacedSeparator {
                position: s.chars().count(),
            });
        }
        if nibbles.len() != 64 {
            return Err(FingerprintError::WrongLength {
                digits: nibbles.len(),
            });
        }
        let mut out = [0u8; 32];
        for (byte, pair) in out.iter_mut().zip(nibbles.chunks_exact(2)) {
            *byte = (pair[0] << 4) | pair[1];
        }
        Ok(Fingerprint(out))
    }

    /// `SHA256:` and the first 16 hex digits: enough to recognise a
    /// certificate in a status bar, not enough to pin it.
    pub fn short(&self) -> String {
        let mut s = String::with_capacity(7 + 16);
        s.push_str("SHA256:");
        push_hex(&mut s, &self.0[..8]);
        s
    }
}

/// Strips a `SHA256:` / `SHA-256:` prefix; rejects other algorithm labels
/// (`SHA1:`, `MD5:`) with a clear error instead of "invalid character 'S'".
fn strip_algorithm(s: &str) -> Result<&str, FingerprintError> {
    let Some((label, rest)) = s.split_once(':') else {
        return Ok(s);
    };
    if label.chars().all(|c| c.is_ascii_hexdigit()) {
        // A hex byte followed by a separator, not a label.
        return Ok(s);
    }
    if label.eq_ignore_ascii_case("sha256") || label.eq_ignore_ascii_case("sha-256") {
        return Ok(rest);
    }
    if label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(FingerprintError::UnsupportedAlgorithm(label.to_string()));
    }
    Ok(s)
}

fn push_hex(out: &mut String, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(HEX[usize::from(b >> 4)] as char);
        out.push(HEX[usize::from(b & 0x0f)] as char);
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::with_capacity(7 + 64);
        s.push_str("SHA256:");
        push_hex(&mut s, &self.0);
        f.write_str(&s)
    }
}

impl FromStr for Fingerprint {
    type Err = FingerprintError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Fingerprint::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_display_parse_round_trip() {
        let fp = Fingerprint::of_der(b"hello");
        let s = fp.to_string();
        assert_eq!(
            s,
            "SHA256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert_eq!(fp.short(), "SHA256:2cf24dba5fb0a30e");
        assert_eq!(Fingerprint::parse(&s).unwrap(), fp);
        assert_eq!(s.parse::<Fingerprint>().unwrap(), fp);

        let bare = s.strip_prefix("SHA256:").unwrap();
        assert_eq!(Fingerprint::parse(bare).unwrap(), fp);
        assert_eq!(Fingerprint::parse(&bare.to_uppercase()).unwrap(), fp);
        assert_eq!(Fingerprint::parse(&format!("sha256:{bare}")).unwrap(), fp);
        assert_eq!(
            Fingerprint::parse(&format!("  SHA-256:{bare}\n")).unwrap(),
            fp
        );
        let colons: Vec<String> = bare
            .as_bytes()
            .chunks(2)
            .map(|p| String::from_utf8(p.to_vec()).unwrap().to_uppercase())
            .collect();
        let colons = colons.join(":");
        assert_eq!(Fingerprint::parse(&colons).unwrap(), fp);
        assert_eq!(Fingerprint::parse(&format!("SHA256:{colons}")).unwrap(), fp);
    }

    #[test]
    fn fingerprint_parse_errors() {
        use FingerprintError::*;
        let hex64 = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
        assert_eq!(Fingerprint::parse("  "), Err(Empty));
        assert_eq!(
            Fingerprint::parse("SHA256:"),
            Err(WrongLength { digits: 0 })
        );
        assert_eq!(
            Fingerprint::parse(hex64.get(..62).unwrap()),
            Err(WrongLength { digits: 62 })
        );
        assert_eq!(
            Fingerprint::parse(&format!("{hex64}00")),
            Err(WrongLength { digits: 66 })
        );
        let bad = format!("{}g{}", hex64.get(..10).unwrap(), hex64.get(11..).unwrap());
        assert_eq!(
            Fingerprint::parse(&bad),
            Err(InvalidChar {
                ch: 'g',
                position: 11
            })
        );
        assert_eq!(
            Fingerprint::parse(&format!("SHA1:{}", hex64.get(..40).unwrap())),
            Err(UnsupportedAlgorithm("SHA1".into()))
        );
        assert!(matches!(
            Fingerprint::parse(&format!("2:c{}", hex64.get(2..).unwrap())),
            Err(MisplacedSeparator { .. })
        ));
        assert!(matches!(
            Fingerprint::parse(&format!(":{hex64}")),
            Err(MisplacedSeparator { position: 1 })
        ));
        assert!(matches!(
            Fingerprint::parse(&format!("{hex64}:")),
            Err(MisplacedSeparator { .. })
        ));
        assert!(matches!(
            Fingerprint::parse(&format!("2c::{}", hex64.get(2..).unwrap())),
            Err(MisplacedSeparator { position: 4 })
        ));
        let msg = WrongLength { digits: 62 }.to_string();
        assert!(msg.contains("62") && msg.contains("64"), "{msg}");
    }
}
