//! A validator's configuration: the record schema, and the training profile records are
//! checked against (with drift).

use std::path::PathBuf;

use crate::models::profile::Profile;
use crate::problem::Problem;
use crate::streamlets::kind::{Finding, Kind, Outlets, PathField, PathRole, Port};
use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ValidatorConfig {
    pub schema: PathBuf,
    /// Checks against a model's training profile, and drift.
    #[serde(default)]
    pub profile: Option<ProfileConfig>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ProfileConfig {
    pub path: PathBuf,
    /// The fields to check; every field of the profile when empty.
    #[serde(default)]
    pub fields: Vec<String>,
    #[serde(default)]
    pub out_of_profile: OutOfProfile,
    /// Share of a numeric range's width a value may lie beyond it.
    #[serde(default)]
    pub slack: f64,
    #[serde(default)]
    pub drift: Option<DriftConfig>,
}

/// What happens to a record outside the training profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutOfProfile {
    /// It stays valid, with `_profile: {violations: [...]}`.
    #[default]
    Tag,
    /// It goes to `invalid` with the reason.
    Route,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct DriftConfig {
    #[serde(default = "default_window")]
    pub window: usize,
    /// Evaluate every this many records; a quarter of the window when absent.
    #[serde(default)]
    pub every: Option<usize>,
    #[serde(default = "default_psi")]
    pub psi_threshold: f64,
    #[serde(default = "default_out_of_range")]
    pub out_of_range_threshold: f64,
}

fn default_window() -> usize {
    1000
}

fn default_psi() -> f64 {
    0.2
}

fn default_out_of_range() -> f64 {
    0.05
}

/// The outlets of a validator: what passed, what did not (with why), and drift events (with a profile that watches drift).
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr, strum::VariantNames)]
#[strum(serialize_all = "lowercase")]
pub enum ValidatorPort {
    /// Records that passed every check.
    Valid,
    /// Records that did not, each with `_error`.
    Invalid,
    /// Drift events (only with `profile.drift`).
    Drift,
}

impl Port for ValidatorPort {}

impl Kind for ValidatorConfig {
    fn outlets(&self) -> Outlets {
        let drift = self.profile.as_ref().is_some_and(|p| p.drift.is_some());
        if drift {
            Outlets::all::<ValidatorPort>()
        } else {
            Outlets::through(ValidatorPort::Invalid)
        }
    }

    fn paths_mut(&mut self) -> Vec<PathField<'_>> {
        let mut fields = vec![PathField {
            pointer: "/schema".into(),
            role: PathRole::RecordSchema,
            path: &mut self.schema,
        }];
        if let Some(profile) = &mut self.profile {
            fields.push(PathField {
                pointer: "/profile/path".into(),
                role: PathRole::TrainingProfile,
                path: &mut profile.path,
            });
        }
        fields
    }

    fn emitted_schema(&self, port: &str) -> Option<&PathBuf> {
        (port == ValidatorPort::Valid.name()).then_some(&self.schema)
    }

    /// The training profile must be readable and hold the fields it checks.
    fn check(&self) -> Vec<Finding> {
        let Some(profile) = &self.profile else {
            return Vec::new();
        };
        if !profile.path.is_file() {
            return Vec::new(); // reported as a missing file
        }
        let loaded = match Profile::load(&profile.path) {
            Ok(loaded) => loaded,
            Err(reason) => {
                return vec![Finding::at_value(
                    "/profile/path",
                    Problem::InvalidValue {
                        field: "profile".into(),
                        reason,
                    },
                )]
            }
        };
        // Each field the profile lacks, at that field's name.
        let known: Vec<&str> = loaded.fields.keys().map(String::as_str).collect();
        profile
            .fields
            .iter()
            .enumerate()
            .filter(|(_, name)| !loaded.fields.contains_key(*name))
            .map(|(i, name)| {
                let mut reason = format!("the profile has no field `{name}`");
                if let Some(close) = crate::problem::did_you_mean(name, known.iter().copied()) {
                    reason.push_str(&format!(" (did you mean `{close}`?)"));
                }
                Finding::at_value(
                    format!("/profile/fields/{i}"),
                    Problem::InvalidValue {
                        field: "fields".into(),
                        reason,
                    },
                )
            })
            .collect()
    }
}
