//! The ports of a streamlet: what an edge carries (a batch and the acknowledgements of the
//! source records it came from), an outlet fanning out to its consumers, and the inlet merging
//! the edges a streamlet reads.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use futures::stream::{SelectAll, StreamExt};
use prometheus_client::metrics::histogram::Histogram;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;

use super::Batch;

/// What an edge's channel carries: a batch, and the acknowledgements of the source records
/// it came from.
pub struct Envelope {
    pub records: Batch,
    pub acks: Acks,
}

/// The shared part of an acknowledgement: reports once, when its last handle is gone.
struct Pending {
    failed: AtomicBool,
    report: Option<Box<dyn FnOnce(bool) + Send + Sync>>,
}

impl Drop for Pending {
    fn drop(&mut self) {
        if let Some(report) = self.report.take() {
            report(!self.failed.load(Ordering::Acquire));
        }
    }
}

/// One handle on the completion of some source records (a range of Kafka offsets, say).
/// Every batch derived from them carries a handle. The source hears, once every handle is
/// gone, whether all of them were settled (written by an egress, routed to an outlet on
/// purpose, or filtered out) or some were dropped unsettled (a streamlet failed, a channel
/// closed): only settled records may be committed.
pub struct Ack {
    pending: Arc<Pending>,
    settled: bool,
}

impl Ack {
    /// An acknowledgement that calls `report(all_settled)` when its last handle is gone.
    pub fn new(report: impl FnOnce(bool) + Send + Sync + 'static) -> Self {
        Ack {
            pending: Arc::new(Pending {
                failed: AtomicBool::new(false),
                report: Some(Box::new(report)),
            }),
            settled: false,
        }
    }
}

impl Clone for Ack {
    fn clone(&self) -> Self {
        Ack {
            pending: self.pending.clone(),
            settled: false,
        }
    }
}

impl Drop for Ack {
    fn drop(&mut self) {
        if !self.settled {
            self.pending.failed.store(true, Ordering::Release);
        }
    }
}

/// The acknowledgements a batch carries (none for sources that need none).
#[derive(Clone, Default)]
pub struct Acks(Vec<Ack>);

impl Acks {
    pub fn push(&mut self, ack: Ack) {
        self.0.push(ack);
    }

    /// Adds the acknowledgements of another batch (records of both were merged).
    pub fn extend(&mut self, other: Acks) {
        self.0.extend(other.0);
    }

    /// The records these stand for are done with: written, routed, or deliberately dropped.
    pub fn settle(mut self) {
        for ack in &mut self.0 {
            ack.settled = true;
        }
    }
}

/// The downstream side of an outlet has gone away (the pipeline is stopping).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("downstream stopped")]
pub struct Closed;

/// A counter shared between a streamlet and whoever reports on it.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// What an outlet does with records when nothing consumes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unconsumed {
    /// Dropped on purpose (`discard:`), counted.
    Discard,
    /// An optional outlet nothing reads: each record is logged as a warning.
    Log,
}

/// Identifies an edge (a channel from an outlet to an inlet); the runtime assigns it.
pub type EdgeId = u64;

/// The consumers of one outlet. The runtime can change them while the streamlet runs
/// (hot reload): a batch goes to the consumers there are when it is sent.
#[derive(Default)]
pub struct Consumers(ArcSwap<Vec<(EdgeId, mpsc::Sender<Envelope>)>>);

impl Consumers {
    pub fn new(senders: Vec<(EdgeId, mpsc::Sender<Envelope>)>) -> Self {
        Consumers(ArcSwap::from_pointee(senders))
    }

    pub fn add(&self, edge: EdgeId, sender: mpsc::Sender<Envelope>) {
        self.0.rcu(|current| {
            let mut next: Vec<_> = current.iter().filter(|(e, _)| *e != edge).cloned().collect();
            next.push((edge, sender.clone()));
            next
        });
    }

    pub fn remove(&self, edge: EdgeId) {
        self.0
            .rcu(|current| current.iter().filter(|(e, _)| *e != edge).cloned().collect::<Vec<_>>());
    }

    /// Drops every sender: the consumers see the end of this outlet's stream.
    pub fn clear(&self) {
        self.0.store(Arc::new(Vec::new()));
    }

