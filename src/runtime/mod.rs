//! Runs a topology: one tokio task per streamlet, bounded channels for edges, orderly shutdown,
//! and reconfiguration while running (hot reload): unchanged streamlets keep running, changed
//! ones are replaced and take over the records waiting for them, removed ones drain and stop.

pub mod reload;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::models::strategy::StrategySummary;
use crate::models::ModelStatsSummary;
use crate::spec::{Defaults, StreamletSpec};
use crate::streamlets::io::{
    Consumers, Counter, EdgeId, Envelope, Handback, InHand, Inlet, Io, Outlet, Outlets, Telemetry, Unconsumed,
};
use crate::streamlets::{Prepare, Prepared, StreamletError};
use crate::topology::diff::{EdgeKey, Shape, TopologyDiff};
use crate::topology::Topology;

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("the pipeline as it would run is wired wrong (a bug in sluice): {0}")]
    Wiring(String),
    #[error("streamlet `{streamlet}` failed: {reason}")]
    Streamlet { streamlet: String, reason: String },
    #[error(
        "the pipeline did not drain within {}s of the stop: {} still running; what they held was not committed",
        after.as_secs(), still_running.join(", ")
    )]
    ShutdownTimedOut {
        after: Duration,
        still_running: Vec<String>,
    },
}

/// How a run behaves beyond its pipeline file.
#[derive(Debug, Clone, Copy)]
pub struct RunOptions {
    /// How long a stop may take to drain what is in flight before the run gives up.
    pub shutdown_timeout: Duration,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
        }
    }
}

/// How long a stop may drain by default (Vector's graceful shutdown limit).
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(60);
/// How often a draining pipeline names the streamlets it still waits for.
const SHUTDOWN_REPORT_EVERY: Duration = Duration::from_secs(5);
/// After the deadline, how long sources get to commit what was written before the run ends.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Records counted on one outlet.
#[derive(Debug, Clone, Serialize)]
pub struct OutletSummary {
    pub port: String,
    pub records: u64,
    pub discarded: bool,
}

/// What one streamlet did (over all its instances, when reloads replaced it).
#[derive(Debug, Clone, Serialize)]
pub struct StreamletSummary {
    pub name: String,
    pub kind: String,
    pub records_in: u64,
    pub outlets: Vec<OutletSummary>,
    /// Every model version that served, for scorers.
    pub models: Vec<ModelStatsSummary>,
    /// What a scorer's strategy did.
    pub strategy: Option<StrategySummary>,
    /// Events the streamlet counted (drift events, say).
    pub counters: BTreeMap<String, u64>,
}

/// What a whole run did.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    pub pipeline: String,
    pub elapsed: Duration,
    pub streamlets: Vec<StreamletSummary>,
    pub reloads: u64,
}

impl RunSummary {
    /// Records that entered the named streamlet.
    pub fn records_in(&self, streamlet: &str) -> Option<u64> {
        self.streamlets
            .iter()
            .find(|s| s.name == streamlet)
            .map(|s| s.records_in)
    }

    /// Records that left the named streamlet through `port`.
    pub fn records_out(&self, streamlet: &str, port: &str) -> Option<u64> {
        let s = self.streamlets.iter().find(|s| s.name == streamlet)?;
        s.outlets.iter().find(|o| o.port == port).map(|o| o.records)
    }
}

/// The live counters of one streamlet instance.
#[derive(Clone)]
struct Counters {
    kind: &'static str,
    received: Arc<Counter>,
    busy: Arc<prometheus_client::metrics::histogram::Histogram>,
    sent: Vec<(String, bool, Arc<Counter>)>,
    telemetry: Telemetry,
}

impl Counters {
    fn summary(&self, name: &str) -> StreamletSummary {
        StreamletSummary {
            name: name.to_string(),
            kind: self.kind.to_string(),
            records_in: self.received.get(),
            outlets: self
                .sent
                .iter()
                .map(|(port, discarded, n)| OutletSummary {
                    port: port.clone(),
                    records: n.get(),
                    discarded: *discarded,
                })
                .collect(),
            models: self.telemetry.model_stats(),
            strategy: self.telemetry.strategy_stats(),
            counters: self.telemetry.counters(),
        }
    }
}

