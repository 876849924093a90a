//! Serving strategies over the answers several models gave for one batch: which answer each
//! record takes (preference, confidence, votes, a combined value, a keyed split), and the
//! statistics each strategy keeps (who answered, budget misses, shadow agreement).

use std::collections::HashMap;
use std::hash::Hasher;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde_json::Value;

use super::config::{Combine, OutputMapping, OutputRole, TieRule};
use super::{ModelVersion, Tensor, TensorData};

/// What one model answered for a batch.
pub struct BatchAnswer {
    /// The model's index among the scorer's models.
    pub model: usize,
    pub version: Arc<ModelVersion>,
    pub tensors: HashMap<String, Tensor>,
    pub latency_us: u64,
}

/// Which output tensors hold the label, the class probabilities, the value and its variance.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Roles {
    pub label: Option<String>,
    pub probabilities: Option<String>,
    pub value: Option<String>,
    pub variance: Option<String>,
}

impl Roles {
    /// The roles of the mapped tensors: declared, or inferred from a batch's tensors.
    pub fn of(mappings: &[OutputMapping], tensors: &HashMap<String, Tensor>) -> Roles {
        let mut roles = Roles::default();
        for m in mappings {
            let Some(t) = tensors.get(&m.tensor) else {
                continue;
            };
            let role = m.role.unwrap_or(match (&t.data, t.row_width()) {
                (TensorData::I64(_) | TensorData::Str(_), _) => OutputRole::Label,
                (TensorData::F32(_), 1) if m.classes.is_none() && m.class.is_none() => OutputRole::Value,
                (TensorData::F32(_), _) => OutputRole::Probabilities,
            });
            let slot = match role {
                OutputRole::Label => &mut roles.label,
                OutputRole::Probabilities => &mut roles.probabilities,
                OutputRole::Value => &mut roles.value,
                OutputRole::Variance => &mut roles.variance,
            };
            slot.get_or_insert_with(|| m.tensor.clone());
        }
        roles
    }
}

fn cell(t: &Tensor, i: usize) -> Option<f64> {
    match &t.data {
        TensorData::F32(d) => d.get(i).map(|x| f64::from(*x)),
        TensorData::I64(d) => d.get(i).map(|x| *x as f64),
        TensorData::Str(_) => None,
    }
}

impl BatchAnswer {
    /// The label of row `row`, as text (so labels of any type can be counted).
    pub fn label(&self, roles: &Roles, row: usize) -> Option<String> {
        let t = self.tensors.get(roles.label.as_ref()?)?;
        let i = row * t.row_width();
        match &t.data {
            TensorData::I64(d) => d.get(i).map(i64::to_string),
            TensorData::Str(d) => d.get(i).cloned(),
            TensorData::F32(d) => d.get(i).map(f32::to_string),
        }
    }

    /// The value of row `row`, for regressors.
    pub fn value(&self, roles: &Roles, row: usize) -> Option<f64> {
        let t = self.tensors.get(roles.value.as_ref()?)?;
        cell(t, row * t.row_width())
    }

    /// How sure the model is of row `row`: its highest class probability, or minus its variance.
    pub fn confidence(&self, roles: &Roles, row: usize) -> Option<f64> {
        if let Some(t) = roles.probabilities.as_ref().and_then(|p| self.tensors.get(p)) {
            let w = t.row_width();
            return (row * w..(row + 1) * w).filter_map(|i| cell(t, i)).reduce(f64::max);
        }
        let t = self.tensors.get(roles.variance.as_ref()?)?;
        cell(t, row * t.row_width()).map(|v| -v)
    }
}

/// The answer a record takes.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// Index into the batch's answers.
    pub answer: usize,
    /// A combined value that replaces the answer's own (consensus of regressors).
    pub value: Option<f64>,
    /// How many models voted for the winning label (or were combined).
    pub votes: Option<usize>,
    /// The answers that agreed with the decision.
    pub agreed: Vec<usize>,
}

impl Decision {
    fn of(answer: usize) -> Self {
        Decision {
            answer,
            value: None,
            votes: None,
            agreed: vec![answer],
        }
    }
}

/// The most confident answer for `row`; the first answer when none says how confident it is.
pub fn best_confidence(answers: &[BatchAnswer], roles: &Roles, row: usize) -> Decision {
    let best = answers
        .iter()
        .enumerate()
        .filter_map(|(i, a)| a.confidence(roles, row).map(|c| (i, c)))
        .fold(None::<(usize, f64)>, |best, (i, c)| match best {
            Some((_, bc)) if bc >= c => best,
            _ => Some((i, c)),
        });
    Decision::of(best.map_or(0, |(i, _)| i))
}

