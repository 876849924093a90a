//! The evaluator: joins each prediction with its true outcome (a label arriving in another
//! stream, before or after it) and measures every model version's quality from the pairs.
//!
//! Its inputs carry both: a record with the scorer's audit field (`_model`) is a prediction,
//! any other record a label. Predictions are grouped by the model that answered (its name,
//! version and, under a strategy, its arm). Each joined pair goes to `out`; a record that
//! cannot be joined (no key, no answer or truth of the right type) goes to `errors` with why.
//! What waits to be joined is held in memory within the configured bounds: it is not kept
//! across a restart of the process, where the predictions and labels that were waiting are
//! lost (the summary before the stop says how many were waiting). The decisions its rules
//! made are kept (in the `state` folder) and apply again after a restart, for as long as the
//! scorer's configuration is the one they were made for: an edit of it wins over them.

pub mod config;
mod decide;
pub mod join;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{Map, Value as Json};

use self::config::{EvaluatorConfig, EvaluatorPort};
use self::join::{Join, Joined, Prediction};
use super::io::with_errors;
use super::{Batch, Io, Stop};
use crate::flow::Value;
use crate::models::quality::{Decision, Metric, ModelQuality, Quality, QualitySummary, Task};
use crate::streamlets::scorer::serving::Serving;

/// What an evaluator keeps on disk: the decisions in force, and the configuration of the
/// scorer they were made for.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Saved {
    scorer_fingerprint: String,
    decisions: Vec<Decision>,
}

/// An evaluator ready to run: its configuration, where its decisions are kept, and those kept.
pub struct Ready {
    config: EvaluatorConfig,
    state_file: PathBuf,
    saved: Option<Saved>,
}

/// Finds where the decisions are kept; decisions kept from before a restart wait for the
/// scorer to start (a scorer running already, on a reload of the evaluator, keeps its own).
pub fn prepare(config: &EvaluatorConfig, ctx: &super::Prepare) -> Ready {
    let state_file = config
        .state
        .join(format!("{}.{}.decisions.json", ctx.pipeline, ctx.name));
    let saved = std::fs::read_to_string(&state_file)
        .ok()
        .and_then(|text| serde_json::from_str::<Saved>(&text).ok());
    if let (Some(scorer), Some(saved)) = (&config.scorer, &saved) {
        if ctx.controls.serving(scorer).is_none() {
            ctx.controls
                .restore(scorer, saved.scorer_fingerprint.clone(), saved.decisions.clone());
        }
    }
    Ready {
        config: config.clone(),
        state_file,
        saved,
    }
}

/// How often the figures are published while records flow.
const PUBLISH_EVERY: Duration = Duration::from_millis(250);
/// How often what waited too long is dropped when nothing arrives.
const EXPIRE_EVERY: Duration = Duration::from_secs(1);

/// A model that answered, as its predictions' audit names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ModelId {
    name: String,
    version: String,
    arm: Option<String>,
}

/// The evaluator's state: the join, and the quality of each model seen.
struct Evaluation {
    /// The evaluator's streamlet name.
    name: String,
    config: EvaluatorConfig,
    task: Task,
    join: Join,
    models: Vec<(ModelId, Quality)>,
    /// Each model's window figures, until it gets another labelled answer.
    windows: Vec<Option<crate::models::quality::Figures>>,
    index: HashMap<ModelId, usize>,
    decisions: Vec<Decision>,
    /// The decisions in force for the scorer's configuration `fingerprint`, kept in `state_file`.
    in_force: Vec<Decision>,
    fingerprint: Option<String>,
    state_file: PathBuf,
    /// The scorer instance followed (its address), and whether one was yet.
    instance: Option<usize>,
    followed: bool,
    /// The (model, version) pairs a rollback was tried for: each is tried once.
    rolled_back: HashSet<(String, String)>,
    /// Promotions the scorer refused (challenger, version): not asked again in this run.
    refused: HashSet<(String, String)>,
}

/// A rollback a rule asks for: it loads a model version, so it runs off the evaluator's task.
struct RollBack {
    model: String,
    version: String,
    value: f64,
    labelled: u64,
}

