//! A real Kafka-API broker for the tests: tansu, started on a free loopback port, with its
//! topics in a SQLite file (a temporary folder of its own, or one the test names so that a
//! restarted broker finds them again). `scripts/setup-kafka.sh` installs it; without it the
//! Kafka tests fail, they do not skip.
//!
//! Not tansu's in-memory storage: tansu 0.6.0 keeps each produced batch there as one object
//! and answers a fetch from an offset inside a batch with the batches after it, so a consumer
//! resuming from a committed offset in the middle of a batch never sees the rest of that
//! batch (`a_pipeline_resuming_from_a_commit_inside_a_batch_gets_the_rest_of_it`, tests/delivery.rs). That lost a
//! record in the scale-out test whenever a process left with its last commit inside one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};
use serde_json::Value;

/// Where tansu keeps its topics, relative to the folder it runs in.
const STORAGE: &str = "sqlite://tansu.db";
/// tansu's in-memory storage: much faster under load, but a fetch that starts inside a stored
/// batch skips the rest of that batch (see `STORAGE`'s tests in tests/delivery.rs), so only for
/// a benchmark whose consumers read from the start and are never moved.
const MEMORY: &str = "memory://tansu/";
/// glibc's malloc settings of an in-memory broker (a benchmark's) unless
/// `SLUICE_BENCH_BROKER_TUNABLES` says otherwise (empty for glibc's own): freed memory kept for
/// reuse (sluice and the passthrough allocate from mimalloc, C libraries included:
/// `src/c_heap.rs`). With glibc's defaults tansu handed its fetch buffers back and had them
/// zeroed anew (`clear_page_erms` in tansu's threads, 9% of the machine's samples in one run),
/// and on this virtual machine a page handed back may cost 10–30 µs to touch again: the
/// broker's speed, every contender's bound, moved with the host's.
const MEMORY_TUNABLES: &str = "glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=33554432";

/// A running tansu broker, killed when dropped.
pub struct Broker {
    child: Option<Child>,
    storage: &'static str,
    pub address: String,
    /// The address the broker gives clients (its own unless something fronts it).
    advertised: String,
    /// Where the broker runs (a SQLite storage path is relative to it).
    dir: PathBuf,
    /// The folder of a broker's own storage, removed when it is dropped.
    _scratch: Option<tempfile::TempDir>,
}

/// The broker the setup script installed in `vendor-kafka/`.
fn tansu() -> PathBuf {
    let vendored = super::root().join("vendor-kafka/bin/tansu");
    assert!(
        vendored.exists(),
        "{} is missing: run scripts/setup-kafka.sh (make test does)",
        vendored.display()
    );
    vendored
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a free port")
        .local_addr()
        .expect("addr")
        .port()
}

impl Broker {
    /// A broker keeping its topics in memory (see [`MEMORY`]), for benchmarks.
    pub fn start_in_memory() -> Broker {
        let address = format!("127.0.0.1:{}", free_port());
        let scratch = tempfile::tempdir().expect("a folder for the broker");
        let dir = scratch.path().to_path_buf();
        let mut broker = Broker {
            child: None,
            storage: MEMORY,
            address: address.clone(),
            advertised: address,
            dir,
            _scratch: Some(scratch),
        };
        broker.restart();
        broker
    }

    /// A broker with its storage in a temporary folder of its own.
    pub fn start() -> Broker {
        let address = format!("127.0.0.1:{}", free_port());
        Broker::in_scratch(address.clone(), address)
    }

    /// A broker keeping its topics and offsets in a SQLite file in `dir`, so that they
    /// survive a restart.
    pub fn start_on_disk(dir: &Path) -> Broker {
        let address = format!("127.0.0.1:{}", free_port());
        Broker::launch(address.clone(), address, dir.to_path_buf(), None)
    }

    /// A broker telling clients to come to `advertised`: a front in between.
    pub fn start_behind(advertised: &str) -> Broker {
        Broker::in_scratch(format!("127.0.0.1:{}", free_port()), advertised.to_string())
    }

    fn in_scratch(address: String, advertised: String) -> Broker {
        let scratch = tempfile::tempdir().expect("a folder for the broker's storage");
        let dir = scratch.path().to_path_buf();
        Broker::launch(address, advertised, dir, Some(scratch))
    }

