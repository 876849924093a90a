//! Kafka clients for everything that talks to a broker (a source, a sink, an edge, a table
//! topic, a model topic): settings (pipeline defaults, then the streamlet's; librdkafka
//! properties passed through), a reachability check that names the brokers, topics created
//! when missing, and a topic read whole without a consumer group.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::BorrowedMessage;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Message, Offset, TopicPartitionList};

use indexmap::IndexMap;
use serde::Deserialize;

/// Where the Kafka brokers are, and librdkafka properties (SASL, TLS...) passed through as they are.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
pub struct KafkaSettings {
    #[serde(default)]
    pub brokers: Option<String>,
    /// Values may be written as strings, numbers or booleans.
    #[serde(default)]
    pub options: IndexMap<String, serde_json::Value>,
}

impl KafkaSettings {
    /// These settings with `over`'s on top.
    pub fn merged(&self, over: &KafkaSettings) -> KafkaSettings {
        let mut options = self.options.clone();
        options.extend(over.options.clone());
        KafkaSettings {
            brokers: over.brokers.clone().or_else(|| self.brokers.clone()),
            options,
        }
    }
}

/// What went wrong between sluice and a broker, in words that name the brokers or the topic.
#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    #[error("cannot reach the Kafka broker(s) {brokers}: {reason}")]
    Unreachable { brokers: String, reason: String },
    #[error("topic `{topic}` on {brokers}: {reason}")]
    Topic {
        topic: String,
        brokers: String,
        reason: String,
    },
    /// A client (consumer, producer) that could not be made or set up: what it was for.
    #[error("{what}: {reason}")]
    Client { what: String, reason: String },
}

/// The brokers used when neither the pipeline nor the streamlet names any.
pub const DEFAULT_BROKERS: &str = "127.0.0.1:9092";

/// A client configuration: brokers, then every pass-through property. (librdkafka allocates
/// from mimalloc's heap, see [`crate::c_heap`].)
pub fn client_config(settings: &KafkaSettings) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", brokers(settings));
    for (key, value) in &settings.options {
        let value = match value {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        config.set(key, value);
    }
    config
}

/// A consumer's configuration: [`client_config`], and sluice's own fetch defaults where the
/// options do not set them.
pub fn consumer_config(settings: &KafkaSettings) -> ClientConfig {
    let mut config = client_config(settings);
    for (option, default) in CONSUMER_DEFAULTS {
        if !settings.options.contains_key(option) {
            config.set(option, default);
        }
    }
    config
}

/// What a consumer asks for unless the options say otherwise.
const CONSUMER_DEFAULTS: [(&str, &str); 2] = [
    // The longest a fetch waits for messages. Kafka answers a fetch as soon as a message
    // arrives, but some Kafka-API brokers (tansu) answer only at the deadline, and each topic
    // edge of a pipeline would add it to the latency; asking more often costs a real broker
    // little.
    ("fetch.wait.max.ms", "100"),
    // How long a partition's fetching pauses when librdkafka's local queue is at one of its
    // limits (`queued.min.messages`, 100,000 messages, or `queued.max.messages.kbytes`, 64 MiB;
    // the queue counts every partition of the consumer) before it looks again. librdkafka's
    // own 1000 ms let the queue run dry under a source reading 120,000 records a second: it
    // stood still about 0.3 s every 1.5 to 2.5 s.
    ("fetch.queue.backoff.ms", "10"),
];

pub fn brokers(settings: &KafkaSettings) -> String {
    settings.brokers.clone().unwrap_or_else(|| DEFAULT_BROKERS.to_string())
}

/// Fails with a clear error, naming the brokers, when they cannot be reached.
pub async fn check_reachable(settings: &KafkaSettings) -> Result<(), KafkaError> {
    let config = client_config(settings);
    let brokers = brokers(settings);
    let checked = tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = config.create()?;
        consumer.fetch_metadata(None, Duration::from_secs(10)).map(|_| ())
    })
    .await;
    let reason = match checked {
        Ok(Ok(())) => return Ok(()),
        Ok(Err(e)) => e.to_string(),
        Err(e) => e.to_string(),
    };
    Err(KafkaError::Unreachable { brokers, reason })
}

/// Sends one message and waits for the broker to have it (up to 30 s). Blocking: for a rare
/// message (a model version), not for records.
pub fn produce_one(settings: &KafkaSettings, topic: &str, key: &str, payload: &[u8]) -> Result<(), String> {
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let mut config = client_config(settings);
    config.set("message.max.bytes", "10000000");
    let producer: FutureProducer = config.create().map_err(|e| e.to_string())?;
    // The producer polls on a thread of its own: its delivery report can be waited for here.
    let delivered = futures::executor::block_on(producer.send(
        FutureRecord::to(topic).key(key).payload(payload),
        Duration::from_secs(30),
    ));
    delivered.map(|_| ()).map_err(|(e, _)| e.to_string())
}

