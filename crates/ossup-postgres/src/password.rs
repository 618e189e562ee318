//! Where the password comes from when the URL has none: `PGPASSWORD`, then the password file
//! (`PGPASSFILE`, else `~/.pgpass`), as libpq's tools look for it. A password never appears on a
//! command line, in a log line or in an error message.
//!
//! The file's lines are `hostname:port:database:username:password`; `*` matches anything, `\:` and
//! `\\` stand for a colon and a backslash, lines starting with `#` are comments, and the first line
//! that matches wins. A file that group or others can read is refused, as libpq refuses it.

use std::path::{Path, PathBuf};

use ossup::StoreError;

/// What a connection is about to be made to, as the password file's lines are matched against it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    /// A host name or address, or `localhost` for a Unix socket (as libpq matches it).
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) database: String,
    pub(crate) user: String,
}

/// The password for `target`: `PGPASSWORD`, else the first matching line of the password file,
/// else `None`.
pub(crate) fn lookup(target: &Target) -> Result<Option<String>, StoreError> {
    if let Some(password) = std::env::var_os("PGPASSWORD").filter(|p| !p.is_empty()) {
        return Ok(Some(password.to_string_lossy().into_owned()));
    }
    let Some(path) = password_file() else {
        return Ok(None);
    };
    from_file(&path, target)
}

fn password_file() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("PGPASSFILE").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(path));
    }
    std::env::var_os("HOME")
        .filter(|home| !home.is_empty())
        .map(|home| Path::new(&home).join(".pgpass"))
}

/// The password for `target` in the file at `path`; a missing file holds none.
pub(crate) fn from_file(path: &Path, target: &Target) -> Result<Option<String>, StoreError> {
    let metadata = match std::fs::metadata(path) {
        Ok(metadata) => metadata,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(StoreError::Io {
                location: path.display().to_string(),
                source,
            });
        }
    };
    if !metadata.is_file() {
        return Ok(None);
    }
    check_mode(path, &metadata)?;
    let text = std::fs::read_to_string(path).map_err(|source| StoreError::Io {
        location: path.display().to_string(),
        source,
    })?;
    Ok(text
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(split_fields)
        .find(|fields| matches(fields, target))
        .map(|mut fields| fields.swap_remove(4)))
}

#[cfg(unix)]
fn check_mode(path: &Path, metadata: &std::fs::Metadata) -> Result<(), StoreError> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(StoreError::Other(format!(
            "password file {} has mode {mode:04o}, open to group or others; libpq refuses such a \
             file and so does ossup: `chmod 600 {}`",
            path.display(),
            path.display()
        )));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_mode(_path: &Path, _metadata: &std::fs::Metadata) -> Result<(), StoreError> {
    Ok(())
}

/// The five fields of a line, unescaped; `None` for a line with fewer.
fn split_fields(line: &str) -> Option<Vec<String>> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(escaped) = chars.next() {
                    fields.last_mut()?.push(escaped);
                }
            }
            // The password is the rest of the line, colons included.
            ':' if fields.len() < 5 => fields.push(String::new()),
            c => fields.last_mut()?.push(c),
        }
    }
    (fields.len() == 5).then_some(fields)
}

fn matches(fields: &[String], target: &Target) -> bool {
    let field = |i: usize, value: &str| fields[i] == "*" || fields[i] == value;
    field(0, &target.host)
        && field(1, &target.port.to_string())
        && field(2, &target.database)
        && field(3, &target.user)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn target() -> Target {
        Target {
            host: "db.example".into(),
            port: 5432,
            database: "ossup".into(),
            user: "alice".into(),
        }
    }

    fn file_with(text: &str, mode: u32) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pgpass");
        std::fs::write(&path, text).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        (dir, path)
    }

    #[test]
    fn the_first_matching_line_wins_and_wildcards_match_anything() {
        let (_dir, path) = file_with(
            "# a comment:*:*:*:nope\n\
             other.host:5432:ossup:alice:wrong-host\n\
             db.example:5433:ossup:alice:wrong-port\n\
             db.example:*:ossup:alice:right\n\
             *:*:*:*:too-late\n",
            0o600,
        );
        assert_eq!(
            from_file(&path, &target()).unwrap().as_deref(),
            Some("right")
        );
    }

    #[test]
    fn escaped_colons_and_backslashes_are_unescaped_and_the_password_keeps_its_colons() {
        let (_dir, path) = file_with("db.example:5432:ossup:al\\:ice:p\\\\w:with:colons\n", 0o600);
        let mut target = target();
        target.user = "al:ice".into();
        assert_eq!(
            from_file(&path, &target).unwrap().as_deref(),
            Some("p\\w:with:colons")
        );
    }

    #[test]
    fn no_matching_line_and_no_file_give_no_password() {
        let (dir, path) = file_with("db.example:5432:other:alice:x\nshort:line\n", 0o600);
        assert_eq!(from_file(&path, &target()).unwrap(), None);
        assert_eq!(
            from_file(&dir.path().join("missing"), &target()).unwrap(),
            None
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_file_open_to_others_is_refused_and_the_error_does_not_show_the_password() {
        let (_dir, path) = file_with("*:*:*:*:secret-value\n", 0o644);
        let err = from_file(&path, &target()).unwrap_err().to_string();
        assert!(err.contains("chmod 600") && err.contains("0644"), "{err}");
        assert!(!err.contains("secret-value"), "{err}");
    }
}
