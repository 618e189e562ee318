//! What recording parts costs with each checkpoint store: the time to record every part of one
//! upload (10,000 by default) from `concurrency` tasks at once, as the engine does from its part tasks.
//!
//! ```text
//! cargo run --release -p ossup-sqlite --example record_cost -- [--parts N] [--concurrency 1,4,16]
//!     [--stores memory,file,sqlite,postgres] [--durability power-loss,process-crash] [--dir PATH]
//!     [--postgres-url postgres://USER@HOST/DB] [--json]
//! ```
//!
//! The `postgres` store needs `--postgres-url` (each measurement gets a schema of its own there).
//!
//! Prints a table, or with `--json` one JSON object per measurement (for `cargo xtask bench`).
//! `--dir` puts the stores on another filesystem than the system's temporary directory.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use ossup::store::Durability;
use ossup::{
    Checkpoint, CheckpointStore, FileStore, MemoryStore, PartRecord, SourceStamp, UploadIdentity,
};
use ossup_sqlite::{SqliteOptions, SqliteStore};

struct Args {
    parts: u32,
    concurrency: Vec<u32>,
    stores: Vec<String>,
    durability: Vec<Durability>,
    dir: Option<PathBuf>,
    postgres_url: Option<String>,
    json: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        parts: 10_000,
        concurrency: vec![1, 4, 16],
        stores: vec!["memory".into(), "file".into(), "sqlite".into()],
        durability: vec![Durability::PowerLoss, Durability::ProcessCrash],
        dir: None,
        postgres_url: None,
        json: false,
    };
    let mut given = std::env::args().skip(1);
    while let Some(flag) = given.next() {
        let mut value = || given.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--parts" => {
                args.parts = value()?.parse().map_err(|e| format!("--parts: {e}"))?;
            }
            "--concurrency" => {
                args.concurrency = value()?
                    .split(',')
                    .map(|n| n.parse().map_err(|e| format!("--concurrency {n}: {e}")))
                    .collect::<Result<_, _>>()?;
            }
            "--stores" => args.stores = value()?.split(',').map(str::to_string).collect(),
            "--durability" => {
                args.durability = value()?
                    .split(',')
                    .map(|d| match d {
                        "power-loss" => Ok(Durability::PowerLoss),
                        "process-crash" => Ok(Durability::ProcessCrash),
                        other => Err(format!(
                            "--durability {other}: expected power-loss or process-crash"
                        )),
                    })
                    .collect::<Result<_, _>>()?;
            }
            "--dir" => args.dir = Some(PathBuf::from(value()?)),
            "--postgres-url" => args.postgres_url = Some(value()?),
            "--json" => args.json = true,
            "--help" | "-h" => {
                return Err("usage: record_cost [--parts N] [--concurrency 1,4,16] [--stores memory,file,sqlite,postgres] [--durability power-loss,process-crash] [--dir PATH] [--postgres-url URL] [--json]".into());
            }
            other => return Err(format!("unknown argument {other}; see --help")),
        }
    }
    if args.stores.iter().any(|s| s == "postgres") && args.postgres_url.is_none() {
        return Err("the postgres store needs --postgres-url postgres://USER@HOST/DB".into());
    }
    if args.parts == 0 || args.concurrency.contains(&0) {
        return Err("--parts and --concurrency must be at least 1".into());
    }
    Ok(args)
}

fn durability_name(durability: Durability) -> &'static str {
    match durability {
        Durability::ProcessCrash => "process-crash",
        _ => "power-loss",
    }
}

async fn open(
    kind: &str,
    durability: Durability,
    dir: &Path,
    postgres: Option<(&str, String)>,
) -> Arc<dyn CheckpointStore> {
    match kind {
        "postgres" => {
            let (url, schema) = postgres.expect("checked by parse_args");
            let options = ossup_postgres::PostgresOptions::default()
                .durability(durability)
                .schema(schema);
            Arc::new(
                ossup_postgres::PostgresStore::connect_with(url, options)
                    .await
                    .expect("connecting to PostgreSQL"),
            )
        }
        "memory" => Arc::new(MemoryStore::new()),
        "file" => Arc::new(
            FileStore::open(dir)
                .expect("opening the file store")
                .with_durability(durability),
        ),
        "sqlite" => Arc::new(
            SqliteStore::open_with(
                dir.join("checkpoints.db"),
                SqliteOptions::default().durability(durability),
            )
            .await
            .expect("opening the SQLite store"),
        ),
        other => panic!("unknown store {other}: expected memory, file, sqlite or postgres"),
    }
}

