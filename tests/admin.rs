//! The admin server on a real socket: metrics that match the records processed, health that
//! follows the pipeline, the token, the API.

mod common;
use common::root;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use sluice::runtime::{Handle, RunError, RunSummary};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

struct Served {
    rt: tokio::runtime::Runtime,
    address: SocketAddr,
    handle: Handle,
    stop: CancellationToken,
    admin_stop: CancellationToken,
    task: Option<JoinHandle<Result<RunSummary, RunError>>>,
}

impl Served {
    fn start(yaml: &str, token: Option<&str>, dir: &Path) -> Served {
        let file = dir.join("p.yaml");
        std::fs::write(&file, yaml).expect("write pipeline");
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        let stop = CancellationToken::new();
        let admin_stop = CancellationToken::new();
        let topology = sluice::topology::load(&file).unwrap_or_else(|e| panic!("{e}"));
        let (handle, task) = rt.block_on(sluice::runtime::run_file(&file, topology, stop.clone()));
        let address = rt
            .block_on(sluice::observe::admin::serve(
                "127.0.0.1:0".parse().expect("address"),
                handle.clone(),
                token.map(str::to_string),
                admin_stop.clone(),
            ))
            .expect("the admin server binds");
        Served {
            rt,
            address,
            handle,
            stop,
            admin_stop,
            task: Some(task),
        }
    }

    fn get(&self, path: &str, token: Option<&str>) -> (u16, String) {
        let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        let mut request = agent.get(format!("http://{}{path}", self.address));
        if let Some(t) = token {
            request = request.header("Authorization", format!("Bearer {t}"));
        }
        let mut response = request.call().expect("the admin server answers");
        let status = response.status().as_u16();
        (status, response.body_mut().read_to_string().expect("a text body"))
    }

    fn json(&self, path: &str) -> (u16, Value) {
        let (status, body) = self.get(path, None);
        (
            status,
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}")),
        )
    }

    fn wait_for(&self, what: &str, done: impl Fn(&Served) -> bool) {
        let started = Instant::now();
        while !done(self) {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "timed out waiting for {what}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn finish(mut self) -> RunSummary {
        self.stop.cancel();
        let task = self.task.take().expect("running");
        let summary = self.rt.block_on(task).expect("task").expect("run");
        self.admin_stop.cancel();
        summary
    }
}

/// The value of a metric sample (`name{labels}`) in a scrape.
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

fn listings(count: &str) -> String {
    format!(
        "pipeline: admin
streamlets:
  listings:
    kind: ingress
    source: {{ type: generator, {count}, seed: 2, invalid_ratio: 0.1 }}
  check:
    kind: validator
    inputs: [listings]
    schema: {schema}
  ok:
    kind: egress
    inputs: [check.valid]
    sink: {{ type: blackhole }}
  rejects:
    kind: egress
    inputs: [check.invalid]
    sink: {{ type: blackhole }}
",
        schema = root().join("schemas/records/listing.schema.json").display()
    )
}

