//! The contract suite every [`Transport`] passes (feature `testkit`), public so a transport crate
//! can prove it gives the engine what the engine relies on.
//!
//! Each case is an async function taking the transport; it starts its own HTTP/1.1 server on
//! 127.0.0.1 (a port the system picks, written here over plain TCP, so the suite shares no code with
//! any transport under test), sends through the transport and panics with the case's name and what
//! went wrong on the first violation. [`run_transport_contract`] runs them all. Every case is
//! bounded by [`CASE_TIMEOUT`], so a transport that hangs fails instead of stalling the test run.
//!
//! What the engine relies on, and the case that checks it:
//! - the request's method, URI (path and query as given, not re-encoded), headers and body arrive
//!   exactly: [`requests_arrive_exactly`];
//! - the response's status, headers and body come back exactly, and a HEAD answer's
//!   `Content-Length` is not waited for as a body: [`responses_come_back_exactly`];
//! - a large body streams: its first bytes are readable before the server has sent the rest, and
//!   it arrives whole in many chunks: [`large_bodies_stream_in_many_chunks`];
//! - an HTTP error status is a response, not an `Err`: [`error_statuses_are_responses`];
//! - a refused connection is a retryable [`ErrorKind::Network`](crate::ErrorKind::Network) error:
//!   [`refused_connections_are_retryable_network_errors`];
//! - when [`Transport::reports_progress`] is true, the request's [`TransferProgress`](crate::TransferProgress) counts exactly
//!   the body's length: [`progress_counts_exactly_the_body`];
//! - a response body cut short (by `Content-Length` or chunked) is an error, never a short success:
//!   [`bodies_cut_short_are_errors`].
//!
//! ```no_run
//! # async fn check(transport: &dyn ossup_transport::Transport) {
//! let report = ossup_transport::testkit::run_transport_contract(transport).await;
//! assert!(report.not_applicable.is_empty(), "{report:?}");
//! # }
//! ```

mod cases;
mod server;

use std::time::Duration;

use crate::Transport;

pub use cases::{
    bodies_cut_short_are_errors, error_statuses_are_responses, large_bodies_stream_in_many_chunks,
    progress_counts_exactly_the_body, refused_connections_are_retryable_network_errors,
    requests_arrive_exactly, responses_come_back_exactly,
};

/// How long one case may take before it fails as a hang.
pub const CASE_TIMEOUT: Duration = Duration::from_secs(20);

/// What [`run_transport_contract`] ran.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TransportContractReport {
    /// The cases that ran and passed.
    pub passed: Vec<&'static str>,
    /// The cases that do not apply to this transport, with the reason.
    pub not_applicable: Vec<(&'static str, &'static str)>,
}

/// Runs every case of the contract against `transport`; panics on the first violation.
pub async fn run_transport_contract(transport: &dyn Transport) -> TransportContractReport {
    let mut report = TransportContractReport::default();
    requests_arrive_exactly(transport).await;
    report.passed.push("requests_arrive_exactly");
    responses_come_back_exactly(transport).await;
    report.passed.push("responses_come_back_exactly");
    large_bodies_stream_in_many_chunks(transport).await;
    report.passed.push("large_bodies_stream_in_many_chunks");
    error_statuses_are_responses(transport).await;
    report.passed.push("error_statuses_are_responses");
    refused_connections_are_retryable_network_errors(transport).await;
    report
        .passed
        .push("refused_connections_are_retryable_network_errors");
    if transport.reports_progress() {
        progress_counts_exactly_the_body(transport).await;
        report.passed.push("progress_counts_exactly_the_body");
    } else {
        report.not_applicable.push((
            "progress_counts_exactly_the_body",
            "the transport does not report progress",
        ));
    }
    bodies_cut_short_are_errors(transport).await;
    report.passed.push("bodies_cut_short_are_errors");
    report
}
