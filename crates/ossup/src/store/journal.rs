//! The checkpoint journal format of [`FileStore`](super::FileStore): how a checkpoint becomes bytes and
//! how those bytes are replayed and validated. No I/O here; `docs/checkpoint-format.md` is the spec.
//!
//! A journal is a 12-byte prefix (magic, format version), then framed records. The *base* (prefix, one
//! checkpoint record, parts records) is written whole by an atomic save; parts records appended later
//! each hold one group-committed batch. Only the appended region can end in a torn record, because
//! only appends can be cut short by a crash.

use std::collections::BTreeMap;

use ossup_proto::checksum::crc64;

use super::codec::{self, Reader};
use crate::checkpoint::{Checkpoint, PartRecord};

/// The first 8 bytes of every journal.
pub(crate) const MAGIC: &[u8; 8] = b"OSSUPCK\0";
/// The format version this build writes and the newest it reads.
pub(crate) const VERSION: u32 = 1;
/// Magic plus version.
pub(crate) const PREFIX_LEN: usize = 12;
/// Length field plus checksum around each record body.
const FRAME_OVERHEAD: usize = 4 + 8;
/// The largest record body in the saved base.
const MAX_BASE_BODY: usize = 16 << 20;
/// The largest record body appended after the base. Kept small so a length field damaged into a
/// large value is recognised as damage rather than as a record cut short by a crash.
pub(crate) const MAX_APPENDED_BODY: usize = 1 << 20;
/// Parts per record when a whole checkpoint is written.
const PARTS_PER_BASE_RECORD: usize = 1024;

const KIND_CHECKPOINT: u8 = 1;
const KIND_PARTS: u8 = 2;

/// What a valid journal holds.
#[derive(Debug)]
pub(crate) struct Replay {
    /// The checkpoint with every intact part applied in order.
    pub(crate) checkpoint: Checkpoint,
    /// Where the last intact record ends; bytes past it are a torn tail.
    pub(crate) valid_end: u64,
    /// Why the bytes after `valid_end` were dropped, when there are any.
    pub(crate) torn_tail: Option<String>,
    /// Part entries in the journal, counting every replaced one (compaction accounting).
    pub(crate) entries: u64,
}

/// Why a journal cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Invalid {
    /// Damaged, foreign or otherwise untrustworthy, with the reason.
    Corrupt(String),
    /// Written by a newer format version.
    Unsupported(u32),
}

/// The whole journal of `checkpoint`, as an atomic save writes it.
pub(crate) fn encode(checkpoint: &Checkpoint) -> Vec<u8> {
    let parts: Vec<&PartRecord> = checkpoint.parts.values().collect();
    let mut parts_records = Vec::new();
    for chunk in parts.chunks(PARTS_PER_BASE_RECORD) {
        let payload = parts_payload(chunk.iter().copied());
        frame_into(&mut parts_records, KIND_PARTS, &payload);
    }

    let mut fields = Vec::new();
    codec::encode_checkpoint_fields(checkpoint, &mut fields);
    let header_record_len = FRAME_OVERHEAD + 1 + 8 + fields.len();
    let base_len = (PREFIX_LEN + header_record_len + parts_records.len()) as u64;
    let mut header_payload = Vec::with_capacity(8 + fields.len());
    header_payload.extend_from_slice(&base_len.to_le_bytes());
    header_payload.extend_from_slice(&fields);

    let mut out = Vec::with_capacity(base_len as usize);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    frame_into(&mut out, KIND_CHECKPOINT, &header_payload);
    out.extend_from_slice(&parts_records);
    debug_assert_eq!(out.len() as u64, base_len);
    out
}

