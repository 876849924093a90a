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
