//! Kafka with a real Kafka-API broker (tansu, started here on a free loopback port): records
//! through a topic and back, headers, and a clear error when the broker cannot be reached.
//! `scripts/setup-kafka.sh` installs the broker; without it these tests fail, they do not skip.

mod common;
use common::broker::Broker;
use common::{read_jsonl, wait_until, Running};

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use rdkafka::consumer::Consumer;
use rdkafka::message::Headers;
use rdkafka::Message;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

#[test]
fn records_go_through_a_topic_and_come_back_each_once() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().expect("dir");
    let yaml = format!(
        "pipeline: roundtrip
defaults:
  kafka: {{ brokers: \"{brokers}\" }}
streamlets:
  listings:
    kind: ingress
    source: {{ type: generator, count: 2000, seed: 3 }}
  publish:
    kind: egress
    inputs: [listings]
    sink: {{ type: kafka, topic: listings-raw, key: id, partitions: 3 }}
  plain:
    kind: egress
    inputs: [listings]
    sink: {{ type: kafka, topic: listings-plain, lineage_headers: false }}
  subscribe:
    kind: ingress
    source: {{ type: kafka, topic: listings-raw, partitions: 3 }}
  save:
    kind: egress
    inputs: [subscribe, subscribe.errors]
    sink: {{ type: file, path: out.jsonl }}
",
        brokers = broker.address
    );
    let file = dir.path().join("p.yaml");
    std::fs::write(&file, yaml).expect("pipeline");
    let run = Running::start(&file);
    let out = dir.path().join("out.jsonl");
    wait_until(
        Duration::from_secs(120),
        || read_jsonl(&out).len() >= 2000,
        || format!("only {} records came back", read_jsonl(&out).len()),
    );
    // Once everything is read, the source's lag is measured on each partition and is nothing.
    let started = Instant::now();
    loop {
        let status = run.handle.status();
        let lag = status
            .streamlets
            .iter()
            .find(|s| s.name == "subscribe")
            .map(|s| s.lag.clone())
            .unwrap_or_default();
        if lag.len() == 3 && lag.iter().all(|(_, _, n)| *n == 0) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "lag: {lag:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    // The history (what the page charts) keeps it as a series over the source's partitions.
    let recorder = sluice::observe::history::Recorder::default();
    for _ in 0..2 {
        recorder.sample(
            &run.handle.status(),
            &run.handle.take_batch_times(),
            std::time::SystemTime::now(),
        );
    }
    let history = recorder.snapshot();
    let lag: Vec<(f64, f64)> = history
        .lag
        .get("subscribe listings-raw")
        .map(|s| s.points().copied().collect())
        .unwrap_or_default();
    assert_eq!(lag.len(), 2, "{:?}", history.lag.keys().collect::<Vec<_>>());
    assert!(lag.iter().all(|(_, v)| *v == 0.0), "{lag:?}");
    let summary = run.finish();
    let records = read_jsonl(&out);
    let ids: BTreeSet<u64> = records.iter().map(|r| r["id"].as_u64().expect("id")).collect();
    assert_eq!(records.len(), 2000, "each record once");
    assert_eq!(ids, (1..=2000).collect::<BTreeSet<u64>>());
    assert_eq!(summary.records_out("publish", "out"), None);
    assert_eq!(summary.records_in("publish"), Some(2000));

    // The messages carry the pipeline and streamlet that produced them, and the key.
    let consumer = broker.consumer("test-headers");
    consumer.subscribe(&["listings-raw"]).expect("subscribe");
    let message = first_message(&consumer);
    let headers = message.headers().expect("headers");
    let found: Vec<(String, String)> = headers
        .iter()
        .map(|h| {
            (
                h.key.to_string(),
                String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
            )
        })
        .collect();
    assert!(
        found.contains(&("sluice-pipeline".into(), "roundtrip".into())),
        "{found:?}"
    );
    assert!(
        found.contains(&("sluice-streamlet".into(), "publish".into())),
        "{found:?}"
    );
    let payload: Value = serde_json::from_slice(message.payload().expect("payload")).expect("JSON payload");
    assert_eq!(
        message.key().map(|k| String::from_utf8_lossy(k).into_owned()),
        Some(payload["id"].to_string())
    );

    // A sink told to leave them off sends the records alone.
    let consumer = broker.consumer("test-no-headers");
    consumer.subscribe(&["listings-plain"]).expect("subscribe");
    let message = first_message(&consumer);
    assert_eq!(message.headers().map_or(0, |h| h.count()), 0);
    let payload: Value = serde_json::from_slice(message.payload().expect("payload")).expect("JSON payload");
    assert!(payload["id"].is_u64(), "{payload}");
    assert_eq!(message.key(), None);
}

/// The first message the consumer reads (waiting up to a minute for one).
fn first_message(consumer: &rdkafka::consumer::BaseConsumer) -> rdkafka::message::BorrowedMessage<'_> {
    let started = Instant::now();
    loop {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(500)) {
            return m;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "no message to look at");
    }
}

