//! Kafka → scorer → Kafka. sluice side by side, on the same broker build, records and model, with
//! (a) a raw rdkafka consume → produce passthrough (what the transport allows; no parsing, no
//! scoring) and (b) the Python service a team would write by hand
//! (`benches/peer/python_kafka_scorer.py`: confluent-kafka + onnxruntime + numpy).
//!
//! sluice runs Kafka → validator (the listing schema) → scorer (house-price v2) → Kafka. Every
//! consumer asks the broker with the same `fetch.wait.max.ms` (100 ms) and
//! `fetch.queue.backoff.ms` (10 ms, sluice's default). In each of several
//! rounds each contender gets a fresh broker of its own (a broker shared by all was slower for
//! whoever ran later; `SLUICE_BENCH_SHARED_BROKER=1` shares one, to compare) and on it an input
//! topic holding the same records, and
//! - throughput: reads N records already waiting, records/s from the first scored record out
//!   to the last (the median of the rounds is reported), and over the same span the CPU per
//!   record of the contender's process and of the whole machine (from `/proc`: a figure the
//!   machine's speed moves less than the rate, and which says whose CPU the rate is bound by),
//!   and the page faults per record of both (an allocator handing memory back shows there);
//! - latency: then records are produced at a steady 1,000/s and then 10,000/s for 5 s each
//!   while it runs; end-to-end latency per record, from just before it is produced to when it
//!   is read from the output topic (p50, p99 and max over every round, and each round's p99).
//!
//! The summary gives each round's longest time no record came out, and each latency run prints
//! its worst 100 ms windows (the highest latency of a record sent in each, and when): a stall
//! shows in both. Each latency run also splits its latency at the output message's timestamp
//! (when the contender's producer took the record): until then, and from then until read.
//!
//!   cargo bench --bench kafka    (SLUICE_BENCH_RECORDS=N, SLUICE_BENCH_ROUNDS=R to change them;
//!                                 SLUICE_BENCH_FETCH_WAIT_MS, SLUICE_BENCH_FETCH_QUEUE_BACKOFF_MS
//!                                 to give every consumer other fetch settings;
//!                                 SLUICE_BENCH_SLUICE=bare to run sluice as Kafka → Kafka only,
//!                                 =passthrough to run the passthrough in sluice's place (A/A:
//!                                 the figures the noise alone gives);
//!                                 SLUICE_BENCH_BINARY=path to run another build of sluice;
//!                                 SLUICE_BENCH_BINARY_B=path to run a second one beside
//!                                 sluice in every round (after it, then before it, in turn),
//!                                 compared with it round by round;
//!                                 SLUICE_BENCH_WARM_MIB=N to touch N MiB of fresh memory before
//!                                 each broker starts, 1,024 by default, 0 for none;
//!                                 SLUICE_BENCH_BROKER_TUNABLES=... the brokers' GLIBC_TUNABLES,
//!                                 freed memory kept for reuse by default, empty for glibc's own)
//!
//! At the default 100 ms, tansu's cap of 5 MiB per fetch bounds the passthrough and sluice
//! alike (about 170,000 records/s); at 10 ms each contender is bound by its own CPU and the
//! broker's.
//!
//! `make bench` installs the broker and the peer's Python packages first.

/// The repository root (the tests' broker helper needs it).
fn root() -> &'static std::path::Path {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[path = "../tests/common/broker.rs"]
#[allow(dead_code)]
mod broker;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use broker::{produce, Broker};
use hdrhistogram::Histogram;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Message, Offset, TopicPartitionList};
use serde_json::Value;
use sluice::spec::FeatureField;
use sluice::streamlets::ingress::generator::ListingGenerator;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const PARTITIONS: i32 = 4;
/// The steady rates latency is measured at, records per second, each for this long.
const LATENCY_RATES: [usize; 2] = [1_000, 10_000];
const LATENCY_SECONDS: f64 = 5.0;
/// Every consumer's `fetch.queue.backoff.ms`: sluice's default (10 ms) unless
/// `SLUICE_BENCH_FETCH_QUEUE_BACKOFF_MS` says otherwise. How long fetching pauses once
/// librdkafka's local queue is full enough; librdkafka's own (1000 ms) lets the queue run dry
/// for a consumer that reads faster than 100,000 messages a second.
fn fetch_queue_backoff_ms() -> u64 {
    env_ms("SLUICE_BENCH_FETCH_QUEUE_BACKOFF_MS").unwrap_or(10)
}

/// Every consumer's `fetch.wait.max.ms`: 100 ms unless `SLUICE_BENCH_FETCH_WAIT_MS` says
/// otherwise. tansu 0.6 answers a fetch only at this deadline, with at most 5 MiB (its cap,
/// whatever the client asks), so no consumer reads faster than 5 MiB per deadline: about
/// 170,000 of these records a second at 100 ms, whatever the contender does. A shorter wait
/// lifts that ceiling, and then what bounds each contender is its own CPU and the broker's.
fn fetch_wait_ms() -> u64 {
    env_ms("SLUICE_BENCH_FETCH_WAIT_MS").unwrap_or(100)
}

/// A number of milliseconds from the environment; a value that is not one stops the benchmark.
fn env_ms(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    Some(
        value
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value}: not a number of milliseconds")),
    )
}

/// The house-price model's inputs as plain record fields, from the scorer definition: the
/// Python peer reads numeric fields only, so a one-hot field's columns travel in the record
/// (`city=Seattle: 1`) for both. Each: the column's field, and the (field, value) it is
/// made from when it is one-hot.
fn columns() -> Vec<(String, Option<(String, String)>)> {
    let definition =
        std::fs::read_to_string(root().join("streamlets/house-price-gbm.yaml")).expect("scorer definition");
    let config: sluice::spec::ScorerConfig = serde_yaml_ng::from_str(&definition).expect("scorer definition parses");
    let mut columns = Vec::new();
    for field in config.features.fields {
        match field {
            FeatureField::Name(name) => columns.push((name, None)),
            FeatureField::Spec(spec) => match spec.one_hot {
                Some(values) => columns.extend(
                    values
                        .into_iter()
                        .map(|v| (format!("{}={v}", spec.field), Some((spec.field.clone(), v)))),
                ),
                None => columns.push((spec.field, None)),
            },
        }
    }
    columns
}

