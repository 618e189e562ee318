//! What the suite runs against: the mock server started in-process, or an OSS endpoint from the environment.

use std::fmt;

use ossup_sign::Credentials;

use crate::client::{Addressing, Auth, Client, ClientConfig, ClientError, Endpoint, KeyEncoding};

/// The endpoint of the server to test, e.g. `http://oss-cn-hangzhou.aliyuncs.com`.
pub const ENV_ENDPOINT: &str = "OSSUP_CONFORMANCE_ENDPOINT";
/// The bucket to test in; every key the suite writes there starts with a per-run prefix.
pub const ENV_BUCKET: &str = "OSSUP_CONFORMANCE_BUCKET";
/// The region V4 signatures are scoped to (without the `oss-` prefix), e.g. `cn-hangzhou`.
pub const ENV_REGION: &str = "OSS_REGION";

/// The bucket the in-process mock is started with.
pub const MOCK_BUCKET: &str = "conformance";
/// The access key id the mock accepts by default.
pub const MOCK_ACCESS_KEY_ID: &str = "test-ak";
/// The secret of [`MOCK_ACCESS_KEY_ID`].
pub const MOCK_ACCESS_KEY_SECRET: &str = "test-sk";
/// The region the mock runs in by default.
pub const MOCK_REGION: &str = "cn-hangzhou";
/// Temporary credentials `ID:SECRET:TOKEN` whose policy allows only the multipart upload actions
/// (`oss:PutObject`, `oss:ListParts`, `oss:AbortMultipartUpload`), for the STS cases on a remote endpoint.
pub const ENV_STS: &str = "OSSUP_CONFORMANCE_STS";
/// Expired temporary credentials `ID:SECRET:TOKEN`, for the expired-token case on a remote endpoint.
pub const ENV_STS_EXPIRED: &str = "OSSUP_CONFORMANCE_STS_EXPIRED";
/// The temporary access key id the mock is started with, allowed the multipart upload actions only.
pub const MOCK_STS_ACCESS_KEY_ID: &str = "STS.conformance-multipart";
/// The temporary access key id the mock is started with, expired.
pub const MOCK_STS_EXPIRED_ACCESS_KEY_ID: &str = "STS.conformance-expired";
/// The secret of both temporary keys of the mock.
pub const MOCK_STS_SECRET: &str = "conformance-sts-secret";
/// The security token of both temporary keys of the mock.
pub const MOCK_STS_TOKEN: &str = "conformance-sts-token";
/// The RAM actions of the multipart-only policy the STS cases expect.
pub const MULTIPART_ACTIONS: [&str; 3] =
    ["oss:PutObject", "oss:ListParts", "oss:AbortMultipartUpload"];

/// The temporary (STS) credentials the STS cases sign with.
#[derive(Debug, Clone)]
pub struct TemporaryCredentials {
    /// Allowed only [`MULTIPART_ACTIONS`]; carries its security token.
    pub multipart_only: Credentials,
    /// Credentials whose token has expired, when the target has some.
    pub expired: Option<Credentials>,
}

impl TemporaryCredentials {
    /// The mock's: see [`MOCK_STS_ACCESS_KEY_ID`] and [`MOCK_STS_EXPIRED_ACCESS_KEY_ID`].
    pub fn mock() -> Self {
        let key =
            |id: &str| Credentials::new(id, MOCK_STS_SECRET).with_security_token(MOCK_STS_TOKEN);
        Self {
            multipart_only: key(MOCK_STS_ACCESS_KEY_ID),
            expired: Some(key(MOCK_STS_EXPIRED_ACCESS_KEY_ID)),
        }
    }

    /// Parses `ID:SECRET:TOKEN`.
    ///
    /// ```
    /// let creds = ossup_conformance::target::TemporaryCredentials::parse_key("STS.a:b:c").unwrap();
    /// assert_eq!(creds.security_token(), Some("c"));
    /// ```
    pub fn parse_key(spec: &str) -> Result<Credentials, String> {
        let mut pieces = spec.trim().splitn(3, ':');
        match (pieces.next(), pieces.next(), pieces.next()) {
            (Some(id), Some(secret), Some(token))
                if !id.is_empty() && !secret.is_empty() && !token.is_empty() =>
            {
                Ok(Credentials::new(id, secret).with_security_token(token))
            }
            _ => Err("expected ID:SECRET:TOKEN".to_owned()),
        }
    }
}

/// Which kind of server a [`Target`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetKind {
    /// The `oss-mock` server, started by the suite: every case runs.
    Mock,
    /// An endpoint from the environment (real OSS): cases that would create buckets are skipped unless
    /// [`Target::allow_bucket_creation`] says otherwise.
    Remote,
}

