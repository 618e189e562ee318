//! `oss-mock`: runs the mock OSS server until SIGINT or SIGTERM.
//!
//! Its first line on stdout is `listening on http://HOST:PORT`, printed once it accepts connections;
//! everything else goes to stderr.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser};
use oss_mock::{
    DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET, DEFAULT_DOMAIN, DEFAULT_REGION, Durability,
    Limits, LinkShape, MockConfig, MockServer, StsCredential, parse_latency, parse_rate,
};

/// The environment variable holding temporary credentials when no --sts is given: specs separated
/// by white space.
const STS_ENV: &str = "OSS_MOCK_STS";

/// A mock Alibaba Cloud OSS server: multipart upload, objects and buckets, V1/V4 signatures,
/// durable storage on disk.
///
/// Secrets can come from the environment (OSS_MOCK_ACCESS_KEY_ID, OSS_MOCK_ACCESS_KEY_SECRET,
/// OSS_MOCK_CONTROL_TOKEN, OSS_MOCK_STS) or a file (--sts-file) instead of the command line, where
/// every user of the machine can read them.
// No `Debug`: the arguments hold secrets.
#[derive(Parser)]
#[command(name = "oss-mock", version)]
struct Args {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9000")]
    listen: String,
    /// Directory for buckets, objects and uploads (kept across restarts). Without it a temporary
    /// directory is used and removed on exit.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Create this bucket at start if missing (repeatable).
    #[arg(long = "bucket", value_name = "NAME")]
    buckets: Vec<String>,
    /// Access key id to accept (with --access-key-secret). Default: test-ak (refused beyond
    /// loopback).
    #[arg(
        long,
        value_name = "ID",
        requires = "access_key_secret",
        env = "OSS_MOCK_ACCESS_KEY_ID",
        hide_env_values = true
    )]
    access_key_id: Option<String>,
    /// Secret of --access-key-id. Default: test-sk. Prefer the environment variable: a command
    /// line is visible to every user of the machine.
    #[arg(
        long,
        value_name = "SECRET",
        requires = "access_key_id",
        env = "OSS_MOCK_ACCESS_KEY_SECRET",
        hide_env_values = true
    )]
    access_key_secret: Option<String>,
    /// Region reported by GetBucketInfo, without the oss- prefix.
    #[arg(long, value_name = "R", default_value = DEFAULT_REGION)]
    region: String,
    /// Base domain of virtual-hosted addressing: Host BUCKET.DOMAIN[:PORT] names the bucket.
    #[arg(long, value_name = "DOMAIN", default_value = DEFAULT_DOMAIN)]
    domain: String,
    /// Accept temporary (STS) credentials (repeatable): requests signed with ID must carry
    /// x-oss-security-token TOKEN, are refused after EXPIRES_UNIX (Unix seconds; empty: never), and may
    /// call only the RAM actions listed (comma-separated, e.g. oss:PutObject,oss:ListParts; absent:
    /// all). Example: STS.id:secret:token:1700000000:oss:PutObject,oss:ListParts.
    /// Without --sts and --sts-file, the specs in OSS_MOCK_STS (separated by white space) are used.
    #[arg(long = "sts", value_name = "ID:SECRET:TOKEN[:EXPIRES_UNIX][:ACTIONS]")]
    sts: Vec<StsCredential>,
    /// Accept the temporary credentials listed in FILE, one --sts spec per line (blank lines and
    /// lines starting with # are skipped): keeps their secrets off the command line.
    #[arg(long, value_name = "FILE")]
    sts_file: Option<PathBuf>,
    /// Require Authorization: Bearer TOKEN on the control routes (/_mock/...) and answer them for
    /// any peer that sends it. Without a token they answer loopback peers only.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "OSS_MOCK_CONTROL_TOKEN",
        hide_env_values = true
    )]
    control_token: Option<String>,
    /// Allow upload callbacks to HOST (repeatable): a host name, an IP address or a CIDR block.
    /// Loopback (127.0.0.0/8, ::1, localhost) is allowed without it while the server listens on
    /// loopback only; beyond loopback it must be listed too. A callback URL naming any other host is
    /// refused with 400 InvalidArgument and never requested.
    #[arg(long = "callback-allow", value_name = "HOST")]
    callback_allow: Vec<String>,
    /// Start with the fault rules in FILE, a JSON array (see docs/fault-injection.md); they can be
    /// replaced while the server runs with PUT /_mock/faults.
    #[arg(long, value_name = "FILE")]
    faults: Option<PathBuf>,
    /// Never fsync blobs, records or directories. A killed mock loses nothing, since written data
    /// stays in the page cache when a process dies; only a power loss or an OS crash could lose
    /// recent changes. For benchmarks on a slow disk.
    #[arg(long)]
    no_fsync: bool,
    /// Connections open at once; one more is answered 503 ServiceUnavailable at once and closed.
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_connections)]
    max_connections: usize,
    /// Seconds a client may take to send a request head (from the connection's opening, or from
    /// the head's first byte on a kept-alive connection); then the connection is closed.
    #[arg(long, value_name = "SECS", default_value_t = Limits::default().header_timeout.as_secs_f64())]
    header_timeout: f64,
    /// Seconds a connection may stay open with no request, or with a request body of which no byte
    /// arrives; then it is closed.
    #[arg(long, value_name = "SECS", default_value_t = Limits::default().idle_timeout.as_secs_f64())]
    idle_timeout: f64,
    /// Header fields in one request; more is answered 431 and the connection closed.
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_headers)]
    max_headers: usize,
    /// Bytes of one request head (request line and headers); more is answered 431 and the
    /// connection closed.
    #[arg(long, value_name = "BYTES", default_value_t = Limits::default().max_header_bytes)]
    max_header_bytes: usize,
    /// Bytes of a request's path and query; more is answered 400 InvalidArgument.
    #[arg(long, value_name = "BYTES", default_value_t = Limits::default().max_url_bytes)]
    max_url_bytes: usize,
    /// Read request bodies (uploads) no faster than RATE, all connections together: a link
    /// shared by every client (e.g. 200MiB/s). Changeable at run time with PUT /_mock/link.
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    link_bandwidth: Option<u64>,
    /// Read each connection's request bodies no faster than RATE, as a TCP flow whose window and
    /// round trip bound it (e.g. 16MiB/s).
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    conn_bandwidth: Option<u64>,
    /// Wait this long before looking at each request: a long link's round trip (e.g. 40ms).
    #[arg(long, value_name = "DURATION", value_parser = parse_latency)]
    latency: Option<Duration>,
    /// Work on at most N requests at once; one more is answered 503 SlowDown at once, as an
    /// overloaded OSS front end does.
    #[arg(long, value_name = "N")]
    max_inflight: Option<usize>,
}

