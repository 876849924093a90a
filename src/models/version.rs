//! A model version ready to serve: its ONNX Runtime sessions, checked against what the scorer
//! needs, with its own statistics.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use ort::session::Session;
use ort::value::{TensorElementType, TensorRef, ValueType};

use super::{onnx, ModelDescriptor, ModelError, ModelStats};

/// The values of an output tensor.
#[derive(Debug, Clone, PartialEq)]
pub enum TensorData {
    F32(Vec<f32>),
    I64(Vec<i64>),
    Str(Vec<String>),
}

/// An output tensor, copied out of ONNX Runtime.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub shape: Vec<i64>,
    pub data: TensorData,
}

impl Tensor {
    /// Values per row when the tensor's first dimension is the batch.
    pub fn row_width(&self) -> usize {
        self.shape.iter().skip(1).map(|d| (*d).max(1) as usize).product()
    }
}

/// What a scorer needs of a model: the input tensor (by name, or the only one),
/// its row width, and the output tensors it maps.
#[derive(Debug, Clone, PartialEq)]
pub struct Expectation {
    pub input: Option<String>,
    pub width: usize,
    pub outputs: Vec<String>,
}

/// A loaded, checked model version.
pub struct ModelVersion {
    pub descriptor: ModelDescriptor,
    pub short_sha: String,
    pub input: String,
    pub width: usize,
    sessions: Vec<Mutex<Session>>,
    next: AtomicUsize,
    pub stats: Arc<ModelStats>,
}

impl Drop for ModelVersion {
    /// The version's last batch is done: its sessions go, and the memory they held goes back.
    fn drop(&mut self) {
        self.sessions.clear();
        crate::c_heap::release_free();
    }
}

fn reject(d: &ModelDescriptor, reason: impl Into<String>) -> ModelError {
    ModelError::Rejected {
        name: d.name.clone(),
        version: d.version.clone(),
        reason: reason.into(),
    }
}

fn element_name(ty: Option<TensorElementType>) -> String {
    ty.map_or("not a tensor".to_string(), |t| format!("{t:?}").to_lowercase())
}

impl ModelVersion {
    /// Loads the version's bytes (checking the sha256), builds `sessions` sessions, checks the
    /// tensors against `expect`, and runs a test inference. Only a version that passes all of
    /// this can serve.
    pub fn load(descriptor: ModelDescriptor, expect: &Expectation, sessions: usize) -> Result<Self, ModelError> {
        let env = onnx::environment()?;
        let bytes = descriptor.bytes()?;
        let mut built = Vec::with_capacity(sessions.max(1));
        for _ in 0..sessions.max(1) {
            let session = Session::builder(env)
                .and_then(|b| b.with_intra_threads(1).map_err(Into::into))
                .and_then(|mut b| b.commit_from_memory(&bytes))
                .map_err(|e| reject(&descriptor, format!("ONNX Runtime cannot load it: {e}")))?;
            built.push(session);
        }
        let first = &built[0];
        let input = match &expect.input {
            Some(name) => first
                .inputs()
                .iter()
                .find(|i| i.name() == name)
                .ok_or_else(|| reject(&descriptor, format!("it has no input tensor `{name}`")))?,
            None => match first.inputs() {
                [only] => only,
                many => {
                    return Err(reject(
                        &descriptor,
                        format!("it has {} input tensors: name one with `features.input`", many.len()),
                    ))
                }
            },
        };
        if let ValueType::Tensor { ty, shape, .. } = input.dtype() {
            if *ty != TensorElementType::Float32 {
                return Err(reject(
                    &descriptor,
                    format!(
                        "input `{}` takes {}, the scorer gives float32",
                        input.name(),
                        element_name(Some(*ty))
                    ),
                ));
            }
            if let Some(&w) = shape.get(1).filter(|w| **w > 0) {
                if w as usize != expect.width {
                    return Err(reject(
                        &descriptor,
                        format!(
                            "input `{}` takes {w} columns, the feature mapping gives {}",
                            input.name(),
                            expect.width
                        ),
                    ));
                }
            }
        } else {
            return Err(reject(&descriptor, format!("input `{}` is not a tensor", input.name())));
        }
        let outputs: Vec<&str> = first.outputs().iter().map(|o| o.name()).collect();
        for wanted in &expect.outputs {
            if !outputs.contains(&wanted.as_str()) {
                return Err(reject(
                    &descriptor,
                    format!("it has no output tensor `{wanted}` (it has {})", outputs.join(", ")),
                ));
            }
        }
        let input = input.name().to_string();
        let short_sha = descriptor.short_sha();
        let stats = Arc::new(ModelStats::new(&descriptor.name, &descriptor.version, &short_sha));
        let version = ModelVersion {
            short_sha,
            input,
            width: expect.width,
            sessions: built.into_iter().map(Mutex::new).collect(),
            next: AtomicUsize::new(0),
            stats,
            descriptor,
        };
        let probe = version
            .infer(&vec![0.0; expect.width], 1)
            .map_err(|e| reject(&version.descriptor, format!("the test inference failed: {e}")))?;
        for wanted in &expect.outputs {
            match probe.get(wanted) {
                Some(t) if t.shape.first() == Some(&1) => {}
                Some(t) => {
                    return Err(reject(
                        &version.descriptor,
                        format!(
                            "output `{wanted}` has shape {:?} for one row; its first dimension must be the batch",
                            t.shape
                        ),
                    ))
                }
                None => {
                    return Err(reject(
                        &version.descriptor,
                        format!("the test inference gave no `{wanted}`"),
                    ))
                }
            }
        }
        Ok(version)
    }

