//! What a streamlet sees of the pipeline: its inlet and outlets (from `flow`), the stop
//! signals, and what it reports beyond record counts.

use std::sync::{Arc, Mutex};

use arrow_array::StringArray;
use tokio_util::sync::CancellationToken;

pub use crate::flow::ports::*;
use crate::flow::{Batch, Column, Field};

use crate::models::quality::{Decision, QualitySummary};
use crate::models::strategy::{StrategyStats, StrategySummary};
use crate::models::{ModelRegistry, ModelStatsSummary};

/// A model a streamlet serves, with its strategy id.
type ServedModel = (String, Arc<ModelRegistry>);

/// What a streamlet reports beyond record counts, for the run summary and metrics.
#[derive(Clone, Default)]
pub struct Telemetry {
    /// The models served, with the strategy's id of each (`""` for a scorer of one model).
    models: Arc<Mutex<Vec<ServedModel>>>,
    strategy: Arc<Mutex<Option<Arc<StrategyStats>>>>,
    counters: Arc<Mutex<std::collections::BTreeMap<String, u64>>>,
    lag: Arc<Mutex<std::collections::BTreeMap<(String, i32), i64>>>,
    quality: Arc<Mutex<Option<QualitySummary>>>,
    drift: Arc<Mutex<Vec<crate::models::profile::DriftGauge>>>,
}

impl Telemetry {
    /// A Kafka source's lag on the partitions of `topic` it reads now (messages not yet
    /// read, per partition); partitions it no longer reads are forgotten.
    pub fn set_topic_lag(&self, topic: &str, lags: &[(i32, i64)]) {
        let mut lag = self.lag.lock().unwrap_or_else(|p| p.into_inner());
        lag.retain(|(t, _), _| t != topic);
        lag.extend(lags.iter().map(|&(partition, n)| ((topic.to_string(), partition), n)));
    }

