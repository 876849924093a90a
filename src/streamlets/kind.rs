//! The kinds of streamlet, one variant each: the thin enum a pipeline's `kind:` selects, and
//! what every kind tells the verifier (its outlets, the paths it reads or writes, the schema
//! of what it emits). Each kind's configuration lives in its own folder.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde::Deserialize;

use super::egress::config::*;
use super::enricher::config::*;
use super::ingress::config::*;
use super::merger::config::*;
use super::scorer::config::*;
use super::validator::config::*;
use crate::models::config::StrategyConfig;

/// The configuration of each streamlet kind.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum KindConfig {
    Ingress(IngressConfig),
    Validator(ValidatorConfig),
    Merger(MergerConfig),
    Egress(EgressConfig),
    Scorer(ScorerConfig),
    Enricher(EnricherConfig),
    /// Records given by a pipeline test, in place of a source (`sluice test` only).
    #[serde(skip)]
    Records(GivenRecords),
    /// Keeps every record that reaches it, for a pipeline test to check (`sluice test` only).
    #[serde(skip)]
    Capture(Captured),
}

/// Records a pipeline test feeds in.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GivenRecords(pub Arc<Vec<serde_json::Map<String, serde_json::Value>>>);

/// Where a pipeline test's capture keeps what reached it.
#[derive(Debug, Clone, Default)]
pub struct Captured(pub Arc<Mutex<Vec<serde_json::Map<String, serde_json::Value>>>>);

impl PartialEq for Captured {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Captured {
    pub fn records(&self) -> Vec<serde_json::Map<String, serde_json::Value>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// What a path in the configuration points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathRole {
    /// Records read by an ingress: must exist.
    InputFile,
    /// A JSON Schema of records (`schema`, `emits`, `accepts`): must exist; part of the
    /// configuration (a change to it reloads the streamlet).
    RecordSchema,
    /// A training profile: must exist; part of the configuration.
    TrainingProfile,
    /// An enricher's table: must exist; the enricher follows its changes itself.
    TableFile,
    /// A folder of model versions: must exist; the scorer follows it itself.
    ModelFolder,
    /// Written by the pipeline: created when run.
    Output,
}

impl PathRole {
    /// What the path is, in a problem's words (`record schema `x` does not exist`).
    pub fn describe(self) -> &'static str {
        match self {
            PathRole::InputFile => "input file",
            PathRole::RecordSchema => "record schema",
            PathRole::TrainingProfile => "training profile",
            PathRole::TableFile => "table file",
            PathRole::ModelFolder => "model folder",
            PathRole::Output => "output file",
        }
    }

    /// Whether the file's content is part of the configuration: watched, and fingerprinted
    /// with the streamlet that reads it.
    pub fn is_configuration(self) -> bool {
        matches!(self, PathRole::RecordSchema | PathRole::TrainingProfile)
    }
}

/// A path field of a streamlet: its JSON pointer within the streamlet, its role, and the path.
pub struct PathField<'a> {
    pub pointer: String,
    pub role: PathRole,
    pub path: &'a mut PathBuf,
}

/// The outlets a kind has; the first is the default (`name` without `.port`).
/// Outlets marked optional may go unconsumed (their records are logged instead).
pub struct Outlets {
    pub names: &'static [&'static str],
    pub optional: &'static [&'static str],
}

