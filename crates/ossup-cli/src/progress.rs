//! Showing an upload's progress: a bar on a terminal, plain lines in a log, JSON lines for scripts.
//!
//! The JSON lines are an interface (the chaos harness and the benchmarks parse them), so their shape
//! is owned here and documented in `docs/cli.md`, not borrowed from the engine's types: every line
//! is one complete object with an `"event"` field naming its kind.
//!
//! Events carry the server's text (a retried request's error, an upload id, a callback reply):
//! every reporter escapes it on the way out (`terminal.rs`).

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use crate::cli::ProgressArg;
use crate::size::HumanBytes;
use crate::terminal::{json_line, printable};

/// One thing that happened during an upload, as the command line reports it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub(crate) enum Event {
    /// The upload is planned and reconciled with the server.
    Started {
        /// The object, as `oss://bucket/key`.
        object: String,
        /// The multipart upload id; `None` for a single PutObject.
        upload_id: Option<String>,
        /// The source's size.
        total_bytes: u64,
        /// How many parts the upload has.
        parts_total: u32,
        /// The part size.
        part_size: u64,
        /// How many parts the server already holds (a resume).
        parts_reused: u32,
        /// How many bytes the server already holds.
        bytes_reused: u64,
    },
    /// The upload of a stream (standard input) began: its size is known at its end only.
    StreamStarted {
        /// The object, as `oss://bucket/key`.
        object: String,
        /// The multipart upload id.
        upload_id: String,
        /// The size of the first parts (later ones grow).
        part_size: u64,
        /// Whether an earlier run's upload is carried on (its parts are verified as the bytes
        /// arrive, and counted in `part_done`).
        resumed: bool,
    },
    /// Something worth knowing that did not stop the upload: a corrupt checkpoint set aside, a
    /// changed source, an upload the server forgot (each starts a fresh upload).
    Notice {
        /// What kind: `checkpoint_corrupt`, `source_changed`, `options_changed`, `upload_gone`,
        /// `complete_settled_by_head`.
        notice: String,
        /// The notice in words.
        message: String,
    },
    /// The server acknowledged a part.
    PartDone {
        /// The part number.
        part: u32,
        /// The part's size.
        bytes: u64,
        /// Bytes on the server so far, reused ones included; never goes backwards.
        transferred: u64,
        /// The source's size; absent for a stream.
        #[serde(skip_serializing_if = "Option::is_none")]
        total: Option<u64>,
        /// The most parts sent at once now (it moves with `--parallel auto`).
        concurrency: u32,
    },
    /// Bytes of the parts in flight have gone out, not yet acknowledged: at most every 100 ms while
    /// they move, so the bar moves within a part.
    Sending {
        /// Bytes on the server so far, as the last `part_done` said.
        transferred: u64,
        /// Bytes of the parts in flight handed to the connection; `transferred + in_flight` never
        /// goes backwards (a retried part holds the furthest point it reached).
        in_flight: u64,
        /// The source's size; absent for a stream.
        #[serde(skip_serializing_if = "Option::is_none")]
        total: Option<u64>,
        /// The parts in flight.
        parts: Vec<PartInFlight>,
        /// The most parts sent at once now (it moves with `--parallel auto`).
        concurrency: u32,
    },
    /// A request failed and will be tried again.
    Retrying {
        /// The part, when the request was for one.
        part: Option<u32>,
        /// The API that failed, e.g. `UploadPart`.
        api: Option<String>,
        /// The attempt that failed, from 1.
        attempt: u32,
        /// The wait before the next attempt, in milliseconds.
        delay_ms: u64,
        /// What went wrong.
        error: String,
    },
    /// The object exists and checked out.
    Completed {
        /// The object, as `oss://bucket/key`.
        object: String,
        /// Its size.
        size: u64,
        /// Its ETag.
        etag: String,
        /// Its CRC-64/XZ, as a decimal number.
        crc64: String,
        /// The upload callback server's reply, when the upload had a callback.
        #[serde(skip_serializing_if = "Option::is_none")]
        callback_reply: Option<String>,
        /// Parts sent in this run.
        parts_sent: u32,
        /// Parts the server already held.
        parts_reused: u32,
        /// Bytes sent in this run (the final attempt of each part).
        bytes_sent: u64,
        /// Bytes the server already held.
        bytes_reused: u64,
        /// Parts sent a second time because they straggled (see `--no-hedge`).
        parts_hedged: u64,
        /// Wall time of this run.
        elapsed_secs: f64,
        /// `bytes_sent / elapsed_secs`.
        bytes_per_sec: f64,
    },
    /// The run was interrupted; the checkpoint is kept.
    Cancelled {
        /// The command that resumes it, when it can be resumed.
        resume_command: Option<String>,
    },
    /// The run failed.
    Error {
        /// What went wrong.
        message: String,
    },
}

