//! The summary of a chaos run: one table of totals, one of faults by kind, and every failure with
//! the command that reproduces it.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

use super::iteration::{Outcome, RunCounts};
use super::plan::{Plan, Rule};
use super::tree::TreeCounts;

/// What the summary needs of an iteration's plan, a file's or a tree's.
pub(super) trait Planned {
    /// The seed it was drawn from.
    fn seed(&self) -> u64;
    /// The bytes it uploads.
    fn bytes(&self) -> u64;
    /// Its parts in all (a file put whole is one).
    fn parts(&self) -> u64;
    /// The server's fault rules.
    fn rules(&self) -> &[Rule];
    /// A one-line description for the log.
    fn describe(&self) -> String;
}

impl Planned for Plan {
    fn seed(&self) -> u64 {
        self.seed
    }

    fn bytes(&self) -> u64 {
        self.size
    }

    fn parts(&self) -> u64 {
        Plan::parts(self)
    }

    fn rules(&self) -> &[Rule] {
        &self.rules
    }

    fn describe(&self) -> String {
        Plan::describe(self)
    }
}

/// One failed iteration.
#[derive(Debug)]
pub(super) struct FailedIteration {
    /// Its seed.
    pub seed: u64,
    /// What it did.
    pub plan: String,
    /// What went wrong.
    pub failures: Vec<String>,
    /// Where its files were kept.
    pub dir: String,
}

/// Totals over every iteration.
#[derive(Debug, Default)]
pub(super) struct Totals {
    /// Iterations run.
    pub iterations: u32,
    /// Bytes uploaded (file sizes).
    pub bytes: u64,
    /// Parts in all.
    pub parts: u64,
    /// What the runs came to.
    pub counts: RunCounts,
    /// What the tree iterations counted beside.
    pub tree: TreeCounts,
    /// What the fleet iterations counted beside.
    pub fleet: super::fleet::FleetCounts,
    /// Fault rules planned, per kind.
    pub rules: BTreeMap<String, u64>,
    /// Faults fired, per kind.
    pub fired: BTreeMap<String, u64>,
    /// Why runs ended with an error (and were resumed), by message with numbers and ids masked.
    pub run_errors: BTreeMap<String, u64>,
    /// The failed iterations.
    pub failed: Vec<FailedIteration>,
    /// Wall time.
    pub elapsed: Duration,
}

impl Totals {
    /// Adds one iteration.
    pub(super) fn add(&mut self, plan: &dyn Planned, outcome: &Outcome, dir: &str) {
        self.iterations += 1;
        self.bytes += plan.bytes();
        self.parts += plan.parts();
        self.counts.add(&outcome.counts);
        self.tree.add(&outcome.tree);
        self.fleet.add(&outcome.fleet);
        for rule in plan.rules() {
            *self.rules.entry(rule.kind.to_owned()).or_default() += 1;
        }
        for (kind, n) in &outcome.faults_fired {
            *self.fired.entry(kind.clone()).or_default() += n;
        }
        for message in &outcome.run_errors {
            *self.run_errors.entry(mask(message)).or_default() += 1;
        }
        if !outcome.failures.is_empty() {
            self.failed.push(FailedIteration {
                seed: plan.seed(),
                plan: plan.describe(),
                failures: outcome.failures.clone(),
                dir: dir.to_owned(),
            });
        }
    }

