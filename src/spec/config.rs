//! The typed pipeline: pipeline-wide defaults, edges, and each streamlet as configured. Each
//! kind's own configuration lives in its room under `streamlets/`; it is re-exported here for
//! the layers above.

use std::path::PathBuf;

use serde::Deserialize;

pub use crate::formats::{ColumnType, Format};
pub use crate::kafka::KafkaSettings;
pub use crate::models::config::*;
pub use crate::streamlets::egress::config::*;
pub use crate::streamlets::enricher::config::*;
pub use crate::streamlets::ingress::config::*;
pub use crate::streamlets::kind::*;
pub use crate::streamlets::merger::config::*;
pub use crate::streamlets::scorer::config::*;
pub use crate::streamlets::validator::config::*;

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
