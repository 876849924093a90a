//! The scorer's cost: sluice's batch scoring (record fields → tensor → ONNX Runtime → record
//! fields and `_model`) side by side with raw ONNX Runtime on the same model, the same rows
//! and the same batch sizes, in the same run.
//!
//!   cargo bench --bench scorer          (SLUICE_BENCH_RECORDS=N to change the size)

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

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let benchmarking = std::env::args().any(|a| a == "--bench");
    let records: usize = std::env::var("SLUICE_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if benchmarking { 100_000 } else { 2_000 });
    let definition = std::fs::read_to_string(root.join("streamlets/house-price-gbm.yaml"))
        .expect("scorer definition");
    let mut config: ScorerConfig =
        serde_yaml_ng::from_str(&definition).expect("scorer definition parses");
    config.model.folder = root.join("examples/house-prices/models");
    let scorer = BatchScorer::new("price", &config);
    let features = Features::new(&config.features);
    let mut generator = ListingGenerator::new(9, 0.0);
    let listings: Batch = (0..records).map(|_| generator.next_record()).collect();
    let mut rows = Vec::with_capacity(records * features.width());
    for r in &listings {
        features
            .row(r, &mut rows)
            .expect("generated listings have every feature");
    }
    let width = features.width();
    println!("scorer benchmark: {records} house listings, {width} features, 1 session, 1 intra-op thread\n");

    for version in ["1", "2"] {
        config.model.version = Some(version.into());
        let source = Source {
            name: config.model.name.clone(),
            folder: config.model.folder.clone(),
            pinned: config.model.version.clone(),
        };
        let registry =
            ModelRegistry::open(source, scorer.expectation(&config), 1).expect("model loads");
        let model = registry.current();
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
        for batch in [1usize, 32, 256] {
            // Raw ONNX Runtime: prepared rows in, the output tensor copied out.
            let mut raw_figures = Figures::new();
            let started = Instant::now();
            for chunk in rows.chunks(batch * width) {
                let n = chunk.len() / width;
                let t = Instant::now();
                let input = TensorRef::from_array_view(([n, width], chunk)).expect("tensor");
                let outputs = raw
                    .run(ort::inputs!["features" => input])
                    .expect("inference");
                let (_, values) = outputs["variable"]
                    .try_extract_tensor::<f32>()
                    .expect("output");
                std::hint::black_box(values.to_vec());
                raw_figures
                    .latency
                    .saturating_record(t.elapsed().as_micros() as u64);
                raw_figures.records += n;
            }
            raw_figures.seconds = started.elapsed().as_secs_f64();

            // sluice: records in, records with their prediction and `_model` out. Each batch is
            // made just before it is scored, as the upstream streamlet would hand it over; only
            // the scoring is timed (making and dropping records is other streamlets' work).
            let mut figures = Figures::new();
            for chunk in listings.chunks(batch) {
                let b: Batch = chunk.to_vec();
                let n = b.len();
                let t = Instant::now();
                let (scored, failed) = scorer.score(&model, b);
                let elapsed = t.elapsed();
                assert!(failed.is_empty() && scored.len() == n);
                figures
                    .latency
                    .saturating_record(elapsed.as_micros() as u64);
                figures.seconds += elapsed.as_secs_f64();
                figures.records += n;
                drop(scored);
            }
            println!("  batch {batch}");
            println!("{}", raw_figures.line("raw ONNX Runtime"));
            println!("{}", figures.line("sluice scorer"));
            println!(
                "  {:<22} {:>11.0}% of raw throughput",
                "ratio",
                100.0 * figures.rate() / raw_figures.rate()
            );
        }
        println!();
    }
}
