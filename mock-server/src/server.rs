//! The running server: listener, connections, and how it stops.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::{JoinHandle, JoinSet};

use crate::auth::{Authenticator, Secret, StsCredential, StsRegistry};
use crate::callback::{CallbackPolicy, PeerAddr};
use crate::config::{DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET, Limits, MockConfig};
use crate::conn::{self, Activity, Watched};
use crate::faults::action::ConnectionDropped;
use crate::faults::armed::Faults;
use crate::faults::{FaultRule, FaultRuleError, RuleReport};
use crate::ids::Ids;
use crate::link::{self, Link, LinkShape};
use crate::route::valid_bucket_name;
use crate::service::{self, App};
use crate::stats::Stats;
use crate::storage::Store;

/// hyper's read buffer per connection (at least; a larger head limit raises it). Body chunks are
/// written to disk as they come, so a small buffer keeps memory flat however many parts arrive at
/// once.
const MAX_READ_BUFFER: usize = 64 * 1024;
/// How long a graceful shutdown waits for requests in flight.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A running mock OSS server.
///
/// Dropping it stops it at once (connections are cut); [`shutdown`](Self::shutdown) lets requests in
/// flight finish first. A temporary data directory is removed when the server is dropped.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// use oss_mock::{MockConfig, MockServer};
/// let server = MockServer::start(MockConfig::default().with_bucket("bucket")).await?;
/// assert!(server.endpoint().starts_with("http://127.0.0.1:"));
/// assert!(server.data_dir().join("buckets/bucket").is_dir());
/// server.shutdown().await;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct MockServer {
    addr: SocketAddr,
    data_dir: PathBuf,
    stats: Arc<Stats>,
    sts: Arc<StsRegistry>,
    faults: Arc<Faults>,
    store: Arc<Store>,
    link: Arc<Link>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
    // Declared last: removed after the connections that write into it are stopped.
    _temp_dir: Option<tempfile::TempDir>,
}