fn part(number: u32) -> PartRecord {
    PartRecord {
        number,
        size: 100 * 1024,
        etag: format!(
            "\"{:032X}\"",
            u64::from(number).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ),
        md5: Some([number as u8; 16]),
        crc64: u64::from(number).wrapping_mul(0xBF58_476D_1CE4_E5B9),
    }
}

struct Measurement {
    record: Duration,
    load: Duration,
}

async fn measure(store: Arc<dyn CheckpointStore>, parts: u32, concurrency: u32) -> Measurement {
    let identity = UploadIdentity::new("/bench/source.bin", "bench", "object", 100 * 1024);
    let checkpoint = Checkpoint::new(
        identity.clone(),
        "bench-upload",
        SourceStamp {
            size: u64::from(parts) * 100 * 1024,
            modified_nanos: Some(1_700_000_000_000_000_000),
        },
        1_700_000_000,
        "options",
    );
    store.save(&checkpoint).await.expect("save");
    let next = Arc::new(AtomicU32::new(1));
    let started = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let store = store.clone();
            let next = next.clone();
            let identity = identity.clone();
            tokio::spawn(async move {
                loop {
                    let number = next.fetch_add(1, Ordering::Relaxed);
                    if number > parts {
                        return;
                    }
                    store
                        .record_part(&identity, &part(number))
                        .await
                        .expect("record_part");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("a recording task");
    }
    let record = started.elapsed();
    let started = Instant::now();
    let loaded = store.load(&identity).await.expect("load").expect("saved");
    let load = started.elapsed();
    assert_eq!(
        loaded.parts.len(),
        parts as usize,
        "every recorded part loads"
    );
    Measurement { record, load }
}

#[tokio::main]
async fn main() {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    };
    if !args.json {
        println!(
            "{:<8} {:<14} {:>11} {:>12} {:>13} {:>10}",
            "store", "durability", "concurrency", "record (ms)", "per part (us)", "load (ms)"
        );
    }
    for kind in &args.stores {
        let durabilities: &[Durability] = if kind == "memory" {
            &[Durability::ProcessCrash]
        } else {
            &args.durability
        };
        for &durability in durabilities {
            for &concurrency in &args.concurrency {
                let dir = match &args.dir {
                    Some(base) => tempfile::tempdir_in(base),
                    None => tempfile::tempdir(),
                }
                .expect("a temporary directory for the store");
                let postgres = args.postgres_url.as_deref().map(|url| {
                    let schema = format!(
                        "record_cost_{}_{}_{concurrency}_{}",
                        durability_name(durability).replace('-', "_"),
                        std::process::id(),
                        dir.path()
                            .file_name()
                            .map(|n| n
                                .to_string_lossy()
                                .to_lowercase()
                                .replace(|c: char| !c.is_ascii_alphanumeric(), ""))
                            .unwrap_or_default()
                    );
                    (url, schema)
                });
                let store = open(kind, durability, dir.path(), postgres).await;
                let measured = measure(store, args.parts, concurrency).await;
                let per_part_us = measured.record.as_secs_f64() * 1e6 / f64::from(args.parts);
                let durability = if kind == "memory" {
                    "-"
                } else {
                    durability_name(durability)
                };
                if args.json {
                    println!(
                        "{{\"store\":\"{kind}\",\"durability\":\"{durability}\",\"concurrency\":{concurrency},\"parts\":{},\"record_ms\":{:.3},\"per_part_us\":{:.3},\"load_ms\":{:.3}}}",
                        args.parts,
                        measured.record.as_secs_f64() * 1e3,
                        per_part_us,
                        measured.load.as_secs_f64() * 1e3
                    );
                } else {
                    println!(
                        "{:<8} {:<14} {:>11} {:>12.1} {:>13.1} {:>10.1}",
                        kind,
                        durability,
                        concurrency,
                        measured.record.as_secs_f64() * 1e3,
                        per_part_us,
                        measured.load.as_secs_f64() * 1e3
                    );
                }
            }
        }
    }
}