/// What a batch gave: the joined pairs, the records refused (row, why, the field), and the
/// rollbacks rules asked for.
struct Taken {
    joined: Vec<Joined>,
    refused: Vec<(usize, String, String)>,
    rollbacks: Vec<RollBack>,
}

/// Whether `value` beats `other` by more than `by`, in the metric's direction.
fn beats(metric: Metric, value: f64, other: f64, by: f64) -> bool {
    if metric.higher_is_better() {
        value > other + by
    } else {
        value < other - by
    }
}

fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

/// What one record is to the evaluator.
enum Read {
    Prediction { key: String, model: ModelId, answer: f64 },
    Label { key: String, truth: f64 },
}

/// The value at a dotted path (`a.b`) of a record.
fn at_path<'a>(row: &crate::flow::Row<'a>, path: &str) -> Value<'a> {
    let mut parts = path.split('.');
    let first = parts.next().unwrap_or_default();
    let mut value = row.get(first);
    for part in parts {
        value = match value {
            Value::Object(inner) => inner.get(part),
            _ => return Value::Absent,
        };
    }
    value
}

fn text_of(value: &Value<'_>) -> Option<String> {
    match value {
        Value::Str(s) => Some((*s).to_string()),
        Value::Int(i) => Some(i.to_string()),
        Value::Float(x) => Some(x.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

impl Evaluation {
    fn new(name: &str, config: EvaluatorConfig, state_file: PathBuf, saved: Option<Saved>) -> Evaluation {
        let (fingerprint, in_force) = match saved {
            Some(s) => (Some(s.scorer_fingerprint), s.decisions),
            None => (None, Vec::new()),
        };
        Evaluation {
            name: name.to_string(),
            in_force,
            fingerprint,
            state_file,
            instance: None,
            followed: false,
            task: config.task(),
            join: Join::new(config.join.max_wait, config.join.max_pending),
            models: Vec::new(),
            windows: Vec::new(),
            index: HashMap::new(),
            decisions: Vec::new(),
            rolled_back: HashSet::new(),
            refused: HashSet::new(),
            config,
        }
    }

    fn model(&mut self, id: ModelId) -> usize {
        if let Some(&i) = self.index.get(&id) {
            return i;
        }
        self.models
            .push((id.clone(), Quality::new(self.task, self.config.window)));
        self.windows.push(None);
        self.index.insert(id, self.models.len() - 1);
        self.models.len() - 1
    }

    /// A classifier's truth (`true`, `1`, the `positive` text: 1; `false`, `0`, other text
    /// when `positive` is set: 0) or a regressor's number.
    fn truth(&self, value: &Value<'_>) -> Result<f64, String> {
        let field = &self.config.label;
        match (self.task, value) {
            (_, Value::Absent | Value::Null) => Err(format!("a label needs `{field}`")),
            (Task::Regressor, Value::Int(i)) => Ok(*i as f64),
            (Task::Regressor, Value::Float(x)) if x.is_finite() => Ok(*x),
            (Task::Regressor, _) => Err(format!("`{field}` must be a number")),
            (Task::Classifier { .. }, Value::Bool(b)) => Ok(f64::from(u8::from(*b))),
            (Task::Classifier { .. }, Value::Int(i @ (0 | 1))) => Ok(*i as f64),
            (Task::Classifier { .. }, Value::Float(x)) if *x == 0.0 || *x == 1.0 => Ok(*x),
            (Task::Classifier { .. }, Value::Str(s)) => match (&self.config.positive, *s) {
                (Some(positive), s) => Ok(f64::from(u8::from(s == positive))),
                (None, "true" | "1") => Ok(1.0),
                (None, "false" | "0") => Ok(0.0),
                (None, _) => Err(format!(
                    "`{field}` is {s:?}: say which label value is the positive class with `positive`"
                )),
            },
            (Task::Classifier { .. }, _) => Err(format!(
                "`{field}` must be true or false, 0 or 1 (or the `positive` text)"
            )),
        }
    }

    /// A classifier's score (a probability, or a 0/1 label) or a regressor's number.
    fn answer(&self, value: &Value<'_>) -> Result<f64, String> {
        let field = &self.config.prediction;
        match value {
            Value::Int(i) => Ok(*i as f64),
            Value::Float(x) if x.is_finite() => Ok(*x),
            Value::Bool(b) if matches!(self.task, Task::Classifier { .. }) => Ok(f64::from(u8::from(*b))),
            Value::Absent | Value::Null => Err(format!("a prediction needs `{field}`")),
            _ => Err(format!("`{field}` must be a number")),
        }
    }

    fn read(&self, row: &crate::flow::Row<'_>) -> Result<Read, (String, String)> {
        let key_field = &self.config.key;
        let key = text_of(&at_path(row, key_field)).ok_or_else(|| {
            (
                format!("the record has no `{key}` to join on", key = key_field),
                key_field.clone(),
            )
        })?;
        match at_path(row, &self.config.audit_field) {
            Value::Object(audit) => {
                let text = |name: &str| text_of(&audit.get(name));
                let model = ModelId {
                    name: text("name").unwrap_or_default(),
                    version: text("version").unwrap_or_default(),
                    arm: text("model"),
                };
                let answer = self
                    .answer(&at_path(row, &self.config.prediction))
                    .map_err(|e| (e, self.config.prediction.clone()))?;
                Ok(Read::Prediction { key, model, answer })
            }
            Value::Absent => {
                let truth = self
                    .truth(&at_path(row, &self.config.label))
                    .map_err(|e| (e, self.config.label.clone()))?;
                Ok(Read::Label { key, truth })
            }
            _ => Err((
                format!("`{}` is not a scorer's audit object", self.config.audit_field),
                self.config.audit_field.clone(),
            )),
        }
    }

    /// The fields of record `i` a joined pair carries, if any are asked for.
    fn carried(&self, batch: &Batch, i: usize) -> Option<join::Carried> {
        let carry = &self.config.carry;
        if carry.is_empty() {
            return None;
        }
        let all = carry.iter().any(|c| c == "*");
        let mut record = batch.record(i);
        record.retain(|k, _| *k != self.config.audit_field && (all || carry.contains(k)));
        Some(std::sync::Arc::new(record))
    }

    /// Joins what it can of a batch: the joined pairs, and the records that cannot be joined
    /// with why.
    fn take(&mut self, batch: &Batch, now: Instant, serving: Option<&Serving>) -> Taken {
        let mut joined = Vec::new();
        let mut refused = Vec::new();
        for i in 0..batch.len() {
            match self.read(&batch.row(i)) {
                Ok(Read::Prediction { key, model, answer }) => {
                    let model = self.model(model);
                    let carried = self.carried(batch, i);
                    let prediction = Prediction { model, answer, carried };
                    joined.extend(self.join.predict(&key, prediction, now));
                }
                Ok(Read::Label { key, truth }) => joined.extend(self.join.label(&key, truth, now)),
                Err((reason, path)) => refused.push((i, reason, path)),
            }
        }
        let mut rollbacks = Vec::new();
        for j in &joined {
            self.models[j.model].1.add(crate::models::quality::Labelled {
                predicted: j.answer,
                truth: j.truth,
            });
            self.windows[j.model] = None;
            // Each answer labelled may decide: a rule acts on exactly the answer that meets it.
            if let Some(serving) = serving {
                rollbacks.extend(self.decide(j.model, serving));
            }
        }
        Taken {
            joined,
            refused,
            rollbacks,
        }
    }

    /// The joined pairs as records: the key, the answer, the truth, the error, the model, when.
    fn records(&self, joined: &[Joined]) -> Batch {
        let at: Json = humantime::format_rfc3339_millis(std::time::SystemTime::now())
            .to_string()
            .into();
        let records: Vec<Map<String, Json>> = joined
            .iter()
            .map(|j| {
                let (id, _) = &self.models[j.model];
                let mut model = Map::new();
                model.insert("name".into(), id.name.clone().into());
                model.insert("version".into(), id.version.clone().into());
                if let Some(arm) = &id.arm {
                    model.insert("model".into(), arm.clone().into());
                }
                // The carried fields first: the pair's own win where names meet.
                let mut r = j.carried.as_deref().cloned().unwrap_or_default();
                r.insert(self.config.key.clone(), j.key.clone().into());
                r.insert("prediction".into(), number(j.answer));
                r.insert("label".into(), number(j.truth));
                r.insert("error".into(), number(j.answer - j.truth));
                if let Task::Classifier { threshold } = self.task {
                    r.insert("correct".into(), ((j.answer >= threshold) == (j.truth >= 0.5)).into());
                }
                r.insert("waited_ms".into(), (j.waited.as_millis() as u64).into());
                r.insert("judged_at".into(), at.clone());
                r.insert(self.config.audit_field.clone(), Json::Object(model));
                r
            })
            .collect();
        Batch::from_records(&records)
    }

    fn summary(&self) -> QualitySummary {
        let waiting = self.join.waiting_predictions();
        QualitySummary {
            task: match self.task {
                Task::Classifier { .. } => "classifier",
                Task::Regressor => "regressor",
            },
            models: self
                .models
                .iter()
                .enumerate()
                .map(|(i, (id, quality))| ModelQuality {
                    name: id.name.clone(),
                    version: id.version.clone(),
                    arm: id.arm.clone(),
                    waiting: waiting.get(&i).copied().unwrap_or(0),
                    unmatched: self.join.expired_by_model.get(&i).copied().unwrap_or(0),
                    window: quality.window(),
                    since_start: quality.since_start(),
                })
                .collect(),
            waiting_labels: self.join.waiting_labels(),
            dropped: self.join.dropped,
            decisions: self.decisions.clone(),
        }
    }
}

fn number(x: f64) -> Json {
    serde_json::Number::from_f64(x).map_or(Json::Null, Json::Number)
}

pub async fn run(ready: Ready, mut io: Io) -> Result<(), Stop> {
    let Ready {
        config,
        state_file,
        saved,
    } = ready;
    let out = io.outlets.get(EvaluatorPort::Out)?;
    let errors = io.outlets.get(EvaluatorPort::Errors)?;
    io.controls.register_evaluator(&io.name, &io.telemetry);
    let mut evaluation = Evaluation::new(&io.name, config, state_file, saved);
    let mut published = Instant::now();
    let mut tick = tokio::time::interval(EXPIRE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    io.telemetry.set_quality(evaluation.summary());
    loop {
        let batch = tokio::select! {
            batch = io.inlet.recv() => match batch {
                Some(batch) => batch,
                None => break,
            },
            _ = tick.tick() => {
                evaluation.join.expire(Instant::now());
                io.telemetry.set_quality(evaluation.summary());
                continue;
            }
        };
        let now = Instant::now();
        let serving = evaluation.config.scorer.as_deref().and_then(|s| io.controls.serving(s));
        if let Some(serving) = &serving {
            evaluation.follow(serving).await;
        }
        let Taken {
            joined,
            refused,
            rollbacks,
        } = evaluation.take(&batch, now, serving.as_deref());
        if let Some(serving) = &serving {
            for rule in rollbacks {
                evaluation.roll_back(serving.clone(), rule).await;
            }
        }
        if !refused.is_empty() {
            let rows: Vec<usize> = refused.iter().map(|(i, _, _)| *i).collect();
            let (reasons, paths) = refused.into_iter().map(|(_, r, p)| (r, p)).unzip();
            errors
                .send(with_errors(batch.pick(&rows), &io.name, reasons, paths))
                .await?;
        }
        if !joined.is_empty() {
            out.send(evaluation.records(&joined)).await?;
        }
        if now.duration_since(published) >= PUBLISH_EVERY {
            io.telemetry.set_quality(evaluation.summary());
            published = now;
        }
    }
    let summary = evaluation.summary();
    let waiting: u64 = summary.models.iter().map(|m| m.waiting).sum();
    if waiting > 0 || summary.waiting_labels > 0 {
        // What waits is held in memory only: a stop loses it, and says how much.
        tracing::warn!(
            streamlet = %io.name, predictions = waiting, labels = summary.waiting_labels,
            "stopped with predictions and labels still waiting to be joined: they are lost"
        );
    }
    io.telemetry.set_quality(summary);
    Ok(())
}
