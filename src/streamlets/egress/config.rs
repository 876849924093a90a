//! An egress's configuration: where records go (stdout, a file, a Kafka topic, nowhere).

use std::path::PathBuf;

use crate::streamlets::kind::{Kind, Outlets, PathField, PathRole};
use serde::Deserialize;

use crate::kafka::KafkaSettings;

fn one() -> i32 {
    1
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

impl Kind for EgressConfig {
    fn outlets(&self) -> Outlets {
        Outlets::NONE
    }

    fn paths_mut(&mut self) -> Vec<PathField<'_>> {
        match &mut self.sink {
            SinkConfig::File { path, .. } => vec![PathField {
                pointer: "/sink/path".into(),
                role: PathRole::Output,
                path,
            }],
            _ => Vec::new(),
        }
    }
}
