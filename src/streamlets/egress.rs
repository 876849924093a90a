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

/// An egress with its sink open.
pub enum Ready {
    Stdout,
    File { file: tokio::fs::File, name: String },
    Blackhole,
}

/// Opens the sink. A file is truncated unless `append` says otherwise, or the egress replaces a
/// running one (`reloading`): a reload never throws away what was written.
pub async fn prepare(config: &EgressConfig, reloading: bool) -> Result<Ready, StreamletError> {
    Ok(match &config.sink {
        SinkConfig::Stdout => Ready::Stdout,
        SinkConfig::File { path, append } => Ready::File {
            file: open(path, *append || reloading).await?,
            name: path.display().to_string(),
        },
        SinkConfig::Blackhole => Ready::Blackhole,
    })
}

pub async fn run(ready: Ready, mut io: Io) -> Result<(), Stop> {
    match ready {
        Ready::Stdout => write_all(io, tokio::io::stdout(), "stdout").await,
        Ready::File { file, name } => write_all(io, file, &name).await,
        Ready::Blackhole => {
            while io.inlet.recv().await.is_some() {}
            Ok(())
        }
    }
}