/// A streamlet as it runs now, for status pages and tests.
#[derive(Debug, Clone, Serialize)]
pub struct StreamletStatus {
    pub name: String,
    pub kind: String,
    /// Changes when a reload replaces the streamlet, and only then.
    pub instance: u64,
    pub running: bool,
    /// Why it stopped, when it failed.
    pub failure: Option<String>,
    /// For scorers: whether every model has a version serving.
    pub models_ready: Option<bool>,
    pub records_in: u64,
    pub outlets: Vec<OutletSummary>,
    pub models: Vec<ModelStatsSummary>,
    pub strategy: Option<StrategySummary>,
    pub counters: BTreeMap<String, u64>,
    /// For Kafka sources: messages not yet read, per topic and partition.
    pub lag: Vec<(String, i32, i64)>,
}

/// An edge and how full its channel is.
#[derive(Debug, Clone, Serialize)]
pub struct EdgeStatus {
    pub from: String,
    pub port: String,
    pub to: String,
    pub transport: &'static str,
    /// Batches waiting in the channel.
    pub queued: usize,
    pub capacity: usize,
}

/// A snapshot of the running pipeline.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Status {
    pub pipeline: String,
    pub config_hash: String,
    /// Configurations applied while running.
    pub reloads: u64,
    /// New configurations refused for their problems (the pipeline carried on unchanged).
    pub rejected: u64,
    /// New configurations whose new pieces failed to start (the old ones kept running).
    pub rolled_back: u64,
    /// Why the last refused or rolled back configuration was.
    pub last_error: Option<String>,
    pub streamlets: Vec<StreamletStatus>,
    pub edges: Vec<EdgeStatus>,
}

#[derive(Default)]
struct Shared {
    pipeline: String,
    config_hash: String,
    reloads: u64,
    rejected: u64,
    rolled_back: u64,
    last_error: Option<String>,
    instances: BTreeMap<String, InstanceView>,
    edges: HashMap<EdgeKey, EdgeId>,
    consumers: HashMap<(String, String), Arc<Consumers>>,
}

struct InstanceView {
    id: u64,
    running: bool,
    failure: Option<String>,
    counters: Counters,
}

/// A view of a running pipeline from outside its control loop.
#[derive(Clone, Default)]
pub struct Handle(Arc<Mutex<Shared>>);

impl Handle {
    /// Notes a configuration refused for its problems.
    pub fn rejected(&self, why: String) {
        self.with(|s| {
            s.rejected += 1;
            s.last_error = Some(why);
        });
    }

    fn with<T>(&self, f: impl FnOnce(&mut Shared) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }

    pub fn status(&self) -> Status {
        self.with(|s| Status {
            pipeline: s.pipeline.clone(),
            config_hash: s.config_hash.clone(),
            reloads: s.reloads,
            rejected: s.rejected,
            rolled_back: s.rolled_back,
            last_error: s.last_error.clone(),
            streamlets: s
                .instances
                .iter()
                .map(|(name, view)| {
                    let summary = view.counters.summary(name);
                    StreamletStatus {
                        name: name.clone(),
                        kind: summary.kind,
                        instance: view.id,
                        running: view.running,
                        failure: view.failure.clone(),
                        models_ready: view.counters.telemetry.models_ready(),
                        records_in: summary.records_in,
                        outlets: summary.outlets,
                        models: summary.models,
                        strategy: summary.strategy,
                        counters: summary.counters,
                        lag: view.counters.telemetry.lag(),
                    }
                })
                .collect(),
            edges: {
                let fill: HashMap<EdgeId, (usize, usize)> = s
                    .consumers
                    .values()
                    .flat_map(|c| c.fill())
                    .map(|(e, queued, capacity)| (e, (queued, capacity)))
                    .collect();
                let mut edges: Vec<EdgeStatus> = s
                    .edges
                    .iter()
                    .map(|(k, id)| {
                        let (queued, capacity) = fill.get(id).copied().unwrap_or((0, 0));
                        EdgeStatus {
                            from: k.from.clone(),
                            port: k.port.clone(),
                            to: k.to.clone(),
                            transport: "memory",
                            queued,
                            capacity,
                        }
                    })
                    .collect();
                edges.sort_by(|a, b| (&a.from, &a.port, &a.to).cmp(&(&b.from, &b.port, &b.to)));
                edges
            },
        })
    }

