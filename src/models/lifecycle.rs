//! The lifecycle of a model's versions, as events in order: a version seen, rejected (why),
//! loaded, serving, retired, promoted or rolled back (with the figures that decided it). A
//! scorer writes them on its `audit` outlet and `/api/models` shows them, so it is clear why
//! a version was serving at any moment.

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;

use serde::Serialize;

/// How many events a model keeps (the oldest go first).
pub const KEEP_EVENTS: usize = 1000;

/// One event of a model version's life.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LifecycleEvent {
    /// Its place in the model's history, from 1.
    pub seq: u64,
    /// When, RFC 3339.
    pub at: String,
    pub model: String,
    pub version: String,
    /// `seen`, `rejected`, `loaded`, `serving`, `retired`, `promoted`, `rolled_back` or
    /// `rollback_failed` (no earlier version could serve: the version serves on).
    pub event: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// What decided a promotion or a rollback.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub figures: Option<serde_json::Value>,
    /// The strategy's id of the model whose version this is (set where a scorer reports its
    /// models' histories together).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arm: Option<String>,
}

/// The events of one model, and a signal when there are new ones.
pub struct Lifecycle {
    model: String,
    events: Mutex<VecDeque<LifecycleEvent>>,
    seen: Mutex<HashSet<(String, String)>>,
    latest: tokio::sync::watch::Sender<u64>,
}

impl Lifecycle {
    pub fn new(model: &str) -> Lifecycle {
        Lifecycle {
            model: model.to_string(),
            events: Mutex::new(VecDeque::new()),
            seen: Mutex::new(HashSet::new()),
            latest: tokio::sync::watch::Sender::new(0),
        }
    }

    /// Records an event of `version`.
    pub fn record(&self, version: &str, event: &'static str, detail: Detail) {
        let mut events = self.events.lock().unwrap_or_else(|p| p.into_inner());
        let seq = *self.latest.borrow() + 1;
        if events.len() == KEEP_EVENTS {
            events.pop_front();
        }
        events.push_back(LifecycleEvent {
            seq,
            at: humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
            model: self.model.clone(),
            version: version.to_string(),
            event,
            reason: detail.reason,
            sha256: detail.sha256,
            figures: detail.figures,
            arm: None,
        });
        self.latest.send_replace(seq);
    }

    /// Records that a version (by its checksum) was seen, the first time only.
    pub fn saw(&self, version: &str, sha256: &str) {
        let first = self
            .seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((version.to_string(), sha256.to_ascii_lowercase()));
        if first {
            self.record(version, "seen", Detail::sha(sha256));
        }
    }

    /// The events after `seq`, oldest first.
    pub fn since(&self, seq: u64) -> Vec<LifecycleEvent> {
        let events = self.events.lock().unwrap_or_else(|p| p.into_inner());
        events.iter().filter(|e| e.seq > seq).cloned().collect()
    }

    /// Every event kept, oldest first.
    pub fn history(&self) -> Vec<LifecycleEvent> {
        self.since(0)
    }

    /// Changes to the latest event's `seq`.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.latest.subscribe()
    }
}

/// What an event says beyond its kind.
#[derive(Debug, Clone, Default)]
pub struct Detail {
    pub reason: Option<String>,
    pub sha256: Option<String>,
    pub figures: Option<serde_json::Value>,
}

impl Detail {
    pub fn sha(sha256: &str) -> Detail {
        Detail {
            sha256: Some(sha256.to_string()),
            ..Detail::default()
        }
    }

    pub fn reason(reason: impl Into<String>) -> Detail {
        Detail {
            reason: Some(reason.into()),
            ..Detail::default()
        }
    }

    pub fn figures(figures: serde_json::Value) -> Detail {
        Detail {
            figures: Some(figures),
            ..Detail::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_kept_in_order_and_a_version_is_seen_once() {
        let life = Lifecycle::new("m");
        life.saw("1", "ABC");
        life.saw("1", "abc");
        life.record("1", "loaded", Detail::default());
        life.record("1", "serving", Detail::reason("the first version"));
        let kinds: Vec<&str> = life.history().iter().map(|e| e.event).collect();
        assert_eq!(kinds, ["seen", "loaded", "serving"]);
        assert_eq!(life.since(2).len(), 1);
        assert_eq!(*life.subscribe().borrow(), 3);
    }

    #[test]
    fn the_history_is_bounded() {
        let life = Lifecycle::new("m");
        for i in 0..(KEEP_EVENTS + 5) {
            life.record(&i.to_string(), "seen", Detail::default());
        }
        let history = life.history();
        assert_eq!(history.len(), KEEP_EVENTS);
        assert_eq!(history[0].seq, 6);
    }
}
