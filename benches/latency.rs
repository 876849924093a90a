//! Latency in memory at a steady rate: listings written to `sluice run`'s stdin at 1,000 and
//! 10,000 records/s go through validator (schema and training profile) → enricher → scorer
//! (house-price v2) → stdout; each record's latency is from just before its line is written
//! to when its scored line is read back. Beside it, in the same run, the same process with
//! nothing between stdin and stdout: what the pipes and JSON lines cost by themselves.
//!
//!   cargo bench --bench latency       (SLUICE_LATENCY_SECONDS=8 per rate by default)

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[path = "support/whole_path.rs"]
mod whole_path;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The full path, or nothing but stdin to stdout.
fn pipeline(full: bool) -> String {
    if full {
        whole_path::middle_with("{ type: stdin }", "{ type: stdout }", 1)
    } else {
        "pipeline: passthrough\nstreamlets:\n  listings:\n    kind: ingress\n    source: { type: stdin }\n  \
         out:\n    kind: egress\n    inputs: [listings]\n    sink: { type: stdout }\n"
            .to_string()
    }
}

/// Latencies in µs of records written at `rate` per second for `seconds`.
fn measure(full: bool, rate: u64, seconds: u64) -> Vec<u64> {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("p.yaml");
    std::fs::write(&file, pipeline(full)).expect("pipeline");
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["run", &file.display().to_string()])
        .current_dir(root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("sluice runs");
    let mut stdin = child.stdin.take().expect("stdin");
    let stdout = child.stdout.take().expect("stdout");
    let total = rate * seconds;
    // The listings, turned into lines before the clock starts; `seq` says which one a line is.
    let mut generator = sluice::streamlets::ingress::generator::ListingGenerator::new(5, 0.0);
    let lines: Vec<String> = (0..total)
        .map(|seq| {
            let mut record = generator.next_record();
            record.insert("seq".into(), seq.into());
            format!("{}\n", serde_json::Value::Object(record))
        })
        .collect();
    let sent: Arc<Mutex<Vec<Option<Instant>>>> = Arc::new(Mutex::new(vec![None; total as usize]));
    let reader = {
        let sent = sent.clone();
        std::thread::spawn(move || {
            let mut latencies = Vec::with_capacity(total as usize);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let now = Instant::now();
                let record: serde_json::Value = serde_json::from_str(&line).expect("a JSON line");
                let seq = record["seq"].as_u64().expect("seq") as usize;
                if let Some(at) = sent.lock().expect("lock")[seq] {
                    latencies.push(now.duration_since(at).as_micros() as u64);
                }
            }
            latencies
        })
    };
    // Warm-up: a second at the rate, not counted.
    let started = Instant::now();
    for (i, line) in lines.iter().enumerate() {
        let due = started + Duration::from_secs_f64(i as f64 / rate as f64);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        if i as u64 >= rate {
            sent.lock().expect("lock")[i] = Some(Instant::now());
        }
        stdin.write_all(line.as_bytes()).expect("write");
        stdin.flush().expect("flush");
    }
    drop(stdin);
    let latencies = reader.join().expect("reader");
    let _ = child.wait();
    latencies
}

fn quantile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn main() {
    let seconds: u64 = std::env::var("SLUICE_LATENCY_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);
    println!(
        "In-memory latency, stdin → stdout of one `sluice run` process, {seconds} s per rate after 1 s of warm-up\n"
    );
    println!(
        "{:<52} {:>8} {:>9} {:>9} {:>9} {:>9}",
        "path", "rate/s", "records", "p50 µs", "p99 µs", "max µs"
    );
    for rate in [1_000u64, 10_000] {
        for full in [false, true] {
            let mut latencies = measure(full, rate, seconds + 1);
            latencies.sort_unstable();
            println!(
                "{:<52} {:>8} {:>9} {:>9} {:>9} {:>9}",
                if full {
                    "validator → enricher → scorer (house-price v2)"
                } else {
                    "passthrough (stdin → stdout)"
                },
                rate,
                latencies.len(),
                quantile(&latencies, 0.5),
                quantile(&latencies, 0.99),
                latencies.last().copied().unwrap_or(0)
            );
        }
    }
}
