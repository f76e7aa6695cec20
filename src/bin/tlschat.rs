//! `tlschat`: the chat client. A terminal UI at a terminal, plain line mode
//! otherwise (or with `--plain`).
//!
//! clap parses the flags into [`ClientOptions`]; the first connection is
//! made here, where the user can still be asked about an unknown
//! certificate or a password; then the session runs under the front end
//! this chooses: `tlschat::tui` or `tlschat::plain`.
//!
//! The server argument is `HOST[:PORT]` or an invite link ([`ServerArg`]):
//! a link names the certificate to trust (stored in known_hosts without a
//! question, never replacing what is there) and may carry the invite code
//! that answers the server's `PASS join`.

// No byte-index slicing of text (see the library's top-level doc).
#![warn(clippy::string_slice)]

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::builder::TypedValueParser;
use clap::{CommandFactory, Parser};
use tokio::sync::mpsc;

use tlschat::generate::{self, Generate};
use tlschat_client_core::state::EntryKind;
use tlschat_client_core::trust::{self, KnownHosts, Trust};
use tlschat_client_core::{
    self as client, exit, render, ChatState, ClientEvent, ClientHandle, ClientOptions, Connected,
    HostPort, Prompter,
};
use tlschat_protocol::{Fingerprint, InviteLink, Nick};

/// musl's own malloc takes one lock for every thread's allocations; on musl
/// targets (the static Linux builds) mimalloc replaces it. Other targets keep
/// the platform's allocator.
#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const AFTER_HELP: &str = "\
Trust: with neither --ca nor --fingerprint, a publicly trusted certificate is
accepted as usual; otherwise the first connection shows the server's
certificate fingerprint and asks, like ssh, and remembers the answer in
known_hosts. A changed certificate is refused.

Invite links: give a tlschat://HOST:PORT/?fp=SHA256:...&code=... link in
place of HOST[:PORT], in single quotes (the shell ends a command at `&`).
Its certificate is trusted without asking and stored in known_hosts (a
different one, or one that known_hosts contradicts, is refused as a changed
certificate), and its code answers the server's join question. A command
line is visible to other local users (ps) and kept in the shell's history:
on a shared machine give the link without its &code=... and the code in
--join-password-file FILE. A server that asks for a join password without
a link: --join-password-file, TLSCHAT_JOIN_PASSWORD, or a hidden prompt at
a terminal.

Passwords: the terminal UI masks what you type after /register and
/password and keeps those lines out of its history; plain mode cannot mask
what the terminal echoes (pipe such lines in from a file instead).

Exit codes:
  0  normal exit (/quit, end of input in plain mode)
  1  error (network, I/O)
  2  usage error
  3  trust failure (unknown or changed certificate, --ca or --fingerprint mismatch)
  4  refused (wrong password), banned or kicked

Examples:
  tlschat chat.example.org                          terminal UI, asks for a nickname
  tlschat --nick alice 203.0.113.7:55555
  tlschat --nick alice --fingerprint SHA256:5ba0...3b [::1]:55555
  tlschat --nick alice 'tlschat://chat.example.org:55555/?fp=SHA256:5ba0...3b&code=...'
  echo 'hello' | tlschat --plain --nick bot --accept-new localhost
  TLSCHAT_PASSWORD=... tlschat --nick admin localhost";

#[derive(Parser, Debug)]
#[command(name = "tlschat", version = tlschat::VERSION, about = "Chat on a tlschat server", after_help = AFTER_HELP)]
struct Cli {
    /// The server: HOST, HOST:PORT or [IPv6]:PORT (default port 55555), or
    /// an invite link tlschat://... (in single quotes).
    #[arg(value_name = "HOST[:PORT]|LINK", value_parser = ServerArgParser)]
    server: ServerArg,
    /// Your nickname (asked for when missing).
    #[arg(long, short, env = "TLSCHAT_NICK", value_name = "NAME")]
    nick: Option<String>,
    /// Read the password (for an account such as `admin`) from this file's
    /// first line. TLSCHAT_PASSWORD works too; else a hidden prompt.
    #[arg(long, value_name = "FILE")]
    password_file: Option<PathBuf>,
    /// Read the server's join password (or an invite code) from this
    /// file's first line. An invite link's code comes before
    /// TLSCHAT_JOIN_PASSWORD; else a hidden prompt.
    #[arg(long, value_name = "FILE")]
    join_password_file: Option<PathBuf>,
    /// Line mode: read lines from stdin, print one event per line. Chosen
    /// automatically when stdin or stdout is not a terminal.
    #[arg(long)]
    plain: bool,
    /// Trust this PEM certificate or CA (host name checked).
    #[arg(long, value_name = "FILE", conflicts_with = "fingerprint")]
    ca: Option<PathBuf>,
    /// Accept only the certificate with this fingerprint.
    #[arg(long, value_name = "SHA256:HEX", value_parser = parse_fingerprint)]
    fingerprint: Option<Fingerprint>,
    /// Add an unknown server to known_hosts without asking (never replaces
    /// a known one).
    #[arg(long)]
    accept_new: bool,
    /// The known_hosts file [default: in the platform's config directory]
    #[arg(long, env = "TLSCHAT_KNOWN_HOSTS", value_name = "FILE")]
    known_hosts: Option<PathBuf>,
    /// Do not reconnect after a lost connection.
    #[arg(long)]
    no_reconnect: bool,
    /// Print a shell completion script or the man page and exit (for
    /// packaging; see src/generate.rs).
    #[arg(long, value_enum, value_name = "WHAT", hide = true, exclusive = true)]
    generate: Option<Generate>,
}

