//! An ingress's configuration: where records come from (a file, stdin, a generator, a Kafka
//! topic) and how their text is read.

use std::path::PathBuf;

use crate::streamlets::kind::{Kind, Outlets, PathField, PathRole, Port, SourcePort};
use indexmap::IndexMap;
use serde::Deserialize;

pub use crate::formats::{ColumnType, Format};
use crate::kafka::KafkaSettings;

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
        /// Replays the file at this many records per second (as fast as downstream takes
        /// them when absent).
        #[serde(default)]
        rate: Option<f64>,
        /// Waits this long before the first record ("3s"): a stream that lags another, such
        /// as outcomes arriving after the events they are the outcome of.
        #[serde(default, with = "humantime_serde")]
        start_after: Option<std::time::Duration>,
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
    /// Adds where each record came from as this field (`_kafka`, say): `{topic, partition,
    /// offset, timestamp}` (the message's timestamp in milliseconds, when it has one).
    #[serde(default)]
    pub metadata: Option<String>,
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
    /// Waits this long before the first record ("3s"): the same listings later, as the sales
    /// that are their outcome.
    #[serde(default, with = "humantime_serde")]
    pub start_after: Option<std::time::Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GeneratorProfile {
    #[default]
    HouseListings,
}

/// The rates a source may be paced at, records per second.
const RATES: std::ops::RangeInclusive<f64> = 0.001..=1e9;

impl Kind for IngressConfig {
    fn outlets(&self) -> Outlets {
        Outlets::OF_A_SOURCE
    }

    /// A pace is a rate a clock can keep: from one record in 1,000 s to a billion a second.
    fn check(&self) -> Vec<crate::streamlets::kind::Finding> {
        let rate = match &self.source {
            SourceConfig::File { rate, .. } => *rate,
            SourceConfig::Generator(g) => g.rate,
            _ => None,
        };
        match rate {
            Some(r) if !RATES.contains(&r) => vec![crate::streamlets::kind::Finding::at_value(
                "/source/rate",
                crate::problem::Problem::InvalidValue {
                    field: "rate".into(),
                    reason: format!("{r} records a second cannot be kept: give 0.001 to 1e9"),
                },
            )],
            _ => Vec::new(),
        }
    }

    fn takes_inputs(&self) -> bool {
        false
    }

    fn paths_mut(&mut self) -> Vec<PathField<'_>> {
        let mut fields = Vec::new();
        if let SourceConfig::File { path, .. } = &mut self.source {
            fields.push(PathField {
                pointer: "/source/path".into(),
                role: PathRole::InputFile,
                path,
            });
        }
        if let Some(path) = &mut self.emits {
            fields.push(PathField {
                pointer: "/emits".into(),
                role: PathRole::RecordSchema,
                path,
            });
        }
        fields
    }

    fn emitted_schema(&self, port: &str) -> Option<&PathBuf> {
        (port == SourcePort::Out.name())
            .then_some(self.emits.as_ref())
            .flatten()
    }
}
