//! `cargo xtask bench --shapes`: `ossup upload` over the links the mock models (`oss-mock
//! --link-bandwidth`, `--conn-bandwidth`, `--latency`, `--max-inflight`), each with a static
//! `--parallel` of 1 to 32 and with `--parallel auto`, so the table shows whether the adaptive
//! scheduler finds (within 90 %) the best static setting on every link without a 503 storm;
//! `--limit-rate 16MiB/s` on the unshaped link, against its 16 s and its highest 10 s window; and
//! one crawling connection on shape a, hedged and not, against the clean upload
//! (`--straggler-size`, `--straggler-part-size`: the hedge waits at least 2 s, so the upload must
//! be long enough for 1.2 × its time to allow that). `--shape-a-size` and `--shape-b-size` add
//! shapes a and b over longer uploads in the table's parts, judged apart: the table's 64 parts are
//! only a few part times long, so `auto`'s climb from 8 and the one refusal that finds a ceiling
//! weigh more there than in most uploads. Shape b is also measured with a tree of 512 KiB files
//! as big as its single upload (`ossup upload DIR --recursive`, each file put whole), at
//! `--parallel 8` and `auto`: one limit for every file of the tree, judged apart.
//!
//! Every upload gets a fresh mock with the shape's flags; after it, the mock's `/_mock/stats` says
//! how many requests it served and how many it refused (`503 SlowDown` past the ceiling). Settings
//! run round-robin, as in the rest of the benchmark.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::chaos::verify::Net;
use crate::cmd::Failure;

use super::args::BenchArgs;
use super::child::Running;
use super::mock::{BUCKET, Mock, remove_dir};
use super::report::{MIB, mib_label};
use super::stats::Summary;
use super::tree::{Expected, TreeShape, run_tree};
use super::{KEY, SOURCE_SEED, completed_upload, ossup_upload, write_random_file};

/// The size of each file of shape b's tree.
const TREE_FILE_SIZE: u64 = 512 << 10;
/// The static settings every shape is measured at.
const PARALLELS: [u16; 6] = [1, 2, 4, 8, 16, 32];
/// `--max-parallel` of the `auto` runs: as high as the highest static setting.
const AUTO_MAX: u16 = 32;
/// Parts per upload: enough that 32 can be in flight at once twice over.
const PARTS: u64 = 64;
/// `auto` must reach this share of the best static setting's throughput.
const AUTO_TARGET: f64 = 0.90;
/// On the thin link (b), fewer than this share of requests may be refused.
const MAX_REFUSED_SHARE: f64 = 0.01;
/// The rate cap of the limiter run, and the window its rate is judged over.
const LIMIT_RATE: u64 = 16 << 20;
const WINDOW: Duration = Duration::from_secs(10);
/// The limiter's targets: elapsed and every window within 5 % of the cap.
const LIMIT_TOLERANCE: f64 = 0.05;
/// How often the mock's byte counter is read during the limiter run.
const SAMPLE_EVERY: Duration = Duration::from_millis(200);
/// The straggler: the UploadPart request this many from the last crawls (near the end, so that it
/// holds the tail), at this percentage of its connection's bandwidth, for the rest of that
/// connection.
const STRAGGLER_FROM_END: u64 = 4;
const STRAGGLER_PERCENT: u32 = 1;
/// With hedging, the straggled upload's time at most this many times the clean one's.
const HEDGED_TARGET: f64 = 1.2;

/// One link the mock models.
#[derive(Debug, Clone, Copy)]
struct Shape {
    key: &'static str,
    description: &'static str,
    link_bandwidth: Option<u64>,
    conn_bandwidth: Option<u64>,
    latency_ms: u64,
    max_inflight: Option<usize>,
    /// The upload's size as a share of `--shape-size`: the thin link gets a quarter.
    size_divisor: u64,
}

impl Shape {
    /// The mock's flags for this shape.
    fn mock_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if let Some(rate) = self.link_bandwidth {
            args.extend(["--link-bandwidth".to_owned(), format!("{rate}")]);
        }
        if let Some(rate) = self.conn_bandwidth {
            args.extend(["--conn-bandwidth".to_owned(), format!("{rate}")]);
        }
        if self.latency_ms > 0 {
            args.extend(["--latency".to_owned(), format!("{}ms", self.latency_ms)]);
        }
        if let Some(n) = self.max_inflight {
            args.extend(["--max-inflight".to_owned(), n.to_string()]);
        }
        args
    }
}

