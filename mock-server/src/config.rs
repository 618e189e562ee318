//! How a mock server is set up: where it listens, where it keeps data, which buckets and keys it has.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use crate::auth::{REDACTED, StsCredential};
use crate::faults::FaultRule;
use crate::link::LinkShape;

/// The access key id accepted when no credentials are configured.
pub const DEFAULT_ACCESS_KEY_ID: &str = "test-ak";
/// The secret of [`DEFAULT_ACCESS_KEY_ID`].
pub const DEFAULT_ACCESS_KEY_SECRET: &str = "test-sk";
/// The region reported when none is configured.
pub const DEFAULT_REGION: &str = "cn-hangzhou";
/// The base domain of virtual-hosted addressing when none is configured: `BUCKET.localhost`.
pub const DEFAULT_DOMAIN: &str = "localhost";
/// How long the server waits for a callback server's answer when none is configured (as OSS: 5 s).
pub const DEFAULT_CALLBACK_TIMEOUT: Duration = Duration::from_secs(5);

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
///
/// Its `Debug` output shows the access key ids, never the secrets, tokens or the control token.
#[derive(Clone)]
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
    /// Temporary (STS) credentials accepted besides `credentials`; more can be added while the server
    /// runs with [`MockServer::set_sts_credential`](crate::MockServer::set_sts_credential).
    pub sts: Vec<StsCredential>,
    /// Hosts upload callbacks may go to besides loopback (always allowed): a host name, an IP address,
    /// or a CIDR block such as `10.0.0.0/8`. A callback URL naming any other host is refused.
    pub callback_allow: Vec<String>,
    /// How long a callback server may take to answer. Default 5 s, as OSS.
    pub callback_timeout: Duration,
    /// Fault rules in force from the start (see `docs/fault-injection.md`); replaceable while the
    /// server runs with [`MockServer::set_faults`](crate::MockServer::set_faults). Default none.
    pub faults: Vec<FaultRule>,
    /// What an acknowledged change survives, and so whether it is fsynced first. Default
    /// [`Durability::PowerLoss`] (fsynced); `oss-mock --no-fsync` is [`Durability::ProcessCrash`].
    pub durability: Durability,
    /// The bearer token the control routes (`/_mock/…`) require. `None` (the default): they answer
    /// loopback peers only; with a token they answer any peer whose request carries
    /// `Authorization: Bearer TOKEN`, and only those.
    pub control_token: Option<String>,
    /// Bounds on what the server reads from clients: connections, timeouts, header and URL sizes.
    pub limits: Limits,
    /// The link the server pretends to sit behind: bandwidths, latency, ceiling on requests in
    /// flight. Default loopback (none of them); replaceable while the server runs with
    /// [`MockServer::set_link`](crate::MockServer::set_link).
    pub link: LinkShape,
}

impl std::fmt::Debug for MockConfig {
    /// Like a derived `Debug`, with every secret replaced: a config printed in a log or a failed
    /// assertion must not hand out keys.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let credentials: Vec<(&str, &str)> = self
            .credentials
            .iter()
            .map(|(id, _)| (id.as_str(), REDACTED))
            .collect();
        f.debug_struct("MockConfig")
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field("buckets", &self.buckets)
            .field("credentials", &credentials)
            .field("region", &self.region)
            .field("domain", &self.domain)
            .field("sts", &self.sts)
            .field("callback_allow", &self.callback_allow)
            .field("callback_timeout", &self.callback_timeout)
            .field("faults", &self.faults)
            .field("durability", &self.durability)
            .field(
                "control_token",
                &self.control_token.as_ref().map(|_| REDACTED),
            )
            .field("limits", &self.limits)
            .field("link", &self.link)
            .finish()
    }
}

/// Bounds on what a server reads from its clients, so that no client (a slow one, a hostile one, a
/// buggy one) can hold the server's memory, connections or time without limit. Each bound answers
/// what OSS answers, or a clear refusal: `docs/mock-server.md` has the table.
///
/// ```
/// use oss_mock::Limits;
/// let limits = Limits::default();
/// assert_eq!(limits.max_connections, 512);
/// assert_eq!(limits.header_timeout.as_secs(), 10);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Connections open at once. One more is answered `503 ServiceUnavailable` at once and closed.
    /// Default 512.
    pub max_connections: usize,
    /// How long a client may take to send a request head: from the connection's opening for its
    /// first request, from the head's first byte for later ones. Past it the connection is closed.
    /// Default 10 s.
    pub header_timeout: Duration,
    /// How long a connection may stay open with no request in progress, or with a request whose body
    /// the server waits for and no byte arrives. Past it the connection is closed. Default 60 s.
    pub idle_timeout: Duration,
    /// Header fields in one request head; more is `431` and the connection closed. Default 100.
    pub max_headers: usize,
    /// Bytes of one request head (request line and header fields); more is `431` and the connection
    /// closed. Default 64 KiB.
    pub max_header_bytes: usize,
    /// Bytes of a request's path and query as sent; more is `400 InvalidArgument`. Default 16 KiB,
    /// room for a 1023-byte key and list markers, all percent-encoded.
    pub max_url_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 512,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_headers: 100,
            max_header_bytes: 64 * 1024,
            max_url_bytes: 16 * 1024,
        }
    }
}

