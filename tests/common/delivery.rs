//! Delivery through Kafka with real `sluice run` processes: the scoring pipeline they run, the
//! listings fed to it, the processes themselves (started, stopped, killed, their metrics
//! read), and what arrived, for the delivery tests and the join/leave/kill soak.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::broker::{id_counts, produce, Broker};
use super::root;

/// The topic the pipeline `name` reads listings from.
pub fn listings_topic(name: &str) -> String {
    format!("{name}.listings")
}

/// The topic the pipeline `name` writes scored listings to.
pub fn scored_topic(name: &str) -> String {
    format!("{name}.scored")
}

/// The Kafka edge between the validator and the scorer of the pipeline `name`.
pub fn edge_topic(name: &str) -> String {
    format!("{name}.check.valid")
}

/// The consumer groups of the pipeline `name` and the topic each reads: its listings source
/// and the Kafka edge into its scorer.
pub fn groups(name: &str) -> [(String, String); 2] {
    [
        (format!("{name}.listings"), listings_topic(name)),
        (format!("{name}.price"), edge_topic(name)),
    ]
}

/// The house-price scorer reading listings from `topic` (through a validator and, between
/// validator and scorer, a Kafka topic) and writing scored listings to its scored topic;
/// `options` are the pipeline's Kafka options (YAML flow mapping), `more` adds streamlets.
pub fn scoring_pipeline(name: &str, brokers: &str, topic: &str, options: &str, more: &str) -> String {
    format!(
        r#"
pipeline: {name}
defaults:
  batch_size: 100
  kafka: {{ brokers: "{brokers}", options: {options} }}
streamlets:
  listings:
    kind: ingress
    source: {{ type: kafka, topic: {topic}, partitions: 4 }}
  check:
    use: {check}
    inputs: [listings]
  price:
    use: {scorer}
    model: {{ name: house-price, folder: {models}, version: "2" }}
    inputs: [check.valid]
  publish:
    kind: egress
    inputs: [price]
    sink: {{ type: kafka, topic: {scored}, key: id, partitions: 4 }}
  rejected:
    kind: egress
    inputs: [check.invalid, listings.errors, price.errors]
    sink: {{ type: kafka, topic: {name}.rejected }}
{more}
edges:
  - {{ from: check.valid, to: price, via: {{ kafka: {{ partitions: 4 }} }} }}
"#,
        scored = scored_topic(name),
        check = root().join("streamlets/listing-check.yaml").display(),
        scorer = root().join("streamlets/house-price-gbm.yaml").display(),
        models = root().join("examples/house-prices/models").display(),
    )
}

/// Valid listings with ids 1..=n.
pub fn listings(n: u64) -> Vec<Value> {
    let mut generator = sluice::streamlets::ingress::generator::ListingGenerator::new(11, 0.0);
    (0..n).map(|_| Value::Object(generator.next_record())).collect()
}

/// Produces `records` to `topic` at about `per_second`, from a thread.
pub fn produce_at(broker: &Broker, topic: &str, records: Vec<Value>, per_second: usize) -> std::thread::JoinHandle<()> {
    let producer = broker.producer();
    let topic = topic.to_string();
    std::thread::spawn(move || {
        for chunk in records.chunks((per_second / 10).max(1)) {
            produce(&producer, &topic, chunk);
            std::thread::sleep(Duration::from_millis(100));
        }
    })
}

/// The listings topic of the pipeline `name` (4 partitions), the scoring pipeline (with Kafka
/// `options`) written into `dir`, and `n` listings being produced to the topic at 1,000/s:
/// the pipeline file and the producer.
pub fn stream_listings(
    broker: &Broker,
    dir: &Path,
    name: &str,
    options: &str,
    n: u64,
) -> (PathBuf, std::thread::JoinHandle<()>) {
    let topic = listings_topic(name);
    broker.create_topic(&topic, 4);
    let file = dir.join(format!("{name}.yaml"));
    std::fs::write(&file, scoring_pipeline(name, &broker.address, &topic, options, "")).expect("pipeline");
    (file, produce_at(broker, &topic, listings(n), 1000))
}

