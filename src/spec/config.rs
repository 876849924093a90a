//! The typed pipeline: what each streamlet kind is configured with.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use indexmap::IndexMap;
use serde::{Deserialize, Deserializer};

/// A version written as text or as a number (`version: 2` and `version: "2"` are the same).
pub fn string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Version {
        Text(String),
        Integer(u64),
        Number(f64),
    }
    Ok(match Version::deserialize(d)? {
        Version::Text(s) => s,
        Version::Integer(n) => n.to_string(),
        Version::Number(n) => n.to_string(),
    })
}

fn optional_string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    string_or_number(d).map(Some)
}

/// Pipeline-wide settings.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct Defaults {
    pub batch_size: usize,
    pub channel_capacity: usize,
    pub linger_ms: u64,
    /// Kafka settings every Kafka source and sink starts from.
    pub kafka: Option<KafkaSettings>,
    /// How edges carry records unless an edge says otherwise.
    pub transport: Transport,
}

pub use crate::kafka::KafkaSettings;

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            batch_size: 256,
            channel_capacity: 4,
            linger_ms: 100,
            kafka: None,
            transport: Transport::Memory,
        }
    }
}

/// Per-edge settings.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct EdgeSpec {
    pub from: String,
    pub to: String,
    #[serde(default)]
    pub via: Option<Via>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Via {
    Memory {
        #[serde(default)]
        capacity: Option<usize>,
    },
    Kafka {
        #[serde(default)]
        topic: Option<String>,
        #[serde(default)]
        partitions: Option<i32>,
    },
}

/// How an edge carries records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    #[default]
    Memory,
    Kafka,
}

/// One streamlet as configured: what connects it, and what its kind does.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct StreamletSpec {
    #[serde(default)]
    pub inputs: Vec<String>,
    #[serde(default)]
    pub discard: Vec<String>,
    /// JSON Schema of the records this streamlet needs on its inlet.
    #[serde(default)]
    pub accepts: Option<PathBuf>,
    #[serde(flatten)]
    pub kind: KindConfig,
}

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

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct IngressConfig {
    pub source: SourceConfig,
    #[serde(default)]
    pub batch_size: Option<usize>,
    /// JSON Schema of the records on `out`.
    #[serde(default)]
    pub emits: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum SourceConfig {
    File {
        path: PathBuf,
        #[serde(flatten)]
        text: TextFormat,
    },
    Stdin {
        #[serde(flatten)]
        text: TextFormat,
    },
    Generator(GeneratorConfig),
    Kafka(KafkaSourceConfig),
}

/// Records from a Kafka topic (JSON payloads), read by a consumer group.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct KafkaSourceConfig {
    pub topic: String,
    /// The consumer group; `<pipeline>.<streamlet>` when absent.
    #[serde(default)]
    pub group: Option<String>,
    #[serde(flatten)]
    pub settings: KafkaSettings,
    /// Where a new group starts reading.
    #[serde(default)]
    pub start: StartFrom,
    #[serde(default = "one")]
    pub partitions: i32,
    #[serde(default = "one")]
    pub replication: i32,
}

fn one() -> i32 {
    1
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StartFrom {
    #[default]
    Earliest,
    Latest,
}

/// Records to a Kafka topic, as JSON payloads.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct KafkaSinkConfig {
    pub topic: String,
    /// The record field whose value is the message key.
    #[serde(default)]
    pub key: Option<String>,
    #[serde(flatten)]
    pub settings: KafkaSettings,
    /// Partitions and replication of the topic when sluice creates it.
    #[serde(default = "one")]
    pub partitions: i32,
    #[serde(default = "one")]
    pub replication: i32,
}

/// How a text source is read.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
pub struct TextFormat {
    #[serde(default)]
    pub format: Option<Format>,
    #[serde(default)]
    pub columns: IndexMap<String, ColumnType>,
    #[serde(default)]
    pub delimiter: Option<String>,
}