/// The three links of the issue.
const SHAPES: [Shape; 3] = [
    Shape {
        key: "a",
        description: "conn 16 MiB/s, link 200 MiB/s, 40 ms",
        link_bandwidth: Some(200 << 20),
        conn_bandwidth: Some(16 << 20),
        latency_ms: 40,
        max_inflight: None,
        size_divisor: 1,
    },
    Shape {
        key: "b",
        description: "conn 4 MiB/s, link 40 MiB/s, ceiling 12",
        link_bandwidth: Some(40 << 20),
        conn_bandwidth: Some(4 << 20),
        latency_ms: 0,
        max_inflight: Some(12),
        size_divisor: 4,
    },
    Shape {
        key: "c",
        description: "no shaping",
        link_bandwidth: None,
        conn_bandwidth: None,
        latency_ms: 0,
        max_inflight: None,
        size_divisor: 1,
    },
];

/// A `--parallel` setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Setting {
    Fixed(u16),
    Auto,
}

impl Setting {
    fn label(self) -> String {
        match self {
            Setting::Fixed(n) => format!("--parallel {n}"),
            Setting::Auto => format!("--parallel auto --max-parallel {AUTO_MAX}"),
        }
    }

    fn all() -> Vec<Setting> {
        PARALLELS
            .into_iter()
            .map(Setting::Fixed)
            .chain([Setting::Auto])
            .collect()
    }
}

/// One upload through one shape.
#[derive(Debug, Clone, Copy)]
struct Upload {
    wall: f64,
    requests: u64,
    refused: u64,
}

/// The runs of one shape at one setting.
#[derive(Debug, Clone)]
struct Cell {
    shape: Shape,
    setting: Setting,
    size: u64,
    part_size: u64,
    /// A shape's longer upload (`--shape-a-size`, `--shape-b-size`): shown in the table, judged
    /// on its own.
    long: bool,
    /// A tree of small files (`ossup upload DIR --recursive`) rather than one file: shown in the
    /// table, judged on its own.
    tree: Option<TreeShape>,
    runs: Vec<Upload>,
}

impl Cell {
    fn wall(&self) -> Option<Summary> {
        Summary::of(&self.runs.iter().map(|r| r.wall).collect::<Vec<_>>())
    }

    /// MB/s (10^6 bytes) from the median wall time.
    fn throughput(&self) -> Option<f64> {
        self.wall().map(|w| self.size as f64 / 1e6 / w.median)
    }

    fn refused(&self) -> (u64, u64) {
        self.runs.iter().fold((0, 0), |(r, n), u| {
            (r + u.refused, n + u.requests + u.refused)
        })
    }

    fn refused_share(&self) -> Option<f64> {
        let (refused, all) = self.refused();
        (all > 0).then(|| refused as f64 / all as f64)
    }
}

/// The straggler runs on shape a, all at `--parallel auto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Straggle {
    /// No fault: the time to beat.
    Clean,
    /// One connection crawls; hedging on (the CLI's default).
    Hedged,
    /// One connection crawls; `--no-hedge`.
    Unhedged,
}

impl Straggle {
    const ALL: [Straggle; 3] = [Straggle::Clean, Straggle::Hedged, Straggle::Unhedged];

    fn label(self) -> &'static str {
        match self {
            Straggle::Clean => "no straggler",
            Straggle::Hedged => "a straggler, hedging on",
            Straggle::Unhedged => "a straggler, --no-hedge",
        }
    }
}

/// The limiter run: its elapsed time and the mock's byte counter over time.
#[derive(Debug, Clone)]
struct LimitRun {
    wall: f64,
    /// Seconds since the upload started, and body bytes the mock had read by then.
    samples: Vec<(f64, u64)>,
}

impl LimitRun {
    /// The highest average rate over any window of at least [`WINDOW`] between two samples, in
    /// bytes per second.
    fn highest_window_rate(&self) -> Option<f64> {
        let mut best: Option<f64> = None;
        for (i, (t0, b0)) in self.samples.iter().enumerate() {
            let later = self.samples[i..]
                .iter()
                .find(|(t, _)| t - t0 >= WINDOW.as_secs_f64());
            if let Some((t1, b1)) = later {
                let rate = (b1 - b0) as f64 / (t1 - t0);
                best = Some(best.map_or(rate, |b: f64| b.max(rate)));
            }
        }
        best
    }
}

