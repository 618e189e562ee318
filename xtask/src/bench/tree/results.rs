//! What the many-files runs measured, and how the report shows it: the table rows, the verdicts
//! on the targets (files/s against oss2 and against a floor, the unchanged tree's files/s,
//! the large files' MB/s against one file's, the client's memory) and the JSON.

use ossup::plan::DEFAULT_PART_SIZE;
use serde_json::{Value, json};

use crate::bench::args::{LARGE_TREE_FILES, SMALL_TREE_FILES};
use crate::bench::report::{
    MIB, Runs, UploadSetting, Verdict, merged, mib_label, not_measured, throughput,
};
use crate::bench::stats::{Summary, display_or_na, json_or_null};
use crate::oss2::OSS2_VERSION;

use super::{FILES_PER_DIR, TreeShape};

/// The tree of small files: ossup twice (into an empty bucket, then over the unchanged tree) and
/// oss2 once per round.
#[derive(Debug, Clone)]
pub(in crate::bench) struct SmallTree {
    /// The tree.
    pub shape: TreeShape,
    /// `--parallel` of ossup (the part size is its default) and the threads of oss2.
    pub parallel: u16,
    /// `ossup upload --recursive` into an empty bucket.
    pub ossup: Runs,
    /// The same command again, same checkpoint directory and mock: every file skipped. The mock's
    /// CPU is that run's alone; its peak RSS is since the first run started.
    pub unchanged: Runs,
    /// oss2; the wall time is timed inside Python, the CPU time is the whole process's.
    pub oss2: Runs,
    /// Seconds from spawning Python to its exit.
    pub oss2_process_walls: Vec<f64>,
}

impl SmallTree {
    /// parallel × the default part size + 32 MiB.
    fn client_rss_budget(&self) -> u64 {
        u64::from(self.parallel) * DEFAULT_PART_SIZE + (32 << 20)
    }

    /// ossup's median files/s over oss2's.
    fn ossup_over_oss2(&self) -> Option<f64> {
        let ossup = files_per_sec(self.shape.files, &self.ossup.walls)?.median;
        let oss2 = files_per_sec(self.shape.files, &self.oss2.walls)?.median;
        (oss2 > 0.0).then(|| ossup / oss2)
    }
}

/// The tree of large files, at the single-file reference setting.
#[derive(Debug, Clone)]
pub(in crate::bench) struct LargeTree {
    /// The tree.
    pub shape: TreeShape,
    /// `--parallel`, `--part-size` and `--checksum`.
    pub setting: UploadSetting,
    /// `ossup upload --recursive` into an empty bucket.
    pub runs: Runs,
}

impl LargeTree {
    /// Median MB/s over the single file's median MB/s.
    fn ratio_to_single(&self, single: &SingleFile) -> Option<f64> {
        let tree = throughput(self.shape.bytes(), &self.runs.walls)?.median;
        let single = single.mb_per_sec?.median;
        (single > 0.0).then(|| tree / single)
    }
}

/// Every many-files measurement.
#[derive(Debug, Clone)]
pub(in crate::bench) struct TreeResult {
    /// Small files.
    pub small: SmallTree,
    /// Large files.
    pub large: LargeTree,
}

/// The matrix's upload of one file at the large tree's setting, which that tree is compared with.
#[derive(Debug, Clone, Copy)]
pub(in crate::bench) struct SingleFile {
    /// Bytes of the file.
    pub size: u64,
    /// Its MB/s, if the matrix measured that setting.
    pub mb_per_sec: Option<Summary>,
}

/// Files per second of moving `files` files in each of `walls` seconds, each run's rate summarised.
fn files_per_sec(files: u64, walls: &[f64]) -> Option<Summary> {
    let rates: Vec<f64> = walls.iter().map(|w| files as f64 / w).collect();
    Summary::of(&rates)
}

/// The largest client peak RSS of `runs`.
fn largest_peak(runs: &Runs) -> Option<u64> {
    runs.client_peaks.iter().flatten().max().copied()
}

/// A table row without a ratio to `md5sum` (the trees are other files); MB/s of `bytes` when some.
fn row(what: &str, setting: &str, runs: &Runs, bytes: Option<u64>, note: &str) -> String {
    let [client_cpu, mock_cpu, client_peak, mock_peak] = runs.cells();
    let rate = bytes
        .map(|b| display_or_na(throughput(b, &runs.walls), 0))
        .unwrap_or_default();
    format!(
        "| {what} | {setting} | {} | {rate} |  | {client_cpu} | {mock_cpu} | {client_peak} | {mock_peak} | {note} |",
        display_or_na(Summary::of(&runs.walls), 2)
    )
}

