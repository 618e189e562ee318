//! One run of `ossup upload --progress json` (a file or a tree) as a child process: its JSON lines
//! read as they come, killed with SIGKILL at the planned moment (or the server killed and restarted
//! under it), and a watchdog for runs a `stall` fault holds.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::mock::{BUCKET, Mock};
use super::plan::{Interruption, Moment, Plan, Scheduler, Store};
use super::verify::{ACCESS_KEY_ID, ACCESS_KEY_SECRET, Net, REGION};

/// How long a run may print nothing while the server holds one of its requests in a `stall`
/// before it is killed, as a person would kill a hung upload. `ossup` waits up to 120 s for an
/// answer before it gives up on a request; waiting that out would make a long chaos run mostly
/// waiting.
const STALL_PATIENCE: Duration = Duration::from_secs(3);
/// How long a run may take in all before it is killed and counted as hung.
pub(super) const RUN_LIMIT: Duration = Duration::from_secs(300);
/// What the child logs to its stderr file, beside its own messages.
const CHILD_LOG: &str = "ossup=debug";
/// How many of its last log lines a hung run reports.
const HUNG_LOG_LINES: usize = 30;
/// How often the run is looked at.
const TICK: Duration = Duration::from_millis(20);

/// Why a run was killed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kill {
    /// The plan said so.
    Planned,
    /// It printed nothing while one of its requests was stalled.
    Watchdog,
    /// It ran past [`RUN_LIMIT`].
    Hung,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum End {
    /// It exited by itself with this status code.
    Exited(i32),
    /// It was killed.
    Killed(Kill),
    /// It died of a signal nobody sent on purpose.
    Crashed(i32),
}

/// What one run did.
#[derive(Debug)]
pub(super) struct Run {
    /// Its JSON lines, in order.
    pub events: Vec<Value>,
    /// Lines on stdout that were not JSON objects.
    pub stray_lines: Vec<String>,
    /// How it ended.
    pub end: End,
    /// Server stats taken just before each server kill of this run.
    pub stats_before_server_kills: Vec<Value>,
    /// How many times the server was killed and restarted during it.
    pub server_restarts: u32,
    /// The end of its stderr, without log lines: its own messages.
    pub stderr_tail: String,
    /// The end of its log, when it hung.
    pub log_tail: String,
}

/// What every run of one iteration shares.
#[derive(Debug)]
pub(super) struct Upload<'a> {
    /// The `ossup` binary.
    pub ossup: &'a Path,
    /// The file.
    pub file: &'a Path,
    /// The object key.
    pub key: &'a str,
    /// The plan (part size, store, scheduler).
    pub plan: &'a Plan,
    /// The checkpoint directory or database.
    pub checkpoints: &'a Path,
    /// Where each run's stderr goes.
    pub stderr: &'a Path,
}

impl Upload<'_> {
    /// The command line of a run, as a person would type it.
    pub(super) fn args(&self, endpoint: &str) -> Vec<String> {
        let mut args = vec![
            "upload".to_owned(),
            self.file.display().to_string(),
            format!("oss://{BUCKET}/{}", self.key),
            "--endpoint".to_owned(),
            endpoint.to_owned(),
            "--region".to_owned(),
            REGION.to_owned(),
            "--part-size".to_owned(),
            self.plan.part_size.to_string(),
            store_flag(self.plan.store).to_owned(),
            self.checkpoints.display().to_string(),
            "--progress".to_owned(),
            "json".to_owned(),
        ];
        args.extend(scheduler_args(self.plan.scheduler));
        args
    }

    /// Runs `ossup` once, carrying out `interruption` if the run lasts long enough for it.
    pub(super) fn run(
        &self,
        mock: &mut Mock,
        net: &Net,
        interruption: Option<Interruption>,
    ) -> Result<Run, String> {
        let args = self.args(&mock.endpoint());
        run_ossup(self.ossup, &args, self.stderr, mock, net, interruption)
    }
}

