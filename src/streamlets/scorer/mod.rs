//! The scorer: records become rows of the model's input tensor, are scored in micro-batches by the
//! model version(s) serving at that moment, and leave on `out` with the prediction and `_model`
//! (which strategy and version answered). Records that cannot be scored leave on `errors`, with
//! the reason. With several models a strategy says how they answer (see `serving`).

pub mod config;

pub mod features;
pub mod outputs;
pub mod serving;
mod sessions;

use self::config::ScorerPort;
use std::sync::Arc;
use std::time::SystemTime;

use arrow_array::BooleanArray;
use serde_json::{Map, Value};
use tokio_util::sync::{CancellationToken, DropGuard};

use super::io::{with_error, with_errors};
use super::{Batch, Io, Stop, StreamletError};
use crate::flow::{Column, ColumnBuilder, Owned};
use crate::models::config::OutputMapping;
use crate::models::quality::Decision;
use crate::models::registry::Source;
use crate::models::version::Expectation;
use crate::models::{ModelRegistry, ModelVersion};
use config::ScorerConfig;
use features::Features;
use serving::Serving;

/// The result of scoring one batch.
#[derive(Debug, Default)]
pub struct Scored {
    /// Records with their answer and `_model`.
    pub out: Batch,
    /// Records that could not be scored, with `_error`.
    pub errors: Batch,
    /// Shadow models' answers, when a shadow strategy emits them.
    pub shadow: Batch,
}

/// What scoring needs besides the models: the same for every batch of a scorer.
pub struct BatchScorer {
    streamlet: String,
    features: Features,
    outputs: Vec<OutputMapping>,
    audit_field: String,
}

/// Records that became rows, the rows, and the records that could not.
pub struct Rows {
    pub ready: Batch,
    pub rows: Vec<f32>,
    pub errors: Batch,
}

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
        tensors.sort();
        tensors.dedup();
        Expectation {
            input: config.features.input.clone(),
            width: self.features.width(),
            outputs: tensors,
        }
    }

    pub fn outputs(&self) -> &[OutputMapping] {
        &self.outputs
    }

    pub fn streamlet(&self) -> &str {
        &self.streamlet
    }

    /// Turns a batch into rows; records that cannot be rows get `_error` naming the feature.
    pub fn rows(&self, batch: Batch) -> Rows {
        let mut rows = Vec::new();
        let made = self.features.rows(&batch, &mut rows);
        if made.iter().all(|m| m.is_ok()) {
            return Rows {
                ready: batch,
                rows,
                errors: Batch::default(),
            };
        }
        let keep: BooleanArray = made.iter().map(|m| Some(m.is_ok())).collect();
        let (mut reasons, mut paths) = (Vec::new(), Vec::new());
        for e in made.into_iter().filter_map(Result::err) {
            paths.push(format!("/{}", e.field));
            reasons.push(e.reason);
        }
        let (ready, failed) = batch.split(&keep);
        Rows {
            ready,
            rows,
            errors: with_errors(failed, &self.streamlet, reasons, paths),
        }
    }

    /// The rows of the records at `indices`.
    pub fn select_rows(&self, rows: &[f32], indices: &[usize]) -> Vec<f32> {
        let w = self.features.width();
        indices
            .iter()
            .flat_map(|i| rows[i * w..(i + 1) * w].iter().copied())
            .collect()
    }

    /// Marks every record as not scored, with the reason.
    pub fn fail(&self, records: Batch, reason: &str) -> Batch {
        with_error(records, &self.streamlet, reason, "")
    }

    /// Sets the answer of every record of `batch` from the same rows of an answer's tensors,
    /// and the audit (the same for each).
    pub fn answered(&self, batch: Batch, resolved: &[outputs::Resolved<'_>], audit: &Map<String, Value>) -> Batch {
        let n = batch.len();
        self.answered_with(batch, resolved, same_object(audit, n))
    }

    /// [`answered`](Self::answered) with the audit column made already.
    fn answered_with(&self, mut batch: Batch, resolved: &[outputs::Resolved<'_>], audit: Column) -> Batch {
        outputs::apply(resolved, &mut batch, &self.outputs);
        batch.set(&self.audit_field, audit);
        batch
    }

    /// Sets the audit field of every record, one audit each.
    pub fn stamp_each(&self, batch: &mut Batch, audits: &[Map<String, Value>]) {
        let mut column = ColumnBuilder::default();
        for audit in audits {
            let fields: Vec<_> = audit
                .iter()
                .map(|(k, v)| (k.as_str().into(), Owned::from_json(v)))
                .collect();
            column.push_owned(&Owned::Object(fields));
        }
        batch.set(&self.audit_field, column.finish());
    }

    /// Scores a batch with one model version. Blocking (inference runs here).
    pub fn score(&self, model: &ModelVersion, batch: Batch) -> Scored {
        let Rows { ready, rows, errors } = self.rows(batch);
        if ready.is_empty() {
            return Scored {
                errors,
                ..Scored::default()
            };
        }
        match model.run(&rows, ready.len()) {
            Ok((tensors, latency_us)) => {
                let audit = audit_column(model, "single", latency_us, SystemTime::now(), ready.len());
                let resolved = outputs::resolve(&self.outputs, &tensors);
                Scored {
                    out: self.answered_with(ready, &resolved, audit),
                    errors,
                    shadow: Batch::default(),
                }
            }
            Err(e) => {
                let reason = format!("model {} v{}: {e}", model.descriptor.name, model.descriptor.version);
                let mut errors = errors;
                errors.append(self.fail(ready, &reason));
                Scored {
                    errors,
                    ..Scored::default()
                }
            }
        }
    }
}

/// The same object in each of `n` records.
fn same_object(object: &Map<String, Value>, n: usize) -> Column {
    let fields = object
        .iter()
        .map(|(k, v)| (k.as_str().into(), Owned::from_json(v)))
        .collect();
    Column::same(&Owned::Object(fields), n)
}

/// The audit a record carries: which model version answered, with which strategy, when, how long.
pub fn audit(model: &ModelVersion, strategy: &str, latency_us: u64) -> Map<String, Value> {
    audit_fields(model, strategy, latency_us, SystemTime::now())
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_json()))
        .collect()
}

