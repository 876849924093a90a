//! The streamlet kinds: what each does with the records that reach it.

pub mod egress;
pub mod ingress;
pub mod io;
pub mod merger;
pub mod scorer;
pub mod validator;

use crate::spec::{KindConfig, StreamletSpec};

pub use io::{Batch, Closed, Io, Record};

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
    #[error(transparent)]
    Model(#[from] crate::models::ModelError),
    #[error("{0}")]
    Internal(String),
}

/// Runs one streamlet until its input ends or intake stops.
/// Downstream going away is not an error of this streamlet: it just stops.
pub async fn run(spec: StreamletSpec, io: Io) -> Result<(), StreamletError> {
    let result = match spec.kind {
        KindConfig::Ingress(c) => ingress::run(c, io).await,
        KindConfig::Validator(c) => validator::run(c, io).await,
        KindConfig::Merger(_) => merger::run(io).await,
        KindConfig::Egress(c) => egress::run(c, io).await,
        KindConfig::Scorer(c) => scorer::run(c, io).await,
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