impl MockServer {
    /// Opens (or creates) the data directory, recovers it, creates the configured buckets and starts
    /// listening.
    ///
    /// Fails when the address cannot be bound, a configured bucket name is not legal, a
    /// `callback_allow` entry is not a host, address or CIDR block, a limit would refuse ordinary
    /// requests, the address is beyond loopback while the public default key is accepted, or the
    /// data directory is unusable or damaged (the error names the file).
    pub async fn start(config: MockConfig) -> io::Result<MockServer> {
        let invalid = |e: String| io::Error::new(io::ErrorKind::InvalidInput, e);
        config.limits.validate().map_err(invalid)?;
        config.link.validate().map_err(invalid)?;
        let exposed = !config.listen.ip().to_canonical().is_loopback();
        if exposed
            && config.effective_credentials().iter().any(|(id, secret)| {
                id == DEFAULT_ACCESS_KEY_ID && secret == DEFAULT_ACCESS_KEY_SECRET
            })
        {
            return Err(invalid(format!(
                "refusing to listen on {} with the public default access key {DEFAULT_ACCESS_KEY_ID}: the address is reachable beyond this machine and anyone may know that key; give a key of your own (oss-mock --access-key-id and --access-key-secret, or OSS_MOCK_ACCESS_KEY_ID and OSS_MOCK_ACCESS_KEY_SECRET; MockConfig::with_credentials), or listen on 127.0.0.1",
                config.listen
            )));
        }
        let callback =
            CallbackPolicy::new(&config.callback_allow, config.callback_timeout, exposed)
                .map_err(invalid)?;
        let sts = Arc::new(StsRegistry::new(&config.sts));
        let faults = Arc::new(Faults::new());
        faults
            .set(config.faults.clone())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        for bucket in &config.buckets {
            if !valid_bucket_name(bucket) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "invalid bucket name {bucket:?}: use 3 to 63 lowercase letters, digits and hyphens, starting and ending with a letter or digit"
                    ),
                ));
            }
        }
        let (data_dir, temp_dir) = match &config.data_dir {
            Some(dir) => (dir.clone(), None),
            None => {
                let temp = tempfile::Builder::new().prefix("oss-mock-").tempdir()?;
                (temp.path().to_path_buf(), Some(temp))
            }
        };
        let ids = Arc::new(Ids::new());
        let store = {
            let (dir, ids, buckets) = (data_dir.clone(), Arc::clone(&ids), config.buckets.clone());
            let durability = config.durability;
            tokio::task::spawn_blocking(move || -> io::Result<Store> {
                let store = Store::open(&dir, ids, durability)?;
                for bucket in &buckets {
                    store
                        .ensure_bucket(bucket)
                        .map_err(|e| io::Error::other(format!("creating bucket {bucket}: {e}")))?;
                }
                Ok(store)
            })
            .await
            .map_err(io::Error::other)??
        };
        let listener = TcpListener::bind(config.listen).await?;
        let addr = listener.local_addr()?;
        let stats = Arc::new(Stats::default());
        let app = Arc::new(App {
            store: Arc::new(store),
            stats: Arc::clone(&stats),
            faults: Arc::clone(&faults),
            auth: Authenticator::new(
                &config.effective_credentials(),
                Arc::clone(&sts),
                config.region.clone(),
            ),
            ids,
            domain: config.domain.clone(),
            region: config.region.clone(),
            endpoint_host: addr.to_string(),
            callback,
            control_token: config.control_token.clone().map(Secret::new),
            max_url_bytes: config.limits.max_url_bytes,
            link: Arc::new(Link::new(config.link)),
        });
        let store = Arc::clone(&app.store);
        let link = Arc::clone(&app.link);
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(accept_loop(listener, app, config.limits.clone(), stopped));
        Ok(MockServer {
            addr,
            data_dir,
            stats,
            sts,
            faults,
            store,
            link,
            stop,
            task: Some(task),
            _temp_dir: temp_dir,
        })
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The path-style endpoint, e.g. `http://127.0.0.1:40123`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The directory holding the server's data.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The server's live counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Accepts `credential` from now on, replacing the temporary credentials with the same access
    /// key id: a test can issue a fresh token mid-upload, or expire one.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// use oss_mock::{MockConfig, MockServer, StsCredential};
    /// let server = MockServer::start(MockConfig::default()).await?;
    /// server.set_sts_credential(StsCredential::new("STS.id", "secret", "token-2"));
    /// assert!(server.remove_sts_credential("STS.id"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn set_sts_credential(&self, credential: StsCredential) {
        self.sts.set(credential);
    }

    /// Stops accepting the temporary credentials with this access key id; whether there were any.
    pub fn remove_sts_credential(&self, access_key_id: &str) -> bool {
        self.sts.remove(access_key_id)
    }

    /// Replaces the fault rules in force (and their counters) with `rules`; an empty list clears
    /// them. Nothing changes when a rule is invalid; the error names it.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// use oss_mock::{FaultAction, FaultRule, MockConfig, MockServer};
    /// use ossup_proto::Api;
    /// let server = MockServer::start(MockConfig::default().with_bucket("bucket")).await?;
    /// // The second UploadPart of any upload is answered 503, once.
    /// server
    ///     .set_faults(vec![FaultRule::new(FaultAction::error(503, "ServiceUnavailable"))
    ///         .api(Api::UploadPart)
    ///         .nth(2)])
    ///     .expect("valid rules");
    /// assert_eq!(server.fault_report()[0].fired, 0);
    /// server.clear_faults();
    /// assert!(server.faults().is_empty());
    /// # Ok(())
    /// # }
    /// ```
    pub fn set_faults(&self, rules: Vec<FaultRule>) -> Result<(), FaultRuleError> {
        self.faults.set(rules)
    }

    /// Removes every fault rule.
    pub fn clear_faults(&self) {
        self.faults.clear();
    }

    /// The fault rules in force, each with the seed it runs with (the one given, or the one the
    /// server picked).
    pub fn faults(&self) -> Vec<FaultRule> {
        self.faults.rules()
    }

    /// What each fault rule in force has done: requests matched, faults fired. Totals per action kind
    /// since the start are in [`stats`](Self::stats).
    pub fn fault_report(&self) -> Vec<RuleReport> {
        self.faults.report()
    }

    /// Requests a `stall` rule holds right now.
    pub fn stalled_requests(&self) -> u64 {
        self.faults.stalled_now()
    }

    /// Replaces the shape of the link the server pretends to sit behind; connections follow it from
    /// their next chunk on. Nothing changes when the shape is refused; the error names the setting.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// use oss_mock::{LinkShape, MockConfig, MockServer};
    /// let server = MockServer::start(MockConfig::default()).await?;
    /// let thin = LinkShape { conn_bandwidth: Some(4 << 20), max_inflight: Some(12), ..LinkShape::default() };
    /// server.set_link(thin).expect("a valid shape");
    /// assert_eq!(server.link(), thin);
    /// assert_eq!(server.in_flight_requests(), 0);
    /// # Ok(())
    /// # }
    /// ```
    pub fn set_link(&self, shape: LinkShape) -> Result<(), String> {
        self.link.set(shape)
    }

    /// The shape of the link in force.
    pub fn link(&self) -> LinkShape {
        self.link.shape()
    }

    /// OSS requests the server is working on right now (admitted by the ceiling, not yet answered).
    pub fn in_flight_requests(&self) -> usize {
        self.link.in_flight()
    }

    /// Multipart uploads open right now, in every bucket.
    pub fn open_uploads(&self) -> usize {
        self.store.open_upload_count()
    }

    /// Stops accepting connections, lets requests in flight finish (up to a few seconds), then stops.
    /// Stalled requests end at once.
    pub async fn shutdown(mut self) {
        self.faults.close();
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        self.faults.close();
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    app: Arc<App>,
    limits: Limits,
    mut stopped: watch::Receiver<bool>,
) {
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        // The connection's own watch (conn.rs) closes slow heads and idle connections; hyper's
        // timer is only a backstop behind it.
        .header_read_timeout(limits.idle_timeout + limits.header_timeout + Duration::from_secs(1))
        .max_headers(limits.max_headers)
        .max_header_size(limits.max_header_bytes)
        .max_buf_size(MAX_READ_BUFFER.max(limits.max_header_bytes))
        .keep_alive(true);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let refusals = Arc::new(Semaphore::new(conn::MAX_REFUSALS));
    loop {
        while connections.try_join_next().is_some() {}
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stopped.changed() => break,
        };
        let _ = stream.set_nodelay(true);
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            // Over the cap: a clear answer at once rather than a connection left hanging. Past
            // MAX_REFUSALS refusals in progress the connection is simply closed.
            tracing::warn!(
                "refusing a connection from {peer}: {} connections open (--max-connections)",
                limits.max_connections
            );
            if let Ok(refusing) = Arc::clone(&refusals).try_acquire_owned() {
                let answer = conn::refusal(
                    &app.ids.request_id(),
                    &app.endpoint_host,
                    limits.max_connections,
                );
                connections.spawn(async move {
                    conn::refuse(stream, answer).await;
                    drop(refusing);
                });
            }
            continue;
        };
        let activity = Activity::new(limits.header_timeout, limits.idle_timeout);
        let check_every = activity.check_every();
        let connection = Arc::new(link::Connection::default());
        let service = {
            let (app, activity) = (Arc::clone(&app), Arc::clone(&activity));
            service_fn(move |mut request: http::Request<hyper::body::Incoming>| {
                // The head is complete: from now until its answer is sent, the request is in
                // flight and the connection is not idle.
                let in_flight = activity.request_started();
                request.extensions_mut().insert(PeerAddr(peer));
                request.extensions_mut().insert(Arc::clone(&activity));
                request.extensions_mut().insert(Arc::clone(&connection));
                let app = Arc::clone(&app);
                async move {
                    let response = service::handle(app, request).await?;
                    Ok::<_, ConnectionDropped>(
                        response.map(|body| conn::hold_until_sent(body, in_flight)),
                    )
                }
            })
        };
        let io = TokioIo::new(Watched::new(stream, Arc::clone(&activity)));
        let connection = graceful.watch(builder.serve_connection(io, service));
        connections.spawn(async move {
            let mut connection = std::pin::pin!(connection);
            let mut check = tokio::time::interval(check_every);
            check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    ended = &mut connection => {
                        if let Err(e) = ended {
                            tracing::debug!("connection from {peer} ended: {e}");
                        }
                        break;
                    }
                    _ = check.tick() => {
                        if let Some(why) = activity.expired(std::time::Instant::now()) {
                            // Dropping the connection closes the socket.
                            tracing::debug!("closing the connection from {peer}: {why}");
                            break;
                        }
                    }
                }
            }
            drop(slot);
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown()).await;
    connections.shutdown().await;
}
