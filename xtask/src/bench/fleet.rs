//! `cargo xtask bench --fleet`: the figures of several hosts on one upload.
//!
//! - One, two and three cooperating `ossup upload --cooperate --checkpoint-url postgres://…`
//!   processes on one file (`--size`, 1 GiB by default) against one mock whose link, not the CPU,
//!   bounds the upload (`--conn-bandwidth 16MiB/s --link-bandwidth 200MiB/s`): the wall time from
//!   the first start to the last exit, against one process, and the request body bytes the mock
//!   read in all (`bytes_received` of `/_mock/stats`), against the file's size.
//! - The checkpoint overhead of every store at 10,000 parts of 100 KiB on the unshaped mock:
//!   memory, files, SQLite and PostgreSQL (a throwaway cluster, `fsync` on), one process each.
//!
//! Every run gets a fresh mock and a fresh database; settings run round-robin, as in the rest of
//! the benchmark.

use std::path::{Path, PathBuf};
use std::process::Command;

use ossup_test_support::postgres::PgCluster;
use serde_json::Value;

use crate::chaos::verify::Net;
use crate::cmd::{Failure, target_dir};

use super::args::BenchArgs;
use super::child::{Finished, Running};
use super::mock::{BUCKET, Mock, remove_dir};
use super::report::{MIB, mib_label};
use super::stats::{Summary, display_or_na};
use super::{
    CHECKPOINT_PART_SIZE, CHECKPOINT_SOURCE_SEED, KEY, SOURCE_SEED, ossup_upload, write_random_file,
};

/// The link of the cooperation runs: each connection at most 16 MiB/s, all at most 200 MiB/s.
const LINK: [&str; 4] = [
    "--conn-bandwidth",
    "16MiB/s",
    "--link-bandwidth",
    "200MiB/s",
];
/// Each worker's settings in the cooperation runs.
const WORKER_PARALLEL: u16 = 4;
const WORKER_PART_SIZE: u64 = 8 << 20;
/// How many cooperating processes the runs have.
const WORKERS: [usize; 3] = [1, 2, 3];
/// `--parallel` of the checkpoint-overhead uploads, as the main benchmark's.
const CHECKPOINT_PARALLEL: u16 = 4;

/// The stores of the checkpoint-overhead rows, the baseline first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Store {
    Memory,
    File,
    Sqlite,
    Postgres,
}

impl Store {
    const ALL: [Store; 4] = [Store::Memory, Store::File, Store::Sqlite, Store::Postgres];

    fn name(self) -> &'static str {
        match self {
            Store::Memory => "memory (--no-checkpoint)",
            Store::File => "file (--checkpoint-dir)",
            Store::Sqlite => "SQLite (--checkpoint-db)",
            Store::Postgres => "PostgreSQL (--checkpoint-url)",
        }
    }
}

