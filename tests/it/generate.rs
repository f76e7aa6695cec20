//! `--generate WHAT` on both real binaries: every completion script and the
//! man page come out on stdout, name the program and its flags, load in
//! their shell (`bash -n`, `zsh -n` where installed), and nothing else is
//! touched: no data directory, no config, no network, whatever `TLSCHAT_*`
//! the environment holds.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

const SERVER: &str = env!("CARGO_BIN_EXE_tlschat-server");
const CLIENT: &str = env!("CARGO_BIN_EXE_tlschat");

/// The values the packaging scripts call, and nothing else.
const WHATS: [&str; 5] = [
    "complete-bash",
    "complete-zsh",
    "complete-fish",
    "complete-powershell",
    "man",
];

/// A binary, its name, and flags its output must mention.
const BINARIES: [(&str, &str, &[&str]); 2] = [
    (
        SERVER,
        "tlschat-server",
        &[
            "--listen",
            "--data-dir",
            "--max-clients",
            "--days",
            "--force",
        ],
    ),
    (
        CLIENT,
        "tlschat",
        &["--nick", "--fingerprint", "--accept-new", "--plain"],
    ),
];

/// `bin args…` in `cwd`, with settings in the environment that would make
/// a server or client do something (and fail) if they were read.
fn run(bin: &str, args: &[&str], cwd: &Path) -> Output {
    let data_dir = cwd.join("data-dir-that-must-not-appear");
    assert_cmd::Command::new(bin)
        .args(args)
        .current_dir(cwd)
        .env("TLSCHAT_DATA_DIR", &data_dir)
        .env("TLSCHAT_CONFIG", cwd.join("missing.toml"))
        .env("TLSCHAT_LISTEN", "192.0.2.1:1")
        .env("TLSCHAT_NICK", "-not a nick-")
        .env("TLSCHAT_KNOWN_HOSTS", cwd.join("known_hosts"))
        .env("HOME", cwd)
        .env("XDG_DATA_HOME", cwd)
        .env("XDG_CONFIG_HOME", cwd)
        .env_remove("RUST_LOG")
        .timeout(Duration::from_secs(20))
        .output()
        .unwrap_or_else(|e| panic!("cannot run {bin}: {e}"))
}

fn stdout_of(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).expect("generated text is UTF-8")
}

#[test]
fn every_value_prints_text_naming_the_program_and_its_flags() {
    for (bin, name, flags) in BINARIES {
        for what in WHATS {
            let cwd = tempfile::tempdir().expect("tempdir");
            let out = run(bin, &["--generate", what], cwd.path());
            let context = format!("{name} --generate {what}");
            assert!(out.status.success(), "{context}: {out:?}");
            assert!(out.stderr.is_empty(), "{context}: stderr {:?}", out.stderr);
            let text = stdout_of(&out);
            assert!(text.contains(name), "{context} does not name {name}");
            for flag in flags {
                // roff escapes `-` as `\-`; fish says `-l listen`.
                let forms = [
                    flag.to_string(),
                    flag.replace('-', "\\-"),
                    format!("-l {}", flag.trim_start_matches('-')),
                ];
                assert!(
                    forms.iter().any(|f| text.contains(f.as_str())),
                    "{context} does not mention {flag}"
                );
            }
            let left: Vec<_> = std::fs::read_dir(cwd.path())
                .expect("read the working directory")
                .map(|e| e.expect("dir entry").file_name())
                .collect();
            assert!(left.is_empty(), "{context} wrote {left:?}");
        }
    }
}

