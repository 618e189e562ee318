//! `ossup demo`.

use crate::harness::{Harness, Run};

#[test]
fn demo_with_a_small_file_crashes_resumes_verifies_and_exits_0() {
    let h = Harness::start();
    let run = Run::of(h.ossup().args(["demo", "--size", "4MiB"])).expect_code(0);
    for step in 1..=6 {
        assert!(
            run.stdout.contains(&format!("[{step}/6]")),
            "{}",
            run.stdout
        );
    }
    assert!(run.stdout.contains("demo passed"), "{}", run.stdout);
    assert!(run.stdout.contains("MD5"), "{}", run.stdout);
    assert!(!run.stdout.contains("DIFFERS"), "{}", run.stdout);
    run.assert_no_dump();
}

#[test]
fn demo_refuses_a_size_too_small_to_interrupt() {
    let h = Harness::start();
    let run = Run::of(h.ossup().args(["demo", "--size", "100KiB"])).expect_code(2);
    assert!(run.stderr.contains("at least 1MiB"), "{}", run.stderr);
}
