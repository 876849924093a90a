//! The runtime's cost: sluice pipelines side by side with hand-written loops doing the same work,
//! each in its own process so that peak memory is its own.
//!
//!   cargo bench --bench pipeline            (SLUICE_BENCH_RECORDS=N to change the size)
//!
//! A: generator → validator → blackhole, against a loop that generates, validates and counts.
//! B: JSONL file → validator → JSONL file, against a loop that reads, parses, validates and writes.

use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use serde_json::Value;
use sluice::streamlets::ingress::generator::ListingGenerator;
use sluice::streamlets::validator::RecordSchema;

/// Records are many small allocations made on one thread and freed on another:
/// mimalloc handles that far better than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn schema_path() -> std::path::PathBuf {
    root().join("schemas/records/listing.schema.json")
}

/// One measured run: records, seconds, peak resident memory.
struct Figures {
    records: u64,
    seconds: f64,
    peak_kib: u64,
}

impl Figures {
    fn rate(&self) -> f64 {
        self.records as f64 / self.seconds
    }
}

fn print_json(f: &Figures) {
    println!(
        "{{\"records\":{},\"seconds\":{},\"peak_kib\":{}}}",
        f.records,
        f.seconds,
        sluice::observe::peak_rss_kib().unwrap_or(0).max(f.peak_kib)
    );
}

/// The `_error` a rejected record carries, as the validator writes it.
fn with_error(
    mut record: serde_json::Map<String, Value>,
    streamlet: &str,
    reason: &str,
    path: &str,
) -> serde_json::Map<String, Value> {
    record.insert(
        "_error".into(),
        serde_json::json!({"streamlet": streamlet, "reason": reason, "path": path}),
    );
    record
}

/// Loop A: generate, validate (annotating rejects as the validator does), count.
fn loop_generate_validate(records: u64) -> Figures {
    let schema = RecordSchema::load(&schema_path()).expect("schema loads");
    let mut generator = ListingGenerator::new(1, 0.01);
    let started = Instant::now();
    let (mut valid, mut invalid) = (0u64, 0u64);
    for _ in 0..records {
        let record = Value::Object(generator.next_record());
        match schema.check(&record) {
            None => valid += 1,
            Some(r) => {
                let Value::Object(map) = record else { unreachable!() };
                std::hint::black_box(with_error(map, "check", &r.reason, &r.path));
                invalid += 1;
            }
        }
    }
    std::hint::black_box((valid, invalid));
    Figures {
        records,
        seconds: started.elapsed().as_secs_f64(),
        peak_kib: 0,
    }
}

/// Loop B: read lines, parse, validate, serialize every record to the output.
fn loop_parse_validate_serialize(input: &Path, output: &Path) -> Figures {
    let schema = RecordSchema::load(&schema_path()).expect("schema loads");
    let started = Instant::now();
    let mut reader = BufReader::with_capacity(256 * 1024, std::fs::File::open(input).expect("input"));
    let mut writer = BufWriter::with_capacity(256 * 1024, std::fs::File::create(output).expect("output"));
    let mut line = Vec::new();
    let mut records = 0;
    while reader.read_until(b'\n', &mut line).expect("read") > 0 {
        let mut record: Value = serde_json::from_slice(&line).expect("bench input is JSON");
        if let Some(r) = schema.check(&record) {
            let Value::Object(map) = record else { unreachable!() };
            record = Value::Object(with_error(map, "check", &r.reason, &r.path));
        }
        serde_json::to_writer(&mut writer, &record).expect("write");
        writer.write_all(b"\n").expect("write");
        records += 1;
        line.clear();
    }
    writer.flush().expect("flush");
    Figures {
        records,
        seconds: started.elapsed().as_secs_f64(),
        peak_kib: 0,
    }
}

/// Runs `sluice run` on a pipeline and reads its own figures from its JSON log.
fn run_sluice(pipeline: &Path, records: u64) -> Figures {
    let output = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["--log-format", "json", "run"])
        .arg(pipeline)
        .output()
        .expect("sluice runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let finished = String::from_utf8_lossy(&output.stderr)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["message"] == "finished")
        .expect("a finished line");
    Figures {
        records,
        seconds: finished["elapsed_ms"].as_f64().unwrap_or(0.0) / 1000.0,
        peak_kib: finished["peak_rss_kib"].as_u64().unwrap_or(0),
    }
}

