//! A scorer's configuration: which models serve (and how, with a strategy), how records
//! become the input tensor, how outputs become fields, and batching.

use std::path::PathBuf;

use indexmap::IndexMap;
use serde::Deserialize;

use crate::models::config::{optional_string_or_number, OutputMapping, StrategyConfig};
use crate::problem::{did_you_mean, Problem};
use crate::streamlets::kind::{Finding, Kind, Outlets, PathField, PathRole, Port};

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

/// The outlets of a scorer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr, strum::VariantNames)]
#[strum(serialize_all = "lowercase")]
pub enum ScorerPort {
    /// Scored records, each saying which model version scored it.
    Out,
    /// Records that could not be scored, each with `_error`.
    Errors,
    /// The lifecycle of its models' versions, one record per event (seen, rejected, loaded,
    /// serving, retired, promoted, rolled back); it may go unconsumed.
    Audit,
    /// What the shadow models answered (only with a shadow strategy that emits).
    Shadow,
}

impl Port for ScorerPort {}

impl Kind for ScorerConfig {
    fn outlets(&self) -> Outlets {
        let shadow = matches!(self.strategy, Some(StrategyConfig::Shadow { emit: true, .. }));
        let outlets = if shadow {
            Outlets::all::<ScorerPort>()
        } else {
            Outlets::through(ScorerPort::Audit)
        };
        outlets.with_optional(&["audit"])
    }

    /// Its model folders hold a descriptor of each model (of the pinned version, if pinned),
    /// and its strategy names its models. Whether a version loads is found out when it loads:
    /// it may still change before the run.
    fn check(&self) -> Vec<Finding> {
        let mut found = Vec::new();
        for (id, model) in self.sources() {
            if !model.folder.is_dir() || model.topic.is_some() {
                continue; // a missing folder is reported; a topic's descriptors come when it runs
            }
            let (descriptors, _) = crate::models::descriptor::scan(&model.folder, &model.name);
            let wanted = |d: &crate::models::ModelDescriptor| {
                model
                    .version
                    .as_ref()
                    .is_none_or(|v| crate::models::descriptor::compare_versions(&d.version, v).is_eq())
            };
            if descriptors.iter().any(wanted) {
                continue;
            }
            let pointer = self.source_pointer(&id);
            let finding = match &model.version {
                // Other versions are there: the version is what to change.
                Some(version) if !descriptors.is_empty() => {
                    let mut available: Vec<String> = descriptors.iter().map(|d| d.version.clone()).collect();
                    available.sort_by(|a, b| crate::models::descriptor::compare_versions(a, b));
                    available.dedup();
                    Finding::at_value(
                        format!("{pointer}/version"),
                        Problem::UnknownVersion {
                            model: model.name.clone(),
                            version: version.clone(),
                            folder: model.folder.display().to_string(),
                            available,
                        },
                    )
                }
                version => Finding::at_value(
                    format!("{pointer}/name"),
                    Problem::MissingFile {
                        what: match version {
                            Some(v) => format!("a descriptor of model `{}` version {v} in folder", model.name),
                            None => format!("a descriptor of model `{}` in folder", model.name),
                        },
                        path: model.folder.display().to_string(),
                    },
                ),
            };
            found.push(finding);
        }
        found.extend(self.strategy_findings());
        found
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

impl ScorerConfig {
    /// A strategy names models of its scorer, and several models need a strategy.
    fn strategy_findings(&self) -> Vec<Finding> {
        let invalid = |field: &str, reason: &str| Problem::InvalidValue {
            field: field.to_string(),
            reason: reason.to_string(),
        };
        let Some(strategy) = &self.strategy else {
            if self.models.len() > 1 {
                return vec![Finding::at_key(
                    "/models",
                    invalid("models", "several models need a `strategy` that says how they answer"),
                )];
            }
            return Vec::new();
        };
        if self.model.is_some() {
            return vec![Finding::at_key(
                "/strategy",
                invalid("strategy", "a strategy serves several models: list them under `models`"),
            )];
        }
        let mut found = Vec::new();
        let ids: Vec<&str> = self.models.keys().map(String::as_str).collect();
        let mut named: Vec<(String, &str)> = Vec::new();
        match strategy {
            StrategyConfig::Speculative { fallback, prefer, .. } => {
                named.push(("/strategy/speculative/fallback".into(), fallback));
                for (i, p) in prefer.iter().enumerate() {
                    named.push((format!("/strategy/speculative/prefer/{i}"), p));
                }
            }
            StrategyConfig::Consensus { min_agree, .. } if *min_agree > ids.len() => found.push(Finding::at_value(
                "/strategy/consensus/min_agree",
                invalid(
                    "min_agree",
                    &format!("{min_agree} models cannot agree when there are {}", ids.len()),
                ),
            )),
            StrategyConfig::Split { weights, .. } => {
                for id in weights.keys() {
                    named.push((format!("/strategy/split/weights/{id}"), id));
                }
                if weights.values().all(|w| *w <= 0.0) {
                    found.push(Finding::at_value(
                        "/strategy/split/weights",
                        invalid("weights", "at least one weight must be above 0"),
                    ));
                }
            }
            StrategyConfig::Shadow { primary, shadows, .. } => {
                named.push(("/strategy/shadow/primary".into(), primary));
                for (i, s) in shadows.iter().enumerate() {
                    named.push((format!("/strategy/shadow/shadows/{i}"), s));
                }
            }
            StrategyConfig::Consensus { .. } | StrategyConfig::BestConfidence {} => {}
        }
        for (pointer, id) in named {
            if ids.contains(&id) {
                continue;
            }
            let problem = Problem::UnknownModel {
                id: id.to_string(),
                suggestion: did_you_mean(id, ids.iter().copied()),
                available: ids.iter().map(|s| s.to_string()).collect(),
            };
            // A weight's model is named by its key.
            found.push(if pointer.starts_with("/strategy/split/weights/") {
                Finding::at_key(pointer, problem)
            } else {
                Finding::at_value(pointer, problem)
            });
        }
        found
    }
}
