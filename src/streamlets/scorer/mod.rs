//! The scorer: records become rows of the model's input tensor, are scored in micro-batches by the
//! model version serving at that moment, and leave on `out` with the prediction and `_model`
//! (which version scored them). Records that cannot be scored leave on `errors`, with the reason.

pub mod features;
pub mod outputs;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::stream::{FuturesOrdered, StreamExt};
use serde_json::{Map, Value};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::io::with_error;
use super::{Batch, Io, Stop, StreamletError};
use crate::models::registry::Source;
use crate::models::version::Expectation;
use crate::models::{ModelRegistry, ModelVersion};
use crate::spec::{OutputMapping, ScorerConfig};
use features::Features;

/// What scoring a batch needs besides the model: the same for every batch of a scorer.
pub struct BatchScorer {
    streamlet: String,
    features: Features,
    outputs: Vec<OutputMapping>,
    audit_field: String,
}

/// The result of one batch: scored records and records that could not be scored.
pub type Scored = (Batch, Batch);

impl BatchScorer {
    pub fn new(streamlet: &str, config: &ScorerConfig) -> Self {
        BatchScorer {
            streamlet: streamlet.to_string(),
            features: Features::new(&config.features),
            outputs: config.outputs.clone(),
            audit_field: config.audit_field.clone(),
        }
    }

    /// What the scorer needs of a model version.
    pub fn expectation(&self, config: &ScorerConfig) -> Expectation {
        let mut tensors: Vec<String> = self.outputs.iter().map(|o| o.tensor.clone()).collect();
        tensors.dedup();
        Expectation {
            input: config.features.input.clone(),
            width: self.features.width(),
            outputs: tensors,
        }
    }

    /// Scores a batch with one model version: the scored records and those that could
    /// not be scored (with `_error`). Blocking (inference runs here).
    pub fn score(&self, model: &ModelVersion, batch: Batch) -> Scored {
        let mut rows = Vec::with_capacity(batch.len() * self.features.width());
        let mut ready = Vec::with_capacity(batch.len());
        let mut errors = Vec::new();
        for record in batch {
            match self.features.row(&record, &mut rows) {
                Ok(()) => ready.push(record),
                Err(e) => errors.push(with_error(
                    record,
                    &self.streamlet,
                    &e.reason,
                    &format!("/{}", e.field),
                )),
            }
        }
        if ready.is_empty() {
            return (ready, errors);
        }
        match model.run(&rows, ready.len()) {
            Ok((tensors, latency_us)) => {
                let audit = self.audit(model, latency_us);
                let resolved = outputs::resolve(&self.outputs, &tensors);
                for (i, record) in ready.iter_mut().enumerate() {
                    outputs::apply(&resolved, i, record);
                    record.insert(self.audit_field.clone(), audit.clone());
                }
                (ready, errors)
            }
            Err(e) => {
                let reason = format!(
                    "model {} v{}: {e}",
                    model.descriptor.name, model.descriptor.version
                );
                errors.extend(
                    ready
                        .into_iter()
                        .map(|r| with_error(r, &self.streamlet, &reason, "")),
                );
                (Vec::new(), errors)
            }
        }
    }

    /// The audit every record of a batch carries: which model version, when, how long.
    fn audit(&self, model: &ModelVersion, latency_us: u64) -> Value {
        let mut audit = Map::new();
        audit.insert("name".into(), model.descriptor.name.clone().into());
        audit.insert("version".into(), model.descriptor.version.clone().into());
        audit.insert("sha256".into(), model.short_sha.clone().into());
        audit.insert("strategy".into(), "single".into());
        audit.insert(
            "scored_at".into(),
            humantime::format_rfc3339_micros(SystemTime::now())
                .to_string()
                .into(),
        );
        audit.insert("latency_us".into(), latency_us.into());
        Value::Object(audit)
    }
}

pub async fn run(config: ScorerConfig, mut io: Io) -> Result<(), Stop> {
    let scoring = Arc::new(BatchScorer::new(&io.name, &config));
    let expect = scoring.expectation(&config);
    let source = Source {
        name: config.model.name.clone(),
        folder: config.model.folder.clone(),
        pinned: config.model.version.clone(),
    };
    let sessions = config.sessions.max(1);
    let registry =
        tokio::task::spawn_blocking(move || ModelRegistry::open(source, expect, sessions))
            .await
            .map_err(|e| StreamletError::Internal(e.to_string()))?
            .map_err(StreamletError::from)?;
    io.telemetry.serve_models(registry.clone());
    let stop_watching = CancellationToken::new();
    let watcher = registry
        .clone()
        .watch(stop_watching.clone())
        .map_err(StreamletError::from)?;
    let result = score_stream(&mut io, &registry, scoring, &config, sessions).await;
    stop_watching.cancel();
    let _ = watcher.await;
    result
}

/// Micro-batches the inlet and scores up to `sessions` batches at once, emitting in order.
async fn score_stream(
    io: &mut Io,
    registry: &Arc<ModelRegistry>,
    scoring: Arc<BatchScorer>,
    config: &ScorerConfig,
    sessions: usize,
) -> Result<(), Stop> {
    let max_batch = config.batch.max_batch.max(1);
    let max_wait = Duration::from_millis(config.batch.max_wait_ms);
    let out = io.outlets.get("out");
    let errors = io.outlets.get("errors");
    let mut pending: Batch = Vec::new();
    let mut deadline: Option<Instant> = None;
    let mut in_flight: FuturesOrdered<JoinHandle<Scored>> = FuturesOrdered::new();
    let mut input_open = true;
    let submit = |batch: Batch, in_flight: &mut FuturesOrdered<JoinHandle<Scored>>| {
        let model = registry.current();
        let scoring = scoring.clone();
        in_flight.push_back(tokio::task::spawn_blocking(move || {
            scoring.score(&model, batch)
        }));
    };
    loop {
        while pending.len() >= max_batch {
            let rest = pending.split_off(max_batch);
            submit(std::mem::replace(&mut pending, rest), &mut in_flight);
        }
        if pending.is_empty() {
            deadline = None;
        } else if deadline.is_none() {
            deadline = Some(Instant::now() + max_wait);
        }
        let done = if in_flight.len() >= sessions {
            in_flight.next().await
        } else if !input_open {
            if !pending.is_empty() {
                submit(std::mem::take(&mut pending), &mut in_flight);
                continue;
            }
            match in_flight.next().await {
                Some(done) => Some(done),
                None => return Ok(()),
            }
        } else {
            tokio::select! {
                batch = io.inlet.recv() => {
                    match batch {
                        Some(batch) => pending.extend(batch),
                        None => input_open = false,
                    }
                    None
                }
                _ = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                    submit(std::mem::take(&mut pending), &mut in_flight);
                    None
                }
                done = in_flight.next(), if !in_flight.is_empty() => done,
            }
        };
        if let Some(done) = done {
            let (scored, failed) = done.map_err(|e| {
                StreamletError::Internal(format!("scoring stopped abnormally: {e}"))
            })?;
            out.send(scored).await?;
            errors.send(failed).await?;
        }
    }
}
