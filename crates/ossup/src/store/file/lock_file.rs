//! Claiming an upload through an advisory lock on its `<name>.lock` file.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use super::disk::same_file;
use super::io_error;
use crate::checkpoint::UploadIdentity;
use crate::store::{StoreError, StoreLock, private_file_options, restrict_to_owner};

/// Holds the advisory lock on an upload's lock file; dropping it removes the file and unlocks.
#[derive(Debug)]
struct LockFile {
    file: File,
    path: PathBuf,
}

impl Drop for LockFile {
    fn drop(&mut self) {
        // Removed while still locked, so a process that opened the old file before the removal sees,
        // once it gets the lock, that the path no longer names its file, and starts over.
        let _ = fs::remove_file(&self.path);
        let _ = self.file.unlock();
    }
}

pub(super) fn claim_lock_file(
    path: &Path,
    identity: &UploadIdentity,
) -> Result<StoreLock, StoreError> {
    const ATTEMPTS: usize = 16;
    for _ in 0..ATTEMPTS {
        // Not through a link, and not truncated before it is known to be our own lock file: a link
        // or a hard link planted at this name must not let the write below clobber another file.
        let mut file = private_file_options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|err| io_error(path, refuse_link(err)))?;
        check_lock_file(&file, path)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                let holder = if holder.is_empty() {
                    format!(
                        "another process, which has not yet written its pid to {}",
                        path.display()
                    )
                } else if holder.starts_with(&format!("pid {} ", std::process::id())) {
                    format!("{holder}, this very process")
                } else {
                    holder.to_string()
                };
                return Err(StoreError::InUse {
                    identity: identity.to_string(),
                    holder,
                });
            }
            Err(fs::TryLockError::Error(err)) => return Err(io_error(path, err)),
        }
        if !same_file(&file, path).unwrap_or(false) {
            // The previous holder removed the file between our open and our lock.
            continue;
        }
        let holder = format!("pid {} on {}\n", std::process::id(), host_name());
        file.set_len(0)
            .and_then(|()| file.write_all(holder.as_bytes()))
            .map_err(|err| io_error(path, err))?;
        return Ok(StoreLock::held_by(LockFile {
            file,
            path: path.to_path_buf(),
        }));
    }
    Err(StoreError::Other(format!(
        "could not claim {} after {ATTEMPTS} attempts: the lock file keeps being replaced",
        path.display()
    )))
}

/// `O_NOFOLLOW` on a symbolic link fails with `ELOOP`: say what that means.
fn refuse_link(err: io::Error) -> io::Error {
    #[cfg(unix)]
    if err.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) {
        return io::Error::new(
            err.kind(),
            "the lock file is a symbolic link, which ossup never makes: remove it",
        );
    }
    err
}

/// Refuses a lock file that is not a plain file of this user's with one name: writing the holder
/// into anything else (a device, a hard link to some other file) would damage it.
fn check_lock_file(file: &File, path: &Path) -> Result<(), StoreError> {
    let meta = file.metadata().map_err(|err| io_error(path, err))?;
    let refuse = |why: &str| {
        Err(StoreError::Other(format!(
            "the lock file {} {why}, which ossup never makes; remove it and run again",
            path.display()
        )))
    };
    if !meta.is_file() {
        return refuse("is not a regular file");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if meta.nlink() > 1 {
            return refuse("has other names (hard links)");
        }
        if meta.uid() != rustix::process::geteuid().as_raw() {
            return refuse(&format!("belongs to another user (uid {})", meta.uid()));
        }
    }
    restrict_to_owner(file, path).map_err(|err| io_error(path, err))
}

fn host_name() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_string())
        .ok()
        .filter(|name| !name.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "an unknown host".into())
}