/// One part in flight, in [`Event::Sending`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct PartInFlight {
    /// The part number.
    pub part: u32,
    /// Bytes of it handed to the connection.
    pub sent: u64,
    /// The part's size.
    pub bytes: u64,
}

impl Event {
    /// The most parts sent at once, when this event says.
    fn concurrency(&self) -> Option<u32> {
        match self {
            Event::PartDone { concurrency, .. } | Event::Sending { concurrency, .. } => {
                Some(*concurrency)
            }
            _ => None,
        }
    }

    /// The bytes this event says have gone out, for a figure that moves within parts: the bytes on
    /// the server plus those in flight. A `part_done` alone does not count the other parts in
    /// flight, so a reporter keeps the largest figure seen.
    fn bytes_out(&self) -> Option<(u64, Option<u64>)> {
        match self {
            Event::PartDone {
                transferred, total, ..
            } => Some((*transferred, *total)),
            Event::Sending {
                transferred,
                in_flight,
                total,
                ..
            } => Some((transferred + in_flight, *total)),
            _ => None,
        }
    }
}

/// Shows [`Event`]s as they come.
pub(crate) trait Reporter: Send {
    /// Shows one event.
    fn event(&mut self, event: &Event);
}

/// The reporter `--progress` asks for; `auto` picks a bar when stderr is a terminal.
pub(crate) fn reporter_for(style: ProgressArg) -> Box<dyn Reporter> {
    match style {
        ProgressArg::Auto if std::io::stderr().is_terminal() => Box::new(BarReporter::new()),
        ProgressArg::Auto | ProgressArg::Plain => Box::new(PlainReporter::new(std::io::stderr())),
        ProgressArg::Bar => Box::new(BarReporter::new()),
        ProgressArg::Json => Box::new(JsonReporter::new(std::io::stdout())),
        ProgressArg::None => Box::new(QuietReporter),
    }
}

/// Shows no progress, only notices (a corrupt checkpoint set aside, a changed source): those change
/// what the upload does, so a person should hear of them whatever the progress style.
#[derive(Debug)]
pub(crate) struct QuietReporter;

impl Reporter for QuietReporter {
    fn event(&mut self, event: &Event) {
        if let Event::Notice { message, .. } = event {
            eprintln!("note: {}", printable(message));
        }
    }
}

/// One JSON object per event per line, flushed at once so a reader sees each line as it happens.
#[derive(Debug)]
pub(crate) struct JsonReporter<W> {
    out: W,
}

impl<W: Write + Send> JsonReporter<W> {
    /// Writes to `out`.
    pub(crate) fn new(out: W) -> Self {
        Self { out }
    }
}

impl<W: Write + Send> Reporter for JsonReporter<W> {
    fn event(&mut self, event: &Event) {
        // A closed pipe (`| head`) must not turn into a panic; the upload goes on regardless.
        if let Some(line) = json_line(event) {
            let _ = writeln!(self.out, "{line}");
            let _ = self.out.flush();
        }
    }
}

/// Plain lines for logs: the start, a progress line every few seconds or tenth of the upload,
/// every retry, and the end.
#[derive(Debug)]
pub(crate) struct PlainReporter<W> {
    out: W,
    started: Instant,
    last_line: Instant,
    last_tenth: u64,
    /// The largest figure of bytes out seen, so the lines never go backwards.
    out_so_far: u64,
}

impl<W: Write + Send> PlainReporter<W> {
    /// Writes to `out`.
    pub(crate) fn new(out: W) -> Self {
        let now = Instant::now();
        Self {
            out,
            started: now,
            last_line: now,
            last_tenth: 0,
            out_so_far: 0,
        }
    }
}

const PLAIN_INTERVAL: Duration = Duration::from_secs(5);

