//! Ground truth in the stream: real models score real records, the true outcomes arrive as a
//! stream of their own, and the evaluator's figures per model version equal scikit-learn's on
//! the same answers (computed by the examples' training scripts, committed beside them), to
//! 1e-6 relative: ONNX Runtime here and in Python may differ in a float32's last bit.

mod common;
use common::{copied_models, read_jsonl, root, run_pipeline};

use serde_json::Value;

fn expected(path: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(root().join(path)).expect("expected figures")).expect("JSON")
}

fn close(actual: &Value, expected: &Value, tolerance: f64, what: &str) {
    let (a, e) = (
        actual.as_f64().unwrap_or_else(|| panic!("{what}: {actual}")),
        expected.as_f64().expect("a number"),
    );
    assert!(
        (a - e).abs() <= tolerance * e.abs().max(1.0),
        "{what}: sluice {a}, scikit-learn {e}"
    );
}

fn quality_of(summary: &sluice::runtime::RunSummary, streamlet: &str) -> Value {
    let s = summary
        .streamlets
        .iter()
        .find(|s| s.name == streamlet)
        .expect("the evaluator's summary");
    serde_json::to_value(s.quality.as_ref().expect("an evaluator reports quality")).expect("JSON")
}

#[test]
fn a_classifiers_figures_equal_scikit_learns_on_the_same_answers() {
    let dir = tempfile::tempdir().expect("dir");
    // The true outcomes arrive as their own stream, with records that cannot be labels, a
    // duplicate and a label for a transaction never scored.
    let transactions = std::fs::read_to_string(root().join("examples/fraud/transactions.jsonl")).expect("data");
    let mut labels: Vec<String> = transactions
        .lines()
        .map(|l| {
            let r: Value = serde_json::from_str(l).expect("JSON");
            serde_json::json!({"tx_id": r["tx_id"], "fraud": r["fraud"]}).to_string()
        })
        .collect();
    labels.push(labels[0].clone());
    labels.push(r#"{"fraud": true}"#.into());
    labels.push(r#"{"tx_id": "tx-77-5", "fraud": "maybe"}"#.into());
    labels.push(r#"{"tx_id": "tx-never-scored", "fraud": false}"#.into());
    std::fs::write(dir.path().join("labels.jsonl"), labels.join("\n") + "\n").expect("labels");
    let yaml = format!(
        r#"
pipeline: fraud-quality
streamlets:
  transactions:
    kind: ingress
    source: {{ type: file, path: {root}/examples/fraud/transactions.jsonl }}
  chargebacks:
    kind: ingress
    source: {{ type: file, path: {dir}/labels.jsonl }}
  fraud:
    use: {root}/streamlets/card-fraud.yaml
    model: {{ name: card-fraud, folder: {root}/examples/fraud/models, version: "1" }}
    inputs: [transactions]
  quality:
    kind: evaluator
    inputs: [fraud, chargebacks]
    key: tx_id
    label: fraud
    prediction: fraud_probability
    task: classifier
  joined:
    kind: egress
    inputs: [quality]
    sink: {{ type: file, path: {dir}/joined.jsonl }}
  refused:
    kind: egress
    inputs: [quality.errors, fraud.errors, transactions.errors, chargebacks.errors]
    sink: {{ type: file, path: {dir}/refused.jsonl }}
"#,
        root = root().display(),
        dir = dir.path().display()
    );
    let summary = run_pipeline(dir.path(), &yaml);
    let quality = quality_of(&summary, "quality");
    let sklearn = expected("examples/fraud/expected-quality.json");
    assert_eq!(quality["task"], "classifier");
    let models = quality["models"].as_array().expect("models");
    assert_eq!(models.len(), 1, "{quality:#}");
    let model = &models[0];
    assert_eq!(
        (model["name"].as_str(), model["version"].as_str()),
        (Some("card-fraud"), Some("1"))
    );
    for figures in ["window", "since_start"] {
        let f = &model[figures];
        assert_eq!(f["labelled"], sklearn["labelled"], "{figures}");
        for metric in ["accuracy", "precision", "recall", "f1", "log_loss"] {
            close(&f[metric], &sklearn[metric], 1e-6, &format!("{figures} {metric}"));
        }
        let calibration = f["calibration"].as_array().expect("a calibration table");
        for (i, bin) in calibration.iter().enumerate() {
            close(
                &bin["observed"],
                &sklearn["calibration"]["observed"][i],
                1e-6,
                "observed",
            );
            close(
                &bin["mean_predicted"],
                &sklearn["calibration"]["mean_predicted"][i],
                1e-6,
                "mean predicted",
            );
        }
        assert_eq!(
            calibration.len(),
            sklearn["calibration"]["observed"].as_array().map_or(0, Vec::len)
        );
    }
    // The window's AUC is exact; since start it is binned (10,000 bins).
    close(&model["window"]["roc_auc"], &sklearn["roc_auc"], 1e-6, "window AUC");
    close(
        &model["since_start"]["roc_auc"],
        &sklearn["roc_auc"],
        1e-3,
        "binned AUC",
    );
    assert_eq!(quality["dropped"]["duplicate_labels"], 1);
    assert_eq!(
        quality["waiting_labels"], 1,
        "the label of a transaction never scored waits"
    );
    assert_eq!(model["waiting"], 0);

    let joined = read_jsonl(&dir.path().join("joined.jsonl"));
    assert_eq!(joined.len(), 300);
    let first = joined.iter().find(|r| r["tx_id"] == "tx-77-1").expect("tx-77-1 joined");
    assert_eq!(first["label"], 0.0);
    assert_eq!(first["_model"]["version"], "1");
    assert_eq!(first["correct"], true);
    close(
        &first["error"],
        &first["prediction"],
        1e-12,
        "the error of a negative is its score",
    );
    let refused = read_jsonl(&dir.path().join("refused.jsonl"));
    assert_eq!(refused.len(), 2, "{refused:#?}");
    assert!(refused.iter().all(|r| r["_error"]["streamlet"] == "quality"));
    assert!(refused
        .iter()
        .any(|r| r["fraud"] == "maybe" && r["_error"]["reason"].as_str().unwrap_or("").contains("positive")));
    assert!(refused.iter().any(|r| r["_error"]["path"] == "tx_id"));
}

#[test]
fn a_regressors_figures_equal_scikit_learns_per_version() {
    let dir = tempfile::tempdir().expect("dir");
    let listings = root().join("examples/house-prices/expected-predictions.jsonl");
    let sklearn = expected("examples/house-prices/expected-quality.json");
    for version in ["1", "2"] {
        let yaml = format!(
            r#"
pipeline: price-quality
streamlets:
  listings:
    kind: ingress
    source: {{ type: file, path: {listings} }}
  sales:
    kind: ingress
    source: {{ type: file, path: {listings} }}
  price:
    use: {root}/streamlets/house-price-gbm.yaml
    model: {{ name: house-price, folder: {root}/examples/house-prices/models, version: "{version}" }}
    inputs: [listings]
  quality:
    kind: evaluator
    inputs: [price, sales]
    key: id
    label: price
    prediction: predicted_price
    task: regressor
    window: 50
  joined:
    kind: egress
    inputs: [quality]
    sink: {{ type: blackhole }}
  refused:
    kind: egress
    inputs: [quality.errors, price.errors, listings.errors, sales.errors]
    sink: {{ type: file, path: {dir}/refused-{version}.jsonl }}
"#,
            root = root().display(),
            listings = listings.display(),
            dir = dir.path().display()
        );
        let summary = run_pipeline(dir.path(), &yaml);
        let quality = quality_of(&summary, "quality");
        let model = &quality["models"][0];
        assert_eq!(model["version"], version);
        let f = &model["since_start"];
        let expected = &sklearn[version];
        assert_eq!(f["labelled"], expected["labelled"]);
        for metric in ["mae", "rmse", "mape"] {
            close(&f[metric], &expected[metric], 1e-6, &format!("v{version} {metric}"));
        }
        // The mean error is a small difference of large answers: its tolerance is the MAE's.
        let scale = expected["mae"].as_f64().expect("mae") / expected["mean_error"].as_f64().expect("bias").abs();
        close(&f["mean_error"], &expected["mean_error"], 1e-6 * scale, "mean error");
        assert_eq!(model["window"]["labelled"], 50, "the window holds the latest 50");
        assert!(read_jsonl(&dir.path().join(format!("refused-{version}.jsonl"))).is_empty());
    }
}

/// A pipeline of listings and their sale prices, both at `rate` per second, scored by
/// `scorer` (YAML lines under `price:`) and judged by an evaluator with `rules`.
fn judged(dir: &std::path::Path, count: u64, scorer: &str, rules: &str) -> String {
    format!(
        r#"
pipeline: judged
streamlets:
  listings:
    kind: ingress
    source: {{ type: generator, count: {count}, seed: 5, rate: 2000 }}
  sales:
    kind: ingress
    source: {{ type: generator, count: {count}, seed: 5, rate: 2000 }}
  price:
    use: {root}/streamlets/house-price-gbm.yaml
    inputs: [listings]
{scorer}
  quality:
    kind: evaluator
    inputs: [price, sales]
    key: id
    label: price
    prediction: predicted_price
    task: regressor
    window: 1000
    scorer: price
{rules}
  joined:
    kind: egress
    inputs: [quality]
    sink: {{ type: file, path: {dir}/joined.jsonl }}
  refused:
    kind: egress
    inputs: [quality.errors, price.errors, listings.errors, sales.errors]
    sink: {{ type: blackhole }}
  lifecycle:
    kind: egress
    inputs: [price.audit]
    sink: {{ type: file, path: {dir}/audit.jsonl }}
"#,
        root = root().display(),
        dir = dir.display()
    )
}

/// The audit records of the run: (arm, version, event) in order, and the records.
fn audit(dir: &std::path::Path) -> (Vec<(String, String, String)>, Vec<Value>) {
    let records = read_jsonl(&dir.join("audit.jsonl"));
    let events = records
        .iter()
        .map(|r| {
            let text = |k: &str| r[k].as_str().unwrap_or_default().to_string();
            (text("arm"), text("version"), text("event"))
        })
        .collect();
    (events, records)
}

#[test]
fn a_challenger_that_beats_the_serving_model_is_promoted_at_the_labelled_answer_the_rule_names() {
    let dir = tempfile::tempdir().expect("dir");
    let models = root().join("examples/house-prices/models");
    let scorer = format!(
        r#"    model: null
    models:
      blue: {{ name: house-price, folder: {m}, version: "1" }}
      green: {{ name: house-price, folder: {m}, version: "2" }}
    strategy: {{ split: {{ weights: {{ blue: 0.8, green: 0.2 }}, key: id }} }}"#,
        m = models.display()
    );
    let rules = "    promote: { metric: mae, by: 5000, min_labelled: 100 }";
    let summary = run_pipeline(dir.path(), &judged(dir.path(), 3000, &scorer, rules));
    let quality = quality_of(&summary, "quality");
    let decisions = quality["decisions"].as_array().expect("decisions");
    assert_eq!(decisions.len(), 1, "{decisions:#?}");
    let d = &decisions[0];
    assert_eq!(
        (d["action"].as_str(), d["model"].as_str(), d["version"].as_str()),
        (Some("promoted"), Some("green"), Some("2"))
    );
    assert_eq!(d["from_model"], "blue");
    // Decided on the very labelled answer that made the rule hold: not one earlier or later.
    assert_eq!(d["labelled"], 100, "{d:#}");
    assert!(d["from_labelled"].as_u64().unwrap_or(0) >= 100, "{d:#}");
    assert!(
        d["value"].as_f64().unwrap() + 5000.0 < d["against"].as_f64().unwrap(),
        "{d:#}"
    );
    // Both arms are versions of one model in one folder: blue, the serving arm, takes green's
    // version, and the split goes on as configured (green keeps its 20%, to judge the next
    // version). From then on version 2 answers every record.
    let joined = read_jsonl(&dir.path().join("joined.jsonl"));
    assert_eq!(joined.len(), 3000);
    let tail = &joined[joined.len() - 1000..];
    assert!(
        tail.iter().all(|r| r["_model"]["version"] == "2"),
        "version 1 answered after the promotion"
    );
    assert!(tail.iter().any(|r| r["_model"]["model"] == "blue"));
    assert!(tail.iter().any(|r| r["_model"]["model"] == "green"));
    // The audit trail says each version was seen, loaded and served, then why blue took v2.
    let (events, records) = audit(dir.path());
    let event = |arm: &str, version: &str, what: &str| (arm.to_string(), version.to_string(), what.to_string());
    let place = |expected: (String, String, String)| {
        events
            .iter()
            .position(|e| *e == expected)
            .unwrap_or_else(|| panic!("{expected:?} not in {events:?}"))
    };
    for expected in [
        event("blue", "1", "seen"),
        event("blue", "1", "loaded"),
        event("blue", "1", "serving"),
        event("green", "2", "serving"),
    ] {
        place(expected);
    }
    assert!(place(event("blue", "1", "retired")) < place(event("blue", "2", "serving")));
    assert!(place(event("blue", "2", "serving")) < place(event("blue", "2", "promoted")));
    let promoted = records.iter().find(|r| r["event"] == "promoted").expect("a promotion");
    assert_eq!(promoted["scorer"], "price");
    assert_eq!(promoted["figures"]["metric"], "mae");
    assert_eq!(promoted["figures"]["labelled"], 100);
    assert_eq!(promoted["figures"]["from_model"], "blue");
    assert_eq!(promoted["figures"]["challenger"], "green");
}

#[test]
fn a_serving_version_worse_than_the_limit_is_rolled_back_to_the_one_before() {
    let dir = tempfile::tempdir().expect("dir");
    let models = copied_models(dir.path());
    let scorer = format!("    model: {{ name: house-price, folder: {} }}", models.display());
    // Both versions are worse than 1,000 (their MAE is tens of thousands): v2 rolls back to
    // v1, and v1 has no version before it, so it serves on.
    let rules = "    rollback: { metric: mae, worse_than: 1000, min_labelled: 50 }";
    let summary = run_pipeline(dir.path(), &judged(dir.path(), 2000, &scorer, rules));
    let quality = quality_of(&summary, "quality");
    let decisions = quality["decisions"].as_array().expect("decisions");
    assert_eq!(decisions.len(), 1, "{decisions:#?}");
    let d = &decisions[0];
    assert_eq!(
        (d["action"].as_str(), d["version"].as_str(), d["to_version"].as_str()),
        (Some("rolled_back"), Some("2"), Some("1"))
    );
    assert_eq!(d["labelled"], 50, "{d:#}");
    let joined = read_jsonl(&dir.path().join("joined.jsonl"));
    let tail = &joined[joined.len() - 500..];
    assert!(
        tail.iter().all(|r| r["_model"]["version"] == "1"),
        "v2 answered after the rollback"
    );
    // v2 rolled back (with the figures), v1 serving again, and v1's own rollback refused.
    let (events, records) = audit(dir.path());
    let kinds: Vec<(&str, &str)> = events.iter().map(|(_, v, e)| (v.as_str(), e.as_str())).collect();
    let at = |v: &str, e: &str| {
        kinds
            .iter()
            .position(|k| *k == (v, e))
            .unwrap_or_else(|| panic!("{v} {e} in {kinds:?}"))
    };
    assert!(at("2", "serving") < at("2", "rolled_back"));
    assert!(at("2", "rolled_back") < at("1", "loaded"));
    assert!(at("1", "loaded") < at("2", "retired"));
    let rolled = records
        .iter()
        .find(|r| r["event"] == "rolled_back")
        .expect("a rollback");
    assert_eq!(rolled["figures"]["labelled"], 50);
    assert_eq!(rolled["figures"]["worse_than"], 1000.0);
    assert!(
        records
            .iter()
            .any(|r| r["event"] == "rollback_failed" && r["version"] == "1"),
        "{kinds:?}"
    );
}

#[test]
fn a_promotion_survives_a_restart_and_an_edit_of_the_scorer_wins_over_it() {
    let dir = tempfile::tempdir().expect("dir");
    let models = root().join("examples/house-prices/models");
    let scorer = |blue: f64, green: f64| {
        format!(
            r#"    model: null
    models:
      blue: {{ name: house-price, folder: {m}, version: "1" }}
      green: {{ name: house-price, folder: {m}, version: "2" }}
    strategy: {{ split: {{ weights: {{ blue: {blue}, green: {green} }}, key: id }} }}"#,
            m = models.display()
        )
    };
    let rules = format!(
        "    promote: {{ metric: mae, by: 5000, min_labelled: 100 }}\n    state: {}/state",
        dir.path().display()
    );
    let run = |count: u64, scorer: &str| {
        let summary = run_pipeline(dir.path(), &judged(dir.path(), count, scorer, &rules));
        let quality = quality_of(&summary, "quality");
        let joined = read_jsonl(&dir.path().join("joined.jsonl"));
        let answered: std::collections::BTreeSet<(String, String)> = joined
            .iter()
            .map(|r| {
                let text = |k: &str| r["_model"][k].as_str().unwrap_or_default().to_string();
                (text("model"), text("version"))
            })
            .collect();
        (quality["decisions"].as_array().cloned().unwrap_or_default(), answered)
    };
    let pair = |arm: &str, version: &str| (arm.to_string(), version.to_string());
    let (decisions, _) = run(3000, &scorer(0.8, 0.2));
    assert_eq!(decisions.len(), 1);
    let kept = dir.path().join("state/judged.quality.decisions.json");
    assert!(kept.is_file(), "the decision is kept in the state folder");

    // A restart: version 2 answers every record from the first one (blue took it again), and
    // the audit says why.
    let (decisions, answered) = run(300, &scorer(0.8, 0.2));
    assert_eq!(decisions.len(), 1, "{decisions:#?}");
    assert_eq!(decisions[0]["restored"], true);
    assert_eq!(decisions[0]["model"], "green");
    assert_eq!(
        answered,
        [pair("blue", "2"), pair("green", "2")].into(),
        "version 1 answered after the restart"
    );
    let audit = read_jsonl(&dir.path().join("audit.jsonl"));
    let promoted = audit
        .iter()
        .find(|r| r["event"] == "promoted")
        .expect("the restored promotion is audited");
    assert_eq!(promoted["figures"]["restored"], true);

    // The user edits the split: their weights win over the earlier promotion (too few records
    // follow for the rule to promote anew).
    let (decisions, answered) = run(150, &scorer(0.5, 0.5));
    assert!(decisions.is_empty(), "{decisions:#?}");
    assert!(
        answered.contains(&pair("blue", "1")),
        "the edited split serves blue's version 1 again: {answered:?}"
    );
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&kept).expect("kept")).expect("JSON");
    assert_eq!(saved["decisions"], serde_json::json!([]), "{saved:#}");
}

#[test]
fn the_join_holds_across_a_hot_reload_of_the_scorer() {
    let dir = tempfile::tempdir().expect("dir");
    let models = root().join("examples/house-prices/models");
    let scorer = |version: &str| {
        format!(
            "    model: {{ name: house-price, folder: {}, version: \"{version}\" }}",
            models.display()
        )
    };
    let file = dir.path().join("pipeline.yaml");
    std::fs::write(
        &file,
        judged(dir.path(), 3000, &scorer("1"), "").replace("rate: 2000", "rate: 1000"),
    )
    .expect("pipeline");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let topology = sluice::topology::load(&file).unwrap_or_else(|e| panic!("{e}"));
    let (handle, task) = rt.block_on(sluice::runtime::run_file(
        &file,
        topology,
        tokio_util::sync::CancellationToken::new(),
    ));
    let labelled = |status: &sluice::runtime::Status| -> u64 {
        status
            .streamlets
            .iter()
            .filter_map(|s| s.quality.as_ref())
            .flat_map(|q| q.models.iter().map(|m| m.since_start.labelled))
            .sum()
    };
    let started = std::time::Instant::now();
    while labelled(&handle.status()) < 800 {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "no labels joined"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // The scorer is replaced while predictions and labels are in flight.
    let edited = judged(dir.path(), 3000, &scorer("2"), "").replace("rate: 2000", "rate: 1000");
    let tmp = dir.path().join("pipeline.tmp");
    std::fs::write(&tmp, edited).expect("edit");
    std::fs::rename(&tmp, &file).expect("edit");
    let summary = rt.block_on(task).expect("the run task").expect("the run succeeds");
    assert_eq!(summary.reloads, 1);
    let quality = quality_of(&summary, "quality");
    let versions: Vec<(String, u64)> = quality["models"]
        .as_array()
        .expect("models")
        .iter()
        .map(|m| {
            (
                m["version"].as_str().unwrap_or_default().to_string(),
                m["since_start"]["labelled"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(versions.len(), 2, "{versions:?}");
    assert!(versions.iter().all(|(_, n)| *n > 0), "{versions:?}");
    assert_eq!(
        versions.iter().map(|(_, n)| n).sum::<u64>(),
        3000,
        "every listing joined once: {versions:?}"
    );
    assert_eq!(quality["waiting_labels"], 0);
    assert_eq!(
        quality["dropped"],
        serde_json::json!({"expired_predictions": 0, "expired_labels": 0, "evicted": 0, "duplicate_labels": 0, "duplicate_predictions": 0})
    );
}

#[test]
fn the_card_fraud_demo_promotes_its_challenger_and_the_audit_says_why() {
    let out = tempfile::tempdir().expect("dir");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["run", "pipelines/card-fraud-quality.yaml"])
        .env("SLUICE_OUT", out.path())
        .current_dir(root())
        .output()
        .expect("sluice runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let audit = read_jsonl(&out.path().join("model-audit.jsonl"));
    let promoted = audit
        .iter()
        .find(|r| r["event"] == "promoted")
        .unwrap_or_else(|| panic!("no promotion in {audit:#?}"));
    // The champion arm takes the challenger's version (both are versions of card-fraud).
    assert_eq!(
        (promoted["arm"].as_str(), promoted["version"].as_str()),
        (Some("champion"), Some("2"))
    );
    assert_eq!(promoted["figures"]["challenger"], "challenger");
    let figures = &promoted["figures"];
    assert_eq!(figures["metric"], "roc_auc");
    assert_eq!(figures["labelled"], 300);
    assert!(figures["value"].as_f64().unwrap() > figures["serving_value"].as_f64().unwrap() + 0.02);
    assert!(
        audit
            .iter()
            .any(|r| r["event"] == "retired" && r["arm"] == "champion" && r["version"] == "1"),
        "the champion's version 1 is retired by the promotion"
    );
    // Every chargeback that came was joined with its transaction's prediction, once.
    let judged = read_jsonl(&out.path().join("judged-transactions.jsonl"));
    let chargebacks = std::fs::read_to_string(root().join("examples/fraud/chargebacks.jsonl")).expect("labels");
    assert_eq!(judged.len(), chargebacks.lines().count());
    let ids: std::collections::BTreeSet<&str> = judged.iter().filter_map(|r| r["tx_id"].as_str()).collect();
    assert_eq!(ids.len(), judged.len());
}

#[test]
fn a_rollback_survives_a_restart_and_an_edit_of_the_scorer_wins_over_it() {
    let dir = tempfile::tempdir().expect("dir");
    let models = copied_models(dir.path());
    let scorer = |extra: &str| {
        format!(
            "    model: {{ name: house-price, folder: {} }}\n{extra}",
            models.display()
        )
    };
    let rules = format!(
        "    rollback: {{ metric: mae, worse_than: 1000, min_labelled: 50 }}\n    state: {}/state",
        dir.path().display()
    );
    let run = |count: u64, scorer: &str| {
        let summary = run_pipeline(dir.path(), &judged(dir.path(), count, scorer, &rules));
        let quality = quality_of(&summary, "quality");
        let versions: std::collections::BTreeSet<String> = read_jsonl(&dir.path().join("joined.jsonl"))
            .iter()
            .map(|r| r["_model"]["version"].as_str().unwrap_or_default().to_string())
            .collect();
        (quality["decisions"].as_array().cloned().unwrap_or_default(), versions)
    };
    let (decisions, _) = run(1000, &scorer(""));
    assert_eq!(decisions.len(), 1, "{decisions:#?}");
    // A restart: v2 is rolled back again before the first listing, and v1 serves them all.
    let (decisions, versions) = run(40, &scorer(""));
    assert_eq!(decisions.len(), 1, "{decisions:#?}");
    assert_eq!(decisions[0]["restored"], true);
    assert_eq!(versions, ["1".to_string()].into());
    // An edit of the scorer (here its batch size) wins: v2 serves again (too few listings
    // follow for the rule to roll it back anew).
    let (decisions, versions) = run(40, &scorer("    batch: { max_batch: 64 }"));
    assert!(decisions.is_empty(), "{decisions:#?}");
    assert_eq!(versions, ["2".to_string()].into());
}

#[test]
fn a_shadow_judged_on_its_own_answers_is_promoted_to_primary() {
    let dir = tempfile::tempdir().expect("dir");
    // Two models of their own (two folders): the roles change at the promotion.
    let models = root().join("examples/house-prices/models");
    let other = copied_models(dir.path());
    let scorer = format!(
        r#"    model: null
    models:
      blue: {{ name: house-price, folder: {m}, version: "1" }}
      green: {{ name: house-price, folder: {o}, version: "2" }}
    strategy: {{ shadow: {{ primary: blue, shadows: [green], emit: true }} }}"#,
        m = models.display(),
        o = other.display()
    );
    let rules = "    promote: { metric: rmse, by: 1000, min_labelled: 200 }";
    // The evaluator judges the shadow's answers too; the scored records are kept apart.
    let yaml = judged(dir.path(), 2000, &scorer, rules)
        .replace("    inputs: [price, sales]", "    inputs: [price, price.shadow, sales]")
        .replace(
            "  lifecycle:\n",
            &format!(
                "  scored:\n    kind: egress\n    inputs: [price]\n    sink: {{ type: file, path: {}/scored.jsonl }}\n  lifecycle:\n",
                dir.path().display()
            ),
        );
    let summary = run_pipeline(dir.path(), &yaml);
    let quality = quality_of(&summary, "quality");
    let arms: Vec<(&str, u64)> = quality["models"]
        .as_array()
        .expect("models")
        .iter()
        .map(|m| {
            (
                m["arm"].as_str().unwrap_or_default(),
                m["since_start"]["labelled"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert!(
        arms.iter().any(|(a, n)| *a == "green" && *n > 0),
        "the shadow is judged: {arms:?}"
    );
    let decisions = quality["decisions"].as_array().expect("decisions");
    assert_eq!(decisions.len(), 1, "{decisions:#?}");
    assert_eq!(
        (decisions[0]["model"].as_str(), decisions[0]["labelled"].as_u64()),
        (Some("green"), Some(200))
    );
    // After the promotion the primary's answers, on `out`, are green's.
    let scored = read_jsonl(&dir.path().join("scored.jsonl"));
    assert_eq!(scored.len(), 2000);
    assert!(scored[..50].iter().all(|r| r["_model"]["model"] == "blue"));
    assert!(scored[scored.len() - 500..]
        .iter()
        .all(|r| r["_model"]["model"] == "green"));
}

#[test]
fn labelled_examples_with_their_features_roll_into_a_dataset_folder_with_a_manifest() {
    let dir = tempfile::tempdir().expect("dir");
    let models = root().join("examples/house-prices/models");
    let scorer = format!(
        "    model: {{ name: house-price, folder: {}, version: \"2\" }}",
        models.display()
    );
    let data = dir.path().join("training");
    let yaml = judged(dir.path(), 3000, &scorer, "    carry: [\"*\"]").replace(
        &format!(
            "    sink: {{ type: file, path: {}/joined.jsonl }}",
            dir.path().display()
        ),
        &format!(
            "    sink: {{ type: dataset, path: {}, shard_rows: 500, max_rows: 1500 }}",
            data.display()
        ),
    );
    run_pipeline(dir.path(), &yaml);
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(data.join("manifest.json")).expect("a manifest")).expect("JSON");
    assert_eq!(manifest["rows"], 1500, "{manifest:#}");
    let shards = manifest["shards"].as_array().expect("shards");
    assert_eq!(shards.len(), 3);
    assert!(manifest["from"].as_str() <= manifest["to"].as_str());
    let mut names: Vec<String> = std::fs::read_dir(&data)
        .expect("folder")
        .map(|e| e.expect("entry").file_name().to_string_lossy().to_string())
        .collect();
    names.sort();
    let mut listed: Vec<String> = shards
        .iter()
        .map(|s| s["file"].as_str().unwrap_or_default().to_string())
        .collect();
    listed.push("manifest.json".into());
    listed.sort();
    assert_eq!(names, listed, "the folder holds what the manifest lists");
    for shard in shards {
        let path = data.join(shard["file"].as_str().expect("file"));
        assert_eq!(
            sluice::streamlets::egress::dataset::file_sha256(&path).expect("readable"),
            shard["sha256"].as_str().expect("sha")
        );
        let rows = read_jsonl(&path);
        assert_eq!(rows.len() as u64, shard["rows"].as_u64().expect("rows"));
        for r in &rows {
            // A training example: the features, the true outcome, and what the model said.
            for field in ["bedrooms", "sqft_living", "city", "label", "prediction"] {
                assert!(!r[field].is_null(), "{field} missing from {r}");
            }
            assert_eq!(r["_model"]["version"], "2");
        }
    }
}

/// After a promotion the serving arm keeps the version judged better, and the next version in
/// the folder is the challenger's: judged as a shadow before it serves, never served unjudged.
#[test]
fn a_version_that_arrives_after_a_promotion_is_a_shadow_first() {
    let dir = tempfile::tempdir().expect("dir");
    let models = copied_models(dir.path());
    std::fs::remove_file(models.join("house-price-v2.model.json")).expect("v2 comes later");
    let scorer = format!(
        r#"    model: null
    models:
      serving: {{ name: house-price, folder: {m}, version: "1" }}
      candidate: {{ name: house-price, folder: {m} }}
    strategy: {{ shadow: {{ primary: serving, shadows: [candidate], emit: true }} }}"#,
        m = models.display()
    );
    let rules = "    promote: { metric: mae, by: 5000, min_labelled: 100 }";
    let yaml = judged(dir.path(), 6000, &scorer, rules)
        .replace("rate: 2000", "rate: 1000")
        .replace("    inputs: [price, sales]", "    inputs: [price, price.shadow, sales]");
    let file = dir.path().join("pipeline.yaml");
    std::fs::write(&file, yaml).expect("pipeline");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let topology = sluice::topology::load(&file).unwrap_or_else(|e| panic!("{e}"));
    let (handle, task) = rt.block_on(sluice::runtime::run_file(
        &file,
        topology,
        tokio_util::sync::CancellationToken::new(),
    ));
    let audit = || read_jsonl(&dir.path().join("audit.jsonl"));
    let has = |arm: &str, version: &str, event: &str| {
        audit()
            .iter()
            .any(|e| e["arm"] == arm && e["version"] == version && e["event"] == event)
    };
    let wait = |what: &str, done: &dyn Fn() -> bool| {
        let started = std::time::Instant::now();
        while !done() {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(60),
                "{what}: {:#?}",
                audit()
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    };
    // v2 arrives, shadows v1, is better: the serving arm takes it.
    std::fs::copy(
        root().join("examples/house-prices/models/house-price-v2.model.json"),
        models.join("house-price-v2.model.json"),
    )
    .expect("v2");
    wait("v2 promoted", &|| has("serving", "2", "promoted"));
    // v3 (v1's model again, so worse) arrives after the promotion: the candidate takes it.
    let v1: Value =
        serde_json::from_str(&std::fs::read_to_string(models.join("house-price-v1.model.json")).expect("v1"))
            .expect("JSON");
    let mut v3 = v1.clone();
    v3["version"] = "3".into();
    std::fs::write(models.join("house-price-v3.model.json"), v3.to_string()).expect("v3");
    wait("v3 shadows", &|| has("candidate", "3", "serving"));
    let _ = handle;
    let summary = rt.block_on(task).expect("the run task").expect("the run succeeds");
    assert!(!has("serving", "3", "serving"), "v3 served unjudged: {:#?}", audit());
    let quality = quality_of(&summary, "quality");
    let promotions: Vec<&Value> = quality["decisions"]
        .as_array()
        .expect("decisions")
        .iter()
        .filter(|d| d["action"] == "promoted")
        .collect();
    assert_eq!(promotions.len(), 1, "{promotions:#?}");
    // After the run, the serving arm's answers are v2's and v3 answered only as the shadow.
    let joined = read_jsonl(&dir.path().join("joined.jsonl"));
    let by = |arm: &str, version: &str| {
        joined
            .iter()
            .filter(|r| r["_model"]["model"] == arm && r["_model"]["version"] == version)
            .count()
    };
    assert!(by("candidate", "3") > 0 && by("serving", "3") == 0 && by("serving", "2") > 0);
}

/// A version taken by a promotion and then rolled back is not promoted again: the serving
/// model goes back to its own version and stays there, though the challenger still serves
/// the rolled-back one.
#[test]
fn a_version_rolled_back_after_its_promotion_is_not_promoted_again() {
    let dir = tempfile::tempdir().expect("dir");
    let models = copied_models(dir.path());
    let scorer = format!(
        r#"    model: null
    models:
      serving: {{ name: house-price, folder: {m}, version: "1" }}
      candidate: {{ name: house-price, folder: {m} }}
    strategy: {{ shadow: {{ primary: serving, shadows: [candidate], emit: true }} }}"#,
        m = models.display()
    );
    // v2 beats v1 and is taken; then it is worse than the (impossible) limit and rolled back.
    let rules = "    promote: { metric: mae, by: 5000, min_labelled: 100 }\n    rollback: { metric: mae, worse_than: 1000, min_labelled: 100 }";
    let yaml = judged(dir.path(), 3000, &scorer, rules)
        .replace("    inputs: [price, sales]", "    inputs: [price, price.shadow, sales]");
    let summary = run_pipeline(dir.path(), &yaml);
    let quality = quality_of(&summary, "quality");
    let decisions: Vec<(String, String, String)> = quality["decisions"]
        .as_array()
        .expect("decisions")
        .iter()
        .map(|d| {
            let text = |k: &str| d[k].as_str().unwrap_or_default().to_string();
            (text("action"), text("model"), text("version"))
        })
        .collect();
    let promotions = decisions.iter().filter(|d| d.0 == "promoted").count();
    assert_eq!(promotions, 1, "{decisions:#?}");
    assert!(
        decisions.contains(&("rolled_back".into(), "serving".into(), "2".into())),
        "{decisions:#?}"
    );
    // From the rollback on, the serving model answers with its own version 1.
    let (events, _) = audit(dir.path());
    let taken = events
        .iter()
        .filter(|e| e.0 == "serving" && e.1 == "2" && e.2 == "serving")
        .count();
    assert_eq!(taken, 1, "v2 was taken once: {events:?}");
    let joined = read_jsonl(&dir.path().join("joined.jsonl"));
    let tail: Vec<&Value> = joined
        .iter()
        .rev()
        .filter(|r| r["_model"]["model"] == "serving")
        .take(300)
        .collect();
    assert!(
        !tail.is_empty() && tail.iter().all(|r| r["_model"]["version"] == "1"),
        "the serving model answered with v2 again"
    );
}
