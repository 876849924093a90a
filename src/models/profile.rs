//! A model's training profile (per field: range, nulls, spread, histogram or category shares),
//! the checks of single records against it, and drift over a sliding window: the population
//! stability index (PSI) per field and the rate of out-of-range values.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::path::Path;

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Equal-width bins over the training range and the share of training values in each.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Histogram {
    pub edges: Vec<f64>,
    pub fractions: Vec<f64>,
}

/// What the training data looked like for one field.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum FieldProfile {
    Number {
        #[serde(default)]
        null_rate: f64,
        min: f64,
        max: f64,
        #[serde(default)]
        mean: Option<f64>,
        #[serde(default)]
        std: Option<f64>,
        histogram: Histogram,
    },
    Category {
        #[serde(default)]
        null_rate: f64,
        /// Each allowed value and its share (looked up for every record: a fast hasher).
        categories: IndexMap<String, f64, foldhash::fast::RandomState>,
    },
}

/// A training profile, as the training script writes it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Profile {
    pub fields: IndexMap<String, FieldProfile>,
}

/// Why a record is outside the profile.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Violation {
    pub field: String,
    pub reason: String,
}

/// A value as the profile sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum Seen<'a> {
    Null,
    Number(f64),
    Text(Cow<'a, str>),
}

fn seen(value: Option<&Value>) -> Seen<'_> {
    match value {
        None | Some(Value::Null) => Seen::Null,
        Some(Value::Number(n)) => n.as_f64().map_or(Seen::Null, Seen::Number),
        Some(Value::Bool(b)) => Seen::Text(b.to_string().into()),
        Some(Value::String(s)) => Seen::Text(s.as_str().into()),
        Some(other) => Seen::Text(other.to_string().into()),
    }
}

impl<'a> Seen<'a> {
    /// A record's value, as the profile sees it.
    pub fn of(value: crate::flow::Value<'a>) -> Seen<'a> {
        use crate::flow::Value as F;
        match value {
            F::Absent | F::Null => Seen::Null,
            F::Int(i) => Seen::Number(i as f64),
            F::Float(x) => Seen::Number(x),
            F::Bool(b) => Seen::Text(Cow::Borrowed(if b { "true" } else { "false" })),
            F::Str(s) => Seen::Text(Cow::Borrowed(s)),
            other => match other.to_json() {
                Value::Number(n) => n.as_f64().map_or(Seen::Null, Seen::Number),
                Value::String(s) => Seen::Text(s.into()),
                Value::Null => Seen::Null,
                json => Seen::Text(json.to_string().into()),
            },
        }
    }
}

impl Profile {
    pub fn load(path: &Path) -> Result<Profile, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Keeps only the named fields (all of them when `names` is empty).
    pub fn only(mut self, names: &[String]) -> Result<Profile, String> {
        if names.is_empty() {
            return Ok(self);
        }
        if let Some(missing) = names.iter().find(|n| !self.fields.contains_key(*n)) {
            return Err(format!("the profile has no field `{missing}`"));
        }
        self.fields.retain(|k, _| names.contains(k));
        Ok(self)
    }
}

impl FieldProfile {
    /// Whether a value is one the training data could have held; `slack` widens numeric
    /// ranges by that share of their width.
    pub fn check(&self, value: &Seen, slack: f64) -> Result<(), String> {
        match (self, value) {
            (FieldProfile::Number { null_rate, .. } | FieldProfile::Category { null_rate, .. }, Seen::Null) => {
                if *null_rate > 0.0 {
                    Ok(())
                } else {
                    Err("is missing, and training data had no missing values".into())
                }
            }
            (FieldProfile::Number { min, max, .. }, Seen::Number(x)) => {
                let pad = (max - min) * slack;
                if *x < min - pad {
                    Err(format!("{x} is below the training minimum {min}"))
                } else if *x > max + pad {
                    Err(format!("{x} is above the training maximum {max}"))
                } else {
                    Ok(())
                }
            }
            (FieldProfile::Number { .. }, Seen::Text(t)) => Err(format!("{t:?} is not a number")),
            (FieldProfile::Category { categories, .. }, Seen::Text(t)) if categories.contains_key(t.as_ref()) => Ok(()),
            (FieldProfile::Category { .. }, Seen::Text(t)) => Err(format!("{t:?} never occurred in training")),
            (FieldProfile::Category { categories, .. }, Seen::Number(x)) => {
                if categories.contains_key(&x.to_string()) {
                    Ok(())
                } else {
                    Err(format!("{x} never occurred in training"))
                }
            }
        }
    }

    /// The range a number must be in (widened by `slack`), for a tight loop over a numeric
    /// column; `None` for a category field.
    pub fn number_range(&self, slack: f64) -> Option<(f64, f64)> {
        match self {
            FieldProfile::Number { min, max, .. } => {
                let pad = (max - min) * slack;
                Some((min - pad, max + pad))
            }
            FieldProfile::Category { .. } => None,
        }
    }