/// The fields of an audit made at `at`, in the order records show them.
fn audit_fields<'a>(
    model: &'a ModelVersion,
    strategy: &'a str,
    latency_us: u64,
    at: SystemTime,
) -> [(&'static str, Owned<'a>); 6] {
    let text = |s: &'a str| Owned::Str(s.into());
    [
        ("name", text(&model.descriptor.name)),
        ("version", text(&model.descriptor.version)),
        ("sha256", text(&model.short_sha)),
        ("strategy", text(strategy)),
        (
            "scored_at",
            Owned::Str(humantime::format_rfc3339_micros(at).to_string().into()),
        ),
        ("latency_us", Owned::Int(i64::try_from(latency_us).unwrap_or(i64::MAX))),
    ]
}

/// The same audit in each of `n` records scored together, made at `at`: built straight as
/// columns (a batch's audit is made once a batch, and at batch 1 a map made and read back
/// cost as much as the rest of the scorer's own work).
fn audit_column(model: &ModelVersion, strategy: &str, latency_us: u64, at: SystemTime, n: usize) -> Column {
    object_column(audit_fields(model, strategy, latency_us, at), n)
}

/// The object of these fields in each of `n` records.
fn object_column<'a>(fields: impl IntoIterator<Item = (&'static str, Owned<'a>)>, n: usize) -> Column {
    let fields = fields.into_iter().map(|(k, v)| (k.into(), v)).collect();
    Column::same(&Owned::Object(fields), n)
}

/// A scorer with its models loaded, checked and watched.
pub struct Ready {
    config: ScorerConfig,
    serving: Arc<Serving>,
    /// Stops watching the model folders when the scorer is dropped.
    _watching: DropGuard,
}

