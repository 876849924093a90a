//! Models as data: descriptors, ONNX Runtime sessions, versions that are checked before they serve,
//! and a registry that swaps in new versions while records flow.

pub mod config;
pub mod descriptor;
pub mod lifecycle;
pub mod onnx;
pub mod profile;
pub mod quality;
pub mod registry;
pub mod stats;
pub mod strategy;
pub mod topic;
pub mod version;

pub use descriptor::ModelDescriptor;
pub use registry::ModelRegistry;
pub use stats::{ModelStats, ModelStatsSummary};
pub use version::{ModelVersion, Tensor, TensorData};

/// Why a model version cannot serve.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ModelError {
    #[error("{0}")]
    Runtime(String),
    #[error("descriptor {path}: {reason}")]
    Descriptor { path: String, reason: String },
    #[error("model {name} v{version}: {reason}")]
    Rejected {
        name: String,
        version: String,
        reason: String,
    },
    #[error("no usable version of model `{name}` in {folder}{}", if .reasons.is_empty() { String::new() } else { format!(": {}", .reasons.join("; ")) })]
    NoVersion {
        name: String,
        folder: String,
        reasons: Vec<String>,
    },
    #[error("inference failed: {0}")]
    Inference(String),
}
