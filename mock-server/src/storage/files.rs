//! Crash-safe file primitives: atomic JSON records (temp file, fsync, rename, fsync directory) and
//! directory syncing.
//!
//! A record is either wholly the old version or wholly the new one after a crash at any point: the new
//! bytes reach disk in a temp file first and only a rename, which the file system performs atomically,
//! makes them visible under the record's name.
//!
//! Every fsync here is skipped under [`Durability::ProcessCrash`]; the temp-file-then-rename order is
//! kept, which is all a killed process needs (the page cache outlives it). Only a power loss or an
//! operating-system crash needs the fsyncs.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::config::Durability;

/// Writes `value` as JSON to `dest` atomically, staging it in `tmp_dir` (same file system) as `tmp_name`.
pub(crate) fn write_json_atomic<T: Serialize>(
    tmp_dir: &Path,
    tmp_name: &str,
    dest: &Path,
    value: &T,
    durability: Durability,
) -> io::Result<()> {
    let bytes = serde_json::to_vec(value).map_err(io::Error::other)?;
    let tmp = tmp_dir.join(tmp_name);
    // A name that is taken is someone else's file: fail without touching it.
    let file = File::create_new(&tmp)?;
    let result = (|| {
        let mut file = file;
        file.write_all(&bytes)?;
        if durability.fsyncs() {
            file.sync_all()?;
        }
        drop(file);
        fs::rename(&tmp, dest)?;
        sync_parent(dest, durability)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Reads a JSON record written by [`write_json_atomic`].
pub(crate) fn read_json<T: DeserializeOwned>(path: &Path) -> io::Result<T> {
    let bytes = fs::read(path)?;
    serde_json::from_slice(&bytes).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {e}", path.display()),
        )
    })
}

/// Makes the creation, rename or removal of entries in `dir` durable.
pub(crate) fn sync_dir(dir: &Path, durability: Durability) -> io::Result<()> {
    if durability.fsyncs() {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Syncs the directory that holds `path`.
pub(crate) fn sync_parent(path: &Path, durability: Durability) -> io::Result<()> {
    match path.parent() {
        Some(parent) => sync_dir(parent, durability),
        None => Ok(()),
    }
}

/// Removes a file and syncs its directory; a file that is already gone is not an error.
pub(crate) fn remove_file_durably(path: &Path, durability: Durability) -> io::Result<()> {
    match fs::remove_file(path) {
        Ok(()) => sync_parent(path, durability),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Removes a directory tree; one that is already gone is not an error.
pub(crate) fn remove_dir_all_quietly(path: &Path) -> io::Result<()> {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_the_record_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let tmp = dir.path().join("tmp");
        fs::create_dir(&tmp).unwrap();
        let dest = dir.path().join("record.json");
        write_json_atomic(&tmp, "a.tmp", &dest, &vec![1, 2, 3], Durability::PowerLoss).unwrap();
        write_json_atomic(&tmp, "b.tmp", &dest, &vec![4], Durability::PowerLoss).unwrap();
        let back: Vec<i32> = read_json(&dest).unwrap();
        assert_eq!(back, vec![4]);
        assert_eq!(fs::read_dir(&tmp).unwrap().count(), 0);
    }

    #[test]
    fn atomic_write_without_fsync_still_stages_and_renames() {
        let dir = tempfile::tempdir().unwrap();
        let tmp = dir.path().join("tmp");
        fs::create_dir(&tmp).unwrap();
        let dest = dir.path().join("record.json");
        write_json_atomic(&tmp, "a.tmp", &dest, &vec![7], Durability::ProcessCrash).unwrap();
        let back: Vec<i32> = read_json(&dest).unwrap();
        assert_eq!(back, vec![7]);
        assert_eq!(fs::read_dir(&tmp).unwrap().count(), 0);
        // A temp name that is taken fails the write and leaves both files untouched.
        fs::write(tmp.join("b.tmp"), b"other").unwrap();
        write_json_atomic(&tmp, "b.tmp", &dest, &vec![8], Durability::ProcessCrash).unwrap_err();
        assert_eq!(read_json::<Vec<i32>>(&dest).unwrap(), vec![7]);
        assert_eq!(fs::read(tmp.join("b.tmp")).unwrap(), b"other");
    }

    #[test]
    fn reading_a_corrupt_record_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.json");
        fs::write(&path, b"{not json").unwrap();
        let err = read_json::<Vec<i32>>(&path).unwrap_err();
        assert!(err.to_string().contains("bad.json"));
    }
}