/// What the positional argument names: a server, or an invite link.
#[derive(Debug, Clone)]
enum ServerArg {
    HostPort(HostPort),
    Link(InviteLink),
}

impl ServerArg {
    /// A link when it starts with the link's scheme (so a broken link gets
    /// the link's error), else `HOST[:PORT]`.
    fn parse(s: &str) -> Result<ServerArg, String> {
        if InviteLink::looks_like(s) {
            return InviteLink::parse(s)
                .map(ServerArg::Link)
                .map_err(|e| format!("invalid invite link: {e}"));
        }
        s.parse().map(ServerArg::HostPort)
    }
}

/// Parses [`ServerArg`] with an error of its own words: clap's would quote
/// the whole argument, which may be a long link with control characters
/// in it.
#[derive(Clone)]
struct ServerArgParser;

impl TypedValueParser for ServerArgParser {
    type Value = ServerArg;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        _arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<ServerArg, clap::Error> {
        let fail = |msg: &str| {
            let msg = render::sanitize_lines(msg);
            clap::Error::raw(clap::error::ErrorKind::ValueValidation, format!("{msg}\n"))
                .with_cmd(cmd)
        };
        let text = value
            .to_str()
            .ok_or_else(|| fail("the server argument is not valid text"))?;
        ServerArg::parse(text).map_err(|e| fail(&e))
    }
}

fn parse_fingerprint(s: &str) -> Result<Fingerprint, String> {
    Fingerprint::parse(s).map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    // Before the full parse, which requires HOST[:PORT].
    if let Some(what) = generate::requested() {
        return print_generated(what);
    }
    let cli = Cli::parse();
    if let Some(what) = cli.generate {
        return print_generated(what);
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tlschat: cannot start the async runtime: {e}");
            return ExitCode::from(exit::ERROR);
        }
    };
    let code = runtime.block_on(run(cli));
    // The stdin reader may still sit in a blocking read: do not wait for it.
    runtime.shutdown_timeout(Duration::from_millis(100));
    ExitCode::from(code)
}

/// `--generate WHAT`: a completion script or the man page on stdout.
fn print_generated(what: Generate) -> ExitCode {
    let mut out = std::io::stdout().lock();
    match generate::write(Cli::command(), what, &mut out).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tlschat: cannot write to stdout: {e}");
            ExitCode::from(exit::ERROR)
        }
    }
}

/// A message and an exit code.
struct Fail(u8, String);

async fn run(cli: Cli) -> u8 {
    match try_run(cli).await {
        Ok(code) => code,
        Err(Fail(code, msg)) => {
            // Messages quote the server and its certificate; whatever
            // slipped through unsanitized stops here.
            eprintln!("tlschat: {}", render::sanitize_lines(&msg));
            code
        }
    }
}

async fn try_run(cli: Cli) -> Result<u8, Fail> {
    let interactive = std::io::stdin().is_terminal();
    let plain = cli.plain || !interactive || !std::io::stdout().is_terminal();
    let mut opts = options(cli, interactive)?;
    let first = first_connection(&mut opts, interactive).await?;
    let state = ChatState::new(opts.server.to_string(), opts.nick.clone());
    let (handle, events) = client::start(opts, first);
    if plain {
        Ok(tlschat::plain::run(state, handle, events).await)
    } else {
        run_tui(state, handle, events).await
    }
}

