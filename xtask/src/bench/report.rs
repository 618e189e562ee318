//! The results of a benchmark run, the markdown table and target verdicts made from them, and their
//! JSON form.

use serde_json::{Value, json};

use crate::oss2::OSS2_VERSION;

use super::stats::{Summary, display_or_na, json_or_null};
use super::stream::StreamResult;
use super::tree::{SingleFile, TreeResult};

/// Bytes in a MiB, for figures in MiB.
pub(super) const MIB: f64 = (1u64 << 20) as f64;
/// The widest spread of the checkpoint runs (max − min over the median, in percent) that still
/// lets a 5% overhead be judged.
const MAX_SPREAD_PERCENT: f64 = 10.0;

/// How each part is checked, as `ossup upload --checksum` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Checksum {
    /// Content-MD5 and the ETag per part, plus CRC-64 (the default).
    Md5,
    /// CRC-64 only.
    Crc64,
}

impl Checksum {
    /// The value of `--checksum`.
    pub(super) fn flag(self) -> &'static str {
        match self {
            Self::Md5 => "md5",
            Self::Crc64 => "crc64",
        }
    }
}

/// One `ossup upload` setting of the matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct UploadSetting {
    /// `--parallel`.
    pub parallel: u16,
    /// `--part-size`, in bytes.
    pub part_size: u64,
    /// `--checksum`.
    pub checksum: Checksum,
}

impl UploadSetting {
    /// `parallel 4, 8 MiB, md5`.
    pub(super) fn label(&self) -> String {
        format!(
            "parallel {}, {}, {}",
            self.parallel,
            mib_label(self.part_size),
            self.checksum.flag()
        )
    }

    /// The client memory the issue allows this setting: parallel × part size + 32 MiB.
    pub(super) fn client_rss_budget(&self) -> u64 {
        u64::from(self.parallel) * self.part_size + (32 << 20)
    }
}

/// What each run of one measurement took: time, CPU and memory of the client and the mock.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Runs {
    /// Wall seconds.
    pub walls: Vec<f64>,
    /// CPU seconds (user + system) of the client.
    pub client_cpu: Vec<Option<f64>>,
    /// CPU seconds (user + system) of the mock.
    pub mock_cpu: Vec<Option<f64>>,
    /// Peak RSS of the client, in bytes.
    pub client_peaks: Vec<Option<u64>>,
    /// Peak RSS of the mock, in bytes.
    pub mock_peaks: Vec<Option<u64>>,
}

/// One run's figures, as [`Runs::push`] takes them.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(super) struct Run {
    /// Wall seconds.
    pub wall: f64,
    /// CPU seconds of the client.
    pub client_cpu: Option<f64>,
    /// CPU seconds of the mock.
    pub mock_cpu: Option<f64>,
    /// Peak RSS of the client, in bytes.
    pub client_peak: Option<u64>,
    /// Peak RSS of the mock, in bytes.
    pub mock_peak: Option<u64>,
}

impl Runs {
    /// Adds one run.
    pub(super) fn push(&mut self, run: Run) {
        self.walls.push(run.wall);
        self.client_cpu.push(run.client_cpu);
        self.mock_cpu.push(run.mock_cpu);
        self.client_peaks.push(run.client_peak);
        self.mock_peaks.push(run.mock_peak);
    }

    /// The client CPU, mock CPU, client peak and mock peak cells of a table row.
    pub(super) fn cells(&self) -> [String; 4] {
        [
            display_or_na(Summary::of_some(&self.client_cpu), 2),
            display_or_na(Summary::of_some(&self.mock_cpu), 2),
            display_or_na(mib_summary(&self.client_peaks), 0),
            display_or_na(mib_summary(&self.mock_peaks), 0),
        ]
    }

    /// Summaries and raw samples of every figure, as JSON.
    pub(super) fn to_json(&self) -> Value {
        json!({
            "wall_secs": json_or_null(Summary::of(&self.walls)),
            "client_cpu_secs": json_or_null(Summary::of_some(&self.client_cpu)),
            "mock_cpu_secs": json_or_null(Summary::of_some(&self.mock_cpu)),
            "client_peak_rss_bytes": json_or_null(bytes_summary(&self.client_peaks)),
            "mock_peak_rss_bytes": json_or_null(bytes_summary(&self.mock_peaks)),
            "samples": {
                "wall_secs": self.walls,
                "client_cpu_secs": self.client_cpu,
                "mock_cpu_secs": self.mock_cpu,
                "client_peak_rss_bytes": self.client_peaks,
                "mock_peak_rss_bytes": self.mock_peaks,
            },
        })
    }
}

/// Measurements of one upload setting.
#[derive(Debug, Clone)]
pub(super) struct UploadResult {
    /// What was run.
    pub setting: UploadSetting,
    /// Each run.
    pub runs: Runs,
}

/// Measurements of `oss2.resumable_upload`.
#[derive(Debug, Clone)]
pub(super) struct Oss2Result {
    /// Threads (`num_threads`).
    pub threads: u16,
    /// Part size, in bytes.
    pub part_size: u64,
    /// Each run. The wall time is what `resumable_upload` took, timed inside Python (interpreter
    /// start and imports left out); the CPU time is the whole Python process's.
    pub runs: Runs,
    /// Seconds from spawning Python to its exit.
    pub process_walls: Vec<f64>,
}

/// One kill-and-resume.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct ResumeRun {
    /// Bytes the server had acknowledged in the last progress line before the kill.
    pub acknowledged_at_kill: u64,
    /// Bytes the killed run had written (sockets, checkpoint, progress lines) when frozen, if known.
    pub written_at_kill: Option<u64>,
    /// Seconds the killed run had been running.
    pub killed_after_secs: f64,
    /// Bytes the resumed run found on the server and did not send.
    pub reused: u64,
    /// Bytes the resumed run sent.
    pub sent: u64,
    /// Wall seconds of the resumed run.
    pub resumed_wall: f64,
}

