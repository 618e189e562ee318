//! The link between clients and the mock, as slow and as crowded as a real one: a bandwidth shared
//! by every connection (`--link-bandwidth`), a bandwidth per connection standing for a
//! window-limited TCP flow (`--conn-bandwidth`), a latency added to every request (`--latency`),
//! and a ceiling on requests in flight past which the mock answers `503 SlowDown`
//! (`--max-inflight`), as an overloaded OSS front end does.
//!
//! The bandwidths pace request bodies (what clients upload) with the [`Pacer`]s of `traffic.rs`;
//! answers go out at loopback speed. The shape can be changed while the server runs
//! ([`MockServer::set_link`](crate::MockServer::set_link), `PUT /_mock/link`); connections follow
//! the new shape from their next chunk on.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use http::StatusCode;
use ossup_proto::units::MIN_RATE;
use ossup_proto::{ErrorCode, ErrorResponse};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::response::{self, HttpResponse};
use crate::traffic::Pacer;

/// The code OSS's front end answers an overloaded bucket with.
pub const SLOW_DOWN: &str = "SlowDown";

/// The shape of the link the mock pretends to sit behind. `Default` is loopback: no cap, no added
/// latency, no ceiling.
///
/// ```
/// use std::time::Duration;
/// use oss_mock::LinkShape;
///
/// let shape = LinkShape {
///     link_bandwidth: Some(200 << 20),
///     conn_bandwidth: Some(16 << 20),
///     latency: Duration::from_millis(40),
///     max_inflight: Some(24),
/// };
/// let json = serde_json::to_string(&shape).unwrap();
/// assert_eq!(
///     json,
///     r#"{"link_bandwidth":209715200,"conn_bandwidth":16777216,"latency_ms":40,"max_inflight":24}"#
/// );
/// assert_eq!(serde_json::from_str::<LinkShape>(&json).unwrap(), shape);
/// assert_eq!(serde_json::from_str::<LinkShape>("{}").unwrap(), LinkShape::default());
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkShape {
    /// Bytes per second of request bodies the server reads, all connections together
    /// (`--link-bandwidth`). `None`: no cap.
    #[serde(default)]
    pub link_bandwidth: Option<u64>,
    /// Bytes per second of request body one connection may send (`--conn-bandwidth`), as a TCP flow
    /// whose window and round trip bound it. `None`: no cap.
    #[serde(default)]
    pub conn_bandwidth: Option<u64>,
    /// Time added to every request before the server looks at it (`--latency`): the round trip of a
    /// long link. JSON: `latency_ms`.
    #[serde(default, rename = "latency_ms", with = "millis")]
    pub latency: Duration,
    /// Requests the server works on at once (`--max-inflight`); one more is answered
    /// `503 SlowDown` at once. `None`: no ceiling.
    #[serde(default)]
    pub max_inflight: Option<usize>,
}

impl LinkShape {
    /// Checks that the shape lets requests through: bandwidths of at least 1 KiB/s, a ceiling of at
    /// least 1, a latency under an hour. The error names the setting.
    ///
    /// ```
    /// let shape = oss_mock::LinkShape { max_inflight: Some(0), ..Default::default() };
    /// assert!(shape.validate().unwrap_err().contains("max_inflight"));
    /// ```
    pub fn validate(&self) -> Result<(), String> {
        for (name, rate) in [
            ("link_bandwidth (--link-bandwidth)", self.link_bandwidth),
            ("conn_bandwidth (--conn-bandwidth)", self.conn_bandwidth),
        ] {
            if let Some(rate) = rate
                && rate < MIN_RATE
            {
                return Err(format!(
                    "{name} is {rate} bytes/s; give at least 1KiB/s, or none for no cap"
                ));
            }
        }
        if self.max_inflight == Some(0) {
            return Err(
                "max_inflight (--max-inflight) is 0, which would refuse every request; give at least 1, or none for no ceiling"
                    .to_owned(),
            );
        }
        if self.latency > MAX_LATENCY {
            return Err(format!(
                "latency (--latency) is {:?}; give less than an hour",
                self.latency
            ));
        }
        Ok(())
    }
}

/// The longest latency accepted.
const MAX_LATENCY: Duration = Duration::from_secs(3600);

mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis().try_into().unwrap_or(u64::MAX))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

