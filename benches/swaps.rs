//! Memory across model swaps: a `sluice run` process scores generated listings at 20,000/s
//! while a new house-price version lands in its watched folder as soon as the previous one
//! is serving, 1,000 times; its resident memory is printed after 0, 100, ... 1,000 swaps.
//! A pipeline that takes a retrained model every hour must run for months on the same memory.
//!
//!   cargo bench --bench swaps          (SLUICE_SWAPS=1000 by default)

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes version `version` (the bytes of v1 or v2, alternately) into `folder`: the model
/// first, the descriptor last, renamed into place.
fn publish(folder: &Path, version: u64, models: &[Vec<u8>; 2]) {
    let bytes = &models[(version % 2) as usize];
    let name = format!("house-price-v{version}");
    std::fs::write(folder.join(format!("{name}.onnx")), bytes).expect("model");
    let descriptor = serde_json::json!({
        "name": "house-price", "version": version.to_string(), "format": "onnx",
        "location": format!("{name}.onnx"), "sha256": sha256_hex(bytes),
    });
    let temporary = folder.join(format!(".{name}.tmp"));
    std::fs::write(&temporary, descriptor.to_string()).expect("descriptor");
    std::fs::rename(&temporary, folder.join(format!("{name}.model.json"))).expect("rename");
}

fn swaps_in(log: &Path) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .matches("model swapped")
        .count()
}

fn main() {
    let swaps: u64 = std::env::var("SLUICE_SWAPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let dir = tempfile::tempdir().expect("dir");
    let folder = dir.path().join("models");
    std::fs::create_dir(&folder).expect("models folder");
    let source = root().join("examples/house-prices/models");
    let models = [
        std::fs::read(source.join("house-price-v2.onnx")).expect("v2"),
        std::fs::read(source.join("house-price-v1.onnx")).expect("v1"),
    ];
    let mut version = 1;
    publish(&folder, version, &models);
    let pipeline = dir.path().join("swaps.yaml");
    std::fs::write(
        &pipeline,
        format!(
            r#"
pipeline: swaps
streamlets:
  listings:
    kind: ingress
    source: {{ type: generator, rate: 20000, seed: 3 }}
  price:
    use: {scorer}
    inputs: [listings]
    model: {{ name: house-price, folder: {folder} }}
    discard: [errors]
  scored:
    kind: egress
    inputs: [price]
    sink: {{ type: blackhole }}
"#,
            scorer = root().join("streamlets/house-price-gbm.yaml").display(),
            folder = folder.display(),
        ),
    )
    .expect("pipeline");
    let log = dir.path().join("sluice.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["run", &pipeline.display().to_string()])
        .current_dir(root())
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("sluice runs");
    println!("Model swaps under load: generator at 20,000 records/s → house-price scorer → blackhole,");
    println!("a new version (v1's or v2's bytes, alternately) published as soon as the previous one serves\n");
    println!("{:>6} {:>10} {:>12}", "swaps", "RSS MiB", "elapsed s");
    let started = Instant::now();
    // Let the first version serve and the process settle before the first reading.
    std::thread::sleep(Duration::from_secs(3));
    let mut readings = Vec::new();
    let mut swapped = 0u64;
    loop {
        if swapped.is_multiple_of(100) {
            // The median of five readings a fifth of a second apart: the allocator keeps and
            // returns pages in steps, and one reading can land on either side of a step.
            let mut samples: Vec<u64> = (0..5)
                .map(|_| {
                    std::thread::sleep(Duration::from_millis(200));
                    rss_kib(child.id())
                })
                .collect();
            samples.sort_unstable();
            let mib = samples[2] as f64 / 1024.0;
            println!("{swapped:>6} {mib:>10.1} {:>12.1}", started.elapsed().as_secs_f64());
            readings.push((swapped, mib));
        }
        if swapped == swaps {
            break;
        }
        version += 1;
        publish(&folder, version, &models);
        let waiting = Instant::now();
        while (swaps_in(&log) as u64) < swapped + 1 {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "sluice stopped ({status}):\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            assert!(
                waiting.elapsed() < Duration::from_secs(60),
                "version {version} was not swapped in"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        swapped += 1;
    }
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let _ = child.wait();
    if let (Some(&(_, at_100)), Some(&(_, last))) = (readings.iter().find(|(s, _)| *s == 100), readings.last()) {
        println!("\ngrowth from 100 to {swaps} swaps: {:+.1} MiB", last - at_100);
    }
    // The trend from 100 swaps on (least squares), less moved by one reading than the ends are.
    let after: Vec<(f64, f64)> = readings
        .iter()
        .filter(|(s, _)| *s >= 100)
        .map(|&(s, m)| (s as f64, m))
        .collect();
    if after.len() >= 2 {
        let n = after.len() as f64;
        let (mx, my) = (
            after.iter().map(|p| p.0).sum::<f64>() / n,
            after.iter().map(|p| p.1).sum::<f64>() / n,
        );
        let slope = after.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum::<f64>()
            / after.iter().map(|p| (p.0 - mx).powi(2)).sum::<f64>();
        println!("trend from 100 swaps on: {:+.1} MiB per 1,000 swaps", slope * 1000.0);
    }
}
