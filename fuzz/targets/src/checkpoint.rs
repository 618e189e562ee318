//! Checkpoint decoders: the file store's journal and the codec its records are made of, which read
//! bytes a crash, a full disk or another program may have damaged.

use ossup::fuzzing::{
    decode_checkpoint_fields, decode_part, encode_appended, encode_journal, read_journal_header,
    replay_journal,
};
use ossup::store::codec::{encode_checkpoint_fields, encode_part};

/// Replays `data` as a journal. A journal that replays ends its intact records within the file,
/// agrees with its header read alone, saves again to a journal that replays to the same
/// checkpoint, and takes its own parts appended again without change.
pub fn checkpoint_journal(data: &[u8]) {
    let header = read_journal_header(data);
    let Ok(replayed) = replay_journal(data) else {
        return;
    };
    assert!(
        replayed.valid_end <= data.len() as u64,
        "intact records end at {} in a journal of {} bytes",
        replayed.valid_end,
        data.len()
    );
    if replayed.torn_tail.is_none() {
        assert_eq!(
            replayed.valid_end,
            data.len() as u64,
            "bytes past the records were kept"
        );
    }
    let checkpoint = &replayed.checkpoint;
    let mut fields_only = checkpoint.clone();
    fields_only.parts.clear();
    assert_eq!(
        header.as_ref(),
        Ok(&fields_only),
        "the header read alone differs from the replayed journal's"
    );

    let saved = encode_journal(checkpoint);
    let again = replay_journal(&saved)
        .unwrap_or_else(|e| panic!("a replayed checkpoint, saved again, does not replay: {e}"));
    assert_eq!(
        &again.checkpoint, checkpoint,
        "saving again changed the checkpoint"
    );
    assert_eq!(again.valid_end, saved.len() as u64);
    assert_eq!(again.torn_tail, None);

    let parts: Vec<_> = checkpoint.parts.values().cloned().collect();
    let appended = encode_appended(&parts)
        .unwrap_or_else(|e| panic!("parts read from a journal cannot be appended: {e}"));
    let mut extended = data[..replayed.valid_end as usize].to_vec();
    extended.extend_from_slice(&appended);
    let after = replay_journal(&extended)
        .unwrap_or_else(|e| panic!("a journal with its own parts appended does not replay: {e}"));
    assert_eq!(
        &after.checkpoint, checkpoint,
        "appending the same parts changed the checkpoint"
    );
}

/// Decodes the start of `data` as a checkpoint's fields and as a part record; what decodes
/// encodes to exactly the bytes it was read from (the encoding is canonical).
pub fn checkpoint_codec(data: &[u8]) {
    if let Ok((checkpoint, used)) = decode_checkpoint_fields(data) {
        let mut encoded = Vec::new();
        encode_checkpoint_fields(&checkpoint, &mut encoded);
        assert_eq!(
            encoded,
            data[..used],
            "checkpoint fields encode otherwise than read"
        );
    }
    if let Ok((part, used)) = decode_part(data) {
        let mut encoded = Vec::new();
        encode_part(&part, &mut encoded);
        assert_eq!(
            encoded,
            data[..used],
            "a part record encodes otherwise than read"
        );
    }
}