impl ResumeRun {
    /// Bytes sent twice: what the killed run had written plus what the resumed run sent, beyond the
    /// file's size. An upper bound, since the killed run's writes include request headers, its
    /// checkpoint journal and its progress lines. `None` when the written bytes are unknown or
    /// cannot count the socket writes (fewer than the acknowledged bytes).
    pub(super) fn resent(&self, size: u64) -> Option<u64> {
        let written = self.written_at_kill?;
        if written < self.acknowledged_at_kill {
            return None;
        }
        Some((written + self.sent).saturating_sub(size))
    }

    /// Acknowledged bytes the resumed run did not reuse (should be zero: every part the server
    /// confirmed is kept).
    pub(super) fn acknowledged_but_not_reused(&self) -> u64 {
        self.acknowledged_at_kill.saturating_sub(self.reused)
    }

    /// The resumed run's wall time over the time an uninterrupted upload of `reference_wall`
    /// seconds spends on the bytes the resumed run sent (proportionally).
    pub(super) fn time_ratio(&self, size: u64, reference_wall: f64) -> Option<f64> {
        let proportional = reference_wall * self.sent as f64 / size as f64;
        (proportional > 0.0).then(|| self.resumed_wall / proportional)
    }
}

/// The kill-and-resume measurement.
#[derive(Debug, Clone)]
pub(super) struct ResumeResult {
    /// The setting of both runs.
    pub setting: UploadSetting,
    /// Each kill-and-resume; empty when every upload finished before it could be killed.
    pub runs: Vec<ResumeRun>,
    /// Runs that finished before reaching half (too small a file to interrupt).
    pub not_interrupted: usize,
}

/// One checkpoint store of the overhead measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Store {
    /// `--no-checkpoint`: the in-memory store.
    Memory,
    /// `--checkpoint-dir`: the file store.
    File,
    /// `--checkpoint-db`: SQLite.
    Sqlite,
}

impl Store {
    /// Every store, the baseline first.
    pub(super) const ALL: [Store; 3] = [Store::Memory, Store::File, Store::Sqlite];

    /// The name in the table.
    pub(super) fn name(self) -> &'static str {
        match self {
            Self::Memory => "memory (--no-checkpoint)",
            Self::File => "file (--checkpoint-dir)",
            Self::Sqlite => "SQLite (--checkpoint-db)",
        }
    }

    /// The key in the JSON.
    pub(super) fn key(self) -> &'static str {
        match self {
            Self::Memory => "memory",
            Self::File => "file",
            Self::Sqlite => "sqlite",
        }
    }
}

/// The checkpoint-overhead measurement.
#[derive(Debug, Clone)]
pub(super) struct CheckpointResult {
    /// Parts of the upload.
    pub parts: u64,
    /// Part size, in bytes.
    pub part_size: u64,
    /// `--parallel`.
    pub parallel: u16,
    /// The runs of each store, in [`Store::ALL`] order.
    pub stores: Vec<(Store, Runs)>,
}

impl CheckpointResult {
    fn median(&self, store: Store) -> Option<f64> {
        let (_, runs) = self.stores.iter().find(|(s, _)| *s == store)?;
        Summary::of(&runs.walls).map(|s| s.median)
    }

    /// How far apart the runs of `store` are: (max − min) over the median, in percent.
    pub(super) fn spread_percent(&self, store: Store) -> Option<f64> {
        let (_, runs) = self.stores.iter().find(|(s, _)| *s == store)?;
        let summary = Summary::of(&runs.walls)?;
        (summary.median > 0.0).then(|| (summary.max - summary.min) / summary.median * 100.0)
    }

    /// How much slower `store` is than the memory store, in percent of the memory store's median.
    pub(super) fn overhead_percent(&self, store: Store) -> Option<f64> {
        let base = self.median(Store::Memory)?;
        let this = self.median(store)?;
        (base > 0.0).then(|| (this - base) / base * 100.0)
    }
}

/// The machine the numbers come from.
#[derive(Debug, Clone, Default)]
pub(super) struct Machine {
    /// Logical CPUs this process may use.
    pub cpus: usize,
    /// `model name` of `/proc/cpuinfo`.
    pub cpu_model: String,
    /// `MemTotal` of `/proc/meminfo`, in bytes.
    pub memory: u64,
    /// The kernel release.
    pub kernel: String,
    /// `rustc --version`.
    pub rustc: String,
    /// `/proc/loadavg` before and after the run.
    pub load_before: String,
    /// See [`load_before`](Self::load_before).
    pub load_after: String,
}

/// Everything one benchmark run measured.
#[derive(Debug, Clone)]
pub(super) struct Results {
    /// When it ran, UTC, ISO 8601.
    pub date: String,
    /// Where it ran.
    pub machine: Machine,
    /// Bytes of the source file.
    pub size: u64,
    /// Runs per figure.
    pub runs: usize,
    /// Whether this was a `--quick` smoke run.
    pub quick: bool,
    /// Where the mock kept its data, with the file system's type.
    pub mock_data: String,
    /// The commit measured, and whether the work tree had changes.
    pub revision: String,
    /// Each `md5sum FILE` (it is the client; there is no mock).
    pub md5sum: Runs,
    /// The upload matrix.
    pub uploads: Vec<UploadResult>,
    /// The official SDK.
    pub oss2: Oss2Result,
    /// Kill and resume.
    pub resume: ResumeResult,
    /// Checkpoint overhead.
    pub checkpoint: CheckpointResult,
    /// A stream from a pipe beside the same file; `None` when not measured.
    pub stream: Option<StreamResult>,
    /// Many files in one run (`--recursive`); `None` when not measured.
    pub tree: Option<TreeResult>,
}

/// Whether a target was reached.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Verdict {
    /// The target, as the issue states it.
    pub target: String,
    /// What was measured, in words.
    pub measured: String,
    /// `Some(true)` met, `Some(false)` missed, `None` not measured or inconclusive.
    pub met: Option<bool>,
    /// Measured, but the runs spread wider than the difference the target is about.
    pub inconclusive: bool,
}

