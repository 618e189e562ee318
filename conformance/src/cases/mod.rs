//! Every conformance case, in the order the suite runs them.

mod addressing;
mod auth;
mod buckets;
mod list_uploads;
mod multipart;
mod objects;
mod robustness;
mod sts_callback;

use crate::case::Case;

/// Every case: multipart APIs, ListMultipartUploads, objects, buckets, authentication, addressing and
/// keys, hostile input, then upload callbacks and temporary credentials.
pub fn all() -> Vec<Case> {
    [
        multipart::cases(),
        list_uploads::cases(),
        objects::cases(),
        buckets::cases(),
        auth::cases(),
        addressing::cases(),
        robustness::cases(),
        sts_callback::cases(),
    ]
    .concat()
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use ossup_proto::Api;

    use super::*;

    #[test]
    fn there_are_at_least_40_cases_with_unique_names_and_descriptions() {
        let cases = all();
        assert!(cases.len() >= 40, "only {} cases", cases.len());
        let names: HashSet<&str> = cases.iter().map(|c| c.name).collect();
        assert_eq!(names.len(), cases.len(), "duplicate case names");
        for case in &cases {
            assert!(
                !case.checks.trim().is_empty(),
                "{} says nothing about what it checks",
                case.name
            );
        }
    }

    #[test]
    fn every_api_of_the_issue_has_a_case() {
        let covered: HashSet<Api> = all().iter().map(|c| c.api).collect();
        for api in Api::ALL {
            if api != Api::ListObjects {
                assert!(covered.contains(&api), "no case exercises {api}");
            }
        }
    }
}
