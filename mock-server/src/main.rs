//! `oss-mock`: runs the mock OSS server until SIGINT or SIGTERM.
//!
//! Its first line on stdout is `listening on http://HOST:PORT`, printed once it accepts connections;
//! everything else goes to stderr.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use oss_mock::{
    DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET, DEFAULT_DOMAIN, DEFAULT_REGION, Durability,
    MockConfig, MockServer, StsCredential,
};

/// A mock Alibaba Cloud OSS server: multipart upload, objects and buckets, V1/V4 signatures,
/// durable storage on disk.
#[derive(Debug, Parser)]
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
    /// Access key id to accept (with --access-key-secret). Default: test-ak.
    #[arg(long, value_name = "ID", requires = "access_key_secret")]
    access_key_id: Option<String>,
    /// Secret of --access-key-id. Default: test-sk.
    #[arg(long, value_name = "SECRET", requires = "access_key_id")]
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
    #[arg(long = "sts", value_name = "ID:SECRET:TOKEN[:EXPIRES_UNIX][:ACTIONS]")]
    sts: Vec<StsCredential>,
    /// Allow upload callbacks to HOST (repeatable): a host name, an IP address or a CIDR block.
    /// Loopback (127.0.0.0/8, ::1, localhost) is always allowed; a callback URL naming any other host
    /// is refused with 400 InvalidArgument and never requested.
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
}

fn main() -> ExitCode {
    let args = Args::parse();
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
    let mut config = MockConfig {
        listen,
        data_dir: args.data_dir.clone(),
        buckets: args.buckets.clone(),
        credentials: Vec::new(),
        region: args.region.clone(),
        domain: args.domain.clone(),
        sts: args.sts.clone(),
        callback_allow: args.callback_allow.clone(),
        durability: if args.no_fsync {
            Durability::ProcessCrash
        } else {
            Durability::PowerLoss
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
    for sts in &args.sts {
        eprintln!("oss-mock: accepting temporary credentials {sts}");
    }
    match &args.data_dir {
        Some(dir) => eprintln!("oss-mock: data in {}", dir.display()),
        None => eprintln!(
            "oss-mock: data in temporary directory {} (removed on exit)",
            server.data_dir().display()
        ),
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
