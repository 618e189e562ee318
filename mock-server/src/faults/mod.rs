//! Fault injection: rules that make the server misbehave the way networks and servers do (errors,
//! delays, dropped connections before, during and after the work, cut-short and tampered answers,
//! slow reads, straggling connections, stalls, forgotten uploads, a skewed clock), on chosen
//! requests, reproducibly.
//!
//! A rule sees a request after routing and authentication, so any API can be made to misbehave
//! without touching its handler, and a request the server would refuse anyway (unsigned, wrongly
//! signed) never meets a rule: `expire_upload` aborts an upload, and only a client allowed to abort
//! it may cause that.
//!
//! ```text
//! route ─> auth ─> [rules decide: does one fire?] ─> before: error / reset / stall / expire / skew /
//!       throttle / straggle ─> handler ─> after: reset_after_commit / delay / corrupt / truncate ─> the wire
//! ```
//!
//! - `rule`: the JSON rule format ([`FaultRule`], [`FaultAction`]).
//! - `armed`: matching and the seeded decision to fire.
//! - `action`: what each action does at its point of the pipeline.
//!
//! Rules come from [`MockConfig::with_faults`](crate::MockConfig::with_faults) (`oss-mock --faults
//! FILE`), [`MockServer::set_faults`](crate::MockServer::set_faults), or `PUT /_mock/faults`.
//! `docs/fault-injection.md` is the reference.

pub(crate) mod action;
pub(crate) mod armed;
pub(crate) mod rule;

pub use armed::RuleReport;
pub use rule::{FAULT_KINDS, FaultAction, FaultRule, FaultRuleError, parse_fault_rules};
