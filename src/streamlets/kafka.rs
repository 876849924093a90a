//! Kafka clients for the Kafka source and sink: settings (pipeline defaults, then the
//! streamlet's; librdkafka properties passed through), a reachability check that names the
//! broker, and topics created when missing.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::types::RDKafkaErrorCode;

use super::StreamletError;
use crate::spec::KafkaSettings;

/// The brokers used when neither the pipeline nor the streamlet names any.
pub const DEFAULT_BROKERS: &str = "127.0.0.1:9092";

/// A client configuration: brokers, then every pass-through property.
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

pub fn brokers(settings: &KafkaSettings) -> String {
    settings.brokers.clone().unwrap_or_else(|| DEFAULT_BROKERS.to_string())
}

/// Fails with a clear error, naming the brokers, when they cannot be reached.
pub async fn check_reachable(settings: &KafkaSettings) -> Result<(), StreamletError> {
    let config = client_config(settings);
    let brokers = brokers(settings);
    let checked = tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = config.create()?;
        consumer.fetch_metadata(None, Duration::from_secs(10)).map(|_| ())
    })
    .await
    .map_err(|e| StreamletError::Internal(e.to_string()))?;
    checked.map_err(|e| StreamletError::Internal(format!("cannot reach the Kafka broker(s) {brokers}: {e}")))
}

/// Creates the topic unless it exists.
pub async fn ensure_topic(
    settings: &KafkaSettings,
    topic: &str,
    partitions: i32,
    replication: i32,
) -> Result<(), StreamletError> {
    let fail = |e: String| StreamletError::Internal(format!("topic `{topic}` on {}: {e}", brokers(settings)));
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
