//! [`BytesSource`]: bytes in memory.

use std::io;

use bytes::Bytes;

use super::Source;
use crate::SourceStamp;

/// Bytes in memory, named by an identity of the caller's choosing.
///
/// It has no modification time: its stamp is its size alone, so give a different identity to
/// different contents of the same size if they must not resume each other's uploads.
///
/// ```
/// let source = ossup::BytesSource::new("hello", "greeting:v1");
/// assert_eq!(ossup::Source::stamp(&source).unwrap().size, 5);
/// ```
#[derive(Debug, Clone)]
pub struct BytesSource {
    data: Bytes,
    identity: String,
    name: Option<String>,
}

impl BytesSource {
    /// `data`, known across runs as `identity`.
    pub fn new(data: impl Into<Bytes>, identity: impl Into<String>) -> Self {
        Self {
            data: data.into(),
            identity: identity.into(),
            name: None,
        }
    }

    /// Gives a file name for guessing the content type.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The bytes.
    pub fn data(&self) -> &Bytes {
        &self.data
    }
}

impl Source for BytesSource {
    fn identity(&self) -> String {
        self.identity.clone()
    }

    fn stamp(&self) -> io::Result<SourceStamp> {
        Ok(SourceStamp {
            size: self.data.len() as u64,
            modified_nanos: None,
        })
    }

    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let start =
            usize::try_from(offset).map_err(|_| io::Error::from(io::ErrorKind::UnexpectedEof))?;
        let end = start
            .checked_add(buf.len())
            .filter(|&end| end <= self.data.len())
            .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
        buf.copy_from_slice(&self.data[start..end]);
        Ok(())
    }

    fn name_hint(&self) -> Option<String> {
        self.name.clone()
    }
}
