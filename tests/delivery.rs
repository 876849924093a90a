//! At-least-once delivery through Kafka, with a real broker and real `sluice run` processes:
//! every record arrives once in a clean run, and none is lost when a process is killed, when
//! a second process joins the group and the first one leaves, or when the broker goes away.

mod common;
use common::broker::{id_counts, produce, Broker};
use common::root;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The house-price scorer reading listings from `topic` (through a validator and, between
/// validator and scorer, a Kafka topic) and writing scored listings to the topic `scored`;
/// `options` are the pipeline's Kafka options (YAML flow mapping), `more` adds streamlets.
fn scoring_pipeline(name: &str, brokers: &str, topic: &str, options: &str, more: &str) -> String {
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
    sink: {{ type: kafka, topic: scored, key: id, partitions: 4 }}
  rejected:
    kind: egress
    inputs: [check.invalid, listings.errors, price.errors]
    sink: {{ type: kafka, topic: rejected }}
{more}
edges:
  - {{ from: check.valid, to: price, via: {{ kafka: {{ partitions: 4 }} }} }}
"#,
        check = root().join("streamlets/listing-check.yaml").display(),
        scorer = root().join("streamlets/house-price-gbm.yaml").display(),
        models = root().join("examples/house-prices/models").display(),
    )
}

/// Taken by each test for its whole run: a test's broker and `sluice` processes keep both
/// cores of a small machine busy (tansu on SQLite alone takes one), and side by side with
/// another test's the broker answers heartbeats so late that the group rebalances over and
/// over.
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());
    TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Valid listings with ids 1..=n.
fn listings(n: u64) -> Vec<Value> {
    let mut generator = sluice::streamlets::ingress::generator::ListingGenerator::new(11, 0.0);
    (0..n).map(|_| Value::Object(generator.next_record())).collect()
}

/// Produces `records` to `topic` at about `per_second`, from a thread.
fn produce_at(broker: &Broker, topic: &str, records: Vec<Value>, per_second: usize) -> std::thread::JoinHandle<()> {
    let producer = broker.producer();
    let topic = topic.to_string();
    std::thread::spawn(move || {
        for chunk in records.chunks(per_second / 10) {
            produce(&producer, &topic, chunk);
            std::thread::sleep(Duration::from_millis(100));
        }
    })
}

/// A `sluice run` process with its admin server on a free port (to read its metrics), its
/// log kept in `dir`.
struct Sluice {
    child: Child,
    admin: String,
    log: std::path::PathBuf,
}

impl Sluice {
    fn start(pipeline: &Path, dir: &Path, name: &str) -> Sluice {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("port")
            .local_addr()
            .expect("addr")
            .port();
        let admin = format!("127.0.0.1:{port}");
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

    /// Records the egress `publish` has taken in so far (0 until the admin server answers).
    fn published(&self) -> u64 {
        let Ok(mut response) = ureq::get(&format!("http://{}/metrics", self.admin)).call() else {
            return 0;
        };
        let text = response.body_mut().read_to_string().unwrap_or_default();
        text.lines()
            .find(|l| l.starts_with("sluice_records_in_total{") && l.contains("streamlet=\"publish\""))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0) as u64
    }

