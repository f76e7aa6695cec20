//! `tlschat-server`: the command line around [`tlschat_server_core::Server`].
//!
//! clap parses the flags (the settings themselves are defined in
//! [`tlschat_server_core::config`]), the config module merges them with the
//! config file into a `ServerConfig`, and every error reaches `main` as an
//! `anyhow::Error` printed with its context.

// No byte-index slicing of text (see the library's top-level doc).
#![warn(clippy::string_slice)]

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, CommandFactory, Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use tlschat::generate::{self, Generate};
use tlschat_protocol::Nick;
use tlschat_server_core::accounts::{self, AdminSetup};
use tlschat_server_core::certs::{self, CertPaths};
use tlschat_server_core::config::{self, CertSource, DataDirArg, Merged, Settings};
use tlschat_server_core::service;
use tlschat_server_core::{Reloader, Server};

/// musl's own malloc takes one lock for every thread's allocations; on musl
/// targets (the static Linux builds) mimalloc replaces it. Other targets keep
/// the platform's allocator.
#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const EXAMPLES: &str = "\
Examples:
  tlschat-server                              run on 0.0.0.0:55555, certificate generated on first run
  tlschat-server run --listen [::]:55555 --san chat.example.org
  tlschat-server run --cert fullchain.pem --key privkey.pem
  tlschat-server gen-cert --san 203.0.113.7 --days 825
  tlschat-server fingerprint
  tlschat-server passwd                       change the admin password
  tlschat-server passwd --nick alice          set the password of the account alice
  tlschat-server backup tlschat-backup.db     copy accounts and invites (safe while running)

Connect with:  openssl s_client -quiet -connect HOST:55555";

#[derive(Parser, Debug)]
#[command(
    name = "tlschat-server",
    version = tlschat::VERSION,
    about = "A TLS-secured group chat server",
    after_help = EXAMPLES,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Cmd>,
    /// Options of `run`, which is what no subcommand means.
    #[command(flatten)]
    run: Settings,
    #[command(flatten)]
    verbosity: Verbosity,
    /// Print a shell completion script or the man page and exit (for
    /// packaging; see src/generate.rs).
    #[arg(long, value_enum, value_name = "WHAT", hide = true, exclusive = true)]
    generate: Option<Generate>,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run the server (the default).
    Run(Settings),
    /// Write a new self-signed certificate and key.
    GenCert(GenCertArgs),
    /// Print the SHA-256 fingerprint of the server certificate.
    Fingerprint(FingerprintArgs),
    /// Set an account's password, the admin's by default (read from a
    /// hidden prompt, or stdin).
    Passwd(PasswdArgs),
    /// Validate the configuration and print the effective one as TOML.
    CheckConfig(Settings),
    /// Copy the accounts, roles and invites (tlschat.db) into a new FILE,
    /// also while the server runs.
    Backup(BackupArgs),
}

#[derive(Args, Debug)]
struct BackupArgs {
    /// Where to write the copy; must not exist yet.
    #[arg(value_name = "FILE")]
    file: PathBuf,
    #[command(flatten)]
    data_dir: DataDirArg,
}

#[derive(Args, Debug, Clone)]
struct Verbosity {
    /// More log output (-v debug, -vv trace). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Less log output (-q warnings only, -qq errors only).
    #[arg(short, long, action = clap::ArgAction::Count, global = true, conflicts_with = "verbose")]
    quiet: u8,
}

#[derive(Args, Debug)]
struct GenCertArgs {
    /// Directory for cert.pem and key.pem [default: <data-dir>/certs]
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    #[command(flatten)]
    data_dir: DataDirArg,
    /// Extra name or IP address (repeatable); localhost, 127.0.0.1, ::1
    /// and this host's name are always included.
    #[arg(long = "san", value_name = "NAME")]
    sans: Vec<String>,
    /// Days the certificate is valid.
    #[arg(long, default_value_t = certs::DEFAULT_DAYS, value_parser = clap::value_parser!(u32).range(1..))]
    days: u32,
    /// Replace existing files.
    #[arg(long)]
    force: bool,
}

#[derive(Args, Debug)]
struct PasswdArgs {
    #[command(flatten)]
    data_dir: DataDirArg,
    /// The account whose password to set; made (as a user) if it is none.
    #[arg(long, value_name = "NICK", default_value = "admin")]
    nick: String,
}

#[derive(Args, Debug)]
struct FingerprintArgs {
    /// The certificate [default: <data-dir>/certs/cert.pem]
    #[arg(long, value_name = "FILE")]
    cert: Option<PathBuf>,
    #[command(flatten)]
    data_dir: DataDirArg,
}

