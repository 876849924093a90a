//! The metrics' cost: the demo-like pipeline (generator → validator → scorer → blackhole) without
//! the admin server, and with it while /metrics is scraped ten times a second, in the same run.
//!
//!   cargo bench --bench admin

use std::path::Path;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn sunk(handle: &sluice::runtime::Handle) -> u64 {
    handle
        .status()
        .streamlets
        .iter()
        .find(|s| s.name == "scored")
        .map_or(0, |s| s.records_in)
}

/// Records/s over `seconds`, with the admin server scraped every 100 ms when `scrape`; and the
/// scrapes' latencies.
fn measure(file: &Path, seconds: f64, scrape: bool) -> (f64, Vec<Duration>) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let stop = CancellationToken::new();
    let topology = sluice::topology::load(file).expect("valid pipeline");
    let (handle, task) = rt.block_on(sluice::runtime::run_file(file, topology, stop.clone()));
    let address = scrape.then(|| {
        rt.block_on(sluice::observe::admin::serve(
            "127.0.0.1:0".parse().expect("address"),
            handle.clone(),
            None,
            stop.child_token(),
        ))
        .expect("admin server")
    });
    while sunk(&handle) == 0 {
        std::thread::sleep(Duration::from_millis(5));
    }
    let started = Instant::now();
    let first = sunk(&handle);
    let mut scrapes = Vec::new();
    while started.elapsed().as_secs_f64() < seconds {
        if let Some(address) = address {
            let t = Instant::now();
            let body = ureq::get(format!("http://{address}/metrics"))
                .call()
                .expect("scrape")
                .body_mut()
                .read_to_string()
                .expect("text");
            assert!(body.contains("sluice_records_in_total"));
            scrapes.push(t.elapsed());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let rate = (sunk(&handle) - first) as f64 / started.elapsed().as_secs_f64();
    stop.cancel();
    rt.block_on(task).expect("task").expect("run");
    (rate, scrapes)
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let seconds = if std::env::args().any(|a| a == "--bench") {
        8.0
    } else {
        1.0
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("p.yaml");
    std::fs::write(
        &file,
        format!(
            "pipeline: metrics-cost\nstreamlets:\n  listings:\n    kind: ingress\n    source: {{ type: generator, seed: 1, invalid_ratio: 0.02 }}\n  check:\n    kind: validator\n    inputs: [listings]\n    schema: {schema}\n  price:\n    use: {def}\n    inputs: [check.valid]\n  scored:\n    kind: egress\n    inputs: [price]\n    sink: {{ type: blackhole }}\n  rejected:\n    kind: egress\n    inputs: [check.invalid, price.errors]\n    sink: {{ type: blackhole }}\n",
            schema = root.join("schemas/records/listing.schema.json").display(),
            def = root.join("streamlets/house-price-gbm.yaml").display(),
        ),
    )
    .expect("pipeline");
    println!("metrics cost: generator → validator → scorer → blackhole, {seconds} s each\n");
    let (without, _) = measure(&file, seconds, false);
    let (with, mut scrapes) = measure(&file, seconds, true);
    scrapes.sort();
    let p50 = scrapes.get(scrapes.len() / 2).copied().unwrap_or_default();
    let max = scrapes.last().copied().unwrap_or_default();
    println!("  without the admin server      {without:>10.0} records/s");
    println!("  with it, scraped every 100 ms {with:>10.0} records/s");
    println!("  ratio                         {:>9.1}%", 100.0 * with / without);
    println!(
        "  scrape latency                p50 {:.2} ms, max {:.2} ms ({} scrapes)",
        p50.as_secs_f64() * 1e3,
        max.as_secs_f64() * 1e3,
        scrapes.len()
    );
}
