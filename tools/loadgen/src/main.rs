//! `tlschat-loadgen`: measures tlschat-server against ngircd and a baseline
//! TLS relay on the same machine, in the same run, against the targets
//! listed in docs/performance.md.
//!
//! ```text
//! tlschat-loadgen run [--quick] …    every scenario × target × repetition,
//!                                    each against a freshly started server;
//!                                    JSON lines + a markdown table
//! tlschat-loadgen baseline-server …  the baseline relay (started by `run`)
//! ```
//!
//! Usually started by `scripts/bench.sh`; see docs/performance.md.

mod baseline;
mod client;
mod procs;
mod report;
mod scenarios;
mod tls;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use serde_json::json;

use client::{Dialer, History, Target};
use procs::Launch;
use report::{Run, Summary};
use scenarios::{Params, Scenario};

#[derive(Parser, Debug)]
#[command(
    name = "tlschat-loadgen",
    version,
    about = "Load generator for tlschat-server, ngircd and a baseline TLS relay"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run the scenarios, each against a fresh server, and report.
    Run(Box<RunArgs>),
    /// The baseline relay: tokio + tokio-rustls, no protocol, every line to
    /// every client.
    BaselineServer(baseline::BaselineArgs),
    /// Render the markdown summary of a finished run again from its JSON
    /// lines (runs.jsonl), into summary.md beside it.
    Report {
        /// A runs.jsonl written by `run`.
        file: PathBuf,
    },
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// A few-second smoke run: tiny numbers, 1 s windows, one repetition,
    /// tlschat with history on, off and stalled (and ngircd if installed);
    /// exits non-zero on any failure.
    #[arg(long)]
    quick: bool,
    /// Targets, comma-separated [default: tlschat,tlschat-nohist,
    /// tlschat-stall,ngircd,baseline]. tlschat is the server as shipped
    /// (history on, clients offering ALPN tlschat/2); tlschat-nohist runs
    /// it with --no-history, tlschat-stall with a history writer that
    /// never commits, tlschat-v1 with history on and clients offering no
    /// ALPN. The history variants run fanout and paced only.
    #[arg(long, value_delimiter = ',')]
    targets: Vec<String>,
    /// Scenarios, comma-separated [default: idle,fanout,paced,handshakes,slow,scale]
    #[arg(long, value_delimiter = ',')]
    scenarios: Vec<String>,
    /// Repetitions of every scenario (the table shows medians).
    #[arg(long)]
    reps: Option<usize>,
    /// Where JSON lines, the table and server logs go.
    #[arg(long, default_value = "bench-results")]
    out_dir: PathBuf,
    /// The tlschat-server binary (a release build).
    #[arg(long, default_value = "target/release/tlschat-server")]
    server_bin: PathBuf,
    /// The ngircd binary [default: ngircd on PATH or /usr/sbin/ngircd]
    #[arg(long)]
    ngircd_bin: Option<PathBuf>,
    /// Core for the servers (taskset -c); the load generator pins itself to
    /// --client-core. Pinning is skipped on a single-core machine.
    #[arg(long, default_value_t = 0)]
    server_core: usize,
    #[arg(long, default_value_t = 1)]
    client_core: usize,
    /// Do not pin anything.
    #[arg(long)]
    no_pin: bool,
    /// Idle scenario: clients.
    #[arg(long)]
    idle_n: Option<usize>,
    /// Fanout: clients in the room.
    #[arg(long)]
    clients: Option<usize>,
    /// Fanout: senders among them.
    #[arg(long)]
    senders: Option<usize>,
    /// Fanout: unacknowledged messages per sender.
    #[arg(long, default_value_t = 16)]
    window: usize,
    /// Bytes of text per message.
    #[arg(long, default_value_t = 100)]
    text_bytes: usize,
    /// Warm-up seconds before measuring.
    #[arg(long)]
    warmup: Option<f64>,
    /// Measured seconds.
    #[arg(long)]
    measure: Option<f64>,
    /// Paced fanout: messages per second per sender.
    #[arg(long, default_value_t = 20.0)]
    paced_rate: f64,
    /// Paced fanout: messages sent as fast as the window allows before the
    /// warm-up, so a stalled history queue is full (and dropping) and a
    /// kept room holds its full history while measuring.
    #[arg(long, default_value_t = 12_000)]
    paced_fill: usize,
    /// Handshakes: concurrent connectors.
    #[arg(long)]
    hs_connectors: Option<usize>,
    /// Handshakes: seconds.
    #[arg(long)]
    hs_secs: Option<f64>,
    /// Scale: clients.
    #[arg(long)]
    scale_n: Option<usize>,
    /// Scale: clients that join #big.
    #[arg(long)]
    scale_big: Option<usize>,
    /// Scale: measured seconds of the #big fanout.
    #[arg(long)]
    scale_measure: Option<f64>,
    /// Profile each server with `perf record` during every measured fanout
    /// window (fanout, paced, slow, the #big fanout of scale); the data and
    /// a `perf report` go next to the logs. It costs the server CPU: not
    /// for the numbers of record.
    #[arg(long)]
    perf: bool,
    /// The arguments given to `perf record` with --perf.
    #[arg(
        long,
        default_value = "-e cpu-clock -F 999 -g",
        allow_hyphen_values = true
    )]
    perf_args: String,
    /// Slow consumer: the longest the run goes on waiting for the staller
    /// to be dropped (seconds after the warm-up).
    #[arg(long)]
    slow_limit: Option<f64>,
    /// Logins in flight at once while filling a server.
    /// (8: ngircd's listen backlog is 10; a longer burst would measure SYN
    /// retransmissions.)
    #[arg(long, default_value_t = 8)]
    login_concurrency: usize,
    /// The baseline relay's per-client queue, in lines.
    #[arg(long, default_value_t = 2048)]
    baseline_queue: usize,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Run(args) => run(*args),
        Cmd::BaselineServer(args) => baseline::main(args).map(|_| true),
        Cmd::Report { file } => report(&file).map(|_| true),
    };
    match r {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("tlschat-loadgen: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

fn params(a: &RunArgs) -> Params {
    let q = a.quick;
    let pick =
        |v: Option<usize>, full: usize, quick: usize| v.unwrap_or(if q { quick } else { full });
    let pickf =
        |v: Option<f64>, full: f64, quick: f64| secs(v.unwrap_or(if q { quick } else { full }));
    Params {
        idle_n: pick(a.idle_n, 2000, 50),
        clients: pick(a.clients, 200, 20),
        senders: pick(a.senders, 10, 2),
        window: a.window,
        text_bytes: a.text_bytes,
        warmup: pickf(a.warmup, 1.0, 0.3),
        measure: pickf(a.measure, 10.0, 1.0),
        paced_rate: a.paced_rate,
        paced_fill: a.paced_fill,
        hs_connectors: pick(a.hs_connectors, 8, 2),
        hs_duration: pickf(a.hs_secs, 5.0, 1.0),
        scale_n: pick(a.scale_n, 10_000, 200),
        scale_big: pick(a.scale_big, 2000, 40),
        scale_measure: pickf(a.scale_measure, 5.0, 1.0),
        login_concurrency: a.login_concurrency,
        settle: if q { secs(0.3) } else { secs(2.0) },
        slow_limit: pickf(a.slow_limit, 60.0, 3.0),
        perf: None,
    }
}

fn first_line(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .map(|o| {
            let text = if o.stdout.is_empty() {
                o.stderr
            } else {
                o.stdout
            };
            String::from_utf8_lossy(&text)
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_owned()
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

fn cpu_model() -> (usize, String) {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let n = info.lines().filter(|l| l.starts_with("processor")).count();
    let model = info
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).trim().to_owned())
        .unwrap_or_else(|| "unknown".into());
    (n, model)
}

fn mem_total() -> String {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .map(|v| v.trim().to_owned())
        })
        .unwrap_or_else(|| "?".into())
}

/// UTC `YYYYMMDD-HHMMSS` (no date crate needed).
fn stamp() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0) as i64;
    let (days, rem) = (t.div_euclid(86_400), t.rem_euclid(86_400));
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{m:02}{d:02}-{:02}{:02}{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

fn run(a: RunArgs) -> Result<bool> {
    let p = params(&a);
    let (ncpu, model) = cpu_model();
    let nofile = procs::raise_nofile();
    let pin = !a.no_pin && ncpu >= 2;
    if pin {
        procs::pin_self(a.client_core)?;
    }
    let ngircd_bin = a.ngircd_bin.clone().or_else(|| procs::which("ngircd"));
    let targets: Vec<Target> = if a.targets.is_empty() {
        let mut t = vec![
            Target::TLSCHAT,
            Target::Tlschat(History::Off),
            Target::Tlschat(History::Stalled),
        ];
        if !a.quick || ngircd_bin.is_some() {
            t.push(Target::Ngircd);
        }
        if !a.quick {
            t.push(Target::Baseline);
        }
        t
    } else {
        a.targets
            .iter()
            .map(|s| Target::parse(s))
            .collect::<Result<_>>()?
    };
    let scenarios: Vec<Scenario> = if a.scenarios.is_empty() {
        Scenario::ALL.to_vec()
    } else {
        a.scenarios
            .iter()
            .map(|s| Scenario::parse(s))
            .collect::<Result<_>>()?
    };
    let reps = a.reps.unwrap_or(if a.quick { 1 } else { 3 });
    if targets.contains(&Target::Ngircd) && ngircd_bin.is_none() {
        bail!("ngircd is not installed (apt-get install ngircd), or leave it out with --targets");
    }
    if !a.server_bin.is_file() {
        bail!(
            "{} not found: build it with `cargo build --release` (or pass --server-bin)",
            a.server_bin.display()
        );
    }

    let stamp = stamp();
    let kind = if a.quick { "quick" } else { "full" };
    let run_dir = a.out_dir.join(format!("{stamp}-{kind}"));
    let log_dir = run_dir.join("logs");
    std::fs::create_dir_all(&log_dir).with_context(|| format!("creating {}", log_dir.display()))?;
    let cert_dir = tempfile::Builder::new()
        .prefix("tlschat-bench-cert-")
        .tempdir()?;
    let cert = tls::make_cert(cert_dir.path())?;
    let client_configs = ClientConfigs {
        v1: tls::client_config(&cert, false)?,
        history: tls::client_config(&cert, true)?,
    };
    let launch = Launch {
        tlschat_bin: std::fs::canonicalize(&a.server_bin)?,
        ngircd_bin: ngircd_bin.clone(),
        loadgen_bin: std::env::current_exe()?,
        cert,
        core: pin.then_some(a.server_core),
        baseline_queue: a.baseline_queue,
        log_dir: log_dir.clone(),
    };

    let tlschat_version = first_line(&launch.tlschat_bin.to_string_lossy(), &["--version"]);
    let ngircd_version = ngircd_bin
        .as_ref()
        .map(|b| first_line(&b.to_string_lossy(), &["--version"]))
        .unwrap_or_else(|| "not installed".into());
    let machine = json!({
        "cpus": ncpu,
        "cpu_model": model,
        "mem_total": mem_total(),
        "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
        "rustc": first_line("rustc", &["--version"]),
        "tlschat": tlschat_version,
        "tlschat_source": source_state(),
        "ngircd": ngircd_version,
        "loadgen": format!("tlschat-loadgen {}", env!("CARGO_PKG_VERSION")),
        "pinning": if pin { format!("servers on core {} (taskset -c), load generator on core {}", a.server_core, a.client_core) } else { "none".into() },
        "nofile_limit": nofile,
        "load_at_start": procs::loadavg(),
    });
    let header = json!({
        "kind": "header",
        "stamp": stamp,
        "mode": kind,
        "machine": machine,
        "params": p.to_json(),
        "reps": reps,
        "targets": targets.iter().map(|t| t.name()).collect::<Vec<_>>(),
        "scenarios": scenarios.iter().map(|s| s.name()).collect::<Vec<_>>(),
        "tlschat_env": procs::TLSCHAT_ENV.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>(),
    });
    println!("== tlschat-loadgen {kind} run {stamp}");
    println!("machine: {}", serde_json::to_string_pretty(&machine)?);
    println!("params: {}", serde_json::to_string(&header["params"])?);
    println!(
        "targets: {}, scenarios: {}, reps: {reps}",
        header["targets"], header["scenarios"]
    );
    let jsonl_path = run_dir.join("runs.jsonl");
    let mut jsonl = std::fs::File::create(&jsonl_path)?;
    writeln!(jsonl, "{header}")?;

    let mut runs = Vec::new();
    for rep in 1..=reps {
        for &sc in &scenarios {
            for &t in &targets {
                if !sc.applies(t) {
                    continue;
                }
                let tag = format!("{}-{}-{rep}", sc.name(), t.name());
                let load_before = procs::loadavg();
                let started = std::time::Instant::now();
                let mut p = p.clone();
                if a.perf {
                    let args = a.perf_args.split_whitespace().map(str::to_owned).collect();
                    p.perf = Some((args, log_dir.join(format!("{tag}.perf.data"))));
                }
                let (result, tls) = run_one(&launch, t, sc, &p, &client_configs, &tag);
                if let Some((_, data)) = &p.perf {
                    if data.exists() {
                        perf_report(data);
                    }
                }
                let secs = started.elapsed().as_secs_f64();
                let line = json!({
                    "kind": "run",
                    "rep": rep,
                    "scenario": sc.name(),
                    "target": t.name(),
                    "ok": result.is_ok(),
                    "error": result.as_ref().err(),
                    "metrics": result.as_ref().ok(),
                    "load_before": load_before,
                    "load_after": procs::loadavg(),
                    "wall_s": secs,
                    "tls": tls,
                });
                writeln!(jsonl, "{line}")?;
                println!(
                    "[rep {rep}] {:<10} {:<8} {:5.1}s {}",
                    sc.name(),
                    t.name(),
                    secs,
                    brief(sc, &result)
                );
                runs.push(Run {
                    scenario: sc,
                    target: t,
                    result,
                    tls,
                });
            }
        }
    }

    let load_end = procs::loadavg();
    let (md, all_met) = render(&header, &runs, &load_end);
    let md_path = run_dir.join("summary.md");
    std::fs::write(&md_path, &md)?;
    writeln!(
        jsonl,
        "{}",
        json!({"kind": "end", "load_at_end": load_end, "all_targets_met": all_met})
    )?;
    // The latest run, at a fixed place.
    let _ = std::fs::copy(&md_path, a.out_dir.join(format!("latest-{kind}.md")));
    let _ = std::fs::copy(&jsonl_path, a.out_dir.join(format!("latest-{kind}.jsonl")));
    println!();
    println!("{md}");
    println!(
        "results: {} and {}",
        md_path.display(),
        jsonl_path.display()
    );
    let failures = runs.iter().filter(|r| r.result.is_err()).count();
    if failures > 0 {
        eprintln!(
            "tlschat-loadgen: {failures} run(s) failed; server logs in {}",
            log_dir.display()
        );
    }
    Ok(failures == 0)
}

/// The markdown report of a run: machine, versions, parameters, the table
/// of medians and the targets. Also says whether every target was met.
fn render(header: &serde_json::Value, runs: &[Run], load_end: &str) -> (String, bool) {
    let machine = &header["machine"];
    let s = |v: &serde_json::Value| v.as_str().unwrap_or("?").to_owned();
    let targets: Vec<Target> = header["targets"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|t| t.as_str().and_then(|t| Target::parse(t).ok()))
                .collect()
        })
        .unwrap_or_default();
    let p = &header["params"];
    let scale_n = p["scale_n"].as_u64().unwrap_or(0) as usize;
    let scale_big = p["scale_big"].as_u64().unwrap_or(0) as usize;
    let summary = Summary::new(runs);
    let (targets_md, all_met) = summary.targets(scale_n, scale_big);
    let mut md = String::new();
    md.push_str(&format!(
        "## tlschat-loadgen {} run {} (medians of {} repetitions)\n\n",
        s(&header["mode"]),
        s(&header["stamp"]),
        header["reps"]
    ));
    md.push_str(&format!(
        "Machine: {} × {}, {}, Linux {}; {}; load average (1/5/15 min) at start {}, at end {load_end}.\n\n",
        machine["cpus"],
        s(&machine["cpu_model"]),
        s(&machine["mem_total"]),
        s(&machine["kernel"]),
        s(&machine["pinning"]),
        s(&machine["load_at_start"]),
    ));
    md.push_str(&format!(
        "Versions: {} (built from {}); {}; {}; {}.\n\n",
        s(&machine["tlschat"]),
        s(&machine["tlschat_source"]),
        s(&machine["ngircd"]),
        s(&machine["rustc"]),
        s(&machine["loadgen"]),
    ));
    let mut negotiated: Vec<String> = Vec::new();
    for t in &targets {
        if let Some(tls) = runs
            .iter()
            .find(|r| r.target == *t)
            .and_then(|r| r.tls.clone())
        {
            negotiated.push(format!("{} {tls}", t.name()));
        }
    }
    if !negotiated.is_empty() {
        md.push_str(&format!("TLS negotiated: {}.\n\n", negotiated.join("; ")));
    }
    md.push_str(&format!("Parameters: `{}`\n\n", header["params"]));
    md.push_str(&summary.table(&targets));
    md.push_str("\nTargets (docs/performance.md):\n\n");
    md.push_str(&targets_md);
    if header["mode"] == "quick" {
        md.push_str("\n(quick smoke run: tiny numbers, not comparable with the targets)\n");
    }
    (md, all_met)
}