/// Opens the registry of every model of the scorer (each loads and checks its version and
/// watches its folder) and sets up the strategy.
///
/// With `strict` (a reload: the old scorer is there to roll back to) every model must have a
/// usable version now; otherwise a scorer may start empty and wait for its first version.
pub async fn prepare(
    config: &ScorerConfig,
    streamlet: &str,
    strict: bool,
    kafka: &crate::kafka::KafkaSettings,
) -> Result<Ready, StreamletError> {
    let scorer = BatchScorer::new(streamlet, config);
    let expect = scorer.expectation(config);
    let sessions = config.sessions.max(1);
    let watching = CancellationToken::new();
    let mut models = Vec::new();
    for (id, model) in config.sources() {
        let source = Source {
            name: model.name.clone(),
            folder: model.folder.clone(),
            pinned: model.version.clone(),
            topic: model.topic.as_ref().map(|topic| crate::models::topic::ModelTopic {
                topic: topic.clone(),
                settings: kafka.clone(),
            }),
        };
        let expect = expect.clone();
        let registry = tokio::task::spawn_blocking(move || {
            if strict {
                ModelRegistry::open(source, expect, sessions)
            } else {
                ModelRegistry::open_or_wait(source, expect, sessions)
            }
        })
        .await
        .map_err(|e| StreamletError::Internal(e.to_string()))??;
        registry.clone().watch(watching.clone())?;
        models.push((id, registry));
    }
    let fingerprint = {
        use std::hash::Hasher;
        let mut hasher = twox_hash::XxHash64::with_seed(0);
        hasher.write(format!("{config:?}").as_bytes());
        format!("{:016x}", hasher.finish())
    };
    let serving = Arc::new(Serving::new(scorer, models, config.strategy.as_ref())?.for_configuration(fingerprint));
    Ok(Ready {
        config: config.clone(),
        serving,
        _watching: watching.drop_guard(),
    })
}

pub async fn run(ready: Ready, mut io: Io) -> Result<(), Stop> {
    // The models' lifecycle events go to `audit` from a task of their own until the scorer ends.
    let audit = io.outlets.take(ScorerPort::Audit)?;
    let stop_audit = CancellationToken::new();
    let forwarding = tokio::spawn(forward_lifecycle(
        io.name.clone(),
        ready.serving.registries(),
        audit,
        stop_audit.clone(),
    ));
    let result = serve(ready, &mut io).await;
    stop_audit.cancel();
    let _ = forwarding.await;
    result
}

/// Sends each lifecycle event of the models as a record on `audit`, while anything consumes
/// it, until `stop` (then what is left).
async fn forward_lifecycle(
    scorer: String,
    models: Vec<(String, Arc<ModelRegistry>)>,
    audit: crate::streamlets::io::Outlet,
    stop: CancellationToken,
) {
    if models.is_empty() {
        return;
    }
    let mut sent = vec![0u64; models.len()];
    let mut changes: Vec<_> = models.iter().map(|(_, r)| r.lifecycle().subscribe()).collect();
    loop {
        let mut records = Vec::new();
        for (i, (id, registry)) in models.iter().enumerate() {
            for event in registry.lifecycle().since(sent[i]) {
                sent[i] = event.seq;
                let mut record = match serde_json::to_value(&event) {
                    Ok(Value::Object(map)) => map,
                    _ => continue,
                };
                record.insert("scorer".into(), scorer.clone().into());
                if !id.is_empty() {
                    record.insert("arm".into(), id.clone().into());
                }
                records.push(record);
            }
        }
        if !records.is_empty() && audit.is_consumed() && audit.send(Batch::from_records(&records)).await.is_err() {
            return;
        }
        if stop.is_cancelled() {
            return;
        }
        let changed = futures::future::select_all(changes.iter_mut().map(|c| Box::pin(c.changed())));
        tokio::select! {
            _ = stop.cancelled() => {}
            _ = changed => {}
        }
    }
}

