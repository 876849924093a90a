//! The whole path, beside the model call it is built around: sluice pipelines that validate
//! (schema and training profile), enrich and score (house-price v2) every record, against
//! Python's onnxruntime scoring the same rows alone on one thread at batch 256, and in one
//! process per core at once (what the machine's cores allow), the rounds taking turns in the
//! same run. Prints records/s (the median of the rounds), CPU time per record, peak memory, and the
//! instructions per record counted by `valgrind --tool=callgrind` on two small runs (their
//! difference, so the start-up cost drops out) of C1 and of D: a figure the machine's noise
//! does not move.
//! sluice's own CPU per record is the process's CPU time less its model calls' (which each
//! scorer session counts on its own thread and logs in its model summary), so the model's
//! cost is taken in the same run, not from the raw baseline's process.
//! The CPU per record is given twice: over the whole run, and net of start-up (the same
//! pipeline on 1,000 records, its CPU time subtracted): loading ONNX Runtime, compiling the
//! schema and building sessions cost the same whatever the count.
//!
//!   cargo bench --bench full    (SLUICE_BENCH_RECORDS=1000000, SLUICE_BENCH_ROUNDS=3)
//!
//! C1: generator → validator → enricher → scorer (one session) → blackhole
//! C: the same with one scorer session per core (batches scored on every core at once)
//! D: JSONL file → validator → enricher → scorer (a session per core) → JSONL file

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use sluice::spec::ScorerConfig;
use sluice::streamlets::ingress::generator::ListingGenerator;
use sluice::streamlets::scorer::features::Features;

#[path = "support/whole_path.rs"]
mod whole_path;
use whole_path::middle_with;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// One run of a pipeline: its seconds (from its own log), CPU seconds, the CPU seconds of its
/// model calls (from its own log), peak memory.
struct Run {
    seconds: f64,
    cpu_seconds: f64,
    model_cpu_seconds: f64,
    peak_kib: u64,
}

/// User and system CPU time of the children this process has waited for, in seconds.
fn children_cpu() -> f64 {
    // SAFETY: getrusage fills the struct it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage);
        usage
    };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

fn run_sluice(pipeline: &Path) -> Run {
    let before = children_cpu();
    let output = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["--log-format", "json", "run"])
        .arg(pipeline)
        .current_dir(root())
        .output()
        .expect("sluice runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let lines: Vec<Value> = String::from_utf8_lossy(&output.stderr)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .collect();
    let finished = lines
        .iter()
        .find(|l| l["message"] == "finished")
        .expect("a finished line");
    Run {
        seconds: finished["elapsed_ms"].as_f64().unwrap_or(0.0) / 1000.0,
        cpu_seconds: children_cpu() - before,
        model_cpu_seconds: lines
            .iter()
            .filter(|l| l["message"] == "model summary")
            .filter_map(|l| l["cpu_us"].as_f64())
            .sum::<f64>()
            / 1e6,
        peak_kib: finished["peak_rss_kib"].as_u64().unwrap_or(0),
    }
}

/// Instructions of a `sluice run` of `pipeline` under callgrind, and the number of model
/// calls its scorer made (the batches form as records arrive, so their sizes, and the count,
/// move a little with how the threads interleave).
fn instructions(pipeline: &Path, dir: &Path) -> Option<(u64, u64)> {
    let out = dir.join("callgrind.out");
    let output = Command::new("valgrind")
        .arg("--tool=callgrind")
        .arg(format!("--callgrind-out-file={}", out.display()))
        .arg(env!("CARGO_BIN_EXE_sluice"))
        .args(["--log-format", "json", "run"])
        .arg(pipeline)
        .current_dir(root())
        .output()
        .ok()?;
    if !output.status.success() {
        println!(
            "  (callgrind failed: {})",
            String::from_utf8_lossy(&output.stderr).lines().last().unwrap_or("")
        );
        return None;
    }
    let calls = String::from_utf8_lossy(&output.stderr)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["message"] == "model summary")
        .and_then(|l| l["invocations"].as_u64())
        .unwrap_or(0);
    let text = std::fs::read_to_string(&out).ok()?;
    let instructions = text
        .lines()
        .find_map(|l| l.strip_prefix("summary: "))
        .or_else(|| text.lines().find_map(|l| l.strip_prefix("totals: ")))
        .and_then(|n| n.trim().parse().ok())?;
    Some((instructions, calls))
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values[values.len() / 2]
}

/// The feature rows of the listings the pipelines score, in a file for Python's onnxruntime
/// (float32, row-major), and their width; none when Python's onnxruntime is not installed.
fn write_rows(records: u64, dir: &Path) -> Option<(PathBuf, usize)> {
    if !root().join(".venv/bin/python").exists() {
        println!("(Python's onnxruntime is not installed: run scripts/setup-python-peer.sh to compare with it)");
        return None;
    }
    let definition = std::fs::read_to_string(root().join("streamlets/house-price-gbm.yaml")).expect("definition");
    let config: ScorerConfig = serde_yaml_ng::from_str(&definition).expect("definition parses");
    let features = Features::new(&config.features);
    let mut generator = ListingGenerator::new(1, 0.0);
    let mut rows = Vec::with_capacity(records as usize * features.width());
    let listings = generator.next_batch(records as usize);
    assert!(
        features.rows(&listings, &mut rows).iter().all(|r| r.is_ok()),
        "features"
    );
    let file = dir.join("rows.f32");
    std::fs::write(&file, rows.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>()).expect("rows");
    Some((file, features.width()))
}