/// The link of a running server: its shape, the pacer of the shared bandwidth, and the requests in
/// flight.
#[derive(Debug, Default)]
pub(crate) struct Link {
    shape: Mutex<LinkShape>,
    pacer: Pacer,
    in_flight: AtomicUsize,
}

impl Link {
    /// A link of this shape (checked by the caller).
    pub(crate) fn new(shape: LinkShape) -> Self {
        Self {
            shape: Mutex::new(shape),
            ..Self::default()
        }
    }

    /// The shape in force.
    pub(crate) fn shape(&self) -> LinkShape {
        *self.shape.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Replaces the shape, after checking it.
    pub(crate) fn set(&self, shape: LinkShape) -> Result<(), String> {
        shape.validate()?;
        *self.shape.lock().unwrap_or_else(|e| e.into_inner()) = shape;
        Ok(())
    }

    /// Waits the latency of the link, if it has one.
    pub(crate) async fn delay(&self) {
        let latency = self.shape().latency;
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
    }

    /// Lets a request in, unless the ceiling is reached: then `Err` with the ceiling.
    pub(crate) fn admit(&self) -> Result<Admitted<'_>, usize> {
        let ceiling = self.shape().max_inflight.unwrap_or(usize::MAX);
        let admitted = self
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < ceiling).then_some(n + 1)
            });
        match admitted {
            Ok(_) => Ok(Admitted(&self.in_flight)),
            Err(_) => Err(ceiling),
        }
    }

    /// Requests admitted and not yet answered.
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// When `bytes` just read on `conn` are through the link and the connection's own bandwidth
    /// (`None`: neither caps them).
    pub(crate) fn reserve(&self, conn: &Connection, bytes: u64, now: Instant) -> Option<Instant> {
        let shape = self.shape();
        let link = shape
            .link_bandwidth
            .map(|rate| self.pacer.reserve(bytes, rate, now));
        let crawl = conn.crawl.load(Ordering::Relaxed);
        let conn_rate = match (shape.conn_bandwidth, crawl) {
            (rate, 0) => rate,
            (Some(rate), crawl) => Some(rate.min(crawl)),
            (None, crawl) => Some(crawl),
        };
        let own = conn_rate.map(|rate| conn.pacer.reserve(bytes, rate, now));
        link.max(own)
    }

    /// The rate a `straggle` fault given as a percentage crawls at: that share of the connection's
    /// bandwidth, or of the link's without one; `None` when the link has neither.
    pub(crate) fn share(&self, percent: f64) -> Option<u64> {
        let shape = self.shape();
        let base = shape.conn_bandwidth.or(shape.link_bandwidth)?;
        Some(((base as f64 * percent / 100.0) as u64).max(1))
    }
}

/// A request let in by the ceiling; dropping it lets the next one in.
#[derive(Debug)]
pub(crate) struct Admitted<'a>(&'a AtomicUsize);

impl Drop for Admitted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One connection's side of the link: its own pacer, and the crawl a `straggle` fault put it in.
#[derive(Debug, Default)]
pub(crate) struct Connection {
    pacer: Pacer,
    /// Bytes per second this connection crawls at from now on; 0: it does not crawl.
    crawl: AtomicU64,
}

impl Connection {
    /// Makes every later chunk on this connection go at most `bytes_per_sec` fast.
    pub(crate) fn crawl(&self, bytes_per_sec: u64) {
        self.crawl.store(bytes_per_sec.max(1), Ordering::Relaxed);
    }
}

/// The answer past the ceiling: `503 SlowDown` with an OSS error document saying why.
pub(crate) fn slow_down(request_id: &str, host_id: &str, ceiling: usize) -> HttpResponse {
    let mut document = ErrorResponse::new(
        ErrorCode::ServiceUnavailable,
        request_id,
        response::xml_safe(host_id).as_ref(),
    );
    document.code = SLOW_DOWN.to_owned();
    document.message = format!(
        "Please reduce your request rate. (oss-mock is working on {ceiling} requests, its limit: --max-inflight.)"
    );
    let mut answer = response::xml(document.to_xml());
    *answer.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    answer
}

