//! Medians over repetitions, the markdown table, and the performance
//! targets (docs/performance.md) checked against it.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde_json::Value;

use crate::client::{History, Target};
use crate::scenarios::{Metrics, Scenario};

/// One finished (or failed) scenario run.
pub struct Run {
    pub scenario: Scenario,
    pub target: Target,
    pub result: Result<Metrics, String>,
    /// The negotiated TLS version and cipher suite.
    pub tls: Option<String>,
}

/// How a metric is shown.
#[derive(Clone, Copy)]
enum Fmt {
    /// As is, with this many decimals.
    Num(usize),
    /// µs shown as ms.
    Ms,
    /// A fraction shown as %.
    Pct,
    /// A boolean: how many of the runs said yes.
    Yes,
}

/// (scenario, metric key, label, format, higher is better?)
const ROWS: &[(Scenario, &str, &str, Fmt, Option<bool>)] = &[
    (
        Scenario::Idle,
        "kib_per_conn",
        "memory per idle client (KiB)",
        Fmt::Num(1),
        Some(false),
    ),
    (
        Scenario::Idle,
        "rss_after_kib",
        "server RSS with N idle (KiB)",
        Fmt::Num(0),
        Some(false),
    ),
    (
        Scenario::Idle,
        "logins_per_s",
        "logins/s while filling",
        Fmt::Num(0),
        Some(true),
    ),
    (
        Scenario::Fanout,
        "deliveries_per_s",
        "deliveries/s",
        Fmt::Num(0),
        Some(true),
    ),
    (
        Scenario::Fanout,
        "sent_per_s",
        "messages sent/s",
        Fmt::Num(0),
        Some(true),
    ),
    (
        Scenario::Fanout,
        "p50_us",
        "latency p50 (ms)",
        Fmt::Ms,
        Some(false),
    ),
    (
        Scenario::Fanout,
        "p99_us",
        "latency p99 (ms)",
        Fmt::Ms,
        Some(false),
    ),
    (
        Scenario::Fanout,
        "max_us",
        "latency max (ms)",
        Fmt::Ms,
        Some(false),
    ),
    (
        Scenario::Fanout,
        "server_cpu_s",
        "server CPU-seconds (10 s window)",
        Fmt::Num(2),
        None,
    ),
    (
        Scenario::Fanout,
        "deliveries_per_cpu_s",
        "deliveries per server CPU-second",
        Fmt::Num(0),
        Some(true),
    ),
    (
        Scenario::Fanout,
        "clients_lost",
        "clients dropped by the server",
        Fmt::Num(0),
        Some(false),
    ),
    (
        Scenario::Fanout,
        "loadgen_cpu_util",
        "load generator CPU use",
        Fmt::Pct,
        None,
    ),
    (
        Scenario::Paced,
        "deliveries_per_s",
        "deliveries/s",
        Fmt::Num(0),
        None,
    ),
    (
        Scenario::Paced,
        "p50_us",
        "latency p50 (ms)",
        Fmt::Ms,
        Some(false),
    ),
    (
        Scenario::Paced,
        "p99_us",
        "latency p99 (ms)",
        Fmt::Ms,
        Some(false),
    ),
    (
        Scenario::Paced,
        "max_us",
        "latency max (ms)",
        Fmt::Ms,
        Some(false),
    ),
    (
        Scenario::Paced,
        "server_cpu_util",
        "server CPU use",
        Fmt::Pct,
        Some(false),
    ),
    (
        Scenario::Paced,
        "deliveries_per_cpu_s",
        "deliveries per server CPU-second",
        Fmt::Num(0),
        Some(true),
    ),
    (
        Scenario::Handshakes,
        "logins_per_s",
        "connect + TLS + login + quit, per second",
        Fmt::Num(0),
        Some(true),
    ),
    (
        Scenario::Handshakes,
        "login_p50_us",
        "connect to logged in, p50 (ms)",
        Fmt::Ms,
        Some(false),
    ),
    (
        Scenario::Handshakes,
        "login_p99_us",
        "connect to logged in, p99 (ms)",
        Fmt::Ms,
        Some(false),
    ),
    (
        Scenario::Handshakes,
        "cycle_p50_us",
        "whole cycle (to the server's close), p50 (ms)",
        Fmt::Ms,
        Some(false),
    ),
    (
        Scenario::Handshakes,
        "server_cpu_util",
        "server CPU use",
        Fmt::Pct,
        None,
    ),
    (
        Scenario::Handshakes,
        "logins_per_cpu_s",
        "cycles per server CPU-second",
        Fmt::Num(0),
        Some(true),
    ),
    (
        Scenario::Handshakes,
        "loadgen_cpu_util",
        "load generator CPU use",
        Fmt::Pct,
        None,
    ),
    (
        Scenario::Slow,
        "deliveries_per_s",
        "deliveries/s (others)",
        Fmt::Num(0),
        Some(true),
    ),
    (
        Scenario::Slow,
        "p99_us",
        "others' latency p99 (ms)",
        Fmt::Ms,
        Some(false),
    ),
    (
        Scenario::Slow,
        "staller_dropped",
        "staller dropped",
        Fmt::Yes,
        None,
    ),
    (
        Scenario::Slow,
        "staller_gone_after_s",
        "staller dropped after (s)",
        Fmt::Num(2),
        None,
    ),
    (
        Scenario::Scale,
        "clients",
        "clients logged in",
        Fmt::Num(0),
        None,
    ),
    (
        Scenario::Scale,
        "login_s",
        "time to log all in (s)",
        Fmt::Num(2),
        Some(false),
    ),
    (
        Scenario::Scale,
        "kib_per_conn",
        "memory per client (KiB)",
        Fmt::Num(1),
        Some(false),
    ),
    (
        Scenario::Scale,
        "join_s",
        "time for the #big members to join (s)",
        Fmt::Num(3),
        Some(false),
    ),
    (
        Scenario::Scale,
        "leave_s",
        "time for them to leave (s)",
        Fmt::Num(3),
        Some(false),
    ),
    (
        Scenario::Scale,
        "big_deliveries_per_s",
        "#big paced fanout: deliveries/s",
        Fmt::Num(0),
        Some(true),
    ),
    (
        Scenario::Scale,
        "big_p99_us",
        "#big paced fanout: latency p99 (ms)",
        Fmt::Ms,
        Some(false),
    ),
    (
        Scenario::Scale,
        "big_p50_us",
        "#big paced fanout: latency p50 (ms)",
        Fmt::Ms,
        Some(false),
    ),
    (
        Scenario::Scale,
        "big_server_cpu_util",
        "#big paced fanout: server CPU use",
        Fmt::Pct,
        Some(false),
    ),
    (
        Scenario::Scale,
        "clients_lost",
        "clients lost",
        Fmt::Num(0),
        Some(false),
    ),
];

