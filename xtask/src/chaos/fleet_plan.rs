//! The plan of one fleet iteration (`cargo xtask chaos --workers N`): a file in many 100 KiB parts
//! (or, with `--tree`, a seeded tree), each worker's parallelism, fault rules drawn as for one file
//! (or one tree), and when to kill a worker, the mock, or PostgreSQL.

use super::plan::{Gen, MIN_PART, MULTIPART_APIS, Rule, RuleSpace, draw_rule, rule_names};
use super::report::{self, Planned};
use super::tree_plan::{SeededTree, TREE_PART};

/// The store the workers share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FleetStore {
    /// One PostgreSQL database per iteration on the run's throwaway cluster (`--checkpoint-url`).
    Postgres,
    /// One SQLite database per iteration on this host (`--checkpoint-db`).
    Sqlite,
}

impl FleetStore {
    /// The name `--store` takes.
    pub(crate) fn name(self) -> &'static str {
        match self {
            FleetStore::Postgres => "postgres",
            FleetStore::Sqlite => "sqlite",
        }
    }
}

/// When an event happens: once the workers together have printed this many progress lines, or
/// this many milliseconds into the iteration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum At {
    /// After the nth progress line of any worker: a `part_done` of the shared file, or a `file`
    /// result of the shared tree.
    Progress(usize),
    /// Milliseconds after the workers started.
    Ms(u64),
}

/// What happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Strike {
    /// SIGKILL of worker `n` (when it runs); it is started again at once, as a fleet's
    /// supervisor would.
    Worker(usize),
    /// SIGKILL of the mock, started again on the same port and data after `down_ms`.
    Server { down_ms: u64 },
    /// PostgreSQL stopped as a crash would (`pg_ctl stop -m immediate`) and started again after
    /// `down_ms`; with SQLite, nothing.
    Database { down_ms: u64 },
}

/// One fleet iteration's plan.
#[derive(Debug, Clone)]
pub(super) struct FleetPlan {
    /// The iteration's seed.
    pub seed: u64,
    /// The file's size.
    pub size: u64,
    /// The part size (100 KiB).
    pub part_size: u64,
    /// `--parallel` of each worker.
    pub parallel: Vec<u16>,
    /// Fault rules for the mock.
    pub rules: Vec<Rule>,
    /// Kills and restarts, in the order they happen.
    pub strikes: Vec<(At, Strike)>,
    /// The shared store.
    pub store: FleetStore,
}

impl FleetPlan {
    /// The plan of seed `seed` for `workers` workers, the file from half of `max_size` to
    /// `max_size`; server kills only with `kill_server`.
    pub(super) fn generate(
        seed: u64,
        workers: usize,
        max_size: u64,
        kill_server: bool,
        store: FleetStore,
    ) -> FleetPlan {
        let mut g = Gen::new(seed);
        let part_size = MIN_PART;
        let size = g.range(max_size / 2, max_size).max(2 * part_size + 1);
        let parts = size.div_ceil(part_size);
        let parallel = (0..workers).map(|_| g.range(1, 4) as u16).collect();
        let nth_limit = |api: &str| {
            if api == "UploadPart" {
                parts.min(12)
            } else {
                2
            }
        };
        // A stall holds a worker's request until ossup's 120 s answer timeout while the worker
        // keeps renewing its claims: nothing a fleet shows that one file does not.
        let space = RuleSpace {
            apis: MULTIPART_APIS,
            allowed: |_, kind| kind != "stall",
            body: part_size,
            nth_limit: &nth_limit,
        };
        let rule_count = g.weighted(&[(2, 0), (4, 1), (3, 2), (2, 3)]);
        let rules = (0..rule_count).map(|_| draw_rule(&mut g, &space)).collect();
        let strikes = draw_strikes(&mut g, workers, parts, kill_server, store);
        FleetPlan {
            seed,
            size,
            part_size,
            parallel,
            rules,
            strikes,
            store,
        }
    }

    /// The number of parts.
    pub(super) fn parts(&self) -> u64 {
        self.size.div_ceil(self.part_size)
    }
}