/// A `sluice run` process with its admin server on a free port (to read its metrics), its
/// log kept in `dir`.
pub struct Sluice {
    pub child: Child,
    admin: String,
    log: PathBuf,
}

impl Sluice {
    pub fn start(pipeline: &Path, dir: &Path, name: &str) -> Sluice {
        let admin = format!("127.0.0.1:{}", super::broker::free_port());
        let log = dir.join(format!("{name}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(["run", &pipeline.display().to_string(), "--admin", &admin])
            .current_dir(root())
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("sluice runs");
        Sluice { child, admin, log }
    }

    /// The value of the metric line starting with `name{` and containing every one of
    /// `labels` (0 until the admin server answers).
    fn metric(&self, name: &str, labels: &[&str]) -> u64 {
        let Ok(mut response) = ureq::get(&format!("http://{}/metrics", self.admin)).call() else {
            return 0;
        };
        let text = response.body_mut().read_to_string().unwrap_or_default();
        text.lines()
            .find(|l| l.starts_with(&format!("{name}{{")) && labels.iter().all(|label| l.contains(label)))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0) as u64
    }

    /// Whether the process has read every partition of both its groups to the end (librdkafka's
    /// lag, refreshed every second, is 0 on all 4 + 4 of them): a clean stop now leaves nothing
    /// unread behind its commits.
    pub fn caught_up(&self) -> bool {
        let Ok(mut response) = ureq::get(&format!("http://{}/metrics", self.admin)).call() else {
            return false;
        };
        let text = response.body_mut().read_to_string().unwrap_or_default();
        let lags: Vec<f64> = text
            .lines()
            .filter(|l| l.starts_with("sluice_kafka_consumer_lag{"))
            .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse().ok()))
            .collect();
        lags.len() == 8 && lags.iter().all(|lag| *lag == 0.0)
    }

    /// Waits (up to a minute) until [`Sluice::caught_up`]; panics with the log otherwise.
    pub fn wait_caught_up(&self) {
        super::wait_until(
            Duration::from_secs(60),
            || self.caught_up(),
            || format!("still behind on its partitions after a minute:\n{}", self.log_text()),
        );
    }

    /// Records the egress `publish` has taken in so far.
    pub fn published(&self) -> u64 {
        self.metric("sluice_records_in_total", &["streamlet=\"publish\""])
    }

    /// Records the streamlet `streamlet` sent on its outlet `port` so far.
    pub fn sent(&self, streamlet: &str, port: &str) -> u64 {
        self.metric(
            "sluice_records_out_total",
            &[&format!("streamlet=\"{streamlet}\""), &format!("outlet=\"{port}\"")],
        )
    }

    /// Waits until `publish` has taken in `at_least` records; panics, with the log, when the
    /// process stops or `timeout` passes first.
    pub fn wait_published(&mut self, at_least: u64, timeout: Duration) {
        let started = Instant::now();
        while self.published() < at_least {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("sluice stopped ({status}):\n{}", self.log_text());
            }
            assert!(
                started.elapsed() < timeout,
                "published {} of {at_least}:\n{}",
                self.published(),
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM: intake stops, what is in flight is written and committed, then it exits.
    /// Panics, with the log, unless it exits 0.
    pub fn terminate(mut self) -> String {
        let killed = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(killed.success());
        let status = self.child.wait().expect("exit");
        let log = self.log_text();
        assert!(status.success(), "sluice exited with {status}:\n{log}");
        log
    }

    /// SIGKILL: nothing gets to finish.
    pub fn kill(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaped");
    }
}

impl Drop for Sluice {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What reached the scored topic of a pipeline fed ids 1..=n.
pub struct Arrived {
    pub records: Vec<Value>,
    /// Ids that never arrived.
    pub missing: BTreeSet<u64>,
    /// Messages beyond the first of each id.
    pub duplicates: usize,
}

/// Reads the scored topic of `pipeline` until every id 1..=n is there, or `timeout`.
pub fn arrived(broker: &Broker, n: u64, pipeline: &str, timeout: Duration) -> Arrived {
    let mut seen = BTreeSet::new();
    let records = broker.read_topic(&scored_topic(pipeline), timeout, |record| {
        seen.insert(record["id"].as_u64());
        seen.len() as u64 >= n
    });
    let counts = id_counts(&records);
    Arrived {
        missing: (1..=n).filter(|id| !counts.contains_key(id)).collect(),
        duplicates: counts.values().map(|c| c - 1).sum(),
        records,
    }
}

/// Where the `missing` ids are in the listings topic and the Kafka edge of `pipeline`, as
/// `id@partition:offset`, for a report of how far each got.
pub fn whereabouts(broker: &Broker, pipeline: &str, missing: &BTreeSet<u64>) -> String {
    [listings_topic(pipeline), edge_topic(pipeline)]
        .iter()
        .map(|topic| {
            let found = broker.locate(topic, missing);
            let places: Vec<String> = found
                .iter()
                .take(30)
                .map(|(id, p, o)| format!("{id}@{p}:{o}"))
                .collect();
            format!("in {topic}: {} of them ({})", found.len(), places.join(" "))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Reads the scored topic until every id 1..=n is there; panics naming the missing ones
/// otherwise, after the `logs` of the processes that should have written them, with how far
/// each missing record got. Every record must carry version 2's prediction.
pub fn read_all_scored(broker: &Broker, n: u64, pipeline: &str, logs: &dyn Fn() -> String) -> Vec<Value> {
    let got = arrived(broker, n, pipeline, Duration::from_secs(120));
    if !got.missing.is_empty() {
        panic!(
            "{}\n{} of {n} ids never arrived, first {:?}\n{}",
            logs(),
            got.missing.len(),
            got.missing.iter().take(20).collect::<Vec<_>>(),
            whereabouts(broker, pipeline, &got.missing)
        );
    }
    assert_eq!(
        id_counts(&got.records).len() as u64,
        n,
        "ids that were never sent arrived"
    );
    for r in &got.records {
        assert!(r["predicted_price"].is_number(), "not scored: {r}");
        assert_eq!(r["_model"]["version"], "2", "{r}");
    }
    got.records
}

/// Per consumer group of `pipeline`, the partitions whose committed offset is not their end:
/// `(group, partition, committed, end)`. Empty when a restart would re-deliver nothing.
pub fn uncommitted(broker: &Broker, pipeline: &str) -> Vec<(String, i32, i64, i64)> {
    let mut behind = Vec::new();
    for (group, topic) in groups(pipeline) {
        let committed = broker.committed(&group, &topic);
        for (partition, end) in broker.ends(&topic) {
            let at = committed.get(&partition).copied().unwrap_or(0);
            if at != end {
                behind.push((group.clone(), partition, at, end));
            }
        }
    }
    behind
}

/// Per consumer group of `pipeline`, the committed offsets of its topic.
pub fn commits(broker: &Broker, pipeline: &str) -> Vec<BTreeMap<i32, i64>> {
    groups(pipeline)
        .iter()
        .map(|(group, topic)| broker.committed(group, topic))
        .collect()
}

/// Of the `missing` ids (fed to `pipeline`, never scored), those its consumer groups have
/// committed past: lost. The others still wait in a topic above their group's commit, and
/// the group's next consumer reads them (a group the broker is slow to give partitions to,
/// say): late, not lost.
pub fn committed_past(broker: &Broker, pipeline: &str, missing: &BTreeSet<u64>) -> BTreeSet<u64> {
    if missing.is_empty() {
        return BTreeSet::new();
    }
    let [(listings_group, listings), (edge_group, edge)] = groups(pipeline);
    let (listings_committed, edge_committed) = (
        broker.committed(&listings_group, &listings),
        broker.committed(&edge_group, &edge),
    );
    let waiting = |committed: &BTreeMap<i32, i64>, found: Vec<(u64, i32, i64)>| -> BTreeSet<u64> {
        found
            .into_iter()
            .filter(|(_, p, o)| *o >= committed.get(p).copied().unwrap_or(0))
            .map(|(id, _, _)| id)
            .collect()
    };
    let unread_listings = waiting(&listings_committed, broker.locate(&listings, missing));
    let unread_edge = waiting(&edge_committed, broker.locate(&edge, missing));
    missing
        .iter()
        .filter(|id| !unread_listings.contains(id) && !unread_edge.contains(id))
        .copied()
        .collect()
}
