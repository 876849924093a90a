//! The scorer with the real ONNX Runtime and real models: predictions as Python's onnxruntime
//! makes them, hot model swaps while records stream, bad input and bad models.

mod common;
use common::{read_jsonl, root, run_pipeline};

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use sluice::models::registry::Source;
use sluice::models::version::Expectation;
use sluice::models::{ModelError, ModelRegistry};

/// A pipeline: a file of listings → the house-price scorer (its definition, with `model` overridden) → files.
fn house_prices_pipeline(input: &Path, model: &str) -> String {
    format!(
        r#"
pipeline: scoring
streamlets:
  listings:
    kind: ingress
    source: {{ type: file, path: {input} }}
  price:
    use: {def}
    model: {model}
    inputs: [listings]
  scored:
    kind: egress
    inputs: [price]
    sink: {{ type: file, path: out/scored.jsonl }}
  failed:
    kind: egress
    inputs: [price.errors, listings.errors]
    sink: {{ type: file, path: out/errors.jsonl }}
"#,
        input = input.display(),
        def = root().join("streamlets/house-price-gbm.yaml").display(),
    )
}

/// The house-price model from the examples' folder: `version`, or the latest.
fn house_price_model(version: Option<&str>) -> String {
    let folder = root().join("examples/house-prices/models");
    match version {
        Some(v) => format!(
            "{{ name: house-price, folder: {}, version: \"{v}\" }}",
            folder.display()
        ),
        None => format!("{{ name: house-price, folder: {} }}", folder.display()),
    }
}

#[test]
fn predictions_match_python_onnxruntime_for_both_versions() {
    let input = root().join("examples/house-prices/expected-predictions.jsonl");
    for version in ["1", "2"] {
        let dir = tempfile::tempdir().expect("temp dir");
        let model = house_price_model(Some(version));
        let summary = run_pipeline(dir.path(), &house_prices_pipeline(&input, &model));
        assert_eq!(summary.records_out("price", "errors"), Some(0));
        let stats = &summary
            .streamlets
            .iter()
            .find(|s| s.name == "price")
            .expect("price")
            .models;
        assert_eq!(stats.len(), 1);
        assert_eq!(stats[0].version, version);
        assert_eq!(stats[0].records, 200);
        let scored = read_jsonl(&dir.path().join("out/scored.jsonl"));
        assert_eq!(scored.len(), 200);
        for r in &scored {
            let expected = r["expected"][version].as_f64().expect("expected prediction");
            let got = r["predicted_price"].as_f64().expect("a prediction");
            assert!(
                (got - expected).abs() <= 1e-4 * expected.abs().max(1.0),
                "id {}: {got} vs {expected}",
                r["id"]
            );
            let audit = &r["_model"];
            assert_eq!(audit["name"], "house-price");
            assert_eq!(audit["version"], version);
            assert_eq!(audit["sha256"].as_str().map(str::len), Some(12));
            assert_eq!(audit["strategy"], "single");
            assert!(audit["scored_at"].as_str().is_some_and(|t| t.ends_with('Z')));
            assert!(audit["latency_us"].as_u64().is_some());
        }
    }
}

