//! `tlschat-server`: the command line around [`tlschat_server_core::Server`].
//!
//! clap parses the flags, `run` turns them into a [`ServerConfig`], and
//! every error reaches `main` as an `anyhow::Error` printed with its context.

// No byte-index slicing of text (see the library's top-level doc).
#![warn(clippy::string_slice)]

use std::io::{BufRead, IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, CommandFactory, Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use tlschat::generate::{self, Generate};
use tlschat_fs::read_password_file;
use tlschat_server_core::accounts::{self, Accounts, AdminSetup};
use tlschat_server_core::certs::{self, CertPaths};
use tlschat_server_core::config::{
    self, CertSource, Effective, LimitSettings, ServerConfig, Settings,
};
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
    run: RunArgs,
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
    Run(RunArgs),
    /// Write a new self-signed certificate and key.
    GenCert(GenCertArgs),
    /// Print the SHA-256 fingerprint of the server certificate.
    Fingerprint(FingerprintArgs),
    /// Change the admin password (read from a hidden prompt, or stdin).
    Passwd(DataDirArg),
    /// Validate the configuration and print the effective one as TOML.
    CheckConfig(RunArgs),
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

#[derive(Args, Debug, Clone)]
struct DataDirArg {
    /// Where the server keeps its certificate, bans and accounts
    /// [default: the platform's data directory]
    #[arg(long, env = "TLSCHAT_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

#[derive(Args, Debug, Clone)]
struct RunArgs {
    /// Config file (TOML) [default: <data-dir>/tlschat.toml, if it exists]
    #[arg(long, env = "TLSCHAT_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address and port to listen on (`[::]:55555` for IPv6 and IPv4)
    /// [default: 0.0.0.0:55555]
    #[arg(long, env = "TLSCHAT_LISTEN", value_name = "ADDR")]
    listen: Option<SocketAddr>,
    #[command(flatten)]
    data_dir: DataDirArg,
    /// Use this certificate (PEM, chain allowed) instead of a generated one.
    #[arg(long, value_name = "FILE")]
    cert: Option<PathBuf>,
    /// The private key of --cert (PEM: PKCS#8, SEC1 or RSA).
    #[arg(long, value_name = "FILE")]
    key: Option<PathBuf>,
    /// Extra name or IP address for a generated certificate (repeatable).
    #[arg(long = "san", value_name = "NAME")]
    sans: Vec<String>,
    /// Set the admin password from this file's first line
    /// (TLSCHAT_ADMIN_PASSWORD works too).
    #[arg(long, value_name = "FILE")]
    admin_password_file: Option<PathBuf>,
    #[command(flatten)]
    limits: LimitArgs,
}

/// The abuse limits; `0` switches one off. Defaults in docs/configuration.md.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Limits (0 = off)")]
struct LimitArgs {
    /// Clients connected at once [default: 4096]
    #[arg(long, env = "TLSCHAT_MAX_CLIENTS", value_name = "N")]
    max_clients: Option<usize>,
    /// Connections at once from one address [default: 16]
    #[arg(long, env = "TLSCHAT_MAX_PER_ADDRESS", value_name = "N")]
    max_per_address: Option<usize>,
    /// Lines per second a client may send [default: 10]
    #[arg(long, env = "TLSCHAT_RATE_LIMIT", value_name = "N")]
    rate_limit: Option<u32>,
    /// Lines a client may send in a burst [default: 20]
    #[arg(long, env = "TLSCHAT_RATE_BURST", value_name = "N")]
    rate_burst: Option<u32>,
    /// Lines per second from all connections of one address together [default: 30]
    #[arg(long, env = "TLSCHAT_ADDRESS_RATE_LIMIT", value_name = "N")]
    address_rate_limit: Option<u32>,
    /// Unfinished handshakes at once; the busiest address loses its oldest [default: 1024]
    #[arg(long, env = "TLSCHAT_MAX_HANDSHAKES", value_name = "N")]
    max_handshakes: Option<usize>,
    /// Seconds from connecting to finish TLS and login [default: 30]
    #[arg(long, env = "TLSCHAT_HANDSHAKE_TIMEOUT", value_name = "SECS")]
    handshake_timeout: Option<u64>,
    /// Seconds a logged-in client may send nothing [default: 0 = off]
    #[arg(long, env = "TLSCHAT_IDLE_TIMEOUT", value_name = "SECS")]
    idle_timeout: Option<u64>,
    /// Bytes queued for a client before it is dropped as not reading [default: 262144]
    #[arg(long, env = "TLSCHAT_OUTBOUND_QUEUE", value_name = "BYTES")]
    outbound_queue: Option<usize>,
    /// Wrong passwords from one address before a lockout [default: 5]
    #[arg(long, env = "TLSCHAT_LOCKOUT_AFTER", value_name = "N")]
    lockout_after: Option<u32>,
    /// Seconds of the first lockout, doubling each time [default: 60]
    #[arg(long, env = "TLSCHAT_LOCKOUT_TIME", value_name = "SECS")]
    lockout_time: Option<u64>,
    /// IPv6 addresses sharing this prefix count as one address, 1-128 [default: 64]
    #[arg(
        long,
        env = "TLSCHAT_IPV6_PREFIX_LEN",
        value_name = "BITS",
        value_parser = clap::value_parser!(u8).range(1..=128)
    )]
    ipv6_prefix_len: Option<u8>,
}

