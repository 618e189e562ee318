//! Starting the `oss-mock` binary as a child process, as the oss2 check, the chaos harness and the
//! benchmarks do: spawn it, wait for its `listening on http://HOST:PORT` line, and keep draining its
//! stdout so it never blocks on a full pipe.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

/// How long the mock may take to print its listening line (a cold debug binary on a busy machine).
const LISTEN_TIMEOUT: Duration = Duration::from_secs(60);

/// A started mock: the child and the endpoint it said it listens on.
#[derive(Debug)]
pub(crate) struct Started {
    /// The `oss-mock` process.
    pub child: Child,
    /// `http://HOST:PORT`, from its first line.
    pub endpoint: String,
}

/// Starts `binary` with `args`, its stderr going to `stderr`, and waits for its listening line.
///
/// On failure the child is killed and reaped, and the error says what went wrong (the caller adds
/// the log, which it knows where to find).
pub(crate) fn start<I, S>(binary: &Path, args: I, stderr: File) -> Result<Started, String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    start_logging(binary, args, stderr, None)
}

/// [`start`], with `RUST_LOG` set to `log_filter` when given (the fleet chaos reads every request
/// from the mock's debug log).
pub(crate) fn start_logging<I, S>(
    binary: &Path,
    args: I,
    stderr: File,
    log_filter: Option<&str>,
) -> Result<Started, String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut command = Command::new(binary);
    if let Some(filter) = log_filter {
        command.env("RUST_LOG", filter);
    }
    let mut child = command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .map_err(|e| format!("could not start {}: {e}", binary.display()))?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let (first_line, lines) = mpsc::channel();
    thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let read = reader.read_line(&mut line).map(|_| line);
        let _ = first_line.send(read);
        let _ = std::io::copy(&mut reader, &mut std::io::sink());
    });
    let failed = |child: &mut Child, why: String| {
        let _ = child.kill();
        let _ = child.wait();
        why
    };
    let line = match lines.recv_timeout(LISTEN_TIMEOUT) {
        Ok(Ok(line)) => line,
        Ok(Err(e)) => {
            return Err(failed(
                &mut child,
                format!("reading its stdout failed: {e}"),
            ));
        }
        Err(_) => {
            return Err(failed(
                &mut child,
                format!("it printed no line within {LISTEN_TIMEOUT:?}"),
            ));
        }
    };
    match line.trim().strip_prefix("listening on ") {
        Some(endpoint) if endpoint.starts_with("http://") => Ok(Started {
            child,
            endpoint: endpoint.to_owned(),
        }),
        _ => Err(failed(
            &mut child,
            format!("its first line is {line:?}, expected `listening on http://HOST:PORT`"),
        )),
    }
}

/// The last `lines` lines of the text file `path`, headed by its name; empty when it cannot be read.
pub(crate) fn log_tail(path: &Path, lines: usize) -> String {
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
