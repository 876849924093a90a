//! Model descriptors from a Kafka topic: models as data on the same backplane as the records.
//! A scorer reads the whole topic when it starts (so it serves the latest good version), then
//! follows it. Every process reads every message (no consumer group), so every running
//! scorer sees every version.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};

use super::{ModelDescriptor, ModelError};
use crate::spec::KafkaSettings;

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
    consumer: BaseConsumer,
    topic: String,
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
                crate::streamlets::kafka::brokers(&source.settings)
            ))
        };
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle
                .block_on(crate::streamlets::kafka::ensure_topic(
                    &source.settings,
                    &source.topic,
                    1,
                    1,
                ))
                .map_err(|e| fail(e.to_string()))?;
        }
        let mut config = crate::streamlets::kafka::client_config(&source.settings);
        config
            .set("group.id", format!("sluice-models-{name}"))
            .set("enable.auto.commit", "false")
            .set("fetch.wait.max.ms", "100");
        let consumer: BaseConsumer = config.create().map_err(|e| fail(e.to_string()))?;
        let metadata = consumer
            .fetch_metadata(Some(&source.topic), Duration::from_secs(10))
            .map_err(|e| fail(e.to_string()))?;
        let partitions: Vec<i32> = metadata
            .topics()
            .iter()
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        let mut list = TopicPartitionList::new();
        let mut ends = Vec::new();
        for &p in &partitions {
            let (low, high) = consumer
                .fetch_watermarks(&source.topic, p, Duration::from_secs(10))
                .map_err(|e| fail(e.to_string()))?;
            list.add_partition_offset(&source.topic, p, Offset::Beginning)
                .map_err(|e| fail(e.to_string()))?;
            if high > low {
                ends.push((p, high));
            }
        }
        consumer.assign(&list).map_err(|e| fail(e.to_string()))?;
        let feed = Feed {
            consumer,
            topic: source.topic.clone(),
            folder: folder.to_path_buf(),
            name: name.to_string(),
        };
        // Read until every partition's position reaches the end it had when we looked.
        let mut found = Vec::new();
        let started = Instant::now();
        let mut read: std::collections::HashMap<i32, i64> = std::collections::HashMap::new();
        while ends
            .iter()
            .any(|(p, high)| read.get(p).copied().unwrap_or(-1) + 1 < *high)
        {
            if started.elapsed() > CATCH_UP {
                return Err(fail(format!("not read to its end within {CATCH_UP:?}")));
            }
            if let Some((partition, offset, descriptor)) = feed.poll(Duration::from_millis(200)) {
                read.insert(partition, offset);
                found.extend(descriptor);
            }
        }
        Ok((feed, found))
    }

    /// The next message (waiting up to `timeout`): its partition and offset, and the
    /// descriptor it holds when it is one of this model's. Messages that are not descriptors
    /// are logged and skipped.
    pub fn poll(&self, timeout: Duration) -> Option<(i32, i64, Option<ModelDescriptor>)> {
        let message = match self.consumer.poll(timeout)? {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(topic = %self.topic, error = %e, "model topic");
                return None;
            }
        };
        let (partition, offset) = (message.partition(), message.offset());
        let origin = self.folder.join(format!("kafka:{}@{partition}:{offset}", self.topic));
        let descriptor = match ModelDescriptor::parse(message.payload().unwrap_or_default(), &origin) {
            Ok(d) if d.name == self.name => Some(d),
            Ok(_) => None,
            Err(e) => {
                tracing::error!(reason = %e, "model topic message rejected; the serving version goes on");
                None
            }
        };
        Some((partition, offset, descriptor))
    }
}
