//! What the command line and the environment say about where OSS is, who we are, and where
//! checkpoints live.

use std::net::IpAddr;
use std::path::PathBuf;

use ossup::{Client, RetryConfig};
use ossup_sign::{Credentials, V1Signer, V4Signer};

use crate::cli::{ConnectionArgs, SignatureVersionArg};
use crate::failure::Failure;

/// An OSS endpoint, normalised to `scheme://host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    /// `http` or `https`.
    pub scheme: &'static str,
    /// The host name or IP address (IPv6 in brackets).
    pub host: String,
    /// The port, when not the scheme's default.
    pub port: Option<u16>,
}

impl Endpoint {
    /// Parses `https://host[:port]`, `http://host[:port]` or `host[:port]`.
    ///
    /// Without a scheme, a loopback host (`localhost`, `127.0.0.0/8`, `[::1]`) gets `http`, since a
    /// local mock server rarely has a certificate, and anything else gets `https`.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let trimmed = text.trim();
        let (scheme, rest) = match trimmed.split_once("://") {
            Some((scheme, rest)) => {
                let scheme = match scheme.to_ascii_lowercase().as_str() {
                    "http" => "http",
                    "https" => "https",
                    other => {
                        return Err(format!(
                            "endpoint {trimmed:?} has scheme {other:?}; use http:// or https://"
                        ));
                    }
                };
                (Some(scheme), rest)
            }
            None => (None, trimmed),
        };
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.is_empty() {
            return Err(format!("endpoint {trimmed:?} has no host"));
        }
        if authority.contains(['/', '?', '#', '@']) {
            return Err(format!(
                "endpoint {trimmed:?} has a path, query or user; give only scheme://host[:port], \
                 e.g. https://oss-cn-hangzhou.aliyuncs.com"
            ));
        }
        let (host, port) = split_host_port(authority)
            .map_err(|reason| format!("endpoint {trimmed:?}: {reason}"))?;
        let scheme = scheme.unwrap_or(if is_loopback(&host) { "http" } else { "https" });
        Ok(Self { scheme, host, port })
    }

    /// `scheme://host[:port]`.
    pub(crate) fn url(&self) -> String {
        match self.port {
            Some(port) => format!("{}://{}:{port}", self.scheme, self.host),
            None => format!("{}://{}", self.scheme, self.host),
        }
    }

    /// The region named by an `oss-REGION[-internal].aliyuncs.com` host, if it is one.
    pub(crate) fn region_from_host(&self) -> Option<String> {
        let name = self.host.strip_suffix(".aliyuncs.com")?;
        let name = name.rsplit('.').next()?;
        let region = name.strip_prefix("oss-")?;
        let region = region.strip_suffix("-internal").unwrap_or(region);
        (!region.is_empty()).then(|| region.to_owned())
    }
}

fn is_loopback(host: &str) -> bool {
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn split_host_port(authority: &str) -> Result<(String, Option<u16>), String> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (inside, after) = rest
            .split_once(']')
            .ok_or("an IPv6 address needs a closing ']'")?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or("junk after the IPv6 address")?),
        };
        (format!("[{inside}]"), port)
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host.to_owned(), Some(port)),
            None => (authority.to_owned(), None),
        }
    };
    if host.is_empty() || host == "[]" {
        return Err("no host".to_owned());
    }
    let port = match port {
        None => None,
        Some(p) => Some(
            p.parse::<u16>()
                .ok()
                .filter(|&p| p != 0)
                .ok_or_else(|| format!("port {p:?} is not a number from 1 to 65535"))?,
        ),
    };
    Ok((host, port))
}

/// Where to send requests and how to sign them.
#[derive(Debug, Clone)]
pub(crate) struct Connection {
    /// The endpoint.
    pub endpoint: Endpoint,
    /// The region, when known (required for V4).
    pub region: Option<String>,
    /// The signature version.
    pub signature: SignatureVersionArg,
    /// The credentials.
    pub credentials: Credentials,
    /// How many times to try each request.
    pub max_attempts: u32,
}

