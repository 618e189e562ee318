//! The many-files figures of `cargo xtask bench`: `ossup upload DIR oss://bench/tree/ --recursive`
//! over a tree of small files, against oss2 putting the same files from a pool of as many threads;
//! the same command again over the unchanged tree (every file skipped by content); and a tree of
//! 10 MiB files against the matrix's single-file upload at the same setting. Each tree run's client
//! peak RSS is judged against parallel × part size + 32 MiB. The trees are seeded random files,
//! 100 to a directory; each run gets a fresh mock, round-robin over `--runs` like the rest.

mod results;

use std::io::Write;
use std::path::Path;
use std::process::Command;

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use serde_json::Value;

use crate::cmd::Failure;

use super::args::BenchArgs;
use super::child::{Finished, Running, u64_field};
use super::mock::{ACCESS_KEY_ID, ACCESS_KEY_SECRET, BUCKET, Mock, REGION, remove_dir};
use super::report::{Run, Runs, kib_label, mib_label};
use super::{Bench, REFERENCE, announce, failure, measured};

pub(super) use results::{LargeTree, SingleFile, SmallTree, TreeResult};

/// Files per directory of a generated tree.
const FILES_PER_DIR: u64 = 100;
/// Bytes of each file of the tree of small files.
const SMALL_FILE_SIZE: u64 = 4 << 10;
/// Bytes of each file of the tree of large files.
const LARGE_FILE_SIZE: u64 = 10 << 20;
/// `--parallel` of the small-file runs, and oss2's threads.
const SMALL_PARALLEL: u16 = 16;
/// Seed of the small files' content.
const SMALL_SEED: u64 = 0x0551_b3e7_2024_0003;
/// Seed of the large files' content.
const LARGE_SEED: u64 = 0x0551_b3e7_2024_0004;
/// Where the trees go in the bucket.
const PREFIX: &str = "tree/";

/// oss2 putting every file of a tree with `bucket.put_object_from_file` from a
/// `ThreadPoolExecutor`, with V4 signing and a connection pool as large as the thread pool (so no
/// thread waits for a connection), timed inside Python from the first put to the last: the
/// interpreter's start, `import oss2` and the walk are left out, which favours oss2. One JSON line.
const OSS2_TREE: &str = r#"
import json, os, sys, time
from concurrent.futures import ThreadPoolExecutor
import oss2
from oss2.credentials import StaticCredentialsProvider

endpoint, bucket_name, prefix, root, threads, region = sys.argv[1:7]
auth = oss2.ProviderAuthV4(StaticCredentialsProvider(os.environ["OSS_ACCESS_KEY_ID"], os.environ["OSS_ACCESS_KEY_SECRET"]))
bucket = oss2.Bucket(auth, endpoint, bucket_name, region=region, session=oss2.Session(pool_size=int(threads)))
files = []
for top, dirs, names in os.walk(root):
    dirs.sort()
    for name in sorted(names):
        path = os.path.join(top, name)
        files.append((prefix + os.path.relpath(path, root).replace(os.sep, "/"), path))
size = sum(os.path.getsize(path) for _, path in files)
started = time.monotonic()
with ThreadPoolExecutor(max_workers=int(threads)) as pool:
    for _ in pool.map(lambda item: bucket.put_object_from_file(*item), files):
        pass
elapsed = time.monotonic() - started
print(json.dumps({"event": "completed", "files": len(files), "bytes": size, "elapsed_secs": elapsed}), flush=True)
"#;

/// A generated tree: how many files, of what size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct TreeShape {
    /// Files in the tree.
    pub files: u64,
    /// Bytes of each file.
    pub file_size: u64,
}

impl TreeShape {
    fn bytes(self) -> u64 {
        self.files * self.file_size
    }

    /// `10000 files of 4 KiB in 100 directories`.
    fn label(self) -> String {
        let size = if self.file_size < 1 << 20 {
            kib_label(self.file_size)
        } else {
            mib_label(self.file_size)
        };
        let directories = match self.files.div_ceil(FILES_PER_DIR) {
            1 => "1 directory".to_owned(),
            n => format!("{n} directories"),
        };
        format!("{} files of {size} in {directories}", self.files)
    }
}

fn small_shape(args: &BenchArgs) -> TreeShape {
    TreeShape {
        files: args.small_tree_files(),
        file_size: SMALL_FILE_SIZE,
    }
}

fn large_shape(args: &BenchArgs) -> TreeShape {
    TreeShape {
        files: args.large_tree_files(),
        file_size: LARGE_FILE_SIZE,
    }
}

