//! `ossup-conformance`: runs the conformance suite and prints a table, case by case, then
//! `N passed, N failed`.
//!
//! Against the mock by default; against a remote endpoint when `OSSUP_CONFORMANCE_ENDPOINT`,
//! `OSSUP_CONFORMANCE_BUCKET`, `OSS_ACCESS_KEY_ID` and `OSS_ACCESS_KEY_SECRET` are set.

use std::process::ExitCode;

use ossup_conformance::case::Case;
use ossup_conformance::report::{self, Totals};
use ossup_conformance::{cases, runner, target::Target};

const USAGE: &str = "\
usage: ossup-conformance [--filter TEXT]... [--list]

Runs the OSS wire conformance cases and prints a table (name | API | result | detail) and a closing
line `N passed, N failed`. Exits 0 when no case failed, 1 when one did, 2 when the suite could not run.

  --filter TEXT  run only the cases whose name contains TEXT (repeatable: any of them)
  --list         print the cases (name, API, what each checks) and exit

Target: the oss-mock server, started in-process, unless OSSUP_CONFORMANCE_ENDPOINT (http://...),
OSSUP_CONFORMANCE_BUCKET, OSS_ACCESS_KEY_ID and OSS_ACCESS_KEY_SECRET are set (OSS_REGION for V4).";

struct Args {
    filters: Vec<String>,
    list: bool,
}

fn parse_args() -> Result<Option<Args>, String> {
    let mut args = Args {
        filters: Vec::new(),
        list: false,
    };
    let mut iter = std::env::args().skip(1);
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "--filter" => args.filters.push(
                iter.next()
                    .ok_or("--filter needs a value: the text a case name must contain")?,
            ),
            "--list" => args.list = true,
            "-h" | "--help" => return Ok(None),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Some(args))
}

fn selected(filters: &[String]) -> Vec<Case> {
    cases::all()
        .into_iter()
        .filter(|case| filters.is_empty() || filters.iter().any(|f| case.name.contains(f.as_str())))
        .collect()
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(Some(args)) => args,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("ossup-conformance: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let cases = selected(&args.filters);
    if args.list {
        for case in &cases {
            println!("{} | {} | {}", case.name, case.api, case.checks);
        }
        return ExitCode::SUCCESS;
    }
    if cases.is_empty() {
        eprintln!(
            "ossup-conformance: no case name contains any of {:?}; --list shows them",
            args.filters
        );
        return ExitCode::from(2);
    }
    let target = match Target::from_env().await {
        Ok(target) => target,
        Err(e) => {
            eprintln!("ossup-conformance: {e}");
            return ExitCode::from(2);
        }
    };
    println!("conformance target: {}", target.describe());
    println!("running {} cases", cases.len());
    println!();
    let reports = runner::run(&target, &cases).await;
    target.shutdown().await;
    print!("{}", report::table(&reports));
    let totals = Totals::of(&reports);
    println!();
    if totals.skipped > 0 {
        println!("{} skipped (see the detail column)", totals.skipped);
    }
    println!("{}", totals.closing_line());
    if totals.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
