//! Helpers the integration tests share: the repository root, JSON lines, running a pipeline.
// Each test crate uses some of these, not all.
#![allow(dead_code)]

pub mod broker;
pub mod delivery;

use std::path::Path;

use serde_json::Value;
use tokio_util::sync::CancellationToken;

pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The records of a JSON-lines file (none when it does not exist yet). A file still being
/// written may end in part of a line (a sink's write lands in pieces): that part is not a
/// record yet, and is left out; any other line that is not JSON fails the test.
pub fn read_jsonl(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let complete = if text.ends_with('\n') || lines.is_empty() {
        lines.len()
    } else {
        lines.len() - 1
    };
    lines[..complete]
        .iter()
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

/// A copy of the house-price models (both versions) in `dir/models`, for a registry to roll
/// back in or a trainer to publish into.
pub fn copied_models(dir: &Path) -> std::path::PathBuf {
    let models = dir.join("models");
    std::fs::create_dir(&models).expect("models folder");
    for entry in std::fs::read_dir(root().join("examples/house-prices/models")).expect("models") {
        let path = entry.expect("entry").path();
        std::fs::copy(&path, models.join(path.file_name().expect("a name"))).expect("copy");
    }
    models
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

/// A pipeline file running in this process, in a runtime of its own, until `finish`.
pub struct Running {
    pub rt: tokio::runtime::Runtime,
    pub handle: sluice::runtime::Handle,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<Result<sluice::runtime::RunSummary, sluice::runtime::RunError>>,
}

impl Running {
    /// Loads the pipeline in `file` and starts it.
    pub fn start(file: &Path) -> Running {
        let topology = sluice::topology::load(file).unwrap_or_else(|e| panic!("{e}"));
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        let stop = CancellationToken::new();
        let handle = sluice::runtime::Handle::default();
        let task = rt.spawn(sluice::runtime::run_reloading(
            topology,
            stop.clone(),
            None,
            handle.clone(),
            sluice::runtime::RunOptions::default(),
        ));
        Running { rt, handle, stop, task }
    }

    /// Panics with the run's result if it ended by itself.
    pub fn assert_running(&self) {
        assert!(!self.task.is_finished(), "the run ended early");
    }

    /// Stops intake, lets what is in flight drain, and returns the run's summary.
    pub fn finish(self) -> sluice::runtime::RunSummary {
        self.stop.cancel();
        self.rt
            .block_on(self.task)
            .expect("the run's task")
            .unwrap_or_else(|e| panic!("the run failed: {e}"))
    }
}

/// Polls `done` until it holds; after `timeout`, fails with what `explain` says.
pub fn wait_until(timeout: std::time::Duration, mut done: impl FnMut() -> bool, explain: impl Fn() -> String) {
    let started = std::time::Instant::now();
    while !done() {
        assert!(started.elapsed() < timeout, "{}", explain());
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