/// Bytes both trees take as sources, and the most one tree upload leaves on the mock.
pub(super) fn bytes_needed(args: &BenchArgs) -> (u64, u64) {
    // A small file takes a block of its own, and the mock keeps a record beside each object.
    let small = small_shape(args).files * (SMALL_FILE_SIZE + (4 << 10));
    let large = large_shape(args).bytes();
    (small + large, small.max(large))
}

/// Writes both trees under the benchmark's directory and measures them, round-robin over `--runs`.
pub(super) fn measure(bench: &Bench) -> Result<TreeResult, Failure> {
    let (small_root, large_root) = (bench.dir.join("tree-small"), bench.dir.join("tree-large"));
    let mut result = TreeResult {
        small: SmallTree {
            shape: small_shape(&bench.args),
            parallel: SMALL_PARALLEL,
            ossup: Runs::default(),
            unchanged: Runs::default(),
            oss2: Runs::default(),
            oss2_process_walls: Vec::new(),
        },
        large: LargeTree {
            shape: large_shape(&bench.args),
            setting: REFERENCE,
            runs: Runs::default(),
        },
    };
    for (root, shape, seed) in [
        (&small_root, result.small.shape, SMALL_SEED),
        (&large_root, result.large.shape, LARGE_SEED),
    ] {
        println!("==> write {} to {}", shape.label(), root.display());
        write_tree(root, shape, seed)?;
    }
    for run in 1..=bench.args.runs {
        small_ossup_twice(bench, &small_root, run, &mut result.small)?;
        small_oss2(bench, &small_root, run, &mut result.small)?;
        large_ossup(bench, &large_root, run, &mut result.large)?;
    }
    Ok(result)
}

/// One round of ossup over the small tree: into an empty bucket, then again over the unchanged
/// tree with the same checkpoint directory and the same mock.
fn small_ossup_twice(
    bench: &Bench,
    root: &Path,
    run: usize,
    result: &mut SmallTree,
) -> Result<(), Failure> {
    let (shape, runs) = (result.shape, bench.args.runs);
    let checkpoints = bench.dir.join("tree-checkpoints");
    remove_dir(&checkpoints)?;
    let name = format!("tree-small-{run}");
    let mock = bench.start_mock(&name)?;
    let flags = ["--parallel".to_owned(), result.parallel.to_string()];
    let setting = format!("{}, parallel {}", shape.label(), result.parallel);

    let log = bench.logs.join(format!("{name}.log"));
    let mut command = tree_command(bench, &mock, root, &checkpoints, &flags);
    let finished = run_tree(&mut command, &log, &mock, Expected::uploaded(shape))?;
    let first = (mock.cpu_secs(), mock.peak_rss());
    announce(
        &format!("ossup upload --recursive, {setting}, run {run} of {runs}"),
        &finished,
    );
    result.ossup.push(measured(&finished, first));

    let log = bench.logs.join(format!("{name}-unchanged.log"));
    let mut command = tree_command(bench, &mock, root, &checkpoints, &flags);
    let again = run_tree(&mut command, &log, &mock, Expected::skipped(shape))?;
    let mock_cpu = match (first.0, mock.cpu_secs()) {
        (Some(before), Some(after)) => Some(after - before),
        _ => None,
    };
    announce(
        &format!("ossup upload --recursive again (unchanged), {setting}, run {run} of {runs}"),
        &again,
    );
    result
        .unchanged
        .push(measured(&again, (mock_cpu, mock.peak_rss())));
    drop(mock);
    remove_dir(&checkpoints)
}

/// One run of oss2 over the small tree, into an empty bucket.
fn small_oss2(
    bench: &Bench,
    root: &Path,
    run: usize,
    result: &mut SmallTree,
) -> Result<(), Failure> {
    let shape = result.shape;
    let name = format!("tree-oss2-{run}");
    let mock = bench.start_mock(&name)?;
    let log = bench.logs.join(format!("{name}.log"));
    let mut command = Command::new(&bench.python);
    command
        .arg("-c")
        .arg(OSS2_TREE)
        .arg(mock.endpoint())
        .arg(BUCKET)
        .arg(PREFIX)
        .arg(root)
        .arg(result.parallel.to_string())
        .arg(REGION)
        .env("OSS_ACCESS_KEY_ID", ACCESS_KEY_ID)
        .env("OSS_ACCESS_KEY_SECRET", ACCESS_KEY_SECRET)
        .env("PYTHONUNBUFFERED", "1");
    let what = "oss2 put_object_from_file";
    let finished = Running::spawn(what, &mut command, &log)?.wait()?;
    let on_mock = (mock.cpu_secs(), mock.peak_rss());
    let completed = finished
        .event("completed")
        .filter(|_| finished.status.success());
    let Some(completed) = completed else {
        let why = format!("exited with {} without finishing", finished.status);
        return Err(failure(what, &format!("{why}\n{}", mock.log_tail()), &log));
    };
    let (files, bytes) = (
        u64_field(completed, "files")?,
        u64_field(completed, "bytes")?,
    );
    if (files, bytes) != (shape.files, shape.bytes()) {
        return Err(Failure::new(format!(
            "{what} found {files} files of {bytes} bytes in all, the tree has {} of {}",
            shape.files,
            shape.bytes()
        )));
    }
    let elapsed = completed["elapsed_secs"]
        .as_f64()
        .ok_or_else(|| Failure::new(format!("oss2's line {completed} has no elapsed_secs")))?;
    drop(mock);
    announce(
        &format!(
            "{what}, {}, {} threads, run {run} of {} (upload {elapsed:.2} s)",
            shape.label(),
            result.parallel,
            bench.args.runs
        ),
        &finished,
    );
    result.oss2.push(Run {
        wall: elapsed,
        ..measured(&finished, on_mock)
    });
    result.oss2_process_walls.push(finished.wall_secs);
    Ok(())
}

