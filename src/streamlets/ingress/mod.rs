//! The ingress: brings records in from a file, stdin or a generator. Outlets: `out` for records,
//! `errors` for input that is not a record (with its line number and original content).

pub mod generator;
pub mod text;

use std::io::BufReader;
use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Map, Value};
use tokio::sync::mpsc;

use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::Message;

use super::{kafka, Batch, Io, Prepare, Record, Stop, StreamletError};
use crate::spec::{
    Format, GeneratorConfig, IngressConfig, KafkaSettings, KafkaSourceConfig, SourceConfig, StartFrom, TextFormat,
};
use text::{Item, TextReader};

/// An ingress with its source open.
pub struct Ready {
    config: IngressConfig,
    file: Option<std::fs::File>,
    /// A Kafka source's settings (the pipeline's, then its own) and consumer group.
    kafka: Option<(KafkaSettings, String)>,
}

/// Opens a file source, or checks a Kafka source's brokers and topic (other sources open when they run).
pub async fn prepare(config: &IngressConfig, ctx: &Prepare) -> Result<Ready, StreamletError> {
    let mut ready = Ready {
        config: config.clone(),
        file: None,
        kafka: None,
    };
    match &config.source {
        SourceConfig::File { path, .. } => {
            ready.file = Some(std::fs::File::open(path).map_err(|source| StreamletError::Open {
                path: path.display().to_string(),
                source,
            })?)
        }
        SourceConfig::Kafka(k) => {
            let settings = ctx.kafka.merged(&k.settings);
            kafka::check_reachable(&settings).await?;
            kafka::ensure_topic(&settings, &k.topic, k.partitions, k.replication).await?;
            let group = k
                .group
                .clone()
                .unwrap_or_else(|| format!("{}.{}", ctx.pipeline, ctx.name));
            ready.kafka = Some((settings, group));
        }
        _ => {}
    }
    Ok(ready)
}

pub async fn run(ready: Ready, mut io: Io) -> Result<(), Stop> {
    let Ready { config, file, kafka } = ready;
    if let Some(size) = config.batch_size {
        io.batch_size = size;
    }
    match (config.source, file) {
        (SourceConfig::File { path, text }, Some(file)) => {
            let format = text.format.unwrap_or_else(|| format_of(&path));
            let input = BufReader::with_capacity(256 * 1024, Box::new(file) as Box<dyn std::io::Read + Send>);
            read_text(io, reader(&text, format), input, &path.display().to_string()).await
        }
        (SourceConfig::File { path, .. }, None) => {
            Err(StreamletError::Internal(format!("{} was not opened before the ingress ran", path.display())).into())
        }
        (SourceConfig::Stdin { text }, _) => {
            let format = text.format.unwrap_or(Format::Jsonl);
            let input = BufReader::new(Box::new(std::io::stdin()) as Box<dyn std::io::Read + Send>);
            read_text(io, reader(&text, format), input, "stdin").await
        }
        (SourceConfig::Generator(g), _) => generate(g, io).await,
        (SourceConfig::Kafka(k), _) => match kafka {
            Some((settings, group)) => consume(k, settings, group, io).await,
            None => Err(StreamletError::Internal("the Kafka source was not prepared".into()).into()),
        },
    }
}

/// Notes, per assigned partition, how many messages are not read yet: the partition's high
/// watermark less the next offset this source will read (blocking: a metadata call).
fn record_lag(
    consumer: &StreamConsumer,
    topic: &str,
    next: &std::collections::BTreeMap<i32, i64>,
    telemetry: &super::io::Telemetry,
) {
    // The partitions assigned now, and those read from.
    let mut partitions: std::collections::BTreeSet<i32> = next.keys().copied().collect();
    if let Ok(assignment) = consumer.assignment() {
        partitions.extend(assignment.elements_for_topic(topic).iter().map(|e| e.partition()));
    }
    for partition in partitions {
        let (low, high) = match consumer.fetch_watermarks(topic, partition, Duration::from_secs(2)) {
            Ok(w) => w,
            Err(e) => {
                tracing::debug!(%topic, partition, error = %e, "no watermarks for the lag");
                continue;
            }
        };
        let read = next.get(&partition).copied().unwrap_or(low);
        telemetry.set_lag(topic, partition, (high - read).max(0));
    }
}

