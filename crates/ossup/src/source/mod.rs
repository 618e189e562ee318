//! The [`Source`] trait: positional reads of the bytes to upload, and what identifies them.
//!
//! [`FileSource`] (a file, read with `pread`) and [`BytesSource`] (bytes in memory) ship; any type
//! that can read a range at an offset can be uploaded. [`StreamSource`] is the exception: bytes of
//! unknown length read once, in order, uploaded by their own path.

mod bytes;
mod file;
mod stream;

pub use self::bytes::BytesSource;
pub use self::file::FileSource;
pub(crate) use self::stream::StreamReader;
pub use self::stream::StreamSource;

use std::fmt::Debug;
use std::io;

use crate::SourceStamp;

/// The bytes of one upload, read by position.
///
/// The engine reads each part once per send with [`read_exact_at`](Self::read_exact_at), from a
/// blocking thread (so an implementation may block), several parts at once from different threads.
///
/// ```
/// use ossup::{Source, SourceStamp};
///
/// /// A source of `len` zero bytes.
/// #[derive(Debug)]
/// struct Zeros { len: u64 }
///
/// impl Source for Zeros {
///     fn identity(&self) -> String { format!("zeros:{}", self.len) }
///     fn stamp(&self) -> std::io::Result<SourceStamp> {
///         Ok(SourceStamp { size: self.len, modified_nanos: None })
///     }
///     fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
///         if offset + buf.len() as u64 > self.len {
///             return Err(std::io::ErrorKind::UnexpectedEof.into());
///         }
///         buf.fill(0);
///         Ok(())
///     }
/// }
/// ```
pub trait Source: Send + Sync + Debug {
    /// What names this source across runs, e.g. a file's canonical path. Part of the upload's
    /// [`UploadIdentity`](crate::UploadIdentity).
    fn identity(&self) -> String;

    /// The source's size and modification time now. A stamp that differs from the checkpoint's
    /// means the source changed.
    fn stamp(&self) -> io::Result<SourceStamp>;

    /// Fills `buf` with the bytes at `offset`; fails with `UnexpectedEof` when the source ends first.
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()>;

    /// A file name for guessing the content type, when the source has one.
    fn name_hint(&self) -> Option<String> {
        None
    }
}