impl<W: Write + Send> Reporter for PlainReporter<W> {
    fn event(&mut self, event: &Event) {
        let line = match event {
            Event::Started {
                object,
                upload_id,
                total_bytes,
                parts_total,
                part_size,
                parts_reused,
                bytes_reused,
            } => {
                self.started = Instant::now();
                self.last_line = self.started;
                self.last_tenth = (bytes_reused * 10).checked_div(*total_bytes).unwrap_or(0);
                self.out_so_far = *bytes_reused;
                let how = match upload_id {
                    Some(id) => format!(
                        "{parts_total} parts of {} (upload id {id})",
                        HumanBytes(*part_size)
                    ),
                    None => "in one request".to_owned(),
                };
                let mut line = format!("uploading {} to {object}, {how}", HumanBytes(*total_bytes));
                if *parts_reused > 0 {
                    line.push_str(&format!(
                        "; resuming: {parts_reused} parts ({}) already on the server",
                        HumanBytes(*bytes_reused)
                    ));
                }
                Some(line)
            }
            Event::Notice { message, .. } => Some(format!("note: {message}")),
            Event::StreamStarted {
                object,
                upload_id,
                part_size,
                resumed,
            } => {
                self.started = Instant::now();
                self.last_line = self.started;
                let how = if *resumed {
                    "; resuming: parts the server holds are verified as the bytes arrive"
                } else {
                    ""
                };
                Some(format!(
                    "uploading a stream to {object} in parts of {} and up (upload id {upload_id}){how}",
                    HumanBytes(*part_size)
                ))
            }
            Event::PartDone { .. } | Event::Sending { .. } => {
                let (out, total) = event.bytes_out().unwrap_or_default();
                self.out_so_far = self.out_so_far.max(out);
                let out = self.out_so_far;
                let elapsed = self.started.elapsed();
                match total {
                    Some(total) => {
                        let tenth = (out * 10).checked_div(total).unwrap_or(10);
                        let due =
                            self.last_line.elapsed() >= PLAIN_INTERVAL || tenth > self.last_tenth;
                        (due && out < total).then(|| {
                            self.last_tenth = tenth;
                            self.last_line = Instant::now();
                            let percent = (out as f64 * 100.0) / total.max(1) as f64;
                            format!(
                                "{} of {} ({percent:.0}%), {} elapsed, {}",
                                HumanBytes(out),
                                HumanBytes(total),
                                crate::duration::brief(elapsed),
                                at_once(event.concurrency().unwrap_or(1))
                            )
                        })
                    }
                    // A stream: no total, no share, no ETA; the bytes so far and the rate.
                    None => (self.last_line.elapsed() >= PLAIN_INTERVAL).then(|| {
                        self.last_line = Instant::now();
                        format!(
                            "{} so far, {}/s, {} elapsed, {}",
                            HumanBytes(out),
                            HumanBytes((out as f64 / elapsed.as_secs_f64().max(0.001)) as u64),
                            crate::duration::brief(elapsed),
                            at_once(event.concurrency().unwrap_or(1))
                        )
                    }),
                }
            }
            Event::Retrying { .. } => Some(retry_line(event)),
            Event::Completed { .. } | Event::Cancelled { .. } | Event::Error { .. } => None,
        };
        if let Some(line) = line {
            let _ = writeln!(self.out, "{}", printable(&line));
        }
    }
}

/// `4 parts at once`.
fn at_once(concurrency: u32) -> String {
    match concurrency {
        1 => "1 part at a time".to_owned(),
        n => format!("{n} parts at once"),
    }
}

/// `part 4: attempt 2 failed (503 ...); retrying in 0.31 s`.
fn retry_line(event: &Event) -> String {
    let Event::Retrying {
        part,
        api,
        attempt,
        delay_ms,
        error,
    } = event
    else {
        return String::new();
    };
    let what = match (part, api) {
        (Some(part), _) => format!("part {part}"),
        (None, Some(api)) => api.clone(),
        (None, None) => "request".to_owned(),
    };
    format!(
        "{what}: attempt {attempt} failed ({error}); retrying in {:.2} s",
        *delay_ms as f64 / 1000.0
    )
}

/// An indicatif bar on stderr: bytes, rate and ETA.
#[derive(Debug)]
pub(crate) struct BarReporter {
    bar: Option<ProgressBar>,
}

impl BarReporter {
    /// A bar that appears at the first event.
    pub(crate) fn new() -> Self {
        Self { bar: None }
    }
}

impl Default for BarReporter {
    fn default() -> Self {
        Self::new()
    }
}

