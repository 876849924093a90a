//! The enricher: each record is joined with a row of a reference table, found by key. The
//! table is a CSV or JSONL file, read again when it changes and swapped in whole; a bad row or a
//! duplicate key is reported with its line and skipped, and a file that cannot be loaded leaves
//! the previous table in place. Or the table is a compacted Kafka topic (the KTable pattern):
//! read from the beginning before the first record is joined, then followed, each message
//! setting a row (the latest wins) or, empty, deleting it.

pub mod config;
mod table;

use self::config::EnricherPort;
pub use table::{join, RowProblem, Table};

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::watch::FileWatch;
use rdkafka::message::BorrowedMessage;
use rdkafka::Message;
use serde_json::{Map, Value};
use tokio_util::sync::{CancellationToken, DropGuard};

use super::{Io, Stop, StreamletError};
use crate::kafka::KafkaSettings;
use crate::kafka::Replay;
use config::{EnricherConfig, TableConfig};

/// An enricher ready to run: its table loaded and watched (or followed).
pub struct Ready {
    config: EnricherConfig,
    table: Arc<RwLock<Table>>,
    _watching: DropGuard,
}

/// How long reading a table topic to its end may take at start.
const TABLE_CATCH_UP: Duration = Duration::from_secs(300);

/// Loads a table file, logging the rows it skipped; an error when the file cannot be used.
fn load_logged(config: &EnricherConfig, path: &Path, streamlet: &str) -> Result<Table, String> {
    let path = path.display().to_string();
    let started = std::time::Instant::now();
    let (table, problems) = Table::load(&config.table, &config.fields)?;
    for p in problems.iter().take(20) {
        tracing::warn!(%streamlet, file = %path, line = p.line, reason = %p.reason, "table row skipped");
    }
    if problems.len() > 20 {
        tracing::warn!(%streamlet, file = %path, skipped = problems.len(), "more table rows skipped");
    }
    tracing::info!(%streamlet, file = %path, rows = table.len(), skipped = problems.len(), took_ms = started.elapsed().as_millis() as u64, "table loaded");
    Ok(table)
}

/// Loads the table and watches its file, or reads the table topic to its end and follows it.
pub async fn prepare(config: &EnricherConfig, streamlet: &str, kafka: &KafkaSettings) -> Result<Ready, StreamletError> {
    let watching = CancellationToken::new();
    let table = match &config.table {
        TableConfig::File { path, .. } => {
            let fail = |reason: String| StreamletError::Table {
                path: path.display().to_string(),
                reason,
            };
            let (c, s, p) = (config.clone(), streamlet.to_string(), path.clone());
            let table = tokio::task::spawn_blocking(move || load_logged(&c, &p, &s))
                .await
                .map_err(|e| StreamletError::Internal(e.to_string()))?
                .map_err(fail)?;
            let table = Arc::new(RwLock::new(table));
            watch(
                config.clone(),
                path.clone(),
                streamlet.to_string(),
                table.clone(),
                watching.clone(),
            )
            .map_err(fail)?;
            table
        }
        TableConfig::Kafka { topic, key } => {
            let fail = |reason: String| {
                StreamletError::Kafka(crate::kafka::KafkaError::Topic {
                    topic: topic.clone(),
                    brokers: crate::kafka::brokers(kafka),
                    reason,
                })
            };
            if key.len() != 1 {
                return Err(fail(
                    "a table topic has one `key` field: the one matched against message keys".into(),
                ));
            }
            if config.fields.is_empty() {
                return Err(fail(
                    "name the `fields` to add: a table topic's rows have no fixed columns".into(),
                ));
            }
            let (settings, topic, s) = (kafka.clone(), topic.clone(), streamlet.to_string());
            let fields = config.fields.clone();
            let (replay, table) = tokio::task::spawn_blocking(move || follow_start(&settings, &topic, &fields, &s))
                .await
                .map_err(|e| StreamletError::Internal(e.to_string()))?
                .map_err(fail)?;
            let table = Arc::new(RwLock::new(table));
            let (t, stop, s) = (table.clone(), watching.clone(), streamlet.to_string());
            tokio::task::spawn_blocking(move || {
                while !stop.is_cancelled() {
                    replay.poll(Duration::from_millis(200), |m| {
                        apply_message(&t, m, &s);
                    });
                }
            });
            table
        }
    };
    Ok(Ready {
        config: config.clone(),
        table,
        _watching: watching.drop_guard(),
    })
}

/// A message of a table topic: its key (text), and its row, or `None` for a tombstone.
fn table_message(message: &BorrowedMessage<'_>) -> Result<(String, Option<Map<String, Value>>), String> {
    let key = message.key().ok_or("a message without a key")?;
    let key = String::from_utf8(key.to_vec()).map_err(|_| "a key that is not UTF-8 text")?;
    match message.payload() {
        None | Some(b"") => Ok((key, None)),
        Some(payload) => match serde_json::from_slice::<Value>(payload) {
            Ok(Value::Object(row)) => Ok((key, Some(row))),
            Ok(Value::Null) => Ok((key, None)),
            Ok(_) => Err("the value is not a JSON object".into()),
            Err(e) => Err(format!("the value is not JSON: {e}")),
        },
    }
}