    /// Whether a text is one of the profile's categories; `None` for a number field.
    pub fn has_category(&self, text: &str) -> Option<bool> {
        match self {
            FieldProfile::Category { categories, .. } => Some(categories.contains_key(text)),
            FieldProfile::Number { .. } => None,
        }
    }

    /// The training shares of the bins a window is compared over, and the bin of a value.
    fn expected(&self) -> Vec<f64> {
        match self {
            FieldProfile::Number { histogram, .. } => histogram.fractions.clone(),
            FieldProfile::Category { categories, .. } => {
                let mut shares: Vec<f64> = categories.values().copied().collect();
                shares.push(0.0); // values never seen in training
                shares
            }
        }
    }

    fn bin(&self, value: &Seen) -> Option<usize> {
        match (self, value) {
            (FieldProfile::Number { histogram, .. }, Seen::Number(x)) => {
                let bins = histogram.fractions.len();
                let inner = &histogram.edges[1..histogram.edges.len().saturating_sub(1)];
                Some(inner.iter().position(|edge| x < edge).unwrap_or(bins.saturating_sub(1)))
            }
            (FieldProfile::Category { categories, .. }, Seen::Text(t)) => {
                Some(categories.get_index_of(t.as_ref()).unwrap_or(categories.len()))
            }
            _ => None,
        }
    }
}

/// The population stability index of `actual` shares against `expected` ones.
pub fn psi(expected: &[f64], actual: &[f64]) -> f64 {
    const EPSILON: f64 = 1e-4;
    expected
        .iter()
        .zip(actual)
        .map(|(e, a)| {
            let (e, a) = (e.max(EPSILON), a.max(EPSILON));
            (a - e) * (a / e).ln()
        })
        .sum()
}

/// The checks of records against a profile.
impl Profile {
    /// Every way the record is outside the profile.
    pub fn violations(&self, record: &Map<String, Value>, slack: f64) -> Vec<Violation> {
        let values: Vec<Seen<'_>> = self.fields.keys().map(|name| seen(record.get(name))).collect();
        self.violations_of(&values, slack)
    }

    /// Every way a record is outside the profile, given its values of the profile's fields
    /// (in the profile's order).
    pub fn violations_of(&self, values: &[Seen<'_>], slack: f64) -> Vec<Violation> {
        self.fields
            .iter()
            .zip(values)
            .filter_map(|((name, field), value)| {
                field.check(value, slack).err().map(|reason| Violation {
                    field: name.clone(),
                    reason: format!("`{name}` {reason}"),
                })
            })
            .collect()
    }
}

/// Thresholds and window of drift detection.
#[derive(Debug, Clone, PartialEq)]
pub struct DriftSettings {
    pub window: usize,
    pub every: usize,
    pub psi_threshold: f64,
    pub out_of_range_threshold: f64,
}

/// A change in a field's drift state.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DriftEvent {
    pub field: String,
    /// `drifting` when a threshold is crossed, `recovered` when the field is back under both.
    pub status: &'static str,
    pub psi: f64,
    pub out_of_range_rate: f64,
    pub window: usize,
    /// Records seen when the event happened.
    pub records: u64,
}

struct FieldWindow {
    name: String,
    profile: FieldProfile,
    expected: Vec<f64>,
    values: VecDeque<(Option<usize>, bool)>,
    drifting: bool,
    /// The figures of the last evaluation.
    last: Option<(f64, f64)>,
}

/// A field's drift figures at the last evaluation, with the thresholds they are held to.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DriftGauge {
    pub field: String,
    pub psi: f64,
    pub out_of_range_rate: f64,
    pub drifting: bool,
    pub psi_threshold: f64,
    pub out_of_range_threshold: f64,
}

/// Drift of each profiled field over the last `window` records, evaluated every `every` records.
pub struct DriftMonitor {
    settings: DriftSettings,
    fields: Vec<FieldWindow>,
    seen: u64,
    /// Evaluations so far.
    evaluations: u64,
}

impl DriftMonitor {
    pub fn new(profile: &Profile, settings: DriftSettings) -> Self {
        let fields = profile
            .fields
            .iter()
            .map(|(name, p)| FieldWindow {
                name: name.clone(),
                expected: p.expected(),
                profile: p.clone(),
                values: VecDeque::with_capacity(settings.window),
                drifting: false,
                last: None,
            })
            .collect();
        DriftMonitor {
            settings,
            fields,
            seen: 0,
            evaluations: 0,
        }
    }

    /// Takes in one record; the drift events it brings about.
    pub fn observe(&mut self, record: &Map<String, Value>) -> Vec<DriftEvent> {
        let values: Vec<Seen<'_>> = self.fields.iter().map(|f| seen(record.get(&f.name))).collect();
        self.observe_values(&values)
    }