    /// Runs the model on `n` rows (row-major, `width` columns each) without counting it.
    fn infer(&self, rows: &[f32], n: usize) -> Result<HashMap<String, Tensor>, ModelError> {
        let fail = |e: ort::Error| ModelError::Inference(e.to_string());
        let tensor = TensorRef::from_array_view(([n, self.width], rows)).map_err(fail)?;
        let slot = self.next.fetch_add(1, Ordering::Relaxed) % self.sessions.len();
        let mut session = self.sessions[slot].lock().unwrap_or_else(|p| p.into_inner());
        let outputs = session.run(ort::inputs![self.input.as_str() => tensor]).map_err(fail)?;
        let mut result = HashMap::new();
        for (name, value) in outputs.iter() {
            let tensor = if let Ok((shape, data)) = value.try_extract_tensor::<f32>() {
                Tensor {
                    shape: shape.to_vec(),
                    data: TensorData::F32(data.to_vec()),
                }
            } else if let Ok((shape, data)) = value.try_extract_tensor::<i64>() {
                Tensor {
                    shape: shape.to_vec(),
                    data: TensorData::I64(data.to_vec()),
                }
            } else if let Ok((shape, data)) = value.try_extract_strings() {
                Tensor {
                    shape: shape.to_vec(),
                    data: TensorData::Str(data),
                }
            } else {
                continue; // maps and sequences (e.g. a ZipMap) are not mapped to records
            };
            result.insert(name.to_string(), tensor);
        }
        Ok(result)
    }

    /// Scores `n` rows, counting the call (or the failure) in this version's statistics.
    /// Returns the output tensors and the call's latency in microseconds.
    pub fn run(&self, rows: &[f32], n: usize) -> Result<(HashMap<String, Tensor>, u64), ModelError> {
        let cpu = super::stats::thread_cpu();
        let started = Instant::now();
        let result = self.infer(rows, n);
        let latency_us = started.elapsed().as_micros() as u64;
        let cpu_ns = super::stats::thread_cpu().saturating_sub(cpu).as_nanos() as u64;
        match result {
            Ok(outputs) => {
                self.stats.record_call(n, latency_us, cpu_ns);
                Ok((outputs, latency_us))
            }
            Err(e) => {
                self.stats.record_errors(n, cpu_ns);
                Err(e)
            }
        }
    }
}
