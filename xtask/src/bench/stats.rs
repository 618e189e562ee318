//! Repeated measurements reduced to a median and a spread.

use serde_json::{Value, json};

/// The median of some runs and the range they fell in.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Summary {
    /// The middle value (the mean of the two middle values for an even count).
    pub median: f64,
    /// The smallest value.
    pub min: f64,
    /// The largest value.
    pub max: f64,
    /// How many values.
    pub runs: usize,
}

impl Summary {
    /// Summarises `samples`; `None` when there are none (or one is not a number).
    pub(super) fn of(samples: &[f64]) -> Option<Self> {
        if samples.is_empty() || samples.iter().any(|s| s.is_nan()) {
            return None;
        }
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let median = if n % 2 == 1 {
            sorted[n / 2]
        } else {
            (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
        };
        Some(Self {
            median,
            min: sorted[0],
            max: sorted[n - 1],
            runs: n,
        })
    }

    /// Summarises the values `samples` has (a run that could not measure gives `None`).
    pub(super) fn of_some(samples: &[Option<f64>]) -> Option<Self> {
        let values: Vec<f64> = samples.iter().flatten().copied().collect();
        Self::of(&values)
    }

    /// The same summary with every value passed through `f`, which must be monotonic increasing
    /// (a unit change, a division by a positive constant) for min and max to stay in place.
    pub(super) fn map(self, f: impl Fn(f64) -> f64) -> Self {
        Self {
            median: f(self.median),
            min: f(self.min),
            max: f(self.max),
            runs: self.runs,
        }
    }

    /// `median (min..max)` with `decimals` digits after the point; only the median for one run.
    pub(super) fn display(&self, decimals: usize) -> String {
        if self.runs <= 1 || self.min == self.max {
            format!("{:.decimals$}", self.median)
        } else {
            format!(
                "{:.decimals$} ({:.decimals$}..{:.decimals$})",
                self.median, self.min, self.max
            )
        }
    }

    /// `{"median": .., "min": .., "max": .., "runs": ..}`.
    pub(super) fn to_json(self) -> Value {
        json!({"median": self.median, "min": self.min, "max": self.max, "runs": self.runs})
    }
}

/// [`Summary::display`] of an optional summary, `n/a` when there is none.
pub(super) fn display_or_na(summary: Option<Summary>, decimals: usize) -> String {
    summary.map_or_else(|| "n/a".to_owned(), |s| s.display(decimals))
}

/// [`Summary::to_json`] of an optional summary, `null` when there is none.
pub(super) fn json_or_null(summary: Option<Summary>) -> Value {
    summary.map_or(Value::Null, Summary::to_json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_of_an_odd_count_is_the_middle_value() {
        let s = Summary::of(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max, s.runs), (2.0, 1.0, 3.0, 3));
    }

    #[test]
    fn the_median_of_an_even_count_is_the_mean_of_the_middle_two() {
        let s = Summary::of(&[4.0, 1.0, 3.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max), (2.5, 1.0, 4.0));
    }

    #[test]
    fn nothing_to_summarise_gives_none() {
        assert_eq!(Summary::of(&[]), None);
        assert_eq!(Summary::of(&[1.0, f64::NAN]), None);
        assert_eq!(Summary::of_some(&[None, None]), None);
        let s = Summary::of_some(&[None, Some(5.0), Some(7.0)]).unwrap();
        assert_eq!((s.median, s.runs), (6.0, 2));
    }

    #[test]
    fn display_shows_the_spread_only_when_there_is_one() {
        assert_eq!(Summary::of(&[1.234]).unwrap().display(2), "1.23");
        assert_eq!(Summary::of(&[2.0, 2.0, 2.0]).unwrap().display(1), "2.0");
        assert_eq!(
            Summary::of(&[1.0, 2.0, 4.0]).unwrap().display(2),
            "2.00 (1.00..4.00)"
        );
        assert_eq!(display_or_na(None, 2), "n/a");
    }

    #[test]
    fn map_changes_units_of_every_value() {
        let s = Summary::of(&[1.0, 2.0, 3.0]).unwrap().map(|v| v * 10.0);
        assert_eq!((s.median, s.min, s.max, s.runs), (20.0, 10.0, 30.0, 3));
        assert_eq!(s.to_json()["median"], 20.0);
        assert_eq!(json_or_null(None), Value::Null);
    }
}