/// Applies a table topic message; one that is not a row or a tombstone is logged with its
/// place, and skipped.
fn apply_message(table: &RwLock<Table>, message: &BorrowedMessage<'_>, streamlet: &str) -> bool {
    match table_message(message) {
        Ok((key, row)) => {
            table.write().unwrap_or_else(|p| p.into_inner()).apply(key, row);
            true
        }
        Err(reason) => {
            tracing::warn!(%streamlet, topic = %message.topic(), partition = message.partition(), offset = message.offset(), %reason, "table message skipped");
            false
        }
    }
}

/// Reads a table topic from the beginning to its end: the table as it stands, complete
/// before any record is joined, and the reader to follow it with. Blocking.
fn follow_start(
    settings: &KafkaSettings,
    topic: &str,
    fields: &[String],
    streamlet: &str,
) -> Result<(Replay, Table), String> {
    let started = std::time::Instant::now();
    let replay = Replay::open(settings, topic)?;
    let table = RwLock::new(Table::with_fields(fields));
    let (mut messages, mut skipped) = (0u64, 0u64);
    replay.catch_up(TABLE_CATCH_UP, |m| {
        messages += 1;
        if !apply_message(&table, m, streamlet) {
            skipped += 1;
        }
    })?;
    let table = table.into_inner().unwrap_or_else(|p| p.into_inner());
    tracing::info!(%streamlet, %topic, rows = table.len(), messages, skipped, took_ms = started.elapsed().as_millis() as u64, "table loaded");
    Ok((replay, table))
}

/// Reloads the table whenever its file changes; a file that fails to load leaves the old table.
fn watch(
    config: EnricherConfig,
    path: PathBuf,
    streamlet: String,
    table: Arc<RwLock<Table>>,
    stop: CancellationToken,
) -> Result<(), String> {
    let mut watch = FileWatch::files([path.clone()])?;
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                changed = watch.changed() => if changed.is_none() { break },
            }
            let (c, s, p) = (config.clone(), streamlet.clone(), path.clone());
            match tokio::task::spawn_blocking(move || load_logged(&c, &p, &s)).await {
                Ok(Ok(new)) => *table.write().unwrap_or_else(|p| p.into_inner()) = new,
                Ok(Err(reason)) => tracing::error!(%streamlet, %reason, "table not reloaded; the previous one stays"),
                Err(e) => tracing::error!(%streamlet, reason = %e, "table reload stopped abnormally"),
            }
        }
    });
    Ok(())
}

pub async fn run(ready: Ready, mut io: Io) -> Result<(), Stop> {
    let config = ready.config;
    let on: Vec<String> = if config.on.is_empty() {
        config.table.key().to_vec()
    } else {
        config.on.clone()
    };
    let out = io.outlets.get(EnricherPort::Out)?;
    let unmatched_out = io.outlets.find(EnricherPort::Unmatched);
    while let Some(mut batch) = io.inlet.recv().await {
        let unmatched = {
            let table = ready.table.read().unwrap_or_else(|p| p.into_inner());
            join(&config, &on, &table, &mut batch)
        };
        out.send(batch).await?;
        if let Some(u) = unmatched_out {
            u.send(unmatched).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(path: &Path, extra: &str) -> EnricherConfig {
        let yaml = format!(
            "table: {{ type: file, path: {}, key: statezip, columns: {{ median_income: integer }} }}\n{extra}",
            path.display()
        );
        let value: Value = serde_yaml_ng::from_str(&yaml).expect("yaml");
        serde_json::from_value(value).expect("config")
    }

    #[test]
    fn bad_rows_and_duplicate_keys_are_reported_with_their_line_and_skipped() {
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("t.csv");
        std::fs::write(&file, "statezip,median_income\nA,1\nB,two\nC\nA,3\nD,4\n").expect("write");
        let (table, problems) = Table::load(&config(&file, "").table, &[]).expect("loads");
        assert_eq!(table.len(), 2);
        let lines: Vec<u64> = problems.iter().map(|p| p.line).collect();
        assert_eq!(lines, vec![3, 4, 5]);
        assert!(problems[0].reason.contains("`two` is not an integer"));
        assert!(problems[2]
            .reason
            .contains("duplicate key \"A\": the first row with it is kept"));
    }

    #[test]
    fn a_table_without_its_key_column_does_not_load() {
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("t.csv");
        std::fs::write(&file, "zip,median_income\nA,1\n").expect("write");
        let err = Table::load(&config(&file, "").table, &[]).expect_err("no key column");
        assert!(err.contains("no key column `statezip`"));
    }
}
