//! What one iteration does, drawn from its seed alone: the file, how it is uploaded, the server's
//! fault rules, and when the client and the server are killed.
//!
//! The same seed and `--max-size` always give the same plan, which is how a failure is reproduced.

use std::path::{Path, PathBuf};

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use serde_json::{Value, json};

/// The smallest part OSS allows, and the part size most iterations use.
pub(crate) const MIN_PART: u64 = 100 * 1024;

/// A seeded source of choices.
#[derive(Debug)]
pub(crate) struct Gen(ChaCha8Rng);

impl Gen {
    /// A generator for `seed`.
    pub(crate) fn new(seed: u64) -> Self {
        Self(ChaCha8Rng::seed_from_u64(seed))
    }

    /// A number in `0..n` (`n` > 0).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.0.next_u64() % n.max(1)
    }

    /// A number in `lo..=hi`.
    pub(crate) fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi.saturating_sub(lo).saturating_add(1))
    }

    /// True with probability `p`.
    pub(crate) fn chance(&mut self, p: f64) -> bool {
        (self.0.next_u64() as f64 / u64::MAX as f64) < p
    }

    /// One of `items`, each with its weight.
    pub(crate) fn weighted<T: Copy>(&mut self, items: &[(u64, T)]) -> T {
        let total: u64 = items.iter().map(|(w, _)| w).sum();
        let mut at = self.below(total);
        for (weight, item) in items {
            if at < *weight {
                return *item;
            }
            at -= weight;
        }
        items[items.len() - 1].1
    }

    /// The next raw 64 bits.
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Fills `buf` with pseudo-random bytes.
    pub(crate) fn fill(&mut self, buf: &mut [u8]) {
        self.0.fill_bytes(buf);
    }
}

/// Where the checkpoint lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Store {
    /// `--checkpoint-dir`: one journal file per upload.
    Files,
    /// `--checkpoint-db`: one SQLite database.
    Sqlite,
}

impl Store {
    /// Where an iteration in `dir` keeps its checkpoints with this store.
    pub(crate) fn location(self, dir: &Path) -> PathBuf {
        match self {
            Store::Files => dir.join("checkpoints"),
            Store::Sqlite => dir.join("checkpoints.db"),
        }
    }
}

/// How parts are scheduled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Scheduler {
    /// `--sequential`.
    Sequential,
    /// `--parallel N`.
    Parallel(u16),
    /// `--parallel auto --max-parallel N`.
    Auto(u16),
}

impl Scheduler {
    /// Turns about two in five `--parallel N` of seed `seed` into `--parallel auto --max-parallel
    /// N`, drawn from a generator of its own so that every other draw of the seed stays as it was.
    pub(super) fn maybe_auto(self, seed: u64) -> Self {
        match self {
            Scheduler::Parallel(n) if Gen::new(seed ^ 0x0a07_0a07_0a07_0a07).chance(0.4) => {
                Scheduler::Auto(n)
            }
            other => other,
        }
    }

    /// The scheduler in words, for the log.
    pub(super) fn describe(self) -> String {
        match self {
            Scheduler::Sequential => "sequential".to_owned(),
            Scheduler::Parallel(n) => format!("parallel {n}"),
            Scheduler::Auto(n) => format!("parallel auto up to {n}"),
        }
    }
}

/// When, during a run, an interruption happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Moment {
    /// This long after the run starts, whatever it has printed.
    AfterMs(u64),
    /// As soon as the run has printed this many progress lines (1 is the `started` line).
    AfterLines(usize),
    /// As soon as a tree run has printed this many `"event":"file"` lines: that many files have a
    /// result, whatever else is in flight.
    FileResults(usize),
}

/// What is killed (with SIGKILL) during one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Interruption {
    /// The `ossup` process.
    Client(Moment),
    /// The mock server, restarted on the same port and data directory after `down_ms`; with
    /// `client_too`, the `ossup` process at the same moment.
    Server {
        /// When.
        at: Moment,
        /// Whether `ossup` is killed as well.
        client_too: bool,
        /// How long the server stays down.
        down_ms: u64,
    },
}

