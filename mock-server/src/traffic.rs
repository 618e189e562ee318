//! `x-oss-traffic-limit`: the cap in bit/s a client may put on one upload request, which OSS
//! honours by reading the body no faster (PutObject, UploadPart).

use http::HeaderMap;

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

#[cfg(test)]
mod tests {
    use super::*;

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
