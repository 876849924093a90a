//! What changed over time: the last 15 minutes of a running pipeline, sampled every second
//! and kept in the process (at most [`KEEP`] points a series, so memory is bounded whatever
//! runs). The live page draws it and `/api/history` serves it: per streamlet records/s in and
//! out, errors/s and batch time p50/p99, per edge how full its channel is, per Kafka source its lag, per model
//! version its records/s and mean latency, per validator watching drift each field's PSI and
//! out-of-range rate with the thresholds, and health events (a streamlet turning warning or
//! critical, and back).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::runtime::{Handle, Status};

/// How often the pipeline is sampled.
pub const EVERY: Duration = Duration::from_secs(1);
/// Points kept per series: 15 minutes at one a second.
pub const KEEP: usize = 900;
/// Health events kept.
pub const KEEP_EVENTS: usize = 500;

/// A series of `[unix seconds, value]` points, oldest first.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Series(VecDeque<(f64, f64)>);

impl Series {
    fn push(&mut self, t: f64, v: f64) {
        if self.0.len() == KEEP {
            self.0.pop_front();
        }
        self.0.push_back((t, v));
    }

    pub fn points(&self) -> impl Iterator<Item = &(f64, f64)> {
        self.0.iter()
    }

    /// Whether its last point is before `t` (or it has none).
    fn ended_before(&self, t: f64) -> bool {
        self.0.back().is_none_or(|(last, _)| *last < t)
    }
}

/// A streamlet's rates.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StreamletSeries {
    pub kind: String,
    pub in_per_s: Series,
    pub out_per_s: Series,
    pub errors_per_s: Series,
    /// Time spent on a batch over the interval, ms (points only where batches were taken).
    pub batch_ms_p50: Series,
    pub batch_ms_p99: Series,
}

/// A model version's records/s and mean latency (µs) per interval.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ModelSeries {
    pub scorer: String,
    pub model: String,
    pub version: String,
    pub records_per_s: Series,
    pub latency_us_mean: Series,
}

/// A field's drift figures, with the thresholds they are held to.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DriftSeries {
    pub validator: String,
    pub field: String,
    pub psi: Series,
    pub out_of_range_rate: Series,
    pub psi_threshold: f64,
    pub out_of_range_threshold: f64,
}

/// A streamlet's health changing.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HealthEvent {
    pub at: String,
    pub streamlet: String,
    pub from: &'static str,
    pub to: &'static str,
    pub reason: Option<String>,
}

/// Everything kept.
#[derive(Debug, Clone, Default, Serialize)]
pub struct History {
    pub interval_s: f64,
    pub keep_points: usize,
    pub streamlets: BTreeMap<String, StreamletSeries>,
    /// By `from.port->to`: batches queued over the channel's capacity (0 to 1).
    pub edges: BTreeMap<String, Series>,
    /// By `streamlet topic`: messages not yet read, over its partitions.
    pub lag: BTreeMap<String, Series>,
    /// By `scorer model version`.
    pub models: BTreeMap<String, ModelSeries>,
    /// By `validator field`.
    pub drift: BTreeMap<String, DriftSeries>,
    pub health_events: VecDeque<HealthEvent>,
}

/// What the previous sample saw, for rates.
#[derive(Default)]
struct Previous {
    at: Option<f64>,
    counts: HashMap<String, (u64, u64, u64)>,
    models: HashMap<String, (u64, u64, f64)>,
    health: HashMap<String, &'static str>,
}

/// The history of one pipeline, filled by [`Recorder::follow`] (or [`Recorder::sample`] by hand).
#[derive(Clone, Default)]
pub struct Recorder {
    history: Arc<Mutex<History>>,
    previous: Arc<Mutex<Previous>>,
}

fn unix_seconds(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| (d.as_millis() as f64) / 1000.0)
}