/// Runs the link-shape table: builds, writes the sources, measures, prints, writes the JSON.
pub(super) fn run(args: &BenchArgs) -> Result<(), Failure> {
    super::build_release()?;
    let dir = crate::cmd::target_dir().join("bench-shapes");
    remove_dir(&dir)?;
    let logs = dir.join("logs");
    let (mock_binary, ossup_binary) = super::copy_binaries(&dir.join("bin"))?;
    std::fs::create_dir_all(&logs)
        .map_err(|e| Failure::new(format!("could not create {}: {e}", logs.display())))?;
    let mock_data = match &args.mock_dir {
        Some(parent) => parent.join("ossup-bench-shapes-mock-data"),
        None => dir.join("mock-data"),
    };
    let net = Net::new().map_err(Failure::new)?;
    let size = args.shape_size;
    let part_size = |size: u64| (size / PARTS).max(1 << 20) / (1 << 20) * (1 << 20);
    let straggler_size = args.straggler_size;
    let straggler_part_size = args
        .straggler_part_size
        .unwrap_or_else(|| part_size(straggler_size));
    let straggler_source = dir.join("source-straggler.bin");
    if straggler_size != size {
        println!(
            "==> write {} of seeded random bytes to {}",
            mib_label(straggler_size),
            straggler_source.display()
        );
        write_random_file(&straggler_source, straggler_size, SOURCE_SEED)?;
    }
    let mut sources = Vec::new();
    for divisor in [1, 4] {
        let path = dir.join(format!("source-{divisor}.bin"));
        println!(
            "==> write {} of seeded random bytes to {}",
            mib_label(size / divisor),
            path.display()
        );
        write_random_file(&path, size / divisor, SOURCE_SEED)?;
        sources.push((divisor, path));
    }
    let source_of = |shape: &Shape| -> &Path {
        sources
            .iter()
            .find(|(d, _)| *d == shape.size_divisor)
            .map(|(_, p)| p.as_path())
            .unwrap_or(Path::new(""))
    };
    let load_before = super::loadavg();
    let date = super::command_line_output("date", &["-u", "+%Y-%m-%dT%H:%M:%SZ"]);
    let mut cells: Vec<Cell> = SHAPES
        .iter()
        .flat_map(|shape| {
            Setting::all().into_iter().map(move |setting| Cell {
                shape: *shape,
                setting,
                size: size / shape.size_divisor,
                part_size: part_size(size / shape.size_divisor),
                long: false,
                tree: None,
                runs: Vec::new(),
            })
        })
        .collect();
    // Shapes a and b again over longer uploads, in the table's parts: auto's climb and its refused
    // share over many more part times and requests, against the best fixed settings there.
    let mut long_sources: Vec<(&str, PathBuf)> = Vec::new();
    let longer = [
        (
            &SHAPES[0],
            args.shape_a_size,
            &[Setting::Fixed(16), Setting::Fixed(32)][..],
        ),
        (&SHAPES[1], args.shape_b_size, &[Setting::Fixed(8)][..]),
    ];
    for (shape, long_size, fixed) in longer {
        let Some(long_size) = long_size else { continue };
        let path = dir.join(format!("source-{}-long.bin", shape.key));
        println!(
            "==> write {} of seeded random bytes to {}",
            mib_label(long_size),
            path.display()
        );
        write_random_file(&path, long_size, SOURCE_SEED)?;
        long_sources.push((shape.key, path));
        for &setting in fixed.iter().chain([&Setting::Auto]) {
            cells.push(Cell {
                shape: *shape,
                setting,
                size: long_size,
                part_size: part_size(size / shape.size_divisor),
                long: true,
                tree: None,
                runs: Vec::new(),
            });
        }
    }
    // Shape b with a tree of small files as big as its single upload, each put whole: one limit
    // for every file of the tree, against the best fixed setting there.
    let tree_shape = TreeShape {
        files: (size / SHAPES[1].size_divisor / TREE_FILE_SIZE).max(1),
        file_size: TREE_FILE_SIZE,
    };
    let tree_source = dir.join("source-b-tree");
    println!(
        "==> write a tree of {} files of {} to {}",
        tree_shape.files,
        mib_label(TREE_FILE_SIZE),
        tree_source.display()
    );
    super::tree::write_tree(&tree_source, tree_shape, SOURCE_SEED)?;
    for setting in [Setting::Fixed(8), Setting::Auto] {
        cells.push(Cell {
            shape: SHAPES[1],
            setting,
            size: tree_shape.files * tree_shape.file_size,
            part_size: part_size(size / SHAPES[1].size_divisor),
            long: false,
            tree: Some(tree_shape),
            runs: Vec::new(),
        });
    }
    let source_of = |cell: &Cell| -> &Path {
        let long = long_sources
            .iter()
            .find(|(key, _)| cell.long && *key == cell.shape.key);
        match (long, cell.tree) {
            (_, Some(_)) => tree_source.as_path(),
            (Some((_, path)), None) => path.as_path(),
            (None, None) => source_of(&cell.shape),
        }
    };
    let context = Context {
        mock_binary: &mock_binary,
        ossup_binary: &ossup_binary,
        mock_data: &mock_data,
        logs: &logs,
        fsync: args.mock_fsync,
        net: &net,
    };
    let count = cells.len();
    let mut limit_runs = Vec::new();
    let mut straggler_runs: Vec<(Straggle, f64)> = Vec::new();
    for run in 1..=args.runs {
        for (i, cell) in cells.iter_mut().enumerate() {
            let upload = context.upload(cell, source_of(cell), run)?;
            announce_upload(&format!("[{}/{count}] run {run}", i + 1), cell, &upload);
            cell.runs.push(upload);
        }
        let limited = context.limited(&sources[0].1, size, part_size(size), run)?;
        println!(
            "==> --limit-rate 16MiB/s, {} through shape c, run {run}: {:.2} s, highest {} s window {}",
            mib_label(size),
            limited.wall,
            WINDOW.as_secs(),
            limited.highest_window_rate().map_or(
                "n/a (the upload was shorter than the window)".to_owned(),
                |r| { format!("{:.2} MiB/s", r / MIB) }
            )
        );
        limit_runs.push(limited);
        for straggle in Straggle::ALL {
            let source = if straggler_size == size {
                &sources[0].1
            } else {
                &straggler_source
            };
            let wall =
                context.straggled(source, straggler_size, straggler_part_size, straggle, run)?;
            println!(
                "==> shape a, {} in parts of {}, {}, run {run}: {wall:.2} s",
                mib_label(straggler_size),
                mib_label(straggler_part_size),
                straggle.label()
            );
            straggler_runs.push((straggle, wall));
        }
    }
    remove_dir(&mock_data)?;
    let load_after = super::loadavg();
    println!(
        "\n## Link shapes\n\n{date}, commit {}, {} CPUs; {} (shape b: {}), parts of size / {PARTS}, {} run(s) per figure; load average before {load_before} / after {load_after}\n",
        super::revision(),
        std::thread::available_parallelism().map_or(0, usize::from),
        mib_label(size),
        mib_label(size / 4),
        args.runs
    );
    println!("{}", table(&cells));
    println!("{}", verdicts(&cells, &limit_runs, size));
    println!(
        "{}",
        straggler_table(&straggler_runs, straggler_size, straggler_part_size)
    );
    let json = json!({
        "date": date,
        "revision": super::revision(),
        "load_before": load_before,
        "load_after": load_after,
        "size": size,
        "runs": args.runs,
        "cells": cells.iter().map(cell_json).collect::<Vec<_>>(),
        "straggler_size": straggler_size,
        "straggler_part_size": straggler_part_size,
        "straggler": straggler_runs.iter().map(|(straggle, wall)| json!({
            "run": straggle.label(),
            "wall": wall,
        })).collect::<Vec<_>>(),
        "limit_rate": limit_runs.iter().map(|r| json!({
            "wall": r.wall,
            "highest_window_rate": r.highest_window_rate(),
            "samples": r.samples,
        })).collect::<Vec<_>>(),
    });
    let text = serde_json::to_string_pretty(&json)
        .map_err(|e| Failure::new(format!("could not encode the results as JSON: {e}")))?;
    std::fs::write(&args.json, text + "\n").map_err(|e| {
        Failure::new(format!(
            "could not write the JSON results to {}: {e}",
            args.json.display()
        ))
    })?;
    println!("==> JSON results in {}", args.json.display());
    remove_dir(&dir)
}