/// A number of seconds from the command line as a duration; `what` names the flag.
fn seconds(what: &str, secs: f64) -> Result<Duration, String> {
    Duration::try_from_secs_f64(secs)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("{what} {secs}: give a positive number of seconds"))
}

/// The temporary credentials in an --sts-file: one spec per line, `#` comments and blank lines
/// skipped. Errors name the file and line, never the secret in it.
fn read_sts_file(path: &Path) -> Result<Vec<StsCredential>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read --sts-file {}: {e}", path.display()))?;
    parse_sts_lines(&text).map_err(|(line, e)| {
        format!(
            "--sts-file {} line {line}: {}",
            path.display(),
            e.split_once(": ").map_or(e.as_str(), |(_, why)| why)
        )
    })
}

/// Specs separated by line breaks or other white space; `#` starts a comment to the end of its
/// line. `Err` holds the 1-based line and the error.
fn parse_sts_lines(text: &str) -> Result<Vec<StsCredential>, (usize, String)> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or_default();
        for spec in line.split_whitespace() {
            out.push(spec.parse().map_err(|e: String| (n + 1, e))?);
        }
    }
    Ok(out)
}

fn main() -> ExitCode {
    let matches = Args::command().get_matches();
    let args = match Args::from_arg_matches(&matches) {
        Ok(args) => args,
        Err(e) => e.exit(),
    };
    let on_command_line = |id: &str| matches.value_source(id) == Some(ValueSource::CommandLine);
    let mut notes = Vec::new();
    if on_command_line("access_key_secret") {
        notes.push("--access-key-secret");
    }
    if on_command_line("control_token") {
        notes.push("--control-token");
    }
    if !args.sts.is_empty() {
        notes.push("--sts");
    }
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("oss_mock=info")),
        )
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(64)
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("oss-mock: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    for flag in notes {
        eprintln!(
            "oss-mock: note: {flag} on the command line is visible to every user of this machine (ps); the environment (OSS_MOCK_*) or --sts-file keeps it private"
        );
    }
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("oss-mock: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let listen = tokio::net::lookup_host(&args.listen)
        .await
        .map_err(|e| format!("cannot resolve --listen {}: {e}", args.listen))?
        .next()
        .ok_or_else(|| format!("--listen {} resolves to no address", args.listen))?;
    let mut sts = args.sts.clone();
    if let Some(path) = &args.sts_file {
        sts.extend(read_sts_file(path)?);
    }
    if args.sts.is_empty()
        && args.sts_file.is_none()
        && let Ok(specs) = std::env::var(STS_ENV)
    {
        sts = parse_sts_lines(&specs).map_err(|(_, e)| {
            format!(
                "{STS_ENV}: {}",
                e.split_once(": ").map_or(e.as_str(), |(_, why)| why)
            )
        })?;
    }
    let limits = Limits {
        max_connections: args.max_connections,
        header_timeout: seconds("--header-timeout", args.header_timeout)?,
        idle_timeout: seconds("--idle-timeout", args.idle_timeout)?,
        max_headers: args.max_headers,
        max_header_bytes: args.max_header_bytes,
        max_url_bytes: args.max_url_bytes,
    };
    let mut config = MockConfig {
        listen,
        data_dir: args.data_dir.clone(),
        buckets: args.buckets.clone(),
        credentials: Vec::new(),
        region: args.region.clone(),
        domain: args.domain.clone(),
        sts: sts.clone(),
        callback_allow: args.callback_allow.clone(),
        durability: if args.no_fsync {
            Durability::ProcessCrash
        } else {
            Durability::PowerLoss
        },
        control_token: args.control_token.clone().filter(|t| !t.is_empty()),
        limits,
        link: LinkShape {
            link_bandwidth: args.link_bandwidth,
            conn_bandwidth: args.conn_bandwidth,
            latency: args.latency.unwrap_or_default(),
            max_inflight: args.max_inflight,
        },
        ..MockConfig::default()
    };
    if let Some(path) = &args.faults {
        let json = std::fs::read(path)
            .map_err(|e| format!("cannot read --faults {}: {e}", path.display()))?;
        let rules = oss_mock::parse_fault_rules(&json)
            .map_err(|e| format!("--faults {}: {e}", path.display()))?;
        config = config.with_faults(rules);
    }
    if let (Some(id), Some(secret)) = (&args.access_key_id, &args.access_key_secret) {
        config = config.with_credentials(id.clone(), secret.clone());
    }
    let server = MockServer::start(config)
        .await
        .map_err(|e| format!("cannot start: {e}"))?;
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "listening on {}", server.endpoint())
            .and_then(|()| stdout.flush())
            .map_err(|e| format!("cannot write to stdout: {e}"))?;
    }
    if args.access_key_id.is_none() {
        eprintln!(
            "oss-mock: accepting access key id {DEFAULT_ACCESS_KEY_ID} with secret {DEFAULT_ACCESS_KEY_SECRET} (set --access-key-id and --access-key-secret to change)"
        );
    }
    for sts in &sts {
        eprintln!("oss-mock: accepting temporary credentials {sts}");
    }
    let addr = server.addr();
    if !addr.ip().to_canonical().is_loopback() {
        let control = if args.control_token.as_deref().is_some_and(|t| !t.is_empty()) {
            "the control API (/_mock/: fault rules, counters) answers requests carrying the control token"
        } else {
            "the control API (/_mock/) answers loopback peers only (no --control-token)"
        };
        let callbacks = if args.callback_allow.is_empty() {
            "upload callbacks are refused (none allowed with --callback-allow; loopback is not implied beyond loopback)".to_owned()
        } else {
            format!(
                "upload callbacks go only to {} (failures say only \"callback failed\")",
                args.callback_allow.join(", ")
            )
        };
        eprintln!(
            "oss-mock: WARNING: listening on {addr}, beyond loopback: the OSS API is reachable from other machines for requests signed with the configured keys; {control}; {callbacks}"
        );
    }
    match &args.data_dir {
        Some(dir) => eprintln!("oss-mock: data in {}", dir.display()),
        None => eprintln!(
            "oss-mock: data in temporary directory {} (removed on exit)",
            server.data_dir().display()
        ),
    }
    let link = server.link();
    if link != LinkShape::default() {
        eprintln!("oss-mock: link shaped: {}", describe_link(&link));
    }
    if args.no_fsync {
        eprintln!(
            "oss-mock: --no-fsync: nothing is fsynced; data survives this process being killed, not a power loss"
        );
    }
    wait_for_signal().await?;
    eprintln!("oss-mock: stopping");
    server.shutdown().await;
    Ok(())
}

