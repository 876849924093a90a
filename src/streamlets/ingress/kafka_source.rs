//! The Kafka source: reads JSON records from a topic in a consumer group, and commits an
//! offset only once every record at or below it is done with downstream (written by the
//! egresses it reaches, routed to an outlet, or filtered out). That makes delivery
//! at-least-once end to end: after a crash, a rebalance or a stop, what was not finished is
//! read again, by this process or by another in the group.

use crate::streamlets::kind::SourcePort;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use futures::{FutureExt, StreamExt};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::error::KafkaResult;
use rdkafka::statistics::Statistics;
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};
use serde_json::Value;

use super::config::{KafkaSourceConfig, StartFrom};
use crate::flow::{BatchBuilder, Column};
use crate::kafka::KafkaSettings;
use crate::kafka::{self, KafkaError};
use crate::streamlets::io::{Ack, Acks, Telemetry};
use crate::streamlets::{Batch, Io, Stop};

/// How often offsets that became committable are committed while running.
const COMMIT_EVERY: Duration = Duration::from_secs(1);
/// How long a revoke waits for the records in flight from its partitions before it commits
/// what is done; the rest is read again by the partition's next owner.
const REVOKE_WAIT: Duration = Duration::from_secs(10);
/// How long a stopping source waits for its records in flight to be written.
const STOP_WAIT: Duration = Duration::from_secs(60);
/// How often librdkafka reports its statistics, where the consumer lag comes from.
const STATISTICS_EVERY_MS: &str = "1000";

/// Where a range of offsets handed downstream stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    InFlight,
    Done,
    /// Dropped before it was finished (a streamlet failed): nothing at or after it is
    /// committed by this assignment.
    Failed,
}

/// The ranges of one assigned partition handed downstream, by first offset.
#[derive(Debug)]
struct Partition {
    /// The epoch at which it was assigned: messages received before belong to an old
    /// assignment.
    assigned_at: u64,
    ranges: BTreeMap<i64, (i64, Status)>,
    /// The next offset to commit: every offset below it is done.
    done_until: Option<i64>,
    committed: Option<i64>,
    warned: bool,
}

#[derive(Debug, Default)]
struct State {
    partitions: BTreeMap<i32, Partition>,
}

/// Tracks which offsets of a source's assigned partitions are done, and so may be committed.
#[derive(Debug, Default)]
pub struct Offsets {
    topic: String,
    state: Mutex<State>,
    settled: Condvar,
    /// Counts assignments and revocations: changed only under the state's lock, read without
    /// it (once a message).
    epoch: AtomicU64,
}