impl Verdict {
    fn word(&self) -> &'static str {
        match self.met {
            None if self.inconclusive => "inconclusive",
            Some(true) => "met",
            Some(false) => "missed",
            None => "not measured",
        }
    }
}

impl Results {
    fn md5sum_summary(&self) -> Option<Summary> {
        Summary::of(&self.md5sum.walls)
    }

    fn throughput(&self, walls: &[f64]) -> Option<Summary> {
        throughput(self.size, walls)
    }

    fn ratio_to_md5sum(&self, walls: &[f64]) -> Option<Summary> {
        let limit = self.md5sum_summary()?.median;
        Summary::of(walls).map(|s| s.map(|w| w / limit))
    }

    fn upload(&self, setting: UploadSetting) -> Option<&UploadResult> {
        self.uploads.iter().find(|u| u.setting == setting)
    }

    /// The matrix setting oss2 and the resume run are compared with: 4 parts of 8 MiB, MD5.
    fn reference(&self) -> Option<&UploadResult> {
        self.upload(self.resume.setting)
    }

    /// The matrix's upload of one file at the setting of the tree of large files.
    fn single_file(&self, tree: &TreeResult) -> SingleFile {
        SingleFile {
            size: self.size,
            mb_per_sec: self
                .upload(tree.large.setting)
                .and_then(|u| self.throughput(&u.runs.walls)),
        }
    }

    /// ossup's median wall time over oss2's, at the same parallelism and part size, with ossup's
    /// default checks (MD5 and CRC-64).
    pub(super) fn ossup_over_oss2(&self) -> Option<f64> {
        self.over_oss2(self.reference()?)
    }

    /// The setting that checks what oss2's `resumable_upload` checks by default: the reference
    /// setting with CRC-64 only (oss2 sends no Content-MD5 unless asked, and checks CRC-64).
    fn same_checks_as_oss2(&self) -> Option<&UploadResult> {
        self.upload(UploadSetting {
            checksum: Checksum::Crc64,
            ..self.resume.setting
        })
    }

    /// ossup's median wall time over oss2's at the same parallelism, part size and checks.
    pub(super) fn ossup_over_oss2_same_checks(&self) -> Option<f64> {
        self.over_oss2(self.same_checks_as_oss2()?)
    }

    fn over_oss2(&self, ossup: &UploadResult) -> Option<f64> {
        let ossup = Summary::of(&ossup.runs.walls)?.median;
        let oss2 = Summary::of(&self.oss2.runs.walls)?.median;
        (oss2 > 0.0).then(|| ossup / oss2)
    }

    /// The upload setting with the lowest median wall time.
    pub(super) fn best_upload(&self) -> Option<(&UploadResult, Summary)> {
        self.uploads
            .iter()
            .filter_map(|u| Summary::of(&u.runs.walls).map(|s| (u, s)))
            .min_by(|a, b| a.1.median.total_cmp(&b.1.median))
    }

    /// One row of the table: `runs` moved `bytes` each; `versus_md5sum` when they moved the file
    /// `md5sum` read.
    pub(super) fn row(
        &self,
        what: &str,
        setting: &str,
        runs: &Runs,
        bytes: u64,
        versus_md5sum: bool,
        note: &str,
    ) -> String {
        let ratio = if versus_md5sum {
            display_or_na(self.ratio_to_md5sum(&runs.walls), 2)
        } else {
            String::new()
        };
        let [client_cpu, mock_cpu, client_peak, mock_peak] = runs.cells();
        format!(
            "| {what} | {setting} | {} | {} | {ratio} | {client_cpu} | {mock_cpu} | {client_peak} | {mock_peak} | {note} |",
            display_or_na(Summary::of(&runs.walls), 2),
            display_or_na(throughput(bytes, &runs.walls), 0),
        )
    }

    /// The markdown table of every measurement.
    pub(super) fn table(&self) -> String {
        let mut rows = vec![
            "| measurement | setting | wall s, median (min..max) | MB/s | ÷ md5sum | client CPU s | mock CPU s | client peak RSS, MiB | mock peak RSS, MiB | notes |".to_owned(),
            "|---|---|---|---|---|---|---|---|---|---|".to_owned(),
        ];
        rows.push(self.row(
            "`md5sum FILE` (the limit)",
            "one MD5 pass, file in page cache",
            &self.md5sum,
            self.size,
            true,
            "",
        ));
        for upload in &self.uploads {
            let budget = upload.setting.client_rss_budget() as f64 / MIB;
            rows.push(self.row(
                "`ossup upload`",
                &upload.setting.label(),
                &upload.runs,
                self.size,
                true,
                &format!("client budget {budget:.0} MiB"),
            ));
        }
        let oss2 = &self.oss2;
        let oss2_note = match (self.ossup_over_oss2(), self.ossup_over_oss2_same_checks()) {
            (Some(ratio), same) => format!(
                "ossup ({}) ÷ oss2 = {ratio:.2}{}; wall timed inside Python, the whole process took {} s; CPU includes Python's start",
                self.resume.setting.label(),
                match (same, self.same_checks_as_oss2()) {
                    (Some(same), Some(setting)) => format!(
                        "; with oss2's own checks ({}) {same:.2}",
                        setting.setting.label()
                    ),
                    _ => String::new(),
                },
                display_or_na(Summary::of(&oss2.process_walls), 2)
            ),
            (None, _) => "no comparison".to_owned(),
        };
        rows.push(self.row(
            &format!("`oss2.resumable_upload` (oss2 {OSS2_VERSION})"),
            &format!(
                "num_threads {}, {}",
                oss2.threads,
                mib_label(oss2.part_size)
            ),
            &oss2.runs,
            self.size,
            true,
            &oss2_note,
        ));
        rows.push(self.resume_row());
        let checkpoint = &self.checkpoint;
        for (store, runs) in &checkpoint.stores {
            let note = match (store, checkpoint.overhead_percent(*store)) {
                (Store::Memory, _) => "the baseline".to_owned(),
                (_, Some(percent)) => format!("{percent:+.1}% over memory"),
                (_, None) => "n/a".to_owned(),
            };
            rows.push(self.row(
                &format!("checkpoint store: {}", store.name()),
                &format!(
                    "{} parts of {}, parallel {}, md5",
                    checkpoint.parts,
                    kib_label(checkpoint.part_size),
                    checkpoint.parallel
                ),
                runs,
                checkpoint.parts * checkpoint.part_size,
                false,
                &note,
            ));
        }
        if let Some(stream) = &self.stream {
            rows.extend(stream.rows(self));
        }
        if let Some(tree) = &self.tree {
            rows.extend(tree.rows(&self.single_file(tree)));
        }
        rows.join("\n")
    }