/// The records to append for one batch of parts: one record, or several when the batch is larger than
/// an appended record may be. Fails when a single part alone is too large to append.
pub(crate) fn encode_appended(parts: &[PartRecord]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut chunk: Vec<&PartRecord> = Vec::new();
    let mut chunk_len = 1 + 4;
    for part in parts {
        let mut one = Vec::new();
        codec::encode_part(part, &mut one);
        if 1 + 4 + one.len() > MAX_APPENDED_BODY {
            return Err(format!(
                "part {} encodes to {} bytes, more than the {} a journal record may hold (is its ETag {} bytes long?)",
                part.number,
                one.len(),
                MAX_APPENDED_BODY,
                part.etag.len()
            ));
        }
        if chunk_len + one.len() > MAX_APPENDED_BODY {
            frame_into(&mut out, KIND_PARTS, &parts_payload(chunk.drain(..)));
            chunk_len = 1 + 4;
        }
        chunk_len += one.len();
        chunk.push(part);
    }
    if !chunk.is_empty() {
        frame_into(&mut out, KIND_PARTS, &parts_payload(chunk.drain(..)));
    }
    Ok(out)
}

fn parts_payload<'a>(parts: impl ExactSizeIterator<Item = &'a PartRecord>) -> Vec<u8> {
    let mut payload = Vec::new();
    payload.extend_from_slice(&(parts.len() as u32).to_le_bytes());
    for part in parts {
        codec::encode_part(part, &mut payload);
    }
    payload
}

fn frame_into(out: &mut Vec<u8>, kind: u8, payload: &[u8]) {
    let start = out.len();
    let body_len = u32::try_from(1 + payload.len()).expect("journal record over 4 GiB");
    out.extend_from_slice(&body_len.to_le_bytes());
    out.push(kind);
    out.extend_from_slice(payload);
    let check = crc64(&out[start..]);
    out.extend_from_slice(&check.to_le_bytes());
}

/// One framed record, or why the bytes at an offset are not one.
enum Frame<'a> {
    Intact {
        kind: u8,
        payload: &'a [u8],
        end: usize,
    },
    /// The record runs past the end of the data (or not even its length fits).
    CutShort,
    /// The length field is 0 or larger than a record may be.
    BadLength(u32),
    /// The checksum does not match.
    BadChecksum,
}

/// `bytes` as an array; the callers slice exactly `N` bytes.
fn le_array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0; N];
    out.copy_from_slice(bytes);
    out
}

fn read_frame(bytes: &[u8], at: usize, max_body: usize) -> Frame<'_> {
    let Some(len_bytes) = bytes.get(at..at + 4) else {
        return Frame::CutShort;
    };
    let body_len = u32::from_le_bytes(le_array(len_bytes));
    if body_len == 0 || body_len as usize > max_body {
        return Frame::BadLength(body_len);
    }
    let body_end = at + 4 + body_len as usize;
    let end = body_end + 8;
    if end > bytes.len() {
        return Frame::CutShort;
    }
    let stored = u64::from_le_bytes(le_array(&bytes[body_end..end]));
    if crc64(&bytes[at..body_end]) != stored {
        return Frame::BadChecksum;
    }
    Frame::Intact {
        kind: bytes[at + 4],
        payload: &bytes[at + 5..body_end],
        end,
    }
}

