//! Serving strategies with real ONNX models whose answers are known per record: a slow model
//! for the latency budget, constant classifiers for votes and confidence, two GBM versions.

mod common;
use common::{read_jsonl, root, run_pipeline};

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde_json::Value;
use sluice::runtime::{RunSummary, StreamletSummary};

fn scorer_summary<'a>(summary: &'a RunSummary, name: &str) -> &'a StreamletSummary {
    summary
        .streamlets
        .iter()
        .find(|s| s.name == name)
        .expect("the scorer ran")
}

fn folder(path: &str) -> String {
    root().join(path).display().to_string()
}

/// A pipeline: the file `input` → a scorer (`scorer` is its YAML body) → out.jsonl, errors.jsonl (and shadow.jsonl).
fn pipeline(input: &str, scorer: &str, shadow: bool) -> String {
    let shadow_sink = if shadow {
        "  shadows:\n    kind: egress\n    inputs: [score.shadow]\n    sink: { type: file, path: shadow.jsonl }\n"
    } else {
        ""
    };
    format!(
        "pipeline: strategies\nstreamlets:\n  input:\n    kind: ingress\n    source: {{ type: file, path: {} }}\n  score:\n    kind: scorer\n    inputs: [input]\n{scorer}\n  out:\n    kind: egress\n    inputs: [score]\n    sink: {{ type: file, path: out.jsonl }}\n  failed:\n    kind: egress\n    inputs: [score.errors]\n    sink: {{ type: file, path: errors.jsonl }}\n{shadow_sink}",
        root().join(input).display()
    )
}

const HOUSE_FEATURES: &str = "    features:
      input: features
      fields: [bedrooms, bathrooms, sqft_living, sqft_lot, floors, waterfront, view, condition, yr_built,
               { field: yr_renovated, default: 0 },
               { field: city, one_hot: [Auburn, Bellevue, Everett, Issaquah, Kent, Kirkland, Redmond, Renton, Seattle, Shoreline, Tacoma] }]
    outputs:
      - { tensor: variable, field: predicted_price }";

const FRAUD_FEATURES: &str = "    features:
      fields: [amount, hour, distance_km, card_present, foreign, { field: tx_last_hour, default: 0 },
               { field: merchant, categories: [grocery, fuel, online, travel, electronics, restaurant] }]
    outputs:
      - { tensor: label, field: fraud_predicted }
      - { tensor: probabilities, field: fraud_probability, classes: ['0', '1'], class: '1' }";

/// The slow model's answer: a known linear function of the features.
fn slow_price(r: &Value) -> f64 {
    let w: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("examples/strategies/slow-price-weights.json")).expect("weights"),
    )
    .expect("json");
    let weights: Vec<f64> = w["weights"]
        .as_array()
        .expect("weights")
        .iter()
        .map(|x| x.as_f64().expect("w"))
        .collect();
    let cities = [
        "Auburn",
        "Bellevue",
        "Everett",
        "Issaquah",
        "Kent",
        "Kirkland",
        "Redmond",
        "Renton",
        "Seattle",
        "Shoreline",
        "Tacoma",
    ];
    let numeric = [
        "bedrooms",
        "bathrooms",
        "sqft_living",
        "sqft_lot",
        "floors",
        "waterfront",
        "view",
        "condition",
        "yr_built",
        "yr_renovated",
    ];
    let mut x: Vec<f64> = numeric
        .iter()
        .map(|f| match &r[*f] {
            Value::Bool(b) => f64::from(u8::from(*b)),
            v => v.as_f64().unwrap_or(0.0),
        })
        .collect();
    x.extend(cities.iter().map(|c| f64::from(u8::from(r["city"] == *c))));
    let f32s = |v: f64| v as f32 as f64;
    x.iter().zip(&weights).map(|(a, b)| f32s(*a) * f32s(*b)).sum::<f64>() + w["bias"].as_f64().expect("bias")
}

fn speculative(budget_ms: u64) -> String {
    format!(
        "    models:
      gbm: {{ name: house-price, folder: {houses}, version: 1 }}
      slow: {{ name: slow-price, folder: {slow} }}
    strategy:
      speculative: {{ budget_ms: {budget_ms}, fallback: gbm, prefer: [slow, gbm] }}
    batch: {{ max_batch: 50 }}
{HOUSE_FEATURES}",
        houses = folder("examples/house-prices/models"),
        slow = folder("examples/strategies/models"),
    )
}

