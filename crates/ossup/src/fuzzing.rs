//! Entry points for the fuzz targets in `fuzz/`: the checkpoint decoders of the file journal and
//! of the codec, which read bytes from disk that a crash, a full disk or another program may have
//! damaged. Not a stable API (hidden from the docs); it follows the formats it reaches, specified
//! in `docs/checkpoint-format.md`.

use crate::checkpoint::{Checkpoint, PartRecord};
use crate::store::codec::Reader;
use crate::store::journal::{self, Invalid};

/// What a journal replays to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replayed {
    /// The checkpoint with every intact part applied.
    pub checkpoint: Checkpoint,
    /// Where the last intact record ends.
    pub valid_end: u64,
    /// Why bytes after `valid_end` were dropped, if there are any.
    pub torn_tail: Option<String>,
    /// Part entries read, replaced ones included.
    pub entries: u64,
}

/// Replays a whole journal as [`FileStore`](crate::store::FileStore) loads one; the error says
/// why it cannot be used.
pub fn replay_journal(bytes: &[u8]) -> Result<Replayed, String> {
    journal::replay(bytes)
        .map(|replay| Replayed {
            checkpoint: replay.checkpoint,
            valid_end: replay.valid_end,
            torn_tail: replay.torn_tail,
            entries: replay.entries,
        })
        .map_err(describe)
}

/// Reads only a journal's header, as listing the checkpoints does.
pub fn read_journal_header(bytes: &[u8]) -> Result<Checkpoint, String> {
    journal::read_header(bytes).map_err(describe)
}

/// The journal an atomic save writes for `checkpoint`.
pub fn encode_journal(checkpoint: &Checkpoint) -> Vec<u8> {
    journal::encode(checkpoint)
}

/// The records a group commit appends for `parts`.
pub fn encode_appended(parts: &[PartRecord]) -> Result<Vec<u8>, String> {
    journal::encode_appended(parts)
}

/// Decodes a checkpoint's fixed fields from the start of `bytes`: the checkpoint (with no parts)
/// and how many bytes it took.
pub fn decode_checkpoint_fields(bytes: &[u8]) -> Result<(Checkpoint, usize), String> {
    let mut reader = Reader::new(bytes);
    let checkpoint = reader.checkpoint_fields().map_err(|e| e.0)?;
    Ok((checkpoint, reader.position()))
}

/// Decodes one part record from the start of `bytes`: the part and how many bytes it took.
pub fn decode_part(bytes: &[u8]) -> Result<(PartRecord, usize), String> {
    let mut reader = Reader::new(bytes);
    let part = reader.part().map_err(|e| e.0)?;
    Ok((part, reader.position()))
}

fn describe(invalid: Invalid) -> String {
    match invalid {
        Invalid::Corrupt(why) => format!("corrupt: {why}"),
        Invalid::Unsupported(version) => format!("unsupported format version {version}"),
    }
}
