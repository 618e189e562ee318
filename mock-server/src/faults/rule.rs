//! The fault rule format: what a rule matches, when it fires, and what it does. Rules are JSON (the
//! same document for `oss-mock --faults FILE`, `PUT /_mock/faults` and [`MockServer::set_faults`]) or
//! built in Rust.
//!
//! [`MockServer::set_faults`]: crate::MockServer::set_faults

use std::fmt;

use ossup_proto::Api;
use serde::de::{self, Deserializer};
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};

/// The name of every action kind, as `"kind"` spells it in JSON, in the order the stats list them.
pub const FAULT_KINDS: [&str; 13] = [
    "error",
    "delay",
    "reset_before_body",
    "reset_mid_body",
    "reset_after_commit",
    "truncate_response",
    "throttle",
    "stall",
    "corrupt_etag",
    "corrupt_crc",
    "expire_upload",
    "skew_clock",
    "straggle",
];

/// The largest clock error `skew_clock` may pretend: a century, so that the skewed time is still a
/// date an HTTP header can carry.
const MAX_SKEW_SECS: u64 = 100 * 365 * 24 * 3600;

/// One fault rule: which requests it matches, when it fires among them, and what it does then.
///
/// Every matcher is optional; a rule without matchers matches every request. Of the requests a rule
/// matches, it fires on the [`nth`](Self::nth) and later ones, each with [`probability`](Self::probability)
/// (drawn from a generator seeded with [`seed`](Self::seed)), at most [`times`](Self::times) times.
/// `docs/fault-injection.md` describes each action on the wire.
///
/// ```
/// use oss_mock::{FaultAction, FaultRule};
/// use ossup_proto::Api;
///
/// let rule: FaultRule = serde_json::from_str(r#"{"api": "UploadPart", "part_number": 3, "key_prefix": "big/",
///     "nth": 2, "probability": 0.1, "seed": 7, "times": 5,
///     "action": {"kind": "error", "status": 503, "code": "ServiceUnavailable"}}"#).unwrap();
/// assert_eq!(rule, FaultRule::new(FaultAction::error(503, "ServiceUnavailable"))
///     .api(Api::UploadPart)
///     .part_number(3)
///     .key_prefix("big/")
///     .nth(2)
///     .probability(0.1)
///     .seed(7)
///     .times(5));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultRule {
    /// The API the request must call; `None` (JSON: absent or `"*"`) matches every API.
    #[serde(
        default,
        serialize_with = "serialize_api",
        deserialize_with = "deserialize_api"
    )]
    pub api: Option<Api>,
    /// The `partNumber` the request must carry (UploadPart); requests without one do not match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part_number: Option<u32>,
    /// The start of the object key; requests on no object (bucket APIs such as
    /// ListMultipartUploads) do not match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_prefix: Option<String>,
    /// The first matching request (1-based) the rule may fire on; earlier matches pass untouched.
    /// Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nth: Option<u64>,
    /// The chance, from 0 to 1, that the rule fires on a request it may fire on. Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probability: Option<f64>,
    /// The seed of the rule's own random generator. Without one the server picks a seed, which
    /// `GET /_mock/faults` and [`MockServer::faults`](crate::MockServer::faults) report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// How many times the rule fires at most. Default: once when `nth` is given, else unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub times: Option<u64>,
    /// What the server does to a request the rule fires on.
    pub action: FaultAction,
}

