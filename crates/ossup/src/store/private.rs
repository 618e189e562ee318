//! Owner-only files and directories: the modes every on-disk store creates its files with, and the
//! check that refuses a checkpoint directory other users can write to.
//!
//! A checkpoint names an upload id, a bucket, a key and the path of a local file; a lock file and a
//! digest log sit beside it. None of it is secret like a credential, but all of it is private, and a
//! directory that someone else can write to lets them remove, replace or plant those files (a
//! planted symbolic link at a predictable name, say). So files are created `0600` and directories
//! `0700` whatever the umask, and a directory open to other users is refused, as OpenSSH's
//! `StrictModes` refuses a `~/.ssh` that others can write to.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

use super::StoreError;

/// The mode of every file a store creates: read and write for its owner only.
pub const PRIVATE_FILE_MODE: u32 = 0o600;

/// The mode of every directory a store creates: its owner only.
pub const PRIVATE_DIR_MODE: u32 = 0o700;

/// [`OpenOptions`] that create a file owner-only ([`PRIVATE_FILE_MODE`]) and, on Unix, refuse to
/// follow a symbolic link at the path's last component (`O_NOFOLLOW`), so a link planted at a
/// checkpoint's name cannot redirect a write to another file.
///
/// Add the access and creation flags as usual; [`restrict_to_owner`] then fixes the mode of a file
/// the umask or an earlier version left more open.
///
/// ```
/// # fn main() -> std::io::Result<()> {
/// # let dir = tempfile::tempdir()?;
/// let path = dir.path().join("notes");
/// let file = ossup::store::private_file_options().write(true).create(true).open(&path)?;
/// ossup::store::restrict_to_owner(&file, &path)?;
/// # #[cfg(unix)] {
/// use std::os::unix::fs::PermissionsExt;
/// assert_eq!(file.metadata()?.permissions().mode() & 0o777, 0o600);
/// # }
/// # Ok(()) }
/// ```
pub fn private_file_options() -> OpenOptions {
    let mut options = OpenOptions::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options
            .mode(PRIVATE_FILE_MODE)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32);
    }
    options
}

/// Makes the open `file` (at `path`, for the error) owner-only when its mode says otherwise: the
/// umask cannot widen a mode given at creation, but a file created by an earlier version, or by a
/// library that picks its own mode (SQLite creates its database `0644`), may be more open.
pub fn restrict_to_owner(file: &File, path: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = file.metadata()?.permissions().mode() & 0o7777;
        if mode != PRIVATE_FILE_MODE {
            file.set_permissions(std::fs::Permissions::from_mode(PRIVATE_FILE_MODE))
                .map_err(|err| not_restricted(path, err))?;
        }
    }
    #[cfg(not(unix))]
    let _ = (file, path);
    Ok(())
}

/// [`restrict_to_owner`] by path, without opening the file: for a file another library holds
/// POSIX locks on (SQLite's database, -wal and -shm), since closing any descriptor of a file drops
/// every such lock this process holds on it.
///
/// ```
/// # fn main() -> std::io::Result<()> {
/// # let dir = tempfile::tempdir()?;
/// let path = dir.path().join("state.db");
/// std::fs::write(&path, b"")?;
/// ossup::store::restrict_path_to_owner(&path)?;
/// # #[cfg(unix)] {
/// use std::os::unix::fs::PermissionsExt;
/// assert_eq!(std::fs::metadata(&path)?.permissions().mode() & 0o777, 0o600);
/// # }
/// # Ok(()) }
/// ```
pub fn restrict_path_to_owner(path: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)?.permissions().mode() & 0o7777;
        if mode != PRIVATE_FILE_MODE {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(PRIVATE_FILE_MODE))
                .map_err(|err| not_restricted(path, err))?;
        }
    }
    #[cfg(not(unix))]
    std::fs::metadata(path)?;
    Ok(())
}

#[cfg(unix)]
fn not_restricted(path: &Path, err: io::Error) -> io::Error {
    io::Error::new(
        err.kind(),
        format!(
            "cannot make {} readable by its owner only (chmod 600): {err}",
            path.display()
        ),
    )
}