#[test]
fn an_unreachable_broker_is_named_with_the_streamlet() {
    let dir = tempfile::tempdir().expect("dir");
    let yaml = "pipeline: nowhere
streamlets:
  listings:
    kind: ingress
    source: { type: generator, count: 10 }
  publish:
    kind: egress
    inputs: [listings]
    sink: { type: kafka, topic: t, brokers: \"127.0.0.1:1\" }
";
    let file = dir.path().join("p.yaml");
    std::fs::write(&file, yaml).expect("pipeline");
    let topology = sluice::topology::load(&file).unwrap_or_else(|e| panic!("{e}"));
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let err = rt
        .block_on(sluice::runtime::run(topology, CancellationToken::new()))
        .expect_err("no broker there");
    let text = err.to_string();
    assert!(text.contains("streamlet `publish` failed"), "{text}");
    assert!(text.contains("cannot reach the Kafka broker(s) 127.0.0.1:1"), "{text}");
}

#[test]
fn a_message_that_is_not_a_record_goes_to_errors_with_its_partition_and_offset() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().expect("dir");
    // Two messages written by someone else: a record, and text that is not JSON.
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let settings = sluice::spec::KafkaSettings {
            brokers: Some(broker.address.clone()),
            options: Default::default(),
        };
        sluice::kafka::ensure_topic(&settings, "mixed", 1, 1)
            .await
            .expect("topic");
        let producer: rdkafka::producer::FutureProducer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &broker.address)
            .create()
            .expect("producer");
        for payload in ["{\"id\": 1}", "not json"] {
            producer
                .send(
                    rdkafka::producer::FutureRecord::<(), _>::to("mixed").payload(payload),
                    Duration::from_secs(10),
                )
                .await
                .expect("produced");
        }
    });
    let yaml = format!(
        "pipeline: mixed
streamlets:
  subscribe:
    kind: ingress
    source: {{ type: kafka, topic: mixed, brokers: \"{}\" }}
  good:
    kind: egress
    inputs: [subscribe]
    sink: {{ type: file, path: good.jsonl }}
  bad:
    kind: egress
    inputs: [subscribe.errors]
    sink: {{ type: file, path: bad.jsonl }}
",
        broker.address
    );
    let file = dir.path().join("p.yaml");
    std::fs::write(&file, yaml).expect("pipeline");
    let run = Running::start(&file);
    wait_until(
        Duration::from_secs(60),
        || {
            !read_jsonl(&dir.path().join("bad.jsonl")).is_empty()
                && !read_jsonl(&dir.path().join("good.jsonl")).is_empty()
        },
        || "the messages did not come".into(),
    );
    run.finish();
    assert_eq!(
        read_jsonl(&dir.path().join("good.jsonl")),
        vec![serde_json::json!({"id": 1})]
    );
    let bad = read_jsonl(&dir.path().join("bad.jsonl"));
    assert_eq!(bad.len(), 1);
    assert_eq!(bad[0]["_raw"], "not json");
    assert_eq!(bad[0]["_error"]["source"], "kafka:mixed");
    assert_eq!(bad[0]["_error"]["partition"], 0);
    assert_eq!(bad[0]["_error"]["offset"], 1);
    assert!(
        bad[0]["_error"].get("line").is_none(),
        "a message has no line: {}",
        bad[0]
    );
}

#[test]
fn edges_through_kafka_topics_carry_every_record_once() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().expect("dir");
    let yaml = format!(
        "pipeline: topics
defaults:
  transport: kafka
  kafka: {{ brokers: \"{}\" }}
streamlets:
  listings:
    kind: ingress
    source: {{ type: generator, count: 1000, seed: 5, invalid_ratio: 0.1 }}
  check:
    kind: validator
    inputs: [listings]
    schema: {}
  save:
    kind: egress
    inputs: [check.valid, check.invalid]
    sink: {{ type: file, path: out.jsonl }}
edges:
  - {{ from: check.invalid, to: save, via: {{ memory: {{}} }} }}
",
        broker.address,
        common::root().join("schemas/records/listing.schema.json").display()
    );
    let file = dir.path().join("p.yaml");
    std::fs::write(&file, yaml).expect("pipeline");
    let run = Running::start(&file);
    let out = dir.path().join("out.jsonl");
    wait_until(
        Duration::from_secs(120),
        || read_jsonl(&out).len() >= 1000,
        || format!("only {} records arrived", read_jsonl(&out).len()),
    );
    std::thread::sleep(Duration::from_millis(300));
    let names: Vec<String> = run.handle.status().streamlets.iter().map(|s| s.name.clone()).collect();
    run.finish();
    let ids: BTreeSet<u64> = read_jsonl(&out).iter().map(|r| r["id"].as_u64().expect("id")).collect();
    assert_eq!(read_jsonl(&out).len(), 1000, "each record once");
    assert_eq!(ids, (1..=1000).collect::<BTreeSet<u64>>());
    // Two edges went through topics (listings → check, check.valid → save); one stayed in memory.
    assert!(
        names.contains(&"kafka-to-check-from-listings-out".to_string()),
        "{names:?}"
    );
    assert!(
        names.contains(&"kafka-to-save-from-check-valid".to_string()),
        "{names:?}"
    );
    assert!(!names.iter().any(|n| n.contains("invalid")), "{names:?}");
}

/// The descriptor of house-price `version` with its model bytes inline, as a publisher would
/// send it to a model topic.
fn inline_descriptor(version: &str) -> String {
    use base64::Engine;
    let models = common::root().join("examples/house-prices/models");
    let text = std::fs::read_to_string(models.join(format!("house-price-v{version}.model.json"))).expect("descriptor");
    let mut descriptor: Value = serde_json::from_str(&text).expect("JSON descriptor");
    let location = descriptor["location"].as_str().expect("location").to_string();
    let bytes = std::fs::read(models.join(location)).expect("model bytes");
    let object = descriptor.as_object_mut().expect("object");
    object.remove("location");
    object.insert(
        "bytes_base64".into(),
        base64::engine::general_purpose::STANDARD.encode(bytes).into(),
    );
    descriptor.to_string()
}

fn publish(broker: &Broker, topic: &str, payload: &str) {
    let producer = broker.producer();
    producer
        .send(rdkafka::producer::BaseRecord::<(), str>::to(topic).payload(payload))
        .expect("queued");
    common::broker::flush(&producer);
}

/// The versions that scored the records in `path`, in order, without repeats.
fn versions_in(path: &std::path::Path) -> Vec<String> {
    let mut versions: Vec<String> = Vec::new();
    for r in read_jsonl(path) {
        let v = r["_model"]["version"].as_str().expect("version").to_string();
        if versions.last() != Some(&v) {
            versions.push(v);
        }
    }
    versions
}

#[test]
fn a_model_version_published_to_the_topic_is_served_by_the_running_pipeline() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().expect("dir");
    broker.create_topic("models", 1);
    // v1 is on the topic before the pipeline starts; the folder holds no descriptor.
    publish(&broker, "models", &inline_descriptor("1"));
    let pipeline = |out: &str| {
        format!(
            r#"pipeline: models-from-kafka
defaults:
  kafka: {{ brokers: "{brokers}" }}
  batch_size: 20
  linger_ms: 10
streamlets:
  listings:
    kind: ingress
    source: {{ type: generator, rate: 400, seed: 4 }}
  price:
    use: {scorer}
    model: {{ name: house-price, folder: {folder}, topic: models }}
    inputs: [listings]
  save:
    kind: egress
    inputs: [price, price.errors]
    sink: {{ type: file, path: {out} }}
"#,
            brokers = broker.address,
            scorer = common::root().join("streamlets/house-price-gbm.yaml").display(),
            folder = dir.path().display(),
        )
    };
    let file = dir.path().join("p.yaml");
    std::fs::write(&file, pipeline("first.jsonl")).expect("pipeline");
    let run = Running::start(&file);
    let out = dir.path().join("first.jsonl");
    let wait_for = |what: &str, done: &dyn Fn() -> bool| {
        wait_until(Duration::from_secs(60), done, || {
            format!("{what}: {:?}", versions_in(&out))
        })
    };
    wait_for("v1 serves", &|| read_jsonl(&out).len() >= 100);
    // A broken version (its bytes do not match its checksum) is rejected; v1 goes on.
    let broken = inline_descriptor("2").replace("\"version\":\"2\"", "\"version\":\"3\"");
    let mut broken: Value = serde_json::from_str(&broken).expect("JSON");
    broken["sha256"] = "00".repeat(32).into();
    publish(&broker, "models", &broken.to_string());
    publish(&broker, "models", "not a descriptor");
    let seen = read_jsonl(&out).len();
    wait_for("records after the broken version", &|| {
        read_jsonl(&out).len() >= seen + 200
    });
    assert_eq!(versions_in(&out), vec!["1"]);
    // v2 published while the pipeline runs is swapped in.
    publish(&broker, "models", &inline_descriptor("2"));
    wait_for("v2 serves", &|| {
        versions_in(&out).last().map(String::as_str) == Some("2")
    });
    run.finish();
    assert_eq!(versions_in(&out), vec!["1", "2"], "one swap, no record unscored");
    assert!(read_jsonl(&out).iter().all(|r| r["predicted_price"].is_number()));

    // A scorer starting now reads the topic from the beginning and serves the latest good version.
    std::fs::write(&file, pipeline("second.jsonl")).expect("pipeline");
    let run = Running::start(&file);
    let second = dir.path().join("second.jsonl");
    wait_until(
        Duration::from_secs(60),
        || read_jsonl(&second).len() >= 50,
        || "the second run scored nothing".into(),
    );
    run.finish();
    assert_eq!(versions_in(&second), vec!["2"]);
}

/// A TLS front for a broker: clients speak TLS to it (a certificate made here, for
/// 127.0.0.1), it speaks plain Kafka to the broker behind. (tansu 0.6 takes `--cert` and
/// `--key` but does not terminate TLS itself.) Returns the CA file clients must trust.
fn tls_front(listen: std::net::TcpListener, behind: String, dir: &std::path::Path) -> std::path::PathBuf {
    let issued = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).expect("certificate");
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, issued.cert.pem()).expect("CA file");
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(issued.signing_key.serialize_der().into());
    let config =
        rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(vec![issued.cert.der().clone()], key)
            .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        rt.block_on(async move {
            listen.set_nonblocking(true).expect("nonblocking");
            let listener = tokio::net::TcpListener::from_std(listen).expect("listener");
            while let Ok((client, _)) = listener.accept().await {
                let (acceptor, behind) = (acceptor.clone(), behind.clone());
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(client).await else {
                        return;
                    };
                    let Ok(mut broker) = tokio::net::TcpStream::connect(&behind).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut broker).await;
                });
            }
        });
    });
    ca
}