    fn resume_row(&self) -> String {
        let resume = &self.resume;
        if resume.runs.is_empty() {
            return format!(
                "| resume after `kill -9` at half | {} | n/a | | | | | | | every run finished before half was acknowledged; use a larger --size |",
                resume.setting.label()
            );
        }
        let size = self.size;
        let resumed: Vec<f64> = resume.runs.iter().map(|r| r.resumed_wall).collect();
        let reused = Summary::of(
            &resume
                .runs
                .iter()
                .map(|r| r.reused as f64 / MIB)
                .collect::<Vec<_>>(),
        );
        let sent = Summary::of(
            &resume
                .runs
                .iter()
                .map(|r| r.sent as f64 / MIB)
                .collect::<Vec<_>>(),
        );
        let resent = Summary::of_some(
            &resume
                .runs
                .iter()
                .map(|r| r.resent(size).map(|b| b as f64 / MIB))
                .collect::<Vec<_>>(),
        );
        let lost: u64 = resume
            .runs
            .iter()
            .map(ResumeRun::acknowledged_but_not_reused)
            .max()
            .unwrap_or(0);
        let ratio = self
            .reference()
            .and_then(|r| Summary::of(&r.runs.walls))
            .and_then(|reference| {
                Summary::of_some(
                    &resume
                        .runs
                        .iter()
                        .map(|r| r.time_ratio(size, reference.median))
                        .collect::<Vec<_>>(),
                )
            });
        format!(
            "| resume after `kill -9` at half | {} | {} | | | | | | | reused {} MiB, sent {} MiB, sent twice ≤ {} MiB, acknowledged but not reused {} MiB; resumed run ÷ the same bytes in an uninterrupted run = {} |",
            resume.setting.label(),
            display_or_na(Summary::of(&resumed), 2),
            display_or_na(reused, 0),
            display_or_na(sent, 0),
            display_or_na(resent, 1),
            lost as f64 / MIB,
            display_or_na(ratio, 2),
        )
    }

    /// The targets, each with what was measured and whether it was met.
    pub(super) fn verdicts(&self) -> Vec<Verdict> {
        let mut verdicts = Vec::new();
        let gib_note = if self.size == 1 << 30 {
            String::new()
        } else {
            format!(
                " (measured with {}, the target is stated for 1 GiB)",
                mib_label(self.size)
            )
        };
        let limit = self.md5sum_summary().map(|s| s.median);
        verdicts.push(match (self.best_upload(), limit) {
            (Some((best, wall)), Some(limit)) => {
                let ratio = wall.median / limit;
                let best_md5 = self
                    .uploads
                    .iter()
                    .filter(|u| u.setting.checksum == Checksum::Md5)
                    .filter_map(|u| Summary::of(&u.runs.walls).map(|s| (u, s.median)))
                    .min_by(|a, b| a.1.total_cmp(&b.1));
                let md5_note = best_md5
                    .map(|(u, w)| {
                        format!(
                            "; best with MD5: {} at {:.2} ×",
                            u.setting.label(),
                            w / limit
                        )
                    })
                    .unwrap_or_default();
                Verdict {
                    target: "1 GiB upload at its best setting: at most 1.5 × the md5sum time"
                        .to_owned(),
                    measured: format!(
                        "{:.2} × ({}: {:.2} s vs md5sum {limit:.2} s){md5_note}{gib_note}",
                        ratio,
                        best.setting.label(),
                        wall.median
                    ),
                    met: Some(ratio <= 1.5),
                    inconclusive: false,
                }
            }
            _ => not_measured("1 GiB upload at its best setting: at most 1.5 × the md5sum time"),
        });
        let oss2_target = "at most 0.25 × the time of oss2 on the same mock and file";
        // Judged like for like: the same parallelism, part size and checks as oss2's defaults;
        // ossup's stronger default (MD5 per part as well) is shown beside it.
        verdicts.push(
            match (
                self.ossup_over_oss2_same_checks(),
                self.same_checks_as_oss2(),
                self.ossup_over_oss2(),
            ) {
                (Some(ratio), Some(same), default) => Verdict {
                    target: oss2_target.to_owned(),
                    measured: format!(
                        "{ratio:.2} × at oss2's checks (ossup {} vs oss2 num_threads {}, {}, CRC-64 on){}",
                        same.setting.label(),
                        self.oss2.threads,
                        mib_label(self.oss2.part_size),
                        match default {
                            Some(default) => format!(
                                "; {default:.2} × with ossup's default MD5 per part as well ({})",
                                self.resume.setting.label()
                            ),
                            None => String::new(),
                        }
                    ),
                    met: Some(ratio <= 0.25),
                    inconclusive: false,
                },
                _ => not_measured(oss2_target),
            },
        );
        verdicts.push(self.client_rss_verdict());
        verdicts.push(self.mock_rss_verdict());
        verdicts.push(self.resume_verdict());
        verdicts.push(self.checkpoint_verdict());
        if let Some(stream) = &self.stream {
            verdicts.extend(stream.verdicts());
        }
        if let Some(tree) = &self.tree {
            verdicts.extend(tree.verdicts(&self.single_file(tree)));
        }
        verdicts
    }

