//! The live rules of a server: which request each matches, and the seeded decision of whether it
//! fires.
//!
//! All rules sit behind one mutex, held only for the decision (a few comparisons and at most one
//! draw per rule), so concurrent requests are decided one after another: the same sequence of
//! requests meets the same sequence of decisions, and with seeds, fires the same faults.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use tokio::sync::watch;

use super::rule::{FaultAction, FaultRule, FaultRuleError, validate_all};
use crate::route::RequestContext;

/// What one rule has done since it was set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleReport {
    /// The rule's position in the list, from 0.
    pub index: usize,
    /// Its action's kind.
    pub kind: &'static str,
    /// The seed of its generator (the one given, or the one the server picked).
    pub seed: u64,
    /// Requests that met its matchers.
    pub matched: u64,
    /// Requests it fired on.
    pub fired: u64,
}

/// A rule that fired on a request: its index and what to do.
#[derive(Debug, Clone)]
pub(crate) struct Firing {
    pub index: usize,
    pub action: FaultAction,
}

#[derive(Debug)]
struct ArmedRule {
    rule: FaultRule,
    seed: u64,
    rng: ChaCha8Rng,
    matched: u64,
    fired: u64,
}

impl ArmedRule {
    fn new(mut rule: FaultRule) -> Self {
        let seed = rule.seed.unwrap_or_else(rand::random);
        rule.seed = Some(seed);
        Self {
            rule,
            seed,
            rng: ChaCha8Rng::seed_from_u64(seed),
            matched: 0,
            fired: 0,
        }
    }

    fn matches(&self, ctx: &RequestContext) -> bool {
        let rule = &self.rule;
        rule.api.is_none_or(|api| api == ctx.api)
            && rule.part_number.is_none_or(|n| {
                ctx.part_number().and_then(|p| p.trim().parse::<u32>().ok()) == Some(n)
            })
            && rule
                .key_prefix
                .as_deref()
                .is_none_or(|prefix| ctx.key.as_deref().is_some_and(|k| k.starts_with(prefix)))
    }

    /// Counts a matching request and decides whether the rule fires on it.
    fn decide(&mut self) -> bool {
        self.matched += 1;
        if self.matched < self.rule.nth.unwrap_or(1) || self.fired >= self.rule.fire_limit() {
            return false;
        }
        // The draw happens for every request the rule may fire on, so the sequence of draws (and
        // of faults) depends only on the sequence of matching requests.
        let fires = match self.rule.probability {
            Some(p) => self.rng.gen_bool(p),
            None => true,
        };
        if fires {
            self.fired += 1;
        }
        fires
    }
}

/// The fault rules of one server, with their counters and the signal that ends stalled requests.
#[derive(Debug)]
pub(crate) struct Faults {
    rules: Mutex<Vec<ArmedRule>>,
    /// Requests being stalled right now.
    stalled: AtomicU64,
    closed: watch::Sender<bool>,
}

impl Faults {
    /// No rules.
    pub(crate) fn new() -> Self {
        Self {
            rules: Mutex::new(Vec::new()),
            stalled: AtomicU64::new(0),
            closed: watch::Sender::new(false),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<ArmedRule>> {
        self.rules.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Replaces every rule (and their counters) with `rules`, after checking them all.
    pub(crate) fn set(&self, rules: Vec<FaultRule>) -> Result<(), FaultRuleError> {
        validate_all(&rules)?;
        *self.lock() = rules.into_iter().map(ArmedRule::new).collect();
        Ok(())
    }

    /// Removes every rule.
    pub(crate) fn clear(&self) {
        self.lock().clear();
    }

    /// The rules in force, each with the seed it runs with.
    pub(crate) fn rules(&self) -> Vec<FaultRule> {
        self.lock().iter().map(|r| r.rule.clone()).collect()
    }

    /// What each rule has done.
    pub(crate) fn report(&self) -> Vec<RuleReport> {
        self.lock()
            .iter()
            .enumerate()
            .map(|(index, r)| RuleReport {
                index,
                kind: r.rule.action.kind(),
                seed: r.seed,
                matched: r.matched,
                fired: r.fired,
            })
            .collect()
    }

    /// The rule that fires on this request, if any. Rules are consulted in order until one fires;
    /// each rule consulted counts the request if it matches; the rules after the one that fired do
    /// not see the request.
    pub(crate) fn decide(&self, ctx: &RequestContext) -> Option<Firing> {
        let mut rules = self.lock();
        for (index, armed) in rules.iter_mut().enumerate() {
            if armed.matches(ctx) && armed.decide() {
                return Some(Firing {
                    index,
                    action: armed.rule.action.clone(),
                });
            }
        }
        None
    }

    /// Requests stalled right now.
    pub(crate) fn stalled_now(&self) -> u64 {
        self.stalled.load(Ordering::Relaxed)
    }

    /// Marks one request as stalled until the guard is dropped.
    pub(crate) fn stall_guard(&self) -> StallGuard<'_> {
        self.stalled.fetch_add(1, Ordering::Relaxed);
        StallGuard(&self.stalled)
    }

    /// Resolves once the server is stopping.
    pub(crate) async fn closed(&self) {
        let mut closed = self.closed.subscribe();
        let _ = closed.wait_for(|closed| *closed).await;
    }

    /// Tells every stalled request that the server is stopping.
    pub(crate) fn close(&self) {
        self.closed.send_replace(true);
    }
}

/// Counts a stalled request for as long as it lives (hyper drops it when the client disconnects).
#[derive(Debug)]
pub(crate) struct StallGuard<'a>(&'a AtomicU64);

impl Drop for StallGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::Addressing;
    use ossup_proto::Api;