/// What every upload of the table needs.
struct Context<'a> {
    mock_binary: &'a Path,
    ossup_binary: &'a Path,
    mock_data: &'a Path,
    logs: &'a Path,
    fsync: bool,
    net: &'a Net,
}

impl Context<'_> {
    fn start_mock(&self, shape: &Shape, name: &str) -> Result<Mock, Failure> {
        Mock::start_with(
            self.mock_binary,
            self.mock_data,
            self.fsync,
            &self.logs.join(format!("{name}-mock.log")),
            &shape.mock_args(),
        )
    }

    /// `ossup upload` of `source` to the bench key through `mock`, in parts of `part_size`, with no
    /// checkpoint: what every upload of this table shares.
    fn upload_command(&self, mock: &Mock, source: &Path, part_size: u64) -> Command {
        let mut command = ossup_upload(
            self.ossup_binary,
            mock,
            source,
            &format!("oss://{BUCKET}/{KEY}"),
        );
        command
            .args(["--part-size", &part_size.to_string()])
            .arg("--no-checkpoint");
        command
    }

    /// One upload of `source` through a fresh mock of the cell's shape, at the cell's setting.
    fn upload(&self, cell: &Cell, source: &Path, run: usize) -> Result<Upload, Failure> {
        let name = format!(
            "shape-{}{}{}-{}-{run}",
            cell.shape.key,
            if cell.long { "-long" } else { "" },
            if cell.tree.is_some() { "-tree" } else { "" },
            match cell.setting {
                Setting::Fixed(n) => format!("p{n}"),
                Setting::Auto => "auto".to_owned(),
            }
        );
        let mock = self.start_mock(&cell.shape, &name)?;
        let log = self.logs.join(format!("{name}.log"));
        let mut command = match cell.tree {
            Some(_) => {
                let mut command = ossup_upload(
                    self.ossup_binary,
                    &mock,
                    source,
                    &format!("oss://{BUCKET}/tree/"),
                );
                command
                    .args(["--part-size", &cell.part_size.to_string()])
                    .args(["--no-checkpoint", "--recursive"]);
                command
            }
            None => self.upload_command(&mock, source, cell.part_size),
        };
        match cell.setting {
            Setting::Fixed(n) => command.args(["--parallel", &n.to_string()]),
            Setting::Auto => command.args([
                "--parallel",
                "auto",
                "--max-parallel",
                &AUTO_MAX.to_string(),
            ]),
        };
        let finished = match cell.tree {
            Some(shape) => run_tree(&mut command, &log, &mock, Expected::uploaded(shape))?,
            None => {
                let finished = Running::spawn("ossup upload", &mut command, &log)?.wait()?;
                completed_upload(&finished, cell.size, &log, &mock)?;
                finished
            }
        };
        let stats = self
            .net
            .stats(mock.endpoint())
            .map_err(|e| Failure::new(format!("{name}: {e}")))?;
        Ok(Upload {
            wall: finished.wall_secs,
            requests: total_requests(&stats),
            refused: stats["refused_by_ceiling"].as_u64().unwrap_or(0),
        })
    }

    /// One upload of `source` through shape a at `--parallel auto`, with or without one crawling
    /// connection, hedged or not; its wall time.
    fn straggled(
        &self,
        source: &Path,
        size: u64,
        part_size: u64,
        straggle: Straggle,
        run: usize,
    ) -> Result<f64, Failure> {
        let name = format!("straggler-{straggle:?}-{run}").to_lowercase();
        let shape = &SHAPES[0];
        let mut mock_args = shape.mock_args();
        if straggle != Straggle::Clean {
            let nth = straggler_nth(size, part_size);
            let rules = self.logs.join(format!("{name}-faults.json"));
            let rule = json!([{
                "api": "UploadPart",
                "nth": nth,
                "times": 1,
                "action": {"kind": "straggle", "percent": STRAGGLER_PERCENT, "connection": true},
            }]);
            std::fs::write(&rules, rule.to_string())
                .map_err(|e| Failure::new(format!("could not write {}: {e}", rules.display())))?;
            mock_args.extend(["--faults".to_owned(), rules.display().to_string()]);
        }
        let mock = Mock::start_with(
            self.mock_binary,
            self.mock_data,
            self.fsync,
            &self.logs.join(format!("{name}-mock.log")),
            &mock_args,
        )?;
        let log = self.logs.join(format!("{name}.log"));
        let mut command = self.upload_command(&mock, source, part_size);
        command
            .args(["--parallel", "auto"])
            .args(["--max-parallel", &AUTO_MAX.to_string()]);
        if straggle == Straggle::Unhedged {
            command.arg("--no-hedge");
        }
        let finished = Running::spawn("ossup upload (straggler)", &mut command, &log)?.wait()?;
        completed_upload(&finished, size, &log, &mock)?;
        Ok(finished.wall_secs)
    }

    /// `--limit-rate 16MiB/s` through the unshaped link, the mock's byte counter read every
    /// [`SAMPLE_EVERY`] by a thread of its own.
    fn limited(
        &self,
        source: &Path,
        size: u64,
        part_size: u64,
        run: usize,
    ) -> Result<LimitRun, Failure> {
        let name = format!("limit-rate-{run}");
        let mock = self.start_mock(&SHAPES[2], &name)?;
        let log = self.logs.join(format!("{name}.log"));
        let mut command = self.upload_command(&mock, source, part_size);
        command
            .args(["--parallel", "8"])
            .args(["--limit-rate", &LIMIT_RATE.to_string()]);
        let stop = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let sampler = {
            let (stop, endpoint) = (Arc::clone(&stop), mock.endpoint().to_owned());
            thread::spawn(move || sample_bytes(&endpoint, started, &stop))
        };
        let finished = Running::spawn("ossup upload --limit-rate", &mut command, &log)?.wait();
        stop.store(true, Ordering::Relaxed);
        let samples = sampler
            .join()
            .map_err(|_| Failure::new("the byte-counter sampler panicked"))??;
        let finished = finished?;
        completed_upload(&finished, size, &log, &mock)?;
        Ok(LimitRun {
            wall: finished.wall_secs,
            samples,
        })
    }
}

