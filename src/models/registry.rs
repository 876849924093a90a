//! Which model version serves: the latest (or pinned) version in a watched folder, swapped in
//! atomically once it has loaded and passed its checks. A version that fails is rejected with
//! its reason, and the one serving goes on serving.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::lifecycle::{Detail, Lifecycle};
use crate::watch::FileWatch;
use arc_swap::ArcSwapOption;

use tokio_util::sync::CancellationToken;

use super::descriptor::{compare_versions, scan};
use super::stats::Retired;
use super::topic::{Feed, ModelTopic};
use super::version::Expectation;
use super::{ModelDescriptor, ModelError, ModelStats, ModelStatsSummary, ModelVersion};

/// Where versions come from and which to serve.
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    pub name: String,
    pub folder: PathBuf,
    pub pinned: Option<String>,
    /// Descriptors from a Kafka topic instead of the folder's files.
    pub topic: Option<ModelTopic>,
}

/// The model versions of one scorer: the one serving, and the statistics of all that served.
pub struct ModelRegistry {
    source: Source,
    expect: Expectation,
    sessions: usize,
    current: ArcSwapOption<ModelVersion>,
    /// Whether a version serves: true from the first good version on.
    available: tokio::sync::watch::Sender<bool>,
    served: Mutex<Served>,
    /// With a model topic: the descriptors published so far, and the reader following it.
    published: Mutex<Vec<ModelDescriptor>>,
    feed: Mutex<Option<Feed>>,
    /// Versions rolled back (version, sha256): never candidates again.
    withdrawn: Mutex<Vec<(String, String)>>,
    /// The version a promotion made this model serve (another model's version, judged
    /// better), in place of the configuration's pin until a rollback or a restart.
    adopted: Mutex<Option<String>>,
    lifecycle: Lifecycle,
    /// Held while the candidates are read and one is swapped in: the folder watcher and a
    /// rollback never swap at once.
    swapping: Mutex<()>,
}

/// How many versions keep statistics of their own; older ones are folded into one aggregate.
pub const KEEP_VERSIONS: usize = 10;

/// The statistics of the versions that served: the last [`KEEP_VERSIONS`] each on its own,
/// the ones before added together. A scorer that takes a new version every hour for months
/// keeps the same few.
#[derive(Default)]
struct Served {
    recent: std::collections::VecDeque<Arc<ModelStats>>,
    retired: Option<Retired>,
}

impl Served {
    fn push(&mut self, stats: Arc<ModelStats>) {
        if self.recent.len() == KEEP_VERSIONS {
            if let Some(oldest) = self.recent.pop_front() {
                match &mut self.retired {
                    Some(retired) => retired.fold(&oldest),
                    None => self.retired = Some(Retired::new(&oldest)),
                }
            }
        }
        self.recent.push_back(stats);
    }
}

/// How long the folder must be quiet before it is read again (editors and copies write in steps).
const DEBOUNCE: Duration = Duration::from_millis(200);

/// The candidate descriptors, best first, and the reasons unreadable ones were skipped: the
/// folder's, or those `published` on the model topic (the latest message of each version).
fn candidates(
    source: &Source,
    published: &[ModelDescriptor],
    pin: Option<&str>,
) -> (Vec<ModelDescriptor>, Vec<String>) {
    let (mut found, problems) = match source.topic {
        None => scan(&source.folder, &source.name),
        Some(_) => {
            let mut latest: Vec<ModelDescriptor> = Vec::new();
            for d in published.iter().rev() {
                if !latest.iter().any(|l| l.version == d.version) {
                    latest.push(d.clone());
                }
            }
            (latest, Vec::new())
        }
    };
    if let Some(pin) = pin {
        found.retain(|d| compare_versions(&d.version, pin).is_eq());
    }
    found.sort_by(|a, b| compare_versions(&b.version, &a.version));
    (found, problems)
}

