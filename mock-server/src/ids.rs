//! Unique names: request ids, upload ids, and names of blob and temp files.
//!
//! Each server instance draws a random-looking nonce at start, so names stay unique across restarts on
//! the same data directory; a counter makes them unique within one run.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use ossup_proto::checksum::md5;

/// Hands out ids; one per server, shared by every connection.
#[derive(Debug)]
pub(crate) struct Ids {
    nonce: u32,
    counter: AtomicU64,
    last_upload_micros: Mutex<u128>,
}

impl Ids {
    pub(crate) fn new() -> Self {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let seed = format!("{now}-{}", std::process::id());
        let digest = md5(seed.as_bytes());
        Self {
            nonce: u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]),
            counter: AtomicU64::new(0),
            last_upload_micros: Mutex::new(0),
        }
    }

    fn next(&self) -> u64 {
        self.counter.fetch_add(1, Ordering::Relaxed)
    }

    /// An OSS-style request id: 24 uppercase hex digits.
    pub(crate) fn request_id(&self) -> String {
        format!("{:08X}{:016X}", self.nonce, self.next())
    }

    /// A file name (lowercase hex) unique across runs.
    pub(crate) fn file_name(&self) -> String {
        format!("{:08x}{:016x}", self.nonce, self.next())
    }

    /// An upload id: 32 uppercase hex digits whose first half grows with initiation time, so that
    /// sorting a key's uploads by id sorts them by initiation, as ListMultipartUploads orders them.
    pub(crate) fn upload_id(&self) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros())
            .unwrap_or(0);
        let micros = {
            let mut last = self
                .last_upload_micros
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            *last = now.max(*last + 1);
            *last
        };
        let tail = md5(format!("{}-{}", self.nonce, self.next()).as_bytes());
        format!("{:016X}{}", micros as u64, hex::encode_upper(&tail[..8]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_ids_sort_in_creation_order() {
        let ids = Ids::new();
        let a = ids.upload_id();
        let b = ids.upload_id();
        assert_eq!(a.len(), 32);
        assert!(a < b);
        assert_ne!(ids.request_id(), ids.request_id());
    }
}
