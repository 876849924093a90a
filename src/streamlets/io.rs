//! What a streamlet sees of the pipeline: records in batches, an inlet, named outlets and a stop signal.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures::stream::{SelectAll, StreamExt};
use serde_json::{Map, Value};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;

use crate::models::strategy::{StrategyStats, StrategySummary};
use crate::models::{ModelRegistry, ModelStatsSummary};

/// A record is a JSON object.
pub type Record = Map<String, Value>;

/// Records travel between streamlets in batches, so per-record channel cost is amortised.
pub type Batch = Vec<Record>;

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

/// What happens to the records an outlet emits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutletMode {
    /// Sent to every consumer (each gets every record).
    Connected,
    /// Dropped on purpose (`discard:`), counted.
    Discarded,
    /// Nothing consumes this optional outlet: each record is logged as a warning.
    Logged,
}

/// One named output of a streamlet, fanning out to every consumer.
pub struct Outlet {
    pub streamlet: String,
    pub port: String,
    pub mode: OutletMode,
    senders: Vec<mpsc::Sender<Batch>>,
    pub sent: Arc<Counter>,
}

impl Outlet {
    pub fn new(
        streamlet: &str,
        port: &str,
        mode: OutletMode,
        senders: Vec<mpsc::Sender<Batch>>,
    ) -> Self {
        Outlet {
            streamlet: streamlet.to_string(),
            port: port.to_string(),
            mode,
            senders,
            sent: Arc::new(Counter::default()),
        }
    }

    /// Sends a batch to every consumer, waiting while any of them is full (backpressure).
    pub async fn send(&self, batch: Batch) -> Result<(), Closed> {
        if batch.is_empty() {
            return Ok(());
        }
        self.sent.add(batch.len() as u64);
        match self.mode {
            OutletMode::Discarded => Ok(()),
            OutletMode::Logged => {
                for record in &batch {
                    tracing::warn!(
                        streamlet = %self.streamlet,
                        outlet = %self.port,
                        record = %serde_json::Value::Object(record.clone()),
                        "record on an outlet nothing consumes"
                    );
                }
                Ok(())
            }
            OutletMode::Connected => {
                let Some((last, others)) = self.senders.split_last() else {
                    return Ok(());
                };
                for sender in others {
                    sender.send(batch.clone()).await.map_err(|_| Closed)?;
                }
                last.send(batch).await.map_err(|_| Closed)
            }
        }
    }
}

/// A streamlet's outlets by port name.
#[derive(Default)]
pub struct Outlets(HashMap<String, Outlet>);

impl Outlets {
    pub fn insert(&mut self, outlet: Outlet) {
        self.0.insert(outlet.port.clone(), outlet);
    }

    /// The outlet named `port`. Verification guarantees every declared port exists.
    pub fn get(&self, port: &str) -> &Outlet {
        self.0.get(port).unwrap_or_else(|| {
            panic!("outlet `{port}` was not wired: the topology and the streamlet disagree")
        })
    }

    /// The outlet named `port`, for outlets that exist only in some configurations.
    pub fn find(&self, port: &str) -> Option<&Outlet> {
        self.0.get(port)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Outlet> {
        self.0.values()
    }
}

/// The merged input of a streamlet: batches from every upstream outlet it names.
pub struct Inlet {
    streams: SelectAll<ReceiverStream<Batch>>,
    pub received: Arc<Counter>,
}

impl Inlet {
    pub fn new(receivers: Vec<mpsc::Receiver<Batch>>) -> Self {
        Inlet {
            streams: futures::stream::select_all(receivers.into_iter().map(ReceiverStream::new)),
            received: Arc::new(Counter::default()),
        }
    }

    /// The next batch, or `None` once every upstream has finished.
    pub async fn recv(&mut self) -> Option<Batch> {
        let batch = self.streams.next().await?;
        self.received.add(batch.len() as u64);
        Some(batch)
    }
}

/// What a streamlet reports beyond record counts, for the run summary and metrics.
#[derive(Clone, Default)]
pub struct Telemetry {
    models: Arc<Mutex<Vec<Arc<ModelRegistry>>>>,
    strategy: Arc<Mutex<Option<Arc<StrategyStats>>>>,
}

impl Telemetry {
    /// A model registry this streamlet serves from.
    pub fn serve_models(&self, registry: Arc<ModelRegistry>) {
        self.models
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(registry);
    }

    /// The statistics of the strategy this streamlet serves with.
    pub fn serve_strategy(&self, stats: Arc<StrategyStats>) {
        *self.strategy.lock().unwrap_or_else(|p| p.into_inner()) = Some(stats);
    }

    /// Statistics of every model version that served in this streamlet.
    pub fn model_stats(&self) -> Vec<ModelStatsSummary> {
        let registries = self
            .models
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        registries.iter().flat_map(|r| r.stats()).collect()
    }

    /// Statistics of the strategy, if the streamlet serves with one.
    pub fn strategy_stats(&self) -> Option<StrategySummary> {
        let stats = self
            .strategy
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
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
    pub batch_size: usize,
    pub linger: std::time::Duration,
    pub telemetry: Telemetry,
}

/// The `_error` field a rejected record carries, beside its original content.
pub fn with_error(mut record: Record, streamlet: &str, reason: &str, path: &str) -> Record {
    let mut error = Map::new();
    error.insert("streamlet".into(), streamlet.into());
    error.insert("reason".into(), reason.into());
    error.insert("path".into(), path.into());
    record.insert("_error".into(), Value::Object(error));
    record
}
