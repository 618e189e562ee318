//! The library example of README.md runs as written: the same code, between the marker comments
//! below, uploads a file to the in-process mock, and README.md's rust block is checked to be that
//! code (but for the endpoint, which the test points at its own mock), so the two cannot drift apart.

use std::error::Error as StdError;
use std::path::Path;

use ossup::UploadOutcome;

use crate::common::{assert_object_is, client, data, mock};

/// The endpoint the README names: where `oss-mock` listens when started with its defaults.
const README_ENDPOINT: &str = "\"http://127.0.0.1:9000\"";

/// README.md's library example, uploading to `endpoint`; relative paths are resolved against the
/// current directory, as they are for the reader.
async fn readme_example(endpoint: &str) -> Result<UploadOutcome, Box<dyn StdError>> {
    // README example begins
    use ossup::{Credentials, FileSource, FileStore, Parallel, UploadRequest, Uploader};

    let uploader = Uploader::builder()
        .endpoint(endpoint)?
        .credentials(Credentials::new("test-ak", "test-sk"))
        .region("cn-hangzhou") // V4 signing; an IP endpoint does not name its region
        .store(FileStore::open("checkpoints")?)
        .scheduler(Parallel::new(4))
        .build()?;
    let outcome = uploader
        .upload(UploadRequest::new(
            FileSource::open("big.iso")?,
            "bucket",
            "isos/big.iso",
        ))
        .await?;
    println!(
        "{} bytes sent, {} reused, CRC-64 {}",
        outcome.bytes_sent, outcome.bytes_reused, outcome.crc64
    );
    // README example ends
    Ok(outcome)
}

/// The lines between `begin` and `end` in `text`, each without its indentation.
fn lines_between<'a>(text: &'a str, begin: &str, end: &str) -> Vec<&'a str> {
    let start = text
        .find(begin)
        .unwrap_or_else(|| panic!("no {begin:?} marker"))
        + begin.len();
    let len = text[start..]
        .find(end)
        .unwrap_or_else(|| panic!("no {end:?} marker after {begin:?}"));
    text[start..start + len]
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect()
}

#[test]
fn the_readme_library_example_is_the_tested_code() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme_path = crate_dir.join("../../README.md");
    let readme = std::fs::read_to_string(&readme_path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", readme_path.display()));
    let section = &readme[readme
        .find("## Use it as a library")
        .expect("README.md has a \"Use it as a library\" section")..];
    let in_readme: Vec<String> = lines_between(section, "```rust", "```")
        .into_iter()
        .skip(1) // the rest of the fence line: ",ignore"
        .map(|line| line.replace(README_ENDPOINT, "endpoint"))
        .collect();

    let source_path = crate_dir.join("tests/e2e/readme.rs");
    let source = std::fs::read_to_string(&source_path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", source_path.display()));
    let tested = lines_between(
        &source,
        concat!("// README example ", "begins"),
        concat!("// README example ", "ends"),
    );

    assert_eq!(
        in_readme, tested,
        "README.md's library example and readme_example() in tests/e2e/readme.rs differ: change both"
    );
}

#[tokio::test]
async fn the_readme_library_example_uploads_a_file_to_the_mock() {
    let server = mock().await;
    let dir = tempfile::tempdir().expect("scratch directory");
    let bytes = data(1_500_000, 0x0EAD);
    std::fs::write(dir.path().join("big.iso"), &bytes).expect("write big.iso");

    // The example names its file and checkpoint directory relative to where it runs, as a reader's
    // program would; it is the only test here that depends on the current directory.
    let previous = std::env::current_dir().expect("current directory");
    std::env::set_current_dir(dir.path()).expect("enter the scratch directory");
    let outcome = readme_example(&server.endpoint()).await;
    std::env::set_current_dir(previous).expect("leave the scratch directory");

    let outcome = outcome.unwrap_or_else(|e| panic!("the README example fails: {e}"));
    assert_eq!(outcome.bytes_sent, bytes.len() as u64);
    assert_eq!(outcome.bytes_reused, 0);
    assert_object_is(&client(&server.endpoint()), "isos/big.iso", &bytes).await;
    assert!(
        dir.path().join("checkpoints").is_dir(),
        "the example's checkpoint directory is made where it runs"
    );
    server.shutdown().await;
}