/// (scenario, target) → metric → values over reps.
type Table = BTreeMap<(Scenario, Target), BTreeMap<String, Vec<f64>>>;

pub struct Summary {
    table: Table,
    /// (scenario, target) → (ok runs, failed runs, first error).
    status: BTreeMap<(Scenario, Target), (usize, usize, Option<String>)>,
}

fn as_f64(v: &Value) -> Option<f64> {
    match v {
        Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
        Value::Number(n) => n.as_f64(),
        _ => None,
    }
}

pub fn median(v: &[f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let n = s.len();
    Some(if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    })
}

impl Summary {
    pub fn new(runs: &[Run]) -> Summary {
        let mut table: Table = BTreeMap::new();
        let mut status: BTreeMap<_, (usize, usize, Option<String>)> = BTreeMap::new();
        for r in runs {
            let key = (r.scenario, r.target);
            let st = status.entry(key).or_default();
            match &r.result {
                Ok(m) => {
                    st.0 += 1;
                    let row = table.entry(key).or_default();
                    for (k, v) in m {
                        if let Some(x) = as_f64(v) {
                            row.entry(k.clone()).or_default().push(x);
                        }
                    }
                }
                Err(e) => {
                    st.1 += 1;
                    st.2.get_or_insert_with(|| e.clone());
                }
            }
        }
        Summary { table, status }
    }

    pub fn median(&self, s: Scenario, t: Target, k: &str) -> Option<f64> {
        self.table.get(&(s, t))?.get(k).and_then(|v| median(v))
    }

    fn values(&self, s: Scenario, t: Target, k: &str) -> Option<&Vec<f64>> {
        self.table.get(&(s, t))?.get(k)
    }

