//! The live page in a real headless Chromium (Debian's, driven by playwright-core): it shows
//! every streamlet of the running pipeline and its counters increase. `scripts/setup-browser.sh`
//! installs what it needs; without it this test fails, it does not skip.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs `sluice run --admin` on a free loopback port for `pipeline`, once the admin server
/// answers: the process, and the page's address.
fn serve(pipeline: &std::path::Path) -> (std::process::Child, String) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a free port")
        .local_addr()
        .expect("addr")
        .port();
    let sluice = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["run", "--admin", &format!("127.0.0.1:{port}")])
        .arg(pipeline)
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
    (sluice, format!("http://127.0.0.1:{port}/"))
}

/// Starts a browser script of tests/browser with its arguments.
fn browse(script: &str, args: &[&std::ffi::OsStr]) -> std::process::Child {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    Command::new("node")
        .arg(root.join("tests/browser").join(script))
        .args(args)
        .current_dir(root.join("tests/browser"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node runs (scripts/setup-browser.sh installs what the browser test needs)")
}

/// Stops sluice once the browser script ended, and says what the script said if it failed.
fn finish(browser: std::process::Child, mut sluice: std::process::Child) {
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

#[test]
fn the_page_shows_every_streamlet_and_live_counters() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
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
    let (sluice, url) = serve(&pipeline);
    let names = std::ffi::OsString::from("check,judged,listings,price,quality,rejected,sales,scored");
    let screenshot = root.join("target/admin-page.png");
    let browser = browse("page.mjs", &[url.as_ref(), &names, screenshot.as_os_str()]);
    finish(browser, sluice);
}

/// The page as a cockpit: charts over time from `/api/history`, a model timeline, a drift
/// panel and health events, checked in the browser while the pipeline runs; a version
/// dropped into the model folder while the page is open appears on the timeline. The test
/// writes `target/cockpit.png` for a person to look at.
#[test]
fn the_cockpit_draws_what_changes_while_it_is_watched() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
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
    model: null
    models:
      newest: {{ name: house-price, folder: {models} }}
      first: {{ name: house-price, folder: {models}, version: 1 }}
    strategy: {{ shadow: {{ primary: newest, shadows: [first] }} }}
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
    let (sluice, url) = serve(&pipeline);
    let screenshot = root.join("target/cockpit.png");
    let browser = browse("cockpit.mjs", &[url.as_ref(), screenshot.as_os_str()]);
    // While the page is open (it checks v1 first, then waits for v2), v2 arrives.
    std::thread::sleep(Duration::from_secs(6));
    std::fs::copy(
        examples.join("house-price-v2.model.json"),
        models.join("house-price-v2.model.json"),
    )
    .expect("v2 arrives");
    finish(browser, sluice);
}