#[test]
fn metrics_match_the_records_processed_and_health_follows_the_pipeline() {
    let dir = tempfile::tempdir().expect("dir");
    let served = Served::start(&listings("count: 3000, rate: 3000"), None, dir.path());
    served.wait_for("ready", |s| s.json("/health/ready").0 == 200);
    let (_, live) = served.json("/health/live");
    assert_eq!(live["status"], "live");
    // The source ends after 3000 records: it stops, and the pipeline is no longer ready.
    served.wait_for("the source to stop", |s| s.json("/health/ready").0 == 503);
    let (_, ready) = served.json("/health/ready");
    let listings = ready["streamlets"]
        .as_array()
        .expect("streamlets")
        .iter()
        .find(|s| s["name"] == "listings")
        .cloned();
    assert_eq!(listings.expect("listings")["status"], "critical");
    served.wait_for("everything drained", |s| {
        s.handle.status().streamlets.iter().all(|st| !st.running)
    });
    let (code, metrics) = served.get("/metrics", None);
    assert_eq!(code, 200);
    let summary = served.finish();
    let valid = summary.records_out("check", "valid").expect("valid");
    let invalid = summary.records_out("check", "invalid").expect("invalid");
    assert_eq!(valid + invalid, 3000);
    assert!(invalid > 0);
    assert_eq!(
        sample(
            &metrics,
            r#"sluice_records_out_total{streamlet="listings",outlet="out"}"#
        ),
        Some(3000.0)
    );
    assert_eq!(
        sample(
            &metrics,
            r#"sluice_records_in_total{streamlet="check",kind="validator"}"#
        ),
        Some(3000.0)
    );
    assert_eq!(
        sample(
            &metrics,
            r#"sluice_records_out_total{streamlet="check",outlet="valid"}"#
        ),
        Some(valid as f64)
    );
    assert_eq!(
        sample(
            &metrics,
            r#"sluice_records_errors_total{streamlet="check",outlet="invalid"}"#
        ),
        Some(invalid as f64)
    );
    assert_eq!(
        sample(
            &metrics,
            r#"sluice_records_in_total{streamlet="rejects",kind="egress"}"#
        ),
        Some(invalid as f64)
    );
    assert_eq!(
        sample(&metrics, r#"sluice_streamlet_up{streamlet="check",kind="validator"}"#),
        Some(0.0)
    );
    assert!(sample(
        &metrics,
        r#"sluice_batch_processing_seconds_count{streamlet="check",kind="validator"}"#
    )
    .is_some_and(|n| n > 0.0));
    assert!(metrics
        .contains("sluice_channel_queued_batches{from=\"listings\",outlet=\"out\",to=\"check\",transport=\"memory\"}"));
    assert!(metrics.contains("sluice_config_info{pipeline=\"admin\",hash=\""));
    assert!(metrics.trim_end().ends_with("# EOF"));
}

#[test]
fn a_scorer_without_a_model_is_not_ready_until_one_arrives() {
    let dir = tempfile::tempdir().expect("dir");
    let models = dir.path().join("models");
    std::fs::create_dir(&models).expect("models");
    // Only a corrupt version at first: the scorer waits for a usable one.
    common::write_corrupt_model(&models, "0");
    let yaml = format!(
        "pipeline: waiting
streamlets:
  listings:
    kind: ingress
    source: {{ type: generator, rate: 500, seed: 1 }}
  price:
    use: {def}
    model: {{ name: house-price, folder: {models} }}
    inputs: [listings]
  out:
    kind: egress
    inputs: [price]
    sink: {{ type: file, path: {out} }}
  failed:
    kind: egress
    inputs: [price.errors]
    sink: {{ type: blackhole }}
",
        def = root().join("streamlets/house-price-gbm.yaml").display(),
        models = models.display(),
        out = dir.path().join("scored.jsonl").display(),
    );
    let out = dir.path().join("scored.jsonl");
    let served = Served::start(&yaml, None, dir.path());
    served.wait_for("the scorer to report", |s| {
        s.json("/health/ready").1["streamlets"]
            .as_array()
            .is_some_and(|a| a.len() == 4)
    });
    let (code, ready) = served.json("/health/ready");
    assert_eq!(code, 503);
    let price = ready["streamlets"]
        .as_array()
        .expect("streamlets")
        .iter()
        .find(|s| s["name"] == "price")
        .cloned()
        .expect("price");
    assert_eq!(price["reason"], "waiting for a model version");
    let (_, api) = served.json("/api/models");
    assert_eq!(api["models"][0]["ready"], false);
    std::thread::sleep(Duration::from_millis(300));
    let shipped = root().join("examples/house-prices/models");
    std::fs::copy(shipped.join("house-price-v1.onnx"), models.join("house-price-v1.onnx")).expect("copy");
    std::fs::copy(
        shipped.join("house-price-v1.model.json"),
        models.join("house-price-v1.model.json"),
    )
    .expect("copy");
    served.wait_for("ready", |s| s.json("/health/ready").0 == 200);
    served.wait_for("records scored", |s| {
        s.json("/api/models").1["models"][0]["versions"][0]["records"]
            .as_u64()
            .unwrap_or(0)
            > 100
    });
    served.finish();
    let scored: Vec<u64> = std::fs::read_to_string(out)
        .expect("output")
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).expect("json")["id"]
                .as_u64()
                .expect("id")
        })
        .collect();
    assert_eq!(
        scored,
        (1..=scored.len() as u64).collect::<Vec<_>>(),
        "the records that waited were scored, in order"
    );
}

#[test]
fn a_token_protects_everything_but_health() {
    let dir = tempfile::tempdir().expect("dir");
    let served = Served::start(&listings("rate: 100"), Some("s3cret"), dir.path());
    for path in [
        "/metrics",
        "/api/topology",
        "/api/models",
        "/api/history",
        "/api/cockpit",
        "/",
    ] {
        assert_eq!(served.get(path, None).0, 401, "{path} without the token");
        assert_eq!(served.get(path, Some("wrong")).0, 401, "{path} with a wrong token");
        assert_eq!(served.get(path, Some("s3cret")).0, 200, "{path} with the token");
    }
    assert_eq!(served.get("/health/live", None).0, 200);
    served.wait_for("ready", |s| s.get("/health/ready", None).0 == 200);
    let (_, topology) = served.get("/api/topology", Some("s3cret"));
    let topology: Value = serde_json::from_str(&topology).expect("json");
    let edges = topology["status"]["edges"].as_array().expect("edges");
    assert_eq!(edges.len(), 3);
    assert!(edges
        .iter()
        .any(|e| e["from"] == "check" && e["port"] == "invalid" && e["to"] == "rejects"));
    served.finish();
}