/// Runs `cargo xtask bench --fleet`.
pub(super) fn run(args: &BenchArgs) -> Result<(), Failure> {
    super::build_release()?;
    let dir = target_dir().join("bench-fleet");
    remove_dir(&dir)?;
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs)
        .map_err(|e| Failure::new(format!("could not create {}: {e}", logs.display())))?;
    let (mock_binary, ossup_binary) = super::copy_binaries(&dir.join("bin"))?;
    let mock_data = match &args.mock_dir {
        Some(parent) => parent.join("ossup-bench-fleet-mock-data"),
        None => dir.join("mock-data"),
    };
    let cluster = std::panic::catch_unwind(PgCluster::start)
        .map_err(|_| Failure::new("the throwaway PostgreSQL cluster did not start (see above)"))?;
    let net = Net::new().map_err(Failure::new)?;
    let source = dir.join("source.bin");
    println!("==> write {} of seeded random bytes", mib_label(args.size));
    write_random_file(&source, args.size, SOURCE_SEED)?;
    let checkpoint_source = dir.join("checkpoint-source.bin");
    let checkpoint_size = args.checkpoint_parts() * CHECKPOINT_PART_SIZE;
    write_random_file(&checkpoint_source, checkpoint_size, CHECKPOINT_SOURCE_SEED)?;
    let load_before = super::loadavg();
    let date = super::command_line_output("date", &["-u", "+%Y-%m-%dT%H:%M:%SZ"]);
    let ctx = Ctx {
        mock_binary: &mock_binary,
        ossup_binary: &ossup_binary,
        mock_data: &mock_data,
        logs: &logs,
        cluster: &cluster,
        net: &net,
        fsync: args.mock_fsync,
    };
    let mut cooperation: Vec<(usize, Vec<f64>, Vec<u64>)> = WORKERS
        .iter()
        .map(|n| (*n, Vec::new(), Vec::new()))
        .collect();
    let mut overhead: Vec<(Store, Vec<f64>)> =
        Store::ALL.iter().map(|s| (*s, Vec::new())).collect();
    for run in 1..=args.runs {
        for (workers, walls, received) in &mut cooperation {
            let (wall, bytes) = ctx.cooperate(&source, args.size, *workers, run)?;
            println!(
                "==> {workers} cooperating process(es), run {run} of {}: {wall:.2} s, {} read by the mock",
                args.runs,
                mib_label(bytes)
            );
            walls.push(wall);
            received.push(bytes);
        }
        for (store, walls) in &mut overhead {
            let wall = ctx.checkpoint(&checkpoint_source, checkpoint_size, *store, run)?;
            println!(
                "==> checkpoint store {}, {} parts, run {run} of {}: {wall:.2} s",
                store.name(),
                args.checkpoint_parts(),
                args.runs
            );
            walls.push(wall);
        }
    }
    remove_dir(&mock_data)?;
    let _ = std::fs::remove_file(&source);
    let _ = std::fs::remove_file(&checkpoint_source);
    println!(
        "\n## Fleet results\n\n{date}, load average before {load_before} / after {}; {} run(s) per figure\n",
        super::loadavg(),
        args.runs
    );
    println!(
        "Cooperating processes on one {} file (`--part-size 8MiB --parallel 4 --cooperate --checkpoint-url postgres://…` each), mock `{}`:\n",
        mib_label(args.size),
        LINK.join(" ")
    );
    println!(
        "| processes | wall (s) | × one process | MiB/s | bytes the mock read | ÷ the file's size |"
    );
    println!("|---|---|---|---|---|---|");
    let one = Summary::of(&cooperation[0].1).map(|s| s.median);
    for (workers, walls, received) in &cooperation {
        let wall = Summary::of(walls);
        let most = received.iter().copied().max().unwrap_or(0);
        println!(
            "| {workers} | {} | {} | {} | {most} | {:.4} |",
            display_or_na(wall, 2),
            match (one, wall) {
                (Some(one), Some(wall)) => format!("{:.2}", wall.median / one),
                _ => "n/a".to_owned(),
            },
            wall.map_or("n/a".to_owned(), |w| format!(
                "{:.0}",
                args.size as f64 / MIB / w.median
            )),
            most as f64 / args.size as f64
        );
    }
    println!(
        "\nCheckpoint overhead: {} parts of 100 KiB, `--parallel {CHECKPOINT_PARALLEL}`, unshaped mock:\n",
        args.checkpoint_parts()
    );
    println!("| store | wall (s) | overhead against memory |\n|---|---|---|");
    let memory = Summary::of(&overhead[0].1).map(|s| s.median);
    for (store, walls) in &overhead {
        let wall = Summary::of(walls);
        println!(
            "| {} | {} | {} |",
            store.name(),
            display_or_na(wall, 2),
            match (memory, wall) {
                (Some(memory), Some(wall)) => {
                    format!("{:+.1} %", (wall.median / memory - 1.0) * 100.0)
                }
                _ => "n/a".to_owned(),
            }
        );
    }
    Ok(())
}

/// What every measured run shares.
struct Ctx<'a> {
    mock_binary: &'a Path,
    ossup_binary: &'a Path,
    mock_data: &'a Path,
    logs: &'a Path,
    cluster: &'a PgCluster,
    net: &'a Net,
    fsync: bool,
}