    fn launch(address: String, advertised: String, dir: PathBuf, scratch: Option<tempfile::TempDir>) -> Broker {
        let mut broker = Broker {
            child: None,
            storage: STORAGE,
            address,
            advertised,
            dir,
            _scratch: scratch,
        };
        broker.restart();
        broker
    }

    /// Starts the broker (again) on the same address and storage.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "the broker is running");
        let url = format!("tcp://{}", self.address);
        let advertised = format!("tcp://{}", self.advertised);
        let mut command = Command::new(tansu());
        if self.storage == MEMORY {
            let tunables = std::env::var("SLUICE_BENCH_BROKER_TUNABLES").unwrap_or_else(|_| MEMORY_TUNABLES.into());
            if !tunables.is_empty() {
                command.env("GLIBC_TUNABLES", tunables);
            }
        }
        let child = command
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &advertised,
                "--storage-engine",
                self.storage,
            ])
            .current_dir(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the tansu broker starts (scripts/setup-kafka.sh installs it)");
        self.child = Some(child);
        let started = Instant::now();
        while std::net::TcpStream::connect(&self.address).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the broker did not listen on {}",
                self.address
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the broker: clients see it gone.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn settings(&self) -> sluice::spec::KafkaSettings {
        sluice::spec::KafkaSettings {
            brokers: Some(self.address.clone()),
            options: Default::default(),
        }
    }

    /// Creates a topic with `partitions` partitions.
    pub fn create_topic(&self, topic: &str, partitions: i32) {
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        rt.block_on(sluice::kafka::ensure_topic(&self.settings(), topic, partitions, 1))
            .expect("topic created");
    }

    /// An idempotent producer (what a busy broker fails is retried without duplicates or
    /// reordering) that keeps the failures it could not retry for [`flush`] to report.
    pub fn producer(&self) -> TestProducer {
        rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &self.address)
            .set("linger.ms", "5")
            .set("enable.idempotence", "true")
            .create_with_context(Deliveries::default())
            .expect("producer")
    }

    /// A consumer in `group` that commits nothing by itself.
    pub fn consumer(&self, group: &str) -> BaseConsumer {
        rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &self.address)
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .create()
            .expect("consumer")
    }

    /// The records in `topic`, read from the beginning of each partition until `enough`
    /// (shown each record as it comes) says so, or `timeout` passes.
    pub fn read_topic(&self, topic: &str, timeout: Duration, mut enough: impl FnMut(&Value) -> bool) -> Vec<Value> {
        let consumer = self.consumer("sluice-tests-reader");
        // The topic may not be there yet: the pipeline creates it.
        let started = Instant::now();
        let partitions: Vec<i32> = loop {
            let found: Vec<i32> = consumer
                .fetch_metadata(Some(topic), Duration::from_secs(10))
                .map(|m| {
                    m.topics()
                        .iter()
                        .filter(|t| t.error().is_none())
                        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
                        .collect()
                })
                .unwrap_or_default();
            if !found.is_empty() || started.elapsed() > timeout {
                break found;
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        let mut list = TopicPartitionList::new();
        for p in partitions {
            list.add_partition_offset(topic, p, Offset::Beginning)
                .expect("partition");
        }
        consumer.assign(&list).expect("assign");
        let mut records = Vec::new();
        while started.elapsed() < timeout {
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
                let payload = m.payload().unwrap_or_default();
                let record: Value =
                    serde_json::from_slice(payload).unwrap_or_else(|e| panic!("a JSON record in {topic}: {e}"));
                let done = enough(&record);
                records.push(record);
                if done {
                    break;
                }
            }
        }
        records
    }

    /// The offsets `group` has committed on the partitions of `topic` (none: not listed).
    pub fn committed(&self, group: &str, topic: &str) -> BTreeMap<i32, i64> {
        let consumer = self.consumer(group);
        let mut list = TopicPartitionList::new();
        for partition in self.ends(topic).keys() {
            list.add_partition(topic, *partition);
        }
        let committed = consumer
            .committed_offsets(list, Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("the offsets {group} committed on {topic}: {e}"));
        committed
            .elements()
            .iter()
            .filter_map(|e| match e.offset() {
                Offset::Offset(o) => Some((e.partition(), o)),
                _ => None,
            })
            .collect()
    }

    /// Per partition of `topic`, the offset after its last message.
    pub fn ends(&self, topic: &str) -> BTreeMap<i32, i64> {
        let consumer = self.consumer("sluice-tests-ends");
        let timeout = Duration::from_secs(10);
        let metadata = consumer
            .fetch_metadata(Some(topic), timeout)
            .unwrap_or_else(|e| panic!("metadata of {topic}: {e}"));
        metadata
            .topics()
            .iter()
            .flat_map(|t| t.partitions())
            .map(|p| {
                let (_, high) = consumer
                    .fetch_watermarks(topic, p.id(), timeout)
                    .unwrap_or_else(|e| panic!("the end of {topic}/{}: {e}", p.id()));
                (p.id(), high)
            })
            .collect()
    }

    /// Where the records with these `id`s are in `topic` (every partition read to its end):
    /// `(id, partition, offset)`, for a failing test to say how far a record got.
    pub fn locate(&self, topic: &str, ids: &std::collections::BTreeSet<u64>) -> Vec<(u64, i32, i64)> {
        let consumer = self.consumer("sluice-tests-locator");
        let timeout = Duration::from_secs(10);
        let Ok(metadata) = consumer.fetch_metadata(Some(topic), timeout) else {
            return Vec::new();
        };
        let mut list = TopicPartitionList::new();
        let mut ends = BTreeMap::new();
        for p in metadata.topics().iter().flat_map(|t| t.partitions()) {
            if let Ok((_, high)) = consumer.fetch_watermarks(topic, p.id(), timeout) {
                if high > 0 {
                    ends.insert(p.id(), high);
                    list.add_partition_offset(topic, p.id(), Offset::Beginning)
                        .expect("partition");
                }
            }
        }
        consumer.assign(&list).expect("assign");
        let mut found = Vec::new();
        let started = Instant::now();
        while !ends.is_empty() && started.elapsed() < Duration::from_secs(60) {
            let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) else {
                continue;
            };
            let record: Value = serde_json::from_slice(m.payload().unwrap_or_default()).unwrap_or_default();
            if let Some(id) = record["id"].as_u64().filter(|id| ids.contains(id)) {
                found.push((id, m.partition(), m.offset()));
            }
            if ends.get(&m.partition()).is_some_and(|&end| m.offset() + 1 >= end) {
                ends.remove(&m.partition());
            }
        }
        found
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Keeps the messages the broker did not take, so a test never loses its own input unnoticed.
#[derive(Default)]
pub struct Deliveries {
    failed: std::sync::Mutex<Vec<String>>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            self.failed
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(e.to_string());
        }
    }
}