    fn client_rss_verdict(&self) -> Verdict {
        let target = "client peak RSS at most parallel × part size + 32 MiB";
        let mut over = Vec::new();
        let mut tightest: Option<(f64, &UploadResult)> = None;
        for upload in &self.uploads {
            let Some(peak) = upload.runs.client_peaks.iter().flatten().max() else {
                continue;
            };
            let share = *peak as f64 / upload.setting.client_rss_budget() as f64;
            if share > 1.0 {
                over.push(format!(
                    "{} used {:.0} MiB of {:.0}",
                    upload.setting.label(),
                    *peak as f64 / MIB,
                    upload.setting.client_rss_budget() as f64 / MIB
                ));
            }
            if tightest.is_none_or(|(s, _)| share > s) {
                tightest = Some((share, upload));
            }
        }
        match tightest {
            None => not_measured(target),
            Some(_) if !over.is_empty() => Verdict {
                target: target.to_owned(),
                measured: format!("over the budget: {}", over.join("; ")),
                met: Some(false),
                inconclusive: false,
            },
            Some((share, upload)) => Verdict {
                target: target.to_owned(),
                measured: format!(
                    "every setting within budget; closest: {} at {:.0}% of its {:.0} MiB (largest run)",
                    upload.setting.label(),
                    share * 100.0,
                    upload.setting.client_rss_budget() as f64 / MIB
                ),
                met: Some(true),
                inconclusive: false,
            },
        }
    }

    fn mock_rss_verdict(&self) -> Verdict {
        let target = "mock peak RSS under 64 MiB";
        let worst = self
            .uploads
            .iter()
            .filter_map(|u| u.runs.mock_peaks.iter().flatten().max().map(|p| (*p, u)))
            .max_by_key(|(p, _)| *p);
        match worst {
            None => not_measured(target),
            Some((peak, upload)) => Verdict {
                target: target.to_owned(),
                measured: format!(
                    "largest: {:.0} MiB ({})",
                    peak as f64 / MIB,
                    upload.setting.label()
                ),
                met: Some(peak < 64 << 20),
                inconclusive: false,
            },
        }
    }

    fn resume_verdict(&self) -> Verdict {
        let target = "resume re-sends at most parallel × part size";
        let setting = self.resume.setting;
        let budget = u64::from(setting.parallel) * setting.part_size;
        let resent: Vec<u64> = self
            .resume
            .runs
            .iter()
            .filter_map(|r| r.resent(self.size))
            .collect();
        let lost = self
            .resume
            .runs
            .iter()
            .map(ResumeRun::acknowledged_but_not_reused)
            .max()
            .unwrap_or(0);
        match resent.iter().max() {
            Some(worst) if resent.len() == self.resume.runs.len() => Verdict {
                target: target.to_owned(),
                measured: format!(
                    "at most {:.1} MiB sent twice of {:.0} MiB allowed ({}); acknowledged parts not reused: {:.1} MiB",
                    *worst as f64 / MIB,
                    budget as f64 / MIB,
                    setting.label(),
                    lost as f64 / MIB
                ),
                met: Some(*worst <= budget && lost == 0),
                inconclusive: false,
            },
            _ => not_measured(target),
        }
    }

    fn checkpoint_verdict(&self) -> Verdict {
        let target = format!(
            "checkpoint overhead at most 5% with every store at {} parts",
            self.checkpoint.parts
        );
        let overheads: Vec<(Store, f64)> = [Store::File, Store::Sqlite]
            .into_iter()
            .filter_map(|s| self.checkpoint.overhead_percent(s).map(|p| (s, p)))
            .collect();
        if overheads.len() < 2 {
            return not_measured(&target);
        }
        let mut measured = overheads
            .iter()
            .map(|(s, p)| format!("{} {p:+.1}%", s.key()))
            .collect::<Vec<_>>()
            .join(", ");
        // Whatever the noise, ranges that do not overlap decide: every run of a store more than 5%
        // slower than every memory run is a miss, and the reverse a pass.
        let ranges = |store| {
            let (_, runs) = self.checkpoint.stores.iter().find(|(s, _)| *s == store)?;
            Summary::of(&runs.walls)
        };
        if let Some(memory) = ranges(Store::Memory) {
            let apart: Vec<Option<bool>> = [Store::File, Store::Sqlite]
                .into_iter()
                .map(|s| {
                    let store = ranges(s)?;
                    if store.min > memory.max * 1.05 {
                        Some(false)
                    } else if store.max <= memory.min * 1.05 {
                        Some(true)
                    } else {
                        None
                    }
                })
                .collect();
            let decided = if apart.contains(&Some(false)) {
                Some(false)
            } else if apart.iter().all(|a| *a == Some(true)) {
                Some(true)
            } else {
                None
            };
            if decided.is_some() {
                return Verdict {
                    measured: format!("{measured} (every run apart from the memory store's)"),
                    met: decided,
                    inconclusive: false,
                    target,
                };
            }
        }
        // Otherwise the medians decide, if the runs agree to within twice the 5% at stake.
        let noisy: Vec<String> = Store::ALL
            .into_iter()
            .filter_map(|s| self.checkpoint.spread_percent(s).map(|p| (s, p)))
            .filter(|(_, p)| *p > MAX_SPREAD_PERCENT)
            .map(|(s, p)| format!("{} {p:.0}%", s.key()))
            .collect();
        if !noisy.is_empty() {
            measured.push_str(&format!(
                "; too noisy to judge: runs spread (max − min over the median) {}, more than {MAX_SPREAD_PERCENT:.0}%; run it on a quiet machine or with more --runs",
                noisy.join(", ")
            ));
        }
        Verdict {
            measured,
            met: noisy
                .is_empty()
                .then(|| overheads.iter().all(|(_, p)| *p <= 5.0)),
            inconclusive: !noisy.is_empty(),
            target,
        }
    }

    /// The verdicts as a markdown table.
    pub(super) fn verdict_table(&self) -> String {
        let mut rows = vec![
            "| target | measured | verdict |".to_owned(),
            "|---|---|---|".to_owned(),
        ];
        for verdict in self.verdicts() {
            rows.push(format!(
                "| {} | {} | **{}** |",
                verdict.target,
                verdict.measured,
                verdict.word()
            ));
        }
        rows.join("\n")
    }