impl Recorder {
    /// A copy of what is kept.
    pub fn snapshot(&self) -> History {
        self.history.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Takes one sample of `status` and of the batch times since the last sample
    /// (`(streamlet, p50 µs, p99 µs, batches)`), made at `now`.
    pub fn sample(&self, status: &Status, batch_times: &[(String, u64, u64, u64)], now: SystemTime) {
        let t = unix_seconds(now);
        let mut previous = self.previous.lock().unwrap_or_else(|p| p.into_inner());
        let mut h = self.history.lock().unwrap_or_else(|p| p.into_inner());
        h.interval_s = EVERY.as_secs_f64();
        h.keep_points = KEEP;
        let elapsed = previous.at.map(|p| (t - p).max(1e-3));
        for s in &status.streamlets {
            let errors = s.errors();
            let out: u64 = s.outlets.iter().map(|o| o.records).sum::<u64>() - errors;
            let now_counts = (s.records_in, out, errors);
            let before = previous.counts.insert(s.name.clone(), now_counts);
            let series = h.streamlets.entry(s.name.clone()).or_default();
            series.kind = s.kind.clone();
            if let (Some(dt), Some(b)) = (elapsed, before) {
                // A streamlet replaced by a reload counts from 0 again.
                let rate = |now: u64, was: u64| now.saturating_sub(was) as f64 / dt;
                series.in_per_s.push(t, rate(now_counts.0, b.0));
                series.out_per_s.push(t, rate(now_counts.1, b.1));
                series.errors_per_s.push(t, rate(now_counts.2, b.2));
            }
            if !s.lag.is_empty() {
                let mut by_topic: BTreeMap<&str, i64> = BTreeMap::new();
                for (topic, _, lag) in &s.lag {
                    *by_topic.entry(topic).or_default() += lag;
                }
                for (topic, lag) in by_topic {
                    h.lag
                        .entry(format!("{} {topic}", s.name))
                        .or_default()
                        .push(t, lag as f64);
                }
            }
            // A version served by several models of the scorer (two arms of one folder) is
            // counted once, all its answers together.
            let mut versions: BTreeMap<(&str, &str), (u64, u64, f64)> = BTreeMap::new();
            for m in &s.models {
                let v = versions.entry((m.name.as_str(), m.version.as_str())).or_default();
                v.0 += m.records;
                v.1 += m.invocations;
                v.2 += m.latency_us.mean * m.invocations as f64;
            }
            for ((name, version), (records, invocations, total_us)) in versions {
                let key = format!("{} {name} {version}", s.name);
                let before = previous.models.insert(key.clone(), (records, invocations, total_us));
                let series = h.models.entry(key).or_insert_with(|| ModelSeries {
                    scorer: s.name.clone(),
                    model: name.to_string(),
                    version: version.to_string(),
                    ..ModelSeries::default()
                });
                if let (Some(dt), Some((records_before, invocations_before, total_before))) = (elapsed, before) {
                    series
                        .records_per_s
                        .push(t, records.saturating_sub(records_before) as f64 / dt);
                    let calls = invocations.saturating_sub(invocations_before);
                    if calls > 0 {
                        series
                            .latency_us_mean
                            .push(t, ((total_us - total_before) / calls as f64).max(0.0));
                    }
                }
            }
            for g in &s.drift {
                let series = h
                    .drift
                    .entry(format!("{} {}", s.name, g.field))
                    .or_insert_with(|| DriftSeries {
                        validator: s.name.clone(),
                        field: g.field.clone(),
                        ..DriftSeries::default()
                    });
                series.psi.push(t, g.psi);
                series.out_of_range_rate.push(t, g.out_of_range_rate);
                series.psi_threshold = g.psi_threshold;
                series.out_of_range_threshold = g.out_of_range_threshold;
            }
        }
        for (name, p50, p99, batches) in batch_times {
            if let (Some(series), true) = (h.streamlets.get_mut(name), *batches > 0) {
                series.batch_ms_p50.push(t, *p50 as f64 / 1000.0);
                series.batch_ms_p99.push(t, *p99 as f64 / 1000.0);
            }
        }
        for e in &status.edges {
            let fill = if e.capacity == 0 {
                0.0
            } else {
                e.queued as f64 / e.capacity as f64
            };
            h.edges
                .entry(format!("{}.{}->{}", e.from, e.port, e.to))
                .or_default()
                .push(t, fill);
        }
        let (_, health) = super::admin::health(status);
        let at = humantime::format_rfc3339_millis(now).to_string();
        for s in health {
            let was = previous.health.insert(s.name.clone(), s.status);
            let from = was.unwrap_or("healthy");
            if from != s.status {
                if h.health_events.len() == KEEP_EVENTS {
                    h.health_events.pop_front();
                }
                h.health_events.push_back(HealthEvent {
                    at: at.clone(),
                    streamlet: s.name,
                    from,
                    to: s.status,
                    reason: s.reason,
                });
            }
        }
        previous.at = Some(t);
        // What the previous sample saw of streamlets and versions no longer there goes.
        let names: std::collections::HashSet<&str> = status.streamlets.iter().map(|s| s.name.as_str()).collect();
        previous.counts.retain(|name, _| names.contains(name.as_str()));
        previous.health.retain(|name, _| names.contains(name.as_str()));
        let versions: std::collections::HashSet<String> = status
            .streamlets
            .iter()
            .flat_map(|s| {
                s.models
                    .iter()
                    .map(move |m| format!("{} {} {}", s.name, m.name, m.version))
            })
            .collect();
        previous.models.retain(|key, _| versions.contains(key));
        // What has had no point for the whole span kept (a version retired long ago, a
        // streamlet a reload removed) goes: the series stay as few as what runs.
        let horizon = t - EVERY.as_secs_f64() * KEEP as f64;
        h.streamlets
            .retain(|_, s| !s.in_per_s.ended_before(horizon) || !s.out_per_s.ended_before(horizon));
        h.edges.retain(|_, s| !s.ended_before(horizon));
        h.lag.retain(|_, s| !s.ended_before(horizon));
        h.models.retain(|_, m| !m.records_per_s.ended_before(horizon));
        h.drift.retain(|_, d| !d.psi.ended_before(horizon));
    }

    /// Samples `handle` every [`EVERY`] until `stop`.
    pub async fn follow(self, handle: Handle, stop: tokio_util::sync::CancellationToken) {
        let mut tick = tokio::time::interval(EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tick.tick() => self.sample(&handle.status(), &handle.take_batch_times(), SystemTime::now()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::{OutletSummary, StreamletStatus};

    fn status(streamlets: &[(&str, u64)]) -> Status {
        Status {
            streamlets: streamlets
                .iter()
                .map(|(name, n)| StreamletStatus {
                    name: name.to_string(),
                    kind: "merger".into(),
                    instance: 1,
                    running: true,
                    failure: None,
                    models_ready: None,
                    records_in: *n,
                    outlets: vec![OutletSummary {
                        port: "out".into(),
                        records: *n,
                        discarded: false,
                    }],
                    models: Vec::new(),
                    strategy: None,
                    quality: None,
                    history: Vec::new(),
                    counters: Default::default(),
                    lag: Vec::new(),
                    drift: Vec::new(),
                })
                .collect(),
            ..Status::default()
        }
    }

    #[test]
    fn rates_are_per_second_and_what_stopped_long_ago_goes() {
        let recorder = Recorder::default();
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let at = |s: u64| start + Duration::from_secs(s);
        recorder.sample(&status(&[("a", 0), ("gone", 0)]), &[], at(0));
        recorder.sample(&status(&[("a", 500), ("gone", 10)]), &[], at(2));
        let h = recorder.snapshot();
        let rates: Vec<f64> = h.streamlets["a"].in_per_s.points().map(|p| p.1).collect();
        assert_eq!(rates, [250.0]);
        // `gone` is removed by a reload; the series lives on for the span kept, then goes.
        for s in 3..=(KEEP as u64 + 2) {
            recorder.sample(&status(&[("a", 500 + s)]), &[], at(s));
        }
        assert!(recorder.snapshot().streamlets.contains_key("gone"));
        recorder.sample(&status(&[("a", 2000)]), &[], at(KEEP as u64 + 3));
        let h = recorder.snapshot();
        assert!(
            !h.streamlets.contains_key("gone"),
            "{:?}",
            h.streamlets.keys().collect::<Vec<_>>()
        );
        assert_eq!(
            h.streamlets["a"].in_per_s.points().count(),
            KEEP,
            "at most KEEP points a series"
        );
    }
}
