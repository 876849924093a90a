//! The scorer's cost: sluice's batch scoring (record fields → tensor → ONNX Runtime → record
//! fields and `_model`) side by side with raw ONNX Runtime on the same model, the same rows
//! and the same batch sizes, in the same run.
//!
//!   cargo bench --bench scorer          (SLUICE_BENCH_RECORDS=N to change the size,
//!                                        SLUICE_BENCH_BATCHES=256 for one batch size)

use std::path::Path;
use std::time::Instant;

use hdrhistogram::Histogram;
use ort::session::Session;
use ort::value::TensorRef;
use sluice::models::registry::Source;
use sluice::models::ModelRegistry;
use sluice::spec::ScorerConfig;
use sluice::streamlets::ingress::generator::ListingGenerator;
use sluice::streamlets::scorer::features::Features;
use sluice::streamlets::scorer::serving::Serving;
use sluice::streamlets::scorer::BatchScorer;
use sluice::streamlets::Batch;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Figures {
    records: usize,
    seconds: f64,
    latency: Histogram<u64>,
}

impl Figures {
    fn new() -> Self {
        Figures {
            records: 0,
            seconds: 0.0,
            latency: Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds"),
        }
    }

    fn rate(&self) -> f64 {
        self.records as f64 / self.seconds
    }

    fn line(&self, label: &str) -> String {
        format!(
            "  {label:<22} {:>12.0} records/s   batch latency p50 {:>6} µs  p99 {:>6} µs",
            self.rate(),
            self.latency.value_at_quantile(0.5),
            self.latency.value_at_quantile(0.99)
        )
    }
}

/// Rows per second of Python's onnxruntime on the rows in `rows` per batch size, from
/// `benches/peer/raw_onnxruntime.py`; none when the Python packages are not installed
/// (`make python-peer`, which `make bench` runs).
fn python_reference(
    python: &Path,
    root: &Path,
    model: &Path,
    rows: &Path,
    width: usize,
    batches: &[usize],
) -> Vec<(usize, f64)> {
    if !python.exists() {
        println!("  (Python's onnxruntime is not installed: run scripts/setup-python-peer.sh to compare with it)");
        return Vec::new();
    }
    let output = std::process::Command::new(python)
        .arg(root.join("benches/peer/raw_onnxruntime.py"))
        .arg(model)
        .arg(rows)
        .arg(width.to_string())
        .args(batches.iter().map(|b| b.to_string()))
        .output()
        .expect("python runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| {
            let mut parts = l.split_whitespace().skip(1);
            Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
        })
        .collect()
}

/// Rounds of each measurement (the median is reported).
const ROUNDS: usize = 5;

/// The round with the median rate.
fn median_round(mut rounds: Vec<Figures>) -> Figures {
    rounds.sort_by(|a, b| a.rate().total_cmp(&b.rate()));
    let middle = rounds.len() / 2;
    rounds.swap_remove(middle)
}