/// Classifiers vote for labels (ties broken by `ties`); regressors combine their values.
/// Fails when fewer than `min_agree` answers agree.
pub fn consensus(
    answers: &[BatchAnswer],
    roles: &Roles,
    row: usize,
    min_agree: usize,
    ties: TieRule,
    combine: Combine,
) -> Result<Decision, String> {
    if answers.is_empty() {
        return Err("no model answered".into());
    }
    if roles.label.is_some() {
        // Labels in the order they were first voted for, with their voters.
        let mut tally: Vec<(String, Vec<usize>)> = Vec::new();
        for (i, a) in answers.iter().enumerate() {
            let Some(label) = a.label(roles, row) else {
                continue;
            };
            match tally.iter_mut().find(|(l, _)| *l == label) {
                Some((_, voters)) => voters.push(i),
                None => tally.push((label, vec![i])),
            }
        }
        let top = tally.iter().map(|(_, v)| v.len()).max().unwrap_or(0);
        if top < min_agree {
            return Err(format!(
                "no consensus: at most {top} of {} models agree, {min_agree} must",
                answers.len()
            ));
        }
        let tied: Vec<&Vec<usize>> = tally.iter().filter(|(_, v)| v.len() == top).map(|(_, v)| v).collect();
        let winners = match ties {
            TieRule::First => tied.iter().min_by_key(|v| v[0]).copied(),
            TieRule::BestConfidence => tied.iter().copied().max_by(|a, b| {
                let conf = |v: &Vec<usize>| {
                    v.iter()
                        .filter_map(|i| answers[*i].confidence(roles, row))
                        .fold(f64::MIN, f64::max)
                };
                conf(a).total_cmp(&conf(b)).then(b[0].cmp(&a[0]))
            }),
        };
        let Some(winners) = winners else {
            return Err("no model gave a label".into());
        };
        return Ok(Decision {
            answer: winners[0],
            value: None,
            votes: Some(winners.len()),
            agreed: winners.clone(),
        });
    }
    let mut values: Vec<(usize, f64)> = answers
        .iter()
        .enumerate()
        .filter_map(|(i, a)| a.value(roles, row).map(|v| (i, v)))
        .collect();
    if values.len() < min_agree.max(1) {
        return Err(format!(
            "no consensus: {} of {} models gave a value, {min_agree} must",
            values.len(),
            answers.len()
        ));
    }
    values.sort_by(|a, b| a.1.total_cmp(&b.1));
    let combined = match combine {
        Combine::Mean => values.iter().map(|(_, v)| v).sum::<f64>() / values.len() as f64,
        Combine::Median if values.len() % 2 == 1 => values[values.len() / 2].1,
        Combine::Median => (values[values.len() / 2 - 1].1 + values[values.len() / 2].1) / 2.0,
    };
    let mut agreed: Vec<usize> = values.iter().map(|(i, _)| *i).collect();
    agreed.sort_unstable();
    Ok(Decision {
        answer: agreed[0],
        value: Some(combined),
        votes: Some(agreed.len()),
        agreed,
    })
}

/// Routes records by a stable hash of their key: model `i` gets the share `weights[i] / total`;
/// a weight of 0 gets nothing. The same key always goes to the same model.
#[derive(Debug, Clone)]
pub struct Split {
    /// Cumulative upper bounds in [0, 1], one per model.
    bounds: Vec<f64>,
}

impl Split {
    pub fn new(weights: &[f64]) -> Self {
        let total: f64 = weights.iter().map(|w| w.max(0.0)).sum();
        let mut acc = 0.0;
        let bounds = weights
            .iter()
            .map(|w| {
                acc += w.max(0.0) / total;
                acc
            })
            .collect();
        Split { bounds }
    }

    /// The model with the largest share of keys (the first of equals).
    pub fn heaviest(&self) -> usize {
        let mut previous = 0.0;
        let mut best = (0, f64::MIN);
        for (i, bound) in self.bounds.iter().enumerate() {
            let share = bound - previous;
            if share > best.1 {
                best = (i, share);
            }
            previous = *bound;
        }
        best.0
    }

    /// The model a key goes to.
    pub fn route(&self, key: &Value) -> usize {
        match key {
            Value::String(s) => self.route_text(s),
            other => self.route_text(&other.to_string()),
        }
    }

