//! `cargo xtask chaos`: proves that an upload survives faults and `kill -9` and never produces a
//! wrong object, by doing it many times from a seed.
//!
//! Each iteration draws from its seed a file (empty, one byte, around one part, or many small
//! parts), a checkpoint store (files or SQLite), a scheduler (sequential or 2 to 8 in parallel), a
//! few fault rules for the mock, and when to kill things. It starts `oss-mock --faults`, runs
//! `ossup upload --progress json` as a child, kills it with SIGKILL at the planned moments (zero to
//! three times), with `--kill-server` also kills the mock and restarts it on the same port and
//! data directory, and runs the upload again until it succeeds. Then it checks that the object's
//! bytes (GET: size, MD5, CRC-64) are the file's, that no multipart upload is left open for the
//! key, that no checkpoint is left behind, and that no part acknowledged before a kill was sent
//! again. `docs/chaos.md` describes the checks and how to reproduce a failure.
//!
//! With `--tree`, an iteration uploads a seeded directory tree instead (`ossup upload DIR ...
//! --recursive`; see [`tree`]), with files rewritten between runs, and checks the bucket against
//! the tree object by object. With `--stream`, an iteration pipes a seeded stream into
//! `ossup upload -` ([`stream`]), the writer dying part way or piping other bytes in some runs.
//! With `--workers N`, N cooperating `ossup upload --cooperate` processes share one upload through
//! one PostgreSQL database (or SQLite file) while workers, the mock and PostgreSQL are killed
//! ([`fleet`]); with `--tree --workers N` they share one seeded tree instead ([`fleet_tree`]).

mod fleet;
mod fleet_plan;
mod fleet_tree;
mod fleet_verify;
mod iteration;
pub(crate) mod mock;
pub(crate) mod plan;
mod report;
mod run;
mod stream;
mod tree;
mod tree_plan;
mod tree_verify;
pub(crate) mod verify;

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::cmd::{Failure, Step, parse_size, target_dir};

use fleet::Shared;
pub(crate) use fleet_plan::FleetStore;
use fleet_plan::{FleetPlan, FleetTreePlan};
use iteration::{Binaries, Outcome};
use plan::Plan;
use report::{Planned, Totals};
use stream::StreamPlan;
use tree_plan::TreePlan;
use verify::Net;

/// Iterations when `--iterations` is not given.
const DEFAULT_ITERATIONS: u64 = 100;
/// The largest file when `--max-size` is not given.
const DEFAULT_MAX_SIZE: u64 = 4 << 20;

/// The command line of `cargo xtask chaos`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ChaosArgs {
    /// How many iterations.
    pub iterations: u64,
    /// The seed of the first iteration; iteration `i` has seed `seed + i`.
    pub seed: u64,
    /// The largest file.
    pub max_size: u64,
    /// Whether the server is killed and restarted too.
    pub kill_server: bool,
    /// Whether each iteration uploads a tree rather than one file.
    pub tree: bool,
    /// Whether each iteration pipes a stream into `ossup upload -` rather than uploading a file.
    pub stream: bool,
    /// Cooperating workers sharing each iteration's upload; 0: one `ossup` at a time.
    pub workers: usize,
    /// The store the workers share.
    pub store: FleetStore,
}

