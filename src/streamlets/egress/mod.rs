//! The egress: writes each record as one JSON line to stdout or a file, as one message to a
//! Kafka topic, or only counts it (blackhole). A batch is done with (its source offsets may
//! be committed) once it is written: flushed to the file, or acknowledged by the broker.

pub mod config;
pub mod dataset;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::oneshot;

use rdkafka::client::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, ProducerContext, ThreadedProducer};

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
    Dataset(Box<dataset::Dataset>),
}

/// The broker's acknowledgements of one batch's messages, counted as their delivery reports
/// arrive: when the last is in, the batch is done (or failed, with the first failure).
pub struct BatchDelivery {
    remaining: AtomicUsize,
    failure: Mutex<Option<String>>,
    done: Mutex<Option<oneshot::Sender<Result<(), String>>>>,
}

impl BatchDelivery {
    fn new(messages: usize) -> (Arc<BatchDelivery>, oneshot::Receiver<Result<(), String>>) {
        let (tx, rx) = oneshot::channel();
        let delivery = BatchDelivery {
            remaining: AtomicUsize::new(messages),
            failure: Mutex::new(None),
            done: Mutex::new(Some(tx)),
        };
        (Arc::new(delivery), rx)
    }

    fn report(&self, outcome: Result<(), String>) {
        if let Err(reason) = outcome {
            self.failure
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get_or_insert(reason);
        }
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            let failure = self.failure.lock().unwrap_or_else(|p| p.into_inner()).take();
            if let Some(done) = self.done.lock().unwrap_or_else(|p| p.into_inner()).take() {
                let _ = done.send(failure.map_or(Ok(()), Err));
            }
        }
    }
}

/// Hands each delivery report to its batch: one counter per batch, no future per message.
pub struct Deliveries;

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = Arc<BatchDelivery>;

    fn delivery(&self, result: &DeliveryResult<'_>, batch: Arc<BatchDelivery>) {
        batch.report(result.as_ref().map(|_| ()).map_err(|(e, _)| e.to_string()));
    }
}

/// A Kafka producer and what each message carries.
pub struct KafkaSink {
    producer: ThreadedProducer<Deliveries>,
    config: KafkaSinkConfig,
    /// What each message carries in its headers, if anything.
    headers: Option<OwnedHeaders>,
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
        SinkConfig::Dataset(d) => Ready::Dataset(Box::new(dataset::Dataset::open(d).map_err(|source| {
            StreamletError::Open {
                path: d.path.display().to_string(),
                source,
            }
        })?)),
        SinkConfig::Kafka(k) => {
            let settings = ctx.kafka.merged(&k.settings);
            kafka::check_reachable(&settings).await?;
            kafka::ensure_topic(&settings, &k.topic, k.partitions, k.replication).await?;
            let mut client = kafka::client_config(&settings);
            client.set("enable.idempotence", "true").set("linger.ms", "5");
            let producer = client
                .create_with_context(Deliveries)
                .map_err(|e| kafka::KafkaError::Client {
                    what: format!("Kafka producer for `{}`", k.topic),
                    reason: e.to_string(),
                })?;
            let headers = k.lineage_headers.then(|| {
                OwnedHeaders::new()
                    .insert(Header {
                        key: "sluice-pipeline",
                        value: Some(ctx.pipeline.as_str()),
                    })
                    .insert(Header {
                        key: "sluice-streamlet",
                        value: Some(ctx.name.as_str()),
                    })
            });
            Ready::Kafka(Box::new(KafkaSink {
                producer,
                config: k.clone(),
                headers,
            }))
        }
    })
}

/// The message key of a record, the key field's text, written into `key`; `false` when the
/// record has none.
fn message_key(column: Option<&crate::flow::Column>, row: usize, key: &mut String) -> bool {
    use crate::flow::Value;
    key.clear();
    let Some(column) = column else { return false };
    match column.get(row) {
        Value::Str(s) => key.push_str(s),
        Value::Absent | Value::Null => return false,
        other => crate::flow::json::write_value(other, key),
    }
    true
}

/// Records a Kafka sink has sent and not yet seen acknowledged by the broker, at most (a batch
/// is sent whole: one more batch goes while fewer are in flight). Counted in records, not
/// batches: the window must hold what arrives while the broker answers (150,000 records/s
/// for 100 ms, say), whether batches are full or hold what one small fetch brought.
const RECORDS_IN_FLIGHT: usize = 16_384;
/// Batches in flight there may always be, however large (`batch_size` goes up to 65,536).
const BATCHES_IN_FLIGHT: usize = 8;

