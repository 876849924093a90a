//! Retraining with the tool data scientists use: a pipeline keeps labelled listings as a
//! dataset folder, the example's training script (scikit-learn and skl2onnx, installed by
//! scripts/setup-training.sh) trains on it, and the model it writes passes sluice's checks
//! and scores. Without the training packages this test fails, it does not skip.

mod common;
use common::{copied_models, read_jsonl, root, run_pipeline, Running};

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

#[test]
fn new_rows_start_a_run_whose_version_shadows_the_serving_one_with_its_lineage_and_is_promoted() {
    let dir = tempfile::tempdir().expect("dir");
    let models = copied_models(dir.path());
    let python = root().join(".venv-train/bin/python");
    // The listings keep coming (for up to ten minutes) until the loop has gone round once: how
    // long training and promotion take depends on the machine, so the run is stopped on what
    // happened, not after a fixed number of records.
    let yaml = format!(
        r#"
pipeline: loop
streamlets:
  listings:
    kind: ingress
    source: {{ type: generator, count: 1200000, seed: 9, rate: 2000 }}
  sales:
    kind: ingress
    source: {{ type: generator, count: 1200000, seed: 9, rate: 2000 }}
  price:
    use: {root}/streamlets/house-price-gbm.yaml
    model: null
    models:
      serving: {{ name: house-price, folder: {models}, version: "2" }}
      candidate: {{ name: house-price, folder: {models} }}
    strategy: {{ shadow: {{ primary: serving, shadows: [candidate], emit: true }} }}
    inputs: [listings]
  quality:
    kind: evaluator
    inputs: [price, price.shadow, sales]
    key: id
    label: price
    prediction: predicted_price
    task: regressor
    window: 300
    carry: ["*"]
    scorer: price
    promote: {{ metric: mae, by: 5000, min_labelled: 300 }}
    state: {dir}/state
  keep:
    kind: egress
    inputs: [quality]
    sink: {{ type: dataset, path: {dir}/training, shard_rows: 250, max_rows: 3000 }}
  retrain:
    kind: trainer
    inputs: [quality]
    dataset: {dir}/training
    when: {{ every_rows: 1500 }}
    min_rows: 1000
    command: ["{python}", "{root}/examples/house-prices/train.py", "--dataset", "{{dataset}}", "--out", "{{output}}"]
    timeout: 2m
    publish: {{ scorer: price, model: candidate }}
    state: {dir}/state
  runs:
    kind: egress
    inputs: [retrain]
    sink: {{ type: file, path: {dir}/runs.jsonl }}
  lifecycle:
    kind: egress
    inputs: [price.audit]
    sink: {{ type: file, path: {dir}/audit.jsonl }}
  refused:
    kind: egress
    inputs: [quality.errors, price.errors, listings.errors, sales.errors]
    sink: {{ type: blackhole }}
"#,
        root = root().display(),
        models = models.display(),
        dir = dir.path().display(),
        python = python.display()
    );
    let file = dir.path().join("pipeline.yaml");
    std::fs::write(&file, &yaml).expect("write pipeline");
    let running = Running::start(&file);
    let audit_file = dir.path().join("audit.jsonl");
    // Read while it is written: a line not yet whole is skipped.
    let promoted_v3 = || {
        std::fs::read_to_string(&audit_file)
            .unwrap_or_default()
            .lines()
            .any(|l| {
                serde_json::from_str::<Value>(l)
                    .is_ok_and(|r| r["arm"] == "serving" && r["version"] == "3" && r["event"] == "promoted")
            })
    };
    let waited = std::time::Instant::now();
    while !promoted_v3() && waited.elapsed() < std::time::Duration::from_secs(300) {
        running.assert_running();
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let summary = running.finish();
    let quality = summary
        .streamlets
        .iter()
        .find(|s| s.name == "quality")
        .and_then(|s| s.quality.clone())
        .expect("quality");
    let figures: Vec<String> = quality
        .models
        .iter()
        .map(|m| {
            format!(
                "{:?} v{}: window mae {:?} over {}",
                m.arm, m.version, m.window.mae, m.window.labelled
            )
        })
        .collect();
    let runs = read_jsonl(&dir.path().join("runs.jsonl"));
    let published = runs
        .iter()
        .find(|r| r["event"] == "published")
        .unwrap_or_else(|| panic!("no version published: {runs:#?}"));
    assert_eq!(published["version"], "3");
    assert_eq!(published["trigger"]["kind"], "every_rows");
    // A trigger while the run went on started no second run at once.
    let first = published["run"].as_u64().expect("run");
    let started_before: Vec<&Value> = runs
        .iter()
        .take_while(|r| !(r["event"] == "published" && r["run"] == first))
        .filter(|r| r["event"] == "started")
        .collect();
    assert_eq!(started_before.len(), 1, "{runs:#?}");
    // The descriptor says where the version came from.
    let descriptor: Value = serde_json::from_str(
        &std::fs::read_to_string(models.join("house-price-v3.model.json")).expect("v3's descriptor"),
    )
    .expect("JSON");
    let lineage = &descriptor["lineage"];
    assert_eq!(lineage["parent"], "2");
    assert_eq!(lineage["trigger"]["kind"], "every_rows");
    assert!(lineage["dataset"]["rows"].as_u64().unwrap_or(0) >= 1000, "{lineage:#}");
    assert_eq!(lineage["dataset"]["sha256"], published["dataset"]["sha256"]);
    // The script trained on that dataset: one example per listing, each judged for two versions.
    assert_eq!(lineage["metrics"]["dataset_sha256"], lineage["dataset"]["sha256"]);
    let (examples, rows) = (
        lineage["metrics"]["rows"].as_u64().unwrap_or(0),
        lineage["dataset"]["rows"].as_u64().unwrap_or(0),
    );
    assert!(examples <= rows && examples * 2 >= rows, "{lineage:#}");
    assert_eq!(lineage["trainer"], "retrain");
    // It entered as the candidate's version, shadowed the serving one, and was promoted.
    let audit = read_jsonl(&dir.path().join("audit.jsonl"));
    let happened = |arm: &str, version: &str, event: &str| {
        audit
            .iter()
            .position(|r| r["arm"] == arm && r["version"] == version && r["event"] == event)
    };
    let serving = happened("candidate", "3", "serving").unwrap_or_else(|| panic!("{audit:#?}"));
    // The serving arm takes the version judged better; the candidate follows the next ones.
    let promoted = happened("serving", "3", "promoted")
        .unwrap_or_else(|| panic!("v3 not promoted: {figures:#?} {:#?}", quality.decisions));
    assert!(serving < promoted);
    // No version serves the serving arm without a promotion: each later one is a shadow first.
    for (i, e) in audit.iter().enumerate() {
        let version = e["version"].as_str().unwrap_or_default();
        if e["arm"] == "serving" && e["event"] == "serving" && version != "2" {
            let shadowed = happened("candidate", version, "serving").is_some_and(|c| c < i);
            let promoted = happened("serving", version, "promoted").is_some_and(|p| p > i);
            assert!(shadowed && promoted, "v{version} served unjudged: {audit:#?}");
        }
    }
}

#[test]
fn a_failed_run_changes_nothing_that_serves_and_says_why() {
    let dir = tempfile::tempdir().expect("dir");
    let models = copied_models(dir.path());
    // Four trainers, each failing its own way.
    let trainers = [
        ("exits", r#"["sh", "-c", "echo no good >&2; exit 3", "{output}"]"#),
        ("writes-nothing", r#"["true", "{output}"]"#),
        ("too-slow", r#"["sh", "-c", "sleep 30", "{output}"]"#),
        ("not-a-model", r#"["sh", "-c", "echo garbage > {output}/model.onnx"]"#),
    ];
    let mut yaml = format!(
        r#"
pipeline: failing
streamlets:
  listings:
    kind: ingress
    source: {{ type: generator, count: 6000, seed: 9, rate: 2000 }}
  sales:
    kind: ingress
    source: {{ type: generator, count: 6000, seed: 9, rate: 2000 }}
  price:
    use: {root}/streamlets/house-price-gbm.yaml
    model: {{ name: house-price, folder: {models} }}
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
    sink: {{ type: dataset, path: {dir}/training, shard_rows: 250 }}
  refused:
    kind: egress
    inputs: [quality.errors, price.errors, listings.errors, sales.errors]
    sink: {{ type: blackhole }}
"#,
        root = root().display(),
        models = models.display(),
        dir = dir.path().display()
    );
    for (name, command) in trainers {
        yaml.push_str(&format!(
            r#"  {name}:
    kind: trainer
    inputs: [quality]
    dataset: {dir}/training
    when: {{ every_rows: 500 }}
    min_rows: 250
    command: {command}
    timeout: 1s
    publish: {{ scorer: price }}
    state: {dir}/state
  {name}-runs:
    kind: egress
    inputs: [{name}]
    sink: {{ type: file, path: {dir}/{name}.jsonl }}
"#,
            dir = dir.path().display()
        ));
    }
    let summary = run_pipeline(dir.path(), &yaml);
    for (name, words) in [
        ("exits", "the command failed (exit status: 3)"),
        ("writes-nothing", "the command wrote no model"),
        ("too-slow", "the run took longer than 1s: stopped"),
        ("not-a-model", "the model fails the scorer's checks"),
    ] {
        let runs = read_jsonl(&dir.path().join(format!("{name}.jsonl")));
        let failed = runs
            .iter()
            .find(|r| r["event"] == "failed")
            .unwrap_or_else(|| panic!("{name}: {runs:#?}"));
        assert!(
            failed["reason"].as_str().unwrap_or("").contains(words),
            "{name}: {failed:#}"
        );
        assert!(!runs.iter().any(|r| r["event"] == "published"), "{name}: {runs:#?}");
    }
    // Nothing new in the folder, and v2 served every listing.
    let mut files: Vec<String> = std::fs::read_dir(&models)
        .expect("folder")
        .map(|e| e.expect("entry").file_name().to_string_lossy().to_string())
        .collect();
    files.sort();
    assert!(
        files
            .iter()
            .all(|f| f.starts_with("house-price-v1") || f.starts_with("house-price-v2")),
        "{files:?}"
    );
    let price = summary.streamlets.iter().find(|s| s.name == "price").expect("scorer");
    assert!(price.models.iter().all(|m| m.version == "2"));
}

#[test]
fn a_version_worse_than_the_quality_floor_starts_a_run_once() {
    let dir = tempfile::tempdir().expect("dir");
    let models = root().join("examples/house-prices/models");
    let yaml = format!(
        r#"
pipeline: floor
streamlets:
  listings:
    kind: ingress
    source: {{ type: generator, count: 3000, seed: 4, rate: 3000 }}
  sales:
    kind: ingress
    source: {{ type: generator, count: 3000, seed: 4, rate: 3000 }}
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
    window: 200
    carry: ["*"]
  keep:
    kind: egress
    inputs: [quality]
    sink: {{ type: dataset, path: {dir}/training, shard_rows: 100 }}
  retrain:
    kind: trainer
    inputs: [quality]
    dataset: {dir}/training
    when: {{ quality: {{ evaluator: quality, metric: mae, worse_than: 1000, min_labelled: 200 }} }}
    min_rows: 100
    command: ["true", "{{output}}"]
    publish: {{ scorer: price }}
    state: {dir}/state
  runs:
    kind: egress
    inputs: [retrain]
    sink: {{ type: file, path: {dir}/runs.jsonl }}
  refused:
    kind: egress
    inputs: [quality.errors, price.errors, listings.errors, sales.errors]
    sink: {{ type: blackhole }}
"#,
        root = root().display(),
        models = models.display(),
        dir = dir.path().display()
    );
    run_pipeline(dir.path(), &yaml);
    let runs = read_jsonl(&dir.path().join("runs.jsonl"));
    let started: Vec<&Value> = runs.iter().filter(|r| r["event"] == "started").collect();
    assert_eq!(
        started.len(),
        1,
        "one run for the one version below the floor: {runs:#?}"
    );
    let trigger = &started[0]["trigger"];
    assert_eq!(trigger["kind"], "quality");
    assert_eq!(trigger["figures"]["version"], "2");
    assert_eq!(trigger["figures"]["labelled"], 200);
    assert!(trigger["figures"]["value"].as_f64().unwrap_or(0.0) > 1000.0);
    assert!(runs
        .iter()
        .any(|r| r["event"] == "failed" && r["reason"].as_str().unwrap_or("").contains("wrote no model")));
}

#[test]
fn a_stop_in_the_middle_of_a_run_publishes_nothing_and_leaves_no_command_running() {
    let dir = tempfile::tempdir().expect("dir");
    let models = copied_models(dir.path());
    let marker = dir.path().join("still-running");
    // The "training" writes a model half way, then would go on for a minute; a child it
    // starts would touch the marker if it outlived the stop.
    let command = format!(
        r#"["sh", "-c", "head -c 100 /dev/urandom > $0/model.onnx; (sleep 3; touch {m}) & sleep 60", "{{output}}"]"#,
        m = marker.display()
    );
    let yaml = format!(
        r#"
pipeline: stopped
streamlets:
  listings:
    kind: ingress
    source: {{ type: generator, seed: 2, rate: 1000 }}
  sales:
    kind: ingress
    source: {{ type: generator, seed: 2, rate: 1000 }}
  price:
    use: {root}/streamlets/house-price-gbm.yaml
    model: {{ name: house-price, folder: {models} }}
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
    sink: {{ type: dataset, path: {dir}/training, shard_rows: 100 }}
  retrain:
    kind: trainer
    inputs: [quality]
    dataset: {dir}/training
    when: {{ every_rows: 200 }}
    min_rows: 100
    command: {command}
    publish: {{ scorer: price }}
    state: {dir}/state
  runs:
    kind: egress
    inputs: [retrain]
    sink: {{ type: file, path: {dir}/runs.jsonl }}
  refused:
    kind: egress
    inputs: [quality.errors, price.errors, listings.errors, sales.errors]
    sink: {{ type: blackhole }}
"#,
        root = root().display(),
        models = models.display(),
        dir = dir.path().display()
    );
    let file = dir.path().join("pipeline.yaml");
    std::fs::write(&file, yaml).expect("pipeline");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let topology = sluice::topology::load(&file).unwrap_or_else(|e| panic!("{e}"));
    let stop = tokio_util::sync::CancellationToken::new();
    let (_handle, task) = rt.block_on(sluice::runtime::run_file(&file, topology, stop.clone()));
    let runs = dir.path().join("runs.jsonl");
    let started = std::time::Instant::now();
    while !std::fs::read_to_string(&runs).is_ok_and(|t| t.contains("\"started\"")) {
        assert!(started.elapsed() < std::time::Duration::from_secs(60), "no run started");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    stop.cancel();
    rt.block_on(task).expect("the run task").expect("the run stops cleanly");
    let events = read_jsonl(&runs);
    assert!(
        events
            .iter()
            .any(|r| r["event"] == "failed" && r["reason"] == "the pipeline stopped during the run"),
        "{events:#?}"
    );
    assert!(!events.iter().any(|r| r["event"] == "published"));
    let names: Vec<String> = std::fs::read_dir(&models)
        .expect("folder")
        .map(|e| e.expect("entry").file_name().to_string_lossy().to_string())
        .collect();
    assert!(names.iter().all(|n| !n.contains("-v3")), "{names:?}");
    // Nothing the command started lives on to do anything.
    std::thread::sleep(std::time::Duration::from_secs(4));
    assert!(!marker.exists(), "a process of the stopped run lived on");
}

/// The README's retraining demo, as it runs: the market shifts, the validator reports drift,
/// the trainer waits for the rows from after it, trains, publishes v3 with its lineage; v3
/// shadows v2, beats it on MAE over the shifted market, and is promoted; the picture is drawn.
#[test]
fn the_retraining_demo_goes_from_drift_to_a_promoted_version_and_draws_it() {
    let dir = tempfile::tempdir().expect("dir");
    let out = dir.path().join("retraining");
    std::fs::create_dir(&out).expect("out");
    let models = copied_models(&out);
    let ran = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["run", "examples/house-prices/retraining.yaml"])
        .current_dir(root())
        .env("SLUICE_OUT", dir.path())
        .output()
        .expect("sluice runs");
    let log = String::from_utf8_lossy(&ran.stderr);
    assert!(ran.status.success(), "{log}");
    let drift = read_jsonl(&out.join("drift.jsonl"));
    let first_drift = drift
        .iter()
        .find(|d| d["status"] == "drifting")
        .unwrap_or_else(|| panic!("no drift: {log}"));
    assert!(
        first_drift["records"].as_u64().unwrap_or(0) > 4000,
        "the drift came after the shift: {drift:#?}"
    );
    let runs = read_jsonl(&out.join("runs.jsonl"));
    let started: Vec<&Value> = runs.iter().filter(|r| r["event"] == "started").collect();
    assert_eq!(started.len(), 1, "one change, one run: {runs:#?}");
    let trigger = &started[0]["trigger"];
    assert_eq!(trigger["kind"], "drift");
    assert_eq!(trigger["figures"]["drift"]["field"], first_drift["field"]);
    assert!(
        trigger["figures"]["new_rows"].as_u64().unwrap_or(0) >= 6000,
        "{trigger:#}"
    );
    let published = runs
        .iter()
        .find(|r| r["event"] == "published")
        .unwrap_or_else(|| panic!("nothing published: {runs:#?}\n{log}"));
    assert_eq!(published["version"], "3");
    let descriptor: Value = serde_json::from_str(
        &std::fs::read_to_string(models.join("house-price-v3.model.json")).expect("v3's descriptor"),
    )
    .expect("JSON");
    assert_eq!(descriptor["lineage"]["parent"], "2");
    assert_eq!(descriptor["lineage"]["trigger"]["kind"], "drift");
    assert_eq!(
        descriptor["lineage"]["metrics"]["dataset_sha256"],
        descriptor["lineage"]["dataset"]["sha256"]
    );
    // The chain on the audit: v3 serving as the candidate (a shadow), then promoted: the
    // serving arm takes it.
    let audit = read_jsonl(&out.join("model-audit.jsonl"));
    let at = |arm: &str, event: &str| {
        audit
            .iter()
            .position(|e| e["arm"] == arm && e["version"] == "3" && e["event"] == event)
            .unwrap_or_else(|| panic!("no {event} of v3 as {arm}: {audit:#?}"))
    };
    assert!(at("candidate", "serving") < at("serving", "promoted"));
    let promoted = &audit[at("serving", "promoted")];
    let figures = &promoted["figures"];
    assert!(
        figures["value"].as_f64().unwrap_or(f64::MAX) + 5000.0 < figures["serving_value"].as_f64().unwrap_or(0.0),
        "{promoted:#}"
    );
    // The chain in one audit trail, in the order it happened.
    let trail = read_jsonl(&out.join("audit-trail.jsonl"));
    let step = |what: &str, found: &dyn Fn(&Value) -> bool| {
        trail
            .iter()
            .position(found)
            .unwrap_or_else(|| panic!("no {what} in the trail: {trail:#?}"))
    };
    let chain = [
        step("drift", &|r| r["type"] == "drift" && r["status"] == "drifting"),
        step("run started", &|r| r["event"] == "started"),
        step("version published", &|r| {
            r["event"] == "published" && r["version"] == "3"
        }),
        step("shadow", &|r| {
            r["arm"] == "candidate" && r["version"] == "3" && r["event"] == "serving"
        }),
        step("promotion", &|r| {
            r["arm"] == "serving" && r["version"] == "3" && r["event"] == "promoted"
        }),
    ];
    assert!(chain.windows(2).all(|w| w[0] < w[1]), "{chain:?}: {trail:#?}");
    // Every answer judged after the promotion is v3's.
    let judged = read_jsonl(&out.join("judged.jsonl"));
    assert!(judged.iter().any(|j| j["_model"]["version"] == "3"));
    assert!(judged.iter().all(|j| j["judged_at"].is_string()));
    // The picture.
    let drawn = std::process::Command::new(root().join(".venv-train/bin/python"))
        .arg(root().join("examples/house-prices/plot.py"))
        .arg(&out)
        .output()
        .expect("python runs");
    assert!(drawn.status.success(), "{}", String::from_utf8_lossy(&drawn.stderr));
    let png = std::fs::read(out.join("retraining.png")).expect("the picture");
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 20_000,
        "{} bytes",
        png.len()
    );
}