    fn cell(&self, s: Scenario, t: Target, k: &str, f: Fmt) -> String {
        match f {
            Fmt::Yes => match self.values(s, t, k) {
                Some(v) => {
                    let yes = v.iter().filter(|x| **x > 0.5).count();
                    format!(
                        "{} ({yes}/{})",
                        if yes == v.len() { "yes" } else { "no" },
                        v.len()
                    )
                }
                None => "–".into(),
            },
            _ => match self.median(s, t, k) {
                Some(x) => fmt_num(x, f),
                None => "–".into(),
            },
        }
    }

    /// The markdown table: one row per metric, one column per target,
    /// then tlschat's ratio to ngircd and to the baseline.
    pub fn table(&self, targets: &[Target]) -> String {
        let mut out = String::new();
        let _ = write!(out, "| scenario | metric (median of runs) |");
        for t in targets {
            let _ = write!(out, " {} |", t.name());
        }
        let ratios: Vec<Target> = targets
            .iter()
            .copied()
            .filter(|t| *t != Target::TLSCHAT && targets.contains(&Target::TLSCHAT))
            .collect();
        for t in &ratios {
            let _ = write!(out, " tlschat ÷ {} |", t.name());
        }
        out.push('\n');
        let _ = write!(out, "|---|---|");
        for _ in targets.iter().chain(&ratios) {
            out.push_str("---:|");
        }
        out.push('\n');
        for &(s, k, label, f, _) in ROWS {
            if !targets.iter().any(|t| self.table.contains_key(&(s, *t))) {
                continue;
            }
            let _ = write!(out, "| {} | {label} |", s.name());
            for &t in targets {
                let _ = write!(out, " {} |", self.cell(s, t, k, f));
            }
            for &t in &ratios {
                let r = match (f, self.median(s, Target::TLSCHAT, k), self.median(s, t, k)) {
                    (Fmt::Yes, _, _) => "".into(),
                    (_, Some(a), Some(b)) if b != 0.0 => format!("{:.2}×", a / b),
                    _ => "".into(),
                };
                let _ = write!(out, " {r} |");
            }
            out.push('\n');
        }
        let failed: Vec<String> = self
            .status
            .iter()
            .filter(|(_, st)| st.1 > 0)
            .map(|((s, t), st)| {
                format!(
                    "- {} / {}: {} of {} runs failed: {}",
                    s.name(),
                    t.name(),
                    st.1,
                    st.0 + st.1,
                    st.2.as_deref().unwrap_or("")
                )
            })
            .collect();
        if !failed.is_empty() {
            out.push_str("\nFailed runs:\n");
            for f in failed {
                out.push_str(&f);
                out.push('\n');
            }
        }
        out
    }

