//! `cargo xtask bench`: throughput, memory, resume cost and checkpoint overhead of `ossup upload`,
//! a stream from a pipe against the same file (`stream.rs`), and its many-files figures
//! (`--recursive`, `tree.rs`), against the machine's limit (one `md5sum` pass) and the official
//! Python SDK, in one run.
//!
//! Everything runs as the user would run it: the release `ossup` and `oss-mock` binaries as separate
//! processes on loopback, and `oss2` 2.19.1 in its venv. Each measured run gets a fresh mock with an
//! empty data directory under `target/bench/` (its `VmHWM` is then that run's peak, and the data is
//! gone when the run is), and the settings are measured round-robin, so a slow minute of a shared
//! machine spreads over every setting instead of spoiling one. `docs/benchmarks.md` explains each
//! figure and holds the latest results.

mod args;
mod child;
mod fleet;
mod mock;
pub(crate) mod process;
mod report;
mod shapes;
mod stats;
mod stream;
mod tree;

use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use serde_json::Value;

use crate::cmd::{Failure, Step, target_dir};

use args::BenchArgs;
use child::{Finished, Running, u64_field};
use mock::{ACCESS_KEY_ID, ACCESS_KEY_SECRET, BUCKET, Mock, REGION, remove_dir};
use report::{
    CheckpointResult, Checksum, Machine, Oss2Result, Results, ResumeResult, ResumeRun, Run, Runs,
    Store, UploadResult, UploadSetting,
};

/// Parallelism of the upload matrix.
const PARALLELS: [u16; 4] = [1, 2, 4, 8];
/// Part sizes of the upload matrix.
const PART_SIZES: [u64; 2] = [8 << 20, 32 << 20];
/// The setting oss2 and the resume measurement use, and compare with.
const REFERENCE: UploadSetting = UploadSetting {
    parallel: 4,
    part_size: 8 << 20,
    checksum: Checksum::Md5,
};
/// Part size of the checkpoint-overhead upload: the smallest OSS takes.
const CHECKPOINT_PART_SIZE: u64 = 100 * 1024;
/// Seeds of the two source files, so every run uploads the same bytes.
const SOURCE_SEED: u64 = 0x0551_b3e7_2024_0001;
const CHECKPOINT_SOURCE_SEED: u64 = 0x0551_b3e7_2024_0002;
/// The key every upload writes (each run has a mock of its own).
const KEY: &str = "bench/source.bin";

/// `oss2.resumable_upload` of one file, timed inside Python; prints one JSON line.
const OSS2_UPLOAD: &str = r#"
import json, os, sys, time
import oss2
from oss2.credentials import StaticCredentialsProvider

endpoint, bucket_name, key, path, part_size, threads, region, store_dir = sys.argv[1:9]
auth = oss2.ProviderAuthV4(StaticCredentialsProvider(os.environ["OSS_ACCESS_KEY_ID"], os.environ["OSS_ACCESS_KEY_SECRET"]))
bucket = oss2.Bucket(auth, endpoint, bucket_name, region=region)
store = oss2.ResumableStore(root=store_dir, dir="records")
started = time.monotonic()
result = oss2.resumable_upload(bucket, key, path, store=store, multipart_threshold=int(part_size),
                               part_size=int(part_size), num_threads=int(threads))
elapsed = time.monotonic() - started
print(json.dumps({"event": "completed", "elapsed_secs": elapsed, "crc64": str(result.crc)}), flush=True)
"#;