impl KindConfig {
    pub fn name(&self) -> &'static str {
        match self {
            KindConfig::Ingress(_) => "ingress",
            KindConfig::Validator(_) => "validator",
            KindConfig::Merger(_) => "merger",
            KindConfig::Egress(_) => "egress",
            KindConfig::Scorer(_) => "scorer",
            KindConfig::Enricher(_) => "enricher",
            KindConfig::Records(_) => "records",
            KindConfig::Capture(_) => "capture",
        }
    }

    pub fn outlets(&self) -> Outlets {
        match self {
            KindConfig::Ingress(_) | KindConfig::Records(_) => Outlets {
                names: &["out", "errors"],
                optional: &["errors"],
            },
            KindConfig::Capture(_) => Outlets {
                names: &[],
                optional: &[],
            },
            KindConfig::Enricher(EnricherConfig {
                missing: MissingKey::Unmatched,
                ..
            }) => Outlets {
                names: &["out", "unmatched"],
                optional: &[],
            },
            KindConfig::Enricher(_) => Outlets {
                names: &["out"],
                optional: &[],
            },
            KindConfig::Validator(ValidatorConfig {
                profile: Some(ProfileConfig { drift: Some(_), .. }),
                ..
            }) => Outlets {
                names: &["valid", "invalid", "drift"],
                optional: &[],
            },
            KindConfig::Validator(_) => Outlets {
                names: &["valid", "invalid"],
                optional: &[],
            },
            KindConfig::Merger(_) => Outlets {
                names: &["out"],
                optional: &[],
            },
            KindConfig::Egress(_) => Outlets {
                names: &[],
                optional: &[],
            },
            KindConfig::Scorer(ScorerConfig {
                strategy: Some(StrategyConfig::Shadow { emit: true, .. }),
                ..
            }) => Outlets {
                names: &["out", "errors", "shadow"],
                optional: &[],
            },
            KindConfig::Scorer(_) => Outlets {
                names: &["out", "errors"],
                optional: &[],
            },
        }
    }

    pub fn takes_inputs(&self) -> bool {
        !matches!(self, KindConfig::Ingress(_) | KindConfig::Records(_))
    }

    /// Every path this kind's configuration names.
    pub fn paths_mut(&mut self) -> Vec<PathField<'_>> {
        let mut fields = Vec::new();
        match self {
            KindConfig::Ingress(c) => {
                if let SourceConfig::File { path, .. } = &mut c.source {
                    fields.push(PathField {
                        pointer: "/source/path".into(),
                        role: PathRole::InputFile,
                        path,
                    });
                }
                if let Some(path) = &mut c.emits {
                    fields.push(PathField {
                        pointer: "/emits".into(),
                        role: PathRole::RecordSchema,
                        path,
                    });
                }
            }
            KindConfig::Validator(c) => {
                fields.push(PathField {
                    pointer: "/schema".into(),
                    role: PathRole::RecordSchema,
                    path: &mut c.schema,
                });
                if let Some(profile) = &mut c.profile {
                    fields.push(PathField {
                        pointer: "/profile/path".into(),
                        role: PathRole::TrainingProfile,
                        path: &mut profile.path,
                    });
                }
            }
            KindConfig::Egress(EgressConfig {
                sink: SinkConfig::File { path, .. },
            }) => fields.push(PathField {
                pointer: "/sink/path".into(),
                role: PathRole::Output,
                path,
            }),
            KindConfig::Scorer(c) => {
                let single = c.model.is_some();
                let models = c.model.iter_mut().map(|m| (String::new(), m));
                let many = c.models.iter_mut().map(|(id, m)| (id.clone(), m));
                for (id, m) in models.chain(many) {
                    let pointer = if single {
                        "/model/folder".into()
                    } else {
                        format!("/models/{id}/folder")
                    };
                    fields.push(PathField {
                        pointer,
                        role: PathRole::ModelFolder,
                        path: &mut m.folder,
                    });
                }
            }
            KindConfig::Enricher(c) => {
                if let TableConfig::File { path, .. } = &mut c.table {
                    fields.push(PathField {
                        pointer: "/table/path".into(),
                        role: PathRole::TableFile,
                        path,
                    });
                }
            }
            KindConfig::Merger(_) | KindConfig::Egress(_) | KindConfig::Records(_) | KindConfig::Capture(_) => {}
        }
        fields
    }

    /// The JSON Schema file of the records a port emits, where the configuration declares one.
    pub fn emitted_schema(&self, port: &str) -> Option<&PathBuf> {
        match (self, port) {
            (KindConfig::Ingress(c), "out") => c.emits.as_ref(),
            (KindConfig::Validator(c), "valid") => Some(&c.schema),
            _ => None,
        }
    }
}