/// The link's shape in words, for the start-up note.
fn describe_link(link: &LinkShape) -> String {
    let rate = |r: Option<u64>| {
        r.map_or("no cap".to_owned(), |r| {
            format!("{:.1} MiB/s", r as f64 / f64::from(1 << 20))
        })
    };
    format!(
        "link {}, per connection {}, latency {:?}, at most {} requests in flight",
        rate(link.link_bandwidth),
        rate(link.conn_bandwidth),
        link.latency,
        link.max_inflight
            .map_or("any number of".to_owned(), |n| n.to_string())
    )
}

async fn wait_for_signal() -> Result<(), String> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate =
        signal(SignalKind::terminate()).map_err(|e| format!("cannot handle SIGTERM: {e}"))?;
    let mut interrupt =
        signal(SignalKind::interrupt()).map_err(|e| format!("cannot handle SIGINT: {e}"))?;
    tokio::select! {
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sts_lines_skip_comments_and_blank_lines_and_name_the_bad_line() {
        let specs = parse_sts_lines(
            "# temporary keys\nSTS.a:s1:t1\n\n  STS.b:s2:t2:1700000000 # expires\nSTS.c:s3:t3 STS.d:s4:t4\n",
        )
        .unwrap();
        let ids: Vec<&str> = specs.iter().map(|s| s.access_key_id.as_str()).collect();
        assert_eq!(ids, ["STS.a", "STS.b", "STS.c", "STS.d"]);
        let (line, err) = parse_sts_lines("STS.a:s:t\nbroken\n").unwrap_err();
        assert_eq!(line, 2);
        assert!(err.contains("expected ID:SECRET:TOKEN"), "{err}");
    }

    #[test]
    fn timeouts_must_be_positive_seconds() {
        assert_eq!(seconds("--x", 1.5).unwrap(), Duration::from_millis(1500));
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(seconds("--x", bad).is_err(), "{bad}");
        }
    }
}