    /// Each streamlet's batch processing time histogram, for the metrics.
    pub fn processing_times(&self) -> Vec<(String, String, Arc<prometheus_client::metrics::histogram::Histogram>)> {
        self.with(|s| {
            s.instances
                .iter()
                .map(|(name, v)| (name.clone(), v.counters.kind.to_string(), v.counters.busy.clone()))
                .collect()
        })
    }
}

/// One running (or retiring) streamlet.
struct Instance {
    id: u64,
    spec: StreamletSpec,
    fingerprint: String,
    retire: CancellationToken,
    intake: CancellationToken,
    handback: Handback,
    counters: Counters,
}

type Done = (String, u64, Result<(), StreamletError>);

/// The control loop's state.
struct Engine {
    pipeline: String,
    defaults: Defaults,
    stop: CancellationToken,
    /// Cancelled when the shutdown deadline passes: sources stop waiting for what is in flight.
    deadline: CancellationToken,
    running: HashMap<String, Instance>,
    retiring: HashMap<u64, (String, Instance)>,
    /// The consumers of each (streamlet, port): they outlive instances, so a replacement sends
    /// where its predecessor did.
    consumers: HashMap<(String, String), Arc<Consumers>>,
    edges: HashMap<EdgeKey, EdgeId>,
    /// Receivers of edges whose consumer is not running yet.
    waiting: HashMap<String, Vec<(EdgeId, mpsc::Receiver<Envelope>)>>,
    next_id: u64,
    tasks: JoinSet<Done>,
    task_names: HashMap<tokio::task::Id, String>,
    done: BTreeMap<String, Vec<StreamletSummary>>,
    failure: Option<RunError>,
    handle: Handle,
}

fn specs_of(topology: &Topology) -> BTreeMap<String, StreamletSpec> {
    topology
        .graph
        .node_weights()
        .map(|n| (n.name.clone(), n.spec.clone()))
        .collect()
}

impl Engine {
    fn consumers(&mut self, from: &str, port: &str) -> Arc<Consumers> {
        self.consumers
            .entry((from.to_string(), port.to_string()))
            .or_insert_with(|| Arc::new(Consumers::default()))
            .clone()
    }