/// Reads the mock's `bytes_received` until told to stop.
fn sample_bytes(
    endpoint: &str,
    started: Instant,
    stop: &AtomicBool,
) -> Result<Vec<(f64, u64)>, Failure> {
    let net = Net::new().map_err(Failure::new)?;
    let mut samples = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let at = started.elapsed().as_secs_f64();
        if let Ok(stats) = net.stats(endpoint) {
            samples.push((at, stats["bytes_received"].as_u64().unwrap_or(0)));
        }
        thread::sleep(SAMPLE_EVERY);
    }
    Ok(samples)
}

/// Every routed request the mock counted.
fn total_requests(stats: &Value) -> u64 {
    stats["requests"]
        .as_object()
        .map_or(0, |apis| apis.values().filter_map(Value::as_u64).sum())
}

fn announce_upload(prefix: &str, cell: &Cell, upload: &Upload) {
    println!(
        "==> {prefix}: shape {} ({}), {}{}, {}: {:.2} s, {} requests, {} refused",
        cell.shape.key,
        cell.shape.description,
        mib_label(cell.size),
        match cell.tree {
            Some(tree) => format!(" in a tree of {} files", tree.files),
            None => String::new(),
        },
        cell.setting.label(),
        upload.wall,
        upload.requests,
        upload.refused
    );
}

