//! The enricher with real table files: the three missing-key policies, a table replaced while
//! records stream, and a replacement that cannot load.

mod common;
use common::read_jsonl;

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

fn run(dir: &Path, yaml: &str) -> sluice::runtime::RunSummary {
    let file = dir.join("p.yaml");
    std::fs::write(&file, yaml).expect("write pipeline");
    let topology = sluice::topology::load(&file).unwrap_or_else(|e| panic!("{e}"));
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(sluice::runtime::run(topology, CancellationToken::new()))
        .expect("run")
}

fn policy_pipeline(missing: &str, unmatched: bool) -> String {
    let unmatched_sink = if unmatched {
        "  lost:\n    kind: egress\n    inputs: [geo.unmatched]\n    sink: { type: file, path: unmatched.jsonl }\n"
    } else {
        ""
    };
    format!(
        "pipeline: enrich
streamlets:
  input:
    kind: ingress
    source: {{ type: file, path: in.jsonl }}
  geo:
    kind: enricher
    inputs: [input]
    table: {{ type: file, path: zips.csv, key: [state, zip], columns: {{ income: integer }} }}
    on: [st, zip]
    prefix: zip_
    missing: {missing}
    defaults: {{ income: -1, town: unknown }}
  out:
    kind: egress
    inputs: [geo]
    sink: {{ type: file, path: out.jsonl }}
{unmatched_sink}"
    )
}

fn policy_setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(
        dir.path().join("zips.csv"),
        "state,zip,town,income\nWA,98042,Kent,98000\nWA,98004,Bellevue,171000\n",
    )
    .expect("table");
    std::fs::write(
        dir.path().join("in.jsonl"),
        "{\"id\":1,\"st\":\"WA\",\"zip\":\"98004\"}\n{\"id\":2,\"st\":\"WA\",\"zip\":\"99999\"}\n{\"id\":3,\"st\":\"WA\",\"zip\":\"98042\"}\n{\"id\":4}\n",
    )
    .expect("input");
    dir
}

#[test]
fn missing_keys_pass_through_unchanged() {
    let dir = policy_setup();
    run(dir.path(), &policy_pipeline("pass", false));
    assert_eq!(
        read_jsonl(&dir.path().join("out.jsonl")),
        vec![
            json!({"id": 1, "st": "WA", "zip": "98004", "zip_town": "Bellevue", "zip_income": 171000}),
            json!({"id": 2, "st": "WA", "zip": "99999"}),
            json!({"id": 3, "st": "WA", "zip": "98042", "zip_town": "Kent", "zip_income": 98000}),
            json!({"id": 4}),
        ]
    );
}

#[test]
fn missing_keys_get_the_declared_defaults() {
    let dir = policy_setup();
    run(dir.path(), &policy_pipeline("defaults", false));
    let out = read_jsonl(&dir.path().join("out.jsonl"));
    assert_eq!(
        out[1],
        json!({"id": 2, "st": "WA", "zip": "99999", "zip_town": "unknown", "zip_income": -1})
    );
    assert_eq!(out[3], json!({"id": 4, "zip_town": "unknown", "zip_income": -1}));
    assert_eq!(out[0]["zip_income"], 171000);
}

#[test]
fn missing_keys_go_to_unmatched() {
    let dir = policy_setup();
    let summary = run(dir.path(), &policy_pipeline("unmatched", true));
    let ids = |f: &str| -> Vec<u64> {
        read_jsonl(&dir.path().join(f))
            .iter()
            .map(|r| r["id"].as_u64().expect("id"))
            .collect()
    };
    assert_eq!(ids("out.jsonl"), vec![1, 3]);
    assert_eq!(ids("unmatched.jsonl"), vec![2, 4]);
    assert_eq!(summary.records_out("geo", "unmatched"), Some(2));
}

fn table(income: i64) -> String {
    let zips = [
        "WA 98103", "WA 98115", "WA 98004", "WA 98052", "WA 98033", "WA 98056", "WA 98042", "WA 98092", "WA 98027",
        "WA 98155", "WA 98406", "WA 98208",
    ];
    let mut text = String::from("statezip,median_income\n");
    for z in zips {
        text.push_str(&format!("{z},{income}\n"));
    }
    text
}

fn replace(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

#[test]
fn a_table_replaced_while_records_stream_is_used_from_then_on_and_a_broken_one_is_not() {
    let dir = tempfile::tempdir().expect("dir");
    let zips = dir.path().join("zips.csv");
    std::fs::write(&zips, table(1)).expect("table");
    std::fs::write(
        dir.path().join("p.yaml"),
        "pipeline: swap
streamlets:
  listings:
    kind: ingress
    source: { type: generator, rate: 1000, seed: 9 }
  geo:
    kind: enricher
    inputs: [listings]
    table: { type: file, path: zips.csv, key: statezip, columns: { median_income: integer } }
    missing: unmatched
  out:
    kind: egress
    inputs: [geo]
    sink: { type: file, path: out.jsonl }
  lost:
    kind: egress
    inputs: [geo.unmatched]
    sink: { type: file, path: unmatched.jsonl }
",
    )
    .expect("pipeline");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let stop = CancellationToken::new();
    let file = dir.path().join("p.yaml");
    let topology = sluice::topology::load(&file).unwrap_or_else(|e| panic!("{e}"));
    let task = rt.spawn(sluice::runtime::run(topology, stop.clone()));
    let out = dir.path().join("out.jsonl");
    let wait_for = |what: &str, f: &dyn Fn(&[Value]) -> bool| {
        let started = Instant::now();
        loop {
            let records = read_jsonl(&out);
            if f(&records) {
                return records.len();
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "timed out waiting for {what}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    wait_for("records with the first table", &|r| r.len() > 300);
    replace(&zips, &table(2));
    wait_for("the second table", &|r| r.iter().any(|x| x["median_income"] == 2));
    // A replacement without the key column does not load: the second table stays.
    replace(&zips, "zip,median_income\nWA 98042,3\n");
    std::thread::sleep(Duration::from_millis(500));
    let seen = read_jsonl(&out).len() + 300;
    wait_for("records after the broken file", &|r| r.len() > seen);
    stop.cancel();
    rt.block_on(task).expect("task").expect("run");
    let records = read_jsonl(&out);
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r["id"].as_u64(), Some(i as u64 + 1), "none lost, none doubled");
    }
    let first_new = records
        .iter()
        .position(|r| r["median_income"] == 2)
        .expect("the new table was used");
    assert!(records[..first_new].iter().all(|r| r["median_income"] == 1));
    assert!(
        records[first_new..].iter().all(|r| r["median_income"] == 2),
        "new values from the swap on, never 3"
    );
    assert!(read_jsonl(&dir.path().join("unmatched.jsonl")).is_empty());
}
