//! How a scorer's models answer a batch: one model, or several under a strategy (speculative
//! within a latency budget, consensus, best confidence, a keyed split, shadow scoring).
//!
//! With several models each model has a worker thread of its own, so the models of a batch run
//! at the same time; a late answer goes to a reply channel nobody reads any more, and is dropped.

use std::sync::atomic::AtomicUsize;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::BooleanArray;
use serde_json::Value;

use super::{audit, outputs, BatchScorer, Rows, Scored, StreamletError};
use crate::models::config::{Combine, Decider, StrategyConfig, TieRule};
use crate::models::strategy::{self, BatchAnswer, Decision, Roles, Split, StrategyStats};
use crate::models::{ModelError, ModelRegistry};
use crate::streamlets::Batch;

mod control;
mod worker;
pub use control::Arms;

use worker::{Job, Reply, Worker};

/// A strategy, with model ids resolved to indices.
enum Plan {
    Single,
    Speculative {
        budget: Duration,
        fallback: usize,
        prefer: Vec<usize>,
        decide: Decider,
    },
    Consensus {
        min_agree: usize,
        ties: TieRule,
        combine: Combine,
    },
    BestConfidence,
    Split {
        split: Split,
        key: String,
    },
    Shadow {
        primary: usize,
        shadows: Vec<usize>,
        emit: bool,
    },
}

impl Plan {
    fn name(&self) -> &'static str {
        match self {
            Plan::Single => "single",
            Plan::Speculative { .. } => "speculative",
            Plan::Consensus { .. } => "consensus",
            Plan::BestConfidence => "best_confidence",
            Plan::Split { .. } => "split",
            Plan::Shadow { .. } => "shadow",
        }
    }
}

/// The models of a scorer and how they answer.
pub struct Serving {
    scorer: BatchScorer,
    ids: Vec<String>,
    registries: Vec<Arc<ModelRegistry>>,
    workers: Vec<Worker>,
    plan: Plan,
    stats: Option<Arc<StrategyStats>>,
    /// The model an evaluator promoted: under a split it takes every record, under a shadow
    /// strategy it answers as the primary (the old primary no longer asked). `NONE` until then.
    promoted: AtomicUsize,
    /// Tells one configuration of the scorer from another: decisions made for one do not
    /// apply to another (an edit of the pipeline wins over them).
    fingerprint: String,
}

const NONE: usize = usize::MAX;

impl Serving {
    pub fn new(
        scorer: BatchScorer,
        models: Vec<(String, Arc<ModelRegistry>)>,
        strategy: Option<&StrategyConfig>,
    ) -> Result<Self, StreamletError> {
        let ids: Vec<String> = models.iter().map(|(id, _)| id.clone()).collect();
        // Verification checked every id; a miss here is a bug, reported as such.
        let index = |id: &str| {
            ids.iter()
                .position(|i| i == id)
                .ok_or_else(|| StreamletError::Internal(format!("strategy names unknown model `{id}`")))
        };
        let plan = match strategy {
            None => Plan::Single,
            Some(StrategyConfig::Speculative {
                budget_ms,
                fallback,
                prefer,
                decide,
            }) => Plan::Speculative {
                budget: Duration::from_millis(*budget_ms),
                fallback: index(fallback)?,
                prefer: if prefer.is_empty() {
                    (0..ids.len()).collect()
                } else {
                    prefer.iter().map(|p| index(p)).collect::<Result<_, _>>()?
                },
                decide: *decide,
            },
            Some(StrategyConfig::Consensus {
                min_agree,
                ties,
                combine,
            }) => Plan::Consensus {
                min_agree: *min_agree,
                ties: *ties,
                combine: *combine,
            },
            Some(StrategyConfig::BestConfidence {}) => Plan::BestConfidence,
            Some(StrategyConfig::Split { weights, key }) => {
                let per_model: Vec<f64> = ids.iter().map(|id| weights.get(id).copied().unwrap_or(0.0)).collect();
                Plan::Split {
                    split: Split::new(&per_model),
                    key: key.clone(),
                }
            }
            Some(StrategyConfig::Shadow { primary, shadows, emit }) => Plan::Shadow {
                primary: index(primary)?,
                shadows: shadows.iter().map(|s| index(s)).collect::<Result<_, _>>()?,
                emit: *emit,
            },
        };
        let workers = match plan {
            Plan::Single => Vec::new(),
            _ => models
                .iter()
                .map(|(id, r)| Worker::start(id, r.clone()))
                .collect::<Result<_, _>>()?,
        };
        let stats = match &plan {
            Plan::Single => None,
            Plan::Shadow { shadows, .. } => Some(Arc::new(StrategyStats::new(
                plan.name(),
                ids.clone(),
                shadows.iter().map(|s| ids[*s].clone()).collect(),
            ))),
            _ => Some(Arc::new(StrategyStats::new(plan.name(), ids.clone(), Vec::new()))),
        };
        Ok(Serving {
            scorer,
            ids,
            registries: models.into_iter().map(|(_, r)| r).collect(),
            workers,
            plan,
            stats,
            promoted: AtomicUsize::new(NONE),
            fingerprint: String::new(),
        })
    }