/// Python's onnxruntime scoring the rows in `processes` processes at once (one thread each,
/// all measuring the same span), batch 256: rows/s of them all together.
fn raw_rows_per_second((file, width): &(PathBuf, usize), processes: usize) -> f64 {
    // Loading Python and the model takes about a second: all start measuring 3 s from now.
    let start_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64()
        + 3.0;
    let children: Vec<_> = (0..processes)
        .map(|_| {
            Command::new(root().join(".venv/bin/python"))
                .arg(root().join("benches/peer/raw_onnxruntime.py"))
                .arg(root().join("examples/house-prices/models/house-price-v2.onnx"))
                .arg(file)
                .arg(width.to_string())
                .arg("256")
                .env("SLUICE_START_AT", format!("{start_at:.3}"))
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("python runs")
        })
        .collect();
    children
        .into_iter()
        .map(|child| {
            let output = child.wait_with_output().expect("python runs");
            assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
            String::from_utf8_lossy(&output.stdout)
                .lines()
                .find_map(|l| l.split_whitespace().nth(2).and_then(|v| v.parse::<f64>().ok()))
                .expect("a rate")
        })
        .sum()
}

fn generator_pipeline(dir: &Path, name: &str, records: u64, sessions: usize) -> PathBuf {
    let file = dir.join(format!("{name}.yaml"));
    let yaml = middle_with(
        &format!("{{ type: generator, count: {records}, seed: 1 }}"),
        "{ type: blackhole }",
        sessions,
    );
    std::fs::write(&file, yaml).expect("pipeline");
    file
}

/// The records of the runs whose CPU time is taken as the start-up's.
const STARTUP_RECORDS: u64 = 1_000;

