//! What checkpointing costs a real upload: the same many-part upload with the memory, file and SQLite
//! checkpoint stores, and the overhead of each durable store over the memory store, in percent.
//!
//! ```text
//! oss-mock --bucket bucket --listen 127.0.0.1:9000 &      # a separate process (release build)
//! OSS_ENDPOINT=http://127.0.0.1:9000 cargo run --release -p ossup --example checkpoint_overhead -- \
//!     [--parts 10000] [--part-kib 100] [--parallel 4] [--runs 3] [--stores memory,file,sqlite]
//!     [--durability power-loss|process-crash] [--dir PATH] [--json]
//! ```
//!
//! Each run uploads the source once with every store, in turn, so slow phases of a shared machine
//! fall on all stores alike; the table gives the median of the runs and their spread, and the CPU
//! time the client process used (user + system, from `/proc/self/stat`; less noisy than the wall
//! time when other programs share the machine). Durable stores
//! live in `--dir` (default: the system's temporary directory), each run in a fresh directory. Without
//! `OSS_ENDPOINT` the mock runs in this process (and competes with the client for the CPU).
//! With `--json`, one JSON object per store follows the table (for `cargo xtask bench`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ossup::store::Durability;
use ossup::{
    CheckpointStore, FileSource, FileStore, MemoryStore, Parallel, UploadRequest, Uploader,
};
use ossup::{Credentials, V4Signer};
use ossup_sqlite::{SqliteOptions, SqliteStore};

const BUCKET: &str = "bucket";

struct Args {
    parts: u64,
    part_kib: u64,
    parallel: usize,
    runs: usize,
    stores: Vec<String>,
    durability: Durability,
    dir: Option<PathBuf>,
    json: bool,
}

const USAGE: &str = "usage: checkpoint_overhead [--parts 10000] [--part-kib 100] [--parallel 4] [--runs 3] [--stores memory,file,sqlite] [--durability power-loss|process-crash] [--dir PATH] [--json]";

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        parts: 10_000,
        part_kib: 100,
        parallel: 4,
        runs: 3,
        stores: vec!["memory".into(), "file".into(), "sqlite".into()],
        durability: Durability::PowerLoss,
        dir: None,
        json: false,
    };
    let mut given = std::env::args().skip(1);
    while let Some(flag) = given.next() {
        let mut value = || given.next().ok_or(format!("{flag} needs a value"));
        let number = |v: String| v.parse::<u64>().map_err(|e| format!("{flag} {v}: {e}"));
        match flag.as_str() {
            "--parts" => args.parts = number(value()?)?,
            "--part-kib" => args.part_kib = number(value()?)?,
            "--parallel" => args.parallel = number(value()?)? as usize,
            "--runs" => args.runs = number(value()?)? as usize,
            "--stores" => args.stores = value()?.split(',').map(str::to_string).collect(),
            "--durability" => {
                args.durability = match value()?.as_str() {
                    "power-loss" => Durability::PowerLoss,
                    "process-crash" => Durability::ProcessCrash,
                    other => {
                        return Err(format!(
                            "--durability {other}: expected power-loss or process-crash"
                        ));
                    }
                }
            }
            "--dir" => args.dir = Some(PathBuf::from(value()?)),
            "--json" => args.json = true,
            "--help" | "-h" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other}; {USAGE}")),
        }
    }
    if args.parts < 2 || args.part_kib < 100 || args.parallel == 0 || args.runs == 0 {
        return Err(format!(
            "--parts must be at least 2, --part-kib at least 100 (the OSS minimum part size), --parallel and --runs at least 1; {USAGE}"
        ));
    }
    if let Some(unknown) = args
        .stores
        .iter()
        .find(|s| !["memory", "file", "sqlite"].contains(&s.as_str()))
    {
        return Err(format!(
            "--stores: unknown store {unknown}; expected memory, file or sqlite"
        ));
    }
    Ok(args)
}

