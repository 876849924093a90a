//! The control loop's state: the running streamlet instances, the edges between them, and
//! how a reload is applied (every new piece built before an old one stops, queues handed over).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::status::{Counters, Handle, InstanceView, RunSummary, StreamletSummary};
use super::{RunError, SHUTDOWN_GRACE};
use crate::spec::{Defaults, StreamletSpec};
use crate::streamlets::io::{
    Consumers, EdgeId, Envelope, Handback, InHand, Inlet, Io, Outlet, Outlets, Telemetry, Unconsumed,
};
use crate::streamlets::{Prepare, Prepared, StreamletError};
use crate::topology::diff::{EdgeKey, Shape, TopologyDiff};
use crate::topology::Topology;

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
pub(super) struct Engine {
    pub(super) pipeline: String,
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
    controls: crate::streamlets::io::Controls,
    pub(super) tasks: JoinSet<Done>,
    task_names: HashMap<tokio::task::Id, String>,
    done: BTreeMap<String, Vec<StreamletSummary>>,
    pub(super) failure: Option<RunError>,
    handle: Handle,
}

pub(super) fn specs_of(topology: &Topology) -> BTreeMap<String, StreamletSpec> {
    topology
        .graph
        .node_weights()
        .map(|n| (n.name.clone(), n.spec.clone()))
        .collect()
}

impl Engine {
    pub(super) fn new(topology: &Topology, stop: CancellationToken, handle: Handle) -> Engine {
        Engine {
            pipeline: topology.name.clone(),
            defaults: topology.defaults.clone(),
            stop,
            deadline: CancellationToken::new(),
            running: HashMap::new(),
            retiring: HashMap::new(),
            consumers: HashMap::new(),
            edges: HashMap::new(),
            waiting: HashMap::new(),
            next_id: 1,
            controls: handle.controls(),
            tasks: JoinSet::new(),
            task_names: HashMap::new(),
            done: BTreeMap::new(),
            failure: None,
            handle,
        }
    }

    pub(super) fn consumers(&mut self, from: &str, port: &str) -> Arc<Consumers> {
        self.consumers
            .entry((from.to_string(), port.to_string()))
            .or_insert_with(|| Arc::new(Consumers::default()))
            .clone()
    }

    /// Creates the channel of an edge: its sender joins the outlet's consumers, its receiver waits
    /// for the consuming streamlet to start.
    pub(super) fn open_edge(&mut self, key: EdgeKey, capacity: usize) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let id = self.next_id;
        self.next_id += 1;
        self.consumers(&key.from, &key.port).add(id, tx);
        self.waiting.entry(key.to.clone()).or_default().push((id, rx));
        self.edges.insert(key, id);
        self.publish_edges();
    }

    /// Shows the current edges to the handle.
    pub(super) fn publish_edges(&self) {
        let (edges, consumers) = (self.edges.clone(), self.consumers.clone());
        self.handle.with(|s| {
            s.edges = edges;
            s.consumers = consumers;
        });
    }

    /// Removes an edge: the outlet stops sending to it, and its consumer sees it end once drained.
    pub(super) fn close_edge(&mut self, key: &EdgeKey) {
        if let Some(id) = self.edges.remove(key) {
            if let Some(c) = self.consumers.get(&(key.from.clone(), key.port.clone())) {
                c.remove(id);
            }
        }
        self.publish_edges();
    }

    /// Starts a prepared streamlet with the receivers waiting for it.
    pub(super) fn spawn(&mut self, name: &str, spec: StreamletSpec, fingerprint: String, prepared: Prepared) {
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
            recent: inlet.recent.clone(),
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
            controls: self.controls.clone(),
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
    pub(super) fn finished(&mut self, (name, id, result): Done) {
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

    pub(super) async fn join_next(&mut self) -> Option<Done> {
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
    pub(super) async fn prepare_all(
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
                controls: self.controls.clone(),
            };
            match crate::streamlets::prepare(&specs[name].kind, &ctx).await {
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
    pub(super) async fn reload(&mut self, mut topology: Topology) {
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
    pub(super) fn still_running(&self) -> Vec<String> {
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
    pub(super) async fn give_up(&mut self, after: Duration) {
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

    pub(super) fn summary(&mut self, elapsed: Duration) -> RunSummary {
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