/// `report FILE`: renders the markdown of a finished run from its JSON
/// lines again (after a change to the table, say), next to it.
fn report(path: &std::path::Path) -> Result<()> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut header = None;
    let mut load_end = "?".to_owned();
    let mut runs = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line)?;
        match v["kind"].as_str() {
            Some("header") => header = Some(v),
            Some("end") => load_end = v["load_at_end"].as_str().unwrap_or("?").to_owned(),
            Some("run") => {
                let scenario = Scenario::parse(v["scenario"].as_str().unwrap_or(""))?;
                let target = Target::parse(v["target"].as_str().unwrap_or(""))?;
                let result = match v["metrics"].as_object() {
                    Some(m) if v["ok"] == true => Ok(m.clone()),
                    _ => Err(v["error"].as_str().unwrap_or("failed").to_owned()),
                };
                let tls = v["tls"].as_str().map(str::to_owned);
                runs.push(Run {
                    scenario,
                    target,
                    result,
                    tls,
                });
            }
            _ => {}
        }
    }
    let header = header.context("no header line")?;
    let (md, _) = render(&header, &runs, &load_end);
    let out = path.with_file_name("summary.md");
    std::fs::write(&out, &md)?;
    println!("{md}");
    println!("written to {}", out.display());
    Ok(())
}

