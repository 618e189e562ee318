//! Repository automation, run as `cargo xtask <command>` (an alias in `.cargo/config.toml`).
//!
//! Plain Rust with few dependencies (the benchmark's seeded random data and its JSON; for the chaos
//! harness, the engine's own client and checkpoint stores, which it checks results with), needing
//! nothing but cargo and, for the SDK check and the benchmark, `python3` (and `node` with `npm` for
//! the SDK check).
//!
//! - `test`: the one test command: formatting, the supply-chain check (`cargo deny`, `deny.toml`),
//!   clippy, every workspace test, the conformance suite, the oss2 check, short chaos runs and a
//!   short soak, stopping at the first failure.
//! - `conformance [ARGS]`: the conformance suite against the mock (or `OSSUP_CONFORMANCE_*`), as a table.
//! - `oss2`: the official SDKs, oss2 and alibabacloud-oss-v2 (Python) and ali-oss (Node.js), against
//!   the mock server binary.
//! - `bench [ARGS]`: throughput, memory, resume cost and checkpoint overhead of `ossup upload`,
//!   a stream from a pipe against the same file, and many files in one run (`--recursive`),
//!   against `md5sum` and oss2, as a table and JSON (`docs/benchmarks.md`).
//! - `chaos [ARGS]`: seeded fault injection and `kill -9` of `ossup upload` (and of the mock), then
//!   a byte-for-byte check of every object, for one file or (`--tree`) a whole tree per iteration
//!   (`docs/chaos.md`).
//! - `fuzz [ARGS]`: coverage-guided fuzzing (libFuzzer through cargo-fuzz) of every parser of
//!   hostile input, each target for a given time (`docs/security.md`, "Fuzzing").
//! - `soak [ARGS]`: minutes to hours of concurrent uploads against one mock with faults armed,
//!   sampling memory, file descriptors and connections, failing on growth past stated bounds, on a
//!   wrong object and on an upload left open (`docs/security.md`).

mod bench;
mod chaos;
mod cmd;
mod fuzz;
mod mock_process;
mod oss2;
mod soak;

use std::process::ExitCode;