/// Keeps a descriptor published on the model topic as a candidate: the latest message of each
/// version, of the pinned version only when there is a pin, and of the [`KEEP_VERSIONS`]
/// highest versions (a descriptor may carry a whole model inline).
fn remember(source: &Source, published: &mut Vec<ModelDescriptor>, descriptor: ModelDescriptor) {
    if source
        .pinned
        .as_ref()
        .is_some_and(|pin| !compare_versions(&descriptor.version, pin).is_eq())
    {
        return;
    }
    published.retain(|d| d.version != descriptor.version);
    published.push(descriptor);
    if published.len() > KEEP_VERSIONS {
        published.sort_by(|a, b| compare_versions(&b.version, &a.version));
        published.truncate(KEEP_VERSIONS);
    }
}

impl ModelRegistry {
    /// Loads the best version that passes its checks, or fails naming every reason.
    /// Blocking: it reads files and builds sessions.
    pub fn open(source: Source, expect: Expectation, sessions: usize) -> Result<Arc<Self>, ModelError> {
        Self::load_best(source, expect, sessions, false)
    }

    /// Like `open`, but when no version is usable yet the registry starts empty and waits for
    /// one to arrive in the folder (models are data: they may come after the pipeline starts).
    /// A missing ONNX Runtime is still an error.
    pub fn open_or_wait(source: Source, expect: Expectation, sessions: usize) -> Result<Arc<Self>, ModelError> {
        Self::load_best(source, expect, sessions, true)
    }

