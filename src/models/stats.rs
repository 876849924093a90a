//! Serving statistics of one model version: calls, records, errors, latency (µs, monotonic clock),
//! and the totals of versions retired long ago, folded into one, so that a scorer swapping
//! versions for months keeps a bounded amount of them.

use std::sync::Mutex;
use std::time::SystemTime;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Latency figures in microseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LatencySummary {
    pub min: u64,
    pub mean: f64,
    pub p50: u64,
    pub p99: u64,
    pub max: u64,
}

/// A snapshot of a model version's statistics.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelStatsSummary {
    pub name: String,
    pub version: String,
    pub sha256: String,
    pub since: String,
    pub invocations: u64,
    pub records: u64,
    pub errors: u64,
    pub latency_us: LatencySummary,
    /// CPU time the calls took, failed ones too, in µs: the input tensor's view, ONNX
    /// Runtime's run (on the calling thread: one intra-op thread) and the copy of its outputs.
    /// Beside the process's CPU time, it tells what everything else cost.
    pub cpu_us: u64,
    /// Whether this version serves now (the one its registry swapped in last).
    pub serving: bool,
}

#[derive(Clone)]
struct Counts {
    invocations: u64,
    records: u64,
    errors: u64,
    latency: Histogram<u64>,
    cpu_ns: u64,
}

/// Statistics of one model version, shared by everything that scores with it.
pub struct ModelStats {
    name: String,
    version: String,
    sha256: String,
    since: SystemTime,
    counts: Mutex<Counts>,
}

impl ModelStats {
    pub fn new(name: &str, version: &str, sha256: &str) -> Self {
        ModelStats {
            name: name.to_string(),
            version: version.to_string(),
            sha256: sha256.to_string(),
            since: SystemTime::now(),
            counts: Mutex::new(Counts {
                invocations: 0,
                records: 0,
                errors: 0,
                cpu_ns: 0,
                // 1 µs to 1 hour, 3 significant digits: cannot fail.
                latency: Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds"),
            }),
        }
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// One inference call over `records` records that took `latency_us`, and `cpu_ns` of CPU.
    pub fn record_call(&self, records: usize, latency_us: u64, cpu_ns: u64) {
        let mut c = self.counts();
        c.invocations += 1;
        c.records += records as u64;
        c.cpu_ns += cpu_ns;
        c.latency.saturating_record(latency_us.max(1));
    }

    /// Records this version failed to score, in a call that took `cpu_ns` of CPU.
    pub fn record_errors(&self, records: usize, cpu_ns: u64) {
        let mut c = self.counts();
        c.errors += records as u64;
        c.cpu_ns += cpu_ns;
    }

    pub fn summary(&self) -> ModelStatsSummary {
        summarize(&self.name, &self.version, &self.sha256, self.since, &self.counts())
    }
}

fn summarize(name: &str, version: &str, sha256: &str, since: SystemTime, c: &Counts) -> ModelStatsSummary {
    let h = &c.latency;
    let latency_us = if h.is_empty() {
        LatencySummary::default()
    } else {
        LatencySummary {
            min: h.min(),
            mean: (h.mean() * 10.0).round() / 10.0,
            p50: h.value_at_quantile(0.5),
            p99: h.value_at_quantile(0.99),
            max: h.max(),
        }
    };
    ModelStatsSummary {
        name: name.to_string(),
        version: version.to_string(),
        sha256: sha256.to_string(),
        since: humantime::format_rfc3339_seconds(since).to_string(),
        invocations: c.invocations,
        records: c.records,
        errors: c.errors,
        latency_us,
        cpu_us: c.cpu_ns / 1000,
        serving: false,
    }
}

/// The CPU time this thread has used so far (a system call, twice a model call:
/// `CLOCK_THREAD_CPUTIME_ID` has no fast path in the vDSO).
pub fn thread_cpu() -> std::time::Duration {
    let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes the timespec it is given; this clock exists on Linux.
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) } != 0 {
        return std::time::Duration::ZERO;
    }
    std::time::Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// The version label under which retired versions' statistics are folded together.
pub const RETIRED: &str = "retired";

/// The statistics of versions that served long ago, added together: their counts, one latency
/// histogram, and since when the oldest of them served.
pub struct Retired {
    name: String,
    versions: u64,
    since: SystemTime,
    counts: Counts,
}

impl Retired {
    /// Starts the aggregate with one version's statistics.
    pub fn new(first: &ModelStats) -> Self {
        Retired {
            name: first.name.clone(),
            versions: 1,
            since: first.since,
            counts: first.counts().clone(),
        }
    }

    /// Adds a version's statistics.
    pub fn fold(&mut self, stats: &ModelStats) {
        let c = stats.counts();
        self.versions += 1;
        self.since = self.since.min(stats.since);
        self.counts.invocations += c.invocations;
        self.counts.records += c.records;
        self.counts.errors += c.errors;
        self.counts.cpu_ns += c.cpu_ns;
        // Both histograms have the same bounds, so adding cannot fail.
        let _ = self.counts.latency.add(&c.latency);
    }

    /// How many versions were folded in.
    pub fn versions(&self) -> u64 {
        self.versions
    }

    /// A summary under the version `retired` (and no sha256).
    pub fn summary(&self) -> ModelStatsSummary {
        summarize(&self.name, RETIRED, "", self.since, &self.counts)
    }
}