    /// Marks records as not scored, with the reason.
    pub fn unscored(&self, batch: Batch, reason: &str) -> Batch {
        self.scorer.fail(batch, reason)
    }

    /// Waits until every model has a version serving.
    pub async fn ready(&self) {
        for registry in &self.registries {
            registry.ready().await;
        }
    }

    pub fn stats(&self) -> Option<Arc<StrategyStats>> {
        self.stats.clone()
    }

    /// Scores a batch. Blocking: it waits for the models.
    pub fn score(&self, batch: Batch) -> Scored {
        if let Plan::Single = self.plan {
            return match self.registries[0].current() {
                Some(model) => self.scorer.score(&model, batch),
                None => Scored {
                    errors: self.scorer.fail(batch, "no model version serves yet"),
                    ..Scored::default()
                },
            };
        }
        let Rows { ready, rows, errors } = self.scorer.rows(batch);
        let mut scored = Scored {
            errors,
            ..Scored::default()
        };
        if ready.is_empty() {
            return scored;
        }
        let plan = &self.plan;
        match plan {
            Plan::Single => {}
            Plan::Split { split, key } => match self.promoted() {
                Some(p) => {
                    let only: Vec<f64> = (0..self.ids.len()).map(|m| f64::from(u8::from(m == p))).collect();
                    self.split(&Split::new(&only), key, ready, &rows, &mut scored)
                }
                None => self.split(split, key, ready, &rows, &mut scored),
            },
            Plan::Speculative {
                budget,
                fallback,
                prefer,
                decide,
            } => self.speculative(*budget, *fallback, prefer, *decide, ready, rows, &mut scored),
            // Every model answers every record; the answers decide, record by record.
            Plan::Consensus { .. } | Plan::BestConfidence => {
                let models: Vec<usize> = (0..self.ids.len()).collect();
                let answers = self.ask(&models, Arc::new(rows), ready.len(), &[]);
                self.decide_each(
                    ready,
                    &answers,
                    &mut scored,
                    |answers, roles, row| match plan {
                        Plan::Consensus {
                            min_agree,
                            ties,
                            combine,
                        } => strategy::consensus(answers, roles, row, *min_agree, *ties, *combine),
                        _ => Ok(strategy::best_confidence(answers, roles, row)),
                    },
                    |_| {},
                );
            }
            Plan::Shadow { primary, shadows, emit } => match self.promoted() {
                // The promoted shadow answers as the primary; the old primary is asked no more.
                Some(p) if p != *primary => {
                    let rest: Vec<usize> = shadows.iter().copied().filter(|s| *s != p).collect();
                    self.shadow(p, &rest, shadows, *emit, ready, rows, &mut scored)
                }
                _ => self.shadow(*primary, shadows, shadows, *emit, ready, rows, &mut scored),
            },
        }
        scored
    }