/// What a fired rule does to the request. The JSON form is an object whose `"kind"` names the
/// action, with the action's fields beside it: `{"kind": "delay", "ms": 200}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum FaultAction {
    /// Answer an OSS error document with this status and code instead of the work (the request has
    /// been authenticated); nothing is done.
    Error {
        /// The HTTP status, 300 to 599.
        status: u16,
        /// The `<Code>` of the error document, e.g. `ServiceUnavailable`.
        code: String,
        /// The `<Message>`; a default naming the rule when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    /// Do the work, then wait this long before answering.
    Delay {
        /// Milliseconds to wait.
        ms: u64,
    },
    /// Close the connection without reading the request body or answering; nothing is done.
    ResetBeforeBody,
    /// Read this many bytes of the body (or all of a shorter one), then close the connection without
    /// answering; nothing is stored.
    ResetMidBody {
        /// Body bytes read before the connection is closed.
        after_bytes: u64,
    },
    /// Do the work (store the part, complete the upload, …), then close the connection instead of
    /// answering: the client never learns that it succeeded.
    ResetAfterCommit,
    /// Do the work, send the status, the headers and only this many bytes of the body, then close the
    /// connection. An answer with no more body than that is sent whole.
    TruncateResponse {
        /// Body bytes sent before the connection is closed.
        bytes: u64,
    },
    /// Read the request body at most this fast, then do the work and answer normally.
    Throttle {
        /// The reading rate, at least 1.
        bytes_per_sec: u64,
    },
    /// Read the request body, then never answer. The request ends when the client disconnects or the
    /// server stops; nothing is done.
    Stall,
    /// Do the work, then answer with a wrong ETag: the `ETag` header, and the `<ETag>` elements of a
    /// ListParts or CompleteMultipartUpload answer.
    CorruptEtag,
    /// Do the work, then answer with a wrong CRC-64: the `x-oss-hash-crc64ecma` header, and the
    /// `<HashCrc64ecma>` elements of a ListParts answer.
    CorruptCrc,
    /// Abort the multipart upload the request names (its parts are gone), then answer 404
    /// NoSuchUpload.
    ExpireUpload,
    /// Answer 403 RequestTimeTooSkewed as if the server's clock were this many seconds ahead (behind,
    /// when negative): `<ServerTime>` and the `Date` header carry the skewed time.
    SkewClock {
        /// The pretended clock error, in seconds.
        seconds: i64,
    },
    /// Make the request's body crawl, or with `connection`, every body its connection carries from
    /// now on (a straggler: one slow TCP flow among fast ones). Give exactly one of `percent` and
    /// `bytes_per_sec`. Then the work is done and answered normally.
    Straggle {
        /// The crawl as a share, 1 to 100 %, of the connection's bandwidth (`--conn-bandwidth`), or
        /// of the link's (`--link-bandwidth`) without one. With neither, the request is not slowed
        /// (the mock logs a warning).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        percent: Option<u8>,
        /// The crawl in bytes per second, at least 1.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bytes_per_sec: Option<u64>,
        /// Whether the whole connection crawls, for every request it carries from this one on,
        /// rather than this request alone. Default false.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        connection: bool,
    },
}

impl FaultAction {
    /// An `error` action with the code's default message.
    pub fn error(status: u16, code: impl Into<String>) -> Self {
        FaultAction::Error {
            status,
            code: code.into(),
            message: None,
        }
    }

    /// The action's `"kind"`, one of [`FAULT_KINDS`].
    ///
    /// ```
    /// assert_eq!(oss_mock::FaultAction::Stall.kind(), "stall");
    /// ```
    pub fn kind(&self) -> &'static str {
        FAULT_KINDS[self.kind_index()]
    }

    pub(crate) fn kind_index(&self) -> usize {
        match self {
            FaultAction::Error { .. } => 0,
            FaultAction::Delay { .. } => 1,
            FaultAction::ResetBeforeBody => 2,
            FaultAction::ResetMidBody { .. } => 3,
            FaultAction::ResetAfterCommit => 4,
            FaultAction::TruncateResponse { .. } => 5,
            FaultAction::Throttle { .. } => 6,
            FaultAction::Stall => 7,
            FaultAction::CorruptEtag => 8,
            FaultAction::CorruptCrc => 9,
            FaultAction::ExpireUpload => 10,
            FaultAction::SkewClock { .. } => 11,
            FaultAction::Straggle { .. } => 12,
        }
    }
}

impl FaultRule {
    /// A rule doing `action` to every request; narrow it with the builder methods.
    pub fn new(action: FaultAction) -> Self {
        Self {
            api: None,
            part_number: None,
            key_prefix: None,
            nth: None,
            probability: None,
            seed: None,
            times: None,
            action,
        }
    }

    /// Matches only requests calling `api`.
    pub fn api(mut self, api: Api) -> Self {
        self.api = Some(api);
        self
    }

    /// Matches only requests carrying `partNumber=n`.
    pub fn part_number(mut self, n: u32) -> Self {
        self.part_number = Some(n);
        self
    }

