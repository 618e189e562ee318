//! `ossup upload DIR oss://BUCKET/PREFIX/ --recursive`: the files of a tree as one batch under the
//! shared `--parallel` budget, with progress for bytes and files, a JSON Lines report, a summary, and
//! an exit status that says whether every file made it (0), some failed (1), or the run was
//! interrupted (130).

use std::fs::File;
use std::io::{BufWriter, IsTerminal as _, Write as _};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use indicatif::{ProgressBar, ProgressStyle};
use ossup::{
    BatchItem, CancellationToken, Error, FileOutcome, FileStatus, HedgeStats, OnCancel,
    ProgressEvent,
};
use serde::Serialize;

use crate::cli::{ProgressArg, UploadArgs};
use crate::config::Connection;
use crate::failure::{Failure, shell_command};
use crate::interrupt::{exit_on_second_interrupt, interrupted};
use crate::meta::check_unique;
use crate::size::HumanBytes;
use crate::terminal::{json_line, printable};
use crate::tree::{Filter, Tree, TreeEntry, walk};
use crate::upload::{
    build_uploader, callback, check_part_size, checksum_mode, object_options, open_store,
};

/// Runs `ossup upload DIR oss://BUCKET/PREFIX/ --recursive`.
pub(crate) async fn run(args: UploadArgs) -> Result<(), Failure> {
    check_unique(&args.meta).map_err(Failure::usage)?;
    if let Some(size) = args.part_size {
        check_part_size(size)?;
    }
    let callback = callback(&args)?;
    let options = object_options(&args)?;
    let filter = Filter::new(&args.include, &args.exclude)?;
    let mut report = match &args.report {
        Some(path) => Some(ReportFile::create(path)?),
        None => None,
    };
    let connection = Connection::resolve(&args.connection)?;
    let prefix = args.destination.key.clone();
    let tree = {
        let (root, prefix, follow) = (args.file.clone(), prefix.clone(), args.follow_symlinks);
        tokio::task::spawn_blocking(move || walk(&root, &prefix, &filter, follow))
            .await
            .map_err(|e| Failure::failed(format!("walking the tree panicked: {e}")))??
    };
    let stores = open_store(&args).await?;
    let digests = stores.1.clone();
    let (uploader, hedges) = build_uploader(&args, &connection, &stores)?;

    let files = tree.entries.len() as u64;
    let display = Arc::new(Mutex::new(Display::new(args.progress, &tree)));
    let cancel = CancellationToken::new();
    let mode = checksum_mode(&args);
    let (part_size, no_checkpoint, from_server, traffic_limit) = (
        args.part_size,
        args.no_checkpoint,
        args.resume_from_server,
        args.traffic_limit,
    );
    let mut batch = uploader
        .batch(&args.destination.bucket)
        .skip_unchanged(!args.force)
        .listing_prefix(prefix)
        .fail_fast(args.fail_fast)
        .cancel(cancel.clone())
        .configure(move |mut request| {
            request = request
                .options(options.clone())
                .checksum_mode(mode)
                .on_cancel(if no_checkpoint {
                    OnCancel::AbortUpload
                } else {
                    OnCancel::KeepCheckpoint
                })
                .resume_from_server(from_server);
            if let Some(bytes_per_sec) = traffic_limit {
                request = request.traffic_limit(bytes_per_sec.saturating_mul(8));
            }
            if let Some(size) = part_size {
                request = request.part_size(size);
            }
            if let Some(callback) = &callback {
                request = request.callback(callback.clone());
            }
            request
        })
        .progress({
            let display = display.clone();
            move |key: &str, event: &ProgressEvent| {
                display.lock().expect("display lock").file_event(key, event)
            }
        });
    if let Some(digests) = digests {
        batch = batch.digest_cache(digests);
    }
    let items = futures::stream::iter(tree.entries.into_iter().map(|entry| match entry {
        TreeEntry::File { path, key, .. } => BatchItem::file(path, key),
        TreeEntry::Unusable { path, key, reason } => {
            let error = Error::unsupported_source(format!("{}: {reason}", path.display()));
            BatchItem::rejected(Some(path), key, error)
        }
    }));

    let started = Instant::now();
    let mut run = batch.run(items);
    let mut signal = None;
    // One listener for the whole run: a signal arriving while no listener exists is lost, and a
    // listener made anew each time a file finishes leaves such a gap after every file.
    let interrupt = interrupted();
    tokio::pin!(interrupt);
    loop {
        let outcome = tokio::select! {
            outcome = run.next() => outcome,
            got = &mut interrupt, if signal.is_none() => {
                signal = Some(got);
                exit_on_second_interrupt();
                cancel.cancel();
                continue;
            }
        };
        let Some(outcome) = outcome else { break };
        if let Some(report) = &mut report {
            report.write(&outcome)?;
        }
        display.lock().expect("display lock").file_done(&outcome);
    }
    let summary = run.finish().await;
    if let Some(report) = report {
        report.finish()?;
    }
    let elapsed = started.elapsed();
    display.lock().expect("display lock").finish(
        &summary,
        files,
        elapsed,
        hedges.as_deref().map_or(0, HedgeStats::hedged),
    );

    if let Some(signal) = signal {
        let failure = Failure::cancelled(format!(
            "interrupted by {}: {} of {files} files done, {} skipped; the checkpoints of files in flight are kept",
            signal.name(),
            summary.uploaded,
            summary.skipped
        ));
        return Err(failure.hint(format!(
            "resume with: {} (files the bucket holds are skipped)",
            shell_command(std::env::args_os())
        )));
    }
    if summary.failed > 0 {
        let mut failure = Failure::failed(format!(
            "{} of {files} files failed (the others were uploaded or skipped): {}",
            summary.failed,
            summary
                .failed_keys
                .iter()
                .take(5)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
                + if summary.failed > 5 { ", ..." } else { "" }
        ));
        failure = match &args.report {
            Some(path) => failure.hint(format!("{} says why each failed", path.display())),
            None => failure.hint("pass --report FILE for each file's error"),
        };
        return Err(failure.hint(format!(
            "run the same command again to retry them: {}",
            shell_command(std::env::args_os())
        )));
    }
    Ok(())
}