/// One run of ossup over the large tree, into an empty bucket.
fn large_ossup(
    bench: &Bench,
    root: &Path,
    run: usize,
    result: &mut LargeTree,
) -> Result<(), Failure> {
    let (shape, setting) = (result.shape, result.setting);
    let checkpoints = bench.dir.join("tree-checkpoints");
    remove_dir(&checkpoints)?;
    let name = format!("tree-large-{run}");
    let mock = bench.start_mock(&name)?;
    let log = bench.logs.join(format!("{name}.log"));
    let flags = [
        "--parallel".to_owned(),
        setting.parallel.to_string(),
        "--part-size".to_owned(),
        setting.part_size.to_string(),
        "--checksum".to_owned(),
        setting.checksum.flag().to_owned(),
    ];
    let mut command = tree_command(bench, &mock, root, &checkpoints, &flags);
    let finished = run_tree(&mut command, &log, &mock, Expected::uploaded(shape))?;
    let on_mock = (mock.cpu_secs(), mock.peak_rss());
    drop(mock);
    remove_dir(&checkpoints)?;
    announce(
        &format!(
            "ossup upload --recursive, {}, {}, run {run} of {}",
            shape.label(),
            setting.label(),
            bench.args.runs
        ),
        &finished,
    );
    result.runs.push(measured(&finished, on_mock));
    Ok(())
}

/// `ossup upload ROOT oss://bench/tree/ --recursive --checkpoint-dir CHECKPOINTS FLAGS`.
fn tree_command(
    bench: &Bench,
    mock: &Mock,
    root: &Path,
    checkpoints: &Path,
    flags: &[String],
) -> Command {
    let mut command = bench.ossup_upload(mock, root, &format!("oss://{BUCKET}/{PREFIX}"));
    command
        .arg("--recursive")
        .arg("--checkpoint-dir")
        .arg(checkpoints)
        .args(flags);
    command
}

/// What the summary line of a tree upload must say (and `failed` 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Expected {
    files: u64,
    uploaded: u64,
    skipped: u64,
    bytes_sent: u64,
    bytes_reused: u64,
}

impl Expected {
    /// Every file sent: the bucket was empty.
    pub(super) fn uploaded(shape: TreeShape) -> Self {
        let (files, bytes) = (shape.files, shape.bytes());
        Self {
            files,
            uploaded: files,
            skipped: 0,
            bytes_sent: bytes,
            bytes_reused: 0,
        }
    }

    /// Every file skipped: the bucket held the tree already.
    fn skipped(shape: TreeShape) -> Self {
        let (files, bytes) = (shape.files, shape.bytes());
        Self {
            files,
            uploaded: 0,
            skipped: files,
            bytes_sent: 0,
            bytes_reused: bytes,
        }
    }
}

/// Compares a `summary` line with what it must say.
fn check_summary(summary: &Value, expected: Expected) -> Result<(), String> {
    let fields = [
        ("files", expected.files),
        ("uploaded", expected.uploaded),
        ("skipped", expected.skipped),
        ("failed", 0),
        ("bytes_sent", expected.bytes_sent),
        ("bytes_reused", expected.bytes_reused),
    ];
    let wrong: Vec<String> = fields
        .into_iter()
        .filter(|(name, want)| summary[name].as_u64() != Some(*want))
        .map(|(name, want)| format!("{name} {} (expected {want})", summary[name]))
        .collect();
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(format!("its summary says {}: {summary}", wrong.join(", ")))
    }
}

