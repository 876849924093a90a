//! The join of predictions with their labels, by key, bounded by time and by count.
//!
//! A prediction waits for its label, and a label for its prediction (labels may come first),
//! at most `max_wait`; at most `max_pending` keys wait at once, the oldest going first. A
//! label joins every prediction of its key, one per model (a shadow's answer and the
//! primary's, say); after joining, the key is remembered until its time is up, so a second
//! label for it counts as a duplicate rather than waiting for a prediction that came already.
//! Everything dropped is counted, by why.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// A prediction waiting for its label: which model answered (an index the caller keeps), the
/// answer, and when it came.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    pub model: usize,
    pub answer: f64,
    /// The fields of the scored record the joined pair carries (its features, say).
    pub carried: Option<Carried>,
}

/// Fields of a record, kept with its prediction until it joins.
pub type Carried = std::sync::Arc<serde_json::Map<String, serde_json::Value>>;

/// A prediction joined with its truth.
#[derive(Debug, Clone, PartialEq)]
pub struct Joined {
    pub key: String,
    pub model: usize,
    pub answer: f64,
    pub truth: f64,
    /// How long the first of the two waited for the other.
    pub waited: Duration,
    pub carried: Option<Carried>,
}

/// What the join dropped or ignored.
pub use crate::models::quality::JoinCounts as Dropped;

#[derive(Debug)]
struct Entry {
    since: Instant,
    /// Predictions waiting for the label.
    waiting: Vec<Prediction>,
    /// The models that answered for this key, joined or waiting.
    answered: Vec<usize>,
    truth: Option<f64>,
    /// Whether anything joined for this key.
    joined: bool,
    /// Tells this entry from a later one of the same key in `order`.
    generation: u64,
}

/// The join buffer.
#[derive(Debug)]
pub struct Join {
    max_wait: Duration,
    max_pending: usize,
    entries: HashMap<String, Entry>,
    /// Keys by when their entry began, oldest first.
    order: VecDeque<(Instant, String, u64)>,
    generation: u64,
    pub dropped: Dropped,
    /// Expired or evicted predictions per model, for the model's own counts.
    pub expired_by_model: HashMap<usize, u64>,
}

impl Join {
    pub fn new(max_wait: Duration, max_pending: usize) -> Join {
        Join {
            max_wait,
            max_pending: max_pending.max(1),
            entries: HashMap::new(),
            order: VecDeque::new(),
            generation: 0,
            dropped: Dropped::default(),
            expired_by_model: HashMap::new(),
        }
    }

    /// Predictions waiting for their labels, per model.
    pub fn waiting_predictions(&self) -> HashMap<usize, u64> {
        let mut waiting = HashMap::new();
        for entry in self.entries.values() {
            for p in &entry.waiting {
                *waiting.entry(p.model).or_default() += 1;
            }
        }
        waiting
    }

    /// Labels waiting for their predictions.
    pub fn waiting_labels(&self) -> u64 {
        self.entries.values().filter(|e| e.truth.is_some() && !e.joined).count() as u64
    }

