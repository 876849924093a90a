//! A merger's configuration: nothing beyond its inputs.

use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct MergerConfig {}