fn main() {
    let benchmarking = std::env::args().any(|a| a == "--bench");
    let env_number =
        |name: &str, default: u64| std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    let records = env_number("SLUICE_BENCH_RECORDS", if benchmarking { 1_000_000 } else { 5_000 });
    let rounds = env_number("SLUICE_BENCH_ROUNDS", if benchmarking { 3 } else { 1 }).max(1);
    let dir = tempfile::tempdir().expect("dir");
    println!(
        "The whole path: {records} listings, {rounds} rounds (medians), {} cores; house-price v2, batch 256\n",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let c1 = generator_pipeline(dir.path(), "c1", records, 1);
    let c = generator_pipeline(dir.path(), "c", records, cores);
    let c1_startup = generator_pipeline(dir.path(), "c1-startup", STARTUP_RECORDS, 1);
    let c_startup = generator_pipeline(dir.path(), "c-startup", STARTUP_RECORDS, cores);
    let file_pipeline = |name: &str, count: u64| {
        let input = dir.path().join(format!("{name}.jsonl"));
        let mut generator = ListingGenerator::new(1, 0.0);
        let mut w = BufWriter::new(std::fs::File::create(&input).expect("input"));
        for _ in 0..count {
            serde_json::to_writer(&mut w, &generator.next_record()).expect("write");
            w.write_all(b"\n").expect("write");
        }
        w.flush().expect("flush");
        let pipeline = dir.path().join(format!("{name}.yaml"));
        std::fs::write(
            &pipeline,
            middle_with(
                &format!("{{ type: file, path: {} }}", input.display()),
                &format!(
                    "{{ type: file, path: {} }}",
                    dir.path().join(format!("{name}-out.jsonl")).display()
                ),
                cores,
            ),
        )
        .expect("pipeline");
        pipeline
    };
    let d = file_pipeline("d", records);
    let d_startup = file_pipeline("d-startup", STARTUP_RECORDS);

    let rows = write_rows(records, dir.path());
    let one = "C1: generator → validator → enricher → scorer (1 session) → blackhole".to_string();
    let all = format!("C: generator → validator → enricher → scorer ({cores} sessions) → blackhole");
    let file = format!("D: JSONL file → validator → enricher → scorer ({cores} sessions) → JSONL file");
    let pipelines = [(one, &c1, &c1_startup), (all, &c, &c_startup), (file, &d, &d_startup)];
    // Rounds taking turns, so that the baselines and the pipelines meet the machine in the
    // same moods: raw ONNX Runtime on one core, on every core at once, then each pipeline.
    let (mut raw, mut ceiling) = (Vec::new(), Vec::new());
    let mut runs: Vec<Vec<Run>> = pipelines.iter().map(|_| Vec::new()).collect();
    for _ in 0..rounds {
        if let Some(rows) = &rows {
            raw.push(raw_rows_per_second(rows, 1));
            ceiling.push(raw_rows_per_second(rows, cores));
        }
        for ((_, pipeline, _), runs) in pipelines.iter().zip(&mut runs) {
            runs.push(run_sluice(pipeline));
        }
    }
    let rate_of = |run: &Run| records as f64 / run.seconds;
    // Each round's ratio, and their median.
    let ratio = |runs: &[Run], baseline: &[f64]| {
        (!baseline.is_empty()).then(|| median(runs.iter().zip(baseline).map(|(r, b)| rate_of(r) / b).collect()))
    };
    let list = |rates: &[f64]| rates.iter().map(|r| format!("{r:.0}")).collect::<Vec<_>>().join(", ");
    let model_us = (!raw.is_empty()).then(|| 1e6 / median(raw.clone()));
    if let Some(model_us) = model_us {
        println!(
            "raw ONNX Runtime (Python onnxruntime, 1 thread, batch 256, the same rows): {:.0} rows/s (rounds: {}), \
             {model_us:.2} µs per row",
            median(raw.clone()),
            list(&raw)
        );
        println!(
            "raw ONNX Runtime in {cores} processes at once (what {cores} cores allow): {:.0} rows/s (rounds: {}), \
             {:.2}x one\n",
            median(ceiling.clone()),
            list(&ceiling),
            median(ceiling.iter().zip(&raw).map(|(n, one)| n / one).collect())
        );
    }
    for ((label, _, startup), runs) in pipelines.iter().zip(&runs) {
        let startup_cpu = median((0..rounds).map(|_| run_sluice(startup).cpu_seconds).collect());
        let rates: Vec<f64> = runs.iter().map(rate_of).collect();
        let rate = median(rates.clone());
        let cpu_us = median(runs.iter().map(|r| 1e6 * r.cpu_seconds / records as f64).collect());
        let net_us = median(
            runs.iter()
                .map(|r| 1e6 * (r.cpu_seconds - startup_cpu) / records.saturating_sub(STARTUP_RECORDS).max(1) as f64)
                .collect(),
        );
        let peak = runs.iter().map(|r| r.peak_kib).max().unwrap_or(0) as f64 / 1024.0;
        // Everything but the model calls, their CPU time counted in the same process.
        let own_us = median(
            runs.iter()
                .map(|r| 1e6 * (r.cpu_seconds - r.model_cpu_seconds) / records as f64)
                .collect(),
        );
        let own_net_us = median(
            runs.iter()
                .map(|r| {
                    1e6 * (r.cpu_seconds - r.model_cpu_seconds - startup_cpu)
                        / records.saturating_sub(STARTUP_RECORDS).max(1) as f64
                })
                .collect(),
        );
        let model_in_run_us = median(
            runs.iter()
                .map(|r| 1e6 * r.model_cpu_seconds / records as f64)
                .collect(),
        );
        println!("{label}");
        println!(
            "  {rate:>10.0} records/s (rounds: {})   CPU {cpu_us:.2} µs per record ({net_us:.2} µs net of start-up, \
             {:.0} ms of CPU)   peak {peak:.1} MiB",
            list(&rates),
            1e3 * startup_cpu
        );
        println!(
            "  sluice's own CPU per record, all but the model calls (their CPU time counted in the same run: \
             {model_in_run_us:.2} µs a record): {own_us:.2} µs, {own_net_us:.2} µs net of start-up"
        );
        if let (Some(vs_raw), Some(vs_all), Some(model_us)) = (ratio(runs, &raw), ratio(runs, &ceiling), model_us) {
            println!(
                "  {vs_raw:.2}x the raw single-thread rate, {:.0}% of what {cores} raw processes score at once \
                 (medians of the rounds' ratios); CPU per record less the raw call's: {:.2} µs, \
                 {:.2} µs net of start-up",
                100.0 * vs_all,
                cpu_us - model_us,
                net_us - model_us
            );
        }
    }
    // Instructions per record: the difference of two small runs, start-up cancelled out. C1
    // (no JSON), and D (JSON lines read and written, where records are decoded and encoded).
    let (small, large) = if benchmarking { (10_000, 30_000) } else { (0, 0) };
    let counted = [
        (
            "C1",
            generator_pipeline(dir.path(), "small", small, 1),
            generator_pipeline(dir.path(), "large", large, 1),
        ),
        ("D", file_pipeline("d-small", small), file_pipeline("d-large", large)),
    ];
    for (label, a, b) in counted.iter().filter(|_| large > 0) {
        if let (Some((i_small, c_small)), Some((i_large, c_large))) =
            (instructions(a, dir.path()), instructions(b, dir.path()))
        {
            println!(
                "\n{label} under callgrind: {:.0} instructions per record ({} − {} instructions over {} records; \
                 {:.0} and {:.0} records per model call)",
                (i_large - i_small) as f64 / (large - small) as f64,
                i_large,
                i_small,
                large - small,
                small as f64 / c_small.max(1) as f64,
                large as f64 / c_large.max(1) as f64,
            );
        }
    }
}