/// One line of `--report` and of `--progress json`.
#[derive(Debug, Serialize)]
struct FileLine<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    event: Option<&'static str>,
    path: Option<String>,
    key: &'a str,
    status: &'static str,
    bytes_sent: u64,
    bytes_reused: u64,
    /// How a skipped file was judged to be there (`same_etag`, `same_crc64`, or
    /// `uploaded_by_another_worker` in a cooperating tree).
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<ossup::SkipReason>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrorLine>,
}

#[derive(Debug, Serialize)]
struct ErrorLine {
    kind: ossup::ErrorKind,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<String>,
}

fn file_line<'a>(outcome: &'a FileOutcome, event: Option<&'static str>) -> FileLine<'a> {
    let status = match &outcome.status {
        FileStatus::Uploaded(_) => "uploaded",
        FileStatus::Skipped { .. } => "skipped",
        _ => "failed",
    };
    FileLine {
        event,
        path: outcome.path.as_ref().map(|p| p.display().to_string()),
        key: &outcome.key,
        status,
        bytes_sent: outcome.bytes_sent(),
        bytes_reused: outcome.bytes_reused(),
        reason: match &outcome.status {
            FileStatus::Skipped { reason, .. } => Some(*reason),
            _ => None,
        },
        error: outcome.error().map(|e| {
            let service = e.service_error();
            ErrorLine {
                kind: e.kind(),
                message: e.to_string(),
                code: service.map(|s| s.code.clone()).filter(|c| !c.is_empty()),
                request_id: service
                    .map(|s| s.request_id.clone())
                    .filter(|r| !r.is_empty()),
            }
        }),
    }
}

/// `--report FILE`: a JSON object per file per line, written as files finish.
struct ReportFile {
    path: std::path::PathBuf,
    out: BufWriter<File>,
}