impl ChaosArgs {
    /// Parses the arguments after `chaos`; the seed defaults to one taken from the clock.
    pub(crate) fn parse(args: &[String]) -> Result<Self, String> {
        let mut parsed = ChaosArgs {
            iterations: DEFAULT_ITERATIONS,
            seed: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            max_size: DEFAULT_MAX_SIZE,
            kill_server: false,
            tree: false,
            stream: false,
            workers: 0,
            store: FleetStore::Postgres,
        };
        let mut store_given = false;
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let mut value = |name: &str| {
                args.next()
                    .cloned()
                    .ok_or_else(|| format!("{name} needs a value; see cargo xtask --help"))
            };
            match arg.as_str() {
                "--iterations" => {
                    parsed.iterations = number(&value("--iterations")?, "--iterations")?;
                    if parsed.iterations == 0 {
                        return Err("--iterations must be at least 1".to_owned());
                    }
                }
                "--seed" => parsed.seed = number(&value("--seed")?, "--seed")?,
                "--max-size" => {
                    parsed.max_size = parse_size("--max-size", &value("--max-size")?)?;
                    if parsed.max_size < plan::MIN_PART * 2 + 1 {
                        return Err(format!(
                            "--max-size must be at least {} bytes (two parts of 100 KiB and a byte), so that multipart uploads are exercised",
                            plan::MIN_PART * 2 + 1
                        ));
                    }
                }
                "--kill-server" => parsed.kill_server = true,
                "--tree" => parsed.tree = true,
                "--stream" => parsed.stream = true,
                "--workers" => {
                    parsed.workers = number(&value("--workers")?, "--workers")? as usize;
                    if !(2..=16).contains(&parsed.workers) {
                        return Err("--workers must be from 2 to 16".to_owned());
                    }
                }
                "--store" => {
                    store_given = true;
                    parsed.store = match value("--store")?.as_str() {
                        "postgres" => FleetStore::Postgres,
                        "sqlite" => FleetStore::Sqlite,
                        other => {
                            return Err(format!(
                                "--store {other:?}: the workers share `postgres` (a throwaway cluster) or `sqlite` (one file on this host)"
                            ));
                        }
                    }
                }
                other => {
                    return Err(format!(
                        "unknown argument {other:?}; chaos takes --tree, --stream, --workers N [--store postgres|sqlite] (alone or with --tree), --iterations N, --seed S, --max-size SIZE and --kill-server"
                    ));
                }
            }
        }
        if store_given && parsed.workers == 0 {
            return Err("--store names the store --workers share: give --workers N too".to_owned());
        }
        if parsed.workers > 0 && parsed.stream {
            return Err(
                "--workers shares one file's upload or one tree: a stream cannot be shared"
                    .to_owned(),
            );
        }
        if parsed.tree && parsed.stream {
            return Err(
                "--tree and --stream exclude each other: run them one after the other".to_owned(),
            );
        }
        Ok(parsed)
    }

    /// The command that runs the iteration of `seed` alone.
    pub(crate) fn reproduce(&self, seed: u64) -> String {
        self.command_line(1, seed)
    }

    /// The command that runs `iterations` iterations from `seed` as these arguments do.
    fn command_line(&self, iterations: u64, seed: u64) -> String {
        format!(
            "cargo xtask chaos{} --iterations {iterations} --seed {seed} --max-size {}{}",
            match (self.tree, self.stream, self.workers) {
                (true, _, 0) => " --tree".to_owned(),
                (true, _, workers) =>
                    format!(" --tree --workers {workers} --store {}", self.store.name()),
                (_, true, _) => " --stream".to_owned(),
                (_, _, 0) => String::new(),
                (_, _, workers) => format!(" --workers {workers} --store {}", self.store.name()),
            },
            self.max_size,
            if self.kill_server {
                " --kill-server"
            } else {
                ""
            }
        )
    }
}

fn number(text: &str, name: &str) -> Result<u64, String> {
    text.trim()
        .parse()
        .map_err(|_| format!("{name} {text:?} is not a whole number"))
}

/// `cargo xtask chaos ARGS`.
pub(crate) fn run(args: &[String]) -> Result<(), Failure> {
    let args = ChaosArgs::parse(args).map_err(Failure::new)?;
    run_with(&args)
}

