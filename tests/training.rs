//! Retraining with the tool data scientists use: a pipeline keeps labelled listings as a
//! dataset folder, the example's training script (scikit-learn and skl2onnx, installed by
//! scripts/setup-training.sh) trains on it, and the model it writes passes sluice's checks
//! and scores. Without the training packages this test fails, it does not skip.

mod common;
use common::{read_jsonl, root, run_pipeline};

use serde_json::Value;

#[test]
fn a_model_trained_on_the_pipelines_dataset_passes_the_checks_and_scores() {
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("training");
    let models = root().join("examples/house-prices/models");
    let yaml = format!(
        r#"
pipeline: collect
streamlets:
  listings:
    kind: ingress
    source: {{ type: generator, count: 2000, seed: 8 }}
  sales:
    kind: ingress
    source: {{ type: generator, count: 2000, seed: 8 }}
  price:
    use: {root}/streamlets/house-price-gbm.yaml
    model: {{ name: house-price, folder: {models}, version: "2" }}
    inputs: [listings]
  quality:
    kind: evaluator
    inputs: [price, sales]
    key: id
    label: price
    prediction: predicted_price
    task: regressor
    carry: ["*"]
  keep:
    kind: egress
    inputs: [quality]
    sink: {{ type: dataset, path: {data}, shard_rows: 500, max_rows: 1500 }}
  refused:
    kind: egress
    inputs: [quality.errors, price.errors, listings.errors, sales.errors]
    sink: {{ type: blackhole }}
"#,
        root = root().display(),
        models = models.display(),
        data = data.display()
    );
    run_pipeline(dir.path(), &yaml);
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(data.join("manifest.json")).expect("manifest")).expect("JSON");
    assert_eq!(manifest["rows"], 1500);

    let out = dir.path().join("run");
    let python = root().join(".venv-train/bin/python");
    assert!(python.exists(), "run scripts/setup-training.sh (make test does)");
    let trained = std::process::Command::new(&python)
        .arg(root().join("examples/house-prices/train.py"))
        .args([
            "--dataset",
            &data.display().to_string(),
            "--out",
            &out.display().to_string(),
        ])
        .output()
        .expect("the training script runs");
    assert!(trained.status.success(), "{}", String::from_utf8_lossy(&trained.stderr));
    let metrics: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json")).expect("metrics")).expect("JSON");
    assert_eq!(metrics["rows"], 1500, "it trained on every row of the dataset");
    assert_eq!(metrics["dataset_sha256"], manifest["sha256"]);

    // The new version beside the others, with its descriptor, scores through the real scorer.
    let folder = dir.path().join("models");
    std::fs::create_dir(&folder).expect("folder");
    let bytes = std::fs::read(out.join("model.onnx")).expect("a model");
    std::fs::write(folder.join("house-price-v3.onnx"), &bytes).expect("copy");
    let mut descriptor: Value = serde_json::from_str(
        &std::fs::read_to_string(models.join("house-price-v2.model.json")).expect("v2's descriptor"),
    )
    .expect("JSON");
    use sha2::Digest;
    descriptor["version"] = "3".into();
    descriptor["location"] = "house-price-v3.onnx".into();
    descriptor["sha256"] = sha2::Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>()
        .into();
    std::fs::write(folder.join("house-price-v3.model.json"), descriptor.to_string()).expect("descriptor");
    let score = format!(
        r#"
pipeline: retrained
streamlets:
  listings:
    kind: ingress
    source: {{ type: file, path: {root}/examples/house-prices/expected-predictions.jsonl }}
  price:
    use: {root}/streamlets/house-price-gbm.yaml
    model: {{ name: house-price, folder: {folder} }}
    inputs: [listings]
  out:
    kind: egress
    inputs: [price]
    sink: {{ type: file, path: {dir}/scored.jsonl }}
  failed:
    kind: egress
    inputs: [price.errors, listings.errors]
    sink: {{ type: file, path: {dir}/failed.jsonl }}
"#,
        root = root().display(),
        folder = folder.display(),
        dir = dir.path().display()
    );
    run_pipeline(dir.path(), &score);
    let scored = read_jsonl(&dir.path().join("scored.jsonl"));
    assert_eq!(scored.len(), 200);
    assert!(scored
        .iter()
        .all(|r| r["_model"]["version"] == "3" && r["predicted_price"].as_f64().is_some_and(|p| p > 0.0)));
    assert!(read_jsonl(&dir.path().join("failed.jsonl")).is_empty());
}
