//! JSON lines in and out, the two ends of a pipeline that reads and writes files or Kafka
//! messages: sluice's decoder (serde_json straight into columns) and encoder beside
//! `serde_json` into a `Map` per record (what sluice did before) and Apache Arrow's own JSON
//! reader and writer (`arrow-json`, schema inferred once), on the same generated listings,
//! one thread, in the same run. Prints nanoseconds per record, the median of five rounds.
//!
//!   cargo bench --bench json    (SLUICE_BENCH_RECORDS=N to change the size)
//!
//! arrow-json is faster but cannot be sluice's decoder: it reads an explicit `null` and a
//! missing field the same, turns an integer into a float in a float column, and refuses a
//! field that is a number in one record and a string in the next.

use std::io::Cursor;
use std::sync::Arc;
use std::time::Instant;

use sluice::flow::json::{decode_into, write_lines};
use sluice::flow::{Batch, BatchBuilder, Column, Owned};
use sluice::streamlets::ingress::generator::ListingGenerator;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BATCH: usize = 256;
const ROUNDS: usize = 5;

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values[values.len() / 2]
}

/// Nanoseconds per record of `work` over `records`, the median of the rounds.
fn time(records: usize, mut work: impl FnMut()) -> f64 {
    median(
        (0..ROUNDS)
            .map(|_| {
                let t = Instant::now();
                work();
                t.elapsed().as_nanos() as f64 / records as f64
            })
            .collect(),
    )
}

fn main() {
    let benchmarking = std::env::args().any(|a| a == "--bench");
    let records: usize = std::env::var("SLUICE_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if benchmarking { 200_000 } else { 2_000 });
    let listings = ListingGenerator::new(1, 0.0).next_batch(records);
    let mut text = Vec::new();
    write_lines(&listings, &mut text);
    let lines: Vec<&[u8]> = text.split(|b| *b == b'\n').filter(|l| !l.is_empty()).collect();
    println!(
        "JSON lines, {records} generated listings (17 fields, {} bytes a line on average), batches of {BATCH}, one thread\n",
        text.len() / records
    );

    // Decoding.
    let sluice_decode = time(records, || {
        for chunk in lines.chunks(BATCH) {
            let mut b = BatchBuilder::default();
            for line in chunk {
                decode_into(line, &mut b).expect("a record");
            }
            std::hint::black_box(b.finish());
        }
    });
    let map_decode = time(records, || {
        for chunk in lines.chunks(BATCH) {
            let batch: Vec<serde_json::Map<String, serde_json::Value>> = chunk
                .iter()
                .map(|l| serde_json::from_slice(l).expect("a record"))
                .collect();
            std::hint::black_box(batch);
        }
    });
    let (schema, _) = arrow_json::reader::infer_json_schema(Cursor::new(&text[..]), Some(1000)).expect("a schema");
    let schema = Arc::new(schema);
    let arrow_decode = time(records, || {
        let mut decoder = arrow_json::ReaderBuilder::new(schema.clone())
            .with_batch_size(BATCH)
            .build_decoder()
            .expect("decoder");
        let mut rest = &text[..];
        while !rest.is_empty() {
            let used = decoder.decode(rest).expect("decoded");
            rest = &rest[used..];
            if let Some(batch) = decoder.flush().expect("flushed") {
                std::hint::black_box(batch);
            }
        }
        if let Some(batch) = decoder.flush().expect("flushed") {
            std::hint::black_box(batch);
        }
    });

    // Encoding the same records back.
    let batches: Vec<Batch> = (0..records)
        .step_by(BATCH)
        .map(|at| listings.slice(at, BATCH.min(records - at)))
        .collect();
    let maps: Vec<Vec<serde_json::Map<String, serde_json::Value>>> = batches.iter().map(|b| b.records()).collect();
    let arrow_batches: Vec<arrow_array::RecordBatch> = {
        let mut decoder = arrow_json::ReaderBuilder::new(schema.clone())
            .with_batch_size(BATCH)
            .build_decoder()
            .expect("decoder");
        let mut out = Vec::new();
        let mut rest = &text[..];
        while !rest.is_empty() {
            let used = decoder.decode(rest).expect("decoded");
            rest = &rest[used..];
            out.extend(decoder.flush().expect("flushed"));
        }
        out.extend(decoder.flush().expect("flushed"));
        out
    };
    let mut buffer = Vec::with_capacity(text.len());
    let sluice_encode = time(records, || {
        buffer.clear();
        for b in &batches {
            write_lines(b, &mut buffer);
        }
        std::hint::black_box(&buffer);
    });
    let map_encode = time(records, || {
        buffer.clear();
        for batch in &maps {
            for record in batch {
                serde_json::to_writer(&mut buffer, record).expect("written");
                buffer.push(b'\n');
            }
        }
        std::hint::black_box(&buffer);
    });
    let arrow_encode = time(records, || {
        buffer.clear();
        let mut writer = arrow_json::LineDelimitedWriter::new(&mut buffer);
        for b in &arrow_batches {
            writer.write(b).expect("written");
        }
        writer.finish().expect("finished");
        std::hint::black_box(&buffer);
    });

    // What a pipeline writes: records read from JSON text, with fields added on the way (a
    // prediction and the model's audit), written back. Unchanged, a record's fields are its own
    // text; the same batches without their texts are written field by field.
    let added: Vec<Batch> = lines
        .chunks(BATCH)
        .map(|chunk| {
            let mut b = BatchBuilder::default();
            for line in chunk {
                decode_into(line, &mut b).expect("a record");
            }
            let mut batch = b.finish();
            let n = batch.len();
            batch.set(
                "prediction",
                Column::floats((0..n).map(|i| 250_000.0 + i as f64 * 1.25).collect::<Vec<_>>().into()),
            );
            batch.set(
                "_model",
                Column::same(
                    &Owned::Object(vec![
                        ("name".into(), Owned::Str("house-price".into())),
                        ("version".into(), Owned::Str("2".into())),
                    ]),
                    n,
                ),
            );
            batch
        })
        .collect();
    let from_columns: Vec<Batch> = added.iter().map(|b| Batch::new(b.len(), b.fields().to_vec())).collect();
    let mut encode_added = |batches: &[Batch]| {
        time(records, || {
            buffer.clear();
            for b in batches {
                write_lines(b, &mut buffer);
            }
            std::hint::black_box(&buffer);
        })
    };
    let texts_encode = encode_added(&added);
    let columns_encode = encode_added(&from_columns);

    println!("{:<48} {:>10} {:>10}", "", "decode", "encode");
    for (label, decode, encode) in [
        (
            "sluice (serde_json → columns; columns → text)",
            sluice_decode,
            sluice_encode,
        ),
        ("serde_json, a Map per record", map_decode, map_encode),
        ("arrow-json (schema inferred once)", arrow_decode, arrow_encode),
    ] {
        println!("{label:<48} {decode:>7.0} ns {encode:>7.0} ns   per record");
    }
    println!(
        "\nread from text, a prediction and the model's audit added, written back:\n\
         {:<48} {:>18.0} ns   per record\n{:<48} {:>18.0} ns   per record",
        "  sluice (each record's text, then the fields added)",
        texts_encode,
        "  sluice (every field from its column)",
        columns_encode
    );
}