impl ReportFile {
    /// Creates (or empties) the report, owner-only: it names every file of the tree and the errors
    /// the server gave, which are nobody else's business.
    fn create(path: &Path) -> Result<Self, Failure> {
        let cannot = |e: std::io::Error| {
            Failure::usage(format!("cannot write the report {}: {e}", path.display()))
        };
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, ossup::store::PRIVATE_FILE_MODE);
        let file = options.open(path).map_err(cannot)?;
        // A report that existed keeps its old mode through the open: narrow it. Not a pipe or a
        // terminal (`--report /dev/stdout`), whose mode is not the report's.
        if file.metadata().map_err(cannot)?.is_file() {
            ossup::store::restrict_to_owner(&file, path).map_err(cannot)?;
        }
        Ok(Self {
            path: path.to_owned(),
            out: BufWriter::new(file),
        })
    }

    fn write(&mut self, outcome: &FileOutcome) -> Result<(), Failure> {
        let line = json_line(&file_line(outcome, None))
            .ok_or_else(|| self.failed(std::io::Error::other("a report line did not serialize")))?;
        writeln!(self.out, "{line}").map_err(|e| self.failed(e))
    }

    fn finish(mut self) -> Result<(), Failure> {
        self.out.flush().map_err(|e| self.failed(e))
    }

    fn failed(&self, e: std::io::Error) -> Failure {
        Failure::failed(format!(
            "cannot write the report {}: {e}",
            self.path.display()
        ))
    }
}

/// How the run is shown: a bar (bytes, and files done / skipped / failed / total, with the names in
/// flight), a line per file, a JSON line per file, or nothing.
struct Display {
    style: Style,
    total_files: u64,
    finished_bytes: u64,
    in_flight: Vec<(String, u64)>,
    counts: Counts,
}

#[derive(Default)]
struct Counts {
    uploaded: u64,
    skipped: u64,
    failed: u64,
}

enum Style {
    Bar(ProgressBar),
    Plain,
    Json,
    Quiet,
}

impl Display {
    fn new(progress: ProgressArg, tree: &Tree) -> Self {
        let style = match progress {
            ProgressArg::Auto if std::io::stderr().is_terminal() => Style::Bar(bar(tree)),
            ProgressArg::Bar => Style::Bar(bar(tree)),
            ProgressArg::Auto | ProgressArg::Plain => Style::Plain,
            ProgressArg::Json => Style::Json,
            ProgressArg::None => Style::Quiet,
        };
        if tree.links_skipped > 0 && !matches!(style, Style::Json) {
            eprintln!(
                "note: {} symbolic links skipped; pass --follow-symlinks to follow them",
                tree.links_skipped
            );
        }
        Self {
            style,
            total_files: tree.entries.len() as u64,
            finished_bytes: 0,
            in_flight: Vec::new(),
            counts: Counts::default(),
        }
    }

    /// A file's progress: the bytes it has on the server so far, and its notices (a corrupt
    /// checkpoint set aside, a changed file started over), which a person should hear of whatever
    /// the style.
    fn file_event(&mut self, key: &str, event: &ProgressEvent) {
        if let ProgressEvent::Notice { message, .. } = event {
            let text = || printable(&format!("note: {key}: {message}")).into_owned();
            match &self.style {
                Style::Bar(bar) => bar.println(text()),
                Style::Json => {
                    let line =
                        serde_json::json!({"event": "notice", "key": key, "message": message});
                    if let Some(line) = json_line(&line) {
                        println!("{line}");
                    }
                }
                Style::Plain | Style::Quiet => eprintln!("{}", text()),
            }
            return;
        }
        let bytes = match event {
            ProgressEvent::Started {
                already_on_server, ..
            } => *already_on_server,
            ProgressEvent::PartDone { transferred, .. } => *transferred,
            _ => return,
        };
        match self.in_flight.iter_mut().find(|(k, _)| k == key) {
            Some((_, so_far)) => *so_far = (*so_far).max(bytes),
            None => self.in_flight.push((key.to_owned(), bytes)),
        }
        self.redraw();
    }

