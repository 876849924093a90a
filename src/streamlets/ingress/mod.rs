//! The ingress: brings records in from a file, stdin, a generator or a Kafka topic. Outlets:
//! `out` for records, `errors` for input that is not a record (with its line number, or its
//! partition and offset, and its original content).

pub mod config;

pub mod generator;
pub mod kafka_source;
pub mod text;

use crate::streamlets::kind::SourcePort;
use std::io::BufReader;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Map, Value};
use tokio::sync::mpsc;

use super::{Batch, Io, Prepare, Stop, StreamletError};
use crate::formats::Format;
use crate::kafka;
use crate::kafka::KafkaSettings;
use config::{GeneratorConfig, IngressConfig, SourceConfig, TextFormat};
use text::{Malformed, TextReader};

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
        (
            SourceConfig::File {
                path,
                text,
                rate,
                start_after,
            },
            Some(file),
        ) => {
            let format = text.format.unwrap_or_else(|| Format::of_path(&path));
            let input = BufReader::with_capacity(256 * 1024, Box::new(file) as Box<dyn std::io::Read + Send>);
            if !wait_to_start(start_after, &io).await {
                return Ok(());
            }
            let pace = rate.filter(|r| *r > 0.0).map(Pace::new);
            read_text(io, reader(&text, format), input, &path.display().to_string(), pace).await
        }
        (SourceConfig::File { path, .. }, None) => {
            Err(StreamletError::Internal(format!("{} was not opened before the ingress ran", path.display())).into())
        }
        (SourceConfig::Stdin { text }, _) => {
            let format = text.format.unwrap_or(Format::Jsonl);
            let input = BufReader::new(Box::new(std::io::stdin()) as Box<dyn std::io::Read + Send>);
            read_text(io, reader(&text, format), input, "stdin", None).await
        }
        (SourceConfig::Generator(g), _) => generate(g, io).await,
        (SourceConfig::Kafka(k), _) => match kafka {
            Some((settings, group)) => kafka_source::consume(k, settings, group, io).await,
            None => Err(StreamletError::Internal("the Kafka source was not prepared".into()).into()),
        },
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
pub(crate) fn malformed_record(
    streamlet: &str,
    source: &str,
    line: u64,
    reason: String,
    raw: Vec<u8>,
) -> Map<String, Value> {
    let mut error = Map::new();
    error.insert("streamlet".into(), streamlet.into());
    error.insert("reason".into(), reason.into());
    error.insert("path".into(), "".into());
    error.insert("source".into(), source.into());
    error.insert("line".into(), line.into());
    let mut record = Map::new();
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

/// A steady rate of records: when each next record is due.
struct Pace {
    rate: f64,
    started: Instant,
    sent: u64,
}

impl Pace {
    fn new(rate: f64) -> Pace {
        Pace {
            rate,
            started: Instant::now(),
            sent: 0,
        }
    }

    /// How many records are due now (at least one, once its time has come), waiting for the
    /// next one's time when none is.
    async fn due(&mut self, most: usize) -> usize {
        let next_at = self.started + Duration::from_secs_f64(self.sent as f64 / self.rate);
        tokio::time::sleep_until(next_at.into()).await;
        let due = (self.started.elapsed().as_secs_f64() * self.rate) as u64 + 1;
        let n = (due.saturating_sub(self.sent) as usize).clamp(1, most.max(1));
        self.sent += n as u64;
        n
    }
}

async fn read_text(
    io: Io,
    mut reader: TextReader,
    input: text::Input,
    source: &str,
    mut pace: Option<Pace>,
) -> Result<(), Stop> {
    reader.chunk = io.batch_size;
    let (tx, mut rx) = mpsc::channel(2);
    reader.spawn(input, tx).map_err(|source_err| StreamletError::Read {
        path: source.to_string(),
        source: source_err,
    })?;
    let out = io.outlets.get(SourcePort::Out)?;
    let errors = io.outlets.get(SourcePort::Errors)?;
    loop {
        let chunk = tokio::select! {
            biased;
            _ = io.stop_intake.cancelled() => break,
            chunk = rx.recv() => chunk,
        };
        let Some(chunk) = chunk else { break };
        let parsed = chunk.map_err(|e| StreamletError::Read {
            path: source.to_string(),
            source: e,
        })?;
        let bad: Vec<_> = parsed
            .malformed
            .into_iter()
            .map(|Malformed { line, reason, raw }| malformed_record(&io.name, source, line, reason, raw))
            .collect();
        match &mut pace {
            None => out.send(parsed.records).await?,
            Some(pace) => {
                // The chunk goes out a slice at a time, each when it is due.
                let mut records = parsed.records;
                while !records.is_empty() {
                    let n = tokio::select! {
                        biased;
                        _ = io.stop_intake.cancelled() => return Ok(()),
                        n = pace.due(records.len()) => n,
                    };
                    let rest = records.split_off(n.min(records.len()));
                    out.send(records).await?;
                    records = rest;
                }
            }
        }
        errors.send(Batch::from_records(&bad)).await?;
    }
    Ok(())
}

/// Produces `count` records (or without end) at `rate` per second (or as fast as downstream takes them).
/// Waits `start_after` (if any) before a source's first record: false when the pipeline
/// stops meanwhile.
async fn wait_to_start(start_after: Option<Duration>, io: &Io) -> bool {
    let Some(wait) = start_after else { return true };
    tokio::select! {
        _ = io.stop_intake.cancelled() => false,
        _ = tokio::time::sleep(wait) => true,
    }
}

async fn generate(config: GeneratorConfig, io: Io) -> Result<(), Stop> {
    if !wait_to_start(config.start_after, &io).await {
        return Ok(());
    }
    let mut generator =
        generator::ListingGenerator::new(config.seed, config.invalid_ratio).shifting_after(config.shift_after);
    let out = io.outlets.get(SourcePort::Out)?;
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
        let batch = generator.next_batch(n as usize);
        produced += n;
        out.send(batch).await?;
    }
    Ok(())
}
