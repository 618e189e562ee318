//! Sizes and rates as people type them on a command line or in a fault rule: `8MiB`, `100KB`,
//! `1.5GiB`, `8M`, `4096`, `20MiB/s`.
//!
//! One reading for every tool of the workspace (the CLI's flags, the mock's link knobs, xtask's
//! benchmarks), so that a size means the same bytes wherever it is typed. Units are
//! case-insensitive. `KB`, `MB`, `GB`, `TB` are decimal (powers of 1000), as the SI and the OSS
//! console use them; `KiB`, `MiB`, `GiB`, `TiB` are binary (powers of 1024). A bare letter `K`,
//! `M`, `G`, `T` is binary, as `dd`, `curl` and `sort` read it, because part sizes are almost
//! always meant as binary. A fraction is allowed when it comes out as a whole number of bytes
//! (`1.5MiB` is fine, `1.5B` is not). Errors say what was wrong and give an example, without
//! naming a flag: the caller knows which flag it parsed.
//!
//! ```
//! use ossup_proto::units::{parse_rate, parse_size};
//! assert_eq!(parse_size("8MiB"), Ok(8 << 20));
//! assert_eq!(parse_size("1.5KB"), Ok(1500));
//! assert_eq!(parse_rate("20MiB/s"), Ok(20 << 20));
//! assert!(parse_size("8 parsecs").unwrap_err().contains("unknown unit"));
//! ```

/// The slowest rate [`parse_rate`] accepts, in bytes per second: slower caps would starve every
/// request of its timeouts.
pub const MIN_RATE: u64 = 1024;

/// Parses a rate in bytes per second: a size with an optional `/s` (`20MiB/s`, `500KB`); at least
/// [`MIN_RATE`] (1 KiB/s).
///
/// ```
/// use ossup_proto::units::parse_rate;
/// assert_eq!(parse_rate("500KB/s"), Ok(500_000));
/// assert_eq!(parse_rate("1.5M"), Ok(3 << 19));
/// assert!(parse_rate("100/s").unwrap_err().contains("below 1KiB/s"));
/// ```
pub fn parse_rate(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let size = trimmed
        .strip_suffix("/s")
        .or_else(|| trimmed.strip_suffix("/S"))
        .unwrap_or(trimmed);
    let rate = parse_size(size)?;
    if rate < MIN_RATE {
        return Err(format!(
            "{trimmed:?} is below 1KiB/s, too slow for any request to finish in time; write e.g. 20MiB/s"
        ));
    }
    Ok(rate)
}

/// Parses a size in bytes, above zero.
///
/// ```
/// use ossup_proto::units::parse_size;
/// assert_eq!(parse_size("100KiB"), Ok(100 << 10));
/// assert_eq!(parse_size("4096"), Ok(4096));
/// assert!(parse_size("0").unwrap_err().contains("zero"));
/// ```
pub fn parse_size(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err("a size cannot be empty; write e.g. 8MiB, 100KB or 4096".to_owned());
    }
    if trimmed.starts_with('-') {
        return Err(format!(
            "{trimmed:?} is negative; a size must be above zero"
        ));
    }
    let number_end = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '_'))
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(number_end);
    let number: String = number.chars().filter(|&c| c != '_').collect();
    let unit = unit.trim();
    let multiplier = unit_multiplier(unit).ok_or_else(|| {
        format!(
            "{trimmed:?} has an unknown unit {unit:?}; use B, KB, MB, GB, TB (powers of 1000) or \
             K, M, G, T, KiB, MiB, GiB, TiB (powers of 1024)"
        )
    })?;
    let (whole, fraction) = match number.split_once('.') {
        Some((whole, fraction)) => (whole, fraction),
        None => (number.as_str(), ""),
    };
    if (whole.is_empty() && fraction.is_empty())
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !fraction.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(format!(
            "{trimmed:?} is not a size; write a number with an optional unit, e.g. 8MiB, 100KB or 4096"
        ));
    }
    let too_large = || format!("{trimmed:?} is too large (the most is {} bytes)", u64::MAX);
    // Exact integer arithmetic: value = (whole * 10^f + fraction) * multiplier / 10^f.
    if fraction.len() > 18 {
        return Err(format!("{trimmed:?} has too many decimal places"));
    }
    let scale = 10u128.pow(fraction.len() as u32);
    let whole: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| too_large())?
    };
    let fraction: u128 = if fraction.is_empty() {
        0
    } else {
        fraction.parse().map_err(|_| too_large())?
    };
    let scaled = whole
        .checked_mul(scale)
        .and_then(|w| w.checked_add(fraction))
        .and_then(|n| n.checked_mul(u128::from(multiplier)))
        .ok_or_else(too_large)?;
    if scaled % scale != 0 {
        return Err(format!(
            "{trimmed:?} is not a whole number of bytes; use a smaller unit"
        ));
    }
    let bytes = u64::try_from(scaled / scale).map_err(|_| too_large())?;
    if bytes == 0 {
        return Err(format!("{trimmed:?} is zero; a size must be above zero"));
    }
    Ok(bytes)
}