/// Parses a latency: `40ms`, `0.5s`, `250us`, `0` (none).
///
/// ```
/// use std::time::Duration;
/// assert_eq!(oss_mock::parse_latency("40ms"), Ok(Duration::from_millis(40)));
/// assert_eq!(oss_mock::parse_latency("0.5s"), Ok(Duration::from_millis(500)));
/// assert!(oss_mock::parse_latency("40").is_err());
/// ```
pub fn parse_latency(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    let (number, unit) = split_number(trimmed);
    let value = number
        .parse::<f64>()
        .ok()
        .filter(|n| n.is_finite() && *n >= 0.0)
        .ok_or_else(|| format!("{trimmed:?} is not a latency; write e.g. 40ms or 0.2s"))?;
    let secs = match unit {
        "s" => value,
        "ms" => value / 1e3,
        "us" | "µs" => value / 1e6,
        "" if value == 0.0 => 0.0,
        _ => {
            return Err(format!(
                "{trimmed:?} needs a unit (s, ms or us); write e.g. 40ms"
            ));
        }
    };
    Duration::try_from_secs_f64(secs)
        .ok()
        .filter(|d| *d <= MAX_LATENCY)
        .ok_or_else(|| format!("{trimmed:?} is out of range; give less than an hour"))
}

/// The leading number of `text` and the unit after it.
fn split_number(text: &str) -> (&str, &str) {
    let end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(end);
    (number, unit.trim())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_rate;

    #[test]
    fn rates_and_latencies_read_as_people_write_them() {
        assert_eq!(parse_rate("16MiB/s"), Ok(16 << 20));
        assert_eq!(parse_rate("4 MiB/s"), Ok(4 << 20));
        assert_eq!(parse_rate("40mb"), Ok(40_000_000));
        assert_eq!(parse_rate("2G/s"), Ok(2 << 30));
        assert_eq!(parse_rate("2048"), Ok(2048));
        for bad in ["", "MiB/s", "10", "1.2.3M", "-5M", "5 parsecs/s"] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_latency("0"), Ok(Duration::ZERO));
        assert_eq!(parse_latency("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(parse_latency("2s"), Ok(Duration::from_secs(2)));
        for bad in ["", "ms", "5", "5h", "7200s", "-1ms"] {
            assert!(parse_latency(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_ceiling_admits_that_many_at_once_and_counts_the_rest() {
        let link = Link::new(LinkShape {
            max_inflight: Some(2),
            ..LinkShape::default()
        });
        let first = link.admit().unwrap();
        let second = link.admit().unwrap();
        assert_eq!(link.admit().unwrap_err(), 2);
        assert_eq!(link.in_flight(), 2);
        drop(first);
        let third = link.admit().unwrap();
        assert_eq!(link.in_flight(), 2);
        drop((second, third));
        assert_eq!(link.in_flight(), 0);
        assert!(link.admit().is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn a_chunk_waits_for_the_slower_of_link_and_connection() {
        let link = Link::new(LinkShape {
            link_bandwidth: Some(4 << 20),
            conn_bandwidth: Some(1 << 20),
            ..LinkShape::default()
        });
        let (a, b) = (Connection::default(), Connection::default());
        let t0 = Instant::now();
        let mib = 1 << 20;
        // Each connection is held to 1 MiB/s; the link's 4 MiB/s is not the bound.
        assert_eq!(link.reserve(&a, mib, t0), Some(t0 + Duration::from_secs(1)));
        assert_eq!(link.reserve(&b, mib, t0), Some(t0 + Duration::from_secs(1)));
        // A crawling connection goes at its crawl; the other is untouched.
        a.crawl(mib / 100);
        assert_eq!(
            link.reserve(&a, mib / 100, t0),
            Some(t0 + Duration::from_secs(2))
        );
        assert_eq!(link.reserve(&b, mib, t0), Some(t0 + Duration::from_secs(2)));
        let loopback = Link::default();
        assert_eq!(loopback.reserve(&Connection::default(), mib, t0), None);
    }

    #[test]
    fn a_straggler_share_is_of_the_connection_else_of_the_link() {
        let both = Link::new(LinkShape {
            link_bandwidth: Some(200 << 20),
            conn_bandwidth: Some(16 << 20),
            ..LinkShape::default()
        });
        assert_eq!(both.share(1.0), Some((16 << 20) / 100));
        let link_only = Link::new(LinkShape {
            link_bandwidth: Some(100 << 20),
            ..LinkShape::default()
        });
        assert_eq!(link_only.share(50.0), Some(50 << 20));
        assert_eq!(Link::default().share(1.0), None);
    }
}
