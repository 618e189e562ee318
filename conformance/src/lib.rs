//! Wire-level conformance cases for OSS endpoints: the `oss-mock` server by default, real OSS on demand.
//!
//! Each case sends real HTTP requests and checks what comes back on the wire: status, error code, XML
//! fields and headers, for the multipart APIs, objects, buckets, signatures and addressing. Run against
//! the mock, the suite proves the mock behaves as OSS does; run against OSS itself, it records where
//! the two agree.
//!
//! - [`client`]: a signed HTTP client that can also send malformed requests on purpose.
//! - [`target`]: the mock started in-process, or an endpoint from `OSSUP_CONFORMANCE_ENDPOINT`,
//!   `OSSUP_CONFORMANCE_BUCKET`, `OSS_ACCESS_KEY_ID` and `OSS_ACCESS_KEY_SECRET` (`OSS_REGION` for V4).
//! - [`mod@case`] and [`check`]: what a case is and how it states its expectations.
//! - [`cases`]: the cases themselves; [`runner`] runs them; [`report`] prints the table.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use ossup_conformance::{cases, report, runner, target::Target};
//!
//! let target = Target::from_env().await?;
//! let reports = runner::run(&target, &cases::all()).await;
//! print!("{}", report::table(&reports));
//! println!("{}", report::Totals::of(&reports).closing_line());
//! target.shutdown().await;
//! # Ok(())
//! # }
//! ```

pub mod case;
pub mod cases;
pub mod check;
pub mod client;
pub mod report;
pub mod runner;
pub mod target;