    /// The targets of docs/performance.md, each met or missed, from the
    /// medians.
    pub fn targets(&self, scale_n: usize, scale_big: usize) -> (String, bool) {
        use Scenario::*;
        use Target::{Baseline, Ngircd};
        const TLSCHAT: Target = Target::TLSCHAT;
        let no_history = Target::Tlschat(History::Off);
        let stalled = Target::Tlschat(History::Stalled);
        let mut out = String::from("| target | measured | verdict |\n|---|---|---|\n");
        let mut all = true;
        let mut row = |name: &str, measured: String, ok: Option<bool>| {
            let verdict = match ok {
                Some(true) => "met",
                Some(false) => {
                    all = false;
                    "**missed**"
                }
                None => "not measured",
            };
            let _ = writeln!(out, "| {name} | {measured} | {verdict} |");
        };
        let ratio = |s: Scenario, k: &str, other: Target| -> Option<f64> {
            Some(self.median(s, TLSCHAT, k)? / self.median(s, other, k)?)
        };
        let r = ratio(Fanout, "deliveries_per_s", Ngircd);
        row(
            "fanout deliveries/s ≥ 2.5× ngircd",
            r.map_or("–".into(), |r| format!("{r:.2}×")),
            r.map(|r| r >= 2.5),
        );
        let r = ratio(Fanout, "deliveries_per_s", Baseline);
        row(
            "fanout deliveries/s ≥ 0.8× baseline relay",
            r.map_or("–".into(), |r| format!("{r:.2}×")),
            r.map(|r| r >= 0.8),
        );
        let r = ratio(Fanout, "deliveries_per_cpu_s", Ngircd);
        row(
            "deliveries per server CPU-second ≥ 3× ngircd",
            r.map_or("–".into(), |r| format!("{r:.2}×")),
            r.map(|r| r >= 3.0),
        );
        let p = self.median(Paced, TLSCHAT, "p99_us");
        let ng = self.median(Paced, Ngircd, "p99_us");
        row(
            "paced fanout p99 ≤ 2 ms",
            match (p, ng) {
                (Some(p), Some(n)) => format!("{:.3} ms (ngircd {:.3} ms)", p / 1e3, n / 1e3),
                (Some(p), None) => format!("{:.3} ms", p / 1e3),
                _ => "–".into(),
            },
            p.map(|p| p <= 2000.0),
        );
        let k = self.median(Idle, TLSCHAT, "kib_per_conn");
        let kb = self.median(Idle, Baseline, "kib_per_conn");
        row(
            "idle memory ≤ 12 KiB per connection",
            match (k, kb) {
                (Some(k), Some(b)) => format!("{k:.1} KiB (baseline {b:.1} KiB, {:.2}×)", k / b),
                (Some(k), None) => format!("{k:.1} KiB"),
                _ => "–".into(),
            },
            k.map(|k| k <= 12.0),
        );
        let r = ratio(Handshakes, "logins_per_s", Baseline);
        row(
            "TLS + login/s ≥ 0.9× baseline TLS-only handshakes/s",
            r.map_or("–".into(), |r| format!("{r:.2}×")),
            r.map(|r| r >= 0.9),
        );
        let n = self.median(Scale, TLSCHAT, "clients");
        let lost = self.values(Scale, TLSCHAT, "clients_lost");
        let failed = self.status.get(&(Scale, TLSCHAT)).map_or(0, |s| s.1);
        let ok = n.map(|n| {
            n as usize >= 10_000
                && scale_big >= 2000
                && failed == 0
                && lost.is_some_and(|l| l.iter().all(|x| *x == 0.0))
        });
        row(
            "10,000 connected clients, 2,000 in #big",
            match n {
                Some(n) => format!(
                    "{n:.0} clients, {scale_big} in #big, lost {}, failed runs {failed}",
                    lost.and_then(|l| median(l)).unwrap_or(f64::NAN)
                ),
                None if failed > 0 => format!("failed ({failed} runs)"),
                None => "–".into(),
            },
            if scale_n < 10_000 {
                None
            } else {
                ok.or(Some(false).filter(|_| failed > 0))
            },
        );
        let slow = self.median(Slow, TLSCHAT, "p99_us");
        let base = self.median(Fanout, TLSCHAT, "p99_us");
        let dropped = self.values(Slow, TLSCHAT, "staller_dropped");
        row(
            "slow consumer: others' p99 unmoved (≤ 1.25× fanout p99 or +0.5 ms), staller dropped",
            match (slow, base) {
                (Some(s), Some(b)) => format!(
                    "{:.3} ms vs {:.3} ms; dropped {}/{}",
                    s / 1e3,
                    b / 1e3,
                    dropped.map_or(0, |d| d.iter().filter(|x| **x > 0.5).count()),
                    dropped.map_or(0, |d| d.len())
                ),
                _ => "–".into(),
            },
            match (slow, base, dropped) {
                (Some(s), Some(b), Some(d)) => {
                    Some((s <= b * 1.25 || s <= b + 500.0) && d.iter().all(|x| *x > 0.5))
                }
                _ => None,
            },
        );
        let r = ratio(Fanout, "deliveries_per_s", no_history);
        row(
            "history on: fanout deliveries/s ≥ 0.95× history off",
            r.map_or("–".into(), |r| format!("{r:.2}×")),
            r.map(|r| r >= 0.95),
        );
        let on = self.median(Paced, TLSCHAT, "p99_us");
        let off = self.median(Paced, no_history, "p99_us");
        row(
            "history on: paced p99 ≤ 1.05× history off",
            match (on, off) {
                (Some(a), Some(b)) => {
                    format!("{:.3} ms vs {:.3} ms ({:.2}×)", a / 1e3, b / 1e3, a / b)
                }
                _ => "–".into(),
            },
            on.zip(off).map(|(a, b)| a <= b * 1.05),
        );
        let st = self.median(Paced, stalled, "p99_us");
        row(
            "stalled history store: paced p99 unmoved (≤ 1.05× history on)",
            match (st, on, off) {
                (Some(s), Some(a), Some(b)) => format!(
                    "{:.3} ms vs {:.3} ms ({:.2}×; history off {:.3} ms)",
                    s / 1e3,
                    a / 1e3,
                    s / a,
                    b / 1e3
                ),
                (Some(s), Some(a), None) => {
                    format!("{:.3} ms vs {:.3} ms ({:.2}×)", s / 1e3, a / 1e3, s / a)
                }
                _ => "–".into(),
            },
            st.zip(on).map(|(s, a)| s <= a * 1.05),
        );
        (out, all)
    }
}

