//! The merger: every batch from any of its inputs goes to `out`.

pub mod config;

use self::config::MergerPort;
use super::{Io, Stop};

pub async fn run(mut io: Io) -> Result<(), Stop> {
    let out = io.outlets.get(MergerPort::Out)?;
    while let Some(batch) = io.inlet.recv().await {
        out.send(batch).await?;
    }
    Ok(())
}
