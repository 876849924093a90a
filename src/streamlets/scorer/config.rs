//! A scorer's configuration: which models serve (and how, with a strategy), how records
//! become the input tensor, how outputs become fields, and batching.

use std::path::PathBuf;

use indexmap::IndexMap;
use serde::Deserialize;

use crate::models::config::{optional_string_or_number, OutputMapping, StrategyConfig};
use crate::streamlets::kind::{Kind, Outlets, PathField, PathRole};

/// A scorer: which model serves, how records become its input tensor, and how its
/// output tensors become record fields.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ScorerConfig {
    /// The one model, for a scorer without a strategy.
    #[serde(default)]
    pub model: Option<ModelSourceConfig>,
    /// Several models by id, served together by `strategy`.
    #[serde(default)]
    pub models: IndexMap<String, ModelSourceConfig>,
    #[serde(default)]
    pub strategy: Option<StrategyConfig>,
    pub features: FeatureMapping,
    pub outputs: Vec<OutputMapping>,
    #[serde(default)]
    pub batch: Batching,
    /// Sessions per model version: how many batches are scored at once.
    #[serde(default = "default_sessions")]
    pub sessions: usize,
    /// The field each scored record carries its audit in.
    #[serde(default = "default_audit_field")]
    pub audit_field: String,
}

fn default_sessions() -> usize {
    1
}

impl ScorerConfig {
    /// Every model by its id in this scorer (the model's name when there is one `model`).
    pub fn sources(&self) -> Vec<(String, &ModelSourceConfig)> {
        match &self.model {
            Some(m) => vec![(m.name.clone(), m)],
            None => self.models.iter().map(|(id, m)| (id.clone(), m)).collect(),
        }
    }

    /// The JSON pointer of a model's source within the streamlet.
    pub fn source_pointer(&self, id: &str) -> String {
        match &self.model {
            Some(_) => "/model".into(),
            None => format!("/models/{id}"),
        }
    }
}

fn default_audit_field() -> String {
    "_model".into()
}

/// Where model versions come from.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ModelSourceConfig {
    pub name: String,
    /// A folder of descriptors (`*.model.json` / `*.model.yaml`), watched for new versions;
    /// with `topic`, where descriptors' `location`s point into.
    pub folder: PathBuf,
    /// A Kafka topic of descriptors (the pipeline's Kafka settings), read from the beginning
    /// at start and followed: the descriptors come from it instead of the folder.
    #[serde(default)]
    pub topic: Option<String>,
    /// Serve this version only; the latest when absent.
    #[serde(default, deserialize_with = "optional_string_or_number")]
    pub version: Option<String>,
}

/// Record fields → one row of the model's input tensor.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct FeatureMapping {
    /// The input tensor; the model's only input when absent.
    #[serde(default)]
    pub input: Option<String>,
    pub fields: Vec<FeatureField>,
}

/// One record field as one or more tensor columns.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum FeatureField {
    /// A numeric (or boolean) field, required.
    Name(String),
    Spec(FeatureSpec),
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct FeatureSpec {
    pub field: String,
    /// Used when the field is missing or null.
    #[serde(default)]
    pub default: Option<f64>,
    /// A string field as the index of its value in this list.
    #[serde(default)]
    pub categories: Option<Vec<String>>,
    /// A string field as one column per value, 1 for its value and 0 for the others.
    #[serde(default)]
    pub one_hot: Option<Vec<String>>,
    /// What a string value outside `categories`/`one_hot` does.
    #[serde(default)]
    pub unknown: UnknownCategory,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnknownCategory {
    /// The record goes to `errors`.
    #[default]
    Error,
    /// All one-hot columns 0, or index -1 for `categories`.
    Zeros,
}

impl FeatureField {
    pub fn spec(&self) -> FeatureSpec {
        match self {
            FeatureField::Name(field) => FeatureSpec {
                field: field.clone(),
                default: None,
                categories: None,
                one_hot: None,
                unknown: UnknownCategory::Error,
            },
            FeatureField::Spec(spec) => spec.clone(),
        }
    }
}

/// Micro-batching: a free session scores what is queued, up to `max_batch` records; a partial
/// batch waits for more only with `max_wait_ms` set (0, the default: never).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct Batching {
    pub max_batch: usize,
    pub max_wait_ms: u64,
}

impl Default for Batching {
    fn default() -> Self {
        Batching {
            max_batch: 256,
            max_wait_ms: 0,
        }
    }
}

impl Kind for ScorerConfig {
    fn outlets(&self) -> Outlets {
        let shadow = matches!(self.strategy, Some(StrategyConfig::Shadow { emit: true, .. }));
        Outlets {
            names: if shadow {
                &["out", "errors", "shadow"]
            } else {
                &["out", "errors"]
            },
            optional: &[],
        }
    }

    fn paths_mut(&mut self) -> Vec<PathField<'_>> {
        let single = self.model.is_some();
        let models = self.model.iter_mut().map(|m| (String::new(), m));
        let many = self.models.iter_mut().map(|(id, m)| (id.clone(), m));
        models
            .chain(many)
            .map(|(id, m)| PathField {
                pointer: if single {
                    "/model/folder".into()
                } else {
                    format!("/models/{id}/folder")
                },
                role: PathRole::ModelFolder,
                path: &mut m.folder,
            })
            .collect()
    }
}
