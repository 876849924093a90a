//! An enricher's configuration: the reference table (a file or a compacted topic), the key
//! records join on, the fields added, and what happens to a record the table lacks.

use std::path::PathBuf;

use crate::problem::Problem;
use crate::streamlets::kind::{Finding, Kind, Outlets, PathField, PathRole, Port};
use indexmap::IndexMap;
use serde::{Deserialize, Deserializer};

use crate::formats::{ColumnType, Format};

/// An enricher: joins each record with a reference table.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct EnricherConfig {
    pub table: TableConfig,
    /// Record fields matched against the table's key, in order; the key's names when absent.
    #[serde(default)]
    pub on: Vec<String>,
    /// The table fields added to each record; all but the key when absent.
    #[serde(default)]
    pub fields: Vec<String>,
    /// Added fields are named `prefix` + field.
    #[serde(default)]
    pub prefix: Option<String>,
    /// Added fields go into this object field instead.
    #[serde(default)]
    pub into: Option<String>,
    #[serde(default)]
    pub missing: MissingKey,
    /// Values used for records without a table row, with `missing: defaults`.
    #[serde(default)]
    pub defaults: serde_json::Map<String, serde_json::Value>,
}

/// A reference table.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum TableConfig {
    /// A CSV or JSONL file, read again when it changes.
    File {
        path: PathBuf,
        #[serde(deserialize_with = "one_or_many")]
        key: Vec<String>,
        #[serde(default)]
        format: Option<Format>,
        #[serde(default)]
        columns: IndexMap<String, ColumnType>,
        #[serde(default)]
        delimiter: Option<String>,
    },
    /// A compacted Kafka topic: message key → row (JSON), tombstones delete; followed.
    Kafka {
        topic: String,
        #[serde(deserialize_with = "one_or_many")]
        key: Vec<String>,
    },
}

impl TableConfig {
    pub fn key(&self) -> &[String] {
        match self {
            TableConfig::File { key, .. } | TableConfig::Kafka { key, .. } => key,
        }
    }
}

fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

/// What happens to a record whose key the table does not have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MissingKey {
    /// It goes on unchanged.
    #[default]
    Pass,
    /// It gets the declared `defaults`.
    Defaults,
    /// It goes to the `unmatched` outlet.
    Unmatched,
}

/// The outlets of an enricher.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr, strum::VariantNames)]
#[strum(serialize_all = "lowercase")]
pub enum EnricherPort {
    /// Records with the table's fields added.
    Out,
    /// Records whose key the table lacks (only with `missing: unmatched`).
    Unmatched,
}

impl Port for EnricherPort {}

impl Kind for EnricherConfig {
    fn outlets(&self) -> Outlets {
        if self.missing == MissingKey::Unmatched {
            Outlets::all::<EnricherPort>()
        } else {
            Outlets::through(EnricherPort::Out)
        }
    }

    /// As many record fields as the table has key columns; added fields under a prefix or
    /// into an object, not both.
    fn check(&self) -> Vec<Finding> {
        let mut found = Vec::new();
        let key = self.table.key();
        if !self.on.is_empty() && self.on.len() != key.len() {
            found.push(Finding::at_value(
                "/on",
                Problem::InvalidValue {
                    field: "on".into(),
                    reason: format!("{} record field(s) for a key of {} column(s)", self.on.len(), key.len()),
                },
            ));
        }
        if self.prefix.is_some() && self.into.is_some() {
            found.push(Finding::at_key(
                "/into",
                Problem::InvalidValue {
                    field: "into".into(),
                    reason: "give `prefix` or `into`, not both".into(),
                },
            ));
        }
        found
    }

    fn paths_mut(&mut self) -> Vec<PathField<'_>> {
        match &mut self.table {
            TableConfig::File { path, .. } => vec![PathField {
                pointer: "/table/path".into(),
                role: PathRole::TableFile,
                path,
            }],
            _ => Vec::new(),
        }
    }
}