/// One fault rule of the plan, in the mock's JSON rule format.
#[derive(Debug, Clone)]
pub(super) struct Rule {
    /// The action's kind.
    pub kind: &'static str,
    /// The API the rule matches (`*` for any).
    pub api: &'static str,
    /// The rule as the mock reads it.
    pub json: Value,
}

impl Rule {
    /// Whether this rule can make a ListParts answer lie about a part, which makes the engine
    /// rightly send that part again.
    pub(super) fn corrupts_listing(&self) -> bool {
        matches!(self.kind, "corrupt_etag" | "corrupt_crc") && matches!(self.api, "*" | "ListParts")
    }
}

/// Everything one iteration does.
#[derive(Debug, Clone)]
pub(super) struct Plan {
    /// The seed the plan was drawn from.
    pub seed: u64,
    /// The file's size in bytes.
    pub size: u64,
    /// `--part-size`.
    pub part_size: u64,
    /// The checkpoint store.
    pub store: Store,
    /// The scheduler.
    pub scheduler: Scheduler,
    /// The server's fault rules (also re-applied at every restart).
    pub rules: Vec<Rule>,
    /// The interruption of each run, in order; runs past the list run undisturbed.
    pub interruptions: Vec<Interruption>,
}

/// The APIs of an upload sent as one PutObject, and of a multipart one.
const SINGLE_APIS: &[(u64, &str)] = &[(1, "*"), (5, "PutObject"), (1, "HeadObject")];
pub(super) const MULTIPART_APIS: &[(u64, &str)] = &[
    (1, "*"),
    (2, "InitiateMultipartUpload"),
    (7, "UploadPart"),
    (2, "ListParts"),
    (3, "CompleteMultipartUpload"),
    (1, "HeadObject"),
];

/// Action kinds with their weights.
const KINDS: &[(u64, &str)] = &[
    (6, "error"),
    (3, "delay"),
    (3, "reset_before_body"),
    (3, "reset_mid_body"),
    (4, "reset_after_commit"),
    (3, "truncate_response"),
    (2, "throttle"),
    (1, "stall"),
    (2, "corrupt_etag"),
    (2, "corrupt_crc"),
    (2, "expire_upload"),
    (2, "skew_clock"),
];

impl Plan {
    /// The plan of seed `seed`, with files of at most `max_size` bytes; server kills only with
    /// `kill_server`.
    pub(super) fn generate(seed: u64, max_size: u64, kill_server: bool) -> Plan {
        let mut g = Gen::new(seed);
        let part_size = g
            .weighted(&[(6, MIN_PART), (2, 256 * 1024), (1, 1024 * 1024)])
            .min(max_size.max(MIN_PART));
        let size = Self::size(&mut g, part_size, max_size);
        let parts = size.div_ceil(part_size).max(1);
        let store = g.weighted(&[(1, Store::Files), (1, Store::Sqlite)]);
        let scheduler = if g.chance(0.3) {
            Scheduler::Sequential
        } else {
            Scheduler::Parallel(g.range(2, 8) as u16)
        }
        .maybe_auto(seed);
        let multipart = size > part_size;
        let rule_count = g.weighted(&[(2, 0), (4, 1), (3, 2), (2, 3)]);
        let nth_limit = |api: &str| if api == "UploadPart" { parts.min(6) } else { 2 };
        let space = RuleSpace {
            apis: if multipart {
                MULTIPART_APIS
            } else {
                SINGLE_APIS
            },
            allowed: |_, _| true,
            body: part_size,
            nth_limit: &nth_limit,
        };
        let rules = (0..rule_count).map(|_| draw_rule(&mut g, &space)).collect();
        let lines = parts as usize + 2;
        let mut interruptions = Vec::new();
        let client_kills = g.weighted(&[(2, 0), (3, 1), (3, 2), (2, 3)]);
        for _ in 0..client_kills {
            interruptions.push(Interruption::Client(Self::moment(&mut g, lines)));
        }
        if kill_server {
            for _ in 0..g.weighted(&[(1, 0), (2, 1), (1, 2)]) {
                let at = g.below(interruptions.len() as u64 + 1) as usize;
                let kill = Interruption::Server {
                    at: Self::moment(&mut g, lines),
                    client_too: g.chance(0.5),
                    down_ms: g.range(0, 400),
                };
                interruptions.insert(at, kill);
            }
        }
        Plan {
            seed,
            size,
            part_size,
            store,
            scheduler,
            rules,
            interruptions,
        }
    }

