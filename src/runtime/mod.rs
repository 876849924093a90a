//! Runs a topology: one tokio task per streamlet, bounded channels for edges, orderly shutdown,
//! and reconfiguration while running (hot reload): unchanged streamlets keep running, changed
//! ones are replaced and take over the records waiting for them, removed ones drain and stop.

mod engine;
pub mod reload;
mod status;

use engine::{specs_of, Engine};
pub use status::{EdgeStatus, Handle, OutletSummary, RunSummary, Status, StreamletStatus, StreamletSummary};

use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::topology::diff::Shape;
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
    let mut engine = Engine::new(&topology, stop.clone(), handle);
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
