//! Crash-safe file operations: atomic writes, sweeping the temp files of killed writers, and
//! setting damaged journals aside.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::store::{private_file_options, restrict_to_owner};

/// Removes `<name>.tmp-<pid>-<n>` files whose writer process is gone: a save killed before its rename
/// leaves one, and nothing else would ever remove it. A file whose process id is alive is kept (it may
/// be a save under way in another process), and so is everything when `/proc` cannot tell.
pub(super) fn remove_stale_temp_files(dir: &Path) {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(writer) = name.to_str().and_then(temp_file_writer) else {
            continue;
        };
        if writer != std::process::id() && !Path::new(&format!("/proc/{writer}")).exists() {
            match fs::remove_file(entry.path()) {
                Ok(()) => {
                    tracing::debug!(path = %entry.path().display(), "removed a checkpoint temp file left by a killed process")
                }
                Err(err) => {
                    tracing::warn!(path = %entry.path().display(), %err, "cannot remove a stale checkpoint temp file")
                }
            }
        }
    }
}

/// The process id in a temp file name written by [`write_atomically`], if `name` is one.
pub(super) fn temp_file_writer(name: &str) -> Option<u32> {
    let (_, suffix) = name.rsplit_once(".tmp-")?;
    let (pid, sequence) = suffix.split_once('-')?;
    sequence.parse::<u64>().ok()?;
    pid.parse().ok()
}

/// Writes `bytes` to `path` so that a crash leaves either the old file or the whole new one, and
/// returns the new file opened for appending.
pub(super) fn write_atomically(dir: &Path, path: &Path, bytes: &[u8]) -> io::Result<File> {
    static SEQUENCE: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .and_then(|name| name.to_str())
        .unwrap_or("checkpoint");
    let temp = dir.join(format!(
        "{name}.tmp-{}-{}",
        std::process::id(),
        SEQUENCE.fetch_add(1, Ordering::Relaxed)
    ));
    // Owner-only from the start (the rename keeps the mode), so no other user ever reads a checkpoint.
    let mut file = private_file_options()
        .read(true)
        .append(true)
        .create_new(true)
        .open(&temp)?;
    let written = restrict_to_owner(&file, &temp)
        .and_then(|()| file.write_all(bytes))
        .and_then(|()| file.sync_all())
        .and_then(|()| fs::rename(&temp, path));
    if let Err(err) = written {
        let _ = fs::remove_file(&temp);
        return Err(err);
    }
    sync_dir(dir)?;
    Ok(file)
}

/// Moves a damaged file to `<name>.corrupt-<unix time>` (with a counter if that exists).
pub(super) fn set_aside(path: &Path, dir: &Path) -> io::Result<PathBuf> {
    let unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let name = path
        .file_name()
        .and_then(|name| name.to_str())
        .unwrap_or("checkpoint");
    for n in 0..1000 {
        let target = if n == 0 {
            dir.join(format!("{name}.corrupt-{unix}"))
        } else {
            dir.join(format!("{name}.corrupt-{unix}-{n}"))
        };
        if target.exists() {
            continue;
        }
        fs::rename(path, &target)?;
        sync_dir(dir)?;
        return Ok(target);
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        "a thousand set-aside copies already exist for this second",
    ))
}

pub(super) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(unix)]
pub(super) fn same_file(file: &File, path: &Path) -> io::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let open = file.metadata()?;
    let named = fs::metadata(path)?;
    Ok(open.dev() == named.dev() && open.ino() == named.ino())
}

#[cfg(not(unix))]
pub(super) fn same_file(_file: &File, path: &Path) -> io::Result<bool> {
    // Without inode numbers, trust the handle while the path exists.
    fs::metadata(path).map(|_| true)
}