impl Connection {
    /// Resolves `args` and the credentials environment variables into a connection.
    pub(crate) fn resolve(args: &ConnectionArgs) -> Result<Self, Failure> {
        Self::resolve_with(args, |name| std::env::var(name).ok())
    }

    /// As [`resolve`](Self::resolve), with the environment read through `lookup`.
    pub(crate) fn resolve_with(
        args: &ConnectionArgs,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, Failure> {
        let region = args
            .region
            .as_deref()
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .map(str::to_owned);
        let endpoint = match args
            .endpoint
            .as_deref()
            .map(str::trim)
            .filter(|e| !e.is_empty())
        {
            Some(text) => Endpoint::parse(text).map_err(Failure::usage)?,
            None => match &region {
                Some(region) => Endpoint {
                    scheme: "https",
                    host: format!("oss-{region}.aliyuncs.com"),
                    port: None,
                },
                None => {
                    return Err(Failure::usage(
                        "no OSS endpoint: pass --endpoint URL (e.g. https://oss-cn-hangzhou.aliyuncs.com), \
                         set OSS_ENDPOINT, or give --region to use the region's public endpoint",
                    ));
                }
            },
        };
        let region = region.or_else(|| endpoint.region_from_host());
        if args.signature == SignatureVersionArg::V4 && region.is_none() {
            return Err(Failure::usage(format!(
                "V4 signing needs the region of {}: pass --region (e.g. cn-hangzhou) or set OSS_REGION, \
                 or sign with --signature v1",
                endpoint.url()
            )));
        }
        let credentials =
            Credentials::from_lookup(lookup).map_err(|e| Failure::usage(e.to_string()))?;
        Ok(Self {
            endpoint,
            region,
            signature: args.signature,
            credentials,
            max_attempts: args.max_attempts,
        })
    }
}

impl Connection {
    /// A client for this connection, sending through `ossup-hyper`. Says on stderr when it would
    /// send a security token in the clear (see [`token_in_the_clear`](Self::token_in_the_clear)).
    pub(crate) fn client(&self) -> Result<Client, Failure> {
        self.client_limited(None, &ossup::CongestionSignal::new())
    }

    /// A client of this connection whose request bodies go at most `bytes_per_sec` (`--limit-rate`).
    /// A client whose bodies go at most `bytes_per_sec` fast, and whose overload answers (503,
    /// 429) raise `congestion` for the adaptive scheduler.
    pub(crate) fn client_limited(
        &self,
        bytes_per_sec: Option<u64>,
        congestion: &ossup::CongestionSignal,
    ) -> Result<Client, Failure> {
        if let Some(note) = self.token_in_the_clear() {
            eprintln!("note: {note}");
        }
        let mut builder = Client::builder()
            .endpoint(&self.endpoint.url())
            .map_err(|e| Failure::usage(e.message()))?
            .credentials(self.credentials.clone())
            .transport(ossup::CongestionWatch::new(
                ossup_hyper::HyperTransport::new(),
                congestion.clone(),
            ))
            .retry(RetryConfig::default().max_attempts(self.max_attempts));
        if let Some(rate) = bytes_per_sec {
            builder = builder.rate_limit(ossup::RateLimiter::new(rate));
        }
        let builder = match (self.signature, &self.region) {
            (SignatureVersionArg::V4, Some(region)) => {
                builder.signer(V4Signer::new(region.clone()))
            }
            (SignatureVersionArg::V4, None) => {
                return Err(Failure::usage(
                    "V4 signing needs a region: pass --region or set OSS_REGION",
                ));
            }
            (SignatureVersionArg::V1, _) => builder.signer(V1Signer),
        };
        builder.build().map_err(|e| Failure::usage(e.message()))
    }