    /// Everything as JSON: raw samples, summaries, the tables and the verdicts.
    pub(super) fn to_json(&self) -> Value {
        let machine = &self.machine;
        let limit = self.md5sum_summary().map(|s| s.median);
        let uploads: Vec<Value> = self
            .uploads
            .iter()
            .map(|u| {
                merged(
                    u.runs.to_json(),
                    json!({
                        "parallel": u.setting.parallel,
                        "part_size": u.setting.part_size,
                        "checksum": u.setting.checksum.flag(),
                        "mb_per_sec": json_or_null(self.throughput(&u.runs.walls)),
                        "ratio_to_md5sum": json_or_null(self.ratio_to_md5sum(&u.runs.walls)),
                        "client_rss_budget_bytes": u.setting.client_rss_budget(),
                    }),
                )
            })
            .collect();
        let reference = self
            .reference()
            .and_then(|r| Summary::of(&r.runs.walls))
            .map(|s| s.median);
        let resume_runs: Vec<Value> = self
            .resume
            .runs
            .iter()
            .map(|r| {
                json!({
                    "acknowledged_at_kill_bytes": r.acknowledged_at_kill,
                    "written_at_kill_bytes": r.written_at_kill,
                    "killed_after_secs": r.killed_after_secs,
                    "reused_bytes": r.reused,
                    "sent_bytes": r.sent,
                    "sent_twice_bytes_at_most": r.resent(self.size),
                    "acknowledged_but_not_reused_bytes": r.acknowledged_but_not_reused(),
                    "resumed_wall_secs": r.resumed_wall,
                    "ratio_to_proportional_uninterrupted": reference.and_then(|w| r.time_ratio(self.size, w)),
                })
            })
            .collect();
        let checkpoint: Vec<Value> = self
            .checkpoint
            .stores
            .iter()
            .map(|(store, runs)| {
                let overhead = match store {
                    Store::Memory => None,
                    _ => self.checkpoint.overhead_percent(*store),
                };
                merged(
                    runs.to_json(),
                    json!({"store": store.key(), "overhead_percent": overhead}),
                )
            })
            .collect();
        let verdicts: Vec<Value> = self
            .verdicts()
            .into_iter()
            .map(|v| {
                json!({
                    "target": v.target,
                    "measured": v.measured,
                    "met": v.met,
                    "inconclusive": v.inconclusive,
                })
            })
            .collect();
        json!({
            "date": self.date,
            "machine": {
                "cpus": machine.cpus,
                "cpu_model": machine.cpu_model,
                "memory_bytes": machine.memory,
                "kernel": machine.kernel,
                "rustc": machine.rustc,
                "loadavg_before": machine.load_before,
                "loadavg_after": machine.load_after,
            },
            "size_bytes": self.size,
            "runs": self.runs,
            "quick": self.quick,
            "mock_data": self.mock_data,
            "revision": self.revision,
            "md5sum": merged(
                self.md5sum.to_json(),
                json!({"mb_per_sec": json_or_null(self.throughput(&self.md5sum.walls))}),
            ),
            "uploads": uploads,
            "oss2": merged(
                self.oss2.runs.to_json(),
                json!({
                    "version": OSS2_VERSION,
                    "num_threads": self.oss2.threads,
                    "part_size": self.oss2.part_size,
                    "process_wall_secs": json_or_null(Summary::of(&self.oss2.process_walls)),
                    "process_wall_secs_samples": self.oss2.process_walls,
                    "mb_per_sec": json_or_null(self.throughput(&self.oss2.runs.walls)),
                    "ratio_to_md5sum": json_or_null(self.ratio_to_md5sum(&self.oss2.runs.walls)),
                    "ossup_over_oss2": self.ossup_over_oss2(),
                    "ossup_over_oss2_same_checks": self.ossup_over_oss2_same_checks(),
                }),
            ),
            "resume": {
                "parallel": self.resume.setting.parallel,
                "part_size": self.resume.setting.part_size,
                "checksum": self.resume.setting.checksum.flag(),
                "uninterrupted_reference_wall_secs": reference,
                "not_interrupted_runs": self.resume.not_interrupted,
                "runs": resume_runs,
            },
            "checkpoint": {
                "parts": self.checkpoint.parts,
                "part_size": self.checkpoint.part_size,
                "parallel": self.checkpoint.parallel,
                "stores": checkpoint,
            },
            "stream": self.stream.as_ref().map(StreamResult::to_json),
            "tree": self.tree.as_ref().map(|t| t.to_json(&self.single_file(t))),
            "md5sum_median_secs": limit,
            "targets": verdicts,
            "table": self.table(),
            "target_table": self.verdict_table(),
        })
    }
}

/// `base` (an object) with the fields of `extra` (an object) added.
pub(super) fn merged(mut base: Value, extra: Value) -> Value {
    if let (Value::Object(base), Value::Object(extra)) = (&mut base, extra) {
        base.extend(extra);
    }
    base
}

/// MB/s (10^6 bytes per second) of moving `bytes` in each of `walls` seconds. Each run's rate is
/// summarised, so the fastest run is the maximum.
pub(super) fn throughput(bytes: u64, walls: &[f64]) -> Option<Summary> {
    let rates: Vec<f64> = walls.iter().map(|w| bytes as f64 / 1e6 / w).collect();
    Summary::of(&rates)
}

/// The verdict of a target nothing was measured for.
pub(super) fn not_measured(target: &str) -> Verdict {
    Verdict {
        target: target.to_owned(),
        measured: "not measured".to_owned(),
        met: None,
        inconclusive: false,
    }
}

fn mib_summary(peaks: &[Option<u64>]) -> Option<Summary> {
    bytes_summary(peaks).map(|s| s.map(|b| b / MIB))
}

fn bytes_summary(peaks: &[Option<u64>]) -> Option<Summary> {
    Summary::of_some(
        &peaks
            .iter()
            .map(|p| p.map(|b| b as f64))
            .collect::<Vec<_>>(),
    )
}