/// Writes `len` bytes from a cheap generator, a MiB at a time.
fn make_source(path: &Path, len: u64) -> std::io::Result<()> {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut chunk = vec![0u8; 1 << 20];
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut left = len;
    while left > 0 {
        for word in chunk.chunks_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            word.copy_from_slice(&state.to_le_bytes());
        }
        let n = left.min(chunk.len() as u64) as usize;
        file.write_all(&chunk[..n])?;
        left -= n as u64;
    }
    file.flush()
}

async fn open_store(
    kind: &str,
    dir: &Path,
    durability: Durability,
) -> Result<Arc<dyn CheckpointStore>, Box<dyn std::error::Error>> {
    Ok(match kind {
        "memory" => Arc::new(MemoryStore::new()),
        "file" => Arc::new(FileStore::open(dir)?.with_durability(durability)),
        "sqlite" => Arc::new(
            SqliteStore::open_with(
                dir.join("checkpoints.db"),
                SqliteOptions::default().durability(durability),
            )
            .await?,
        ),
        other => return Err(format!("unknown store {other}").into()),
    })
}

/// The CPU time this process has used (user + system), from `/proc/self/stat` (Linux only).
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may hold spaces; the fields after it follow its closing parenthesis.
    let fields: Vec<&str> = stat[stat.rfind(')')? + 2..].split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    // Clock ticks; 100 per second on every Linux this runs on (USER_HZ).
    Some(Duration::from_millis((utime + stime) * 10))
}

