//! Shell completions and man pages, made from a binary's clap definition.
//!
//! ```text
//! `--generate WHAT` → the binary's clap::Command → clap_complete (bash, zsh, fish, PowerShell)
//!                                                → clap_mangen (section 1, subcommands included)
//!                                                → stdout
//! ```
//!
//! Both binaries take a hidden `--generate WHAT` (as `rg --generate` does);
//! the archives and packages ship what it prints. It reads no config, data
//! directory or network, so it runs on a build machine as it is.

use std::io::{self, Write};

use clap::{Command, Parser, ValueEnum};

/// What `--generate` prints. The names are what packaging scripts call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Generate {
    /// A bash completion script.
    CompleteBash,
    /// A zsh completion function (`_NAME`).
    CompleteZsh,
    /// A fish completion script.
    CompleteFish,
    /// A PowerShell completion script.
    CompletePowershell,
    /// A man page (roff, section 1).
    Man,
}

/// A command line that is exactly `--generate WHAT`, checked before the
/// binary's own parser: that one may require arguments (the client's
/// server) or read settings from the environment (the server's
/// `TLSCHAT_*`), and neither should stop a packaging script.
#[derive(Parser, Debug)]
#[command(disable_help_flag = true, disable_version_flag = true)]
struct GenerateOnly {
    #[arg(long, value_enum)]
    generate: Generate,
}

/// `Some(what)` if the process was started as `BIN --generate WHAT`.
pub fn requested() -> Option<Generate> {
    GenerateOnly::try_parse().ok().map(|g| g.generate)
}

/// Writes `what` for `cmd` (the binary's full clap command) to `out`.
pub fn write(mut cmd: Command, what: Generate, out: &mut dyn Write) -> io::Result<()> {
    use clap_complete::Shell;
    let shell = match what {
        Generate::CompleteBash => Shell::Bash,
        Generate::CompleteZsh => Shell::Zsh,
        Generate::CompleteFish => Shell::Fish,
        Generate::CompletePowershell => Shell::PowerShell,
        Generate::Man => return man(cmd, out),
    };
    let name = cmd.get_name().to_owned();
    clap_complete::generate(shell, &mut cmd, name, out);
    Ok(())
}

/// One page for the whole program: clap_mangen's sections for the top
/// level, then a section per subcommand with its synopsis and options
/// (clap_mangen alone would point at a page per subcommand, which nothing
/// installs).
fn man(mut cmd: Command, out: &mut dyn Write) -> io::Result<()> {
    // Completes bin names (`tlschat-server gen-cert`) and global flags of
    // the subcommands.
    cmd.build();
    let page = clap_mangen::Man::new(cmd.clone());
    let mut roff = Vec::new();
    page.render_title(&mut roff)?;
    page.render_name_section(&mut roff)?;
    page.render_synopsis_section(&mut roff)?;
    page.render_description_section(&mut roff)?;
    page.render_options_section(&mut roff)?;
    let subcommands: Vec<&Command> = cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
        .collect();
    if !subcommands.is_empty() {
        roff.extend_from_slice(b".SH COMMANDS\n");
        for sub in subcommands {
            subcommand(sub, &mut roff)?;
        }
    }
    if cmd.get_after_help().is_some() || cmd.get_after_long_help().is_some() {
        page.render_extra_section(&mut roff)?;
    }
    page.render_version_section(&mut roff)?;
    out.write_all(&without_repeated_preambles(&roff))
}

/// A subcommand as a `.SS` subsection: name, about, synopsis, options.
fn subcommand(sub: &Command, roff: &mut Vec<u8>) -> io::Result<()> {
    let page = clap_mangen::Man::new(sub.clone());
    let mut part = Vec::new();
    page.render_synopsis_section(&mut part)?;
    page.render_options_section(&mut part)?;
    let part = String::from_utf8_lossy(&part);
    let name = sub.get_bin_name().unwrap_or(sub.get_name());
    // `\-`: a command's dashes must stay ASCII when the page is rendered.
    writeln!(
        roff,
        ".SS \"{}\"",
        name.replace('"', "").replace('-', "\\-")
    )?;
    if let Some(about) = sub.get_long_about().or(sub.get_about()) {
        for line in about.to_string().lines() {
            writeln!(roff, "{}", escape_text(line))?;
        }
    }
    // Its own SYNOPSIS/OPTIONS headings become bold paragraph titles
    // inside the subsection (a man page has no third heading level).
    for line in part.lines() {
        match line.strip_prefix(".SH ") {
            Some(heading) => {
                writeln!(roff, ".PP")?;
                writeln!(roff, ".B {}", heading.trim_matches('"'))?;
            }
            None => writeln!(roff, "{line}")?,
        }
    }
    Ok(())
}

/// A line of text that roff must not read as a request (`.`, `'`) and
/// whose backslashes are literal.
fn escape_text(line: &str) -> String {
    let escaped = line.replace('\\', "\\e");
    if escaped.starts_with(['.', '\'']) {
        format!("\\&{escaped}")
    } else {
        escaped
    }
}

/// Every `Man::render_*` call starts with the same apostrophe preamble
/// (`.ie \n(.g .ds Aq …`); the page needs it once, before `.TH`.
fn without_repeated_preambles(roff: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(roff);
    let mut seen = std::collections::HashSet::new();
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let preamble = line.starts_with(".ie \\n(.g .ds Aq") || line.starts_with(".el .ds Aq");
        if preamble && !seen.insert(line.to_owned()) {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out.into_bytes()
}
