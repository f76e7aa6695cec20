//! Fuzzes the invite link parser of crates/protocol (`InviteLink::parse`,
//! `crates/protocol/src/invite.rs`) and the typed `HOST[:PORT]` parser
//! (`HostPort`, `hostport.rs`) with one string. Input that is not UTF-8 is
//! skipped (links arrive as command-line arguments and pasted text).
//!
//! Checked, besides "never panics":
//! - a parsed link prints (`Display`) as a canonical link of at most
//!   `MAX_LINK_LEN` bytes that parses back to an equal link and prints the
//!   same again;
//! - its host passes the link-host rule and is ASCII; its port is not 0;
//! - its code, if any, re-parses to itself and its prefix is the first 6
//!   characters;
//! - an input longer than `MAX_LINK_LEN` bytes is always refused;
//! - `InviteLink::looks_like` holds for every link that parses;
//! - a `HostPort` that parses prints as `HOST:PORT` and parses back equal.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tlschat_protocol::invite::{MAX_LINK_LEN, PREFIX_LEN};
use tlschat_protocol::{HostPort, InviteCode, InviteLink};

fn check_link(s: &str) {
    let Ok(link) = InviteLink::parse(s) else {
        return;
    };
    assert!(s.len() <= MAX_LINK_LEN, "{} bytes accepted", s.len());
    assert!(InviteLink::looks_like(s), "{s:?}");
    let printed = link.to_string();
    assert!(printed.len() <= MAX_LINK_LEN, "{printed}");
    assert!(printed.starts_with("tlschat://") && printed.is_ascii(), "{printed}");
    let again = InviteLink::parse(&printed).expect("a printed link parses");
    assert_eq!(again, link, "{printed}");
    assert_eq!(again.to_string(), printed);
    let host = link.server().host();
    assert_eq!(HostPort::check_link_host(host).as_deref(), Ok(host));
    assert_ne!(link.server().port(), 0);
    if let Some(code) = link.code() {
        assert_eq!(InviteCode::parse(code.expose()).as_ref(), Ok(code));
        let prefix = code.prefix();
        assert_eq!(prefix.as_str().len(), PREFIX_LEN);
        assert!(code.expose().starts_with(prefix.as_str()));
    }
}

fn check_host_port(s: &str) {
    let Ok(hp) = s.parse::<HostPort>() else {
        return;
    };
    assert_ne!(hp.port(), 0);
    let printed = hp.to_string();
    assert_eq!(printed.parse::<HostPort>().as_ref(), Ok(&hp), "{printed}");
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    check_link(s);
    check_host_port(s);
});