#[test]
fn records_go_through_a_broker_over_tls_with_settings_from_the_environment() {
    let dir = tempfile::tempdir().expect("dir");
    let front = std::net::TcpListener::bind("127.0.0.1:0").expect("front port");
    let front_address = front.local_addr().expect("addr").to_string();
    let broker = Broker::start_behind(&front_address);
    let ca = tls_front(front, broker.address.clone(), dir.path());
    // The CA file's path comes from the environment, as a secret would.
    std::env::set_var("SLUICE_TEST_KAFKA_CA", &ca);
    let yaml = format!(
        r#"pipeline: tls
defaults:
  kafka:
    brokers: "{front_address}"
    options: {{ security.protocol: ssl, ssl.ca.location: "${{SLUICE_TEST_KAFKA_CA}}" }}
streamlets:
  listings:
    kind: ingress
    source: {{ type: generator, count: 500, seed: 8 }}
  publish:
    kind: egress
    inputs: [listings]
    sink: {{ type: kafka, topic: private, partitions: 2 }}
  subscribe:
    kind: ingress
    source: {{ type: kafka, topic: private, partitions: 2 }}
  save:
    kind: egress
    inputs: [subscribe, subscribe.errors]
    sink: {{ type: file, path: out.jsonl }}
"#
    );
    let file = dir.path().join("p.yaml");
    std::fs::write(&file, yaml).expect("pipeline");
    let run = Running::start(&file);
    let out = dir.path().join("out.jsonl");
    wait_until(
        Duration::from_secs(60),
        || {
            run.assert_running();
            read_jsonl(&out).len() >= 500
        },
        || format!("{} of 500 arrived", read_jsonl(&out).len()),
    );
    run.finish();
    let ids: BTreeSet<u64> = read_jsonl(&out).iter().map(|r| r["id"].as_u64().expect("id")).collect();
    assert_eq!(ids, (1..=500).collect::<BTreeSet<u64>>());
    assert_eq!(read_jsonl(&out).len(), 500, "each record once");
}

