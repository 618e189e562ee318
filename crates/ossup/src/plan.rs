//! Planning an upload: the part size (grown to fit 10,000 parts) and the parts themselves, for a
//! source of known size and for a stream of unknown size.

use ossup_proto::limits::{MAX_PART_NUMBER, MAX_PART_SIZE, MIN_PART_SIZE};

use crate::{Error, PartSpec};

/// The default part size: 8 MiB.
pub const DEFAULT_PART_SIZE: u64 = 8 << 20;

/// The part size for a source of `size` bytes when `requested` is asked for.
///
/// `requested` must be within 100 KiB..=5 GiB. When it would need more than 10,000 parts it is
/// doubled until it does not (or, near the limit, set to the smallest size that fits, rounded up to
/// 64 KiB), so the same source and request always give the same part size.
///
/// ```
/// use ossup::plan::part_size_for;
/// assert_eq!(part_size_for(1 << 30, 8 << 20).unwrap(), 8 << 20);
/// // 100 GiB in 8 MiB parts would be 12,800 parts: grown to 16 MiB.
/// assert_eq!(part_size_for(100 << 30, 8 << 20).unwrap(), 16 << 20);
/// assert!(part_size_for(1 << 20, 4096).is_err());
/// ```
pub fn part_size_for(size: u64, requested: u64) -> Result<u64, Error> {
    if !(MIN_PART_SIZE..=MAX_PART_SIZE).contains(&requested) {
        return Err(Error::config(format!(
            "part size {requested} is outside the {MIN_PART_SIZE}..={MAX_PART_SIZE} bytes (100 KiB to 5 GiB) OSS accepts"
        )));
    }
    let max_parts = u64::from(MAX_PART_NUMBER);
    if size > max_parts * MAX_PART_SIZE {
        return Err(Error::config(format!(
            "the source is {size} bytes, more than the {} bytes (10,000 parts of 5 GiB) one multipart upload can hold",
            max_parts * MAX_PART_SIZE
        )));
    }
    let mut part_size = requested;
    while size.div_ceil(part_size) > max_parts {
        match part_size.checked_mul(2).filter(|&p| p <= MAX_PART_SIZE) {
            Some(doubled) => part_size = doubled,
            None => {
                part_size = size
                    .div_ceil(max_parts)
                    .next_multiple_of(64 << 10)
                    .min(MAX_PART_SIZE);
                break;
            }
        }
    }
    Ok(part_size)
}

/// The parts of a `size`-byte source in `part_size` parts; the last may be smaller.
pub fn plan_parts(size: u64, part_size: u64) -> Vec<PartSpec> {
    let count = size.div_ceil(part_size);
    (0..count)
        .map(|i| {
            let offset = i * part_size;
            PartSpec {
                number: (i + 1) as u32,
                offset,
                size: part_size.min(size - offset),
            }
        })
        .collect()
}

/// How many parts of a stream go at one size before the size doubles.
pub const STREAM_PARTS_PER_SIZE: u32 = 128;

/// The size of part `number` (1-based) of a stream whose first part is `first` bytes: `first` for
/// parts 1 to 128, then doubled every 128 parts, up to the 5 GiB OSS allows.
///
/// A stream's length is unknown until its end, so the layout cannot be chosen to fit it: it is
/// fixed by the part number alone (a rerun of the same stream cuts the same parts), small at first
/// (a 1 GiB stream in 8 MiB parts never grows them, and memory stays at the parts in flight), and
/// large enough later that 10,000 parts hold [`stream_capacity`] bytes: 43.6 TiB from 8 MiB, close
/// to the 48.8 TiB of OSS's largest object.
///
/// ```
/// use ossup::plan::stream_part_size;
/// assert_eq!(stream_part_size(8 << 20, 1), 8 << 20);
/// assert_eq!(stream_part_size(8 << 20, 128), 8 << 20);
/// assert_eq!(stream_part_size(8 << 20, 129), 16 << 20);
/// assert_eq!(stream_part_size(8 << 20, 10_000), 5 << 30);
/// ```
pub fn stream_part_size(first: u64, number: u32) -> u64 {
    let doublings = number.saturating_sub(1) / STREAM_PARTS_PER_SIZE;
    if doublings >= 63 {
        return MAX_PART_SIZE;
    }
    first
        .checked_mul(1 << doublings)
        .map_or(MAX_PART_SIZE, |size| size.min(MAX_PART_SIZE))
}

/// The most bytes a stream whose first part is `first` bytes can hold in 10,000 parts (see
/// [`stream_part_size`]).
///
/// ```
/// use ossup::plan::stream_capacity;
/// // 8 MiB parts at first: 43.6 TiB.
/// assert_eq!(stream_capacity(8 << 20), 45_693_952 << 20);
/// ```
pub fn stream_capacity(first: u64) -> u64 {
    (1..=MAX_PART_NUMBER)
        .map(|n| stream_part_size(first, n))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parts_cover_the_source_exactly() {
        let parts = plan_parts(250, 100);
        assert_eq!(
            parts,
            vec![
                PartSpec {
                    number: 1,
                    offset: 0,
                    size: 100
                },
                PartSpec {
                    number: 2,
                    offset: 100,
                    size: 100
                },
                PartSpec {
                    number: 3,
                    offset: 200,
                    size: 50
                },
            ]
        );
        assert!(plan_parts(0, 100).is_empty());
    }

    #[test]
    fn part_size_is_validated() {
        assert!(part_size_for(10, MIN_PART_SIZE - 1).is_err());
        assert!(part_size_for(10, MAX_PART_SIZE + 1).is_err());
        assert_eq!(part_size_for(10, MIN_PART_SIZE).unwrap(), MIN_PART_SIZE);
        assert!(part_size_for(10_000 * MAX_PART_SIZE + 1, MIN_PART_SIZE).is_err());
    }

    #[test]
    fn a_stream_layout_grows_to_the_largest_part_and_stays() {
        let sizes: Vec<u64> = (1..=MAX_PART_NUMBER)
            .map(|n| stream_part_size(MIN_PART_SIZE, n))
            .collect();
        assert!(sizes.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(sizes[0], MIN_PART_SIZE);
        assert_eq!(*sizes.last().unwrap(), MAX_PART_SIZE);
        // Even from the smallest part size, 10,000 parts hold 39.6 TiB.
        assert!(stream_capacity(MIN_PART_SIZE) > 39 << 40);
        assert_eq!(stream_part_size(MAX_PART_SIZE, 1), MAX_PART_SIZE);
        assert_eq!(stream_capacity(MAX_PART_SIZE), 10_000 * MAX_PART_SIZE);
    }

    proptest! {
        #[test]
        fn grown_part_size_fits_10000_parts(size in 0u64..=10_000 * MAX_PART_SIZE, requested in MIN_PART_SIZE..=MAX_PART_SIZE) {
            let p = part_size_for(size, requested).unwrap();
            prop_assert!(p >= requested);
            prop_assert!((MIN_PART_SIZE..=MAX_PART_SIZE).contains(&p));
            prop_assert!(size.div_ceil(p) <= 10_000);
        }
    }
}
