//! Watching the pipeline's files (and SIGHUP): each change loads and verifies the whole
//! configuration again; a valid one goes to the running pipeline, an invalid one is logged with
//! file:line:col and the pipeline carries on unchanged.

use std::path::{Path, PathBuf};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::Handle;
use crate::spec::LoadError;
use crate::topology::Topology;
use crate::watch::FileWatch;

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
    // Other files in the same folders (an output file, say) change all the time: only the
    // configuration's own files count.
    let mut watch =
        FileWatch::files(first.watched_files()).map_err(|e| format!("cannot watch the pipeline files: {e}"))?;
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
                changed = watch.changed() => if changed.is_none() { break },
            }
            let Some(topology) = load(&path, &handle).await else {
                continue;
            };
            watch.set_files(topology.watched_files());
            if reloads.send(topology).await.is_err() {
                break;
            }
        }
    });
    Ok(())
}
