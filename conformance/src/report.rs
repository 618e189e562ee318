//! The suite's report: a table, one case a row, and the closing `N passed, N failed` line.

use crate::runner::{CaseReport, Outcome};

const HEADERS: [&str; 4] = ["name", "API", "result", "detail"];

/// The word a report shows for an outcome.
pub fn result_word(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Passed => "pass",
        Outcome::Failed(_) => "FAIL",
        Outcome::Skipped(_) => "skip",
    }
}

/// The detail column: what a passed case checked, why a case failed or was skipped, on one line.
pub fn detail(report: &CaseReport) -> String {
    let text = match &report.outcome {
        Outcome::Passed => report.checks,
        Outcome::Failed(message) => message,
        Outcome::Skipped(reason) => reason,
    };
    one_line(text)
}

/// Newlines and tabs written as `\n` and `\t`, so a string to sign stays on its row.
fn one_line(text: &str) -> String {
    text.replace('\r', "\\r")
        .replace('\n', "\\n")
        .replace('\t', "\\t")
}

/// The table: a header row, a rule, and one row per case, `name | API | result | detail`.
///
/// ```
/// use std::time::Duration;
/// use ossup_conformance::report::table;
/// use ossup_conformance::runner::{CaseReport, Outcome};
/// let rows = [CaseReport {
///     name: "abort_then_list_parts_is_no_such_upload",
///     api: ossup_proto::Api::AbortMultipartUpload,
///     checks: "204, then 404 NoSuchUpload",
///     outcome: Outcome::Passed,
///     elapsed: Duration::from_millis(3),
/// }];
/// let text = table(&rows);
/// assert!(text.lines().nth(2).unwrap().starts_with("abort_then_list_parts_is_no_such_upload | AbortMultipartUpload | pass   | 204"));
/// ```
pub fn table(reports: &[CaseReport]) -> String {
    let rows: Vec<[String; 4]> = reports
        .iter()
        .map(|r| {
            [
                r.name.to_owned(),
                r.api.name().to_owned(),
                result_word(&r.outcome).to_owned(),
                detail(r),
            ]
        })
        .collect();
    let mut widths = HEADERS.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row).take(3) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; 4]| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i == 3 {
                out.push_str(cell);
            } else {
                out.push_str(cell);
                out.extend(std::iter::repeat_n(' ', widths[i] - cell.chars().count()));
                out.push_str(" | ");
            }
        }
        out.trim_end().to_owned()
    };
    let mut out = line(HEADERS);
    out.push('\n');
    let rule: Vec<String> = widths
        .iter()
        .enumerate()
        .map(|(i, w)| "-".repeat(if i == 3 { *w } else { w + 1 }))
        .collect();
    out.push_str(&rule.join("+-"));
    out.push('\n');
    for row in &rows {
        out.push_str(&line([&row[0], &row[1], &row[2], &row[3]]));
        out.push('\n');
    }
    out
}

/// How many cases passed, failed and were skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Totals {
    /// Cases that passed.
    pub passed: usize,
    /// Cases that failed.
    pub failed: usize,
    /// Cases that did not run against this target.
    pub skipped: usize,
}

impl Totals {
    /// Counts the outcomes.
    pub fn of(reports: &[CaseReport]) -> Self {
        reports.iter().fold(Self::default(), |mut totals, r| {
            match r.outcome {
                Outcome::Passed => totals.passed += 1,
                Outcome::Failed(_) => totals.failed += 1,
                Outcome::Skipped(_) => totals.skipped += 1,
            }
            totals
        })
    }

    /// The closing line, exactly `N passed, N failed`.
    ///
    /// ```
    /// let totals = ossup_conformance::report::Totals { passed: 41, failed: 2, skipped: 3 };
    /// assert_eq!(totals.closing_line(), "41 passed, 2 failed");
    /// ```
    pub fn closing_line(&self) -> String {
        format!("{} passed, {} failed", self.passed, self.failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ossup_proto::Api;
    use std::time::Duration;

    fn report(name: &'static str, api: Api, outcome: Outcome) -> CaseReport {
        CaseReport {
            name,
            api,
            checks: "what it checks",
            outcome,
            elapsed: Duration::ZERO,
        }
    }

    #[test]
    fn table_aligns_columns_and_keeps_each_case_on_one_row() {
        let rows = [
            report("short", Api::PutObject, Outcome::Passed),
            report(
                "a_much_longer_case_name",
                Api::CompleteMultipartUpload,
                Outcome::Failed("StringToSign:\nPUT\n\n".to_owned()),
            ),
            report(
                "skipped_one",
                Api::PutBucket,
                Outcome::Skipped("remote".to_owned()),
            ),
        ];
        let text = table(&rows);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 5, "{text}");
        assert_eq!(
            lines[0],
            "name                    | API                     | result | detail"
        );
        assert_eq!(
            lines[1],
            "------------------------+-------------------------+--------+-------"
        );
        assert_eq!(
            lines[2],
            "short                   | PutObject               | pass   | what it checks"
        );
        assert_eq!(
            lines[3],
            "a_much_longer_case_name | CompleteMultipartUpload | FAIL   | StringToSign:\\nPUT\\n\\n"
        );
        assert_eq!(
            lines[4],
            "skipped_one             | PutBucket               | skip   | remote"
        );
    }

    #[test]
    fn closing_line_counts_passed_and_failed_only() {
        let rows = [
            report("a", Api::PutObject, Outcome::Passed),
            report("b", Api::PutObject, Outcome::Passed),
            report("c", Api::PutObject, Outcome::Failed("x".to_owned())),
            report("d", Api::PutBucket, Outcome::Skipped("y".to_owned())),
        ];
        let totals = Totals::of(&rows);
        assert_eq!(
            totals,
            Totals {
                passed: 2,
                failed: 1,
                skipped: 1
            }
        );
        assert_eq!(totals.closing_line(), "2 passed, 1 failed");
    }

    #[test]
    fn an_empty_run_still_has_a_header() {
        let text = table(&[]);
        assert_eq!(text.lines().count(), 2);
        assert_eq!(Totals::of(&[]).closing_line(), "0 passed, 0 failed");
    }
}