fn main() -> ExitCode {
    if let Some(what) = generate::requested() {
        return print_generated(what);
    }
    let cli = Cli::parse();
    if let Some(what) = cli.generate {
        return print_generated(what);
    }
    init_logging(&cli.verbosity);
    if let Some(Cmd::CheckConfig(args)) = &cli.command {
        return check_config(args);
    }
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tlschat-server: error: {}", report(&e));
            ExitCode::FAILURE
        }
    }
}

/// `--generate WHAT`: a completion script or the man page on stdout.
fn print_generated(what: Generate) -> ExitCode {
    let mut out = std::io::stdout().lock();
    match generate::write(Cli::command(), what, &mut out).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tlschat-server: error: cannot write to stdout: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        None => serve(cli.run),
        Some(Cmd::Run(args)) => serve(args),
        Some(Cmd::GenCert(args)) => gen_cert(args),
        Some(Cmd::Fingerprint(args)) => fingerprint(args),
        Some(Cmd::Passwd(args)) => passwd(args),
        Some(Cmd::Backup(args)) => backup(args),
        Some(Cmd::CheckConfig(_)) => unreachable!("handled in main"),
    }
}

/// An error and its causes on one line, skipping a cause whose text the
/// line already holds (our error messages often include their cause).
fn report(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

fn init_logging(v: &Verbosity) {
    use tracing_subscriber::EnvFilter;
    let level = match (v.verbose, v.quiet) {
        (0, 0) => "info",
        (1, _) => "debug",
        (v, _) if v >= 2 => "trace",
        (_, 1) => "warn",
        _ => "error",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

/// `check-config`: the effective configuration on stdout (exit 0), or
/// what is wrong with it on stderr (exit 2).
fn check_config(args: &Settings) -> ExitCode {
    let checked = args.clone().merge().and_then(|merged| {
        merged.check_files()?;
        Ok(merged)
    });
    match checked {
        Ok(merged) => {
            print!("{}", merged.effective.to_toml());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!(
                "tlschat-server: invalid configuration: {}",
                report(&e.into())
            );
            ExitCode::from(2)
        }
    }
}

fn serve(args: Settings) -> Result<()> {
    let merged = args.merge()?;
    let config = merged.server_config()?;
    let sans_given =
        matches!(&config.cert, CertSource::Generated { extra_sans } if !extra_sans.is_empty());

    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        let server = Server::bind(config).await?;
        if sans_given && !server.info().cert_generated {
            tracing::warn!(
                "--san only applies when a certificate is generated; {} already exists \
                 (regenerate it with `tlschat-server gen-cert --force --san …`)",
                server.info().cert.cert.display()
            );
        }
        // Signal handlers before the startup lines: whoever reads them may
        // signal at once.
        let shutdown = CancellationToken::new();
        spawn_shutdown_on_signal(shutdown.clone());
        spawn_reload_on_sighup(server.reloader(), merged);
        announce(&server)?;
        // After the listener is bound and the startup lines are out, so
        // `systemctl start` returns when the port accepts connections.
        service::notify(service::State::Ready {
            status: &format!("listening on {}", server.info().local_addr),
        });
        // On a worker thread, not on this one: connection tasks spawned by
        // the accept loop then start on the accepting worker's own queue
        // instead of waking another thread for every connection.
        tokio::spawn(server.run(shutdown))
            .await
            .context("the accept loop panicked")?
            .context("server failed")
    })?;
    // Blocking tasks (a password check in flight) must not hold the exit.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    Ok(())
}

/// SIGHUP: merge again ([`Merged::reload`] says what that reads) and
/// reload limits, bans, accounts and the certificate. A broken config file
/// is reported and changes nothing.
#[cfg(unix)]
fn spawn_reload_on_sighup(reloader: Reloader, merged: Merged) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP: reloading is not available");
        return;
    };
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading");
            service::notify(service::State::Reloading);
            let status = match merged.reload() {
                Ok(reload) => {
                    if let Some(warning) = reload.waiting_for_restart {
                        tracing::warn!("{warning}");
                    }
                    let failed = reloader.reload(reload);
                    if failed.is_empty() {
                        tracing::info!("reload complete");
                        "reloaded".to_owned()
                    } else {
                        format!("reloaded with errors: {}", failed.join("; "))
                    }
                }
                Err(e) => {
                    let why = report(&e.into());
                    tracing::error!("config not reloaded: {why}");
                    format!("config not reloaded: {why}")
                }
            };
            // A refused config leaves the server serving as before: ready.
            service::notify(service::State::Ready { status: &status });
        }
    });
}

/// Windows has no SIGHUP; restart the service to apply changes there.
#[cfg(not(unix))]
fn spawn_reload_on_sighup(_reloader: Reloader, _merged: Merged) {}