/// Runs `cargo xtask bench ARGS`.
pub(crate) fn run(raw: &[String]) -> Result<(), Failure> {
    let args =
        BenchArgs::parse(raw).map_err(|e| Failure::new(format!("{e}; see cargo xtask --help")))?;
    if args.shapes {
        return shapes::run(&args);
    }
    if args.fleet {
        return fleet::run(&args);
    }
    if args.runs < 3 {
        println!(
            "==> note: {} run(s) per figure; the published figures are medians of at least 3",
            args.runs
        );
    }
    let python = crate::oss2::ensure_venv()?;
    build_release()?;
    let bench = Bench::new(args, python)?;
    let load_before = loadavg();
    let measured = bench.measure_all();
    // The source files and every mock's data go whatever happened; logs stay when it failed.
    let cleaned = bench.clean(measured.is_ok());
    let mut results = measured?;
    cleaned?;
    results.machine.load_before = load_before;
    results.machine.load_after = loadavg();

    println!("\n## Results\n");
    println!(
        "{}, {} CPUs, {:.1} GiB RAM, kernel {}, {}, commit {}; {} of seeded random bytes, {} run(s) per figure; mock data in {}; load average before {} / after {}\n",
        results.machine.cpu_model,
        results.machine.cpus,
        results.machine.memory as f64 / f64::from(1u32 << 30),
        results.machine.kernel,
        results.date,
        results.revision,
        report::mib_label(results.size),
        results.runs,
        results.mock_data,
        results.machine.load_before,
        results.machine.load_after,
    );
    println!("{}\n", results.table());
    println!("{}\n", results.verdict_table());
    let json = serde_json::to_string_pretty(&results.to_json())
        .map_err(|e| Failure::new(format!("could not encode the results as JSON: {e}")))?;
    std::fs::write(&bench.args.json, json + "\n").map_err(|e| {
        Failure::new(format!(
            "could not write the JSON results to {}: {e}",
            bench.args.json.display()
        ))
    })?;
    println!("==> JSON results in {}", bench.args.json.display());
    Ok(())
}

/// Builds `oss-mock` and `ossup` in release mode.
fn build_release() -> Result<(), Failure> {
    Step::cargo(
        "build the mock server and the CLI (release)",
        [
            "build",
            "--release",
            "--quiet",
            "--package",
            "oss-mock",
            "--package",
            "ossup-cli",
        ],
    )
    .run()
}

/// Copies the release `oss-mock` and `ossup` into `bin` (created), so a rebuild during the run
/// cannot swap the binaries between measurements; returns the copies.
fn copy_binaries(bin: &Path) -> Result<(PathBuf, PathBuf), Failure> {
    std::fs::create_dir_all(bin)
        .map_err(|e| Failure::new(format!("could not create {}: {e}", bin.display())))?;
    let release = target_dir().join("release");
    let copies = (bin.join("oss-mock"), bin.join("ossup"));
    for (built, copy) in [
        (release.join("oss-mock"), &copies.0),
        (release.join("ossup"), &copies.1),
    ] {
        std::fs::copy(&built, copy).map_err(|e| {
            Failure::new(format!(
                "could not copy {} to {}: {e}",
                built.display(),
                copy.display()
            ))
        })?;
    }
    Ok(copies)
}

/// `ossup upload SOURCE DESTINATION` with `binary` to `mock` with JSON progress, the mock's
/// credentials and region, and none of the user's `OSS_*` settings.
fn ossup_upload(binary: &Path, mock: &Mock, source: &Path, destination: &str) -> Command {
    let mut command = Command::new(binary);
    command
        .arg("upload")
        .arg(source)
        .arg(destination)
        .args(["--endpoint", mock.endpoint(), "--region", REGION])
        .args(["--progress", "json"])
        .env("OSS_ACCESS_KEY_ID", ACCESS_KEY_ID)
        .env("OSS_ACCESS_KEY_SECRET", ACCESS_KEY_SECRET)
        .env_remove("OSS_SESSION_TOKEN")
        .env_remove("OSS_ENDPOINT")
        .env_remove("OSS_REGION")
        .env_remove("RUST_LOG");
    command
}

/// Where the checkpoint of an `ossup upload` goes.
#[derive(Debug, Clone)]
enum CheckpointArg {
    Memory,
    Dir(PathBuf),
    Db(PathBuf),
}

/// One benchmark run's files, binaries and settings.
#[derive(Debug)]
struct Bench {
    args: BenchArgs,
    python: PathBuf,
    dir: PathBuf,
    logs: PathBuf,
    mock_binary: PathBuf,
    ossup_binary: PathBuf,
    source: PathBuf,
    checkpoint_source: PathBuf,
    mock_data: PathBuf,
}