/// Creates `dir` and its missing parents owner-only ([`PRIVATE_DIR_MODE`]), then checks it with
/// [`check_private_dir`]. A directory that exists already keeps its mode: it is only checked.
pub fn create_private_dir(dir: &Path) -> Result<(), StoreError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(PRIVATE_DIR_MODE);
    }
    builder.create(dir).map_err(|source| StoreError::Io {
        location: dir.display().to_string(),
        source,
    })?;
    check_private_dir(dir)
}

/// Refuses a checkpoint directory other users could write to, as OpenSSH's `StrictModes` does:
/// with [`StoreError::NotPrivate`] saying what is wrong and how to fix it.
///
/// On Unix, `dir` (a link is followed: the directory used is the one checked) is refused when
/// - it belongs to another user than the one running (root's directories excepted), who can
///   replace its files whatever its mode;
/// - group or others may write to it and it is not the running user's;
/// - everybody may write to it and it lacks the sticky bit (then anyone can remove or rename the
///   files in it).
///
/// A directory of the running user that its group may write to is accepted: on systems that give
/// each user a group of their own (`umask 002`), that is every directory the user makes. Elsewhere
/// the check passes.
pub fn check_private_dir(dir: &Path) -> Result<(), StoreError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(dir).map_err(|source| StoreError::Io {
            location: dir.display().to_string(),
            source,
        })?;
        if !meta.is_dir() {
            return Err(StoreError::Io {
                location: dir.display().to_string(),
                source: io::Error::new(
                    io::ErrorKind::NotADirectory,
                    "it is not a directory; name a directory for the checkpoints",
                ),
            });
        }
        let me = rustix::process::geteuid().as_raw();
        if let Some((problem, fix)) = judge_dir(meta.mode(), meta.uid(), me, dir) {
            return Err(StoreError::NotPrivate {
                location: dir.display().to_string(),
                problem,
                fix,
            });
        }
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// What is wrong with a directory of `mode` owned by `owner`, for the user `me`, and how to fix it;
/// `None` when nothing is.
#[cfg(unix)]
fn judge_dir(mode: u32, owner: u32, me: u32, dir: &Path) -> Option<(String, String)> {
    const GROUP_WRITE: u32 = 0o020;
    const OTHER_WRITE: u32 = 0o002;
    const STICKY: u32 = 0o1000;
    let shown = shell_quoted(dir);
    let chmod = format!("make it private with `chmod 700 {shown}`, or use another directory");
    let mine = owner == me;
    if !mine && owner != 0 {
        return Some((
            format!(
                "it belongs to another user (uid {owner}), who can remove, replace or plant checkpoints in it"
            ),
            format!(
                "use a directory of your own, or take this one over with `chown {me} {shown} && chmod 700 {shown}`"
            ),
        ));
    }
    let mode_text = format!("{:04o}", mode & 0o7777);
    if mode & OTHER_WRITE != 0 && mode & STICKY == 0 {
        return Some((
            format!(
                "every user may write to it (mode {mode_text}, no sticky bit), so anyone can remove, replace or plant checkpoints in it"
            ),
            chmod,
        ));
    }
    if !mine && mode & (GROUP_WRITE | OTHER_WRITE) != 0 {
        return Some((
            format!(
                "other users may write to it (mode {mode_text}) and it is not yours (it belongs to uid {owner}), so they can plant checkpoints in it"
            ),
            format!("use a directory of your own (`mkdir -m 700 DIR`), or {chmod}"),
        ));
    }
    None
}

