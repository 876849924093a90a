//! Model descriptors from a Kafka topic: models as data on the same backplane as the records.
//! A scorer reads the whole topic when it starts (so it serves the latest good version), then
//! follows it. Every process reads every message (no consumer group), so every running
//! scorer sees every version.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rdkafka::message::BorrowedMessage;
use rdkafka::Message;

use super::{ModelDescriptor, ModelError};
use crate::kafka::{KafkaSettings, Replay};

/// How long reading the topic up to its end may take at start.
const CATCH_UP: Duration = Duration::from_secs(30);

/// Where a scorer's descriptors come from when they come from a topic.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelTopic {
    pub topic: String,
    pub settings: KafkaSettings,
}

/// A reader of a model topic, for one model.
pub struct Feed {
    replay: Replay,
    /// The folder `location`s resolve against.
    folder: PathBuf,
    name: String,
}

impl Feed {
    /// Creates the topic when missing, and reads it from the beginning to its end: the
    /// descriptors of model `name` found there, in the order they were published.
    /// Blocking.
    pub fn open(source: &ModelTopic, folder: &Path, name: &str) -> Result<(Feed, Vec<ModelDescriptor>), ModelError> {
        let fail = |reason: String| {
            ModelError::Runtime(format!(
                "model topic `{}` on {}: {reason}",
                source.topic,
                crate::kafka::brokers(&source.settings)
            ))
        };
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle
                .block_on(crate::kafka::ensure_topic(&source.settings, &source.topic, 1, 1))
                .map_err(|e| fail(e.to_string()))?;
        }
        let feed = Feed {
            replay: Replay::open(&source.settings, &source.topic).map_err(fail)?,
            folder: folder.to_path_buf(),
            name: name.to_string(),
        };
        let mut found = Vec::new();
        feed.replay
            .catch_up(CATCH_UP, |m| found.extend(feed.descriptor(m)))
            .map_err(fail)?;
        Ok((feed, found))
    }

    /// The next descriptor of this model published, waiting up to `timeout`.
    pub fn next(&self, timeout: Duration) -> Option<ModelDescriptor> {
        let mut found = None;
        self.replay.poll(timeout, |m| found = self.descriptor(m));
        found
    }

    /// The descriptor a message holds, when it is one of this model's. Messages that are not
    /// descriptors are logged and skipped.
    fn descriptor(&self, message: &BorrowedMessage<'_>) -> Option<ModelDescriptor> {
        let origin = self.folder.join(format!(
            "kafka:{}@{}:{}",
            self.replay.topic,
            message.partition(),
            message.offset()
        ));
        match ModelDescriptor::parse(message.payload().unwrap_or_default(), &origin) {
            Ok(d) if d.name == self.name => Some(d),
            Ok(_) => None,
            Err(e) => {
                tracing::error!(reason = %e, "model topic message rejected; the serving version goes on");
                None
            }
        }
    }
}
