//! The client's idea of the server's time: the local clock plus the offset learned when OSS answers
//! `RequestTimeTooSkewed`, shared by the retry layer (which corrects it) and the signing layer (which
//! dates each signature by it).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime};

use http::HeaderMap;
use ossup_proto::ErrorResponse;

/// The local clock plus the offset learned from the server (`RequestTimeTooSkewed`).
///
/// Clones share the offset.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    offset_ms: Arc<AtomicI64>,
}

impl Clock {
    /// A clock with no correction.
    pub fn new() -> Self {
        Self::default()
    }

    /// The corrected current time.
    pub fn now(&self) -> SystemTime {
        let offset = self.offset_ms.load(Ordering::Relaxed);
        let now = SystemTime::now();
        if offset >= 0 {
            now + Duration::from_millis(offset as u64)
        } else {
            now - Duration::from_millis(offset.unsigned_abs())
        }
    }

    /// The current correction in milliseconds (server time minus local time).
    pub fn offset_ms(&self) -> i64 {
        self.offset_ms.load(Ordering::Relaxed)
    }

    /// Sets the correction so that [`now`](Self::now) reads `server_time` at this moment.
    pub fn correct_to(&self, server_time: SystemTime) {
        let local = SystemTime::now();
        let offset = match server_time.duration_since(local) {
            Ok(ahead) => ahead.as_millis() as i64,
            Err(behind) => -(behind.duration().as_millis() as i64),
        };
        self.offset_ms.store(offset, Ordering::Relaxed);
    }
}

/// The server's time from a skew answer: the document's `<ServerTime>` (ISO 8601 UTC, as
/// `2022-09-04T08:11:37.000Z`), which OSS writes for this very purpose and which has milliseconds;
/// else the `Date` header, which any server sends (a proxy may rewrite it, hence second choice).
pub(crate) fn server_time(
    headers: &HeaderMap,
    document: Option<&ErrorResponse>,
) -> Option<SystemTime> {
    document
        .and_then(|doc| doc.field("ServerTime"))
        .and_then(parse_iso8601_utc)
        .or_else(|| {
            let date = headers.get(http::header::DATE)?.to_str().ok()?;
            httpdate::parse_http_date(date).ok()
        })
}

/// Parses `YYYY-MM-DDThh:mm:ss[.fff]Z`, the UTC form OSS writes its times in.
fn parse_iso8601_utc(text: &str) -> Option<SystemTime> {
    let text = text.trim().strip_suffix('Z')?;
    let (date, time) = text.split_once('T')?;
    let mut date_fields = date.splitn(3, '-').map(|n| n.parse::<i64>().ok());
    let (year, month, day) = (
        date_fields.next()??,
        date_fields.next()??,
        date_fields.next()??,
    );
    let (clock, fraction) = match time.split_once('.') {
        Some((clock, fraction)) => (clock, fraction),
        None => (time, ""),
    };
    let mut clock_fields = clock.splitn(3, ':').map(|n| n.parse::<i64>().ok());
    let (hour, minute, second) = (
        clock_fields.next()??,
        clock_fields.next()??,
        clock_fields.next()??,
    );
    let valid = (1..=12).contains(&month)
        && (1..=31).contains(&day)
        && (0..24).contains(&hour)
        && (0..60).contains(&minute)
        && (0..=60).contains(&second)
        && fraction.bytes().all(|b| b.is_ascii_digit());
    if !valid {
        return None;
    }
    // The fraction's first three digits are milliseconds; finer ones do not matter to a clock skew.
    let millis = format!("{fraction:0<3}")[..3].parse::<u64>().ok()?;
    let seconds = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second;
    let seconds = u64::try_from(seconds).ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(seconds) + Duration::from_millis(millis))
}

/// Days from 1970-01-01 to a date of the proleptic Gregorian calendar (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let shifted_month = (month + 9) % 12;
    let day_of_year = (153 * shifted_month + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_correction_moves_now_to_the_server_time() {
        let clock = Clock::new();
        let server = SystemTime::now() - Duration::from_secs(3600);
        clock.correct_to(server);
        let skew = SystemTime::now()
            .duration_since(clock.now())
            .unwrap()
            .as_secs();
        assert!((3599..=3601).contains(&skew), "skew {skew}");
        assert!(clock.offset_ms() < 0);
    }

    #[test]
    fn iso8601_server_times_parse_as_oss_writes_them() {
        let at = |secs: u64, ms: u64| {
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(ms))
        };
        assert_eq!(parse_iso8601_utc("1970-01-01T00:00:00.000Z"), at(0, 0));
        assert_eq!(
            parse_iso8601_utc("2022-09-04T08:11:37.000Z"),
            at(1_662_279_097, 0)
        );
        assert_eq!(
            parse_iso8601_utc("2022-09-04T08:11:37.25Z"),
            at(1_662_279_097, 250)
        );
        assert_eq!(
            parse_iso8601_utc("2024-02-29T23:59:59Z"),
            at(1_709_251_199, 0)
        );
        for bad in [
            "",
            "2022-09-04 08:11:37Z",
            "2022-09-04T08:11:37",
            "2022-13-01T00:00:00Z",
            "2022-09-04T08:11:xxZ",
        ] {
            assert_eq!(parse_iso8601_utc(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn server_time_prefers_the_documents_server_time_to_the_date_header() {
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::DATE,
            "Thu, 01 Jan 1970 00:16:40 GMT".parse().unwrap(),
        );
        let doc = ErrorResponse::new(ossup_proto::ErrorCode::RequestTimeTooSkewed, "R", "H")
            .with("ServerTime", "1970-01-01T00:33:20.000Z");
        let from_doc = server_time(&headers, Some(&doc));
        assert_eq!(
            from_doc,
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(2000))
        );
        let from_date = server_time(&headers, None);
        assert_eq!(
            from_date,
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1000))
        );
        let unreadable = ErrorResponse::new(ossup_proto::ErrorCode::RequestTimeTooSkewed, "R", "H")
            .with("ServerTime", "yesterday");
        assert_eq!(server_time(&headers, Some(&unreadable)), from_date);
        assert_eq!(server_time(&HeaderMap::new(), None), None);
    }
}
