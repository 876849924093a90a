//! Model descriptors: what a model version is (name, version, checksum, tensors) and where its bytes are.

use std::cmp::Ordering;
use std::path::{Component, Path, PathBuf};

use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::ModelError;

/// A tensor as a descriptor declares it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TensorSpec {
    pub name: String,
    #[serde(rename = "type", default)]
    pub dtype: Option<String>,
    #[serde(default)]
    pub shape: Option<Vec<Option<i64>>>,
    /// Names of the input columns, for people reading the descriptor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features: Option<Vec<String>>,
}

/// One version of a model, as data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelDescriptor {
    pub name: String,
    #[serde(deserialize_with = "crate::models::config::string_or_number")]
    pub version: String,
    #[serde(default = "onnx")]
    pub format: String,
    /// The model file, relative to the descriptor and inside its folder.
    #[serde(default)]
    pub location: Option<String>,
    /// The model bytes inline, for small models.
    #[serde(default, skip_serializing)]
    pub bytes_base64: Option<String>,
    /// SHA-256 of the model bytes, hex.
    pub sha256: String,
    #[serde(default)]
    pub created: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub inputs: Vec<TensorSpec>,
    #[serde(default)]
    pub outputs: Vec<TensorSpec>,
    /// Where a retrained version came from: its parent, the dataset, the trigger, the
    /// command, the figures its training reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lineage: Option<serde_json::Value>,
    /// The descriptor file this came from.
    #[serde(skip)]
    pub file: PathBuf,
}

fn onnx() -> String {
    "onnx".into()
}

/// Whether a file name is a model descriptor's.
pub fn is_descriptor(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    [".model.json", ".model.yaml", ".model.yml"]
        .iter()
        .any(|s| name.ends_with(s))
}

/// Orders versions: dot-separated parts compare as numbers where both are numbers (`10` > `9`).
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    let parts = |v: &str| {
        v.trim_start_matches(['v', 'V'])
            .split('.')
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let (pa, pb) = (parts(a), parts(b));
    for (x, y) in pa.iter().zip(&pb) {
        let order = match (x.parse::<u64>(), y.parse::<u64>()) {
            (Ok(x), Ok(y)) => x.cmp(&y),
            _ => x.cmp(y),
        };
        if order != Ordering::Equal {
            return order;
        }
    }
    pa.len().cmp(&pb.len())
}

impl ModelDescriptor {
    /// Reads a descriptor file (JSON or YAML).
    pub fn read(path: &Path) -> Result<Self, ModelError> {
        let text = std::fs::read(path).map_err(|e| ModelError::Descriptor {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Self::parse(&text, path)
    }

    /// Reads a descriptor (JSON or YAML) that came from `file`: a descriptor file, or a place
    /// in the folder a `location` resolves against (for descriptors from a Kafka topic).
    pub fn parse(text: &[u8], path: &Path) -> Result<Self, ModelError> {
        let fail = |reason: String| ModelError::Descriptor {
            path: path.display().to_string(),
            reason,
        };
        let mut descriptor: ModelDescriptor = serde_yaml_ng::from_slice(text).map_err(|e| fail(e.to_string()))?;
        if descriptor.format != "onnx" {
            return Err(fail(format!(
                "format `{}` is not supported (only onnx)",
                descriptor.format
            )));
        }
        if descriptor.location.is_none() == descriptor.bytes_base64.is_none() {
            return Err(fail("give exactly one of `location` and `bytes_base64`".into()));
        }
        descriptor.file = path.to_path_buf();
        Ok(descriptor)
    }

    /// The first 12 hex digits of the checksum, for audit fields.
    pub fn short_sha(&self) -> String {
        self.sha256.chars().take(12).collect()
    }

    /// The model bytes, checked against `sha256`. A `location` must stay inside the
    /// descriptor's folder.
    pub fn bytes(&self) -> Result<Vec<u8>, ModelError> {
        let fail = |reason: String| ModelError::Descriptor {
            path: self.file.display().to_string(),
            reason,
        };
        let bytes = match (&self.location, &self.bytes_base64) {
            (Some(location), _) => {
                let relative = Path::new(location);
                let escapes = relative
                    .components()
                    .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir));
                if escapes {
                    return Err(fail(format!(
                        "location `{location}` must be a path inside the descriptor's folder"
                    )));
                }
                let dir = self.file.parent().unwrap_or(Path::new("."));
                std::fs::read(dir.join(relative)).map_err(|e| fail(format!("cannot read {location}: {e}")))?
            }
            (None, Some(b64)) => base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .map_err(|e| fail(format!("bytes_base64: {e}")))?,
            (None, None) => return Err(fail("no `location` and no `bytes_base64`".into())),
        };
        let actual = hex(&Sha256::digest(&bytes));
        if !actual.eq_ignore_ascii_case(self.sha256.trim()) {
            return Err(fail(format!(
                "sha256 mismatch: the bytes hash to {actual}, the descriptor says {}",
                self.sha256
            )));
        }
        Ok(bytes)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The descriptors of model `name` in `folder`, and a reason for each descriptor file that could not be read.
pub fn scan(folder: &Path, name: &str) -> (Vec<ModelDescriptor>, Vec<String>) {
    let mut found = Vec::new();
    let mut problems = Vec::new();
    let entries = match std::fs::read_dir(folder) {
        Ok(entries) => entries,
        Err(e) => return (found, vec![format!("cannot read {}: {e}", folder.display())]),
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| is_descriptor(p))
        .collect();
    paths.sort();
    for path in paths {
        match ModelDescriptor::read(&path) {
            Ok(d) if d.name == name => found.push(d),
            Ok(_) => {}
            Err(e) => problems.push(e.to_string()),
        }
    }
    (found, problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_order_numerically_by_part() {
        assert_eq!(compare_versions("10", "9"), Ordering::Greater);
        assert_eq!(compare_versions("1.2.0", "1.10"), Ordering::Less);
        assert_eq!(compare_versions("v2", "2"), Ordering::Equal);
        assert_eq!(compare_versions("1.0", "1"), Ordering::Greater);
    }

    #[test]
    fn bytes_are_checked_and_locations_stay_inside() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("m.onnx"), b"model").expect("write");
        let mut d = ModelDescriptor {
            name: "m".into(),
            version: "1".into(),
            format: "onnx".into(),
            location: Some("m.onnx".into()),
            bytes_base64: None,
            sha256: hex(&Sha256::digest(b"model")),
            created: None,
            description: None,
            inputs: vec![],
            outputs: vec![],
            lineage: None,
            file: dir.path().join("m.model.json"),
        };
        assert_eq!(d.bytes().expect("bytes"), b"model");
        d.sha256 = "00".into();
        assert!(d.bytes().unwrap_err().to_string().contains("sha256 mismatch"));
        d.location = Some("../m.onnx".into());
        assert!(d
            .bytes()
            .unwrap_err()
            .to_string()
            .contains("inside the descriptor's folder"));
    }
}