#[test]
fn an_evaluators_figures_are_in_the_metrics_and_the_models_api() {
    let dir = tempfile::tempdir().expect("dir");
    let listings = root().join("examples/house-prices/expected-predictions.jsonl");
    let yaml = format!(
        r#"pipeline: admin-quality
streamlets:
  listings:
    kind: ingress
    source: {{ type: file, path: {listings} }}
  sales:
    kind: ingress
    source: {{ type: file, path: {listings} }}
  price:
    use: {root}/streamlets/house-price-gbm.yaml
    model: {{ name: house-price, folder: {root}/examples/house-prices/models, version: "2" }}
    inputs: [listings]
  quality:
    kind: evaluator
    inputs: [price, sales]
    key: id
    label: price
    prediction: predicted_price
    task: regressor
  joined:
    kind: egress
    inputs: [quality]
    sink: {{ type: blackhole }}
  refused:
    kind: egress
    inputs: [quality.errors, price.errors, listings.errors, sales.errors]
    sink: {{ type: blackhole }}
"#,
        root = root().display(),
        listings = listings.display()
    );
    let served = Served::start(&yaml, None, dir.path());
    let labelled =
        |s: &Served| s.json("/api/models").1["quality"][0]["quality"]["models"][0]["since_start"]["labelled"].as_u64();
    served.wait_for("200 labelled predictions", |s| labelled(s) == Some(200));
    let (_, models) = served.json("/api/models");
    let entry = &models["quality"][0];
    assert_eq!(entry["evaluator"], "quality");
    assert_eq!(entry["quality"]["models"][0]["version"], "2");
    let expected: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("examples/house-prices/expected-quality.json")).expect("expected"),
    )
    .expect("JSON");
    let mae = expected["2"]["mae"].as_f64().expect("mae");
    let (_, metrics) = served.get("/metrics", None);
    let series = r#"sluice_model_quality{streamlet="quality",model="house-price",version="2",arm="",metric="mae",over="since_start"}"#;
    let scraped = sample(&metrics, series).unwrap_or_else(|| panic!("{series} in\n{metrics}"));
    assert!((scraped - mae).abs() < 1e-6 * mae, "{scraped} against {mae}");
    let waiting = r#"sluice_evaluator_join{streamlet="quality",what="waiting_labels"}"#;
    assert_eq!(sample(&metrics, waiting), Some(0.0), "{metrics}");
    served.finish();
}