    fn ctx(api: Api, key: Option<&str>, part: Option<u32>) -> RequestContext {
        RequestContext {
            request_id: "R".into(),
            host_id: "h".into(),
            method: http::Method::PUT,
            addressing: Addressing::PathStyle,
            api,
            bucket: "bucket".into(),
            key: key.map(str::to_owned),
            query: part
                .map(|n| vec![("partNumber".to_owned(), n.to_string())])
                .unwrap_or_default(),
        }
    }

    fn fired(faults: &Faults, requests: &[RequestContext]) -> Vec<Option<usize>> {
        requests
            .iter()
            .map(|c| faults.decide(c).map(|f| f.index))
            .collect()
    }

    #[test]
    fn matchers_narrow_by_api_part_number_and_key_prefix() {
        let faults = Faults::new();
        faults
            .set(vec![
                FaultRule::new(FaultAction::Stall)
                    .api(Api::UploadPart)
                    .part_number(3)
                    .key_prefix("big/"),
            ])
            .unwrap();
        let requests = [
            ctx(Api::UploadPart, Some("big/a"), Some(3)),
            ctx(Api::UploadPart, Some("big/a"), Some(2)),
            ctx(Api::UploadPart, Some("small/a"), Some(3)),
            ctx(Api::ListParts, Some("big/a"), Some(3)),
            ctx(Api::ListMultipartUploads, None, None),
        ];
        assert_eq!(fired(&faults, &requests), [Some(0), None, None, None, None]);
        assert_eq!(faults.report()[0].matched, 1);
    }

    #[test]
    fn nth_alone_fires_once_on_exactly_the_nth_match() {
        let faults = Faults::new();
        faults
            .set(vec![FaultRule::new(FaultAction::Stall).nth(2)])
            .unwrap();
        let requests: Vec<_> = (0..5)
            .map(|_| ctx(Api::PutObject, Some("k"), None))
            .collect();
        assert_eq!(fired(&faults, &requests), [None, Some(0), None, None, None]);
    }

    #[test]
    fn nth_with_times_fires_on_that_many_consecutive_matches() {
        let faults = Faults::new();
        faults
            .set(vec![FaultRule::new(FaultAction::Stall).nth(2).times(3)])
            .unwrap();
        let requests: Vec<_> = (0..6)
            .map(|_| ctx(Api::PutObject, Some("k"), None))
            .collect();
        assert_eq!(
            fired(&faults, &requests),
            [None, Some(0), Some(0), Some(0), None, None]
        );
    }

    #[test]
    fn the_same_seed_fires_on_the_same_requests_and_another_seed_differs() {
        let run = |seed| {
            let faults = Faults::new();
            faults
                .set(vec![
                    FaultRule::new(FaultAction::Stall)
                        .probability(0.3)
                        .seed(seed),
                ])
                .unwrap();
            let requests: Vec<_> = (0..64)
                .map(|_| ctx(Api::UploadPart, Some("k"), Some(1)))
                .collect();
            fired(&faults, &requests)
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
        let fires = run(7).iter().filter(|f| f.is_some()).count();
        assert!((5..=35).contains(&fires), "{fires} of 64 at p = 0.3");
    }

    #[test]
    fn the_first_rule_that_fires_acts_and_later_rules_do_not_see_the_request() {
        let faults = Faults::new();
        faults
            .set(vec![
                FaultRule::new(FaultAction::Stall).times(1),
                FaultRule::new(FaultAction::ResetBeforeBody),
            ])
            .unwrap();
        let requests: Vec<_> = (0..3)
            .map(|_| ctx(Api::PutObject, Some("k"), None))
            .collect();
        assert_eq!(fired(&faults, &requests), [Some(0), Some(1), Some(1)]);
        let report = faults.report();
        assert_eq!((report[0].matched, report[0].fired), (3, 1));
        assert_eq!((report[1].matched, report[1].fired), (2, 2));
    }

    #[test]
    fn a_rule_without_a_seed_reports_the_one_it_picked() {
        let faults = Faults::new();
        faults
            .set(vec![FaultRule::new(FaultAction::Stall).probability(0.5)])
            .unwrap();
        let seed = faults.report()[0].seed;
        assert_eq!(faults.rules()[0].seed, Some(seed));
    }

    #[test]
    fn setting_rules_refuses_a_bad_list_and_keeps_the_old_one() {
        let faults = Faults::new();
        faults
            .set(vec![FaultRule::new(FaultAction::Stall)])
            .unwrap();
        let err = faults
            .set(vec![FaultRule::new(FaultAction::Stall).probability(1.5)])
            .unwrap_err();
        assert_eq!(err.index, Some(0));
        assert_eq!(faults.rules().len(), 1);
        assert_eq!(faults.rules()[0].probability, None);
    }
}
