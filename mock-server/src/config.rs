//! How a mock server is set up: where it listens, where it keeps data, which buckets and keys it has.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

/// The access key id accepted when no credentials are configured.
pub const DEFAULT_ACCESS_KEY_ID: &str = "test-ak";
/// The secret of [`DEFAULT_ACCESS_KEY_ID`].
pub const DEFAULT_ACCESS_KEY_SECRET: &str = "test-sk";
/// The region reported when none is configured.
pub const DEFAULT_REGION: &str = "cn-hangzhou";
/// The base domain of virtual-hosted addressing when none is configured: `BUCKET.localhost`.
pub const DEFAULT_DOMAIN: &str = "localhost";

/// The configuration of a [`MockServer`](crate::MockServer).
///
/// ```
/// use oss_mock::MockConfig;
/// let config = MockConfig::default()
///     .with_bucket("bucket")
///     .with_credentials("id", "secret");
/// assert_eq!(config.listen.port(), 0);
/// assert_eq!(config.region, "cn-hangzhou");
/// ```
#[derive(Debug, Clone)]
pub struct MockConfig {
    /// Where to listen; port 0 picks a free port. Default `127.0.0.1:0`.
    pub listen: SocketAddr,
    /// Where to keep buckets, objects and uploads. `None` (the default) uses a new temporary
    /// directory, removed when the server stops.
    pub data_dir: Option<PathBuf>,
    /// Buckets to create at start (existing ones are kept as they are).
    pub buckets: Vec<String>,
    /// Accepted `(access key id, secret)` pairs; empty means `test-ak` / `test-sk`.
    pub credentials: Vec<(String, String)>,
    /// The region GetBucketInfo reports (without the `oss-` prefix). Default `cn-hangzhou`.
    pub region: String,
    /// The base domain of virtual-hosted addressing: a `Host` of `BUCKET.DOMAIN[:PORT]` names the
    /// bucket; any other host (an IP address, the bare domain) is path-style. Default `localhost`.
    pub domain: String,
}

impl Default for MockConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            data_dir: None,
            buckets: Vec::new(),
            credentials: Vec::new(),
            region: DEFAULT_REGION.to_owned(),
            domain: DEFAULT_DOMAIN.to_owned(),
        }
    }
}

impl MockConfig {
    /// Adds a bucket to create at start.
    pub fn with_bucket(mut self, name: impl Into<String>) -> Self {
        self.buckets.push(name.into());
        self
    }

    /// Adds an accepted access key.
    pub fn with_credentials(mut self, id: impl Into<String>, secret: impl Into<String>) -> Self {
        self.credentials.push((id.into(), secret.into()));
        self
    }

    /// Keeps data in `dir` (created if missing) instead of a temporary directory.
    pub fn with_data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        self
    }

    /// The access keys the server accepts: the configured ones, or `test-ak` / `test-sk`.
    ///
    /// ```
    /// let keys = oss_mock::MockConfig::default().effective_credentials();
    /// assert_eq!(keys, vec![("test-ak".to_owned(), "test-sk".to_owned())]);
    /// ```
    pub fn effective_credentials(&self) -> Vec<(String, String)> {
        if self.credentials.is_empty() {
            vec![(
                DEFAULT_ACCESS_KEY_ID.to_owned(),
                DEFAULT_ACCESS_KEY_SECRET.to_owned(),
            )]
        } else {
            self.credentials.clone()
        }
    }
}