/// Creates the topic unless it exists.
pub async fn ensure_topic(
    settings: &KafkaSettings,
    topic: &str,
    partitions: i32,
    replication: i32,
) -> Result<(), KafkaError> {
    let fail = |reason: String| KafkaError::Topic {
        topic: topic.to_string(),
        brokers: brokers(settings),
        reason,
    };
    let admin: AdminClient<DefaultClientContext> = client_config(settings).create().map_err(|e| fail(e.to_string()))?;
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(replication));
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let results = admin
        .create_topics([&new], &options)
        .await
        .map_err(|e| fail(e.to_string()))?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => return Err(fail(code.to_string())),
        }
    }
    Ok(())
}

/// Reads a whole topic without a consumer group (every process reads every message):
/// every partition from the beginning, first up to the end it had when opened, then on as
/// messages come. For tables and model versions kept in topics.
pub struct Replay {
    consumer: BaseConsumer,
    pub topic: String,
    /// Per partition with messages when opened: the offset after its last one.
    ends: Vec<(i32, i64)>,
}

impl Replay {
    /// The consumer's configuration: the settings with sluice's consumer defaults, its own
    /// group, no commits.
    fn config(settings: &KafkaSettings, topic: &str) -> ClientConfig {
        let mut config = consumer_config(settings);
        config
            .set("group.id", format!("sluice-replay-{topic}"))
            .set("enable.auto.commit", "false");
        config
    }

    /// Assigns every partition of `topic` from its beginning. Blocking.
    pub fn open(settings: &KafkaSettings, topic: &str) -> Result<Replay, String> {
        let consumer: BaseConsumer = Replay::config(settings, topic).create().map_err(|e| e.to_string())?;
        let metadata = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .map_err(|e| e.to_string())?;
        let partitions: Vec<i32> = metadata
            .topics()
            .iter()
            .filter(|t| t.error().is_none())
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        if partitions.is_empty() {
            return Err(format!("topic `{topic}` does not exist"));
        }
        let mut list = TopicPartitionList::new();
        let mut ends = Vec::new();
        for p in partitions {
            let (low, high) = consumer
                .fetch_watermarks(topic, p, Duration::from_secs(10))
                .map_err(|e| e.to_string())?;
            list.add_partition_offset(topic, p, Offset::Beginning)
                .map_err(|e| e.to_string())?;
            if high > low {
                ends.push((p, high));
            }
        }
        consumer.assign(&list).map_err(|e| e.to_string())?;
        Ok(Replay {
            consumer,
            topic: topic.to_string(),
            ends,
        })
    }

    /// Hands `each` every message up to the ends the partitions had when opened. Blocking.
    pub fn catch_up(&self, timeout: Duration, mut each: impl FnMut(&BorrowedMessage<'_>)) -> Result<(), String> {
        let started = std::time::Instant::now();
        let mut read: std::collections::HashMap<i32, i64> = std::collections::HashMap::new();
        while self
            .ends
            .iter()
            .any(|(p, end)| read.get(p).copied().unwrap_or(-1) + 1 < *end)
        {
            if started.elapsed() > timeout {
                return Err(format!("not read to its end within {timeout:?}"));
            }
            self.poll(Duration::from_millis(200), |m| {
                read.insert(m.partition(), m.offset());
                each(m)
            });
        }
        Ok(())
    }

    /// Hands `each` the next message, waiting up to `timeout`. Blocking.
    pub fn poll(&self, timeout: Duration, each: impl FnOnce(&BorrowedMessage<'_>)) {
        match self.consumer.poll(timeout) {
            Some(Ok(m)) => each(&m),
            Some(Err(e)) => tracing::warn!(topic = %self.topic, error = %e, "reading a topic"),
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_consumer_gets_sluice_fetch_defaults_unless_its_options_set_them() {
        let plain = consumer_config(&KafkaSettings::default());
        assert_eq!(plain.get("fetch.wait.max.ms"), Some("100"));
        assert_eq!(plain.get("fetch.queue.backoff.ms"), Some("10"));

        let mut own = KafkaSettings::default();
        own.options
            .insert("fetch.queue.backoff.ms".into(), serde_json::json!(500));
        own.options.insert("fetch.wait.max.ms".into(), serde_json::json!("20"));
        let config = consumer_config(&own);
        assert_eq!(config.get("fetch.queue.backoff.ms"), Some("500"));
        assert_eq!(config.get("fetch.wait.max.ms"), Some("20"));
        assert_eq!(config.get("bootstrap.servers"), Some(DEFAULT_BROKERS));

        // A table's or model topic's replay: the same defaults, the same way over them.
        let replay = Replay::config(&KafkaSettings::default(), "prices");
        assert_eq!(replay.get("fetch.queue.backoff.ms"), Some("10"));
        assert_eq!(replay.get("group.id"), Some("sluice-replay-prices"));
        let replay = Replay::config(&own, "prices");
        assert_eq!(replay.get("fetch.wait.max.ms"), Some("20"));
        assert_eq!(replay.get("fetch.queue.backoff.ms"), Some("500"));
    }
}