    /// A warning when temporary (STS) credentials would go over plain `http://` to a host that is
    /// not this machine: anyone on the way could read the token and use it until it expires.
    pub(crate) fn token_in_the_clear(&self) -> Option<String> {
        (self.credentials.security_token().is_some()
            && self.endpoint.scheme == "http"
            && !is_loopback(&self.endpoint.host))
            .then(|| {
                format!(
                    "the STS security token (OSS_SESSION_TOKEN) goes to {} over plain http, readable by \
                     anyone on the network path until it expires; use an https:// endpoint",
                    self.endpoint.url()
                )
            })
    }

    /// What an error explanation needs to know about this connection.
    pub(crate) fn situation(&self) -> crate::explain::Situation {
        crate::explain::Situation {
            endpoint: self.endpoint.url(),
            access_key_id: self.credentials.access_key_id().to_owned(),
            signing_v4: self.signature == SignatureVersionArg::V4,
            file: None,
            resume_command: None,
        }
    }
}

/// The default checkpoint directory: `$XDG_STATE_HOME/ossup/checkpoints`, else
/// `~/.local/state/ossup/checkpoints` (on systems without a state directory, the local data
/// directory).
pub(crate) fn default_checkpoint_dir() -> Result<PathBuf, Failure> {
    dirs::state_dir()
        .or_else(dirs::data_local_dir)
        .map(|base| base.join("ossup").join("checkpoints"))
        .ok_or_else(|| {
            Failure::usage(
                "cannot find a per-user state directory (HOME is not set); pass --checkpoint-dir DIR",
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_keep_an_explicit_scheme() {
        let e = Endpoint::parse("HTTP://oss.example.com:8080/").unwrap();
        assert_eq!(e.url(), "http://oss.example.com:8080");
        let e = Endpoint::parse("https://oss-cn-hangzhou.aliyuncs.com").unwrap();
        assert_eq!(e.url(), "https://oss-cn-hangzhou.aliyuncs.com");
        let e = Endpoint::parse("http://10.0.0.1:9000").unwrap();
        assert_eq!(e.url(), "http://10.0.0.1:9000");
    }

    #[test]
    fn endpoints_without_a_scheme_get_https_unless_loopback() {
        assert_eq!(
            Endpoint::parse("oss-cn-beijing.aliyuncs.com")
                .unwrap()
                .url(),
            "https://oss-cn-beijing.aliyuncs.com"
        );
        assert_eq!(
            Endpoint::parse("10.0.0.1:9000").unwrap().url(),
            "https://10.0.0.1:9000"
        );
        assert_eq!(
            Endpoint::parse("127.0.0.1:9000").unwrap().url(),
            "http://127.0.0.1:9000"
        );
        assert_eq!(
            Endpoint::parse("127.1.2.3:9000").unwrap().url(),
            "http://127.1.2.3:9000"
        );
        assert_eq!(
            Endpoint::parse("localhost:9000").unwrap().url(),
            "http://localhost:9000"
        );
        assert_eq!(
            Endpoint::parse("[::1]:9000").unwrap().url(),
            "http://[::1]:9000"
        );
    }

    #[test]
    fn malformed_endpoints_are_refused() {
        assert!(
            Endpoint::parse("ftp://host")
                .unwrap_err()
                .contains("scheme")
        );
        assert!(Endpoint::parse("http://").unwrap_err().contains("no host"));
        assert!(
            Endpoint::parse("host:port")
                .unwrap_err()
                .contains("1 to 65535")
        );
        assert!(Endpoint::parse("host:0").is_err());
        assert!(
            Endpoint::parse("https://host/bucket")
                .unwrap_err()
                .contains("path")
        );
        assert!(Endpoint::parse("[::1").is_err());
    }

    #[test]
    fn the_region_is_read_from_aliyun_host_names() {
        let region = |h: &str| Endpoint::parse(h).unwrap().region_from_host();
        assert_eq!(
            region("oss-cn-hangzhou.aliyuncs.com").as_deref(),
            Some("cn-hangzhou")
        );
        assert_eq!(
            region("oss-cn-shanghai-internal.aliyuncs.com").as_deref(),
            Some("cn-shanghai")
        );
        assert_eq!(
            region("bucket.oss-us-west-1.aliyuncs.com").as_deref(),
            Some("us-west-1")
        );
        assert_eq!(region("127.0.0.1:9000"), None);
    }

    fn args(
        endpoint: Option<&str>,
        region: Option<&str>,
        sig: SignatureVersionArg,
    ) -> ConnectionArgs {
        ConnectionArgs {
            endpoint: endpoint.map(str::to_owned),
            region: region.map(str::to_owned),
            signature: sig,
            max_attempts: 1,
        }
    }

    fn env(name: &str) -> Option<String> {
        match name {
            "OSS_ACCESS_KEY_ID" => Some("ak".to_owned()),
            "OSS_ACCESS_KEY_SECRET" => Some("sk".to_owned()),
            _ => None,
        }
    }

    #[test]
    fn a_region_alone_gives_its_public_endpoint() {
        let c = Connection::resolve_with(
            &args(None, Some("cn-hangzhou"), SignatureVersionArg::V4),
            env,
        )
        .unwrap();
        assert_eq!(c.endpoint.url(), "https://oss-cn-hangzhou.aliyuncs.com");
    }

    #[test]
    fn no_endpoint_and_no_region_is_a_usage_error() {
        let err =
            Connection::resolve_with(&args(None, None, SignatureVersionArg::V4), env).unwrap_err();
        assert!(err.message.contains("--endpoint"), "{}", err.message);
        assert_eq!(err.exit_code, crate::failure::EXIT_USAGE);
    }

    #[test]
    fn v4_without_a_region_says_how_to_give_one() {
        let err = Connection::resolve_with(
            &args(Some("127.0.0.1:1"), None, SignatureVersionArg::V4),
            env,
        )
        .unwrap_err();
        assert!(err.message.contains("OSS_REGION"), "{}", err.message);
        assert!(
            Connection::resolve_with(
                &args(Some("127.0.0.1:1"), None, SignatureVersionArg::V1),
                env
            )
            .is_ok()
        );
    }

    #[test]
    fn an_sts_token_over_plain_http_to_another_host_gets_a_note() {
        let sts = |name: &str| match name {
            "OSS_SESSION_TOKEN" => Some("TOKEN-VALUE-123".to_owned()),
            other => env(other),
        };
        let note = |endpoint: &str, lookup: &dyn Fn(&str) -> Option<String>| {
            Connection::resolve_with(&args(Some(endpoint), None, SignatureVersionArg::V1), lookup)
                .unwrap()
                .token_in_the_clear()
        };
        let text = note("http://oss.example.com", &sts).unwrap();
        assert!(text.contains("OSS_SESSION_TOKEN"), "{text}");
        assert!(text.contains("https://"), "{text}");
        assert!(!text.contains("TOKEN-VALUE-123"), "{text}");
        assert!(note("http://10.0.0.1:9000", &sts).is_some());
        assert_eq!(note("https://oss.example.com", &sts), None);
        assert_eq!(note("http://127.0.0.1:9000", &sts), None);
        assert_eq!(note("localhost:9000", &sts), None);
        assert_eq!(note("http://[::1]:9000", &sts), None);
        // Long-lived keys: no token to give away.
        assert_eq!(note("http://oss.example.com", &env), None);
    }

    #[test]
    fn a_missing_credential_variable_is_named() {
        let only_id = |name: &str| (name == "OSS_ACCESS_KEY_ID").then(|| "ak".to_owned());
        let err = Connection::resolve_with(
            &args(Some("127.0.0.1:1"), None, SignatureVersionArg::V1),
            only_id,
        )
        .unwrap_err();
        assert!(
            err.message.contains("OSS_ACCESS_KEY_SECRET"),
            "{}",
            err.message
        );
        let none = |_: &str| None;
        let err = Connection::resolve_with(
            &args(Some("127.0.0.1:1"), None, SignatureVersionArg::V1),
            none,
        )
        .unwrap_err();
        assert!(err.message.contains("OSS_ACCESS_KEY_ID"), "{}", err.message);
    }
}