/// Replays a whole journal: validates it, applies every intact part, and drops a torn tail.
pub(crate) fn replay(bytes: &[u8]) -> Result<Replay, Invalid> {
    let corrupt = |reason: String| Invalid::Corrupt(reason);
    let magic_len = bytes.len().min(MAGIC.len());
    if bytes[..magic_len] != MAGIC[..magic_len] {
        return Err(corrupt(
            "not an ossup checkpoint journal: it does not start with the OSSUPCK magic".into(),
        ));
    }
    if bytes.len() < PREFIX_LEN {
        return Err(corrupt(format!(
            "truncated: {} bytes, shorter than the {PREFIX_LEN}-byte journal prefix",
            bytes.len()
        )));
    }
    let version = u32::from_le_bytes(le_array(&bytes[8..12]));
    if version > VERSION {
        return Err(Invalid::Unsupported(version));
    }
    if version == 0 {
        return Err(corrupt(
            "format version 0 was never written by ossup".into(),
        ));
    }

    let (payload, header_end) = match read_frame(bytes, PREFIX_LEN, MAX_BASE_BODY) {
        Frame::Intact {
            kind: KIND_CHECKPOINT,
            payload,
            end,
        } => (payload, end),
        Frame::Intact { kind, .. } => {
            return Err(corrupt(format!(
                "the first record has kind {kind}, not a checkpoint header ({KIND_CHECKPOINT})"
            )));
        }
        Frame::CutShort => {
            return Err(corrupt(format!(
                "truncated: the checkpoint header record at offset {PREFIX_LEN} runs past the end of the {}-byte file",
                bytes.len()
            )));
        }
        Frame::BadLength(len) => {
            return Err(corrupt(format!(
                "the checkpoint header record at offset {PREFIX_LEN} claims an impossible length of {len} bytes"
            )));
        }
        Frame::BadChecksum => {
            return Err(corrupt(format!(
                "the checkpoint header record at offset {PREFIX_LEN} fails its checksum"
            )));
        }
    };
    let mut reader = Reader::new(payload);
    let decoded = reader
        .u64("saved length")
        .and_then(|base_len| Ok((base_len, reader.checkpoint_fields()?)));
    let (base_len, mut checkpoint) = match decoded {
        Ok(decoded) if reader.is_empty() => decoded,
        Ok(_) => {
            return Err(corrupt(format!(
                "the checkpoint header record has {} unexpected trailing bytes",
                payload.len() - reader.position()
            )));
        }
        Err(err) => {
            return Err(corrupt(format!(
                "the checkpoint header record does not decode: {}",
                err.0
            )));
        }
    };
    let base_len = usize::try_from(base_len).unwrap_or(usize::MAX);
    if base_len < header_end {
        return Err(corrupt(format!(
            "the header says the saved journal is {base_len} bytes, less than its own end at {header_end}"
        )));
    }
    if base_len > bytes.len() {
        return Err(corrupt(format!(
            "truncated: the file is {} bytes but its saved part alone is {base_len}",
            bytes.len()
        )));
    }

    let mut at = header_end;
    let mut entries = 0u64;
    let mut torn_tail = None;
    while at < bytes.len() {
        let in_base = at < base_len;
        let max_body = if in_base {
            MAX_BASE_BODY
        } else {
            MAX_APPENDED_BODY
        };
        let frame = read_frame(bytes, at, max_body);
        let (kind, payload, end) = match frame {
            Frame::Intact { kind, payload, end } => (kind, payload, end),
            defect => {
                let what = match defect {
                    Frame::CutShort => "runs past the end of the file".to_string(),
                    Frame::BadLength(len) => format!("claims an impossible length of {len} bytes"),
                    Frame::BadChecksum => "fails its checksum".to_string(),
                    Frame::Intact { .. } => unreachable!(),
                };
                // A crash can only cut short the last append, so after a torn record nothing intact
                // can follow; an intact record after the defect means the damage is in the middle.
                let torn = !in_base && !intact_record_after(bytes, at);
                if torn {
                    torn_tail = Some(format!(
                        "the last {} bytes, from offset {at}, are an unfinished record (it {what}) from an interrupted write; they were never acknowledged",
                        bytes.len() - at
                    ));
                    break;
                }
                let region = if in_base {
                    "saved"
                } else {
                    "appended, and not the last"
                };
                return Err(corrupt(format!(
                    "the record at offset {at} ({region}) {what}"
                )));
            }
        };
        if in_base && end > base_len {
            return Err(corrupt(format!(
                "the record at offset {at} straddles the end of the saved journal at {base_len}"
            )));
        }
        if kind != KIND_PARTS {
            return Err(corrupt(format!(
                "the record at offset {at} has kind {kind}; only the first record may be a header, and parts records are kind {KIND_PARTS}"
            )));
        }
        let parts = decode_parts(payload).map_err(|reason| {
            corrupt(format!(
                "the parts record at offset {at} passes its checksum but does not decode: {reason}"
            ))
        })?;
        entries += parts.len() as u64;
        apply(&mut checkpoint.parts, parts);
        at = end;
    }
    Ok(Replay {
        checkpoint,
        valid_end: at as u64,
        torn_tail,
        entries,
    })
}

/// Whether an intact parts record starts anywhere after `at`. Only called on a defect, so the scan's
/// cost is paid only by damaged journals.
fn intact_record_after(bytes: &[u8], at: usize) -> bool {
    (at + 1..bytes.len().saturating_sub(FRAME_OVERHEAD)).any(|start| {
        matches!(
            read_frame(bytes, start, MAX_APPENDED_BODY),
            Frame::Intact {
                kind: KIND_PARTS,
                ..
            }
        )
    })
}