impl Offsets {
    pub fn new(topic: &str) -> Arc<Self> {
        Arc::new(Offsets {
            topic: topic.to_string(),
            ..Offsets::default()
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The current epoch; read it when a message arrives.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    pub fn assign(&self, partitions: &[i32]) {
        let mut state = self.lock();
        let epoch = self.epoch.fetch_add(1, Ordering::AcqRel) + 1;
        for &p in partitions {
            state.partitions.entry(p).or_insert(Partition {
                assigned_at: epoch,
                ranges: BTreeMap::new(),
                done_until: None,
                committed: None,
                warned: false,
            });
        }
    }

    pub fn revoke(&self, partitions: &[i32]) {
        let mut state = self.lock();
        self.epoch.fetch_add(1, Ordering::AcqRel);
        for p in partitions {
            state.partitions.remove(p);
        }
        self.settled.notify_all();
    }

    /// Starts tracking offsets `first..=last` of a partition, for messages received at
    /// `received_at`. `None` when the partition was revoked since: the messages belong to its
    /// next owner, which reads them again from the last commit.
    pub fn track(self: &Arc<Self>, received_at: u64, partition: i32, first: i64, last: i64) -> Option<Ack> {
        let mut state = self.lock();
        let p = state.partitions.get_mut(&partition)?;
        if p.assigned_at > received_at {
            return None;
        }
        p.ranges.insert(first, (last, Status::InFlight));
        let assigned_at = p.assigned_at;
        let offsets = self.clone();
        Some(Ack::new(move |ok| offsets.settle(partition, assigned_at, first, ok)))
    }

    fn settle(&self, partition: i32, assigned_at: u64, first: i64, ok: bool) {
        let mut state = self.lock();
        let Some(p) = state
            .partitions
            .get_mut(&partition)
            .filter(|p| p.assigned_at == assigned_at)
        else {
            return;
        };
        if let Some((_, status)) = p.ranges.get_mut(&first) {
            *status = if ok { Status::Done } else { Status::Failed };
        }
        while let Some(entry) = p.ranges.first_entry() {
            let (last, status) = *entry.get();
            match status {
                Status::Done => {
                    entry.remove();
                    p.done_until = Some(p.done_until.unwrap_or(0).max(last + 1));
                }
                Status::Failed => {
                    if !p.warned {
                        p.warned = true;
                        tracing::warn!(
                            topic = %self.topic,
                            partition,
                            offsets = %format!("{}..={last}", entry.key()),
                            "records were dropped before they were written; this partition's offsets are not \
                             committed past them, so they are read again after a restart or rebalance"
                        );
                    }
                    break;
                }
                Status::InFlight => break,
            }
        }
        self.settled.notify_all();
    }

    /// Offsets to commit: per partition (of `only`, or all), the next offset when it moved.
    pub fn to_commit(&self, only: Option<&[i32]>) -> Vec<(i32, i64)> {
        self.lock()
            .partitions
            .iter()
            .filter(|(p, _)| only.is_none_or(|o| o.contains(p)))
            .filter_map(|(p, state)| {
                let done = state.done_until?;
                (state.committed < Some(done)).then_some((*p, done))
            })
            .collect()
    }

    /// A commit of these offsets failed: they are committed again at the next chance.
    pub fn not_committed(&self, list: &TopicPartitionList) {
        let mut state = self.lock();
        for element in list.elements_for_topic(&self.topic) {
            if let (Some(p), Offset::Offset(offset)) =
                (state.partitions.get_mut(&element.partition()), element.offset())
            {
                if p.committed == Some(offset) {
                    p.committed = None;
                }
            }
        }
    }

    pub fn committed(&self, offsets: &[(i32, i64)]) {
        let mut state = self.lock();
        for (p, offset) in offsets {
            if let Some(partition) = state.partitions.get_mut(p) {
                partition.committed = Some(partition.committed.unwrap_or(0).max(*offset));
            }
        }
    }

    /// Ranges still in flight in the partitions of `only` (or all).
    fn in_flight(state: &State, only: Option<&[i32]>) -> usize {
        state
            .partitions
            .iter()
            .filter(|(p, _)| only.is_none_or(|o| o.contains(p)))
            .map(|(_, p)| p.ranges.values().filter(|(_, s)| *s == Status::InFlight).count())
            .sum()
    }

    /// Waits (blocking) until nothing of `only` (or of any partition) is in flight, or
    /// `timeout`; how many ranges are still in flight.
    pub fn wait_settled(&self, only: Option<&[i32]>, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        let mut state = self.lock();
        loop {
            let left = Self::in_flight(&state, only);
            let now = Instant::now();
            if left == 0 || now >= deadline {
                return left;
            }
            state = self
                .settled
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

/// Commits what is done (of `only`, or every partition); errors are logged, not fatal: what
/// is not committed is read again, never lost.
fn commit_done<C: Consumer<X>, X: ConsumerContext>(
    consumer: &C,
    offsets: &Offsets,
    only: Option<&[i32]>,
    mode: CommitMode,
) {
    let done = offsets.to_commit(only);
    if done.is_empty() {
        return;
    }
    let mut list = TopicPartitionList::new();
    for (partition, offset) in &done {
        if let Err(e) = list.add_partition_offset(&offsets.topic, *partition, Offset::Offset(*offset)) {
            tracing::warn!(topic = %offsets.topic, partition, error = %e, "cannot commit an offset");
            return;
        }
    }
    match consumer.commit(&list, mode) {
        Ok(()) => offsets.committed(&done),
        Err(e) => tracing::warn!(topic = %offsets.topic, error = %e, "commit failed; what it held is read again"),
    }
}

/// The `metadata` field of records from `topic`: `{topic, partition, offset, timestamp}` each.
fn metadata_column(topic: &str, places: &[(i32, i64, Option<i64>)]) -> Column {
    let field = |name: &str, column: Column| crate::flow::Field {
        name: name.into(),
        column,
    };
    let (partitions, offsets, times): (Vec<i64>, Vec<i64>, Vec<Option<i64>>) =
        places.iter().map(|&(p, o, t)| (i64::from(p), o, t)).collect();
    Column::objects(Batch::new(
        places.len(),
        vec![
            field("topic", Column::repeated(topic, places.len())),
            field("partition", Column::ints(partitions.into())),
            field("offset", Column::ints(offsets.into())),
            field("timestamp", Column::ints(times.into())),
        ],
    ))
}

/// The consumer's callbacks: on revoke, wait for what is in flight from the revoked
/// partitions and commit what is done; on assign, start tracking.
struct SourceContext {
    offsets: Arc<Offsets>,
    streamlet: String,
    telemetry: Telemetry,
}

impl ClientContext for SourceContext {
    /// The lag per partition this consumer fetches, from librdkafka's own statistics (the
    /// high watermark of the last fetch less the position handed to sluice): no request of
    /// its own, nothing to wait for when the broker is slow or away.
    fn stats(&self, statistics: Statistics) {
        let Some(topic) = statistics.topics.get(&self.offsets.topic) else {
            return;
        };
        let lags: Vec<(i32, i64)> = topic
            .partitions
            .values()
            .filter(|p| p.partition >= 0 && p.fetch_state == "active" && p.consumer_lag >= 0)
            .map(|p| (p.partition, p.consumer_lag))
            .collect();
        self.telemetry.set_topic_lag(&self.offsets.topic, &lags);
    }
}

fn partitions_of(list: &TopicPartitionList, topic: &str) -> Vec<i32> {
    list.elements_for_topic(topic).iter().map(|e| e.partition()).collect()
}

impl ConsumerContext for SourceContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(list) = rebalance {
            let partitions = partitions_of(list, &self.offsets.topic);
            if partitions.is_empty() {
                return;
            }
            if consumer.assignment_lost() {
                // The group went on without this consumer (its session expired while the
                // broker was away, say): the partitions may be another's already, and a
                // commit would be refused. Their next owner reads what was not committed.
                self.offsets.revoke(&partitions);
                tracing::warn!(streamlet = %self.streamlet, topic = %self.offsets.topic, ?partitions, "partitions lost; what was not committed is read again");
                return;
            }
            // Waiting, and a synchronous commit (up to the session timeout while a broker is
            // away), must not hold the runtime's worker: it may be the only one.
            let left = crate::streamlets::blocking(|| {
                let left = self.offsets.wait_settled(Some(&partitions), REVOKE_WAIT);
                commit_done(consumer, &self.offsets, Some(&partitions), CommitMode::Sync);
                left
            });
            self.offsets.revoke(&partitions);
            tracing::info!(streamlet = %self.streamlet, topic = %self.offsets.topic, ?partitions, ranges_not_finished = left, "partitions revoked");
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(list) = rebalance {
            let partitions = partitions_of(list, &self.offsets.topic);
            self.offsets.assign(&partitions);
            tracing::info!(streamlet = %self.streamlet, topic = %self.offsets.topic, ?partitions, "partitions assigned");
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        if let Err(e) = result {
            self.offsets.not_committed(offsets);
            tracing::warn!(streamlet = %self.streamlet, topic = %self.offsets.topic, error = %e, "commit failed; what it held is read again");
        }
    }
}

type SourceConsumer = StreamConsumer<SourceContext>;

/// The consumer, closed off the runtime's worker when dropped: closing leaves the group (a
/// revoke, its synchronous commit) and waits for librdkafka, which may take the session
/// timeout while a broker is away; the worker may be the runtime's only one.
struct Closing(Option<SourceConsumer>);

impl std::ops::Deref for Closing {
    type Target = SourceConsumer;

    fn deref(&self) -> &SourceConsumer {
        self.0.as_ref().expect("the consumer is there until dropped")
    }
}

impl Drop for Closing {
    fn drop(&mut self) {
        if let Some(consumer) = self.0.take() {
            crate::streamlets::blocking(move || drop(consumer));
        }
    }
}

/// The source's consumer configuration: the settings with sluice's consumer defaults and
/// statistics, in `group`, committing only by itself, starting where `config` says.
fn client_config(config: &KafkaSourceConfig, settings: &KafkaSettings, group: &str) -> rdkafka::ClientConfig {
    let mut client = kafka::consumer_config(settings);
    if !settings.options.contains_key("statistics.interval.ms") {
        client.set("statistics.interval.ms", STATISTICS_EVERY_MS);
    }
    client.set("group.id", group).set("enable.auto.commit", "false").set(
        "auto.offset.reset",
        match config.start {
            StartFrom::Earliest => "earliest",
            StartFrom::Latest => "latest",
        },
    );
    client
}

/// A batch of messages, `first` and what follows it: what librdkafka has fetched already
/// joins without waiting for more; only while downstream is busy (`out` congested) do
/// messages arriving meanwhile join it too, until downstream has room again or the linger is
/// over. At most `most`; each message with the epoch it was received at.
async fn gather<M, S>(
    first: (M, u64),
    incoming: &mut S,
    epoch: impl Fn() -> u64,
    out: &crate::flow::ports::Outlet,
    most: usize,
    linger: Duration,
) -> Vec<(M, u64)>
where
    S: futures::Stream<Item = M> + Unpin,
{
    let mut messages = vec![first];
    let linger_until = tokio::time::Instant::now() + linger;
    while messages.len() < most {
        if let Some(Some(m)) = incoming.next().now_or_never() {
            messages.push((m, epoch()));
            continue;
        }
        if !out.congested() {
            break;
        }
        tokio::select! {
            biased;
            message = incoming.next() => match message {
                Some(m) => messages.push((m, epoch())),
                None => break,
            },
            _ = out.room() => break,
            _ = tokio::time::sleep_until(linger_until) => break,
        }
    }
    messages
}

/// Reads JSON records from a Kafka topic in batches, each carrying the acknowledgements of
/// its offsets; commits what is done every second, on revoke and on stop.
pub async fn consume(config: KafkaSourceConfig, settings: KafkaSettings, group: String, io: Io) -> Result<(), Stop> {
    let offsets = Offsets::new(&config.topic);
    let client = client_config(&config, &settings, &group);
    let context = SourceContext {
        offsets: offsets.clone(),
        streamlet: io.name.clone(),
        telemetry: io.telemetry.clone(),
    };
    let consumer = Closing(Some(client.create_with_context(context).map_err(|e| {
        KafkaError::Client {
            what: format!("Kafka consumer for `{}`", config.topic),
            reason: e.to_string(),
        }
    })?));
    consumer.subscribe(&[&config.topic]).map_err(|e| KafkaError::Client {
        what: format!("cannot subscribe to `{}`", config.topic),
        reason: e.to_string(),
    })?;
    let source = format!("kafka:{}", config.topic);
    let out = io.outlets.get(SourcePort::Out)?;
    let errors = io.outlets.get(SourcePort::Errors)?;
    let mut committed_at = Instant::now();
    // One stream for the consumer's life: a message read costs no registration of a waker.
    let mut incoming = consumer.stream();
    loop {
        if committed_at.elapsed() >= COMMIT_EVERY {
            committed_at = Instant::now();
            commit_done(&*consumer, &offsets, None, CommitMode::Async);
        }
        let first = tokio::select! {
            biased;
            _ = io.stop_intake.cancelled() => break,
            _ = tokio::time::sleep(COMMIT_EVERY) => continue,
            message = incoming.next() => match message {
                Some(message) => (message, offsets.epoch()),
                None => break, // librdkafka's stream never ends
            },
        };
        let messages = gather(first, &mut incoming, || offsets.epoch(), out, io.batch_size, io.linger).await;
        // The offset range of each partition per epoch the messages were received at (a
        // rebalance during the batch separates an old assignment's messages from a new one's).
        let mut ranges: BTreeMap<(i32, u64), (i64, i64)> = BTreeMap::new();
        let mut records = BatchBuilder::default();
        // With `metadata`: where each record came from (partition, offset, timestamp), in order.
        let mut places: Vec<(i32, i64, Option<i64>)> = Vec::new();
        // Batches closed early because their records' field names kept changing.
        let mut wide = Vec::new();
        let mut bad = Vec::new();
        for (message, epoch) in messages {
            let message = match message {
                Ok(m) => m,
                Err(e) => {
                    // librdkafka retries by itself (a broker away, say): say so, and go on.
                    tracing::warn!(streamlet = %io.name, topic = %config.topic, error = %e, "Kafka consumer error");
                    continue;
                }
            };
            let range = ranges
                .entry((message.partition(), epoch))
                .or_insert((message.offset(), message.offset()));
            range.0 = range.0.min(message.offset());
            range.1 = range.1.max(message.offset());
            let payload = message.payload().unwrap_or_default();
            if records.is_wide() {
                wide.push(std::mem::take(&mut records).finish());
            }
            let before = records.len();
            let read = crate::formats::read_json_line(payload, message.offset().max(0) as u64, &mut records);
            if config.metadata.is_some() {
                let place = (message.partition(), message.offset(), message.timestamp().to_millis());
                places.extend(std::iter::repeat_n(place, records.len() - before));
            }
            if let Err(crate::formats::Malformed { line, reason, raw }) = read {
                let mut record = super::malformed_record(&io.name, &source, line, reason, raw);
                if let Some(Value::Object(e)) = record.get_mut("_error") {
                    // A message has a place in its partition, not a line.
                    e.remove("line");
                    e.insert("partition".into(), message.partition().into());
                    e.insert("offset".into(), message.offset().into());
                }
                bad.push(record)
            }
        }
        let mut acks = Acks::default();
        let mut stale = false;
        for (&(partition, epoch), &(first, last)) in &ranges {
            match offsets.track(epoch, partition, first, last) {
                Some(ack) => acks.push(ack),
                None => stale = true,
            }
        }
        if stale {
            // A rebalance came while the batch was read: its partitions now belong to another
            // consumer (or to this one afresh), which reads them again from the last commit.
            // The records still go on; only their offsets are not this assignment's to commit.
            tracing::debug!(streamlet = %io.name, "a batch straddled a rebalance");
        }
        let mut placed = 0;
        let mut place = |mut batch: Batch| {
            if let Some(field) = &config.metadata {
                let end = (placed + batch.len()).min(places.len());
                batch.set(field, metadata_column(&config.topic, &places[placed..end]));
                placed = end;
            }
            batch
        };
        for batch in wide {
            out.send_acked(place(batch), acks.clone()).await?;
        }
        out.send_acked(place(records.finish()), acks.clone()).await?;
        errors.send_acked(Batch::from_records(&bad), acks).await?;
    }
    // Stopping: what was handed downstream is written before its offsets are committed.
    let deadline = Instant::now() + STOP_WAIT;
    let mut left = offsets.wait_settled(None, Duration::ZERO);
    while left > 0 && Instant::now() < deadline && !io.deadline.is_cancelled() {
        tokio::time::sleep(Duration::from_millis(20)).await;
        left = offsets.wait_settled(None, Duration::ZERO);
    }
    if left > 0 {
        tracing::warn!(streamlet = %io.name, topic = %config.topic, ranges = left, "stopping with records not written; their offsets are not committed");
    }
    crate::streamlets::blocking(|| commit_done(&*consumer, &offsets, None, CommitMode::Sync));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_consumer_gets_sluice_fetch_defaults_statistics_and_its_group_unless_options_say_otherwise() {
        let config: KafkaSourceConfig = serde_yaml_ng::from_str("topic: t\nstart: latest").expect("config");
        let client = client_config(&config, &KafkaSettings::default(), "p.s");
        assert_eq!(client.get("fetch.queue.backoff.ms"), Some("10"));
        assert_eq!(client.get("fetch.wait.max.ms"), Some("100"));
        assert_eq!(client.get("statistics.interval.ms"), Some(STATISTICS_EVERY_MS));
        assert_eq!(client.get("group.id"), Some("p.s"));
        assert_eq!(client.get("enable.auto.commit"), Some("false"));
        assert_eq!(client.get("auto.offset.reset"), Some("latest"));

        let own: KafkaSettings =
            serde_yaml_ng::from_str("options: { fetch.queue.backoff.ms: 1000, statistics.interval.ms: 5000 }")
                .expect("settings");
        let client = client_config(&config, &own, "p.s");
        assert_eq!(client.get("fetch.queue.backoff.ms"), Some("1000"));
        assert_eq!(client.get("statistics.interval.ms"), Some("5000"));
    }

    /// An outlet with one consumer whose channel holds one batch, and that channel.
    fn outlet() -> (
        crate::flow::ports::Outlet,
        tokio::sync::mpsc::Receiver<crate::flow::ports::Envelope>,
    ) {
        use crate::flow::ports::{Consumers, Outlet, Unconsumed};
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let consumers = Arc::new(Consumers::new(vec![(0, tx)]));
        (
            Outlet::new("s", "out", Unconsumed::Log, consumers, Default::default()),
            rx,
        )
    }

    fn one_record() -> Batch {
        let serde_json::Value::Object(record) = serde_json::json!({"a": 1}) else {
            unreachable!()
        };
        Batch::from_records(&[record])
    }

    /// A linger no test waits out: a gathering still waiting after [`BOUND`] waited for it.
    const HOUR: Duration = Duration::from_secs(3600);
    const BOUND: Duration = Duration::from_secs(60);

    async fn within_bound<T>(f: impl std::future::Future<Output = T>) -> T {
        tokio::time::timeout(BOUND, f).await.expect("it waited for the linger")
    }

    #[tokio::test]
    async fn with_downstream_idle_a_batch_is_what_was_fetched_already() {
        let (out, _rx) = outlet();
        let (tx, mut incoming) = futures::channel::mpsc::unbounded();
        for i in 1..=4 {
            tx.unbounded_send(i).unwrap();
        }
        // At most `most`, the rest left for the next batch.
        let batch = within_bound(gather((0, 7), &mut incoming, || 7, &out, 2, HOUR)).await;
        assert_eq!(batch, vec![(0, 7), (1, 7)]);
        // The stream is still open (`tx` lives): nothing more is waited for.
        let batch = within_bound(gather((9, 8), &mut incoming, || 8, &out, 100, HOUR)).await;
        assert_eq!(batch, vec![(9, 8), (2, 8), (3, 8), (4, 8)]);
        drop(tx);
    }

    #[tokio::test]
    async fn with_downstream_busy_a_batch_grows_until_downstream_has_room() {
        let (out, mut rx) = outlet();
        out.send_acked(one_record(), Acks::default()).await.unwrap();
        assert!(out.congested());
        let (tx, mut incoming) = futures::channel::mpsc::unbounded();
        tx.unbounded_send(1).unwrap();
        let gathering = tokio::spawn(async move { gather((0, 0), &mut incoming, || 0, &out, 100, HOUR).await });
        // Messages arriving while downstream is busy join the batch...
        tokio::time::sleep(Duration::from_millis(10)).await;
        tx.unbounded_send(2).unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(!gathering.is_finished());
        // ...and it goes as soon as downstream takes what it held, not at the end of the linger.
        rx.recv().await.expect("the batch downstream held");
        let batch = within_bound(gathering).await.unwrap();
        assert_eq!(batch.iter().map(|(m, _)| *m).collect::<Vec<_>>(), vec![0, 1, 2]);
    }

    #[tokio::test]
    async fn with_downstream_busy_for_good_a_batch_goes_at_the_end_of_the_linger_or_of_the_stream() {
        let (out, _rx) = outlet();
        out.send_acked(one_record(), Acks::default()).await.unwrap();
        let (tx, mut incoming) = futures::channel::mpsc::unbounded::<i32>();
        let linger = Duration::from_millis(100);
        let started = std::time::Instant::now();
        let batch = within_bound(gather((0, 0), &mut incoming, || 0, &out, 100, linger)).await;
        assert_eq!(batch, vec![(0, 0)]);
        assert!(started.elapsed() >= linger, "it waited the linger");
        drop(tx);
        let batch = within_bound(gather((1, 0), &mut incoming, || 0, &out, 100, HOUR)).await;
        assert_eq!(batch, vec![(1, 0)]);
    }

    #[test]
    fn commits_only_below_what_is_unfinished() {
        let offsets = Offsets::new("t");
        offsets.assign(&[0]);
        let at = offsets.epoch();
        let a = offsets.track(at, 0, 0, 9).unwrap();
        let b = offsets.track(at, 0, 10, 19).unwrap();
        let c = offsets.track(at, 0, 20, 29).unwrap();
        // Finished out of order: nothing below the unfinished first range may be committed.
        let mut acks = Acks::default();
        acks.push(b);
        acks.settle();
        assert_eq!(offsets.to_commit(None), vec![]);
        let mut acks = Acks::default();
        acks.push(a);
        acks.settle();
        assert_eq!(offsets.to_commit(None), vec![(0, 20)]);
        offsets.committed(&[(0, 20)]);
        assert_eq!(offsets.to_commit(None), vec![]);
        // A range dropped unsettled stops the commits at it.
        drop(c);
        let d = offsets.track(at, 0, 30, 39).unwrap();
        let mut acks = Acks::default();
        acks.push(d);
        acks.settle();
        assert_eq!(offsets.to_commit(None), vec![]);
        assert_eq!(offsets.wait_settled(None, Duration::ZERO), 0);
    }

    #[test]
    fn a_fanned_out_range_is_done_when_every_copy_is() {
        let offsets = Offsets::new("t");
        offsets.assign(&[3]);
        let ack = offsets.track(offsets.epoch(), 3, 5, 5).unwrap();
        let mut one = Acks::default();
        one.push(ack);
        let two = one.clone();
        one.settle();
        assert_eq!(offsets.to_commit(None), vec![]);
        assert_eq!(offsets.wait_settled(None, Duration::ZERO), 1);
        two.settle();
        assert_eq!(offsets.to_commit(None), vec![(3, 6)]);
    }

    #[test]
    fn messages_from_before_a_revocation_are_not_tracked() {
        let offsets = Offsets::new("t");
        offsets.assign(&[0, 1]);
        let before = offsets.epoch();
        offsets.revoke(&[0, 1]);
        offsets.assign(&[1]);
        assert!(offsets.track(before, 0, 0, 1).is_none());
        assert!(offsets.track(before, 1, 0, 1).is_none());
        assert!(offsets.track(offsets.epoch(), 1, 0, 1).is_some());
        // An assignment of other partitions leaves the tracked ones alone.
        let at = offsets.epoch();
        offsets.assign(&[2]);
        assert!(offsets.track(at, 1, 2, 3).is_some());
    }
}
