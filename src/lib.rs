//! sluice: machine-learning pipelines on streams, described in one YAML file.
//!
//! Data and imports flow one way through the modules: `flow` (records, batches,
//! acknowledgements, ports) and `c_heap` (the C libraries' heap: mimalloc's) → `formats`, `kafka`,
//! `problem`, `watch` → `models` → `streamlets` (one room per kind) → `spec` (YAML → typed spec
//! with positions) → `topology` (verified graph, reload diff) → `runtime` (tasks and channels)
//! → `observe`, `testing` and the CLI. No module imports one above it.

pub mod c_heap;
pub mod flow;
pub mod formats;
pub mod kafka;
pub mod models;
pub mod observe;
pub mod problem;
pub mod runtime;
pub mod spec;
pub mod streamlets;
pub mod testing;
pub mod topology;
pub mod watch;