/// The flag that names the checkpoint store.
pub(super) fn store_flag(store: Store) -> &'static str {
    match store {
        Store::Files => "--checkpoint-dir",
        Store::Sqlite => "--checkpoint-db",
    }
}

/// The flags of the scheduler.
pub(super) fn scheduler_args(scheduler: Scheduler) -> Vec<String> {
    match scheduler {
        Scheduler::Sequential => vec!["--sequential".to_owned()],
        Scheduler::Parallel(n) => vec!["--parallel".to_owned(), n.to_string()],
        Scheduler::Auto(n) => vec![
            "--parallel".to_owned(),
            "auto".to_owned(),
            "--max-parallel".to_owned(),
            n.to_string(),
        ],
    }
}

/// What a run reads on its standard input: the first `len` bytes of `data`, written by a thread
/// that then closes the pipe (a writer that dies part way closes it early, as a killed `pg_dump`
/// would).
#[derive(Debug, Clone)]
pub(super) struct Feed {
    /// The stream's bytes.
    pub data: std::sync::Arc<Vec<u8>>,
    /// How many of them the writer gets out before the pipe closes.
    pub len: usize,
}

/// Runs `ossup ARGS` once against `mock`, its stderr (with its log) in `stderr_path`, carrying out
/// `interruption` if the run lasts long enough for it.
pub(super) fn run_ossup(
    ossup: &Path,
    args: &[String],
    stderr_path: &Path,
    mock: &mut Mock,
    net: &Net,
    interruption: Option<Interruption>,
) -> Result<Run, String> {
    run_ossup_fed(ossup, args, stderr_path, mock, net, interruption, None)
}

