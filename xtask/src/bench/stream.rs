//! The stream figure of `cargo xtask bench`: the source file fed to `ossup upload -` through an OS
//! pipe, as `cat FILE | ossup upload - oss://bench/KEY` would, and the same file uploaded by name
//! at the same setting beside it in every round. Reported: the stream's time over the file's (the
//! issue allows 10% more) and the stream's client peak RSS against parallel × part size + 32 MiB.

use std::fs::File;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};

use serde_json::{Value, json};

use crate::cmd::Failure;

use super::child::Running;
use super::mock::remove_dir;
use super::report::{
    MIB, Results, Run, Runs, UploadSetting, Verdict, merged, mib_label, not_measured, throughput,
};
use super::stats::{Summary, display_or_na, json_or_null};
use super::{
    Bench, CheckpointArg, CrcCheck, REFERENCE, announce, completed_upload, failure, measured,
};

/// The most time the stream may take, as a multiple of the file's.
const MAX_RATIO: f64 = 1.10;

/// The stream runs and the file runs beside them.
#[derive(Debug, Clone)]
pub(super) struct StreamResult {
    /// `--parallel`, `--part-size` and `--checksum` of both.
    pub setting: UploadSetting,
    /// Bytes of the file, and so of the stream.
    pub size: u64,
    /// `ossup upload FILE`, one run per round.
    pub file: Runs,
    /// `cat FILE | ossup upload -`, one run per round. The client's CPU and peak RSS are ossup's
    /// alone: `cat` is reaped after them.
    pub stream: Runs,
}

/// Measures `--runs` rounds of one file upload and one stream upload at the reference setting.
pub(super) fn measure(bench: &Bench, crc: &mut CrcCheck) -> Result<StreamResult, Failure> {
    let mut result = StreamResult {
        setting: REFERENCE,
        size: bench.args.size,
        file: Runs::default(),
        stream: Runs::default(),
    };
    for run in 1..=bench.args.runs {
        // Which goes first alternates, so a machine that slows down (or warms up) over a round
        // does not always favour the same one.
        let stream_first = run % 2 == 0;
        for piped in [stream_first, !stream_first] {
            let measured = upload_once(bench, crc, piped, run)?;
            if piped {
                result.stream.push(measured);
            } else {
                result.file.push(measured);
            }
        }
    }
    Ok(result)
}

/// One upload of the source, from a pipe or by name, to a fresh mock.
fn upload_once(bench: &Bench, crc: &mut CrcCheck, piped: bool, run: usize) -> Result<Run, Failure> {
    let setting = REFERENCE;
    let checkpoints = bench.dir.join("checkpoints");
    remove_dir(&checkpoints)?;
    let name = format!("stream-{}-{run}", if piped { "pipe" } else { "file" });
    let mock = bench.start_mock(&name)?;
    let log = bench.logs.join(format!("{name}.log"));
    let store = CheckpointArg::Dir(checkpoints.clone());
    let (finished, feeder) = if piped {
        let (feeder, pipe) =
            Feeder::start(&bench.source, &bench.logs.join(format!("{name}-cat.log")))?;
        let mut command = bench.ossup_command(&mock, Path::new("-"), setting, &store);
        let running = Running::spawn_with_stdin("ossup upload -", &mut command, &log, pipe)?;
        // The command keeps a copy of the pipe's read end: dropped, so that `cat` sees the pipe
        // close (and stops) if ossup dies before reading everything.
        drop(command);
        (running.wait()?, Some(feeder))
    } else {
        let mut command = bench.ossup_command(&mock, &bench.source, setting, &store);
        (
            Running::spawn("ossup upload", &mut command, &log)?.wait()?,
            None,
        )
    };
    let on_mock = (mock.cpu_secs(), mock.peak_rss());
    let completed = completed_upload(&finished, bench.args.size, &log, &mock)?;
    let what = if piped {
        format!("ossup upload - ({}, from a pipe)", setting.label())
    } else {
        format!("ossup {} beside the stream", setting.label())
    };
    crc.check(&what, &completed["crc64"])?;
    if let Some(feeder) = feeder {
        let status = feeder.finish()?;
        if !status.success() {
            return Err(failure(
                "cat FILE (feeding the pipe)",
                &format!("exited with {status}"),
                &bench.logs.join(format!("{name}-cat.log")),
            ));
        }
    }
    drop(mock);
    remove_dir(&checkpoints)?;
    announce(
        &format!(
            "{}, {}, run {run} of {}",
            if piped {
                "cat FILE | ossup upload -"
            } else {
                "ossup upload FILE (beside the stream)"
            },
            setting.label(),
            bench.args.runs
        ),
        &finished,
    );
    Ok(measured(&finished, on_mock))
}