impl Bench {
    fn new(args: BenchArgs, python: PathBuf) -> Result<Self, Failure> {
        let dir = target_dir().join("bench");
        let bin = dir.join("bin");
        // Under a directory of the user's, a subdirectory of our own: that is all we ever remove.
        let mock_data = match &args.mock_dir {
            Some(parent) => parent.join("ossup-bench-mock-data"),
            None => dir.join("mock-data"),
        };
        remove_dir(&dir)?;
        let (mock_binary, ossup_binary) = copy_binaries(&bin)?;
        let bench = Self {
            python,
            logs: dir.join("logs"),
            mock_binary,
            ossup_binary,
            source: dir.join("source.bin"),
            checkpoint_source: dir.join("checkpoint-source.bin"),
            mock_data,
            dir,
            args,
        };
        std::fs::create_dir_all(&bench.logs)
            .map_err(|e| Failure::new(format!("could not create {}: {e}", bench.logs.display())))?;
        bench.check_free_space()?;
        Ok(bench)
    }

    fn checkpoint_size(&self) -> u64 {
        self.args.checkpoint_parts() * CHECKPOINT_PART_SIZE
    }

    /// Room for the source files and trees and the largest upload's data on the mock, plus 1 GiB
    /// to spare where they share a file system.
    fn check_free_space(&self) -> Result<(), Failure> {
        let (trees, largest_tree) = tree::bytes_needed(&self.args);
        let sources = self.args.size + self.checkpoint_size() + trees + (1 << 30);
        let mock = self.args.size.max(self.checkpoint_size()).max(largest_tree);
        let mock_parent = self.mock_data.parent().unwrap_or(&self.dir);
        if let Some(dir) = &self.args.mock_dir
            && !dir.is_dir()
        {
            return Err(Failure::new(format!(
                "--mock-dir {} is not a directory; give an existing one, e.g. /dev/shm",
                dir.display()
            )));
        }
        let same = file_system_id(&self.dir) == file_system_id(mock_parent);
        let needs: Vec<(&Path, u64)> = if same {
            vec![(&self.dir, sources + mock)]
        } else {
            vec![(&self.dir, sources), (mock_parent, mock + (256 << 20))]
        };
        for (dir, needed) in needs {
            let output = Command::new("df")
                .args(["-Pk"])
                .arg(dir)
                .output()
                .map_err(|e| Failure::new(format!("could not run df: {e}")))?;
            match df_available_bytes(&String::from_utf8_lossy(&output.stdout)) {
                Some(free) if free < needed => {
                    return Err(Failure::new(format!(
                        "{} has {} MiB free, the benchmark needs about {} MiB there (the sources and one upload's data); free some space or pass a smaller --size",
                        dir.display(),
                        free >> 20,
                        needed >> 20
                    )));
                }
                Some(_) => {}
                None => println!(
                    "==> note: could not read the free space of {} from df; going on",
                    dir.display()
                ),
            }
        }
        Ok(())
    }

    fn measure_all(&self) -> Result<Results, Failure> {
        let size = self.args.size;
        println!(
            "==> write {} of seeded random bytes to {}",
            report::mib_label(size),
            self.source.display()
        );
        write_random_file(&self.source, size, SOURCE_SEED)?;
        println!(
            "==> write {} parts of {} to {}",
            self.args.checkpoint_parts(),
            CHECKPOINT_PART_SIZE,
            self.checkpoint_source.display()
        );
        write_random_file(
            &self.checkpoint_source,
            self.checkpoint_size(),
            CHECKPOINT_SOURCE_SEED,
        )?;
        let date = command_line_output("date", &["-u", "+%Y-%m-%dT%H:%M:%SZ"]);
        let md5sum = self.measure_md5sum()?;
        let mut crc = CrcCheck::default();
        let uploads = self.measure_uploads(&mut crc)?;
        let oss2 = self.measure_oss2(&mut crc)?;
        let resume = self.measure_resume()?;
        let stream = stream::measure(self, &mut crc)?;
        let checkpoint = self.measure_checkpoint()?;
        let tree = tree::measure(self)?;
        Ok(Results {
            mock_data: format!(
                "{} ({}, {})",
                self.mock_data.display(),
                command_line_output("stat", &["-f", "-c", "%T", &self.mock_data_parent()]),
                if self.args.mock_fsync {
                    "fsynced"
                } else {
                    "--no-fsync"
                }
            ),
            date,
            revision: revision(),
            machine: describe_machine(),
            size,
            runs: self.args.runs,
            quick: self.args.quick,
            md5sum,
            uploads,
            oss2,
            resume,
            checkpoint,
            stream: Some(stream),
            tree: Some(tree),
        })
    }