/// The commit the benchmark was built from, and whether src/ had
/// uncommitted changes (the server is built from the work tree).
fn source_state() -> String {
    let commit = first_line("git", &["rev-parse", "--short", "HEAD"]);
    let dirty = Command::new("git")
        .args(["status", "--porcelain", "--", "src"])
        .output()
        .map(|o| !o.stdout.is_empty())
        .unwrap_or(false);
    if dirty {
        format!("{commit} + uncommitted changes in src/")
    } else {
        commit
    }
}

/// The client TLS configurations: one offering ALPN `tlschat/2`, one
/// offering no ALPN.
struct ClientConfigs {
    v1: Arc<rustls::ClientConfig>,
    history: Arc<rustls::ClientConfig>,
}

/// One scenario against one fresh server.
fn run_one(
    launch: &Launch,
    t: Target,
    sc: Scenario,
    p: &Params,
    configs: &ClientConfigs,
    tag: &str,
) -> (Result<scenarios::Metrics, String>, Option<String>) {
    let config = if t.offers_history() {
        &configs.history
    } else {
        &configs.v1
    };
    let mut server = match launch.start(t, sc == Scenario::Scale, tag) {
        Ok(s) => s,
        Err(e) => return (Err(format!("{e:#}")), None),
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return (Err(e.to_string()), None),
    };
    let d = Arc::new(Dialer::new(t, server.addr, config.clone()));
    let limit = sc.limit(p);
    let r = rt.block_on(async {
        match tokio::time::timeout(limit, sc.run(d.clone(), server.pid, p)).await {
            Ok(r) => r.map_err(|e| format!("{e:#}")),
            Err(_) => Err(format!("did not finish within {limit:?}")),
        }
    });
    rt.shutdown_timeout(Duration::from_secs(2));
    let alive = server.alive();
    let log = server.log.clone();
    server.stop();
    let r = match r {
        Ok(mut m) => {
            m.insert("server_alive".into(), alive.into());
            if alive {
                Ok(m)
            } else {
                Err(format!(
                    "the server died during the run; see {}",
                    log.display()
                ))
            }
        }
        Err(e) if !alive => Err(format!("{e} (the server died; see {})", log.display())),
        Err(e) => Err(e),
    };
    (r, d.negotiated.get().cloned())
}