/// Why no target could be had.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TargetError {
    /// Some of the variables that select a remote endpoint are set, but not all.
    #[error(
        "{set} is set but {missing} is not: to run against a remote endpoint set all of {ENV_ENDPOINT}, {ENV_BUCKET}, OSS_ACCESS_KEY_ID and OSS_ACCESS_KEY_SECRET; unset {ENV_ENDPOINT} and {ENV_BUCKET} to run against the mock"
    )]
    IncompleteEnvironment {
        /// A variable that is set.
        set: &'static str,
        /// The variables that are missing, comma separated.
        missing: String,
    },
    /// The endpoint is not usable.
    #[error(transparent)]
    Endpoint(#[from] ClientError),
    /// The mock server did not start.
    #[error("could not start the mock server: {0}")]
    MockStart(std::io::Error),
    /// A temporary-credentials variable is not `ID:SECRET:TOKEN`.
    #[error("{variable} is not valid: {reason}")]
    InvalidTemporaryCredentials {
        /// The variable.
        variable: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

/// The server under test and how to reach it.
pub struct Target {
    kind: TargetKind,
    endpoint: Endpoint,
    virtual_host_base: String,
    bucket: String,
    credentials: Credentials,
    region: Option<String>,
    own_buckets: bool,
    temporary: Option<TemporaryCredentials>,
    mock: Option<oss_mock::MockServer>,
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Target")
            .field("kind", &self.kind)
            .field("endpoint", &self.endpoint)
            .field("virtual_host_base", &self.virtual_host_base)
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

impl Target {
    /// A remote endpoint when [`ENV_ENDPOINT`] or [`ENV_BUCKET`] is set (then the credentials must be too),
    /// otherwise the mock server, started in-process.
    pub async fn from_env() -> Result<Self, TargetError> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let selectors = [ENV_ENDPOINT, ENV_BUCKET];
        let Some(set) = selectors.into_iter().find(|name| var(name).is_some()) else {
            return Self::start_mock().await;
        };
        let required = [
            ENV_ENDPOINT,
            ENV_BUCKET,
            ossup_sign::ENV_ACCESS_KEY_ID,
            ossup_sign::ENV_ACCESS_KEY_SECRET,
        ];
        let missing: Vec<&str> = required
            .into_iter()
            .filter(|name| var(name).is_none())
            .collect();
        if !missing.is_empty() {
            return Err(TargetError::IncompleteEnvironment {
                set,
                missing: missing.join(", "),
            });
        }
        let take = |name: &str| var(name).expect("checked above");
        let mut credentials = Credentials::new(
            take(ossup_sign::ENV_ACCESS_KEY_ID),
            take(ossup_sign::ENV_ACCESS_KEY_SECRET),
        );
        if let Some(token) = var(ossup_sign::ENV_SESSION_TOKEN) {
            credentials = credentials.with_security_token(token);
        }
        let target = Self::remote(
            &take(ENV_ENDPOINT),
            &take(ENV_BUCKET),
            credentials,
            var(ENV_REGION),
        )?;
        let parse = |variable: &'static str| {
            var(variable)
                .map(|spec| {
                    TemporaryCredentials::parse_key(&spec).map_err(|reason| {
                        TargetError::InvalidTemporaryCredentials { variable, reason }
                    })
                })
                .transpose()
        };
        Ok(match parse(ENV_STS)? {
            Some(multipart_only) => target.with_temporary_credentials(TemporaryCredentials {
                multipart_only,
                expired: parse(ENV_STS_EXPIRED)?,
            }),
            None => target,
        })
    }

    /// A remote endpoint. Without `region`, it is read from an `oss-REGION[-internal].aliyuncs.com` host;
    /// V4 cases are skipped when there is none.
    pub fn remote(
        endpoint: &str,
        bucket: &str,
        credentials: Credentials,
        region: Option<String>,
    ) -> Result<Self, TargetError> {
        let endpoint = Endpoint::parse(endpoint)?;
        let region = region.or_else(|| region_of_host(endpoint.host()));
        Ok(Self {
            kind: TargetKind::Remote,
            virtual_host_base: endpoint.authority(),
            endpoint,
            bucket: bucket.to_owned(),
            credentials,
            region,
            own_buckets: false,
            temporary: None,
            mock: None,
        })
    }

    /// Lets the cases that create and delete buckets of their own run against this remote endpoint, for
    /// a server whose buckets are disposable (another mock, a test deployment).
    pub fn allow_bucket_creation(mut self) -> Self {
        self.own_buckets = true;
        self
    }

    /// Whether cases may create and delete buckets of their own here: always on the mock, on a remote
    /// endpoint only after [`allow_bucket_creation`](Self::allow_bucket_creation).
    pub fn may_create_buckets(&self) -> bool {
        self.own_buckets
    }

    /// Gives the STS cases these temporary credentials (the mock has its own).
    pub fn with_temporary_credentials(mut self, temporary: TemporaryCredentials) -> Self {
        self.temporary = Some(temporary);
        self
    }

    /// The temporary credentials of the STS cases, when the target has some.
    pub fn temporary_credentials(&self) -> Option<&TemporaryCredentials> {
        self.temporary.as_ref()
    }

    /// Starts the mock server on a free loopback port with the bucket [`MOCK_BUCKET`].
    pub async fn start_mock() -> Result<Self, TargetError> {
        let mock = oss_mock::MockServer::start(oss_mock::MockConfig {
            buckets: vec![MOCK_BUCKET.to_owned()],
            sts: vec![
                oss_mock::StsCredential::new(
                    MOCK_STS_ACCESS_KEY_ID,
                    MOCK_STS_SECRET,
                    MOCK_STS_TOKEN,
                )
                .allowing(MULTIPART_ACTIONS)
                .map_err(|e| TargetError::MockStart(std::io::Error::other(e)))?,
                oss_mock::StsCredential::new(
                    MOCK_STS_EXPIRED_ACCESS_KEY_ID,
                    MOCK_STS_SECRET,
                    MOCK_STS_TOKEN,
                )
                .expiring_at(std::time::UNIX_EPOCH),
            ],
            ..Default::default()
        })
        .await
        .map_err(TargetError::MockStart)?;
        let endpoint = Endpoint::parse(&mock.endpoint())?;
        let virtual_host_base = format!("localhost:{}", mock.addr().port());
        Ok(Self {
            kind: TargetKind::Mock,
            endpoint,
            virtual_host_base,
            bucket: MOCK_BUCKET.to_owned(),
            credentials: Credentials::new(MOCK_ACCESS_KEY_ID, MOCK_ACCESS_KEY_SECRET),
            region: Some(MOCK_REGION.to_owned()),
            own_buckets: true,
            temporary: Some(TemporaryCredentials::mock()),
            mock: Some(mock),
        })
    }

    /// Which kind of server this is.
    pub fn kind(&self) -> TargetKind {
        self.kind
    }

    /// The service endpoint.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The bucket the cases work in.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The credentials requests are signed with.
    pub fn credentials(&self) -> &Credentials {
        &self.credentials
    }

    /// The region of V4 signatures, when known.
    pub fn region(&self) -> Option<&str> {
        self.region.as_deref()
    }

    /// The authority virtual-hosted requests prepend the bucket to.
    pub fn virtual_host_base(&self) -> &str {
        &self.virtual_host_base
    }

    /// A client that signs with V1 and addresses buckets as clients of this target usually do:
    /// path-style on the mock (as the SDKs do for an IP endpoint), virtual-hosted on a remote endpoint.
    pub fn client(&self) -> Client {
        Client::new(ClientConfig {
            endpoint: self.endpoint.clone(),
            virtual_host_base: self.virtual_host_base.clone(),
            credentials: self.credentials.clone(),
            region: self.region.clone(),
            addressing: match self.kind {
                TargetKind::Mock => Addressing::PathStyle,
                // OSS wants virtual-hosted requests for buckets created after 2024; path-style remains for
                // older ones, so remote runs default to the style that always works.
                TargetKind::Remote => Addressing::VirtualHosted,
            },
            key_encoding: KeyEncoding::KeepSlash,
            auth: Auth::V1,
        })
    }

    /// One line naming the target, for reports.
    pub fn describe(&self) -> String {
        match self.kind {
            TargetKind::Mock => format!(
                "oss-mock (in-process) at {}, bucket {}",
                self.endpoint, self.bucket
            ),
            TargetKind::Remote => format!(
                "remote endpoint {}, bucket {}, region {}",
                self.endpoint,
                self.bucket,
                self.region.as_deref().unwrap_or("unknown (V4 cases skip)")
            ),
        }
    }

    /// Stops the mock server, when this target started one.
    pub async fn shutdown(self) {
        if let Some(mock) = self.mock {
            mock.shutdown().await;
        }
    }
}

/// The region in an OSS endpoint host: `oss-cn-hangzhou.aliyuncs.com` gives `cn-hangzhou`.
///
/// ```
/// use ossup_conformance::target::region_of_host;
/// assert_eq!(region_of_host("oss-cn-hangzhou.aliyuncs.com").as_deref(), Some("cn-hangzhou"));
/// assert_eq!(region_of_host("oss-ap-southeast-1-internal.aliyuncs.com").as_deref(), Some("ap-southeast-1"));
/// assert_eq!(region_of_host("127.0.0.1"), None);
/// ```
pub fn region_of_host(host: &str) -> Option<String> {
    let first = host.split('.').next()?;
    let region = first.strip_prefix("oss-")?;
    let region = region.strip_suffix("-internal").unwrap_or(region);
    (!region.is_empty() && host.ends_with(".aliyuncs.com")).then(|| region.to_owned())
}