impl Reporter for BarReporter {
    fn event(&mut self, event: &Event) {
        match event {
            Event::Started {
                object,
                total_bytes,
                parts_reused,
                bytes_reused,
                ..
            } => {
                let bar = ProgressBar::with_draw_target(
                    Some(*total_bytes),
                    ProgressDrawTarget::stderr_with_hz(10),
                );
                bar.set_style(
                    ProgressStyle::with_template(
                        "{msg}\n[{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta} {prefix}",
                    )
                    .expect("the bar template is valid"),
                );
                let mut message = format!("uploading to {object}");
                if *parts_reused > 0 {
                    message.push_str(&format!(
                        " (resumed: {parts_reused} parts, {} already on the server)",
                        HumanBytes(*bytes_reused)
                    ));
                }
                bar.set_message(printable(&message).into_owned());
                // Reused bytes are not this run's speed: start the bar there without counting them.
                bar.set_position(*bytes_reused);
                bar.reset_eta();
                self.bar = Some(bar);
            }
            Event::StreamStarted {
                object, resumed, ..
            } => {
                // No total: a spinner with the bytes so far and the rate, no ETA.
                let bar =
                    ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(10));
                bar.set_style(
                    ProgressStyle::with_template(
                        "{msg}\n[{elapsed_precise}] {spinner} {bytes} {binary_bytes_per_sec} {prefix}",
                    )
                    .expect("the bar template is valid"),
                );
                let mut message = format!("uploading a stream to {object}");
                if *resumed {
                    message
                        .push_str(" (resuming: parts on the server are verified as they arrive)");
                }
                bar.set_message(printable(&message).into_owned());
                self.bar = Some(bar);
            }
            Event::Notice { message, .. } => self.println(format!("note: {message}")),
            Event::PartDone { .. } | Event::Sending { .. } => {
                if let (Some(bar), Some((out, _))) = (&self.bar, event.bytes_out()) {
                    // A `part_done` alone leaves out the other parts in flight: never go back.
                    if out > bar.position() {
                        bar.set_position(out);
                    }
                    if let Some(concurrency) = event.concurrency() {
                        bar.set_prefix(format!("({})", at_once(concurrency)));
                    }
                }
            }
            Event::Retrying { .. } => self.println(retry_line(event)),
            Event::Completed { .. } => {
                if let Some(bar) = self.bar.take() {
                    bar.finish_and_clear();
                }
            }
            Event::Cancelled { .. } | Event::Error { .. } => {
                if let Some(bar) = self.bar.take() {
                    bar.abandon();
                }
            }
        }
    }
}

impl BarReporter {
    fn println(&self, line: String) {
        let line = printable(&line);
        match &self.bar {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn started(total: u64) -> Event {
        Event::Started {
            object: "oss://bucket/k".to_owned(),
            upload_id: Some("UP1".to_owned()),
            total_bytes: total,
            parts_total: 10,
            part_size: total / 10,
            parts_reused: 2,
            bytes_reused: total / 5,
        }
    }

    #[test]
    fn json_lines_are_complete_objects_named_by_event() {
        let mut out = Vec::new();
        {
            let mut reporter = JsonReporter::new(&mut out);
            reporter.event(&started(1000));
            reporter.event(&Event::PartDone {
                part: 3,
                bytes: 100,
                transferred: 300,
                total: Some(1000),
                concurrency: 4,
            });
            reporter.event(&Event::Retrying {
                part: Some(4),
                api: Some("UploadPart".to_owned()),
                attempt: 2,
                delay_ms: 150,
                error: "503".to_owned(),
            });
        }
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0]["event"], "started");
        assert_eq!(lines[0]["parts_reused"], 2);
        assert_eq!(lines[1]["event"], "part_done");
        assert_eq!(lines[1]["part"], 3);
        assert_eq!(lines[1]["bytes"], 100);
        assert_eq!(lines[1]["transferred"], 300);
        assert_eq!(lines[2]["event"], "retrying");
        assert_eq!(lines[2]["attempt"], 2);
    }

    #[test]
    fn server_text_in_events_reaches_no_terminal_raw() {
        let hostile = "SlowDown\x1b]0;pwned\x07\x1b[2J\u{9b}31m\nfake line";
        let events = [
            Event::Retrying {
                part: Some(4),
                api: Some("UploadPart".to_owned()),
                attempt: 2,
                delay_ms: 150,
                error: hostile.to_owned(),
            },
            Event::Notice {
                notice: "upload_gone".to_owned(),
                message: hostile.to_owned(),
            },
        ];
        let mut plain = Vec::new();
        let mut json = Vec::new();
        {
            let mut reporter = PlainReporter::new(&mut plain);
            let mut json_reporter = JsonReporter::new(&mut json);
            for event in &events {
                reporter.event(event);
                json_reporter.event(event);
            }
        }
        for out in [plain, json] {
            let text = String::from_utf8(out).unwrap();
            assert_eq!(text.lines().count(), 2, "{text}");
            assert!(
                !text.chars().any(|c| c.is_control() && c != '\n'),
                "{text:?}"
            );
        }
    }

