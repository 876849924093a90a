//! Helpers the integration tests share: the repository root, JSON lines, running a pipeline.
// Each test crate uses some of these, not all.
#![allow(dead_code)]

pub mod broker;

use std::path::Path;

use serde_json::Value;
use tokio_util::sync::CancellationToken;

pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The records of a JSON-lines file (none when it does not exist yet).
pub fn read_jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

/// Writes a pipeline into `dir` and runs it in this process to its end.
pub fn run_pipeline(dir: &Path, yaml: &str) -> sluice::runtime::RunSummary {
    let file = dir.join("pipeline.yaml");
    std::fs::write(&file, yaml).expect("write pipeline");
    let topology = match sluice::topology::load(&file) {
        Ok(t) => t,
        Err(sluice::spec::LoadError::Problems(r)) => panic!("{:#?}", r.diagnostics),
        Err(e) => panic!("{e}"),
    };
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(sluice::runtime::run(topology, CancellationToken::new()))
        .expect("the run succeeds")
}

/// Writes a house-price `version` whose checksum is right but whose bytes are not a model:
/// its descriptor is valid, loading it fails.
pub fn write_corrupt_model(folder: &Path, version: &str) {
    use sha2::Digest;
    let garbage = format!("version {version} is not an ONNX model");
    let sha: String = sha2::Sha256::digest(garbage.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let name = format!("house-price-v{version}");
    std::fs::write(folder.join(format!("{name}.onnx")), &garbage).expect("write model");
    std::fs::write(
        folder.join(format!("{name}.model.json")),
        format!(r#"{{"name":"house-price","version":"{version}","format":"onnx","location":"{name}.onnx","sha256":"{sha}"}}"#),
    )
    .expect("write descriptor");
}