    fn file_done(&mut self, outcome: &FileOutcome) {
        self.in_flight.retain(|(k, _)| *k != outcome.key);
        match &outcome.status {
            FileStatus::Uploaded(done) => {
                self.counts.uploaded += 1;
                self.finished_bytes += done.size;
            }
            FileStatus::Skipped { size, .. } => {
                self.counts.skipped += 1;
                self.finished_bytes += size;
            }
            _ => self.counts.failed += 1,
        }
        // The error is the server's text, the key and the path are the tree's: all escaped.
        let line = || {
            let shown = outcome
                .path
                .as_ref()
                .map_or_else(|| outcome.key.clone(), |p| p.display().to_string());
            match &outcome.status {
                FileStatus::Uploaded(done) => format!(
                    "uploaded {shown} -> {} ({})",
                    outcome.key,
                    HumanBytes(done.size)
                ),
                FileStatus::Skipped {
                    reason: ossup::SkipReason::UploadedByAnotherWorker,
                    ..
                } => format!("skipped  {shown} (another worker uploaded it)"),
                FileStatus::Skipped { .. } => {
                    format!("skipped  {shown} (the bucket holds it already)")
                }
                _ => format!(
                    "FAILED   {shown}: {}",
                    outcome.error().map(Error::to_string).unwrap_or_default()
                ),
            }
        };
        match &self.style {
            Style::Bar(bar) => {
                if outcome.error().is_some() {
                    bar.println(printable(&line()));
                }
            }
            Style::Plain => eprintln!("{}", printable(&line())),
            Style::Json => {
                if let Some(text) = json_line(&file_line(outcome, Some("file"))) {
                    println!("{text}");
                }
            }
            Style::Quiet => {}
        }
        self.redraw();
    }

    fn redraw(&self) {
        let Style::Bar(bar) = &self.style else { return };
        let in_flight: u64 = self.in_flight.iter().map(|(_, b)| b).sum();
        bar.set_position(self.finished_bytes + in_flight);
        let names: Vec<&str> = self
            .in_flight
            .iter()
            .take(3)
            .map(|(k, _)| k.as_str())
            .collect();
        bar.set_message(
            printable(&format!(
                "files {}/{} ({} skipped, {} failed) {}",
                self.counts.uploaded + self.counts.skipped + self.counts.failed,
                self.total_files,
                self.counts.skipped,
                self.counts.failed,
                names.join(", ")
            ))
            .into_owned(),
        );
    }

    fn finish(
        &mut self,
        summary: &ossup::BatchSummary,
        files: u64,
        elapsed: Duration,
        parts_hedged: u64,
    ) {
        if let Style::Bar(bar) = &self.style {
            bar.finish_and_clear();
        }
        let secs = elapsed.as_secs_f64();
        match self.style {
            Style::Json => {
                let line = serde_json::json!({
                    "event": "summary",
                    "files": files,
                    "uploaded": summary.uploaded,
                    "skipped": summary.skipped,
                    "failed": summary.failed,
                    "bytes_sent": summary.bytes_sent,
                    "bytes_reused": summary.bytes_reused,
                    "parts_hedged": parts_hedged,
                    "elapsed_secs": secs,
                });
                if let Some(line) = json_line(&line) {
                    println!("{line}");
                }
            }
            Style::Quiet => {}
            _ => {
                let rate = crate::size::rate_text(summary.bytes_sent, elapsed);
                println!(
                    "{files} files: {} uploaded, {} skipped (already in the bucket), {} failed",
                    summary.uploaded, summary.skipped, summary.failed
                );
                println!(
                    "  sent {} in {}, {rate}; {} not sent because the bucket held it",
                    HumanBytes(summary.bytes_sent),
                    crate::duration::brief(elapsed),
                    HumanBytes(summary.bytes_reused)
                );
                if parts_hedged > 0 {
                    println!("  {parts_hedged} straggling parts sent again (hedged)");
                }
            }
        }
    }
}

fn bar(tree: &Tree) -> ProgressBar {
    let bar = ProgressBar::new(tree.total_bytes());
    let style =
        ProgressStyle::with_template("{bar:30} {bytes}/{total_bytes} {binary_bytes_per_sec} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar
}