fn table(cells: &[Cell]) -> String {
    let mut out = String::from(
        "| shape | setting | MB/s | wall s, median (min..max) | requests | refused 503 | refused share |\n|---|---|---|---|---|---|---|\n",
    );
    for cell in cells {
        let (refused, all) = cell.refused();
        out.push_str(&format!(
            "| {}{} ({}) | {} | {} | {} | {all} | {refused} | {} |\n",
            cell.shape.key,
            match (cell.tree, cell.long) {
                (Some(tree), _) => format!(
                    ", a tree of {} files of {}",
                    tree.files,
                    mib_label(tree.file_size)
                ),
                (None, true) => format!(", {}", mib_label(cell.size)),
                (None, false) => String::new(),
            },
            cell.shape.description,
            cell.setting.label(),
            cell.throughput()
                .map_or("n/a".to_owned(), |t| format!("{t:.1}")),
            cell.wall().map_or("n/a".to_owned(), |w| w.display(2)),
            cell.refused_share()
                .map_or("n/a".to_owned(), |s| format!("{:.1}%", s * 100.0)),
        ));
    }
    out
}

fn verdicts(cells: &[Cell], limit_runs: &[LimitRun], size: u64) -> String {
    let verdict = |met: bool| if met { "**met**" } else { "**missed**" };
    let mut out = String::from("| target | measured | verdict |\n|---|---|---|\n");
    for shape in SHAPES {
        let of_shape: Vec<&Cell> = cells
            .iter()
            .filter(|c| c.shape.key == shape.key && !c.long && c.tree.is_none())
            .collect();
        let best = of_shape
            .iter()
            .filter(|c| c.setting != Setting::Auto)
            .filter_map(|c| c.throughput().map(|t| (c, t)))
            .max_by(|a, b| a.1.total_cmp(&b.1));
        let auto = of_shape.iter().find(|c| c.setting == Setting::Auto);
        if let (Some((best, best_rate)), Some(auto)) = (best, auto)
            && let Some(auto_rate) = auto.throughput()
        {
            let ratio = auto_rate / best_rate;
            out.push_str(&format!(
                "| shape {} ({}): auto within {:.0} % of the best static setting | auto {auto_rate:.1} MB/s, best {} {best_rate:.1} MB/s: {:.0} % | {} |\n",
                shape.key,
                shape.description,
                AUTO_TARGET * 100.0,
                best.setting.label(),
                ratio * 100.0,
                verdict(ratio >= AUTO_TARGET)
            ));
        }
        if shape.max_inflight.is_some()
            && let Some(auto) = auto
            && let Some(share) = auto.refused_share()
        {
            let (refused, all) = auto.refused();
            out.push_str(&format!(
                "| shape {}: auto has fewer than {:.0} % of its requests refused | {refused} of {all}: {:.2} % | {} |\n",
                shape.key,
                MAX_REFUSED_SHARE * 100.0,
                share * 100.0,
                verdict(share < MAX_REFUSED_SHARE)
            ));
        }
    }
    for shape in SHAPES {
        let long: Vec<&Cell> = cells
            .iter()
            .filter(|c| c.long && c.shape.key == shape.key)
            .collect();
        let Some(auto) = long.iter().find(|c| c.setting == Setting::Auto) else {
            continue;
        };
        let best = long
            .iter()
            .filter(|c| c.setting != Setting::Auto)
            .filter_map(|c| c.throughput().map(|t| (c, t)))
            .max_by(|a, b| a.1.total_cmp(&b.1));
        let ratio = best.and_then(|(fixed, fixed_rate)| {
            let auto_rate = auto.throughput()?;
            Some((fixed, fixed_rate, auto_rate, auto_rate / fixed_rate))
        });
        let over = format!(
            "shape {} over {} (--shape-{}-size, parts of {})",
            shape.key,
            mib_label(auto.size),
            shape.key,
            mib_label(auto.part_size)
        );
        match (shape.max_inflight, auto.refused_share()) {
            (Some(_), Some(share)) => {
                let (refused, all) = auto.refused();
                let against = ratio.map_or(String::new(), |(fixed, fixed_rate, auto_rate, r)| {
                    format!(
                        "; auto {auto_rate:.1} MB/s, {} {fixed_rate:.1} MB/s: {:.0} %",
                        fixed.setting.label(),
                        r * 100.0
                    )
                });
                out.push_str(&format!(
                    "| {over}: auto has fewer than {:.0} % of its requests refused | {refused} of {all}: {:.2} %{against} | {} |\n",
                    MAX_REFUSED_SHARE * 100.0,
                    share * 100.0,
                    verdict(share < MAX_REFUSED_SHARE)
                ));
            }
            _ => {
                if let Some((fixed, fixed_rate, auto_rate, r)) = ratio {
                    out.push_str(&format!(
                        "| {over}: auto within {:.0} % of the best static setting | auto {auto_rate:.1} MB/s, best {} {fixed_rate:.1} MB/s: {:.0} % | {} |\n",
                        AUTO_TARGET * 100.0,
                        fixed.setting.label(),
                        r * 100.0,
                        verdict(r >= AUTO_TARGET)
                    ));
                }
            }
        }
    }
    let tree: Vec<&Cell> = cells.iter().filter(|c| c.tree.is_some()).collect();
    let tree_fixed = tree.iter().find(|c| c.setting != Setting::Auto);
    if let Some(auto) = tree.iter().find(|c| c.setting == Setting::Auto)
        && let Some(fixed) = tree_fixed
        && let (Some(auto_rate), Some(fixed_rate)) = (auto.throughput(), fixed.throughput())
        && let Some(share) = auto.refused_share()
        && let Some(shape) = auto.tree
    {
        let (refused, all) = auto.refused();
        let ratio = auto_rate / fixed_rate;
        out.push_str(&format!(
            "| shape b, a tree of {} files of {} (one limit for every file): auto within {:.0} % of {} and fewer than {:.0} % of its requests refused | auto {auto_rate:.1} MB/s, {fixed_rate:.1} MB/s: {:.0} %; {refused} of {all} refused: {:.2} % | {} |\n",
            shape.files,
            mib_label(shape.file_size),
            AUTO_TARGET * 100.0,
            fixed.setting.label(),
            MAX_REFUSED_SHARE * 100.0,
            ratio * 100.0,
            share * 100.0,
            verdict(ratio >= AUTO_TARGET && share < MAX_REFUSED_SHARE)
        ));
    }
    let expected = size as f64 / LIMIT_RATE as f64;
    if let Some(wall) = Summary::of(&limit_runs.iter().map(|r| r.wall).collect::<Vec<_>>()) {
        let off = (wall.median - expected).abs() / expected;
        out.push_str(&format!(
            "| --limit-rate 16MiB/s on {}: elapsed within {:.0} % of {expected:.1} s | {} s ({:+.1} %) | {} |\n",
            mib_label(size),
            LIMIT_TOLERANCE * 100.0,
            wall.display(2),
            (wall.median - expected) / expected * 100.0,
            verdict(off <= LIMIT_TOLERANCE)
        ));
    }
    let windows: Vec<f64> = limit_runs
        .iter()
        .filter_map(LimitRun::highest_window_rate)
        .collect();
    if let Some(highest) = windows.iter().copied().reduce(f64::max) {
        let over = highest / LIMIT_RATE as f64 - 1.0;
        out.push_str(&format!(
            "| --limit-rate 16MiB/s: no {} s window above the cap by more than {:.0} % (the mock's byte counter every {} ms) | highest {:.2} MiB/s ({:+.1} %) | {} |\n",
            WINDOW.as_secs(),
            LIMIT_TOLERANCE * 100.0,
            SAMPLE_EVERY.as_millis(),
            highest / MIB,
            over * 100.0,
            verdict(over <= LIMIT_TOLERANCE)
        ));
    }
    out
}

