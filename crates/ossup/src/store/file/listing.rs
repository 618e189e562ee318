//! Listing the uploads that have a journal, reading only each journal's header.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::Path;

use super::io_error;
use crate::checkpoint::{Checkpoint, UploadIdentity};
use crate::store::StoreError;
use crate::store::journal::{self, Invalid};

pub(super) fn list_journals(dir: &Path) -> Result<Vec<UploadIdentity>, StoreError> {
    let entries = fs::read_dir(dir).map_err(|err| io_error(dir, err))?;
    let mut identities = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|err| io_error(dir, err))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.len() != 64 || !name.bytes().all(|b| b.is_ascii_hexdigit()) {
            continue;
        }
        let path = entry.path();
        match read_journal_header(&path) {
            Ok(Some(checkpoint)) if checkpoint.identity.fingerprint() == name => {
                identities.push(checkpoint.identity);
            }
            Ok(None) => {}
            // A damaged journal is reported and set aside by `load` of its identity; listing only
            // says which uploads have a usable checkpoint.
            Ok(Some(_)) => {
                tracing::warn!(journal = %path.display(), "skipping a journal whose header names another upload")
            }
            Err(reason) => {
                tracing::warn!(journal = %path.display(), "skipping an unreadable journal: {reason}")
            }
        }
    }
    identities.sort();
    Ok(identities)
}

/// The header of the journal at `path`, reading only as far as the header record; `None` when the
/// file disappeared meanwhile.
fn read_journal_header(path: &Path) -> Result<Option<Checkpoint>, String> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(err.to_string()),
    };
    let mut first = Vec::with_capacity(16);
    file.take(16)
        .read_to_end(&mut first)
        .map_err(|err| err.to_string())?;
    let Some(extent) = journal::header_extent(&first) else {
        return Err("no valid header record".into());
    };
    let mut bytes = Vec::with_capacity(extent);
    File::open(path)
        .and_then(|file| file.take(extent as u64).read_to_end(&mut bytes))
        .map_err(|err| err.to_string())?;
    match journal::read_header(&bytes) {
        Ok(checkpoint) => Ok(Some(checkpoint)),
        Err(Invalid::Unsupported(version)) => Err(format!(
            "format version {version} is newer than this ossup reads"
        )),
        Err(Invalid::Corrupt(reason)) => Err(reason),
    }
}