fn unit_multiplier(unit: &str) -> Option<u64> {
    const KI: u64 = 1024;
    let multiplier = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1000,
        "mb" => 1000u64.pow(2),
        "gb" => 1000u64.pow(3),
        "tb" => 1000u64.pow(4),
        "k" | "kib" => KI,
        "m" | "mib" => KI.pow(2),
        "g" | "gib" => KI.pow(3),
        "t" | "tib" => KI.pow(4),
        _ => return None,
    };
    Some(multiplier)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_sizes_per_second() {
        assert_eq!(parse_rate("20MiB/s"), Ok(20 << 20));
        assert_eq!(parse_rate("500KB"), Ok(500_000));
        assert!(parse_rate("100/s").unwrap_err().contains("below 1KiB/s"));
        assert!(parse_rate("fast").is_err());
    }

    #[test]
    fn plain_numbers_are_bytes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("1"), Ok(1));
        assert_eq!(parse_size("12B"), Ok(12));
        assert_eq!(parse_size("1_000_000"), Ok(1_000_000));
    }

    #[test]
    fn iec_units_are_powers_of_1024() {
        assert_eq!(parse_size("100KiB"), Ok(100 * 1024));
        assert_eq!(parse_size("8MiB"), Ok(8 << 20));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("1TiB"), Ok(1 << 40));
        assert_eq!(parse_size("8mib"), Ok(8 << 20));
    }

    #[test]
    fn si_units_are_powers_of_1000() {
        assert_eq!(parse_size("100KB"), Ok(100_000));
        assert_eq!(parse_size("8MB"), Ok(8_000_000));
        assert_eq!(parse_size("1gb"), Ok(1_000_000_000));
    }

    #[test]
    fn single_letter_units_are_binary() {
        assert_eq!(parse_size("8M"), Ok(8 << 20));
        assert_eq!(parse_size("100k"), Ok(100 << 10));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
    }

    #[test]
    fn spaces_between_number_and_unit_are_allowed() {
        assert_eq!(parse_size(" 8 MiB "), Ok(8 << 20));
    }

    #[test]
    fn fractions_that_make_whole_bytes_are_accepted() {
        assert_eq!(parse_size("1.5MiB"), Ok(3 << 19));
        assert_eq!(parse_size("0.5KB"), Ok(500));
        assert_eq!(parse_size(".5KiB"), Ok(512));
        assert!(
            parse_size("1.5B")
                .unwrap_err()
                .contains("whole number of bytes")
        );
    }

    #[test]
    fn zero_is_rejected() {
        assert!(parse_size("0").unwrap_err().contains("zero"));
        assert!(parse_size("0MiB").unwrap_err().contains("zero"));
    }

    #[test]
    fn negative_is_rejected() {
        assert!(parse_size("-5MiB").unwrap_err().contains("negative"));
    }

    #[test]
    fn overflow_is_rejected() {
        assert!(
            parse_size("18446744073709551616")
                .unwrap_err()
                .contains("too large")
        );
        assert!(parse_size("20000000TiB").unwrap_err().contains("too large"));
        assert!(
            parse_size("99999999999999999999999999999999999999999")
                .unwrap_err()
                .contains("too large")
        );
        assert_eq!(parse_size("18446744073709551615"), Ok(u64::MAX));
    }

    #[test]
    fn garbage_is_rejected_with_an_example() {
        for bad in ["", "MiB", "abc", "8 parsecs", "1.2.3", "8MiBs", "."] {
            let err = parse_size(bad).unwrap_err();
            assert!(
                err.contains("e.g.") || err.contains("unknown unit"),
                "{bad:?} gave {err:?}"
            );
        }
    }
}