/// The UploadPart request that crawls in an upload of `size` in parts of `part_size`.
fn straggler_nth(size: u64, part_size: u64) -> u64 {
    size.div_ceil(part_size)
        .saturating_sub(STRAGGLER_FROM_END)
        .max(1)
}

/// The straggler runs' medians, and the hedging verdict.
fn straggler_table(runs: &[(Straggle, f64)], size: u64, part_size: u64) -> String {
    let median = |which: Straggle| {
        Summary::of(
            &runs
                .iter()
                .filter(|(s, _)| *s == which)
                .map(|(_, w)| *w)
                .collect::<Vec<_>>(),
        )
    };
    let mut out = format!(
        "Straggler on shape a, {} in parts of {}, `--parallel auto --max-parallel {AUTO_MAX}`: UploadPart request {} of {} and the rest of its connection at {STRAGGLER_PERCENT} % of the connection's bandwidth\n\n| run | wall s | ÷ no straggler |\n|---|---|---|\n",
        mib_label(size),
        mib_label(part_size),
        straggler_nth(size, part_size),
        size.div_ceil(part_size),
    );
    let clean = median(Straggle::Clean);
    for straggle in Straggle::ALL {
        if let Some(wall) = median(straggle) {
            let ratio = clean.map_or(String::new(), |c| format!("{:.2}", wall.median / c.median));
            out.push_str(&format!(
                "| {} | {} | {ratio} |\n",
                straggle.label(),
                wall.display(2)
            ));
        }
    }
    if let (Some(clean), Some(hedged)) = (clean, median(Straggle::Hedged)) {
        let ratio = hedged.median / clean.median;
        out.push_str(&format!(
            "\nhedged time within {HEDGED_TARGET} × the time without a straggler: {ratio:.2} × — **{}**\n",
            if ratio <= HEDGED_TARGET { "met" } else { "missed" }
        ));
    }
    out
}