    fn measure_md5sum(&self) -> Result<Runs, Failure> {
        let mut runs = Runs::default();
        for run in 1..=self.args.runs {
            let log = self.logs.join(format!("md5sum-{run}.log"));
            let mut command = Command::new("md5sum");
            command.arg(&self.source);
            let finished = Running::spawn("md5sum", &mut command, &log)?.wait()?;
            if !finished.status.success() {
                return Err(failure(
                    "md5sum",
                    &format!("exited with {}", finished.status),
                    &log,
                ));
            }
            announce(
                &format!("md5sum, run {run} of {}", self.args.runs),
                &finished,
            );
            runs.push(Run {
                wall: finished.wall_secs,
                client_cpu: finished.cpu_secs,
                client_peak: finished.peak_rss,
                ..Run::default()
            });
        }
        Ok(runs)
    }

    fn matrix() -> Vec<UploadSetting> {
        let mut settings = Vec::new();
        for part_size in PART_SIZES {
            for parallel in PARALLELS {
                for checksum in [Checksum::Md5, Checksum::Crc64] {
                    settings.push(UploadSetting {
                        parallel,
                        part_size,
                        checksum,
                    });
                }
            }
        }
        settings
    }

    fn measure_uploads(&self, crc: &mut CrcCheck) -> Result<Vec<UploadResult>, Failure> {
        let mut results: Vec<UploadResult> = Self::matrix()
            .into_iter()
            .map(|setting| UploadResult {
                setting,
                runs: Runs::default(),
            })
            .collect();
        let count = results.len();
        for run in 1..=self.args.runs {
            for (i, result) in results.iter_mut().enumerate() {
                let setting = result.setting;
                let checkpoints = self.dir.join("checkpoints");
                remove_dir(&checkpoints)?;
                let name = format!(
                    "upload-p{}-{}m-{}-{run}",
                    setting.parallel,
                    setting.part_size >> 20,
                    setting.checksum.flag()
                );
                let mock = self.start_mock(&name)?;
                let log = self.logs.join(format!("{name}.log"));
                let mut command = self.ossup_command(
                    &mock,
                    &self.source,
                    setting,
                    &CheckpointArg::Dir(checkpoints.clone()),
                );
                let finished = Running::spawn("ossup upload", &mut command, &log)?.wait()?;
                let on_mock = (mock.cpu_secs(), mock.peak_rss());
                let completed = completed_upload(&finished, self.args.size, &log, &mock)?;
                crc.check(&format!("ossup {}", setting.label()), &completed["crc64"])?;
                drop(mock);
                remove_dir(&checkpoints)?;
                announce(
                    &format!(
                        "[{}/{count}] ossup upload {}, run {run} of {}",
                        i + 1,
                        setting.label(),
                        self.args.runs
                    ),
                    &finished,
                );
                result.runs.push(measured(&finished, on_mock));
            }
        }
        Ok(results)
    }

    fn measure_oss2(&self, crc: &mut CrcCheck) -> Result<Oss2Result, Failure> {
        let mut result = Oss2Result {
            threads: REFERENCE.parallel,
            part_size: REFERENCE.part_size,
            runs: Runs::default(),
            process_walls: Vec::new(),
        };
        for run in 1..=self.args.runs {
            let name = format!("oss2-{run}");
            let mock = self.start_mock(&name)?;
            let store = self.dir.join("oss2-store");
            remove_dir(&store)?;
            let log = self.logs.join(format!("{name}.log"));
            let mut command = Command::new(&self.python);
            command
                .arg("-c")
                .arg(OSS2_UPLOAD)
                .arg(mock.endpoint())
                .arg(BUCKET)
                .arg(KEY)
                .arg(&self.source)
                .arg(REFERENCE.part_size.to_string())
                .arg(REFERENCE.parallel.to_string())
                .arg(REGION)
                .arg(&store)
                .env("OSS_ACCESS_KEY_ID", ACCESS_KEY_ID)
                .env("OSS_ACCESS_KEY_SECRET", ACCESS_KEY_SECRET)
                .env("PYTHONUNBUFFERED", "1");
            let finished = Running::spawn("oss2.resumable_upload", &mut command, &log)?.wait()?;
            let on_mock = (mock.cpu_secs(), mock.peak_rss());
            let completed = finished
                .event("completed")
                .filter(|_| finished.status.success());
            let Some(completed) = completed else {
                return Err(failure(
                    "oss2.resumable_upload",
                    &format!("exited with {} without finishing", finished.status),
                    &log,
                ));
            };
            let elapsed = completed["elapsed_secs"].as_f64().ok_or_else(|| {
                Failure::new(format!("oss2's line {completed} has no elapsed_secs"))
            })?;
            crc.check("oss2.resumable_upload", &completed["crc64"])?;
            drop(mock);
            remove_dir(&store)?;
            announce(
                &format!(
                    "oss2.resumable_upload num_threads {}, run {run} of {} (upload {elapsed:.2} s)",
                    REFERENCE.parallel, self.args.runs
                ),
                &finished,
            );
            result.runs.push(Run {
                wall: elapsed,
                ..measured(&finished, on_mock)
            });
            result.process_walls.push(finished.wall_secs);
        }
        Ok(result)
    }