fn decode_parts(payload: &[u8]) -> Result<Vec<PartRecord>, String> {
    let mut reader = Reader::new(payload);
    let count = reader.u32("part count").map_err(|e| e.0)?;
    let mut parts = Vec::with_capacity((count as usize).min(payload.len() / 21));
    for _ in 0..count {
        parts.push(reader.part().map_err(|e| e.0)?);
    }
    if !reader.is_empty() {
        return Err(format!(
            "{} trailing bytes after {count} parts",
            payload.len() - reader.position()
        ));
    }
    Ok(parts)
}

fn apply(parts: &mut BTreeMap<u32, PartRecord>, records: Vec<PartRecord>) {
    for part in records {
        parts.insert(part.number, part);
    }
}

/// Reads only the prefix and header record: enough to list a journal without replaying its parts.
pub(crate) fn read_header(bytes: &[u8]) -> Result<Checkpoint, Invalid> {
    if bytes.len() < PREFIX_LEN || &bytes[..8] != MAGIC {
        return Err(Invalid::Corrupt("not an ossup checkpoint journal".into()));
    }
    let version = u32::from_le_bytes(le_array(&bytes[8..12]));
    if version > VERSION {
        return Err(Invalid::Unsupported(version));
    }
    match read_frame(bytes, PREFIX_LEN, MAX_BASE_BODY) {
        Frame::Intact {
            kind: KIND_CHECKPOINT,
            payload,
            ..
        } if version == VERSION => {
            let mut reader = Reader::new(payload);
            reader
                .u64("saved length")
                .and_then(|_| reader.checkpoint_fields())
                .map_err(|e| Invalid::Corrupt(e.0))
        }
        _ => Err(Invalid::Corrupt("the header record is damaged".into())),
    }
}