fn cell_json(cell: &Cell) -> Value {
    json!({
        "shape": cell.shape.key,
        "description": cell.shape.description,
        "mock_args": cell.shape.mock_args(),
        "setting": cell.setting.label(),
        "size": cell.size,
        "part_size": cell.part_size,
        "long": cell.long,
        "tree_files": cell.tree.map(|tree| tree.files),
        "mb_per_s": cell.throughput(),
        "runs": cell.runs.iter().map(|r| json!({
            "wall": r.wall, "requests": r.requests, "refused": r.refused,
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_highest_window_is_the_fastest_ten_seconds_between_samples() {
        // 1 MB/s for 10 s, then 2 MB/s for 10 s.
        let samples: Vec<(f64, u64)> = (0..=20)
            .map(|t| {
                let t = f64::from(t);
                let bytes = if t <= 10.0 {
                    t * 1e6
                } else {
                    10e6 + (t - 10.0) * 2e6
                };
                (t, bytes as u64)
            })
            .collect();
        let run = LimitRun {
            wall: 20.0,
            samples,
        };
        assert_eq!(run.highest_window_rate(), Some(2e6));
        let short = LimitRun {
            wall: 5.0,
            samples: vec![(0.0, 0), (5.0, 5)],
        };
        assert_eq!(short.highest_window_rate(), None);
    }

    #[test]
    fn shapes_become_the_mock_flags() {
        assert_eq!(
            SHAPES[0].mock_args(),
            [
                "--link-bandwidth",
                "209715200",
                "--conn-bandwidth",
                "16777216",
                "--latency",
                "40ms"
            ]
        );
        assert_eq!(
            SHAPES[1].mock_args()[4..],
            ["--max-inflight".to_owned(), "12".to_owned()]
        );
        assert!(SHAPES[2].mock_args().is_empty());
    }

    #[test]
    fn the_straggler_is_the_fourth_part_from_the_end() {
        assert_eq!(straggler_nth(256 << 20, 4 << 20), 60);
        assert_eq!(straggler_nth(2 << 30, 4 << 20), 508);
        assert_eq!(straggler_nth((8 << 20) + 1, 1 << 20), 5);
        assert_eq!(straggler_nth(2 << 20, 1 << 20), 1);
    }

    #[test]
    fn a_refused_share_counts_refusals_among_all_requests() {
        let cell = Cell {
            shape: SHAPES[1],
            setting: Setting::Auto,
            size: 1,
            part_size: 1,
            long: false,
            tree: None,
            runs: vec![
                Upload {
                    wall: 1.0,
                    requests: 99,
                    refused: 1,
                },
                Upload {
                    wall: 3.0,
                    requests: 100,
                    refused: 0,
                },
            ],
        };
        assert_eq!(cell.refused(), (1, 200));
        assert_eq!(cell.refused_share(), Some(0.005));
        assert_eq!(cell.wall().unwrap().median, 2.0);
    }
}