/// The flags (and the nickname and password asked for) as the options of
/// every connection.
fn options(cli: Cli, interactive: bool) -> Result<ClientOptions, Fail> {
    let (server, link) = match cli.server {
        ServerArg::HostPort(server) => (server, None),
        ServerArg::Link(link) => (link.server().clone(), Some(link)),
    };
    if let Some(link) = &link {
        check_link_flags(link, cli.ca.as_deref(), cli.fingerprint)?;
    }
    let nick = nick(cli.nick, interactive)?;
    let password = match (&cli.password_file, std::env::var("TLSCHAT_PASSWORD")) {
        (Some(file), _) => Some(read_password_file(file)?),
        (None, Ok(pw)) if !pw.is_empty() => Some(pw),
        _ => None,
    };
    let code = link.as_ref().and_then(|l| l.code());
    let join_secret = match (&cli.join_password_file, code) {
        (Some(file), _) => Some(read_password_file(file)?),
        (None, Some(code)) => Some(code.expose().to_owned()),
        (None, None) => std::env::var("TLSCHAT_JOIN_PASSWORD")
            .ok()
            .filter(|pw| !pw.is_empty()),
    };
    let trust = trust(
        cli.ca.as_deref(),
        cli.fingerprint,
        cli.known_hosts,
        &server,
        link.map(|l| l.fingerprint()),
    )?;
    let mut opts = ClientOptions::new(server, nick, trust);
    opts.password = password;
    opts.join_secret = join_secret;
    opts.accept_new = cli.accept_new;
    opts.reconnect = !cli.no_reconnect;
    Ok(opts)
}

/// A link names the certificate to trust: `--ca` cannot go with it, and
/// `--fingerprint` only when it names the same one.
fn check_link_flags(
    link: &InviteLink,
    ca: Option<&Path>,
    fingerprint: Option<Fingerprint>,
) -> Result<(), Fail> {
    if ca.is_some() {
        return Err(Fail(
            exit::USAGE,
            "--ca cannot be used with an invite link: the link names the certificate to trust"
                .into(),
        ));
    }
    match fingerprint {
        Some(fp) if fp != link.fingerprint() => Err(Fail(
            exit::USAGE,
            format!(
                "--fingerprint {fp} is not the certificate the invite link names ({}); \
                 check both with the server's operator and give one of them",
                link.fingerprint()
            ),
        )),
        _ => Ok(()),
    }
}

/// `--nick`, or asked at a terminal; checked as the server will.
fn nick(given: Option<String>, interactive: bool) -> Result<String, Fail> {
    let nick = match given {
        Some(n) => n,
        None if interactive => ask_nick()?,
        None => {
            return Err(Fail(
                exit::USAGE,
                "--nick NAME is needed when not at a terminal".into(),
            ))
        }
    };
    let nick = Nick::parse(nick.trim()).map_err(|e| {
        Fail(
            exit::USAGE,
            format!("invalid nickname `{}`: {e}", nick.trim()),
        )
    })?;
    Ok(nick.to_string())
}

/// `--ca`, `--fingerprint`, or TOFU with known_hosts (and the invite
/// link's fingerprint for a host known_hosts does not hold).
fn trust(
    ca: Option<&Path>,
    fingerprint: Option<Fingerprint>,
    known_hosts: Option<PathBuf>,
    server: &HostPort,
    link: Option<Fingerprint>,
) -> Result<Trust, Fail> {
    if let Some(ca) = ca {
        let roots = trust::load_ca(ca).map_err(|e| Fail(exit::TRUST, e.to_string()))?;
        return Ok(Trust::Ca(roots));
    }
    if let Some(fp) = fingerprint {
        return Ok(Trust::Pin(fp));
    }
    let known_hosts = known_hosts
        .or_else(KnownHosts::default_path)
        .ok_or_else(|| {
            Fail(
                exit::ERROR,
                "no config directory for known_hosts; pass --known-hosts FILE".into(),
            )
        })?;
    Ok(Trust::Tofu {
        known_hosts,
        key: server.to_string(),
        link,
    })
}

