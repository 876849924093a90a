//! The enricher with a table of a million rows: load time, memory per row, join throughput.
//!
//!   cargo bench --bench enricher

use std::io::Write;
use std::time::Instant;

use serde_json::Value;
use sluice::spec::EnricherConfig;
use sluice::streamlets::enricher::{join, Table};
use sluice::streamlets::Batch;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn main() {
    let benchmarking = std::env::args().any(|a| a == "--bench");
    let rows: usize = if benchmarking { 1_000_000 } else { 10_000 };
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("table.csv");
    {
        let mut w = std::io::BufWriter::new(std::fs::File::create(&path).expect("table file"));
        writeln!(w, "key,median_income,latitude,longitude").expect("write");
        for i in 0..rows {
            writeln!(
                w,
                "K{i:07},{},{:.4},{:.4}",
                40_000 + (i * 37) % 160_000,
                45.0 + (i % 1000) as f64 / 1000.0,
                -122.0 - (i % 997) as f64 / 1000.0
            )
            .expect("write");
        }
    }
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    let yaml = format!(
        "table: {{ type: file, path: {}, key: key, columns: {{ median_income: integer, latitude: number, longitude: number }} }}\ninto: zip",
        path.display()
    );
    let config: EnricherConfig =
        serde_json::from_value(serde_yaml_ng::from_str::<Value>(&yaml).expect("yaml")).expect("config");
    let before = rss_kib();
    let started = Instant::now();
    let (table, problems) = Table::load(&config.table, &[]).expect("table loads");
    let load = started.elapsed();
    let after = rss_kib();
    assert!(problems.is_empty() && table.len() == rows);
    println!(
        "enricher benchmark: a table of {rows} rows ({:.1} MiB of CSV)\n",
        size as f64 / 1048576.0
    );
    println!(
        "  load            {:>8.2} s   ({:.0} rows/s)",
        load.as_secs_f64(),
        rows as f64 / load.as_secs_f64()
    );
    println!(
        "  memory          {:>8.1} MiB  ({:.0} bytes per row; the CSV has {:.0})",
        (after - before) as f64 / 1024.0,
        (after - before) as f64 * 1024.0 / rows as f64,
        size as f64 / rows as f64
    );
    let on = vec!["key".to_string()];
    let records: Vec<_> = (0..rows)
        .map(|i| {
            let mut r = serde_json::Map::new();
            r.insert("id".into(), (i as u64).into());
            r.insert("key".into(), format!("K{:07}", (i * 7919) % rows).into());
            r
        })
        .collect();
    let records = Batch::from_records(&records);
    let mut joined = 0usize;
    let mut elapsed = std::time::Duration::ZERO;
    for at in (0..records.len()).step_by(256) {
        let mut batch = records.slice(at, 256.min(records.len() - at));
        let t = Instant::now();
        let unmatched = join(&config, &on, &table, &mut batch);
        elapsed += t.elapsed();
        assert!(unmatched.is_empty());
        joined += batch.len();
    }
    println!(
        "  join            {:>8.0} records/s ({joined} records, batches of 256, one thread)",
        joined as f64 / elapsed.as_secs_f64()
    );
}