    /// Keys held (waiting, or remembered after joining).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn entry(&mut self, key: &str, now: Instant) -> &mut Entry {
        if !self.entries.contains_key(key) {
            self.generation += 1;
            self.order.push_back((now, key.to_string(), self.generation));
            self.entries.insert(
                key.to_string(),
                Entry {
                    since: now,
                    waiting: Vec::new(),
                    answered: Vec::new(),
                    truth: None,
                    joined: false,
                    generation: self.generation,
                },
            );
        }
        self.entries.get_mut(key).expect("just inserted")
    }

    /// A prediction arrives: joined at once if its label is there.
    pub fn predict(&mut self, key: &str, prediction: Prediction, now: Instant) -> Option<Joined> {
        self.expire(now);
        let entry = self.entry(key, now);
        if entry.answered.contains(&prediction.model) {
            self.dropped.duplicate_predictions += 1;
            return None;
        }
        entry.answered.push(prediction.model);
        let joined = match entry.truth {
            Some(truth) => {
                entry.joined = true;
                Some(Joined {
                    key: key.to_string(),
                    model: prediction.model,
                    answer: prediction.answer,
                    truth,
                    waited: now.saturating_duration_since(entry.since),
                    carried: prediction.carried,
                })
            }
            None => {
                entry.waiting.push(prediction);
                None
            }
        };
        self.bound();
        joined
    }

    /// A label arrives: joins every prediction of its key waiting for it.
    pub fn label(&mut self, key: &str, truth: f64, now: Instant) -> Vec<Joined> {
        self.expire(now);
        let entry = self.entry(key, now);
        if entry.truth.is_some() {
            self.dropped.duplicate_labels += 1;
            return Vec::new();
        }
        entry.truth = Some(truth);
        let waited = now.saturating_duration_since(entry.since);
        let joined: Vec<Joined> = entry
            .waiting
            .drain(..)
            .map(|p| Joined {
                key: key.to_string(),
                model: p.model,
                answer: p.answer,
                truth,
                waited,
                carried: p.carried,
            })
            .collect();
        if !joined.is_empty() {
            entry.joined = true;
        }
        self.bound();
        joined
    }

    /// Drops what waited longer than `max_wait`.
    pub fn expire(&mut self, now: Instant) {
        while let Some((since, _, _)) = self.order.front() {
            if now.saturating_duration_since(*since) < self.max_wait {
                break;
            }
            self.drop_oldest(false);
        }
    }

    /// Drops the oldest keys while more than `max_pending` are held.
    fn bound(&mut self) {
        while self.entries.len() > self.max_pending {
            self.drop_oldest(true);
        }
    }

    fn drop_oldest(&mut self, evicting: bool) {
        let Some((_, key, generation)) = self.order.pop_front() else {
            return;
        };
        let current = self.entries.get(&key).is_some_and(|e| e.generation == generation);
        if !current {
            return;
        }
        let Some(entry) = self.entries.remove(&key) else {
            return;
        };
        for p in &entry.waiting {
            *self.expired_by_model.entry(p.model).or_default() += 1;
        }
        let lost_label = entry.truth.is_some() && !entry.joined;
        let lost = entry.waiting.len() as u64 + u64::from(lost_label);
        if evicting {
            self.dropped.evicted += lost;
        } else {
            self.dropped.expired_predictions += entry.waiting.len() as u64;
            self.dropped.expired_labels += u64::from(lost_label);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(model: usize, answer: f64) -> Prediction {
        Prediction {
            model,
            answer,
            carried: None,
        }
    }

    #[test]
    fn a_label_after_its_prediction_and_one_before_both_join() {
        let t = Instant::now();
        let mut join = Join::new(Duration::from_secs(60), 100);
        assert_eq!(join.predict("a", p(0, 0.9), t), None);
        let joined = join.label("a", 1.0, t + Duration::from_secs(5));
        assert_eq!(joined.len(), 1);
        assert_eq!((joined[0].answer, joined[0].truth), (0.9, 1.0));
        assert_eq!(joined[0].waited, Duration::from_secs(5));
        // The label first, then the prediction.
        assert!(join.label("b", 0.0, t).is_empty());
        let late = join
            .predict("b", p(0, 0.2), t + Duration::from_secs(2))
            .expect("joined");
        assert_eq!(
            (late.key.as_str(), late.truth, late.waited),
            ("b", 0.0, Duration::from_secs(2))
        );
        assert_eq!(join.waiting_labels(), 0);
        assert_eq!(join.dropped, Dropped::default());
    }

    #[test]
    fn one_label_joins_each_models_prediction_once() {
        let t = Instant::now();
        let mut join = Join::new(Duration::from_secs(60), 100);
        join.predict("a", p(0, 0.9), t);
        join.predict("a", p(1, 0.4), t);
        assert_eq!(join.waiting_predictions().len(), 2);
        let joined = join.label("a", 1.0, t);
        assert_eq!(joined.iter().map(|j| j.model).collect::<Vec<_>>(), [0, 1]);
        // A model answering again for the key, and a second label, are duplicates.
        assert_eq!(join.predict("a", p(0, 0.8), t), None);
        assert!(join.label("a", 0.0, t).is_empty());
        assert_eq!(join.dropped.duplicate_predictions, 1);
        assert_eq!(join.dropped.duplicate_labels, 1);
        // A third model answering late still joins the label there.
        assert_eq!(join.predict("a", p(2, 0.7), t).map(|j| j.truth), Some(1.0));
    }

    #[test]
    fn what_waits_too_long_expires_and_is_counted() {
        let t = Instant::now();
        let mut join = Join::new(Duration::from_secs(10), 100);
        join.predict("never-labelled", p(3, 0.5), t);
        join.label("never-predicted", 1.0, t);
        join.predict("joined", p(3, 0.5), t);
        join.label("joined", 1.0, t);
        join.expire(t + Duration::from_secs(9));
        assert_eq!(join.len(), 3);
        join.expire(t + Duration::from_secs(10));
        assert!(join.is_empty());
        assert_eq!(join.dropped.expired_predictions, 1);
        assert_eq!(join.dropped.expired_labels, 1);
        assert_eq!(join.expired_by_model.get(&3), Some(&1));
        // A label for the expired key waits anew; it is not a duplicate.
        assert!(join.label("joined", 1.0, t + Duration::from_secs(11)).is_empty());
        assert_eq!(join.dropped.duplicate_labels, 0);
    }

    #[test]
    fn the_oldest_go_first_beyond_the_count_bound() {
        let t = Instant::now();
        let mut join = Join::new(Duration::from_secs(3600), 3);
        for i in 0..10 {
            join.label(&format!("unmatched-{i}"), 1.0, t + Duration::from_millis(i));
        }
        assert_eq!(join.len(), 3);
        assert_eq!(join.dropped.evicted, 7);
        // The newest are the ones kept.
        assert_eq!(
            join.predict("unmatched-9", p(0, 0.3), t + Duration::from_secs(1))
                .map(|j| j.truth),
            Some(1.0)
        );
    }

    #[test]
    fn a_label_stream_that_never_matches_stays_within_the_bound() {
        let t = Instant::now();
        let mut join = Join::new(Duration::from_secs(3600), 1000);
        for i in 0..100_000u64 {
            join.label(&i.to_string(), 0.0, t);
            assert!(join.len() <= 1000);
        }
        assert!(
            join.order.len() <= 1000,
            "the order queue is bounded too: {}",
            join.order.len()
        );
        assert_eq!(join.dropped.evicted, 99_000);
    }
}
