//! One measured process: its wall time from spawn to exit, its peak memory, and the JSON lines it
//! prints on stdout, read as they come so a run can be stopped at a chosen point.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::Instant;

use serde_json::Value;

use crate::cmd::Failure;

use super::process::{PeakWatcher, bytes_written, send_signal, waited_children_cpu_secs};

/// A process being measured.
#[derive(Debug)]
pub(super) struct Running {
    what: String,
    child: Child,
    started: Instant,
    children_cpu_before: Option<f64>,
    lines: Receiver<Value>,
    watcher: PeakWatcher,
}

/// What a measured process did.
#[derive(Debug)]
pub(super) struct Finished {
    /// Seconds from just before spawning it until its exit was seen (or it was killed).
    pub wall_secs: f64,
    /// Its peak resident set, in bytes.
    pub peak_rss: Option<u64>,
    /// CPU seconds (user + system) it used, from this process's waited-for children's times:
    /// exact for a process waited for here, as long as no other child is reaped meanwhile.
    pub cpu_secs: Option<f64>,
    /// Its stdout lines: parsed JSON objects, or the line as a JSON string when it is not JSON.
    pub lines: Vec<Value>,
    /// How it ended.
    pub status: ExitStatus,
}

impl Running {
    /// Spawns `command` with stdout piped to a reader thread and stderr to `log`. `what` names it in
    /// messages.
    pub(super) fn spawn(what: &str, command: &mut Command, log: &Path) -> Result<Self, Failure> {
        Self::spawn_with_stdin(what, command, log, Stdio::null())
    }

    /// [`spawn`](Self::spawn) with `stdin` as the process's standard input (the read end of a pipe,
    /// for an upload of a stream).
    pub(super) fn spawn_with_stdin(
        what: &str,
        command: &mut Command,
        log: &Path,
        stdin: Stdio,
    ) -> Result<Self, Failure> {
        let stderr = File::create(log)
            .map_err(|e| Failure::new(format!("could not create {}: {e}", log.display())))?;
        command.stdin(stdin).stdout(Stdio::piped()).stderr(stderr);
        let children_cpu_before = waited_children_cpu_secs();
        let started = Instant::now();
        let mut child = command
            .spawn()
            .map_err(|e| Failure::new(format!("{what}: could not start: {e}")))?;
        let watcher = PeakWatcher::start(child.id());
        let stdout = child.stdout.take().expect("stdout is piped");
        let (sender, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let value = serde_json::from_str(&line).unwrap_or(Value::String(line));
                if sender.send(value).is_err() {
                    break;
                }
            }
        });
        Ok(Self {
            what: what.to_owned(),
            child,
            started,
            children_cpu_before,
            lines,
            watcher,
        })
    }

    /// The next stdout line, waiting for it; `None` once stdout is closed.
    pub(super) fn next_line(&self) -> Option<Value> {
        self.lines.recv().ok()
    }

    /// Waits for the process to exit.
    pub(super) fn wait(mut self) -> Result<Finished, Failure> {
        let status = self
            .child
            .wait()
            .map_err(|e| Failure::new(format!("{}: waiting for it failed: {e}", self.what)))?;
        let wall_secs = self.started.elapsed().as_secs_f64();
        Ok(self.finish(wall_secs, status))
    }

    /// Stops the process with SIGSTOP, reads how many bytes it had written, then kills it with
    /// SIGKILL, as a crash would. Returns the bytes written (`None` when `/proc` would not tell).
    pub(super) fn freeze_and_kill(mut self) -> Result<(Finished, Option<u64>), Failure> {
        let pid = self.child.id();
        send_signal(pid, "STOP")?;
        let wall_secs = self.started.elapsed().as_secs_f64();
        let written = bytes_written(pid);
        self.child
            .kill()
            .map_err(|e| Failure::new(format!("{}: could not kill it: {e}", self.what)))?;
        let status = self
            .child
            .wait()
            .map_err(|e| Failure::new(format!("{}: waiting for it failed: {e}", self.what)))?;
        Ok((self.finish(wall_secs, status), written))
    }

    fn finish(self, wall_secs: f64, status: ExitStatus) -> Finished {
        let cpu_secs = match (self.children_cpu_before, waited_children_cpu_secs()) {
            (Some(before), Some(after)) => Some(after - before),
            _ => None,
        };
        let peak_rss = self.watcher.finish();
        // The reader thread ends at EOF, which the exit brought: everything printed is here.
        let lines = self.lines.iter().collect();
        Finished {
            wall_secs,
            peak_rss,
            cpu_secs,
            lines,
            status,
        }
    }
}

impl Finished {
    /// The first JSON line whose `"event"` is `event`.
    pub(super) fn event(&self, event: &str) -> Option<&Value> {
        self.lines.iter().find(|line| line["event"] == event)
    }
}

/// Field `name` of a JSON object as a number of bytes (or a count), with a message naming what is
/// missing.
pub(super) fn u64_field(value: &Value, name: &str) -> Result<u64, Failure> {
    value[name].as_u64().ok_or_else(|| {
        Failure::new(format!(
            "the event {value} has no whole-number field {name:?}"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn events_are_found_by_name_and_fields_read_as_numbers() {
        let finished = Finished {
            wall_secs: 1.0,
            peak_rss: None,
            cpu_secs: None,
            lines: vec![
                Value::String("not json".to_owned()),
                json!({"event": "started", "bytes_reused": 0}),
                json!({"event": "completed", "bytes_sent": 1024, "bytes_reused": 0}),
            ],
            status: Command::new("true").status().unwrap(),
        };
        let completed = finished.event("completed").unwrap();
        assert_eq!(u64_field(completed, "bytes_sent").unwrap(), 1024);
        assert!(
            u64_field(completed, "elapsed")
                .unwrap_err()
                .to_string()
                .contains("\"elapsed\"")
        );
        assert!(finished.event("error").is_none());
    }

    #[test]
    fn a_process_is_timed_and_its_lines_are_collected() {
        let dir = std::env::temp_dir().join(format!("xtask-bench-child-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("stderr.log");
        let mut command = Command::new("sh");
        command.args([
            "-c",
            "echo '{\"event\":\"done\",\"n\":3}'; echo plain; echo oops >&2",
        ]);
        let finished = Running::spawn("sh", &mut command, &log)
            .unwrap()
            .wait()
            .unwrap();
        assert!(finished.status.success());
        assert!(finished.wall_secs > 0.0);
        assert!(finished.cpu_secs.is_some_and(|s| s >= 0.0));
        assert_eq!(finished.event("done").unwrap()["n"], 3);
        assert_eq!(finished.lines[1], Value::String("plain".to_owned()));
        assert!(std::fs::read_to_string(&log).unwrap().contains("oops"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
