//! The bodies of ossup's fuzz targets: one function per target, taking the fuzzer's bytes.
//!
//! Each runs one family of parsers on hostile input and checks more than "does not panic" where
//! that is cheap: a parsed document written back parses to the same value, a signature a verifier
//! accepted is refused once a digit of it changes, every refusal of the mock is an error document
//! the client reads back with the same code. A broken property panics, which the fuzzer reports as
//! a crash.
//!
//! Two drivers call them: the libFuzzer harness in `fuzz/fuzz_targets/` (`cargo xtask fuzz`), and
//! this crate's `tests/corpus.rs`, which replays every file of `fuzz/corpus/TARGET/` through its
//! target as an ordinary test, so `cargo test` needs no fuzzing toolchain.
//!
//! ```
//! // A seed the ListParts parser reads and writes back unchanged.
//! let doc = b"<ListPartsResult><Bucket>b</Bucket><Key>k</Key><UploadId>U</UploadId></ListPartsResult>";
//! ossup_fuzz_targets::client_xml(doc);
//! assert!(ossup_fuzz_targets::TARGETS.iter().any(|(name, _)| *name == "client_xml"));
//! ```

#![deny(missing_docs)]

mod checkpoint;
mod cli;
mod mock;
mod signature;
mod xml;

pub use checkpoint::{checkpoint_codec, checkpoint_journal};
pub use cli::cli_args;
pub use mock::{mock_bodies, mock_route};
pub use signature::{signature_roundtrip, signature_verify};
pub use xml::client_xml;

/// A target: a name and its body.
pub type Target = (&'static str, fn(&[u8]));

/// Every target by name: the name is its harness file `fuzz/fuzz_targets/NAME.rs` and its seed
/// corpus `fuzz/corpus/NAME/`.
pub const TARGETS: &[Target] = &[
    ("client_xml", client_xml),
    ("mock_bodies", mock_bodies),
    ("mock_route", mock_route),
    ("signature_verify", signature_verify),
    ("signature_roundtrip", signature_roundtrip),
    ("checkpoint_journal", checkpoint_journal),
    ("checkpoint_codec", checkpoint_codec),
    ("cli_args", cli_args),
];

/// The server clock of the targets that verify signatures: 2026-01-01T00:00:00Z. The seeds are
/// signed at this time, so the fuzzer starts past the clock-skew check.
pub const NOW_UNIX: u64 = 1_767_225_600;

/// A request head (`METHOD TARGET HTTP/1.1`, header lines, an empty line) parsed as hyper's server
/// parses it, as the parts a handler receives; `None` when the server would not get that far.
fn request_head(data: &[u8]) -> Option<http::request::Parts> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut head = httparse::Request::new(&mut headers);
    if !head.parse(data).ok()?.is_complete() {
        return None;
    }
    let mut builder = http::Request::builder()
        .method(head.method?)
        .uri(head.path?);
    for header in head.headers.iter() {
        builder = builder.header(header.name, header.value);
    }
    Some(builder.body(()).ok()?.into_parts().0)
}
