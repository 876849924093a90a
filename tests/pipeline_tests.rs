//! `sluice test`: every example pipeline passes its tests; deliberately failing tests fail with
//! the right messages at the right lines; a malformed test file is a usage error.

use assert_cmd::Command;
use predicates::prelude::*;

fn sluice() -> Command {
    let mut cmd = Command::cargo_bin("sluice").expect("the sluice binary is built");
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"));
    cmd
}

#[test]
fn every_example_pipeline_has_tests_and_passes_them() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines");
    for entry in std::fs::read_dir(&dir).expect("pipelines/") {
        let path = entry.expect("entry").path();
        let is_pipeline = path.extension().is_some_and(|e| e == "yaml") && !sluice::testing::is_test_file(&path);
        if is_pipeline {
            assert!(
                sluice::testing::test_file_of(&path).is_file(),
                "{} has no test file",
                path.display()
            );
        }
    }
    sluice()
        .args(["test", "pipelines"])
        .assert()
        .success()
        .stdout(predicate::str::contains("pipeline test(s) passed, 0 failed"))
        .stdout(predicate::str::contains(
            "ok    a valid listing is scored by the latest model",
        ));
}

#[test]
fn failing_tests_report_each_failure_at_its_line() {
    sluice()
        .args(["test", "tests/failing/house-prices.test.yaml"])
        .assert()
        .code(1)
        .stdout(predicate::str::contains("FAIL  wrong count, wrong value, wrong presence"))
        .stdout(predicate::str::contains(
            "tests/failing/house-prices.test.yaml:12:9: expected 2 record(s) out of `price`, got 1",
        ))
        .stdout(predicate::str::contains(
            "tests/failing/house-prices.test.yaml:14:13: record #1 out of `price`: `predicted_price` is 566764.875, expected 100000 ± 1",
        ))
        .stdout(predicate::str::contains(
            "tests/failing/house-prices.test.yaml:15:13: record #1 out of `price`: `_model.version` is \"2\", expected \"1\"",
        ))
        .stdout(predicate::str::contains(
            "tests/failing/house-prices.test.yaml:16:13: record #1 out of `price`: `_error` absent, expected it present",
        ))
        .stdout(predicate::str::contains(
            "tests/failing/house-prices.test.yaml:22:9: `price` has no outlet `scores` (it has: out, errors, audit)",
        ))
        .stdout(predicate::str::contains("ok    this one passes"))
        .stdout(predicate::str::contains("1 pipeline test(s) passed, 2 failed"));
}

#[test]
fn a_malformed_test_file_is_reported_at_its_line() {
    sluice()
        .args(["test", "tests/failing/broken.test.yaml"])
        .assert()
        .code(2)
        .stdout(predicate::str::contains(
            "tests/failing/broken.test.yaml:5:5: tests[0]: unknown field `expectations`",
        ));
}

#[test]
fn a_pipeline_without_tests_is_a_usage_error() {
    sluice()
        .args(["test", "tests/broken/cycle.yaml"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "has no tests: write tests/broken/cycle.test.yaml",
        ));
}