/// `perf report` of a profile, next to it (`.txt`): the flat profile
/// (self time) and the call graph of the top entries.
fn perf_report(data: &std::path::Path) {
    let out = data.with_extension("txt");
    let report = Command::new("perf")
        .arg("report")
        .arg("-i")
        .arg(data)
        .args(["--stdio", "--no-children", "--percent-limit", "1"])
        .output();
    match report {
        Ok(o) => {
            let _ = std::fs::write(&out, &o.stdout);
            println!("    profile: {}", out.display());
        }
        Err(e) => eprintln!("perf report failed: {e}"),
    }
}

/// The one-line progress report of a run.
fn brief(sc: Scenario, r: &Result<scenarios::Metrics, String>) -> String {
    let m = match r {
        Ok(m) => m,
        Err(e) => return format!("FAILED: {e}"),
    };
    let g = |k: &str| m.get(k).and_then(|v| v.as_f64()).unwrap_or(f64::NAN);
    match sc {
        Scenario::Idle => format!(
            "{:.1} KiB/conn ({} clients, RSS {} KiB)",
            g("kib_per_conn"),
            g("clients"),
            g("rss_after_kib")
        ),
        Scenario::Fanout | Scenario::Paced | Scenario::Slow => {
            let mut s = format!(
                "{:.0} deliveries/s, p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms, server CPU {:.0}%, {:.0}/CPU-s, loadgen CPU {:.0}%",
                g("deliveries_per_s"),
                g("p50_us") / 1e3,
                g("p99_us") / 1e3,
                g("max_us") / 1e3,
                g("server_cpu_util") * 100.0,
                g("deliveries_per_cpu_s"),
                g("loadgen_cpu_util") * 100.0,
            );
            if sc == Scenario::Slow {
                s.push_str(&format!(
                    ", staller dropped {} after {:.2} s",
                    m.get("staller_dropped").map_or("?".into(), |v| v.to_string()),
                    g("staller_gone_after_s")
                ));
            }
            s
        }
        Scenario::Handshakes => format!(
            "{:.0} logins/s, p50 {:.3} ms, server CPU {:.0}%, loadgen CPU {:.0}%, failed {}",
            g("logins_per_s"),
            g("login_p50_us") / 1e3,
            g("server_cpu_util") * 100.0,
            g("loadgen_cpu_util") * 100.0,
            g("failed")
        ),
        Scenario::Scale => format!(
            "{} clients in {:.2} s ({:.1} KiB/conn), {} joined #big in {:.3} s, left in {:.3} s, #big {:.0} deliveries/s p99 {:.3} ms, lost {}",
            g("clients"),
            g("login_s"),
            g("kib_per_conn"),
            g("big"),
            g("join_s"),
            g("leave_s"),
            g("big_deliveries_per_s"),
            g("big_p99_us") / 1e3,
            g("clients_lost")
        ),
    }
}