#[test]
fn a_scorer_reloaded_between_kafka_edges_loses_no_record() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().expect("dir");
    let models = common::root().join("examples/house-prices/models");
    let pipeline = |version: &str| {
        format!(
            r#"pipeline: reload-over-kafka
defaults:
  transport: kafka
  kafka: {{ brokers: "{brokers}" }}
  batch_size: 50
streamlets:
  listings:
    kind: ingress
    source: {{ type: generator, count: 4000, rate: 400, seed: 6 }}
  price:
    use: {scorer}
    model: {{ name: house-price, folder: {models}, version: "{version}" }}
    inputs: [listings]
  save:
    kind: egress
    inputs: [price, price.errors]
    sink: {{ type: file, path: out.jsonl }}
edges:
  - {{ from: price.errors, to: save, via: {{ memory: {{}} }} }}
"#,
            brokers = broker.address,
            scorer = common::root().join("streamlets/house-price-gbm.yaml").display(),
            models = models.display(),
        )
    };
    let file = dir.path().join("p.yaml");
    std::fs::write(&file, pipeline("1")).expect("pipeline");
    let topology = sluice::topology::load(&file).unwrap_or_else(|e| panic!("{e}"));
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let stop = CancellationToken::new();
    let (handle, task) = rt.block_on(sluice::runtime::run_file(&file, topology, stop.clone()));
    let out = dir.path().join("out.jsonl");
    let wait_for = |what: &str, done: &dyn Fn(&[Value]) -> bool| {
        let started = Instant::now();
        loop {
            let records = read_jsonl(&out);
            if done(&records) {
                return records;
            }
            assert!(
                started.elapsed() < Duration::from_secs(90),
                "{what}: {} records",
                records.len()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    wait_for("records scored by v1", &|r| r.len() >= 500);
    let tmp = dir.path().join("p.yaml.tmp");
    std::fs::write(&tmp, pipeline("2")).expect("edit");
    std::fs::rename(&tmp, &file).expect("replace");
    let records = wait_for("every record", &|r| {
        r.iter().filter_map(|r| r["id"].as_u64()).collect::<BTreeSet<_>>().len() >= 4000
    });
    assert_eq!(handle.status().reloads, 1);
    stop.cancel();
    rt.block_on(task).expect("task").expect("run");
    let ids: BTreeSet<u64> = records.iter().map(|r| r["id"].as_u64().expect("id")).collect();
    assert_eq!(ids, (1..=4000).collect::<BTreeSet<u64>>());
    let versions: BTreeSet<&str> = records
        .iter()
        .map(|r| r["_model"]["version"].as_str().expect("scored"))
        .collect();
    assert_eq!(versions, BTreeSet::from(["1", "2"]));
    println!(
        "reload between Kafka edges: 4000 records, {} written, {} duplicates",
        records.len(),
        records.len() - ids.len()
    );
}

/// Sends `(key, value)` messages to `topic` (a `None` value is a tombstone), in order.
fn send_keyed(broker: &Broker, topic: &str, messages: &[(&str, Option<Value>)]) {
    let producer = broker.producer();
    for (key, value) in messages {
        let payload = value.as_ref().map(|v| v.to_string());
        let mut record = rdkafka::producer::BaseRecord::<str, str>::to(topic).key(key);
        if let Some(p) = &payload {
            record = record.payload(p);
        }
        producer.send(record).expect("queued");
    }
    common::broker::flush(&producer);
}

#[test]
fn a_compacted_topic_joins_as_a_table_with_updates_and_tombstones_while_records_stream() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().expect("dir");
    broker.create_topic("zips", 1);
    broker.create_topic("orders", 1);
    // The table's history before the pipeline starts: z3 deleted, z4 updated.
    let income = |n: u64| Some(serde_json::json!({ "income": n, "ignored": "x" }));
    send_keyed(
        &broker,
        "zips",
        &[
            ("z1", income(1)),
            ("z2", income(2)),
            ("z3", income(3)),
            ("z4", income(4)),
            ("z3", None),
            ("z4", income(44)),
        ],
    );
    let yaml = format!(
        r#"pipeline: ktable
defaults:
  kafka: {{ brokers: "{}" }}
  batch_size: 10
  linger_ms: 5
streamlets:
  orders:
    kind: ingress
    source: {{ type: kafka, topic: orders }}
  zip:
    kind: enricher
    inputs: [orders]
    table: {{ type: kafka, topic: zips, key: zip }}
    fields: [income]
    missing: unmatched
  joined:
    kind: egress
    inputs: [zip]
    sink: {{ type: file, path: joined.jsonl }}
  unmatched:
    kind: egress
    inputs: [zip.unmatched, orders.errors]
    sink: {{ type: file, path: unmatched.jsonl }}
"#,
        broker.address
    );
    let file = dir.path().join("p.yaml");
    std::fs::write(&file, yaml).expect("pipeline");
    let run = Running::start(&file);
    let orders = |ids: std::ops::Range<u64>, zips: &[&str]| -> Vec<Value> {
        ids.zip(zips.iter().cycle())
            .map(|(id, zip)| serde_json::json!({ "id": id, "zip": zip }))
            .collect()
    };
    let joined = dir.path().join("joined.jsonl");
    let unmatched = dir.path().join("unmatched.jsonl");
    let by_id = |path: &std::path::Path| -> std::collections::BTreeMap<u64, Value> {
        read_jsonl(path)
            .into_iter()
            .map(|r| (r["id"].as_u64().expect("id"), r))
            .collect()
    };
    let wait_for = |what: &str, done: &dyn Fn() -> bool| wait_until(Duration::from_secs(60), done, || what.to_string());
    let producer = broker.producer();
    // The first records already see the whole table.
    common::broker::produce(&producer, "orders", &orders(1..5, &["z1", "z2", "z3", "z4"]));
    wait_for("the first records", &|| {
        by_id(&joined).len() + by_id(&unmatched).len() >= 4
    });
    let (j, u) = (by_id(&joined), by_id(&unmatched));
    assert_eq!(j[&1]["income"], 1);
    assert_eq!(j[&2]["income"], 2);
    assert!(
        u.contains_key(&3) && !j.contains_key(&3),
        "z3 was deleted before the start"
    );
    assert_eq!(j[&4]["income"], 44, "the latest value of a key wins");
    assert!(j[&1].get("ignored").is_none(), "only the named fields are added");

    // While records stream: z1 changes, z2 is deleted, z3 comes back.
    send_keyed(&broker, "zips", &[("z1", income(10)), ("z2", None), ("z3", income(30))]);
    // Probes until the last update is in (one partition: the others came before it).
    let started = Instant::now();
    let mut probe = 100;
    while !by_id(&joined).values().any(|r| r["zip"] == "z3" && r["income"] == 30) {
        assert!(started.elapsed() < Duration::from_secs(60), "the updates never arrived");
        common::broker::produce(&producer, "orders", &orders(probe..probe + 1, &["z3"]));
        probe += 1;
        std::thread::sleep(Duration::from_millis(200));
    }
    common::broker::produce(&producer, "orders", &orders(1000..1004, &["z1", "z2", "z3", "z4"]));
    wait_for("the records after the updates", &|| {
        (1000..1004).all(|id| by_id(&joined).contains_key(&id) || by_id(&unmatched).contains_key(&id))
    });
    run.finish();
    let (j, u) = (by_id(&joined), by_id(&unmatched));
    assert_eq!(j[&1000]["income"], 10);
    assert!(u.contains_key(&1001) && !j.contains_key(&1001), "z2 was deleted");
    assert_eq!(j[&1002]["income"], 30);
    assert_eq!(j[&1003]["income"], 44);
    // Nothing lost or doubled on the way: every order is in exactly one of the outputs.
    let joined_ids: BTreeSet<u64> = j.keys().copied().collect();
    let unmatched_ids: BTreeSet<u64> = u.keys().copied().collect();
    assert!(joined_ids.is_disjoint(&unmatched_ids));
}

#[test]
fn messages_with_ever_new_field_names_come_out_whole_and_in_order() {
    // An id used as a key makes each record's field names new: more than a batch takes, so the
    // source closes batches early, and no message may be lost, cut or moved by that.
    let broker = Broker::start();
    let dir = tempfile::tempdir().expect("dir");
    broker.create_topic("wide", 1);
    let records: Vec<Value> = (0..1500)
        .map(|i| {
            let mut record = serde_json::Map::new();
            record.insert("id".into(), i.into());
            record.insert(format!("reading_{i}"), (i as f64 + 0.5).into());
            Value::Object(record)
        })
        .collect();
    common::broker::produce(&broker.producer(), "wide", &records);
    let yaml = format!(
        "pipeline: wide
streamlets:
  subscribe:
    kind: ingress
    source: {{ type: kafka, topic: wide, brokers: \"{}\" }}
    batch_size: 1000
  save:
    kind: egress
    inputs: [subscribe, subscribe.errors]
    sink: {{ type: file, path: out.jsonl }}
",
        broker.address
    );
    let file = dir.path().join("p.yaml");
    std::fs::write(&file, yaml).expect("pipeline");
    let run = Running::start(&file);
    let out = dir.path().join("out.jsonl");
    wait_until(
        Duration::from_secs(120),
        || read_jsonl(&out).len() >= records.len(),
        || format!("only {} records came back", read_jsonl(&out).len()),
    );
    run.finish();
    assert_eq!(read_jsonl(&out), records);
}

/// A Kafka source's `metadata` says where each record came from, and a dataset of those
/// records lists the topic partitions and offsets its rows came from in its manifest.
#[test]
fn a_dataset_of_records_from_a_topic_says_which_offsets_they_came_from() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().expect("dir");
    broker.create_topic("labelled", 2);
    let records: Vec<Value> = (1..=600)
        .map(|i| serde_json::json!({"id": i, "label": i % 7}))
        .collect();
    common::broker::produce(&broker.producer(), "labelled", &records);
    let ends = broker.ends("labelled");
    let yaml = format!(
        "pipeline: provenance
streamlets:
  subscribe:
    kind: ingress
    source: {{ type: kafka, topic: labelled, brokers: \"{}\", partitions: 2, metadata: _kafka }}
  keep:
    kind: egress
    inputs: [subscribe]
    sink: {{ type: dataset, path: data, shard_rows: 100 }}
  copy:
    kind: egress
    inputs: [subscribe]
    sink: {{ type: file, path: copy.jsonl }}
",
        broker.address
    );
    let file = dir.path().join("p.yaml");
    std::fs::write(&file, yaml).expect("pipeline");
    let run = Running::start(&file);
    wait_until(
        Duration::from_secs(60),
        || read_jsonl(&dir.path().join("copy.jsonl")).len() >= 600,
        || "the records did not all come".into(),
    );
    run.finish();
    // Each record says where it came from, as the broker has it.
    let copy = read_jsonl(&dir.path().join("copy.jsonl"));
    let places: BTreeSet<(u64, i64, i64)> = copy
        .iter()
        .map(|r| {
            let k = &r["_kafka"];
            assert_eq!(k["topic"], "labelled", "{r}");
            assert!(k["timestamp"].as_i64().is_some_and(|t| t > 0), "{r}");
            (
                r["id"].as_u64().expect("id"),
                k["partition"].as_i64().expect("partition"),
                k["offset"].as_i64().expect("offset"),
            )
        })
        .collect();
    let ids: BTreeSet<u64> = places.iter().map(|p| p.0).collect();
    let located: BTreeSet<(u64, i64, i64)> = broker
        .locate("labelled", &ids)
        .into_iter()
        .map(|(id, p, o)| (id, i64::from(p), o))
        .collect();
    assert_eq!(places, located);
    // The manifest: per partition, every row of it, from its first offset to its last.
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("data/manifest.json")).expect("manifest"))
            .expect("JSON");
    assert_eq!(manifest["rows"], 600);
    let sources = manifest["sources"].as_array().expect("sources");
    assert_eq!(sources.len(), ends.values().filter(|e| **e > 0).count(), "{manifest:#}");
    for s in sources {
        let partition = s["partition"].as_i64().expect("partition") as i32;
        assert_eq!(s["topic"], "labelled");
        assert_eq!(s["first"], 0, "{s}");
        assert_eq!(s["last"].as_i64(), Some(ends[&partition] - 1), "{s}");
        assert_eq!(s["rows"].as_i64(), Some(ends[&partition]), "{s}");
    }
    let per_shard: u64 = manifest["shards"]
        .as_array()
        .expect("shards")
        .iter()
        .flat_map(|s| s["sources"].as_array().cloned().unwrap_or_default())
        .map(|r| r["rows"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(per_shard, 600);
}

/// A trainer publishing for a scorer whose versions come from a model topic publishes the
/// new version there (the model inline, with its lineage); the scorer's reader takes it.
#[test]
fn a_retrained_version_is_published_on_the_model_topic_and_served_from_it() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().expect("dir");
    broker.create_topic("models", 1);
    publish(&broker, "models", &inline_descriptor("1"));
    publish(&broker, "models", &inline_descriptor("2"));
    let python = common::root().join(".venv-train/bin/python");
    let yaml = format!(
        r#"pipeline: retrain-to-topic
defaults:
  kafka: {{ brokers: "{brokers}" }}
streamlets:
  listings:
    kind: ingress
    source: {{ type: generator, seed: 9, rate: 1500 }}
  sales:
    kind: ingress
    source: {{ type: generator, seed: 9, rate: 1500, start_after: 1s }}
  price:
    use: {scorer}
    model: null
    models:
      serving: {{ name: house-price, folder: {dir}, topic: models, version: 2 }}
      candidate: {{ name: house-price, folder: {dir}, topic: models }}
    strategy: {{ shadow: {{ primary: serving, shadows: [candidate], emit: true }} }}
    inputs: [listings]
  quality:
    kind: evaluator
    inputs: [price, price.shadow, sales]
    key: id
    label: price
    prediction: predicted_price
    task: regressor
    window: 300
    carry: ["*"]
    scorer: price
    state: {dir}/state
  keep:
    kind: egress
    inputs: [quality]
    sink: {{ type: dataset, path: {dir}/training, shard_rows: 250, max_rows: 3000 }}
  retrain:
    kind: trainer
    inputs: [quality]
    dataset: {dir}/training
    when: {{ every_rows: 2000 }}
    min_rows: 1000
    command: ["{python}", "{train}", "--dataset", "{{dataset}}", "--out", "{{output}}"]
    timeout: 2m
    publish: {{ scorer: price, model: candidate }}
    state: {dir}/state
  runs:
    kind: egress
    inputs: [retrain]
    sink: {{ type: file, path: {dir}/runs.jsonl }}
  lifecycle:
    kind: egress
    inputs: [price.audit]
    sink: {{ type: file, path: {dir}/audit.jsonl }}
  refused:
    kind: egress
    inputs: [quality.errors, price.errors, listings.errors, sales.errors]
    sink: {{ type: blackhole }}
"#,
        brokers = broker.address,
        scorer = common::root().join("streamlets/house-price-gbm.yaml").display(),
        dir = dir.path().display(),
        python = python.display(),
        train = common::root().join("examples/house-prices/train.py").display(),
    );
    let file = dir.path().join("p.yaml");
    std::fs::write(&file, yaml).expect("pipeline");
    let run = Running::start(&file);
    wait_until(
        Duration::from_secs(120),
        || {
            read_jsonl(&dir.path().join("audit.jsonl"))
                .iter()
                .any(|e| e["arm"] == "candidate" && e["version"] == "3" && e["event"] == "serving")
        },
        || format!("v3 never served: {:#?}", read_jsonl(&dir.path().join("runs.jsonl"))),
    );
    run.finish();
    let runs = read_jsonl(&dir.path().join("runs.jsonl"));
    let published = runs
        .iter()
        .find(|r| r["event"] == "published")
        .unwrap_or_else(|| panic!("{runs:#?}"));
    assert_eq!(
        (published["version"].as_str(), published["parent"].as_str()),
        (Some("3"), Some("2"))
    );
    // The topic holds v3 as data: the model inline, the lineage beside it; no file was written.
    let on_topic = broker.read_topic("models", Duration::from_secs(20), |m| m["version"] == "3");
    let v3 = on_topic
        .iter()
        .find(|m| m["version"] == "3")
        .unwrap_or_else(|| panic!("v3 is not on the topic: {} messages", on_topic.len()));
    assert!(v3["bytes_base64"].as_str().is_some_and(|b| b.len() > 1000));
    assert!(v3.get("location").is_none_or(Value::is_null), "{}", v3["location"]);
    assert_eq!(v3["lineage"]["parent"], "2");
    assert_eq!(v3["lineage"]["trigger"]["kind"], "every_rows");
    assert!(!dir.path().join("house-price-v3.onnx").exists());
    // The serving arm, pinned to v2, served nothing else.
    let audit = read_jsonl(&dir.path().join("audit.jsonl"));
    assert!(audit
        .iter()
        .filter(|e| e["arm"] == "serving" && e["event"] == "serving")
        .all(|e| e["version"] == "2"));
}
