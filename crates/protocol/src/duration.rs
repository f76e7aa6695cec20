//! How long a ban or an invite lasts, as people type it: `30m`, `12h`,
//! `7d`, `1w`.
//!
//! ```text
//! "/ban bob 12h …" word → looks_like → parse → Duration (1 minute ..= 365 days)
//! Duration → format → "12h" (what INFO lines and /bans show)
//! ```
//!
//! A word *looks like* a duration when it is ASCII digits followed by one
//! ASCII letter. Such a word is always read as a duration, never as the
//! start of a reason: `/ban bob 3x spam` is refused (`bad-argument`)
//! rather than banning forever with the reason `3x spam`.

use std::time::Duration;

const MINUTE: u64 = 60;
const HOUR: u64 = 60 * MINUTE;
const DAY: u64 = 24 * HOUR;
const WEEK: u64 = 7 * DAY;

/// The longest duration anyone may give.
pub const MAX_DURATION: Duration = Duration::from_secs(365 * DAY);

/// Why a duration word was refused; the text follows `ERROR bad-argument`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("{0} is not a duration: write a number and m, h, d or w (30m, 12h, 7d, 1w)")]
    Unit(String),
    #[error("a duration is at least 1m")]
    Zero,
    #[error("{0} is too long: a duration is at most 365d")]
    TooLong(String),
}

/// True for a word that is meant as a duration (digits, then one letter),
/// valid or not.
pub fn looks_like(word: &str) -> bool {
    let mut chars = word.chars();
    let Some(unit) = chars.next_back() else {
        return false;
    };
    let digits = chars.as_str();
    unit.is_ascii_alphabetic() && !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// Parses `<N>m`, `<N>h`, `<N>d` or `<N>w` (N ≥ 1, at most 365 days;
/// lowercase units only, so `2M` is not silently two minutes or months).
pub fn parse(word: &str) -> Result<Duration, DurationError> {
    if !looks_like(word) {
        return Err(DurationError::Unit(word.to_owned()));
    }
    let mut chars = word.chars();
    let unit = match chars.next_back() {
        Some('m') => MINUTE,
        Some('h') => HOUR,
        Some('d') => DAY,
        Some('w') => WEEK,
        _ => return Err(DurationError::Unit(word.to_owned())),
    };
    let too_long = || DurationError::TooLong(word.to_owned());
    // Digits only (checked above), so the only parse error is overflow.
    let n: u64 = chars.as_str().parse().map_err(|_| too_long())?;
    if n == 0 {
        return Err(DurationError::Zero);
    }
    let secs = n.checked_mul(unit).ok_or_else(too_long)?;
    if secs > MAX_DURATION.as_secs() {
        return Err(too_long());
    }
    Ok(Duration::from_secs(secs))
}

/// The shortest exact form in whole days, hours or minutes (`7d`, `36h`,
/// `90m`), rounded up to the next minute. `parse` reads it back.
pub fn format(d: Duration) -> String {
    let mins = u64::try_from(d.as_nanos().div_ceil(u128::from(MINUTE) * 1_000_000_000))
        .unwrap_or(u64::MAX);
    let (hours_exact, days_exact) = (mins % 60 == 0, mins % (24 * 60) == 0);
    match mins {
        0 => "0m".to_owned(),
        _ if days_exact => format!("{}d", mins / (24 * 60)),
        _ if hours_exact => format!("{}h", mins / 60),
        _ => format!("{mins}m"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_bounds() {
        assert_eq!(parse("30m"), Ok(Duration::from_secs(30 * 60)));
        assert_eq!(parse("12h"), Ok(Duration::from_secs(12 * 3600)));
        assert_eq!(parse("7d"), Ok(Duration::from_secs(7 * 86400)));
        assert_eq!(parse("1w"), Ok(Duration::from_secs(7 * 86400)));
        assert_eq!(parse("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse("365d"), Ok(MAX_DURATION));
        assert_eq!(parse("007d"), Ok(Duration::from_secs(7 * 86400)));
        assert_eq!(parse("0m"), Err(DurationError::Zero));
        assert_eq!(parse("366d"), Err(DurationError::TooLong("366d".into())));
        assert_eq!(parse("53w"), Err(DurationError::TooLong("53w".into())));
        assert_eq!(
            parse("525601m"),
            Err(DurationError::TooLong("525601m".into()))
        );
        let huge = format!("{}m", "9".repeat(40));
        assert_eq!(parse(&huge), Err(DurationError::TooLong(huge.clone())));
        assert_eq!(
            parse(&format!("{}w", u64::MAX / WEEK + 1)),
            Err(DurationError::TooLong(format!("{}w", u64::MAX / WEEK + 1)))
        );
    }

    #[test]
    fn hostile_words_are_refused_without_panic() {
        for word in [
            "",
            "m",
            "30",
            "30M",
            "2x",
            "1y",
            "-1d",
            "+1d",
            "1.5h",
            "1 d",
            "１d",
            "٣d",
            "3д",
            "30m\u{301}",
            "🔑",
            "1d1",
            "d1",
        ] {
            assert!(parse(word).is_err(), "{word:?}");
        }
        assert!(looks_like("2x") && looks_like("30M") && looks_like("1y"));
        for word in ["", "m", "30", "1st", "3д", "١d", "spam", "1.5h", "d1"] {
            assert!(!looks_like(word), "{word:?}");
        }
        let e = parse("2x").unwrap_err().to_string();
        assert!(e.contains("30m, 12h, 7d, 1w"), "{e}");
    }

    #[test]
    fn format_is_the_shortest_exact_form_and_parses_back() {
        assert_eq!(format(Duration::from_secs(30 * 60)), "30m");
        assert_eq!(format(Duration::from_secs(90 * 60)), "90m");
        assert_eq!(format(Duration::from_secs(12 * 3600)), "12h");
        assert_eq!(format(Duration::from_secs(36 * 3600)), "36h");
        assert_eq!(format(Duration::from_secs(7 * 86400)), "7d");
        assert_eq!(format(MAX_DURATION), "365d");
        assert_eq!(format(Duration::from_secs(61)), "2m");
        assert_eq!(format(Duration::from_millis(1)), "1m");
        assert_eq!(format(Duration::ZERO), "0m");
        assert!(format(Duration::MAX).ends_with(['m', 'h', 'd']));
        for mins in [1, 59, 60, 61, 1439, 1440, 1441, 10080, 525_600] {
            let d = Duration::from_secs(mins * 60);
            assert_eq!(parse(&format(d)), Ok(d), "{mins} minutes");
        }
    }
}