/// `cat FILE` writing into a pipe whose read end becomes ossup's standard input; killed and reaped
/// when dropped, if it is still running.
#[derive(Debug)]
struct Feeder {
    child: Child,
}

impl Feeder {
    /// Starts `cat file`, its stderr in `log`; returns it and the read end of its stdout.
    fn start(file: &Path, log: &Path) -> Result<(Self, Stdio), Failure> {
        let stderr = File::create(log)
            .map_err(|e| Failure::new(format!("could not create {}: {e}", log.display())))?;
        let mut child = Command::new("cat")
            .arg(file)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .map_err(|e| Failure::new(format!("could not start cat: {e}")))?;
        let pipe = child.stdout.take().expect("stdout is piped");
        Ok((Self { child }, Stdio::from(pipe)))
    }

    /// Waits for `cat`. Called once the reader of the pipe has been waited for, so that `cat`'s CPU
    /// time is not counted as the reader's.
    fn finish(mut self) -> Result<ExitStatus, Failure> {
        self.child
            .wait()
            .map_err(|e| Failure::new(format!("cat: waiting for it failed: {e}")))
    }
}

impl Drop for Feeder {
    fn drop(&mut self) {
        // Only when a run failed is it still running; otherwise it has been waited for.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl StreamResult {
    /// Each round's stream time over the file time of the same round.
    fn ratios(&self) -> Option<Summary> {
        let ratios: Vec<f64> = self
            .stream
            .walls
            .iter()
            .zip(&self.file.walls)
            .map(|(stream, file)| stream / file)
            .collect();
        Summary::of(&ratios)
    }

    /// The stream's median time over the file's.
    pub(super) fn stream_over_file(&self) -> Option<f64> {
        let stream = Summary::of(&self.stream.walls)?.median;
        let file = Summary::of(&self.file.walls)?.median;
        (file > 0.0).then(|| stream / file)
    }

    /// The stream's largest client peak RSS.
    fn largest_peak(&self) -> Option<u64> {
        self.stream.client_peaks.iter().flatten().max().copied()
    }

    /// The table rows: the file, then the stream.
    pub(super) fn rows(&self, results: &Results) -> Vec<String> {
        let budget = self.setting.client_rss_budget() as f64 / MIB;
        let ratio = match self.stream_over_file() {
            Some(ratio) => format!(
                "stream ÷ file = {ratio:.2} (each round's: {})",
                display_or_na(self.ratios(), 2)
            ),
            None => "no comparison".to_owned(),
        };
        vec![
            results.row(
                "`ossup upload FILE` beside the stream",
                &self.setting.label(),
                &self.file,
                self.size,
                true,
                &format!("one run per round with the stream; client budget {budget:.0} MiB"),
            ),
            results.row(
                "`ossup upload -` fed by `cat FILE` through a pipe",
                &self.setting.label(),
                &self.stream,
                self.size,
                true,
                &format!(
                    "{ratio}; client budget {budget:.0} MiB; client CPU and RSS are ossup's alone"
                ),
            ),
        ]
    }

    /// The two stream targets: the time against the file's, the memory against the bound.
    pub(super) fn verdicts(&self) -> Vec<Verdict> {
        let gib_note = if self.size == 1 << 30 {
            String::new()
        } else {
            format!(
                " (measured with {}, the target is stated for 1 GiB)",
                mib_label(self.size)
            )
        };
        let mut verdicts = Vec::new();
        let target = "a 1 GiB stream from a pipe: within 10% of the same file's time";
        let walls = (
            Summary::of(&self.stream.walls),
            Summary::of(&self.file.walls),
        );
        verdicts.push(match (self.stream_over_file(), walls) {
            (Some(ratio), (Some(stream), Some(file))) => Verdict {
                target: target.to_owned(),
                measured: format!(
                    "{ratio:.2} × (stream {:.2} s vs file {:.2} s, {}; each round's {}){gib_note}",
                    stream.median,
                    file.median,
                    self.setting.label(),
                    display_or_na(self.ratios(), 2)
                ),
                met: Some(ratio <= MAX_RATIO),
                inconclusive: false,
            },
            _ => not_measured(target),
        });
        let target = "a stream's client peak RSS at most parallel × part size + 32 MiB";
        let budget = self.setting.client_rss_budget();
        verdicts.push(match self.largest_peak() {
            Some(peak) => Verdict {
                target: target.to_owned(),
                measured: format!(
                    "largest run {:.0} MiB of {:.0} MiB ({})",
                    peak as f64 / MIB,
                    budget as f64 / MIB,
                    self.setting.label()
                ),
                met: Some(peak <= budget),
                inconclusive: false,
            },
            None => not_measured(target),
        });
        verdicts
    }

    /// Both sets of runs with their rates, the ratio and the memory bound, as JSON.
    pub(super) fn to_json(&self) -> Value {
        let budget = self.setting.client_rss_budget();
        let rate =
            |runs: &Runs| json!({"mb_per_sec": json_or_null(throughput(self.size, &runs.walls))});
        json!({
            "parallel": self.setting.parallel,
            "part_size": self.setting.part_size,
            "checksum": self.setting.checksum.flag(),
            "size_bytes": self.size,
            "feeder": "cat FILE through a pipe",
            "file": merged(self.file.to_json(), rate(&self.file)),
            "stream": merged(self.stream.to_json(), rate(&self.stream)),
            "stream_over_file": self.stream_over_file(),
            "stream_over_file_each_round": json_or_null(self.ratios()),
            "max_stream_over_file": MAX_RATIO,
            "client_rss_budget_bytes": budget,
            "largest_stream_client_peak_rss_bytes": self.largest_peak(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::report::Checksum;

    const MIB_U: u64 = 1 << 20;

    fn runs(walls: &[f64], client_mib: u64) -> Runs {
        let mut runs = Runs::default();
        for wall in walls {
            runs.push(Run {
                wall: *wall,
                client_cpu: Some(wall / 2.0),
                mock_cpu: Some(wall / 2.0),
                client_peak: Some(client_mib * MIB_U),
                mock_peak: Some(14 * MIB_U),
            });
        }
        runs
    }

    /// A GiB by name in 2.8 s, from a pipe in 3.0 s, at 4 × 8 MiB.
    fn result() -> StreamResult {
        StreamResult {
            setting: UploadSetting {
                parallel: 4,
                part_size: 8 * MIB_U,
                checksum: Checksum::Md5,
            },
            size: 1 << 30,
            file: runs(&[2.8, 2.7, 3.0], 41),
            stream: runs(&[3.0, 2.9, 3.3], 46),
        }
    }

    #[test]
    fn the_stream_is_judged_by_its_median_over_the_files_and_its_largest_peak() {
        let result = result();
        assert!((result.stream_over_file().unwrap() - 3.0 / 2.8).abs() < 1e-9);
        let verdicts = result.verdicts();
        assert_eq!(
            verdicts.iter().map(|v| v.met).collect::<Vec<_>>(),
            vec![Some(true), Some(true)]
        );
        assert!(
            verdicts[0]
                .measured
                .starts_with("1.07 × (stream 3.00 s vs file 2.80 s, parallel 4, 8 MiB, md5"),
            "{}",
            verdicts[0].measured
        );
        assert!(
            verdicts[1].measured.contains("46 MiB of 64 MiB"),
            "{}",
            verdicts[1].measured
        );

        let mut slow = result.clone();
        slow.stream = runs(&[3.2, 3.1, 3.3], 70);
        slow.size = 32 * MIB_U;
        let verdicts = slow.verdicts();
        assert_eq!(
            verdicts.iter().map(|v| v.met).collect::<Vec<_>>(),
            vec![Some(false), Some(false)]
        );
        assert!(
            verdicts[0].measured.contains("measured with 32 MiB"),
            "{}",
            verdicts[0].measured
        );
        slow.stream = Runs::default();
        assert!(slow.verdicts().iter().all(|v| v.met.is_none()));
    }

    #[test]
    fn the_json_holds_both_sets_of_runs_and_the_bound() {
        let json = result().to_json();
        assert_eq!(json["file"]["wall_secs"]["median"], 2.8);
        assert_eq!(json["stream"]["samples"]["wall_secs"][2], 3.3);
        assert_eq!(json["client_rss_budget_bytes"], 64 * MIB_U);
        assert_eq!(json["largest_stream_client_peak_rss_bytes"], 46 * MIB_U);
        // Rounds: 3.0/2.8, 2.9/2.7, 3.3/3.0; the median is 2.9/2.7.
        let each = json["stream_over_file_each_round"]["median"]
            .as_f64()
            .unwrap();
        assert!((each - 2.9 / 2.7).abs() < 1e-9);
        assert!(json["stream"]["mb_per_sec"]["median"].as_f64().unwrap() > 350.0);
    }

    #[test]
    fn the_feeder_hands_the_file_over_through_a_pipe() {
        let dir = std::env::temp_dir().join(format!("xtask-bench-stream-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("source.bin");
        std::fs::write(&file, vec![7u8; 300_000]).unwrap();
        let (feeder, pipe) = Feeder::start(&file, &dir.join("cat.log")).unwrap();
        let mut command = Command::new("sh");
        command.args(["-c", "if [ -p /dev/stdin ]; then echo pipe; fi; wc -c"]);
        let running =
            Running::spawn_with_stdin("sh", &mut command, &dir.join("sh.log"), pipe).unwrap();
        drop(command);
        let finished = running.wait().unwrap();
        assert!(feeder.finish().unwrap().success());
        assert_eq!(
            finished.lines,
            vec![Value::String("pipe".to_owned()), json!(300_000)]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