fn median(times: &[Duration]) -> Duration {
    let mut sorted = times.to_vec();
    sorted.sort();
    sorted[sorted.len() / 2]
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    };
    let part_size = args.part_kib << 10;
    let size = args.parts * part_size;
    let work = match &args.dir {
        Some(dir) => tempfile::tempdir_in(dir)?,
        None => tempfile::tempdir()?,
    };
    let path = work.path().join("source.bin");
    make_source(&path, size)?;

    let (endpoint, _server) = match std::env::var("OSS_ENDPOINT") {
        Ok(endpoint) => (endpoint, None),
        Err(_) => {
            let server =
                oss_mock::MockServer::start(oss_mock::MockConfig::default().with_bucket(BUCKET))
                    .await?;
            (server.endpoint(), Some(server))
        }
    };

    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); args.stores.len()];
    let mut cpu: Vec<Vec<Duration>> = vec![Vec::new(); args.stores.len()];
    for run in 0..args.runs {
        for (i, kind) in args.stores.iter().enumerate() {
            let store_dir = work.path().join(format!("{kind}-{run}"));
            std::fs::create_dir_all(&store_dir)?;
            let store = open_store(kind, &store_dir, args.durability).await?;
            let uploader = Uploader::builder()
                .endpoint(&endpoint)?
                .credentials(Credentials::new("test-ak", "test-sk"))
                .signer(V4Signer::new("cn-hangzhou"))
                .scheduler(Parallel::new(args.parallel))
                .part_size(part_size)
                .store(store)
                .build()?;
            let key = format!("checkpoint-overhead/{kind}-{run}");
            let cpu_before = cpu_time();
            let started = Instant::now();
            let outcome = uploader
                .upload(UploadRequest::new(FileSource::open(&path)?, BUCKET, &key))
                .await?;
            let elapsed = started.elapsed();
            let cpu_used = cpu_time()
                .zip(cpu_before)
                .map(|(after, before)| after.saturating_sub(before));
            if outcome.parts as u64 != args.parts || !outcome.notices.is_empty() {
                return Err(format!(
                    "run {run} with the {kind} store: {} parts, notices {:?}",
                    outcome.parts, outcome.notices
                )
                .into());
            }
            eprintln!(
                "run {run}: {kind:<6} {:>7.3} s ({:.0} MiB/s), client CPU {}",
                elapsed.as_secs_f64(),
                size as f64 / (1 << 20) as f64 / elapsed.as_secs_f64(),
                cpu_used
                    .map(|c| format!("{:.2} s", c.as_secs_f64()))
                    .unwrap_or_else(|| "unknown".into())
            );
            times[i].push(elapsed);
            if let Some(c) = cpu_used {
                cpu[i].push(c);
            }
            // The mock keeps objects on disk: free the space before the next run.
            uploader.client().delete_object(BUCKET, &key).await?;
            std::fs::remove_dir_all(&store_dir)?;
        }
    }

    let memory = args.stores.iter().position(|s| s == "memory");
    let baseline = memory.map(|i| median(&times[i]));
    let cpu_baseline = memory
        .filter(|&i| !cpu[i].is_empty())
        .map(|i| median(&cpu[i]));
    println!(
        "\n{} parts of {} KiB ({:.0} MiB), Parallel::new({}), {:?} durability, median of {} runs\n",
        args.parts,
        args.part_kib,
        size as f64 / (1 << 20) as f64,
        args.parallel,
        args.durability,
        args.runs
    );
    println!(
        "| store | median | spread | per part | overhead over memory | client CPU (median) | CPU over memory |"
    );
    println!("|---|---|---|---|---|---|---|");
    let mut json = Vec::new();
    for ((kind, runs), cpu_runs) in args.stores.iter().zip(&times).zip(&cpu) {
        let cpu_med = (!cpu_runs.is_empty()).then(|| median(cpu_runs));
        let cpu_over = cpu_med
            .zip(cpu_baseline)
            .map(|(c, b)| (c.as_secs_f64() / b.as_secs_f64() - 1.0) * 100.0);
        let med = median(runs);
        let min = runs.iter().min().expect("at least one run");
        let max = runs.iter().max().expect("at least one run");
        let overhead = baseline.map(|b| (med.as_secs_f64() / b.as_secs_f64() - 1.0) * 100.0);
        let per_part_over =
            baseline.map(|b| (med.as_secs_f64() - b.as_secs_f64()) * 1e6 / args.parts as f64);
        println!(
            "| {kind} | {:.3} s | {:.3}–{:.3} s | {:.0} µs | {} | {} | {} |",
            med.as_secs_f64(),
            min.as_secs_f64(),
            max.as_secs_f64(),
            med.as_secs_f64() * 1e6 / args.parts as f64,
            match (kind.as_str(), overhead, per_part_over) {
                ("memory", _, _) => "–".to_string(),
                (_, Some(pct), Some(us)) => format!("{pct:+.1}% ({us:+.1} µs/part)"),
                _ => "no memory baseline".to_string(),
            },
            cpu_med
                .map(|c| format!("{:.2} s", c.as_secs_f64()))
                .unwrap_or_else(|| "unknown".into()),
            match (kind.as_str(), cpu_over) {
                ("memory", _) => "–".to_string(),
                (_, Some(pct)) => format!("{pct:+.1}%"),
                _ => "unknown".to_string(),
            }
        );
        json.push(format!(
            "{{\"store\":\"{kind}\",\"durability\":\"{:?}\",\"parts\":{},\"part_size\":{part_size},\"parallel\":{},\"runs_s\":[{}],\"median_s\":{:.4},\"overhead_pct\":{},\"client_cpu_s\":{},\"cpu_overhead_pct\":{}}}",
            args.durability,
            args.parts,
            args.parallel,
            runs.iter()
                .map(|d| format!("{:.4}", d.as_secs_f64()))
                .collect::<Vec<_>>()
                .join(","),
            med.as_secs_f64(),
            overhead
                .map(|p| format!("{p:.2}"))
                .unwrap_or_else(|| "null".into()),
            cpu_med
                .map(|c| format!("{:.2}", c.as_secs_f64()))
                .unwrap_or_else(|| "null".into()),
            cpu_over
                .map(|p| format!("{p:.2}"))
                .unwrap_or_else(|| "null".into()),
        ));
    }
    if args.json {
        for line in json {
            println!("{line}");
        }
    }
    Ok(())
}
