//! The contract between the ossup upload engine and the HTTP stack under it, as `tower-service` is to
//! `tower`: the [`Transport`] trait (send one request, get the response with a streaming body), the
//! transport-neutral [`ResponseBody`], the [`TransferProgress`] counter a transport feeds, and the
//! one [`Error`] type that transports, layers and the engine all return.
//!
//! A transport crate (`ossup-hyper`, or your own over another HTTP client) depends on this crate
//! alone; users name these items through `ossup`, which re-exports them.
//!
//! ```
//! use bytes::Bytes;
//! use ossup_transport::{Error, ResponseBody, Transport};
//!
//! /// Answers every request with an empty 200.
//! #[derive(Debug)]
//! struct AlwaysOk;
//!
//! #[async_trait::async_trait]
//! impl Transport for AlwaysOk {
//!     async fn send(&self, _request: http::Request<Bytes>) -> Result<http::Response<ResponseBody>, Error> {
//!         Ok(http::Response::new(ResponseBody::empty()))
//!     }
//!
//!     fn reports_progress(&self) -> bool {
//!         false
//!     }
//! }
//! ```

#![deny(missing_docs)]

mod body;
mod error;
mod rate;
#[cfg(feature = "testkit")]
pub mod testkit;
mod transport;

pub use body::ResponseBody;
pub use error::{Error, ErrorKind, ServiceError, is_retryable_service_error};
pub use rate::RateLimiter;
pub use transport::{TransferProgress, Transport};

/// Re-exported so a transport crate names the same versions of the types in the trait.
pub use {bytes, http};
