//! Finding and loading the ONNX Runtime shared library, once per process.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ort::environment::Environment;

use super::ModelError;

/// The command that installs the library where sluice looks for it.
pub const SETUP_COMMAND: &str = "scripts/setup-onnxruntime.sh";

static LIBRARY: OnceLock<PathBuf> = OnceLock::new();
static ENVIRONMENT: OnceLock<Result<Environment, String>> = OnceLock::new();

/// Uses this library file (the `--onnxruntime` flag). Has effect only before the first model loads.
pub fn use_library(path: PathBuf) {
    let _ = LIBRARY.set(path);
}

/// `vendor-runtime/onnxruntime-*/libonnxruntime.so` under `dir`, if there is one.
fn vendored(dir: &Path) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir.join("vendor-runtime"))
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("libonnxruntime.so")))
        .filter(|p| p.is_file())
        .collect();
    found.sort();
    found.pop()
}

/// Where the library is: the `--onnxruntime` flag, `ORT_DYLIB_PATH`, or the project's
/// `vendor-runtime/` folder (looked for from the working directory and from the executable up).
pub fn locate() -> Result<PathBuf, ModelError> {
    if let Some(path) = LIBRARY.get() {
        return Ok(path.clone());
    }
    if let Some(path) = std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    let mut places: Vec<PathBuf> = Vec::new();
    if let Ok(cwd) = std::env::current_dir() {
        places.extend(cwd.ancestors().map(Path::to_path_buf));
    }
    if let Ok(exe) = std::env::current_exe() {
        places.extend(exe.ancestors().skip(1).map(Path::to_path_buf));
    }
    places.iter().find_map(|dir| vendored(dir)).ok_or_else(|| {
        ModelError::Runtime(format!(
            "the ONNX Runtime library was not found: run `{SETUP_COMMAND}` (it installs it from PyPI into vendor-runtime/), \
             or point ORT_DYLIB_PATH or --onnxruntime at libonnxruntime.so"
        ))
    })
}

/// The process-wide ONNX Runtime environment, loading the library on first use.
pub fn environment() -> Result<&'static Environment, ModelError> {
    let env = ENVIRONMENT.get_or_init(|| {
        let path = locate().map_err(|e| e.to_string())?;
        let builder =
            ort::init_from(&path).map_err(|e| format!("cannot load ONNX Runtime from {}: {e}", path.display()))?;
        builder
            .with_name("sluice")
            .build()
            .map_err(|e| format!("cannot start ONNX Runtime from {}: {e}", path.display()))
    });
    env.as_ref().map_err(|e| ModelError::Runtime(e.clone()))
}