    /// Whether some consumer's channel is full: the next send would wait.
    pub fn congested(&self) -> bool {
        self.0.load().iter().any(|(_, tx)| tx.capacity() == 0)
    }

    /// Waits for room in each channel that is full now, one after another (a closed one
    /// counts as room: the send that follows says so). It may wait as long as a consumer
    /// takes: callers bound it.
    pub async fn room(&self) {
        let full: Vec<mpsc::Sender<Envelope>> = self
            .0
            .load()
            .iter()
            .filter(|(_, tx)| tx.capacity() == 0)
            .map(|(_, tx)| tx.clone())
            .collect();
        for tx in full {
            // The slot is given back at once: this only waits for it.
            let _ = tx.reserve().await;
        }
    }

    /// Batches waiting in each edge's channel, and how many it holds.
    pub fn fill(&self) -> Vec<(EdgeId, usize, usize)> {
        self.0
            .load()
            .iter()
            .map(|(e, tx)| (*e, tx.max_capacity() - tx.capacity(), tx.max_capacity()))
            .collect()
    }
}

/// The acknowledgements of the batch a streamlet has in hand, shared by its inlet (which
/// sets them when it hands out a batch, and settles them when asked for the next) and its
/// outlets (which attach them to what they send meanwhile).
pub type InHand = Arc<Mutex<Acks>>;

/// One named output of a streamlet, fanning out to every consumer.
pub struct Outlet {
    pub streamlet: String,
    pub port: String,
    unconsumed: Unconsumed,
    consumers: Arc<Consumers>,
    in_hand: InHand,
    pub sent: Arc<Counter>,
}

impl Outlet {
    pub fn new(
        streamlet: &str,
        port: &str,
        unconsumed: Unconsumed,
        consumers: Arc<Consumers>,
        in_hand: InHand,
    ) -> Self {
        Outlet {
            streamlet: streamlet.to_string(),
            port: port.to_string(),
            unconsumed,
            consumers,
            in_hand,
            sent: Arc::new(Counter::default()),
        }
    }

    /// Whether downstream is busy: some consumer's channel is full, so a send would wait. A
    /// source may then let its batch grow rather than wait with a small one.
    pub fn congested(&self) -> bool {
        self.consumers.congested()
    }

    /// Returns once downstream has room again: a source that let its batch grow while
    /// downstream was busy sends it then, rather than at the end of its linger (which bounds
    /// the wait).
    pub async fn room(&self) {
        self.consumers.room().await
    }

    /// Sends records derived from the batch in hand (see [`Inlet::recv`]) to every consumer,
    /// waiting while any of them is full (backpressure).
    pub async fn send(&self, batch: Batch) -> Result<(), Closed> {
        if batch.is_empty() {
            return Ok(());
        }
        let acks = self.in_hand.lock().unwrap_or_else(|p| p.into_inner()).clone();
        self.send_acked(batch, acks).await
    }

    /// Whether anything consumes what this outlet sends now.
    pub fn is_consumed(&self) -> bool {
        !self.consumers.0.load().is_empty()
    }

    /// Sends records with the acknowledgements of the source records they came from.
    pub async fn send_acked(&self, batch: Batch, acks: Acks) -> Result<(), Closed> {
        if batch.is_empty() {
            acks.settle();
            return Ok(());
        }
        self.sent.add(batch.len() as u64);
        let consumers = self.consumers.0.load_full();
        let Some(((_, last), others)) = consumers.split_last() else {
            if self.unconsumed == Unconsumed::Log {
                for i in 0..batch.len() {
                    tracing::warn!(
                        streamlet = %self.streamlet,
                        outlet = %self.port,
                        record = %String::from_utf8_lossy(&super::json::record_text(&batch, i)),
                        "record on an outlet nothing consumes"
                    );
                }
            }
            acks.settle();
            return Ok(());
        };
        for (_, sender) in others {
            let copy = Envelope {
                records: batch.clone(),
                acks: acks.clone(),
            };
            sender.send(copy).await.map_err(|_| Closed)?;
        }
        last.send(Envelope { records: batch, acks }).await.map_err(|_| Closed)
    }
}

/// A streamlet asked for an outlet its kind does not declare.
#[derive(Debug, Clone, thiserror::Error)]
#[error("outlet `{port}` was not wired (this streamlet has {known}): the topology and the streamlet disagree")]
pub struct Unwired {
    pub port: String,
    pub known: String,
}