    fn wait_published(&mut self, at_least: u64, timeout: Duration) {
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

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM: intake stops, what is in flight is written and committed, then it exits.
    fn terminate(mut self) -> String {
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
    fn kill(mut self) {
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

/// Reads `scored` until every id 1..=n is there; panics naming the missing ones otherwise,
/// after the `logs` of the processes that should have written them, with how far each
/// missing record got (its partition and offset in `listings` and `<pipeline>.check.valid`).
fn read_all_scored(broker: &Broker, n: u64, pipeline: &str, logs: &dyn Fn() -> String) -> Vec<Value> {
    let mut seen = std::collections::HashSet::new();
    let scored = broker.read_topic("scored", Duration::from_secs(120), |record| {
        seen.insert(record["id"].as_u64());
        seen.len() as u64 >= n
    });
    let counts = id_counts(&scored);
    let missing: std::collections::BTreeSet<u64> = (1..=n).filter(|id| !counts.contains_key(id)).collect();
    if !missing.is_empty() {
        let between = format!("{pipeline}.check.valid");
        let whereabouts: Vec<String> = ["listings", between.as_str()]
            .iter()
            .map(|topic| {
                let found = broker.locate(topic, &missing);
                let places: Vec<String> = found
                    .iter()
                    .take(30)
                    .map(|(id, p, o)| format!("{id}@{p}:{o}"))
                    .collect();
                format!("in {topic}: {} of them ({})", found.len(), places.join(" "))
            })
            .collect();
        panic!(
            "{}\n{} of {n} ids never arrived, first {:?}\n{}",
            logs(),
            missing.len(),
            missing.iter().take(20).collect::<Vec<_>>(),
            whereabouts.join("\n")
        );
    }
    assert_eq!(counts.len() as u64, n, "ids that were never sent arrived");
    for r in &scored {
        assert!(r["predicted_price"].is_number(), "not scored: {r}");
        assert_eq!(r["_model"]["version"], "2", "{r}");
    }
    scored
}

fn duplicates(records: &[Value]) -> usize {
    id_counts(records).values().map(|c| c - 1).sum()
}

/// Says how many records came more than once (at-least-once allows it; it is worth knowing).
fn report(what: &str, n: u64, scored: &[Value]) {
    println!(
        "{what}: {n} listings, {} scored messages, {} duplicates",
        scored.len(),
        duplicates(scored)
    );
}

/// The topic `listings` (4 partitions), the scoring pipeline `name` (with Kafka `options`)
/// written into `dir`, and `n` listings being produced to the topic at 1,000/s: the
/// pipeline file and the producer.
fn stream_listings(
    broker: &Broker,
    dir: &Path,
    name: &str,
    options: &str,
    n: u64,
) -> (std::path::PathBuf, std::thread::JoinHandle<()>) {
    broker.create_topic("listings", 4);
    let file = dir.join("p.yaml");
    std::fs::write(&file, scoring_pipeline(name, &broker.address, "listings", options, "")).expect("pipeline");
    (file, produce_at(broker, "listings", listings(n), 1000))
}

#[test]
fn file_to_topic_to_validator_to_topic_to_scorer_to_topic_each_once_with_its_prediction() {
    let _turn = one_at_a_time();
    let broker = Broker::start();
    let dir = tempfile::tempdir().expect("dir");
    // The listings Python scored go from a file into a topic, and through the scoring pipeline.
    let load = format!(
        r#"
  load:
    kind: ingress
    source: {{ type: file, path: {input} }}
  into-topic:
    kind: egress
    inputs: [load]
    sink: {{ type: kafka, topic: listings, key: id, partitions: 4 }}"#,
        input = root()
            .join("examples/house-prices/expected-predictions.jsonl")
            .display(),
    );
    let yaml = scoring_pipeline("end-to-end", &broker.address, "listings", "{}", &load);
    let file = dir.path().join("p.yaml");
    std::fs::write(&file, &yaml).expect("pipeline");
    let run = common::Running::start(&file);
    let scored = read_all_scored(&broker, 200, "end-to-end", &String::new);
    run.finish();
    assert_eq!(scored.len(), 200, "each record once");
    for r in &scored {
        let expected = r["expected"]["2"].as_f64().expect("expected prediction");
        let got = r["predicted_price"].as_f64().expect("a prediction");
        assert!(
            (got - expected).abs() <= 1e-4 * expected.abs().max(1.0),
            "id {}: {got} vs {expected}",
            r["id"]
        );
    }
}

#[test]
fn a_process_killed_mid_stream_loses_nothing_when_it_is_restarted() {
    let _turn = one_at_a_time();
    let broker = Broker::start();
    let dir = tempfile::tempdir().expect("dir");
    let n = 8000;
    // The partitions of a killed process go to the others once its session expires: after
    // 6 s here (librdkafka's default: 45 s).
    let (file, producing) = stream_listings(&broker, dir.path(), "crash", "{ session.timeout.ms: 6000 }", n);
    let mut first = Sluice::start(&file, dir.path(), "first");
    first.wait_published(1500, Duration::from_secs(120));
    first.kill();
    // Restarted once the broker has noticed the killed member gone (its session timed out):
    // tansu, unlike Kafka, leaves a newcomer without partitions when it joins before that.
    std::thread::sleep(Duration::from_secs(8));
    let second = Sluice::start(&file, dir.path(), "second");
    producing.join().expect("produced");
    let scored = read_all_scored(&broker, n, "crash", &|| second.log_text());
    second.terminate();
    report("kill -9 mid-stream", n, &scored);
}

#[test]
fn two_processes_share_the_partitions_and_lose_nothing_when_one_leaves() {
    let _turn = one_at_a_time();
    let broker = Broker::start();
    let dir = tempfile::tempdir().expect("dir");
    let n = 12000;
    let (file, producing) = stream_listings(&broker, dir.path(), "scale-out", "{}", n);
    let mut first = Sluice::start(&file, dir.path(), "first");
    first.wait_published(500, Duration::from_secs(120));
    let mut second = Sluice::start(&file, dir.path(), "second");
    // The second process gets partitions of its own; the first keeps some.
    second.wait_published(500, Duration::from_secs(120));
    let before = first.published();
    first.wait_published(before + 200, Duration::from_secs(60));
    let first_log = first.terminate();
    assert!(first_log.contains("partitions revoked"), "{first_log}");
    producing.join().expect("produced");
    let scored = read_all_scored(&broker, n, "scale-out", &|| {
        format!("{first_log}\n{}", second.log_text())
    });
    let second_log = second.terminate();
    assert!(second_log.contains("partitions assigned"), "{second_log}");
    report("two processes, one leaving", n, &scored);
}

#[test]
fn the_pipeline_rides_out_a_broker_outage_and_loses_nothing() {
    let _turn = one_at_a_time();
    let dir = tempfile::tempdir().expect("dir");
    let mut broker = Broker::start_on_disk(dir.path());
    let n = 6000;
    let (file, producing) = stream_listings(&broker, dir.path(), "outage", "{}", n);
    let mut sluice = Sluice::start(&file, dir.path(), "sluice");
    sluice.wait_published(1000, Duration::from_secs(120));
    // The broker goes away for several seconds, mid-stream, and comes back.
    broker.stop();
    std::thread::sleep(Duration::from_secs(6));
    assert!(
        sluice.child.try_wait().expect("status").is_none(),
        "sluice stopped during the outage:\n{}",
        sluice.log_text()
    );
    broker.restart();
    producing.join().expect("produced");
    let scored = read_all_scored(&broker, n, "outage", &|| sluice.log_text());
    let log = sluice.terminate();
    report("broker away 6 s", n, &scored);
    println!(
        "  {} warnings logged meanwhile",
        log.lines().filter(|l| l.contains(" WARN ")).count()
    );
}