pub type TestProducer = BaseProducer<Deliveries>;

/// Waits until the broker has every message sent so far (long enough to ride out a broker
/// outage); panics if it refused any.
pub fn flush(producer: &TestProducer) {
    producer.flush(Duration::from_secs(120)).expect("flushed");
    let failed = producer.context().failed.lock().unwrap_or_else(|p| p.into_inner());
    assert!(
        failed.is_empty(),
        "the broker did not take {} messages: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
}

/// Sends `records` to `topic`, keyed by `id`, and waits until the broker has them all.
pub fn produce(producer: &TestProducer, topic: &str, records: &[Value]) {
    for record in records {
        let key = record["id"].to_string();
        let payload = record.to_string();
        let mut message = BaseRecord::to(topic).key(&key).payload(&payload);
        loop {
            match producer.send(message) {
                Ok(()) => break,
                Err((e, back)) => {
                    assert!(
                        matches!(
                            e.rdkafka_error_code(),
                            Some(rdkafka::types::RDKafkaErrorCode::QueueFull)
                        ),
                        "{e}"
                    );
                    producer.poll(Duration::from_millis(10));
                    message = back;
                }
            }
        }
    }
    flush(producer);
}

/// How often each id appears among `records`.
pub fn id_counts(records: &[Value]) -> BTreeMap<u64, usize> {
    let mut counts = BTreeMap::new();
    for r in records {
        *counts.entry(r["id"].as_u64().expect("an id")).or_default() += 1;
    }
    counts
}
