//! Hot reload, measured: the time from writing the pipeline file to the first record processed
//! by the new definition (20 reloads, alternating two scorer definitions), and the throughput of
//! a run with those reloads against the same run without, in the same benchmark.
//!
//!   cargo bench --bench reload

use std::path::Path;
use std::time::{Duration, Instant};

use sluice::runtime::{Handle, Status};
use tokio_util::sync::CancellationToken;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn scorer_definition(root: &Path, version: &str) -> String {
    let text = std::fs::read_to_string(root.join("streamlets/house-price-gbm.yaml")).expect("definition");
    text.replace(
        "  folder: ../examples/house-prices/models",
        &format!(
            "  folder: {}\n  version: \"{version}\"",
            root.join("examples/house-prices/models").display()
        ),
    )
}

fn pipeline(definition: &str) -> String {
    format!(
        "pipeline: reload-bench\nstreamlets:\n  listings:\n    kind: ingress\n    source: {{ type: generator, seed: 1 }}\n  price:\n    use: {definition}\n    inputs: [listings]\n  sink:\n    kind: egress\n    inputs: [price, price.errors]\n    sink: {{ type: blackhole }}\n"
    )
}

fn write_atomically(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

fn sunk(status: &Status) -> u64 {
    status
        .streamlets
        .iter()
        .find(|s| s.name == "sink")
        .map_or(0, |s| s.records_in)
}

fn price(status: &Status) -> Option<&sluice::runtime::StreamletStatus> {
    status.streamlets.iter().find(|s| s.name == "price")
}

/// Runs the pipeline for `seconds`, calling `during` (with the handle) on the side; returns records/s.
fn measure(file: &Path, seconds: f64, during: impl FnOnce(&Handle)) -> f64 {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let stop = CancellationToken::new();
    let topology = sluice::topology::load(file).expect("valid pipeline");
    let (handle, task) = rt.block_on(sluice::runtime::run_file(file, topology, stop.clone()));
    while sunk(&handle.status()) == 0 {
        std::thread::sleep(Duration::from_millis(5));
    }
    let started = Instant::now();
    let first = sunk(&handle.status());
    during(&handle);
    let left = Duration::from_secs_f64(seconds).saturating_sub(started.elapsed());
    std::thread::sleep(left);
    let rate = (sunk(&handle.status()) - first) as f64 / started.elapsed().as_secs_f64();
    stop.cancel();
    rt.block_on(task).expect("task").expect("run");
    rate
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let benchmarking = std::env::args().any(|a| a == "--bench");
    let reloads = if benchmarking { 20 } else { 2 };
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("v1.yaml"), scorer_definition(root, "1")).expect("def");
    std::fs::write(dir.path().join("v2.yaml"), scorer_definition(root, "2")).expect("def");
    let file = dir.path().join("pipeline.yaml");
    std::fs::write(&file, pipeline("v1.yaml")).expect("pipeline");
    let seconds = if benchmarking { 8.0 } else { 1.0 };
    println!("hot reload benchmark: generator → house-price scorer → blackhole, {reloads} reloads\n");

    let baseline = measure(&file, seconds, |_| {});
    let mut latencies: Vec<Duration> = Vec::new();
    let with_reloads = measure(&file, seconds, |handle| {
        for i in 1..=reloads {
            let version = if i % 2 == 1 { "2" } else { "1" };
            let before = price(&handle.status()).map(|p| p.instance);
            let written = Instant::now();
            write_atomically(&file, &pipeline(&format!("v{version}.yaml")));
            loop {
                let status = handle.status();
                let replaced = price(&status)
                    .filter(|p| Some(p.instance) != before)
                    .is_some_and(|p| p.models.iter().any(|m| m.records > 0));
                if replaced {
                    latencies.push(written.elapsed());
                    break;
                }
                std::thread::sleep(Duration::from_micros(200));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 * q).ceil() as usize).clamp(1, latencies.len()) - 1];
    println!(
        "  file written → first record scored by the new definition ({} reloads)",
        latencies.len()
    );
    println!(
        "    p50 {:>7.1} ms   p99 {:>7.1} ms   max {:>7.1} ms",
        ms(at(0.5)),
        ms(at(0.99)),
        ms(at(1.0))
    );
    println!("  throughput without reloads   {baseline:>10.0} records/s");
    println!("  throughput with reloads      {with_reloads:>10.0} records/s");
    println!(
        "  ratio                        {:>9.0}%",
        100.0 * with_reloads / baseline
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
