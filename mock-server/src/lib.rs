//! A mock Alibaba Cloud OSS server that speaks the real wire protocol, for testing OSS clients.
//!
//! It serves the multipart upload APIs (Initiate, UploadPart, ListParts, Complete, Abort,
//! ListMultipartUploads), PutObject, GetObject (with ranges), HeadObject, DeleteObject, and the bucket
//! APIs PutBucket, DeleteBucket, GetBucketInfo and ListObjects; checks V1 and V4 signatures; answers
//! errors with the codes, statuses and documents OSS uses; and keeps data durably on disk, so it
//! survives `kill -9` and a restart on the same data directory. `docs/mock-server.md` describes what
//! it does and where it knowingly differs from OSS.
//!
//! Start it in-process:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! use oss_mock::{MockConfig, MockServer};
//!
//! let server = MockServer::start(MockConfig::default().with_bucket("bucket")).await?;
//! // Point a client at server.endpoint() with access key test-ak / test-sk.
//! println!("serving {}", server.endpoint());
//! server.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! or as the `oss-mock` binary: `oss-mock --bucket bucket` prints `listening on http://HOST:PORT`.
//!
//! Inside, a request passes through layers: the link (latency, the ceiling on requests in flight,
//! bandwidth: [`LinkShape`]), route (addressing to bucket, key and API), authentication, fault
//! rules, the API's handler, and storage. Every connection is bounded (count,
//! head size, header, idle and body timeouts: [`Limits`]), and the control routes answer loopback
//! peers or holders of the control token only.

mod auth;
mod body;
mod callback;
mod config;
mod conn;
mod control;
mod error;
mod faults;
#[doc(hidden)]
pub mod fuzzing;
mod handlers;
mod ids;
mod link;
mod range;
mod response;
mod route;
mod server;
mod service;
mod stats;
mod storage;
mod traffic;

pub use auth::StsCredential;
pub use config::{
    DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET, DEFAULT_CALLBACK_TIMEOUT, DEFAULT_DOMAIN,
    DEFAULT_REGION, Durability, Limits, MockConfig,
};
pub use faults::{
    FAULT_KINDS, FaultAction, FaultRule, FaultRuleError, RuleReport, parse_fault_rules,
};
pub use handlers::MAX_COMPLETE_BODY;
pub use link::{LinkShape, SLOW_DOWN, parse_latency};
/// Parses a rate as the mock's link flags and fault rules take it: see [`ossup_proto::units`].
pub use ossup_proto::units::parse_rate;
pub use server::MockServer;
pub use stats::{Stats, StatsSnapshot};