/// One iteration of cooperating workers on a tree (`--tree --workers N`): the tree, fixed for the
/// whole iteration (the workers must see the same files), each worker's parallelism, fault rules
/// drawn as for one tree, and the strikes.
#[derive(Debug, Clone)]
pub(super) struct FleetTreePlan {
    /// The iteration's seed.
    pub seed: u64,
    /// The tree the workers share.
    pub tree: SeededTree,
    /// `--parallel` of each worker.
    pub parallel: Vec<u16>,
    /// Fault rules for the mock.
    pub rules: Vec<Rule>,
    /// Kills and restarts, in the order they happen; a progress line is a file's result.
    pub strikes: Vec<(At, Strike)>,
    /// The shared store.
    pub store: FleetStore,
}

impl FleetTreePlan {
    /// The plan of seed `seed` for `workers` workers, files of at most `max_size` bytes; server
    /// kills only with `kill_server`.
    pub(super) fn generate(
        seed: u64,
        workers: usize,
        max_size: u64,
        kill_server: bool,
        store: FleetStore,
    ) -> FleetTreePlan {
        let mut g = Gen::new(seed);
        let tree = SeededTree::draw(&mut g, seed, max_size);
        let parallel = (0..workers).map(|_| g.range(2, 6) as u16).collect();
        // A stall holds a worker's request until ossup's 120 s answer timeout while the worker
        // keeps renewing its claims: nothing a fleet shows that one tree does not.
        let rules = tree.draw_rules(&mut g, |_, kind| kind != "stall");
        let files = tree.kept().count() as u64;
        let strikes = draw_strikes(&mut g, workers, files, kill_server, store);
        FleetTreePlan {
            seed,
            tree,
            parallel,
            rules,
            strikes,
            store,
        }
    }
}

impl Planned for FleetTreePlan {
    fn seed(&self) -> u64 {
        self.seed
    }

    fn bytes(&self) -> u64 {
        self.tree.kept_bytes()
    }

    fn parts(&self) -> u64 {
        self.tree.kept_parts()
    }

    fn rules(&self) -> &[Rule] {
        &self.rules
    }

    fn describe(&self) -> String {
        let kept = self.tree.kept().count();
        let multipart = self.tree.kept().filter(|(_, f)| f.size > TREE_PART).count();
        let rules = rule_names(&self.rules);
        format!(
            "{kept} files of {} ({multipart} multipart; {} left out) under {:?}, {} workers (parallel {:?}) through {}, faults [{}], {}",
            report::size(Planned::bytes(self)),
            self.tree.files.len() - kept,
            self.tree.prefix,
            self.parallel.len(),
            self.parallel,
            self.store.name(),
            rules.join(", "),
            describe_strikes(&self.strikes, "files")
        )
    }
}

/// The kills and restarts of one fleet iteration, in the order they happen, for `workers` workers
/// whose runs print `progress` progress lines in all when nothing goes wrong: zero to four kills of
/// a worker, with `kill_server` zero to two of the mock, and with PostgreSQL, in three iterations of
/// five, a crash of the database; each after K progress lines (K drawn from `progress`) or, one
/// time in four, 0 to 1.5 s in.
pub(super) fn draw_strikes(
    g: &mut Gen,
    workers: usize,
    progress: u64,
    kill_server: bool,
    store: FleetStore,
) -> Vec<(At, Strike)> {
    let mut strikes = Vec::new();
    let at = |g: &mut Gen| {
        if g.chance(0.25) {
            At::Ms(g.range(0, 1500))
        } else {
            At::Progress(g.range(1, progress.saturating_sub(1).max(1)) as usize)
        }
    };
    for _ in 0..g.weighted(&[(1, 0), (3, 1), (3, 2), (2, 3), (1, 4)]) {
        let worker = g.below(workers as u64) as usize;
        strikes.push((at(g), Strike::Worker(worker)));
    }
    if kill_server {
        for _ in 0..g.weighted(&[(1, 0), (2, 1), (1, 2)]) {
            let down_ms = g.range(0, 400);
            strikes.push((at(g), Strike::Server { down_ms }));
        }
    }
    if store == FleetStore::Postgres && g.chance(0.6) {
        let down_ms = g.range(100, 1500);
        strikes.push((at(g), Strike::Database { down_ms }));
    }
    strikes.sort_by_key(|(at, _)| match at {
        At::Progress(n) => (0, *n as u64),
        At::Ms(ms) => (1, *ms),
    });
    strikes
}

