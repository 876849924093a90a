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
            config,
        }
    }

    /// Follows the scorer instance running now. The decisions in force (those kept from
    /// before, and this run's) hold for as long as the scorer's configuration is the one they
    /// were made for: a new instance of the same configuration (a reload that rebuilt it) has
    /// them applied again, one of another configuration (an edit) starts without them.
    async fn follow(&mut self, serving: &std::sync::Arc<Serving>) {
        let instance = std::sync::Arc::as_ptr(serving) as usize;
        if self.instance == Some(instance) {
            return;
        }
        self.instance = Some(instance);
        self.rolled_back.clear();
        let scorer = self.config.scorer.clone().unwrap_or_default();
        let fingerprint = serving.fingerprint().to_string();
        if self.fingerprint.as_deref() == Some(fingerprint.as_str()) {
            for decision in self.in_force.clone() {
                if let Err(reason) = crate::streamlets::scorer::restore(serving, &decision).await {
                    tracing::warn!(%scorer, action = %decision.action, model = %decision.model, %reason, "decision not applied again");
                }
                if !self.followed {
                    self.decisions.push(Decision {
                        restored: true,
                        ..decision
                    });
                }
            }
        } else if !self.in_force.is_empty() {
            tracing::info!(%scorer, decisions = self.in_force.len(), "the scorer's configuration was edited: its earlier decisions no longer apply");
            self.in_force.clear();
        }
        self.followed = true;
        self.fingerprint = Some(fingerprint);
        if self.config.promote.is_some() || self.config.rollback.is_some() {
            self.save();
        }
    }

    /// Keeps the decisions in force on disk (written whole, then renamed into place).
    fn save(&self) {
        let saved = Saved {
            scorer_fingerprint: self.fingerprint.clone().unwrap_or_default(),
            decisions: self.in_force.clone(),
        };
        let write = || -> std::io::Result<()> {
            if let Some(dir) = self.state_file.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let partial = self.state_file.with_extension("json.partial");
            std::fs::write(&partial, serde_json::to_vec_pretty(&saved).unwrap_or_default())?;
            std::fs::rename(&partial, &self.state_file)
        };
        if let Err(e) = write() {
            tracing::error!(file = %self.state_file.display(), reason = %e, "cannot keep the evaluator's decisions: they will not survive a restart");
        }
    }

    fn decided(&mut self, decision: Decision) {
        self.decisions.push(decision.clone());
        self.in_force.push(decision);
        self.save();
    }

    /// The model (of the strategy's id, `""` alone) serving `version`'s quality.
    fn group(&self, model: &str, serves: &(String, String)) -> Option<usize> {
        let arm = (!model.is_empty()).then(|| model.to_string());
        let (name, version) = serves;
        self.models
            .iter()
            .position(|(id, _)| id.arm == arm && id.name == *name && id.version == *version)
    }

    /// A model's figure over the window, with the labelled answers it covers.
    fn figure(&mut self, group: usize, metric: Metric) -> Option<(f64, u64)> {
        let quality = &self.models[group].1;
        let window = self.windows[group].get_or_insert_with(|| quality.window());
        Some((window.get(metric)?, window.labelled))
    }

    /// Applies the rules after `changed` got a labelled answer: a promotion at once, a
    /// rollback returned to be run.
    fn decide(&mut self, changed: usize, serving: &Serving) -> Option<RollBack> {
        let arms = serving.arms();
        let versions: HashMap<String, Option<(String, String)>> = serving.versions().into_iter().collect();
        let current = |model: &str| versions.get(model).cloned().flatten();
        let scorer = self.config.scorer.clone().unwrap_or_default();
        if let (Some(rule), Some(serving_model)) = (self.config.promote.clone(), arms.serving.clone()) {
            let serving_group = current(&serving_model).and_then(|s| self.group(&serving_model, &s));
            if let Some(gs) = serving_group {
                for challenger in &arms.challengers {
                    let Some(serves) = current(challenger) else { continue };
                    let version = serves.1.clone();
                    let Some(gc) = self.group(challenger, &serves) else {
                        continue;
                    };
                    if changed != gc && changed != gs {
                        continue;
                    }
                    let (Some((vs, ns)), Some((vc, nc))) = (self.figure(gs, rule.metric), self.figure(gc, rule.metric))
                    else {
                        continue;
                    };
                    if ns < rule.min_labelled || nc < rule.min_labelled || !beats(rule.metric, vc, vs, rule.by) {
                        continue;
                    }
                    let figures = serde_json::json!({
                        "metric": rule.metric.name(), "value": vc, "serving_value": vs, "by": rule.by,
                        "labelled": nc, "serving_labelled": ns, "from_model": serving_model, "evaluator": self.name,
                    });
                    if let Err(reason) = serving.promote(challenger, figures) {
                        tracing::error!(%scorer, model = %challenger, %reason, "promotion refused");
                        continue;
                    }
                    let decision = Decision {
                        at: now_rfc3339(),
                        action: "promoted".into(),
                        scorer: scorer.clone(),
                        model: challenger.clone(),
                        version,
                        to_version: None,
                        metric: rule.metric,
                        value: vc,
                        against: vs,
                        labelled: nc,
                        from_model: Some(serving_model.clone()),
                        from_labelled: Some(ns),
                        restored: false,
                    };
                    tracing::info!(
                        %scorer, model = %challenger, version = %decision.version, from = %serving_model,
                        metric = rule.metric.name(), value = vc, serving_value = vs, labelled = nc,
                        serving_labelled = ns, "model promoted"
                    );
                    self.decided(decision);
                    return None;
                }
            }
        }
        let rule = self.config.rollback.clone()?;
        // The model serving: the strategy's, or the one model of a scorer without a strategy.
        let model = match arms.serving {
            Some(m) => m,
            None if versions.contains_key("") => String::new(),
            None => return None,
        };
        let serves = current(&model)?;
        let version = serves.1.clone();
        let group = self.group(&model, &serves)?;
        if group != changed || self.rolled_back.contains(&(model.clone(), version.clone())) {
            return None;
        }
        let (value, labelled) = self.figure(group, rule.metric)?;
        let worse = beats(rule.metric, rule.worse_than, value, 0.0);
        if labelled < rule.min_labelled || !worse {
            return None;
        }
        self.rolled_back.insert((model.clone(), version.clone()));
        Some(RollBack {
            model,
            version,
            value,
            labelled,
        })
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

    /// Runs a rollback a rule asked for, and records it.
    async fn roll_back(&mut self, serving: std::sync::Arc<Serving>, rule: RollBack) {
        let scorer = self.config.scorer.clone().unwrap_or_default();
        let Some(limit) = self.config.rollback.as_ref().map(|r| (r.metric, r.worse_than)) else {
            return;
        };
        let model = rule.model.clone();
        let figures = serde_json::json!({
            "metric": limit.0.name(), "value": rule.value, "worse_than": limit.1, "labelled": rule.labelled,
            "evaluator": self.name,
        });
        let version = rule.version.clone();
        let outcome = tokio::task::spawn_blocking(move || serving.roll_back(&model, &version, figures))
            .await
            .unwrap_or_else(|e| Err(e.to_string()));
        match outcome {
            Ok((from, to)) => {
                tracing::info!(
                    %scorer, model = %rule.model, from = %from, to = %to, metric = limit.0.name(),
                    value = rule.value, worse_than = limit.1, labelled = rule.labelled, "model rolled back"
                );
                self.decided(Decision {
                    at: now_rfc3339(),
                    action: "rolled_back".into(),
                    scorer,
                    model: rule.model,
                    version: from,
                    to_version: Some(to),
                    metric: limit.0,
                    value: rule.value,
                    against: limit.1,
                    labelled: rule.labelled,
                    from_model: None,
                    from_labelled: None,
                    restored: false,
                });
            }
            Err(reason) => {
                tracing::error!(%scorer, model = %rule.model, version = %rule.version, %reason, "rollback refused; the version goes on serving")
            }
        }
    }

    /// The joined pairs as records: the key, the answer, the truth, the error, the model.
    fn records(&self, joined: &[Joined]) -> Batch {
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
