//! Which model version serves: the latest (or pinned) version in a watched folder, swapped in
//! atomically once it has loaded and passed its checks. A version that fails is rejected with
//! its reason, and the one serving goes on serving.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use notify::Watcher;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::descriptor::{compare_versions, scan};
use super::version::Expectation;
use super::{ModelDescriptor, ModelError, ModelStats, ModelStatsSummary, ModelVersion};

/// Where versions come from and which to serve.
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    pub name: String,
    pub folder: PathBuf,
    pub pinned: Option<String>,
}

/// The model versions of one scorer: the one serving, and the statistics of all that served.
pub struct ModelRegistry {
    source: Source,
    expect: Expectation,
    sessions: usize,
    current: ArcSwap<ModelVersion>,
    served: Mutex<Vec<Arc<ModelStats>>>,
}

/// How long the folder must be quiet before it is read again (editors and copies write in steps).
const DEBOUNCE: Duration = Duration::from_millis(200);

/// The candidate descriptors, best first, and the reasons unreadable ones were skipped.
fn candidates(source: &Source) -> (Vec<ModelDescriptor>, Vec<String>) {
    let (mut found, problems) = scan(&source.folder, &source.name);
    if let Some(pin) = &source.pinned {
        found.retain(|d| compare_versions(&d.version, pin).is_eq());
    }
    found.sort_by(|a, b| compare_versions(&b.version, &a.version));
    (found, problems)
}

impl ModelRegistry {
    /// Loads the best version that passes its checks. Blocking: it reads files and builds sessions.
    pub fn open(source: Source, expect: Expectation, sessions: usize) -> Result<Arc<Self>, ModelError> {
        let (candidates, mut reasons) = candidates(&source);
        for descriptor in candidates {
            let file = descriptor.file.display().to_string();
            match ModelVersion::load(descriptor, &expect, sessions) {
                Ok(version) => {
                    tracing::info!(
                        model = %version.descriptor.name,
                        version = %version.descriptor.version,
                        sha256 = %version.short_sha,
                        %file,
                        "model loaded"
                    );
                    return Ok(Arc::new(ModelRegistry {
                        source,
                        expect,
                        sessions,
                        served: Mutex::new(vec![version.stats.clone()]),
                        current: ArcSwap::from_pointee(version),
                    }));
                }
                Err(e) => {
                    tracing::error!(%file, reason = %e, "model rejected");
                    reasons.push(e.to_string());
                }
            }
        }
        Err(ModelError::NoVersion {
            name: source.name.clone(),
            folder: source.folder.display().to_string(),
            reasons,
        })
    }

    fn lock_served(&self) -> std::sync::MutexGuard<'_, Vec<Arc<ModelStats>>> {
        self.served.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The version serving now. A batch takes it once, so it is scored by one version.
    pub fn current(&self) -> Arc<ModelVersion> {
        self.current.load_full()
    }

    /// Reads the folder again and swaps in the best version if it differs from the one serving
    /// and passes its checks. Blocking. Returns the new version when there was a swap.
    pub fn refresh(&self) -> Result<Option<Arc<ModelVersion>>, ModelError> {
        let (candidates, problems) = candidates(&self.source);
        for p in problems {
            tracing::warn!(reason = %p, "model descriptor skipped");
        }
        let Some(best) = candidates.into_iter().next() else {
            return Ok(None);
        };
        let serving = self.current();
        if best.version == serving.descriptor.version && best.sha256.eq_ignore_ascii_case(&serving.descriptor.sha256) {
            return Ok(None);
        }
        let version = Arc::new(ModelVersion::load(best, &self.expect, self.sessions)?);
        self.lock_served().push(version.stats.clone());
        self.current.store(version.clone());
        tracing::info!(
            model = %version.descriptor.name,
            from = %serving.descriptor.version,
            to = %version.descriptor.version,
            sha256 = %version.short_sha,
            "model swapped"
        );
        Ok(Some(version))
    }

    /// Watches the folder and refreshes after each burst of changes, until `stop`.
    pub fn watch(self: Arc<Self>, stop: CancellationToken) -> Result<tokio::task::JoinHandle<()>, ModelError> {
        let (tx, mut rx) = mpsc::channel::<()>(1);
        let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            if event.is_ok() {
                let _ = tx.try_send(());
            }
        })
        .map_err(|e| ModelError::Runtime(format!("cannot watch for models: {e}")))?;
        watcher
            .watch(&self.source.folder, notify::RecursiveMode::NonRecursive)
            .map_err(|e| ModelError::Runtime(format!("cannot watch {}: {e}", self.source.folder.display())))?;
        Ok(tokio::spawn(async move {
            let _watcher = watcher;
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    event = rx.recv() => if event.is_none() { break },
                }
                // Wait until the folder is quiet.
                while let Ok(Some(())) = tokio::time::timeout(DEBOUNCE, rx.recv()).await {}
                let registry = self.clone();
                match tokio::task::spawn_blocking(move || registry.refresh()).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => {
                        tracing::error!(reason = %e, "model rejected; the serving version goes on")
                    }
                    Err(e) => tracing::error!(reason = %e, "model refresh stopped abnormally"),
                }
            }
        }))
    }

    /// Statistics of every version that served, oldest first.
    pub fn stats(&self) -> Vec<ModelStatsSummary> {
        self.lock_served().iter().map(|s| s.summary()).collect()
    }
}
