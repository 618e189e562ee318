//! [`RateLimiter`]: a cap on the bytes per second request bodies put on the wire, shared by every
//! request that carries it (every part of an upload, every file of a batch, every retry).
//!
//! A token bucket with a small burst. A transport that paces bodies
//! ([`Transport::paces_bodies`](crate::Transport::paces_bodies)) takes tokens frame by frame as the
//! body goes out, so the cap holds on the wire; the engine's rate-limit layer takes a whole body's
//! tokens before sending it through a transport that does not.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

// tokio's clock, so paused (virtual) time in tests paces bodies as real time does.
use tokio::time::Instant;

/// The smallest burst: a frame of a slow link still goes out whole.
const MIN_BURST: u64 = 16 << 10;

/// The largest burst: at a high cap, at most this much above the cap goes out at once.
const MAX_BURST: u64 = 1 << 20;

/// Caps the bytes per second of the request bodies that carry it (as a request extension), shared
/// by clones.
///
/// The burst (bytes that may go at once after a pause) is a twentieth of a second's worth, between
/// 16 KiB and 1 MiB, so the average over any second or more stays within a few per cent of the cap.
///
/// ```
/// use ossup_transport::RateLimiter;
/// let limiter = RateLimiter::new(20 << 20); // 20 MiB/s
/// assert_eq!(limiter.bytes_per_sec(), 20 << 20);
/// // The burst goes at once; what follows waits its turn.
/// assert_eq!(limiter.reserve(limiter.burst()), std::time::Duration::ZERO);
/// assert!(limiter.reserve(1 << 20) > std::time::Duration::from_millis(40));
/// ```
#[derive(Clone)]
pub struct RateLimiter {
    bytes_per_sec: u64,
    burst: u64,
    bucket: Arc<Mutex<Bucket>>,
}

impl fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimiter")
            .field("bytes_per_sec", &self.bytes_per_sec)
            .field("burst", &self.burst)
            .finish_non_exhaustive()
    }
}

/// The tokens: bytes that may go now (negative: owed, by bodies already allowed to go).
struct Bucket {
    tokens: f64,
    refilled: Instant,
}

impl RateLimiter {
    /// A cap of `bytes_per_sec` (at least 1).
    pub fn new(bytes_per_sec: u64) -> Self {
        let bytes_per_sec = bytes_per_sec.max(1);
        let burst = (bytes_per_sec / 20).clamp(MIN_BURST, MAX_BURST);
        Self {
            bytes_per_sec,
            burst,
            bucket: Arc::new(Mutex::new(Bucket {
                tokens: burst as f64,
                refilled: Instant::now(),
            })),
        }
    }

    /// The cap, in bytes per second.
    pub fn bytes_per_sec(&self) -> u64 {
        self.bytes_per_sec
    }

    /// The bytes that may go at once after a pause.
    pub fn burst(&self) -> u64 {
        self.burst
    }

    /// How much of a body to send per reservation: small enough that a frame waits at most about
    /// a twentieth of a second (a stall watchdog never mistakes pacing for a stall), at most `max`.
    pub fn frame_size(&self, max: usize) -> usize {
        usize::try_from(self.burst).map_or(max, |burst| burst.min(max).max(1))
    }

    /// Takes `bytes` from the bucket now; returns how long to wait before sending them (zero when
    /// the bucket holds them).
    pub fn reserve(&self, bytes: u64) -> Duration {
        self.reserve_at(Instant::now(), bytes)
    }

    /// [`reserve`](Self::reserve) at `now`.
    fn reserve_at(&self, now: Instant, bytes: u64) -> Duration {
        let mut bucket = self.bucket.lock().expect("rate limiter lock");
        let elapsed = now.saturating_duration_since(bucket.refilled).as_secs_f64();
        bucket.tokens =
            (bucket.tokens + elapsed * self.bytes_per_sec as f64).min(self.burst as f64);
        bucket.refilled = bucket.refilled.max(now);
        bucket.tokens -= bytes as f64;
        if bucket.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-bucket.tokens / self.bytes_per_sec as f64)
        }
    }

    /// Waits until `bytes` may go.
    pub async fn acquire(&self, bytes: u64) {
        let wait = self.reserve(bytes);
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_burst_goes_at_once_and_the_rest_at_the_cap() {
        let limiter = RateLimiter::new(1_000_000);
        let start = Instant::now();
        assert_eq!(limiter.reserve_at(start, limiter.burst()), Duration::ZERO);
        // Ten more seconds' worth, taken at once, is owed for ten seconds.
        let wait = limiter.reserve_at(start, 10_000_000);
        assert!((wait.as_secs_f64() - 10.0).abs() < 1e-6, "{wait:?}");
    }

    #[test]
    fn over_any_long_window_the_average_is_the_cap() {
        // Frames of 64 KiB sent as soon as allowed, from four senders in turn: in virtual time
        // every frame goes at its reservation's end.
        let limiter = RateLimiter::new(2 << 20);
        let start = Instant::now();
        let mut free_at = [start; 4];
        let mut sent = 0u64;
        let mut last = start;
        for i in 0..2000 {
            let sender = i % 4;
            let at = free_at[sender];
            let wait = limiter.reserve_at(at, 64 << 10);
            free_at[sender] = at + wait;
            last = last.max(free_at[sender]);
            sent += 64 << 10;
        }
        let seconds = last.duration_since(start).as_secs_f64();
        let rate = sent as f64 / seconds;
        let cap = (2 << 20) as f64;
        assert!((rate - cap).abs() / cap < 0.01, "{rate} vs {cap}");
    }

    #[test]
    fn frames_are_small_on_slow_links_and_capped_on_fast_ones() {
        assert_eq!(RateLimiter::new(100 << 10).frame_size(256 << 10), 16 << 10);
        assert_eq!(RateLimiter::new(1 << 30).frame_size(256 << 10), 256 << 10);
        assert_eq!(RateLimiter::new(8 << 20).frame_size(1 << 20), 419_430);
    }
}