/// How many bytes of a file to read to reach the end of its header record, once its first 16 bytes
/// are known.
pub(crate) fn header_extent(first: &[u8]) -> Option<usize> {
    let len = u32::from_le_bytes(first.get(PREFIX_LEN..PREFIX_LEN + 4)?.try_into().ok()?) as usize;
    (len > 0 && len <= MAX_BASE_BODY).then_some(PREFIX_LEN + 4 + len + 8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::{SourceStamp, UploadIdentity};

    fn part(number: u32, tag: &str) -> PartRecord {
        PartRecord {
            number,
            size: 100 * 1024,
            etag: format!("\"{tag}-{number:032}\""),
            md5: number.is_multiple_of(2).then_some([number as u8; 16]),
            crc64: u64::from(number).wrapping_mul(0x9E37_79B9_7F4A_7C15),
        }
    }

    fn checkpoint(parts: u32) -> Checkpoint {
        let mut cp = Checkpoint::new(
            UploadIdentity::new("/src/file", "bucket", "key", 100 * 1024),
            "upload-id",
            SourceStamp {
                size: 12345,
                modified_nanos: Some(1_700_000_000_000_000_000),
            },
            1_700_000_000,
            "opts",
        );
        for n in 1..=parts {
            cp.parts.insert(n, part(n, "base"));
        }
        cp
    }

    fn journal_with_appends(base_parts: u32, appended: &[u32]) -> (Vec<u8>, Vec<usize>) {
        let mut bytes = encode(&checkpoint(base_parts));
        let mut starts = Vec::new();
        for &n in appended {
            starts.push(bytes.len());
            bytes.extend(encode_appended(&[part(n, "appended")]).unwrap());
        }
        (bytes, starts)
    }

    #[test]
    fn a_saved_journal_replays_to_the_saved_checkpoint() {
        for parts in [0, 1, 1500] {
            let cp = checkpoint(parts);
            let replay = replay(&encode(&cp)).unwrap();
            assert_eq!(replay.checkpoint, cp);
            assert_eq!(replay.torn_tail, None);
            assert_eq!(replay.entries, u64::from(parts));
        }
    }

    #[test]
    fn appended_parts_add_to_and_replace_saved_ones() {
        let (bytes, _) = journal_with_appends(2, &[2, 3, 3]);
        let replay = replay(&bytes).unwrap();
        assert_eq!(replay.checkpoint.parts.len(), 3);
        assert_eq!(replay.checkpoint.parts[&2], part(2, "appended"));
        assert_eq!(replay.checkpoint.parts[&3], part(3, "appended"));
        assert_eq!(replay.entries, 5);
        assert_eq!(replay.valid_end, bytes.len() as u64);
    }

    #[test]
    fn every_cut_inside_the_last_appended_record_reads_as_a_torn_tail() {
        let (bytes, starts) = journal_with_appends(1, &[2, 3]);
        let last = *starts.last().unwrap();
        for cut in last + 1..bytes.len() {
            let replay = replay(&bytes[..cut]).unwrap();
            assert_eq!(replay.checkpoint.parts.len(), 2, "cut at {cut}");
            assert_eq!(replay.valid_end, last as u64);
            assert!(replay.torn_tail.is_some());
        }
    }

    #[test]
    fn a_zero_filled_tail_reads_as_torn() {
        let (mut bytes, starts) = journal_with_appends(1, &[2]);
        let end = bytes.len();
        bytes.extend_from_slice(&[0; 4096]);
        let replay = replay(&bytes).unwrap();
        assert_eq!(replay.valid_end, end as u64);
        assert!(starts[0] < end);
        assert!(replay.torn_tail.is_some());
    }

    #[test]
    fn every_cut_inside_the_saved_journal_is_corrupt() {
        let bytes = encode(&checkpoint(3));
        for cut in 0..bytes.len() {
            assert!(
                matches!(replay(&bytes[..cut]), Err(Invalid::Corrupt(_))),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn every_flipped_byte_of_the_saved_journal_is_detected() {
        let bytes = encode(&checkpoint(3));
        for at in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x20;
            match replay(&damaged) {
                Err(Invalid::Corrupt(_)) => {}
                Err(Invalid::Unsupported(_)) if (8..12).contains(&at) => {}
                other => panic!("flip at {at} gave {other:?}"),
            }
        }
    }

    #[test]
    fn every_flipped_byte_of_an_appended_record_that_is_not_last_is_detected() {
        let (bytes, starts) = journal_with_appends(1, &[2, 3]);
        for at in starts[0]..starts[1] {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x01;
            assert!(
                matches!(replay(&damaged), Err(Invalid::Corrupt(_))),
                "flip at {at}"
            );
        }
    }

    #[test]
    fn a_future_version_is_unsupported_and_a_foreign_file_corrupt() {
        let mut bytes = encode(&checkpoint(1));
        bytes[8..12].copy_from_slice(&2u32.to_le_bytes());
        assert_eq!(replay(&bytes).unwrap_err(), Invalid::Unsupported(2));
        assert!(matches!(
            replay(b"{\"upload_id\": \"x\"}"),
            Err(Invalid::Corrupt(_))
        ));
        assert!(matches!(replay(b""), Err(Invalid::Corrupt(_))));
    }

    #[test]
    fn a_large_batch_is_split_into_records_an_append_may_hold() {
        let parts: Vec<PartRecord> = (1..=20_000).map(|n| part(n, "batch")).collect();
        let mut bytes = encode(&checkpoint(0));
        bytes.extend(encode_appended(&parts).unwrap());
        let replay = replay(&bytes).unwrap();
        assert_eq!(replay.checkpoint.parts.len(), 20_000);
        assert_eq!(replay.torn_tail, None);
    }

    #[test]
    fn a_part_too_large_for_one_record_is_refused_before_writing() {
        let mut huge = part(1, "x");
        huge.etag = "e".repeat(MAX_APPENDED_BODY);
        assert!(encode_appended(&[huge]).is_err());
    }

    #[test]
    fn the_header_reads_alone_from_its_extent() {
        let bytes = encode(&checkpoint(10));
        let extent = header_extent(&bytes[..16]).unwrap();
        let header = read_header(&bytes[..extent]).unwrap();
        assert_eq!(header.identity, checkpoint(0).identity);
        assert!(header.parts.is_empty());
    }
}