fn fmt_num(x: f64, f: Fmt) -> String {
    match f {
        Fmt::Num(d) => {
            let s = format!("{x:.d$}");
            group_thousands(&s)
        }
        Fmt::Ms => format!("{:.3}", x / 1e3),
        Fmt::Pct => format!("{:.0}%", x * 100.0),
        Fmt::Yes => format!("{x}"),
    }
}

/// 1234567.8 → 1,234,567.8
fn group_thousands(s: &str) -> String {
    let (int, frac) = match s.find('.') {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, ""),
    };
    let (sign, digits) = match int.strip_prefix('-') {
        Some(d) => ("-", d),
        None => ("", int),
    };
    if digits.len() <= 4 {
        return s.to_owned();
    }
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    format!("{sign}{out}{frac}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_numbers() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0]), Some(2.5));
        assert_eq!(median(&[]), None);
        assert_eq!(group_thousands("1234567.5"), "1,234,567.5");
        assert_eq!(group_thousands("1234"), "1234");
        assert_eq!(group_thousands("12345"), "12,345");
    }

    fn run(scenario: Scenario, target: Target, key: &str, v: f64) -> Run {
        let mut m = Metrics::new();
        m.insert(key.into(), v.into());
        Run {
            scenario,
            target,
            result: Ok(m),
            tls: None,
        }
    }

    fn verdict<'a>(md: &'a str, target: &str) -> &'a str {
        md.lines()
            .find(|l| l.starts_with(&format!("| {target} |")))
            .and_then(|l| l.trim_end_matches(" |").rsplit(" | ").next())
            .unwrap_or("absent")
    }

    #[test]
    fn history_targets_compare_on_with_off_and_stalled_with_on() {
        let (on, off, stalled) = (
            Target::TLSCHAT,
            Target::Tlschat(History::Off),
            Target::Tlschat(History::Stalled),
        );
        let fanout = "history on: fanout deliveries/s ≥ 0.95× history off";
        let paced = "history on: paced p99 ≤ 1.05× history off";
        let stall = "stalled history store: paced p99 unmoved (≤ 1.05× history on)";
        let runs = [
            run(Scenario::Fanout, on, "deliveries_per_s", 960.0),
            run(Scenario::Fanout, off, "deliveries_per_s", 1000.0),
            run(Scenario::Paced, on, "p99_us", 1040.0),
            run(Scenario::Paced, off, "p99_us", 1000.0),
            run(Scenario::Paced, stalled, "p99_us", 1100.0),
        ];
        let (md, _) = Summary::new(&runs).targets(0, 0);
        assert_eq!(verdict(&md, fanout), "met");
        assert_eq!(verdict(&md, paced), "met");
        assert_eq!(verdict(&md, stall), "**missed**");
        let runs = [
            run(Scenario::Fanout, on, "deliveries_per_s", 940.0),
            run(Scenario::Fanout, off, "deliveries_per_s", 1000.0),
            run(Scenario::Paced, on, "p99_us", 1060.0),
            run(Scenario::Paced, off, "p99_us", 1000.0),
            run(Scenario::Paced, stalled, "p99_us", 1070.0),
        ];
        let (md, _) = Summary::new(&runs).targets(0, 0);
        assert_eq!(verdict(&md, fanout), "**missed**");
        assert_eq!(verdict(&md, paced), "**missed**");
        assert_eq!(verdict(&md, stall), "met");
        let (md, _) = Summary::new(&runs[..1]).targets(0, 0);
        assert_eq!(verdict(&md, stall), "not measured");
    }
}