    /// Matches only requests on a key starting with `prefix`.
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = Some(prefix.into());
        self
    }

    /// Fires from the `n`th matching request on (1-based).
    pub fn nth(mut self, n: u64) -> Self {
        self.nth = Some(n);
        self
    }

    /// Fires on each request it may fire on with this chance.
    pub fn probability(mut self, p: f64) -> Self {
        self.probability = Some(p);
        self
    }

    /// Seeds the rule's random generator.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Fires at most `n` times.
    pub fn times(mut self, n: u64) -> Self {
        self.times = Some(n);
        self
    }

    /// The most times the rule fires: `times`, else once with `nth`, else unlimited.
    pub fn fire_limit(&self) -> u64 {
        match (self.times, self.nth) {
            (Some(times), _) => times,
            (None, Some(_)) => 1,
            (None, None) => u64::MAX,
        }
    }

    /// Checks the values a rule's format cannot express alone: a probability outside 0..=1, an `nth`
    /// or `times` of 0, an error status outside 300..=599 or an empty code, a throttle of 0 bytes per
    /// second.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(p) = self.probability
            && !(0.0..=1.0).contains(&p)
        {
            return Err(format!("probability {p} is not between 0 and 1"));
        }
        if self.nth == Some(0) {
            return Err("nth is 1-based: the first matching request is nth 1, not 0".to_owned());
        }
        if self.times == Some(0) {
            return Err("times 0 would never fire; remove the rule instead".to_owned());
        }
        match &self.action {
            FaultAction::Error { status, code, .. } => {
                if !(300..=599).contains(status) {
                    return Err(format!(
                        "error status {status} is not an error status (use 300 to 599)"
                    ));
                }
                if code.trim().is_empty() {
                    return Err("error code is empty (e.g. \"ServiceUnavailable\")".to_owned());
                }
            }
            FaultAction::SkewClock { seconds } if seconds.unsigned_abs() > MAX_SKEW_SECS => {
                return Err(format!(
                    "skew_clock seconds {seconds} is more than a century off (the limit is {MAX_SKEW_SECS})"
                ));
            }
            FaultAction::Straggle {
                percent,
                bytes_per_sec,
                ..
            } => match (percent, bytes_per_sec) {
                (Some(p), None) if (1..=100).contains(p) => {}
                (Some(p), None) => {
                    return Err(format!("straggle percent {p} is not between 1 and 100"));
                }
                (None, Some(rate)) if *rate > 0 => {}
                (None, Some(_)) => {
                    return Err(
                        "straggle bytes_per_sec is 0, which would never read the body (use stall)"
                            .to_owned(),
                    );
                }
                _ => {
                    return Err(
                        "straggle needs exactly one of percent (of the connection's bandwidth) and bytes_per_sec"
                            .to_owned(),
                    );
                }
            },
            FaultAction::Throttle { bytes_per_sec: 0 } => {
                return Err(
                    "throttle bytes_per_sec is 0, which would never read the body (use stall)"
                        .to_owned(),
                );
            }
            _ => {}
        }
        Ok(())
    }
}

/// Why a list of fault rules was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultRuleError {
    /// The index of the rule at fault, when one rule is.
    pub index: Option<usize>,
    /// What is wrong.
    pub reason: String,
}

impl fmt::Display for FaultRuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.index {
            Some(i) => write!(f, "fault rule {i}: {}", self.reason),
            None => write!(f, "fault rules: {}", self.reason),
        }
    }
}

impl std::error::Error for FaultRuleError {}

/// Parses a JSON array of fault rules and checks each.
///
/// ```
/// let rules = oss_mock::parse_fault_rules(br#"[{"api": "*", "action": {"kind": "delay", "ms": 5}}]"#).unwrap();
/// assert_eq!(rules[0].action.kind(), "delay");
/// let err = oss_mock::parse_fault_rules(br#"[{"action": {"kind": "delay", "ms": 5}, "probability": 2}]"#)
///     .unwrap_err();
/// assert_eq!(err.to_string(), "fault rule 0: probability 2 is not between 0 and 1");
/// ```
pub fn parse_fault_rules(json: &[u8]) -> Result<Vec<FaultRule>, FaultRuleError> {
    let rules: Vec<FaultRule> = serde_json::from_slice(json).map_err(|e| FaultRuleError {
        index: None,
        reason: format!(
            "not a JSON array of rules ({e}); a rule looks like {{\"api\": \"UploadPart\", \"action\": {{\"kind\": \"error\", \"status\": 503, \"code\": \"ServiceUnavailable\"}}}}"
        ),
    })?;
    validate_all(&rules)?;
    Ok(rules)
}

/// Checks every rule of a list.
pub(crate) fn validate_all(rules: &[FaultRule]) -> Result<(), FaultRuleError> {
    for (index, rule) in rules.iter().enumerate() {
        rule.validate().map_err(|reason| FaultRuleError {
            index: Some(index),
            reason,
        })?;
    }
    Ok(())
}

fn serialize_api<S: Serializer>(api: &Option<Api>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(api.map_or("*", Api::name))
}

