//! Each expected failure: a sentence a person can act on, the right exit code, no debug dump.

use crate::harness::{Harness, Run};

#[test]
fn a_wrong_secret_says_to_check_the_secret_variable() {
    let h = Harness::start();
    let file = h.file("a.bin", 300 << 10, 20);
    let run = Run::of(
        h.upload(&file, "a.bin", &[])
            .env("OSS_ACCESS_KEY_SECRET", "wrong"),
    )
    .expect_code(1);
    assert!(
        run.stderr.contains("check OSS_ACCESS_KEY_SECRET"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("test-ak"),
        "names the key id: {}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("wrong"),
        "never prints the secret: {}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("resume with"),
        "nothing to resume: {}",
        run.stderr
    );
    run.assert_no_dump();
}

#[test]
fn an_unknown_key_id_says_to_check_the_id_variable() {
    let h = Harness::start();
    let file = h.file("a.bin", 300 << 10, 21);
    let run = Run::of(
        h.upload(&file, "a.bin", &[])
            .env("OSS_ACCESS_KEY_ID", "nobody"),
    )
    .expect_code(1);
    assert!(
        run.stderr
            .contains("does not know the access key id \"nobody\""),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("check OSS_ACCESS_KEY_ID"),
        "{}",
        run.stderr
    );
    run.assert_no_dump();
}

#[test]
fn a_missing_bucket_is_named() {
    let h = Harness::start();
    let file = h.file("a.bin", 300 << 10, 22);
    let mut cmd = h.ossup();
    cmd.args(["upload"])
        .arg(&file)
        .arg("oss://no-such-bucket/a.bin");
    let run = Run::of(&mut cmd).expect_code(1);
    assert!(
        run.stderr
            .contains("bucket \"no-such-bucket\" does not exist"),
        "{}",
        run.stderr
    );
    run.assert_no_dump();
}

#[test]
fn a_missing_file_is_named() {
    let h = Harness::start();
    let run = Run::of(&mut h.upload(&h.dir.path().join("nope.bin"), "a.bin", &[])).expect_code(1);
    assert!(
        run.stderr.contains("nope.bin does not exist"),
        "{}",
        run.stderr
    );
    let run = Run::of(&mut h.upload(h.dir.path(), "a.bin", &[])).expect_code(1);
    assert!(run.stderr.contains("is a directory"), "{}", run.stderr);
    run.assert_no_dump();
}

#[test]
fn an_unreachable_endpoint_is_named_with_its_cause() {
    let h = Harness::start();
    let file = h.file("a.bin", 300 << 10, 23);
    // A loopback port that was free a moment ago and is closed now.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = format!("127.0.0.1:{port}");
    let run = Run::of(&mut h.upload(
        &file,
        "a.bin",
        &["--endpoint", &endpoint, "--max-attempts", "2"],
    ))
    .expect_code(1);
    assert!(
        run.stderr
            .contains(&format!("cannot reach OSS at http://{endpoint}")),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.to_lowercase().contains("refused"),
        "{}",
        run.stderr
    );
    run.assert_no_dump();
}

#[test]
fn a_bad_size_names_the_flag_and_exits_2() {
    let h = Harness::start();
    let file = h.file("a.bin", 1000, 24);
    for (size, why) in [
        ("8 parsecs", "unknown unit"),
        ("0", "zero"),
        ("-1MiB", "negative"),
        ("99999999999TiB", "too large"),
    ] {
        let mut cmd = h.ossup();
        cmd.arg("upload")
            .arg(&file)
            .arg("oss://bucket/a")
            .arg(format!("--part-size={size}"));
        let run = Run::of(&mut cmd).expect_code(2);
        assert!(run.stderr.contains("--part-size"), "{}", run.stderr);
        assert!(run.stderr.contains(why), "{size}: {}", run.stderr);
    }
    let mut cmd = h.ossup();
    cmd.arg("upload")
        .arg(&file)
        .arg("oss://bucket/a")
        .args(["--part-size", "10KiB"]);
    let run = Run::of(&mut cmd).expect_code(2);
    assert!(run.stderr.contains("100KiB to 5GiB"), "{}", run.stderr);
}

#[test]
fn a_bad_address_says_what_an_address_looks_like_and_exits_2() {
    let h = Harness::start();
    let file = h.file("a.bin", 1000, 25);
    for (url, why) in [
        ("bucket/key", "starts with oss://"),
        ("oss://bucket", "no object"),
        ("oss://Bucket/key", "try \"bucket\""),
        ("oss://bucket//key", "OSS refuses"),
        ("oss://b/key", "3 to 63"),
    ] {
        let mut cmd = h.ossup();
        cmd.arg("upload").arg(&file).arg(url);
        let run = Run::of(&mut cmd).expect_code(2);
        assert!(run.stderr.contains(why), "{url}: {}", run.stderr);
    }
}

#[test]
fn a_missing_credential_variable_is_named_and_exits_2() {
    let h = Harness::start();
    let file = h.file("a.bin", 1000, 26);
    for var in ["OSS_ACCESS_KEY_ID", "OSS_ACCESS_KEY_SECRET"] {
        let run = Run::of(h.upload(&file, "a", &[]).env_remove(var)).expect_code(2);
        assert!(run.stderr.contains(var), "{}", run.stderr);
    }
}

#[test]
fn a_missing_endpoint_or_region_says_how_to_give_it() {
    let h = Harness::start();
    let file = h.file("a.bin", 1000, 27);
    let run = Run::of(
        h.upload(&file, "a", &[])
            .env_remove("OSS_ENDPOINT")
            .env_remove("OSS_REGION"),
    )
    .expect_code(2);
    assert!(run.stderr.contains("--endpoint"), "{}", run.stderr);
    let run = Run::of(h.upload(&file, "a", &[]).env_remove("OSS_REGION")).expect_code(2);
    assert!(run.stderr.contains("OSS_REGION"), "{}", run.stderr);
}

#[test]
fn usage_errors_exit_2_and_help_exits_0() {
    let h = Harness::start();
    Run::of(h.ossup().arg("frobnicate")).expect_code(2);
    Run::of(h.ossup().args(["upload"])).expect_code(2);
    Run::of(h.ossup().args([
        "upload",
        "a",
        "oss://bucket/a",
        "--parallel",
        "2",
        "--sequential",
    ]))
    .expect_code(2);
    Run::of(h.ossup().args(["uploads", "abort", "oss://bucket/a"])).expect_code(2);
    let help = Run::of(h.ossup().arg("--help")).expect_code(0);
    assert!(help.stdout.contains("upload"), "{}", help.stdout);
    Run::of(h.ossup().args(["upload", "--help"])).expect_code(0);
}