fn feature_names() -> Vec<String> {
    columns().into_iter().map(|(name, _)| name).collect()
}

fn listings(first_id: u64, n: usize) -> Vec<Value> {
    let columns = columns();
    let mut generator = ListingGenerator::new(21, 0.0);
    (0..n)
        .map(|i| {
            let mut record = generator.next_record();
            for (name, one_hot) in &columns {
                if let Some((field, value)) = one_hot {
                    let hot = record.get(field).and_then(|v| v.as_str()) == Some(value.as_str());
                    record.insert(name.clone(), u8::from(hot).into());
                }
            }
            record.insert("id".into(), (first_id + i as u64).into());
            Value::Object(record)
        })
        .collect()
}

/// The `id` of a record written as JSON text, found without reading the rest of it: the
/// watcher shares the two cores with the contender it times, so it must cost little. (Parsing
/// each record into a `serde_json::Value` took a quarter to a third of the machine's CPU.)
fn id_of(text: &[u8]) -> Option<u64> {
    let mut from = 0;
    while let Some(at) = memchr::memmem::find(&text[from..], b"\"id\"") {
        let rest = text[from + at + 4..].trim_ascii_start();
        if let Some(value) = rest.strip_prefix(b":") {
            let digits = value.trim_ascii_start();
            let end = digits.iter().position(|b| !b.is_ascii_digit()).unwrap_or(digits.len());
            return std::str::from_utf8(&digits[..end]).ok()?.parse().ok();
        }
        from += at + 4;
    }
    None
}

/// When a record first arrived in the output topic.
#[derive(Clone, Copy)]
struct Arrival {
    at: Instant,
    /// The same moment on the wall clock, in milliseconds since the epoch.
    wall_ms: i64,
    /// The message's timestamp: when the contender's producer took it (librdkafka and
    /// confluent-kafka stamp a message when it is handed to them, and tansu keeps the
    /// producer's time), on the same wall clock.
    stamped_ms: Option<i64>,
}

