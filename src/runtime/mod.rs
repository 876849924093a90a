//! Runs a topology: one tokio task per streamlet, bounded channels for edges, orderly shutdown.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use petgraph::visit::EdgeRef;
use petgraph::Direction;
use serde::Serialize;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::models::strategy::StrategySummary;
use crate::models::ModelStatsSummary;
use crate::streamlets::io::{Counter, Inlet, Io, Outlet, OutletMode, Outlets, Telemetry};
use crate::topology::Topology;

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("streamlet `{streamlet}` failed: {reason}")]
    Streamlet { streamlet: String, reason: String },
}

/// Records counted on one outlet.
#[derive(Debug, Clone, Serialize)]
pub struct OutletSummary {
    pub port: String,
    pub records: u64,
    pub discarded: bool,
}

/// What one streamlet did during a run.
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
}

/// What a whole run did.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    pub pipeline: String,
    pub elapsed: Duration,
    pub streamlets: Vec<StreamletSummary>,
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

/// Live counters of a running streamlet.
struct Counters {
    name: String,
    kind: &'static str,
    received: Arc<Counter>,
    sent: Vec<(String, OutletMode, Arc<Counter>)>,
    telemetry: Telemetry,
}

/// Runs the topology until every finite source is drained, `stop` is cancelled
/// (then intake stops and what is in flight drains), or a streamlet fails.
pub async fn run(topology: Topology, stop: CancellationToken) -> Result<RunSummary, RunError> {
    let started = Instant::now();
    let graph = &topology.graph;
    let mut senders: HashMap<(usize, String), Vec<mpsc::Sender<_>>> = HashMap::new();
    let mut receivers: HashMap<usize, Vec<mpsc::Receiver<_>>> = HashMap::new();
    for edge in graph.edge_references() {
        let (tx, rx) = mpsc::channel(edge.weight().capacity);
        senders
            .entry((edge.source().index(), edge.weight().port.clone()))
            .or_default()
            .push(tx);
        receivers.entry(edge.target().index()).or_default().push(rx);
    }
    let stop_intake = stop.child_token();
    let mut tasks = JoinSet::new();
    let mut names = HashMap::new();
    let mut counters = Vec::new();
    for index in graph.node_indices() {
        let node = &graph[index];
        let kind = node.spec.kind.outlets();
        let mut outlets = Outlets::default();
        let mut sent = Vec::new();
        for port in kind.names {
            let to = senders.remove(&(index.index(), port.to_string())).unwrap_or_default();
            let mode = if !to.is_empty() {
                OutletMode::Connected
            } else if node.spec.discard.iter().any(|d| d == port) {
                OutletMode::Discarded
            } else {
                OutletMode::Logged
            };
            let outlet = Outlet::new(&node.name, port, mode, to);
            sent.push((port.to_string(), mode, outlet.sent.clone()));
            outlets.insert(outlet);
        }
        let inlet = Inlet::new(receivers.remove(&index.index()).unwrap_or_default());
        let telemetry = Telemetry::default();
        counters.push(Counters {
            name: node.name.clone(),
            kind: node.spec.kind.name(),
            received: inlet.received.clone(),
            sent,
            telemetry: telemetry.clone(),
        });
        let io = Io {
            name: node.name.clone(),
            inlet,
            outlets,
            stop_intake: stop_intake.clone(),
            batch_size: topology.defaults.batch_size,
            linger: Duration::from_millis(topology.defaults.linger_ms),
            telemetry,
        };
        let handle = tasks.spawn(crate::streamlets::run(node.spec.clone(), io));
        names.insert(handle.id(), node.name.clone());
        tracing::debug!(
            streamlet = %node.name,
            kind = node.spec.kind.name(),
            inputs = graph.edges_directed(index, Direction::Incoming).count(),
            "started"
        );
    }
    let mut failure = None;
    while let Some(done) = tasks.join_next_with_id().await {
        let (id, result) = match done {
            Ok((id, result)) => (id, result.map_err(|e| e.to_string())),
            Err(e) => (e.id(), Err(format!("task ended abnormally: {e}"))),
        };
        let streamlet = names.get(&id).cloned().unwrap_or_default();
        match result {
            Ok(()) => tracing::debug!(%streamlet, "finished"),
            Err(reason) => {
                tracing::error!(%streamlet, %reason, "streamlet failed; stopping the pipeline");
                stop_intake.cancel();
                failure.get_or_insert(RunError::Streamlet { streamlet, reason });
            }
        }
    }
    let summary = RunSummary {
        pipeline: topology.name.clone(),
        elapsed: started.elapsed(),
        streamlets: counters
            .into_iter()
            .map(|c| StreamletSummary {
                name: c.name,
                kind: c.kind.to_string(),
                records_in: c.received.get(),
                outlets: c
                    .sent
                    .into_iter()
                    .map(|(port, mode, n)| OutletSummary {
                        port,
                        records: n.get(),
                        discarded: mode == OutletMode::Discarded,
                    })
                    .collect(),
                models: c.telemetry.model_stats(),
                strategy: c.telemetry.strategy_stats(),
            })
            .collect(),
    };
    match failure {
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