/// The outlets a kind declares, as an enum (one variant per outlet, the variant's name in
/// lowercase being the port's name): a streamlet asks for its outlets by variant, so a
/// misspelt port is a compile error rather than a run-time one. Each kind lists its outlets
/// that only some configurations have last.
pub trait Port: Copy + Into<&'static str> + strum::VariantNames {
    /// This port's name, as inputs write it (`name.port`).
    fn name(self) -> &'static str {
        self.into()
    }
}

/// A streamlet's outlets by port name.
#[derive(Default)]
pub struct Outlets(HashMap<String, Outlet>);

impl Outlets {
    pub fn insert(&mut self, outlet: Outlet) {
        self.0.insert(outlet.port.clone(), outlet);
    }

    /// The outlet named `port`. Verification guarantees every declared port exists; a
    /// streamlet asking for one its kind does not declare fails with an error naming it,
    /// rather than taking the process down.
    pub fn get(&self, port: impl Port) -> Result<&Outlet, Unwired> {
        let port = port.name();
        self.0.get(port).ok_or_else(|| {
            let mut known: Vec<&str> = self.0.keys().map(String::as_str).collect();
            known.sort_unstable();
            Unwired {
                port: port.to_string(),
                known: known.join(", "),
            }
        })
    }

    /// Takes the outlet `port` out, for a task of its own.
    pub fn take(&mut self, port: impl Port) -> Result<Outlet, Unwired> {
        self.get(port)?;
        Ok(self.0.remove(port.name()).expect("just found"))
    }

    /// The outlet `port`, for outlets that exist only in some configurations.
    pub fn find(&self, port: impl Port) -> Option<&Outlet> {
        self.0.get(port.name())
    }
}

/// The batches of one edge, keeping the edge's id so the receiver can be handed back.
struct EdgeStream {
    edge: EdgeId,
    rx: ReceiverStream<Envelope>,
}

impl futures::Stream for EdgeStream {
    type Item = Envelope;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Envelope>> {
        std::pin::Pin::new(&mut self.rx).poll_next(cx)
    }
}

/// Where an inlet leaves its receivers when it is dropped, for a replacement to take over.
pub type Handback = Arc<Mutex<Vec<(EdgeId, mpsc::Receiver<Envelope>)>>>;

/// The merged input of a streamlet: batches from every upstream outlet it names.
/// When the streamlet is retired (hot reload) `recv` ends between two batches, and the
/// records still in the channels are handed back, for the replacement.
pub struct Inlet {
    streams: SelectAll<EdgeStream>,
    pub received: Arc<Counter>,
    /// Seconds a streamlet spends on each batch it takes (from taking it to asking for the next).
    pub busy: Arc<Histogram>,
    /// The same, in µs, since the history last took them (`observe/history.rs`).
    pub recent: Arc<std::sync::Mutex<hdrhistogram::Histogram<u64>>>,
    batch_taken: Option<std::time::Instant>,
    retire: CancellationToken,
    handback: Handback,
    in_hand: InHand,
}

impl Inlet {
    pub fn new(
        receivers: Vec<(EdgeId, mpsc::Receiver<Envelope>)>,
        retire: CancellationToken,
        handback: Handback,
        in_hand: InHand,
    ) -> Self {
        Inlet {
            streams: futures::stream::select_all(receivers.into_iter().map(|(edge, rx)| EdgeStream {
                edge,
                rx: ReceiverStream::new(rx),
            })),
            received: Arc::new(Counter::default()),
            busy: Arc::new(Histogram::new(
                prometheus_client::metrics::histogram::exponential_buckets(1e-5, 4.0, 10),
            )),
            recent: Arc::new(std::sync::Mutex::new(batch_time_histogram())),
            batch_taken: None,
            retire,
            handback,
            in_hand,
        }
    }

    /// Notes how long the streamlet spent on a batch.
    fn took(&self, spent: std::time::Duration) {
        self.busy.observe(spent.as_secs_f64());
        let micros = u64::try_from(spent.as_micros()).unwrap_or(u64::MAX);
        self.recent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .saturating_record(micros.max(1));
    }