use cmd::{Failure, Step};

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  test                 the one test command: cargo fmt --check, cargo deny check licenses
                       bans sources (offline, deny.toml), cargo clippy -D warnings,
                       cargo test --workspace, the engine's unit tests without its default
                       transport (and no hyper in its tree then), cargo doc --no-deps with
                       warnings denied, the conformance suite, the oss2 check,
                       20 chaos iterations (cargo xtask chaos --seed 6000 --max-size 1MiB
                       --kill-server), 3 of trees (cargo xtask chaos --tree --seed 7003
                       --max-size 1MiB --kill-server), 5 of streams (cargo xtask chaos
                       --stream --seed 15001 --max-size 1MiB --kill-server) and 2 of
                       fleets (cargo xtask chaos --workers 3 --store postgres --seed 17001
                       --max-size 1MiB --kill-server), 1 of a fleet on a tree (cargo xtask
                       chaos --tree --workers 3 --store postgres --seed 17401 --max-size 1MiB
                       --kill-server), a 20-second
                       soak (cargo xtask soak --seconds 20 --seed 18005 --workers 4
                       --max-size 1MiB --interval 1 --debug);
                       stops at the first step that fails
  conformance [ARGS]   the OSS wire conformance suite as a table (ARGS go to ossup-conformance,
                       e.g. --filter complete, --list); against the mock unless
                       OSSUP_CONFORMANCE_ENDPOINT, OSSUP_CONFORMANCE_BUCKET, OSS_ACCESS_KEY_ID and
                       OSS_ACCESS_KEY_SECRET are set
  oss2                 the official SDKs oss2 and alibabacloud-oss-v2 (Python, in a venv under
                       target/) and ali-oss (Node.js, npm ci under target/) against the oss-mock
                       binary: conformance/peers/
  bench [--size SIZE] [--json FILE] [--runs N] [--mock-dir DIR] [--mock-fsync] [--quick]
                       release ossup against md5sum and oss2 on the release mock:
                       throughput, peak memory, resume cost, checkpoint overhead, the
                       file piped into ossup upload - against the same file, many
                       files (10,000 × 4 KiB, the same tree again, 100 × 10 MiB), as a
                       markdown table with the targets met or missed, and JSON (default
                       target/bench.json); SIZE defaults to 1GiB, N to 3; the mock's data
                       goes under target/bench/ unless DIR is given; the mock runs with
                       --no-fsync unless --mock-fsync; --quick is a smoke test of the
                       harness (32MiB, 1 run, 200 small and 5 large files); see
                       docs/benchmarks.md
  bench --shapes [--shape-size SIZE] [--shape-b-size SIZE] [--straggler-size SIZE]
         [--straggler-part-size SIZE] [--runs N] [--mock-dir DIR] [--json FILE]
                       ossup upload through three link shapes of the mock (bandwidths,
                       latency, a ceiling of requests in flight) at --parallel 1 to 32 and
                       auto, --limit-rate 16MiB/s against its 16 s, and a straggler on
                       shape a with and without hedging; --shape-size defaults to 256MiB
                       (shape b: a quarter), --straggler-size to --shape-size, its parts
                       to a 64th of it, N to 1; --shape-b-size adds shape b over SIZE
                       (parts of 1 MiB) at --parallel 8 and auto
  bench --fleet [--size SIZE] [--runs N] [--mock-dir DIR] [--mock-fsync]
                       1, 2 and 3 cooperating ossup processes (--cooperate, a throwaway
                       PostgreSQL) on one SIZE file (default 1GiB) through a mock shaped to
                       16MiB/s per connection and 200MiB/s in all: wall time against one
                       process, bytes the mock read against the file's size; and the
                       checkpoint overhead of the memory, file, SQLite and PostgreSQL stores
                       at 10,000 parts of 100 KiB; N defaults to 1
  chaos [--tree|--stream] [--workers N [--store postgres|sqlite]] [--iterations N] [--seed S]
        [--max-size SIZE] [--kill-server]
                       N seeded iterations (default 100) of ossup upload against oss-mock
                       with fault rules, SIGKILLed at random moments and run again until it
                       succeeds (--kill-server: the mock too, restarted on its data); checks
                       every object byte for byte, no upload left open, no checkpoint left,
                       no acknowledged part sent again; SIZE (default 4MiB) caps the files;
                       --tree: each iteration uploads a seeded tree of about 200 files
                       (--recursive, --exclude '*.log', 2 to 4 of them multipart), rewrites
                       some files between runs, and checks every object against its file,
                       no extra key, the report, and that one more run sends nothing;
                       --stream: each iteration pipes a seeded stream into `ossup upload -`,
                       the writer dying part way or other bytes piped in some runs, and
                       checks each completed object against the bytes its run read;
                       --workers N: N cooperating `ossup upload --cooperate --lease 2s`
                       on one file in 100 KiB parts through one PostgreSQL database of a
                       throwaway cluster (or --store sqlite: one SQLite file), workers
                       SIGKILLed and started again, PostgreSQL crashed and restarted; checks
                       the object, no upload open, no row left in the store, every worker
                       exited 0, and each part sent at most once more per expired lease;
                       --tree --workers N: the same workers on one seeded tree (each small
                       file claimed by one worker), checked object by object, each worker's
                       last report, the store, and PutObjects per key against the kills;
                       prints a summary with the seed that reproduces each failure;
                       see docs/chaos.md
  fuzz [--minutes N] [--target NAME]...
                       coverage-guided fuzzing with libFuzzer (cargo-fuzz, installed if
                       missing; RUSTC_BOOTSTRAP=1 on stable, no sanitizer) of every target
                       in fuzz/fuzz_targets/ (or the NAMEs), N minutes each (default 10);
                       seeds from fuzz/corpus/TARGET/, the grown corpus in
                       target/fuzz/corpus/TARGET/; prints executions and crashing inputs per
                       target as a table and fails if any input crashed, hung or ran out of
                       memory, naming the file kept in target/fuzz/artifacts/TARGET/;
                       see docs/security.md
  soak [--minutes N | --seconds N] [--seed S] [--workers N] [--max-size SIZE]
       [--interval SECS] [--debug]
                       N minutes (default 10; fractions allowed) of concurrent release
                       ossup uploads (default 6 workers) against one oss-mock with a low
                       rate of faults: small files (PutObject), medium and large ones
                       (multipart, SIZE default 32MiB), trees (--recursive), some with
                       --limit-rate; checks every object against its file; samples the
                       mock's RSS, fds and connections every SECS (default 5) and each
                       client's peak RSS and fds; fails on growth past the bounds after
                       warm-up, on a failed upload, a wrong object, an upload left open or
                       a checkpoint left behind; --debug: the debug binaries;
                       see docs/security.md";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (command, rest) = match args.split_first() {
        Some((command, rest)) => (command.as_str(), rest),
        None => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let result = match command {
        "test" => no_arguments(command, rest).and_then(|()| test()),
        "conformance" => conformance(rest).run(),
        "oss2" => no_arguments(command, rest).and_then(|()| oss2::run()),
        "bench" => bench::run(rest),
        "chaos" => chaos::run(rest),
        "fuzz" => fuzz::run(rest),
        "soak" => soak::run(rest),
        "-h" | "--help" | "help" => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        other => {
            eprintln!("cargo xtask: unknown command {other:?}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("\ncargo xtask {command}: {failure}");
            ExitCode::FAILURE
        }
    }
}