/// Reads JSON records from a Kafka topic in batches. A message's offset is stored for the
/// group's commit once its batch has been handed downstream; on stop the stored offsets are
/// committed.
async fn consume(config: KafkaSourceConfig, settings: KafkaSettings, group: String, io: Io) -> Result<(), Stop> {
    let mut client = kafka::client_config(&settings);
    client
        .set("group.id", &group)
        .set("enable.auto.commit", "true")
        .set("enable.auto.offset.store", "false")
        .set(
            "auto.offset.reset",
            match config.start {
                StartFrom::Earliest => "earliest",
                StartFrom::Latest => "latest",
            },
        );
    let consumer: StreamConsumer = client
        .create()
        .map_err(|e| StreamletError::Internal(format!("Kafka consumer for `{}`: {e}", config.topic)))?;
    consumer
        .subscribe(&[&config.topic])
        .map_err(|e| StreamletError::Internal(format!("cannot subscribe to `{}`: {e}", config.topic)))?;
    let source = format!("kafka:{}", config.topic);
    let out = io.outlets.get("out");
    let errors = io.outlets.get("errors");
    let mut lag_measured = std::time::Instant::now();
    // The next offset to read per partition, from the messages handed over.
    let mut next_offsets: std::collections::BTreeMap<i32, i64> = std::collections::BTreeMap::new();
    loop {
        if lag_measured.elapsed() >= Duration::from_secs(1) {
            lag_measured = std::time::Instant::now();
            tokio::task::block_in_place(|| record_lag(&consumer, &config.topic, &next_offsets, &io.telemetry));
        }
        let first = tokio::select! {
            biased;
            _ = io.stop_intake.cancelled() => break,
            _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
            message = consumer.recv() => message,
        };
        let mut messages = vec![first];
        let deadline = tokio::time::Instant::now() + io.linger;
        while messages.len() < io.batch_size {
            match tokio::time::timeout_at(deadline, consumer.recv()).await {
                Ok(m) => messages.push(m),
                Err(_) => break,
            }
        }
        let mut records = Batch::with_capacity(messages.len());
        let mut bad = Batch::new();
        let mut offsets: std::collections::BTreeMap<i32, i64> = std::collections::BTreeMap::new();
        for message in messages {
            let message = match message {
                Ok(m) => m,
                Err(e) => {
                    // librdkafka retries by itself (a broker away, say): say so, and go on.
                    tracing::warn!(streamlet = %io.name, topic = %config.topic, error = %e, "Kafka consumer error");
                    continue;
                }
            };
            let entry = offsets.entry(message.partition()).or_insert(message.offset());
            *entry = (*entry).max(message.offset());
            let payload = message.payload().unwrap_or_default();
            match text::parse_json_line(payload, message.offset().max(0) as u64) {
                Some(Item::Record(r)) => records.push(r),
                Some(Item::Malformed { line, reason, raw }) => {
                    let mut record = malformed_record(&io.name, &source, line, reason, raw);
                    if let Some(Value::Object(e)) = record.get_mut("_error") {
                        e.insert("partition".into(), message.partition().into());
                        e.insert("offset".into(), message.offset().into());
                    }
                    bad.push(record)
                }
                None => {}
            }
        }
        out.send(records).await?;
        errors.send(bad).await?;
        for (partition, offset) in offsets {
            next_offsets.insert(partition, offset + 1);
            if let Err(e) = consumer.store_offset(&config.topic, partition, offset + 1) {
                tracing::warn!(streamlet = %io.name, topic = %config.topic, partition, error = %e, "cannot store an offset");
            }
        }
    }
    if let Err(e) = consumer.commit_consumer_state(CommitMode::Sync) {
        tracing::debug!(streamlet = %io.name, error = %e, "nothing to commit on stop");
    }
    Ok(())
}

