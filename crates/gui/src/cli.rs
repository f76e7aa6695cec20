//! The command line, `tlschat-gui [HOST[:PORT] | LINK] [--nick NAME]
//! [--fingerprint SHA256:HEX | --ca FILE] [--known-hosts FILE]`, turned
//! into what the window starts with: a [`Start`]. LINK is an invite link
//! (`tlschat://HOST:PORT/?fp=…&code=…`), as a clicked link arrives
//! (the `.desktop` file's `%u`, the Windows registry's `-- "%1"`: after
//! `--` a flag-like text is one more positional argument, which clap
//! refuses).
//!
//! The flags mean what the terminal client's do. Bad input does not stop
//! the program: a double-clicked app has no terminal to read an error on,
//! so the error goes to stderr and onto the connect screen alike, and the
//! window opens with what was good filled in. Only `--help` and
//! `--version` end the program (on Windows, where the window has no
//! console, their text goes nowhere).

use std::ffi::OsString;
use std::path::PathBuf;

use clap::error::ErrorKind;
use clap::Parser;
use tlschat_client_core::trust::{self, Trust};
use tlschat_client_core::HostPort;
use tlschat_protocol::{Fingerprint, InviteLink, Nick};

const AFTER_HELP: &str = "\
With a server and a nickname the window connects at once; with only a
server it opens on the connect screen with the server filled in. An invite
link (quote it in a shell: it holds `&`) fills in the connect screen and
never connects by itself: its certificate is trusted without asking, and
its code answers the server's join password question.

Trust: with neither --ca nor --fingerprint, a publicly trusted certificate is
accepted as usual; otherwise the first connection shows the server's
certificate fingerprint and asks, and remembers the answer in known_hosts
(shared with the terminal client). A changed certificate is refused.

Examples:
  tlschat-gui chat.example.org
  tlschat-gui --nick alice 203.0.113.7:55555
  tlschat-gui --nick alice --fingerprint SHA256:5ba0...3b [::1]:55555
  tlschat-gui 'tlschat://chat.example.org:55555/?fp=SHA256:5ba0...3b&code=...'";

/// The flags. Values are taken as text and checked afterwards, so that a
/// bad one can be shown in the window instead of ending the program.
#[derive(Parser, Debug)]
#[command(name = "tlschat-gui", version, about = "The tlschat desktop client", after_help = AFTER_HELP)]
struct Cli {
    /// The server: HOST, HOST:PORT or [IPv6]:PORT (default port 55555),
    /// or an invite link (tlschat://…).
    #[arg(value_name = "HOST[:PORT] | LINK")]
    server: Option<String>,
    /// Your nickname.
    #[arg(long, short, env = "TLSCHAT_NICK", value_name = "NAME")]
    nick: Option<String>,
    /// Trust this PEM certificate or CA (host name checked).
    #[arg(long, value_name = "FILE", conflicts_with = "fingerprint")]
    ca: Option<PathBuf>,
    /// Accept only the certificate with this fingerprint.
    #[arg(long, value_name = "SHA256:HEX")]
    fingerprint: Option<String>,
    /// The known_hosts file [default: in the platform's config directory]
    #[arg(long, env = "TLSCHAT_KNOWN_HOSTS", value_name = "FILE")]
    known_hosts: Option<PathBuf>,
}

/// What the window starts with.
#[derive(Debug, Default)]
pub struct Start {
    /// Fills in the connect screen's Server field.
    pub server: Option<String>,
    /// Fills in the Nickname field.
    pub nickname: Option<String>,
    /// `--fingerprint` or `--ca`: how to trust `server` (and no other).
    pub trust: Option<Trust>,
    /// `--known-hosts`: instead of the platform's file.
    pub known_hosts: Option<PathBuf>,
    /// An invite link given in place of the server (`server` then holds
    /// its `host:port`).
    pub invite: Option<InviteLink>,
    /// Why the command line was not used in full; shown on the connect
    /// screen (and printed by `main`).
    pub error: Option<String>,
}

impl Start {
    /// Connect at once: a server and a nickname given, nothing wrong, and
    /// no invite link (a link that arrived in a click is looked at first).
    pub fn connects(&self) -> bool {
        self.error.is_none()
            && self.server.is_some()
            && self.nickname.is_some()
            && self.invite.is_none()
    }
}

/// Parses `args` (the program name first). `Err` only for `--help` and
/// `--version`, whose text the caller prints before exiting.
pub fn parse<I, T>(args: I) -> Result<Start, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    match Cli::try_parse_from(args) {
        Ok(cli) => Ok(cli.start()),
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => Err(e),
        Err(e) => Ok(Start {
            error: Some(usage_error(&e)),
            ..Start::default()
        }),
    }
}