    /// Sizes at the edges (empty, one byte, 100 KiB less one, a part, a part and one byte either
    /// side, two parts) and, most often, anything up to `max_size` in many parts.
    fn size(g: &mut Gen, part: u64, max_size: u64) -> u64 {
        let edge = g.weighted(&[
            (1, 0),
            (1, 1),
            (1, MIN_PART - 1),
            (1, part - 1),
            (1, part),
            (1, part + 1),
            (1, 2 * part),
            (9, u64::MAX),
        ]);
        if edge <= max_size {
            edge
        } else {
            g.range(2 * part + 1, max_size.max(2 * part + 1))
                .min(max_size)
        }
    }

    fn moment(g: &mut Gen, lines: usize) -> Moment {
        if g.chance(0.3) {
            Moment::AfterMs(g.range(0, 300))
        } else {
            Moment::AfterLines(g.range(1, lines as u64) as usize)
        }
    }

    /// The rules as the JSON array `oss-mock --faults` reads.
    pub(super) fn rules_json(&self) -> String {
        rules_json(&self.rules)
    }

    /// How many parts the file has (a file of at most one part is one PutObject).
    pub(super) fn parts(&self) -> u64 {
        self.size.div_ceil(self.part_size).max(1)
    }

    /// Whether the file goes up as a multipart upload.
    pub(super) fn multipart(&self) -> bool {
        self.size > self.part_size
    }

    /// A one-line description for the log.
    pub(super) fn describe(&self) -> String {
        let scheduler = self.scheduler.describe();
        let store = match self.store {
            Store::Files => "files",
            Store::Sqlite => "sqlite",
        };
        let rules = rule_names(&self.rules);
        format!(
            "{} bytes in {} x {} KiB parts, {store}, {scheduler}, faults [{}], {} interruptions",
            self.size,
            self.parts(),
            self.part_size / 1024,
            rules.join(" "),
            self.interruptions.len()
        )
    }
}

/// Each rule as `kind@api`, for an iteration's one-line description.
pub(super) fn rule_names(rules: &[Rule]) -> Vec<String> {
    rules
        .iter()
        .map(|r| format!("{}@{}", r.kind, r.api))
        .collect()
}

/// `rules` as the JSON array `oss-mock --faults` reads.
pub(super) fn rules_json(rules: &[Rule]) -> String {
    let rules: Vec<&Value> = rules.iter().map(|r| &r.json).collect();
    serde_json::to_string_pretty(&rules).expect("rules serialise")
}

/// What a fault rule is drawn from.
pub(super) struct RuleSpace<'a> {
    /// The APIs the rule may match, with their weights.
    pub apis: &'a [(u64, &'static str)],
    /// Whether an action kind may go on an API (the others are not drawn for it).
    pub allowed: fn(&str, &str) -> bool,
    /// The largest request body, within which a `reset_mid_body` cuts.
    pub body: u64,
    /// Per API, the last matching request the rule may first fire on (`nth`).
    pub nth_limit: &'a dyn Fn(&str) -> u64,
}

