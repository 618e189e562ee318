//! The `oss-mock` process of one iteration: started with the plan's fault rules, killed with
//! SIGKILL, and restarted on the same port and data directory (its rules applied again).

use std::ffi::OsStr;
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::Child;

use crate::mock_process;

/// The bucket every iteration uploads to.
pub(crate) const BUCKET: &str = "chaos";

/// A mock server process that can be killed and started again.
#[derive(Debug)]
pub(crate) struct Mock {
    binary: PathBuf,
    data_dir: PathBuf,
    faults: PathBuf,
    log: PathBuf,
    port: u16,
    child: Option<Child>,
    /// `RUST_LOG` of the server, when not its default.
    log_filter: Option<&'static str>,
}

impl Mock {
    /// Starts `binary` on a free loopback port with its data in `data_dir`, the fault rules of
    /// `faults`, and its stderr appended to `log`.
    pub(super) fn start(
        binary: &Path,
        data_dir: &Path,
        faults: &Path,
        log: &Path,
    ) -> Result<Mock, String> {
        let mut mock = Mock {
            binary: binary.to_owned(),
            data_dir: data_dir.to_owned(),
            faults: faults.to_owned(),
            log: log.to_owned(),
            port: 0,
            child: None,
            log_filter: None,
        };
        mock.spawn()?;
        Ok(mock)
    }

    /// [`start_in`](Self::start_in), the server logging every request it routes with its API,
    /// upload id and part number (`RUST_LOG=oss_mock=debug`): the fleet chaos counts the parts
    /// sent from that log, which survives the server's kills.
    pub(super) fn start_logging_requests(
        binary: &Path,
        dir: &Path,
        rules_json: &str,
    ) -> Result<Mock, String> {
        let faults = dir.join("faults.json");
        std::fs::write(&faults, rules_json)
            .map_err(|e| format!("cannot write {}: {e}", faults.display()))?;
        let mut mock = Mock {
            binary: binary.to_owned(),
            data_dir: dir.join("data"),
            faults,
            log: dir.join("mock.log"),
            port: 0,
            child: None,
            log_filter: Some("oss_mock=debug"),
        };
        mock.spawn()?;
        Ok(mock)
    }

    /// Starts `binary` for the iteration in `dir`: its rules written to `dir/faults.json` (kept for
    /// whoever reads a failure), its data in `dir/data`, its log in `dir/mock.log`.
    pub(crate) fn start_in(binary: &Path, dir: &Path, rules_json: &str) -> Result<Mock, String> {
        let faults = dir.join("faults.json");
        std::fs::write(&faults, rules_json)
            .map_err(|e| format!("cannot write {}: {e}", faults.display()))?;
        Mock::start(binary, &dir.join("data"), &faults, &dir.join("mock.log"))
    }

    /// `http://127.0.0.1:PORT`; the same across restarts.
    pub(crate) fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The running server's process id, for reading its `/proc` entries.
    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(std::process::Child::id)
    }

    /// The port the server listens on; the same across restarts.
    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// How the server ended, when it ended without being killed here (a crash, or a signal from
    /// elsewhere); `None` while it runs.
    pub(super) fn ended_by_itself(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_mut()?.try_wait().ok().flatten()
    }

    /// Kills the server with SIGKILL and reaps it.
    pub(super) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and data directory, with the same rules.
    pub(super) fn restart(&mut self) -> Result<(), String> {
        self.kill();
        self.spawn()
    }

    /// The last lines of the server's log.
    pub(crate) fn log_tail(&self) -> String {
        mock_process::log_tail(&self.log, 15)
    }

    fn spawn(&mut self) -> Result<(), String> {
        let stderr = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| format!("cannot open {}: {e}", self.log.display()))?;
        let listen = format!("127.0.0.1:{}", self.port);
        let args: [&OsStr; 8] = [
            "--listen".as_ref(),
            listen.as_ref(),
            "--data-dir".as_ref(),
            self.data_dir.as_os_str(),
            "--bucket".as_ref(),
            BUCKET.as_ref(),
            "--faults".as_ref(),
            self.faults.as_os_str(),
        ];
        let mut started = mock_process::start_logging(&self.binary, args, stderr, self.log_filter)
            .map_err(|what| format!("oss-mock did not start: {what}\n{}", self.log_tail()))?;
        let port = started
            .endpoint
            .rsplit(':')
            .next()
            .and_then(|port| port.parse::<u16>().ok());
        match port {
            Some(port) if self.port == 0 || self.port == port => {
                self.port = port;
                self.child = Some(started.child);
                Ok(())
            }
            _ => {
                let _ = started.child.kill();
                let _ = started.child.wait();
                Err(format!(
                    "oss-mock listens on {}, expected 127.0.0.1:{}",
                    started.endpoint, self.port
                ))
            }
        }
    }
}

impl Drop for Mock {
    fn drop(&mut self) {
        self.kill();
    }
}
