//! The live page in a real headless Chromium (Debian's, driven by playwright-core): it shows
//! every streamlet of the running pipeline and its counters increase. `scripts/setup-browser.sh`
//! installs what it needs; without it this test fails, it does not skip.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn the_page_shows_every_streamlet_and_live_counters() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a free port")
        .local_addr()
        .expect("addr")
        .port();
    let dir = tempfile::tempdir().expect("temp dir");
    let pipeline = dir.path().join("p.yaml");
    std::fs::write(
        &pipeline,
        format!(
            "pipeline: page
streamlets:
  listings:
    kind: ingress
    source: {{ type: generator, rate: 300, seed: 1, invalid_ratio: 0.05 }}
  check:
    kind: validator
    inputs: [listings]
    schema: {schema}
  price:
    use: {def}
    inputs: [check.valid]
  scored:
    kind: egress
    inputs: [price]
    sink: {{ type: blackhole }}
  rejected:
    kind: egress
    inputs: [check.invalid, price.errors, quality.errors]
    sink: {{ type: blackhole }}
  sales:
    kind: ingress
    source: {{ type: generator, rate: 300, seed: 1, invalid_ratio: 0.05 }}
  quality:
    kind: evaluator
    inputs: [price, sales]
    key: id
    label: price
    prediction: predicted_price
    task: regressor
  judged:
    kind: egress
    inputs: [quality]
    sink: {{ type: blackhole }}
",
            schema = root.join("schemas/records/listing.schema.json").display(),
            def = root.join("streamlets/house-price-gbm.yaml").display(),
        ),
    )
    .expect("write pipeline");
    let mut sluice = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["run", "--admin", &format!("127.0.0.1:{port}")])
        .arg(&pipeline)
        .current_dir(root)
        .stderr(Stdio::null())
        .spawn()
        .expect("sluice runs");
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the admin server did not come up"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = Command::new("node")
        .arg(root.join("tests/browser/page.mjs"))
        .arg(format!("http://127.0.0.1:{port}/"))
        .arg("check,judged,listings,price,quality,rejected,sales,scored")
        .arg(root.join("target/admin-page.png"))
        .current_dir(root.join("tests/browser"))
        .output();
    let _ = sluice.kill();
    let _ = sluice.wait();
    let output = output.expect("node runs (scripts/setup-browser.sh installs what the browser test needs)");
    assert!(
        output.status.success(),
        "the browser test failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The page as a cockpit: charts over time from `/api/history`, a model timeline, a drift
/// panel and health events, checked in the browser while the pipeline runs; a version
/// dropped into the model folder while the page is open appears on the timeline. The test
/// writes `target/cockpit.png` for a person to look at.
#[test]
fn the_cockpit_draws_what_changes_while_it_is_watched() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a free port")
        .local_addr()
        .expect("addr")
        .port();
    let dir = tempfile::tempdir().expect("temp dir");
    // The scorer's folder starts with v1 only.
    let models = dir.path().join("models");
    std::fs::create_dir(&models).expect("models");
    let examples = root.join("examples/house-prices/models");
    for file in [
        "house-price-v1.model.json",
        "house-price-v1.onnx",
        "house-price-v2.onnx",
    ] {
        std::fs::copy(examples.join(file), models.join(file)).expect("copy");
    }
    let pipeline = dir.path().join("p.yaml");
    std::fs::write(
        &pipeline,
        format!(
            "pipeline: cockpit
streamlets:
  listings:
    kind: ingress
    source: {{ type: generator, rate: 300, seed: 1, invalid_ratio: 0.05, shift_after: 2500 }}
  check:
    kind: validator
    inputs: [listings]
    schema: {schema}
    profile:
      path: {profile}
      out_of_profile: tag
      drift: {{ window: 300, every: 100 }}
  price:
    use: {def}
    model: {{ name: house-price, folder: {models} }}
    inputs: [check.valid]
  scored:
    kind: egress
    inputs: [price]
    sink: {{ type: blackhole }}
  rejected:
    kind: egress
    inputs: [check.invalid, check.drift, price.errors]
    sink: {{ type: blackhole }}
",
            schema = root.join("schemas/records/listing.schema.json").display(),
            profile = examples.join("house-price-v2.profile.json").display(),
            def = root.join("streamlets/house-price-gbm.yaml").display(),
            models = models.display(),
        ),
    )
    .expect("write pipeline");
    let mut sluice = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["run", "--admin", &format!("127.0.0.1:{port}")])
        .arg(&pipeline)
        .current_dir(root)
        .stderr(Stdio::null())
        .spawn()
        .expect("sluice runs");
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the admin server did not come up"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let browser = Command::new("node")
        .arg(root.join("tests/browser/cockpit.mjs"))
        .arg(format!("http://127.0.0.1:{port}/"))
        .arg(root.join("target/cockpit.png"))
        .current_dir(root.join("tests/browser"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node runs (scripts/setup-browser.sh installs what the browser test needs)");
    // While the page is open (it checks v1 first, then waits for v2), v2 arrives.
    std::thread::sleep(Duration::from_secs(6));
    std::fs::copy(
        examples.join("house-price-v2.model.json"),
        models.join("house-price-v2.model.json"),
    )
    .expect("v2 arrives");
    let output = browser.wait_with_output().expect("node ends");
    let _ = sluice.kill();
    let _ = sluice.wait();
    assert!(
        output.status.success(),
        "the browser test failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