/// Runs one `ossup upload --recursive` to its end and checks it: exit 0, one `file` line per file,
/// and a summary line as `expected`.
pub(super) fn run_tree(
    command: &mut Command,
    log: &Path,
    mock: &Mock,
    expected: Expected,
) -> Result<Finished, Failure> {
    let what = "ossup upload --recursive";
    let finished = Running::spawn(what, command, log)?.wait()?;
    let file_lines = finished
        .lines
        .iter()
        .filter(|line| line["event"] == "file")
        .count() as u64;
    let problem = match finished.event("summary") {
        _ if !finished.status.success() => Some(format!("exited with {}", finished.status)),
        None => Some("printed no summary line".to_owned()),
        Some(summary) => check_summary(summary, expected).err().or_else(|| {
            (file_lines != expected.files).then(|| {
                format!(
                    "printed {file_lines} file lines for {} files",
                    expected.files
                )
            })
        }),
    };
    match problem {
        Some(why) => Err(failure(what, &format!("{why}\n{}", mock.log_tail()), log)),
        None => Ok(finished),
    }
}

/// Writes `shape` under `root` (emptied first), [`FILES_PER_DIR`] files to a directory
/// (`d000/f00000.bin`, ...), ChaCha8 output from `seed` in file order, then flushes the file
/// system (`sync --file-system`) so no writeback runs under the measurements.
pub(super) fn write_tree(root: &Path, shape: TreeShape, seed: u64) -> Result<(), Failure> {
    remove_dir(root)?;
    let fail = |path: &Path, e: std::io::Error| {
        Failure::new(format!("could not write {}: {e}", path.display()))
    };
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut buffer = vec![0u8; shape.file_size.min(1 << 20) as usize];
    for i in 0..shape.files {
        let dir = root.join(format!("d{:03}", i / FILES_PER_DIR));
        if i % FILES_PER_DIR == 0 {
            std::fs::create_dir_all(&dir).map_err(|e| fail(&dir, e))?;
        }
        let path = dir.join(format!("f{i:05}.bin"));
        let mut file = std::fs::File::create(&path).map_err(|e| fail(&path, e))?;
        let mut left = shape.file_size;
        while left > 0 {
            let n = left.min(buffer.len() as u64) as usize;
            rng.fill_bytes(&mut buffer[..n]);
            file.write_all(&buffer[..n]).map_err(|e| fail(&path, e))?;
            left -= n as u64;
        }
    }
    let synced = Command::new("sync").arg("--file-system").arg(root).status();
    match synced {
        Ok(status) if status.success() => Ok(()),
        Ok(status) => Err(Failure::new(format!(
            "`sync --file-system {}` exited with {status}",
            root.display()
        ))),
        Err(e) => Err(Failure::new(format!("could not run sync: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn summaries_are_checked_field_by_field() {
        let shape = TreeShape {
            files: 3,
            file_size: 10,
        };
        let good = json!({"event": "summary", "files": 3, "uploaded": 3, "skipped": 0, "failed": 0, "bytes_sent": 30, "bytes_reused": 0});
        assert_eq!(check_summary(&good, Expected::uploaded(shape)), Ok(()));
        let err = check_summary(&good, Expected::skipped(shape)).unwrap_err();
        assert!(err.contains("uploaded 3 (expected 0)"), "{err}");
        assert!(err.contains("bytes_sent 30 (expected 0)"), "{err}");
        let failed = json!({"files": 3, "uploaded": 2, "skipped": 0, "failed": 1, "bytes_sent": 20, "bytes_reused": 0});
        let err = check_summary(&failed, Expected::uploaded(shape)).unwrap_err();
        assert!(err.contains("failed 1 (expected 0)"), "{err}");
    }

    #[test]
    fn trees_are_reproducible_from_their_seed_and_nested_by_hundreds() {
        let dir = std::env::temp_dir().join(format!("xtask-bench-tree-{}", std::process::id()));
        let shape = TreeShape {
            files: 150,
            file_size: 5000,
        };
        let (a, b) = (dir.join("a"), dir.join("b"));
        write_tree(&a, shape, 7).unwrap();
        write_tree(&b, shape, 7).unwrap();
        let first = std::fs::read(a.join("d000/f00000.bin")).unwrap();
        let last = std::fs::read(a.join("d001/f00149.bin")).unwrap();
        assert_eq!(first.len(), 5000);
        assert_ne!(first, last);
        assert_eq!(last, std::fs::read(b.join("d001/f00149.bin")).unwrap());
        assert_eq!(std::fs::read_dir(a.join("d000")).unwrap().count(), 100);
        assert_eq!(std::fs::read_dir(a.join("d001")).unwrap().count(), 50);
        assert_eq!(shape.label(), "150 files of 5000 B in 2 directories");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