fn format_of(path: &Path) -> Format {
    match path.extension().and_then(|e| e.to_str()) {
        Some(ext) if ext.eq_ignore_ascii_case("csv") => Format::Csv,
        _ => Format::Jsonl,
    }
}

fn reader(text: &TextFormat, format: Format) -> TextReader {
    TextReader {
        format,
        columns: text.columns.clone(),
        delimiter: text.delimiter.as_deref().and_then(|d| d.bytes().next()).unwrap_or(b','),
        chunk: 0,
    }
}

/// The error record for input that is not a record: `_error` and the original bytes in `_raw`
/// (or `_raw_base64` when they are not UTF-8).
fn malformed_record(streamlet: &str, source: &str, line: u64, reason: String, raw: Vec<u8>) -> Record {
    let mut error = Map::new();
    error.insert("streamlet".into(), streamlet.into());
    error.insert("reason".into(), reason.into());
    error.insert("path".into(), "".into());
    error.insert("source".into(), source.into());
    error.insert("line".into(), line.into());
    let mut record = Record::new();
    record.insert("_error".into(), Value::Object(error));
    match String::from_utf8(raw) {
        Ok(text) => record.insert("_raw".into(), text.into()),
        Err(e) => record.insert(
            "_raw_base64".into(),
            base64::engine::general_purpose::STANDARD.encode(e.as_bytes()).into(),
        ),
    };
    record
}

async fn read_text(io: Io, mut reader: TextReader, input: text::Input, source: &str) -> Result<(), Stop> {
    reader.chunk = io.batch_size;
    let (tx, mut rx) = mpsc::channel(2);
    reader.spawn(input, tx).map_err(|source_err| StreamletError::Read {
        path: source.to_string(),
        source: source_err,
    })?;
    let out = io.outlets.get("out");
    let errors = io.outlets.get("errors");
    loop {
        let chunk = tokio::select! {
            biased;
            _ = io.stop_intake.cancelled() => break,
            chunk = rx.recv() => chunk,
        };
        let Some(chunk) = chunk else { break };
        let items = chunk.map_err(|e| StreamletError::Read {
            path: source.to_string(),
            source: e,
        })?;
        let mut records = Batch::with_capacity(items.len());
        let mut bad = Batch::new();
        for item in items {
            match item {
                Item::Record(r) => records.push(r),
                Item::Malformed { line, reason, raw } => {
                    bad.push(malformed_record(&io.name, source, line, reason, raw))
                }
            }
        }
        out.send(records).await?;
        errors.send(bad).await?;
    }
    Ok(())
}

/// Produces `count` records (or without end) at `rate` per second (or as fast as downstream takes them).
async fn generate(config: GeneratorConfig, io: Io) -> Result<(), Stop> {
    let mut generator =
        generator::ListingGenerator::new(config.seed, config.invalid_ratio).shifting_after(config.shift_after);
    let out = io.outlets.get("out");
    let started = Instant::now();
    let mut produced: u64 = 0;
    let limit = config.count.unwrap_or(u64::MAX);
    while produced < limit && !io.stop_intake.is_cancelled() {
        let mut n = (limit - produced).min(io.batch_size as u64);
        if let Some(rate) = config.rate {
            let due = (started.elapsed().as_secs_f64() * rate) as u64;
            if due <= produced {
                // Wait for the next record's time, but no longer than the linger.
                let next_at = started + Duration::from_secs_f64((produced + 1) as f64 / rate);
                let wait = next_at
                    .saturating_duration_since(Instant::now())
                    .min(io.linger.max(Duration::from_millis(1)));
                tokio::select! {
                    _ = io.stop_intake.cancelled() => break,
                    _ = tokio::time::sleep(wait) => continue,
                }
            }
            n = n.min(due - produced);
        }
        let batch: Batch = (0..n).map(|_| generator.next_record()).collect();
        produced += n;
        out.send(batch).await?;
    }
    Ok(())
}
