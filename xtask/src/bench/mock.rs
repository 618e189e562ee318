//! The release `oss-mock` as the benchmarks run it: one fresh server per measured run, on a free
//! loopback port, with its data directory under `target/bench/`.
//!
//! A fresh server per run makes its `VmHWM` the peak of that run alone, and dropping it (kill, then
//! remove the data directory) keeps the disk from filling up over dozens of 1 GiB uploads.

use std::ffi::OsStr;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Child;

use crate::cmd::Failure;
use crate::mock_process::{self, log_tail};

use super::process::{cpu_secs, peak_rss};

/// The bucket the benchmarks upload to.
pub(super) const BUCKET: &str = "bench";
/// The credentials and region the mock accepts when started without flags.
pub(super) const ACCESS_KEY_ID: &str = "test-ak";
/// The secret of [`ACCESS_KEY_ID`].
pub(super) const ACCESS_KEY_SECRET: &str = "test-sk";
/// The mock's region.
pub(super) const REGION: &str = "cn-hangzhou";

/// A running `oss-mock`, killed and its data removed when dropped.
#[derive(Debug)]
pub(super) struct Mock {
    child: Child,
    endpoint: String,
    data_dir: PathBuf,
    log: PathBuf,
}

impl Mock {
    /// Starts `binary` with an empty `data_dir` (removed first if it exists) and its stderr in `log`;
    /// without `fsync`, as `oss-mock --no-fsync`.
    pub(super) fn start(
        binary: &Path,
        data_dir: &Path,
        fsync: bool,
        log: &Path,
    ) -> Result<Self, Failure> {
        Self::start_with(binary, data_dir, fsync, log, &[])
    }

    /// [`start`](Self::start) with `extra` flags (a link shape: `--conn-bandwidth 4MiB/s`, …).
    pub(super) fn start_with(
        binary: &Path,
        data_dir: &Path,
        fsync: bool,
        log: &Path,
        extra: &[String],
    ) -> Result<Self, Failure> {
        remove_dir(data_dir)?;
        std::fs::create_dir_all(data_dir).map_err(|e| {
            Failure::new(format!(
                "could not create the mock's data directory {}: {e}",
                data_dir.display()
            ))
        })?;
        let stderr = File::create(log)
            .map_err(|e| Failure::new(format!("could not create {}: {e}", log.display())))?;
        let mut args: Vec<&OsStr> = vec![
            "--listen".as_ref(),
            "127.0.0.1:0".as_ref(),
            "--data-dir".as_ref(),
            data_dir.as_os_str(),
            "--bucket".as_ref(),
            BUCKET.as_ref(),
        ];
        if !fsync {
            args.push("--no-fsync".as_ref());
        }
        args.extend(extra.iter().map(OsStr::new));
        let started = mock_process::start(binary, args, stderr).map_err(|what| {
            Failure::new(format!(
                "the mock server did not start: {what}\n{}",
                log_tail(log, 20)
            ))
        })?;
        Ok(Self {
            child: started.child,
            endpoint: started.endpoint,
            data_dir: data_dir.to_owned(),
            log: log.to_owned(),
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub(super) fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The mock's peak resident set since it started, in bytes.
    pub(super) fn peak_rss(&self) -> Option<u64> {
        peak_rss(self.child.id())
    }

    /// CPU seconds (user + system) the mock has used since it started.
    pub(super) fn cpu_secs(&self) -> Option<f64> {
        cpu_secs(self.child.id())
    }

    /// The last lines of the mock's stderr, for a failure message.
    pub(super) fn log_tail(&self) -> String {
        log_tail(&self.log, 20)
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
pub(super) fn remove_dir(dir: &Path) -> Result<(), Failure> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Failure::new(format!(
            "could not remove {}: {e}",
            dir.display()
        ))),
    }
}
