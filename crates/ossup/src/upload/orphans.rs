//! Aborting the multipart uploads an interrupted start left open ("orphans").
//!
//! Starting a multipart upload is InitiateMultipartUpload, then saving the checkpoint with the upload
//! id. Two interruptions there leave an upload open that no checkpoint names: an Initiate whose
//! answer is lost (the retry creates a second upload, the first stays open), and a run killed
//! between Initiate and the save. So the engine saves an *intent* checkpoint (no upload id yet)
//! before Initiate, and once Initiate answers with upload U, it lists the open uploads of the exact
//! key and aborts every other one the server initiated in
//!
//! ```text
//! [initiated(U) − time since the intent − SLACK, initiated(U)]
//! ```
//!
//! `initiated` is read from the server's clock and the time since the intent from the client's: each
//! is a difference of two readings of one clock, so skew between the two clocks does not matter.
//! A run killed before its upload id was saved leaves its intent behind; the next run carries the
//! intent's time over (`Checkpoint::created_unix`), so its window covers the killed run's uploads
//! too. The window looks back at most [`MAX_LOOKBACK`].
//!
//! This assumes ossup is the only writer of the key while an upload starts: an upload of the same
//! key that another client initiates inside the window is aborted too.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::context::UploadContext;
use crate::Error;

/// Added to the window: `Initiated` has whole seconds, and the intent time of an earlier run too.
pub(super) const SLACK: Duration = Duration::from_secs(2);

/// The longest the window looks back, however old a carried-over intent is.
pub(super) const MAX_LOOKBACK: Duration = Duration::from_secs(24 * 60 * 60);

/// When this upload meant to initiate: the moment of a fresh intent, or a killed run's.
#[derive(Debug, Clone, Copy)]
pub(super) struct Intent {
    /// Seconds since the Unix epoch, as saved in the intent checkpoint.
    unix: u64,
    /// The time since the intent when `at` was taken.
    before: Duration,
    at: Instant,
}

impl Intent {
    /// An intent made now.
    pub(super) fn now() -> Self {
        Self {
            unix: now_unix(),
            before: Duration::ZERO,
            at: Instant::now(),
        }
    }

    /// The intent of a run that saved it at `created_unix` and was then interrupted. Its time is in
    /// whole seconds: one more second covers the rounding.
    pub(super) fn carried_over(created_unix: u64) -> Self {
        let since = now_unix().saturating_sub(created_unix);
        Self {
            unix: created_unix,
            before: Duration::from_secs(since) + Duration::from_secs(1),
            at: Instant::now(),
        }
    }

    /// Seconds since the Unix epoch, for the intent checkpoint.
    pub(super) fn unix(&self) -> u64 {
        self.unix
    }

    /// How long ago the intent was made, on the client's clock.
    pub(super) fn elapsed(&self) -> Duration {
        self.before + self.at.elapsed()
    }
}

/// What a sweep did.
#[derive(Debug, Default)]
pub(super) struct Swept {
    /// The uploads aborted.
    pub(super) aborted: Vec<String>,
    /// The first abort that failed (the others were still tried).
    pub(super) failed: Option<Error>,
}

/// Aborts the uploads of exactly the context's key other than `upload_id` that the server initiated
/// within `since_intent` (at most [`MAX_LOOKBACK`]) plus [`SLACK`] before `upload_id`.
///
/// Fails when the uploads cannot be listed, or `upload_id` is not among them (its time is the
/// window's end).
pub(super) async fn sweep(
    ctx: &UploadContext,
    upload_id: &str,
    since_intent: Duration,
) -> Result<Swept, Error> {
    let (client, bucket, key) = (&ctx.client, ctx.bucket(), ctx.key());
    let uploads: Vec<_> = client
        .list_multipart_uploads(bucket, Some(key))
        .await?
        .into_iter()
        .filter(|u| u.key == key)
        .collect();
    let ours = uploads
        .iter()
        .find(|u| u.upload_id == upload_id)
        .ok_or_else(|| {
            Error::malformed_response(format!(
                "ListMultipartUploads does not list upload {upload_id}, just initiated"
            ))
        })?;
    let end = parse_initiated(&ours.initiated).ok_or_else(|| {
        Error::malformed_response(format!(
            "upload {upload_id} has an Initiated time {:?} that is not an ISO 8601 UTC time",
            ours.initiated
        ))
    })?;
    let lookback = since_intent.min(MAX_LOOKBACK) + SLACK;
    let start = end - lookback.as_millis() as i64;

    let mut swept = Swept::default();
    for upload in &uploads {
        if upload.upload_id == upload_id {
            continue;
        }
        let Some(initiated) = parse_initiated(&upload.initiated) else {
            tracing::warn!(upload_id = %upload.upload_id, initiated = %upload.initiated,
                "an open upload of the key has an Initiated time that does not parse; left alone");
            continue;
        };
        if !(start..=end).contains(&initiated) {
            continue;
        }
        match client
            .abort_multipart_upload(bucket, key, &upload.upload_id)
            .await
        {
            Ok(()) => swept.aborted.push(upload.upload_id.clone()),
            // Gone meanwhile: nothing left to do.
            Err(e) if e.is_service_code(ossup_proto::ErrorCode::NoSuchUpload) => {}
            Err(e) => {
                tracing::warn!(upload_id = %upload.upload_id, error = %e,
                    "aborting an upload left open by an interrupted start failed");
                swept.failed.get_or_insert(e);
            }
        }
    }
    Ok(swept)
}

