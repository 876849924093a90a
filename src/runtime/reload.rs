//! Watching the pipeline's files (and SIGHUP): each change loads and verifies the whole
//! configuration again; a valid one goes to the running pipeline, an invalid one is logged with
//! file:line:col and the pipeline carries on unchanged.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use notify::Watcher;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::Handle;
use crate::spec::LoadError;
use crate::topology::Topology;

/// How long the files must be quiet before they are read (editors write in several steps).
const DEBOUNCE: Duration = Duration::from_millis(100);

fn absolute(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()))
}

/// The files a configuration was read from (absolute), shared with the watcher's thread.
type Files = Arc<RwLock<HashSet<PathBuf>>>;

fn files_of(topology: &Topology) -> HashSet<PathBuf> {
    topology.watched_files().iter().map(|f| absolute(f)).collect()
}

/// The folders to watch: a folder, so that a file replaced by rename is still seen.
fn dirs_of(files: &HashSet<PathBuf>) -> HashSet<PathBuf> {
    files.iter().filter_map(|f| f.parent().map(Path::to_path_buf)).collect()
}

/// Loads `path` again, logging (and noting in `handle`) the problems of an invalid configuration.
async fn load(path: &Path, handle: &Handle) -> Option<Topology> {
    let file = path.to_path_buf();
    let loaded = tokio::task::spawn_blocking(move || crate::topology::load(&file)).await;
    match loaded {
        Ok(Ok(topology)) => Some(topology),
        Ok(Err(LoadError::Problems(report))) => {
            tracing::error!(
                problems = report.diagnostics.len(),
                "reload rejected: the new configuration has problems; the running pipeline carries on"
            );
            let first = report
                .diagnostics
                .first()
                .map(|d| format!("{}: {}", d.location, d.message));
            handle.rejected(first.unwrap_or_default());
            for d in &report.diagnostics {
                tracing::error!(
                    at = %d.location,
                    code = %d.problem.code(),
                    hint = d.hint.as_deref().unwrap_or(""),
                    "{}",
                    d.message
                );
            }
            None
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, "reload rejected; the running pipeline carries on");
            handle.rejected(e.to_string());
            None
        }
        Err(e) => {
            tracing::error!(error = %e, "reload stopped abnormally");
            None
        }
    }
}

/// Watches the files of `first` (and listens for SIGHUP) until `stop`, sending each valid new
/// configuration of `path` to `reloads`.
pub fn watch(
    path: PathBuf,
    first: &Topology,
    reloads: mpsc::Sender<Topology>,
    stop: CancellationToken,
    handle: Handle,
) -> Result<(), String> {
    let (events_tx, mut events) = mpsc::channel::<()>(1);
    let files: Files = Arc::new(RwLock::new(files_of(first)));
    let concerned = files.clone();
    // Other files in the same folders (an output file, say) change all the time: only the
    // configuration's own files count.
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        // Reading the files (as a reload does) is not a change.
        if matches!(event.kind, notify::EventKind::Access(_) | notify::EventKind::Other) {
            return;
        }
        let ours = concerned
            .read()
            .map(|f| event.paths.iter().any(|p| f.contains(p)))
            .unwrap_or(true);
        if ours {
            let _ = events_tx.try_send(());
        }
    })
    .map_err(|e| format!("cannot watch the pipeline files: {e}"))?;
    let mut watching: HashSet<PathBuf> = HashSet::new();
    let dirs = dirs_of(&files_of(first));
    for dir in &dirs {
        watcher
            .watch(dir, notify::RecursiveMode::NonRecursive)
            .map_err(|e| format!("cannot watch {}: {e}", dir.display()))?;
        watching.insert(dir.clone());
    }
    #[cfg(unix)]
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .map_err(|e| format!("cannot listen for SIGHUP: {e}"))?;
    tokio::spawn(async move {
        loop {
            #[cfg(unix)]
            let signalled = async { hangup.recv().await };
            #[cfg(not(unix))]
            let signalled = std::future::pending::<Option<()>>();
            tokio::select! {
                _ = stop.cancelled() => break,
                Some(()) = signalled => tracing::info!("SIGHUP: reloading"),
                event = events.recv() => match event {
                    None => break,
                    Some(()) => while let Ok(Some(())) = tokio::time::timeout(DEBOUNCE, events.recv()).await {},
                },
            }
            let Some(topology) = load(&path, &handle).await else {
                continue;
            };
            let new_files = files_of(&topology);
            let dirs = dirs_of(&new_files);
            if let Ok(mut f) = files.write() {
                *f = new_files;
            }
            for dir in &dirs {
                if watching.insert(dir.clone()) {
                    if let Err(e) = watcher.watch(dir, notify::RecursiveMode::NonRecursive) {
                        tracing::warn!(dir = %dir.display(), error = %e, "cannot watch a new folder of the configuration");
                    }
                }
            }
            if reloads.send(topology).await.is_err() {
                break;
            }
        }
    });
    Ok(())
}
