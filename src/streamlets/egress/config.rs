//! An egress's configuration: where records go (stdout, a file, a Kafka topic, nowhere).

use std::path::PathBuf;

use crate::streamlets::kind::{Kind, Outlets, PathField, PathRole};
use serde::Deserialize;

use crate::kafka::KafkaSettings;

fn one() -> i32 {
    1
}

fn yes() -> bool {
    true
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
    /// Whether each message names the pipeline and streamlet that produced it in headers
    /// (`sluice-pipeline`, `sluice-streamlet`).
    #[serde(default = "yes")]
    pub lineage_headers: bool,
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
    Dataset(DatasetSinkConfig),
}

/// A rolling dataset folder: JSON lines shards with a manifest (`dataset.rs`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct DatasetSinkConfig {
    pub path: PathBuf,
    /// Records per shard.
    #[serde(default = "default_shard_rows")]
    pub shard_rows: u64,
    /// At most this many rows are kept, the oldest shards going first.
    #[serde(default)]
    pub max_rows: Option<u64>,
    /// Shards whose last record is older than this go ("7d").
    #[serde(default, with = "humantime_serde")]
    pub max_age: Option<std::time::Duration>,
    /// The field that says where a record came from (a Kafka source's `metadata`): its
    /// topic, partition and offset go into the manifest.
    #[serde(default = "default_source_field")]
    pub source_field: String,
}

fn default_source_field() -> String {
    "_kafka".into()
}

fn default_shard_rows() -> u64 {
    10_000
}

impl Kind for EgressConfig {
    fn outlets(&self) -> Outlets {
        Outlets::NONE
    }

    /// A dataset keeps at least one shard.
    fn check(&self) -> Vec<crate::streamlets::kind::Finding> {
        match &self.sink {
            SinkConfig::Dataset(d) if d.max_rows.is_some_and(|max| max < d.shard_rows) => {
                vec![crate::streamlets::kind::Finding::at_value(
                    "/sink/max_rows",
                    crate::problem::Problem::InvalidValue {
                        field: "max_rows".into(),
                        reason: format!(
                            "fewer rows than one shard of {} holds: every shard would go as it closes",
                            d.shard_rows
                        ),
                    },
                )]
            }
            _ => Vec::new(),
        }
    }

    fn paths_mut(&mut self) -> Vec<PathField<'_>> {
        match &mut self.sink {
            SinkConfig::File { path, .. } | SinkConfig::Dataset(DatasetSinkConfig { path, .. }) => vec![PathField {
                pointer: "/sink/path".into(),
                role: PathRole::Output,
                path,
            }],
            _ => Vec::new(),
        }
    }
}
