//! `cargo xtask chaos --stream`: one iteration pipes a seeded stream into `ossup upload -`, under
//! faults, with the writer dying part way, the client and the server killed with SIGKILL, and now
//! and then other bytes piped in; after every run that exits 0 the object must be exactly the bytes
//! that run read, and at the end (the whole stream piped until a run exits 0) the object is checked
//! byte for byte, with no upload left open and no checkpoint left.

use std::path::Path;
use std::sync::Arc;

use ossup_proto::checksum::crc64;
use serde_json::Value;

use super::iteration::{
    Binaries, Outcome, SPARE_RUNS, add_stats, append, count_other_end, log_run, timed,
};
use super::mock::{BUCKET, Mock};
use super::plan::{
    Gen, Interruption, MIN_PART, Moment, Rule, RuleSpace, Scheduler, Store, draw_rule, rules_json,
};
use super::report::{self, Planned};
use super::run::{End, Feed, run_ossup_fed, scheduler_args, store_flag};
use super::verify::{Digest, Net, REGION};

/// The part size of every stream run.
const STREAM_PART: u64 = MIN_PART;

/// The object key.
const KEY: &str = "stream/dump.bin";

/// The APIs a stream upload calls, with the weights rules are drawn by.
const STREAM_APIS: &[(u64, &str)] = &[
    (1, "*"),
    (1, "PutObject"),
    (2, "InitiateMultipartUpload"),
    (6, "UploadPart"),
    (2, "ListParts"),
    (1, "ListMultipartUploads"),
    (3, "CompleteMultipartUpload"),
    (1, "HeadObject"),
];

/// What one run pipes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Input {
    /// The whole stream.
    Whole,
    /// The stream until the writer dies after this many bytes.
    WriterDies(u64),
    /// The stream with one byte of this part changed: other bytes, the same length.
    Changed(u64),
}

/// One planned run: what it reads and what is killed during it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Step {
    input: Input,
    interruption: Option<Interruption>,
}

/// A stream iteration, drawn from its seed.
#[derive(Debug, Clone)]
pub(super) struct StreamPlan {
    seed: u64,
    size: u64,
    store: Store,
    scheduler: Scheduler,
    rules: Vec<Rule>,
    steps: Vec<Step>,
}

impl StreamPlan {
    /// The plan of `seed`: a stream of up to `max_size` bytes (at least a few parts), two to five
    /// disturbed runs, the server killed too when `kill_server`.
    pub(super) fn generate(seed: u64, max_size: u64, kill_server: bool) -> Self {
        let mut g = Gen::new(seed ^ 0x5713_ea11);
        let max = max_size.max(4 * STREAM_PART);
        let size = match g.below(6) {
            0 => g.range(1, STREAM_PART),
            1 => STREAM_PART * g.range(2, 8),
            _ => g.range(2 * STREAM_PART, max),
        };
        let parts = size.div_ceil(STREAM_PART).max(1);
        let store = if g.chance(0.5) {
            Store::Files
        } else {
            Store::Sqlite
        };
        let scheduler = g
            .weighted(&[
                (1, Scheduler::Sequential),
                (2, Scheduler::Parallel(2)),
                (3, Scheduler::Parallel(4)),
            ])
            .maybe_auto(seed);
        let nth_limit = |api: &str| match api {
            "UploadPart" | "*" => parts.min(12),
            _ => 3,
        };
        let space = RuleSpace {
            apis: STREAM_APIS,
            // A stall on InitiateMultipartUpload was seen to hold a run for good.
            allowed: |api, kind| {
                !(kind == "stall" && matches!(api, "*" | "InitiateMultipartUpload"))
            },
            body: STREAM_PART,
            nth_limit: &nth_limit,
        };
        let rule_count = g.weighted(&[(2, 0), (4, 1), (3, 2)]);
        let rules = (0..rule_count).map(|_| draw_rule(&mut g, &space)).collect();
        let mut steps = Vec::new();
        for _ in 0..g.range(2, 6) {
            let (cut, changed) = (g.range(0, size), g.below(parts));
            let input = g.weighted(&[
                (5, Input::Whole),
                (2, Input::WriterDies(cut)),
                (1, Input::Changed(changed)),
            ]);
            let at = if g.chance(0.3) {
                Moment::AfterMs(g.range(0, 500))
            } else {
                Moment::AfterLines(g.range(1, parts + 2) as usize)
            };
            let interruption = if kill_server && g.chance(0.35) {
                Some(Interruption::Server {
                    at,
                    client_too: g.chance(0.5),
                    down_ms: g.range(0, 300),
                })
            } else if g.chance(0.7) {
                Some(Interruption::Client(at))
            } else {
                None
            };
            steps.push(Step {
                input,
                interruption,
            });
        }
        Self {
            seed,
            size,
            store,
            scheduler,
            rules,
            steps,
        }
    }

