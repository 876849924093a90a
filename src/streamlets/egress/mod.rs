//! The egress: writes each record as one JSON line to stdout or a file, as one message to a
//! Kafka topic, or only counts it (blackhole). A batch is done with (its source offsets may
//! be committed) once it is written: flushed to the file, or acknowledged by the broker.

pub mod config;

use std::path::Path;

use tokio::io::{AsyncWrite, AsyncWriteExt};

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;

use futures::StreamExt;

use super::io::{Acks, Envelope};
use super::{Batch, Io, Prepare, Stop, StreamletError};
use crate::kafka;
use config::{EgressConfig, KafkaSinkConfig, SinkConfig};

/// Serializes a batch as JSON lines into `buf` (cleared first).
pub fn encode_jsonl(batch: &Batch, buf: &mut Vec<u8>) {
    buf.clear();
    crate::flow::json::write_lines(batch, buf);
}

async fn write_all(mut io: Io, mut sink: impl AsyncWrite + Unpin, name: &str) -> Result<(), Stop> {
    let mut buf = Vec::with_capacity(64 * 1024);
    let fail = |source| StreamletError::Write {
        path: name.to_string(),
        source,
    };
    while let Some(batch) = io.inlet.recv().await {
        encode_jsonl(&batch, &mut buf);
        sink.write_all(&buf).await.map_err(fail)?;
        sink.flush().await.map_err(fail)?;
    }
    sink.shutdown().await.map_err(fail)?;
    Ok(())
}

async fn open(path: &Path, append: bool) -> Result<tokio::fs::File, StreamletError> {
    let open_error = |source| StreamletError::Open {
        path: path.display().to_string(),
        source,
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        tokio::fs::create_dir_all(parent).await.map_err(open_error)?;
    }
    tokio::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(append)
        .truncate(!append)
        .open(path)
        .await
        .map_err(open_error)
}

/// An egress with its sink open.
pub enum Ready {
    Stdout,
    File { file: tokio::fs::File, name: String },
    Blackhole,
    Kafka(Box<KafkaSink>),
}

/// A Kafka producer and what each message carries.
pub struct KafkaSink {
    producer: FutureProducer,
    config: KafkaSinkConfig,
    headers: OwnedHeaders,
}

/// Opens the sink. A file is truncated unless `append` says otherwise, or the egress replaces a
/// running one (a reload never throws away what was written). A Kafka sink checks its brokers
/// and creates its topic when missing.
pub async fn prepare(config: &EgressConfig, ctx: &Prepare) -> Result<Ready, StreamletError> {
    Ok(match &config.sink {
        SinkConfig::Stdout => Ready::Stdout,
        SinkConfig::File { path, append } => Ready::File {
            file: open(path, *append || ctx.reloading).await?,
            name: path.display().to_string(),
        },
        SinkConfig::Blackhole => Ready::Blackhole,
        SinkConfig::Kafka(k) => {
            let settings = ctx.kafka.merged(&k.settings);
            kafka::check_reachable(&settings).await?;
            kafka::ensure_topic(&settings, &k.topic, k.partitions, k.replication).await?;
            let mut client = kafka::client_config(&settings);
            client.set("enable.idempotence", "true").set("linger.ms", "5");
            let producer: FutureProducer = client.create().map_err(|e| kafka::KafkaError::Client {
                what: format!("Kafka producer for `{}`", k.topic),
                reason: e.to_string(),
            })?;
            let headers = OwnedHeaders::new()
                .insert(Header {
                    key: "sluice-pipeline",
                    value: Some(ctx.pipeline.as_str()),
                })
                .insert(Header {
                    key: "sluice-streamlet",
                    value: Some(ctx.name.as_str()),
                });
            Ready::Kafka(Box::new(KafkaSink {
                producer,
                config: k.clone(),
                headers,
            }))
        }
    })
}

/// The message key of a record: the key field's text.
fn message_key(column: Option<&crate::flow::Column>, row: usize) -> Option<String> {
    use crate::flow::Value;
    let column = column?;
    match column.get(row) {
        Value::Str(s) => Some(s.to_string()),
        Value::Absent | Value::Null => None,
        other => {
            let mut text = String::new();
            crate::flow::json::write_value(other, &mut text);
            Some(text)
        }
    }
}

/// Batches a Kafka sink has sent and not yet seen acknowledged by the broker.
const BATCHES_IN_FLIGHT: usize = 8;

/// Produces every record of every batch. Up to [`BATCHES_IN_FLIGHT`] batches wait for the
/// broker's acknowledgement at once; a batch is done (its source offsets may be committed)
/// once every one of its messages is acknowledged. The producer is idempotent: its retries
/// never duplicate, and a partition keeps the order records were sent in.
async fn produce(sink: KafkaSink, mut io: Io) -> Result<(), Stop> {
    let KafkaSink {
        producer,
        config,
        headers,
    } = sink;
    let topic = config.topic.clone();
    let mut in_flight = futures::stream::FuturesOrdered::new();
    let mut input_open = true;
    while input_open || !in_flight.is_empty() {
        tokio::select! {
            biased;
            Some((delivered, acks)) = in_flight.next(), if !in_flight.is_empty() => {
                let delivered: Result<(), String> = delivered;
                delivered.map_err(|e| kafka::KafkaError::Client {
                    what: format!("Kafka topic `{topic}`"),
                    reason: e.to_string(),
                })?;
                Acks::settle(acks);
            }
            envelope = io.inlet.recv_acked(), if input_open && in_flight.len() < BATCHES_IN_FLIGHT => {
                let Some(Envelope { records, acks }) = envelope else {
                    input_open = false;
                    continue;
                };
                let key = config.key.as_deref().and_then(|k| records.column(k));
                let messages: Vec<(Option<String>, Vec<u8>)> = crate::flow::json::record_texts(&records)
                    .into_iter()
                    .enumerate()
                    .map(|(i, payload)| (message_key(key, i), payload))
                    .collect();
                let (producer, headers, topic) = (producer.clone(), headers.clone(), topic.clone());
                in_flight.push_back(async move {
                    let sends = messages.iter().map(|(key, payload)| {
                        let mut record = FutureRecord::to(&topic).payload(payload).headers(headers.clone());
                        if let Some(k) = key {
                            record = record.key(k);
                        }
                        producer.send(record, Timeout::Never)
                    });
                    let delivered = futures::future::join_all(sends)
                        .await
                        .into_iter()
                        .try_for_each(|d| d.map(|_| ()).map_err(|(e, _)| e.to_string()));
                    (delivered, acks)
                });
            }
        }
    }
    Ok(())
}

pub async fn run(ready: Ready, mut io: Io) -> Result<(), Stop> {
    match ready {
        Ready::Stdout => write_all(io, tokio::io::stdout(), "stdout").await,
        Ready::File { file, name } => write_all(io, file, &name).await,
        Ready::Blackhole => {
            while io.inlet.recv().await.is_some() {}
            Ok(())
        }
        Ready::Kafka(sink) => produce(*sink, io).await,
    }
}
