//! ETags: how OSS formats them and how to compare them whatever the quoting.

/// The ETag OSS gives a part (or a single-request object): the uppercase hex MD5, in double quotes.
///
/// ```
/// let md5 = ossup_proto::checksum::md5(b"");
/// assert_eq!(ossup_proto::etag::part_etag(&md5), "\"D41D8CD98F00B204E9800998ECF8427E\"");
/// ```
pub fn part_etag(md5: &[u8; 16]) -> String {
    format!("\"{}\"", hex::encode_upper(md5))
}

/// The ETag of a completed multipart object: the uppercase hex MD5 of the concatenated binary part
/// MD5s, a dash and the part count, in double quotes.
///
/// OSS does not document how it derives this value; clients must treat it as opaque. The mock server
/// uses this derivation (S3's) so that it is deterministic.
///
/// ```
/// let parts = [ossup_proto::checksum::md5(b"a"), ossup_proto::checksum::md5(b"b")];
/// let etag = ossup_proto::etag::multipart_etag(&parts);
/// assert!(etag.ends_with("-2\""));
/// ```
pub fn multipart_etag(part_md5s: &[[u8; 16]]) -> String {
    let mut md5 = crate::checksum::Md5::new();
    for part in part_md5s {
        md5.update(part);
    }
    format!(
        "\"{}-{}\"",
        hex::encode_upper(md5.finish()),
        part_md5s.len()
    )
}

/// An ETag without surrounding quotes or whitespace, for comparison.
///
/// ```
/// assert_eq!(ossup_proto::etag::unquote(" \"ABC\" "), "ABC");
/// assert_eq!(ossup_proto::etag::unquote("ABC"), "ABC");
/// ```
pub fn unquote(etag: &str) -> &str {
    let trimmed = etag.trim();
    let trimmed = trimmed.strip_prefix('"').unwrap_or(trimmed);
    trimmed.strip_suffix('"').unwrap_or(trimmed)
}

/// Whether two ETags name the same content: quotes ignored, hex digits compared case-insensitively.
///
/// ```
/// assert!(ossup_proto::etag::same("\"abc\"", "ABC"));
/// assert!(!ossup_proto::etag::same("\"abc\"", "ABD"));
/// ```
pub fn same(a: &str, b: &str) -> bool {
    unquote(a).eq_ignore_ascii_case(unquote(b))
}

/// The binary MD5 a part ETag carries, or `None` when it is not 32 hex digits (a multipart ETag, say).
///
/// ```
/// let md5 = ossup_proto::checksum::md5(b"x");
/// assert_eq!(ossup_proto::etag::md5_of_etag(&ossup_proto::etag::part_etag(&md5)), Some(md5));
/// assert_eq!(ossup_proto::etag::md5_of_etag("\"ABC-2\""), None);
/// ```
pub fn md5_of_etag(etag: &str) -> Option<[u8; 16]> {
    let mut out = [0u8; 16];
    hex::decode_to_slice(unquote(etag), &mut out).ok()?;
    Some(out)
}