fn no_arguments(command: &str, rest: &[String]) -> Result<(), Failure> {
    if rest.is_empty() {
        Ok(())
    } else {
        Err(Failure::new(format!(
            "`{command}` takes no arguments, got {rest:?}; see cargo xtask --help"
        )))
    }
}

/// The conformance suite's own binary, which prints the table and the closing line.
fn conformance(args: &[String]) -> Step {
    let mut step = Step::cargo(
        "conformance suite (table)",
        ["run", "--quiet", "--package", "ossup-conformance", "--"],
    );
    step.args(args);
    step
}

/// The chaos run of `cargo xtask test`: short, from a fixed seed, with the server killed too.
fn short_chaos() -> chaos::ChaosArgs {
    chaos::ChaosArgs {
        iterations: 20,
        seed: 6_000,
        max_size: 1 << 20,
        kill_server: true,
        tree: false,
        stream: false,
        workers: 0,
        store: chaos::FleetStore::Postgres,
    }
}

/// The tree chaos run of `cargo xtask test`: three trees, from a fixed seed, the server killed too.
fn short_tree_chaos() -> chaos::ChaosArgs {
    chaos::ChaosArgs {
        iterations: 3,
        seed: 7_003,
        max_size: 1 << 20,
        kill_server: true,
        tree: true,
        stream: false,
        workers: 0,
        store: chaos::FleetStore::Postgres,
    }
}

/// The stream chaos run of `cargo xtask test`: five streams, from a fixed seed, the server killed
/// too.
fn short_stream_chaos() -> chaos::ChaosArgs {
    chaos::ChaosArgs {
        iterations: 5,
        seed: 15_001,
        max_size: 1 << 20,
        kill_server: true,
        tree: false,
        stream: true,
        workers: 0,
        store: chaos::FleetStore::Postgres,
    }
}

/// The fleet chaos run of `cargo xtask test`: two iterations of three cooperating workers through
/// PostgreSQL, from a fixed seed, the server killed too.
fn short_fleet_chaos() -> chaos::ChaosArgs {
    chaos::ChaosArgs {
        iterations: 2,
        seed: 17_001,
        max_size: 1 << 20,
        kill_server: true,
        tree: false,
        stream: false,
        workers: 3,
        store: chaos::FleetStore::Postgres,
    }
}

/// The fleet-on-a-tree chaos run of `cargo xtask test`: one iteration of three cooperating workers
/// on one seeded tree through PostgreSQL, from a fixed seed, the server killed too.
fn short_fleet_tree_chaos() -> chaos::ChaosArgs {
    chaos::ChaosArgs {
        iterations: 1,
        seed: 17_401,
        max_size: 1 << 20,
        kill_server: true,
        tree: true,
        stream: false,
        workers: 3,
        store: chaos::FleetStore::Postgres,
    }
}

/// The cargo-deny release `.ci/run` installs (pinned there too, as `cargo_deny_version`).
const CARGO_DENY_VERSION: &str = "0.20.2";

/// `cargo deny check licenses bans sources` against `deny.toml`, offline and on the locked tree: no
/// advisory database is fetched, so it needs no network. Fails with how to install cargo-deny when
/// it is missing.
fn supply_chain() -> Result<(), Failure> {
    let install = format!(
        "run .ci/run, or `cargo install --locked cargo-deny@{CARGO_DENY_VERSION}` (about 5 minutes on two cores)"
    );
    let probe = Step::cargo("cargo-deny", ["deny", "--version"]);
    let found = probe.command().output().map_err(|e| {
        Failure::new(format!(
            "supply chain: could not run `{}`: {e}",
            probe.command_line()
        ))
    })?;
    if !found.status.success() {
        return Err(Failure::new(format!(
            "supply chain: cargo-deny is not installed (`{}` failed); {install}",
            probe.command_line()
        )));
    }
    let version = String::from_utf8_lossy(&found.stdout).trim().to_owned();
    if version != format!("cargo-deny {CARGO_DENY_VERSION}") {
        println!(
            "note: {version} is installed, deny.toml is checked with cargo-deny {CARGO_DENY_VERSION}; if it reads the file differently, {install}"
        );
    }
    Step::cargo(
        "supply chain (licenses, duplicate versions, sources: deny.toml)",
        [
            "deny",
            "--frozen",
            "check",
            "--show-stats",
            "licenses",
            "bans",
            "sources",
        ],
    )
    .run()
}

