//! The CLI's parsers of what people type: sizes and rates, `oss://` addresses, `--meta NAME=VALUE`.
//!
//! The CLI is a binary crate; its parser modules use nothing but `std` and `ossup-proto`, so the
//! same source files are compiled here rather than made into a library API for fuzzing alone.

#[allow(dead_code, unreachable_pub)]
#[path = "../../../crates/ossup-cli/src/size.rs"]
mod size;

#[allow(dead_code, unreachable_pub)]
#[path = "../../../crates/ossup-cli/src/oss_url.rs"]
mod oss_url;

#[allow(dead_code, unreachable_pub)]
#[path = "../../../crates/ossup-cli/src/meta.rs"]
mod meta;

use ossup_proto::headers::META_PREFIX;
use ossup_proto::limits::MAX_KEY_LEN;

/// Parses `data` as a size, a rate, an `oss://` address and a metadata entry. A size reads back
/// from its number of bytes; a rate is at least 1 KiB/s; an address has a valid bucket, a key OSS
/// takes, and reads back from how it prints; a metadata entry reads back from `x-oss-meta-NAME=VALUE`.
pub fn cli_args(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(bytes) = size::parse_size(text) {
        assert_eq!(size::parse_size(&bytes.to_string()), Ok(bytes), "{text:?}");
    }
    if let Ok(rate) = size::parse_rate(text) {
        assert!(rate >= 1024, "{text:?} is a rate of {rate} bytes/s");
    }
    if let Ok(url) = oss_url::OssUrl::parse(text) {
        assert!(
            (3..=63).contains(&url.bucket.len()),
            "{text:?} gave bucket {:?}",
            url.bucket
        );
        assert!(
            url.key.len() <= MAX_KEY_LEN && !url.key.chars().any(char::is_control),
            "{text:?} gave key {:?}",
            url.key
        );
        assert_eq!(
            oss_url::OssUrl::parse(&url.to_string()).as_ref(),
            Ok(&url),
            "{text:?}"
        );
    }
    if let Ok(entry) = meta::parse_meta(text) {
        // The header's own name: a name given with the prefix twice keeps one.
        let written = format!("{META_PREFIX}{}={}", entry.name, entry.value);
        assert_eq!(meta::parse_meta(&written).as_ref(), Ok(&entry), "{text:?}");
    }
}