/// ` (measured with N files, the target is stated for M)` when the tree is not the issue's.
fn scale_note(shape: TreeShape, stated: u64) -> String {
    if shape.files == stated {
        String::new()
    } else {
        format!(
            " (measured with {} files, the target is stated for {stated})",
            shape.files
        )
    }
}

impl TreeResult {
    /// The table rows: ossup, ossup again and oss2 on the small tree, then ossup on the large one.
    pub(in crate::bench) fn rows(&self, single: &SingleFile) -> Vec<String> {
        let (small, large) = (&self.small, &self.large);
        let files = small.shape.files;
        let setting = format!("{}, parallel {}", small.shape.label(), small.parallel);
        let rate = |runs: &Runs| display_or_na(files_per_sec(files, &runs.walls), 0);
        let small_budget = small.client_rss_budget() as f64 / MIB;
        let over_oss2 = small
            .ossup_over_oss2()
            .map_or_else(|| "n/a".to_owned(), |r| format!("{r:.1}"));
        let single_note = match (single.mb_per_sec, large.ratio_to_single(single)) {
            (Some(mbps), Some(ratio)) => format!(
                "÷ one {} file at the same setting ({} MB/s) = {ratio:.2}",
                mib_label(single.size),
                mbps.display(0)
            ),
            _ => "no single-file run at this setting".to_owned(),
        };
        vec![
            row(
                "`ossup upload --recursive`",
                &format!("{setting} (default part size)"),
                &small.ossup,
                Some(small.shape.bytes()),
                &format!(
                    "{} files/s; client budget {small_budget:.0} MiB",
                    rate(&small.ossup)
                ),
            ),
            row(
                "`ossup upload --recursive` again, tree unchanged",
                &setting,
                &small.unchanged,
                None,
                &format!(
                    "{} files/s, every file skipped, 0 bytes sent; mock CPU of this run alone, mock peak since the first run",
                    rate(&small.unchanged)
                ),
            ),
            row(
                &format!("oss2 {OSS2_VERSION} `put_object_from_file`"),
                &format!("the same tree, ThreadPoolExecutor({})", small.parallel),
                &small.oss2,
                Some(small.shape.bytes()),
                &format!(
                    "{} files/s; ossup ÷ oss2 files/s = {over_oss2}; wall timed inside Python, the whole process took {} s",
                    rate(&small.oss2),
                    display_or_na(Summary::of(&small.oss2_process_walls), 2)
                ),
            ),
            row(
                "`ossup upload --recursive`",
                &format!("{}, {}", large.shape.label(), large.setting.label()),
                &large.runs,
                Some(large.shape.bytes()),
                &format!(
                    "{single_note}; client budget {:.0} MiB",
                    large.setting.client_rss_budget() as f64 / MIB
                ),
            ),
        ]
    }

    /// The many-files targets, each met or missed.
    pub(in crate::bench) fn verdicts(&self, single: &SingleFile) -> Vec<Verdict> {
        let (small, large) = (&self.small, &self.large);
        let small_note = scale_note(small.shape, SMALL_TREE_FILES);
        let ossup = files_per_sec(small.shape.files, &small.ossup.walls);
        let oss2 = files_per_sec(small.shape.files, &small.oss2.walls);
        let unchanged = files_per_sec(small.shape.files, &small.unchanged.walls);
        let verdict = |target: &str, measured: String, met: bool| Verdict {
            target: target.to_owned(),
            measured,
            met: Some(met),
            inconclusive: false,
        };
        let mut verdicts = Vec::new();
        let target = "10,000 files of 4 KiB: at least 5 × oss2's files/s (16 in flight each)";
        verdicts.push(match (small.ossup_over_oss2(), ossup, oss2) {
            (Some(ratio), Some(ossup), Some(oss2)) => verdict(
                target,
                format!(
                    "{ratio:.1} × (ossup {} files/s, oss2 {} files/s){small_note}",
                    ossup.display(0),
                    oss2.display(0)
                ),
                ratio >= 5.0,
            ),
            _ => not_measured(target),
        });
        let target = "10,000 files of 4 KiB: at least 1,000 files/s";
        verdicts.push(match ossup {
            Some(rate) => verdict(
                target,
                format!("{} files/s{small_note}", rate.display(0)),
                rate.median >= 1000.0,
            ),
            None => not_measured(target),
        });
        let target = "the same tree again, unchanged: at least 5,000 files/s, every file skipped";
        verdicts.push(match unchanged {
            Some(rate) => verdict(
                target,
                format!(
                    "{} files/s; every run skipped all {} files and sent 0 bytes{small_note}",
                    rate.display(0),
                    small.shape.files
                ),
                rate.median >= 5000.0,
            ),
            None => not_measured(target),
        });
        let target = "100 files of 10 MiB: MB/s within 10% of one 1 GiB file at the same setting";
        let tree_rate = throughput(large.shape.bytes(), &large.runs.walls);
        verdicts.push(
            match (large.ratio_to_single(single), tree_rate, single.mb_per_sec) {
                (Some(ratio), Some(tree), Some(one)) => verdict(
                    target,
                    format!(
                        "{} MB/s vs {} MB/s for one {} file ({}): {:+.1}%{}{}",
                        tree.display(0),
                        one.display(0),
                        mib_label(single.size),
                        large.setting.label(),
                        (ratio - 1.0) * 100.0,
                        scale_note(large.shape, LARGE_TREE_FILES),
                        if single.size == 1 << 30 {
                            ""
                        } else {
                            " (the single file is not 1 GiB)"
                        }
                    ),
                    ratio >= 0.9,
                ),
                _ => not_measured(target),
            },
        );
        verdicts.push(self.rss_verdict());
        verdicts
    }

