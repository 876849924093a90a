//! A merger's configuration: nothing beyond its inputs.

use crate::streamlets::kind::{Kind, Outlets};
use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct MergerConfig {}

impl Kind for MergerConfig {
    fn outlets(&self) -> Outlets {
        Outlets {
            names: &["out"],
            optional: &[],
        }
    }
}