    /// The next batch, or `None` once every upstream has finished or the streamlet is retired.
    ///
    /// Asking for the next batch says the streamlet is done with the one in hand: what it sent
    /// on its outlets meanwhile carries that batch's acknowledgements, and the records it sent
    /// nowhere were filtered out on purpose. A streamlet that keeps records across batches
    /// uses [`Inlet::recv_acked`] and [`Outlet::send_acked`] instead.
    pub async fn recv(&mut self) -> Option<Batch> {
        let Envelope { records, acks } = self.recv_acked().await?;
        *self.in_hand.lock().unwrap_or_else(|p| p.into_inner()) = acks;
        Some(records)
    }

    /// The next batch with its acknowledgements, which the caller passes on with the records
    /// derived from it.
    pub async fn recv_acked(&mut self) -> Option<Envelope> {
        if let Some(taken) = self.batch_taken.take() {
            self.took(taken.elapsed());
        }
        std::mem::take(&mut *self.in_hand.lock().unwrap_or_else(|p| p.into_inner())).settle();
        let envelope = tokio::select! {
            biased;
            _ = self.retire.cancelled() => None,
            envelope = self.streams.next() => envelope,
        }?;
        self.received.add(envelope.records.len() as u64);
        self.batch_taken = Some(std::time::Instant::now());
        Some(envelope)
    }
}

/// A histogram of batch times in µs, from 1 µs to an hour, to 2 significant digits.
pub fn batch_time_histogram() -> hdrhistogram::Histogram<u64> {
    hdrhistogram::Histogram::new_with_bounds(1, 3_600_000_000, 2).expect("valid bounds")
}

impl Drop for Inlet {
    /// The batch in hand, if any, was not finished: its acknowledgements are dropped unsettled.
    fn drop(&mut self) {
        let streams = std::mem::take(&mut self.streams);
        let receivers: Vec<_> = streams.into_iter().map(|s| (s.edge, s.rx.into_inner())).collect();
        *self.handback.lock().unwrap_or_else(|p| p.into_inner()) = receivers;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asking_for_an_outlet_that_was_not_wired_is_an_error_naming_it() {
        let mut outlets = Outlets::default();
        outlets.insert(Outlet::new(
            "check",
            "valid",
            Unconsumed::Log,
            Arc::new(Consumers::default()),
            InHand::default(),
        ));
        #[derive(Clone, Copy, strum::IntoStaticStr, strum::VariantNames)]
        #[strum(serialize_all = "lowercase")]
        enum Checked {
            Valid,
            Invalid,
        }
        impl Port for Checked {}
        assert!(outlets.get(Checked::Valid).is_ok());
        let error = outlets
            .get(Checked::Invalid)
            .err()
            .expect("an error, not a panic")
            .to_string();
        assert!(error.contains("`invalid`") && error.contains("valid"), "{error}");
    }

    fn envelope() -> Envelope {
        let serde_json::Value::Object(record) = serde_json::json!({"a": 1}) else {
            unreachable!()
        };
        Envelope {
            records: Batch::from_records(&[record]),
            acks: Acks::default(),
        }
    }

    /// Long enough that a wait for room which never ends is told from one that ends.
    const BOUND: std::time::Duration = std::time::Duration::from_secs(60);

    #[tokio::test]
    async fn room_waits_only_for_full_channels_and_not_for_closed_ones() {
        let (full_tx, mut full_rx) = mpsc::channel(1);
        let (closed_tx, closed_rx) = mpsc::channel(1);
        let (free_tx, _free_rx) = mpsc::channel(1);
        full_tx.send(envelope()).await.unwrap();
        closed_tx.send(envelope()).await.unwrap();
        drop(closed_rx);
        let consumers = Arc::new(Consumers::new(vec![(0, full_tx), (1, closed_tx), (2, free_tx)]));
        let waiting = tokio::spawn({
            let consumers = consumers.clone();
            async move { consumers.room().await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        assert!(!waiting.is_finished(), "the full channel has no room yet");
        full_rx.recv().await.expect("what it held");
        tokio::time::timeout(BOUND, waiting)
            .await
            .expect("room once the full channel was read")
            .unwrap();
        tokio::time::timeout(BOUND, Consumers::default().room())
            .await
            .expect("no consumer: room at once");
    }
}