fn deserialize_api<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Api>, D::Error> {
    let name = String::deserialize(deserializer)?;
    if name == "*" {
        return Ok(None);
    }
    name.parse::<Api>().map(Some).map_err(|_| {
        de::Error::custom(format!(
            "unknown api {name:?}; use \"*\" or one of {}",
            Api::ALL.map(Api::name).join(", ")
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_issue_example_parses_and_round_trips() {
        let json = r#"{"api": "UploadPart", "part_number": 3, "key_prefix": "big/", "nth": 2, "probability": 0.1, "seed": 7, "times": 5,
            "action": {"kind": "error", "status": 503, "code": "ServiceUnavailable"}}"#;
        let rule: FaultRule = serde_json::from_str(json).unwrap();
        assert_eq!(rule.api, Some(Api::UploadPart));
        assert_eq!(rule.fire_limit(), 5);
        let again: FaultRule =
            serde_json::from_str(&serde_json::to_string(&rule).unwrap()).unwrap();
        assert_eq!(again, rule);
    }

    #[test]
    fn every_action_kind_parses_from_its_documented_form() {
        let actions = [
            r#"{"kind": "error", "status": 500, "code": "InternalError", "message": "boom"}"#,
            r#"{"kind": "delay", "ms": 10}"#,
            r#"{"kind": "reset_before_body"}"#,
            r#"{"kind": "reset_mid_body", "after_bytes": 100}"#,
            r#"{"kind": "reset_after_commit"}"#,
            r#"{"kind": "truncate_response", "bytes": 3}"#,
            r#"{"kind": "throttle", "bytes_per_sec": 1000}"#,
            r#"{"kind": "stall"}"#,
            r#"{"kind": "corrupt_etag"}"#,
            r#"{"kind": "corrupt_crc"}"#,
            r#"{"kind": "expire_upload"}"#,
            r#"{"kind": "skew_clock", "seconds": -3600}"#,
            r#"{"kind": "straggle", "percent": 1, "connection": true}"#,
        ];
        for (json, kind) in actions.iter().zip(FAULT_KINDS) {
            let action: FaultAction = serde_json::from_str(json).unwrap();
            assert_eq!(action.kind(), kind);
            let written = serde_json::to_value(&action).unwrap();
            assert_eq!(written["kind"], kind);
        }
    }

    #[test]
    fn an_absent_or_star_api_matches_any_and_an_unknown_one_is_named() {
        let any: FaultRule = serde_json::from_str(r#"{"action": {"kind": "stall"}}"#).unwrap();
        assert_eq!(any.api, None);
        let star: FaultRule =
            serde_json::from_str(r#"{"api": "*", "action": {"kind": "stall"}}"#).unwrap();
        assert_eq!(star.api, None);
        assert_eq!(serde_json::to_value(&star).unwrap()["api"], "*");
        let err = parse_fault_rules(br#"[{"api": "UploadParts", "action": {"kind": "stall"}}]"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown api \"UploadParts\""), "{err}");
        assert!(err.contains("UploadPart,"), "{err}");
    }

    #[test]
    fn misspelt_fields_are_refused_rather_than_ignored() {
        let err = parse_fault_rules(br#"[{"part": 3, "action": {"kind": "stall"}}]"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `part`"), "{err}");
        let err = parse_fault_rules(br#"[{"action": {"kind": "delay", "millis": 3}}]"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("millis"), "{err}");
    }

    #[test]
    fn values_the_format_cannot_express_are_refused_with_the_rule_index() {
        let cases = [
            (
                r#"{"nth": 0, "action": {"kind": "stall"}}"#,
                "nth is 1-based",
            ),
            (r#"{"times": 0, "action": {"kind": "stall"}}"#, "times 0"),
            (
                r#"{"probability": -0.5, "action": {"kind": "stall"}}"#,
                "probability -0.5",
            ),
            (
                r#"{"action": {"kind": "error", "status": 200, "code": "X"}}"#,
                "error status 200",
            ),
            (
                r#"{"action": {"kind": "error", "status": 503, "code": " "}}"#,
                "error code is empty",
            ),
            (
                r#"{"action": {"kind": "throttle", "bytes_per_sec": 0}}"#,
                "bytes_per_sec is 0",
            ),
            (
                r#"{"action": {"kind": "skew_clock", "seconds": -9000000000}}"#,
                "more than a century",
            ),
            (
                r#"{"action": {"kind": "straggle", "percent": 0}}"#,
                "straggle percent 0",
            ),
            (
                r#"{"action": {"kind": "straggle", "percent": 5, "bytes_per_sec": 10}}"#,
                "exactly one of",
            ),
            (r#"{"action": {"kind": "straggle"}}"#, "exactly one of"),
        ];
        for (rule, expected) in cases {
            let json = format!(r#"[{{"action": {{"kind": "stall"}}}}, {rule}]"#);
            let err = parse_fault_rules(json.as_bytes()).unwrap_err();
            assert_eq!(err.index, Some(1), "{rule}");
            assert!(err.reason.contains(expected), "{rule}: {err}");
        }
    }

    #[test]
    fn fire_limit_is_once_with_nth_and_unlimited_without() {
        let rule = FaultRule::new(FaultAction::Stall);
        assert_eq!(rule.clone().fire_limit(), u64::MAX);
        assert_eq!(rule.clone().nth(3).fire_limit(), 1);
        assert_eq!(rule.clone().nth(3).times(4).fire_limit(), 4);
        assert_eq!(rule.times(2).fire_limit(), 2);
    }
}
