//! The validator: each record is checked against a JSON Schema; valid records go to `valid`,
//! the others to `invalid` with `_error` saying why, their content unchanged.

pub mod config;

pub mod columns;

use self::config::ValidatorPort;
use std::path::Path;

use arrow_array::BooleanArray;
use serde_json::Value;

use super::io::with_errors;
use super::{Batch, Io, Stop, StreamletError};
use crate::flow::{
    each_valid, exact_integers_within, mark_values, marked, ColumnBuilder, Owned, Typed, Value as Field,
};
use crate::models::profile::{DriftEvent, DriftMonitor, DriftSettings, Profile, Seen, Violation};
use columns::ColumnCheck;
use config::{OutOfProfile, ValidatorConfig};

/// A compiled record schema: the JSON Schema validator, and what of it can be decided a
/// column at a time (records it is sure of skip the full validator).
pub struct RecordSchema {
    validator: jsonschema::Validator,
    columns: Option<ColumnCheck>,
}

/// Why a record failed its schema: the reason and the JSON pointer of the offending value.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    pub reason: String,
    pub path: String,
}

impl RecordSchema {
    pub fn load(path: &Path) -> Result<Self, StreamletError> {
        let fail = |reason: String| StreamletError::Schema {
            path: path.display().to_string(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
        let schema: Value = serde_json::from_str(&text).map_err(|e| fail(e.to_string()))?;
        let validator = jsonschema::validator_for(&schema).map_err(|e| fail(e.to_string()))?;
        Ok(RecordSchema {
            validator,
            columns: ColumnCheck::read(&schema),
        })
    }

    /// Checks a record; the first problem found, if any.
    pub fn check(&self, record: &Value) -> Option<Rejection> {
        if self.validator.is_valid(record) {
            return None;
        }
        let errors: Vec<_> = self.validator.iter_errors(record).collect();
        let first = errors.first()?;
        let mut reason = first.to_string();
        if errors.len() > 1 {
            reason.push_str(&format!(" (and {} more)", errors.len() - 1));
        }
        Some(Rejection {
            reason,
            path: first.instance_path().to_string(),
        })
    }

    /// Splits a batch into valid records and rejected ones (each with `_error`).
    pub fn split(&self, batch: Batch, streamlet: &str) -> (Batch, Batch) {
        let unsure = match &self.columns {
            Some(check) => check.unsure(&batch),
            None => vec![true; batch.len()],
        };
        // Mostly every record is certainly valid: nothing to ask the full validator.
        if !unsure.contains(&true) {
            return (batch, Batch::default());
        }
        let mut keep = Vec::with_capacity(batch.len());
        let (mut reasons, mut paths) = (Vec::new(), Vec::new());
        for (i, unsure) in unsure.into_iter().enumerate() {
            let rejection = if unsure {
                self.check(&Value::Object(batch.record(i)))
            } else {
                None
            };
            keep.push(rejection.is_none());
            if let Some(r) = rejection {
                reasons.push(r.reason);
                paths.push(r.path);
            }
        }
        if reasons.is_empty() {
            return (batch, Batch::default());
        }
        let (valid, invalid) = batch.split(&BooleanArray::from(keep));
        (valid, with_errors(invalid, streamlet, reasons, paths))
    }
}

/// A validator ready to run: its record schema, and its training profile if it has one.
pub struct Ready {
    schema: RecordSchema,
    profile: Option<ProfileCheck>,
}

/// The profile checks of a validator.
struct ProfileCheck {
    profile: Profile,
    slack: f64,
    mode: OutOfProfile,
    drift: Option<DriftMonitor>,
}

/// Compiles the schema and reads the profile.
pub fn prepare(config: &ValidatorConfig) -> Result<Ready, StreamletError> {
    let schema = RecordSchema::load(&config.schema)?;
    let profile = match &config.profile {
        None => None,
        Some(p) => {
            let fail = |reason: String| StreamletError::Profile {
                path: p.path.display().to_string(),
                reason,
            };
            let profile = Profile::load(&p.path).and_then(|pr| pr.only(&p.fields)).map_err(fail)?;
            let drift = p.drift.as_ref().map(|d| {
                DriftMonitor::new(
                    &profile,
                    DriftSettings {
                        window: d.window,
                        every: d.every.unwrap_or(d.window / 4).max(1),
                        psi_threshold: d.psi_threshold,
                        out_of_range_threshold: d.out_of_range_threshold,
                    },
                )
            });
            Some(ProfileCheck {
                profile,
                slack: p.slack,
                mode: p.out_of_profile,
                drift,
            })
        }
    };
    Ok(Ready { schema, profile })
}

impl ProfileCheck {
    /// Checks the valid records against the profile (moving or tagging those outside it) and
    /// feeds the drift monitor; the drift events of the batch.
    fn apply(&mut self, valid: &mut Batch, invalid: &mut Batch, streamlet: &str) -> Vec<DriftEvent> {
        let n = valid.len();
        let absent = crate::flow::Column::absent(n);
        let columns: Vec<&crate::flow::Column> = self
            .profile
            .fields
            .keys()
            .map(|name| valid.column(name).unwrap_or(&absent))
            .collect();
        let mut events = Vec::new();
        if let Some(drift) = &mut self.drift {
            // The window moves record by record.
            let mut values: Vec<Seen<'_>> = Vec::with_capacity(columns.len());
            for i in 0..n {
                values.clear();
                values.extend(columns.iter().map(|c| Seen::of(c.get(i))));
                events.extend(drift.observe_values(&values));
            }
        }
        // Per record, every way it is outside the profile (in the profile's field order).
        let mut outside: Vec<Vec<Violation>> = vec![Vec::new(); n];
        // Per column: the rows to look at one by one (a value found outside in the tight loop,
        // to give its reason), and the rows without a value.
        let (mut flagged, mut missing) = (vec![false; n], vec![false; n]);
        for ((name, field), column) in self.profile.fields.iter().zip(&columns) {
            let violation = |reason: String| Violation {
                field: name.clone(),
                reason: format!("`{name}` {reason}"),
            };
            let mut check = |i: usize, value: Field<'_>| {
                if let Err(reason) = field.check(&Seen::of(value), self.slack) {
                    outside[i].push(violation(reason));
                }
            };
            flagged.fill(false);
            missing.fill(false);
            // Columns of one type in a tight loop.
            match (column.plain(), field.number_range(self.slack)) {
                (Some(Typed::Int(a)), Some((lo, hi))) => {
                    let (lo, hi) = exact_integers_within(lo, hi);
                    mark_values(a, &mut flagged, |v| (v < lo) | (v > hi));
                    column.mark_untyped(&mut missing);
                }
                (Some(Typed::Float(a)), Some((lo, hi))) => {
                    mark_values(a, &mut flagged, |v| !((v >= lo) & (v <= hi)));
                    column.mark_untyped(&mut missing);
                }
                (Some(Typed::Str(a)), None) => {
                    each_valid(a, |i| flagged[i] = field.has_category(a.value(i)) != Some(true));
                    column.mark_untyped(&mut missing);
                }
                (Some(Typed::Bool(a)), None) => {
                    let allowed = [field.has_category("false"), field.has_category("true")];
                    each_valid(a, |i| flagged[i] = allowed[usize::from(a.value(i))] != Some(true));
                    column.mark_untyped(&mut missing);
                }
                _ => {
                    flagged.fill(true);
                    missing.fill(true);
                    column.each(|i, _| missing[i] = false);
                }
            }
            for i in marked(&flagged) {
                match column.get(i) {
                    Field::Absent => {}
                    value => check(i, value),
                }
            }
            if let Err(reason) = field.check(&Seen::Null, self.slack) {
                for i in marked(&missing) {
                    outside[i].push(violation(reason.clone()));
                }
            }
        }
        drop(columns);
        let outside: Vec<(usize, Vec<Violation>)> =
            outside.into_iter().enumerate().filter(|(_, v)| !v.is_empty()).collect();
        if outside.is_empty() {
            return events;
        }
        match self.mode {
            OutOfProfile::Route => {
                let mut keep = vec![true; valid.len()];
                let (mut reasons, mut paths) = (Vec::new(), Vec::new());
                for (i, violations) in &outside {
                    keep[*i] = false;
                    reasons.push(format!(
                        "outside the training profile: {}",
                        violations
                            .iter()
                            .map(|v| v.reason.as_str())
                            .collect::<Vec<_>>()
                            .join("; ")
                    ));
                    paths.push(format!("/{}", violations[0].field));
                }
                let (kept, out) = valid.split(&BooleanArray::from(keep));
                *valid = kept;
                invalid.append(with_errors(out, streamlet, reasons, paths));
            }
            OutOfProfile::Tag => {
                let mut tags = ColumnBuilder::default();
                let existing = valid.column("_profile");
                let mut next = outside.iter().peekable();
                for i in 0..valid.len() {
                    match next.next_if(|(row, _)| *row == i) {
                        Some((_, violations)) => {
                            let reasons =
                                Value::Array(violations.iter().map(|v| Value::from(v.reason.clone())).collect());
                            tags.push_owned(&Owned::Object(vec![(
                                "violations".into(),
                                Owned::Json(reasons.to_string()),
                            )]));
                        }
                        None => tags.push(existing.map_or(Field::Absent, |c| c.get(i))),
                    }
                }
                let tags = tags.finish();
                valid.set("_profile", tags);
            }
        }
        events
    }
}

fn drift_record(event: &DriftEvent, streamlet: &str) -> serde_json::Map<String, Value> {
    let mut record = serde_json::Map::new();
    record.insert("type".into(), "drift".into());
    record.insert("streamlet".into(), streamlet.into());
    record.insert("field".into(), event.field.clone().into());
    record.insert("status".into(), event.status.into());
    record.insert("psi".into(), event.psi.into());
    record.insert("out_of_range_rate".into(), event.out_of_range_rate.into());
    record.insert("window".into(), event.window.into());
    record.insert("records".into(), event.records.into());
    record.insert(
        "at".into(),
        humantime::format_rfc3339_millis(std::time::SystemTime::now())
            .to_string()
            .into(),
    );
    record
}

pub async fn run(ready: Ready, mut io: Io) -> Result<(), Stop> {
    let Ready { schema, mut profile } = ready;
    let valid_out = io.outlets.get(ValidatorPort::Valid)?;
    let invalid_out = io.outlets.get(ValidatorPort::Invalid)?;
    let drift_out = io.outlets.find(ValidatorPort::Drift);
    let mut evaluated = 0;
    while let Some(batch) = io.inlet.recv().await {
        let (mut valid, mut invalid) = schema.split(batch, &io.name);
        if let Some(check) = &mut profile {
            let events = check.apply(&mut valid, &mut invalid, &io.name);
            // The figures are published when they change: at each evaluation.
            if let Some(monitor) = check.drift.as_ref().filter(|m| m.evaluations() != evaluated) {
                evaluated = monitor.evaluations();
                io.telemetry.set_drift(monitor.gauges());
            }
            for e in &events {
                tracing::warn!(streamlet = %io.name, field = %e.field, status = e.status, psi = e.psi, out_of_range_rate = e.out_of_range_rate, records = e.records, "drift");
                io.telemetry.count(
                    &format!("drift_events{{field=\"{}\",status=\"{}\"}}", e.field, e.status),
                    1,
                );
            }
            if let Some(out) = drift_out {
                let records: Vec<_> = events.iter().map(|e| drift_record(e, &io.name)).collect();
                out.send(Batch::from_records(&records)).await?;
            }
        }
        valid_out.send(valid).await?;
        invalid_out.send(invalid).await?;
    }
    Ok(())
}