    fn measure_resume(&self) -> Result<ResumeResult, Failure> {
        let mut result = ResumeResult {
            setting: REFERENCE,
            runs: Vec::new(),
            not_interrupted: 0,
        };
        for run in 1..=self.args.runs {
            match self.resume_once(run)? {
                Some(resume) => {
                    println!(
                        "==> resume, run {run} of {}: killed after {:.2} s with {} MiB acknowledged; the resumed run reused {} MiB, sent {} MiB in {:.2} s",
                        self.args.runs,
                        resume.killed_after_secs,
                        resume.acknowledged_at_kill >> 20,
                        resume.reused >> 20,
                        resume.sent >> 20,
                        resume.resumed_wall
                    );
                    result.runs.push(resume);
                }
                None => {
                    println!(
                        "==> resume, run {run} of {}: the upload finished before it could be killed",
                        self.args.runs
                    );
                    result.not_interrupted += 1;
                }
            }
        }
        Ok(result)
    }

    /// Starts an upload, freezes and kills it once half the file is acknowledged, and runs it again.
    /// `None` when the upload finished before the kill.
    fn resume_once(&self, run: usize) -> Result<Option<ResumeRun>, Failure> {
        let size = self.args.size;
        let name = format!("resume-{run}");
        let mock = self.start_mock(&name)?;
        let checkpoints = self.dir.join("checkpoints");
        remove_dir(&checkpoints)?;
        let store = CheckpointArg::Dir(checkpoints.clone());
        let log = self.logs.join(format!("{name}-killed.log"));
        let mut command = self.ossup_command(&mock, &self.source, REFERENCE, &store);
        let running = Running::spawn("ossup upload (to be killed)", &mut command, &log)?;
        let mut acknowledged = 0;
        let mut reached_half = false;
        while let Some(line) = running.next_line() {
            if line["event"] == "part_done" {
                acknowledged = acknowledged.max(u64_field(&line, "transferred")?);
                if acknowledged * 2 >= size {
                    reached_half = true;
                    break;
                }
            }
        }
        let (killed, written) = if reached_half {
            running.freeze_and_kill()?
        } else {
            (running.wait()?, None)
        };
        // Lines printed between the one that crossed half and the freeze count too.
        for line in killed.lines.iter().filter(|l| l["event"] == "part_done") {
            acknowledged = acknowledged.max(u64_field(line, "transferred")?);
        }
        let was_killed = killed.status.signal() == Some(9) && killed.event("completed").is_none();
        if !was_killed {
            if killed.event("completed").is_none() {
                return Err(failure(
                    "ossup upload (to be killed)",
                    &format!("ended with {} before half was acknowledged", killed.status),
                    &log,
                ));
            }
            drop(mock);
            remove_dir(&checkpoints)?;
            return Ok(None);
        }
        let log = self.logs.join(format!("{name}-resumed.log"));
        let mut command = self.ossup_command(&mock, &self.source, REFERENCE, &store);
        let resumed = Running::spawn("ossup upload (resumed)", &mut command, &log)?.wait()?;
        let completed = completed_upload(&resumed, size, &log, &mock)?;
        let resume = ResumeRun {
            acknowledged_at_kill: acknowledged,
            written_at_kill: written,
            killed_after_secs: killed.wall_secs,
            reused: u64_field(completed, "bytes_reused")?,
            sent: u64_field(completed, "bytes_sent")?,
            resumed_wall: resumed.wall_secs,
        };
        drop(mock);
        remove_dir(&checkpoints)?;
        Ok(Some(resume))
    }