#[test]
fn speculative_with_a_tight_budget_answers_with_the_fallback_in_time() {
    let dir = tempfile::tempdir().expect("temp dir");
    let summary = run_pipeline(
        dir.path(),
        &pipeline(
            "examples/house-prices/expected-predictions.jsonl",
            &speculative(5),
            false,
        ),
    );
    let out = read_jsonl(&dir.path().join("out.jsonl"));
    assert_eq!(out.len(), 200, "every record answered once, late answers dropped");
    for (i, r) in out.iter().enumerate() {
        assert_eq!(r["id"].as_u64(), Some(i as u64 + 1));
        let audit = &r["_model"];
        assert_eq!(audit["strategy"], "speculative");
        assert_eq!(
            audit["model"], "gbm",
            "the slow model (about 90 ms) cannot answer within 5 ms"
        );
        assert_eq!(audit["budget_exceeded"], true);
        // Answered within the budget plus a tolerance far below the slow model's latency.
        assert!(
            audit["latency_us"].as_u64().expect("latency") < 5_000 + 60_000,
            "{audit}"
        );
        let expected = r["expected"]["1"].as_f64().expect("expected");
        assert!((r["predicted_price"].as_f64().expect("price") - expected).abs() <= 1e-4 * expected);
    }
    let strategy = scorer_summary(&summary, "score")
        .strategy
        .clone()
        .expect("strategy statistics");
    assert_eq!(strategy.budget_misses, 200);
    assert_eq!(
        strategy.answered,
        vec![("gbm".to_string(), 200), ("slow".to_string(), 0)]
    );
}

#[test]
fn speculative_with_a_generous_budget_answers_with_the_preferred_model() {
    let dir = tempfile::tempdir().expect("temp dir");
    let summary = run_pipeline(
        dir.path(),
        &pipeline(
            "examples/house-prices/expected-predictions.jsonl",
            &speculative(10_000),
            false,
        ),
    );
    let out = read_jsonl(&dir.path().join("out.jsonl"));
    assert_eq!(out.len(), 200);
    for r in &out {
        assert_eq!(r["_model"]["model"], "slow", "{}", r["_model"]);
        assert_eq!(r["_model"]["budget_exceeded"], false);
        let expected = slow_price(r);
        assert!(
            (r["predicted_price"].as_f64().expect("price") - expected).abs() <= 1e-3 * expected.abs(),
            "{} vs {expected}",
            r["predicted_price"]
        );
    }
    let strategy = scorer_summary(&summary, "score")
        .strategy
        .clone()
        .expect("strategy statistics");
    assert_eq!(strategy.budget_misses, 0);
    assert_eq!(
        strategy.answered,
        vec![("gbm".to_string(), 0), ("slow".to_string(), 200)]
    );
}

fn fraud_models(strategy: &str) -> String {
    let fraud = folder("examples/fraud/models");
    let constant = folder("examples/strategies/models");
    format!(
        "    models:
      gbm: {{ name: card-fraud, folder: {fraud}, version: 1 }}
      yes: {{ name: always-fraud, folder: {constant} }}
      no: {{ name: never-fraud, folder: {constant} }}
    strategy: {strategy}
{FRAUD_FEATURES}"
    )
}

fn expected_fraud() -> HashMap<String, (i64, f64)> {
    read_jsonl(&root().join("examples/fraud/expected-predictions.jsonl"))
        .iter()
        .map(|e| {
            let p = e["probabilities"].as_array().expect("p");
            let max = p.iter().filter_map(Value::as_f64).fold(0.0, f64::max);
            (
                e["tx_id"].as_str().expect("id").to_string(),
                (e["label"].as_i64().expect("label"), max),
            )
        })
        .collect()
}

#[test]
fn consensus_of_classifiers_takes_the_majority_label_with_its_voters() {
    let dir = tempfile::tempdir().expect("temp dir");
    let summary = run_pipeline(
        dir.path(),
        &pipeline(
            "examples/fraud/transactions.jsonl",
            &fraud_models("{ consensus: { min_agree: 2 } }"),
            false,
        ),
    );
    let expected = expected_fraud();
    let out = read_jsonl(&dir.path().join("out.jsonl"));
    assert_eq!(out.len(), 300);
    for r in &out {
        let (label, _) = expected[r["tx_id"].as_str().expect("id")];
        // The GBM breaks the tie between the constant "yes" and "no" models.
        assert_eq!(r["fraud_predicted"].as_i64(), Some(label));
        assert_eq!(r["_model"]["votes"], 2);
        let partner = if label == 1 { "yes" } else { "no" };
        assert_eq!(r["_model"]["agreed"], serde_json::json!(["gbm", partner]));
    }
    // Every model of the strategy serves, and says so (what the live page shows).
    let models = &scorer_summary(&summary, "score").models;
    let serving: Vec<&str> = models.iter().filter(|m| m.serving).map(|m| m.name.as_str()).collect();
    assert_eq!(serving.len(), 3, "{models:#?}");
}