#[test]
fn a_run_asked_for_through_the_api_starts_and_says_so() {
    let dir = tempfile::tempdir().expect("dir");
    let models = root().join("examples/house-prices/models");
    let yaml = format!(
        r#"pipeline: admin-training
streamlets:
  listings:
    kind: ingress
    source: {{ type: generator, seed: 3, rate: 500 }}
  sales:
    kind: ingress
    source: {{ type: generator, seed: 3, rate: 500 }}
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
    sink: {{ type: dataset, path: {dir}/training, shard_rows: 50 }}
  retrain:
    kind: trainer
    inputs: [quality]
    dataset: {dir}/training
    when: {{ every: 1h }}
    min_rows: 50
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
    let served = Served::start(&yaml, None, dir.path());
    let manifest = dir.path().join("training/manifest.json");
    served.wait_for("a dataset of 50 rows", |_| manifest.is_file());
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let post = |path: &str| {
        let mut response = agent
            .post(format!("http://{}{path}", served.address))
            .send_empty()
            .expect("the admin server answers");
        let status = response.status().as_u16();
        let body: Value = serde_json::from_str(&response.body_mut().read_to_string().expect("a body")).expect("JSON");
        (status, body)
    };
    let (status, body) = post("/api/trainers/retrain/run");
    assert_eq!(status, 202, "{body}");
    let runs = dir.path().join("runs.jsonl");
    served.wait_for("the asked run to fail for want of a model", |_| {
        std::fs::read_to_string(&runs).is_ok_and(|t| t.contains("wrote no model"))
    });
    let events = common::read_jsonl(&runs);
    let started = events.iter().find(|r| r["event"] == "started").expect("a started run");
    assert_eq!(started["trigger"]["kind"], "manual");
    let (status, body) = post("/api/trainers/nobody/run");
    assert_eq!(status, 404, "{body}");
    assert!(body["error"].as_str().unwrap_or("").contains("no trainer `nobody`"));
    served.finish();
}

/// `/api/history`: the last minutes as time series a chart draws. While records flow the
/// rates get new points; a market shift makes a field's PSI cross its drawn threshold; the
/// first rejected records turn the validator to warning, as a health event with its time.
#[test]
fn the_history_has_rates_drift_over_its_threshold_and_health_events() {
    let dir = tempfile::tempdir().expect("dir");
    let yaml = format!(
        "pipeline: history
streamlets:
  listings:
    kind: ingress
    source: {{ type: generator, rate: 400, seed: 3, shift_after: 1500, invalid_ratio: 0.05 }}
  check:
    kind: validator
    inputs: [listings]
    schema: {schema}
    profile:
      path: {profile}
      out_of_profile: tag
      drift: {{ window: 300, every: 100 }}
  ok:
    kind: egress
    inputs: [check.valid]
    sink: {{ type: blackhole }}
  bad:
    kind: egress
    inputs: [check.invalid, check.drift]
    sink: {{ type: blackhole }}
",
        schema = root().join("schemas/records/listing.schema.json").display(),
        profile = root()
            .join("examples/house-prices/models/house-price-v2.profile.json")
            .display(),
    );
    let served = Served::start(&yaml, None, dir.path());
    let history = |s: &Served| s.json("/api/history").1;
    let points = |h: &Value, pointer: &str| -> Vec<(f64, f64)> {
        h.pointer(pointer)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .map(|p| (p[0].as_f64().unwrap_or(0.0), p[1].as_f64().unwrap_or(0.0)))
                    .collect()
            })
            .unwrap_or_default()
    };
    // Records flow: the validator's rate gets points, near the source's 400 a second.
    served.wait_for("three points of records/s", |s| {
        points(&history(s), "/streamlets/check/in_per_s").len() >= 3
    });
    let before = points(&history(&served), "/streamlets/check/in_per_s");
    served.wait_for("a new point", |s| {
        points(&history(s), "/streamlets/check/in_per_s").len() > before.len()
    });
    let h = history(&served);
    let rates = points(&h, "/streamlets/check/in_per_s");
    assert!(
        rates.windows(2).all(|w| w[0].0 < w[1].0),
        "points in time order: {rates:?}"
    );
    assert!(rates.iter().any(|(_, v)| *v > 100.0), "{rates:?}");
    assert!(!points(&h, "/edges/listings.out->check").is_empty(), "{:#}", h["edges"]);
    // The validator's time on a batch: a p99 at least its p50, both under a second.
    let (p50, p99) = (
        points(&h, "/streamlets/check/batch_ms_p50"),
        points(&h, "/streamlets/check/batch_ms_p99"),
    );
    assert!(!p50.is_empty() && p50.len() == p99.len(), "{p50:?} {p99:?}");
    assert!(
        p50.iter().zip(&p99).all(|(a, b)| a.1 <= b.1 && b.1 < 1000.0),
        "{p50:?} {p99:?}"
    );
    // The shift: the living area's PSI crosses the threshold drawn beside it.
    served.wait_for("the PSI over its threshold", |s| {
        let h = history(s);
        let threshold = h["drift"]["check sqft_living"]["psi_threshold"]
            .as_f64()
            .unwrap_or(f64::MAX);
        points(&h, "/drift/check sqft_living/psi")
            .iter()
            .any(|(_, v)| *v > threshold)
    });
    let h = history(&served);
    let psi = points(&h, "/drift/check sqft_living/psi");
    assert!(
        psi.first().is_some_and(|(_, v)| *v < 0.2),
        "below it before the shift: {psi:?}"
    );
    // Health events: the validator turned warning when it first rejected records.
    served.wait_for("records rejected", |s| {
        s.handle
            .status()
            .streamlets
            .iter()
            .any(|st| st.name == "check" && st.outlets.iter().any(|o| o.port == "invalid" && o.records > 0))
    });
    served.wait_for("a health event", |s| {
        history(s)["health_events"]
            .as_array()
            .is_some_and(|e| e.iter().any(|e| e["streamlet"] == "check" && e["to"] == "warning"))
    });
    let h = history(&served);
    let event = h["health_events"]
        .as_array()
        .and_then(|e| e.iter().find(|e| e["streamlet"] == "check"))
        .cloned()
        .expect("event");
    assert_eq!(event["from"], "healthy");
    assert!(event["at"].as_str().is_some_and(|a| a.ends_with('Z')), "{event}");
    assert!(
        event["reason"].as_str().is_some_and(|r| r.contains("error outlet")),
        "{event}"
    );
    served.finish();
}
