//! The streamlets a pipeline test puts in place of the pipeline's own: records the test gives,
//! where a source was, and captures that keep what reaches them, where sinks were.

use crate::streamlets::kind::SourcePort;
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use serde_json::{Map, Value};

use crate::flow::Batch;
use crate::streamlets::io::Io;
use crate::streamlets::kind::{KindConfig, Outlets, Substitute, Substituted};
use crate::streamlets::Stop;

type Records = Vec<Map<String, Value>>;

/// Sends the records a test gives on `out`, in batches, and ends.
#[derive(Debug, Default)]
pub struct Given(pub Records);

impl Given {
    pub fn kind(records: Records) -> KindConfig {
        KindConfig::Substitute(Substitute(Arc::new(Given(records))))
    }
}

impl Substituted for Given {
    fn name(&self) -> &'static str {
        "records"
    }

    fn outlets(&self) -> Outlets {
        Outlets::OF_A_SOURCE
    }

    fn takes_inputs(&self) -> bool {
        false
    }

    fn run(&self, io: Io) -> BoxFuture<'static, Result<(), Stop>> {
        let records = self.0.clone();
        Box::pin(async move {
            let out = io.outlets.get(SourcePort::Out)?;
            for chunk in records.chunks(io.batch_size.max(1)) {
                out.send(Batch::from_records(chunk)).await?;
            }
            Ok(())
        })
    }
}

/// Keeps every record that reaches it, for a test to check.
#[derive(Debug, Default, Clone)]
pub struct Capture(pub Arc<Mutex<Records>>);

impl Capture {
    pub fn kind(&self) -> KindConfig {
        KindConfig::Substitute(Substitute(Arc::new(self.clone())))
    }

    pub fn records(&self) -> Records {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Substituted for Capture {
    fn name(&self) -> &'static str {
        "capture"
    }

    fn outlets(&self) -> Outlets {
        Outlets::NONE
    }

    fn takes_inputs(&self) -> bool {
        true
    }

    fn run(&self, mut io: Io) -> BoxFuture<'static, Result<(), Stop>> {
        let kept = self.0.clone();
        Box::pin(async move {
            while let Some(batch) = io.inlet.recv().await {
                kept.lock().unwrap_or_else(|p| p.into_inner()).extend(batch.records());
            }
            Ok(())
        })
    }
}

/// Whether a streamlet is one a test put in place of a source (its given records).
pub fn is_given(kind: &KindConfig) -> bool {
    matches!(kind, KindConfig::Substitute(s) if !s.0.takes_inputs())
}