#[test]
fn consensus_without_enough_agreement_sends_records_to_errors() {
    let dir = tempfile::tempdir().expect("temp dir");
    let summary = run_pipeline(
        dir.path(),
        &pipeline(
            "examples/fraud/transactions.jsonl",
            &fraud_models("{ consensus: { min_agree: 3 } }"),
            false,
        ),
    );
    assert_eq!(summary.records_out("score", "out"), Some(0));
    let errors = read_jsonl(&dir.path().join("errors.jsonl"));
    assert_eq!(errors.len(), 300);
    assert!(errors[0]["_error"]["reason"]
        .as_str()
        .expect("reason")
        .contains("no consensus"));
    assert_eq!(
        scorer_summary(&summary, "score")
            .strategy
            .as_ref()
            .expect("stats")
            .no_consensus,
        300
    );
}

#[test]
fn consensus_of_regressors_combines_their_values() {
    let dir = tempfile::tempdir().expect("temp dir");
    let houses = folder("examples/house-prices/models");
    let scorer = format!(
        "    models:
      v1: {{ name: house-price, folder: {houses}, version: 1 }}
      v2: {{ name: house-price, folder: {houses}, version: 2 }}
      slow: {{ name: slow-price, folder: {slow} }}
    strategy: {{ consensus: {{ combine: median }} }}
{HOUSE_FEATURES}",
        slow = folder("examples/strategies/models")
    );
    run_pipeline(
        dir.path(),
        &pipeline("examples/house-prices/expected-predictions.jsonl", &scorer, false),
    );
    for r in read_jsonl(&dir.path().join("out.jsonl")) {
        let mut three = [
            r["expected"]["1"].as_f64().expect("v1"),
            r["expected"]["2"].as_f64().expect("v2"),
            slow_price(&r),
        ];
        three.sort_by(f64::total_cmp);
        let got = r["predicted_price"].as_f64().expect("price");
        assert!(
            (got - three[1]).abs() <= 1e-3 * three[1].abs(),
            "{got} vs median {}",
            three[1]
        );
        assert_eq!(r["_model"]["votes"], 3);
    }
}

#[test]
fn best_confidence_takes_the_most_probable_answer() {
    let dir = tempfile::tempdir().expect("temp dir");
    let summary = run_pipeline(
        dir.path(),
        &pipeline(
            "examples/fraud/transactions.jsonl",
            &fraud_models("{ best_confidence: {} }"),
            false,
        ),
    );
    let expected = expected_fraud();
    let mut by_model: BTreeMap<String, u64> = BTreeMap::new();
    for r in read_jsonl(&dir.path().join("out.jsonl")) {
        let (label, confidence) = expected[r["tx_id"].as_str().expect("id")];
        // The GBM when it is surer than the constant 0.9 of "yes"; "no" (0.6) never wins.
        let (winner, winner_label) = if confidence > 0.9 { ("gbm", label) } else { ("yes", 1) };
        assert_eq!(r["_model"]["model"], winner, "{r}");
        assert_eq!(r["fraud_predicted"].as_i64(), Some(winner_label));
        *by_model.entry(winner.to_string()).or_default() += 1;
    }
    let answered: BTreeMap<String, u64> = scorer_summary(&summary, "score")
        .strategy
        .clone()
        .expect("stats")
        .answered
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .collect();
    assert_eq!(answered, by_model);
    assert!(
        by_model.len() == 2,
        "both the GBM and the constant model win some: {by_model:?}"
    );
}

fn split_scorer(weights: &str) -> String {
    let houses = folder("examples/house-prices/models");
    format!(
        "    models:
      blue: {{ name: house-price, folder: {houses}, version: 1 }}
      green: {{ name: house-price, folder: {houses}, version: 2 }}
      canary: {{ name: house-price, folder: {houses}, version: 1 }}
    strategy: {{ split: {{ key: id, weights: {weights} }} }}
    batch: {{ max_batch: 512 }}
{HOUSE_FEATURES}"
    )
}

