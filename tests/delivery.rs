//! At-least-once delivery through Kafka, with a real broker and real `sluice run` processes:
//! every record arrives once in a clean run, and none is lost when a process is killed, when
//! a second process joins the group and the first one leaves, or when the broker goes away;
//! what is committed is what was written (a clean stop leaves nothing to re-deliver, a
//! restart after `kill -9` re-delivers exactly what lies past the last commit).

mod common;
use common::broker::{Broker, Deliveries, TestProducer};
use common::delivery::{
    commits, edge_topic, listings, listings_topic, read_all_scored, scoring_pipeline, stream_listings, uncommitted,
    Sluice,
};
use common::{read_jsonl, root, wait_until};

use std::time::Duration;

use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::producer::BaseRecord;
use rdkafka::{Offset, TopicPartitionList};
use serde_json::Value;

/// Taken by each test for its whole run: a test's broker and `sluice` processes keep both
/// cores of a small machine busy (tansu on SQLite alone takes one), and side by side with
/// another test's the broker answers heartbeats so late that the group rebalances over and
/// over.
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());
    TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Says how many records came more than once (at-least-once allows it; it is worth knowing).
fn report(what: &str, n: u64, scored: &[Value]) {
    let counts = common::broker::id_counts(scored);
    let duplicates: usize = counts.values().map(|c| c - 1).sum();
    println!(
        "{what}: {n} listings, {} scored messages, {duplicates} duplicates",
        scored.len()
    );
}

/// After a clean stop every group of `pipeline` has committed the end of every partition it
/// reads: a restart would re-deliver nothing.
fn assert_all_committed(broker: &Broker, pipeline: &str) {
    let behind = uncommitted(broker, pipeline);
    assert!(
        behind.is_empty(),
        "offsets left uncommitted after a clean stop (group, partition, committed, end): {behind:?}"
    );
}

/// The streamlet that reads the Kafka edge into the scorer (what `carry_kafka_edges` names it).
const EDGE_SOURCE: &str = "kafka-to-price-from-check-valid";

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
    sink: {{ type: kafka, topic: {topic}, key: id, partitions: 4 }}"#,
        topic = listings_topic("end-to-end"),
        input = root()
            .join("examples/house-prices/expected-predictions.jsonl")
            .display(),
    );
    let yaml = scoring_pipeline(
        "end-to-end",
        &broker.address,
        &listings_topic("end-to-end"),
        "{}",
        &load,
    );
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
    assert_all_committed(&broker, "end-to-end");
}

/// A producer that puts everything sent before a flush into one batch per partition.
fn one_batch_producer(broker: &Broker) -> TestProducer {
    rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &broker.address)
        .set("linger.ms", "2000")
        .set("batch.num.messages", "10000")
        .set("enable.idempotence", "true")
        .create_with_context(Deliveries::default())
        .expect("producer")
}

#[test]
fn a_pipeline_resuming_from_a_commit_inside_a_batch_gets_the_rest_of_it() {
    // What lost a record in the scale-out test: a process left with its last commit in the
    // middle of a batch the broker stores whole, and the next owner of the partition resumed
    // there. Here the commit is made so: 50 listings in one batch, offset 20 committed.
    let _turn = one_at_a_time();
    let broker = Broker::start();
    let dir = tempfile::tempdir().expect("dir");
    let topic = listings_topic("resume");
    broker.create_topic(&topic, 1);
    let producer = one_batch_producer(&broker);
    for record in listings(50) {
        let payload = record.to_string();
        producer
            .send(BaseRecord::<(), _>::to(&topic).payload(&payload))
            .expect("queued");
    }
    common::broker::flush(&producer);
    let group = "resume.listings";
    let mut at = TopicPartitionList::new();
    at.add_partition_offset(&topic, 0, Offset::Offset(20)).expect("offset");
    broker.consumer(group).commit(&at, CommitMode::Sync).expect("committed");
    let out = dir.path().join("out.jsonl");
    let file = dir.path().join("p.yaml");
    std::fs::write(
        &file,
        format!(
            r#"
pipeline: resume
defaults:
  kafka: {{ brokers: "{brokers}" }}
streamlets:
  listings:
    kind: ingress
    source: {{ type: kafka, topic: {topic} }}
  keep:
    kind: egress
    inputs: [listings]
    sink: {{ type: file, path: {out} }}
"#,
            brokers = broker.address,
            out = out.display()
        ),
    )
    .expect("pipeline");
    let run = common::Running::start(&file);
    wait_until(
        Duration::from_secs(60),
        || read_jsonl(&out).len() >= 30,
        || format!("{} of the 30 listings after the commit arrived", read_jsonl(&out).len()),
    );
    run.finish();
    let ids: Vec<u64> = read_jsonl(&out).iter().map(|r| r["id"].as_u64().expect("id")).collect();
    assert_eq!(
        ids,
        (21..=50).collect::<Vec<_>>(),
        "the listings after offset 20, each once, in order"
    );
    assert_eq!(
        broker.committed(group, &topic).get(&0),
        Some(&50),
        "the whole partition committed"
    );
}

