//! [`FileSource`]: a file on disk, read with positional reads.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use super::Source;
use crate::{Error, SourceStamp};

/// A file, read with `pread` (no shared cursor, so parts are read in parallel).
///
/// Its identity is the canonical absolute path; its stamp is the size and modification time.
#[derive(Debug)]
pub struct FileSource {
    file: File,
    path: PathBuf,
}

impl FileSource {
    /// Opens `path` for reading.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        let canonical = path
            .canonicalize()
            .map_err(|e| Error::source_io(format!("cannot open {}", path.display()), e))?;
        let file = File::open(&canonical)
            .map_err(|e| Error::source_io(format!("cannot open {}", path.display()), e))?;
        let meta = file
            .metadata()
            .map_err(|e| Error::source_io(format!("cannot stat {}", path.display()), e))?;
        if !meta.is_file() {
            return Err(Error::unsupported_source(format!(
                "{} is not a regular file (a directory, device or pipe has no fixed size and cannot be read by position); upload a regular file",
                path.display()
            )));
        }
        Ok(Self {
            file,
            path: canonical,
        })
    }

    /// The canonical path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Source for FileSource {
    fn identity(&self) -> String {
        self.path.to_string_lossy().into_owned()
    }

    fn stamp(&self) -> io::Result<SourceStamp> {
        // Stat the path, not the open handle: a file replaced by rename is a changed source.
        let meta = std::fs::metadata(&self.path)?;
        let modified_nanos = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_nanos() as i128);
        Ok(SourceStamp {
            size: meta.len(),
            modified_nanos,
        })
    }

    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        read_exact_at(&self.file, offset, buf)
    }

    fn name_hint(&self) -> Option<String> {
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
    }
}

#[cfg(unix)]
fn read_exact_at(file: &File, offset: u64, buf: &mut [u8]) -> io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

#[cfg(windows)]
fn read_exact_at(file: &File, mut offset: u64, mut buf: &mut [u8]) -> io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        match file.seek_read(buf, offset) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_ranges_and_reports_a_short_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.bin");
        std::fs::write(&path, b"0123456789").unwrap();
        let source = FileSource::open(&path).unwrap();
        let mut buf = [0u8; 4];
        source.read_exact_at(3, &mut buf).unwrap();
        assert_eq!(&buf, b"3456");
        assert_eq!(
            source.read_exact_at(8, &mut buf).unwrap_err().kind(),
            io::ErrorKind::UnexpectedEof
        );
        assert_eq!(source.stamp().unwrap().size, 10);
        assert_eq!(source.name_hint().as_deref(), Some("f.bin"));
        assert!(source.identity().ends_with("f.bin"));
    }

    #[test]
    fn a_missing_file_names_its_path() {
        let err = FileSource::open("/nonexistent/dir/file").unwrap_err();
        assert!(err.to_string().contains("/nonexistent/dir/file"));
    }
}
