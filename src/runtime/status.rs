//! What a running pipeline shows outside its control loop: live status (streamlets, edges,
//! reload counts) through a [`Handle`], and the summary of a whole run.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

use crate::models::quality::QualitySummary;
use crate::models::strategy::StrategySummary;
use crate::models::ModelStatsSummary;
use crate::streamlets::io::{Consumers, Counter, EdgeId, Telemetry};
use crate::topology::diff::EdgeKey;

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
    /// What an evaluator measured of each model.
    pub quality: Option<QualitySummary>,
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
pub(super) struct Counters {
    pub(super) kind: &'static str,
    pub(super) received: Arc<Counter>,
    pub(super) busy: Arc<prometheus_client::metrics::histogram::Histogram>,
    pub(super) recent: Arc<Mutex<hdrhistogram::Histogram<u64>>>,
    pub(super) sent: Vec<(String, bool, Arc<Counter>)>,
    pub(super) telemetry: Telemetry,
}

impl Counters {
    pub(super) fn summary(&self, name: &str) -> StreamletSummary {
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
            quality: self.telemetry.quality(),
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
    pub quality: Option<QualitySummary>,
    /// For scorers: the lifecycle of their models' versions, oldest first.
    pub history: Vec<crate::models::lifecycle::LifecycleEvent>,
    pub counters: BTreeMap<String, u64>,
    /// For Kafka sources: messages not yet read, per topic and partition.
    pub lag: Vec<(String, i32, i64)>,
    /// For validators watching drift: each field's figures at the last evaluation.
    pub drift: Vec<crate::models::profile::DriftGauge>,
}

impl StreamletStatus {
    /// Records sent to its error outlets (`errors`, a validator's `invalid`).
    pub fn errors(&self) -> u64 {
        self.outlets
            .iter()
            .filter(|o| crate::streamlets::kind::carries_errors(&o.port))
            .map(|o| o.records)
            .sum()
    }
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
pub(super) struct Shared {
    pub(super) pipeline: String,
    pub(super) config_hash: String,
    pub(super) reloads: u64,
    pub(super) rejected: u64,
    pub(super) rolled_back: u64,
    pub(super) last_error: Option<String>,
    pub(super) instances: BTreeMap<String, InstanceView>,
    pub(super) edges: HashMap<EdgeKey, EdgeId>,
    pub(super) consumers: HashMap<(String, String), Arc<Consumers>>,
    /// The pipeline's scorers, evaluators and trainers, for what reaches them from outside.
    pub(super) controls: crate::streamlets::io::Controls,
}

pub(super) struct InstanceView {
    pub(super) id: u64,
    pub(super) running: bool,
    pub(super) failure: Option<String>,
    pub(super) counters: Counters,
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

    /// Asks the trainer `name` for a run now (`POST /api/trainers/{name}/run`).
    pub fn run_trainer(&self, name: &str) -> Result<(), String> {
        self.with(|s| s.controls.clone()).run_trainer(name)
    }

    pub(super) fn controls(&self) -> crate::streamlets::io::Controls {
        self.with(|s| s.controls.clone())
    }

    pub(super) fn with<T>(&self, f: impl FnOnce(&mut Shared) -> T) -> T {
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
                        quality: summary.quality,
                        history: view.counters.telemetry.model_history(),
                        counters: summary.counters,
                        lag: view.counters.telemetry.lag(),
                        drift: view.counters.telemetry.drift(),
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

    /// Each streamlet's batch times since the last call: (name, p50 µs, p99 µs, batches).
    /// For the history, which alone calls it (each call starts the next interval).
    pub fn take_batch_times(&self) -> Vec<(String, u64, u64, u64)> {
        self.with(|s| {
            s.instances
                .iter()
                .map(|(name, v)| {
                    let mut h = v.counters.recent.lock().unwrap_or_else(|p| p.into_inner());
                    let figures = (
                        name.clone(),
                        h.value_at_quantile(0.5),
                        h.value_at_quantile(0.99),
                        h.len(),
                    );
                    h.reset();
                    figures
                })
                .collect()
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