#[test]
fn a_scored_record_is_the_text_it_came_in_as_with_its_prediction_and_audit_after() {
    let dir = tempfile::tempdir().expect("temp dir");
    // The listings written with spaces after every comma and colon, as some producers do.
    let spaced: Vec<String> = std::fs::read_to_string(root().join("examples/house-prices/expected-predictions.jsonl"))
        .expect("listings")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let Value::Object(record) = serde_json::from_str::<Value>(l).expect("JSON") else {
                panic!("not an object: {l}")
            };
            let fields: Vec<String> = record
                .iter()
                .map(|(k, v)| format!("{}: {v}", Value::from(k.as_str())))
                .collect();
            format!("{{{}}}", fields.join(", "))
        })
        .collect();
    let input = dir.path().join("spaced.jsonl");
    std::fs::write(&input, spaced.join("\n") + "\n").expect("input");
    let model = house_price_model(Some("2"));
    let summary = run_pipeline(dir.path(), &house_prices_pipeline(&input, &model));
    assert_eq!(summary.records_out("price", "errors"), Some(0));
    let scored = std::fs::read_to_string(dir.path().join("out/scored.jsonl")).expect("scored");
    let lines: Vec<&str> = scored.lines().collect();
    assert_eq!(lines.len(), spaced.len());
    for (line, input) in lines.iter().zip(&spaced) {
        // The input's own text up to its closing brace, then what the scorer added.
        let rest = line
            .strip_prefix(input.strip_suffix('}').expect("an object"))
            .unwrap_or_else(|| panic!("not the input's text:\n{line}\n{input}"));
        assert!(rest.starts_with(r#","predicted_price":"#), "{rest}");
        let record: Value = serde_json::from_str(line).expect("JSON");
        assert_eq!(record["_model"]["version"], "2");
    }
}

#[test]
fn classifier_labels_and_probabilities_match_python() {
    let dir = tempfile::tempdir().expect("temp dir");
    let summary = run_pipeline(
        dir.path(),
        &format!(
            r#"
pipeline: fraud
streamlets:
  tx:
    kind: ingress
    source: {{ type: file, path: {input} }}
  fraud:
    use: {def}
    inputs: [tx]
  out:
    kind: egress
    inputs: [fraud, fraud.errors]
    sink: {{ type: file, path: scored.jsonl }}
"#,
            input = root().join("examples/fraud/transactions.jsonl").display(),
            def = root().join("streamlets/card-fraud.yaml").display(),
        ),
    );
    assert_eq!(summary.records_out("fraud", "out"), Some(300));
    let expected = read_jsonl(&root().join("examples/fraud/expected-predictions.jsonl"));
    let scored = read_jsonl(&dir.path().join("scored.jsonl"));
    assert_eq!(scored.len(), expected.len());
    let mut flagged = 0;
    for (r, e) in scored.iter().zip(&expected) {
        assert_eq!(r["tx_id"], e["tx_id"]);
        assert_eq!(r["fraud_predicted"], e["label"]);
        let p = e["probabilities"][1].as_f64().expect("p");
        assert!((r["fraud_probability"].as_f64().expect("p") - p).abs() < 1e-6);
        let both = &r["class_probabilities"];
        let sum = both["legitimate"].as_f64().expect("p0") + both["fraud"].as_f64().expect("p1");
        assert!((sum - 1.0).abs() < 1e-5);
        flagged += r["fraud_predicted"].as_i64().expect("label");
    }
    assert!(flagged > 0, "the sample has predicted fraud");
}

#[test]
fn records_that_cannot_become_features_go_to_errors_with_the_reason() {
    let dir = tempfile::tempdir().expect("temp dir");
    let good = r#"{"id":1,"bedrooms":3,"bathrooms":2.0,"sqft_living":1500,"sqft_lot":5000,"floors":1.0,"waterfront":false,"view":0,"condition":3,"yr_built":1990,"city":"Kent"}"#;
    let lines = [
        good.to_string(),
        good.replace("\"sqft_living\":1500,", "")
            .replace("\"id\":1", "\"id\":2"),
        good.replace("\"bedrooms\":3", "\"bedrooms\":\"three\"")
            .replace("\"id\":1", "\"id\":3"),
        good.replace("Kent", "Paris").replace("\"id\":1", "\"id\":4"),
        good.replace("\"id\":1", "\"id\":5"),
    ];
    let input = dir.path().join("in.jsonl");
    std::fs::write(&input, lines.join("\n") + "\n").expect("write input");
    let model = house_price_model(None);
    let summary = run_pipeline(dir.path(), &house_prices_pipeline(&input, &model));
    assert_eq!(summary.records_out("price", "out"), Some(2));
    let scored: Vec<u64> = read_jsonl(&dir.path().join("out/scored.jsonl"))
        .iter()
        .map(|r| r["id"].as_u64().expect("id"))
        .collect();
    assert_eq!(scored, vec![1, 5]);
    let errors = read_jsonl(&dir.path().join("out/errors.jsonl"));
    let reasons: Vec<(u64, String, String)> = errors
        .iter()
        .map(|r| {
            (
                r["id"].as_u64().expect("the original content is kept"),
                r["_error"]["path"].as_str().expect("path").to_string(),
                r["_error"]["reason"].as_str().expect("reason").to_string(),
            )
        })
        .collect();
    assert_eq!(reasons.len(), 3);
    assert_eq!((reasons[0].0, reasons[0].1.as_str()), (2, "/sqft_living"));
    assert!(reasons[0].2.contains("missing"));
    assert_eq!((reasons[1].0, reasons[1].1.as_str()), (3, "/bedrooms"));
    assert!(reasons[1].2.contains("expected a number"));
    assert_eq!((reasons[2].0, reasons[2].1.as_str()), (4, "/city"));
    assert!(reasons[2].2.contains("\"Paris\""));
}

fn copy_model(from: &Path, to: &Path, version: &str) {
    let name = format!("house-price-v{version}");
    std::fs::copy(from.join(format!("{name}.onnx")), to.join(format!("{name}.onnx"))).expect("copy model");
    // Write the descriptor last and in one step, as a model publisher should.
    let tmp = to.join(format!("{name}.tmp"));
    std::fs::copy(from.join(format!("{name}.model.json")), &tmp).expect("copy descriptor");
    std::fs::rename(&tmp, to.join(format!("{name}.model.json"))).expect("publish descriptor");
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_new_version_dropped_in_is_served_without_loss_and_a_corrupt_one_is_rejected() {
    let dir = tempfile::tempdir().expect("temp dir");
    let models = dir.path().join("models");
    std::fs::create_dir(&models).expect("models folder");
    let shipped = root().join("examples/house-prices/models");
    copy_model(&shipped, &models, "1");
    let yaml = dir.path().join("p.yaml");
    std::fs::write(
        &yaml,
        format!(
            r#"
pipeline: swap
streamlets:
  listings:
    kind: ingress
    source: {{ type: generator, rate: 2000, seed: 5 }}
  price:
    use: {def}
    model: {{ name: house-price, folder: models }}
    inputs: [listings]
  scored:
    kind: egress
    inputs: [price]
    sink: {{ type: file, path: scored.jsonl }}
  failed:
    kind: egress
    inputs: [price.errors]
    sink: {{ type: file, path: errors.jsonl }}
"#,
            def = root().join("streamlets/house-price-gbm.yaml").display()
        ),
    )
    .expect("write pipeline");
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["--log-format", "json", "run"])
        .arg(&yaml)
        .current_dir(root())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sluice runs");
    let logs = Arc::new(Mutex::new(Vec::<String>::new()));
    let reader = {
        let logs = logs.clone();
        let stderr = child.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                logs.lock().expect("logs").push(line);
            }
        })
    };
    let scored_path = dir.path().join("scored.jsonl");
    let lines = || std::fs::read_to_string(&scored_path).unwrap_or_default();
    let logged = |words: &[&str]| {
        logs.lock()
            .expect("logs")
            .iter()
            .any(|l| words.iter().all(|w| l.contains(w)))
    };
    wait_for("records scored by v1", || lines().lines().count() >= 500);
    copy_model(&shipped, &models, "2");
    wait_for("records scored by v2", || lines().contains(r#""version":"2""#));
    // A corrupt v3: its checksum is right, its bytes are not a model.
    common::write_corrupt_model(&models, "3");
    wait_for("v3 to be rejected", || logged(&["model rejected", "v3"]));
    let at_rejection = lines().lines().count();
    wait_for("records after the rejection", || {
        lines().lines().count() >= at_rejection + 500
    });
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    assert!(child.wait().expect("exit").success());
    reader.join().expect("log reader");

    let scored = read_jsonl(&scored_path);
    let versions: Vec<&str> = scored
        .iter()
        .map(|r| r["_model"]["version"].as_str().expect("version"))
        .collect();
    for (i, r) in scored.iter().enumerate() {
        assert_eq!(
            r["id"].as_u64(),
            Some(i as u64 + 1),
            "every record scored exactly once, in order"
        );
        assert!(r["predicted_price"].as_f64().is_some());
    }
    let first_v2 = versions.iter().position(|v| *v == "2").expect("v2 served");
    assert!(
        first_v2 > 0 && versions[..first_v2].iter().all(|v| *v == "1"),
        "v1 before the swap"
    );
    assert!(
        versions[first_v2..].iter().all(|v| *v == "2"),
        "v2 after the swap, also after the corrupt v3"
    );
    assert!(versions.len() >= at_rejection + 500);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("errors.jsonl")).expect("errors file"),
        ""
    );
    assert!(logged(&["model swapped", "\"to\":\"2\""]), "the swap is logged");
}