/// The batch in consecutive pieces of `size` records.
fn chunks(batch: &Batch, size: usize) -> Vec<Batch> {
    (0..batch.len())
        .step_by(size)
        .map(|at| batch.slice(at, size.min(batch.len() - at)))
        .collect()
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let benchmarking = std::env::args().any(|a| a == "--bench");
    let records: usize = std::env::var("SLUICE_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if benchmarking { 100_000 } else { 2_000 });
    let batches: Vec<usize> = std::env::var("SLUICE_BENCH_BATCHES")
        .ok()
        .map(|v| {
            v.split(',')
                .filter_map(|b| b.trim().parse().ok())
                .filter(|b| *b > 0)
                .collect()
        })
        .filter(|b: &Vec<usize>| !b.is_empty())
        .unwrap_or_else(|| vec![1, 32, 256]);
    let definition = std::fs::read_to_string(root.join("streamlets/house-price-gbm.yaml")).expect("scorer definition");
    let config: ScorerConfig = serde_yaml_ng::from_str(&definition).expect("scorer definition parses");
    let folder = root.join("examples/house-prices/models");
    let scorer = BatchScorer::new("price", &config);
    let open = |version: &str| {
        let source = Source {
            name: "house-price".into(),
            folder: folder.clone(),
            pinned: Some(version.into()),
            topic: None,
        };
        ModelRegistry::open(source, scorer.expectation(&config), 1).expect("model loads")
    };
    let features = Features::new(&config.features);
    let mut generator = ListingGenerator::new(9, 0.0);
    let listings: Batch = generator.next_batch(records);
    let mut rows = Vec::with_capacity(records * features.width());
    assert!(
        features.rows(&listings, &mut rows).iter().all(|r| r.is_ok()),
        "generated listings have every feature"
    );
    let width = features.width();
    println!("scorer benchmark: {records} house listings, {width} features, 1 session, 1 intra-op thread\n");
    // The same rows for Python's onnxruntime, the fastest plain call of the same library.
    let rows_file = tempfile::NamedTempFile::new().expect("rows file");
    std::fs::write(
        rows_file.path(),
        rows.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>(),
    )
    .expect("rows written");
    let python = root.join(".venv/bin/python");

    for version in ["1", "2"] {
        let registry = open(version);
        let model = registry.current().expect("a version serves");
        let bytes = model.descriptor.bytes().expect("model bytes");
        let env = sluice::models::onnx::environment().expect("ONNX Runtime");
        let mut raw = Session::builder(env)
            .and_then(|b| b.with_intra_threads(1).map_err(Into::into))
            .and_then(|mut b| b.commit_from_memory(&bytes))
            .expect("raw session");
        println!(
            "house-price v{version} ({})",
            model.descriptor.description.clone().unwrap_or_default()
        );
        let model_file = folder.join(format!("house-price-v{version}.onnx"));
        let reference = python_reference(&python, root, &model_file, rows_file.path(), width, &batches);
        for &batch in &batches {
            // Raw ONNX Runtime: prepared rows in, the output tensor copied out.
            let mut measure_raw = || {
                let mut raw_figures = Figures::new();
                let started = Instant::now();
                for chunk in rows.chunks(batch * width) {
                    let n = chunk.len() / width;
                    let t = Instant::now();
                    let input = TensorRef::from_array_view(([n, width], chunk)).expect("tensor");
                    let outputs = raw.run(ort::inputs!["features" => input]).expect("inference");
                    let (_, values) = outputs["variable"].try_extract_tensor::<f32>().expect("output");
                    std::hint::black_box(values.to_vec());
                    raw_figures.latency.saturating_record(t.elapsed().as_micros() as u64);
                    raw_figures.records += n;
                }
                raw_figures.seconds = started.elapsed().as_secs_f64();
                raw_figures
            };

            // sluice: records in, records with their prediction and `_model` out. Each batch is
            // handed over as the upstream streamlet would; only the scoring is timed (making
            // and dropping records is other streamlets' work).
            let measure_sluice = || {
                let mut figures = Figures::new();
                for b in chunks(&listings, batch) {
                    let n = b.len();
                    let t = Instant::now();
                    let sluice::streamlets::scorer::Scored {
                        out: scored,
                        errors: failed,
                        ..
                    } = scorer.score(&model, b);
                    let elapsed = t.elapsed();
                    assert!(failed.is_empty() && scored.len() == n);
                    figures.latency.saturating_record(elapsed.as_micros() as u64);
                    figures.seconds += elapsed.as_secs_f64();
                    figures.records += n;
                    drop(scored);
                }
                figures
            };
            // Rounds taking turns, so both meet the machine in the same moods; the median round of each.
            let mut raw_rounds = Vec::new();
            let mut sluice_rounds = Vec::new();
            for _ in 0..ROUNDS {
                raw_rounds.push(measure_raw());
                sluice_rounds.push(measure_sluice());
            }
            let raw_figures = median_round(raw_rounds);
            let figures = median_round(sluice_rounds);
            println!("  batch {batch}");
            println!("{}", raw_figures.line("raw ONNX Runtime"));
            println!("{}", figures.line("sluice scorer"));
            println!(
                "  {:<22} {:>11.0}% of raw throughput",
                "ratio",
                100.0 * figures.rate() / raw_figures.rate()
            );
            if let Some(&(_, python_rate)) = reference.iter().find(|(b, _)| *b == batch) {
                println!("  {:<22} {python_rate:>12.0} records/s", "Python onnxruntime");
                println!(
                    "  {:<22} {:>11.0}% of Python's (raw Rust call {:.0}%)",
                    "ratio",
                    100.0 * figures.rate() / python_rate,
                    100.0 * raw_figures.rate() / python_rate
                );
            }
        }
        println!();
    }

    // Strategies with two models (v1 and v2), against the single-model scorer, batch 256.
    println!("strategies with two models (v1, v2), batch 256, against one model (v2)");
    let strategies: [(&str, Option<&str>); 6] = [
        ("single model (v2)", None),
        (
            "speculative",
            Some("{ speculative: { budget_ms: 50, fallback: v1, prefer: [v2, v1] } }"),
        ),
        ("consensus (median)", Some("{ consensus: {} }")),
        ("best_confidence", Some("{ best_confidence: {} }")),
        (
            "split 50/50 by id",
            Some("{ split: { key: id, weights: { v1: 50, v2: 50 } } }"),
        ),
        (
            "shadow (v1 shadows v2)",
            Some("{ shadow: { primary: v2, shadows: [v1] } }"),
        ),
    ];
    let batches: Vec<Batch> = chunks(&listings, 256);
    for (label, strategy) in strategies {
        let mut config = config.clone();
        config.strategy = strategy.map(|s| {
            let value: serde_json::Value = serde_yaml_ng::from_str(s).expect("strategy is YAML");
            serde_json::from_value(value).expect("strategy parses")
        });
        let models = match strategy {
            None => vec![("v2".to_string(), open("2"))],
            Some(_) => vec![("v1".to_string(), open("1")), ("v2".to_string(), open("2"))],
        };
        let serving =
            Serving::new(BatchScorer::new("price", &config), models, config.strategy.as_ref()).expect("serving");
        let mut figures = Figures::new();
        for b in &batches {
            let b = b.clone();
            let n = b.len();
            let t = Instant::now();
            let scored = serving.score(b);
            let elapsed = t.elapsed();
            assert_eq!(scored.out.len(), n, "{label}: {:?}", scored.errors.records().first());
            figures.latency.saturating_record(elapsed.as_micros() as u64);
            figures.seconds += elapsed.as_secs_f64();
            figures.records += n;
        }
        println!("{}", figures.line(label));
    }
}