    /// Takes in one record, given its values of the profile's fields (in the profile's order).
    pub fn observe_values(&mut self, values: &[Seen<'_>]) -> Vec<DriftEvent> {
        self.seen += 1;
        for (f, value) in self.fields.iter_mut().zip(values) {
            let in_range = f.profile.check(value, 0.0).is_ok();
            if f.values.len() == self.settings.window {
                f.values.pop_front();
            }
            f.values.push_back((f.profile.bin(value), in_range));
        }
        let full = self.seen >= self.settings.window as u64;
        if !full || !self.seen.is_multiple_of(self.settings.every.max(1) as u64) {
            return Vec::new();
        }
        let mut events = Vec::new();
        self.evaluations += 1;
        for f in &mut self.fields {
            let n = f.values.len() as f64;
            let mut counts = vec![0.0; f.expected.len()];
            let mut out_of_range = 0.0;
            for (bin, in_range) in &f.values {
                if let Some(b) = bin.filter(|b| *b < counts.len()) {
                    counts[b] += 1.0;
                }
                if !in_range {
                    out_of_range += 1.0;
                }
            }
            let actual: Vec<f64> = counts.iter().map(|c| c / n).collect();
            let index = psi(&f.expected, &actual);
            let rate = out_of_range / n;
            // Hysteresis: a field drifts above the thresholds and recovers only below half of
            // them, so a window hovering about a threshold does not flap between the two.
            f.last = Some((index, rate));
            let scale = if f.drifting { 0.5 } else { 1.0 };
            let drifting =
                index > self.settings.psi_threshold * scale || rate > self.settings.out_of_range_threshold * scale;
            if drifting != f.drifting {
                f.drifting = drifting;
                events.push(DriftEvent {
                    field: f.name.clone(),
                    status: if drifting { "drifting" } else { "recovered" },
                    psi: (index * 1e4).round() / 1e4,
                    out_of_range_rate: (rate * 1e4).round() / 1e4,
                    window: f.values.len(),
                    records: self.seen,
                });
            }
        }
        events
    }

    /// How many times the fields' drift was evaluated.
    pub fn evaluations(&self) -> u64 {
        self.evaluations
    }

    /// Each field's figures at the last evaluation (none before the window first filled).
    pub fn gauges(&self) -> Vec<DriftGauge> {
        self.fields
            .iter()
            .filter_map(|f| {
                let (psi, rate) = f.last?;
                Some(DriftGauge {
                    field: f.name.clone(),
                    psi: (psi * 1e4).round() / 1e4,
                    out_of_range_rate: (rate * 1e4).round() / 1e4,
                    drifting: f.drifting,
                    psi_threshold: self.settings.psi_threshold,
                    out_of_range_threshold: self.settings.out_of_range_threshold,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn profile() -> Profile {
        serde_json::from_value(json!({"fields": {
            "x": {"type": "number", "min": 0.0, "max": 10.0,
                  "histogram": {"edges": [0.0, 5.0, 10.0], "fractions": [0.5, 0.5]}},
            "c": {"type": "category", "categories": {"a": 0.5, "b": 0.5}}
        }}))
        .expect("profile")
    }

    #[test]
    fn psi_is_zero_for_the_same_shares_and_grows_with_the_shift() {
        assert!(psi(&[0.5, 0.5], &[0.5, 0.5]).abs() < 1e-12);
        assert!(psi(&[0.5, 0.5], &[0.9, 0.1]) > 0.5);
    }

    #[test]
    fn records_outside_the_profile_say_why() {
        let p = profile();
        let ok = json!({"x": 3, "c": "a"});
        assert!(p.violations(ok.as_object().expect("obj"), 0.0).is_empty());
        let bad = json!({"x": 12, "c": "z"});
        let v = p.violations(bad.as_object().expect("obj"), 0.0);
        assert_eq!(v.len(), 2);
        assert!(v[0].reason.contains("above the training maximum 10"));
        assert!(v[1].reason.contains("never occurred"));
        assert!(
            p.violations(bad.as_object().expect("obj"), 0.5)[0].field == "c",
            "slack widens the range"
        );
        let missing = json!({"c": "a"});
        assert!(p.violations(missing.as_object().expect("obj"), 0.0)[0]
            .reason
            .contains("missing"));
    }

    #[test]
    fn drift_is_reported_once_when_crossed_and_when_recovered() {
        let settings = DriftSettings {
            window: 100,
            every: 10,
            psi_threshold: 0.2,
            out_of_range_threshold: 0.05,
        };
        let mut m = DriftMonitor::new(&profile().only(&["x".into()]).expect("x"), settings);
        let mut events = Vec::new();
        for i in 0..300 {
            let x = if (100..200).contains(&i) { 9.0 } else { (i % 10) as f64 };
            events.extend(m.observe(json!({"x": x}).as_object().expect("obj")));
        }
        let statuses: Vec<&str> = events.iter().map(|e| e.status).collect();
        assert_eq!(statuses, vec!["drifting", "recovered"], "{events:?}");
        assert!(events[0].records > 100 && events[0].records <= 200);
    }
}
