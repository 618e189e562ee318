//! Counters of what the server has seen: requests per API, error responses, requests refused by the
//! ceiling on requests in flight, bytes received and stored, faults fired by kind.
//!
//! Shared by every connection (atomics, no locks), read by tests, benchmarks and fault rules.

use std::sync::atomic::{AtomicU64, Ordering};

use ossup_proto::Api;

use crate::faults::FAULT_KINDS;

/// Live counters of a running [`MockServer`](crate::MockServer).
///
/// ```
/// let stats = oss_mock::Stats::default();
/// assert_eq!(stats.requests(ossup_proto::Api::UploadPart), 0);
/// assert_eq!(stats.snapshot().bytes_received, 0);
/// ```
#[derive(Debug, Default)]
pub struct Stats {
    requests: [AtomicU64; Api::ALL.len()],
    unrouted_requests: AtomicU64,
    error_responses: AtomicU64,
    refused_by_ceiling: AtomicU64,
    bytes_received: AtomicU64,
    bytes_stored: AtomicU64,
    faults_fired: [AtomicU64; FAULT_KINDS.len()],
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StatsSnapshot {
    /// Requests per API, in [`Api::ALL`] order, counting those answered with an error.
    pub requests: Vec<(Api, u64)>,
    /// Requests that named no API the mock knows (bad addressing, unknown method).
    pub unrouted_requests: u64,
    /// Responses with a status of 300 or more.
    pub error_responses: u64,
    /// Requests answered `503 SlowDown` because `--max-inflight` requests were in flight; they are
    /// not routed, so not in `requests` (they are in `error_responses`).
    pub refused_by_ceiling: u64,
    /// Request body bytes read from clients, whether or not they were kept.
    pub bytes_received: u64,
    /// Bytes of part and object data committed to storage.
    pub bytes_stored: u64,
    /// Faults fired since the server started, per action kind, in [`FAULT_KINDS`] order (rules
    /// replaced since then included).
    pub faults_fired: Vec<(&'static str, u64)>,
}

impl Stats {
    /// Requests seen for `api`, including those answered with an error.
    pub fn requests(&self, api: Api) -> u64 {
        self.requests[api_index(api)].load(Ordering::Relaxed)
    }

    /// Request body bytes read from clients.
    pub fn bytes_received(&self) -> u64 {
        self.bytes_received.load(Ordering::Relaxed)
    }

    /// Bytes of part and object data committed to storage.
    pub fn bytes_stored(&self) -> u64 {
        self.bytes_stored.load(Ordering::Relaxed)
    }

    /// Responses with a status of 300 or more.
    pub fn error_responses(&self) -> u64 {
        self.error_responses.load(Ordering::Relaxed)
    }

    /// Requests answered `503 SlowDown` by the ceiling on requests in flight (`--max-inflight`).
    pub fn refused_by_ceiling(&self) -> u64 {
        self.refused_by_ceiling.load(Ordering::Relaxed)
    }

    /// Faults of this action kind (`"error"`, `"stall"`, …) fired since the server started.
    pub fn faults_fired(&self, kind: &str) -> u64 {
        FAULT_KINDS
            .iter()
            .position(|k| *k == kind)
            .map_or(0, |i| self.faults_fired[i].load(Ordering::Relaxed))
    }

    /// Every counter at once.
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            requests: Api::ALL
                .into_iter()
                .map(|api| (api, self.requests(api)))
                .collect(),
            unrouted_requests: self.unrouted_requests.load(Ordering::Relaxed),
            error_responses: self.error_responses(),
            refused_by_ceiling: self.refused_by_ceiling(),
            bytes_received: self.bytes_received(),
            bytes_stored: self.bytes_stored(),
            faults_fired: FAULT_KINDS
                .into_iter()
                .zip(&self.faults_fired)
                .map(|(kind, n)| (kind, n.load(Ordering::Relaxed)))
                .collect(),
        }
    }

    pub(crate) fn record_request(&self, api: Option<Api>) {
        match api {
            Some(api) => &self.requests[api_index(api)],
            None => &self.unrouted_requests,
        }
        .fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn record_error_response(&self) {
        self.error_responses.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn record_refused(&self) {
        self.refused_by_ceiling.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn add_received(&self, bytes: u64) {
        self.bytes_received.fetch_add(bytes, Ordering::Relaxed);
    }

    pub(crate) fn record_fault(&self, kind_index: usize) {
        if let Some(counter) = self.faults_fired.get(kind_index) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn add_stored(&self, bytes: u64) {
        self.bytes_stored.fetch_add(bytes, Ordering::Relaxed);
    }
}

fn api_index(api: Api) -> usize {
    Api::ALL.iter().position(|a| *a == api).unwrap_or(0)
}