/// A rule that fires a few times at most, so that some run eventually gets through.
pub(super) fn draw_rule(g: &mut Gen, space: &RuleSpace<'_>) -> Rule {
    let api = g.weighted(space.apis);
    let kinds: Vec<(u64, &'static str)> = KINDS
        .iter()
        .copied()
        .filter(|(_, kind)| (space.allowed)(api, kind))
        .collect();
    let kind = g.weighted(&kinds);
    let action = match kind {
        "error" => {
            let (status, code) = g.weighted(&[
                (4, (503, "ServiceUnavailable")),
                (3, (500, "InternalError")),
                (1, (429, "TooManyRequests")),
                (1, (408, "RequestTimeout")),
            ]);
            json!({"kind": kind, "status": status, "code": code})
        }
        "delay" => json!({"kind": kind, "ms": g.range(10, 400)}),
        "reset_mid_body" => json!({"kind": kind, "after_bytes": g.below(space.body)}),
        "truncate_response" => json!({"kind": kind, "bytes": g.below(200)}),
        "throttle" => json!({"kind": kind, "bytes_per_sec": g.range(1 << 20, 8 << 20)}),
        "skew_clock" => {
            let seconds = g.range(900, 7200) as i64;
            json!({"kind": kind, "seconds": if g.chance(0.5) { seconds } else { -seconds }})
        }
        _ => json!({"kind": kind}),
    };
    let mut rule = json!({"api": api, "seed": g.next_u64(), "action": action});
    let times = match kind {
        "stall" | "expire_upload" => 1,
        _ => g.range(1, 3),
    };
    rule["times"] = json!(times);
    rule["nth"] = json!(g.range(1, (space.nth_limit)(api).max(1)));
    if g.chance(0.3) {
        rule["probability"] = json!(g.range(30, 100) as f64 / 100.0);
    }
    Rule {
        kind,
        api,
        json: rule,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_plan() {
        for seed in 0..50 {
            let a = Plan::generate(seed, 4 << 20, true);
            let b = Plan::generate(seed, 4 << 20, true);
            assert_eq!(a.describe(), b.describe());
            assert_eq!(a.rules_json(), b.rules_json());
            assert_eq!(a.interruptions, b.interruptions);
        }
    }

    #[test]
    fn sizes_cover_the_edges_and_stay_under_the_maximum() {
        let max = 3 << 20;
        let plans: Vec<Plan> = (0..2000).map(|s| Plan::generate(s, max, false)).collect();
        for plan in &plans {
            assert!(plan.size <= max, "{}", plan.describe());
        }
        let edges: [fn(&Plan) -> u64; 6] = [
            |_: &Plan| 0,
            |_: &Plan| 1,
            |_: &Plan| MIN_PART - 1,
            |p: &Plan| p.part_size,
            |p: &Plan| p.part_size + 1,
            |p: &Plan| p.part_size - 1,
        ];
        for edge in edges {
            assert!(plans.iter().any(|p| p.size == edge(p)));
        }
        assert!(plans.iter().any(|p| p.parts() >= 20));
    }

    #[test]
    fn every_action_kind_and_both_stores_and_schedulers_appear() {
        let plans: Vec<Plan> = (0..2000)
            .map(|s| Plan::generate(s, 4 << 20, true))
            .collect();
        for (_, kind) in KINDS {
            assert!(
                plans
                    .iter()
                    .any(|p| p.rules.iter().any(|r| r.kind == *kind)),
                "{kind} never drawn"
            );
        }
        assert!(plans.iter().any(|p| p.store == Store::Files));
        assert!(plans.iter().any(|p| p.store == Store::Sqlite));
        assert!(plans.iter().any(|p| p.scheduler == Scheduler::Sequential));
        assert!(plans.iter().any(|p| p.scheduler == Scheduler::Parallel(8)));
        assert!(plans.iter().any(|p| p.scheduler == Scheduler::Parallel(2)));
        assert!(
            plans
                .iter()
                .any(|p| matches!(p.scheduler, Scheduler::Auto(_)))
        );
        assert!(plans.iter().any(|p| {
            p.interruptions
                .iter()
                .any(|i| matches!(i, Interruption::Server { .. }))
        }));
    }

    #[test]
    fn without_kill_server_only_the_client_is_killed() {
        for seed in 0..500 {
            let plan = Plan::generate(seed, 4 << 20, false);
            assert!(plan.interruptions.len() <= 3);
            assert!(
                plan.interruptions
                    .iter()
                    .all(|i| matches!(i, Interruption::Client(_)))
            );
        }
    }

    #[test]
    fn every_rule_caps_how_often_it_fires() {
        for seed in 0..500 {
            for rule in Plan::generate(seed, 4 << 20, true).rules {
                let times = rule.json["times"].as_u64().unwrap();
                assert!((1..=3).contains(&times), "{}", rule.json);
                assert!(rule.json["nth"].as_u64().unwrap() >= 1);
            }
        }
    }
}