    /// Creates the channel of an edge: its sender joins the outlet's consumers, its receiver waits
    /// for the consuming streamlet to start.
    fn open_edge(&mut self, key: EdgeKey, capacity: usize) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let id = self.next_id;
        self.next_id += 1;
        self.consumers(&key.from, &key.port).add(id, tx);
        self.waiting.entry(key.to.clone()).or_default().push((id, rx));
        self.edges.insert(key, id);
        self.publish_edges();
    }

    /// Shows the current edges to the handle.
    fn publish_edges(&self) {
        let (edges, consumers) = (self.edges.clone(), self.consumers.clone());
        self.handle.with(|s| {
            s.edges = edges;
            s.consumers = consumers;
        });
    }

    /// Removes an edge: the outlet stops sending to it, and its consumer sees it end once drained.
    fn close_edge(&mut self, key: &EdgeKey) {
        if let Some(id) = self.edges.remove(key) {
            if let Some(c) = self.consumers.get(&(key.from.clone(), key.port.clone())) {
                c.remove(id);
            }
        }
        self.publish_edges();
    }

    /// Starts a prepared streamlet with the receivers waiting for it.
    fn spawn(&mut self, name: &str, spec: StreamletSpec, fingerprint: String, prepared: Prepared) {
        let id = self.next_id;
        self.next_id += 1;
        let retire = CancellationToken::new();
        let intake = self.stop.child_token();
        let handback: Handback = Arc::new(Mutex::new(Vec::new()));
        let kind = spec.kind.outlets();
        let mut outlets = Outlets::default();
        let in_hand = InHand::default();
        let mut sent = Vec::new();
        for port in kind.names {
            let discard = spec.discard.iter().any(|d| d == port);
            let unconsumed = if discard { Unconsumed::Discard } else { Unconsumed::Log };
            let outlet = Outlet::new(name, port, unconsumed, self.consumers(name, port), in_hand.clone());
            sent.push((port.to_string(), discard, outlet.sent.clone()));
            outlets.insert(outlet);
        }
        let inlet = Inlet::new(
            self.waiting.remove(name).unwrap_or_default(),
            retire.clone(),
            handback.clone(),
            in_hand,
        );
        let counters = Counters {
            kind: spec.kind.name(),
            received: inlet.received.clone(),
            busy: inlet.busy.clone(),
            sent,
            telemetry: Telemetry::default(),
        };
        let io = Io {
            name: name.to_string(),
            inlet,
            outlets,
            stop_intake: intake.clone(),
            deadline: self.deadline.clone(),
            batch_size: self.defaults.batch_size,
            linger: Duration::from_millis(self.defaults.linger_ms),
            telemetry: counters.telemetry.clone(),
        };
        let task_name = name.to_string();
        let task = self
            .tasks
            .spawn(async move { (task_name, id, crate::streamlets::run(prepared, io).await) });
        self.task_names.insert(task.id(), name.to_string());
        self.handle.with(|s| {
            s.instances.insert(
                name.to_string(),
                InstanceView {
                    id,
                    running: true,
                    failure: None,
                    counters: counters.clone(),
                },
            )
        });
        self.running.insert(
            name.to_string(),
            Instance {
                id,
                spec,
                fingerprint,
                retire,
                intake,
                handback,
                counters,
            },
        );
    }

    /// Handles a finished task: a retired instance hands over; a finished one ends its outlets'
    /// streams; a failed one stops the pipeline.
    fn finished(&mut self, (name, id, result): Done) {
        if let Some((name, old)) = self.retiring.remove(&id) {
            self.done
                .entry(name.clone())
                .or_default()
                .push(old.counters.summary(&name));
            // What was still waiting in its channels goes to its replacement.
            let receivers = std::mem::take(&mut *old.handback.lock().unwrap_or_else(|p| p.into_inner()));
            self.waiting.entry(name).or_default().extend(receivers);
            if let Err(e) = result {
                tracing::warn!(streamlet = %old.spec.kind.name(), reason = %e, "a retired streamlet failed while draining");
            }
            return;
        }
        if self.running.get(&name).map(|i| i.id) != Some(id) {
            return;
        }
        let Some(instance) = self.running.remove(&name) else {
            return;
        };
        for ((from, _), consumers) in &self.consumers {
            if *from == name {
                consumers.clear();
            }
        }
        let failure = result.as_ref().err().map(|e| e.to_string());
        self.handle.with(|s| {
            if let Some(view) = s.instances.get_mut(&name) {
                view.running = false;
                view.failure = failure;
            }
        });
        self.done
            .entry(name.clone())
            .or_default()
            .push(instance.counters.summary(&name));
        match result {
            Ok(()) => tracing::debug!(streamlet = %name, "finished"),
            Err(e) => {
                tracing::error!(streamlet = %name, reason = %e, "streamlet failed; stopping the pipeline");
                self.stop.cancel();
                self.failure.get_or_insert(RunError::Streamlet {
                    streamlet: name,
                    reason: e.to_string(),
                });
            }
        }
    }

    async fn join_next(&mut self) -> Option<Done> {
        match self.tasks.join_next().await? {
            Ok(done) => Some(done),
            Err(e) => {
                let streamlet = self.task_names.remove(&e.id()).unwrap_or_default();
                tracing::error!(%streamlet, reason = %e, "streamlet ended abnormally; stopping the pipeline");
                self.stop.cancel();
                self.failure.get_or_insert(RunError::Streamlet {
                    streamlet,
                    reason: format!("task ended abnormally: {e}"),
                });
                None
            }
        }
    }

    /// Prepares streamlets, all or none.
    async fn prepare_all(
        &self,
        names: &[String],
        specs: &BTreeMap<String, StreamletSpec>,
    ) -> Result<Vec<(String, Prepared)>, RunError> {
        let mut prepared = Vec::new();
        for name in names {
            let ctx = Prepare {
                name: name.clone(),
                pipeline: self.pipeline.clone(),
                kafka: self.defaults.kafka.clone().unwrap_or_default(),
                reloading: self.running.contains_key(name) || self.done.contains_key(name),
            };
            match crate::streamlets::prepare(&specs[name], &ctx).await {
                Ok(p) => prepared.push((name.clone(), p)),
                Err(e) => {
                    return Err(RunError::Streamlet {
                        streamlet: name.clone(),
                        reason: e.to_string(),
                    })
                }
            }
        }
        Ok(prepared)
    }

    /// Applies a new configuration. When building a new piece fails, nothing changes.
    async fn reload(&mut self, mut topology: Topology) {
        crate::topology::carry_kafka_edges(&mut topology);
        if let Err(e) = topology.check_wiring() {
            tracing::error!(error = %e, "reload rejected: the running pipeline is unchanged");
            self.handle.rejected(RunError::Wiring(e).to_string());
            return;
        }
        let started = Instant::now();
        let specs = specs_of(&topology);
        let new = Shape::of(&topology);
        let running = Shape {
            streamlets: self
                .running
                .iter()
                .map(|(n, i)| (n.clone(), i.fingerprint.clone()))
                .collect(),
            edges: self.edges.keys().map(|k| (k.clone(), 0)).collect(),
        };
        let finished: BTreeSet<String> = self.done.keys().cloned().collect();
        let diff = TopologyDiff::between(&running, &finished, &new);
        let hash = topology.config_hash();
        if diff.is_empty() {
            tracing::info!(config_hash = %hash, "configuration reloaded: nothing to change");
            self.handle.with(|s| s.config_hash = hash);
            return;
        }
        let TopologyDiff {
            added,
            changed,
            removed,
            opened,
            closed,
        } = diff;
        let to_build: Vec<String> = added.iter().chain(&changed).cloned().collect();
        let prepared = match self.prepare_all(&to_build, &specs).await {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "reload rolled back: the running pipeline is unchanged");
                self.handle.with(|s| {
                    s.rolled_back += 1;
                    s.last_error = Some(e.to_string());
                });
                return;
            }
        };
        // Retire what changes: each finishes the batch in hand and hands its channels back.
        let mut waiting_for = HashSet::new();
        for name in &changed {
            if let Some(old) = self.running.remove(name) {
                old.retire.cancel();
                old.intake.cancel();
                waiting_for.insert(old.id);
                self.retiring.insert(old.id, (name.clone(), old));
            }
        }
        // Removed sources stop taking in; removed streamlets drain what was sent to them and end.
        for name in &removed {
            if let Some(old) = self.running.get(name) {
                old.intake.cancel();
            }
        }
        for key in &closed {
            self.close_edge(key);
        }
        while waiting_for.iter().any(|id| self.retiring.contains_key(id)) {
            let Some(done) = self.join_next().await else { break };
            self.finished(done);
        }
        for (key, capacity) in opened {
            self.open_edge(key, capacity);
        }
        for (name, p) in prepared {
            let spec = specs[&name].clone();
            self.spawn(&name, spec, new.streamlets[&name].clone(), p);
        }
        self.defaults = topology.defaults.clone();
        let reloads = self.handle.with(|s| {
            s.reloads += 1;
            s.config_hash = hash.clone();
            for name in &removed {
                s.instances.remove(name);
            }
            s.reloads
        });
        tracing::info!(
            added = ?added,
            changed = ?changed,
            removed = ?removed,
            took_ms = started.elapsed().as_millis() as u64,
            config_hash = %hash,
            reloads,
            "configuration reloaded"
        );
    }

    /// The streamlets whose tasks have not ended, sorted.
    fn still_running(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .running
            .keys()
            .chain(self.retiring.values().map(|(name, _)| name))
            .cloned()
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// The shutdown deadline has passed: sources get a moment to commit what was written, then
    /// every task still running is abandoned and the run fails naming them.
    async fn give_up(&mut self, after: Duration) {
        let still_running = self.still_running();
        tracing::error!(after_s = after.as_secs(), still_running = ?still_running, "shutdown deadline passed; not waiting any longer");
        self.deadline.cancel();
        let grace = tokio::time::Instant::now() + SHUTDOWN_GRACE;
        while !self.tasks.is_empty() {
            tokio::select! {
                done = self.join_next() => if let Some(done) = done { self.finished(done) },
                _ = tokio::time::sleep_until(grace) => break,
            }
        }
        self.tasks.abort_all();
        self.failure = Some(RunError::ShutdownTimedOut { after, still_running });
    }

    fn summary(&mut self, elapsed: Duration) -> RunSummary {
        let mut streamlets = Vec::new();
        for (name, runs) in std::mem::take(&mut self.done) {
            let mut total = runs[0].clone();
            for run in &runs[1..] {
                total.kind = run.kind.clone();
                total.records_in += run.records_in;
                for o in &run.outlets {
                    match total.outlets.iter_mut().find(|t| t.port == o.port) {
                        Some(t) => t.records += o.records,
                        None => total.outlets.push(o.clone()),
                    }
                }
                total.models.extend(run.models.iter().cloned());
                if run.strategy.is_some() {
                    total.strategy = run.strategy.clone();
                }
                for (k, v) in &run.counters {
                    *total.counters.entry(k.clone()).or_default() += v;
                }
            }
            streamlets.push((name, total));
        }
        let order = self.handle.with(|s| s.pipeline.clone());
        RunSummary {
            pipeline: order,
            elapsed,
            reloads: self.handle.with(|s| s.reloads),
            streamlets: streamlets.into_iter().map(|(_, s)| s).collect(),
        }
    }
}