/// Milliseconds since the epoch, now.
fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// When each id first arrived in a topic, read by a thread from the beginning.
struct Arrivals {
    seen: Arc<Mutex<HashMap<u64, Arrival>>>,
    stop: Arc<AtomicBool>,
    /// The reading thread, joined on drop: its consumer closes before the broker stops.
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Arrivals {
    /// Watches `topic`, where `expected` records will arrive: the map of arrivals is made that
    /// large at once. (Grown as records came, it was rehashed 2.4 s into the run at 10,000/s,
    /// at 229,376 records, and the watcher read nothing meanwhile: every contender showed a
    /// spike there, up to 193 ms.)
    fn watch(broker: &Broker, topic: &str, expected: usize) -> Arrivals {
        broker.create_topic(topic, PARTITIONS);
        let consumer: BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &broker.address)
            .set("group.id", format!("bench-watch-{topic}"))
            .set("enable.auto.commit", "false")
            .set("fetch.wait.max.ms", "10")
            .set("fetch.queue.backoff.ms", "10")
            .create()
            .expect("consumer");
        let mut list = TopicPartitionList::new();
        for p in 0..PARTITIONS {
            list.add_partition_offset(topic, p, Offset::Beginning)
                .expect("partition");
        }
        consumer.assign(&list).expect("assign");
        let seen = Arc::new(Mutex::new(HashMap::with_capacity(expected)));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (seen.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                if let Some(Ok(m)) = consumer.poll(Duration::from_millis(50)) {
                    let arrival = Arrival {
                        at: Instant::now(),
                        wall_ms: wall_ms(),
                        stamped_ms: m.timestamp().to_millis(),
                    };
                    if let Some(id) = id_of(m.payload().unwrap_or_default()) {
                        s.lock().unwrap().entry(id).or_insert(arrival);
                    }
                }
            }
        });
        Arrivals {
            seen,
            stop,
            thread: Some(thread),
        }
    }

    fn wait_for(&self, n: usize, timeout: Duration, what: &str) {
        let started = Instant::now();
        while self.seen.lock().unwrap().len() < n {
            assert!(
                started.elapsed() < timeout,
                "{what}: {} of {n} records came out",
                self.seen.lock().unwrap().len()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Arrivals {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The highest resident memory a process reached (VmHWM), sampled until it exits.
struct PeakMemory(Arc<std::sync::atomic::AtomicU64>);

impl PeakMemory {
    fn watch(pid: u32) -> PeakMemory {
        let peak = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let p = peak.clone();
        std::thread::spawn(move || {
            while let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
                let kib = status
                    .lines()
                    .find_map(|l| l.strip_prefix("VmHWM:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok());
                match kib {
                    Some(kib) => p.fetch_max(kib, Ordering::Relaxed),
                    None => break, // a zombie: it has exited
                };
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        PeakMemory(peak)
    }

    fn mib(&self) -> u64 {
        self.0.load(Ordering::Relaxed) / 1024
    }
}

struct Figures {
    /// Per latency rate: end-to-end milliseconds.
    latency_ms: Vec<Histogram<u64>>,
}

impl Figures {
    fn new() -> Figures {
        Figures {
            latency_ms: LATENCY_RATES
                .iter()
                .map(|_| Histogram::<u64>::new_with_bounds(1, 600_000, 3).expect("histogram"))
                .collect(),
        }
    }
}

/// CPU time used so far: by one process (user and system, every thread), or by the whole
/// machine (every CPU's busy time), read from `/proc`.
fn cpu_of(pid: Option<u32>) -> Duration {
    // The kernel counts both in USER_HZ ticks, 100 a second on Linux.
    let ticks = |n: u64| Duration::from_millis(n * 10);
    match pid {
        Some(pid) => {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // After the command's name (in parentheses): state, then utime and stime are the
            // 12th and 13th fields.
            let after = stat.rsplit_once(") ").map_or("", |(_, rest)| rest);
            let fields: Vec<u64> = after
                .split(' ')
                .skip(11)
                .take(2)
                .filter_map(|f| f.parse().ok())
                .collect();
            ticks(fields.iter().sum())
        }
        None => {
            let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
            let line = stat.lines().next().unwrap_or_default();
            // user nice system idle iowait irq softirq steal: all but idle and iowait.
            let v: Vec<u64> = line.split_whitespace().skip(1).filter_map(|f| f.parse().ok()).collect();
            ticks(
                v.iter()
                    .take(8)
                    .enumerate()
                    .filter(|(i, _)| *i != 3 && *i != 4)
                    .map(|(_, t)| t)
                    .sum(),
            )
        }
    }
}

/// CPU time used so far by each thread of a process: its name (`name#k` for the k-th of that
/// name, by thread id, when several share it) and ticks, by thread id.
fn threads_of(pid: u32) -> BTreeMap<u32, (String, u64)> {
    let mut threads = BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return threads;
    };
    for task in tasks.flatten() {
        let Some(tid) = task.file_name().to_str().and_then(|t| t.parse::<u32>().ok()) else {
            continue;
        };
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        let Some((head, after)) = stat.rsplit_once(") ") else {
            continue;
        };
        let name = head.split_once(" (").map_or("", |(_, n)| n).to_string();
        let ticks: u64 = after
            .split(' ')
            .skip(11)
            .take(2)
            .filter_map(|f| f.parse::<u64>().ok())
            .sum();
        threads.insert(tid, (name, ticks));
    }
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (name, _) in threads.values_mut() {
        let k = seen.entry(name.clone()).or_default();
        *k += 1;
        if *k > 1 {
            name.push_str(&format!("#{k}"));
        }
    }
    threads
}

/// Where a process's CPU went between two readings of [`threads_of`]: the threads that took at
/// least 0.05 µs a record, the costliest first, as `name µs`.
fn threads_per_record(then: &BTreeMap<u32, (String, u64)>, now: &BTreeMap<u32, (String, u64)>, n: usize) -> String {
    let mut used: Vec<(f64, &str)> = now
        .iter()
        .map(|(tid, (name, ticks))| {
            let before = then.get(tid).map_or(0, |(_, t)| *t);
            (ticks.saturating_sub(before) as f64 * 1e4 / n as f64, name.as_str())
        })
        .filter(|(us, _)| *us >= 0.05)
        .collect();
    used.sort_by(|a, b| b.0.total_cmp(&a.0));
    used.iter()
        .map(|(us, name)| format!("{name} {us:.2}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Page faults so far (minor and major): by one process (every thread), or by the whole
/// machine. A fault on a fresh page has the kernel zero it first, at a cost that swings with
/// how cold this machine's memory is: faults a record show an allocator handing memory back
/// and taking it again.
fn faults_of(pid: Option<u32>) -> u64 {
    match pid {
        Some(pid) => {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // After the command's name: minflt is the 8th field, majflt the 10th.
            let after = stat.rsplit_once(") ").map_or("", |(_, rest)| rest);
            let field = |k: usize| after.split(' ').nth(k).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
            field(7) + field(9)
        }
        None => std::fs::read_to_string("/proc/vmstat")
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("pgfault "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0),
    }
}

/// One round of one contender's throughput.
struct Throughput {
    /// Records per second, from the first record out to the last.
    rate: f64,
    /// Over the same span, CPU microseconds per record: the contender's process, and the
    /// whole machine (the contender, the broker, the benchmark's watcher, everything else).
    own_us: f64,
    machine_us: f64,
    /// Over the same span, page faults per record: the contender's process, the machine.
    own_faults: f64,
    machine_faults: f64,
    /// The longest time no record came out, between the first and the last: what a stall of
    /// the contender or the transport costs a round.
    pause_ms: f64,
    /// Per latency rate, this round's p99 in milliseconds: one round's backlog shows here.
    p99_ms: Vec<u64>,
}

/// Runs one contender once: `n` records waiting for it, then the steady rates. `start`
/// starts it and returns the id of the process doing the work, whose CPU is counted.
fn measure(
    broker: &Broker,
    name: &str,
    n: usize,
    into: &mut Figures,
    start: impl FnOnce(&str, &str) -> u32,
) -> Throughput {
    let input = format!("{name}-in");
    let output = format!("{name}-out");
    broker.create_topic(&input, PARTITIONS);
    let producer = broker.producer();
    produce(&producer, &input, &listings(1, n));
    let latency_records: usize = LATENCY_RATES
        .iter()
        .map(|r| (*r as f64 * LATENCY_SECONDS) as usize)
        .sum();
    let arrivals = Arrivals::watch(broker, &output, n + latency_records);
    let pid = start(&input, &output);
    // CPU counted from the first record out to the last, the span the rate is taken over.
    arrivals.wait_for(1, Duration::from_secs(900), name);
    let (own, machine) = (cpu_of(Some(pid)), cpu_of(None));
    let (own_faulted, machine_faulted) = (faults_of(Some(pid)), faults_of(None));
    let threads = threads_of(pid);
    arrivals.wait_for(n, Duration::from_secs(900), name);
    println!(
        "  {name}: CPU µs a record by thread: {}",
        threads_per_record(&threads, &threads_of(pid), n)
    );
    let per_record = |d: Duration| d.as_secs_f64() * 1e6 / n as f64;
    let own_us = per_record(cpu_of(Some(pid)).saturating_sub(own));
    let machine_us = per_record(cpu_of(None).saturating_sub(machine));
    let faults = |now: u64, then: u64| now.saturating_sub(then) as f64 / n as f64;
    let own_faults = faults(faults_of(Some(pid)), own_faulted);
    let machine_faults = faults(faults_of(None), machine_faulted);
    let (rate, pause_ms) = {
        let seen = arrivals.seen.lock().unwrap();
        let mut times: Vec<Instant> = seen.values().map(|a| a.at).collect();
        times.sort_unstable();
        let (first, last) = (times[0], times[times.len() - 1]);
        let pause = times.windows(2).map(|w| w[1] - w[0]).max().unwrap_or_default();
        (n as f64 / (last - first).as_secs_f64(), pause.as_secs_f64() * 1e3)
    };
    // Latency: records one by one at a steady rate, each timed from just before it is produced.
    let mut next_id = n as u64 + 1;
    let mut expected = n;
    let mut p99_ms = Vec::new();
    for (k, per_second) in LATENCY_RATES.iter().enumerate() {
        let m = (*per_second as f64 * LATENCY_SECONDS) as usize;
        let mut sent = HashMap::with_capacity(m);
        let started = Instant::now();
        for (i, record) in listings(next_id, m).iter().enumerate() {
            let due = started + Duration::from_secs_f64(i as f64 / *per_second as f64);
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
            let key = record["id"].to_string();
            let payload = record.to_string();
            sent.insert(record["id"].as_u64().expect("id"), (Instant::now(), wall_ms()));
            while let Err((_, _)) = producer.send(BaseRecord::to(&input).key(&key).payload(&payload)) {
                producer.poll(Duration::from_millis(1));
            }
            producer.poll(Duration::ZERO);
        }
        producer.flush(Duration::from_secs(30)).expect("flushed");
        next_id += m as u64;
        expected += m;
        arrivals.wait_for(expected, Duration::from_secs(300), name);
        let seen = arrivals.seen.lock().unwrap();
        let mut this_round = Histogram::<u64>::new_with_bounds(1, 600_000, 3).expect("histogram");
        // The highest latency of the records sent in each 100 ms: a stall shows as a run of
        // adjacent windows.
        let mut windows: BTreeMap<u64, u64> = BTreeMap::new();
        // The same latency in two halves, by the output message's timestamp: until the
        // contender's producer took the record (the bench's producer, the broker, the
        // contender's fetch and its own work) and from then until it was read (the contender's
        // producer, the broker, the watcher's fetch). Milliseconds, on the wall clock.
        let mut halves = [
            Histogram::<u64>::new_with_bounds(1, 600_000, 3).expect("histogram"),
            Histogram::<u64>::new_with_bounds(1, 600_000, 3).expect("histogram"),
        ];
        for (id, (at, sent_ms)) in &sent {
            let arrival = seen[id];
            if let Some(stamped) = arrival.stamped_ms {
                halves[0].saturating_record((stamped - sent_ms).max(0) as u64);
                halves[1].saturating_record((arrival.wall_ms - stamped).max(0) as u64);
            }
            let ms = arrival.at.duration_since(*at).as_millis().max(1) as u64;
            into.latency_ms[k].saturating_record(ms);
            this_round.saturating_record(ms);
            let window = windows
                .entry(at.duration_since(started).as_millis() as u64 / 100)
                .or_default();
            *window = (*window).max(ms);
        }
        p99_ms.push(this_round.value_at_quantile(0.99));
        let [until, after] = &halves;
        println!(
            "  {name} at {per_second}/s, p50 / p99 until its producer took a record {} / {} ms, from then until it \
             was read {} / {} ms (all: {} / {} ms)",
            until.value_at_quantile(0.5),
            until.value_at_quantile(0.99),
            after.value_at_quantile(0.5),
            after.value_at_quantile(0.99),
            this_round.value_at_quantile(0.5),
            this_round.value_at_quantile(0.99),
        );
        let mut worst: Vec<(u64, u64)> = windows.into_iter().collect();
        worst.sort_unstable_by_key(|(window, ms)| (std::cmp::Reverse(*ms), *window));
        let worst: Vec<String> = worst
            .iter()
            .take(WORST_WINDOWS)
            .map(|(window, ms)| format!("{ms} ms at {:.1} s", *window as f64 / 10.0))
            .collect();
        println!(
            "  {name} at {per_second}/s, the worst 100 ms windows: {}",
            worst.join(", ")
        );
    }
    Throughput {
        rate,
        own_us,
        machine_us,
        own_faults,
        machine_faults,
        pause_ms,
        p99_ms,
    }
}

/// How many of a latency run's worst 100 ms windows (by the highest latency of a record sent
/// in it) each round prints.
const WORST_WINDOWS: usize = 5;

/// (a) The transport's limit: every message produced again unchanged as soon as it is read,
/// nothing parsed or scored. It keeps sluice's guarantee (at-least-once) without ever waiting
/// for the broker: each message's delivery report names the input offset it came from, and
/// once a second it commits, per input partition, the lowest offset not yet delivered (or past
/// the last read when all were). (A `flush` before each commit would stop the loop for as
/// long as the broker takes to answer, a latency spike every second that sluice does not
/// have.) It runs in a process of its own (this benchmark started again with `passthrough
/// BROKERS INPUT OUTPUT`), as sluice and the peer do, so that its CPU is counted alone; it runs
/// until killed.
fn passthrough(brokers: &str, input: &str, output: &str) {
    // librdkafka allocates from mimalloc's heap here as in sluice (`src/c_heap.rs`), so that
    // neither gets an allocator the other has not.
    assert!(
        sluice::c_heap::serves_malloc(64),
        "the passthrough's malloc is not mimalloc's"
    );
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("raw-passthrough-{input}"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", fetch_wait_ms().to_string())
        .set("fetch.queue.backoff.ms", fetch_queue_backoff_ms().to_string())
        .create()
        .expect("consumer");
    consumer.subscribe(&[input]).expect("subscribe");
    let producer: BaseProducer<Delivered> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .create_with_context(Delivered::default())
        .expect("producer");
    // Per input partition: the offset after the last message read.
    let mut read: BTreeMap<i32, i64> = BTreeMap::new();
    let mut committed = Instant::now();
    loop {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            let (partition, offset) = (m.partition(), m.offset());
            producer.context().sent(partition, offset);
            read.insert(partition, offset + 1);
            let mut record = BaseRecord::<[u8], [u8], _>::with_opaque_to(output, Box::new((partition, offset)))
                .payload(m.payload().unwrap_or_default());
            if let Some(key) = m.key() {
                record = record.key(key);
            }
            while let Err((_, back)) = producer.send(record) {
                producer.poll(Duration::from_millis(1));
                record = back;
            }
        }
        // Delivery reports, also while no input comes.
        producer.poll(Duration::ZERO);
        if committed.elapsed() >= Duration::from_secs(1) {
            committed = Instant::now();
            // Every partition in `read` has an entry in `pending` (`sent` comes first); an
            // empty set means all read was delivered. One member per group: no rebalance.
            let mut list = TopicPartitionList::new();
            let pending = producer.context().pending.lock().unwrap();
            for (&partition, &after) in &read {
                let next = pending
                    .get(&partition)
                    .and_then(|p| p.first().copied())
                    .unwrap_or(after);
                list.add_partition_offset(input, partition, Offset::Offset(next))
                    .expect("offset");
            }
            drop(pending);
            if list.count() > 0 {
                let _ = consumer.commit(&list, CommitMode::Async);
            }
        }
    }
}

/// The passthrough's messages sent and not yet delivered, by input partition and offset.
#[derive(Default)]
struct Delivered {
    pending: Mutex<BTreeMap<i32, BTreeSet<i64>>>,
}

impl Delivered {
    fn sent(&self, partition: i32, offset: i64) {
        self.pending
            .lock()
            .unwrap()
            .entry(partition)
            .or_default()
            .insert(offset);
    }
}

impl rdkafka::ClientContext for Delivered {}

impl rdkafka::producer::ProducerContext for Delivered {
    type DeliveryOpaque = Box<(i32, i64)>;

    fn delivery(&self, result: &rdkafka::producer::DeliveryResult<'_>, from: Box<(i32, i64)>) {
        // A failed delivery stays pending: its offset is never committed past.
        if result.is_ok() {
            if let Some(p) = self.pending.lock().unwrap().get_mut(&from.0) {
                p.remove(&from.1);
            }
        }
    }
}

/// The passthrough as a process of its own: this benchmark started again with `passthrough
/// BROKERS INPUT OUTPUT`.
fn start_passthrough(broker: &Broker, input: &str, output: &str) -> std::process::Child {
    Command::new(std::env::current_exe().expect("this benchmark"))
        .args(["passthrough", &broker.address, input, output])
        .spawn()
        .expect("the passthrough starts")
}

/// A broker of its own for one contender's run. In memory: under this load the SQLite storage
/// answered an offset commit only after half a minute now and then, and the group coordinator
/// dropped the consumer. Not shared: tansu keeps every record in memory and slows as they
/// accumulate, so on one broker for all a contender run later in the round met a slower broker
/// than one run earlier (the fixed order passthrough, sluice, peer favoured the passthrough).
/// With `SLUICE_BENCH_SHARED_BROKER=1`, one broker for all, as before, to compare.
fn fresh_broker(shared: &Option<Broker>) -> BrokerRef<'_> {
    match shared {
        Some(broker) => BrokerRef::Shared(broker),
        None => {
            warm_memory();
            BrokerRef::Own(Box::new(Broker::start_in_memory()))
        }
    }
}

/// Touches and frees `SLUICE_BENCH_WARM_MIB` (1,024 by default) of fresh memory before each
/// contender's broker starts, and prints what a page cost. This machine is a virtual one whose
/// free memory is handed back to the host after a while: a first touch of such a page costs
/// 10–30 µs instead of about 2, and a fresh broker's storage of 200,000 records is hundreds of
/// MiB of pages. The figure printed says how cold the machine's memory was before the run; the
/// touch makes the pages just freed the next ones handed out, warm for some seconds.
fn warm_memory() {
    let mib: usize = std::env::var("SLUICE_BENCH_WARM_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let Some(bytes) = mib.checked_mul(1 << 20).filter(|b| *b > 0) else {
        return;
    };
    // SAFETY: sysconf only reads a constant of the system.
    let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
    let started = Instant::now();
    // SAFETY: an anonymous private mapping this function alone uses, written within its length
    // and unmapped before it returns.
    let touched = unsafe {
        let base = libc::mmap(
            std::ptr::null_mut(),
            bytes,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        if base == libc::MAP_FAILED {
            println!(
                "  (could not map {mib} MiB to warm: {})",
                std::io::Error::last_os_error()
            );
            return;
        }
        for offset in (0..bytes).step_by(page) {
            std::ptr::write_volatile((base as *mut u8).add(offset), 1);
        }
        let touched = started.elapsed();
        libc::munmap(base, bytes);
        touched
    };
    let per_page = touched.as_secs_f64() * 1e6 / (bytes / page) as f64;
    println!("  warmed {mib} MiB of memory before the next broker: {per_page:.1} µs a page");
}

/// Whether every contender shares one broker (`SLUICE_BENCH_SHARED_BROKER=1`).
fn shared_broker() -> bool {
    std::env::var("SLUICE_BENCH_SHARED_BROKER").as_deref() == Ok("1")
}

/// A contender's broker: its own, stopped when dropped, or the shared one.
enum BrokerRef<'a> {
    Own(Box<Broker>),
    Shared(&'a Broker),
}

impl std::ops::Deref for BrokerRef<'_> {
    type Target = Broker;
    fn deref(&self) -> &Broker {
        match self {
            BrokerRef::Own(broker) => broker,
            BrokerRef::Shared(broker) => broker,
        }
    }
}

/// sluice's pipeline: Kafka → validator → scorer → Kafka, or with `SLUICE_BENCH_SLUICE=bare`
/// Kafka → Kafka only (records decoded into columns and written back as text, nothing
/// validated or scored: what its transport and JSON cost beside the raw passthrough's).
fn sluice_pipeline(broker: &Broker, input: &str, output: &str) -> String {
    let root = root();
    let (middle, published, failed) = if bare() {
        (String::new(), "listings", "listings.errors")
    } else {
        (
            format!(
                r#"
  check:
    kind: validator
    inputs: [listings]
    schema: {schema}
  price:
    kind: scorer
    inputs: [check.valid]
    model: {{ name: house-price, folder: {models}, version: "2" }}
    features: {{ input: features, fields: [{fields}] }}
    outputs: [{{ tensor: variable, field: prediction }}]
    batch: {{ max_batch: 256 }}"#,
                models = root.join("examples/house-prices/models").display(),
                schema = root.join("schemas/records/listing.schema.json").display(),
                fields = feature_names().join(", "),
            ),
            "price",
            "listings.errors, check.invalid, price.errors",
        )
    };
    format!(
        r#"
pipeline: bench
defaults:
  kafka: {{ brokers: "{brokers}" }}
streamlets:
  listings:
    kind: ingress
    source: {{ type: kafka, topic: {input}, options: {{ fetch.wait.max.ms: "{fetch}", fetch.queue.backoff.ms: "{backoff}" }} }}{middle}
  publish:
    kind: egress
    inputs: [{published}]
    sink: {{ type: kafka, topic: {output}, key: id }}
  failed:
    kind: egress
    inputs: [{failed}]
    sink: {{ type: blackhole }}
"#,
        brokers = broker.address,
        fetch = fetch_wait_ms(),
        backoff = fetch_queue_backoff_ms(),
    )
}

/// The sluice that runs: this build's, or another build's (`SLUICE_BENCH_BINARY`), to compare two
/// builds in the same hour.
fn sluice_binary() -> String {
    std::env::var("SLUICE_BENCH_BINARY").unwrap_or_else(|_| env!("CARGO_BIN_EXE_sluice").to_string())
}

/// Another build of sluice (or a script that `exec`s one with other settings: the process
/// measured and stopped is the one started) that runs as a contender of its own beside sluice
/// in every round, right after it in even rounds and right before it in odd ones
/// (`SLUICE_BENCH_BINARY_B`): two builds compared in the same rounds, the machine's mood shared.
fn sluice_b_binary() -> Option<String> {
    std::env::var("SLUICE_BENCH_BINARY_B").ok().filter(|b| !b.is_empty())
}

/// `sluice run` of the benchmark's pipeline from `binary`, its stderr into `log`.
fn start_sluice(
    binary: &str,
    broker: &Broker,
    input: &str,
    output: &str,
    dir: &std::path::Path,
) -> std::process::Child {
    let file = dir.join(format!("{input}.yaml"));
    std::fs::write(&file, sluice_pipeline(broker, input, output)).expect("pipeline");
    Command::new(binary)
        .arg("run")
        .arg(&file)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join(format!("{input}.log"))).expect("log"))
        .spawn()
        .expect("sluice runs")
}

/// A contender's process, killed if the benchmark unwinds (a failed assertion in `measure`,
/// say) before it is stopped: no contender outlives the benchmark.
struct Running(Option<std::process::Child>);

impl Running {
    fn new(child: std::process::Child) -> Running {
        Running(Some(child))
    }

    /// The process, to stop or wait for as the benchmark means to.
    fn take(mut self) -> std::process::Child {
        self.0.take().expect("the process is there until taken")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Stops a sluice with SIGTERM; it must end cleanly.
fn stop_sluice(mut child: std::process::Child) {
    let stopped = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(
        stopped.success() && child.wait().expect("exit").success(),
        "sluice did not stop cleanly"
    );
}

/// Whether the passthrough runs in sluice's place too (`SLUICE_BENCH_SLUICE=passthrough`): an
/// A/A run, whose "sluice adds" figures are what the benchmark's noise alone gives.
fn twice() -> bool {
    std::env::var("SLUICE_BENCH_SLUICE").as_deref() == Ok("passthrough")
}

/// Whether sluice runs bare (`SLUICE_BENCH_SLUICE=bare`).
fn bare() -> bool {
    std::env::var("SLUICE_BENCH_SLUICE").as_deref() == Ok("bare")
}

fn line(label: &str, rounds: &[Throughput], f: &Figures) -> String {
    let of = |pick: fn(&Throughput) -> f64| rounds.iter().map(pick).collect::<Vec<_>>();
    let rates = rates(rounds);
    let mut text = format!(
        "  {label:<34} {:>9.0} records/s (rounds: {})\n  {:<34} longest pause in the output: {} ms\n  {:<34} CPU per record: its own {:.2} µs, the machine's {:.2} µs (medians)\n  {:<34} page faults per record: its own {:.3}, the machine's {:.3} (medians)",
        median(&rates),
        rates.iter().map(|r| format!("{r:.0}")).collect::<Vec<_>>().join(", "),
        "",
        rounds.iter().map(|t| format!("{:.0}", t.pause_ms)).collect::<Vec<_>>().join(", "),
        "",
        median(&of(|t| t.own_us)),
        median(&of(|t| t.machine_us)),
        "",
        median(&of(|t| t.own_faults)),
        median(&of(|t| t.machine_faults)),
    );
    for (k, (per_second, h)) in LATENCY_RATES.iter().zip(&f.latency_ms).enumerate() {
        text.push_str(&format!(
            "\n  {:<34} at {per_second:>6}/s latency p50 {:>5} ms  p99 {:>5} ms  max {:>5} ms  (p99 a round: {} ms)",
            "",
            h.value_at_quantile(0.5),
            h.value_at_quantile(0.99),
            h.max(),
            rounds
                .iter()
                .map(|t| t.p99_ms[k].to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    text
}

/// What the throughput target (65% of the passthrough's rate) asks of the machine's CPU: the
/// CPU a record that rate allows with every core busy, what the rest of the machine (the
/// broker, the watcher) took a record while sluice ran, and so what that leaves sluice's own
/// process, beside what it took (medians of the rounds).
fn target_budget(raw: &[Throughput], sluice: &[Throughput]) -> String {
    const SHARE: f64 = 0.65;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let rate = SHARE * median(&rates(raw));
    let budget = cores * 1e6 / rate;
    let outside = median(&sluice.iter().map(|t| t.machine_us - t.own_us).collect::<Vec<_>>());
    let own = median(&sluice.iter().map(|t| t.own_us).collect::<Vec<_>>());
    format!(
        "  {:.0}% of the passthrough is {rate:.0} records/s: {cores} busy cores allow {budget:.2} µs of the machine's CPU a record; the rest of the machine (broker, watcher) took {outside:.2} µs a record beside sluice, which leaves sluice {:.2} µs of its own (it took {own:.2} µs)",
        100.0 * SHARE,
        budget - outside,
    )
}

fn rates(rounds: &[Throughput]) -> Vec<f64> {
    rounds.iter().map(|t| t.rate).collect()
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let [_, mode, brokers, input, output] = &args[..] {
        if mode == "passthrough" {
            return passthrough(brokers, input, output);
        }
    }
    let root = root();
    let benchmarking = std::env::args().any(|a| a == "--bench");
    let number = |name: &str, default: usize| -> usize {
        std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
    };
    let n = number("SLUICE_BENCH_RECORDS", if benchmarking { 200_000 } else { 2_000 });
    let rounds = number("SLUICE_BENCH_ROUNDS", if benchmarking { 3 } else { 1 }).max(1);
    let python = root.join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/setup-python-peer.sh (make bench does)",
        python.display()
    );
    println!(
        "Kafka → {} → Kafka, {}, {PARTITIONS} partitions, \
         fetch.wait.max.ms {} and fetch.queue.backoff.ms {} for every consumer; {rounds} rounds of: {n} records waiting, then \
         {LATENCY_SECONDS} s at each of {LATENCY_RATES:?} records/s for latency\n",
        if twice() {
            "(the passthrough, twice)"
        } else if bare() {
            "(sluice: nothing)"
        } else {
            "validator → house-price scorer"
        },
        if shared_broker() {
            "one tansu broker (in memory) shared by every contender"
        } else {
            "a fresh tansu broker (in memory) for each contender in each round"
        },
        fetch_wait_ms(),
        fetch_queue_backoff_ms()
    );
    let dir = tempfile::tempdir().expect("dir");
    let (mut raw, mut sluice, mut peer) = (Figures::new(), Figures::new(), Figures::new());
    let (mut raw_rates, mut sluice_rates, mut peer_rates) = (Vec::new(), Vec::new(), Vec::new());
    let (mut sluice_mib, mut peer_mib) = (0, 0);
    // The second build, when `SLUICE_BENCH_BINARY_B` names one.
    let (mut b, mut b_rates, mut b_mib) = (Figures::new(), Vec::new(), 0);
    let mut summary = String::new();
    let shared = shared_broker().then(Broker::start_in_memory);
    for round in 0..rounds {
        let broker = fresh_broker(&shared);
        let mut relay = None;
        raw_rates.push(measure(
            &broker,
            &format!("raw{round}"),
            n,
            &mut raw,
            |input, output| {
                let child = start_passthrough(&broker, input, output);
                let pid = child.id();
                relay = Some(Running::new(child));
                pid
            },
        ));
        // Killed: it never ends by itself.
        drop(relay);

        drop(broker);

        // sluice runs as its own process, as the peer does, so their memory compares.
        let mut run_a = || {
            let broker = fresh_broker(&shared);
            let mut run = None;
            sluice_rates.push(measure(
                &broker,
                &format!("sluice{round}"),
                n,
                &mut sluice,
                |input, output| {
                    if twice() {
                        // The passthrough again, in sluice's place: what the two differ by is noise.
                        let child = start_passthrough(&broker, input, output);
                        let pid = child.id();
                        run = Some((PeakMemory::watch(pid), Running::new(child)));
                        return pid;
                    }
                    let child = start_sluice(&sluice_binary(), &broker, input, output, dir.path());
                    let pid = child.id();
                    run = Some((PeakMemory::watch(pid), Running::new(child)));
                    pid
                },
            ));
            let (memory, running) = run.expect("sluice ran");
            sluice_mib = sluice_mib.max(memory.mib());
            if twice() {
                drop(running);
            } else {
                stop_sluice(running.take());
            }
        };
        let mut run_b = |binary: &str| {
            let broker = fresh_broker(&shared);
            let mut run = None;
            b_rates.push(measure(
                &broker,
                &format!("sluiceB{round}"),
                n,
                &mut b,
                |input, output| {
                    let child = start_sluice(binary, &broker, input, output, dir.path());
                    let pid = child.id();
                    run = Some((PeakMemory::watch(pid), Running::new(child)));
                    pid
                },
            ));
            let (memory, running) = run.expect("sluice B ran");
            b_mib = b_mib.max(memory.mib());
            stop_sluice(running.take());
        };
        // With a second build, the two take turns at going first: whatever the machine does
        // to the one that runs right after the passthrough falls on each in turn.
        match sluice_b_binary() {
            Some(binary) if round % 2 == 1 => {
                run_b(&binary);
                run_a();
            }
            Some(binary) => {
                run_a();
                run_b(&binary);
            }
            None => run_a(),
        }

        let broker = fresh_broker(&shared);
        let mut child = None;
        let mut memory = None;
        let total = n + LATENCY_RATES
            .iter()
            .map(|r| (*r as f64 * LATENCY_SECONDS) as usize)
            .sum::<usize>();
        peer_rates.push(measure(
            &broker,
            &format!("python{round}"),
            n,
            &mut peer,
            |input, output| {
                let started = Command::new(&python)
                    .arg(root.join("benches/peer/python_kafka_scorer.py"))
                    .args(["--brokers", &broker.address, "--input", input, "--output", output])
                    .arg("--model")
                    .arg(root.join("examples/house-prices/models/house-price-v2.onnx"))
                    .args(["--features", &feature_names().join(",")])
                    .args(["--count", &total.to_string(), "--idle-timeout", "5"])
                    .args(["--group", &format!("python-peer-{input}")])
                    .args(["--fetch-wait-ms", &fetch_wait_ms().to_string()])
                    .args(["--fetch-queue-backoff-ms", &fetch_queue_backoff_ms().to_string()])
                    .stdout(Stdio::piped())
                    .spawn()
                    .expect("the Python peer starts");
                let pid = started.id();
                memory = Some(PeakMemory::watch(pid));
                child = Some(Running::new(started));
                pid
            },
        ));
        peer_mib = peer_mib.max(memory.expect("the peer ran").mib());
        summary = child
            .expect("peer")
            .take()
            .wait_with_output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default();
    }

    println!("{}", line("(a) raw rdkafka passthrough", &raw_rates, &raw));
    println!(
        "{}",
        line(
            if twice() {
                "the passthrough again (A/A)"
            } else if bare() {
                "sluice, bare: Kafka → Kafka"
            } else {
                "sluice: Kafka → validator → scorer → Kafka"
            },
            &sluice_rates,
            &sluice
        )
    );
    println!("  {:<34} peak RSS {sluice_mib} MiB", "");
    println!("{}", line("(b) Python peer (confluent-kafka)", &peer_rates, &peer));
    println!("  {:<34} peak RSS {peer_mib} MiB", "");
    println!();
    println!(
        "  sluice / raw passthrough: {:.0}% of the throughput; sluice / Python peer: {:.1}x the throughput",
        100.0 * median(&rates(&sluice_rates)) / median(&rates(&raw_rates)),
        median(&rates(&sluice_rates)) / median(&rates(&peer_rates))
    );
    // Each round's contenders ran one after the other, in the machine's same mood: the
    // ratios within a round, and their median.
    let paired =
        |other: &[Throughput]| -> Vec<f64> { sluice_rates.iter().zip(other).map(|(s, o)| s.rate / o.rate).collect() };
    let (vs_raw, vs_peer) = (paired(&raw_rates), paired(&peer_rates));
    let list = |ratios: &[f64], show: fn(f64) -> String| ratios.iter().map(|r| show(*r)).collect::<Vec<_>>().join(", ");
    println!(
        "  within each round: {} of the passthrough (median {:.0}%), {} the peer (median {:.1}x)",
        list(&vs_raw, |r| format!("{:.0}%", 100.0 * r)),
        100.0 * median(&vs_raw),
        list(&vs_peer, |r| format!("{r:.1}x")),
        median(&vs_peer)
    );
    if !bare() && !twice() {
        println!("{}", target_budget(&raw_rates, &sluice_rates));
    }
    for (k, per_second) in LATENCY_RATES.iter().enumerate() {
        println!(
            "  at {per_second}/s sluice adds {} ms at p50 and {} ms at p99 over the passthrough",
            sluice.latency_ms[k].value_at_quantile(0.5) as i64 - raw.latency_ms[k].value_at_quantile(0.5) as i64,
            sluice.latency_ms[k].value_at_quantile(0.99) as i64 - raw.latency_ms[k].value_at_quantile(0.99) as i64
        );
    }
    if let Some(binary) = sluice_b_binary() {
        println!();
        println!("{}", line(&format!("sluice B: {binary}"), &b_rates, &b));
        println!("  {:<34} peak RSS {b_mib} MiB", "");
        let within: Vec<f64> = b_rates
            .iter()
            .zip(&sluice_rates)
            .map(|(b, a)| b.rate / a.rate)
            .collect();
        let own: Vec<f64> = b_rates
            .iter()
            .zip(&sluice_rates)
            .map(|(b, a)| b.own_us / a.own_us)
            .collect();
        println!(
            "  B / sluice within each round: {} of the throughput (median {:.0}%), {} of the own CPU a record (median {:.0}%)",
            list(&within, |r| format!("{:.0}%", 100.0 * r)),
            100.0 * median(&within),
            list(&own, |r| format!("{:.0}%", 100.0 * r)),
            100.0 * median(&own)
        );
        for (k, per_second) in LATENCY_RATES.iter().enumerate() {
            println!(
                "  at {per_second}/s B adds {} ms at p50 and {} ms at p99 over sluice",
                b.latency_ms[k].value_at_quantile(0.5) as i64 - sluice.latency_ms[k].value_at_quantile(0.5) as i64,
                b.latency_ms[k].value_at_quantile(0.99) as i64 - sluice.latency_ms[k].value_at_quantile(0.99) as i64
            );
        }
    }
    println!("  the peer's own summary (last round): {summary}");
}