/// The first connection, made while the user can still be asked (an
/// unknown certificate, a password) when at a terminal. What the user
/// typed goes into `opts`, for the reconnects, which cannot ask.
async fn first_connection(opts: &mut ClientOptions, interactive: bool) -> Result<Connected, Fail> {
    let mut prompter = TerminalPrompter::default();
    let mut asker: Option<&mut dyn Prompter> = if interactive {
        Some(&mut prompter)
    } else {
        None
    };
    let fail = |e: client::ConnectError| {
        let hint = match e {
            client::ConnectError::NoJoinSecret(_) => {
                "; give its invite link, --join-password-file FILE or TLSCHAT_JOIN_PASSWORD"
            }
            _ => "",
        };
        Fail(e.exit_code(), format!("{e}{hint}"))
    };
    let trusted = client::establish(opts, asker.as_deref_mut())
        .await
        .map_err(fail)?;
    // Said as soon as it is true: the host is stored whether or not the
    // login that follows succeeds.
    if let Some(known_hosts) = &trusted.stored_in {
        eprintln!(
            "tlschat: added {} ({}) to {}{}",
            opts.server,
            trusted.fingerprint,
            known_hosts.display(),
            if trusted.by_link {
                " from the invite link"
            } else {
                ""
            }
        );
    }
    let connected = trusted.login(opts, asker).await.map_err(fail)?;
    if let Some(password) = prompter.password {
        opts.password = Some(password);
    }
    if let Some(secret) = prompter.join_secret {
        opts.join_secret = Some(secret);
    }
    Ok(connected)
}

/// The terminal UI; after a session that ended badly, says why once more
/// on the restored terminal.
async fn run_tui(
    state: ChatState,
    handle: ClientHandle,
    events: mpsc::Receiver<ClientEvent>,
) -> Result<u8, Fail> {
    match tlschat::tui::run(state, handle, events).await {
        Ok(Some(reason)) => {
            let code = reason.exit_code();
            if code != exit::OK {
                if let Some(text) = render::plain(&EntryKind::Status(reason.describe())) {
                    eprintln!("tlschat: {text}");
                }
            }
            Ok(code)
        }
        Ok(None) => Ok(exit::OK),
        Err(e) => Err(Fail(exit::ERROR, format!("terminal error: {e}"))),
    }
}

fn ask_nick() -> Result<String, Fail> {
    eprint!("nickname: ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| Fail(exit::ERROR, format!("cannot read the nickname: {e}")))?;
    let nick = line.trim().to_owned();
    if nick.is_empty() {
        return Err(Fail(exit::USAGE, "no nickname given".into()));
    }
    Ok(nick)
}

/// The client's side of the shared reader, in the client's words: an
/// empty file is a usage error, one that cannot be read (or not as text)
/// an I/O error.
fn read_password_file(path: &std::path::Path) -> Result<String, Fail> {
    use tlschat_fs::PasswordFileError;
    tlschat_fs::read_password_file(path).map_err(|e| {
        let shown = path.display();
        match e {
            PasswordFileError::Empty { .. } => {
                Fail(exit::USAGE, format!("the password file {shown} is empty"))
            }
            PasswordFileError::Read { source, .. } => Fail(
                exit::ERROR,
                format!("cannot read the password file {shown}: {source}"),
            ),
            PasswordFileError::Encoding { .. } => Fail(
                exit::ERROR,
                format!(
                    "cannot read the password file {shown}: stream did not contain valid UTF-8"
                ),
            ),
        }
    })
}

/// Asks at the terminal (stdin is one: checked before this is used), and
/// keeps the secrets typed, in memory only, for the session's reconnects:
/// they have no terminal to ask, and a server that still wants the secret
/// would otherwise end the session at the first lost connection.
#[derive(Default)]
struct TerminalPrompter {
    password: Option<String>,
    join_secret: Option<String>,
}

impl Prompter for TerminalPrompter {
    fn confirm_new_host(&mut self, server: &str, fingerprint: &Fingerprint) -> bool {
        eprintln!("The authenticity of {server} can't be established.");
        eprintln!("Its certificate fingerprint is {fingerprint}.");
        eprintln!("Compare it with the fingerprint the server's operator gives you (tlschat-server prints it at startup).");
        let stdin = std::io::stdin();
        loop {
            eprint!("Trust this certificate and connect (yes/no)? ");
            let _ = std::io::stderr().flush();
            let mut answer = String::new();
            match stdin.lock().read_line(&mut answer) {
                Ok(0) | Err(_) => return false,
                Ok(_) => {}
            }
            match answer.trim().to_ascii_lowercase().as_str() {
                "yes" => return true,
                "no" | "n" => return false,
                _ => eprintln!("Please type 'yes' or 'no'."),
            }
        }
    }

    fn password(&mut self, nick: &str) -> Option<String> {
        self.password = hidden_prompt(&format!("password for {nick}: "));
        self.password.clone()
    }

    fn join_secret(&mut self, server: &str) -> Option<String> {
        self.join_secret = hidden_prompt(&format!("join password or invite code for {server}: "));
        self.join_secret.clone()
    }
}

/// A line read without echo; nothing (or nothing readable) is `None`.
fn hidden_prompt(question: &str) -> Option<String> {
    rpassword::prompt_password(question)
        .ok()
        .filter(|p| !p.is_empty())
}