    fn measure_checkpoint(&self) -> Result<CheckpointResult, Failure> {
        let mut stores: Vec<(Store, Runs)> =
            Store::ALL.iter().map(|s| (*s, Runs::default())).collect();
        let setting = UploadSetting {
            parallel: REFERENCE.parallel,
            part_size: CHECKPOINT_PART_SIZE,
            checksum: Checksum::Md5,
        };
        let size = self.checkpoint_size();
        for run in 1..=self.args.runs {
            for (store, runs) in &mut stores {
                let place = self.dir.join("checkpoint-store");
                remove_dir(&place)?;
                let arg = match store {
                    Store::Memory => CheckpointArg::Memory,
                    Store::File => CheckpointArg::Dir(place.clone()),
                    Store::Sqlite => {
                        std::fs::create_dir_all(&place).map_err(|e| {
                            Failure::new(format!("could not create {}: {e}", place.display()))
                        })?;
                        CheckpointArg::Db(place.join("checkpoints.db"))
                    }
                };
                let name = format!("checkpoint-{}-{run}", store.key());
                let mock = self.start_mock(&name)?;
                let log = self.logs.join(format!("{name}.log"));
                let mut command = self.ossup_command(&mock, &self.checkpoint_source, setting, &arg);
                let finished = Running::spawn("ossup upload", &mut command, &log)?.wait()?;
                let on_mock = (mock.cpu_secs(), mock.peak_rss());
                completed_upload(&finished, size, &log, &mock)?;
                drop(mock);
                remove_dir(&place)?;
                announce(
                    &format!(
                        "checkpoint store {}, {} parts, run {run} of {}",
                        store.key(),
                        self.args.checkpoint_parts(),
                        self.args.runs
                    ),
                    &finished,
                );
                runs.push(measured(&finished, on_mock));
            }
        }
        Ok(CheckpointResult {
            parts: self.args.checkpoint_parts(),
            part_size: CHECKPOINT_PART_SIZE,
            parallel: setting.parallel,
            stores,
        })
    }

    fn mock_data_parent(&self) -> String {
        self.mock_data
            .parent()
            .unwrap_or(&self.dir)
            .display()
            .to_string()
    }

    fn start_mock(&self, name: &str) -> Result<Mock, Failure> {
        Mock::start(
            &self.mock_binary,
            &self.mock_data,
            self.args.mock_fsync,
            &self.logs.join(format!("{name}-mock.log")),
        )
    }

    fn ossup_command(
        &self,
        mock: &Mock,
        file: &Path,
        setting: UploadSetting,
        checkpoint: &CheckpointArg,
    ) -> Command {
        let mut command = self.ossup_upload(mock, file, &format!("oss://{BUCKET}/{KEY}"));
        command
            .args(["--part-size", &setting.part_size.to_string()])
            .args(["--parallel", &setting.parallel.to_string()])
            .args(["--checksum", setting.checksum.flag()]);
        match checkpoint {
            CheckpointArg::Memory => command.arg("--no-checkpoint"),
            CheckpointArg::Dir(dir) => command.arg("--checkpoint-dir").arg(dir),
            CheckpointArg::Db(db) => command.arg("--checkpoint-db").arg(db),
        };
        command
    }

    /// `ossup upload SOURCE DESTINATION` to `mock` (see [`ossup_upload`]).
    fn ossup_upload(&self, mock: &Mock, source: &Path, destination: &str) -> Command {
        ossup_upload(&self.ossup_binary, mock, source, destination)
    }