impl RunArgs {
    /// What the command line (with its environment variables) sets.
    fn settings(&self) -> Settings {
        let l = &self.limits;
        Settings {
            listen: self.listen,
            cert: self.cert.clone(),
            key: self.key.clone(),
            san: (!self.sans.is_empty()).then(|| self.sans.clone()),
            admin_password_file: self.admin_password_file.clone(),
            limits: LimitSettings {
                max_clients: l.max_clients,
                max_per_address: l.max_per_address,
                rate_limit: l.rate_limit,
                rate_burst: l.rate_burst,
                address_rate_limit: l.address_rate_limit,
                max_handshakes: l.max_handshakes,
                handshake_timeout: l.handshake_timeout,
                idle_timeout: l.idle_timeout,
                outbound_queue: l.outbound_queue,
                lockout_after: l.lockout_after,
                lockout_time: l.lockout_time,
                ipv6_prefix_len: l.ipv6_prefix_len,
            },
        }
    }

    /// The config file to read, if any: `--config` must exist, the default
    /// one may not.
    fn config_file(&self, data_dir: &std::path::Path) -> Option<PathBuf> {
        match &self.config {
            Some(path) => Some(path.clone()),
            None => {
                let default = data_dir.join(config::CONFIG_FILE);
                default.exists().then_some(default)
            }
        }
    }