/// clap's message without its `error: ` and the usage lines after it.
fn usage_error(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let first = text.lines().next().unwrap_or_default();
    let first = first.strip_prefix("error: ").unwrap_or(first);
    format!("{first} (tlschat-gui --help lists the options)")
}

impl Cli {
    fn start(self) -> Start {
        let mut start = Start {
            server: self.server,
            nickname: self.nick.map(|n| n.trim().to_owned()),
            known_hosts: self.known_hosts,
            ..Start::default()
        };
        if let Err(e) = start.check(self.fingerprint.as_deref(), self.ca) {
            start.error = Some(e);
        }
        start
    }
}

impl Start {
    /// Checks the server, the nickname and the trust flags; keeps the trust.
    fn check(&mut self, fingerprint: Option<&str>, ca: Option<PathBuf>) -> Result<(), String> {
        if let Some(server) = self.server.take_if(|s| InviteLink::looks_like(s)) {
            // A broken link is not put into the Server field: its code
            // is a secret, and the field's text is remembered.
            if server
                .trim()
                .contains(|c: char| c == '"' || c.is_whitespace())
            {
                // Windows pastes a clicked URL into its command line
                // unescaped: a `"` or a space there means the URL was
                // made to split into more arguments.
                return Err("invite link: a link holds no quote or whitespace".into());
            }
            let link = InviteLink::parse(&server).map_err(|e| format!("invite link: {e}"))?;
            if fingerprint.is_some() || ca.is_some() {
                return Err(
                    "an invite link carries the fingerprint: leave out --fingerprint and --ca"
                        .into(),
                );
            }
            self.server = Some(link.server().to_string());
            self.invite = Some(link);
        }
        if let Some(server) = &self.server {
            server
                .trim()
                .parse::<HostPort>()
                .map_err(|e| format!("server: {e}"))?;
        }
        if let Some(nick) = &self.nickname {
            Nick::parse(nick).map_err(|e| format!("invalid nickname `{nick}`: {e}"))?;
        }
        self.trust = match (fingerprint, ca) {
            (Some(fp), _) => Some(Trust::Pin(
                Fingerprint::parse(fp).map_err(|e| format!("--fingerprint: {e}"))?,
            )),
            (None, Some(ca)) => Some(Trust::Ca(trust::load_ca(&ca).map_err(|e| e.to_string())?)),
            (None, None) => None,
        };
        if self.trust.is_some() && self.server.is_none() {
            return Err("--fingerprint and --ca need the server they are for (HOST[:PORT])".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FP: &str = "SHA256:5ba093e7d4c1a0a4f2f0c4ef3b2b1c0f9a8e7d6c5b4a39281706f5e4d3c2b13b";

    fn start(args: &[&str]) -> Start {
        let args = std::iter::once("tlschat-gui").chain(args.iter().copied());
        parse(args).expect("not --help or --version")
    }

    #[test]
    fn nothing_given_opens_the_empty_connect_screen() {
        let s = start(&[]);
        assert!(s.server.is_none() && s.trust.is_none() && s.error.is_none());
        assert!(!s.connects());
    }

    #[test]
    fn a_server_alone_fills_in_the_form_without_connecting() {
        let s = start(&["chat.example.org:4000"]);
        assert_eq!(s.server.as_deref(), Some("chat.example.org:4000"));
        assert!(s.error.is_none());
        assert_eq!(s.connects(), s.nickname.is_some(), "TLSCHAT_NICK set here?");
    }

    #[test]
    fn a_server_and_a_nickname_connect_with_the_pin() {
        let s = start(&["--nick", "alice", "--fingerprint", FP, "[::1]:55555"]);
        assert!(s.connects(), "{:?}", s.error);
        assert_eq!(s.nickname.as_deref(), Some("alice"));
        let Some(Trust::Pin(fp)) = s.trust else {
            panic!("no pin: {:?}", s.trust)
        };
        assert_eq!(fp.to_string(), FP);
    }

    #[test]
    fn bad_input_is_an_error_for_the_screen_with_the_rest_kept() {
        let s = start(&["--nick", "alice", "host:99999"]);
        let error = s.error.clone().unwrap_or_default();
        assert!(error.starts_with("server: bad port `99999`"), "{error}");
        assert_eq!(s.nickname.as_deref(), Some("alice"));
        assert!(!s.connects());

        let s = start(&["--nick", "alice", "--fingerprint", "SHA256:12zz", "host"]);
        let error = s.error.clone().unwrap_or_default();
        assert!(error.starts_with("--fingerprint: "), "{error}");
        assert!(!s.connects());

        let s = start(&["--nick", "al ice", "host"]);
        let error = s.error.clone().unwrap_or_default();
        assert!(error.starts_with("invalid nickname `al ice`"), "{error}");

        let s = start(&["--fingerprint", FP]);
        let error = s.error.clone().unwrap_or_default();
        assert!(error.contains("need the server"), "{error}");

        let s = start(&["--ca", "/nonexistent/ca.pem", "host"]);
        let error = s.error.clone().unwrap_or_default();
        assert!(error.contains("/nonexistent/ca.pem"), "{error}");
    }

    const CODE: &str = "abcdefghijklmnopqrstuvwxyz234567";

    #[test]
    fn an_invite_link_fills_in_the_server_and_never_connects_by_itself() {
        let link = format!("tlschat://chat.example.org:4000/?fp={FP}&code={CODE}");
        let s = start(&["--nick", "alice", &link]);
        assert!(s.error.is_none(), "{:?}", s.error);
        assert_eq!(s.server.as_deref(), Some("chat.example.org:4000"));
        let invite = s.invite.as_ref().expect("the link is kept");
        assert_eq!(invite.fingerprint().to_string(), FP);
        assert_eq!(invite.code().map(|c| c.expose()), Some(CODE));
        assert!(!s.connects());
    }

    #[test]
    fn a_bad_invite_link_is_its_error_and_fills_in_nothing() {
        let link = format!("TLSCHAT://[::1]:4000/?fp=SHA256:12zz&code={CODE}");
        let s = start(&["--nick", "alice", &link]);
        let error = s.error.clone().unwrap_or_default();
        assert!(error.starts_with("invite link: bad fingerprint"), "{error}");
        assert!(s.server.is_none() && s.invite.is_none());
        assert_eq!(s.nickname.as_deref(), Some("alice"));

        let link = format!("tlschat://host/?fp={FP}");
        let s = start(&["--fingerprint", FP, &link]);
        let error = s.error.clone().unwrap_or_default();
        assert!(error.contains("leave out --fingerprint"), "{error}");
        assert!(s.trust.is_none() && !s.connects());
    }

    #[test]
    fn a_link_after_double_dash_is_the_one_positional() {
        // The Windows registry runs `tlschat-gui.exe -- "%1"` with the
        // clicked URL pasted in unescaped: a `"` in it ends the quoted
        // argument, and what follows must not become flags.
        let link = format!("tlschat://chat.example.org:4000/?fp={FP}&code={CODE}");
        let s = start(&["--", &link]);
        assert!(s.error.is_none(), "{:?}", s.error);
        assert!(s.invite.is_some());

        let s = start(&["--", &link, "--known-hosts", "\\\\evil\\share\\kh"]);
        let error = s.error.clone().unwrap_or_default();
        assert!(error.contains("unexpected argument"), "{error}");
        assert!(s.known_hosts.is_none() && s.invite.is_none() && s.server.is_none());
    }

    #[test]
    fn a_link_holding_a_quote_or_whitespace_is_refused() {
        for link in [
            format!("tlschat://chat.example.org:4000/?fp={FP}&x=\"&code={CODE}"),
            format!("tlschat://chat.example.org:4000/?fp={FP}&x= --nick&code={CODE}"),
            format!("tlschat://chat.example.org:4000/?fp={FP}&x=\t&code={CODE}"),
        ] {
            let s = start(&["--", &link]);
            let error = s.error.clone().unwrap_or_default();
            assert!(error.starts_with("invite link: "), "{error}");
            assert!(error.contains("quote") && !error.contains(CODE), "{error}");
            assert!(s.server.is_none() && s.invite.is_none());
        }
    }

    #[test]
    fn usage_errors_are_shown_too() {
        let s = start(&["--frobnicate"]);
        let error = s.error.unwrap_or_default();
        assert!(error.contains("--frobnicate"), "{error}");
        assert!(error.ends_with("(tlschat-gui --help lists the options)"));

        let s = start(&["--ca", "ca.pem", "--fingerprint", FP, "host"]);
        let error = s.error.unwrap_or_default();
        assert!(error.contains("cannot be used with"), "{error}");
    }

    #[test]
    fn help_and_version_are_for_the_caller_to_print() {
        for flag in ["--help", "--version"] {
            let parsed = parse(["tlschat-gui", flag]);
            assert!(parsed.is_err(), "{flag}");
        }
    }
}
