//! Resumable multipart upload to Alibaba Cloud OSS, as a pipeline of swappable parts.
//!
//! An upload survives a dropped connection, a 503 storm, a killed process, a torn checkpoint and a
//! source edited between runs: run it again and it resumes from what the server really holds, sends
//! again only what it must, and the object it completes is byte-identical to the source (MD5 per part,
//! CRC-64 of the whole), or it stops with an error that says what failed and where.
//!
//! # The pieces
//! Each piece is a small trait with the stock implementations beside it; swap any of them.
//! - [`Transport`]: sends one HTTP request ([`HyperTransport`] by default, feature `hyper`). The
//!   [`retry`] layer (classified retries, backoff, timeouts, stall detection) and the
//!   [`signing`] layer wrap it.
//! - [`CheckpointStore`]: remembers an upload between runs ([`FileStore`], [`MemoryStore`]).
//! - [`PartScheduler`]: decides which parts go when and how many at once ([`Sequential`],
//!   [`Parallel`]).
//! - [`Source`]: the bytes, read by position ([`FileSource`], [`BytesSource`]).
//! - [`ProgressSink`]: hears [`ProgressEvent`]s (a closure or a channel).
//! - [`Client`]: the OSS APIs, one request each, for listing and aborting uploads or reading
//!   objects back.
//!
//! # Example
//! One dependency is enough: `ossup` re-exports the credentials, the signers and (with the default
//! feature `hyper`) the stock transport, which the builder uses when given none.
//! ```no_run
//! # async fn run() -> Result<(), ossup::Error> {
//! use ossup::{Credentials, FileSource, FileStore, ObjectOptions, Parallel, UploadRequest, Uploader, V4Signer};
//!
//! let uploader = Uploader::builder()
//!     .endpoint("http://127.0.0.1:9000")?      // path-style for IP/localhost endpoints
//!     .credentials(Credentials::new("test-ak", "test-sk"))
//!     .signer(V4Signer::new("cn-hangzhou"))    // an IP endpoint does not name its region
//!     .store(FileStore::open("/var/lib/ossup/checkpoints")?)
//!     .scheduler(Parallel::new(4))
//!     .build()?;
//!
//! let outcome = uploader
//!     .upload(
//!         UploadRequest::new(FileSource::open("/data/big.iso")?, "bucket", "isos/big.iso")
//!             .part_size(8 << 20)
//!             .options(ObjectOptions::default().content_type("application/x-iso9660-image"))
//!             .progress(|event: &ossup::ProgressEvent| eprintln!("{event:?}")),
//!     )
//!     .await?;
//! println!("{} bytes sent, {} reused, CRC-64 {}", outcome.bytes_sent, outcome.bytes_reused, outcome.crc64);
//! # Ok(()) }
//! ```
//!
//! `docs/architecture.md` in the repository shows how a request flows through these pieces and where
//! each guarantee lives.

#![deny(missing_docs)]

mod batch;
pub mod blocking;
pub mod checkpoint;
pub mod store;

mod buffer;
mod callback;
mod client;
mod clock;
mod default_transport;
mod endpoint;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod options;
pub mod plan;
mod progress;
mod rate_limit;
pub mod retry;
mod scheduler;
pub mod signing;
mod source;
mod upload;
mod wire;

pub use batch::{Batch, BatchItem, BatchRun, BatchSummary, FileOutcome, FileStatus, SkipReason};
pub use checkpoint::{Checkpoint, PartRecord, SourceStamp, UploadIdentity};
pub use store::{CheckpointStore, StoreError, StoreLock};
pub use store::{Durability, FileStore, MemoryStore};

pub use callback::{Callback, CallbackBodyType, CallbackResult, MAX_CALLBACK_URLS};
pub use client::{
    Client, ClientBuilder, CompletedUpload, ObjectBody, ObjectHead, PartBody, StoredBody,
};
pub use endpoint::Endpoint;
pub use error::{Error, ErrorKind, ServiceError};
pub use options::{DataEncryption, ObjectAcl, ObjectOptions, ServerSideEncryption, StorageClass};
pub use ossup_proto::{Api, ErrorCode};
pub use ossup_transport::{RateLimiter, ResponseBody, TransferProgress, Transport};
pub use progress::{Notice, PartSending, ProgressEvent, ProgressSink};
pub use rate_limit::RateLimited;
pub use retry::{RetryConfig, RetryObserver};
pub use scheduler::{
    Adaptive, CongestionSignal, CongestionWatch, HedgePolicy, HedgeStats, Hedged, Parallel,
    PartRunner, PartScheduler, PartSpec, Sequential,
};
pub use source::{BytesSource, FileSource, Source, StreamSource};

/// The stock HTTP transport (feature `hyper`, on by default).
#[cfg(feature = "hyper")]
pub use ossup_hyper::HyperTransport;
/// Credentials, their providers and the signers, re-exported so that one dependency is enough.
pub use ossup_sign::{
    Credentials, CredentialsError, CredentialsProvider, EnvCredentialsProvider, Signer, V1Signer,
    V4Signer,
};
/// The HTTP and byte-buffer crates of the [`Transport`] trait, for custom transports.
pub use ossup_transport::{bytes, http};
pub use upload::{
    ChecksumMode, OnCancel, UploadMethod, UploadOutcome, UploadRequest, Uploader, UploaderBuilder,
};

/// The wire types the client's answers use (ListParts, ListMultipartUploads, Complete).
pub use ossup_proto::xml::{CompletePart, ListedPart, ListedUpload};
/// Cancels an upload; see [`UploadRequest::cancel`].
pub use tokio_util::sync::CancellationToken;

#[cfg(feature = "testkit")]
pub mod testkit;
