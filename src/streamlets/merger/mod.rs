//! The merger: every batch from any of its inputs goes to `out`.

pub mod config;

use super::{Io, Stop};

pub async fn run(mut io: Io) -> Result<(), Stop> {
    let out = io.outlets.get("out")?;
    while let Some(batch) = io.inlet.recv().await {
        out.send(batch).await?;
    }
    Ok(())
}
