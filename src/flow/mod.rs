//! The bottom layer every streamlet and the runtime build on: records and batches (column-wise),
//! JSON text in and out, acknowledgements, and the ports that carry batches between streamlets.
//! It imports nothing else of sluice.

pub mod batch;
pub mod column;
pub mod json;
pub mod ports;

pub use batch::{Batch, BatchBuilder, Field};
pub use column::{
    each_valid, exact_integers_within, mark_lengths, mark_values, marked, Column, ColumnBuilder, Owned, Row,
    TextColumn, Typed, Value,
};

#[cfg(test)]
mod tests;