/// Runs the topology until every finite source is drained, `stop` is cancelled (then intake
/// stops and what is in flight drains), or a streamlet fails.
pub async fn run(topology: Topology, stop: CancellationToken) -> Result<RunSummary, RunError> {
    run_reloading(topology, stop, None, Handle::default(), RunOptions::default()).await
}

/// Runs the topology, applying each configuration that arrives on `reloads`.
pub async fn run_reloading(
    mut topology: Topology,
    stop: CancellationToken,
    mut reloads: Option<mpsc::Receiver<Topology>>,
    handle: Handle,
    options: RunOptions,
) -> Result<RunSummary, RunError> {
    let started = Instant::now();
    crate::topology::carry_kafka_edges(&mut topology);
    topology.check_wiring().map_err(RunError::Wiring)?;
    handle.with(|s| {
        s.pipeline = topology.name.clone();
        s.config_hash = topology.config_hash();
    });
    let mut engine = Engine {
        pipeline: topology.name.clone(),
        defaults: topology.defaults.clone(),
        stop: stop.clone(),
        deadline: CancellationToken::new(),
        running: HashMap::new(),
        retiring: HashMap::new(),
        consumers: HashMap::new(),
        edges: HashMap::new(),
        waiting: HashMap::new(),
        next_id: 1,
        tasks: JoinSet::new(),
        task_names: HashMap::new(),
        done: BTreeMap::new(),
        failure: None,
        handle,
    };
    let specs = specs_of(&topology);
    let names: Vec<String> = topology.graph.node_weights().map(|n| n.name.clone()).collect();
    let prepared = engine.prepare_all(&names, &specs).await?;
    let shape = Shape::of(&topology);
    for (key, capacity) in shape.edges {
        engine.open_edge(key, capacity);
    }
    for (name, p) in prepared {
        engine.spawn(&name, specs[&name].clone(), shape.streamlets[&name].clone(), p);
    }
    tracing::debug!(pipeline = %engine.pipeline, streamlets = names.len(), "started");
    // Once stopping: when it began, and when to next say what is still running.
    let mut stopping: Option<(tokio::time::Instant, tokio::time::Instant)> = None;
    let report_every = SHUTDOWN_REPORT_EVERY.min(options.shutdown_timeout / 2);
    loop {
        tokio::select! {
            done = engine.join_next() => match done {
                Some(done) => engine.finished(done),
                None if engine.tasks.is_empty() => break,
                None => {}
            },
            Some(next) = async { match reloads.as_mut() { Some(r) => r.recv().await, None => None } }, if reloads.is_some() && !stop.is_cancelled() => {
                engine.reload(next).await;
            }
            _ = stop.cancelled(), if stopping.is_none() => {
                let now = tokio::time::Instant::now();
                stopping = Some((now, now + report_every));
            }
            _ = tokio::time::sleep_until(stopping.map_or_else(tokio::time::Instant::now, |(_, next)| next)), if stopping.is_some() => {
                let Some((since, _)) = stopping else { continue };
                let waited = since.elapsed();
                if waited >= options.shutdown_timeout {
                    engine.give_up(options.shutdown_timeout).await;
                    break;
                }
                tracing::warn!(waited_s = waited.as_secs(), still_running = ?engine.still_running(), "stopping: waiting for streamlets to drain");
                let next = (tokio::time::Instant::now() + report_every).min(since + options.shutdown_timeout);
                stopping = Some((since, next));
            }
        }
    }
    let summary = engine.summary(started.elapsed());
    match engine.failure {
        Some(e) => Err(e),
        None => Ok(summary),
    }
}

