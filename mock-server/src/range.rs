//! The `Range` header of GetObject, with both OSS behaviours.
//!
//! By default OSS ignores a range it cannot serve (malformed, several ranges, start or end past the
//! object) and answers 200 with the whole object. With `x-oss-range-behavior: standard` an end past the
//! object is clipped to the last byte (206) and a start past it is 416 InvalidRange.

/// What to send back for a `Range` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RangeAnswer {
    /// 200 with the whole object.
    Whole,
    /// 206 with bytes `start..=end`.
    Partial { start: u64, end: u64 },
    /// 416 InvalidRange.
    Unsatisfiable,
}

/// One `bytes=` range as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Spec {
    /// `bytes=A-B`
    Closed(u64, u64),
    /// `bytes=A-`
    From(u64),
    /// `bytes=-N`
    Suffix(u64),
}

fn parse(header: &str) -> Option<Spec> {
    let ranges = header.trim().strip_prefix("bytes=")?;
    if ranges.contains(',') {
        return None;
    }
    let (first, last) = ranges.trim().split_once('-')?;
    let number = |s: &str| s.trim().parse::<u64>().ok();
    match (first.trim().is_empty(), last.trim().is_empty()) {
        (true, true) => None,
        (true, false) => Some(Spec::Suffix(number(last)?)),
        (false, true) => Some(Spec::From(number(first)?)),
        (false, false) => {
            let (a, b) = (number(first)?, number(last)?);
            (a <= b).then_some(Spec::Closed(a, b))
        }
    }
}

/// Decides how to answer `header` for an object of `size` bytes; `standard` is
/// `x-oss-range-behavior: standard`.
pub(crate) fn resolve(header: &str, size: u64, standard: bool) -> RangeAnswer {
    let Some(spec) = parse(header) else {
        return if standard && header.trim().starts_with("bytes=") && header.contains(',') {
            RangeAnswer::Unsatisfiable
        } else {
            RangeAnswer::Whole
        };
    };
    if size == 0 {
        return if standard {
            RangeAnswer::Unsatisfiable
        } else {
            RangeAnswer::Whole
        };
    }
    let last = size - 1;
    let (start, end) = match spec {
        Spec::Closed(a, b) => (a, b),
        Spec::From(a) => (a, last),
        Spec::Suffix(0) => {
            return if standard {
                RangeAnswer::Unsatisfiable
            } else {
                RangeAnswer::Whole
            };
        }
        Spec::Suffix(n) => (size.saturating_sub(n), last),
    };
    if start > last {
        return if standard {
            RangeAnswer::Unsatisfiable
        } else {
            RangeAnswer::Whole
        };
    }
    if end > last {
        return if standard {
            RangeAnswer::Partial { start, end: last }
        } else if matches!(spec, Spec::Closed(..)) {
            RangeAnswer::Whole
        } else {
            RangeAnswer::Partial { start, end: last }
        };
    }
    RangeAnswer::Partial { start, end }
}

#[cfg(test)]
mod tests {
    use super::RangeAnswer::*;
    use super::*;

    #[test]
    fn valid_ranges_are_served() {
        assert_eq!(
            resolve("bytes=0-499", 1000, false),
            Partial { start: 0, end: 499 }
        );
        assert_eq!(
            resolve("bytes=500-", 1000, false),
            Partial {
                start: 500,
                end: 999
            }
        );
        assert_eq!(
            resolve("bytes=-500", 1000, false),
            Partial {
                start: 500,
                end: 999
            }
        );
        assert_eq!(
            resolve("bytes=-5000", 1000, false),
            Partial { start: 0, end: 999 }
        );
        assert_eq!(
            resolve("bytes=999-999", 1000, false),
            Partial {
                start: 999,
                end: 999
            }
        );
    }

    #[test]
    fn invalid_ranges_return_the_whole_object_by_default() {
        assert_eq!(resolve("bytes=500-2000", 1000, false), Whole);
        assert_eq!(resolve("bytes=1000-2000", 1000, false), Whole);
        assert_eq!(resolve("bytes=1000-", 1000, false), Whole);
        assert_eq!(resolve("bytes=5-1", 1000, false), Whole);
        assert_eq!(resolve("bytes=0-1,5-6", 1000, false), Whole);
        assert_eq!(resolve("bytes=abc", 1000, false), Whole);
        assert_eq!(resolve("items=0-1", 1000, false), Whole);
        assert_eq!(resolve("bytes=-0", 1000, false), Whole);
        assert_eq!(resolve("bytes=0-0", 0, false), Whole);
    }

    #[test]
    fn standard_behavior_clips_the_end_and_refuses_a_start_past_the_object() {
        assert_eq!(
            resolve("bytes=500-2000", 1000, true),
            Partial {
                start: 500,
                end: 999
            }
        );
        assert_eq!(resolve("bytes=1000-2000", 1000, true), Unsatisfiable);
        assert_eq!(resolve("bytes=0-1,5-6", 1000, true), Unsatisfiable);
    }
}
