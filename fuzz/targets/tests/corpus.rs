//! Every seed of `fuzz/corpus/TARGET/` through its target, as an ordinary test: the properties the
//! fuzzer checks hold on the corpus, and each target has a harness and a non-empty corpus.

use std::fs;
use std::path::PathBuf;

use ossup_fuzz_targets::TARGETS;

fn fuzz_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn every_seed_passes_its_target() {
    for (name, target) in TARGETS {
        let dir = fuzz_dir().join("corpus").join(name);
        let seeds: Vec<PathBuf> = fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("no seed corpus {}: {e}", dir.display()))
            .map(|entry| entry.expect("a corpus entry").path())
            .collect();
        assert!(
            !seeds.is_empty(),
            "the seed corpus {} is empty",
            dir.display()
        );
        for seed in seeds {
            let data = fs::read(&seed).expect("a readable seed");
            println!("{name}: {}", seed.display());
            target(&data);
        }
    }
}

#[test]
fn every_target_has_a_harness_and_every_harness_a_target() {
    let harnesses = fuzz_dir().join("fuzz_targets");
    let mut found: Vec<String> = fs::read_dir(&harnesses)
        .expect("fuzz/fuzz_targets")
        .map(|entry| entry.expect("an entry").path())
        .filter_map(|path| Some(path.file_stem()?.to_str()?.to_owned()))
        .collect();
    found.sort();
    let mut listed: Vec<String> = TARGETS.iter().map(|(name, _)| (*name).to_owned()).collect();
    listed.sort();
    assert_eq!(found, listed, "fuzz/fuzz_targets/*.rs and TARGETS differ");
    for name in &listed {
        let harness = fs::read_to_string(harnesses.join(format!("{name}.rs"))).expect("a harness");
        assert!(
            harness.contains(&format!("ossup_fuzz_targets::{name}(")),
            "fuzz/fuzz_targets/{name}.rs does not call ossup_fuzz_targets::{name}"
        );
    }
}

/// The signed seeds carry valid signatures as of the targets' clock, so the fuzzer starts from
/// requests the mock accepts (and tampers with them) rather than from refusals alone.
#[test]
fn the_signed_seeds_are_accepted_by_the_mock() {
    use std::time::{Duration, UNIX_EPOCH};

    let now = UNIX_EPOCH + Duration::from_secs(ossup_fuzz_targets::NOW_UNIX);
    let dir = fuzz_dir().join("corpus").join("signature_verify");
    let mut signed = 0;
    for entry in fs::read_dir(&dir).expect("the signature_verify corpus") {
        let path = entry.expect("an entry").path();
        let data = fs::read(&path).expect("a seed");
        if !String::from_utf8_lossy(&data).contains("authorization: OSS") {
            continue;
        }
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut head = httparse::Request::new(&mut headers);
        assert!(head.parse(&data).expect("a request head").is_complete());
        let mut request = http::Request::builder()
            .method(head.method.expect("a method"))
            .uri(head.path.expect("a target"));
        for header in head.headers.iter() {
            request = request.header(header.name, header.value);
        }
        let (parts, ()) = request.body(()).expect("a request").into_parts();
        let verified = oss_mock::fuzzing::authenticate(
            &parts,
            "localhost",
            &[("test-ak".to_owned(), "test-sk".to_owned())],
            &[oss_mock::StsCredential::new(
                "STS.fuzz",
                "sts-secret",
                "sts-token",
            )],
            "cn-hangzhou",
            now,
        );
        assert!(verified.is_ok(), "{}: {verified:?}", path.display());
        signed += 1;
    }
    assert!(
        signed >= 4,
        "only {signed} signed seeds in {}",
        dir.display()
    );
}
