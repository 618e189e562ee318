//! The release `oss-mock` as the benchmarks run it: one fresh server per measured run, on a free
//! loopback port, with its data directory under `target/bench/`.
//!
//! A fresh server per run makes its `VmHWM` the peak of that run alone, and dropping it (kill, then
//! remove the data directory) keeps the disk from filling up over dozens of 1 GiB uploads.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use crate::cmd::Failure;

use super::process::{cpu_secs, peak_rss};

/// The bucket the benchmarks upload to.
pub const BUCKET: &str = "bench";
/// The credentials and region the mock accepts when started without flags.
pub const ACCESS_KEY_ID: &str = "test-ak";
/// The secret of [`ACCESS_KEY_ID`].
pub const ACCESS_KEY_SECRET: &str = "test-sk";
/// The mock's region.
pub const REGION: &str = "cn-hangzhou";
/// How long the mock may take to print its listening line.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(30);

/// A running `oss-mock`, killed and its data removed when dropped.
#[derive(Debug)]
pub struct Mock {
    child: Child,
    endpoint: String,
    data_dir: PathBuf,
    log: PathBuf,
}

impl Mock {
    /// Starts `binary` with an empty `data_dir` (removed first if it exists) and its stderr in `log`;
    /// without `fsync`, as `oss-mock --no-fsync`.
    pub fn start(binary: &Path, data_dir: &Path, fsync: bool, log: &Path) -> Result<Self, Failure> {
        remove_dir(data_dir)?;
        std::fs::create_dir_all(data_dir).map_err(|e| {
            Failure::new(format!(
                "could not create the mock's data directory {}: {e}",
                data_dir.display()
            ))
        })?;
        let stderr = File::create(log)
            .map_err(|e| Failure::new(format!("could not create {}: {e}", log.display())))?;
        let mut child = Command::new(binary)
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--bucket")
            .arg(BUCKET)
            .args(if fsync { None } else { Some("--no-fsync") })
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .map_err(|e| Failure::new(format!("could not start {}: {e}", binary.display())))?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let (first_line, lines) = mpsc::channel();
        thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let read = reader.read_line(&mut line).map(|_| line);
            let _ = first_line.send(read);
            // Keep reading so the mock never blocks on a full pipe.
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        });
        let mut mock = Self {
            child,
            endpoint: String::new(),
            data_dir: data_dir.to_owned(),
            log: log.to_owned(),
        };
        let line = match lines.recv_timeout(LISTEN_TIMEOUT) {
            Ok(Ok(line)) => line,
            Ok(Err(e)) => return Err(mock.failed(&format!("reading its stdout failed: {e}"))),
            Err(_) => {
                return Err(mock.failed(&format!("it printed no line within {LISTEN_TIMEOUT:?}")));
            }
        };
        match line.trim().strip_prefix("listening on ") {
            Some(endpoint) if endpoint.starts_with("http://") => {
                mock.endpoint = endpoint.to_owned();
                Ok(mock)
            }
            _ => Err(mock.failed(&format!(
                "its first line is {line:?}, expected `listening on http://HOST:PORT`"
            ))),
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The mock's peak resident set since it started, in bytes.
    pub fn peak_rss(&self) -> Option<u64> {
        peak_rss(self.child.id())
    }

    /// CPU seconds (user + system) the mock has used since it started.
    pub fn cpu_secs(&self) -> Option<f64> {
        cpu_secs(self.child.id())
    }

    /// The last lines of the mock's stderr, for a failure message.
    pub fn log_tail(&self) -> String {
        log_tail(&self.log, 20)
    }

    fn failed(&mut self, what: &str) -> Failure {
        let _ = self.child.kill();
        let _ = self.child.wait();
        Failure::new(format!(
            "the mock server did not start: {what}\n{}",
            self.log_tail()
        ))
    }
}

impl Drop for Mock {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Err(e) = remove_dir(&self.data_dir) {
            eprintln!("warning: {e}");
        }
    }
}

/// Removes `dir` and everything in it; a missing directory is fine.
pub fn remove_dir(dir: &Path) -> Result<(), Failure> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Failure::new(format!(
            "could not remove {}: {e}",
            dir.display()
        ))),
    }
}

/// The last `lines` lines of the text file `path`, headed by its name; empty when it cannot be read.
pub fn log_tail(path: &Path, lines: usize) -> String {
    let Ok(text) = std::fs::read_to_string(path) else {
        return String::new();
    };
    let all: Vec<&str> = text.lines().collect();
    let tail = &all[all.len().saturating_sub(lines)..];
    if tail.is_empty() {
        return String::new();
    }
    format!(
        "--- last {} lines of {} ---\n{}",
        tail.len(),
        path.display(),
        tail.join("\n")
    )
}
