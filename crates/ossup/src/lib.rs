//! Resumable multipart upload to Alibaba Cloud OSS, as a pipeline of swappable parts.

pub mod checkpoint;
pub mod store;

pub use checkpoint::{Checkpoint, PartRecord, SourceStamp, UploadIdentity};
pub use store::{CheckpointStore, StoreError, StoreLock};
