//! Ages as people type them: `24h`, `30m`, `7d`, `1h30m`, `90s`, `2w`.

use std::time::Duration;

/// Parses a duration made of one or more `NUMBER UNIT` pieces, units `s`, `m`, `h`, `d`, `w`.
///
/// A bare number is refused rather than guessed at: is `24` hours or seconds?
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    let example = "write e.g. 24h, 30m, 7d or 1h30m";
    if trimmed.is_empty() {
        return Err(format!("a duration cannot be empty; {example}"));
    }
    if trimmed.starts_with('-') {
        return Err(format!("{trimmed:?} is negative; {example}"));
    }
    let mut rest = trimmed;
    let mut total: u64 = 0;
    let too_long = || format!("{trimmed:?} is too long");
    while !rest.is_empty() {
        let digits_end = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits_end == 0 {
            return Err(format!("{trimmed:?} is not a duration; {example}"));
        }
        let (digits, after) = rest.split_at(digits_end);
        let unit_end = after
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_end);
        let seconds_per_unit: u64 = match unit.trim() {
            "s" | "sec" | "secs" | "second" | "seconds" => 1,
            "m" | "min" | "mins" | "minute" | "minutes" => 60,
            "h" | "hr" | "hrs" | "hour" | "hours" => 3600,
            "d" | "day" | "days" => 86_400,
            "w" | "week" | "weeks" => 7 * 86_400,
            "" => {
                return Err(format!(
                    "{trimmed:?} has no unit; {example} (s, m, h, d, w)"
                ));
            }
            other => {
                return Err(format!(
                    "{trimmed:?} has an unknown unit {other:?}; use s, m, h, d or w ({example})"
                ));
            }
        };
        let count: u64 = digits.parse().map_err(|_| too_long())?;
        total = count
            .checked_mul(seconds_per_unit)
            .and_then(|s| total.checked_add(s))
            .ok_or_else(too_long)?;
        rest = next;
    }
    Ok(Duration::from_secs(total))
}

/// A duration shown briefly: `1.24 s`, `350 ms`, `2 min 5 s`.
pub(crate) fn brief(duration: Duration) -> String {
    let secs = duration.as_secs_f64();
    if secs < 1.0 {
        format!("{} ms", duration.as_millis())
    } else if secs < 60.0 {
        format!("{secs:.2} s")
    } else {
        let whole = duration.as_secs();
        if whole < 3600 {
            format!("{} min {} s", whole / 60, whole % 60)
        } else {
            format!("{} h {} min", whole / 3600, (whole % 3600) / 60)
        }
    }
}

/// An age shown the way `--older-than` takes it, coarsely: `3d 4h`, `25m`, `12s`.
pub(crate) fn age(duration: Duration) -> String {
    let secs = duration.as_secs();
    let (big, big_unit, small, small_unit) = match secs {
        0..60 => return format!("{secs}s"),
        60..3600 => return format!("{}m", secs / 60),
        3600..86_400 => (secs / 3600, "h", (secs % 3600) / 60, "m"),
        _ => (secs / 86_400, "d", (secs % 86_400) / 3600, "h"),
    };
    if small == 0 {
        format!("{big}{big_unit}")
    } else {
        format!("{big}{big_unit} {small}{small_unit}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_units_parse() {
        assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(24 * 3600)));
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("2w"), Ok(Duration::from_secs(14 * 86_400)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn pieces_add_up() {
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1d 12h"), Ok(Duration::from_secs(129_600)));
    }

    #[test]
    fn long_unit_names_parse() {
        assert_eq!(parse_duration("2 days"), Ok(Duration::from_secs(172_800)));
        assert_eq!(parse_duration("5min"), Ok(Duration::from_secs(300)));
    }

    #[test]
    fn bare_numbers_are_refused() {
        assert!(parse_duration("24").unwrap_err().contains("no unit"));
    }

    #[test]
    fn garbage_is_refused() {
        assert!(parse_duration("").is_err());
        assert!(parse_duration("h").unwrap_err().contains("not a duration"));
        assert!(parse_duration("-1h").unwrap_err().contains("negative"));
        assert!(
            parse_duration("3 fortnights")
                .unwrap_err()
                .contains("unknown unit")
        );
        assert!(
            parse_duration("99999999999999999999w")
                .unwrap_err()
                .contains("too long")
        );
    }

    #[test]
    fn ages_print_coarsely() {
        assert_eq!(age(Duration::from_secs(12)), "12s");
        assert_eq!(age(Duration::from_secs(25 * 60 + 3)), "25m");
        assert_eq!(age(Duration::from_secs(3 * 86_400 + 4 * 3600 + 5)), "3d 4h");
        assert_eq!(age(Duration::from_secs(3600)), "1h");
        assert_eq!(age(Duration::from_secs(7 * 86_400)), "7d");
    }
}