/// What the operator needs to see at startup, on stdout.
fn announce(server: &Server) -> Result<()> {
    let info = server.info();
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "tlschat-server {} listening on {}",
        env!("CARGO_PKG_VERSION"),
        info.local_addr
    )?;
    writeln!(out, "data dir {}", info.data_dir.display())?;
    let origin = if info.cert_generated {
        " (generated now)"
    } else {
        ""
    };
    writeln!(out, "certificate {}{origin}", info.cert.cert.display())?;
    writeln!(out, "fingerprint {}", info.fingerprint)?;
    match &info.admin {
        AdminSetup::Generated { password, path } => {
            writeln!(out, "admin password written to {}", path.display())?;
            // Only to a person at a terminal, never into a log or journal.
            if std::io::stderr().is_terminal() {
                eprintln!("admin password: {password}  (change it with `tlschat-server passwd`)");
            }
        }
        AdminSetup::Replaced => writeln!(out, "admin password set from the given password")?,
        AdminSetup::Existing => {}
    }
    out.flush()?;
    Ok(())
}

/// Ctrl-C everywhere; SIGTERM on Unix; Ctrl-Break on Windows. SIGTERM's
/// handler is registered before this returns: a spawned task registers only
/// when it first runs, and a SIGTERM right after the startup lines would
/// meet the default action (death by signal) instead.
fn spawn_shutdown_on_signal(shutdown: CancellationToken) {
    #[cfg(unix)]
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::spawn(async move {
        #[cfg(unix)]
        wait_for_signal(term).await;
        #[cfg(not(unix))]
        wait_for_signal().await;
        service::notify(service::State::Stopping);
        shutdown.cancel();
    });
}

#[cfg(unix)]
async fn wait_for_signal(term: Option<tokio::signal::unix::Signal>) {
    match term {
        Some(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        None => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() {
    #[cfg(windows)]
    {
        match tokio::signal::windows::ctrl_break() {
            Ok(mut brk) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = brk.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(windows))]
    let _ = tokio::signal::ctrl_c().await;
}

fn gen_cert(args: GenCertArgs) -> Result<()> {
    let dir = match args.out {
        Some(dir) => dir,
        None => config::certs_dir(&args.data_dir.resolve()?),
    };
    let generated = certs::generate(&certs::default_sans(&args.sans), args.days)?;
    let paths = certs::write_pair(&dir, &generated, args.force)?;
    println!("wrote {} and {}", paths.cert.display(), paths.key.display());
    println!("fingerprint {}", generated.fingerprint);
    Ok(())
}

fn fingerprint(args: FingerprintArgs) -> Result<()> {
    let cert = match args.cert {
        Some(c) => c,
        None => CertPaths::in_dir(&config::certs_dir(&args.data_dir.resolve()?)).cert,
    };
    let fp = certs::fingerprint_file(&cert)?;
    println!("fingerprint {fp}");
    Ok(())
}

fn passwd(args: PasswdArgs) -> Result<()> {
    let nick = Nick::parse(&args.nick).map_err(|e| anyhow::anyhow!("--nick {}: {e}", args.nick))?;
    let data_dir = args.data_dir.resolve()?;
    let (mut accounts, path) = accounts::open_in(&data_dir)?;
    let password = read_new_password(&nick)?;
    if nick.key() == "admin" {
        accounts::change_admin_password(&data_dir, &mut accounts, &password)?;
    } else {
        accounts::set_account_password(&mut accounts, &nick, &password)?;
    }
    println!("{nick} password changed in {}", path.display());
    println!("a running server uses it after `kill -HUP` (systemctl reload) or a restart");
    Ok(())
}

/// `backup FILE`: SQLite's online backup, consistent while a server writes.
fn backup(args: BackupArgs) -> Result<()> {
    let data_dir = args.data_dir.resolve()?;
    tlschat_server_core::backup(&data_dir, &args.file)?;
    println!(
        "backed up {} to {}",
        data_dir.join("tlschat.db").display(),
        args.file.display()
    );
    println!(
        "also keep: {} (the certificate and key clients trust), {} and {} if present",
        config::certs_dir(&data_dir).display(),
        data_dir.join("bans.txt").display(),
        data_dir.join("tlschat.toml").display()
    );
    println!(
        "to restore: stop the server, copy the file to {}, delete any tlschat.db-wal and \
         tlschat.db-shm beside it, start",
        data_dir.join("tlschat.db").display()
    );
    Ok(())
}

/// A hidden prompt (asked twice) at a terminal; otherwise the first line of stdin.
fn read_new_password(nick: &Nick) -> Result<String> {
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password(format!("new password for {nick}: "))?;
        let again = rpassword::prompt_password("again: ")?;
        if first != again {
            bail!("the two passwords differ; nothing changed");
        }
        if first.is_empty() {
            bail!("an empty password is not allowed; nothing changed");
        }
        return Ok(first);
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read the new password from stdin")?;
    let password = line.trim_end_matches(['\n', '\r']).to_owned();
    if password.is_empty() {
        bail!("no password on stdin; nothing changed");
    }
    Ok(password)
}
