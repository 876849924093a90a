//! A merger's configuration: nothing beyond its inputs.

use crate::streamlets::kind::{Kind, Outlets, Port};
use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct MergerConfig {}

/// The outlets of a merger: the records of all its inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr, strum::VariantNames)]
#[strum(serialize_all = "lowercase")]
pub enum MergerPort {
    Out,
}

impl Port for MergerPort {}

impl Kind for MergerConfig {
    fn outlets(&self) -> Outlets {
        Outlets::all::<MergerPort>()
    }
}