/// As [`run_ossup`], with `feed` on the run's standard input when there is one.
pub(super) fn run_ossup_fed(
    ossup: &Path,
    args: &[String],
    stderr_path: &Path,
    mock: &mut Mock,
    net: &Net,
    interruption: Option<Interruption>,
    feed: Option<Feed>,
) -> Result<Run, String> {
    let endpoint = mock.endpoint();
    let stderr = File::create(stderr_path)
        .map_err(|e| format!("cannot create {}: {e}", stderr_path.display()))?;
    let mut child = Command::new(ossup)
        .args(args)
        .env("OSS_ACCESS_KEY_ID", ACCESS_KEY_ID)
        .env("OSS_ACCESS_KEY_SECRET", ACCESS_KEY_SECRET)
        .env_remove("OSS_SESSION_TOKEN")
        .env_remove("OSS_ENDPOINT")
        .env_remove("OSS_REGION")
        // The engine's step-by-step log: what a hung or failed run was doing when it ended.
        .env("RUST_LOG", CHILD_LOG)
        .stdin(if feed.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", ossup.display()))?;
    if let (Some(feed), Some(mut stdin)) = (feed, child.stdin.take()) {
        thread::spawn(move || {
            use std::io::Write as _;
            // A killed reader closes the pipe: the writer just stops.
            for chunk in feed.data[..feed.len].chunks(64 << 10) {
                if stdin.write_all(chunk).is_err() {
                    return;
                }
            }
        });
    }
    let lines = read_lines(&mut child);
    let mut run = Run {
        events: Vec::new(),
        stray_lines: Vec::new(),
        end: End::Exited(-1),
        stats_before_server_kills: Vec::new(),
        server_restarts: 0,
        stderr_tail: String::new(),
        log_tail: String::new(),
    };
    let mut pending = interruption;
    let started = Instant::now();
    let mut last_line = started;
    let mut last_watchdog_look = started;
    let mut files = 0;
    let end = loop {
        let mut stdout_closed = false;
        match lines.recv_timeout(TICK) {
            Ok(line) => {
                last_line = Instant::now();
                match serde_json::from_str::<Value>(&line) {
                    Ok(value) if value.is_object() => {
                        files += usize::from(value["event"] == "file");
                        run.events.push(value);
                    }
                    _ => run.stray_lines.push(line),
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => stdout_closed = true,
        }
        if let Some(interruption) = pending
            && due(interruption, started, run.events.len(), files)
        {
            pending = None;
            match interruption {
                Interruption::Client(_) => break kill(&mut child, Kill::Planned),
                Interruption::Server {
                    client_too,
                    down_ms,
                    ..
                } => {
                    run.stats_before_server_kills.push(net.stats(&endpoint)?);
                    mock.kill();
                    let end = client_too.then(|| kill(&mut child, Kill::Planned));
                    thread::sleep(Duration::from_millis(down_ms));
                    mock.restart()?;
                    run.server_restarts += 1;
                    if let Some(end) = end {
                        break end;
                    }
                }
            }
        }
        if stdout_closed {
            let status = child
                .wait()
                .map_err(|e| format!("waiting for ossup: {e}"))?;
            break exit_end(status);
        }
        if last_line.elapsed() > STALL_PATIENCE
            && last_watchdog_look.elapsed() > Duration::from_secs(1)
        {
            last_watchdog_look = Instant::now();
            let stalled = net
                .stats(&endpoint)
                .ok()
                .and_then(|s| s["stalled_requests"].as_u64())
                .unwrap_or(0);
            if stalled > 0 {
                break kill(&mut child, Kill::Watchdog);
            }
        }
        if started.elapsed() > RUN_LIMIT {
            break kill(&mut child, Kill::Hung);
        }
    };
    // Lines printed before the process ended are part of the run.
    while let Ok(line) = lines.recv_timeout(Duration::from_secs(2)) {
        match serde_json::from_str::<Value>(&line) {
            Ok(value) if value.is_object() => run.events.push(value),
            _ => run.stray_lines.push(line),
        }
    }
    run.end = end;
    let stderr = std::fs::read_to_string(stderr_path).unwrap_or_default();
    let (log, messages): (Vec<&str>, Vec<&str>) = stderr.lines().partition(|l| is_log_line(l));
    run.stderr_tail = last_lines(&messages, 8);
    if run.end == End::Killed(Kill::Hung) {
        run.log_tail = last_lines(&log, HUNG_LOG_LINES);
    }
    Ok(run)
}

/// Whether `line` is one of the log's (`2026-01-01T00:00:00.000000Z DEBUG ...`), not a message.
fn is_log_line(line: &str) -> bool {
    let bytes = line.as_bytes();
    bytes.len() > 20
        && bytes[..4].iter().all(u8::is_ascii_digit)
        && bytes[4] == b'-'
        && bytes[10] == b'T'
}

fn last_lines(lines: &[&str], n: usize) -> String {
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Whether the interruption's moment has come, `lines` JSON lines and `files` of them file results
/// into the run.
fn due(interruption: Interruption, started: Instant, lines: usize, files: usize) -> bool {
    let moment = match interruption {
        Interruption::Client(at) | Interruption::Server { at, .. } => at,
    };
    match moment {
        Moment::AfterMs(ms) => started.elapsed() >= Duration::from_millis(ms),
        Moment::AfterLines(n) => lines >= n,
        Moment::FileResults(n) => files >= n,
    }
}

/// Kills the child with SIGKILL; a child that had already ended by itself keeps its own ending.
fn kill(child: &mut Child, why: Kill) -> End {
    let _ = child.kill();
    match child.wait() {
        Ok(status) if status.signal() == Some(SIGKILL) => End::Killed(why),
        Ok(status) => exit_end(status),
        Err(_) => End::Killed(why),
    }
}

fn exit_end(status: ExitStatus) -> End {
    match (status.code(), status.signal()) {
        (Some(code), _) => End::Exited(code),
        (None, signal) => End::Crashed(signal.unwrap_or(0)),
    }
}

/// The signal `Child::kill` sends on Unix.
const SIGKILL: i32 = 9;

/// The child's stdout, line by line, from a thread; the channel closes at end of file.
pub(super) fn read_lines(child: &mut Child) -> Receiver<String> {
    let stdout = child.stdout.take().expect("stdout is piped");
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}