/// Runs this benchmark binary again as a child doing one loop, for its own peak memory.
fn run_child(args: &[&str]) -> Figures {
    let output = Command::new(std::env::current_exe().expect("own path"))
        .arg("--child")
        .args(args)
        .output()
        .expect("child runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let v: Value = serde_json::from_str(stdout.lines().last().unwrap_or("{}")).expect("child figures");
    Figures {
        records: v["records"].as_u64().unwrap_or(0),
        seconds: v["seconds"].as_f64().unwrap_or(0.0),
        peak_kib: v["peak_kib"].as_u64().unwrap_or(0),
    }
}

fn report(name: &str, pipeline: &Figures, baseline: &Figures) {
    println!("{name}");
    for (label, f) in [("sluice pipeline", pipeline), ("hand-written loop", baseline)] {
        println!(
            "  {label:<18} {:>10} records  {:>8.2} s  {:>12.0} records/s  peak {:>7.1} MiB",
            f.records,
            f.seconds,
            f.rate(),
            f.peak_kib as f64 / 1024.0
        );
    }
    println!(
        "  ratio              {:.0}% of the loop's throughput\n",
        100.0 * pipeline.rate() / baseline.rate()
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        let figures = match args.get(i + 1).map(String::as_str) {
            Some("generate") => loop_generate_validate(args[i + 2].parse().expect("count")),
            Some("parse") => loop_parse_validate_serialize(Path::new(&args[i + 2]), Path::new(&args[i + 3])),
            other => panic!("unknown child {other:?}"),
        };
        print_json(&figures);
        return;
    }
    // `cargo bench` passes `--bench`; `cargo test --benches` does not: then only smoke-test.
    let benchmarking = args.iter().any(|a| a == "--bench");
    let records: u64 = std::env::var("SLUICE_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if benchmarking { 2_000_000 } else { 10_000 });
    let dir = tempfile::tempdir().expect("temp dir");
    let schema = schema_path();
    println!(
        "sluice runtime benchmark: {records} records, {} cores\n",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );

    let a = dir.path().join("a.yaml");
    std::fs::write(
        &a,
        format!(
            "pipeline: bench-a\nstreamlets:\n  gen:\n    kind: ingress\n    source: {{ type: generator, count: {records}, seed: 1, invalid_ratio: 0.01 }}\n  check:\n    kind: validator\n    inputs: [gen]\n    schema: {}\n  sink:\n    kind: egress\n    inputs: [check.valid, check.invalid]\n    sink: {{ type: blackhole }}\n",
            schema.display()
        ),
    )
    .expect("write pipeline");
    let baseline = run_child(&["generate", &records.to_string()]);
    let pipeline = run_sluice(&a, records);
    report("A: generator → validator → blackhole", &pipeline, &baseline);

    let input = dir.path().join("listings.jsonl");
    {
        let mut generator = ListingGenerator::new(2, 0.01);
        let mut w = BufWriter::new(std::fs::File::create(&input).expect("input file"));
        for _ in 0..records {
            serde_json::to_writer(&mut w, &generator.next_record()).expect("write");
            w.write_all(b"\n").expect("write");
        }
        w.flush().expect("flush");
    }
    let b = dir.path().join("b.yaml");
    std::fs::write(
        &b,
        format!(
            "pipeline: bench-b\nstreamlets:\n  lines:\n    kind: ingress\n    source: {{ type: file, path: {} }}\n  check:\n    kind: validator\n    inputs: [lines]\n    schema: {}\n  save:\n    kind: egress\n    inputs: [check.valid, check.invalid]\n    sink: {{ type: file, path: {} }}\n",
            input.display(),
            schema.display(),
            dir.path().join("b-out.jsonl").display()
        ),
    )
    .expect("write pipeline");
    let loop_out = dir.path().join("loop-out.jsonl");
    let baseline = run_child(&["parse", &input.display().to_string(), &loop_out.display().to_string()]);
    let pipeline = run_sluice(&b, records);
    report("B: JSONL file → validator → JSONL file", &pipeline, &baseline);
}
