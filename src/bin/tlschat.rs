//! `tlschat`: the chat client. A terminal UI at a terminal, plain line mode
//! otherwise (or with `--plain`).
//!
//! clap parses the flags into [`ClientOptions`]; the first connection is
//! made here, where the user can still be asked about an unknown
//! certificate or a password; then the session runs under the front end
//! this chooses: `tlschat::tui` or `tlschat::plain`.

// No byte-index slicing of text (see the library's top-level doc).
#![warn(clippy::string_slice)]

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory, Parser};
use tokio::sync::mpsc;

use tlschat::generate::{self, Generate};
use tlschat_client_core::state::EntryKind;
use tlschat_client_core::trust::{self, KnownHosts, Trust};
use tlschat_client_core::{
    self as client, exit, render, ChatState, ClientEvent, ClientHandle, ClientOptions, Connected,
    HostPort, Prompter,
};
use tlschat_protocol::{Fingerprint, Nick};

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
  echo 'hello' | tlschat --plain --nick bot --accept-new localhost
  TLSCHAT_PASSWORD=... tlschat --nick admin localhost";

#[derive(Parser, Debug)]
#[command(name = "tlschat", version = tlschat::VERSION, about = "Chat on a tlschat server", after_help = AFTER_HELP)]
struct Cli {
    /// The server: HOST, HOST:PORT or [IPv6]:PORT (default port 55555).
    #[arg(value_name = "HOST[:PORT]", value_parser = parse_server)]
    server: HostPort,
    /// Your nickname (asked for when missing).
    #[arg(long, short, env = "TLSCHAT_NICK", value_name = "NAME")]
    nick: Option<String>,
    /// Read the password (for an account such as `admin`) from this file's
    /// first line. TLSCHAT_PASSWORD works too; else a hidden prompt.
    #[arg(long, value_name = "FILE")]
    password_file: Option<PathBuf>,
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

fn parse_server(s: &str) -> Result<HostPort, String> {
    s.parse()
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
    let opts = options(cli, interactive)?;
    let first = first_connection(&opts, interactive).await?;
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
    let nick = nick(cli.nick, interactive)?;
    let password = match (&cli.password_file, std::env::var("TLSCHAT_PASSWORD")) {
        (Some(file), _) => Some(read_password_file(file)?),
        (None, Ok(pw)) if !pw.is_empty() => Some(pw),
        _ => None,
    };
    let trust = trust(
        cli.ca.as_deref(),
        cli.fingerprint,
        cli.known_hosts,
        &cli.server,
    )?;
    let mut opts = ClientOptions::new(cli.server, nick, trust);
    opts.password = password;
    opts.accept_new = cli.accept_new;
    opts.reconnect = !cli.no_reconnect;
    Ok(opts)
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

/// `--ca`, `--fingerprint`, or TOFU with known_hosts.
fn trust(
    ca: Option<&Path>,
    fingerprint: Option<Fingerprint>,
    known_hosts: Option<PathBuf>,
    server: &HostPort,
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
        link: None,
    })
}

/// The first connection, made while the user can still be asked (an
/// unknown certificate, a password) when at a terminal.
async fn first_connection(opts: &ClientOptions, interactive: bool) -> Result<Connected, Fail> {
    let mut prompter = TerminalPrompter;
    let mut asker: Option<&mut dyn Prompter> = if interactive {
        Some(&mut prompter)
    } else {
        None
    };
    let fail = |e: client::ConnectError| Fail(e.exit_code(), e.to_string());
    let trusted = client::establish(opts, asker.as_deref_mut())
        .await
        .map_err(fail)?;
    // Said as soon as it is true: the host is stored whether or not the
    // login that follows succeeds.
    if let Some(known_hosts) = &trusted.stored_in {
        eprintln!(
            "tlschat: added {} ({}) to {}",
            opts.server,
            trusted.fingerprint,
            known_hosts.display()
        );
    }
    trusted.login(opts, asker).await.map_err(fail)
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

/// Asks at the terminal (stdin is one: checked before this is used).
struct TerminalPrompter;

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
        rpassword::prompt_password(format!("password for {nick}: "))
            .ok()
            .filter(|p| !p.is_empty())
    }
}