pub use crate::formats::{ColumnType, Format};

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct GeneratorConfig {
    #[serde(default)]
    pub profile: GeneratorProfile,
    #[serde(default)]
    pub count: Option<u64>,
    #[serde(default)]
    pub rate: Option<f64>,
    #[serde(default)]
    pub seed: u64,
    #[serde(default)]
    pub invalid_ratio: f64,
    /// After this many records the market shifts: living areas (and prices) grow by 60%.
    #[serde(default)]
    pub shift_after: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GeneratorProfile {
    #[default]
    HouseListings,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ValidatorConfig {
    pub schema: PathBuf,
    /// Checks against a model's training profile, and drift.
    #[serde(default)]
    pub profile: Option<ProfileConfig>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ProfileConfig {
    pub path: PathBuf,
    /// The fields to check; every field of the profile when empty.
    #[serde(default)]
    pub fields: Vec<String>,
    #[serde(default)]
    pub out_of_profile: OutOfProfile,
    /// Share of a numeric range's width a value may lie beyond it.
    #[serde(default)]
    pub slack: f64,
    #[serde(default)]
    pub drift: Option<DriftConfig>,
}

/// What happens to a record outside the training profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutOfProfile {
    /// It stays valid, with `_profile: {violations: [...]}`.
    #[default]
    Tag,
    /// It goes to `invalid` with the reason.
    Route,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct DriftConfig {
    #[serde(default = "default_window")]
    pub window: usize,
    /// Evaluate every this many records; a quarter of the window when absent.
    #[serde(default)]
    pub every: Option<usize>,
    #[serde(default = "default_psi")]
    pub psi_threshold: f64,
    #[serde(default = "default_out_of_range")]
    pub out_of_range_threshold: f64,
}

fn default_window() -> usize {
    1000
}

fn default_psi() -> f64 {
    0.2
}

fn default_out_of_range() -> f64 {
    0.05
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct MergerConfig {}

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

/// How a scorer with several models answers.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StrategyConfig {
    /// Every model scores; when the budget runs out each record takes the best answer so far.
    Speculative {
        budget_ms: u64,
        /// The model that always answers (waited for past the budget if need be).
        fallback: String,
        /// Models in order of preference; the order of `models` when absent.
        #[serde(default)]
        prefer: Vec<String>,
        #[serde(default)]
        decide: Decider,
    },
    /// Classifiers vote; regressors combine.
    Consensus {
        #[serde(default = "default_min_agree")]
        min_agree: usize,
        #[serde(default)]
        ties: TieRule,
        #[serde(default)]
        combine: Combine,
    },
    /// The answer with the highest class probability (or lowest variance) wins.
    BestConfidence {},
    /// Each record goes to one model, by a hash of its key, in proportion to the weights.
    Split {
        weights: IndexMap<String, f64>,
        key: String,
    },
    /// Only the primary answers; the shadows score the same records for comparison.
    Shadow {
        primary: String,
        shadows: Vec<String>,
        /// Also send each shadow's answers to the `shadow` outlet.
        #[serde(default)]
        emit: bool,
    },
}

fn default_min_agree() -> usize {
    1
}

/// How speculative scoring picks among the answers in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decider {
    /// The most preferred model that answered.
    #[default]
    Prefer,
    /// The most confident answer.
    BestConfidence,
}

/// How a tied vote is broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TieRule {
    /// The label of the model listed first among the tied.
    #[default]
    First,
    /// The tied label with the highest confidence.
    BestConfidence,
}

/// How regressors' answers combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Combine {
    #[default]
    Median,
    Mean,
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

/// One output tensor → one record field.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct OutputMapping {
    pub tensor: String,
    pub field: String,
    /// Class names of a probabilities tensor's columns: the field becomes `{class: p}`.
    #[serde(default)]
    pub classes: Option<Vec<String>>,
    /// Keep only this class's probability (a number).
    #[serde(default)]
    pub class: Option<String>,
    /// What the tensor is, for strategies that compare answers; inferred when absent
    /// (integers and strings: a label; several floats a row: probabilities; one float: a value).
    #[serde(default)]
    pub role: Option<OutputRole>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputRole {
    Label,
    Probabilities,
    Value,
    /// The model's own variance of its value: lower is more confident.
    Variance,
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

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct EgressConfig {
    pub sink: SinkConfig,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum SinkConfig {
    Stdout,
    File {
        path: PathBuf,
        #[serde(default)]
        append: bool,
    },
    Blackhole,
    Kafka(KafkaSinkConfig),
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

impl StreamletSpec {
    /// Every path of this streamlet, including `accepts`.
    pub fn paths_mut(&mut self) -> Vec<PathField<'_>> {
        let mut fields = self.kind.paths_mut();
        if let Some(path) = &mut self.accepts {
            fields.push(PathField {
                pointer: "/accepts".into(),
                role: PathRole::RecordSchema,
                path,
            });
        }
        fields
    }
}
