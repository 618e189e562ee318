//! Resume: deciding, part by part, whether what the server lists is what the source holds.
//!
//! The server is the truth: a part counts as done only if ListParts shows it with the planned size
//! and checksums equal to those of that range of the source. The checksums come from the checkpoint
//! or, when it lacks them (the acknowledgement was lost in a crash), from reading the source again.

use ossup_proto::etag;
use ossup_proto::xml::ListedPart;

use crate::{ChecksumMode, PartRecord, PartSpec};

/// What is known of a part's source bytes without reading them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Known {
    pub(crate) md5: Option<[u8; 16]>,
    pub(crate) crc64: Option<u64>,
}

impl Known {
    /// What a checkpoint record says about `spec`, if it is a record of the same range.
    pub(crate) fn from_record(spec: &PartSpec, record: Option<&PartRecord>) -> Self {
        match record {
            Some(r) if r.number == spec.number && r.size == spec.size => Known {
                md5: r.md5,
                crc64: Some(r.crc64),
            },
            _ => Known::default(),
        }
    }
}

/// The verdict on one listed part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The server holds the right bytes: reuse them.
    Done(PartRecord),
    /// The server's part is missing, of another size, or has other bytes: send it again.
    Send,
    /// The checkpoint does not say enough: read the source range and judge again.
    NeedSource,
}

/// Judges `listed` (the server's part of `spec`'s number, if any) against what is `known`.
///
/// In [`ChecksumMode::Md5`] the ETag must be the MD5 of the range (and a listed CRC-64, when both
/// sides know one, must agree). In [`ChecksumMode::Crc64Only`] the listed `HashCrc64ecma` must be
/// the CRC-64 of the range; a server that lists none is judged by the ETag instead.
pub(crate) fn judge(
    spec: &PartSpec,
    listed: Option<&ListedPart>,
    known: Known,
    mode: ChecksumMode,
) -> Verdict {
    let Some(listed) = listed else {
        return Verdict::Send;
    };
    if listed.part_number != spec.number || listed.size != spec.size {
        return Verdict::Send;
    }
    let by_crc = mode == ChecksumMode::Crc64Only && listed.hash_crc64ecma.is_some();
    if by_crc {
        let Some(crc) = known.crc64 else {
            return Verdict::NeedSource;
        };
        if listed.hash_crc64ecma != Some(crc) {
            return Verdict::Send;
        }
        return Verdict::Done(PartRecord {
            number: spec.number,
            size: spec.size,
            etag: listed.etag.clone(),
            md5: known.md5,
            crc64: crc,
        });
    }
    let (Some(md5), Some(crc)) = (known.md5, known.crc64.or(listed.hash_crc64ecma)) else {
        return Verdict::NeedSource;
    };
    if etag::md5_of_etag(&listed.etag) != Some(md5) {
        return Verdict::Send;
    }
    if let (Some(listed_crc), Some(known_crc)) = (listed.hash_crc64ecma, known.crc64)
        && listed_crc != known_crc
    {
        return Verdict::Send;
    }
    Verdict::Done(PartRecord {
        number: spec.number,
        size: spec.size,
        etag: listed.etag.clone(),
        md5: Some(md5),
        crc64: crc,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ossup_proto::checksum::{crc64, md5};

    fn spec() -> PartSpec {
        PartSpec {
            number: 2,
            offset: 100,
            size: 5,
        }
    }

    fn listed(data: &[u8], crc: bool) -> ListedPart {
        ListedPart {
            part_number: 2,
            last_modified: String::new(),
            etag: etag::part_etag(&md5(data)),
            hash_crc64ecma: crc.then(|| crc64(data)),
            size: data.len() as u64,
        }
    }

    fn known(data: &[u8]) -> Known {
        Known {
            md5: Some(md5(data)),
            crc64: Some(crc64(data)),
        }
    }

    #[test]
    fn a_listed_part_with_matching_etag_is_done() {
        let v = judge(
            &spec(),
            Some(&listed(b"hello", true)),
            known(b"hello"),
            ChecksumMode::Md5,
        );
        assert!(matches!(v, Verdict::Done(r) if r.crc64 == crc64(b"hello")));
    }

    #[test]
    fn a_listed_part_with_other_bytes_or_size_is_sent_again() {
        assert_eq!(
            judge(
                &spec(),
                Some(&listed(b"HELLO", true)),
                known(b"hello"),
                ChecksumMode::Md5
            ),
            Verdict::Send
        );
        assert_eq!(
            judge(
                &spec(),
                Some(&listed(b"hell", true)),
                known(b"hello"),
                ChecksumMode::Md5
            ),
            Verdict::Send
        );
        assert_eq!(
            judge(&spec(), None, known(b"hello"), ChecksumMode::Md5),
            Verdict::Send
        );
    }

    #[test]
    fn without_a_record_the_source_must_be_read() {
        for mode in [ChecksumMode::Md5, ChecksumMode::Crc64Only] {
            assert_eq!(
                judge(
                    &spec(),
                    Some(&listed(b"hello", true)),
                    Known::default(),
                    mode
                ),
                Verdict::NeedSource
            );
        }
    }

    #[test]
    fn crc_only_mode_judges_by_the_listed_crc() {
        let only_crc = Known {
            md5: None,
            crc64: Some(crc64(b"hello")),
        };
        assert!(matches!(
            judge(
                &spec(),
                Some(&listed(b"hello", true)),
                only_crc,
                ChecksumMode::Crc64Only
            ),
            Verdict::Done(_)
        ));
        let wrong = Known {
            md5: None,
            crc64: Some(crc64(b"jello")),
        };
        assert_eq!(
            judge(
                &spec(),
                Some(&listed(b"hello", true)),
                wrong,
                ChecksumMode::Crc64Only
            ),
            Verdict::Send
        );
        // A server that lists no CRC-64 is judged by the ETag, which needs the MD5.
        assert_eq!(
            judge(
                &spec(),
                Some(&listed(b"hello", false)),
                only_crc,
                ChecksumMode::Crc64Only
            ),
            Verdict::NeedSource
        );
    }

    #[test]
    fn matching_etag_but_conflicting_crc_is_sent_again() {
        let mut l = listed(b"hello", true);
        l.hash_crc64ecma = Some(1);
        assert_eq!(
            judge(&spec(), Some(&l), known(b"hello"), ChecksumMode::Md5),
            Verdict::Send
        );
    }
}