    /// Removes what the run made: everything after a success, all but the logs after a failure.
    fn clean(&self, succeeded: bool) -> Result<(), Failure> {
        remove_dir(&self.mock_data)?;
        if succeeded {
            return remove_dir(&self.dir);
        }
        let entries = std::fs::read_dir(&self.dir)
            .map_err(|e| Failure::new(format!("could not list {}: {e}", self.dir.display())))?;
        for entry in entries.flatten() {
            let path = entry.path();
            if path == self.logs {
                continue;
            }
            if path.is_dir() {
                remove_dir(&path)?;
            } else {
                std::fs::remove_file(&path).map_err(|e| {
                    Failure::new(format!("could not remove {}: {e}", path.display()))
                })?;
            }
        }
        eprintln!("==> logs of the failed run stay in {}", self.logs.display());
        Ok(())
    }
}

/// Every upload of the source file must end with the same CRC-64, whoever sent it.
#[derive(Debug, Default)]
struct CrcCheck {
    first: Option<(String, String)>,
}

impl CrcCheck {
    fn check(&mut self, who: &str, crc: &Value) -> Result<(), Failure> {
        let crc = match crc {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        match &self.first {
            None => {
                self.first = Some((who.to_owned(), crc));
                Ok(())
            }
            Some((_, first)) if *first == crc => Ok(()),
            Some((first_who, first)) => Err(Failure::new(format!(
                "the uploads of one file disagree: {first_who} reported CRC-64 {first}, {who} reported {crc}"
            ))),
        }
    }
}

/// The `completed` event of a finished `ossup upload`, checked: exit 0, the file's size, and every
/// byte either sent or reused.
fn completed_upload<'a>(
    finished: &'a Finished,
    size: u64,
    log: &Path,
    mock: &Mock,
) -> Result<&'a Value, Failure> {
    let completed = finished
        .event("completed")
        .filter(|_| finished.status.success());
    let Some(completed) = completed else {
        let error = finished
            .event("error")
            .map(|e| format!(": {}", e["message"]))
            .unwrap_or_default();
        return Err(failure(
            "ossup upload",
            &format!(
                "exited with {}{error}\n{}",
                finished.status,
                mock.log_tail()
            ),
            log,
        ));
    };
    let uploaded = u64_field(completed, "size")?;
    let accounted = u64_field(completed, "bytes_sent")? + u64_field(completed, "bytes_reused")?;
    if uploaded != size || accounted != size {
        return Err(Failure::new(format!(
            "ossup upload of {size} bytes reported an object of {uploaded} bytes with {accounted} bytes sent or reused: {completed}"
        )));
    }
    Ok(completed)
}

/// The figures of one run: the client's from `finished`, the mock's CPU seconds and peak RSS as
/// read after the upload.
fn measured(finished: &Finished, (mock_cpu, mock_peak): (Option<f64>, Option<u64>)) -> Run {
    Run {
        wall: finished.wall_secs,
        client_cpu: finished.cpu_secs,
        mock_cpu,
        client_peak: finished.peak_rss,
        mock_peak,
    }
}

fn failure(what: &str, why: &str, log: &Path) -> Failure {
    Failure::new(format!(
        "{what}: {why}\n{}",
        crate::mock_process::log_tail(log, 20)
    ))
}

fn announce(what: &str, finished: &Finished) {
    let cpu = finished
        .cpu_secs
        .map(|c| format!(", {c:.2} s CPU"))
        .unwrap_or_default();
    let peak = finished
        .peak_rss
        .map(|p| format!(", peak RSS {} MiB", p >> 20))
        .unwrap_or_default();
    println!("==> {what}: {:.2} s{cpu}{peak}", finished.wall_secs);
}

/// Writes `size` bytes of ChaCha8 output seeded with `seed` to `path`, synced, so the page cache
/// holds it clean and no writeback runs under the measurements.
fn write_random_file(path: &Path, size: u64, seed: u64) -> Result<(), Failure> {
    let fail = |e: std::io::Error| Failure::new(format!("could not write {}: {e}", path.display()));
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut file = std::fs::File::create(path).map_err(fail)?;
    let mut buffer = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        let n = left.min(buffer.len() as u64) as usize;
        rng.fill_bytes(&mut buffer[..n]);
        file.write_all(&buffer[..n]).map_err(fail)?;
        left -= n as u64;
    }
    file.sync_all().map_err(fail)
}