async fn serve(ready: Ready, io: &mut Io) -> Result<(), Stop> {
    // Decisions an evaluator made before a restart apply again, before the first record.
    for decision in io.controls.register(&io.name, &ready.serving) {
        match restore(&ready.serving, &decision).await {
            Ok(()) => {
                tracing::info!(scorer = %io.name, action = %decision.action, model = %decision.model, version = %decision.version, decided_at = %decision.at, "decision restored")
            }
            Err(reason) => {
                tracing::warn!(scorer = %io.name, action = %decision.action, model = %decision.model, %reason, "decision not restored")
            }
        }
    }
    for (arm, registry) in ready.serving.registries() {
        io.telemetry.serve_models(&arm, registry);
    }
    if let Some(stats) = ready.serving.stats() {
        io.telemetry.serve_strategy(stats);
    }
    // Until every model has a version, records wait in the inlet (upstream is held back).
    tokio::select! {
        _ = ready.serving.ready() => {}
        _ = io.stop_intake.cancelled() => {
            // Stopped before any model came: what arrives cannot be scored, and is not lost either.
            let errors = io.outlets.get(ScorerPort::Errors)?;
            while let Some(batch) = io.inlet.recv().await {
                errors.send(ready.serving.unscored(batch, "no model version served before the pipeline stopped")).await?;
            }
            return Ok(());
        }
    }
    sessions::score_stream(io, ready.serving.clone(), &ready.config).await
}

/// Makes a decision made earlier hold in `serving`: a promotion (unless the model serves
/// already), or a rollback of the version (if it serves again). Safe to apply twice.
pub async fn restore(serving: &Arc<Serving>, decision: &Decision) -> Result<(), String> {
    let figures = serde_json::json!({
        "restored": true, "decided_at": decision.at, "metric": decision.metric.name(),
        "value": decision.value, "against": decision.against, "labelled": decision.labelled,
    });
    match decision.action.as_str() {
        "promoted" => {
            let (serving, model, version) = (serving.clone(), decision.model.clone(), decision.version.clone());
            tokio::task::spawn_blocking(move || serving.promote(&model, &version, figures))
                .await
                .unwrap_or_else(|e| Err(e.to_string()))
        }
        "rolled_back" => {
            let (serving, model, version) = (serving.clone(), decision.model.clone(), decision.version.clone());
            tokio::task::spawn_blocking(move || {
                let serves = serving
                    .versions()
                    .into_iter()
                    .any(|(m, v)| m == model && v.is_some_and(|(_, v)| v == version));
                if !serves {
                    return Ok(()); // rolled back already, or another version serves
                }
                serving.roll_back(&model, &version, figures).map(|_| ())
            })
            .await
            .unwrap_or_else(|e| Err(e.to_string()))
        }
        other => Err(format!("unknown decision `{other}`")),
    }
}

#[cfg(test)]
mod audit_tests {
    use super::*;

    #[test]
    fn an_audit_built_as_columns_reads_as_the_audit_map_in_every_record() {
        let fields = || {
            [
                ("name", Owned::Str("house-price \"ü\"".into())),
                ("version", Owned::Str("12".into())),
                ("sha256", Owned::Str("0123456789ab".into())),
                ("strategy", Owned::Str("single".into())),
                ("scored_at", Owned::Str("2026-12-03T22:15:38.123456Z".into())),
                ("latency_us", Owned::Int(417)),
            ]
        };
        let map: Map<String, Value> = fields()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_json()))
            .collect();
        for n in [0, 1, 3] {
            let records = |column: Column| {
                Batch::new(
                    n,
                    vec![crate::flow::Field {
                        name: "_model".into(),
                        column,
                    }],
                )
                .records()
            };
            let direct = records(object_column(fields(), n));
            assert_eq!(direct, records(same_object(&map, n)), "{n} records");
            assert!(direct.iter().all(|r| r["_model"] == Value::Object(map.clone())));
            // The same keys in the same order as the map.
            if let Some(r) = direct.first() {
                assert_eq!(
                    serde_json::to_string(&r["_model"]).unwrap(),
                    serde_json::to_string(&map).unwrap()
                );
            }
        }
    }
}