impl Limits {
    /// The smallest head size accepted: a signed request with a 1023-byte key needs about 4 KiB.
    pub const MIN_HEADER_BYTES: usize = 4096;

    /// Checks that every bound lets ordinary requests through; the error names the bound.
    pub fn validate(&self) -> Result<(), String> {
        let positive = [
            ("max_connections (--max-connections)", self.max_connections),
            ("max_headers (--max-headers)", self.max_headers),
            ("max_url_bytes (--max-url-bytes)", self.max_url_bytes),
        ];
        for (name, value) in positive {
            if value == 0 {
                return Err(format!("{name} must be at least 1"));
            }
        }
        if self.max_header_bytes < Self::MIN_HEADER_BYTES {
            return Err(format!(
                "max_header_bytes (--max-header-bytes) is {}; it must be at least {} for a signed request to fit",
                self.max_header_bytes,
                Self::MIN_HEADER_BYTES
            ));
        }
        for (name, value) in [
            ("header_timeout (--header-timeout)", self.header_timeout),
            ("idle_timeout (--idle-timeout)", self.idle_timeout),
        ] {
            if value.is_zero() {
                return Err(format!("{name} must be more than zero"));
            }
        }
        Ok(())
    }
}

/// How far an acknowledged change is guaranteed to survive: the same two levels as the checkpoint
/// stores' durability in the `ossup` engine.
///
/// Either way a change is published by an atomic rename of its record after the bytes it names are
/// written, so a restart never finds half an operation, and data acknowledged to a client survives the
/// server process being killed (`kill -9` included): written data lives in the operating system's page
/// cache, which outlives the process. The two differ only on a power loss or an operating-system crash.
///
/// ```
/// use oss_mock::{Durability, MockConfig};
/// let config = MockConfig::default().with_durability(Durability::ProcessCrash);
/// assert!(!config.durability.fsyncs());
/// assert_eq!(MockConfig::default().durability, Durability::PowerLoss);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Durability {
    /// Blobs, records and the directories that hold them are fsynced before a change is
    /// acknowledged: it survives a power loss too. The default.
    #[default]
    PowerLoss,
    /// No fsync at all (`oss-mock --no-fsync`): a change survives the server being killed, but a
    /// power loss or an operating-system crash may lose recent changes, or leave a record the next
    /// start refuses as damaged. For benchmarks on a slow disk, where the fsyncs cost more than the
    /// rest of the server's work.
    ProcessCrash,
}

impl Durability {
    /// Whether changes are fsynced before they are acknowledged.
    pub fn fsyncs(self) -> bool {
        self == Durability::PowerLoss
    }
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
            sts: Vec::new(),
            callback_allow: Vec::new(),
            callback_timeout: DEFAULT_CALLBACK_TIMEOUT,
            faults: Vec::new(),
            durability: Durability::PowerLoss,
            control_token: None,
            limits: Limits::default(),
            link: LinkShape::default(),
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

    /// Adds temporary (STS) credentials.
    pub fn with_sts(mut self, credential: StsCredential) -> Self {
        self.sts.push(credential);
        self
    }

    /// Allows upload callbacks to `host` (a host name, an IP address or a CIDR block) besides loopback.
    pub fn allow_callbacks_to(mut self, host: impl Into<String>) -> Self {
        self.callback_allow.push(host.into());
        self
    }

    /// Waits at most `timeout` for a callback server's answer.
    pub fn with_callback_timeout(mut self, timeout: Duration) -> Self {
        self.callback_timeout = timeout;
        self
    }

    /// Starts with these fault rules in force.
    pub fn with_faults(mut self, rules: Vec<FaultRule>) -> Self {
        self.faults = rules;
        self
    }

    /// Sets how far an acknowledged change is guaranteed to survive (see [`Durability`]).
    pub fn with_durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Requires `Authorization: Bearer TOKEN` on the control routes, and answers them for any peer
    /// that sends it (without a token only loopback peers are answered).
    pub fn with_control_token(mut self, token: impl Into<String>) -> Self {
        self.control_token = Some(token.into());
        self
    }

    /// Replaces the bounds on what the server reads.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Shapes the link the server pretends to sit behind (see [`LinkShape`]).
    pub fn with_link(mut self, link: LinkShape) -> Self {
        self.link = link;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_a_secret() {
        let config = MockConfig::default()
            .with_credentials("ak", "permanent-secret")
            .with_sts(StsCredential::new("STS.id", "sts-secret", "sts-token"))
            .with_control_token("control-token");
        let shown = format!("{config:?}");
        assert!(
            shown.contains("\"ak\"") && shown.contains("STS.id"),
            "{shown}"
        );
        for secret in [
            "permanent-secret",
            "sts-secret",
            "sts-token",
            "control-token",
        ] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
    }

    #[test]
    fn limits_that_would_refuse_ordinary_requests_are_refused() {
        assert!(Limits::default().validate().is_ok());
        for (limits, says) in [
            (
                Limits {
                    max_connections: 0,
                    ..Limits::default()
                },
                "--max-connections",
            ),
            (
                Limits {
                    max_header_bytes: 100,
                    ..Limits::default()
                },
                "--max-header-bytes",
            ),
            (
                Limits {
                    header_timeout: Duration::ZERO,
                    ..Limits::default()
                },
                "--header-timeout",
            ),
        ] {
            let err = limits.validate().unwrap_err();
            assert!(err.contains(says), "{err}");
        }
    }
}
