//! The egress: writes each record as one JSON line to stdout or a file, or only counts it (blackhole).

use std::path::Path;

use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::{Batch, Io, Stop, StreamletError};
use crate::spec::{EgressConfig, SinkConfig};

/// Serializes a batch as JSON lines into `buf` (cleared first).
pub fn encode_jsonl(batch: &Batch, buf: &mut Vec<u8>) {
    buf.clear();
    for record in batch {
        // A map of JSON values always serializes.
        if serde_json::to_writer(&mut *buf, record).is_ok() {
            buf.push(b'\n');
        }
    }
}

async fn write_all(mut io: Io, mut sink: impl AsyncWrite + Unpin, name: &str) -> Result<(), Stop> {
    let mut buf = Vec::with_capacity(64 * 1024);
    let fail = |source| StreamletError::Write {
        path: name.to_string(),
        source,
    };
    while let Some(batch) = io.inlet.recv().await {
        encode_jsonl(&batch, &mut buf);
        sink.write_all(&buf).await.map_err(fail)?;
        sink.flush().await.map_err(fail)?;
    }
    sink.shutdown().await.map_err(fail)?;
    Ok(())
}

async fn open(path: &Path, append: bool) -> Result<tokio::fs::File, StreamletError> {
    let open_error = |source| StreamletError::Open {
        path: path.display().to_string(),
        source,
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        tokio::fs::create_dir_all(parent).await.map_err(open_error)?;
    }
    tokio::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(append)
        .truncate(!append)
        .open(path)
        .await
        .map_err(open_error)
}

pub async fn run(config: EgressConfig, mut io: Io) -> Result<(), Stop> {
    match config.sink {
        SinkConfig::Stdout => write_all(io, tokio::io::stdout(), "stdout").await,
        SinkConfig::File { path, append } => {
            let file = open(&path, append).await?;
            write_all(io, file, &path.display().to_string()).await
        }
        SinkConfig::Blackhole => {
            while io.inlet.recv().await.is_some() {}
            Ok(())
        }
    }
}
