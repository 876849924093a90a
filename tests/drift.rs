//! Data checks against the training profile: a stream whose distribution shifts halfway raises a
//! drift event within one window of the shift; a stream that does not shift raises none.

mod common;
use common::root;

use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// Runs generator → validator (profile, drift) → files; returns the drift events and the summary.
fn run(count: u64, shift_after: Option<u64>) -> (Vec<Value>, sluice::runtime::RunSummary) {
    let dir = tempfile::tempdir().expect("temp dir");
    let shift = shift_after.map_or(String::new(), |n| format!(", shift_after: {n}"));
    let yaml = format!(
        "pipeline: drift
streamlets:
  listings:
    kind: ingress
    source: {{ type: generator, count: {count}, seed: 12{shift} }}
  check:
    kind: validator
    inputs: [listings]
    schema: {schema}
    profile:
      path: {profile}
      drift: {{ window: 1000, every: 250, psi_threshold: 0.2, out_of_range_threshold: 0.05 }}
  ok:
    kind: egress
    inputs: [check.valid, check.invalid]
    sink: {{ type: blackhole }}
  events:
    kind: egress
    inputs: [check.drift]
    sink: {{ type: file, path: drift.jsonl }}
",
        schema = root().join("schemas/records/listing.schema.json").display(),
        profile = root()
            .join("examples/house-prices/models/house-price-v2.profile.json")
            .display(),
    );
    let file = dir.path().join("p.yaml");
    std::fs::write(&file, yaml).expect("write pipeline");
    let topology = sluice::topology::load(&file).unwrap_or_else(|e| panic!("{e}"));
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let summary = rt
        .block_on(sluice::runtime::run(topology, CancellationToken::new()))
        .expect("run");
    let events = std::fs::read_to_string(dir.path().join("drift.jsonl"))
        .expect("drift events")
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    (events, summary)
}

#[test]
fn a_shift_halfway_raises_drift_within_one_window() {
    let (events, summary) = run(20_000, Some(10_000));
    let drifting: Vec<&Value> = events.iter().filter(|e| e["status"] == "drifting").collect();
    assert!(
        drifting
            .iter()
            .all(|e| e["records"].as_u64().expect("records") > 10_000),
        "nothing before the shift: {events:?}"
    );
    let living = drifting
        .iter()
        .find(|e| e["field"] == "sqft_living")
        .unwrap_or_else(|| panic!("sqft_living drifts: {events:?}"));
    let at = living["records"].as_u64().expect("records");
    assert!(at <= 11_000, "within one window (1000) of the shift, at {at}");
    assert!(living["psi"].as_f64().expect("psi") > 0.2 || living["out_of_range_rate"].as_f64().expect("rate") > 0.05);
    assert_eq!(living["streamlet"], "check");
    let counted: u64 = summary
        .streamlets
        .iter()
        .find(|s| s.name == "check")
        .expect("check")
        .counters[r#"drift_events{field="sqft_living",status="drifting"}"#];
    assert_eq!(counted, 1, "the metric counts the event once");
}

#[test]
fn a_stream_that_does_not_shift_raises_no_drift() {
    let (events, _) = run(60_000, None);
    assert!(events.is_empty(), "{events:?}");
}