    /// Flag > env > file > default.
    fn effective(&self, data_dir: &std::path::Path) -> Result<Effective> {
        let file = match self.config_file(data_dir) {
            Some(path) => Settings::load(&path)?,
            None => Settings::default(),
        };
        Ok(self.settings().merge(file).resolve()?)
    }
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

fn data_dir(arg: &DataDirArg) -> Result<PathBuf> {
    match &arg.data_dir {
        Some(d) => Ok(d.clone()),
        None => config::default_data_dir()
            .context("cannot find a data directory for this user; pass --data-dir DIR"),
    }
}

/// `check-config`: the effective configuration on stdout (exit 0), or
/// what is wrong with it on stderr (exit 2).
fn check_config(args: &RunArgs) -> ExitCode {
    let checked = data_dir(&args.data_dir).and_then(|dir| {
        let eff = args.effective(&dir)?;
        if let CertSource::Files { cert, key } = &eff.cert {
            certs::load(&CertPaths {
                cert: cert.clone(),
                key: key.clone(),
            })?;
        }
        if let Some(file) = &eff.admin_password_file {
            read_password_file(file)?;
        }
        Ok(eff)
    });
    match checked {
        Ok(eff) => {
            print!("{}", eff.to_toml());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tlschat-server: invalid configuration: {}", report(&e));
            ExitCode::from(2)
        }
    }
}

fn serve(args: RunArgs) -> Result<()> {
    let data_dir = data_dir(&args.data_dir)?;
    let eff = args.effective(&data_dir)?;
    // Flag > env > file, like every other setting.
    let env_password = std::env::var("TLSCHAT_ADMIN_PASSWORD")
        .ok()
        .filter(|p| !p.is_empty());
    let admin_password = match (
        &args.admin_password_file,
        env_password,
        &eff.admin_password_file,
    ) {
        (Some(flag), _, _) => Some(read_password_file(flag)?),
        (None, Some(pw), _) => Some(pw),
        (None, None, Some(file)) => Some(read_password_file(file)?),
        (None, None, None) => None,
    };
    let mut config = ServerConfig::new(&data_dir);
    config.listen = eff.listen;
    config.admin_password = admin_password;
    config.limits = eff.limits.clone();
    let sans_given =
        matches!(&eff.cert, CertSource::Generated { extra_sans } if !extra_sans.is_empty());
    config.cert = eff.cert.clone();

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
        tokio::spawn(wait_for_signal(shutdown.clone()));
        spawn_reload_on_sighup(server.reloader(), args, data_dir, eff);
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

/// SIGHUP: read the config file again and reload limits, bans and the
/// certificate. A broken config file is reported and changes nothing.
#[cfg(unix)]
fn spawn_reload_on_sighup(
    reloader: Reloader,
    args: RunArgs,
    data_dir: PathBuf,
    startup: Effective,
) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP: reloading is not available");
        return;
    };
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading");
            service::notify(service::State::Reloading);
            let status = match args.effective(&data_dir) {
                Ok(eff) => {
                    if eff.listen != startup.listen || eff.cert != startup.cert {
                        tracing::warn!(
                            "listen, cert, key and san changes take effect at the next restart; \
                             reloading the rest"
                        );
                    }
                    let failed = reloader.reload(eff.limits);
                    if failed.is_empty() {
                        tracing::info!("reload complete");
                        "reloaded".to_owned()
                    } else {
                        format!("reloaded with errors: {}", failed.join("; "))
                    }
                }
                Err(e) => {
                    let why = report(&e);
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
fn spawn_reload_on_sighup(
    _reloader: Reloader,
    _args: RunArgs,
    _data_dir: PathBuf,
    _startup: Effective,
) {
}

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

/// Ctrl-C everywhere; SIGTERM on Unix; Ctrl-Break on Windows.
async fn wait_for_signal(shutdown: CancellationToken) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
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
    #[cfg(not(any(unix, windows)))]
    let _ = tokio::signal::ctrl_c().await;
    service::notify(service::State::Stopping);
    shutdown.cancel();
}

fn gen_cert(args: GenCertArgs) -> Result<()> {
    let dir = match args.out {
        Some(dir) => dir,
        None => config::certs_dir(&data_dir(&args.data_dir)?),
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
        None => CertPaths::in_dir(&config::certs_dir(&data_dir(&args.data_dir)?)).cert,
    };
    let fp = certs::fingerprint_file(&cert)?;
    println!("fingerprint {fp}");
    Ok(())
}

fn passwd(args: DataDirArg) -> Result<()> {
    let data_dir = data_dir(&args)?;
    let path = config::accounts_file(&data_dir);
    let mut accounts = Accounts::load(&path)?;
    let password = read_new_password()?;
    accounts::change_admin_password(&data_dir, &mut accounts, &password)?;
    println!("admin password changed in {}", path.display());
    println!("a running server uses it after `kill -HUP` (systemctl reload) or a restart");
    Ok(())
}

/// A hidden prompt (asked twice) at a terminal; otherwise the first line of stdin.
fn read_new_password() -> Result<String> {
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("new admin password: ")?;
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