/// The most the client's clock may be off the server's when no upload of this run gives the
/// server's time: OSS refuses requests whose time is off by more (`RequestTimeTooSkewed`).
const MAX_SKEW: Duration = Duration::from_secs(15 * 60);

/// Aborts the uploads of exactly the context's key that an interrupted start, whose intent was
/// saved at `intent_unix`, may have left open, when this run starts no multipart upload of its own
/// (the source now goes in one PutObject): every open upload of the key initiated since the intent,
/// on the client's clock corrected by what the client learned of the server's, less [`MAX_SKEW`]
/// and [`SLACK`].
pub(super) async fn sweep_since(ctx: &UploadContext, intent_unix: u64) -> Result<Swept, Error> {
    let (client, bucket, key) = (&ctx.client, ctx.bucket(), ctx.key());
    let start = (intent_unix as i64) * 1000 + client.clock_offset_ms()
        - (MAX_SKEW + SLACK).as_millis() as i64;
    let mut swept = Swept::default();
    for upload in client.list_multipart_uploads(bucket, Some(key)).await? {
        if upload.key != key {
            continue;
        }
        if parse_initiated(&upload.initiated).is_none_or(|initiated| initiated < start) {
            continue;
        }
        match client
            .abort_multipart_upload(bucket, key, &upload.upload_id)
            .await
        {
            Ok(()) => swept.aborted.push(upload.upload_id),
            Err(e) if e.is_service_code(ossup_proto::ErrorCode::NoSuchUpload) => {}
            Err(e) => {
                swept.failed.get_or_insert(e);
            }
        }
    }
    Ok(swept)
}

/// Seconds since the Unix epoch on the client's clock (0 if it is set before 1970).
pub(super) fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Milliseconds since the Unix epoch of an `Initiated` time: `YYYY-MM-DDTHH:MM:SS[.fff]` followed by
/// `Z` or `+00:00` (OSS sends `2012-02-23T04:18:23.000Z`).
pub(super) fn parse_initiated(text: &str) -> Option<i64> {
    let text = text.trim();
    let text = text
        .strip_suffix('Z')
        .or_else(|| text.strip_suffix("+00:00"))?;
    let (date, time) = text.split_once('T')?;
    let mut date = date.split('-');
    let year: i64 = date.next()?.parse().ok()?;
    let month: i64 = date.next()?.parse().ok()?;
    let day: i64 = date.next()?.parse().ok()?;
    if date.next().is_some() || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let (clock, fraction) = match time.split_once('.') {
        Some((clock, fraction)) => (clock, Some(fraction)),
        None => (time, None),
    };
    let mut clock = clock.split(':');
    let hour: i64 = clock.next()?.parse().ok()?;
    let minute: i64 = clock.next()?.parse().ok()?;
    let second: i64 = clock.next()?.parse().ok()?;
    if clock.next().is_some() || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let millis = match fraction {
        None => 0,
        Some(f) if !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()) => {
            let digits: String = f.chars().chain("000".chars()).take(3).collect();
            digits.parse().ok()?
        }
        Some(_) => return None,
    };
    let days = days_from_civil(year, month, day);
    Some(((days * 24 + hour) * 60 + minute) * 60_000 + second * 1000 + millis)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = if year >= 0 { year } else { year - 399 } / 400;
    let year_of_era = year - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initiated_times_parse_to_unix_milliseconds() {
        assert_eq!(parse_initiated("1970-01-01T00:00:00.000Z"), Some(0));
        assert_eq!(
            parse_initiated("2012-02-23T04:18:23.000Z"),
            Some(1_329_970_703_000)
        );
        assert_eq!(
            parse_initiated("2024-02-29T12:00:00.5Z"),
            Some(1_709_208_000_500)
        );
        assert_eq!(
            parse_initiated("2024-03-01T00:00:01+00:00"),
            Some(1_709_251_201_000)
        );
        assert_eq!(parse_initiated("1969-12-31T23:59:59.000Z"), Some(-1000));
    }

    #[test]
    fn other_times_do_not_parse() {
        for text in [
            "",
            "2024-02-29",
            "2024-02-29T12:00:00",
            "2024-02-29T12:00:00+08:00",
            "2024-13-01T00:00:00Z",
            "2024-02-29T24:00:00Z",
            "2024-02-29T12:00:00.Z",
            "Thu, 29 Feb 2024 12:00:00 GMT",
        ] {
            assert_eq!(parse_initiated(text), None, "{text:?}");
        }
    }

    #[test]
    fn a_carried_over_intent_counts_the_time_since_it_was_saved() {
        let intent = Intent::carried_over(now_unix() - 100);
        let elapsed = intent.elapsed();
        assert!(elapsed >= Duration::from_secs(101), "{elapsed:?}");
        // An intent "from the future" (the clock was set back) still covers the rounding.
        assert!(Intent::carried_over(now_unix() + 50).elapsed() >= Duration::from_secs(1));
    }
}