    /// The arm of a key given as text (a string key's own text, any other value's JSON).
    pub fn route_text(&self, key: &str) -> usize {
        let mut hasher = twox_hash::XxHash64::with_seed(0);
        hasher.write(key.as_bytes());
        let u = (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64;
        let last = self.bounds.iter().rposition(|b| *b > 0.0 && b.is_finite()).unwrap_or(0);
        self.bounds.iter().position(|b| u < *b).unwrap_or(last)
    }
}

/// How far a shadow's answers are from the primary's.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Agreement {
    pub compared: u64,
    /// Share of records where the labels were equal (classifiers).
    pub label_agreement: Option<f64>,
    /// Mean and max absolute difference of the values (regressors).
    pub mean_abs_diff: Option<f64>,
    pub max_abs_diff: Option<f64>,
    #[serde(skip)]
    labels_equal: u64,
    #[serde(skip)]
    labels_compared: u64,
    #[serde(skip)]
    diff_sum: f64,
    #[serde(skip)]
    values_compared: u64,
}

impl Agreement {
    pub fn add(&mut self, primary: &BatchAnswer, shadow: &BatchAnswer, roles: &Roles, row: usize) {
        self.compared += 1;
        if let (Some(p), Some(s)) = (primary.label(roles, row), shadow.label(roles, row)) {
            self.labels_compared += 1;
            self.labels_equal += u64::from(p == s);
            self.label_agreement = Some(self.labels_equal as f64 / self.labels_compared as f64);
        }
        if let (Some(p), Some(s)) = (primary.value(roles, row), shadow.value(roles, row)) {
            let d = (p - s).abs();
            self.values_compared += 1;
            self.diff_sum += d;
            self.mean_abs_diff = Some(self.diff_sum / self.values_compared as f64);
            self.max_abs_diff = Some(self.max_abs_diff.map_or(d, |m| m.max(d)));
        }
    }
}

/// A snapshot of a strategy's statistics.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StrategySummary {
    pub strategy: String,
    /// Records each model answered, by model id.
    pub answered: Vec<(String, u64)>,
    pub budget_misses: u64,
    pub no_consensus: u64,
    /// Agreement of each shadow with the primary, by model id.
    pub shadows: Vec<(String, Agreement)>,
}

struct Counts {
    answered: Vec<u64>,
    budget_misses: u64,
    no_consensus: u64,
    shadows: Vec<Agreement>,
}

/// The statistics of one scorer's strategy.
pub struct StrategyStats {
    strategy: String,
    ids: Vec<String>,
    shadow_ids: Vec<String>,
    counts: Mutex<Counts>,
}

impl StrategyStats {
    pub fn new(strategy: &str, ids: Vec<String>, shadow_ids: Vec<String>) -> Self {
        StrategyStats {
            strategy: strategy.to_string(),
            counts: Mutex::new(Counts {
                answered: vec![0; ids.len()],
                budget_misses: 0,
                no_consensus: 0,
                shadows: vec![Agreement::default(); shadow_ids.len()],
            }),
            ids,
            shadow_ids,
        }
    }

    /// Updates the counts under one lock.
    pub fn update(&self, f: impl FnOnce(&mut [u64], &mut u64, &mut u64, &mut [Agreement])) {
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let Counts {
            answered,
            budget_misses,
            no_consensus,
            shadows,
        } = &mut *c;
        f(answered, budget_misses, no_consensus, shadows);
    }

    pub fn summary(&self) -> StrategySummary {
        let c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        StrategySummary {
            strategy: self.strategy.clone(),
            answered: self.ids.iter().cloned().zip(c.answered.iter().copied()).collect(),
            budget_misses: c.budget_misses,
            no_consensus: c.no_consensus,
            shadows: self.shadow_ids.iter().cloned().zip(c.shadows.iter().cloned()).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_follows_weights_and_never_routes_to_zero() {
        let split = Split::new(&[70.0, 0.0, 30.0]);
        let mut counts = [0u32; 3];
        for id in 0..100_000 {
            counts[split.route(&Value::from(id))] += 1;
        }
        assert_eq!(counts[1], 0);
        assert!((counts[0] as f64 / 1000.0 - 70.0).abs() < 1.0, "{counts:?}");
        assert_eq!(split.route(&Value::from("abc")), split.route(&Value::from("abc")));
    }
}