    /// The summary, as markdown: `rows` of measures (see [`Totals::file_rows`]), then the
    /// faults, errors and failures. `reproduce` turns a seed into the command that runs that
    /// iteration alone.
    pub(super) fn table(
        &self,
        title: &str,
        rows: &[(&str, String)],
        reproduce: impl Fn(u64) -> String,
    ) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "\n## {title}\n");
        let _ = writeln!(out, "| measure | value |\n|---|---|");
        for (name, value) in rows {
            let _ = writeln!(out, "| {name} | {value} |");
        }
        let _ = writeln!(
            out,
            "\n| fault kind | rules planned | fired |\n|---|---|---|"
        );
        let kinds: std::collections::BTreeSet<&String> =
            self.rules.keys().chain(self.fired.keys()).collect();
        for kind in kinds {
            let _ = writeln!(
                out,
                "| {kind} | {} | {} |",
                self.rules.get(kind).copied().unwrap_or(0),
                self.fired.get(kind).copied().unwrap_or(0)
            );
        }
        if !self.run_errors.is_empty() {
            let _ = writeln!(
                out,
                "\n| why a run ended with an error, or a file of a tree failed (then run again) | times |\n|---|---|"
            );
            let mut errors: Vec<(&String, &u64)> = self.run_errors.iter().collect();
            errors.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
            for (message, n) in errors {
                let _ = writeln!(out, "| {} | {n} |", message.replace('|', "\\|"));
            }
        }
        if !self.failed.is_empty() {
            let _ = writeln!(out, "\n### failures\n");
            for failed in &self.failed {
                let _ = writeln!(out, "- seed {}: {}", failed.seed, failed.plan);
                for failure in &failed.failures {
                    let _ = writeln!(out, "  - {}", failure.replace('\n', "\n    "));
                }
                let _ = writeln!(out, "  - files kept in {}", failed.dir);
                let _ = writeln!(out, "  - reproduce: `{}`", reproduce(failed.seed));
            }
        }
        out
    }

    /// The measures of file iterations.
    pub(super) fn file_rows(&self) -> Vec<(&'static str, String)> {
        let passed = self.iterations as usize - self.failed.len();
        vec![
            (
                "iterations",
                format!(
                    "{} ({passed} passed, {} failed)",
                    self.iterations,
                    self.failed.len()
                ),
            ),
            (
                "data uploaded",
                format!("{} in {} parts", size(self.bytes), self.parts),
            ),
            (
                "ossup runs",
                format!(
                    "{} ({} ended with an error and were resumed; {} began a fresh upload)",
                    self.counts.runs, self.counts.error_exits, self.counts.fresh_starts
                ),
            ),
            (
                "ossup killed (SIGKILL)",
                format!(
                    "{} planned, {} while a stalled request held them",
                    self.counts.kills, self.counts.watchdog_kills
                ),
            ),
            (
                "server killed (SIGKILL) and restarted",
                self.counts.server_restarts.to_string(),
            ),
            (
                "acknowledged parts sent again",
                format!(
                    "{} (plus {} where a corrupted listing made it right)",
                    size(self.counts.resent_acked_bytes),
                    size(self.counts.resent_excused_bytes)
                ),
            ),
            (
                "bytes re-sent: body bytes the server read beyond the file sizes",
                format!(
                    "{} (retries after faults, parts in flight at a kill)",
                    size(self.counts.received_beyond_size)
                ),
            ),
            ("time", format!("{:.0} s", self.elapsed.as_secs_f64())),
        ]
    }
}

/// A message with its numbers, ids and ports replaced by `#`, so that messages of one kind count
/// together.
pub(super) fn mask(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut token = String::new();
    let flush = |token: &mut String, out: &mut String| {
        let numeric = token.chars().any(|c| c.is_ascii_digit())
            && token.chars().all(|c| c.is_ascii_hexdigit());
        out.push_str(if numeric { "#" } else { token });
        token.clear();
    };
    for c in message.chars() {
        if c.is_ascii_alphanumeric() {
            token.push(c);
        } else {
            flush(&mut token, &mut out);
            out.push(c);
        }
    }
    flush(&mut token, &mut out);
    // Addresses and versions (`127.0.0.1:8080`) become one `#`.
    while let Some(joined) = ["#.#", "#:#"]
        .iter()
        .find_map(|p| out.contains(p).then(|| out.replacen(p, "#", 1)))
    {
        out = joined;
    }
    out
}

/// Bytes, in the largest binary unit that keeps a whole number in front.
pub(super) fn size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_in_binary_units() {
        assert_eq!(size(0), "0 B");
        assert_eq!(size(1023), "1023 B");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(5 << 20), "5.0 MiB");
    }

    #[test]
    fn masking_keeps_the_words_and_hides_numbers_and_ids() {
        assert_eq!(
            mask("part 7 of upload 000660D4AB failed at 127.0.0.1:38703"),
            "part # of upload # failed at #"
        );
        assert_eq!(mask("no digits here"), "no digits here");
    }

    #[test]
    fn a_failure_is_listed_with_the_command_that_reproduces_it() {
        let plan = Plan::generate(7, 1 << 20, false);
        let mut totals = Totals::default();
        let outcome = Outcome {
            failures: vec!["WRONG OBJECT".to_owned()],
            ..Outcome::default()
        };
        totals.add(&plan, &outcome, "target/chaos/7");
        let table = totals.table("chaos", &totals.file_rows(), |seed| {
            format!("cargo xtask chaos --seed {seed}")
        });
        assert!(
            table.contains("| iterations | 1 (0 passed, 1 failed) |"),
            "{table}"
        );
        assert!(table.contains("  - WRONG OBJECT"), "{table}");
        assert!(table.contains("`cargo xtask chaos --seed 7`"), "{table}");
    }
}