impl Ctx<'_> {
    /// `workers` cooperating processes on `source`: the wall time from the first start to the last
    /// exit, and the body bytes the mock read.
    fn cooperate(
        &self,
        source: &Path,
        size: u64,
        workers: usize,
        run: usize,
    ) -> Result<(f64, u64), Failure> {
        let name = format!("cooperate-{workers}-{run}");
        let link: Vec<String> = LINK.iter().map(|s| (*s).to_owned()).collect();
        let mock = Mock::start_with(
            self.mock_binary,
            self.mock_data,
            self.fsync,
            &self.logs.join(format!("{name}-mock.log")),
            &link,
        )?;
        let database = name.replace('-', "_");
        self.cluster.create_database(&database);
        let url = self.cluster.url(&database);
        let started = std::time::Instant::now();
        let running: Vec<(PathBuf, Running)> = (0..workers)
            .map(|n| {
                let log = self.logs.join(format!("{name}-worker-{n}.log"));
                let mut command = self.upload(&mock, source);
                command
                    .args(["--part-size", &WORKER_PART_SIZE.to_string()])
                    .args(["--parallel", &WORKER_PARALLEL.to_string()])
                    .args(["--cooperate", "--checkpoint-url", &url]);
                Running::spawn("ossup upload --cooperate", &mut command, &log).map(|r| (log, r))
            })
            .collect::<Result<_, _>>()?;
        let mut finished = Vec::new();
        for (log, worker) in running {
            finished.push((log, worker.wait()?));
        }
        let wall = started.elapsed().as_secs_f64();
        let mut crcs = Vec::new();
        for (log, done) in &finished {
            crcs.push(completed(done, size, log)?["crc64"].clone());
        }
        crcs.dedup();
        if crcs.len() != 1 {
            return Err(Failure::new(format!(
                "the cooperating processes reported different objects: CRC-64 {crcs:?}"
            )));
        }
        let stats = self.net.stats(mock.endpoint()).map_err(Failure::new)?;
        let received = stats["bytes_received"].as_u64().unwrap_or(0);
        drop(mock);
        self.cluster
            .psql("postgres", &format!("DROP DATABASE \"{database}\""));
        Ok((wall, received))
    }

    /// One upload of `source` in 100 KiB parts with `store` on the unshaped mock: its wall time.
    fn checkpoint(
        &self,
        source: &Path,
        size: u64,
        store: Store,
        run: usize,
    ) -> Result<f64, Failure> {
        let name = format!("checkpoint-{store:?}-{run}").to_lowercase();
        let mock = Mock::start(
            self.mock_binary,
            self.mock_data,
            self.fsync,
            &self.logs.join(format!("{name}-mock.log")),
        )?;
        let place = self.mock_data.with_file_name("fleet-checkpoints");
        remove_dir(&place)?;
        std::fs::create_dir_all(&place)
            .map_err(|e| Failure::new(format!("could not create {}: {e}", place.display())))?;
        let database = name.replace('-', "_");
        let mut command = self.upload(&mock, source);
        command
            .args(["--part-size", &CHECKPOINT_PART_SIZE.to_string()])
            .args(["--parallel", &CHECKPOINT_PARALLEL.to_string()]);
        match store {
            Store::Memory => command.arg("--no-checkpoint"),
            Store::File => command.arg("--checkpoint-dir").arg(&place),
            Store::Sqlite => command
                .arg("--checkpoint-db")
                .arg(place.join("checkpoints.db")),
            Store::Postgres => {
                self.cluster.create_database(&database);
                command
                    .arg("--checkpoint-url")
                    .arg(self.cluster.url(&database))
            }
        };
        let log = self.logs.join(format!("{name}.log"));
        let done = Running::spawn("ossup upload", &mut command, &log)?.wait()?;
        completed(&done, size, &log)?;
        drop(mock);
        remove_dir(&place)?;
        if store == Store::Postgres {
            self.cluster
                .psql("postgres", &format!("DROP DATABASE \"{database}\""));
        }
        Ok(done.wall_secs)
    }

    fn upload(&self, mock: &Mock, source: &Path) -> Command {
        ossup_upload(
            self.ossup_binary,
            mock,
            source,
            &format!("oss://{BUCKET}/{KEY}"),
        )
    }
}

/// The `completed` line of a run that exited 0 with an object of `size` bytes; a cooperating
/// worker counts only the parts it sent, so the bytes it sent and reused are not checked here.
fn completed<'a>(done: &'a Finished, size: u64, log: &Path) -> Result<&'a Value, Failure> {
    match done.event("completed") {
        Some(line) if done.status.success() && line["size"].as_u64() == Some(size) => Ok(line),
        _ => Err(Failure::new(format!(
            "ossup upload exited with {} without completing an object of {size} bytes; its log is {}",
            done.status,
            log.display()
        ))),
    }
}