    /// The stream's bytes as `input` pipes them.
    fn bytes(&self, input: Input) -> Vec<u8> {
        let mut data = vec![0u8; self.size as usize];
        Gen::new(self.seed).fill(&mut data);
        match input {
            Input::Whole => {}
            Input::WriterDies(len) => data.truncate(len as usize),
            Input::Changed(part) => {
                let at = ((part * STREAM_PART) as usize).min(data.len().saturating_sub(1));
                if let Some(byte) = data.get_mut(at) {
                    *byte ^= 0x5a;
                }
            }
        }
        data
    }
}

impl Planned for StreamPlan {
    fn seed(&self) -> u64 {
        self.seed
    }

    fn bytes(&self) -> u64 {
        self.size
    }

    fn parts(&self) -> u64 {
        self.size.div_ceil(STREAM_PART).max(1)
    }

    fn rules(&self) -> &[Rule] {
        &self.rules
    }

    fn describe(&self) -> String {
        let kinds: Vec<&str> = self.rules.iter().map(|r| r.kind).collect();
        let inputs: Vec<String> = self
            .steps
            .iter()
            .map(|s| match s.input {
                Input::Whole => "whole".to_owned(),
                Input::WriterDies(n) => format!("writer dies at {n}"),
                Input::Changed(p) => format!("part {} changed", p + 1),
            })
            .collect();
        format!(
            "stream of {}, {:?}, {:?}, runs [{}], faults [{}]",
            report::size(self.size),
            self.store,
            self.scheduler,
            inputs.join(", "),
            kinds.join(", ")
        )
    }
}

/// The summary's rows for stream iterations: the file rows but those a stream does not count
/// (parts sent again are the point of a changed stream, and the server's bytes per stream vary
/// with where the writer died).
pub(super) fn rows(totals: &report::Totals) -> Vec<(&'static str, String)> {
    totals
        .file_rows()
        .into_iter()
        .filter(|(name, _)| {
            !name.starts_with("acknowledged parts") && !name.starts_with("bytes re-sent")
        })
        .map(|(name, value)| match name {
            "iterations" => ("iterations (streams)", value),
            "ossup runs" => (
                "ossup runs (each piping the whole stream, a stream whose writer dies, or other bytes)",
                value,
            ),
            _ => (name, value),
        })
        .collect()
}

/// Runs the iteration of `plan` in `dir`.
pub(super) fn run(bins: &Binaries<'_>, plan: &StreamPlan, dir: &Path, net: &Net) -> Outcome {
    timed(|outcome| run_in(bins, plan, dir, net, outcome))
}

