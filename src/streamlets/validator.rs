//! The validator: each record is checked against a JSON Schema; valid records go to `valid`,
//! the others to `invalid` with `_error` saying why, their content unchanged.

use std::path::Path;

use serde_json::Value;

use super::io::with_error;
use super::{Batch, Io, Record, Stop, StreamletError};

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

pub async fn run(schema: RecordSchema, mut io: Io) -> Result<(), Stop> {
    let valid_out = io.outlets.get("valid");
    let invalid_out = io.outlets.get("invalid");
    while let Some(batch) = io.inlet.recv().await {
        let (valid, invalid) = schema.split(batch, &io.name);
        valid_out.send(valid).await?;
        invalid_out.send(invalid).await?;
    }
    Ok(())
}