    /// Every topic-partition lag of this streamlet.
    pub fn lag(&self) -> Vec<(String, i32, i64)> {
        self.lag
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|((t, p), l)| (t.clone(), *p, *l))
            .collect()
    }

    /// Counts an event of a streamlet (`drift_events{field="sqft_living"}`, say).
    pub fn count(&self, name: &str, n: u64) {
        *self
            .counters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(name.to_string())
            .or_default() += n;
    }

    /// Every event count of the streamlet.
    pub fn counters(&self) -> std::collections::BTreeMap<String, u64> {
        self.counters.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// A model registry this streamlet serves from.
    pub fn serve_models(&self, arm: &str, registry: Arc<ModelRegistry>) {
        self.models
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((arm.to_string(), registry));
    }

    fn registries(&self) -> Vec<ServedModel> {
        self.models.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The statistics of the strategy this streamlet serves with.
    pub fn serve_strategy(&self, stats: Arc<StrategyStats>) {
        *self.strategy.lock().unwrap_or_else(|p| p.into_inner()) = Some(stats);
    }

    /// Whether every model of this streamlet has a version serving (`None`: it serves no models).
    pub fn models_ready(&self) -> Option<bool> {
        let registries = self.registries();
        (!registries.is_empty()).then(|| registries.iter().all(|(_, r)| r.has_model()))
    }

    /// The lifecycle events of this streamlet's models, oldest first, each with its model's
    /// strategy id.
    pub fn model_history(&self) -> Vec<crate::models::lifecycle::LifecycleEvent> {
        let mut events: Vec<_> = self
            .registries()
            .into_iter()
            .flat_map(|(arm, r)| {
                r.lifecycle().history().into_iter().map(move |mut e| {
                    e.arm = (!arm.is_empty()).then(|| arm.clone());
                    e
                })
            })
            .collect();
        events.sort_by(|a, b| a.at.cmp(&b.at));
        events
    }

    /// Statistics of every model version that served in this streamlet.
    pub fn model_stats(&self) -> Vec<ModelStatsSummary> {
        self.registries().iter().flat_map(|(_, r)| r.stats()).collect()
    }

    /// An evaluator's latest figures.
    pub fn set_quality(&self, summary: QualitySummary) {
        *self.quality.lock().unwrap_or_else(|p| p.into_inner()) = Some(summary);
    }

    /// The figures of the models an evaluator judges, if this streamlet is one.
    pub fn quality(&self) -> Option<QualitySummary> {
        self.quality.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// A validator's drift figures at its last evaluation.
    pub fn set_drift(&self, gauges: Vec<crate::models::profile::DriftGauge>) {
        *self.drift.lock().unwrap_or_else(|p| p.into_inner()) = gauges;
    }

    /// The drift figures of a validator watching drift (empty otherwise).
    pub fn drift(&self) -> Vec<crate::models::profile::DriftGauge> {
        self.drift.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Statistics of the strategy, if the streamlet serves with one.
    pub fn strategy_stats(&self) -> Option<StrategySummary> {
        let stats = self.strategy.lock().unwrap_or_else(|p| p.into_inner()).clone();
        stats.map(|s| s.summary())
    }
}

/// Everything a running streamlet gets from the runtime.
pub struct Io {
    pub name: String,
    pub inlet: Inlet,
    pub outlets: Outlets,
    /// Cancelled when sources must stop taking in records (shutdown or failure elsewhere).
    pub stop_intake: CancellationToken,
    /// Cancelled when a stop has taken longer than the shutdown deadline: sources stop waiting
    /// for their records in flight and commit only what was written.
    pub deadline: CancellationToken,
    pub batch_size: usize,
    /// The longest a source lets a batch fill while downstream is busy (never while it is free).
    pub linger: std::time::Duration,
    pub telemetry: Telemetry,
    /// The scorers of the pipeline, by name, for a streamlet that decides what they serve.
    pub controls: Controls,
}

/// The running scorers of a pipeline by name: an evaluator's decisions (promote a challenger,
/// roll a version back) reach the scorer instance running now, whichever that is; decisions
/// made before a restart wait here for their scorer to start.
#[derive(Clone, Default)]
pub struct Controls(Arc<Mutex<ControlsInner>>);

type ServingRef = std::sync::Weak<crate::streamlets::scorer::serving::Serving>;

#[derive(Default)]
struct ControlsInner {
    running: std::collections::HashMap<String, ServingRef>,
    /// Per scorer: the configuration fingerprint decisions were made for, and the decisions.
    restoring: std::collections::HashMap<String, (String, Vec<Decision>)>,
    /// Each running evaluator's reports, for a trainer watching a quality floor.
    evaluators: std::collections::HashMap<String, Telemetry>,
    /// Each running trainer's door for runs asked by hand.
    trainers: std::collections::HashMap<String, tokio::sync::mpsc::Sender<()>>,
}

impl Controls {
    fn inner(&self) -> std::sync::MutexGuard<'_, ControlsInner> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The scorer `name` serves with `serving` from now on. Returns the decisions made before
    /// a restart for this very configuration of it, to apply before it scores; those made for
    /// another configuration are dropped (an edit of the pipeline wins over them).
    pub fn register(&self, name: &str, serving: &Arc<crate::streamlets::scorer::serving::Serving>) -> Vec<Decision> {
        let mut inner = self.inner();
        inner.running.insert(name.to_string(), Arc::downgrade(serving));
        match inner.restoring.remove(name) {
            Some((fingerprint, decisions)) if fingerprint == serving.fingerprint() => decisions,
            Some((_, decisions)) if !decisions.is_empty() => {
                tracing::info!(scorer = %name, decisions = decisions.len(), "the scorer's configuration changed since its earlier decisions: they no longer apply");
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    /// The trainer `name` takes runs asked by hand through `door` from now on.
    pub fn register_trainer(&self, name: &str, door: tokio::sync::mpsc::Sender<()>) {
        self.inner().trainers.insert(name.to_string(), door);
    }

    /// Asks the trainer `name` for a run.
    pub fn run_trainer(&self, name: &str) -> Result<(), String> {
        let door = self.inner().trainers.get(name).cloned();
        let Some(door) = door else {
            return Err(format!("no trainer `{name}` runs in this pipeline"));
        };
        door.try_send(()).map_err(|e| match e {
            tokio::sync::mpsc::error::TrySendError::Full(()) => format!("a run of `{name}` was asked for already"),
            tokio::sync::mpsc::error::TrySendError::Closed(()) => format!("the trainer `{name}` has stopped"),
        })
    }

    /// The evaluator `name` reports through `telemetry` from now on.
    pub fn register_evaluator(&self, name: &str, telemetry: &Telemetry) {
        self.inner().evaluators.insert(name.to_string(), telemetry.clone());
    }

    /// The latest figures of the evaluator `name`.
    pub fn quality_of(&self, name: &str) -> Option<QualitySummary> {
        let telemetry = self.inner().evaluators.get(name).cloned()?;
        telemetry.quality()
    }

    /// What the scorer `name` serves with, while it runs.
    pub fn serving(&self, name: &str) -> Option<Arc<crate::streamlets::scorer::serving::Serving>> {
        self.inner().running.get(name)?.upgrade()
    }

    /// Decisions made for the scorer `name` (under the configuration `fingerprint`) before a
    /// restart: applied when it starts, if its configuration is the same.
    pub fn restore(&self, name: &str, fingerprint: String, decisions: Vec<Decision>) {
        self.inner()
            .restoring
            .insert(name.to_string(), (fingerprint, decisions));
    }
}

/// Adds the `_error` field rejected records carry (which streamlet, why, where in the record)
/// beside their original content; one reason and path per record.
pub fn with_errors(mut batch: Batch, streamlet: &str, reasons: Vec<String>, paths: Vec<String>) -> Batch {
    let n = batch.len();
    debug_assert!(reasons.len() == n && paths.len() == n);
    let error = Batch::new(
        n,
        vec![
            Field {
                name: "streamlet".into(),
                column: Column::repeated(streamlet, n),
            },
            Field {
                name: "reason".into(),
                column: Column::strings(StringArray::from(reasons)),
            },
            Field {
                name: "path".into(),
                column: Column::strings(StringArray::from(paths)),
            },
        ],
    );
    batch.set("_error", Column::objects(error));
    batch
}

/// [`with_errors`] with the same reason and path for every record.
pub fn with_error(batch: Batch, streamlet: &str, reason: &str, path: &str) -> Batch {
    let n = batch.len();
    with_errors(batch, streamlet, vec![reason.to_string(); n], vec![path.to_string(); n])
}