    /// Asks `models` to score the rows and waits for all of them. Models in `unless_busy`
    /// are skipped when still busy with an earlier batch. Failures are logged and left out.
    fn ask(&self, models: &[usize], rows: Arc<Vec<f32>>, n: usize, unless_busy: &[usize]) -> Vec<BatchAnswer> {
        let (reply, replies) = mpsc::channel();
        let asked = self.submit_all(models, &rows, n, &reply, unless_busy);
        drop(reply);
        let mut answers: Vec<BatchAnswer> = replies.iter().take(asked).filter_map(|r| self.keep(r)).collect();
        answers.sort_by_key(|a| a.model);
        answers
    }

    fn submit_all(
        &self,
        models: &[usize],
        rows: &Arc<Vec<f32>>,
        n: usize,
        reply: &mpsc::Sender<Reply>,
        unless_busy: &[usize],
    ) -> usize {
        models
            .iter()
            .filter(|m| {
                let job = Job {
                    model: **m,
                    rows: rows.clone(),
                    n,
                    reply: reply.clone(),
                };
                self.workers[**m].submit(job, unless_busy.contains(m))
            })
            .count()
    }

    fn keep(&self, (model, answer): Reply) -> Option<BatchAnswer> {
        match answer {
            Ok(a) => Some(a),
            Err(e) => {
                tracing::warn!(streamlet = %self.scorer.streamlet(), model = %self.ids[model], reason = %e, "model failed on a batch");
                None
            }
        }
    }

    /// The audit of an answer: the answering model's version, the strategy and the model's id.
    fn audit(&self, answer: &BatchAnswer, latency_us: u64) -> serde_json::Map<String, Value> {
        let mut a = audit(&answer.version, self.plan.name(), latency_us);
        a.insert("model".into(), self.ids[answer.model].clone().into());
        a
    }

    /// Applies a decision per record, counts who answered, and stamps the audit (after
    /// `adjust` has had its say on it).
    fn decide_each(
        &self,
        ready: Batch,
        answers: &[BatchAnswer],
        scored: &mut Scored,
        decide: impl Fn(&[BatchAnswer], &Roles, usize) -> Result<Decision, String>,
        adjust: impl Fn(&mut serde_json::Map<String, Value>),
    ) {
        if answers.is_empty() {
            scored.errors.append(self.scorer.fail(ready, "no model answered"));
            return;
        }
        let roles = Roles::of(self.scorer.outputs(), &answers[0].tensors);
        let resolved: Vec<_> = answers
            .iter()
            .map(|a| outputs::resolve(self.scorer.outputs(), &a.tensors))
            .collect();
        let latency = answers.iter().map(|a| a.latency_us).max().unwrap_or(0);
        let stats = self.stats.as_ref();
        let mut columns = outputs::OutputColumns::new(self.scorer.outputs());
        let mut keep = Vec::with_capacity(ready.len());
        let mut audits = Vec::with_capacity(ready.len());
        let mut failures = Vec::new();
        for row in 0..ready.len() {
            match decide(answers, &roles, row) {
                Ok(d) => {
                    let answer = &answers[d.answer];
                    let combined = d.value.and_then(|v| roles.value.as_deref().map(|t| (t, v)));
                    columns.push(&resolved[d.answer], row, combined);
                    let mut audit = self.audit(answer, latency);
                    if let Some(votes) = d.votes {
                        audit.insert("votes".into(), votes.into());
                        let agreed: Vec<Value> = d
                            .agreed
                            .iter()
                            .map(|i| self.ids[answers[*i].model].clone().into())
                            .collect();
                        audit.insert("agreed".into(), Value::Array(agreed));
                    }
                    adjust(&mut audit);
                    audits.push(audit);
                    if let Some(s) = stats {
                        s.update(|answered, _, _, _| answered[answer.model] += 1);
                    }
                    keep.push(true);
                }
                Err(reason) => {
                    if let Some(s) = stats {
                        s.update(|_, _, no_consensus, _| *no_consensus += 1);
                    }
                    failures.push(reason);
                    keep.push(false);
                }
            }
        }
        let (mut kept, failed) = ready.split(&BooleanArray::from(keep));
        columns.finish(&mut kept);
        self.scorer.stamp_each(&mut kept, &audits);
        scored.out.append(kept);
        let paths = vec![String::new(); failures.len()];
        scored.errors.append(crate::streamlets::io::with_errors(
            failed,
            self.scorer.streamlet(),
            failures,
            paths,
        ));
    }

