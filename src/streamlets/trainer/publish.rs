//! Publishing what a run trained: the next version of a scorer's model, checked by the
//! scorer's own checks, its files claimed (never overwritten) model first, descriptor last.

use std::path::Path;

use serde_json::Value;

use super::now_rfc3339;
use crate::models::descriptor::{compare_versions, scan};
use crate::models::ModelDescriptor;

/// Writes `bytes` as `path`, only if no file has that name: written beside, then linked to
/// the name (which fails when it is taken), so a reader sees it whole or not at all.
pub(super) fn claim(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let partial = path.with_extension(format!(
        "{}.partial",
        path.extension().and_then(|e| e.to_str()).unwrap_or_default()
    ));
    std::fs::write(&partial, bytes)?;
    let linked = std::fs::hard_link(&partial, path);
    let _ = std::fs::remove_file(&partial);
    linked
}

/// Publishes a trained model as the next version of the scorer's model: checked first by
/// the registry's own checks, then written (model, then descriptor). Blocking.
pub(super) fn publish(
    registry: &crate::models::ModelRegistry,
    model: &Path,
    lineage: Value,
) -> Result<(String, String), String> {
    let folder = registry
        .folder()
        .ok_or("the scorer's model comes from a Kafka topic: a trainer publishes into a folder")?
        .to_path_buf();
    let name = registry.name().to_string();
    let parent = registry
        .current()
        .ok_or("no version serves: there is no descriptor to follow")?;
    let (existing, _) = scan(&folder, &name);
    let highest = existing
        .iter()
        .map(|d| d.version.clone())
        .max_by(|a, b| compare_versions(a, b))
        .unwrap_or_else(|| parent.descriptor.version.clone());
    let mut next: u64 = highest
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_add(1))
        .ok_or_else(|| format!("version `{highest}` is not a number one can be added to"))?;
    let bytes = std::fs::read(model).map_err(|e| format!("cannot read {}: {e}", model.display()))?;
    use sha2::Digest;
    let sha256: String = sha2::Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    // A version's names are claimed, never overwritten: a file left there (another trainer's,
    // an orphan of a crash) moves this one to the next number.
    for _ in 0..100 {
        let version = next.to_string();
        next = next.checked_add(1).ok_or("no version number left")?;
        let file = format!("{name}-v{version}.onnx");
        let model_path = folder.join(&file);
        let descriptor_path = folder.join(format!("{name}-v{version}.model.json"));
        if descriptor_path.exists() {
            continue;
        }
        match claim(&model_path, &bytes) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(format!("cannot write {}: {e}", model_path.display())),
        }
        let descriptor = ModelDescriptor {
            version: version.clone(),
            location: Some(file),
            bytes_base64: None,
            sha256: sha256.clone(),
            created: Some(now_rfc3339()),
            description: Some(format!("retrained from version {}", parent.descriptor.version)),
            lineage: Some(lineage.clone()),
            file: descriptor_path.clone(),
            ..parent.descriptor.clone()
        };
        if let Err(e) = registry.check(descriptor.clone()) {
            let _ = std::fs::remove_file(&model_path);
            return Err(format!("the model fails the scorer's checks: {e}"));
        }
        let text = serde_json::to_vec_pretty(&descriptor).map_err(|e| e.to_string())?;
        match claim(&descriptor_path, &text) {
            Ok(()) => return Ok((version, parent.descriptor.version.clone())),
            Err(e) => {
                let _ = std::fs::remove_file(&model_path);
                if e.kind() != std::io::ErrorKind::AlreadyExists {
                    return Err(format!("cannot write {}: {e}", descriptor_path.display()));
                }
            }
        }
    }
    Err(format!("no free version name in {} after 100 tries", folder.display()))
}