/// Produces every record of every batch. Up to [`RECORDS_IN_FLIGHT`] records (or
/// [`BATCHES_IN_FLIGHT`] batches, whichever is more) wait for the broker's acknowledgement at
/// once; a batch is done (its source offsets may be committed) once every one of its messages
/// is acknowledged. The producer is idempotent: its retries never duplicate, and a partition
/// keeps the order records were sent in.
async fn produce(sink: KafkaSink, mut io: Io) -> Result<(), Stop> {
    let KafkaSink {
        producer,
        config,
        headers,
    } = sink;
    let topic = config.topic.clone();
    let failed = |reason: String| kafka::KafkaError::Client {
        what: format!("Kafka topic `{topic}`"),
        reason,
    };
    let mut in_flight = futures::stream::FuturesOrdered::new();
    let mut records_in_flight = 0;
    let mut input_open = true;
    let mut key = String::new();
    let mut texts = crate::flow::json::RecordTexts::default();
    while input_open || !in_flight.is_empty() {
        tokio::select! {
            biased;
            Some((delivered, acks, count)) = in_flight.next(), if !in_flight.is_empty() => {
                let delivered: Result<(), String> = delivered;
                delivered.map_err(failed)?;
                Acks::settle(acks);
                records_in_flight -= count;
            }
            envelope = io.inlet.recv_acked(),
                if input_open && (records_in_flight < RECORDS_IN_FLIGHT || in_flight.len() < BATCHES_IN_FLIGHT) => {
                let Some(Envelope { records, acks }) = envelope else {
                    input_open = false;
                    continue;
                };
                if records.is_empty() {
                    Acks::settle(acks);
                    continue;
                }
                let keys = config.key.as_deref().and_then(|k| records.column(k));
                texts.fill(&records);
                let (delivery, done) = BatchDelivery::new(texts.len());
                for i in 0..texts.len() {
                    let has_key = message_key(keys, i, &mut key);
                    let mut record = BaseRecord::with_opaque_to(&topic, delivery.clone()).payload(texts.get(i));
                    if let Some(headers) = &headers {
                        record = record.headers(headers.clone());
                    }
                    if has_key {
                        record = record.key(key.as_str());
                    }
                    // A full queue empties as the broker acknowledges: wait, then again.
                    while let Err((e, unsent)) = producer.send(record) {
                        if !matches!(e, KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull)) {
                            return Err(failed(e.to_string()).into());
                        }
                        record = unsent;
                        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                    }
                }
                let count = texts.len();
                records_in_flight += count;
                in_flight.push_back(async move {
                    let delivered = done
                        .await
                        .unwrap_or_else(|_| Err("the producer stopped before the broker answered".into()));
                    (delivered, acks, count)
                });
            }
        }
    }
    Ok(())
}

/// Appends each batch to the dataset; the shard in progress is completed when the input ends.
async fn write_dataset(mut dataset: dataset::Dataset, mut io: Io) -> Result<(), Stop> {
    let mut buf = Vec::with_capacity(64 * 1024);
    let name = dataset.manifest_path();
    let fail = |source| StreamletError::Write {
        path: name.clone(),
        source,
    };
    while let Some(batch) = io.inlet.recv().await {
        encode_jsonl(&batch, &mut buf);
        let places = dataset.places(&batch);
        let lines = std::mem::take(&mut buf);
        let (d, lines, written) = tokio::task::spawn_blocking(move || {
            let written = dataset.append_from(&lines, &places, std::time::SystemTime::now());
            (dataset, lines, written)
        })
        .await
        .map_err(|e| StreamletError::Internal(e.to_string()))?;
        dataset = d;
        buf = lines;
        written.map_err(fail)?;
    }
    tokio::task::spawn_blocking(move || dataset.close())
        .await
        .map_err(|e| StreamletError::Internal(e.to_string()))?
        .map_err(fail)?;
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
        Ready::Dataset(dataset) => write_dataset(*dataset, io).await,
    }
}

#[cfg(test)]
mod delivery_tests {
    use super::BatchDelivery;

    #[test]
    fn a_batch_is_done_when_its_last_message_is_acknowledged() {
        let (batch, mut done) = BatchDelivery::new(3);
        batch.report(Ok(()));
        batch.report(Ok(()));
        assert!(done.try_recv().is_err(), "not done with one message unacknowledged");
        batch.report(Ok(()));
        assert_eq!(done.try_recv().expect("done"), Ok(()));
    }

    #[test]
    fn a_batch_with_a_failed_message_fails_with_the_first_failure() {
        let (batch, done) = BatchDelivery::new(3);
        batch.report(Ok(()));
        batch.report(Err("broker down".into()));
        batch.report(Err("later".into()));
        assert_eq!(done.blocking_recv().expect("done"), Err("broker down".to_string()));
    }
}
