//! One debounced watcher for everything sluice follows on disk: the pipeline's own files, an
//! enricher's table, a scorer's model folder. It watches folders (so that a file replaced by a
//! rename is still seen), counts only changes to what it was asked about (reading a file is not
//! a change), and reports a burst of changes once, when the files have been quiet a moment.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use notify::Watcher;
use tokio::sync::mpsc;

/// How long the files must be quiet before a change is reported (editors and copies write in
/// several steps).
pub const DEBOUNCE: Duration = Duration::from_millis(100);

/// What counts as a change.
#[derive(Debug, Clone)]
enum Concern {
    /// Changes to these files (absolute paths).
    Files(HashSet<PathBuf>),
    /// Any change in the watched folders.
    Everything,
}

impl Concern {
    fn covers(&self, event: &notify::Event) -> bool {
        match self {
            Concern::Files(files) => event.paths.iter().any(|p| files.contains(p)),
            Concern::Everything => true,
        }
    }
}

/// A path made absolute (through its links, when it exists), as change events name files.
pub fn absolute(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()))
}

/// Watches files or folders until dropped.
pub struct FileWatch {
    watcher: notify::RecommendedWatcher,
    concern: Arc<RwLock<Concern>>,
    folders: HashSet<PathBuf>,
    changes: mpsc::Receiver<()>,
    quiet: Duration,
}

impl FileWatch {
    /// Watches `files`: a change to any of them counts, a change to another file of their
    /// folders does not.
    pub fn files(files: impl IntoIterator<Item = PathBuf>) -> Result<FileWatch, String> {
        let files: HashSet<PathBuf> = files.into_iter().map(|f| absolute(&f)).collect();
        let folders = folders_of(&files);
        let mut watch = FileWatch::new(Concern::Files(files))?;
        watch.add_folders(folders)?;
        Ok(watch)
    }

    /// Watches every change in `folder`.
    pub fn folder(folder: &Path) -> Result<FileWatch, String> {
        let mut watch = FileWatch::new(Concern::Everything)?;
        watch.add_folders([absolute(folder)])?;
        Ok(watch)
    }

    fn new(concern: Concern) -> Result<FileWatch, String> {
        let (tx, changes) = mpsc::channel::<()>(1);
        let concern = Arc::new(RwLock::new(concern));
        let concerned = concern.clone();
        let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            let Ok(event) = event else { return };
            // Reading the files (as a reload does) is not a change.
            if matches!(event.kind, notify::EventKind::Access(_) | notify::EventKind::Other) {
                return;
            }
            let covered = concerned.read().map(|c| c.covers(&event)).unwrap_or(true);
            if covered {
                // A change already waiting to be reported stands for this one too.
                let _ = tx.try_send(());
            }
        })
        .map_err(|e| format!("cannot watch files: {e}"))?;
        Ok(FileWatch {
            watcher,
            concern,
            folders: HashSet::new(),
            changes,
            quiet: DEBOUNCE,
        })
    }

    fn add_folders(&mut self, folders: impl IntoIterator<Item = PathBuf>) -> Result<(), String> {
        for folder in folders {
            if self.folders.contains(&folder) {
                continue;
            }
            self.watcher
                .watch(&folder, notify::RecursiveMode::NonRecursive)
                .map_err(|e| format!("cannot watch {}: {e}", folder.display()))?;
            self.folders.insert(folder);
        }
        Ok(())
    }

    /// From now on, changes to `files` count (and only those): a configuration that was
    /// reloaded may read other files. A folder that cannot be watched is logged and skipped.
    pub fn set_files(&mut self, files: impl IntoIterator<Item = PathBuf>) {
        let files: HashSet<PathBuf> = files.into_iter().map(|f| absolute(&f)).collect();
        for folder in folders_of(&files) {
            if let Err(e) = self.add_folders([folder]) {
                tracing::warn!(error = %e, "a new folder of the configuration is not watched");
            }
        }
        if let Ok(mut concern) = self.concern.write() {
            *concern = Concern::Files(files);
        }
    }

    /// How long the files must be quiet before a change is reported ([`DEBOUNCE`] unless set).
    pub fn quiet_for(mut self, quiet: Duration) -> FileWatch {
        self.quiet = quiet;
        self
    }

    /// Waits for the next change, then for the files to be quiet; `None` once the watcher has
    /// stopped.
    pub async fn changed(&mut self) -> Option<()> {
        self.changes.recv().await?;
        while let Ok(Some(())) = tokio::time::timeout(self.quiet, self.changes.recv()).await {}
        Some(())
    }
}

/// The folders of `files`.
fn folders_of(files: &HashSet<PathBuf>) -> HashSet<PathBuf> {
    files.iter().filter_map(|f| f.parent().map(Path::to_path_buf)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_burst_of_writes_is_one_change_and_other_files_do_not_count() {
        let dir = tempfile::tempdir().expect("dir");
        let watched = dir.path().join("table.csv");
        let other = dir.path().join("out.jsonl");
        std::fs::write(&watched, "a\n").expect("write");
        let mut watch = FileWatch::files([watched.clone()]).expect("watch");
        for i in 0..5 {
            std::fs::write(&other, format!("{i}\n")).expect("write");
        }
        let quiet = tokio::time::timeout(Duration::from_millis(500), watch.changed()).await;
        assert!(quiet.is_err(), "a file nobody asked about changed, and it counted");
        for i in 0..5 {
            std::fs::write(&watched, format!("{i}\n")).expect("write");
        }
        tokio::time::timeout(Duration::from_secs(10), watch.changed())
            .await
            .expect("the change is reported")
            .expect("the watcher runs");
        let again = tokio::time::timeout(Duration::from_millis(500), watch.changed()).await;
        assert!(again.is_err(), "one burst was reported twice");
        // Reading the file is not a change.
        std::fs::read_to_string(&watched).expect("read");
        let read = tokio::time::timeout(Duration::from_millis(500), watch.changed()).await;
        assert!(read.is_err(), "reading counted as a change");
    }

    #[tokio::test]
    async fn a_file_replaced_by_rename_and_a_new_file_in_a_folder_are_seen() {
        let dir = tempfile::tempdir().expect("dir");
        let watched = dir.path().join("pipeline.yaml");
        std::fs::write(&watched, "a: 1\n").expect("write");
        let mut watch = FileWatch::files([watched.clone()]).expect("watch");
        let staged = dir.path().join(".pipeline.yaml.tmp");
        std::fs::write(&staged, "a: 2\n").expect("write");
        std::fs::rename(&staged, &watched).expect("rename");
        tokio::time::timeout(Duration::from_secs(10), watch.changed())
            .await
            .expect("the replacement is reported")
            .expect("the watcher runs");

        let models = tempfile::tempdir().expect("dir");
        let mut folder = FileWatch::folder(models.path()).expect("watch");
        std::fs::write(models.path().join("m-v2.yaml"), "version: 2\n").expect("write");
        tokio::time::timeout(Duration::from_secs(10), folder.changed())
            .await
            .expect("a new file is reported")
            .expect("the watcher runs");
    }
}
