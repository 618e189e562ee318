//! Pacing request bodies: the one place that decides how fast the mock reads what a client sends.
//!
//! A [`Pacer`] hands out time on one pipe: each chunk read reserves the time it takes at the pipe's
//! rate, after every chunk reserved before it, and reading pauses until then. One pacer per request
//! carries a `throttle` fault or the request's `x-oss-traffic-limit` (the cap in bit/s a client may
//! put on one upload request, which OSS honours by reading the body no faster); one per connection
//! carries `--conn-bandwidth` (and a `straggle` fault's crawl); one for the whole server carries
//! `--link-bandwidth` (see `link.rs`). A body waits for the slowest of those that apply.
//!
//! The reservation is made after the chunk is read, so a pipe idle for a while lends no credit: the
//! burst is one chunk (hyper hands over at most 64 KiB at a time).

use std::sync::Mutex;
use std::time::Duration;

use http::HeaderMap;
use tokio::time::Instant;

use crate::error::OssError;
use ossup_proto::Api;

/// The header.
pub(crate) const HEADER: &str = "x-oss-traffic-limit";

/// The smallest cap OSS accepts: 819,200 bit/s (100 KiB/s).
pub(crate) const MIN_BITS_PER_SEC: u64 = 819_200;

/// The largest cap OSS accepts: 838,860,800 bit/s (100 MiB/s).
pub(crate) const MAX_BITS_PER_SEC: u64 = 838_860_800;

/// The body rate in bytes per second the request asks for, if it carries the header on an API that
/// takes it; `400 InvalidArgument` when the value is not a whole number within OSS's range.
pub(crate) fn requested(api: Api, headers: &HeaderMap) -> Result<Option<u64>, OssError> {
    if !matches!(api, Api::PutObject | Api::UploadPart) {
        return Ok(None);
    }
    let Some(value) = headers.get(HEADER) else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or_default();
    match text.trim().parse::<u64>() {
        Ok(bits) if (MIN_BITS_PER_SEC..=MAX_BITS_PER_SEC).contains(&bits) => Ok(Some(bits / 8)),
        _ => Err(OssError::invalid_argument(
            HEADER,
            text,
            format!(
                "{HEADER} must be a whole number of bit/s from {MIN_BITS_PER_SEC} to {MAX_BITS_PER_SEC}"
            ),
        )),
    }
}

/// The time on one pipe: when the bytes reserved so far are through.
#[derive(Debug, Default)]
pub(crate) struct Pacer {
    free_at: Mutex<Option<Instant>>,
}

impl Pacer {
    /// Reserves the time `bytes` take at `bytes_per_sec`, from `now` or from the end of what is
    /// already reserved, whichever is later; returns when they are through.
    pub(crate) fn reserve(&self, bytes: u64, bytes_per_sec: u64, now: Instant) -> Instant {
        let mut free_at = self.free_at.lock().unwrap_or_else(|e| e.into_inner());
        let start = free_at.map_or(now, |at| at.max(now));
        let end = start + Duration::from_secs_f64(bytes as f64 / bytes_per_sec.max(1) as f64);
        *free_at = Some(end);
        end
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_pacer_queues_chunks_at_its_rate_and_lends_no_credit_for_idle_time() {
        let pacer = Pacer::default();
        let t0 = Instant::now();
        let mib = 1 << 20;
        assert_eq!(pacer.reserve(mib, mib, t0), t0 + Duration::from_secs(1));
        assert_eq!(
            pacer.reserve(mib / 2, mib, t0),
            t0 + Duration::from_millis(1500)
        );
        // Idle until 10 s: the next chunk starts then, not at 1.5 s.
        tokio::time::advance(Duration::from_secs(10)).await;
        let t10 = Instant::now();
        assert_eq!(
            pacer.reserve(mib, 2 * mib, t10),
            t10 + Duration::from_millis(500)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn two_readers_of_one_pacer_share_its_rate() {
        // A link of 1 MiB/s read by two connections in turns of 64 KiB: 4 MiB take 4 s in all,
        // whoever reads which chunk.
        let link = Pacer::default();
        let t0 = Instant::now();
        let mut last = t0;
        for _ in 0..32 {
            last = link.reserve(64 << 10, 1 << 20, t0);
            last = last.max(link.reserve(64 << 10, 1 << 20, t0));
        }
        assert_eq!(last, t0 + Duration::from_secs(4));
    }

    fn with(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(HEADER, value.parse().unwrap());
        headers
    }

    #[test]
    fn the_cap_is_read_on_uploads_only_and_checked_against_the_range() {
        assert_eq!(
            requested(Api::UploadPart, &with("819200")).unwrap(),
            Some(102_400)
        );
        assert_eq!(
            requested(Api::PutObject, &with("838860800")).unwrap(),
            Some(104_857_600)
        );
        assert_eq!(requested(Api::GetObject, &with("1")).unwrap(), None);
        assert_eq!(requested(Api::PutObject, &HeaderMap::new()).unwrap(), None);
        for bad in ["819199", "838860801", "fast", "-1"] {
            assert!(requested(Api::PutObject, &with(bad)).is_err(), "{bad}");
        }
    }
}
