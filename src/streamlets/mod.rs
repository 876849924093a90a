//! The streamlet kinds: what each does with the records that reach it.

pub mod egress;
pub mod enricher;
pub mod evaluator;
pub mod ingress;
pub mod io;
pub mod kind;

pub mod merger;
pub mod scorer;
pub mod trainer;
pub mod validator;

use kind::KindConfig;

/// Runs blocking work (a wait, a model loading) from inside a task without stalling the other
/// tasks of a multi-threaded runtime.
pub fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

pub use crate::flow::Batch;
pub use io::{Closed, Io};

/// Why a streamlet stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum StreamletError {
    #[error("cannot open {path}: {source}")]
    Open { path: String, source: std::io::Error },
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: String, source: std::io::Error },
    #[error("record schema {path}: {reason}")]
    Schema { path: String, reason: String },
    #[error("training profile {path}: {reason}")]
    Profile { path: String, reason: String },
    #[error("table {path}: {reason}")]
    Table { path: String, reason: String },
    #[error(transparent)]
    Model(#[from] crate::models::ModelError),
    #[error(transparent)]
    Kafka(#[from] crate::kafka::KafkaError),
    #[error("{0}")]
    Internal(String),
}

impl From<crate::flow::ports::Unwired> for StreamletError {
    fn from(e: crate::flow::ports::Unwired) -> Self {
        StreamletError::Internal(e.to_string())
    }
}

impl From<crate::kafka::KafkaError> for Stop {
    fn from(e: crate::kafka::KafkaError) -> Self {
        Stop::Failed(e.into())
    }
}

impl From<crate::flow::ports::Unwired> for Stop {
    fn from(e: crate::flow::ports::Unwired) -> Self {
        Stop::Failed(e.into())
    }
}

/// What preparing a streamlet needs to know.
pub struct Prepare {
    pub name: String,
    pub pipeline: String,
    /// The pipeline's Kafka settings, which Kafka sources and sinks start from.
    pub kafka: crate::kafka::KafkaSettings,
    /// Whether this replaces a running streamlet (file sinks then append instead of truncating).
    pub reloading: bool,
    /// The pipeline's scorers, for an evaluator restoring its decisions.
    pub controls: io::Controls,
}

/// A streamlet with everything that can fail at start done (files opened, schemas compiled,
/// models loaded and checked), so a reload can build new pieces before it stops old ones.
pub enum Prepared {
    Ingress(Box<ingress::Ready>),
    Validator(Box<validator::Ready>),
    Merger,
    Egress(egress::Ready),
    Scorer(Box<scorer::Ready>),
    Enricher(Box<enricher::Ready>),
    Evaluator(Box<evaluator::Ready>),
    Trainer(Box<trainer::config::TrainerConfig>),
    Substitute(kind::Substitute),
}

pub async fn prepare(kind: &KindConfig, ctx: &Prepare) -> Result<Prepared, StreamletError> {
    Ok(match kind {
        KindConfig::Ingress(c) => Prepared::Ingress(Box::new(ingress::prepare(c, ctx).await?)),
        KindConfig::Validator(c) => Prepared::Validator(Box::new(validator::prepare(c)?)),
        KindConfig::Merger(_) => Prepared::Merger,
        KindConfig::Egress(c) => Prepared::Egress(egress::prepare(c, ctx).await?),
        KindConfig::Scorer(c) => Prepared::Scorer(Box::new(
            scorer::prepare(c, &ctx.name, ctx.reloading, &ctx.kafka).await?,
        )),
        KindConfig::Enricher(c) => Prepared::Enricher(Box::new(enricher::prepare(c, &ctx.name, &ctx.kafka).await?)),
        KindConfig::Evaluator(c) => Prepared::Evaluator(Box::new(evaluator::prepare(c, ctx))),
        KindConfig::Trainer(c) => Prepared::Trainer(Box::new(c.clone())),
        KindConfig::Substitute(s) => Prepared::Substitute(s.clone()),
    })
}

/// Runs a prepared streamlet until its input ends, intake stops or it is retired.
/// Downstream going away is not an error of this streamlet: it just stops.
pub async fn run(prepared: Prepared, io: Io) -> Result<(), StreamletError> {
    let result = match prepared {
        Prepared::Ingress(ready) => ingress::run(*ready, io).await,
        Prepared::Validator(ready) => validator::run(*ready, io).await,
        Prepared::Merger => merger::run(io).await,
        Prepared::Egress(ready) => egress::run(ready, io).await,
        Prepared::Scorer(ready) => scorer::run(*ready, io).await,
        Prepared::Enricher(ready) => enricher::run(*ready, io).await,
        Prepared::Evaluator(ready) => evaluator::run(*ready, io).await,
        Prepared::Trainer(config) => trainer::run(*config, io).await,
        Prepared::Substitute(s) => s.0.run(io).await,
    };
    match result {
        Ok(()) | Err(Stop::Downstream(Closed)) => Ok(()),
        Err(Stop::Failed(e)) => Err(e),
    }
}

/// How a streamlet's work ended early.
#[derive(Debug, thiserror::Error)]
pub enum Stop {
    #[error(transparent)]
    Downstream(#[from] Closed),
    #[error(transparent)]
    Failed(#[from] StreamletError),
}