fn expectation(width: usize) -> Expectation {
    Expectation {
        input: Some("features".into()),
        width,
        outputs: vec!["variable".into()],
    }
}

#[test]
fn a_model_that_does_not_fit_the_mapping_is_rejected_with_the_reason() {
    let source = Source {
        name: "house-price".into(),
        folder: root().join("examples/house-prices/models"),
        pinned: Some("1".into()),
        topic: None,
    };
    let err = ModelRegistry::open(source.clone(), expectation(5), 1)
        .err()
        .expect("rejected");
    assert!(
        err.to_string()
            .contains("takes 21 columns, the feature mapping gives 5"),
        "{err}"
    );
    let mut wrong_output = expectation(21);
    wrong_output.outputs = vec!["probabilities".into()];
    let err = ModelRegistry::open(source.clone(), wrong_output, 1)
        .err()
        .expect("rejected");
    assert!(err.to_string().contains("no output tensor `probabilities`"), "{err}");
    let registry = ModelRegistry::open(source, expectation(21), 2).expect("v1 fits");
    assert_eq!(registry.current().expect("a version serves").descriptor.version, "1");
}

#[test]
fn a_folder_with_only_broken_models_names_each_problem() {
    let dir = tempfile::tempdir().expect("temp dir");
    let shipped = root().join("examples/house-prices/models");
    std::fs::copy(
        shipped.join("house-price-v1.onnx"),
        dir.path().join("house-price-v1.onnx"),
    )
    .expect("copy");
    let mut descriptor: Value =
        serde_json::from_str(&std::fs::read_to_string(shipped.join("house-price-v1.model.json")).expect("read"))
            .expect("json");
    descriptor["sha256"] = Value::from("0".repeat(64));
    std::fs::write(dir.path().join("house-price-v1.model.json"), descriptor.to_string()).expect("write");
    std::fs::write(dir.path().join("broken.model.yaml"), "name: [unclosed").expect("write");
    let source = Source {
        name: "house-price".into(),
        folder: PathBuf::from(dir.path()),
        pinned: None,
        topic: None,
    };
    match ModelRegistry::open(source, expectation(21), 1) {
        Err(ModelError::NoVersion { reasons, .. }) => {
            assert!(reasons.iter().any(|r| r.contains("broken.model.yaml")), "{reasons:?}");
            assert!(reasons.iter().any(|r| r.contains("sha256 mismatch")), "{reasons:?}");
        }
        Err(e) => panic!("unexpected {e}"),
        Ok(_) => panic!("nothing should load"),
    }
}