/// The `Available` column of `df -Pk` output, in bytes.
fn df_available_bytes(df: &str) -> Option<u64> {
    let line = df.lines().nth(1)?;
    let kib: u64 = line.split_whitespace().nth(3)?.parse().ok()?;
    Some(kib * 1024)
}

/// The device a path lives on, to tell whether two paths share a file system.
fn file_system_id(path: &Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| m.dev())
}

/// The `model name` of the first CPU in `/proc/cpuinfo` text.
fn cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key.trim() == "model name").then(|| value.trim().to_owned())
    })
}

fn describe_machine() -> Machine {
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    Machine {
        cpus: std::thread::available_parallelism().map_or(0, usize::from),
        cpu_model: cpu_model(&read("/proc/cpuinfo")).unwrap_or_else(|| "unknown CPU".to_owned()),
        memory: process::status_field_bytes(&read("/proc/meminfo"), "MemTotal").unwrap_or(0),
        kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
        rustc: command_line_output("rustc", &["--version"]),
        load_before: String::new(),
        load_after: String::new(),
    }
}

/// The commit checked out, with a note when the work tree differs from it.
fn revision() -> String {
    let commit = command_line_output("git", &["rev-parse", "--short", "HEAD"]);
    let changed =
        !command_line_output("git", &["status", "--porcelain", "--untracked-files=no"]).is_empty();
    if changed {
        format!("{commit} with uncommitted changes")
    } else {
        commit
    }
}

/// The 1, 5 and 15 minute load averages.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// The trimmed stdout of `program args`, or `unknown` when it cannot run.
fn command_line_output(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_matrix_covers_every_parallelism_part_size_and_checksum_once() {
        let matrix = Bench::matrix();
        assert_eq!(matrix.len(), PARALLELS.len() * PART_SIZES.len() * 2);
        assert!(matrix.contains(&REFERENCE));
        for (i, a) in matrix.iter().enumerate() {
            assert!(matrix[i + 1..].iter().all(|b| b != a), "{a:?} twice");
        }
        // MD5 and CRC-64 of one setting sit side by side.
        assert_eq!(matrix[0].checksum, Checksum::Md5);
        assert_eq!(
            (matrix[1].parallel, matrix[1].part_size, matrix[1].checksum),
            (matrix[0].parallel, matrix[0].part_size, Checksum::Crc64)
        );
    }

    #[test]
    fn df_output_gives_the_available_bytes() {
        let df = "Filesystem     1024-blocks     Used Available Capacity Mounted on\n/dev/vda         264091588 22540164  72082660      24% /\n";
        assert_eq!(df_available_bytes(df), Some(72_082_660 * 1024));
        assert_eq!(df_available_bytes("Filesystem\n"), None);
    }

    #[test]
    fn the_cpu_model_is_the_first_model_name() {
        let cpuinfo = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) CPU @ 2.20GHz\nprocessor\t: 1\nmodel name\t: other\n";
        assert_eq!(
            cpu_model(cpuinfo).as_deref(),
            Some("Intel(R) Xeon(R) CPU @ 2.20GHz")
        );
        assert_eq!(cpu_model("processor : 0\n"), None);
    }

    #[test]
    fn uploads_of_one_file_must_agree_on_its_crc() {
        let mut crc = CrcCheck::default();
        crc.check("ossup a", &json!("123")).unwrap();
        crc.check("oss2", &json!("123")).unwrap();
        let err = crc.check("ossup b", &json!("124")).unwrap_err().to_string();
        assert!(
            err.contains("ossup a reported CRC-64 123, ossup b reported 124"),
            "{err}"
        );
    }

    #[test]
    fn random_files_are_reproducible_from_their_seed() {
        let dir = std::env::temp_dir().join(format!("xtask-bench-random-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (a, b, c) = (dir.join("a"), dir.join("b"), dir.join("c"));
        write_random_file(&a, 3 << 20 | 17, 7).unwrap();
        write_random_file(&b, 3 << 20 | 17, 7).unwrap();
        write_random_file(&c, 3 << 20 | 17, 8).unwrap();
        let (a, b, c) = (
            std::fs::read(a).unwrap(),
            std::fs::read(b).unwrap(),
            std::fs::read(c).unwrap(),
        );
        assert_eq!(a.len(), 3 << 20 | 17);
        assert_eq!(a, b);
        assert_ne!(a, c);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