/// Runs the iterations `args` describes and prints the summary; fails if any iteration failed.
pub(crate) fn run_with(args: &ChaosArgs) -> Result<(), Failure> {
    Step::cargo(
        "build ossup and oss-mock",
        ["build", "--package", "ossup-cli", "--package", "oss-mock"],
    )
    .run()?;
    let debug = target_dir().join("debug");
    let (ossup, mock) = (debug.join("ossup"), debug.join("oss-mock"));
    let bins = Binaries {
        ossup: &ossup,
        mock: &mock,
    };
    let work = target_dir().join("chaos");
    std::fs::create_dir_all(&work)
        .map_err(|e| Failure::new(format!("cannot create {}: {e}", work.display())))?;
    let net = Net::new().map_err(Failure::new)?;
    // One throwaway cluster for the whole run, one database per iteration in it.
    let cluster = (args.workers > 0 && args.store == FleetStore::Postgres)
        .then(|| {
            std::panic::catch_unwind(ossup_test_support::postgres::PgCluster::start).map_err(|_| {
                Failure::new("the throwaway PostgreSQL cluster did not start (see above)")
            })
        })
        .transpose()?;
    let shared = match &cluster {
        Some(cluster) => Shared::Postgres(cluster),
        None => Shared::Sqlite,
    };
    println!(
        "==> chaos: {} iterations from seed {}, {} up to {}{}",
        args.iterations,
        args.seed,
        if args.tree && args.workers > 0 {
            format!(
                "trees shared by {} cooperating workers through {}",
                args.workers,
                args.store.name()
            )
        } else if args.tree {
            "trees with large files".to_owned()
        } else if args.workers > 0 {
            format!(
                "files shared by {} cooperating workers through {}",
                args.workers,
                args.store.name()
            )
        } else if args.stream {
            "streams piped into `ossup upload -`".to_owned()
        } else {
            "files".to_owned()
        },
        report::size(args.max_size),
        if args.kill_server {
            ", killing the server too"
        } else {
            ""
        }
    );
    let started = Instant::now();
    let mut totals = Totals::default();
    for i in 0..args.iterations {
        let seed = args.seed.wrapping_add(i);
        let (plan, dir, outcome): (Box<dyn Planned>, _, Outcome) = if args.workers > 0 && args.tree
        {
            let plan = FleetTreePlan::generate(
                seed,
                args.workers,
                args.max_size,
                args.kill_server,
                shared.kind(),
            );
            let dir = work.join(format!("fleet-tree-{seed}"));
            let outcome = fleet_tree::run(&bins, &plan, &dir, &net, &shared);
            (Box::new(plan), dir, outcome)
        } else if args.workers > 0 {
            let plan = FleetPlan::generate(
                seed,
                args.workers,
                args.max_size,
                args.kill_server,
                shared.kind(),
            );
            let dir = work.join(format!("fleet-{seed}"));
            let outcome = fleet::run(&bins, &plan, &dir, &net, &shared);
            (Box::new(plan), dir, outcome)
        } else if args.stream {
            let plan = StreamPlan::generate(seed, args.max_size, args.kill_server);
            let dir = work.join(format!("stream-{seed}"));
            let outcome = stream::run(&bins, &plan, &dir, &net);
            (Box::new(plan), dir, outcome)
        } else if args.tree {
            let plan = TreePlan::generate(seed, args.max_size, args.kill_server);
            let dir = work.join(format!("tree-{seed}"));
            let outcome = tree::run(&bins, &plan, &dir, &net);
            (Box::new(plan), dir, outcome)
        } else {
            let plan = Plan::generate(seed, args.max_size, args.kill_server);
            let dir = work.join(format!("seed-{seed}"));
            let outcome = iteration::run(&bins, &plan, &dir, &net);
            (Box::new(plan), dir, outcome)
        };
        let verdict = if outcome.failures.is_empty() {
            let _ = std::fs::remove_dir_all(&dir);
            "ok".to_owned()
        } else {
            format!("FAILED ({})", outcome.failures[0])
        };
        let fired: Vec<String> = outcome
            .faults_fired
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(kind, n)| format!("{kind} x{n}"))
            .collect();
        println!(
            "[{:>4}/{}] seed {seed} {verdict} in {:.1} s: {}; runs {}, kills {}, server restarts {}, {}fired [{}]",
            i + 1,
            args.iterations,
            outcome.elapsed.as_secs_f64(),
            plan.describe(),
            outcome.counts.runs,
            outcome.counts.kills + outcome.counts.watchdog_kills,
            outcome.counts.server_restarts,
            if args.workers > 0 && args.tree && outcome.tree.stale_checkpoints > 0 {
                format!(
                    "{}, stale checkpoints {}, ",
                    outcome.fleet.describe(),
                    outcome.tree.stale_checkpoints
                )
            } else if args.workers > 0 {
                format!("{}, ", outcome.fleet.describe())
            } else if args.tree {
                format!("{}, ", outcome.tree.describe())
            } else {
                String::new()
            },
            fired.join(", ")
        );
        totals.add(plan.as_ref(), &outcome, &dir.display().to_string());
    }
    totals.elapsed = started.elapsed();
    let title = args.command_line(args.iterations, args.seed);
    let rows = if args.workers > 0 {
        fleet::rows(&totals)
    } else if args.tree {
        tree::rows(&totals)
    } else if args.stream {
        stream::rows(&totals)
    } else {
        totals.file_rows()
    };
    let table = totals.table(&title, &rows, |seed| args.reproduce(seed));
    print!("{table}");
    let summary = work.join(if args.workers > 0 && args.tree {
        "fleet-tree-summary.md"
    } else if args.workers > 0 {
        "fleet-summary.md"
    } else if args.tree {
        "tree-summary.md"
    } else if args.stream {
        "stream-summary.md"
    } else {
        "summary.md"
    });
    if let Err(e) = std::fs::write(&summary, &table) {
        eprintln!("warning: cannot write {}: {e}", summary.display());
    }
    if totals.failed.is_empty() {
        println!("\nchaos: all {} iterations passed", totals.iterations);
        Ok(())
    } else {
        Err(Failure::new(format!(
            "{} of {} chaos iterations failed (listed above, with the command that reproduces each; their files are kept under {})",
            totals.failed.len(),
            totals.iterations,
            work.display()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<ChaosArgs, String> {
        ChaosArgs::parse(&args.iter().map(|a| (*a).to_owned()).collect::<Vec<_>>())
    }

    #[test]
    fn arguments_are_read_and_a_failure_names_the_command_that_reproduces_it() {
        let args = parse(&[
            "--iterations",
            "500",
            "--seed",
            "42",
            "--max-size",
            "2MiB",
            "--kill-server",
        ])
        .unwrap();
        assert_eq!(
            args,
            ChaosArgs {
                iterations: 500,
                seed: 42,
                max_size: 2 << 20,
                kill_server: true,
                tree: false,
                stream: false,
                workers: 0,
                store: FleetStore::Postgres,
            }
        );
        assert_eq!(
            args.reproduce(57),
            "cargo xtask chaos --iterations 1 --seed 57 --max-size 2097152 --kill-server"
        );
        let reproduced = parse(&[
            "--iterations",
            "1",
            "--seed",
            "57",
            "--max-size",
            "2097152",
            "--kill-server",
        ])
        .unwrap();
        assert_eq!(
            Plan::generate(57, reproduced.max_size, reproduced.kill_server).describe(),
            Plan::generate(57, args.max_size, args.kill_server).describe()
        );
    }

    #[test]
    fn tree_iterations_are_asked_for_and_reproduced_as_trees() {
        let args = parse(&["--tree", "--seed", "9", "--kill-server"]).unwrap();
        assert!(args.tree && args.kill_server);
        assert_eq!(
            args.reproduce(11),
            "cargo xtask chaos --tree --iterations 1 --seed 11 --max-size 4194304 --kill-server"
        );
        assert!(!parse(&[]).unwrap().tree);
    }

    #[test]
    fn fleet_iterations_name_their_workers_and_store_and_are_reproduced_so() {
        let args = parse(&["--workers", "3", "--store", "sqlite", "--seed", "5"]).unwrap();
        assert_eq!((args.workers, args.store), (3, FleetStore::Sqlite));
        assert_eq!(
            args.reproduce(6),
            "cargo xtask chaos --workers 3 --store sqlite --iterations 1 --seed 6 --max-size 4194304"
        );
        assert_eq!(
            parse(&["--workers", "2"]).unwrap().store,
            FleetStore::Postgres
        );
        assert!(parse(&["--workers", "1"]).unwrap_err().contains("2 to 16"));
        assert!(
            parse(&["--store", "sqlite"])
                .unwrap_err()
                .contains("--workers")
        );
        assert!(
            parse(&["--workers", "3", "--store", "mysql"])
                .unwrap_err()
                .contains("postgres")
        );
        assert!(
            parse(&["--workers", "3", "--stream"])
                .unwrap_err()
                .contains("stream")
        );
        let tree = parse(&["--tree", "--workers", "3", "--store", "sqlite"]).unwrap();
        assert!(tree.tree && tree.workers == 3);
        assert_eq!(
            tree.reproduce(8),
            "cargo xtask chaos --tree --workers 3 --store sqlite --iterations 1 --seed 8 --max-size 4194304"
        );
    }

    #[test]
    fn defaults_are_a_hundred_iterations_of_up_to_four_mebibytes() {
        let args = parse(&[]).unwrap();
        assert_eq!(args.iterations, 100);
        assert_eq!(args.max_size, 4 << 20);
        assert!(!args.kill_server);
    }

    #[test]
    fn bad_arguments_say_what_was_wrong() {
        assert!(
            parse(&["--iterations"])
                .unwrap_err()
                .contains("needs a value")
        );
        assert!(
            parse(&["--iterations", "0"])
                .unwrap_err()
                .contains("at least 1")
        );
        assert!(
            parse(&["--seed", "x"])
                .unwrap_err()
                .contains("not a whole number")
        );
        assert!(
            parse(&["--max-size", "1KiB"])
                .unwrap_err()
                .contains("at least")
        );
        assert!(
            parse(&["--max-size", "3parsecs"])
                .unwrap_err()
                .contains("unknown unit")
        );
        assert!(parse(&["--fast"]).unwrap_err().contains("unknown argument"));
    }
}