/// Cancels `stop` on the first SIGINT or SIGTERM, so intake stops and the pipeline drains.
pub fn stop_on_signals(stop: CancellationToken) {
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for SIGTERM");
                    let _ = ctrl_c.await;
                    stop.cancel();
                    return;
                }
            };
            tokio::select! {
                _ = ctrl_c => {},
                _ = term.recv() => {},
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("stop requested: no more intake, draining what is in flight");
        stop.cancel();
    });
}

/// Runs the pipeline in `path` and reloads it whenever its files change or SIGHUP arrives.
/// Returns the handle for status and the run's result.
pub async fn run_file(
    path: &std::path::Path,
    topology: Topology,
    stop: CancellationToken,
) -> (Handle, tokio::task::JoinHandle<Result<RunSummary, RunError>>) {
    run_file_with(path, topology, stop, RunOptions::default()).await
}

/// [`run_file`] with `options`.
pub async fn run_file_with(
    path: &std::path::Path,
    topology: Topology,
    stop: CancellationToken,
    options: RunOptions,
) -> (Handle, tokio::task::JoinHandle<Result<RunSummary, RunError>>) {
    let handle = Handle::default();
    let (tx, rx) = mpsc::channel(1);
    let watching = stop.child_token();
    let reloads = match reload::watch(path.to_path_buf(), &topology, tx, watching.clone(), handle.clone()) {
        Ok(()) => Some(rx),
        Err(e) => {
            tracing::warn!(error = %e, "hot reload is off");
            None
        }
    };
    let run = tokio::spawn(run_reloading(topology, stop, reloads, handle.clone(), options));
    let task = tokio::spawn(async move {
        let result = run.await.unwrap_or_else(|e| {
            Err(RunError::Streamlet {
                streamlet: "(runtime)".into(),
                reason: e.to_string(),
            })
        });
        watching.cancel();
        result
    });
    (handle, task)
}
