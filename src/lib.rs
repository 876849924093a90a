//! sluice: machine-learning pipelines on streams, described in one YAML file.
//!
//! Data flows one way through the modules: `spec` (YAML → typed spec with
//! positions) → `topology` (verified graph) → `runtime` (tasks and channels)
//! → `streamlets` (what each kind does), all of them on `flow` (records,
//! batches, acknowledgements and ports).

pub mod flow;
pub mod formats;
pub mod kafka;
pub mod models;
pub mod observe;
pub mod runtime;
pub mod spec;
pub mod streamlets;
pub mod testing;
pub mod topology;
pub mod watch;
