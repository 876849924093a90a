//! The command line: exit codes and output formats of `validate` and `graph`.

use assert_cmd::Command;
use predicates::prelude::*;
use serde_json::Value;

fn sluice() -> Command {
    let mut cmd = Command::cargo_bin("sluice").expect("the sluice binary is built");
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"));
    cmd
}

#[test]
fn validate_exits_0_for_valid_pipelines() {
    sluice()
        .args([
            "validate",
            "pipelines/listings-check.yaml",
            "pipelines/generated-listings.yaml",
        ])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "pipelines/listings-check.yaml: valid (4 streamlets)",
        ));
}

#[test]
fn validate_exits_1_and_shows_file_line_column_snippet_and_hint() {
    sluice()
        .args([
            "validate",
            "pipelines/listings-check.yaml",
            "tests/broken/unknown_kind.yaml",
        ])
        .assert()
        .code(1)
        .stdout(predicate::str::contains(
            "tests/broken/unknown_kind.yaml:7:11: error[unknown-kind]: unknown streamlet kind `validater`",
        ))
        .stdout(predicate::str::contains("kind: validater"))
        .stdout(predicate::str::contains("did you mean `validator`?"));
}

#[test]
fn validate_exits_2_when_a_file_cannot_be_read() {
    sluice()
        .args(["validate", "tests/broken/no-such-pipeline.yaml"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "cannot read tests/broken/no-such-pipeline.yaml",
        ));
}

#[test]
fn validate_exits_2_on_usage_errors() {
    sluice()
        .args(["validate", "--format", "xml", "x.yaml"])
        .assert()
        .code(2);
    sluice().args(["validate"]).assert().code(2);
}

#[test]
fn validate_json_lists_every_problem_with_position() {
    let out = sluice()
        .args([
            "validate",
            "--format",
            "json",
            "tests/broken/many_problems.yaml",
            "pipelines/listings-check.yaml",
        ])
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    let report: Value = serde_json::from_slice(&out).expect("validate --format json prints JSON");
    assert_eq!(report["valid"], Value::Bool(false));
    let files = report["files"].as_array().expect("files");
    assert_eq!(files.len(), 2);
    assert_eq!(files[1]["valid"], Value::Bool(true));
    let problems = files[0]["problems"].as_array().expect("problems");
    let unknown = problems
        .iter()
        .find(|p| p["code"] == "unknown-streamlet")
        .expect("the unknown input is reported");
    assert_eq!(unknown["line"], 8);
    assert_eq!(unknown["column"], 14);
    assert_eq!(unknown["file"], "tests/broken/many_problems.yaml");
    assert_eq!(unknown["suggestion"], "listings");
    assert_eq!(unknown["hint"], "did you mean `listings`?");
    assert_eq!(problems.len(), 3, "{problems:#?}");
}

#[test]
fn validate_github_prints_workflow_annotations() {
    sluice()
        .args(["validate", "--format", "github", "tests/broken/cycle.yaml"])
        .assert()
        .code(1)
        .stdout(predicate::str::diff(
            "::error file=tests/broken/cycle.yaml,line=6,col=3,title=sluice cycle::cycle: a → b → c → a%0Arecords must flow one way: break the cycle\n",
        ));
}

#[test]
fn validate_has_no_side_effects() {
    let dir = tempfile::tempdir().expect("temp dir");
    sluice()
        .env("SLUICE_OUT", dir.path().join("out"))
        .args(["validate", "pipelines/listings-check.yaml"])
        .assert()
        .success();
    assert!(
        !dir.path().join("out").exists(),
        "validate must not create output folders"
    );
}

#[test]
fn graph_prints_dot_and_mermaid_with_ports_on_edges() {
    sluice()
        .args(["graph", "pipelines/listings-check.yaml"])
        .assert()
        .success()
        .stdout(predicate::str::contains("digraph"))
        .stdout(predicate::str::contains("-> 3 [ label = \"errors\"]"));
    sluice()
        .args(["graph", "--format", "mermaid", "pipelines/listings-check.yaml"])
        .assert()
        .success()
        .stdout(predicate::str::contains("flowchart LR"))
        .stdout(predicate::str::contains("s_check -->|invalid| s_rejected"));
}

#[test]
fn graph_of_a_broken_pipeline_reports_its_problems() {
    sluice()
        .args(["graph", "tests/broken/cycle.yaml"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("cycle: a → b → c → a"));
}

#[test]
fn validate_checks_a_named_test_file_against_its_pipeline() {
    let dir = tempfile::tempdir().expect("dir");
    let pipeline = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/house-prices.yaml");
    let write = |name: &str, test: &str| {
        let path = dir.path().join(name);
        std::fs::write(
            &path,
            format!("pipeline: {}\ntests:\n  - name: t\n{test}", pipeline.display()),
        )
        .expect("test file");
        path
    };
    let into = write(
        "into.test.yaml",
        "    inputs:\n      - into: listingz\n        records: [{ id: 1 }]\n    expect:\n      - outlet: price\n        count: 1\n",
    );
    sluice()
        .args(["validate"])
        .arg(&into)
        .assert()
        .code(1)
        .stdout(predicate::str::contains(
            "into.test.yaml:5:9: the pipeline has no streamlet `listingz`",
        ));
    let outlet = write(
        "outlet.test.yaml",
        "    inputs:\n      - into: listings\n        records: [{ id: 1 }]\n    expect:\n      - outlet: price.scores\n        count: 0\n",
    );
    sluice()
        .args(["validate", "--format", "json"])
        .arg(&outlet)
        .assert()
        .code(1)
        .stdout(predicate::str::contains(
            "`price` has no outlet `scores` (it has: out, errors, audit)",
        ));
    let good = write(
        "good.test.yaml",
        "    inputs:\n      - into: listings\n        records: [{ id: 1 }]\n    expect:\n      - outlet: price.errors\n        count: 1\n",
    );
    sluice().args(["validate"]).arg(&good).assert().code(0);
}