/// The soak of `cargo xtask test`: twenty seconds of four workers on the debug binaries the chaos
/// step built, from a fixed seed; long enough for every kind of job and both checks of the mock.
fn short_soak() -> soak::SoakArgs {
    soak::SoakArgs {
        duration: std::time::Duration::from_secs(20),
        seed: 18_005,
        workers: 4,
        max_size: 1 << 20,
        interval: std::time::Duration::from_secs(1),
        profile: soak::Profile::Debug,
    }
}

/// Fails when `ossup` without default features still has hyper in its dependency tree: a user who
/// brings their own transport must not compile a second HTTP stack.
fn engine_without_hyper() -> Result<(), Failure> {
    let step = Step::cargo(
        "no hyper in the engine without its default transport",
        [
            "tree",
            "-p",
            "ossup",
            "--no-default-features",
            "-e",
            "normal",
            "--prefix",
            "none",
        ],
    );
    step.announce();
    let output = step
        .command()
        .output()
        .map_err(|e| Failure::new(format!("{}: could not run cargo tree: {e}", step.name())))?;
    if !output.status.success() {
        return Err(Failure::new(format!(
            "{}: `{}` failed: {}",
            step.name(),
            step.command_line(),
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    let tree = String::from_utf8_lossy(&output.stdout);
    let hyper: Vec<&str> = tree
        .lines()
        .filter(|line| line.starts_with("hyper ") || line.starts_with("ossup-hyper "))
        .collect();
    if hyper.is_empty() {
        Ok(())
    } else {
        Err(Failure::new(format!(
            "{}: the engine depends on {} with its `hyper` feature off; keep hyper behind the feature",
            step.name(),
            hyper.join(", ")
        )))
    }
}

fn test() -> Result<(), Failure> {
    let steps: Vec<Box<dyn Fn() -> Result<(), Failure>>> = vec![
        Box::new(|| Step::cargo("formatting", ["fmt", "--all", "--", "--check"]).run()),
        Box::new(supply_chain),
        Box::new(|| {
            Step::cargo(
                "clippy",
                [
                    "clippy",
                    "--workspace",
                    "--all-targets",
                    "--",
                    "-D",
                    "warnings",
                ],
            )
            .run()
        }),
        Box::new(|| Step::cargo("tests", ["test", "--workspace"]).run()),
        Box::new(|| {
            Step::cargo(
                "the engine without its default transport",
                ["test", "-p", "ossup", "--no-default-features", "--lib"],
            )
            .run()
        }),
        Box::new(engine_without_hyper),
        Box::new(|| {
            // Broken intra-doc links and every other rustdoc warning fail the step.
            Step::cargo("docs", ["doc", "--workspace", "--no-deps", "--lib"])
                .env("RUSTDOCFLAGS", "-D warnings")
                .run()
        }),
        Box::new(|| conformance(&[]).run()),
        Box::new(oss2::run),
        Box::new(|| {
            chaos::run_with(&short_chaos())
                .and_then(|()| chaos::run_with(&short_tree_chaos()))
                .and_then(|()| chaos::run_with(&short_stream_chaos()))
                .and_then(|()| chaos::run_with(&short_fleet_chaos()))
                .and_then(|()| chaos::run_with(&short_fleet_tree_chaos()))
        }),
        Box::new(|| soak::run_with(&short_soak())),
    ];
    let total = steps.len();
    for (i, step) in steps.iter().enumerate() {
        println!("\n==> cargo xtask test: step {} of {total}", i + 1);
        step().map_err(|failure| {
            Failure::new(format!(
                "step {} of {total} failed: {failure}. Fix it and run `cargo xtask test` again.",
                i + 1
            ))
        })?;
    }
    println!("\ncargo xtask test: all {total} steps passed");
    Ok(())
}
