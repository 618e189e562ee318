//! Crash-safe file primitives: atomic JSON records (temp file, fsync, rename, fsync directory) and
//! directory syncing.
//!
//! A record is either wholly the old version or wholly the new one after a crash at any point: the new
//! bytes reach disk in a temp file first and only a rename, which the file system performs atomically,
//! makes them visible under the record's name.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Writes `value` as JSON to `dest` atomically, staging it in `tmp_dir` (same file system) as `tmp_name`.
pub(crate) fn write_json_atomic<T: Serialize>(
    tmp_dir: &Path,
    tmp_name: &str,
    dest: &Path,
    value: &T,
) -> io::Result<()> {
    let bytes = serde_json::to_vec(value).map_err(io::Error::other)?;
    let tmp = tmp_dir.join(tmp_name);
    let result = (|| {
        let mut file = File::create_new(&tmp)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, dest)?;
        sync_parent(dest)
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
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Syncs the directory that holds `path`.
pub(crate) fn sync_parent(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(parent) => sync_dir(parent),
        None => Ok(()),
    }
}

/// Removes a file and syncs its directory; a file that is already gone is not an error.
pub(crate) fn remove_file_durably(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Ok(()) => sync_parent(path),
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
        write_json_atomic(&tmp, "a.tmp", &dest, &vec![1, 2, 3]).unwrap();
        write_json_atomic(&tmp, "b.tmp", &dest, &vec![4]).unwrap();
        let back: Vec<i32> = read_json(&dest).unwrap();
        assert_eq!(back, vec![4]);
        assert_eq!(fs::read_dir(&tmp).unwrap().count(), 0);
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
