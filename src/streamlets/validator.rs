//! The validator: each record is checked against a JSON Schema; valid records go to `valid`,
//! the others to `invalid` with `_error` saying why, their content unchanged.

use std::path::Path;

use serde_json::Value;

use super::io::with_error;
use super::{Batch, Io, Record, Stop, StreamletError};
use crate::models::profile::{DriftEvent, DriftMonitor, DriftSettings, Profile};
use crate::spec::{OutOfProfile, ValidatorConfig};

/// A compiled record schema.
pub struct RecordSchema {
    validator: jsonschema::Validator,
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
        Ok(RecordSchema { validator })
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
        let mut valid = Vec::with_capacity(batch.len());
        let mut invalid = Vec::new();
        for record in batch {
            let value = Value::Object(record);
            match self.check(&value) {
                None => valid.push(into_record(value)),
                Some(r) => invalid.push(with_error(into_record(value), streamlet, &r.reason, &r.path)),
            }
        }
        (valid, invalid)
    }
}

fn into_record(value: Value) -> Record {
    match value {
        Value::Object(map) => map,
        _ => Record::new(),
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
            let fail = |reason: String| StreamletError::Schema {
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
        let mut events = Vec::new();
        let mut kept = Vec::with_capacity(valid.len());
        for mut record in valid.drain(..) {
            if let Some(drift) = &mut self.drift {
                events.extend(drift.observe(&record));
            }
            let violations = self.profile.violations(&record, self.slack);
            if violations.is_empty() {
                kept.push(record);
                continue;
            }
            match self.mode {
                OutOfProfile::Route => {
                    let reason = format!(
                        "outside the training profile: {}",
                        violations
                            .iter()
                            .map(|v| v.reason.as_str())
                            .collect::<Vec<_>>()
                            .join("; ")
                    );
                    invalid.push(with_error(
                        record,
                        streamlet,
                        &reason,
                        &format!("/{}", violations[0].field),
                    ));
                }
                OutOfProfile::Tag => {
                    let reasons: Vec<Value> = violations.into_iter().map(|v| Value::from(v.reason)).collect();
                    let mut tag = serde_json::Map::new();
                    tag.insert("violations".into(), Value::Array(reasons));
                    record.insert("_profile".into(), Value::Object(tag));
                    kept.push(record);
                }
            }
        }
        *valid = kept;
        events
    }
}

fn drift_record(event: &DriftEvent, streamlet: &str) -> Record {
    let mut record = Record::new();
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
    let valid_out = io.outlets.get("valid")?;
    let invalid_out = io.outlets.get("invalid")?;
    let drift_out = io.outlets.find("drift");
    while let Some(batch) = io.inlet.recv().await {
        let (mut valid, mut invalid) = schema.split(batch, &io.name);
        if let Some(check) = &mut profile {
            let events = check.apply(&mut valid, &mut invalid, &io.name);
            for e in &events {
                tracing::warn!(streamlet = %io.name, field = %e.field, status = e.status, psi = e.psi, out_of_range_rate = e.out_of_range_rate, records = e.records, "drift");
                io.telemetry.count(
                    &format!("drift_events{{field=\"{}\",status=\"{}\"}}", e.field, e.status),
                    1,
                );
            }
            if let Some(out) = drift_out {
                out.send(events.iter().map(|e| drift_record(e, &io.name)).collect())
                    .await?;
            }
        }
        valid_out.send(valid).await?;
        invalid_out.send(invalid).await?;
    }
    Ok(())
}