#[test]
fn a_process_killed_mid_stream_loses_nothing_when_it_is_restarted() {
    let _turn = one_at_a_time();
    let broker = Broker::start();
    let dir = tempfile::tempdir().expect("dir");
    let n = 8000;
    // The partitions of a killed process go to the others once its session expires: after
    // 10 s here (librdkafka's default: 45 s).
    let (file, producing) = stream_listings(&broker, dir.path(), "crash", "{ session.timeout.ms: 10000 }", n);
    let mut first = Sluice::start(&file, dir.path(), "first");
    first.wait_published(1500, Duration::from_secs(120));
    first.kill();
    let right_after_kill = commits(&broker, "crash");
    // Restarted once the broker has noticed the killed member gone (its session timed out):
    // tansu, unlike Kafka, leaves a newcomer without partitions when it joins before that.
    std::thread::sleep(Duration::from_secs(12));
    // What the killed process had committed: its successor starts there. Read again now: a
    // commit the process had sent just before the kill may still have reached the broker.
    let before_restart = commits(&broker, "crash");
    let (listings_committed, edge_committed) = (&before_restart[0], &before_restart[1]);
    assert!(
        listings_committed.values().sum::<i64>() > 0,
        "nothing was committed in the seconds before the kill: {before_restart:?}"
    );
    let second = Sluice::start(&file, dir.path(), "second");
    producing.join().expect("produced");
    let scored = read_all_scored(&broker, n, "crash", &|| second.log_text());
    // The successor reads exactly what lies past the last commits, each once: the listings
    // past them, and the edge records past them (the killed one's and its own).
    let past = |committed: &std::collections::BTreeMap<i32, i64>, topic: &str| -> u64 {
        broker
            .ends(topic)
            .iter()
            .map(|(p, end)| (end - committed.get(p).copied().unwrap_or(0)) as u64)
            .sum()
    };
    let listings_past = n - listings_committed.values().sum::<i64>() as u64;
    wait_until(
        Duration::from_secs(60),
        || {
            second.sent("listings", "out") == listings_past
                && second.sent(EDGE_SOURCE, "out") == past(edge_committed, &edge_topic("crash"))
        },
        || {
            format!(
                "the restarted process read {} listings ({listings_past} lie past the commits) and {} edge records \
                 ({} lie past the commits); commits before it started: {before_restart:?}, right after the kill: \
                 {right_after_kill:?}; its log:\n{}",
                second.sent("listings", "out"),
                second.sent(EDGE_SOURCE, "out"),
                past(edge_committed, &edge_topic("crash")),
                second.log_text()
            )
        },
    );
    second.terminate();
    assert_all_committed(&broker, "crash");
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
    // Copies of records re-read after the first left may still wait in the edge topic.
    second.wait_caught_up();
    let second_log = second.terminate();
    assert!(second_log.contains("partitions assigned"), "{second_log}");
    assert_all_committed(&broker, "scale-out");
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
    sluice.wait_caught_up();
    let log = sluice.terminate();
    assert_all_committed(&broker, "outage");
    report("broker away 6 s", n, &scored);
    println!(
        "  {} warnings logged meanwhile",
        log.lines().filter(|l| l.contains(" WARN ")).count()
    );
}