#[test]
fn a_missing_onnx_runtime_library_is_named_in_the_error() {
    let out = tempfile::tempdir().expect("temp dir");
    let output = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args([
            "--onnxruntime",
            "/nonexistent/libonnxruntime.so",
            "run",
            "pipelines/card-fraud.yaml",
        ])
        .current_dir(root())
        .env("SLUICE_OUT", out.path())
        .output()
        .expect("sluice runs");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("streamlet `fraud` failed"), "{stderr}");
    assert!(
        stderr.contains("cannot load ONNX Runtime from /nonexistent/libonnxruntime.so"),
        "{stderr}"
    );
}

#[test]
fn light_traffic_is_scored_without_waiting_for_a_full_batch() {
    let dir = tempfile::tempdir().expect("temp dir");
    let summary = run_pipeline(
        dir.path(),
        &format!(
            r#"
pipeline: light
streamlets:
  listings:
    kind: ingress
    source: {{ type: generator, count: 40, rate: 200, seed: 4 }}
  price:
    use: {def}
    model: {{ name: house-price, folder: {models} }}
    batch: {{ max_batch: 256, max_wait_ms: 2 }}
    inputs: [listings]
  out:
    kind: egress
    inputs: [price, price.errors]
    sink: {{ type: blackhole }}
"#,
            def = root().join("streamlets/house-price-gbm.yaml").display(),
            models = root().join("examples/house-prices/models").display(),
        ),
    );
    let stats = &summary
        .streamlets
        .iter()
        .find(|s| s.name == "price")
        .expect("price")
        .models[0];
    assert_eq!(stats.records, 40);
    // Waiting for 256 records would have made one call at the end of the input.
    assert!(
        stats.invocations >= 5,
        "{} calls for 40 records trickling in",
        stats.invocations
    );
}

#[test]
fn several_sessions_score_batches_at_once_and_keep_the_order() {
    let dir = tempfile::tempdir().expect("temp dir");
    let input = root().join("examples/house-prices/expected-predictions.jsonl");
    let model = format!(
        "{{ name: house-price, folder: {}, version: 2 }}\n    sessions: 3\n    batch: {{ max_batch: 7 }}",
        root().join("examples/house-prices/models").display()
    );
    let summary = run_pipeline(dir.path(), &house_prices_pipeline(&input, &model));
    let stats = &summary
        .streamlets
        .iter()
        .find(|s| s.name == "price")
        .expect("price")
        .models[0];
    assert!(stats.invocations >= 200 / 7);
    // The calls' CPU time is counted, and one thread's CPU time is no more than its wall time
    // (give or take the clock readings around each call, and each call's latency counted in
    // whole µs).
    let wall_us = stats.latency_us.mean * stats.invocations as f64;
    assert!(
        stats.cpu_us > 0 && stats.cpu_us as f64 <= 1.05 * wall_us + 10.0 * stats.invocations as f64,
        "cpu {} µs, wall {wall_us} µs",
        stats.cpu_us
    );
    let scored = read_jsonl(&dir.path().join("out/scored.jsonl"));
    assert_eq!(scored.len(), 200);
    for (i, r) in scored.iter().enumerate() {
        assert_eq!(r["id"].as_u64(), Some(i as u64 + 1), "order is kept");
        let expected = r["expected"]["2"].as_f64().expect("expected");
        assert!((r["predicted_price"].as_f64().expect("prediction") - expected).abs() <= 1e-4 * expected);
    }
}
