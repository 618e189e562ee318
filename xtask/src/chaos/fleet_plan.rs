//! The plan of one fleet iteration (`cargo xtask chaos --workers N`): a file in many 100 KiB parts,
//! each worker's parallelism, fault rules drawn as for one file, and when to kill a worker, the
//! mock, or PostgreSQL.

use super::plan::{Gen, MIN_PART, MULTIPART_APIS, Rule, RuleSpace, draw_rule};
use super::report::Planned;

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

/// When an event happens: once the workers together have printed this many `part_done` lines, or
/// this many milliseconds into the iteration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum At {
    /// After the nth part recorded by any worker.
    PartsDone(usize),
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
        let mut strikes = Vec::new();
        let at = |g: &mut Gen| {
            if g.chance(0.25) {
                At::Ms(g.range(0, 1500))
            } else {
                At::PartsDone(g.range(1, parts.saturating_sub(1).max(1)) as usize)
            }
        };
        for _ in 0..g.weighted(&[(1, 0), (3, 1), (3, 2), (2, 3), (1, 4)]) {
            let worker = g.below(workers as u64) as usize;
            strikes.push((at(&mut g), Strike::Worker(worker)));
        }
        if kill_server {
            for _ in 0..g.weighted(&[(1, 0), (2, 1), (1, 2)]) {
                let down_ms = g.range(0, 400);
                strikes.push((at(&mut g), Strike::Server { down_ms }));
            }
        }
        if store == FleetStore::Postgres && g.chance(0.6) {
            let down_ms = g.range(100, 1500);
            strikes.push((at(&mut g), Strike::Database { down_ms }));
        }
        strikes.sort_by_key(|(at, _)| match at {
            At::PartsDone(n) => (0, *n as u64),
            At::Ms(ms) => (1, *ms),
        });
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
        let rules: Vec<String> = self
            .rules
            .iter()
            .map(|r| format!("{}@{}", r.kind, r.api))
            .collect();
        let strikes: Vec<String> = self
            .strikes
            .iter()
            .map(|(at, strike)| {
                let at = match at {
                    At::PartsDone(n) => format!("after {n} parts"),
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
        format!(
            "{} bytes in {} parts, {} workers (parallel {:?}) through {}, faults [{}], [{}]",
            self.size,
            FleetPlan::parts(self),
            self.parallel.len(),
            self.parallel,
            self.store.name(),
            rules.join(", "),
            strikes.join(", ")
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