    #[allow(clippy::too_many_arguments)]
    fn speculative(
        &self,
        budget: Duration,
        fallback: usize,
        prefer: &[usize],
        decide: Decider,
        ready: Batch,
        rows: Vec<f32>,
        scored: &mut Scored,
    ) {
        let started = Instant::now();
        let deadline = started + budget;
        let n = ready.len();
        let rows = Arc::new(rows);
        let (reply, replies) = mpsc::channel();
        let all: Vec<usize> = (0..self.ids.len()).collect();
        // Everyone but the fallback is skipped while still busy with a batch it was too late for.
        let skippable: Vec<usize> = all.iter().copied().filter(|m| *m != fallback).collect();
        let asked = self.submit_all(&all, &rows, n, &reply, &skippable);
        drop(reply);
        let mut answers: Vec<BatchAnswer> = Vec::new();
        let mut heard = 0;
        while heard < asked {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                break;
            };
            match replies.recv_timeout(left) {
                Ok(r) => {
                    heard += 1;
                    answers.extend(self.keep(r));
                }
                Err(_) => break,
            }
        }
        let cut_off = answers.len() < self.ids.len();
        if answers.is_empty() {
            // Nothing in time: the fallback answers, late.
            while heard < asked {
                let Ok(r) = replies.recv() else { break };
                heard += 1;
                if let Some(a) = self.keep(r) {
                    let is_fallback = a.model == fallback;
                    answers.push(a);
                    if is_fallback {
                        break;
                    }
                }
            }
        }
        answers.sort_by_key(|a| a.model);
        let elapsed = started.elapsed().as_micros() as u64;
        if let Some(s) = &self.stats {
            if cut_off {
                s.update(|_, misses, _, _| *misses += n as u64);
            }
        }
        let prefer = prefer.to_vec();
        let adjust = |audit: &mut serde_json::Map<String, Value>| {
            audit.insert("latency_us".into(), elapsed.into());
            audit.insert("budget_exceeded".into(), cut_off.into());
        };
        let decision = |answers: &[BatchAnswer], roles: &Roles, row: usize| match decide {
            Decider::BestConfidence => Ok(strategy::best_confidence(answers, roles, row)),
            Decider::Prefer => {
                let first = prefer
                    .iter()
                    .find_map(|m| answers.iter().position(|a| a.model == *m))
                    .unwrap_or(0);
                Ok(Decision {
                    answer: first,
                    value: None,
                    votes: None,
                    agreed: vec![first],
                })
            }
        };
        self.decide_each(ready, &answers, scored, decision, adjust);
    }

    fn split(&self, split: &Split, key: &str, ready: Batch, rows: &[f32], scored: &mut Scored) {
        let mut groups: Vec<Vec<usize>> = vec![Vec::new(); self.ids.len()];
        let mut keyless = Vec::new();
        let keys = ready.column(key);
        let mut text = String::new();
        for i in 0..ready.len() {
            let value = keys.map_or(crate::flow::Value::Absent, |c| c.get(i));
            match value {
                v if v.is_null() => keyless.push(i),
                crate::flow::Value::Str(s) => groups[split.route_text(s)].push(i),
                other => {
                    text.clear();
                    crate::flow::json::write_value(other, &mut text);
                    groups[split.route_text(&text)].push(i);
                }
            }
        }
        let (reply, replies) = mpsc::channel();
        let mut asked = vec![false; self.ids.len()];
        for (model, group) in groups.iter().enumerate().filter(|(_, g)| !g.is_empty()) {
            let job = Job {
                model,
                rows: Arc::new(self.scorer.select_rows(rows, group)),
                n: group.len(),
                reply: reply.clone(),
            };
            asked[model] = self.workers[model].submit(job, false);
        }
        drop(reply);
        let n_asked = asked.iter().filter(|a| **a).count();
        let answers: Vec<(usize, Result<BatchAnswer, ModelError>)> = replies.iter().take(n_asked).collect();
        let mut answered = vec![false; self.ids.len()];
        for (model, answer) in answers {
            let group = &groups[model];
            answered[model] = true;
            let records = ready.pick(group);
            match answer {
                Ok(answer) => {
                    let resolved = outputs::resolve(self.scorer.outputs(), &answer.tensors);
                    let audit = self.audit(&answer, answer.latency_us);
                    scored.out.append(self.scorer.answered(records, &resolved, &audit));
                    if let Some(s) = &self.stats {
                        s.update(|answered, _, _, _| answered[model] += group.len() as u64);
                    }
                }
                Err(e) => {
                    let reason = format!("model {}: {e}", self.ids[model]);
                    scored.errors.append(self.scorer.fail(records, &reason));
                }
            }
        }
        let missing = format!("split key `{key}` is missing");
        scored.errors.append(self.scorer.fail(ready.pick(&keyless), &missing));
        // Records whose model could not take the job (it stopped).
        let left: Vec<usize> = groups
            .iter()
            .enumerate()
            .filter(|(m, _)| !answered[*m])
            .flat_map(|(_, g)| g.iter().copied())
            .collect();
        scored
            .errors
            .append(self.scorer.fail(ready.pick(&left), "the model's worker stopped"));
    }

    /// `slots` are the strategy's shadows as its statistics list them.
    #[allow(clippy::too_many_arguments)]
    fn shadow(
        &self,
        primary: usize,
        shadows: &[usize],
        slots: &[usize],
        emit: bool,
        ready: Batch,
        rows: Vec<f32>,
        scored: &mut Scored,
    ) {
        let n = ready.len();
        let mut models = vec![primary];
        models.extend_from_slice(shadows);
        // A shadow still busy with an earlier batch sits this one out: it never slows the primary down twice.
        let answers = self.ask(&models, Arc::new(rows), n, shadows);
        let Some(p) = answers.iter().position(|a| a.model == primary) else {
            scored
                .errors
                .append(self.scorer.fail(ready, &format!("model {} failed", self.ids[primary])));
            return;
        };
        let roles = Roles::of(self.scorer.outputs(), &answers[p].tensors);
        if let Some(stats) = &self.stats {
            stats.update(|answered, _, _, agreement| {
                answered[primary] += n as u64;
                for a in answers.iter().filter(|a| a.model != primary) {
                    if let Some(k) = slots.iter().position(|s| *s == a.model) {
                        for row in 0..n {
                            agreement[k].add(&answers[p], a, &roles, row);
                        }
                    }
                }
            });
        }
        if emit {
            for a in answers.iter().filter(|a| a.model != primary) {
                let resolved = outputs::resolve(self.scorer.outputs(), &a.tensors);
                let audit = self.audit(a, a.latency_us);
                scored
                    .shadow
                    .append(self.scorer.answered(ready.clone(), &resolved, &audit));
            }
        }
        let resolved = outputs::resolve(self.scorer.outputs(), &answers[p].tensors);
        let audit = self.audit(&answers[p], answers[p].latency_us);
        scored.out.append(self.scorer.answered(ready, &resolved, &audit));
    }
}
