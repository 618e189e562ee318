//! The `oss-mock` process of one iteration: started with the plan's fault rules, killed with
//! SIGKILL, and restarted on the same port and data directory (its rules applied again).

use std::fs::OpenOptions;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

/// The bucket every iteration uploads to.
pub const BUCKET: &str = "chaos";
/// How long the mock may take to print its listening line.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(30);

/// A mock server process that can be killed and started again.
#[derive(Debug)]
pub struct Mock {
    binary: PathBuf,
    data_dir: PathBuf,
    faults: PathBuf,
    log: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl Mock {
    /// Starts `binary` on a free loopback port with its data in `data_dir`, the fault rules of
    /// `faults`, and its stderr appended to `log`.
    pub fn start(
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
        };
        mock.spawn()?;
        Ok(mock)
    }

    /// `http://127.0.0.1:PORT`; the same across restarts.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Kills the server with SIGKILL and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and data directory, with the same rules.
    pub fn restart(&mut self) -> Result<(), String> {
        self.kill();
        self.spawn()
    }

    /// The last lines of the server's log.
    pub fn log_tail(&self) -> String {
        tail(&self.log, 15)
    }

    fn spawn(&mut self) -> Result<(), String> {
        let stderr = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| format!("cannot open {}: {e}", self.log.display()))?;
        let mut child = Command::new(&self.binary)
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", self.port))
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--bucket")
            .arg(BUCKET)
            .arg("--faults")
            .arg(&self.faults)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.binary.display()))?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let _ = tx.send(reader.read_line(&mut line).map(|_| line));
            // Keep reading so the server never blocks on a full pipe.
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        });
        let line = match rx.recv_timeout(LISTEN_TIMEOUT) {
            Ok(Ok(line)) => line,
            other => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "oss-mock did not say where it listens ({other:?}); its log:\n{}",
                    self.log_tail()
                ));
            }
        };
        let port = line
            .trim()
            .strip_prefix("listening on http://")
            .and_then(|authority| authority.rsplit(':').next())
            .and_then(|port| port.parse::<u16>().ok());
        match port {
            Some(port) if self.port == 0 || self.port == port => {
                self.port = port;
                self.child = Some(child);
                Ok(())
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                Err(format!(
                    "oss-mock's first line is {line:?}, expected `listening on http://127.0.0.1:{}`",
                    self.port
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

/// The last `lines` lines of a text file (empty when it cannot be read).
fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