    #[test]
    fn plain_lines_report_start_resume_and_retries() {
        let mut out = Vec::new();
        {
            let mut reporter = PlainReporter::new(&mut out);
            reporter.event(&started(1000));
            reporter.event(&Event::PartDone {
                part: 3,
                bytes: 100,
                transferred: 300,
                total: Some(1000),
                concurrency: 4,
            });
            reporter.event(&Event::Retrying {
                part: Some(4),
                api: Some("UploadPart".to_owned()),
                attempt: 2,
                delay_ms: 310,
                error: "connection reset".to_owned(),
            });
        }
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("resuming: 2 parts"), "{text}");
        assert!(text.contains("(30%)"), "{text}");
        assert!(
            text.contains("part 4: attempt 2 failed (connection reset); retrying in 0.31 s"),
            "{text}"
        );
    }

    #[test]
    fn sending_is_a_json_line_with_the_parts_in_flight() {
        let mut out = Vec::new();
        JsonReporter::new(&mut out).event(&Event::Sending {
            transferred: 300,
            in_flight: 150,
            total: Some(1000),
            concurrency: 4,
            parts: vec![
                PartInFlight {
                    part: 4,
                    sent: 100,
                    bytes: 100,
                },
                PartInFlight {
                    part: 5,
                    sent: 50,
                    bytes: 100,
                },
            ],
        });
        let line: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            line,
            serde_json::json!({
                "event": "sending", "transferred": 300, "in_flight": 150, "total": 1000,
                "parts": [{"part": 4, "sent": 100, "bytes": 100}, {"part": 5, "sent": 50, "bytes": 100}],
                "concurrency": 4,
            })
        );
    }

    #[test]
    fn plain_lines_move_within_parts_and_never_go_back() {
        let mut out = Vec::new();
        {
            let mut reporter = PlainReporter::new(&mut out);
            reporter.event(&started(1000));
            // A part half sent crosses 30%; its PartDone alone (without the other part in flight)
            // would read lower, and prints nothing.
            reporter.event(&Event::Sending {
                transferred: 200,
                in_flight: 150,
                total: Some(1000),
                concurrency: 4,
                parts: Vec::new(),
            });
            reporter.event(&Event::PartDone {
                part: 3,
                bytes: 100,
                transferred: 300,
                total: Some(1000),
                concurrency: 4,
            });
        }
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(text.contains("(35%)"), "{text}");
    }

    #[test]
    fn the_bar_counts_bytes_in_flight_and_keeps_the_largest_figure() {
        let mut reporter = BarReporter::new();
        reporter.event(&started(1000));
        reporter.event(&Event::Sending {
            transferred: 200,
            in_flight: 150,
            total: Some(1000),
            concurrency: 4,
            parts: Vec::new(),
        });
        let position = |r: &BarReporter| r.bar.as_ref().unwrap().position();
        assert_eq!(position(&reporter), 350);
        reporter.event(&Event::PartDone {
            part: 3,
            bytes: 100,
            transferred: 300,
            total: Some(1000),
            concurrency: 4,
        });
        assert_eq!(position(&reporter), 350);
        reporter.event(&Event::PartDone {
            part: 4,
            bytes: 100,
            transferred: 400,
            total: Some(1000),
            concurrency: 4,
        });
        assert_eq!(position(&reporter), 400);
    }

    #[test]
    fn plain_lines_are_throttled_to_tenths() {
        let mut out = Vec::new();
        {
            let mut reporter = PlainReporter::new(&mut out);
            reporter.event(&started(1000));
            for part in 1..=50u32 {
                reporter.event(&Event::PartDone {
                    part,
                    bytes: 10,
                    transferred: 200 + u64::from(part) * 10,
                    total: Some(1000),
                    concurrency: 4,
                });
            }
        }
        let text = String::from_utf8(out).unwrap();
        // The start line plus one line per tenth crossed (30% .. 70%).
        assert_eq!(text.lines().count(), 6, "{text}");
    }
}