fn run_in(
    bins: &Binaries<'_>,
    plan: &StreamPlan,
    dir: &Path,
    net: &Net,
    outcome: &mut Outcome,
) -> Result<(), String> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let mut mock = Mock::start_in(bins.mock, dir, &rules_json(&plan.rules))?;
    let checkpoints = plan.store.location(dir);
    let log = dir.join("runs.log");
    let whole = Step {
        input: Input::Whole,
        interruption: None,
    };
    let steps = plan
        .steps
        .iter()
        .copied()
        .chain(std::iter::repeat_n(whole, SPARE_RUNS));
    // Whether the latest run exited 0 having read the whole stream: the iteration's goal.
    let mut whole_completed = false;
    for (index, step) in steps.enumerate() {
        let planned = index < plan.steps.len();
        if !planned && whole_completed {
            break;
        }
        whole_completed = false;
        let data = Arc::new(plan.bytes(step.input));
        let mut args: Vec<String> = [
            "upload",
            "-",
            &format!("oss://{BUCKET}/{KEY}"),
            "--endpoint",
            &mock.endpoint(),
            "--region",
            REGION,
            "--part-size",
            &STREAM_PART.to_string(),
            store_flag(plan.store),
            &checkpoints.display().to_string(),
            "--progress",
            "json",
        ]
        .iter()
        .map(|a| (*a).to_owned())
        .collect();
        args.extend(scheduler_args(plan.scheduler));
        let feed = Feed {
            data: data.clone(),
            len: data.len(),
        };
        let stderr = dir.join(format!("run-{index}.stderr"));
        let run = run_ossup_fed(
            bins.ossup,
            &args,
            &stderr,
            &mut mock,
            net,
            step.interruption,
            Some(feed),
        )?;
        outcome.counts.runs += 1;
        outcome.counts.server_restarts += run.server_restarts;
        for stats in &run.stats_before_server_kills {
            add_stats(outcome, stats);
        }
        log_run(&log, index, step.interruption, &run);
        match run.end {
            End::Exited(0) => {
                check_completed(index, &run.events, &data, outcome);
                whole_completed = step.input == Input::Whole;
            }
            End::Exited(1) => {
                outcome.counts.error_exits += 1;
                if let Some(error) = run.events.iter().rev().find(|e| e["event"] == "error") {
                    outcome
                        .run_errors
                        .push(report::mask(error["message"].as_str().unwrap_or_default()));
                }
            }
            _ => {
                if !count_other_end(index, &run, outcome) {
                    break;
                }
            }
        }
        if !planned && index >= plan.steps.len() + SPARE_RUNS - 1 {
            break;
        }
    }
    let stats = net.stats(&mock.endpoint())?;
    add_stats(outcome, &stats);
    let whole = plan.bytes(Input::Whole);
    if !whole_completed {
        outcome.failures.push(format!(
            "no run with the whole stream exited 0 in {} runs",
            outcome.counts.runs
        ));
        return Ok(());
    }
    net.clear_faults(&mock.endpoint())?;
    let found = net.verify(
        &mock.endpoint(),
        KEY,
        &Digest::of(&whole),
        plan.store,
        &checkpoints,
    );
    outcome.failures.extend(found.failures);
    if !found.open_uploads.is_empty() {
        outcome.failures.push(format!(
            "multipart uploads left open: {:?}",
            found.open_uploads
        ));
    }
    append(
        &log,
        &format!("verified: {} failures\n", outcome.failures.len()),
    );
    Ok(())
}

/// A run that exited 0 stored exactly the bytes it read: its `completed` line must give their
/// size and CRC-64 (which ossup checked against the server's).
fn check_completed(index: usize, events: &[Value], data: &[u8], outcome: &mut Outcome) {
    let Some(done) = events.iter().find(|e| e["event"] == "completed") else {
        outcome
            .failures
            .push(format!("run {index} exited 0 without a completed line"));
        return;
    };
    let size = done["size"].as_u64();
    let crc = done["crc64"].as_str().and_then(|c| c.parse::<u64>().ok());
    if size != Some(data.len() as u64) || crc != Some(crc64(data)) {
        outcome.failures.push(format!(
            "run {index} read {} bytes (CRC-64 {}) but completed an object of {size:?} bytes with CRC-64 {crc:?}",
            data.len(),
            crc64(data)
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_plan_and_every_kind_of_run_appears() {
        for seed in 0..50 {
            let a = StreamPlan::generate(seed, 2 << 20, true);
            let b = StreamPlan::generate(seed, 2 << 20, true);
            assert_eq!(a.describe(), b.describe());
            assert_eq!(a.steps, b.steps);
            assert!(a.size <= 2 << 20 && a.size > 0);
        }
        let plans: Vec<StreamPlan> = (0..300)
            .map(|s| StreamPlan::generate(s, 2 << 20, true))
            .collect();
        let any = |f: &dyn Fn(&Step) -> bool| plans.iter().any(|p| p.steps.iter().any(f));
        assert!(any(&|s| matches!(s.input, Input::WriterDies(_))));
        assert!(any(&|s| matches!(s.input, Input::Changed(0))));
        assert!(any(&|s| matches!(s.input, Input::Changed(p) if p > 0)));
        assert!(any(&|s| matches!(
            s.interruption,
            Some(Interruption::Server { .. })
        )));
    }

    #[test]
    fn a_changed_stream_differs_in_one_byte_and_a_dying_writer_cuts_it() {
        let plan = StreamPlan::generate(3, 1 << 20, false);
        let whole = plan.bytes(Input::Whole);
        let changed = plan.bytes(Input::Changed(1));
        assert_eq!(whole.len(), changed.len());
        assert_eq!(
            whole.iter().zip(&changed).filter(|(a, b)| a != b).count(),
            1
        );
        assert_eq!(plan.bytes(Input::WriterDies(10)), whole[..10]);
    }
}
