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

/// The largest model published inline on a model topic (base64 makes it a third larger; a
/// broker's default message limit is 1 MB). A larger one is written into the model's folder
/// and its descriptor names it there.
const INLINE_AT_MOST: usize = 700 * 1024;

/// What a new version says of itself, before its place (file or topic) is known.
struct Trained {
    bytes: Vec<u8>,
    sha256: String,
    parent: crate::models::ModelDescriptor,
    lineage: Value,
}

impl Trained {
    fn descriptor(&self, version: &str, location: Option<String>, file: std::path::PathBuf) -> ModelDescriptor {
        ModelDescriptor {
            version: version.to_string(),
            location,
            bytes_base64: None,
            sha256: self.sha256.clone(),
            created: Some(now_rfc3339()),
            description: Some(format!("retrained from version {}", self.parent.version)),
            lineage: Some(self.lineage.clone()),
            file,
            ..self.parent.clone()
        }
    }
}

/// Publishes a trained model as the next version of the scorer's model: checked first by
/// the registry's own checks, then written (model, then descriptor) into its folder, or
/// published on its model topic. Blocking. The version and its parent's.
pub(super) fn publish(
    registry: &crate::models::ModelRegistry,
    model: &Path,
    lineage: Value,
) -> Result<(String, String), String> {
    let parent = registry
        .current()
        .ok_or("no version serves: there is no descriptor to follow")?
        .descriptor
        .clone();
    let bytes = std::fs::read(model).map_err(|e| format!("cannot read {}: {e}", model.display()))?;
    use sha2::Digest;
    let sha256: String = sha2::Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let trained = Trained {
        bytes,
        sha256,
        parent,
        lineage,
    };
    let version = match registry.model_topic() {
        Some(topic) => to_topic(registry, topic, &trained)?,
        None => to_folder(registry, &trained)?,
    };
    Ok((version, trained.parent.version))
}

/// The version after `highest`, as a number.
fn after(highest: &str) -> Result<u64, String> {
    highest
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_add(1))
        .ok_or_else(|| format!("version `{highest}` is not a number one can be added to"))
}

/// Writes the version into the model's folder.
fn to_folder(registry: &crate::models::ModelRegistry, trained: &Trained) -> Result<String, String> {
    let folder = registry.folder().ok_or("the model has no folder")?.to_path_buf();
    let name = registry.name().to_string();
    let (existing, _) = scan(&folder, &name);
    let highest = existing
        .iter()
        .map(|d| d.version.clone())
        .max_by(|a, b| compare_versions(a, b))
        .unwrap_or_else(|| trained.parent.version.clone());
    let mut next = after(&highest)?;
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
        match claim(&model_path, &trained.bytes) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(format!("cannot write {}: {e}", model_path.display())),
        }
        let descriptor = trained.descriptor(&version, Some(file), descriptor_path.clone());
        if let Err(e) = registry.check(descriptor.clone()) {
            let _ = std::fs::remove_file(&model_path);
            return Err(format!("the model fails the scorer's checks: {e}"));
        }
        let text = serde_json::to_vec_pretty(&descriptor).map_err(|e| e.to_string())?;
        match claim(&descriptor_path, &text) {
            Ok(()) => return Ok(version),
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

/// Publishes the version on the model's topic: the model inline (a larger one written into
/// the folder first, its descriptor naming it), after the versions the reader has seen there.
fn to_topic(
    registry: &crate::models::ModelRegistry,
    topic: &crate::models::topic::ModelTopic,
    trained: &Trained,
) -> Result<String, String> {
    if registry.pinned().is_some() {
        return Err(
            "a model pinned to a version reads only that version of its topic: publish for an unpinned model".into(),
        );
    }
    let highest = registry
        .published_versions()
        .into_iter()
        .max_by(|a, b| compare_versions(a, b))
        .unwrap_or_else(|| trained.parent.version.clone());
    let version = after(&highest)?.to_string();
    let folder = registry.folder_of_locations().to_path_buf();
    let origin = folder.join(format!("kafka:{}", topic.topic));
    let mut location = None;
    if trained.bytes.len() > INLINE_AT_MOST {
        let file = format!("{}-v{version}.onnx", registry.name());
        claim(&folder.join(&file), &trained.bytes)
            .map_err(|e| format!("cannot write {}: {e}", folder.join(&file).display()))?;
        location = Some(file);
    }
    let mut descriptor = trained.descriptor(&version, location.clone(), origin);
    if location.is_none() {
        use base64::Engine;
        descriptor.bytes_base64 = Some(base64::engine::general_purpose::STANDARD.encode(&trained.bytes));
    }
    if let Err(e) = registry.check(descriptor.clone()) {
        if let Some(file) = &location {
            let _ = std::fs::remove_file(folder.join(file));
        }
        return Err(format!("the model fails the scorer's checks: {e}"));
    }
    let mut message = serde_json::to_value(&descriptor).map_err(|e| e.to_string())?;
    if let (Some(bytes), Some(m)) = (&descriptor.bytes_base64, message.as_object_mut()) {
        m.insert("bytes_base64".into(), bytes.clone().into());
    }
    let payload = message.to_string();
    let key = format!("{}-v{version}", registry.name());
    if let Err(e) = crate::kafka::produce_one(&topic.settings, &topic.topic, &key, payload.as_bytes()) {
        // Nothing was published: the file written for it goes, so the number stays free.
        if let Some(file) = &location {
            let _ = std::fs::remove_file(folder.join(file));
        }
        return Err(format!("cannot publish on the model topic `{}`: {e}", topic.topic));
    }
    Ok(version)
}