/// `8 MiB`, or `1.5 MiB` when not whole.
pub(super) fn mib_label(bytes: u64) -> String {
    if bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{:.1} MiB", bytes as f64 / MIB)
    }
}

/// `100 KiB`, or `1000 B` when not whole.
pub(super) fn kib_label(bytes: u64) -> String {
    if bytes.is_multiple_of(1024) {
        format!("{} KiB", bytes >> 10)
    } else {
        format!("{bytes} B")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;
    const MIB_U: u64 = 1 << 20;

    fn setting(parallel: u16, part_mib: u64, checksum: Checksum) -> UploadSetting {
        UploadSetting {
            parallel,
            part_size: part_mib * MIB_U,
            checksum,
        }
    }

    /// Runs of these wall times, each using half its wall time of CPU on each side.
    fn runs(walls: &[f64], client_mib: u64, mock_mib: u64) -> Runs {
        let mut runs = Runs::default();
        for wall in walls {
            runs.push(Run {
                wall: *wall,
                client_cpu: Some(wall / 2.0),
                mock_cpu: Some(wall / 2.0),
                client_peak: Some(client_mib * MIB_U),
                mock_peak: Some(mock_mib * MIB_U),
            });
        }
        runs
    }

    fn upload(
        setting: UploadSetting,
        walls: &[f64],
        client_mib: u64,
        mock_mib: u64,
    ) -> UploadResult {
        UploadResult {
            setting,
            runs: runs(walls, client_mib, mock_mib),
        }
    }

    fn results() -> Results {
        let reference = setting(4, 8, Checksum::Md5);
        Results {
            date: "2024-01-01T00:00:00Z".to_owned(),
            machine: Machine::default(),
            size: GIB,
            runs: 3,
            quick: false,
            mock_data: "target/bench/mock-data (ext2/ext3)".to_owned(),
            revision: "0123abc".to_owned(),
            md5sum: Runs {
                walls: vec![2.0, 1.9, 2.1],
                client_cpu: vec![Some(1.9), Some(1.8), Some(2.0)],
                mock_cpu: vec![None; 3],
                client_peaks: vec![Some(MIB_U); 3],
                mock_peaks: vec![None; 3],
            },
            uploads: vec![
                upload(setting(1, 8, Checksum::Md5), &[5.0, 5.2, 4.9], 20, 30),
                upload(reference, &[2.8, 2.7, 3.0], 60, 40),
                upload(setting(4, 8, Checksum::Crc64), &[2.6, 2.5, 2.7], 60, 40),
                upload(setting(8, 32, Checksum::Crc64), &[2.5, 2.4, 2.6], 300, 70),
            ],
            oss2: Oss2Result {
                threads: 4,
                part_size: 8 * MIB_U,
                runs: runs(&[12.0, 11.0, 13.0], 50, 40),
                process_walls: vec![12.5, 11.5, 13.5],
            },
            resume: ResumeResult {
                setting: reference,
                runs: vec![ResumeRun {
                    acknowledged_at_kill: GIB / 2,
                    written_at_kill: Some(GIB / 2 + 20 * MIB_U),
                    killed_after_secs: 1.4,
                    reused: GIB / 2 + 8 * MIB_U,
                    sent: GIB / 2 - 8 * MIB_U,
                    resumed_wall: 1.5,
                }],
                not_interrupted: 0,
            },
            checkpoint: CheckpointResult {
                parts: 10_000,
                part_size: 100 * 1024,
                parallel: 4,
                stores: vec![
                    (Store::Memory, runs(&[10.0, 10.0, 10.0], 10, 10)),
                    (Store::File, runs(&[10.3, 10.2, 10.4], 10, 10)),
                    (Store::Sqlite, runs(&[11.0, 10.9, 11.2], 10, 10)),
                ],
            },
            stream: None,
            tree: None,
        }
    }

    #[test]
    fn resume_counts_bytes_sent_twice_from_both_runs() {
        let run = &results().resume.runs[0];
        // Written before the kill plus sent after, beyond the file: 20 MiB - 8 MiB.
        assert_eq!(run.resent(GIB), Some(12 * MIB_U));
        assert_eq!(run.acknowledged_but_not_reused(), 0);
        // The resumed run sent 504 MiB; the uninterrupted run takes 2.8 s per GiB.
        let ratio = run.time_ratio(GIB, 2.8).unwrap();
        assert!((ratio - 1.5 / (2.8 * 504.0 / 1024.0)).abs() < 1e-9);
        // Fewer bytes written than acknowledged: the counter missed the socket writes.
        let blind = ResumeRun {
            written_at_kill: Some(1),
            ..run.clone()
        };
        assert_eq!(blind.resent(GIB), None);
    }

    #[test]
    fn checkpoint_overhead_is_relative_to_the_memory_store_median() {
        let checkpoint = results().checkpoint;
        assert!((checkpoint.overhead_percent(Store::File).unwrap() - 3.0).abs() < 1e-9);
        assert!((checkpoint.overhead_percent(Store::Sqlite).unwrap() - 10.0).abs() < 1e-9);
        assert_eq!(checkpoint.overhead_percent(Store::Memory), Some(0.0));
    }

    #[test]
    fn oss2_is_compared_at_its_own_checks_and_at_ossups_default() {
        let results = results();
        assert!((results.ossup_over_oss2().unwrap() - 2.8 / 12.0).abs() < 1e-9);
        assert!((results.ossup_over_oss2_same_checks().unwrap() - 2.6 / 12.0).abs() < 1e-9);
        let verdict = &results.verdicts()[1];
        assert!(
            verdict.measured.contains("0.22 × at oss2's checks"),
            "{}",
            verdict.measured
        );
        assert!(
            verdict.measured.contains("0.23 × with ossup's default MD5"),
            "{}",
            verdict.measured
        );
    }

    #[test]
    fn verdicts_mark_each_target_met_or_missed() {
        let results = results();
        let verdicts = results.verdicts();
        let met: Vec<Option<bool>> = verdicts.iter().map(|v| v.met).collect();
        // best 2.5 s / md5sum 2.0 s = 1.25: met; at oss2's checks 2.6 / 12 = 0.22: met; the 8 × 32 MiB client used
        // 300 MiB of 288: missed; mock 70 MiB: missed; 12 MiB sent twice of 32: met; SQLite +10%:
        // missed.
        assert_eq!(
            met,
            vec![
                Some(true),
                Some(true),
                Some(false),
                Some(false),
                Some(true),
                Some(false)
            ]
        );
        assert!(
            verdicts[0].measured.contains("parallel 8, 32 MiB, crc64"),
            "{}",
            verdicts[0].measured
        );
        assert!(
            verdicts[0]
                .measured
                .contains("best with MD5: parallel 4, 8 MiB, md5")
        );
        assert!(
            verdicts[2].measured.contains("used 300 MiB of 288"),
            "{}",
            verdicts[2].measured
        );
        assert!(
            verdicts[5].measured.contains("sqlite +10.0%"),
            "{}",
            verdicts[5].measured
        );
    }

    #[test]
    fn a_checkpoint_overhead_beyond_the_noise_is_missed_however_noisy() {
        let mut results = results();
        results.checkpoint.stores[0].1 = runs(&[9.0, 10.0, 10.5], 10, 10);
        results.checkpoint.stores[1].1 = runs(&[11.1, 12.0, 14.0], 10, 10);
        let verdict = &results.verdicts()[5];
        assert_eq!((verdict.met, verdict.inconclusive), (Some(false), false));
        assert!(
            verdict.measured.contains("every run apart"),
            "{}",
            verdict.measured
        );
    }

    #[test]
    fn a_checkpoint_overhead_inside_the_noise_is_inconclusive() {
        let mut results = results();
        results.checkpoint.stores[0].1 = runs(&[9.0, 10.0, 12.0], 10, 10);
        let verdict = &results.verdicts()[5];
        assert_eq!((verdict.met, verdict.inconclusive), (None, true));
        assert!(
            verdict.measured.contains("too noisy to judge"),
            "{}",
            verdict.measured
        );
        assert!(
            verdict.measured.contains("memory 30%"),
            "{}",
            verdict.measured
        );
        assert!(results.verdict_table().contains("**inconclusive**"));
    }

    #[test]
    fn unmeasured_targets_say_so() {
        let mut results = results();
        results.resume.runs.clear();
        results.oss2.runs.walls.clear();
        let verdicts = results.verdicts();
        assert_eq!(verdicts[1].met, None);
        assert_eq!(verdicts[4].met, None);
        assert!(results.verdict_table().contains("**not measured**"));
        assert!(results.table().contains("use a larger --size"));
    }

    #[test]
    fn the_table_has_one_row_per_measurement_with_medians_and_spreads() {
        let results = results();
        let table = results.table();
        let lines: Vec<&str> = table.lines().collect();
        // Header, rule, md5sum, 4 uploads, oss2, resume, 3 stores.
        assert_eq!(lines.len(), 12, "{table}");
        assert!(lines.iter().all(|l| l.starts_with('|') && l.ends_with('|')));
        let columns = lines[0].matches('|').count();
        assert!(
            lines.iter().all(|l| l.matches('|').count() == columns),
            "{table}"
        );
        assert!(lines[2].contains("| 2.00 (1.90..2.10) |"), "{}", lines[2]);
        // 1 GiB in 2.8 s.
        assert!(
            lines[4].contains(
                "| 2.80 (2.70..3.00) | 383 (358..398) | 1.40 (1.35..1.50) | 1.40 (1.35..1.50) | 1.40 (1.35..1.50) | 60 | 40 |"
            ),
            "{}",
            lines[4]
        );
        // The checkpoint upload is another file: no ratio to md5sum.
        assert!(lines[9].contains("| 102 |  | 5.00 |"), "{}", lines[9]);
        assert!(
            lines[7].contains(
                "ossup (parallel 4, 8 MiB, md5) ÷ oss2 = 0.23; with oss2's own checks (parallel 4, 8 MiB, crc64) 0.22"
            ),
            "{}",
            lines[7]
        );
        assert!(lines[8].contains("sent twice ≤ 12.0 MiB"), "{}", lines[8]);
        assert!(lines[10].contains("+3.0% over memory"), "{}", lines[10]);
        // 1,024,000,000 bytes in 10.2..10.4 s: the fastest run is the largest rate.
        assert!(lines[10].contains("| 99 (98..100) |"), "{}", lines[10]);
    }

    #[test]
    fn the_json_holds_samples_summaries_and_verdicts() {
        let json = results().to_json();
        assert_eq!(json["md5sum"]["wall_secs"]["median"], 2.0);
        assert_eq!(json["uploads"].as_array().unwrap().len(), 4);
        assert_eq!(json["uploads"][1]["samples"]["wall_secs"][2], 3.0);
        assert_eq!(json["uploads"][1]["parallel"], 4);
        assert_eq!(json["uploads"][1]["client_cpu_secs"]["median"], 1.4);
        assert_eq!(json["oss2"]["version"], OSS2_VERSION);
        assert_eq!(json["oss2"]["wall_secs"]["median"], 12.0);
        let same_checks = json["oss2"]["ossup_over_oss2_same_checks"]
            .as_f64()
            .unwrap();
        assert!((same_checks - 2.6 / 12.0).abs() < 1e-9);
        assert_eq!(json["checkpoint"]["stores"][1]["store"], "file");
        assert_eq!(
            json["resume"]["runs"][0]["sent_twice_bytes_at_most"],
            12 * MIB_U
        );
        assert_eq!(
            json["checkpoint"]["stores"][0]["overhead_percent"],
            Value::Null
        );
        assert_eq!(json["targets"].as_array().unwrap().len(), 6);
        assert!(
            json["table"]
                .as_str()
                .unwrap()
                .starts_with("| measurement |")
        );
        let text = serde_json::to_string(&json).unwrap();
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), json);
    }
}