#[test]
fn split_sends_each_key_to_one_model_in_proportion_and_zero_means_never() {
    let dir = tempfile::tempdir().expect("temp dir");
    let yaml = format!(
        "pipeline: split\nstreamlets:\n  gen:\n    kind: ingress\n    source: {{ type: generator, count: 100000, seed: 8 }}\n  score:\n    kind: scorer\n    inputs: [gen]\n{}\n  out:\n    kind: egress\n    inputs: [score, score.errors]\n    sink: {{ type: blackhole }}\n",
        split_scorer("{ blue: 70, green: 30, canary: 0 }")
    );
    let summary = run_pipeline(dir.path(), &yaml);
    let answered: HashMap<String, u64> = scorer_summary(&summary, "score")
        .strategy
        .clone()
        .expect("stats")
        .answered
        .into_iter()
        .collect();
    assert_eq!(answered["canary"], 0, "a weight of 0 receives nothing");
    assert_eq!(answered["blue"] + answered["green"], 100_000);
    let blue = answered["blue"] as f64 / 1000.0;
    assert!((blue - 70.0).abs() < 1.0, "blue got {blue}% of 70%");
    assert!((answered["green"] as f64 / 1000.0 - 30.0).abs() < 1.0);
}

#[test]
fn split_maps_a_key_to_the_same_model_every_time() {
    let assignments = |dir: &Path| -> BTreeMap<u64, String> {
        run_pipeline(
            dir,
            &pipeline(
                "examples/house-prices/expected-predictions.jsonl",
                &split_scorer("{ blue: 50, green: 50 }"),
                false,
            ),
        );
        read_jsonl(&dir.join("out.jsonl"))
            .iter()
            .map(|r| {
                (
                    r["id"].as_u64().expect("id"),
                    r["_model"]["model"].as_str().expect("model").to_string(),
                )
            })
            .collect()
    };
    let (a, b) = (tempfile::tempdir().expect("dir"), tempfile::tempdir().expect("dir"));
    let first = assignments(a.path());
    assert_eq!(first.len(), 200);
    assert_eq!(first, assignments(b.path()));
    for r in read_jsonl(&a.path().join("out.jsonl")) {
        let version = if r["_model"]["model"] == "blue" { "1" } else { "2" };
        assert_eq!(r["_model"]["version"], version);
        let expected = r["expected"][version].as_f64().expect("expected");
        assert!((r["predicted_price"].as_f64().expect("price") - expected).abs() <= 1e-4 * expected);
    }
}

#[test]
fn shadow_output_is_the_primarys_and_agreement_is_measured() {
    let houses = folder("examples/house-prices/models");
    let scorer = format!(
        "    models:
      live: {{ name: house-price, folder: {houses}, version: 2 }}
      candidate: {{ name: house-price, folder: {houses}, version: 1 }}
    strategy: {{ shadow: {{ primary: live, shadows: [candidate], emit: true }} }}
{HOUSE_FEATURES}"
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let summary = run_pipeline(
        dir.path(),
        &pipeline("examples/house-prices/expected-predictions.jsonl", &scorer, true),
    );
    let out = read_jsonl(&dir.path().join("out.jsonl"));
    let shadow = read_jsonl(&dir.path().join("shadow.jsonl"));
    assert_eq!((out.len(), shadow.len()), (200, 200));
    let (mut sum, mut max) = (0.0f64, 0.0f64);
    for (i, (r, s)) in out.iter().zip(&shadow).enumerate() {
        assert_eq!(r["id"].as_u64(), Some(i as u64 + 1));
        assert_eq!(r["_model"]["model"], "live");
        assert_eq!(r["_model"]["version"], "2");
        let (v2, v1) = (
            r["expected"]["2"].as_f64().expect("v2"),
            r["expected"]["1"].as_f64().expect("v1"),
        );
        assert!(
            (r["predicted_price"].as_f64().expect("price") - v2).abs() <= 1e-4 * v2,
            "the primary's answer"
        );
        assert_eq!(s["_model"]["model"], "candidate");
        assert!(
            (s["predicted_price"].as_f64().expect("price") - v1).abs() <= 1e-4 * v1,
            "the shadow's answer"
        );
        sum += (v2 - v1).abs();
        max = max.max((v2 - v1).abs());
    }
    let strategy = scorer_summary(&summary, "score").strategy.clone().expect("stats");
    let (id, agreement) = &strategy.shadows[0];
    assert_eq!(id, "candidate");
    assert_eq!(agreement.compared, 200);
    let mean = agreement.mean_abs_diff.expect("mean");
    assert!((mean - sum / 200.0).abs() <= 1e-3 * mean, "{mean} vs {}", sum / 200.0);
    assert!((agreement.max_abs_diff.expect("max") - max).abs() <= 1e-3 * max);
}