    fn rss_verdict(&self) -> Verdict {
        let target = "tree runs: client peak RSS at most parallel × part size + 32 MiB";
        let (small, large) = (&self.small, &self.large);
        let checked = [
            ("small files", &small.ossup, small.client_rss_budget()),
            ("unchanged", &small.unchanged, small.client_rss_budget()),
            (
                "10 MiB files",
                &large.runs,
                large.setting.client_rss_budget(),
            ),
        ];
        let mut parts = Vec::new();
        let mut within = true;
        for (name, runs, budget) in checked {
            if let Some(peak) = largest_peak(runs) {
                within &= peak <= budget;
                parts.push(format!(
                    "{name} {:.0} MiB of {:.0}",
                    peak as f64 / MIB,
                    budget as f64 / MIB
                ));
            }
        }
        if parts.is_empty() {
            return not_measured(target);
        }
        Verdict {
            target: target.to_owned(),
            measured: format!("largest run: {}", parts.join("; ")),
            met: Some(within),
            inconclusive: false,
        }
    }

    /// Everything as JSON: samples and summaries of each run, rates and ratios.
    pub(in crate::bench) fn to_json(&self, single: &SingleFile) -> Value {
        let (small, large) = (&self.small, &self.large);
        let files = small.shape.files;
        let rates = |runs: &Runs, bytes: Option<u64>| {
            json!({
                "files_per_sec": json_or_null(files_per_sec(files, &runs.walls)),
                "mb_per_sec": json_or_null(bytes.and_then(|b| throughput(b, &runs.walls))),
            })
        };
        let bytes = Some(small.shape.bytes());
        json!({
            "small": {
                "files": files,
                "file_size": small.shape.file_size,
                "files_per_directory": FILES_PER_DIR,
                "parallel": small.parallel,
                "part_size": DEFAULT_PART_SIZE,
                "client_rss_budget_bytes": small.client_rss_budget(),
                "ossup": merged(small.ossup.to_json(), rates(&small.ossup, bytes)),
                "ossup_unchanged": merged(small.unchanged.to_json(), rates(&small.unchanged, None)),
                "oss2": merged(
                    merged(small.oss2.to_json(), rates(&small.oss2, bytes)),
                    json!({
                        "version": OSS2_VERSION,
                        "threads": small.parallel,
                        "process_wall_secs": json_or_null(Summary::of(&small.oss2_process_walls)),
                        "process_wall_secs_samples": small.oss2_process_walls,
                    }),
                ),
                "ossup_over_oss2_files_per_sec": small.ossup_over_oss2(),
            },
            "large": merged(
                large.runs.to_json(),
                json!({
                    "files": large.shape.files,
                    "file_size": large.shape.file_size,
                    "parallel": large.setting.parallel,
                    "part_size": large.setting.part_size,
                    "checksum": large.setting.checksum.flag(),
                    "mb_per_sec": json_or_null(throughput(large.shape.bytes(), &large.runs.walls)),
                    "files_per_sec": json_or_null(files_per_sec(large.shape.files, &large.runs.walls)),
                    "client_rss_budget_bytes": large.setting.client_rss_budget(),
                    "single_file_size_bytes": single.size,
                    "single_file_mb_per_sec": json_or_null(single.mb_per_sec),
                    "ratio_to_single_file": large.ratio_to_single(single),
                }),
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::report::{Checksum, Run};

    const MIB_U: u64 = 1 << 20;

    fn runs(walls: &[f64], client_mib: u64) -> Runs {
        let mut runs = Runs::default();
        for wall in walls {
            runs.push(Run {
                wall: *wall,
                client_cpu: Some(wall / 2.0),
                mock_cpu: Some(wall / 2.0),
                client_peak: Some(client_mib * MIB_U),
                mock_peak: Some(20 * MIB_U),
            });
        }
        runs
    }

    /// 10,000 files in 4 s (2,500/s), again in 0.5 s (20,000/s), oss2 in 20 s (500/s); 100 × 10 MiB
    /// in 3 s against one GiB in 2.8 s.
    fn result() -> (TreeResult, SingleFile) {
        let reference = UploadSetting {
            parallel: 4,
            part_size: 8 * MIB_U,
            checksum: Checksum::Md5,
        };
        let tree = TreeResult {
            small: SmallTree {
                shape: TreeShape {
                    files: 10_000,
                    file_size: 4096,
                },
                parallel: 16,
                ossup: runs(&[4.0, 3.9, 4.2], 30),
                unchanged: runs(&[0.5, 0.5, 0.6], 25),
                oss2: runs(&[20.0, 19.0, 21.0], 60),
                oss2_process_walls: vec![20.5, 19.5, 21.5],
            },
            large: LargeTree {
                shape: TreeShape {
                    files: 100,
                    file_size: 10 * MIB_U,
                },
                setting: reference,
                runs: runs(&[3.0, 2.9, 3.1], 70),
            },
        };
        let single = SingleFile {
            size: 1 << 30,
            mb_per_sec: throughput(1 << 30, &[2.8, 2.7, 3.0]),
        };
        (tree, single)
    }

    #[test]
    fn verdicts_judge_rates_ratios_and_memory() {
        let (tree, single) = result();
        let verdicts = tree.verdicts(&single);
        let met: Vec<Option<bool>> = verdicts.iter().map(|v| v.met).collect();
        // 2,500 ÷ 500 = 5.0: met; 2,500/s: met; 20,000/s: met; 350 of 383 MB/s = 0.91: met; the
        // 10 MiB files used 70 MiB of 64: missed.
        assert_eq!(
            met,
            vec![Some(true), Some(true), Some(true), Some(true), Some(false)]
        );
        assert!(
            verdicts[0]
                .measured
                .starts_with("5.0 × (ossup 2500 (2381..2564) files/s"),
            "{}",
            verdicts[0].measured
        );
        assert!(
            verdicts[3].measured.contains("-8.9%"),
            "{}",
            verdicts[3].measured
        );
        assert!(
            verdicts[4].measured.contains("10 MiB files 70 MiB of 64"),
            "{}",
            verdicts[4].measured
        );
        let mut quick = tree.clone();
        quick.small.shape.files = 200;
        quick.small.ossup = runs(&[0.5], 30);
        let verdict = &quick.verdicts(&single)[1];
        assert_eq!(verdict.met, Some(false));
        assert!(
            verdict.measured.contains("measured with 200 files"),
            "{}",
            verdict.measured
        );
    }

    #[test]
    fn rows_and_json_carry_every_run() {
        let (tree, single) = result();
        let rows = tree.rows(&single);
        assert_eq!(rows.len(), 4);
        assert!(
            rows.iter().all(|r| r.matches('|').count() == 11),
            "{rows:?}"
        );
        assert!(rows[0].contains("2500 (2381..2564) files/s"), "{}", rows[0]);
        assert!(
            rows[2].contains("ossup ÷ oss2 files/s = 5.0"),
            "{}",
            rows[2]
        );
        assert!(rows[3].contains("= 0.91"), "{}", rows[3]);
        let json = tree.to_json(&single);
        assert_eq!(json["small"]["ossup"]["files_per_sec"]["median"], 2500.0);
        assert_eq!(json["small"]["ossup_unchanged"]["mb_per_sec"], Value::Null);
        assert_eq!(json["small"]["oss2"]["samples"]["wall_secs"][1], 19.0);
        assert_eq!(json["large"]["client_rss_budget_bytes"], 64 * MIB_U);
        assert!(json["large"]["ratio_to_single_file"].as_f64().unwrap() < 0.95);
    }
}