/// Runs `shell -n` on `script` (syntax check, nothing executed).
fn shell_syntax_ok(shell: &str, script: &str, context: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("completion");
    std::fs::write(&path, script).expect("write the script");
    let out = Command::new(shell)
        .arg("-n")
        .arg(&path)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {shell}: {e}"));
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{context}: `{shell} -n` says {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn installed(program: &str) -> bool {
    crate::harness::outside_program(program, &["--version"])
}

#[test]
fn completions_pass_their_shells_syntax_check() {
    let cwd = tempfile::tempdir().expect("tempdir");
    for (bin, name, _) in BINARIES {
        let bash = stdout_of(&run(bin, &["--generate", "complete-bash"], cwd.path()));
        shell_syntax_ok("bash", &bash, &format!("{name} complete-bash"));
        assert!(
            bash.contains(&format!("complete -F _{}", name.replace('-', "__")))
                || bash.contains(&format!("complete -F _{name}")),
            "{name}: the bash script registers no completion function"
        );
        if installed("zsh") {
            let zsh = stdout_of(&run(bin, &["--generate", "complete-zsh"], cwd.path()));
            assert!(zsh.starts_with(&format!("#compdef {name}")), "{name} zsh");
            shell_syntax_ok("zsh", &zsh, &format!("{name} complete-zsh"));
        }
    }
}

/// The roff lines of `page` after the apostrophe preamble.
fn requests(page: &str) -> Vec<&str> {
    page.lines().filter(|l| l.starts_with('.')).collect()
}

#[test]
fn the_man_page_is_one_page_with_every_subcommand() {
    let cwd = tempfile::tempdir().expect("tempdir");
    let page = stdout_of(&run(SERVER, &["--generate", "man"], cwd.path()));
    let lines = requests(&page);
    let title = lines
        .iter()
        .position(|l| l.starts_with(".TH "))
        .expect("a .TH title");
    assert!(
        lines[title].starts_with(".TH tlschat-server 1 "),
        "{}",
        lines[title]
    );
    // Only the string definition for the apostrophe may precede the title,
    // once: a repeated preamble or a section before .TH breaks `man`.
    assert!(
        lines[..title]
            .iter()
            .all(|l| l.starts_with(".ie ") || l.starts_with(".el ")),
        "before .TH: {:?}",
        &lines[..title]
    );
    assert_eq!(page.matches(".ds Aq").count(), 2, "one preamble");
    for section in [".SH NAME", ".SH SYNOPSIS", ".SH OPTIONS", ".SH COMMANDS"] {
        assert!(lines.contains(&section), "{section} missing");
    }
    for sub in ["run", "gen-cert", "fingerprint", "passwd", "check-config"] {
        // roff's `\-`, so the rendered command keeps ASCII dashes.
        let heading = format!(".SS \"tlschat\\-server {}\"", sub.replace('-', "\\-"));
        assert!(lines.contains(&heading.as_str()), "{heading} missing");
    }
    // gen-cert's own options are documented, not just its name.
    let gen_cert = page
        .split(".SS ")
        .find(|s| s.starts_with("\"tlschat\\-server gen\\-cert\""))
        .expect("the gen-cert subsection");
    assert!(gen_cert.contains("\\-\\-days"), "{gen_cert}");
    // No page for a subcommand is referred to: only this one is installed.
    assert!(!page.contains("tlschat\\-server\\-run(1)"), "{page}");

    let client = stdout_of(&run(CLIENT, &["--generate", "man"], cwd.path()));
    let lines = requests(&client);
    assert!(
        lines.iter().any(|l| l.starts_with(".TH tlschat 1 ")),
        "{lines:?}"
    );
    assert!(
        !lines.contains(&".SH COMMANDS"),
        "the client has no subcommands"
    );
    // `man` renders in any locale, LC_ALL=C included, only what is ASCII:
    // a typographic character (an ellipsis in a help text) is a missing
    // glyph warning there.
    for (name, page) in [("tlschat-server", &page), ("tlschat", &client)] {
        let odd: Vec<char> = page.chars().filter(|c| !c.is_ascii()).collect();
        assert!(odd.is_empty(), "{name}'s man page has {odd:?}");
    }
}

#[test]
fn a_wrong_value_or_extra_arguments_are_usage_errors() {
    let cwd = tempfile::tempdir().expect("tempdir");
    for (bin, name, _) in BINARIES {
        let out = run(bin, &["--generate", "complete-tcsh"], cwd.path());
        assert_eq!(out.status.code(), Some(2), "{name}: {out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("complete-powershell"), "{name}: {stderr}");
        assert!(out.stdout.is_empty(), "{name}");
    }
    let out = run(
        SERVER,
        &["--generate", "man", "--listen", "127.0.0.1:0"],
        cwd.path(),
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let out = run(CLIENT, &["--generate", "man", "localhost"], cwd.path());
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}