    fn load_best(source: Source, expect: Expectation, sessions: usize, wait: bool) -> Result<Arc<Self>, ModelError> {
        crate::models::onnx::environment()?;
        let (feed, published) = match &source.topic {
            Some(topic) => {
                let (feed, all) = Feed::open(topic, &source.folder, &source.name)?;
                let mut published = Vec::new();
                for descriptor in all {
                    remember(&source, &mut published, descriptor);
                }
                (Some(feed), published)
            }
            None => (None, Vec::new()),
        };
        let (candidates, mut reasons) = candidates(&source, &published, source.pinned.as_deref());
        let lifecycle = Lifecycle::new(&source.name);
        for descriptor in candidates {
            let file = descriptor.file.display().to_string();
            lifecycle.saw(&descriptor.version, &descriptor.sha256);
            let (v, sha) = (descriptor.version.clone(), descriptor.sha256.clone());
            match ModelVersion::load(descriptor, &expect, sessions) {
                Ok(version) => {
                    lifecycle.record(&v, "loaded", Detail::sha(&sha));
                    lifecycle.record(&v, "serving", Detail::reason("the best version that passes its checks"));
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
                        served: Mutex::new(Served {
                            recent: [version.stats.clone()].into(),
                            retired: None,
                        }),
                        current: ArcSwapOption::from_pointee(version),
                        available: tokio::sync::watch::Sender::new(true),
                        published: Mutex::new(published),
                        feed: Mutex::new(feed),
                        withdrawn: Mutex::new(Vec::new()),
                        adopted: Mutex::new(None),
                        lifecycle,
                        swapping: Mutex::new(()),
                    }));
                }
                Err(e) => {
                    lifecycle.record(&v, "rejected", Detail::reason(e.to_string()));
                    tracing::error!(%file, reason = %e, "model rejected");
                    reasons.push(e.to_string());
                }
            }
        }
        let error = ModelError::NoVersion {
            name: source.name.clone(),
            folder: match &source.topic {
                Some(t) => format!("Kafka topic {}", t.topic),
                None => source.folder.display().to_string(),
            },
            reasons,
        };
        if !wait {
            return Err(error);
        }
        tracing::error!(reason = %error, "waiting for a usable model version to arrive");
        Ok(Arc::new(ModelRegistry {
            source,
            expect,
            sessions,
            served: Mutex::new(Served::default()),
            current: ArcSwapOption::empty(),
            available: tokio::sync::watch::Sender::new(false),
            published: Mutex::new(published),
            feed: Mutex::new(feed),
            withdrawn: Mutex::new(Vec::new()),
            adopted: Mutex::new(None),
            lifecycle,
            swapping: Mutex::new(()),
        }))
    }

    /// The lifecycle of this model's versions.
    pub fn lifecycle(&self) -> &Lifecycle {
        &self.lifecycle
    }

    /// The folder its versions come from, or `None` when they come from a model topic.
    pub fn folder(&self) -> Option<&std::path::Path> {
        self.source.topic.is_none().then_some(self.source.folder.as_path())
    }

    /// The folder `location`s resolve against (descriptors from a topic included).
    pub fn folder_of_locations(&self) -> &std::path::Path {
        &self.source.folder
    }

    /// The model topic its versions come from, if they do.
    pub fn model_topic(&self) -> Option<&ModelTopic> {
        self.source.topic.as_ref()
    }

    /// The version the configuration pins, if any.
    pub fn pinned(&self) -> Option<&str> {
        self.source.pinned.as_deref()
    }

    /// The versions published on the model topic that this reader keeps (the highest ones).
    pub fn published_versions(&self) -> Vec<String> {
        let published = self.published.lock().unwrap_or_else(|p| p.into_inner());
        published.iter().map(|d| d.version.clone()).collect()
    }

    /// Whether a candidate version passes every check this registry's versions must pass
    /// (checksum, loading in ONNX Runtime, the scorer's inputs and outputs). Blocking.
    pub fn check(&self, candidate: ModelDescriptor) -> Result<(), ModelError> {
        ModelVersion::load(candidate, &self.expect, 1).map(|_| ())
    }

    /// Whether a version serves.
    pub fn has_model(&self) -> bool {
        *self.available.borrow()
    }

    /// Waits until a version serves.
    pub async fn ready(&self) {
        let mut available = self.available.subscribe();
        let _ = available.wait_for(|a| *a).await;
    }

    /// The model's name.
    pub fn name(&self) -> &str {
        &self.source.name
    }

    fn lock_served(&self) -> std::sync::MutexGuard<'_, Served> {
        self.served.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The version serving now, if one does. A batch takes it once, so it is scored by one version.
    pub fn current(&self) -> Option<Arc<ModelVersion>> {
        self.current.load_full()
    }

    /// Reads the candidates again and swaps in the best version that passes its checks, if it
    /// is not the one serving. Candidates better than the serving one that fail are rejected
    /// (the error is the last such rejection when none passed). Blocking. Returns the new
    /// version when there was a swap.
    pub fn refresh(&self) -> Result<Option<Arc<ModelVersion>>, ModelError> {
        let _swapping = self.swapping.lock().unwrap_or_else(|p| p.into_inner());
        self.refresh_held()
    }

    fn refresh_held(&self) -> Result<Option<Arc<ModelVersion>>, ModelError> {
        let published = self.published.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let pin = self.adopted.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let pin = pin.or_else(|| self.source.pinned.clone());
        let (candidates, problems) = candidates(&self.source, &published, pin.as_deref());
        for p in problems {
            tracing::warn!(reason = %p, "model descriptor skipped");
        }
        let serving = self.current();
        let mut rejected = None;
        let withdrawn = self.withdrawn.lock().unwrap_or_else(|p| p.into_inner()).clone();
        for candidate in candidates {
            if withdrawn
                .iter()
                .any(|(v, sha)| *v == candidate.version && sha.eq_ignore_ascii_case(&candidate.sha256))
            {
                continue;
            }
            let same = serving.as_ref().is_some_and(|s| {
                candidate.version == s.descriptor.version && candidate.sha256.eq_ignore_ascii_case(&s.descriptor.sha256)
            });
            if same {
                break;
            }
            self.lifecycle.saw(&candidate.version, &candidate.sha256);
            let (v, sha) = (candidate.version.clone(), candidate.sha256.clone());
            match ModelVersion::load(candidate, &self.expect, self.sessions) {
                Ok(version) => {
                    let version = Arc::new(version);
                    self.lifecycle.record(&v, "loaded", Detail::sha(&sha));
                    self.swap_in(version.clone(), serving);
                    return Ok(Some(version));
                }
                Err(e) => {
                    self.lifecycle.record(&v, "rejected", Detail::reason(e.to_string()));
                    // Each rejection is logged once: the last by the caller.
                    if let Some(previous) = rejected.replace(e) {
                        tracing::error!(reason = %previous, "model rejected");
                    }
                }
            }
        }
        match rejected {
            Some(e) => Err(e),
            None => Ok(None),
        }
    }

    /// Makes a loaded version the one serving in place of `serving`, and says so.
    fn swap_in(&self, version: Arc<ModelVersion>, serving: Option<Arc<ModelVersion>>) {
        let v = &version.descriptor.version;
        if let Some(old) = &serving {
            self.lifecycle.record(
                &old.descriptor.version,
                "retired",
                Detail::reason(format!("version {v} serves instead")),
            );
        }
        let why = match &serving {
            Some(old) => format!("replaces version {}", old.descriptor.version),
            None => "the first version that passes its checks".to_string(),
        };
        self.lifecycle.record(v, "serving", Detail::reason(why));
        self.lock_served().push(version.stats.clone());
        self.current.store(Some(version.clone()));
        self.available.send_replace(true);
        tracing::info!(
            model = %version.descriptor.name,
            from = %serving.map_or("none".to_string(), |s| s.descriptor.version.clone()),
            to = %version.descriptor.version,
            sha256 = %version.short_sha,
            "model swapped"
        );
    }

    /// Rolls the serving version back, if it is `expected`: it is withdrawn (never a candidate again, until the
    /// process restarts) and the best earlier version that passes its checks serves instead.
    /// When none does, the serving version goes on and the error says why. Blocking.
    pub fn roll_back(&self, expected: &str, figures: serde_json::Value) -> Result<(String, String), ModelError> {
        let _swapping = self.swapping.lock().unwrap_or_else(|p| p.into_inner());
        let Some(serving) = self.current() else {
            return Err(ModelError::Runtime("no version serves: nothing to roll back".into()));
        };
        if serving.descriptor.version != expected {
            return Err(ModelError::Runtime(format!(
                "version {expected} no longer serves (version {} does)",
                serving.descriptor.version
            )));
        }
        let key = (serving.descriptor.version.clone(), serving.descriptor.sha256.clone());
        self.lifecycle
            .record(&serving.descriptor.version, "rolled_back", Detail::figures(figures));
        // A version adopted by a promotion goes back to what the configuration says.
        let adopted = {
            let mut adopted = self.adopted.lock().unwrap_or_else(|p| p.into_inner());
            if adopted.as_deref() == Some(serving.descriptor.version.as_str()) {
                adopted.take()
            } else {
                None
            }
        };
        self.withdrawn
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(key.clone());
        let refreshed = self.refresh_held();
        let restored = |reason: String| {
            self.withdrawn
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .retain(|w| *w != key);
            if adopted.is_some() {
                *self.adopted.lock().unwrap_or_else(|p| p.into_inner()) = adopted.clone();
            }
            self.lifecycle.record(
                &serving.descriptor.version,
                "rollback_failed",
                Detail::reason(format!("{reason}: it serves on")),
            );
            ModelError::Runtime(reason)
        };
        match refreshed {
            Ok(Some(earlier)) => Ok((serving.descriptor.version.clone(), earlier.descriptor.version.clone())),
            Ok(None) => Err(restored(format!(
                "no earlier version of `{}` to roll back to (a pinned version has none)",
                self.name()
            ))),
            Err(e) => Err(restored(format!("no earlier version of `{}` loads: {e}", self.name()))),
        }
    }

    /// Whether this model's versions and `other`'s are the same: one name, from one folder or
    /// one model topic.
    pub fn same_versions_as(&self, other: &ModelRegistry) -> bool {
        self.source.name == other.source.name
            && self.source.folder == other.source.folder
            && self.source.topic == other.source.topic
    }

    /// The descriptor of `version`: the one serving, or one of the candidates (the configured
    /// pin aside).
    pub fn descriptor_of(&self, version: &str) -> Option<ModelDescriptor> {
        if let Some(current) = self.current().filter(|c| c.descriptor.version == version) {
            return Some(current.descriptor.clone());
        }
        let published = self.published.lock().unwrap_or_else(|p| p.into_inner()).clone();
        candidates(&self.source, &published, Some(version)).0.into_iter().next()
    }

    /// Serves the version `descriptor` describes from now on, in place of the configuration's
    /// pin or the newest: a promotion of the version another model of the scorer served and
    /// was judged on. The serving version goes on when it does not load. Blocking.
    pub fn adopt(&self, descriptor: ModelDescriptor, figures: serde_json::Value) -> Result<(), ModelError> {
        let _swapping = self.swapping.lock().unwrap_or_else(|p| p.into_inner());
        let v = descriptor.version.clone();
        let withdrawn = self
            .withdrawn
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .any(|(w, sha)| *w == v && sha.eq_ignore_ascii_case(&descriptor.sha256));
        if withdrawn {
            return Err(ModelError::Runtime(format!(
                "version {v} of `{}` was rolled back: it is not taken again",
                self.name()
            )));
        }
        let serving = self.current();
        let same = serving
            .as_ref()
            .is_some_and(|s| s.descriptor.version == v && s.descriptor.sha256.eq_ignore_ascii_case(&descriptor.sha256));
        if !same {
            self.lifecycle.saw(&v, &descriptor.sha256);
            let sha = descriptor.sha256.clone();
            let version = ModelVersion::load(descriptor, &self.expect, self.sessions).inspect_err(|e| {
                self.lifecycle.record(&v, "rejected", Detail::reason(e.to_string()));
            })?;
            self.lifecycle.record(&v, "loaded", Detail::sha(&sha));
            self.swap_in(Arc::new(version), serving);
            self.lifecycle.record(&v, "promoted", Detail::figures(figures));
        }
        *self.adopted.lock().unwrap_or_else(|p| p.into_inner()) = Some(v);
        Ok(())
    }

    /// Watches the folder (or follows the model topic) and refreshes after each burst of
    /// changes (each descriptor published), until `stop`.
    pub fn watch(self: Arc<Self>, stop: CancellationToken) -> Result<tokio::task::JoinHandle<()>, ModelError> {
        let feed = self.feed.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(feed) = feed {
            return Ok(tokio::task::spawn_blocking(move || self.follow(feed, stop)));
        }
        let mut watch = FileWatch::folder(&self.source.folder)
            .map_err(|e| ModelError::Runtime(format!("cannot watch for models: {e}")))?
            .quiet_for(DEBOUNCE);
        Ok(tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    changed = watch.changed() => if changed.is_none() { break },
                }
                let registry = self.clone();
                let refreshed = tokio::task::spawn_blocking(move || {
                    let refreshed = registry.refresh();
                    crate::c_heap::release_free();
                    refreshed
                });
                match refreshed.await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => {
                        tracing::error!(reason = %e, "model rejected; the serving version goes on")
                    }
                    Err(e) => tracing::error!(reason = %e, "model refresh stopped abnormally"),
                }
            }
        }))
    }

    /// Follows the model topic: each descriptor of this model published is a candidate; the
    /// best one is loaded, checked and swapped in. Blocking, until `stop`.
    fn follow(&self, feed: Feed, stop: CancellationToken) {
        while !stop.is_cancelled() {
            let Some(descriptor) = feed.next(Duration::from_millis(200)) else {
                continue;
            };
            tracing::info!(model = %descriptor.name, version = %descriptor.version, "model version published");
            remember(
                &self.source,
                &mut self.published.lock().unwrap_or_else(|p| p.into_inner()),
                descriptor,
            );
            if let Err(e) = self.refresh() {
                tracing::error!(reason = %e, "model rejected; the serving version goes on");
            }
            crate::c_heap::release_free();
        }
    }

    /// Statistics of the versions that served, oldest first: the retired ones together (as
    /// version `retired`) when there are any, then each of the last [`KEEP_VERSIONS`].
    pub fn stats(&self) -> Vec<ModelStatsSummary> {
        let served = self.lock_served();
        let retired = served.retired.as_ref().map(Retired::summary);
        let mut stats: Vec<ModelStatsSummary> = retired
            .into_iter()
            .chain(served.recent.iter().map(|s| s.summary()))
            .collect();
        let current = self.current().map(|m| m.descriptor.version.clone());
        if let Some(now) = stats.iter_mut().rev().find(|s| Some(&s.version) == current.as_ref()) {
            now.serving = true;
        }
        stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statistics_of_old_versions_are_folded_into_one_aggregate() {
        let mut served = Served::default();
        for v in 1..=25u64 {
            let stats = Arc::new(ModelStats::new("m", &v.to_string(), "abc"));
            for _ in 0..v {
                stats.record_call(2, 10 * v, 7_000 * v);
            }
            served.push(stats);
        }
        assert_eq!(served.recent.len(), KEEP_VERSIONS);
        let retired = served.retired.as_ref().expect("an aggregate");
        assert_eq!(retired.versions(), 15);
        let summary = retired.summary();
        assert_eq!(summary.version, crate::models::stats::RETIRED);
        // Versions 1..=15 made v calls each of 2 records.
        assert_eq!(summary.invocations, (1..=15).sum::<u64>());
        assert_eq!(summary.records, 2 * (1..=15).sum::<u64>());
        assert_eq!(summary.latency_us.min, 10);
        assert_eq!(summary.latency_us.max, 150);
        assert_eq!(summary.cpu_us, (1..=15).map(|v| 7 * v * v).sum::<u64>());
        let kept: Vec<String> = served.recent.iter().map(|s| s.summary().version).collect();
        assert_eq!(kept, (16..=25).map(|v| v.to_string()).collect::<Vec<_>>());
    }

    #[test]
    fn a_model_topic_keeps_the_latest_message_of_the_highest_versions() {
        let source = |pinned: Option<&str>| Source {
            name: "m".into(),
            folder: PathBuf::from("."),
            pinned: pinned.map(str::to_string),
            topic: None,
        };
        let descriptor = |version: u64, sha: &str| {
            let mut d: ModelDescriptor = serde_json::from_value(serde_json::json!({
                "name": "m", "version": version.to_string(), "format": "onnx",
                "location": "m.onnx", "sha256": sha,
            }))
            .expect("descriptor");
            d.file = PathBuf::from(format!("v{version}"));
            d
        };
        let mut published = Vec::new();
        for v in 1..=30 {
            remember(&source(None), &mut published, descriptor(v, "aa"));
        }
        remember(&source(None), &mut published, descriptor(30, "bb"));
        let mut versions: Vec<String> = published.iter().map(|d| d.version.clone()).collect();
        versions.sort_by(|a, b| compare_versions(a, b));
        assert_eq!(versions, (21..=30).map(|v| v.to_string()).collect::<Vec<_>>());
        assert_eq!(published.iter().filter(|d| d.version == "30").count(), 1);
        assert!(published.iter().any(|d| d.version == "30" && d.sha256 == "bb"));
        // With a pin, only the pinned version is a candidate at all.
        let mut pinned = Vec::new();
        for v in 1..=30 {
            remember(&source(Some("3")), &mut pinned, descriptor(v, "aa"));
        }
        assert_eq!(pinned.len(), 1);
        assert_eq!(pinned[0].version, "3");
    }
}
