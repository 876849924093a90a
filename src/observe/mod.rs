//! What sluice tells its operators: logs, run summaries, diagnostics rendering.

pub mod admin;
pub mod diagnostics;
pub mod history;
pub mod logging;
pub mod metrics;

/// Peak resident memory of this process in KiB (Linux `VmHWM`), when the system says.
pub fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