/// The strikes in words, for an iteration's line; `unit` names what the progress lines count.
pub(super) fn describe_strikes(strikes: &[(At, Strike)], unit: &str) -> String {
    let strikes: Vec<String> = strikes
        .iter()
        .map(|(at, strike)| {
            let at = match at {
                At::Progress(n) => format!("after {n} {unit}"),
                At::Ms(ms) => format!("at {ms} ms"),
            };
            match strike {
                Strike::Worker(n) => format!("kill worker {n} {at}"),
                Strike::Server { down_ms } => format!("kill server {at} ({down_ms} ms down)"),
                Strike::Database { down_ms } => {
                    format!("crash PostgreSQL {at} ({down_ms} ms down)")
                }
            }
        })
        .collect();
    format!("[{}]", strikes.join(", "))
}

impl Planned for FleetPlan {
    fn seed(&self) -> u64 {
        self.seed
    }

    fn bytes(&self) -> u64 {
        self.size
    }

    fn parts(&self) -> u64 {
        FleetPlan::parts(self)
    }

    fn rules(&self) -> &[Rule] {
        &self.rules
    }

    fn describe(&self) -> String {
        let rules = rule_names(&self.rules);
        format!(
            "{} bytes in {} parts, {} workers (parallel {:?}) through {}, faults [{}], {}",
            self.size,
            FleetPlan::parts(self),
            self.parallel.len(),
            self.parallel,
            self.store.name(),
            rules.join(", "),
            describe_strikes(&self.strikes, "parts")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_plan_and_every_strike_kind_appears() {
        let plan = |seed| FleetPlan::generate(seed, 3, 4 << 20, true, FleetStore::Postgres);
        assert_eq!(plan(7).describe(), plan(7).describe());
        let strikes: Vec<Strike> = (0..200)
            .flat_map(|s| plan(s).strikes)
            .map(|s| s.1)
            .collect();
        assert!(strikes.iter().any(|s| matches!(s, Strike::Worker(2))));
        assert!(strikes.iter().any(|s| matches!(s, Strike::Server { .. })));
        assert!(strikes.iter().any(|s| matches!(s, Strike::Database { .. })));
        for seed in 0..200 {
            let plan = plan(seed);
            assert!(plan.parts() >= 3 && plan.size <= 4 << 20);
            assert!(plan.rules.iter().all(|r| r.kind != "stall"));
        }
    }

    #[test]
    fn a_tree_fleet_plan_is_seeded_and_draws_every_strike_kind_without_stalls() {
        let plan = |seed| FleetTreePlan::generate(seed, 3, 1 << 20, true, FleetStore::Postgres);
        assert_eq!(plan(7).describe(), plan(7).describe());
        let plans: Vec<FleetTreePlan> = (0..200).map(plan).collect();
        let strikes = || plans.iter().flat_map(|p| p.strikes.iter().map(|s| s.1));
        assert!(strikes().any(|s| matches!(s, Strike::Worker(2))));
        assert!(strikes().any(|s| matches!(s, Strike::Server { .. })));
        assert!(strikes().any(|s| matches!(s, Strike::Database { .. })));
        for plan in &plans {
            let files = plan.tree.kept().count();
            assert!(files >= 150, "{}", plan.describe());
            assert!(plan.rules.iter().all(|r| r.kind != "stall"));
            assert!(plan.parallel.iter().all(|p| (2..=6).contains(p)));
            for (at, _) in &plan.strikes {
                if let At::Progress(n) = at {
                    assert!(*n < files, "{}", plan.describe());
                }
            }
        }
    }

    #[test]
    fn sqlite_and_no_server_kills_draw_neither_database_nor_server_strikes() {
        for seed in 0..100 {
            let plan = FleetPlan::generate(seed, 2, 1 << 20, false, FleetStore::Sqlite);
            assert!(
                plan.strikes
                    .iter()
                    .all(|(_, s)| matches!(s, Strike::Worker(0 | 1)))
            );
        }
    }
}
