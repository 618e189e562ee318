//! Byte sizes and rates: read as [`ossup_proto::units`] reads them, shown as people read them.

use std::fmt;

pub(crate) use ossup_proto::units::{parse_rate, parse_size};

/// A byte count shown the way people read it: `256 MiB`, `1.50 GiB`, `900 B`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HumanBytes(pub u64);

impl fmt::Display for HumanBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
        let bytes = self.0;
        if bytes < 1024 {
            return write!(f, "{bytes} B");
        }
        let mut value = bytes as f64 / 1024.0;
        let mut unit = 0;
        while value >= 1024.0 && unit + 1 < UNITS.len() {
            value /= 1024.0;
            unit += 1;
        }
        if value.fract() == 0.0 {
            write!(f, "{value:.0} {}", UNITS[unit])
        } else {
            write!(f, "{value:.2} {}", UNITS[unit])
        }
    }
}

/// `bytes` over `elapsed` as a rate, `12.5 MiB/s`, or `-` for no time at all.
pub(crate) fn rate_text(bytes: u64, elapsed: std::time::Duration) -> String {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 {
        format!("{}/s", HumanBytes((bytes as f64 / secs) as u64))
    } else {
        "-".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_bytes_picks_a_readable_unit() {
        assert_eq!(HumanBytes(900).to_string(), "900 B");
        assert_eq!(HumanBytes(256 << 20).to_string(), "256 MiB");
        assert_eq!(HumanBytes(3 << 29).to_string(), "1.50 GiB");
        assert_eq!(HumanBytes(100 * 1024).to_string(), "100 KiB");
    }
}