/// `path` as a POSIX shell word, quoted when it needs to be.
#[cfg(unix)]
fn shell_quoted(path: &Path) -> String {
    let text = path.display().to_string();
    let safe = |c: char| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c);
    if !text.is_empty() && text.chars().all(safe) {
        text
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

/// Runs the test `name` (its full path) again in a child process of this test binary with a
/// umask of 000, and there runs `work`: the umask is the whole process's, and tests running beside
/// one that widened it would create their files under it. Returns in the parent once the child
/// passed.
#[cfg(all(test, unix))]
pub(crate) fn under_umask_000(name: &str, work: impl FnOnce()) {
    const CHILD: &str = "OSSUP_TEST_UNDER_UMASK_000";
    if std::env::var_os(CHILD).is_some() {
        rustix::process::umask(rustix::fs::Mode::empty());
        work();
        return;
    }
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("the test binary: {e}"));
    let output = std::process::Command::new(exe)
        .args([name, "--exact", "--test-threads=1", "--nocapture"])
        .env(CHILD, "1")
        .output()
        .unwrap_or_else(|e| panic!("running {name} in a child: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{name} under umask 000:\n{text}");
    assert!(
        text.contains("1 passed"),
        "{name} did not run in the child:\n{text}"
    );
}

/// Every directory below `root` (itself excluded) with its mode, and every file with its mode.
#[cfg(all(test, unix))]
pub(crate) fn modes_below(root: &Path) -> Vec<(std::path::PathBuf, u32)> {
    use std::os::unix::fs::PermissionsExt;
    let mut found = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.expect("a directory entry").path();
            let meta = std::fs::symlink_metadata(&path).expect("the entry's metadata");
            found.push((path.clone(), meta.permissions().mode() & 0o7777));
            if meta.is_dir() {
                pending.push(path);
            }
        }
    }
    found.sort();
    found
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn directories_open_to_other_users_are_judged_like_strict_modes() {
        let dir = Path::new("/data/check points");
        let me = 1000;
        // Private, or group-writable but ours (a user-private group): fine.
        assert_eq!(judge_dir(0o700, me, me, dir), None);
        assert_eq!(judge_dir(0o755, me, me, dir), None);
        assert_eq!(judge_dir(0o775, me, me, dir), None);
        // World-writable with the sticky bit, like /tmp, is ours to use only if it is ours.
        assert_eq!(judge_dir(0o1777, me, me, dir), None);
        let (problem, fix) = judge_dir(0o1777, 0, me, dir).unwrap();
        assert!(problem.contains("not yours"), "{problem}");
        assert!(fix.contains("chmod 700 '/data/check points'"), "{fix}");
        // World-writable without the sticky bit: refused even when ours.
        let (problem, fix) = judge_dir(0o777, me, me, dir).unwrap();
        assert!(problem.contains("every user may write"), "{problem}");
        assert!(problem.contains("0777"), "{problem}");
        assert!(fix.contains("chmod 700"), "{fix}");
        // Root's group-writable directory, used by someone else.
        assert!(judge_dir(0o775, 0, me, dir).is_some());
        // Root's private-to-root-writes directory: nobody else can write to it.
        assert_eq!(judge_dir(0o755, 0, me, dir), None);
        // Another user's directory, whatever its mode.
        let (problem, fix) = judge_dir(0o700, 1001, me, dir).unwrap();
        assert!(problem.contains("another user (uid 1001)"), "{problem}");
        assert!(fix.contains("chown 1000"), "{fix}");
    }

    #[test]
    fn a_world_writable_directory_is_refused_with_the_fix() {
        let scratch = tempfile::tempdir().unwrap();
        let dir = scratch.path().join("open");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = create_private_dir(&dir).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, StoreError::NotPrivate { .. }), "{err:?}");
        assert!(text.contains("every user may write"), "{text}");
        assert!(
            text.contains(&format!("chmod 700 {}", dir.display())),
            "{text}"
        );
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        create_private_dir(&dir).unwrap();
    }

    #[test]
    fn a_file_that_is_not_a_directory_is_refused() {
        let scratch = tempfile::tempdir().unwrap();
        let file = scratch.path().join("plain");
        std::fs::write(&file, b"x").unwrap();
        assert!(matches!(
            check_private_dir(&file),
            Err(StoreError::Io { .. })
        ));
    }

    #[test]
    fn private_options_do_not_follow_a_planted_link() {
        let scratch = tempfile::tempdir().unwrap();
        let target = scratch.path().join("target");
        std::fs::write(&target, b"keep me").unwrap();
        let link = scratch.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let err = private_file_options()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&link)
            .unwrap_err();
        // ELOOP: the link is not followed.
        assert_eq!(
            err.raw_os_error(),
            Some(rustix::io::Errno::LOOP.raw_os_error()),
            "{err}"
        );
        assert_eq!(std::fs::read(&target).unwrap(), b"keep me");
    }

    #[test]
    fn a_wider_mode_is_narrowed_to_the_owner() {
        let scratch = tempfile::tempdir().unwrap();
        let path = scratch.path().join("wide");
        std::fs::write(&path, b"x").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let file = File::open(&path).unwrap();
        restrict_to_owner(&file, &path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o7777, 0o600);
    }
}
